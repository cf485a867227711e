"""``struct mmu_gather``: batching the TLB flush and the freeing of pages and page tables.

Models mm/mmu_gather.c (tlb_gather_mmu, tlb_gather_mmu_fullmm, __tlb_remove_folio_pages,
tlb_next_batch, tlb_flush_rmaps, tlb_flush_mmu, tlb_finish_mmu, tlb_remove_table,
tlb_table_flush), include/asm-generic/tlb.h (__tlb_adjust_range, __tlb_reset_range,
tlb_flush_mmu_tlbonly, tlb_remove_tlb_entry, tlb_start_vma, tlb_end_vma, pte_free_tlb ...)
and the architectures' tlb_flush() (arch/x86/include/asm/tlb.h, arch/arm64/include/asm/tlb.h).

The gather is on the stack of the thread that uses it, so its fields need no scheduling
points; what it does to shared state (the flush, freeing pages and tables, the rmap removals,
tlb_flush_pending) goes through the accessors.

The protocol the invariants check: a page or table queued here is freed only by
tlb_flush_mmu_free(), which tlb_flush_mmu() runs after tlb_flush_mmu_tlbonly(); so nothing is
freed before the flush that covers it, unless a flush is skipped or too narrow (the historic
bugs).

Page-table pages go through the table batch of CONFIG_MMU_GATHER_RCU_TABLE_FREE (x86 since
6.15, arm64): invalidated with the TLB flush, then freed by an RCU callback after a grace
period (impl/rcu.py), which is what protects the lockless walkers (GUP-fast,
pte_offset_map()); the batch page's GFP_NOWAIT allocation may fail (an explorer choice), and
then each table is freed on its own (tlb_remove_table_one).

Simplifications: the batch pages and the table batch are Python lists with the kernel's
capacities (Tunables: MMU_GATHER_BUNDLE, MAX_GATHER_BATCH, MAX_GATHER_BATCH_COUNT,
MAX_TABLE_BATCH); no mmu notifiers; page sizes are all PAGE_SIZE.
"""

from __future__ import annotations

from . import sched
from .constants import PAGE_SHIFT, PAGE_SIZE, PGDIR_SHIFT, PMD_SHIFT, PUD_SHIFT, TASK_SIZE, \
    ULONG_MAX, VM_EXEC, VM_HUGETLB, VM_MIXEDMAP, VM_PFNMAP
from .cpu import TLB_FLUSH_ALL, arm64_flush_tlb_mm, arm64_flush_tlb_range
from .x86_tlb import flush_tlb_mm_range
from .mm_types import dec_tlb_flush_pending, inc_tlb_flush_pending, mm_tlb_flush_nested
from .page import Page, folio_put
from .rcu import call_rcu, tlb_remove_table_sync_one

# Kernel capacities (mm/mmu_gather.c, include/asm-generic/tlb.h) for 4 KiB pages.
MMU_GATHER_BUNDLE = 8
MAX_GATHER_BATCH = (PAGE_SIZE - 16) // 8          # 510
MAX_GATHER_BATCH_COUNT = 10000 // MAX_GATHER_BATCH  # 19
MAX_TABLE_BATCH = (PAGE_SIZE - 16) // 8            # 510


class mmu_gather_batch:
    __slots__ = ("pages", "max")

    def __init__(self, max_entries: int):
        self.pages: list[tuple[Page, bool]] = []   # (page, ENCODED_PAGE_BIT_DELAY_RMAP)
        self.max = max_entries


