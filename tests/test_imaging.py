"""server.imaging without sockets or models: the decode guard, the blur kernel, sizes, files, geometry."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from vr_recognition.server import imaging, preprocess
from vr_recognition.server import protocol as p
from vr_recognition.server.imaging import (
    FILE_LIMITS,
    IMAGE_SUFFIXES,
    check_size,
    decode_jpeg,
    encode_jpeg,
    jpeg_size,
    list_images,
    motion_blur,
    parse_size,
    reduction_factor,
    resize,
    resize_and_centre_crop,
)


def gradient(width: int = 64, height: int = 48) -> np.ndarray:
    """A smooth RGB picture: JPEG keeps it within a few grey levels."""
    x = np.linspace(0, 255, width, dtype=np.float32)[None, :]
    y = np.linspace(0, 255, height, dtype=np.float32)[:, None]
    return np.stack([x + 0 * y, y + 0 * x, (x + y) / 2], axis=-1).astype(np.uint8)


def with_sof_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with its SOF0 header claiming another size (what a decompression bomb does)."""
    data = bytearray(jpeg)
    pos = data.index(b"\xff\xc0")
    data[pos + 5 : pos + 7] = height.to_bytes(2, "big")
    data[pos + 7 : pos + 9] = width.to_bytes(2, "big")
    return bytes(data)


@pytest.fixture
def no_decoding(monkeypatch):
    """Fail the test if any pixel is decoded."""

    def refuse(*args, **kwargs):
        raise AssertionError("cv2.imdecode called: the guard must refuse before decoding")

    monkeypatch.setattr(imaging.cv2, "imdecode", refuse)


# --- the decompression-bomb guard --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("claimed", "limits"),
    [
        ((65535, 65535), FILE_LIMITS),  # 4.3 G pixels: refused even for files on disk
        ((9000, 100), p.Limits()),  # wider than the wire's 8192
        ((5000, 5000), p.Limits()),  # each side fits, 25 M pixels does not (16.8 M)
    ],
)
def test_guard_refuses_an_oversized_sof_before_decoding(no_decoding, claimed, limits):
    bomb = with_sof_size(encode_jpeg(gradient(), 90), *claimed)
    assert jpeg_size(bomb) == claimed
    with pytest.raises(p.ProtocolError) as error:
        decode_jpeg(bomb, 224, limits)
    assert error.value.code is p.ErrorCode.IMAGE_TOO_LARGE
    assert f"{claimed[0]}x{claimed[1]}" in str(error.value)


def test_file_limits_admit_large_camera_photos():
    check_size(16320, 12240, FILE_LIMITS)  # a 200 MP phone sensor's JPEG
    with pytest.raises(p.ProtocolError, match="image_too_large"):
        check_size(16385, 100, FILE_LIMITS)


def test_not_a_jpeg_is_corrupt_image_before_decoding(no_decoding):
    with pytest.raises(p.ProtocolError) as error:
        decode_jpeg(b"\x89PNG\r\n\x1a\n" + bytes(64))
    assert error.value.code is p.ErrorCode.CORRUPT_IMAGE


def test_served_path_reads_the_sof_once(monkeypatch):
    """decode_frame_image parses the JPEG header once per frame and still checks every limit."""
    calls = []

    real_header = imaging.jpeg_header

    def counting_jpeg_header(data):
        calls.append(1)
        return real_header(data)

    monkeypatch.setattr(preprocess, "jpeg_header", counting_jpeg_header)
    monkeypatch.setattr(imaging, "jpeg_header", counting_jpeg_header)
    jpeg = encode_jpeg(gradient(64, 48), 90)
    rgb = preprocess.decode_frame_image(p.Frame(0, 0, p.ImageFormat.JPEG, 64, 48, jpeg), 48, p.Limits())
    assert rgb.shape == (48, 64, 3)
    assert len(calls) == 1


