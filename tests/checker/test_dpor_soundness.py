"""The reduction is sound: DPOR reaches the same outcomes and violations as brute force.

Two families of generated scenarios (tests/checker/scenario_gen.py):
* 200 scenarios with system calls (MADV_DONTNEED, munmap, mprotect, page faults, writeback)
  and random fix toggles off (40 in the default run, the other 160 under the slow marker),
  compared with a preemption bound of 1: DPOR (source sets,
  conservative backtracking, no sleep sets under a bound) against the enumeration of every
  interleaving with at most one preemption;
* 60 light scenarios (loads and stores: TLB hits, walks and fills on two CPUs) compared with
  no bound at all: DPOR with sleep sets against the enumeration of every interleaving;
* without a bound, optimal DPOR (wakeup trees) against source-DPOR on the syscall scenarios
  source-DPOR covers in 300 executions among the even seeds of the first 20 (the odd ones,
  and in 2,000 among 100 more, under slow), and against brute force on those whose whole
  space brute force can enumerate; optimal DPOR's complete executions are distinct
  Mazurkiewicz traces.

An outcome is every thread's results plus the set of violated invariant groups; equal sets of
outcomes mean the reduction lost nothing observable.
"""

from __future__ import annotations

import pytest

from unmapcheck.checker import explore
from unmapcheck.checker.explore import DporSearch

from scenario_gen import generate

BOUNDED_SEEDS = range(0, 40)
MORE_BOUNDED_SEEDS = range(40, 200)
LIGHT_SEEDS = range(5000, 5060)


def _compare(sc, bound):
    dpor = DporSearch(sc, bound=bound).run()
    brute = DporSearch(sc, bound=bound, brute_force=True, max_executions=20000).run()
    assert brute.stats.complete, f"{sc.name}: brute force did not finish"
    return dpor, brute


def _check_bounded(seeds):
    for seed in seeds:
        sc = generate(seed)
        dpor, brute = _compare(sc, 1)
        assert dpor.outcomes == brute.outcomes, (
            f"seed {seed}: only brute force: {brute.outcomes - dpor.outcomes}; "
            f"only DPOR: {dpor.outcomes - brute.outcomes}")
        assert dpor.violated() == brute.violated(), f"seed {seed}"
        assert dpor.stats.executions <= brute.stats.executions


@pytest.mark.parametrize("chunk", range(10))
def test_dpor_matches_brute_force_with_a_preemption_bound(chunk):
    _check_bounded([s for s in BOUNDED_SEEDS if s % 10 == chunk])


@pytest.mark.slow
@pytest.mark.parametrize("chunk", range(10))
def test_dpor_matches_brute_force_on_more_scenarios(chunk):
    _check_bounded([s for s in MORE_BOUNDED_SEEDS if s % 10 == chunk])


@pytest.mark.parametrize("chunk", [0, pytest.param(1, marks=pytest.mark.slow),
                                   pytest.param(2, marks=pytest.mark.slow)])
def test_dpor_with_sleep_sets_matches_brute_force_without_bound(chunk):
    seeds = [s for s in LIGHT_SEEDS if s % 3 == chunk]
    for seed in seeds:
        sc = generate(seed, light=True)
        dpor, brute = _compare(sc, None)
        assert dpor.outcomes == brute.outcomes, f"seed {seed}"
        assert dpor.violated() == brute.violated(), f"seed {seed}"


def test_the_comparison_catches_an_unsound_reduction(monkeypatch):
    """Break the dependence relation (every pair of steps independent): DPOR then explores
    one interleaving per state and the comparison must notice what it lost."""
    monkeypatch.setattr(explore, "dependent", lambda a, b: False)
    for seed in range(0, 40):
        sc = generate(seed)
        dpor = DporSearch(sc, bound=1).run()
        brute = DporSearch(sc, bound=1, brute_force=True).run()
        if dpor.outcomes != brute.outcomes:
            return
    pytest.fail("no generated scenario showed the broken reduction losing an outcome")


def test_the_reduction_reduces():
    """Not a soundness property, but the point of DPOR: on the generated scenarios it runs
    far fewer executions than brute force."""
    total_dpor = total_brute = 0
    for seed in range(0, 10):
        dpor, brute = _compare(generate(seed), 1)
        total_dpor += dpor.stats.executions
        total_brute += brute.stats.executions
    assert total_dpor * 2 < total_brute


OPTIMAL_SEEDS = range(0, 20)
MORE_OPTIMAL_SEEDS = range(20, 120)


def _check_optimal(seeds, budget):
    """Scenarios whose unbounded space source-DPOR covers within *budget* executions."""
    compared = 0
    for seed in seeds:
        sc = generate(seed)
        src = DporSearch(sc, bound=None, optimal=False, max_executions=budget).run()
        if not src.stats.complete:
            continue
        opt = DporSearch(sc, bound=None, max_executions=2 * budget, collect_traces=True).run()
        assert opt.stats.mode == "optimal-dpor" and opt.stats.complete, f"seed {seed}"
        assert opt.outcomes == src.outcomes, (
            f"seed {seed}: only source-DPOR: {src.outcomes - opt.outcomes}")
        assert opt.violated() == src.violated(), f"seed {seed}"
        # No two complete executions of optimal DPOR are equivalent.
        assert len(opt.traces) == opt.stats.complete_executions, f"seed {seed}"
        brute = DporSearch(sc, bound=None, brute_force=True, max_executions=budget).run()
        if brute.stats.complete:
            assert opt.outcomes == brute.outcomes, f"seed {seed}"
        compared += 1
    return compared


@pytest.mark.parametrize("chunk", [pytest.param(0, marks=pytest.mark.slow),
                                   pytest.param(1, marks=pytest.mark.slow)])
def test_optimal_dpor_matches_source_dpor_and_brute_force_without_bound(chunk):
    assert _check_optimal([s for s in OPTIMAL_SEEDS if s % 2 == chunk], 300) >= 3


@pytest.mark.slow
def test_optimal_dpor_matches_on_more_scenarios():
    assert _check_optimal(MORE_OPTIMAL_SEEDS, 2000) >= 30


def test_the_comparison_catches_an_unsound_wakeup_tree(monkeypatch):
    """Break wakeup-tree insertion (every reversal dropped): optimal DPOR explores one
    execution and the comparison with source-DPOR must notice what it lost."""
    monkeypatch.setattr(explore, "insert", lambda *a: False)
    for seed in OPTIMAL_SEEDS:
        sc = generate(seed)
        src = DporSearch(sc, bound=None, optimal=False, max_executions=300).run()
        opt = DporSearch(sc, bound=None).run()
        if src.stats.complete and opt.outcomes != src.outcomes:
            return
    pytest.fail("no generated scenario showed the broken wakeup trees losing an outcome")


def test_optimal_dpor_needs_sleep_sets_and_no_bound():
    with pytest.raises(ValueError):
        DporSearch(generate(0), bound=1, optimal=True)
