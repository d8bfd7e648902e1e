// The client loop: one WebSocket stream to vr-serve (docs/protocol.md). A single writer task sends
// (ClientWebSocket allows one SendAsync at a time): control messages first, then the newest frame from a
// latest-frame-wins slot, paced to a target fps and capped by the frames still in flight. A reader task
// decodes replies. Events are queued and raised by DispatchPending() on the caller's thread (Unity's
// main thread, from Update). Lost connections are retried with exponential backoff; the server's close
// code and reason reach the app (ConnectionEnded), and a 1002 (no common protocol version) ends retrying.
// Plain C# 7.2 on System.Net.WebSockets; no UnityEngine.
using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;

namespace VrRecognition.Core
{
    /// <summary>Microseconds on a monotonic clock: the capture_time_us the client stamps on frames.
    /// The server only echoes it, so latency = NowUs() - result.CaptureTimeUs on the same clock.</summary>
    public static class MonotonicClock
    {
        static readonly double TicksToUs = 1e6 / Stopwatch.Frequency;
        public static long NowUs() { return (long)(Stopwatch.GetTimestamp() * TicksToUs); }
    }

    public sealed class ClientOptions
    {
        /// <summary>ws://host:port/ or wss://host:port/ (use wss:// off the local network).</summary>
        public Uri ServerUri = new Uri("ws://127.0.0.1:8765/");
        /// <summary>Sent as "Authorization: Bearer TOKEN" in the handshake when not empty.</summary>
        public string Token;
        public string ClientName = "unity-client";
        public string ClientVersion = RecognitionClient.Version;
        /// <summary>Newest protocol version asked for in hello, and the oldest accepted (null: the same).</summary>
        public int Protocol = 1;
        public int? MinProtocol;
        /// <summary>top_k, budget_ms, fps, smoothing, gaze crop asked for in hello (null: server default).</summary>
        public StreamSettings Settings = new StreamSettings();
        /// <summary>Most frames sent per second; 0 = as fast as the in-flight cap allows.</summary>
        public double TargetFps = 30;
        /// <summary>Frames sent but not answered yet. At the cap, new frames replace the slot's frame.</summary>
        public int MaxInFlight = 2;
        /// <summary>An unanswered frame older than this no longer counts against the cap (counted lost).</summary>
        public TimeSpan InFlightTimeout = TimeSpan.FromSeconds(5);
        public TimeSpan ConnectTimeout = TimeSpan.FromSeconds(10);
        /// <summary>WebSocket keep-alive (unsolicited pong frames); Zero turns it off.</summary>
        public TimeSpan KeepAliveInterval = TimeSpan.FromSeconds(20);
        public bool Reconnect = true;
        public Backoff Backoff = new Backoff();
        /// <summary>Largest server message read (results are small; the hello lists classes).</summary>
        public int MaxReceiveBytes = 16 * 1024 * 1024;
        /// <summary>After the server's fatal error, how long to wait for its close frame (code and reason).</summary>
        public TimeSpan CloseWait = TimeSpan.FromSeconds(3);
    }

    /// <summary>How a connection (or an attempt at one) ended, and what the client does next.</summary>
    public sealed class DisconnectInfo
    {
        /// <summary>The WebSocket close code the server sent (CloseCodes; docs/protocol.md 5.2), or null
        /// when the connection ended without one: upgrade refused (HTTP 401/403/503), network lost,
        /// timed out, or Stop().</summary>
        public int? CloseCode;
        /// <summary>The close reason: an error code such as "too_many_streams"; "" without one.</summary>
        public string CloseReason = "";
        /// <summary>The fatal error message the server sent just before closing, or null.</summary>
        public ErrorMessage FatalError;
        /// <summary>Readable summary (the string the Disconnected event carries).</summary>
        public string Description = "";
        /// <summary>The stream had been open (hello answered) before it ended.</summary>
        public bool WasConnected;
        /// <summary>Ended by Stop().</summary>
        public bool Stopped;
        /// <summary>The client connects again after ReconnectDelay (backoff); false: it has stopped.</summary>
        public bool WillReconnect;
        public TimeSpan ReconnectDelay;

