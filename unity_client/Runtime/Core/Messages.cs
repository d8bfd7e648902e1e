// JSON messages of wire protocol v1, document revision 1.1 (docs/protocol.md sections 3 and 4): the client's hello, configure
// and ping (encoded byte for byte like server/protocol.py), and the server's hello, result, error, pong,
// configured and model_changed (decoded, unknown fields ignored). The client-message decoder mirrors the
// server's validation so the shared golden vectors can check both directions. Plain C#, no UnityEngine.
using System;
using System.Collections.Generic;
using System.Text;

namespace VrRecognition.Core
{
    /// <summary>Per-stream options asked for in hello/configure. A null value is not sent: in hello the
    /// server applies its default, in configure the setting stays as it is. To send a field as JSON null
    /// (configure: back to the server's default; for smoothing and gaze crop that is off), name it with
    /// ResetToDefault (protocol v1.1).</summary>
    public sealed class StreamSettings
    {
        /// <summary>The settings' wire keys, in the order they are written.</summary>
        public const string KeyTopK = "top_k", KeyBudgetMs = "budget_ms", KeyFps = "fps", KeySmoothing = "smoothing", KeyGazeCrop = "gaze_crop";
        public static readonly string[] Keys = { KeyTopK, KeyBudgetMs, KeyFps, KeySmoothing, KeyGazeCrop };

        /// <summary>Labels per result: any integer >= 1 (below 2^53); the server clamps it to its class
        /// count and limits.max_top_k.</summary>
        public long? TopK;
        public double? BudgetMs;
        public double? Fps;
        /// <summary>Weight of the newest frame's scores in the server-side moving average; null = not sent.</summary>
        public double? SmoothingEmaAlpha;
        /// <summary>Side of the gaze crop as a fraction of the shorter image side; null = not sent.</summary>
        public double? GazeCropScale;
        /// <summary>Wire keys sent as null (those without a value here). Decoding fills it from the nulls
        /// a message carries.</summary>
        public readonly HashSet<string> Reset = new HashSet<string>(StringComparer.Ordinal);

        /// <summary>Sends these settings as null: in configure, back to the server's default (smoothing
        /// and gaze crop: off), e.g. new StreamSettings().ResetToDefault(StreamSettings.KeySmoothing).</summary>
        public StreamSettings ResetToDefault(params string[] keys)
        {
            foreach (var key in keys)
            {
                if (Array.IndexOf(Keys, key) < 0) throw new ArgumentException("not a stream setting: " + key);
                Reset.Add(key);
            }
            return this;
        }

        /// <summary>Configure settings that switch smoothing and the gaze crop off.</summary>
        public static StreamSettings SmoothingAndGazeCropOff() { return new StreamSettings().ResetToDefault(KeySmoothing, KeyGazeCrop); }

        public void WriteTo(JsonObject obj)
        {
            if (TopK.HasValue) obj.Set(KeyTopK, TopK.Value);
            if (BudgetMs.HasValue) obj.Set(KeyBudgetMs, BudgetMs.Value);
            if (Fps.HasValue) obj.Set(KeyFps, Fps.Value);
            if (SmoothingEmaAlpha.HasValue) obj.Set(KeySmoothing, new JsonObject().Set("ema_alpha", SmoothingEmaAlpha.Value));
            if (GazeCropScale.HasValue) obj.Set(KeyGazeCrop, new JsonObject().Set("scale", GazeCropScale.Value));
            foreach (var key in Keys)
                if (Reset.Contains(key) && !obj.ContainsKey(key)) obj.Set(key, JsonValue.Null);
        }

