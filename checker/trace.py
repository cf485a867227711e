"""Counterexample traces: build, save, load, replay and print them.

A trace is the schedule that reached a violation plus what happened at each step: which
thread ran, in which kernel function (the impl/ call chain), the scheduling point's label,
and the state that changed. It is saved as JSON (schema ``unmapcheck-trace``, version
:data:`SCHEMA_VERSION`, documented in docs/trace-format.md) with the states in the style of
Apalache's Informal Trace Format (ITF): ``states`` is a list of records, one per step, each
holding the state variables; maps are written ``{"#map": [[key, value], ...]}``.

The trace embeds the scenario text and the fix toggles that were off, so ``unmapcheck replay
TRACE.json`` re-executes it on the current implementation without the scenario file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from typing import Any, Optional

from unmapcheck.impl.constants import PAGE_SHIFT
from unmapcheck.impl.page import page_flag_names
from unmapcheck.impl.pgtable import iter_ptes, iter_tables
from unmapcheck.impl.pte import describe

from .runtime import Execution
from .scenario import Scenario, ScenarioError, parse

SCHEMA = "unmapcheck-trace"
SCHEMA_VERSION = 1


class TraceError(Exception):
    """A trace file that cannot be used: one line saying what and where."""


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
    return {"vmas": vmas, "ptes": ptes, "tlb": tlb, "walk_cache": pwc, "pages": pages,
            "rss": rss, "tlb_flush_pending": pending, "locks": locks}


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


def write_atomic(path: str, text: str) -> None:
    """Write *text* to *path* via a temporary file in the same directory and a rename."""
    d = os.path.dirname(os.path.abspath(path)) or "."
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=d)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        # mkstemp creates the file 0600; a trace or report is meant to be shared.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def build_trace(scenario: Scenario, schedule: list[int], violation_group: Optional[str] = None,
                command: str = "") -> Trace:
    """Re-execute *schedule* recording call chains and state changes at every step."""
    ex = Execution(scenario, record_stacks=True)
    states = [snapshot(ex.machine)]
    steps: list[Step] = []
    prev_tid = None
    found = None
    try:
        for i, tid in enumerate(schedule):
            if tid not in ex.enabled():
                raise TraceError(f"step {i}: thread {tid} is not enabled: the trace does not "
                                 f"replay on this implementation")
            preempt = prev_tid is not None and tid != prev_tid and prev_tid in ex.enabled()
            t = ex.threads[tid]
            pend = t.pending
            syscall = t.ctx.syscall
            ev = ex.step(tid)
            after = snapshot(ex.machine)
            stack = list(pend.stack)
            steps.append(Step(i, t.name, t.spec.cpu, stack[-1] if stack else pend.label, stack,
                              pend.label, diff(states[-1], after), syscall or t.ctx.syscall,
                              preempt, [k for k, _ in ev.events], _results_at(ex, i)))
            states.append(after)
            prev_tid = tid
            hits = [v for v in ex.violations if violation_group in (None, v.group)]
            if hits:
                found = hits[0]
                break
    finally:
        ex.close()
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
                 preemptions, states, command, race)


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


def load_trace(path: str) -> dict:
    """Read and validate a trace file; one-line TraceError on anything unusable."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise TraceError(f"{path}: cannot read: {e.strerror}") from None
    except UnicodeDecodeError as e:
        raise TraceError(f"{path}: not a trace: byte {e.start} is not UTF-8") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as e:
        raise TraceError(f"{path}:{e.lineno}: not valid JSON ({e.msg}): truncated or not a "
                         f"trace") from None
    except RecursionError:
        raise TraceError(f"{path}: not a trace: JSON nested too deeply") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise TraceError(f"{path}: not an unmapcheck trace (no \"schema\": \"{SCHEMA}\")")
    if doc.get("version") != SCHEMA_VERSION:
        raise TraceError(f"{path}: trace schema version {doc.get('version')!r} is not supported "
                         f"(this unmapcheck reads version {SCHEMA_VERSION})")
    for key, typ in (("scenario", dict), ("schedule", list), ("steps", list),
                     ("states", list), ("threads", list), ("violation", dict),
                     ("fixes_off", list)):
        if not isinstance(doc.get(key), typ):
            raise TraceError(f"{path}: field {key!r} missing or not a {typ.__name__}")
    if not all(isinstance(x, int) and x >= 0 for x in doc["schedule"]):
        raise TraceError(f"{path}: field 'schedule' must be a list of thread numbers")
    sc = doc["scenario"]
    if not isinstance(sc.get("text"), str):
        raise TraceError(f"{path}: field 'scenario.text' missing")
    names = set()
    for i, t in enumerate(doc["threads"]):
        if not (isinstance(t, dict) and isinstance(t.get("name"), str) and
                isinstance(t.get("cpu"), int) and isinstance(t.get("role", ""), str)):
            raise TraceError(f"{path}: threads[{i}] is malformed")
        names.add(t["name"])
    for i, st in enumerate(doc["steps"]):
        if not isinstance(st, dict) or not {"index", "thread", "function", "label",
                                            "changes"} <= set(st):
            raise TraceError(f"{path}: steps[{i}] is malformed")
        if st["thread"] not in names or not isinstance(st["index"], int) or \
                not isinstance(st["function"], str) or not isinstance(st["label"], str):
            raise TraceError(f"{path}: steps[{i}] is malformed")
        if not isinstance(st["changes"], list) or not all(
                isinstance(c, list) and len(c) == 4 for c in st["changes"]):
            raise TraceError(f"{path}: steps[{i}].changes must be [variable, key, old, new] "
                             f"lists")
    for i, st in enumerate(doc["states"]):
        if not isinstance(st, dict) or any(
                k != "#meta" and not (isinstance(v, dict) and isinstance(v.get("#map"), list))
                for k, v in st.items()):
            raise TraceError(f"{path}: states[{i}] is not an ITF state")
    return doc


