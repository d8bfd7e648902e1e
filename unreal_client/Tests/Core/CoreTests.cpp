// Tests of the plain C++ core, run outside Unreal (tests/test_unreal_client.py compiles this file with
// the core under Unreal's defaults, -fno-exceptions -fno-rtti, and runs it). Sections:
//   always                 units: JSON, slot, backoff, frame encoder, close-code policy, the client session
//   --vectors DIR          every golden vector in DIR (tests/vectors), dispatched on its "kind":
//                          decode, expected fields or error code, byte-exact re-encoding; gaze_crop_rect.json
// Output: "ok NAME (N ms)" or "FAIL NAME: why" per check; the exit code is the number of failures.
#include "Sha256.h"
#include "TestRunner.h"

#include "VrRecognitionCore/Backoff.h"
#include "VrRecognitionCore/ClientSession.h"
#include "VrRecognitionCore/CloseCodes.h"
#include "VrRecognitionCore/FrameCodec.h"
#include "VrRecognitionCore/Json.h"
#include "VrRecognitionCore/LatestFrameSlot.h"
#include "VrRecognitionCore/Messages.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <vector>

using namespace VrRecognition::Core;
using VrRecognitionTests::Run;

namespace
{
	std::string ReadFile(const std::filesystem::path& Path)
	{
		std::ifstream Stream(Path, std::ios::binary);
		return std::string(std::istreambuf_iterator<char>(Stream), std::istreambuf_iterator<char>());
	}

	JsonValue Parsed(const std::string& Text)
	{
		JsonValue Value;
		std::string Why;
		ParseJson(Text, Value, Why);
		return Value;
	}

	// --- units -------------------------------------------------------------------------------------------

	void JsonNumberFormat()
	{
		// Python repr(float) for each value.
		const std::vector<std::pair<double, const char*>> Cases = {
			{90.0, "90.0"}, {11.1, "11.1"}, {8.3, "8.3"}, {0.912345, "0.912345"}, {1e-05, "1e-05"}, {0.0001, "0.0001"},
			{1e16, "1e+16"}, {1234567890123456.0, "1234567890123456.0"}, {1.5e300, "1.5e+300"}, {-2.25, "-2.25"},
			{0.1 + 0.2, "0.30000000000000004"}, {0.0, "0.0"}, {-0.0, "-0.0"}, {123.456e-10, "1.23456e-08"}, {5e-324, "5e-324"},
			{1.7976931348623157e308, "1.7976931348623157e+308"}, {100.0, "100.0"}, {0.375, "0.375"},
		};
		for (const auto& Case : Cases) VR_EQUAL(std::string(Case.second), FormatDouble(Case.first), "FormatDouble");
		JsonValue Object = JsonValue::MakeObject();
		Object.Set("a", JsonValue::FromString("x\"y\n\x01\xc3\xa9"));
		JsonValue Array = JsonValue::MakeArray();
		Array.Push(JsonValue::FromInt(1)).Push(JsonValue::FromDouble(2.5)).Push(JsonValue()).Push(JsonValue::FromBool(true));
		Object.Set("b", Array);
		VR_EQUAL(std::string("{\"a\":\"x\\\"y\\n\\u0001\xc3\xa9\",\"b\":[1,2.5,null,true]}"), WriteJson(Object), "WriteJson");
		Object.Set("a", JsonValue::FromInt(-7));
		VR_EQUAL(std::string("{\"a\":-7,\"b\":[1,2.5,null,true]}"), WriteJson(Object), "a repeated key keeps its place");
	}

