"""powerpc Book3S-64 radix MMU TLB and page-walk-cache invalidation, the model's third
architecture (``arch = "ppc64"``), as Linux 6.18 has it: arch/powerpc/mm/book3s64/radix_tlb.c
(radix__tlb_flush, __radix__flush_tlb_range_psize, radix__flush_tlb_range,
radix__flush_tlb_mm, radix__flush_all_mm) and arch/powerpc/include/asm/tlb.h
(tlb_needs_table_invalidate() is radix_enabled()).

A radix invalidation names what it drops with its RIC field (asm/tlbflush-radix.h):
RIC_FLUSH_TLB (0) the TLB only, RIC_FLUSH_PWC (1) the page-walk cache only, RIC_FLUSH_ALL (2)
both (and the process-table-entry cache). The PWC is flushed per PID, never per address: a
range flush that freed tables is a PID-wide PWC flush followed by per-page TLB flushes. A
TLB-only flush leaves the PWC intact, which is why freeing a table before the gather's flush
(0ed1325967ab's bug, tlb_needs_table_invalidate() false on radix) leaves a walk cache
pointing at it.

Simplifications, stated:
* Radix only (no hash MMU), on bare metal with broadcast tlbie (CONFIG_PPC_RADIX_BROADCAST_TLBIE,
  the powernv/pseries default): the flush reaches every CPU of mm_cpumask as one step that,
  like the model's other flushes, completes at the targets' instruction boundaries
  (ptesync/tlbsync). flush_type_needed() is reduced to LOCAL when this CPU is the mm's only
  one (the 256-entry local ceiling) and GLOBAL otherwise (33); its cpumask trimming and the
  nest-MMU (copro) escalation are not modelled.
* 4 KiB base pages and the model's x86-64 table geometry (radix 4K has a 13-bit PGD index);
  the gather's page size (MMU_GATHER_PAGE_SIZE) is always the base size, so
  radix_get_mmu_psize() never fails.
* MMU_LAZY_TLB_SHOOTDOWN (exit_flush_lazy_tlbs before a fullmm flush) is not modelled: the
  model has no lazy-TLB mode.
"""

from __future__ import annotations

from . import sched
from .constants import PAGE_SHIFT, PMD_SIZE

RIC_FLUSH_TLB = 0
RIC_FLUSH_PWC = 1
RIC_FLUSH_ALL = 2
_RIC_NAMES = {RIC_FLUSH_TLB: "RIC_FLUSH_TLB", RIC_FLUSH_PWC: "RIC_FLUSH_PWC",
              RIC_FLUSH_ALL: "RIC_FLUSH_ALL"}

#: radix_tlb.c tlb_single_page_flush_ceiling (global flushes) and
#: tlb_local_single_page_flush_ceiling (POWER9_TLB_SETS_RADIX * 2, local flushes).
TLB_SINGLE_PAGE_FLUSH_CEILING = 33
TLB_LOCAL_SINGLE_PAGE_FLUSH_CEILING = 256


def _flush_is_local(mm) -> bool:
    """flush_type_needed(): FLUSH_TYPE_LOCAL when the running CPU is the only one the mm has
    been active on (the model's reduction: see the module docstring)."""
    return mm.cpumask <= {sched.current().cpu}


def _ceiling(mm) -> int:
    return TLB_LOCAL_SINGLE_PAGE_FLUSH_CEILING if _flush_is_local(mm) else \
        TLB_SINGLE_PAGE_FLUSH_CEILING


def _tlbie(machine, mm, label: str, ric: int, start: int = 0, end: int = 0,
           pages: bool = False) -> None:
    """One invalidation sequence (tlbie/tlbiel ... ptesync) on every CPU of the mm: with
    RIC_FLUSH_PWC or RIC_FLUSH_ALL the PID's whole page-walk cache, with RIC_FLUSH_TLB or
    RIC_FLUSH_ALL its TLB entries (of [start, end) page by page when *pages*, else all)."""
    from .cpu import _drop_leaf, _drop_walk, _ipi, _targets
    from .constants import ULONG_MAX
    targets = _targets(machine, mm)
    _ipi(machine, mm, label, targets)
    for cpu in targets:
        if ric in (RIC_FLUSH_PWC, RIC_FLUSH_ALL):
            _drop_walk(cpu, mm.id, 0, ULONG_MAX)
        if ric in (RIC_FLUSH_TLB, RIC_FLUSH_ALL):
            if pages:
                _drop_leaf(cpu, mm.id, start, end)
            else:
                _drop_leaf(cpu, mm.id, 0, ULONG_MAX)


