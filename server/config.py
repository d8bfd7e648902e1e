"""vr-serve's settings: one dataclass, the single source of every default (the command line reads its
defaults from here). Pure Python, so `vr-serve --help` needs nothing heavy."""

from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

from vr_recognition.server import protocol as p

LATE_POLICIES = ("skip", "infer")  # see server/batcher.py
FRAME_CHOICES = ("late", "early")  # when a stream's frame is picked: as the model frees up, or at once
CLOSE_TIMEOUT_S = 2.0  # how long a closing handshake may take before the connection is dropped


@dataclass
class ServerConfig:
    model_path: Path
    host: str = "127.0.0.1"
    port: int = p.DEFAULT_PORT
    budget_ms: float = p.DEFAULT_BUDGET_MS
    top_k: int = p.DEFAULT_TOP_K
    max_batch: int = 8
    batch_wait_ms: float = 0.0
    late_policy: str = "skip"
    frame_choice: str = "late"  # one of FRAME_CHOICES; measured against "early" in docs/benchmarks.md
    providers: str = "auto"
    # "local": onnxruntime in this process; "triton://HOST:PORT/MODEL": batches go to a Triton Inference
    # Server over gRPC (server/triton_backend.py), the contract still read from model_path.
    backend: str = "local"
    backend_timeout_s: float = 2.0  # a Triton batch not answered in this long fails its frames
    threads: int | None = None
    decode_threads: int = 2
    token: str | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    allowed_origins: tuple[str, ...] = ()
    max_streams: int = 64
    limits: p.Limits = field(default_factory=p.Limits)
    hello_timeout_s: float = 10.0
    send_timeout_s: float = 5.0  # a client that does not take a reply for this long is dropped
    keepalive_s: float = 10.0  # ping interval, and how late a pong may be before the peer is dropped
    shutdown_grace_s: float = 5.0
    # On SIGTERM, this long with /healthz answering 503 and new streams refused while open streams are
    # served as before, so that a load balancer's health check takes the replica out before its streams
    # are closed (docs/protocol.md 3.5). 0: close at once (one host, no balancer).
    drain_s: float = 0.0
    watch_model: bool = False
    watch_interval_s: float = 1.0

    @property
    def stream_defaults(self) -> p.StreamSettings:
        """What a stream gets for the settings its client does not ask for."""
        return p.StreamSettings(top_k=self.top_k, budget_ms=self.budget_ms)


def defaults() -> dict[str, Any]:
    """Field name -> default value, for argparse."""
    values: dict[str, Any] = {}
    for f in fields(ServerConfig):
        if f.default_factory is not MISSING:
            values[f.name] = f.default_factory()
        elif f.default is not MISSING:
            values[f.name] = f.default
    return values
