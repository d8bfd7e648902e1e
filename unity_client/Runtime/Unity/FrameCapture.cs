// Captures the headset's view without stalling it: the view is rendered (or blitted) into a small
// RenderTexture, copied back with AsyncGPUReadback (no ReadPixels on the render path: the CPU never
// waits for the GPU), JPEG-encoded on a worker thread with ImageConversion.EncodeArrayToJPG, and handed
// to the client's latest-frame-wins slot with the head pose and gaze point taken when the frame was
// rendered. See docs/unity.md for costs, caveats and fallbacks.
using System;
using System.Collections.Generic;
using System.Threading;
using UnityEngine;
using UnityEngine.Experimental.Rendering;
using UnityEngine.Rendering;
using VrRecognition.Core;

namespace VrRecognition.Unity
{
    public enum FrameEncoding
    {
        /// <summary>EncodeArrayToJPG on a thread-pool thread (default; thread-safe in Unity 2021.3+).</summary>
        JpegWorkerThread,
        /// <summary>EncodeArrayToJPG on the main thread: the fallback if threaded encoding misbehaves.</summary>
        JpegMainThread,
        /// <summary>Raw RGBA8 with the ROWS_BOTTOM_UP flag: no encode cost, ~4 bytes a pixel on the wire (tethered/LAN only).</summary>
        RawRgba,
    }

    /// <summary>Chooses the label of a frame when it is captured (main thread). The recorder implements it.</summary>
    public interface IFrameLabeler
    {
        /// <summary>The label for the frame `imageCamera` just rendered, or null to not record it.</summary>
        string LabelFor(Camera imageCamera, Vector2 gazeTopLeft);
    }

    /// <summary>One captured, encoded frame, as FrameCapture.FrameEncoded reports it.</summary>
    public sealed class CapturedFrame
    {
        public byte[] Payload;
        public int PayloadLength;
        public int Width, Height;
        public ImageFormat Format;
        public bool RowsBottomUp;
        public Core.Pose Pose;
        public Gaze Gaze;
        public bool GazeFromEyeTracker;
        public long CaptureTimeUs;
        /// <summary>Time.realtimeSinceStartupAsDouble when the frame was rendered.</summary>
        public double RealtimeS;
        /// <summary>From the IFrameLabeler, or null.</summary>
        public string Label;
    }

    [AddComponentMenu("VR Recognition/Frame Capture")]
    public sealed class FrameCapture : MonoBehaviour
    {
        [Header("Source")]
        [Tooltip("The head (XR) camera; default Camera.main. A hidden low-resolution camera follows it.")]
        public Camera sourceCamera;
        [Tooltip("Optional: capture this texture (e.g. a passthrough feed) instead of rendering the scene.")]
        public Texture sourceTexture;

        [Header("Image")]
        public int width = 448;
        public int height = 252;
        [Range(1, 100)] public int jpegQuality = 80;
        public FrameEncoding encoding = FrameEncoding.JpegWorkerThread;
        [Tooltip("Readback rows arrive bottom-up (Unity's texture order) on D3D, Vulkan, Metal and GL. Untick only if frames arrive upside down on your target (see the HUD preview).")]
        public bool readbackBottomUp = true;

        [Header("Rate")]
        [Tooltip("Captures per second; 0 = every rendered frame (the client still paces and drops).")]
        public float targetFps = 30f;
        [Tooltip("Readbacks waiting for the GPU; more are skipped, so a slow GPU never piles up work.")]
        [Range(1, 4)] public int maxReadbacksInFlight = 2;
        [Tooltip("Skip the capture while the client would only replace a waiting frame (saves GPU and CPU).")]
        public bool skipWhenClientBusy = true;

        [Header("Wiring")]
        [Tooltip("Where frames are sent; empty = record only.")]
        public RecognitionClientBehaviour client;
        [Tooltip("Gaze point source; empty = screen centre.")]
        public GazeSource gazeSource;
        [Tooltip("Keep a copy of the latest JPEG for on-screen previews (the sample HUD).")]
        public bool keepPreview = false;

        /// <summary>Raised for every encoded frame, on the thread that encoded it (a worker thread with
        /// JpegWorkerThread): handlers must be thread-safe. The payload is only valid during the call.</summary>
        public event Action<CapturedFrame> FrameEncoded;
        /// <summary>Decides labels for the recorder (called on the main thread at capture time).</summary>
        public IFrameLabeler Labeler;

        Camera captureCamera;
        RenderTexture target;
        double nextCaptureTime;
        int readbacksInFlight;
        int encodesInFlight;
        byte[] latestPreview;
        readonly Stack<byte[]> rawPool = new Stack<byte[]>();
        readonly Stack<OutgoingFrame> framePool = new Stack<OutgoingFrame>();
        long captured, skippedBusy, readbackErrors;

