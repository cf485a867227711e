"""Counterexample traces: build, save, load, replay and print them.

A trace is the schedule that reached a violation plus what happened at each step: which
thread ran, in which kernel function (the impl/ call chain), the scheduling point's label,
and the state that changed. It is saved as JSON (schema ``unmapcheck-trace``, version
:data:`SCHEMA_VERSION`, documented in docs/trace-format.md) with the states in the style of
Apalache's Informal Trace Format (ITF): ``states`` is a list of records, one per step, each
holding the state variables; maps are written ``{"#map": [[key, value], ...]}``.

The trace embeds the scenario text and the fix toggles that were off, so ``unmapcheck replay
TRACE.json`` re-executes it on the current implementation without the scenario file.

Reading a trace is an input surface: :func:`validate` is the one check of everything that
``show``, ``show --html`` (checker/report.py) and ``replay`` use, so that they accept the same
files, and refuse the others with one line ``FILE: field: what was expected``. Strings from a
trace reach a terminal only with their control characters escaped (:func:`escape_controls`).
Traces and reports are written by :func:`write_atomic` (fsynced, renamed, no ``.tmp-*`` file
left on failure; :class:`OutputError` for an OSError).
"""

from __future__ import annotations

import errno
import json
import os
import re
import secrets
from dataclasses import dataclass, field
from typing import Any, Optional

from unmapcheck.impl.constants import PAGE_SHIFT
from unmapcheck.impl.page import page_flag_names
from unmapcheck.impl.pgtable import iter_ptes, iter_tables
from unmapcheck.impl.pte import describe

from .driver import DIVERGED, Replay, Run, drive
from .runtime import Execution
from .scenario import Scenario, ScenarioError, parse

SCHEMA = "unmapcheck-trace"
SCHEMA_VERSION = 1


class TraceError(Exception):
    """A trace file that cannot be used: one line saying what and where."""


class OutputError(Exception):
    """A trace or report that could not be written: ``PATH: cannot write: <reason>``."""


# --- state snapshots -----------------------------------------------------------------------
def snapshot(machine) -> dict[str, dict]:
    """The state that matters for the unmap paths, flattened to variable -> {key: text}."""
    vmas, ptes, rss, pending, locks, pages = {}, {}, {}, {}, {}, {}
    for mm in machine.mms:
        if mm.freed:
            continue
        m = f"mm{mm.id}"
        for v in mm.mm_mt.vmas:
            from unmapcheck.impl.mm_types import vma_perms
            vmas[f"{m} {v.vm_start:#x}"] = (f"{v.vm_start:#x}-{v.vm_end:#x} {vma_perms(v)} "
                                            f"pgoff {v.vm_pgoff:#x}"
                                            + (" locked" if v.vm_flags & 0x2000 else ""))
        for addr, pte, _t in iter_ptes(mm):
            ptes[f"{m} {addr:#x}"] = describe(pte)
        rss[m] = "file {} anon {} swap {} shmem {}".format(*mm.rss_stat)
        pending[m] = str(mm.tlb_flush_pending)
        if mm.mmap_lock.state() != "unlocked":
            locks[f"mmap_lock {m}"] = mm.mmap_lock.state()
        if mm.page_table_lock.owner is not None:
            locks[f"page_table_lock {m}"] = f"held by {mm.page_table_lock.owner}"
        for _level, _base, table in iter_tables(mm):
            if table.ptl is not None and table.ptl.owner is not None:
                locks[f"ptl pfn {table.pfn}"] = f"held by {table.ptl.owner}"
    tlb, pwc = {}, {}
    for cpu in machine.cpus:
        for (mm_id, vpn), e in sorted(cpu.tlb.items()):
            tlb[f"cpu{cpu.id} mm{mm_id} {vpn << PAGE_SHIFT:#x}"] = repr(e)
        for (mm_id, level, prefix), (pfn, _gen) in sorted(cpu.pwc.items()):
            pwc[f"cpu{cpu.id} mm{mm_id} L{level} #{prefix:#x}"] = f"table pfn {pfn}"
    for page in machine.zone.mem_map[1:]:
        if page.free:
            if page.gen:
                pages[f"pfn {page.pfn}"] = "free"
            continue
        if page.table is not None:
            pages[f"pfn {page.pfn}"] = f"page table L{page.level}"
            continue
        flags = ",".join(page_flag_names(page))
        pages[f"pfn {page.pfn}"] = (f"{page.kind} ref {page._refcount} map "
                                    f"{page._mapcount + 1}" + (f" [{flags}]" if flags else ""))
    out = {"vmas": vmas, "ptes": ptes, "tlb": tlb, "walk_cache": pwc, "pages": pages,
           "rss": rss, "tlb_flush_pending": pending, "locks": locks}
    if machine.arch == "x86":
        out["tlbstate"], out["tlb_gen"] = _x86_tlb_state(machine)
    return out


