"""Zapping user mappings: the unmap side of mm/memory.c.

Models, with their names and call tree, Linux 6.18's
``unmap_vmas -> unmap_single_vma -> unmap_page_range -> zap_p4d_range -> zap_pud_range ->
zap_pmd_range -> zap_pte_range -> do_zap_pte_range -> zap_present_ptes /
zap_nonpresent_ptes -> zap_present_folio_ptes``, plus ``zap_page_range_single`` /
``zap_page_range_single_batched`` (MADV_DONTNEED and the OOM-free paths), ``vm_normal_page``,
``print_bad_pte``, and the file side: ``unmap_mapping_range -> unmap_mapping_pages ->
unmap_mapping_range_tree -> unmap_mapping_range_vma`` and ``unmap_mapping_folio`` (hole
punch and truncation, through the file's i_mmap).

The walk skips empty upper levels (pgd_none, pud_none, pmd_none) as the kernel does, so the
cost of a zap is proportional to the populated tables, not to the span of the range.

Simplifications: order-0 folios only (no folio_pte_batch: every batch is one PTE), no THP or
hugetlb, no userfaultfd markers, no device-private entries, no mmu notifiers, no uprobes.
``need_resched()`` in zap_pte_range is an explorer choice, off unless a scenario switches
"resched" on (the model's scheduler preempts at every scheduling point in any case; the
choice adds the kernel's own reaction: dropping the PTL mid-table). The fix toggles consulted here are described in :func:`zap_present_folio_ptes`,
:func:`zap_nonpresent_ptes` and :func:`zap_pte_range`.

CONFIG_PT_RECLAIM (MADV_DONTNEED freeing the PTE table it emptied) follows the kernel era
(Machine.era): 6.18's mm/pt_reclaim.c (reclaim_pt_is_enabled, try_get_and_clear_pmd,
free_pte, try_to_free_pte; x86-64 only), or 7.0's mm/memory.c (pte_table_reclaim_possible,
zap_empty_pte_table, zap_pte_table_if_empty; x86 and arm64), with the fix 478a1c3abebf of
its flush address as a toggle. Read for this: v6.18's zap_pte_range / zap_nonpresent_ptes /
do_zap_pte_range and mm/pt_reclaim.c, and the v7.0 zap_pte_range tail after 4c640eb4181c.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import sched, word
from .sched import KernelBug
from .bug import reports_bug
from .constants import (MM_ANONPAGES, MM_FILEPAGES, MM_SWAPENTS, NR_MM_COUNTERS, PAGE_SHIFT,
                        PAGE_SIZE, PMD_SIZE, PTRS_PER_TABLE, ULONG_MAX, VM_HUGETLB)
from .locks import spin_lock, spin_trylock, spin_unlock
from .mm_types import (add_mm_rss_vec, linear_page_index, mm_counter, vm_area_struct)
from .mmu_gather import (__tlb_remove_folio_pages, pte_free_tlb, tlb_delay_rmap, tlb_end_vma,
                         tlb_flush_mmu, tlb_flush_mmu_tlbonly, tlb_flush_rmaps,
                         tlb_remove_tlb_entry, tlb_start_vma, tlb_gather_mmu, tlb_finish_mmu,
                         mmu_gather)
from .page import PG_locked, Page, folio_set_dirty, folio_test_anon, page_mapcount
from .pgtable import (EntryPtr, mm_dec_nr_table, p4d_addr_end, p4d_offset,
                      pgd_addr_end, pgd_offset, pgdp_get, pmd_addr_end, pmd_offset, pmdp_get,
                      pte_clear_not_present_full, pte_offset_map_lock, pte_offset_map_rw_nolock,
                      pte_unmap, pte_unmap_unlock,
                      ptep_get, ptep_get_and_clear_full, pud_addr_end, pud_offset,
                      pudp_get, _write, LEVEL_PTE)
from .fault import vm_normal_page  # noqa: F401  (the one definition, mm/memory.c)
from . import rmap
from .rmap import flush_tlb_batched_pending
from .pte import (describe, is_migration_entry, pte_dirty, pte_none, pte_present, pte_t,
                  swp_offset)
from .swapfile import free_swap_and_cache

ZAP_FLAG_DROP_MARKER = 1 << 0
ZAP_FLAG_UNMAP = 1 << 1


@dataclass
class zap_details:
    """include/linux/mm.h struct zap_details (the fields the model uses)."""

    even_cows: bool = False
    reclaim_pt: bool = False
    zap_flags: int = 0


@reports_bug
def print_bad_pte(vma: vm_area_struct, addr: int, pte: pte_t, page: Optional[Page]) -> None:
    """mm/memory.c print_bad_pte(): "BUG: Bad page map in process" in dmesg; the kernel
    carries on (and taints)."""
    mm = vma.vm_mm
    line = (f"BUG: Bad page map in process mm{mm.id}  pte:{describe(pte)} "
            f"pmd:? addr:{addr:#x} vm_flags:{vma.vm_flags:#x} anon_vma:{vma.anon_vma} "
            f"mapping:{vma.vm_file} index:{linear_page_index(vma, addr):#x}")
    if page is not None:
        line += f" page:pfn {page.pfn} refcount:{page._refcount} mapcount:{page_mapcount(page)}"
    mm.machine.printk(line)
    sched.event("bad_pte", mm=mm, addr=addr, text=line)


def should_zap_cows(details: Optional[zap_details]) -> bool:
    """By default zap everything; callers that keep private COW pages say so."""
    if details is None or details.reclaim_pt:
        return True
    return details.even_cows


def should_zap_folio(details: Optional[zap_details], folio: Page) -> bool:
    if should_zap_cows(details):
        return True
    return not folio_test_anon(folio)


def zap_present_folio_ptes(tlb: mmu_gather, vma: vm_area_struct, folio: Page, page: Page,
                           pte: EntryPtr, ptent: pte_t, nr: int, addr: int,
                           details: Optional[zap_details], rss: list, state: dict) -> None:
    """Clear a present PTE that maps a folio, account it, and queue the folio.

    A dirty file PTE dirties the folio; since 5df397dec7c4 its rmap removal is delayed until
    after the TLB flush, which is forced before the page-table lock is dropped.

    Fix toggles:
    * 5df397dec7c4 off: the rmap is removed at once, before any flush (6.0 shape).
    * 1cf35d47712d off: a dirty PTE does not force the flush (3.14 shape); with 5df397dec7c4
      on, delaying the rmap still forces a flush, but zap_pte_range then flushes after the
      unlock (see there).
    """
    mm = tlb.mm
    fixes = mm.machine.fixes
    delay_rmap = False
    if not folio_test_anon(folio):
        ptent = ptep_get_and_clear_full(mm, addr, pte, tlb.fullmm)
        if pte_dirty(ptent):
            folio_set_dirty(folio)
            if fixes.on("5df397dec7c4"):
                if tlb_delay_rmap(tlb):
                    delay_rmap = True
                    state["force_flush"] = True
            elif fixes.on("1cf35d47712d"):
                # v3.15..v6.1: a dirty shared PTE forces the flush before the unlock.
                state["force_flush"] = True
        # pte_young: folio_mark_accessed() only touches LRU state the model does not keep.
        rss[mm_counter(folio)] -= nr
    else:
        ptep_get_and_clear_full(mm, addr, pte, tlb.fullmm)
        rss[MM_ANONPAGES] -= nr
    tlb_remove_tlb_entry(tlb, pte, addr)
    if not delay_rmap:
        rmap.folio_remove_rmap_ptes(folio, page, nr, vma)
        if page_mapcount(folio) < 0:
            print_bad_pte(vma, addr, ptent, page)
    if __tlb_remove_folio_pages(tlb, page, nr, delay_rmap):
        state["force_flush"] = True
        state["force_break"] = True


def zap_present_ptes(tlb: mmu_gather, vma: vm_area_struct, pte: EntryPtr, ptent: pte_t,
                     max_nr: int, addr: int, details: Optional[zap_details], rss: list,
                     state: dict) -> int:
    """Zap (or skip) one present PTE; returns the number of PTEs processed (always 1: no
    large folios)."""
    mm = tlb.mm
    page = vm_normal_page(vma, addr, ptent)
    if page is None:
        # The shared zero page: no struct page to account.
        ptep_get_and_clear_full(mm, addr, pte, tlb.fullmm)
        tlb_remove_tlb_entry(tlb, pte, addr)
        return 1
    folio = page
    if not should_zap_folio(details, folio):
        state["any_skipped"] = True
        return 1
    zap_present_folio_ptes(tlb, vma, folio, page, pte, ptent, 1, addr, details, rss, state)
    return 1


def zap_nonpresent_ptes(tlb: mmu_gather, vma: vm_area_struct, pte: EntryPtr, ptent: pte_t,
                        max_nr: int, addr: int, details: Optional[zap_details], rss: list,
                        state: dict) -> int:
    """Zap a swap or migration entry.

    A migration entry still accounts the page it replaced, so zapping it decrements that
    page's counter (rss[mm_counter(folio)]--).

    Models mm/memory.c zap_nonpresent_ptes() of v6.18 (the same in v7.0): ``any_skipped`` is
    set on entry, so an entry the zap leaves in place (a swap entry or a private COW page's
    migration entry that *details* keeps) makes the table unreclaimable; an entry that is
    cleared resets it from zap_install_uffd_wp_if_needed(), so a table that held swap or
    migration entries can still be freed by PT_RECLAIM. Device-private and exclusive
    entries, markers and poisoned entries do not exist in the model; swap_pte_batch is 1.

    Fix toggle 9f9f1acd713d off (before v3.3): migration entries are not swap slots and were
    ignored by the accounting, so the counter leaks and check_mm() reports it at exit.
    """
    state["any_skipped"] = True
    mm = tlb.mm
    if not is_migration_entry(ptent):
        # A genuine swap entry: a private anonymous page.
        if not should_zap_cows(details):
            return 1
        rss[MM_SWAPENTS] -= 1
        free_swap_and_cache(mm.machine, swp_offset(ptent))    # free_swap_and_cache_nr
    else:
        folio = mm.zone.pfn_to_page(ptent.pfn)
        if not should_zap_folio(details, folio):
            return 1
        if mm.machine.fixes.on("9f9f1acd713d"):
            rss[mm_counter(folio)] -= 1
    pte_clear_not_present_full(mm, addr, pte, tlb.fullmm)    # clear_not_present_full_ptes
    state["any_skipped"] = zap_install_uffd_wp_if_needed(vma, addr, pte, 1, details, ptent)
    return 1


def zap_install_uffd_wp_if_needed(vma: vm_area_struct, addr: int, pte: EntryPtr, nr: int,
                                  details: Optional[zap_details], pteval: pte_t) -> bool:
    """Install a uffd-wp marker where a zapped PTE was write-protected by userfaultfd;
    returns whether one was installed (the table then is not empty).

    Models mm/memory.c zap_install_uffd_wp_if_needed(): the model has no userfaultfd, so
    nothing is installed and the result is always false."""
    return False


def do_zap_pte_range(tlb: mmu_gather, vma: vm_area_struct, pte: EntryPtr, addr: int,
                     end: int, details: Optional[zap_details], rss: list, state: dict) -> int:
    """Skip a run of none PTEs, then zap the next present or non-present one."""
    ptent = ptep_get(pte)
    max_nr = (end - addr) // PAGE_SIZE
    nr = 0
    if pte_none(ptent):
        nr = 1
        while nr < max_nr:
            ptent = ptep_get(pte + nr)
            if not pte_none(ptent):
                break
            nr += 1
        max_nr -= nr
        if not max_nr:
            return nr
        pte = pte + nr
        addr += nr * PAGE_SIZE
    if pte_present(ptent):
        nr += zap_present_ptes(tlb, vma, pte, ptent, max_nr, addr, details, rss, state)
    else:
        nr += zap_nonpresent_ptes(tlb, vma, pte, ptent, max_nr, addr, details, rss, state)
    return nr


# --- CONFIG_PT_RECLAIM: freeing the PTE table MADV_DONTNEED emptied -------------------------------
# Two shapes, chosen by the kernel era (Machine.era):
#   6.18 (and "5.x", which differs from 6.18 only in exit_mmap): mm/pt_reclaim.c
#       reclaim_pt_is_enabled, try_get_and_clear_pmd, free_pte, try_to_free_pte; the table is
#       freed with pte_free_tlb(..., start); x86-64 only.
#   7.0: the same logic moved into mm/memory.c by 4c640eb4181c ("mm: move pte table reclaim
#       code to memory.c"), as pte_table_reclaim_possible, zap_empty_pte_table and
#       zap_pte_table_if_empty, freeing with pte_free_tlb(..., addr) where addr == end
#       (fixed by 478a1c3abebf); on every MMU_GATHER_RCU_TABLE_FREE architecture
#       (9c8c02df3f87), so on arm64 too.


def config_pt_reclaim(machine) -> bool:
    """IS_ENABLED(CONFIG_PT_RECLAIM) for the modelled kernel (mm/Kconfig).

    6.18: ``PT_RECLAIM`` depends on ``ARCH_SUPPORTS_PT_RECLAIM && MMU && SMP``, and only
    arch/x86/Kconfig selects ARCH_SUPPORTS_PT_RECLAIM (``if X86_64``): on for the model's
    "x86" (x86-64), off for "arm64" and "ppc64". 7.0: 9c8c02df3f87 ("mm: make PT_RECLAIM depends on
    MMU_GATHER_RCU_TABLE_FREE") makes it ``def_bool y`` depending on
    MMU_GATHER_RCU_TABLE_FREE, which x86, arm64 and powerpc all select: on for all. The "5.x" era
    models only exit_mmap's older shape and follows 6.18 here (the real 5.x kernels had no
    PT_RECLAIM at all: it came in 6.14)."""
    if machine.era == "7.0":
        return machine.arch in ("x86", "arm64", "ppc64")  # select MMU_GATHER_RCU_TABLE_FREE
    return machine.arch == "x86"                    # select ARCH_SUPPORTS_PT_RECLAIM if X86_64


def pmd_pgtable(mm, pmdval) -> Page:
    """include/linux/pgtable.h pmd_pgtable(): the PTE table page a pmd value points at (the
    model looks the frame up in *mm*'s zone)."""
    return mm.zone.pfn_to_page(pmdval.pfn)


def _pte_table_is_none(start_pte: EntryPtr) -> bool:
    """The "Check if it is empty PTE page" loop: every one of the PTRS_PER_PTE entries from
    *start_pte* (the first slot: reclaim needs a PMD-aligned range) is none."""
    for i in range(PTRS_PER_TABLE):
        if not pte_none(ptep_get(start_pte + i)):
            return False
    return True


# --- the 6.18 shape: mm/pt_reclaim.c (v6.18) ---------------------------------------------------
def reclaim_pt_is_enabled(start: int, end: int, details: Optional[zap_details],
                          machine) -> bool:
    """May this zap free the PTE table? Only for a caller that asked (MADV_DONTNEED's
    ``reclaim_pt``) and a range covering the whole table.

    Models mm/pt_reclaim.c reclaim_pt_is_enabled() of v6.18, and the stub of mm/internal.h
    that returns false without CONFIG_PT_RECLAIM (the model passes the machine, whose arch
    and era stand for the configuration: :func:`config_pt_reclaim`)."""
    if not config_pt_reclaim(machine):
        return False
    return details is not None and details.reclaim_pt and (end - start >= PMD_SIZE)


def try_get_and_clear_pmd(mm, pmd: EntryPtr) -> tuple[bool, object]:
    """Fast path, called with the PTE lock held: if the pmd lock can be taken without
    waiting, clear the pmd and return (True, the old pmd value); else (False, None).

    Models mm/pt_reclaim.c try_get_and_clear_pmd() of v6.18 (pmd_lockptr is
    mm->page_table_lock: the model has no split PMD locks; pmdp_get_lockless is a plain
    read of the entry)."""
    pml = mm.page_table_lock                       # pmd_lockptr(mm, pmd)
    if not spin_trylock(pml):
        return False, None
    pmdval = pmdp_get(pmd)                         # pmdp_get_lockless(pmd)
    _write(pmd, None, "pmd_clear")
    spin_unlock(pml)
    return True, pmdval


def free_pte(mm, addr: int, tlb: mmu_gather, pmdval) -> None:
    """Queue the detached PTE table for freeing after the flush that covers *addr*.

    Models mm/pt_reclaim.c free_pte() of v6.18: pte_free_tlb(tlb, pmd_pgtable(pmdval),
    addr) and mm_dec_nr_ptes(). zap_pte_range passes ``start``, an address the table maps,
    so the flush invalidates the paging-structure entries that reach the table."""
    pte_free_tlb(tlb, pmd_pgtable(mm, pmdval), addr)
    mm_dec_nr_table(mm, LEVEL_PTE)                 # mm_dec_nr_ptes(mm)


def try_to_free_pte(mm, pmd: EntryPtr, addr: int, tlb: mmu_gather) -> None:
    """Slow path (the PTE lock was dropped midway, or the pmd lock was busy): under the pmd
    lock and the PTE lock, free the table only if every entry is still none (a fault may
    have refilled it meanwhile).

    Models mm/pt_reclaim.c try_to_free_pte() of v6.18 (pmd_lock is mm->page_table_lock;
    the PTE lock is the table's split lock, so ``ptl != pml`` always holds here)."""
    pml = mm.page_table_lock                       # pmd_lock(mm, pmd)
    spin_lock(pml)
    start_pte, pmdval, ptl = pte_offset_map_rw_nolock(mm, pmd, addr)
    if start_pte is not None:
        if ptl is not pml:
            spin_lock(ptl)                         # spin_lock_nested(ptl, SINGLE_DEPTH_NESTING)
        if _pte_table_is_none(start_pte):
            pte_unmap(start_pte)
            _write(pmd, None, "pmd_clear")
            if ptl is not pml:
                spin_unlock(ptl)
            spin_unlock(pml)
            free_pte(mm, addr, tlb, pmdval)
            return
    # out_ptl:
    if start_pte is not None:
        pte_unmap_unlock(start_pte, ptl)
    if ptl is not pml:
        spin_unlock(pml)


# --- the 7.0 shape: mm/memory.c after 4c640eb4181c --------------------------------------------
def pte_table_reclaim_possible(start: int, end: int, details: Optional[zap_details],
                               machine) -> bool:
    """May this zap free the PTE table? The 6.18 test with the IS_ENABLED(CONFIG_PT_RECLAIM)
    check folded in.

    Models mm/memory.c pte_table_reclaim_possible() of v7.0 (added by 4c640eb4181c; the
    model passes the machine for the configuration: :func:`config_pt_reclaim`)."""
    if not config_pt_reclaim(machine):
        return False
    # Only zap if we are allowed to and cover the full page table.
    return details is not None and details.reclaim_pt and (end - start >= PMD_SIZE)


def zap_empty_pte_table(mm, pmd: EntryPtr, ptl) -> tuple[bool, object]:
    """Fast path, called with the PTE lock *ptl* held: clear the pmd if the pmd lock is the
    PTE lock or can be taken without waiting; returns (cleared, the old pmd value).

    Models mm/memory.c zap_empty_pte_table() of v7.0 (4c640eb4181c, with fb4ddf208511 "mm/
    memory: handle non-split locks correctly in zap_empty_pte_table()": no trylock when the
    two locks are one). The model's pmd lock is mm->page_table_lock and its PTE locks are
    split, so the trylock is always taken."""
    pml = mm.page_table_lock                       # pmd_lockptr(mm, pmd)
    if ptl is not pml and not spin_trylock(pml):
        return False, None
    pmdval = pmdp_get(pmd)
    _write(pmd, None, "pmd_clear")
    if ptl is not pml:
        spin_unlock(pml)
    return True, pmdval


def zap_pte_table_if_empty(mm, pmd: EntryPtr, addr: int) -> tuple[bool, object]:
    """Slow path: under the pmd lock and the PTE lock, clear the pmd only if every entry
    of the table is still none; returns (cleared, the old pmd value). The caller frees.

    Models mm/memory.c zap_pte_table_if_empty() of v7.0 (6.18's try_to_free_pte() without
    the free)."""
    pml = mm.page_table_lock                       # pmd_lock(mm, pmd)
    spin_lock(pml)
    start_pte, pmdval, ptl = pte_offset_map_rw_nolock(mm, pmd, addr)
    if start_pte is not None:
        if ptl is not pml:
            spin_lock(ptl)                         # spin_lock_nested(ptl, SINGLE_DEPTH_NESTING)
        if _pte_table_is_none(start_pte):
            pte_unmap(start_pte)
            _write(pmd, None, "pmd_clear")
            if ptl is not pml:
                spin_unlock(ptl)
            spin_unlock(pml)
            return True, pmdval
    # out_ptl:
    if start_pte is not None:
        pte_unmap_unlock(start_pte, ptl)
    if ptl is not pml:
        spin_unlock(pml)
    return False, None


def zap_pte_range(tlb: mmu_gather, vma: vm_area_struct, pmd: EntryPtr, addr: int, end: int,
                  details: Optional[zap_details]) -> int:
    """Zap the PTEs of one page table in [addr, end), under its lock.

    rss deltas are batched in the local rss[] and applied before the unlock. If the gather
    filled up or a dirty file PTE was zapped (force_flush), the TLB is flushed before the
    page-table lock is dropped (1cf35d47712d), the delayed rmaps are removed after that flush
    (5df397dec7c4), and the pages are freed after the unlock.

    Models mm/memory.c zap_pte_range() of v6.18 and, for ``Machine.era == "7.0"``, of v7.0
    (the two differ only in the PT_RECLAIM code). need_resched() is an explorer choice
    (sched.may_fail, kind "resched": false unless a scenario switches it on): when true the
    loop breaks mid-table, the PTL is dropped and the rest of the table is retried, and
    ``direct_reclaim`` is cleared.

    PT_RECLAIM (MADV_DONTNEED over a whole table, where the kernel has it:
    :func:`config_pt_reclaim`): every entry zapped and none skipped (``any_skipped``, which
    a zapped swap or migration entry resets: :func:`zap_nonpresent_ptes`), the pmd is
    cleared under the PTE lock (the fast path) or, after a retry or a busy pmd lock,
    rechecked and cleared under both locks (the slow path), and the table is queued with
    pte_free_tlb() for freeing after a flush that invalidates walk caches.
    * 6.18 (mm/pt_reclaim.c): try_get_and_clear_pmd(), then free_pte(mm, start, ...) or
      try_to_free_pte(mm, pmd, start, ...): the flush address is ``start``, which the table
      maps.
    * 7.0 (mm/memory.c): zap_empty_pte_table(), then zap_pte_table_if_empty() and
      pte_free_tlb(tlb, pmd_pgtable(pmdval), addr) with ``addr == end``, one past the table.

    Fix toggles:
    * 1cf35d47712d off (v3.14 shape): the lock is dropped first and the forced flush and
      freeing happen after it.
    * 478a1c3abebf off (era 7.0; the code of v7.0 to v7.1.8): the table is queued with the
      address ``end``, so the flush invalidates the paging-structure entries of the next
      table's range, not of this one; on arm64 (TLBI by VA) a walk cache keeps reaching the
      freed table. With the fix on, 7.0 frees with ``start``. (The fix's diff was not in the
      sources read: the commit message says the address must be one the table covers, and
      ``start`` is what 6.18 passed; see impl/fixes.py.)
    """
    mm = tlb.mm
    machine = mm.machine
    start = addr
    era_70 = machine.era == "7.0"
    if era_70:
        can_reclaim_pt = pte_table_reclaim_possible(addr, end, details, machine)
    else:
        can_reclaim_pt = reclaim_pt_is_enabled(start, end, details, machine)
    direct_reclaim = True
    pmdval = None
    flush_under_ptl = machine.fixes.on("1cf35d47712d")
    while True:  # retry:
        state = {"force_flush": False, "force_break": False, "any_skipped": False}
        rss = [0] * NR_MM_COUNTERS
        start_pte, ptl = pte_offset_map_lock(mm, pmd, addr)
        if start_pte is None:
            return addr
        flush_tlb_batched_pending(mm)
        pte = start_pte
        while True:
            state["any_skipped"] = False
            if sched.may_fail("resched", "zap_pte_range: need_resched()"):
                direct_reclaim = False
                break
            nr = do_zap_pte_range(tlb, vma, pte, addr, end, details, rss, state)
            if state["any_skipped"]:
                can_reclaim_pt = False
            if state["force_break"]:
                addr += nr * PAGE_SIZE
                direct_reclaim = False
                break
            pte = pte + nr
            addr += PAGE_SIZE * nr
            if addr == end:
                break
        # Fast path: try to hold the pmd lock and unmap the PTE page.
        if can_reclaim_pt and direct_reclaim and addr == end:
            if era_70:
                direct_reclaim, pmdval = zap_empty_pte_table(mm, pmd, ptl)
            else:
                direct_reclaim, pmdval = try_get_and_clear_pmd(mm, pmd)
        add_mm_rss_vec(mm, rss)
        force_flush = state["force_flush"]
        if flush_under_ptl:
            # Do the actual TLB flush before dropping ptl.
            if force_flush:
                tlb_flush_mmu_tlbonly(tlb)
                tlb_flush_rmaps(tlb, vma)
            pte_unmap_unlock(start_pte, ptl)
            if force_flush:
                tlb_flush_mmu(tlb)
        else:
            pte_unmap_unlock(start_pte, ptl)
            if force_flush:
                tlb_flush_mmu_tlbonly(tlb)
                tlb_flush_rmaps(tlb, vma)
                tlb_flush_mmu(tlb)
        if addr != end:
            continue
        break
    if can_reclaim_pt:
        if era_70:
            # if (direct_reclaim || zap_pte_table_if_empty(mm, pmd, start, &pmdval))
            if not direct_reclaim:
                direct_reclaim, pmdval = zap_pte_table_if_empty(mm, pmd, start)
            if direct_reclaim:
                if machine.fixes.on("478a1c3abebf"):
                    pte_free_tlb(tlb, pmd_pgtable(mm, pmdval), start)
                else:
                    # v7.0..v7.1.8: pte_free_tlb(tlb, pmd_pgtable(pmdval), addr); addr == end.
                    pte_free_tlb(tlb, pmd_pgtable(mm, pmdval), addr)
                mm_dec_nr_table(mm, LEVEL_PTE)     # mm_dec_nr_ptes(mm)
        else:
            if direct_reclaim:
                free_pte(mm, start, tlb, pmdval)
            else:
                try_to_free_pte(mm, pmd, start, tlb)
    return addr


def zap_pmd_range(tlb: mmu_gather, vma: vm_area_struct, pud: EntryPtr, pudval, addr: int,
                  end: int, details: Optional[zap_details]) -> int:
    pmd = pmd_offset(pud, pudval, addr)
    while True:
        next_ = pmd_addr_end(addr, end)
        if pmdp_get(pmd) is None:
            addr = next_
        else:
            addr = zap_pte_range(tlb, vma, pmd, addr, next_, details)
            if addr != next_:
                continue  # the kernel's "pmd--" then "pmd++": retry the same pmd
        if addr == end:
            return addr
        pmd = pmd + 1


def zap_pud_range(tlb: mmu_gather, vma: vm_area_struct, p4d: EntryPtr, p4dval, addr: int,
                  end: int, details: Optional[zap_details]) -> int:
    pud = pud_offset(p4d, p4dval, addr)
    while True:
        next_ = pud_addr_end(addr, end)
        pudval = pudp_get(pud)
        if pudval is not None:
            next_ = zap_pmd_range(tlb, vma, pud, pudval, addr, next_, details)
        addr = next_
        if addr == end:
            return addr
        pud = pud + 1


def zap_p4d_range(tlb: mmu_gather, vma: vm_area_struct, pgd: EntryPtr, addr: int, end: int,
                  details: Optional[zap_details]) -> int:
    p4d = p4d_offset(pgd, addr)
    while True:
        next_ = p4d_addr_end(addr, end)
        p4dval = pgdp_get(p4d)
        if p4dval is not None:
            next_ = zap_pud_range(tlb, vma, p4d, p4dval, addr, next_, details)
        addr = next_
        if addr == end:
            return addr
        p4d = p4d + 1


def unmap_page_range(tlb: mmu_gather, vma: vm_area_struct, addr: int, end: int,
                     details: Optional[zap_details]) -> None:
    """Zap [addr, end) of one VMA: walk the pgd entries, skipping empty ones."""
    from .sched import KernelBug
    if addr >= end:
        raise KernelBug(f"BUG_ON(addr >= end) in unmap_page_range: {addr:#x} >= {end:#x}")
    _zap_enter(vma)
    tlb_start_vma(tlb, vma)
    pgd = pgd_offset(vma.vm_mm, addr)
    while True:
        next_ = pgd_addr_end(addr, end)
        if pgdp_get(pgd) is not None:
            next_ = zap_p4d_range(tlb, vma, pgd, addr, next_, details)
        addr = next_
        if addr == end:
            break
        pgd = pgd + 1
    tlb_end_vma(tlb, vma)
    _zap_exit(vma)


def _zap_enter(vma: vm_area_struct) -> None:
    """Model-only witness for the walker-stability invariant (N5): a zap is inside vma."""
    sched.point("zap_enter", writes=(vma.obj,))
    vma.zappers += 1
    if vma.walkers:
        sched.event("zap_under_walker", vma=vma)


def _zap_exit(vma: vm_area_struct) -> None:
    sched.point("zap_exit", writes=(vma.obj,))
    vma.zappers -= 1


def unmap_single_vma_range(vma: vm_area_struct, start_addr, end_addr):
    """The clipping of unmap_single_vma(): the part of [start_addr, end_addr) inside the VMA,
    or None. Written with word helpers so the proofs can run it on symbolic addresses."""
    start = word.umax(vma.vm_start, start_addr)
    inside_start = word.ult(start, vma.vm_end)
    end = word.umin(vma.vm_end, end_addr)
    inside_end = word.ult(vma.vm_start, end)
    return word.land(inside_start, inside_end), start, end


def unmap_single_vma(tlb: mmu_gather, vma: vm_area_struct, start_addr: int, end_addr: int,
                     details: Optional[zap_details], mm_wr_locked: bool) -> None:
    """Zap the part of [start_addr, end_addr) that lies in *vma* (uprobes and hugetlb are not
    modelled)."""
    ok, start, end = unmap_single_vma_range(vma, start_addr, end_addr)
    if not ok:
        return
    if start != end:
        if vma.vm_flags & VM_HUGETLB:
            return
        unmap_page_range(tlb, vma, start, end, details)


def unmap_vmas(tlb: mmu_gather, vmi, vma: vm_area_struct, start_addr: int, end_addr: int,
               tree_end: int, mm_wr_locked: bool) -> None:
    """Unmap [start_addr, end_addr) of every VMA from *vma* on, as the iterator *vmi* finds
    them below tree_end. exit_mmap passes 0 and ULONG_MAX (seed 001's "-1")."""
    details = zap_details(even_cows=True, zap_flags=ZAP_FLAG_DROP_MARKER | ZAP_FLAG_UNMAP)
    while True:
        start, end = start_addr, end_addr
        unmap_single_vma(tlb, vma, start, end, details, mm_wr_locked)
        vma = vmi.vma_find(word.sub(tree_end, 1))
        if vma is None:
            break


def zap_page_range_single_batched(tlb: mmu_gather, vma: vm_area_struct, address: int,
                                  size: int, details: Optional[zap_details]) -> None:
    """Zap [address, address + size) of one VMA into the caller's gather (6.16+: MADV_DONTNEED
    batches its flush over the whole madvise range)."""
    end = address + size
    update_hiwater_rss(vma.vm_mm)
    unmap_single_vma(tlb, vma, address, end, details, False)


def zap_page_range_single(vma: vm_area_struct, address: int, size: int,
                          details: Optional[zap_details]) -> None:
    """Zap a range of one VMA with a gather of its own."""
    tlb = mmu_gather()
    tlb_gather_mmu(tlb, vma.vm_mm)
    zap_page_range_single_batched(tlb, vma, address, size, details)
    tlb_finish_mmu(tlb)


# --- unmapping a file range from every mm (mm/memory.c) -----------------------------------------
def unmap_mapping_range_vma(vma: vm_area_struct, start_addr: int, end_addr: int,
                            details: Optional[zap_details]) -> None:
    """mm/memory.c unmap_mapping_range_vma(): zap [start_addr, end_addr) of one VMA (called
    under i_mmap_rwsem, without that mm's mmap_lock)."""
    zap_page_range_single(vma, start_addr, end_addr - start_addr, details)


def unmap_mapping_range_tree(mapping, first_index: int, last_index: int,
                             details: Optional[zap_details]) -> None:
    """mm/memory.c unmap_mapping_range_tree(): for every VMA of the file's i_mmap that maps
    a page of [first_index, last_index], zap the part that does."""
    from .mm_types import vma_pages
    from .rmap import vma_interval_tree_foreach
    for vma in vma_interval_tree_foreach(mapping, first_index, last_index):
        vba = vma.vm_pgoff
        vea = vba + vma_pages(vma) - 1
        zba = max(first_index, vba)
        zea = min(last_index, vea)
        unmap_mapping_range_vma(vma, ((zba - vba) << PAGE_SHIFT) + vma.vm_start,
                                ((zea - vba + 1) << PAGE_SHIFT) + vma.vm_start, details)


def unmap_mapping_folio(folio: Page) -> None:
    """mm/memory.c unmap_mapping_folio(): unmap a locked page-cache folio from every VMA
    that maps its index, keeping private COW copies (even_cows false). (single_folio only
    matters for a PMD-mapped THP: not modelled.)"""
    from .rmap import i_mmap_lock_read, i_mmap_unlock_read
    mapping = folio.mapping
    if not folio.flags & PG_locked:
        raise KernelBug("VM_BUG_ON(!folio_test_locked(folio))")
    first_index = folio.index
    last_index = folio.index                    # folio_next_index(folio) - 1: order 0
    details = zap_details(even_cows=False, zap_flags=ZAP_FLAG_DROP_MARKER)
    i_mmap_lock_read(mapping)
    if mapping.i_mmap:                          # !RB_EMPTY_ROOT(&mapping->i_mmap.rb_root)
        unmap_mapping_range_tree(mapping, first_index, last_index, details)
    i_mmap_unlock_read(mapping)


def unmap_mapping_pages(mapping, start: int, nr: int, even_cows: bool) -> None:
    """mm/memory.c unmap_mapping_pages(): unmap file pages [start, start + nr) from every
    mm; private COW copies too when *even_cows*."""
    from .rmap import i_mmap_lock_read, i_mmap_unlock_read
    details = zap_details(even_cows=even_cows)
    first_index = start
    last_index = (start + nr - 1) & ULONG_MAX
    if last_index < first_index:
        last_index = ULONG_MAX
    i_mmap_lock_read(mapping)
    if mapping.i_mmap:
        unmap_mapping_range_tree(mapping, first_index, last_index, details)
    i_mmap_unlock_read(mapping)


def unmap_mapping_range(mapping, holebegin: int, holelen: int, even_cows: int) -> None:
    """mm/memory.c unmap_mapping_range(): unmap the pages of the byte range [holebegin,
    holebegin + holelen) of a file (holelen 0: to the end) from every mm that maps them
    (truncation and hole punch; the page cache itself is the caller's business)."""
    hba = (holebegin & ULONG_MAX) >> PAGE_SHIFT
    hlen = ((holelen & ULONG_MAX) + PAGE_SIZE - 1) >> PAGE_SHIFT
    # Check for overflow (loff_t is as wide as pgoff_t on 64-bit: the kernel's
    # sizeof(holelen) > sizeof(hlen) branch is compiled out).
    unmap_mapping_pages(mapping, hba, hlen, bool(even_cows))


def update_hiwater_rss(mm) -> None:
    """include/linux/mm.h update_hiwater_rss(): remember the peak rss (reads rss)."""
    from .mm_types import get_mm_rss
    sched.point("update_hiwater_rss", reads=(("rss", mm.id),))
    mm.hiwater_rss = max(mm.hiwater_rss, get_mm_rss(mm))


__all__ = [
    "zap_details", "vm_normal_page", "print_bad_pte", "zap_pte_range", "zap_pmd_range",
    "zap_pud_range", "zap_p4d_range", "unmap_page_range", "unmap_single_vma", "unmap_vmas",
    "zap_page_range_single", "zap_page_range_single_batched", "ULONG_MAX", "MM_FILEPAGES",
    "unmap_mapping_range", "unmap_mapping_pages", "unmap_mapping_folio",
]
