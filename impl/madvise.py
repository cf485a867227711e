"""madvise(2): mm/madvise.c of Linux 6.18.

Models do_madvise, madvise_behavior_valid, check_input_range (the range checks that 6.15/6.16
called madvise_should_skip), get_lock_mode, madvise_lock,
madvise_unlock, madvise_batch_tlb_flush, madvise_init_tlb, madvise_finish_tlb,
madvise_do_behavior, madvise_walk_vmas, try_vma_read_lock, madvise_vma_behavior,
madvise_update_vma, madvise_dontneed_free, madvise_dontneed_free_valid_vma,
madvise_dontneed_single_vma, madvise_free_single_vma, madvise_free_pte_range, madvise_cold,
madvise_cold_or_pageout_pte_range (the cold half), madvise_willneed, madvise_remove (the
hole punch: impl/filemap.py vfs_fallocate), madvise_populate (GUP: impl/mlock.py
faultin_page_range), madvise_pageout, madvise_collapse and the guard-page advices as far as
their error returns,
ksm_madvise / hugepage_madvise as flag updates, and include/linux/pgtable.h
clear_young_dirty_ptes (generic form, as on x86).

The 6.16+ batched TLB shape is kept: MADV_DONTNEED, MADV_DONTNEED_LOCKED and MADV_FREE share
one mmu_gather for the whole call (madvise_init_tlb / madvise_finish_tlb); each VMA is zapped
into it by zap_page_range_single_batched(), which flushes at the VMA's end (tlb_end_vma), and
tlb_finish_mmu() does the final (possibly forced, nested) flush before madvise returns.

Behaviour on this machine's real kernel (6.18.44, checked with ctypes, see
tests/impl/test_madvise.py): unknown advice and an unaligned start give -EINVAL before
anything else; len 0 gives 0 (after the advice check); a length that rounds to 0 or makes the
range wrap gives -EINVAL; a range with unmapped holes is processed over the VMAs present and
returns -ENOMEM; an -EINVAL from a VMA (VM_LOCKED for DONTNEED) stops the walk at once.
MADV_HWPOISON / MADV_SOFT_OFFLINE are -EINVAL there (CONFIG_MEMORY_FAILURE is off), and the
model follows.

Simplifications common to the module:
* MADV_DONTNEED/FREE's MADVISE_VMA_READ_LOCK mode read-locks the one VMA the range lies in
  (impl/mmap_lock.py) and falls back to mmap_read_lock when the range spans more than one;
* no userfaultfd (userfaultfd_remove() is true: the lock is never dropped), no mseal
  (can_madvise_modify() is true), no mmu notifiers, no anon_vma names, no KSM daemon, no THP;
* the advices whose effect the model does not have raise :class:`NotSupported` (naming the
  advice) once the kernel's error checks for the VMA have passed: MADV_REMOVE on a regular
  (non-shmem) file (its ->fallocate), MADV_COLLAPSE (THP), MADV_GUARD_INSTALL/REMOVE (PTE
  markers), MADV_WILLNEED on a regular (non-shmem) file (readahead), and MADV_PAGEOUT of a
  dirty shmem page (shmem_writeout: shmem is never swapped out in the model).
"""

from __future__ import annotations

from typing import Optional

from . import sched
from .bug import WARN
from .constants import (EACCES, EAGAIN, EFAULT, EINTR, EINVAL, ENOMEM, EPERM, MADV_COLD,
                        MADV_COLLAPSE, MADV_DODUMP, MADV_DOFORK, MADV_DONTDUMP, MADV_DONTFORK,
                        MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE, MADV_HUGEPAGE,
                        MADV_HWPOISON, MADV_KEEPONFORK, MADV_MERGEABLE, MADV_NOHUGEPAGE,
                        MADV_NORMAL, MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
                        MADV_RANDOM, MADV_REMOVE, MADV_SEQUENTIAL, MADV_SOFT_OFFLINE,
                        MADV_UNMERGEABLE, MADV_WILLNEED, MADV_WIPEONFORK,
                        MM_SWAPENTS, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PMD_SIZE, VM_DONTCOPY,
                        VM_DONTDUMP, VM_DONTEXPAND, VM_HUGEPAGE, VM_HUGETLB, VM_IO, VM_LOCKED,
                        VM_MAYSHARE, VM_MERGEABLE, VM_MIXEDMAP, VM_NOHUGEPAGE, VM_PFNMAP,
                        VM_RAND_READ, VM_SEQ_READ, VM_SHARED, VM_SPECIAL, VM_WIPEONFORK,
                        VM_MAYWRITE)
from .mmap_lock import lock_vma_under_rcu, per_vma_locks, vma_end_read
from .locks import (mmap_read_lock, mmap_read_unlock, mmap_write_lock_killable,
                    mmap_write_unlock)
from .mm_types import (vma_start_write, add_mm_counter, find_vma, find_vma_prev, vm_flags_reset,
                       vma_is_anonymous, VmaIterator)
from .mmu_gather import (mmu_gather, tlb_end_vma, tlb_finish_mmu, tlb_gather_mmu,
                         tlb_remove_tlb_entries, tlb_start_vma)
from .page import (PG_active, PG_dirty, PG_referenced, PG_swapbacked, PG_unevictable,
                   folio_clear_dirty, folio_clear_flag, folio_test_anon, folio_test_swapbacked,
                   folio_test_swapcache, page_mapcount)
from .vma import IS_ERR, vma_modify_flags
from .pagewalk import PGWALK_RDLOCK, PGWALK_VMA_RDLOCK_VERIFY, mm_walk_ops, walk_page_range_vma
from .pgtable import (EntryPtr, pte_clear_not_present_full, pte_offset_map_lock,
                      pte_unmap_unlock, ptep_get, ptep_get_and_clear, set_pte_at)
from .pte import (non_swap_entry, pte_dirty, pte_mkclean, pte_mkold, pte_none, pte_present,
                  pte_young, swp_offset)