def _x86_tlb_state(machine) -> tuple[dict, dict]:
    """cpu_tlbstate per CPU (what other CPUs read of loaded_mm, when a store to it is still
    buffered) and each live mm's tlb_gen (impl/x86_tlb.py)."""
    def name(mm) -> str:
        return "init_mm" if mm is None else repr(mm) if not hasattr(mm, "id") else f"mm{mm.id}"
    states = {}
    for cpu in machine.cpus:
        ts = cpu.tlbstate
        text = f"loaded_mm {name(ts.loaded_mm)}"
        if ts.published_mm is not ts.loaded_mm:
            text += f" (others read {name(ts.published_mm)})"
        if ts.is_lazy:
            text += " lazy"
        if ts.cr3 is not ts.loaded_mm:
            text += f" cr3 {name(ts.cr3)}"
        if ts.ctxs:
            text += " tlb_gen " + " ".join(f"mm{m}:{g}" for m, g in sorted(ts.ctxs.items()))
        states[f"cpu{cpu.id}"] = text
    gens = {f"mm{mm.id}": str(mm.tlb_gen) for mm in machine.mms if not mm.freed}
    return states, gens


def diff(before: dict, after: dict) -> list[list]:
    """[variable, key, old, new] for every key whose value changed (None: absent)."""
    out = []
    for var in after:
        a, b = before.get(var, {}), after[var]
        for k in sorted(set(a) | set(b)):
            if a.get(k) != b.get(k):
                out.append([var, k, a.get(k), b.get(k)])
    return out


# --- the trace -------------------------------------------------------------------------------
@dataclass
class Step:
    index: int
    thread: str
    cpu: int
    function: str
    stack: list[str]
    label: str
    changes: list[list]
    syscall: str = ""
    preemption: bool = False
    events: list[str] = field(default_factory=list)
    # What the step completed: each op of the thread that returned during it, as
    # "madvise(...) = -ENOMEM" or "load(addr=0x...) = 0x41" (an outcome, checker/litmus.py).
    results: list[str] = field(default_factory=list)


@dataclass
class Trace:
    scenario_name: str
    scenario_path: str
    scenario_text: str
    fixes_off: list[str]
    arch: str
    schedule: list[int]
    threads: list[dict]
    steps: list[Step]
    violation: dict
    preemptions: int
    states: list[dict]
    command: str = ""
    race: list[int] = field(default_factory=list)
    # The branches that took the failing side ([thread, k] pairs: Scenario.inject).
    inject: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "schema": SCHEMA, "version": SCHEMA_VERSION,
            "scenario": {"name": self.scenario_name, "path": self.scenario_path,
                         "text": self.scenario_text},
            "fixes_off": self.fixes_off, "arch": self.arch,
            "command": self.command,
            "threads": self.threads,
            "schedule": self.schedule,
            "preemptions": self.preemptions,
            "violation": self.violation,
            "race": self.race,
            "inject": self.inject,
            "steps": [s.__dict__ for s in self.steps],
            "#meta": {"format": "ITF", "description": "states[i] is the state after step i "
                      "(states[0]: the initial state)"},
            "vars": list(self.states[0].keys()) if self.states else [],
            "states": [_itf(s, i) for i, s in enumerate(self.states)],
        }

    def save(self, path: str) -> None:
        write_atomic(path, json.dumps(self.to_json(), indent=1) + "\n")


def _itf(state: dict, index: int) -> dict:
    out: dict[str, Any] = {"#meta": {"index": index}}
    for var, m in state.items():
        out[var] = {"#map": [[k, v] for k, v in sorted(m.items())]}
    return out


def _from_itf(state: dict) -> dict:
    out = {}
    for var, v in state.items():
        if var == "#meta":
            continue
        out[var] = {k: val for k, val in v["#map"]}
    return out


def write_atomic(path: str, text: str | bytes) -> None:
    """Write *text* (UTF-8, or bytes as they are) to *path* atomically and durably: a
    temporary ``.tmp-*`` file in the same directory, fsynced, renamed over *path*, then the
    directory fsynced. On any failure (a full disk, an unusable path, Ctrl-C) the temporary
    file is removed and *path* is left as it was; an OSError becomes a one-line
    :class:`OutputError`."""
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    d = os.path.dirname(os.path.abspath(path)) or "."
    try:
        fd, tmp = _create_tmp(d)
    except OSError as e:
        raise _output_error(path, e) from None
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise _output_error(path, e) from None
        raise
    _fsync_dir(path, d)


