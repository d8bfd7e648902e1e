// Tests of the plain C# core, run outside Unity with Mono (tests/test_unity_client.py compiles this file
// with the core and runs it). A self-made runner: every check prints "ok NAME" or "FAIL NAME: why",
// the exit code is the number of failures. Sections run when their arguments are given:
//   --vectors DIR          golden vectors (tests/vectors): decode, re-encode, error codes
//   --frames DIR           red.jpg, green.jpg, blue.jpg (made by the pytest test with OpenCV)
//   --server URL --token T a real vr-serve with the colour model, requiring the token
//   --slow-server URL      a vr-serve whose model is slow: the client must drop stale frames itself
//   --capture-out DIR      write a capture session there (the pytest test reads it back in Python)
//   --limits-server URL    a vr-serve with --max-streams 1 and a small --max-message-mb (CloseTests.cs)
//   --fault-server URL --fault-server-pid PID
//                          a vr-serve whose pong raises (internal error), with a short --keepalive;
//                          sent SIGTERM at the end (CloseTests.cs)
using System;
using System.Collections.Generic;
using System.IO;
using System.Security.Cryptography;
using System.Text;
using System.Threading;
using VrRecognition.Core;

namespace VrRecognition.Tests
{
    public static partial class CoreTests
    {
        static int failures, passes;
        static readonly Dictionary<string, string> Args = new Dictionary<string, string>();

        public static int Main(string[] argv)
        {
            for (int i = 0; i + 1 < argv.Length; i += 2) Args[argv[i].TrimStart('-')] = argv[i + 1];
            Run("json_number_format", JsonNumberFormat);
            Run("json_reader_strict", JsonReaderStrict);
            Run("latest_frame_slot", LatestFrameSlotReplaces);
            Run("backoff_grows_and_caps", BackoffGrows);
            Run("frame_encode_rejects_bad_fields", FrameEncodeRejects);
            Run("stream_settings_null_resets", StreamSettingsNullResets);
            Run("top_k_any_integer_from_1", TopKAnyPositiveInteger);
            Run("hello_min_protocol_and_negotiation", MinProtocolNegotiation);
            Run("model_input_mapping", ModelInputMapping);
            Run("gaze_crop_rect_units", GazeCropRectUnits);
            Run("close_codes_and_reconnect_policy", CloseCodePolicy);
            if (Args.ContainsKey("vectors")) GoldenVectors(Args["vectors"]);
            if (Args.ContainsKey("capture-out")) Run("capture_session_writer", CaptureWriter);
            // No hello: the server closes with 1008 after its hello timeout. Started first, checked last,
            // so the wait overlaps the other live checks.
            var helloTimeout = Args.ContainsKey("server") ? StartHelloTimeoutPeer() : null;
            RawPeer slowConsumer = null; // stops reading: dropped at the fault server's keepalive (1008)
            if (Args.ContainsKey("fault-server")) Run("live_close_1008_slow_consumer_started", () => slowConsumer = StartSlowConsumer());
            if (Args.ContainsKey("server"))
            {
                Run("live_colour_predictions", LiveColourPredictions);
                Run("live_wrong_token_reconnects_with_backoff", WrongTokenBackoff);
                Run("live_close_1002_unsupported_version", LiveClose1002);
                Run("live_close_1007_bad_json", LiveClose1007);
            }
            if (Args.ContainsKey("slow-server")) Run("slow_server_client_drops_stale", SlowServerDrops);
            if (Args.ContainsKey("limits-server"))
            {
                Run("live_client_refuses_frame_over_max_message_bytes", LiveClientRefusesOversizedFrame);
                Run("live_close_4013_too_many_streams", LiveClose4013TooManyStreams);
                Run("live_close_1009_message_too_large", LiveClose1009);
            }
            if (Args.ContainsKey("fault-server"))
            {
                if (slowConsumer != null) Run("live_close_1008_slow_consumer", () => FinishSlowConsumer(slowConsumer));
                Run("live_close_1011_internal_error", LiveClose1011);
                Run("live_close_1001_and_4013_shutting_down", LiveClose1001And4013ShuttingDown);
            }
            if (helloTimeout != null) Run("live_close_1008_hello_required", () => FinishHelloTimeoutPeer(helloTimeout));
            Console.WriteLine("summary: " + passes + " passed, " + failures + " failed");
            return failures;
        }

        static void Run(string name, Action test)
        {
            var watch = System.Diagnostics.Stopwatch.StartNew();
            try
            {
                test();
                passes++;
                Console.WriteLine("ok " + name + " (" + watch.ElapsedMilliseconds + " ms)");
            }
            catch (Exception e)
            {
                failures++;
                Console.WriteLine("FAIL " + name + ": " + e.Message.Replace("\n", " | "));
                Console.Error.WriteLine(e);
            }
        }

        static void Check(bool condition, string what)
        {
            if (!condition) throw new Exception(what);
        }

