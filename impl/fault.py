"""The page-fault side of mm/memory.c: from handle_mm_fault() down to the PTE.

Models mm/memory.c (handle_mm_fault, __handle_mm_fault, handle_pte_fault, do_pte_missing,
do_anonymous_page, do_fault, do_read_fault, do_fault_around, do_cow_fault, do_shared_fault,
__do_fault, finish_fault, set_pte_range, do_wp_page, wp_page_reuse, wp_page_copy,
wp_page_shared, fault_dirty_shared_page, do_page_mkwrite, finish_mkwrite_fault,
wp_can_reuse_anon_folio, do_swap_page, vm_normal_page, pmd_install, lock_mm_and_find_vma),
the helpers of include/linux/mm.h (maybe_mkwrite, vmf_anon_prepare, folio_prealloc), mm/swap.c
folio_add_lru_vma, mm/mlock.c mlock_new_folio, mm/vma.c vma_wants_writenotify and mm/mmap.c
vm_get_page_prot (the write bit of vma->vm_page_prot), and
mm/pgtable-generic.c ptep_clear_flush / ptep_set_access_flags (x86 form).

Simplifications common to the module:
* no THP and no hugetlb: __handle_mm_fault never creates or finds a huge PUD/PMD, and
  every folio is order 0 (nr_pages is always 1);
* no userfaultfd, no NUMA balancing (no protnone PTEs, no do_numa_page), no KSM, no
  device-private/exclusive entries, no PTE markers, no hwpoison, no memcg, no mmu notifiers;
* a user fault runs under the VMA's read lock alone when lock_vma_under_rcu gets it
  (FAULT_FLAG_VMA_LOCK, impl/mmap_lock.py), else under mmap_read_lock; every file of the
  model has ->map_pages (filemap_map_pages), so vmf_can_call_fault() never asks for a retry;
* vma->vm_ops and vma->vm_page_prot are not fields of the model's VMA: vm_ops is derived from
  vm_file (filemap.vma_vm_ops) and the only bit of vm_page_prot the fault path needs -- is
  mk_pte() writable -- from vm_flags and the file (:func:`vm_page_prot_write`);
* the zero page is pfn 0 (page.Zone); the accessed bit is set by every mk_pte (x86's
  protection_map carries _PAGE_ACCESSED; pte_sw_mkyoung is a no-op), and
  update_mmu_cache/update_mmu_tlb/flush_tlb_fix_spurious_fault are no-ops, as on x86;
* allocation never fails (no VM_FAULT_OOM from the allocator);
* swap: do_swap_page handles a real swap entry only as far as a scenario that installs one
  needs (see its docstring); a migration entry makes the fault wait for the migration to
  unlock the folio (impl/migrate.py migration_entry_wait) and return 0 so that the
  instruction is retried.
"""

from __future__ import annotations

from typing import Optional

from . import filemap, rmap, sched
from .bug import WARN, reports_bug
from .cpu import end_copy_watch, watch_copy
from .constants import (MM_ANONPAGES, MM_SWAPENTS, MMF_UNSTABLE, PAGE_MASK, PTRS_PER_TABLE,
                        VM_EXEC, VM_GROWSDOWN, VM_LOCKED, VM_MAYSHARE, VM_MAYWRITE, VM_MIXEDMAP,
                        VM_PFNMAP, VM_READ, VM_SHARED, VM_SPECIAL, VM_WRITE)
from .filemap import folio_mark_dirty, folio_test_lru, __folio_mark_uptodate, vma_vm_ops
from .locks import SpinLock, mmap_read_lock, mmap_read_trylock, mmap_read_unlock, spin_lock
from .mmap_lock import vma_end_read
from .mm_types import (add_mm_counter, dec_mm_counter, find_vma, inc_mm_counter,
                       linear_page_index, mm_counter_file, mm_flags_test, vma_is_anonymous,
                       vma_pages)
from .page import (PG_locked, PG_mlocked, PG_unevictable, PG_lru, PG_uptodate, Page,
                   folio_get, folio_lock, folio_put, folio_ref_count, folio_set_flag,
                   folio_test_anon, folio_test_dirty, folio_test_swapcache, folio_trylock,
                   folio_unlock)
from .pgtable import (EntryPtr, p4d_offset, pgd_offset, pmd_alloc,
                      pmdp_get, pte_alloc, pte_index, pte_lockptr, pte_offset_map,
                      pte_offset_map_lock, pte_unmap, pte_unmap_unlock, ptep_get, pmd_install, pte_alloc_one, pte_free, ptep_clear_flush, ptep_modify,
                      pud_alloc, set_pte_at)
from .pte import (is_migration_entry, non_swap_entry, pfn_pte, pte_mkdirty, pte_mkspecial,
                  pte_mkwrite, pte_mkyoung, pte_none, pte_present, pte_swp_exclusive, pte_t,
                  pte_write, swp_offset)
from .rmap import (RMAP_EXCLUSIVE, PageAnonExclusive, SetPageAnonExclusive,
                   folio_move_anon_rmap)
from .sched import KernelBug, NotModelled, model_only
from .swapfile import (__swap_count, folio_free_swap, free_swap_cache, folio_matches_swap_entry,
                       swap_cache_get_folio, swap_free, swap_read_folio, swap_slot_cached,
                       swapcache_clear, swapcache_prepare, swapin_readahead, vm_swap_full)

# --- include/linux/mm_types.h: enum fault_flag ---------------------------------------------------
FAULT_FLAG_WRITE = 1 << 0
FAULT_FLAG_MKWRITE = 1 << 1
FAULT_FLAG_ALLOW_RETRY = 1 << 2
FAULT_FLAG_RETRY_NOWAIT = 1 << 3
FAULT_FLAG_KILLABLE = 1 << 4
FAULT_FLAG_TRIED = 1 << 5
FAULT_FLAG_USER = 1 << 6
FAULT_FLAG_REMOTE = 1 << 7
FAULT_FLAG_INSTRUCTION = 1 << 8
FAULT_FLAG_INTERRUPTIBLE = 1 << 9
FAULT_FLAG_UNSHARE = 1 << 10
FAULT_FLAG_ORIG_PTE_VALID = 1 << 11
FAULT_FLAG_VMA_LOCK = 1 << 12
FAULT_FLAG_DEFAULT = FAULT_FLAG_ALLOW_RETRY | FAULT_FLAG_KILLABLE | FAULT_FLAG_INTERRUPTIBLE

# --- include/linux/mm_types.h: enum vm_fault_reason ----------------------------------------------
VM_FAULT_OOM = 0x000001
VM_FAULT_SIGBUS = 0x000002
VM_FAULT_MAJOR = 0x000004
VM_FAULT_HWPOISON = 0x000010
VM_FAULT_HWPOISON_LARGE = 0x000020
VM_FAULT_SIGSEGV = 0x000040
VM_FAULT_NOPAGE = 0x000100
VM_FAULT_LOCKED = 0x000200
VM_FAULT_RETRY = 0x000400
VM_FAULT_FALLBACK = 0x000800
VM_FAULT_DONE_COW = 0x001000
VM_FAULT_NEEDDSYNC = 0x002000
VM_FAULT_COMPLETED = 0x004000
VM_FAULT_ERROR = (VM_FAULT_OOM | VM_FAULT_SIGBUS | VM_FAULT_SIGSEGV | VM_FAULT_HWPOISON |
                  VM_FAULT_HWPOISON_LARGE | VM_FAULT_FALLBACK)

