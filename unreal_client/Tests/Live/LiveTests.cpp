// The plugin's protocol core (ClientSession, FrameCodec, Messages) against real vr-serve processes, over
// a Boost.Beast socket (tests/test_unreal_client.py starts the servers and runs this program). Sections
// run when their arguments are given:
//   --frames DIR                       red.jpg, green.jpg, blue.jpg (64x48, made with OpenCV by the test)
//   --server URL --token T             the colour model, token required, a short --hello-timeout
//   --slow-server URL                  a fixed 30 ms per batch: the client must drop stale frames itself
//   --limits-server URL                --max-streams 1 and a small --max-message-mb
//   --fault-server URL --fault-server-pid PID
//                                      answering a ping raises (1011), a short --keepalive, SIGTERM at the end
// Every close received is printed as "close received: CODE REASON (who)"; the pytest side checks that the
// codes printed cover the table of docs/protocol.md 5.2. Output otherwise as CoreTests: "ok NAME" / "FAIL".
#include "../Core/TestRunner.h"
#include "BeastTransport.h"

#include <signal.h>
#include <sys/types.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <stdexcept>

using namespace VrRecognitionTests;

namespace
{
	std::map<std::string, std::string> Args;
	constexpr double LiveTimeoutS = 30.0;

	void Require(bool bCondition, const std::string& What)
	{
		if (!bCondition) throw std::runtime_error(What);
	}

	template <typename A, typename B>
	void RequireEqual(const A& Expected, const B& Actual, const std::string& What)
	{
		if (!(Expected == Actual)) throw std::runtime_error(What + ": expected " + Show(Expected) + ", got " + Show(Actual));
	}

	void RunLive(const std::string& Name, const std::function<void()>& Test)
	{
		Run(Name, [&Test]() {
			try
			{
				Test();
			}
			catch (const std::exception& Error)
			{
				Fail(Error.what());
			}
		});
	}

	void CloseSeen(int Code, const std::string& Reason, const std::string& Who)
	{
		std::printf("close received: %d %s (%s)\n", Code, Reason.c_str(), Who.c_str());
		std::fflush(stdout);
	}

	std::vector<uint8_t> Jpeg(const std::string& Colour)
	{
		std::ifstream Stream(Args["frames"] + "/" + Colour + ".jpg", std::ios::binary);
		std::vector<uint8_t> Bytes((std::istreambuf_iterator<char>(Stream)), std::istreambuf_iterator<char>());
		Require(!Bytes.empty(), "no frame file for " + Colour);
		return Bytes;
	}

	OutgoingFrame ColourFrame(const std::string& Colour, uint64_t Tag = 0)
	{
		OutgoingFrame F;
		F.Payload = Jpeg(Colour);
		F.Width = 64;
		F.Height = 48;
		F.UserTag = Tag;
		return F;
	}

	double ActiveStreams(const std::string& Url)
	{
		const std::string Text = HttpGet(Url, "/metrics");
		const std::string Name = "\nvr_active_streams ";
		const size_t At = Text.find(Name);
		Require(At != std::string::npos, "no vr_active_streams in /metrics");
		return std::stod(Text.substr(At + Name.size()));
	}

	void WaitForActiveStreams(const std::string& Url, double Count, const std::string& What)
	{
		const auto Deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(LiveTimeoutS);
		double Now = 0;
		while ((Now = ActiveStreams(Url)) != Count)
		{
			if (std::chrono::steady_clock::now() > Deadline)
				throw std::runtime_error("timed out waiting for " + What + ": " + Show(Now) + " streams open, expected " + Show(Count));
			std::this_thread::sleep_for(std::chrono::milliseconds(20));
		}
	}

	ClientOptions QuickBackoff(const std::string& Name)
	{
		ClientOptions Options;
		Options.ClientName = Name;
		Options.ReconnectBackoff.InitialSeconds = 0.05;
		Options.ReconnectBackoff.MaxSeconds = 0.4;
		Options.ReconnectBackoff.Jitter = 0.0;
		return Options;
	}