        static void Equal<T>(T expected, T actual, string what)
        {
            if (!EqualityComparer<T>.Default.Equals(expected, actual))
                throw new Exception(what + ": expected " + expected + ", got " + actual);
        }

        // --- units ---------------------------------------------------------------------------------

        static void JsonNumberFormat()
        {
            // Python repr(float) for each value.
            var cases = new Dictionary<double, string>
            {
                { 90.0, "90.0" }, { 11.1, "11.1" }, { 8.3, "8.3" }, { 0.912345, "0.912345" }, { 1e-05, "1e-05" },
                { 0.0001, "0.0001" }, { 1e16, "1e+16" }, { 1234567890123456.0, "1234567890123456.0" },
                { 1.5e300, "1.5e+300" }, { -2.25, "-2.25" }, { 0.1 + 0.2, "0.30000000000000004" }, { 0.0, "0.0" },
                { 123.456e-10, "1.23456e-08" },
            };
            foreach (var pair in cases) Equal(pair.Value, JsonWriter.FormatDouble(pair.Key), "FormatDouble");
            Equal("0.1", JsonWriter.FormatFloat(0.1f), "FormatFloat(0.1f)");
            Equal("1.0", JsonWriter.FormatFloat(1f), "FormatFloat(1f)");
            Equal("-0.70710677", JsonWriter.FormatFloat(-0.70710677f), "FormatFloat");
            Equal("{\"a\":\"x\\\"y\\n\\u0001é\",\"b\":[1,2.5,null,true]}",
                JsonWriter.Write(new JsonObject().Set("a", "x\"y\n\u0001é")
                    .Set("b", JsonValue.Array(JsonValue.Of(1L), JsonValue.Of(2.5), JsonValue.Null, JsonValue.True))), "Write");
        }

        static void JsonReaderStrict()
        {
            foreach (var bad in new[] { "{\"a\":NaN}", "{\"a\":1,}", "[01]", "{\"a\":Infinity}", "{'a':1}", "{\"a\":1} x", "\"\t\"" })
            {
                bool threw = false;
                try { JsonReader.Parse(bad); } catch (JsonException) { threw = true; }
                Check(threw, "accepted bad JSON " + bad);
            }
            var v = JsonReader.Parse(" {\"i\": 2, \"f\": 2.0, \"e\": 1e2, \"s\": \"\\u00e9\\n\"} ");
            Equal(JsonKind.Integer, v.Object.Get("i").Kind, "2 is an integer");
            Equal(JsonKind.Number, v.Object.Get("f").Kind, "2.0 is not an integer");
            Equal(JsonKind.Number, v.Object.Get("e").Kind, "1e2 is not an integer");
            Equal("é\n", v.Object.Get("s").String, "escapes");
        }

        static void LatestFrameSlotReplaces()
        {
            var slot = new LatestFrameSlot<string>();
            Check(slot.Offer("a") == null, "first offer replaces nothing");
            Equal("a", slot.Offer("b"), "second offer returns the stale frame");
            Equal("b", slot.Offer("c"), "third offer returns the stale frame");
            Equal(2L, slot.Replaced, "replaced count");
            Equal("c", slot.TryTake(), "the newest frame is taken");
            Check(slot.TryTake() == null, "the slot is empty after a take");
            Equal(1L, slot.Taken, "taken count");
        }

        static void BackoffGrows()
        {
            var b = new Backoff { Initial = TimeSpan.FromMilliseconds(100), Max = TimeSpan.FromMilliseconds(1000), Jitter = 0 };
            Equal(100.0, b.Delay(1).TotalMilliseconds, "first delay");
            Equal(200.0, b.Delay(2).TotalMilliseconds, "second delay");
            Equal(800.0, b.Delay(4).TotalMilliseconds, "fourth delay");
            Equal(1000.0, b.Delay(50).TotalMilliseconds, "capped delay");
            b.Jitter = 0.2;
            for (int i = 0; i < 50; i++)
            {
                double ms = b.Delay(2).TotalMilliseconds;
                Check(ms >= 160 && ms <= 240, "jitter within 20 %: " + ms);
            }
        }

        static void FrameEncodeRejects()
        {
            var payload = new byte[6];
            Action<Frame, string> rejects = (frame, what) =>
            {
                bool threw = false;
                try { FrameCodec.Encode(frame); } catch (ArgumentException) { threw = true; }
                Check(threw, "encoded a frame with " + what);
            };
            rejects(new Frame { Format = ImageFormat.Rgb8, Width = 3, Height = 1, Payload = payload, PayloadLength = 6 }, "a wrong raw size");
            rejects(new Frame { Format = ImageFormat.Rgb8, Width = 2, Height = 1, Payload = payload, PayloadLength = 6, Gaze = new Gaze(1.5f, 0) }, "gaze outside [0, 1]");
            rejects(new Frame { Format = ImageFormat.Rgb8, Width = 2, Height = 1, Payload = payload, PayloadLength = 6, CaptureTimeUs = 1UL << 53 }, "capture time 2^53");
            rejects(new Frame { Format = ImageFormat.Rgb8, Width = 2, Height = 1, Payload = payload, PayloadLength = 6, Pose = new Pose(float.NaN, 0, 0, 0, 0, 0, 1) }, "a NaN pose");
            var ok = FrameCodec.Encode(new Frame { Format = ImageFormat.Rgb8, Width = 2, Height = 1, Payload = payload, PayloadLength = 6, RowsBottomUp = true });
            Check(FrameCodec.Decode(ok, 0, ok.Length).RowsBottomUp, "ROWS_BOTTOM_UP round trip");
        }

