"""vr-sim rendering: real headless Panda3D renders (small sizes), labels, determinism, dataset round-trip."""

from __future__ import annotations

import itertools
import json
import math
import sys
from pathlib import Path

import pytest

pytest.importorskip("panda3d", reason="needs the `sim` extra: pip install .[sim]")
np = pytest.importorskip("numpy")

from vr_recognition.server.imaging import decode_jpeg  # noqa: E402
from vr_recognition.sim.catalog import DEFAULT_CLASSES  # noqa: E402
from vr_recognition.sim.coordinates import rotate  # noqa: E402
from vr_recognition.sim.dataset import render_dataset  # noqa: E402
from vr_recognition.sim.engine import OffscreenRenderer  # noqa: E402
from vr_recognition.sim.errors import SimError  # noqa: E402
from vr_recognition.sim.headset import LiveScene  # noqa: E402
from vr_recognition.sim.randomization import SceneRanges, sample_frame  # noqa: E402
from vr_recognition.sim.recipe import DatasetRecipe, load_recipe  # noqa: E402
from vr_recognition.sim.scene import FrameRenderer, render_object_ids  # noqa: E402
from vr_recognition.training.capture_format import CaptureFormatError, read_dataset, read_session  # noqa: E402

WIDTH, HEIGHT = 160, 120
# Same seed, same pixels: the software rasteriser is deterministic; a handful of pixels at wall/floor
# seams can differ on the first draw after a texture is prepared, so we allow at most 0.2 % of pixels
# to differ by more than 2 grey levels and a mean absolute difference of 0.1.
SAME_SEED_DIFFERENT_PIXELS = 0.002
SAME_SEED_MEAN_ABS_DIFF = 0.1
# Different seeds must give clearly different images (typical mean abs diff is 30-60 grey levels).
DIFFERENT_SEED_MIN_MEAN_ABS_DIFF = 10.0
# After JPEG (quality 90) one differing pixel changes its whole 8x8 block slightly, so decoded frames of
# two same-seed datasets are compared looser: <= 1 % of pixels off by more than 8, mean abs diff <= 0.5.
JPEG_DIFFERENT_PIXELS, JPEG_MEAN_ABS_DIFF = 0.01, 0.5
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def frames():
    renderer = OffscreenRenderer(WIDTH, HEIGHT, 95.0)
    yield FrameRenderer(renderer)
    renderer.close()


def params_for(seed: int, label: str, index: int):
    return sample_frame(seed, label, index, DEFAULT_CLASSES, SceneRanges(), WIDTH / HEIGHT)


@pytest.mark.parametrize("label", DEFAULT_CLASSES)
def test_label_is_the_visible_object_at_the_centre(frames, label):
    for index in range(2):
        params = params_for(7, label, index)
        composed = frames.compose(params)
        ids = render_object_ids(
            frames.renderer, [composed.target, *composed.distractors], [composed.background]
        )
        target = ids == 1
        assert target.mean() > 0.004, (
            f"{label} #{index}: labelled object barely visible ({target.mean():.2%})"
        )
        rows, cols = np.nonzero(target)
        assert abs(cols.mean() / WIDTH - 0.5) < 0.2, f"{label} #{index}: labelled object off-centre (x)"
        assert abs(rows.mean() / HEIGHT - 0.5) < 0.2, (
            f"{label} #{index}: labelled object is not near the view centre"
        )
        centre = ids[int(HEIGHT * 0.4) : int(HEIGHT * 0.6), int(WIDTH * 0.4) : int(WIDTH * 0.6)]
        counts = np.bincount(centre.ravel(), minlength=len(composed.distractors) + 2)
        assert counts[1] > 0, f"{label} #{index}: labelled object absent from the centre"
        assert counts[1] == counts[1:].max(), f"{label} #{index}: a distractor owns the centre"
        frame = frames.render(params)
        assert frame.label == label
        assert abs(frame.gaze[0] - 0.5) < 0.15
        assert abs(frame.gaze[1] - 0.5) < 0.15
        assert frame.rgb.shape == (HEIGHT, WIDTH, 3)
        assert frame.rgb.dtype == np.uint8
        assert frame.rgb.std() > 5, "frame is (nearly) blank"


