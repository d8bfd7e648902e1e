// Stub of WebSocketsModule.h.
#pragma once

#include "CoreMinimal.h"
#include "IWebSocket.h"
#include "Modules/ModuleManager.h"

class FWebSocketsModule : public IModuleInterface
{
public:
	static FWebSocketsModule& Get();

	TSharedRef<IWebSocket> CreateWebSocket(const FString& Url, const TArray<FString>& Protocols,
		const TMap<FString, FString>& UpgradeHeaders = TMap<FString, FString>());
	TSharedRef<IWebSocket> CreateWebSocket(const FString& Url, const FString& Protocol = FString(),
		const TMap<FString, FString>& UpgradeHeaders = TMap<FString, FString>());
};
