"""What the client-package tests share (the Unreal plugin's C++ core, the web client): real `vr-serve`
processes on loopback, the frames they classify, the documented close codes, and the tools a test needs
(Debian packages installed on demand; see tests/debian.py).

Not a test module: tests/test_unreal_client.py and tests/test_web_client.py import it.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.onnx_models import write_colour_model
from tests.server_helpers import COLOURS_BGR, ServerProcess, solid_jpeg
from vr_recognition.bench.spawn import SpawnedServer
from vr_recognition.server import protocol as p

ROOT = Path(__file__).resolve().parent.parent
VECTORS = ROOT / "tests" / "vectors"

# vr-serve with one injected fault: answering a ping raises inside the connection handler, which the
# server must turn into close 1011 `internal_error`. No client message causes an internal error by itself,
# so this is the only way to show a client that close.
FAULTY_VR_SERVE = """
import sys
from vr_recognition.server import cli, protocol

encode = protocol.encode_server_message


def encode_or_fail(message):
    if isinstance(message, protocol.Pong):
        raise RuntimeError("injected fault: the server fails while answering a ping")
    return encode(message)


protocol.encode_server_message = encode_or_fail
sys.exit(cli.main(sys.argv[1:]))
"""


def faulty_server(args: list[str], log_path: Path) -> SpawnedServer:
    """`vr-serve` (args as for the CLI) whose answer to a ping fails (close 1011)."""
    command = [sys.executable, "-c", FAULTY_VR_SERVE, "--port", "0", *args]
    return SpawnedServer(command, "vr-serve (fault)", log_path=log_path)


@contextlib.contextmanager
def running(starts: dict[str, Callable[[], SpawnedServer]]) -> Iterator[dict[str, SpawnedServer]]:
    """Start each server in turn; stop every one that started, whatever happens."""
    started: dict[str, SpawnedServer] = {}
    try:
        for name, start in starts.items():
            started[name] = start()
        yield started
    finally:
        for server in started.values():
            server.stop()


def free_port() -> int:
    """A loopback port nothing listens on now (for a server that must come back on the same port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_colour_frames(folder: Path, width: int = 64, height: int = 48) -> Path:
    """red.jpg, green.jpg and blue.jpg, solid colours the colour model classifies (tests/onnx_models.py)."""
    folder.mkdir(parents=True, exist_ok=True)
    for colour in COLOURS_BGR:
        jpeg = solid_jpeg(colour, width=width, height=height)
        decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (height, width, 3)
        (folder / f"{colour}.jpg").write_bytes(jpeg)
    return folder


def documented_closes() -> set[tuple[int, str]]:
    """(code, reason) for every close the server makes, from the table in docs/protocol.md 5.2."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text[text.index("### 5.2 Close codes") : text.index("### 5.3")]
    pairs = {
        (int(code), reason)
        for code, cell in re.findall(r"^\|\s*(\d{4})\s*\|([^|]*)\|", section, re.MULTILINE)
        for reason in re.findall(r"`(\w+)`", cell)
    }
    assert len(pairs) >= 9, section
    return pairs


def closes_received(output: str) -> set[tuple[int, str]]:
    """The `close received: CODE REASON (who)` lines a client test program printed."""
    pattern = r"^close received: (\d+) (\w+)"
    return {(int(code), reason) for code, reason in re.findall(pattern, output, re.MULTILINE)}


def vector_stems() -> set[str]:
    """Every vector file in tests/vectors (gaze_crop_rect.json, a list of cases, included when present)."""
    return {path.stem for path in VECTORS.glob("*.json")}


def ensure_debian_file(path: str, package: str) -> Path | None:
    """A file from a Debian package (a header-only library has no command to look for), installed with
    apt-get when missing and possible; None when it cannot be had here."""
    found = Path(path)
    if not found.exists() and shutil.which("apt-get") and os.geteuid() == 0:
        for step in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
            subprocess.run(step, check=False, capture_output=True, timeout=900)
    return found if found.exists() else None


def require_debian_file(path: str, package: str) -> Path:
    """ensure_debian_file, or skip the test (which CI=true turns into a failure, tests/conftest.py)."""
    found = ensure_debian_file(path, package)
    if found is None:
        pytest.skip(f"needs {path} from Debian package {package}, which could not be installed here")
    return found


def mutated_messages(seed: int = 17, count: int = 2000) -> list[tuple[str, bytes]]:
    """("f", frame) and ("c", client text) cases made from the golden vectors by random damage: bytes of
    the header overwritten, truncated or extended, floats set to NaN or 1.0; fields appended with values of
    the wrong type or range, lone surrogates, repeated keys, deep nesting. Deterministic for a seed."""
    rng = random.Random(seed)
    frames = [path.read_bytes() for path in sorted(VECTORS.glob("*.bin"))]
    texts = [
        path.read_bytes()
        for path in sorted(VECTORS.glob("*.txt"))
        if path.stem.startswith(("client_", "bad_"))
    ]
    values = ["null", "2.0", "0", "-1", "1e400", "true", '"x"', "{}", "[]", '"\\ud800"', '"\\ud83d\\ude00"']
    values += ["100000", "2.5", "9007199254740993", '{"ema_alpha":0.5}', '{"scale":0}', "[" * 40 + "]" * 40]
    keys = ["top_k", "budget_ms", "fps", "smoothing", "gaze_crop", "protocol", "min_protocol", "id"]
    keys += ["client_time_us", "client", "type", "x"]
    words = [
        b"\x00\x00\xc0\x7f",
        b"\x00\x00\x80\x3f",
        b"\xff\xff\xff\xff",
        b"\x00\x00\x00\x00",
        b"\x48\x00\x00\x00",
    ]
    cases: list[tuple[str, bytes]] = []
    for _ in range(count):
        data = bytearray(rng.choice(frames))
        for _ in range(rng.randint(1, 4)):
            roll = rng.random()
            if roll < 0.5 and data:
                data[rng.randrange(min(len(data), 80))] = rng.randrange(256)
            elif roll < 0.7:
                data = data[: rng.randrange(len(data) + 1)]
            elif roll < 0.85:
                data += bytes(rng.randrange(4))
            elif len(data) >= 72:
                at = rng.randrange(0, 72, 4)
                data[at : at + 4] = rng.choice(words)
        cases.append(("f", bytes(data)))
    for _ in range(count):
        text = rng.choice(texts).decode("utf-8", "replace").rstrip()
        for _ in range(rng.randint(1, 2)):
            if text.endswith("}"):
                text = f'{text[:-1]},"{rng.choice(keys)}":{rng.choice(values)}}}'
        cases.append(("c", text.encode()))
    return cases


def server_decodes(cases: list[tuple[str, bytes]]) -> list[str]:
    """What the server's codec (server/protocol.py) makes of each case, in the form the client test
    programs print: "ok", or the error code (and for frames the frame id it reports, or None)."""
    results = []
    for kind, data in cases:
        try:
            (p.decode_frame if kind == "f" else p.decode_client_message)(data)
            results.append("ok")
        except p.ProtocolError as error:
            results.append(f"{error.code.value} {error.frame_id}" if kind == "f" else error.code.value)
    return results


def write_cases(cases: list[tuple[str, bytes]], path: Path) -> Path:
    path.write_text("".join(f"{kind} {data.hex() or '-'}\n" for kind, data in cases))
    return path


def check_decodes_like_the_server(program: list[str], tmp_path: Path) -> list[str]:
    """Run a client's decoder (`program` + the cases file) over damaged messages made from the vectors
    and assert it names, for the same bytes, what the server's codec names; returns the server's
    answers."""
    cases = mutated_messages()
    proc = subprocess.run(
        [*program, str(write_cases(cases, tmp_path / "cases.txt"))],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    got = [
        line.removeprefix("decoded: ") for line in proc.stdout.splitlines() if line.startswith("decoded: ")
    ]
    want = server_decodes(cases)
    assert len(got) == len(want)
    differ = [(kind, data[:120], w, g) for (kind, data), w, g in zip(cases, want, got, strict=True) if w != g]
    assert not differ, differ[:10]
    return want


@contextlib.contextmanager
def close_test_servers(
    tmp: Path, token: str, *, keepalive_s: float, fast_args: tuple[str, ...] = ()
) -> Iterator[dict[str, SpawnedServer]]:
    """The four servers a client package's live tests need, on the colour model:
    "fast" (token required), "slow" (30 ms per frame), "limits" (one stream, 128 KiB messages: 4013 at
    hello, 1009) and "fault" (pongs raise: 1011; a client not reading misses the keepalive: 1008; the
    test's SIGTERM: 1001). Those that hold a hello back on purpose get a long hello timeout, so that a
    slow machine does not turn the hold into 1008."""
    model = write_colour_model(tmp / "colour.onnx")
    common = ["--model", str(model), "--threads", "1"]
    held = ["--hello-timeout", "60"]
    starts = {
        "fast": lambda: ServerProcess([*common, "--token", token, *fast_args], tmp / "fast.log"),
        "slow": lambda: ServerProcess(
            [*common, "--max-batch", "1"], tmp / "slow.log", seconds_per_batch=0.03
        ),
        "limits": lambda: ServerProcess(
            [*common, *held, "--max-streams", "1", "--max-message-mb", "0.125"], tmp / "limits.log"
        ),
        "fault": lambda: faulty_server([*common, *held, "--keepalive", str(keepalive_s)], tmp / "fault.log"),
    }
    with running(starts) as started:
        yield started
