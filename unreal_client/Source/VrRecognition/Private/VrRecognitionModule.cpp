#include "VrRecognitionModule.h"

#include "IImageWrapperModule.h"
#include "WebSocketsModule.h"

DEFINE_LOG_CATEGORY(LogVrRecognition);

namespace
{
	IImageWrapperModule* GImageWrappers = nullptr;
}

void FVrRecognitionModule::StartupModule()
{
	FModuleManager::LoadModuleChecked<FWebSocketsModule>(TEXT("WebSockets"));
	GImageWrappers = &FModuleManager::LoadModuleChecked<IImageWrapperModule>(TEXT("ImageWrapper"));
}

void FVrRecognitionModule::ShutdownModule()
{
	GImageWrappers = nullptr;
}

IImageWrapperModule* FVrRecognitionModule::ImageWrappers()
{
	return GImageWrappers;
}

IMPLEMENT_MODULE(FVrRecognitionModule, VrRecognition)
