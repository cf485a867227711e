"""One execution of a scenario under a scheduler: threads as greenlets, steps, invariant checks.

An :class:`Execution` builds the machine and the initial state (sequentially, without the
scheduler), then starts one greenlet per thread. Each thread runs until its first scheduling
point (impl/sched.py) and parks there with its *pending step*: the label and the objects the
step will read and write, and whether it is enabled (a blocked lock acquire is not). The
caller (an exploration strategy, checker/explore.py) repeatedly picks an enabled thread; the
thread performs its step and runs on to its next point. After every step the invariants of
spec/invariants.py are checked (see :meth:`Execution._check`), and the step is recorded as an
:class:`Event` with its read and write sets, which is what partial-order reduction works on.

Re-executing a scenario from the start along a recorded schedule reproduces it exactly: the
model has no other source of non-determinism (stateless model checking).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Callable, Optional

import greenlet

from unmapcheck.impl import sched
from unmapcheck.impl.sched import Deadlock, KernelBug, LockDiscipline
from unmapcheck.spec import check as CHECK
from unmapcheck.spec.view import ConcreteView

from .scenario import Scenario


@dataclass
class Pending:
    label: str
    reads: frozenset
    writes: frozenset
    wait: Optional[Callable[[], bool]]
    stack: tuple = ()
    adds: frozenset = frozenset()

    def enabled(self) -> bool:
        return self.wait is None or bool(self.wait())


@dataclass
class Event:
    """One executed step."""

    index: int
    tid: int
    label: str
    reads: frozenset
    writes: frozenset
    stack: tuple = ()
    events: list = field(default_factory=list)
    adds: frozenset = frozenset()
    blocking: bool = False      # the step could have waited (a lock acquire, a flush IPI)
    # What judging the state after the step found: (name, group, message, thread) per
    # violation, before the execution's de-duplication (a replay of the step re-reports it).
    findings: tuple = ()


@dataclass
class Violation:
    name: str          # e.g. "I1.return"
    group: str         # e.g. "I1"
    message: str
    step: int          # index of the step after which it was detected (-1: setup)
    thread: str = ""

    def key(self) -> str:
        return self.group


class ThreadState:
    def __init__(self, tid: int, spec, ctx: sched.Context):
        self.tid = tid
        self.spec = spec
        self.name = spec.name
        self.ctx = ctx
        self.glet: Optional[greenlet.greenlet] = None
        self.pending: Optional[Pending] = None
        self.done = False
        self.results: list = []
        # The step after which each result was produced (-1: before the first step).
        self.result_steps: list[int] = []
        self.op_index = 0


def dependent(a, b) -> bool:
    """Two steps (anything with ``reads``, ``writes`` and ``adds`` sets) of different threads
    conflict when one writes what the other touches, or one reads what the other adds to;
    two commutative adds to the same object do not conflict."""
    aw, bw = a.writes, b.writes
    if aw and (not aw.isdisjoint(bw) or not aw.isdisjoint(b.reads) or
               not aw.isdisjoint(b.adds)):
        return True
    if bw and (not bw.isdisjoint(a.reads) or not bw.isdisjoint(a.adds)):
        return True
    if a.adds and not a.adds.isdisjoint(b.reads):
        return True
    return bool(b.adds) and not b.adds.isdisjoint(a.reads)


class Execution:
    """A scenario instantiated and run step by step."""

    def __init__(self, scenario: Scenario, record_stacks: bool = False,
                 check: bool = True):
        from .setup import build_system, thread_body
        self.scenario = scenario
        self.record_stacks = record_stacks
        self.check_invariants = check
        self.events: list[Event] = []
        self.violations: list[Violation] = []
        self._seen: set = set()
        self._step_events: list = []
        self._current: Optional[ThreadState] = None
        self.deadlocked = False
        self.truncated = False
        # Branches of sched.may_fail met so far: (thread, k, kind, label).
        self.choice_points: list[tuple] = []
        self._choice_count: dict[int, int] = {}
        sched.uninstall()
        self.system, self.env = build_system(scenario)
        self.machine = self.system.machine
        self.view = ConcreteView(self.machine)
        # Setup-time problems (a bad counter already) are reported before any step.
        self.threads: list[ThreadState] = []
        for tid, spec in enumerate(scenario.threads):
            ctx = sched.Context(name=spec.name, cpu=spec.cpu)
            self.threads.append(ThreadState(tid, spec, ctx))
        sched.install(self)
        self._main = greenlet.getcurrent()
        try:
            for t in self.threads:
                t.glet = greenlet.greenlet(lambda t=t: thread_body(self, t), parent=self._main)
                self._run_thread(t)
        except BaseException:
            sched.uninstall()
            raise

    # --- runtime protocol (called from impl code inside a thread) ------------------------
    def point(self, label: str, reads, writes, wait, adds=()) -> None:
        t = self._current
        stack = _impl_stack() if self.record_stacks else ()
        t.pending = Pending(label, frozenset(reads), frozenset(writes), wait, stack,
                            frozenset(adds))
        self._main.switch()

    def event(self, kind: str, info: dict) -> None:
        self._step_events.append((kind, info))

    def choose(self, kind: str, label: str) -> bool:
        """impl/sched.py may_fail(): a branch the kernel does not control. Its outcome is
        the scenario's plan (``Scenario.inject``: the thread's k-th such branch takes the
        failing side); every branch of a kind the scenario switched on is recorded, so the
        explorer can plan the other side (checker/explore.py explore_choices)."""
        if kind not in self.scenario.choices:
            return False
        t = self._current
        k = self._choice_count.get(t.tid, 0)
        self._choice_count[t.tid] = k + 1
        point = (t.name, k)
        self.choice_points.append((t.name, k, kind, label))
        taken = point in self.scenario.inject
        if taken:
            self._step_events.append(("choice", {"kind": kind, "label": label,
                                                 "thread": t.name}))
        return taken

    # --- driving -----------------------------------------------------------------------------
    def _run_thread(self, t: ThreadState) -> None:
        self._current = t
        sched.set_current(t.ctx)
        t.pending = None
        try:
            t.glet.switch()
        except (KernelBug, LockDiscipline) as e:
            kind = "LOCK" if isinstance(e, LockDiscipline) else \
                "DEADLOCK" if isinstance(e, Deadlock) else "BUG"
            text = str(e)
            # (the model's lock messages already name the context: the thread, in a run)
            self._violate(kind, kind, text if text.startswith(f"{t.name}: ") else
                          f"{t.name}: {text}", t.name)
            t.done = True
            self.record_result(t, f"{kind}: {e}")
        if t.glet.dead:
            t.done = True
            t.pending = None

    def enabled(self) -> list[int]:
        return [t.tid for t in self.threads if not t.done and t.pending is not None
                and t.pending.enabled()]

    def alive(self) -> list[int]:
        return [t.tid for t in self.threads if not t.done]

    def finished(self) -> bool:
        return all(t.done for t in self.threads)

    def step(self, tid: int, known: Optional[tuple] = None) -> Event:
        """Run thread *tid*'s pending step (and its local work up to the next point).

        *known*: the findings of this very step in an earlier execution with the same
        schedule up to it (a stateless search replaying its prefix): the state after it is
        the same, so they are reported again instead of judging it again."""
        t = self.threads[tid]
        p = t.pending
        assert p is not None and p.enabled(), (t.name, p)
        self._step_events = []
        ev = Event(len(self.events), tid, p.label, p.reads, p.writes, p.stack, adds=p.adds,
                   blocking=p.wait is not None)
        self.events.append(ev)
        self._run_thread(t)
        ev.events = self._step_events
        if self.check_invariants:
            ev.findings = self._check(ev) if known is None else known
            for f in ev.findings:
                self._violate(*f)
        if not any(not x.done and x.pending is not None and x.pending.enabled()
                   for x in self.threads) and not self.finished():
            blocked = [x.name for x in self.threads if not x.done]
            self.deadlocked = True
            self._violate("DEADLOCK", "DEADLOCK", "every remaining thread is blocked: "
                          + ", ".join(f"{x.name} in {x.pending.label if x.pending else '?'}"
                                      for x in self.threads if not x.done), ",".join(blocked))
        return ev

    def close(self) -> None:
        """End the execution: final checks, then tear down the greenlets."""
        if self.check_invariants and self.finished():
            self._check_quiescent()
        for t in self.threads:
            if t.glet is not None and not t.glet.dead:
                t.glet.throw(greenlet.GreenletExit)
        sched.uninstall()

    # --- invariants ----------------------------------------------------------------------
    def _violate(self, name: str, group: str, message: str, thread: str = "") -> None:
        key = (name, message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.violations.append(Violation(name, group, message, len(self.events) - 1, thread))

    def _check(self, ev: Event) -> tuple:
        """Judge the state after step *ev*: the step invariants its writes can break, then
        each event it reported (spec/check.py decides what each moment checks). Returns the
        findings, (name, group, message, thread) each."""
        S = ConcreteView(self.machine)
        thread = self.threads[ev.tid].name
        changed = {o[0] for o in ev.writes} | {o[0] for o in ev.adds}
        found = [(f.name, f.group, f.message, thread)
                 for f in CHECK.violations(S, "step", changed=changed)]
        if ev.events:
            quiet, all_quiet = self._quiet_mms(S)
            for kind, info in ev.events:
                found += [(f.name, f.group, f.message, thread)
                          for f in CHECK.violations(S, kind, info, quiet_mms=quiet,
                                                    all_quiet=all_quiet)]
        return tuple(found)

    def _quiet_mms(self, S) -> tuple[list, bool]:
        """The mms no thread is in the kernel on, and whether no thread is in the kernel at
        all. A kernel actor (the OOM reaper, writeback, migration) may hold batched changes
        of any mm, so while one runs no mm is quiet; so does a thread in the kernel whose mm
        is not known (none is expected: an exiting task's mm is its context's mm)."""
        busy: set = set()
        in_kernel = anywhere = False
        for t in self.threads:
            if t.done:
                continue
            if t.ctx.syscall or t.spec.actor:
                in_kernel = True
                mm = getattr(t.ctx, "mm", None) or (t.ctx.task.mm if t.ctx.task else None)
                if mm is not None:
                    busy.add(mm.id)
                anywhere = anywhere or bool(t.spec.actor) or mm is None
        if anywhere:
            return [], False
        return [m for m in S.mms() if m.id not in busy], not in_kernel

    def _check_quiescent(self) -> None:
        S = ConcreteView(self.machine)
        quiet, all_quiet = self._quiet_mms(S)
        for f in CHECK.violations(S, "quiescent", quiet_mms=quiet, all_quiet=all_quiet):
            self._violate(f.name, f.group, f.message)

    # --- outcome -------------------------------------------------------------------------
    def record_result(self, t: ThreadState, value) -> None:
        """Thread *t* finished an op (a syscall's return value, the byte a load read or the
        signal it got, None for a store), during the step being run."""
        t.results.append(value)
        t.result_steps.append(len(self.events) - 1)

    def results(self) -> dict[str, list]:
        """Every thread's results so far, by thread name: the outcome that litmus-style
        conditions (checker/litmus.py) are evaluated on."""
        return {t.name: list(t.results) for t in self.threads}

    def outcome(self) -> tuple:
        """What this execution produced: every thread's results and the violated groups.
        Equivalent interleavings (same Mazurkiewicz trace) have the same outcome."""
        return (tuple(tuple(t.results) for t in self.threads),
                tuple(sorted({v.group for v in self.violations})))


# Modules whose functions are accessors (a PTE read, a lock, a refcount): a step is attributed
# to the kernel function that called them.
_ACCESSOR_MODULES = {"unmapcheck.impl.pgtable", "unmapcheck.impl.page", "unmapcheck.impl.locks",
                     "unmapcheck.impl.mm_types", "unmapcheck.impl.sched",
                     "unmapcheck.impl.system"}


def _model_helper(name: str) -> bool:
    """Model-only helpers are named with one leading underscore (kernel names may have two)."""
    return name.startswith("_") and not name.startswith("__") or name == "<lambda>"


def _impl_stack() -> tuple:
    """The chain of impl/ (kernel) function names from the syscall down to this point; the
    last element is the kernel function the step belongs to (accessors left out)."""
    names = []
    f = sys._getframe(2)
    while f is not None:
        mod = f.f_globals.get("__name__", "")
        name = f.f_code.co_name
        if mod.startswith("unmapcheck.impl") and mod not in _ACCESSOR_MODULES \
                and not _model_helper(name):
            names.append(name)
        f = f.f_back
    return tuple(reversed(names))
