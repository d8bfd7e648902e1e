"""Suite-wide rules.

Under CI=true a skipped test is a failure: a test that needs a Debian package installs it (see
`require_debian_package`) and may only skip, with its reason shown, on a developer's machine where
it cannot.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped under CI=true, which counts as a failure: {reason}"


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
