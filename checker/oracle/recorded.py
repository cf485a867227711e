"""Real-kernel runs kept as data: the oracle's campaign recorded once, replayed on the model
by ``unmapcheck prove`` (the ``oracle:recorded`` obligation) without a kernel.

The live oracle (campaign.py) needs this machine's kernel, a C compiler and /proc; a proof
run must not. So a campaign is *recorded*: every generated sequence with the real kernel's
report of it (each call's result, the VMA list with its smaps counters and VmFlags after
every call, the tunables of the machine) goes to a gzip'd JSON file, and the obligation runs
each sequence on the model and compares with compare.py, exactly as the campaign does. What
it then proves is "the model behaves as Linux RELEASE did on these N sequences", where
RELEASE is the recording's kernel (6.18.44 for the shipped file, the version the model
mirrors): a regression in impl/ that changes a return value, a VMA boundary or flag, an
rss or a loaded byte is caught even where no invariant can see it (a VM_ACCOUNT lost in
mprotect, an mlock range one page short, a merge not made).

A recording is refused when the model disagrees with the kernel at record time: it is a
baseline of agreement, not a list of known differences. The file is data: it is parsed as
JSON and every sequence through the oracle's own validator; a malformed file is one line
(RecordingError) naming the file and the entry.
"""

from __future__ import annotations

import gzip
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

from . import sequence as S

SCHEMA = "unmapcheck-oracle-recording"
VERSION = 1

def default_recording() -> Path:
    """The recording `unmapcheck prove` replays: package data of unmapcheck.proofs,
    wherever the package is installed."""
    import unmapcheck.proofs as P
    return Path(P.__file__).resolve().parent / "oracle-recorded.json.gz"


class RecordingError(ValueError):
    """A recording that cannot be read or used: one line naming the file and what."""


@dataclass
class Recording:
    path: str
    kernel: str
    seed: int
    examples: int
    entries: list            # [(Sequence, real report dict)]


@dataclass
class ReplayOutcome:
    checked: int
    mismatch: Optional[object]           # compare.Mismatch
    sequence: Optional[S.Sequence]
    seconds: float


class _RecordingRunner:
    """Wraps the real runner: what it reports for each sequence is kept."""

    def __init__(self, runner):
        self.runner = runner
        self.kept: list = []

    def run(self, seq):
        real = self.runner.run(seq)
        self.kept.append((seq, real))
        return real

    def close(self):
        self.runner.close()


def record(path: str | os.PathLike, examples: int, seed: int,
           window_pages: int = S.DEFAULT_WINDOW_PAGES, max_calls: int = 12,
           runner=None, progress: Optional[Callable] = None) -> Recording:
    """Run a campaign of *examples* sequences (seeded) on the real kernel and the model and
    write what the kernel reported, atomically. Raises RecordingError if the model
    disagrees anywhere (fix the model, or the comparison, first)."""
    from .campaign import run_campaign
    from .real import RealRunner
    own = runner is None
    real = _RecordingRunner(runner or RealRunner())
    try:
        summary = run_campaign(examples, seed=seed, window_pages=window_pages,
                               max_calls=max_calls, runner=real, shrink=False,
                               progress=progress)
    finally:
        if own:
            real.close()
    if summary.mismatches:
        raise RecordingError(f"{path}: not recorded: the model disagrees with the kernel on "
                             f"{summary.mismatches} of {examples} sequences (run unmapcheck "
                             f"oracle with this seed to see the first)")
    doc = {"schema": SCHEMA, "version": VERSION, "kernel": summary.kernel or "unknown",
           "seed": seed, "examples": examples, "window_pages": window_pages,
           "max_calls": max_calls,
           "entries": [{"sequence": json.loads(S.dumps_json(seq)), "real": rep}
                       for seq, rep in real.kept]}
    data = _encode(doc)
    from ..trace import write_atomic
    write_atomic(os.fspath(path), data)
    return Recording(str(path), doc["kernel"], seed, examples,
                     [(seq, rep) for seq, rep in real.kept])


HEADER_KEYS = ("schema", "version", "kernel", "seed", "examples", "window_pages", "max_calls")


