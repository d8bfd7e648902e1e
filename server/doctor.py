"""`vr-serve --self-test`: is this host really serving on the execution provider it was asked for?

onnxruntime-gpu falls back to the CPU without an error when the CUDA, cuDNN or TensorRT libraries
are missing, so a GPU host can serve at CPU speed while every config file says GPU. The self-test
prints, in order:

1. the onnxruntime distribution(s) installed and the CUDA version onnxruntime-gpu was built for;
2. the execution providers this onnxruntime offers (`get_available_providers()`);
3. the NVIDIA driver and GPU seen, and each library the CUDA and TensorRT providers load, found (with
   its path) or missing, with the exact command that installs it;
4. the TensorRT engine cache: where it is (VR_SERVE_CACHE, else ~/.cache/vr-serve), whether it is
   writable, what it holds;
5. the providers the served model's session really runs (`session.get_providers()`), loaded exactly
   as vr-serve loads it (server.inference.InferenceModel);
6. a short latency test of that session at batch 1 and at --max-batch.

Exit status: 0 when the provider asked for (--providers; with `auto`, a GPU provider whenever an
NVIDIA GPU is visible) is the one that runs; 1 when it is not; 2 when there is nothing to test (no
model, both onnxruntime flavours installed). The CUDA and cuDNN wheels that onnxruntime-gpu's extras
name are loaded with `onnxruntime.preload_dlls()` before the session is made, as vr-serve should.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

ORT_DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu")
GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
LATENCY_SECONDS = 1.5  # per batch size, after warm-up
LATENCY_MAX_RUNS = 50


@dataclass
class LibraryCheck:
    group: str  # "NVIDIA driver", "CUDA", "cuDNN", "TensorRT"
    soname: str
    path: str | None  # where it was loaded from; None: missing


@dataclass
class Finding:
    ok: bool
    text: str


@dataclass
class Report:
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)

    def section(self, title: str) -> None:
        self.lines.append(f"\n{title}")

    def item(self, text: str, ok: bool | None = None) -> None:
        mark = {True: "ok  ", False: "FAIL", None: "    "}[ok]
        self.lines.append(f"  {mark} {text}")

    def fix(self, text: str) -> None:
        if text not in self.fixes:
            self.fixes.append(text)


def installed_onnxruntime() -> list[tuple[str, str]]:
    found = []
    for name in ORT_DISTRIBUTIONS:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found.append((name, metadata.version(name)))
    return found


def onnxruntime_cuda_version() -> str:
    """The CUDA version onnxruntime-gpu was built for ('13.0'); '' for a CPU build."""
    import onnxruntime as ort

    return str(getattr(ort, "cuda_version", "") or "")


def visible_gpus() -> list[str]:
    """GPU names from nvidia-smi (empty: no NVIDIA GPU or no driver tools)."""
    if not shutil.which("nvidia-smi"):
        return []
    try:
        done = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in done.stdout.splitlines() if line.strip()] if done.returncode == 0 else []


def expected_libraries(cuda_version: str) -> list[tuple[str, str]]:
    """(group, soname) the CUDA and TensorRT providers of an onnxruntime-gpu built for `cuda_version`
    load: what libonnxruntime_providers_cuda.so / _tensorrt.so name as NEEDED, plus cuDNN, which the
    CUDA provider opens at run time."""
    major = cuda_version.split(".", 1)[0] or "12"
    return [
        ("NVIDIA driver", "libcuda.so.1"),
        ("CUDA", f"libcudart.so.{major}"),
        ("CUDA", f"libcublasLt.so.{major}"),
        ("CUDA", f"libcublas.so.{major}"),
        ("CUDA", "libcurand.so.10"),
        ("cuDNN", "libcudnn.so.9"),
        ("TensorRT", "libnvinfer.so.10"),
        ("TensorRT", "libnvonnxparser.so.10"),
    ]


def loaded_path(soname: str) -> str | None:
    """Where this process has `soname` mapped from (after a successful load), from /proc/self/maps."""
    stem = soname.split(".so")[0]
    with contextlib.suppress(OSError), open("/proc/self/maps", encoding="utf-8") as maps:
        for line in maps:
            path = line.rstrip("\n").split(" ")[-1]
            if "/" in path and os.path.basename(path).startswith(stem + ".so"):
                return path
    return None


def check_library(group: str, soname: str) -> LibraryCheck:
    try:
        ctypes.CDLL(soname, mode=ctypes.RTLD_GLOBAL)
    except OSError:
        return LibraryCheck(group, soname, None)
    return LibraryCheck(group, soname, loaded_path(soname) or "(found by the loader)")


def preload_gpu_libraries() -> list[str]:
    """Load the CUDA and cuDNN libraries of the nvidia-* wheels (onnxruntime.preload_dlls) and the
    TensorRT ones of a tensorrt-libs wheel, so the providers find them without LD_LIBRARY_PATH.
    Returns what onnxruntime printed (its warnings), for the report. A no-op on a CPU build."""
    import onnxruntime as ort

    said: list[str] = []
    if not onnxruntime_cuda_version():
        return said
    preload = getattr(ort, "preload_dlls", None)
    if preload is not None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            try:
                preload()
            except Exception as exc:  # onnxruntime raises what ctypes raised
                print(f"onnxruntime.preload_dlls() failed: {exc}")
        said += [line for line in out.getvalue().splitlines() if line.strip()]
    for module in ("tensorrt_libs", "tensorrt_cu13_libs", "tensorrt_cu12_libs"):
        with contextlib.suppress(ImportError):
            folder = Path(__import__(module).__file__).parent
            for name in ("libnvinfer.so.10", "libnvinfer_plugin.so.10", "libnvonnxparser.so.10"):
                if (folder / name).exists():
                    with contextlib.suppress(OSError):
                        ctypes.CDLL(str(folder / name), mode=ctypes.RTLD_GLOBAL)
    return said


def cache_state(cache_dir: Path) -> str:
    """Where the TensorRT engine cache is and what it holds."""
    if not cache_dir.exists():
        parent = next((p for p in cache_dir.parents if p.exists()), None)
        writable = parent is not None and os.access(parent, os.W_OK)
        return f"{cache_dir}: not created yet ({'can be created' if writable else 'CANNOT be created here'})"
    files = [f for f in cache_dir.rglob("*") if f.is_file()]
    engines = [f for f in files if f.suffix == ".engine"]
    size_mb = sum(f.stat().st_size for f in files) / 2**20
    newest = max((f.stat().st_mtime for f in files), default=None)
    age = f", newest {time.strftime('%Y-%m-%d %H:%M', time.localtime(newest))}" if newest else ""
    writable = "writable" if os.access(cache_dir, os.W_OK) else "NOT writable (engines rebuilt every start)"
    return f"{cache_dir}: {writable}, {len(engines)} engine(s), {len(files)} file(s), {size_mb:.1f} MB{age}"


def latency(model, batch_size: int) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, runs) of model.run on a batch of random frames, after two warm-up runs."""
    c = model.contract
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (batch_size, c.input_height, c.input_width, 3), dtype=np.uint8)
    for _ in range(2):
        model.run(batch)
    times: list[float] = []
    stop = time.perf_counter() + LATENCY_SECONDS
    while len(times) < 3 or (time.perf_counter() < stop and len(times) < LATENCY_MAX_RUNS):
        start = time.perf_counter()
        model.run(batch)
        times.append((time.perf_counter() - start) * 1000.0)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99)), len(times)