        static void ExpectInvalid(string text, string code, string what)
        {
            try { Messages.DecodeClient(text); }
            catch (ProtocolException e)
            {
                Equal(code, e.Code, what);
                return;
            }
            throw new Exception("accepted " + what + ": " + text);
        }

        static void StreamSettingsNullResets()
        {
            // configure: null sends a field back to the server's default (smoothing, gaze crop: off)
            var off = new Configure { Settings = new StreamSettings { TopK = 3 }.ResetToDefault(StreamSettings.KeySmoothing, StreamSettings.KeyGazeCrop) };
            Equal("{\"type\":\"configure\",\"top_k\":3,\"smoothing\":null,\"gaze_crop\":null}", off.Encode(), "configure with nulls");
            Equal("{\"type\":\"configure\",\"smoothing\":null,\"gaze_crop\":null}",
                new Configure { Settings = StreamSettings.SmoothingAndGazeCropOff() }.Encode(), "SmoothingAndGazeCropOff");
            // a value wins over a reset of the same field; nulls are written in the wire order
            var both = new StreamSettings { BudgetMs = 8.3 }.ResetToDefault(StreamSettings.KeyGazeCrop, StreamSettings.KeyBudgetMs, StreamSettings.KeyTopK);
            Equal("{\"type\":\"configure\",\"budget_ms\":8.3,\"top_k\":null,\"gaze_crop\":null}", new Configure { Settings = both }.Encode(), "value over reset");
            var decoded = (Configure)Messages.DecodeClient("{\"type\":\"configure\",\"smoothing\":null,\"fps\":30.0}");
            Check(decoded.Settings.Reset.Contains("smoothing") && decoded.Settings.Reset.Count == 1, "decoded reset set");
            Equal(30.0, decoded.Settings.Fps.Value, "decoded fps");
            Equal("{\"type\":\"configure\",\"fps\":30.0,\"smoothing\":null}", decoded.Encode(), "decoded configure encodes back");
            bool threw = false;
            try { new StreamSettings().ResetToDefault("ema_alpha"); } catch (ArgumentException) { threw = true; }
            Check(threw, "ResetToDefault refuses a key that is not a setting");
            // the server's session reports smoothing/gaze crop off as null
            var configured = (Configured)Messages.DecodeServer("{\"type\":\"configured\",\"session\":{\"top_k\":3,\"budget_ms\":11.1,\"fps\":null,\"smoothing\":null,\"gaze_crop\":null}}");
            Check(!configured.Session.SmoothingEmaAlpha.HasValue && !configured.Session.GazeCropScale.HasValue && !configured.Session.Fps.HasValue, "session nulls");
        }

        static void TopKAnyPositiveInteger()
        {
            foreach (var k in new[] { 1L, 2L, 1000L, 1001L, 100000L, Messages.MaxJsonSafeInt })
            {
                var text = "{\"type\":\"configure\",\"top_k\":" + k + "}";
                var settings = ((Configure)Messages.DecodeClient(text)).Settings;
                Equal(k, settings.TopK.Value, "top_k " + k);
                Equal(text, new Configure { Settings = settings }.Encode(), "top_k " + k + " encodes back");
            }
            foreach (var bad in new[] { "0", "-1", "2.0", "1e2", "\"3\"", "true", "9007199254740992" })
                ExpectInvalid("{\"type\":\"hello\",\"protocol\":1,\"top_k\":" + bad + "}", ErrorCodes.InvalidMessage, "top_k " + bad);
            var hello = new ClientHello { ClientName = "t", ClientVersion = "1", Settings = new StreamSettings { TopK = 100000 } };
            Equal("{\"type\":\"hello\",\"protocol\":1,\"client\":{\"name\":\"t\",\"version\":\"1\"},\"top_k\":100000}", hello.Encode(), "hello with a large top_k");
        }

