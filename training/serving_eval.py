"""Accuracy of an exported .onnx file with frames taken through the server's own path.

Each validation JPEG is wrapped in a protocol frame, encoded and decoded with the wire codec, and
preprocessed by server.preprocess.preprocess_frame with the geometry the model's metadata declares;
onnxruntime then runs the file as vr-serve would. No torch: this checks the shipped artefact alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME, ModelContract
from vr_recognition.server.preprocess import jpeg_size, preprocess_frame
from vr_recognition.server.protocol import Frame, ImageFormat, Limits, decode_frame, encode_frame
from vr_recognition.training.data_sources import index_dataset, read_jpeg_bytes

BATCH = 32


def load_model(model_path: str | Path):
    """(onnxruntime session, contract read back from the file's metadata)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    contract = ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map)
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


def serving_accuracy(
    model_path: str | Path, data: str | Path, val_fraction: float = 0.2, seed: int = 0
) -> dict[str, Any]:
    """Top-1 accuracy on the dataset's validation split (same split rules as train-vr)."""
    session, contract = load_model(model_path)
    index = index_dataset(data, val_fraction, seed)
    position = {name: i for i, name in enumerate(contract.classes)}
    correct = 0
    for start in range(0, len(index.val), BATCH):
        samples = index.val[start : start + BATCH]
        batch = np.stack(
            [served_input(read_jpeg_bytes(s.path), contract, start + i) for i, s in enumerate(samples)]
        )
        probabilities = session.run([OUTPUT_NAME], {INPUT_NAME: batch})[0]
        predicted = probabilities.argmax(axis=1)
        expected = np.array([position[index.classes[s.label]] for s in samples])
        correct += int((predicted == expected).sum())
    return {
        "frames": len(index.val),
        "serving_accuracy": correct / len(index.val),
        "reported_val_accuracy": contract.val_accuracy,
        "model": Path(model_path).name,
    }
