// The connection to vr-serve as a component: builds the core RecognitionClient from inspector settings,
// starts it on enable, stops it on disable, and raises its events on the main thread (DispatchPending in
// Update). Frames come from FrameCapture (or any script calling Submit).
using System;
using UnityEngine;
using VrRecognition.Core;

namespace VrRecognition.Unity
{
    [DisallowMultipleComponent]
    [AddComponentMenu("VR Recognition/Recognition Client")]
    public sealed class RecognitionClientBehaviour : MonoBehaviour
    {
        [Header("Server")]
        [Tooltip("ws://HOST:PORT/ on a trusted LAN, wss://HOST:PORT/ anywhere else (Android blocks cleartext ws:// unless allowed).")]
        public string serverUrl = "ws://192.168.1.10:8765/";
        [Tooltip("Sent as 'Authorization: Bearer TOKEN' when not empty (vr-serve --token).")]
        public string token = "";

        [Header("Stream")]
        [Tooltip("Most frames sent per second; 0 = as fast as the in-flight cap allows.")]
        public float targetFps = 30f;
        [Tooltip("Frames sent but not answered yet; at the cap a newer frame replaces the waiting one.")]
        [Range(1, 8)] public int maxInFlight = 2;
        [Tooltip("Labels per result (0 = server default).")]
        public int topK = 3;
        [Tooltip("Per-frame latency budget in ms (0 = server default; 90 Hz: 11.1).")]
        public float budgetMs = 0f;
        [Tooltip("Server-side score smoothing weight of the newest frame, (0, 1]; 0 = off.")]
        [Range(0f, 1f)] public float smoothingEmaAlpha = 0f;
        [Tooltip("Classify a square crop around the gaze point, as a fraction of the shorter side; 0 = off.")]
        [Range(0f, 1f)] public float gazeCropScale = 0f;

        [Header("Reconnect")]
        public float reconnectInitialSeconds = 0.5f;
        public float reconnectMaxSeconds = 10f;
        public bool logEvents = true;

        RecognitionClient client;

        /// <summary>Raised on the main thread for every result.</summary>
        public event Action<FrameResult> ResultReceived;
        public event Action<ServerHello> Connected;
        public event Action<string> Disconnected;
        /// <summary>Raised on the main thread when a connection ends: the server's close code and reason
        /// (e.g. 4013 too_many_streams), its fatal error, and whether the client reconnects.</summary>
        public event Action<DisconnectInfo> ConnectionEnded;

        public RecognitionClient Client { get { return client; } }
        public FrameResult LastResult { get; private set; }
        public FrameResult LastOkResult { get; private set; }
        public bool IsConnected { get { return client != null && client.IsConnected; } }

        void OnEnable()
        {
            if (Application.platform == RuntimePlatform.WebGLPlayer)
            {
                Debug.LogError("VR Recognition: WebGL has no System.Net.WebSockets; see docs/unity.md (Limits).");
                enabled = false;
                return;
            }
            var settings = new StreamSettings
            {
                TopK = topK > 0 ? (int?)topK : null,
                BudgetMs = budgetMs > 0 ? (double?)budgetMs : null,
                Fps = targetFps > 0 ? (double?)targetFps : null,
                SmoothingEmaAlpha = smoothingEmaAlpha > 0 ? (double?)smoothingEmaAlpha : null,
                GazeCropScale = gazeCropScale > 0 ? (double?)gazeCropScale : null,
            };
            var options = new ClientOptions
            {
                ServerUri = new Uri(serverUrl),
                Token = string.IsNullOrEmpty(token) ? null : token,
                ClientName = "unity-client",
                Settings = settings,
                TargetFps = Math.Max(0f, targetFps),
                MaxInFlight = Math.Max(1, maxInFlight),
                Backoff = new Backoff
                {
                    Initial = TimeSpan.FromSeconds(Math.Max(0.05f, reconnectInitialSeconds)),
                    Max = TimeSpan.FromSeconds(Math.Max(reconnectInitialSeconds, reconnectMaxSeconds)),
                },
            };
            client = new RecognitionClient(options);
            client.ResultReceived += OnResult;
            client.Connected += OnConnected;
            client.Disconnected += OnDisconnected;
            client.ConnectionEnded += OnConnectionEnded;
            client.ServerError += OnServerError;
            client.ModelChanged += OnModelChanged;
            client.Start();
        }

        void Update()
        {
            if (client != null) client.DispatchPending();
        }

        void OnDisable()
        {
            if (client == null) return;
            client.Stop(TimeSpan.FromSeconds(1));
            client.DispatchPending();
            client = null;
        }

        void OnApplicationPause(bool paused)
        {
            // A paused headset app (Quest: headset off) should not hold a stream the server waits on.
            if (paused) OnDisable();
            else if (enabled && client == null) OnEnable();
        }

        /// <summary>Hands a frame to the send slot (any thread); false when not connected.</summary>
        public bool Submit(OutgoingFrame frame)
        {
            var c = client;
            return c != null && c.SubmitFrame(frame);
        }

        /// <summary>Changes budget/top-k/smoothing mid-stream, e.g. after a refresh-rate change. Null fields
        /// stay as they are; settings.ResetToDefault(...) sends fields as null, back to the server's default
        /// (StreamSettings.SmoothingAndGazeCropOff() turns smoothing and the gaze crop off).</summary>
        public void Reconfigure(StreamSettings settings)
        {
            if (client != null) client.Configure(settings);
        }

        void OnResult(FrameResult result)
        {
            LastResult = result;
            if (result.Result.IsOk) LastOkResult = result;
            var handler = ResultReceived;
            if (handler != null) handler(result);
        }

        void OnConnected(ServerHello hello)
        {
            if (logEvents)
                Debug.Log("VR Recognition: connected to " + hello.ServerName + " " + hello.ServerVersion + ", model "
                    + hello.Model.Name + " (" + hello.Model.Classes.Length + " classes) on " + hello.Model.Provider);
            var handler = Connected;
            if (handler != null) handler(hello);
        }

        void OnDisconnected(string why)
        {
            var handler = Disconnected;
            if (handler != null) handler(why);
        }

        void OnConnectionEnded(DisconnectInfo info)
        {
            if (logEvents)
            {
                if (info.WillReconnect || info.Stopped) Debug.LogWarning("VR Recognition: disconnected: " + info);
                else Debug.LogError("VR Recognition: disconnected for good: " + info); // e.g. 1002: no common protocol version
            }
            var handler = ConnectionEnded;
            if (handler != null) handler(info);
        }

        void OnServerError(ErrorMessage error)
        {
            if (logEvents) Debug.LogWarning("VR Recognition: server error " + error.Code + ": " + error.Message);
        }

        void OnModelChanged(ModelInfo model)
        {
            if (logEvents) Debug.Log("VR Recognition: model changed to " + model.Name + " " + model.Version);
        }
    }
}