VM_FAULT_NAMES = ((VM_FAULT_OOM, "OOM"), (VM_FAULT_SIGBUS, "SIGBUS"), (VM_FAULT_MAJOR, "MAJOR"),
                  (VM_FAULT_HWPOISON, "HWPOISON"), (VM_FAULT_SIGSEGV, "SIGSEGV"),
                  (VM_FAULT_NOPAGE, "NOPAGE"), (VM_FAULT_LOCKED, "LOCKED"),
                  (VM_FAULT_RETRY, "RETRY"), (VM_FAULT_FALLBACK, "FALLBACK"),
                  (VM_FAULT_DONE_COW, "DONE_COW"), (VM_FAULT_COMPLETED, "COMPLETED"))


@model_only
def vm_fault_names(ret: int) -> str:
    """A vm_fault_t as text, for traces: ``"NOPAGE|LOCKED"``, ``"0"``."""
    names = [n for bit, n in VM_FAULT_NAMES if ret & bit]
    return "|".join(names) if names else "0"


class vm_fault:
    """``struct vm_fault``: the state of one fault as it travels down the handlers."""

    __slots__ = ("vma", "address", "real_address", "flags", "pgoff", "pud", "pmd",
                 "orig_pmd", "pte", "ptl", "orig_pte", "page", "cow_page", "prealloc_pte")

    def __init__(self, vma, address: int, flags: int):
        self.vma = vma
        self.address = address & PAGE_MASK
        self.real_address = address
        self.flags = flags
        self.pgoff = linear_page_index(vma, address)
        self.pud: Optional[EntryPtr] = None
        self.pmd: Optional[EntryPtr] = None
        self.orig_pmd = None
        self.pte: Optional[EntryPtr] = None
        self.ptl: Optional[SpinLock] = None
        self.orig_pte: pte_t = pte_t(0)
        self.page: Optional[Page] = None
        self.cow_page: Optional[Page] = None
        self.prealloc_pte: Optional[Page] = None

    def __repr__(self) -> str:
        return (f"<vm_fault {self.address:#x} flags={self.flags:#x} pgoff={self.pgoff} "
                f"orig_pte={self.orig_pte}>")


# --- protections: the write bit of vma->vm_page_prot (mm/mmap.c, mm/vma.c) ----------------------
def vma_is_shared_writable(vma) -> bool:
    """include/linux/mm.h vma_is_shared_writable()."""
    return (vma.vm_flags & (VM_WRITE | VM_SHARED)) == (VM_WRITE | VM_SHARED)


def vma_wants_writenotify(vma) -> bool:
    """mm/vma.c vma_wants_writenotify(): must the first write to a page of this shared
    writable mapping fault, so that the backing store sees it? Yes when the file has
    ->page_mkwrite or its mapping can write back dirty pages (a disk file); no for shmem
    (memfd, shared anonymous), whose shared writable PTEs are made writable at once.
    (Soft-dirty tracking and uffd-wp are off: new VMAs carry VM_SOFTDIRTY.)"""
    if not vma_is_shared_writable(vma):
        return False
    vm_ops = vma_vm_ops(vma)
    if vm_ops is not None and vm_ops.page_mkwrite is not None:
        return True
    return vma.vm_file is not None and filemap.mapping_can_writeback(vma.vm_file.f_mapping)


def vm_page_prot_write(vma) -> bool:
    """Is ``mk_pte(page, vma->vm_page_prot)`` writable? x86 protection_map: private
    mappings are never writable (PAGE_COPY: COW on write), shared writable ones are
    (PAGE_SHARED) unless vma_set_page_prot() dropped the write bit for write-notify."""
    if not vma_is_shared_writable(vma):
        return False
    return not vma_wants_writenotify(vma)


def vm_page_prot_none(vma) -> bool:
    """Is ``vma->vm_page_prot`` x86's PAGE_NONE (protection_map[] for a VMA with none of
    VM_READ, VM_WRITE, VM_EXEC), so that a PTE made from it is protnone?"""
    return not vma_is_accessible(vma)


def mk_pte(page: Page, vma) -> pte_t:
    """include/linux/mm.h mk_pte(page, vma->vm_page_prot): a young, clean PTE, writable as
    vm_page_prot says (protnone for a PROT_NONE VMA)."""
    return pfn_pte(page.pfn, write=vm_page_prot_write(vma), dirty=False, young=True,
                   protnone=vm_page_prot_none(vma))


def maybe_mkwrite(pte: pte_t, vma) -> pte_t:
    """include/linux/mm.h maybe_mkwrite(): make the PTE writable if the VMA is."""
    if vma.vm_flags & VM_WRITE:
        pte = pte_mkwrite(pte)
    return pte


def is_cow_mapping(flags: int) -> bool:
    """include/linux/mm.h is_cow_mapping(): private and may be written."""
    return (flags & (VM_SHARED | VM_MAYWRITE)) == VM_MAYWRITE


def vma_is_accessible(vma) -> bool:
    """include/linux/mm.h vma_is_accessible()."""
    return bool(vma.vm_flags & (VM_READ | VM_WRITE | VM_EXEC))


# --- small helpers of mm/memory.c and include/linux/mm.h -----------------------------------------
def check_stable_address_space(mm) -> int:
    """include/linux/oom.h check_stable_address_space(): the OOM reaper has started tearing
    down this mm (MMF_UNSTABLE): the fault must not map anything."""
    if mm_flags_test(mm, MMF_UNSTABLE):
        return VM_FAULT_SIGBUS
    return 0


@reports_bug
def _print_bad_pte(vma, addr: int, pte: pte_t, page: Optional[Page]) -> None:
    """mm/memory.c print_bad_pte() (the zap chain's, impl/zap.py)."""
    from .zap import print_bad_pte
    print_bad_pte(vma, addr, pte, page)


def vm_normal_page(vma, addr: int, pte: pte_t) -> Optional[Page]:
    """The struct page a present PTE maps, or None for a special mapping (the zero page,
    VM_PFNMAP/VM_MIXEDMAP). Models mm/memory.c vm_normal_page() -> __vm_normal_page() with
    CONFIG_ARCH_HAS_PTE_SPECIAL (x86): the zero page is always mapped pte_special.
    A special PTE that is not the zero page, or a pfn beyond mem_map, is a bad page map
    (dmesg) and gives None, as in the kernel."""
    pfn = pte.pfn
    zone = vma.vm_mm.zone
    if pte.special:
        # (CONFIG_FIND_NORMAL_PAGE: vm_ops->find_normal_page: not modelled)
        if vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP):
            return None
        if pfn == zone.zero_page.pfn:               # is_zero_pfn(pfn)
            return None
        _print_bad_pte(vma, addr, pte, None)
        return None
    if pfn >= len(zone.mem_map):                    # pfn > highest_memmap_pfn
        _print_bad_pte(vma, addr, pte, None)
        return None
    if pfn == zone.zero_page.pfn:
        # VM_WARN_ON_ONCE(is_zero_pfn(pfn)): a non-special zero-page PTE.
        WARN(vma.vm_mm.machine, f"vm_normal_page: non-special zero-page PTE at {addr:#x}")
    return zone.pfn_to_page(pfn)


vm_normal_folio = vm_normal_page


def folio_prealloc(mm, vma, addr: int, need_zero: bool) -> Page:
    """mm/internal.h folio_prealloc(): a new anonymous folio (zeroed when asked:
    vma_alloc_zeroed_movable_folio; the model's allocator always zeroes). Never fails."""
    return mm.zone.alloc_page("anon")


