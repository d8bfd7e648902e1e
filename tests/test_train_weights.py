"""`--weights imagenet` for torchvision arches: the file in the torch hub cache is used as it is, a missing
one is downloaded there through torch.hub, and without a network the run stops with one message naming
the file, the URL and the alternatives. Offline throughout: the proxies point at a closed local port, so
these tests behave the same on a machine with internet."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest
import torch
import torchvision

from tests.train_helpers import write_imagefolder
from vr_recognition.training import backbones
from vr_recognition.training.backbones import build_backbone
from vr_recognition.training.errors import WeightsUnavailable

URL = "https://download.pytorch.org/models/resnet18-f37072fd.pth"  # torchvision's ResNet18 IMAGENET1K_V1
FILE_NAME = "resnet18-f37072fd.pth"
PROXY_VARIABLES = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY")


def closed_port() -> int:
    """A local port nothing listens on: a connection to it is refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def offline_environment(torch_home: Path) -> dict[str, str]:
    """TORCH_HOME at `torch_home`; every proxy at a closed port and none bypassed, so no request leaves."""
    proxy = f"http://127.0.0.1:{closed_port()}"
    return {
        "TORCH_HOME": str(torch_home),
        "no_proxy": "",
        "NO_PROXY": "",
        **dict.fromkeys(PROXY_VARIABLES, proxy),
    }


@pytest.fixture
def offline_torch_home(tmp_path, monkeypatch) -> Path:
    """This process offline with its torch hub cache in tmp_path (urllib rebuilds its opener, so it
    reads the proxies set here; torch.hub reads TORCH_HOME at each call unless set_dir was used)."""
    for name, value in offline_environment(tmp_path).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(urllib.request, "_opener", None)
    assert Path(torch.hub.get_dir()) == tmp_path / "hub", "torch.hub.set_dir was called earlier"
    return tmp_path


def test_torchvision_names_the_file_and_url_these_tests_expect():
    assert torchvision.models.ResNet18_Weights.IMAGENET1K_V1.url == URL


def test_a_cached_file_is_loaded_as_it_is_without_a_hash_check(offline_torch_home):
    state = torchvision.models.resnet18(weights=None).state_dict()
    state["layer3.0.conv1.weight"].fill_(0.25)  # the file's content no longer matches the hash in its name
    checkpoints = offline_torch_home / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.save(state, checkpoints / FILE_NAME)

    backbone = build_backbone("resnet18", 5, "imagenet")

    assert torch.all(backbone.module.layer3[0].conv1.weight == 0.25)
    assert backbone.module.fc.out_features == 5  # a fresh head for the dataset's classes
    assert backbone.weights == "imagenet (torchvision resnet18 IMAGENET1K_V1)"
    assert sorted(path.name for path in checkpoints.iterdir()) == [FILE_NAME]


def test_offline_the_error_names_the_file_the_url_and_the_alternatives(offline_torch_home):
    started = time.monotonic()
    with pytest.raises(WeightsUnavailable) as raised:
        build_backbone("resnet18", 5, "imagenet")
    message = str(raised.value)
    expected = offline_torch_home / "hub" / "checkpoints" / FILE_NAME
    for part in (str(expected), URL, "TORCH_HOME", "--weights none", "--weights PATH", "efficientnet_lite0"):
        assert part in message
    assert "\n" not in message
    assert time.monotonic() - started < 10
    assert list(expected.parent.iterdir()) == []  # no partial download left behind
    assert socket.getdefaulttimeout() is None  # the download's timeout does not outlive it


def test_an_unreadable_cached_file_is_named_with_how_to_replace_it(offline_torch_home):
    cached = offline_torch_home / "hub" / "checkpoints" / FILE_NAME
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"<html>captive portal</html>")
    with pytest.raises(WeightsUnavailable, match=rf"{cached}.*delete it to download"):
        build_backbone("resnet18", 5, "imagenet")


class _Serve(http.server.BaseHTTPRequestHandler):
    """GET answers the server's `body`; with `cut`, only its first half, then the connection closes."""

    def do_GET(self):
        body = self.server.body
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2] if self.server.cut else body)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server(monkeypatch):
    """An HTTP server on 127.0.0.1 that urllib reaches directly whatever proxies this machine sets."""
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(urllib.request, "_opener", None)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Serve)
    server.body, server.cut = b"", False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_a_download_lands_in_the_cache_only_when_complete(local_server, tmp_path):
    """urllib does not notice a body shorter than its Content-Length; the SHA-256 prefix in torchvision's
    file names does, and torch.hub then deletes its `.partial` file instead of moving it into place."""
    local_server.body = os.urandom(50_000)
    name = f"net-{hashlib.sha256(local_server.body).hexdigest()[:8]}.pth"
    url = f"http://127.0.0.1:{local_server.server_address[1]}/models/{name}"

    local_server.cut = True
    with pytest.raises(WeightsUnavailable, match=r"incomplete or corrupt.*--weights none"):
        backbones._download("net", url, tmp_path / "cut" / name)
    assert list((tmp_path / "cut").iterdir()) == []

    local_server.cut = False
    backbones._download("net", url, tmp_path / "whole" / name)
    assert (tmp_path / "whole" / name).read_bytes() == local_server.body
    assert [path.name for path in (tmp_path / "whole").iterdir()] == [name]


def test_train_vr_offline_stops_with_one_message_and_no_traceback(tmp_path):
    data = write_imagefolder(tmp_path / "data", per_class=3, classes=("circle", "square"))
    torch_home = tmp_path / "torch"
    train_vr = Path(sys.executable).with_name("train-vr")
    command = [str(train_vr)] if train_vr.is_file() else [sys.executable, "-m", "vr_recognition.training.cli"]
    arguments = ["--data", str(data), "--out", str(tmp_path / "run"), "--arch", "resnet18"]
    done = subprocess.run(
        [*command, *arguments, "--weights", "imagenet", "--epochs", "1", "--device", "cpu"],
        env={**os.environ, **offline_environment(torch_home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    expected = torch_home / "hub" / "checkpoints" / FILE_NAME
    [error] = [line for line in done.stderr.splitlines() if line.startswith("train-vr: ")]
    assert str(expected) in error
    assert URL in error
    assert "--weights none" in error
    assert not expected.exists()
    assert not (tmp_path / "run" / "last.pt").exists()  # the same command runs once the network is back
