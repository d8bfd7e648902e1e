// The client's protocol logic; see ClientSession.h.
#include "VrRecognitionCore/ClientSession.h"

#include <cmath>
#include <limits>
#include <utility>

namespace VrRecognition::Core
{
	ClientSession::ClientSession(ClientOptions InOptions) : Opts(std::move(InOptions))
	{
		if (Opts.MaxInFlight < 1) Opts.MaxInFlight = 1;
	}

	void ClientSession::OnConnecting()
	{
		++Attempts;
		bHelloThisConnection = false;
		FatalError.reset();
		if (!bStopped) SetState(EClientState::Connecting);
	}

	std::string ClientSession::OnOpened()
	{
		if (!bStopped) SetState(EClientState::AwaitingHello);
		ClientHello Message;
		Message.Protocol = Opts.Protocol;
		Message.MinProtocol = Opts.MinProtocol;
		Message.ClientName = Opts.ClientName;
		Message.ClientVersion = Opts.ClientVersion;
		Message.Settings = Opts.Settings;
		return Message.Encode();
	}

	void ClientSession::OnText(std::string_view Utf8, int64_t NowUs, std::vector<ClientEvent>& Events)
	{
		ServerMessage Message;
		ProtocolError Problem;
		if (!DecodeServerMessage(Utf8, Message, Problem))
		{
			ClientEvent Event;
			Event.Type = EClientEventType::LocalError;
			Event.Error.Code = Problem.Code;
			Event.Error.Message = "unreadable server message: " + Problem.Message;
			Events.push_back(std::move(Event));
			return;
		}
		ClientEvent Event;
		switch (Message.Type)
		{
		case EServerMessageType::Hello:
			if (State() != EClientState::AwaitingHello) return; // a second hello is not ours to act on
			Hello = Message.Hello;
			CurrentModel = Message.Hello.Model;
			CurrentSession = Message.Hello.Session;
			bHelloThisConnection = true;
			if (Slot.Clear()) DiscardedOffline.fetch_add(1); // slipped in while the last stream ended: stale now
			++Connections;
			NextSendUs = 0;
			SetState(EClientState::Connected);
			Event.Type = EClientEventType::Connected;
			Event.Hello = Message.Hello;
			Events.push_back(std::move(Event));
			return;
		case EServerMessageType::Result:
			HandleResult(Message.FrameResult, NowUs, Events);
			return;
		case EServerMessageType::Error:
			if (Message.Error.Fatal) FatalError = Message.Error;
			Event.Type = EClientEventType::ServerError;
			Event.Error = Message.Error;
			Events.push_back(std::move(Event));
			return;
		case EServerMessageType::Pong:
		{
			const JsonValue& Id = Message.PongMessage.Id;
			const std::string Key = Id.IsString() ? Id.AsString() : std::to_string(Id.AsInt());
			const auto Found = PingsSent.find(Key);
			if (Found == PingsSent.end()) return;
			Event.Type = EClientEventType::Pong;
			Event.PongRoundTripMs = static_cast<double>(NowUs - Found->second) / 1000.0;
			PingsSent.erase(Found);
			Events.push_back(std::move(Event));
			return;
		}
		case EServerMessageType::Configured:
			CurrentSession = Message.Session;
			Event.Type = EClientEventType::Configured;
			Event.Session = Message.Session;
			Events.push_back(std::move(Event));
			return;
		case EServerMessageType::ModelChanged:
			CurrentModel = Message.Model;
			Event.Type = EClientEventType::ModelChanged;
			Event.Model = Message.Model;
			Events.push_back(std::move(Event));
			return;
		}
	}

	void ClientSession::HandleResult(const Result& Answer, int64_t NowUs, std::vector<ClientEvent>& Events)
	{
		ClientEvent Event;
		Event.Type = EClientEventType::Result;
		FrameResult& Done = Event.Frame;
		Done.Answer = Answer;
		const auto Found = InFlight.find(Answer.FrameId);
		if (Found != InFlight.end())
		{
			Done.bKnownFrame = true;
			Done.UserTag = Found->second.UserTag;
			Done.RoundTripMs = static_cast<double>(NowUs - Found->second.SentUs) / 1000.0;
			LastRoundTripMs = Done.RoundTripMs;
			InFlight.erase(Found);
		}
		else
		{
			Done.RoundTripMs = std::numeric_limits<double>::quiet_NaN();
		}
		Done.LatencyMs = static_cast<double>(NowUs - Answer.CaptureTimeUs) / 1000.0;
		LastLatencyMs = Done.LatencyMs;
		++Received;
		if (Answer.Status == ResultStatus::Ok) ++Ok;
		else if (Answer.Status == ResultStatus::DroppedStale) ++DroppedStale;
		else if (Answer.Status == ResultStatus::Late) ++Late;
		else ++Errors;
		Events.push_back(std::move(Event));
	}

