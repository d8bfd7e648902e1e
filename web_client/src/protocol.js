// Wire protocol v1, document revision 1.1 (docs/protocol.md), as pure functions: the binary frame header
// (writer and reader, with the validation order of section 2.3 so that this client names the same error
// as the server for the same bytes), the JSON messages both ways, the close codes and what a client does
// after each, and the gaze-crop rectangle. No I/O; runs in browsers, workers and Node.
import {
  INTEGER_KEYS,
  JsonError,
  codePointLength,
  isIntegerAt,
  jsonFloat,
  parseJson,
  writeJson,
} from "./json.js";

export const PROTOCOL_VERSION = 1;
export const SUPPORTED_VERSIONS = [1];
export const HEADER_SIZE = 72;
export const MESSAGE_TYPE_FRAME = 1;
export const MAX_JSON_SAFE_INT = 2 ** 53 - 1;
export const MAX_U32 = 2 ** 32 - 1;
export const DEFAULT_MAX_CONTROL_BYTES = 64 * 1024;
export const DEFAULT_MAX_MESSAGE_BYTES = 16 * 2 ** 20;
const MAGIC = [0x56, 0x52, 0x46, 0x52]; // "VRFR"

/** The closed list of v1 error codes (5.1); a newer server may send others: treat them as generic errors. */
export const ErrorCodes = Object.freeze({
  TRUNCATED_HEADER: "truncated_header",
  BAD_MAGIC: "bad_magic",
  UNSUPPORTED_VERSION: "unsupported_version",
  UNKNOWN_MESSAGE_TYPE: "unknown_message_type",
  BAD_HEADER: "bad_header",
  LENGTH_MISMATCH: "length_mismatch",
  EMPTY_PAYLOAD: "empty_payload",
  UNSUPPORTED_FORMAT: "unsupported_format",
  BAD_DIMENSIONS: "bad_dimensions",
  IMAGE_TOO_LARGE: "image_too_large",
  CORRUPT_IMAGE: "corrupt_image",
  MESSAGE_TOO_LARGE: "message_too_large",
  BAD_JSON: "bad_json",
  INVALID_MESSAGE: "invalid_message",
  HELLO_REQUIRED: "hello_required",
  DUPLICATE_HELLO: "duplicate_hello",
  UNAUTHORIZED: "unauthorized",
  FORBIDDEN_ORIGIN: "forbidden_origin",
  TOO_MANY_STREAMS: "too_many_streams",
  SLOW_CONSUMER: "slow_consumer",
  MODEL_UNAVAILABLE: "model_unavailable",
  SHUTTING_DOWN: "shutting_down",
  INTERNAL_ERROR: "internal_error",
});

/** Result statuses; a newer server may add others (treat those as errors). */
export const Status = Object.freeze({ OK: "ok", DROPPED_STALE: "dropped_stale", LATE: "late", ERROR: "error" });

/** A message broke the protocol: `code` is one of ErrorCodes; `frameId` is set from validation step 7 on. */
export class ProtocolError extends Error {
  constructor(code, message, frameId = null) {
    super(`${code}: ${message}`);
    this.code = code;
    this.detail = message;
    this.frameId = frameId;
  }
}

const invalid = (message) => new ProtocolError(ErrorCodes.INVALID_MESSAGE, message);

// ---------------------------------------------------------------------------------------------------
// Close codes (5.2)
// ---------------------------------------------------------------------------------------------------