def _create_tmp(d: str) -> tuple[int, str]:
    """A new ``.tmp-*`` file in *d*, created with mode 0666 less the umask (a trace or report
    is meant to be shared; mkstemp would make it 0600)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | \
        getattr(os, "O_NOFOLLOW", 0)
    for _ in range(100):
        tmp = os.path.join(d, f".tmp-{secrets.token_hex(8)}")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", d)


# fsync of a directory is not supported everywhere (some network and FUSE file systems, or a
# directory we may write but not open): the file is in place, only durability is not asked for.
_NO_DIR_FSYNC = {errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EBADF, errno.EACCES,
                 errno.EPERM, errno.EISDIR}


def _fsync_dir(path: str, d: str) -> None:
    if os.name == "nt":  # pragma: no cover - directories cannot be opened there
        return
    try:
        dfd = os.open(d, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError as e:
        if e.errno in _NO_DIR_FSYNC:
            return
        raise _output_error(path, e) from None
    try:
        os.fsync(dfd)
    except OSError as e:
        if e.errno not in _NO_DIR_FSYNC:
            raise _output_error(path, e) from None
    finally:
        os.close(dfd)


def _output_error(path: str, e: OSError) -> OutputError:
    code = e.errno
    if code is None and len(e.args) == 1 and isinstance(e.args[0], int):
        code = e.args[0]                     # OSError(errno.ENOSPC): no strerror given
    why = e.strerror or (os.strerror(code) if code else "") or str(e) or type(e).__name__
    return OutputError(escape_controls(f"{path}: cannot write: {why}"))


class _Recorder(Replay):
    """Replays a schedule, snapshotting the machine after each step; stops at the first
    violation of the wanted group."""

    def __init__(self, schedule, group: Optional[str]):
        super().__init__(schedule)
        self.group = group
        self.steps: list[Step] = []
        self.states: list = []
        self.found = None
        self._syscall = None

    def pick(self, run: Run, enabled: list[int]) -> Optional[int]:
        tid = super().pick(run, enabled)
        if run.status == DIVERGED:
            raise TraceError(f"step {run.depth}: thread {self.schedule[run.depth]} is not "
                             f"enabled: the trace does not replay on this implementation")
        if tid is not None:
            self._syscall = run.ex.threads[tid].ctx.syscall
        return tid

    def stepped(self, run: Run, tid: int, ev) -> bool:
        ex, i = run.ex, run.depth - 1
        t = ex.threads[tid]
        after = snapshot(ex.machine)
        preempt = run.preemptions[i] > (run.preemptions[i - 1] if i else 0)
        stack = list(ev.stack)
        self.steps.append(Step(i, t.name, t.spec.cpu, stack[-1] if stack else ev.label, stack,
                               ev.label, diff(self.states[-1], after),
                               self._syscall or t.ctx.syscall, preempt,
                               [k for k, _ in ev.events], _results_at(ex, i)))
        self.states.append(after)
        hits = [v for v in ex.violations if self.group in (None, v.group)]
        if hits:
            self.found = hits[0]
            return False
        return True


def build_trace(scenario: Scenario, schedule: list[int], violation_group: Optional[str] = None,
                command: str = "") -> Trace:
    """Re-execute *schedule* recording call chains and state changes at every step."""
    rec = _Recorder(schedule, violation_group)
    ex = Execution(scenario, record_stacks=True)
    rec.states.append(snapshot(ex.machine))
    run = drive(scenario, rec, execution=ex, max_steps=len(schedule))
    steps, states, found = rec.steps, rec.states, rec.found
    if found is None and run.depth < len(schedule):
        raise TraceError(f"step {run.depth}: thread {schedule[run.depth]} is not enabled: the "
                         f"trace does not replay on this implementation")
    if found is None:
        hits = [v for v in ex.violations if violation_group in (None, v.group)]
        found = hits[0] if hits else None
    preemptions = sum(1 for s in steps if s.preemption)
    threads = [{"name": t.name, "cpu": t.spec.cpu,
                "role": t.spec.actor or f"process {t.spec.process}",
                "program": [op.describe() for op in t.spec.program]} for t in ex.threads]
    violation = ({"invariant": found.name, "group": found.group, "message": found.message,
                  "step": found.step, "thread": found.thread} if found else {})
    race = find_race(steps, ex.events[:len(steps)], found.step if found else len(steps) - 1)
    return Trace(scenario.name, scenario.path, scenario.text, list(scenario.fixes_off),
                 scenario.arch, list(schedule[:len(steps)]), threads, steps, violation,
                 preemptions, states, command, race,
                 [list(p) for p in sorted(scenario.inject)])


def counterexample_trace(scenario: Scenario, cex, command: str = "") -> Trace:
    """The trace of an explorer counterexample: its schedule re-run under its own injection
    plan (the branch outcomes it chose), stopped at the violation it found."""
    return build_trace(cex.scenario(scenario), cex.schedule, cex.violation.group, command=command)


def _results_at(ex: Execution, i: int) -> list[str]:
    """The ops that returned during step *i* (step 0 also takes any that returned before the
    first step), each as "op(args) = result"."""
    from .litmus import format_result
    out = []
    for t in ex.threads:
        for k, (value, at) in enumerate(zip(t.results, t.result_steps)):
            if at == i or (i == 0 and at < 0):
                if k < len(t.spec.program):
                    op = t.spec.program[k]
                    kind = op.op if op.op in ("load", "store") else "syscall"
                    out.append(f"{op.describe()} = {format_result(value, kind)}")
                else:
                    out.append(f"{t.spec.actor or 'thread'} = {format_result(value)}")
    return out


_OBSERVERS = {"return_to_user", "switch_mm"}
# Conflicts on these kinds of objects explain a race best; counters and VMAs come next.
_RACE_KINDS = ({"pte", "page", "frame", "tlb"}, {"rss", "vma", "mm_mt", "tlb_flush_pending"})


def find_race(steps: list[Step], events, upto: int) -> list[int]:
    """The two conflicting steps that make the race: the latest pair of dependent steps of
    different threads, at or before the violating step, that conflict on kernel data (a PTE,
    a struct page, a TLB; failing that a counter or a VMA) rather than only on a lock. Used to
    highlight the race in reports."""
    from .runtime import dependent
    last = min(upto, len(events) - 1)
    for kinds in _RACE_KINDS:
        for j in range(last, -1, -1):
            b = events[j]
            if b.label in _OBSERVERS:
                continue
            for i in range(j - 1, -1, -1):
                a = events[i]
                if a.tid == b.tid or a.label in _OBSERVERS:
                    continue
                if not dependent(a, b):
                    continue
                common = (a.writes & (b.reads | b.writes | b.adds)) | \
                    (b.writes & (a.reads | a.adds)) | (a.adds & b.reads) | (b.adds & a.reads)
                if any(o[0] in kinds for o in common):
                    return [i, j]
    return []


# --- reading and checking ---------------------------------------------------------------------
def load_trace(path: str) -> dict:
    """Read and validate a trace file; one-line TraceError on anything unusable.

    The document is checked by :func:`validate`, the one check of everything that ``show``,
    ``show --html`` and ``replay`` use; the document itself is returned."""
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_TRACE_BYTES + 1)      # (/dev/zero is not a trace either)
    except OSError as e:
        raise _trace_error(f"{path}: cannot read: {e.strerror or e}") from None
    if len(raw) > MAX_TRACE_BYTES:
        raise _trace_error(f"{path}: not a trace: larger than {MAX_TRACE_BYTES >> 20} MiB")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise _trace_error(f"{path}: not a trace: byte {e.start} is not UTF-8") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise _trace_error(f"{path}:{e.lineno}: not valid JSON ({e.msg}): truncated or not a "
                           f"trace") from None
    except RecursionError:
        raise _trace_error(f"{path}: not a trace: JSON nested too deeply") from None
    except ValueError as e:  # a number too long to convert (Python's int limit)
        raise _trace_error(f"{path}: not valid JSON ({str(e).split(';')[0]})") from None
    validate(doc, path)
    return doc


# Far above any trace the checker writes (a few hundred KiB to a few MiB).
MAX_TRACE_BYTES = 256 << 20
_MISSING = object()
_SURROGATE = re.compile("[\ud800-\udfff]")
# The groups a violation can name: the invariant groups and what the runtime reports itself.
_RUNTIME_GROUPS = ("DEADLOCK", "BUG", "LOCK")
MAX_CPU = 4095


def known_groups() -> list[str]:
    from unmapcheck.spec.invariants import GROUPS
    return list(GROUPS) + list(_RUNTIME_GROUPS)


def _trace_error(msg: str) -> TraceError:
    return TraceError(escape_controls(msg))


def _shown(v: Any) -> str:
    """A short, one-line rendering of a value for an error message (never a deep repr)."""
    if v is _MISSING:
        return "missing"
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if v.bit_length() <= 64 else "a huge integer"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, str):
        r = repr(v)
        return r if len(r) <= 42 else r[:38] + "...'"
    if isinstance(v, list):
        return f"a list of {len(v)}" if v else "[]"
    if isinstance(v, dict):
        return "an object" if v else "{}"
    return type(v).__name__


class _Checker:
    """Builds the one-line errors: ``WHERE: field: expected WHAT, not VALUE``."""

    def __init__(self, where: str):
        self.where = where

    def fail(self, field: str, what: str) -> TraceError:
        return _trace_error(f"{self.where}: {field}: {what}")

    def expected(self, field: str, what: str, v: Any = _MISSING) -> TraceError:
        if v is _MISSING:
            return self.fail(field, f"missing, expected {what}")
        return self.fail(field, f"expected {what}, not {_shown(v)}")

    def string(self, v: Any, field: str, optional: bool = False) -> str:
        if optional and (v is None or v is _MISSING):
            return ""
        if not isinstance(v, str):
            raise self.expected(field, "a string", v)
        if not v.isascii() and _SURROGATE.search(v):
            raise self.fail(field, "expected text, not a string with a lone surrogate "
                                   f"(\\u{ord(_SURROGATE.search(v).group()):04x})")
        return v

    def strings(self, v: Any, field: str) -> list[str]:
        if v is None or v is _MISSING:
            return []
        if not isinstance(v, list):
            raise self.expected(field, "a list of strings", v)
        return [self.string(x, f"{field}[{i}]") for i, x in enumerate(v)]

    def integer(self, v: Any, field: str, lo: int, hi: int) -> int:
        if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
            rng = f"in {lo}..{hi}" if lo <= hi else f"(there is none: {lo}..{hi} is empty)"
            raise self.expected(field, f"an integer {rng}", v)
        return v

    def text(self, v: Any, field: str) -> Optional[str]:
        """A state value: a short text (numbers and booleans are shown as JSON), or None."""
        if v is None:
            return None
        if isinstance(v, str):
            return self.string(v, field)
        if isinstance(v, (int, float, bool)):
            try:
                return json.dumps(v)
            except ValueError:  # an int beyond Python's conversion limit (not from JSON)
                return _shown(v)
        raise self.expected(field, "a short text or null", v)


def _get(d: dict, key: str) -> Any:
    return d.get(key, _MISSING)


def validate(doc: Any, where: str = "trace") -> dict:
    """Check everything a consumer of a trace uses (``show``, ``show --html``, ``replay``)
    and return it normalised: defaults filled in for the optional fields, fix commits in full,
    states as ``{variable: {key: text}}``, each step with its thread's ``lane``. Raises a
    one-line TraceError ``WHERE: field: what was expected``.

    Required (every version-1 trace has them): ``schema``, ``version``, ``scenario`` with its
    ``text``, ``fixes_off``, ``threads``, ``schedule``, ``steps`` (each with ``index``,
    ``thread``, ``function``, ``label``, ``changes``), ``states``, ``violation`` (``{}``: none
    recorded). Everything else is optional and checked when present."""
    c = _Checker(where)
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise c.fail("schema", f"not an unmapcheck trace (expected \"schema\": \"{SCHEMA}\")")
    ver = _get(doc, "version")
    if not (type(ver) is int and ver == SCHEMA_VERSION):
        raise c.fail("version", f"trace schema version {_shown(ver)} is not supported (this "
                                f"unmapcheck reads version {SCHEMA_VERSION})")

    sc = _get(doc, "scenario")
    if not isinstance(sc, dict):
        raise c.expected("scenario", "an object {name, path, text}", sc)
    scenario = {"name": c.string(_get(sc, "name"), "scenario.name", optional=True),
                "path": c.string(_get(sc, "path"), "scenario.path", optional=True),
                "text": c.string(_get(sc, "text"), "scenario.text")}

    fixes_off = _fixes(c, _get(doc, "fixes_off"))

    threads_in = _get(doc, "threads")
    if not isinstance(threads_in, list) or not threads_in:
        raise c.expected("threads", "a non-empty list of threads", threads_in)
    threads, lane = [], {}
    for i, t in enumerate(threads_in):
        w = f"threads[{i}]"
        if not isinstance(t, dict):
            raise c.expected(w, "an object {name, cpu, role, program}", t)
        name = c.string(_get(t, "name"), f"{w}.name")
        if name in lane:
            raise c.fail(f"{w}.name", f"expected a name of its own, not {_shown(name)} again "
                                      f"(threads[{lane[name]}])")
        lane[name] = i
        threads.append({"name": name,
                        "cpu": c.integer(_get(t, "cpu"), f"{w}.cpu", 0, MAX_CPU),
                        "role": c.string(_get(t, "role"), f"{w}.role", optional=True),
                        "program": c.strings(_get(t, "program"), f"{w}.program")})
    names = list(lane)

    steps_in = _get(doc, "steps")
    if not isinstance(steps_in, list):
        raise c.expected("steps", "a list of steps", steps_in)
    steps = [_step(c, i, s, threads, lane) for i, s in enumerate(steps_in)]

    schedule = _get(doc, "schedule")
    if not isinstance(schedule, list):
        raise c.expected("schedule", "a list of thread numbers", schedule)
    for i, tid in enumerate(schedule):
        c.integer(tid, f"schedule[{i}]", 0, len(threads) - 1)
    if len(schedule) != len(steps):
        raise c.fail("schedule", f"expected one thread number per step ({len(steps)}), "
                                 f"not {len(schedule)}")
    for i, (tid, s) in enumerate(zip(schedule, steps)):
        if s["lane"] != tid:
            raise c.fail(f"steps[{i}].thread", f"expected {_shown(names[tid])} (schedule[{i}] "
                                               f"is {tid}), not {_shown(s['thread'])}")

    preemptions = sum(1 for s in steps if s["preemption"])
    pre = _get(doc, "preemptions")
    if pre is not _MISSING and pre is not None and not (
            type(pre) is int and pre == preemptions):
        raise c.expected("preemptions", f"{preemptions} (the steps marked preemption)", pre)

    states_in = _get(doc, "states")
    if not isinstance(states_in, list):
        raise c.expected("states", "a list of ITF states", states_in)
    if len(states_in) != len(steps) + 1:
        raise c.fail("states", f"expected {len(steps) + 1} states for {len(steps)} steps "
                               f"(states[0] is the initial state), not {len(states_in)}")
    states = [_state(c, i, st) for i, st in enumerate(states_in)]

    violation = _violation(c, _get(doc, "violation"), len(steps))

    race = _get(doc, "race")
    if race is _MISSING or race is None:
        race = []
    if not (isinstance(race, list) and len(race) in (0, 2)):
        raise c.expected("race", "a pair of step indices, or []", race)
    race = [c.integer(r, f"race[{k}]", 0, len(steps) - 1) for k, r in enumerate(race)]
    if race and race[0] == race[1]:
        raise c.fail("race", f"expected two different steps, not step {race[0]} twice")

    inject = _get(doc, "inject")
    if inject is _MISSING or inject is None:
        inject = []
    if not isinstance(inject, list):
        raise c.expected("inject", "a list of [thread, k] branches", inject)
    names = {t["name"] for t in threads}
    for k, p in enumerate(inject):
        if not (isinstance(p, list) and len(p) == 2 and isinstance(p[0], str)
                and p[0] in names and type(p[1]) is int and 0 <= p[1] < 1 << 20):
            raise c.expected(f"inject[{k}]", "[a thread's name, the index of its branch]", p)

    return {"scenario": scenario, "fixes_off": fixes_off,
            "inject": [tuple(p) for p in inject],
            "arch": c.string(_get(doc, "arch"), "arch", optional=True),
            "command": c.string(_get(doc, "command"), "command", optional=True),
            "threads": threads, "schedule": list(schedule), "steps": steps,
            "preemptions": preemptions, "states": states, "violation": violation,
            "race": sorted(race)}


def _fixes(c: _Checker, v: Any) -> list[str]:
    from unmapcheck.impl.fixes import FIXES, resolve_commit
    what = "a list of fix commits (unmapcheck fixes lists them)"
    if not isinstance(v, list):
        raise c.expected("fixes_off", what, v)
    out = []
    for i, x in enumerate(v):
        if not isinstance(x, str):
            raise c.expected(f"fixes_off[{i}]", "a fix commit", x)
        try:
            commit = resolve_commit(x)
        except ValueError:
            raise c.expected(f"fixes_off[{i}]", f"a known fix commit ({', '.join(FIXES)})",
                             x) from None
        if commit not in out:
            out.append(commit)
    return out


def _step(c: _Checker, i: int, s: Any, threads: list[dict], lane: dict) -> dict:
    w = f"steps[{i}]"
    if not isinstance(s, dict):
        raise c.expected(w, "an object", s)
    idx = _get(s, "index")
    if not (type(idx) is int and idx == i):
        raise c.expected(f"{w}.index", str(i), idx)
    th = c.string(_get(s, "thread"), f"{w}.thread")
    if th not in lane:
        raise c.expected(f"{w}.thread", "the name of one of the threads "
                         f"({', '.join(lane)[:80]})", th)
    changes = _get(s, "changes")
    if not isinstance(changes, list):
        raise c.expected(f"{w}.changes", "a list of [variable, key, old, new]", changes)
    chg = []
    for j, x in enumerate(changes):
        cw = f"{w}.changes[{j}]"
        if not (isinstance(x, list) and len(x) == 4):
            raise c.expected(cw, "[variable, key, old, new]", x)
        chg.append([c.string(x[0], f"{cw}[0]"), c.string(x[1], f"{cw}[1]"),
                    c.text(x[2], f"{cw}[2]"), c.text(x[3], f"{cw}[3]")])
    pre = _get(s, "preemption")
    if pre is _MISSING or pre is None:
        pre = False
    if not isinstance(pre, bool):
        raise c.expected(f"{w}.preemption", "true or false", pre)
    cpu = _get(s, "cpu")
    return {"index": i, "thread": th, "lane": lane[th],
            "cpu": threads[lane[th]]["cpu"] if cpu is None or cpu is _MISSING
            else c.integer(cpu, f"{w}.cpu", 0, MAX_CPU),
            "function": c.string(_get(s, "function"), f"{w}.function"),
            "label": c.string(_get(s, "label"), f"{w}.label"),
            "stack": c.strings(_get(s, "stack"), f"{w}.stack"),
            "syscall": c.string(_get(s, "syscall"), f"{w}.syscall", optional=True),
            "preemption": pre,
            "events": c.strings(_get(s, "events"), f"{w}.events"),
            "results": c.strings(_get(s, "results"), f"{w}.results"),
            "changes": chg}


def _state(c: _Checker, i: int, st: Any) -> dict:
    w = f"states[{i}]"
    if not isinstance(st, dict):
        raise c.expected(w, "an ITF state (an object)", st)
    out = {}
    for var, m in st.items():
        if var == "#meta":
            continue
        vw = f"{w}.{c.string(var, f'{w} (a variable name)')[:40]}"
        if not (isinstance(m, dict) and isinstance(m.get("#map"), list)):
            raise c.expected(vw, "an ITF map {\"#map\": [[key, value], ...]}", m)
        kv = {}
        for j, pair in enumerate(m["#map"]):
            if not (isinstance(pair, list) and len(pair) == 2):
                raise c.expected(f"{vw}[{j}]", "a [key, value] pair", pair)
            value = c.text(pair[1], f"{vw}[{j}][1]")
            kv[c.string(pair[0], f"{vw}[{j}][0]")] = "null" if value is None else value
        out[var] = kv
    return out


def _violation(c: _Checker, v: Any, n_steps: int) -> dict:
    if not isinstance(v, dict):
        raise c.expected("violation", "an object ({} when none is recorded)", v)
    if not v:
        return {}
    inv = c.string(_get(v, "invariant"), "violation.invariant")
    groups = known_groups()
    group = _get(v, "group")
    if group not in groups:
        raise c.expected("violation.group", f"an invariant group ({', '.join(groups)})", group)
    if inv.split(".")[0] != group:
        raise c.expected("violation.invariant", f"an invariant of group {group}", inv)
    step = _get(v, "step")
    return {"invariant": inv, "group": group,
            "message": c.string(_get(v, "message"), "violation.message"),
            "thread": c.string(_get(v, "thread"), "violation.thread", optional=True),
            # -1: found in the initial state, before any step
            "step": None if step is None or step is _MISSING
            else c.integer(step, "violation.step", -1, n_steps - 1)}


def scenario_of(doc: dict, path: str) -> Scenario:
    """The trace's embedded scenario, parsed, with the trace's fixes off; one-line
    TraceError if it no longer parses."""
    return _scenario(validate(doc, path), path)


def _scenario(r: dict, path: str) -> Scenario:
    try:
        sc = parse(r["scenario"]["text"], r["scenario"]["path"] or path)
        if r["arch"] is not None and r["arch"] != sc.arch:
            raise _trace_error(f"{path}: arch: the trace says {r['arch']!r}, its embedded "
                               f"scenario runs on {sc.arch!r}")
        return sc.with_fixes_off(r["fixes_off"]).with_inject(r["inject"])
    except ScenarioError as e:
        raise _trace_error(f"{path}: scenario.text: the embedded scenario: {e}") from None
    except RecursionError:
        raise _trace_error(f"{path}: scenario.text: the embedded scenario is nested too "
                           f"deeply") from None
    except Exception as e:  # the text is input: whatever the loader misses is still an error
        raise _trace_error(f"{path}: scenario.text: the embedded scenario cannot be read: "
                           f"{_exc(e)}") from None


def _exc(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


@dataclass
class ReplayResult:
    reproduced: bool
    violation: Optional[dict]
    steps_run: int
    message: str


class _UntilViolated(Replay):
    """Replays a schedule until *group* is violated."""

    def __init__(self, schedule, group: str):
        super().__init__(schedule)
        self.group = group
        self.hit = None

    def stepped(self, run: Run, tid: int, ev) -> bool:
        hit = [v for v in run.ex.violations if v.group == self.group]
        if hit:
            self.hit = hit[0]
            return False
        return True


def replay(doc: dict, path: str) -> ReplayResult:
    """Re-execute a saved trace's schedule on the current implementation: reproduced if the
    violation's group is violated again (at any step of the schedule, or when the execution
    ends)."""
    r = validate(doc, path)
    want = r["violation"].get("group")
    if want is None:
        raise _trace_error(f"{path}: violation: the trace records no violation, so there is "
                           f"nothing to replay")
    sc = _scenario(r, path)
    try:
        ex = Execution(sc)
    except Exception as e:
        from .setup import SetupError
        what = "cannot be set up" if isinstance(e, (SetupError, ScenarioError)) else \
            "fails while its initial state is built"
        raise _trace_error(f"{path}: scenario.text: the embedded scenario {what}: "
                           f"{_exc(e)}") from None
    have = [t.name for t in ex.threads]
    if have != [t["name"] for t in r["threads"]]:
        ex.close()
        raise _trace_error(
            f"{path}: threads: expected the threads of the embedded scenario "
            f"({', '.join(have)[:80]}), not "
            f"{', '.join(t['name'] for t in r['threads'])[:80]}")
    schedule = r["schedule"]
    rep = _UntilViolated(schedule, want)
    run = drive(sc, rep, execution=ex, max_steps=len(schedule))
    steps = run.depth
    if rep.hit is not None:
        return _still_fails(rep.hit, steps)
    if steps < len(schedule):
        return ReplayResult(False, None, steps, escape_controls(
            f"diverged at step {steps}: thread {ex.threads[schedule[steps]].name} is not "
            f"runnable on the current implementation"))
    # Found before the first step (setup) or by the checks at the end of the execution.
    hit = [v for v in ex.violations if v.group == want]
    if hit:
        return _still_fails(hit[0], steps)
    other = ex.violations[0] if ex.violations else None
    msg = f"no longer fails: the schedule runs without violating {want}"
    if other is not None:
        msg += f" (but {other.name} is violated: {other.message})"
    return ReplayResult(False, None, steps, escape_controls(msg))


def _still_fails(v, steps: int) -> ReplayResult:
    return ReplayResult(True, {"invariant": v.name, "message": v.message}, steps,
                        escape_controls(f"still fails: {v.name}: {v.message}"))


# --- text rendering --------------------------------------------------------------------------
# What must not reach a terminal raw: C0 controls (tab and newline too: they would break the
# columns), DEL, C1 controls (0x9b is a CSI on some terminals), and the bidirectional and line
# separator characters that make text display differently from what it is.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7f, *range(0x80, 0xa0))}
_CONTROLS.update({c: f"\\u{c:04x}" for c in (0x061c, 0x200e, 0x200f, 0x2028, 0x2029,
                                             *range(0x202a, 0x202f), *range(0x2066, 0x206a))})
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                         "\u2066-\u2069\ud800-\udfff]")


def escape_controls(s: str) -> str:
    """*s* with every control character written as an escape (``\\x1b``), so that text from a
    trace cannot move the cursor, recolour or retitle the terminal, or reorder what is shown."""
    if not _CONTROL_RE.search(s):
        return s
    return _CONTROL_RE.sub(lambda m: _CONTROLS.get(ord(m.group()), f"\\u{ord(m.group()):04x}"),
                           s)


def render_text(doc: dict, width: Optional[int] = None, all_changes: bool = False) -> str:
    """One column per thread; each step shows the kernel function, each op's result and
    every state change, whole: a long line wraps inside its thread's lane. *width* defaults to
    the terminal's (COLUMNS when set, else 120). Pages that only became free are left out
    unless *all_changes*. *doc* is checked as :func:`validate` checks it (TraceError
    otherwise), and every string from it is printed with its control characters escaped."""
    import shutil
    import textwrap
    if width is None:
        width = shutil.get_terminal_size((120, 24)).columns
    r = validate(doc, "cannot show the trace")
    e = escape_controls
    threads = r["threads"]
    n = len(threads)
    col = max(24, (width - 6) // n)
    lines = []
    v = r["violation"]
    sc = r["scenario"]
    lines.append(f"scenario: {e(sc['name'])}  ({e(sc['path'])})")
    if r["fixes_off"]:
        lines.append(f"fixes off: {', '.join(r['fixes_off'])}")
    if r["inject"]:
        lines.append("failing branches: " + ", ".join(f"{t}'s #{k}" for t, k in r["inject"]))
    lines.append(f"{len(r['steps'])} steps, {r['preemptions']} preemptions")
    lines.append("")
    header = "step  " + "".join(e(f"{t['name']} (CPU{t['cpu']}, {t['role']})")[:col - 1]
                                .ljust(col) for t in threads)
    lines.append(header)
    lines.append("-" * min(width, len(header) + 10))
    race = set(r["race"])

    def row(lane: int, text: str, prefix: str = "      ") -> str:
        pieces = textwrap.wrap(e(text), col - 1, subsequent_indent="    ",
                               break_on_hyphens=False) or [""]
        out = []
        for k, piece in enumerate(pieces):
            cells = [""] * n
            cells[lane] = piece
            out.append((prefix if k == 0 else " " * len(prefix)) +
                       "".join(c.ljust(col) for c in cells).rstrip())
        return "\n".join(out)

    for st in r["steps"]:
        i, lane = st["index"], st["lane"]
        mark = "*" if i in race else " "
        pre = "~" if st["preemption"] else " "
        text = f"{st['function']}: {st['label']}" if st["function"] != st["label"] \
            else st["label"]
        lines.append(row(lane, text, f"{i:>4}{mark}{pre}"))
        for res in st["results"]:
            lines.append(row(lane, f"  => {res}"))
        changes = st["changes"] if all_changes else [c for c in st["changes"]
                                                      if c[0] != "pages" or c[3] != "free"]
        for var, key, old, new in changes:
            lines.append(row(lane, f"  {var} {key}: {old if old is not None else '-'} -> "
                                   f"{new if new is not None else '-'}"))
    lines.append("")
    if v:
        when = (" in the initial state" if v["step"] == -1 else
                f" after step {v['step']}" if v["step"] is not None else "")
        lines.append(e(f"VIOLATED {v['invariant']}{when}: {v['message']}"))
    if race:
        lines.append(f"race: steps {', '.join(str(x) for x in sorted(race))} (marked *); "
                     f"~ marks a preemption")
    if r["command"]:
        lines.append(f"reproduce: {e(r['command'])}")
    return "\n".join(lines)