class mmu_gather:
    def __init__(self) -> None:
        self.mm = None
        self.fullmm = False
        self.need_flush_all = False
        self.freed_tables = False
        self.cleared_ptes = self.cleared_pmds = self.cleared_puds = self.cleared_p4ds = False
        self.vma_exec = self.vma_huge = self.vma_pfn = False
        self.delayed_rmap = False
        self.start = 0
        self.end = 0
        self.local = None
        self.batches: list[mmu_gather_batch] = []
        self.active = 0
        self.tables: list[Page] | None = None
        # Model-only: the union of every range this gather adjusted to, so that the pre-fix
        # path of 7a30df49f63a can re-adjust to "the caller's range" after resetting (the
        # 5.1 tlb_finish_mmu took that range as arguments, which 6.18 no longer has).
        self.span_start = ULONG_MAX
        self.span_end = 0

    def __repr__(self) -> str:
        return (f"<mmu_gather mm{self.mm.id} fullmm={int(self.fullmm)} "
                f"range={self.start:#x}-{self.end:#x} freed_tables={int(self.freed_tables)} "
                f"pages={sum(len(b.pages) for b in self.batches)}>")


# --- include/asm-generic/tlb.h -----------------------------------------------------------------
def __tlb_adjust_range(tlb: mmu_gather, address: int, range_size: int) -> None:
    tlb.start = min(tlb.start, address)
    tlb.end = max(tlb.end, address + range_size)
    tlb.span_start = min(tlb.span_start, address)
    tlb.span_end = max(tlb.span_end, address + range_size)


def __tlb_reset_range(tlb: mmu_gather) -> None:
    if tlb.fullmm:
        tlb.start = tlb.end = ULONG_MAX
    else:
        tlb.start = TASK_SIZE
        tlb.end = 0
    tlb.freed_tables = False
    tlb.cleared_ptes = tlb.cleared_pmds = tlb.cleared_puds = tlb.cleared_p4ds = False


def tlb_get_unmap_shift(tlb: mmu_gather) -> int:
    """include/asm-generic/tlb.h tlb_get_unmap_shift(): the stride of what was cleared."""
    if tlb.cleared_ptes:
        return PAGE_SHIFT
    if tlb.cleared_pmds:
        return PMD_SHIFT
    if tlb.cleared_puds:
        return PUD_SHIFT
    if tlb.cleared_p4ds:
        return PGDIR_SHIFT
    return PAGE_SHIFT


def tlb_flush(tlb: mmu_gather) -> None:
    """The architecture's tlb_flush().

    x86 (arch/x86/include/asm/tlb.h): flush [start, end) or everything for a fullmm gather,
    telling flush_tlb_mm_range() whether tables were freed.
    arm64 (arch/arm64/include/asm/tlb.h): a fullmm gather only invalidates the walk cache
    when tables were freed ("the ASID allocator won't reallocate our ASID without
    invalidating the entire TLB") and otherwise does nothing; a range flush is last-level
    only unless tables were freed. Bug 687cb0884a71 depends on that early return.
    ppc64 (arch/powerpc/include/asm/book3s/64/tlbflush.h): radix__tlb_flush().
    """
    machine = tlb.mm.machine
    if machine.arch == "arm64":
        last_level = not tlb.freed_tables
        if tlb.fullmm:
            if not last_level:
                arm64_flush_tlb_mm(machine, tlb.mm)
            return
        arm64_flush_tlb_range(machine, tlb.mm, tlb.start, tlb.end, last_level,
                              1 << tlb_get_unmap_shift(tlb))
        return
    if machine.arch == "ppc64":
        from .radix_tlb import radix__tlb_flush
        radix__tlb_flush(tlb)
        return
    start, end = 0, TLB_FLUSH_ALL
    if not tlb.fullmm and not tlb.need_flush_all:
        start, end = tlb.start, tlb.end
    flush_tlb_mm_range(machine, tlb.mm, start, end, tlb_get_unmap_shift(tlb), tlb.freed_tables)


def tlb_flush_mmu_tlbonly(tlb: mmu_gather) -> None:
    """Flush the TLB for what the gather collected; nothing if nothing was cleared."""
    if not (tlb.freed_tables or tlb.cleared_ptes or tlb.cleared_pmds or tlb.cleared_puds or
            tlb.cleared_p4ds):
        return
    tlb_flush(tlb)
    __tlb_reset_range(tlb)


