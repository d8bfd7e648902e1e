// Stub of Engine/World.h.
#pragma once

#include "CoreMinimal.h"
#include "UObject/Object.h"

class FTimerManager;

class UWorld : public UObject
{
public:
	FTimerManager& GetTimerManager() const;
};
