// The client's protocol logic without any I/O: what the Unity core's RecognitionClient does around its
// ClientWebSocket, for a transport that calls in. The Unreal component drives it from IWebSocket's
// delegates on the game thread; the tests drive the same code from a Boost.Beast socket against a real
// vr-serve. It builds the hello, keeps the latest-frame-wins slot and the in-flight cap, paces frames to
// a target rate, decodes replies into events, and decides when to reconnect (jittered backoff).
//
// Threading: Submit() may be called from any thread; everything else from the one transport thread.
// Times are microseconds on one monotonic clock chosen by the caller (capture_time_us uses it too).
// Plain C++17: no Unreal types, no exceptions, no RTTI.
#pragma once

#include "VrRecognitionCore/Backoff.h"
#include "VrRecognitionCore/CloseCodes.h"
#include "VrRecognitionCore/FrameCodec.h"
#include "VrRecognitionCore/LatestFrameSlot.h"
#include "VrRecognitionCore/Messages.h"

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace VrRecognition::Core
{
	inline constexpr const char* ClientVersionString = "0.1.0";

	struct ClientOptions
	{
		/** Newest protocol version asked for in hello, and the oldest accepted (empty: the same). */
		int Protocol = 1;
		std::optional<int> MinProtocol;
		std::string ClientName = "unreal-client";
		std::string ClientVersion = ClientVersionString;
		/** top_k, budget_ms, fps, smoothing, gaze crop asked for in hello (empty: server default). */
		StreamSettings Settings;
		/** Most frames sent per second; 0 = as fast as the in-flight cap allows. */
		double TargetFps = 30.0;
		/** Frames sent but not answered yet. At the cap, new frames replace the slot's frame. */
		int MaxInFlight = 2;
		/** An unanswered frame older than this no longer counts against the cap (counted lost). */
		double InFlightTimeoutSeconds = 5.0;
		bool Reconnect = true;
		Backoff ReconnectBackoff;
	};

	/** A frame handed to the client: Payload is the image (JPEG normally). */
	struct OutgoingFrame
	{
		std::vector<uint8_t> Payload;
		int Width = 0;
		int Height = 0;
		EImageFormat Format = EImageFormat::Jpeg;
		/** First payload row is the image's bottom row (raw readback; the server flips). */
		bool RowsBottomUp = false;
		std::optional<HeadPose> Pose;
		std::optional<GazePoint> Gaze;
		/** When the image was captured, on the session's clock; 0 = stamp it on submit. */
		int64_t CaptureTimeUs = 0;
		/** Anything the caller wants back with the result. */
		uint64_t UserTag = 0;
	};

	struct FrameResult
	{
		Result Answer;
		uint64_t UserTag = 0;
		/** False when the frame was not in flight (answered after a timeout, or unknown). */
		bool bKnownFrame = false;
		/** From the send to the reply, ms (NaN when unknown). */
		double RoundTripMs = 0.0;
		/** From capture (CaptureTimeUs) to the reply, ms: what the user experiences. */
		double LatencyMs = 0.0;
	};

	enum class EClientState : uint8_t { Idle, Connecting, AwaitingHello, Connected, Disconnected, Stopped };

	/** How a connection (or an attempt at one) ended, and what the client does next. */
	struct DisconnectInfo
	{
		/** The close code the server sent (CloseCodes; docs/protocol.md 5.2), or empty when the connection
		 * ended without one: upgrade refused (HTTP 401/403/503), network lost, timed out, or Stop(). */
		std::optional<int> CloseCode;
		/** The close reason: an error code such as "too_many_streams"; empty without one. */
		std::string CloseReason;
		/** The fatal error message the server sent just before closing, if any. */
		std::optional<ErrorMessage> FatalError;
		/** Readable summary for logs. */
		std::string Description;
		/** The stream had been open (hello answered) before it ended. */
		bool bWasConnected = false;
		/** Ended by Stop(). */
		bool bStopped = false;
		/** The client connects again after ReconnectDelaySeconds (backoff); false: it has stopped. */
		bool bWillReconnect = false;
		double ReconnectDelaySeconds = 0.0;
	};

	enum class EClientEventType : uint8_t { Connected, Result, ServerError, ModelChanged, Configured, Pong, Disconnected, LocalError };

	/** Something for the owner to raise. Only the fields of its type are set. */
	struct ClientEvent
	{
		EClientEventType Type = EClientEventType::LocalError;
		ServerHello Hello;                // Connected
		FrameResult Frame;                // Result
		ErrorMessage Error;               // ServerError, LocalError
		ModelInfo Model;                  // ModelChanged
		EffectiveSettings Session;        // Configured
		double PongRoundTripMs = 0.0;     // Pong
		DisconnectInfo Ended;             // Disconnected
	};

	/** A snapshot of the counters. */
	struct ClientStats
	{
		int64_t FramesSubmitted = 0;
		/** Replaced in the send slot by a newer frame before being sent: the client's own drops. */
		int64_t FramesReplaced = 0;
		/** Submitted while not connected, discarded. */
		int64_t FramesDiscardedOffline = 0;
		int64_t FramesSent = 0;
		int64_t ResultsReceived = 0;
		int64_t ResultsOk = 0;
		int64_t ResultsDroppedStale = 0;
		int64_t ResultsLate = 0;
		int64_t ResultsError = 0;
		/** Sent but never answered (connection lost, or older than the in-flight timeout). */
		int64_t FramesLost = 0;
		int InFlight = 0;
		int MaxInFlightSeen = 0;
		int64_t ConnectAttempts = 0;
		int64_t Connections = 0;
		double LastRoundTripMs = 0.0;
		double LastLatencyMs = 0.0;
	};

	class ClientSession
	{
	public:
		explicit ClientSession(ClientOptions InOptions);

		const ClientOptions& Options() const { return Opts; }
		EClientState State() const { return CurrentState.load(); }
		bool IsConnected() const { return State() == EClientState::Connected; }

		// --- connection lifecycle (transport thread) ------------------------------------------------

		/** A connection attempt starts. */
		void OnConnecting();
		/** The WebSocket is open: returns the hello, to be sent before anything else. */
		std::string OnOpened();
		/** A text message arrived; appends what to raise to Events. */
		void OnText(std::string_view Utf8, int64_t NowUs, std::vector<ClientEvent>& Events);
		/** The connection ended: with the server's close frame (Code and Reason), or without one (no Code;
		 * Why says what happened: a refused upgrade, a lost network). Appends a Disconnected event and
		 * returns it: whether, and after which backoff delay, to connect again. */
		DisconnectInfo OnClosed(std::optional<int> Code, std::string_view Reason, std::string_view Why, std::vector<ClientEvent>& Events);
		/** The owner stops: no reconnect after the next close. */
		void Stop();

		// --- frames ------------------------------------------------------------------------------------

		/** Hands a frame to the send slot (any thread). If the previous frame was not sent yet it is
		 * dropped (FramesReplaced): frames are never queued. False when discarded because the stream is
		 * not open. */
		bool Submit(OutgoingFrame Frame, int64_t NowUs);
		/** The next binary message to send now, if the in-flight cap and the pacing allow one and a frame
		 * is waiting; replaces Message. */
		bool NextMessage(int64_t NowUs, std::vector<uint8_t>& Message, std::vector<ClientEvent>& Events);
		/** When NextMessage may next have something without another event (pacing, an in-flight timeout),
		 * or -1 when only a new frame or a reply can change that. */
		int64_t WakeAtUs(int64_t NowUs) const;

		// --- control messages -------------------------------------------------------------------------

		std::string MakeConfigure(const StreamSettings& Settings) const;
		/** An application-level ping; the Pong event carries the round trip. */
		std::string MakePing(int64_t NowUs);

		// --- state --------------------------------------------------------------------------------------

		const std::optional<ServerHello>& LastHello() const { return Hello; }
		/** How the last connection ended (empty before the first ended). */
		const std::optional<DisconnectInfo>& LastDisconnect() const { return LastEnd; }
		const ModelInfo& Model() const { return CurrentModel; }
		const EffectiveSettings& Session() const { return CurrentSession; }
		int InFlightCount() const { return static_cast<int>(InFlight.size()); }
		bool HasPendingFrame() const { return Slot.HasItem(); }
		/** A frame submitted now would only replace the waiting one: capture can skip its work. */
		bool IsSaturated() const { return Slot.HasItem() && InFlightCount() >= Opts.MaxInFlight; }
		ClientStats Stats() const;

	private:
		struct FInFlight
		{
			int64_t SentUs = 0;
			int64_t CaptureTimeUs = 0;
			uint64_t UserTag = 0;
		};

		void SetState(EClientState Value) { CurrentState.store(Value); }
		int ExpireInFlight(int64_t NowUs);
		void HandleResult(const Result& Answer, int64_t NowUs, std::vector<ClientEvent>& Events);

		ClientOptions Opts;
		std::atomic<EClientState> CurrentState{EClientState::Idle};
		LatestFrameSlot<OutgoingFrame> Slot;
		std::map<uint32_t, FInFlight> InFlight;
		std::map<std::string, int64_t> PingsSent;
		std::optional<ServerHello> Hello;
		ModelInfo CurrentModel;
		EffectiveSettings CurrentSession;
		std::optional<ErrorMessage> FatalError;
		std::optional<DisconnectInfo> LastEnd;
		uint32_t NextFrameId = 0;
		int64_t NextPingId = 0;
		int64_t NextSendUs = 0;
		int Failures = 0;
		bool bHelloThisConnection = false;
		bool bStopped = false;
		std::atomic<int64_t> Submitted{0};
		std::atomic<int64_t> DiscardedOffline{0};
		int64_t Sent = 0, Received = 0, Ok = 0, DroppedStale = 0, Late = 0, Errors = 0, Lost = 0, Attempts = 0, Connections = 0;
		int MaxInFlightSeen = 0;
		double LastRoundTripMs = 0.0, LastLatencyMs = 0.0;
	};
} // namespace VrRecognition::Core
