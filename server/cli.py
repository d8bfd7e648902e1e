"""vr-serve command line: find the model, check the install, start serving.

Model lookup is deliberately simple so `make serve` works on a fresh clone: `--model PATH`, else
`exported_models/default.onnx`, else the only .onnx file in `exported_models/`.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from server import __version__

DEFAULT_MODELS_DIR = Path("exported_models")
NO_MODEL_HELP = (
    "Make one with train-vr (see docs/training.md), e.g.\n"
    "  train-vr --data DIR --arch resnet18 --epochs 10 --out runs/demo "
    "--export exported_models/default.onnx\n"
    "or pass --model PATH."
)


class SetupError(RuntimeError):
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
    parser = argparse.ArgumentParser(
        prog="vr-serve",
        description="Real-time recognition server: headsets stream frames over websockets "
        "(protocol: docs/protocol.md) and get class predictions within a per-frame latency budget.",
    )
    parser.add_argument(
        "--model", type=Path, help="ONNX model exported by train-vr (default: see --models-dir)"
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=DEFAULT_MODELS_DIR,
        help="where to look without --model: default.onnx, else the only .onnx (default: %(default)s)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument(
        "--port", type=int, default=8765, help="port for websocket and HTTP (default: %(default)s)"
    )
    parser.add_argument(
        "--budget-ms", type=float, default=11.1, help="default per-frame budget (90 Hz: 11.1)"
    )
    parser.add_argument("--max-batch", type=int, default=8, help="largest inference batch across streams")
    parser.add_argument(
        "--providers",
        default="auto",
        help="onnxruntime execution providers: auto, or a list such as tensorrt,cuda,cpu (default: auto)",
    )
    parser.add_argument("--token", help="require 'Authorization: Bearer TOKEN' on every connection")
    parser.add_argument("--tls-cert", type=Path, help="certificate (PEM) to serve wss://")
    parser.add_argument("--tls-key", type=Path, help="private key (PEM) for --tls-cert")
    parser.add_argument("--allowed-origins", help="comma-separated Origin values browsers may connect from")
    parser.add_argument("--max-streams", type=int, default=64, help="refuse connections beyond this many")
    parser.add_argument("--log-format", choices=("text", "json"), default="text")
    parser.add_argument("--version", action="version", version=f"vr-serve {__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        check_single_onnxruntime()
        model = args.model if args.model is not None else find_default_model(args.models_dir)
        if not model.is_file():
            raise SetupError(f"Model file {model} does not exist.\n{NO_MODEL_HELP}")
    except SetupError as exc:
        print(f"vr-serve: {exc}", file=sys.stderr)
        return 2
    print(
        f"vr-serve: found {model}, but the serving loop is not built yet (it is the vr-serve issue).",
        file=sys.stderr,
    )
    return 2


if __name__ == "__main__":
    sys.exit(main())
