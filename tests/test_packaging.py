"""`pip install .[serve]` into an empty venv gives a working server install without torch.

A serving host must stay small: this installs the serve extra exactly as a user would (a real
venv, a real non-editable build) and fails if torch, torchvision or CUDA wheels come along.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "server", "training", "sim", "bench")
FORBIDDEN = ("torch", "torchvision", "panda3d", "onnxruntime-gpu")
GENERIC_NAMES = ("server", "training", "bench", "sim")


def folder_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink()) / 2**20


@pytest.mark.slow
def test_serve_extra_installs_without_torch(tmp_path: Path):
    source = tmp_path / "src"
    source.mkdir()
    for name in SOURCES:
        item = ROOT / name
        if item.is_dir():
            shutil.copytree(item, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(item, source / name)
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", f"{source}[serve]"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze"], capture_output=True, text=True, env=env
    )
    names = {line.split("==")[0].lower().replace("_", "-") for line in listed.stdout.splitlines()}
    assert not names & set(FORBIDDEN), f"serve extra pulled in {sorted(names & set(FORBIDDEN))}"
    assert not [n for n in names if n.startswith("nvidia-")], "serve extra pulled in CUDA wheels"
    assert {"onnxruntime", "websockets", "numpy", "opencv-python-headless", "prometheus-client"} <= names

    check = subprocess.run(
        [
            str(python),
            "-c",
            "import vr_recognition.server.protocol, vr_recognition.server.client, vr_recognition.server.cli,"
            " onnxruntime, cv2",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert check.returncode == 0, check.stderr
    # Nothing generic lands at the top of site-packages: a user's own `server.py` or `training/`
    # must not collide with (or be shadowed by) this project.
    (site_packages,) = env_dir.glob("lib/python*/site-packages")
    top_level = {path.stem for path in site_packages.iterdir() if path.suffix in ("", ".py")}
    assert not top_level & set(GENERIC_NAMES), f"generic top-level modules: {top_level & set(GENERIC_NAMES)}"
    assert (site_packages / "vr_recognition" / "server" / "protocol.py").is_file()
    probe = subprocess.run(
        [str(python), "-c", "import importlib.util as u; print([n for n in "
         f"{list(GENERIC_NAMES)!r} if u.find_spec(n)])"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert probe.stdout.strip() == "[]", probe.stdout + probe.stderr
    serve = subprocess.run(
        [str(env_dir / "bin" / "vr-serve"), "--models-dir", str(tmp_path / "none")],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert serve.returncode == 2
    assert "No model found" in serve.stderr
    size = folder_mb(env_dir)
    sys.stderr.write(f"\n[serve-extra venv: {size:.0f} MB, {len(names)} packages]\n")
    assert size < 600, f"serve venv is {size:.0f} MB"
