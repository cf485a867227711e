"""Getting user pages for population: the part of mm/gup.c that mlock, MAP_POPULATE,
MAP_LOCKED and MADV_POPULATE_* use.

Models mm/gup.c __mm_populate, populate_vma_page_range, faultin_page_range,
__get_user_pages, check_vma_flags, faultin_page, follow_page_mask (one page: the pgd..pte
descent of follow_page_pte) and include/linux/mm.h mm_populate.

Simplifications: no FOLL_GET/FOLL_PIN references are taken for population (as in the
kernel), faults never drop mmap_lock (FOLL_UNLOCKABLE / VM_FAULT_RETRY are not modelled), no
hugetlb, no THP; FOLL_TOUCH's accessed/dirty marking is left out; no secretmem, DAX, gate VMA,
VM_DROPPABLE.
"""

from __future__ import annotations

from typing import Optional

from .constants import (EFAULT, EINVAL, ENOMEM, PAGE_MASK, PAGE_SIZE,
                        VM_HUGETLB, VM_IO, VM_LOCKONFAULT, VM_MAYREAD,
                        VM_PFNMAP, VM_READ, VM_SHARED, VM_WRITE)
from .locks import mmap_assert_locked, mmap_read_lock, mmap_read_unlock
from .page import Page, folio_get, folio_put, folio_try_get
from .pgtable import pte_offset_map_lock, pte_unmap_unlock, ptep_get, walk_to_pmd
from .pte import pte_present, pte_write
from .sched import KernelBug
from .word import MASK64
from .fault import is_cow_mapping, vma_is_accessible

# --- mm/internal.h / include/linux/mm.h gup flags (the ones the model uses) ---------------------
FOLL_WRITE = 0x01
FOLL_GET = 0x04
FOLL_DUMP = 0x08
FOLL_FORCE = 0x10
FOLL_NOWAIT = 0x20
FOLL_HWPOISON = 0x100
FOLL_TOUCH = 0x100000
FOLL_UNLOCKABLE = 0x200000
FOLL_MADV_POPULATE = 0x400000          # mm/internal.h (the model's bit: distinct from the rest)


def check_vma_flags(vma, gup_flags: int) -> int:
    """mm/gup.c check_vma_flags(): may GUP access this VMA in this way? (no FOLL_ANON,
    FOLL_LONGTERM, secretmem, shadow stacks or protection keys)."""
    vm_flags = vma.vm_flags
    write = gup_flags & FOLL_WRITE
    if vm_flags & (VM_IO | VM_PFNMAP):
        return -EFAULT
    if write:
        # (!vma_anon && !writable_file_mapping_allowed(): only FOLL_LONGTERM refuses)
        if not vm_flags & VM_WRITE:
            if not gup_flags & FOLL_FORCE:
                return -EFAULT
            if vm_flags & VM_HUGETLB:
                return -EFAULT
            if not is_cow_mapping(vm_flags):
                return -EFAULT
    elif not vm_flags & VM_READ:
        if not gup_flags & FOLL_FORCE:
            return -EFAULT
        if not vm_flags & VM_MAYREAD:
            return -EFAULT
    return 0


def follow_page_mask(vma, address: int, flags: int) -> Optional[Page]:
    """Look up the page mapped at *address* without faulting: the zero page for a read of a
    zero-page PTE, None when there is no PTE, a non-present one, or a read-only PTE for a
    write (which needs the COW fault). With FOLL_GET a reference is taken.
    Models mm/gup.c follow_page_mask() -> follow_p4d/pud/pmd_mask -> follow_page_pte()
    (no THP, no devmap; FOLL_DUMP turns the zero page into "no page"; FOLL_TOUCH's
    accessed/dirty marking is left out)."""
    from .zap import vm_normal_page
    mm = vma.vm_mm
    pmd = walk_to_pmd(mm, address, alloc=False)
    if pmd is None:
        return None                               # no_page_table
    ptep, ptl = pte_offset_map_lock(mm, pmd, address)
    if ptep is None:
        return None
    pte = ptep_get(ptep)
    page = None
    # (pte_protnone && !gup_can_follow_protnone(): only FOLL_HONOR_NUMA_FAULT callers, none
    # in the model, refuse a protnone PTE; the model's are all in PROT_NONE VMAs anyway)
    if not pte_present(pte):
        pass                                      # no_page (swap/migration: fault it)
    elif flags & FOLL_WRITE and not pte_write(pte):
        pass                                      # !can_follow_write_pte(): COW fault
    else:
        page = vm_normal_page(vma, address, pte)
        if page is None and pte.pfn == mm.zone.zero_page.pfn:
            # is_zero_pfn(): the zero page
            page = None if flags & FOLL_DUMP else mm.zone.zero_page
        if page is not None and flags & FOLL_GET and page is not mm.zone.zero_page:
            folio_get(page)                       # try_grab_folio(folio, 1, FOLL_GET)
    pte_unmap_unlock(ptep, ptl)
    return page