	/** The first end with a close frame: its code, reason and the fatal error before it. */
	DisconnectInfo ExpectClose(FLiveClient& Client, int Code, const std::string& Reason, const std::string& FatalError, const std::string& Who)
	{
		Client.Expect([&Client]() {
			for (const DisconnectInfo& End : Client.Ends())
				if (End.CloseCode) return true;
			return false;
		}, "a close " + std::to_string(Code));
		const DisconnectInfo End = Client.Locked([&Client]() {
			for (const DisconnectInfo& Each : Client.Ends())
				if (Each.CloseCode) return Each;
			return DisconnectInfo();
		});
		RequireEqual(Code, *End.CloseCode, "close code (" + End.Description + ")");
		RequireEqual(Reason, End.CloseReason, "close reason");
		if (FatalError.empty())
		{
			Require(!End.FatalError, "no fatal error before the close: " + (End.FatalError ? End.FatalError->Code : std::string()));
		}
		else
		{
			Require(End.FatalError && End.FatalError->Fatal, "a fatal error before the close");
			RequireEqual(FatalError, End.FatalError->Code, "the fatal error's code");
			const bool bRaised = Client.Locked([&Client, &FatalError]() {
				for (const ClientEvent& E : Client.Events())
					if (E.Type == EClientEventType::ServerError && E.Error.Fatal && E.Error.Code == FatalError) return true;
				return false;
			});
			Require(bRaised, "a ServerError event for the fatal " + FatalError);
		}
		Require(End.Description.find(std::to_string(Code)) != std::string::npos && End.Description.find(Reason) != std::string::npos,
			"the description names the code and reason: " + End.Description);
		CloseSeen(Code, Reason, Who);
		return End;
	}

	void ExpectReconnectWithBackoff(const DisconnectInfo& End)
	{
		Require(End.bWillReconnect, "the client reconnects after " + std::to_string(End.CloseCode.value_or(0)));
		Require(End.ReconnectDelaySeconds > 0, "after a backoff delay: " + Show(End.ReconnectDelaySeconds));
	}

	void ExpectPeerClose(FRawPeer& Peer, int Code, const std::string& Reason, const std::string& FatalError, const std::string& Who)
	{
		Require(Peer.CloseCode.has_value(), "a close frame with a status");
		RequireEqual(Code, *Peer.CloseCode, "close code");
		RequireEqual(Reason, Peer.CloseReason, "close reason");
		int Fatal = 0;
		for (const ServerMessage& M : Peer.Received) Fatal += M.Type == EServerMessageType::Error && M.Error.Fatal ? 1 : 0;
		if (FatalError.empty())
		{
			RequireEqual(0, Fatal, "no fatal error before the close");
		}
		else
		{
			RequireEqual(1, Fatal, "one fatal error before the close");
			const ServerMessage& Last = Peer.Received.back();
			Require(Last.Type == EServerMessageType::Error && Last.Error.Fatal, "the fatal error is the last message");
			RequireEqual(FatalError, Last.Error.Code, "the fatal error's code");
		}
		CloseSeen(Code, Reason, Who);
	}

	// --- the fast server (token required) -----------------------------------------------------------

