"""`--backend triton://HOST:PORT/MODEL`: vr-serve keeps the streams, freshness, deadlines and batching
decisions, and sends each batch of preprocessed uint8 frames to a Triton Inference Server over gRPC.

The model contract (classes, geometry, preprocessing, version) still comes from the .onnx given with
`--model`, the same file the Triton repository was written from (`vr-triton-repo`, server/triton_repo.py).
At load, Triton's own metadata for the model is checked against it (input `image` uint8 [-1, H, W, 3],
output `probabilities` fp32 [-1, classes], a max batch size that holds vr-serve's batches), so a
mismatch stops vr-serve at start instead of failing every frame.

`TritonModel` has the same face as `InferenceModel` (contract, run, info, provider), so the batcher,
the pipeline and hot reload do not know which one they hold. `run` is called on the batcher's one
inference thread with the synchronous gRPC client: one batch in flight per vr-serve, as with a local
model, and the batcher's estimate of a batch's time includes the hop. When Triton does not answer
(down, restarting, overloaded past `timeout_s`), `run` raises `BackendUnavailable`: that batch's frames
are answered with the error `model_unavailable` and the streams stay open. gRPC reconnects by itself;
its backoff is capped at one second here (the default grows to two minutes) so answers resume soon
after Triton is back.

tritonclient is an extra (`pip install '.[serve,triton]'`), imported only when this backend is used.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from vr_recognition.server.errors import ServeError
from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME, ModelContract, ModelFormatError
from vr_recognition.server.protocol import ModelInfo

log = logging.getLogger("vr_serve.triton")

LOCAL = "local"
SCHEME = "triton"
# gRPC's defaults: 1 s before the first reconnect, growing 1.6x to 120 s. Capped, so a restarted Triton
# is found within about a second.
CHANNEL_ARGS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.max_send_message_length", 2**31 - 1),  # tritonclient's own defaults, which channel_args replace
    ("grpc.max_receive_message_length", 2**31 - 1),
]


class BackendError(ServeError):
    """The backend named is malformed, or the Triton model does not match the contract."""


class BackendUnavailable(ServeError):
    """Triton did not answer this batch (down, restarting, or slower than the timeout)."""


@dataclass(frozen=True)
class TritonTarget:
    host: str
    port: int
    model: str

    @property
    def url(self) -> str:
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        return f"{SCHEME}://{self.host}:{self.port}/{self.model}"


def parse_backend(spec: str) -> TritonTarget | None:
    """'local' -> None (onnxruntime in this process); 'triton://HOST:PORT/MODEL' -> its target."""
    if spec == LOCAL:
        return None
    parts = urlsplit(spec)
    model = parts.path.strip("/")
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != SCHEME or not parts.hostname or port is None or not model or "/" in model:
        raise BackendError(f"--backend takes 'local' or 'triton://HOST:PORT/MODEL' (gRPC port), not {spec!r}")
    return TritonTarget(parts.hostname, port, model)


def read_contract(path: Path) -> ModelContract:
    """The contract in a .onnx's metadata, read by onnxruntime without optimizing or running the graph."""
    import onnxruntime as ort

    path = Path(path)
    if not path.is_file():
        raise ModelFormatError(f"model file {path} does not exist")
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises several unrelated types for broken files
        raise ModelFormatError(f"onnxruntime cannot load {path}: {str(exc)[:300]}") from None
    return ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map)


def _grpc_module():
    try:
        import tritonclient.grpc as grpcclient
    except ImportError:
        raise BackendError("the Triton backend needs tritonclient: pip install '.[serve,triton]'") from None
    return grpcclient


