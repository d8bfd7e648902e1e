"""Replicas behind the real HAProxy, with the shipped deploy/haproxy.cfg: TLS ended at the balancer,
least connections, /healthz checks, the token passed through; one replica drained by SIGTERM and one
killed with SIGKILL while nine streams run at 30 Hz (docs/scale-out.md has the figures)."""

from __future__ import annotations

import asyncio
import gc
import os
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tests.client_harness import free_port
from tests.debian import require_debian_package
from tests.onnx_models import write_colour_model
from tests.server_helpers import ServerProcess, self_signed_certificate, solid_jpeg
from vr_recognition.server import protocol as p
from vr_recognition.server.reconnect import Backoff, Disconnected, NotAnswered, ReconnectingClient

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "haproxy.cfg"
TOKEN = "fleet-secret"
STREAMS, FPS = 9, 30.0
DRAIN_S = 2.0  # as docs/scale-out.md advises with the shipped check interval (2 failures 0.5 s apart)
BACKOFF = dict(initial_s=0.1, max_s=0.4)
# p99 windows of 5 s: 3 untouched streams x 30 Hz x 5 s = 450 answers, so the p99 sits at the 5th
# slowest. One stall of the shared cores delays the frame each stream has in flight (3 answers) and
# cannot move it alone; in a 2 s window (180 answers, the 2nd slowest) it did, once in CI.
WINDOW_S = 5.0


@dataclass
class StreamLog:
    sent: dict[int, float] = field(default_factory=dict)  # frame id -> send time
    events: list[tuple[float, object]] = field(default_factory=list)  # (arrival time, event)

    def answers(self, since: float = 0.0, until: float = float("inf")) -> list[tuple[float, p.Result]]:
        return [
            (t, e)
            for t, e in self.events
            if isinstance(e, p.Result) and e.status is p.Status.OK and since <= t < until
        ]

    def replica(self, since: float, until: float = float("inf")) -> set[str]:
        return {e.model_version for _, e in self.answers(since, until)}

    def latencies_ms(self, since: float, until: float) -> list[float]:
        return [1000 * (t - self.sent[e.frame_id]) for t, e in self.answers(since, until)]

    def accounted(self) -> list[int]:
        ids = []
        for _, event in self.events:
            if isinstance(event, (p.Result, NotAnswered)) or (
                isinstance(event, p.ErrorMessage) and event.frame_id is not None
            ):
                ids.append(event.frame_id)
        return ids