@pytest.mark.parametrize(
    ("declared", "payload", "limits", "code"),
    [
        # The header's size is checked first, even when the payload is not a JPEG at all.
        ((9000, 10), b"not a jpeg", p.Limits(), p.ErrorCode.IMAGE_TOO_LARGE),
        ((64, 48), b"not a jpeg", p.Limits(), p.ErrorCode.CORRUPT_IMAGE),
        ((65, 48), None, p.Limits(), p.ErrorCode.BAD_DIMENSIONS),
        ((64, 48), None, p.Limits(max_pixels=64 * 48 - 1), p.ErrorCode.IMAGE_TOO_LARGE),
        # v1.1: a SOF over the limits is image_too_large even when it also disagrees with the header
        ((48, 48), None, p.Limits(max_width=50), p.ErrorCode.IMAGE_TOO_LARGE),
        # v1.1: beyond limits.max_aspect_ratio (4:1 by default), before anything is read
        ((400, 50), b"not a jpeg", p.Limits(), p.ErrorCode.BAD_DIMENSIONS),
        ((50, 201), b"not a jpeg", p.Limits(), p.ErrorCode.BAD_DIMENSIONS),
        ((200, 50), b"not a jpeg", p.Limits(), p.ErrorCode.CORRUPT_IMAGE),
        # v1.1: a progressive JPEG over limits.max_progressive_pixels
        ((64, 48), "progressive", p.Limits(max_progressive_pixels=64 * 48 - 1), p.ErrorCode.IMAGE_TOO_LARGE),
    ],
)
def test_served_path_error_order(declared, payload, limits, code):
    if payload == "progressive":
        bgr = np.ascontiguousarray(gradient(64, 48)[:, :, ::-1])
        payload = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
        assert imaging.jpeg_header(payload)[2]  # the SOF says progressive
    payload = payload if payload is not None else encode_jpeg(gradient(64, 48), 90)
    frame = p.Frame(0, 0, p.ImageFormat.JPEG, declared[0], declared[1], payload)
    with pytest.raises(p.ProtocolError) as error:
        preprocess.decode_frame_image(frame, 48, limits)
    assert error.value.code is code


# --- decode, encode, geometry -------------------------------------------------------------------------


def test_encode_then_decode_round_trips_at_full_and_reduced_scale():
    picture = gradient(640, 480)
    jpeg = encode_jpeg(picture, 95)
    assert jpeg_size(jpeg) == (640, 480)
    full = decode_jpeg(jpeg)
    assert full.shape == (480, 640, 3)
    assert np.abs(full.astype(int) - picture.astype(int)).mean() < 2.0
    assert reduction_factor(640, 480, 100) == 4
    assert decode_jpeg(jpeg, 100).shape == (120, 160, 3)  # libjpeg DCT scaling, 1/4


def test_resize_and_centre_crop_keeps_the_centre():
    picture = np.zeros((100, 200, 3), dtype=np.uint8)
    picture[:, 90:110] = 255  # a bright vertical band in the middle
    out = resize_and_centre_crop(picture, 50, 40, 50)
    assert out.shape == (50, 40, 3)
    assert out.flags.c_contiguous
    assert out[:, 20].min() == 255
    assert out[:, 0].max() == 0


# --- motion blur ---------------------------------------------------------------------------------------