@dataclass
class TritonModel:
    path: Path
    contract: ModelContract
    target: TritonTarget
    client: Any  # tritonclient.grpc.InferenceServerClient
    grpc: Any  # the tritonclient.grpc module, imported once at load
    timeout_s: float
    max_batch: int  # Triton's max_batch_size for the model
    load_seconds: float = 0.0

    @classmethod
    def load(cls, path: Path, target: TritonTarget, max_batch: int, timeout_s: float) -> TritonModel:
        """Read the contract, connect, check Triton's model against it, and send one warm-up batch."""
        start = time.perf_counter()
        contract = read_contract(path)
        grpcclient = _grpc_module()
        client = grpcclient.InferenceServerClient(target.url, channel_args=CHANNEL_ARGS)
        try:
            if not client.is_model_ready(target.model, client_timeout=timeout_s):
                raise BackendError(f"Triton at {target.url} has no ready model {target.model!r}")
            metadata = client.get_model_metadata(target.model, as_json=True, client_timeout=timeout_s)
            config = client.get_model_config(target.model, as_json=True, client_timeout=timeout_s)["config"]
        except grpcclient.InferenceServerException as exc:
            raise BackendError(f"Triton at {target.url} did not answer for {target.model!r}: {exc}") from None
        triton_batch = int(config.get("max_batch_size", 0))
        check_metadata(metadata, triton_batch, contract, target)
        if triton_batch < max_batch:
            log.warning(
                "Triton's max_batch_size for %s is %d: vr-serve's batches are capped to it (not %d)",
                target,
                triton_batch,
                max_batch,
            )
        model = cls(Path(path), contract, target, client, grpcclient, timeout_s, triton_batch)
        zeros = np.zeros((1, contract.input_height, contract.input_width, 3), np.uint8)
        out = model.run(zeros)
        if out.shape != (1, len(contract.classes)):
            raise BackendError(f"{target} answered shape {out.shape} for one frame, expected (1, classes)")
        model.load_seconds = time.perf_counter() - start
        log.info("model %s %s on %s, checked in %.2f s", contract.name, contract.version, target,
                 model.load_seconds)  # fmt: skip
        return model

    @property
    def providers(self) -> list[str]:
        return [self.provider]

    @property
    def provider(self) -> str:
        return str(self.target)

    @property
    def on_gpu(self) -> bool:
        return False  # unknown from here: Triton places the model

    def info(self) -> ModelInfo:
        return self.contract.info(self.provider)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, classes], in requests of at most Triton's max batch size."""
        outputs = []
        for first in range(0, len(batch), self.max_batch):
            part = np.ascontiguousarray(batch[first : first + self.max_batch])
            request = self.grpc.InferInput(INPUT_NAME, list(part.shape), "UINT8")
            request.set_data_from_numpy(part)
            try:
                result = self.client.infer(
                    self.target.model,
                    [request],
                    outputs=[self.grpc.InferRequestedOutput(OUTPUT_NAME)],
                    client_timeout=self.timeout_s,
                )
            except self.grpc.InferenceServerException as exc:
                raise BackendUnavailable(f"{self.target}: {exc.status() or ''} {exc.message()}") from None
            outputs.append(result.as_numpy(OUTPUT_NAME))
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def close(self) -> None:
        self.client.close()


def check_metadata(metadata: dict, max_batch: int, contract: ModelContract, target: TritonTarget) -> None:
    """Triton's model metadata (its JSON form) against the contract: names, types and shapes."""
    inputs = {t["name"]: t for t in metadata.get("inputs", [])}
    outputs = {t["name"]: t for t in metadata.get("outputs", [])}
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise BackendError(
            f"{target} takes {sorted(inputs)} and gives {sorted(outputs)}; "
            f"a vr-serve model takes {INPUT_NAME!r} and gives {OUTPUT_NAME!r} (write it with vr-triton-repo)"
        )
    if max_batch < 1:
        raise BackendError(f"{target} does not batch (max_batch_size 0); vr-serve sends batches")
    expect = {
        INPUT_NAME: ("UINT8", [-1, contract.input_height, contract.input_width, 3]),
        OUTPUT_NAME: ("FP32", [-1, len(contract.classes)]),
    }
    tensors = {**inputs, **outputs}
    for name, (dtype, shape) in expect.items():
        got = (tensors[name].get("datatype"), [int(d) for d in tensors[name].get("shape", [])])
        if got != (dtype, shape):
            raise BackendError(
                f"{target}: {name} is {got[0]} {got[1]}, the contract of {contract.name} "
                f"{contract.version} needs {dtype} {shape}"
            )
