"""Headless Chromium driven over the DevTools protocol, for checking that pages render.

The protocol runs over a pipe (``--remote-debugging-pipe``: NUL-terminated JSON messages,
Chromium reading file descriptor 3 and writing 4), so no port, no websocket library and no
network is involved.  A page is loaded from a ``file://`` URL with every network request made
to fail (``--host-resolver-rules``, a dead proxy), and :meth:`Browser.check` reports what a
reader would see: console errors and uncaught exceptions, requests that were not for local files,
images that did not load, the text length, and a full-page PNG screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Debian's package installs ``chromium``; other names for the same browser.
NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# A trampoline: put the two pipe ends on descriptors 3 and 4, then exec the browser.
_TRAMPOLINE = """
import fcntl, os, sys
given = [int(fd) for fd in sys.argv[1:3]]
r, w = (fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in given)
os.dup2(r, 3)
os.dup2(w, 4)
for fd in {r, w, *given} - {3, 4}:
    os.close(fd)
os.execv(sys.argv[3], sys.argv[3:])
"""


def find_chromium() -> str | None:
    for name in NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


class BrowserError(RuntimeError):
    pass


@dataclass
class PageCheck:
    """What loading one page showed."""

    url: str
    screenshot: Path
    title: str = ""
    text_length: int = 0
    images: list[dict[str, Any]] = field(default_factory=list)  # src, complete, width, height
    console_errors: list[str] = field(default_factory=list)
    remote_requests: list[str] = field(default_factory=list)  # not file:// or data:
    failed_requests: list[str] = field(default_factory=list)

    @property
    def broken_images(self) -> list[str]:
        return [i["src"] for i in self.images if not (i["complete"] and i["width"] > 0)]

    def problems(self) -> list[str]:
        out = [f"console: {e}" for e in self.console_errors]
        out += [f"network request: {u}" for u in self.remote_requests]
        out += [f"failed to load: {u}" for u in self.failed_requests]
        out += [f"image not loaded: {u}" for u in self.broken_images]
        return out


class Browser:
    """One headless Chromium; :meth:`check` loads pages in fresh tabs."""

    def __init__(self, executable: str, profile: Path, *, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._buffer = b""
        self._id = 0
        self._events: list[dict[str, Any]] = []
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        args = [executable, "--headless", "--remote-debugging-pipe", "--disable-gpu",
                f"--user-data-dir={profile}", "--no-first-run", "--no-default-browser-check",
                "--disable-extensions", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-default-apps",
                "--mute-audio", "--hide-scrollbars", "--force-color-profile=srgb",
                "--proxy-server=127.0.0.1:9", "--host-resolver-rules=MAP * ~NOTFOUND",
                "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium's sandbox refuses to run as root
        self.log = profile.parent / "chromium.log"
        with open(self.log, "wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _TRAMPOLINE, str(to_browser_r), str(from_browser_w),
                 *args], pass_fds=(to_browser_r, from_browser_w), stdin=subprocess.DEVNULL,
                stdout=log, stderr=log)
        os.close(to_browser_r)
        os.close(from_browser_w)
        flags = fcntl.fcntl(self._from_browser, fcntl.F_GETFL)
        fcntl.fcntl(self._from_browser, fcntl.F_SETFL, flags | os.O_NONBLOCK)
        self.version = self.call("Browser.getVersion")["product"]

    # -- protocol -----------------------------------------------------------------------------

    def _send(self, method: str, params: dict[str, Any] | None, session: str | None) -> int:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._to_browser, data):]
        except BrokenPipeError:
            raise BrowserError(f"chromium exited ({self._tail()})") from None
        return self._id

    def _next(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("no answer from chromium in time")
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                continue
            try:
                chunk = os.read(self._from_browser, 1 << 20)
            except BlockingIOError:
                continue
            if not chunk:
                raise BrowserError(f"chromium closed the pipe ({self._tail()})")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        wanted = self._send(method, params, session)
        deadline = time.monotonic() + self.timeout
        while True:
            message = self._next(deadline)
            if message.get("id") == wanted:
                if "error" in message:
                    raise BrowserError(f"{method}: {message['error']}")
                return message.get("result", {})
            if "method" in message:
                self._events.append(message)

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.timeout
        for i, event in enumerate(self._events):
            if event["method"] == method and event.get("sessionId") == session:
                return self._events.pop(i)
        while True:
            message = self._next(deadline)
            if message.get("method") == method and message.get("sessionId") == session:
                return message
            if "method" in message:
                self._events.append(message)

    def _tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-500:].strip()
        except OSError:
            return "no log"

    # -- pages ----------------------------------------------------------------------------------

    def check(self, page: Path, screenshot: Path, *, width: int = 1200,
              height: int = 900) -> PageCheck:
        """Load ``page`` and report what rendered (see :class:`PageCheck`)."""
        url = page.resolve().as_uri()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget",
                            {"targetId": target, "flatten": True})["sessionId"]
        try:
            for domain in ("Page", "Runtime", "Log", "Network"):
                self.call(f"{domain}.enable", session=session)
            self.call("Emulation.setDeviceMetricsOverride",
                      {"width": width, "height": height, "deviceScaleFactor": 1,
                       "mobile": False}, session=session)
            self._events = [e for e in self._events if e.get("sessionId") != session]
            self.call("Page.navigate", {"url": url}, session=session)
            self.wait_for("Page.loadEventFired", session)
            result = PageCheck(url=url, screenshot=screenshot)
            state = self._evaluate(session, """JSON.stringify({
                title: document.title,
                text: document.body ? document.body.innerText.length : 0,
                images: [...document.images].map(i => ({src: i.getAttribute('src'),
                    complete: i.complete, width: i.naturalWidth, height: i.naturalHeight}))})""")
            result.title, result.text_length = state["title"], state["text"]
            result.images = state["images"]
            metrics = self.call("Page.getLayoutMetrics", session=session)
            size = metrics.get("cssContentSize") or metrics["contentSize"]
            shot = self.call("Page.captureScreenshot", {
                "format": "png", "captureBeyondViewport": True,
                "clip": {"x": 0, "y": 0, "width": max(width, size["width"]),
                         "height": min(size["height"], 16000), "scale": 1}}, session=session)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            self._collect(session, result)
            return result
        finally:
            self.call("Target.closeTarget", {"targetId": target})

    def _evaluate(self, session: str, expression: str) -> Any:
        answer = self.call("Runtime.evaluate", {"expression": expression,
                                                "returnByValue": True}, session=session)
        if "exceptionDetails" in answer:
            raise BrowserError(f"evaluation failed: {answer['exceptionDetails']}")
        return json.loads(answer["result"]["value"])

    def _collect(self, session: str, result: PageCheck) -> None:
        self.call("Runtime.evaluate", {"expression": "1"}, session=session)  # drain events
        for event in [e for e in self._events if e.get("sessionId") == session]:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                               "assert"):
                result.console_errors.append(" ".join(str(a.get("value", a.get("description")))
                                                      for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                result.console_errors.append(details.get("exception", {}).get(
                    "description") or details.get("text", "exception"))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                entry = params["entry"]
                result.console_errors.append(f"{entry.get('text')} {entry.get('url', '')}")
            elif method == "Network.requestWillBeSent":
                requested = params["request"]["url"]
                if not requested.startswith(("file:", "data:")):
                    result.remote_requests.append(requested)
            elif method == "Network.loadingFailed":
                result.failed_requests.append(f"{params.get('errorText')} "
                                              f"({params.get('type')})")
        self._events = [e for e in self._events if e.get("sessionId") != session]

    def close(self) -> None:
        try:
            self._send("Browser.close", None, None)
            self._proc.wait(timeout=10)
        except (BrowserError, subprocess.TimeoutExpired):
            self._proc.kill()
            self._proc.wait(timeout=10)
        finally:
            os.close(self._to_browser)
            os.close(self._from_browser)


def png_stats(path: Path) -> dict[str, Any]:
    """Size, share of non-white pixels and the colours of a PNG (for "the page rendered")."""
    from matplotlib.image import imread

    pixels = imread(path)[:, :, :3]
    height, width = pixels.shape[:2]
    flat = (pixels.reshape(-1, 3) * 255).round().astype(int)
    non_white = float((flat.min(axis=1) < 245).mean())
    colours = {tuple(c) for c in flat[:: max(1, len(flat) // 200_000)].tolist()}
    return {"width": width, "height": height, "non_white": non_white, "colours": colours}