def vmf_anon_prepare(vmf) -> int:
    """mm/internal.h vmf_anon_prepare() -> mm/memory.c __vmf_anon_prepare(): make sure the
    VMA has an anon_vma before an anonymous page is added to it. Under the VMA's read lock
    alone (FAULT_FLAG_VMA_LOCK), preparing one needs mmap_read_trylock (it may look at the
    neighbours: find_mergeable_anon_vma); without it, VM_FAULT_RETRY with the VMA lock
    dropped, and the fault falls back to mmap_lock."""
    vma = vmf.vma
    sched.point("READ vma->anon_vma", reads=(vma.obj,))
    if vma.anon_vma is not None:
        return 0
    vma_locked = bool(vmf.flags & FAULT_FLAG_VMA_LOCK)
    if vma_locked and not mmap_read_trylock(vma.vm_mm):
        vma_end_read(vma)
        return VM_FAULT_RETRY
    ret = VM_FAULT_OOM if rmap.anon_vma_prepare(vma) else 0
    if vma_locked:
        mmap_read_unlock(vma.vm_mm)
    return ret


def mlock_new_folio(folio: Page) -> None:
    """mm/mlock.c mlock_new_folio(): a new folio faulted into a VM_LOCKED VMA goes straight
    to the unevictable LRU, PG_mlocked set. (The per-CPU mlock batch is drained at once, so
    its temporary reference is not modelled.)"""
    folio_set_flag(folio, PG_mlocked)
    folio_set_flag(folio, PG_unevictable | PG_lru)


def folio_add_lru_vma(folio: Page, vma) -> None:
    """mm/swap.c folio_add_lru_vma(): the unevictable (mlocked) LRU for a VM_LOCKED VMA,
    the normal LRU otherwise."""
    if folio_test_lru(folio):
        raise KernelBug(f"VM_BUG_ON_FOLIO(folio_test_lru(folio)): pfn {folio.pfn}")
    if (vma.vm_flags & (VM_LOCKED | VM_SPECIAL)) == VM_LOCKED:
        mlock_new_folio(folio)
    else:
        filemap.folio_add_lru(folio)


def copy_user_highpage(dst: Page, src: Page) -> None:
    """include/linux/highmem.h copy_mc_user_highpage(): the COW copy of a frame; a read of
    the source frame's contents (another CPU may be writing them)."""
    sched.point("copy_user_highpage", reads=(("frame", src.pfn),),
                writes=(("frame", dst.pfn),))
    dst.copy_data_from(src)


# --- page-table pieces of the fault path ---------------------------------------------------------


def ptep_set_access_flags(vma, address: int, ptep: EntryPtr, entry: pte_t, dirty: bool) -> bool:
    """arch/x86/mm/pgtable.c ptep_set_access_flags(): write *entry* (which only adds
    access/dirty/write permissions) if it differs from the PTE and *dirty*; no TLB flush (an
    upgrade needs none: a stale, weaker TLB entry just faults again). Returns changed."""
    changed = ptep_get(ptep) != entry
    if changed and dirty:
        ptep_modify(vma.vm_mm, address, ptep, entry, "ptep_set_access_flags")
    return changed


def pte_unmap_same(vmf) -> bool:
    """mm/memory.c pte_unmap_same(): on 64-bit a PTE is read atomically, so nothing to
    recheck; just drop the mapping of the PTE table (the end of its RCU section)."""
    pte_unmap(vmf.pte)
    vmf.pte = None
    return True


# --- mm/memory.c: the fault handlers ------------------------------------------------------------
def handle_mm_fault(vma, address: int, flags: int, regs=None) -> int:
    """Resolve a fault at *address* in *vma*; returns a vm_fault_t. The caller holds
    mmap_read_lock(vma->vm_mm), or the VMA's read lock (FAULT_FLAG_VMA_LOCK). Models
    mm/memory.c handle_mm_fault() (6.18): no hugetlb, no memcg OOM handling, no LRU-gen
    hooks, no VM_DROPPABLE."""
    # The fault handler may drop the lock (a retry), after which the VMA may be freed.
    mm = vma.vm_mm
    ret = sanitize_fault_flags(vma, flags)
    if not ret:
        # (arch_vma_access_permitted: no protection keys)
        # (is_vm_hugetlb_page: no hugetlb)
        ret = __handle_mm_fault(vma, address, flags)
    # out:
    mm_account_fault(mm, regs, address, flags, ret)
    return ret


def mm_account_fault(mm, regs, address: int, flags: int, ret: int) -> None:
    """mm/memory.c mm_account_fault() (6.18): count a completed, successful fault in
    ``current``'s maj_flt or min_flt (getrusage's ru_majflt / ru_minflt). A fault that
    asks for a retry is counted when the retry completes, a failed one not at all; a
    retried fault (FAULT_FLAG_TRIED) counts as major. GUP's faults (*regs* None) count too;
    only the perf events, which the model does not have, skip them. The model has no
    vm_event (PGFAULT) or memcg counters."""
    if ret & VM_FAULT_RETRY:
        return
    # (count_vm_event(PGFAULT), count_memcg_event_mm: not modelled)
    if ret & VM_FAULT_ERROR:
        return
    task = sched.current().task
    if task is None:                  # a unit test calling the fault path with no task
        return
    if ret & VM_FAULT_MAJOR or flags & FAULT_FLAG_TRIED:
        task.maj_flt += 1
    else:
        task.min_flt += 1
    # (if (!regs) return; perf_sw_event(PERF_COUNT_SW_PAGE_FAULTS_MAJ/MIN): no perf)


def sanitize_fault_flags(vma, flags: int) -> int:
    """mm/memory.c sanitize_fault_flags(): a write fault on a VMA that may never be written
    is a bug of the caller (access_error() should have caught it)."""
    if flags & FAULT_FLAG_UNSHARE:
        if flags & FAULT_FLAG_WRITE:
            return VM_FAULT_SIGSEGV
    elif flags & FAULT_FLAG_WRITE:
        if not vma.vm_flags & VM_MAYWRITE:
            WARN(vma.vm_mm.machine, "WARN_ON_ONCE(!(vma->vm_flags & VM_MAYWRITE))")
            return VM_FAULT_SIGSEGV
        if not vma.vm_flags & VM_WRITE and not is_cow_mapping(vma.vm_flags):
            WARN(vma.vm_mm.machine, "WARN_ON_ONCE(!is_cow_mapping(vma->vm_flags)): FOLL_FORCE "
                 "write fault on a shared VMA")
            return VM_FAULT_SIGSEGV
    return 0


def __handle_mm_fault(vma, address: int, flags: int) -> int:
    """The pgd -> p4d -> pud -> pmd descent, allocating missing tables, then the PTE level.
    Models mm/memory.c __handle_mm_fault(): no THP, so no create_huge_pud/pmd, no
    wp_huge_pmd, no huge or non-present (migration) pmd; the p4d level is folded."""
    vmf = vm_fault(vma, address, flags)
    mm = vma.vm_mm
    pgd = pgd_offset(mm, address)
    p4d = p4d_offset(pgd, address)                      # p4d_alloc: folded
    vmf.pud = pud_alloc(mm, p4d, address)
    # (pud_none && thp_vma_allowable_order(PUD_ORDER): no THP)
    vmf.pmd = pmd_alloc(mm, vmf.pud, address)
    # (pud_trans_unstable / create_huge_pmd: no THP)
    vmf.orig_pmd = pmdp_get(vmf.pmd)                    # pmdp_get_lockless
    if vmf.orig_pmd is None:
        return handle_pte_fault(vmf)                    # goto fallback
    # (!pmd_present: no PMD migration entries; pmd_trans_huge: no THP)
    return handle_pte_fault(vmf)


