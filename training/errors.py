"""The user errors of train-vr: everything here is a TrainVrError, which the CLI prints as one line.

Anything else that escapes (a ValueError from numpy, a KeyError in our code) is a bug and keeps its
traceback. Pure Python, no torch: the CLI imports this before it knows whether torch is installed.

    TrainVrError
    ├── ConfigError         an option value or combination that cannot work (also a ValueError)
    ├── DatasetError        the data folder cannot be trained on as laid out (also a ValueError)
    ├── RunExistsError      --out already holds a run and --resume was not given
    ├── CheckpointError     a checkpoint file is missing, not train-vr's, or from a newer train-vr
    ├── WeightsUnavailable  the starting weights are not on this machine or do not fit the arch
    ├── ExportError         the exported graph does not behave like the checkpoint
    ├── ModelFileError      an .onnx file given to train-vr is missing, not a vr-recognition model, or not
    │                       the precision the command works on
    └── AccuracyDropError   a smaller or faster variant (int8, pruned) loses more validation accuracy than
                            allowed, and --allow-accuracy-drop was not given
"""

from __future__ import annotations


class TrainVrError(RuntimeError):
    """A problem the user can fix; reported by train-vr without a traceback (exit code 2)."""


# ConfigError and DatasetError keep ValueError as a second base: they were ValueErrors before this
# hierarchy existed, and callers of the Python API may catch them as such. train-vr itself catches
# only TrainVrError, so a plain ValueError is never mistaken for a user error.
class ConfigError(TrainVrError, ValueError):
    """An option value (or combination) that cannot work; the message names the option."""


class DatasetError(TrainVrError, ValueError):
    """The dataset cannot be trained on as laid out; the message says what to fix."""


class RunExistsError(TrainVrError):
    """--out already holds a run; continuing it needs --resume."""


class CheckpointError(TrainVrError):
    """A checkpoint file is missing, is not a train-vr checkpoint, or was written by a newer train-vr."""


class WeightsUnavailable(TrainVrError):
    """The requested starting weights are not on this machine; the message says where to put them."""


class ExportError(TrainVrError):
    """The exported graph does not behave like the checkpoint, or cannot be written as one file."""


class ModelFileError(TrainVrError):
    """An .onnx file given to train-vr is missing, is not a vr-recognition model (no contract in its
    metadata), or is not the precision the command works on (e.g. quantizing an int8 file again)."""


class AccuracyDropError(TrainVrError):
    """A variant (int8, pruned) loses more validation accuracy than allowed; nothing was written.
    The message gives both accuracies; --allow-accuracy-drop writes the variant anyway."""


class DivergedError(TrainVrError):
    """The loss stopped being a number: the learning rate is too high for this data and network."""
