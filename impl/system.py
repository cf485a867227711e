"""The syscall API: processes on the modelled machine, called like Linux's system calls.

    from unmapcheck.impl import System, PROT_READ, PROT_WRITE, MAP_PRIVATE, MAP_ANONYMOUS
    s = System(cpus=2)
    p = s.spawn()
    fd = s.memfd_create("f", 8 * 4096)
    addr = p.mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    p.store(addr, 0x41, cpu=0); p.load(addr, cpu=1)
    p.munmap(addr, 4096)

Return values are the kernel's: an address, 0, or a negative errno. A user access that the
kernel answers with a signal raises :class:`SigSegv` / :class:`SigBus` carrying the address.
``maps()`` and ``smaps()`` are shaped like /proc/PID/maps and /proc/PID/smaps.

Each call enters the kernel the way the syscall does (arch/x86/kernel/sys_x86_64.c for mmap,
the SYSCALL_DEFINEs of mm/mmap.c, mm/mprotect.c, mm/madvise.c, mm/mlock.c, kernel/fork.c,
fs/exec.c, kernel/exit.c) and, on return to user space, reports the event the invariants are
checked at. Simplifications: file descriptors are one table for the whole system (a memfd is
visible to every process, as if inherited); a process's threads are its calls on different
CPUs (CLONE_VM threads share the mm).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import sched
from .locks import lockdep_sys_exit
from .constants import (EBADF, EINVAL, MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS,
                        PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, VM_LOCKED)
from .machine import Machine, Tunables
from .pgtable import lookup_pte
from .pte import PRESENT, SWAP
from .x86_fault import SigBus, SigSegv


@dataclass(frozen=True)
class MapsEntry:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    offset: int
    file: Optional[int]
    name: str

    def __str__(self) -> str:
        return f"{self.start:x}-{self.end:x} {self.perms} {self.offset:08x} 00:00 0 {self.name}"


class System:
    """A machine with processes on it."""

    def __init__(self, cpus: int = 2, arch: str = "x86", era: str = "6.18",
                 fixes_off: tuple[str, ...] | list[str] = (),
                 tunables: Tunables | None = None, vendor: str = "intel"):
        self.machine = Machine(cpus=cpus, arch=arch, era=era, fixes_off=fixes_off,
                               tunables=tunables, vendor=vendor)
        self.processes: list[Process] = []
        self.files: dict[int, object] = {}
        self._next_fd = 3

    @property
    def cpus(self):
        return self.machine.cpus

    @property
    def dmesg(self) -> list[str]:
        return self.machine.dmesg

    def spawn(self, comm: str = "proc") -> "Process":
        """A new process with an empty address space (as after exec of an empty image)."""
        from .fork import mm_alloc
        from .task import task_struct
        mm = mm_alloc(self.machine)
        task = task_struct(self.machine, mm, comm)
        proc = Process(self, task)
        self.processes.append(proc)
        return proc

    def memfd_create(self, name: str, size: int) -> int:
        """memfd_create() + ftruncate(size): a shmem file every process can map by fd."""
        from .filemap import memfd_create
        if size < 0:
            return -EINVAL
        f = memfd_create(self.machine, name, size)
        fd = self._next_fd
        self._next_fd += 1
        self.files[fd] = f
        return fd

    def create_file(self, name: str, size: int) -> int:
        """open(O_CREAT|O_RDWR) + ftruncate(size) of a regular file on a disk filesystem: its
        page cache is written back by writeback (shmem pages are not)."""
        from .filemap import File
        if size < 0:
            return -EINVAL
        f = File(self.machine, name, size, shmem=False)
        fd = self._next_fd
        self._next_fd += 1
        self.files[fd] = f
        return fd

    def file(self, fd: int):
        return self.files.get(fd)

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        """pwrite(2) to a memfd: fs/read_write.c ksys_pwrite64 (a negative position is
        -EINVAL, an unknown fd -EBADF) -> shmem_file_write_iter. Process.pwrite enters the
        kernel and calls this; scenario setup calls it directly (the writer maps nothing).
        A regular file's write path is not modelled (NotModelled)."""
        from .filemap import shmem_file_write_iter
        if offset < 0:                      # ksys_pwrite64: the position, then fdget()
            return -EINVAL
        f = self.file(fd)
        if f is None:
            return -EBADF
        return shmem_file_write_iter(f, offset, bytes(data))