def handle_pte_fault(vmf) -> int:
    """The PTE level of a fault: dispatch on the PTE found (none, swap/migration, present)
    and, for a present one, do the write-protect fault or just set accessed/dirty.
    Models mm/memory.c handle_pte_fault(); the lockless pte_offset_map_rw_nolock read is a
    scheduling point; no protnone (NUMA hinting) PTEs."""
    if pmdp_get(vmf.pmd) is None:
        # Leave __pte_alloc() until later (do_anonymous_page / finish_fault).
        vmf.pte = None
        vmf.flags &= ~FAULT_FLAG_ORIG_PTE_VALID
    else:
        vmf.pte = pte_offset_map(vmf.pmd, vmf.address)   # pte_offset_map_rw_nolock
        if vmf.pte is None:
            return 0
        vmf.ptl = pte_lockptr(vmf.vma.vm_mm, vmf.pte)
        vmf.orig_pte = ptep_get(vmf.pte)                # ptep_get_lockless
        vmf.flags |= FAULT_FLAG_ORIG_PTE_VALID
        if pte_none(vmf.orig_pte):
            pte_unmap(vmf.pte)
            vmf.pte = None

    if vmf.pte is None:
        return do_pte_missing(vmf)

    if not pte_present(vmf.orig_pte):
        return do_swap_page(vmf)

    # (pte_protnone && vma_is_accessible: do_numa_page: no NUMA balancing)

    spin_lock(vmf.ptl)
    entry = vmf.orig_pte
    if ptep_get(vmf.pte) != entry:
        # (update_mmu_tlb: no-op on x86)
        pte_unmap_unlock(vmf.pte, vmf.ptl)
        return 0
    if vmf.flags & (FAULT_FLAG_WRITE | FAULT_FLAG_UNSHARE):
        if not pte_write(entry):
            return do_wp_page(vmf)
        elif vmf.flags & FAULT_FLAG_WRITE:
            entry = pte_mkdirty(entry)
    entry = pte_mkyoung(entry)
    if ptep_set_access_flags(vmf.vma, vmf.address, vmf.pte, entry,
                             bool(vmf.flags & FAULT_FLAG_WRITE)):
        pass                                            # update_mmu_cache_range: no-op
    else:
        pass                                            # fix_spurious_fault: no-op on x86
    pte_unmap_unlock(vmf.pte, vmf.ptl)
    return 0


def do_pte_missing(vmf) -> int:
    """mm/memory.c do_pte_missing(): anonymous memory or a file's page."""
    if vma_is_anonymous(vmf.vma):
        return do_anonymous_page(vmf)
    return do_fault(vmf)


def vmf_pte_changed(vmf) -> bool:
    """mm/memory.c vmf_pte_changed(): under the PTL, did someone else fill the PTE (or
    change the one we read)?"""
    if vmf.flags & FAULT_FLAG_ORIG_PTE_VALID:
        return ptep_get(vmf.pte) != vmf.orig_pte
    return not pte_none(ptep_get(vmf.pte))


def do_anonymous_page(vmf) -> int:
    """A fault on a none PTE of an anonymous VMA. A read maps the shared zero page
    (pte_special, read-only, no rss, no mapcount, no reference); a write allocates a zeroed
    anonymous folio, counts it in MM_ANONPAGES, adds its rmap, and maps it writable and dirty.
    Models mm/memory.c do_anonymous_page(): order-0 folios only (alloc_anon_folio's mTHP
    orders are off); no userfaultfd."""
    vma = vmf.vma
    addr = vmf.address
    ret = 0
    nr_pages = 1

    # File mapping without ->vm_ops ?
    if vma.vm_flags & VM_SHARED:
        return VM_FAULT_SIGBUS

    if pte_alloc(vma.vm_mm, vmf.pmd):
        return VM_FAULT_OOM

    # Use the zero-page for reads (mm_forbids_zeropage: never on x86)
    if not vmf.flags & FAULT_FLAG_WRITE:
        entry = pte_mkspecial(pfn_pte(vma.vm_mm.zone.zero_page.pfn, write=False))
        vmf.pte, vmf.ptl = pte_offset_map_lock(vma.vm_mm, vmf.pmd, vmf.address)
        if vmf.pte is None:
            return ret
        if vmf_pte_changed(vmf):
            pte_unmap_unlock(vmf.pte, vmf.ptl)          # update_mmu_tlb: no-op
            return ret
        ret = check_stable_address_space(vma.vm_mm)
        if ret:
            pte_unmap_unlock(vmf.pte, vmf.ptl)
            return ret
        # (userfaultfd_missing: not modelled)
        set_pte_at(vma.vm_mm, vmf.address, vmf.pte, entry)      # setpte:
        pte_unmap_unlock(vmf.pte, vmf.ptl)
        return ret

    # Allocate our own private page.
    ret = vmf_anon_prepare(vmf)
    if ret:
        return ret
    folio = folio_prealloc(vma.vm_mm, vma, vmf.address, True)   # alloc_anon_folio()
    addr = vmf.address                                  # ALIGN_DOWN(address, nr_pages*PAGE_SIZE)
    __folio_mark_uptodate(folio)

    entry = pfn_pte(folio.pfn, write=False)             # folio_mk_pte(folio, vm_page_prot)
    if vma.vm_flags & VM_WRITE:
        entry = pte_mkwrite(pte_mkdirty(entry))

    vmf.pte, vmf.ptl = pte_offset_map_lock(vma.vm_mm, vmf.pmd, addr)
    if vmf.pte is None:
        folio_put(folio)                                # goto release (no PTL held)
        return ret
    if vmf_pte_changed(vmf):
        pte_unmap_unlock(vmf.pte, vmf.ptl)              # update_mmu_tlb: no-op
        folio_put(folio)                                # release:
        return ret

    ret = check_stable_address_space(vma.vm_mm)
    if ret:
        pte_unmap_unlock(vmf.pte, vmf.ptl)
        folio_put(folio)
        return ret
    # (userfaultfd_missing: not modelled)
    # folio_ref_add(folio, nr_pages - 1): nr_pages is 1
    add_mm_counter(vma.vm_mm, MM_ANONPAGES, nr_pages)
    rmap.folio_add_new_anon_rmap(folio, vma, addr)
    folio_add_lru_vma(folio, vma)
    set_pte_at(vma.vm_mm, addr, vmf.pte, entry)         # setpte: set_ptes(..., nr_pages)
    pte_unmap_unlock(vmf.pte, vmf.ptl)
    return ret


def __do_fault(vmf) -> int:
    """Ask the VMA's ->fault for the page at vmf->pgoff; returns with vmf->page locked and
    referenced. Models mm/memory.c __do_fault(): the PTE table is preallocated (not yet
    installed) when the pmd is none; no userfaultfd, no hwpoison."""
    vma = vmf.vma
    if pmdp_get(vmf.pmd) is None and vmf.prealloc_pte is None:
        vmf.prealloc_pte = pte_alloc_one(vma.vm_mm)
    ret = vma_vm_ops(vma).fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY | VM_FAULT_DONE_COW):
        return ret
    folio = vmf.page
    # (PageHWPoison: not modelled)
    if not ret & VM_FAULT_LOCKED:
        folio_lock(folio)
    elif not folio.flags & PG_locked:
        raise KernelBug("VM_BUG_ON_PAGE(!folio_test_locked(folio))")
    return ret


def set_pte_range(vmf, folio: Page, page: Page, nr: int, addr: int) -> None:
    """Map *nr* pages of *folio* from *addr* at vmf->pte: make the PTE (dirty and writable
    for a write fault, via maybe_mkwrite; dirty for a read fault of a dirty folio through a
    writable vm_page_prot), add the rmap (a new anonymous page for a private write, the file
    rmap otherwise), set the PTE. Models mm/memory.c set_pte_range(); the caller holds the
    PTL and does the rss accounting."""
    vma = vmf.vma
    write = bool(vmf.flags & FAULT_FLAG_WRITE)
    if nr != 1:
        raise KernelBug("set_pte_range: large folios are not modelled")
    # (flush_icache_pages: no-op on x86)
    entry = mk_pte(page, vma)
    # prefault && arch_wants_old_prefaulted_pte(): false on x86, so the PTE stays young.
    if write:
        entry = maybe_mkwrite(pte_mkdirty(entry), vma)
    elif pte_write(entry) and folio_test_dirty(folio):
        entry = pte_mkdirty(entry)
    # (vmf_orig_pte_uffd_wp: not modelled)
    if write and not vma.vm_flags & VM_SHARED:
        # copy-on-write page
        rmap.folio_add_new_anon_rmap(folio, vma, addr)
        folio_add_lru_vma(folio, vma)
    else:
        rmap.folio_add_file_rmap_ptes(folio, page, nr, vma)
    set_pte_at(vma.vm_mm, addr, vmf.pte, entry)         # set_ptes(..., nr)
    # (update_mmu_cache_range: no-op on x86)


