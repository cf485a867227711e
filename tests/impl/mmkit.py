"""Fixtures for the madvise / oom / fork / exec / mprotect / mlock tests: a Machine, an mm made
by fork.mm_alloc, a task that is ``current`` on a CPU, hand-built VMAs (vm_area_struct stored
in mm->mm_mt), pages brought in by user accesses (x86_fault.user_access -> handle_mm_fault),
and views of the resulting state (PTEs, rss, mapcount, TLBs, allocated frames).

Also a small ctypes harness for the real kernel of this machine (``real_*``), used to check
the model's error returns against it; the tests that use it are skipped off Linux x86-64."""

from __future__ import annotations

import ctypes
import errno
import os
import platform

import pytest

from unmapcheck.impl import sched
from unmapcheck.impl.constants import (PAGE_SIZE, PMD_SIZE, VM_ACCOUNT, VM_LOCKED, VM_MAYEXEC, VM_MAYREAD,
                                       VM_MAYSHARE, VM_MAYWRITE, VM_READ, VM_SHARED, VM_WRITE)
from unmapcheck.impl.machine import Machine, Tunables
from unmapcheck.impl.mm_types import vm_area_struct
from unmapcheck.impl.page import page_mapcount
from unmapcheck.impl.pgtable import iter_ptes, iter_tables, lookup_pte
from unmapcheck.impl.pte import PTE_NONE, PRESENT
from unmapcheck.impl.task import task_struct
from unmapcheck.impl.x86_tlb import translation_usable
from schedkit import Recorder  # noqa: F401  (re-exported for the tests)

#: A PMD-aligned base address for the test mappings.
BASE = 0x7F0000000000
assert BASE % PMD_SIZE == 0

RW = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
RO = VM_READ | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
NONE = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
SHARED = VM_SHARED | VM_MAYSHARE
LOCKED = VM_LOCKED


def page(i: int) -> int:
    return BASE + i * PAGE_SIZE


class Env:
    """One machine, one process (task + mm) that is ``current`` on CPU 0."""

    def __init__(self, cpus: int = 2, arch: str = "x86", era: str = "6.18", fixes_off=(),
                 capable: bool = True):
        from unmapcheck.impl.fork import mm_alloc
        sched.uninstall()
        self.machine = Machine(cpus=cpus, arch=arch, era=era, fixes_off=fixes_off,
                               tunables=Tunables(capable=capable))
        self.mm = mm_alloc(self.machine)
        self.task = task_struct(self.machine, self.mm, "t0")
        self.ctx = sched.Context(name="t0", cpu=0, task=self.task)
        sched.set_current(self.ctx)
        self.cpus = self.machine.cpus

    # --- building state --------------------------------------------------------------------
    def vma(self, start: int, npages: int, flags: int, file=None, pgoff=None, mm=None):
        """A VMA stored directly in the tree (as mmap would leave it). An anonymous VMA's
        pgoff is its start >> PAGE_SHIFT, and a private writable one is VM_ACCOUNT, as mmap
        sets them."""
        mm = mm or self.mm
        if pgoff is None:
            pgoff = 0 if file is not None else start >> 12
        if flags & VM_WRITE and not flags & VM_SHARED:
            flags |= VM_ACCOUNT
        vma = vm_area_struct(mm, start, start + npages * PAGE_SIZE, flags, pgoff, file)
        mm.mm_mt.store(vma)
        mm.map_count += 1
        if file is not None:
            from unmapcheck.impl.vma import vma_link_file
            vma_link_file(vma)                   # into mapping->i_mmap, as vma_link() does
        from unmapcheck.impl.mmap import vm_stat_account
        vm_stat_account(mm, flags, npages)
        return vma

    def memfd(self, npages: int):
        from unmapcheck.impl.filemap import File
        return File(self.machine, "memfd", npages * PAGE_SIZE)

    def on(self, cpu: int, task=None):
        """Run the next kernel entry as *task* (default: ours) on *cpu*."""
        self.ctx.cpu = cpu
        self.ctx.task = task or self.task
        return self

    def store(self, addr: int, value: int = 0x5A, cpu: int = 0, task=None):
        from unmapcheck.impl.x86_fault import user_access
        self.on(cpu, task)
        t = task or self.task
        return user_access(t, self.cpus[cpu], addr, True, value)

    def load(self, addr: int, cpu: int = 0, task=None):
        from unmapcheck.impl.x86_fault import user_access
        self.on(cpu, task)
        t = task or self.task
        return user_access(t, self.cpus[cpu], addr, False)

    def touch(self, start: int, npages: int, write: bool = True, cpu: int = 0, task=None):
        for i in range(npages):
            a = start + i * PAGE_SIZE
            if write:
                self.store(a, 0x40 + i % 64, cpu, task)
            else:
                self.load(a, cpu, task)

    # --- views -----------------------------------------------------------------------------
    def pte(self, addr: int, mm=None):
        ptep = lookup_pte(mm or self.mm, addr)
        if ptep is None or ptep.table.table is None:
            return PTE_NONE
        return ptep.table.table.get(ptep.idx, PTE_NONE)

    def page_at(self, addr: int, mm=None):
        return self.machine.zone.pfn_to_page(self.pte(addr, mm).pfn)

    def present(self, start: int, npages: int, mm=None) -> list[int]:
        return [i for i in range(npages) if self.pte(start + i * PAGE_SIZE, mm).kind == PRESENT]

    def rss(self, mm=None) -> list[int]:
        return list((mm or self.mm).rss_stat)

    def tlb_has(self, cpu: int, addr: int, mm=None) -> bool:
        """CPU *cpu* can use a translation of *addr* (an x86 CPU keeps the entries of an mm
        it switched away from under its PCID, unusable until a flushing switch back:
        impl/x86_tlb.py translation_usable)."""
        mm = mm or self.mm
        c = self.cpus[cpu]
        return (mm.id, addr >> 12) in c.tlb and \
            translation_usable(self.machine, c, mm.id, leaf=True)

    def allocated(self) -> int:
        return self.machine.zone.nr_allocated()

    def check_exact(self, mm=None):
        """rss and mapcount exact: each counter equals the PTEs of its kind; each mapped
        page's mapcount equals the PTEs (in every live mm) that map it."""
        from unmapcheck.impl.mm_types import mm_counter
        mm = mm or self.mm
        counts = [0, 0, 0, 0]
        for _, pte, _ in iter_ptes(mm):
            if pte.kind == PRESENT:
                if pte.special:
                    continue
                counts[mm_counter(self.machine.zone.pfn_to_page(pte.pfn))] += 1
            elif pte.kind == 2:
                counts[2] += 1
            elif pte.kind == 3:             # a migration entry counts as its page
                counts[mm_counter(self.machine.zone.pfn_to_page(pte.pfn))] += 1
        assert counts == list(mm.rss_stat), (counts, mm.rss_stat)
        maps: dict[int, int] = {}
        for m in self.machine.mms:
            for _, pte, _ in iter_ptes(m):
                if pte.kind == PRESENT and not pte.special:
                    maps[pte.pfn] = maps.get(pte.pfn, 0) + 1
        for pfn, n in maps.items():
            assert page_mapcount(self.machine.zone.pfn_to_page(pfn)) == n, (pfn, n)

    def tables(self, mm=None) -> int:
        return len(iter_tables(mm or self.mm))


