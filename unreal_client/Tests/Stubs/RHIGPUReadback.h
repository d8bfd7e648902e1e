// Stub of RHIGPUReadback.h (UE 5.3): a texture readback without a GPU stall. EnqueueCopy and Lock/Unlock
// belong to the render thread; IsReady polls the fence.
#pragma once

#include "CoreMinimal.h"
#include "RHICommandList.h"

class FRHITexture;
class FRHIBuffer;

struct FResolveRect
{
	int32 X1 = 0, Y1 = 0, X2 = 0, Y2 = 0;
	bool IsValid() const { return X2 > X1 && Y2 > Y1; }
};

class FRHIGPUMemoryReadback
{
public:
	explicit FRHIGPUMemoryReadback(FName RequestName) { (void)RequestName; }
	virtual ~FRHIGPUMemoryReadback() {}

	bool IsReady() { return true; }

	virtual void EnqueueCopy(FRHICommandList& RHICmdList, FRHIBuffer* SourceBuffer, uint32 NumBytes = 0)
	{
		(void)RHICmdList;
		(void)SourceBuffer;
		(void)NumBytes;
	}
	virtual void EnqueueCopy(FRHICommandList& RHICmdList, FRHITexture* SourceTexture, const FIntVector& SourcePosition, uint32 SourceSlice,
		const FIntVector& Size)
	{
		(void)RHICmdList;
		(void)SourceTexture;
		(void)SourcePosition;
		(void)SourceSlice;
		(void)Size;
	}
	void EnqueueCopy(FRHICommandList& RHICmdList, FRHITexture* SourceTexture, FResolveRect Rect = FResolveRect())
	{
		(void)Rect;
		EnqueueCopy(RHICmdList, SourceTexture, FIntVector::ZeroValue, 0, FIntVector::ZeroValue);
	}
	virtual void* Lock(uint32 NumBytes) = 0;
	virtual void Unlock() = 0;
};

class FRHIGPUTextureReadback final : public FRHIGPUMemoryReadback
{
public:
	explicit FRHIGPUTextureReadback(FName RequestName) : FRHIGPUMemoryReadback(RequestName) {}

	using FRHIGPUMemoryReadback::EnqueueCopy;

	void EnqueueCopy(FRHICommandList& RHICmdList, FRHITexture* SourceTexture, const FIntVector& SourcePosition, uint32 SourceSlice,
		const FIntVector& Size) override
	{
		(void)RHICmdList;
		(void)SourceTexture;
		(void)SourcePosition;
		(void)SourceSlice;
		(void)Size;
	}

	[[deprecated("Use FRHIGPUTextureReadback::Lock(int32& OutRowPitchInPixels) instead.")]] void* Lock(uint32 NumBytes) override
	{
		(void)NumBytes;
		return nullptr;
	}
	void* Lock(int32& OutRowPitchInPixels, int32* OutBufferHeight = nullptr)
	{
		OutRowPitchInPixels = 0;
		(void)OutBufferHeight;
		return nullptr;
	}
	void Unlock() override {}
};