        public override string ToString()
        {
            return Description + (WillReconnect ? " (reconnecting in " + ReconnectDelay.TotalMilliseconds.ToString("F0") + " ms)" : " (not reconnecting)");
        }
    }

    /// <summary>A frame handed to the client. Payload[0..PayloadLength) is the image (JPEG normally).</summary>
    public sealed class OutgoingFrame
    {
        public byte[] Payload;
        public int PayloadLength;
        public int Width, Height;
        public ImageFormat Format = ImageFormat.Jpeg;
        /// <summary>First payload row is the image's bottom row (raw GPU readback; the server flips).</summary>
        public bool RowsBottomUp;
        public Pose? Pose;
        public Gaze? Gaze;
        /// <summary>MonotonicClock.NowUs() when the image was captured; 0 = stamp it on submit.</summary>
        public long CaptureTimeUs;
        /// <summary>Anything the caller wants back with the result (e.g. the camera transform).</summary>
        public object UserState;
    }

    public sealed class FrameResult
    {
        public Result Result;
        public object UserState;
        /// <summary>From the send call to the reply, ms.</summary>
        public double RoundTripMs;
        /// <summary>From capture (CaptureTimeUs) to the reply, ms: what the user experiences.</summary>
        public double LatencyMs;
    }

    public enum ConnectionState { Idle, Connecting, Connected, Disconnected, Stopped }

    /// <summary>A snapshot of the client's counters.</summary>
    public struct ClientStats
    {
        public long FramesSubmitted;
        /// <summary>Replaced in the send slot by a newer frame before being sent: the client's own drops.</summary>
        public long FramesReplaced;
        /// <summary>Submitted while not connected, discarded.</summary>
        public long FramesDiscardedOffline;
        public long FramesSent;
        public long ResultsReceived, ResultsOk, ResultsDroppedStale, ResultsLate, ResultsError;
        /// <summary>Sent but never answered (connection lost, or older than InFlightTimeout).</summary>
        public long FramesLost;
        public int InFlight, MaxInFlightSeen;
        public long ConnectAttempts, Connections;
        public double LastRoundTripMs, LastLatencyMs;
    }

    public sealed class RecognitionClient : IDisposable
    {
        public const string Version = "0.1.0";

        sealed class InFlight { public long SentTicks; public long CaptureTimeUs; public object UserState; }

        readonly ClientOptions options;
        readonly LatestFrameSlot<OutgoingFrame> slot = new LatestFrameSlot<OutgoingFrame>();
        readonly ConcurrentQueue<string> control = new ConcurrentQueue<string>();
        readonly ConcurrentQueue<Action> dispatch = new ConcurrentQueue<Action>();
        readonly Dictionary<uint, InFlight> inFlight = new Dictionary<uint, InFlight>();
        readonly Dictionary<string, long> pingsSent = new Dictionary<string, long>();
        readonly SemaphoreSlim wake = new SemaphoreSlim(0, 1);
        readonly UTF8Encoding utf8 = new UTF8Encoding(false);
        CancellationTokenSource stopSource;
        Task runTask;
        byte[] sendBuffer = new byte[64 * 1024];
        uint nextFrameId;
        long nextPingId;
        volatile int state = (int)ConnectionState.Idle;
        volatile ServerHello serverHello;
        volatile ModelInfo model;
        volatile EffectiveSettings session;
        volatile DisconnectInfo lastDisconnect;
        volatile ErrorMessage sessionFatal;
        long submitted, discardedOffline, sent, received, ok, droppedStale, late, errors, lost, attempts, connections;
        int maxInFlightSeen;
        double lastRoundTripMs, lastLatencyMs;

        /// <summary>A result arrived (raised by DispatchPending, on its caller's thread).</summary>
        public event Action<FrameResult> ResultReceived;
        /// <summary>The handshake and hello succeeded.</summary>
        public event Action<ServerHello> Connected;
        /// <summary>The connection ended or could not be made; the argument says why. Reconnects follow
        /// unless ConnectionEnded says otherwise.</summary>
        public event Action<string> Disconnected;
        /// <summary>The connection ended or could not be made: the server's close code and reason, its
        /// fatal error if any, and whether (and when) the client reconnects. Raised with Disconnected.</summary>
        public event Action<DisconnectInfo> ConnectionEnded;
        /// <summary>An error message from the server (fatal ones are followed by a close).</summary>
        public event Action<ErrorMessage> ServerError;
        public event Action<ModelInfo> ModelChanged;
        public event Action<EffectiveSettings> Configured;
        /// <summary>Application-level ping round trip, ms.</summary>
        public event Action<double> PongReceived;
        /// <summary>Called on a network thread when the client is done with a frame (sent, replaced or
        /// discarded), so its payload buffer can go back to a pool. Must be quick and thread-safe.</summary>
        public Action<OutgoingFrame> RecycleFrame;

