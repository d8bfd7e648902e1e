// Reconnect delays: exponential from Initial up to Max, with +-Jitter so many headsets that lost the
// same server do not all come back in the same millisecond. Plain C#, no UnityEngine.
using System;

namespace VrRecognition.Core
{
    public sealed class Backoff
    {
        public TimeSpan Initial = TimeSpan.FromSeconds(0.5);
        public TimeSpan Max = TimeSpan.FromSeconds(10);
        public double Factor = 2.0;
        /// <summary>Fraction of the delay added or removed at random (0.2 = +-20 %).</summary>
        public double Jitter = 0.2;
        readonly Random random = new Random();

        /// <summary>The delay before reconnect attempt number `failures` (1 = after the first failure).</summary>
        public TimeSpan Delay(int failures)
        {
            if (failures < 1) return TimeSpan.Zero;
            double ms = Initial.TotalMilliseconds * Math.Pow(Factor, Math.Min(failures - 1, 30));
            ms = Math.Min(ms, Max.TotalMilliseconds);
            double jitter;
            lock (random) jitter = (random.NextDouble() * 2 - 1) * Jitter;
            return TimeSpan.FromMilliseconds(Math.Max(0, ms * (1 + jitter)));
        }
    }
}
