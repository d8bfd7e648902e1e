"""The training loop: data, model, recipe, checkpoints and reports for one run folder.

Single process or under torchrun (DDP). Each epoch ends with a validation pass on rank 0 through the
serving preprocessing, a best.pt when validation accuracy improved, and a last.pt that --resume
continues from (model, optimizer, scheduler, epoch, RNG states, history, early-stopping counter).
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm
from vr_recognition.training import reports
from vr_recognition.training.augment import StreamAugmentation
from vr_recognition.training.backbones import build_backbone
from vr_recognition.training.checkpoints import load_checkpoint, restore_rng_states, rng_states, save_atomic
from vr_recognition.training.config import TrainConfig
from vr_recognition.training.data_sources import DatasetIndex, index_dataset
from vr_recognition.training.datasets import AugmentedFrames, contract_for, serving_inputs
from vr_recognition.training.distributed import World, all_sum, broadcast_from_main, init_world, shutdown
from vr_recognition.training.finetune import (
    L2SP,
    apply_freeze,
    build_optimizer,
    keep_frozen_bn_in_eval,
    lr_factor,
)
from vr_recognition.training.serving_model import ServingModel

EVAL_BATCH = 64


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def describe_dataset(index: DatasetIndex) -> str:
    summary = index.summary()
    lines = [
        f"dataset {index.root} ({index.source}): {len(index.classes)} classes, "
        f"{summary['train']['total']} train / {summary['val']['total']} val images"
    ]
    if index.skipped:
        lines.append(f"skipped {len(index.skipped)} unreadable file(s):")
        lines += [f"  {s.path}: {s.reason}" for s in index.skipped]
    return "\n".join(lines)


def evaluate(
    model: ServingModel, images: torch.Tensor, labels: torch.Tensor, device: torch.device
) -> tuple[float, float, np.ndarray]:
    """(mean cross-entropy, accuracy, predictions) on already-preprocessed uint8 frames."""
    was_training = model.training
    model.eval()
    losses, predictions = [], []
    with torch.no_grad():
        for start in range(0, len(images), EVAL_BATCH):
            batch = images[start : start + EVAL_BATCH].to(device)
            target = labels[start : start + EVAL_BATCH].to(device)
            logits = model(batch).float()
            losses.append(F.cross_entropy(logits, target, reduction="sum").item())
            predictions.append(logits.argmax(dim=1).cpu())
    model.train(was_training)
    predicted = torch.cat(predictions).numpy()
    return sum(losses) / len(images), float((predicted == labels.numpy()).mean()), predicted


def train(config: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run (or continue) training into config.out; returns the final metrics (rank 0) or {}."""
    device = resolve_device(config.device)
    world = init_world(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    try:
        return _train(config, resume, device, world)
    finally:
        shutdown(world)


def _train(config: TrainConfig, resume: bool, device: torch.device, world: World) -> dict[str, Any]:
    out = Path(config.out)
    state = None
    if resume:
        state = load_checkpoint(out / "last.pt")
        stored = TrainConfig.from_json(state["config"])
        for name in TrainConfig.RUNTIME_FIELDS:
            setattr(stored, name, getattr(config, name))
        config = stored
    elif (out / "last.pt").exists():
        raise FileExistsError(
            f"{out} already holds a run; pass --resume to continue it or choose another --out"
        )

    index = index_dataset(config.data, config.val_fraction, config.seed)
    if world.is_main:
        print(describe_dataset(index), flush=True)
    torch.manual_seed(config.seed)
    backbone = build_backbone(config.arch, len(index.classes), config.weights)
    frozen = apply_freeze(backbone, config.freeze)
    model = ServingModel(backbone.module, backbone.mean, backbone.std).to(device)
    on_gpu = device.type == "cuda"
    if on_gpu:
        model = model.to(memory_format=torch.channels_last)
    l2sp = L2SP(backbone, config.l2sp)  # θpre: the starting weights, rebuilt identically on --resume

    dataset = AugmentedFrames(
        index.train,
        StreamAugmentation(
            img_size=config.img_size,
            resize_shorter=config.resize_shorter,
            jpeg_quality=config.jpeg_quality,
            blur_probability=config.blur_probability,
            colour_jitter=config.colour_jitter,
            crop_scale=config.crop_scale,
            flip=config.flip,
        ),
        config.seed,
    )
    sampler = DistributedSampler(
        dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=config.seed
    )
    per_rank = len(sampler)
    drop_last = per_rank > config.batch_size  # never a batch of one image (batch norm needs two)
    workers = config.workers if config.workers >= 0 else (4 if on_gpu else 0)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=on_gpu,
    )
    steps_per_epoch = max(1, len(loader))
    optimizer = build_optimizer(backbone, config)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(config, steps_per_epoch))
    use_amp = on_gpu and config.amp
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start_epoch, history, best, stale_epochs = (
        0,
        [],
        {"epoch": -1, "val_accuracy": -1.0, "val_loss": math.inf},
        0,
    )
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if "scaler" in state:
            scaler.load_state_dict(state["scaler"])
        start_epoch, history, best = state["epoch"], state["history"], state["best"]
        stale_epochs = state["stale_epochs"]
        restore_rng_states(state["rng"])
        if world.is_main:
            print(f"resuming {out} after epoch {start_epoch}", flush=True)
    trained = (
        DistributedDataParallel(model, device_ids=[device.index] if on_gpu else None)
        if world.distributed
        else model
    )

    contract = contract_for(index.classes, config.img_size, config.resize_shorter)
    val_images = val_labels = None
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        val_images, val_labels = serving_inputs(index.val, contract)
    common = {
        "arch": config.arch,
        "classes": list(index.classes),
        "img_size": config.img_size,
        "resize_shorter": config.resize_shorter,
        "mean": list(backbone.mean),
        "std": list(backbone.std),
        "weights": backbone.weights,
        "config": config.to_json(),
        "dataset": index.summary(),
    }

    for epochs_this_run, epoch in enumerate(range(start_epoch, config.epochs), start=1):
        started = time.perf_counter()
        sampler.set_epoch(epoch)
        dataset.set_epoch(epoch)
        trained.train()
        keep_frozen_bn_in_eval(backbone, frozen)
        loss_sum = correct = seen = 0.0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not world.is_main)
        for images, labels in bar:
            images = images.to(device, non_blocking=True)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                logits = trained(images)
                loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
            total = loss + l2sp.penalty()
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(total).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            loss_sum += loss.item() * len(labels)
            correct += (logits.argmax(dim=1) == labels).sum().item()
            seen += len(labels)
            bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{optimizer.param_groups[-1]['lr']:.2e}")
        loss_sum, correct, seen = all_sum([loss_sum, correct, seen], world, device)

        decision = None
        if world.is_main:
            val_loss, val_accuracy, _ = evaluate(model, val_images, val_labels, device)
            row = {
                "epoch": epoch + 1,
                "train_loss": loss_sum / max(seen, 1),
                "train_accuracy": correct / max(seen, 1),
                "train_samples": int(seen),
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "lr_head": optimizer.param_groups[-1]["lr"],
                "time_s": round(time.perf_counter() - started, 2),
            }
            improved = val_accuracy > best["val_accuracy"] or (
                val_accuracy == best["val_accuracy"] and val_loss < best["val_loss"]
            )
            decision = {"row": row, "improved": improved}
        decision = broadcast_from_main(decision, world)
        history.append(decision["row"])
        if decision["improved"]:
            best = {k: decision["row"][k] for k in ("epoch", "val_accuracy", "val_loss")}
            stale_epochs = 0
        else:
            stale_epochs += 1
        if world.is_main:
            row = decision["row"]
            print(
                f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
                f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f} | {row['time_s']:.1f}s",
                flush=True,
            )
            weights = {"model": model.state_dict(), "epoch": epoch + 1, "val_accuracy": row["val_accuracy"]}
            if decision["improved"]:
                save_atomic({**common, **weights}, out / "best.pt")
            save_atomic(
                {
                    **common,
                    **weights,
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "scaler": scaler.state_dict(),
                    "history": history,
                    "best": best,
                    "stale_epochs": stale_epochs,
                    "rng": rng_states(),
                },
                out / "last.pt",
            )
            reports.write_json_atomic(
                {
                    "status": "running",
                    "config": config.to_json(),
                    "dataset": index.summary(),
                    "epochs": history,
                },
                out / "metrics.json",
            )
        if config.patience and stale_epochs >= config.patience:
            if world.is_main:
                print(f"early stop: no better val accuracy for {config.patience} epoch(s)", flush=True)
            break
        if config.stop_after_epochs and epochs_this_run >= config.stop_after_epochs:
            if world.is_main:
                print(
                    f"stopping after {epochs_this_run} epoch(s) as asked; continue with --resume", flush=True
                )
            return {}

    if not world.is_main:
        return {}
    return _final_report(config, out, index, model, val_images, val_labels, device, history, best)


