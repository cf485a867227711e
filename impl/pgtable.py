"""x86-64 four-level page tables: the tables, their entries, walks and allocation.

Models include/linux/pgtable.h (p*d_addr_end, p*d_offset, ptep_get_and_clear_full, ...),
arch/x86/include/asm/pgtable*.h, include/asm-generic/pgtable-nop4d.h (the p4d level is folded:
48-bit user space), and the allocation side of mm/memory.c (__pte_alloc, pmd_install,
__pmd_alloc, __pud_alloc).

Every table is a real frame from the page allocator (kind "pgtable") whose ``table`` dict holds
the non-none entries of its 512 slots (sparse). A pointer to an entry, ``pte_t *`` or
``pmd_t *``, is an :class:`EntryPtr` (the table frame and a slot index). Each read or write of
an entry is a scheduling point on the object ``("pte", table_pfn, index)`` (one name for every
level: a slot is a slot).

Simplifications: no huge entries at any level (THP and hugetlb are off); the PMD and upper
levels are protected by ``mm->page_table_lock`` (no split PMD locks); the PTE level has split
PTE locks, one per table frame, as on x86-64 SMP.
"""

from __future__ import annotations

from typing import Optional

from . import sched, word
from .constants import (PAGE_SHIFT, PAGE_SIZE, PGDIR_MASK, PGDIR_SHIFT, PGDIR_SIZE, PMD_MASK,
                        PMD_SHIFT, PMD_SIZE, PTRS_PER_TABLE, PUD_MASK, PUD_SHIFT, PUD_SIZE)
from .locks import SpinLock, spin_lock, spin_unlock
from .page import Page
from .pte import PRESENT, PTE_NONE, TableEntry, pte_t
from .rcu import rcu_reached_table, rcu_read_lock, rcu_read_unlock

LEVEL_PTE, LEVEL_PMD, LEVEL_PUD, LEVEL_PGD = 1, 2, 3, 4
LEVEL_NAMES = {1: "pte", 2: "pmd", 3: "pud", 4: "pgd"}
LEVEL_SHIFT = {1: PAGE_SHIFT, 2: PMD_SHIFT, 3: PUD_SHIFT, 4: PGDIR_SHIFT}


# --- index and boundary helpers ---------------------------------------------------------------
def pgd_index(addr: int) -> int:
    return (addr >> PGDIR_SHIFT) & (PTRS_PER_TABLE - 1)


def pud_index(addr: int) -> int:
    return (addr >> PUD_SHIFT) & (PTRS_PER_TABLE - 1)


def pmd_index(addr: int) -> int:
    return (addr >> PMD_SHIFT) & (PTRS_PER_TABLE - 1)


def pte_index(addr: int) -> int:
    return (addr >> PAGE_SHIFT) & (PTRS_PER_TABLE - 1)


def level_index(level: int, addr: int) -> int:
    return (addr >> LEVEL_SHIFT[level]) & (PTRS_PER_TABLE - 1)


def _addr_end(addr, end, size, mask):
    # include/linux/pgtable.h: "__boundary - 1 < (end) - 1 ? __boundary : (end)"; the -1s make
    # an end of 0 (the top of the address space) and a boundary that wrapped to 0 compare right.
    boundary = word.band(word.add(addr, size), mask)
    return word.ite(word.ult(word.sub(boundary, 1), word.sub(end, 1)), boundary, end)


def pgd_addr_end(addr, end):
    return _addr_end(addr, end, PGDIR_SIZE, PGDIR_MASK)


def p4d_addr_end(addr, end):
    """pgtable-nop4d.h: the folded level spans everything its pgd entry spans."""
    return end


def pud_addr_end(addr, end):
    return _addr_end(addr, end, PUD_SIZE, PUD_MASK)


def pmd_addr_end(addr, end):
    return _addr_end(addr, end, PMD_SIZE, PMD_MASK)


