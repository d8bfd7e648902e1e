// Stub of the engine's CoreMinimal.h: the core types, containers, strings, math, logging and delegate
// macros the plugin uses, with the engine's names and signatures (not its implementation).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using int8 = signed char;
using uint8 = unsigned char;
using int16 = short;
using uint16 = unsigned short;
using int32 = int;
using uint32 = unsigned int;
using int64 = long long;
using uint64 = unsigned long long;
using SIZE_T = std::size_t;
using ANSICHAR = char;
using TCHAR = char16_t;
using WIDECHAR = char16_t;
enum UTF8CHAR : unsigned char {};

#define TEXT(x) u##x
#define FORCEINLINE inline
// Macros the engine defines everywhere: code that names something check, verify, ensure, PI, IN or OUT
// breaks inside Unreal, so it breaks here too.
#define check(expr) ((void)(expr))
#define verify(expr) ((void)(expr))
#define ensure(expr) (!!(expr))
#define PI (3.1415926535897932f)
#define IN
#define OUT

template <typename T>
std::remove_reference_t<T>&& MoveTemp(T&& Object)
{
	static_assert(std::is_lvalue_reference_v<T>, "MoveTemp called on an rvalue");
	static_assert(!std::is_const_v<std::remove_reference_t<T>>, "MoveTemp called on a const object");
	return static_cast<std::remove_reference_t<T>&&>(Object);
}

// --- containers -----------------------------------------------------------------------------------

template <typename T, typename SizeType>
class TArrayImpl
{
public:
	TArrayImpl() = default;
	SizeType Num() const { return static_cast<SizeType>(Items.size()); }
	bool IsEmpty() const { return Items.empty(); }
	T* GetData() { return Items.data(); }
	const T* GetData() const { return Items.data(); }
	SizeType Add(const T& Item) { Items.push_back(Item); return Num() - 1; }
	SizeType Add(T&& Item) { Items.push_back(std::move(Item)); return Num() - 1; }
	void RemoveAt(SizeType Index) { Items.erase(Items.begin() + Index); }
	void Empty() { Items.clear(); }
	void SetNumUninitialized(SizeType Count) { Items.resize(static_cast<size_t>(Count)); }
	T& operator[](SizeType Index) { return Items[static_cast<size_t>(Index)]; }
	const T& operator[](SizeType Index) const { return Items[static_cast<size_t>(Index)]; }
	auto begin() { return Items.begin(); }
	auto end() { return Items.end(); }
	auto begin() const { return Items.begin(); }
	auto end() const { return Items.end(); }

private:
	std::vector<T> Items;
};

template <typename T>
using TArray = TArrayImpl<T, int32>;
template <typename T>
using TArray64 = TArrayImpl<T, int64>;

template <typename T>
class TArrayView
{
public:
	TArrayView(T* InData, int32 InCount) : Data(InData), Count(InCount) {}
	T* GetData() const { return Data; }
	int32 Num() const { return Count; }

private:
	T* Data;
	int32 Count;
};

template <typename K, typename V>
class TMap
{
public:
	V& Add(const K& Key, const V& Value) { return Items[Key] = Value; }

private:
	std::map<K, V> Items;
};

// --- smart pointers -------------------------------------------------------------------------------

template <typename T>
class TSharedRef;

template <typename T>
class TSharedPtr
{
public:
	TSharedPtr() = default;
	TSharedPtr(std::nullptr_t) {}
	TSharedPtr(const TSharedRef<T>& Ref);
	bool IsValid() const { return Pointer != nullptr; }
	void Reset() { Pointer.reset(); }
	T* Get() const { return Pointer.get(); }
	T* operator->() const { return Pointer.get(); }
	T& operator*() const { return *Pointer; }

private:
	template <typename>
	friend class TSharedRef;
	std::shared_ptr<T> Pointer;
};

template <typename T>
class TSharedRef
{
public:
	explicit TSharedRef(std::shared_ptr<T> InPointer) : Pointer(std::move(InPointer)) {}
	T* operator->() const { return Pointer.get(); }
	T& Get() const { return *Pointer; }

private:
	template <typename>
	friend class TSharedPtr;
	std::shared_ptr<T> Pointer;
};

template <typename T>
TSharedPtr<T>::TSharedPtr(const TSharedRef<T>& Ref) : Pointer(Ref.Pointer)
{
}

template <typename T, typename... Args>
TSharedRef<T> MakeShared(Args&&... Arguments)
{
	return TSharedRef<T>(std::make_shared<T>(std::forward<Args>(Arguments)...));
}

