"""A Triton Inference Server for `vr-serve --backend triton://`, serving a repository vr-triton-repo wrote.

The tritonserver that the `nvidia-pytriton` wheel bundles has only the Python backend, not the ONNX
Runtime one that a native Triton would use for `platform: "onnxruntime_onnx"`. So this reads the
repository's `config.pbtxt` (parsed with Triton's own model_config.proto, from tritonclient) and binds
a model with exactly its name, inputs, outputs, max batch size and dynamic-batching queue delay, whose
Python body runs `1/model.onnx` with onnxruntime. Over gRPC it looks like the native model: vr-serve
cannot tell them apart, and the test of the backend exercises the repository as written.

Runs in the triton venv (bench/peers/venvs.py):

    python -m vr_recognition.bench.peers.triton_pool --repository triton-models/vr --grpc-port 8001

`--delay-ms` adds that much to every model run (a Triton slower than the frame budget, for tests).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from vr_recognition.bench.peers.serving import free_port
from vr_recognition.bench.peers.triton_server import loopback_config, serve_bound

DTYPES = {"TYPE_UINT8": np.uint8, "TYPE_FP32": np.float32}


def read_config(folder: Path, model_config_pb2):
    from google.protobuf import text_format

    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repository", type=Path, required=True, help="the model's folder: NAME/")
    parser.add_argument("--grpc-port", type=int, default=0, help="default: a free one")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="added to every model run")
    args = parser.parse_args(argv)

    from pytriton.decorators import batch
    from pytriton.model_config import DynamicBatcher, ModelConfig, Tensor
    from pytriton.triton import Triton
    from tritonclient.grpc import model_config_pb2

    from vr_recognition.server.inference import InferenceModel
    from vr_recognition.server.model_format import OUTPUT_NAME

    config = read_config(args.repository, model_config_pb2)

    def tensors(items) -> list:
        return [
            Tensor(
                name=t.name, dtype=DTYPES[model_config_pb2.DataType.Name(t.data_type)], shape=tuple(t.dims)
            )
            for t in items
        ]

    model = InferenceModel.load(
        args.repository / "1" / "model.onnx", "cpu", max(1, config.max_batch_size), args.threads
    )
    delay_s = args.delay_ms / 1000.0

    @batch
    def infer(**inputs: np.ndarray) -> dict[str, np.ndarray]:
        (images,) = inputs.values()
        if delay_s:
            time.sleep(delay_s)
        return {OUTPUT_NAME: model.run(images)}

    grpc_port = args.grpc_port or free_port()
    triton_config = loopback_config(grpc_port)
    batcher = DynamicBatcher(
        max_queue_delay_microseconds=config.dynamic_batching.max_queue_delay_microseconds
    )
    with Triton(config=triton_config) as triton:
        triton.bind(
            model_name=config.name,
            infer_func=infer,
            inputs=tensors(config.input),
            outputs=tensors(config.output),
            config=ModelConfig(max_batch_size=config.max_batch_size, batcher=batcher),
            strict=True,
        )
        serve_bound(
            triton,
            grpc_port,
            f"{config.name} ({model.contract.name} {model.contract.version}), max batch "
            f"{config.max_batch_size}, queue delay {batcher.max_queue_delay_microseconds} us, "
            f"delay {args.delay_ms:g} ms",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
