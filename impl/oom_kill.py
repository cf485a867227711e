"""The OOM reaper: the unmap side of mm/oom_kill.c.

Models mm/oom_kill.c __oom_reap_task_mm, oom_reap_task_mm, oom_reap_task (the body of the
oom_reaper kernel thread for one victim), mark_oom_victim and queue_oom_reaper, and
include/linux/oom.h mm_is_oom_victim, in two kernel eras:

* ``"6.18"`` (default): MMF_UNSTABLE is set, then the VMAs are walked from the top of the
  address space down (mas_for_each_rev, 6.18's "the OOM reaper traverses the VMA maple tree
  in reverse order"); VM_HUGETLB|VM_PFNMAP VMAs are skipped; every anonymous or private VMA
  is zapped with unmap_page_range() inside a gather of its own.
* ``"5.x"``: the VMAs are walked in address order and skipped when ``can_madv_lru_vma()``
  is false, i.e. VM_LOCKED|VM_HUGETLB|VM_PFNMAP. The reaper reads vm_flags while exit_mmap()
  may be clearing VM_LOCKED in munlock_vma_pages_all() without mmap_lock -- the race of bug
  27ae357fa82b (the exit_mmap side is in impl/mmap.py, the munlock walker in impl/mlock.py).
  mark_oom_victim() sets MMF_OOM_VICTIM, which 5.x exit_mmap() tests (mm_is_oom_victim); the
  flag was removed in 6.2, and the model keeps it as ``mm.oom_victim``.

Fix toggle 687cb0884a71 ("mm, oom_reaper: gather each vma to prevent leaking TLB entry"),
off: the v4.14 shape, one fullmm gather (``tlb_gather_mmu(&tlb, mm, 0, -1)``) around the
whole VMA loop, finished once after it. A fullmm flush is skipped on arm64 (tlb_flush() in
arch/arm64/include/asm/tlb.h), so reaped pages are freed while a CPU may still cache them.

Simplifications: no mmu notifiers (mmu_notifier_invalidate_range_start_nonblock never
fails), no oom_lock, no timers (the reaper is started by the scenario), the victim's
``signal->oom_mm`` is ``task.oom_mm``; schedule_timeout_idle() between attempts is a
scheduling point.
"""

from __future__ import annotations

from . import sched
from .constants import (MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MMF_OOM_REAP_QUEUED,
                        MMF_OOM_SKIP, MMF_UNSTABLE, PAGE_SHIFT, ULONG_MAX, VM_HUGETLB,
                        VM_LOCKED, VM_PFNMAP, VM_SHARED)
from .locks import mmap_read_trylock, mmap_read_unlock
from .mm_types import (VmaIterator, get_mm_counter, mm_flags_set, mm_flags_test,
                       mm_flags_test_and_set, vm_flags_read, vma_is_anonymous)
from .mmu_gather import mmu_gather, tlb_finish_mmu, tlb_gather_mmu, tlb_gather_mmu_fullmm
from .zap import unmap_page_range

MAX_OOM_REAP_RETRIES = 10

FIX_GATHER_EACH_VMA = "687cb0884a71"


def K(pages: int) -> int:
    """mm/oom_kill.c K(x): pages to kB."""
    return pages << (PAGE_SHIFT - 10)


def mm_is_oom_victim(mm) -> bool:
    """include/linux/oom.h mm_is_oom_victim(): test_bit(MMF_OOM_VICTIM, &mm->flags) (5.x;
    the flag is ``mm.oom_victim`` in the model)."""
    sched.point("test_bit(MMF_OOM_VICTIM)", reads=(("mm_flags", mm.id),))
    return mm.oom_victim


def can_madv_lru_vma(vm_flags: int) -> bool:
    """mm/madvise.c can_madv_lru_vma() (5.x), on a vm_flags value the reaper has read."""
    return not vm_flags & (VM_LOCKED | VM_HUGETLB | VM_PFNMAP)