	void JsonReaderStrict()
	{
		const std::vector<std::string> Bad = {
			"{\"a\":NaN}", "{\"a\":1,}", "[01]", "{\"a\":Infinity}", "{'a':1}", "{\"a\":1} x", "\"\t\"", "{\"a\":\"\\ud800\"}",
			"{\"a\":\"\\udc00x\"}", "{\"a\":\"\\ud800\\u0041\"}", "\"\xff\"", "\"\xc0\xaf\"", "\"\xed\xa0\x80\"", "\"\xe2\x82\"", "[1.]",
			"[-]", "[.5]", "[1e]", "\"\\x\"", "", " ", "{\"a\" 1}", "[1 2]", "\xef\xbb\xbf{}",
		};
		for (const std::string& Text : Bad)
		{
			JsonValue Value;
			std::string Why;
			VR_CHECK(!ParseJson(Text, Value, Why), "accepted bad JSON " + Text);
		}
		const std::string Deep32 = std::string(32, '[') + std::string(32, ']');
		const std::string Deep33 = std::string(33, '[') + std::string(33, ']');
		JsonValue Value;
		std::string Why;
		VR_CHECK(ParseJson(Deep32, Value, Why), "32 levels are allowed: " + Why);
		VR_CHECK(!ParseJson(Deep33, Value, Why), "33 levels are refused");
		VR_CHECK(!ParseJson(std::string(100000, '['), Value, Why), "a very deep document is refused, not a stack overflow");
		VR_CHECK(ParseJson(" {\"i\": 2, \"f\": 2.0, \"e\": 1e2, \"s\": \"\\u00e9\\n\\ud83d\\ude00\", \"big\": 9223372036854775808, "
						   "\"neg\": -9223372036854775808, \"inf\": 1e400} ",
					 Value, Why),
			"good JSON: " + Why);
		VR_CHECK(Value.Find("i")->Kind() == EJsonKind::Integer, "2 is an integer");
		VR_CHECK(Value.Find("f")->Kind() == EJsonKind::Number, "2.0 is not an integer");
		VR_CHECK(Value.Find("e")->Kind() == EJsonKind::Number, "1e2 is not an integer");
		VR_EQUAL(std::string("\xc3\xa9\n\xf0\x9f\x98\x80"), Value.Find("s")->AsString(), "escapes and a surrogate pair");
		VR_CHECK(Value.Find("big")->Kind() == EJsonKind::Number, "2^63 does not fit a 64-bit integer");
		VR_CHECK(Value.Find("neg")->Kind() == EJsonKind::Integer && Value.Find("neg")->AsInt() == INT64_MIN, "-2^63 fits");
		VR_CHECK(std::isinf(Value.Find("inf")->AsDouble()), "1e400 overflows to infinity, as in Python");
		VR_CHECK(Parsed("{\"a\":[1,{\"b\":2}]}").DeepEquals(Parsed("{\"a\":[1.0,{\"b\":2.0}]}")), "numbers compare by value");
		VR_CHECK(!Parsed("{\"a\":1}").DeepEquals(Parsed("{\"a\":true}")), "1 is not true");
		VR_CHECK(IsValidUtf8("\xf4\x8f\xbf\xbf") && !IsValidUtf8("\xf4\x90\x80\x80"), "U+10FFFF is the last code point");
		VR_EQUAL(size_t(3), Utf8Length("a\xc3\xa9\xf0\x9f\x98\x80"), "code points");
	}

	void LatestFrameSlotReplaces()
	{
		LatestFrameSlot<std::string> Slot;
		VR_CHECK(!Slot.Offer("a").has_value(), "first offer replaces nothing");
		VR_EQUAL(std::string("a"), Slot.Offer("b").value_or(""), "second offer returns the stale frame");
		VR_EQUAL(std::string("b"), Slot.Offer("c").value_or(""), "third offer returns the stale frame");
		VR_EQUAL(int64_t(2), Slot.Replaced(), "replaced count");
		VR_EQUAL(std::string("c"), Slot.TryTake().value_or(""), "the newest frame is taken");
		VR_CHECK(!Slot.TryTake().has_value(), "the slot is empty after a take");
		VR_EQUAL(int64_t(1), Slot.Taken(), "taken count");
		VR_EQUAL(int64_t(3), Slot.Offered(), "offered count");
	}

	void BackoffGrows()
	{
		Backoff B;
		B.InitialSeconds = 0.1;
		B.MaxSeconds = 1.0;
		B.Jitter = 0.0;
		VR_CHECK(std::abs(B.DelaySeconds(1) - 0.1) < 1e-12, "first delay");
		VR_CHECK(std::abs(B.DelaySeconds(2) - 0.2) < 1e-12, "second delay");
		VR_CHECK(std::abs(B.DelaySeconds(4) - 0.8) < 1e-12, "fourth delay");
		VR_CHECK(std::abs(B.DelaySeconds(50) - 1.0) < 1e-12, "capped delay");
		VR_CHECK(B.DelaySeconds(0) == 0.0, "no delay before a failure");
		B.Jitter = 0.2;
		VR_CHECK(std::abs(B.DelaySeconds(2, 0.0) - 0.16) < 1e-12 && std::abs(B.DelaySeconds(2, 1.0) - 0.24) < 1e-12, "jitter bounds");
		double Lowest = 1.0, Highest = 0.0;
		for (int I = 0; I < 200; ++I)
		{
			const double S = B.DelaySeconds(2);
			VR_CHECK(S >= 0.16 - 1e-12 && S <= 0.24 + 1e-12, "jitter within 20 %: " + std::to_string(S));
			Lowest = std::min(Lowest, S);
			Highest = std::max(Highest, S);
		}
		VR_CHECK(Highest - Lowest > 0.02, "the jitter really varies");
	}

