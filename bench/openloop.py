"""Open-loop load: every stream sends on its own display clock, whatever the server does.

A headset does not wait for an answer before capturing the next frame; it sends at its display
rate. So frame i of a stream is scheduled at t0 + phase + i/fps and sent as soon as possible after
that, and its latency is measured from the *scheduled* time. A slow send (a busy event loop, a
full socket) therefore counts against the server instead of silently thinning the load, which is
the coordinated-omission mistake of closed-loop benchmarks.

Sends are paced by bench/pacing.py (sleep, then spin the last fraction of a millisecond), so the
generator's own lateness (`send_lag_ms`) stays near zero and is reported apart from the server's.

Each stream is a `ReconnectingClient`: when its connection ends (a replica drained or killed behind a
balancer, a restarted server) it connects again as a headset would, the frames it could not send or
that were in flight count as unanswered, and the stream's reconnects are reported.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from vr_recognition.bench.errors import BenchError
from vr_recognition.bench.frames import EncodedFrame
from vr_recognition.bench.pacing import Pacer
from vr_recognition.bench.records import LoadConfig, LoadRun, StreamRecord, schedule, stream_records
from vr_recognition.server import protocol as p
from vr_recognition.server.client import ServerRefused
from vr_recognition.server.reconnect import Backoff, Reconnected, ReconnectingClient

__all__ = ["LoadConfig", "LoadRun", "StreamRecord", "run_load", "schedule"]


def stream_backoff() -> Backoff:
    """A first connection that fails is an error (BenchError), not a retry loop; once streaming, a
    stream reconnects with the clients' jittered backoff, capped at 2 s so a short outage stays short."""
    return Backoff(initial_s=0.25, max_s=2.0)


async def _send_on_schedule(client: ReconnectingClient, frames: list[EncodedFrame], record: StreamRecord,
                            pacer: Pacer) -> None:  # fmt: skip
    for frame_id, when in enumerate(record.scheduled):
        await pacer.sleep_until(float(when))
        frame = frames[(record.first_frame + frame_id) % len(frames)]
        if client.client is None:  # between connections: not sent (sent stays NaN), a miss all the same
            continue
        record.sent[frame_id] = time.monotonic()
        await client.send_frame(
            frame.jpeg,
            width=frame.width,
            height=frame.height,
            frame_id=frame_id,
            capture_time_us=int(when * 1e6),
        )


async def _receive(client: ReconnectingClient, record: StreamRecord, stop_at: list[float]) -> None:
    """Record answers until every sent frame is answered or the drain deadline passes."""
    outstanding = len(record.scheduled)
    while outstanding:
        timeout = max(0.0, stop_at[0] - time.monotonic()) if stop_at else None
        try:
            message = await client.recv(timeout=timeout)
        except asyncio.TimeoutError:
            return
        now = time.monotonic()
        label = None
        if isinstance(message, Reconnected):
            record.reconnects += 1
            continue
        if isinstance(message, p.Result):
            frame_id, status, timings = message.frame_id, message.status.value, message.timings_ms
            label = message.top_k[0].label if message.top_k else None
        elif isinstance(message, p.ErrorMessage) and message.frame_id is not None:
            frame_id, status, timings = message.frame_id, p.Status.ERROR.value, {}
        else:
            continue
        if 0 <= frame_id < len(record.scheduled) and record.status[frame_id] is None:
            record.answered[frame_id] = now
            record.status[frame_id] = status
            record.timings_ms[frame_id] = timings
            record.labels[frame_id] = label
            outstanding -= 1


async def _run_stream(client: ReconnectingClient, frames: list[EncodedFrame], record: StreamRecord,
                      drain_s: float, pacer: Pacer) -> None:  # fmt: skip
    stop_at: list[float] = []  # set once sending ends: the receiver then waits drain_s at most
    receiver = asyncio.create_task(_receive(client, record, stop_at))
    try:
        await _send_on_schedule(client, frames, record, pacer)
    except Exception as exc:  # the connection broke: keep what was measured, say why
        record.failure = f"sending stopped: {type(exc).__name__}: {exc}"
    stop_at.append(time.monotonic() + drain_s)
    try:
        await asyncio.wait_for(receiver, drain_s + 1.0)
    except asyncio.TimeoutError:
        pass
    except Exception as exc:
        record.failure = record.failure or f"receiving stopped: {type(exc).__name__}: {exc}"


async def run_load(config: LoadConfig, frames: list[EncodedFrame], precise: bool = True) -> LoadRun:
    """Connect all streams, then send open-loop for warmup + duration and collect every answer.

    `precise=False` paces with plain asyncio sleeps (for comparing the generator's own lag)."""
    pacer = Pacer(precise)
    settings = p.StreamSettings(top_k=1, budget_ms=config.budget_ms, fps=config.fps)
    clients = []
    try:
        for _ in range(config.streams):
            client = ReconnectingClient(
                config.url,
                client_name="vr-bench",
                settings=settings,
                token=config.token,
                backoff=stream_backoff(),
                retry_first=False,
            )
            clients.append(client)
            client.start()
            try:
                first = await client.connected(timeout=30)
            except (OSError, ServerRefused, ConnectionError, TimeoutError) as exc:
                raise BenchError(f"cannot connect to {config.url}: {type(exc).__name__}: {exc}") from None
            if len(clients) == 1:
                hello = first.server_hello
        records = stream_records(config, len(clients), len(frames))  # from now, everyone connected
        await asyncio.gather(
            *(
                _run_stream(client, frames, record, config.drain_s, pacer)
                for client, record in zip(clients, records, strict=True)
            )
        )
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                await client.close()
    run = LoadRun(
        config=config,
        streams=records,
        measured_from=config.warmup_frames,
        provider=hello.model.provider,
        model_name=hello.model.name,
        server_name=hello.server_name,
    )
    run.notes += [f"stream {i}: {r.failure}" for i, r in enumerate(records) if r.failure]
    run.pacing = pacer.info()
    return run
