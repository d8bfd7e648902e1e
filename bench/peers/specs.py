"""Which peers vr-bench knows, how each is installed, and the client modes it is driven in."""

from __future__ import annotations

from dataclasses import dataclass

OPEN_LOOP = "open-loop"  # a request at every display tick, whatever is in flight
ONE_IN_FLIGHT = "one-in-flight"  # the newest captured frame goes when the previous answer is back
MODES = (OPEN_LOOP, ONE_IN_FLIGHT)

# What every peer shares with vr-serve's defaults unless vr-bench is told otherwise.
DEFAULT_BATCH_WAIT_MS = 1.0  # the "short queue delay" both peers' docs suggest for latency


@dataclass(frozen=True)
class PeerSpec:
    name: str
    title: str
    protocol: str  # how the driver talks to it
    requirements: tuple[str, ...]  # pinned; onnxruntime (and where allowed opencv, numpy) follow the host
    follow_host: tuple[str, ...]  # distributions pinned to the version vr-bench itself runs
    server_module: str  # run with the peer venv's python -m
    url_scheme: str


PEERS: dict[str, PeerSpec] = {
    "triton": PeerSpec(
        name="triton",
        title="Triton (PyTriton)",
        protocol="gRPC (tritonclient.grpc.aio)",
        # nvidia-pytriton bundles tritonserver 2.51 and its Python backend; it needs numpy < 2, and
        # opencv-python-headless 5 needs numpy >= 2, so this venv has the 4.x line.
        requirements=("nvidia-pytriton==0.7.0", "numpy==1.26.4", "opencv-python-headless==4.11.0.86"),
        follow_host=("onnxruntime",),
        server_module="vr_recognition.bench.peers.triton_server",
        url_scheme="grpc",
    ),
    "litserve": PeerSpec(
        name="litserve",
        title="LitServe",
        protocol="HTTP/1.1 keep-alive, JSON with a base64 JPEG",
        requirements=("litserve==0.2.19",),
        follow_host=("onnxruntime", "numpy", "opencv-python-headless"),
        server_module="vr_recognition.bench.peers.litserve_server",
        url_scheme="http",
    ),
}


def parse_peers(text: str | None) -> list[str]:
    """'triton,litserve' -> ['triton', 'litserve']; ValueError names the known peers."""
    if not text:
        return []
    names = [n.strip().lower() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in PEERS]
    if unknown:
        raise ValueError(f"unknown peer(s) {unknown}; vr-bench knows {sorted(PEERS)}")
    return list(dict.fromkeys(names))


def parse_modes(text: str) -> list[str]:
    modes = [m.strip().lower() for m in text.split(",") if m.strip()]
    unknown = [m for m in modes if m not in MODES]
    if unknown or not modes:
        raise ValueError(f"--peer-modes takes {' and/or '.join(MODES)}, not {text!r}")
    return list(dict.fromkeys(modes))
