"""Hot reload, graceful shutdown, TLS, and the no-torch rule, on real server processes and
in-process servers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.onnx_models import colour_contract, colour_model, write_colour_model
from tests.server_helpers import (
    ServerProcess,
    classify,
    http_get,
    metric_value,
    self_signed_certificate,
    serving,
    solid_jpeg,
)
from vr_recognition.server import protocol as p
from vr_recognition.server.client import RecognitionClient, ServerRefused

PATIENT = p.StreamSettings(budget_ms=30_000)


async def test_reload_swaps_models_without_dropping_streams_and_rejects_broken_ones(tmp_path):
    path = write_colour_model(tmp_path / "model.onnx", version="v1")
    async with (
        serving(path) as server,
        await RecognitionClient.connect(server.url, settings=PATIENT) as client,
    ):
        assert (await classify(client)).model_version == "v1"
        write_colour_model(path, version="v2")
        assert await server.reload()
        changed = await client.recv(timeout=10)
        assert isinstance(changed, p.ModelChanged)
        assert changed.model.version == "v2"
        assert client.model.version == "v2"
        assert (await classify(client)).model_version == "v2"

        path.write_bytes(b"this is not an onnx file")  # corrupted
        assert not await server.reload()
        missing = tmp_path / "gone.onnx"
        assert not await server.reload(missing)  # deleted
        plain = colour_model(colour_contract())  # a valid ONNX graph, but not a train-vr export
        del plain.metadata_props[:]
        onnx.save(plain, str(tmp_path / "plain.onnx"))
        assert not await server.reload(tmp_path / "plain.onnx")
        result = await classify(client, "blue")  # the old model keeps serving the same stream
        assert (result.status, result.model_version, result.top_k[0].label) == (p.Status.OK, "v2", "blue")
    assert metric_value(server, "vr_model_reloads_total", result="ok") == 1
    assert metric_value(server, "vr_model_reloads_total", result="rejected") == 3


async def test_watched_model_file_is_reloaded(tmp_path):
    path = write_colour_model(tmp_path / "model.onnx", version="v1")
    async with (
        serving(path, watch_model=True, watch_interval_s=0.1) as server,
        await RecognitionClient.connect(server.url, settings=PATIENT) as client,
    ):
        new = write_colour_model(tmp_path / "incoming.onnx", version="v2")
        os.replace(new, path)  # the atomic way to publish a model
        changed = await client.recv(timeout=10)
        assert isinstance(changed, p.ModelChanged)
        assert (await classify(client)).model_version == "v2"


# Per frame (--max-batch 1), whatever the CPU: three frames take ~1 s, so at SIGTERM they are still in flight.
SECONDS_PER_FRAME = 0.3


def test_sighup_reloads_and_sigterm_finishes_in_flight_frames(tmp_path):
    path = write_colour_model(tmp_path / "model.onnx", version="v1")
    args = ["--model", str(path), "--max-batch", "1"]
    server = ServerProcess(args, tmp_path / "serve.log", seconds_per_batch=SECONDS_PER_FRAME)
    try:

        async def scenario() -> tuple[list[p.Result], int | None]:
            async with await RecognitionClient.connect(server.url, settings=PATIENT) as client:
                write_colour_model(path, version="v2")
                server.proc.send_signal(signal.SIGHUP)
                changed = await client.recv(timeout=30)
                assert isinstance(changed, p.ModelChanged)
                assert changed.model.version == "v2"
                # Several streams with frames in flight, then SIGTERM.
                others = [await RecognitionClient.connect(server.url, settings=PATIENT) for _ in range(2)]
                streams = [client, *others]
                for stream in streams:
                    await stream.send_frame(solid_jpeg("green"), width=320, height=180)
                # A stream's messages are read in order: once its pong is back, its frame is in the server.
                for stream in streams:
                    await stream.ping()
                server.proc.send_signal(signal.SIGTERM)
                results, farewells = [], []
                for stream in streams:
                    results.append(await stream.recv(timeout=30))
                    farewells.append(await stream.recv(timeout=30))  # v1.1: say why, then close
                    with pytest.raises(ConnectionClosed):
                        await stream.recv(timeout=30)
                assert all(
                    isinstance(f, p.ErrorMessage) and (f.code, f.fatal) == ("shutting_down", True)
                    for f in farewells
                ), farewells
                codes = {stream.close_code for stream in streams}
                for stream in others:
                    await stream.close()
                return results, codes

        results, codes = asyncio.run(scenario())
        assert server.proc.wait(timeout=30) == 0
    finally:
        server.stop()
    assert all(r.status is p.Status.OK and r.top_k[0].label == "green" for r in results), results
    assert all(r.timings_ms["infer"] >= SECONDS_PER_FRAME * 1000 for r in results)  # ran on the slow model
    assert codes == {1001}
    assert "Traceback" not in server.log()


@pytest.fixture
def certificate(tmp_path) -> tuple[Path, Path]:
    return self_signed_certificate(tmp_path)


async def test_tls_with_a_self_signed_certificate(tmp_path, certificate):
    cert, key = certificate
    model = write_colour_model(tmp_path / "model.onnx")
    async with serving(model, tls_cert=cert, tls_key=key, token="t0k") as server:
        url = server.url.replace("ws://", "wss://")
        trusted = ssl.create_default_context(cafile=str(cert))
        async with await RecognitionClient.connect(url, ssl=trusted, token="t0k", settings=PATIENT) as client:
            assert (await classify(client)).status is p.Status.OK
        with pytest.raises(ssl.SSLError):  # a client that does not trust the certificate
            await RecognitionClient.connect(url, ssl=ssl.create_default_context(), token="t0k")
        with pytest.raises(Exception):  # plain ws:// to a TLS port fails, it is never served in clear  # noqa: B017, PT011
            await RecognitionClient.connect(server.url, token="t0k", open_timeout=3)


def test_the_serving_process_never_imports_torch(tmp_path):
    model = write_colour_model(tmp_path / "model.onnx")
    script = f"""
