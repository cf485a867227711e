"""Minimising counterexamples: fewest preemptions, then fewest steps, for the same violation.

The random and PCT modes (:class:`explore.RandomSearch`) find violations quickly but return
schedules full of needless context switches: a run that violates I1 with 21 preemptions may
have a one-preemption equivalent that DPOR with iterative context bounding would report.
A counterexample is only useful to a reader when it is small, so before one is shown it goes
through :func:`minimise`, which keeps the violated invariant *group* (``Violation.group``)
and improves the rank ``(preemptions, steps)`` (the order explore.py ranks counterexamples by).

**Phase 1: schedule simplification**, in the spirit of Jalbert and Sen, "A trace
simplification technique for effective debugging of concurrent programs" (FSE 2010). The
schedule is cut into *blocks* (maximal runs of one thread); every boundary between two blocks
is a context switch. Candidates built from the current schedule try to remove one:

* move the next block of a thread up to join its previous block;
* move a block down to join the next block of its thread;
* let the thread running before a switch continue whenever it can, then the rest in order;
* defer a block, or the tail of a block, to the end (steps that the violation does not need
  then fall after the violating step and drop out of the counterexample).

Jalbert and Sen check that a move respects the dependences of the trace; here each candidate
is simply re-executed (stateless, like the explorer: :class:`runtime.Execution` reproduces a
schedule exactly), so a move is accepted exactly when it still violates the group. A
candidate is a *preferred thread order*, not a schedule that must be followed literally: at
each step the first thread in the remaining order that is enabled runs (so a move that makes
a thread block falls back on the next thread the order names, instead of being thrown away),
and once the order runs out the running thread continues while it can. A candidate is
accepted when it violates the same group with a better rank; the search restarts from the
accepted schedule until no candidate improves it (a local fixpoint) or the budget is spent.

**Phase 2: bounded DPOR.** Simplification is greedy and may stop at a local minimum. For each
preemption bound below the current best, smallest first, :class:`explore.DporSearch` explores
the bounded space (source-DPOR, Abdulla et al., POPL 2014, with the conservative bounded
backtracking of Coons, Musuvathi and McKinley, OOPSLA 2013); the first bound that yields a
counterexample for the group wins, as in iterative context bounding (Musuvathi and Qadeer,
PLDI 2007): when the lower bounds were explored completely its preemption count is minimal.
If no lower bound has one, the current bound itself is explored, for the tie-break: a
schedule with as many preemptions but fewer steps (simplification cannot turn "T0 first,
then T1" into "T1 first, then T0", which may be shorter). A DPOR counterexample is the
best-ranked schedule DPOR ran, not a simplified one, so phase 1 then trims its steps.

Everything is counted in executions, never in time, so the same inputs give the same output
on any machine (a printed reproduce command reproduces the same trace bytes). The result is
replayed literally before it is returned: if the schedule does not reproduce the group at its
last step with the rank claimed, the input counterexample is returned unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Sequence

from .driver import DIVERGED, FINISHED, Run, Scheduler, drive
from .explore import Counterexample, DporSearch
from .runtime import Execution, Violation
from .scenario import Scenario

# The share of the budget phase 1 may spend before bounded DPOR gets its turn: the greedy
# phase usually converges in far fewer executions, and what it leaves goes to DPOR anyway.
_SIMPLIFY_SHARE = 2


@dataclass
class _Budget:
    """Executions allowed to the whole minimisation (the final check is not counted)."""

    total: int
    used: int = 0

    def left(self) -> int:
        return max(0, self.total - self.used)


# --- executing a schedule ------------------------------------------------------------------------
class _Order(Scheduler):
    """Follows *order* until *group* is first violated. ``strict``: literally, ending the run
    where the order names a thread that is not enabled or ends; otherwise as a preferred
    order (:func:`_pick`)."""

    def __init__(self, order: Sequence[int], group: str, strict: bool):
        self.order = list(order)
        self.remaining = list(order)
        self.group = group
        self.strict = strict
        self.hit: Optional[Counterexample] = None

    def pick(self, run: Run, enabled: list[int]) -> Optional[int]:
        if not self.strict:
            return _pick(self.remaining, enabled, run.prev)
        d = run.depth
        if d >= len(self.order) or self.order[d] not in enabled:
            run.status = DIVERGED
            return None
        return self.order[d]

    def stepped(self, run: Run, tid: int, ev) -> bool:
        self.hit = _first_of_group(run.ex.violations, self.group, run.depth - 1,
                                   run.schedule, run.total_preemptions)
        return self.hit is None


def _execute(scenario: Scenario, order: Sequence[int], group: str,
             strict: bool) -> Optional[Counterexample]:
    """Run *scenario* along *order* until *group* is first violated.

    ``strict``: follow *order* literally, and give up (None) when its thread is not enabled or
    the order ends before the violation. Otherwise *order* is a preferred order (see
    :func:`_pick`). Preemptions are counted by the driver, as for every search."""
    ex = Execution(scenario)
    # A violation during setup needs no step at all.
    hit = _first_of_group(ex.violations, group, -1, [], 0)
    if hit is not None:
        ex.close()
        return hit
    sched = _Order(order, group, strict)
    run = drive(scenario, sched, execution=ex)
    if sched.hit is not None:
        return sched.hit
    if run.status == DIVERGED:
        return None
    if run.status == FINISHED and (not strict or run.depth == len(order)):
        # Violations found by close()'s final quiescent check belong to the last step,
        # which is how explore.py records them.
        return _first_of_group(ex.violations, group, run.depth - 1, run.schedule,
                               run.total_preemptions)
    return None


def _first_of_group(violations: Sequence[Violation], group: str, step: int,
                    schedule: list[int], pre: int) -> Optional[Counterexample]:
    for v in violations:
        if v.group == group and v.step == step:
            return Counterexample(v, list(schedule), pre)
    return None


def _pick(remaining: list[int], enabled: list[int], prev: Optional[int]) -> int:
    """The next thread of a preferred order: the first one in *remaining* that is enabled
    (its first occurrence is consumed, so the order keeps counting each thread's steps). When
    no thread the order still names can run, the running thread continues if it can: a
    switch there would be a preemption nobody asked for."""
    for i, t in enumerate(remaining):
        if t in enabled:
            del remaining[i]
            return t
    if prev is not None and prev in enabled:
        return prev
    return enabled[0]


def schedule_rank(scenario: Scenario, schedule: Sequence[int],
                  group: str) -> Optional[tuple[int, int, Violation]]:
    """Replay *schedule* literally and return ``(preemptions, steps, violation)`` at the first
    step where *group* is violated, or None if it is not violated along the schedule (or the
    schedule names a thread that is not enabled before that)."""
    cex = _execute(scenario, schedule, group, strict=True)
    if cex is None:
        return None
    return cex.preemptions, cex.steps, cex.violation


# --- phase 1: schedule simplification -----------------------------------------------------------
def _blocks(schedule: Sequence[int]) -> list[tuple[int, int, int]]:
    """Maximal runs of one thread: (tid, start, end) with end exclusive."""
    out: list[tuple[int, int, int]] = []
    start = 0
    for i in range(1, len(schedule) + 1):
        if i == len(schedule) or schedule[i] != schedule[start]:
            out.append((schedule[start], start, i))
            start = i
    return out


def _next_block_of(blocks: list[tuple[int, int, int]], i: int) -> Optional[int]:
    """Index of the next block after block *i* run by the same thread."""
    for j in range(i + 1, len(blocks)):
        if blocks[j][0] == blocks[i][0]:
            return j
    return None


def _candidates(s: list[int]) -> Iterator[list[int]]:
    """Preferred orders derived from schedule *s*, those that remove a context switch first
    (they can lower the preemption count), then those that only drop steps."""
    blocks = _blocks(s)
    for i in range(len(blocks) - 1):
        t, a, b = blocks[i]
        j = _next_block_of(blocks, i)
        if j is not None:
            _, c, d = blocks[j]
            # Move the next block of t up to join block i.
            yield s[:b] + s[c:d] + s[b:c] + s[d:]
            # Move block i down to join the next block of t.
            yield s[:a] + s[b:c] + s[a:b] + s[c:]
        # Let t continue whenever it is enabled after this switch; the rest keeps its order.
        rest = s[b:]
        yield s[:b] + [x for x in rest if x == t] + [x for x in rest if x != t]
    for i in range(len(blocks)):
        t, a, b = blocks[i]
        # Defer the whole block, then ever smaller tails of it, past the violation.
        size = b - a
        while size >= 1:
            yield s[:b - size] + s[b:] + s[b - size:b]
            size //= 2


def _simplify(scenario: Scenario, start: Counterexample, group: str, budget: _Budget,
              limit: int, cache: dict) -> Counterexample:
    """Greedy first-improvement search over :func:`_candidates`, restarted after every
    accepted improvement, until a fixpoint or until *limit* executions have been used."""
    best = start
    stop_at = min(budget.total, budget.used + limit)
    improved = True
    while improved and budget.used < stop_at:
        improved = False
        for cand in _candidates(best.schedule):
            key = tuple(cand)
            if key == tuple(best.schedule):
                continue
            if key not in cache:
                if budget.used >= stop_at:
                    break
                budget.used += 1
                cache[key] = _execute(scenario, cand, group, strict=False)
            got = cache[key]
            if got is not None and got.rank() < best.rank():
                best = got
                improved = True
                break
    return best


# --- phase 2: bounded DPOR ----------------------------------------------------------------------
def _bounded_dpor(scenario: Scenario, group: str, best: Counterexample,
                  budget: _Budget) -> Optional[Counterexample]:
    """A counterexample for *group* better than *best*, from DPOR at the smallest bound that
    has one: bounds below ``best.preemptions`` first (any counterexample there is better),
    then that bound itself, where only fewer steps can win."""
    for bound in range(best.preemptions + 1):
        left = budget.left()
        if left <= 0:
            return None
        res = DporSearch(scenario, bound=bound, max_executions=left).run()
        budget.used += res.stats.executions
        found = res.counterexamples.get(group)
        if found is not None:
            return found if found.rank() < best.rank() else None
        if res.stats.interrupted:
            return None
    return None


# --- the minimiser ------------------------------------------------------------------------------
def minimise(scenario: Scenario, cex: Counterexample, *,
             max_executions: int = 5000) -> Counterexample:
    """A counterexample violating the same group as *cex*, no worse in (preemptions, steps),
    found by schedule simplification then bounded DPOR within *max_executions* executions.
    Deterministic. Returns *cex* itself if its schedule does not replay or if the result
    could not be verified."""
    group = cex.violation.group
    got = schedule_rank(scenario, cex.schedule, group)
    if got is None:
        return cex
    pre, steps, v = got
    best = Counterexample(v, list(cex.schedule[:steps]), pre)
    if best.rank() > cex.rank():
        # The input's rank was not counted as here: nothing to compare against safely.
        return cex
    budget = _Budget(max(0, max_executions))
    cache: dict = {}
    best = _simplify(scenario, best, group, budget, budget.total // _SIMPLIFY_SHARE, cache)
    found = _bounded_dpor(scenario, group, best, budget)
    if found is not None:
        # DPOR keeps the best schedule it explored, not a simplified one: trim its steps.
        best = _simplify(scenario, found, group, budget, budget.left(), cache)
    return _verified(scenario, best, cex)


def _verified(scenario: Scenario, best: Counterexample, original: Counterexample) -> Counterexample:
    """*best* as a fresh literal replay reports it, or *original* if the replay disagrees."""
    group = original.violation.group
    got = schedule_rank(scenario, best.schedule, group)
    if got is None:
        return original
    pre, steps, v = got
    if (pre, steps) != best.rank() or steps != len(best.schedule) \
            or (pre, steps) > original.rank():
        return original
    return Counterexample(v, list(best.schedule), pre)
