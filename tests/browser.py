"""Open a page in headless Chromium (Debian's ``chromium``) and report what a person would see.

The browser is driven through the DevTools protocol over its WebSocket (the ``websockets``
library): the page is loaded from a file, and every console message, uncaught exception, log
entry (a resource that failed to load lands there) and network request is collected, so a test
can require that the page loads with no error and fetches nothing.  The browser runs with a
fresh profile directory, no network (every host name resolves to nothing) and its background
services off.
"""

from __future__ import annotations

import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

CHROMIUM = "chromium"
START_SECONDS = 30.0
COMMAND_SECONDS = 30.0

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
    "--remote-debugging-port=0",
)


def chromium_path() -> str | None:
    """The Chromium binary on PATH, if Debian's package is installed."""
    return shutil.which(CHROMIUM)


@dataclass
class PageReport:
    """What loading one page produced."""

    console: list[dict[str, Any]] = field(default_factory=list)
    exceptions: list[dict[str, Any]] = field(default_factory=list)
    log_entries: list[dict[str, Any]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    evaluated: Any = None
    screenshot: bytes = b""

    @property
    def errors(self) -> list[str]:
        """Every console error, uncaught exception and error log entry, as text."""
        found = [
            " ".join(str(arg.get("value", arg.get("description", ""))) for arg in m["args"])
            for m in self.console
            if m.get("type") in ("error", "assert")
        ]
        found += [e["exceptionDetails"].get("text", "exception") for e in self.exceptions]
        found += [
            f"{e['entry'].get('source')}: {e['entry'].get('text')}"
            for e in self.log_entries
            if e["entry"].get("level") == "error"
        ]
        return found


class _DevTools:
    """One WebSocket to the browser; commands to one page session (flattened mode)."""

    def __init__(self, socket: ClientConnection) -> None:
        self._socket = socket
        self._ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []
        self.session: str | None = None

    def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        command_id = next(self._ids)
        message: dict[str, Any] = {"id": command_id, "method": method, "params": params or {}}
        if self.session is not None:
            message["sessionId"] = self.session
        self._socket.send(json.dumps(message))
        deadline = time.monotonic() + COMMAND_SECONDS
        while True:
            reply = json.loads(self._socket.recv(timeout=max(0.0, deadline - time.monotonic())))
            if reply.get("id") == command_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return dict(reply.get("result", {}))
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        for event in self.events:
            if event.get("method") == method:
                return event
        deadline = time.monotonic() + COMMAND_SECONDS
        while True:
            event = json.loads(self._socket.recv(timeout=max(0.0, deadline - time.monotonic())))
            self.events.append(event)
            if event.get("method") == method:
                return event


@contextmanager
def _browser() -> Iterator[_DevTools]:
    binary = chromium_path()
    if binary is None:
        raise RuntimeError("chromium is not installed (Debian package `chromium`)")
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + START_SECONDS
            while not (port_file.exists() and len(port_file.read_text().split()) >= 2):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("chromium did not start its DevTools endpoint")
                time.sleep(0.05)
            port, path = port_file.read_text().split()[:2]
            with connect(f"ws://127.0.0.1:{port}{path}", max_size=None) as socket:
                yield _DevTools(socket)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def load_page(
    path: Path, *, evaluate: str = "null", screenshot_width: int | None = None
) -> PageReport:
    """Load ``path`` (an HTML file), then evaluate ``evaluate`` (a JavaScript expression whose
    value is returned by value) and, with ``screenshot_width``, take a full-page PNG."""
    with _browser() as devtools:
        target = devtools.send("Target.createTarget", {"url": "about:blank"})
        attached = devtools.send(
            "Target.attachToTarget", {"targetId": target["targetId"], "flatten": True}
        )
        devtools.session = attached["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            devtools.send(f"{domain}.enable")
        if screenshot_width is not None:
            devtools.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": screenshot_width, "height": 800, "deviceScaleFactor": 1, "mobile": False},
            )
        devtools.send("Page.navigate", {"url": path.resolve().as_uri()})
        devtools.wait_for("Page.loadEventFired")
        result = devtools.send(
            "Runtime.evaluate", {"expression": evaluate, "returnByValue": True}
        )
        report = PageReport(evaluated=result.get("result", {}).get("value"))
        if screenshot_width is not None:
            height = devtools.send(
                "Runtime.evaluate",
                {"expression": "document.documentElement.scrollHeight", "returnByValue": True},
            )["result"]["value"]
            devtools.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": screenshot_width, "height": int(height), "deviceScaleFactor": 1,
                 "mobile": False},
            )
            shot = devtools.send("Page.captureScreenshot", {"format": "png"})
            report.screenshot = base64.b64decode(shot["data"])
        # One more round trip, so that messages the page logged on load have all arrived.
        devtools.send("Runtime.evaluate", {"expression": "0"})
        for event in devtools.events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled":
                report.console.append(params)
            elif method == "Runtime.exceptionThrown":
                report.exceptions.append(params)
            elif method == "Log.entryAdded":
                report.log_entries.append(params)
            elif method == "Network.requestWillBeSent":
                report.requests.append(params["request"]["url"])
        return report
