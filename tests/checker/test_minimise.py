"""Counterexample minimisation (checker/minimise.py) on the 99baac21e458 corpus scenario.

With 99baac21e458 switched off, parallel MADV_DONTNEED violates I1; iterative context bounding
finds it with one preemption, while random and PCT scheduling return schedules with many more.
The minimiser must bring those down to what DPOR finds, deterministically, with a schedule
that replays.
"""

from __future__ import annotations

from typing import Optional

import pytest

from unmapcheck.checker.explore import (Counterexample, RandomSearch,
                                        iterative_context_bounding)
from unmapcheck.checker.minimise import minimise, schedule_rank
from unmapcheck.checker.scenario import Scenario, load
from unmapcheck.impl import sched
from unmapcheck.proofs import scenario_paths

FIX = "99baac21e458"
GROUP = "I1"


def _path() -> str:
    name = f"{FIX}-parallel-dontneed.toml"
    return next(str(p) for p in scenario_paths() if p.name == name)


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return load(_path()).with_fixes_off([FIX])


def _search(sc: Scenario, pct_depth: Optional[int], executions: int) -> Counterexample:
    """The first seed's I1 counterexample (seeded: the same one on every run)."""
    for seed in range(40):
        res = RandomSearch(sc, executions, seed, pct_depth=pct_depth).run()
        if GROUP in res.counterexamples:
            return res.counterexamples[GROUP]
    raise AssertionError(f"no {GROUP} counterexample from 40 seeds (pct_depth={pct_depth})")


@pytest.fixture(scope="module")
def random_cex(scenario) -> Counterexample:
    return _search(scenario, None, 200)


@pytest.fixture(scope="module")
def pct_cex(scenario) -> Counterexample:
    return _search(scenario, 3, 50)


@pytest.fixture(scope="module")
def icb_cex(scenario) -> Counterexample:
    res = iterative_context_bounding(scenario, 2)
    return res.counterexamples[GROUP]


@pytest.fixture(scope="module")
def minimised(scenario, random_cex) -> Counterexample:
    return minimise(scenario, random_cex)


def test_dpor_needs_one_preemption(icb_cex):
    # The reference the minimiser is measured against (README: the bug needs one switch).
    assert icb_cex.preemptions == 1


def test_random_counterexample_is_minimised(scenario, random_cex, minimised, icb_cex):
    assert random_cex.preemptions > icb_cex.preemptions    # otherwise the test proves nothing
    assert minimised.violation.group == GROUP
    assert minimised.preemptions <= icb_cex.preemptions
    assert minimised.steps <= random_cex.steps
    assert minimised.rank() <= icb_cex.rank()
    assert sched.RT is None                                # every execution was closed


def test_simplification_alone_removes_the_needless_switches(scenario, random_cex, icb_cex):
    # Phase 1 without the DPOR phase: merging thread blocks reaches DPOR's preemption count.
    from unmapcheck.checker.minimise import _Budget, _simplify
    budget = _Budget(300)
    s = _simplify(scenario, random_cex, GROUP, budget, budget.total, {})
    assert s.preemptions == icb_cex.preemptions
    assert s.steps <= random_cex.steps
    assert budget.used < 300                               # it stopped at a fixpoint
    assert schedule_rank(scenario, s.schedule, GROUP)[:2] == s.rank()


def test_pct_counterexample_is_minimised(scenario, pct_cex, icb_cex):
    m = minimise(scenario, pct_cex)
    assert m.violation.group == GROUP
    assert m.preemptions <= icb_cex.preemptions
    assert m.steps <= pct_cex.steps
    assert m.rank() <= min(pct_cex.rank(), icb_cex.rank())


def test_pct_one_preemption_but_longer_is_shortened(scenario, icb_cex):
    # PCT seed 1 finds T0 first, then T1 returning with T0's flush pending: one preemption,
    # but longer than DPOR's schedule. Simplification cannot swap who goes first; the
    # bounded DPOR phase at the current bound finds the shorter one.
    cex = RandomSearch(scenario, 50, 1, pct_depth=3).run().counterexamples[GROUP]
    m = minimise(scenario, cex)
    assert m.rank() <= icb_cex.rank()
    assert m.rank() <= cex.rank()


def test_minimise_is_deterministic(scenario, random_cex, minimised):
    again = minimise(scenario, random_cex)
    assert again.schedule == minimised.schedule
    assert again.preemptions == minimised.preemptions
    assert (again.violation.name, again.violation.message) == \
        (minimised.violation.name, minimised.violation.message)


def test_result_replays_to_the_same_group(scenario, minimised):
    got = schedule_rank(scenario, minimised.schedule, GROUP)
    assert got is not None
    pre, steps, v = got
    assert (pre, steps) == minimised.rank()
    assert v.group == GROUP and v.step == steps - 1          # at the last step, not before


def test_minimal_counterexample_keeps_its_rank(scenario, minimised, icb_cex):
    # A fixpoint: minimising a minimised counterexample changes nothing in rank.
    assert minimise(scenario, minimised).rank() == minimised.rank()
    # DPOR's counterexample is minimal in preemptions already.
    m = minimise(scenario, icb_cex)
    assert m.preemptions == icb_cex.preemptions
    assert m.rank() <= icb_cex.rank()


def test_no_budget_still_replays_and_is_no_worse(scenario, random_cex):
    m = minimise(scenario, random_cex, max_executions=0)
    assert m.rank() <= random_cex.rank()
    assert schedule_rank(scenario, m.schedule, GROUP)[:2] == m.rank()


def test_a_schedule_that_does_not_reproduce_is_returned_unchanged(scenario, minimised):
    fixed = load(_path())              # every fix on: the same schedule no longer fails
    assert schedule_rank(fixed, minimised.schedule, GROUP) is None
    assert minimise(fixed, minimised) is minimised


def test_schedule_rank_none_without_the_race(scenario, minimised):
    # T0 alone never violates I1; a schedule naming a finished thread does not replay.
    alone = [0] * scenario.max_steps
    assert schedule_rank(scenario, alone, GROUP) is None
    assert schedule_rank(scenario, [1] * 500, GROUP) is None
    # A prefix that stops before the violating step does not reach it either.
    assert schedule_rank(scenario, minimised.schedule[:-1], GROUP) is None
