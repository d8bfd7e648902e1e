// RecognitionClient: one WebSocket stream to vr-serve from a browser (docs/protocol.md, docs/web.md).
// It sends the hello, keeps a latest-frame-wins slot and an in-flight cap (a frame goes out only while
// fewer than maxInFlight are unanswered and the socket has nothing left to write; a newer frame replaces
// the waiting one), paces frames to targetFps, turns replies into events, and reconnects with jittered
// backoff after every close but 1002 (no common version). The same decisions as the Unity and Unreal
// cores, on the browser's WebSocket.
//
// Events (EventTarget; each event's `detail`): "connected" (the server hello), "result" ({result,
// userState, roundTripMs, latencyMs}), "disconnected" (how it ended: {closeCode, closeReason,
// fatalError, description, wasConnected, willReconnect, reconnectDelayMs}), "servererror" (an error
// message, or a frame refused here), "pong" ({roundTripMs}), "configured" (the session),
// "modelchanged" (the model).
import { Backoff } from "./backoff.js";
import { LatestFrameSlot } from "./latest-frame-slot.js";
import {
  CloseCodes,
  ErrorCodes,
  HEADER_SIZE,
  Status,
  checkSize,
  decodeServerMessage,
  encodeClientMessage,
  encodeFrame,
} from "./protocol.js";

export const CLIENT_VERSION = "0.1.0";

/** Microseconds on a monotonic clock: the capture_time_us stamped on frames (latency = now - echo). */
export const nowUs = () => Math.round(performance.now() * 1000);

/** The URL with the token as a percent-encoded ?token= (browsers cannot send an Authorization header). */
export function urlWithToken(url, token) {
  if (!token) return url;
  return `${url}${url.includes("?") ? "&" : "?"}token=${encodeURIComponent(token)}`;
}

export class RecognitionClient extends EventTarget {
  /**
   * @param {object} options
   * @param {string} options.url ws://host:port/ or wss://host:port/
   * @param {string} [options.token] sent as ?token= (use wss://: a query leaks into logs)
   * @param {object} [options.settings] {topK, budgetMs, fps, smoothingEmaAlpha, gazeCropScale} asked in hello
   * @param {number} [options.targetFps] most frames sent per second; 0 = only maxInFlight limits
   * @param {number} [options.maxInFlight] frames sent but not answered yet
   * @param {object} [options.backoff] {initialMs, maxMs, factor, jitter}
   */
  constructor({
    url,
    token = "",
    clientName = "web-client",
    clientVersion = CLIENT_VERSION,
    settings = {},
    targetFps = 30,
    maxInFlight = 2,
    inFlightTimeoutMs = 5000,
    reconnect = true,
    backoff = {},
    protocol = 1,
    minProtocol = null,
    WebSocketImpl = globalThis.WebSocket,
  }) {
    super();
    if (maxInFlight < 1) throw new RangeError("maxInFlight must be at least 1");
    Object.assign(this, { url, token, clientName, clientVersion, settings, targetFps, maxInFlight, inFlightTimeoutMs });
    Object.assign(this, { reconnect, protocol, minProtocol, WebSocketImpl });
    this.backoff = backoff instanceof Backoff ? backoff : new Backoff(backoff);
    this.state = "idle"; // idle, connecting, awaiting-hello, connected, disconnected, stopped
    this.hello = null;
    this.model = null;
    this.session = null;
    this.lastDisconnect = null;
    this.stats = {
      framesSubmitted: 0, framesDiscardedOffline: 0, framesSent: 0, resultsReceived: 0, resultsOk: 0,
      resultsDroppedStale: 0, resultsLate: 0, resultsError: 0, framesLost: 0, maxInFlightSeen: 0,
      connectAttempts: 0, connections: 0, lastRoundTripMs: NaN, lastLatencyMs: NaN,
    }; // prettier-ignore
    this._slot = new LatestFrameSlot();
    this._inFlight = new Map(); // frame id -> {sentUs, userState}
    this._pings = new Map();
    this._ws = null;
    this._failures = 0;
    this._nextFrameId = 0;
    this._nextPingId = 0;
    this._nextSendUs = 0;
    this._timer = null;
    this._reconnectTimer = null;
    this._stopped = false;
  }

  /** Frames replaced in the slot by a newer one before being sent: dropped here, by design. */
  get framesReplaced() {
    return this._slot.replaced;
  }

  get inFlight() {
    return this._inFlight.size;
  }

  get isConnected() {
    return this.state === "connected";
  }

  /** A frame submitted now would only replace the waiting one: capture code can skip its work. */
  get isSaturated() {
    return this._slot.hasItem && this._inFlight.size >= this.maxInFlight;
  }

  get hasPendingFrame() {
    return this._slot.hasItem;
  }

  start() {
    if (this.state !== "idle") return;
    this._stopped = false;
    this._connect();
  }

