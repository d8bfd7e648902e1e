"""train-vr end to end on a tiny real dataset: run folder, resume, torchrun, export parity and metadata."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

from tests.train_helpers import CLASSES, write_imagefolder  # noqa: E402
from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME, ModelContract  # noqa: E402
from vr_recognition.training import export  # noqa: E402
from vr_recognition.training.checkpoints import Checkpoint, load_checkpoint  # noqa: E402
from vr_recognition.training.cli import main  # noqa: E402
from vr_recognition.training.config import TrainConfig  # noqa: E402
from vr_recognition.training.errors import ExportError  # noqa: E402
from vr_recognition.training.serving_eval import serving_accuracy  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZE = "32"
# Resumed and uninterrupted runs compute the same float operations in the same order on the CPU;
# allow for nothing more than last-bit noise.
RESUME_TOLERANCE = 1e-6


def train_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        "--data", str(data), "--out", str(out), "--arch", "resnet18", "--weights", "none",
        "--img-size", SIZE, "--batch-size", "6", "--epochs", "2", "--lr", "0.05", *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return write_imagefolder(tmp_path_factory.mktemp("data") / "shapes", per_class=6, val_per_class=2)


@pytest.fixture(scope="module")
def trained_run(dataset, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "tiny"
    assert main(train_args(dataset, out)) == 0
    return out


def test_run_folder_has_checkpoints_metrics_and_plots(trained_run):
    for name in ("best.pt", "last.pt", "metrics.json", "curves.png", "confusion.png"):
        assert (trained_run / name).stat().st_size > 0, name
    assert not list(trained_run.glob(".*.tmp")), "temporary checkpoint files left behind"
    metrics = json.loads((trained_run / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert [row["epoch"] for row in metrics["epochs"]] == [1, 2]
    for row in metrics["epochs"]:
        assert {"train_loss", "train_accuracy", "val_loss", "val_accuracy", "time_s"} <= set(row)
    assert set(metrics["per_class"]) == set(CLASSES)
    assert {"precision", "recall", "f1"} <= set(metrics["per_class"]["circle"])
    matrix = metrics["confusion_matrix"]["rows_true_columns_predicted"]
    assert sum(map(sum, matrix)) == 6
    assert metrics["best_epoch"] in (1, 2)
    assert metrics["dataset"]["train"]["total"] == 18
    assert metrics["config"]["arch"] == "resnet18"


def test_resume_after_a_stop_matches_an_uninterrupted_run(dataset, trained_run, tmp_path):
    out = tmp_path / "resumed"
    assert main([*train_args(dataset, out), "--stop-after-epochs", "1"]) == 0
    assert load_checkpoint(out / "last.pt").epoch == 1
    assert main(["--out", str(out), "--resume"]) == 0
    resumed = load_checkpoint(out / "last.pt")
    uninterrupted = load_checkpoint(trained_run / "last.pt")
    assert resumed.epoch == uninterrupted.epoch == 2
    for name, value in uninterrupted.model.items():
        assert torch.allclose(resumed.model[name].float(), value.float(), atol=RESUME_TOLERANCE), name
    assert resumed.resume.history[1]["val_loss"] == pytest.approx(
        uninterrupted.resume.history[1]["val_loss"], abs=1e-5
    )


def test_checkpoints_are_plain_dicts_read_back_as_records(trained_run):
    payload = torch.load(trained_run / "best.pt", map_location="cpu", weights_only=True)  # as --weights PATH
    assert isinstance(payload, dict)
    best = Checkpoint.from_dict(payload)
    assert isinstance(best.config, TrainConfig)
    assert (best.arch, best.img_size, best.resize_shorter) == ("resnet18", 32, 37)
    assert best.resume is None
    assert best.to_dict().keys() == payload.keys()
    last = load_checkpoint(trained_run / "last.pt")
    assert last.resume is not None
    assert last.resume.best["epoch"] == best.epoch
    assert len(last.resume.history) == last.epoch == 2
    assert last.to_dict().keys() == torch.load(trained_run / "last.pt", weights_only=False).keys()


def test_an_existing_run_is_not_overwritten_without_resume(dataset, trained_run, capsys):
    assert main(train_args(dataset, trained_run)) == 2
    assert "--resume" in capsys.readouterr().err


def test_two_process_torchrun_on_cpu(dataset, tmp_path):
    out = tmp_path / "ddp"
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
        "-m", "vr_recognition.training.cli", *train_args(dataset, out), "--batch-size", "4",
    ]  # fmt: skip
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert len(metrics["epochs"]) == 2
    # DistributedSampler gives each rank 9 of the 18 images; drop_last keeps 2 full batches of 4 per rank.
    assert all(row["train_samples"] == 16 for row in metrics["epochs"])  # 2 ranks x 2 full batches of 4
    assert result.stdout.count("best epoch") == 1, "only rank 0 reports and writes"
    assert sorted(p.name for p in out.iterdir()) == [
        "best.pt", "confusion.png", "curves.png", "last.pt", "metrics.json",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("models") / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        warnings.simplefilter("error", FutureWarning)
        assert main(["export", "--checkpoint", str(trained_run / "best.pt"), "--out", str(path)]) == 0
    return path


def test_export_is_one_file_with_the_serving_interface(exported):
    assert sorted(p.name for p in exported.parent.iterdir()) == ["tiny.onnx", "tiny.parity.json"]
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    [image] = session.get_inputs()
    [probabilities] = session.get_outputs()
    assert (image.name, image.type) == (INPUT_NAME, "tensor(uint8)")
    assert image.shape[1:] == [32, 32, 3]
    assert isinstance(image.shape[0], str), "batch axis must be dynamic"
    assert probabilities.name == OUTPUT_NAME
    import onnx

    model = onnx.load(str(exported))
    assert not [p for n in model.graph.node for p in n.metadata_props if p.key.endswith("stack_trace")]
    for batch in (1, 5):
        frames = torch.randint(0, 256, (batch, 32, 32, 3), dtype=torch.uint8).numpy()
        output = session.run([OUTPUT_NAME], {INPUT_NAME: frames})[0]
        assert output.shape == (batch, 3)
        assert output.sum(axis=1) == pytest.approx([1.0] * batch, abs=1e-5)


def test_metadata_round_trips_through_the_model_contract(exported, trained_run):
    session = ort.InferenceSession(str(exported), providers=["CPUExecutionProvider"])
    contract = ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map)
    checkpoint = load_checkpoint(trained_run / "best.pt")
    assert contract.classes == CLASSES
    assert (contract.input_height, contract.input_width, contract.resize_shorter) == (32, 32, 37)
    assert contract.name == "tiny"
    assert contract.arch == "resnet18"
    assert contract.version == contract.created
    assert (contract.precision, contract.derived) == ("float32", {})
    assert contract.val_accuracy == pytest.approx(checkpoint.val_accuracy)
    assert contract.dataset["train"]["total"] == 18
    parity = contract.training["parity"]
    assert parity["top1_agreement"] >= 0.995
    assert parity["max_abs_diff"] < 1e-4
    beside = json.loads(exported.with_suffix(".parity.json").read_text())
    assert beside["top1_agreement"] == parity["top1_agreement"]


def test_serving_path_accuracy_equals_reported_val_accuracy(exported, dataset):
    result = serving_accuracy(exported, dataset)
    assert result["frames"] == 6
    assert abs(result["serving_accuracy"] - result["reported_val_accuracy"]) <= 0.005


def test_fp16_export_passes_parity(trained_run, tmp_path):
    path = tmp_path / "half.onnx"
    assert main(["export", "--checkpoint", str(trained_run / "best.pt"), "--out", str(path), "--fp16"]) == 0
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert session.get_outputs()[0].type == "tensor(float16)"
    contract = ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map)
    assert contract.precision == "float16"
    parity = json.loads(path.with_suffix(".parity.json").read_text())
    assert parity["onnx_dtype"] == "float16"
    assert parity["top1_agreement"] >= 0.995


def test_export_after_training_reuses_the_model_and_frames_in_memory(dataset, tmp_path, monkeypatch):
    def rebuilt(*args, **kwargs):
        raise AssertionError("the export rebuilt the network or re-read the dataset the trainer held")

    monkeypatch.setattr(export, "build_backbone", rebuilt)
    monkeypatch.setattr(export, "index_dataset", rebuilt)
    path = tmp_path / "after.onnx"
    assert main([*train_args(dataset, tmp_path / "run"), "--epochs", "1", "--export", str(path)]) == 0
    parity = json.loads(path.with_suffix(".parity.json").read_text())
    assert (parity["frames"], parity["data"]) == (6, "shapes")
    assert parity["top1_agreement"] >= 0.995
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    contract = ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map)
    assert (contract.name, contract.training["best_epoch"]) == ("run", 1)


def test_export_from_a_file_builds_the_network_once(trained_run, tmp_path, monkeypatch):
    calls = []
    real = export.build_backbone
    monkeypatch.setattr(
        export, "build_backbone", lambda *args, **kwargs: calls.append(args) or real(*args, **kwargs)
    )
    export.export_checkpoint(trained_run / "best.pt", tmp_path / "once.onnx")
    assert len(calls) == 1


def test_export_says_where_to_point_when_the_data_moved(trained_run, tmp_path):
    with pytest.raises(ExportError, match="--parity-data"):
        export.export_checkpoint(
            trained_run / "best.pt", tmp_path / "x.onnx", parity_data=str(tmp_path / "gone")
        )
    assert not (tmp_path / "x.onnx").exists()


def test_a_diverging_run_stops_with_what_to_change(dataset, tmp_path, capsys):
    assert main(train_args(dataset, tmp_path / "hot", "--lr", "1e12", "--epochs", "3")) == 2
    error = capsys.readouterr().err
    assert "training diverged in epoch" in error, error
    assert "lower --lr" in error
    assert "Traceback" not in error


def test_batch_size_zero_is_chosen_from_the_data_and_stored(dataset, tmp_path):
    out = tmp_path / "auto"
    args = train_args(dataset, out, "--batch-size", "0", "--min-steps", "4", "--epochs", "1")
    assert main(args) == 0
    config = json.loads((out / "metrics.json").read_text())["config"]
    assert config["batch_size"] == 8  # 18 images x 1 epoch / 4 steps = 4, raised to the smallest auto batch
    assert load_checkpoint(out / "last.pt").config.batch_size == 8
