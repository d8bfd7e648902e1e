"""vr-bench command line."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vr-bench",
        description="Open-loop latency benchmark: N streams send frames at a headset's display rate, "
        "latency is measured from each frame's scheduled send time (docs/benchmarks.md).",
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--url", help="ws://host:port of a running vr-serve")
    target.add_argument("--spawn", action="store_true", help="start vr-serve for the run and stop it after")
    parser.add_argument("--streams", type=int, default=1)
    parser.add_argument(
        "--fps", type=float, default=90.0, help="frames per second per stream (72, 90, 120, ...)"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--json", help="write results to this JSON file")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    del args
    print("vr-bench: the benchmark is not built yet (it is the vr-bench issue).", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