        public RecognitionClient(ClientOptions options)
        {
            if (options == null) throw new ArgumentNullException("options");
            if (options.MaxInFlight < 1) throw new ArgumentException("MaxInFlight must be at least 1");
            this.options = options;
        }

        public ClientOptions Options { get { return options; } }
        public ConnectionState State { get { return (ConnectionState)state; } }
        public bool IsConnected { get { return State == ConnectionState.Connected; } }
        /// <summary>The server's hello of the current (or last) connection.</summary>
        public ServerHello ServerHello { get { return serverHello; } }
        /// <summary>The model answering now (updated by model_changed).</summary>
        public ModelInfo Model { get { return model; } }
        /// <summary>The settings the server applies now (updated by configured).</summary>
        public EffectiveSettings Session { get { return session; } }
        /// <summary>How the last connection ended (null before the first ended).</summary>
        public DisconnectInfo LastDisconnect { get { return lastDisconnect; } }

        public int InFlightCount { get { lock (inFlight) return inFlight.Count; } }

        /// <summary>A frame is waiting in the send slot.</summary>
        public bool HasPendingFrame { get { return slot.HasItem; } }

        /// <summary>True when a frame submitted now would only replace the waiting one: at the in-flight
        /// cap with a frame already queued. Capture code can skip the readback and encode then.</summary>
        public bool IsSaturated { get { return slot.HasItem && InFlightCount >= options.MaxInFlight; } }

        public ClientStats GetStats()
        {
            var s = new ClientStats
            {
                FramesSubmitted = Interlocked.Read(ref submitted),
                FramesReplaced = slot.Replaced,
                FramesDiscardedOffline = Interlocked.Read(ref discardedOffline),
                FramesSent = Interlocked.Read(ref sent),
                ResultsReceived = Interlocked.Read(ref received),
                ResultsOk = Interlocked.Read(ref ok),
                ResultsDroppedStale = Interlocked.Read(ref droppedStale),
                ResultsLate = Interlocked.Read(ref late),
                ResultsError = Interlocked.Read(ref errors),
                FramesLost = Interlocked.Read(ref lost),
                ConnectAttempts = Interlocked.Read(ref attempts),
                Connections = Interlocked.Read(ref connections),
                MaxInFlightSeen = Volatile.Read(ref maxInFlightSeen),
                LastRoundTripMs = Volatile.Read(ref lastRoundTripMs),
                LastLatencyMs = Volatile.Read(ref lastLatencyMs),
            };
            s.InFlight = InFlightCount;
            return s;
        }

        // --- public API (any thread) -------------------------------------------------------------

        /// <summary>Starts connecting in the background; reconnects until Stop().</summary>
        public void Start()
        {
            if (runTask != null) return;
            stopSource = new CancellationTokenSource();
            var stop = stopSource.Token;
            runTask = Task.Run(() => RunAsync(stop));
        }

        /// <summary>Closes the connection (close 1000) and stops; waits at most `timeout` for it.</summary>
        public void Stop(TimeSpan timeout)
        {
            if (runTask == null) return;
            stopSource.Cancel();
            Wake();
            try { runTask.Wait(timeout); } catch (AggregateException) { }
            runTask = null;
            SetState(ConnectionState.Stopped);
        }

        public void Dispose() { Stop(TimeSpan.FromSeconds(1)); }