	DisconnectInfo ClientSession::OnClosed(std::optional<int> Code, std::string_view Reason, std::string_view Why, std::vector<ClientEvent>& Events)
	{
		DisconnectInfo Ended;
		Ended.CloseCode = Code;
		Ended.CloseReason = std::string(Reason);
		Ended.FatalError = FatalError;
		Ended.bWasConnected = bHelloThisConnection;
		Ended.bStopped = bStopped;
		if (bStopped) Ended.Description = "stopped";
		else if (Code) Ended.Description = "server closed: " + std::to_string(*Code) + (Reason.empty() ? "" : " " + std::string(Reason));
		else Ended.Description = Why.empty() ? "closed without a close frame" : std::string(Why);
		if (FatalError && !bStopped) Ended.Description = "refused: " + FatalError->Code + ": " + FatalError->Message + " (" + Ended.Description + ")";

		bHelloThisConnection = false;
		FatalError.reset();
		Lost += static_cast<int64_t>(InFlight.size());
		InFlight.clear();
		PingsSent.clear();
		if (Slot.Clear()) DiscardedOffline.fetch_add(1);
		SetState(bStopped ? EClientState::Stopped : EClientState::Disconnected);

		const bool bVersionRefused = Ended.FatalError && Ended.FatalError->Code == ErrorCodes::UnsupportedVersion;
		Ended.bWillReconnect = !bStopped && Opts.Reconnect && CloseCodes::Reconnects(Code) && !bVersionRefused;
		if (Ended.bWillReconnect)
		{
			// A stream that was open starts the backoff again, unless it ended for something this client
			// did wrong: then the delay keeps growing, so a repeating fault cannot loop fast.
			Failures = Ended.bWasConnected && !CloseCodes::IsClientFault(Code, Reason) ? 1 : Failures + 1;
			Ended.ReconnectDelaySeconds = Opts.ReconnectBackoff.DelaySeconds(Failures);
		}
		else if (!bStopped)
		{
			SetState(EClientState::Stopped);
		}
		LastEnd = Ended;
		ClientEvent Event;
		Event.Type = EClientEventType::Disconnected;
		Event.Ended = Ended;
		Events.push_back(std::move(Event));
		return Ended;
	}

	void ClientSession::Stop()
	{
		bStopped = true;
		SetState(EClientState::Stopped);
		if (Slot.Clear()) DiscardedOffline.fetch_add(1);
	}

	bool ClientSession::Submit(OutgoingFrame Frame, int64_t NowUs)
	{
		Submitted.fetch_add(1);
		if (Frame.CaptureTimeUs <= 0) Frame.CaptureTimeUs = NowUs;
		if (State() != EClientState::Connected)
		{
			DiscardedOffline.fetch_add(1);
			return false;
		}
		Slot.Offer(std::move(Frame));
		return true;
	}

	int ClientSession::ExpireInFlight(int64_t NowUs)
	{
		if (static_cast<int>(InFlight.size()) < Opts.MaxInFlight) return static_cast<int>(InFlight.size());
		const int64_t Limit = static_cast<int64_t>(Opts.InFlightTimeoutSeconds * 1e6);
		for (auto It = InFlight.begin(); It != InFlight.end();)
		{
			if (NowUs - It->second.SentUs > Limit)
			{
				It = InFlight.erase(It);
				++Lost;
			}
			else
			{
				++It;
			}
		}
		return static_cast<int>(InFlight.size());
	}