# --- entry pointers ---------------------------------------------------------------------------
class EntryPtr:
    """``pte_t *`` / ``pmd_t *`` / ``pud_t *`` / ``pgd_t *``: a table frame and a slot."""

    __slots__ = ("table", "idx")

    def __init__(self, table: Page, idx: int):
        self.table = table
        self.idx = idx

    @property
    def obj(self) -> tuple:
        return ("pte", self.table.pfn, self.idx)

    @property
    def level(self) -> int:
        return self.table.level

    def __add__(self, n: int) -> "EntryPtr":
        return EntryPtr(self.table, self.idx + n)

    def __repr__(self) -> str:
        return f"{LEVEL_NAMES[self.table.level]}[{self.table.pfn}:{self.idx}]"


def _freed_table_read(ptr: EntryPtr, label: str) -> sched.KernelBug:
    # A page-table page may be reached after it was freed only by a walker that the RCU
    # rules failed to protect (spec/invariants.py PT_LIFETIME.reader reports the free), or
    # one whose VMA lock failed to exclude the free; the access itself is a use-after-free,
    # not a read of empty entries.
    return sched.KernelBug(f"{label}: use-after-free: {LEVEL_NAMES[ptr.table.level]} table "
                           f"page {ptr.table.pfn} was freed")


def _read(ptr: EntryPtr, label: str):
    sched.point(label, reads=(ptr.obj,))
    if ptr.table.table is None:
        raise _freed_table_read(ptr, label)
    return ptr.table.table.get(ptr.idx)


def _write(ptr: EntryPtr, value, label: str) -> None:
    sched.point(label, writes=(ptr.obj,))
    if ptr.table.table is None:
        raise _freed_table_read(ptr, label)
    if value is None or value is PTE_NONE:
        ptr.table.table.pop(ptr.idx, None)
    else:
        ptr.table.table[ptr.idx] = value


def ptep_get(ptep: EntryPtr) -> pte_t:
    """include/linux/pgtable.h ptep_get(): READ_ONCE of a PTE."""
    sched.point("ptep_get", reads=(ptep.obj,))
    entries = ptep.table.table
    if entries is None:
        raise _freed_table_read(ptep, "ptep_get")
    return entries.get(ptep.idx, PTE_NONE)


def pmdp_get(pmdp: EntryPtr) -> Optional[TableEntry]:
    return _read(pmdp, "pmdp_get")


def pudp_get(pudp: EntryPtr) -> Optional[TableEntry]:
    return _read(pudp, "pudp_get")


def pgdp_get(pgdp: EntryPtr) -> Optional[TableEntry]:
    return _read(pgdp, "pgdp_get")


def set_pte_at(mm, addr: int, ptep: EntryPtr, pte: pte_t) -> None:
    """set_pte_at() / set_ptes(..., 1)."""
    _write(ptep, pte, "set_pte_at")


def ptep_get_and_clear(mm, addr: int, ptep: EntryPtr) -> pte_t:
    """ptep_get_and_clear(): an atomic xchg with none, so hardware A/D updates are not lost."""
    sched.point("ptep_get_and_clear", reads=(ptep.obj,), writes=(ptep.obj,))
    old = ptep.table.table.pop(ptep.idx, PTE_NONE)
    return old


def ptep_get_and_clear_full(mm, addr: int, ptep: EntryPtr, full: bool) -> pte_t:
    """ptep_get_and_clear_full(): on x86 identical to ptep_get_and_clear (the fullmm
    shortcut of a non-atomic clear is only taken when no other CPU can run the mm, and the
    model keeps the atomic form for both)."""
    return ptep_get_and_clear(mm, addr, ptep)


def pte_accessible(mm, pte: pte_t) -> bool:
    """arch/x86 pte_accessible(): may a TLB hold a translation from this PTE? A present PTE,
    or a PROT_NONE one while a flush of the mm is pending (it may have been made PROT_NONE
    with the old translation still cached)."""
    if pte.kind != PRESENT:
        return False
    if not pte.protnone:
        return True
    return mm.tlb_flush_pending > 0


def ptep_clear_flush(vma, address: int, ptep: EntryPtr) -> pte_t:
    """mm/pgtable-generic.c ptep_clear_flush(): clear the PTE and, if a TLB may cache it,
    flush that page on every CPU of mm_cpumask; returns the old PTE (with the A/D bits the
    hardware set up to the clear)."""
    from .cpu import flush_tlb_page
    mm = vma.vm_mm
    pte = ptep_get_and_clear(mm, address, ptep)
    if pte_accessible(mm, pte):
        flush_tlb_page(mm.machine, mm, address)
    return pte


