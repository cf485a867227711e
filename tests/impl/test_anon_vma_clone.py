"""anon_vma_clone()'s failure path (choice kinds "alloc" and "enomem"), dup_anon_vma() under the
merge target's write lock (fix d8ab9f7b644a), and the RMAP.anon_vma invariant catching a
mapped page whose anon_vma was freed."""

from __future__ import annotations

import pytest

from unmapcheck.checker.explore import iterative_context_bounding
from unmapcheck.checker.scenario import ScenarioError, load, parse
from unmapcheck.checker.trace import counterexample_trace, replay
from unmapcheck.impl import rmap, vma as vma_mod
from unmapcheck.impl.sched import KernelBug
from unmapcheck.proofs import SCENARIO_DIR

BASE = 0x7f0000000000
ENOMEM = -12


def _scenario(program: str, choices: str = '["alloc", "enomem"]', max_choices: int = 2,
              pages: int = 3) -> str:
    return f"""
[scenario]
name = "anon-vma-clone-test"
cpus = 2
choices = {choices}
max_choices = {max_choices}

[[process]]
name = "p"
[[process.mapping]]
addr = {BASE:#x}
pages = {pages}
prot = "rw"
populate = "write"

[[thread]]
name = "T0"
process = "p"
cpu = 0
program = [ {program} ]

[bounds]
preemptions = 0

[expect]
never = true
"""


def test_a_split_whose_clone_fails_leaves_everything_as_it_was():
    # Unmapping the middle page splits twice; either anon_vma_clone may fail (GFP_NOWAIT,
    # then GFP_KERNEL). Every outcome is judged by every invariant (coverage, rss, mapcount,
    # RMAP, PTE_IN_VMA) at the end of every execution.
    sc = parse(_scenario(f'{{ op = "munmap", addr = {BASE + 0x1000:#x}, len = 0x1000 }}, '
                         f'{{ op = "load", addr = {BASE + 0x1000:#x} }}, '
                         f'{{ op = "load", addr = {BASE + 0x2000:#x} }}'))
    res = iterative_context_bounding(sc, 0, stop_at_first=False)
    assert res.stats.complete and not res.counterexamples, res.best().violation.message
    outcomes = {tuple(dict(k)["T0"]) for k in res.outcome_counts}
    assert (0, "SIGSEGV", 0) in outcomes          # the split worked: the page is gone
    # The clone failed: munmap returns -ENOMEM and the page is still mapped (and readable).
    assert any(o[0] == ENOMEM and o[1] != "SIGSEGV" for o in outcomes), outcomes


def test_only_a_nowait_failure_is_not_an_error(monkeypatch):
    # "alloc" alone: the GFP_NOWAIT try fails, the GFP_KERNEL retry succeeds.
    taken = []
    real = rmap.may_fail

    def may_fail(kind, label):
        failed = real(kind, label)
        taken.append((kind, label, failed))
        return failed
    monkeypatch.setattr(rmap, "may_fail", may_fail)
    sc = parse(_scenario(f'{{ op = "munmap", addr = {BASE + 0x1000:#x}, len = 0x1000 }}',
                         choices='["alloc"]', max_choices=1))
    res = iterative_context_bounding(sc, 0, stop_at_first=False)
    assert res.stats.complete and not res.counterexamples
    assert {dict(k)["T0"][0] for k in res.outcome_counts} == {0}
    assert ("alloc", "anon_vma_clone: anon_vma_chain_alloc(GFP_NOWAIT)", True) in taken
    assert not any(kind == "enomem" and failed for kind, _, failed in taken)


def test_dup_anon_vma_asserts_the_target_write_locked(monkeypatch):
    # 6.18's vma_assert_write_locked(dst): a merge that did not lock its target is a BUG.
    monkeypatch.setattr(vma_mod, "_lock_merge_target", lambda vma: None)
    sc = load(SCENARIO_DIR / "d8ab9f7b644a-merge-vs-vma-locked-fault.toml")
    res = iterative_context_bounding(sc, 0, stop_at_first=True)
    assert res.counterexamples
    assert res.best().violation.group == "BUG"
    assert "write" in res.best().violation.message


def test_a_fork_whose_anon_vma_fork_fails_is_reported_as_not_modelled():
    sc = parse(_scenario('{ op = "fork" }', choices='["alloc", "enomem"]'))
    with pytest.raises(ScenarioError, match="dup_mmap's failure path .* not modelled"):
        iterative_context_bounding(sc, 0, stop_at_first=False)


def test_rmap_catches_an_anon_vma_freed_under_a_mapped_page(monkeypatch):
    """A planted refcount bug: unlink_anon_vmas() frees every anon_vma of the VMA, also the
    ones other VMAs are still chained to. Unmapping one half of a split mapping frees the
    anon_vma the other half's pages point to."""
    real = rmap.unlink_anon_vmas

    def unlink_and_free(vma):
        chained = list(rmap.anon_vma_chain(vma))
        real(vma)
        for anon_vma in chained:
            rmap.anon_vma_free(anon_vma)
    monkeypatch.setattr(rmap, "unlink_anon_vmas", unlink_and_free)
    monkeypatch.setattr(vma_mod, "unlink_anon_vmas", unlink_and_free, raising=False)
    sc = parse(_scenario(f'{{ op = "munmap", addr = {BASE + 0x2000:#x}, len = 0x1000 }}',
                         choices="[]", max_choices=1))
    res = iterative_context_bounding(sc, 0, stop_at_first=True)
    assert res.counterexamples, "the freed anon_vma was not caught"
    best = res.best()
    assert best.violation.name == "RMAP.anon_vma", best.violation.message
    trace = counterexample_trace(sc, best).to_json()
    assert trace["violation"]["invariant"] == "RMAP.anon_vma"
    assert replay(trace, "<memory>").reproduced


@pytest.mark.parametrize("fix_on", [True, False])
def test_the_d8ab9f7b644a_race_both_ways(fix_on):
    sc = load(SCENARIO_DIR / "d8ab9f7b644a-merge-vs-vma-locked-fault.toml")
    if not fix_on:
        sc = sc.with_fixes_off(("d8ab9f7b644a",))
    res = iterative_context_bounding(sc, 1, stop_at_first=not fix_on)
    if fix_on:
        assert res.stats.complete and not res.counterexamples, res.best().violation.message
    else:
        assert res.counterexamples
        assert res.best().violation.group == "RMAP", res.best().violation.message
        trace = counterexample_trace(sc, res.best()).to_json()
        assert trace["inject"] == [["T0", 0], ["T0", 1]]     # GFP_NOWAIT, then GFP_KERNEL
        steps = [(st["thread"], st["label"]) for st in trace["steps"]]
        sets = [i for i, st in enumerate(steps) if st == ("T0", "WRITE vma->anon_vma")]
        read = steps.index(("T1", "READ vma->anon_vma"))
        # T1's fault, under A's VMA lock, reads the anon_vma dup_anon_vma published and
        # that the failed clone then takes back.
        assert any(label.startswith("vma_start_read") for t, label in steps[:read] if t == "T1")
        assert sets[0] < read < sets[1]
