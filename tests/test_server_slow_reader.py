"""A client that stops reading its results cannot grow the server's memory or stall others: its
own stream blocks, and after the send timeout it is disconnected with 1008 slow_consumer."""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect

from server import protocol as p
from server.client import RecognitionClient
from tests.onnx_models import write_colour_model
from tests.server_helpers import serving, solid_jpeg


async def test_stalled_reader_is_disconnected_and_others_carry_on(tmp_path):
    # 300 classes and top_k 300 make every reply ~30 KB, so unread replies fill the socket buffers fast
    model = write_colour_model(tmp_path / "colour.onnx", extra_classes=300)
    tiny = p.encode_frame(p.Frame(0, 0, p.ImageFormat.RGB8, 1, 1, b"\xff\x00\x00"))
    async with serving(model, send_timeout_s=0.5) as server:
        bystander = await RecognitionClient.connect(server.url, settings=p.StreamSettings(budget_ms=10_000))
        # max_queue=1: the client library stops reading the socket after one unread message
        async with connect(server.url, compression=None, max_queue=1) as stalled:
            await stalled.send(p.encode_client_message(p.ClientHello(settings=p.StreamSettings(top_k=300))))
            sent = 0
            try:
                for _ in range(100_000):  # never reads a reply
                    await asyncio.wait_for(stalled.send(tiny), 2)
                    sent += 1
                    if sent % 100 == 0 and stalled.state.name != "OPEN":
                        break
            except Exception:
                pass
            for _ in range(100):
                if stalled.close_code is not None or server.metrics.active_streams._value.get() == 1:
                    break
                await asyncio.sleep(0.05)
        assert server.metrics.failure.labels("slow_consumer")._value.get() == 1
        assert server.metrics.active_streams._value.get() == 1  # only the bystander is left
        await bystander.send_frame(solid_jpeg("green"), width=320, height=180)
        result = await bystander.recv(timeout=10)
        assert result.status is p.Status.OK
        await bystander.close()
    assert sent > 100  # it really did flood the server before being dropped