def finish_fault(vmf) -> int:
    """Install the page __do_fault found (or the COW copy) under the PTL, unless the PTE
    was filled meanwhile; count it (MM_ANONPAGES for a COW copy, the file or shmem counter
    otherwise). Consumes the caller's reference to the page on success.
    Models mm/memory.c finish_fault(): order 0 only, so no fallback loop."""
    vma = vmf.vma
    is_cow = bool(vmf.flags & FAULT_FLAG_WRITE) and not vma.vm_flags & VM_SHARED
    nr_pages = 1
    addr = vmf.address

    page = vmf.cow_page if is_cow else vmf.page
    folio = page
    # check even for read faults because we might have lost our CoWed page
    if not vma.vm_flags & VM_SHARED:
        ret = check_stable_address_space(vma.vm_mm)
        if ret:
            return ret
    # (needs_fallback: only for large folios crossing i_size; never here)

    if pmdp_get(vmf.pmd) is None:
        # (folio_test_pmd_mappable -> do_set_pmd: no THP)
        if vmf.prealloc_pte is not None:
            vmf.prealloc_pte = pmd_install(vma.vm_mm, vmf.pmd, vmf.prealloc_pte)
        elif pte_alloc(vma.vm_mm, vmf.pmd):
            return VM_FAULT_OOM

    # (userfaultfd_armed / nr_pages > 1: order 0 only)
    vmf.pte, vmf.ptl = pte_offset_map_lock(vma.vm_mm, vmf.pmd, addr)
    if vmf.pte is None:
        return VM_FAULT_NOPAGE

    # Re-check under ptl
    if vmf_pte_changed(vmf):
        pte_unmap_unlock(vmf.pte, vmf.ptl)              # update_mmu_tlb: no-op
        return VM_FAULT_NOPAGE

    # folio_ref_add(folio, nr_pages - 1): nr_pages is 1
    set_pte_range(vmf, folio, page, nr_pages, addr)
    type_ = MM_ANONPAGES if is_cow else mm_counter_file(folio)
    add_mm_counter(vma.vm_mm, type_, nr_pages)
    pte_unmap_unlock(vmf.pte, vmf.ptl)
    return 0


def should_fault_around(vmf) -> bool:
    """mm/memory.c should_fault_around(): the VMA has ->map_pages and fault-around is on."""
    if vma_vm_ops(vmf.vma).map_pages is None:
        return False
    # (uffd_disable_fault_around: not modelled)
    return fault_around_pages(vmf.vma.vm_mm) > 1


def fault_around_pages(mm) -> int:
    """mm/memory.c fault_around_pages: fault_around_bytes >> PAGE_SHIFT (16 by default; a
    power of two <= PTRS_PER_PTE, as fault_around_bytes_set() enforces)."""
    n = mm.machine.tunables.fault_around_pages
    if n < 1 or n > PTRS_PER_TABLE or n & (n - 1):
        raise ValueError(f"fault_around_pages must be a power of two in [1, 512], got {n}")
    return n


def do_fault_around(vmf) -> int:
    """Map the cached pages around the faulting one: a window of fault_around_pages PTEs,
    aligned down to that size in the PTE table, clamped to the VMA and to the PTE table.
    Models mm/memory.c do_fault_around()."""
    nr_pages = fault_around_pages(vmf.vma.vm_mm)
    pte_off = pte_index(vmf.address)
    # The page offset of vmf->address within the VMA.
    vma_off = vmf.pgoff - vmf.vma.vm_pgoff
    # The PTE offset of the start address, clamped to the VMA.
    from_pte = max(pte_off & ~(nr_pages - 1), pte_off - min(pte_off, vma_off))
    # The PTE offset of the end address, clamped to the VMA and PTE.
    to_pte = min(from_pte + nr_pages, PTRS_PER_TABLE,
                 pte_off + vma_pages(vmf.vma) - vma_off) - 1

    if pmdp_get(vmf.pmd) is None:
        vmf.prealloc_pte = pte_alloc_one(vmf.vma.vm_mm)

    # rcu_read_lock(): no RCU in the model (nothing frees page-cache pages)
    return vma_vm_ops(vmf.vma).map_pages(vmf, vmf.pgoff + from_pte - pte_off,
                                         vmf.pgoff + to_pte - pte_off)


def do_read_fault(vmf) -> int:
    """A read fault on a file page: fault-around first (which may map the faulting page
    itself: VM_FAULT_NOPAGE), else ->fault and finish_fault.
    Models mm/memory.c do_read_fault() (vmf_can_call_fault: no per-VMA lock)."""
    ret = 0
    if should_fault_around(vmf):
        ret = do_fault_around(vmf)
        if ret:
            return ret

    ret = __do_fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        return ret

    ret |= finish_fault(vmf)
    folio = vmf.page
    folio_unlock(folio)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        folio_put(folio)
    return ret


def do_cow_fault(vmf) -> int:
    """A write fault on a private file mapping whose PTE is none: copy the file page into a
    new anonymous page and map that (the page cache keeps the original).
    Models mm/memory.c do_cow_fault()."""
    vma = vmf.vma
    ret = vmf_anon_prepare(vmf)                         # (vmf_can_call_fault: ->map_pages)
    if ret:
        return ret

    folio = folio_prealloc(vma.vm_mm, vma, vmf.address, False)
    vmf.cow_page = folio

    ret = __do_fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        folio_put(folio)                                # uncharge_out:
        return ret
    if ret & VM_FAULT_DONE_COW:
        return ret

    copy_user_highpage(vmf.cow_page, vmf.page)          # copy_mc_user_highpage
    __folio_mark_uptodate(folio)

    ret |= finish_fault(vmf)
    folio_unlock(vmf.page)                              # unlock: unlock_page(vmf->page)
    folio_put(vmf.page)                                 # put_page(vmf->page)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        folio_put(folio)                                # uncharge_out:
    return ret


def do_shared_fault(vmf) -> int:
    """A write fault on a shared file mapping whose PTE is none: map the page-cache page
    writable and dirty, then mark the page dirty (fault_dirty_shared_page).
    Models mm/memory.c do_shared_fault()."""
    vma = vmf.vma
    ret = __do_fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        return ret

    folio = vmf.page

    # Check if the backing address space wants to know that the page is about to become
    # writable
    if vma_vm_ops(vma).page_mkwrite is not None:
        folio_unlock(folio)
        tmp = do_page_mkwrite(vmf, folio)
        if not tmp or tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            folio_put(folio)
            return tmp

    ret |= finish_fault(vmf)
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE | VM_FAULT_RETRY):
        folio_unlock(folio)
        folio_put(folio)
        return ret

    ret |= fault_dirty_shared_page(vmf)
    return ret


