"""A virtual environment per peer, created on demand from pinned requirements and cached.

The cache folder (`.venv-peers/` by default) holds one venv per peer and requirement set, named
`NAME-HASH` after the exact requirement list and Python version, so changing a pin makes a new
venv and never mutates one in use. A venv counts only once its `.complete` marker is written; a
half-made one (an interrupted install) is removed and made again. The folder ignores itself in git.

This project's own code is not installed into the venv: `vr_recognition/server` and
`vr_recognition/bench` in its site-packages are links to the very folders vr-bench imports, so a
peer always runs the checkout's current preprocessing and driver.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from vr_recognition.bench.errors import BenchError
from vr_recognition.bench.peers.specs import PeerSpec

DEFAULT_DIR = Path(".venv-peers")
ENV_DIR = "VR_BENCH_PEERS_DIR"
INSTALL_TIMEOUT_S = 1800


class PeerInstallError(BenchError):
    """A peer's venv could not be created; the message carries pip's output."""


@dataclass
class PeerVenv:
    path: Path
    python: Path
    requirements: list[str]
    created_s: float | None  # seconds spent creating it now; None when it came from the cache


def peers_dir(given: Path | None = None) -> Path:
    return Path(given or os.environ.get(ENV_DIR) or DEFAULT_DIR)


def requirements_for(spec: PeerSpec) -> list[str]:
    """The spec's pins plus the host's own versions of the distributions it follows."""
    pins = list(spec.requirements)
    named = {r.split("==")[0].lower() for r in pins}
    for name in spec.follow_host:
        dist = host_distribution(name)
        if dist is not None and dist[0].lower() not in named:
            pins.append(f"{dist[0]}=={dist[1]}")
    return pins


def host_distribution(name: str) -> tuple[str, str] | None:
    """(distribution, version) vr-bench runs for `name`; onnxruntime may be onnxruntime-gpu."""
    candidates = ("onnxruntime-gpu", "onnxruntime") if name == "onnxruntime" else (name,)
    for candidate in candidates:
        try:
            return candidate, metadata.version(candidate)
        except metadata.PackageNotFoundError:
            continue
    return None


def venv_key(requirements: list[str]) -> str:
    text = json.dumps([sys.version_info[:2], sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def ensure_venv(spec: PeerSpec, root: Path | None = None, log=print) -> PeerVenv:
    """The peer's venv, created when missing (minutes on a cold pip cache), else reused."""
    if sys.version_info >= (3, 14) and spec.name == "triton":
        raise PeerInstallError("PyTriton 0.7 ships Python backend stubs for Python 3.8-3.13 only")
    root = peers_dir(root).resolve()
    root.mkdir(parents=True, exist_ok=True)
    ignore = root / ".gitignore"
    if not ignore.exists():
        ignore.write_text("# made by vr-bench --peers: cached peer venvs\n*\n")
    requirements = requirements_for(spec)
    path = root / f"{spec.name}-{venv_key(requirements)}"
    python = path / "bin" / "python"
    with _locked(root / f".{spec.name}.lock"):
        created = None
        if not (path / ".complete").is_file():
            if path.exists():
                shutil.rmtree(path)
            log(f"vr-bench: creating the {spec.name} venv at {path} ({' '.join(requirements)}) ...")
            start = time.perf_counter()
            _create(path, requirements)
            created = time.perf_counter() - start
            (path / ".complete").write_text(json.dumps({"requirements": requirements}) + "\n")
            log(f"vr-bench: {spec.name} venv ready in {created:.0f} s")
        link_project(path)
    return PeerVenv(path, python, requirements, created)


def _create(path: Path, requirements: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    base = getattr(sys, "_base_executable", None) or sys.executable
    steps = [
        [base, "-m", "venv", str(path)],
        [str(path / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
         "--no-input", *requirements],
    ]  # fmt: skip
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S, env=env)
        except (OSError, subprocess.TimeoutExpired) as exc:
            shutil.rmtree(path, ignore_errors=True)
            raise PeerInstallError(f"{' '.join(step[:4])} ...: {exc}") from None
        if done.returncode != 0:
            shutil.rmtree(path, ignore_errors=True)
            output = (done.stdout + done.stderr).strip()[-3000:]
            raise PeerInstallError(f"{' '.join(step[:6])} ... failed ({done.returncode}):\n{output}")


def site_packages(venv: Path) -> Path:
    found = sorted(venv.glob("lib/python*/site-packages"))
    if not found:
        raise PeerInstallError(f"{venv} has no lib/python*/site-packages")
    return found[0]


def link_project(venv: Path) -> None:
    """Make `vr_recognition.server` and `vr_recognition.bench` importable in the venv as links to the
    folders this process imports them from (an editable checkout or an installed copy alike)."""
    import vr_recognition.bench
    import vr_recognition.server

    namespace = site_packages(venv) / "vr_recognition"
    namespace.mkdir(exist_ok=True)
    for module in (vr_recognition.server, vr_recognition.bench):
        source = Path(module.__file__).resolve().parent
        link = namespace / module.__name__.rsplit(".", 1)[1]
        if link.is_symlink() and link.resolve() == source:
            continue
        if link.is_symlink() or link.is_file():
            link.unlink()
        elif link.exists():
            shutil.rmtree(link)
        link.symlink_to(source, target_is_directory=True)


@contextlib.contextmanager
def _locked(path: Path):
    """One vr-bench at a time builds a given peer's venv (two test runs, two terminals)."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def base_libdir(python: Path) -> str | None:
    """The folder holding the venv's libpython, when its interpreter is a shared build.

    tritonserver's Python backend stub links libpython3.X.so dynamically; without this folder on
    LD_LIBRARY_PATH it can pick up another build of the same version (e.g. the distribution's)
    whose C modules disagree with the interpreter's standard library."""
    probe = "import sysconfig as s; v = s.get_config_var; print(v('LIBDIR') if v('Py_ENABLE_SHARED') else '')"
    try:
        done = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None


def triton_env(python: Path) -> dict[str, str]:
    """What a process running tritonserver from this venv needs in its environment (see base_libdir)."""
    libdir = base_libdir(python)
    if not libdir:
        return {}
    return {"LD_LIBRARY_PATH": ":".join(p for p in (libdir, os.environ.get("LD_LIBRARY_PATH", "")) if p)}
