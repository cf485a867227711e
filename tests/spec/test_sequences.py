"""bounded:sequences(...) (proofs/sequences.py): every short call sequence on small layouts,
every invariant after every step; and what it catches that no corpus scenario was written
for."""

from __future__ import annotations

import pytest

from unmapcheck.checker.explore import iterative_context_bounding
from unmapcheck.checker.prove import FAILED, PROVED, Options
from unmapcheck.checker.scenario import parse
from unmapcheck.proofs import sequences as S


# (inside-a-table in the default run; the other layouts are prove's bounded obligations,
# which the main job runs, and under the slow marker here)
@pytest.mark.parametrize("lay", [lay if lay.name == "inside-a-table" else
                                 pytest.param(lay, marks=pytest.mark.slow)
                                 for lay in S.LAYOUTS], ids=lambda lay: lay.name)
def test_every_sequence_of_two_calls_keeps_every_invariant(lay):
    r = S.run_layout(lay, Options(timeout=300))
    assert r.status == PROVED, r.detail
    n = S.count(lay, 2)
    assert f"all {n} sequences" in r.detail
    # exec and exit only last; everything else in every position
    k = len(S.alphabet(lay))
    assert n == k + (k - len(S._LAST_ONLY)) * k


def test_a_sequence_is_a_scenario_the_loader_accepts():
    lay = S.layout("across-a-pmd-boundary")
    seq = next(s for s in S.sequences(lay, 2) if [label for label, _ in s] ==
               ["fork", "madvise(A..B, MADV_DONTNEED)"])
    sc = parse(S.scenario_text(lay, seq), "<seq>")
    assert [t.name for t in sc.threads] == ["T0"]
    assert [op.op for op in sc.threads[0].program] == ["fork", "madvise"]
    assert sc.expect_never


def _failing(lay_name, bound=2):
    r = S.run_layout(S.layout(lay_name), Options(bound=bound, timeout=300))
    assert r.status == FAILED, r.detail
    text = r.data["counterexample"].split("\n", 1)[1]
    return r, parse(text, "<counterexample>")


def test_an_mprotect_that_never_flushes_is_caught(monkeypatch):
    """pte_needs_flush() answering "no" for every change: mprotect(A, r) leaves CPU1's
    writable translation (A was populated by a write on CPU1) after the call returns."""
    from unmapcheck.impl import mprotect
    monkeypatch.setattr(mprotect, "pte_needs_flush", lambda machine, old, new: False)
    r, sc = _failing("inside-a-table", bound=1)
    assert "[mprotect(A" in r.detail and "I1" in r.detail, r.detail
    res = iterative_context_bounding(sc, 0, stop_at_first=True)
    assert res.counterexamples and res.best().violation.group == "I1"


def test_a_fork_that_leaves_the_parent_writable_is_caught(monkeypatch):
    """copy_present_pte() without write-protecting the parent's PTE (wrprotect_ptes
    skipped): the parent keeps a writable mapping of a page the child shares. No corpus
    scenario had this; RMAP.anon_exclusive (the COW rule) catches it at the fork's return."""
    from unmapcheck.impl import fork
    monkeypatch.setattr(fork, "wrprotect_ptes", lambda mm, addr, ptep, nr: None)
    r, sc = _failing("inside-a-table", bound=1)
    assert "[fork]" in r.detail and "RMAP" in r.detail, r.detail
    assert "COW broken" in r.detail
    res = iterative_context_bounding(sc, 0, stop_at_first=True)
    assert res.counterexamples and res.best().violation.group == "RMAP"


def test_an_mprotect_that_skips_the_page_tables_is_caught(monkeypatch):
    """change_pud_range() that changes nothing (a negated "pudval is not None"): the VMA
    becomes read-only and its PTEs stay writable. No TLB is stale (the PTEs did not change)
    and no count is off: PTE_IN_VMA.write catches it at the call's return."""
    from unmapcheck.impl import mprotect
    monkeypatch.setattr(mprotect, "change_pud_range", lambda *a, **k: 0)
    r, sc = _failing("inside-a-table", bound=1)
    assert "[mprotect(A" in r.detail and "PTE_IN_VMA" in r.detail, r.detail
    assert "without VM_WRITE" in r.detail
    res = iterative_context_bounding(sc, 0, stop_at_first=True)
    assert res.counterexamples and res.best().violation.group == "PTE_IN_VMA"


def test_a_bound_and_a_budget_are_honoured():
    lay = S.layout("shmem-mlocked")
    assert S.count(lay, 1) == len(S.alphabet(lay))
    r = S.run_layout(lay, Options(bound=3, timeout=0.5))
    assert r.status == "UNKNOWN" and "time budget spent" in r.detail, r.detail