        static void MinProtocolNegotiation()
        {
            var hello = (ClientHello)Messages.DecodeClient("{\"type\":\"hello\",\"protocol\":1,\"min_protocol\":2}");
            Equal(2, hello.MinProtocol.Value, "min_protocol above protocol is well-formed");
            bool refused = false;
            try { Messages.NegotiateVersion(hello); }
            catch (ProtocolException e) { refused = e.Code == ErrorCodes.UnsupportedVersion; }
            Check(refused, "no common version: unsupported_version");
            Equal(1, Messages.NegotiateVersion(new ClientHello { Protocol = 2, MinProtocol = 1 }), "v2 client that speaks v1");
            Equal(1, Messages.NegotiateVersion(new ClientHello { Protocol = 1 }), "v1 client");
            Equal(2, Messages.NegotiateVersion(new ClientHello { Protocol = 3, MinProtocol = 1 }, new[] { 1, 2 }), "newest common version");
            Equal(255, ((ClientHello)Messages.DecodeClient("{\"type\":\"hello\",\"protocol\":1,\"min_protocol\":255}")).MinProtocol.Value, "min_protocol 255");
            ExpectInvalid("{\"type\":\"hello\",\"protocol\":1,\"min_protocol\":0}", ErrorCodes.InvalidMessage, "min_protocol 0");
            ExpectInvalid("{\"type\":\"hello\",\"protocol\":1,\"min_protocol\":256}", ErrorCodes.InvalidMessage, "min_protocol 256");
            ExpectInvalid("{\"type\":\"hello\",\"protocol\":1,\"min_protocol\":1.0}", ErrorCodes.InvalidMessage, "min_protocol 1.0");
        }

        static void ModelInputMapping()
        {
            const string head = "{\"type\":\"model_changed\",\"model\":{\"name\":\"m\",\"version\":\"v\",\"classes\":[\"a\"],\"input\":{\"width\":224,\"height\":224";
            var old = (ModelChanged)Messages.DecodeServer(head + "},\"provider\":\"CPUExecutionProvider\"}}");
            Equal(FrameMapping.CentreCrop, old.Model.Mapping, "a v1.0 server (no mapping) crops the centre");
            var stretch = (ModelChanged)Messages.DecodeServer(head + ",\"mapping\":\"stretch\"},\"provider\":\"\"}}");
            Equal(FrameMapping.Stretch, stretch.Model.Mapping, "mapping stretch");
            Equal("{\"width\":224,\"height\":224,\"mapping\":\"stretch\"}", JsonWriter.Write(stretch.Model.ToJson().Get("input")), "mapping encoded in input");
            var future = (ModelChanged)Messages.DecodeServer(head + ",\"mapping\":\"letterbox\"},\"provider\":\"\"}}");
            Equal("letterbox", future.Model.Mapping, "an unknown mapping is kept, not refused");
        }

        static void GazeCropRectUnits()
        {
            Action<int, int, double, double, double, int, int, int> rect = (w, h, u, v, s, left, top, side) =>
                Equal(new CropRect(left, top, side).ToString(), GazeCrop.Rect(w, h, u, v, s).ToString(), "GazeCrop.Rect(" + w + ", " + h + ", " + u + ", " + v + ", " + s + ")");
            rect(1280, 720, 0.5, 0.5, 0.5, 460, 180, 360);   // centred
            rect(1280, 720, 0.0, 0.0, 0.5, 0, 0, 360);       // shifted inside at a corner
            rect(1280, 720, 1.0, 1.0, 0.5, 920, 360, 360);
            rect(101, 51, 0.5, 0.5, 0.5, 38, 13, 26);        // side 25.5 -> 26 (half up); left 50.5 - 13 + 0.5 -> 38
            rect(100, 100, 0.5, 0.5, 0.25, 38, 38, 25);      // 50 - 12.5 = 37.5 -> 38: halves round up, not to even
            rect(3, 7, 0.5, 0.5, 0.1, 1, 3, 1);              // at least one pixel
            rect(640, 480, 0.7, 0.2, 1.0, 160, 0, 480);      // the whole shorter side
            rect(16, 8, 0.5f, 0.375f, 0.5, 6, 1, 4);         // a float gaze, as a frame carries it
            Equal(3, new CropRect(1, 3, 2).TopFromBottom(8), "bottom-left origin: 8 - 3 - 2");
            foreach (var bad in new Action[]
            {
                () => GazeCrop.Rect(0, 10, 0.5, 0.5, 0.5), () => GazeCrop.Rect(10, 10, 0.5, 0.5, 0.0),
                () => GazeCrop.Rect(10, 10, 0.5, 0.5, 1.5), () => GazeCrop.Rect(10, 10, 1.5, 0.5, 0.5),
                () => GazeCrop.Rect(10, 10, 0.5, double.NaN, 0.5),
            })
            {
                bool threw = false;
                try { bad(); } catch (ArgumentOutOfRangeException) { threw = true; }
                Check(threw, "GazeCrop.Rect accepted an argument outside its range");
            }
        }

