// Every close the server sends, received by the C# client under Mono (tests/test_unity_client.py starts
// the servers). Mono's ClientWebSocket aborts on close codes 1012-1014 without completing the closing
// handshake, so the server sends only codes it can receive (docs/protocol.md 5.2): each check asserts
// the code and its reason (an error code), and for RecognitionClient what it does next (CloseCodes:
// reconnect with backoff after everything but 1002). Each received close is printed as
//   close received: CODE REASON (who)
// and the pytest side checks that the codes printed cover every code the server defines.
//
// Closes that RecognitionClient provokes itself (1002, 1011) or suffers (1001, 4013) are checked through
// it; those that only a misbehaving peer causes (no hello, invalid UTF-8, an oversized message, not
// reading) through a bare ClientWebSocket, the same Mono class RecognitionClient uses.
//
// Nothing here waits a fixed time for the server to act: each step waits for an event (a message, a
// close, a metric) under a generous deadline, so a slow machine is slower, not failing.
using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Threading;
using System.Threading.Tasks;
using VrRecognition.Core;

namespace VrRecognition.Tests
{
    public static partial class CoreTests
    {
        const double LiveTimeoutS = 30;

        static void CloseSeen(int code, string reason, string who)
        {
            Console.WriteLine("close received: " + code + " " + reason + " (" + who + ")");
        }

        /// <summary>A RecognitionClient whose events are recorded, for the close checks.</summary>
        sealed class WatchedClient : IDisposable
        {
            public readonly RecognitionClient Client;
            public readonly List<DisconnectInfo> Ends = new List<DisconnectInfo>();
            public readonly List<string> Disconnects = new List<string>();
            public readonly List<ErrorMessage> Errors = new List<ErrorMessage>();
            public int Connections;

            public WatchedClient(Uri uri, string name, Action<ClientOptions> configure = null)
            {
                var options = new ClientOptions
                {
                    ServerUri = uri,
                    ClientName = name,
                    Backoff = new Backoff { Initial = TimeSpan.FromMilliseconds(50), Max = TimeSpan.FromMilliseconds(400), Jitter = 0 },
                };
                if (configure != null) configure(options);
                Client = new RecognitionClient(options);
                Client.ConnectionEnded += info => Ends.Add(info);
                Client.Disconnected += why => Disconnects.Add(why);
                Client.ServerError += error => Errors.Add(error);
                Client.Connected += hello => Connections++;
                Client.Start();
            }

            public void Pump(Func<bool> done, string what) { CoreTests.Pump(Client, done, LiveTimeoutS, what + " (ends: " + string.Join("; ", Disconnects) + ")"); }

            /// <summary>Waits for the first connection end with a close code and checks it.</summary>
            public DisconnectInfo ExpectClose(int code, string reason, string fatalError)
            {
                Pump(() => Ends.Exists(e => e.CloseCode.HasValue), "a close " + code);
                var end = Ends.Find(e => e.CloseCode.HasValue);
                Equal(code, end.CloseCode.Value, "close code (" + end + ")");
                Equal(reason, end.CloseReason, "close reason");
                if (fatalError == null) Check(end.FatalError == null, "no fatal error before the close: " + (end.FatalError == null ? "" : end.FatalError.Code));
                else
                {
                    Check(end.FatalError != null && end.FatalError.Fatal, "a fatal error before the close");
                    Equal(fatalError, end.FatalError.Code, "the fatal error's code");
                    Check(Errors.Exists(e => e.Code == fatalError && e.Fatal), "ServerError raised the fatal " + fatalError);
                }
                Check(Disconnects.Contains(end.Description), "Disconnected carried the same description");
                Check(end.Description.Contains(code.ToString()) && end.Description.Contains(reason), "the description names the code and reason: " + end.Description);
                Check(Client.LastDisconnect != null, "LastDisconnect is set");
                CloseSeen(code, reason, "RecognitionClient " + Client.Options.ClientName);
                return end;
            }

            public void Dispose() { Client.Dispose(); }
        }

