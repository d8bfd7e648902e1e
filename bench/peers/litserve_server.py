"""The LitServe peer: LitServe serving the .onnx through vr-serve's preprocessing and onnxruntime session.

Runs inside the litserve venv (bench/peers/venvs.py), started by vr-bench. Configured as LitServe's
batching guide shows: `max_batch_size` (vr-serve's --max-batch) and a short `batch_timeout`, with
`batch`/`unbatch` stacking decoded frames into one session run; the request `timeout` is the frame
budget, so a request that waited in LitServe's queue past it is answered 504 instead of computed
for nobody. One worker: the same onnxruntime threads as vr-serve, not one session per core.

A request is JSON `{"image": BASE64_JPEG}` (the image example of LitServe's docs); the answer is
`{"label", "score", "timings_ms": {"decode", "infer"}, "provider"}`.
"""

from __future__ import annotations

import base64
import sys
import threading
import time
import urllib.request
from pathlib import Path

import litserve as ls
import numpy as np

from vr_recognition.bench.peers.serving import free_port, parse_args


class RecognitionAPI(ls.LitAPI):
    """decode_request: base64 JPEG -> model input (server.preprocess); predict: one session run."""

    def __init__(self, model_path: str, providers: str, threads: int | None, max_batch: int,
                 batch_wait_s: float) -> None:  # fmt: skip
        super().__init__(max_batch_size=max_batch, batch_timeout=batch_wait_s)
        self.model_path, self.providers, self.threads, self.max_batch = (
            model_path,
            providers,
            threads,
            max_batch,
        )

    def setup(self, device) -> None:
        from vr_recognition.server.inference import InferenceModel
        from vr_recognition.server.preprocess import preprocess_jpeg

        self.model = InferenceModel.load(Path(self.model_path), self.providers, self.max_batch, self.threads)
        self.preprocess = preprocess_jpeg
        self.classes = self.model.contract.classes

    def decode_request(self, request, **kwargs):
        start = time.perf_counter()
        image = self.preprocess(base64.b64decode(request["image"]), self.model.contract)
        return image, (time.perf_counter() - start) * 1000.0

    def batch(self, inputs):
        return np.stack([image for image, _ in inputs]), [decode_ms for _, decode_ms in inputs]

    def predict(self, x, **kwargs):
        if isinstance(x, tuple) and isinstance(x[1], list):
            images, decode_ms = x
        else:  # a batch of one that LitServe did not pass through batch()
            images, decode_ms = x[0][None], [x[1]]
        start = time.perf_counter()
        probabilities = self.model.run(images)
        infer_ms = (time.perf_counter() - start) * 1000.0
        best = probabilities.argmax(axis=1)
        return [
            (self.classes[i], float(probabilities[row, i]), decode_ms[row], infer_ms)
            for row, i in enumerate(best)
        ]

    def unbatch(self, output):
        return list(output)

    def encode_response(self, output, **kwargs):
        if isinstance(output, list):  # unbatched single request
            output = output[0]
        label, score, decode_ms, infer_ms = output
        return {
            "label": label,
            "score": score,
            "timings_ms": {"decode": decode_ms, "infer": infer_ms},
            "provider": self.model.provider,
        }


def announce_when_healthy(port: int, line: str, timeout_s: float = 300.0) -> None:
    """Print the ready line once LitServe's /health says its workers are set up."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as response:
                if response.status == 200:
                    print(line, flush=True)
                    return
        except OSError:
            pass
        time.sleep(0.1)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(__doc__, "request timeout (504 after it)", argv)

    port = free_port()
    api = RecognitionAPI(
        str(args.model.resolve()),
        args.providers,
        args.threads,
        max(1, args.max_batch),
        args.batch_wait_ms / 1000,
    )
    server = ls.LitServer(
        api, accelerator="auto", devices=1, workers_per_device=1, timeout=args.budget_ms / 1000
    )
    print(f"listening on http://127.0.0.1:{port}", flush=True)
    ready = (
        f"ready: {args.model.stem} on {args.providers} providers (litserve {ls.__version__}, max batch "
        f"{args.max_batch}, batch timeout {args.batch_wait_ms:g} ms, timeout {args.budget_ms:.1f} ms)"
    )
    threading.Thread(target=announce_when_healthy, args=(port, ready), daemon=True).start()
    server.run(host="127.0.0.1", port=port, generate_client_file=False, log_level="warning")
    return 0


if __name__ == "__main__":
    sys.exit(main())