        static void CloseCodePolicy()
        {
            Equal("1001,1002,1007,1008,1009,1011,4013", string.Join(",", CloseCodes.SentByServer), "codes the server sends");
            Equal(4013, CloseCodes.TryAgainLater, "try again later is 4013 (Mono cannot receive 1013)");
            foreach (var code in CloseCodes.SentByServer)
            {
                Check(code < 1012 || code > 1014, "a code Mono's ClientWebSocket cannot receive: " + code);
                Equal(code != CloseCodes.ProtocolError, CloseCodes.Reconnects(code), "reconnect after " + code);
                Check(CloseCodes.Reasons(code).Length > 0, "reasons for " + code);
            }
            Check(CloseCodes.Reconnects(null), "reconnect when there was no close frame");
            Check(CloseCodes.Reconnects(4999), "reconnect after an unknown application code");
            Equal("too_many_streams,shutting_down", string.Join(",", CloseCodes.Reasons(4013)), "4013 reasons");
            Equal("hello_required,slow_consumer", string.Join(",", CloseCodes.Reasons(1008)), "1008 reasons");
            Check(CloseCodes.IsClientFault(1007, "bad_json") && CloseCodes.IsClientFault(1009, "message_too_large")
                && CloseCodes.IsClientFault(1008, "hello_required"), "client faults");
            Check(!CloseCodes.IsClientFault(1008, "slow_consumer") && !CloseCodes.IsClientFault(1001, "shutting_down")
                && !CloseCodes.IsClientFault(4013, "too_many_streams") && !CloseCodes.IsClientFault(null, ""), "not client faults");
        }

        // --- golden vectors ------------------------------------------------------------------------

        static void GoldenVectors(string dir)
        {
            var specs = Directory.GetFiles(dir, "*.json");
            Array.Sort(specs, StringComparer.Ordinal);
            var counts = new Dictionary<string, int> { { "frame", 0 }, { "client", 0 }, { "server", 0 } };
            foreach (var specPath in specs)
            {
                string name = Path.GetFileNameWithoutExtension(specPath);
                if (name == GazeCropRectVectors) continue; // a list of geometry cases, checked below
                var spec = JsonReader.Parse(File.ReadAllText(specPath, Encoding.UTF8)).Object;
                string kind = spec.Get("kind").String;
                counts[kind]++;
                byte[] data = File.ReadAllBytes(Path.Combine(dir, name + (kind == "frame" ? ".bin" : ".txt")));
                Run("vector_" + name, () =>
                {
                    if (kind == "frame") FrameVector(spec, data);
                    else TextVector(kind, spec, data);
                });
            }
            // v1.1 geometry cases; until the vectors carry them, only the unit cases above check GazeCrop.
            string rects = Path.Combine(dir, GazeCropRectVectors + ".json");
            if (File.Exists(rects)) Run("vector_" + GazeCropRectVectors, () => GazeCropRectVector(rects));
            else Console.WriteLine("note: " + rects + " not found (protocol v1.0 vectors)");
            Console.WriteLine("vectors: " + counts["frame"] + " frame, " + counts["client"] + " client, " + counts["server"] + " server");
            Run("vector_set_complete", () =>
            {
                Check(counts["frame"] >= 15, "at least 15 frame vectors, found " + counts["frame"]);
                Check(counts["client"] >= 10, "at least 10 client vectors, found " + counts["client"]);
                Check(counts["server"] >= 8, "at least 8 server vectors, found " + counts["server"]);
            });
        }

        const string GazeCropRectVectors = "gaze_crop_rect";

        static void GazeCropRectVector(string path)
        {
            var cases = JsonReader.Parse(File.ReadAllText(path, Encoding.UTF8));
            Check(cases.Kind == JsonKind.Array && cases.Items.Count >= 10, "gaze_crop_rect.json holds at least 10 cases");
            foreach (var item in cases.Items)
            {
                var c = item.Object;
                int width = (int)c.Get("width").Integer, height = (int)c.Get("height").Integer;
                var rect = GazeCrop.Rect(width, height, c.Get("u").Number, c.Get("v").Number, c.Get("scale").Number);
                var expected = c.Get("rect").Items;
                string actual = "[" + rect.Left + ", " + rect.Top + ", " + rect.Side + "]";
                string wanted = "[" + expected[0].Integer + ", " + expected[1].Integer + ", " + expected[2].Integer + "]";
                Equal(wanted, actual, "GazeCrop.Rect for " + JsonWriter.Write(item));
                Check(rect.Left >= 0 && rect.Right <= width && rect.Top >= 0 && rect.Bottom <= height, "rect inside the frame: " + actual);
            }
            Console.WriteLine("gaze crop rects: " + cases.Items.Count + " cases");
        }

