"""The x86 page-fault entry and the user instruction that takes it.

Models arch/x86/mm/fault.c (exc_page_fault -> handle_page_fault, do_user_addr_fault,
do_kern_addr_fault, access_error, bad_area_nosemaphore, __bad_area, bad_area_access_error,
do_sigbus) and, as :func:`user_access`, what a user load or store does on a CPU: translate
through the TLB or a page walk (cpu.mmu_translate), on #PF run the fault handler and restart
the instruction, else access the frame (cpu.mmu_access_data).

Simplifications:
* per-VMA locks are not modelled: lock_vma_under_rcu() always "fails", so every fault takes
  the mmap_lock path (lock_mm_and_find_vma + handle_mm_fault under mmap_read_lock);
* no vsyscall page, no protection keys, no shadow stacks, no SGX, no kprobes, no SMAP (only
  user accesses); stack expansion below a VM_GROWSDOWN VMA is lock_mm_and_find_vma's
  (impl/fault.py);
* the fatal signals are Python exceptions raised to the caller of user_access (the task
  would die of them): :class:`SigSegv` (SEGV_MAPERR: no VMA; SEGV_ACCERR: access_error)
  and :class:`SigBus` (VM_FAULT_SIGBUS, e.g. a file page past i_size);
* VM_FAULT_OOM cannot happen (allocation never fails), so pagefault_out_of_memory() is left
  out; fault_signal_pending() is always false (no pending signals).
"""

from __future__ import annotations

from . import sched
from .constants import TASK_SIZE, VM_WRITE
from .cpu import Fault, mmu_access_data, mmu_translate, runs_mm, switch_mm
from .fault import (FAULT_FLAG_DEFAULT, FAULT_FLAG_INSTRUCTION, FAULT_FLAG_TRIED,
                    FAULT_FLAG_USER, FAULT_FLAG_VMA_LOCK, FAULT_FLAG_WRITE, VM_FAULT_COMPLETED,
                    VM_FAULT_ERROR,
                    VM_FAULT_HWPOISON, VM_FAULT_HWPOISON_LARGE, VM_FAULT_OOM, VM_FAULT_RETRY,
                    VM_FAULT_SIGBUS, VM_FAULT_SIGSEGV, handle_mm_fault, lock_mm_and_find_vma,
                    vma_is_accessible)
from .locks import lockdep_sys_exit, mmap_read_unlock
from .mmap_lock import lock_vma_under_rcu, per_vma_locks, vma_end_read
from .sched import KernelBug

# arch/x86/include/asm/trap_pf.h: enum x86_pf_error_code
X86_PF_PROT = 1 << 0
X86_PF_WRITE = 1 << 1
X86_PF_USER = 1 << 2
X86_PF_RSVD = 1 << 3
X86_PF_INSTR = 1 << 4
X86_PF_PK = 1 << 5
X86_PF_SHSTK = 1 << 6
X86_PF_SGX = 1 << 15

# include/uapi/asm-generic/siginfo.h
SEGV_MAPERR = 1
SEGV_ACCERR = 2
BUS_ADRERR = 2

#: Sequential runs only: how many times one user instruction may fault and restart before the
#: run is declared livelocked (e.g. a migration entry nobody will ever remove). Under the
#: explorer there is no such bound: the explorer's step bound applies.
MAX_SEQUENTIAL_RESTARTS = 1000


class SigSegv(Exception):
    """SIGSEGV delivered to the task for the access at ``addr`` (``code``: SEGV_MAPERR when
    no VMA maps it, SEGV_ACCERR when the VMA forbids the access)."""

    def __init__(self, addr: int, code: int = SEGV_MAPERR):
        super().__init__(f"SIGSEGV at {addr:#x} "
                         f"({'SEGV_ACCERR' if code == SEGV_ACCERR else 'SEGV_MAPERR'})")
        self.addr = addr
        self.code = code


class SigBus(Exception):
    """SIGBUS delivered to the task for the access at ``addr`` (BUS_ADRERR: the fault
    handler returned VM_FAULT_SIGBUS, e.g. a file page beyond i_size)."""

    def __init__(self, addr: int, code: int = BUS_ADRERR):
        super().__init__(f"SIGBUS at {addr:#x} (BUS_ADRERR)")
        self.addr = addr
        self.code = code


def fault_error_code(fault: Fault) -> int:
    """The hardware error code of a #PF raised by cpu.mmu_translate for a user access:
    X86_PF_USER, X86_PF_WRITE for a store, X86_PF_PROT when a present translation forbade
    the access (a store through a read-only PTE or TLB entry)."""
    code = X86_PF_USER
    if fault.write:
        code |= X86_PF_WRITE
    if fault.prot:
        code |= X86_PF_PROT
    return code


