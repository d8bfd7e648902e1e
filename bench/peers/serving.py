"""What both peer servers (triton_server.py, litserve_server.py) take and need: the same command line,
so bench/peers/run.py starts either the same way, and free loopback ports."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path


def parse_args(description: str, budget_help: str, argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--providers", default="auto")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--batch-wait-ms", type=float, default=1.0)
    parser.add_argument("--budget-ms", type=float, required=True, help=budget_help)
    return parser.parse_args(argv)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
