"""Frames through the server's own path, and the model run the way vr-serve runs it.

Each JPEG is wrapped in a protocol frame, encoded and decoded with the wire codec, and preprocessed by
server.preprocess.preprocess_frame with the geometry the model's metadata declares; onnxruntime then runs
the file as vr-serve would. No torch: this checks the shipped artefact alone, on a serving host too.
`train-vr evaluate` (training/evaluate.py) and the calibration of `train-vr quantize` build on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME, ModelContract, ModelFormatError
from vr_recognition.server.preprocess import jpeg_size, preprocess_frame
from vr_recognition.server.protocol import Frame, ImageFormat, Limits, decode_frame, encode_frame
from vr_recognition.training.data_sources import Sample, index_dataset, sample_jpeg_bytes
from vr_recognition.training.errors import ModelFileError

BATCH = 32


def load_model(model_path: str | Path):
    """(onnxruntime session, contract read back from the file's metadata); ModelFileError for a file
    that is missing or not a vr-recognition model. onnxruntime alone: no onnx package needed."""
    import onnxruntime as ort

    path = Path(model_path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises several unrelated types for broken files
        raise ModelFileError(f"{path}: onnxruntime cannot load it: {str(error)[:300]}") from None
    try:
        contract = ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map)
    except ModelFormatError as error:
        raise ModelFileError(f"{path}: {error}") from None
    return session, contract


def served_input(jpeg: bytes, contract: ModelContract, frame_id: int = 0) -> np.ndarray:
    """What the server feeds the model for this JPEG arriving as a wire frame."""
    width, height = jpeg_size(jpeg)
    message = encode_frame(
        Frame(
            frame_id=frame_id,
            capture_time_us=0,
            image_format=ImageFormat.JPEG,
            width=width,
            height=height,
            payload=jpeg,
        )
    )
    return preprocess_frame(decode_frame(message), contract, Limits())


def served_frames(samples: Sequence[Sample], contract: ModelContract, first_id: int = 0) -> np.ndarray:
    """The samples' images as the server would feed them: uint8 [N, H, W, 3]."""
    return np.stack(
        [served_input(sample_jpeg_bytes(s), contract, first_id + i) for i, s in enumerate(samples)]
    )


def predict(session, contract: ModelContract, samples: Sequence[Sample]) -> np.ndarray:
    """Probabilities (float32 [N, classes]) for the samples, decoded and run BATCH at a time so that a
    large split never sits in memory at once."""
    outputs = []
    for start in range(0, len(samples), BATCH):
        batch = served_frames(samples[start : start + BATCH], contract, start)
        outputs.append(session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0].astype(np.float32))
    return np.concatenate(outputs) if outputs else np.zeros((0, len(contract.classes)), np.float32)


def serving_accuracy(
    model_path: str | Path, data: str | Path, val_fraction: float = 0.2, seed: int = 0
) -> dict[str, Any]:
    """Top-1 accuracy on the dataset's validation split (same split rules as train-vr)."""
    session, contract = load_model(model_path)
    index = index_dataset(data, val_fraction, seed)
    position = {name: i for i, name in enumerate(contract.classes)}
    predicted = predict(session, contract, index.val).argmax(axis=1)
    expected = np.array([position[index.classes[s.label]] for s in index.val])
    return {
        "frames": len(index.val),
        "serving_accuracy": float((predicted == expected).mean()),
        "reported_val_accuracy": contract.val_accuracy,
        "model": Path(model_path).name,
    }
