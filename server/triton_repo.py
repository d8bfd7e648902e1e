"""vr-triton-repo: a Triton model repository from a vr-serve .onnx, for `vr-serve --backend triton://`.

    vr-triton-repo exported_models/default.onnx triton-models/ --kind gpu

writes

    triton-models/vr/config.pbtxt
    triton-models/vr/1/model.onnx      (the file, byte for byte)

`config.pbtxt` is Triton's ModelConfig message (model_config.proto, as tritonclient ships it), written in
protobuf text format by protobuf itself: the onnxruntime platform;
the uint8 input `image` [H, W, 3] and fp32 output `probabilities` [classes] (the batch dimension is
Triton's, up to `max_batch_size`); dynamic batching with a short queue delay, so batches from several
vr-serve replicas can share a model run; an instance group; and for GPUs, TensorRT as onnxruntime's
accelerator with FP16 and an engine cache, as Triton's optimization guide shows. The model contract
travels too, as `parameters` (every `vr.*` metadata key of the .onnx), so the repository says which
classes and version it serves. vr-serve itself reads the contract from the same .onnx (`--model`) and
checks it against Triton's metadata at start.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from vr_recognition.server.errors import ServeError
from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME, ModelContract

KINDS = ("cpu", "gpu")


def model_config(
    contract: ModelContract,
    name: str = "vr",
    max_batch: int = 8,
    queue_delay_us: int = 100,
    instances: int = 1,
    kind: str = "cpu",
    fp16: bool = True,
):
    """Triton's ModelConfig message (tritonclient's model_config_pb2) for a model with this contract."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    if max_batch < 1 or instances < 1 or queue_delay_us < 0:
        raise ValueError("max batch and instances must be positive, the queue delay not negative")
    pb = _model_config_pb2()
    config = pb.ModelConfig(
        name=name,
        platform="onnxruntime_onnx",
        max_batch_size=max_batch,
        input=[
            pb.ModelInput(
                name=INPUT_NAME,
                data_type=pb.TYPE_UINT8,
                dims=[contract.input_height, contract.input_width, 3],
            )
        ],
        output=[pb.ModelOutput(name=OUTPUT_NAME, data_type=pb.TYPE_FP32, dims=[len(contract.classes)])],
        dynamic_batching=pb.ModelDynamicBatching(max_queue_delay_microseconds=queue_delay_us),
        instance_group=[
            pb.ModelInstanceGroup(
                count=instances,
                kind=pb.ModelInstanceGroup.KIND_GPU if kind == "gpu" else pb.ModelInstanceGroup.KIND_CPU,
            )
        ],
        version_policy=pb.ModelVersionPolicy(latest=pb.ModelVersionPolicy.Latest(num_versions=1)),
    )
    if kind == "gpu":
        tensorrt = config.optimization.execution_accelerators.gpu_execution_accelerator.add(name="tensorrt")
        tensorrt.parameters.update(
            {
                "precision_mode": "FP16" if fp16 else "FP32",
                "max_workspace_size_bytes": str(1 << 30),
                "trt_engine_cache_enable": "1",
                "trt_engine_cache_path": "/tmp/vr-trt-cache",
            }
        )
    for key, value in contract.to_metadata().items():
        config.parameters[key].string_value = value
    return config


def config_pbtxt(contract: ModelContract, **options) -> str:
    """The text of config.pbtxt (protobuf text format, as Triton reads it)."""
    from google.protobuf import text_format

    return text_format.MessageToString(model_config(contract, **options), as_utf8=True)


def _model_config_pb2():
    try:
        from tritonclient.grpc import model_config_pb2
    except ImportError:
        raise ServeError(
            "writing a Triton repository needs tritonclient: pip install '.[serve,triton]'"
        ) from None
    return model_config_pb2


def write_repository(model: Path, out: Path, name: str = "vr", **options) -> Path:
    """OUT/NAME/config.pbtxt and OUT/NAME/1/model.onnx; returns OUT/NAME. An existing NAME is replaced."""
    from vr_recognition.server.triton_backend import read_contract

    contract = read_contract(model)
    folder = Path(out) / name
    text = config_pbtxt(contract, name=name, **options)
    if folder.exists():
        shutil.rmtree(folder)
    (folder / "1").mkdir(parents=True)
    shutil.copyfile(model, folder / "1" / "model.onnx")
    (folder / "config.pbtxt").write_text(text, encoding="utf-8")
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vr-triton-repo",
        description="Write a Triton model repository from a vr-serve .onnx (for vr-serve --backend triton://).",
    )
    parser.add_argument("model", type=Path, help="a .onnx exported by train-vr")
    parser.add_argument("out", type=Path, help="the repository folder (tritonserver --model-repository)")
    parser.add_argument("--name", default="vr", help="the model's name in Triton (default: %(default)s)")
    parser.add_argument("--max-batch", type=int, default=8, help="max_batch_size (default: %(default)s)")
    parser.add_argument(
        "--queue-delay-us",
        type=int,
        default=100,
        help="dynamic batching's max_queue_delay_microseconds (default: %(default)s)",
    )
    parser.add_argument(
        "--instances", type=int, default=1, help="instance_group count (default: %(default)s)"
    )
    parser.add_argument(
        "--kind", choices=KINDS, default="gpu", help="where instances run (default: %(default)s)"
    )
    parser.add_argument("--fp32", action="store_true", help="on GPUs, TensorRT in FP32 instead of FP16")
    args = parser.parse_args(argv)
    try:
        folder = write_repository(
            args.model,
            args.out,
            name=args.name,
            max_batch=args.max_batch,
            queue_delay_us=args.queue_delay_us,
            instances=args.instances,
            kind=args.kind,
            fp16=not args.fp32,
        )
    except (ServeError, ValueError, OSError) as exc:
        print(f"vr-triton-repo: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {folder}/config.pbtxt and {folder}/1/model.onnx")
    print(f"serve it: tritonserver --model-repository {args.out}")
    print(f"then:     vr-serve --model {args.model} --backend triton://TRITON_HOST:8001/{args.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
