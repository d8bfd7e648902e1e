// Strict JSON reader and Python-compatible compact writer; see Json.h.
#include "VrRecognitionCore/Json.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iomanip>
#include <limits>
#include <locale>
#include <sstream>

namespace VrRecognition::Core
{
	JsonValue JsonValue::FromBool(bool Value)
	{
		JsonValue V;
		V.Type = EJsonKind::Bool;
		V.BoolValue = Value;
		return V;
	}

	JsonValue JsonValue::FromInt(int64_t Value)
	{
		JsonValue V;
		V.Type = EJsonKind::Integer;
		V.IntValue = Value;
		V.NumberValue = static_cast<double>(Value);
		return V;
	}

	JsonValue JsonValue::FromDouble(double Value)
	{
		JsonValue V;
		V.Type = EJsonKind::Number;
		V.NumberValue = Value;
		return V;
	}

	JsonValue JsonValue::FromString(std::string Value)
	{
		JsonValue V;
		V.Type = EJsonKind::String;
		V.StringValue = std::move(Value);
		return V;
	}

	JsonValue JsonValue::MakeArray()
	{
		JsonValue V;
		V.Type = EJsonKind::Array;
		return V;
	}

	JsonValue JsonValue::MakeObject()
	{
		JsonValue V;
		V.Type = EJsonKind::Object;
		return V;
	}

	JsonValue& JsonValue::Push(JsonValue Item)
	{
		Children.push_back(std::move(Item));
		return *this;
	}

	JsonValue& JsonValue::Set(std::string_view Key, JsonValue Value)
	{
		for (size_t I = 0; I < ObjectKeys.size(); ++I)
		{
			if (ObjectKeys[I] == Key)
			{
				Children[I] = std::move(Value);
				return *this;
			}
		}
		ObjectKeys.emplace_back(Key);
		Children.push_back(std::move(Value));
		return *this;
	}

	const JsonValue* JsonValue::Find(std::string_view Key) const
	{
		if (Type != EJsonKind::Object) return nullptr;
		for (size_t I = 0; I < ObjectKeys.size(); ++I)
		{
			if (ObjectKeys[I] == Key) return &Children[I];
		}
		return nullptr;
	}

	bool JsonValue::DeepEquals(const JsonValue& Other) const
	{
		if (IsNumber() && Other.IsNumber())
		{
			if (Type == EJsonKind::Integer && Other.Type == EJsonKind::Integer) return IntValue == Other.IntValue;
			return AsDouble() == Other.AsDouble();
		}
		if (Type != Other.Type) return false;
		switch (Type)
		{
		case EJsonKind::Null: return true;
		case EJsonKind::Bool: return BoolValue == Other.BoolValue;
		case EJsonKind::String: return StringValue == Other.StringValue;
		case EJsonKind::Array:
			if (Children.size() != Other.Children.size()) return false;
			for (size_t I = 0; I < Children.size(); ++I)
			{
				if (!Children[I].DeepEquals(Other.Children[I])) return false;
			}
			return true;
		case EJsonKind::Object:
			if (Children.size() != Other.Children.size()) return false;
			for (size_t I = 0; I < ObjectKeys.size(); ++I)
			{
				const JsonValue* Theirs = Other.Find(ObjectKeys[I]);
				if (Theirs == nullptr || !Children[I].DeepEquals(*Theirs)) return false;
			}
			return true;
		default: return false;
		}
	}

	// ------------------------------------------------------------------------------------------------
	// UTF-8
	// ------------------------------------------------------------------------------------------------

	bool IsValidUtf8(std::string_view Bytes)
	{
		const auto* S = reinterpret_cast<const unsigned char*>(Bytes.data());
		const size_t N = Bytes.size();
		size_t I = 0;
		while (I < N)
		{
			const unsigned char C = S[I];
			if (C < 0x80) { ++I; continue; }
			size_t Extra = 0;
			uint32_t CodePoint = 0;
			uint32_t Minimum = 0;
			if (C >= 0xC2 && C <= 0xDF) { Extra = 1; CodePoint = C & 0x1Fu; Minimum = 0x80; }
			else if (C >= 0xE0 && C <= 0xEF) { Extra = 2; CodePoint = C & 0x0Fu; Minimum = 0x800; }
			else if (C >= 0xF0 && C <= 0xF4) { Extra = 3; CodePoint = C & 0x07u; Minimum = 0x10000; }
			else return false;
			if (I + Extra >= N) return false; // truncated sequence
			for (size_t K = 1; K <= Extra; ++K)
			{
				const unsigned char Next = S[I + K];
				if ((Next & 0xC0u) != 0x80u) return false;
				CodePoint = (CodePoint << 6) | (Next & 0x3Fu);
			}
			if (CodePoint < Minimum || CodePoint > 0x10FFFF || (CodePoint >= 0xD800 && CodePoint <= 0xDFFF)) return false;
			I += Extra + 1;
		}
		return true;
	}

