// Scenarios the pytest side runs in a real browser against real vr-serve processes. Each returns plain
// data (counters, labels, how connections ended); the assertions are in tests/test_web_client.py. The
// frames are a painted canvas: solid red, green or blue, which the test server's colour model names.
import { FrameCapture, RecognitionClient, decodeServerMessage, encodeClientMessage, encodeFrame, urlWithToken } from "../../src/index.js";

const canvas = document.getElementById("view");
const context = canvas.getContext("2d");
const COLOURS = { red: "#ff0000", green: "#00ff00", blue: "#0000ff" };

function paint(colour) {
  context.fillStyle = COLOURS[colour];
  context.fillRect(0, 0, canvas.width, canvas.height);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(ready, what, timeoutMs = 30000) {
  const deadline = performance.now() + timeoutMs;
  while (!ready()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A client whose events are recorded. */
function watched(options) {
  const client = new RecognitionClient(options);
  const log = { connected: [], results: [], disconnected: [], errors: [], pongs: [], configured: [] };
  client.addEventListener("connected", (e) => log.connected.push(e.detail));
  client.addEventListener("result", (e) => log.results.push(e.detail));
  client.addEventListener("disconnected", (e) => log.disconnected.push(e.detail));
  client.addEventListener("servererror", (e) => log.errors.push(e.detail));
  client.addEventListener("pong", (e) => log.pongs.push(e.detail));
  client.addEventListener("configured", (e) => log.configured.push(e.detail));
  return { client, log };
}

const summary = (r) => ({
  status: r.result.status,
  labels: r.result.topK.map((p) => p.label),
  pose: r.result.pose,
  gaze: r.result.gaze,
  userState: r.userState ?? null,
  latencyMs: r.latencyMs,
  roundTripMs: r.roundTripMs,
  serverTotalMs: r.result.timingsMs.total ?? null,
});

const ended = (d) => ({
  closeCode: d.closeCode,
  closeReason: d.closeReason,
  fatalError: d.fatalError?.code ?? null,
  wasConnected: d.wasConnected,
  willReconnect: d.willReconnect,
  reconnectDelayMs: d.reconnectDelayMs,
  description: d.description,
});

/** Colours in, labels out; the hello, the pose and gaze echo, ping, configure (with a v1.1 null). */
async function colours({ url, token }) {
  const { client, log } = watched({ url, token, clientName: "web-client-tests", targetFps: 60, maxInFlight: 1,
    settings: { topK: 2, budgetMs: 2000, fps: 60 } }); // prettier-ignore
  const capture = new FrameCapture(client, { width: 64, height: 48, quality: 0.9 });
  client.start();
  await waitFor(() => log.connected.length === 1, "the server hello");
  const pose = { position: [1.5, 1.625, -2.25], rotation: [0, 0.38268343, 0, 0.9238795] };
  const frames = [];
  for (const colour of ["red", "green", "blue", "red"]) {
    paint(colour);
    const before = log.results.length;
    const accepted = await capture.capture(canvas, { pose, gaze: [0.25, 0.75], userState: colour });
    if (!accepted) throw new Error(`the ${colour} frame was not accepted`);
    await waitFor(() => log.results.length > before, `the result for ${colour}`);
    frames.push({ colour, ...summary(log.results.at(-1)) });
  }
  client.ping();
  await waitFor(() => log.pongs.length === 1, "the pong");
  client.configure({ budgetMs: 1500, smoothingEmaAlpha: 0.5 });
  await waitFor(() => log.configured.length === 1, "configured");
  client.configure({ reset: new Set(["smoothing"]) }); // v1.1: null = back to the server's default (off)
  await waitFor(() => log.configured.length === 2, "configured again");
  const stats = { ...client.stats, framesReplaced: client.framesReplaced };
  client.stop();
  await waitFor(() => log.disconnected.length === 1, "the close");
  capture.close();
  const hello = log.connected[0];
  return {
    hello: { classes: hello.model.classes, mapping: hello.model.mapping, topK: hello.session.topK,
      budgetMs: hello.session.budgetMs, maxMessageBytes: hello.limits.maxMessageBytes }, // prettier-ignore
    frames,
    pongMs: log.pongs[0].roundTripMs,
    configured: log.configured.map((s) => ({ budgetMs: s.budgetMs, smoothing: s.smoothingEmaAlpha })),
    stats,
    captureStats: capture.stats,
    disconnects: log.disconnected.map(ended),
    state: client.state,
    errors: log.errors,
  };
}

/** Frames as fast as the page can make them against a slow server: the client must drop stale ones itself. */
async function slow({ url, seconds = 2.5 }) {
  const { client, log } = watched({ url, clientName: "web-client-slow", targetFps: 0, maxInFlight: 2,
    settings: { budgetMs: 30000 } }); // prettier-ignore
  const capture = new FrameCapture(client, { width: 64, height: 48, skipWhenClientBusy: false, maxEncodesInFlight: 2 });
  client.start();
  await waitFor(() => log.connected.length === 1, "the slow server's hello");
  paint("red");
  const until = performance.now() + seconds * 1000;
  while (performance.now() < until) {
    capture.capture(canvas);
    await sleep(2);
  }
  await waitFor(
    () => capture.encodesInFlight === 0 && !client.hasPendingFrame && client.inFlight === 0 && client.stats.resultsReceived >= client.stats.framesSent,
    "the in-flight frames' answers",
  ); // prettier-ignore
  const report = {
    stats: { ...client.stats, framesReplaced: client.framesReplaced },
    captureStats: capture.stats,
    results: log.results.length,
    okLabels: [...new Set(log.results.filter((r) => r.result.status === "ok").map((r) => r.result.topK[0].label))],
    disconnects: log.disconnected.length,
  };
  client.stop();
  capture.close();
  return report;
}

/** A stream that keeps capturing until told to stop: for the server restart. Each result is tagged with
 * the connection (1, 2, ...) it arrived on. */
const stream = {
  start({ url }) {
    const { client, log } = watched({ url, clientName: "web-client-restart", targetFps: 20, maxInFlight: 1,
      backoff: { initialMs: 100, maxMs: 1000, jitter: 0.2 }, settings: { budgetMs: 5000 } }); // prettier-ignore
    const connectionOf = new Map();
    client.addEventListener("result", (e) => connectionOf.set(e.detail, client.stats.connections));
    const capture = new FrameCapture(client, { width: 64, height: 48 });
    paint("green");
    client.start();
    capture.start(canvas, { fps: 20 });
    stream.current = { client, log, capture, connectionOf };
    return true;
  },
  status() {
    const { client, log, connectionOf } = stream.current;
    const ok = log.results.filter((r) => r.result.status === "ok");
    return {
      state: client.state,
      connections: client.stats.connections,
      attempts: client.stats.connectAttempts,
      okByConnection: ok.reduce((counts, r) => {
        const n = connectionOf.get(r);
        counts[n] = (counts[n] ?? 0) + 1;
        return counts;
      }, {}),
      labels: [...new Set(ok.map((r) => r.result.topK[0].label))],
      disconnects: log.disconnected.map(ended),
    };
  },
  stop() {
    stream.current.capture.close();
    stream.current.client.stop();
    return true;
  },
};

/** A bare browser WebSocket (the peer misbehaves on purpose); opened again while the upgrade is refused. */
async function openRaw(url, what) {
  const deadline = performance.now() + 30000;
  for (;;) {
    const ws = new WebSocket(url);
    ws.binaryType = "arraybuffer";
    const peer = { ws, messages: [], close: null, open: false };
    ws.onopen = () => (peer.open = true);
    ws.onmessage = (e) => peer.messages.push(typeof e.data === "string" ? decodeServerMessage(e.data) : null);
    ws.onclose = (e) => (peer.close = { code: e.code, reason: e.reason });
    await waitFor(() => peer.open || peer.close, `the upgrade of ${what}`);
    if (peer.open) return peer;
    if (performance.now() > deadline) throw new Error(`${what}: the upgrade was refused until the deadline`);
    await sleep(100); // a stream slot not freed yet: the server answered 503
  }
}

const helloText = (name) => encodeClientMessage({ type: "hello", protocol: 1, clientName: name, clientVersion: "test" });

function peerClose(peer, who) {
  const fatal = peer.messages.filter((m) => m?.type === "error" && m.fatal);
  return { who, closeCode: peer.close.code, closeReason: peer.close.reason, fatalError: fatal.at(-1)?.code ?? null,
    fatalIsLast: fatal.length === 0 || peer.messages.at(-1) === fatal.at(-1) }; // prettier-ignore
}

/** Every close a browser can provoke, received with its code and reason (1007 needs text that is not
 * UTF-8 and 1008 slow_consumer a peer that stops reading: a page can do neither). 1001 is in the restart. */
async function closes({ fast, token, limits, fault }) {
  const seen = [];
  const quick = { initialMs: 50, maxMs: 400, jitter: 0 };
  const silent = await openRaw(urlWithToken(fast, token), "a socket that never says hello"); // 1008, finished last

  {
    const { client, log } = watched({ url: fast, token, protocol: 1, minProtocol: 2, backoff: quick });
    client.start();
    await waitFor(() => log.disconnected.length === 1 && client.state === "stopped", "the 1002");
    await sleep(200); // it must not try again
    seen.push({ who: "RecognitionClient asking for versions 2..1", ...ended(log.disconnected[0]), attempts: client.stats.connectAttempts });
  }
  {
    const peer = await openRaw(limits, "the oversized sender");
    peer.ws.send(helloText("close-1009"));
    await waitFor(() => peer.messages.length === 1, "its hello");
    const limit = peer.messages[0].limits.maxMessageBytes;
    peer.ws.send(encodeFrame({ frameId: 0, captureTimeUs: 0, format: "jpeg", width: 64, height: 48, payload: new Uint8Array(limit) }));
    await waitFor(() => peer.close, "the 1009");
    seen.push(peerClose(peer, `WebSocket that sent ${limit + 72} bytes`));
  }
  {
    const holder = await openRaw(limits, "the slot holder");
    const late = await openRaw(limits, "the late hello"); // both upgraded while the slot was free
    holder.ws.send(helloText("slot-holder"));
    await waitFor(() => holder.messages.length === 1, "the holder's hello");
    late.ws.send(helloText("close-4013"));
    await waitFor(() => late.close, "the 4013");
    seen.push(peerClose(late, "WebSocket whose hello came after the slot was taken"));
    holder.ws.close(1000);
    await waitFor(() => holder.close, "the holder's close");
  }
  {
    const { client, log } = watched({ url: fault, backoff: quick });
    client.start();
    await waitFor(() => log.connected.length === 1, "the fault server's hello");
    client.ping();
    await waitFor(() => log.disconnected.length === 1, "the 1011");
    await waitFor(() => log.connected.length === 2, "the reconnect after 1011");
    client.stop();
    seen.push({ who: "RecognitionClient whose ping failed the server", ...ended(log.disconnected[0]) });
  }
  await waitFor(() => silent.close, "the 1008 hello_required");
  seen.push(peerClose(silent, "WebSocket that sent no hello"));
  return seen;
}

/** A socket upgraded now whose hello is sent later (release): after the server began to stop, 4013. */
const held = {
  async open({ url }) {
    held.peer = await openRaw(url, "the held hello");
    return true;
  },
  async release() {
    held.peer.ws.send(helloText("close-4013-stopping"));
    await waitFor(() => held.peer.close, "the close of the late hello");
    return peerClose(held.peer, "WebSocket whose hello came after the shutdown began");
  },
};

window.vrTest = { colours, slow, stream, closes, held };
window.vrTestReady = true;
