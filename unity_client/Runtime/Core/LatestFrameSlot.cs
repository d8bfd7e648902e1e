// A one-item mailbox between the capture side and the network's send loop. VR wants the newest frame
// answered, not every frame: a frame that has not been sent yet when a newer one arrives is replaced
// (and counted), never queued behind it. Thread-safe; one consumer. Plain C#, no UnityEngine.
using System.Threading;

namespace VrRecognition.Core
{
    public sealed class LatestFrameSlot<T> where T : class
    {
        readonly object gate = new object();
        T item;
        long offered, replaced, taken;

        /// <summary>Frames put in the slot.</summary>
        public long Offered { get { return Interlocked.Read(ref offered); } }
        /// <summary>Frames replaced by a newer one before they were sent (stale, never sent).</summary>
        public long Replaced { get { return Interlocked.Read(ref replaced); } }
        /// <summary>Frames taken out by the consumer.</summary>
        public long Taken { get { return Interlocked.Read(ref taken); } }
        public bool HasItem { get { lock (gate) return item != null; } }

        /// <summary>Puts a frame in the slot; returns the older unsent frame it replaced, or null.</summary>
        public T Offer(T frame)
        {
            T old;
            lock (gate)
            {
                old = item;
                item = frame;
                Interlocked.Increment(ref offered);
                if (old != null) Interlocked.Increment(ref replaced);
            }
            return old;
        }

        /// <summary>Takes the frame out, or returns null when the slot is empty.</summary>
        public T TryTake()
        {
            lock (gate)
            {
                var frame = item;
                item = null;
                if (frame != null) Interlocked.Increment(ref taken);
                return frame;
            }
        }

        /// <summary>Empties the slot without counting the frame as sent; returns it.</summary>
        public T Clear()
        {
            lock (gate)
            {
                var frame = item;
                item = null;
                return frame;
            }
        }
    }
}