def tlb_update_vma_flags(tlb: mmu_gather, vma) -> None:
    """include/asm-generic/tlb.h tlb_update_vma_flags()."""
    tlb.vma_huge = bool(vma.vm_flags & VM_HUGETLB)
    tlb.vma_exec = bool(vma.vm_flags & VM_EXEC)
    tlb.vma_pfn |= bool(vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP))


def tlb_start_vma(tlb: mmu_gather, vma) -> None:
    """Nothing for a fullmm gather; flush_cache_range() is a no-op on x86, arm64 and
    powerpc Book3S-64."""
    if tlb.fullmm:
        return
    tlb_update_vma_flags(tlb, vma)


def tlb_end_vma(tlb: mmu_gather, vma) -> None:
    """include/asm-generic/tlb.h tlb_end_vma(): flush at VMA boundaries so the range does
    not grow over the gap between VMAs, unless CONFIG_MMU_GATHER_MERGE_VMAS (selected by
    powerpc, not by x86 or arm64) lets the range span several VMAs."""
    if tlb.fullmm or config_mmu_gather_merge_vmas(tlb.mm.machine):
        return
    tlb_flush_mmu_tlbonly(tlb)


def config_mmu_gather_merge_vmas(machine) -> bool:
    """IS_ENABLED(CONFIG_MMU_GATHER_MERGE_VMAS): arch/powerpc/Kconfig selects it."""
    return machine.arch == "ppc64"


def tlb_free_vmas(tlb: mmu_gather) -> None:
    if tlb.fullmm:
        return
    if tlb.vma_pfn:
        tlb_flush_mmu_tlbonly(tlb)


def tlb_flush_pte_range(tlb: mmu_gather, address: int, size: int) -> None:
    __tlb_adjust_range(tlb, address, size)
    tlb.cleared_ptes = True


def tlb_flush_pmd_range(tlb: mmu_gather, address: int, size: int) -> None:
    __tlb_adjust_range(tlb, address, size)
    tlb.cleared_pmds = True


def tlb_flush_pud_range(tlb: mmu_gather, address: int, size: int) -> None:
    __tlb_adjust_range(tlb, address, size)
    tlb.cleared_puds = True


def tlb_flush_p4d_range(tlb: mmu_gather, address: int, size: int) -> None:
    __tlb_adjust_range(tlb, address, size)
    tlb.cleared_p4ds = True


def tlb_remove_tlb_entry(tlb: mmu_gather, ptep, address: int) -> None:
    """Remember a PTE unmapping for the later invalidation (the flush range grows)."""
    tlb_flush_pte_range(tlb, address, PAGE_SIZE)


def tlb_remove_tlb_entries(tlb: mmu_gather, ptep, nr: int, address: int) -> None:
    tlb_flush_pte_range(tlb, address, PAGE_SIZE * nr)


def tlb_delay_rmap(tlb: mmu_gather) -> bool:
    """CONFIG_SMP: rmap removal of dirty file pages can be delayed past the flush
    (5df397dec7c4)."""
    return True


def pte_free_tlb(tlb: mmu_gather, table: Page, address: int) -> None:
    """include/asm-generic/tlb.h pte_free_tlb(): queue a PTE table for freeing after a flush
    that also invalidates walk caches."""
    tlb_flush_pmd_range(tlb, address, PAGE_SIZE)
    tlb.freed_tables = True
    tlb_remove_table(tlb, table)


def pmd_free_tlb(tlb: mmu_gather, table: Page, address: int) -> None:
    """include/asm-generic/tlb.h pmd_free_tlb()."""
    tlb_flush_pud_range(tlb, address, PAGE_SIZE)
    tlb.freed_tables = True
    tlb_remove_table(tlb, table)


def pud_free_tlb(tlb: mmu_gather, table: Page, address: int) -> None:
    """include/asm-generic/tlb.h pud_free_tlb()."""
    tlb_flush_p4d_range(tlb, address, PAGE_SIZE)
    tlb.freed_tables = True
    tlb_remove_table(tlb, table)