        /// <summary>The hidden camera that renders the captured view (its projection defines gaze u, v).</summary>
        public Camera CaptureCamera { get { return captureCamera; } }
        public long FramesCaptured { get { return Interlocked.Read(ref captured); } }
        public long FramesSkipped { get { return Interlocked.Read(ref skippedBusy); } }
        public long ReadbackErrors { get { return Interlocked.Read(ref readbackErrors); } }
        /// <summary>The latest encoded JPEG when keepPreview is on (a copy; any thread may replace it).</summary>
        public byte[] LatestPreview { get { return Volatile.Read(ref latestPreview); } }

        void OnEnable()
        {
            if (!SystemInfo.supportsAsyncGPUReadback)
            {
                Debug.LogError("VR Recognition: this device has no AsyncGPUReadback; FrameCapture is disabled (ReadPixels would stall the headset).");
                enabled = false;
                return;
            }
        }

        void OnDisable()
        {
            if (target != null) { target.Release(); Destroy(target); target = null; }
            if (captureCamera != null) { Destroy(captureCamera.gameObject); captureCamera = null; }
        }

        void LateUpdate()
        {
            double now = Time.realtimeSinceStartupAsDouble;
            if (targetFps > 0 && now < nextCaptureTime) return;
            var head = sourceCamera != null ? sourceCamera : Camera.main;
            if (head == null) return;
            bool sending = client != null && client.IsConnected;
            bool recording = Labeler != null;
            if (!sending && !recording) return;
            if (readbacksInFlight >= maxReadbacksInFlight || Volatile.Read(ref encodesInFlight) > 1
                || (skipWhenClientBusy && !recording && sending && client.Client.IsSaturated))
            {
                Interlocked.Increment(ref skippedBusy);
                return;
            }
            if (targetFps > 0)
            {
                double period = 1.0 / targetFps;
                // Keep the cadence when on time; restart it after a hitch instead of bursting to catch up.
                nextCaptureTime = now - nextCaptureTime > period ? now + period : nextCaptureTime + period;
            }
            EnsureTargets(head);

            if (sourceTexture != null)
            {
                Graphics.Blit(sourceTexture, target); // GPU-side downscale
            }
            else
            {
                var t = head.transform;
                captureCamera.transform.SetPositionAndRotation(t.position, t.rotation);
                captureCamera.fieldOfView = head.fieldOfView;
                captureCamera.aspect = (float)width / height;
                captureCamera.cullingMask = head.cullingMask;
                captureCamera.Render(); // into the small target texture; queued on the GPU, not waited for
            }

            var frame = new CapturedFrame
            {
                Width = width,
                Height = height,
                CaptureTimeUs = MonotonicClock.NowUs(),
                RealtimeS = now,
            };
            var headTransform = head.transform;
            Vector3 p = headTransform.position;
            Quaternion q = headTransform.rotation;
            frame.Pose = new Core.Pose(p.x, p.y, p.z, q.x, q.y, q.z, q.w);
            Vector2 gaze = gazeSource != null ? gazeSource.GetGaze(captureCamera) : new Vector2(0.5f, 0.5f);
            frame.Gaze = new Gaze(gaze.x, gaze.y);
            frame.GazeFromEyeTracker = gazeSource != null && gazeSource.LastFromEyeTracker;
            if (Labeler != null) frame.Label = Labeler.LabelFor(captureCamera, gaze);

            readbacksInFlight++;
            AsyncGPUReadback.Request(target, 0, TextureFormat.RGBA32, request => OnReadback(request, frame));
        }

        void EnsureTargets(Camera head)
        {
            if (target == null || target.width != width || target.height != height)
            {
                if (target != null) { target.Release(); Destroy(target); }
                target = new RenderTexture(width, height, 24, RenderTextureFormat.ARGB32);
                target.Create();
                lock (rawPool) rawPool.Clear();
            }
            if (sourceTexture == null && captureCamera == null)
            {
                var go = new GameObject("VR Recognition capture camera");
                go.hideFlags = HideFlags.HideAndDontSave;
                captureCamera = go.AddComponent<Camera>();
                captureCamera.CopyFrom(head);
                captureCamera.stereoTargetEye = StereoTargetEyeMask.None; // a plain mono camera, not an XR eye
                captureCamera.enabled = false; // rendered only on demand, by Render()
            }
            if (captureCamera != null) captureCamera.targetTexture = target;
        }

