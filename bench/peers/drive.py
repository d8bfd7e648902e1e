"""The load generator for request/response peers, run inside the peer's venv by vr-bench.

    python -m vr_recognition.bench.peers.drive JOB.json

JOB names the peer, its URL, the client mode, the LoadConfig, the frames file and where to write the
records. The schedule is vr-bench's own (bench/records.py, same seed: the same phases and frames per
stream as vr-serve got) and so is the pacing (bench/pacing.py); latency counts from the scheduled
time. It runs here, not in vr-bench, because the peer's client library (tritonclient) lives in the
peer's venv, pinned with the server it talks to.

Two client modes, each stream with its own connection:
- open-loop: a request at every display tick, whatever is in flight (like vr-serve's streams);
- one-in-flight: at most one request out; a frame captured meanwhile waits in a one-frame slot
  (a newer one replaces it: `client_skipped`) and goes the moment the answer is back.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import struct
import sys
import time
from pathlib import Path

from vr_recognition.bench.pacing import Pacer
from vr_recognition.bench.peers.specs import ONE_IN_FLIGHT, OPEN_LOOP
from vr_recognition.bench.records import CLIENT_SKIPPED, LoadConfig, StreamRecord, stream_records

MODEL_NAME = "vr"  # bench/peers/triton_server.py binds this name


def write_frames(path: Path, jpegs: list[bytes]) -> None:
    with open(path, "wb") as handle:
        for jpeg in jpegs:
            handle.write(struct.pack("<I", len(jpeg)))
            handle.write(jpeg)


def read_frames(path: Path) -> list[bytes]:
    data, frames, offset = Path(path).read_bytes(), [], 0
    while offset < len(data):
        (size,) = struct.unpack_from("<I", data, offset)
        frames.append(data[offset + 4 : offset + 4 + size])
        offset += 4 + size
    return frames


class TritonCaller:
    """One gRPC channel (one stream); inputs serialized per distinct frame before the clock starts."""

    def __init__(self, url: str, frames: list[bytes]) -> None:
        import numpy as np
        from tritonclient.grpc import InferInput, InferRequestedOutput

        self.target = url.split("://", 1)[-1]
        self.inputs = []
        for jpeg in frames:
            tensor = InferInput("jpeg", [1, 1], "BYTES")
            tensor.set_data_from_numpy(np.array([[jpeg]], dtype=object))
            self.inputs.append(tensor)
        self.outputs = [InferRequestedOutput(name) for name in ("label", "score", "timings_ms")]

    async def start(self) -> None:
        from tritonclient.grpc.aio import InferenceServerClient

        self.client = InferenceServerClient(self.target)
        if not await self.client.is_model_ready(MODEL_NAME):
            raise RuntimeError(f"model {MODEL_NAME!r} is not ready at {self.target}")

    async def __call__(self, index: int) -> tuple:
        """(status, label, timings_ms, provider) of one request for distinct frame `index`."""
        from tritonclient.utils import InferenceServerException

        try:
            result = await self.client.infer(MODEL_NAME, [self.inputs[index]], outputs=self.outputs)
        except InferenceServerException as exc:
            text = str(exc)
            return ("late" if "timeout" in text.lower() else "error", None, {"error": text[:200]}, None)
        label = result.as_numpy("label").reshape(-1)[0]
        decode_ms, infer_ms = (float(v) for v in result.as_numpy("timings_ms").reshape(-1)[:2])
        label = label.decode() if isinstance(label, bytes) else str(label)
        return ("ok", label, {"decode": decode_ms, "infer": infer_ms}, None)

    async def close(self) -> None:
        await self.client.close()


class HttpCaller:
    """LitServe's POST /predict with JSON bodies encoded before the clock starts; a keep-alive pool."""

    def __init__(self, url: str, bodies: list[bytes]) -> None:
        from vr_recognition.bench.peers.http import HttpPool

        self.pool = HttpPool(url)
        self.bodies = bodies

    @staticmethod
    def encode(frames: list[bytes]) -> list[bytes]:
        return [json.dumps({"image": base64.b64encode(jpeg).decode("ascii")}).encode() for jpeg in frames]

    async def start(self) -> None:
        await self.pool.warm(1)

    async def __call__(self, index: int) -> tuple:
        from vr_recognition.bench.peers.http import HttpError

        try:
            status, body = await self.pool.post("/predict", self.bodies[index])
        except HttpError as exc:
            return ("error", None, {"error": str(exc)[:200]}, None)
        if status == 504:  # LitServe's request timeout: waited in its queue past the budget
            return ("late", None, {}, None)
        if status != 200:
            return ("error", None, {"error": f"HTTP {status}: {body[:200]!r}"}, None)
        answer = json.loads(body)
        timings = {k: float(v) for k, v in (answer.get("timings_ms") or {}).items()}
        return ("ok", answer.get("label"), timings, answer.get("provider"))

    async def close(self) -> None:
        await self.pool.close()


async def run_stream(call, record: StreamRecord, frames_count: int, mode: str, pacer: Pacer,
                     drain_s: float, seen: dict) -> None:  # fmt: skip
    """Send the stream's frames as `mode` says; record each frame's outcome."""

    async def one(frame_id: int) -> None:
        record.sent[frame_id] = time.monotonic()
        try:
            status, label, timings, provider = await call((record.first_frame + frame_id) % frames_count)
        except Exception as exc:  # a broken connection: this frame is an error, the stream goes on
            status, label, timings, provider = "error", None, {"error": f"{type(exc).__name__}: {exc}"}, None
        record.answered[frame_id] = time.monotonic()
        record.status[frame_id] = status
        record.labels[frame_id] = label
        record.timings_ms[frame_id] = {k: v for k, v in timings.items() if k != "error"}
        if "error" in timings:
            seen.setdefault("errors", []).append(timings["error"])
        if provider:
            seen["provider"] = provider

    if mode == OPEN_LOOP:
        tasks = []
        for frame_id, when in enumerate(record.scheduled):
            await pacer.sleep_until(float(when))
            tasks.append(asyncio.create_task(one(frame_id)))
        _, pending = await asyncio.wait(tasks, timeout=drain_s) if tasks else (set(), set())
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        return

    assert mode == ONE_IN_FLIGHT, mode
    slot: list[int] = []  # the newest captured frame not yet sent
    wake = asyncio.Event()
    ticks_done = False

    async def sender() -> None:
        while True:
            while not slot:
                if ticks_done:
                    return
                wake.clear()
                await wake.wait()
            await one(slot.pop())

    sending = asyncio.create_task(sender())
    for frame_id, when in enumerate(record.scheduled):
        await pacer.sleep_until(float(when))
        if slot:  # the previous answer is not back yet: the newer frame takes the slot
            record.status[slot.pop()] = CLIENT_SKIPPED
        slot.append(frame_id)
        wake.set()
    ticks_done = True
    wake.set()
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(sending, drain_s)
    for frame_id in slot:  # still waiting when the run ended: never sent
        record.status[frame_id] = CLIENT_SKIPPED


async def drive(job: dict) -> dict:
    config = LoadConfig(**job["config"])
    frames = read_frames(Path(job["frames"]))
    peer, mode = job["peer"], job["mode"]
    if peer == "triton":
        callers = [TritonCaller(job["url"], frames) for _ in range(config.streams)]
    else:
        bodies = HttpCaller.encode(frames)
        callers = [HttpCaller(job["url"], bodies) for _ in range(config.streams)]
    for caller in callers:
        await caller.start()
    records = stream_records(config, len(callers), len(frames))  # the very schedule vr-serve gets
    pacer = Pacer(job.get("precise", True))
    seen: dict = {}
    try:
        await asyncio.gather(
            *(
                run_stream(caller, record, len(frames), mode, pacer, config.drain_s, seen)
                for caller, record in zip(callers, records, strict=True)
            )
        )
    finally:
        for caller in callers:
            await caller.close()
    errors = seen.get("errors", [])
    notes = [f"{len(errors)} error answer(s), e.g. {errors[0]}"] if errors else []
    return {
        "streams": [record.to_json() for record in records],
        "pacing": pacer.info(),
        "provider": seen.get("provider"),
        "notes": notes,
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(args[0]).read_text())
    result = asyncio.run(drive(job))
    Path(job["out"]).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
