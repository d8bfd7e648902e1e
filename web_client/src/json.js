// Strict JSON for the wire protocol (docs/protocol.md 3): a reader that keeps integers apart from other
// numbers (the protocol refuses 2.0 where it wants an integer, and JSON.parse cannot tell them apart),
// refuses lone surrogate escapes and nesting deeper than 32, and a compact writer whose output matches
// Python's json.dumps(separators=(",", ":"), ensure_ascii=False) byte for byte (the golden vectors
// depend on it). Mirrors the Unity and Unreal cores' JSON readers.

/** Keys of an object (or indexes of an array) whose values were written as integers. */
export const INTEGER_KEYS = Symbol("vr.integerKeys");

export const MAX_JSON_DEPTH = 32;

export class JsonError extends Error {}

/** A number written as a float (Python's float): 90 writes as 90.0. */
export class JsonFloat {
  constructor(value) {
    this.value = value;
  }
}

export const jsonFloat = (value) => new JsonFloat(value);

/** Whether obj[key] was an integer literal in the parsed text. */
export function isIntegerAt(container, key) {
  const keys = container?.[INTEGER_KEYS];
  return keys !== undefined && keys.has(key);
}

const WHITESPACE = new Set([" ", "\t", "\n", "\r"]);

/** Parses text (a string, or UTF-8 bytes decoded strictly). Throws JsonError. */
/** Parsing itself recurses at most this deep (a bound on stack use); the final value's depth is then held
 * to maxDepth. */
const PARSE_DEPTH_CAP = 512;

export function parseJson(input, maxDepth = MAX_JSON_DEPTH) {
  let text = input;
  if (typeof input !== "string") {
    try {
      text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(input);
    } catch {
      throw new JsonError("not valid UTF-8");
    }
  }
  let pos = 0;
  let depth = 0;
  const fail = (why) => {
    throw new JsonError(`${why} at character ${pos}`);
  };
  const skip = () => {
    while (pos < text.length && WHITESPACE.has(text[pos])) pos += 1;
  };
  const setMember = (target, key, value, integer) => {
    // defineProperty: a key such as "__proto__" is data, and a repeated key keeps its first position
    Object.defineProperty(target, key, { value, enumerable: true, writable: true, configurable: true });
    if (integer) target[INTEGER_KEYS].add(key);
    else target[INTEGER_KEYS].delete(key);
  };
  const container = (value) => {
    Object.defineProperty(value, INTEGER_KEYS, { value: new Set(), enumerable: false });
    return value;
  };

  function readValue() {
    if (pos >= text.length) fail("unexpected end");
    const c = text[pos];
    if (c === "{") return [readObject(), false];
    if (c === "[") return [readArray(), false];
    if (c === '"') return [readString(), false];
    if (text.startsWith("true", pos)) return (pos += 4), [true, false];
    if (text.startsWith("false", pos)) return (pos += 5), [false, false];
    if (text.startsWith("null", pos)) return (pos += 4), [null, false];
    if (c === "-" || (c >= "0" && c <= "9")) return readNumber();
    return fail(`unexpected character ${JSON.stringify(c)}`);
  }

  function enter() {
    depth += 1;
    if (depth > Math.max(maxDepth, PARSE_DEPTH_CAP)) fail(`nesting deeper than ${maxDepth}`);
  }

  function readObject() {
    enter();
    pos += 1;
    const obj = container({});
    skip();
    if (text[pos] === "}") {
      pos += 1;
      depth -= 1;
      return obj;
    }
    for (;;) {
      skip();
      if (text[pos] !== '"') fail("expected a string key");
      const key = readString();
      skip();
      if (text[pos] !== ":") fail("expected ':'");
      pos += 1;
      skip();
      const [value, integer] = readValue();
      setMember(obj, key, value, integer);
      skip();
      if (text[pos] === ",") {
        pos += 1;
        continue;
      }
      if (text[pos] === "}") {
        pos += 1;
        depth -= 1;
        return obj;
      }
      fail("expected ',' or '}'");
    }
  }

  function readArray() {
    enter();
    pos += 1;
    const items = container([]);
    skip();
    if (text[pos] === "]") {
      pos += 1;
      depth -= 1;
      return items;
    }
    for (;;) {
      skip();
      const [value, integer] = readValue();
      if (integer) items[INTEGER_KEYS].add(items.length);
      items.push(value);
      skip();
      if (text[pos] === ",") {
        pos += 1;
        continue;
      }
      if (text[pos] === "]") {
        pos += 1;
        depth -= 1;
        return items;
      }
      fail("expected ',' or ']'");
    }
  }

  function hex4() {
    const digits = text.slice(pos, pos + 4);
    if (!/^[0-9a-fA-F]{4}$/.test(digits)) fail("bad \\u escape");
    pos += 4;
    return parseInt(digits, 16);
  }

  function readString() {
    pos += 1;
    let out = "";
    for (;;) {
      if (pos >= text.length) fail("unterminated string");
      const c = text[pos];
      const code = text.charCodeAt(pos);
      pos += 1;
      if (c === '"') return out;
      if (code < 0x20) fail("control character in string");
      if (c !== "\\") {
        out += c;
        continue;
      }
      const e = text[pos];
      pos += 1;
      const simple = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" }[e];
      if (simple !== undefined) {
        out += simple;
        continue;
      }
      if (e !== "u") fail("bad escape");
      // A lone surrogate is kept for now: as in Python, the document is refused only if it is still in
      // the final value (a repeated key may replace it); see parseJson.
      out += String.fromCharCode(hex4());
    }
  }

  function readNumber() {
    const match = /^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?/.exec(text.slice(pos, pos + 400));
    if (!match || match[0] === "-") fail("bad number");
    pos += match[0].length;
    const integer = match[2] === undefined && match[3] === undefined;
    return [Number(match[0]), integer];
  }

  skip();
  const [value] = readValue();
  skip();
  if (pos !== text.length) fail("extra data after the JSON value");
  // As the server does it, on the final value (after repeated keys took their last value):
  if (depthOf(value) > maxDepth) throw new JsonError(`nesting deeper than ${maxDepth}`);
  if (hasLoneSurrogate(value)) throw new JsonError("string with a lone UTF-16 surrogate");
  return value;
}

