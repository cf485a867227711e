"""The DPOR state of the exploration tree and the happens-before relation of one execution.

A stateless search re-runs the scenario from the start for every execution; what survives
from one execution to the next is the *path*: one :class:`Node` per state along the current
execution, from the initial state down, each saying what was tried there and what is still to
try. Backtracking pops finished nodes off the end and changes the choice of the deepest node
with something left to try; the next execution replays the prefix above it and goes on from
there.

:class:`Clocks` extends the happens-before relation of the execution being run, step by step,
with vector clocks; :meth:`Clocks.add` returns the step's direct dependencies, from which the
search finds races. :class:`WakeupNode` is a node of a wakeup tree (optimal DPOR).
"""

from __future__ import annotations

from typing import Optional

from .driver import preempts
from .runtime import dependent


class Node:
    """One state of the current execution (the state before step ``depth``)."""

    __slots__ = ("enabled", "pendings", "sleep", "backtrack", "done", "chosen", "prev",
                 "preemptions", "wakeup", "handed", "why", "findings")

    def __init__(self, enabled, pendings, sleep, prev, preemptions):
        # Threads whose pending step can run in this state.
        self.enabled: list[int] = enabled
        # Every live thread's pending step (enabled or blocked): what it will do next, with
        # its read, write and add sets; used to decide independence for sleep sets and to
        # find where a blocked thread was last runnable.
        self.pendings: dict = pendings
        # Threads asleep on arrival: explored from an ancestor state with a step independent
        # of everything since, so running them first here repeats a known execution.
        self.sleep: set[int] = sleep
        # Source-DPOR: threads to try from this state (grows as races are found).
        self.backtrack: set[int] = set()
        # Threads already tried from this state (the one being explored included).
        self.done: set[int] = set()
        # The thread the current execution runs from this state.
        self.chosen: int = -1
        # The thread that ran the step into this state (None at the initial state).
        self.prev: Optional[int] = prev
        # Preemptions spent on the way to this state.
        self.preemptions: int = preemptions
        # Optimal DPOR: the wakeup tree of this state, the sequences still to explore from
        # it, leftmost first; the branch being explored has been handed to the child state.
        self.wakeup: list[WakeupNode] = []
        # A work unit (checker/parallel.py): threads to try here that are, or were handed
        # back as, other units. They are explored after this state's choice in the
        # coordinator's order, so they are not asleep below it.
        self.handed: set[int] = set()
        # Source-DPOR: for each thread added to ``backtrack`` by a race, the initials of the
        # reversed sequence (any one of them would have done): a coordinator that knows
        # more of this state's choices than the worker drops the unit if it has one.
        self.why: dict[int, frozenset] = {}
        # What judging the state after the chosen step found (Event.findings): a later
        # execution that replays this step reports it again without judging again.
        self.findings: Optional[tuple] = None

    def cost(self, tid: int) -> int:
        """1 if running *tid* here preempts the thread that ran last."""
        return int(preempts(self.prev, tid, self.enabled))

    def asleep(self) -> set[int]:
        """Threads whose exploration from here is covered: asleep on arrival, or tried here
        and finished (the current choice is still being explored)."""
        return self.sleep | (self.done - {self.chosen})


class WakeupNode:
    """A node of a wakeup tree: run thread ``tid`` (whose step there is ``step``: its read,
    write and add sets when the sequence was found), then one of ``children``, leftmost
    first. A leaf leaves the rest of the execution to the search."""

    __slots__ = ("tid", "step", "children")

    def __init__(self, tid: int, step, children=None):
        self.tid = tid
        self.step = step
        self.children: list[WakeupNode] = children if children is not None else []


def chain(seq) -> list[WakeupNode]:
    """A wakeup tree with the one branch *seq* (a list of (tid, step))."""
    out: list[WakeupNode] = []
    for tid, step in reversed(seq):
        out = [WakeupNode(tid, step, out)]
    return out