  /** Closes the stream (1000) and stops reconnecting. */
  stop() {
    this._stopped = true;
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._timer);
    this._slot.clear();
    if (this._ws && this._ws.readyState <= 1) this._ws.close(CloseCodes.NORMAL);
    else this.state = "stopped";
  }

  /**
   * Hands a frame to the send slot; a frame not sent yet is replaced, never queued. Returns false when
   * discarded because the stream is not open.
   * @param {object} frame {payload: Uint8Array|ArrayBuffer (JPEG normally), width, height, format,
   *   pose: {position: [x, y, z], rotation: [x, y, z, w]}, gaze: [u, v] (top-left origin),
   *   captureTimeUs (nowUs() when captured; default now), userState (returned with the result)}
   */
  submit(frame) {
    this.stats.framesSubmitted += 1;
    if (!this.isConnected) {
      this.stats.framesDiscardedOffline += 1;
      return false;
    }
    this._slot.offer({ ...frame, captureTimeUs: frame.captureTimeUs ?? nowUs() });
    this._pump();
    return true;
  }

  /** Changes settings mid-stream; a key named in settings.reset (a Set) returns to the server's default. */
  configure(settings) {
    this._sendText(encodeClientMessage({ type: "configure", settings }));
  }

  /** An application-level round trip; the "pong" event reports it. */
  ping() {
    const id = ++this._nextPingId;
    this._pings.set(id, performance.now());
    this._sendText(encodeClientMessage({ type: "ping", id, clientTimeUs: nowUs() }));
  }

  // --- internals -------------------------------------------------------------------------------------

  _emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  _sendText(text) {
    if (this._ws && this._ws.readyState === 1) this._ws.send(text);
  }

  _connect() {
    if (this._stopped) return;
    this.state = "connecting";
    this.stats.connectAttempts += 1;
    const ending = { fatalError: null, wasConnected: false };
    let ws;
    try {
      ws = new this.WebSocketImpl(urlWithToken(this.url, this.token));
    } catch (error) {
      this._ended(ending, null, "", String(error));
      return;
    }
    ws.binaryType = "arraybuffer";
    this._ws = ws;
    ws.onopen = () => {
      this.state = "awaiting-hello";
      ws.send(
        encodeClientMessage({
          type: "hello",
          protocol: this.protocol,
          minProtocol: this.minProtocol,
          clientName: this.clientName,
          clientVersion: this.clientVersion,
          settings: this.settings,
        }),
      );
    };
    ws.onmessage = (event) => {
      if (typeof event.data !== "string") return; // the server sends no binary messages
      let message;
      try {
        message = decodeServerMessage(event.data);
      } catch (error) {
        this._emit("servererror", { code: error.code ?? ErrorCodes.BAD_JSON, message: `unreadable server message: ${error.message}`, fatal: false });
        return;
      }
      this._handle(message, ending);
    };
    ws.onclose = (event) => {
      // 1005 (no status) and 1006 (abnormal) never travel on the wire: no close frame was received.
      const code = event.code === 1005 || event.code === 1006 ? null : event.code;
      this._ended(ending, code, event.reason ?? "", code === null ? "connection failed or lost" : "");
    };
  }

  _handle(message, ending) {
    switch (message.type) {
      case "hello":
        if (this.state !== "awaiting-hello") return;
        this.hello = message;
        this.model = message.model;
        this.session = message.session;
        ending.wasConnected = true;
        this._slot.clear();
        this._nextSendUs = 0;
        this.stats.connections += 1;
        this.state = "connected";
        this._emit("connected", message);
        this._pump();
        return;
      case "result":
        this._result(message);
        return;
      case "error":
        if (message.fatal) ending.fatalError = message;
        this._emit("servererror", message);
        return;
      case "pong": {
        const sent = this._pings.get(message.id);
        if (sent === undefined) return;
        this._pings.delete(message.id);
        this._emit("pong", { roundTripMs: performance.now() - sent });
        return;
      }
      case "configured":
        this.session = message.session;
        this._emit("configured", message.session);
        return;
      case "model_changed":
        this.model = message.model;
        this._emit("modelchanged", message.model);
        return;
    }
  }

  _result(result) {
    const entry = this._inFlight.get(result.frameId);
    this._inFlight.delete(result.frameId);
    const now = nowUs();
    const s = this.stats;
    s.resultsReceived += 1;
    if (result.status === Status.OK) s.resultsOk += 1;
    else if (result.status === Status.DROPPED_STALE) s.resultsDroppedStale += 1;
    else if (result.status === Status.LATE) s.resultsLate += 1;
    else s.resultsError += 1;
    const roundTripMs = entry ? (now - entry.sentUs) / 1000 : NaN;
    const latencyMs = (now - result.captureTimeUs) / 1000;
    if (entry) s.lastRoundTripMs = roundTripMs;
    s.lastLatencyMs = latencyMs;
    this._emit("result", { result, userState: entry?.userState, roundTripMs, latencyMs });
    this._pump(); // a place in the in-flight window opened
  }

  /** Sends the waiting frame if the in-flight cap, the pacing and the socket allow; else re-checks later. */
  _pump() {
    clearTimeout(this._timer);
    this._timer = null;
    const ws = this._ws;
    if (!this.isConnected || !ws || ws.readyState !== 1 || !this._slot.hasItem) return;
    const now = nowUs();
    this._expire(now);
    if (this._inFlight.size >= this.maxInFlight) {
      if (this._inFlight.size > 0) this._timer = setTimeout(() => this._pump(), 100); // in-flight timeout check
      return;
    }
    const intervalUs = this.targetFps > 0 ? 1e6 / this.targetFps : 0;
    if (ws.bufferedAmount > 0 || now < this._nextSendUs) {
      // the socket is still writing, or pacing: nothing queues behind it; the slot keeps the newest frame
      const waitMs = ws.bufferedAmount > 0 ? 2 : Math.max(1, (this._nextSendUs - now) / 1000);
      this._timer = setTimeout(() => this._pump(), waitMs);
      return;
    }
    const frame = this._slot.take();
    const total = HEADER_SIZE + (frame.payload.byteLength ?? frame.payload.length);
    const limits = this.hello?.limits;
    const problem =
      limits && total > limits.maxMessageBytes
        ? `${total} bytes, over the server's limits.max_message_bytes ${limits.maxMessageBytes}`
        : limits && checkSize(limits, frame.width, frame.height);
    let bytes = null;
    if (!problem) {
      try {
        bytes = encodeFrame({ ...frame, frameId: this._nextFrameId });
      } catch (error) {
        this._emit("servererror", { code: ErrorCodes.INVALID_MESSAGE, message: `frame not sent: ${error.message}`, fatal: false });
        return;
      }
    } else {
      const code = total > (limits?.maxMessageBytes ?? Infinity) ? ErrorCodes.MESSAGE_TOO_LARGE : ErrorCodes.IMAGE_TOO_LARGE;
      this._emit("servererror", { code, message: `frame not sent: ${problem}`, fatal: false });
      return;
    }
    const id = this._nextFrameId;
    this._nextFrameId = (this._nextFrameId + 1) % 2 ** 32;
    this._inFlight.set(id, { sentUs: now, userState: frame.userState });
    this.stats.maxInFlightSeen = Math.max(this.stats.maxInFlightSeen, this._inFlight.size);
    // Token bucket of one frame: a late send may be followed a little early; the average stays at targetFps.
    if (intervalUs > 0) this._nextSendUs = Math.max(this._nextSendUs, now - intervalUs) + intervalUs;
    ws.send(bytes);
    this.stats.framesSent += 1;
  }

  _expire(now) {
    if (this._inFlight.size < this.maxInFlight) return;
    for (const [id, entry] of this._inFlight) {
      if (now - entry.sentUs > this.inFlightTimeoutMs * 1000) {
        this._inFlight.delete(id);
        this.stats.framesLost += 1;
      }
    }
  }

  _ended(ending, closeCode, closeReason, why) {
    if (this._ws) this._ws.onopen = this._ws.onmessage = this._ws.onclose = null;
    this._ws = null;
    clearTimeout(this._timer);
    this.stats.framesLost += this._inFlight.size;
    this._inFlight.clear();
    this._pings.clear();
    this._slot.clear();
    const info = {
      closeCode,
      closeReason,
      fatalError: ending.fatalError,
      wasConnected: ending.wasConnected,
      stopped: this._stopped,
      willReconnect: false,
      reconnectDelayMs: 0,
      description: "",
    };
    info.description = this._stopped
      ? "stopped"
      : closeCode !== null
        ? `server closed: ${closeCode}${closeReason ? ` ${closeReason}` : ""}`
        : why;
    if (info.fatalError && !this._stopped)
      info.description = `refused: ${info.fatalError.code}: ${info.fatalError.message} (${info.description})`;
    const versionRefused = info.fatalError?.code === ErrorCodes.UNSUPPORTED_VERSION;
    info.willReconnect = !this._stopped && this.reconnect && CloseCodes.reconnects(closeCode) && !versionRefused;
    if (info.willReconnect) {
      // A stream that was open starts the backoff again, unless it ended for something this client did
      // wrong: then the delay keeps growing, so a repeating fault cannot loop fast.
      this._failures = info.wasConnected && !CloseCodes.isClientFault(closeCode, closeReason) ? 1 : this._failures + 1;
      info.reconnectDelayMs = this.backoff.delayMs(this._failures);
      this.state = "disconnected";
      this._reconnectTimer = setTimeout(() => this._connect(), info.reconnectDelayMs);
    } else {
      this.state = "stopped";
    }
    this.lastDisconnect = info;
    this._emit("disconnected", info);
  }
}
