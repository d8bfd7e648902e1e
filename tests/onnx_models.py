"""Small real ONNX models that follow the model contract (docs/model-format.md), built with the
onnx package so serving tests need no torch.

The colour model really classifies: it normalises in-graph exactly as train-vr's exports do, takes
the mean colour of the image and answers "red", "green" or "blue" by the dominant channel. A JPEG of
a red square is therefore predicted "red" end to end. `slow_convs` adds real 7x7 convolutions over
the whole image to make inference deliberately slow without changing the answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME, ModelContract

COLOUR_CLASSES = ("red", "green", "blue")


def colour_contract(
    name: str = "colour", version: str = "1", size: int = 32, extra_classes: int = 0
) -> ModelContract:
    """`extra_classes` adds never-predicted classes after red, green, blue (for large replies)."""
    return ModelContract(
        name=name,
        version=version,
        classes=COLOUR_CLASSES
        + tuple(f"extra-class-{i:05d}-with-a-long-descriptive-name" for i in range(extra_classes)),
        input_height=size,
        input_width=size,
        resize_shorter=size,
        arch="mean-colour",
        created="2026-11-22T00:00:00Z",
        val_accuracy=1.0,
    )


def colour_model(contract: ModelContract, slow_convs: int = 0) -> onnx.ModelProto:
    mean = np.array(contract.mean, dtype=np.float32)
    std = np.array(contract.std, dtype=np.float32)
    extra = len(contract.classes) - 3
    weights = np.concatenate(
        [np.eye(3, dtype=np.float32) * 10.0 * std[:, None], np.zeros((3, extra), np.float32)], 1
    )
    bias = np.concatenate([10.0 * mean, np.full(extra, -100.0)]).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array(255.0, dtype=np.float32), "scale"),
        numpy_helper.from_array(mean, "mean"),
        numpy_helper.from_array(std, "std"),
        # logits = 10 * (channel mean in original units) - so the brightest channel wins
        numpy_helper.from_array(weights, "weights"),
        numpy_helper.from_array(bias, "bias"),
    ]
    nodes = [
        helper.make_node("Cast", [INPUT_NAME], ["as_float"], to=TensorProto.FLOAT),
        helper.make_node("Div", ["as_float", "scale"], ["unit"]),
        helper.make_node("Sub", ["unit", "mean"], ["centred"]),
        helper.make_node("Div", ["centred", "std"], ["normalised"]),
        helper.make_node("ReduceMean", ["normalised"], ["channel_mean"], axes=[1, 2], keepdims=0),
        helper.make_node("MatMul", ["channel_mean", "weights"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["logits"]),
    ]
    logits = "logits"
    if slow_convs:
        rng = np.random.default_rng(0)
        nodes.append(helper.make_node("Transpose", ["normalised"], ["nchw"], perm=[0, 3, 1, 2]))
        previous, channels = "nchw", 3
        for i in range(slow_convs):
            kernel = rng.normal(0, 0.01, (16, channels, 7, 7)).astype(np.float32)
            inits.append(numpy_helper.from_array(kernel, f"kernel{i}"))
            nodes.append(helper.make_node("Conv", [previous, f"kernel{i}"], [f"conv{i}"], pads=[3, 3, 3, 3]))
            previous, channels = f"conv{i}", 16
        inits.append(
            numpy_helper.from_array(np.full((16, len(contract.classes)), 1e-6, dtype=np.float32), "tiny")
        )
        nodes += [
            helper.make_node("ReduceMean", [previous], ["conv_mean"], axes=[2, 3], keepdims=0),
            helper.make_node("MatMul", ["conv_mean", "tiny"], ["nudge"]),
            helper.make_node("Add", ["logits", "nudge"], ["logits_slow"]),
        ]
        logits = "logits_slow"
    nodes.append(helper.make_node("Softmax", [logits], [OUTPUT_NAME], axis=1))
    graph = helper.make_graph(
        nodes,
        "colour",
        [
            helper.make_tensor_value_info(
                INPUT_NAME, TensorProto.UINT8, ["batch", contract.input_height, contract.input_width, 3]
            )
        ],
        [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["batch", len(contract.classes)])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="tests")
    model.ir_version = 9
    helper.set_model_props(model, contract.to_metadata())
    onnx.checker.check_model(model)
    return model


def write_colour_model(path: Path, slow_convs: int = 0, **contract_args) -> Path:
    onnx.save(colour_model(colour_contract(**contract_args), slow_convs), str(path))
    return path
