// A self-made test runner for the plain C++ core, in the style of unity_client/Tests/Core: every check
// prints "ok NAME (N ms)" or "FAIL NAME: why"; the exit code is the number of failures. Works without
// exceptions (the core is built like Unreal builds it: -fno-exceptions -fno-rtti), so a failed check
// records its message and returns from the test function.
#pragma once

#include <chrono>
#include <cstdio>
#include <functional>
#include <sstream>
#include <string>

namespace VrRecognitionTests
{
	struct FRunState
	{
		int Passes = 0;
		int Failures = 0;
		bool bCurrentFailed = false;
		std::string CurrentWhy;
	};

	inline FRunState& RunState()
	{
		static FRunState State;
		return State;
	}

	inline void Fail(const std::string& Why)
	{
		if (!RunState().bCurrentFailed) RunState().CurrentWhy = Why;
		RunState().bCurrentFailed = true;
	}

	inline bool Failed() { return RunState().bCurrentFailed; }

	inline void Run(const std::string& Name, const std::function<void()>& Test)
	{
		FRunState& State = RunState();
		State.bCurrentFailed = false;
		State.CurrentWhy.clear();
		const auto Start = std::chrono::steady_clock::now();
		Test();
		const long long Ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - Start).count();
		if (State.bCurrentFailed)
		{
			++State.Failures;
			std::string Why = State.CurrentWhy;
			for (char& C : Why)
				if (C == '\n') C = ' ';
			std::printf("FAIL %s: %s\n", Name.c_str(), Why.c_str());
		}
		else
		{
			++State.Passes;
			std::printf("ok %s (%lld ms)\n", Name.c_str(), Ms);
		}
		std::fflush(stdout);
	}

	inline int Summary()
	{
		std::printf("summary: %d passed, %d failed\n", RunState().Passes, RunState().Failures);
		return RunState().Failures;
	}

	template <typename T>
	std::string Show(const T& Value)
	{
		std::ostringstream Stream;
		Stream << Value;
		return Stream.str();
	}
} // namespace VrRecognitionTests

/** Fails the current test and returns from the enclosing function (which must return void). */
#define VR_CHECK(Condition, What)                                     \
	do                                                                \
	{                                                                 \
		if (!(Condition))                                             \
		{                                                             \
			::VrRecognitionTests::Fail(std::string(What));            \
			return;                                                   \
		}                                                             \
	} while (0)

#define VR_EQUAL(Expected, Actual, What)                                                                               \
	do                                                                                                                 \
	{                                                                                                                  \
		const auto& VrExpected_ = (Expected);                                                                          \
		const auto& VrActual_ = (Actual);                                                                              \
		if (!(VrExpected_ == VrActual_))                                                                               \
		{                                                                                                              \
			::VrRecognitionTests::Fail(std::string(What) + ": expected " + ::VrRecognitionTests::Show(VrExpected_)     \
				+ ", got " + ::VrRecognitionTests::Show(VrActual_));                                                   \
			return;                                                                                                    \
		}                                                                                                              \
	} while (0)