        static void ExpectReconnectWithBackoff(DisconnectInfo end)
        {
            Check(end.WillReconnect, "the client reconnects after " + end.CloseCode);
            Check(end.ReconnectDelay > TimeSpan.Zero, "after a backoff delay: " + end.ReconnectDelay);
        }

        /// <summary>A bare Mono ClientWebSocket: sends what it is told, reads until the server closes.</summary>
        sealed class RawPeer : IDisposable
        {
            public readonly ClientWebSocket Ws = new ClientWebSocket();
            public readonly List<ServerMessage> Received = new List<ServerMessage>();
            public int? CloseCode;
            public string CloseReason;

            public RawPeer(string url, string token = null)
            {
                if (token != null) Ws.Options.SetRequestHeader("Authorization", "Bearer " + token);
                Ws.Options.KeepAliveInterval = TimeSpan.Zero;
                Wait(Ws.ConnectAsync(new Uri(url), CancellationToken.None), "the upgrade");
            }

            static void Wait(Task task, string what)
            {
                if (!task.Wait(TimeSpan.FromSeconds(LiveTimeoutS))) throw new Exception("timed out: " + what);
            }

            public void SendText(byte[] utf8) { Wait(Ws.SendAsync(new ArraySegment<byte>(utf8), WebSocketMessageType.Text, true, CancellationToken.None), "a text send"); }
            public void SendText(string text) { SendText(Encoding.UTF8.GetBytes(text)); }
            public void SendBinary(byte[] data) { Wait(Ws.SendAsync(new ArraySegment<byte>(data), WebSocketMessageType.Binary, true, CancellationToken.None), "a binary send"); }

            public void Hello(string name)
            {
                SendText(new ClientHello { ClientName = name, ClientVersion = RecognitionClient.Version }.Encode());
                var reply = Next();
                Check(reply is ServerHello, "the server's hello, got " + (reply == null ? "a close " + CloseCode : reply.Type));
            }

            /// <summary>The next server message, or null when the server closed (CloseCode, CloseReason).</summary>
            public ServerMessage Next()
            {
                var task = NextAsync();
                Wait(task, "a server message");
                return task.Result;
            }

            public async Task<ServerMessage> NextAsync()
            {
                var buffer = new byte[1 << 16];
                int count = 0;
                WebSocketReceiveResult r;
                do
                {
                    r = await Ws.ReceiveAsync(new ArraySegment<byte>(buffer, count, buffer.Length - count), CancellationToken.None).ConfigureAwait(false);
                    count += r.Count;
                } while (!r.EndOfMessage);
                if (r.MessageType == WebSocketMessageType.Close)
                {
                    CloseCode = r.CloseStatus.HasValue ? (int?)(int)r.CloseStatus.Value : null;
                    CloseReason = r.CloseStatusDescription ?? "";
                    if (Ws.State == WebSocketState.CloseReceived)
                    {
                        try { await Ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None).ConfigureAwait(false); }
                        catch (Exception) { }
                    }
                    return null;
                }
                var message = Messages.DecodeServer(buffer, 0, count);
                Received.Add(message);
                return message;
            }

            /// <summary>Reads until the server's close; the messages before it land in Received.</summary>
            public async Task ReadUntilCloseAsync()
            {
                while (await NextAsync().ConfigureAwait(false) != null) { }
            }

            public void ExpectClose(int code, string reason, string fatalError, string who, Task reading = null)
            {
                Wait(reading ?? ReadUntilCloseAsync(), "the close " + code);
                Check(CloseCode.HasValue, "a close frame with a status");
                Equal(code, CloseCode.Value, "close code");
                Equal(reason, CloseReason, "close reason");
                var fatal = Received.FindAll(m => m is ErrorMessage && ((ErrorMessage)m).Fatal);
                if (fatalError == null) Equal(0, fatal.Count, "no fatal error before the close");
                else
                {
                    Equal(1, fatal.Count, "one fatal error before the close");
                    Equal(fatalError, ((ErrorMessage)fatal[0]).Code, "the fatal error's code");
                    Check(Received[Received.Count - 1] == fatal[0], "the fatal error is the last message");
                }
                CloseSeen(code, reason, who);
            }

