"""train-vr command line. Parsing lives here, apart from the training code, so `--help` works on a
serving host without torch."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train-vr",
        description="Fine-tune a pretrained ResNet on captured VR frames and export a self-describing "
        "ONNX model for vr-serve (docs/training.md, docs/model-format.md).",
    )
    parser.add_argument("--data", help="dataset: ImageFolder or capture sessions (docs/capture-format.md)")
    parser.add_argument(
        "--arch", default="resnet18", help="resnet18|resnet34|resnet50|mobilenet_v3_small|..."
    )
    parser.add_argument("--weights", default="imagenet", help="imagenet | none | PATH to a state dict")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--out", help="run folder, e.g. runs/NAME")
    parser.add_argument("--export", help="also export the best checkpoint to this .onnx path")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    del args
    print("train-vr: training is not built yet (it is the train-vr issue).", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