# --- mm/mmu_gather.c ---------------------------------------------------------------------------
def _tunable(tlb: mmu_gather, name: str, default: int) -> int:
    return getattr(tlb.mm.machine.tunables, name, default)


def tlb_next_batch(tlb: mmu_gather) -> bool:
    """Move to (or allocate) the next batch; False when batching must stop and flush."""
    # Limit batching if we have delayed rmaps pending.
    if tlb.delayed_rmap and tlb.active != 0:
        return False
    if tlb.active + 1 < len(tlb.batches):
        tlb.active += 1
        return True
    if len(tlb.batches) - 1 == _tunable(tlb, "gather_batch_count", MAX_GATHER_BATCH_COUNT):
        return False
    if sched.may_fail("alloc", "tlb_next_batch: __get_free_page(GFP_NOWAIT)"):
        return False
    tlb.batches.append(mmu_gather_batch(_tunable(tlb, "gather_batch", MAX_GATHER_BATCH)))
    tlb.active += 1
    return True


def __tlb_remove_folio_pages(tlb: mmu_gather, page: Page, nr_pages: int,
                             delay_rmap: bool) -> bool:
    """Queue *page* (holding the reference the PTE held) for freeing after the flush.
    Returns True when the gather is full and the caller must flush. Models mm/mmu_gather.c
    __tlb_remove_folio_pages() -> __tlb_remove_folio_pages_size() of 6.18 for an order-0
    page (one entry; no ENCODED_PAGE_BIT_NR_PAGES_NEXT pair)."""
    if delay_rmap:
        tlb.delayed_rmap = True
    batch = tlb.batches[tlb.active]
    if len(batch.pages) >= batch.max:
        # encoded_pages[batch->nr++] would write past the batch's array (the page
        # tlb_next_batch allocated, or the on-stack local batch): a caller went on queueing
        # after being told to flush. Nothing in the kernel checks this; KASAN would.
        raise sched.KernelBug(f"__tlb_remove_folio_pages: batch overflow: pfn {page.pfn} "
                              f"queued in a full batch of {batch.max} entries (a caller did "
                              f"not flush when asked to)")
    batch.pages.append((page, delay_rmap))
    # Make sure that we can always add another "page" + "nr_pages", requiring two entries
    # instead of only a single one.
    if len(batch.pages) >= batch.max - 1:
        if not tlb_next_batch(tlb):
            return True
        batch = tlb.batches[tlb.active]
    if len(batch.pages) > batch.max - 1:
        raise sched.KernelBug("VM_BUG_ON_PAGE(batch->nr > batch->max - 1, page)")
    return False


def tlb_flush_rmap_batch(batch: mmu_gather_batch, vma) -> None:
    from .rmap import folio_remove_rmap_ptes
    for page, delay_rmap in batch.pages:
        if delay_rmap:
            folio_remove_rmap_ptes(page, page, 1, vma)


def tlb_flush_rmaps(tlb: mmu_gather, vma) -> None:
    """The rmap removals delayed until after the TLB flush (5df397dec7c4). Only the local
    batch and the active one can hold delayed entries (tlb_next_batch sees to it)."""
    if not tlb.delayed_rmap:
        return
    tlb_flush_rmap_batch(tlb.batches[0], vma)
    if tlb.active != 0:
        tlb_flush_rmap_batch(tlb.batches[tlb.active], vma)
    tlb.delayed_rmap = False


def tlb_batch_pages_flush(tlb: mmu_gather) -> None:
    """mm/mmu_gather.c tlb_batch_pages_flush(): free_pages_and_swap_cache() on every batch:
    a page leaves the swap cache if nothing maps it any more, and the references the PTEs
    held go."""
    from .swapfile import free_pages_and_swap_cache
    for batch in tlb.batches:
        pages, batch.pages = batch.pages, []
        free_pages_and_swap_cache(tlb.mm.machine, [page for page, _ in pages])
    tlb.active = 0


def tlb_batch_list_free(tlb: mmu_gather) -> None:
    del tlb.batches[1:]


