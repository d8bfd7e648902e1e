"""`train-vr prune` on a tiny real ResNet-18: channels removed, fine-tuned back, exported through the
parity check and the accuracy gate, served by vr-serve; and a shipped .onnx rebuilt as a checkpoint."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
pytest.importorskip("torch_pruning")
pytest.importorskip("onnxscript")

from tests.train_helpers import CLASSES, write_imagefolder  # noqa: E402
from vr_recognition.server.inference import InferenceModel  # noqa: E402
from vr_recognition.training import evaluate as evaluate_module  # noqa: E402
from vr_recognition.training import export  # noqa: E402
from vr_recognition.training.checkpoints import Checkpoint, load_checkpoint  # noqa: E402
from vr_recognition.training.cli import main  # noqa: E402
from vr_recognition.training.model_files import read_contract  # noqa: E402
from vr_recognition.training.onnx_weights import checkpoint_from_onnx  # noqa: E402
from vr_recognition.training.serving_eval import served_input  # noqa: E402

SIZE = "32"
RATIO = 0.5


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_imagefolder(tmp_path_factory.mktemp("data") / "shapes", per_class=6, val_per_class=2)


@pytest.fixture(scope="module")
def source_run(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "source"
    argv = ["--data", str(dataset), "--out", str(out), "--arch", "resnet18", "--weights", "none",
            "--img-size", SIZE, "--batch-size", "6", "--epochs", "2", "--lr", "0.05"]  # fmt: skip
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def pruned(source_run, tmp_path_factory) -> tuple[Path, Path]:
    """(run folder, exported model) of pruning half the channels with one epoch of fine-tuning. With 6
    validation frames one frame is 17 pp, so the gate is allowed here and tested on its own below."""
    folder = tmp_path_factory.mktemp("pruned")
    out, model = folder / "run", folder / "pruned.onnx"
    argv = ["prune", "--checkpoint", str(source_run / "best.pt"), "--ratio", str(RATIO), "--epochs", "1",
            "--out", str(out), "--batch-size", "6", "--export", str(model),
            "--allow-accuracy-drop"]  # fmt: skip
    assert main(argv) == 0
    return out, model


def conv1_channels(model_path: Path) -> int:
    weights = {i.name: i for i in onnx.load(str(model_path)).graph.initializer}
    return numpy_helper.to_array(weights["backbone.conv1.weight"]).shape[0]


def test_the_pruned_run_has_fewer_parameters_and_a_record(pruned, source_run):
    out, _ = pruned
    for name in ("best.pt", "last.pt", "metrics.json", "curves.png", "confusion.png"):
        assert (out / name).stat().st_size > 0, name
    payload = torch.load(out / "best.pt", map_location="cpu", weights_only=True)  # still plain data
    best = Checkpoint.from_dict(payload)
    record = best.pruning
    assert record["ratio"] == RATIO
    assert record["from"]["file"] == "best.pt"
    assert record["params"]["pruned"] < 0.5 * record["params"]["source"]
    assert record["macs"]["pruned"] < 0.5 * record["macs"]["source"]
    assert 0.0 <= record["source_accuracy"]["accuracy"] <= 1.0
    assert record["source_accuracy"]["frames"] == 6
    assert best.model["backbone.conv1.weight"].shape[0] == 32  # 64 channels, half removed
    source = load_checkpoint(source_run / "best.pt")
    assert best.val_accuracy is not None
    assert (best.classes, best.img_size, best.config.epochs) == (source.classes, source.img_size, 1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert metrics["pruning"]["params"] == record["params"]


def test_the_pruned_export_passes_parity_and_records_its_derivation(pruned):
    _, model = pruned
    assert conv1_channels(model) == 32
    parity = json.loads(model.with_suffix(".parity.json").read_text())
    assert parity["top1_agreement"] >= 0.995
    contract = read_contract(model)
    assert contract.precision == "float32"
    assert contract.name == "source"
    derived = contract.derived
    assert derived["ratio"] == RATIO
    assert "torch-pruning" in derived["method"]
    assert set(derived["accuracy"]) >= {"source", "pruned", "frames", "split"}
    assert derived["accuracy"]["frames"] == 6


def test_vr_serve_loads_the_pruned_model_and_answers(pruned, dataset):
    _, model_path = pruned
    model = InferenceModel.load(model_path, providers="cpu", max_batch=2)
    frame = served_input((dataset / "val" / "circle" / "000.jpg").read_bytes(), model.contract)
    probabilities = model.run(np.stack([frame, frame]))
    assert probabilities.shape == (2, len(CLASSES))
    assert probabilities.sum(axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)


def test_train_vr_export_rebuilds_a_pruned_checkpoint(pruned, tmp_path):
    out, _ = pruned
    path = tmp_path / "again.onnx"
    assert (
        main(["export", "--checkpoint", str(out / "best.pt"), "--out", str(path), "--allow-accuracy-drop"])
        == 0
    )
    assert conv1_channels(path) == 32


def test_the_export_refuses_a_pruned_model_losing_more_than_one_point(pruned, tmp_path, monkeypatch, capsys):
    out, _ = pruned
    source = load_checkpoint(out / "best.pt").pruning["source_accuracy"]["accuracy"]
    real = evaluate_module.evaluate_model

    def one_frame_worse(path, data, **kwargs):
        return replace(real(path, data, **kwargs), accuracy=source - 1 / 6)

    monkeypatch.setattr(export, "evaluate_model", one_frame_worse)
    path = tmp_path / "lossy.onnx"
    assert main(["export", "--checkpoint", str(out / "best.pt"), "--out", str(path)]) == 2
    captured = capsys.readouterr()
    assert f"source {source:.2%}, pruned {source - 1 / 6:.2%}" in captured.out
    [error] = captured.err.splitlines()
    assert error.startswith("train-vr: the pruned model loses 16.67 pp")
    assert "--allow-accuracy-drop" in error
    assert not path.exists()
    assert not path.with_suffix(".parity.json").exists()


def test_a_pruning_run_is_not_resumed(pruned, capsys):
    out, _ = pruned
    assert main(["--out", str(out), "--resume"]) == 2
    assert "cannot be resumed" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--ratio", "1.5"], "--ratio must be between 0 and 1"),
        (["--ratio", "0.3", "--epochs", "0"], "--epochs must be >= 1"),
    ],
)
def test_prune_option_errors_are_one_line(source_run, tmp_path, capsys, extra, message):
    argv = ["prune", "--checkpoint", str(source_run / "best.pt"), "--out", str(tmp_path / "x"), *extra]
    assert main(argv) == 2
    assert capsys.readouterr().err.startswith(f"train-vr: {message}")


def test_a_shipped_onnx_is_rebuilt_as_the_same_network(source_run, dataset, tmp_path):
    exported = tmp_path / "shipped.onnx"
    assert main(["export", "--checkpoint", str(source_run / "best.pt"), "--out", str(exported)]) == 0
    rebuilt = checkpoint_from_onnx(exported, dataset)  # raises when it is not the file's function
    original = load_checkpoint(source_run / "best.pt")
    assert (rebuilt.classes, rebuilt.img_size, rebuilt.config.seed) == (original.classes, 32, 0)
    assert rebuilt.val_accuracy == pytest.approx(original.val_accuracy)
    norm = rebuilt.model["backbone.bn1.running_var"]
    assert not torch.allclose(norm, torch.ones_like(norm)), "batch norms carry measured statistics"