from .rmap import flush_tlb_batched_pending
from .sched import KernelBug
from .swapfile import folio_free_swap, free_swap_and_cache, swapin_readahead
from .word import MASK64
from .zap import update_hiwater_rss, vm_normal_page, zap_details, \
    zap_page_range_single_batched

# Advices not in constants.py (include/uapi/asm-generic/mman-common.h).
MADV_GUARD_INSTALL = 102
MADV_GUARD_REMOVE = 103
__MADV_SET_ANON_VMA_NAME = -1

# mm/madvise.c enum madvise_lock_mode
MADVISE_NO_LOCK = 0
MADVISE_MMAP_READ_LOCK = 1
MADVISE_MMAP_WRITE_LOCK = 2
MADVISE_VMA_READ_LOCK = 3

# include/linux/pgtable.h cydp_t
CYDP_CLEAR_YOUNG = 0x01
CYDP_CLEAR_DIRTY = 0x02

# Kernel configuration of the model (x86-64 defconfig-like, as on this machine).
CONFIG_KSM = True
CONFIG_TRANSPARENT_HUGEPAGE = True
CONFIG_MEMORY_FAILURE = False

MADV_NAMES = {
    0: "MADV_NORMAL", 1: "MADV_RANDOM", 2: "MADV_SEQUENTIAL", 3: "MADV_WILLNEED",
    4: "MADV_DONTNEED", 8: "MADV_FREE", 9: "MADV_REMOVE", 10: "MADV_DONTFORK",
    11: "MADV_DOFORK", 12: "MADV_MERGEABLE", 13: "MADV_UNMERGEABLE", 14: "MADV_HUGEPAGE",
    15: "MADV_NOHUGEPAGE", 16: "MADV_DONTDUMP", 17: "MADV_DODUMP", 18: "MADV_WIPEONFORK",
    19: "MADV_KEEPONFORK", 20: "MADV_COLD", 21: "MADV_PAGEOUT", 22: "MADV_POPULATE_READ",
    23: "MADV_POPULATE_WRITE", 24: "MADV_DONTNEED_LOCKED", 25: "MADV_COLLAPSE",
    100: "MADV_HWPOISON", 101: "MADV_SOFT_OFFLINE", 102: "MADV_GUARD_INSTALL",
    103: "MADV_GUARD_REMOVE",
}


class NotSupported(sched.NotModelled):
    """The operation is valid in the real kernel here (its error checks passed), but its
    effect is not modelled. *what* is an madvise advice number, or a description such as
    ``"mprotect(PROT_NONE)"``; other modules (mprotect) raise it too."""

    def __init__(self, what, why: str):
        name = f"madvise({MADV_NAMES.get(what, what)})" if isinstance(what, int) else what
        super().__init__(f"{name} is not modelled: {why}")
        self.behavior = what


class madvise_behavior_range:
    """``struct madvise_behavior_range``."""

    __slots__ = ("start", "end")

    def __init__(self, start: int = 0, end: int = 0):
        self.start = start
        self.end = end


class madvise_behavior:
    """``struct madvise_behavior``: one madvise call in progress."""

    def __init__(self, mm, behavior: int, tlb: Optional[mmu_gather]):
        self.mm = mm
        self.behavior = behavior
        self.tlb = tlb
        self.lock_mode = MADVISE_NO_LOCK
        self.anon_name = None
        self.range = madvise_behavior_range()
        self.prev = None
        self.vma = None
        self.lock_dropped = False


# --- per-VMA helpers -----------------------------------------------------------------------------
def mark_mmap_lock_dropped(madv_behavior: madvise_behavior) -> None:
    """mm/madvise.c mark_mmap_lock_dropped()."""
    if madv_behavior.lock_mode == MADVISE_VMA_READ_LOCK:
        raise KernelBug("VM_WARN_ON_ONCE(lock_mode == MADVISE_VMA_READ_LOCK)")
    madv_behavior.lock_dropped = True


def madvise_update_vma(new_flags: int, madv_behavior: madvise_behavior) -> int:
    """Apply *new_flags* to the range, splitting or merging the VMA as needed.
    Models mm/madvise.c madvise_update_vma() (no anon_vma names). Caller holds mmap_lock
    for write."""
    vma = madv_behavior.vma
    rng = madv_behavior.range
    vmi = VmaIterator(madv_behavior.mm.mm_mt, rng.start)
    if new_flags == vma.vm_flags:
        return 0
    vma = vma_modify_flags(vmi, madv_behavior.prev, vma, rng.start, rng.end, new_flags)
    if IS_ERR(vma):
        return vma
    madv_behavior.vma = vma
    # vm_flags is protected by the mmap_lock held in write mode.
    vma_start_write(vma)
    vm_flags_reset(vma, new_flags)
    # (khugepaged_enter_vma for VM_HUGEPAGE: no khugepaged)
    return 0


def swapin_walk_pmd_entry(pmd: EntryPtr, start: int, end: int, walk) -> int:
    """mm/madvise.c swapin_walk_pmd_entry(): read every swap entry of the range into the
    swap cache (read_swap_cache_async: impl/swapfile.py swapin_readahead), dropping the PTE
    lock around each read; the PTEs do not change."""
    from .page import folio_put
    vma = walk.private
    mm = vma.vm_mm
    ptep = None
    ptl = None
    addr = start
    while addr < end:
        if ptep is None:
            ptep, ptl = pte_offset_map_lock(mm, pmd, addr)
            if ptep is None:
                break
            first = ptep
        else:
            ptep = ptep + 1
        pte = ptep_get(ptep)
        if not pte_none(pte) and not pte_present(pte) and not non_swap_entry(pte):
            pte_unmap_unlock(first, ptl)
            ptep = None
            folio = swapin_readahead(mm.machine, swp_offset(pte))
            if folio is not None:
                folio_put(folio)
        addr += PAGE_SIZE
    if ptep is not None:
        pte_unmap_unlock(first, ptl)
    return 0