        /// <summary>Hands a frame to the send loop. If the previous frame was not sent yet it is dropped
        /// (counted in FramesReplaced): frames are never queued behind each other. Returns false when the
        /// frame was discarded because the client is not connected.</summary>
        public bool SubmitFrame(OutgoingFrame frame)
        {
            if (frame == null || frame.Payload == null || frame.PayloadLength <= 0) throw new ArgumentException("frame needs a payload");
            Interlocked.Increment(ref submitted);
            if (frame.CaptureTimeUs <= 0) frame.CaptureTimeUs = MonotonicClock.NowUs();
            if (State != ConnectionState.Connected)
            {
                Interlocked.Increment(ref discardedOffline);
                Recycle(frame);
                return false;
            }
            var replaced = slot.Offer(frame);
            if (replaced != null) Recycle(replaced);
            Wake();
            return true;
        }

        /// <summary>Changes stream settings mid-stream (e.g. budget_ms when the refresh rate changes). Fields
        /// left null stay as they are; fields named in settings.Reset go back to the server's default
        /// (StreamSettings.SmoothingAndGazeCropOff() switches both off). Answered by Configured.</summary>
        public void Configure(StreamSettings settings)
        {
            control.Enqueue(new Configure { Settings = settings }.Encode());
            Wake();
        }

        /// <summary>Sends an application-level ping; PongReceived reports the round trip.</summary>
        public void Ping()
        {
            long id = Interlocked.Increment(ref nextPingId);
            lock (pingsSent) pingsSent[id.ToString()] = Stopwatch.GetTimestamp();
            control.Enqueue(new Ping { Id = JsonValue.Of(id), ClientTimeUs = MonotonicClock.NowUs() }.Encode());
            Wake();
        }

        /// <summary>Raises queued events on the calling thread; call it every frame from Update().
        /// Returns how many were raised.</summary>
        public int DispatchPending(int max = int.MaxValue)
        {
            int count = 0;
            Action action;
            while (count < max && dispatch.TryDequeue(out action))
            {
                action();
                count++;
            }
            return count;
        }

        // --- internals ---------------------------------------------------------------------------

        void Wake()
        {
            try { wake.Release(); } catch (SemaphoreFullException) { }
        }

        void Post(Action action) { dispatch.Enqueue(action); }

        void SetState(ConnectionState value) { state = (int)value; }

        void Recycle(OutgoingFrame frame)
        {
            var recycle = RecycleFrame;
            if (recycle != null && frame != null)
            {
                try { recycle(frame); } catch (Exception) { }
            }
        }

        async Task RunAsync(CancellationToken stop)
        {
            int failures = 0;
            while (!stop.IsCancellationRequested)
            {
                SetState(ConnectionState.Connecting);
                Interlocked.Increment(ref attempts);
                var ending = new DisconnectInfo();
                sessionFatal = null;
                var ws = new ClientWebSocket();
                try
                {
                    if (!string.IsNullOrEmpty(options.Token)) ws.Options.SetRequestHeader("Authorization", "Bearer " + options.Token);
                    ws.Options.KeepAliveInterval = options.KeepAliveInterval;
                    ws.Options.SetBuffer(64 * 1024, 64 * 1024);
                    bool opened;
                    using (var timeout = CancellationTokenSource.CreateLinkedTokenSource(stop))
                    {
                        timeout.CancelAfter(options.ConnectTimeout);
                        await ws.ConnectAsync(options.ServerUri, timeout.Token).ConfigureAwait(false);
                        opened = await HelloAsync(ws, ending, timeout.Token, stop).ConfigureAwait(false);
                    }
                    if (opened)
                    {
                        ending.WasConnected = true;
                        var early = slot.Clear(); // a frame that slipped in while the last session ended is stale now
                        if (early != null) { Interlocked.Increment(ref discardedOffline); Recycle(early); }
                        Interlocked.Increment(ref connections);
                        SetState(ConnectionState.Connected);
                        var hello2 = serverHello;
                        Post(() => { var h = Connected; if (h != null) h(hello2); });
                        await RunSessionAsync(ws, ending, stop).ConfigureAwait(false);
                    }
                }
                catch (OperationCanceledException)
                {
                    if (stop.IsCancellationRequested) ending.Stopped = true;
                    else if (ending.Description == "") ending.Description = "timed out";
                }
                catch (Exception e)
                {
                    if (stop.IsCancellationRequested) ending.Stopped = true;
                    else if (ending.Description == "") ending.Description = Describe(e);
                }
                finally
                {
                    SetState(ConnectionState.Disconnected);
                    LoseInFlight();
                    var cleared = slot.Clear();
                    if (cleared != null) { Interlocked.Increment(ref discardedOffline); Recycle(cleared); }
                    ws.Dispose();
                }
                if (ending.FatalError == null) ending.FatalError = sessionFatal;
                if (ending.Stopped || stop.IsCancellationRequested) { ending.Stopped = true; ending.Description = "stopped"; }
                else if (ending.Description == "") ending.Description = "closed";
                ending.WillReconnect = !ending.Stopped && options.Reconnect && CloseCodes.Reconnects(ending.CloseCode)
                    && !(ending.FatalError != null && ending.FatalError.Code == ErrorCodes.UnsupportedVersion);
                if (ending.WillReconnect)
                {
                    // A stream that was open starts the backoff again, unless it ended for something this client
                    // did wrong: then the delay keeps growing, so a repeating fault cannot loop fast.
                    failures = ending.WasConnected && !CloseCodes.IsClientFault(ending.CloseCode, ending.CloseReason) ? 1 : failures + 1;
                    ending.ReconnectDelay = options.Backoff.Delay(failures);
                }
                lastDisconnect = ending;
                Post(() =>
                {
                    var h = Disconnected; if (h != null) h(ending.Description);
                    var e = ConnectionEnded; if (e != null) e(ending);
                });
                if (!ending.WillReconnect) break;
                try { await Task.Delay(ending.ReconnectDelay, stop).ConfigureAwait(false); }
                catch (OperationCanceledException) { break; }
            }
            SetState(ConnectionState.Stopped);
        }