/** The close codes the server sends; every close carries an error code as its reason. */
export const CloseCodes = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001, // shutting_down: reconnect with backoff
  PROTOCOL_ERROR: 1002, // unsupported_version: do not retry with the same versions
  INVALID_DATA: 1007, // bad_json: a text message that was not UTF-8
  POLICY_VIOLATION: 1008, // hello_required, or slow_consumer
  MESSAGE_TOO_BIG: 1009, // message_too_large
  INTERNAL_ERROR: 1011, // internal_error: reconnect with backoff
  TRY_AGAIN_LATER: 4013, // too_many_streams or shutting_down at hello: reconnect with backoff

  /** Every code the server sends, in the order of docs/protocol.md 5.2. */
  SENT_BY_SERVER: Object.freeze([1001, 1002, 1007, 1008, 1009, 1011, 4013]),

  /** The reasons (error codes) the server gives with a code. */
  reasons(code) {
    return (
      {
        1001: ["shutting_down"],
        1002: ["unsupported_version"],
        1007: ["bad_json"],
        1008: ["hello_required", "slow_consumer"],
        1009: ["message_too_large"],
        1011: ["internal_error"],
        4013: ["too_many_streams", "shutting_down"],
      }[code] ?? []
    );
  },

  /** Whether to connect again (after the backoff delay); null = the connection ended without a close
   * frame (a refused upgrade, a lost network). Everything but 1002 is worth another try. */
  reconnects(code) {
    return code !== 1002;
  },

  /** A close that says this client sent something wrong: its backoff keeps growing instead of restarting. */
  isClientFault(code, reason) {
    return code === 1007 || code === 1009 || (code === 1008 && reason === "hello_required");
  },
});

// ---------------------------------------------------------------------------------------------------
// Binary frames (2)
// ---------------------------------------------------------------------------------------------------

export const ImageFormat = Object.freeze({ jpeg: 1, rgb8: 2, rgba8: 3 });
const FORMAT_NAMES = { 1: "jpeg", 2: "rgb8", 3: "rgba8" };
const CHANNELS = { jpeg: 0, rgb8: 3, rgba8: 4 };
export const Flags = Object.freeze({ HAS_POSE: 1, HAS_GAZE: 2, ROWS_BOTTOM_UP: 4, KNOWN: 7, MUST_UNDERSTAND: 0xffff });

const inUnit = (v) => v >= 0 && v <= 1; // false for NaN
const bytesOf = (data) => (data instanceof Uint8Array ? data : new Uint8Array(data));

/** Why a decoder would refuse this frame, or null when it may be sent. */
export function checkFrame(frame) {
  const payload = frame.payload ? bytesOf(frame.payload) : null;
  const capture = frame.captureTimeUs ?? 0;
  if (!Number.isInteger(capture) || capture < 0 || capture > MAX_JSON_SAFE_INT)
    return "capture_time_us must be an integer below 2^53";
  if (!Number.isInteger(frame.frameId ?? 0) || (frame.frameId ?? 0) < 0 || (frame.frameId ?? 0) > MAX_U32)
    return "frame_id must fit 32 bits";
  if (!payload || payload.length === 0) return "frame needs a non-empty payload";
  const { width, height } = frame;
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || width > 65535 || height < 1 || height > 65535)
    return "width and height must be 1..65535";
  const format = frame.format ?? "jpeg";
  if (!(format in CHANNELS)) return "unknown image format";
  if (CHANNELS[format] && payload.length !== width * height * CHANNELS[format])
    return "raw payload length must be width x height x channels";
  if (frame.pose) {
    const values = [...frame.pose.position, ...frame.pose.rotation];
    if (values.length !== 7 || !values.every((v) => Number.isFinite(Math.fround(v)))) return "pose must be 7 finite numbers";
  }
  if (frame.gaze && !(frame.gaze.length === 2 && frame.gaze.every((v) => inUnit(Math.fround(v)))))
    return "gaze must lie in [0, 1]";
  return null;
}

/** Header plus payload as one Uint8Array: one binary WebSocket message. Throws for a frame a decoder
 * would refuse (the encoder never emits bad frames). `frame`: {frameId, captureTimeUs, format ("jpeg",
 * "rgb8", "rgba8"), width, height, payload, pose: {position: [x, y, z], rotation: [x, y, z, w]}, gaze:
 * [u, v] (origin top-left), rowsBottomUp}. */
