"""vr-serve --backend triton://: the streams stay in vr-serve, batches run in a real tritonserver.

The tritonserver is the one the nvidia-pytriton wheel bundles, in the triton venv vr-bench makes
(bench/peers/venvs.py). It has only the Python backend, so bench/peers/triton_pool.py serves the
repository vr-triton-repo wrote with exactly its config.pbtxt (name, tensors, max batch, queue delay)
and runs its model.onnx with onnxruntime. A venv that cannot be made here skips on a developer's
machine; under CI=true the skip is a failure (tests/conftest.py).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from tests.client_harness import free_port
from tests.onnx_models import write_colour_model
from tests.server_helpers import serving, solid_jpeg
from vr_recognition.bench.peers.specs import PEERS
from vr_recognition.bench.peers.venvs import ENV_DIR, ensure_venv, triton_env
from vr_recognition.bench.spawn import SpawnedServer
from vr_recognition.server import protocol as p
from vr_recognition.server.client import RecognitionClient
from vr_recognition.server.model_format import ModelContract
from vr_recognition.server.triton_backend import BackendError, parse_backend, read_contract
from vr_recognition.server.triton_repo import main as triton_repo_main
from vr_recognition.server.triton_repo import write_repository

ROOT = Path(__file__).resolve().parents[1]
COLOURS = ("red", "green", "blue")


def read_config(folder: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def test_parse_backend():
    assert parse_backend("local") is None
    target = parse_backend("triton://10.0.0.7:8001/vr")
    assert (target.host, target.port, target.model) == ("10.0.0.7", 8001, "vr")
    assert str(target) == "triton://10.0.0.7:8001/vr"
    for bad in ("triton://host/vr", "triton://host:8001", "triton://host:8001/a/b", "grpc://h:1/vr", "tritn"):
        with pytest.raises(BackendError, match="triton://HOST:PORT/MODEL"):
            parse_backend(bad)


@pytest.mark.parametrize("kind", ["cpu", "gpu"])
def test_repository_is_a_triton_model_config(tmp_path, kind):
    model = write_colour_model(tmp_path / "colour.onnx", version="7", size=48)
    assert triton_repo_main([str(model), str(tmp_path / "repo"), "--kind", kind, "--max-batch", "16",
                             "--queue-delay-us", "250", "--instances", "2"]) == 0  # fmt: skip
    folder = tmp_path / "repo" / "vr"
    assert (folder / "1" / "model.onnx").read_bytes() == model.read_bytes()
    config = read_config(folder)  # Triton's own schema: a field it does not know fails to parse
    assert (config.name, config.platform, config.max_batch_size) == ("vr", "onnxruntime_onnx", 16)
    (image,), (probabilities,) = config.input, config.output
    assert (image.name, image.data_type, list(image.dims)) == (
        "image",
        model_config_pb2.TYPE_UINT8,
        [48, 48, 3],
    )
    assert (probabilities.name, probabilities.data_type, list(probabilities.dims)) == (
        "probabilities", model_config_pb2.TYPE_FP32, [3])  # fmt: skip
    assert config.dynamic_batching.max_queue_delay_microseconds == 250
    (group,) = config.instance_group
    assert group.count == 2
    accelerators = config.optimization.execution_accelerators.gpu_execution_accelerator
    if kind == "gpu":
        assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU
        (tensorrt,) = accelerators
        assert tensorrt.name == "tensorrt"
        assert tensorrt.parameters["precision_mode"] == "FP16"
    else:
        assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_CPU
        assert not accelerators
    # the contract travels in the repository: the parameters rebuild it exactly
    metadata = {key: value.string_value for key, value in config.parameters.items()}
    assert ModelContract.from_metadata(metadata) == read_contract(model)


def test_repository_refuses_a_file_that_is_not_a_vr_model(tmp_path, capsys):
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not an onnx file")
    assert triton_repo_main([str(bogus), str(tmp_path / "repo")]) == 2
    assert "cannot load" in capsys.readouterr().err
    assert not (tmp_path / "repo").exists()


# ---- against a real tritonserver ----------------------------------------------------------------


@pytest.fixture(scope="module")
def triton_python() -> Path:
    root = Path(os.environ.get(ENV_DIR) or ROOT / ".venv-peers")
    try:
        return ensure_venv(PEERS["triton"], root, log=print).python
    except Exception as exc:
        pytest.skip(f"the triton venv could not be made here: {str(exc)[-600:]}")


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> tuple[Path, Path]:
    """(the .onnx, its Triton model folder)."""
    folder = tmp_path_factory.mktemp("triton")
    model = write_colour_model(folder / "colour.onnx", version="t1")
    return model, write_repository(model, folder / "repo", kind="cpu", max_batch=8)


def start_pool(python: Path, folder: Path, port: int, log: Path, delay_ms: float = 0.0) -> SpawnedServer:
    command = [str(python), "-m", "vr_recognition.bench.peers.triton_pool", "--repository", str(folder),
               "--grpc-port", str(port), "--threads", "1", "--delay-ms", str(delay_ms)]  # fmt: skip
    return SpawnedServer(command, "triton", ready_timeout=300.0, log_path=log, env=triton_env(python),
                         schemes="grpc", own_group=True)  # fmt: skip


async def answers(client: RecognitionClient, colours) -> list[p.Result]:
    results = []
    for colour in colours:
        frame_id = await client.send_frame(solid_jpeg(colour), width=320, height=180)
        while True:
            message = await client.recv(timeout=30)
            if isinstance(message, p.Result) and message.frame_id == frame_id:
                results.append(message)
                break
    return results


def test_triton_backend_answers_as_the_local_one(tmp_path, triton_python, repository):
    model, folder = repository
    port = free_port()
    with start_pool(triton_python, folder, port, tmp_path / "triton.log"):

        async def scenario():
            sequence = COLOURS * 3
            async with (
                serving(model) as local,
                serving(model, backend=f"triton://127.0.0.1:{port}/vr") as remote,
            ):
                assert remote.model.provider == f"triton://127.0.0.1:{port}/vr"
                async with await RecognitionClient.connect(remote.url) as client:
                    assert client.server_hello.model.provider == f"triton://127.0.0.1:{port}/vr"
                    via_triton = await answers(client, sequence)
                async with await RecognitionClient.connect(local.url) as client:
                    here = await answers(client, sequence)
            return sequence, via_triton, here

        sequence, via_triton, here = asyncio.run(scenario())
    for colour, a, b in zip(sequence, via_triton, here, strict=True):
        assert a.status is p.Status.OK
        assert b.status is p.Status.OK
        assert a.top_k[0].label == colour == b.top_k[0].label
        assert [x.label for x in a.top_k] == [x.label for x in b.top_k]
        assert [x.score for x in a.top_k] == pytest.approx([x.score for x in b.top_k], abs=1e-6)
        assert a.model_version == "t1"


def test_triton_model_that_disagrees_with_the_contract_stops_vr_serve(tmp_path, triton_python, repository):
    model, folder = repository
    other = write_colour_model(tmp_path / "other.onnx", size=48)  # 48x48 input; Triton serves 32x32
    port = free_port()
    with start_pool(triton_python, folder, port, tmp_path / "triton.log"):

        async def load(path: Path, target: str) -> None:
            async with serving(path, load=False, backend=target) as server:
                await server.load_model()

        with pytest.raises(
            BackendError, match=r"image is UINT8 \[-1, 32, 32, 3\].*needs UINT8 \[-1, 48, 48, 3\]"
        ):
            asyncio.run(load(other, f"triton://127.0.0.1:{port}/vr"))
        with pytest.raises(BackendError, match="no ready model 'nope'"):
            asyncio.run(load(model, f"triton://127.0.0.1:{port}/nope"))


async def stream(client: RecognitionClient, fps: float, log: list, stop: asyncio.Event) -> list[int]:
    """Send at `fps` until `stop`, recording every message as (time, message); returns the ids sent."""

    async def read():
        while True:
            message = await client.recv()
            log.append((time.monotonic(), message))

    reader = asyncio.create_task(read())
    sent, frame = [], solid_jpeg("green")
    try:
        start = time.monotonic()
        while not stop.is_set():
            sent.append(await client.send_frame(frame, width=320, height=180))
            await asyncio.sleep(max(0.0, start + len(sent) / fps - time.monotonic()))
        await asyncio.sleep(1.5)  # the last answers (the timeout of a batch Triton holds is 1 s here)
    finally:
        reader.cancel()
    return sent


def test_a_triton_restart_costs_answers_not_the_stream(tmp_path, triton_python, repository):
    model, folder = repository
    port = free_port()
    pool = start_pool(triton_python, folder, port, tmp_path / "triton-1.log")
    log: list = []
    times = {}
    try:

        async def scenario():
            target = f"triton://127.0.0.1:{port}/vr"
            stop = asyncio.Event()
            async with (
                serving(model, backend=target, backend_timeout_s=1.0) as server,
                await RecognitionClient.connect(server.url) as client,
            ):
                streaming = asyncio.create_task(stream(client, 20.0, log, stop))
                await asyncio.sleep(2.0)
                times["kill"] = time.monotonic()
                os.killpg(pool.proc.pid, signal.SIGKILL)  # tritonserver and PyTriton, no goodbye
                pool.proc.wait()
                await asyncio.sleep(2.0)
                times["restart"] = time.monotonic()
                restarted = await asyncio.to_thread(start_pool, triton_python, folder, port,
                                                    tmp_path / "triton-2.log")  # fmt: skip
                times["ready"] = time.monotonic()
                try:
                    await asyncio.sleep(3.0)
                    stop.set()
                    await streaming
                finally:
                    await asyncio.to_thread(restarted.stop)
                return client.close_code

        close_code = asyncio.run(scenario())
    finally:
        pool.stop()
    assert close_code is None, "the stream was closed"
    results = [(t, m) for t, m in log if isinstance(m, p.Result)]
    assert not [m for _, m in log if isinstance(m, p.ErrorMessage)]
    ok_before = [t for t, m in results if m.status is p.Status.OK and t < times["kill"]]
    unavailable = [
        t for t, m in results if m.status is p.Status.ERROR and m.error.code == "model_unavailable"
    ]
    ok_after = [t for t, m in results if m.status is p.Status.OK and t > times["restart"]]
    assert ok_before
    assert unavailable
    assert ok_after
    assert min(unavailable) >= times["kill"]
    # answers resume within gRPC's capped reconnect backoff (1 s) of Triton being ready again
    assert min(ok_after) <= times["ready"] + 2.0, min(ok_after) - times["ready"]
    others = {m.status for _, m in results} - {p.Status.OK, p.Status.ERROR}
    assert others <= {p.Status.DROPPED_STALE, p.Status.LATE}
    print(f"\n[triton restart] {len(unavailable)} frames answered model_unavailable; answers again "
          f"{1000 * (min(ok_after) - times['ready']):.0f} ms after Triton was ready")  # fmt: skip


def test_a_triton_slower_than_the_budget_yields_late_and_stale(tmp_path, triton_python, repository):
    model, folder = repository
    port = free_port()
    with start_pool(triton_python, folder, port, tmp_path / "triton.log", delay_ms=60.0):

        async def scenario():
            async with serving(model, backend=f"triton://127.0.0.1:{port}/vr") as server:
                settings = p.StreamSettings(budget_ms=25.0)
                async with await RecognitionClient.connect(server.url, settings=settings) as client:
                    log: list = []
                    stop = asyncio.Event()
                    asyncio.get_running_loop().call_later(3.0, stop.set)
                    sent = await stream(client, 60.0, log, stop)
                    return sent, [m for _, m in log if isinstance(m, p.Result)]

        sent, results = asyncio.run(scenario())
    assert sorted(r.frame_id for r in results) == sorted(sent)  # every frame answered once
    counts = {s: sum(r.status is s for r in results) for s in p.Status}
    assert counts[p.Status.ERROR] == 0, counts
    # a model run takes 60 ms, the budget is 25 ms and frames come every 17 ms: most frames are replaced
    # while one runs (dropped_stale), the one taken next waited past its budget (late) or runs anyway
    assert counts[p.Status.DROPPED_STALE] > len(sent) / 2, counts
    assert counts[p.Status.OK] > 0, counts
    ok = [r.timings_ms["total"] for r in results if r.status is p.Status.OK]
    assert min(ok) >= 60.0  # Triton's delay is in the answers' timings
