"""A trained model -> one self-describing .onnx file that vr-serve can load, checked against torch.

The graph takes uint8 [batch, H, W, 3] `image` and returns softmax `probabilities`; normalisation is
inside. The metadata is server.model_format.ModelContract.to_metadata(), so what the server reads back
is exactly what was written. Before the file is written, torch and onnxruntime are compared on real
validation frames prepared by server.preprocess.preprocess_jpeg; below 99.5 % top-1 agreement the
export fails instead of shipping a model that serves differently from how it validated.

export_model works from what the trainer holds in memory (the model with best.pt's weights, its
Checkpoint record, the decoded validation frames); export_checkpoint (`train-vr export`) rebuilds those
three from a checkpoint file and its dataset.

A pruned checkpoint (`train-vr prune`) exports like any other, parity check included, and then passes
the accuracy gate: the written file's validation accuracy through the serving path may be at most 1 pp
below the source model's, unless allow_accuracy_drop; its `vr.derived` records the pruning.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME, ModelContract
from vr_recognition.training.backbones import Backbone, build_backbone, resize_to_state
from vr_recognition.training.checkpoints import Checkpoint, load_checkpoint
from vr_recognition.training.config import TRAIN_DEFAULTS
from vr_recognition.training.data_sources import index_dataset
from vr_recognition.training.errors import DatasetError, ExportError
from vr_recognition.training.evaluate import AccuracyCheck, enforce, evaluate_model
from vr_recognition.training.model_files import save_model
from vr_recognition.training.model_inputs import contract_for, serving_inputs
from vr_recognition.training.serving_model import ServingModel

MIN_TOP1_AGREEMENT = 0.995
MAX_PARITY_FRAMES = 512
PARITY_BATCH = 32
DEFAULT_OPSET: int = TRAIN_DEFAULTS["opset"]


def network_from_checkpoint(checkpoint: Checkpoint) -> tuple[Backbone, ServingModel]:
    """The checkpoint's network with its weights, in eval mode; a pruned one is rebuilt to the channel
    counts its tensors have (backbones.resize_to_state)."""
    backbone = build_backbone(checkpoint.arch, len(checkpoint.classes), weights="none")
    if checkpoint.pruning is not None:
        prefix = "backbone."
        state = {k.removeprefix(prefix): v for k, v in checkpoint.model.items() if k.startswith(prefix)}
        resize_to_state(backbone.module, state)
    backbone.mean, backbone.std = checkpoint.mean, checkpoint.std
    model = ServingModel(backbone.module, checkpoint.mean, checkpoint.std)
    model.load_state_dict(checkpoint.model)
    return backbone, model.eval()


def model_from_checkpoint(checkpoint: Checkpoint) -> ServingModel:
    return network_from_checkpoint(checkpoint)[1]


def parity_frames(checkpoint: Checkpoint, data: str | None, limit: int) -> tuple[np.ndarray, str]:
    """Validation frames of the training data through the serving preprocessing (uint8 [N, H, W, 3]),
    and the data folder they came from. The same split as in training: same val_fraction and seed."""
    config = checkpoint.config
    root = data or config.data
    try:
        index = index_dataset(
            root,
            config.val_fraction,
            config.seed,
            solo_samples=config.solo_samples,
            solo_margin=config.solo_margin,
        )
    except DatasetError as error:
        raise ExportError(
            f"the parity check needs the validation frames: {error}. "
            "Pass --parity-data DIR if the data moved."
        ) from None
    contract = contract_for(
        checkpoint.classes,
        checkpoint.img_size,
        checkpoint.resize_shorter,
        frame_mapping=checkpoint.config.frame_mapping,
    )
    images, _ = serving_inputs(index.val[:limit], contract)
    return images.numpy(), str(root)


def inference_copies(model: ServingModel, fp16: bool) -> tuple[ServingModel, ServingModel]:
    """(float32 reference, model to export): CPU, eval, softmax output, contiguous weights. Copies, so
    the caller's model (possibly on CUDA, channels_last, in training mode) is left as it was."""
    reference = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format).eval()
    reference.requires_grad_(False)
    reference.output_probabilities = True
    exported = copy.deepcopy(reference)
    if fp16:
        exported.backbone.half()
        exported.compute_dtype = torch.float16
    return reference, exported


