// The codec (src/protocol.js, src/json.js) against every golden vector in tests/vectors, run with
// `node --test` (tests/test_web_client.py drives it; VR_VECTORS names the folder). Each vector file is
// one test named vector_<stem>, dispatched on its "kind"; gaze_crop_rect.json (a list of cases) is
// checked when present. Plus units: the JSON reader and writer, the slot, the backoff, the close policy.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

import { Backoff } from "../src/backoff.js";
import { formatFloat, jsonEquals, parseJson, writeJson } from "../src/json.js";
import { LatestFrameSlot } from "../src/latest-frame-slot.js";
import {
  CloseCodes,
  ProtocolError,
  clientMessageToJson,
  decodeClientMessage,
  decodeFrame,
  decodeServerMessage,
  encodeClientMessage,
  encodeFrame,
  gazeCropRect,
  negotiateVersion,
  serverMessageToJson,
} from "../src/protocol.js";

const here = path.dirname(fileURLToPath(import.meta.url));
const VECTORS = process.env.VR_VECTORS ?? path.resolve(here, "../../tests/vectors");

function expectError(fn, code, frameId) {
  try {
    fn();
  } catch (error) {
    assert.ok(error instanceof ProtocolError, `not a ProtocolError: ${error}`);
    assert.equal(error.code, code);
    if (frameId !== undefined) assert.equal(error.frameId, frameId);
    return;
  }
  assert.fail(`decoded without error, expected ${code}`);
}

function frameVector(spec, data) {
  if ("error" in spec) return expectError(() => decodeFrame(data), spec.error, spec.frame_id);
  const frame = decodeFrame(data);
  const want = spec.expect;
  const f32 = (v) => Math.fround(v);
  assert.equal(frame.frameId, want.frame_id);
  assert.equal(frame.captureTimeUs, want.capture_time_us);
  assert.equal(frame.format, want.image_format);
  assert.equal(frame.width, want.width);
  assert.equal(frame.height, want.height);
  assert.equal(frame.headerLen, want.header_len);
  assert.equal(frame.payload.length, want.payload_len);
  assert.equal(createHash("sha256").update(frame.payload).digest("hex"), want.payload_sha256);
  assert.equal(frame.rowsBottomUp, want.rows_bottom_up);
  assert.deepEqual(frame.pose, want.pose && { position: want.pose.position.map(f32), rotation: want.pose.rotation.map(f32) });
  assert.deepEqual(frame.gaze, want.gaze && want.gaze.map(f32));
  if (spec.encodes_back) assert.deepEqual(Buffer.from(encodeFrame(frame)), Buffer.from(data));
}

function textVector(kind, spec, data) {
  const decode = kind === "client" ? decodeClientMessage : decodeServerMessage;
  if ("error" in spec) return expectError(() => decode(data), spec.error);
  const message = decode(data);
  const json = kind === "client" ? clientMessageToJson(message) : serverMessageToJson(message);
  assert.ok(jsonEquals(json, spec.expect), `decoded ${writeJson(json)} != expected ${JSON.stringify(spec.expect)}`);
  if (spec.encodes_back) assert.equal(writeJson(json), data.toString("utf8"));
  if ("negotiation" in spec) expectError(() => negotiateVersion(message), spec.negotiation);
}

function gazeCropCases(cases) {
  assert.ok(Array.isArray(cases) && cases.length >= 10, "at least 10 gaze crop cases");
  for (const c of cases) {
    const rect = gazeCropRect(c.width, c.height, c.u, c.v, c.scale);
    assert.deepEqual(rect, c.rect, JSON.stringify(c));
    const [left, top, side] = rect;
    assert.ok(left >= 0 && left + side <= c.width && top >= 0 && top + side <= c.height);
  }
}

const counts = { frame: 0, client: 0, server: 0 };
const names = readdirSync(VECTORS)
  .filter((name) => name.endsWith(".json"))
  .sort();
for (const name of names) {
  const stem = name.slice(0, -".json".length);
  test(`vector_${stem}`, () => {
    const spec = JSON.parse(readFileSync(path.join(VECTORS, name), "utf8"));
    if (Array.isArray(spec)) {
      assert.equal(stem, "gaze_crop_rect", "unknown list-shaped vector file");
      return gazeCropCases(spec);
    }
    assert.ok(spec.kind in counts, `unknown vector kind ${spec.kind}`);
    counts[spec.kind] += 1;
    const data = readFileSync(path.join(VECTORS, `${stem}${spec.kind === "frame" ? ".bin" : ".txt"}`));
    return spec.kind === "frame" ? frameVector(spec, new Uint8Array(data)) : textVector(spec.kind, spec, data);
  });
}

test("vector_set_complete", () => {
  assert.ok(counts.frame >= 15, `frame vectors: ${counts.frame}`);
  assert.ok(counts.client >= 10, `client vectors: ${counts.client}`);
  assert.ok(counts.server >= 8, `server vectors: ${counts.server}`);
  if (existsSync(path.join(VECTORS, "gaze_crop_rect.json"))) assert.ok(names.includes("gaze_crop_rect.json"));
});

