// Stub of Components/ActorComponent.h.
#pragma once

#include "CoreMinimal.h"
#include "UObject/Object.h"

class AActor;

enum ELevelTick
{
	LEVELTICK_TimeOnly = 0,
	LEVELTICK_ViewportsOnly = 1,
	LEVELTICK_All = 2,
	LEVELTICK_PauseTick = 3,
};

namespace EEndPlayReason
{
	enum Type : int
	{
		Destroyed,
		LevelTransition,
		EndPlayInEditor,
		RemovedFromWorld,
		Quit,
	};
}

struct FTickFunction
{
	uint8 bCanEverTick : 1;
	uint8 bStartWithTickEnabled : 1;
};

struct FActorComponentTickFunction : public FTickFunction
{
};

class UActorComponent : public UObject
{
public:
	FActorComponentTickFunction PrimaryComponentTick;

	virtual void BeginPlay() {}
	virtual void EndPlay(const EEndPlayReason::Type EndPlayReason) { (void)EndPlayReason; }
	virtual void TickComponent(float DeltaTime, enum ELevelTick TickType, FActorComponentTickFunction* ThisTickFunction)
	{
		(void)DeltaTime;
		(void)TickType;
		(void)ThisTickFunction;
	}
	AActor* GetOwner() const { return nullptr; }
	virtual UWorld* GetWorld() const override { return nullptr; }
};
