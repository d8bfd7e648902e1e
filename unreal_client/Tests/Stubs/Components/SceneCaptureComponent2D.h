// Stub of Components/SceneCaptureComponent2D.h.
#pragma once

#include "Components/SceneComponent.h"

class UTextureRenderTarget2D;

class USceneCaptureComponent : public USceneComponent
{
public:
	uint8 bCaptureEveryFrame : 1;
	uint8 bCaptureOnMovement : 1;
};

class USceneCaptureComponent2D : public USceneCaptureComponent
{
public:
	TObjectPtr<UTextureRenderTarget2D> TextureTarget;
	void CaptureScene() {}
};
