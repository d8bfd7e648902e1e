// Sample: an on-screen latency and drop counter for the stream (OnGUI, so it shows in the editor's game
// view and the XR mirror window, not inside the headset), with an optional preview of the JPEG sent,
// to check the image is upright and framed as expected.
using UnityEngine;
using VrRecognition.Core;
using VrRecognition.Unity;

namespace VrRecognition.Samples
{
    [AddComponentMenu("VR Recognition/Samples/Latency HUD")]
    public sealed class LatencyHud : MonoBehaviour
    {
        public RecognitionClientBehaviour client;
        public FrameCapture capture;
        public bool showPreview = true;

        double smoothedLatencyMs, smoothedServerMs;
        float resultsThisSecond, resultsPerSecond, windowStart;
        Texture2D preview;
        byte[] previewSource;

        void OnEnable()
        {
            if (client != null) client.ResultReceived += OnResult;
            if (capture != null && showPreview) capture.keepPreview = true;
        }

        void OnDisable()
        {
            if (client != null) client.ResultReceived -= OnResult;
        }

        void OnResult(FrameResult frame)
        {
            const double a = 0.1; // exponential moving average over about ten results
            smoothedLatencyMs = smoothedLatencyMs <= 0 ? frame.LatencyMs : smoothedLatencyMs + a * (frame.LatencyMs - smoothedLatencyMs);
            var total = frame.Result.Timing("total");
            if (total.HasValue) smoothedServerMs = smoothedServerMs <= 0 ? total.Value : smoothedServerMs + a * (total.Value - smoothedServerMs);
            resultsThisSecond++;
        }

        void Update()
        {
            if (Time.unscaledTime - windowStart >= 1f)
            {
                resultsPerSecond = resultsThisSecond / (Time.unscaledTime - windowStart);
                resultsThisSecond = 0;
                windowStart = Time.unscaledTime;
            }
            if (showPreview && capture != null)
            {
                var jpeg = capture.LatestPreview;
                if (jpeg != null && !ReferenceEquals(jpeg, previewSource))
                {
                    previewSource = jpeg;
                    if (preview == null) preview = new Texture2D(2, 2, TextureFormat.RGBA32, false);
                    preview.LoadImage(jpeg); // main thread; a debugging aid, keep it off in production
                }
            }
        }

        void OnGUI()
        {
            var c = client != null ? client.Client : null;
            string text;
            if (c == null) text = "VR Recognition: client off";
            else
            {
                var s = c.GetStats();
                var model = c.Model;
                var last = client.LastOkResult;
                text = "VR Recognition: " + c.State + (model != null ? "  model " + model.Name + " " + model.Version : "")
                    + "\nlatency (capture to answer) " + smoothedLatencyMs.ToString("F1") + " ms, server " + smoothedServerMs.ToString("F1")
                    + " ms, round trip " + s.LastRoundTripMs.ToString("F1") + " ms"
                    + "\nanswers " + resultsPerSecond.ToString("F1") + "/s, in flight " + s.InFlight + "/" + c.Options.MaxInFlight
                    + "\nsent " + s.FramesSent + ", dropped here " + s.FramesReplaced + ", server stale " + s.ResultsDroppedStale
                    + ", late " + s.ResultsLate + ", errors " + s.ResultsError + ", lost " + s.FramesLost
                    + (capture != null ? "\ncaptured " + capture.FramesCaptured + ", skipped " + capture.FramesSkipped : "")
                    + (last != null && last.Result.Top != null ? "\n" + last.Result.Top.Label + " " + last.Result.Top.Score.ToString("F2") : "");
            }
            GUI.Box(new Rect(10, 10, 520, 130), "");
            GUI.Label(new Rect(20, 15, 500, 120), text);
            if (showPreview && preview != null)
                GUI.DrawTexture(new Rect(10, 150, 256, 256f * preview.height / Mathf.Max(1, preview.width)), preview);
        }
    }
}
