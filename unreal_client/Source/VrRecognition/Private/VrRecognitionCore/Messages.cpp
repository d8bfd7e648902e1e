// JSON messages; see Messages.h. Field rules follow server/protocol.py: absent or null gives the default,
// a wrong type or a value out of range is invalid_message.
#include "VrRecognitionCore/Messages.h"

#include <cmath>
#include <cstdlib>
#include <limits>

namespace VrRecognition::Core
{
	namespace
	{
		bool Invalid(ProtocolError& Error, std::string Message)
		{
			Error.Set(ErrorCodes::InvalidMessage, std::move(Message));
			return false;
		}

		const JsonValue* Present(const JsonValue& Object, std::string_view Key)
		{
			const JsonValue* Value = Object.Find(Key);
			return Value == nullptr || Value->IsNull() ? nullptr : Value;
		}

		bool GetInt(const JsonValue& Object, std::string_view Key, int64_t Lo, int64_t Hi, std::optional<int64_t>& Out, ProtocolError& Error)
		{
			Out.reset();
			const JsonValue* Value = Present(Object, Key);
			if (Value == nullptr) return true;
			if (Value->Kind() != EJsonKind::Integer || Value->AsInt() < Lo || Value->AsInt() > Hi)
				return Invalid(Error, "\"" + std::string(Key) + "\" must be an integer in [" + std::to_string(Lo) + ", " + std::to_string(Hi) + "]");
			Out = Value->AsInt();
			return true;
		}

		bool GetNumber(const JsonValue& Object, std::string_view Key, double Lo, double Hi, std::optional<double>& Out, ProtocolError& Error)
		{
			Out.reset();
			const JsonValue* Value = Present(Object, Key);
			if (Value == nullptr) return true;
			if (!Value->IsNumber() || !(Value->AsDouble() >= Lo && Value->AsDouble() <= Hi))
				return Invalid(Error, "\"" + std::string(Key) + "\" must be a number in range");
			Out = Value->AsDouble();
			return true;
		}

		bool GetString(const JsonValue& Object, std::string_view Key, size_t MaxLength, const std::string& Default, std::string& Out, ProtocolError& Error)
		{
			const JsonValue* Value = Present(Object, Key);
			if (Value == nullptr)
			{
				Out = Default;
				return true;
			}
			if (!Value->IsString() || Utf8Length(Value->AsString()) > MaxLength)
				return Invalid(Error, "\"" + std::string(Key) + "\" must be a string of at most " + std::to_string(MaxLength) + " characters");
			Out = Value->AsString();
			return true;
		}

		/** The member when it is an object, nullptr when absent or null; a wrong type is invalid. */
		bool GetObject(const JsonValue& Object, std::string_view Key, const JsonValue*& Out, ProtocolError& Error)
		{
			Out = Present(Object, Key);
			if (Out != nullptr && !Out->IsObject()) return Invalid(Error, "\"" + std::string(Key) + "\" must be an object or null");
			return true;
		}

		/** Exactly N numbers (booleans are not numbers), as doubles. */
		bool Numbers(const JsonValue* Value, size_t N, std::vector<double>& Out)
		{
			if (Value == nullptr || !Value->IsArray() || Value->Size() != N) return false;
			Out.clear();
			for (const JsonValue& Item : Value->Items())
			{
				if (!Item.IsNumber()) return false;
				Out.push_back(Item.AsDouble());
			}
			return true;
		}

		JsonValue NumberArray(const std::vector<double>& Values)
		{
			JsonValue Array = JsonValue::MakeArray();
			for (const double V : Values) Array.Push(JsonValue::FromDouble(V));
			return Array;
		}

		JsonValue OptionalNumber(const std::optional<double>& Value) { return Value ? JsonValue::FromDouble(*Value) : JsonValue(); }

		JsonValue OneField(const char* Key, double Value)
		{
			JsonValue Object = JsonValue::MakeObject();
			Object.Set(Key, JsonValue::FromDouble(Value));
			return Object;
		}

