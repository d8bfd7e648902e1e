// Recorder mode: writes labelled frames as a capture session (docs/capture-format.md) that train-vr reads
// directly. The label of a frame is the RecognitionLabel on the object the gaze ray hits, or the label
// bound to a key held down (or set from code with SetManualLabel). Frames without a label are skipped.
// Uses FrameCapture's pipeline (AsyncGPUReadback + worker-thread JPEG); writing happens on the encoding
// thread through the thread-safe core CaptureSessionWriter.
using System;
using System.Globalization;
using System.IO;
using UnityEngine;
using VrRecognition.Core;

namespace VrRecognition.Unity
{
    public enum LabelSource { GazeRaycast, KeyOrCode, GazeThenKey }

    [Serializable]
    public struct KeyLabel
    {
        public KeyCode key;
        public string label;
    }

    [AddComponentMenu("VR Recognition/Capture Recorder")]
    public sealed class CaptureRecorder : MonoBehaviour, IFrameLabeler
    {
        public FrameCapture capture;
        [Tooltip("The session's class list; every recorded label is one of these.")]
        public string[] classes = { "teapot", "panda", "box" };
        [Tooltip("Dataset root; empty = Application.persistentDataPath/captures. One session folder per recording.")]
        public string outputFolder = "";
        public LabelSource labelSource = LabelSource.GazeThenKey;
        [Tooltip("Hold a key to label what is in view (legacy Input Manager; with the Input System only, call SetManualLabel).")]
        public KeyLabel[] keyLabels = new KeyLabel[0];
        public float maxRayDistance = 20f;
        public LayerMask raycastLayers = ~0;
        [Tooltip("Fixed split for this session: 'train', 'val' or empty (the trainer decides).")]
        public string split = "";
        public KeyCode toggleRecordingKey = KeyCode.F9;
        public bool recordOnStart = false;
        [TextArea] public string notes = "";

        CaptureSessionWriter writer;
        double startRealtime;
        string manualLabel;
        int written, failed;

        public bool IsRecording { get { return writer != null; } }
        public string SessionFolder { get { return writer != null ? writer.SessionDirectory : null; } }
        public int FramesWritten { get { return written; } }

        void Start()
        {
            if (recordOnStart) StartRecording();
        }

        void OnDisable() { StopRecording(); }

        void Update()
        {
            if (toggleRecordingKey != KeyCode.None && Input.GetKeyDown(toggleRecordingKey))
            {
                if (IsRecording) StopRecording(); else StartRecording();
            }
            if (labelSource != LabelSource.GazeRaycast && keyLabels.Length > 0)
            {
                string held = null;
                for (int i = 0; i < keyLabels.Length; i++)
                    if (Input.GetKey(keyLabels[i].key)) { held = keyLabels[i].label; break; }
                manualLabel = held;
            }
        }

        /// <summary>Label the frames from now on (null: none), for custom input bindings or UI.</summary>
        public void SetManualLabel(string label) { manualLabel = label; }

        public void StartRecording()
        {
            if (IsRecording || capture == null) return;
            string root = string.IsNullOrEmpty(outputFolder) ? Path.Combine(Application.persistentDataPath, "captures") : outputFolder;
            var created = DateTime.UtcNow;
            string folder = Path.Combine(root, "unity-" + created.ToString("yyyy-MM-dd'T'HH-mm-ss'Z'", CultureInfo.InvariantCulture));
            var cam = capture.sourceCamera != null ? capture.sourceCamera : Camera.main;
            writer = new CaptureSessionWriter(folder, new CaptureSessionInfo
            {
                Source = "unity-recorder " + RecognitionClient.Version + " (" + SystemInfo.deviceModel + ")",
                Width = capture.width,
                Height = capture.height,
                VerticalFovDeg = cam != null ? cam.fieldOfView : 60f,
                Classes = classes,
                Notes = notes,
                CreatedUtc = created,
            });
            startRealtime = Time.realtimeSinceStartupAsDouble;
            written = 0;
            capture.Labeler = this;
            capture.FrameEncoded += OnFrameEncoded;
            Debug.Log("VR Recognition: recording to " + folder);
        }

        public void StopRecording()
        {
            if (!IsRecording) return;
            capture.FrameEncoded -= OnFrameEncoded;
            if (ReferenceEquals(capture.Labeler, this)) capture.Labeler = null;
            var done = writer;
            writer = null;
            done.Dispose();
            Debug.Log("VR Recognition: recorded " + written + " frames to " + done.SessionDirectory + (failed > 0 ? " (" + failed + " failed)" : ""));
        }

        // Main thread, at capture time.
        public string LabelFor(Camera imageCamera, Vector2 gazeTopLeft)
        {
            if (labelSource != LabelSource.KeyOrCode && imageCamera != null)
            {
                // Viewport origin is bottom-left, the gaze point's top-left.
                Ray ray = imageCamera.ViewportPointToRay(new Vector3(gazeTopLeft.x, 1f - gazeTopLeft.y, 0f));
                RaycastHit hit;
                if (Physics.Raycast(ray, out hit, maxRayDistance, raycastLayers))
                {
                    var tag = hit.collider.GetComponentInParent<RecognitionLabel>();
                    if (tag != null && Array.IndexOf(classes, tag.label) >= 0) return tag.label;
                }
                if (labelSource == LabelSource.GazeRaycast) return null;
            }
            return manualLabel != null && Array.IndexOf(classes, manualLabel) >= 0 ? manualLabel : null;
        }

        // Encoding thread: the core writer is thread-safe.
        void OnFrameEncoded(CapturedFrame frame)
        {
            var w = writer;
            if (w == null || frame.Label == null || frame.Format != ImageFormat.Jpeg) return;
            try
            {
                w.AddFrame(frame.Payload, frame.PayloadLength, frame.Label, Math.Max(0, frame.RealtimeS - startRealtime),
                    frame.Pose, frame.Gaze, string.IsNullOrEmpty(split) ? null : split);
                System.Threading.Interlocked.Increment(ref written);
            }
            catch (ObjectDisposedException) { } // recording stopped meanwhile
            catch (Exception e)
            {
                System.Threading.Interlocked.Increment(ref failed);
                Debug.LogException(e);
            }
        }
    }
}
