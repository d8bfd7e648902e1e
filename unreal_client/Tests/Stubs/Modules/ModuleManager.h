// Stub of Modules/ModuleManager.h.
#pragma once

#include "CoreMinimal.h"

class IModuleInterface
{
public:
	virtual ~IModuleInterface() {}
	virtual void StartupModule() {}
	virtual void ShutdownModule() {}
};

class FModuleManager
{
public:
	static FModuleManager& Get();

	template <typename TModuleInterface>
	static TModuleInterface& LoadModuleChecked(const FName ModuleName)
	{
		static_assert(std::is_base_of_v<IModuleInterface, TModuleInterface>, "a module interface");
		(void)ModuleName;
		return *static_cast<TModuleInterface*>(nullptr);
	}

	template <typename TModuleInterface>
	static TModuleInterface& GetModuleChecked(const FName ModuleName)
	{
		return LoadModuleChecked<TModuleInterface>(ModuleName);
	}
};

#define IMPLEMENT_MODULE(ModuleImplClass, ModuleName)                                                   \
	static_assert(std::is_base_of_v<IModuleInterface, ModuleImplClass>, "a module implements IModuleInterface"); \
	extern "C" IModuleInterface* InitializeModule_##ModuleName() { return new ModuleImplClass(); }