		bool StringList(const JsonValue* Value, std::vector<std::string>& Out)
		{
			if (Value == nullptr || !Value->IsArray()) return false;
			Out.clear();
			for (const JsonValue& Item : Value->Items())
			{
				if (!Item.IsString()) return false;
				Out.push_back(Item.AsString());
			}
			return true;
		}

		JsonValue StringArray(const std::vector<std::string>& Values)
		{
			JsonValue Array = JsonValue::MakeArray();
			for (const std::string& V : Values) Array.Push(JsonValue::FromString(V));
			return Array;
		}

		bool PingId(const JsonValue* Id, bool bClientRules, ProtocolError& Error, const char* What)
		{
			if (Id == nullptr || (Id->Kind() != EJsonKind::Integer && Id->Kind() != EJsonKind::String))
				return Invalid(Error, std::string(What) + " needs an integer or string \"id\"");
			if (bClientRules && Id->IsString() && Utf8Length(Id->AsString()) > 64) return Invalid(Error, "ping \"id\" longer than 64 characters");
			if (bClientRules && Id->Kind() == EJsonKind::Integer && std::llabs(Id->AsInt()) > MaxJsonSafeInt)
				return Invalid(Error, "ping \"id\" must fit in 53 bits");
			return true;
		}

		std::string Truncate(const std::string& S, size_t N) { return S.size() <= N ? S : S.substr(0, N); }
	} // namespace

	const char* SettingKey(ESetting Setting)
	{
		switch (Setting)
		{
		case ESetting::TopK: return "top_k";
		case ESetting::BudgetMs: return "budget_ms";
		case ESetting::Fps: return "fps";
		case ESetting::Smoothing: return "smoothing";
		case ESetting::GazeCrop: return "gaze_crop";
		default: return "";
		}
	}

	// ------------------------------------------------------------------------------------------------
	// Stream settings
	// ------------------------------------------------------------------------------------------------

	void StreamSettings::WriteTo(JsonValue& Object) const
	{
		if (TopK) Object.Set("top_k", JsonValue::FromInt(*TopK));
		if (BudgetMs) Object.Set("budget_ms", JsonValue::FromDouble(*BudgetMs));
		if (Fps) Object.Set("fps", JsonValue::FromDouble(*Fps));
		if (SmoothingEmaAlpha) Object.Set("smoothing", OneField("ema_alpha", *SmoothingEmaAlpha));
		if (GazeCropScale) Object.Set("gaze_crop", OneField("scale", *GazeCropScale));
		// Fields reset to the server default are written as null, after the ones with values.
		for (int I = 0; I < SettingCount; ++I)
		{
			const ESetting Setting = static_cast<ESetting>(I);
			if (IsReset(Setting) && Object.Find(SettingKey(Setting)) == nullptr) Object.Set(SettingKey(Setting), JsonValue());
		}
	}

	bool StreamSettings::FromJson(const JsonValue& Object, StreamSettings& Out, ProtocolError& Error)
	{
		Out = StreamSettings();
		const JsonValue* Smoothing = nullptr;
		const JsonValue* GazeCrop = nullptr;
		if (!GetObject(Object, "smoothing", Smoothing, Error) || !GetObject(Object, "gaze_crop", GazeCrop, Error)) return false;
		if (Smoothing != nullptr)
		{
			if (!GetNumber(*Smoothing, "ema_alpha", 0.0, 1.0, Out.SmoothingEmaAlpha, Error)) return false;
			if (!Out.SmoothingEmaAlpha || *Out.SmoothingEmaAlpha <= 0.0) return Invalid(Error, "\"smoothing.ema_alpha\" must be a number in (0, 1]");
		}
		if (GazeCrop != nullptr)
		{
			if (!GetNumber(*GazeCrop, "scale", 0.0, 1.0, Out.GazeCropScale, Error)) return false;
			if (!Out.GazeCropScale || *Out.GazeCropScale <= 0.0) return Invalid(Error, "\"gaze_crop.scale\" must be a number in (0, 1]");
		}
		if (!GetNumber(Object, "budget_ms", 0.0, 60000.0, Out.BudgetMs, Error)) return false;
		if (Out.BudgetMs && *Out.BudgetMs <= 0.0) return Invalid(Error, "\"budget_ms\" must be positive");
		if (!GetNumber(Object, "fps", 0.0, 1000.0, Out.Fps, Error)) return false;
		if (Out.Fps && *Out.Fps <= 0.0) return Invalid(Error, "\"fps\" must be positive");
		if (!GetInt(Object, "top_k", 1, MaxJsonSafeInt, Out.TopK, Error)) return false; // clamped by the server
		for (int I = 0; I < SettingCount; ++I)
		{
			const ESetting Setting = static_cast<ESetting>(I);
			const JsonValue* Value = Object.Find(SettingKey(Setting));
			if (Value != nullptr && Value->IsNull()) Out.ResetToDefault(Setting);
		}
		return true;
	}

