"""mlock(2) and friends: mm/mlock.c of Linux 6.18, the population side of mm/gup.c, and the
5.x-era munlock walk that exit_mmap() ran before 6.1.

Models, of 6.18: SYSCALL_DEFINEs mlock, mlock2, munlock, mlockall, munlockall; do_mlock,
can_do_mlock, count_mm_mlocked_page_nr, __mlock_posix_error_return, apply_vma_lock_flags,
apply_mlockall_flags, mlock_fixup, mlock_vma_pages_range, mlock_pte_range, mlock_folio,
munlock_folio (the population they ask for is mm/gup.c: impl/gup.py).

And, for ``machine.era == "5.x"`` (mm/mlock.c and mm/mmap.c of v4.17..v5.15):
munlock_vma_pages_range, munlock_vma_pages_all, munlock_vma_page and follow_page -- the walk
exit_mmap() runs without mmap_lock (through mm/mmap.c unlock_range(), in impl/mmap.py),
clearing VM_LOCKED first, that races with the OOM reaper in bug 27ae357fa82b. Each page of that walk is bracketed by the
model-only ``vma.walkers`` count (a scheduling point that writes the VMA), so the
walker-stability invariant can see a zap (zap.py counts ``vma.zappers``) entering a VMA
while the walker is inside it, and the walker entering one a zap is in.

Behaviour on this machine's real kernel (6.18.44, ctypes, tests/impl/test_mlock.py): mlock of
a PROT_READ private anonymous range maps the shared zero page (read faults) -- rss stays 0,
locked_vm counts the pages; PROT_NONE gives -ENOMEM after the VMA was locked (populate
fails with -EFAULT); a hole gives -ENOMEM after the VMAs before it were locked, and nothing
is populated; an unaligned start rounds down and extends len (mlock(addr+3, 0) locks one
page); mlock2 flags other than MLOCK_ONFAULT give -EINVAL; MLOCK_ONFAULT populates nothing.

Simplifications common to the module:
* no mlock_count and no mlock/LRU batches: mlock_folio sets PG_mlocked|PG_unevictable at
  once and munlock_folio clears them at once (so munlocking one of two VM_LOCKED mappings of
  a folio clears PG_mlocked; reclaim is not modelled, so the flag is informational);
* RLIMIT_MEMLOCK and CAP_IPC_LOCK come from Machine.tunables (rlimit_memlock, capable);
* no secretmem, DAX, gate VMA, VM_DROPPABLE.
"""

from __future__ import annotations


from . import sched
from .constants import (EAGAIN, EFAULT, EINTR, EINVAL, ENOMEM, EPERM, MCL_CURRENT, MCL_FUTURE,
                        MCL_ONFAULT, MLOCK_ONFAULT, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, TASK_SIZE,
                        ULONG_MAX, VM_HUGETLB, VM_IO, VM_LOCKED, VM_LOCKED_MASK,
                        VM_LOCKONFAULT, VM_SPECIAL)
from .locks import (mmap_write_lock_killable, mmap_write_unlock)
from .mm_types import VmaIterator, vm_flags_clear, vm_flags_reset, vma_start_write
from .page import (PG_mlocked, PG_unevictable, Page, folio_clear_flag, folio_put,
                   folio_set_flag)
from .pagewalk import ACTION_AGAIN, PGWALK_WRLOCK_VERIFY, mm_walk_ops, walk_page_range_vma
from .pgtable import (EntryPtr, pte_offset_map_lock, pte_unmap_unlock, ptep_get)
from .pte import pte_present
from .sched import KernelBug
from .word import MASK64
from .gup import FOLL_DUMP, FOLL_GET, __mm_populate, follow_page, mm_populate  # noqa: F401

RLIM_INFINITY = ULONG_MAX


def PAGE_ALIGN(x: int) -> int:
    return ((x + PAGE_SIZE - 1) & PAGE_MASK) & MASK64


def offset_in_page(x: int) -> int:
    return x & (PAGE_SIZE - 1)