            public void Dispose() { Ws.Dispose(); }
        }

        /// <summary>A TCP proxy that passes the HTTP upgrade both ways, then holds the client's next bytes
        /// (its hello) until Release(): a client whose upgrade is done but whose hello has not arrived.</summary>
        sealed class HelloHoldingProxy : IDisposable
        {
            readonly TcpListener listener = new TcpListener(IPAddress.Loopback, 0);
            readonly string host;
            readonly int port;
            readonly ManualResetEventSlim gate = new ManualResetEventSlim(false);
            /// <summary>Set once a client's post-upgrade bytes are waiting at the gate.</summary>
            public readonly ManualResetEventSlim Holding = new ManualResetEventSlim(false);
            public readonly Uri Uri;

            public HelloHoldingProxy(string serverUrl)
            {
                var server = new Uri(serverUrl);
                host = server.Host;
                port = server.Port;
                listener.Start();
                Uri = new Uri("ws://127.0.0.1:" + ((IPEndPoint)listener.LocalEndpoint).Port + "/");
                new Thread(AcceptLoop) { IsBackground = true, Name = "proxy-accept" }.Start();
            }

            public void Release() { gate.Set(); }

            public void WaitHolding(string what)
            {
                if (!Holding.Wait(TimeSpan.FromSeconds(LiveTimeoutS))) throw new Exception("timed out waiting for " + what + " to reach the proxy");
            }

            void AcceptLoop()
            {
                while (true)
                {
                    TcpClient client;
                    try { client = listener.AcceptTcpClient(); } catch (Exception) { return; }
                    new Thread(() => Serve(client)) { IsBackground = true, Name = "proxy-conn" }.Start();
                }
            }

            void Serve(TcpClient client)
            {
                var server = new TcpClient();
                try
                {
                    server.NoDelay = client.NoDelay = true;
                    try { server.Connect(host, port); } catch (Exception) { return; }
                    var toClient = new Thread(() => Copy(server.GetStream(), client.GetStream(), client.Client)) { IsBackground = true };
                    toClient.Start();
                    var from = client.GetStream();
                    var to = server.GetStream();
                    var buffer = new byte[1 << 16];
                    var request = new List<byte>();
                    bool upgraded = false;
                    int n;
                    while ((n = Read(from, buffer)) > 0)
                    {
                        int start = 0;
                        if (!upgraded)
                        {
                            // forward the HTTP request up to its blank line; what follows is WebSocket data
                            for (int i = 0; i < n && !upgraded; i++)
                            {
                                request.Add(buffer[i]);
                                int c = request.Count;
                                upgraded = c >= 4 && request[c - 4] == '\r' && request[c - 3] == '\n' && request[c - 2] == '\r' && request[c - 1] == '\n';
                                start = i + 1;
                            }
                            to.Write(buffer, 0, start);
                            if (start == n) continue;
                        }
                        if (!gate.IsSet)
                        {
                            Holding.Set();
                            gate.Wait();
                        }
                        to.Write(buffer, start, n - start);
                    }
                    try { server.Client.Shutdown(SocketShutdown.Send); } catch (Exception) { }
                    toClient.Join(TimeSpan.FromSeconds(LiveTimeoutS));
                }
                catch (Exception) { }
                finally
                {
                    server.Close();
                    client.Close();
                }
            }

            static int Read(NetworkStream stream, byte[] buffer)
            {
                try { return stream.Read(buffer, 0, buffer.Length); } catch (Exception) { return 0; }
            }

            static void Copy(NetworkStream from, NetworkStream to, Socket toSocket)
            {
                var buffer = new byte[1 << 16];
                int n;
                try { while ((n = Read(from, buffer)) > 0) to.Write(buffer, 0, n); } catch (Exception) { }
                try { toSocket.Shutdown(SocketShutdown.Send); } catch (Exception) { }
            }

