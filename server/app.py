"""The websocket server: handshake policy, one task pair per stream, hot reload, graceful shutdown.

Per stream, a reader task parses frames and drops them into the stream's one-slot mailbox (the
frame they replace is answered `dropped_stale` at once), and a worker task takes the newest frame,
decodes it on a thread, hands it to the shared deadline batcher and sends the answer. A stream
therefore never holds more than one waiting frame, and a client that stops reading only blocks its
own worker (and is disconnected after `send_timeout_s`).

HTTP on the same port: /healthz (200 once a model is warm, 503 before) and /metrics (Prometheus).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from vr_recognition.server import __version__
from vr_recognition.server import protocol as p
from vr_recognition.server.batcher import BatchItem, DeadlineBatcher
from vr_recognition.server.gatekeeper import Gatekeeper
from vr_recognition.server.inference import InferenceModel
from vr_recognition.server.metrics import ServerMetrics
from vr_recognition.server.model_format import ModelFormatError
from vr_recognition.server.preprocess import preprocess_frame
from vr_recognition.server.stream import PendingFrame, StreamState
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

log = logging.getLogger("vr_serve")

CLOSE_TIMEOUT_S = 2.0  # how long a closing handshake may take before the connection is dropped


@dataclass
class ServerConfig:
    model_path: Path
    host: str = "127.0.0.1"
    port: int = 8765
    budget_ms: float = 11.1
    top_k: int = 5
    max_batch: int = 8
    batch_wait_ms: float = 0.0
    late_policy: str = "skip"
    providers: str = "auto"
    threads: int | None = None
    decode_threads: int = 2
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allowed_origins: tuple[str, ...] = ()
    max_streams: int = 64
    limits: p.Limits = field(default_factory=p.Limits)
    hello_timeout_s: float = 10.0
    send_timeout_s: float = 5.0  # a client that does not take a reply for this long is dropped
    keepalive_s: float = 10.0  # ping interval, and how late a pong may be before the peer is dropped
    shutdown_grace_s: float = 5.0
    watch_model: bool = False
    watch_interval_s: float = 1.0


class RecognitionServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = ServerMetrics()
        self.model: InferenceModel | None = None
        self.batcher = DeadlineBatcher(
            max_batch=config.max_batch,
            max_wait_s=config.batch_wait_ms / 1000.0,
            late_policy=config.late_policy,
            on_batch=self._record_batch,
        )
        self._decode_pool = ThreadPoolExecutor(max(1, config.decode_threads), thread_name_prefix="decode")
        self._streams: dict[ServerConnection, StreamState] = {}
        self._dropping: set[ServerConnection] = set()  # slow consumers being disconnected
        self._server: Server | None = None
        self._reload_lock = asyncio.Lock()
        self._shutting_down = False
        self._stopped = asyncio.Event()
        self._background: set[asyncio.Task] = set()
        self._defaults = p.StreamSettings(top_k=config.top_k, budget_ms=config.budget_ms)

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen at once (so /healthz can say 'starting'); the model is loaded separately."""
        tls = None
        if self.config.tls_cert is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        self.batcher.start()
        self._server = await serve(
            self._handle,
            self.config.host,
            self.config.port,
            ssl=tls,
            compression=None,  # deflate costs ~10 ms per JPEG and gains nothing
            max_size=self.config.limits.max_message_bytes,
            # One received frame may wait in the library while the reader is busy; beyond it, TCP
            # pushes back on the client. A stream's memory is bounded by a few messages (security.md).
            max_queue=1,
            process_request=Gatekeeper(self).process_request,
            server_header=f"vr-serve/{__version__}",
            ping_interval=self.config.keepalive_s,
            ping_timeout=self.config.keepalive_s,
            close_timeout=CLOSE_TIMEOUT_S,
        )
        if self.config.watch_model:
            self._spawn(self._watch_model(), "model-watch")

    async def load_model(self, path: Path | None = None) -> None:
        """Load and warm the first model; raises ModelFormatError with a clear message."""
        model = await asyncio.get_running_loop().run_in_executor(
            None, self._load, path or self.config.model_path
        )
        self._install(model)

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    @property
    def healthy(self) -> bool:
        return self.model is not None and not self._shutting_down

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload(), "reload"))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: self._spawn(self.shutdown(), "shutdown"))

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def shutdown(self) -> None:
        """Stop accepting, answer every frame already received, close streams with 1001."""
        if self._shutting_down:
            return
        self._shutting_down = True
        log.info("shutting down: finishing in-flight frames of %d streams", len(self._streams))
        assert self._server is not None
        self._server.close(close_connections=False)
        for stream in self._streams.values():
            stream.accepting = False
            stream.slot.close()
        workers = [s.worker for s in self._streams.values() if s.worker is not None]
        if workers:  # each worker answers its last frame, then ends because its mailbox is closed
            await asyncio.wait(workers, timeout=self.config.shutdown_grace_s)
        await asyncio.gather(
            *(
                ws.close(p.CloseCode.GOING_AWAY, p.ErrorCode.SHUTTING_DOWN.value)
                for ws in list(self._streams)
            ),
            return_exceptions=True,
        )
        await self._server.wait_closed()
        for task in list(self._background):
            if task is not asyncio.current_task():
                task.cancel()
        await self.batcher.stop()
        self._decode_pool.shutdown(wait=False)
        log.info("stopped")
        self._stopped.set()

    # --- models -------------------------------------------------------------------------------

    def _load(self, path: Path) -> InferenceModel:
        return InferenceModel.load(
            path,
            providers=self.config.providers,
            max_batch=self.config.max_batch,
            threads=self.config.threads,
        )

    def _install(self, model: InferenceModel) -> None:
        self.model = model
        self.metrics.set_model(model.contract.name, model.contract.version, model.provider)

    async def reload(self, path: Path | None = None) -> bool:
        """Swap in a new model without dropping streams. A broken file is rejected, the old model stays."""
        async with self._reload_lock:
            target = Path(path) if path is not None else self.config.model_path
            try:
                model = await asyncio.get_running_loop().run_in_executor(None, self._load, target)
            except (ModelFormatError, ValueError, OSError) as exc:
                self.metrics.model_reloads.labels("rejected").inc()
                log.error("hot reload of %s rejected, still serving the previous model: %s", target, exc)
                return False
            self.config.model_path = target
            self._install(model)
            self.metrics.model_reloads.labels("ok").inc()
            log.info("hot reload: now serving %s %s", model.contract.name, model.contract.version)
            notice = p.encode_server_message(p.ModelChanged(model.info()))
            await asyncio.gather(
                *(self._send(ws, notice) for ws in list(self._streams)), return_exceptions=True
            )
            return True

    async def _watch_model(self) -> None:
        """Reload when the model file changes (and has stopped changing for one interval)."""

        def signature() -> tuple[int, int] | None:
            try:
                stat = self.config.model_path.stat()
            except OSError:
                return None
            return stat.st_mtime_ns, stat.st_size

        seen = signature()
        while True:
            await asyncio.sleep(self.config.watch_interval_s)
            current = signature()
            if current is None or current == seen:
                continue
            await asyncio.sleep(self.config.watch_interval_s)
            if signature() != current:
                continue  # still being written
            seen = current
            await self.reload()

    # --- one connection -----------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        """Whatever goes wrong with one connection stays with it: logged here, closed with 1011."""
        try:
            await self._serve_connection(ws)
        except Exception:
            log.exception("connection from %s failed", _peer(ws))
            self.metrics.failure.labels(p.ErrorCode.INTERNAL_ERROR.value).inc()
            await ws.close(p.CloseCode.INTERNAL_ERROR, p.ErrorCode.INTERNAL_ERROR.value)

    async def _serve_connection(self, ws: ServerConnection) -> None:
        self.metrics.connections.inc()
        hello = await self._await_hello(ws)
        if hello is None:
            return
        if len(self._streams) >= self.config.max_streams or self._shutting_down:
            code = p.ErrorCode.SHUTTING_DOWN if self._shutting_down else p.ErrorCode.TOO_MANY_STREAMS
            await self._close_with_error(ws, code, "no stream available", p.CloseCode.TRY_AGAIN_LATER)
            return
        stream = StreamState(client=f"{hello.client_name}/{hello.client_version}", asked=hello.settings,
                             defaults=self._defaults)  # fmt: skip
        self._streams[ws] = stream
        self.metrics.active_streams.inc()
        worker = stream.worker = asyncio.create_task(self._stream_worker(ws, stream), name="stream-worker")
        try:
            model = self.model
            server_hello = p.ServerHello(
                protocol=p.negotiate_version(hello),
                server_name="vr-serve",
                server_version=__version__,
                model=model.info(),
                session=stream.effective(len(model.contract.classes), self.config.limits),
                limits=self.config.limits,
            )
            await self._send(ws, p.encode_server_message(server_hello))
            log.info("stream opened: %s from %s", stream.client, _peer(ws))
            async for message in ws:
                arrived = time.perf_counter()
                if isinstance(message, bytes):
                    rejected = await self._on_frame(ws, stream, message, arrived)
                else:
                    rejected = await self._on_control(ws, stream, message)
                # Fairness: a client flooding the server with messages gets no more than its turn, and
                # one sending garbage is slowed to REJECT_RATE_PER_S (stream.py), so its cost stays bounded.
                await asyncio.sleep(stream.error_throttle.delay() if rejected else 0)
        except ConnectionClosed:
            pass
        finally:
            stream.slot.close()
            if not stream.idle and not self._shutting_down:
                worker.cancel()  # the peer is gone: nobody to answer
            with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
                await worker
            del self._streams[ws]
            self.metrics.active_streams.dec()
            log.info("stream closed: %s (code %s)", stream.client, ws.close_code)

    async def _await_hello(self, ws: ServerConnection) -> p.ClientHello | None:
        deadline = time.perf_counter() + self.config.hello_timeout_s
        try:
            while True:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    await self._close_with_error(
                        ws, p.ErrorCode.HELLO_REQUIRED, "no hello in time", p.CloseCode.POLICY_VIOLATION
                    )
                    return None
                try:
                    message = await asyncio.wait_for(ws.recv(), remaining)
                except asyncio.TimeoutError:
                    continue
                try:
                    if isinstance(message, bytes):
                        raise p.ProtocolError(p.ErrorCode.HELLO_REQUIRED, "send hello before frames")
                    control = p.decode_client_message(message, self.config.limits.max_control_bytes)
                    if not isinstance(control, p.ClientHello):
                        raise p.ProtocolError(p.ErrorCode.HELLO_REQUIRED, "the first message must be hello")
                    p.negotiate_version(control)
                    return control
                except p.ProtocolError as exc:
                    if exc.code is p.ErrorCode.UNSUPPORTED_VERSION:
                        await self._close_with_error(ws, exc.code, exc.message, p.CloseCode.PROTOCOL_ERROR)
                        return None
                    self.metrics.failure.labels(exc.code.value).inc()
                    await self._send(ws, p.encode_server_message(p.ErrorMessage(exc.code.value, exc.message)))
        except ConnectionClosed:
            return None

    async def _on_frame(self, ws: ServerConnection, stream: StreamState, data: bytes, arrived: float) -> bool:
        """Parse and queue one frame; True when it was rejected."""
        try:
            frame = p.decode_frame(data)
        except p.ProtocolError as exc:
            self.metrics.failure.labels(exc.code.value).inc()
            await self._send(ws, p.encode_server_message(p.error_for(exc)))
            return True
        if not stream.accepting:
            error = p.ProtocolError(p.ErrorCode.SHUTTING_DOWN, "server is stopping", frame_id=frame.frame_id,
                                    capture_time_us=frame.capture_time_us)  # fmt: skip
            await self._send(ws, p.encode_server_message(p.error_for(error)))
            return True
        parsed = time.perf_counter()
        stale = stream.slot.put(PendingFrame(frame, arrived, parsed, arrived + stream.budget_s))
        if stale is not None:
            self.metrics.dropped_stale.inc()
            now = time.perf_counter()
            result = self._result(stale, p.Status.DROPPED_STALE, {"receive": stale.parsed - stale.arrived,
                                                                  "total": now - stale.arrived})  # fmt: skip
            await self._send(ws, p.encode_server_message(result))
        return False

    async def _on_control(self, ws: ServerConnection, stream: StreamState, text: str) -> bool:
        """Answer one control message; True when it was rejected."""
        rejected = False
        try:
            message = p.decode_client_message(text, self.config.limits.max_control_bytes)
            if isinstance(message, p.Ping):
                reply: p.ServerMessage = p.Pong(
                    message.id, message.client_time_us, time.monotonic_ns() // 1000
                )
            elif isinstance(message, p.Configure):
                stream.configure(message.settings)
                model = self.model
                reply = p.Configured(stream.effective(len(model.contract.classes), self.config.limits))
            else:
                raise p.ProtocolError(p.ErrorCode.DUPLICATE_HELLO, "this stream already said hello")
        except p.ProtocolError as exc:
            self.metrics.failure.labels(exc.code.value).inc()
            reply = p.ErrorMessage(exc.code.value, exc.message)
            rejected = True
        await self._send(ws, p.encode_server_message(reply))
        return rejected

    async def _stream_worker(self, ws: ServerConnection, stream: StreamState) -> None:
        while True:
            pending = await stream.slot.take()
            if pending is None:
                return
            stream.busy = True
            try:
                result = await self._process(stream, pending)
                await self._send(ws, p.encode_server_message(result))
            finally:
                stream.busy = False

    async def _process(self, stream: StreamState, pending: PendingFrame) -> p.Result:
        """Decode, batch, infer, rank: one frame to its result. Never raises for a bad frame."""
        taken = time.perf_counter()
        model = self.model
        settings = stream.effective(len(model.contract.classes), self.config.limits)
        timings = {"receive": pending.parsed - pending.arrived}
        loop = asyncio.get_running_loop()
        try:
            tensor = await loop.run_in_executor(
                self._decode_pool, preprocess_frame, pending.frame, model.contract, self.config.limits,
                settings.gaze_crop_scale,
            )  # fmt: skip
            decoded = time.perf_counter()
            timings["decode"] = decoded - taken
            self.metrics.decode_duration.observe(decoded - taken)
            outcome = await self.batcher.submit(BatchItem(tensor, pending.deadline, model))
        except p.ProtocolError as exc:
            self.metrics.failure.labels(exc.code.value).inc()
            return self._result(
                pending, p.Status.ERROR, timings, error=p.ErrorInfo(exc.code.value, exc.message)
            )
        except Exception:
            log.exception("frame %d of %s failed", pending.frame.frame_id, stream.client)
            self.metrics.failure.labels(p.ErrorCode.INTERNAL_ERROR.value).inc()
            error = p.ErrorInfo(p.ErrorCode.INTERNAL_ERROR.value, "the server failed on this frame")
            return self._result(pending, p.Status.ERROR, timings, error=error)
        timings["queue"] = (taken - pending.parsed) + outcome.queue_s
        self.metrics.queue_duration.observe(timings["queue"])
        if outcome.late:
            self.metrics.late.inc()
            timings["total"] = time.perf_counter() - pending.arrived
            return self._result(pending, p.Status.LATE, timings, model=model)
        post_start = time.perf_counter()
        timings["infer"] = outcome.infer_s
        scores = stream.smooth(outcome.probabilities, settings.smoothing_ema_alpha, model)
        top = np.argsort(-scores)[: settings.top_k]
        classes = model.contract.classes
        predictions = tuple(p.Prediction(classes[i], int(i), float(scores[i])) for i in top)
        done = time.perf_counter()
        timings["post"] = done - post_start
        timings["total"] = done - pending.arrived
        self.metrics.success.inc()
        self.metrics.request_duration.observe(timings["total"])
        return self._result(pending, p.Status.OK, timings, predictions, model=model)

    def _result(
        self,
        pending: PendingFrame,
        status: p.Status,
        timings_s: dict[str, float],
        top_k: tuple[p.Prediction, ...] = (),
        error: p.ErrorInfo | None = None,
        model: InferenceModel | None = None,
    ) -> p.Result:
        model = model or self.model
        frame = pending.frame
        return p.Result(
            frame_id=frame.frame_id,
            capture_time_us=frame.capture_time_us,
            status=status,
            top_k=top_k,
            timings_ms={k: v * 1000.0 for k, v in timings_s.items()},
            pose=frame.pose,
            gaze=frame.gaze,
            model_version=model.contract.version if model is not None else "",
            error=error,
        )

    async def _send(self, ws: ServerConnection, text: str) -> None:
        """Send, but never wait forever on a client that stopped reading: drop it (1008)."""
        try:
            # asyncio.timeout, not wait_for: no extra task per reply on this hot path
            async with asyncio.timeout(self.config.send_timeout_s):
                await ws.send(text)
        except TimeoutError:
            if ws not in self._dropping:  # the reader and the worker may both be stuck on it
                self._dropping.add(ws)
                log.warning(
                    "closing %s: it read no results for %.1f s", _peer(ws), self.config.send_timeout_s
                )
                self.metrics.failure.labels(p.ErrorCode.SLOW_CONSUMER.value).inc()
                # close() gives up on the closing handshake after close_timeout and drops the connection
                self._spawn(self._drop(ws), "close-slow")
            raise ConnectionClosed(None, None) from None

    async def _drop(self, ws: ServerConnection) -> None:
        try:
            await ws.close(p.CloseCode.POLICY_VIOLATION, p.ErrorCode.SLOW_CONSUMER.value)
        finally:
            self._dropping.discard(ws)

    async def _close_with_error(
        self, ws: ServerConnection, code: p.ErrorCode, message: str, close: int
    ) -> None:
        self.metrics.failure.labels(code.value).inc()
        with contextlib.suppress(ConnectionClosed, asyncio.TimeoutError):
            await asyncio.wait_for(
                ws.send(p.encode_server_message(p.ErrorMessage(code.value, message, fatal=True))),
                self.config.send_timeout_s,
            )
        await ws.close(close, code.value)

    def _record_batch(self, size: int, infer_s: float) -> None:
        self.metrics.batch_size.observe(size)
        self.metrics.compute_duration.observe(infer_s)

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _peer(ws: ServerConnection) -> str:
    address = ws.remote_address
    return f"{address[0]}:{address[1]}" if address else "?"
