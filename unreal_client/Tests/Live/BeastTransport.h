// Test-only transports for the live checks (tests/test_unreal_client.py), on Boost.Beast (Debian's
// header-only libboost-dev). The Unreal plugin itself talks through Unreal's WebSockets module; here the
// same ClientSession (the plugin's protocol logic) is driven by a Beast socket against a real vr-serve:
//
// - FLiveClient: ClientSession on an asio thread, reconnecting as the session decides (backoff), with
//   a switch that holds the first hello back (a stream whose upgrade passed but whose hello is late);
// - FRawPeer: a bare WebSocket that sends exactly what it is told and reads until the server closes
//   (the misbehaving peers of the close checks: invalid UTF-8, an oversized message, no hello, not
//   reading);
// - HttpGet: /metrics.
// Every wait has a deadline and waits for an event, never a fixed time.
#pragma once

#include "VrRecognitionCore/ClientSession.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace VrRecognitionTests
{
	namespace asio = boost::asio;
	namespace beast = boost::beast;
	namespace http = beast::http;
	namespace websocket = beast::websocket;
	using tcp = asio::ip::tcp;
	using namespace VrRecognition::Core;

	// Completion handlers are type-erased: each Beast operation is then instantiated once, not once per
	// call site, which keeps this test program's compile time down.
	using FHandler = std::function<void(beast::error_code)>;
	using FIoHandler = std::function<void(beast::error_code, std::size_t)>;
	using FResolveHandler = std::function<void(beast::error_code, tcp::resolver::results_type)>;
	using FConnectHandler = std::function<void(beast::error_code, tcp::endpoint)>;

	inline int64_t NowUs()
	{
		return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
	}

	struct FUrl
	{
		std::string Host;
		std::string Port;

		static FUrl Parse(const std::string& Url)
		{
			const size_t Scheme = Url.find("://");
			if (Scheme == std::string::npos) throw std::runtime_error("not a URL: " + Url);
			std::string Rest = Url.substr(Scheme + 3);
			const size_t Slash = Rest.find('/');
			if (Slash != std::string::npos) Rest = Rest.substr(0, Slash);
			const size_t Colon = Rest.rfind(':');
			if (Colon == std::string::npos) throw std::runtime_error("URL without a port: " + Url);
			return FUrl{Rest.substr(0, Colon), Rest.substr(Colon + 1)};
		}
	};

	/** "HTTP 503 too_many_streams" from a refused upgrade's JSON body, or the error's own text. */
	inline std::string DescribeRefusal(const websocket::response_type& Response, const beast::error_code& Error)
	{
		if (Response.result_int() == 0 || Response.result_int() == 101) return Error.message();
		std::string Text = "HTTP " + std::to_string(Response.result_int());
		JsonValue Body;
		std::string Why;
		if (ParseJson(Response.body(), Body, Why) && Body.Find("code") != nullptr && Body.Find("code")->IsString())
			Text += " " + Body.Find("code")->AsString();
		return Text;
	}

	/** ClientSession driven by a Beast WebSocket on its own asio thread. */
	class FLiveClient
	{
	public:
		struct FOptions
		{
			std::string Url;
			std::string Token;
			ClientOptions Client;
			/** Hold the first connection's hello until ReleaseHello(). */
			bool bHoldFirstHello = false;
		};

		explicit FLiveClient(FOptions InOptions)
			: Options(std::move(InOptions)), Address(FUrl::Parse(Options.Url)), Work(asio::make_work_guard(Io)), Resolver(Io),
			  ReconnectTimer(Io), SendTimer(Io), Session(Options.Client)
		{
			Thread = std::thread([this]() { Io.run(); });
			Post([this]() { Connect(); });
		}

		~FLiveClient() { Shutdown(); }

		FLiveClient(const FLiveClient&) = delete;
		FLiveClient& operator=(const FLiveClient&) = delete;

		/** Waits (at most Seconds) until Ready() says so; Ready runs under the client's lock. */
		bool WaitUntil(const std::function<bool()>& Ready, double Seconds)
		{
			std::unique_lock<std::mutex> Guard(Lock);
			return Changed.wait_for(Guard, std::chrono::duration<double>(Seconds), Ready);
		}

		void Expect(const std::function<bool()>& Ready, const std::string& What, double Seconds = 30.0)
		{
			if (!WaitUntil(Ready, Seconds))
			{
				std::lock_guard<std::mutex> Guard(Lock);
				throw std::runtime_error("timed out waiting for " + What + " (" + Summary() + ")");
			}
		}

		// --- under the lock (inside WaitUntil/Expect predicates, or through Locked) ----------------------
		const std::vector<ClientEvent>& Events() const { return Log; }
		ClientSession& SessionUnsafe() { return Session; }
		bool HelloHeld() const { return bHelloHeld; }
		int Count(EClientEventType Type) const
		{
			int N = 0;
			for (const ClientEvent& E : Log) N += E.Type == Type ? 1 : 0;
			return N;
		}
		std::vector<DisconnectInfo> Ends() const
		{
			std::vector<DisconnectInfo> Out;
			for (const ClientEvent& E : Log)
				if (E.Type == EClientEventType::Disconnected) Out.push_back(E.Ended);
			return Out;
		}
		std::string Summary() const
		{
			std::string Text = "ends:";
			for (const DisconnectInfo& End : Ends()) Text += " [" + End.Description + "]";
			const ClientStats S = Session.Stats();
			return Text + "; attempts " + std::to_string(S.ConnectAttempts) + ", connections " + std::to_string(S.Connections);
		}

		/** Runs F under the lock (a consistent view from the test thread). */
		template <typename F>
		auto Locked(F&& Fn)
		{
			std::lock_guard<std::mutex> Guard(Lock);
			return Fn();
		}

		// --- any thread -------------------------------------------------------------------------------
		bool Submit(OutgoingFrame Frame)
		{
			bool bAccepted = false;
			{
				std::lock_guard<std::mutex> Guard(Lock);
				bAccepted = Session.Submit(std::move(Frame), NowUs());
			}
			Post([this]() { PumpSend(); });
			return bAccepted;
		}

		void Ping()
		{
			Post([this]() { QueueText(Session.MakePing(NowUs())); });
		}

		void Configure(const StreamSettings& Settings)
		{
			Post([this, Settings]() { QueueText(Session.MakeConfigure(Settings)); });
		}

		void ReleaseHello()
		{
			Post([this]() {
				Options.bHoldFirstHello = false;
				if (bHelloHeld && bOpen) QueueText(PendingHello);
				bHelloHeld = false;
			});
		}

		/** Close 1000 and stop reconnecting; waits for the close to complete. */
		void Stop(double Seconds = 10.0)
		{
			Post([this]() {
				Session.Stop();
				ReconnectTimer.cancel();
				bStopRequested = true;
				if (bOpen) CloseWhenIdle();
				else Changed.notify_all();
			});
			WaitUntil([this]() { return bStopRequested && !bOpen; }, Seconds);
		}

	private:
		struct FOut
		{
			bool bText = true;
			std::string Data;
		};

		void Post(std::function<void()> Fn)
		{
			asio::post(Io, [this, Fn = std::move(Fn)]() {
				std::lock_guard<std::mutex> Guard(Lock);
				Fn();
				Changed.notify_all();
			});
		}

		/** A handler that runs under the lock, and only while its connection is the current one. */
		template <typename HandlerType, typename Fn>
		HandlerType Guarded(int Generation, Fn&& Body)
		{
			return [this, Generation, Body = std::forward<Fn>(Body)](auto... Args) mutable {
				std::lock_guard<std::mutex> Guard(Lock);
				if (Generation == CurrentGeneration) Body(Args...);
				Changed.notify_all();
			};
		}

		void Connect()
		{
			if (bStopRequested) return;
			Session.OnConnecting();
			++CurrentGeneration;
			if (Ws) Retired.push_back(std::move(Ws)); // kept alive: a stale handler may still reference it
			Ws = std::make_unique<websocket::stream<beast::tcp_stream>>(Io);
			Response = {};
			const int Generation = CurrentGeneration;
			Resolver.async_resolve(Address.Host, Address.Port, Guarded<FResolveHandler>(Generation, [this, Generation](beast::error_code Error, tcp::resolver::results_type Results) {
				if (Error) return Ended(std::nullopt, "", "resolve: " + Error.message());
				beast::get_lowest_layer(*Ws).expires_after(std::chrono::seconds(10));
				beast::get_lowest_layer(*Ws).async_connect(Results, Guarded<FConnectHandler>(Generation, [this, Generation](beast::error_code ConnectError, const tcp::endpoint&) {
					if (ConnectError) return Ended(std::nullopt, "", "connect: " + ConnectError.message());
					beast::get_lowest_layer(*Ws).expires_never();
					websocket::stream_base::timeout Timeouts = websocket::stream_base::timeout::suggested(beast::role_type::client);
					Timeouts.handshake_timeout = std::chrono::seconds(10);
					Ws->set_option(Timeouts);
					const std::string Token = Options.Token;
					Ws->set_option(websocket::stream_base::decorator([Token](websocket::request_type& Request) {
						if (!Token.empty()) Request.set(http::field::authorization, "Bearer " + Token);
						Request.set(http::field::user_agent, "vr-recognition-unreal-core-tests");
					}));
					Ws->async_handshake(Response, Address.Host + ":" + Address.Port, "/", Guarded<FHandler>(Generation, [this](beast::error_code HandshakeError) {
						if (HandshakeError) return Ended(std::nullopt, "", DescribeRefusal(Response, HandshakeError));
						Opened();
					}));
				}));
			}));
		}

		void Opened()
		{
			bOpen = true;
			if (bStopRequested)
			{
				StartRead();
				CloseWhenIdle();
				return;
			}
			const std::string Hello = Session.OnOpened();
			if (Options.bHoldFirstHello)
			{
				PendingHello = Hello;
				bHelloHeld = true;
			}
			else
			{
				QueueText(Hello);
			}
			StartRead();
		}

		void StartRead()
		{
			const int Generation = CurrentGeneration;
			Ws->async_read(ReadBuffer, Guarded<FIoHandler>(Generation, [this](beast::error_code Error, size_t) {
				if (Error == websocket::error::closed)
				{
					const websocket::close_reason& Reason = Ws->reason();
					return Ended(static_cast<int>(Reason.code), std::string(Reason.reason.c_str()), "");
				}
				if (Error) return Ended(std::nullopt, "", "read: " + Error.message());
				if (Ws->got_text())
				{
					const std::string Text = beast::buffers_to_string(ReadBuffer.data());
					Session.OnText(Text, NowUs(), Log);
				}
				ReadBuffer.consume(ReadBuffer.size());
				PumpSend();
				StartRead();
			}));
		}

		void QueueText(std::string Text)
		{
			Outbox.push_back(FOut{true, std::move(Text)});
			DoWrite();
		}

		void DoWrite()
		{
			if (bWriting || Outbox.empty() || !bOpen) return;
			bWriting = true;
			Ws->text(Outbox.front().bText);
			const int Generation = CurrentGeneration;
			Ws->async_write(asio::buffer(Outbox.front().Data), Guarded<FIoHandler>(Generation, [this](beast::error_code Error, size_t) {
				bWriting = false;
				if (!Outbox.empty()) Outbox.pop_front();
				if (Error) return; // the read side reports how the connection ended
				if (bCloseWhenIdle) return CloseWhenIdle();
				DoWrite();
				PumpSend();
			}));
		}

		void CloseWhenIdle()
		{
			bCloseWhenIdle = true;
			if (bWriting || !bOpen) return;
			bCloseWhenIdle = false;
			Outbox.clear();
			Ws->async_close(websocket::close_code::normal, Guarded<FHandler>(CurrentGeneration, [](beast::error_code) {}));
		}

		/** Takes the session's next frame when the socket is idle (latest frame wins: nothing queues here). */
		void PumpSend()
		{
			if (!bOpen || bWriting || !Outbox.empty() || bCloseWhenIdle) return;
			std::vector<uint8_t> Message;
			const int64_t Now = NowUs();
			if (Session.NextMessage(Now, Message, Log))
			{
				Outbox.push_back(FOut{false, std::string(Message.begin(), Message.end())});
				DoWrite();
				return;
			}
			const int64_t Wake = Session.WakeAtUs(Now);
			if (Wake > Now)
			{
				SendTimer.expires_after(std::chrono::microseconds(Wake - Now));
				SendTimer.async_wait(Guarded<FHandler>(CurrentGeneration, [this](beast::error_code Error) {
					if (!Error) PumpSend();
				}));
			}
		}

		void Ended(std::optional<int> Code, const std::string& Reason, const std::string& Why)
		{
			bOpen = false;
			bWriting = false;
			bHelloHeld = false;
			Outbox.clear();
			SendTimer.cancel();
			const DisconnectInfo Info = Session.OnClosed(Code, Reason, Why, Log);
			++CurrentGeneration; // late handlers of this connection are ignored from now on
			if (!Info.bWillReconnect || bStopRequested) return;
			ReconnectTimer.expires_after(std::chrono::microseconds(static_cast<int64_t>(Info.ReconnectDelaySeconds * 1e6)));
			ReconnectTimer.async_wait(FHandler([this](beast::error_code Error) {
				std::lock_guard<std::mutex> Guard(Lock);
				if (!Error) Connect();
				Changed.notify_all();
			}));
		}

		void Shutdown()
		{
			if (!Thread.joinable()) return;
			Stop(5.0);
			Work.reset();
			Io.stop();
			Thread.join();
		}

		FOptions Options;
		FUrl Address;
		asio::io_context Io;
		asio::executor_work_guard<asio::io_context::executor_type> Work;
		tcp::resolver Resolver;
		asio::steady_timer ReconnectTimer;
		asio::steady_timer SendTimer;
		std::unique_ptr<websocket::stream<beast::tcp_stream>> Ws;
		std::vector<std::unique_ptr<websocket::stream<beast::tcp_stream>>> Retired;
		websocket::response_type Response;
		beast::flat_buffer ReadBuffer;
		std::deque<FOut> Outbox;
		std::thread Thread;
		mutable std::mutex Lock;
		std::condition_variable Changed;
		ClientSession Session;
		std::vector<ClientEvent> Log;
		std::string PendingHello;
		int CurrentGeneration = 0;
		bool bOpen = false;
		bool bWriting = false;
		bool bHelloHeld = false;
		bool bStopRequested = false;
		bool bCloseWhenIdle = false;
	};

	/** A bare WebSocket that sends what it is told and reads until the server closes. Each operation runs
	 * on the peer's own io_context with a deadline. */
	class FRawPeer
	{
	public:
		std::vector<ServerMessage> Received;
		std::optional<int> CloseCode;
		std::string CloseReason;

		explicit FRawPeer(const std::string& Url, const std::string& Token = "") : Ws(Io)
		{
			const FUrl Address = FUrl::Parse(Url);
			tcp::resolver Resolver(Io);
			const auto Endpoints = Resolver.resolve(Address.Host, Address.Port);
			Await([&](FIoHandler Done) { beast::get_lowest_layer(Ws).async_connect(Endpoints, FConnectHandler([Done](beast::error_code E, tcp::endpoint) { Done(E, 0); })); }, "the TCP connect");
			Ws.set_option(websocket::stream_base::decorator([Token](websocket::request_type& Request) {
				if (!Token.empty()) Request.set(http::field::authorization, "Bearer " + Token);
			}));
			websocket::response_type Response;
			const beast::error_code Error = Await(
				[&](FIoHandler Done) { Ws.async_handshake(Response, Address.Host + ":" + Address.Port, "/", Plain(Done)); }, "the upgrade", false);
			if (Error) throw std::runtime_error("upgrade refused: " + DescribeRefusal(Response, Error));
		}

		void SendText(const std::string& Utf8)
		{
			Ws.text(true);
			Await([&](FIoHandler Done) { Ws.async_write(asio::buffer(Utf8), Done); }, "a text send");
		}

		void SendBinary(const std::vector<uint8_t>& Data)
		{
			Ws.binary(true);
			Await([&](FIoHandler Done) { Ws.async_write(asio::buffer(Data), Done); }, "a binary send");
		}

		/** The next server message (decoded), or false when the server closed (CloseCode, CloseReason). */
		bool Next(ServerMessage* Out = nullptr, double Seconds = 30.0)
		{
			beast::flat_buffer Buffer;
			const beast::error_code Error = Await([&](FIoHandler Done) { Ws.async_read(Buffer, Done); }, "a server message", false, Seconds);
			if (Error == websocket::error::closed)
			{
				CloseCode = static_cast<int>(Ws.reason().code);
				CloseReason = std::string(Ws.reason().reason.c_str());
				return false;
			}
			if (Error) throw std::runtime_error("read failed: " + Error.message());
			ServerMessage Message;
			ProtocolError Problem;
			if (!DecodeServerMessage(beast::buffers_to_string(Buffer.data()), Message, Problem))
				throw std::runtime_error("unreadable server message: " + Problem.Code + " " + Problem.Message);
			Received.push_back(Message);
			if (Out != nullptr) *Out = Message;
			return true;
		}

		const ServerHello& Hello(const std::string& Name)
		{
			ClientHello Message;
			Message.ClientName = Name;
			Message.ClientVersion = ClientVersionString;
			SendText(Message.Encode());
			ServerMessage Reply;
			if (!Next(&Reply)) throw std::runtime_error("closed before the server hello: " + std::to_string(CloseCode.value_or(0)) + " " + CloseReason);
			if (Reply.Type != EServerMessageType::Hello) throw std::runtime_error("expected the server's hello");
			return Received.back().Hello;
		}

		/** Reads until the server's close (the messages before it land in Received). */
		void ReadUntilClose(double Seconds = 30.0)
		{
			const auto Deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(Seconds);
			while (Next(nullptr, std::chrono::duration<double>(Deadline - std::chrono::steady_clock::now()).count()))
			{
			}
		}

		/** For a peer that stopped reading and was dropped: the server's queued frames (pings, then its
		 * close) are read straight off the TCP socket up to its end and parsed here, because a WebSocket
		 * read would answer each ping first, on a connection the server has already closed. */
		void ReadRawUntilClose(double Seconds = 30.0)
		{
			std::string Bytes;
			char Chunk[4096];
			while (true)
			{
				size_t Count = 0;
				const beast::error_code Error = Await(
					[&](FIoHandler Done) {
						beast::get_lowest_layer(Ws).socket().async_read_some(asio::buffer(Chunk), FIoHandler([&Count, Done](beast::error_code E, std::size_t N) {
							Count = N;
							Done(E, N);
						}));
					},
					"the dropped connection's bytes", false, Seconds);
				Bytes.append(Chunk, Count);
				if (Error) break; // end of stream (or reset): everything the server sent is in Bytes
			}
			size_t At = 0;
			while (At + 2 <= Bytes.size())
			{
				const auto Byte = [&Bytes](size_t I) { return static_cast<uint8_t>(Bytes[I]); };
				const int Opcode = Byte(At) & 0x0F;
				uint64_t Length = Byte(At + 1) & 0x7F;
				size_t Header = 2;
				if (Length == 126 && At + 4 <= Bytes.size())
				{
					Length = (uint64_t(Byte(At + 2)) << 8) | Byte(At + 3);
					Header = 4;
				}
				else if (Length == 127 && At + 10 <= Bytes.size())
				{
					Length = 0;
					for (int I = 0; I < 8; ++I) Length = (Length << 8) | Byte(At + 2 + I);
					Header = 10;
				}
				if (At + Header + Length > Bytes.size()) break;
				const std::string Payload = Bytes.substr(At + Header, static_cast<size_t>(Length));
				if (Opcode == 0x1)
				{
					ServerMessage Message;
					ProtocolError Problem;
					if (DecodeServerMessage(Payload, Message, Problem)) Received.push_back(Message);
				}
				else if (Opcode == 0x8 && Payload.size() >= 2)
				{
					CloseCode = (static_cast<uint8_t>(Payload[0]) << 8) | static_cast<uint8_t>(Payload[1]);
					CloseReason = Payload.substr(2);
					return;
				}
				At += Header + static_cast<size_t>(Length);
			}
			throw std::runtime_error("no close frame among the " + std::to_string(Bytes.size()) + " bytes the server sent");
		}

		void Close()
		{
			Await([&](FIoHandler Done) { Ws.async_close(websocket::close_code::normal, Plain(Done)); }, "our close", false);
			beast::error_code Ignored;
			while (!Ignored)
			{
				beast::flat_buffer Buffer;
				Ignored = Await([&](FIoHandler Done) { Ws.async_read(Buffer, Done); }, "the close reply", false, 10.0);
			}
		}

	private:
		/** Starts an async operation and runs this peer's io_context until it completes or the deadline
		 * passes (then the socket is closed and the test fails). */
		beast::error_code Await(const std::function<void(FIoHandler)>& Begin, const std::string& What, bool bThrow = true, double Seconds = 30.0)
		{
			bool bDone = false;
			beast::error_code Result;
			Begin([&bDone, &Result](beast::error_code Error, std::size_t) {
				bDone = true;
				Result = Error;
			});
			Io.restart();
			Io.run_for(std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::duration<double>(Seconds > 0 ? Seconds : 0.001)));
			if (!bDone)
			{
				beast::error_code Ignored;
				beast::get_lowest_layer(Ws).socket().close(Ignored);
				Io.restart();
				Io.run_for(std::chrono::seconds(5));
				throw std::runtime_error("timed out: " + What);
			}
			if (Result && bThrow) throw std::runtime_error(What + " failed: " + Result.message());
			return Result;
		}

		/** Adapts an operation whose handler takes only an error code. */
		static FHandler Plain(FIoHandler Done)
		{
			return [Done](beast::error_code Error) { Done(Error, 0); };
		}

		asio::io_context Io;
		websocket::stream<beast::tcp_stream> Ws;
	};

	/** GET a path from the server's HTTP side (its /metrics), with a deadline. */
	inline std::string HttpGet(const std::string& Url, const std::string& Target)
	{
		const FUrl Address = FUrl::Parse(Url);
		asio::io_context Io;
		beast::tcp_stream Stream(Io);
		tcp::resolver Resolver(Io);
		Stream.expires_after(std::chrono::seconds(10));
		Stream.connect(Resolver.resolve(Address.Host, Address.Port));
		http::request<http::empty_body> Request{http::verb::get, Target, 11};
		Request.set(http::field::host, Address.Host + ":" + Address.Port);
		http::write(Stream, Request);
		beast::flat_buffer Buffer;
		http::response<http::string_body> Response;
		http::read(Stream, Buffer, Response);
		beast::error_code Ignored;
		Stream.socket().shutdown(tcp::socket::shutdown_both, Ignored);
		return Response.body();
	}
} // namespace VrRecognitionTests
