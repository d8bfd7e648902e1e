// Stub of RenderingThread.h: ENQUEUE_RENDER_COMMAND(Name)(Lambda) where Lambda takes the immediate
// command list. The lambda may be move-only; it is called once, on the render thread.
#pragma once

#include "CoreMinimal.h"
#include "RHICommandList.h"

namespace UnrealStub
{
	template <typename TagType, typename LambdaType>
	void EnqueueUniqueRenderCommand(LambdaType&& Lambda)
	{
		static_assert(std::is_invocable_v<std::decay_t<LambdaType>&, FRHICommandListImmediate&>,
			"a render command takes FRHICommandListImmediate&");
		std::decay_t<LambdaType> Stored(std::forward<LambdaType>(Lambda));
		(void)Stored;
	}
} // namespace UnrealStub

#define ENQUEUE_RENDER_COMMAND(Type) \
	struct Type##Name                \
	{                                \
	};                               \
	::UnrealStub::EnqueueUniqueRenderCommand<Type##Name>
