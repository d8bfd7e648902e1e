"""`train-vr quantize` on a tiny real model: static INT8 that keeps the serving interface and the model
contract, records where it came from, is served by vr-serve as it is, and is refused when it loses
accuracy. The model is tests/onnx_models.py's colour model (dominant colour -> class) with one real
convolution, named after the shapes of tests/train_helpers.py, whose shapes are red, green and blue."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from onnx import TensorProto

from tests.onnx_models import colour_contract, colour_model
from tests.server_helpers import serving
from tests.train_helpers import CLASSES, write_imagefolder
from vr_recognition.server import protocol as p
from vr_recognition.server.client import RecognitionClient
from vr_recognition.server.inference import InferenceModel
from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME
from vr_recognition.training import quantize
from vr_recognition.training.cli import main
from vr_recognition.training.data_sources import Sample
from vr_recognition.training.errors import ConfigError
from vr_recognition.training.evaluate import AccuracyCheck
from vr_recognition.training.model_files import read_contract
from vr_recognition.training.serving_eval import served_input

REPO = Path(__file__).resolve().parents[1]
TRAIN_PER_CLASS, VAL_PER_CLASS = 6, 3


def write_shapes_model(path: Path) -> Path:
    """Circle (red), square (green), triangle (blue): the colour model answers the shape's class."""
    contract = dataclasses.replace(colour_contract(name="shapes", version="7"), classes=CLASSES)
    onnx.save(colour_model(contract, slow_convs=1), str(path))
    return path


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data") / "shapes"
    return write_imagefolder(root, per_class=TRAIN_PER_CLASS, val_per_class=VAL_PER_CLASS)


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    return write_shapes_model(tmp_path_factory.mktemp("models") / "shapes.onnx")


@pytest.fixture(scope="module")
def quantized(source, shapes) -> Path:
    out = source.with_name("shapes-int8.onnx")
    assert main(["quantize", "--model", str(source), "--calibration", str(shapes), "--out", str(out)]) == 0
    return out


def test_the_int8_graph_keeps_uint8_in_and_float_probabilities_out(quantized):
    model = onnx.load(str(quantized))
    [image], [probabilities] = model.graph.input, model.graph.output
    assert (image.name, image.type.tensor_type.elem_type) == (INPUT_NAME, TensorProto.UINT8)
    assert (probabilities.name, probabilities.type.tensor_type.elem_type) == (OUTPUT_NAME, TensorProto.FLOAT)
    ops = [node.op_type for node in model.graph.node]
    assert "QuantizeLinear" in ops
    assert "DequantizeLinear" in ops
    int8_weights = [i for i in model.graph.initializer if i.data_type == TensorProto.INT8]
    assert any(len(i.dims) == 4 for i in int8_weights), "the convolution's weights are int8"
    producer = {out: node for node in model.graph.node for out in node.output}
    softmax = producer[OUTPUT_NAME]
    assert softmax.op_type == "Softmax"
    assert producer[softmax.input[0]].op_type != "DequantizeLinear", "the head stays float"


def test_the_contract_is_kept_and_records_precision_and_provenance(quantized, source):
    before, after = read_contract(source), read_contract(quantized)
    assert (after.name, after.classes, after.input_height, after.resize_shorter, after.mean) == (
        before.name, before.classes, before.input_height, before.resize_shorter, before.mean,
    )  # fmt: skip
    assert (before.precision, after.precision) == ("float32", "int8")
    assert after.version == after.created != before.version
    derived = after.derived
    assert derived["from"] == {"file": "shapes.onnx", "name": "shapes", "version": "7"}
    assert "QDQ" in derived["method"]
    assert "per-channel" in derived["method"]
    assert derived["calibration"] == {"data": "shapes", "split": "train", "frames": 3 * TRAIN_PER_CLASS}
    assert derived["accuracy"] == {
        "data": "shapes", "split": "val", "frames": 3 * VAL_PER_CLASS, "source": 1.0, "quantized": 1.0,
    }  # fmt: skip
    assert after.val_accuracy == 1.0
    assert set(derived["float_nodes"]) >= {
        node.name for node in onnx.load(str(quantized)).graph.node if node.op_type == "Softmax"
    }


async def test_vr_serve_loads_the_int8_model_and_answers(quantized, shapes):
    model = InferenceModel.load(quantized, providers="cpu", max_batch=2)
    assert model.contract.precision == "int8"
    circle = (shapes / "val" / "circle" / "000.jpg").read_bytes()
    assert CLASSES[int(model.run(served_input(circle, model.contract)[None]).argmax())] == "circle"
    async with (
        serving(quantized) as server,
        await RecognitionClient.connect(server.url, settings=p.StreamSettings(budget_ms=5000)) as client,
    ):
        for label in CLASSES:
            jpeg = (shapes / "val" / label / "001.jpg").read_bytes()
            await client.send_frame(jpeg, width=80, height=60)
            result = await client.recv(timeout=30)
            assert result.status is p.Status.OK, result
            assert result.top_k[0].label == label