def access_error(error_code: int, vma) -> bool:
    """arch/x86/mm/fault.c access_error(): does the VMA forbid this access? A write needs
    VM_WRITE; a read of a present page never faults for permission on x86 (so PROT on a read
    is an error); a read of a missing page needs the VMA to be accessible (not PROT_NONE)."""
    if error_code & X86_PF_PK:
        return True
    if error_code & X86_PF_SGX:
        return True
    # (arch_vma_access_permitted: no protection keys)
    # (X86_PF_SHSTK: no shadow stacks)
    if error_code & X86_PF_WRITE:
        # write, present and write, not present:
        if not vma.vm_flags & VM_WRITE:
            return True
        return False
    # read, present:
    if error_code & X86_PF_PROT:
        return True
    # read, not present:
    if not vma_is_accessible(vma):
        return True
    return False


def __bad_area_nosemaphore(regs, error_code: int, address: int, si_code: int) -> None:
    """arch/x86/mm/fault.c __bad_area_nosemaphore() for a user-mode access: SIGSEGV."""
    raise SigSegv(address, si_code)


def bad_area_nosemaphore(regs, error_code: int, address: int) -> None:
    """arch/x86/mm/fault.c bad_area_nosemaphore(): no VMA (SEGV_MAPERR), mmap_lock not held."""
    __bad_area_nosemaphore(regs, error_code, address, SEGV_MAPERR)


def __bad_area(regs, error_code: int, address: int, mm, vma, si_code: int) -> None:
    """arch/x86/mm/fault.c __bad_area(): drop mmap_lock (if the caller holds it; *mm* None:
    the per-VMA path, which drops the VMA's read lock), signal."""
    if mm is not None:
        mmap_read_unlock(mm)
    elif vma is not None:
        vma_end_read(vma)
    __bad_area_nosemaphore(regs, error_code, address, si_code)


def bad_area_access_error(regs, error_code: int, address: int, mm, vma) -> None:
    """arch/x86/mm/fault.c bad_area_access_error(): the VMA forbids it (SEGV_ACCERR)."""
    __bad_area(regs, error_code, address, mm, vma, SEGV_ACCERR)


def do_sigbus(regs, error_code: int, address: int, fault: int) -> None:
    """arch/x86/mm/fault.c do_sigbus() for a user-mode access (no hwpoison): SIGBUS."""
    raise SigBus(address, BUS_ADRERR)


def fault_in_kernel_space(address: int) -> bool:
    """arch/x86/mm/fault.c fault_in_kernel_space() (no vsyscall page)."""
    return address >= TASK_SIZE


def do_kern_addr_fault(regs, hw_error_code: int, address: int) -> None:
    """arch/x86/mm/fault.c do_kern_addr_fault(): a user access to a kernel address is a bad
    area (there are no spurious kernel faults in the model)."""
    bad_area_nosemaphore(regs, hw_error_code, address)


def do_user_addr_fault(task, error_code: int, address: int) -> None:
    """Handle a #PF on a user address for *task* (``current``): find the VMA under
    mmap_read_lock, check the access against it, run handle_mm_fault, retry on
    VM_FAULT_RETRY, and turn errors into signals. Returns normally when the instruction
    should be restarted. Models arch/x86/mm/fault.c do_user_addr_fault() with ``regs``
    replaced by the task (user mode, interrupts on). Since 6.4 a user fault first tries the
    VMA's read lock alone (lock_vma_under_rcu, FAULT_FLAG_VMA_LOCK: impl/mmap_lock.py), once;
    when that fails or the fault asks for a retry, it falls back to ``lock_mmap:``."""
    regs = task
    mm = task.mm
    flags = FAULT_FLAG_DEFAULT

    # (kernel-mode execution of user memory, kprobes, reserved bits, SMAP: user accesses
    # only; faulthandler_disabled(): never in user mode)
    if mm is None:
        bad_area_nosemaphore(regs, error_code, address)
        return

    if error_code & X86_PF_WRITE:
        flags |= FAULT_FLAG_WRITE
    if error_code & X86_PF_INSTR:
        flags |= FAULT_FLAG_INSTRUCTION
    flags |= FAULT_FLAG_USER                            # user_mode(regs)

    # (is_vsyscall_vaddr: no vsyscall page)
    if per_vma_locks(mm):                               # (FAULT_FLAG_USER: always here)
        vma = lock_vma_under_rcu(mm, address)
        if vma is not None:
            if access_error(error_code, vma):
                bad_area_access_error(regs, error_code, address, None, vma)
                return
            fault = handle_mm_fault(vma, address, flags | FAULT_FLAG_VMA_LOCK, regs)
            if not fault & (VM_FAULT_RETRY | VM_FAULT_COMPLETED):
                vma_end_read(vma)
            if not fault & VM_FAULT_RETRY:
                _fault_done(regs, error_code, address, fault)
                return
            # (VM_FAULT_MAJOR: FAULT_FLAG_TRIED; fault_signal_pending: none) lock_mmap:
    while True:                                         # retry:
        vma = lock_mm_and_find_vma(mm, address, regs)
        if vma is None:
            bad_area_nosemaphore(regs, error_code, address)
            return

        # Ok, we have a good vm_area for this memory access, so we can handle it..
        if access_error(error_code, vma):
            bad_area_access_error(regs, error_code, address, mm, vma)
            return

        fault = handle_mm_fault(vma, address, flags, regs)

        # (fault_signal_pending: no pending signals in the model)

        # The fault is fully completed (including releasing mmap lock)
        if fault & VM_FAULT_COMPLETED:
            return

        # If we need to retry the mmap_lock has already been released.
        if fault & VM_FAULT_RETRY:
            flags |= FAULT_FLAG_TRIED
            continue
        break

    mmap_read_unlock(mm)
    _fault_done(regs, error_code, address, fault)


