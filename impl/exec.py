"""execve's switch of address space: the mm part of fs/exec.c.

Models fs/exec.c exec_mmap() of Linux 6.18 (called from begin_new_exec(), formerly
flush_old_exec: seed 002), bprm_mm_init() / __bprm_mm_init() (the new image's mm with its
initial one-page stack VMA, built by mm/vma_exec.c create_init_stack_vma()), and
include/asm-generic/mmu_context.h activate_mm().

Simplifications: no exec_update_lock (nothing in the model reads another task's mm through
/proc or ptrace), no membarrier, no mm_cid, no lru_gen, no core dumps (mmap_read_lock
cannot fail), no signal->maxrss, no mm owner (mm_update_next_owner); task_lock() is not
needed because nothing else reads ``tsk->mm`` of another task. The old mm stays in the
CPU's mm_cpumask, as after a real switch_mm (x86 clears the bit at a later flush that
finds the CPU on another mm).
"""

from __future__ import annotations

from . import sched
from .constants import (PAGE_SHIFT, PAGE_SIZE, TASK_SIZE, VM_ACCOUNT, VM_GROWSDOWN, VM_MAYEXEC,
                        VM_MAYREAD, VM_MAYWRITE, VM_READ, VM_SOFTDIRTY, VM_WRITE)
from .cpu import switch_mm
from .locks import mmap_read_lock, mmap_read_unlock
from .mm_types import VmaIterator, vm_area_struct
from .sched import KernelBug

# arch/x86/include/asm/page_64_types.h: STACK_TOP_MAX = TASK_SIZE_MAX (4-level paging).
STACK_TOP_MAX = TASK_SIZE
# include/linux/mm.h: VM_STACK_FLAGS = VM_STACK | VM_STACK_DEFAULT_FLAGS | VM_ACCOUNT, with
# VM_STACK = VM_GROWSDOWN and VM_DATA_DEFAULT_FLAGS = VM_DATA_FLAGS_TSK_EXEC minus VM_EXEC
# (no READ_IMPLIES_EXEC personality).
VM_STACK_DEFAULT_FLAGS = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
VM_STACK_FLAGS = VM_GROWSDOWN | VM_STACK_DEFAULT_FLAGS | VM_ACCOUNT
# include/linux/mm.h: VM_STACK_INCOMPLETE_SETUP = VM_RAND_READ | VM_SEQ_READ until
# setup_arg_pages() finishes; the model's image is never finished, so the flag is kept as 0.
VM_STACK_INCOMPLETE_SETUP = 0


def activate_mm(cpu, prev_mm, next_mm) -> None:
    """include/asm-generic/mmu_context.h activate_mm() -> switch_mm(prev, next, current):
    the current CPU runs the new mm (and joins its mm_cpumask)."""
    switch_mm(cpu, next_mm)


def create_init_stack_vma(mm) -> int:
    """Give the new image's mm its temporary stack VMA: one page just below STACK_TOP_MAX,
    growing down, linked as insert_vm_struct() links it. Models mm/vma_exec.c
    create_init_stack_vma() of 6.18 (fs/exec.c's __bprm_mm_init body until 6.16): the mm
    is not visible to anyone else yet, so its lock is not contended; no KSM (ksm_execve);
    no anon_vma until the first fault; the VM_ACCOUNT charge is not modelled."""
    from .locks import mmap_write_lock, mmap_write_unlock
    mmap_write_lock(mm)
    vma = vm_area_struct(mm, STACK_TOP_MAX - PAGE_SIZE, STACK_TOP_MAX,
                         VM_SOFTDIRTY | VM_STACK_FLAGS | VM_STACK_INCOMPLETE_SETUP,
                         pgoff=0)
    # insert_vm_struct(mm, vma): an anonymous VMA's pgoff is its start >> PAGE_SHIFT, then
    # vma_link().
    vma.vm_pgoff = vma.vm_start >> PAGE_SHIFT
    VmaIterator(mm.mm_mt, vma.vm_start).store(vma)
    mm.map_count += 1
    mm.stack_vm = mm.total_vm = 1
    mmap_write_unlock(mm)
    return 0


def __bprm_mm_init(mm) -> int:
    """fs/exec.c __bprm_mm_init() of 6.18: create_init_stack_vma() (the bprm's vma and p
    are not modelled)."""
    return create_init_stack_vma(mm)


def bprm_mm_init(machine, stack: bool = True):
    """The fresh mm of a new program image: ``mm_alloc()``, and, with *stack* (the kernel's
    behaviour, and ``System.exec``'s), the one-page stack VMA of __bprm_mm_init(); with
    ``stack=False`` the mm is empty. Models fs/exec.c bprm_mm_init() (no rlimit snapshot,
    no arg pages: the image is never finished, so setup_arg_pages' move of the stack is not
    modelled)."""
    from .fork import mm_alloc
    mm = mm_alloc(machine)
    if stack:
        __bprm_mm_init(mm)
    return mm


def exec_mmap(tsk, mm) -> int:
    """Make *mm* the address space of *tsk* (the current task, on the current CPU) and drop
    the old one: mmap_read_lock(old_mm) around the switch, ``tsk->mm = mm``, activate_mm()
    on this CPU, unlock, then mmput(old_mm) -- which, for its last user, runs exit_mmap().
    Returns 0. Models fs/exec.c exec_mmap() of 6.18."""
    from .fork import mmput
    old_mm = tsk.mm
    # exec_mm_release(tsk, old_mm): futex/clear_child_tid: not modelled.
    # down_write_killable(&tsk->signal->exec_update_lock): not modelled.
    if old_mm is not None:
        # If there is a pending fatal signal perhaps a coredump: get out and die instead of
        # going through with the exec (mmap_read_lock_killable never fails in the model).
        mmap_read_lock(old_mm)

    # task_lock(tsk); membarrier_exec_mmap(mm); local_irq_disable()
    active_mm = tsk.active_mm
    sched.point("exec_mmap: tsk->mm = mm", writes=(("task", tsk.pid),))
    tsk.active_mm = mm
    tsk.mm = mm
    # mm_init_cid(mm, tsk)
    cpu = mm.machine.cpus[sched.current().cpu]
    activate_mm(cpu, active_mm, mm)
    # lru_gen_add_mm(mm); task_unlock(tsk); lru_gen_use_mm(mm)
    if old_mm is not None:
        mmap_read_unlock(old_mm)
        if active_mm is not old_mm:
            raise KernelBug("BUG_ON(active_mm != old_mm) in exec_mmap")
        # setmax_mm_hiwater_rss(&tsk->signal->maxrss, old_mm); mm_update_next_owner(old_mm)
        mmput(old_mm)
        return 0
    # mmdrop_lazy_tlb(active_mm): the model takes no lazy-TLB reference (a task without an
    # mm borrows nothing), so there is nothing to drop.
    return 0


__all__ = ["exec_mmap", "bprm_mm_init", "STACK_TOP_MAX"]