        /// <summary>Sends hello and reads the answer. True when the stream is open; false (with `ending`
        /// filled in) when the server refused it, e.g. a fatal too_many_streams then close 4013.</summary>
        async Task<bool> HelloAsync(ClientWebSocket ws, DisconnectInfo ending, CancellationToken timeout, CancellationToken stop)
        {
            var hello = new ClientHello
            {
                Protocol = options.Protocol,
                MinProtocol = options.MinProtocol,
                ClientName = options.ClientName,
                ClientVersion = options.ClientVersion,
                Settings = options.Settings ?? new StreamSettings(),
            };
            await SendTextAsync(ws, hello.Encode(), timeout).ConfigureAwait(false);
            var buffer = new byte[16 * 1024];
            var reply = await ReceiveMessageAsync(ws, timeout, buffer).ConfigureAwait(false);
            if (reply.Closed)
            {
                await RecordCloseAsync(ws, reply, ending).ConfigureAwait(false);
                ending.Description = "closed before the server hello: " + ending.Description;
                return false;
            }
            var message = Messages.DecodeServer(reply.Text.Array, reply.Text.Offset, reply.Text.Count, options.MaxReceiveBytes);
            var error = message as ErrorMessage;
            if (error != null)
            {
                Post(() => RaiseServerError(error));
                ending.FatalError = error;
                if (error.Fatal)
                {
                    // The close follows at once; wait for it (briefly) to learn its code and reason.
                    using (var wait = CancellationTokenSource.CreateLinkedTokenSource(stop))
                    {
                        wait.CancelAfter(options.CloseWait);
                        try
                        {
                            Received next;
                            do next = await ReceiveMessageAsync(ws, wait.Token, buffer).ConfigureAwait(false);
                            while (!next.Closed);
                            await RecordCloseAsync(ws, next, ending).ConfigureAwait(false);
                        }
                        catch (Exception) when (!stop.IsCancellationRequested) { }
                    }
                }
                ending.Description = "refused: " + error.Code + ": " + error.Message
                    + (ending.CloseCode.HasValue ? " (" + CloseText(ending) + ")" : "");
                return false;
            }
            var serverHelloMessage = message as ServerHello;
            if (serverHelloMessage == null) throw new WebSocketException("expected the server hello, got " + message.Type);
            serverHello = serverHelloMessage;
            model = serverHelloMessage.Model;
            session = serverHelloMessage.Session;
            return true;
        }

        static string CloseText(DisconnectInfo ending)
        {
            return "close " + (ending.CloseCode.HasValue ? ending.CloseCode.Value.ToString() : "without status")
                + (string.IsNullOrEmpty(ending.CloseReason) ? "" : " " + ending.CloseReason);
        }