def follow_page(vma, address: int, foll_flags: int) -> Optional[Page]:
    """mm/gup.c follow_page() (5.x; removed in 6.12): follow_page_mask for one page."""
    return follow_page_mask(vma, address, foll_flags)


def vm_fault_to_errno(vm_fault: int, foll_flags: int) -> int:
    """include/linux/mm.h vm_fault_to_errno()."""
    from .fault import VM_FAULT_HWPOISON, VM_FAULT_OOM, VM_FAULT_SIGBUS, VM_FAULT_SIGSEGV
    if vm_fault & VM_FAULT_OOM:
        return -ENOMEM
    if vm_fault & VM_FAULT_HWPOISON:
        return -EFAULT
    if vm_fault & (VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV):
        return -EFAULT
    return 0


def faultin_page(vma, address: int, gup_flags: int) -> int:
    """mm/gup.c faultin_page(): handle_mm_fault() for GUP; 0, or a negative errno.
    (No FAULT_FLAG_ALLOW_RETRY: the fault never drops mmap_lock in the model.)"""
    from .fault import FAULT_FLAG_WRITE, VM_FAULT_ERROR, handle_mm_fault
    fault_flags = 0
    if gup_flags & FOLL_WRITE:
        fault_flags |= FAULT_FLAG_WRITE
    # FOLL_REMOTE / FOLL_NOFAULT / FOLL_UNSHARE / FOLL_UNLOCKABLE: not used by the model.
    ret = handle_mm_fault(vma, address, fault_flags, None)
    if ret & VM_FAULT_ERROR:
        return vm_fault_to_errno(ret, gup_flags)
    return 0


def __get_user_pages(mm, start: int, nr_pages: int, gup_flags: int, locked) -> int:
    """Fault in (without taking references, for population) *nr_pages* pages from *start*:
    follow each page, fault it in if it is not there (or not writable for a write), and
    follow again. Returns the number of pages done, or a negative errno if none was.
    Models mm/gup.c __get_user_pages() (no pages[] array, no stack expansion: a gap gives
    -EFAULT, or -ENOMEM for MADV_POPULATE_*, which also turns a refused VMA into -EINVAL;
    no gate area, no fatal signals)."""
    from .mm_types import vma_lookup
    i = 0
    ret = 0
    vma = None
    mmap_assert_locked(mm)
    while nr_pages:
        if vma is None or start >= vma.vm_end:
            # FOLL_MADV_POPULATE: its own VMA lookup and errors (-ENOMEM, -EINVAL).
            if gup_flags & FOLL_MADV_POPULATE:
                vma = vma_lookup(mm, start)
                if vma is None:
                    ret = -ENOMEM
                    break
                if check_vma_flags(vma, gup_flags):
                    ret = -EINVAL
                    break
            else:
                vma = vma_lookup(mm, start)       # gup_vma_lookup(): no stack expansion
                if vma is None:
                    ret = -EFAULT
                    break
                ret = check_vma_flags(vma, gup_flags)
                if ret:
                    break
        while True:                               # retry:
            page = follow_page_mask(vma, start, gup_flags)
            if page is not None:
                break
            ret = faultin_page(vma, start, gup_flags)
            if ret:
                return i if i else ret
        i += 1
        start += PAGE_SIZE
        nr_pages -= 1
    return i if i else ret


def faultin_page_range(mm, start: int, end: int, write: bool, locked: list) -> int:
    """Fault in [start, end) for MADV_POPULATE_READ/WRITE with the caller's access rights
    (no FOLL_FORCE): the number of pages done, or a negative errno if none was.
    Models mm/gup.c faultin_page_range() -> __get_user_pages_locked() (the lock is never
    dropped in the model; *locked* is a one-element list for ``int *locked``)."""
    nr_pages = (end - start) // PAGE_SIZE
    if start & ~PAGE_MASK or end & ~PAGE_MASK:
        raise KernelBug(f"VM_BUG_ON(!PAGE_ALIGNED) in faultin_page_range: {start:#x}-{end:#x}")
    # FOLL_TOUCH marks the page accessed (dirty too for a write); FOLL_HWPOISON would turn a
    # poisoned page into -EHWPOISON; without FOLL_FORCE the VMA's permissions apply.
    gup_flags = FOLL_TOUCH | FOLL_HWPOISON | FOLL_UNLOCKABLE | FOLL_MADV_POPULATE
    if write:
        gup_flags |= FOLL_WRITE
    ret = __get_user_pages(mm, start, nr_pages, gup_flags, locked)
    # lru_add_drain(): the model's LRU has no per-CPU batches
    return ret