class Clocks:
    """The happens-before relation of one execution, a vector clock per step.

    Two steps are dependent when one writes an object the other reads, writes or adds to, or
    one reads what the other adds to (runtime.dependent); steps of one thread are ordered. The
    clock of a step is the join of its thread's previous step and the last conflicting steps
    on each object it touches."""

    def __init__(self, n_threads: int):
        self.n = n_threads
        self.vcs: list[list[int]] = []      # clock of each step
        self.tids: list[int] = []           # thread of each step
        self.seqs: list[int] = []           # index of each step within its thread, from 1
        self._last_of_thread: dict[int, int] = {}
        self._count: dict[int, int] = {}
        self._last_write: dict = {}
        self._reads_since: dict = {}
        self._adds_since: dict = {}

    def add(self, tid: int, ev) -> tuple[set[int], list[int]]:
        """Record step *ev* of *tid*; return its direct dependencies (earlier steps it
        conflicts with, latest per object) and the clock of its thread before it (shared
        with that step: clocks are never changed once recorded)."""
        n = len(self.tids)
        seq = self._count.get(tid, 0) + 1
        self._count[tid] = seq
        deps: set[int] = set()
        lw, rs, ad = self._last_write, self._reads_since, self._adds_since
        reads, adds, writes = ev.reads, ev.adds, ev.writes
        for o in reads:
            w = lw.get(o)
            if w is not None:
                deps.add(w)
            a = ad.get(o)
            if a:
                deps.update(a)
        for o in adds:
            w = lw.get(o)
            if w is not None:
                deps.add(w)
            r = rs.get(o)
            if r:
                deps.update(r)
        for o in writes:
            w = lw.get(o)
            if w is not None:
                deps.add(w)
            r = rs.get(o)
            if r:
                deps.update(r)
            a = ad.get(o)
            if a:
                deps.update(a)
        vcs = self.vcs
        last = self._last_of_thread.get(tid)
        base = vcs[last] if last is not None else [0] * self.n
        vc = list(base)
        vc[tid] = seq
        for j in deps:
            vc = [a if a >= b else b for a, b in zip(vc, vcs[j])]
        vcs.append(vc)
        self.tids.append(tid)
        self.seqs.append(seq)
        self._last_of_thread[tid] = n
        for o in reads:
            if o not in writes:
                rs.setdefault(o, []).append(n)
        for o in adds:
            if o not in writes:
                ad.setdefault(o, []).append(n)
        for o in writes:
            lw[o] = n
            rs[o] = []
            ad[o] = []
        return deps, base

    def happens_before(self, i: int, k: int) -> bool:
        """Step i happens before step k (i < k)."""
        return self.vcs[k][self.tids[i]] >= self.seqs[i]

    def races(self, n: int, deps: set[int], base: list[int]) -> list[int]:
        """The steps step *n* races with: direct dependencies of another thread that do not
        happen before it through some other path."""
        tid = self.tids[n]
        out = []
        for i in deps:
            ti, si = self.tids[i], self.seqs[i]
            if ti == tid or base[ti] >= si:
                continue
            if any(j != i and self.vcs[j][ti] >= si for j in deps):
                continue
            out.append(i)
        return sorted(out)

    def not_after(self, i: int, n: int) -> list[int]:
        """notdep(i): the steps between i and n that do not happen after step i."""
        ti, si = self.tids[i], self.seqs[i]
        return [k for k in range(i + 1, n) if self.vcs[k][ti] < si]

    def initials(self, seq: list[int]) -> list[int]:
        """Threads whose first step in *seq* (step indices, in order) has no predecessor in
        *seq*: the threads that can start an execution equivalent to *seq*."""
        out: list[int] = []
        seen: set[int] = set()
        for idx, k in enumerate(seq):
            tk = self.tids[k]
            if tk in seen:
                continue
            seen.add(tk)
            if not any(self.happens_before(j, k) for j in seq[:idx]):
                out.append(tk)
        return out


def weak_initial(tid: int, step, seq: list, clocks: Clocks, events) -> bool:
    """Is thread *tid* (whose next step is *step*) a weak initial of *seq* (step indices): its
    first step in *seq* has no predecessor there, or it has no step in *seq* and *step* is
    independent of all of them. Then some execution equivalent to *seq* extended begins with
    *tid*'s step."""
    for idx, k in enumerate(seq):
        if clocks.tids[k] == tid:
            return not any(clocks.happens_before(j, k) for j in seq[:idx])
    return not any(dependent(step, events[k]) for k in seq)


def insert(tree: list[WakeupNode], seq: list[int], clocks: Clocks, events) -> bool:
    """Insert the sequence *seq* (step indices of the current execution) into the wakeup
    tree *tree*, unless an execution equivalent to one of its extensions is already there
    (Abdulla et al., JACM 2017, section 6.2). Returns whether the tree grew."""
    rest = list(seq)
    children = tree
    while rest:
        for child in children:
            if weak_initial(child.tid, child.step, rest, clocks, events):
                first = next((k for k in rest if clocks.tids[k] == child.tid), None)
                if first is not None:
                    rest.remove(first)
                if not child.children:
                    return False        # a leaf: the search explores every continuation
                children = child.children
                break
        else:
            children.extend(chain([(clocks.tids[k], events[k]) for k in rest]))
            return True
    return False
