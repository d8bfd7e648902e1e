"""Start a server process for the run and stop it afterwards, so one command measures everything.

vr-serve, the naive baseline server and the peers (bench/peers/) print "listening on SCHEME://HOST:PORT"
and then "ready:" once the model is warm; the URL is read from the first line and the run waits for
the second.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vr_recognition.bench.errors import BenchError


class SpawnError(BenchError):
    """The server process exited or never became ready; the message carries its log."""


class SpawnedServer:
    """A server subprocess on a free loopback port; use as a context manager."""

    def __init__(
        self,
        command: list[str],
        name: str,
        ready_timeout: float = 120.0,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
        schemes: str = "wss?",
        own_group: bool = False,
    ) -> None:
        """`own_group`: start it as the leader of a new process group and stop the whole group, for
        servers that start processes of their own (tritonserver, LitServe's workers)."""
        self.name = name
        self.own_group = own_group
        # Closed in stop(), which every path reaches; a temporary log is deleted then, a given one kept.
        if log_path is None:
            self._log_file = tempfile.NamedTemporaryFile("w+", prefix=f"vr-bench-{name}-", suffix=".log")  # noqa: SIM115
        else:
            self._log_file = open(log_path, "w+")  # noqa: SIM115
        self._log_name = self._log_file.name
        env = {**os.environ, **(env or {})}
        env.setdefault("PYTHONUNBUFFERED", "1")
        try:
            self.proc = subprocess.Popen(
                command, stdout=self._log_file, stderr=subprocess.STDOUT, env=env, start_new_session=own_group
            )
        except OSError as exc:  # e.g. --naive-python names no interpreter
            self._log_file.close()
            raise SpawnError(f"cannot start {name} ({command[0]}): {exc}") from None
        try:
            pattern = rf"listening on ((?:{schemes})://[\w.\-\[\]:]+:\d+)"
            self.url = self.wait_for(pattern, ready_timeout).group(1)
            self.ready_line = self.wait_for(r"ready: ([^\n]*)", ready_timeout).group(1)
        except BaseException:
            self.stop()
            raise

    @classmethod
    def vr_serve(cls, server_args: list[str], log_path: Path | None = None) -> SpawnedServer:
        return cls(
            [sys.executable, "-m", "vr_recognition.server.cli", "--port", "0", *server_args],
            "vr-serve",
            log_path=log_path,
        )

    def log(self) -> str:
        if not self._log_file.closed:
            self._log_file.flush()
        with open(self._log_name, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.search(pattern, self.log())
            if match:
                return match
            if self.proc.poll() is not None:
                raise SpawnError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()[-4000:]}")
            time.sleep(0.05)
        raise SpawnError(f"{self.name} was not ready within {timeout:.0f} s:\n{self.log()[-4000:]}")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful: in-flight frames are answered), then wait; SIGKILL only if it hangs."""
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.own_group:  # whatever it started and left behind (its group id is its pid)
            time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._log_file.close()
        return self.proc.returncode

    def _signal(self, sig: int) -> None:
        if self.own_group:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, sig)
        else:
            self.proc.send_signal(sig)

    def __enter__(self) -> SpawnedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
