"""The naive way to serve the seeds' recipe, as a baseline: what vr-serve is measured against.

torch eager model, PIL decoding, torchvision transforms (Resize, CenterCrop, ToTensor, Normalize),
one FIFO queue shared by all streams, one frame at a time, nothing dropped, no deadlines. It speaks
protocol v1 through server.protocol so the same open-loop client loads it. The network has the
served model's architecture, class count and input size but random weights: latency does not
depend on the weights, and the answers are not checked.

Run as its own process (torch is imported only here): vr-bench starts it with `--baselines`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from vr_recognition.server import __version__
from vr_recognition.server import protocol as p

PROVIDER = "torch-eager-cpu"


class NaiveClassifier:
    """PIL + torchvision transforms + torch eager, batch 1: the seeds' inference recipe."""

    def __init__(self, arch: str, classes: int, input_size: tuple[int, int], resize_shorter: int,
                 threads: int | None) -> None:  # fmt: skip
        import torch
        import torchvision
        from torchvision import transforms

        if threads:
            torch.set_num_threads(threads)
        self.torch = torch
        known = set(torchvision.models.list_models(module=torchvision.models))
        self.arch = arch if arch in known else "resnet18"
        if self.arch != arch:
            print(f"note: {arch!r} is not a torchvision classifier; using resnet18", flush=True)
        self.model = torchvision.models.get_model(self.arch, weights=None, num_classes=classes).eval()
        self.transform = transforms.Compose(
            [
                transforms.Resize(resize_shorter),
                transforms.CenterCrop(input_size),
                transforms.ToTensor(),
                transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
            ]
        )

    def __call__(self, jpeg: bytes) -> tuple[list[float], float, float]:
        """Probabilities, decode+transform seconds, inference seconds."""
        from PIL import Image

        start = time.perf_counter()
        image = Image.open(io.BytesIO(jpeg)).convert("RGB")
        tensor = self.transform(image).unsqueeze(0)
        decoded = time.perf_counter()
        with self.torch.inference_mode():
            probabilities = self.torch.softmax(self.model(tensor), dim=1)[0].tolist()
        return probabilities, decoded - start, time.perf_counter() - decoded


class NaiveServer:
    def __init__(self, classifier: NaiveClassifier, name: str, classes: list[str],
                 input_size: tuple[int, int]) -> None:  # fmt: skip
        self.classifier = classifier
        self.classes = tuple(classes)
        self.model_info = p.ModelInfo(name, "naive", self.classes, input_size[1], input_size[0], PROVIDER)
        self.queue: asyncio.Queue = asyncio.Queue()  # one FIFO for every stream, unbounded
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="naive-infer")

    async def worker(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            ws, frame, settings, arrived = await self.queue.get()
            if ws.state is State.CLOSED:
                continue  # its client is gone (the previous configuration): nobody to answer
            taken = time.perf_counter()
            try:
                scores, decode_s, infer_s = await loop.run_in_executor(
                    self.executor, self.classifier, bytes(frame.payload)
                )
            except Exception as exc:  # undecodable image: answer it, keep serving
                error = p.ErrorInfo(p.ErrorCode.CORRUPT_IMAGE.value, str(exc)[:200])
                result = p.Result(frame.frame_id, frame.capture_time_us, p.Status.ERROR, error=error)
            else:
                ranked = sorted(range(len(scores)), key=lambda i: -scores[i])[: settings.top_k]
                timings = {"decode": decode_s, "queue": taken - arrived, "infer": infer_s}
                timings["total"] = time.perf_counter() - arrived
                result = p.Result(
                    frame.frame_id,
                    frame.capture_time_us,
                    p.Status.OK,
                    tuple(p.Prediction(self.classes[i], i, scores[i]) for i in ranked),
                    {k: v * 1000.0 for k, v in timings.items()},
                    frame.pose,
                    frame.gaze,
                    "naive",
                )
            with contextlib.suppress(ConnectionClosed):
                await ws.send(p.encode_server_message(result))

    async def handle(self, ws: ServerConnection) -> None:
        try:
            hello = p.decode_client_message(await ws.recv())
            if not isinstance(hello, p.ClientHello):
                raise p.ProtocolError(p.ErrorCode.HELLO_REQUIRED, "the first message must be hello")
            version = p.negotiate_version(hello)
        except p.ProtocolError as exc:
            await ws.send(p.encode_server_message(p.ErrorMessage(exc.code.value, exc.message, fatal=True)))
            await ws.close(p.CloseCode.PROTOCOL_ERROR, exc.code.value)
            return
        except ConnectionClosed:
            return
        asked = hello.settings
        settings = p.EffectiveSettings(
            top_k=min(asked.top_k or p.DEFAULT_TOP_K, len(self.classes)),
            budget_ms=asked.budget_ms or p.DEFAULT_BUDGET_MS,
            fps=asked.fps,
        )
        server_hello = p.ServerHello(
            version, "vr-bench-naive", __version__, self.model_info, settings, p.Limits()
        )
        try:
            await ws.send(p.encode_server_message(server_hello))
            async for message in ws:
                arrived = time.perf_counter()
                if isinstance(message, bytes):
                    try:
                        frame = p.decode_frame(message)
                    except p.ProtocolError as exc:
                        await ws.send(p.encode_server_message(p.error_for(exc)))
                        continue
                    self.queue.put_nowait((ws, frame, settings, arrived))
                else:
                    control = p.decode_client_message(message)
                    if isinstance(control, p.Ping):
                        pong = p.Pong(control.id, control.client_time_us, time.monotonic_ns() // 1000)
                        await ws.send(p.encode_server_message(pong))
        except (ConnectionClosed, p.ProtocolError):
            return


async def serve_forever(args: argparse.Namespace) -> None:
    classes = [c for c in args.classes.split(",") if c]
    height, width = (int(v) for v in args.input_size.lower().split("x"))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    classifier = NaiveClassifier(args.arch, len(classes), (height, width), args.resize_shorter, args.threads)
    server = NaiveServer(classifier, args.name, classes, (height, width))
    limit = p.DEFAULT_MAX_MESSAGE_BYTES
    async with serve(server.handle, args.host, args.port, compression=None, max_size=limit,
                     ping_interval=None) as ws_server:  # fmt: skip
        port = ws_server.sockets[0].getsockname()[1]
        print(f"listening on ws://{args.host}:{port}", flush=True)
        from PIL import Image

        blank = io.BytesIO()
        Image.new("RGB", (width * 2, height * 2)).save(blank, format="JPEG")
        for _ in range(3):  # warm up: first eager runs allocate
            classifier(blank.getvalue())
        print(f"ready: {args.name} as {classifier.arch} on {PROVIDER}", flush=True)
        worker = asyncio.create_task(server.worker())
        await stop.wait()
        worker.cancel()
    # The FIFO may still hold a long backlog and a torch call may be running: leave at once.
    sys.stdout.flush()
    os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vr_recognition.bench.naive_server", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--classes", required=True, help="comma-separated class names")
    parser.add_argument("--input-size", default="224x224", help="HxW")
    parser.add_argument("--resize-shorter", type=int, default=256)
    parser.add_argument("--name", default="naive")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's own)")
    asyncio.run(serve_forever(parser.parse_args(argv)))


if __name__ == "__main__":
    main()
