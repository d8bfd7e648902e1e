// Stubs of the UnityEngine.XR input API used for eye tracking (compile-only; see UnityEngine.cs).
#pragma warning disable 0067, 0649, 0169
using System;
using System.Collections.Generic;

namespace UnityEngine.XR
{
    [Flags]
    public enum InputDeviceCharacteristics : uint { None = 0, HeadMounted = 1, Camera = 2, HeldInHand = 4, HandTracking = 8, EyeTracking = 16 }

    public struct InputFeatureUsage<T>
    {
        public InputFeatureUsage(string usageName) { name = usageName; }
        public string name { get; set; }
    }

    public struct Eyes
    {
        public bool TryGetFixationPoint(out Vector3 fixationPoint) { fixationPoint = default(Vector3); return false; }
    }

    public static class CommonUsages
    {
        public static InputFeatureUsage<Eyes> eyesData = new InputFeatureUsage<Eyes>("EyesData");
    }

    public struct InputDevice
    {
        public bool isValid { get { return false; } }
        public string name { get { return ""; } }
        public bool TryGetFeatureValue(InputFeatureUsage<Eyes> usage, out Eyes value) { value = default(Eyes); return false; }
        public bool TryGetFeatureValue(InputFeatureUsage<bool> usage, out bool value) { value = false; return false; }
    }

    public static class InputDevices
    {
        public static void GetDevicesWithCharacteristics(InputDeviceCharacteristics desiredCharacteristics, List<InputDevice> inputDevices) { }
    }
}
