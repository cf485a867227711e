"""Hand-built model state for the rmap, migration and writeback tests: PTEs installed
directly, user accesses through a CPU's TLB, lookups without scheduling points."""

from __future__ import annotations

from unmapcheck.impl import cpu as hw
from unmapcheck.impl.mm_types import mm_struct
from unmapcheck.impl.pgtable import (lookup_pte, p4d_offset, pgd_offset, pmd_alloc, pte_alloc,
                                     pte_offset_map, pte_unmap, pud_alloc, set_pte_at)
from unmapcheck.impl.pte import PTE_NONE

BASE = 0x7F0000000000


def install_pte(mm, addr, pte):
    """Allocate the tables down to addr's PTE slot and store *pte* there; returns the slot."""
    pgdp = pgd_offset(mm, addr)
    pmdp = pmd_alloc(mm, pud_alloc(mm, p4d_offset(pgdp, addr), addr), addr)
    pte_alloc(mm, pmdp)
    ptep = pte_offset_map(pmdp, addr)
    set_pte_at(mm, addr, ptep, pte)
    pte_unmap(ptep)          # end pte_offset_map's RCU section (the slot stays usable here)
    return ptep


def read_pte(mm, addr):
    ptep = lookup_pte(mm, addr)
    return PTE_NONE if ptep is None else ptep.table.table.get(ptep.idx, PTE_NONE)


def new_mm(m, cpus=(0,)):
    """An mm run by the given CPUs (they join its mm_cpumask)."""
    mm = mm_struct(m)
    for c in cpus:
        hw.switch_mm(m.cpus[c], mm)
    return mm


def touch(m, c, mm, addr, write, value=0):
    """A user access on CPU c through its TLB (fills it)."""
    cpu = m.cpus[c]
    entry = hw.mmu_translate(cpu, mm, addr, write)
    return hw.mmu_access_data(cpu, mm, addr, entry, write, value)


def tlb_has(m, mm, addr):
    """The CPUs whose TLB holds a translation of addr in mm."""
    return [c.id for c in m.cpus if (mm.id, addr >> 12) in c.tlb]
