"""vr-serve command line: find the model, check the install, start serving.

Model lookup is deliberately simple so `make serve` works on a fresh clone: `--model PATH`, else
`exported_models/default.onnx`, else the only .onnx file in `exported_models/`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from importlib import metadata
from pathlib import Path

from vr_recognition.server import __version__
from vr_recognition.server.config import FRAME_CHOICES, LATE_POLICIES, ServerConfig
from vr_recognition.server.config import defaults as config_defaults
from vr_recognition.server.errors import ServeError
from vr_recognition.server.logs import configure_logging
from vr_recognition.server.protocol import Limits

log = logging.getLogger("vr_serve")

DEFAULT_MODELS_DIR = Path("exported_models")
NO_MODEL_HELP = (
    "Make one with train-vr (see docs/training.md), e.g.\n"
    "  train-vr --data DIR --arch resnet18 --epochs 10 --out runs/demo "
    "--export exported_models/default.onnx\n"
    "or pass --model PATH."
)


class SetupError(ServeError):
    """Something about the installation or the files prevents serving; the message says what to do."""


def find_default_model(models_dir: Path) -> Path:
    default = models_dir / "default.onnx"
    if default.is_file():
        return default
    candidates = sorted(models_dir.glob("*.onnx")) if models_dir.is_dir() else []
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise SetupError(f"No model found: {models_dir}/ holds no .onnx file.\n{NO_MODEL_HELP}")
    names = ", ".join(c.name for c in candidates)
    raise SetupError(
        f"{models_dir}/ holds several models ({names}) and no default.onnx: choose one with --model PATH."
    )


def check_single_onnxruntime() -> None:
    """onnxruntime and onnxruntime-gpu both install the `onnxruntime` module; with both, the one
    installed last silently wins, so a GPU host can end up on CPU. Refuse instead."""
    installed = []
    for name in ("onnxruntime", "onnxruntime-gpu"):
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        installed.append(name)
    if len(installed) > 1:
        raise SetupError(
            "Both onnxruntime and onnxruntime-gpu are installed; they overwrite each other.\n"
            "For GPU serving: pip uninstall -y onnxruntime onnxruntime-gpu && pip install '.[serve-gpu]'\n"
            "For CPU serving: pip uninstall -y onnxruntime onnxruntime-gpu && pip install '.[serve]'\n"
            "(or `make serve GPU=1` / `make serve`, which do this for you)."
        )
    if not installed:
        raise SetupError("onnxruntime is not installed: pip install '.[serve]' (or '.[serve-gpu]' for GPUs).")


def build_parser() -> argparse.ArgumentParser:
    d = config_defaults()  # every default comes from ServerConfig (server/config.py)
    limits = d["limits"]
    parser = argparse.ArgumentParser(
        prog="vr-serve",
        description="Real-time recognition server: headsets stream frames over websockets "
        "(protocol: docs/protocol.md) and get class predictions within a per-frame latency budget.",
    )
    add = parser.add_argument
    add("--model", type=Path, help="ONNX model exported by train-vr (default: see --models-dir)")
    add(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        help="where to look without --model: default.onnx, else the only .onnx (default: %(default)s)",
    )
    add("--host", default=d["host"], help="address to listen on (default: %(default)s)")
    add("--port", type=int, default=d["port"], help="websocket and HTTP port (default: %(default)s)")
    add(
        "--budget-ms",
        type=float,
        default=d["budget_ms"],
        help="default per-frame budget; clients may set their own (default: %(default)s, one 90 Hz frame)",
    )
    add("--top-k", type=int, default=d["top_k"], help="default labels per result (default: %(default)s)")
    add("--max-batch", type=int, default=d["max_batch"], help="largest inference batch across streams")
    add(
        "--batch-wait-ms",
        type=float,
        default=d["batch_wait_ms"],
        help="wait this long for a fuller batch, never past a deadline (default 0: batch what is queued)",
    )
    add(
        "--late-policy",
        choices=LATE_POLICIES,
        default=d["late_policy"],
        help="late frames: answer 'late' unrun while fresher frames wait (skip), or run them all (infer)",
    )
    add(
        "--frame-choice",
        choices=FRAME_CHOICES,
        default=d["frame_choice"],
        help="pick a stream's frame as the model is about to be free (late: fresher answers) or as soon "
        "as the stream's worker is free (early) (default: %(default)s)",
    )
    add(
        "--providers",
        default=d["providers"],
        help="onnxruntime execution providers: auto (tensorrt, cuda, cpu: what is available) or a list",
    )
    add(
        "--backend",
        default=d["backend"],
        help="where batches run: local (onnxruntime here) or triton://HOST:PORT/MODEL (a Triton Inference "
        "Server's gRPC port, serving the repository vr-triton-repo wrote from --model; docs/scale-out.md)",
    )
    add(
        "--backend-timeout-ms",
        type=float,
        default=d["backend_timeout_s"] * 1000,
        help="with triton://, a batch not answered in this long fails its frames (model_unavailable)",
    )
    add("--threads", type=int, default=d["threads"], help="onnxruntime intra-op threads (default: all cores)")
    add(
        "--decode-threads",
        type=int,
        default=d["decode_threads"],
        help="threads decoding frames (default: %(default)s)",
    )
    add("--token", help="require 'Authorization: Bearer TOKEN' (or ?token=TOKEN) to connect")
    add("--tls-cert", type=Path, help="certificate chain (PEM) to serve wss://")
    add("--tls-key", type=Path, help="private key (PEM) for --tls-cert")
    add("--allowed-origins", help="comma-separated Origin values browsers may connect from (others: 403)")
    add(
        "--max-streams",
        type=int,
        default=d["max_streams"],
        help="refuse connections beyond this many (default: %(default)s)",
    )
    add(
        "--max-message-mb",
        type=float,
        default=limits.max_message_bytes / 2**20,
        help="largest websocket message accepted (default: %(default)s)",
    )
    add(
        "--send-timeout",
        type=float,
        default=d["send_timeout_s"],
        help="drop a client that reads nothing this long (default: %(default)s s)",
    )
    add(
        "--hello-timeout",
        type=float,
        default=d["hello_timeout_s"],
        help="close a connection that sends no hello this long (default: %(default)s s)",
    )
    add(
        "--keepalive",
        type=float,
        default=d["keepalive_s"],
        help="ping every this many seconds; close a client whose pong is this late (default: %(default)s)",
    )
    add(
        "--drain-seconds",
        type=float,
        default=d["drain_s"],
        help="on SIGTERM, answer 503 on /healthz and refuse new streams for this long while serving open "
        "ones, then finish in-flight frames and close with 1001; behind a load balancer, longer than its "
        "health check needs to mark the replica down (default: %(default)s)",
    )
    add(
        "--loop",
        choices=("asyncio", "uvloop"),
        default="asyncio",
        help="the event loop: asyncio's own, or uvloop (pip install uvloop) (default: %(default)s)",
    )
    add("--watch", action="store_true", help="hot-reload the model when its file changes")
    add("--log-format", choices=("text", "json"), default="text")
    add(
        "--self-test",
        action="store_true",
        help="check the install and the providers this host really runs, time the model, and exit "
        "(non-zero when the provider asked for is not the one running)",
    )
    add("--version", action="version", version=f"vr-serve {__version__}")
    return parser


def config_from_args(args: argparse.Namespace, model: Path) -> ServerConfig:
    if (args.tls_cert is None) != (args.tls_key is None):
        raise SetupError("--tls-cert and --tls-key go together")
    from vr_recognition.server.triton_backend import parse_backend

    parse_backend(args.backend)  # a malformed one stops here, with what it takes
    if args.backend_timeout_ms <= 0:
        raise SetupError("--backend-timeout-ms must be positive")
    origins = tuple(o.strip() for o in (args.allowed_origins or "").split(",") if o.strip())
    return ServerConfig(
        model_path=model,
        host=args.host,
        port=args.port,
        budget_ms=args.budget_ms,
        top_k=args.top_k,
        max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms,
        late_policy=args.late_policy,
        frame_choice=args.frame_choice,
        providers=args.providers,
        backend=args.backend,
        backend_timeout_s=args.backend_timeout_ms / 1000,
        threads=args.threads,
        decode_threads=args.decode_threads,
        token=args.token,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        allowed_origins=origins,
        max_streams=args.max_streams,
        limits=Limits(max_message_bytes=int(args.max_message_mb * 2**20)),
        send_timeout_s=args.send_timeout,
        keepalive_s=args.keepalive,
        hello_timeout_s=args.hello_timeout,
        drain_s=args.drain_seconds,
        watch_model=args.watch,
    )


async def serve_until_stopped(config: ServerConfig) -> int:
    from vr_recognition.server.app import RecognitionServer

    server = RecognitionServer(config)
    await server.start()
    server.install_signal_handlers()
    scheme = "wss" if config.tls_cert else "ws"
    log.info(
        "listening on %s://%s:%d (healthz and metrics on the same port)", scheme, config.host, server.port
    )
    try:
        await server.load_model()
    except ServeError as exc:
        log.error("cannot serve %s: %s", config.model_path, exc)
        await server.shutdown()
        return 2
    log.info("ready: %s on %s", server.model.contract.name, server.model.provider)
    await server.wait_stopped()
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.self_test:
        from vr_recognition.server.doctor import self_test

        return self_test(args, find_default_model)
    try:
        check_single_onnxruntime()
        model = args.model if args.model is not None else find_default_model(args.models_dir)
        if not model.is_file():
            raise SetupError(f"Model file {model} does not exist.\n{NO_MODEL_HELP}")
        config = config_from_args(args, model)
    except ServeError as exc:
        print(f"vr-serve: {exc}", file=sys.stderr)
        return 2
    configure_logging(args.log_format)
    loop_factory = None
    if args.loop == "uvloop":
        try:
            import uvloop
        except ImportError:
            print("vr-serve: --loop uvloop needs uvloop: pip install uvloop", file=sys.stderr)
            return 2
        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve_until_stopped(config))


if __name__ == "__main__":
    sys.exit(main())
