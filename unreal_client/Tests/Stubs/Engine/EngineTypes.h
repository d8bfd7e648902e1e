// Stub of Engine/EngineTypes.h (the part the plugin uses: FTimerHandle).
#pragma once

#include "CoreMinimal.h"

struct FTimerHandle
{
	bool IsValid() const { return Handle != 0; }

private:
	uint64 Handle = 0;
};
