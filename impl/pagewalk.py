"""The generic page-table walker: mm/pagewalk.c in the form its users in the model need.

Models include/linux/pagewalk.h (struct mm_walk_ops, struct mm_walk, enum page_walk_action,
enum page_walk_lock) and mm/pagewalk.c (walk_page_range_vma, __walk_page_range,
walk_pgd_range, walk_p4d_range, walk_pud_range, walk_pmd_range) of Linux 6.18. Its users
here are MADV_FREE / MADV_COLD / MADV_PAGEOUT (mm/madvise.c) and mlock/munlock (mm/mlock.c
mlock_vma_pages_range).

Simplifications common to the module:
* no huge entries (no THP, no hugetlb): no pud_entry/hugetlb_entry callbacks, no split;
* only the callback the model's users set: ``pmd_entry`` (called for every present pmd; it
  may set ``walk.action``; each user walks the PTE table itself, under the PTL). No
  ``pte_entry`` (so no walk_pte_range / walk_pte_range_inner: 6.18's walk_pmd_range calls
  them only for a walk that has one), no ``pte_hole``, ``test_walk``,
  ``pre_vma``/``post_vma``, ``install_pte``;
* the walk-lock checks (process_mm_walk_lock / process_vma_walk_lock) as 6.18 has them: a
  PGWALK_VMA_RDLOCK_VERIFY walk (MADV_FREE under the VMA lock) needs only the VMA's lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from .constants import EINVAL
from .locks import mmap_assert_locked, mmap_assert_write_locked
from .pgtable import (EntryPtr, p4d_addr_end, p4d_offset, pgd_addr_end, pgd_offset, pgdp_get,
                      pmd_addr_end, pmd_offset, pmdp_get, pud_addr_end, pud_offset, pudp_get)

# include/linux/pagewalk.h enum page_walk_action
ACTION_SUBTREE = 0
ACTION_CONTINUE = 1
ACTION_AGAIN = 2

# include/linux/pagewalk.h enum page_walk_lock
PGWALK_RDLOCK = 0
PGWALK_WRLOCK = 1
PGWALK_WRLOCK_VERIFY = 2
PGWALK_VMA_RDLOCK_VERIFY = 3


@dataclass
class mm_walk_ops:
    """``struct mm_walk_ops``: the callbacks of a walk (only the one the model uses).

    ``pmd_entry(pmd, addr, next, walk) -> int`` gets the ``pmd_t *`` (an EntryPtr). A
    non-zero return stops the walk and is returned by it."""

    pmd_entry: Optional[Callable[..., int]] = None
    walk_lock: int = PGWALK_RDLOCK


@dataclass
class mm_walk:
    """``struct mm_walk``: the walk in progress (ops, mm, vma, the action the last callback
    asked for, and the caller's private data)."""

    ops: mm_walk_ops
    mm: Any
    vma: Any
    action: int = ACTION_SUBTREE
    private: Any = None


def process_mm_walk_lock(mm, walk_lock: int) -> None:
    """mm/pagewalk.c process_mm_walk_lock(): the caller holds mmap_lock (for write when
    PGWALK_WRLOCK*); a PGWALK_VMA_RDLOCK_VERIFY walk may hold only the VMA's read lock."""
    if walk_lock == PGWALK_RDLOCK:
        mmap_assert_locked(mm)
    elif walk_lock != PGWALK_VMA_RDLOCK_VERIFY:
        mmap_assert_write_locked(mm)


def process_vma_walk_lock(vma, walk_lock: int) -> None:
    """mm/pagewalk.c process_vma_walk_lock(): PGWALK_WRLOCK write-locks the VMA,
    PGWALK_WRLOCK_VERIFY asserts it is, PGWALK_VMA_RDLOCK_VERIFY asserts the VMA is locked
    (read-locked by this walk, or write-locked under mmap_lock)."""
    from .mmap_lock import per_vma_locks, vma_assert_locked, vma_assert_write_locked
    from .mm_types import vma_start_write
    if not per_vma_locks(vma.vm_mm):
        return
    if walk_lock == PGWALK_WRLOCK:
        vma_start_write(vma)
    elif walk_lock == PGWALK_WRLOCK_VERIFY:
        vma_assert_write_locked(vma)
    elif walk_lock == PGWALK_VMA_RDLOCK_VERIFY:
        vma_assert_locked(vma)


def walk_pmd_range(pud: EntryPtr, pudval, addr: int, end: int, walk: mm_walk) -> int:
    """mm/pagewalk.c walk_pmd_range(): for each present pmd, pmd_entry (which may ask for
    the same pmd again). The PTE level (walk_pte_range) is only for a walk with a pte_entry,
    and no walk of the model has one."""
    ops = walk.ops
    err = 0
    pmd = pmd_offset(pud, pudval, addr)
    while True:
        next_ = pmd_addr_end(addr, end)
        again = False
        if pmdp_get(pmd) is None:
            pass                            # (pte_hole: not modelled)
        else:
            walk.action = ACTION_SUBTREE
            if ops.pmd_entry is not None:
                err = ops.pmd_entry(pmd, addr, next_, walk)
            if err:
                break
            if walk.action == ACTION_AGAIN:
                again = True
            # (ACTION_CONTINUE, or no pte_entry: the PTE level is not walked)
        if again:
            continue                        # goto again (same pmd)
        addr = next_
        if addr == end:
            break
        pmd = pmd + 1
    return err


def walk_pud_range(p4d: EntryPtr, p4dval, addr: int, end: int, walk: mm_walk) -> int:
    """mm/pagewalk.c walk_pud_range() (no pud_entry, no huge puds)."""
    err = 0
    pud = pud_offset(p4d, p4dval, addr)
    while True:
        next_ = pud_addr_end(addr, end)
        pudval = pudp_get(pud)
        if pudval is not None:
            err = walk_pmd_range(pud, pudval, addr, next_, walk)
            if err:
                break
        addr = next_
        if addr == end:
            break
        pud = pud + 1
    return err


def walk_p4d_range(pgd: EntryPtr, addr: int, end: int, walk: mm_walk) -> int:
    """mm/pagewalk.c walk_p4d_range(): the folded level (4-level paging)."""
    err = 0
    p4d = p4d_offset(pgd, addr)
    while True:
        next_ = p4d_addr_end(addr, end)
        p4dval = pgdp_get(p4d)
        if p4dval is not None:
            err = walk_pud_range(p4d, p4dval, addr, next_, walk)
            if err:
                break
        addr = next_
        if addr == end:
            break
        p4d = p4d + 1
    return err


def walk_pgd_range(addr: int, end: int, walk: mm_walk) -> int:
    """mm/pagewalk.c walk_pgd_range()."""
    err = 0
    pgd = pgd_offset(walk.mm, addr)
    while True:
        next_ = pgd_addr_end(addr, end)
        if pgdp_get(pgd) is not None:
            err = walk_p4d_range(pgd, addr, next_, walk)
            if err:
                break
        addr = next_
        if addr == end:
            break
        pgd = pgd + 1
    return err


def __walk_page_range(start: int, end: int, walk: mm_walk) -> int:
    """mm/pagewalk.c __walk_page_range() (no pre_vma/post_vma, no hugetlb)."""
    return walk_pgd_range(start, end, walk)


def walk_page_range_vma(vma, start: int, end: int, ops: mm_walk_ops, private=None) -> int:
    """Walk the page tables of [start, end) inside *vma*, calling *ops*; returns 0 or the
    first non-zero callback result. Models mm/pagewalk.c walk_page_range_vma()."""
    walk = mm_walk(ops=ops, mm=vma.vm_mm, vma=vma, private=private)
    if start >= end or start < vma.vm_start or end > vma.vm_end:
        return -EINVAL
    process_mm_walk_lock(walk.mm, ops.walk_lock)
    process_vma_walk_lock(vma, ops.walk_lock)
    return __walk_page_range(start, end, walk)
