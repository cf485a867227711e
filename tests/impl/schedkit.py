"""Runtimes for the impl tests: a recorder for sequential runs, and a small greenlet scheduler
for hand-built interleavings (the explorer, checker/runtime.py, runs whole scenarios; these run
a few thread bodies built by a test).
"""

from __future__ import annotations

import random
from typing import Callable, Optional

import greenlet

from unmapcheck.impl import sched


class Recorder:
    """A sequential runtime: records every scheduling point (label, objects touched) and every
    sched.event(), and can run a *hook* at each point (to inject another actor's steps at a
    chosen moment). A step that would block is a deadlock in a sequential run."""

    def __init__(self, hook: Optional[Callable[[str], None]] = None):
        self.hook = hook
        self.labels: list[str] = []
        self.steps: list[tuple[str, tuple, tuple]] = []   # (label, reads, writes + adds)
        self.events: list[tuple[str, dict]] = []

    def point(self, label, reads, writes, wait, adds=()):
        if wait is not None and not wait():
            raise sched.Deadlock(f"{label} would sleep forever (recorded run)")
        self.labels.append(label)
        self.steps.append((label, tuple(reads), tuple(writes) + tuple(adds)))
        if self.hook is not None:
            self.hook(label)

    def event(self, kind, info):
        self.events.append((kind, info))

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    @property
    def points(self) -> list[tuple[str, tuple, tuple]]:
        return self.steps

    @staticmethod
    def _on(lock, objs) -> bool:
        return lock.obj in objs or getattr(lock, "readers_obj", None) in objs

    def lock_ops(self, lock) -> list[str]:
        """The labels of the steps that operate on *lock* (an RwSem or SpinLock)."""
        return [label for label, reads, touched in self.steps if self._on(lock, reads + touched)]

    def index(self, label: str, lock=None) -> int:
        """The position of the first step called *label* (on *lock*, if given)."""
        for i, (lbl, reads, touched) in enumerate(self.steps):
            if lbl == label and (lock is None or self._on(lock, reads + touched)):
                return i
        raise ValueError(label)

    def __enter__(self):
        sched.install(self)
        return self

    def __exit__(self, *exc):
        cur = sched.current()
        sched.RT = None
        sched.set_current(cur)
        return False


Policy = Callable[["GreenletRuntime", list[int]], int]


class GreenletRuntime:
    """Runs thread bodies as greenlets. At every scheduling point *policy(runtime, enabled)*
    picks the thread that runs next among those whose pending step is enabled. Thread i runs
    in a context named ``{prefix}{i}`` on CPU i."""

    def __init__(self, bodies, policy: Policy, prefix: str = "t", max_steps: int = 100000):
        self.main = greenlet.getcurrent()
        self.glets = [greenlet.greenlet(b, parent=self.main) for b in bodies]
        self.ctxs = [sched.Context(name=f"{prefix}{i}", cpu=i) for i in range(len(bodies))]
        self.pending: dict[int, object] = {}
        self.labels: dict[int, str] = {}
        self.steps: list[tuple[int, str]] = []
        self.current: Optional[int] = None
        self.policy = policy
        self.max_steps = max_steps

    def point(self, label, reads, writes, wait, adds=()):
        self.pending[self.current] = wait
        self.labels[self.current] = label
        self.steps.append((self.current, label))
        self.main.switch()

    def event(self, kind, info):
        pass

    def _resume(self, i: int) -> None:
        self.current = i
        self.pending[i] = None
        sched.set_current(self.ctxs[i])
        self.glets[i].switch()

    def run(self) -> None:
        sched.install(self)
        try:
            for i in range(len(self.glets)):            # each to its first point
                self._resume(i)
            while True:
                alive = [i for i, g in enumerate(self.glets) if not g.dead]
                if not alive:
                    return
                enabled = [i for i in alive
                           if self.pending.get(i) is None or self.pending[i]()]
                if not enabled:
                    raise sched.Deadlock("all threads blocked")
                assert len(self.steps) < self.max_steps, "livelock"
                self._resume(self.policy(self, enabled))
        finally:
            sched.uninstall()


def random_policy(rng: random.Random, stickiness: float = 0.0, delay: int = 0) -> Policy:
    """Pick at random; with *stickiness* p the running thread goes on with probability p; for
    the first *delay* steps thread 0 runs alone while it can."""
    def policy(rt: GreenletRuntime, enabled: list[int]) -> int:
        if len(rt.steps) < delay and 0 in enabled:
            return 0
        if rt.current in enabled and rng.random() < stickiness:
            return rt.current
        return rng.choice(enabled)
    return policy


def scripted_policy(phases) -> Policy:
    """Run each (thread, label) phase's thread until it has executed a step with that label
    (None: until it ends or blocks), preferring the later phases' threads, in order, while it
    is blocked; afterwards the lowest-numbered enabled thread."""
    state = {"phase": 0}

    def policy(rt: GreenletRuntime, enabled: list[int]) -> int:
        labels = rt.labels
        while state["phase"] < len(phases):
            tid, label = phases[state["phase"]]
            if tid in enabled:
                if label is not None and labels.get(tid) == label:
                    state["phase"] += 1             # this step completes the phase
                return tid
            if label is None:
                state["phase"] += 1                 # ended (or blocked for good)
                continue
            for later, _ in phases[state["phase"] + 1:]:
                if later in enabled:
                    return later
            break
        return min(enabled)
    return policy