export function encodeFrame(frame) {
  const problem = checkFrame(frame);
  if (problem) throw new RangeError(problem);
  const payload = bytesOf(frame.payload);
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  const view = new DataView(out.buffer);
  let flags = 0;
  if (frame.pose) flags |= Flags.HAS_POSE;
  if (frame.gaze) flags |= Flags.HAS_GAZE;
  if (frame.rowsBottomUp) flags |= Flags.ROWS_BOTTOM_UP;
  out.set(MAGIC, 0);
  view.setUint8(4, PROTOCOL_VERSION);
  view.setUint8(5, MESSAGE_TYPE_FRAME);
  view.setUint16(6, HEADER_SIZE, true);
  view.setUint32(8, flags, true);
  view.setUint32(12, frame.frameId ?? 0, true);
  view.setBigUint64(16, BigInt(frame.captureTimeUs ?? 0), true);
  const pose = frame.pose ? [...frame.pose.position, ...frame.pose.rotation] : [0, 0, 0, 0, 0, 0, 0];
  pose.forEach((v, i) => view.setFloat32(24 + 4 * i, v, true));
  const gaze = frame.gaze ?? [0, 0];
  view.setFloat32(52, gaze[0], true);
  view.setFloat32(56, gaze[1], true);
  view.setUint8(60, ImageFormat[frame.format ?? "jpeg"]);
  view.setUint16(62, frame.width, true);
  view.setUint16(64, frame.height, true);
  view.setUint32(68, payload.length, true);
  out.set(payload, HEADER_SIZE);
  return out;
}

/** Parses one binary message; throws ProtocolError with the first rule it breaks (2.3). The returned
 * frame's payload is a view into the message. */
export function decodeFrame(data) {
  const bytes = bytesOf(data);
  const size = bytes.length;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const E = ErrorCodes;
  if (size < 4) throw new ProtocolError(E.TRUNCATED_HEADER, `message is ${size} bytes, shorter than the magic`);
  if (!MAGIC.every((b, i) => bytes[i] === b)) throw new ProtocolError(E.BAD_MAGIC, "magic is not VRFR");
  if (size < 8) throw new ProtocolError(E.TRUNCATED_HEADER, `message is ${size} bytes, the header needs 72`);
  const version = bytes[4];
  const msgType = bytes[5];
  const headerLen = view.getUint16(6, true);
  if (!SUPPORTED_VERSIONS.includes(version)) throw new ProtocolError(E.UNSUPPORTED_VERSION, `frame version ${version}`);
  if (msgType !== MESSAGE_TYPE_FRAME) throw new ProtocolError(E.UNKNOWN_MESSAGE_TYPE, `binary message type ${msgType}`);
  if (headerLen < HEADER_SIZE) throw new ProtocolError(E.BAD_HEADER, `header_len ${headerLen} < 72`);
  if (size < headerLen) throw new ProtocolError(E.TRUNCATED_HEADER, `message is ${size} bytes, header_len says ${headerLen}`);
  const flags = view.getUint32(8, true);
  const frameId = view.getUint32(12, true);
  const capture = view.getBigUint64(16, true);
  const pose = Array.from({ length: 7 }, (_, i) => view.getFloat32(24 + 4 * i, true));
  const gaze = [view.getFloat32(52, true), view.getFloat32(56, true)];
  const formatCode = bytes[60];
  const width = view.getUint16(62, true);
  const height = view.getUint16(64, true);
  const payloadLen = view.getUint32(68, true);
  const fail = (code, message) => new ProtocolError(code, message, frameId);
  if (capture > BigInt(MAX_JSON_SAFE_INT)) throw fail(E.BAD_HEADER, "capture_time_us must be below 2^53");
  if (payloadLen !== size - headerLen) throw fail(E.LENGTH_MISMATCH, `payload_len ${payloadLen} but ${size - headerLen} bytes follow`);
  if (payloadLen === 0) throw fail(E.EMPTY_PAYLOAD, "frame has no image bytes");
  if ((flags & Flags.MUST_UNDERSTAND & ~Flags.KNOWN) !== 0) throw fail(E.BAD_HEADER, "unknown must-understand flag bits");
  const format = FORMAT_NAMES[formatCode];
  if (format === undefined) throw fail(E.UNSUPPORTED_FORMAT, `image format ${formatCode} is unknown`);
  if (width === 0 || height === 0) throw fail(E.BAD_DIMENSIONS, `declared size ${width}x${height} is empty`);
  if (CHANNELS[format] && payloadLen !== width * height * CHANNELS[format])
    throw fail(E.BAD_DIMENSIONS, `${format} ${width}x${height} needs ${width * height * CHANNELS[format]} bytes`);
  const hasPose = (flags & Flags.HAS_POSE) !== 0;
  const hasGaze = (flags & Flags.HAS_GAZE) !== 0;
  if (hasPose && !pose.every(Number.isFinite)) throw fail(E.BAD_HEADER, "pose has a non-finite value");
  if (hasGaze && !gaze.every(inUnit)) throw fail(E.BAD_HEADER, "gaze is outside [0, 1]");
  return {
    frameId,
    captureTimeUs: Number(capture),
    format,
    width,
    height,
    headerLen,
    payload: bytes.subarray(headerLen),
    pose: hasPose ? { position: pose.slice(0, 3), rotation: pose.slice(3) } : null,
    gaze: hasGaze ? gaze : null,
    rowsBottomUp: (flags & Flags.ROWS_BOTTOM_UP) !== 0,
  };
}

