// Stub of the UObject base and the object pointers the plugin holds.
#pragma once

#include "CoreMinimal.h"
#include "UObject/ObjectMacros.h"

class UWorld;

class UObject
{
public:
	virtual ~UObject() = default;
	virtual UWorld* GetWorld() const { return nullptr; }
};

template <typename T>
class TObjectPtr
{
public:
	TObjectPtr() = default;
	TObjectPtr(std::nullptr_t) {}
	TObjectPtr(T* InObject) : Object(InObject) {}
	T* Get() const { return Object; }
	operator T*() const { return Object; }
	T* operator->() const { return Object; }

private:
	T* Object = nullptr;
};

template <typename T>
class TWeakObjectPtr
{
public:
	TWeakObjectPtr() = default;
	TWeakObjectPtr(const T* InObject) : Object(const_cast<T*>(InObject)) {}
	T* Get() const { return Object; }
	bool IsValid() const { return Object != nullptr; }

private:
	T* Object = nullptr;
};
