"""Fuzzing: the committed corpus of nasty inputs and thousands of generated malformed messages,
against the decoder and a live server. Outcome: no crash, no unhandled exception in the server log,
every message answered (exactly one reply each) with a result or a documented error code, and a
healthy stream alongside keeps being served.

Coverage-guided fuzzing with atheris (tests/fuzz_atheris.py) runs for 15 s, or 300 s when long.

VR_RELIABILITY=long raises the generated count from 1,000 to 20,000 and measures the healthy stream's
p99 alone and under attack over five alternating rounds (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import random
import re
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from websockets.asyncio.client import connect

from tests.onnx_models import write_colour_model
from tests.server_helpers import PhasedLatencies, ServerProcess, healthy_stream, solid_jpeg
from vr_recognition.server import protocol as p

CORPUS = Path(__file__).parent / "fuzz_corpus"
VECTORS = Path(__file__).parent / "vectors"
MANIFEST = json.loads((CORPUS / "manifest.json").read_text())
LONG = os.environ.get("VR_RELIABILITY") == "long"
GENERATED = 20_000 if LONG else 1_000
CODES = {c.value for c in p.ErrorCode}


def corpus_message(name: str) -> bytes | str:
    data = (CORPUS / name).read_bytes()
    return data if name.endswith(".bin") else data.decode("utf-8")


def mutated_messages(count: int, seed: int) -> list[bytes | str]:
    """Valid frames and control messages, then broken: truncated, bit-flipped, spliced, retyped."""
    rng = random.Random(seed)
    jpeg = solid_jpeg("red", 64, 48)
    frames = [
        p.encode_frame(p.Frame(1, 2, p.ImageFormat.JPEG, 64, 48, jpeg, gaze=(0.5, 0.5))),
        p.encode_frame(
            p.Frame(3, 4, p.ImageFormat.RGB8, 4, 4, bytes(48), pose=p.Pose((1, 2, 3), (0, 0, 0, 1)))
        ),
        p.encode_frame(p.Frame(5, 6, p.ImageFormat.RGBA8, 2, 2, bytes(16), rows_bottom_up=True)),
    ]
    texts = [
        '{"type":"configure","top_k":2,"budget_ms":50}',
        '{"type":"ping","id":7,"client_time_us":1}',
        '{"type":"configure","smoothing":{"ema_alpha":0.5},"gaze_crop":{"scale":0.5}}',
    ]
    out: list[bytes | str] = []
    for _ in range(count):
        kind = rng.random()
        if kind < 0.7:
            data = bytearray(rng.choice(frames))
            mutation = rng.randrange(5)
            if mutation == 0:
                data = data[: rng.randrange(len(data))]
            elif mutation == 1:
                for _ in range(rng.randint(1, 8)):
                    data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
            elif mutation == 2:  # header fields set to extreme values
                offset, fmt = rng.choice([(4, "<B"), (5, "<B"), (6, "<H"), (8, "<I"), (60, "<B"), (62, "<H"),
                                          (64, "<H"), (68, "<I")])  # fmt: skip
                struct.pack_into(fmt, data, offset, rng.choice([0, 1, 2, 255, 65535 if "H" in fmt else 255]))
            elif mutation == 3:
                data = data[: p.HEADER_SIZE] + bytes(rng.randrange(256) for _ in range(rng.randrange(200)))
            else:
                data = bytes(rng.randrange(256) for _ in range(rng.randrange(120)))
            out.append(bytes(data))
        else:
            text = list(rng.choice(texts))
            for _ in range(rng.randint(1, 4)):
                position = rng.randrange(len(text))
                text[position] = rng.choice('{}[]",:0123456789-.eEtrufalsn\\ \x00\u00e9')
            out.append("".join(text))
    return out


def test_corpus_through_the_decoders_never_raises_anything_else():
    for name in MANIFEST:
        message = corpus_message(name)
        try:
            if isinstance(message, bytes):
                p.decode_frame(message)
            else:
                p.decode_client_message(message)
        except p.ProtocolError as exc:
            assert exc.code.value in CODES


@pytest.fixture
def server(tmp_path):
    model = write_colour_model(tmp_path / "colour.onnx")
    process = ServerProcess(["--model", str(model), "--send-timeout", "30"], tmp_path / "serve.log")
    yield process
    process.stop()


async def attack(url: str, messages: list[bytes | str], window: int = 64) -> list[p.ServerMessage]:
    """Send everything on one stream while reading, at most `window` unanswered messages ahead (a
    flood far beyond that is throttled by the server and eventually dropped by its keepalive);
    return the replies (one expected per message)."""
    replies: list[p.ServerMessage] = []
    ahead = asyncio.Semaphore(window)
    async with connect(url, compression=None, max_size=None) as ws:
        await ws.send(p.encode_client_message(p.ClientHello(settings=p.StreamSettings(budget_ms=60_000))))
        assert isinstance(p.decode_server_message(await ws.recv()), p.ServerHello)

        async def read() -> None:
            while len(replies) < len(messages):
                replies.append(p.decode_server_message(await ws.recv()))
                ahead.release()

        reader = asyncio.create_task(read())
        for message in messages:
            await ahead.acquire()
            await ws.send(message)
        await asyncio.wait_for(reader, 300)
    return replies


def check_reply(reply: p.ServerMessage, expected: str | None = None) -> None:
    if isinstance(reply, p.Result):
        assert reply.status in (p.Status.OK, p.Status.DROPPED_STALE, p.Status.ERROR, p.Status.LATE)
        if reply.status is p.Status.ERROR:
            assert reply.error.code in CODES
            assert reply.error.code != "internal_error", reply
    elif isinstance(reply, p.ErrorMessage):
        assert reply.code in CODES
        assert not reply.fatal
    else:
        assert isinstance(reply, (p.Pong, p.Configured)), reply
    text = p.encode_server_message(reply)
    assert "Traceback" not in text
    if expected is not None and expected.startswith("error:"):
        code = expected.split(":", 1)[1]
        got = reply.error.code if isinstance(reply, p.Result) else getattr(reply, "code", None)
        assert got == code, (expected, reply)
    if expected == "ok":
        assert isinstance(reply, p.Result)
        assert reply.status is p.Status.OK, reply


def attack_in_subprocess(url: str, messages: list[bytes | str], results) -> None:
    """The attacker runs in its own process so it cannot slow the healthy client's event loop."""

    async def run() -> list[p.ServerMessage]:
        results.put("started")  # after the imports, so their CPU burst is not counted as the attack
        return await attack(url, messages)

    replies = asyncio.run(run())
    results.put([p.encode_server_message(r) for r in replies])


def test_corpus_and_generated_messages_against_a_live_server(server):
    names = sorted(MANIFEST)
    corpus = [corpus_message(n) for n in names]
    generated = mutated_messages(GENERATED, seed=2026)
    rounds = 5 if LONG else 1  # quiet and attacked phases alternate, so drift hits both alike
    context = multiprocessing.get_context("spawn")

    async def scenario():
        corpus_replies = []
        for message in corpus:  # one at a time, so each reply belongs to its message
            corpus_replies += await attack(server.url, [message])
        stop, latencies = asyncio.Event(), PhasedLatencies()
        healthy = asyncio.create_task(healthy_stream(server.url, stop, latencies))
        generated_replies: list[str] = []
        attack_seconds = 0.0
        for chunk in np.array_split(np.arange(len(generated)), rounds):
            await asyncio.sleep(20.0 if LONG else 3.0)  # quiet phase
            results = context.Queue()
            messages = [generated[i] for i in chunk]
            attacker = context.Process(target=attack_in_subprocess, args=(server.url, messages, results))
            attacker.start()
            assert await asyncio.to_thread(results.get, True, 60) == "started"
            latencies.phase = "attack"
            began = time.perf_counter()
            generated_replies += await asyncio.to_thread(results.get, True, 900)
            attack_seconds += time.perf_counter() - began
            latencies.phase = "alone"
            await asyncio.to_thread(attacker.join, 30)
        stop.set()
        served = await healthy
        return (
            corpus_replies,
            [p.decode_server_message(t) for t in generated_replies],
            served,
            latencies,
            attack_seconds,
        )

    corpus_replies, generated_replies, served, latencies, attack_seconds = asyncio.run(scenario())
    for name, reply in zip(names, corpus_replies, strict=True):
        check_reply(reply, MANIFEST[name])
    assert len(generated_replies) == len(generated)
    for reply in generated_replies:
        check_reply(reply)
    codes = sorted({r.code for r in generated_replies if isinstance(r, p.ErrorMessage)})
    assert len(codes) >= 5, codes  # the mutator really reaches many rules
    assert served > 10
    log = server.log()
    assert "Traceback" not in log
    assert " ERROR " not in log
    assert server.proc.poll() is None  # still running
    alone, attacked = latencies.samples["alone"], latencies.samples["attack"]
    p99_alone, p99_attack = latencies.p99("alone"), latencies.p99("attack")
    print(
        f"\n[fuzz] {len(generated)} generated + {len(corpus)} corpus messages, 0 crashes; error codes seen: "
        f"{codes}; attack {len(generated) / attack_seconds:.0f} messages/s in {rounds} rounds; healthy "
        f"stream p50/p99 alone {np.percentile(alone, 50):.1f}/{p99_alone:.1f} ms ({len(alone)} frames), "
        f"under attack {np.percentile(attacked, 50):.1f}/{p99_attack:.1f} ms ({len(attacked)} frames), "
        f"p99 ratio {p99_attack / p99_alone:.2f}"
    )


def test_coverage_guided_fuzzing_of_every_parser(tmp_path):
    """atheris (libFuzzer) mutates, guided by coverage of our parsers, starting from the committed
    corpus and the golden vectors; any exception other than a documented ProtocolError fails it."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    seeds = [*CORPUS.glob("*.bin"), *CORPUS.glob("*.txt"), *VECTORS.glob("*.bin"), *VECTORS.glob("*.txt")]
    for number, seed in enumerate(seeds):
        data = seed.read_bytes()
        for target in range(4):  # the first byte picks the parser (tests/fuzz_atheris.py)
            (corpus / f"{number}-{target}").write_bytes(bytes([target]) + data)
    seconds = 300 if LONG else 15
    run = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "fuzz_atheris.py"), str(corpus),
         f"-max_total_time={seconds}", "-max_len=65536", "-timeout=10", "-rss_limit_mb=2048",
         f"-artifact_prefix={tmp_path}/", "-print_final_stats=1"],
        cwd=Path(__file__).parent.parent, capture_output=True, text=True, timeout=seconds + 120,
    )  # fmt: skip
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-4000:]
    runs = int(re.search(r"stat::number_of_executed_units:\s+(\d+)", output).group(1))
    coverage = re.findall(r"cov: (\d+)", output) or ["?"]
    print(
        f"\n[atheris] {runs} inputs in {seconds} s from {len(seeds) * 4} seeds, 0 crashes; "
        f"coverage {coverage[0]} -> {coverage[-1]} edges"
    )
    assert runs > 1000
    assert not list(tmp_path.glob("crash-*"))