@sched.model_only
def pte_clear(mm, addr: int, ptep: EntryPtr) -> None:
    """include/linux/pgtable.h pte_clear(), for the tests that build a page table by hand: no
    modelled path calls it (the zap clears with ptep_get_and_clear_full)."""
    _write(ptep, PTE_NONE, "pte_clear")


def pte_clear_not_present_full(mm, addr: int, ptep: EntryPtr, full: bool) -> None:
    _write(ptep, PTE_NONE, "pte_clear_not_present_full")


def ptep_modify(mm, addr: int, ptep: EntryPtr, new: pte_t, label: str) -> None:
    """An atomic read-modify-write of a present PTE's bits (ptep_set_wrprotect,
    ptep_test_and_clear_young, ptep_clear_flush's clear ...): the caller computed *new*."""
    _write(ptep, new, label)


def pgd_none(entry) -> bool:
    return entry is None


pud_none = pmd_none = p4d_none = pgd_none


# --- walking ----------------------------------------------------------------------------------
def entry_table(ptr: EntryPtr, entry: TableEntry) -> Page:
    """The table frame an upper-level entry points at (p*d_page_vaddr)."""
    return ptr.table.zone.pfn_to_page(entry.pfn)


def pgd_offset(mm, addr: int) -> EntryPtr:
    return EntryPtr(mm.pgd, pgd_index(addr))


def p4d_offset(pgdp: EntryPtr, addr: int) -> EntryPtr:
    """Folded level: the p4d entry is the pgd entry."""
    return pgdp


def pud_offset(p4dp: EntryPtr, p4d: TableEntry, addr: int) -> EntryPtr:
    return EntryPtr(entry_table(p4dp, p4d), pud_index(addr))


def pmd_offset(pudp: EntryPtr, pud: TableEntry, addr: int) -> EntryPtr:
    return EntryPtr(entry_table(pudp, pud), pmd_index(addr))


def __pte_offset_map(pmdp: EntryPtr, addr: int):
    """mm/pgtable-generic.c ___pte_offset_map() (v6.18): enter an RCU read-side critical
    section, read the pmd once, and return (the PTE slot, the pmd value); or leave the
    section and return (None, None) when the pmd is none (no THP, no pmd migration entries,
    no bad pmds in the model). The section keeps the PTE table from being freed until
    pte_unmap(): PT_RECLAIM and the table-batch failure path free a detached PTE table only
    after a grace period (impl/mmu_gather.py), which is what makes reading a pmd without
    its lock safe."""
    machine = pmdp.table.zone.machine
    rcu_read_lock(machine)
    pmdval = pmdp_get(pmdp)
    if pmdval is None:
        rcu_read_unlock(machine)
        return None, None
    rcu_reached_table(machine, pmdval.pfn, pmdval.gen)
    return EntryPtr(entry_table(pmdp, pmdval), pte_index(addr)), pmdval


def pte_offset_map(pmdp: EntryPtr, addr: int) -> Optional[EntryPtr]:
    """include/linux/pgtable.h pte_offset_map(): the PTE slot, or None (the 6.x form that
    may fail); pte_unmap() ends its RCU section."""
    return __pte_offset_map(pmdp, addr)[0]


def pte_unmap(ptep: EntryPtr) -> None:
    """include/linux/pgtable.h pte_unmap(): no highmem page tables, so only the end of the
    RCU read-side section pte_offset_map() entered."""
    rcu_read_unlock(ptep.table.zone.machine)


def pte_offset_map_rw_nolock(mm, pmd: EntryPtr, addr: int):
    """mm/pgtable-generic.c pte_offset_map_rw_nolock(): map the PTE table without its lock;
    returns (ptep, pmdval, ptl), or (None, None, None) when the pmd is none. A caller that
    modifies the table rechecks the pmd (pmd_same) under the lock, or holds the pmd lock."""
    ptep, pmdval = __pte_offset_map(pmd, addr)
    if ptep is None:
        return None, None, None
    return ptep, pmdval, ptep.table.ptl


