"""A queued frame to its answer: decode (on a thread) → deadline batcher → model → rank.

Shared by all streams. It picks the model when a frame's turn comes, so a hot reload takes effect
at the next frame, and it never raises for a bad frame: a frame that cannot be decoded, or whose
batch fails, comes back as an `error` with the code the client can act on (internals stay in the
log). Timings travel in the answer; the metrics read them there (ServerMetrics.record), once.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from vr_recognition.server import protocol as p
from vr_recognition.server.batcher import BatchItem, DeadlineBatcher, Turn, moving_average
from vr_recognition.server.inference import InferenceModel
from vr_recognition.server.preprocess import preprocess_frame
from vr_recognition.server.session import PendingFrame, Processed, Session
from vr_recognition.server.triton_backend import BackendUnavailable

log = logging.getLogger("vr_serve.pipeline")
DECODE_MARGIN_S = 0.001  # the event loop's wake-up lag, so the model is not left idle waiting for a frame


class FramePipeline:
    def __init__(
        self,
        *,
        model: Callable[[], InferenceModel | None],
        batcher: DeadlineBatcher,
        limits: p.Limits,
        decode_threads: int,
    ) -> None:
        self._model = model
        self.batcher = batcher
        self.limits = limits
        self._decode_threads = max(1, decode_threads)
        self._decode_pool = ThreadPoolExecutor(self._decode_threads, thread_name_prefix="decode")
        self._decode_estimate_s = 0.0  # moving average of decode + resize time

    async def turn(self, priority: Callable[[], float] | None = None) -> Turn:
        """Return when a frame taken now would be decoded just as the model becomes free; the turn
        goes to `process` with the frame (or is given back when there is none)."""
        lead_s = self._decode_estimate_s + DECODE_MARGIN_S
        return await self.batcher.turn(lead_s, self._decode_threads, priority)

    def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        self._decode_pool.shutdown(wait=False)

    async def process(self, pending: PendingFrame, session: Session, turn: Turn | None = None) -> Processed:
        """Decode, batch, infer, rank: one frame to what its answer says. Never raises for a bad frame.
        `turn`, when the frame was chosen in one, is given back as its batch starts (at the latest
        when this returns: a frame that fails to decode never reaches a batch)."""
        try:
            return await self._process(pending, session, turn)
        finally:
            if turn is not None:
                turn.give_back()

    async def _process(self, pending: PendingFrame, session: Session, turn: Turn | None) -> Processed:
        taken = time.perf_counter()
        model = self._model()
        assert model is not None, "streams open only once a model is loaded"
        version = model.contract.version
        settings = session.settings(len(model.contract.classes))
        timings = {"receive": pending.parsed - pending.arrived}
        decode = functools.partial(
            preprocess_frame, pending.frame, model.contract, self.limits, settings.gaze_crop_scale
        )
        try:
            alone = None if turn is None else await self.batcher.run_alone(decode, model, turn)
            if alone is None:
                tensor = await asyncio.get_running_loop().run_in_executor(self._decode_pool, decode)
                decoded = time.perf_counter() - taken
            else:  # the model was idle and nothing else waited: decoded and run in one hop
                decoded, outcome = alone
            timings["decode"] = decoded
            self._decode_estimate_s = moving_average(self._decode_estimate_s, decoded)
            if alone is None:
                outcome = await self.batcher.submit(BatchItem(tensor, pending.deadline, model, turn=turn))
        except p.ProtocolError as exc:
            error = p.ErrorInfo(exc.code.value, exc.message)
            return Processed(p.Status.ERROR, timings, error=error, model_version=version)
        except BackendUnavailable:  # the batcher has logged it, once per batch
            error = p.ErrorInfo(p.ErrorCode.MODEL_UNAVAILABLE.value, "the inference backend did not answer")
            return Processed(p.Status.ERROR, timings, error=error, model_version=version)
        except Exception:
            log.exception("frame %d of %s failed", pending.frame.frame_id, session.client)
            error = p.ErrorInfo(p.ErrorCode.INTERNAL_ERROR.value, "the server failed on this frame")
            return Processed(p.Status.ERROR, timings, error=error, model_version=version)
        timings["queue"] = (taken - pending.parsed) + outcome.queue_s
        if outcome.late:
            timings["total"] = time.perf_counter() - pending.arrived
            return Processed(p.Status.LATE, timings, model_version=version)
        post_start = time.perf_counter()
        timings["infer"] = outcome.infer_s
        scores = session.smooth(outcome.probabilities, settings.smoothing_ema_alpha, model)
        top = np.argsort(-scores)[: settings.top_k]
        classes = model.contract.classes
        predictions = tuple(p.Prediction(classes[i], int(i), float(scores[i])) for i in top)
        done = time.perf_counter()
        timings["post"] = done - post_start
        timings["total"] = done - pending.arrived
        return Processed(p.Status.OK, timings, predictions, model_version=version)