	void LiveColourPredictions()
	{
		FLiveClient::FOptions Options;
		Options.Url = Args["server"];
		Options.Token = Args["token"];
		Options.Client.ClientName = "unreal-core-tests";
		Options.Client.TargetFps = 60;
		Options.Client.MaxInFlight = 1;
		Options.Client.Settings.TopK = 2;
		Options.Client.Settings.BudgetMs = 2000;
		Options.Client.Settings.Fps = 60;
		FLiveClient Client(Options);
		Client.Expect([&Client]() { return Client.Count(EClientEventType::Connected) == 1; }, "the server hello");
		const ServerHello Hello = Client.Locked([&Client]() { return *Client.SessionUnsafe().LastHello(); });
		RequireEqual(std::string("red,green,blue"), Hello.Model.Classes[0] + "," + Hello.Model.Classes[1] + "," + Hello.Model.Classes[2], "classes");
		RequireEqual(int64_t(2), Hello.Session.TopK, "session top_k");
		RequireEqual(2000.0, Hello.Session.BudgetMs, "session budget");
		Require(Hello.Model.Mapping == "centre_crop" || Hello.Model.Mapping == "stretch", "model.input.mapping: " + Hello.Model.Mapping);
		Require(Hello.ServerLimits.MaxMessageBytes > 100000 && Hello.ServerLimits.CheckSize(64, 48).empty(), "limits admit our frames");
		std::printf("hello: model %s, input %dx%d %s, provider %s, limits max_message_bytes %lld\n", Hello.Model.Name.c_str(),
			Hello.Model.InputWidth, Hello.Model.InputHeight, Hello.Model.Mapping.c_str(), Hello.Model.Provider.c_str(),
			static_cast<long long>(Hello.ServerLimits.MaxMessageBytes));

		const HeadPose Pose{{1.5f, 1.625f, -2.25f}, {0.f, 0.38268343f, 0.f, 0.9238795f}};
		const GazePoint Gaze{0.25f, 0.75f};
		const std::vector<std::string> Colours = {"red", "green", "blue", "red"};
		for (size_t I = 0; I < Colours.size(); ++I)
		{
			const int Before = Client.Locked([&Client]() { return Client.Count(EClientEventType::Result); });
			OutgoingFrame F = ColourFrame(Colours[I], 100 + I);
			F.Pose = Pose;
			F.Gaze = Gaze;
			Require(Client.Submit(std::move(F)), "the frame was accepted");
			Client.Expect([&Client, Before]() { return Client.Count(EClientEventType::Result) > Before; }, "the result for " + Colours[I]);
			const FrameResult R = Client.Locked([&Client]() {
				for (auto It = Client.Events().rbegin(); It != Client.Events().rend(); ++It)
					if (It->Type == EClientEventType::Result) return It->Frame;
				return FrameResult();
			});
			RequireEqual(std::string(ResultStatus::Ok), R.Answer.Status, "status (" + R.Answer.ErrorCode.value_or("") + " " + R.Answer.ErrorMessage + ")");
			RequireEqual(Colours[I], R.Answer.Top()->Label, "top label");
			RequireEqual(size_t(2), R.Answer.TopK.size(), "top_k entries");
			RequireEqual(uint64_t(100 + I), R.UserTag, "the user tag travels with the frame");
			Require(R.bKnownFrame, "the frame was in flight");
			Require(R.Answer.PosePosition && static_cast<float>((*R.Answer.PosePosition)[2]) == -2.25f
					&& static_cast<float>((*R.Answer.PoseRotation)[1]) == 0.38268343f,
				"pose echoed");
			Require(R.Answer.Gaze && static_cast<float>((*R.Answer.Gaze)[0]) == 0.25f && static_cast<float>((*R.Answer.Gaze)[1]) == 0.75f, "gaze echoed");
			Require(R.LatencyMs > 0 && R.LatencyMs < 20000 && R.RoundTripMs > 0 && R.Answer.Timing("total").has_value(), "latency and timings");
		}
		Client.Ping();
		Client.Expect([&Client]() { return Client.Count(EClientEventType::Pong) == 1; }, "the pong");
		StreamSettings Budget;
		Budget.BudgetMs = 1500;
		Budget.SmoothingEmaAlpha = 0.5;
		Client.Configure(Budget);
		Client.Expect([&Client]() { return Client.Count(EClientEventType::Configured) == 1; }, "configured");
		Client.Locked([&Client]() {
			RequireEqual(1500.0, Client.SessionUnsafe().Session().BudgetMs, "configured budget");
			Require(Client.SessionUnsafe().Session().SmoothingEmaAlpha == 0.5, "smoothing on");
			return 0;
		});
		StreamSettings Off; // v1.1: null returns a field to the server's default (smoothing: off)
		Off.ResetToDefault(ESetting::Smoothing);
		Client.Configure(Off);
		Client.Expect([&Client]() { return Client.Count(EClientEventType::Configured) == 2; }, "configured again");
		Client.Locked([&Client]() {
			Require(!Client.SessionUnsafe().Session().SmoothingEmaAlpha.has_value(), "smoothing off after null");
			RequireEqual(1500.0, Client.SessionUnsafe().Session().BudgetMs, "an absent field stays");
			const ClientStats S = Client.SessionUnsafe().Stats();
			RequireEqual(int64_t(4), S.FramesSent, "frames sent");
			RequireEqual(int64_t(4), S.ResultsOk, "ok results");
			RequireEqual(int64_t(0), S.FramesReplaced, "nothing dropped when waiting for each answer");
			return 0;
		});
		Client.Stop();
		Client.Locked([&Client]() {
			const std::vector<DisconnectInfo> Ends = Client.Ends();
			RequireEqual(size_t(1), Ends.size(), "one disconnect, on Stop");
			Require(Ends[0].bStopped && !Ends[0].bWillReconnect, "stopped, not reconnecting");
			Require(Client.SessionUnsafe().State() == EClientState::Stopped, "state Stopped");
			return 0;
		});
	}