def populate_vma_page_range(vma, start: int, end: int, locked) -> int:
    """Fault in [start, end) of *vma*: write faults for private writable VMAs (to break COW
    now), read faults otherwise (a private anonymous read maps the zero page). Returns the
    number of pages, or a negative errno (-EFAULT for PROT_NONE). Models mm/gup.c
    populate_vma_page_range(); caller holds mmap_lock."""
    mm = vma.vm_mm
    nr_pages = (end - start) // PAGE_SIZE
    if start & ~PAGE_MASK or end & ~PAGE_MASK or start < vma.vm_start or end > vma.vm_end:
        raise KernelBug(f"VM_BUG_ON_VMA in populate_vma_page_range: {start:#x}-{end:#x}")
    mmap_assert_locked(mm)
    # Rightly or wrongly, the VM_LOCKONFAULT case has never used faultin_page() to break
    # COW, so it has no work to do here.
    if vma.vm_flags & VM_LOCKONFAULT:
        return nr_pages
    # ... similarly, we've never faulted in PROT_NONE pages
    if not vma_is_accessible(vma):
        return -EFAULT
    gup_flags = FOLL_TOUCH
    # We want to touch writable mappings with a write fault in order to break COW, except
    # for shared mappings because these don't COW and we would not want to dirty them for
    # nothing. Otherwise, do a read fault, with FOLL_FORCE in case it is not readable.
    if (vma.vm_flags & (VM_WRITE | VM_SHARED)) == VM_WRITE:
        gup_flags |= FOLL_WRITE
    else:
        gup_flags |= FOLL_FORCE
    if locked is not None:
        gup_flags |= FOLL_UNLOCKABLE
    ret = __get_user_pages(mm, start, nr_pages, gup_flags, locked)
    # lru_add_drain()
    return ret


def __mm_populate(mm, start: int, length: int, ignore_errors: int) -> int:
    """Fault in every VMA of [start, start+len) under mmap_read_lock (VM_IO/VM_PFNMAP VMAs
    skipped); returns 0 or the first error (unless *ignore_errors*). Models mm/gup.c
    __mm_populate(); the lock is never dropped by a fault in the model."""
    end = (start + length) & MASK64
    locked = 0
    ret = 0
    vma = None
    nstart = start
    while nstart < end:
        # We want to fault in pages for [nstart; end) address range.
        if not locked:
            locked = 1
            mmap_read_lock(mm)
            vma = _find_vma_intersection(mm, nstart, end)
        elif nstart >= vma.vm_end:
            vma = _find_vma_intersection(mm, vma.vm_end, end)
        if vma is None:
            break
        # Set [nstart; nend) to intersection of desired address range with the first VMA.
        nend = min(end, vma.vm_end)
        if vma.vm_flags & (VM_IO | VM_PFNMAP):
            nstart = nend
            continue
        if nstart < vma.vm_start:
            nstart = vma.vm_start
        ret = populate_vma_page_range(vma, nstart, nend, locked)
        if ret < 0:
            if ignore_errors:
                ret = 0
                nstart = nend
                continue                          # continue at next VMA
            break
        nend = nstart + ret * PAGE_SIZE
        ret = 0
        nstart = nend
    if locked:
        mmap_read_unlock(mm)
    return ret


def _find_vma_intersection(mm, start: int, end: int):
    """include/linux/mm.h find_vma_intersection(): the first VMA overlapping [start, end)."""
    from .mm_types import find_vma
    vma = find_vma(mm, start)
    if vma is not None and vma.vm_start < end:
        return vma
    return None


def mm_populate(mm, addr: int, length: int) -> None:
    """include/linux/mm.h mm_populate(): __mm_populate(addr, len, 1) (errors ignored)."""
    __mm_populate(mm, addr, length, 1)


# --- GUP-fast: the lockless walk (mm/gup.c, v6.18) -------------------------------------------
FOLL_FAST_ONLY = 0x80000                # mm/internal.h (the model's bit: distinct from the rest)