import asyncio, sys
from vr_recognition.server.app import RecognitionServer, ServerConfig
from vr_recognition.server.client import RecognitionClient
from vr_recognition.server.protocol import StreamSettings
from tests.server_helpers import solid_jpeg

async def main():
    server = RecognitionServer(ServerConfig(model_path=__import__("pathlib").Path({str(model)!r}), port=0))
    await server.start()
    await server.load_model()
    async with await RecognitionClient.connect(f"ws://127.0.0.1:{{server.port}}",
                                               settings=StreamSettings(budget_ms=10000)) as client:
        await client.send_frame(solid_jpeg("red"), width=320, height=180)
        assert (await client.recv(timeout=10)).top_k[0].label == "red"
    await server.shutdown()

asyncio.run(main())
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "torchvision", "panda3d"))
print("HEAVY", heavy)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "HEAVY []" in done.stdout


async def test_drain_takes_the_replica_out_of_a_balancer_before_it_closes_its_streams(tmp_path):
    """--drain-seconds: /healthz 503 and new streams refused at once, open streams still answered
    during the window, then the usual graceful end (fatal shutting_down, close 1001)."""
    path = write_colour_model(tmp_path / "model.onnx")
    async with (
        serving(path, drain_s=1.5) as server,
        await RecognitionClient.connect(server.url, settings=PATIENT) as client,
    ):
        base = server.url.replace("ws://", "http://")
        assert (await http_get(base + "/healthz"))[0] == 200
        stopping = asyncio.create_task(server.shutdown())
        await asyncio.sleep(0.1)
        status, body = await http_get(base + "/healthz")
        assert (status, json.loads(body)["status"]) == (503, "stopping")
        with pytest.raises(ServerRefused) as refused:
            await RecognitionClient.connect(server.url, settings=PATIENT)
        assert (refused.value.code, refused.value.http_status) == ("shutting_down", 503)
        for _ in range(3):  # the open stream is served as before while the balancer notices
            result = await classify(client, "blue")
            assert (result.status, result.top_k[0].label) == (p.Status.OK, "blue")
        assert not stopping.done()
        farewell = await client.recv(timeout=30)
        assert isinstance(farewell, p.ErrorMessage)
        assert (farewell.code, farewell.fatal) == ("shutting_down", True)
        with pytest.raises(ConnectionClosed):
            await client.recv(timeout=30)
        assert client.close_code == 1001
        await stopping


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
async def test_vr_serve_runs_on_either_event_loop(tmp_path, loop):
    """`--loop uvloop` (measured in docs/benchmarks.md) serves and stops like asyncio's own loop."""
    model = write_colour_model(tmp_path / "model.onnx")
    server = ServerProcess(["--model", str(model), "--loop", loop], tmp_path / "serve.log")
    try:
        async with await RecognitionClient.connect(server.url, settings=PATIENT) as client:
            assert (await classify(client, "blue")).top_k[0].label == "blue"
    finally:
        assert server.stop() == 0
    assert "Traceback" not in server.log()