	// ------------------------------------------------------------------------------------------------
	// Client messages
	// ------------------------------------------------------------------------------------------------

	JsonValue ClientHello::ToJson() const
	{
		JsonValue Object = JsonValue::MakeObject();
		Object.Set("type", JsonValue::FromString("hello"));
		Object.Set("protocol", JsonValue::FromInt(Protocol));
		if (MinProtocol) Object.Set("min_protocol", JsonValue::FromInt(*MinProtocol));
		JsonValue Client = JsonValue::MakeObject();
		Client.Set("name", JsonValue::FromString(ClientName));
		Client.Set("version", JsonValue::FromString(ClientVersion));
		Object.Set("client", std::move(Client));
		Settings.WriteTo(Object);
		return Object;
	}

	JsonValue Configure::ToJson() const
	{
		JsonValue Object = JsonValue::MakeObject();
		Object.Set("type", JsonValue::FromString("configure"));
		Settings.WriteTo(Object);
		return Object;
	}

	JsonValue Ping::ToJson() const
	{
		JsonValue Object = JsonValue::MakeObject();
		Object.Set("type", JsonValue::FromString("ping"));
		Object.Set("id", Id);
		if (ClientTimeUs) Object.Set("client_time_us", JsonValue::FromInt(*ClientTimeUs));
		return Object;
	}

	JsonValue ClientMessage::ToJson() const
	{
		switch (Type)
		{
		case EClientMessageType::Hello: return Hello.ToJson();
		case EClientMessageType::Configure: return Config.ToJson();
		default: return PingMessage.ToJson();
		}
	}

	bool ParseMessageObject(std::string_view Utf8, size_t MaxBytes, JsonValue& Out, ProtocolError& Error)
	{
		if (Utf8.size() > MaxBytes)
		{
			Error.Set(ErrorCodes::MessageTooLarge, "JSON message is " + std::to_string(Utf8.size()) + " bytes, limit " + std::to_string(MaxBytes));
			return false;
		}
		std::string Why;
		if (!ParseJson(Utf8, Out, Why))
		{
			Error.Set(ErrorCodes::BadJson, "not valid JSON: " + Why);
			return false;
		}
		if (!Out.IsObject())
		{
			Error.Set(ErrorCodes::BadJson, "a JSON message must be an object");
			return false;
		}
		const JsonValue* Type = Out.Find("type");
		if (Type == nullptr || !Type->IsString()) return Invalid(Error, "JSON message needs a string \"type\"");
		return true;
	}