	size_t Utf8Length(std::string_view Utf8)
	{
		size_t Count = 0;
		for (const char C : Utf8)
		{
			if ((static_cast<unsigned char>(C) & 0xC0u) != 0x80u) ++Count;
		}
		return Count;
	}

	namespace
	{
		void AppendUtf8(std::string& Out, uint32_t CodePoint)
		{
			if (CodePoint < 0x80)
			{
				Out += static_cast<char>(CodePoint);
			}
			else if (CodePoint < 0x800)
			{
				Out += static_cast<char>(0xC0 | (CodePoint >> 6));
				Out += static_cast<char>(0x80 | (CodePoint & 0x3F));
			}
			else if (CodePoint < 0x10000)
			{
				Out += static_cast<char>(0xE0 | (CodePoint >> 12));
				Out += static_cast<char>(0x80 | ((CodePoint >> 6) & 0x3F));
				Out += static_cast<char>(0x80 | (CodePoint & 0x3F));
			}
			else
			{
				Out += static_cast<char>(0xF0 | (CodePoint >> 18));
				Out += static_cast<char>(0x80 | ((CodePoint >> 12) & 0x3F));
				Out += static_cast<char>(0x80 | ((CodePoint >> 6) & 0x3F));
				Out += static_cast<char>(0x80 | (CodePoint & 0x3F));
			}
		}

		/** Locale-independent decimal to double (correctly rounded by the standard library); an
		 * overflowing literal becomes +-infinity, as Python's float() makes it. */
		double ParseDecimal(const std::string& Literal)
		{
			std::istringstream Stream(Literal);
			Stream.imbue(std::locale::classic());
			double Value = 0.0;
			Stream >> Value;
			if (Stream.fail())
			{
				const double Inf = std::numeric_limits<double>::infinity();
				return !Literal.empty() && Literal[0] == '-' ? -Inf : Inf;
			}
			return Value;
		}

		class FJsonReader
		{
		public:
			FJsonReader(std::string_view InText, int InMaxDepth) : Text(InText), MaxDepth(InMaxDepth) {}

			bool ParseDocument(JsonValue& Out, std::string& Error)
			{
				SkipSpace();
				if (!ReadValue(Out)) { Error = Why + " at byte " + std::to_string(Pos); return false; }
				SkipSpace();
				if (Pos != Text.size()) { Error = "extra data after the JSON value at byte " + std::to_string(Pos); return false; }
				return true;
			}

		private:
			std::string_view Text;
			int MaxDepth;
			size_t Pos = 0;
			int Depth = 0;
			std::string Why;

			bool Fail(const char* Message)
			{
				Why = Message;
				return false;
			}

			bool AtEnd() const { return Pos >= Text.size(); }
			char Peek() const { return Text[Pos]; }

			void SkipSpace()
			{
				while (!AtEnd())
				{
					const char C = Peek();
					if (C == ' ' || C == '\t' || C == '\n' || C == '\r') ++Pos;
					else break;
				}
			}

			bool ReadValue(JsonValue& Out)
			{
				if (AtEnd()) return Fail("unexpected end");
				const char C = Peek();
				switch (C)
				{
				case '{': return ReadObject(Out);
				case '[': return ReadArray(Out);
				case '"':
				{
					std::string S;
					if (!ReadString(S)) return false;
					Out = JsonValue::FromString(std::move(S));
					return true;
				}
				case 't': return ReadLiteral("true", JsonValue::FromBool(true), Out);
				case 'f': return ReadLiteral("false", JsonValue::FromBool(false), Out);
				case 'n': return ReadLiteral("null", JsonValue(), Out);
				default:
					if (C == '-' || (C >= '0' && C <= '9')) return ReadNumber(Out);
					return Fail("unexpected character");
				}
			}

			bool ReadLiteral(std::string_view Word, JsonValue Value, JsonValue& Out)
			{
				if (Text.substr(Pos, Word.size()) != Word) return Fail("invalid literal");
				Pos += Word.size();
				Out = std::move(Value);
				return true;
			}

			bool Enter()
			{
				if (++Depth > MaxDepth) return Fail("nesting too deep");
				return true;
			}

