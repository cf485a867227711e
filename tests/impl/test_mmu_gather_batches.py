"""The mmu_gather's page batches when they fill up (impl/mmu_gather.py
__tlb_remove_folio_pages, tlb_next_batch): a full gather asks its caller to flush, the
caller's flush empties it, and queueing into a full batch (a caller that did not flush, an
out-of-bounds write in the kernel) is reported. never-zap-full-gather drives zap_pte_range
through it with three-page batches."""

from __future__ import annotations

from pathlib import Path

import pytest

from unmapcheck.checker.explore import iterative_context_bounding
from unmapcheck.checker.scenario import load
from unmapcheck.impl import mmu_gather as G
from unmapcheck.impl import zap as Z
from unmapcheck.impl.machine import Machine, Tunables
from unmapcheck.impl.mm_types import mm_struct
from unmapcheck.impl.sched import KernelBug

SCENARIO = Path(__file__).resolve().parents[2] / "proofs" / "scenarios" / \
    "never-zap-full-gather.toml"
remove = getattr(G, "__tlb_remove_folio_pages")


def _gather(bundle: int = 3, batch: int = 3, count: int = 1):
    m = Machine(cpus=2, tunables=Tunables(gather_bundle=bundle, gather_batch=batch,
                                          gather_batch_count=count))
    mm = mm_struct(m)
    tlb = G.mmu_gather()
    G.tlb_gather_mmu(tlb, mm)
    return m, tlb


def test_a_full_gather_asks_for_a_flush_and_the_flush_empties_it():
    m, tlb = _gather()
    pages = [m.zone.alloc_page("anon") for _ in range(5)]
    # The on-stack batch (3) keeps one entry spare: the second page moves to the next batch;
    # the last batch cannot grow, so the fourth page asks for the flush.
    assert [remove(tlb, p, 1, False) for p in pages[:4]] == [False, False, False, True]
    G.tlb_flush_mmu(tlb)
    assert all(p.free for p in pages[:4])
    assert remove(tlb, pages[4], 1, False) is False


def test_queueing_into_a_full_batch_is_a_bug():
    m, tlb = _gather()
    pages = [m.zone.alloc_page("anon") for _ in range(6)]
    for p in pages[:4]:
        remove(tlb, p, 1, False)
    assert remove(tlb, pages[4], 1, False) is True       # told to flush: the last free slot
    with pytest.raises(KernelBug, match="batch overflow"):
        remove(tlb, pages[5], 1, False)


def test_zap_full_gather_scenario_holds():
    res = iterative_context_bounding(load(str(SCENARIO)), 0)
    assert res.stats.complete and not res.violated()


def test_a_zap_that_does_not_flush_when_told_is_found_with_a_trace(monkeypatch):
    """zap_pte_range's tlb_flush_mmu after a forced flush (the batch's frees) removed: the
    next zap queues into the full batch."""
    monkeypatch.setattr(Z, "tlb_flush_mmu", lambda tlb: None)
    res = iterative_context_bounding(load(str(SCENARIO)), 0)
    assert "BUG" in res.violated()
    cex = res.counterexamples["BUG"]
    assert "batch overflow" in cex.violation.message and cex.schedule