        static void FrameVector(JsonObject spec, byte[] data)
        {
            var error = spec.Get("error");
            if (error != null)
            {
                try
                {
                    FrameCodec.Decode(data, 0, data.Length);
                }
                catch (ProtocolException e)
                {
                    Equal(error.String, e.Code, "error code");
                    var frameId = spec.Get("frame_id");
                    Equal(frameId == null || frameId.IsNull ? (long?)null : frameId.Integer, e.FrameId, "error frame_id");
                    return;
                }
                throw new Exception("decoded without error, expected " + error.String);
            }
            var expect = spec.Get("expect").Object;
            var frame = FrameCodec.Decode(data, 0, data.Length);
            Equal(expect.Get("frame_id").Integer, (long)frame.FrameId, "frame_id");
            Equal(expect.Get("capture_time_us").Integer, (long)frame.CaptureTimeUs, "capture_time_us");
            Equal(expect.Get("image_format").String, FrameCodec.WireName(frame.Format), "image_format");
            Equal(expect.Get("width").Integer, (long)frame.Width, "width");
            Equal(expect.Get("height").Integer, (long)frame.Height, "height");
            Equal(expect.Get("header_len").Integer, (long)frame.HeaderLength, "header_len");
            Equal(expect.Get("payload_len").Integer, (long)frame.PayloadLength, "payload_len");
            Equal(expect.Get("rows_bottom_up").Bool, frame.RowsBottomUp, "rows_bottom_up");
            string sha;
            using (var hash = SHA256.Create())
                sha = BitConverter.ToString(hash.ComputeHash(frame.Payload, frame.PayloadOffset, frame.PayloadLength)).Replace("-", "").ToLowerInvariant();
            Equal(expect.Get("payload_sha256").String, sha, "payload_sha256");
            var pose = expect.Get("pose");
            Equal(pose.IsNull, !frame.Pose.HasValue, "pose presence");
            if (frame.Pose.HasValue)
            {
                var p = frame.Pose.Value;
                var actual = new[] { p.PositionX, p.PositionY, p.PositionZ, p.RotationX, p.RotationY, p.RotationZ, p.RotationW };
                var position = pose.Object.Get("position").Items;
                var rotation = pose.Object.Get("rotation").Items;
                for (int i = 0; i < 3; i++) Equal((float)position[i].Number, actual[i], "pose.position[" + i + "]");
                for (int i = 0; i < 4; i++) Equal((float)rotation[i].Number, actual[3 + i], "pose.rotation[" + i + "]");
            }
            var gaze = expect.Get("gaze");
            Equal(gaze.IsNull, !frame.Gaze.HasValue, "gaze presence");
            if (frame.Gaze.HasValue)
            {
                Equal((float)gaze.Items[0].Number, frame.Gaze.Value.U, "gaze u");
                Equal((float)gaze.Items[1].Number, frame.Gaze.Value.V, "gaze v");
            }
            var back = spec.Get("encodes_back");
            if (back != null && back.Bool)
            {
                var encoded = FrameCodec.Encode(frame);
                Equal(Convert.ToBase64String(data), Convert.ToBase64String(encoded), "re-encoded bytes");
            }
        }

        static void TextVector(string kind, JsonObject spec, byte[] data)
        {
            var error = spec.Get("error");
            if (error != null)
            {
                try
                {
                    if (kind == "client") Messages.DecodeClient(data, 0, data.Length);
                    else Messages.DecodeServer(data, 0, data.Length);
                }
                catch (ProtocolException e)
                {
                    Equal(error.String, e.Code, "error code");
                    return;
                }
                throw new Exception("decoded without error, expected " + error.String);
            }
            JsonObject decoded = kind == "client"
                ? Messages.DecodeClient(data, 0, data.Length).ToJson()
                : Messages.DecodeServer(data, 0, data.Length).ToJson();
            var expect = spec.Get("expect");
            Check(expect.DeepEquals(JsonValue.Of(decoded)), "decoded " + JsonWriter.Write(decoded) + " != expected " + JsonWriter.Write(expect));
            var back = spec.Get("encodes_back");
            if (back != null && back.Bool)
                Equal(Encoding.UTF8.GetString(data), JsonWriter.Write(decoded), "re-encoded text");
            var negotiation = spec.Get("negotiation"); // what a v1 server makes of this hello
            if (negotiation != null)
            {
                var hello = (ClientHello)Messages.DecodeClient(data, 0, data.Length);
                try { Messages.NegotiateVersion(hello); }
                catch (ProtocolException e)
                {
                    Equal(negotiation.String, e.Code, "negotiation error");
                    return;
                }
                throw new Exception("negotiation found a version, expected " + negotiation.String);
            }
        }

        // --- capture session -----------------------------------------------------------------------

