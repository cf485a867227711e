"""A small fixture for the fault-path tests: a Machine, an mm, a task and hand-built VMAs
(vm_area_struct + mm->mm_mt store), independent of the mmap() implementation."""

from __future__ import annotations

from unmapcheck.impl.constants import (PAGE_SIZE, PMD_SIZE, VM_LOCKED, VM_MAYEXEC,
                                       VM_MAYREAD, VM_MAYSHARE, VM_MAYWRITE, VM_READ, VM_SHARED,
                                       VM_WRITE)
from unmapcheck.impl.filemap import File, generic_perform_write
from unmapcheck.impl.machine import Machine, Tunables
from unmapcheck.impl.mm_types import mm_struct, vm_area_struct
from unmapcheck.impl.pgtable import lookup_pte
from unmapcheck.impl.pte import PTE_NONE
from unmapcheck.impl.task import task_struct

#: A PMD-aligned base address for the test mappings (pte_index(BASE) == 0).
BASE = 0x7F0000000000
assert BASE % PMD_SIZE == 0

RW = VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
RO = VM_READ | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
NONE = VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC
SHARED = VM_SHARED | VM_MAYSHARE
LOCKED = VM_LOCKED


class Env:
    def __init__(self, cpus: int = 2, fault_around_pages: int = 16, era: str = "6.18"):
        self.machine = Machine(cpus=cpus, era=era,
                               tunables=Tunables(fault_around_pages=fault_around_pages))
        self.mm = mm_struct(self.machine)
        self.task = task_struct(self.machine, self.mm)
        self.cpu = self.machine.cpus

    def vma(self, start: int, npages: int, flags: int, file: File | None = None,
            pgoff: int = 0) -> vm_area_struct:
        vma = vm_area_struct(self.mm, start, start + npages * PAGE_SIZE, flags, pgoff, file)
        self.mm.mm_mt.store(vma)
        self.mm.map_count += 1
        return vma

    def memfd(self, npages: int, populate=None, size: int | None = None) -> File:
        """A memfd of *npages* pages (or *size* bytes); the pages whose index is in
        *populate* (all when None) are put in the page cache by a write(2) of one byte."""
        f = File(self.machine, "memfd", size if size is not None else npages * PAGE_SIZE)
        for i in range(npages):
            if populate is None or i in populate:
                assert generic_perform_write(f, i * PAGE_SIZE, bytes([0x40 + i % 64])) == 1
        return f

    def pte(self, addr: int):
        ptep = lookup_pte(self.mm, addr)
        if ptep is None:
            return PTE_NONE
        return ptep.table.table.get(ptep.idx, PTE_NONE)

    def page_at(self, addr: int):
        pte = self.pte(addr)
        return self.machine.zone.pfn_to_page(pte.pfn)

    def present(self, start: int, npages: int) -> list[int]:
        """Indexes of the pages of [start, start + npages) whose PTE is present."""
        return [i for i in range(npages) if self.pte(start + i * PAGE_SIZE).kind == 1]

    @property
    def rss(self) -> list[int]:
        return list(self.mm.rss_stat)
