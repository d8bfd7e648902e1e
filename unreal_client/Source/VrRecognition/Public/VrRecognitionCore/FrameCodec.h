// Binary frames of wire protocol v1 (docs/protocol.md section 2): the 72-byte little-endian header and
// its payload. Encode and decode mirror server/protocol.py, including the validation order (2.3), so
// this client reports the same error code as the server for the same bytes. Mirrors
// unity_client/Runtime/Core/FrameCodec.cs. Plain C++17: no Unreal types, no exceptions, no RTTI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace VrRecognition::Core
{
	/** The closed list of v1 error codes (docs/protocol.md 5.1). A newer server may send others: treat
	 * an unknown code as a generic error. */
	namespace ErrorCodes
	{
		inline constexpr const char* TruncatedHeader = "truncated_header";
		inline constexpr const char* BadMagic = "bad_magic";
		inline constexpr const char* UnsupportedVersion = "unsupported_version";
		inline constexpr const char* UnknownMessageType = "unknown_message_type";
		inline constexpr const char* BadHeader = "bad_header";
		inline constexpr const char* LengthMismatch = "length_mismatch";
		inline constexpr const char* EmptyPayload = "empty_payload";
		inline constexpr const char* UnsupportedFormat = "unsupported_format";
		inline constexpr const char* BadDimensions = "bad_dimensions";
		inline constexpr const char* ImageTooLarge = "image_too_large";
		inline constexpr const char* CorruptImage = "corrupt_image";
		inline constexpr const char* MessageTooLarge = "message_too_large";
		inline constexpr const char* BadJson = "bad_json";
		inline constexpr const char* InvalidMessage = "invalid_message";
		inline constexpr const char* HelloRequired = "hello_required";
		inline constexpr const char* DuplicateHello = "duplicate_hello";
		inline constexpr const char* Unauthorized = "unauthorized";
		inline constexpr const char* ForbiddenOrigin = "forbidden_origin";
		inline constexpr const char* TooManyStreams = "too_many_streams";
		inline constexpr const char* SlowConsumer = "slow_consumer";
		inline constexpr const char* ModelUnavailable = "model_unavailable";
		inline constexpr const char* ShuttingDown = "shutting_down";
		inline constexpr const char* InternalError = "internal_error";
	} // namespace ErrorCodes

	/** A message broke the protocol: Code is one of ErrorCodes. FrameId is set when the frame header got
	 * as far as the frame id (validation steps 7-13). */
	struct ProtocolError
	{
		std::string Code;
		std::string Message;
		std::optional<uint32_t> FrameId;

		void Set(const char* InCode, std::string InMessage, std::optional<uint32_t> InFrameId = std::nullopt)
		{
			Code = InCode;
			Message = std::move(InMessage);
			FrameId = InFrameId;
		}
	};

	enum class EImageFormat : uint8_t { Jpeg = 1, Rgb8 = 2, Rgba8 = 3 };

	namespace FrameFlags
	{
		inline constexpr uint32_t HasPose = 1u << 0;
		inline constexpr uint32_t HasGaze = 1u << 1;
		/** The payload's first row is the image's bottom row (a GPU readback on some APIs). */
		inline constexpr uint32_t RowsBottomUp = 1u << 2;
		inline constexpr uint32_t Known = HasPose | HasGaze | RowsBottomUp;
		/** Bits 0-15 must be understood (an unknown one is refused); bits 16-31 may be ignored. */
		inline constexpr uint32_t MustUnderstandMask = 0xFFFFu;
	} // namespace FrameFlags

	/** Head pose in the client's world frame; the server echoes it, it does not interpret it.
	 * Position x, y, z; rotation quaternion x, y, z, w. */
	struct HeadPose
	{
		float Position[3] = {0.f, 0.f, 0.f};
		float Rotation[4] = {0.f, 0.f, 0.f, 1.f};
		bool IsFinite() const;
	};

	/** A gaze point normalised to [0, 1], origin at the image's top-left. */
	struct GazePoint
	{
		float U = 0.f;
		float V = 0.f;
	};

	/** One binary frame. On decode, Payload points into the message (no copy). */
	struct Frame
	{
		uint32_t FrameId = 0;
		uint64_t CaptureTimeUs = 0;
		EImageFormat Format = EImageFormat::Jpeg;
		int Width = 0;
		int Height = 0;
		std::optional<HeadPose> Pose;
		std::optional<GazePoint> Gaze;
		bool RowsBottomUp = false;
		const uint8_t* Payload = nullptr;
		size_t PayloadLength = 0;
		/** Set by the decoder: 72 in v1, more from a later minor revision. */
		size_t HeaderLength = 72;
	};

	namespace FrameCodec
	{
		inline constexpr size_t HeaderSize = 72;
		inline constexpr uint8_t ProtocolVersion = 1;
		inline constexpr uint8_t MessageTypeFrame = 1;
		inline constexpr uint64_t MaxJsonSafeInt = (uint64_t(1) << 53) - 1;

		const char* WireName(EImageFormat Format);
		/** Bytes per pixel of a raw format, 0 for compressed ones. */
		int Channels(EImageFormat Format);

		/** Why a decoder would reject this frame, or an empty string when it is valid to send. */
		std::string Check(const Frame& InFrame);

		/** The 72 header bytes into Out (which must hold 72). False (and Why) for a frame a decoder would
		 * reject: the encoder never emits bad frames. */
		bool WriteHeader(const Frame& InFrame, uint8_t* Out, std::string* Why = nullptr);

		/** Header plus payload, replacing Out's contents: one binary websocket message. */
		bool Encode(const Frame& InFrame, std::vector<uint8_t>& Out, std::string* Why = nullptr);

		/** Parses one binary message. On failure returns false with the first rule it breaks, in the order
		 * of docs/protocol.md 2.3. On success Out.Payload points into Data. */
		bool Decode(const uint8_t* Data, size_t Size, Frame& Out, ProtocolError& Error);
	} // namespace FrameCodec

	/** The gaze crop (docs/protocol.md 3.1, v1.1) in the frame's own pixel grid: a square of side
	 * Scale * min(Width, Height) centred on the gaze point and shifted to stay inside the frame.
	 * Halves round up, so that every peer computes the same pixels (tests/vectors/gaze_crop_rect.json). */
	struct CropRect
	{
		int Left = 0;
		int Top = 0;
		int Side = 0;
	};
	CropRect GazeCropRect(int Width, int Height, double U, double V, double Scale);
} // namespace VrRecognition::Core
