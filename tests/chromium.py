"""Headless Chromium driven over the Chrome DevTools protocol on a pipe (no client library): the browser
tests (tests/test_browser.py) and the atlas screenshots of the docs (docs/atlas_screenshots.py) use it.

Chromium comes from the system packages (``apt-get install chromium``); :data:`CHROMIUM` is None without it.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

WIDTH = 1280
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--remote-debugging-pipe",
]


class Browser:
    """Headless Chromium, one tab, spoken to over ``--remote-debugging-pipe`` (fds 3 and 4: NUL-terminated
    JSON messages of the DevTools protocol)."""

    def __init__(self) -> None:
        self.profile = tempfile.mkdtemp(prefix="rfkit-chromium-")
        to_browser_r, self._send = os.pipe()
        self._recv, from_browser_w = os.pipe()
        # the browser reads commands on fd 3 and writes replies on fd 4
        self.proc = subprocess.Popen(
            [CHROMIUM, *FLAGS, f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(3, 4),
            preexec_fn=functools.partial(_dup_pipes, to_browser_r, from_browser_w),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser_r)
        os.close(from_browser_w)
        self._buf = b""
        self._id = 0
        self.origin = ""
        self.events: list[dict] = []
        target = self.call("Target.createTarget", url="about:blank")["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            self.call(f"{domain}.enable", session=True)
        self.call(
            "Emulation.setDeviceMetricsOverride",
            session=True,
            width=WIDTH,
            height=900,
            deviceScaleFactor=1,
            mobile=False,
        )

    def call(self, method: str, session: bool = False, timeout: float = 30.0, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if session:
            msg["sessionId"] = self.session
        os.write(self._send, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            reply = self._next(end)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)
        raise TimeoutError(method)

    def _next(self, end: float) -> dict:
        import select

        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._recv], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise TimeoutError("no message from chromium")
            chunk = os.read(self._recv, 1 << 20)
            if not chunk:
                raise RuntimeError("chromium closed the pipe")
            self._buf += chunk
        raw, self._buf = self._buf.split(b"\0", 1)
        return json.loads(raw)

    def wait_event(self, method: str, timeout: float = 30.0) -> dict:
        end = time.monotonic() + timeout
        while True:
            for i, e in enumerate(self.events):
                if e.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._next(end))

    def open(self, url: str, probe: str = "({})") -> dict:
        """Load ``url``; the value of the JavaScript ``probe`` (an object) evaluated once the page has loaded,
        with ``errors``: the console errors it raised."""
        self.events.clear()
        self.origin = _origin(url)
        self.call("Page.navigate", session=True, url=url)
        self.wait_event("Page.loadEventFired")
        found = self.evaluate(probe)
        found["errors"] = self.errors()
        return found

    def errors(self) -> list[str]:
        """The console errors and uncaught exceptions of the page since it was opened (not the late tab-icon
        request of a page of another origin opened before, whose server may be gone by now)."""
        self.evaluate("0")  # a round trip: events sent before its reply are in self.events
        return [_error_text(e) for e in self.events if _is_error(e) and not self._earlier_icon(e)]

    def _earlier_icon(self, event: dict) -> bool:
        url = event.get("params", {}).get("entry", {}).get("url", "")
        return url.endswith("/favicon.ico") and _origin(url) != self.origin

    def evaluate(self, expression: str):
        """The value of the JavaScript ``expression`` in the page (returned by value: JSON-like)."""
        reply = self.call("Runtime.evaluate", session=True, expression=expression, returnByValue=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression[:60]}: {reply['exceptionDetails'].get('text')}")
        return reply["result"].get("value")

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the centre of the first element matching ``selector``,
        scrolled into view first."""
        js = json.dumps(selector)
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({js}); e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent", session=True, type=kind, x=box[0], y=box[1], button="left", clickCount=1
            )

    def type_into(self, selector: str, text: str) -> None:
        """Focus the first element matching ``selector``, clear it and type ``text`` as keyboard input would."""
        self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.focus(); e.select(); }})()"
        )
        self.call("Input.insertText", session=True, text=text)

    def screenshot(self, path, clip_selector: str | None = None, height: int | None = None) -> Path:
        """A PNG of the window (``height`` px tall when given), or of the region from the top of the page down
        to the bottom of the first element matching ``clip_selector``."""
        params = {"format": "png"}
        if clip_selector or height:
            bottom = height or self.evaluate(
                f"document.querySelector({json.dumps(clip_selector)}).getBoundingClientRect().bottom + window.scrollY"
            )
            params["clip"] = {"x": 0, "y": 0, "width": WIDTH, "height": bottom, "scale": 1}
            params["captureBeyondViewport"] = True
        data = self.call("Page.captureScreenshot", session=True, **params)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        os.close(self._send)
        os.close(self._recv)
        shutil.rmtree(self.profile, ignore_errors=True)


def _origin(url: str) -> str:
    """``http://127.0.0.1:8000`` for ``http://127.0.0.1:8000/a/b.html``."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _dup_pipes(read_fd: int, write_fd: int) -> None:
    """In the child: the pipe's ends at fds 3 and 4 (through copies, in case either already is 3 or 4)."""
    r, w = os.dup(read_fd), os.dup(write_fd)
    os.dup2(r, 3)
    os.dup2(w, 4)


def _is_error(event: dict) -> bool:
    p = event.get("params", {})
    method = event.get("method")
    return (
        method == "Runtime.exceptionThrown"
        or (method == "Runtime.consoleAPICalled" and p.get("type") == "error")
        or (method == "Log.entryAdded" and p.get("entry", {}).get("level") == "error")
    )


def _error_text(event: dict) -> str:
    p = event["params"]
    if "entry" in p:
        return f"{p['entry'].get('text')} ({p['entry'].get('url', '')})"
    if "exceptionDetails" in p:
        return p["exceptionDetails"].get("text", "") + str(
            p["exceptionDetails"].get("exception", {}).get("description")
        )
    return " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", []))


def serve(folder: Path):
    """``folder`` served on 127.0.0.1 at a free port, in a thread; returns (base URL, server)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass
