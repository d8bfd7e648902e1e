// JSON messages of wire protocol v1.1 (docs/protocol.md sections 3 and 4): the client's hello, configure
// and ping (encoded byte for byte like server/protocol.py), and the server's hello, result, error, pong,
// configured and model_changed (decoded, unknown fields ignored). The client-message decoder applies the
// server's validation, so the shared golden vectors check both directions. Mirrors
// unity_client/Runtime/Core/Messages.cs. Plain C++17: no Unreal types, no exceptions, no RTTI.
#pragma once

#include "VrRecognitionCore/FrameCodec.h"
#include "VrRecognitionCore/Json.h"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace VrRecognition::Core
{
	inline constexpr size_t DefaultMaxControlBytes = 64 * 1024;
	inline constexpr size_t DefaultMaxMessageBytes = 16 * 1024 * 1024;
	inline constexpr int64_t MaxJsonSafeInt = (int64_t(1) << 53) - 1;

	/** The per-stream settings, by wire key, in the order they are written. */
	enum class ESetting : uint8_t { TopK = 0, BudgetMs = 1, Fps = 2, Smoothing = 3, GazeCrop = 4 };
	inline constexpr int SettingCount = 5;
	const char* SettingKey(ESetting Setting);

	/** Options asked for in hello/configure. An empty optional is "not sent": in hello the server's
	 * default, in configure unchanged. Reset (v1.1) lists fields sent as JSON null: in configure they go
	 * back to the server's default (for smoothing and the gaze crop the default is off). */
	struct StreamSettings
	{
		/** Any integer >= 1; the server clamps it to the class count and limits.max_top_k. */
		std::optional<int64_t> TopK;
		std::optional<double> BudgetMs;
		std::optional<double> Fps;
		/** Weight of the newest frame's scores in the server's moving average. */
		std::optional<double> SmoothingEmaAlpha;
		/** Side of the gaze crop as a fraction of the shorter image side. */
		std::optional<double> GazeCropScale;
		uint8_t Reset = 0;

		void ResetToDefault(ESetting Setting) { Reset = static_cast<uint8_t>(Reset | (1u << static_cast<int>(Setting))); }
		bool IsReset(ESetting Setting) const { return (Reset & (1u << static_cast<int>(Setting))) != 0; }
		void WriteTo(JsonValue& Object) const;
		static bool FromJson(const JsonValue& Object, StreamSettings& Out, ProtocolError& Error);
	};

	// ------------------------------------------------------------------------------------------------
	// Client to server
	// ------------------------------------------------------------------------------------------------

	struct ClientHello
	{
		int Protocol = 1;
		std::optional<int> MinProtocol;
		std::string ClientName = "unknown";
		std::string ClientVersion;
		StreamSettings Settings;
		JsonValue ToJson() const;
		std::string Encode() const { return WriteJson(ToJson()); }
	};

	struct Configure
	{
		StreamSettings Settings;
		JsonValue ToJson() const;
		std::string Encode() const { return WriteJson(ToJson()); }
	};

	struct Ping
	{
		/** An integer (|id| < 2^53) or a string of at most 64 characters. */
		JsonValue Id = JsonValue::FromInt(0);
		std::optional<int64_t> ClientTimeUs;
		JsonValue ToJson() const;
		std::string Encode() const { return WriteJson(ToJson()); }
	};

	enum class EClientMessageType : uint8_t { Hello, Configure, Ping };

	struct ClientMessage
	{
		EClientMessageType Type = EClientMessageType::Hello;
		ClientHello Hello;
		Configure Config;
		Ping PingMessage;
		JsonValue ToJson() const;
	};

	/** Parses a client message with the server's rules (used to self-check and by the tests). */
	bool DecodeClientMessage(std::string_view Utf8, ClientMessage& Out, ProtocolError& Error, size_t MaxBytes = DefaultMaxControlBytes);

	/** The newest version both sides speak (docs/protocol.md 3.4), or unsupported_version. */
	bool NegotiateVersion(const ClientHello& Hello, const std::vector<int>& Supported, int& OutVersion, ProtocolError& Error);

	// ------------------------------------------------------------------------------------------------
	// Server to client
	// ------------------------------------------------------------------------------------------------

	struct ModelInfo
	{
		std::string Name;
		std::string Version;
		std::vector<std::string> Classes;
		int InputWidth = 0;
		int InputHeight = 0;
		std::string Provider;
		/** How a frame becomes the model input: "centre_crop" (the default) or "stretch" (v1.1). */
		std::string Mapping = "centre_crop";
		JsonValue ToJson() const;
		static bool FromJson(const JsonValue* Value, ModelInfo& Out, ProtocolError& Error);
	};

	/** The settings the server applies to this stream, after defaults and clamping. */
	struct EffectiveSettings
	{
		int64_t TopK = 0;
		double BudgetMs = 0.0;
		std::optional<double> Fps;
		std::optional<double> SmoothingEmaAlpha;
		std::optional<double> GazeCropScale;
		JsonValue ToJson() const;
		static bool FromJson(const JsonValue* Value, EffectiveSettings& Out, ProtocolError& Error);
	};

	struct Limits
	{
		int64_t MaxMessageBytes = static_cast<int64_t>(DefaultMaxMessageBytes);
		int64_t MaxControlBytes = static_cast<int64_t>(DefaultMaxControlBytes);
		int64_t MaxWidth = 8192;
		int64_t MaxHeight = 8192;
		int64_t MaxPixels = 4096 * 4096;
		/** Longer side over shorter side (v1.1). */
		double MaxAspectRatio = 4.0;
		/** Largest progressive JPEG, in pixels (v1.1); send large frames baseline. */
		int64_t MaxProgressivePixels = 1920 * 1080;
		int64_t MaxTopK = 100;
		std::vector<std::string> Formats = {"jpeg", "rgb8", "rgba8"};
		JsonValue ToJson() const;
		static bool FromJson(const JsonValue* Value, Limits& Out, ProtocolError& Error);
		/** Why the server would refuse a frame of this size before decoding it, or empty when it fits. */
		std::string CheckSize(int Width, int Height) const;
	};

	struct ServerHello
	{
		int Protocol = 1;
		std::string ServerName;
		std::string ServerVersion;
		ModelInfo Model;
		EffectiveSettings Session;
		Limits ServerLimits;
		JsonValue ToJson() const;
	};

	struct Prediction
	{
		std::string Label;
		int64_t Index = 0;
		double Score = 0.0;
	};

	/** Result status values; a newer server may add others (treat those as errors). */
	namespace ResultStatus
	{
		inline constexpr const char* Ok = "ok";
		inline constexpr const char* DroppedStale = "dropped_stale";
		inline constexpr const char* Late = "late";
		inline constexpr const char* Error = "error";
	} // namespace ResultStatus

	/** The answer to one frame (docs/protocol.md 4.2). */
	struct Result
	{
		uint32_t FrameId = 0;
		int64_t CaptureTimeUs = 0;
		std::string Status = ResultStatus::Ok;
		std::vector<Prediction> TopK;
		/** Server time per stage in ms, in the server's order; unknown stages are kept too. */
		std::vector<std::pair<std::string, double>> TimingsMs;
		/** The frame's pose echoed (position x, y, z; rotation x, y, z, w), absent without HAS_POSE. */
		std::optional<std::vector<double>> PosePosition;
		std::optional<std::vector<double>> PoseRotation;
		std::optional<std::vector<double>> Gaze;
		std::string ModelVersion;
		std::optional<std::string> ErrorCode;
		std::string ErrorMessage;

		bool IsOk() const { return Status == ResultStatus::Ok; }
		const Prediction* Top() const { return TopK.empty() ? nullptr : &TopK.front(); }
		std::optional<double> Timing(std::string_view Stage) const;
		JsonValue ToJson() const;
	};

	/** An error not tied to a frame, or a fatal one sent just before the server closes. */
	struct ErrorMessage
	{
		std::string Code;
		std::string Message;
		std::optional<int64_t> FrameId;
		bool Fatal = false;
		JsonValue ToJson() const;
	};

	struct Pong
	{
		JsonValue Id;
		std::optional<int64_t> ClientTimeUs;
		int64_t ServerTimeUs = 0;
		JsonValue ToJson() const;
	};

	enum class EServerMessageType : uint8_t { Hello, Result, Error, Pong, Configured, ModelChanged };

	struct ServerMessage
	{
		EServerMessageType Type = EServerMessageType::Result;
		ServerHello Hello;
		Result FrameResult;
		ErrorMessage Error;
		Pong PongMessage;
		/** configured */
		EffectiveSettings Session;
		/** model_changed */
		ModelInfo Model;
		/** The message as server/protocol.py would encode it (used by the tests). */
		JsonValue ToJson() const;
	};

	/** Parses a server message; unknown fields are ignored so newer servers stay readable. */
	bool DecodeServerMessage(std::string_view Utf8, ServerMessage& Out, ProtocolError& Error, size_t MaxBytes = DefaultMaxMessageBytes);

	/** Strict JSON object with a string "type": the server's parse_json_object rules (size, UTF-8,
	 * syntax, depth, lone surrogates). */
	bool ParseMessageObject(std::string_view Utf8, size_t MaxBytes, JsonValue& Out, ProtocolError& Error);
} // namespace VrRecognition::Core
