"""vr-bench's one root for problems the user can fix (no frames, a server that will not start or
cannot be reached): the command line reports these in one line; anything else is a bug and keeps
its traceback."""

from __future__ import annotations


class BenchError(Exception):
    """The run cannot go on as asked; the message says why."""
