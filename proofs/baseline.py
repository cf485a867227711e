"""``baseline:sequences``: what the model does on each bounded sequence, against a recorded
baseline -- a change detector for impl/, not a proof of anything.

``bounded:sequences(...)`` (proofs/sequences.py) proves that no short sequence breaks an
invariant. An invariant cannot object to a change that keeps the kernel safe but makes it
do something else: a flush that covers more than it must, a full flush where a ranged one
did, a page table kept after the munmap that emptied it, an error code that changed, a
batch that no longer batches. Those are regressions a kernel developer wants to hear about
(over-flushing and leaked page tables are performance bugs the kernel fixes; a changed
errno breaks user space), and no safety invariant can see them.

So this obligation runs every sequence of the bounded obligations (same layouts, same
alphabet, same length 2), and every corpus scenario that is one sequential program (one
thread, no actor, no failure choices: one execution), and compares with what the recorded
baseline says the model did, program by program:

* ``results``: each call's result (its return value, a load's byte or signal);
* ``flushes``: every TLB flush the calls completed, in order, as ``[start, end,
  freed_tables]`` (the ``tlb_flush`` event of x86's flush_tlb_mm_range, arm64's
  __flush_tlb_range / flush_tlb_mm, powerpc's radix flushes);
* ``pages``: the frames allocated when the sequence ends, by kind (page tables, anonymous,
  page cache ...): a table or a page kept, or freed, that the baseline did not;
* ``dirty``: of those, the ones with PG_dirty set, by kind: a write that no longer marks its
  page dirty (writeback would skip it) or a page dirtied that was clean;
* ``hiwater``: each live mm's VmHWM (get_mm_hiwater_rss: the larger of hiwater_rss, which
  update_hiwater_rss raises before a zap, and the current rss), in pages: an rss sum or a
  high-water update gone wrong;
* ``faults``: the page faults the program's tasks completed, ``[minor, major]`` as
  getrusage() reports them (mm_account_fault): a fault that was not needed (a PTE left
  read-only that could have been writable, a populate that populated less), or one
  saved that should not have been.

PROVED means the model behaves on every sequence exactly as when the baseline was recorded.
FAILED names the first sequence that differs and how, with the scenario to re-run. A
difference is not a bug by itself: when impl/ changes on purpose (to mirror a kernel
patch), read the difference, then re-record with ``unmapcheck prove --record-baseline
FILE.json.gz`` (the default baseline is proofs/baseline-sequences.json.gz) and commit it
with the change. A baseline whose sequences are not the bounded obligations' (the alphabet
or a layout changed) is FAILED as stale. ``--bound`` does not apply (the baseline is the
bound); ``--timeout`` does (a run cut short is UNKNOWN).
"""

from __future__ import annotations

import gzip
import json
import time
from collections import Counter
from pathlib import Path
from typing import Optional

from unmapcheck.checker.prove import (FAILED, PROVED, UNKNOWN, Obligation, ObligationResult,
                                      Options)
from unmapcheck.proofs import sequences as S

NAME = "baseline:sequences"
SCHEMA = "unmapcheck-baseline"
VERSION = 4
LENGTH = S.DEFAULT_LENGTH
DEFAULT_PATH = Path(__file__).parent / "baseline-sequences.json.gz"
BOUND = f"every sequence of <= {LENGTH} calls of the bounded layouts, the one-thread scenarios"


class BaselineError(ValueError):
    """An unreadable or malformed baseline file (one line)."""


def _key(seq) -> str:
    return "; ".join(label for label, _ in seq)


def signature(lay: S.Layout, seq) -> dict:
    """Run *seq* on *lay* once (one thread: one interleaving), without invariant checks (the
    bounded obligations check those), and say what the model did."""
    from unmapcheck.checker.scenario import parse
    return program_signature(parse(S.scenario_text(lay, seq), f"<{NAME}>"))


def corpus_programs() -> dict:
    """The corpus scenarios that are one sequential program, by file name (without .toml):
    one thread running system calls, no failure choices, so one execution."""
    from unmapcheck.checker.scenario import load
    from unmapcheck.proofs import scenario_paths
    out = {}
    for path in scenario_paths():
        sc = load(str(path))
        if len(sc.threads) == 1 and not sc.threads[0].actor and not sc.choices:
            out[path.stem] = sc
    return out


