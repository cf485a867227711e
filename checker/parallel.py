"""One DPOR search on several processes or a Dask cluster: work units and their coordinator.

A **work unit** is a schedule prefix: the unit explores, with source-DPOR (sleep sets without
a bound, conservative backtracking with one), every execution that extends it
(``DporSearch(root=prefix, split=SPLIT)``). A worker replays the prefix and builds the DPOR
states along it as any search does; races whose reversal belongs to a state above the unit's
*export depth* (its prefix plus SPLIT steps) are not explored there but handed back as new
units (the schedule to that state plus the thread to try), so the search spreads over the
workers as it goes; when a unit's time slice (TIME_SLICE) ends, everything it has not
explored is handed back the same way. Races that cross a split stay sound that way: every
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

Results merge as the results of disjoint searches (explore._merge): the outcomes and
violated invariants are those one process finds; the best counterexample of each invariant
is the best-ranked (fewest preemptions, then steps) over all units. Optimal DPOR is not
split: its wakeup sequences would reach across units; the parallel search is source-DPOR.
"""

from __future__ import annotations

import time
from typing import Optional

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


def explore_parallel(scenario: Scenario, bound: Optional[int], jobs: int = 2,
                     backend: Optional[Backend] = None, split: Optional[int] = None,
                     deadline: Optional[float] = None,
                     max_executions: Optional[int] = None) -> Result:
    """The DPOR search of *scenario* at preemption *bound* (None: none) as work units on
    *backend* (checker/backend.py; None: a pool of *jobs* local processes, closed at the
    end)."""
    t0 = time.monotonic()
    split = SPLIT if split is None else split
    time_slice = TIME_SLICE
    budget = max_executions or scenario.max_executions
    merged = Result(Stats(mode="source-dpor", preemption_bound=bound, complete=True))
    queued: set[tuple] = set()
    # The threads queued at each state (keyed by the schedule to it), in queueing order: a
    # unit treats those before its own choice as explored before it (its sleep set), and no
    # two units treat each other so.
    order: dict[tuple, list[int]] = {}
    own_pool = backend is None
    pool = Backend(jobs) if own_pool else backend
    futures: set = set()
    submitted = 0

    def claim(prefix: tuple) -> None:
        """Every state along *prefix* has its choice queued (by this unit or its owner)."""
        for k in range(len(prefix)):
            queued.add(prefix[:k + 1])
            at = order.setdefault(prefix[:k], [])
            if prefix[k] not in at:
                at.append(prefix[k])

    def queue(prefix: tuple) -> None:
        if prefix in queued:
            return
        claim(prefix)
        nonlocal submitted
        submitted += 1
        left = None if deadline is None else max(0.0, deadline - time.monotonic())
        orders = tuple(tuple(order[prefix[:k]]) for k in range(len(prefix)))
        futures.add(pool.submit(explore_unit, scenario, bound, prefix, orders, split, left,
                                max(1, budget - merged.stats.executions), time_slice))

    cut_short = False
    try:
        queue(())
        while futures:
            done, futures = pool.wait_any(futures)
            for f in done:
                res, units = f.result()
                merged = _merge(merged, res)
                if not res.stats.complete:
                    cut_short = True
                over = merged.stats.executions >= budget or \
                    (deadline is not None and time.monotonic() > deadline)
                if over:
                    cut_short = True
                    continue
                for prefix, initials, own in units:
                    state = tuple(prefix[:-1])
                    # The exporter explores its own choices there: first in that state's order.
                    for t in own:
                        claim(state + (t,))
                    # The source-set check with the coordinator's knowledge of the state:
                    # a thread queued there already starts an equivalent execution.
                    if not set(initials) & set(order[state]):
                        queue(tuple(prefix))
    except KeyboardInterrupt:
        merged.stats.interrupted = True
        cut_short = True
    finally:
        if own_pool:
            pool.close(futures)
        else:           # the units of a round cut short: the backend serves the next one
            for f in futures:
                f.cancel()
    merged.stats.complete = not cut_short
    merged.stats.elapsed = time.monotonic() - t0
    merged.stats.units = submitted
    return merged
