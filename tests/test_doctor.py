"""`vr-serve --self-test` on this CPU-only onnxruntime: the provider asked for runs (exit 0), is missing
(exit 1 with the command that fixes it), or silently falls back to the CPU (exit 1, said so). A GPU
build with its CUDA libraries missing is simulated: the libraries this host lacks are reported
missing, each with the exact pip command."""

from __future__ import annotations

import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import pytest

from tests.onnx_models import write_colour_model
from vr_recognition.server import cli as serve_cli
from vr_recognition.server import doctor, inference


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return write_colour_model(tmp_path_factory.mktemp("doctor") / "colour.onnx")


def self_test(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "vr_recognition.server.cli", "--self-test", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cpu_asked_and_running_passes_with_a_latency_table(model: Path):
    done = self_test("--model", str(model), "--providers", "cpu", "--max-batch", "4")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "onnxruntime.get_available_providers()" in out
    assert "CPUExecutionProvider" in out
    assert "session runs: CPUExecutionProvider" in out
    assert "TensorRT engine cache" in out
    assert "batch  1: p50" in out
    assert "batch  4: p50" in out
    assert out.rstrip().splitlines()[-1].startswith("PASS")
    assert "Traceback" not in done.stderr


def test_a_provider_this_onnxruntime_lacks_fails_and_says_how_to_get_it(model: Path):
    done = self_test("--model", str(model), "--providers", "cuda")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "FAIL" in out
    assert "CUDAExecutionProvider" in out
    assert "make serve GPU=1" in out
    assert out.rstrip().splitlines()[-1].startswith("FAIL")
    assert "Traceback" not in done.stderr


def test_without_a_model_there_is_nothing_to_test(tmp_path: Path):
    done = self_test("--models-dir", str(tmp_path), "--providers", "cpu")
    assert done.returncode == 2
    assert "no model to test" in done.stdout
    assert "execution providers offered" in done.stdout  # everything else was still checked


def args_for(model: Path, providers: str) -> Namespace:
    return Namespace(model=model, models_dir=model.parent, providers=providers, max_batch=2, threads=1)


@pytest.mark.filterwarnings("ignore:Specified provider")
def test_a_silent_fallback_to_the_cpu_fails(model: Path, monkeypatch: pytest.MonkeyPatch, capsys):
    """onnxruntime offers CUDA (as onnxruntime-gpu does) but the session cannot use it: it runs on the
    CPU without an error. The self-test must say so and fail."""
    real = inference.ort.get_available_providers
    monkeypatch.setattr(inference.ort, "get_available_providers", lambda: ["CUDAExecutionProvider", *real()])
    code = doctor.self_test(args_for(model, "cuda"), serve_cli.find_default_model)
    out = capsys.readouterr().out
    assert code == 1
    assert "session runs: CPUExecutionProvider" in out
    assert "asked for CUDAExecutionProvider but the session runs CPUExecutionProvider" in out


def test_a_gpu_build_without_its_libraries_names_each_missing_one(
    model: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setattr(doctor, "installed_onnxruntime", lambda: [("onnxruntime-gpu", "1.31.1")])
    monkeypatch.setattr(doctor, "onnxruntime_cuda_version", lambda: "13.0")
    # A host without them, whatever this test machine has (torch's CUDA wheels may bring some along).
    monkeypatch.setattr(
        doctor, "check_library", lambda group, soname: doctor.LibraryCheck(group, soname, None)
    )
    code = doctor.self_test(args_for(model, "cpu"), serve_cli.find_default_model)
    out = capsys.readouterr().out
    assert code == 0  # cpu was asked for, and cpu runs
    for soname in ("libcuda.so.1", "libcudart.so.13", "libcublas.so.13", "libcudnn.so.9", "libnvinfer.so.10"):
        assert soname in out
    assert "MISSING" in out
    assert "pip install 'onnxruntime-gpu[cuda,cudnn]==1.31.1'" in out
    assert "tensorrt-cu13-libs" in out
    assert "onnxruntime.preload_dlls() called" in out


def test_library_checks_report_where_a_library_was_loaded_from():
    found = doctor.check_library("C", "libc.so.6")
    assert found.path
    assert found.path.startswith("/")
    missing = doctor.check_library("CUDA", "libcudart.so.999")
    assert missing.path is None
    assert [soname for _, soname in doctor.expected_libraries("12.8")][:3] == [
        "libcuda.so.1",
        "libcudart.so.12",
        "libcublasLt.so.12",
    ]


def test_the_engine_cache_state(tmp_path: Path):
    assert "not created yet" in doctor.cache_state(tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "model_fp16.engine").write_bytes(b"x" * 2048)
    state = doctor.cache_state(tmp_path / "cache")
    assert "writable" in state
    assert "1 engine(s)" in state
