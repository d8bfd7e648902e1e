"""Loading models for serving: the contract is enforced, the provider reported is the one that runs."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from tests.onnx_models import colour_contract, colour_model, write_colour_model
from vr_recognition.server.inference import InferenceModel, ProviderError, resolve_providers
from vr_recognition.server.model_format import ModelContract, ModelFormatError


def test_auto_providers_are_what_this_onnxruntime_offers():
    chosen = resolve_providers("auto")
    assert chosen[-1] == "cpu"
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert chosen == ["cpu"]
        with pytest.raises(ProviderError, match="none of"):
            resolve_providers("tensorrt,cuda")  # never pretend to have a GPU
    with pytest.raises(ProviderError, match="unknown provider"):
        resolve_providers("tpu")


def test_loaded_model_reports_the_provider_in_use_and_runs_batches(tmp_path):
    model = InferenceModel.load(write_colour_model(tmp_path / "m.onnx"), providers="cpu", max_batch=4)
    assert model.providers == model.session.get_providers()
    assert model.provider == "CPUExecutionProvider"
    assert not model.on_gpu
    batch = np.zeros((3, 32, 32, 3), np.uint8)
    batch[0, ..., 0] = 255
    batch[1, ..., 1] = 255
    batch[2, ..., 2] = 255
    probabilities = model.run(batch)
    assert probabilities.shape == (3, 3)
    assert probabilities.dtype == np.float32
    assert list(probabilities.argmax(axis=1)) == [0, 1, 2]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)
    info = model.info()
    assert (info.name, info.classes, info.input_width) == ("colour", colour_contract().classes, 32)
    assert info.provider == "CPUExecutionProvider"


def save_with(tmp_path, model: onnx.ModelProto, name: str):
    path = tmp_path / name
    onnx.save(model, str(path))
    return path


def test_models_that_break_the_contract_are_refused(tmp_path):
    no_metadata = colour_model(colour_contract())
    del no_metadata.metadata_props[:]
    with pytest.raises(ModelFormatError, match="missing"):
        InferenceModel.load(save_with(tmp_path, no_metadata, "plain.onnx"))

    bad_classes = colour_model(colour_contract())
    helper.set_model_props(bad_classes, {**colour_contract().to_metadata(), "vr.classes": '["a", "a", "b"]'})
    with pytest.raises(ModelFormatError, match="duplicates"):
        InferenceModel.load(save_with(tmp_path, bad_classes, "dup.onnx"))

    float_input = colour_model(colour_contract())
    float_input.graph.input[0].type.tensor_type.elem_type = TensorProto.FLOAT
    float_input.graph.node[0].op_type = "Identity"
    del float_input.graph.node[0].attribute[:]
    with pytest.raises(ModelFormatError, match="uint8"):
        InferenceModel.load(save_with(tmp_path, float_input, "float.onnx"))

    four_classes = ModelContract(**{**colour_contract().__dict__, "classes": ("a", "b", "c", "d")})
    wrong_count = colour_model(colour_contract())
    helper.set_model_props(wrong_count, four_classes.to_metadata())
    with pytest.raises(ModelFormatError, match="output shape"):
        InferenceModel.load(save_with(tmp_path, wrong_count, "count.onnx"))

    (tmp_path / "junk.onnx").write_bytes(b"\x08\x01garbage")
    with pytest.raises(ModelFormatError, match="cannot load"):
        InferenceModel.load(tmp_path / "junk.onnx")
    with pytest.raises(ModelFormatError, match="does not exist"):
        InferenceModel.load(tmp_path / "missing.onnx")