def _vmas_for_reaping(mm):
    """The VMA order of the era: 6.18 walks the maple tree from ULONG_MAX down
    (``MA_STATE(mas, &mm->mm_mt, ULONG_MAX, ULONG_MAX); mas_for_each_rev(&mas, vma, 0)``),
    5.x follows mm->mmap / vm_next upwards."""
    if mm.machine.era == "5.x":
        vmi = VmaIterator(mm.mm_mt, 0)
        while True:
            vma = vmi.vma_next()
            if vma is None:
                return
            yield vma
    else:
        vmi = VmaIterator(mm.mm_mt, ULONG_MAX)
        while True:
            vma = vmi.vma_prev()
            if vma is None:
                return
            yield vma


def __oom_reap_task_mm(mm) -> bool:
    """Unmap the anonymous and private memory of an OOM victim's mm; returns True when the
    whole address space was processed (always, without mmu notifiers).

    Models mm/oom_kill.c __oom_reap_task_mm() of the machine's era (see the module doc),
    with the 687cb0884a71 toggle. Caller holds mmap_read_lock (the reaper), or is exit_mmap
    of a 5.x OOM victim with no lock at all."""
    machine = mm.machine
    era = machine.era
    gather_each_vma = machine.fixes.on(FIX_GATHER_EACH_VMA)
    ret = True

    # Tell all users of get_user/copy_from_user etc... that the content is no longer stable.
    mm_flags_set(mm, MMF_UNSTABLE)

    if not gather_each_vma:
        # v4.14: tlb_gather_mmu(&tlb, mm, 0, -1) -- start 0, end -1: a fullmm gather.
        tlb = mmu_gather()
        tlb_gather_mmu_fullmm(tlb, mm)

    for vma in _vmas_for_reaping(mm):
        vm_flags = vm_flags_read(vma)
        if era == "5.x":
            if not can_madv_lru_vma(vm_flags):
                continue
        elif vm_flags & (VM_HUGETLB | VM_PFNMAP):
            continue

        # Only anonymous pages have a good chance to be dropped without additional steps;
        # fs backed pages are left alone.
        if vma_is_anonymous(vma) or not vm_flags & VM_SHARED:
            if gather_each_vma:
                tlb = mmu_gather()
                tlb_gather_mmu(tlb, mm)
                # (mmu_notifier_invalidate_range_start_nonblock: no notifiers, never fails)
                unmap_page_range(tlb, vma, vma.vm_start, vma.vm_end, None)
                tlb_finish_mmu(tlb)
            else:
                unmap_page_range(tlb, vma, vma.vm_start, vma.vm_end, None)

    if not gather_each_vma:
        # tlb_finish_mmu(&tlb, 0, -1);
        tlb_finish_mmu(tlb)
    return ret


def _task_name(tsk, mm) -> tuple[int, str]:
    if tsk is None:
        return 0, f"mm{mm.id}"
    return tsk.pid, tsk.comm


def oom_reap_task_mm(tsk, mm) -> bool:
    """One attempt to reap *mm*: False if mmap_lock could not be taken for read (try again
    later), True otherwise (reaped, or nothing to do because MMF_OOM_SKIP is set).

    Models mm/oom_kill.c oom_reap_task_mm(). MMF_OOM_SKIP is tested under mmap_read_lock:
    that is what serialises with exit_mmap()'s mmap_write_lock()/unlock() cycle."""
    ret = True
    if not mmap_read_trylock(mm):
        # trace_skip_task_reaping
        return False
    # MMF_OOM_SKIP is set by exit_mmap when the OOM reaper can't work on the mm anymore.
    if mm_flags_test(mm, MMF_OOM_SKIP):
        mmap_read_unlock(mm)                     # goto out_unlock
        return ret
    # trace_start_task_reaping
    # failed to reap part of the address space. Try again later
    ret = __oom_reap_task_mm(mm)
    if ret:
        pid, comm = _task_name(tsk, mm)
        mm.machine.printk(
            f"oom_reaper: reaped process {pid} ({comm}), now "
            f"anon-rss:{K(get_mm_counter(mm, MM_ANONPAGES))}kB, "
            f"file-rss:{K(get_mm_counter(mm, MM_FILEPAGES))}kB, "
            f"shmem-rss:{K(get_mm_counter(mm, MM_SHMEMPAGES))}kB")
    # out_finish: trace_finish_task_reaping
    mmap_read_unlock(mm)
    return ret


