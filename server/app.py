"""The asyncio adapter: listening, one task set per connection, life cycle. The rules live elsewhere.

Per connection three tasks, each with one job:
- the reader feeds every message to the stream's `Session` (server/session.py, pure) and carries out
  what it returns; a parsed frame goes into the stream's one-slot mailbox, and the frame it replaces
  is answered `dropped_stale` at once;
- the worker takes the newest frame, runs it through the `FramePipeline` (decode → batch → rank)
  and queues the answer;
- the sender is the only writer to the socket. It sends what the others queue, in order, and drops a
  client that takes nothing for `send_timeout_s` (close 1008). Its queue is short, so a client that
  stops reading pushes back on the reader and the worker, and through TCP on itself, never on others.

The sender and the per-connection state are server/connection.py; HTTP on the same port (/healthz,
/metrics) and the handshake policy are server/gatekeeper.py; model load, reload and watch are
server/models.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import ssl
import time
from pathlib import Path

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from vr_recognition.server import __version__
from vr_recognition.server import protocol as p
from vr_recognition.server.admission import ServerState, refusal
from vr_recognition.server.batcher import DeadlineBatcher
from vr_recognition.server.config import CLOSE_TIMEOUT_S, ServerConfig
from vr_recognition.server.connection import CodedConnection, Sender, Stream, peer
from vr_recognition.server.gatekeeper import Gatekeeper
from vr_recognition.server.inference import InferenceModel
from vr_recognition.server.metrics import ServerMetrics
from vr_recognition.server.models import ModelManager
from vr_recognition.server.pipeline import FramePipeline
from vr_recognition.server.session import Close, Events, Session

__all__ = ["CLOSE_TIMEOUT_S", "RecognitionServer", "ServerConfig"]

log = logging.getLogger("vr_serve")


class RecognitionServer:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = ServerMetrics()
        self.models = ModelManager(
            config.model_path,
            providers=config.providers,
            backend=config.backend,
            backend_timeout_s=config.backend_timeout_s,
            max_batch=config.max_batch,
            threads=config.threads,
            metrics=self.metrics,
            on_change=self._announce_model,
        )
        batcher = DeadlineBatcher(
            max_batch=config.max_batch,
            max_wait_s=config.batch_wait_ms / 1000.0,
            late_policy=config.late_policy,
            on_batch=self.metrics.record_batch,
        )
        self.pipeline = FramePipeline(
            model=lambda: self.models.current,
            batcher=batcher,
            limits=config.limits,
            decode_threads=config.decode_threads,
        )
        self._streams: dict[ServerConnection, Stream] = {}
        self._server: Server | None = None
        self._shutting_down = False
        self._stopped = asyncio.Event()
        self._background: set[asyncio.Task] = set()

    # --- life cycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen at once (so /healthz can say 'starting'); the model is loaded separately."""
        tls = None
        if self.config.tls_cert is not None:
            tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            tls.load_cert_chain(self.config.tls_cert, self.config.tls_key)
        gatekeeper = Gatekeeper(
            token=self.config.token,
            allowed_origins=self.config.allowed_origins,
            max_streams=self.config.max_streams,
            metrics=self.metrics,
            state=self.state,
        )
        self.pipeline.start()
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
            process_request=gatekeeper.process_request,
            server_header=f"vr-serve/{__version__}",
            ping_interval=self.config.keepalive_s,
            ping_timeout=self.config.keepalive_s,
            close_timeout=CLOSE_TIMEOUT_S,
            create_connection=CodedConnection,
        )
        if self.config.watch_model:
            self._spawn(self.models.watch(self.config.watch_interval_s), "model-watch")

    async def load_model(self, path: Path | None = None) -> None:
        """Load and warm the first model; raises ModelFormatError with a clear message."""
        await self.models.load(path)

    async def reload(self, path: Path | None = None) -> bool:
        """Swap in a new model without dropping streams; False (old model kept) when the file is bad."""
        return await self.models.reload(path)

    @property
    def model(self) -> InferenceModel | None:
        return self.models.current

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.sockets[0].getsockname()[1]

    def state(self) -> ServerState:
        return ServerState(self._shutting_down, self.models.info, len(self._streams))

    def install_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGHUP, lambda: self._spawn(self.reload(), "reload"))
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: self._spawn(self.shutdown(), "shutdown"))

    async def wait_stopped(self) -> None:
        await self._stopped.wait()

    async def shutdown(self) -> None:
        """Drain (config.drain_s: /healthz 503, new streams refused, open ones served), then stop
        accepting, answer every frame already received, close streams with 1001."""
        if self._shutting_down:
            return
        self._shutting_down = True  # from here /healthz answers 503 and admission refuses new streams
        if self.config.drain_s > 0:
            log.info("draining for %.1f s: /healthz answers 503, %d streams served", self.config.drain_s,
                     len(self._streams))  # fmt: skip
            await asyncio.sleep(self.config.drain_s)
        log.info("shutting down: finishing in-flight frames of %d streams", len(self._streams))
        assert self._server is not None
        self._server.close(close_connections=False)
        streams = list(self._streams.values())
        for stream in streams:
            stream.session.stop_accepting()
            stream.slot.close()
        workers = [s.worker for s in streams if s.worker is not None]
        if workers:  # each worker answers its last frame, then ends because its mailbox is closed
            _, stuck = await asyncio.wait(workers, timeout=self.config.shutdown_grace_s)
            for worker in stuck:  # past the grace (a backend that does not answer): stop waiting for it
                worker.cancel()
        await asyncio.gather(
            *(self._apply(s, s.session.going_away()) for s in streams), return_exceptions=True
        )
        await self._server.wait_closed()
        for task in list(self._background):
            if task is not asyncio.current_task():
                task.cancel()
        await self.pipeline.stop()
        log.info("stopped")
        self._stopped.set()

    async def _announce_model(self, model: InferenceModel) -> None:
        info = model.info()
        await asyncio.gather(
            *(self._apply(s, s.session.model_changed(info)) for s in list(self._streams.values())),
            return_exceptions=True,
        )

    # --- one connection -----------------------------------------------------------------------

    async def _handle(self, ws: ServerConnection) -> None:
        """Whatever goes wrong with one connection stays with it: logged here, closed with 1011."""
        self.metrics.connections.inc()
        session = Session(
            defaults=self.config.stream_defaults, limits=self.config.limits, server_version=__version__
        )
        stream = Stream(ws, session, Sender(ws, self.config.send_timeout_s, self.metrics))
        try:
            if await self._await_hello(stream):
                await self._serve_stream(stream)
        except Exception:
            log.exception("connection from %s failed", peer(ws))
            self.metrics.failure.labels(p.ErrorCode.INTERNAL_ERROR.value).inc()
            await stream.sender.finish(Close(p.CloseCode.INTERNAL_ERROR, p.ErrorCode.INTERNAL_ERROR.value))
        finally:
            await stream.sender.finish()

    async def _await_hello(self, stream: Stream) -> bool:
        """True once the stream is open; False when it was refused or closed first."""
        deadline = time.perf_counter() + self.config.hello_timeout_s
        try:
            while True:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    await self._apply(stream, stream.session.hello_timed_out())
                    return False
                try:
                    message = await asyncio.wait_for(stream.ws.recv(), remaining)
                except asyncio.TimeoutError:
                    continue
                events = stream.session.receive(message)
                if events.hello is not None:
                    # Admission again: streams may have opened, or shutdown begun, since the upgrade.
                    events = stream.session.open(
                        self.models.info, refusal(self.state(), self.config.max_streams)
                    )
                    if events.close is None:  # registered before anything else can run
                        self._streams[stream.ws] = stream
                        self.metrics.active_streams.inc()
                await self._apply(stream, events)
                if events.close is not None:
                    return False
                if stream.ws in self._streams:
                    return True
                await asyncio.sleep(events.pause_s)
        except ConnectionClosed:
            self._forget(stream)
            return False

    async def _serve_stream(self, stream: Stream) -> None:
        ws, session = stream.ws, stream.session
        worker = stream.worker = asyncio.create_task(self._work(stream), name="stream-worker")
        log.info("stream opened: %s from %s", session.client, peer(ws))
        try:
            async for message in ws:
                if stream.sender.done:
                    break  # the sender gave up on this client: stop working for it now
                events = session.receive(message)
                await self._apply(stream, events)
                # Fairness: a client flooding the server gets no more than its turn, and one sending
                # garbage is paused by the session's throttle, so its cost stays bounded.
                await asyncio.sleep(events.pause_s)
        except ConnectionClosed:
            pass
        finally:
            stream.slot.close()
            if not stream.idle and not self._shutting_down:
                worker.cancel()  # the peer is gone: nobody to answer
            with contextlib.suppress(asyncio.CancelledError):
                await worker
            self._forget(stream)
            log.info("stream closed: %s (code %s)", session.client, ws.close_code)

    async def _work(self, stream: Stream) -> None:
        while await stream.slot.ready():
            turn = None
            if self.config.frame_choice == "late":
                # Choose which frame to run when the model is about to be free, not when it arrives:
                # frames that come meanwhile replace the waiting one (answered dropped_stale).
                turn = await self.pipeline.turn(stream.gain)
            pending = stream.slot.take_nowait()
            if pending is None:
                if turn is not None:
                    turn.give_back()
                continue
            stream.busy = True
            try:
                processed = await self.pipeline.process(pending, stream.session, turn)
                if processed.status is p.Status.OK:
                    stream.shown = pending.arrived  # one frame in flight: answers come in arrival order
                await self._send(stream, stream.session.result(pending, processed))
            finally:
                stream.busy = False

    async def _apply(self, stream: Stream, events: Events) -> None:
        """Carry out what the session decided: send, queue the frame, close."""
        for message in events.send:
            await self._send(stream, message)
        if events.frame is not None:
            stale = stream.slot.put(events.frame)
            if stale is not None:
                await self._send(stream, stream.session.stale(stale))
        if events.close is not None:
            await stream.sender.finish(events.close)

    async def _send(self, stream: Stream, message: p.ServerMessage) -> None:
        self.metrics.record(message)
        await stream.sender.send(p.encode_server_message(message))

    def _forget(self, stream: Stream) -> None:
        if self._streams.pop(stream.ws, None) is not None:
            self.metrics.active_streams.dec()

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background.discard)
