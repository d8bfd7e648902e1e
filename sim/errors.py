"""vr-sim's one root for problems the user can fix (a bad recipe or size, unknown classes, a server
that cannot be reached, a renderer this Panda3D build lacks): the command line reports these in one
line; anything else is a bug and keeps its traceback."""

from __future__ import annotations


class SimError(Exception):
    """The simulator cannot do what was asked; the message says why."""