# =================================================================================================
# The real kernel, through ctypes
# =================================================================================================
REAL = platform.system() == "Linux" and platform.machine() == "x86_64"
needs_real_kernel = pytest.mark.skipif(not REAL, reason="needs Linux x86-64 (real-kernel oracle)")

SYS_mmap, SYS_mprotect, SYS_munmap, SYS_madvise = 9, 10, 11, 28
SYS_mlock, SYS_munlock, SYS_mlock2 = 149, 150, 325
MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED, MAP_NORESERVE = 0x02, 0x20, 0x10, 0x4000


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def real_syscall(nr: int, *args: int) -> int:
    """A raw syscall; returns the result or -errno."""
    libc = _libc()
    libc.syscall.restype = ctypes.c_long
    r = libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a & (2 ** 64 - 1)) for a in args])
    if r == -1:
        return -ctypes.get_errno()
    return r


class RealWindow:
    """A private window of the real address space: two anonymous VMAs [0, 4) and [6, 10)
    (pages, relative to the window), all written, with a hole at [4, 6)."""

    def __init__(self, npages: int = 64):
        self.npages = npages
        # One PROT_NONE guard page on each side: a VMA at the window's edge could otherwise
        # merge with an anonymous neighbour the interpreter mapped there (the window's VMA
        # then starts outside it and vmas() does not see it).
        outer = real_syscall(SYS_mmap, 0, (npages + 2) * PAGE_SIZE, 0,
                             MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        assert outer > 0
        self.outer = outer
        self.base = outer + PAGE_SIZE

    def layout(self, vmas=((0, 4, 3), (6, 4, 3)), touch=True):
        real_syscall(SYS_munmap, self.base, self.npages * PAGE_SIZE)
        for start, n, prot in vmas:
            a = self.base + start * PAGE_SIZE
            flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
            assert real_syscall(SYS_mmap, a, n * PAGE_SIZE, prot, flags, -1, 0) == a
            if touch and prot & 2:
                for i in range(n):
                    ctypes.c_char.from_address(a + i * PAGE_SIZE).value = b"x"

    def close(self):
        real_syscall(SYS_munmap, self.outer, (self.npages + 2) * PAGE_SIZE)

    def vmas(self) -> list:
        """The VMAs inside the window from /proc/self/smaps, as (start page, end page,
        perms, Rss pages, Locked pages)."""
        out = []
        cur = None
        with open("/proc/self/smaps") as f:
            for line in f:
                parts = line.split()
                head = parts[0]
                if "-" in head and not head.endswith(":"):
                    lo, hi = (int(x, 16) for x in head.split("-"))
                    if self.base <= lo < self.base + self.npages * PAGE_SIZE:
                        cur = [(lo - self.base) // PAGE_SIZE, (hi - self.base) // PAGE_SIZE,
                               parts[1], 0, 0]
                        out.append(cur)
                    else:
                        cur = None
                elif cur is not None and head in ("Rss:", "Locked:"):
                    cur[3 if head == "Rss:" else 4] = int(parts[1]) // 4
        return [tuple(v) for v in out]


def model_vmas(env: "Env", base: int = BASE, npages: int = 64) -> list:
    """The model's VMAs in [base, base + npages pages) in RealWindow.vmas()'s shape."""
    from unmapcheck.impl.mm_types import vma_perms
    out = []
    for v in env.mm.mm_mt:
        if base <= v.vm_start < base + npages * PAGE_SIZE:
            n = (v.vm_end - v.vm_start) // PAGE_SIZE
            pres = [v.vm_start + i * PAGE_SIZE for i in env.present(v.vm_start, n)]
            rss = [a for a in pres if not env.pte(a).special]
            locked = len(rss) if v.vm_flags & VM_LOCKED else 0
            out.append(((v.vm_start - base) // PAGE_SIZE, (v.vm_end - base) // PAGE_SIZE,
                        vma_perms(v), len(rss), locked))
    return out


def real_vmlck_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    return 0


def errname(r: int) -> str:
    return "0" if r == 0 else ("-" + errno.errorcode[-r] if r < 0 else str(r))


del os
