"""train-vr's command line: defaults come from TrainConfig, user errors are one line with exit code 2,
and a programming error is never dressed up as a user error."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from vr_recognition.training.cli import build_export_parser, build_parser, config_from_args, main
from vr_recognition.training.config import TRAIN_DEFAULTS, TrainConfig
from vr_recognition.training.errors import (
    CheckpointError,
    ConfigError,
    DatasetError,
    ExportError,
    RunExistsError,
    TrainVrError,
    WeightsUnavailable,
)

REPO = Path(__file__).resolve().parents[1]


def test_every_config_field_is_an_option_whose_default_is_the_field_default():
    parser = build_parser()
    args = parser.parse_args(["--data", "d", "--out", "o"])
    assert config_from_args(args) == TrainConfig(data="d", out="o")
    destinations = {action.dest for action in parser._actions}
    assert {f.name for f in fields(TrainConfig)} <= destinations
    for name, default in TRAIN_DEFAULTS.items():
        assert parser.get_default(name) == default, name


def test_export_options_share_the_training_defaults():
    args = build_export_parser().parse_args(["--checkpoint", "c.pt", "--out", "m.onnx"])
    assert args.opset == TRAIN_DEFAULTS["opset"] == TrainConfig(data="", out="").opset
    assert args.export_fp16 is TRAIN_DEFAULTS["export_fp16"] is False
    assert args.name == TRAIN_DEFAULTS["name"]


def test_negated_flags_set_their_config_fields():
    args = build_parser().parse_args(["--data", "d", "--out", "o", "--no-flip", "--no-amp", "--fp16"])
    config = config_from_args(args)
    assert (config.flip, config.amp, config.export_fp16) == (False, False, True)


@pytest.mark.parametrize(
    "error", [ConfigError, DatasetError, RunExistsError, CheckpointError, WeightsUnavailable, ExportError]
)
def test_user_errors_share_one_root(error):
    assert issubclass(error, TrainVrError)


def test_config_error_is_one_line_and_exit_code_2(tmp_path, capsys):
    argv = ["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--img-size", "32"]
    assert main([*argv, "--resize-shorter", "16"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "train-vr: --resize-shorter must be >= --img-size\n"
    assert "Traceback" not in captured.err


def test_a_value_error_from_a_bug_is_not_reported_as_a_user_error(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    from vr_recognition.training import trainer

    def broken(config, resume=False):
        raise ValueError("operands could not be broadcast together")  # what a numpy bug raises

    monkeypatch.setattr(trainer, "train", broken)
    with pytest.raises(ValueError, match="broadcast"):
        main(["--data", str(tmp_path), "--out", str(tmp_path / "run")])


def test_missing_files_are_user_errors(tmp_path, capsys):
    pytest.importorskip("torch")
    pytest.importorskip("torchvision")
    missing = tmp_path / "nothing.pt"
    assert main(["export", "--checkpoint", str(missing), "--out", str(tmp_path / "m.onnx")]) == 2
    assert main(["--out", str(tmp_path / "never-ran"), "--resume"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert lines == [
        f"train-vr: {missing}: checkpoint not found",
        f"train-vr: {tmp_path / 'never-ran' / 'last.pt'}: checkpoint not found",
    ]


def test_help_of_every_subcommand_works_without_torch():
    """A serving host has no torch; `train-vr --help` and each subcommand's help must still print."""
    script = (
        "import sys; sys.modules['torch'] = None  # any import of torch now fails\n"
        "from vr_recognition.training.cli import main\n"
        "for argv in ([], ['export'], ['quantize'], ['evaluate'], ['prune']):\n"
        "    try:\n"
        "        main([*argv, '--help'])\n"
        "    except SystemExit as done:\n"
        "        assert done.code == 0, argv\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert done.returncode == 0, done.stderr[-2000:]
    for name in ("train-vr quantize", "train-vr evaluate", "train-vr prune", "--allow-accuracy-drop"):
        assert name in done.stdout