def madvise_willneed(madv_behavior: madvise_behavior) -> int:
    """Schedule I/O for the range. Models mm/madvise.c madvise_willneed() (CONFIG_SWAP):
    anonymous memory has its swap entries read into the swap cache (swapin_walk_ops; the
    mappings do not change), shmem would have its swapped-out pages read in
    (shmem_swapin_range: shmem is never swapped out in the model, so nothing to do). A
    regular file's readahead (vfs_fadvise) is not modelled."""
    from .filemap import shmem_mapping
    vma = madv_behavior.vma
    file = vma.vm_file
    if file is None:
        walk_page_range_vma(vma, madv_behavior.range.start, madv_behavior.range.end,
                            mm_walk_ops(pmd_entry=swapin_walk_pmd_entry), vma)
        # lru_add_drain(): the model's LRU has no per-CPU batches.
        return 0
    if shmem_mapping(file.f_mapping):
        return 0                             # shmem_swapin_range: nothing swapped out
    raise NotSupported(madv_behavior.behavior, "readahead of a regular file")


def can_madv_lru_vma(vma) -> bool:
    """mm/madvise.c can_madv_lru_vma()."""
    return not (vma.vm_flags & (VM_LOCKED | VM_PFNMAP | VM_HUGETLB))


def ptep_test_and_clear_young(vma, addr: int, ptep: EntryPtr) -> bool:
    """arch/x86 ptep_test_and_clear_young(): an atomic clear of the accessed bit (one step:
    a concurrent hardware A/D update cannot be lost)."""
    sched.point("ptep_test_and_clear_young", reads=(ptep.obj,), writes=(ptep.obj,))
    pte = ptep.table.table.get(ptep.idx)
    if pte is None or not pte_present(pte) or not pte.young:
        return False
    ptep.table.table[ptep.idx] = pte_mkold(pte)
    return True


def clear_young_dirty_ptes(vma, addr: int, ptep: EntryPtr, nr: int, flags: int) -> None:
    """include/linux/pgtable.h clear_young_dirty_ptes(), the generic form x86 uses: for
    CYDP_CLEAR_YOUNG alone an atomic test-and-clear; otherwise get-and-clear the PTE, then
    set it back old and/or clean (two steps: between them the PTE is none)."""
    mm = vma.vm_mm
    for _ in range(nr):
        if flags == CYDP_CLEAR_YOUNG:
            ptep_test_and_clear_young(vma, addr, ptep)
        else:
            pte = ptep_get_and_clear(mm, addr, ptep)
            if flags & CYDP_CLEAR_YOUNG:
                pte = pte_mkold(pte)
            if flags & CYDP_CLEAR_DIRTY:
                pte = pte_mkclean(pte)
            set_pte_at(mm, addr, ptep, pte)
        addr += PAGE_SIZE
        ptep = ptep + 1


def folio_mapcount(folio) -> int:
    """include/linux/mm.h folio_mapcount() (order 0: the page's mapcount), an atomic read."""
    sched.point("folio_mapcount", reads=(folio.obj,))
    return page_mapcount(folio)


def folio_test_dirty(folio) -> bool:
    """include/linux/page-flags.h folio_test_dirty(): a read of PG_dirty."""
    sched.point("folio_test_dirty", reads=(folio.obj,))
    return bool(folio.flags & PG_dirty)


def folio_test_lru(folio) -> bool:
    """include/linux/page-flags.h folio_test_lru(): a read of PG_lru."""
    from .page import PG_lru
    sched.point("folio_test_lru", reads=(folio.obj,))
    return bool(folio.flags & PG_lru)


def folio_mark_lazyfree(folio) -> None:
    """mm/swap.c folio_mark_lazyfree(): a clean anonymous folio becomes lazily freeable
    (moved to the inactive file LRU, PG_swapbacked cleared). Simplified: the per-CPU
    lru_lazyfree batch is drained at once (the real kernel shows LazyFree in smaps only once
    the batch drains). Reclaim discards such a folio while it stays clean (try_to_unmap_one's
    lazyfree branch, shrink_folio_list)."""
    if (folio_test_anon(folio) and folio_test_swapbacked(folio)
            and not folio_test_swapcache(folio) and not folio.flags & PG_unevictable):
        folio_clear_flag(folio, PG_swapbacked | PG_active | PG_referenced)


def madvise_free_pte_range(pmd: EntryPtr, addr: int, end: int, walk) -> int:
    """The pmd_entry of MADV_FREE: under the PTL, drop swap entries, and for each present
    anonymous page mapped only here clear its dirty state (folio and PTE, with a TLB flush
    queued on the gather) and mark it lazyfree. rss is unchanged (only swap entries go).
    Models mm/madvise.c madvise_free_pte_range(); no large folios, no THP, so the split
    branches are left out; the folio lock is a trylock on PG_locked as in the kernel."""
    from .page import folio_trylock, folio_unlock
    cydp_flags = CYDP_CLEAR_YOUNG | CYDP_CLEAR_DIRTY
    tlb: mmu_gather = walk.private
    mm = tlb.mm
    vma = walk.vma
    nr_swap = 0
    # (pmd_trans_huge(*pmd) -> madvise_free_huge_pmd: no THP)
    start_pte, ptl = pte_offset_map_lock(mm, pmd, addr)
    if start_pte is None:
        return 0
    pte = start_pte
    flush_tlb_batched_pending(mm)
    while addr != end:
        nr = 1
        ptent = ptep_get(pte)
        if pte_none(ptent):
            pass
        elif not pte_present(ptent):
            # If the pte has a swap entry, just clear the page table to avoid swap-in.
            if not non_swap_entry(ptent):
                nr_swap -= nr
                free_swap_and_cache(mm.machine, swp_offset(ptent))   # _nr(entry, nr)
                pte_clear_not_present_full(mm, addr, pte, False)
            # (hwpoison entries: not modelled; migration entries are left alone)
        else:
            folio = vm_normal_page(vma, addr, ptent)
            if folio is not None:
                # (folio_test_large: order 0 only)
                skip = False
                if folio_test_swapcache(folio) or folio_test_dirty(folio):
                    if not folio_trylock(folio):
                        skip = True
                    elif folio_mapcount(folio) != 1:  # != folio_nr_pages(folio)
                        folio_unlock(folio)
                        skip = True
                    elif (folio_test_swapcache(folio)
                          and not folio_free_swap(mm.machine, folio)):
                        folio_unlock(folio)
                        skip = True
                    else:
                        folio_clear_dirty(folio)
                        folio_unlock(folio)
                if not skip:
                    if pte_young(ptent) or pte_dirty(ptent):
                        clear_young_dirty_ptes(vma, addr, pte, nr, cydp_flags)
                        tlb_remove_tlb_entries(tlb, pte, nr, addr)
                    folio_mark_lazyfree(folio)
        pte = pte + nr
        addr += PAGE_SIZE * nr
    if nr_swap:
        add_mm_counter(mm, MM_SWAPENTS, nr_swap)
    pte_unmap_unlock(start_pte, ptl)
    return 0


