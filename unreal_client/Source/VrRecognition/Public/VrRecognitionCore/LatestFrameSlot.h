// A one-item mailbox between the capture side and the network's send loop. VR wants the newest frame
// answered, not every frame: a frame that has not been sent yet when a newer one arrives is replaced
// (and counted), never queued behind it. Thread-safe; one consumer. Mirrors
// unity_client/Runtime/Core/LatestFrameSlot.cs. Plain C++17: no Unreal types.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <utility>

namespace VrRecognition::Core
{
	template <typename T>
	class LatestFrameSlot
	{
	public:
		/** Puts a frame in the slot; returns the older unsent frame it replaced, if any. */
		std::optional<T> Offer(T Frame)
		{
			std::lock_guard<std::mutex> Lock(Gate);
			std::optional<T> Old = std::move(Item);
			Item = std::move(Frame);
			OfferedCount.fetch_add(1);
			if (Old) ReplacedCount.fetch_add(1);
			return Old;
		}

		/** Takes the frame out (counted as taken), or returns nothing when the slot is empty. */
		std::optional<T> TryTake()
		{
			std::lock_guard<std::mutex> Lock(Gate);
			std::optional<T> Frame = std::move(Item);
			Item.reset();
			if (Frame) TakenCount.fetch_add(1);
			return Frame;
		}

		/** Empties the slot without counting the frame as taken; returns it. */
		std::optional<T> Clear()
		{
			std::lock_guard<std::mutex> Lock(Gate);
			std::optional<T> Frame = std::move(Item);
			Item.reset();
			return Frame;
		}

		bool HasItem() const
		{
			std::lock_guard<std::mutex> Lock(Gate);
			return Item.has_value();
		}

		/** Frames put in the slot. */
		int64_t Offered() const { return OfferedCount.load(); }
		/** Frames replaced by a newer one before they were taken (stale, never sent). */
		int64_t Replaced() const { return ReplacedCount.load(); }
		/** Frames taken out by the consumer. */
		int64_t Taken() const { return TakenCount.load(); }

	private:
		mutable std::mutex Gate;
		std::optional<T> Item;
		std::atomic<int64_t> OfferedCount{0};
		std::atomic<int64_t> ReplacedCount{0};
		std::atomic<int64_t> TakenCount{0};
	};
} // namespace VrRecognition::Core