template <typename T>
class TUniquePtr
{
public:
	TUniquePtr() = default;
	TUniquePtr(std::nullptr_t) {}
	explicit TUniquePtr(T* InPointer) : Pointer(InPointer) {}
	TUniquePtr(TUniquePtr&&) = default;
	TUniquePtr& operator=(TUniquePtr&&) = default;
	T* Get() const { return Pointer.get(); }
	T* operator->() const { return Pointer.get(); }
	T& operator*() const { return *Pointer; }
	explicit operator bool() const { return Pointer != nullptr; }
	bool IsValid() const { return Pointer != nullptr; }
	void Reset() { Pointer.reset(); }

private:
	std::unique_ptr<T> Pointer;
};

template <typename T, typename... Args>
TUniquePtr<T> MakeUnique(Args&&... Arguments)
{
	return TUniquePtr<T>(new T(std::forward<Args>(Arguments)...));
}

// --- strings --------------------------------------------------------------------------------------

class FString
{
public:
	FString() = default;
	FString(const TCHAR* Text) : Data(Text ? Text : u"") {}
	const TCHAR* operator*() const { return Data.c_str(); }
	bool IsEmpty() const { return Data.empty(); }
	void Empty() { Data.clear(); }
	int32 Len() const { return static_cast<int32>(Data.size()); }
	bool operator==(const FString& Other) const { return Data == Other.Data; }
	bool operator<(const FString& Other) const { return Data < Other.Data; }

	/** Printf's arguments are what a C format takes: numbers and TCHAR pointers (*SomeString), never an FString. */
	template <size_t N, typename... Types>
	static FString Printf(const TCHAR (&Format)[N], Types... Args)
	{
		static_assert(((std::is_arithmetic_v<Types> || std::is_same_v<Types, const TCHAR*> || std::is_same_v<Types, TCHAR*>) && ...),
			"FString::Printf takes numbers and TCHAR pointers");
		((void)Args, ...);
		return FString(Format);
	}

private:
	std::u16string Data;
};

class FName
{
public:
	FName() = default;
	FName(const TCHAR* Name) : Text(Name) {}

private:
	FString Text;
};

/** TCHAR to UTF-8 (FTCHARToUTF8 Converter(*Text); Converter.Get(), Converter.Length()). */
class FTCHARToUTF8
{
public:
	explicit FTCHARToUTF8(const TCHAR* Source) { (void)Source; }
	const UTF8CHAR* Get() const { return Buffer; }
	int32 Length() const { return 0; }

private:
	UTF8CHAR Buffer[1] = {};
};

class FUTF8ToTCHAR
{
public:
	explicit FUTF8ToTCHAR(const ANSICHAR* Source) { (void)Source; }
	const TCHAR* Get() const { return u""; }
};

#define UTF8_TO_TCHAR(str) (TCHAR*)FUTF8ToTCHAR((const ANSICHAR*)str).Get()
#define TCHAR_TO_UTF8(str) (ANSICHAR*)FTCHARToUTF8((const TCHAR*)str).Get()

// --- math -----------------------------------------------------------------------------------------

struct FVector
{
	double X = 0, Y = 0, Z = 0;
	FVector() = default;
	FVector(double InX, double InY, double InZ) : X(InX), Y(InY), Z(InZ) {}
	static const FVector ZeroVector;
};
inline const FVector FVector::ZeroVector{0, 0, 0};

struct FVector2D
{
	double X = 0, Y = 0;
	FVector2D() = default;
	FVector2D(double InX, double InY) : X(InX), Y(InY) {}
	static const FVector2D ZeroVector;
};
inline const FVector2D FVector2D::ZeroVector{0, 0};

struct FQuat
{
	double X = 0, Y = 0, Z = 0, W = 1;
	FQuat() = default;
	FQuat(double InX, double InY, double InZ, double InW) : X(InX), Y(InY), Z(InZ), W(InW) {}
	static const FQuat Identity;
};
inline const FQuat FQuat::Identity{0, 0, 0, 1};

struct FIntVector
{
	int32 X = 0, Y = 0, Z = 0;
	FIntVector() = default;
	FIntVector(int32 InX, int32 InY, int32 InZ) : X(InX), Y(InY), Z(InZ) {}
	static const FIntVector ZeroValue;
};
inline const FIntVector FIntVector::ZeroValue{0, 0, 0};

struct FTransform
{
	FVector GetLocation() const { return FVector(); }
	FQuat GetRotation() const { return FQuat(); }
};

struct FMath
{
	template <typename T>
	static T Max(T A, T B) { return A < B ? B : A; }
	template <typename T>
	static T Min(T A, T B) { return A < B ? A : B; }
};

