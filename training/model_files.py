"""The .onnx files train-vr reads and writes: the model contract out of a file, and a graph written back
with a contract, atomically. No torch: `quantize` and `evaluate` use this on a serving host too.

Every file train-vr writes (export, quantize, prune) goes through `save_model`: the metadata is exactly
ModelContract.to_metadata(), the file is checked by onnx.checker before it replaces the target, and a
kill mid-write leaves the previous file, never half of one.
"""

from __future__ import annotations

import os
from pathlib import Path

from vr_recognition.server.model_format import KEY_PREFIX, ModelContract, ModelFormatError
from vr_recognition.training.errors import ModelFileError


def read_contract(path: str | Path) -> ModelContract:
    """The contract stored in `path`'s metadata; ModelFileError when the file is missing or foreign."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: model file not found")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as error:  # onnx raises DecodeError, OSError, ... for a file that is not a model
        raise ModelFileError(f"{path}: not an ONNX model ({type(error).__name__})") from None
    return contract_of(proto, path)


def contract_of(proto, source: str | Path = "model") -> ModelContract:
    """The contract in an already loaded ModelProto; `source` names it in errors."""
    metadata = {p.key: p.value for p in proto.metadata_props}
    try:
        return ModelContract.from_metadata(metadata)
    except ModelFormatError as error:
        raise ModelFileError(f"{source}: {error}") from None


def save_model(proto, contract: ModelContract, out: str | Path) -> None:
    """Write `proto` to `out` as one file whose metadata is `contract` (other `vr.` keys are dropped;
    metadata of other tools is kept). onnx.checker runs on the written file before it replaces `out`."""
    import onnx

    out = Path(out)
    kept = [(p.key, p.value) for p in proto.metadata_props if not p.key.startswith(KEY_PREFIX)]
    del proto.metadata_props[:]
    for key, value in [*kept, *contract.to_metadata().items()]:
        proto.metadata_props.add(key=key, value=value)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(f".{out.name}.tmp")
    try:
        onnx.save_model(proto, str(temporary), save_as_external_data=False)
        onnx.checker.check_model(str(temporary))
        os.replace(temporary, out)
    finally:
        temporary.unlink(missing_ok=True)


def rewrite_contract(path: str | Path, contract: ModelContract) -> None:
    """Replace the contract of an existing file (e.g. to add the accuracy measured on the file itself)."""
    import onnx

    save_model(onnx.load(str(path)), contract, path)
