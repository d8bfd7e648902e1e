// Minimal stubs of the UnityEngine API that Runtime/Unity and Samples~ use, with Unity's signatures, so
// tests/test_unity_client.py can compile those scripts with Mono outside Unity and catch a renamed
// member or a typo. Compile-only: nothing here runs. Unity itself never compiles this folder (the
// Tests asmdef's define constraint is never set). Add a member here only as Unity documents it.
#pragma warning disable 0067, 0649, 0169
using System;

namespace UnityEngine
{
    public class Object
    {
        public string name { get; set; }
        public HideFlags hideFlags { get; set; }
        public static void Destroy(Object obj) { }
        public static void DontDestroyOnLoad(Object target) { }
        public static implicit operator bool(Object exists) { return !ReferenceEquals(exists, null); }
    }

    [Flags]
    public enum HideFlags { None = 0, HideInHierarchy = 1, HideInInspector = 2, DontSaveInEditor = 4, NotEditable = 8, DontSaveInBuild = 16, DontUnloadUnusedAsset = 32, DontSave = 52, HideAndDontSave = 61 }

    public class Component : Object
    {
        public Transform transform { get { return null; } }
        public GameObject gameObject { get { return null; } }
        public T GetComponent<T>() { return default(T); }
        public T GetComponentInParent<T>() { return default(T); }
    }

    public class Behaviour : Component
    {
        public bool enabled { get; set; }
        public bool isActiveAndEnabled { get { return true; } }
    }

    public class MonoBehaviour : Behaviour { }

    public sealed class GameObject : Object
    {
        public GameObject() { }
        public GameObject(string name) { }
        public Transform transform { get { return null; } }
        public bool activeSelf { get { return true; } }
        public void SetActive(bool value) { }
        public T AddComponent<T>() where T : Component { return null; }
        public T GetComponent<T>() { return default(T); }
    }

    public class Transform : Component
    {
        public Vector3 position { get; set; }
        public Quaternion rotation { get; set; }
        public Transform parent { get; set; }
        public void SetPositionAndRotation(Vector3 position, Quaternion rotation) { }
        public Vector3 TransformPoint(Vector3 position) { return position; }
    }

    public struct Vector2
    {
        public float x, y;
        public Vector2(float x, float y) { this.x = x; this.y = y; }
    }

    public struct Vector3
    {
        public float x, y, z;
        public Vector3(float x, float y, float z) { this.x = x; this.y = y; this.z = z; }
        public static Vector3 zero { get { return new Vector3(); } }
        public static Vector3 forward { get { return new Vector3(0, 0, 1); } }
        public Vector3 normalized { get { return this; } }
        public static Vector3 operator +(Vector3 a, Vector3 b) { return a; }
        public static Vector3 operator -(Vector3 a, Vector3 b) { return a; }
        public static Vector3 operator *(Vector3 a, float d) { return a; }
        public static Vector3 operator *(float d, Vector3 a) { return a; }
    }

    public struct Quaternion
    {
        public float x, y, z, w;
        public Quaternion(float x, float y, float z, float w) { this.x = x; this.y = y; this.z = z; this.w = w; }
        public static Quaternion identity { get { return new Quaternion(0, 0, 0, 1); } }
        public static Quaternion Inverse(Quaternion rotation) { return rotation; }
        public static Quaternion LookRotation(Vector3 forward) { return identity; }
        public static Quaternion operator *(Quaternion lhs, Quaternion rhs) { return lhs; }
        public static Vector3 operator *(Quaternion rotation, Vector3 point) { return point; }
    }

    /// <summary>Exists in UnityEngine (2017.1+): a `Pose` in a script using both namespaces is ambiguous.</summary>
    public struct Pose
    {
        public Vector3 position;
        public Quaternion rotation;
    }

    /// <summary>Exists in UnityEngine: `Ping` is ambiguous with VrRecognition.Core.Ping.</summary>
    public sealed class Ping { public Ping(string address) { } }

    public static class Random { public static float value { get { return 0; } } }

    public struct Color
    {
        public float r, g, b, a;
        public Color(float r, float g, float b, float a) { this.r = r; this.g = g; this.b = b; this.a = a; }
        public static Color white { get { return new Color(1, 1, 1, 1); } }
    }

    public struct Rect
    {
        public Rect(float x, float y, float width, float height) { }
    }

    public struct Ray
    {
        public Ray(Vector3 origin, Vector3 direction) { this.origin = origin; this.direction = direction; }
        public Vector3 origin { get; set; }
        public Vector3 direction { get; set; }
    }

    public struct RaycastHit
    {
        public Collider collider { get { return null; } }
        public Vector3 point { get; set; }
        public float distance { get; set; }
    }

    public class Collider : Component { }

    public struct LayerMask
    {
        public int value { get; set; }
        public static implicit operator int(LayerMask mask) { return mask.value; }
        public static implicit operator LayerMask(int intVal) { return new LayerMask(); }
    }

    public static class Physics
    {
        public const int DefaultRaycastLayers = -5;
        public static bool Raycast(Ray ray, out RaycastHit hitInfo, float maxDistance, int layerMask) { hitInfo = default(RaycastHit); return false; }
        public static bool Raycast(Ray ray, out RaycastHit hitInfo, float maxDistance) { hitInfo = default(RaycastHit); return false; }
        public static bool Raycast(Ray ray, out RaycastHit hitInfo) { hitInfo = default(RaycastHit); return false; }
    }

    public static class Mathf
    {
        public static float Clamp01(float value) { return value; }
        public static float Clamp(float value, float min, float max) { return value; }
        public static int Max(int a, int b) { return a; }
        public static float Max(float a, float b) { return a; }
    }

