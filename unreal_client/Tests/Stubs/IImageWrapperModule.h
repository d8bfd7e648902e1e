// Stub of IImageWrapperModule.h.
#pragma once

#include "CoreMinimal.h"
#include "IImageWrapper.h"
#include "Modules/ModuleManager.h"

class IImageWrapperModule : public IModuleInterface
{
public:
	virtual TSharedPtr<IImageWrapper> CreateImageWrapper(const EImageFormat InFormat) = 0;
};