	void WrongTokenBackoff()
	{
		FLiveClient::FOptions Options;
		Options.Url = Args["server"];
		Options.Token = "not-the-token";
		Options.Client = QuickBackoff("wrong-token");
		FLiveClient Client(Options);
		Client.Expect([&Client]() { return Client.Count(EClientEventType::Disconnected) >= 3; }, "three refused attempts");
		Client.Locked([&Client]() {
			RequireEqual(0, Client.Count(EClientEventType::Connected), "a wrong token must not connect");
			const std::vector<DisconnectInfo> Ends = Client.Ends();
			Require(Ends[0].Description.find("401") != std::string::npos && Ends[0].Description.find("unauthorized") != std::string::npos,
				"the refusal says HTTP 401 unauthorized: " + Ends[0].Description);
			Require(!Ends[0].CloseCode && Ends[0].bWillReconnect, "no close frame, and a retry");
			Require(Ends[1].ReconnectDelaySeconds > Ends[0].ReconnectDelaySeconds, "the delay grows");
			Require(!Client.SessionUnsafe().Submit(ColourFrame("red"), NowUs()), "frames are discarded while offline");
			return 0;
		});
	}

	void LiveClose1002()
	{
		FLiveClient::FOptions Options;
		Options.Url = Args["server"];
		Options.Token = Args["token"];
		Options.Client = QuickBackoff("close-1002");
		Options.Client.Protocol = 1;
		Options.Client.MinProtocol = 2; // v1.1: a failed negotiation, fatal unsupported_version
		FLiveClient Client(Options);
		const DisconnectInfo End = ExpectClose(Client, CloseCodes::ProtocolError, ErrorCodes::UnsupportedVersion, ErrorCodes::UnsupportedVersion,
			"ClientSession asking for versions 2..1");
		Require(!End.bWillReconnect && !End.bWasConnected, "no reconnect after 1002; never open");
		Client.Expect([&Client]() { return Client.SessionUnsafe().State() == EClientState::Stopped; }, "the client to stop");
		Client.Locked([&Client]() {
			RequireEqual(int64_t(1), Client.SessionUnsafe().Stats().ConnectAttempts, "one attempt only");
			return 0;
		});
	}

	void LiveClose1007()
	{
		FRawPeer Peer(Args["server"], Args["token"]);
		Peer.Hello("close-1007");
		Peer.SendText(std::string("{\"\xff\xfe\"}"));
		Peer.ReadUntilClose();
		ExpectPeerClose(Peer, CloseCodes::InvalidData, ErrorCodes::BadJson, "", "Beast peer that sent invalid UTF-8");
	}

	// --- the limits server: --max-streams 1, a small --max-message-mb ---------------------------------

	void LiveClientRefusesOversizedFrame()
	{
		const std::string Url = Args["limits-server"];
		WaitForActiveStreams(Url, 0, "a free stream slot");
		FLiveClient::FOptions Options;
		Options.Url = Url;
		Options.Client = QuickBackoff("oversized-frame");
		Options.Client.MaxInFlight = 1;
		FLiveClient Client(Options);
		Client.Expect([&Client]() { return Client.Count(EClientEventType::Connected) == 1; }, "the hello");
		const int64_t Limit = Client.Locked([&Client]() { return Client.SessionUnsafe().LastHello()->ServerLimits.MaxMessageBytes; });
		Require(Limit < (1 << 20), "the limits server has a small max_message_bytes: " + Show(Limit));
		OutgoingFrame Big = ColourFrame("green");
		Big.Payload.resize(static_cast<size_t>(Limit)); // + the 72-byte header: over the limit
		Client.Submit(std::move(Big));
		Client.Expect([&Client]() {
			for (const ClientEvent& E : Client.Events())
				if (E.Type == EClientEventType::LocalError && E.Error.Code == ErrorCodes::MessageTooLarge) return true;
			return false;
		}, "the local message_too_large");
		Client.Submit(ColourFrame("green"));
		Client.Expect([&Client]() { return Client.Count(EClientEventType::Result) == 1; }, "the next frame's result");
		Client.Locked([&Client]() {
			for (const ClientEvent& E : Client.Events())
				if (E.Type == EClientEventType::Result) RequireEqual(std::string("green"), E.Frame.Answer.Top()->Label, "still serving");
			RequireEqual(0, Client.Count(EClientEventType::Disconnected), "no disconnect");
			RequireEqual(int64_t(1), Client.SessionUnsafe().Stats().FramesSent, "only the frame within the limit was sent");
			return 0;
		});
	}