        /// <summary>Notes the server's close code and reason and completes the closing handshake.</summary>
        async Task RecordCloseAsync(ClientWebSocket ws, Received close, DisconnectInfo ending)
        {
            ending.CloseCode = close.CloseCode;
            ending.CloseReason = close.CloseReason ?? "";
            ending.Description = "server closed: " + CloseText(ending).Substring("close ".Length);
            if (ws.State == WebSocketState.CloseReceived)
            {
                using (var t = new CancellationTokenSource(1000))
                {
                    try { await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", t.Token).ConfigureAwait(false); }
                    catch (Exception) { }
                }
            }
        }

        static string Describe(Exception e)
        {
            var message = e.Message;
            for (var inner = e.InnerException; inner != null; inner = inner.InnerException) message += " <- " + inner.Message;
            return message;
        }

        /// <summary>Runs the writer and the reader until one ends; fills in why the session ended.</summary>
        async Task RunSessionAsync(ClientWebSocket ws, DisconnectInfo ending, CancellationToken stop)
        {
            using (var session = new CancellationTokenSource())
            {
                var reader = ReceiveLoopAsync(ws, ending, session.Token);
                var writer = SendLoopAsync(ws, stop, session.Token);
                var first = await Task.WhenAny(reader, writer).ConfigureAwait(false);
                if (first == writer && stop.IsCancellationRequested && !writer.IsFaulted)
                {
                    // We sent close 1000: give the server a moment to answer it, then cut.
                    await Task.WhenAny(reader, Task.Delay(1000)).ConfigureAwait(false);
                }
                session.Cancel();
                Wake();
                try
                {
                    var reason = await first.ConfigureAwait(false);
                    if (first == writer && stop.IsCancellationRequested) ending.Stopped = true;
                    else if (ending.Description == "") ending.Description = reason;
                }
                catch (Exception e)
                {
                    if (stop.IsCancellationRequested) ending.Stopped = true;
                    else if (ending.Description == "") ending.Description = Describe(e);
                }
                try { await Task.WhenAll(reader, writer).ConfigureAwait(false); } catch (Exception) { }
            }
        }

        async Task<string> SendLoopAsync(ClientWebSocket ws, CancellationToken stop, CancellationToken session)
        {
            double interval = options.TargetFps > 0 ? Stopwatch.Frequency / options.TargetFps : 0;
            long nextSendTicks = 0;
            var header = new Frame();
            while (!session.IsCancellationRequested)
            {
                string text;
                while (control.TryDequeue(out text)) await SendTextAsync(ws, text, session).ConfigureAwait(false);
                if (stop.IsCancellationRequested)
                {
                    using (var closeTimeout = new CancellationTokenSource(1000))
                        await ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", closeTimeout.Token).ConfigureAwait(false);
                    return "stopped";
                }
                long now = Stopwatch.GetTimestamp();
                int waitMs = Timeout.Infinite;
                if (ExpireInFlight(now) >= options.MaxInFlight)
                {
                    waitMs = 100; // a reply wakes us; this only re-checks the in-flight timeout
                }
                else if (now < nextSendTicks)
                {
                    waitMs = Math.Max(1, (int)((nextSendTicks - now) * 1000 / Stopwatch.Frequency));
                }
                else
                {
                    var frame = slot.TryTake();
                    if (frame != null)
                    {
                        await SendFrameAsync(ws, frame, header, session).ConfigureAwait(false);
                        // Token bucket of one frame: a send that came late may be followed a little early,
                        // so capture jitter does not cost frames, but the average stays at TargetFps.
                        if (interval > 0) nextSendTicks = Math.Max(nextSendTicks, now - (long)interval) + (long)interval;
                        continue;
                    }
                }
                try { await wake.WaitAsync(waitMs, session).ConfigureAwait(false); }
                catch (OperationCanceledException) { break; }
            }
            return "closed";
        }

        async Task SendFrameAsync(ClientWebSocket ws, OutgoingFrame frame, Frame header, CancellationToken session)
        {
            uint id = nextFrameId++;
            header.FrameId = id;
            header.CaptureTimeUs = (ulong)frame.CaptureTimeUs;
            header.Format = frame.Format;
            header.Width = frame.Width;
            header.Height = frame.Height;
            header.Pose = frame.Pose;
            header.Gaze = frame.Gaze;
            header.RowsBottomUp = frame.RowsBottomUp;
            header.Payload = frame.Payload;
            header.PayloadOffset = 0;
            header.PayloadLength = frame.PayloadLength;
            int total = FrameCodec.HeaderSize + frame.PayloadLength;
            var hello = serverHello;
            if (hello != null && hello.Limits != null && total > hello.Limits.MaxMessageBytes)
            {
                // The server would close the connection (1009 message_too_large): refuse it here instead.
                var tooLarge = new ErrorMessage
                {
                    Code = ErrorCodes.MessageTooLarge,
                    Message = "frame not sent: " + total + " bytes, over the server's limits.max_message_bytes " + hello.Limits.MaxMessageBytes,
                };
                Post(() => RaiseServerError(tooLarge));
                Recycle(frame);
                return;
            }
            if (sendBuffer.Length < total) sendBuffer = new byte[Math.Max(total, sendBuffer.Length * 2)];
            int length;
            try { length = FrameCodec.EncodeInto(header, sendBuffer, 0); }
            catch (ArgumentException e)
            {
                var why = new ErrorMessage { Code = ErrorCodes.InvalidMessage, Message = "frame not sent: " + e.Message };
                Post(() => RaiseServerError(why));
                Recycle(frame);
                return;
            }
            var entry = new InFlight { SentTicks = Stopwatch.GetTimestamp(), CaptureTimeUs = frame.CaptureTimeUs, UserState = frame.UserState };
            lock (inFlight)
            {
                inFlight[id] = entry;
                if (inFlight.Count > maxInFlightSeen) Volatile.Write(ref maxInFlightSeen, inFlight.Count);
            }
            Recycle(frame); // the bytes are copied into sendBuffer
            await ws.SendAsync(new ArraySegment<byte>(sendBuffer, 0, length), WebSocketMessageType.Binary, true, session).ConfigureAwait(false);
            Interlocked.Increment(ref sent);
        }

        /// <summary>Drops in-flight entries older than the timeout (counted lost); returns how many remain.</summary>
        int ExpireInFlight(long now)
        {
            long limit = (long)(options.InFlightTimeout.TotalSeconds * Stopwatch.Frequency);
            lock (inFlight)
            {
                if (inFlight.Count < options.MaxInFlight) return inFlight.Count;
                List<uint> old = null;
                foreach (var pair in inFlight)
                    if (now - pair.Value.SentTicks > limit) (old ?? (old = new List<uint>())).Add(pair.Key);
                if (old != null)
                    foreach (var id in old) { inFlight.Remove(id); Interlocked.Increment(ref lost); }
                return inFlight.Count;
            }
        }

        void LoseInFlight()
        {
            lock (inFlight)
            {
                Interlocked.Add(ref lost, inFlight.Count);
                inFlight.Clear();
            }
        }

        Task SendTextAsync(ClientWebSocket ws, string text, CancellationToken cancel)
        {
            var bytes = utf8.GetBytes(text);
            return ws.SendAsync(new ArraySegment<byte>(bytes), WebSocketMessageType.Text, true, cancel);
        }

        struct Received
        {
            public ArraySegment<byte> Text;
            public bool Closed;
            public int? CloseCode;
            public string CloseReason;
        }

        /// <summary>One whole text message, or the peer's close (Closed, with its code and reason).
        /// Binary messages are skipped.</summary>
        async Task<Received> ReceiveMessageAsync(ClientWebSocket ws, CancellationToken cancel, byte[] buffer)
        {
            while (true)
            {
                int count = 0;
                WebSocketReceiveResult r;
                do
                {
                    if (count == buffer.Length)
                    {
                        if (buffer.Length >= options.MaxReceiveBytes) throw new WebSocketException("server message over " + options.MaxReceiveBytes + " bytes");
                        Array.Resize(ref buffer, Math.Min(buffer.Length * 2, options.MaxReceiveBytes));
                    }
                    r = await ws.ReceiveAsync(new ArraySegment<byte>(buffer, count, buffer.Length - count), cancel).ConfigureAwait(false);
                    count += r.Count;
                } while (!r.EndOfMessage && r.MessageType != WebSocketMessageType.Close);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    return new Received
                    {
                        Closed = true,
                        CloseCode = r.CloseStatus.HasValue ? (int?)(int)r.CloseStatus.Value : null,
                        CloseReason = r.CloseStatusDescription ?? "",
                    };
                }
                if (r.MessageType == WebSocketMessageType.Text) return new Received { Text = new ArraySegment<byte>(buffer, 0, count) };
            }
        }