	bool DecodeClientMessage(std::string_view Utf8, ClientMessage& Out, ProtocolError& Error, size_t MaxBytes)
	{
		JsonValue Object;
		if (!ParseMessageObject(Utf8, MaxBytes, Object, Error)) return false;
		Out = ClientMessage();
		const std::string& Kind = Object.Find("type")->AsString();
		if (Kind == "hello")
		{
			Out.Type = EClientMessageType::Hello;
			std::optional<int64_t> Protocol;
			std::optional<int64_t> MinProtocol;
			if (!GetInt(Object, "protocol", 1, 255, Protocol, Error)) return false;
			if (!Protocol) return Invalid(Error, "hello needs \"protocol\"");
			// v1.1: min_protocol above protocol is well-formed; negotiation then finds no version.
			if (!GetInt(Object, "min_protocol", 1, 255, MinProtocol, Error)) return false;
			const JsonValue* Client = nullptr;
			if (!GetObject(Object, "client", Client, Error)) return false;
			const JsonValue Empty = JsonValue::MakeObject();
			if (Client == nullptr) Client = &Empty;
			Out.Hello.Protocol = static_cast<int>(*Protocol);
			if (MinProtocol) Out.Hello.MinProtocol = static_cast<int>(*MinProtocol);
			if (!GetString(*Client, "name", 256, "unknown", Out.Hello.ClientName, Error)) return false;
			if (!GetString(*Client, "version", 256, "", Out.Hello.ClientVersion, Error)) return false;
			return StreamSettings::FromJson(Object, Out.Hello.Settings, Error);
		}
		if (Kind == "configure")
		{
			Out.Type = EClientMessageType::Configure;
			return StreamSettings::FromJson(Object, Out.Config.Settings, Error);
		}
		if (Kind == "ping")
		{
			Out.Type = EClientMessageType::Ping;
			const JsonValue* Id = Object.Find("id");
			if (!PingId(Id, true, Error, "ping")) return false;
			Out.PingMessage.Id = *Id;
			return GetInt(Object, "client_time_us", 0, MaxJsonSafeInt, Out.PingMessage.ClientTimeUs, Error);
		}
		Error.Set(ErrorCodes::UnknownMessageType, "JSON message type \"" + Truncate(Kind, 40) + "\" is unknown");
		return false;
	}

	bool NegotiateVersion(const ClientHello& Hello, const std::vector<int>& Supported, int& OutVersion, ProtocolError& Error)
	{
		const int Lowest = Hello.MinProtocol ? *Hello.MinProtocol : Hello.Protocol;
		int Best = 0;
		for (const int Version : Supported)
		{
			if (Version >= Lowest && Version <= Hello.Protocol && Version > Best) Best = Version;
		}
		if (Best == 0)
		{
			Error.Set(ErrorCodes::UnsupportedVersion, "client speaks " + std::to_string(Lowest) + ".." + std::to_string(Hello.Protocol) + ", no common version");
			return false;
		}
		OutVersion = Best;
		return true;
	}

	// ------------------------------------------------------------------------------------------------
	// Server messages
	// ------------------------------------------------------------------------------------------------

	JsonValue ModelInfo::ToJson() const
	{
		JsonValue Input = JsonValue::MakeObject();
		Input.Set("width", JsonValue::FromInt(InputWidth));
		Input.Set("height", JsonValue::FromInt(InputHeight));
		Input.Set("mapping", JsonValue::FromString(Mapping));
		JsonValue Object = JsonValue::MakeObject();
		Object.Set("name", JsonValue::FromString(Name));
		Object.Set("version", JsonValue::FromString(Version));
		Object.Set("classes", StringArray(Classes));
		Object.Set("input", std::move(Input));
		Object.Set("provider", JsonValue::FromString(Provider));
		return Object;
	}

	bool ModelInfo::FromJson(const JsonValue* Value, ModelInfo& Out, ProtocolError& Error)
	{
		if (Value == nullptr || !Value->IsObject()) return Invalid(Error, "\"model\" must be an object");
		Out = ModelInfo();
		if (!StringList(Value->Find("classes"), Out.Classes)) return Invalid(Error, "\"model.classes\" must be a list of strings");
		const JsonValue* Input = nullptr;
		if (!GetObject(*Value, "input", Input, Error)) return false;
		const JsonValue Empty = JsonValue::MakeObject();
		if (Input == nullptr) Input = &Empty;
		std::optional<int64_t> Width;
		std::optional<int64_t> Height;
		if (!GetString(*Value, "name", 256, "", Out.Name, Error) || !GetString(*Value, "version", 256, "", Out.Version, Error)) return false;
		if (!GetInt(*Input, "width", 1, 65535, Width, Error) || !GetInt(*Input, "height", 1, 65535, Height, Error)) return false;
		if (!GetString(*Value, "provider", 256, "", Out.Provider, Error)) return false;
		if (!GetString(*Input, "mapping", 32, "centre_crop", Out.Mapping, Error)) return false; // absent from v1 servers
		Out.InputWidth = static_cast<int>(Width.value_or(0));
		Out.InputHeight = static_cast<int>(Height.value_or(0));
		return true;
	}