def to_onnx(model: ServingModel, img_size: int, opset: int):
    """torch.onnx.export with the dynamo exporter (torch 2.14's default) and a dynamic batch axis."""
    example = torch.zeros((2, img_size, img_size, 3), dtype=torch.uint8)
    program = torch.onnx.export(
        model,
        (example,),
        dynamo=True,
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        input_names=[INPUT_NAME],
        output_names=[OUTPUT_NAME],
        opset_version=opset,
        optimize=True,
        verbose=False,
    )
    return program.model_proto


def strip_stack_traces(proto) -> None:
    """Drop the exporter's per-node Python stack traces: they name this machine's source paths."""
    nodes = list(proto.graph.node) + [node for function in proto.functions for node in function.node]
    for node in nodes:
        kept = [(p.key, p.value) for p in node.metadata_props if not p.key.endswith("stack_trace")]
        del node.metadata_props[:]
        for key, value in kept:
            node.metadata_props.add(key=key, value=value)


def compare(reference: ServingModel, onnx_bytes: bytes, frames: np.ndarray) -> dict[str, Any]:
    """Max abs probability difference and top-1 agreement, torch (float32) vs onnxruntime (CPU)."""
    import onnxruntime as ort

    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    differences, agreements = [], []
    for start in range(0, len(frames), PARITY_BATCH):
        batch = frames[start : start + PARITY_BATCH]
        with torch.no_grad():
            expected = reference(torch.from_numpy(batch)).numpy()
        actual = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0].astype(np.float32)
        differences.append(float(np.abs(actual - expected).max()))
        agreements.append(actual.argmax(axis=1) == expected.argmax(axis=1))
    agree = np.concatenate(agreements)
    return {
        "frames": len(frames),
        "max_abs_diff": max(differences),
        "top1_agreement": float(agree.mean()),
        "batch_sizes": sorted(
            {len(frames[s : s + PARITY_BATCH]) for s in range(0, len(frames), PARITY_BATCH)}
        ),
    }


def check_parity(reference: ServingModel, proto, frames: np.ndarray, fp16: bool, out: Path) -> dict[str, Any]:
    """The parity figures, printed; ExportError below MIN_TOP1_AGREEMENT."""
    parity = compare(reference, proto.SerializeToString(), frames)
    parity.update({"reference": "torch float32 checkpoint", "onnx_dtype": "float16" if fp16 else "float32"})
    print(
        f"parity on {parity['frames']} validation frames: max abs diff {parity['max_abs_diff']:.3g}, "
        f"top-1 agreement {parity['top1_agreement']:.2%}",
        flush=True,
    )
    if parity["top1_agreement"] < MIN_TOP1_AGREEMENT:
        raise ExportError(
            f"onnxruntime agrees with torch on only {parity['top1_agreement']:.2%} of top-1 predictions "
            f"(need {MIN_TOP1_AGREEMENT:.1%}); not writing {out}"
        )
    return parity


def model_contract(
    checkpoint: Checkpoint, name: str, fp16: bool, opset: int, parity: dict[str, Any]
) -> ModelContract:
    """The metadata vr-serve reads: serving geometry, classes, and provenance (version = export time)."""
    config = checkpoint.config
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return ModelContract(
        name=name or config.name or Path(config.out).name,
        version=created,
        classes=checkpoint.classes,
        input_height=checkpoint.img_size,
        input_width=checkpoint.img_size,
        resize_shorter=checkpoint.resize_shorter,
        frame_mapping=config.frame_mapping,
        mean=checkpoint.mean,
        std=checkpoint.std,
        arch=checkpoint.arch,
        created=created,
        val_accuracy=checkpoint.val_accuracy,
        dataset=checkpoint.dataset,
        precision="float16" if fp16 else "float32",
        training={
            "config": {k: v for k, v in config.to_json().items() if k not in ("data", "out")},
            "weights": checkpoint.weights,
            "best_epoch": checkpoint.epoch,
            "fp16": fp16,
            "opset": opset,
            "torch": torch.__version__,
            "parity": parity,
        },
    )