def _encode(doc: dict) -> bytes:
    """The header's keys first and the entries last, so that :func:`read_header` can read
    the header without the whole file."""
    ordered = {k: doc[k] for k in HEADER_KEYS if k in doc}
    ordered["entries"] = doc["entries"]
    return gzip.compress(json.dumps(ordered, separators=(",", ":")).encode(), mtime=0)


@dataclass
class Header:
    path: str
    kernel: str
    seed: int
    examples: int


def read_header(path: str | os.PathLike) -> Header:
    """The recording's kernel, seed and size from its first bytes (listing obligations must
    not parse 4,000 sequences); :func:`load` checks the whole file."""
    where = str(path)
    try:
        with gzip.open(path, "rb") as f:
            head = f.read(4096).decode("utf-8", "replace")
    except OSError as e:
        raise RecordingError(f"{where}: cannot read: {e.strerror or e}") from None
    except EOFError as e:
        raise RecordingError(f"{where}: not a gzip'd JSON recording: {e}") from None
    cut = head.find(',"entries":')
    try:
        doc = json.loads(head[:cut] + "}") if cut > 0 else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("version") != VERSION:
        raise RecordingError(f"{where}: not a recording ({SCHEMA} version {VERSION}, its "
                             f"header first)")
    for key, kind in (("kernel", str), ("seed", int), ("examples", int)):
        if not isinstance(doc.get(key), kind) or isinstance(doc.get(key), bool):
            raise RecordingError(f"{where}: {key}: expected {kind.__name__}")
    return Header(where, doc["kernel"], doc["seed"], doc["examples"])


def load(path: str | os.PathLike) -> Recording:
    """Read and validate a recording (RecordingError, one line, on anything malformed)."""
    where = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise RecordingError(f"{where}: cannot read: {e.strerror or e}") from None
    try:
        doc = json.loads(gzip.decompress(raw).decode("utf-8"))
    except (OSError, EOFError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise RecordingError(f"{where}: not a gzip'd JSON recording: "
                             f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                             ) from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA or doc.get("version") != VERSION:
        raise RecordingError(f"{where}: not a recording ({SCHEMA} version {VERSION})")
    for key, kind in (("kernel", str), ("seed", int), ("examples", int), ("entries", list)):
        if not isinstance(doc.get(key), kind) or isinstance(doc.get(key), bool):
            raise RecordingError(f"{where}: {key}: expected {kind.__name__}")
    entries = []
    for i, e in enumerate(doc["entries"]):
        if not isinstance(e, dict) or set(e) != {"sequence", "real"} or \
                not isinstance(e["real"], dict):
            raise RecordingError(f"{where}: entries[{i}]: expected {{sequence, real}}")
        try:
            seq = S.from_dict(e["sequence"], f"{where}: entries[{i}].sequence")
        except S.SequenceError as err:
            raise RecordingError(str(err).splitlines()[0]) from None
        calls = e["real"].get("calls")
        if not isinstance(calls, list) or len(calls) != len(seq.calls) or \
                not all(isinstance(c, dict) and isinstance(c.get("vmas"), list) for c in calls):
            raise RecordingError(f"{where}: entries[{i}].real: expected a report with one "
                                 f"call (with its vmas) per call of the sequence")
        entries.append((seq, e["real"]))
    if len(entries) != doc["examples"]:
        raise RecordingError(f"{where}: examples says {doc['examples']}, the file has "
                             f"{len(entries)} entries")
    return Recording(where, doc["kernel"], doc["seed"], doc["examples"], entries)


def replay(rec: Recording, timeout: float, model_kw: Optional[dict] = None) -> ReplayOutcome:
    """Run every recorded sequence on the model and compare with the kernel's report; stop
    at the first mismatch, or when *timeout* seconds are spent (checked < examples)."""
    from .compare import RealRunFailed, compare
    from .model import run_model
    t0 = time.monotonic()
    done = 0
    for seq, real in rec.entries:
        if time.monotonic() - t0 > timeout:
            break
        model = run_model(seq, env=real.get("env"), **dict(model_kw or {}))
        try:
            mm = compare(seq, real, model)
        except RealRunFailed as e:
            raise RecordingError(f"{rec.path}: entry {done}: {e}") from None
        if mm is not None:
            return ReplayOutcome(done, mm, seq, time.monotonic() - t0)
        done += 1
    return ReplayOutcome(done, None, None, time.monotonic() - t0)
