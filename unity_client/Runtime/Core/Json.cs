// Minimal strict JSON for the wire protocol's few message shapes (docs/protocol.md section 3) and the
// capture-session files. Unity's JsonUtility cannot read dictionaries or tell 2 from 2.0, so the core
// carries its own: a reader into a small value tree and a compact writer whose output matches Python's
// json.dumps(separators=(",", ":"), ensure_ascii=False), byte for byte (the golden vectors depend on it).
// Plain C# 7.2, no UnityEngine.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Text;

namespace VrRecognition.Core
{
    public enum JsonKind { Null, Bool, Integer, Number, String, Array, Object }

    /// <summary>A parsed JSON value. Integers (literals without '.' or exponent) are kept apart from
    /// other numbers, as Python does, because the protocol refuses 2.0 where it wants an integer.</summary>
    public sealed class JsonValue
    {
        public static readonly JsonValue Null = new JsonValue(JsonKind.Null);
        public static readonly JsonValue True = new JsonValue(JsonKind.Bool) { Bool = true };
        public static readonly JsonValue False = new JsonValue(JsonKind.Bool) { Bool = false };

        public readonly JsonKind Kind;
        public bool Bool { get; private set; }
        public long Integer { get; private set; }
        public double Number { get; private set; }
        public string String { get; private set; }
        public List<JsonValue> Items { get; private set; }
        public JsonObject Object { get; private set; }

        JsonValue(JsonKind kind) { Kind = kind; }

        public static JsonValue Of(bool value) { return value ? True : False; }
        public static JsonValue Of(long value) { return new JsonValue(JsonKind.Integer) { Integer = value, Number = value }; }
        public static JsonValue Of(double value)
        {
            if (double.IsNaN(value) || double.IsInfinity(value))
                throw new ArgumentException("JSON has no NaN or Infinity");
            return new JsonValue(JsonKind.Number) { Number = value };
        }
        public static JsonValue Of(string value) { return value == null ? Null : new JsonValue(JsonKind.String) { String = value }; }
        public static JsonValue Of(JsonObject value) { return value == null ? Null : new JsonValue(JsonKind.Object) { Object = value }; }
        public static JsonValue Of(List<JsonValue> value) { return value == null ? Null : new JsonValue(JsonKind.Array) { Items = value }; }
        public static JsonValue Array(params JsonValue[] items) { return Of(new List<JsonValue>(items)); }

        public bool IsNull { get { return Kind == JsonKind.Null; } }
        public bool IsNumber { get { return Kind == JsonKind.Integer || Kind == JsonKind.Number; } }

        /// <summary>Structural equality; numbers compare by value (2 == 2.0), objects ignore key order.</summary>
        public bool DeepEquals(JsonValue other)
        {
            if (other == null) return false;
            if (IsNumber && other.IsNumber) return Number == other.Number;
            if (Kind != other.Kind) return false;
            switch (Kind)
            {
                case JsonKind.Null: return true;
                case JsonKind.Bool: return Bool == other.Bool;
                case JsonKind.String: return String == other.String;
                case JsonKind.Array:
                    if (Items.Count != other.Items.Count) return false;
                    for (int i = 0; i < Items.Count; i++)
                        if (!Items[i].DeepEquals(other.Items[i])) return false;
                    return true;
                default:
                    if (Object.Count != other.Object.Count) return false;
                    foreach (var pair in Object.Pairs)
                    {
                        JsonValue theirs;
                        if (!other.Object.TryGet(pair.Key, out theirs) || !pair.Value.DeepEquals(theirs)) return false;
                    }
                    return true;
            }
        }

        public override string ToString() { return JsonWriter.Write(this); }
    }

    /// <summary>A JSON object that keeps insertion order (the writer needs it) and looks keys up fast.</summary>
    public sealed class JsonObject
    {
        readonly List<KeyValuePair<string, JsonValue>> pairs = new List<KeyValuePair<string, JsonValue>>();
        readonly Dictionary<string, int> index = new Dictionary<string, int>(StringComparer.Ordinal);

        public int Count { get { return pairs.Count; } }
        public IList<KeyValuePair<string, JsonValue>> Pairs { get { return pairs; } }