def get_walk_lock(mode: int) -> int:
    """mm/madvise.c get_walk_lock()."""
    if mode == MADVISE_VMA_READ_LOCK:
        return PGWALK_VMA_RDLOCK_VERIFY
    if mode == MADVISE_MMAP_READ_LOCK:
        return PGWALK_RDLOCK
    WARN(None, "WARN_ON_ONCE(1) in get_walk_lock")
    return PGWALK_RDLOCK


def madvise_free_single_vma(madv_behavior: madvise_behavior) -> int:
    """MADV_FREE on one VMA: anonymous only; the PTE walk runs into the call's gather.
    Models mm/madvise.c madvise_free_single_vma() (no mmu notifiers, lru_add_drain is a
    no-op)."""
    mm = madv_behavior.mm
    vma = madv_behavior.vma
    start, end = madv_behavior.range.start, madv_behavior.range.end
    tlb = madv_behavior.tlb
    # MADV_FREE works for only anon vma at the moment.
    if not vma_is_anonymous(vma):
        return -EINVAL
    update_hiwater_rss(mm)
    sched.operated_on(start, end)
    tlb_start_vma(tlb, vma)
    walk_ops = mm_walk_ops(pmd_entry=madvise_free_pte_range,
                           walk_lock=get_walk_lock(madv_behavior.lock_mode))
    walk_page_range_vma(vma, start, end, walk_ops, tlb)
    tlb_end_vma(tlb, vma)
    return 0


def madvise_dontneed_single_vma(madv_behavior: madvise_behavior) -> int:
    """MADV_DONTNEED on one VMA: zap its part of the range into the call's gather, empty
    page tables reclaimable (reclaim_pt), private COW pages included (even_cows).
    Models mm/madvise.c madvise_dontneed_single_vma() in its 6.16+ batched form."""
    rng = madv_behavior.range
    details = zap_details(reclaim_pt=True, even_cows=True)
    sched.operated_on(rng.start, rng.end)
    zap_page_range_single_batched(madv_behavior.tlb, madv_behavior.vma, rng.start,
                                  rng.end - rng.start, details)
    return 0


def madvise_dontneed_free_valid_vma(madv_behavior: madvise_behavior) -> bool:
    """mm/madvise.c madvise_dontneed_free_valid_vma(): no VM_PFNMAP, and no VM_LOCKED unless
    MADV_DONTNEED_LOCKED. (hugetlb VMAs: not modelled; they are rejected here.)"""
    vma = madv_behavior.vma
    behavior = madv_behavior.behavior
    if not vma.vm_flags & VM_HUGETLB:
        forbidden = VM_PFNMAP
        if behavior != MADV_DONTNEED_LOCKED:
            forbidden |= VM_LOCKED
        return not vma.vm_flags & forbidden
    # (hugetlb: alignment checks and rounding the end down to the huge page size)
    return False


def madvise_dontneed_free(madv_behavior: madvise_behavior) -> int:
    """MADV_DONTNEED / MADV_DONTNEED_LOCKED / MADV_FREE on one VMA.
    Models mm/madvise.c madvise_dontneed_free(); userfaultfd_remove() is true (no
    userfaultfd), so the lock is never dropped and the VMA never looked up again."""
    rng = madv_behavior.range
    behavior = madv_behavior.behavior
    if not madvise_dontneed_free_valid_vma(madv_behavior):
        return -EINVAL
    if rng.start == rng.end:
        return 0
    # if (!userfaultfd_remove(vma, start, end)) { ...lock dropped, vma_lookup again... }
    if behavior == MADV_DONTNEED or behavior == MADV_DONTNEED_LOCKED:
        return madvise_dontneed_single_vma(madv_behavior)
    elif behavior == MADV_FREE:
        return madvise_free_single_vma(madv_behavior)
    return -EINVAL