def capable_ipc_lock(mm) -> bool:
    """capable(CAP_IPC_LOCK): Machine.tunables.capable (the oracle runs as root)."""
    return mm.machine.tunables.capable


def rlimit_memlock(mm) -> int:
    """rlimit(RLIMIT_MEMLOCK) in bytes: Machine.tunables.rlimit_memlock (8 MiB default)."""
    return mm.machine.tunables.rlimit_memlock


# =================================================================================================
# folio mlock state (mm/mlock.c)
# =================================================================================================
def mlock_folio(folio: Page) -> None:
    """mm/mlock.c mlock_folio(): PG_mlocked, and onto the unevictable LRU (no mlock_count,
    no per-CPU batch: done at once)."""
    folio_set_flag(folio, PG_mlocked | PG_unevictable)


def munlock_folio(folio: Page) -> None:
    """mm/mlock.c munlock_folio(): clear PG_mlocked and move back to an evictable LRU (no
    mlock_count: the first munlock clears it)."""
    folio_clear_flag(folio, PG_mlocked | PG_unevictable)


def mlock_pte_range(pmd: EntryPtr, addr: int, end: int, walk) -> int:
    """The pmd_entry of the mlock walk: under the PTL, mlock (VM_LOCKED) or munlock every
    normal page mapped in [addr, end). Models mm/mlock.c mlock_pte_range() (no THP: the
    pmd_trans_huge_lock branch is left out; order-0 folios: step 1)."""
    from .zap import vm_normal_page
    vma = walk.vma
    # ptl = pmd_trans_huge_lock(pmd, vma): no THP
    start_pte, ptl = pte_offset_map_lock(vma.vm_mm, pmd, addr)
    if start_pte is None:
        walk.action = ACTION_AGAIN
        return 0
    pte = start_pte
    while addr != end:
        ptent = ptep_get(pte)
        if pte_present(ptent):
            folio = vm_normal_page(vma, addr, ptent)
            if folio is not None:
                # step = folio_mlock_step(); allow_mlock_munlock(): always for small folios
                if vma.vm_flags & VM_LOCKED:
                    mlock_folio(folio)
                else:
                    munlock_folio(folio)
        pte = pte + 1
        addr += PAGE_SIZE
    pte_unmap_unlock(start_pte, ptl)
    return 0


def mlock_vma_pages_range(vma, start: int, end: int, newflags: int) -> None:
    """Set the VMA's new flags and mlock (or munlock) the pages already mapped in the range.
    Models mm/mlock.c mlock_vma_pages_range(): VM_IO is set while the walk runs so that
    concurrent rmap walkers do not double-count (the flags are written with mmap_lock held
    for write)."""
    if newflags & VM_LOCKED:
        newflags |= VM_IO
    vma_start_write(vma)
    vm_flags_reset(vma, newflags)                 # vm_flags_reset_once
    # lru_add_drain(): no LRU batches
    walk_page_range_vma(vma, start, end,
                        mm_walk_ops(pmd_entry=mlock_pte_range, walk_lock=PGWALK_WRLOCK_VERIFY))
    if newflags & VM_IO:
        newflags &= ~VM_IO
        vm_flags_reset(vma, newflags)