def program_signature(sc) -> dict:
    """Run scenario *sc* (one thread) once, without invariant checks (its obligation checks
    those), and say what the model did."""
    from unmapcheck.checker.runtime import Execution
    from unmapcheck.impl.mm_types import get_mm_rss
    from unmapcheck.impl.page import PG_dirty
    ex = Execution(sc, check=False)
    try:
        while not ex.finished():
            enabled = ex.enabled()
            if not enabled:
                break
            ex.step(enabled[0])
        flushes = [[info["start"], info["end"], bool(info.get("freed_tables"))]
                   for ev in ex.events for kind, info in ev.events if kind == "tlb_flush"]
        pages = Counter(p.kind for p in ex.machine.zone.mem_map if not p.free)
        dirty = Counter(p.kind for p in ex.machine.zone.mem_map
                        if not p.free and p.flags & PG_dirty)
        tasks = [proc.task for proc in ex.system.processes]
        hiwater = [max(t.mm.hiwater_rss, get_mm_rss(t.mm)) for t in tasks
                   if t.mm is not None and not t.mm.freed]
        return {"results": [_plain(r) for r in ex.results()["T0"]],
                "flushes": flushes,
                "pages": dict(sorted(pages.items())),
                "dirty": dict(sorted(dirty.items())),
                "hiwater": hiwater,
                "faults": [sum(t.min_flt for t in tasks), sum(t.maj_flt for t in tasks)]}
    finally:
        ex.close()


def _plain(value):
    """A result as JSON keeps it (an int, a string, None)."""
    return value if value is None or isinstance(value, (int, str)) else str(value)


def record(path: str, progress=None) -> int:
    """Record the baseline of every layout's sequences to *path* (atomically); returns how
    many sequences."""
    layouts = {}
    n = 0
    for lay in S.LAYOUTS:
        entries = {}
        for seq in S.sequences(lay, LENGTH):
            entries[_key(seq)] = signature(lay, seq)
            n += 1
        layouts[lay.name] = entries
        if progress:
            progress(lay.name, len(entries))
    scenarios = {name: program_signature(sc) for name, sc in corpus_programs().items()}
    n += len(scenarios)
    doc = {"schema": SCHEMA, "version": VERSION, "length": LENGTH, "layouts": layouts,
           "scenarios": scenarios}
    data = gzip.compress(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode(),
                         mtime=0)
    from unmapcheck.checker.trace import write_atomic
    write_atomic(path, data)
    return n


def load(path) -> tuple[dict, dict]:
    """The baseline's layouts, {layout: {sequence key: signature}}, and scenarios, {scenario
    file name: signature}; BaselineError if the file cannot be read or is not a
    baseline."""
    try:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            doc = json.load(f)
    except FileNotFoundError:
        raise BaselineError(f"{path}: no such file") from None
    except (OSError, EOFError, UnicodeDecodeError, ValueError) as e:
        raise BaselineError(f"{path}: not a gzip-compressed JSON baseline "
                            f"({str(e).splitlines()[0] if str(e) else type(e).__name__})") \
            from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise BaselineError(f"{path}: not an {SCHEMA} file")
    if doc.get("version") != VERSION:
        raise BaselineError(f"{path}: version {doc.get('version')!r}, this unmapcheck reads "
                            f"version {VERSION}")
    layouts = doc.get("layouts")
    if not isinstance(layouts, dict) or not all(isinstance(v, dict) for v in layouts.values()):
        raise BaselineError(f"{path}: field 'layouts': expected a table of tables")
    scenarios = doc.get("scenarios")
    if not isinstance(scenarios, dict) or not all(isinstance(v, dict)
                                                  for v in scenarios.values()):
        raise BaselineError(f"{path}: field 'scenarios': expected a table of tables")
    return layouts, scenarios


def _difference(want: dict, got: dict) -> str:
    for field in ("results", "flushes", "pages", "dirty", "hiwater", "faults"):
        if want.get(field) != got.get(field):
            return f"{field}: recorded {_short(want.get(field))}, now {_short(got.get(field))}"
    return "no difference"


def _short(v) -> str:
    s = json.dumps(v)
    return s if len(s) <= 300 else s[:297] + "..."


