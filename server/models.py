"""Model management: load, hot reload (SIGHUP or on request), watch the file.

A reload loads and warms the new file beside the old model, and only then swaps it in: a broken
file is rejected and the old model goes on serving. Streams are told through `on_change`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from vr_recognition.server.errors import ServeError
from vr_recognition.server.inference import InferenceModel
from vr_recognition.server.metrics import ServerMetrics
from vr_recognition.server.protocol import ModelInfo
from vr_recognition.server.triton_backend import TritonModel, parse_backend

log = logging.getLogger("vr_serve.models")


class ModelManager:
    def __init__(
        self,
        path: Path,
        *,
        providers: str,
        max_batch: int,
        backend: str,
        backend_timeout_s: float,
        threads: int | None,
        metrics: ServerMetrics,
        on_change: Callable[[InferenceModel], Awaitable[None]],
    ) -> None:
        self.path = Path(path)
        self.providers, self.max_batch, self.threads = providers, max_batch, threads
        self.backend = parse_backend(backend)  # None: onnxruntime here
        self.backend_timeout_s = backend_timeout_s
        self.metrics = metrics
        self.on_change = on_change
        self.current: InferenceModel | None = None
        self.info: ModelInfo | None = None  # the current model as the protocol describes it
        self._lock = asyncio.Lock()

    async def load(self, path: Path | None = None) -> None:
        """Load and warm the first model; raises ModelFormatError with a clear message."""
        self._install(await self._load(Path(path) if path is not None else self.path))

    async def reload(self, path: Path | None = None) -> bool:
        """Swap in a new model without dropping streams. A broken file is rejected, the old model stays."""
        async with self._lock:
            target = Path(path) if path is not None else self.path
            try:
                model = await self._load(target)
            except (ServeError, OSError) as exc:
                self.metrics.model_reloads.labels("rejected").inc()
                log.error("hot reload of %s rejected, still serving the previous model: %s", target, exc)
                return False
            self.path = target
            self._install(model)
            self.metrics.model_reloads.labels("ok").inc()
            log.info("hot reload: now serving %s %s", model.contract.name, model.contract.version)
            await self.on_change(model)
            return True

    async def watch(self, interval_s: float) -> None:
        """Reload when the model file changes (and has stopped changing for one interval)."""

        def signature() -> tuple[int, int] | None:
            try:
                stat = self.path.stat()
            except OSError:
                return None
            return stat.st_mtime_ns, stat.st_size

        seen = signature()
        while True:
            await asyncio.sleep(interval_s)
            current = signature()
            if current is None or current == seen:
                continue
            await asyncio.sleep(interval_s)
            if signature() != current:
                continue  # still being written
            seen = current
            await self.reload()

    async def _load(self, path: Path) -> InferenceModel | TritonModel:
        def load() -> InferenceModel | TritonModel:
            if self.backend is not None:
                return TritonModel.load(path, self.backend, self.max_batch, self.backend_timeout_s)
            return InferenceModel.load(path, providers=self.providers, max_batch=self.max_batch,
                                       threads=self.threads)  # fmt: skip

        return await asyncio.get_running_loop().run_in_executor(None, load)

    def _install(self, model: InferenceModel) -> None:
        self.current = model
        self.info = model.info()
        self.metrics.set_model(model.contract.name, model.contract.version, model.provider)
