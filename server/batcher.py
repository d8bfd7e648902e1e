"""Deadline-aware batching across streams, with inference on one worker thread.

Frames from all streams meet here. A batch starts as soon as the inference thread is free (frames
that arrived while it was busy ride together, up to max_batch), and optionally waits `max_wait_s`
for more, but never past the earliest frame's deadline.

Late frames (deadline already passed when the batch starts), policy "skip" (default): while fresh
frames are waiting they go first and the late ones are answered `late` without inference, since
spending the model on them would delay answers that can still be on time. When only late frames
are waiting, they are run: each is its stream's newest frame, and an idle model under overload
would only lower throughput. Policy "infer" runs every frame, earliest deadline first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vr_recognition.server.config import LATE_POLICIES
from vr_recognition.server.errors import ServeError

WAKE_MARGIN_S = 0.003  # timer wake-up jitter allowance
log = logging.getLogger("vr_serve.batcher")


@dataclass(eq=False)  # identity semantics: items are removed from the queue by identity
class BatchItem:
    input: np.ndarray  # uint8 HxWx3, preprocessed for `model`
    deadline: float  # time.perf_counter() seconds
    model: Any  # the model it was preprocessed for; a batch never mixes models
    enqueued: float = field(default_factory=time.perf_counter)
    future: asyncio.Future[BatchOutcome] | None = None
    turn: Turn | None = None  # the turn it was chosen in (late frame choice): given back as its batch starts


class Turn:
    """A place in the next batch, granted by DeadlineBatcher.turn; given back (once) when the frame's
    batch starts, or when no frame is submitted after all."""

    def __init__(self, batcher: DeadlineBatcher) -> None:
        self._batcher: DeadlineBatcher | None = batcher

    def give_back(self) -> None:
        if self._batcher is not None:
            self._batcher._turn_given_back()
            self._batcher = None


@dataclass(frozen=True)
class BatchOutcome:
    probabilities: np.ndarray | None  # None when late
    late: bool
    queue_s: float
    infer_s: float
    batch_size: int


class DeadlineBatcher:
    def __init__(
        self,
        max_batch: int = 8,
        max_wait_s: float = 0.0,
        late_policy: str = "skip",
        on_batch: Callable[[int, float], None] | None = None,
    ) -> None:
        if late_policy not in LATE_POLICIES:
            raise ValueError(f"late policy must be one of {LATE_POLICIES}")
        self.max_batch = max(1, max_batch)
        self.max_wait_s = max(0.0, max_wait_s)
        self.late_policy = late_policy
        self._on_batch = on_batch
        self._queue: deque[BatchItem] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._task: asyncio.Task[None] | None = None
        self._infer_estimate_s = 0.0  # moving average of batch run time, to leave room before deadlines
        self._running_since: float | None = None  # when the batch on the model started
        self._changed = asyncio.Event()  # a batch started or ended, a turn was given back or taken
        self._turn_queue: dict[object, Callable[[], float]] = {}  # callers of turn() -> their priority
        self._granted = 0  # turns granted whose frames have not reached a batch yet
        self._alone: asyncio.Future | None = None  # a frame alone on the model (run_alone), until it is done

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="batcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for item in self._queue:
            if item.future is not None and not item.future.done():
                item.future.cancel()
        self._queue.clear()
        self._executor.shutdown(wait=True)

    async def turn(
        self, lead_s: float, parallel: int = 1, priority: Callable[[], float] | None = None
    ) -> Turn:
        """Wait until a frame whose decoding starts now (taking about `lead_s`, `parallel` decodes at a
        time) would reach the model as it becomes free, not earlier: so the caller picks its stream's
        newest frame as late as possible, and the frames that arrive meanwhile replace older ones
        instead of queueing behind them (issue: "choose the frame late").

        At most max_batch turns are out at once (chosen frames not yet in a batch): one batch is
        prepared while one runs. Callers beyond that wait, and choose their frame for a later batch,
        instead of choosing now and waiting a batch or more with it. Which callers go first: the
        highest `priority()` (read when a place frees up), then the first to ask."""
        me = object()
        self._turn_queue[me] = priority or (lambda: 0.0)
        try:
            while True:
                free = self.max_batch - self._granted
                wait = math.inf
                if free > 0 and self._rank(me) < free:
                    ahead = min(len(self._turn_queue), free)  # frames decoded for the next batch
                    rounds = -(-ahead // max(1, parallel))  # decodes ahead of the last one
                    wait = self._time_until_free() - lead_s * rounds
                    if wait <= 0:
                        self._granted += 1
                        return Turn(self)
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), None if math.isinf(wait) else wait)
        finally:
            del self._turn_queue[me]
            self._changed.set()  # the callers behind move up

    def _rank(self, me: object) -> int:
        """How many waiting callers go before `me`: higher priority, or equal and asked earlier."""
        mine, rank, earlier = self._turn_queue[me](), 0, True
        for other, priority in self._turn_queue.items():
            if other is me:
                earlier = False
                continue
            value = priority()
            rank += value > mine or (value == mine and earlier)
        return rank

    def _turn_given_back(self) -> None:
        self._granted -= 1
        self._changed.set()

    def _time_until_free(self) -> float:
        """Expected seconds until the model could start a batch that a frame submitted now would join."""
        ahead = len(self._queue) // self.max_batch  # full batches already waiting before it
        if self._running_since is None:
            return ahead * self._infer_estimate_s
        if not self._infer_estimate_s:
            return math.inf  # the first batch ever: no estimate yet, so wait for it to end
        running_left = max(0.0, self._running_since + self._infer_estimate_s - time.perf_counter())
        return running_left + ahead * self._infer_estimate_s

    async def run_alone(
        self, prepare: Callable[[], np.ndarray], model: Any, turn: Turn
    ) -> tuple[float, BatchOutcome] | None:
        """Decode (`prepare`) and infer one frame in one call on the inference thread, when nothing
        else waits for the model: it is idle, and no other frame is chosen, queued or asking for a
        turn. Returns (decode seconds, outcome), or None, having done nothing, when anything waits.

        One stream's frame then takes one thread hop instead of two (decode pool, then inference
        thread) and is decoded on the thread that runs it; a bad frame raises from `prepare` as it
        would from the decode pool."""
        if self._running_since is not None or self._queue or self._granted > 1 or self._turn_queue:
            return None
        self._running_since = time.perf_counter()
        turn.give_back()  # this frame's batch starts now (and the waiting callers hear of it)

        def work() -> tuple[float, float, np.ndarray]:
            began = time.perf_counter()
            tensor = prepare()
            decoded = time.perf_counter()
            return decoded - began, decoded, model.run(tensor[None])

        def done(future: asyncio.Future) -> None:  # the thread is done, even if the caller was cancelled
            self._alone = self._running_since = None
            self._changed.set()
            if not future.cancelled():
                future.exception()  # the caller gets it through the shield; a cancelled caller does not

        alone = self._alone = asyncio.get_running_loop().run_in_executor(self._executor, work)
        alone.add_done_callback(done)
        try:
            decode_s, infer_start, probabilities = await asyncio.shield(alone)
        except ServeError as exc:  # e.g. a remote backend down: a line, as for a batch
            log.warning("inference of a frame failed: %s", exc)
            raise
        infer_s = time.perf_counter() - infer_start
        self._ran(1, infer_s)
        return decode_s, BatchOutcome(probabilities[0], False, 0.0, infer_s, 1)

    async def submit(self, item: BatchItem) -> BatchOutcome:
        item.future = asyncio.get_running_loop().create_future()
        self._queue.append(item)
        self._arrived.set()
        return await item.future

    async def _loop(self) -> None:
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            if self._alone is not None:  # a frame alone is on the model: the batch starts after it
                await asyncio.wait((self._alone,))
            await self._maybe_wait_for_more()
            batch = self._take_batch()
            try:
                await self._run(batch)
            except Exception as exc:  # a failing batch fails its frames, never the batcher
                if isinstance(exc, ServeError):  # e.g. a remote backend down: a line, not a traceback
                    log.warning("inference batch of %d frames failed: %s", len(batch), exc)
                else:
                    log.exception("inference batch of %d frames failed", len(batch))
                for item in batch:
                    if item.future is not None and not item.future.done():
                        item.future.set_exception(exc)

    async def _run(self, run: list[BatchItem]) -> None:
        start = self._running_since = time.perf_counter()
        for item in run:
            if item.turn is not None:
                item.turn.give_back()
        self._changed.set()
        try:
            stacked = np.stack([item.input for item in run])
            model = run[0].model
            probabilities = await asyncio.get_running_loop().run_in_executor(
                self._executor, model.run, stacked
            )
        finally:
            self._running_since = None
            self._changed.set()
        infer_s = time.perf_counter() - start
        self._ran(len(run), infer_s)
        for index, item in enumerate(run):
            _resolve(
                item, BatchOutcome(probabilities[index], False, start - item.enqueued, infer_s, len(run))
            )

    def _ran(self, size: int, infer_s: float) -> None:
        """A batch of `size` frames ran in `infer_s`: the estimate and the metrics learn it."""
        self._infer_estimate_s = moving_average(self._infer_estimate_s, infer_s)
        if self._on_batch is not None:
            self._on_batch(size, infer_s)

    async def _maybe_wait_for_more(self) -> None:
        if self.max_wait_s <= 0 or len(self._queue) >= self.max_batch:
            return
        # stop waiting early enough that the earliest frame can still run before its deadline
        earliest_start = min(item.deadline for item in self._queue) - self._infer_estimate_s - WAKE_MARGIN_S
        until = min(self._queue[0].enqueued + self.max_wait_s, earliest_start)
        while len(self._queue) < self.max_batch:
            remaining = until - time.perf_counter()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except asyncio.TimeoutError:
                return

    def _take_batch(self) -> list[BatchItem]:
        """Up to max_batch frames for one model, earliest deadline first; under policy "skip", late
        frames are answered `late` here when fresh ones can take their place."""
        model = self._queue[0].model
        same = sorted((i for i in self._queue if i.model is model), key=lambda i: i.deadline)
        if self.late_policy == "skip":
            now = time.perf_counter()
            fresh = [i for i in same if i.deadline >= now]
            if fresh:
                for item in same:
                    if item.deadline < now:
                        self._queue.remove(item)
                        if item.turn is not None:
                            item.turn.give_back()
                        _resolve(item, BatchOutcome(None, True, now - item.enqueued, 0.0, 0))
                same = fresh
        batch = same[: self.max_batch]
        for item in batch:
            self._queue.remove(item)
        return batch


def moving_average(previous: float, sample: float) -> float:
    """Exponential moving average of a duration (weight 0.2 to the newest); the first sample as is."""
    return 0.8 * previous + 0.2 * sample if previous else sample


def _resolve(item: BatchItem, outcome: BatchOutcome) -> None:
    if item.future is not None and not item.future.done():
        item.future.set_result(outcome)
