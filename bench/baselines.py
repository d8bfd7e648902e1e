"""What the served latency is compared with, measured on the same frames in the same run.

- bare model: `session.run` alone on an already preprocessed frame, batch 1;
- floor: decode + preprocess (server.preprocess, the model's contract) + `session.run`, inline in
  one thread with no server, no network, no queue: the least a frame can cost on this machine with
  this model file and onnxruntime session settings (server.inference.InferenceModel.load);
- paced floor: the same inline work, one frame every 1/fps s with the thread asleep in between, as a
  server's threads are between a stream's frames. Run back to back, the caches, the branch predictors
  and onnxruntime's spinning threads stay warm from the frame before; a stream at a display rate
  never gets that. Measured on 2 cores (Intel Xeon, AVX-512), Lite0 INT8 at 720p: floor p50 3.1-3.3 ms
  back to back, 4.0 ms at 90 Hz and 4.5-4.7 ms at 30 Hz; sleeping by spinning instead still left
  4.2 ms, so most of it is not the CPU's idle states. A server can only be held to the paced floor;
  the back-to-back one bounds throughput (floor max rate);
- naive: the seeds' recipe served the obvious way (bench/naive_server.py: torch eager, PIL,
  torchvision transforms, one FIFO queue, no dropping), behind the same wire protocol, loaded with
  the same open-loop streams. It runs in its own process because only it may import torch.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vr_recognition.bench.frames import EncodedFrame
from vr_recognition.bench.spawn import SpawnedServer
from vr_recognition.bench.stats import percentiles


@dataclass
class FloorResult:
    bare_model_ms: np.ndarray
    floor_ms: np.ndarray
    provider: str
    contract: object  # server.model_format.ModelContract
    paced_ms: dict[float, np.ndarray] = field(default_factory=dict)  # fps -> floor samples at that rate

    def report(self, fps: float | None = None) -> dict:
        """The floor's keys; with `fps`, also the floor paced at that rate (None when not measured)."""
        mean_ms = float(self.floor_ms.mean())
        paced = self.paced_ms.get(fps) if fps is not None else None
        return {
            "bare_model_ms": percentiles(self.bare_model_ms, ("p50", "p99")),
            "floor_ms": percentiles(self.floor_ms, ("p50", "p99")),
            "floor_mean_ms": round(mean_ms, 3),
            "floor_max_rate_fps": round(1000.0 / mean_ms, 3),
            "floor_iterations": int(self.floor_ms.size),
            "floor_provider": self.provider,
            "floor_paced_ms": None if paced is None else percentiles(paced, ("p50", "p99")),
            "floor_paced_fps": None if paced is None else fps,
        }


def measure_floor(
    model_path: Path,
    frames: list[EncodedFrame],
    providers: str = "auto",
    threads: int | None = None,
    min_iterations: int = 30,
    max_seconds: float = 3.0,
    paced_fps: Iterable[float] = (),
    paced_seconds: float = 2.0,
) -> FloorResult:
    """Decode, preprocess and run each frame inline, one after another, timing each part; then, for
    each rate in `paced_fps`, the same one frame every 1/fps s for `paced_seconds` (at least
    `min_iterations` frames)."""
    from vr_recognition.server.inference import InferenceModel  # onnxruntime: only when a floor is wanted
    from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME
    from vr_recognition.server.preprocess import preprocess_jpeg

    model = InferenceModel.load(Path(model_path), providers=providers, max_batch=1, threads=threads)
    session, contract = model.session, model.contract

    def inline(frame: EncodedFrame) -> None:
        session.run([OUTPUT_NAME], {INPUT_NAME: preprocess_jpeg(frame.jpeg, contract)[None]})

    for frame in frames[:3]:  # warm caches and allocators the way the served frames have
        inline(frame)
    floor, bare = [], []
    stop_after = time.perf_counter() + max_seconds
    i = 0
    while i < min_iterations or (time.perf_counter() < stop_after and i < 10 * min_iterations):
        frame = frames[i % len(frames)]
        start = time.perf_counter()
        batch = preprocess_jpeg(frame.jpeg, contract)[None]
        ran = time.perf_counter()
        session.run([OUTPUT_NAME], {INPUT_NAME: batch})
        done = time.perf_counter()
        floor.append((done - start) * 1000.0)
        bare.append((done - ran) * 1000.0)
        i += 1
    paced = {
        fps: paced_floor(inline, frames, fps, max(min_iterations, round(fps * paced_seconds)))
        for fps in paced_fps
    }
    return FloorResult(np.array(bare), np.array(floor), model.provider, contract, paced)


def paced_floor(
    inline: Callable[[EncodedFrame], None], frames: list[EncodedFrame], fps: float, iterations: int
) -> np.ndarray:
    """The floor's `inline` work on one frame every 1/fps s, asleep in between; ms per frame, timed
    from when the thread woke (its timer's lateness is not the frame's cost)."""
    samples, due = [], time.perf_counter()
    for i in range(iterations):
        due += 1.0 / fps
        time.sleep(max(0.0, due - time.perf_counter()))
        start = time.perf_counter()
        inline(frames[i % len(frames)])
        samples.append((time.perf_counter() - start) * 1000.0)
    return np.array(samples)


def torch_missing_reason(python: str) -> str | None:
    """Why the naive baseline cannot run under `python`, or None when torch, torchvision and PIL import."""
    modules = ("torch", "torchvision", "PIL")
    if python == sys.executable:
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
    else:
        probe = (
            f"import importlib.util as u; print(','.join(m for m in {modules!r} if u.find_spec(m) is None))"
        )
        try:
            done = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run {python}: {exc}"
        if done.returncode != 0:
            return f"{python} failed: {done.stderr.strip()[-300:]}"
        missing = [m for m in done.stdout.strip().split(",") if m]
    if missing:
        return (
            f"naive baseline skipped: {', '.join(missing)} not importable by {python}. It needs torch, "
            "torchvision and pillow (pip install '.[train]'), or point --naive-python at an "
            "interpreter that has them."
        )
    return None


def spawn_naive_server(python: str, contract, threads: int | None = None) -> SpawnedServer:
    """The naive server as a subprocess, told the served model's arch, classes and input size."""
    command = [
        python,
        "-m",
        "vr_recognition.bench.naive_server",
        "--port",
        "0",
        "--arch",
        contract.arch or "resnet18",
        "--classes",
        ",".join(contract.classes),
        "--input-size",
        f"{contract.input_height}x{contract.input_width}",
        "--resize-shorter",
        str(contract.resize_shorter),
        "--name",
        contract.name,
    ]
    if threads:
        command += ["--threads", str(threads)]
    return SpawnedServer(command, "naive-server")