/** The gaze crop (3.1) in the frame's own pixel grid: [left, top, side], halves rounding up. */
export function gazeCropRect(width, height, u, v, scale) {
  const side = Math.max(1, Math.floor(scale * Math.min(width, height) + 0.5));
  const clamp = (x, hi) => Math.min(Math.max(x, 0), hi);
  const left = clamp(Math.floor(u * width - side / 2 + 0.5), width - side);
  const top = clamp(Math.floor(v * height - side / 2 + 0.5), height - side);
  return [left, top, side];
}

// ---------------------------------------------------------------------------------------------------
// JSON messages: field rules (absent or null = default; a wrong type or range = invalid_message)
// ---------------------------------------------------------------------------------------------------

const own = (obj, key) => (obj !== null && typeof obj === "object" && Object.hasOwn(obj, key) ? obj[key] : undefined);
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);

function getInt(obj, key, lo, hi) {
  const v = own(obj, key);
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !isIntegerAt(obj, key) || !(v >= lo && v <= hi))
    throw invalid(`"${key}" must be an integer in [${lo}, ${hi}]`);
  return v;
}

function getNumber(obj, key, lo, hi) {
  const v = own(obj, key);
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !(v >= lo && v <= hi)) throw invalid(`"${key}" must be a number in [${lo}, ${hi}]`);
  return v;
}

function getString(obj, key, maxLength, fallback) {
  const v = own(obj, key);
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "string" || codePointLength(v) > maxLength)
    throw invalid(`"${key}" must be a string of at most ${maxLength} characters`);
  return v;
}

function getObject(obj, key) {
  const v = own(obj, key);
  if (v === undefined || v === null) return null;
  if (!isObject(v)) throw invalid(`"${key}" must be an object or null`);
  return v;
}

function numbers(value, n) {
  return Array.isArray(value) && value.length === n && value.every((v) => typeof v === "number") ? [...value] : null;
}

function stringList(value) {
  return Array.isArray(value) && value.every((v) => typeof v === "string") ? [...value] : null;
}

/** Strict JSON object with a string "type": the server's parse_json_object rules. */
export function parseMessageObject(input, maxBytes) {
  const size = typeof input === "string" ? new TextEncoder().encode(input).length : bytesOf(input).length;
  if (size > maxBytes) throw new ProtocolError(ErrorCodes.MESSAGE_TOO_LARGE, `JSON message is ${size} bytes, limit ${maxBytes}`);
  let value;
  try {
    value = parseJson(typeof input === "string" ? input : bytesOf(input));
  } catch (error) {
    if (error instanceof JsonError) throw new ProtocolError(ErrorCodes.BAD_JSON, `not valid JSON: ${error.message}`);
    throw error;
  }
  if (!isObject(value)) throw new ProtocolError(ErrorCodes.BAD_JSON, "a JSON message must be an object");
  if (typeof own(value, "type") !== "string") throw invalid('JSON message needs a string "type"');
  return value;
}

