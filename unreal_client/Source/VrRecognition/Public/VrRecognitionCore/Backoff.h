// Reconnect delays: exponential from InitialSeconds up to MaxSeconds, with +-Jitter so that many headsets
// that lost the same server do not all come back in the same millisecond. Mirrors
// unity_client/Runtime/Core/Backoff.cs. Plain C++17: no Unreal types. Not thread-safe (one owner).
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <random>

namespace VrRecognition::Core
{
	class Backoff
	{
	public:
		double InitialSeconds = 0.5;
		double MaxSeconds = 10.0;
		double Factor = 2.0;
		/** Fraction of the delay added or removed at random (0.2 = +-20 %). */
		double Jitter = 0.2;

		Backoff() : Random(static_cast<uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count())) {}

		/** The delay before reconnect attempt number Failures (1 = after the first failure). */
		double DelaySeconds(int Failures)
		{
			std::uniform_real_distribution<double> Unit(0.0, 1.0);
			return DelaySeconds(Failures, Unit(Random));
		}

		/** The same with the random draw given (Unit in [0, 1]: 0 = -Jitter, 0.5 = none, 1 = +Jitter). */
		double DelaySeconds(int Failures, double Unit) const
		{
			if (Failures < 1) return 0.0;
			double Seconds = InitialSeconds * std::pow(Factor, (std::min)(Failures - 1, 30));
			Seconds = (std::min)(Seconds, MaxSeconds);
			return (std::max)(0.0, Seconds * (1.0 + (Unit * 2.0 - 1.0) * Jitter));
		}

	private:
		std::minstd_rand Random;
	};
} // namespace VrRecognition::Core