def mlock_fixup(vmi, vma, prev: list, start: int, end: int, newflags: int) -> int:
    """Apply the VM_LOCKED/VM_LOCKONFAULT change to [start, end) of *vma*: split/merge with
    vma_modify_flags() (impl/vma.py), account locked_vm, mark the pages. Special VMAs
    (VM_SPECIAL, hugetlb) are left alone and not counted. ``prev`` is a one-element list for
    ``struct vm_area_struct **prev``. Models mm/mlock.c mlock_fixup()."""
    from .vma import IS_ERR, vma_modify_flags
    mm = vma.vm_mm
    ret = 0
    oldflags = vma.vm_flags
    if newflags == oldflags or oldflags & VM_SPECIAL or oldflags & VM_HUGETLB:
        # don't set VM_LOCKED or VM_LOCKONFAULT and don't count
        prev[0] = vma                             # goto out
        return ret
    vma = vma_modify_flags(vmi, prev[0], vma, start, end, newflags)
    if IS_ERR(vma):
        return vma                                # (prev is not updated on the error path)
    # Keep track of amount of locked VM.
    nr_pages = (end - start) >> PAGE_SHIFT
    if not newflags & VM_LOCKED:
        nr_pages = -nr_pages
    elif oldflags & VM_LOCKED:
        nr_pages = 0
    mm.locked_vm += nr_pages
    # vm_flags is protected by the mmap_lock held in write mode.
    if newflags & oldflags & VM_LOCKED:
        # No work to do, and mlocking twice would be wrong
        vma_start_write(vma)
        vm_flags_reset(vma, newflags)
    else:
        mlock_vma_pages_range(vma, start, end, newflags)
    prev[0] = vma                                 # out:
    return ret


def apply_vma_lock_flags(mm, start: int, length: int, flags: int) -> int:
    """Set (*flags* = VM_LOCKED[|VM_LOCKONFAULT]) or clear (*flags* = 0) the lock flags of
    every VMA in [start, start + length); -ENOMEM if a hole is found (after the VMAs before
    it were done). Models mm/mlock.c apply_vma_lock_flags()."""
    vmi = VmaIterator(mm.mm_mt, start)
    if offset_in_page(start) or length != PAGE_ALIGN(length):
        raise KernelBug("VM_BUG_ON in apply_vma_lock_flags: unaligned range")
    end = (start + length) & MASK64
    if end < start:
        return -EINVAL
    if end == start:
        return 0
    vma = _vma_iter_load(vmi, start)
    if vma is None:
        return -ENOMEM
    prev = vmi.vma_prev()
    if start > vma.vm_start:
        prev = vma
    nstart = start
    tmp = vma.vm_start
    while True:                                   # for_each_vma_range(vmi, vma, end)
        vma = vmi.vma_find(end)
        if vma is None:
            break
        if vma.vm_start != tmp:
            return -ENOMEM
        newflags = vma.vm_flags & ~VM_LOCKED_MASK
        newflags |= flags
        # Here we know that vma->vm_start <= nstart < vma->vm_end.
        tmp = vma.vm_end
        if tmp > end:
            tmp = end
        pprev = [prev]
        error = mlock_fixup(vmi, vma, pprev, nstart, tmp, newflags)
        if error:
            return error
        prev = pprev[0]
        tmp = prev.vm_end                         # tmp = vma_iter_end(&vmi)
        vmi.vma_iter_set(tmp)
        nstart = tmp
    if tmp < end:
        return -ENOMEM
    return 0


def _vma_iter_load(vmi: VmaIterator, addr: int):
    """mm/vma.h vma_iter_load(): the VMA containing *addr* (mas_walk), or None in a gap."""
    sched.point("vma_iter_load", reads=(vmi.tree.obj,))
    t = vmi.tree
    i = t._first_ending_after(addr)
    if i < len(t.vmas) and t.vmas[i].vm_start <= addr:
        return t.vmas[i]
    return None


def count_mm_mlocked_page_nr(mm, start: int, length: int) -> int:
    """mm/mlock.c count_mm_mlocked_page_nr(): pages of [start, start+len) already in
    VM_LOCKED VMAs (only needed without CAP_IPC_LOCK)."""
    count = 0
    if ULONG_MAX - length < start:
        end = ULONG_MAX
    else:
        end = start + length
    vmi = VmaIterator(mm.mm_mt, start)
    while True:
        vma = vmi.vma_find(end)
        if vma is None:
            break
        if vma.vm_flags & VM_LOCKED:
            if start > vma.vm_start:
                count -= start - vma.vm_start
            if end < vma.vm_end:
                count += end - vma.vm_start
                break
            count += vma.vm_end - vma.vm_start
    return count >> PAGE_SHIFT


