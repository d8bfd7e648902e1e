// Stub of TextureResource.h: the render target resource and the RHI texture reference it hands out.
#pragma once

#include "CoreMinimal.h"

class FRHITexture;

template <typename ReferenceType>
class TRefCountPtr
{
public:
	operator ReferenceType*() const { return Reference; }
	ReferenceType* GetReference() const { return Reference; }

private:
	ReferenceType* Reference = nullptr;
};

using FTextureRHIRef = TRefCountPtr<FRHITexture>;

class FRenderTarget
{
public:
	virtual ~FRenderTarget() = default;
	virtual const FTextureRHIRef& GetRenderTargetTexture() const { return RenderTargetTextureRHI; }

protected:
	FTextureRHIRef RenderTargetTextureRHI;
};

class FTextureRenderTargetResource : public FRenderTarget
{
};