        async Task<string> ReceiveLoopAsync(ClientWebSocket ws, DisconnectInfo ending, CancellationToken session)
        {
            var buffer = new byte[16 * 1024];
            while (true)
            {
                var message = await ReceiveMessageAsync(ws, session, buffer).ConfigureAwait(false);
                if (message.Closed)
                {
                    await RecordCloseAsync(ws, message, ending).ConfigureAwait(false);
                    return ending.Description;
                }
                buffer = message.Text.Array; // it may have grown
                ServerMessage decoded;
                try { decoded = Messages.DecodeServer(buffer, 0, message.Text.Count, options.MaxReceiveBytes); }
                catch (ProtocolException e)
                {
                    var local = new ErrorMessage { Code = e.Code, Message = "unreadable server message: " + e.Message };
                    Post(() => RaiseServerError(local));
                    continue;
                }
                Handle(decoded);
            }
        }

        void Handle(ServerMessage message)
        {
            var result = message as Result;
            if (result != null) { HandleResult(result); return; }
            var changed = message as ModelChanged;
            if (changed != null)
            {
                model = changed.Model;
                Post(() => { var h = ModelChanged; if (h != null) h(changed.Model); });
                return;
            }
            var error = message as ErrorMessage;
            if (error != null)
            {
                if (error.Fatal) sessionFatal = error; // the close follows; ConnectionEnded reports both
                Post(() => RaiseServerError(error));
                return;
            }
            var configured = message as Configured;
            if (configured != null)
            {
                session = configured.Session;
                Post(() => { var h = Configured; if (h != null) h(configured.Session); });
                return;
            }
            var pong = message as Pong;
            if (pong != null)
            {
                long sentTicks;
                string key = pong.Id.Kind == JsonKind.Integer ? pong.Id.Integer.ToString() : pong.Id.String;
                bool known;
                lock (pingsSent)
                {
                    known = pingsSent.TryGetValue(key ?? "", out sentTicks);
                    if (known) pingsSent.Remove(key);
                }
                if (known)
                {
                    double ms = (Stopwatch.GetTimestamp() - sentTicks) * 1000.0 / Stopwatch.Frequency;
                    Post(() => { var h = PongReceived; if (h != null) h(ms); });
                }
            }
        }

