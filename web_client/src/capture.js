// FrameCapture: turns what a page shows into frames for a RecognitionClient. A capture takes an
// ImageBitmap of the source (a canvas, an OffscreenCanvas, a <video> with a camera track, an ImageBitmap,
// a VideoFrame, or RGBA pixels read back from WebGL), scaled to the capture size, on the main thread
// (cheap: a GPU copy), and hands it to a worker that JPEG-encodes it with OffscreenCanvas; the bytes
// go to the client's latest-frame-wins slot with the pose and gaze given at capture time.
import { nowUs } from "./client.js";

export class FrameCapture {
  /**
   * @param {import("./client.js").RecognitionClient} client
   * @param {object} [options]
   * @param {number} [options.width] capture size: the server resizes to the model input anyway, so send
   *   little more than that (448 x 252 for a 224 model)
   * @param {number} [options.quality] JPEG quality, 0..1
   * @param {number} [options.maxEncodesInFlight] more pending encodes skip the capture
   * @param {boolean} [options.skipWhenClientBusy] skip when the client would only replace its waiting frame
   */
  constructor(client, { width = 448, height = 252, quality = 0.8, maxEncodesInFlight = 2, skipWhenClientBusy = true, workerUrl } = {}) {
    Object.assign(this, { client, width, height, quality, maxEncodesInFlight, skipWhenClientBusy });
    this.worker = new Worker(workerUrl ?? new URL("./jpeg-worker.js", import.meta.url));
    this.worker.onmessage = (event) => this._encoded(event.data);
    this.stats = { captures: 0, skipped: 0, encoded: 0, failed: 0 };
    this._pending = new Map();
    this._nextId = 0;
    this._loop = null;
  }

  get encodesInFlight() {
    return this._pending.size;
  }

  /**
   * Captures one frame. Resolves to true when the frame was handed to the client, false when skipped
   * (not connected, encoder busy, client saturated) or refused.
   * @param {CanvasImageSource|ImageBitmap|VideoFrame} source
   * @param {object} [meta] {pose: {position: [x, y, z], rotation: [x, y, z, w]}, gaze: [u, v], userState}
   */
  async capture(source, { pose = null, gaze = null, userState, imageOrientation = "from-image" } = {}) {
    if (!this.client.isConnected || this._pending.size >= this.maxEncodesInFlight || (this.skipWhenClientBusy && this.client.isSaturated)) {
      this.stats.skipped += 1;
      return false;
    }
    this.stats.captures += 1;
    const captureTimeUs = nowUs();
    const id = this._nextId++;
    const done = new Promise((resolve) => this._pending.set(id, { resolve, pose, gaze, userState, captureTimeUs }));
    try {
      const bitmap = await createImageBitmap(source, {
        resizeWidth: this.width,
        resizeHeight: this.height,
        resizeQuality: "low",
        imageOrientation,
      });
      this.worker.postMessage({ id, bitmap, quality: this.quality }, [bitmap]);
    } catch (error) {
      this._encoded({ id, error: String(error) });
    }
    return done;
  }

  /** Captures RGBA pixels (a WebGL readPixels, whose first row is the bottom one: bottomUp true). */
  capturePixels(rgba, width, height, { bottomUp = false, ...meta } = {}) {
    const image = new ImageData(new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, width * height * 4), width, height);
    return this.capture(image, { ...meta, imageOrientation: bottomUp ? "flipY" : "from-image" });
  }

  /** Captures `source` every 1/fps s until stop(); `meta()` gives each capture's pose and gaze. */
  start(source, { fps = 30, meta = () => ({}) } = {}) {
    this.stop();
    this._loop = setInterval(() => this.capture(source, meta()), 1000 / fps);
  }

  stop() {
    clearInterval(this._loop);
    this._loop = null;
  }

  close() {
    this.stop();
    this.worker.terminate();
    for (const pending of this._pending.values()) pending.resolve(false);
    this._pending.clear();
  }

  _encoded({ id, jpeg, width, height, error }) {
    const pending = this._pending.get(id);
    if (!pending) return;
    this._pending.delete(id);
    if (error) {
      this.stats.failed += 1;
      pending.resolve(false);
      return;
    }
    this.stats.encoded += 1;
    const { pose, gaze, userState, captureTimeUs } = pending;
    pending.resolve(this.client.submit({ payload: new Uint8Array(jpeg), width, height, format: "jpeg", pose, gaze, userState, captureTimeUs }));
  }
}