def write_onnx(proto, contract: ModelContract, out: Path) -> None:
    """One file (no external data), checked by onnx.checker before it replaces `out`."""
    strip_stack_traces(proto)
    save_model(proto, contract, out)


def gate_pruned(
    proto, contract: ModelContract, checkpoint: Checkpoint, data_root: str, allow_drop: bool, out: Path
) -> ModelContract:
    """The pruned model's contract with `vr.derived` (pruning record + accuracy before and after), after
    the gate: the graph is written to a scratch file and evaluated through the serving path on the
    validation split; AccuracyDropError (nothing written) when it loses more than 1 pp."""
    pruning = dict(checkpoint.pruning or {})
    source = pruning.pop("source_accuracy")
    config = checkpoint.config
    with tempfile.TemporaryDirectory(prefix="train-vr-export-") as work:
        scratch = Path(work) / out.name
        write_onnx(proto, contract, scratch)
        evaluation = evaluate_model(scratch, data_root, val_fraction=config.val_fraction, seed=config.seed)
    check = AccuracyCheck("pruned", source["accuracy"], evaluation.accuracy, evaluation.frames)
    enforce(check, allow_drop, out)
    accuracy = {"data": Path(data_root).name, "split": "val", **check.to_json(), "source_measured": source}
    return replace(contract, derived={**pruning, "accuracy": accuracy})


def export_model(
    model: ServingModel,
    checkpoint: Checkpoint,
    frames: np.ndarray,
    out: str | Path,
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    name: str = "",
    data_root: str = "",
    parity_limit: int = MAX_PARITY_FRAMES,
    allow_accuracy_drop: bool = False,
) -> dict[str, Any]:
    """Write `out` (.onnx) and `out` with .parity.json; returns the parity figures.

    `model` holds `checkpoint`'s weights (it is copied, not changed); `frames` are its validation frames
    through the serving preprocessing, uint8 [N, H, W, 3], of which the first `parity_limit` are used;
    `data_root` is the folder they came from (default: the training data). A pruned checkpoint also
    passes the accuracy gate (gate_pruned) unless `allow_accuracy_drop`.
    """
    out = Path(out)
    data_root = data_root or checkpoint.config.data
    reference, exported = inference_copies(model, fp16)
    proto = to_onnx(exported, checkpoint.img_size, opset)
    parity = check_parity(reference, proto, frames[:parity_limit], fp16, out)
    contract = model_contract(checkpoint, name, fp16, opset, parity)
    if checkpoint.pruning is not None:
        contract = gate_pruned(proto, contract, checkpoint, data_root, allow_accuracy_drop, out)
    write_onnx(proto, contract, out)
    parity_path = out.with_suffix(".parity.json")
    data_name = Path(data_root).name
    parity_path.write_text(json.dumps({"model": out.name, "data": data_name, **parity}, indent=2) + "\n")
    size_mb = out.stat().st_size / 1e6
    print(f"wrote {out} ({size_mb:.1f} MB, one file) and {parity_path.name}", flush=True)
    return {**parity, "path": str(out), "size_mb": round(size_mb, 2)}


def export_checkpoint(
    checkpoint_path: str | Path,
    out: str | Path,
    *,
    fp16: bool = False,
    opset: int = DEFAULT_OPSET,
    name: str = "",
    parity_data: str | None = None,
    parity_limit: int = MAX_PARITY_FRAMES,
    allow_accuracy_drop: bool = False,
) -> dict[str, Any]:
    """`train-vr export`: export_model from a checkpoint file alone. The parity frames are decoded from
    the training data (or `parity_data`, if it moved), split as in training."""
    checkpoint = load_checkpoint(checkpoint_path)
    frames, data_root = parity_frames(checkpoint, parity_data, parity_limit)
    return export_model(
        model_from_checkpoint(checkpoint),
        checkpoint,
        frames,
        out,
        fp16=fp16,
        opset=opset,
        name=name,
        data_root=data_root,
        parity_limit=parity_limit,
        allow_accuracy_drop=allow_accuracy_drop,
    )
