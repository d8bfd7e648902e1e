// Stub of TimerManager.h.
#pragma once

#include "CoreMinimal.h"
#include "Engine/EngineTypes.h"

class FTimerManager
{
public:
	template <class UserClass>
	void SetTimer(FTimerHandle& InOutHandle, UserClass* InObj, void (UserClass::*InTimerMethod)(), float InRate, bool InbLoop = false,
		float InFirstDelay = -1.f)
	{
		(void)InOutHandle;
		(void)InObj;
		(void)InTimerMethod;
		(void)InRate;
		(void)InbLoop;
		(void)InFirstDelay;
	}
	void ClearTimer(FTimerHandle& InHandle) { (void)InHandle; }
};