def madvise_cold_or_pageout_pte_range(pmd: EntryPtr, addr: int, end: int, walk) -> int:
    """The pmd_entry of MADV_COLD (pageout=False) and MADV_PAGEOUT (pageout=True). For each
    page on the LRU mapped only here: COLD clears the PTE's accessed bit (queuing its TLB
    invalidation on the gather) and deactivates the page; PAGEOUT leaves the PTE alone and
    isolates the page from the LRU, then, once the PTE lock is dropped, reclaims what it
    isolated (reclaim_pages: impl/vmscan.py). Models mm/madvise.c
    madvise_cold_or_pageout_pte_range() of 6.18; no THP, no large folios, need_resched() is
    never true; fatal_signal_pending() is never true."""
    from .migrate import folio_isolate_lru, folio_putback_lru
    from .vmscan import reclaim_pages
    private = walk.private
    tlb: mmu_gather = private["tlb"]
    pageout = private["pageout"]
    folio_list: list = []
    mm = tlb.mm
    vma = walk.vma
    # pageout_anon_only_filter: can_do_file_pageout() is true in the model (the caller owns
    # its files), so file pages are paged out too.
    start_pte, ptl = pte_offset_map_lock(mm, pmd, addr)
    if start_pte is None:
        return 0
    flush_tlb_batched_pending(mm)
    pte = start_pte
    while addr < end:
        nr = 1
        ptent = ptep_get(pte)
        if not pte_none(ptent) and pte_present(ptent):
            folio = vm_normal_page(vma, addr, ptent)
            # Do not interfere with other mappings of this folio and non-LRU folio.
            if (folio is not None and folio_test_lru(folio)
                    and folio_mapcount(folio) == 1):    # != folio_nr_pages(folio)
                if not pageout and pte_young(ptent):
                    clear_young_dirty_ptes(vma, addr, pte, nr, CYDP_CLEAR_YOUNG)
                    tlb_remove_tlb_entries(tlb, pte, nr, addr)
                # We are deactivating a folio for accelerating reclaiming: the LRU placement
                # is kept only as flags (folio_test_clear_young, folio_set_workingset: not
                # modelled).
                if pageout:
                    folio_clear_flag(folio, PG_referenced)
                    if folio_isolate_lru(folio):
                        if folio.flags & PG_unevictable:
                            folio_putback_lru(folio)
                        else:
                            folio_list.append(folio)
                else:
                    folio_clear_flag(folio, PG_referenced | PG_active)   # folio_deactivate
        pte = pte + nr
        addr += nr * PAGE_SIZE
    pte_unmap_unlock(start_pte, ptl)
    if pageout:
        reclaim_pages(mm.machine, folio_list)
    return 0


def madvise_cold(madv_behavior: madvise_behavior) -> int:
    """MADV_COLD: deactivate the pages of the range, with its own gather.
    Models mm/madvise.c madvise_cold() -> madvise_cold_page_range()."""
    vma = madv_behavior.vma
    if not can_madv_lru_vma(vma):
        return -EINVAL
    tlb = mmu_gather()
    tlb_gather_mmu(tlb, madv_behavior.mm)
    tlb_start_vma(tlb, vma)
    walk_page_range_vma(vma, madv_behavior.range.start, madv_behavior.range.end,
                        mm_walk_ops(pmd_entry=madvise_cold_or_pageout_pte_range),
                        {"tlb": tlb, "pageout": False})
    tlb_end_vma(tlb, vma)
    tlb_finish_mmu(tlb)
    return 0


def madvise_pageout(madv_behavior: madvise_behavior) -> int:
    """MADV_PAGEOUT: reclaim the pages of the range now (impl/vmscan.py): anonymous pages go
    to swap (or stay, active, when there is none), clean page-cache pages are dropped,
    dirty ones of a disk file stay (activated), lazily freeable ones are discarded. Models
    mm/madvise.c madvise_pageout() -> madvise_pageout_page_range() of 6.18
    (can_do_file_pageout() is true: the caller owns its files; lru_add_drain(): the model's
    LRU has no per-CPU batches)."""
    vma = madv_behavior.vma
    if not can_madv_lru_vma(vma):
        return -EINVAL
    # (!vma_is_anonymous && !can_do_file_pageout && VM_MAYSHARE: never, see above)
    tlb = mmu_gather()
    tlb_gather_mmu(tlb, madv_behavior.mm)
    tlb_start_vma(tlb, vma)
    walk_page_range_vma(vma, madv_behavior.range.start, madv_behavior.range.end,
                        mm_walk_ops(pmd_entry=madvise_cold_or_pageout_pte_range),
                        {"tlb": tlb, "pageout": True})
    tlb_end_vma(tlb, vma)
    tlb_finish_mmu(tlb)
    return 0


def madvise_remove(madv_behavior: madvise_behavior) -> int:
    """MADV_REMOVE: punch a hole in the file behind a shared writable mapping: drop
    mmap_lock, vfs_fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE) over the range's
    file offsets (which unmaps those pages from every mapping of the file and frees them),
    take mmap_lock again. Models mm/madvise.c madvise_remove() (userfaultfd_remove() is
    true: no userfaultfd, so the lock is always dropped; the file reference, get_file/fput,
    is implicit). Only shmem's ->fallocate is modelled."""
    from .filemap import FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, vfs_fallocate
    mm = madv_behavior.mm
    vma = madv_behavior.vma
    start = madv_behavior.range.start
    end = madv_behavior.range.end
    mark_mmap_lock_dropped(madv_behavior)
    if vma.vm_flags & VM_LOCKED:
        return -EINVAL
    f = vma.vm_file
    if f is None:                                # !f->f_mapping || !f->f_mapping->host
        return -EINVAL
    if not (vma.vm_flags & VM_SHARED and vma.vm_flags & VM_MAYWRITE):  # vma_is_shared_maywrite
        return -EACCES
    offset = ((start - vma.vm_start) + (vma.vm_pgoff << PAGE_SHIFT)) & MASK64   # (loff_t)
    if not f.shmem:
        # (model only: a regular file's ->fallocate is not modelled)
        raise NotSupported(madv_behavior.behavior, "fallocate(FALLOC_FL_PUNCH_HOLE) on a "
                           "regular file")
    # ->fallocate takes i_rwsem, which ranks above mmap_lock: drop mmap_lock first (the VMA
    # may go away meanwhile; the file stays, get_file()).
    mmap_read_unlock(mm)                         # userfaultfd_remove() returned true
    sched.operated_on(start, end)
    error = vfs_fallocate(f, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, end - start)
    mmap_read_lock(mm)
    return error


def madvise_collapse(madv_behavior: madvise_behavior) -> int:
    """MADV_COLLAPSE: -EINVAL when the VMA cannot hold a PMD-aligned huge page (what
    thp_vma_allowable_order() answers for a small VMA, VM_NOHUGEPAGE or a special VMA);
    otherwise not modelled (THP: on this machine the answer then depends on the THP policy,
    VM_HUGEPAGE and whether the VMA has an anon_vma). Models the first check of
    mm/khugepaged.c madvise_collapse()."""
    vma = madv_behavior.vma
    vm_hstart = (vma.vm_start + PMD_SIZE - 1) & ~(PMD_SIZE - 1)
    if vm_hstart + PMD_SIZE > vma.vm_end or vma.vm_flags & (VM_NOHUGEPAGE | VM_SPECIAL):
        return -EINVAL
    raise NotSupported(madv_behavior.behavior, "THP collapse")


