// Reconnect delays: exponential from initialMs up to maxMs, with +-jitter so that many clients that lost
// the same server do not all come back in the same millisecond. Mirrors Backoff of the Unity and Unreal cores.
export class Backoff {
  constructor({ initialMs = 500, maxMs = 10000, factor = 2, jitter = 0.2, random = Math.random } = {}) {
    Object.assign(this, { initialMs, maxMs, factor, jitter, random });
  }

  /** The delay before reconnect attempt number `failures` (1 = after the first failure). */
  delayMs(failures) {
    if (failures < 1) return 0;
    const ms = Math.min(this.initialMs * this.factor ** Math.min(failures - 1, 30), this.maxMs);
    return Math.max(0, ms * (1 + (this.random() * 2 - 1) * this.jitter));
  }
}