			bool ReadObject(JsonValue& Out)
			{
				if (!Enter()) return false;
				++Pos;
				Out = JsonValue::MakeObject();
				SkipSpace();
				if (!AtEnd() && Peek() == '}') { ++Pos; --Depth; return true; }
				while (true)
				{
					SkipSpace();
					if (AtEnd() || Peek() != '"') return Fail("expected a string key");
					std::string Key;
					if (!ReadString(Key)) return false;
					SkipSpace();
					if (AtEnd() || Peek() != ':') return Fail("expected ':'");
					++Pos;
					SkipSpace();
					JsonValue Member;
					if (!ReadValue(Member)) return false;
					Out.Set(Key, std::move(Member));
					SkipSpace();
					if (AtEnd()) return Fail("unexpected end in object");
					if (Peek() == ',') { ++Pos; continue; }
					if (Peek() == '}') { ++Pos; --Depth; return true; }
					return Fail("expected ',' or '}'");
				}
			}

			bool ReadArray(JsonValue& Out)
			{
				if (!Enter()) return false;
				++Pos;
				Out = JsonValue::MakeArray();
				SkipSpace();
				if (!AtEnd() && Peek() == ']') { ++Pos; --Depth; return true; }
				while (true)
				{
					SkipSpace();
					JsonValue Item;
					if (!ReadValue(Item)) return false;
					Out.Push(std::move(Item));
					SkipSpace();
					if (AtEnd()) return Fail("unexpected end in array");
					if (Peek() == ',') { ++Pos; continue; }
					if (Peek() == ']') { ++Pos; --Depth; return true; }
					return Fail("expected ',' or ']'");
				}
			}

			bool ReadHex4(uint32_t& Out)
			{
				if (Pos + 4 > Text.size()) return Fail("short \\u escape");
				Out = 0;
				for (int I = 0; I < 4; ++I)
				{
					const char C = Text[Pos++];
					uint32_t Digit = 0;
					if (C >= '0' && C <= '9') Digit = static_cast<uint32_t>(C - '0');
					else if (C >= 'a' && C <= 'f') Digit = static_cast<uint32_t>(C - 'a' + 10);
					else if (C >= 'A' && C <= 'F') Digit = static_cast<uint32_t>(C - 'A' + 10);
					else return Fail("bad \\u escape");
					Out = (Out << 4) | Digit;
				}
				return true;
			}

			bool ReadString(std::string& Out)
			{
				++Pos; // opening quote
				while (true)
				{
					if (AtEnd()) return Fail("unterminated string");
					const char C = Text[Pos++];
					if (C == '"') return true;
					if (static_cast<unsigned char>(C) < 0x20) return Fail("control character in string");
					if (C != '\\') { Out += C; continue; }
					if (AtEnd()) return Fail("unterminated escape");
					const char E = Text[Pos++];
					switch (E)
					{
					case '"': Out += '"'; break;
					case '\\': Out += '\\'; break;
					case '/': Out += '/'; break;
					case 'b': Out += '\b'; break;
					case 'f': Out += '\f'; break;
					case 'n': Out += '\n'; break;
					case 'r': Out += '\r'; break;
					case 't': Out += '\t'; break;
					case 'u':
					{
						uint32_t Unit = 0;
						if (!ReadHex4(Unit)) return false;
						if (Unit >= 0xD800 && Unit <= 0xDBFF && Pos + 6 <= Text.size() && Text[Pos] == '\\' && Text[Pos + 1] == 'u')
						{
							// A high surrogate completed by an escaped low one is one code point.
							const size_t Saved = Pos;
							Pos += 2;
							uint32_t Low = 0;
							if (!ReadHex4(Low)) return false;
							if (Low >= 0xDC00 && Low <= 0xDFFF) Unit = 0x10000 + ((Unit - 0xD800) << 10) + (Low - 0xDC00);
							else Pos = Saved;
						}
						// A lone surrogate is kept (as WTF-8) for now: like Python, the document is refused only
						// if it is still in the final value (a repeated key may replace it); see ParseJson.
						AppendUtf8(Out, Unit);
						break;
					}
					default: return Fail("bad escape");
					}
				}
			}

			static bool IsDigit(char C) { return C >= '0' && C <= '9'; }