        static void CaptureWriter()
        {
            string dir = Args["capture-out"];
            byte[] jpeg = Args.ContainsKey("frames") ? File.ReadAllBytes(Path.Combine(Args["frames"], "red.jpg")) : new byte[] { 0xff, 0xd8, 0xff, 0xd9 };
            var info = new CaptureSessionInfo
            {
                Source = "unity-recorder " + RecognitionClient.Version + " (mono test)",
                Width = 64,
                Height = 48,
                VerticalFovDeg = 96.0,
                Classes = new[] { "red", "green", "blue" },
                Notes = "written by unity_client/Tests/Core",
                CreatedUtc = new DateTime(2025, 6, 1, 10, 0, 0, DateTimeKind.Utc),
                Extra = new JsonObject().Set("recorder", "CoreTests"),
            };
            using (var writer = new CaptureSessionWriter(dir, info))
            {
                writer.AddFrame(jpeg, jpeg.Length, "red", 0.0, new Pose(0.12f, 1.61f, -0.85f, 0.05f, 0.12f, 0f, 0.991f), new Gaze(0.52f, 0.47f), "train");
                writer.AddFrame(jpeg, jpeg.Length, "green", 0.0111, null, null, null);
                writer.AddFrame(jpeg, jpeg.Length, "blue", 1.5, new Pose(0, 1.7f, 0, 0, 0.70710677f, 0, 0.70710677f), new Gaze(0.5f, 0.5f), "val");
                foreach (var bad in new Action[]
                {
                    () => writer.AddFrame(jpeg, jpeg.Length, "lamp", 2.0),
                    () => writer.AddFrame(jpeg, jpeg.Length, "red", -1.0),
                    () => writer.AddFrame(jpeg, jpeg.Length, "red", 2.0, new Pose(0, 0, 0, 0, 0, 0, 2f)),
                    () => writer.AddFrame(jpeg, jpeg.Length, "red", 2.0, null, new Gaze(1.5f, 0)),
                    () => writer.AddFrame(jpeg, jpeg.Length, "red", 2.0, null, null, "test"),
                })
                {
                    bool threw = false;
                    try { bad(); } catch (CaptureFormatException) { threw = true; }
                    Check(threw, "the writer accepted a bad record");
                }
                Equal(3, writer.FrameCount, "frames written");
            }
            bool refused = false;
            try { new CaptureSessionWriter(dir, info).Dispose(); } catch (CaptureFormatException) { refused = true; }
            Check(refused, "a second writer on the same folder is refused");
        }

        // --- live server ---------------------------------------------------------------------------

        static void Pump(RecognitionClient client, Func<bool> done, double seconds, string what)
        {
            var deadline = DateTime.UtcNow.AddSeconds(seconds);
            while (!done())
            {
                client.DispatchPending();
                if (DateTime.UtcNow > deadline) throw new Exception("timed out waiting for " + what + " (state " + client.State + ")");
                Thread.Sleep(5);
            }
            client.DispatchPending();
        }

        static void LiveColourPredictions()
        {
            var options = new ClientOptions
            {
                ServerUri = new Uri(Args["server"]),
                Token = Args["token"],
                ClientName = "unity-client-tests",
                TargetFps = 60,
                MaxInFlight = 1,
                Settings = new StreamSettings { TopK = 2, BudgetMs = 2000, Fps = 60 },
            };
            using (var client = new RecognitionClient(options))
            {
                ServerHello hello = null;
                var results = new List<FrameResult>();
                var disconnects = new List<string>();
                double pingMs = -1;
                EffectiveSettings configured = null;
                client.Connected += h => hello = h;
                client.ResultReceived += r => results.Add(r);
                client.Disconnected += why => disconnects.Add(why);
                client.PongReceived += ms => pingMs = ms;
                client.Configured += s => configured = s;
                client.Start();
                Pump(client, () => hello != null, 20, "the server hello (disconnects: " + string.Join("; ", disconnects) + ")");
                Equal("red,green,blue", string.Join(",", client.Model.Classes), "model classes");
                Equal(2, client.Session.TopK, "session top_k");

                var pose = new Pose(1.5f, 1.625f, -2.25f, 0f, 0.38268343f, 0f, 0.9238795f);
                var gaze = new Gaze(0.25f, 0.75f);
                foreach (var colour in new[] { "red", "green", "blue", "red" })
                {
                    byte[] jpeg = File.ReadAllBytes(Path.Combine(Args["frames"], colour + ".jpg"));
                    int before = results.Count;
                    client.SubmitFrame(new OutgoingFrame
                    {
                        Payload = jpeg, PayloadLength = jpeg.Length, Width = 64, Height = 48, Format = ImageFormat.Jpeg,
                        Pose = pose, Gaze = gaze, UserState = colour,
                    });
                    Pump(client, () => results.Count > before, 20, "the result for " + colour);
                    var r = results[results.Count - 1];
                    Equal(colour, (string)r.UserState, "user state travels with the frame");
                    Equal(ResultStatus.Ok, r.Result.Status, "status (" + r.Result.ErrorCode + " " + r.Result.ErrorMessage + ")");
                    Equal(colour, r.Result.Top.Label, "top label");
                    Equal(2, r.Result.TopK.Count, "top_k entries");
                    Check(r.Result.PosePosition != null && (float)r.Result.PosePosition[2] == -2.25f && (float)r.Result.PoseRotation[1] == 0.38268343f, "pose echoed");
                    Check(r.Result.Gaze != null && (float)r.Result.Gaze[0] == 0.25f && (float)r.Result.Gaze[1] == 0.75f, "gaze echoed");
                    Check(r.LatencyMs > 0 && r.LatencyMs < 20000, "latency measured: " + r.LatencyMs);
                    Check(r.RoundTripMs > 0 && r.Result.Timing("total").HasValue, "round trip and server timings");
                }
                client.Ping();
                Pump(client, () => pingMs >= 0, 10, "the pong");
                client.Configure(new StreamSettings { BudgetMs = 1500 });
                Pump(client, () => configured != null, 10, "configured");
                Equal(1500.0, configured.BudgetMs, "configured budget");
                var stats = client.GetStats();
                Equal(4L, stats.FramesSent, "frames sent");
                Equal(4L, stats.ResultsOk, "ok results");
                Equal(0L, stats.FramesReplaced, "nothing dropped when waiting for each answer");
                client.Stop(TimeSpan.FromSeconds(5));
                Equal(ConnectionState.Stopped, client.State, "state after Stop");
                client.DispatchPending();
                Check(disconnects.Count == 1, "one disconnect, on Stop: " + string.Join("; ", disconnects));
            }
        }

