"""bounded:copy_vma (proofs/copy_vma.py): mremap's copy_vma() at every placement among
mergeable and unmergeable neighbours; with 7e7757876f25 off it finds the historic bug, and it
reports a planted regression in copy_vma with the placement that shows it."""

from __future__ import annotations

from unmapcheck.checker.prove import FAILED, PROVED, Options, all_obligations
from unmapcheck.impl import vma as V
from unmapcheck.proofs import copy_vma as C


def test_every_copy_keeps_every_invariant_and_reads_the_right_file_pages():
    r = C.run(Options())
    assert r.status == PROVED, r.detail
    n = sum(1 for _ in C.cases())
    assert f"all {n} copies" in r.detail and not r.data.get("expected_violation_found")


def test_the_copies_take_every_merge_copy_vma_has():
    """The placements reach each outcome of vma_merge_new_range: no merge, into prev, into
    next, into both, and the merges that take the source itself in."""
    seen = set()
    real = V.copy_vma

    def spy(vmap, addr, length, pgoff):
        new_vma, need_rmap_locks = real(vmap, addr, length, pgoff)
        seen.add((new_vma.vm_start < addr, new_vma.vm_end > addr + length))
        return new_vma, need_rmap_locks
    V.copy_vma = spy
    try:
        for case in C.cases():
            assert C.check_case(case) is None, case
    finally:
        V.copy_vma = real
    assert seen == {(False, False), (True, False), (False, True), (True, True)}


def test_without_7e7757876f25_the_merge_into_next_breaks_i3():
    r = C.run(Options(), (C.FIX,))
    assert r.status == PROVED and r.data.get("expected_violation_found"), r.detail
    assert "I3.pgoff" in r.detail and "next=merge" in r.detail


def test_a_copy_vma_that_loses_the_merged_source_is_reported(monkeypatch):
    """copy_vma must hand back, through *vmap, the VMA the source was merged into: a regression
    that forgets it leaves move_vma working on a freed VMA."""
    real = V.copy_vma

    def forgetful(vmap, addr, length, pgoff):
        src = vmap[0]
        out = real(vmap, addr, length, pgoff)
        vmap[0] = src
        return out
    monkeypatch.setattr(V, "copy_vma", forgetful)
    r = C.run(Options())
    assert r.status == FAILED
    assert "*vmap" in r.detail and "right below it" in r.detail


def test_a_crash_is_never_the_expected_violation(monkeypatch):
    def crash(case, fixes_off=()):
        raise RuntimeError("boom")
    monkeypatch.setattr(C, "check_case", crash)
    r = C.run(Options(), (C.FIX,))
    assert r.status == FAILED and "RuntimeError: boom" in r.detail


def test_prove_runs_both_obligations():
    names = {ob.name for ob in all_obligations()}
    assert {"bounded:copy_vma", f"bounded:copy_vma(without {C.FIX})"} <= names