class Process:
    """A process (task + mm) and its system calls."""

    def __init__(self, system: System, task):
        self.system = system
        self.task = task
        self._contexts: dict[int, sched.Context] = {}

    def __repr__(self) -> str:
        return f"<process {self.pid}>"

    @property
    def pid(self) -> int:
        return self.task.pid

    @property
    def mm(self):
        return self.task.mm

    @property
    def machine(self) -> Machine:
        return self.system.machine

    # --- entering and leaving the kernel -------------------------------------------------
    def _enter(self, syscall: str, cpu: int) -> sched.Context:
        if not 0 <= cpu < len(self.machine.cpus):
            raise ValueError(f"cpu {cpu} does not exist (the machine has "
                             f"{len(self.machine.cpus)})")
        if self.task.exited:
            raise ValueError(f"process {self.pid} has exited")
        if sched.RT is not None:
            ctx = sched.current()
        else:
            ctx = self._contexts.get(cpu)
            if ctx is None:
                ctx = self._contexts[cpu] = sched.Context(name=f"p{self.pid}/cpu{cpu}", cpu=cpu)
            sched.set_current(ctx)
        ctx.task = self.task
        ctx.cpu = cpu
        ctx.syscall = syscall
        ctx.start_tick = self.machine.ticks
        ctx.operated = []
        cpu_obj = self.machine.cpus[cpu]
        from .cpu import runs_mm, switch_mm
        if not runs_mm(cpu_obj, self.task.mm):
            switch_mm(cpu_obj, self.task.mm)
        return ctx

    def _leave(self, ctx: sched.Context, result, start: int = 0, end: int = 0):
        """Return to user space. [start, end) is the range the caller asked for (for
        traces); what the call owes user space is the ranges it operated on
        (``ctx.operated``, see sched.operated_on)."""
        # The return to user space is a step of its own that reads every TLB: the invariants
        # checked here relate the TLBs to the page tables (see page.free_unref_page()).
        sched.point("return_to_user", reads=self.machine.zone.tlb_objs)
        lockdep_sys_exit(self.machine)
        syscall = ctx.syscall
        ctx.syscall = ""
        sched.event("return_to_user", syscall=syscall, cpu=ctx.cpu, mm=self.task.mm,
                    start=start, end=end, thread=ctx.name, result=result,
                    start_tick=ctx.start_tick, ranges=list(ctx.operated))
        ctx.operated = []
        return result

    # --- system calls --------------------------------------------------------------------
    def mmap(self, addr: int, length: int, prot: int, flags: int, fd: int = -1,
             offset: int = 0, cpu: int = 0) -> int:
        """arch/x86/kernel/sys_x86_64.c SYSCALL_DEFINE6(mmap) (impl/mmap.py sys_mmap). The
        descriptor is resolved here, to the model's File or None (ksys_mmap_pgoff's fget
        fails with -EBADF on None, after the offset's alignment check, as in the kernel)."""
        from .constants import MAP_ANONYMOUS
        from .mmap import sys_mmap
        ctx = self._enter("mmap", cpu)
        file = None if flags & MAP_ANONYMOUS else self.system.file(fd)
        ret = sys_mmap(self.task.mm, addr, length, prot, flags, file, offset)
        return self._leave(ctx, ret)

    def munmap(self, addr: int, length: int, cpu: int = 0) -> int:
        """mm/mmap.c SYSCALL_DEFINE2(munmap) (impl/mmap.py sys_munmap)."""
        from .mmap import sys_munmap
        ctx = self._enter("munmap", cpu)
        ret = sys_munmap(self.task.mm, addr, length)
        if ret == 0:
            # A successful munmap owes its whole range, holes included: it held mmap_lock
            # for write while it looked, so no other zap of the range can still be pending.
            sched.operated_on(addr, _range_end(addr, length))
        return self._leave(ctx, ret, addr, _range_end(addr, length))

    def mprotect(self, addr: int, length: int, prot: int, cpu: int = 0) -> int:
        """mm/mprotect.c SYSCALL_DEFINE3(mprotect) -> do_mprotect_pkey(start, len, prot, -1)."""
        from .mprotect import do_mprotect_pkey
        ctx = self._enter("mprotect", cpu)
        ret = do_mprotect_pkey(self.task.mm, addr, length, prot, -1)
        return self._leave(ctx, ret, addr, _range_end(addr, length))

    def madvise(self, addr: int, length: int, advice: int, cpu: int = 0) -> int:
        """mm/madvise.c SYSCALL_DEFINE3(madvise) -> do_madvise()."""
        from .madvise import do_madvise
        ctx = self._enter(f"madvise({_advice_name(advice)})", cpu)
        ret = do_madvise(self.task.mm, addr, length, advice)
        return self._leave(ctx, ret, addr, _range_end(addr, length))

    def mlock(self, addr: int, length: int, flags: Optional[int] = None, cpu: int = 0) -> int:
        """mlock(2) (mm/mlock.c SYSCALL_DEFINE2(mlock)), or mlock2(2) when *flags* is given
        (SYSCALL_DEFINE3(mlock2))."""
        from .mlock import sys_mlock, sys_mlock2
        ctx = self._enter("mlock", cpu)
        if flags is None:
            ret = sys_mlock(self.task.mm, addr, length)
        else:
            ret = sys_mlock2(self.task.mm, addr, length, flags)
        return self._leave(ctx, ret)

    def gup_fast_only(self, addr: int, nr_pages: int, write: bool = False,
                      cpu: int = 0) -> int:
        """A kernel user of GUP-fast on this process's memory (a driver pinning a user
        buffer without mmap_lock, as KVM and perf do): get_user_pages_fast_only(), then
        put_page() on each page got. Returns the number of pages got. Not a system call of
        its own: the kernel reaches it from several (the model enters the kernel as
        "gup_fast")."""
        from .gup import FOLL_WRITE, get_user_pages_fast_only
        from .page import folio_put
        ctx = self._enter("gup_fast", cpu)
        pages: list = []
        n = get_user_pages_fast_only(self.task.mm, addr, nr_pages, FOLL_WRITE if write else 0,
                                     pages)
        for page in pages:
            folio_put(page)
        return self._leave(ctx, n)

    def context_switch(self, to: Optional["Process"], cpu: int = 0) -> None:
        """kernel/sched/core.c context_switch(): the CPU this thread runs on switches to a
        thread of process *to* (switch_mm: the CPU loads its mm), or to a kernel thread when
        *to* is None or has exited (enter_lazy_tlb: on x86 the old mm stays loaded,
        lazily). The thread's next operation switches back. Not a system call: the thread
        is preempted where it is (the model enters the kernel as "context_switch")."""
        from .cpu import context_switch_to_kernel_thread, switch_mm
        ctx = self._enter("context_switch", cpu)
        cpu_obj = self.machine.cpus[cpu]
        if to is not None:
            # pick_next_task(): a process that has exited (exit_mm cleared its task's mm) has
            # no thread left to run, so the CPU runs a kernel thread (the idle task) instead
            sched.point("pick_next_task", reads=(("task", to.pid),))
            if to.task.mm is None:
                to = None
        if to is None:
            context_switch_to_kernel_thread(self.machine, cpu_obj)
        else:
            switch_mm(cpu_obj, to.task.mm)
        ctx.syscall = ""

    def munlock(self, addr: int, length: int, cpu: int = 0) -> int:
        """mm/mlock.c SYSCALL_DEFINE2(munlock)."""
        from .mlock import sys_munlock
        ctx = self._enter("munlock", cpu)
        ret = sys_munlock(self.task.mm, addr, length)
        return self._leave(ctx, ret)

    def pwrite(self, fd: int, data: bytes, offset: int, cpu: int = 0) -> int:
        """fs/read_write.c SYSCALL_DEFINE4(pwrite64) on a memfd (System.pwrite:
        shmem_file_write_iter). Returns the bytes written or a negative errno."""
        ctx = self._enter("pwrite64", cpu)
        ret = self.system.pwrite(fd, data, offset)
        return self._leave(ctx, ret)

    def mlockall(self, flags: int, cpu: int = 0) -> int:
        """mm/mlock.c SYSCALL_DEFINE1(mlockall)."""
        from .mlock import sys_mlockall
        ctx = self._enter("mlockall", cpu)
        ret = sys_mlockall(self.task.mm, flags)
        return self._leave(ctx, ret)

    def munlockall(self, cpu: int = 0) -> int:
        """mm/mlock.c SYSCALL_DEFINE0(munlockall)."""
        from .mlock import sys_munlockall
        ctx = self._enter("munlockall", cpu)
        ret = sys_munlockall(self.task.mm)
        return self._leave(ctx, ret)

    def fork(self, cpu: int = 0) -> "Process":
        """kernel/fork.c copy_process -> copy_mm (impl/fork.py) -> dup_mm: the child gets a
        copy of the address space (COW for private pages). A fork that fails is not
        modelled (see impl/fork.py: allocations do not fail there)."""
        from .fork import copy_mm
        from .task import task_struct
        ctx = self._enter("fork", cpu)
        child_task = task_struct(self.machine, None, self.task.comm)
        err = copy_mm(0, child_task, self.task.mm)
        if err:
            raise sched.NotModelled(f"fork failing in copy_mm ({err})")
        child = Process(self.system, child_task)
        self.system.processes.append(child)
        self._leave(ctx, child.pid)
        return child

    def exec(self, cpu: int = 0) -> int:
        """fs/exec.c: bprm_mm_init() builds the new image's mm (its one-page stack VMA),
        then exec_mmap() makes it the task's and mmputs the old one (exit_mmap)."""
        from .exec import bprm_mm_init, exec_mmap
        ctx = self._enter("execve", cpu)
        ret = exec_mmap(self.task, bprm_mm_init(self.machine))
        return self._leave(ctx, ret)

    def exit(self, cpu: int = 0) -> int:
        """kernel/exit.c do_exit -> exit_mm (impl/fork.py) -> mmput."""
        from .fork import exit_mm
        ctx = self._enter("exit", cpu)
        mm = self.task.mm
        # (for the checker: the mm this task works on once task->mm is NULL, as an actor's)
        ctx.mm = mm
        exit_mm(self.task)
        # (model bookkeeping: no CPU runs the dead mm for a user task any more)
        for c in self.machine.cpus:
            if c.active_mm is mm:
                c.active_mm = None
        self.task.exited = True
        sched.event("return_to_user", syscall="exit", cpu=ctx.cpu, mm=mm, start=0, end=0,
                    thread=ctx.name, result=0)
        ctx.syscall = ""
        ctx.mm = None
        return 0

    # --- user accesses -------------------------------------------------------------------
    def load(self, addr: int, cpu: int = 0) -> int:
        """A one-byte load by the process on *cpu* (through that CPU's TLB)."""
        from .x86_fault import user_access
        # "load"/"store" marks the thread busy while the access (and any fault it takes) runs.
        ctx = self._enter("load", cpu)
        try:
            return user_access(self.task, self.machine.cpus[cpu], addr, False, 0)
        finally:
            ctx.syscall = ""

    def store(self, addr: int, value: int, cpu: int = 0) -> None:
        """A one-byte store by the process on *cpu*."""
        from .x86_fault import user_access
        if not 0 <= value <= 255:
            raise ValueError(f"store value must be a byte (0..255), got {value}")
        ctx = self._enter("store", cpu)
        try:
            user_access(self.task, self.machine.cpus[cpu], addr, True, value)
        finally:
            ctx.syscall = ""

    # --- /proc views ---------------------------------------------------------------------
    def maps(self) -> list[MapsEntry]:
        """fs/proc/task_mmu.c show_map_vma(): start, end, perms, offset, name."""
        from .mm_types import vma_perms
        out = []
        if self.task.mm is None:
            return out                  # an exited process: /proc/PID/maps is empty
        for vma in self.task.mm.mm_mt.vmas:
            file = vma.vm_file
            offset = (vma.vm_pgoff << PAGE_SHIFT) if file is not None else 0
            name = f"/memfd:{file.name} (deleted)" if file is not None else ""
            out.append(MapsEntry(vma.vm_start, vma.vm_end, vma_perms(vma), offset,
                                 file.id if file is not None else None, name))
        return out

    def smaps(self) -> list[dict]:
        """fs/proc/task_mmu.c show_smap() -> smaps_pte_entry() -> smaps_account(): per VMA, in
        kB. The shared zero page is not counted (vm_normal_page() returns NULL for it). Pss
        and Locked are the kernel's fixed point: each page adds (PAGE_SIZE << PSS_SHIFT) /
        mapcount (integer division; the whole page when mapped once), and the sum is shown
        as (sum >> PSS_SHIFT) >> 10, so three pages each mapped by three processes show 3 kB,
        not 4."""
        out = []
        mm = self.task.mm
        if mm is None:
            return out                  # an exited process: /proc/PID/smaps is empty
        for vma, entry in zip(mm.mm_mt.vmas, self.maps()):
            acc = {"Size": (vma.vm_end - vma.vm_start) >> 10, "Rss": 0, "Pss": 0,
                   "Shared_Clean": 0, "Shared_Dirty": 0, "Private_Clean": 0,
                   "Private_Dirty": 0, "Referenced": 0, "Anonymous": 0, "Swap": 0,
                   "Locked": 0}
            pss_total = pss_locked = 0                 # bytes << PSS_SHIFT
            for addr, pte, _table in _ptes_in(mm, vma.vm_start, vma.vm_end):
                if pte.kind == SWAP:
                    acc["Swap"] += PAGE_SIZE >> 10
                    continue
                if pte.kind != PRESENT or pte.special:
                    continue
                page = mm.zone.pfn_to_page(pte.pfn)
                mapcount = page._mapcount + 1
                kb = PAGE_SIZE >> 10
                acc["Rss"] += kb
                pss = PAGE_SIZE << PSS_SHIFT
                if mapcount >= 2:
                    pss //= mapcount
                pss_total += pss
                dirty = pte.dirty or bool(page.flags & 0x10)
                shared = mapcount >= 2
                key = ("Shared_" if shared else "Private_") + ("Dirty" if dirty else "Clean")
                acc[key] += kb
                if pte.young:
                    acc["Referenced"] += kb
                if page.mapping is not None and page.mapping.is_anon:
                    acc["Anonymous"] += kb
                if vma.vm_flags & VM_LOCKED:
                    pss_locked += pss
            acc["Pss"] = (pss_total >> PSS_SHIFT) >> 10
            acc["Locked"] = (pss_locked >> PSS_SHIFT) >> 10
            acc["start"], acc["end"], acc["perms"] = entry.start, entry.end, entry.perms
            out.append(acc)
        return out

    def rss(self) -> dict[str, int]:
        """The mm's counters, as /proc/PID/status RssAnon/RssFile/RssShmem/VmSwap (pages);
        all zero for an exited process."""
        r = self.task.mm.rss_stat if self.task.mm is not None else [0] * 4
        return {"MM_FILEPAGES": r[MM_FILEPAGES], "MM_ANONPAGES": r[MM_ANONPAGES],
                "MM_SWAPENTS": r[MM_SWAPENTS], "MM_SHMEMPAGES": r[MM_SHMEMPAGES]}


# fs/proc/task_mmu.c: PSS is accumulated in fixed point, PAGE_SIZE << PSS_SHIFT per page.
PSS_SHIFT = 12


def _ptes_in(mm, start: int, end: int):
    from .pgtable import iter_ptes
    for addr, pte, table in iter_ptes(mm):
        if start <= addr < end:
            yield addr, pte, table


@sched.model_only
def _range_end(addr: int, length: int) -> int:
    """The end of the page-aligned range a call names (for I1.return and traces)."""
    end = addr + ((length + PAGE_SIZE - 1) & PAGE_MASK)
    return end if end <= (1 << 64) - 1 else 0


def _advice_name(advice: int) -> str:
    from . import constants
    for name in dir(constants):
        if name.startswith("MADV_") and getattr(constants, name) == advice:
            return name
    return str(advice)


__all__ = ["System", "Process", "SigSegv", "SigBus", "MapsEntry", "lookup_pte"]
