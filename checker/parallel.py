"""One DPOR search on several processes or a Dask cluster: work units and their coordinator.

A **work unit** is a schedule prefix: the unit explores, with source-DPOR (sleep sets without
a bound, conservative backtracking with one), every execution that extends it
(``DporSearch(root=prefix, split=SPLIT)``). A worker replays the prefix and builds the DPOR
states along it as any search does; races whose reversal belongs to a state above the unit's
*export depth* (its prefix plus SPLIT steps) are not explored there but handed back as new
units (the schedule to that state plus the thread to try), so the search spreads over the
workers as it goes; when a unit's time slice (TIME_SLICE), the search's time or its
execution budget ends, everything it has not explored is handed back the same way (a unit
runs each execution to its end, so what it leaves is always a choice at some state). Races that cross a split stay sound that way: every
backtrack point a worker finds is either explored by it or becomes a unit.

The **coordinator** owns the top of the tree: the set of unit prefixes ever queued, and for
each state the threads queued there, in order (a worker reports the choices it made at a
state with the units it hands back from it). A unit whose prefix was already queued, or is a
prefix of a queued one (its state's choice is explored by whoever owns that state), is
dropped; so each (state, thread) choice is explored once. A unit's sleep set at each state of
its prefix holds the threads ordered before its own choice there, never one ordered after,
so no two units prune each other's executions. A unit is also dropped when a thread queued
at its state is an initial of the race that asked for it (the source-set check, made with
the coordinator's knowledge of the state).

All the coordinator knows is a :class:`Coordinator`: a stopped search (deadline, budget,
Ctrl-C) returns it to *on_state*, and a search given it back (*resume*) runs the units that
had not finished, so a checkpoint (checker/checkpoint.py) resumes without losing or
counting anything twice. The coordinator stops waiting at the deadline: units still queued
or running then stay pending.

Results merge as the results of disjoint searches (explore._merge): the outcomes and
violated invariants are those one process finds; the best counterexample of each invariant
is the best-ranked (fewest preemptions, then steps) over all units. Optimal DPOR is not
split: its wakeup sequences would reach across units; the parallel search is source-DPOR.
"""

from __future__ import annotations

import contextlib
import copy
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .backend import Backend
from .explore import DporSearch, Result, Stats, _merge
from .scenario import Scenario

# Steps below a unit's prefix whose other choices are handed back at once: the work spreads
# early, and (bench_explore.py) the units together run no more executions than one process.
SPLIT = 40
# Seconds a worker explores a unit before it hands back what is left: long enough to pay for
# replaying the prefix, short enough that no unit keeps one worker busy alone.
TIME_SLICE = 1.0


def explore_unit(scenario: Scenario, bound: Optional[int], prefix: tuple, order: tuple,
                 split: int, time_left: Optional[float], max_executions: Optional[int],
                 time_slice: Optional[float]):
    """Explore one work unit (*order*: the threads queued at each state of the prefix, in
    the coordinator's order) for at most *time_slice* seconds; returns its result and the
    new units it hands back (everything left when the slice ends)."""
    deadline = None if time_left is None else time.monotonic() + time_left
    search = DporSearch(scenario, bound=bound, optimal=False, root=prefix, root_order=order,
                        split=split, deadline=deadline, max_executions=max_executions,
                        time_slice=time_slice)
    res = search.run()
    return res, search.exported


@contextlib.contextmanager
def _signals_deferred():
    """SIGINT and SIGTERM are held (delivered on leaving) while the coordinator's state
    changes, so an interrupted search leaves a consistent state (main thread only)."""
    held = {signal.SIGINT, signal.SIGTERM}
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


@dataclass
class Coordinator:
    """What the coordinator knows of one DPOR search (one preemption bound): all a
    checkpoint (checker/checkpoint.py) saves, and all a resumed search needs.

    - merged: the merged results of the units that finished;
    - queued: every unit prefix ever queued, and every prefix of one;
    - order: the threads queued at each state (keyed by the schedule to it), in queueing
      order: a unit treats those before its own choice as explored before it (its sleep
      set), and no two units treat each other so;
    - pending: the prefixes of units queued whose results have not been merged (running,
      waiting to run, or lost when the search stopped): a resumed search runs them again;
    - handed: units handed back but not yet considered (the search stopped first):
      (prefix, initials, the exporter's own choices at that state).
    """
    merged: Result
    queued: set = field(default_factory=set)
    order: dict = field(default_factory=dict)
    pending: set = field(default_factory=set)
    handed: list = field(default_factory=list)

    @classmethod
    def fresh(cls, bound: Optional[int]) -> "Coordinator":
        return cls(Result(Stats(mode="source-dpor", preemption_bound=bound, complete=True)))


