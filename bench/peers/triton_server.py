"""The Triton peer: PyTriton serving the .onnx through vr-serve's preprocessing and onnxruntime session.

Runs inside the triton venv (bench/peers/venvs.py), started by vr-bench. Configured as Triton's
model-configuration guide advises for a latency budget: the dynamic batcher with the model's maximum
batch size, a short `max_queue_delay_microseconds`, and a default queue policy whose timeout is the
frame budget with `timeout_action: REJECT`, so a request that waited past its budget is refused
instead of computed for nobody. One model instance: the same onnxruntime threads as vr-serve.

The model takes one JPEG per request (a BYTES tensor of shape [1]) and answers the top-1 label,
its score and [decode_ms, infer_ms] for the request's batch, so vr-bench can show a stage split.
"""

from __future__ import annotations

import signal
import sys
import time

import numpy as np

from vr_recognition.bench.peers.serving import free_port, parse_args

MODEL_NAME = "vr"


def build_infer(model, top_label):
    """The batched infer function PyTriton calls: decode each JPEG, one session run for the batch."""
    from pytriton.decorators import batch

    from vr_recognition.server.preprocess import preprocess_jpeg

    contract = model.contract

    @batch
    def infer(jpeg: np.ndarray) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        inputs = np.stack([preprocess_jpeg(bytes(item[0]), contract) for item in jpeg])
        decoded = time.perf_counter()
        probabilities = model.run(inputs)
        done = time.perf_counter()
        labels, scores = top_label(probabilities)
        timings = np.array([[(decoded - start) * 1000.0, (done - decoded) * 1000.0]], np.float32)
        return {
            "label": np.array([[label.encode()] for label in labels], dtype=object),
            "score": scores.reshape(-1, 1).astype(np.float32),
            "timings_ms": np.repeat(timings, len(labels), axis=0),
        }

    return infer


def top_labels(classes):
    def top_label(probabilities: np.ndarray) -> tuple[list[str], np.ndarray]:
        best = probabilities.argmax(axis=1)
        return [classes[i] for i in best], probabilities[np.arange(len(best)), best]

    return top_label


def loopback_config(grpc_port: int):
    """PyTriton's TritonConfig for a tritonserver on loopback: gRPC on `grpc_port`, no metrics."""
    from pytriton.triton import TritonConfig

    return TritonConfig(
        grpc_address="127.0.0.1",
        grpc_port=grpc_port,
        http_address="127.0.0.1",
        http_port=free_port(),  # PyTriton itself checks readiness over HTTP
        allow_metrics=False,
        log_verbose=0,
    )


def serve_bound(triton, grpc_port: int, ready: str) -> None:
    """Start tritonserver with the models bound, announce it as SpawnedServer waits for ("listening on",
    then "ready:" once it serves), and serve until SIGTERM or Ctrl-C. vr-bench and the tests stop
    servers with SIGTERM: serve() sees it as Ctrl-C and stops tritonserver cleanly."""
    print(f"listening on grpc://127.0.0.1:{grpc_port}", flush=True)
    triton.run()
    print(f"ready: {ready}", flush=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    triton.serve()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, "queue timeout (REJECT after it)", argv)

    import pytriton
    from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy, Tensor, TimeoutAction
    from pytriton.triton import Triton

    from vr_recognition.server.inference import InferenceModel

    model = InferenceModel.load(args.model, args.providers, max(1, args.max_batch), args.threads)
    grpc_port = free_port()
    config = loopback_config(grpc_port)
    batcher = DynamicBatcher(
        max_queue_delay_microseconds=round(args.batch_wait_ms * 1000),
        default_queue_policy=QueuePolicy(
            timeout_action=TimeoutAction.REJECT,
            default_timeout_microseconds=max(1, round(args.budget_ms * 1000)),
            allow_timeout_override=True,
        ),
    )
    with Triton(config=config) as triton:
        triton.bind(
            model_name=MODEL_NAME,
            infer_func=build_infer(model, top_labels(model.contract.classes)),
            inputs=[Tensor(name="jpeg", dtype=bytes, shape=(1,))],
            outputs=[
                Tensor(name="label", dtype=bytes, shape=(1,)),
                Tensor(name="score", dtype=np.float32, shape=(1,)),
                Tensor(name="timings_ms", dtype=np.float32, shape=(2,)),
            ],
            config=ModelConfig(max_batch_size=max(1, args.max_batch), batcher=batcher),
            strict=True,
        )
        version = getattr(pytriton, "__version__", "?")
        serve_bound(
            triton,
            grpc_port,
            f"{model.contract.name} on {model.provider} (pytriton {version}, max batch {args.max_batch}, "
            f"queue delay {args.batch_wait_ms:g} ms, REJECT after {args.budget_ms:.1f} ms)",
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