			bool ReadNumber(JsonValue& Out)
			{
				const size_t Start = Pos;
				bool bInteger = true;
				if (Peek() == '-') ++Pos;
				if (AtEnd()) return Fail("bad number");
				if (Peek() == '0') ++Pos;
				else if (Peek() >= '1' && Peek() <= '9') { while (!AtEnd() && IsDigit(Peek())) ++Pos; }
				else return Fail("bad number");
				if (!AtEnd() && Peek() == '.')
				{
					bInteger = false;
					++Pos;
					const size_t Digits = Pos;
					while (!AtEnd() && IsDigit(Peek())) ++Pos;
					if (Pos == Digits) return Fail("bad fraction");
				}
				if (!AtEnd() && (Peek() == 'e' || Peek() == 'E'))
				{
					bInteger = false;
					++Pos;
					if (!AtEnd() && (Peek() == '+' || Peek() == '-')) ++Pos;
					const size_t Digits = Pos;
					while (!AtEnd() && IsDigit(Peek())) ++Pos;
					if (Pos == Digits) return Fail("bad exponent");
				}
				const std::string Literal(Text.substr(Start, Pos - Start));
				if (bInteger)
				{
					// Exact 64-bit integer when it fits; larger ones (out of every range the protocol
					// allows anyway) fall back to a double, as in the C# core.
					const bool bNegative = Literal[0] == '-';
					uint64_t Magnitude = 0;
					bool bFits = true;
					for (size_t I = bNegative ? 1 : 0; I < Literal.size(); ++I)
					{
						const uint64_t Digit = static_cast<uint64_t>(Literal[I] - '0');
						if (Magnitude > (std::numeric_limits<uint64_t>::max() - Digit) / 10) { bFits = false; break; }
						Magnitude = Magnitude * 10 + Digit;
					}
					const uint64_t Limit = bNegative ? uint64_t(1) << 63 : (uint64_t(1) << 63) - 1;
					if (bFits && Magnitude <= Limit)
					{
						const int64_t Value = bNegative
							? (Magnitude == (uint64_t(1) << 63) ? std::numeric_limits<int64_t>::min() : -static_cast<int64_t>(Magnitude))
							: static_cast<int64_t>(Magnitude);
						Out = JsonValue::FromInt(Value);
						return true;
					}
				}
				Out = JsonValue::FromDouble(ParseDecimal(Literal));
				return true;
			}
		};

		/** "d.ddde+XX" (a C++ scientific rendering) -> Python's repr layout. */
		std::string FromScientific(const std::string& Scientific)
		{
			std::string E = Scientific;
			const bool bNegative = !E.empty() && E[0] == '-';
			if (bNegative) E = E.substr(1);
			const size_t EPos = E.find_first_of("eE");
			std::string Mantissa;
			for (size_t I = 0; I < EPos; ++I)
			{
				if (E[I] >= '0' && E[I] <= '9') Mantissa += E[I]; // skips the decimal point, whatever it is
			}
			int Exponent = std::atoi(E.c_str() + EPos + 1);
			while (Mantissa.size() > 1 && Mantissa.back() == '0') Mantissa.pop_back();
			if (Mantissa == "0") Exponent = 0;
			const int Digits = static_cast<int>(Mantissa.size());
			std::string Out = bNegative ? "-" : "";
			if (Exponent >= -4 && Exponent < 16)
			{
				if (Exponent < 0)
				{
					Out += "0.";
					Out.append(static_cast<size_t>(-Exponent - 1), '0');
					Out += Mantissa;
				}
				else if (Digits <= Exponent + 1)
				{
					Out += Mantissa;
					Out.append(static_cast<size_t>(Exponent + 1 - Digits), '0');
					Out += ".0";
				}
				else
				{
					Out += Mantissa.substr(0, static_cast<size_t>(Exponent + 1));
					Out += '.';
					Out += Mantissa.substr(static_cast<size_t>(Exponent + 1));
				}
			}
			else
			{
				Out += Mantissa[0];
				if (Digits > 1)
				{
					Out += '.';
					Out += Mantissa.substr(1);
				}
				const int Magnitude = Exponent < 0 ? -Exponent : Exponent;
				Out += Exponent < 0 ? "e-" : "e+";
				if (Magnitude < 10) Out += '0';
				Out += std::to_string(Magnitude);
			}
			return Out;
		}