	void FrameEncodeRejects()
	{
		const uint8_t Payload[6] = {0, 0, 0, 0, 0, 0};
		auto Base = [&Payload]() {
			Frame F;
			F.Format = EImageFormat::Rgb8;
			F.Width = 2;
			F.Height = 1;
			F.Payload = Payload;
			F.PayloadLength = 6;
			return F;
		};
		std::vector<uint8_t> Out;
		Frame Wrong = Base();
		Wrong.Width = 3;
		VR_CHECK(!FrameCodec::Encode(Wrong, Out), "encoded a wrong raw size");
		Frame Gaze = Base();
		Gaze.Gaze = GazePoint{1.5f, 0.f};
		VR_CHECK(!FrameCodec::Encode(Gaze, Out), "encoded gaze outside [0, 1]");
		Frame NanGaze = Base();
		NanGaze.Gaze = GazePoint{std::nanf(""), 0.f};
		VR_CHECK(!FrameCodec::Encode(NanGaze, Out), "encoded a NaN gaze");
		Frame Late = Base();
		Late.CaptureTimeUs = uint64_t(1) << 53;
		VR_CHECK(!FrameCodec::Encode(Late, Out), "encoded capture time 2^53");
		Frame Pose = Base();
		Pose.Pose = HeadPose{{std::nanf(""), 0.f, 0.f}, {0.f, 0.f, 0.f, 1.f}};
		VR_CHECK(!FrameCodec::Encode(Pose, Out), "encoded a NaN pose");
		Frame Empty = Base();
		Empty.PayloadLength = 0;
		VR_CHECK(!FrameCodec::Encode(Empty, Out), "encoded an empty payload");
		Frame Big = Base();
		Big.Width = 70000;
		VR_CHECK(!FrameCodec::Encode(Big, Out), "encoded a width over 65535");
		Frame Up = Base();
		Up.RowsBottomUp = true;
		VR_CHECK(FrameCodec::Encode(Up, Out), "a good frame encodes");
		Frame Back;
		ProtocolError Error;
		VR_CHECK(FrameCodec::Decode(Out.data(), Out.size(), Back, Error) && Back.RowsBottomUp, "ROWS_BOTTOM_UP round trip");
		Limits L;
		VR_CHECK(L.CheckSize(64, 48).empty() && !L.CheckSize(8192, 1).empty() && !L.CheckSize(9000, 4000).empty(), "limits check sizes");
	}

	void ClosePolicy()
	{
		for (const int Code : CloseCodes::SentByServer())
		{
			VR_CHECK(!CloseCodes::Reasons(Code).empty(), "reasons for " + std::to_string(Code));
			VR_EQUAL(Code != CloseCodes::ProtocolError, CloseCodes::Reconnects(Code), "reconnect after " + CloseCodes::Describe(Code));
		}
		VR_CHECK(CloseCodes::Reconnects(std::nullopt), "reconnect after a connection without a close frame");
		VR_CHECK(CloseCodes::IsClientFault(1008, "hello_required") && !CloseCodes::IsClientFault(1008, "slow_consumer"), "1008 by reason");
		VR_CHECK(CloseCodes::IsClientFault(1009, "message_too_large") && !CloseCodes::IsClientFault(1011, "internal_error"), "faults");
		VR_EQUAL(4013, CloseCodes::TryAgainLater, "v1.1 try-again-later code");
		VR_EQUAL(std::string("4013 try_again_later"), CloseCodes::Describe(4013), "describe");
	}

	std::string ServerHelloText()
	{
		ServerHello Hello;
		Hello.ServerName = "vr-serve";
		Hello.Model.Name = "colour";
		Hello.Model.Classes = {"red", "green", "blue"};
		Hello.Model.InputWidth = Hello.Model.InputHeight = 32;
		Hello.Session.TopK = 2;
		Hello.Session.BudgetMs = 11.1;
		return WriteJson(Hello.ToJson());
	}

	std::string ResultText(uint32_t FrameId, int64_t CaptureUs, const char* Status)
	{
		Result R;
		R.FrameId = FrameId;
		R.CaptureTimeUs = CaptureUs;
		R.Status = Status;
		if (std::string(Status) == ResultStatus::Ok) R.TopK.push_back(Prediction{"red", 0, 0.9});
		return WriteJson(R.ToJson());
	}

	OutgoingFrame Jpeg(uint64_t Tag)
	{
		OutgoingFrame F;
		F.Payload = {0xff, 0xd8, 0xff, 0xd9};
		F.Width = 64;
		F.Height = 48;
		F.UserTag = Tag;
		F.Pose = HeadPose{{1.5f, 1.625f, -2.25f}, {0.f, 0.f, 0.f, 1.f}};
		return F;
	}

