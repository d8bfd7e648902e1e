// Stubs of UnityEngine.Rendering.AsyncGPUReadback and Unity.Collections.NativeArray (compile-only; see UnityEngine.cs).
#pragma warning disable 0067, 0649, 0169
using System;

namespace Unity.Collections
{
    public struct NativeArray<T> : IDisposable where T : struct
    {
        public int Length { get { return 0; } }
        public void CopyTo(T[] array) { }
        public T[] ToArray() { return null; }
        public void Dispose() { }
    }
}

namespace UnityEngine.Rendering
{
    public struct AsyncGPUReadbackRequest
    {
        public bool done { get { return true; } }
        public bool hasError { get { return false; } }
        public int width { get { return 0; } }
        public int height { get { return 0; } }
        public Unity.Collections.NativeArray<T> GetData<T>(int layer = 0) where T : struct { return default(Unity.Collections.NativeArray<T>); }
    }

    public static class AsyncGPUReadback
    {
        public static AsyncGPUReadbackRequest Request(Texture src, int mipIndex, TextureFormat dstFormat, Action<AsyncGPUReadbackRequest> callback) { return default(AsyncGPUReadbackRequest); }
        public static AsyncGPUReadbackRequest Request(Texture src, int mipIndex = 0, Action<AsyncGPUReadbackRequest> callback = null) { return default(AsyncGPUReadbackRequest); }
    }
}