def _fault_done(regs, error_code: int, address: int, fault: int) -> None:
    """do_user_addr_fault()'s ``done:`` tail: turn a VM_FAULT_ERROR into a signal."""
    if not fault & VM_FAULT_ERROR:
        return

    if fault & VM_FAULT_OOM:
        # pagefault_out_of_memory(): unreachable, the model's allocator never fails.
        raise KernelBug(f"VM_FAULT_OOM at {address:#x}: allocation failure is not modelled")
    if fault & (VM_FAULT_SIGBUS | VM_FAULT_HWPOISON | VM_FAULT_HWPOISON_LARGE):
        do_sigbus(regs, error_code, address, fault)
    elif fault & VM_FAULT_SIGSEGV:
        bad_area_nosemaphore(regs, error_code, address)
    else:
        raise KernelBug(f"BUG: unexpected vm_fault_t {fault:#x}")


def handle_page_fault(task, error_code: int, address: int) -> None:
    """arch/x86/mm/fault.c handle_page_fault(): kernel or user half of the address space."""
    if fault_in_kernel_space(address):
        do_kern_addr_fault(task, error_code, address)
    else:
        do_user_addr_fault(task, error_code, address)


def exc_page_fault(task, error_code: int, address: int) -> None:
    """arch/x86/mm/fault.c exc_page_fault(): the #PF entry (CR2 = *address*), and
    irqentry_exit()'s return to user space (exit_to_user_mode_prepare's lockdep check; a
    fault from user space always returns there)."""
    # (kvm async PF, irqentry state, tracing: not modelled)
    handle_page_fault(task, error_code, address)
    if error_code & X86_PF_USER:
        lockdep_sys_exit(task.mm.machine)


def user_access(task, cpu, addr: int, write: bool, value: int = 0):
    """One user load (``write=False``: returns the byte read) or store (``write=True``:
    stores *value*, returns None) by *task* on *cpu*.

    The CPU is switched to the task's mm first if it is running another one
    (cpu.switch_mm). Then, as the hardware does: translate (a TLB hit uses the cached
    translation even if the PTE is gone; a miss walks the tables and fills the TLB); on a
    #PF run the fault handler (exc_page_fault) and restart the instruction; otherwise access
    the frame. Raises :class:`SigSegv` or :class:`SigBus` when the fault handler signals."""
    if not 0 <= addr < (1 << 64):
        raise ValueError(f"address {addr!r} is not a 64-bit value")
    if write and not 0 <= value <= 0xFF:
        raise ValueError(f"a store writes one byte; {value!r} does not fit")
    mm = task.mm
    if not runs_mm(cpu, mm):
        switch_mm(cpu, mm)
    if fault_in_kernel_space(addr):
        # The kernel half is mapped supervisor-only (or the address is non-canonical): a user
        # access to it is a protection fault the kernel turns into SIGSEGV.
        exc_page_fault(task, X86_PF_USER | X86_PF_PROT | (X86_PF_WRITE if write else 0), addr)
    restarts = 0
    while True:
        try:
            entry = mmu_translate(cpu, mm, addr, write)
        except Fault as fault:
            exc_page_fault(task, fault_error_code(fault), fault.addr)
            restarts += 1
            if sched.RT is None and restarts > MAX_SEQUENTIAL_RESTARTS:
                raise sched.Deadlock(f"{sched.current().name}: the access at {addr:#x} "
                                     f"faults forever (single-threaded run)")
            continue
        return mmu_access_data(cpu, mm, addr, entry, write, value)
