"""vr-serve settings against each other at a headset's rate: vr-bench runs, interleaved round by round.

    python experiments/server_variants.py --streams 1 --fps 90 --rounds 3 --duration 20 \\
        --variant "asyncio=" --variant "uvloop=--loop uvloop" --variant "threads1=--threads 1" \\
        [--model exported_models/default.onnx] [--json runs/variants.json]

Each variant is NAME=ARGS: vr-serve arguments added to `--model MODEL`. Every round runs each variant
once (`vr-bench --spawn --sim`, 1280x720 q80 frames of a vr-sim head path, budget one display frame),
in the same order, so a machine whose speed drifts slows all of them alike. Printed: each run's e2e
p50/p99 and deadline-miss rate, then per variant the median over rounds.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(model: Path, server_args: list[str], out: Path, streams: int, fps: float, duration: float,
        warmup: float) -> dict:  # fmt: skip
    """One vr-bench run against a spawned vr-serve; its report."""
    command = [
        sys.executable, "-m", "vr_recognition.bench.cli", "--spawn", "--sim", "--sim-seconds", "4",
        "--streams", str(streams), "--fps", str(fps), "--duration", str(duration), "--warmup", str(warmup),
        "--size", "1280x720", "--quality", "80", "--json", str(out),
        "--", "--model", str(model), *server_args,
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return json.loads(out.read_text())


def compare(
    model: Path,
    variants: dict[str, list[str]],
    streams: int,
    fps: float,
    duration: float,
    rounds: int,
    warmup: float = 1.0,
) -> dict:
    """Every variant once per round, in the same order; prints each run and the medians. Returns
    {"summary": {name: median p50, p99, miss}, "runs": {name: [row per round]}}."""
    results: dict[str, list[dict]] = {name: [] for name in variants}
    with tempfile.TemporaryDirectory(prefix="variants-") as tmp:
        for round_ in range(rounds):
            for name, server_args in variants.items():
                out = Path(tmp) / f"{name}-{round_}.json"
                report = run(model, server_args, out, streams, fps, duration, warmup)
                e2e, stages = report["e2e_ms"], report["stage_ms"]
                row = {
                    "p50": e2e["p50"],
                    "p99": e2e["p99"],
                    "miss": report["deadline_miss_rate"],
                    "answered_fps": report["answered_fps"]["total"],
                    "stage_ms": stages,
                }
                results[name].append(row)
                print(
                    f"round {round_ + 1} {name:10s} e2e p50 {row['p50']:6.2f} p99 {row['p99']:6.2f} ms, "
                    f"miss {100 * row['miss']:5.1f} %, answered {row['answered_fps']:.1f}/s; p50 decode "
                    f"{stages.get('decode')} infer {stages.get('infer')} "
                    f"outside the server {stages.get('outside_server')} ms",
                    flush=True,
                )
    summary = {}
    for name, rows in results.items():
        summary[name] = {key: statistics.median(r[key] for r in rows) for key in ("p50", "p99", "miss")}
        m = summary[name]
        print(f"median of {rounds}: {name:10s} p50 {m['p50']:.2f} p99 {m['p99']:.2f} ms, "
              f"miss {100 * m['miss']:.1f} %")  # fmt: skip
    return {"summary": summary, "runs": results}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, default=Path("exported_models/default.onnx"))
    parser.add_argument("--variant", action="append", required=True, help="NAME=vr-serve arguments")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument("--fps", type=float, default=90.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    variants = {}
    for text in args.variant:
        name, _, rest = text.partition("=")
        variants[name] = shlex.split(rest)
    result = compare(args.model, variants, args.streams, args.fps, args.duration, args.rounds)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