            public void Dispose()
            {
                gate.Set();
                listener.Stop();
            }
        }

        /// <summary>vr_active_streams from the server's /metrics (streams open after hello).</summary>
        static double ActiveStreams(string serverUrl)
        {
            using (var web = new WebClient())
            {
                string text = web.DownloadString(serverUrl.Replace("ws://", "http://").TrimEnd('/') + "/metrics");
                foreach (var line in text.Split('\n'))
                    if (line.StartsWith("vr_active_streams ", StringComparison.Ordinal))
                        return double.Parse(line.Substring("vr_active_streams ".Length), System.Globalization.CultureInfo.InvariantCulture);
            }
            throw new Exception("no vr_active_streams in /metrics");
        }

        static void WaitForActiveStreams(string serverUrl, double count, string what)
        {
            var deadline = DateTime.UtcNow.AddSeconds(LiveTimeoutS);
            double now;
            while ((now = ActiveStreams(serverUrl)) != count)
            {
                if (DateTime.UtcNow > deadline) throw new Exception("timed out waiting for " + what + ": " + now + " streams open, expected " + count);
                Thread.Sleep(20);
            }
        }

        // --- the fast server (token required) ------------------------------------------------------

        sealed class HelloTimeoutPeer { public RawPeer Peer; public Task Reading; public Exception Failed; }

        static HelloTimeoutPeer StartHelloTimeoutPeer()
        {
            var started = new HelloTimeoutPeer();
            try
            {
                started.Peer = new RawPeer(Args["server"], Args["token"]);
                started.Reading = started.Peer.ReadUntilCloseAsync();
            }
            catch (Exception e) { started.Failed = e; }
            return started;
        }

        /// <summary>1008 hello_required: no hello within the server's hello timeout (10 s; vr-serve has no
        /// flag for it). The peer connected first thing and has only read since.</summary>
        static void FinishHelloTimeoutPeer(HelloTimeoutPeer started)
        {
            if (started.Failed != null) throw started.Failed;
            using (var peer = started.Peer)
                peer.ExpectClose(CloseCodes.PolicyViolation, ErrorCodes.HelloRequired, ErrorCodes.HelloRequired, "ClientWebSocket that sent no hello", started.Reading);
        }

        /// <summary>1002 unsupported_version: RecognitionClient asks for versions 2..1; it must not retry.</summary>
        static void LiveClose1002()
        {
            using (var w = new WatchedClient(new Uri(Args["server"]), "close-1002", o => { o.Token = Args["token"]; o.Protocol = 1; o.MinProtocol = 2; }))
            {
                var end = w.ExpectClose(CloseCodes.ProtocolError, ErrorCodes.UnsupportedVersion, ErrorCodes.UnsupportedVersion);
                Check(!end.WillReconnect, "no reconnect after 1002");
                Check(!end.WasConnected, "the stream never opened");
                w.Pump(() => w.Client.State == ConnectionState.Stopped, "the client to stop");
                Equal(1L, w.Client.GetStats().ConnectAttempts, "one attempt only");
                Equal(0, w.Connections, "never connected");
            }
        }

        /// <summary>1007 bad_json: a text message that is not valid UTF-8 fails the connection (RFC 6455 8.1).</summary>
        static void LiveClose1007()
        {
            using (var peer = new RawPeer(Args["server"], Args["token"]))
            {
                peer.Hello("close-1007");
                peer.SendText(new byte[] { (byte)'{', (byte)'"', 0xff, 0xfe, (byte)'"', (byte)'}' });
                peer.ExpectClose(CloseCodes.InvalidData, ErrorCodes.BadJson, null, "ClientWebSocket that sent invalid UTF-8");
            }
        }

        // --- the limits server: --max-streams 1, a small --max-message-mb --------------------------

        static byte[] Jpeg(string colour) { return System.IO.File.ReadAllBytes(System.IO.Path.Combine(Args["frames"], colour + ".jpg")); }

