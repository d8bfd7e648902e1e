// Stub of Components/SceneComponent.h.
#pragma once

#include "Components/ActorComponent.h"

class USceneComponent : public UActorComponent
{
public:
	const FTransform& GetComponentTransform() const { return ComponentToWorld; }

private:
	FTransform ComponentToWorld;
};