test("json_number_format", () => {
  const cases = [
    [90, "90.0"], [11.1, "11.1"], [8.3, "8.3"], [0.912345, "0.912345"], [1e-5, "1e-05"], [0.0001, "0.0001"],
    [1e16, "1e+16"], [1234567890123456, "1234567890123456.0"], [1.5e300, "1.5e+300"], [-2.25, "-2.25"],
    [0.1 + 0.2, "0.30000000000000004"], [0, "0.0"], [-0, "-0.0"], [123.456e-10, "1.23456e-08"], [5e-324, "5e-324"],
  ];
  for (const [value, text] of cases) assert.equal(formatFloat(value), text);
  assert.equal(writeJson({ a: 'x"y\n\u0001é', b: [1, 2.5, null, true] }), '{"a":"x\\"y\\n\\u0001é","b":[1,2.5,null,true]}');
});

test("json_reader_strict", () => {
  const bad = ['{"a":NaN}', '{"a":1,}', "[01]", "{'a':1}", '{"a":1} x', '"\t"', '{"a":"\\ud800"}', '{"a":"\\udc00"}',
    '{"a":"\\ud800\\u0041"}', "[1.]", "[-]", "[.5]", "[1e]", '"\\x"', "", "\ufeff{}", "[" .repeat(33) + "]".repeat(33)];
  for (const text of bad) assert.throws(() => parseJson(text), undefined, text);
  assert.throws(() => parseJson(new Uint8Array([0x22, 0xff, 0x22])), /UTF-8/);
  assert.doesNotThrow(() => parseJson("[".repeat(32) + "]".repeat(32)));
  assert.throws(() => parseJson("[".repeat(100000)), /nesting/);
  const v = parseJson('{"s":"\\u00e9\\ud83d\\ude00","__proto__":{"x":1},"n":1e400}');
  assert.equal(v.s, "é😀");
  assert.equal(Object.getPrototypeOf(v), Object.prototype, "__proto__ is data");
  assert.deepEqual(Object.keys(v), ["s", "__proto__", "n"]);
  assert.equal(v.n, Infinity, "1e400 overflows to infinity, as in Python");
  expectError(() => decodeClientMessage('{"type":"hello","protocol":1,"top_k":2.0}'), "invalid_message");
  expectError(() => decodeClientMessage('{"type":"hello","protocol":1.0}'), "invalid_message");
  expectError(() => decodeClientMessage(" ".repeat(70000)), "message_too_large");
});

test("settings_v1_1", () => {
  const text = encodeClientMessage({ type: "configure", settings: { topK: 3, reset: new Set(["smoothing", "gaze_crop"]) } });
  assert.equal(text, '{"type":"configure","top_k":3,"smoothing":null,"gaze_crop":null}');
  assert.equal(decodeClientMessage('{"type":"hello","protocol":1,"top_k":100000}').settings.topK, 100000);
  const noCommon = decodeClientMessage('{"type":"hello","protocol":1,"min_protocol":2}');
  expectError(() => negotiateVersion(noCommon), "unsupported_version");
  assert.equal(negotiateVersion(decodeClientMessage('{"type":"hello","protocol":2,"min_protocol":1}')), 1);
});

test("frame_encode_rejects_bad_fields", () => {
  const base = { frameId: 7, captureTimeUs: 1000, format: "rgb8", width: 2, height: 1, payload: new Uint8Array(6) };
  for (const [what, change] of [
    ["a wrong raw size", { width: 3 }],
    ["gaze outside [0, 1]", { gaze: [1.5, 0] }],
    ["a NaN gaze", { gaze: [NaN, 0] }],
    ["capture time 2^53", { captureTimeUs: 2 ** 53 }],
    ["a NaN pose", { pose: { position: [NaN, 0, 0], rotation: [0, 0, 0, 1] } }],
    ["an empty payload", { payload: new Uint8Array(0) }],
  ])
    assert.throws(() => encodeFrame({ ...base, ...change }), RangeError, what);
  assert.equal(decodeFrame(encodeFrame({ ...base, rowsBottomUp: true })).rowsBottomUp, true);
});

test("latest_frame_slot", () => {
  const slot = new LatestFrameSlot();
  assert.equal(slot.offer("a"), null);
  assert.equal(slot.offer("b"), "a");
  assert.equal(slot.offer("c"), "b");
  assert.equal(slot.replaced, 2);
  assert.equal(slot.take(), "c");
  assert.equal(slot.take(), null);
  assert.equal(slot.taken, 1);
});

test("backoff_grows_and_caps", () => {
  const backoff = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0 });
  assert.deepEqual([1, 2, 4, 50].map((n) => backoff.delayMs(n)), [100, 200, 800, 1000]);
  assert.equal(backoff.delayMs(0), 0);
  const jittered = new Backoff({ initialMs: 100, maxMs: 1000, jitter: 0.2 });
  const draws = Array.from({ length: 200 }, () => jittered.delayMs(2));
  assert.ok(draws.every((ms) => ms >= 160 && ms <= 240));
  assert.ok(Math.max(...draws) - Math.min(...draws) > 20, "the jitter varies");
});

test("close_code_policy", () => {
  for (const code of CloseCodes.SENT_BY_SERVER) {
    assert.ok(CloseCodes.reasons(code).length > 0);
    assert.equal(CloseCodes.reconnects(code), code !== 1002);
  }
  assert.ok(CloseCodes.reconnects(null));
  assert.ok(CloseCodes.isClientFault(1008, "hello_required") && !CloseCodes.isClientFault(1008, "slow_consumer"));
  assert.equal(CloseCodes.TRY_AGAIN_LATER, 4013);
});