def _flush_event(mm, start: int, end: int, pwc: bool) -> None:
    from .cpu import TLB_FLUSH_ALL
    sched.event("tlb_flush", mm=mm, start=start, end=end if end else TLB_FLUSH_ALL,
                freed_tables=pwc)


def __radix__flush_tlb_range_psize(machine, mm, start: int, end: int, also_pwc: bool) -> None:
    """radix_tlb.c __radix__flush_tlb_range_psize(): above the ceiling one PID-wide flush
    (RIC_FLUSH_ALL when tables were freed, else RIC_FLUSH_TLB); otherwise, when tables were
    freed, a PID-wide PWC flush, then a TLB flush of each page."""
    nr_pages = (end - start) >> PAGE_SHIFT
    if nr_pages > _ceiling(mm):
        _tlbie(machine, mm, "_tlbie_pid", RIC_FLUSH_ALL if also_pwc else RIC_FLUSH_TLB)
        _flush_event(mm, 0, 0, also_pwc)
        return
    if also_pwc:
        _tlbie(machine, mm, "__tlbie_pid(RIC_FLUSH_PWC)", RIC_FLUSH_PWC)
    _tlbie(machine, mm, "_tlbie_va_range", RIC_FLUSH_TLB, start, end, pages=True)
    _flush_event(mm, start, end, also_pwc)


def radix__flush_all_mm(machine, mm) -> None:
    """radix_tlb.c __flush_all_mm(mm, true): RIC_FLUSH_ALL for the PID."""
    _tlbie(machine, mm, "_tlbie_pid(RIC_FLUSH_ALL)", RIC_FLUSH_ALL)
    _flush_event(mm, 0, 0, True)


def radix__flush_tlb_mm(machine, mm) -> None:
    """radix_tlb.c radix__flush_tlb_mm(): RIC_FLUSH_TLB for the PID (the PWC stays)."""
    _tlbie(machine, mm, "_tlbie_pid(RIC_FLUSH_TLB)", RIC_FLUSH_TLB)
    _flush_event(mm, 0, 0, False)


def radix__flush_tlb_range(machine, mm, start: int, end: int) -> None:
    """radix_tlb.c radix__flush_tlb_range() -> __radix__flush_tlb_range(): a range of at
    least PMD_SIZE also flushes the PWC ("mremap() depends on this behaviour"); above the
    ceiling one PID-wide flush, RIC_FLUSH_ALL (the THP 2M pass is not modelled: no THP)."""
    nr_pages = (end - start) >> PAGE_SHIFT
    if nr_pages > _ceiling(mm):
        radix__flush_all_mm(machine, mm)
        return
    flush_pwc = end - start >= PMD_SIZE
    if flush_pwc:
        _tlbie(machine, mm, "__tlbie_pid(RIC_FLUSH_PWC)", RIC_FLUSH_PWC)
    _tlbie(machine, mm, "__tlbie_va_range", RIC_FLUSH_TLB, start, end, pages=True)
    _flush_event(mm, start, end, flush_pwc)


def radix__tlb_flush(tlb) -> None:
    """radix_tlb.c radix__tlb_flush(): a fullmm gather flushes everything of the PID
    (RIC_FLUSH_ALL: "A 'fullmm' flush must always do a flush_all_mm (RIC=2) flush"); a range
    flush is radix__flush_tlb_pwc_range_psize() when tables were freed, else
    radix__flush_tlb_range_psize()."""
    machine = tlb.mm.machine
    if tlb.fullmm:
        radix__flush_all_mm(machine, tlb.mm)
        return
    __radix__flush_tlb_range_psize(machine, tlb.mm, tlb.start, tlb.end,
                                   also_pwc=bool(tlb.freed_tables))


def radix_enabled(machine) -> bool:
    """arch/powerpc/include/asm/mmu.h radix_enabled(): the model's ppc64 is radix."""
    return machine.arch == "ppc64"
