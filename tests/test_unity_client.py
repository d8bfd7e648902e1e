"""The Unity client package (unity_client/) outside Unity: its plain C# core is compiled with Mono's mcs
(C# 7.2, Unity's floor) together with a small C# test program, which then

- decodes every golden vector in tests/vectors byte for byte (and re-encodes the "encodes_back" ones),
- streams real JPEGs to a real `vr-serve` on loopback (token required) and checks the predictions,
- keeps streaming at a high rate to a deliberately slow `vr-serve` (a fixed 30 ms per frame, so slow on
  any CPU) and checks that the client drops stale frames itself while every frame it did send is answered,
- writes a capture session that training/capture_format.py must read back,
- receives every close code the server sends, each with its reason (unity_client/Tests/Core/CloseTests.cs):
  1001 and 4013 `shutting_down` (SIGTERM), 1002 (no common version), 1007 (invalid UTF-8), 1008 (no hello
  in time; not reading), 1009 (over --max-message-mb), 1011 (an injected server fault), 4013
  `too_many_streams` (--max-streams 1). Mono's ClientWebSocket cannot receive 1012-1014, which is why the
  server sends none of them.

The Unity-facing scripts (Runtime/Unity, Samples~) are compiled against minimal stubs of the UnityEngine
API they use (unity_client/Tests/Stubs), so a renamed member or a typo fails here too.
Needs Debian's mono-mcs (installed on demand, tests/debian.py; under CI=true a missing compiler fails).
"""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.client_harness import (
    close_test_servers,
    closes_received,
    documented_closes,
)
from tests.debian import require_debian_package
from tests.server_helpers import COLOURS_BGR, solid_jpeg
from vr_recognition.server import protocol as p
from vr_recognition.training.capture_format import read_session

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "unity_client"
VECTORS = ROOT / "tests" / "vectors"
TOKEN = "unity-test-token"
MCS = ["-langversion:7.2", "-nologo", "-r:System.dll", "-r:System.Core.dll"]


def sources(*folders: str) -> list[str]:
    found = sorted(str(p) for folder in folders for p in (PACKAGE / folder).rglob("*.cs"))
    assert found, f"no C# sources under {folders}"
    return found


@pytest.fixture(scope="module")
def mono() -> tuple[str, str]:
    mcs = require_debian_package("mcs", "mono-mcs")
    runtime = require_debian_package("mono", "mono-runtime")
    return mcs, runtime


