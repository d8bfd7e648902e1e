"""One onnxruntime session plus the model contract read from the file, loaded, checked and warmed.

Provider choice matters for latency and is easy to get silently wrong: onnxruntime-gpu falls back to
the CPU without an error when CUDA or TensorRT libraries are missing. So the providers reported
here are the ones the session really runs (`session.get_providers()`), never the ones asked for.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from vr_recognition.server.errors import ServeError
from vr_recognition.server.model_format import INPUT_NAME, OUTPUT_NAME, ModelContract, ModelFormatError
from vr_recognition.server.protocol import ModelInfo

log = logging.getLogger("vr_serve.inference")

PROVIDER_NAMES = {
    "tensorrt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}
AUTO_ORDER = ("tensorrt", "cuda", "cpu")


def provider_options(name: str, cache_dir: Path, fp16: bool) -> dict[str, str]:
    """Options that matter for latency on each provider."""
    if name == "tensorrt":
        return {
            "trt_engine_cache_enable": "True",
            "trt_engine_cache_path": str(cache_dir),
            "trt_timing_cache_enable": "True",
            "trt_timing_cache_path": str(cache_dir),
            "trt_fp16_enable": "True" if fp16 else "False",
        }
    if name == "cuda":
        return {"cudnn_conv_algo_search": "EXHAUSTIVE", "do_copy_in_default_stream": "True"}
    return {}


class ProviderError(ServeError):
    """The execution providers asked for are unknown or not available in this onnxruntime."""


def resolve_providers(spec: str) -> list[str]:
    """'auto' or a comma list like 'tensorrt,cuda,cpu' -> the short names onnxruntime can offer here."""
    available = set(ort.get_available_providers())
    wanted = AUTO_ORDER if spec == "auto" else tuple(p.strip().lower() for p in spec.split(",") if p.strip())
    unknown = [p for p in wanted if p not in PROVIDER_NAMES]
    if unknown:
        raise ProviderError(f"unknown provider(s) {unknown}; choose from {list(PROVIDER_NAMES)} or 'auto'")
    chosen = [p for p in wanted if PROVIDER_NAMES[p] in available]
    if not chosen:
        raise ProviderError(f"none of {list(wanted)} is available; onnxruntime offers {sorted(available)}")
    return chosen


@dataclass
class InferenceModel:
    path: Path
    contract: ModelContract
    session: ort.InferenceSession
    providers: list[str]  # what really runs, from session.get_providers()
    load_seconds: float

    @classmethod
    def load(
        cls,
        path: Path,
        providers: str = "auto",
        max_batch: int = 8,
        threads: int | None = None,
        cache_dir: Path | None = None,
    ) -> InferenceModel:
        """Load, validate against the model contract, and warm up (first runs allocate and tune)."""
        start = time.perf_counter()
        path = Path(path)
        if not path.is_file():
            raise ModelFormatError(f"model file {path} does not exist")
        chosen = resolve_providers(providers)
        if {"tensorrt", "cuda"} & set(chosen) and hasattr(ort, "preload_dlls"):
            ort.preload_dlls()  # the nvidia-* wheels of onnxruntime-gpu[cuda,cudnn]; missing ones are ignored
        cache_dir = cache_dir or Path(os.environ.get("VR_SERVE_CACHE", Path.home() / ".cache" / "vr-serve"))
        if "tensorrt" in chosen:
            cache_dir.mkdir(parents=True, exist_ok=True)
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # intra-op threads keep spinning briefly after each parallel section (onnxruntime's default).
        # Measured on 2 cores with ResNet-18 and frames 100 ms apart: without spinning, every run has to
        # wake its threads and takes 79 ms (p99 107) instead of 51 ms (p99 57).
        try:
            session = ort.InferenceSession(
                str(path),
                sess_options=options,
                providers=[(PROVIDER_NAMES[p], provider_options(p, cache_dir, fp16=True)) for p in chosen],
            )
        except Exception as exc:  # onnxruntime raises several unrelated types for broken files
            raise ModelFormatError(f"onnxruntime cannot load {path}: {str(exc)[:300]}") from None
        contract = ModelContract.from_metadata(session.get_modelmeta().custom_metadata_map)
        check_io(session, contract)
        model = cls(
            path=path,
            contract=contract,
            session=session,
            providers=session.get_providers(),
            load_seconds=0.0,
        )
        model.warm_up(max_batch)
        model.load_seconds = time.perf_counter() - start
        asked = [PROVIDER_NAMES[p] for p in chosen]
        if model.providers[0] != asked[0]:
            log.warning(
                "asked for %s but onnxruntime runs %s (silent fallback)", asked[0], model.providers[0]
            )
        log.info(
            "model %s %s loaded in %.2f s; providers in use: %s",
            contract.name,
            contract.version,
            model.load_seconds,
            ", ".join(model.providers),
        )
        return model

    @property
    def provider(self) -> str:
        return self.providers[0]

    @property
    def on_gpu(self) -> bool:
        return self.provider != PROVIDER_NAMES["cpu"]

    def info(self) -> ModelInfo:
        return self.contract.info(self.provider)

    def run(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [N, H, W, 3] -> float32 [N, classes] probabilities.

        Through IO binding: the input is bound straight from the numpy buffer (one host-to-device copy
        on GPU providers, none on CPU) and onnxruntime allocates the output where the provider wants
        it, instead of session.run's extra staging. The same path runs on every provider, so the CPU
        tests exercise the code the GPU uses."""
        binding = self.session.io_binding()
        binding.bind_cpu_input(INPUT_NAME, np.ascontiguousarray(batch))
        binding.bind_output(OUTPUT_NAME)
        self.session.run_with_iobinding(binding)
        (probabilities,) = binding.copy_outputs_to_cpu()
        return probabilities.astype(np.float32, copy=False)

    def warm_up(self, max_batch: int) -> None:
        """First runs allocate (and on TensorRT build an engine per shape), so do them before serving.
        On the CPU a batch-1 pass is enough; a max-batch pass there would only delay readiness."""
        c = self.contract
        sizes = [1, max(1, max_batch)] if self.on_gpu else [1]
        for size in dict.fromkeys(sizes):
            batch = np.zeros((size, c.input_height, c.input_width, 3), dtype=np.uint8)
            for _ in range(2):
                out = self.run(batch)
            if out.shape != (size, len(c.classes)):
                raise ModelFormatError(
                    f"output shape {out.shape} for a batch of {size}, expected ({size}, {len(c.classes)})"
                )


def check_io(session: ort.InferenceSession, contract: ModelContract) -> None:
    """The graph must take the contract's input and give its output, or serving would fail per frame."""
    inputs = {i.name: i for i in session.get_inputs()}
    outputs = {o.name: o for o in session.get_outputs()}
    if INPUT_NAME not in inputs or OUTPUT_NAME not in outputs:
        raise ModelFormatError(
            f"graph needs input {INPUT_NAME!r} and output {OUTPUT_NAME!r}; "
            f"has {list(inputs)} -> {list(outputs)}"
        )
    image = inputs[INPUT_NAME]
    if image.type != "tensor(uint8)":
        raise ModelFormatError(f"input {INPUT_NAME!r} is {image.type}, expected tensor(uint8)")
    shape = image.shape
    if len(shape) != 4 or shape[3] != 3:
        raise ModelFormatError(f"input {INPUT_NAME!r} has shape {shape}, expected [batch, H, W, 3]")
    fixed = [d for d in shape[1:3] if isinstance(d, int)]
    if fixed and fixed != [contract.input_height, contract.input_width][: len(fixed)]:
        raise ModelFormatError(f"input shape {shape} disagrees with vr.input_size")