def tlb_needs_table_invalidate(machine) -> bool:
    """include/asm-generic/tlb.h: true unless an architecture's hardware does not walk the
    Linux page tables (sparc64; powerpc hash): x86 and arm64 must invalidate walk caches
    before a table is freed; arch/powerpc/include/asm/tlb.h defines it as radix_enabled().

    Fix toggle 0ed1325967ab off (before v5.6, CONFIG_HAVE_RCU_TABLE_NO_INVALIDATE, selected
    by powerpc and sparc64): no invalidate on powerpc at all, radix included, although the
    radix MMU walks the Linux page tables and caches them in its page-walk cache."""
    if machine.arch == "ppc64":
        from .radix_tlb import radix_enabled
        return machine.fixes.on("0ed1325967ab") and radix_enabled(machine)
    return True


def tlb_table_invalidate(tlb: mmu_gather) -> None:
    """mm/mmu_gather.c tlb_table_invalidate(): "Invalidate page-table caches used by
    hardware walkers. Then we still need to RCU-sched wait while freeing the pages because
    software walkers can still be in-flight."

    Fix toggle d86564a2f085 off (v4.18, HAVE_RCU_TABLE_FREE without
    HAVE_RCU_TABLE_INVALIDATE, as x86 with paravirt had it): there is no invalidate here, so
    a table freed by a full table batch or by the batch-allocation failure path is freed
    with no TLB or walk-cache flush (the normal path still flushes first, in
    tlb_flush_mmu())."""
    if not tlb.mm.machine.fixes.on("d86564a2f085"):
        return
    if tlb_needs_table_invalidate(tlb.mm.machine):
        tlb_flush_mmu_tlbonly(tlb)


def __tlb_remove_table(table: Page) -> None:
    """The architecture's __tlb_remove_table() (the generic one of 6.18): pagetable_dtor()
    and pagetable_free(). The event lets the invariants judge the free (PT_LIFETIME)."""
    sched.point("__tlb_remove_table", writes=(table.obj,))
    pfn, gen = table.pfn, table.gen
    table.table = None
    table.ptl = None
    folio_put(table)
    sched.event("pgtable_free", pfn=pfn, gen=gen)


def __tlb_remove_table_free(batch: list[Page]) -> None:
    for table in batch:
        __tlb_remove_table(table)


def tlb_remove_table_rcu(batch: list[Page]) -> None:
    """The RCU callback of a table batch."""
    __tlb_remove_table_free(batch)


def tlb_remove_table_free(tlb: mmu_gather, batch: list[Page]) -> None:
    """CONFIG_MMU_GATHER_RCU_TABLE_FREE (x86 since 6.15, arm64): call_rcu(&batch->rcu,
    tlb_remove_table_rcu): the tables are freed after a grace period."""
    call_rcu(tlb.mm.machine, lambda: tlb_remove_table_rcu(batch), "tlb_remove_table_rcu",
             writes=tuple(t.obj for t in batch))


def __tlb_remove_table_one(machine, table: Page) -> None:
    """mm/mmu_gather.c __tlb_remove_table_one() (v6.18): with CONFIG_PT_RECLAIM the table is
    freed by an RCU callback (__tlb_remove_table_one_rcu), because pte_offset_map() walkers
    rely on RCU; without it, tlb_remove_table_sync_one() (an IPI that waits for the
    IRQ-disabled GUP-fast walkers only) and an immediate free."""
    from .zap import config_pt_reclaim
    if config_pt_reclaim(machine):
        call_rcu(machine, lambda: __tlb_remove_table(table), "__tlb_remove_table_one_rcu",
                 writes=(table.obj,))
        return
    tlb_remove_table_sync_one(machine)
    __tlb_remove_table(table)


def tlb_remove_table_one(machine, table: Page) -> None:
    __tlb_remove_table_one(machine, table)