def test_a_variant_losing_more_than_one_point_is_refused_unless_allowed(
    source, shapes, tmp_path, monkeypatch, capsys
):
    real = quantize.evaluate_model

    def int8_loses_a_frame(path, data, **kwargs):
        evaluation = real(path, data, **kwargs)
        if evaluation.precision == "int8":  # one of 9 frames wrong: -11 pp
            return dataclasses.replace(evaluation, accuracy=evaluation.accuracy - 1 / 9)
        return evaluation

    monkeypatch.setattr(quantize, "evaluate_model", int8_loses_a_frame)
    out = tmp_path / "lossy.onnx"
    argv = ["quantize", "--model", str(source), "--calibration", str(shapes), "--out", str(out)]
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert "source 100.00%, quantized 88.89%" in captured.out, "the figures are printed when refused"
    [error] = captured.err.splitlines()
    assert error.startswith("train-vr: the quantized model loses 11.11 pp")
    assert "--allow-accuracy-drop" in error
    assert not out.exists()
    assert not list(tmp_path.iterdir())

    assert main([*argv, "--allow-accuracy-drop"]) == 0
    assert "source 100.00%, quantized 88.89%" in capsys.readouterr().out
    assert read_contract(out).derived["accuracy"]["quantized"] == pytest.approx(8 / 9)


@pytest.mark.parametrize(
    ("source", "result", "passes"),
    [(0.70, 0.69, True), (0.70, 0.70 - 0.0101, False), (0.70, 0.75, True), (1.0, 0.99, True)],
)
def test_the_gate_allows_exactly_one_point(source, result, passes):
    assert AccuracyCheck("quantized", source, result, 300).passes is passes


def test_quantizing_needs_a_float32_vr_model(quantized, shapes, tmp_path, capsys):
    out = str(tmp_path / "again.onnx")
    assert main(["quantize", "--model", str(quantized), "--calibration", str(shapes), "--out", out]) == 2
    missing = tmp_path / "missing.onnx"
    assert main(["quantize", "--model", str(missing), "--calibration", str(shapes), "--out", out]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"train-vr: {quantized}: is int8; quantize a float32 model",
        f"train-vr: {missing}: model file not found",
    ]


def test_calibration_frames_spread_over_the_whole_split():
    samples = [Sample(Path(f"{label}/{i}.jpg"), label) for label in range(3) for i in range(10)]
    chosen = quantize.calibration_samples(samples, 6)
    assert len(chosen) == 6
    assert {s.label for s in chosen} == {0, 1, 2}
    assert quantize.calibration_samples(samples[:4], 6) == samples[:4]
    with pytest.raises(ConfigError):
        quantize.calibration_samples(samples, 0)


def test_quantize_and_evaluate_run_without_torch(source, shapes, tmp_path):
    """A serving host has onnxruntime but no torch: both commands must work there."""
    out, report = tmp_path / "int8.onnx", tmp_path / "eval.json"
    script = (
        "import sys; sys.modules['torch'] = None  # any import of torch now fails\n"
        "from vr_recognition.training.cli import main\n"
        f"assert main(['quantize', '--model', {str(source)!r}, '--calibration', {str(shapes)!r},"
        f" '--out', {str(out)!r}]) == 0\n"
        f"assert main(['evaluate', '--model', {str(out)!r}, '--data', {str(shapes)!r},"
        f" '--json', {str(report)!r}]) == 0\n"
        "assert 'torch' not in [m.split('.')[0] for m in sys.modules if sys.modules[m] is not None]\n"
    )
    environment = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=environment
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(report.read_text())["accuracy"] == 1.0


def test_a_derived_source_keeps_its_chain(shapes, tmp_path):
    contract = dataclasses.replace(
        colour_contract(name="shapes-pruned"), classes=CLASSES, derived={"method": "pruned", "ratio": 0.3}
    )
    source = tmp_path / "pruned.onnx"
    onnx.save(colour_model(contract), str(source))
    out = tmp_path / "pruned-int8.onnx"
    argv = ["quantize", "--model", str(source), "--calibration", str(shapes), "--out", str(out)]
    assert main([*argv, "--name", "shapes-pruned-int8"]) == 0
    after = read_contract(out)
    assert after.name == "shapes-pruned-int8"
    assert after.derived["from"]["derived"] == {"method": "pruned", "ratio": 0.3}
