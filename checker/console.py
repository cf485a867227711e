"""What the commands print for people: progress while they work, tables that wrap.

On a terminal, a live line on stderr names what is running and for how long; not on a
terminal (a pipe, CI), nothing is redrawn and each finished obligation is one plain line on
stdout, as soon as it finishes, so a log shows progress. Tables go through rich, which wraps
long cells inside their column (to the terminal's width, or COLUMNS) instead of cutting them.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Optional


def status_label(r) -> str:
    """PROVED, FAILED, UNKNOWN, or FOUND: a scenario whose expected violation (a fix switched
    off) was found reads FOUND, not PROVED."""
    from .prove import found_as_expected
    return "FOUND" if found_as_expected(r) else r.status


class Progress:
    """A one-line progress display on a terminal (nothing when stderr is not a tty)."""

    def __init__(self, enabled: Optional[bool] = None):
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self.last = 0.0
        self.width = 0

    def update(self, text: str, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.2:
            return
        self.last = now
        line = text[:110]
        sys.stderr.write("\r" + line.ljust(self.width))
        sys.stderr.flush()
        self.width = len(line)

    def done(self) -> None:
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0


class ProveReporter:
    """Progress of ``unmapcheck prove``: the running obligation and its elapsed time on a
    terminal (redrawn by a ticker thread), one plain line per finished obligation otherwise."""

    def __init__(self, total: int, quiet: bool = False, tty: Optional[bool] = None):
        self.total = total
        self.quiet = quiet
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.done = 0
        self.running: Optional[str] = None
        self.since = time.monotonic()
        self._progress = Progress(self.tty and not quiet)
        self._stop = threading.Event()
        self._ticker: Optional[threading.Thread] = None
        if self.tty and not quiet:
            self._ticker = threading.Thread(target=self._tick, daemon=True)
            self._ticker.start()

    def _line(self) -> str:
        if self.running is None:
            return f"[{self.done}/{self.total}]"
        return (f"[{self.done}/{self.total}] running {self.running} "
                f"({time.monotonic() - self.since:.0f}s)")

    def _tick(self) -> None:
        while not self._stop.wait(0.5):
            self._progress.update(self._line(), force=True)

    def started(self, ob) -> None:
        self.running = ob.name
        self.since = time.monotonic()
        self._progress.update(self._line(), force=True)

    def finished(self, r) -> None:
        self.done += 1
        self.running = None
        if self.quiet:
            return
        if not self.tty:
            print(f"[{self.done}/{self.total}] {status_label(r):7} {r.name} "
                  f"({r.seconds:.2f}s)", flush=True)
        else:
            self._progress.update(self._line(), force=True)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        self._progress.done()


def print_table(results, file=None) -> None:
    """The obligations as a table whose cells wrap within the terminal's width."""
    from rich.console import Console
    from rich.table import Table
    console = Console(file=file or sys.stdout, highlight=False, soft_wrap=False)
    table = Table(show_header=True, header_style="bold", box=None, pad_edge=False)
    table.add_column("obligation", overflow="fold", ratio=3)
    table.add_column("bound", overflow="fold", ratio=2)
    table.add_column("result", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    style = {"PROVED": "green", "FOUND": "cyan", "FAILED": "bold red", "UNKNOWN": "yellow"}
    for r in results:
        label = status_label(r)
        table.add_row(r.name, r.bound, f"[{style.get(label, '')}]{label}[/]",
                      f"{r.seconds:.2f}s")
    console.print(table)