// ---------------------------------------------------------------------------------------------------
// Client to server (3)
// ---------------------------------------------------------------------------------------------------

/** Settings' wire keys, in the order they are written. */
export const SETTING_KEYS = Object.freeze(["top_k", "budget_ms", "fps", "smoothing", "gaze_crop"]);

/** Stream settings asked for in hello/configure: {topK, budgetMs, fps, smoothingEmaAlpha, gazeCropScale,
 * reset}. Absent (undefined/null) = not sent; `reset` lists wire keys sent as null: in configure, back to
 * the server's default (v1.1; smoothing and gaze crop: off). */
export function settingsToJson(settings = {}, out = {}) {
  if (settings.topK != null) out.top_k = settings.topK;
  if (settings.budgetMs != null) out.budget_ms = jsonFloat(settings.budgetMs);
  if (settings.fps != null) out.fps = jsonFloat(settings.fps);
  if (settings.smoothingEmaAlpha != null) out.smoothing = { ema_alpha: jsonFloat(settings.smoothingEmaAlpha) };
  if (settings.gazeCropScale != null) out.gaze_crop = { scale: jsonFloat(settings.gazeCropScale) };
  for (const key of SETTING_KEYS) if (settings.reset?.has?.(key) && !(key in out)) out[key] = null;
  return out;
}

function settingsFromJson(obj) {
  const smoothing = getObject(obj, "smoothing");
  const gazeCrop = getObject(obj, "gaze_crop");
  let alpha = null;
  let scale = null;
  if (smoothing !== null) {
    alpha = getNumber(smoothing, "ema_alpha", 0, 1);
    if (alpha === null || alpha <= 0) throw invalid('"smoothing.ema_alpha" must be a number in (0, 1]');
  }
  if (gazeCrop !== null) {
    scale = getNumber(gazeCrop, "scale", 0, 1);
    if (scale === null || scale <= 0) throw invalid('"gaze_crop.scale" must be a number in (0, 1]');
  }
  const budgetMs = getNumber(obj, "budget_ms", 0, 60000);
  if (budgetMs !== null && budgetMs <= 0) throw invalid('"budget_ms" must be positive');
  const fps = getNumber(obj, "fps", 0, 1000);
  if (fps !== null && fps <= 0) throw invalid('"fps" must be positive');
  const topK = getInt(obj, "top_k", 1, MAX_JSON_SAFE_INT); // any value; the server clamps it
  const reset = new Set(SETTING_KEYS.filter((key) => Object.hasOwn(obj, key) && obj[key] === null));
  return { topK, budgetMs, fps, smoothingEmaAlpha: alpha, gazeCropScale: scale, reset };
}

/** A client message as server/protocol.py's encode_client_message orders it (JsonFloat for floats). */
export function clientMessageToJson(message) {
  switch (message.type) {
    case "hello": {
      const out = { type: "hello", protocol: message.protocol ?? PROTOCOL_VERSION };
      if (message.minProtocol != null) out.min_protocol = message.minProtocol;
      out.client = { name: message.clientName ?? "unknown", version: message.clientVersion ?? "" };
      return settingsToJson(message.settings, out);
    }
    case "configure":
      return settingsToJson(message.settings, { type: "configure" });
    case "ping": {
      const out = { type: "ping", id: message.id };
      if (message.clientTimeUs != null) out.client_time_us = message.clientTimeUs;
      return out;
    }
    default:
      throw new TypeError(`not a client message: ${message.type}`);
  }
}

/** Compact JSON text, byte for byte as the Python codec writes it. */
export const encodeClientMessage = (message) => writeJson(clientMessageToJson(message));