        /// <summary>A frame over limits.max_message_bytes is not sent (the server would close with 1009):
        /// RecognitionClient reports message_too_large itself and stays connected.</summary>
        static void LiveClientRefusesOversizedFrame()
        {
            string url = Args["limits-server"];
            WaitForActiveStreams(url, 0, "a free stream slot");
            using (var w = new WatchedClient(new Uri(url), "oversized-frame", o => o.MaxInFlight = 1))
            {
                var results = new List<FrameResult>();
                w.Client.ResultReceived += r => results.Add(r);
                w.Pump(() => w.Connections == 1, "the hello");
                long limit = w.Client.ServerHello.Limits.MaxMessageBytes;
                Check(limit < 1 << 20, "the limits server has a small max_message_bytes: " + limit);
                var big = new byte[limit]; // + the 72-byte header: over the limit
                w.Client.SubmitFrame(new OutgoingFrame { Payload = big, PayloadLength = big.Length, Width = 64, Height = 48 });
                w.Pump(() => w.Errors.Exists(e => e.Code == ErrorCodes.MessageTooLarge), "the local message_too_large");
                byte[] jpeg = Jpeg("green");
                w.Client.SubmitFrame(new OutgoingFrame { Payload = jpeg, PayloadLength = jpeg.Length, Width = 64, Height = 48 });
                w.Pump(() => results.Count == 1, "the next frame's result");
                Equal("green", results[0].Result.Top.Label, "still serving");
                Equal(0, w.Ends.Count, "no disconnect");
                Equal(1L, w.Client.GetStats().FramesSent, "only the frame within the limit was sent");
            }
        }