def pte_lockptr(mm, ptep: EntryPtr) -> SpinLock:
    # A frame that is no longer a PTE table (freed, or freed and reused) reached through a
    # stale pmd: a use-after-free.
    if ptep.table.table is None or ptep.table.ptl is None:
        raise _freed_table_read(ptep, "pte_lockptr")
    return ptep.table.ptl


def pte_offset_map_lock(mm, pmdp: EntryPtr, addr: int):
    """mm/pgtable-generic.c __pte_offset_map_lock(): map the PTE table, take its split lock,
    and recheck that the pmd still points at the same table (it may have been freed or
    replaced while unlocked); returns (ptep, ptl) or (None, None)."""
    while True:
        ptep = pte_offset_map(pmdp, addr)
        if ptep is None:
            return None, None
        ptl = pte_lockptr(mm, ptep)
        spin_lock(ptl)
        pmd = pmdp_get(pmdp)
        if pmd is not None and pmd.pfn == ptep.table.pfn and pmd.gen == ptep.table.gen:
            return ptep, ptl
        pte_unmap_unlock(ptep, ptl)


def pte_unmap_unlock(ptep: EntryPtr, ptl: SpinLock) -> None:
    """include/linux/mm.h pte_unmap_unlock(): spin_unlock(ptl), then pte_unmap(pte)."""
    spin_unlock(ptl)
    pte_unmap(ptep)


# --- allocation (mm/memory.c, include/linux/mm.h) ---------------------------------------------
def alloc_table(mm, level: int) -> Page:
    """pte_alloc_one() / pmd_alloc_one() / pud_alloc_one(): a zeroed table frame. A PTE
    table gets its split lock (ptlock_init)."""
    page = mm.zone.alloc_page("pgtable")
    page.level = level
    page.table = {}
    if level == LEVEL_PTE:
        page.ptl = SpinLock(f"ptl:{page.pfn}")
    return page


def free_table(mm, page: Page) -> None:
    """pte_free() / pmd_free() / pud_free() for a table that was never installed."""
    page.table = None
    page.ptl = None
    from .page import folio_put
    folio_put(page)


def mm_inc_nr_table(mm, level: int) -> None:
    """mm_inc_nr_ptes / mm_inc_nr_pmds / mm_inc_nr_puds: mm->pgtables_bytes accounting."""
    sched.point("mm_inc_nr_ptes", writes=(("pgtables_bytes", mm.id),))
    mm.pgtables_bytes += PAGE_SIZE


def mm_dec_nr_table(mm, level: int) -> None:
    sched.point("mm_dec_nr_ptes", writes=(("pgtables_bytes", mm.id),))
    mm.pgtables_bytes -= PAGE_SIZE


def _populate(mm, ptr: EntryPtr, level: int, new: Page) -> Optional[Page]:
    """Under mm->page_table_lock (the pmd/pud lock: no split PMD locks), make *ptr* point at
    the preallocated table *new* unless another thread populated it meanwhile. Returns the
    table still owned by the caller: None when it was installed, *new* otherwise."""
    spin_lock(mm.page_table_lock)
    if _read(ptr, "p*d_none") is None:              # "Has another populated it ?"
        mm_inc_nr_table(mm, level)
        _write(ptr, TableEntry(new.pfn, new.gen), "p*d_populate")
        new = None
    spin_unlock(mm.page_table_lock)
    return new


def pte_alloc_one(mm) -> Page:
    """include/asm-generic/pgalloc.h pte_alloc_one(): a new, not yet installed PTE table."""
    return alloc_table(mm, LEVEL_PTE)


def pte_free(mm, table: Page) -> None:
    """pte_free(): free a PTE table that was never installed."""
    free_table(mm, table)


def pmd_install(mm, pmd: EntryPtr, pte: Optional[Page]) -> Optional[Page]:
    """mm/memory.c pmd_install(): install the preallocated PTE table *pte* in *pmd* unless
    someone populated it meanwhile; returns the table still owned by the caller (None when
    installed: the kernel's ``*pte = NULL``; the caller frees a table it still owns)."""
    return _populate(mm, pmd, LEVEL_PTE, pte)


