"""train-vr command line. Parsing lives here, apart from the training code, so `--help` works on a
serving host without torch.

    train-vr --data DIR --arch resnet18 --weights imagenet|none|PATH --epochs N --out runs/NAME \
        [--export X.onnx]
    train-vr export --checkpoint runs/NAME/best.pt --out exported_models/NAME.onnx [--fp16] [--opset 18]
    train-vr quantize --model IN.onnx --calibration DATA --out OUT.onnx [--allow-accuracy-drop]
    train-vr evaluate --model M.onnx --data DATA [--json OUT.json]
    train-vr prune (--checkpoint runs/NAME/best.pt | --model M.onnx --data DATA) --ratio R --epochs N \
        --out runs/NAME-pruned [--export X.onnx] [--allow-accuracy-drop]

`quantize` and `evaluate` never import torch (they run on a serving host with onnxruntime alone).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from vr_recognition.training.config import TRAIN_DEFAULTS, TrainConfig
from vr_recognition.training.errors import TrainVrError
from vr_recognition.training.solo import SAMPLE_MODES


def _pair(kind: type):
    def parse(text: str) -> tuple:
        low, _, high = text.partition("-" if kind is int else ",")
        try:
            return kind(low), kind(high or low)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected two numbers, got {text!r}") from None

    return parse


def _option(group, flag: str, *, dest: str = "", **kwargs: Any) -> None:
    """An option for a TrainConfig field: `dest` is the field (default: the flag's name), and the default
    is the field's default, so it is written once, in config.py."""
    dest = dest or flag.removeprefix("--").replace("-", "_")
    group.add_argument(flag, dest=dest, default=TRAIN_DEFAULTS[dest], **kwargs)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train-vr",
        description="Fine-tune an image classifier on captured VR frames and export a self-describing "
        "ONNX model for vr-serve (docs/training.md, docs/model-format.md). "
        "Subcommands (each has --help): export, quantize, evaluate, prune.",
    )
    parser.add_argument(
        "--data",
        help="dataset: capture sessions (docs/capture-format.md), Unity Perception SOLO, or ImageFolder",
    )
    parser.add_argument("--out", help="run folder, e.g. runs/NAME (best.pt, last.pt, metrics.json, plots)")
    _option(parser, "--arch", help="resnet18|resnet34|resnet50|mobilenet_v3_small|efficientnet_lite0")
    _option(parser, "--weights", help="imagenet | none | PATH (state dict or train-vr checkpoint)")
    _option(parser, "--epochs", type=int)
    _option(
        parser,
        "--batch-size",
        type=int,
        help="images per step (default: the recipe's; 0 = the largest up to 32 that gives --min-steps steps)",
    )
    _option(parser, "--img-size", type=int, help="square model input (serving default 224)")
    _option(
        parser,
        "--resize-shorter",
        type=int,
        help="shorter side before the centre crop (default size*256/224)",
    )
    _option(
        parser,
        "--frame-mapping",
        choices=("centre_crop", "stretch"),
        help="how a frame of any shape becomes the square input, in training and serving alike: "
        "centre_crop (keep the centre) or stretch (the whole frame, shapes distorted)",
    )
    _option(parser, "--val-fraction", type=float, help="val share where the data has no fixed split")
    _option(parser, "--seed", type=int)
    _option(
        parser,
        "--solo-samples",
        choices=SAMPLE_MODES,
        help="Unity Perception (SOLO) data: a sample per labelled 2D box, or per frame by its dominant "
        "label (default %(default)s)",
    )
    _option(
        parser,
        "--solo-margin",
        type=float,
        help="SOLO boxes: context added on each side, as a fraction of the box side (default %(default)s)",
    )
    _option(parser, "--name", help="model name in the ONNX metadata (default: the run folder name)")
    recipe = parser.add_argument_group(
        "fine-tuning recipe",
        "--recipe sets every option of this group that is not given (docs/training.md): default (measured "
        "on few-shot data) or seed (the articles' plain recipe: SGD lr 0.001, momentum 0.9, StepLR 7/0.1, "
        "batch 4)",
    )
    _option(recipe, "--recipe", choices=["default", "seed"])
    _option(recipe, "--freeze", help="none | head-only | STAGE (e.g. layer2: stem..layer2)")
    _option(recipe, "--optimizer", choices=["sgd", "adamw"])
    _option(recipe, "--lr", type=float, help="head learning rate (per 32 images with --lr-scaling linear)")
    _option(recipe, "--lr-scaling", choices=["linear", "none"], help="scale --lr with the batch size")
    _option(
        recipe,
        "--backbone-lr-mult",
        type=float,
        help="backbone lr = lr * this (default 0.1 pretrained, 1 scratch)",
    )
    _option(recipe, "--momentum", type=float)
    _option(recipe, "--weight-decay", type=float)
    _option(recipe, "--schedule", choices=["step", "poly", "cosine"])
    _option(recipe, "--step-size", type=int, help="epochs between decays (step)")
    _option(recipe, "--gamma", type=float, help="decay factor (step)")
    _option(recipe, "--poly-power", type=float)
    _option(recipe, "--warmup-epochs", type=float)
    _option(recipe, "--label-smoothing", type=float)
    _option(recipe, "--min-steps", type=int, help="with --batch-size 0: optimizer steps to aim for")
    _option(
        recipe,
        "--bn-stats",
        choices=["train", "frozen", "auto"],
        help="batch-norm statistics: from each batch (train) or the starting weights' (frozen); "
        "auto: frozen when pretrained",
    )
    _option(recipe, "--head-init", choices=["default", "zero"], help="the new head's starting weights")
    _option(recipe, "--probe-epochs", type=float, help="epochs of head-only training first (LP-FT)")
    _option(recipe, "--clip-grad-norm", type=float, help="largest gradient norm a step applies; 0 = off")
    _option(recipe, "--l2sp", type=float, help="λ of λ‖θ−θpre‖² on the backbone")
    _option(recipe, "--patience", type=int, help="early stopping; 0 = off")
    augment = parser.add_argument_group("stream-matched augmentation")
    _option(augment, "--jpeg-quality", type=_pair(int), help="re-compression range, e.g. 60-95")
    _option(augment, "--blur-probability", type=float)
    _option(augment, "--colour-jitter", type=float)
    _option(augment, "--crop-scale", type=_pair(float), help="e.g. 0.35,1.0")
    _option(
        augment,
        "--no-flip",
        dest="flip",
        action="store_false",
        help="for classes whose meaning a mirror changes",
    )
    run = parser.add_argument_group("runtime")
    _option(run, "--device", help="auto | cpu | cuda | cuda:N")
    _option(run, "--workers", type=int, help="data loader workers (default 0 CPU, 4 CUDA)")
    _option(
        run,
        "--no-amp",
        dest="amp",
        action="store_false",
        help="no mixed precision on CUDA (never used on CPU)",
    )
    run.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    _option(run, "--stop-after-epochs", type=int, help="end this invocation after N epochs")
    _option(run, "--export", help="also export best.pt to this .onnx path")
    _option(run, "--fp16", dest="export_fp16", action="store_true", help="with --export: a float16 model")
    _option(run, "--opset", type=int)
    return parser


