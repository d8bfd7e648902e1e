// Minimal strict JSON for the wire protocol's messages (docs/protocol.md section 3): a reader into a
// small value tree and a compact writer whose output matches Python's
// json.dumps(separators=(",", ":"), ensure_ascii=False) byte for byte (the golden vectors depend on it).
// Mirrors unity_client/Runtime/Core/Json.cs. Plain C++17: no Unreal types, no exceptions, no RTTI.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace VrRecognition::Core
{
	enum class EJsonKind : uint8_t { Null, Bool, Integer, Number, String, Array, Object };

	/** A parsed JSON value. Integers (literals without '.' or exponent that fit in 64 bits) are kept
	 * apart from other numbers, as Python does, because the protocol refuses 2.0 where it wants an
	 * integer. Objects keep their keys in order (the writer needs it); a repeated key keeps its first
	 * position and takes the last value, like Python's json module. Strings are UTF-8. */
	class JsonValue
	{
	public:
		JsonValue() = default; // null

		static JsonValue FromBool(bool Value);
		static JsonValue FromInt(int64_t Value);
		static JsonValue FromDouble(double Value);
		static JsonValue FromString(std::string Value);
		static JsonValue MakeArray();
		static JsonValue MakeObject();

		EJsonKind Kind() const { return Type; }
		bool IsNull() const { return Type == EJsonKind::Null; }
		bool IsNumber() const { return Type == EJsonKind::Integer || Type == EJsonKind::Number; }
		bool IsString() const { return Type == EJsonKind::String; }
		bool IsObject() const { return Type == EJsonKind::Object; }
		bool IsArray() const { return Type == EJsonKind::Array; }

		bool AsBool() const { return BoolValue; }
		int64_t AsInt() const { return IntValue; }
		/** Any number as a double (an integer converted). */
		double AsDouble() const { return Type == EJsonKind::Integer ? static_cast<double>(IntValue) : NumberValue; }
		const std::string& AsString() const { return StringValue; }

		/** Array items, or an object's values (in key order). */
		const std::vector<JsonValue>& Items() const { return Children; }
		const std::vector<std::string>& Keys() const { return ObjectKeys; }
		size_t Size() const { return Children.size(); }

		/** Appends to an array; returns *this for chaining. */
		JsonValue& Push(JsonValue Item);
		/** Sets an object member (a repeated key is replaced in place); returns *this for chaining. */
		JsonValue& Set(std::string_view Key, JsonValue Value);
		/** The member, or nullptr when the key is absent (or this is not an object). */
		const JsonValue* Find(std::string_view Key) const;

		/** Structural equality: numbers compare by value (2 == 2.0), objects ignore key order. */
		bool DeepEquals(const JsonValue& Other) const;

	private:
		EJsonKind Type = EJsonKind::Null;
		bool BoolValue = false;
		int64_t IntValue = 0;
		double NumberValue = 0.0;
		std::string StringValue;
		std::vector<JsonValue> Children;
		std::vector<std::string> ObjectKeys;
	};

	inline constexpr int JsonDefaultMaxDepth = 32;

	/** Strict RFC 8259: the text must be valid UTF-8; no NaN/Infinity, trailing commas or comments. As in
	 * the server, the parsed value (after repeated keys took their last value) may nest at most MaxDepth
	 * levels and hold no lone UTF-16 surrogate escape (UTF-8 cannot hold one). On failure returns false
	 * and says why in Error. */
	bool ParseJson(std::string_view Utf8, JsonValue& Out, std::string& Error, int MaxDepth = JsonDefaultMaxDepth);

	/** Compact JSON text exactly as Python's json.dumps(value, separators=(",", ":"), ensure_ascii=False)
	 * writes it: floats in Python's shortest repr (90.0, 11.1, 1e-05), integers as digits. */
	std::string WriteJson(const JsonValue& Value);
	void WriteJsonString(std::string& Out, std::string_view Utf8);

	/** Python's repr(float): the shortest digits that read back to the same double. Not for NaN/inf. */
	std::string FormatDouble(double Value);

	/** Strict UTF-8 (no overlong forms, no encoded surrogates, nothing above U+10FFFF). */
	bool IsValidUtf8(std::string_view Bytes);
	/** Code points in valid UTF-8 text (what Python's len() counts). */
	size_t Utf8Length(std::string_view Utf8);
} // namespace VrRecognition::Core