	void ClientSessionLogic()
	{
		ClientOptions Options;
		Options.MaxInFlight = 2;
		Options.TargetFps = 0;
		Options.ClientName = "unit";
		Options.Settings.TopK = 2;
		Options.ReconnectBackoff.InitialSeconds = 0.1;
		Options.ReconnectBackoff.Jitter = 0.0;
		ClientSession Session(Options);
		std::vector<ClientEvent> Events;
		std::vector<uint8_t> Message;
		VR_CHECK(!Session.Submit(Jpeg(1), 1000), "a frame before the stream opens is discarded");
		Session.OnConnecting();
		const std::string HelloText = Session.OnOpened();
		ClientMessage Hello;
		ProtocolError Error;
		VR_CHECK(DecodeClientMessage(HelloText, Hello, Error), "our hello passes the server's rules: " + Error.Code);
		VR_EQUAL(std::string("{\"type\":\"hello\",\"protocol\":1,\"client\":{\"name\":\"unit\",\"version\":\"0.1.0\"},\"top_k\":2}"), HelloText, "hello");
		VR_CHECK(Session.State() == EClientState::AwaitingHello, "awaiting the server hello");
		VR_CHECK(!Session.Submit(Jpeg(2), 1000), "frames wait for the server hello");
		Session.OnText(ServerHelloText(), 2000, Events);
		VR_CHECK(Events.size() == 1 && Events[0].Type == EClientEventType::Connected, "connected event");
		VR_EQUAL(size_t(3), Session.Model().Classes.size(), "classes from the hello");
		VR_CHECK(Session.IsConnected(), "connected");
		Events.clear();

		VR_CHECK(Session.Submit(Jpeg(10), 3000), "submit");
		VR_CHECK(Session.NextMessage(3000, Message, Events), "first frame goes out");
		Frame Sent;
		VR_CHECK(FrameCodec::Decode(Message.data(), Message.size(), Sent, Error), "sent bytes decode: " + Error.Code);
		VR_CHECK(Sent.FrameId == 0 && Sent.CaptureTimeUs == 3000 && Sent.Pose.has_value() && Sent.Pose->Position[2] == -2.25f, "header fields");
		Session.Submit(Jpeg(11), 3100);
		VR_CHECK(Session.NextMessage(3100, Message, Events), "second frame goes out");
		Session.Submit(Jpeg(12), 3200);
		VR_CHECK(!Session.NextMessage(3200, Message, Events), "the in-flight cap holds the third");
		VR_CHECK(Session.IsSaturated(), "saturated at the cap with a frame waiting");
		Session.Submit(Jpeg(13), 3300);
		VR_EQUAL(int64_t(1), Session.Stats().FramesReplaced, "the waiting frame was replaced, not queued");
		Session.OnText(ResultText(0, 3000, ResultStatus::Ok), 5000, Events);
		VR_CHECK(Events.size() == 1 && Events[0].Type == EClientEventType::Result, "result event");
		VR_EQUAL(uint64_t(10), Events[0].Frame.UserTag, "the user tag travels with the frame");
		VR_CHECK(std::abs(Events[0].Frame.RoundTripMs - 2.0) < 1e-9 && std::abs(Events[0].Frame.LatencyMs - 2.0) < 1e-9, "round trip and latency");
		VR_CHECK(Session.NextMessage(5000, Message, Events), "a reply opens the window");
		VR_CHECK(FrameCodec::Decode(Message.data(), Message.size(), Sent, Error) && Sent.CaptureTimeUs == 3300, "the newest frame was sent");
		Events.clear();

		const std::string PingText = Session.MakePing(6000);
		VR_CHECK(DecodeClientMessage(PingText, Hello, Error) && Hello.Type == EClientMessageType::Ping, "ping passes the server's rules");
		Session.OnText("{\"type\":\"pong\",\"id\":1,\"client_time_us\":6000,\"server_time_us\":5}", 9000, Events);
		VR_CHECK(Events.size() == 1 && Events[0].Type == EClientEventType::Pong && std::abs(Events[0].PongRoundTripMs - 3.0) < 1e-9, "pong round trip");
		Events.clear();
		Session.OnText("{\"type\":\"error\",\"code\":\"shutting_down\",\"message\":\"bye\",\"frame_id\":null,\"fatal\":true}", 9000, Events);
		VR_CHECK(Events.size() == 1 && Events[0].Type == EClientEventType::ServerError && Events[0].Error.Fatal, "fatal error event");
		Events.clear();
		const DisconnectInfo Ended = Session.OnClosed(CloseCodes::GoingAway, "shutting_down", "", Events);
		VR_CHECK(Ended.bWillReconnect && std::abs(Ended.ReconnectDelaySeconds - 0.1) < 1e-9, "reconnect after 1001, first backoff step");
		VR_CHECK(Ended.bWasConnected && Ended.FatalError && Ended.FatalError->Code == "shutting_down", "the end names the fatal error");
		VR_CHECK(Events.size() == 1 && Events[0].Type == EClientEventType::Disconnected && Events[0].Ended.CloseCode == 1001, "disconnect event");
		VR_EQUAL(int64_t(2), Session.Stats().FramesLost, "the two unanswered frames are lost");
		VR_CHECK(!Session.Submit(Jpeg(14), 9500), "offline again");

		// Failed attempts grow the delay; a client fault keeps growing it; a refused version stops retrying.
		Session.OnConnecting();
		VR_CHECK(std::abs(Session.OnClosed(std::nullopt, "", "HTTP 503", Events).ReconnectDelaySeconds - 0.2) < 1e-9, "second failure waits longer");
		Session.OnConnecting();
		VR_CHECK(std::abs(Session.OnClosed(CloseCodes::TryAgainLater, "too_many_streams", "", Events).ReconnectDelaySeconds - 0.4) < 1e-9, "4013 backs off");
		Session.OnConnecting();
		Session.OnOpened();
		Session.OnText(ServerHelloText(), 9550, Events);
		VR_CHECK(std::abs(Session.OnClosed(CloseCodes::MessageTooBig, "message_too_large", "", Events).ReconnectDelaySeconds - 0.8) < 1e-9,
			"a client fault does not restart the backoff");
		Session.OnConnecting();
		Session.OnOpened();
		Session.OnText(ServerHelloText(), 9560, Events);
		VR_CHECK(std::abs(Session.OnClosed(CloseCodes::InternalError, "internal_error", "", Events).ReconnectDelaySeconds - 0.1) < 1e-9,
			"a server fault after an open stream restarts it");
		Session.OnConnecting();
		Session.OnOpened();
		Session.OnText("{\"type\":\"error\",\"code\":\"unsupported_version\",\"message\":\"no\",\"frame_id\":null,\"fatal\":true}", 9600, Events);
		const DisconnectInfo Refused = Session.OnClosed(CloseCodes::ProtocolError, "unsupported_version", "", Events);
		VR_CHECK(!Refused.bWillReconnect && !Refused.bWasConnected, "no retry after 1002");
		VR_CHECK(Session.State() == EClientState::Stopped, "stopped for good");

		// Pacing: 10 fps lets one frame out per 100 ms.
		ClientOptions Paced;
		Paced.TargetFps = 10;
		Paced.MaxInFlight = 8;
		ClientSession Slow(Paced);
		Slow.OnConnecting();
		Slow.OnOpened();
		Slow.OnText(ServerHelloText(), 0, Events);
		Slow.Submit(Jpeg(1), 1'000'000);
		VR_CHECK(Slow.NextMessage(1'000'000, Message, Events), "first paced frame");
		Slow.Submit(Jpeg(2), 1'000'000);
		VR_CHECK(Slow.NextMessage(1'000'000, Message, Events), "a bucket of one: after an idle spell one frame may follow at once");
		Slow.Submit(Jpeg(3), 1'010'000);
		VR_CHECK(!Slow.NextMessage(1'050'000, Message, Events), "too early for the next");
		VR_EQUAL(int64_t(1'100'000), Slow.WakeAtUs(1'050'000), "wake at the next slot");
		VR_CHECK(Slow.NextMessage(1'100'000, Message, Events), "on time");
		Slow.Stop();
		const DisconnectInfo Stopped = Slow.OnClosed(CloseCodes::Normal, "", "", Events);
		VR_CHECK(!Stopped.bWillReconnect && Stopped.bStopped, "no reconnect after Stop");

		// A frame over the server's limits.max_message_bytes is refused here, not sent (1009).
		ClientSession Limited(Paced);
		Limited.OnConnecting();
		Limited.OnOpened();
		ServerHello Small;
		Small.Model.Classes = {"red"};
		Small.Model.InputWidth = Small.Model.InputHeight = 32;
		Small.Session.TopK = 1;
		Small.Session.BudgetMs = 10;
		Small.ServerLimits.MaxMessageBytes = 100;
		Limited.OnText(WriteJson(Small.ToJson()), 0, Events);
		Events.clear();
		OutgoingFrame Huge = Jpeg(3);
		Huge.Payload.resize(100);
		Limited.Submit(std::move(Huge), 5);
		VR_CHECK(!Limited.NextMessage(5, Message, Events) && Events.size() == 1 && Events[0].Error.Code == "message_too_large", "oversized frame refused");
		Limited.Submit(Jpeg(4), 6);
		VR_CHECK(Limited.NextMessage(6, Message, Events) && FrameCodec::Decode(Message.data(), Message.size(), Sent, Error) && Sent.FrameId == 0,
			"the next frame takes the unused id");

		ClientOptions Versions;
		Versions.Protocol = 1;
		Versions.MinProtocol = 2;
		ClientSession Picky(Versions);
		Picky.OnConnecting();
		VR_CHECK(DecodeClientMessage(Picky.OnOpened(), Hello, Error) && Hello.Hello.MinProtocol == 2, "min_protocol is sent");
	}

