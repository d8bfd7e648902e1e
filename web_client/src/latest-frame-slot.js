// A one-item mailbox between capture and the send loop: VR wants the newest frame answered, not every
// frame, so a frame not sent yet when a newer one arrives is replaced (and counted), never queued.
// Mirrors LatestFrameSlot of the Unity and Unreal cores (single-threaded here: one event loop).
export class LatestFrameSlot {
  #item = null;
  offered = 0;
  replaced = 0;
  taken = 0;

  /** Puts a frame in the slot; returns the older unsent frame it replaced, or null. */
  offer(frame) {
    const old = this.#item;
    this.#item = frame;
    this.offered += 1;
    if (old !== null) this.replaced += 1;
    return old;
  }

  /** Takes the frame out, or returns null when the slot is empty. */
  take() {
    const frame = this.#item;
    this.#item = null;
    if (frame !== null) this.taken += 1;
    return frame;
  }

  /** Empties the slot without counting the frame as taken; returns it. */
  clear() {
    const frame = this.#item;
    this.#item = null;
    return frame;
  }

  get hasItem() {
    return this.#item !== null;
  }
}