	void LiveClose4013TooManyStreams()
	{
		const std::string Url = Args["limits-server"];
		WaitForActiveStreams(Url, 0, "a free stream slot");
		FLiveClient::FOptions Options;
		Options.Url = Url;
		Options.Client = QuickBackoff("close-4013");
		Options.bHoldFirstHello = true; // upgraded while the slot is free, hello late
		FLiveClient Client(Options);
		Client.Expect([&Client]() { return Client.HelloHeld(); }, "the upgrade with the hello held");
		{
			FRawPeer Holder(Url);
			Holder.Hello("slot-holder");
			Client.ReleaseHello();
			const DisconnectInfo End = ExpectClose(Client, CloseCodes::TryAgainLater, ErrorCodes::TooManyStreams, ErrorCodes::TooManyStreams,
				"ClientSession whose hello came after the slot was taken");
			Require(!End.bWasConnected, "the stream never opened");
			ExpectReconnectWithBackoff(End);
			// Retries while the slot is taken are refused at the upgrade (HTTP 503, no close frame).
			Client.Expect([&Client]() { return Client.Ends().size() >= 3; }, "two more refused attempts");
			Client.Locked([&Client]() {
				const std::vector<DisconnectInfo> Ends = Client.Ends();
				for (size_t I = 1; I < Ends.size(); ++I)
				{
					Require(Ends[I].bWillReconnect, "it keeps retrying");
					Require(Ends[I].Description.find("503") != std::string::npos, "refused at the upgrade: " + Ends[I].Description);
				}
				RequireEqual(0, Client.Count(EClientEventType::Connected), "not connected while the slot is taken");
				return 0;
			});
			Holder.Close();
		}
		Client.Expect([&Client]() { return Client.Count(EClientEventType::Connected) == 1; }, "the reconnect once the slot is free");
		Client.Stop();
	}

	void LiveClose1009()
	{
		const std::string Url = Args["limits-server"];
		WaitForActiveStreams(Url, 0, "a free stream slot");
		FRawPeer Peer(Url);
		const int64_t Limit = Peer.Hello("close-1009").ServerLimits.MaxMessageBytes;
		std::vector<uint8_t> Payload(static_cast<size_t>(Limit), 0);
		Frame F;
		F.Width = 64;
		F.Height = 48;
		F.Payload = Payload.data();
		F.PayloadLength = Payload.size();
		std::vector<uint8_t> Message;
		Require(FrameCodec::Encode(F, Message), "encode");
		Peer.SendBinary(Message);
		Peer.ReadUntilClose();
		ExpectPeerClose(Peer, CloseCodes::MessageTooBig, ErrorCodes::MessageTooLarge, "", "Beast peer that sent " + std::to_string(Message.size()) + " bytes");
	}

	// --- the slow server --------------------------------------------------------------------------------