def do_fault(vmf) -> int:
    """A none PTE in a file VMA: read, private write (COW) or shared write.
    Models mm/memory.c do_fault(); frees the preallocated PTE table if unused."""
    vma = vmf.vma
    vm_mm = vma.vm_mm
    vm_ops = vma_vm_ops(vma)

    # The VMA was not fully populated on mmap() or missing VM_DONTEXPAND
    if vm_ops is None or vm_ops.fault is None:
        vmf.pte, vmf.ptl = pte_offset_map_lock(vm_mm, vmf.pmd, vmf.address)
        if vmf.pte is None:
            ret = VM_FAULT_SIGBUS
        else:
            ret = VM_FAULT_SIGBUS if pte_none(ptep_get(vmf.pte)) else VM_FAULT_NOPAGE
            pte_unmap_unlock(vmf.pte, vmf.ptl)
    elif not vmf.flags & FAULT_FLAG_WRITE:
        ret = do_read_fault(vmf)
    elif not vma.vm_flags & VM_SHARED:
        ret = do_cow_fault(vmf)
    else:
        ret = do_shared_fault(vmf)

    # preallocated pagetable is unused: free it
    if vmf.prealloc_pte is not None:
        pte_free(vm_mm, vmf.prealloc_pte)
        vmf.prealloc_pte = None
    return ret


# --- write-protect faults ------------------------------------------------------------------------
def do_page_mkwrite(vmf, folio: Page) -> int:
    """mm/memory.c do_page_mkwrite(): call ->page_mkwrite; return with the folio locked
    (VM_FAULT_LOCKED), or 0 to retry the fault if it was truncated meanwhile."""
    old_flags = vmf.flags
    vmf.flags = FAULT_FLAG_WRITE | FAULT_FLAG_MKWRITE
    # (IS_SWAPFILE: no swap files)
    ret = vma_vm_ops(vmf.vma).page_mkwrite(vmf)
    vmf.flags = old_flags
    if ret & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
        return ret
    if not ret & VM_FAULT_LOCKED:
        folio_lock(folio)
        if folio.mapping is None:
            folio_unlock(folio)
            return 0                                    # retry
        ret |= VM_FAULT_LOCKED
    elif not folio.flags & PG_locked:
        raise KernelBug("VM_BUG_ON_FOLIO(!folio_test_locked(folio))")
    return ret


def fault_dirty_shared_page(vmf) -> int:
    """mm/memory.c fault_dirty_shared_page(): mark the written shared page dirty (the page
    cache now holds data newer than the backing store) and unlock it. No writeback
    throttling (balance_dirty_pages) and no file times in the model."""
    folio = vmf.page
    dirtied = folio_mark_dirty(folio)
    if folio_test_anon(folio):
        raise KernelBug("VM_BUG_ON_FOLIO(folio_test_anon(folio))")
    folio_unlock(folio)
    # (file_update_time, balance_dirty_pages_ratelimited: not modelled)
    return 0


def wp_page_reuse(vmf, folio: Optional[Page]) -> None:
    """mm/memory.c wp_page_reuse(): the faulting mm may write the page it maps: make the PTE
    young, dirty and writable in place (no flush: an upgrade), drop the PTL."""
    vma = vmf.vma
    if not vmf.flags & FAULT_FLAG_WRITE:
        raise KernelBug("VM_BUG_ON(!(vmf->flags & FAULT_FLAG_WRITE))")
    if folio is not None and folio_test_anon(folio) and not PageAnonExclusive(vmf.page):
        raise KernelBug("VM_BUG_ON(folio_test_anon(folio) && !PageAnonExclusive(vmf->page))")
    # (folio_xchg_last_cpupid: no NUMA; flush_cache_page: no-op on x86)
    entry = pte_mkyoung(vmf.orig_pte)
    entry = maybe_mkwrite(pte_mkdirty(entry), vma)
    ptep_set_access_flags(vma, vmf.address, vmf.pte, entry, True)
    pte_unmap_unlock(vmf.pte, vmf.ptl)


def wp_page_copy(vmf) -> int:
    """Copy-on-write: allocate a new anonymous page (zeroed when the old one is the zero
    page, else a copy), and under the PTL, if the PTE is unchanged, switch it to the new page:
    account (a file page becomes an anonymous one), ptep_clear_flush the old PTE, add the new
    page's rmap, set the new PTE, and only then remove the old page's rmap; finally drop the
    references. Called with the old page referenced and the PTL dropped.
    Models mm/memory.c wp_page_copy() (no FAULT_FLAG_UNSHARE, no mmu notifiers). Model-only:
    the user stores into the old page between the copy and ptep_clear_flush are recorded
    (impl/cpu.py CopyWatch) and reported for LOST_WRITE.cow."""
    vma = vmf.vma
    mm = vma.vm_mm
    old_folio = vmf.page
    new_folio = None
    page_copied = 0

    ret = vmf_anon_prepare(vmf)
    if ret:
        if old_folio is not None:
            folio_put(old_folio)                        # out:
        return ret

    pfn_is_zero = vmf.orig_pte.pfn == mm.zone.zero_page.pfn
    new_folio = folio_prealloc(mm, vma, vmf.address, pfn_is_zero)

    watch = None
    if not pfn_is_zero:
        # __wp_page_copy_user(): the source always has a struct page here (no VM_PFNMAP)
        copy_user_highpage(new_folio, vmf.page)
        watch = watch_copy(mm, vmf.address, vmf.page.pfn)      # model-only
    __folio_mark_uptodate(new_folio)

    # Re-check the pte - we dropped the lock
    vmf.pte, vmf.ptl = pte_offset_map_lock(mm, vmf.pmd, vmf.address)
    if vmf.pte is not None and ptep_get(vmf.pte) == vmf.orig_pte:
        if old_folio is not None:
            if not folio_test_anon(old_folio):
                dec_mm_counter(mm, mm_counter_file(old_folio))
                inc_mm_counter(mm, MM_ANONPAGES)
        else:
            # (ksm_might_unmap_zero_page: no KSM)
            inc_mm_counter(mm, MM_ANONPAGES)
        # (flush_cache_page: no-op on x86)
        entry = pfn_pte(new_folio.pfn, write=False)     # folio_mk_pte(new, vm_page_prot)
        entry = maybe_mkwrite(pte_mkdirty(entry), vma)
        # Clear the old PTE and flush it before setting the new one, so that no CPU can
        # have the old and the new translation at the same time.
        ptep_clear_flush(vma, vmf.address, vmf.pte)
        if watch is not None:
            # model-only: no CPU can store through the old translation any more
            end_copy_watch(mm, watch, vmf.address, new_folio)
        rmap.folio_add_new_anon_rmap(new_folio, vma, vmf.address)
        folio_add_lru_vma(new_folio, vma)
        set_pte_at(mm, vmf.address, vmf.pte, entry)
        # (update_mmu_cache_range: no-op on x86)
        if old_folio is not None:
            # Only after the PTE points at the new page may the old mapcount drop.
            rmap.folio_remove_rmap_ptes(old_folio, vmf.page, 1, vma)
        # Free the old page..
        new_folio = old_folio
        page_copied = 1
        pte_unmap_unlock(vmf.pte, vmf.ptl)
    else:
        if vmf.pte is not None:
            pte_unmap_unlock(vmf.pte, vmf.ptl)          # update_mmu_tlb: no-op
        if watch is not None:
            end_copy_watch(mm, watch, vmf.address)      # model-only: the copy is dropped

    if new_folio is not None:
        folio_put(new_folio)
    if old_folio is not None:
        if page_copied:
            free_swap_cache(mm.machine, old_folio)
        folio_put(old_folio)
    return 0