def run(opts: Options, path=None, only: Optional[str] = None) -> ObligationResult:
    """Compare every program with the baseline at *path* (default: the shipped one); with
    *only*, just the programs of that layout or corpus scenario (a quicker look where a
    change is expected; the staleness check still covers the whole baseline)."""
    t0 = time.monotonic()
    path = DEFAULT_PATH if path is None else path
    bound = BOUND
    try:
        layouts, scenarios = load(path)
    except BaselineError as e:
        return ObligationResult(NAME, "baseline", bound, FAILED, time.monotonic() - t0,
                                f"cannot load the baseline: {e}")
    now = {lay.name: {_key(seq): seq for seq in S.sequences(lay, LENGTH)} for lay in S.LAYOUTS}
    programs = corpus_programs()
    stale = _stale(layouts, now) or _stale_scenarios(scenarios, programs)
    if stale:
        return ObligationResult(NAME, "baseline", bound, FAILED, time.monotonic() - t0,
                                f"the baseline is stale: {stale}; re-record it with "
                                f"unmapcheck prove --record-baseline FILE.json.gz")
    if only is not None:
        programs = {n: sc for n, sc in programs.items() if n == only}
        now = {n: seqs if n == only else {} for n, seqs in now.items()}
    done = 0
    total = sum(len(v) for v in now.values()) + len(programs)
    for name, sc in programs.items():
        got = program_signature(sc)
        if got != scenarios[name]:
            return ObligationResult(
                NAME, "baseline", bound, FAILED, time.monotonic() - t0,
                f"scenario {name} does not do what the baseline recorded: "
                f"{_difference(scenarios[name], got)} (a change, not necessarily a bug: "
                f"re-record with unmapcheck prove --record-baseline if it is meant)",
                {"counterexample": f"unmapcheck explore {name}"})
        done += 1
    for lay in S.LAYOUTS:
        for key, seq in now[lay.name].items():
            if time.monotonic() - t0 > opts.timeout:
                return ObligationResult(NAME, "baseline", bound, UNKNOWN,
                                        time.monotonic() - t0,
                                        f"time budget spent after {done} of {total} sequences")
            got = signature(lay, seq)
            want = layouts[lay.name][key]
            if got != want:
                return ObligationResult(
                    NAME, "baseline", bound, FAILED, time.monotonic() - t0,
                    f"{lay.name}, the sequence [{key}] does not do what the baseline "
                    f"recorded: {_difference(want, got)} (a change, not necessarily a bug: "
                    f"re-record with unmapcheck prove --record-baseline if it is meant)",
                    {"counterexample": "the sequence as a scenario (save it and run "
                     "unmapcheck explore FILE):\n" + S.scenario_text(lay, seq)})
            done += 1
    return ObligationResult(NAME, "baseline", bound, PROVED, time.monotonic() - t0,
                            f"all {done} sequential programs ({len(programs)} of them corpus "
                            f"scenarios): every call's result, every TLB flush, the frames "
                            f"left allocated (and dirty), the rss high-water marks and the "
                            f"page faults taken as recorded")


def _stale(layouts: dict, now: dict) -> Optional[str]:
    if set(layouts) != set(now):
        return (f"it has layouts {sorted(layouts)}, the bounded obligations "
                f"{sorted(now)}")
    for name, seqs in now.items():
        missing = [k for k in seqs if k not in layouts[name]]
        extra = [k for k in layouts[name] if k not in seqs]
        if missing or extra:
            what = (f"[{missing[0]}] is not in it" if missing
                    else f"it has [{extra[0]}], which is not a sequence any more")
            return f"{name}: {len(missing)} sequence(s) missing, {len(extra)} extra ({what})"
    return None


def _stale_scenarios(recorded: dict, now: dict) -> Optional[str]:
    missing = sorted(set(now) - set(recorded))
    extra = sorted(set(recorded) - set(now))
    if missing:
        return f"scenario {missing[0]} is not in it"
    if extra:
        return f"it has scenario {extra[0]}, which is not a one-thread corpus scenario any more"
    return None


def obligations() -> list[Obligation]:
    return [Obligation(NAME, "baseline", BOUND, lambda opts: run(opts))]
