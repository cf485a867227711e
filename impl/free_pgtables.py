"""Freeing page tables after an unmap: mm/memory.c free_pgtables() and free_pgd_range().

Models free_pgtables, free_pgd_range, free_p4d_range, free_pud_range, free_pmd_range and
free_pte_range of Linux 6.18. A table is freed only if the whole span it maps lies inside
[floor, ceiling) - the neighbouring VMAs' tables are kept - and it is not freed directly: it is
queued on the mmu_gather (pte_free_tlb and friends), which frees it after the TLB flush that
also invalidates walk caches (freed_tables).

The p4d level is folded (4-level paging): clearing the p4d entry clears the pgd slot, and
free_p4d_range's pgd_clear()/p4d_free_tlb() are no-ops, as in the kernel.

free_pgtables also unlinks each VMA from the reverse maps (unlink_anon_vmas, and the
unlink_file_vma_batch_* calls) before its tables go, as 6.18 does.
"""

from __future__ import annotations

from .constants import PGDIR_MASK, PMD_MASK, PMD_SIZE, PUD_MASK, ULONG_MAX
from .mmu_gather import mmu_gather, pmd_free_tlb, pte_free_tlb, pud_free_tlb
from .pgtable import (EntryPtr, LEVEL_PMD, LEVEL_PTE, LEVEL_PUD, _write, entry_table,
                      mm_dec_nr_table, p4d_addr_end, p4d_offset, pgd_addr_end, pgd_offset,
                      pgdp_get, pmd_addr_end, pmd_offset, pmdp_get, pud_addr_end, pud_offset,
                      pudp_get)

MASK64 = ULONG_MAX


def free_pte_range(tlb: mmu_gather, pmd: EntryPtr, addr: int) -> None:
    """mm/memory.c free_pte_range(): clear the pmd and queue its PTE table on the gather."""
    pmdval = pmdp_get(pmd)
    token = entry_table(pmd, pmdval)
    _write(pmd, None, "pmd_clear")
    pte_free_tlb(tlb, token, addr)
    mm_dec_nr_table(tlb.mm, LEVEL_PTE)


def _above_ceiling(end: int, ceiling: int) -> bool:
    # "end - 1 > ceiling - 1" on unsigned longs: a ceiling of 0 means the top.
    return ((end - 1) & MASK64) > ((ceiling - 1) & MASK64)


def free_pmd_range(tlb: mmu_gather, pud: EntryPtr, pudval, addr: int, end: int, floor: int,
                   ceiling: int) -> None:
    """mm/memory.c free_pmd_range(): free the PTE tables of [addr, end), then the PMD table
    itself if all it maps lies inside [floor, ceiling)."""
    start = addr
    pmd = pmd_offset(pud, pudval, addr)
    while True:
        next_ = pmd_addr_end(addr, end)
        if pmdp_get(pmd) is not None:
            free_pte_range(tlb, pmd, addr)
        addr = next_
        if addr == end:
            break
        pmd = pmd + 1
    start &= PUD_MASK
    if start < floor:
        return
    if ceiling:
        ceiling &= PUD_MASK
        if not ceiling:
            return
    if _above_ceiling(end, ceiling):
        return
    table = entry_table(pud, pudval)
    _write(pud, None, "pud_clear")
    pmd_free_tlb(tlb, table, start)
    mm_dec_nr_table(tlb.mm, LEVEL_PMD)