def __mlock_posix_error_return(retval: int) -> int:
    """mm/mlock.c __mlock_posix_error_return(): GUP's errors in mlock(2)'s words."""
    if retval == -EFAULT:
        retval = -ENOMEM
    elif retval == -ENOMEM:
        retval = -EAGAIN
    return retval


def can_do_mlock(mm) -> bool:
    """mm/mlock.c can_do_mlock()."""
    if rlimit_memlock(mm) != 0:
        return True
    return capable_ipc_lock(mm)


def do_mlock(mm, start: int, length: int, flags: int) -> int:
    """mlock the range with VMA flags *flags* (VM_LOCKED, plus VM_LOCKONFAULT for
    mlock2(MLOCK_ONFAULT)): set the flags under mmap_write_lock, then populate the range
    under mmap_read_lock. Models mm/mlock.c do_mlock(); *mm* is current->mm. Note the third
    argument is the kernel's vm_flags, not mlock2's flags (use :func:`sys_mlock2`)."""
    start &= MASK64
    error = -ENOMEM
    if not can_do_mlock(mm):
        return -EPERM
    length = PAGE_ALIGN(length + offset_in_page(start))
    start &= PAGE_MASK
    lock_limit = rlimit_memlock(mm) >> PAGE_SHIFT
    locked = length >> PAGE_SHIFT
    if mmap_write_lock_killable(mm):
        return -EINTR
    locked += mm.locked_vm
    if locked > lock_limit and not capable_ipc_lock(mm):
        # The regions requested may intersect previously mlocked areas.
        locked -= count_mm_mlocked_page_nr(mm, start, length)
    # check against resource limits
    if locked <= lock_limit or capable_ipc_lock(mm):
        error = apply_vma_lock_flags(mm, start, length, flags)
    mmap_write_unlock(mm)
    if error:
        return error
    error = __mm_populate(mm, start, length, 0)
    if error:
        return __mlock_posix_error_return(error)
    return 0


def sys_mlock(mm, start: int, length: int) -> int:
    """SYSCALL_DEFINE2(mlock)."""
    return do_mlock(mm, start, length, VM_LOCKED)


def sys_mlock2(mm, start: int, length: int, flags: int) -> int:
    """SYSCALL_DEFINE3(mlock2): flags 0 or MLOCK_ONFAULT."""
    vm_flags = VM_LOCKED
    if flags & ~MLOCK_ONFAULT:
        return -EINVAL
    if flags & MLOCK_ONFAULT:
        vm_flags |= VM_LOCKONFAULT
    return do_mlock(mm, start, length, vm_flags)


def sys_munlock(mm, start: int, length: int) -> int:
    """SYSCALL_DEFINE2(munlock): clear the lock flags (munlocking mapped pages)."""
    start &= MASK64
    length = PAGE_ALIGN(length + offset_in_page(start))
    start &= PAGE_MASK
    if mmap_write_lock_killable(mm):
        return -EINTR
    ret = apply_vma_lock_flags(mm, start, length, 0)
    mmap_write_unlock(mm)
    return ret


def apply_mlockall_flags(mm, flags: int) -> int:
    """mm/mlock.c apply_mlockall_flags(): mm->def_flags for MCL_FUTURE, and every VMA for
    MCL_CURRENT (errors ignored)."""
    to_add = 0
    mm.def_flags &= ~VM_LOCKED_MASK
    if flags & MCL_FUTURE:
        mm.def_flags |= VM_LOCKED
        if flags & MCL_ONFAULT:
            mm.def_flags |= VM_LOCKONFAULT
        if not flags & MCL_CURRENT:
            return 0
    if flags & MCL_CURRENT:
        to_add |= VM_LOCKED
        if flags & MCL_ONFAULT:
            to_add |= VM_LOCKONFAULT
    vmi = VmaIterator(mm.mm_mt, 0)
    prev = None
    while True:                                   # for_each_vma(vmi, vma)
        vma = vmi.vma_next()
        if vma is None:
            break
        newflags = vma.vm_flags & ~VM_LOCKED_MASK
        newflags |= to_add
        pprev = [prev]
        error = mlock_fixup(vmi, vma, pprev, vma.vm_start, vma.vm_end, newflags)
        prev = pprev[0]
        # Ignore errors, but prev needs fixing up.
        if error:
            prev = vma
        vmi.vma_iter_set(prev.vm_end)
    return 0