function depthOf(value) {
  if (value === null || typeof value !== "object") return 0;
  let deepest = 0;
  for (const child of Object.values(value)) deepest = Math.max(deepest, depthOf(child));
  return deepest + 1;
}

const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

function hasLoneSurrogate(value) {
  if (typeof value === "string") return LONE_SURROGATE.test(value);
  if (value === null || typeof value !== "object") return false;
  return Object.entries(value).some(([key, child]) => LONE_SURROGATE.test(key) || hasLoneSurrogate(child));
}

/** Python's repr(float): the shortest digits that read back to the same double. */
export function formatFloat(value) {
  if (!Number.isFinite(value)) throw new JsonError("JSON has no NaN or Infinity");
  if (Object.is(value, -0)) return "-0.0";
  if (value === 0) return "0.0";
  const [mantissa, exp] = value.toExponential().split("e");
  const negative = mantissa.startsWith("-");
  const digits = mantissa.replace("-", "").replace(".", "");
  const exponent = Number(exp);
  let out;
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) out = `0.${"0".repeat(-exponent - 1)}${digits}`;
    else if (digits.length <= exponent + 1) out = `${digits}${"0".repeat(exponent + 1 - digits.length)}.0`;
    else out = `${digits.slice(0, exponent + 1)}.${digits.slice(exponent + 1)}`;
  } else {
    const abs = Math.abs(exponent);
    out = `${digits[0]}${digits.length > 1 ? `.${digits.slice(1)}` : ""}e${exponent < 0 ? "-" : "+"}${abs < 10 ? "0" : ""}${abs}`;
  }
  return negative ? `-${out}` : out;
}

function writeString(s) {
  let out = '"';
  for (const ch of s) {
    const code = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (ch === "\n") out += "\\n";
    else if (ch === "\r") out += "\\r";
    else if (ch === "\t") out += "\\t";
    else if (ch === "\b") out += "\\b";
    else if (ch === "\f") out += "\\f";
    else if (code < 0x20) out += `\\u${code.toString(16).padStart(4, "0")}`;
    else out += ch; // non-ASCII as it is (ensure_ascii=False)
  }
  return `${out}"`;
}

/** Compact JSON: JsonFloat in Python's float repr, other numbers as integers, keys in insertion order. */
export function writeJson(value) {
  if (value === null || value === undefined) return "null";
  if (value instanceof JsonFloat) return formatFloat(value.value);
  switch (typeof value) {
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new JsonError("JSON has no NaN or Infinity");
      return Number.isInteger(value) ? BigInt(value).toString() : formatFloat(value);
    case "string":
      return writeString(value);
    default:
      if (Array.isArray(value)) return `[${value.map(writeJson).join(",")}]`;
      return `{${Object.entries(value)
        .map(([k, v]) => `${writeString(k)}:${writeJson(v)}`)
        .join(",")}}`;
  }
}

/** Structural equality: numbers (and JsonFloat) by value, objects regardless of key order. */
export function jsonEquals(a, b) {
  const unwrap = (v) => (v instanceof JsonFloat ? v.value : v);
  a = unwrap(a);
  b = unwrap(b);
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return a === b;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) return a.length === b.length && a.every((item, i) => jsonEquals(item, b[i]));
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => Object.hasOwn(b, k) && jsonEquals(a[k], b[k]));
}

/** Code points (what Python's len() counts for a string). */
export function codePointLength(s) {
  let n = 0;
  for (const _ of s) n += 1;
  return n;
}
