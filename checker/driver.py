"""The one stepping loop: run one execution of a scenario under a scheduler.

Every way of running a scenario goes through :func:`drive`: DPOR and brute force, random and
PCT (checker/explore.py), replaying a saved schedule and building a trace (checker/trace.py),
and the minimiser's preferred orders (checker/minimise.py). A strategy is a
:class:`Scheduler` (the way shuttle's schedulers plug into one driver): it picks the thread of
each step from the enabled ones, may end the execution early (a pruned or diverged run), and is
told of each step after it ran. The driver owns what every strategy must do the same way:
the step bound, the time budget, counting preemptions (:func:`preempts`: defined here once)
and closing the execution, which runs the end-of-execution checks.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Optional

from .runtime import Event, Execution
from .scenario import Scenario

# How an execution ended.
FINISHED = "finished"        # every thread ran to its end
DEADLOCKED = "deadlocked"    # threads remain and none is enabled
TRUNCATED = "truncated"      # the scenario's step bound was reached
PRUNED = "pruned"            # the scheduler ended it (sleep-set blocked, over the bound)
DIVERGED = "diverged"        # a replayed schedule's thread was not enabled
STOPPED = "stopped"          # the scheduler asked to stop after a step (a violation found)
OUT_OF_TIME = "out-of-time"  # the time budget ran out inside the execution

# The time budget is looked at every this many steps: often enough for a long execution to
# stop where it is, rarely enough to cost nothing.
DEADLINE_EVERY = 64


def preempts(prev: Optional[int], tid: int, enabled) -> bool:
    """A preemption is a switch away from a thread that could have continued."""
    return prev is not None and tid != prev and prev in enabled


class Scheduler(ABC):
    """Chooses the thread of each step of one execution."""

    @abstractmethod
    def pick(self, run: "Run", enabled: list[int]) -> Optional[int]:
        """The thread to step next (one of *enabled*), or None to end the execution here;
        setting ``run.status`` first says why (default :data:`PRUNED`)."""

    def stepped(self, run: "Run", tid: int, ev: Event) -> bool:
        """Thread *tid* ran step *ev*; False ends the execution (:data:`STOPPED`)."""
        return True

    def replayed_findings(self, run: "Run") -> Optional[tuple]:
        """The findings (Event.findings) of the step about to run, when the scheduler knows
        it ran this very step after the same schedule before (a stateless search replaying
        its prefix); None to judge the state after it."""
        return None


@dataclass
class Run:
    """One execution as a scheduler drove it."""

    ex: Execution
    schedule: list[int] = field(default_factory=list)     # thread of each step
    preemptions: list[int] = field(default_factory=list)  # preemptions so far, after each step
    status: str = ""

    @property
    def depth(self) -> int:
        return len(self.schedule)

    @property
    def prev(self) -> Optional[int]:
        return self.schedule[-1] if self.schedule else None

    @property
    def total_preemptions(self) -> int:
        return self.preemptions[-1] if self.preemptions else 0

    @property
    def complete(self) -> bool:
        """Ran to its end (or to a deadlock, which is an end): it has an outcome."""
        return self.status in (FINISHED, DEADLOCKED)


def drive(scenario: Scenario, scheduler: Scheduler, *, record_stacks: bool = False,
          deadline: Optional[float] = None, max_steps: Optional[int] = None,
          execution: Optional[Execution] = None) -> Run:
    """Run one execution of *scenario*, each step's thread chosen by *scheduler*, until every
    thread is done, none is enabled, the step bound or the time budget is reached, or the
    scheduler ends it. The execution is closed on return (its final checks have run)."""
    ex = execution if execution is not None else Execution(scenario, record_stacks=record_stacks)
    run = Run(ex)
    limit = scenario.max_steps if max_steps is None else max_steps
    try:
        while True:
            if ex.finished():
                run.status = FINISHED
                break
            if ex.deadlocked:
                run.status = DEADLOCKED
                break
            if run.depth >= limit:
                run.status = TRUNCATED
                break
            if deadline is not None and run.depth % DEADLINE_EVERY == 0 and \
                    time.monotonic() > deadline:
                run.status = OUT_OF_TIME
                break
            enabled = ex.enabled()
            if not enabled:      # pragma: no cover - Execution.step marks this a deadlock
                run.status = DEADLOCKED
                break
            tid = scheduler.pick(run, enabled)
            if tid is None:
                run.status = run.status or PRUNED
                break
            pre = run.total_preemptions + preempts(run.prev, tid, enabled)
            run.schedule.append(tid)
            run.preemptions.append(pre)
            ev = ex.step(tid, scheduler.replayed_findings(run))
            if not scheduler.stepped(run, tid, ev):
                run.status = STOPPED
                break
    finally:
        ex.close()
    return run


class Replay(Scheduler):
    """Follow a schedule step by step; a thread that is not enabled ends the run
    (:data:`DIVERGED`); the run also ends where the schedule does (:data:`PRUNED`)."""

    def __init__(self, schedule):
        self.schedule = list(schedule)
        self.diverged_at: Optional[int] = None

    def pick(self, run: Run, enabled: list[int]) -> Optional[int]:
        if run.depth >= len(self.schedule):
            return None
        tid = self.schedule[run.depth]
        if tid not in enabled:
            self.diverged_at = run.depth
            run.status = DIVERGED
            return None
        return tid