def sys_mlockall(mm, flags: int) -> int:
    """SYSCALL_DEFINE1(mlockall)."""
    if not flags or flags & ~(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) or flags == MCL_ONFAULT:
        return -EINVAL
    if not can_do_mlock(mm):
        return -EPERM
    lock_limit = rlimit_memlock(mm) >> PAGE_SHIFT
    if mmap_write_lock_killable(mm):
        return -EINTR
    ret = -ENOMEM
    if not flags & MCL_CURRENT or mm.total_vm <= lock_limit or capable_ipc_lock(mm):
        ret = apply_mlockall_flags(mm, flags)
    mmap_write_unlock(mm)
    if not ret and flags & MCL_CURRENT:
        mm_populate(mm, 0, TASK_SIZE)
    return ret


def sys_munlockall(mm) -> int:
    """SYSCALL_DEFINE0(munlockall)."""
    if mmap_write_lock_killable(mm):
        return -EINTR
    ret = apply_mlockall_flags(mm, 0)
    mmap_write_unlock(mm)
    return ret


# =================================================================================================
# The 5.x munlock walk (mm/mlock.c, mm/mmap.c of v4.17..v5.15)
# =================================================================================================
def _walker_enter(vma) -> None:
    """Model-only witness of walker stability (N5, bug 27ae357fa82b): the munlock walker is
    about to read this VMA's page tables."""
    sched.point("munlock_walker_enter", writes=(vma.obj,))
    vma.walkers += 1
    if vma.zappers:
        sched.event("zap_under_walker", vma=vma)


def _walker_exit(vma) -> None:
    sched.point("munlock_walker_exit", writes=(vma.obj,))
    vma.walkers -= 1


def munlock_vma_page(page: Page) -> int:
    """mm/mlock.c munlock_vma_page() (5.x): TestClearPageMlocked, then back to an evictable
    LRU. Returns the page mask (0: order 0)."""
    munlock_folio(page)
    return 0


def munlock_vma_pages_range(vma, start: int, end: int) -> None:
    """Clear VM_LOCKED|VM_LOCKONFAULT, then munlock every page mapped in [start, end),
    page by page with follow_page(FOLL_GET | FOLL_DUMP). Models mm/mlock.c
    munlock_vma_pages_range() of 5.x (the pagevec fast path __munlock_pagevec_fill, which
    munlocks the rest of the PTE table under its lock, is folded into the page loop). In
    exit_mmap() this runs without mmap_lock; each page is bracketed by the walker witness."""
    # vma->vm_flags &= VM_LOCKED_CLEAR_MASK;
    vm_flags_clear(vma, VM_LOCKED_MASK)
    while start < end:
        page_mask = 0
        _walker_enter(vma)
        # FOLL_DUMP: the zero page comes back as an error (skipped).
        page = follow_page(vma, start, FOLL_GET | FOLL_DUMP)
        if page is not None:
            # (PageTransTail / PageTransHuge: no THP)
            page_mask = munlock_vma_page(page)
            folio_put(page)                       # put_page(page): follow_page's reference
        _walker_exit(vma)
        page_increm = 1 + page_mask
        start += page_increm * PAGE_SIZE
        # cond_resched()


def munlock_vma_pages_all(vma) -> None:
    """mm/internal.h munlock_vma_pages_all() (5.x)."""
    munlock_vma_pages_range(vma, vma.vm_start, vma.vm_end)


__all__ = ["do_mlock", "sys_mlock", "sys_mlock2", "sys_munlock", "sys_mlockall",
           "sys_munlockall", "mlock_fixup", "apply_vma_lock_flags", "mlock_vma_pages_range",
           "munlock_vma_pages_range", "munlock_vma_pages_all"]
