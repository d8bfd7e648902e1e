"""Coverage-guided fuzzing (atheris, libFuzzer) of everything that parses bytes from the network:
the frame header, the client's JSON, the server's JSON as the Python client reads it, and the JPEG
header walk plus decode. The only exception allowed out is ProtocolError, with a code from the
closed list; anything else is a crash, and libFuzzer saves the input that caused it.

Run by tests/test_reliability_fuzz.py; by hand:
    python tests/fuzz_atheris.py CORPUS_DIR -max_total_time=60
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from vr_recognition.server import preprocess
    from vr_recognition.server import protocol as p

LIMITS = p.Limits()
CODES = {code.value for code in p.ErrorCode}


def one_input(data: bytes) -> None:
    """The first byte picks the parser, the rest is its input."""
    if not data:
        return
    target, payload = data[0] % 4, data[1:]
    try:
        if target == 0:
            frame = p.decode_frame(payload)
            preprocess.decode_frame_image(frame, 224, LIMITS)
        elif target == 1:
            p.decode_client_message(payload)
        elif target == 2:
            p.decode_server_message(payload)
        else:
            preprocess.decode_jpeg(payload, 224, LIMITS)
    except p.ProtocolError as exc:
        if exc.code.value not in CODES:
            raise AssertionError(f"undocumented error code {exc.code!r}") from exc


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
