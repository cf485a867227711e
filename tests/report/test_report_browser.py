"""The report in a real browser: headless Chromium opens it from a file:// URL, the test steps
through it with the keyboard, clicks the race link, toggles the quiet steps, emulates print,
and takes a screenshot that must not be blank.

How Chromium is driven, and why: the DevTools protocol over ``--remote-debugging-pipe``
(Chromium reads NUL-terminated JSON commands on fd 3 and writes replies and events on fd 4).
That needs nothing but the standard library: no selenium and no chromedriver (a new
dependency and a second binary whose version must match the browser), no websocket client
(the protocol's other transport), and no TCP port to pick, race for or leak. The one-shot
``--screenshot``/``--dump-dom`` flags cannot send key presses, so they cannot test stepping.

Skipped only where no Chromium can be found (set UNMAPCHECK_CHROMIUM to point at one);
anything else that goes wrong with the browser fails the test.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import struct
import subprocess
import sys
import time
import zlib

import pytest

from unmapcheck.checker.report import write_html

from tracekit import QUIET_STEPS, RACE, VIOLATION_STEP, make_trace

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--disable-default-apps", "--mute-audio",
         "--hide-scrollbars"]
WIDTH, HEIGHT = 1400, 1000
CPU0, CPU1 = (0x1F, 0x63, 0xC6), (0xC4, 0x5A, 0x0A)  # the lanes' colours in report.CSS
TIMEOUT = 60.0


def find_chromium() -> str | None:
    env = os.environ.get("UNMAPCHECK_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


class Browser:
    """Chromium with the DevTools protocol on a pipe; one page, flattened session."""

    def __init__(self, exe: str, profile: str):
        to_chrome_r, self.to_chrome = os.pipe()
        self.from_chrome, from_chrome_w = os.pipe()
        # Chromium wants the pipe on fds 3 and 4 exactly. A small Python trampoline puts the
        # child's ends there and execs Chromium (no preexec_fn, which is not thread-safe);
        # the ends are moved above 9 first so that placing one cannot clobber the other.
        hi_r = fcntl.fcntl(to_chrome_r, fcntl.F_DUPFD, 10)
        hi_w = fcntl.fcntl(from_chrome_w, fcntl.F_DUPFD, 10)
        for fd in (to_chrome_r, from_chrome_w):
            os.close(fd)
        self.log = open(os.path.join(profile, "chromium.log"), "w+")
        trampoline = ("import os, sys; r, w = int(sys.argv[1]), int(sys.argv[2]); "
                      "os.dup2(r, 3); os.dup2(w, 4); os.close(r); os.close(w); "
                      "os.execv(sys.argv[3], sys.argv[3:])")
        cmd = [sys.executable, "-c", trampoline, str(hi_r), str(hi_w),
               exe, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-pipe",
               f"--window-size={WIDTH},{HEIGHT}", "about:blank"]
        self.proc = subprocess.Popen(cmd, pass_fds=(hi_r, hi_w), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        os.close(hi_r)
        os.close(hi_w)
        self.buf = b""
        self.inbox: list[dict] = []
        self.events: list[dict] = []
        self.next_id = 0
        self.session = None

    def _read(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(self._why("no reply from Chromium"))
        ready, _, _ = select.select([self.from_chrome], [], [], min(left, 1.0))
        if not ready:
            if self.proc.poll() is not None:
                raise RuntimeError(self._why(f"Chromium exited with {self.proc.returncode}"))
            return
        chunk = os.read(self.from_chrome, 1 << 20)
        if not chunk:
            raise RuntimeError(self._why("Chromium closed the DevTools pipe"))
        self.buf += chunk
        *msgs, self.buf = self.buf.split(b"\0")
        for m in msgs:
            msg = json.loads(m)
            (self.inbox if "id" in msg else self.events).append(msg)

    def _why(self, what: str) -> str:
        self.log.flush()
        self.log.seek(0)
        tail = "".join(l for l in self.log.read().splitlines(True)[-15:] if "dbus" not in l)
        return f"{what}; Chromium said:\n{tail}"

    def call(self, method: str, params: dict | None = None, session: bool = True) -> dict:
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        data = json.dumps(msg).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self.to_chrome, data):]
        except BrokenPipeError:
            self.proc.wait(timeout=10)
            raise RuntimeError(self._why(f"Chromium exited with {self.proc.returncode}")) \
                from None
        deadline = time.monotonic() + TIMEOUT
        while True:
            for m in self.inbox:
                if m["id"] == self.next_id:
                    self.inbox.remove(m)
                    if "error" in m:
                        raise RuntimeError(f"{method}: {m['error']}")
                    return m.get("result", {})
            self._read(deadline)

    def wait_event(self, method: str) -> dict:
        deadline = time.monotonic() + TIMEOUT
        while True:
            for e in self.events:
                if e["method"] == method:
                    self.events.remove(e)
                    return e
            self._read(deadline)

    def open(self, url: str) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        self.session = self.call("Target.attachToTarget", {"targetId": target["targetId"],
                                                           "flatten": True},
                                 session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": HEIGHT,
                                                         "deviceScaleFactor": 1,
                                                         "mobile": False})
        self.call("Emulation.setFocusEmulationEnabled", {"enabled": True})
        self.events.clear()
        self.call("Page.navigate", {"url": url})
        self.wait_event("Page.loadEventFired")

    def js(self, expr: str):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True})
        if "exceptionDetails" in r:
            raise AssertionError(f"{expr}: {r['exceptionDetails']}")
        return r["result"].get("value")

    def key(self, key: str) -> None:
        codes = {"ArrowRight": ("ArrowRight", 39), "ArrowLeft": ("ArrowLeft", 37),
                 "Home": ("Home", 36), "End": ("End", 35), "j": ("KeyJ", 74),
                 "k": ("KeyK", 75), "v": ("KeyV", 86), "r": ("KeyR", 82)}
        code, vk = codes[key]
        down = {"type": "keyDown", "key": key, "code": code, "windowsVirtualKeyCode": vk}
        if len(key) == 1:
            down["text"] = key
        else:
            down["type"] = "rawKeyDown"
        self.call("Input.dispatchKeyEvent", down)
        self.call("Input.dispatchKeyEvent", {"type": "keyUp", "key": key, "code": code,
                                             "windowsVirtualKeyCode": vk})

    def click(self, selector: str) -> None:
        """A real mouse click in the middle of the element (scrolled into view first)."""
        box = self.js(f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
                      "e.scrollIntoView({block: 'center'});"
                      "const r = e.getBoundingClientRect();"
                      "return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1})

    def screenshot(self) -> bytes:
        return base64.b64decode(self.call("Page.captureScreenshot", {"format": "png"})["data"])

    def close(self) -> None:
        try:
            if self.proc.poll() is None:
                try:
                    self.call("Browser.close", session=False)
                except (RuntimeError, TimeoutError, OSError):
                    pass
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait()
        finally:
            for fd in (self.to_chrome, self.from_chrome):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self.log.close()


def read_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """Width, height and RGB rows of an 8-bit, non-interlaced RGB or RGBA PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        pos += 12 + n
        if kind == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    bpp = 3 if ctype == 2 else 4
    raw, stride = zlib.decompress(b"".join(idat)), w * bpp
    prev, rows = bytearray(stride), []
    for y in range(h):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif f == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
        rows.append(bytes(line) if bpp == 3 else bytes(b for i, b in enumerate(line) if i % 4 != 3))
    return w, h, rows


