"""What the served latency is compared with, measured on the same frames in the same run.

- bare model: `session.run` alone on an already preprocessed frame, batch 1;
- floor: decode + preprocess (server.preprocess, the model's contract) + `session.run`, inline in
  one thread with no server, no network, no queue: the least a frame can cost on this machine with
  this model file and onnxruntime session settings (server.inference.InferenceModel.load);
- naive: the seeds' recipe served the obvious way (bench/naive_server.py: torch eager, PIL,
  torchvision transforms, one FIFO queue, no dropping), behind the same wire protocol, loaded with
  the same open-loop streams. It runs in its own process because only it may import torch.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from dataclasses import dataclass
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

    def report(self) -> dict:
        mean_ms = float(self.floor_ms.mean())
        return {
            "bare_model_ms": percentiles(self.bare_model_ms, ("p50", "p99")),
            "floor_ms": percentiles(self.floor_ms, ("p50", "p99")),
            "floor_mean_ms": round(mean_ms, 3),
            "floor_max_rate_fps": round(1000.0 / mean_ms, 3),
            "floor_iterations": int(self.floor_ms.size),
            "floor_provider": self.provider,
        }


def measure_floor(
    model_path: Path,
    frames: list[EncodedFrame],
    providers: str = "auto",
    threads: int | None = None,
    min_iterations: int = 30,
    max_seconds: float = 3.0,
) -> FloorResult:
    """Decode, preprocess and run each frame inline, one after another, timing each part."""
    from vr_recognition.server.inference import InferenceModel  # onnxruntime: only when a floor is wanted
    from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME
    from vr_recognition.server.preprocess import preprocess_jpeg

    model = InferenceModel.load(Path(model_path), providers=providers, max_batch=1, threads=threads)
    session, contract = model.session, model.contract
    for frame in frames[:3]:  # warm caches and allocators the way the served frames have
        session.run([OUTPUT_NAME], {INPUT_NAME: preprocess_jpeg(frame.jpeg, contract)[None]})
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
    return FloorResult(np.array(bare), np.array(floor), model.provider, contract)


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
