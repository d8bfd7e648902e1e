"""Each console script exists and answers --help; vr-serve explains a missing model and a broken
onnxruntime install instead of failing obscurely; server modules never import torch."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from vr_recognition.server import cli as serve_cli

SCRIPTS = ("train-vr", "vr-serve", "vr-bench", "vr-sim")
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("script", SCRIPTS)
def test_console_script_help(script: str):
    path = shutil.which(script, path=str(BIN)) or shutil.which(script)
    assert path, f"{script} is not installed as a console script"
    done = subprocess.run([path, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert f"usage: {script}" in done.stdout


def test_vr_serve_without_a_model_says_which_command_makes_one(tmp_path: Path):
    code = serve_cli.main(["--models-dir", str(tmp_path)])
    assert code == 2
    done = subprocess.run(
        [sys.executable, "-m", "vr_recognition.server.cli", "--models-dir", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert "No model found" in done.stderr
    assert "train-vr" in done.stderr
    assert "Traceback" not in done.stderr


def test_default_model_lookup(tmp_path: Path):
    (tmp_path / "b.onnx").write_bytes(b"x")
    assert serve_cli.find_default_model(tmp_path) == tmp_path / "b.onnx"
    (tmp_path / "a.onnx").write_bytes(b"x")
    with pytest.raises(serve_cli.SetupError, match="several models"):
        serve_cli.find_default_model(tmp_path)
    (tmp_path / "default.onnx").write_bytes(b"x")
    assert serve_cli.find_default_model(tmp_path) == tmp_path / "default.onnx"


def test_both_onnxruntime_flavours_are_refused(monkeypatch: pytest.MonkeyPatch):
    real = serve_cli.metadata.distribution

    def both_installed(name: str):
        if name == "onnxruntime-gpu":
            return real("onnxruntime")
        return real(name)

    monkeypatch.setattr(serve_cli.metadata, "distribution", both_installed)
    with pytest.raises(serve_cli.SetupError, match="overwrite each other"):
        serve_cli.check_single_onnxruntime()


def test_server_modules_never_import_torch():
    code = (
        "import sys, server, server.protocol, server.client, server.cli, training.cli, bench.cli\n"
        "heavy = sorted(m for m in ('torch', 'torchvision', 'panda3d') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
