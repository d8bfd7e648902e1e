"""train-vr data: ImageFolder and capture sessions, corrupt files skipped and listed, layout errors early.

Also holds the small image writers the other test_train_* modules use: real JPEGs written by OpenCV,
one coloured shape per class so a tiny network can learn them in a few steps.
"""

from __future__ import annotations

from pathlib import Path

import pytest

cv2 = pytest.importorskip("cv2")
np = pytest.importorskip("numpy")

from vr_recognition.training.capture_format import FrameRecord, SessionInfo, SessionWriter, frame_image_name  # noqa: E402
from vr_recognition.training.data_sources import DatasetError, index_dataset  # noqa: E402

CLASSES = ("circle", "square", "triangle")
COLOURS = {"circle": (40, 40, 220), "square": (40, 200, 40), "triangle": (220, 60, 40)}  # BGR


def shape_image(label: str, index: int, width: int = 80, height: int = 60) -> np.ndarray:
    """A BGR frame: noisy background, the class's coloured shape near the centre."""
    rng = np.random.default_rng([index, len(label)])
    image = rng.integers(60, 160, size=(height, width, 3), dtype=np.uint8)
    cx, cy = width // 2 + int(rng.integers(-4, 5)), height // 2 + int(rng.integers(-4, 5))
    r = min(width, height) // 4 + int(rng.integers(-2, 3))
    colour = COLOURS[label]
    if label == "circle":
        cv2.circle(image, (cx, cy), r, colour, -1)
    elif label == "square":
        cv2.rectangle(image, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    else:
        points = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], dtype=np.int32)
        cv2.fillPoly(image, [points], colour)
    return image


def write_jpeg(path: Path, image: np.ndarray, quality: int = 90) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), image, [cv2.IMWRITE_JPEG_QUALITY, quality])


def write_imagefolder(root: Path, per_class: int = 8, val_per_class: int = 0, classes=CLASSES) -> Path:
    """root/<class>/*.jpg, or root/train/<class>/ and root/val/<class>/ when val_per_class > 0."""
    for label in classes:
        for index in range(per_class + val_per_class):
            if val_per_class:
                split = "val" if index < val_per_class else "train"
                path = root / split / label / f"{index:03d}.jpg"
            else:
                path = root / label / f"{index:03d}.jpg"
            write_jpeg(path, shape_image(label, index))
    return root


def write_capture_session(root: Path, per_class: int = 6, val_per_class: int = 2) -> Path:
    """One capture session (docs/capture-format.md) with a fixed split; half the frames use split=null."""
    info = SessionInfo(source="tests", width=80, height=60, vertical_fov_deg=90.0, classes=CLASSES)
    number = 0
    with SessionWriter(root / "session-1", info) as writer:
        for label in CLASSES:
            for index in range(per_class):
                relative = frame_image_name(number)
                write_jpeg(writer.image_path_for(relative), shape_image(label, index))
                split = "val" if index < val_per_class else ("train" if index % 2 else None)
                writer.add_frame(
                    FrameRecord(image=relative, label=label, timestamp_s=number / 90, split=split)
                )
                number += 1
    return root


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
