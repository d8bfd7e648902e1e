// Where the user looks, as a point in the captured image (u, v in [0, 1], origin top-left, as the
// protocol wants). From an eye tracker through UnityEngine.XR (CommonUsages.eyesData) when one is
// present, else the screen centre (0.5, 0.5).
using System.Collections.Generic;
using UnityEngine;
using UnityEngine.XR;

namespace VrRecognition.Unity
{
    [AddComponentMenu("VR Recognition/Gaze Source")]
    public sealed class GazeSource : MonoBehaviour
    {
        [Tooltip("Use an XR eye-tracking device when one is connected (needs the platform's eye-tracking permission).")]
        public bool useEyeTracking = true;

        readonly List<InputDevice> devices = new List<InputDevice>();
        float nextDeviceScan;

        /// <summary>True when the last call used the eye tracker rather than the screen centre.</summary>
        public bool LastFromEyeTracker { get; private set; }

        /// <summary>The gaze point in the image `imageCamera` renders. Main thread only.</summary>
        public Vector2 GetGaze(Camera imageCamera)
        {
            LastFromEyeTracker = false;
            Vector3 fixation;
            if (useEyeTracking && imageCamera != null && TryGetFixationPoint(out fixation))
            {
                // Eye-tracking points are in tracking space: the camera's parent (the XR origin's offset).
                Transform space = imageCamera.transform.parent;
                Vector3 world = space != null ? space.TransformPoint(fixation) : fixation;
                Vector3 viewport = imageCamera.WorldToViewportPoint(world);
                if (viewport.z > 0f)
                {
                    LastFromEyeTracker = true;
                    // Viewport origin is bottom-left; the protocol's is top-left.
                    return new Vector2(Mathf.Clamp01(viewport.x), Mathf.Clamp01(1f - viewport.y));
                }
            }
            return new Vector2(0.5f, 0.5f);
        }

        bool TryGetFixationPoint(out Vector3 point)
        {
            point = Vector3.zero;
            if (devices.Count == 0 && Time.realtimeSinceStartup >= nextDeviceScan)
            {
                nextDeviceScan = Time.realtimeSinceStartup + 2f; // device lookup allocates: not every frame
                InputDevices.GetDevicesWithCharacteristics(InputDeviceCharacteristics.EyeTracking, devices);
            }
            for (int i = 0; i < devices.Count; i++)
            {
                Eyes eyes;
                if (devices[i].isValid && devices[i].TryGetFeatureValue(CommonUsages.eyesData, out eyes)
                    && eyes.TryGetFixationPoint(out point))
                    return true;
            }
            if (devices.Count > 0 && !devices[0].isValid) devices.Clear();
            return false;
        }
    }
}