    public enum StereoTargetEyeMask { None = 0, Left = 1, Right = 2, Both = 3 }

    public class Texture : Object
    {
        public virtual int width { get; set; }
        public virtual int height { get; set; }
    }

    public enum TextureFormat { Alpha8 = 1, RGB24 = 3, RGBA32 = 4, ARGB32 = 5, BGRA32 = 14 }
    public enum RenderTextureFormat { ARGB32 = 0, Depth = 1, ARGBHalf = 2, Default = 7, BGRA32 = 20 }

    public sealed class Texture2D : Texture
    {
        public Texture2D(int width, int height) { }
        public Texture2D(int width, int height, TextureFormat textureFormat, bool mipChain) { }
        public void LoadRawTextureData(byte[] data) { }
        public void Apply() { }
    }

    public class RenderTexture : Texture
    {
        public RenderTexture(int width, int height, int depth) { }
        public RenderTexture(int width, int height, int depth, RenderTextureFormat format) { }
        public bool Create() { return true; }
        public void Release() { }
        public bool IsCreated() { return true; }
    }

    public sealed class Camera : Behaviour
    {
        public static Camera main { get { return null; } }
        public float fieldOfView { get; set; }
        public float aspect { get; set; }
        public float nearClipPlane { get; set; }
        public float farClipPlane { get; set; }
        public int cullingMask { get; set; }
        public RenderTexture targetTexture { get; set; }
        public StereoTargetEyeMask stereoTargetEye { get; set; }
        public void CopyFrom(Camera other) { }
        public void Render() { }
        public Vector3 WorldToViewportPoint(Vector3 position) { return position; }
        public Ray ViewportPointToRay(Vector3 pos) { return new Ray(); }
    }

    public static class Graphics
    {
        public static void Blit(Texture source, RenderTexture dest) { }
    }

    public static class ImageConversion
    {
        public static byte[] EncodeToJPG(this Texture2D tex, int quality) { return null; }
        public static byte[] EncodeToJPG(this Texture2D tex) { return null; }
        public static byte[] EncodeArrayToJPG(Array array, Experimental.Rendering.GraphicsFormat format, uint width, uint height, uint rowBytes = 0, int quality = 75) { return null; }
        public static bool LoadImage(this Texture2D tex, byte[] data, bool markNonReadable) { return true; }
        public static bool LoadImage(this Texture2D tex, byte[] data) { return true; }
    }

    public static class SystemInfo
    {
        public static bool supportsAsyncGPUReadback { get { return true; } }
        public static string deviceModel { get { return ""; } }
        public static bool graphicsUVStartsAtTop { get { return false; } }
    }

    public static class Time
    {
        public static float realtimeSinceStartup { get { return 0; } }
        public static double realtimeSinceStartupAsDouble { get { return 0; } }
        public static float unscaledTime { get { return 0; } }
        public static float unscaledDeltaTime { get { return 0; } }
    }

    public enum RuntimePlatform { OSXEditor = 0, WindowsEditor = 7, IPhonePlayer = 8, Android = 11, LinuxEditor = 16, WebGLPlayer = 17 }

    public static class Application
    {
        public static string persistentDataPath { get { return ""; } }
        public static RuntimePlatform platform { get { return RuntimePlatform.LinuxEditor; } }
        public static bool isMobilePlatform { get { return false; } }
    }

    public static class Debug
    {
        public static void Log(object message) { }
        public static void LogWarning(object message) { }
        public static void LogError(object message) { }
        public static void LogException(Exception exception) { }
    }

    public enum KeyCode { None = 0, Space = 32, Alpha0 = 48, Alpha1 = 49, Alpha2 = 50, Alpha3 = 51, A = 97, B = 98, R = 114, F9 = 290 }

    public static class Input
    {
        public static bool GetKey(KeyCode key) { return false; }
        public static bool GetKeyDown(KeyCode key) { return false; }
    }

    public enum TextAnchor { UpperLeft = 0, MiddleCenter = 4 }

    public sealed class TextMesh : Component
    {
        public string text { get; set; }
        public int fontSize { get; set; }
        public float characterSize { get; set; }
        public TextAnchor anchor { get; set; }
        public Color color { get; set; }
    }

    public static class GUI
    {
        public static void Label(Rect position, string text) { }
        public static void Box(Rect position, string text) { }
        public static void DrawTexture(Rect position, Texture image) { }
    }

    public static class Screen
    {
        public static int width { get { return 0; } }
        public static int height { get { return 0; } }
    }

    [AttributeUsage(AttributeTargets.Field)] public sealed class SerializeField : Attribute { }
    [AttributeUsage(AttributeTargets.Field, AllowMultiple = true)] public sealed class HeaderAttribute : Attribute { public HeaderAttribute(string header) { } }
    [AttributeUsage(AttributeTargets.Field)] public sealed class TooltipAttribute : Attribute { public TooltipAttribute(string tooltip) { } }
    [AttributeUsage(AttributeTargets.Field)] public sealed class TextAreaAttribute : Attribute { }
    [AttributeUsage(AttributeTargets.Field)]
    public sealed class RangeAttribute : Attribute
    {
        public RangeAttribute(float min, float max) { }
        public RangeAttribute(int min, int max) { }
    }
    [AttributeUsage(AttributeTargets.Class)] public sealed class DisallowMultipleComponent : Attribute { }
    [AttributeUsage(AttributeTargets.Class)] public sealed class AddComponentMenu : Attribute { public AddComponentMenu(string menuName) { } }
}

namespace UnityEngine.Experimental.Rendering
{
    public enum GraphicsFormat { None = 0, R8G8B8A8_SRGB = 8, R8G8B8A8_UNorm = 12 }
}