	JsonValue EffectiveSettings::ToJson() const
	{
		JsonValue Object = JsonValue::MakeObject();
		Object.Set("top_k", JsonValue::FromInt(TopK));
		Object.Set("budget_ms", JsonValue::FromDouble(BudgetMs));
		Object.Set("fps", OptionalNumber(Fps));
		Object.Set("smoothing", SmoothingEmaAlpha ? OneField("ema_alpha", *SmoothingEmaAlpha) : JsonValue());
		Object.Set("gaze_crop", GazeCropScale ? OneField("scale", *GazeCropScale) : JsonValue());
		return Object;
	}

	bool EffectiveSettings::FromJson(const JsonValue* Value, EffectiveSettings& Out, ProtocolError& Error)
	{
		if (Value == nullptr || !Value->IsObject()) return Invalid(Error, "\"session\" must be an object");
		StreamSettings Asked;
		if (!StreamSettings::FromJson(*Value, Asked, Error)) return false;
		if (!Asked.TopK || !Asked.BudgetMs) return Invalid(Error, "\"session\" needs \"top_k\" and \"budget_ms\"");
		Out = EffectiveSettings();
		Out.TopK = *Asked.TopK;
		Out.BudgetMs = *Asked.BudgetMs;
		Out.Fps = Asked.Fps;
		Out.SmoothingEmaAlpha = Asked.SmoothingEmaAlpha;
		Out.GazeCropScale = Asked.GazeCropScale;
		return true;
	}

	JsonValue Limits::ToJson() const
	{
		JsonValue Object = JsonValue::MakeObject();
		Object.Set("max_message_bytes", JsonValue::FromInt(MaxMessageBytes));
		Object.Set("max_control_bytes", JsonValue::FromInt(MaxControlBytes));
		Object.Set("max_width", JsonValue::FromInt(MaxWidth));
		Object.Set("max_height", JsonValue::FromInt(MaxHeight));
		Object.Set("max_pixels", JsonValue::FromInt(MaxPixels));
		Object.Set("max_aspect_ratio", JsonValue::FromDouble(MaxAspectRatio));
		Object.Set("max_progressive_pixels", JsonValue::FromInt(MaxProgressivePixels));
		Object.Set("max_top_k", JsonValue::FromInt(MaxTopK));
		Object.Set("formats", StringArray(Formats));
		return Object;
	}

	bool Limits::FromJson(const JsonValue* Value, Limits& Out, ProtocolError& Error)
	{
		Out = Limits();
		if (Value == nullptr) return true; // absent: the defaults (null is not an object: refused below)
		if (!Value->IsObject()) return Invalid(Error, "\"limits\" must be an object");
		const JsonValue* Formats = Value->Find("formats");
		if (Formats != nullptr && !StringList(Formats, Out.Formats)) return Invalid(Error, "\"limits.formats\" must be a list of strings");
		struct FIntField
		{
			const char* Key;
			int64_t* Target;
		};
		const FIntField Fields[] = {
			{"max_message_bytes", &Out.MaxMessageBytes}, {"max_control_bytes", &Out.MaxControlBytes}, {"max_width", &Out.MaxWidth},
			{"max_height", &Out.MaxHeight}, {"max_pixels", &Out.MaxPixels}, {"max_top_k", &Out.MaxTopK},
			{"max_progressive_pixels", &Out.MaxProgressivePixels},
		};
		for (const FIntField& Field : Fields)
		{
			std::optional<int64_t> Number;
			if (!GetInt(*Value, Field.Key, 0, std::numeric_limits<int64_t>::max(), Number, Error)) return false;
			if (Number) *Field.Target = *Number;
		}
		std::optional<double> Aspect;
		if (!GetNumber(*Value, "max_aspect_ratio", 1.0, 65535.0, Aspect, Error)) return false;
		if (Aspect) Out.MaxAspectRatio = *Aspect;
		return true;
	}