def is_valid_guard_vma(vma, allow_locked: bool) -> bool:
    """mm/madvise.c is_valid_guard_vma()."""
    disallowed = VM_SPECIAL | VM_HUGETLB
    if not allow_locked:
        disallowed |= VM_LOCKED
    return not vma.vm_flags & disallowed


def vma_ksm_compatible(vma) -> bool:
    """mm/ksm.c vma_ksm_compatible() (no DAX, no SAO/ADI, no VM_DROPPABLE)."""
    if vma.vm_flags & (VM_SHARED | VM_MAYSHARE | VM_PFNMAP | VM_IO | VM_DONTEXPAND |
                       VM_HUGETLB | VM_MIXEDMAP):
        return False
    return True


def ksm_madvise(vma, start: int, end: int, advice: int, vm_flags: int) -> tuple[int, int]:
    """mm/ksm.c ksm_madvise(): only the VM_MERGEABLE flag (the KSM daemon is not modelled,
    so no page is ever merged and unmerging has nothing to do). Returns (err, vm_flags)."""
    if advice == MADV_MERGEABLE:
        if vm_flags & VM_MERGEABLE:
            return 0, vm_flags
        if not vma_ksm_compatible(vma):
            return 0, vm_flags
        # (__ksm_enter(mm): registers the mm with ksmd)
        return 0, vm_flags | VM_MERGEABLE
    # MADV_UNMERGEABLE
    if not vm_flags & VM_MERGEABLE:
        return 0, vm_flags
    # (unmerge_ksm_pages: no KSM pages exist in the model)
    return 0, vm_flags & ~VM_MERGEABLE


def hugepage_madvise(vma, vm_flags: int, advice: int) -> tuple[int, int]:
    """mm/khugepaged.c hugepage_madvise(): only the flags (no THP in the model)."""
    if advice == MADV_HUGEPAGE:
        vm_flags &= ~VM_NOHUGEPAGE
        vm_flags |= VM_HUGEPAGE
    else:
        vm_flags &= ~VM_HUGEPAGE
        vm_flags |= VM_NOHUGEPAGE
    return 0, vm_flags


def can_madvise_modify(madv_behavior: madvise_behavior) -> bool:
    """mm/madvise.c can_madvise_modify(): mseal is not modelled, so always true."""
    return True


def madvise_vma_behavior(madv_behavior: madvise_behavior) -> int:
    """Apply the advice to the part of the range inside one VMA.
    Models mm/madvise.c madvise_vma_behavior(), in its branch order."""
    behavior = madv_behavior.behavior
    vma = madv_behavior.vma
    new_flags = vma.vm_flags
    rng = madv_behavior.range
    error = 0

    if not can_madvise_modify(madv_behavior):
        return -EPERM

    if behavior == MADV_REMOVE:
        return madvise_remove(madv_behavior)
    if behavior == MADV_WILLNEED:
        return madvise_willneed(madv_behavior)
    if behavior == MADV_COLD:
        return madvise_cold(madv_behavior)
    if behavior == MADV_PAGEOUT:
        return madvise_pageout(madv_behavior)
    if behavior in (MADV_FREE, MADV_DONTNEED, MADV_DONTNEED_LOCKED):
        return madvise_dontneed_free(madv_behavior)
    if behavior == MADV_COLLAPSE:
        return madvise_collapse(madv_behavior)
    if behavior == MADV_GUARD_INSTALL:
        if not is_valid_guard_vma(vma, False):
            return -EINVAL
        raise NotSupported(behavior, "guard-page PTE markers")
    if behavior == MADV_GUARD_REMOVE:
        if not is_valid_guard_vma(vma, True):
            return -EINVAL
        raise NotSupported(behavior, "guard-page PTE markers")

    # The below behaviours update VMAs via madvise_update_vma().
    if behavior == MADV_NORMAL:
        new_flags = new_flags & ~VM_RAND_READ & ~VM_SEQ_READ
    elif behavior == MADV_SEQUENTIAL:
        new_flags = (new_flags & ~VM_RAND_READ) | VM_SEQ_READ
    elif behavior == MADV_RANDOM:
        new_flags = (new_flags & ~VM_SEQ_READ) | VM_RAND_READ
    elif behavior == MADV_DONTFORK:
        new_flags |= VM_DONTCOPY
    elif behavior == MADV_DOFORK:
        if new_flags & VM_SPECIAL:
            return -EINVAL
        new_flags &= ~VM_DONTCOPY
    elif behavior == MADV_WIPEONFORK:
        # MADV_WIPEONFORK is only supported on anonymous memory.
        if vma.vm_file is not None or new_flags & VM_SHARED:
            return -EINVAL
        new_flags |= VM_WIPEONFORK
    elif behavior == MADV_KEEPONFORK:
        # (VM_DROPPABLE: not modelled)
        new_flags &= ~VM_WIPEONFORK
    elif behavior == MADV_DONTDUMP:
        new_flags |= VM_DONTDUMP
    elif behavior == MADV_DODUMP:
        if new_flags & VM_SPECIAL:           # (no hugetlb, no VM_DROPPABLE)
            return -EINVAL
        new_flags &= ~VM_DONTDUMP
    elif behavior in (MADV_MERGEABLE, MADV_UNMERGEABLE):
        error, new_flags = ksm_madvise(vma, rng.start, rng.end, behavior, new_flags)
    elif behavior in (MADV_HUGEPAGE, MADV_NOHUGEPAGE):
        error, new_flags = hugepage_madvise(vma, new_flags, behavior)

    if not error:
        # This is a write operation.
        if madv_behavior.lock_mode != MADVISE_MMAP_WRITE_LOCK:
            raise KernelBug("VM_WARN_ON_ONCE(lock_mode != MADVISE_MMAP_WRITE_LOCK)")
        error = madvise_update_vma(new_flags, madv_behavior)
    # madvise() returns EAGAIN if kernel resources, such as slab, are temporarily unavailable.
    if error == -ENOMEM:
        error = -EAGAIN
    return error