        /// <summary>Sets a key; a repeated key keeps its first position and takes the last value (as Python).</summary>
        public JsonObject Set(string key, JsonValue value)
        {
            int at;
            if (index.TryGetValue(key, out at)) pairs[at] = new KeyValuePair<string, JsonValue>(key, value);
            else { index[key] = pairs.Count; pairs.Add(new KeyValuePair<string, JsonValue>(key, value)); }
            return this;
        }
        public JsonObject Set(string key, string value) { return Set(key, JsonValue.Of(value)); }
        public JsonObject Set(string key, long value) { return Set(key, JsonValue.Of(value)); }
        public JsonObject Set(string key, double value) { return Set(key, JsonValue.Of(value)); }
        public JsonObject Set(string key, bool value) { return Set(key, JsonValue.Of(value)); }
        public JsonObject Set(string key, JsonObject value) { return Set(key, JsonValue.Of(value)); }

        public bool TryGet(string key, out JsonValue value)
        {
            int at;
            if (index.TryGetValue(key, out at)) { value = pairs[at].Value; return true; }
            value = null;
            return false;
        }
        /// <summary>The value, or null (C# null) when the key is absent.</summary>
        public JsonValue Get(string key) { JsonValue v; return TryGet(key, out v) ? v : null; }
        public bool ContainsKey(string key) { return index.ContainsKey(key); }
    }

    public sealed class JsonException : Exception
    {
        public JsonException(string message) : base(message) { }
    }

    /// <summary>Strict RFC 8259 reader: no NaN/Infinity, no trailing commas, no comments, depth capped.</summary>
    public sealed class JsonReader
    {
        public const int DefaultMaxDepth = 32;
        static readonly UTF8Encoding StrictUtf8 = new UTF8Encoding(false, true);

        readonly string text;
        readonly int maxDepth;
        int pos;
        int depth;

        JsonReader(string text, int maxDepth) { this.text = text; this.maxDepth = maxDepth; }

        /// <summary>Decodes UTF-8 strictly (invalid bytes throw JsonException) and parses.</summary>
        public static JsonValue Parse(byte[] utf8, int offset, int count, int maxDepth = DefaultMaxDepth)
        {
            string text;
            try { text = StrictUtf8.GetString(utf8, offset, count); }
            catch (ArgumentException) { throw new JsonException("not valid UTF-8"); }
            return Parse(text, maxDepth);
        }

        public static JsonValue Parse(string text, int maxDepth = DefaultMaxDepth)
        {
            var reader = new JsonReader(text, maxDepth);
            reader.SkipSpace();
            var value = reader.ReadValue();
            reader.SkipSpace();
            if (reader.pos != text.Length) throw reader.Fail("extra data after the JSON value");
            return value;
        }

        JsonException Fail(string message) { return new JsonException(message + " at character " + pos); }

        void SkipSpace()
        {
            while (pos < text.Length)
            {
                char c = text[pos];
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') pos++;
                else break;
            }
        }

        JsonValue ReadValue()
        {
            if (pos >= text.Length) throw Fail("unexpected end");
            char c = text[pos];
            switch (c)
            {
                case '{': return ReadObject();
                case '[': return ReadArray();
                case '"': return JsonValue.Of(ReadString());
                case 't': Expect("true"); return JsonValue.True;
                case 'f': Expect("false"); return JsonValue.False;
                case 'n': Expect("null"); return JsonValue.Null;
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) return ReadNumber();
                    throw Fail("unexpected character '" + c + "'");
            }
        }

        void Expect(string word)
        {
            if (string.CompareOrdinal(text, pos, word, 0, word.Length) != 0) throw Fail("invalid literal");
            pos += word.Length;
        }

        void Enter()
        {
            if (++depth > maxDepth) throw Fail("nesting deeper than " + maxDepth);
        }

        JsonValue ReadObject()
        {
            Enter();
            pos++;
            var obj = new JsonObject();
            SkipSpace();
            if (pos < text.Length && text[pos] == '}') { pos++; depth--; return JsonValue.Of(obj); }
            while (true)
            {
                SkipSpace();
                if (pos >= text.Length || text[pos] != '"') throw Fail("expected a string key");
                string key = ReadString();
                SkipSpace();
                if (pos >= text.Length || text[pos] != ':') throw Fail("expected ':'");
                pos++;
                SkipSpace();
                obj.Set(key, ReadValue());
                SkipSpace();
                if (pos >= text.Length) throw Fail("unexpected end in object");
                if (text[pos] == ',') { pos++; continue; }
                if (text[pos] == '}') { pos++; depth--; return JsonValue.Of(obj); }
                throw Fail("expected ',' or '}'");
            }
        }