        void HandleResult(Result result)
        {
            InFlight entry;
            lock (inFlight)
            {
                if (inFlight.TryGetValue(result.FrameId, out entry)) inFlight.Remove(result.FrameId);
            }
            Wake(); // a slot in the in-flight window opened
            Interlocked.Increment(ref received);
            switch (result.Status)
            {
                case ResultStatus.Ok: Interlocked.Increment(ref ok); break;
                case ResultStatus.DroppedStale: Interlocked.Increment(ref droppedStale); break;
                case ResultStatus.Late: Interlocked.Increment(ref late); break;
                default: Interlocked.Increment(ref errors); break;
            }
            var done = new FrameResult
            {
                Result = result,
                UserState = entry != null ? entry.UserState : null,
                RoundTripMs = entry != null ? (Stopwatch.GetTimestamp() - entry.SentTicks) * 1000.0 / Stopwatch.Frequency : double.NaN,
                LatencyMs = (MonotonicClock.NowUs() - result.CaptureTimeUs) / 1000.0,
            };
            if (entry != null) Volatile.Write(ref lastRoundTripMs, done.RoundTripMs);
            Volatile.Write(ref lastLatencyMs, done.LatencyMs);
            Post(() => { var h = ResultReceived; if (h != null) h(done); });
        }

        void RaiseServerError(ErrorMessage error)
        {
            var h = ServerError;
            if (h != null) h(error);
        }
    }
}