def madvise_behavior_valid(behavior: int) -> bool:
    """mm/madvise.c madvise_behavior_valid(), with this machine's configuration (KSM and
    THP on, CONFIG_MEMORY_FAILURE off)."""
    if behavior in (MADV_DOFORK, MADV_DONTFORK, MADV_NORMAL, MADV_SEQUENTIAL, MADV_RANDOM,
                    MADV_REMOVE, MADV_WILLNEED, MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE,
                    MADV_COLD, MADV_PAGEOUT, MADV_POPULATE_READ, MADV_POPULATE_WRITE,
                    MADV_DONTDUMP, MADV_DODUMP, MADV_WIPEONFORK, MADV_KEEPONFORK,
                    MADV_GUARD_INSTALL, MADV_GUARD_REMOVE):
        return True
    if CONFIG_KSM and behavior in (MADV_MERGEABLE, MADV_UNMERGEABLE):
        return True
    if CONFIG_TRANSPARENT_HUGEPAGE and behavior in (MADV_HUGEPAGE, MADV_NOHUGEPAGE,
                                                    MADV_COLLAPSE):
        return True
    if CONFIG_MEMORY_FAILURE and behavior in (MADV_SOFT_OFFLINE, MADV_HWPOISON):
        return True
    return False


def try_vma_read_lock(madv_behavior: madvise_behavior) -> bool:
    """mm/madvise.c try_vma_read_lock(): read-lock the VMA at the start of the range
    (lock_vma_under_rcu); the range must lie within that one VMA (a remote mm and a
    userfaultfd-armed VMA also fall back, never in the model). Otherwise fall back to
    mmap_read_lock and the ordinary walk."""
    mm = madv_behavior.mm
    vma = lock_vma_under_rcu(mm, madv_behavior.range.start) if per_vma_locks(mm) else None
    if vma is not None:
        # Must span only a single VMA; uffd and remote processes are unsupported.
        if madv_behavior.range.end > vma.vm_end:
            vma_end_read(vma)
        else:
            madv_behavior.vma = vma
            return True
    mmap_read_lock(mm)                          # take_mmap_read_lock:
    madv_behavior.lock_mode = MADVISE_MMAP_READ_LOCK
    return False


def madvise_walk_vmas(madv_behavior: madvise_behavior) -> int:
    """Apply the advice to every VMA in the range. A hole in the range is remembered and
    turns into -ENOMEM at the end, but does not stop the walk; an error from a VMA does.
    Models mm/madvise.c madvise_walk_vmas()."""
    mm = madv_behavior.mm
    rng = madv_behavior.range
    # range is updated to span each VMA, so store end of entire range.
    last_end = rng.end
    unmapped_error = 0

    if madv_behavior.lock_mode == MADVISE_VMA_READ_LOCK and try_vma_read_lock(madv_behavior):
        error = madvise_vma_behavior(madv_behavior)
        vma_end_read(madv_behavior.vma)
        return error

    vma, prev = find_vma_prev(mm, rng.start)
    if vma is not None and rng.start > vma.vm_start:
        prev = vma

    while True:
        # Still start < end.
        if vma is None:
            return -ENOMEM
        # Here start < (last_end|vma->vm_end).
        if rng.start < vma.vm_start:
            # A gap between VMAs in the input range: remember it, carry on.
            unmapped_error = -ENOMEM
            rng.start = vma.vm_start
            if rng.start >= last_end:
                break
        # Here vma->vm_start <= range->start < (last_end|vma->vm_end)
        rng.end = min(vma.vm_end, last_end)
        madv_behavior.prev = prev
        madv_behavior.vma = vma
        error = madvise_vma_behavior(madv_behavior)
        if error:
            return error
        if madv_behavior.lock_dropped:
            # We dropped the mmap lock, we can't ref the VMA.
            prev = None
            vma = None
            madv_behavior.lock_dropped = False
        else:
            vma = madv_behavior.vma
            prev = vma
        if vma is not None and rng.end < vma.vm_end:
            rng.end = vma.vm_end
        if rng.end >= last_end:
            break
        vma = find_vma(mm, vma.vm_end if vma is not None else rng.end)
        rng.start = rng.end
    return unmapped_error


def get_lock_mode(madv_behavior: madvise_behavior) -> int:
    """mm/madvise.c get_lock_mode(): the lock each advice needs."""
    behavior = madv_behavior.behavior
    if is_memory_failure(madv_behavior):
        return MADVISE_NO_LOCK
    if behavior in (MADV_REMOVE, MADV_WILLNEED, MADV_COLD, MADV_PAGEOUT, MADV_POPULATE_READ,
                    MADV_POPULATE_WRITE, MADV_COLLAPSE):
        return MADVISE_MMAP_READ_LOCK
    if behavior in (MADV_GUARD_INSTALL, MADV_GUARD_REMOVE, MADV_DONTNEED,
                    MADV_DONTNEED_LOCKED, MADV_FREE):
        return MADVISE_VMA_READ_LOCK
    return MADVISE_MMAP_WRITE_LOCK


def is_memory_failure(madv_behavior: madvise_behavior) -> bool:
    """mm/madvise.c is_memory_failure() (CONFIG_MEMORY_FAILURE off: always false)."""
    if not CONFIG_MEMORY_FAILURE:
        return False
    return madv_behavior.behavior in (MADV_HWPOISON, MADV_SOFT_OFFLINE)


