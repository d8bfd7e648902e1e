"""train-vr on Unity Perception datasets (SOLO): per-box crops and per-frame samples, the split by
sequence, bad data skipped and listed, and a real training run on a SOLO folder.

The datasets are written here as Unity's Perception package writes them (SoloEndpoint: metadata.json,
annotation_definitions.json, metric_definitions.json, sensor_definitions.json, sequence.N/stepK.camera.png
and stepK.frame_data.json; field names as in com.unity.perception's SoloSchema.md and the sample data of
Unity-Technologies/pysolotools), with real PNGs drawn by OpenCV at known boxes."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")

from vr_recognition.server.imaging import decode_jpeg  # noqa: E402
from vr_recognition.training import solo  # noqa: E402
from vr_recognition.training.data_sources import index_dataset, sample_jpeg_bytes  # noqa: E402
from vr_recognition.training.errors import ConfigError, DatasetError  # noqa: E402

WIDTH, HEIGHT = 160, 120
# Label config of the box labeler; "Terrain" is configured but never in a scene, as is common.
LABEL_IDS = {"Crate": 1, "Ball": 2, "Cone": 3, "Terrain": 4}
SCENE_LABELS = ("Crate", "Ball", "Cone")
COLOURS = {"Crate": (40, 40, 220), "Ball": (220, 60, 40), "Cone": (40, 200, 40)}  # BGR
BOX_TYPE = "type.unity.com/unity.solo.BoundingBox2DAnnotation"


@dataclass(frozen=True)
class Thing:
    label: str
    x: int
    y: int
    w: int
    h: int


def scene(sequence: int) -> list[Thing]:
    """Two objects: a large one on the left (the frame's dominant label), a smaller one on the right."""
    big = SCENE_LABELS[sequence % 3]
    small = SCENE_LABELS[(sequence + 1) % 3]
    return [Thing(big, 10 + sequence, 30, 50, 50), Thing(small, 100, 20 + sequence, 30, 40)]


def draw(things: list[Thing], seed: int) -> np.ndarray:
    image = np.random.default_rng(seed).integers(90, 150, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    for t in things:
        colour = COLOURS[t.label]
        if t.label == "Ball":
            cv2.ellipse(image, (t.x + t.w // 2, t.y + t.h // 2), (t.w // 2, t.h // 2), 0, 0, 360, colour, -1)
        elif t.label == "Cone":
            points = np.array([[t.x + t.w // 2, t.y], [t.x, t.y + t.h - 1], [t.x + t.w - 1, t.y + t.h - 1]])
            cv2.fillPoly(image, [points.astype(np.int32)], colour)
        else:
            cv2.rectangle(image, (t.x, t.y), (t.x + t.w - 1, t.y + t.h - 1), colour, -1)
    return image


def box_value(instance: int, t: Thing) -> dict:
    return {
        "instanceId": instance,
        "labelId": LABEL_IDS[t.label],
        "labelName": t.label,
        "origin": [float(t.x), float(t.y)],
        "dimension": [float(t.w), float(t.h)],
    }


def frame_data(sequence: int, step: int, frame: int, values: list[dict], size=(WIDTH, HEIGHT)) -> dict:
    """A step<K>.frame_data.json as Perception writes it: one RGB camera capture with a 2D box labeler
    (and another labeler's annotation, which the reader must ignore), plus metrics."""
    return {
        "frame": frame,
        "sequence": sequence,
        "step": step,
        "captures": [
            {
                "@type": "type.unity.com/unity.solo.RGBCamera",
                "id": "camera",
                "description": "The main camera",
                "position": [0.0, 1.0, -10.0],
                "rotation": [0.0, 0.0, 0.0, 1.0],
                "velocity": [0.0, 0.0, 0.0],
                "acceleration": [0.0, 0.0, 0.0],
                "filename": f"step{step}.camera.png",
                "imageFormat": "Png",
                "dimension": [float(size[0]), float(size[1])],
                "projection": "Perspective",
                "matrix": [1.3, 0.0, 0.0, 0.0, 1.73, 0.0, 0.0, 0.0, -1.0],
                "annotations": [
                    {
                        "@type": BOX_TYPE,
                        "id": "bounding box",
                        "sensorId": "camera",
                        "description": "Produces 2D bounding box annotations for all visible objects that "
                        "bear a label defined in this labeler's associated label configuration.",
                        "values": values,
                    },
                    {
                        "@type": "type.unity.com/unity.solo.InstanceSegmentationAnnotation",
                        "id": "instance segmentation",
                        "sensorId": "camera",
                        "description": "Produces an instance segmentation image for each frame.",
                        "imageFormat": "Png",
                        "dimension": [float(size[0]), float(size[1])],
                        "filename": f"step{step}.camera.instance segmentation.png",
                        "instances": [],
                    },
                ],
            }
        ],
        "metrics": [
            {
                "@type": "type.unity.com/unity.solo.GenericMetric",
                "id": "scenario_iteration",
                "sensorId": "",
                "annotationId": "",
                "description": "Iteration information for dataset sequences",
                "value": sequence,
            }
        ],
    }


def write_json(path: Path, value) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))


def write_definitions(root: Path, sequences: int, frames: int) -> None:
    write_json(
        root / "metadata.json",
        {
            "unityVersion": "2022.3.10f1",
            "perceptionVersion": "1.0.0-preview.1",
            "renderPipeline": "URP",
            "simulationStartTime": "6/1/2025 10:00:00 AM",
            "scenarioRandomSeed": 539662031,
            "scenarioActiveRandomizers": ["TextureRandomizer", "ForegroundObjectPlacementRandomizer"],
            "totalFrames": frames,
            "totalSequences": sequences,
            "sensors": ["camera"],
            "metricCollectors": ["scenario_iteration"],
            "simulationEndTime": "6/1/2025 10:01:00 AM",
            "annotators": [{"name": "bounding box", "type": BOX_TYPE}],
        },
    )
    write_json(
        root / "annotation_definitions.json",
        {
            "annotationDefinitions": [
                {
                    "@type": BOX_TYPE,
                    "id": "bounding box",
                    "description": "Produces 2D bounding box annotations for all visible objects.",
                    "spec": [{"label_id": i, "label_name": name} for name, i in LABEL_IDS.items()],
                }
            ]
        },
    )
    write_json(
        root / "metric_definitions.json",
        {
            "metricDefinitions": [
                {
                    "@type": "type.unity.com/unity.solo.GenericMetric",
                    "id": "scenario_iteration",
                    "description": "Iteration information for dataset sequences",
                }
            ]
        },
    )
    write_json(
        root / "sensor_definitions.json",
        {
            "sensorDefinitions": [
                {
                    "@type": "type.unity.com/unity.solo.RGBCamera",
                    "id": "camera",
                    "modality": "camera",
                    "definition": "The main camera",
                    "firstCaptureFrame": 0.0,
                    "captureTriggerMode": "Scheduled",
                    "simulationDeltaTime": 0.0166,
                    "framesBetweenCaptures": 0,
                    "manualSensorsAffectTiming": False,
                }
            ]
        },
    )


def write_step(root: Path, sequence: int, step: int, frame: int, things: list[Thing], values=None) -> Path:
    """sequence.N/stepK.camera.png and stepK.frame_data.json; `values` replaces the boxes of `things`."""
    folder = root / f"sequence.{sequence}"
    folder.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(folder / f"step{step}.camera.png"), draw(things, frame))
    boxes = [box_value(i, t) for i, t in enumerate(things)] if values is None else values
    write_json(folder / f"step{step}.frame_data.json", frame_data(sequence, step, frame, boxes))
    return folder


def write_solo(root: Path, sequences: int = 6, steps: int = 1, metadata: bool = True) -> Path:
    frame = 0
    for sequence in range(sequences):
        for step in range(steps):
            write_step(root, sequence, step, frame, scene(sequence))
            frame += 1
    if metadata:
        write_definitions(root, sequences, frame)
    return root


def centre_colour(rgb: np.ndarray) -> np.ndarray:
    h, w = rgb.shape[:2]
    return rgb[h // 2 - 2 : h // 2 + 3, w // 2 - 2 : w // 2 + 3].reshape(-1, 3).mean(axis=0)


def all_samples(index):
    return index.train + index.val


# --- the index ------------------------------------------------------------------------------------


def test_solo_folder_gives_one_sample_per_labelled_box(tmp_path):
    index = index_dataset(write_solo(tmp_path / "solo"), val_fraction=0.2)
    assert index.source == "unity-solo"
    assert index.classes == ("Ball", "Cone", "Crate")  # the labels that occur; "Terrain" never does
    assert len(all_samples(index)) == 12  # 6 frames x 2 boxes
    assert index.skipped == []
    assert all(s.crop is not None for s in all_samples(index))
    assert index.summary()["train"]["total"] + index.summary()["val"]["total"] == 12
    assert index.summary()["val"]["total"] == 2  # round(0.2 x 12) samples: one whole sequence


def test_a_crop_is_the_drawn_object_read_as_training_reads_it(tmp_path):
    index = index_dataset(write_solo(tmp_path / "solo"))
    for sample in all_samples(index):
        sequence = int(sample.path.parent.name.split(".")[1])
        label = index.classes[sample.label]
        [thing] = [t for t in scene(sequence) if t.label == label]
        rgb = decode_jpeg(sample_jpeg_bytes(sample))  # the bytes AugmentedFrames and serving_inputs read
        side = round(max(thing.w, thing.h) * 1.2)  # the longer side plus 10 % on each side
        assert rgb.shape == (side, side, 3), (sample, thing)
        expected = np.array(COLOURS[label][::-1], dtype=float)  # BGR drawn, RGB decoded
        assert np.abs(centre_colour(rgb) - expected).max() < 20, (sample, centre_colour(rgb))


def test_margin_option_changes_the_crop(tmp_path):
    root = write_solo(tmp_path / "solo", sequences=3)
    wide = index_dataset(root, solo_margin=0.5)
    sides = {s.crop[2] - s.crop[0] for s in all_samples(wide)}
    assert sides == {100, 80}  # twice the longer side; the 50 px boxes' squares moved inside the left edge
    with pytest.raises(ConfigError, match="--solo-margin"):
        index_dataset(root, solo_margin=-0.1)
    with pytest.raises(ConfigError, match="--solo-samples"):
        index_dataset(root, solo_samples="instances")


def test_box_crop_is_square_around_the_box_and_moved_into_the_image():
    thin = solo.Box("pole", 100, 30, 10, 60)
    assert solo.box_crop(thin, WIDTH, HEIGHT, 0.1) == (69, 24, 141, 96)  # 72 x 72 around the 10 x 60 box
    corner = solo.Box("Crate", 0, 0, 30, 30)
    assert solo.box_crop(corner, WIDTH, HEIGHT, 0.1) == (0, 0, 36, 36)  # moved, not cut
    right_edge = solo.Box("Crate", 140, 50, 20, 20)
    assert solo.box_crop(right_edge, WIDTH, HEIGHT, 0.1) == (136, 48, 160, 72)
    huge = solo.Box("wall", 20, 5, 100, 110)  # its square (132) is taller than the image: cut to it
    assert solo.box_crop(huge, WIDTH, HEIGHT, 0.1) == (4, 0, 136, 120)
    assert solo.clip_box(solo.Box("x", 200, 10, 20, 20), WIDTH, HEIGHT) is None
    assert solo.clip_box(solo.Box("x", -5, 110, 20, 20), WIDTH, HEIGHT) == solo.Box("x", 0, 110, 15, 10)


def test_frames_mode_labels_each_frame_by_its_dominant_label(tmp_path):
    index = index_dataset(write_solo(tmp_path / "solo"), solo_samples="frames")
    samples = all_samples(index)
    assert len(samples) == 6
    for sample in samples:
        sequence = int(sample.path.parent.name.split(".")[1])
        assert sample.crop is None
        assert index.classes[sample.label] == scene(sequence)[0].label  # the larger object's label
        assert decode_jpeg(sample_jpeg_bytes(sample)).shape == (HEIGHT, WIDTH, 3)
    boxes = [solo.Box("b", 0, 0, 10, 10), solo.Box("a", 0, 0, 5, 5), solo.Box("a", 0, 0, 5, 15)]
    assert solo.dominant_label(boxes) == "a"  # 100 px each: the tie goes to the first name
    assert solo.dominant_label(boxes[:2]) == "b"


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_split_keeps_every_sequence_and_frame_on_one_side(tmp_path, seed):
    root = write_solo(tmp_path / "solo", sequences=8, steps=3)
    index = index_dataset(root, val_fraction=0.3, seed=seed)
    train_sequences = {s.path.parent.name for s in index.train}
    val_sequences = {s.path.parent.name for s in index.val}
    assert val_sequences
    assert not train_sequences & val_sequences
    assert not {s.path for s in index.train} & {s.path for s in index.val}  # no frame on both sides
    assert len(index.val) == 12  # 0.3 x 48 = 14.4: two sequences of 6 boxes; a third would end further
    assert {s.label for s in index.train} == {0, 1, 2}
    again = index_dataset(root, val_fraction=0.3, seed=seed)
    assert again.val == index.val


def test_split_seeds_differ_and_one_sequence_is_split_by_frame(tmp_path):
    root = write_solo(tmp_path / "solo", sequences=8)
    picks = {tuple(s.path for s in index_dataset(root, seed=seed).val) for seed in range(4)}
    assert len(picks) > 1
    single = tmp_path / "single"
    for step in range(6):
        write_step(single, 0, step, step, scene(step))
    write_definitions(single, 1, 6)
    index = index_dataset(single, val_fraction=0.2)
    assert index.val
    assert not {s.path for s in index.train} & {s.path for s in index.val}


def test_bad_data_is_skipped_and_listed(tmp_path):
    root = write_solo(tmp_path / "solo", sequences=6)
    good = scene(0)
    (write_step(root, 6, 0, 60, good) / "step0.frame_data.json").write_text('{"frame": 60, "captures": [')
    (write_step(root, 7, 0, 70, good) / "step0.camera.png").unlink()
    (write_step(root, 8, 0, 80, good) / "step0.camera.png").write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    outside = {**box_value(1, good[1]), "origin": [500.0, 400.0]}
    write_step(root, 9, 0, 90, good, values=[box_value(0, good[0]), outside])
    tiny = Thing("Ball", 120, 90, 10, 12)
    write_step(root, 10, 0, 100, [*good, tiny], values=[box_value(0, good[0]), box_value(1, tiny)])
    write_step(root, 11, 0, 110, good, values=[])
    unnamed = {k: v for k, v in box_value(0, good[0]).items() if k != "labelName"}  # found by labelId
    nameless = {**unnamed, "labelId": 99}
    write_step(root, 12, 0, 120, good, values=[unnamed, nameless])
    resized = write_step(root, 13, 0, 130, good)
    assert cv2.imwrite(str(resized / "step0.camera.png"), draw(good, 1)[::2, ::2])

    index = index_dataset(root)
    skipped = {(s.path, s.reason) for s in index.skipped}
    paths = {path for path, _ in skipped}
    assert {
        "sequence.6/step0.frame_data.json",
        "sequence.7/step0.camera.png",
        "sequence.8/step0.camera.png",
        "sequence.9/step0.frame_data.json",
        "sequence.12/step0.frame_data.json",
        "sequence.13/step0.camera.png",
    } <= paths
    reasons = {path: reason for path, reason in skipped}
    assert "unreadable JSON" in reasons["sequence.6/step0.frame_data.json"]
    assert reasons["sequence.7/step0.camera.png"] == "file missing"
    assert "not a decodable image" in reasons["sequence.8/step0.camera.png"]
    assert "outside the 160x120 image" in reasons["sequence.9/step0.frame_data.json"]
    assert "labelId 99" in reasons["sequence.12/step0.frame_data.json"]
    assert "80x60" in reasons["sequence.13/step0.camera.png"]
    assert ("sequence.*/*.frame_data.json", "1 'Ball' box(es) under 16 px on a side") in skipped
    assert ("sequence.*/*.frame_data.json", "1 frame(s) without a labelled 2D box") in skipped
    assert len(index.skipped) == 8
    # 6 good frames x 2 boxes, the good box of sequences 9 and 10, and the box found by its labelId
    assert len(all_samples(index)) == 15
    assert index.summary()["skipped"]["count"] == 8


def test_solo_without_usable_samples_is_a_dataset_error(tmp_path):
    empty = tmp_path / "empty"
    write_definitions(empty, 0, 0)
    with pytest.raises(DatasetError, match="Unity Perception \\(SOLO\\) dataset without a usable sample"):
        index_dataset(empty)
    tiny = tmp_path / "tiny"
    small = [Thing("Crate", 10, 10, 8, 8), Thing("Ball", 50, 50, 12, 30)]
    for sequence in range(3):
        write_step(tiny, sequence, 0, sequence, small)
    with pytest.raises(DatasetError, match="box\\(es\\) under 16 px"):
        index_dataset(tiny)
    index = index_dataset(tiny, solo_samples="frames")  # whole frames do not need a minimum box
    assert len(all_samples(index)) == 3


def test_a_run_cut_short_without_metadata_is_read(tmp_path):
    index = index_dataset(write_solo(tmp_path / "solo", metadata=False))
    assert index.source == "unity-solo"
    assert len(all_samples(index)) == 12


def test_cli_options_reach_the_config():
    from vr_recognition.training.cli import build_parser
    from vr_recognition.training.config import TrainConfig

    args = build_parser().parse_args(["--data", "d", "--out", "o", "--solo-samples", "frames"])
    assert (args.solo_samples, args.solo_margin) == ("frames", TrainConfig(data="", out="").solo_margin)
    args = build_parser().parse_args(["--data", "d", "--out", "o", "--solo-margin", "0.25"])
    assert (args.solo_samples, args.solo_margin) == ("boxes", 0.25)


# --- end to end -----------------------------------------------------------------------------------


def test_train_vr_trains_and_exports_from_a_solo_folder(tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from vr_recognition.server.model_format import ModelContract
    from vr_recognition.training.cli import main
    from vr_recognition.training.evaluate import evaluate_model

    data = write_solo(tmp_path / "solo", sequences=9)
    out, model = tmp_path / "run", tmp_path / "solo.onnx"
    argv = [
        "--data", str(data), "--out", str(out), "--arch", "resnet18", "--weights", "none",
        "--img-size", "32", "--batch-size", "6", "--epochs", "1", "--export", str(model),
    ]  # fmt: skip
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "finished"
    assert metrics["dataset"]["source"] == "unity-solo"
    assert metrics["dataset"]["classes"] == ["Ball", "Cone", "Crate"]
    assert metrics["dataset"]["train"]["total"] + metrics["dataset"]["val"]["total"] == 18
    assert metrics["config"]["solo_samples"] == "boxes"
    import onnx

    contract = ModelContract.from_metadata({p.key: p.value for p in onnx.load(str(model)).metadata_props})
    assert contract.classes == ("Ball", "Cone", "Crate")
    assert contract.training["parity"]["top1_agreement"] >= 0.995
    evaluation = evaluate_model(model, data)  # the val crops again, through the wire frame and server path
    assert evaluation.frames == metrics["dataset"]["val"]["total"]
    assert abs(evaluation.accuracy - contract.val_accuracy) <= 0.005
