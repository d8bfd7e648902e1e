"""vr-serve whose model takes a fixed extra time per batch: a server slower than its clients on any CPU.

A heavy ONNX graph is slow only in arithmetic, and a faster CPU makes it fast (a "35 ms" model ran in
9 ms on an AVX-512 machine, and the tests that needed a backlog saw none). A sleep is a cost in time:

    python tests/slow_vr_serve.py SECONDS_PER_BATCH [vr-serve arguments]

Run by path (not `-m tests...`), so it needs nothing from the tests package. In-process servers get
the same cost from `fixed_cost` (tests/server_helpers.py: `slow_down`).
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any


def fixed_cost(run: Callable[..., Any], seconds: float, started: threading.Event | None = None) -> Callable:
    """`run` (a model's batch function, bound or not) after a `seconds` sleep; sets `started` on entry."""

    def slow_run(*args: Any) -> Any:
        if started is not None:
            started.set()
        time.sleep(seconds)
        return run(*args)

    return slow_run


def main(argv: list[str]) -> int:
    from vr_recognition.server import cli
    from vr_recognition.server.inference import InferenceModel

    seconds, *serve_args = argv
    # Every model the process loads (the first one and each hot reload) runs through here.
    InferenceModel.run = fixed_cost(InferenceModel.run, float(seconds))
    return cli.main(serve_args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
