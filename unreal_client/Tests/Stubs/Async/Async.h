// Stub of Async/Async.h: AsyncTask runs a (possibly move-only) function on a named thread.
#pragma once

#include "CoreMinimal.h"

namespace ENamedThreads
{
	enum Type : int32
	{
		UnusedAnchor = -1,
		RHIThread = 0,
		GameThread = 1,
		ActualRenderingThread = 2,
		AnyThread = 0xff,
		AnyBackgroundThreadNormalTask = 0x100,
		AnyHiPriThreadNormalTask = 0x200,
	};
}

template <typename FunctionType>
void AsyncTask(ENamedThreads::Type Thread, FunctionType&& Function)
{
	static_assert(std::is_invocable_r_v<void, std::decay_t<FunctionType>&>, "AsyncTask takes a function of no arguments");
	std::decay_t<FunctionType> Stored(std::forward<FunctionType>(Function));
	(void)Thread;
	(void)Stored;
}
