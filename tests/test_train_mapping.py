"""The frame mapping travels from train-vr to vr-serve: what training augments and validates on is
the region serving classifies, and the exported contract says which mapping that was."""

from __future__ import annotations

import numpy as np
import pytest

from vr_recognition.server.imaging import encode_jpeg
from vr_recognition.server.preprocess import preprocess_jpeg
from vr_recognition.training.augment import StreamAugmentation
from vr_recognition.training.config import TrainConfig
from vr_recognition.training.errors import ConfigError
from vr_recognition.training.model_inputs import contract_for


def banded_frame() -> bytes:
    """A 16:9 frame, grey, with a red band at the far left that a centre crop cuts away."""
    rgb = np.full((180, 320, 3), 128, np.uint8)
    rgb[:, :30] = (255, 0, 0)
    return encode_jpeg(rgb, 95)


@pytest.mark.parametrize(("mapping", "sees_band"), [("centre_crop", False), ("stretch", True)])
def test_training_crops_and_validation_come_from_the_region_serving_classifies(mapping, sees_band):
    augment = StreamAugmentation(
        img_size=32, resize_shorter=36, blur_probability=0.0, colour_jitter=0.0, crop_scale=(1.0, 1.0),
        crop_ratio=(1.0, 1.0), flip=False, jpeg_quality=(95, 95), frame_mapping=mapping,
    )  # fmt: skip
    crop = augment(banded_frame(), np.random.default_rng(0))
    assert crop.shape == (32, 32, 3)
    assert bool(crop[:, :2, 0].min() > 200) is sees_band  # the band reaches the crop's left edge
    served = preprocess_jpeg(banded_frame(), contract_for(("a", "b"), 32, 36, frame_mapping=mapping))
    assert bool(served[:, :2, 0].min() > 200) is sees_band


def test_the_mapping_is_a_checked_setting():
    assert TrainConfig(data="d", out="o").frame_mapping == "centre_crop"
    assert TrainConfig(data="d", out="o", frame_mapping="stretch").frame_mapping == "stretch"
    with pytest.raises(ConfigError, match="frame-mapping"):
        TrainConfig(data="d", out="o", frame_mapping="letterbox")