	void SettingsNullEncoding()
	{
		StreamSettings Settings;
		Settings.TopK = 3;
		Settings.ResetToDefault(ESetting::Smoothing);
		Settings.ResetToDefault(ESetting::GazeCrop);
		Configure Message;
		Message.Settings = Settings;
		VR_EQUAL(std::string("{\"type\":\"configure\",\"top_k\":3,\"smoothing\":null,\"gaze_crop\":null}"), Message.Encode(), "v1.1 null = default");
		ClientMessage Decoded;
		ProtocolError Error;
		VR_CHECK(DecodeClientMessage("{\"type\":\"hello\",\"protocol\":1,\"top_k\":100000}", Decoded, Error), "v1.1: any top_k >= 1");
		VR_CHECK(!DecodeClientMessage("{\"type\":\"hello\",\"protocol\":1,\"top_k\":2.0}", Decoded, Error) && Error.Code == "invalid_message", "2.0 is not an integer");
		VR_CHECK(DecodeClientMessage("{\"type\":\"hello\",\"protocol\":1,\"min_protocol\":2}", Decoded, Error), "min_protocol > protocol is well-formed");
		int Version = 0;
		VR_CHECK(!NegotiateVersion(Decoded.Hello, {1}, Version, Error) && Error.Code == "unsupported_version", "and negotiates nothing");
		VR_CHECK(DecodeClientMessage("{\"type\":\"hello\",\"protocol\":2,\"min_protocol\":1}", Decoded, Error), "a v2 client that speaks v1");
		VR_CHECK(NegotiateVersion(Decoded.Hello, {1}, Version, Error) && Version == 1, "gets v1");
		VR_CHECK(!DecodeClientMessage(std::string(70000, ' '), Decoded, Error) && Error.Code == "message_too_large", "size first");
	}