@pytest.fixture
def browser(tmp_path):
    exe = find_chromium()
    if exe is None:
        pytest.skip("Chromium not found: install the Debian packages chromium and "
                    "chromium-driver (.ci/run does), or set UNMAPCHECK_CHROMIUM")
    profile = tmp_path / "profile"
    profile.mkdir()
    b = Browser(exe, str(profile))
    try:
        yield b
    finally:
        b.close()


def test_report_in_chromium(browser, tmp_path):
    doc = make_trace()
    last = len(doc["steps"]) - 1
    report = tmp_path / "report.html"
    write_html(doc, str(report))
    url = report.as_uri()
    browser.open(url)

    step = lambda: browser.js("document.body.dataset.step")  # noqa: E731
    assert browser.js("document.documentElement.className") == "js"
    # It opens at the violation, the panel showing the state at that moment.
    assert step() == str(VIOLATION_STEP)
    assert browser.js("document.querySelector('#state h2').textContent") == \
        f"State after step {VIOLATION_STEP}"
    hints = browser.js("Array.from(document.querySelectorAll('#state .hint'))"
                       ".map(e => e.textContent)")
    assert "stale: PTE none, freed frame" in hints

    # Keyboard stepping: Home, right arrow, j/k, End.
    browser.key("Home")
    assert step() == "0"
    for n in range(1, 4):
        browser.key("ArrowRight")
        assert step() == str(n)
    assert browser.js("document.title").startswith(f"step 3/{last} ")
    assert browser.js("document.querySelector('tr.sel').id") == "s3"
    # step 3 is ptep_get_and_clear: the PTE is struck through in the state panel
    removed = browser.js("Array.from(document.querySelectorAll('#state tr.del'))"
                         ".map(r => [r.textContent, getComputedStyle(r.cells[1])"
                         ".textDecorationLine])")
    assert removed == [["mm1 0x7f0000000000pfn 12 rw dirty young", "line-through"]]
    assert "zap_pte_range" in browser.js("document.querySelector('#detail').textContent")
    assert browser.js("document.querySelectorAll('#detail .chain li').length") == \
        len(doc["steps"][3]["stack"])
    browser.key("j")
    assert step() == "4"
    assert browser.js("document.querySelectorAll('#state tr.chg').length") == 2
    browser.key("k")
    browser.key("ArrowLeft")
    assert step() == "2"
    browser.key("End")
    assert step() == str(last)
    browser.key("v")
    assert step() == str(VIOLATION_STEP)

    # The race pair: clicking one end's badge selects the other; r jumps between them.
    a, b = RACE
    browser.click(f"#s{a} a.race")
    assert step() == str(b)
    browser.key("r")
    assert step() == str(a)
    browser.click(f"#s{b} .box .fn")
    assert step() == str(b)

    # Hiding the steps that change nothing: stepping skips them.
    q = QUIET_STEPS[0]
    browser.click("#quiet")
    assert browser.js(f"document.getElementById('s{q}').getClientRects().length") == 0
    browser.js(f"document.getElementById('s{q - 1}').click()")
    assert step() == str(q - 1)
    browser.key("ArrowRight")
    assert step() == str(q + 1)
    browser.click("#quiet")
    browser.key("ArrowLeft")
    assert step() == str(q)

    # Print: no toolbar, the panel flows after the step list.
    browser.call("Emulation.setEmulatedMedia", {"media": "print"})
    assert browser.js("getComputedStyle(document.querySelector('.toolbar')).display") == "none"
    assert browser.js("getComputedStyle(document.querySelector('aside')).position") == "static"
    browser.call("Emulation.setEmulatedMedia", {"media": ""})

    # The screenshot: the header, both lanes in their colours, not a blank page.
    browser.key("Home")
    browser.js("window.scrollTo(0, 0)")
    png = browser.screenshot()
    shots = os.environ.get("UNMAPCHECK_SCREENSHOTS")
    if shots:
        os.makedirs(shots, exist_ok=True)
        with open(os.path.join(shots, "report.png"), "wb") as f:
            f.write(png)
    w, h, rows = read_png(png)
    assert (w, h) == (WIDTH, HEIGHT)
    pixels = [r[i:i + 3] for r in rows[::4] for i in range(0, len(r), 12)]
    colours = set(pixels)
    assert len(colours) > 50, f"{len(colours)} colours: blank?"
    white = sum(1 for p in pixels if p == b"\xff\xff\xff")
    assert white < 0.9 * len(pixels), "mostly white"

    def near(rgb, tol=24):
        return sum(1 for r in rows for i in range(0, len(r), 3)
                   if all(abs(r[i + k] - rgb[k]) <= tol for k in range(3)))
    assert near(CPU0) > 200 and near(CPU1) > 200, "the two CPU lanes are not drawn"

    # Nothing went over the network, nothing failed in the page.
    requests = [e["params"]["request"]["url"] for e in browser.events
                if e["method"] == "Network.requestWillBeSent"]
    assert all(u.startswith("file:") for u in requests), requests
    errors = [e for e in browser.events if e["method"] == "Runtime.exceptionThrown"
              or (e["method"] == "Log.entryAdded" and e["params"]["entry"]["level"] == "error")
              or (e["method"] == "Runtime.consoleAPICalled" and e["params"]["type"] == "error")]
    assert not errors, errors