def compile_cs(mcs: str, out: Path, files: list[str], *extra: str) -> None:
    proc = subprocess.run(
        [mcs, *MCS, *extra, f"-out:{out}", *files], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, f"mcs failed:\n{proc.stdout}\n{proc.stderr}"


def test_core_has_no_unity_reference():
    for path in sources("Runtime/Core"):
        text = Path(path).read_text()
        assert "UnityEngine" not in text.replace("no UnityEngine", ""), f"{path} must not use UnityEngine"
    asmdef = json.loads((PACKAGE / "Runtime/Core/VrRecognition.Core.asmdef").read_text())
    assert asmdef["noEngineReferences"] is True


def test_package_manifest_and_meta_files():
    manifest = json.loads((PACKAGE / "package.json").read_text())
    assert manifest["name"].startswith("com.")
    assert manifest["unity"]
    assert any(s["path"].startswith("Samples~/") for s in manifest["samples"])
    # Unity ignores assets without .meta files in an immutable (git) package: every file and folder
    # outside the ~ folders needs one, with a unique guid.
    guids = {}
    for path in sorted(PACKAGE.rglob("*")):
        rel = path.relative_to(PACKAGE)
        if path.suffix == ".meta" or any(part.endswith("~") or part.startswith(".") for part in rel.parts):
            continue
        meta = path.with_name(path.name + ".meta")
        assert meta.is_file(), f"{rel} has no .meta file"
        guid = next(
            line.split(":")[1].strip() for line in meta.read_text().splitlines() if line.startswith("guid:")
        )
        assert len(guid) == 32, f"{rel}: bad guid"
        assert guid not in guids, f"{rel}: guid also used by {guids.get(guid)}"
        guids[guid] = rel


def test_unity_scripts_compile_against_stubs(mono, tmp_path):
    mcs, _ = mono
    files = sources("Runtime/Core", "Runtime/Unity", "Samples~", "Tests/Stubs")
    compile_cs(mcs, tmp_path / "UnityScripts.dll", files, "-target:library", "-nowarn:0649,0414")


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    # The fast server keeps the default hello timeout (10 s), which the C# client's 1008 check waits out.
    with close_test_servers(tmp_path_factory.mktemp("unity-servers"), TOKEN, keepalive_s=4) as started:
        yield started


def test_core_against_vectors_and_live_servers(mono, servers, tmp_path):
    mcs, runtime = mono
    fast, slow, limits, fault = (servers[name] for name in ("fast", "slow", "limits", "fault"))
    exe = tmp_path / "CoreTests.exe"
    compile_cs(mcs, exe, sources("Runtime/Core", "Tests/Core"), "-warnaserror")

    frames = tmp_path / "frames"
    frames.mkdir()
    for colour in COLOURS_BGR:
        jpeg = solid_jpeg(colour, width=64, height=48)
        decoded = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert decoded.shape == (48, 64, 3)
        (frames / f"{colour}.jpg").write_bytes(jpeg)
    capture = tmp_path / "capture" / "unity-session"

    args = [
        *(runtime, "--debug", str(exe), "--vectors", str(VECTORS), "--frames", str(frames)),
        *("--server", fast.url, "--token", TOKEN, "--slow-server", slow.url, "--capture-out", str(capture)),
        *("--limits-server", limits.url),
        *("--fault-server", fault.url, "--fault-server-pid", str(fault.proc.pid)),
    ]
    proc = subprocess.run(args, capture_output=True, text=True, timeout=300)
    report = proc.stdout + proc.stderr
    print(proc.stdout)  # per-check timings and the slow-server counters, shown with pytest -s
    failed = [line for line in proc.stdout.splitlines() if line.startswith("FAIL")]
    assert not failed, report
    assert proc.returncode == 0, report
    passed = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("ok ")}
    vector_names = {f"vector_{path.stem}" for path in VECTORS.glob("*.json")}
    assert vector_names <= passed, f"vectors not checked: {sorted(vector_names - passed)}"
    for name in ("live_colour_predictions", "live_wrong_token_reconnects_with_backoff",
                 "slow_server_client_drops_stale", "capture_session_writer",
                 "live_client_refuses_frame_over_max_message_bytes"):  # fmt: skip
        assert name in passed, report

    # Every close code the server defines reached the C# client under Mono, each with a documented reason.
    received = closes_received(proc.stdout)
    documented = documented_closes()
    assert received == documented, f"missed: {documented - received}; undocumented: {received - documented}"
    sent_by_server = {int(code) for code in p.CloseCode if code != p.CloseCode.NORMAL}
    assert sent_by_server == {code for code, _ in received}, f"server codes {sorted(sent_by_server)}"
    assert not any(1012 <= code <= 1014 for code in sent_by_server), (
        "Mono's ClientWebSocket cannot receive them"
    )
    assert fault.proc.wait(timeout=30) == 0, "the fault server stopped cleanly on SIGTERM"

    # The wrong-token client's attempts reached the server and were refused as unauthorized.
    metrics = (
        urllib.request.urlopen(fast.url.replace("ws://", "http://") + "/metrics", timeout=10).read().decode()
    )
    refused = re.search(r'vr_connections_refused_total\{code="unauthorized"\} ([\d.]+)', metrics)
    assert refused, metrics
    assert float(refused.group(1)) >= 3, metrics

    session = read_session(capture)
    assert session.info.classes == ("red", "green", "blue")
    assert (session.info.width, session.info.height) == (64, 48)
    assert [f.label for f in session.frames] == ["red", "green", "blue"]
    assert [f.split for f in session.frames] == ["train", None, "val"]
    assert session.frames[0].pose.position == (0.12, 1.61, -0.85)
    assert session.frames[0].gaze == (0.52, 0.47)
    assert session.frames[1].pose is None
    assert session.frames[1].timestamp_s == pytest.approx(0.0111)
    for frame in session.frames:
        image = cv2.imread(str(session.image_path(frame)))
        assert image is not None
        assert image.shape == (48, 64, 3)
