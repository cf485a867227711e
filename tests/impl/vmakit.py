"""A small fixture for the mmap/munmap/VMA tests: a Machine, an mm, a task, and the model's
entry points called directly (impl/mmap.py, impl/vma.py), without the syscall layer."""

from __future__ import annotations

from unmapcheck.impl import sched
from unmapcheck.impl.constants import (MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED,
                                       PAGE_SIZE, PMD_SIZE, PROT_READ, PROT_WRITE)
from unmapcheck.impl.filemap import File
from unmapcheck.impl.machine import Machine, Tunables
from unmapcheck.impl.mm_types import mm_struct
from unmapcheck.impl import mmap as _mmap
from unmapcheck.impl.pgtable import iter_ptes, iter_tables, lookup_pte
from unmapcheck.impl.pte import PTE_NONE
from unmapcheck.impl.task import task_struct
from unmapcheck.impl.x86_fault import user_access

P = PAGE_SIZE
#: A PMD-aligned (2 MiB) base for test mappings, far below the top-down mmap base.
BASE = 0x10000000
assert BASE % PMD_SIZE == 0
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
SHANON = MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED


class Env:
    def __init__(self, era: str = "6.18", fixes_off=(), cpus: int = 2, **tunables):
        self.machine = Machine(cpus=cpus, era=era, fixes_off=fixes_off,
                               tunables=Tunables(**tunables))
        self.mm = mm_struct(self.machine)
        self.task = task_struct(self.machine, self.mm)

    # --- system calls (the entry points system.py calls) --------------------------------
    def mmap(self, addr, length, prot=RW, flags=ANON, file=None, pgoff=0) -> int:
        return _mmap.ksys_mmap_pgoff(self.mm, addr, length, prot, flags, file, pgoff)

    def munmap(self, addr, length) -> int:
        return getattr(_mmap, "__vm_munmap")(self.mm, addr, length, True)

    def memfd(self, npages: int) -> File:
        return File(self.machine, "memfd", npages * P)

    # --- user accesses ------------------------------------------------------------------
    def touch(self, addr: int, write: bool = True, cpu: int = 0, value: int = 0x5A):
        return user_access(self.task, self.machine.cpus[cpu], addr, write, value)

    # --- views --------------------------------------------------------------------------
    def layout(self, base: int = BASE):
        """The VMAs as (start page, end page, pgoff) relative to *base*, like the tests of the
        real kernel's /proc/self/maps."""
        return [((v.vm_start - base) // P, (v.vm_end - base) // P, v.vm_pgoff)
                for v in self.mm.mm_mt]

    def vmas(self):
        return list(self.mm.mm_mt)

    def pte(self, addr: int):
        ptep = lookup_pte(self.mm, addr)
        if ptep is None:
            return PTE_NONE
        return ptep.table.table.get(ptep.idx, PTE_NONE)

    def ptes(self):
        return [(addr, pte) for addr, pte, _ in iter_ptes(self.mm)]

    def tables(self):
        """(level, base) of every page-table page reachable from the pgd, pgd included."""
        return [(level, base) for level, base, _ in iter_tables(self.mm)]

    def tlb_entries(self, start: int, end: int):
        out = []
        for c in self.machine.cpus:
            for (mm_id, vpn), e in c.tlb.items():
                if mm_id == self.mm.id and start <= vpn * P < end:
                    out.append((c.id, vpn * P))
        return out


class Recorder:
    """A sequential sched runtime that records the labels of the scheduling points and the
    events (to check the order of lock operations and zaps)."""

    def __init__(self):
        self.labels: list[str] = []
        self.steps: list[tuple[str, tuple, tuple]] = []
        self.events: list[tuple[str, dict]] = []

    def point(self, label, reads, writes, wait, adds=()):
        if wait is not None and not wait():
            raise sched.Deadlock(f"{label} would block in a sequential run")
        self.labels.append(label)
        # Every object the step touches (a read lock reads the writer side and adds to the
        # reader count).
        self.steps.append((label, tuple(reads), tuple(writes) + tuple(adds)))

    @staticmethod
    def _on(lock, touched) -> bool:
        return lock.obj in touched or getattr(lock, "readers_obj", None) in touched

    def lock_ops(self, lock) -> list[str]:
        """The labels of the steps that operate on *lock* (an RwSem or SpinLock)."""
        return [label for label, reads, touched in self.steps
                if self._on(lock, touched + reads)]

    def index(self, label: str, lock=None) -> int:
        """The position of the first step called *label* (on *lock*, if given)."""
        for i, (lbl, reads, touched) in enumerate(self.steps):
            if lbl == label and (lock is None or self._on(lock, touched + reads)):
                return i
        raise ValueError(label)

    def event(self, kind, info):
        self.events.append((kind, info))

    def __enter__(self):
        sched.install(self)
        return self

    def __exit__(self, *exc):
        sched.uninstall()
        return False
