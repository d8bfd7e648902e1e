"""Sending on time: sleep until shortly before a frame's scheduled time, then spin the rest.

`asyncio.sleep` wakes late: the event loop's selector waits in whole milliseconds (rounded up) and
the process must then be scheduled, so a plain sleep sends ~1 ms after the schedule on a typical
machine. That lag is the load generator's, not the server's, yet it lands in every latency measured
from the scheduled time. So the pacer sleeps until `margin` before the deadline and then yields to
the event loop (`asyncio.sleep(0)`, so receivers keep running) until the clock reaches the deadline.

The margin adapts: it is a high percentile of how late the coarse sleeps recently woke, so the spin
covers the loop's real lateness and little more. Spinning costs CPU only for `margin - lateness`
per frame, a fraction of a millisecond; `spin_ms` in the report says how much.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

MIN_MARGIN_S = 0.0003
MAX_MARGIN_S = 0.002
START_MARGIN_S = 0.0015
WINDOW = 64  # recent coarse-sleep overshoots the margin is taken from
QUANTILE = 0.75  # of those overshoots: the margin covers this share of coarse wakes


class Pacer:
    """One per load generator (shared by its streams): `await pacer.sleep_until(t)`."""

    def __init__(self, precise: bool = True) -> None:
        self.precise = precise
        self.margin_s = START_MARGIN_S
        self._overshoots: deque[float] = deque(maxlen=WINDOW)
        self.spin_s = 0.0  # total time spent spinning
        self.wakes = 0

    async def sleep_until(self, deadline: float) -> None:
        """Return as soon after time.monotonic() reaches `deadline` as the loop allows."""
        now = time.monotonic()
        if not self.precise:
            if deadline > now:
                await asyncio.sleep(deadline - now)
            return
        coarse = deadline - self.margin_s
        if coarse > now:
            await asyncio.sleep(coarse - now)
            woke = time.monotonic()
            self._learn(woke - coarse)
        else:
            woke = now
        spin_from = woke
        while woke < deadline:
            await asyncio.sleep(0)  # other tasks (answers arriving) run while we wait
            woke = time.monotonic()
        self.spin_s += woke - spin_from
        self.wakes += 1

    def _learn(self, overshoot: float) -> None:
        self._overshoots.append(max(0.0, overshoot))
        if len(self._overshoots) >= 8:
            ordered = sorted(self._overshoots)
            high = ordered[min(len(ordered) - 1, int(QUANTILE * len(ordered)))]
            self.margin_s = min(MAX_MARGIN_S, max(MIN_MARGIN_S, high + 0.0002))

    def info(self) -> dict:
        """How the generator kept its schedule: the report's `config.pacing`."""
        return {
            "mode": "sleep+spin" if self.precise else "sleep",
            "margin_ms": round(self.margin_s * 1000.0, 3),
            "spin_ms_per_send": round(self.spin_s * 1000.0 / self.wakes, 3) if self.wakes else None,
        }