        public static StreamSettings FromJson(JsonObject obj)
        {
            var smoothing = Fields.GetObject(obj, KeySmoothing);
            var gazeCrop = Fields.GetObject(obj, KeyGazeCrop);
            double? alpha = smoothing != null ? Fields.GetNumber(smoothing, "ema_alpha", 0.0, 1.0) : null;
            if (smoothing != null && (!alpha.HasValue || alpha.Value <= 0.0)) throw Fields.Invalid("\"smoothing.ema_alpha\" must be a number in (0, 1]");
            double? scale = gazeCrop != null ? Fields.GetNumber(gazeCrop, "scale", 0.0, 1.0) : null;
            if (gazeCrop != null && (!scale.HasValue || scale.Value <= 0.0)) throw Fields.Invalid("\"gaze_crop.scale\" must be a number in (0, 1]");
            double? budget = Fields.GetNumber(obj, KeyBudgetMs, 0.0, 60000.0);
            if (budget.HasValue && budget.Value <= 0) throw Fields.Invalid("\"budget_ms\" must be positive");
            double? fps = Fields.GetNumber(obj, KeyFps, 0.0, 1000.0);
            if (fps.HasValue && fps.Value <= 0) throw Fields.Invalid("\"fps\" must be positive");
            long? topK = Fields.GetInteger(obj, KeyTopK, 1, Messages.MaxJsonSafeInt); // the server clamps it
            var settings = new StreamSettings
            {
                TopK = topK,
                BudgetMs = budget,
                Fps = fps,
                SmoothingEmaAlpha = alpha,
                GazeCropScale = scale,
            };
            foreach (var key in Keys)
            {
                var value = obj.Get(key);
                if (value != null && value.IsNull) settings.Reset.Add(key);
            }
            return settings;
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Client to server
    // ------------------------------------------------------------------------------------------------

    public abstract class ClientMessage
    {
        public abstract JsonObject ToJson();
        /// <summary>Compact JSON text, exactly as server/protocol.py's encode_client_message writes it.</summary>
        public string Encode() { return JsonWriter.Write(ToJson()); }
    }

    public sealed class ClientHello : ClientMessage
    {
        public int Protocol = 1;
        public int? MinProtocol;
        public string ClientName = "unknown";
        public string ClientVersion = "";
        public StreamSettings Settings = new StreamSettings();

        public override JsonObject ToJson()
        {
            var obj = new JsonObject().Set("type", "hello").Set("protocol", Protocol);
            if (MinProtocol.HasValue) obj.Set("min_protocol", MinProtocol.Value);
            obj.Set("client", new JsonObject().Set("name", ClientName).Set("version", ClientVersion));
            Settings.WriteTo(obj);
            return obj;
        }
    }

    public sealed class Configure : ClientMessage
    {
        public StreamSettings Settings = new StreamSettings();

        public override JsonObject ToJson()
        {
            var obj = new JsonObject().Set("type", "configure");
            Settings.WriteTo(obj);
            return obj;
        }
    }

    public sealed class Ping : ClientMessage
    {
        /// <summary>An integer (below 2^53) or a string of at most 64 characters.</summary>
        public JsonValue Id = JsonValue.Of(0L);
        public long? ClientTimeUs;

        public override JsonObject ToJson()
        {
            var obj = new JsonObject().Set("type", "ping").Set("id", Id);
            if (ClientTimeUs.HasValue) obj.Set("client_time_us", ClientTimeUs.Value);
            return obj;
        }
    }

    // ------------------------------------------------------------------------------------------------
    // Server to client
    // ------------------------------------------------------------------------------------------------

    public abstract class ServerMessage
    {
        public abstract string Type { get; }
        /// <summary>The message as server/protocol.py would encode it (used by the tests).</summary>
        public abstract JsonObject ToJson();
    }

    /// <summary>How a frame of any aspect ratio becomes the model input (model.input.mapping, v1.1).</summary>
    public static class FrameMapping
    {
        /// <summary>Only the centred window of the model input's aspect ratio is classified (a 16:9
        /// frame loses its sides for a square model). The default, and what servers before v1.1 did.</summary>
        public const string CentreCrop = "centre_crop";
        /// <summary>The whole frame is resized to the model input.</summary>
        public const string Stretch = "stretch";
    }

    public sealed class ModelInfo
    {
        public string Name = "", Version = "", Provider = "";
        public string[] Classes = new string[0];
        public int InputWidth, InputHeight;
        /// <summary>FrameMapping.CentreCrop or FrameMapping.Stretch (a later server may add others);
        /// CentreCrop when the server does not say (servers before v1.1).</summary>
        public string Mapping = FrameMapping.CentreCrop;

        public JsonObject ToJson()
        {
            var classes = new List<JsonValue>();
            foreach (var c in Classes) classes.Add(JsonValue.Of(c));
            return new JsonObject().Set("name", Name).Set("version", Version).Set("classes", JsonValue.Of(classes))
                .Set("input", new JsonObject().Set("width", InputWidth).Set("height", InputHeight).Set("mapping", Mapping))
                .Set("provider", Provider);
        }

        public static ModelInfo FromJson(JsonValue value)
        {
            if (value == null || value.Kind != JsonKind.Object) throw Fields.Invalid("\"model\" must be an object");
            var obj = value.Object;
            var classes = obj.Get("classes");
            if (classes == null || classes.Kind != JsonKind.Array) throw Fields.Invalid("\"model.classes\" must be a list of strings");
            var names = new string[classes.Items.Count];
            for (int i = 0; i < names.Length; i++)
            {
                if (classes.Items[i].Kind != JsonKind.String) throw Fields.Invalid("\"model.classes\" must be a list of strings");
                names[i] = classes.Items[i].String;
            }
            var size = Fields.GetObject(obj, "input") ?? new JsonObject();
            return new ModelInfo
            {
                Name = Fields.GetString(obj, "name", 256, ""),
                Version = Fields.GetString(obj, "version", 256, ""),
                Classes = names,
                InputWidth = (int)(Fields.GetInteger(size, "width", 1, 65535) ?? 0),
                InputHeight = (int)(Fields.GetInteger(size, "height", 1, 65535) ?? 0),
                Provider = Fields.GetString(obj, "provider", 256, ""),
                Mapping = Fields.GetString(size, "mapping", 32, FrameMapping.CentreCrop), // absent from v1.0 servers
            };
        }
    }

    /// <summary>The settings the server applies to this stream, after defaults and clamping.</summary>
    public sealed class EffectiveSettings
    {
        public int TopK;
        public double BudgetMs;
        public double? Fps, SmoothingEmaAlpha, GazeCropScale;

        public JsonObject ToJson()
        {
            return new JsonObject().Set("top_k", TopK).Set("budget_ms", BudgetMs)
                .Set("fps", Fps.HasValue ? JsonValue.Of(Fps.Value) : JsonValue.Null)
                .Set("smoothing", SmoothingEmaAlpha.HasValue ? JsonValue.Of(new JsonObject().Set("ema_alpha", SmoothingEmaAlpha.Value)) : JsonValue.Null)
                .Set("gaze_crop", GazeCropScale.HasValue ? JsonValue.Of(new JsonObject().Set("scale", GazeCropScale.Value)) : JsonValue.Null);
        }

        public static EffectiveSettings FromJson(JsonValue value)
        {
            if (value == null || value.Kind != JsonKind.Object) throw Fields.Invalid("\"session\" must be an object");
            var asked = StreamSettings.FromJson(value.Object);
            if (!asked.TopK.HasValue || !asked.BudgetMs.HasValue) throw Fields.Invalid("\"session\" needs \"top_k\" and \"budget_ms\"");
            return new EffectiveSettings
            {
                TopK = (int)Math.Min(asked.TopK.Value, int.MaxValue), // clamped by the server to limits.max_top_k
                BudgetMs = asked.BudgetMs.Value,
                Fps = asked.Fps,
                SmoothingEmaAlpha = asked.SmoothingEmaAlpha,
                GazeCropScale = asked.GazeCropScale,
            };
        }
    }

    public sealed class Limits
    {
        public long MaxMessageBytes = 16 * 1024 * 1024, MaxControlBytes = 65536, MaxWidth = 8192, MaxHeight = 8192,
            MaxPixels = 4096 * 4096, MaxTopK = 100;
        /// <summary>Longest side over shortest side a frame may have; more elongated is bad_dimensions (v1.1).</summary>
        public double MaxAspectRatio = 4.0;
        /// <summary>Largest progressive JPEG (width x height); larger is image_too_large: send baseline (v1.1).</summary>
        public long MaxProgressivePixels = 1920 * 1080;
        public string[] Formats = { "jpeg", "rgb8", "rgba8" };

        public JsonObject ToJson()
        {
            var formats = new List<JsonValue>();
            foreach (var f in Formats) formats.Add(JsonValue.Of(f));
            return new JsonObject().Set("max_message_bytes", MaxMessageBytes).Set("max_control_bytes", MaxControlBytes)
                .Set("max_width", MaxWidth).Set("max_height", MaxHeight).Set("max_pixels", MaxPixels)
                .Set("max_aspect_ratio", MaxAspectRatio).Set("max_progressive_pixels", MaxProgressivePixels)
                .Set("max_top_k", MaxTopK).Set("formats", JsonValue.Of(formats));
        }

        public static Limits FromJson(JsonValue value)
        {
            var limits = new Limits();
            if (value == null) return limits;
            if (value.Kind != JsonKind.Object) throw Fields.Invalid("\"limits\" must be an object");
            var obj = value.Object;
            var formats = obj.Get("formats");
            if (formats != null)
            {
                if (formats.Kind != JsonKind.Array) throw Fields.Invalid("\"limits.formats\" must be a list of strings");
                var names = new string[formats.Items.Count];
                for (int i = 0; i < names.Length; i++)
                {
                    if (formats.Items[i].Kind != JsonKind.String) throw Fields.Invalid("\"limits.formats\" must be a list of strings");
                    names[i] = formats.Items[i].String;
                }
                limits.Formats = names;
            }
            limits.MaxMessageBytes = Fields.GetInteger(obj, "max_message_bytes", 0, long.MaxValue) ?? limits.MaxMessageBytes;
            limits.MaxControlBytes = Fields.GetInteger(obj, "max_control_bytes", 0, long.MaxValue) ?? limits.MaxControlBytes;
            limits.MaxWidth = Fields.GetInteger(obj, "max_width", 0, long.MaxValue) ?? limits.MaxWidth;
            limits.MaxHeight = Fields.GetInteger(obj, "max_height", 0, long.MaxValue) ?? limits.MaxHeight;
            limits.MaxPixels = Fields.GetInteger(obj, "max_pixels", 0, long.MaxValue) ?? limits.MaxPixels;
            limits.MaxTopK = Fields.GetInteger(obj, "max_top_k", 0, long.MaxValue) ?? limits.MaxTopK;
            limits.MaxProgressivePixels = Fields.GetInteger(obj, "max_progressive_pixels", 0, long.MaxValue) ?? limits.MaxProgressivePixels;
            limits.MaxAspectRatio = Fields.GetNumber(obj, "max_aspect_ratio", 1.0, 65535.0) ?? limits.MaxAspectRatio;
            return limits;
        }
    }

    public sealed class ServerHello : ServerMessage
    {
        public int Protocol = 1;
        public string ServerName = "", ServerVersion = "";
        public ModelInfo Model;
        public EffectiveSettings Session;
        public Limits Limits;
        public override string Type { get { return "hello"; } }

        public override JsonObject ToJson()
        {
            return new JsonObject().Set("type", "hello").Set("protocol", Protocol)
                .Set("server", new JsonObject().Set("name", ServerName).Set("version", ServerVersion))
                .Set("model", Model.ToJson()).Set("session", Session.ToJson()).Set("limits", Limits.ToJson());
        }
    }

    public sealed class Prediction
    {
        public string Label;
        public int Index;
        public double Score;
    }

    /// <summary>Result status values; a newer server may add others (treat those as errors).</summary>
    public static class ResultStatus
    {
        public const string Ok = "ok";
        public const string DroppedStale = "dropped_stale";
        public const string Late = "late";
        public const string Error = "error";
    }

    /// <summary>The answer to one frame (docs/protocol.md 4.2).</summary>
    public sealed class Result : ServerMessage
    {
        public uint FrameId;
        public long CaptureTimeUs;
        public string Status = ResultStatus.Ok;
        public List<Prediction> TopK = new List<Prediction>();
        /// <summary>Server time per stage in ms, in the server's order; unknown stages are kept too.</summary>
        public List<KeyValuePair<string, double>> TimingsMs = new List<KeyValuePair<string, double>>();
        /// <summary>The frame's pose echoed: position x, y, z then rotation x, y, z, w; null without HAS_POSE.</summary>
        public double[] PosePosition, PoseRotation;
        public double[] Gaze;
        public string ModelVersion = "";
        public string ErrorCode, ErrorMessage;
        public override string Type { get { return "result"; } }

        public bool IsOk { get { return Status == ResultStatus.Ok; } }
        public Prediction Top { get { return TopK.Count > 0 ? TopK[0] : null; } }

        public double? Timing(string stage)
        {
            foreach (var pair in TimingsMs) if (pair.Key == stage) return pair.Value;
            return null;
        }

        public override JsonObject ToJson()
        {
            var topK = new List<JsonValue>();
            foreach (var p in TopK)
                topK.Add(JsonValue.Of(new JsonObject().Set("label", p.Label).Set("index", p.Index).Set("score", p.Score)));
            var timings = new JsonObject();
            foreach (var pair in TimingsMs) timings.Set(pair.Key, pair.Value);
            var obj = new JsonObject().Set("type", "result").Set("frame_id", (long)FrameId).Set("capture_time_us", CaptureTimeUs)
                .Set("status", Status).Set("top_k", JsonValue.Of(topK)).Set("timings_ms", timings)
                .Set("pose", PosePosition == null ? JsonValue.Null : JsonValue.Of(new JsonObject()
                    .Set("position", Numbers(PosePosition)).Set("rotation", Numbers(PoseRotation))))
                .Set("gaze", Gaze == null ? JsonValue.Null : Numbers(Gaze))
                .Set("model_version", ModelVersion);
            if (ErrorCode != null) obj.Set("error", new JsonObject().Set("code", ErrorCode).Set("message", ErrorMessage ?? ""));
            return obj;
        }

        static JsonValue Numbers(double[] values)
        {
            var items = new List<JsonValue>();
            foreach (var v in values) items.Add(JsonValue.Of(v));
            return JsonValue.Of(items);
        }
    }

    /// <summary>An error not tied to a frame, or a fatal one sent just before the server closes.</summary>
    public sealed class ErrorMessage : ServerMessage
    {
        public string Code = "", Message = "";
        public long? FrameId;
        public bool Fatal;
        public override string Type { get { return "error"; } }

        public override JsonObject ToJson()
        {
            return new JsonObject().Set("type", "error").Set("code", Code).Set("message", Message)
                .Set("frame_id", FrameId.HasValue ? JsonValue.Of(FrameId.Value) : JsonValue.Null).Set("fatal", Fatal);
        }
    }

    public sealed class Pong : ServerMessage
    {
        public JsonValue Id;
        public long? ClientTimeUs;
        public long ServerTimeUs;
        public override string Type { get { return "pong"; } }

        public override JsonObject ToJson()
        {
            return new JsonObject().Set("type", "pong").Set("id", Id)
                .Set("client_time_us", ClientTimeUs.HasValue ? JsonValue.Of(ClientTimeUs.Value) : JsonValue.Null)
                .Set("server_time_us", ServerTimeUs);
        }
    }

    public sealed class Configured : ServerMessage
    {
        public EffectiveSettings Session;
        public override string Type { get { return "configured"; } }
        public override JsonObject ToJson() { return new JsonObject().Set("type", "configured").Set("session", Session.ToJson()); }
    }

    /// <summary>The server hot-reloaded its model; later results come from this one.</summary>
    public sealed class ModelChanged : ServerMessage
    {
        public ModelInfo Model;
        public override string Type { get { return "model_changed"; } }
        public override JsonObject ToJson() { return new JsonObject().Set("type", "model_changed").Set("model", Model.ToJson()); }
    }

    public static class Messages
    {
        public const int DefaultMaxControlBytes = 64 * 1024;
        public const long MaxJsonSafeInt = (1L << 53) - 1;
        static readonly UTF8Encoding Utf8 = new UTF8Encoding(false);

        /// <summary>Strict JSON object with a string "type": the server's parse_json_object rules.</summary>
        public static JsonObject ParseObject(byte[] utf8, int offset, int count, int maxBytes)
        {
            if (count > maxBytes) throw new ProtocolException(ErrorCodes.MessageTooLarge, "JSON message is " + count + " bytes, limit " + maxBytes);
            JsonValue value;
            try { value = JsonReader.Parse(utf8, offset, count, JsonReader.DefaultMaxDepth); }
            catch (JsonException e) { throw new ProtocolException(ErrorCodes.BadJson, "not valid JSON: " + e.Message); }
            if (value.Kind != JsonKind.Object) throw new ProtocolException(ErrorCodes.BadJson, "a JSON message must be an object");
            var type = value.Object.Get("type");
            if (type == null || type.Kind != JsonKind.String) throw Fields.Invalid("JSON message needs a string \"type\"");
            return value.Object;
        }

        public static ServerMessage DecodeServer(string text) { var b = Utf8.GetBytes(text); return DecodeServer(b, 0, b.Length); }

        /// <summary>Parses a server message; unknown fields are ignored so newer servers stay readable.</summary>
        public static ServerMessage DecodeServer(byte[] utf8, int offset, int count, int maxBytes = 16 * 1024 * 1024)
        {
            var obj = ParseObject(utf8, offset, count, maxBytes);
            string kind = obj.Get("type").String;
            switch (kind)
            {
                case "result": return DecodeResult(obj);
                case "hello":
                    var server = Fields.GetObject(obj, "server") ?? new JsonObject();
                    return new ServerHello
                    {
                        Protocol = (int)(Fields.GetInteger(obj, "protocol", 1, 255) ?? 1),
                        ServerName = Fields.GetString(server, "name", 256, ""),
                        ServerVersion = Fields.GetString(server, "version", 256, ""),
                        Model = ModelInfo.FromJson(obj.Get("model")),
                        Session = EffectiveSettings.FromJson(obj.Get("session")),
                        Limits = Limits.FromJson(obj.Get("limits")),
                    };
                case "error":
                    var fatal = obj.Get("fatal");
                    return new ErrorMessage
                    {
                        Code = Fields.GetString(obj, "code", 256, ""),
                        Message = Fields.GetString(obj, "message", 4096, ""),
                        FrameId = Fields.GetInteger(obj, "frame_id", 0, uint.MaxValue),
                        Fatal = fatal != null && fatal.Kind == JsonKind.Bool && fatal.Bool,
                    };
                case "pong":
                    var id = obj.Get("id");
                    if (id == null || (id.Kind != JsonKind.Integer && id.Kind != JsonKind.String)) throw Fields.Invalid("pong needs an integer or string \"id\"");
                    return new Pong
                    {
                        Id = id,
                        ClientTimeUs = Fields.GetInteger(obj, "client_time_us", 0, MaxJsonSafeInt),
                        ServerTimeUs = Fields.GetInteger(obj, "server_time_us", 0, MaxJsonSafeInt) ?? 0,
                    };
                case "configured": return new Configured { Session = EffectiveSettings.FromJson(obj.Get("session")) };
                case "model_changed": return new ModelChanged { Model = ModelInfo.FromJson(obj.Get("model")) };
                default:
                    throw new ProtocolException(ErrorCodes.UnknownMessageType, "JSON message type \"" + Truncate(kind, 40) + "\" is unknown");
            }
        }

        static Result DecodeResult(JsonObject obj)
        {
            var status = obj.Get("status");
            if (status == null || status.Kind != JsonKind.String) throw Fields.Invalid("unknown result status");
            var frameId = Fields.GetInteger(obj, "frame_id", 0, uint.MaxValue);
            var capture = Fields.GetInteger(obj, "capture_time_us", 0, MaxJsonSafeInt);
            if (!frameId.HasValue || !capture.HasValue) throw Fields.Invalid("result needs \"frame_id\" and \"capture_time_us\"");
            var result = new Result { FrameId = (uint)frameId.Value, CaptureTimeUs = capture.Value, Status = status.String };
            var topK = obj.Get("top_k");
            if (topK != null && !topK.IsNull)
            {
                if (topK.Kind != JsonKind.Array) throw Fields.Invalid("\"top_k\" must be a list");
                foreach (var entry in topK.Items)
                {
                    if (entry.Kind != JsonKind.Object) throw Fields.Invalid("\"top_k\" entries must be objects");
                    string label = Fields.GetString(entry.Object, "label", 256, null);
                    long? index = Fields.GetInteger(entry.Object, "index", 0, int.MaxValue);
                    double? score = Fields.GetNumber(entry.Object, "score", double.NegativeInfinity, double.PositiveInfinity);
                    if (label == null || !index.HasValue || !score.HasValue) throw Fields.Invalid("\"top_k\" entries need \"label\", \"index\" and \"score\"");
                    result.TopK.Add(new Prediction { Label = label, Index = (int)index.Value, Score = score.Value });
                }
            }
            var timings = obj.Get("timings_ms");
            if (timings != null && !timings.IsNull)
            {
                if (timings.Kind != JsonKind.Object) throw Fields.Invalid("\"timings_ms\" must map stage names to numbers");
                foreach (var pair in timings.Object.Pairs)
                {
                    if (!pair.Value.IsNumber) throw Fields.Invalid("\"timings_ms\" must map stage names to numbers");
                    result.TimingsMs.Add(new KeyValuePair<string, double>(pair.Key, pair.Value.Number));
                }
            }
            var pose = obj.Get("pose");
            if (pose != null && !pose.IsNull)
            {
                if (pose.Kind != JsonKind.Object) throw Fields.Invalid("\"pose\" must be an object or null");
                result.PosePosition = Fields.Numbers(pose.Object.Get("position"), 3);
                result.PoseRotation = Fields.Numbers(pose.Object.Get("rotation"), 4);
                if (result.PosePosition == null || result.PoseRotation == null) throw Fields.Invalid("\"pose\" needs 3 position and 4 rotation numbers");
            }
            var gaze = obj.Get("gaze");
            if (gaze != null && !gaze.IsNull)
            {
                result.Gaze = Fields.Numbers(gaze, 2);
                if (result.Gaze == null) throw Fields.Invalid("\"gaze\" must be two numbers or null");
            }
            result.ModelVersion = Fields.GetString(obj, "model_version", 256, "");
            var error = Fields.GetObject(obj, "error");
            if (error != null)
            {
                result.ErrorCode = Fields.GetString(error, "code", 256, "");
                result.ErrorMessage = Fields.GetString(error, "message", 4096, "");
            }
            return result;
        }

        public static ClientMessage DecodeClient(string text) { var b = Utf8.GetBytes(text); return DecodeClient(b, 0, b.Length); }

        /// <summary>Parses a client message with the server's rules (used to self-check and by the tests).</summary>
        public static ClientMessage DecodeClient(byte[] utf8, int offset, int count, int maxBytes = DefaultMaxControlBytes)
        {
            var obj = ParseObject(utf8, offset, count, maxBytes);
            string kind = obj.Get("type").String;
            switch (kind)
            {
                case "hello":
                    long? protocol = Fields.GetInteger(obj, "protocol", 1, 255);
                    if (!protocol.HasValue) throw Fields.Invalid("hello needs \"protocol\"");
                    // min_protocol above protocol is well-formed (v1.1): no version satisfies it, so
                    // negotiation fails (NegotiateVersion; the server closes with 1002).
                    long? minProtocol = Fields.GetInteger(obj, "min_protocol", 1, 255);
                    var client = Fields.GetObject(obj, "client") ?? new JsonObject();
                    return new ClientHello
                    {
                        Protocol = (int)protocol.Value,
                        MinProtocol = minProtocol.HasValue ? (int?)minProtocol.Value : null,
                        ClientName = Fields.GetString(client, "name", 256, "unknown"),
                        ClientVersion = Fields.GetString(client, "version", 256, ""),
                        Settings = StreamSettings.FromJson(obj),
                    };
                case "configure":
                    return new Configure { Settings = StreamSettings.FromJson(obj) };
                case "ping":
                    var id = obj.Get("id");
                    if (id == null || (id.Kind != JsonKind.Integer && id.Kind != JsonKind.String)) throw Fields.Invalid("ping needs an integer or string \"id\"");
                    if (id.Kind == JsonKind.String && id.String.Length > 64) throw Fields.Invalid("ping \"id\" longer than 64 characters");
                    if (id.Kind == JsonKind.Integer && Math.Abs(id.Integer) > MaxJsonSafeInt) throw Fields.Invalid("ping \"id\" must fit in 53 bits");
                    return new Ping { Id = id, ClientTimeUs = Fields.GetInteger(obj, "client_time_us", 0, MaxJsonSafeInt) };
                default:
                    throw new ProtocolException(ErrorCodes.UnknownMessageType, "JSON message type \"" + Truncate(kind, 40) + "\" is unknown");
            }
        }

        /// <summary>Versions this client speaks.</summary>
        public static readonly int[] SupportedVersions = { 1 };

        /// <summary>The server's choice for a hello (docs/protocol.md 3.4): the newest version v with
        /// min_protocol &lt;= v &lt;= protocol that `supported` holds; none is unsupported_version.</summary>
        public static int NegotiateVersion(ClientHello hello, int[] supported = null)
        {
            int lowest = hello.MinProtocol ?? hello.Protocol;
            int best = -1;
            foreach (var v in supported ?? SupportedVersions)
                if (v >= lowest && v <= hello.Protocol && v > best) best = v;
            if (best < 0)
                throw new ProtocolException(ErrorCodes.UnsupportedVersion, "client speaks " + lowest + ".." + hello.Protocol + ", this peer speaks [" + string.Join(", ", supported ?? SupportedVersions) + "]");
            return best;
        }

        static string Truncate(string s, int n) { return s.Length <= n ? s : s.Substring(0, n); }
    }

    /// <summary>Typed field access with the protocol's rules: absent or null gives the default, a wrong
    /// type or a value out of range is invalid_message.</summary>
    public static class Fields
    {
        public static ProtocolException Invalid(string message) { return new ProtocolException(ErrorCodes.InvalidMessage, message); }

        public static long? GetInteger(JsonObject obj, string key, long lo, long hi)
        {
            var v = obj.Get(key);
            if (v == null || v.IsNull) return null;
            if (v.Kind != JsonKind.Integer || v.Integer < lo || v.Integer > hi)
                throw Invalid("\"" + key + "\" must be an integer in [" + lo + ", " + hi + "]");
            return v.Integer;
        }

        public static double? GetNumber(JsonObject obj, string key, double lo, double hi)
        {
            var v = obj.Get(key);
            if (v == null || v.IsNull) return null;
            if (!v.IsNumber || !(v.Number >= lo && v.Number <= hi))
                throw Invalid("\"" + key + "\" must be a number in [" + lo + ", " + hi + "]");
            return v.Number;
        }

        public static string GetString(JsonObject obj, string key, int maxLength, string fallback)
        {
            var v = obj.Get(key);
            if (v == null || v.IsNull) return fallback;
            if (v.Kind != JsonKind.String || v.String.Length > maxLength)
                throw Invalid("\"" + key + "\" must be a string of at most " + maxLength + " characters");
            return v.String;
        }

        public static JsonObject GetObject(JsonObject obj, string key)
        {
            var v = obj.Get(key);
            if (v == null || v.IsNull) return null;
            if (v.Kind != JsonKind.Object) throw Invalid("\"" + key + "\" must be an object or null");
            return v.Object;
        }

        /// <summary>Exactly n numbers, or null.</summary>
        public static double[] Numbers(JsonValue value, int n)
        {
            if (value == null || value.Kind != JsonKind.Array || value.Items.Count != n) return null;
            var result = new double[n];
            for (int i = 0; i < n; i++)
            {
                if (!value.Items[i].IsNumber) return null;
                result[i] = value.Items[i].Number;
            }
            return result;
        }
    }
}