def test_same_seed_same_pixels_on_a_fresh_renderer(frames):
    other = OffscreenRenderer(WIDTH, HEIGHT, 95.0)
    try:
        for label in ("panda", "box"):
            first = frames.render(params_for(11, label, 3)).rgb.astype(int)
            second = FrameRenderer(other).render(params_for(11, label, 3)).rgb.astype(int)
            assert_same_pixels(first, second)
    finally:
        other.close()


def assert_same_pixels(
    first, second, threshold=2, fraction=SAME_SEED_DIFFERENT_PIXELS, mean=SAME_SEED_MEAN_ABS_DIFF
):
    difference = np.abs(np.asarray(first, dtype=int) - np.asarray(second, dtype=int))
    assert (difference.max(axis=-1) > threshold).mean() <= fraction
    assert difference.mean() <= mean


def test_different_seeds_differ(frames):
    first = frames.render(params_for(1, "teapot", 0)).rgb.astype(int)
    second = frames.render(params_for(2, "teapot", 0)).rgb.astype(int)
    assert np.abs(first - second).mean() > DIFFERENT_SEED_MIN_MEAN_ABS_DIFF


def test_frame_parameters_do_not_depend_on_class_order():
    forward = sample_frame(5, "jack", 4, ("jack", "box"), SceneRanges(), 4 / 3)
    reordered = sample_frame(5, "jack", 4, ("box", "jack"), SceneRanges(), 4 / 3)
    assert forward.target == reordered.target
    assert forward.head == reordered.head


def test_dataset_round_trips_through_capture_format(tmp_path):
    recipe = DatasetRecipe(
        classes=("smiley", "camera"), per_class=5, width=96, height=64, seed=3, val_fraction=0.4, quality=90
    )
    session_dir = render_dataset(recipe, tmp_path / "data", progress=False)
    again = render_dataset(recipe, tmp_path / "again", progress=False)
    [session] = read_dataset(tmp_path / "data")
    assert session.root == session_dir
    assert session.info.classes == ("smiley", "camera")
    assert (session.info.width, session.info.height) == (96, 64)
    assert [f.label for f in session.frames] == ["smiley"] * 5 + ["camera"] * 5
    for label in ("smiley", "camera"):
        assert sum(f.split == "val" for f in session.frames if f.label == label) == 2
    again_frames = read_session(again).frames
    for frame, repeat in zip(session.frames, again_frames, strict=True):
        assert frame == repeat  # same seed: same records (pose, gaze, split)
        pixels = decode_jpeg(session.image_path(frame).read_bytes())
        assert pixels.shape == (64, 96, 3)
        repeat_pixels = decode_jpeg(read_session(again).image_path(repeat).read_bytes())
        assert_same_pixels(pixels, repeat_pixels, 8, JPEG_DIFFERENT_PIXELS, JPEG_MEAN_ABS_DIFF)
        # The head looks at the labelled object (above the Unity origin): forward points at it.
        assert frame.pose is not None
        assert frame.gaze is not None
        forward = rotate(frame.pose.rotation, (0.0, 0.0, 1.0))
        height = 1.6  # the object's height is not recorded; compare the horizontal direction only
        to_object = (-frame.pose.position[0], height - frame.pose.position[1], -frame.pose.position[2])
        horizontal_angle = math.degrees(
            abs(math.atan2(forward[0], forward[2]) - math.atan2(to_object[0], to_object[2])) % 360
        )
        assert min(horizontal_angle, 360 - horizontal_angle) < 12


def write_session(root: Path, lines: list[str]) -> Path:
    root.mkdir(parents=True)
    header = {
        "format": "vr-capture-session",
        "version": 1,
        "source": "test",
        "created": "2025-01-01T00:00:00Z",
        "image": {"width": 64, "height": 48},
        "camera": {"vertical_fov_deg": 95},
        "classes": ["teapot", "box"],
    }
    (root / "session.json").write_text(json.dumps(header))
    (root / "frames.jsonl").write_text("\n".join(lines) + "\n")
    return root