def oom_reap_task(tsk, mm) -> None:
    """Reap one victim: up to MAX_OOM_REAP_RETRIES attempts, then hide the mm from the OOM
    killer (MMF_OOM_SKIP) whether or not it worked.

    Models mm/oom_kill.c oom_reap_task(); *mm* is ``tsk->signal->oom_mm``."""
    attempts = 0
    # Retry the mmap_read_trylock(mm) a few times
    while True:
        attempts += 1
        if not (attempts <= MAX_OOM_REAP_RETRIES and not oom_reap_task_mm(tsk, mm)):
            break
        sched.point("schedule_timeout_idle(HZ/10)")
    if not (attempts <= MAX_OOM_REAP_RETRIES or mm_flags_test(mm, MMF_OOM_SKIP)):
        pid, comm = _task_name(tsk, mm)
        mm.machine.printk(f"oom_reaper: unable to reap pid:{pid} ({comm})")
    # done: tsk->oom_reaper_list = NULL;
    # Hide this mm from OOM killer because it has been either reaped or somebody can't call
    # mmap_write_unlock(mm).
    mm_flags_set(mm, MMF_OOM_SKIP)
    # Drop a reference taken by queue_oom_reaper (put_task_struct): not modelled.


def oom_reaper_actor(machine, mm, tsk=None) -> None:
    """The body of the oom_reaper kernel thread for one queued victim: what the explorer
    runs as a kernel actor. Models mm/oom_kill.c oom_reaper() taking one task off
    oom_reaper_list and calling oom_reap_task() (no wait queue, no timer: the scenario
    decides when the reaper runs)."""
    oom_reap_task(tsk, mm)


def mark_oom_victim(tsk) -> None:
    """Mark *tsk* as an OOM victim: TIF_MEMDIE, ``signal->oom_mm`` set (and the mm pinned
    with mmgrab), and in the 5.x era MMF_OOM_VICTIM on the mm.
    Models mm/oom_kill.c mark_oom_victim() (no freezer, no oom_victims count)."""
    from .fork import mmgrab
    mm = tsk.mm
    # OOM killer might race with memcg OOM
    sched.point("test_and_set_tsk_thread_flag(TIF_MEMDIE)", writes=(("task", tsk.pid),))
    if tsk.oom_victim:
        return
    tsk.oom_victim = True
    # oom_mm is bound to the signal struct life time.
    sched.point("cmpxchg(&tsk->signal->oom_mm)", writes=(("task", tsk.pid),))
    if tsk.oom_mm is None:
        tsk.oom_mm = mm
        mmgrab(mm)
        if mm.machine.era == "5.x":
            # set_bit(MMF_OOM_VICTIM, &mm->flags)  (removed in 6.2)
            sched.point("set_bit(MMF_OOM_VICTIM)", writes=(("mm_flags", mm.id),))
            mm.oom_victim = True
    # __thaw_task / thaw_process, atomic_inc(&oom_victims): not modelled.


def queue_oom_reaper(tsk) -> bool:
    """mm/oom_kill.c queue_oom_reaper(): queue the victim's mm for the reaper once
    (MMF_OOM_REAP_QUEUED). Returns True if the caller should start the reaper actor
    (the model has no timer: the kernel waits OOM_REAPER_DELAY first)."""
    mm = tsk.oom_mm
    # mm is already queued?
    if mm_flags_test_and_set(mm, MMF_OOM_REAP_QUEUED):
        return False
    # get_task_struct(tsk); timer_setup(...wake_oom_reaper...); add_timer: the scenario.
    return True


__all__ = ["__oom_reap_task_mm", "oom_reap_task_mm", "oom_reap_task", "oom_reaper_actor",
           "mark_oom_victim", "queue_oom_reaper", "mm_is_oom_victim", "MAX_OOM_REAP_RETRIES"]