	// --- golden vectors ----------------------------------------------------------------------------------

	void FrameVector(const JsonValue& Spec, const std::string& Data)
	{
		const auto* Bytes = reinterpret_cast<const uint8_t*>(Data.data());
		Frame Decoded;
		ProtocolError Error;
		if (const JsonValue* Expected = Spec.Find("error"))
		{
			VR_CHECK(!FrameCodec::Decode(Bytes, Data.size(), Decoded, Error), "decoded without error, expected " + Expected->AsString());
			VR_EQUAL(Expected->AsString(), Error.Code, "error code");
			const JsonValue* FrameId = Spec.Find("frame_id");
			const bool bExpectId = FrameId != nullptr && !FrameId->IsNull();
			VR_EQUAL(bExpectId, Error.FrameId.has_value(), "error frame_id presence");
			if (bExpectId) VR_EQUAL(FrameId->AsInt(), static_cast<int64_t>(*Error.FrameId), "error frame_id");
			return;
		}
		const JsonValue& Expect = *Spec.Find("expect");
		VR_CHECK(FrameCodec::Decode(Bytes, Data.size(), Decoded, Error), "decode failed: " + Error.Code + " " + Error.Message);
		VR_EQUAL(Expect.Find("frame_id")->AsInt(), static_cast<int64_t>(Decoded.FrameId), "frame_id");
		VR_EQUAL(Expect.Find("capture_time_us")->AsInt(), static_cast<int64_t>(Decoded.CaptureTimeUs), "capture_time_us");
		VR_EQUAL(Expect.Find("image_format")->AsString(), std::string(FrameCodec::WireName(Decoded.Format)), "image_format");
		VR_EQUAL(Expect.Find("width")->AsInt(), static_cast<int64_t>(Decoded.Width), "width");
		VR_EQUAL(Expect.Find("height")->AsInt(), static_cast<int64_t>(Decoded.Height), "height");
		VR_EQUAL(Expect.Find("header_len")->AsInt(), static_cast<int64_t>(Decoded.HeaderLength), "header_len");
		VR_EQUAL(Expect.Find("payload_len")->AsInt(), static_cast<int64_t>(Decoded.PayloadLength), "payload_len");
		VR_EQUAL(Expect.Find("rows_bottom_up")->AsBool(), Decoded.RowsBottomUp, "rows_bottom_up");
		VR_EQUAL(Expect.Find("payload_sha256")->AsString(), VrRecognitionTests::Sha256Hex(Decoded.Payload, Decoded.PayloadLength), "payload_sha256");
		const JsonValue& Pose = *Expect.Find("pose");
		VR_EQUAL(Pose.IsNull(), !Decoded.Pose.has_value(), "pose presence");
		if (Decoded.Pose)
		{
			for (int I = 0; I < 3; ++I)
				VR_EQUAL(static_cast<float>(Pose.Find("position")->Items()[I].AsDouble()), Decoded.Pose->Position[I], "pose.position[" + std::to_string(I) + "]");
			for (int I = 0; I < 4; ++I)
				VR_EQUAL(static_cast<float>(Pose.Find("rotation")->Items()[I].AsDouble()), Decoded.Pose->Rotation[I], "pose.rotation[" + std::to_string(I) + "]");
		}
		const JsonValue& Gaze = *Expect.Find("gaze");
		VR_EQUAL(Gaze.IsNull(), !Decoded.Gaze.has_value(), "gaze presence");
		if (Decoded.Gaze)
		{
			VR_EQUAL(static_cast<float>(Gaze.Items()[0].AsDouble()), Decoded.Gaze->U, "gaze u");
			VR_EQUAL(static_cast<float>(Gaze.Items()[1].AsDouble()), Decoded.Gaze->V, "gaze v");
		}
		const JsonValue* Back = Spec.Find("encodes_back");
		if (Back != nullptr && Back->AsBool())
		{
			std::vector<uint8_t> Encoded;
			std::string Why;
			VR_CHECK(FrameCodec::Encode(Decoded, Encoded, &Why), "re-encode refused: " + Why);
			VR_CHECK(Encoded.size() == Data.size() && std::memcmp(Encoded.data(), Data.data(), Data.size()) == 0, "re-encoded bytes differ");
		}
	}