		void Write(std::string& Out, const JsonValue& Value)
		{
			switch (Value.Kind())
			{
			case EJsonKind::Null: Out += "null"; break;
			case EJsonKind::Bool: Out += Value.AsBool() ? "true" : "false"; break;
			case EJsonKind::Integer: Out += std::to_string(Value.AsInt()); break;
			case EJsonKind::Number: Out += FormatDouble(Value.AsDouble()); break;
			case EJsonKind::String: WriteJsonString(Out, Value.AsString()); break;
			case EJsonKind::Array:
				Out += '[';
				for (size_t I = 0; I < Value.Items().size(); ++I)
				{
					if (I > 0) Out += ',';
					Write(Out, Value.Items()[I]);
				}
				Out += ']';
				break;
			case EJsonKind::Object:
				Out += '{';
				for (size_t I = 0; I < Value.Keys().size(); ++I)
				{
					if (I > 0) Out += ',';
					WriteJsonString(Out, Value.Keys()[I]);
					Out += ':';
					Write(Out, Value.Items()[I]);
				}
				Out += '}';
				break;
			}
		}
	} // namespace

	namespace
	{
		/** Nesting depth of the final value (an object or array counts one level), as Python's
		 * protocol module measures it after parsing. */
		int Depth(const JsonValue& Value)
		{
			if (!Value.IsObject() && !Value.IsArray()) return 0;
			int Deepest = 0;
			for (const JsonValue& Child : Value.Items()) Deepest = (std::max)(Deepest, Depth(Child));
			return Deepest + 1;
		}

		/** An escaped lone surrogate, kept as its 3-byte WTF-8 form (ED A0..BF xx). */
		bool HasLoneSurrogate(std::string_view Text)
		{
			for (size_t I = 0; I + 1 < Text.size(); ++I)
			{
				if (static_cast<unsigned char>(Text[I]) == 0xED && static_cast<unsigned char>(Text[I + 1]) >= 0xA0) return true;
			}
			return false;
		}

		bool HasLoneSurrogate(const JsonValue& Value)
		{
			if (Value.IsString()) return HasLoneSurrogate(Value.AsString());
			for (const std::string& Key : Value.Keys())
				if (HasLoneSurrogate(std::string_view(Key))) return true;
			for (const JsonValue& Child : Value.Items())
				if (HasLoneSurrogate(Child)) return true;
			return false;
		}

		/** Parsing itself recurses at most this deep (a bound on stack use); the final value's depth is
		 * then held to the protocol's limit, as Python does it: a deep value replaced by a repeated key
		 * does not count. */
		constexpr int ParseDepthCap = 512;
	} // namespace

	bool ParseJson(std::string_view Utf8, JsonValue& Out, std::string& Error, int MaxDepth)
	{
		if (!IsValidUtf8(Utf8))
		{
			Error = "not valid UTF-8";
			return false;
		}
		FJsonReader Reader(Utf8, (std::max)(MaxDepth, ParseDepthCap));
		if (!Reader.ParseDocument(Out, Error)) return false;
		if (Depth(Out) > MaxDepth)
		{
			Error = "nesting deeper than " + std::to_string(MaxDepth);
			return false;
		}
		if (HasLoneSurrogate(Out))
		{
			Error = "string with a lone UTF-16 surrogate";
			return false;
		}
		return true;
	}

	std::string WriteJson(const JsonValue& Value)
	{
		std::string Out;
		Write(Out, Value);
		return Out;
	}

	void WriteJsonString(std::string& Out, std::string_view Utf8)
	{
		Out += '"';
		for (const char C : Utf8)
		{
			switch (C)
			{
			case '"': Out += "\\\""; break;
			case '\\': Out += "\\\\"; break;
			case '\n': Out += "\\n"; break;
			case '\r': Out += "\\r"; break;
			case '\t': Out += "\\t"; break;
			case '\b': Out += "\\b"; break;
			case '\f': Out += "\\f"; break;
			default:
				if (static_cast<unsigned char>(C) < 0x20)
				{
					char Buffer[8];
					std::snprintf(Buffer, sizeof(Buffer), "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(C)));
					Out += Buffer;
				}
				else
				{
					Out += C; // UTF-8 passes through (ensure_ascii=False)
				}
			}
		}
		Out += '"';
	}

	std::string FormatDouble(double Value)
	{
		if (!std::isfinite(Value)) return "null"; // JSON has no NaN or Infinity; callers never pass them
		for (int Precision = 1; Precision <= 17; ++Precision)
		{
			std::ostringstream Stream;
			Stream.imbue(std::locale::classic());
			Stream << std::scientific << std::setprecision(Precision - 1) << Value;
			const std::string Scientific = Stream.str();
			if (ParseDecimal(Scientific) == Value) return FromScientific(Scientific);
		}
		std::ostringstream Stream;
		Stream.imbue(std::locale::classic());
		Stream << std::scientific << std::setprecision(16) << Value;
		return FromScientific(Stream.str());
	}
} // namespace VrRecognition::Core