	bool ClientSession::NextMessage(int64_t NowUs, std::vector<uint8_t>& Message, std::vector<ClientEvent>& Events)
	{
		if (State() != EClientState::Connected) return false;
		if (ExpireInFlight(NowUs) >= Opts.MaxInFlight) return false;
		const int64_t Interval = Opts.TargetFps > 0 ? static_cast<int64_t>(1e6 / Opts.TargetFps) : 0;
		if (Interval > 0 && NowUs < NextSendUs) return false;
		std::optional<OutgoingFrame> Taken = Slot.TryTake();
		if (!Taken) return false;
		const OutgoingFrame& Out = *Taken;
		Frame Header;
		Header.FrameId = NextFrameId++;
		Header.CaptureTimeUs = static_cast<uint64_t>(Out.CaptureTimeUs);
		Header.Format = Out.Format;
		Header.Width = Out.Width;
		Header.Height = Out.Height;
		Header.Pose = Out.Pose;
		Header.Gaze = Out.Gaze;
		Header.RowsBottomUp = Out.RowsBottomUp;
		Header.Payload = Out.Payload.data();
		Header.PayloadLength = Out.Payload.size();
		std::string Why;
		const int64_t Total = static_cast<int64_t>(FrameCodec::HeaderSize + Out.Payload.size());
		if (Hello && Total > Hello->ServerLimits.MaxMessageBytes)
		{
			// The server would close the connection (1009 message_too_large): refuse the frame here instead.
			ClientEvent Event;
			Event.Type = EClientEventType::LocalError;
			Event.Error.Code = ErrorCodes::MessageTooLarge;
			Event.Error.Message = "frame not sent: " + std::to_string(Total) + " bytes, over the server's limits.max_message_bytes "
				+ std::to_string(Hello->ServerLimits.MaxMessageBytes);
			Events.push_back(std::move(Event));
			--NextFrameId;
			return false;
		}
		if (Out.CaptureTimeUs < 0 || !FrameCodec::Encode(Header, Message, &Why))
		{
			ClientEvent Event;
			Event.Type = EClientEventType::LocalError;
			Event.Error.Code = ErrorCodes::InvalidMessage;
			Event.Error.Message = "frame not sent: " + (Why.empty() ? std::string("negative capture time") : Why);
			Events.push_back(std::move(Event));
			--NextFrameId;
			return false;
		}
		InFlight[Header.FrameId] = FInFlight{NowUs, Out.CaptureTimeUs, Out.UserTag};
		if (static_cast<int>(InFlight.size()) > MaxInFlightSeen) MaxInFlightSeen = static_cast<int>(InFlight.size());
		// Token bucket of one frame: a send that came late may be followed a little early, so capture
		// jitter does not cost frames, but the average stays at TargetFps.
		if (Interval > 0) NextSendUs = (NextSendUs > NowUs - Interval ? NextSendUs : NowUs - Interval) + Interval;
		++Sent;
		return true;
	}

	int64_t ClientSession::WakeAtUs(int64_t NowUs) const
	{
		if (State() != EClientState::Connected || !Slot.HasItem()) return -1;
		if (static_cast<int>(InFlight.size()) >= Opts.MaxInFlight)
		{
			int64_t Oldest = std::numeric_limits<int64_t>::max();
			for (const auto& Pair : InFlight) Oldest = Pair.second.SentUs < Oldest ? Pair.second.SentUs : Oldest;
			return Oldest + static_cast<int64_t>(Opts.InFlightTimeoutSeconds * 1e6) + 1;
		}
		return NextSendUs > NowUs && Opts.TargetFps > 0 ? NextSendUs : NowUs;
	}

	std::string ClientSession::MakeConfigure(const StreamSettings& Settings) const
	{
		Configure Message;
		Message.Settings = Settings;
		return Message.Encode();
	}

	std::string ClientSession::MakePing(int64_t NowUs)
	{
		const int64_t Id = ++NextPingId;
		PingsSent[std::to_string(Id)] = NowUs;
		Ping Message;
		Message.Id = JsonValue::FromInt(Id);
		Message.ClientTimeUs = NowUs >= 0 && NowUs <= MaxJsonSafeInt ? std::optional<int64_t>(NowUs) : std::nullopt;
		return Message.Encode();
	}

	ClientStats ClientSession::Stats() const
	{
		ClientStats S;
		S.FramesSubmitted = Submitted.load();
		S.FramesReplaced = Slot.Replaced();
		S.FramesDiscardedOffline = DiscardedOffline.load();
		S.FramesSent = Sent;
		S.ResultsReceived = Received;
		S.ResultsOk = Ok;
		S.ResultsDroppedStale = DroppedStale;
		S.ResultsLate = Late;
		S.ResultsError = Errors;
		S.FramesLost = Lost;
		S.InFlight = InFlightCount();
		S.MaxInFlightSeen = MaxInFlightSeen;
		S.ConnectAttempts = Attempts;
		S.Connections = Connections;
		S.LastRoundTripMs = LastRoundTripMs;
		S.LastLatencyMs = LastLatencyMs;
		return S;
	}
} // namespace VrRecognition::Core