	void TextVector(const std::string& Kind, const JsonValue& Spec, const std::string& Data)
	{
		ProtocolError Error;
		ClientMessage Client;
		ServerMessage Server;
		const bool bDecoded = Kind == "client" ? DecodeClientMessage(Data, Client, Error) : DecodeServerMessage(Data, Server, Error);
		if (const JsonValue* Expected = Spec.Find("error"))
		{
			VR_CHECK(!bDecoded, "decoded without error, expected " + Expected->AsString());
			VR_EQUAL(Expected->AsString(), Error.Code, "error code");
			return;
		}
		VR_CHECK(bDecoded, "decode failed: " + Error.Code + " " + Error.Message);
		const JsonValue Json = Kind == "client" ? Client.ToJson() : Server.ToJson();
		VR_CHECK(Spec.Find("expect")->DeepEquals(Json), "decoded " + WriteJson(Json) + " != expected " + WriteJson(*Spec.Find("expect")));
		const JsonValue* Back = Spec.Find("encodes_back");
		if (Back != nullptr && Back->AsBool()) VR_EQUAL(Data, WriteJson(Json), "re-encoded text");
		if (const JsonValue* Negotiation = Spec.Find("negotiation"))
		{
			VR_CHECK(Kind == "client" && Client.Type == EClientMessageType::Hello, "negotiation is about a client hello");
			int Version = 0;
			VR_CHECK(!NegotiateVersion(Client.Hello, {1}, Version, Error), "negotiated version " + std::to_string(Version));
			VR_EQUAL(Negotiation->AsString(), Error.Code, "negotiation error");
		}
	}

	void GazeCropCases(const JsonValue& Cases)
	{
		VR_CHECK(Cases.IsArray() && Cases.Size() >= 10, "at least 10 gaze crop cases");
		for (const JsonValue& Case : Cases.Items())
		{
			const int Width = static_cast<int>(Case.Find("width")->AsInt());
			const int Height = static_cast<int>(Case.Find("height")->AsInt());
			const CropRect Rect = GazeCropRect(Width, Height, Case.Find("u")->AsDouble(), Case.Find("v")->AsDouble(), Case.Find("scale")->AsDouble());
			const std::vector<JsonValue>& Want = Case.Find("rect")->Items();
			const std::string What = WriteJson(Case);
			VR_EQUAL(Want[0].AsInt(), static_cast<int64_t>(Rect.Left), "left of " + What);
			VR_EQUAL(Want[1].AsInt(), static_cast<int64_t>(Rect.Top), "top of " + What);
			VR_EQUAL(Want[2].AsInt(), static_cast<int64_t>(Rect.Side), "side of " + What);
			VR_CHECK(Rect.Left >= 0 && Rect.Left + Rect.Side <= Width && Rect.Top >= 0 && Rect.Top + Rect.Side <= Height, "inside the frame: " + What);
		}
	}