def pem_for_haproxy(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (HAProxy's PEM with chain and key, the certificate)."""
    cert, key = self_signed_certificate(folder)
    combined = folder / "haproxy.pem"
    combined.write_bytes(cert.read_bytes() + key.read_bytes())
    return combined, cert


def wait_listening(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"haproxy exited with {proc.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("haproxy did not listen")


async def run_stream(
    url: str, context: ssl.SSLContext, log: StreamLog, stop: asyncio.Event
) -> ReconnectingClient:
    frame = solid_jpeg("green")
    client = ReconnectingClient(
        url,
        settings=p.StreamSettings(budget_ms=30_000),
        backoff=Backoff(**BACKOFF),
        token=TOKEN,
        ssl=context,
    )

    async def read() -> None:
        while True:
            event = await client.recv()
            log.events.append((time.monotonic(), event))

    async with client:
        reader = asyncio.create_task(read())
        await client.connected(timeout=30)
        next_send = time.monotonic()
        while not stop.is_set():
            frame_id = await client.send_frame(frame, width=320, height=180)
            log.sent[frame_id] = time.monotonic()
            next_send += 1 / FPS
            await asyncio.sleep(max(0.0, next_send - time.monotonic()))
        await asyncio.sleep(1.0)  # the last answers
        reader.cancel()
    return client


def test_nine_streams_survive_a_drained_and_a_killed_replica(tmp_path):
    haproxy = require_debian_package("haproxy", "haproxy")
    pem, cert = pem_for_haproxy(tmp_path)
    replicas: dict[str, ServerProcess] = {}
    ports = {name: free_port() for name in ("r1", "r2", "r3")}
    balancer = None
    try:
        for name, port in ports.items():
            model = write_colour_model(tmp_path / f"{name}.onnx", version=name)  # answers say who served
            args = [
                "--model",
                str(model),
                "--port",
                str(port),
                "--token",
                TOKEN,
                "--drain-seconds",
                str(DRAIN_S),
            ]
            replicas[name] = ServerProcess(args, tmp_path / f"{name}.log")
        listen = free_port()
        env = {
            **os.environ,
            "VR_LISTEN": f"127.0.0.1:{listen}",
            "VR_CERT": str(pem),
            **{f"VR_REPLICA{i}": f"127.0.0.1:{ports[f'r{i}']}" for i in (1, 2, 3)},
        }
        balancer_log = open(tmp_path / "haproxy.log", "w+")  # noqa: SIM115
        balancer = subprocess.Popen(
            [haproxy, "-db", "-f", str(CONFIG)], env=env, stdout=balancer_log, stderr=subprocess.STDOUT
        )
        wait_listening(listen, balancer)
        context = ssl.create_default_context(cafile=str(cert))

        async def scenario():
            logs = [StreamLog() for _ in range(STREAMS)]
            stop = asyncio.Event()
            tasks = []
            for log in logs:  # one after the other, so least-connections can spread them
                tasks.append(asyncio.create_task(run_stream(f"wss://127.0.0.1:{listen}", context, log, stop)))
                while not log.answers():  # noqa: ASYNC110 (polling the log the stream task fills)
                    await asyncio.sleep(0.02)
            t_start = time.monotonic()
            await asyncio.sleep(WINDOW_S)
            t_term = time.monotonic()
            replicas["r1"].proc.send_signal(15)  # SIGTERM: drain, then close with 1001
            await asyncio.sleep(DRAIN_S + 1.0 + WINDOW_S)
            t_kill = time.monotonic()
            replicas["r2"].proc.kill()  # SIGKILL: no close frame
            await asyncio.sleep(4.0)
            t_end = time.monotonic()
            stop.set()
            clients = await asyncio.gather(*tasks)
            return logs, clients, (t_start, t_term, t_kill, t_end)

        # The clients time the fleet from inside this process, whose heap holds whatever earlier tests
        # imported (torch's alone makes a full collection take ~150 ms here): frozen, the collector
        # leaves it alone and a pause of the instrument is not booked as the fleet's latency.
        gc.freeze()
        try:
            logs, clients, (t_start, t_term, t_kill, t_end) = asyncio.run(scenario())
        finally:
            gc.unfreeze()
    finally:
        if balancer is not None:
            balancer.terminate()
            balancer.wait(timeout=10)
        for replica in replicas.values():
            replica.stop()

    first = [log.replica(0, t_term) for log in logs]
    assert all(len(r) == 1 for r in first), first  # a stream stays on its replica
    placed = {name: sum(r == {name} for r in first) for name in ports}
    assert placed == {"r1": 3, "r2": 3, "r3": 3}, placed  # least connections

    gaps = {"drained": [], "killed": []}
    for log, where in zip(logs, first, strict=True):
        assert sorted(log.accounted()) == sorted(log.sent), "a frame neither answered nor reported"
        ends = [(t, e) for t, e in log.events if isinstance(e, Disconnected) and e.was_connected]
        if where == {"r3"}:
            assert ends == [], ends  # untouched
            continue
        # its streams end once (r1 after draining; r2 at the kill), and for r1's streams, after the
        # drain window (during it they were served as before)
        t_closed, end = ends[0]
        if where == {"r1"}:
            assert (end.close_code, end.close_reason) == (1001, "shutting_down")
            assert t_closed >= t_term + DRAIN_S - 0.1
            assert log.replica(t_term, t_term + DRAIN_S - 0.1) == {"r1"}
        else:
            assert t_closed >= t_kill
            assert end.close_code is None
        again = [t for t, e in log.answers(t_closed) if e.model_version not in where]
        assert again, f"stream on {where} never answered again"
        gaps["drained" if where == {"r1"} else "killed"].append(again[0] - t_closed)
    # docs/scale-out.md: answered again within 1 s of a graceful close, 2 s + the backoff after a kill
    assert max(gaps["drained"]) <= 1.0, gaps
    assert max(gaps["killed"]) <= 2.0 + BACKOFF["max_s"], gaps
    for log in logs:  # at the end everything runs on the last replica
        assert log.replica(t_end - 1.0, t_end) == {"r3"}

    # The untouched replica's streams before any failure, and once r1's streams have moved (two
    # replicas left, before the kill); with all nine on r3 at the end, reported only.
    untouched = [log for log, where in zip(logs, first, strict=True) if where == {"r3"}]

    def p99(since: float, until: float) -> float:
        return float(np.percentile([x for log in untouched for x in log.latencies_ms(since, until)], 99))

    before, moved, alone = p99(t_start, t_term), p99(t_term + DRAIN_S + 1.0, t_kill), p99(t_kill + 1.0, t_end)
    print(
        f"\n[haproxy] reconnect gap after drain max {1000 * max(gaps['drained']):.0f} ms, after kill max "
        f"{1000 * max(gaps['killed']):.0f} ms; untouched streams p99 {before:.1f} ms before, {moved:.1f} ms "
        f"after the drain ({moved / before:.2f}x), {alone:.1f} ms with all nine streams "
        f"({alone / before:.2f}x); reconnects {[c.reconnects for c in clients]}"
    )
    # 1.5x, plus 10 ms: on a two-core machine the replicas, the balancer and these nine clients share
    # the cores, so a p99 of ~100 samples a stream moves with the scheduler, not with the replicas
    assert moved <= 1.5 * before + 10.0, (before, moved)
