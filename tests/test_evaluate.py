"""`train-vr evaluate`: accuracy, per-class scores and confusion of an .onnx file through the serving
path, on the split the model was trained with. The model is tests/onnx_models.py's colour model named
after the shapes of tests/train_helpers.py (circle red, square green, triangle blue)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import onnx
import pytest

from tests.onnx_models import colour_contract, colour_model, write_colour_model
from tests.train_helpers import CLASSES, shape_image, write_imagefolder, write_jpeg
from vr_recognition.training.cli import main
from vr_recognition.training.evaluate import evaluate_model


def write_shapes_model(path: Path, **contract_changes) -> Path:
    contract = dataclasses.replace(colour_contract(name="shapes"), classes=CLASSES, **contract_changes)
    onnx.save(colour_model(contract), str(path))
    return path


@pytest.fixture(scope="module")
def shapes(tmp_path_factory) -> Path:
    return write_imagefolder(tmp_path_factory.mktemp("data") / "shapes", per_class=4, val_per_class=3)


def test_accuracy_scores_and_json(shapes, tmp_path, capsys):
    model = write_shapes_model(tmp_path / "shapes.onnx")
    report = tmp_path / "eval.json"
    assert main(["evaluate", "--model", str(model), "--data", str(shapes), "--json", str(report)]) == 0
    results = json.loads(report.read_text())
    assert (results["accuracy"], results["frames"], results["split"]) == (1.0, 9, "val")
    assert (results["model"], results["precision"], results["data"]) == ("shapes.onnx", "float32", "shapes")
    assert results["confusion_matrix"] == {
        "classes": list(CLASSES),
        "rows_true_columns_predicted": [[3, 0, 0], [0, 3, 0], [0, 0, 3]],
    }
    assert results["per_class"]["square"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 3}
    assert "accuracy 100.00% over 9 frames (serving path)" in capsys.readouterr().out


def test_wrong_answers_show_in_recall_precision_and_confusion(shapes, tmp_path):
    data = write_imagefolder(tmp_path / "mixed", per_class=2, val_per_class=2)
    write_jpeg(data / "val" / "circle" / "099.jpg", shape_image("triangle", 5))  # a blue shape called circle
    evaluation = evaluate_model(write_shapes_model(tmp_path / "m.onnx"), data)
    assert evaluation.frames == 7
    assert evaluation.accuracy == pytest.approx(6 / 7)
    assert evaluation.confusion[0] == [2, 0, 1]
    assert evaluation.per_class["circle"]["recall"] == pytest.approx(2 / 3)
    assert evaluation.per_class["triangle"]["precision"] == pytest.approx(2 / 3)


def test_the_split_is_the_one_the_model_was_trained_with(tmp_path):
    data = write_imagefolder(tmp_path / "flat", per_class=10)  # no fixed split: a seeded fraction
    trained_half = write_shapes_model(
        tmp_path / "half.onnx", training={"config": {"val_fraction": 0.5, "seed": 3}}
    )
    assert evaluate_model(trained_half, data).frames == 15
    assert evaluate_model(write_shapes_model(tmp_path / "plain.onnx"), data).frames == 6  # default 0.2
    assert evaluate_model(trained_half, data, val_fraction=0.3).frames == 9
    assert evaluate_model(trained_half, data, split="train").frames == 15


def test_user_errors_are_one_line(shapes, tmp_path, capsys):
    colours = write_colour_model(tmp_path / "colours.onnx")  # classes red, green, blue
    not_a_model = tmp_path / "junk.onnx"
    not_a_model.write_bytes(b"\x08\x01garbage")
    assert main(["evaluate", "--model", str(colours), "--data", str(shapes)]) == 2
    assert main(["evaluate", "--model", str(not_a_model), "--data", str(shapes)]) == 2
    assert main(["evaluate", "--model", str(colours), "--data", str(tmp_path / "none")]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 3
    assert errors[0].startswith("train-vr: ")
    assert "['circle', 'square', 'triangle'] are not classes of the model" in errors[0]
    assert errors[1].startswith(f"train-vr: {not_a_model}: ")
    assert errors[2] == f"train-vr: {tmp_path / 'none'}: dataset folder not found"
