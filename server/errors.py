"""vr-serve's one root for problems an operator can fix: the command line reports these in one line,
without a traceback, and lets anything else (a bug) surface with its traceback."""

from __future__ import annotations


class ServeError(Exception):
    """Installation, files, model or providers prevent serving; the message says what to do."""