def gup_fast_pte_range(pmdp, addr: int, end: int, flags: int, pages: list) -> bool:
    """mm/gup.c gup_fast_pte_range(): with interrupts off, map the PTE table (an RCU
    section of its own) and, for each PTE, take a reference on its folio
    (try_grab_folio_fast: folio_try_get) and then re-read the pmd and the PTE: if either
    changed (a zap, a table freed and reused), drop the reference and stop; the caller
    falls back or returns what it got. A none, special (the zero page), non-present or,
    for FOLL_WRITE, read-only PTE stops the walk too.

    Simplified: the kernel maps the table from the pmd value gup_fast_pmd_range() read
    (pte_offset_map(&pmd, addr)); the model re-reads the pmd there, which can only make
    the walk stop earlier (never reach a table the kernel's would not)."""
    from .pgtable import pte_offset_map, pte_unmap
    from .pte import pte_special
    ptem = ptep = pte_offset_map(pmdp, addr)
    if ptep is None:
        return False
    pmd = _pmd_value(pmdp)
    ret = False
    while True:
        pte = ptep_get(ptep)                          # ptep_get_lockless()
        if not pte_present(pte) or pte_special(pte) or pte.protnone:
            break
        if flags & FOLL_WRITE and not pte_write(pte):
            break
        folio = ptep.table.zone.pfn_to_page(pte.pfn)
        if not folio_try_get(folio):                  # try_grab_folio_fast()
            break
        if _pmd_value(pmdp) != pmd or ptep_get(ptep) != pte:
            folio_put(folio)                          # gup_put_folio()
            break
        pages.append(folio)
        ptep = ptep + 1
        addr += PAGE_SIZE
        if addr == end:
            ret = True
            break
    pte_unmap(ptem)
    return ret


def _pmd_value(pmdp):
    """pmdp_get_lockless()."""
    from .pgtable import pmdp_get
    return pmdp_get(pmdp)


def gup_fast_pgd_range(mm, addr: int, end: int, flags: int, pages: list) -> None:
    """mm/gup.c gup_fast_pgd_range() -> gup_fast_p4d_range -> gup_fast_pud_range ->
    gup_fast_pmd_range: READ_ONCE each level (no lock, no mmap_lock), stop at a none entry,
    then the PTE range of each pmd. No huge entries in the model."""
    from .constants import PMD_SIZE
    from .pgtable import pgd_offset, pgdp_get, pmd_offset, pud_offset, pudp_get
    from .rcu import rcu_reached_table
    machine = mm.machine
    while addr < end:
        pgdp = pgd_offset(mm, addr)
        pgd = pgdp_get(pgdp)
        if pgd is None:
            return
        rcu_reached_table(machine, pgd.pfn, pgd.gen)
        pudp = pud_offset(pgdp, pgd, addr)
        pud = pudp_get(pudp)
        if pud is None:
            return
        rcu_reached_table(machine, pud.pfn, pud.gen)
        pmdp = pmd_offset(pudp, pud, addr)
        pmd = _pmd_value(pmdp)
        if pmd is None:
            return
        next_ = min((addr | (PMD_SIZE - 1)) + 1, end)
        if not gup_fast_pte_range(pmdp, addr, next_, flags, pages):
            return
        addr = next_


def gup_fast(mm, start: int, end: int, gup_flags: int, pages: list) -> int:
    """mm/gup.c gup_fast(): the lockless walk with interrupts disabled. "Disabling
    interrupts allows us to block the freeing of page tables ... either via IPI
    (tlb_remove_table_sync_one) or via RCU (MMU_GATHER_RCU_TABLE_FREE)": an IRQs-off
    region is an RCU read-side section (impl/rcu.py). Returns the number of pages got."""
    from .rcu import local_irq_restore, local_irq_save
    machine = mm.machine
    local_irq_save(machine)
    gup_fast_pgd_range(mm, start, end, gup_flags, pages)
    local_irq_restore(machine)
    return len(pages)


def get_user_pages_fast_only(mm, start: int, nr_pages: int, gup_flags: int,
                             pages: list) -> int:
    """mm/gup.c get_user_pages_fast_only() -> gup_fast_fallback(..., FOLL_GET |
    FOLL_FAST_ONLY): GUP-fast with no slow-path fallback (KVM's and perf's use): the number
    of pages whose references were taken, from *start*, stopping at the first that cannot
    be got locklessly."""
    start &= PAGE_MASK
    end = start + nr_pages * PAGE_SIZE
    if nr_pages <= 0 or end <= start:
        return 0
    return gup_fast(mm, start, end, gup_flags | FOLL_GET | FOLL_FAST_ONLY, pages)
