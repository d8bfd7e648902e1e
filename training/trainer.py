"""The training loop, laid out like torchvision's references/classification/train.py.

train() is the loop: build_run (data, model, recipe, the state --resume continues from), then per epoch
train_one_epoch, validate_epoch (rank 0, on frames through the serving preprocessing) and save_epoch
(best.pt when validation accuracy improved; last.pt with everything --resume needs: model, optimizer,
scheduler, scaler, epoch, RNG states, history, early-stopping counter; metrics.json), and at the end
final_report (best.pt evaluated, plots, export). Single process or under torchrun (DDP).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from vr_recognition.training import reports
from vr_recognition.training.augment import StreamAugmentation
from vr_recognition.training.backbones import Backbone, build_backbone
from vr_recognition.training.checkpoints import (
    Checkpoint,
    ResumeState,
    load_checkpoint,
    restore_rng_states,
    rng_states,
    save_checkpoint,
)
from vr_recognition.training.config import TrainConfig
from vr_recognition.training.data_sources import DatasetIndex, index_dataset
from vr_recognition.training.distributed import World, all_sum, broadcast_from_main, init_world, shutdown
from vr_recognition.training.errors import CheckpointError, DivergedError, RunExistsError
from vr_recognition.training.finetune import (
    L2SP,
    apply_freeze,
    build_optimizer,
    group_factors,
    keep_frozen_bn_in_eval,
    resolve_batch_size,
    zero_head,
)
from vr_recognition.training.model_inputs import AugmentedFrames, contract_for, serving_inputs
from vr_recognition.training.serving_model import ServingModel

EVAL_BATCH = 64
MAX_SKIPPED_AMP_STEPS = 10  # consecutive non-finite losses AMP may skip before the run counts as diverged


@dataclass
class Run:
    """What one training run holds from build_run to final_report."""

    config: TrainConfig  # on --resume: the stored recipe with this invocation's runtime fields
    out: Path  # the run folder as given by --out this time (the stored config may name an older path)
    device: torch.device
    world: World
    index: DatasetIndex
    backbone: Backbone
    frozen: tuple[str, ...]  # module prefixes --freeze keeps fixed
    model: ServingModel  # what is evaluated, checkpointed and exported
    trained: nn.Module  # `model`, or its DDP wrapper under torchrun: what the training step calls
    l2sp: L2SP
    dataset: AugmentedFrames
    sampler: DistributedSampler
    loader: DataLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    use_amp: bool
    val_images: torch.Tensor | None  # uint8 [N, H, W, 3] as vr-serve feeds them; rank 0 only
    val_labels: torch.Tensor | None
    pruning: dict[str, Any] | None = None  # what `train-vr prune` did; stored in every checkpoint


def _no_best_yet() -> dict[str, Any]:
    return {"epoch": -1, "val_accuracy": -1.0, "val_loss": math.inf}


@dataclass
class Progress:
    """Where the run stands after each epoch; last.pt keeps it for --resume."""

    epoch: int = 0  # epochs finished
    history: list[dict[str, Any]] = field(default_factory=list)  # one metrics row per epoch
    best: dict[str, Any] = field(default_factory=_no_best_yet)  # epoch, val_accuracy, val_loss
    stale_epochs: int = 0  # epochs since `best` improved

    def improves(self, val_accuracy: float, val_loss: float) -> bool:
        """Better accuracy, or the same accuracy at a lower loss."""
        return val_accuracy > self.best["val_accuracy"] or (
            val_accuracy == self.best["val_accuracy"] and val_loss < self.best["val_loss"]
        )

    def record(self, row: dict[str, Any], improved: bool) -> None:
        self.history.append(row)
        self.epoch = row["epoch"]
        if improved:
            self.best = {k: row[k] for k in ("epoch", "val_accuracy", "val_loss")}
            self.stale_epochs = 0
        else:
            self.stale_epochs += 1


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


def _say(world: World, message: str) -> None:
    """Print on rank 0 only: under torchrun every rank runs this code."""
    if world.is_main:
        print(message, flush=True)


# --- building the run -------------------------------------------------------------------------------


def resume_or_start(config: TrainConfig, resume: bool) -> tuple[TrainConfig, Checkpoint | None]:
    """The config to train with and, on --resume, last.pt. A resumed run keeps its stored recipe; only
    the runtime fields (device, workers, export, ...) come from this invocation."""
    last = Path(config.out) / "last.pt"
    if not resume:
        if last.exists():
            raise RunExistsError(
                f"{config.out} already holds a run; pass --resume to continue it or choose another --out"
            )
        return config, None
    checkpoint = load_checkpoint(last)
    if checkpoint.resume is None:
        raise CheckpointError(f"{last}: holds weights only, nothing to resume from")
    if checkpoint.pruning is not None:
        raise CheckpointError(f"{last}: a pruning run cannot be resumed; run train-vr prune again")
    runtime = {name: getattr(config, name) for name in TrainConfig.RUNTIME_FIELDS}
    return replace(checkpoint.config, **runtime), checkpoint


def build_model(
    config: TrainConfig, num_classes: int, device: torch.device, backbone: Backbone | None = None
) -> tuple[Backbone, tuple[str, ...], ServingModel, L2SP]:
    """(backbone, frozen prefixes, serving model on `device`, L2-SP term); seed the torch RNG first.
    `backbone`: an already built network to train instead of config.arch with config.weights (prune)."""
    fresh = backbone is None
    backbone = backbone or build_backbone(config.arch, num_classes, config.weights)
    if fresh and config.head_init == "zero" and config.weights in ("imagenet", "none"):
        zero_head(backbone)  # a PATH's head may have been loaded: keep it
    frozen = apply_freeze(backbone, config.freeze)
    model = ServingModel(backbone.module, backbone.mean, backbone.std).to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    l2sp = L2SP(backbone, config.l2sp)  # θpre: the starting weights, rebuilt identically on --resume
    return backbone, frozen, model, l2sp


def load_data(
    config: TrainConfig, index: DatasetIndex, world: World, on_gpu: bool
) -> tuple[AugmentedFrames, DistributedSampler, DataLoader]:
    """(augmented training dataset, this rank's sampler, loader)."""
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
            frame_mapping=config.frame_mapping,
        ),
        config.seed,
    )
    sampler = DistributedSampler(
        dataset, num_replicas=world.size, rank=world.rank, shuffle=True, seed=config.seed
    )
    drop_last = len(sampler) > config.batch_size  # never a batch of one image (batch norm needs two)
    workers = config.workers if config.workers >= 0 else (4 if on_gpu else 0)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size,
        sampler=sampler,
        num_workers=workers,
        drop_last=drop_last,
        pin_memory=on_gpu,
    )
    return dataset, sampler, loader