/** Parses a client message with the server's rules (for self-checks and the golden vectors). */
export function decodeClientMessage(input, maxBytes = DEFAULT_MAX_CONTROL_BYTES) {
  const obj = parseMessageObject(input, maxBytes);
  const kind = obj.type;
  if (kind === "hello") {
    const protocol = getInt(obj, "protocol", 1, 255);
    if (protocol === null) throw invalid('hello needs "protocol"');
    const minProtocol = getInt(obj, "min_protocol", 1, 255); // above protocol: well-formed, negotiates nothing
    const client = getObject(obj, "client") ?? {};
    return {
      type: "hello",
      protocol,
      minProtocol,
      clientName: getString(client, "name", 256, "unknown"),
      clientVersion: getString(client, "version", 256, ""),
      settings: settingsFromJson(obj),
    };
  }
  if (kind === "configure") return { type: "configure", settings: settingsFromJson(obj) };
  if (kind === "ping") {
    const id = own(obj, "id");
    const integer = typeof id === "number" && isIntegerAt(obj, "id");
    if (!(integer || typeof id === "string")) throw invalid('ping needs an integer or string "id"');
    if (typeof id === "string" && codePointLength(id) > 64) throw invalid('ping "id" longer than 64 characters');
    if (integer && Math.abs(id) > MAX_JSON_SAFE_INT) throw invalid('ping "id" must fit in 53 bits');
    return { type: "ping", id, clientTimeUs: getInt(obj, "client_time_us", 0, MAX_JSON_SAFE_INT) };
  }
  throw new ProtocolError(ErrorCodes.UNKNOWN_MESSAGE_TYPE, `JSON message type "${kind.slice(0, 40)}" is unknown`);
}

/** The newest version both sides speak (3.4), or ProtocolError unsupported_version. */
export function negotiateVersion(hello, supported = SUPPORTED_VERSIONS) {
  const lowest = hello.minProtocol ?? hello.protocol;
  const common = supported.filter((v) => v >= lowest && v <= hello.protocol);
  if (common.length === 0)
    throw new ProtocolError(ErrorCodes.UNSUPPORTED_VERSION, `client speaks ${lowest}..${hello.protocol}, no common version`);
  return Math.max(...common);
}

// ---------------------------------------------------------------------------------------------------
// Server to client (4)
// ---------------------------------------------------------------------------------------------------

function modelFromJson(value) {
  if (!isObject(value)) throw invalid('"model" must be an object');
  const classes = stringList(own(value, "classes"));
  if (classes === null) throw invalid('"model.classes" must be a list of strings');
  const input = getObject(value, "input") ?? {};
  return {
    name: getString(value, "name", 256, ""),
    version: getString(value, "version", 256, ""),
    classes,
    inputWidth: getInt(input, "width", 1, 65535) ?? 0,
    inputHeight: getInt(input, "height", 1, 65535) ?? 0,
    provider: getString(value, "provider", 256, ""),
    mapping: getString(input, "mapping", 32, "centre_crop"), // absent from revision 1.0 servers
  };
}

const modelToJson = (m) => ({
  name: m.name,
  version: m.version,
  classes: [...m.classes],
  input: { width: m.inputWidth, height: m.inputHeight, mapping: m.mapping },
  provider: m.provider,
});

function sessionFromJson(value) {
  if (!isObject(value)) throw invalid('"session" must be an object');
  const asked = settingsFromJson(value);
  if (asked.topK === null || asked.budgetMs === null) throw invalid('"session" needs "top_k" and "budget_ms"');
  const { reset, ...session } = asked;
  return session;
}

const sessionToJson = (s) => ({
  top_k: s.topK,
  budget_ms: jsonFloat(s.budgetMs),
  fps: s.fps == null ? null : jsonFloat(s.fps),
  smoothing: s.smoothingEmaAlpha == null ? null : { ema_alpha: jsonFloat(s.smoothingEmaAlpha) },
  gaze_crop: s.gazeCropScale == null ? null : { scale: jsonFloat(s.gazeCropScale) },
});

