"""The project docs and a report site, opened in a real browser (headless Chromium, driven over the Chrome
DevTools protocol on a pipe: no client library): every image loads, formulas are MathML, no console errors,
and nothing but scrollable table wrappers and code blocks is wider than a 1280 px window.

Chromium is not on CI or users' machines: the tests skip when ``chromium`` is not on PATH
(``apt-get install chromium`` to run them).
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WIDTH = 1280
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not on PATH (apt-get install chromium)")

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

#: What a page looks like in the browser, measured by the page itself once loaded.
PROBE = """(() => {
  const vw = document.documentElement.clientWidth;
  const scrolls = (el) => {
    for (let e = el.parentElement; e && e !== document.body; e = e.parentElement) {
      const o = getComputedStyle(e).overflowX;
      if (o === 'auto' || o === 'scroll') return true;
    }
    return false;
  };
  const wide = [];
  for (const el of document.querySelectorAll('table, img, svg, pre, p, h1, h2, h3, li, math')) {
    const r = el.getBoundingClientRect();
    if (r.width > 0 && r.right > vw + 1 && !scrolls(el)) wide.push(el.tagName + ': ' + el.textContent.slice(0, 40));
  }
  return {
    broken: [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.getAttribute('src')),
    images: document.images.length,
    math: document.querySelectorAll('math').length,
    tex: [...document.querySelectorAll('.arithmatex')].length,
    pageWidth: document.documentElement.scrollWidth,
    viewport: vw,
    wide: wide,
  };
})()"""


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

    def open(self, url: str) -> dict:
        """Load ``url``; returns the page's :data:`PROBE` and the console errors it raised."""
        self.events.clear()
        self.call("Page.navigate", session=True, url=url)
        self.wait_event("Page.loadEventFired")
        probe = self.call("Runtime.evaluate", session=True, expression=PROBE, returnByValue=True)["result"]["value"]
        probe["errors"] = [_error_text(e) for e in self.events if _is_error(e)]
        return probe

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


@pytest.fixture(scope="module")
def browser():
    b = Browser()
    yield b
    b.close()


def serve(folder: Path):
    """``folder`` served on 127.0.0.1 at a free port, in a thread; returns (base URL, server)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/", server


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def mkdocs_build(config: Path, out: Path) -> None:
    pytest.importorskip("material")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-f", str(config), "-d", str(out)]
    done = subprocess.run(cmd, cwd=config.parent, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr


def pages(site: Path) -> list[str]:
    return sorted(str(p.relative_to(site)) for p in site.rglob("*.html") if p.name != "404.html")


def check_site(browser: Browser, site: Path) -> dict:
    """Open every page of ``site``; the problems found, by page."""
    base, server = serve(site)
    problems, seen = {}, {}
    try:
        for page in pages(site):
            probe = browser.open(base + page)
            seen[page] = probe
            found = []
            if probe["broken"]:
                found.append(f"images not loaded: {probe['broken']}")
            if probe["tex"]:
                found.append(f"{probe['tex']} formula(s) left as TeX, not MathML")
            if probe["errors"]:
                found.append(f"console errors: {probe['errors']}")
            if probe["pageWidth"] > probe["viewport"] or probe["wide"]:
                found.append(f"wider than {WIDTH} px: {probe['pageWidth']} px; {probe['wide'][:3]}")
            if found:
                problems[page] = found
    finally:
        server.shutdown()
    return problems, seen


def test_project_docs_in_a_browser(browser, tmp_path):
    site = tmp_path / "docs-site"
    mkdocs_build(ROOT / "mkdocs.yml", site)
    problems, seen = check_site(browser, site)
    assert not problems, json.dumps(problems, indent=1)
    assert sum(p["images"] for p in seen.values()) > 0  # the checks saw images at all
    assert seen["concepts/index.html"]["math"] > 0  # the formulas of the concepts page are MathML


def test_report_site_in_a_browser(browser, tmp_path, monkeypatch):
    from rfkit_cli.app import main

    shutil.copy(ROOT / "tests" / "golden" / "tiny_net.py", tmp_path / "tiny_net.py")
    monkeypatch.chdir(tmp_path)
    args = ["-l", "0", "2", "--images", "noise", "-n", "2", "--input-size", "16", "--device", "cpu", "-q"]
    analyze = ["analyze", "tiny_net.py:build", "--trust", *args, "--out", "out"]
    for command in (analyze, ["report", "out", "--site", "s"]):
        with pytest.raises(SystemExit) as exc:
            main(command)
        assert exc.value.code in (0, None)
    mkdocs_build(tmp_path / "s" / "mkdocs.yml", tmp_path / "s" / "site")
    problems, seen = check_site(browser, tmp_path / "s" / "site")
    assert not problems, json.dumps(problems, indent=1)
    model_page = next(p for p in seen if p.startswith("models/"))
    assert seen[model_page]["images"] > 0  # the model's figures are on its page, and loaded


def test_the_checks_find_what_they_look_for(browser, tmp_path):
    """A page with a missing image, a formula left as TeX, a console error and a table wider than the window
    (not in a scrolling wrapper) is reported on each count; the same table in a scrolling wrapper is not."""
    wide = "<table><tr>" + "<td>column&nbsp;of&nbsp;text</td>" * 40 + "</tr></table>"
    (tmp_path / "bad.html").write_text(
        "<html><body><img src='missing.png'><span class='arithmatex'>\\(x\\)</span>"
        f"<script>console.error('boom')</script>{wide}</body></html>"
    )
    (tmp_path / "good.html").write_text(
        f"<html><body><div style='overflow-x: auto'>{wide}</div><math><mi>x</mi></math></body></html>"
    )
    problems, seen = check_site(browser, tmp_path)
    bad = " ".join(problems["bad.html"])
    assert "missing.png" in bad and "left as TeX" in bad and "boom" in bad and "wider than" in bad
    assert "good.html" not in problems and seen["good.html"]["math"] == 1