	void SlowServerDrops()
	{
		FLiveClient::FOptions Options;
		Options.Url = Args["slow-server"];
		Options.Client.ClientName = "slow-server-check";
		Options.Client.TargetFps = 0; // no pacing: only the in-flight cap holds frames back
		Options.Client.MaxInFlight = 2;
		Options.Client.Settings.BudgetMs = 30000;
		FLiveClient Client(Options);
		Client.Expect([&Client]() { return Client.Count(EClientEventType::Connected) == 1; }, "the slow server's hello");
		const std::vector<uint8_t> Red = Jpeg("red");
		const auto Until = std::chrono::steady_clock::now() + std::chrono::milliseconds(2500);
		int64_t Submitted = 0;
		while (std::chrono::steady_clock::now() < Until)
		{
			OutgoingFrame F;
			F.Payload = Red;
			F.Width = 64;
			F.Height = 48;
			Client.Submit(std::move(F));
			++Submitted;
			std::this_thread::sleep_for(std::chrono::milliseconds(2));
		}
		Client.Expect([&Client]() {
			const ClientStats S = Client.SessionUnsafe().Stats();
			return !Client.SessionUnsafe().HasPendingFrame() && S.InFlight == 0 && S.ResultsReceived >= S.FramesSent;
		}, "the in-flight frames' answers");
		Client.Locked([&Client, Submitted]() {
			const ClientStats S = Client.SessionUnsafe().Stats();
			std::printf("slow server: submitted %lld, sent %lld, replaced %lld, answered %lld (ok %lld, stale %lld, late %lld), max in flight %d, "
						"last round trip %.1f ms\n",
				static_cast<long long>(Submitted), static_cast<long long>(S.FramesSent), static_cast<long long>(S.FramesReplaced),
				static_cast<long long>(S.ResultsReceived), static_cast<long long>(S.ResultsOk), static_cast<long long>(S.ResultsDroppedStale),
				static_cast<long long>(S.ResultsLate), S.MaxInFlightSeen, S.LastRoundTripMs);
			Require(S.FramesReplaced > 0, "the client dropped stale frames itself");
			Require(S.FramesSent > 0, "frames were sent");
			RequireEqual(S.FramesSent, S.ResultsReceived, "every sent frame was answered");
			RequireEqual(static_cast<int>(S.FramesSent), Client.Count(EClientEventType::Result), "every answer was raised");
			RequireEqual(int64_t(0), S.FramesLost, "no frame lost");
			Require(S.MaxInFlightSeen <= 2, "in-flight cap held: " + Show(S.MaxInFlightSeen));
			Require(S.ResultsOk > 0, "some frames answered ok");
			RequireEqual(Submitted, S.FramesSubmitted, "submitted");
			RequireEqual(S.FramesSubmitted, S.FramesSent + S.FramesReplaced, "submitted = sent + replaced");
			for (const ClientEvent& E : Client.Events())
				if (E.Type == EClientEventType::Result && E.Frame.Answer.IsOk()) RequireEqual(std::string("red"), E.Frame.Answer.Top()->Label, "slow model still answers red");
			return 0;
		});
		Client.Stop();
	}

	// --- the fault server: pongs raise, --keepalive short, SIGTERM at the end -------------------------

	void LiveClose1011()
	{
		FLiveClient::FOptions Options;
		Options.Url = Args["fault-server"];
		Options.Client = QuickBackoff("close-1011");
		FLiveClient Client(Options);
		Client.Expect([&Client]() { return Client.Count(EClientEventType::Connected) == 1; }, "the hello");
		Client.Ping();
		const DisconnectInfo End = ExpectClose(Client, CloseCodes::InternalError, ErrorCodes::InternalError, "", "ClientSession whose ping failed the server");
		Require(End.bWasConnected, "the stream was open");
		ExpectReconnectWithBackoff(End);
		Client.Expect([&Client]() { return Client.Count(EClientEventType::Connected) == 2; }, "the reconnect");
		Client.Stop();
	}

	void LiveClose1001And4013ShuttingDown()
	{
		const std::string Url = Args["fault-server"];
		WaitForActiveStreams(Url, 0, "the previous streams to close");
		FLiveClient::FOptions OpenOptions;
		OpenOptions.Url = Url;
		OpenOptions.Client = QuickBackoff("close-1001");
		FLiveClient Open(OpenOptions);
		Open.Expect([&Open]() { return Open.Count(EClientEventType::Connected) == 1; }, "the hello");
		FLiveClient::FOptions LateOptions = OpenOptions;
		LateOptions.Client = QuickBackoff("close-4013-stopping");
		LateOptions.bHoldFirstHello = true;
		FLiveClient Late(LateOptions);
		Late.Expect([&Late]() { return Late.HelloHeld(); }, "the late client's upgrade");
		Require(::kill(static_cast<pid_t>(std::stol(Args["fault-server-pid"])), SIGTERM) == 0, "SIGTERM the fault server");
		const DisconnectInfo End = ExpectClose(Open, CloseCodes::GoingAway, ErrorCodes::ShuttingDown, ErrorCodes::ShuttingDown, "ClientSession open at shutdown");
		Require(End.bWasConnected, "the stream was open");
		ExpectReconnectWithBackoff(End);
		Late.ReleaseHello(); // the server is stopping now (it said so): this hello comes too late
		const DisconnectInfo LateEnd = ExpectClose(Late, CloseCodes::TryAgainLater, ErrorCodes::ShuttingDown, ErrorCodes::ShuttingDown,
			"ClientSession whose hello came after the shutdown began");
		ExpectReconnectWithBackoff(LateEnd);
		// The server is gone: both keep retrying with backoff.
		Open.Expect([&Open]() { return Open.SessionUnsafe().Stats().ConnectAttempts >= 3; }, "retries after 1001");
		Late.Expect([&Late]() { return Late.SessionUnsafe().Stats().ConnectAttempts >= 3; }, "retries after 4013");
		Open.Locked([&Open]() {
			for (const DisconnectInfo& Each : Open.Ends()) Require(Each.bWillReconnect, "every end after 1001 schedules a reconnect");
			return 0;
		});
	}
} // namespace

int main(int Argc, char** Argv)
{
	for (int I = 1; I + 1 < Argc; I += 2) Args[std::string(Argv[I]).substr(2)] = Argv[I + 1];
	if (Args.count("server") != 0)
	{
		// A peer that never says hello, connected first: the server closes it after its hello timeout
		// while the other checks run.
		std::unique_ptr<FRawPeer> Silent;
		std::string SilentError;
		try
		{
			Silent = std::make_unique<FRawPeer>(Args["server"], Args["token"]);
		}
		catch (const std::exception& Error)
		{
			SilentError = Error.what();
		}
		RunLive("live_colour_predictions", LiveColourPredictions);
		RunLive("live_wrong_token_reconnects_with_backoff", WrongTokenBackoff);
		RunLive("live_close_1002", LiveClose1002);
		RunLive("live_close_1007", LiveClose1007);
		RunLive("live_close_1008_hello_required", [&Silent, &SilentError]() {
			Require(Silent != nullptr, "the silent peer could not connect: " + SilentError);
			Silent->ReadUntilClose();
			ExpectPeerClose(*Silent, CloseCodes::PolicyViolation, ErrorCodes::HelloRequired, ErrorCodes::HelloRequired, "Beast peer that sent no hello");
		});
	}
	if (Args.count("limits-server") != 0)
	{
		RunLive("live_client_refuses_oversized_frame", LiveClientRefusesOversizedFrame);
		RunLive("live_close_4013_too_many_streams", LiveClose4013TooManyStreams);
		RunLive("live_close_1009", LiveClose1009);
	}
	if (Args.count("slow-server") != 0) RunLive("slow_server_client_drops_stale", SlowServerDrops);
	if (Args.count("fault-server") != 0)
	{
		// Stops reading right after its hello: misses the keepalive pong (Beast answers pings only while
		// reading) and is closed 1008 slow_consumer while the next check runs.
		std::unique_ptr<FRawPeer> NotReading;
		std::string NotReadingError;
		try
		{
			WaitForActiveStreams(Args["fault-server"], 0, "a fresh fault server");
			NotReading = std::make_unique<FRawPeer>(Args["fault-server"]);
			NotReading->Hello("close-1008-slow");
		}
		catch (const std::exception& Error)
		{
			NotReadingError = Error.what();
		}
		RunLive("live_close_1011", LiveClose1011);
		RunLive("live_close_1008_slow_consumer", [&NotReading, &NotReadingError]() {
			Require(NotReading != nullptr, "the peer could not start: " + NotReadingError);
			WaitForActiveStreams(Args["fault-server"], 0, "the server to drop the client that does not read");
			NotReading->ReadRawUntilClose();
			ExpectPeerClose(*NotReading, CloseCodes::PolicyViolation, ErrorCodes::SlowConsumer, "", "Beast peer that stopped reading");
		});
		RunLive("live_close_1001_and_4013_shutting_down", LiveClose1001And4013ShuttingDown);
	}
	return Summary();
}
