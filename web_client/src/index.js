// vr-recognition web client: stream a canvas or camera to vr-serve from a browser (docs/web.md).
export { Backoff } from "./backoff.js";
export { FrameCapture } from "./capture.js";
export { CLIENT_VERSION, RecognitionClient, nowUs, urlWithToken } from "./client.js";
export { LatestFrameSlot } from "./latest-frame-slot.js";
export * from "./protocol.js";
