// The VrRecognition module: loads the engine modules the component uses (WebSockets, ImageWrapper) on
// the game thread at start-up, so that encoding tasks can use the image wrapper module from any thread.
#pragma once

#include "CoreMinimal.h"
#include "Modules/ModuleManager.h"

class IImageWrapperModule;

DECLARE_LOG_CATEGORY_EXTERN(LogVrRecognition, Log, All);

class FVrRecognitionModule : public IModuleInterface
{
public:
	virtual void StartupModule() override;
	virtual void ShutdownModule() override;

	/** The image wrapper module, loaded at start-up (null before). */
	static IImageWrapperModule* ImageWrappers();
};