struct FMemory
{
	static void* Memcpy(void* Dest, const void* Src, SIZE_T Count) { (void)Src; (void)Count; return Dest; }
};

struct FPlatformTime
{
	static double Seconds() { return 0.0; }
};

// --- logging --------------------------------------------------------------------------------------

namespace ELogVerbosity
{
	enum Type : uint8 { NoLogging = 0, Fatal, Error, Warning, Display, Log, Verbose, VeryVerbose, All = VeryVerbose };
}

struct FLogCategoryBase
{
	ELogVerbosity::Type Default;
};

#define DECLARE_LOG_CATEGORY_EXTERN(CategoryName, DefaultVerbosity, CompileTimeVerbosity) \
	extern FLogCategoryBase CategoryName;                                                 \
	static_assert(ELogVerbosity::DefaultVerbosity >= 0 && ELogVerbosity::CompileTimeVerbosity >= 0, "verbosities")
#define DEFINE_LOG_CATEGORY(CategoryName) FLogCategoryBase CategoryName{ELogVerbosity::Log}

namespace UnrealStub
{
	template <size_t N, typename... Types>
	void Log(const FLogCategoryBase& Category, ELogVerbosity::Type Verbosity, const TCHAR (&Format)[N], Types... Args)
	{
		static_assert(((std::is_arithmetic_v<Types> || std::is_same_v<Types, const TCHAR*> || std::is_same_v<Types, TCHAR*>) && ...),
			"UE_LOG takes numbers and TCHAR pointers (*SomeString)");
		(void)Category;
		(void)Verbosity;
		(void)Format;
		((void)Args, ...);
	}
} // namespace UnrealStub

#define UE_LOG(CategoryName, Verbosity, Format, ...) ::UnrealStub::Log(CategoryName, ELogVerbosity::Verbosity, Format, ##__VA_ARGS__)

// --- delegates ------------------------------------------------------------------------------------

struct FDelegateHandle
{
};

/** A multicast event of IWebSocket: handlers must take exactly the event's parameters. */
template <typename... ParamTypes>
class TEventStub
{
public:
	template <typename UserClass>
	FDelegateHandle AddUObject(UserClass* Object, void (UserClass::*Method)(ParamTypes...))
	{
		(void)Object;
		(void)Method;
		return {};
	}
	template <typename UserClass>
	FDelegateHandle AddUObject(const UserClass* Object, void (UserClass::*Method)(ParamTypes...) const)
	{
		(void)Object;
		(void)Method;
		return {};
	}
	template <typename Functor>
	FDelegateHandle AddLambda(Functor&& Function)
	{
		static_assert(std::is_invocable_v<Functor&, ParamTypes...>, "the lambda must take the event's parameters");
		return {};
	}
	void RemoveAll(const void* UserObject) { (void)UserObject; }
	void Broadcast(ParamTypes... Params) const { ((void)Params, ...); }
};

#define DECLARE_EVENT(OwningType, EventName) \
	class EventName : public TEventStub<>    \
	{                                        \
	};
#define DECLARE_EVENT_OneParam(OwningType, EventName, Param1Type) \
	class EventName : public TEventStub<Param1Type>               \
	{                                                             \
	};
#define DECLARE_EVENT_TwoParams(OwningType, EventName, Param1Type, Param2Type) \
	class EventName : public TEventStub<Param1Type, Param2Type>                \
	{                                                                          \
	};
#define DECLARE_EVENT_ThreeParams(OwningType, EventName, Param1Type, Param2Type, Param3Type) \
	class EventName : public TEventStub<Param1Type, Param2Type, Param3Type>                  \
	{                                                                                        \
	};

#define DECLARE_DYNAMIC_MULTICAST_DELEGATE_OneParam(DelegateName, Param1Type, Param1Name) \
	struct DelegateName                                                                   \
	{                                                                                     \
		void Broadcast(Param1Type Param1Name) const { (void)Param1Name; }               \
		bool IsBound() const { return false; }                                           \
	};
#define DECLARE_DYNAMIC_MULTICAST_DELEGATE_TwoParams(DelegateName, Param1Type, Param1Name, Param2Type, Param2Name) \
	struct DelegateName                                                                                           \
	{                                                                                                             \
		void Broadcast(Param1Type Param1Name, Param2Type Param2Name) const                                        \
		{                                                                                                         \
			(void)Param1Name;                                                                                     \
			(void)Param2Name;                                                                                     \
		}                                                                                                         \
		bool IsBound() const { return false; }                                                                   \
	};
