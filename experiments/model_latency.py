"""Floor latency of several .onnx models on this machine, measured in one run, interleaved.

    python experiments/model_latency.py --data data/demo exported_models/default.onnx \\
        exported_models/demo-resnet18-fp32.onnx [--threads 2] [--json OUT.json]

The floor is vr-bench's (bench/baselines.py measure_floor): decode + preprocess + session.run of a
1280x720 JPEG (quality 80) from --data, inline, batch 1, the session vr-serve builds. Rounds alternate
the models, so a machine whose speed drifts (shared cores) slows all of them alike: compare the ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from vr_recognition.bench.baselines import measure_floor
from vr_recognition.bench.frames import frames_from_folder
from vr_recognition.bench.stats import percentiles
from vr_recognition.training.model_files import read_contract

FRAME_SIZE = (1280, 720)
QUALITY = 80


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="+", type=Path)
    parser.add_argument("--data", required=True, help="frames to decode (any dataset folder)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iterations", type=int, default=60, help="samples per model per round")
    parser.add_argument("--threads", type=int, default=0, help="onnxruntime intra-op threads (0: its own)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    frames = frames_from_folder(Path(args.data), FRAME_SIZE, QUALITY, 64)
    floor: dict[Path, list[float]] = {m: [] for m in args.models}
    bare: dict[Path, list[float]] = {m: [] for m in args.models}
    for _ in range(args.rounds):
        for model in args.models:
            result = measure_floor(
                model,
                frames,
                providers="cpu",
                min_iterations=args.iterations,
                max_seconds=0,
                threads=args.threads or None,
            )
            floor[model] += result.floor_ms.tolist()
            bare[model] += result.bare_model_ms.tolist()
    reference = float(np.percentile(floor[args.models[0]], 50))
    rows = []
    for model in args.models:
        contract = read_contract(model)
        rows.append(
            {
                "file": model.name,
                "name": contract.name,
                "precision": contract.precision,
                "input": f"{contract.input_width}x{contract.input_height}",
                "size_mb": round(model.stat().st_size / 1e6, 1),
                "floor_ms": percentiles(np.array(floor[model]), ("p50", "p99")),
                "model_ms": percentiles(np.array(bare[model]), ("p50", "p99")),
                "floor_vs_first": round(float(np.percentile(floor[model], 50)) / reference, 2),
            }
        )
    print("| file | input | precision | size MB | floor p50 / p99 ms | model alone p50 ms | floor vs first |")
    print("|---|---|---|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['file']} | {row['input']} | {row['precision']} | {row['size_mb']} | "
            f"{row['floor_ms']['p50']:.1f} / {row['floor_ms']['p99']:.1f} | {row['model_ms']['p50']:.1f} | "
            f"{row['floor_vs_first']:.2f} |"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
