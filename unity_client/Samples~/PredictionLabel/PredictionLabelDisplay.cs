// Sample: shows the newest prediction as a world-space label where the user was looking when the
// frame was captured (the pose and gaze the server echoes), facing the user.
using UnityEngine;
using VrRecognition.Core;
using VrRecognition.Unity;

namespace VrRecognition.Samples
{
    [AddComponentMenu("VR Recognition/Samples/Prediction Label Display")]
    public sealed class PredictionLabelDisplay : MonoBehaviour
    {
        public RecognitionClientBehaviour client;
        [Tooltip("A TextMesh to move and fill; created if empty.")]
        public TextMesh label;
        [Tooltip("How far in front of the capture pose the label floats, metres.")]
        public float distance = 1.5f;
        [Tooltip("Hide predictions below this score.")]
        [Range(0f, 1f)] public float minScore = 0.5f;
        [Tooltip("Hide the label when no answer came for this long, seconds.")]
        public float hideAfterSeconds = 1.0f;

        float lastShown = -100f;

        void OnEnable()
        {
            if (label == null)
            {
                var go = new GameObject("Prediction label");
                label = go.AddComponent<TextMesh>();
                label.characterSize = 0.02f;
                label.fontSize = 64;
                label.anchor = TextAnchor.MiddleCenter;
                label.color = Color.white;
            }
            if (client != null) client.ResultReceived += Show;
        }

        void OnDisable()
        {
            if (client != null) client.ResultReceived -= Show;
        }

        void Update()
        {
            var active = Time.unscaledTime - lastShown < hideAfterSeconds;
            if (label.gameObject.activeSelf != active) label.gameObject.SetActive(active);
            var head = Camera.main;
            if (active && head != null)
                label.transform.rotation = Quaternion.LookRotation(label.transform.position - head.transform.position);
        }

        // Main thread: the client behaviour dispatches results from Update.
        void Show(FrameResult frame)
        {
            var result = frame.Result;
            var top = result.Top;
            if (!result.IsOk || top == null || top.Score < minScore) return;
            label.text = top.Label + "  " + (top.Score * 100).ToString("F0") + " %";
            if (result.PosePosition != null)
            {
                var position = new Vector3((float)result.PosePosition[0], (float)result.PosePosition[1], (float)result.PosePosition[2]);
                var rotation = new Quaternion((float)result.PoseRotation[0], (float)result.PoseRotation[1],
                    (float)result.PoseRotation[2], (float)result.PoseRotation[3]);
                // Towards the gaze point through the capture camera's projection when we still have it.
                var direction = rotation * Vector3.forward;
                var capture = FindCapture();
                if (result.Gaze != null && capture != null && capture.CaptureCamera != null)
                {
                    var ray = capture.CaptureCamera.ViewportPointToRay(new Vector3((float)result.Gaze[0], 1f - (float)result.Gaze[1], 0f));
                    // The capture camera has moved since; rotate the ray's local direction into the frame's pose.
                    var local = Quaternion.Inverse(capture.CaptureCamera.transform.rotation) * ray.direction;
                    direction = rotation * local;
                }
                label.transform.position = position + direction.normalized * distance;
            }
            lastShown = Time.unscaledTime;
        }

        FrameCapture cachedCapture;

        FrameCapture FindCapture()
        {
            if (cachedCapture == null && client != null) cachedCapture = client.GetComponent<FrameCapture>();
            return cachedCapture;
        }
    }
}