def tlb_table_flush(tlb: mmu_gather) -> None:
    """Invalidate the walk caches, then free the table batch after a grace period."""
    if tlb.tables:
        tlb_table_invalidate(tlb)
        batch, tlb.tables = tlb.tables, None
        tlb_remove_table_free(tlb, batch)
    tlb.tables = None


def tlb_remove_table(tlb: mmu_gather, table: Page) -> None:
    """Queue a page-table page; a full table batch is flushed (and freed) at once. The
    batch page is allocated with GFP_NOWAIT; when that fails (an explorer choice, impl/
    sched.py may_fail), the table is invalidated and freed on its own
    (tlb_remove_table_one)."""
    if tlb.tables is None:
        if sched.may_fail("alloc", "tlb_remove_table: __get_free_page(GFP_NOWAIT)"):
            tlb_table_invalidate(tlb)
            tlb_remove_table_one(tlb.mm.machine, table)
            return
        tlb.tables = []
    tlb.tables.append(table)
    if len(tlb.tables) == _tunable(tlb, "table_batch", MAX_TABLE_BATCH):
        tlb_table_flush(tlb)


def tlb_flush_mmu_free(tlb: mmu_gather) -> None:
    tlb_table_flush(tlb)
    tlb_batch_pages_flush(tlb)


def tlb_flush_mmu(tlb: mmu_gather) -> None:
    """Flush the TLB, then free what was batched: the order the whole protocol rests on."""
    tlb_flush_mmu_tlbonly(tlb)
    tlb_flush_mmu_free(tlb)


def __tlb_gather_mmu(tlb: mmu_gather, mm, fullmm: bool) -> None:
    tlb.mm = mm
    tlb.fullmm = fullmm
    tlb.need_flush_all = False
    tlb.batches = [mmu_gather_batch(_tunable(tlb, "gather_bundle", MMU_GATHER_BUNDLE))]
    tlb.active = 0
    tlb.delayed_rmap = False
    tlb.tables = None
    tlb.vma_pfn = False
    __tlb_reset_range(tlb)
    inc_tlb_flush_pending(tlb.mm)


def tlb_gather_mmu(tlb: mmu_gather, mm) -> None:
    """Initialise a gather for tearing down part of *mm*."""
    __tlb_gather_mmu(tlb, mm, False)


def tlb_gather_mmu_fullmm(tlb: mmu_gather, mm) -> None:
    """Initialise a gather for tearing down all of *mm* (exit, exec): no other user."""
    __tlb_gather_mmu(tlb, mm, True)


def tlb_finish_mmu(tlb: mmu_gather) -> None:
    """Finish a gather: flush, free, and leave the tlb_flush_pending count.

    If another thread is batching a flush of the same mm (mm_tlb_flush_nested()), this
    thread may have seen PTEs the other cleared and not gathered them; so it flushes
    everything, walk caches included, before returning (99baac21e458 and 7a30df49f63a).

    Fix toggles:
    * 99baac21e458 off: the nested check does not exist; only what was gathered is flushed.
    * 7a30df49f63a off (the v4.20-v5.1 shape): the forced flush resets the range with
      __tlb_reset_range(), which clears freed_tables, and re-adjusts it to the caller's range,
      so the flush is leaf-only on arm64 and freed tables stay in walk caches.
    """
    fixes = tlb.mm.machine.fixes
    if fixes.on("99baac21e458") and mm_tlb_flush_nested(tlb.mm):
        if fixes.on("7a30df49f63a"):
            tlb.fullmm = True
            __tlb_reset_range(tlb)
            tlb.freed_tables = True
        else:
            # v5.1: __tlb_reset_range(tlb); __tlb_adjust_range(tlb, start, end - start);
            span_start, span_end = tlb.span_start, tlb.span_end
            __tlb_reset_range(tlb)
            if span_end > span_start:
                __tlb_adjust_range(tlb, span_start, span_end - span_start)
                tlb.cleared_ptes = True
    tlb_flush_mmu(tlb)
    tlb_batch_list_free(tlb)
    dec_tlb_flush_pending(tlb.mm)