def build_recipe(
    config: TrainConfig, backbone: Backbone, steps_per_epoch: int, use_amp: bool
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LambdaLR, torch.amp.GradScaler]:
    """(optimizer, per-step LR scheduler, gradient scaler; the scaler is a no-op without AMP)."""
    optimizer = build_optimizer(backbone, config)
    factors = group_factors(optimizer, config, steps_per_epoch)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    return optimizer, scheduler, scaler


def restore(
    checkpoint: Checkpoint,
    model: ServingModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    scaler: torch.amp.GradScaler,
) -> Progress:
    """Load last.pt into the freshly built objects and put the RNGs back where they were."""
    state = checkpoint.resume
    model.load_state_dict(checkpoint.model)
    optimizer.load_state_dict(state.optimizer)
    scheduler.load_state_dict(state.scheduler)
    if state.scaler is not None:
        scaler.load_state_dict(state.scaler)
    restore_rng_states(state.rng)
    return Progress(
        epoch=checkpoint.epoch, history=state.history, best=state.best, stale_epochs=state.stale_epochs
    )


def build_run(
    config: TrainConfig,
    out: Path,
    device: torch.device,
    world: World,
    resumed: Checkpoint | None,
    backbone: Backbone | None = None,
    pruning: dict[str, Any] | None = None,
) -> tuple[Run, Progress]:
    """Everything the epochs need, in the order that makes a resumed run match an uninterrupted one:
    the seeded model first, then data and recipe, then last.pt's states (RNG included) on top.
    `backbone` and `pruning`: a pruned network to fine-tune, and the record of its pruning."""
    index = index_dataset(
        config.data,
        config.val_fraction,
        config.seed,
        solo_samples=config.solo_samples,
        solo_margin=config.solo_margin,
    )
    _say(world, describe_dataset(index))
    if not config.batch_size:  # chosen once from the data; stored resolved, so --resume keeps it
        config = replace(config, batch_size=resolve_batch_size(config, len(index.train), world.size))
        _say(world, f"batch size {config.batch_size} (--min-steps {config.min_steps})")
    on_gpu = device.type == "cuda"
    torch.manual_seed(config.seed)
    backbone, frozen, model, l2sp = build_model(config, len(index.classes), device, backbone)
    dataset, sampler, loader = load_data(config, index, world, on_gpu)
    use_amp = on_gpu and config.amp
    optimizer, scheduler, scaler = build_recipe(config, backbone, max(1, len(loader)), use_amp)
    progress = Progress()
    if resumed is not None:
        progress = restore(resumed, model, optimizer, scheduler, scaler)
        _say(world, f"resuming {out} after epoch {progress.epoch}")
    trained = (
        DistributedDataParallel(model, device_ids=[device.index] if on_gpu else None)
        if world.distributed
        else model
    )
    val_images = val_labels = None
    if world.is_main:
        out.mkdir(parents=True, exist_ok=True)
        contract = contract_for(
            index.classes, config.img_size, config.resize_shorter, frame_mapping=config.frame_mapping
        )
        val_images, val_labels = serving_inputs(index.val, contract)
    run = Run(
        config=config,
        out=out,
        device=device,
        world=world,
        index=index,
        backbone=backbone,
        frozen=frozen,
        model=model,
        trained=trained,
        l2sp=l2sp,
        dataset=dataset,
        sampler=sampler,
        loader=loader,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        use_amp=use_amp,
        val_images=val_images,
        val_labels=val_labels,
        pruning=pruning,
    )
    return run, progress


