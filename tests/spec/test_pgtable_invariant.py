"""PTE_IN_VMA.table (every page table below the pgd translates some address of a VMA): it
holds after unmaps that free tables at every level and after ones that must keep a table a
neighbour shares; it judges a leaked table; and bounded:sequences' PGD-boundary layout
reports a broken free_pgtables floor or ceiling test with the sequence that shows it."""

from __future__ import annotations

from unmapcheck.checker.prove import FAILED, PROVED, Options
from unmapcheck.impl import System
from unmapcheck.impl import free_pgtables as FP
from unmapcheck.impl.constants import (MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PROT_READ,
                                       PROT_WRITE, PUD_SIZE)
from unmapcheck.impl.pgtable import LEVEL_PGD, iter_tables
from unmapcheck.proofs import sequences as S
from unmapcheck.spec import check as CHECK
from unmapcheck.spec.view import ConcreteView

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
P = 0x1000
PGD_EDGE = 0x7f0000000000          # a PGD entry's (512 GiB) boundary: PUD and PMD ones too


def _table_violations(machine) -> list:
    S_ = ConcreteView(machine)
    return [f for f in CHECK.violations(S_, "quiescent") if f.name == "PTE_IN_VMA.table"]


def _levels(mm) -> list[int]:
    return sorted(level for level, _base, _page in iter_tables(mm) if level != LEVEL_PGD)


def test_unmaps_free_every_table_no_vma_needs_and_keep_shared_ones():
    s = System()
    p = s.spawn()
    a = p.mmap(PGD_EDGE - P, 2 * P, RW, ANON)           # one page on each side of the edge
    b = p.mmap(PGD_EDGE + 0x8000000000, P, RW, ANON)     # the next PGD entry
    for addr in (a, a + P, b):
        p.store(addr, 0x41)
    mm = p.mm
    assert not _table_violations(s.machine)
    tables = len(_levels(mm))
    assert p.munmap(a + P, P) == 0                      # its PUD, PMD and PTE tables go
    assert not _table_violations(s.machine)
    assert len(_levels(mm)) == tables - 3
    assert p.munmap(a, P) == 0
    assert not _table_violations(s.machine)
    assert p.munmap(b, P) == 0
    assert not _table_violations(s.machine) and _levels(mm) == []


def test_a_table_left_behind_by_an_unmap_is_judged():
    s = System()
    p = s.spawn()
    a = p.mmap(0x7f0000000000, 2 * P, RW, ANON)
    p.store(a, 0x41)
    # The VMA goes without free_pgtables (as a broken unmap would leave it).
    vma = p.mm.mm_mt.vmas[0]
    p.mm.mm_mt.erase(vma)
    p.mm.map_count -= 1
    found = _table_violations(s.machine)
    assert len(found) == 1 and "free_pgtables() did not free it" in found[0].message
    assert found[0].message.startswith(f"mm{p.mm.id} keeps a PUD table for 0x7f0000000000-")
    view = ConcreteView(s.machine)
    orphans = [t for t in view.page_tables_of(p.mm) if not view.vm_intersects(t[0], t[2], t[3])]
    assert sorted(t[1] for t in orphans) == [1, 2, 3]   # its PTE, PMD and PUD tables


def test_sequences_report_a_pte_table_an_unmap_kept(monkeypatch):
    """free_pte_range that frees nothing: munmap of the first page of the layout across a
    PMD boundary leaves that page's PTE table, which no VMA needs, linked from a PMD table
    the other mapping keeps (PTE_IN_VMA.table, with the sequence as a scenario)."""
    monkeypatch.setattr(FP, "free_pte_range", lambda tlb, pmd, addr: None)
    r = S.run_layout(S.layout("across-a-pmd-boundary"), Options(bound=1, timeout=120))
    assert r.status == FAILED, r.detail
    assert "PTE_IN_VMA.table" in r.detail and "keeps a PTE table" in r.detail
    assert "[[process.mapping]]" in r.data["counterexample"]


def test_sequences_report_a_broken_pmd_floor_test(monkeypatch):
    """free_pmd_range as if its floor test were `start <= floor`: it keeps the PMD table of
    a range that starts exactly at the floor (prev ends on a PUD boundary). The layout across
    a PGD entry's boundary has one: munmap of its last page, then free_pud_range frees the
    PUD table above it, and the PMD table is lost (check_mm's pgtables_bytes at exit)."""
    real = FP.free_pmd_range

    def broken(tlb, pud, pudval, addr, end, floor, ceiling):
        if floor and (addr & ~(PUD_SIZE - 1)) == floor:
            floor += 1                  # `start < floor + 1` is `start <= floor`
        real(tlb, pud, pudval, addr, end, floor, ceiling)
    monkeypatch.setattr(FP, "free_pmd_range", broken)
    lay = S.layout("across-a-pgd-boundary")
    r = S.run_layout(lay, Options(timeout=120))
    assert r.status == FAILED, r.detail
    assert "munmap(A last page)" in r.detail, r.detail
    assert "[[process.mapping]]" in r.data["counterexample"]
    monkeypatch.setattr(FP, "free_pmd_range", real)
    assert S.run_layout(lay, Options(bound=1, timeout=120)).status == PROVED