GOOD = '{"image": "frames/000000.jpg", "label": "teapot", "timestamp_s": 0.0}'


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ('{"image": "frames/1.jpg", "label": "teapot", ', "invalid JSON"),
        ('{"image": "frames/1.jpg", "label": "lamp", "timestamp_s": 1}', "'lamp' is not one of"),
        ('{"label": "box", "timestamp_s": 1}', "missing or empty 'image'"),
        ('{"image": "../1.jpg", "label": "box", "timestamp_s": 1}', "relative path"),
        (
            '{"image": "f/1.jpg", "label": "box", "timestamp_s": 1, "pose": {"position": [0, 0, 0], '
            '"rotation": [0, 0, 0, 2]}}',
            "unit quaternion",
        ),
        ('{"image": "f/1.jpg", "label": "box", "timestamp_s": 1, "gaze": [0.5, 1.5]}', "'gaze'"),
        ('{"image": "f/1.jpg", "label": "box", "timestamp_s": 1, "split": "test"}', "'split'"),
        (GOOD, "already used on line 1"),
    ],
)
def test_reader_names_file_and_line_of_a_bad_record(tmp_path, bad_line, message):
    session = write_session(tmp_path / "s", [GOOD, bad_line])
    with pytest.raises(CaptureFormatError, match=message) as error:
        read_session(session)
    assert "frames.jsonl:2:" in str(error.value)


def test_reader_rejects_a_bad_header(tmp_path):
    session = write_session(tmp_path / "s", [GOOD])
    header = json.loads((session / "session.json").read_text())
    (session / "session.json").write_text(json.dumps({**header, "version": 99}))
    with pytest.raises(CaptureFormatError, match="newer than this reader"):
        read_session(session)
    with pytest.raises(CaptureFormatError, match=r"no session\.json"):
        read_dataset(tmp_path / "empty-dir-that-does-not-exist")


def test_live_scene_moves_smoothly_and_labels_what_is_looked_at():
    with LiveScene(96, 72, ("teapot", "box", "smiley"), seed=1, fps=30) as scene:
        frames = [scene.next_frame() for _ in range(90)]  # 3 s: at least one turn to another object
    labels = {frame.label for frame in frames}
    assert labels <= {"teapot", "box", "smiley"}
    assert len(labels) >= 2
    for previous, current in itertools.pairwise(frames):
        step = math.dist(previous.pose.position, current.pose.position)
        assert step < 0.05, "head teleported between consecutive frames"
        assert all(0.0 <= x <= 1.0 for x in current.gaze)
    assert all(abs(frame.gaze[0] - 0.5) < 1e-3 for frame in frames), "the head looks where the gaze is"


def test_recipe_file_and_flags(tmp_path):
    recipe = load_recipe(REPO / "configs" / "demo-dataset.toml", per_class=3, width=64, height=48)
    assert recipe.per_class == 3
    assert (recipe.width, recipe.height) == (64, 48)
    assert len(recipe.classes) >= 6
    bad = tmp_path / "bad.toml"
    bad.write_text('[dataset]\nclasses = ["teapot", "lamp"]\n')
    with pytest.raises(SimError, match="unknown class"):
        load_recipe(bad)


def test_cli_without_panda3d_names_the_extra_and_exits_2(monkeypatch, capsys):
    from vr_recognition.sim import cli

    monkeypatch.setitem(sys.modules, "panda3d", None)  # what find_spec reports for an absent package
    assert cli.main(["render", "--out", "unused"]) == 2
    assert "pip install .[sim]" in capsys.readouterr().err


def test_cli_stream_without_a_server_says_so_and_exits_2(capsys):
    from vr_recognition.sim import cli

    code = cli.main(
        ["stream", "--size", "64x48", "--fps", "10", "--duration", "0.5", "--url", "ws://127.0.0.1:9"]
    )
    assert code == 2
    captured = capsys.readouterr()
    assert "cannot stream to ws://127.0.0.1:9" in captured.err
    assert "Traceback" not in captured.err