        /// <summary>4013 too_many_streams: with --max-streams 1, RecognitionClient's upgrade goes through
        /// while the slot is free, but its hello (held by a proxy) arrives after another stream took the
        /// slot. It must reconnect with backoff: refused at the upgrade (HTTP 503) while the slot is
        /// taken, connected once it is free.</summary>
        static void LiveClose4013TooManyStreams()
        {
            string url = Args["limits-server"];
            WaitForActiveStreams(url, 0, "a free stream slot");
            using (var proxy = new HelloHoldingProxy(url))
            using (var w = new WatchedClient(proxy.Uri, "close-4013"))
            {
                proxy.WaitHolding("the client's hello");
                RawPeer holder = new RawPeer(url);
                Task holding;
                try
                {
                    holder.Hello("slot-holder");
                    holding = holder.ReadUntilCloseAsync();
                    proxy.Release();
                    var end = w.ExpectClose(CloseCodes.TryAgainLater, ErrorCodes.TooManyStreams, ErrorCodes.TooManyStreams);
                    Check(!end.WasConnected, "the stream never opened");
                    ExpectReconnectWithBackoff(end);
                    // Retries while the slot is taken are refused at the upgrade (503: no close frame).
                    w.Pump(() => w.Ends.Count >= 3, "two more refused attempts");
                    Check(w.Ends.GetRange(1, w.Ends.Count - 1).TrueForAll(e => e.WillReconnect), "it keeps retrying");
                    Equal(0, w.Connections, "not connected while the slot is taken");
                    holder.Ws.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, "", CancellationToken.None).Wait(TimeSpan.FromSeconds(LiveTimeoutS));
                    Check(holding.Wait(TimeSpan.FromSeconds(LiveTimeoutS)), "the holder's close completes");
                }
                finally { holder.Dispose(); }
                w.Pump(() => w.Connections == 1, "the reconnect once the slot is free");
                Check(w.Client.GetStats().ConnectAttempts >= 4, "attempts: " + w.Client.GetStats().ConnectAttempts);
            }
        }

        /// <summary>1009 message_too_large: a message over --max-message-mb.</summary>
        static void LiveClose1009()
        {
            string url = Args["limits-server"];
            WaitForActiveStreams(url, 0, "a free stream slot");
            using (var peer = new RawPeer(url))
            {
                peer.Hello("close-1009");
                long limit = ((ServerHello)peer.Received[0]).Limits.MaxMessageBytes;
                var payload = new byte[limit];
                var frame = FrameCodec.Encode(new Frame { Format = ImageFormat.Jpeg, Width = 64, Height = 48, Payload = payload, PayloadLength = payload.Length });
                peer.SendBinary(frame);
                peer.ExpectClose(CloseCodes.MessageTooBig, ErrorCodes.MessageTooLarge, null, "ClientWebSocket that sent " + frame.Length + " bytes");
            }
        }

        // --- the fault server: pongs raise, --keepalive short, SIGTERM at the end -----------------

        /// <summary>1011 internal_error: the server fails while answering RecognitionClient's ping (an
        /// injected fault; nothing a client sends causes one by itself). The client reconnects.</summary>
        static void LiveClose1011()
        {
            using (var w = new WatchedClient(new Uri(Args["fault-server"]), "close-1011"))
            {
                w.Pump(() => w.Connections == 1, "the hello");
                w.Client.Ping();
                var end = w.ExpectClose(CloseCodes.InternalError, ErrorCodes.InternalError, null);
                Check(end.WasConnected, "the stream was open");
                ExpectReconnectWithBackoff(end);
                w.Pump(() => w.Connections == 2, "the reconnect");
            }
        }

        /// <summary>1008 slow_consumer: a client that stops reading misses the server's keepalive pong
        /// (Mono answers pings only while receiving). Started before the other checks so the keepalive's
        /// two intervals overlap them; it reads again only once the server has dropped it.</summary>
        static RawPeer StartSlowConsumer()
        {
            string url = Args["fault-server"];
            WaitForActiveStreams(url, 0, "a fresh fault server");
            var peer = new RawPeer(url);
            try { peer.Hello("close-1008-slow"); }
            catch (Exception) { peer.Dispose(); throw; }
            return peer;
        }

        static void FinishSlowConsumer(RawPeer peer)
        {
            using (peer)
            {
                WaitForActiveStreams(Args["fault-server"], 0, "the server to drop the client that does not read");
                peer.ExpectClose(CloseCodes.PolicyViolation, ErrorCodes.SlowConsumer, null, "ClientWebSocket that stopped reading");
            }
        }

        /// <summary>1001 shutting_down (after a fatal error shutting_down) for an open stream, and 4013
        /// shutting_down for a stream whose hello arrives after the server began to stop: SIGTERM with
        /// one RecognitionClient connected and another one's hello held by a proxy. Both reconnect
        /// with backoff.</summary>
        static void LiveClose1001And4013ShuttingDown()
        {
            string url = Args["fault-server"];
            WaitForActiveStreams(url, 0, "the previous streams to close");
            using (var proxy = new HelloHoldingProxy(url))
            using (var open = new WatchedClient(new Uri(url), "close-1001"))
            {
                open.Pump(() => open.Connections == 1, "the hello");
                using (var late = new WatchedClient(proxy.Uri, "close-4013-stopping"))
                {
                    proxy.WaitHolding("the late client's hello");
                    using (var kill = Process.Start(new ProcessStartInfo("kill", "-TERM " + Args["fault-server-pid"]) { UseShellExecute = false }))
                        kill.WaitForExit();
                    var end = open.ExpectClose(CloseCodes.GoingAway, ErrorCodes.ShuttingDown, ErrorCodes.ShuttingDown);
                    Check(end.WasConnected, "the stream was open");
                    ExpectReconnectWithBackoff(end);
                    proxy.Release(); // the server is stopping now (it said so): this hello comes too late
                    var lateEnd = late.ExpectClose(CloseCodes.TryAgainLater, ErrorCodes.ShuttingDown, ErrorCodes.ShuttingDown);
                    ExpectReconnectWithBackoff(lateEnd);
                    // The server is gone: both keep retrying with backoff.
                    open.Pump(() => open.Client.GetStats().ConnectAttempts >= 3, "retries after 1001");
                    late.Pump(() => late.Client.GetStats().ConnectAttempts >= 3, "retries after 4013");
                    Check(open.Ends.TrueForAll(e => e.WillReconnect), "every end after 1001 schedules a reconnect");
                }
            }
        }
    }
}