def madvise_lock(madv_behavior: madvise_behavior) -> int:
    """mm/madvise.c madvise_lock()."""
    mm = madv_behavior.mm
    lock_mode = get_lock_mode(madv_behavior)
    if lock_mode == MADVISE_MMAP_WRITE_LOCK:
        if mmap_write_lock_killable(mm):
            return -EINTR
    elif lock_mode == MADVISE_MMAP_READ_LOCK:
        mmap_read_lock(mm)
    # MADVISE_VMA_READ_LOCK: the lock is taken per VMA in madvise_walk_vmas().
    madv_behavior.lock_mode = lock_mode
    return 0


def madvise_unlock(madv_behavior: madvise_behavior) -> None:
    """mm/madvise.c madvise_unlock()."""
    mm = madv_behavior.mm
    mode = madv_behavior.lock_mode
    if mode == MADVISE_NO_LOCK:
        return
    if mode == MADVISE_MMAP_WRITE_LOCK:
        mmap_write_unlock(mm)
    elif mode == MADVISE_MMAP_READ_LOCK:
        mmap_read_unlock(mm)
    # MADVISE_VMA_READ_LOCK: dropped per VMA in madvise_walk_vmas().
    madv_behavior.lock_mode = MADVISE_NO_LOCK


def madvise_batch_tlb_flush(behavior: int) -> bool:
    """mm/madvise.c madvise_batch_tlb_flush()."""
    return behavior in (MADV_DONTNEED, MADV_DONTNEED_LOCKED, MADV_FREE)


def madvise_init_tlb(madv_behavior: madvise_behavior) -> None:
    """mm/madvise.c madvise_init_tlb(): one gather for the whole call (6.16+)."""
    if madvise_batch_tlb_flush(madv_behavior.behavior):
        tlb_gather_mmu(madv_behavior.tlb, madv_behavior.mm)


def madvise_finish_tlb(madv_behavior: madvise_behavior) -> None:
    """mm/madvise.c madvise_finish_tlb()."""
    if madvise_batch_tlb_flush(madv_behavior.behavior):
        tlb_finish_mmu(madv_behavior.tlb)


def PAGE_ALIGN(x: int) -> int:
    """include/linux/mm.h PAGE_ALIGN() on an unsigned long (wraps at 2**64)."""
    return ((x + PAGE_SIZE - 1) & PAGE_MASK) & MASK64


def check_input_range(start: int, len_in: int) -> int:
    """mm/madvise.c check_input_range(): start page aligned, the rounded length not wrapped
    to 0, the range not wrapping."""
    if start & ~PAGE_MASK & MASK64:
        return -EINVAL
    length = PAGE_ALIGN(len_in)
    # Check to see whether len was rounded up from small -ve to zero.
    if len_in and not length:
        return -EINVAL
    if ((start + length) & MASK64) < start:
        return -EINVAL
    return 0


def is_madvise_populate(madv_behavior: madvise_behavior) -> bool:
    return madv_behavior.behavior in (MADV_POPULATE_READ, MADV_POPULATE_WRITE)


def madvise_populate(madv_behavior: madvise_behavior) -> int:
    """MADV_POPULATE_READ/WRITE: fault the range in (read or write faults, breaking COW for a
    write) with GUP, VMA by VMA; a hole is -ENOMEM, a VMA the access is not allowed in
    -EINVAL, a fault that would be SIGBUS/SIGSEGV -EFAULT. Models mm/madvise.c
    madvise_populate() (faults never drop mmap_lock in the model, so *locked* stays 1)."""
    from .gup import faultin_page_range
    mm = madv_behavior.mm
    write = madv_behavior.behavior == MADV_POPULATE_WRITE
    locked = [1]
    start = madv_behavior.range.start
    end = madv_behavior.range.end
    while start < end:
        pages = faultin_page_range(mm, start, end, write, locked)
        if not locked[0]:
            mmap_read_lock(mm)
            locked[0] = 1
        if pages < 0:
            if pages == -EINTR:
                return -EINTR
            if pages == -EINVAL:                  # a VMA the access is not allowed in
                return -EINVAL
            if pages == -EFAULT:                  # the fault was SIGBUS/SIGSEGV
                return -EFAULT
            # (-EHWPOISON: no hwpoison; pr_warn_once for anything else, then:)
            return -ENOMEM                        # a hole (or no memory)
        start += pages * PAGE_SIZE
    return 0


def madvise_do_behavior(start: int, len_in: int, madv_behavior: madvise_behavior) -> int:
    """mm/madvise.c madvise_do_behavior() (no memory-failure injection, no blk plug)."""
    rng = madv_behavior.range
    rng.start = start                           # get_untagged_addr(): no LAM tags
    rng.end = (rng.start + PAGE_ALIGN(len_in)) & MASK64
    if is_madvise_populate(madv_behavior):
        return madvise_populate(madv_behavior)
    return madvise_walk_vmas(madv_behavior)


def do_madvise(mm, start: int, len_in: int, behavior: int) -> int:
    """The madvise(2) system call on *mm*: 0 or a negative errno.
    Models mm/madvise.c do_madvise() (SYSCALL_DEFINE3(madvise) passes current->mm)."""
    start &= MASK64
    len_in &= MASK64
    tlb = mmu_gather()
    madv_behavior = madvise_behavior(mm, behavior, tlb)

    if not madvise_behavior_valid(behavior):
        return -EINVAL
    error = check_input_range(start, len_in)
    if error or not len_in:
        return error
    error = madvise_lock(madv_behavior)
    if error:
        return error
    madvise_init_tlb(madv_behavior)
    try:
        error = madvise_do_behavior(start, len_in, madv_behavior)
    except NotSupported:
        # (model only: keep the gather and the locks balanced when the advice's effect is
        # not modelled)
        madvise_finish_tlb(madv_behavior)
        madvise_unlock(madv_behavior)
        raise
    madvise_finish_tlb(madv_behavior)
    madvise_unlock(madv_behavior)
    return error


__all__ = ["do_madvise", "NotSupported", "madvise_dontneed_single_vma",
           "madvise_free_single_vma", "MADV_GUARD_INSTALL", "MADV_GUARD_REMOVE"]
