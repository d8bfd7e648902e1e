// JPEG encoding off the main thread: an ImageBitmap comes in (transferred), is drawn on an
// OffscreenCanvas and encoded with convertToBlob({type: "image/jpeg", quality}); the bytes go back
// (transferred). A classic worker script with no imports, started by FrameCapture.
let canvas = null;
let context = null;

self.onmessage = async (event) => {
  const { id, bitmap, quality } = event.data;
  try {
    if (!canvas || canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
      canvas = new OffscreenCanvas(bitmap.width, bitmap.height);
      context = canvas.getContext("2d", { alpha: false });
    }
    context.drawImage(bitmap, 0, 0);
    bitmap.close();
    const blob = await canvas.convertToBlob({ type: "image/jpeg", quality });
    const jpeg = await blob.arrayBuffer();
    self.postMessage({ id, jpeg, width: canvas.width, height: canvas.height }, [jpeg]);
  } catch (error) {
    self.postMessage({ id, error: String(error) });
  }
};
