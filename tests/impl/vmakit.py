"""A small fixture for the mmap/munmap/VMA tests: a Machine, an mm, a task, and the model's
entry points called directly (impl/mmap.py, impl/vma.py), without the syscall layer."""

from __future__ import annotations

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
from schedkit import Recorder  # noqa: F401  (re-exported for the tests)

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