def build_export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train-vr export",
        description="Export a train-vr checkpoint to one .onnx file with vr-serve metadata, after a "
        "torch-vs-onnxruntime parity check on validation frames.",
    )
    parser.add_argument("--checkpoint", required=True, help="runs/NAME/best.pt")
    parser.add_argument("--out", required=True, help="exported_models/NAME.onnx")
    _option(
        parser, "--fp16", dest="export_fp16", action="store_true", help="float16 weights and probabilities"
    )
    _option(parser, "--opset", type=int)
    _option(parser, "--name", help="model name in the metadata (default: the run's)")
    parser.add_argument("--parity-data", help="dataset folder, if it moved since training")
    _allow_drop(parser, "a pruned checkpoint's export")
    return parser


def _allow_drop(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--allow-accuracy-drop",
        action="store_true",
        help=f"write {what} even when it loses more than 1 pp of validation accuracy (serving path)",
    )


def _split_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--val-fraction",
        type=float,
        help="val share where the data has no fixed split (default: the model's)",
    )
    parser.add_argument("--seed", type=int, help="split seed (default: the model's)")


def build_quantize_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train-vr quantize",
        description="Static INT8 quantization (onnxruntime QDQ, per-channel weights) of a float32 model, "
        "calibrated on training frames taken through the serving path; refused when it loses more than "
        "1 pp of validation accuracy. No torch needed.",
    )
    parser.add_argument("--model", required=True, help="float32 .onnx exported by train-vr")
    parser.add_argument(
        "--calibration",
        required=True,
        help="dataset: calibration on its train split, "
        "accuracy on its val split (capture sessions or ImageFolder, as --data)",
    )
    parser.add_argument("--out", required=True, help="the int8 .onnx to write")
    parser.add_argument("--frames", type=int, default=256, help="calibration frames (default: %(default)s)")
    parser.add_argument(
        "--method",
        default="minmax",
        choices=["minmax", "percentile", "entropy"],
        help="activation range calibration (default: %(default)s)",
    )
    parser.add_argument("--name", default="", help="model name in the metadata (default: the source's)")
    _split_options(parser)
    _allow_drop(parser, "the int8 model")
    return parser


