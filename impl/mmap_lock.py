"""Per-VMA locks as Linux 6.18 has them: include/linux/mmap_lock.h and mm/mmap_lock.c
(vma_start_read, vma_end_read, vma_start_write, vma_mark_attached, vma_mark_detached,
lock_vma_under_rcu) and the mm_lock_seq count that mmap_write_lock / mmap_write_unlock /
mmap_write_downgrade move (mm_lock_seqcount_begin, vma_end_write_all). Read from 6.18.35
(docs/research/per-vma-locks.md).

State: ``mm.mm_lock_seq`` (odd while mmap_lock is write-held); per VMA ``vm_lock_seq`` (the VMA
is write-locked iff it equals the mm's count) and ``vm_refcnt`` (0 detached, 1 attached,
+1 per reader, +VMA_LOCK_OFFSET while a writer or a detacher waits for the readers).

A reader (a page fault, MADV_DONTNEED within one VMA) takes the VMA's read lock without
mmap_lock; a writer holds mmap_lock for write and write-locks each VMA it changes, waiting
for the readers inside it; the write locks all end together when mmap_lock is released or
downgraded. Each shared access is a scheduling point, in the kernel's order.

Simplifications, stated:
* VMAs are never freed in the model (vm_area_free keeps the object), so the RCU read-side
  section of lock_vma_under_rcu (which keeps a found VMA's memory valid, SLAB_TYPESAFE_BY_RCU)
  and the vm_mm re-check of a recycled VMA (9bbffee67ffd, CVE-2025-38554) have nothing to
  act on: no VMA is reused by another mm.
* lock_vma_under_rcu's unbounded retry on a VMA detached under it (-EAGAIN: munmap's window
  between vma_mark_detached and clearing the tree) is modelled as a wait until the VMA is out
  of the tree, which is what the retry spins for.
* The memory-ordering fix b1f02b95758d (release/acquire on mm_lock_seq) has no effect in the
  model's sequentially consistent memory.
"""

from __future__ import annotations

from . import sched
from .sched import KernelBug

VMA_LOCK_OFFSET = 0x40000000
VMA_REF_LIMIT = VMA_LOCK_OFFSET - 1
UINT_MAX = (1 << 32) - 1

#: vma_start_read()'s "detached under us" result (ERR_PTR(-EAGAIN)).
EAGAIN = object()


def _lock_obj(vma) -> tuple:
    return ("vma_lock", vma.id)


def _seq_obj(mm) -> tuple:
    return ("mm_lock_seq", mm.id)


def per_vma_locks(mm) -> bool:
    """IS_ENABLED(CONFIG_PER_VMA_LOCK) for the modelled kernel: since 6.4 (5e31275cc997,
    0bff0aaea03e) on x86, arm64 and powerpc. The "5.x" era restores the kernel where every
    fault takes mmap_lock, so the two can be compared."""
    return mm.machine.era != "5.x"


# --- mm_lock_seq -------------------------------------------------------------------------------
def mm_lock_seqcount_begin(mm) -> None:
    """mmap_write_lock(): the count goes odd; every VMA write-locked from now on carries it."""
    sched.point("mm_lock_seqcount_begin", writes=(_seq_obj(mm),))
    mm.mm_lock_seq += 1


def vma_end_write_all(mm) -> None:
    """include/linux/mmap_lock.h vma_end_write_all() (mm_lock_seqcount_end), at
    mmap_write_unlock() and mmap_write_downgrade(): every VMA write lock ends here."""
    sched.point("vma_end_write_all", writes=(_seq_obj(mm),))
    mm.mm_lock_seq += 1


# --- writers -------------------------------------------------------------------------------------
def __is_vma_write_locked(vma) -> tuple[bool, int]:
    from .locks import mmap_assert_write_locked
    mm = vma.vm_mm
    mmap_assert_write_locked(mm)
    return vma.vm_lock_seq == mm.mm_lock_seq, mm.mm_lock_seq


def vma_start_write(vma) -> None:
    """include/linux/mmap_lock.h vma_start_write(): idempotent within one mmap_write_lock
    section; otherwise __vma_start_write()."""
    locked, seq = __is_vma_write_locked(vma)
    if locked:
        return
    __vma_start_write(vma, seq)


def __vma_enter_locked(vma, detaching: bool) -> bool:
    """mm/mmap_lock.c __vma_enter_locked(): add VMA_LOCK_OFFSET unless the VMA is detached,
    then sleep until only this writer (and, unless detaching, the attach count) is left."""
    target = VMA_LOCK_OFFSET + (0 if detaching else 1)
    sched.point("refcount_add_not_zero(VMA_LOCK_OFFSET, &vma->vm_refcnt)",
                writes=(_lock_obj(vma),))
    if vma.vm_refcnt == 0:
        return False
    vma.vm_refcnt += VMA_LOCK_OFFSET
    sched.point("rcuwait_wait_event(vm_refcnt == target)", reads=(_lock_obj(vma),),
                wait=lambda: vma.vm_refcnt == target)
    return True