	std::string Limits::CheckSize(int Width, int Height) const
	{
		if (Width < 1 || Height < 1) return "empty frame";
		if (Width > MaxWidth || Height > MaxHeight || static_cast<int64_t>(Width) * Height > MaxPixels) return "over the server's size limits";
		const int Longer = Width > Height ? Width : Height;
		const int Shorter = Width > Height ? Height : Width;
		if (Longer > MaxAspectRatio * Shorter) return "more elongated than the server's max_aspect_ratio";
		return std::string();
	}

	JsonValue ServerHello::ToJson() const
	{
		JsonValue Server = JsonValue::MakeObject();
		Server.Set("name", JsonValue::FromString(ServerName));
		Server.Set("version", JsonValue::FromString(ServerVersion));
		JsonValue Object = JsonValue::MakeObject();
		Object.Set("type", JsonValue::FromString("hello"));
		Object.Set("protocol", JsonValue::FromInt(Protocol));
		Object.Set("server", std::move(Server));
		Object.Set("model", Model.ToJson());
		Object.Set("session", Session.ToJson());
		Object.Set("limits", ServerLimits.ToJson());
		return Object;
	}

	std::optional<double> Result::Timing(std::string_view Stage) const
	{
		for (const auto& Pair : TimingsMs)
		{
			if (Pair.first == Stage) return Pair.second;
		}
		return std::nullopt;
	}

	JsonValue Result::ToJson() const
	{
		JsonValue Predictions = JsonValue::MakeArray();
		for (const Prediction& P : TopK)
		{
			JsonValue Entry = JsonValue::MakeObject();
			Entry.Set("label", JsonValue::FromString(P.Label));
			Entry.Set("index", JsonValue::FromInt(P.Index));
			Entry.Set("score", JsonValue::FromDouble(P.Score));
			Predictions.Push(std::move(Entry));
		}
		JsonValue Timings = JsonValue::MakeObject();
		for (const auto& Pair : TimingsMs) Timings.Set(Pair.first, JsonValue::FromDouble(Pair.second));
		JsonValue PoseValue;
		if (PosePosition && PoseRotation)
		{
			PoseValue = JsonValue::MakeObject();
			PoseValue.Set("position", NumberArray(*PosePosition));
			PoseValue.Set("rotation", NumberArray(*PoseRotation));
		}
		JsonValue Object = JsonValue::MakeObject();
		Object.Set("type", JsonValue::FromString("result"));
		Object.Set("frame_id", JsonValue::FromInt(FrameId));
		Object.Set("capture_time_us", JsonValue::FromInt(CaptureTimeUs));
		Object.Set("status", JsonValue::FromString(Status));
		Object.Set("top_k", std::move(Predictions));
		Object.Set("timings_ms", std::move(Timings));
		Object.Set("pose", std::move(PoseValue));
		Object.Set("gaze", Gaze ? NumberArray(*Gaze) : JsonValue());
		Object.Set("model_version", JsonValue::FromString(ModelVersion));
		if (ErrorCode)
		{
			JsonValue ErrorValue = JsonValue::MakeObject();
			ErrorValue.Set("code", JsonValue::FromString(*ErrorCode));
			ErrorValue.Set("message", JsonValue::FromString(ErrorMessage));
			Object.Set("error", std::move(ErrorValue));
		}
		return Object;
	}

	JsonValue ErrorMessage::ToJson() const
	{
		JsonValue Object = JsonValue::MakeObject();
		Object.Set("type", JsonValue::FromString("error"));
		Object.Set("code", JsonValue::FromString(Code));
		Object.Set("message", JsonValue::FromString(Message));
		Object.Set("frame_id", FrameId ? JsonValue::FromInt(*FrameId) : JsonValue());
		Object.Set("fatal", JsonValue::FromBool(Fatal));
		return Object;
	}

	JsonValue Pong::ToJson() const
	{
		JsonValue Object = JsonValue::MakeObject();
		Object.Set("type", JsonValue::FromString("pong"));
		Object.Set("id", Id);
		Object.Set("client_time_us", ClientTimeUs ? JsonValue::FromInt(*ClientTimeUs) : JsonValue());
		Object.Set("server_time_us", JsonValue::FromInt(ServerTimeUs));
		return Object;
	}