def finish_mkwrite_fault(vmf, folio: Optional[Page]) -> int:
    """mm/memory.c finish_mkwrite_fault(): after ->page_mkwrite, retake the PTL and make the
    PTE writable unless it changed meanwhile."""
    if not vmf.vma.vm_flags & VM_SHARED:
        WARN(vmf.vma.vm_mm.machine, "WARN_ON_ONCE(!(vmf->vma->vm_flags & VM_SHARED)) in "
             "finish_mkwrite_fault")
    vmf.pte, vmf.ptl = pte_offset_map_lock(vmf.vma.vm_mm, vmf.pmd, vmf.address)
    if vmf.pte is None:
        return VM_FAULT_NOPAGE
    # We might have raced with another page fault while we released the pte_offset_map_lock.
    if ptep_get(vmf.pte) != vmf.orig_pte:
        pte_unmap_unlock(vmf.pte, vmf.ptl)              # update_mmu_tlb: no-op
        return VM_FAULT_NOPAGE
    wp_page_reuse(vmf, folio)
    return 0


def wp_page_shared(vmf, folio: Page) -> int:
    """A write to a read-only PTE of a shared file mapping (write-notify): tell the file
    (->page_mkwrite), make the PTE writable and dirty, mark the page dirty.
    Models mm/memory.c wp_page_shared()."""
    vma = vmf.vma
    ret = 0
    folio_get(folio)

    if vma_vm_ops(vma).page_mkwrite is not None:
        pte_unmap_unlock(vmf.pte, vmf.ptl)
        # (vmf_can_call_fault: no per-VMA lock)
        tmp = do_page_mkwrite(vmf, folio)
        if not tmp or tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            folio_put(folio)
            return tmp
        tmp = finish_mkwrite_fault(vmf, folio)
        if tmp & (VM_FAULT_ERROR | VM_FAULT_NOPAGE):
            folio_unlock(folio)
            folio_put(folio)
            return tmp
    else:
        wp_page_reuse(vmf, folio)
        folio_lock(folio)
    ret |= fault_dirty_shared_page(vmf)
    folio_put(folio)
    return ret


def wp_can_reuse_anon_folio(folio: Page, vma) -> bool:
    """mm/memory.c wp_can_reuse_anon_folio() for a small folio: reusable when the mapping's
    reference is the only one (checked again under the folio lock, after dropping the swap
    cache's if no other PTE references the slot); the folio then moves to this VMA's
    anon_vma (folio_move_anon_rmap). No KSM, no LRU batch references."""
    if folio_ref_count(folio) > 3:                      # (folio_test_ksm: no KSM)
        return False
    # (!folio_test_lru -> lru_add_drain(): the model's LRU holds no references)
    if folio_ref_count(folio) > 1 + folio_test_swapcache(folio):
        return False
    if not folio_trylock(folio):
        return False
    if folio_test_swapcache(folio):
        folio_free_swap(vma.vm_mm.machine, folio)
    if folio_ref_count(folio) != 1:
        folio_unlock(folio)
        return False
    folio_move_anon_rmap(folio, vma)
    folio_unlock(folio)
    return True


def do_wp_page(vmf) -> int:
    """A write to a present read-only PTE. Shared mapping: wp_page_shared (write-notify).
    Private mapping: reuse the page if it is an anonymous page only this mm holds
    (wp_page_reuse), else copy it (wp_page_copy; also for the zero page and for page-cache
    pages of a private file mapping). Entered with the PTL held; returns with it dropped.
    Models mm/memory.c do_wp_page() (no uffd-wp, no FAULT_FLAG_UNSHARE, no KSM)."""
    vma = vmf.vma
    folio = None

    vmf.page = vm_normal_page(vma, vmf.address, vmf.orig_pte)
    if vmf.page is not None:
        folio = vmf.page

    # Shared mapping: we are guaranteed to have VM_WRITE and FAULT_FLAG_WRITE set here.
    if vma.vm_flags & (VM_SHARED | VM_MAYSHARE):
        if vmf.page is None:
            # vmf->page = NULL; return wp_pfn_shared(vmf): a VM_PFNMAP/VM_MIXEDMAP mapping
            # (a special PTE); a shared mapping of the model always has a struct page.
            raise NotModelled("do_wp_page: wp_pfn_shared (no PFN mappings in the model)")
        return wp_page_shared(vmf, folio)

    # Private mapping: create an exclusive anonymous page copy if reuse is impossible. If we
    # encounter a page that is marked exclusive, we must reuse the page without further
    # checks.
    if (folio is not None and folio_test_anon(folio) and
            (PageAnonExclusive(vmf.page) or wp_can_reuse_anon_folio(folio, vma))):
        if not PageAnonExclusive(vmf.page):
            SetPageAnonExclusive(vmf.page)
        # (FAULT_FLAG_UNSHARE: not modelled)
        wp_page_reuse(vmf, folio)
        return 0

    # Ok, we need to copy. Oh, well..
    if folio is not None:
        folio_get(folio)
    pte_unmap_unlock(vmf.pte, vmf.ptl)
    return wp_page_copy(vmf)


# --- non-present PTEs: swap and migration entries ------------------------------------------------
def should_try_to_free_swap(machine, folio: Page, vma, fault_flags: int) -> bool:
    """mm/memory.c should_try_to_free_swap() (6.18): after a swap-in, drop the folio's swap
    cache entry when swap is filling up, the folio is locked in memory, or a write fault
    leaves the folio with only the cache's and the mapping's references (the slot's
    contents are about to go stale)."""
    if not folio_test_swapcache(folio):
        return False
    if vm_swap_full(machine) or vma.vm_flags & VM_LOCKED or folio.flags & PG_mlocked:
        return True
    # (folio_test_ksm: no KSM)
    return bool(fault_flags & FAULT_FLAG_WRITE) and folio_ref_count(folio) == 2


