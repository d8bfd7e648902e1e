"""Debian packages a test needs (a compiler, a runtime), installed on demand.

Under CI=true a skipped test is a failure (tests/conftest.py), so in CI a missing package is installed
or the test fails; on a developer's machine where it cannot be installed, the test skips and says why.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def require_debian_package(command: str, package: str) -> str:
    """Path of `command`, installing Debian's `package` with apt-get when missing and possible."""
    found = shutil.which(command)
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        for step in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
            subprocess.run(step, check=False, capture_output=True, timeout=600)
        found = shutil.which(command)
        if found:
            return found
    pytest.skip(f"needs `{command}` from Debian package {package}, which could not be installed here")