const LIMIT_INTEGERS = {
  maxMessageBytes: ["max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES],
  maxControlBytes: ["max_control_bytes", DEFAULT_MAX_CONTROL_BYTES],
  maxWidth: ["max_width", 8192],
  maxHeight: ["max_height", 8192],
  maxPixels: ["max_pixels", 4096 * 4096],
  maxTopK: ["max_top_k", 100],
  maxProgressivePixels: ["max_progressive_pixels", 1920 * 1080],
};

/** The server's limits; absent fields (an older server) take the documented defaults. */
export function limitsFromJson(value) {
  if (value === undefined) value = {};
  if (!isObject(value)) throw invalid('"limits" must be an object');
  const formats = own(value, "formats");
  const limits = { formats: formats === undefined ? ["jpeg", "rgb8", "rgba8"] : stringList(formats) };
  if (limits.formats === null) throw invalid('"limits.formats" must be a list of strings');
  for (const [name, [key, fallback]] of Object.entries(LIMIT_INTEGERS))
    limits[name] = getInt(value, key, 0, 2 ** 63) ?? fallback;
  limits.maxAspectRatio = getNumber(value, "max_aspect_ratio", 1, 65535) ?? 4.0;
  return limits;
}

const limitsToJson = (l) => ({
  max_message_bytes: l.maxMessageBytes,
  max_control_bytes: l.maxControlBytes,
  max_width: l.maxWidth,
  max_height: l.maxHeight,
  max_pixels: l.maxPixels,
  max_aspect_ratio: jsonFloat(l.maxAspectRatio),
  max_progressive_pixels: l.maxProgressivePixels,
  max_top_k: l.maxTopK,
  formats: [...l.formats],
});

/** Why the server would refuse a frame of this size before decoding it, or null when it fits. */
export function checkSize(limits, width, height) {
  if (width > limits.maxWidth || height > limits.maxHeight || width * height > limits.maxPixels)
    return "over the server's size limits";
  if (Math.max(width, height) > limits.maxAspectRatio * Math.min(width, height)) return "more elongated than max_aspect_ratio";
  return null;
}

function decodeResult(obj) {
  const status = own(obj, "status");
  if (typeof status !== "string") throw invalid('result needs a string "status"'); // unknown ones are kept
  const frameId = getInt(obj, "frame_id", 0, MAX_U32);
  const captureTimeUs = getInt(obj, "capture_time_us", 0, MAX_JSON_SAFE_INT);
  if (frameId === null || captureTimeUs === null) throw invalid('result needs "frame_id" and "capture_time_us"');
  const topKValue = own(obj, "top_k") ?? [];
  if (!Array.isArray(topKValue)) throw invalid('"top_k" must be a list');
  const topK = topKValue.map((entry) => {
    if (!isObject(entry)) throw invalid('"top_k" entries must be objects');
    const label = getString(entry, "label", 256, null);
    const index = getInt(entry, "index", 0, 2 ** 31);
    const score = getNumber(entry, "score", -Infinity, Infinity);
    if (label === null || index === null || score === null) throw invalid('"top_k" entries need "label", "index" and "score"');
    return { label, index, score };
  });
  const timings = own(obj, "timings_ms") ?? {};
  if (!isObject(timings) || !Object.values(timings).every((v) => typeof v === "number"))
    throw invalid('"timings_ms" must map stage names to numbers');
  const gaze = own(obj, "gaze") ?? null;
  if (gaze !== null && numbers(gaze, 2) === null) throw invalid('"gaze" must be two numbers or null');
  const error = getObject(obj, "error");
  const poseValue = own(obj, "pose") ?? null;
  let pose = null;
  if (poseValue !== null) {
    if (!isObject(poseValue)) throw invalid('"pose" must be an object or null');
    const position = numbers(own(poseValue, "position"), 3);
    const rotation = numbers(own(poseValue, "rotation"), 4);
    if (position === null || rotation === null) throw invalid('"pose" needs 3 position and 4 rotation numbers');
    pose = { position, rotation };
  }
  return {
    type: "result",
    frameId,
    captureTimeUs,
    status,
    topK,
    timingsMs: { ...timings },
    pose,
    gaze: gaze === null ? null : [...gaze],
    modelVersion: getString(obj, "model_version", 256, ""),
    error: error === null ? null : { code: getString(error, "code", 256, ""), message: getString(error, "message", 4096, "") },
  };
}

/** Parses a server message; unknown fields are ignored so that newer servers stay readable. */
export function decodeServerMessage(input, maxBytes = DEFAULT_MAX_MESSAGE_BYTES) {
  const obj = parseMessageObject(input, maxBytes);
  switch (obj.type) {
    case "result":
      return decodeResult(obj);
    case "hello": {
      const server = getObject(obj, "server") ?? {};
      return {
        type: "hello",
        protocol: getInt(obj, "protocol", 1, 255) ?? 1,
        serverName: getString(server, "name", 256, ""),
        serverVersion: getString(server, "version", 256, ""),
        model: modelFromJson(own(obj, "model")),
        session: sessionFromJson(own(obj, "session")),
        limits: limitsFromJson(own(obj, "limits")),
      };
    }
    case "error":
      return {
        type: "error",
        code: getString(obj, "code", 256, ""),
        message: getString(obj, "message", 4096, ""),
        frameId: getInt(obj, "frame_id", 0, MAX_U32),
        fatal: own(obj, "fatal") === true,
      };
    case "pong": {
      const id = own(obj, "id");
      if (!((typeof id === "number" && isIntegerAt(obj, "id")) || typeof id === "string"))
        throw invalid('pong needs an integer or string "id"');
      return {
        type: "pong",
        id,
        clientTimeUs: getInt(obj, "client_time_us", 0, MAX_JSON_SAFE_INT),
        serverTimeUs: getInt(obj, "server_time_us", 0, MAX_JSON_SAFE_INT) ?? 0,
      };
    }
    case "configured":
      return { type: "configured", session: sessionFromJson(own(obj, "session")) };
    case "model_changed":
      return { type: "model_changed", model: modelFromJson(own(obj, "model")) };
    default:
      throw new ProtocolError(ErrorCodes.UNKNOWN_MESSAGE_TYPE, `JSON message type "${obj.type.slice(0, 40)}" is unknown`);
  }
}

/** A server message as server/protocol.py would encode it (for the golden vectors). */
export function serverMessageToJson(m) {
  switch (m.type) {
    case "hello":
      return {
        type: "hello",
        protocol: m.protocol,
        server: { name: m.serverName, version: m.serverVersion },
        model: modelToJson(m.model),
        session: sessionToJson(m.session),
        limits: limitsToJson(m.limits),
      };
    case "result": {
      const out = {
        type: "result",
        frame_id: m.frameId,
        capture_time_us: m.captureTimeUs,
        status: m.status,
        top_k: m.topK.map((p) => ({ label: p.label, index: p.index, score: jsonFloat(p.score) })),
        timings_ms: Object.fromEntries(Object.entries(m.timingsMs).map(([k, v]) => [k, jsonFloat(v)])),
        pose: m.pose === null ? null : { position: m.pose.position.map(jsonFloat), rotation: m.pose.rotation.map(jsonFloat) },
        gaze: m.gaze === null ? null : m.gaze.map(jsonFloat),
        model_version: m.modelVersion,
      };
      if (m.error !== null) out.error = { code: m.error.code, message: m.error.message };
      return out;
    }
    case "error":
      return { type: "error", code: m.code, message: m.message, frame_id: m.frameId, fatal: m.fatal };
    case "pong":
      return { type: "pong", id: m.id, client_time_us: m.clientTimeUs, server_time_us: m.serverTimeUs };
    case "configured":
      return { type: "configured", session: sessionToJson(m.session) };
    case "model_changed":
      return { type: "model_changed", model: modelToJson(m.model) };
    default:
      throw new TypeError(`not a server message: ${m.type}`);
  }
}

export { INTEGER_KEYS, JsonError, jsonFloat, parseJson, writeJson };
