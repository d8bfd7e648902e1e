"""`train-vr quantize`: a float32 model -> a static INT8 model that vr-serve serves unchanged.

onnxruntime's own tools do the work: `quant_pre_process` (shape inference, constant folding), then
`quantize_static` in QDQ format with per-channel int8 weights and uint8 activations, the setting
onnxruntime recommends for x86 CPUs with VNNI (uint8 x int8 products accumulate without saturation
there, so no `reduce_range`). Activation ranges are calibrated on real frames of the training split taken
through the serving path, never random data: the ranges are what the model will see behind vr-serve.

What stays float, and why (measured on the demo ResNet-18, 280 validation frames):
- the uint8 input, Cast and normalisation: the quantizer leaves Cast/Div/Sub alone and quantizes the
  normalised tensor before the first convolution (256 input levels onto 256 int8 levels: ~lossless);
- the classifier head (the Gemm/MatMul feeding the output) and the Softmax: quantized, the logits and the
  probabilities come out in 1/255 steps (ties in the top-k the server reports). Keeping them float cost no
  measurable time (512 x 7 MACs) and changed accuracy by at most one frame (69.6 % either way).

The file keeps the source's contract (classes, geometry, provenance) with `vr.precision` = int8 and
`vr.derived` recording the source file, method, calibration and the accuracy before and after; it is
refused (nothing written) when it loses more than 1 pp of validation accuracy, unless allowed.
"""

from __future__ import annotations

import datetime as dt
import tempfile
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME, ModelContract
from vr_recognition.training.data_sources import Sample, evenly_spread, index_dataset
from vr_recognition.training.errors import ConfigError, DatasetError, ModelFileError
from vr_recognition.training.evaluate import (
    AccuracyCheck,
    dataset_options,
    enforce,
    evaluate_model,
    split_settings,
)
from vr_recognition.training.model_files import read_contract, save_model
from vr_recognition.training.serving_eval import served_frames

# 256 frames: on the demo model 64 frames gave the same accuracy within one frame; 256 covers every class
# of a few-class dataset several times for ~10 s of calibration on 2 cores.
DEFAULT_CALIBRATION_FRAMES = 256
CALIBRATION_BATCH = 16
METHODS = {
    # MinMax: onnxruntime's default; percentile and entropy matched it within one demo frame (±0.4 pp)
    # and took 3.5x and 2x as long to calibrate.
    "minmax": CalibrationMethod.MinMax,
    "percentile": CalibrationMethod.Percentile,
    "entropy": CalibrationMethod.Entropy,
}
HEAD_OPS = ("Gemm", "MatMul")
# How far back from the output the head search walks (Softmax <- Add <- MatMul is three nodes).
HEAD_SEARCH_DEPTH = 4


