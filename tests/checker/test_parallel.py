"""The DPOR search split into work units (checker/parallel.py) finds what one process finds.

Compared with brute force (or, where brute force is too slow, one process's source-DPOR) on
generated scenarios (tests/checker/scenario_gen.py), at preemption bound 1 and without a bound, on a local pool of two processes; once on a real
dask.distributed LocalCluster of two workers; and from the command line. A coordinator that
drops the units workers hand back must be caught.
"""

from __future__ import annotations

import json

import pytest

from unmapcheck.checker import parallel
from unmapcheck.checker.cli import main
from unmapcheck.checker.explore import DporSearch
from unmapcheck.checker.backend import Backend
from unmapcheck.checker.parallel import explore_parallel
from unmapcheck.proofs import SCENARIO_DIR

from scenario_gen import generate

S99 = str(SCENARIO_DIR / "99baac21e458-parallel-dontneed.toml")
SEEDS = range(0, 8)
UNBOUNDED_SEEDS = range(0, 6)


def _brute(sc, bound):
    """The reference: brute force's result if it enumerates the space in 400 executions,
    else one process's source-DPOR (itself tested against brute force) if it completes in
    600; None if neither."""
    brute = DporSearch(sc, bound=bound, brute_force=True, max_executions=400).run()
    if brute.stats.complete:
        return brute
    one = DporSearch(sc, bound=bound, optimal=False, max_executions=600).run()
    return one if one.stats.complete else None


def _same(sc, bound, res, brute):
    assert res.stats.complete
    assert res.outcomes == brute.outcomes, f"{sc.name}: {brute.outcomes - res.outcomes}"
    assert res.violated() == brute.violated(), sc.name
    return True


@pytest.mark.parametrize("bound", [1, pytest.param(None, marks=pytest.mark.slow)])
def test_work_units_on_two_processes_match_brute_force(bound):
    compared = 0
    for seed in SEEDS if bound is not None else UNBOUNDED_SEEDS:
        sc = generate(seed)
        brute = _brute(sc, bound)
        if brute is None:
            continue
        # A small split, so units are handed back and forth even here.
        _same(sc, bound, explore_parallel(sc, bound, jobs=2, split=3), brute)
        compared += 1
    assert compared >= 4


def test_time_sliced_units_match_one_process(monkeypatch):
    """Units that run out of their time slice hand everything back: the same outcomes."""
    monkeypatch.setattr(parallel, "TIME_SLICE", 0.0)
    sc = generate(1)
    one = DporSearch(sc, bound=None, optimal=False).run()
    res = explore_parallel(sc, None, jobs=2)
    assert res.stats.complete and res.stats.units > 10
    assert res.outcomes == one.outcomes


def test_a_coordinator_that_drops_handed_back_units_is_caught(monkeypatch):
    real = parallel.explore_unit

    def forgetful(*args, **kw):
        res, _ = real(*args, **kw)
        return res, []
    monkeypatch.setattr(parallel, "explore_unit", forgetful)
    for seed in SEEDS:
        sc = generate(seed)
        brute = _brute(sc, 1)
        in_process = Backend(0)     # so the patched explore_unit is the one that runs
        if brute is not None and \
                explore_parallel(sc, 1, backend=in_process, split=3).outcomes != brute.outcomes:
            return
    pytest.fail("dropping handed-back units lost nothing on any generated scenario")


def test_work_units_on_a_dask_local_cluster():
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        for seed in (1, 2):
            sc = generate(seed)
            brute = _brute(sc, 1)
            assert brute is not None
            _same(sc, 1, explore_parallel(sc, 1, backend=Backend(0, client), split=3), brute)


def test_explore_jobs_finds_the_bug_and_proves_the_fix(capsys):
    assert main(["explore", S99, "--jobs", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "PROVED" and doc["stats"]["complete"]
    assert doc["stats"]["work_units"] > 1
    assert main(["explore", S99, "--without", "99baac21e458", "--jobs", "2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert "I1" in doc["violations"]


def test_explore_dask_unreachable_scheduler_is_one_line_exit_2(capsys, monkeypatch):
    """(The connection itself is tested with mutate --dask: here the 10 s connect timeout is
    cut short.)"""
    from unmapcheck.checker import backend
    monkeypatch.setattr(backend, "CONNECT_TIMEOUT", 0.5)
    assert main(["explore", S99, "--dask", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--dask" in err and "\n" not in err