def do_swap_page(vmf) -> int:
    """A fault on a non-present, non-none PTE. A migration entry waits for the migration
    (migration_entry_wait) and returns 0 so that the access is retried. A swap entry is read
    back: from the swap cache if the folio is still there (reclaim has not finished with it,
    or another mm sharing the slot read it in), else -- the device being synchronous
    (SWP_SYNCHRONOUS_IO) -- into a new folio that skips the swap cache when this PTE is
    the slot's only reference (swapcache_prepare claims the slot meanwhile), or through the
    swap cache (swapin_readahead) when it is shared. The folio is mapped writable at once
    when it is exclusive (the swap PTE's exclusive bit, or a folio nobody else can see), its
    swap reference is dropped (swap_free) and the swap cache entry too when
    should_try_to_free_swap() says so; MM_ANONPAGES +1 and MM_SWAPENTS -1. Models
    mm/memory.c do_swap_page() of 6.18 (docs/research/swap-6.18.md), order 0: no KSM, no
    hwpoison, no uffd-wp, no memcg, no large folios; folio_lock_or_retry() waits for the lock
    (the mmap_lock-dropping retry is not modelled); the entry helpers are
    is_migration_entry()/non_swap_entry() (softleaf_* is 6.19+)."""
    vma = vmf.vma
    mm = vma.vm_mm
    machine = mm.machine
    ret = 0
    need_clear_cache = False

    if not pte_unmap_same(vmf):
        return ret

    entry = vmf.orig_pte
    if non_swap_entry(entry):                           # unlikely(non_swap_entry(entry))
        if is_migration_entry(entry):
            from .migrate import migration_entry_wait
            migration_entry_wait(mm, vmf.pmd, vmf.address)
        else:
            # (device-exclusive, device-private, hwpoison, PTE markers: not modelled)
            _print_bad_pte(vma, vmf.address, vmf.orig_pte, None)
            ret = VM_FAULT_SIGBUS
        return ret

    offset = swp_offset(entry)
    # get_swap_device(): no swapoff in the model, so the device is there.
    folio = swap_cache_get_folio(machine, offset)
    swapcache = folio
    if folio is None:
        if __swap_count(machine, offset) == 1:          # SWP_SYNCHRONOUS_IO: skip swapcache
            folio = mm.zone.alloc_page("anon")          # alloc_swap_folio()
            filemap.__folio_set_locked(folio)
            folio.flags |= filemap.PG_swapbacked        # __folio_set_swapbacked()
            if swapcache_prepare(machine, offset):
                # Relax a bit to prevent rapid repeated page faults (the slot is being
                # swapped in by another fault): the model sleeps until the slot's cache bit
                # changes, which a tick's sleep and the refault would find.
                sched.point("schedule_timeout_uninterruptible(1)",
                            reads=(("swap", offset),),
                            wait=lambda: not swap_slot_cached(machine, offset))
                folio_unlock(folio)                     # out_page:
                folio_put(folio)                        # out_release:
                return ret
            need_clear_cache = True
            filemap.folio_add_lru(folio)
            folio.swap_slot = offset                    # folio->swap = entry
            swap_read_folio(machine, folio, offset)
            folio.swap_slot = 0                         # folio->private = NULL
        else:
            folio = swapin_readahead(machine, offset)
            swapcache = folio
        if folio is None:
            # The slot was freed meanwhile: somebody else changed this PTE (the kernel
            # returns VM_FAULT_OOM only if the PTE is unchanged, which a freed slot rules
            # out).
            vmf.pte, vmf.ptl = pte_offset_map_lock(mm, vmf.pmd, vmf.address)
            if vmf.pte is not None:
                if ptep_get(vmf.pte) == vmf.orig_pte:
                    raise KernelBug(f"do_swap_page: swap slot {offset} freed under its PTE")
                pte_unmap_unlock(vmf.pte, vmf.ptl)
            return ret
        ret = VM_FAULT_MAJOR                            # count_vm_event(PGMAJFAULT)

    folio_lock(folio)                                   # folio_lock_or_retry()
    page = folio
    if swapcache is not None:
        # Make sure folio_free_swap() or swapoff did not release the swapcache from under us.
        if not folio_matches_swap_entry(folio, offset):
            return _swap_out_page(machine, folio, offset, ret, need_clear_cache)
        # (PageHWPoison, ksm_might_need_to_copy, lru_add_drain: not modelled)

    # Back out if somebody else already faulted in this pte.
    vmf.pte, vmf.ptl = pte_offset_map_lock(mm, vmf.pmd, vmf.address)
    if vmf.pte is None or ptep_get(vmf.pte) != vmf.orig_pte:
        if vmf.pte is not None:                         # out_nomap:
            pte_unmap_unlock(vmf.pte, vmf.ptl)
        return _swap_out_page(machine, folio, offset, ret, need_clear_cache)
    if not folio.flags & PG_uptodate:
        pte_unmap_unlock(vmf.pte, vmf.ptl)
        return _swap_out_page(machine, folio, offset, VM_FAULT_SIGBUS, need_clear_cache)

    # A folio read outside the swap cache is ours alone; one in the swap cache is exclusive
    # if its PTE said so when it was swapped out.
    exclusive = pte_swp_exclusive(vmf.orig_pte)
    if folio is not swapcache:
        exclusive = True
    # (SWP_STABLE_WRITES with writeback: not the model's device)
    # (arch_swap_restore: no-op on x86)

    # Remove the swap entry and conditionally try to free up the swapcache.
    swap_free(machine, offset)
    if should_try_to_free_swap(machine, folio, vma, vmf.flags):
        folio_free_swap(machine, folio)

    add_mm_counter(mm, MM_ANONPAGES, 1)
    add_mm_counter(mm, MM_SWAPENTS, -1)
    pte = pfn_pte(page.pfn, write=False)                # mk_pte(page, vma->vm_page_prot)
    rmap_flags = 0                                      # RMAP_NONE
    # Same logic as in do_wp_page(): a folio only we hold can be mapped writable.
    if exclusive or folio_ref_count(folio) == 1:
        if vma.vm_flags & VM_WRITE:
            pte = pte_mkwrite(pte)
            if vmf.flags & FAULT_FLAG_WRITE:
                pte = pte_mkdirty(pte)
                vmf.flags &= ~FAULT_FLAG_WRITE
        rmap_flags |= RMAP_EXCLUSIVE
    vmf.orig_pte = pte
    # folio_ref_add(folio, nr_pages - 1): order 0
    if not folio_test_anon(folio):
        # The folio read outside the swap cache (or a swap cache folio nobody mapped yet).
        rmap.folio_add_new_anon_rmap(folio, vma, vmf.address, rmap_flags)
    else:
        rmap.folio_add_anon_rmap_ptes(folio, page, 1, vma, vmf.address, rmap_flags)
    set_pte_at(mm, vmf.address, vmf.pte, pte)
    folio_unlock(folio)

    if vmf.flags & FAULT_FLAG_WRITE:
        ret |= do_wp_page(vmf)
        if ret & VM_FAULT_ERROR:
            ret &= VM_FAULT_ERROR
    else:
        pte_unmap_unlock(vmf.pte, vmf.ptl)              # unlock:
    if need_clear_cache:                                # out:
        swapcache_clear(machine, offset)
    return ret


def _swap_out_page(machine, folio: Page, offset: int, ret: int, need_clear_cache: bool) -> int:
    """do_swap_page()'s ``out_page:`` / ``out_release:`` tail: unlock and drop the folio,
    give back the skip-swapcache claim on the slot."""
    folio_unlock(folio)
    folio_put(folio)
    if need_clear_cache:
        swapcache_clear(machine, offset)
    return ret
# --- finding the VMA (mm/memory.c, CONFIG_LOCK_MM_AND_FIND_VMA) ----------------------------------
def mmap_upgrade_trylock(mm) -> bool:
    """mm/memory.c mmap_upgrade_trylock(): the kernel has no such operation yet: false."""
    return False


def upgrade_mmap_lock_carefully(mm, regs=None) -> bool:
    """mm/memory.c upgrade_mmap_lock_carefully(): drop the read lock and take the write lock
    (killable: no fatal signals in the model, so it always succeeds)."""
    from .locks import mmap_write_lock_killable
    mmap_read_unlock(mm)
    if mmap_write_lock_killable(mm):
        return False
    return True


def lock_mm_and_find_vma(mm, addr: int, regs=None):
    """mm/memory.c lock_mm_and_find_vma(): take mmap_lock for read and find the VMA that
    contains *addr*; below a VM_GROWSDOWN VMA, take the write lock, look again and grow the
    stack down to *addr* (expand_stack_locked), then downgrade. None (with the lock dropped)
    if there is no VMA for *addr*."""
    from .locks import mmap_write_downgrade, mmap_write_unlock
    from .mmap import expand_stack_locked
    mmap_read_lock(mm)                                  # get_mmap_lock_carefully()
    vma = find_vma(mm, addr)
    if vma is not None and vma.vm_start <= addr:
        return vma
    # No VMA contains addr: only a stack VMA above it can help, by growing down.
    if vma is None or not vma.vm_flags & VM_GROWSDOWN:
        mmap_read_unlock(mm)
        return None
    # Growing needs the write lock; without an atomic upgrade the lock is dropped and
    # re-taken, so the VMA is looked up again.
    if not mmap_upgrade_trylock(mm):
        if not upgrade_mmap_lock_carefully(mm, regs):
            return None
        vma = find_vma(mm, addr)
        if vma is None:
            mmap_write_unlock(mm)                       # fail:
            return None
        if vma.vm_start <= addr:
            mmap_write_downgrade(mm)                    # success:
            return vma
        if not vma.vm_flags & VM_GROWSDOWN:
            mmap_write_unlock(mm)
            return None
    if expand_stack_locked(vma, addr):
        mmap_write_unlock(mm)
        return None
    mmap_write_downgrade(mm)
    return vma