class FrameReader(CalibrationDataReader):
    """Calibration batches of served frames, in order, once."""

    def __init__(self, frames: np.ndarray, batch: int = CALIBRATION_BATCH) -> None:
        self.batches = iter([{INPUT_NAME: frames[i : i + batch]} for i in range(0, len(frames), batch)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def calibration_samples(samples: Sequence[Sample], count: int) -> list[Sample]:
    """`count` samples spread evenly over the training split (data_sources.evenly_spread)."""
    if count < 1:
        raise ConfigError("--frames must be >= 1")
    return evenly_spread(samples, count)


def head_nodes(proto) -> list[str]:
    """Names of the nodes kept in float: the node producing the output (Softmax) and, walking back along
    first inputs, everything up to and including the first Gemm/MatMul (the classifier)."""
    producer = {output: node for node in proto.graph.node for output in node.output}
    names: list[str] = []
    node = producer.get(OUTPUT_NAME)
    for _ in range(HEAD_SEARCH_DEPTH):
        if node is None:
            break
        names.append(node.name)
        if node.op_type in HEAD_OPS:
            return names
        node = producer.get(node.input[0]) if node.input else None
    return names[:1]  # no classifier found near the output: keep only the output node float


def name_nodes(proto) -> None:
    """Give every unnamed node a unique name: the quantizer excludes nodes by name, and graphs built by
    hand (or by some exporters) leave names empty."""
    taken = {node.name for node in proto.graph.node if node.name}
    for index, node in enumerate(proto.graph.node):
        if not node.name:
            candidate = f"{node.op_type}_{index}"
            while candidate in taken:
                candidate += "_"
            node.name = candidate
            taken.add(candidate)


def quantize_graph(source: Path, frames: np.ndarray, method: str, work: Path) -> tuple[Path, list[str]]:
    """(path of the int8 graph, names of the nodes left in float); files under `work`."""
    prepared = work / "prepared.onnx"
    quant_pre_process(str(source), str(prepared))
    proto = onnx.load(str(prepared))
    name_nodes(proto)
    onnx.save_model(proto, str(prepared))
    float_nodes = head_nodes(proto)
    quantized = work / "int8.onnx"
    quantize_static(
        str(prepared),
        str(quantized),
        FrameReader(frames),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=METHODS[method],
        nodes_to_exclude=float_nodes,
    )
    return quantized, float_nodes


def int8_contract(
    contract: ModelContract, name: str, derived: dict[str, Any], accuracy: float | None
) -> ModelContract:
    """The source's contract for the int8 file: same classes, geometry and training record; a new
    version (the quantization time, as an export's is its export time), precision and provenance."""
    created = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return replace(
        contract,
        name=name or contract.name,
        version=created,
        created=created,
        precision="int8",
        val_accuracy=accuracy,
        derived=derived,
    )


def quantize_model(
    model: str | Path,
    data: str | Path,
    out: str | Path,
    *,
    frames: int = DEFAULT_CALIBRATION_FRAMES,
    method: str = "minmax",
    name: str = "",
    allow_accuracy_drop: bool = False,
    val_fraction: float | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Write the int8 model to `out`; returns the figures (accuracies, sizes, calibration)."""
    source, out = Path(model), Path(out)
    if method not in METHODS:
        raise ConfigError(f"unknown --method {method!r}; choose from {', '.join(METHODS)}")
    contract = read_contract(source)
    if contract.precision != "float32":
        raise ModelFileError(f"{source}: is {contract.precision}; quantize a float32 model")
    fraction, chosen_seed = split_settings(contract, val_fraction, seed)
    index = index_dataset(data, fraction, chosen_seed, **dataset_options(contract))
    samples = calibration_samples(index.train, frames)
    if not samples:
        raise DatasetError(f"{index.root}: no training frames to calibrate on")
    print(f"calibrating on {len(samples)} training frames of {index.root} (serving path)", flush=True)
    started = time.perf_counter()
    calibration = served_frames(samples, contract)
    derived: dict[str, Any] = {
        "from": {"file": source.name, "name": contract.name, "version": contract.version},  # + "derived"
        "method": "onnxruntime static QDQ, per-channel int8 weights, uint8 activations, "
        f"{method} calibration",
        "onnxruntime": _onnxruntime_version(),
        "calibration": {"data": index.root.name, "split": "train", "frames": len(samples)},
    }
    if contract.derived:  # the source is itself derived (e.g. pruned): keep the whole chain
        derived["from"]["derived"] = contract.derived
    with tempfile.TemporaryDirectory(prefix="train-vr-quantize-") as work:
        quantized, float_nodes = quantize_graph(source, calibration, method, Path(work))
        derived["float_nodes"] = float_nodes
        seconds = time.perf_counter() - started
        kept = ", ".join(float_nodes) or "nothing"
        print(f"quantized in {seconds:.1f} s; kept in float: {kept}", flush=True)
        proto = onnx.load(str(quantized))
        save_model(proto, int8_contract(contract, name, derived, None), quantized)
        before = evaluate_model(source, data, val_fraction=fraction, seed=chosen_seed)
        after = evaluate_model(quantized, data, val_fraction=fraction, seed=chosen_seed)
        check = AccuracyCheck("quantized", before.accuracy, after.accuracy, after.frames)
        enforce(check, allow_accuracy_drop, out)
        derived["accuracy"] = {"data": index.root.name, "split": "val", **check.to_json()}
        save_model(proto, int8_contract(contract, name, derived, after.accuracy), out)
    sizes = {"source_mb": source.stat().st_size / 1e6, "int8_mb": out.stat().st_size / 1e6}
    print(f"wrote {out} ({sizes['int8_mb']:.1f} MB int8; source {sizes['source_mb']:.1f} MB)", flush=True)
    return {
        "path": str(out),
        **{key: round(value, 2) for key, value in sizes.items()},
        "calibration_s": round(seconds, 1),
        "accuracy": check.to_json(),
        "passes": check.passes,
        "derived": derived,
    }


def _onnxruntime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