def scenario_of(doc: dict, path: str) -> Scenario:
    try:
        sc = parse(doc["scenario"]["text"], doc["scenario"].get("path") or path)
    except ScenarioError as e:
        raise TraceError(f"{path}: embedded scenario: {e}") from None
    return sc.with_fixes_off(doc["fixes_off"])


@dataclass
class ReplayResult:
    reproduced: bool
    violation: Optional[dict]
    steps_run: int
    message: str


def replay(doc: dict, path: str) -> ReplayResult:
    """Re-execute a saved trace's schedule on the current implementation."""
    sc = scenario_of(doc, path)
    want = doc["violation"].get("group")
    ex = Execution(sc)
    steps = 0
    try:
        for i, tid in enumerate(doc["schedule"]):
            if tid >= len(ex.threads):
                raise TraceError(f"{path}: schedule[{i}] names thread {tid}, but the scenario "
                                 f"has {len(ex.threads)}")
            if tid not in ex.enabled():
                return ReplayResult(False, None, steps,
                                    f"diverged at step {i}: thread {ex.threads[tid].name} is not "
                                    f"runnable on the current implementation")
            ex.step(tid)
            steps += 1
            hit = [v for v in ex.violations if v.group == want]
            if hit:
                v = hit[0]
                return ReplayResult(True, {"invariant": v.name, "message": v.message}, steps,
                                    f"still fails: {v.name}: {v.message}")
    finally:
        ex.close()
    other = ex.violations[0] if ex.violations else None
    msg = "no longer fails: the schedule runs without violating " + (want or "anything")
    if other is not None:
        msg += f" (but {other.name} is violated: {other.message})"
    return ReplayResult(False, None, steps, msg)


# --- text rendering --------------------------------------------------------------------------
def render_text(doc: dict, width: int = 120, all_changes: bool = False) -> str:
    """One column per thread; each step shows the kernel function and what it changed."""
    threads = doc["threads"]
    n = len(threads)
    col = max(24, (width - 6) // max(n, 1))
    lines = []
    v = doc.get("violation") or {}
    sc = doc["scenario"]
    lines.append(f"scenario: {sc.get('name')}  ({sc.get('path')})")
    if doc.get("fixes_off"):
        lines.append(f"fixes off: {', '.join(doc['fixes_off'])}")
    lines.append(f"{len(doc['steps'])} steps, {doc.get('preemptions', 0)} preemptions")
    lines.append("")
    header = "step  " + "".join(f"{t['name']} (CPU{t['cpu']}, {t['role']})"[:col - 1].ljust(col)
                                for t in threads)
    lines.append(header)
    lines.append("-" * min(width, len(header) + 10))
    names = [t["name"] for t in threads]
    race = set(doc.get("race") or [])
    for st in doc["steps"]:
        idx = names.index(st["thread"]) if st["thread"] in names else 0
        mark = "*" if st["index"] in race else " "
        pre = "~" if st.get("preemption") else " "
        text = f"{st['function']}: {st['label']}" if st["function"] != st["label"] \
            else st["label"]
        cells = [""] * n
        cells[idx] = text
        lines.append(f"{st['index']:>4}{mark}{pre}" + "".join(c[:col - 1].ljust(col) for c in cells))
        for r in st.get("results") or []:
            cells = [""] * n
            cells[idx] = f"  => {r}"
            lines.append("      " + "".join(c[:col - 1].ljust(col) for c in cells))
        changes = st["changes"] if all_changes else [c for c in st["changes"]
                                                      if c[0] != "pages" or c[3] != "free"]
        for var, key, old, new in changes[:8]:
            cells = [""] * n
            cells[idx] = f"  {var} {key}: {old if old is not None else '-'} -> " \
                         f"{new if new is not None else '-'}"
            lines.append("      " + "".join(c[:col - 1].ljust(col) for c in cells))
        if len(changes) > 8:
            cells = [""] * n
            cells[idx] = f"  ... {len(changes) - 8} more changes"
            lines.append("      " + "".join(c[:col - 1].ljust(col) for c in cells))
    lines.append("")
    if v:
        lines.append(f"VIOLATED {v.get('invariant')} after step {v.get('step')}: "
                     f"{v.get('message')}")
    if race:
        lines.append(f"race: steps {', '.join(str(r) for r in sorted(race))} (marked *); "
                     f"~ marks a preemption")
    if doc.get("command"):
        lines.append(f"reproduce: {doc['command']}")
    return "\n".join(lines)
