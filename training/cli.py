"""train-vr command line. Parsing lives here, apart from the training code, so `--help` works on a
serving host without torch.

    train-vr --data DIR --arch resnet18 --weights imagenet|none|PATH --epochs N --out runs/NAME \
        [--export X.onnx]
    train-vr export --checkpoint runs/NAME/best.pt --out exported_models/NAME.onnx [--fp16] [--opset 18]
"""

from __future__ import annotations

import argparse
import sys

from vr_recognition.training.config import TrainConfig, TrainVrError


def _pair(kind: type):
    def parse(text: str) -> tuple:
        low, _, high = text.partition("-" if kind is int else ",")
        try:
            return kind(low), kind(high or low)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected two numbers, got {text!r}") from None

    return parse


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train-vr",
        description="Fine-tune an image classifier on captured VR frames and export a self-describing "
        "ONNX model for vr-serve (docs/training.md, docs/model-format.md). "
        "`train-vr export --help` for exporting a checkpoint.",
    )
    add = parser.add_argument
    add("--data", help="dataset: capture sessions (docs/capture-format.md) or ImageFolder")
    add("--out", help="run folder, e.g. runs/NAME (best.pt, last.pt, metrics.json, plots)")
    add("--arch", default="resnet18", help="resnet18|resnet34|resnet50|mobilenet_v3_small|efficientnet_lite0")
    add("--weights", default="imagenet", help="imagenet | none | PATH (state dict or train-vr checkpoint)")
    add("--epochs", type=int, default=10)
    add("--batch-size", type=int, default=32)
    add("--img-size", type=int, default=224, help="square model input (serving default 224)")
    add(
        "--resize-shorter",
        type=int,
        default=0,
        help="shorter side before the centre crop (default size*256/224)",
    )
    add("--val-fraction", type=float, default=0.2, help="val share where the data has no fixed split")
    add("--seed", type=int, default=0)
    add("--name", default="", help="model name in the ONNX metadata (default: the run folder name)")
    recipe = parser.add_argument_group("fine-tuning recipe")
    recipe.add_argument(
        "--freeze", default="none", help="none | head-only | STAGE (e.g. layer2: stem..layer2)"
    )
    recipe.add_argument("--optimizer", default="sgd", choices=["sgd", "adamw"])
    recipe.add_argument("--lr", type=float, default=0.01, help="head learning rate")
    recipe.add_argument(
        "--backbone-lr-mult",
        type=float,
        default=None,
        help="backbone lr = lr * this (default 0.1 pretrained, 1 scratch)",
    )
    recipe.add_argument("--momentum", type=float, default=0.9)
    recipe.add_argument("--weight-decay", type=float, default=5e-4)
    recipe.add_argument("--schedule", default="cosine", choices=["step", "poly", "cosine"])
    recipe.add_argument("--step-size", type=int, default=7, help="epochs between decays (step)")
    recipe.add_argument("--gamma", type=float, default=0.1, help="decay factor (step)")
    recipe.add_argument("--poly-power", type=float, default=0.9)
    recipe.add_argument("--warmup-epochs", type=float, default=0.0)
    recipe.add_argument("--label-smoothing", type=float, default=0.1)
    recipe.add_argument("--l2sp", type=float, default=0.0, help="λ of λ‖θ−θpre‖² on the backbone")
    recipe.add_argument("--patience", type=int, default=0, help="early stopping; 0 = off")
    augment = parser.add_argument_group("stream-matched augmentation")
    augment.add_argument(
        "--jpeg-quality", type=_pair(int), default=(60, 95), help="re-compression range, e.g. 60-95"
    )
    augment.add_argument("--blur-probability", type=float, default=0.3)
    augment.add_argument("--colour-jitter", type=float, default=0.25)
    augment.add_argument("--crop-scale", type=_pair(float), default=(0.35, 1.0), help="e.g. 0.35,1.0")
    augment.add_argument("--no-flip", action="store_true", help="for classes whose meaning a mirror changes")
    run = parser.add_argument_group("runtime")
    run.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    run.add_argument("--workers", type=int, default=-1, help="data loader workers (default 0 CPU, 4 CUDA)")
    run.add_argument("--no-amp", action="store_true", help="no mixed precision on CUDA (never used on CPU)")
    run.add_argument("--resume", action="store_true", help="continue the run in --out from last.pt")
    run.add_argument("--stop-after-epochs", type=int, default=0, help="end this invocation after N epochs")
    run.add_argument("--export", default="", help="also export best.pt to this .onnx path")
    run.add_argument("--fp16", action="store_true", help="with --export: a float16 model")
    run.add_argument("--opset", type=int, default=18)
    return parser


def build_export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train-vr export",
        description="Export a train-vr checkpoint to one .onnx file with vr-serve metadata, after a "
        "torch-vs-onnxruntime parity check on validation frames.",
    )
    parser.add_argument("--checkpoint", required=True, help="runs/NAME/best.pt")
    parser.add_argument("--out", required=True, help="exported_models/NAME.onnx")
    parser.add_argument("--fp16", action="store_true", help="float16 weights and probabilities")
    parser.add_argument("--opset", type=int, default=18)
    parser.add_argument("--name", default="", help="model name in the metadata (default: the run's)")
    parser.add_argument("--parity-data", help="dataset folder, if it moved since training")
    return parser


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    return TrainConfig(
        data=args.data or "",
        out=args.out,
        arch=args.arch,
        weights=args.weights,
        epochs=args.epochs,
        batch_size=args.batch_size,
        img_size=args.img_size,
        resize_shorter=args.resize_shorter,
        val_fraction=args.val_fraction,
        seed=args.seed,
        name=args.name,
        freeze=args.freeze,
        optimizer=args.optimizer,
        lr=args.lr,
        backbone_lr_mult=args.backbone_lr_mult,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        step_size=args.step_size,
        gamma=args.gamma,
        poly_power=args.poly_power,
        warmup_epochs=args.warmup_epochs,
        label_smoothing=args.label_smoothing,
        l2sp=args.l2sp,
        patience=args.patience,
        jpeg_quality=args.jpeg_quality,
        blur_probability=args.blur_probability,
        colour_jitter=args.colour_jitter,
        crop_scale=args.crop_scale,
        flip=not args.no_flip,
        device=args.device,
        workers=args.workers,
        amp=not args.no_amp,
        stop_after_epochs=args.stop_after_epochs,
        export=args.export,
        export_fp16=args.fp16,
        opset=args.opset,
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv[:1] == ["export"]:
            args = build_export_parser().parse_args(argv[1:])
            from vr_recognition.training.export import export_checkpoint

            export_checkpoint(
                args.checkpoint,
                args.out,
                fp16=args.fp16,
                opset=args.opset,
                name=args.name,
                parity_data=args.parity_data,
            )
            return 0
        parser = build_parser()
        args = parser.parse_args(argv)
        if not args.out or (not args.data and not args.resume):
            parser.error("--data and --out are required (--out alone with --resume)")
        config = config_from_args(args)
        from vr_recognition.training.trainer import train

        train(config, resume=args.resume)
        return 0
    except (ValueError, FileNotFoundError, FileExistsError, TrainVrError) as error:
        print(f"train-vr: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