	JsonValue ServerMessage::ToJson() const
	{
		switch (Type)
		{
		case EServerMessageType::Hello: return Hello.ToJson();
		case EServerMessageType::Result: return FrameResult.ToJson();
		case EServerMessageType::Error: return Error.ToJson();
		case EServerMessageType::Pong: return PongMessage.ToJson();
		case EServerMessageType::Configured:
		{
			JsonValue Object = JsonValue::MakeObject();
			Object.Set("type", JsonValue::FromString("configured"));
			Object.Set("session", Session.ToJson());
			return Object;
		}
		default:
		{
			JsonValue Object = JsonValue::MakeObject();
			Object.Set("type", JsonValue::FromString("model_changed"));
			Object.Set("model", Model.ToJson());
			return Object;
		}
		}
	}

	namespace
	{
		bool DecodeResult(const JsonValue& Object, Result& Out, ProtocolError& Error)
		{
			Out = Result();
			const JsonValue* Status = Object.Find("status");
			if (Status == nullptr || !Status->IsString()) return Invalid(Error, "result needs a string \"status\"");
			Out.Status = Status->AsString(); // unknown statuses from a newer server are kept (treat as errors)
			std::optional<int64_t> FrameId;
			std::optional<int64_t> Capture;
			if (!GetInt(Object, "frame_id", 0, 0xFFFFFFFFll, FrameId, Error)) return false;
			if (!GetInt(Object, "capture_time_us", 0, MaxJsonSafeInt, Capture, Error)) return false;
			if (!FrameId || !Capture) return Invalid(Error, "result needs \"frame_id\" and \"capture_time_us\"");
			Out.FrameId = static_cast<uint32_t>(*FrameId);
			Out.CaptureTimeUs = *Capture;
			if (const JsonValue* TopK = Present(Object, "top_k"))
			{
				if (!TopK->IsArray()) return Invalid(Error, "\"top_k\" must be a list");
				for (const JsonValue& Entry : TopK->Items())
				{
					if (!Entry.IsObject()) return Invalid(Error, "\"top_k\" entries must be objects");
					Prediction P;
					std::optional<int64_t> Index;
					std::optional<double> Score;
					const double Inf = std::numeric_limits<double>::infinity();
					if (!GetString(Entry, "label", 256, "", P.Label, Error)) return false;
					if (!GetInt(Entry, "index", 0, int64_t(1) << 31, Index, Error)) return false;
					if (!GetNumber(Entry, "score", -Inf, Inf, Score, Error)) return false;
					if (Present(Entry, "label") == nullptr || !Index || !Score)
						return Invalid(Error, "\"top_k\" entries need \"label\", \"index\" and \"score\"");
					P.Index = *Index;
					P.Score = *Score;
					Out.TopK.push_back(std::move(P));
				}
			}
			if (const JsonValue* Timings = Present(Object, "timings_ms"))
			{
				if (!Timings->IsObject()) return Invalid(Error, "\"timings_ms\" must map stage names to numbers");
				for (size_t I = 0; I < Timings->Size(); ++I)
				{
					if (!Timings->Items()[I].IsNumber()) return Invalid(Error, "\"timings_ms\" must map stage names to numbers");
					Out.TimingsMs.emplace_back(Timings->Keys()[I], Timings->Items()[I].AsDouble());
				}
			}
			if (const JsonValue* Gaze = Present(Object, "gaze"))
			{
				std::vector<double> Values;
				if (!Numbers(Gaze, 2, Values)) return Invalid(Error, "\"gaze\" must be two numbers or null");
				Out.Gaze = std::move(Values);
			}
			const JsonValue* ErrorValue = nullptr;
			if (!GetObject(Object, "error", ErrorValue, Error)) return false;
			if (const JsonValue* Pose = Present(Object, "pose"))
			{
				if (!Pose->IsObject()) return Invalid(Error, "\"pose\" must be an object or null");
				std::vector<double> Position;
				std::vector<double> Rotation;
				if (!Numbers(Pose->Find("position"), 3, Position) || !Numbers(Pose->Find("rotation"), 4, Rotation))
					return Invalid(Error, "\"pose\" needs 3 position and 4 rotation numbers");
				Out.PosePosition = std::move(Position);
				Out.PoseRotation = std::move(Rotation);
			}
			if (!GetString(Object, "model_version", 256, "", Out.ModelVersion, Error)) return false;
			if (ErrorValue != nullptr)
			{
				std::string Code;
				if (!GetString(*ErrorValue, "code", 256, "", Code, Error)) return false;
				if (!GetString(*ErrorValue, "message", 4096, "", Out.ErrorMessage, Error)) return false;
				Out.ErrorCode = Code;
			}
			return true;
		}
	} // namespace

