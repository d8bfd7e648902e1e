"""The cost of the Triton hop: vr-serve with its local model against vr-serve --backend triton://, one run.

    python experiments/triton_hop.py --model exported_models/default.onnx --rounds 3 \\
        --streams 1 --fps 90 --duration 10 [--json runs/triton-hop.json]

Writes a Triton repository from --model (vr-triton-repo, CPU instance), serves it with the tritonserver
of the triton venv vr-bench makes (bench/peers/triton_pool.py: the repository's config, onnxruntime
inside), then alternates vr-bench runs against a spawned vr-serve: local backend, Triton backend, round
after round, so a machine whose speed drifts slows both alike. Triton stays up (idle) during the local
runs. Frames are vr-sim renders (vr-bench --sim). Each run's e2e p50/p99 and the median over rounds are
printed (experiments/server_variants.py runs the rounds); the ratio triton/local is the figure to quote.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from server_variants import compare  # experiments/server_variants.py, beside this script

from vr_recognition.bench.peers.serving import free_port
from vr_recognition.bench.peers.specs import PEERS
from vr_recognition.bench.peers.venvs import ensure_venv, peers_dir, triton_env
from vr_recognition.bench.spawn import SpawnedServer
from vr_recognition.server.triton_repo import write_repository


def model_calls(model: Path, port: int, calls: int) -> dict[str, float]:
    """Median time of one batch-1 call: the local session against the Triton backend, interleaved."""
    import numpy as np

    from vr_recognition.server.config import defaults
    from vr_recognition.server.inference import InferenceModel
    from vr_recognition.server.triton_backend import TritonModel, parse_backend

    local = InferenceModel.load(model, "cpu")
    remote = TritonModel.load(
        model,
        parse_backend(f"triton://127.0.0.1:{port}/vr"),
        max_batch=8,
        timeout_s=defaults()["backend_timeout_s"],
    )
    c = local.contract
    frame = np.random.default_rng(0).integers(0, 256, (1, c.input_height, c.input_width, 3), np.uint8)
    times: dict[str, list[float]] = {"local": [], "triton": []}
    for _ in range(calls):
        for name, backend in (("local", local), ("triton", remote)):
            start = time.perf_counter()
            backend.run(frame)
            times[name].append((time.perf_counter() - start) * 1000)
    remote.close()
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("exported_models/default.onnx"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--fps", type=float, default=90.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--calls", type=int, default=300, help="model calls timed per backend")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="triton-hop-") as tmp:
        folder = Path(tmp)
        repo = write_repository(args.model, folder / "repo", kind="cpu")
        python = ensure_venv(PEERS["triton"], peers_dir(), log=print).python
        port = free_port()
        command = [str(python), "-m", "vr_recognition.bench.peers.triton_pool", "--repository", str(repo),
                   "--grpc-port", str(port)]  # fmt: skip
        with SpawnedServer(command, "triton", ready_timeout=300.0, env=triton_env(python), schemes="grpc",
                           own_group=True):  # fmt: skip
            triton = ["--backend", f"triton://127.0.0.1:{port}/vr"]
            result = compare(args.model, {"local": [], "triton": triton}, args.streams, args.fps,
                             args.duration, args.rounds, warmup=2.0)  # fmt: skip
            calls = model_calls(args.model, port, args.calls)
    summary = {**result["summary"], "model_call_ms": calls}
    for q in ("p50", "p99"):
        summary[f"ratio_{q}"] = summary["triton"][q] / summary["local"][q]
    print(f"triton/local p50 {summary['ratio_p50']:.2f}x, p99 {summary['ratio_p99']:.2f}x")
    print(
        f"one model call, batch 1, median of {args.calls}: local {calls['local']:.2f} ms, through Triton "
        f"{calls['triton']:.2f} ms (the hop: {calls['triton'] - calls['local']:.2f} ms)"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"summary": summary, "runs": result["runs"]}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
