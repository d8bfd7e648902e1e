"""Headless Chromium driven through the Chrome DevTools Protocol with the `websockets` package, and a
static file server for the page: what tests/test_web_client.py needs to run the web client in a real
browser, with no npm package and no downloaded browser (Debian's chromium, installed on demand).

Not a test module.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from websockets.sync.client import connect

# Headless flags that work in a closed network: without the background-networking ones Chromium's own
# connections (updates, sync, field trials) are refused and slow it down.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--remote-debugging-port=0",
)


class BrowserError(AssertionError):
    """A page script failed: its exception, with the page's console output."""


class Page:
    """One tab, attached with a flat session; evaluate() runs an expression and awaits its promise."""

    def __init__(self, browser: Chromium, session_id: str) -> None:
        self.browser = browser
        self.session_id = session_id

    def evaluate(self, expression: str, timeout: float = 60.0) -> Any:
        reply = self.browser.command(
            "Runtime.evaluate",
            {"expression": expression, "awaitPromise": True, "returnByValue": True},
            session_id=self.session_id,
            timeout=timeout,
        )
        if "exceptionDetails" in reply:
            details = reply["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise BrowserError(f"{text}\nconsole:\n" + "\n".join(self.browser.console[-50:]))
        return reply["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 30.0) -> None:
        """Polls a JavaScript condition until it is true (the page's own deadline: `timeout`)."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"Boolean({expression})"):
            if time.monotonic() > deadline:
                raise BrowserError(
                    f"timed out waiting for {expression}\nconsole:\n" + "\n".join(self.browser.console[-50:])
                )
            time.sleep(0.05)


class Chromium:
    """A headless Chromium process and a DevTools connection to it."""

    def __init__(self, executable: str) -> None:
        self.profile = Path(tempfile.mkdtemp(prefix="vr-web-chromium-"))
        self.log = self.profile / "chromium.log"  # a file, not a pipe: an unread pipe would block the browser
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile / 'data'}", "about:blank"],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.console: list[str] = []
        self._next_id = 0
        self._resources = contextlib.ExitStack()
        try:
            port, path = self._devtools_address()
            devtools = connect(f"ws://127.0.0.1:{port}{path}", max_size=None, open_timeout=30)
            self.ws = self._resources.enter_context(devtools)
        except BaseException:
            self.close()
            raise

    def _devtools_address(self, timeout: float = 60.0) -> tuple[str, str]:
        active = self.profile / "data" / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if active.exists():
                lines = active.read_text().split()
                if len(lines) >= 2:
                    return lines[0], lines[1]
            if self.process.poll() is not None:
                raise BrowserError(
                    f"chromium exited: {self.process.stderr.read().decode(errors='replace')[-3000:]}"
                )
            time.sleep(0.05)
        raise BrowserError("chromium did not open its DevTools port")

    def command(
        self, method: str, params: dict | None = None, session_id: str | None = None, timeout: float = 30.0
    ) -> dict:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session_id is not None:
            message["sessionId"] = session_id
        self.ws.send(json.dumps(message))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise BrowserError(f"no answer to {method} within {timeout:.0f} s")
            reply = json.loads(self.ws.recv(timeout=remaining))
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._event(reply)

    def _event(self, event: dict) -> None:
        method = event.get("method")
        params = event.get("params", {})
        if method == "Runtime.consoleAPICalled":
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append(f"{params.get('type')}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.console.append(
                f"exception: {details.get('exception', {}).get('description') or details.get('text')}"
            )

    def open(self, url: str, ready: str = "window.vrTestReady === true", timeout: float = 30.0) -> Page:
        target = self.command("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.command("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        page = Page(self, session)
        self.command("Runtime.enable", session_id=session)
        self.command("Page.navigate", {"url": url}, session_id=session)
        page.wait_for(ready, timeout)
        return page

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._resources.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()


@contextlib.contextmanager
def static_server(folder: Path) -> Iterator[str]:
    """Serves `folder` on a loopback port; yields its origin, e.g. http://127.0.0.1:PORT."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="web-client-static", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