# --- one epoch --------------------------------------------------------------------------------------


def train_one_epoch(run: Run, epoch: int) -> dict[str, float]:
    """One pass over this rank's shard; loss, accuracy and sample count summed over all ranks."""
    config, device = run.config, run.device
    run.sampler.set_epoch(epoch)
    run.dataset.set_epoch(epoch)
    run.trained.train()
    keep_frozen_bn_in_eval(run.backbone, run.frozen, all_stats=config.bn_stats == "frozen")
    loss_sum = correct = seen = 0.0
    bad_steps = 0
    bar = tqdm(
        run.loader, desc=f"epoch {epoch + 1}/{config.epochs}", unit="batch", disable=not run.world.is_main
    )
    for images, labels in bar:
        images = images.to(device, non_blocking=True)
        labels = labels.to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, enabled=run.use_amp):
            logits = run.trained(images)
            loss = F.cross_entropy(logits.float(), labels, label_smoothing=config.label_smoothing)
        if not torch.isfinite(loss):
            # Under AMP the scaler skips a step whose gradients overflow; a loss that stays non-finite,
            # or any non-finite loss in float32, means the run has diverged and every later step is lost.
            bad_steps += 1
            if bad_steps > (MAX_SKIPPED_AMP_STEPS if run.use_amp else 0):
                raise DivergedError(
                    f"training diverged in epoch {epoch + 1} (loss {loss.item()}); lower --lr (now "
                    f"{config.lr}) or set --clip-grad-norm"
                )
        else:
            bad_steps = 0
        total = loss + run.l2sp.penalty()
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(total).backward()
        if config.clip_grad_norm:
            run.scaler.unscale_(run.optimizer)
            nn.utils.clip_grad_norm_(run.model.parameters(), config.clip_grad_norm)
        run.scaler.step(run.optimizer)
        run.scaler.update()
        run.scheduler.step()
        loss_sum += loss.item() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum().item()
        seen += len(labels)
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{run.optimizer.param_groups[-1]['lr']:.2e}")
    loss_sum, correct, seen = all_sum([loss_sum, correct, seen], run.world, device)
    return {
        "train_loss": loss_sum / max(seen, 1),
        "train_accuracy": correct / max(seen, 1),
        "train_samples": int(seen),
    }


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


def validate_epoch(
    run: Run, progress: Progress, epoch: int, totals: dict[str, float], started: float
) -> tuple[dict[str, Any], bool]:
    """The epoch's metrics row and whether it beats the best so far. Rank 0 alone holds the validation
    frames, so it decides and broadcasts: every rank keeps the same history and stops at the same epoch."""
    decision = None
    if run.world.is_main:
        val_loss, val_accuracy, _ = evaluate(run.model, run.val_images, run.val_labels, run.device)
        row = {
            "epoch": epoch + 1,
            **totals,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
            "lr_head": run.optimizer.param_groups[-1]["lr"],
            "time_s": round(time.perf_counter() - started, 2),
        }
        decision = {"row": row, "improved": progress.improves(val_accuracy, val_loss)}
    decision = broadcast_from_main(decision, run.world)
    return decision["row"], decision["improved"]


def checkpoint_of(run: Run, epoch: int, val_accuracy: float | None) -> Checkpoint:
    """The model as it is now, with what export needs to know about it (no resume state)."""
    return Checkpoint(
        config=run.config,
        classes=run.index.classes,
        mean=run.backbone.mean,
        std=run.backbone.std,
        weights=run.backbone.weights,
        dataset=run.index.summary(),
        epoch=epoch,
        val_accuracy=val_accuracy,
        model=run.model.state_dict(),
        pruning=run.pruning,
    )