def _final_report(config, out, index, model, val_images, val_labels, device, history, best) -> dict[str, Any]:
    """Evaluate the best checkpoint, write metrics.json and the plots, export when asked."""
    model.load_state_dict(load_checkpoint(out / "best.pt")["model"])
    val_loss, val_accuracy, predicted = evaluate(model, val_images, val_labels, device)
    matrix = reports.confusion_matrix(val_labels.numpy(), predicted, len(index.classes))
    times = [row["time_s"] for row in history]
    metrics = {
        "status": "finished",
        "best_epoch": best["epoch"],
        "best_val_accuracy": val_accuracy,
        "best_val_loss": val_loss,
        "epochs": history,
        "mean_epoch_time_s": round(sum(times) / len(times), 2) if times else None,
        "per_class": reports.per_class_scores(matrix, index.classes),
        "confusion_matrix": {"classes": list(index.classes), "rows_true_columns_predicted": matrix.tolist()},
        "dataset": index.summary(),
        "config": config.to_json(),
    }
    reports.write_json_atomic(metrics, out / "metrics.json")
    reports.plot_curves(history, out / "curves.png")
    reports.plot_confusion(matrix, index.classes, out / "confusion.png")
    print(
        f"best epoch {best['epoch']}: val accuracy {val_accuracy:.4f}; wrote {out}/metrics.json", flush=True
    )
    if config.export:
        from vr_recognition.training.export import export_checkpoint

        metrics["export"] = export_checkpoint(
            out / "best.pt", Path(config.export), fp16=config.export_fp16, opset=config.opset
        )
    return metrics