	bool DecodeServerMessage(std::string_view Utf8, ServerMessage& Out, ProtocolError& Error, size_t MaxBytes)
	{
		JsonValue Object;
		if (!ParseMessageObject(Utf8, MaxBytes, Object, Error)) return false;
		Out = ServerMessage();
		const std::string& Kind = Object.Find("type")->AsString();
		if (Kind == "result")
		{
			Out.Type = EServerMessageType::Result;
			return DecodeResult(Object, Out.FrameResult, Error);
		}
		if (Kind == "hello")
		{
			Out.Type = EServerMessageType::Hello;
			const JsonValue* Server = nullptr;
			if (!GetObject(Object, "server", Server, Error)) return false;
			const JsonValue Empty = JsonValue::MakeObject();
			if (Server == nullptr) Server = &Empty;
			std::optional<int64_t> Protocol;
			if (!GetInt(Object, "protocol", 1, 255, Protocol, Error)) return false;
			Out.Hello.Protocol = static_cast<int>(Protocol.value_or(1));
			if (!GetString(*Server, "name", 256, "", Out.Hello.ServerName, Error)) return false;
			if (!GetString(*Server, "version", 256, "", Out.Hello.ServerVersion, Error)) return false;
			if (!ModelInfo::FromJson(Object.Find("model"), Out.Hello.Model, Error)) return false;
			if (!EffectiveSettings::FromJson(Object.Find("session"), Out.Hello.Session, Error)) return false;
			return Limits::FromJson(Object.Find("limits"), Out.Hello.ServerLimits, Error);
		}
		if (Kind == "error")
		{
			Out.Type = EServerMessageType::Error;
			const JsonValue* Fatal = Object.Find("fatal");
			Out.Error.Fatal = Fatal != nullptr && Fatal->Kind() == EJsonKind::Bool && Fatal->AsBool();
			if (!GetString(Object, "code", 256, "", Out.Error.Code, Error)) return false;
			if (!GetString(Object, "message", 4096, "", Out.Error.Message, Error)) return false;
			return GetInt(Object, "frame_id", 0, 0xFFFFFFFFll, Out.Error.FrameId, Error);
		}
		if (Kind == "pong")
		{
			Out.Type = EServerMessageType::Pong;
			const JsonValue* Id = Object.Find("id");
			if (!PingId(Id, false, Error, "pong")) return false;
			Out.PongMessage.Id = *Id;
			std::optional<int64_t> ServerTime;
			if (!GetInt(Object, "client_time_us", 0, MaxJsonSafeInt, Out.PongMessage.ClientTimeUs, Error)) return false;
			if (!GetInt(Object, "server_time_us", 0, MaxJsonSafeInt, ServerTime, Error)) return false;
			Out.PongMessage.ServerTimeUs = ServerTime.value_or(0);
			return true;
		}
		if (Kind == "configured")
		{
			Out.Type = EServerMessageType::Configured;
			return EffectiveSettings::FromJson(Object.Find("session"), Out.Session, Error);
		}
		if (Kind == "model_changed")
		{
			Out.Type = EServerMessageType::ModelChanged;
			return ModelInfo::FromJson(Object.Find("model"), Out.Model, Error);
		}
		Error.Set(ErrorCodes::UnknownMessageType, "JSON message type \"" + Truncate(Kind, 40) + "\" is unknown");
		return false;
	}
} // namespace VrRecognition::Core
