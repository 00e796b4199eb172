"""A headless Chromium driven over the DevTools protocol, for tests that assert what a page shows.

Only what the page tests need: open a file, evaluate JavaScript, type, click at a point, and
collect every console error and uncaught exception. Debian's ``chromium`` package provides the
browser; ``websocket-client`` the protocol's transport.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

import websocket

BINARY = shutil.which("chromium") or shutil.which("chromium-browser")


class BrowserError(RuntimeError):
    pass


class Chromium:
    """One browser with one page. ``errors`` lists console errors, failed loads and exceptions;
    ``requests`` every URL the page asked for."""

    def __init__(self, *, width: int = 1400, height: int = 900, timeout: float = 60.0) -> None:
        if BINARY is None:
            raise BrowserError("chromium is not installed")
        self.timeout = timeout
        self.errors: list[str] = []
        self.requests: list[str] = []
        self._profile = Path(tempfile.mkdtemp(prefix="policyctl-chromium-"))
        # Chromium keeps its singleton socket in a directory of its own under $TMPDIR, outside
        # the profile, and leaves it behind; inside the profile it goes with it.
        scratch = self._profile / "tmp"
        scratch.mkdir()
        # A session of its own: its helpers (the network service writes into the profile) can
        # outlive the main process, and closing waits for the whole group before removing it.
        self._process = subprocess.Popen(
            [BINARY, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
             "--disable-extensions", "--remote-debugging-port=0", "--remote-allow-origins=*",
             f"--user-data-dir={self._profile}", f"--window-size={width},{height}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(scratch)},
            start_new_session=True,
        )  # fmt: skip
        self._next = 0
        self._socket = websocket.create_connection(self._page_socket(), timeout=timeout, suppress_origin=True)
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable")

    def _page_socket(self) -> str:
        port_file = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrowserError(f"chromium exited with {self._process.returncode}")
            if port_file.exists() and port_file.read_text().strip():
                port = port_file.read_text().split()[0]
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as answer:
                    pages = [t for t in json.load(answer) if t.get("type") == "page"]
                if pages:
                    return str(pages[0]["webSocketDebuggerUrl"])
            time.sleep(0.05)
        raise BrowserError("chromium did not open its DevTools port")

    def _event(self, message: dict[str, Any]) -> None:
        method, params = message.get("method"), message.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            words = (str(a.get("value", a.get("description"))) for a in params["args"])
            self.errors.append("console: " + " ".join(words))
        elif method == "Runtime.exceptionThrown":
            details = params["exceptionDetails"]
            described = details.get("exception", {}).get("description", details.get("text"))
            self.errors.append(f"exception: {described}")
        elif method == "Network.requestWillBeSent":
            self.requests.append(params["request"]["url"])
        elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
            self.errors.append("log: " + params["entry"]["text"])

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        self._next += 1
        number = self._next
        self._socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self._socket.recv())
            if message.get("id") == number:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return dict(message.get("result", {}))
            self._event(message)

    def open(self, path: Path, *, ready: str = "document.body && document.body.dataset.ready === 'true'") -> float:
        """Load ``path`` and wait until ``ready`` is true; the seconds that took."""
        started = time.monotonic()
        self.send("Page.navigate", url=path.resolve().as_uri())
        self.wait_for(ready)
        return time.monotonic() - started

    def wait_for(self, expression: str) -> Any:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            value = self.evaluate(f"(() => {{ try {{ return {expression}; }} catch (e) {{ return false; }} }})()")
            if value:
                return value
            time.sleep(0.05)
        raise BrowserError(f"timed out waiting for {expression}; errors: {self.errors}")

    def evaluate(self, expression: str) -> Any:
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def click(self, x: float, y: float) -> None:
        """A real left click at page coordinates (what a user's mouse does)."""
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        self.send("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", clickCount=1)
        self.send("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", clickCount=1)

    def type(self, selector: str, text: str) -> None:
        """Focus ``selector`` and type ``text`` into it, as keystrokes do (input events fire)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).focus()")
        self.send("Input.insertText", text=text)

    def close(self) -> None:
        try:
            self._socket.close()
        finally:
            self._stop_group()
            shutil.rmtree(self._profile)

    def _stop_group(self) -> None:
        """Terminate the browser, then every process left in its session, and return only
        when none runs: a helper still writing would put files back into the profile."""
        group = self._process.pid
        os.killpg(group, signal.SIGTERM)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        deadline = time.monotonic() + 10
        while _running_in_group(group):
            if time.monotonic() > deadline:
                raise BrowserError(f"chromium's processes {_running_in_group(group)} did not exit")
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                return
            time.sleep(0.02)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(
        self, kind: builtins.type[BaseException] | None, value: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def _running_in_group(group: int) -> list[int]:
    """The processes of process group ``group`` that have not exited (zombies have)."""
    running = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[2]) == group and fields[0] != "Z":
            running.append(int(entry.name))
    return running