def save_epoch(run: Run, progress: Progress, row: dict[str, Any], improved: bool) -> None:
    """Rank 0: print the row, write best.pt (if improved), last.pt and metrics.json."""
    print(
        f"epoch {row['epoch']}: train loss {row['train_loss']:.4f} acc {row['train_accuracy']:.4f} | "
        f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f} | {row['time_s']:.1f}s",
        flush=True,
    )
    weights = checkpoint_of(run, row["epoch"], row["val_accuracy"])
    if improved:
        save_checkpoint(weights, run.out / "best.pt")
    resume = ResumeState(
        optimizer=run.optimizer.state_dict(),
        scheduler=run.scheduler.state_dict(),
        scaler=run.scaler.state_dict(),
        history=progress.history,
        best=progress.best,
        stale_epochs=progress.stale_epochs,
        rng=rng_states(),
    )
    save_checkpoint(replace(weights, resume=resume), run.out / "last.pt")
    reports.write_json_atomic(
        {
            "status": "running",
            "config": run.config.to_json(),
            "dataset": run.index.summary(),
            "epochs": progress.history,
        },
        run.out / "metrics.json",
    )


# --- the loop ---------------------------------------------------------------------------------------


def train(config: TrainConfig, resume: bool = False) -> dict[str, Any]:
    """Run (or continue) training into config.out; returns the final metrics (rank 0) or {}."""
    device = resolve_device(config.device)
    world = init_world(device.type)
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    try:
        out = Path(config.out)
        config, resumed = resume_or_start(config, resume)
        run, progress = build_run(config, out, device, world, resumed)
        finished = run_epochs(run, progress)
        return final_report(run, progress) if finished and world.is_main else {}
    finally:
        shutdown(world)


def run_epochs(run: Run, progress: Progress) -> bool:
    """The epochs from progress.epoch on: train, validate, save. False when --stop-after-epochs ended
    this invocation before the run was finished (the final report then waits for --resume)."""
    config, world = run.config, run.world
    for epochs_this_run, epoch in enumerate(range(progress.epoch, config.epochs), start=1):
        started = time.perf_counter()
        totals = train_one_epoch(run, epoch)
        row, improved = validate_epoch(run, progress, epoch, totals, started)
        progress.record(row, improved)
        if world.is_main:
            save_epoch(run, progress, row, improved)
        if config.patience and progress.stale_epochs >= config.patience:
            _say(world, f"early stop: no better val accuracy for {config.patience} epoch(s)")
            break
        if config.stop_after_epochs and epochs_this_run >= config.stop_after_epochs:
            _say(world, f"stopping after {epochs_this_run} epoch(s) as asked; continue with --resume")
            return False
    return True


# --- the end of a run -------------------------------------------------------------------------------


def final_report(run: Run, progress: Progress) -> dict[str, Any]:
    """Rank 0: evaluate best.pt, write metrics.json and the plots, export when asked."""
    best = load_checkpoint(run.out / "best.pt")
    run.model.load_state_dict(best.model)
    val_loss, val_accuracy, predicted = evaluate(run.model, run.val_images, run.val_labels, run.device)
    classes = run.index.classes
    matrix = reports.confusion_matrix(run.val_labels.numpy(), predicted, len(classes))
    times = [row["time_s"] for row in progress.history]
    metrics = {
        "status": "finished",
        "best_epoch": progress.best["epoch"],
        "best_val_accuracy": val_accuracy,
        "best_val_loss": val_loss,
        "epochs": progress.history,
        "mean_epoch_time_s": round(sum(times) / len(times), 2) if times else None,
        "per_class": reports.per_class_scores(matrix, classes),
        "confusion_matrix": {"classes": list(classes), "rows_true_columns_predicted": matrix.tolist()},
        "dataset": run.index.summary(),
        "config": run.config.to_json(),
    }
    reports.write_json_atomic(metrics, run.out / "metrics.json")
    reports.plot_curves(progress.history, run.out / "curves.png")
    reports.plot_confusion(matrix, classes, run.out / "confusion.png")
    print(
        f"best epoch {progress.best['epoch']}: val accuracy {val_accuracy:.4f}; wrote {run.out}/metrics.json",
        flush=True,
    )
    if run.config.export:
        from vr_recognition.training.export import export_model

        # The model holds best.pt's weights now and the validation frames are decoded already:
        # export neither rebuilds the network nor re-reads the dataset.
        metrics["export"] = export_model(
            run.model,
            best,
            run.val_images.numpy(),
            Path(run.config.export),
            fp16=run.config.export_fp16,
            opset=run.config.opset,
        )
    return metrics