	void GoldenVectors(const std::filesystem::path& Dir)
	{
		std::vector<std::filesystem::path> Specs;
		for (const auto& Entry : std::filesystem::directory_iterator(Dir))
			if (Entry.path().extension() == ".json") Specs.push_back(Entry.path());
		std::sort(Specs.begin(), Specs.end());
		std::map<std::string, int> Counts;
		for (const auto& Path : Specs)
		{
			const std::string Name = Path.stem().string();
			Run("vector_" + Name, [&Path, &Counts]() {
				JsonValue Spec;
				std::string Why;
				VR_CHECK(ParseJson(ReadFile(Path), Spec, Why), "spec is not JSON: " + Why);
				if (Spec.IsArray()) // a list of cases, not a message vector: gaze_crop_rect.json
				{
					VR_CHECK(Path.stem() == "gaze_crop_rect", "unknown list-shaped vector file");
					++Counts["gaze_crop"];
					GazeCropCases(Spec);
					return;
				}
				const JsonValue* KindValue = Spec.Find("kind");
				VR_CHECK(KindValue != nullptr && KindValue->IsString(), "vector without a kind");
				const std::string Kind = KindValue->AsString();
				VR_CHECK(Kind == "frame" || Kind == "client" || Kind == "server", "unknown vector kind " + Kind);
				++Counts[Kind];
				std::filesystem::path DataPath = Path;
				DataPath.replace_extension(Kind == "frame" ? ".bin" : ".txt");
				VR_CHECK(std::filesystem::exists(DataPath), "missing " + DataPath.filename().string());
				const std::string Data = ReadFile(DataPath);
				if (Kind == "frame") FrameVector(Spec, Data);
				else TextVector(Kind, Spec, Data);
			});
		}
		Run("vector_set_complete", [&Counts]() {
			VR_CHECK(Counts["frame"] >= 15, "at least 15 frame vectors, found " + std::to_string(Counts["frame"]));
			VR_CHECK(Counts["client"] >= 10, "at least 10 client vectors, found " + std::to_string(Counts["client"]));
			VR_CHECK(Counts["server"] >= 8, "at least 8 server vectors, found " + std::to_string(Counts["server"]));
		});
		std::printf("vectors: %d frame, %d client, %d server, %d gaze-crop files\n", Counts["frame"], Counts["client"], Counts["server"], Counts["gaze_crop"]);
	}
} // namespace

/** --decode-cases FILE: each line "f HEX" (a binary message) or "c HEX" (a client text message); prints
 * "decoded: ok" or "decoded: CODE [FRAME_ID|None]" per line, for the test to compare with the server's
 * codec on the same bytes. */
void DecodeCases(const std::string& Path)
{
	std::ifstream Stream(Path);
	std::string Kind;
	std::string Hex;
	while (Stream >> Kind >> Hex)
	{
		std::string Bytes;
		for (size_t I = 0; Hex != "-" && I + 1 < Hex.size(); I += 2) Bytes += static_cast<char>(std::stoi(Hex.substr(I, 2), nullptr, 16));
		ProtocolError Error;
		if (Kind == "f")
		{
			Frame Decoded;
			if (FrameCodec::Decode(reinterpret_cast<const uint8_t*>(Bytes.data()), Bytes.size(), Decoded, Error)) std::printf("decoded: ok\n");
			else std::printf("decoded: %s %s\n", Error.Code.c_str(), Error.FrameId ? std::to_string(*Error.FrameId).c_str() : "None");
		}
		else
		{
			ClientMessage Decoded;
			if (DecodeClientMessage(Bytes, Decoded, Error)) std::printf("decoded: ok\n");
			else std::printf("decoded: %s\n", Error.Code.c_str());
		}
	}
}

int main(int Argc, char** Argv)
{
	std::map<std::string, std::string> Args;
	for (int I = 1; I + 1 < Argc; I += 2) Args[std::string(Argv[I]).substr(2)] = Argv[I + 1];
	if (Args.count("decode-cases") != 0)
	{
		DecodeCases(Args["decode-cases"]);
		return 0;
	}
	Run("json_number_format", JsonNumberFormat);
	Run("json_reader_strict", JsonReaderStrict);
	Run("latest_frame_slot", LatestFrameSlotReplaces);
	Run("backoff_grows_and_caps", BackoffGrows);
	Run("frame_encode_rejects_bad_fields", FrameEncodeRejects);
	Run("close_code_policy", ClosePolicy);
	Run("client_session_logic", ClientSessionLogic);
	Run("settings_v1_1", SettingsNullEncoding);
	if (Args.count("vectors") != 0) GoldenVectors(Args["vectors"]);
	return VrRecognitionTests::Summary();
}