def spot(size: int = 41) -> np.ndarray:
    image = np.zeros((size, size), dtype=np.float32)
    image[size // 2, size // 2] = 1.0
    return image


@pytest.mark.parametrize("length", [3, 5, 9, 15])
@pytest.mark.parametrize(
    ("angle", "step"),
    [(0.0, (1, 0)), (90.0, (0, 1)), (45.0, (1, 1)), (135.0, (-1, 1)), (180.0, (1, 0))],
)
def test_motion_blur_spreads_a_spot_along_the_angle(length, angle, step):
    """Angles are clockwise from +x with y down: 45 degrees runs to the bottom-right."""
    blurred = motion_blur(spot(), length, angle)
    assert blurred.sum() == pytest.approx(1.0, abs=1e-5)  # the kernel sums to 1
    rows, cols = np.nonzero(blurred > 1e-6)
    offsets = sorted(zip((cols - 20).tolist(), (rows - 20).tolist(), strict=True))
    diagonal = step[0] != 0 and step[1] != 0
    half = round((length - 1) / 2 * (math.sqrt(0.5) if diagonal else 1.0))  # reach along each axis
    expected = sorted((step[0] * i, step[1] * i) for i in range(-half, half + 1))
    assert offsets == expected
    np.testing.assert_allclose(blurred[rows, cols], 1.0 / len(expected), rtol=1e-5)


def test_motion_blur_is_centred_and_keeps_dtype():
    picture = (np.random.default_rng(0).random((32, 48, 3)) * 255).astype(np.uint8)
    blurred = motion_blur(picture, 7, 30.0)
    assert blurred.dtype == np.uint8
    assert blurred.shape == picture.shape
    assert motion_blur(picture, 1, 30.0) is picture  # shorter than 2 pixels: nothing to smear
    ys, xs = np.nonzero(motion_blur(spot(), 9, 30.0))
    assert (xs.mean(), ys.mean()) == (20.0, 20.0)  # symmetric about the spot: the image does not shift


# --- sizes and files -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "size"), [("1280x720", (1280, 720)), ("64X48", (64, 48)), (" 8x 8", (8, 8))]
)
def test_parse_size_accepts(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1280", "must look like 1280x720"),
        ("1280x720x3", "must look like 1280x720"),
        ("wide x tall", "must look like 1280x720"),
        ("", "must look like 1280x720"),
        (1280, "must look like 1280x720"),  # a TOML recipe's size given as a number
        ("0x720", "must be positive"),
        ("1280x-1", "must be positive"),
    ],
)
def test_parse_size_rejects_and_names_the_text(text, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_size(text)
    assert repr(text) in str(error.value)


def test_list_images_finds_suffixes_case_insensitively(tmp_path: Path):
    names = ["a.jpg", "b.JPEG", "c.Png", "sub/d.bmp", "sub/deeper/e.WebP", "notes.txt", "f.jpg.bak", "g.gif"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "folder.jpg").mkdir()  # a folder named like an image is not one
    found = [path.relative_to(tmp_path).as_posix() for path in list_images(tmp_path)]
    assert found == ["a.jpg", "b.JPEG", "c.Png", "sub/d.bmp", "sub/deeper/e.WebP"]
    assert {".jpg", ".jpeg", ".png", ".bmp", ".webp"} == IMAGE_SUFFIXES


def test_cv2_reads_every_listed_suffix(tmp_path: Path):
    """IMAGE_SUFFIXES promises formats this OpenCV build can read."""
    for suffix in sorted(IMAGE_SUFFIXES):
        path = tmp_path / f"x{suffix}"
        assert cv2.imwrite(str(path), gradient(16, 8)), suffix
        assert cv2.imread(str(path)) is not None, suffix


def test_reduced_decoding_never_exceeds_the_decoded_pixel_budget():
    """A small gaze crop of a huge frame asks for the whole resolution; the budget caps it."""
    assert imaging.reduction_factor(4096, 4096, 4480) == 4  # 2048 x 2048 would be over the budget
    assert imaging.reduction_factor(1920, 1080, 2000) == 1  # a 1080p frame is within the budget
    assert imaging.reduction_factor(3840, 2160, 4000) == 2
    assert imaging.reduction_factor(1280, 720, 256) == 2  # the usual case is unchanged


# --- resize: bilinear up to a 2x shrink, area averaging beyond ---------------------------------------


def stripes(width: int, height: int, period: int) -> np.ndarray:
    """Vertical black/white stripes, `period` pixels per black+white pair, as RGB."""
    row = ((np.arange(width) // (period // 2)) % 2 * 255).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(row[None, :, None], (height, width, 3)))


def test_resize_up_to_a_2x_shrink_is_bilinear():
    picture = stripes(640, 360, 8)
    out = resize(picture, 325, 183)
    np.testing.assert_array_equal(out, cv2.resize(picture, (325, 183), interpolation=cv2.INTER_LINEAR))
    assert imaging.BILINEAR_MAX_SHRINK == 2.0


def test_resize_beyond_a_2x_shrink_averages_areas():
    """One-pixel stripes shrunk 4x: area averaging gives even grey; sampling would alias."""
    picture = stripes(640, 360, 2)
    out = resize(picture, 160, 90)
    np.testing.assert_array_equal(out, cv2.resize(picture, (160, 90), interpolation=cv2.INTER_AREA))
    assert np.abs(out.astype(int) - 127).max() <= 1


def test_a_2x_shrink_still_reads_every_source_pixel():
    """At exactly 2x, bilinear with half-pixel centres averages each 2x2 block: one-pixel stripes turn
    into even grey, not into all black or all white."""
    out = resize(stripes(640, 360, 2), 320, 180)
    assert np.abs(out.astype(int) - 127).max() <= 1