        JsonValue ReadArray()
        {
            Enter();
            pos++;
            var items = new List<JsonValue>();
            SkipSpace();
            if (pos < text.Length && text[pos] == ']') { pos++; depth--; return JsonValue.Of(items); }
            while (true)
            {
                SkipSpace();
                items.Add(ReadValue());
                SkipSpace();
                if (pos >= text.Length) throw Fail("unexpected end in array");
                if (text[pos] == ',') { pos++; continue; }
                if (text[pos] == ']') { pos++; depth--; return JsonValue.Of(items); }
                throw Fail("expected ',' or ']'");
            }
        }

        string ReadString()
        {
            pos++; // opening quote
            var sb = new StringBuilder();
            while (true)
            {
                if (pos >= text.Length) throw Fail("unterminated string");
                char c = text[pos++];
                if (c == '"') return CheckSurrogates(sb.ToString());
                if (c < 0x20) throw Fail("control character in string");
                if (c != '\\') { sb.Append(c); continue; }
                if (pos >= text.Length) throw Fail("unterminated escape");
                char e = text[pos++];
                switch (e)
                {
                    case '"': sb.Append('"'); break;
                    case '\\': sb.Append('\\'); break;
                    case '/': sb.Append('/'); break;
                    case 'b': sb.Append('\b'); break;
                    case 'f': sb.Append('\f'); break;
                    case 'n': sb.Append('\n'); break;
                    case 'r': sb.Append('\r'); break;
                    case 't': sb.Append('\t'); break;
                    case 'u':
                        if (pos + 4 > text.Length) throw Fail("short \\u escape");
                        int code;
                        if (!int.TryParse(text.Substring(pos, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out code))
                            throw Fail("bad \\u escape");
                        sb.Append((char)code);
                        pos += 4;
                        break;
                    default: throw Fail("bad escape");
                }
            }
        }

        // A lone UTF-16 surrogate (legal as the escape "\ud800") cannot be encoded as UTF-8, so the
        // server refuses it as bad_json; so do we.
        string CheckSurrogates(string s)
        {
            for (int i = 0; i < s.Length; i++)
            {
                if (char.IsHighSurrogate(s[i]) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1])) { i++; continue; }
                if (char.IsSurrogate(s[i])) throw Fail("string with a lone UTF-16 surrogate");
            }
            return s;
        }

        JsonValue ReadNumber()
        {
            int start = pos;
            bool integer = true;
            if (text[pos] == '-') pos++;
            if (pos >= text.Length) throw Fail("bad number");
            if (text[pos] == '0') pos++;
            else if (text[pos] >= '1' && text[pos] <= '9') { while (pos < text.Length && char.IsDigit(text[pos]) && text[pos] < 128) pos++; }
            else throw Fail("bad number");
            if (pos < text.Length && text[pos] == '.')
            {
                integer = false;
                pos++;
                int digits = pos;
                while (pos < text.Length && text[pos] >= '0' && text[pos] <= '9') pos++;
                if (pos == digits) throw Fail("bad fraction");
            }
            if (pos < text.Length && (text[pos] == 'e' || text[pos] == 'E'))
            {
                integer = false;
                pos++;
                if (pos < text.Length && (text[pos] == '+' || text[pos] == '-')) pos++;
                int digits = pos;
                while (pos < text.Length && text[pos] >= '0' && text[pos] <= '9') pos++;
                if (pos == digits) throw Fail("bad exponent");
            }
            string literal = text.Substring(start, pos - start);
            long asLong;
            if (integer && long.TryParse(literal, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out asLong))
                return JsonValue.Of(asLong);
            double value = double.Parse(literal, NumberStyles.Float, CultureInfo.InvariantCulture);
            if (double.IsInfinity(value)) throw Fail("number out of range");
            // An integer beyond 64 bits lands here too: out of every range the protocol allows anyway.
            return JsonValue.Of(value);
        }
    }

    /// <summary>Compact JSON text, formatted exactly like Python's json.dumps(..., separators=(",", ":"),
    /// ensure_ascii=False): floats in Python's shortest repr (90.0, 11.1, 1e-05), integers as digits.</summary>
    public static class JsonWriter
    {
        public static string Write(JsonValue value)
        {
            var sb = new StringBuilder();
            Write(sb, value);
            return sb.ToString();
        }

        public static string Write(JsonObject value) { return Write(JsonValue.Of(value)); }

        public static void Write(StringBuilder sb, JsonValue value)
        {
            switch (value.Kind)
            {
                case JsonKind.Null: sb.Append("null"); break;
                case JsonKind.Bool: sb.Append(value.Bool ? "true" : "false"); break;
                case JsonKind.Integer: sb.Append(value.Integer.ToString(CultureInfo.InvariantCulture)); break;
                case JsonKind.Number: sb.Append(FormatDouble(value.Number)); break;
                case JsonKind.String: WriteString(sb, value.String); break;
                case JsonKind.Array:
                    sb.Append('[');
                    for (int i = 0; i < value.Items.Count; i++)
                    {
                        if (i > 0) sb.Append(',');
                        Write(sb, value.Items[i]);
                    }
                    sb.Append(']');
                    break;
                default:
                    sb.Append('{');
                    bool first = true;
                    foreach (var pair in value.Object.Pairs)
                    {
                        if (!first) sb.Append(',');
                        first = false;
                        WriteString(sb, pair.Key);
                        sb.Append(':');
                        Write(sb, pair.Value);
                    }
                    sb.Append('}');
                    break;
            }
        }

        public static void WriteString(StringBuilder sb, string s)
        {
            sb.Append('"');
            foreach (char c in s)
            {
                switch (c)
                {
                    case '"': sb.Append("\\\""); break;
                    case '\\': sb.Append("\\\\"); break;
                    case '\n': sb.Append("\\n"); break;
                    case '\r': sb.Append("\\r"); break;
                    case '\t': sb.Append("\\t"); break;
                    case '\b': sb.Append("\\b"); break;
                    case '\f': sb.Append("\\f"); break;
                    default:
                        if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                        else sb.Append(c);
                        break;
                }
            }
            sb.Append('"');
        }

        /// <summary>Python's repr(float): the shortest digits that read back to the same double.</summary>
        public static string FormatDouble(double value)
        {
            if (double.IsNaN(value) || double.IsInfinity(value)) throw new ArgumentException("JSON has no NaN or Infinity");
            for (int precision = 1; precision <= 17; precision++)
            {
                string e = value.ToString("E" + (precision - 1), CultureInfo.InvariantCulture);
                if (double.Parse(e, NumberStyles.Float, CultureInfo.InvariantCulture) == value)
                    return FromScientific(e);
            }
            return FromScientific(value.ToString("E16", CultureInfo.InvariantCulture));
        }

        /// <summary>The shortest digits that read back to the same float32: 0.1f writes as 0.1, not
        /// 0.10000000149011612. For poses and gaze points, which are float32 in Unity.</summary>
        public static string FormatFloat(float value)
        {
            if (float.IsNaN(value) || float.IsInfinity(value)) throw new ArgumentException("JSON has no NaN or Infinity");
            for (int precision = 1; precision <= 9; precision++)
            {
                string e = ((double)value).ToString("E" + (precision - 1), CultureInfo.InvariantCulture);
                if ((float)double.Parse(e, NumberStyles.Float, CultureInfo.InvariantCulture) == value)
                    return FromScientific(e);
            }
            return FormatDouble(value);
        }

        // "d.dddE+xxx" -> Python repr layout: positional for exponents -4..15, else d.ddde+XX.
        static string FromScientific(string e)
        {
            bool negative = e[0] == '-';
            if (negative) e = e.Substring(1);
            int ePos = e.IndexOf('E');
            string mantissa = e.Substring(0, ePos).Replace(".", "");
            int exponent = int.Parse(e.Substring(ePos + 1), NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
            string digits = mantissa.TrimEnd('0');
            if (digits.Length == 0) { digits = "0"; exponent = 0; }
            var sb = new StringBuilder();
            if (negative) sb.Append('-');
            if (exponent >= -4 && exponent < 16)
            {
                if (exponent < 0)
                {
                    sb.Append("0.").Append('0', -exponent - 1).Append(digits);
                }
                else if (digits.Length <= exponent + 1)
                {
                    sb.Append(digits).Append('0', exponent + 1 - digits.Length).Append(".0");
                }
                else
                {
                    sb.Append(digits, 0, exponent + 1).Append('.').Append(digits, exponent + 1, digits.Length - exponent - 1);
                }
            }
            else
            {
                sb.Append(digits[0]);
                if (digits.Length > 1) sb.Append('.').Append(digits, 1, digits.Length - 1);
                sb.Append('e').Append(exponent < 0 ? '-' : '+').Append(Math.Abs(exponent).ToString("00", CultureInfo.InvariantCulture));
            }
            return sb.ToString();
        }
    }
}