        // Main thread (Unity calls readback callbacks from the player loop).
        void OnReadback(AsyncGPUReadbackRequest request, CapturedFrame frame)
        {
            readbacksInFlight--;
            if (request.hasError || !enabled)
            {
                if (request.hasError) Interlocked.Increment(ref readbackErrors);
                return;
            }
            var data = request.GetData<byte>();
            byte[] raw = RentRaw(data.Length);
            data.CopyTo(raw); // the NativeArray is only valid during this callback
            Interlocked.Increment(ref captured);
            frame.RowsBottomUp = readbackBottomUp;
            switch (encoding)
            {
                case FrameEncoding.RawRgba:
                    frame.Format = ImageFormat.Rgba8;
                    frame.Payload = raw;
                    frame.PayloadLength = raw.Length;
                    Deliver(frame, raw);
                    break;
                case FrameEncoding.JpegMainThread:
                    Encode(frame, raw);
                    break;
                default:
                    Interlocked.Increment(ref encodesInFlight);
                    ThreadPool.QueueUserWorkItem(_ =>
                    {
                        try { Encode(frame, raw); }
                        finally { Interlocked.Decrement(ref encodesInFlight); }
                    });
                    break;
            }
        }

        // Any thread. Unity's image encoders read arrays in texture layout (first row = bottom row), the
        // layout readback delivers, so bottom-up rows are encoded as they are and come out upright;
        // only a platform whose readback is top-down needs the flip (cheap next to the encode).
        void Encode(CapturedFrame frame, byte[] raw)
        {
            try
            {
                if (!frame.RowsBottomUp) FlipRows(raw, frame.Width * 4, frame.Height);
                byte[] jpeg = ImageConversion.EncodeArrayToJPG(raw, GraphicsFormat.R8G8B8A8_SRGB,
                    (uint)frame.Width, (uint)frame.Height, 0, jpegQuality);
                ReturnRaw(raw);
                frame.Format = ImageFormat.Jpeg;
                frame.RowsBottomUp = false;
                frame.Payload = jpeg;
                frame.PayloadLength = jpeg.Length;
                if (keepPreview) Volatile.Write(ref latestPreview, jpeg);
                Deliver(frame, null);
            }
            catch (Exception e)
            {
                Debug.LogException(e);
            }
        }

        void Deliver(CapturedFrame frame, byte[] pooledRaw)
        {
            var handler = FrameEncoded;
            if (handler != null)
            {
                try { handler(frame); } catch (Exception e) { Debug.LogException(e); }
            }
            var c = client;
            if (c == null || c.Client == null)
            {
                if (pooledRaw != null) ReturnRaw(pooledRaw);
                return;
            }
            OutgoingFrame outgoing;
            lock (framePool) outgoing = framePool.Count > 0 ? framePool.Pop() : new OutgoingFrame();
            outgoing.Payload = frame.Payload;
            outgoing.PayloadLength = frame.PayloadLength;
            outgoing.Width = frame.Width;
            outgoing.Height = frame.Height;
            outgoing.Format = frame.Format;
            outgoing.RowsBottomUp = frame.RowsBottomUp;
            outgoing.Pose = frame.Pose;
            outgoing.Gaze = frame.Gaze;
            outgoing.CaptureTimeUs = frame.CaptureTimeUs;
            outgoing.UserState = frame;
            c.Client.RecycleFrame = Recycle;
            c.Submit(outgoing); // a frame not sent yet is replaced: latest frame wins
        }

        // Network thread: the client is done with the frame (sent, replaced or discarded).
        void Recycle(OutgoingFrame frame)
        {
            if (frame.Format != ImageFormat.Jpeg) ReturnRaw(frame.Payload);
            frame.Payload = null;
            frame.UserState = null;
            lock (framePool) if (framePool.Count < 8) framePool.Push(frame);
        }

        byte[] RentRaw(int length)
        {
            lock (rawPool)
            {
                while (rawPool.Count > 0)
                {
                    var buffer = rawPool.Pop();
                    if (buffer.Length == length) return buffer;
                }
            }
            return new byte[length]; // NativeArray.CopyTo needs the exact length
        }

        void ReturnRaw(byte[] buffer)
        {
            if (buffer == null) return;
            lock (rawPool) if (rawPool.Count < 4) rawPool.Push(buffer);
        }

        static void FlipRows(byte[] pixels, int rowBytes, int rows)
        {
            var temp = new byte[rowBytes];
            for (int top = 0, bottom = rows - 1; top < bottom; top++, bottom--)
            {
                Buffer.BlockCopy(pixels, top * rowBytes, temp, 0, rowBytes);
                Buffer.BlockCopy(pixels, bottom * rowBytes, pixels, top * rowBytes, rowBytes);
                Buffer.BlockCopy(temp, 0, pixels, bottom * rowBytes, rowBytes);
            }
        }
    }
}
