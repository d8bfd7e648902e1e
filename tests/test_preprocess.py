"""One preprocessing for training and serving, proved on real rendered frames: the server's path
(a protocol frame) and training's validation path (a JPEG file) give identical model inputs."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest

from vr_recognition.server import protocol as p
from vr_recognition.server.imaging import jpeg_size, reduction_factor
from vr_recognition.server.model_format import ModelContract
from vr_recognition.server.preprocess import (
    decode_frame_image,
    gaze_crop,
    preprocess_frame,
    preprocess_jpeg,
)
from vr_recognition.sim.headset import LiveScene

LIMITS = p.Limits()


@pytest.fixture(scope="module")
def rendered_jpegs() -> list[bytes]:
    """Real frames from the simulator's 3D scene, as a headset would send them (720p JPEG)."""
    with LiveScene(1280, 720, ("teapot", "panda", "box"), seed=3, fps=10) as scene:
        frames = [scene.next_frame().rgb for _ in range(4)]
    quality = [cv2.IMWRITE_JPEG_QUALITY, 85]
    return [cv2.imencode(".jpg", cv2.cvtColor(f, cv2.COLOR_RGB2BGR), quality)[1].tobytes() for f in frames]


def contract(size: int = 224, shorter: int = 224) -> ModelContract:
    return ModelContract("m", "1", ("a", "b"), size, size, shorter)


@pytest.mark.parametrize(("size", "shorter"), [(224, 224), (224, 256), (160, 160), (96, 110)])
def test_serving_and_training_paths_give_identical_inputs(rendered_jpegs, size, shorter):
    c = contract(size, shorter)
    for jpeg in rendered_jpegs:
        served = preprocess_frame(p.Frame(0, 0, p.ImageFormat.JPEG, 1280, 720, jpeg), c, LIMITS)
        trained = preprocess_jpeg(jpeg, c)
        assert served.shape == (size, size, 3)
        assert served.dtype == np.uint8
        np.testing.assert_array_equal(served, trained)


def test_reduced_decoding_matches_full_decoding_closely(rendered_jpegs):
    """libjpeg's DCT scaling is not bit-identical to full decode + INTER_AREA but close; both sides use it."""
    c = contract()
    assert reduction_factor(1280, 720, 224) == 2
    for jpeg in rendered_jpegs:
        full = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        scale = 224 / 720
        resized = cv2.resize(full, (round(1280 * scale), 224), interpolation=cv2.INTER_AREA)
        left = (resized.shape[1] - 224) // 2
        reference = resized[:, left : left + 224]
        difference = np.abs(preprocess_jpeg(jpeg, c).astype(int) - reference.astype(int))
        assert difference.mean() < 3.0


def test_raw_and_jpeg_frames_of_the_same_picture_agree(rendered_jpegs):
    c = contract()
    jpeg = rendered_jpegs[0]
    rgb = decode_frame_image(p.Frame(0, 0, p.ImageFormat.JPEG, 1280, 720, jpeg), 720, LIMITS)  # full size
    raw = p.Frame(0, 0, p.ImageFormat.RGB8, 1280, 720, np.ascontiguousarray(rgb).tobytes())
    flipped = p.Frame(0, 0, p.ImageFormat.RGB8, 1280, 720, rgb[::-1].tobytes(), rows_bottom_up=True)
    from_raw = preprocess_frame(raw, c, LIMITS)
    np.testing.assert_array_equal(from_raw, preprocess_frame(flipped, c, LIMITS))
    from_jpeg = preprocess_frame(p.Frame(0, 0, p.ImageFormat.JPEG, 1280, 720, jpeg), c, LIMITS)
    assert np.abs(from_raw.astype(int) - from_jpeg.astype(int)).mean() < 3.0


def test_gaze_crop_follows_the_gaze_and_stays_inside_the_image():
    image = np.zeros((100, 200, 3), np.uint8)
    image[:, :100, 0] = 255  # left half red
    image[:, 100:, 2] = 255  # right half blue
    c = contract(32, 32)
    assert gaze_crop(image, (0.1, 0.5), 0.5, c)[..., 0].mean() == 255
    assert gaze_crop(image, (0.9, 0.5), 0.5, c)[..., 2].mean() == 255
    corner = gaze_crop(image, (1.0, 1.0), 0.5, c)  # shifted inside, not padded
    assert corner.shape == (32, 32, 3)
    assert corner[..., 2].mean() == 255


def test_jpeg_size_reads_progressive_and_baseline_headers(rendered_jpegs):
    image = cv2.imdecode(np.frombuffer(rendered_jpegs[0], np.uint8), cv2.IMREAD_COLOR)
    progressive = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert jpeg_size(progressive) == (1280, 720)
    assert jpeg_size(rendered_jpegs[0]) == (1280, 720)


def test_stretch_mapping_keeps_the_whole_frame():
    image = np.zeros((90, 160, 3), np.uint8)
    image[:, :20, 0] = 255  # a red band at the far left, which a centre crop cuts away
    centre = dataclasses.replace(contract(32, 32), frame_mapping="centre_crop")
    stretch = dataclasses.replace(contract(32, 32), frame_mapping="stretch")
    jpeg_free = p.Frame(0, 0, p.ImageFormat.RGB8, 160, 90, image.tobytes())
    assert preprocess_frame(jpeg_free, centre, LIMITS)[..., 0].max() == 0
    stretched = preprocess_frame(jpeg_free, stretch, LIMITS)
    assert stretched.shape == (32, 32, 3)
    assert stretched[:, :3, 0].min() > 200  # 20/160 of the width is 4 of 32 columns


def test_gaze_crop_is_the_protocols_rectangle_at_any_decoding_scale(rendered_jpegs):
    """The crop is defined in the frame's pixel grid; a JPEG decoded at 1/2 scale gives the same region."""
    image = np.zeros((720, 1280, 3), np.uint8)
    left, top, side = p.gaze_crop_rect(1280, 720, 0.8, 0.3, 0.25)
    image[top : top + side, left : left + side] = (0, 255, 0)  # exactly the crop is green
    jpeg = cv2.imencode(".jpg", image[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes()
    c = contract(32, 32)
    frame = p.Frame(0, 0, p.ImageFormat.JPEG, 1280, 720, jpeg, gaze=(0.8, 0.3))
    assert reduction_factor(1280, 720, 128) == 4  # decoded at 1/4 scale
    crop = preprocess_frame(frame, c, LIMITS, gaze_crop_scale=0.25)
    assert crop[2:-2, 2:-2, 1].min() > 200  # all green inside (JPEG ringing at the very edge)
    assert crop[2:-2, 2:-2, 0].max() < 60


@pytest.mark.parametrize(("width", "height"), [(4, 1), (1024, 256), (2044, 511), (1, 4)])
def test_elongated_frames_inside_the_limits_give_a_normal_input(width, height):
    image = np.full((height, width, 3), 200, np.uint8)
    frame = p.Frame(0, 0, p.ImageFormat.RGB8, width, height, image.tobytes())
    out = preprocess_frame(frame, contract(224, 256), LIMITS)
    assert out.shape == (224, 224, 3)
    assert out.min() == out.max() == 200