def __vma_exit_locked(vma) -> bool:
    """mm/mmap_lock.c __vma_exit_locked(): drop VMA_LOCK_OFFSET; True if now detached."""
    sched.point("refcount_sub_and_test(VMA_LOCK_OFFSET, &vma->vm_refcnt)",
                writes=(_lock_obj(vma),))
    vma.vm_refcnt -= VMA_LOCK_OFFSET
    return vma.vm_refcnt == 0


def __vma_start_write(vma, mm_lock_seq: int) -> None:
    """mm/mmap_lock.c __vma_start_write(): wait out the readers, then mark the VMA
    write-locked (vm_lock_seq = mm_lock_seq), attached or not."""
    locked = __vma_enter_locked(vma, False)
    sched.point("WRITE_ONCE(vma->vm_lock_seq, mm_lock_seq)", writes=(_lock_obj(vma),))
    vma.vm_lock_seq = mm_lock_seq
    if locked and __vma_exit_locked(vma):
        raise KernelBug("WARN_ON_ONCE(detached) in __vma_start_write")


def vma_assert_locked(vma) -> None:
    """include/linux/mmap_lock.h vma_assert_locked(): read-locked (a reader's count on top
    of the attach count) or write-locked."""
    if vma.vm_refcnt <= 1 and vma.vm_lock_seq != vma.vm_mm.mm_lock_seq:
        raise KernelBug(f"VM_BUG_ON_VMA(!vma_is_locked) for {vma!r}")


def vma_assert_write_locked(vma) -> None:
    locked, _ = __is_vma_write_locked(vma)
    if not locked:
        raise KernelBug(f"VM_BUG_ON_VMA(!__is_vma_write_locked) for {vma!r}")


def vma_mark_detached(vma) -> None:
    """mm/mmap_lock.c vma_mark_detached(): drop the attach count; if a reader's transient
    increment is still there, wait until it is gone."""
    sched.point("refcount_dec_and_test(&vma->vm_refcnt)", writes=(_lock_obj(vma),))
    vma.detached = True
    if vma.vm_refcnt <= 1:
        vma.vm_refcnt = 0
        return
    vma.vm_refcnt -= 1
    if __vma_enter_locked(vma, True):
        if not __vma_exit_locked(vma):
            raise KernelBug("WARN_ON_ONCE(!detached) in vma_mark_detached")


# --- readers -------------------------------------------------------------------------------------
def vma_start_read(mm, vma):
    """mm/mmap_lock.c vma_start_read(): the VMA read-locked, None if a writer has it (or is
    waiting), or EAGAIN if it was detached under us. Each check is its own step."""
    sched.point("vma_start_read: READ_ONCE(vma->vm_lock_seq)",
                reads=(_lock_obj(vma), _seq_obj(mm)))
    if vma.vm_lock_seq == mm.mm_lock_seq:
        return None
    sched.point("__refcount_inc_not_zero_limited_acquire(&vma->vm_refcnt)",
                writes=(_lock_obj(vma),))
    old = vma.vm_refcnt
    if old == 0:
        return EAGAIN
    if old + 1 > VMA_REF_LIMIT:
        return None
    vma.vm_refcnt = old + 1
    # (vma->vm_mm != mm: never in the model, VMAs are not recycled)
    sched.point("vma_start_read: raw_read_seqcount(&mm->mm_lock_seq)",
                reads=(_lock_obj(vma), _seq_obj(mm)))
    if vma.vm_lock_seq == mm.mm_lock_seq:
        vma_refcount_put(vma)
        return None
    return vma


def vma_refcount_put(vma) -> None:
    """include/linux/mmap_lock.h vma_refcount_put(): drop a reader's count (the waiting
    writer's wait condition reads it)."""
    sched.point("__refcount_dec_and_test(&vma->vm_refcnt)", writes=(_lock_obj(vma),))
    vma.vm_refcnt -= 1


def vma_end_read(vma) -> None:
    """include/linux/mmap_lock.h vma_end_read()."""
    vma_refcount_put(vma)


def lock_vma_under_rcu(mm, address: int):
    """mm/mmap_lock.c lock_vma_under_rcu(): find the VMA at *address* without mmap_lock and
    read-lock it; None when there is none, it is write-locked, or it no longer covers the
    address once locked (the caller falls back to mmap_lock)."""
    while True:
        sched.point("mas_walk", reads=(mm.mm_mt.obj,))
        t = mm.mm_mt
        i = t._first_ending_after(address)
        vma = t.vmas[i] if i < len(t.vmas) else None
        if vma is None or not vma.vm_start <= address < vma.vm_end:
            return None
        got = vma_start_read(mm, vma)
        if got is EAGAIN:
            # "goto retry": the VMA is being unmapped; the walk finds it until it leaves the
            # tree.
            sched.point("lock_vma_under_rcu: retry", reads=(mm.mm_mt.obj,),
                        wait=lambda: vma not in mm.mm_mt.vmas)
            continue
        if got is None:
            return None
        sched.point("lock_vma_under_rcu: check vm_start/vm_end", reads=(vma.obj,))
        if address < vma.vm_start or address >= vma.vm_end:
            vma_end_read(vma)
            return None
        return vma
