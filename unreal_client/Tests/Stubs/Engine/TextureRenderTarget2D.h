// Stub of Engine/TextureRenderTarget2D.h.
#pragma once

#include "CoreMinimal.h"
#include "PixelFormat.h"
#include "UObject/Object.h"

class FTextureRenderTargetResource;

class UTextureRenderTarget : public UObject
{
public:
	FTextureRenderTargetResource* GameThread_GetRenderTargetResource() { return nullptr; }
};

class UTextureRenderTarget2D : public UTextureRenderTarget
{
public:
	int32 SizeX = 0;
	int32 SizeY = 0;
	EPixelFormat GetFormat() const { return PF_B8G8R8A8; }
};