def free_pud_range(tlb: mmu_gather, p4d: EntryPtr, p4dval, addr: int, end: int, floor: int,
                   ceiling: int) -> None:
    """mm/memory.c free_pud_range(): free the PMD tables of [addr, end), then the PUD table
    itself if all it maps lies inside [floor, ceiling) (the p4d slot is the pgd slot)."""
    start = addr
    pud = pud_offset(p4d, p4dval, addr)
    while True:
        next_ = pud_addr_end(addr, end)
        pudval = pudp_get(pud)
        if pudval is not None:
            free_pmd_range(tlb, pud, pudval, addr, next_, floor, ceiling)
        addr = next_
        if addr == end:
            break
        pud = pud + 1
    start &= PGDIR_MASK          # P4D_MASK of the folded level
    if start < floor:
        return
    if ceiling:
        ceiling &= PGDIR_MASK
        if not ceiling:
            return
    if _above_ceiling(end, ceiling):
        return
    table = entry_table(p4d, p4dval)
    _write(p4d, None, "p4d_clear")
    pud_free_tlb(tlb, table, start)
    mm_dec_nr_table(tlb.mm, LEVEL_PUD)


def free_p4d_range(tlb: mmu_gather, pgd: EntryPtr, addr: int, end: int, floor: int,
                   ceiling: int) -> None:
    p4d = p4d_offset(pgd, addr)
    while True:
        next_ = p4d_addr_end(addr, end)
        p4dval = pgdp_get(p4d)
        if p4dval is not None:
            free_pud_range(tlb, p4d, p4dval, addr, next_, floor, ceiling)
        addr = next_
        if addr == end:
            break
        p4d = p4d + 1
    # Folded level: pgd_clear() and p4d_free_tlb() do nothing.


def free_pgd_range(tlb: mmu_gather, addr: int, end: int, floor: int, ceiling: int) -> None:
    """Free the tables that map only [addr, end), never beyond [floor, ceiling)."""
    addr &= PMD_MASK
    if addr < floor:
        addr = (addr + PMD_SIZE) & MASK64
        if not addr:
            return
    if ceiling:
        ceiling &= PMD_MASK
        if not ceiling:
            return
    if _above_ceiling(end, ceiling):
        end = (end - PMD_SIZE) & MASK64
    if addr > ((end - 1) & MASK64):
        return
    pgd = pgd_offset(tlb.mm, addr)
    while True:
        next_ = pgd_addr_end(addr, end)
        if pgdp_get(pgd) is not None:
            free_p4d_range(tlb, pgd, addr, next_, floor, ceiling)
        addr = next_
        if addr == end:
            break
        pgd = pgd + 1


def free_pgtables(tlb: mmu_gather, vmi, vma, floor: int, ceiling: int,
                  mm_wr_locked: bool) -> None:
    """Free the page tables under the VMAs from *vma* on (as *vmi* finds them below
    *ceiling*), gathering VMAs closer than a PMD into one call, after unlinking each from
    the reverse maps: the anon_vmas one by one, the files' i_mmap trees in batches (one
    i_mmap lock per run of VMAs of the same file). Models mm/memory.c free_pgtables() of
    6.18 (no hugetlb: its unlink_file_vma + hugetlb_free_pgd_range branch is left out)."""
    from .mm_types import vma_start_write
    from .mmu_gather import tlb_free_vmas
    from .rmap import (unlink_anon_vmas, unlink_file_vma_batch_add,
                       unlink_file_vma_batch_final, unlink_file_vma_batch_init,
                       unlink_vma_file_batch)
    vb = unlink_vma_file_batch()
    tlb_free_vmas(tlb)
    while vma is not None:
        addr = vma.vm_start
        next_vma = vmi.vma_find((ceiling - 1) & MASK64)
        if mm_wr_locked:
            vma_start_write(vma)
        unlink_anon_vmas(vma)
        unlink_file_vma_batch_init(vb)
        unlink_file_vma_batch_add(vb, vma)
        while next_vma is not None and next_vma.vm_start <= vma.vm_end + PMD_SIZE:
            vma = next_vma
            next_vma = vmi.vma_find((ceiling - 1) & MASK64)
            if mm_wr_locked:
                vma_start_write(vma)
            unlink_anon_vmas(vma)
            unlink_file_vma_batch_add(vb, vma)
        unlink_file_vma_batch_final(vb)
        free_pgd_range(tlb, addr, vma.vm_end, floor,
                       next_vma.vm_start if next_vma is not None else ceiling)
        vma = next_vma