def _install(mm, ptr: EntryPtr, level: int) -> None:
    """The __pmd_alloc and __pud_alloc bodies: allocate a table and populate *ptr* with it,
    freeing it if another thread was first."""
    new = _populate(mm, ptr, level, alloc_table(mm, level))
    if new is not None:
        free_table(mm, new)


def pud_alloc(mm, p4dp: EntryPtr, addr: int) -> EntryPtr:
    """include/linux/mm.h pud_alloc() -> __pud_alloc()."""
    p4d = pgdp_get(p4dp)
    if p4d is None:
        _install(mm, p4dp, LEVEL_PUD)
        p4d = pgdp_get(p4dp)
    return pud_offset(p4dp, p4d, addr)


def pmd_alloc(mm, pudp: EntryPtr, addr: int) -> EntryPtr:
    """include/linux/mm.h pmd_alloc() -> __pmd_alloc()."""
    pud = pudp_get(pudp)
    if pud is None:
        _install(mm, pudp, LEVEL_PMD)
        pud = pudp_get(pudp)
    return pmd_offset(pudp, pud, addr)


def pte_alloc(mm, pmdp: EntryPtr) -> bool:
    """include/linux/mm.h pte_alloc() -> __pte_alloc() -> pmd_install(); returns True on
    failure (never, in the model: allocation does not fail)."""
    if pmdp_get(pmdp) is None:
        new = pmd_install(mm, pmdp, pte_alloc_one(mm))     # __pte_alloc()
        if new is not None:
            pte_free(mm, new)
    return False


def walk_to_pmd(mm, addr: int, alloc: bool) -> Optional[EntryPtr]:
    """The pgd -> p4d -> pud -> pmd descent of __handle_mm_fault (alloc=True) or of a
    lookup such as follow_page/walk_page_range (alloc=False: None at the first none)."""
    pgdp = pgd_offset(mm, addr)
    p4dp = p4d_offset(pgdp, addr)
    if alloc:
        pudp = pud_alloc(mm, p4dp, addr)
        return pmd_alloc(mm, pudp, addr)
    p4d = pgdp_get(p4dp)
    if p4d is None:
        return None
    pudp = pud_offset(p4dp, p4d, addr)
    pud = pudp_get(pudp)
    if pud is None:
        return None
    return pmd_offset(pudp, pud, addr)


def lookup_pte(mm, addr: int) -> Optional[EntryPtr]:
    """Follow the tables to addr's PTE slot without locks or scheduling points; None if an
    upper level is none. For views (maps/smaps, invariants), never for kernel paths."""
    table = mm.pgd
    for level in (LEVEL_PGD, LEVEL_PUD, LEVEL_PMD):
        entry = table.table.get(level_index(level, addr))
        if entry is None:
            return None
        table = table.zone.pfn_to_page(entry.pfn)
    return EntryPtr(table, pte_index(addr))


def iter_ptes(mm):
    """Every non-none PTE of *mm* as (addr, pte, table frame), in address order; no
    scheduling points (for views and invariants)."""
    pgd = mm.pgd
    for i in sorted(pgd.table):
        pud_t = pgd.zone.pfn_to_page(pgd.table[i].pfn)
        for j in sorted(pud_t.table or {}):
            pmd_t = pgd.zone.pfn_to_page(pud_t.table[j].pfn)
            for k in sorted(pmd_t.table or {}):
                pt = pgd.zone.pfn_to_page(pmd_t.table[k].pfn)
                base = (i << PGDIR_SHIFT) | (j << PUD_SHIFT) | (k << PMD_SHIFT)
                for m in sorted(pt.table or {}):
                    yield base | (m << PAGE_SHIFT), pt.table[m], pt


def iter_tables(mm):
    """Every table frame reachable from mm->pgd (pgd included) as (level, base addr, page)."""
    out = []

    def visit(page: Page, level: int, base: int) -> None:
        out.append((level, base, page))
        if level == LEVEL_PTE:
            return
        for idx in sorted(page.table or {}):
            entry = page.table[idx]
            visit(page.zone.pfn_to_page(entry.pfn), level - 1,
                  base | (idx << LEVEL_SHIFT[level]))

    visit(mm.pgd, LEVEL_PGD, 0)
    return out
