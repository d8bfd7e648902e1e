"""train-vr data: ImageFolder and capture sessions, corrupt files skipped and listed, layout errors early."""

from __future__ import annotations

import pytest

cv2 = pytest.importorskip("cv2")

from tests.train_helpers import (  # noqa: E402
    CLASSES,
    shape_image,
    write_capture_session,
    write_imagefolder,
    write_jpeg,
)
from vr_recognition.training.data_sources import index_dataset  # noqa: E402
from vr_recognition.training.errors import DatasetError  # noqa: E402


def test_imagefolder_with_train_and_val_folders(tmp_path):
    root = write_imagefolder(tmp_path / "data", per_class=4, val_per_class=2)
    index = index_dataset(root)
    assert index.source == "imagefolder-split-dirs"
    assert index.classes == CLASSES
    assert len(index.train) == 12
    assert len(index.val) == 6
    assert all(sample.path.parent.parent.name == "val" for sample in index.val)


def test_single_imagefolder_is_split_by_fraction_with_a_fixed_seed(tmp_path):
    root = write_imagefolder(tmp_path / "data", per_class=10)
    first = index_dataset(root, val_fraction=0.3, seed=5)
    again = index_dataset(root, val_fraction=0.3, seed=5)
    other = index_dataset(root, val_fraction=0.3, seed=6)
    assert first.source == "imagefolder-fraction"
    assert [s.path for s in first.val] == [s.path for s in again.val]
    assert [s.path for s in first.val] != [s.path for s in other.val]
    assert first.summary()["val"]["per_class"] == dict.fromkeys(CLASSES, 3)
    assert not {s.path for s in first.val} & {s.path for s in first.train}


def test_capture_sessions_keep_fixed_splits_and_split_the_rest(tmp_path):
    root = write_capture_session(tmp_path / "captures", per_class=6, val_per_class=2)
    index = index_dataset(root, val_fraction=0.0)
    assert index.source == "capture-sessions"
    assert index.classes == tuple(sorted(CLASSES))
    assert len(index.val) == 6  # only the frames marked split=val
    assert len(index.train) == 12


def test_vr_sim_rendered_session_is_read(tmp_path):
    pytest.importorskip("panda3d", reason="needs the `sim` extra")
    from vr_recognition.sim.dataset import render_dataset
    from vr_recognition.sim.recipe import DatasetRecipe

    recipe = DatasetRecipe(
        classes=("teapot", "box"), per_class=3, width=96, height=64, seed=1, val_fraction=0.34
    )
    render_dataset(recipe, tmp_path / "sim", progress=False)
    index = index_dataset(tmp_path / "sim")
    assert index.classes == ("box", "teapot")
    assert index.summary()["val"]["per_class"] == {"box": 1, "teapot": 1}
    assert len(index.train) == 4


def test_corrupt_and_unreadable_files_are_skipped_and_listed(tmp_path):
    root = write_imagefolder(tmp_path / "data", per_class=4, val_per_class=2)
    (root / "train" / "circle" / "zero.jpg").write_bytes(b"")
    (root / "train" / "square" / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg" * 10)
    (root / "val" / "triangle" / "text.png").write_text("hello")
    png = root / "train" / "triangle" / "real.png"
    assert cv2.imwrite(str(png), shape_image("triangle", 99))
    index = index_dataset(root)
    skipped = {s.path: s.reason for s in index.skipped}
    assert set(skipped) == {"train/circle/zero.jpg", "train/square/garbage.jpg", "val/triangle/text.png"}
    assert all(reason for reason in skipped.values())
    assert len(index.train) == 13  # the 12 good JPEGs plus the PNG, re-encoded to JPEG
    summary = index.summary()["skipped"]
    assert summary["count"] == 3
    assert {f["path"] for f in summary["files"]} == set(skipped)


def test_empty_class_is_an_error(tmp_path):
    root = write_imagefolder(tmp_path / "data", per_class=3, val_per_class=1)
    for path in (root / "train" / "square").iterdir():
        path.unlink()
    with pytest.raises(DatasetError, match=r"\['square'\] have no usable training images"):
        index_dataset(root)


def test_class_whose_only_images_are_corrupt_is_an_error(tmp_path):
    root = write_imagefolder(tmp_path / "data", per_class=2)
    (root / "ghost").mkdir()
    (root / "ghost" / "broken.jpg").write_bytes(b"\x00" * 100)
    with pytest.raises(DatasetError, match=r"\['ghost'\].*1 file\(s\) skipped"):
        index_dataset(root)


def test_val_class_unknown_to_train_is_an_error(tmp_path):
    root = write_imagefolder(tmp_path / "data", per_class=3, val_per_class=1)
    write_jpeg(root / "val" / "hexagon" / "0.jpg", shape_image("circle", 0))
    with pytest.raises(DatasetError, match=r"\['hexagon'\] do not exist in train/"):
        index_dataset(root)


def test_cli_reports_layout_errors_before_training(tmp_path, capsys):
    from vr_recognition.training.cli import main

    root = write_imagefolder(tmp_path / "data", per_class=3, val_per_class=1)
    write_jpeg(root / "val" / "hexagon" / "0.jpg", shape_image("circle", 0))
    code = main(
        ["--data", str(root), "--out", str(tmp_path / "run"), "--weights", "none", "--img-size", "32"]
    )
    assert code == 2
    assert "hexagon" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