def build_evaluate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train-vr evaluate",
        description="Top-1 accuracy, per-class precision/recall/F1 and confusion matrix of an .onnx model, "
        "every frame through the serving path (wire frame, server preprocessing, onnxruntime). No torch.",
    )
    parser.add_argument("--model", required=True, help=".onnx file with the vr-recognition contract")
    parser.add_argument("--data", required=True, help="dataset (capture sessions or ImageFolder)")
    parser.add_argument("--split", default="val", choices=["val", "train", "all"])
    parser.add_argument("--json", help="also write the results to this JSON file")
    _split_options(parser)
    return parser


def build_prune_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train-vr prune",
        description="Structured channel pruning (torch-pruning) of a trained model, then recovery "
        "fine-tuning; writes a run folder like training does, and with --export a model that is refused "
        "when it loses more than 1 pp of validation accuracy against the source.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="train-vr checkpoint, e.g. runs/NAME/best.pt")
    source.add_argument("--model", help="float32 .onnx exported by train-vr (needs --data)")
    parser.add_argument("--data", help="dataset (default: the checkpoint's training data)")
    parser.add_argument("--ratio", type=float, required=True, help="share of channels to remove, e.g. 0.3")
    parser.add_argument(
        "--epochs", type=int, default=2, help="recovery fine-tuning epochs (default: %(default)s)"
    )
    parser.add_argument("--out", required=True, help="run folder, e.g. runs/NAME-pruned")
    parser.add_argument(
        "--lr", type=float, default=0.01, help="fine-tuning learning rate, cosine to 0 (default: %(default)s)"
    )
    parser.add_argument("--batch-size", type=int, help="default: the source's")
    parser.add_argument(
        "--round-to",
        type=int,
        default=8,
        help="keep channel counts multiples of this (SIMD-friendly; default: %(default)s)",
    )
    parser.add_argument("--name", default="", help="model name in the metadata (default: the source's)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--export", help="also export the pruned model to this .onnx path")
    _allow_drop(parser, "the pruned model")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Every TrainConfig field is the parser's option of the same `dest`."""
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig)}
    return TrainConfig(**{**values, "data": args.data or ""})


def run_export(argv: list[str]) -> None:
    args = build_export_parser().parse_args(argv)
    from vr_recognition.training.export import export_checkpoint

    export_checkpoint(
        args.checkpoint,
        args.out,
        fp16=args.export_fp16,
        opset=args.opset,
        name=args.name,
        parity_data=args.parity_data,
        allow_accuracy_drop=args.allow_accuracy_drop,
    )


def run_quantize(argv: list[str]) -> None:
    args = build_quantize_parser().parse_args(argv)
    from vr_recognition.training.quantize import quantize_model

    quantize_model(
        args.model,
        args.calibration,
        args.out,
        frames=args.frames,
        method=args.method,
        name=args.name,
        allow_accuracy_drop=args.allow_accuracy_drop,
        val_fraction=args.val_fraction,
        seed=args.seed,
    )


def run_evaluate(argv: list[str]) -> None:
    args = build_evaluate_parser().parse_args(argv)
    from vr_recognition.training.evaluate import describe, evaluate_model
    from vr_recognition.training.reports import write_json_atomic

    evaluation = evaluate_model(
        args.model, args.data, split=args.split, val_fraction=args.val_fraction, seed=args.seed
    )
    print(describe(evaluation), flush=True)
    if args.json:
        write_json_atomic(evaluation.to_json(), Path(args.json))


def run_prune(argv: list[str]) -> None:
    parser = build_prune_parser()
    args = parser.parse_args(argv)
    if args.model and not args.data:
        parser.error("--model needs --data (the dataset the model was trained on)")
    from vr_recognition.training.prune import PruneSettings, prune

    prune(
        PruneSettings(
            checkpoint=args.checkpoint or "",
            model=args.model or "",
            data=args.data or "",
            out=args.out,
            ratio=args.ratio,
            epochs=args.epochs,
            lr=args.lr,
            batch_size=args.batch_size,
            round_to=args.round_to,
            name=args.name,
            device=args.device,
            export=args.export or "",
            allow_accuracy_drop=args.allow_accuracy_drop,
        )
    )


SUBCOMMANDS = {"export": run_export, "quantize": run_quantize, "evaluate": run_evaluate, "prune": run_prune}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] and argv[0] in SUBCOMMANDS:
            SUBCOMMANDS[argv[0]](argv[1:])
            return 0
        parser = build_parser()
        args = parser.parse_args(argv)
        if not args.out or (not args.data and not args.resume):
            parser.error("--data and --out are required (--out alone with --resume)")
        config = config_from_args(args)
        from vr_recognition.training.trainer import train

        train(config, resume=args.resume)
        return 0
    except TrainVrError as error:  # only user errors: anything else is a bug and keeps its traceback
        print(f"train-vr: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