def asked_names(spec: str) -> list[str]:
    """--providers as onnxruntime names ('auto' expands to every provider in vr-serve's order)."""
    from vr_recognition.server.inference import AUTO_ORDER, PROVIDER_NAMES

    short = AUTO_ORDER if spec == "auto" else [p.strip().lower() for p in spec.split(",") if p.strip()]
    return [PROVIDER_NAMES.get(p, p) for p in short]


def self_test(args, find_model: Callable[[Path], Path]) -> int:
    """Run every check, print the report, return the exit status (see the module docstring)."""
    report = Report()
    code = run_checks(args, find_model, report)
    print("vr-serve self-test")
    for line in report.lines:
        print(line)
    if report.fixes:
        print("\nTo fix:")
        for fix in report.fixes:
            print(f"  {fix}")
    verdict = "PASS" if code == 0 else "FAIL"
    summary = "; ".join(report.problems) if report.problems else "the provider asked for is the one running"
    print(f"\n{verdict}: {summary}")
    sys.stdout.flush()
    return code


def run_checks(args, find_model: Callable[[Path], Path], report: Report) -> int:
    from vr_recognition.server.errors import ServeError

    # 1. onnxruntime itself
    report.section("onnxruntime")
    flavours = installed_onnxruntime()
    for name, version in flavours:
        report.item(f"{name} {version} installed")
    if len(flavours) > 1:
        report.item("onnxruntime and onnxruntime-gpu are both installed: they overwrite each other", False)
        report.fix(
            "pip uninstall -y onnxruntime onnxruntime-gpu && pip install '.[serve-gpu]' (or '.[serve]')"
        )
        report.problems.append("both onnxruntime flavours installed")
        return 2
    if not flavours:
        report.item("onnxruntime is not installed", False)
        report.fix("pip install '.[serve]' (CPU) or make serve GPU=1 (NVIDIA GPUs)")
        report.problems.append("onnxruntime missing")
        return 2
    import onnxruntime as ort

    cuda_version = onnxruntime_cuda_version()
    gpu_build = flavours[0][0] == "onnxruntime-gpu"
    report.item(f"built for CUDA {cuda_version}" if cuda_version else "CPU build (no CUDA)")
    said = preload_gpu_libraries()
    if gpu_build:
        report.item("onnxruntime.preload_dlls() called" + (f": {' / '.join(said)}" if said else ""))

    # 2. providers offered
    available = ort.get_available_providers()
    report.section("execution providers offered (onnxruntime.get_available_providers())")
    report.item(", ".join(available))

    # 3. GPU, driver and libraries
    report.section("GPU and libraries")
    gpus = visible_gpus()
    report.item("NVIDIA GPU: " + ("; ".join(gpus) if gpus else "none visible (no nvidia-smi or no GPU)"))
    if gpu_build or gpus:
        version = flavours[0][1]
        for check in (check_library(g, s) for g, s in expected_libraries(cuda_version)):
            if check.path:
                report.item(f"{check.group:<13} {check.soname:<24} {check.path}", True)
                continue
            report.item(f"{check.group:<13} {check.soname:<24} MISSING", False)
            if check.group == "NVIDIA driver":
                report.fix(
                    "libcuda.so.1 comes with the NVIDIA driver: install the driver on the host, and in a "
                    "container run with GPU access (docker run --gpus all)"
                )
            elif check.group in ("CUDA", "cuDNN"):
                if not gpu_build:
                    report.fix(
                        "this onnxruntime has no CUDA: make serve GPU=1 (or pip uninstall -y onnxruntime "
                        "&& pip install '.[serve-gpu]')"
                    )
                report.fix(
                    f"pip install 'onnxruntime-gpu[cuda,cudnn]=={version}' (the CUDA and cuDNN wheels "
                    "onnxruntime-gpu names; vr-serve loads them with onnxruntime.preload_dlls())"
                )
            else:
                major = (cuda_version or "12").split(".", 1)[0]
                report.fix(
                    f"TensorRT 10 for CUDA {major}: pip install 'tensorrt-cu{major}-libs==10.*' (or NVIDIA's "
                    "packages, with their lib folder on LD_LIBRARY_PATH); or serve with --providers cuda"
                )
    else:
        report.item("CUDA / cuDNN / TensorRT: not needed by this CPU build")

    # 4. TensorRT engine cache
    report.section("TensorRT engine cache (VR_SERVE_CACHE, else ~/.cache/vr-serve)")
    cache_dir = Path(os.environ.get("VR_SERVE_CACHE", Path.home() / ".cache" / "vr-serve"))
    used = "TensorrtExecutionProvider" in available
    report.item(cache_state(cache_dir) + ("" if used else " (unused: no TensorRT provider here)"))

    # 5. the session vr-serve would run
    report.section("the served model's session")
    try:
        model_path = args.model if args.model is not None else find_model(args.models_dir)
    except ServeError as exc:
        report.item(f"no model to test: {exc}", False)
        report.problems.append("no model")
        return 2
    if not Path(model_path).is_file():
        report.item(f"model file {model_path} does not exist", False)
        report.problems.append("no model")
        return 2
    from vr_recognition.server.inference import InferenceModel, ProviderError

    asked = asked_names(args.providers)
    try:
        model = InferenceModel.load(Path(model_path), args.providers, args.max_batch, args.threads)
    except ProviderError as exc:
        report.item(f"--providers {args.providers}: {exc}", False)
        wanted = [p for p in asked if p not in available]
        if any(p in GPU_PROVIDERS for p in wanted) and not gpu_build:
            report.fix(
                "this is the CPU build of onnxruntime, which has no CUDA or TensorRT provider: "
                "make serve GPU=1 (installs onnxruntime-gpu with its CUDA and cuDNN wheels)"
            )
        report.problems.append(
            f"asked for {', '.join(wanted) or args.providers}, which this onnxruntime lacks"
        )
        return 1
    except ServeError as exc:
        report.item(f"cannot load {model_path}: {exc}", False)
        report.problems.append("model does not load")
        return 2
    running = model.providers
    report.item(f"model {model.contract.name} {model.contract.version} ({model_path})")
    report.item(f"asked: --providers {args.providers} -> {', '.join(a for a in asked if a in available)}")
    first_asked = next((a for a in asked if a in available), asked[0])
    ok = running[0] == first_asked
    if args.providers == "auto" and gpus and running[0] not in GPU_PROVIDERS:
        ok = False
    report.item(f"session runs: {', '.join(running)} (session.get_providers())", ok)
    code = 0
    if not ok:
        code = 1
        if args.providers == "auto" and running[0] == first_asked:
            report.problems.append(f"an NVIDIA GPU is visible but the session runs {running[0]}")
            report.fix("install the GPU build: make serve GPU=1")
        else:
            report.problems.append(
                f"asked for {first_asked} but the session runs {running[0]} (silent fallback)"
            )

    # 6. latency of the session
    report.section(f"latency of session.run ({model.provider}, {args.threads or os.cpu_count()} threads)")
    for size in dict.fromkeys((1, max(1, args.max_batch))):
        p50, p99, runs = latency(model, size)
        report.item(
            f"batch {size:>2}: p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  ({p50 / size:.2f} ms per frame, "
            f"{runs} runs)"
        )
    return code
