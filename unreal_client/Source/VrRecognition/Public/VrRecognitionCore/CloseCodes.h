// WebSocket close codes of wire protocol v1.1 (docs/protocol.md 5.2) and what the client does after each.
// Every close the server makes carries an error code (ErrorCodes) as its reason. The server sends only
// codes every target client can receive: "try again later" is the application code 4013 (Mono's
// ClientWebSocket, Unity's, aborts on 1012-1014). Mirrors unity_client/Runtime/Core/CloseCodes.cs.
// Plain C++17: no Unreal types.
#pragma once

#include "VrRecognitionCore/FrameCodec.h"

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace VrRecognition::Core
{
	namespace CloseCodes
	{
		/** Normal close; the server sends it only in answer to the client's own close. */
		inline constexpr int Normal = 1000;
		/** The server is stopping (reason shutting_down, after a fatal error): reconnect with backoff. */
		inline constexpr int GoingAway = 1001;
		/** No common protocol version (reason unsupported_version): do not retry, it would repeat. */
		inline constexpr int ProtocolError = 1002;
		/** A text message that is not valid UTF-8 (reason bad_json). */
		inline constexpr int InvalidData = 1007;
		/** No hello in time (hello_required), or a client that did not read (slow_consumer). */
		inline constexpr int PolicyViolation = 1008;
		/** A message over limits.max_message_bytes (reason message_too_large). */
		inline constexpr int MessageTooBig = 1009;
		/** A server fault (reason internal_error). */
		inline constexpr int InternalError = 1011;
		/** Refused at hello (too_many_streams, or shutting_down when the server began to stop after the
		 * upgrade): reconnect with backoff. */
		inline constexpr int TryAgainLater = 4013;

		/** Every code the server sends, in the order of docs/protocol.md 5.2. */
		inline const std::vector<int>& SentByServer()
		{
			static const std::vector<int> Codes = {GoingAway, ProtocolError, InvalidData, PolicyViolation, MessageTooBig, InternalError, TryAgainLater};
			return Codes;
		}

		/** The close reasons (error codes) the server gives with a code; empty for codes it does not send. */
		inline std::vector<std::string> Reasons(int Code)
		{
			switch (Code)
			{
			case GoingAway: return {ErrorCodes::ShuttingDown};
			case ProtocolError: return {ErrorCodes::UnsupportedVersion};
			case InvalidData: return {ErrorCodes::BadJson};
			case PolicyViolation: return {ErrorCodes::HelloRequired, ErrorCodes::SlowConsumer};
			case MessageTooBig: return {ErrorCodes::MessageTooLarge};
			case InternalError: return {ErrorCodes::InternalError};
			case TryAgainLater: return {ErrorCodes::TooManyStreams, ErrorCodes::ShuttingDown};
			default: return {};
			}
		}

		/** Whether the client connects again (after its backoff delay) when a connection ends with this
		 * code; no code = no close frame (refused upgrade, lost network, timeout). Everything but 1002 is
		 * worth another try: 1001 and 4013 say so; 1007/1009 were one bad message, 1008 a stall, 1011 a
		 * server fault. A 1002 would only repeat. */
		inline bool Reconnects(std::optional<int> Code) { return Code != ProtocolError; }

		/** A close that says this client sent something wrong: 1007, 1009, and 1008 hello_required. The
		 * client still reconnects after one, but its backoff keeps growing across such closes instead of
		 * restarting, so a client bug costs one attempt per maximum delay, not a tight loop. */
		inline bool IsClientFault(std::optional<int> Code, std::string_view Reason)
		{
			return Code == InvalidData || Code == MessageTooBig || (Code == PolicyViolation && Reason == ErrorCodes::HelloRequired);
		}

		/** A short name for logs: "4013 try_again_later". */
		inline std::string Describe(int Code)
		{
			switch (Code)
			{
			case Normal: return "1000 normal";
			case GoingAway: return "1001 going_away";
			case ProtocolError: return "1002 protocol_error";
			case InvalidData: return "1007 invalid_data";
			case PolicyViolation: return "1008 policy_violation";
			case MessageTooBig: return "1009 message_too_big";
			case InternalError: return "1011 internal_error";
			case TryAgainLater: return "4013 try_again_later";
			default: return std::to_string(Code);
			}
		}
	} // namespace CloseCodes
} // namespace VrRecognition::Core
