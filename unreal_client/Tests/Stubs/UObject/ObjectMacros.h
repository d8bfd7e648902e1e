// Stub of UObject/ObjectMacros.h: the reflection macros. Unreal Header Tool reads them; the C++ compiler
// sees nothing (GENERATED_BODY comes from each *.generated.h the test writes).
#pragma once

#define UCLASS(...)
#define USTRUCT(...)
#define UENUM(...)
#define UPROPERTY(...)
#define UFUNCTION(...)
#define UMETA(...)