        static void WrongTokenBackoff()
        {
            var options = new ClientOptions
            {
                ServerUri = new Uri(Args["server"]),
                Token = "not-the-token",
                Backoff = new Backoff { Initial = TimeSpan.FromMilliseconds(50), Max = TimeSpan.FromMilliseconds(400), Jitter = 0 },
            };
            using (var client = new RecognitionClient(options))
            {
                var disconnects = new List<string>();
                bool connected = false;
                client.Disconnected += why => disconnects.Add(why);
                client.Connected += h => connected = true;
                client.Start();
                Pump(client, () => disconnects.Count >= 3, 15, "three refused attempts");
                Check(!connected, "a wrong token must not connect");
                Check(client.GetStats().ConnectAttempts >= 3, "reconnect attempts");
                // Mono reports a refused upgrade as "Unable to connect to the remote server" without the
                // HTTP status; the pytest side checks the server counted the attempts as unauthorized.
                Check(disconnects[0].Length > 0, "the refusal has a reason");
                bool accepted = client.SubmitFrame(new OutgoingFrame { Payload = new byte[] { 1 }, PayloadLength = 1, Width = 1, Height = 1 });
                Check(!accepted && client.GetStats().FramesDiscardedOffline == 1, "frames are discarded while offline");
            }
        }

        static void SlowServerDrops()
        {
            byte[] jpeg = File.ReadAllBytes(Path.Combine(Args["frames"], "red.jpg"));
            var options = new ClientOptions
            {
                ServerUri = new Uri(Args["slow-server"]),
                TargetFps = 0, // no pacing: only the in-flight cap holds frames back
                MaxInFlight = 2,
                Settings = new StreamSettings { BudgetMs = 30000 },
            };
            using (var client = new RecognitionClient(options))
            {
                var results = new List<FrameResult>();
                bool connected = false;
                client.Connected += h => connected = true;
                client.ResultReceived += r => results.Add(r);
                int recycled = 0;
                client.RecycleFrame = f => Interlocked.Increment(ref recycled);
                client.Start();
                Pump(client, () => connected, 20, "the slow server's hello");
                var until = DateTime.UtcNow.AddSeconds(2.5);
                int submitted = 0;
                while (DateTime.UtcNow < until)
                {
                    client.SubmitFrame(new OutgoingFrame { Payload = jpeg, PayloadLength = jpeg.Length, Width = 64, Height = 48 });
                    submitted++;
                    client.DispatchPending();
                    Thread.Sleep(2);
                }
                Pump(client, () => { var s = client.GetStats(); return !client.HasPendingFrame && s.InFlight == 0 && s.ResultsReceived >= s.FramesSent; }, 30, "the in-flight frames' answers");
                Thread.Sleep(100);
                client.DispatchPending();
                var stats = client.GetStats();
                Console.WriteLine("slow server: submitted " + submitted + ", sent " + stats.FramesSent + ", replaced " + stats.FramesReplaced
                    + ", answered " + stats.ResultsReceived + " (ok " + stats.ResultsOk + ", stale " + stats.ResultsDroppedStale
                    + ", late " + stats.ResultsLate + "), max in flight " + stats.MaxInFlightSeen + ", last round trip " + stats.LastRoundTripMs.ToString("F1") + " ms");
                Check(stats.FramesReplaced > 0, "the client dropped stale frames itself");
                Check(stats.FramesSent > 0, "frames were sent");
                Equal(stats.FramesSent, stats.ResultsReceived, "every sent frame was answered");
                Equal(stats.FramesSent, (long)results.Count, "every answer was dispatched");
                Equal(0L, stats.FramesLost, "no frame lost");
                Check(stats.MaxInFlightSeen <= 2, "in-flight cap held: " + stats.MaxInFlightSeen);
                Check(stats.ResultsOk > 0, "some frames answered ok");
                foreach (var r in results) if (r.Result.IsOk) Equal("red", r.Result.Top.Label, "slow model still answers red");
                Equal(stats.FramesSubmitted, stats.FramesSent + stats.FramesReplaced, "submitted = sent + replaced");
                Equal((long)recycled, stats.FramesSent + stats.FramesReplaced, "every frame buffer was recycled");
            }
        }
    }
}