def explore_parallel(scenario: Scenario, bound: Optional[int], jobs: int = 2,
                     backend: Optional[Backend] = None, split: Optional[int] = None,
                     deadline: Optional[float] = None,
                     max_executions: Optional[int] = None,
                     resume: Optional[Coordinator] = None,
                     on_state: Optional[Callable[[Coordinator], None]] = None,
                     state_every: float = 30.0) -> Result:
    """The DPOR search of *scenario* at preemption *bound* (None: none) as work units on
    *backend* (checker/backend.py; None: a pool of *jobs* local processes, closed at the
    end). *resume*: the state a stopped search left (its pending units run again);
    *on_state* is given the state every *state_every* seconds, and at the end when the
    search stopped before it was complete."""
    t0 = time.monotonic()
    split = SPLIT if split is None else split
    time_slice = TIME_SLICE
    budget = max_executions or scenario.max_executions
    st = resume if resume is not None else Coordinator.fresh(bound)
    elapsed_before = st.merged.stats.elapsed
    st.merged.stats.complete, st.merged.stats.interrupted = True, False
    own_pool = backend is None
    pool = Backend(jobs) if own_pool else backend
    running: dict = {}                  # future -> its unit's prefix
    partial: list[Result] = []          # the results of units cut short
    submitted = 0

    def claim(prefix: tuple) -> None:
        """Every state along *prefix* has its choice queued (by this unit or its owner)."""
        for k in range(len(prefix)):
            st.queued.add(prefix[:k + 1])
            at = st.order.setdefault(prefix[:k], [])
            if prefix[k] not in at:
                at.append(prefix[k])

    def submit(prefix: tuple) -> None:
        nonlocal submitted
        submitted += 1
        st.pending.add(prefix)
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        orders = tuple(tuple(st.order[prefix[:k]]) for k in range(len(prefix)))
        running[pool.submit(explore_unit, scenario, bound, prefix, orders, split, left,
                            max(1, budget - st.merged.stats.executions), time_slice)] = prefix

    def consider(prefix: tuple, initials, own) -> None:
        state = tuple(prefix[:-1])
        # The exporter explores its own choices there: first in that state's order.
        for t in own:
            claim(state + (t,))
        # The source-set check with the coordinator's knowledge of the state: a thread
        # queued there already starts an equivalent execution.
        if prefix not in st.queued and not set(initials) & set(st.order[state]):
            claim(prefix)
            submit(prefix)

    cut_short = False
    last_state = time.monotonic()
    try:
        if resume is None:
            claim(())
            submit(())
        else:
            handed, st.handed = st.handed, []
            for unit in handed:
                consider(*unit)
            for prefix in sorted(st.pending - set(running.values())):
                submit(prefix)
        while running:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                # Units still queued or running are not waited for: they stay pending.
                cut_short = True
                break
            done, _ = pool.wait_any(set(running), timeout=left)
            # (Ctrl-C and SIGTERM wait until the results are in the state: a checkpoint
            # never holds a unit both merged and pending, or its handed units half queued)
            with _signals_deferred():
                for f in done:
                    prefix = running.pop(f)
                    res, units = f.result()
                    if not res.stats.complete:
                        # Cut short (interrupted): what it explored is reported, but the
                        # unit stays pending, so a resumed search runs all of it again.
                        partial.append(res)
                        cut_short = True
                        continue
                    st.pending.discard(prefix)
                    st.merged = _merge(st.merged, res)
                    if st.merged.stats.executions >= budget:
                        cut_short = True
                    if cut_short:
                        st.handed.extend(units)
                        continue
                    for unit in units:
                        consider(*unit)
            if on_state is not None and time.monotonic() - last_state >= state_every:
                on_state(st)
                last_state = time.monotonic()
            if cut_short and st.merged.stats.executions >= budget:
                break
    except KeyboardInterrupt:
        st.merged.stats.interrupted = True
        cut_short = True
    finally:
        if own_pool:
            pool.close(set(running))
        else:           # the units of a round cut short: the backend serves the next one
            for f in running:
                f.cancel()
    st.merged.stats.units += submitted
    st.merged.stats.elapsed = elapsed_before + time.monotonic() - t0
    if cut_short and on_state is not None:
        on_state(st)
    merged = st.merged
    if partial:
        merged = copy.deepcopy(merged)
        for res in partial:
            merged = _merge(merged, res)
    merged.stats.complete = not cut_short
    return merged
