// Stub of GameFramework/Actor.h.
#pragma once

#include "CoreMinimal.h"
#include "UObject/Object.h"

class USceneComponent;

class AActor : public UObject
{
public:
	USceneComponent* GetRootComponent() const { return nullptr; }
};
