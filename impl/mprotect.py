"""mprotect(2): mm/mprotect.c of Linux 6.18.

Models do_mprotect_pkey, mprotect_fixup, change_protection, change_protection_range,
change_p4d_range, change_pud_range, change_pmd_range, change_pte_range,
change_present_ptes, prot_commit_flush_ptes, set_write_prot_commit_flush_ptes,
maybe_change_pte_writable, can_change_shared_pte_writable, and the helpers they use (6.18's
can_change_pte_writable / can_change_private_pte_writable serve NUMA hinting, which the
model does not have; commit_anon_folio_batch's PageAnonExclusive test stands for the
private case): include/linux/mman.h arch_validate_prot /
calc_vm_prot_bits, include/linux/mm.h vma_wants_manual_pte_write_upgrade, x86's
pte_modify / pte_needs_flush (arch/x86/include/asm/pgtable.h, tlbflush.h) and the generic
ptep_modify_prot_start / ptep_modify_prot_commit (get-and-clear, then set: between the two
the PTE is none, and a concurrent access faults and waits for mmap_lock).

The TLB side is 6.18's: the PTE changes are gathered in an mmu_gather (tlb_gather_mmu in
do_mprotect_pkey, tlb_flush_pte_range per changed PTE that needs it, tlb_end_vma at the end
of each VMA, tlb_finish_mmu before mmap_lock is dropped). A PTE that gains permissions
(write, dirty, young) needs no flush on x86 (pte_needs_flush); on arm64 every change is
flushed.

Behaviour on this machine's real kernel (6.18.44, ctypes, tests/impl/test_mprotect.py):
PROT_GROWSDOWN|PROT_GROWSUP -> -EINVAL first; an unaligned start -> -EINVAL; len 0 -> 0;
a wrapping range -> -ENOMEM; unknown prot bits (other than PROT_SEM) -> -EINVAL; a start in
a hole -> -ENOMEM with nothing changed; a hole after the first VMA -> -ENOMEM after the VMAs
before the hole were changed; PROT_GROWSUP -> -EINVAL (no VM_GROWSUP on x86).

Simplifications: no protection keys (pkey must be -1 or 0), no READ_IMPLIES_EXEC, no mseal,
no MDWE, no LSM, no vm_ops->mprotect, no rlimits or overcommit accounting (may_expand_vm and
security_vm_enough_memory_mm succeed; VM_ACCOUNT is still set and cleared as the kernel
does), no userfaultfd-wp, no NUMA hinting (MM_CP_PROT_NUMA), no THP, no hugetlb, no PFN
mappings (the L1TF prot-none PFN check is left out); vm_page_prot is derived from vm_flags
(fault.vm_page_prot_write). PROT_NONE makes x86 protnone PTEs (pte_t.protnone: present to
the kernel, not to the MMU), as pte_modify() does with PAGE_NONE.
"""

from __future__ import annotations

from . import sched
from .bug import WARN
from .constants import (EACCES, EAGAIN, EINTR, EINVAL, ENOMEM, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE,
                        PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_READ, PROT_WRITE,
                        VM_ACCOUNT, VM_EXEC, VM_GROWSDOWN, VM_HUGETLB, VM_LOCKED, VM_NONE,
                        VM_NORESERVE, VM_READ, VM_SHARED, VM_WRITE)
from .locks import mmap_write_lock_killable, mmap_write_unlock
from .mm_types import VmaIterator, vm_flags_reset, vma_is_anonymous, vma_start_write
from .mmu_gather import (mmu_gather, tlb_end_vma, tlb_finish_mmu, tlb_flush_pte_range,
                         tlb_gather_mmu, tlb_start_vma)
from .page import folio_test_anon
from .pgtable import (EntryPtr, p4d_addr_end, p4d_offset, pgd_addr_end, pgd_offset, pgdp_get,
                      pmd_addr_end, pmd_offset, pmdp_get, pte_offset_map_lock,
                      pte_unmap_unlock, ptep_get, ptep_get_and_clear, pud_addr_end,
                      pud_offset, pudp_get, set_pte_at)
from .rmap import flush_tlb_batched_pending
from .pte import (is_writable_migration_entry, make_migration_entry, pte_dirty, pte_mkwrite,
                  pte_none, pte_present, pte_protnone, pte_t, pte_write)
from .sched import KernelBug
from .word import MASK64

PROT_SEM = 0x8
# x86 has no VM_GROWSUP (include/linux/mm.h: VM_GROWSUP = VM_NONE).
VM_GROWSUP = VM_NONE
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC

# include/linux/mm.h: change_protection() flags.
MM_CP_TRY_CHANGE_WRITABLE = 1 << 0
MM_CP_PROT_NUMA = 1 << 1
MM_CP_UFFD_WP = 1 << 2
MM_CP_UFFD_WP_RESOLVE = 1 << 3


# --- include/linux/mman.h ------------------------------------------------------------------------
def arch_validate_prot(prot: int, addr: int) -> bool:
    """include/linux/mman.h arch_validate_prot() (generic; x86 has no override)."""
    return (prot & ~(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM)) == 0


def calc_vm_prot_bits(prot: int, pkey: int) -> int:
    """include/linux/mman.h calc_vm_prot_bits() (no pkey bits)."""
    flags = 0
    if prot & PROT_READ:
        flags |= VM_READ
    if prot & PROT_WRITE:
        flags |= VM_WRITE
    if prot & PROT_EXEC:
        flags |= VM_EXEC
    return flags


def PAGE_ALIGN(x: int) -> int:
    return ((x + PAGE_SIZE - 1) & PAGE_MASK) & MASK64


# --- when may a PTE become writable without a fault ------------------------------------------
def vma_wants_manual_pte_write_upgrade(vma) -> bool:
    """include/linux/mm.h vma_wants_manual_pte_write_upgrade(): private writable mappings
    always (COW must be checked PTE by PTE); shared ones when write-notify keeps their
    vm_page_prot read-only."""
    from .fault import vma_wants_writenotify
    if vma.vm_flags & VM_SHARED:
        return vma_wants_writenotify(vma)
    return bool(vma.vm_flags & VM_WRITE)


def maybe_change_pte_writable(vma, pte: pte_t) -> bool:
    """mm/mprotect.c maybe_change_pte_writable() (no soft-dirty, no uffd-wp tracking in the
    model)."""
    if not vma.vm_flags & VM_WRITE:
        WARN(vma.vm_mm.machine, "WARN_ON_ONCE(!(vma->vm_flags & VM_WRITE))")
        return False
    # A protnone entry is not accessible at all: leave it alone.
    if pte_protnone(pte):
        return False
    return True


def can_change_shared_pte_writable(vma, pte: pte_t) -> bool:
    """mm/mprotect.c can_change_shared_pte_writable(): a dirty PTE of a write-notified
    shared mapping: the filesystem was already told."""
    if not maybe_change_pte_writable(vma, pte):
        return False
    return pte_dirty(pte)


# --- the PTE operations (x86) --------------------------------------------------------------------
def pte_modify(oldpte: pte_t, vma) -> pte_t:
    """arch/x86/include/asm/pgtable.h pte_modify(pte, vma->vm_page_prot): keep the pfn and
    the dirty/accessed/special bits (_PAGE_CHG_MASK), take the protection from the VMA:
    writable only when vm_page_prot is (a shared writable mapping without write-notify),
    protnone when it is PAGE_NONE (a PROT_NONE VMA: _PAGE_PRESENT clear, _PAGE_PROTNONE
    set), present to the MMU again otherwise. (The L1TF PFN inversion of protnone entries,
    flip_protnone_guard, and the shadow-stack saved-dirty bit are left out.)"""
    from .fault import vm_page_prot_none, vm_page_prot_write
    protnone = vm_page_prot_none(vma)
    return pte_t(oldpte.kind, oldpte.pfn, vm_page_prot_write(vma) and not protnone,
                 oldpte.dirty, oldpte.young, oldpte.special, protnone=protnone)


def pte_needs_flush(machine, oldpte: pte_t, newpte: pte_t) -> bool:
    """arch/x86/include/asm/tlbflush.h pte_needs_flush() on x86: a flush is needed when a
    permission or state bit is taken away (present, write, dirty, accessed) or the pfn
    changes, not when one is added; an entry the MMU could not use (not present, or
    protnone: _PAGE_PRESENT clear) needs none. arm64 uses the generic "always"; so does the
    model's ppc64, a simplification that only adds flushes (book3s64's pte_needs_flush()
    skips pure permission upgrades too)."""
    if machine.arch != "x86":
        return True
    # !PRESENT -> *: no need for flush (a protnone entry is not _PAGE_PRESENT).
    if not pte_present(oldpte) or pte_protnone(oldpte):
        return False
    if not pte_present(newpte) or pte_protnone(newpte):
        return True                               # _PAGE_PRESENT cleared
    if oldpte.pfn != newpte.pfn or oldpte.special != newpte.special:
        return True
    # Flags that can only be changed by clearing them: need flush.
    if (oldpte.write and not newpte.write) or (oldpte.dirty and not newpte.dirty) or \
            (oldpte.young and not newpte.young):
        return True
    return False


def ptep_modify_prot_start(vma, addr: int, ptep: EntryPtr) -> pte_t:
    """include/linux/pgtable.h ptep_modify_prot_start() (generic, as x86 native): an atomic
    get-and-clear, so no hardware A/D update is lost; the PTE is none until the commit."""
    return ptep_get_and_clear(vma.vm_mm, addr, ptep)


def ptep_modify_prot_commit(vma, addr: int, ptep: EntryPtr, old_pte: pte_t, pte: pte_t) -> None:
    """include/linux/pgtable.h ptep_modify_prot_commit(): set_pte_at()."""
    set_pte_at(vma.vm_mm, addr, ptep, pte)


def prot_commit_flush_ptes(vma, addr: int, ptep: EntryPtr, oldpte: pte_t, ptent: pte_t,
                           nr_ptes: int, idx: int, set_write: bool, tlb: mmu_gather) -> None:
    """mm/mprotect.c prot_commit_flush_ptes(): write the new PTE (writable if *set_write*)
    and, if the change took something away, queue the TLB invalidation on the gather."""
    addr += idx * PAGE_SIZE
    ptep = ptep + idx
    if set_write:
        ptent = pte_mkwrite(ptent)
    ptep_modify_prot_commit(vma, addr, ptep, oldpte, ptent)   # modify_prot_commit_ptes
    if pte_needs_flush(vma.vm_mm.machine, oldpte, ptent):
        tlb_flush_pte_range(tlb, addr, nr_ptes * PAGE_SIZE)


def set_write_prot_commit_flush_ptes(vma, folio, page, addr: int, ptep: EntryPtr,
                                     oldpte: pte_t, ptent: pte_t, nr_ptes: int,
                                     tlb: mmu_gather) -> None:
    """mm/mprotect.c set_write_prot_commit_flush_ptes() for an order-0 folio: a shared PTE
    becomes writable if dirty; a private one if it maps an exclusive anonymous page
    (commit_anon_folio_batch with a batch of one)."""
    from .rmap import PageAnonExclusive
    if vma.vm_flags & VM_SHARED:
        set_write = can_change_shared_pte_writable(vma, ptent)
        prot_commit_flush_ptes(vma, addr, ptep, oldpte, ptent, nr_ptes, 0, set_write, tlb)
        return
    set_write = maybe_change_pte_writable(vma, ptent) and folio is not None and \
        folio_test_anon(folio)
    if not set_write:
        prot_commit_flush_ptes(vma, addr, ptep, oldpte, ptent, nr_ptes, 0, set_write, tlb)
        return
    # commit_anon_folio_batch(): one page, so one sub-batch.
    expected_anon_exclusive = PageAnonExclusive(page)
    prot_commit_flush_ptes(vma, addr, ptep, oldpte, ptent, nr_ptes, 0,
                           expected_anon_exclusive, tlb)


def change_present_ptes(tlb: mmu_gather, vma, addr: int, ptep: EntryPtr, nr_ptes: int,
                        end: int, folio, page, cp_flags: int) -> None:
    """mm/mprotect.c change_present_ptes(): start (get-and-clear), compute the new PTE,
    commit it, maybe writable, and queue the flush."""
    oldpte = ptep_modify_prot_start(vma, addr, ptep)           # modify_prot_start_ptes
    ptent = pte_modify(oldpte, vma)
    # (uffd_wp / uffd_wp_resolve: not modelled)
    if cp_flags & MM_CP_TRY_CHANGE_WRITABLE and not pte_write(ptent):
        set_write_prot_commit_flush_ptes(vma, folio, page, addr, ptep, oldpte, ptent,
                                         nr_ptes, tlb)
    else:
        prot_commit_flush_ptes(vma, addr, ptep, oldpte, ptent, nr_ptes, 0, False, tlb)


def change_pte_range(tlb: mmu_gather, vma, pmd: EntryPtr, addr: int, end: int,
                     cp_flags: int) -> int:
    """Change the protection of the PTEs of one table under its lock; returns the number of
    PTEs changed, or -EAGAIN if the table went away.
    Models mm/mprotect.c change_pte_range() of 6.18 (order-0 folios: no batching; no NUMA
    hinting; no uffd markers; swp_entry helpers of 6.18)."""
    from .zap import vm_normal_page
    pages = 0
    # tlb_change_page_size(tlb, PAGE_SIZE): one page size in the model.
    pte, ptl = pte_offset_map_lock(vma.vm_mm, pmd, addr)
    if pte is None:
        return -EAGAIN
    # A reclaim or migration thread may have cleared PTEs of this table with the flush
    # batched (TTU_BATCH_FLUSH): flush before changing what they left (3ea277194daa).
    flush_tlb_batched_pending(vma.vm_mm)
    while True:
        nr_ptes = 1
        oldpte = ptep_get(pte)
        if pte_present(oldpte):
            page = vm_normal_page(vma, addr, oldpte)
            folio = page
            # nr_ptes = mprotect_folio_pte_batch(...): 1 for order-0 folios
            change_present_ptes(tlb, vma, addr, pte, 1, end, cp_flags=cp_flags,
                                folio=folio, page=page)
            pages += nr_ptes
        elif pte_none(oldpte):
            # Nobody plays with any none ptes besides userfaultfd.
            pass
        else:
            newpte = oldpte
            if is_writable_migration_entry(oldpte):
                # A protection check is difficult so just be safe and disable write
                # (make_readable_exclusive_migration_entry for anon, readable otherwise:
                # the model's migration entry has no exclusive bit).
                newpte = make_migration_entry(oldpte.pfn, False)
            # (device-private entries, PTE markers, uffd-wp: not modelled)
            if newpte != oldpte:
                set_pte_at(vma.vm_mm, addr, pte, newpte)
                pages += 1
        pte = pte + nr_ptes
        addr += nr_ptes * PAGE_SIZE
        if addr == end:
            break
    pte_unmap_unlock(pte, ptl)
    return pages


def change_pmd_range(tlb: mmu_gather, vma, pud: EntryPtr, pudval, addr: int, end: int,
                     cp_flags: int) -> int:
    """mm/mprotect.c change_pmd_range() (no huge pmds, no pgtable population)."""
    pages = 0
    pmd = pmd_offset(pud, pudval, addr)
    while True:
        next_ = pmd_addr_end(addr, end)
        # change_pmd_prepare(): only for uffd-wp
        if pmdp_get(pmd) is not None:
            ret = change_pte_range(tlb, vma, pmd, addr, next_, cp_flags)
            if ret < 0:
                continue                                        # goto again
            pages += ret
        pmd = pmd + 1
        addr = next_
        if addr == end:
            return pages


def change_pud_range(tlb: mmu_gather, vma, p4d: EntryPtr, p4dval, addr: int, end: int,
                     cp_flags: int) -> int:
    """mm/mprotect.c change_pud_range() (no huge puds, no mmu notifiers)."""
    pages = 0
    pud = pud_offset(p4d, p4dval, addr)
    while True:
        next_ = pud_addr_end(addr, end)
        pudval = pudp_get(pud)
        if pudval is not None:
            pages += change_pmd_range(tlb, vma, pud, pudval, addr, next_, cp_flags)
        pud = pud + 1
        addr = next_
        if addr == end:
            return pages


def change_p4d_range(tlb: mmu_gather, vma, pgd: EntryPtr, addr: int, end: int,
                     cp_flags: int) -> int:
    """mm/mprotect.c change_p4d_range(): the folded level."""
    pages = 0
    p4d = p4d_offset(pgd, addr)
    while True:
        next_ = p4d_addr_end(addr, end)
        p4dval = pgdp_get(p4d)
        if p4dval is not None:
            pages += change_pud_range(tlb, vma, p4d, p4dval, addr, next_, cp_flags)
        p4d = p4d + 1
        addr = next_
        if addr == end:
            return pages


def change_protection_range(tlb: mmu_gather, vma, addr: int, end: int, cp_flags: int) -> int:
    """mm/mprotect.c change_protection_range(): walk the tables of [addr, end) between
    tlb_start_vma() and tlb_end_vma() (which flushes what the walk gathered)."""
    mm = vma.vm_mm
    pages = 0
    if addr >= end:
        raise KernelBug(f"BUG_ON(addr >= end) in change_protection_range: {addr:#x}")
    pgd = pgd_offset(mm, addr)
    tlb_start_vma(tlb, vma)
    while True:
        next_ = pgd_addr_end(addr, end)
        if pgdp_get(pgd) is not None:
            pages += change_p4d_range(tlb, vma, pgd, addr, next_, cp_flags)
        pgd = pgd + 1
        addr = next_
        if addr == end:
            break
    tlb_end_vma(tlb, vma)
    return pages


def change_protection(tlb: mmu_gather, vma, start: int, end: int, cp_flags: int) -> int:
    """Apply vma's (new) protection to the PTEs of [start, end); returns the number of PTEs
    changed. Models mm/mprotect.c change_protection() (no NUMA hinting, no hugetlb)."""
    if cp_flags & MM_CP_PROT_NUMA:
        raise KernelBug("WARN_ON_ONCE(cp_flags & MM_CP_PROT_NUMA): not modelled")
    if vma.vm_flags & VM_HUGETLB:
        raise KernelBug("hugetlb_change_protection: no hugetlb in the model")
    return change_protection_range(tlb, vma, start, end, cp_flags)


# --- the VMA side --------------------------------------------------------------------------------
def mprotect_fixup(vmi, tlb: mmu_gather, vma, pprev: list, start: int, end: int,
                   newflags: int) -> int:
    """Give [start, end) of *vma* the flags *newflags*: split/merge with vma_modify_flags()
    (impl/vma.py), set the flags, change the PTEs, and for a private VM_LOCKED VMA that
    became writable, populate it (break COW now). ``pprev`` is a one-element list standing
    for ``struct vm_area_struct **pprev``. Returns 0 or a negative errno.
    Models mm/mprotect.c mprotect_fixup() of 6.18 (see the module doc for what is not
    modelled)."""
    from .gup import populate_vma_page_range
    from .mmap import vm_stat_account
    from .vma import IS_ERR, vma_modify_flags
    mm = vma.vm_mm
    oldflags = vma.vm_flags                       # READ_ONCE(vma->vm_flags)
    nrpages = (end - start) >> PAGE_SHIFT
    mm_cp_flags = 0
    # can_modify_vma(): no mseal.
    if newflags == oldflags:
        pprev[0] = vma
        return 0
    # (arch_has_pfn_modify_check() && VM_PFNMAP|VM_MIXEDMAP -> PROT_NONE: no PFN mappings)
    # If we make a private mapping writable we increase our commit.
    if newflags & VM_WRITE:
        # may_expand_vm(): rlimits are not modelled.
        if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_HUGETLB | VM_SHARED | VM_NORESERVE):
            # charged = nrpages; security_vm_enough_memory_mm(): not modelled.
            newflags |= VM_ACCOUNT
    elif oldflags & VM_ACCOUNT and vma_is_anonymous(vma) and vma.anon_vma is None:
        newflags &= ~VM_ACCOUNT

    vma = vma_modify_flags(vmi, pprev[0], vma, start, end, newflags)
    if IS_ERR(vma):
        return vma                                # goto fail: vm_unacct_memory(charged)
    pprev[0] = vma
    # vm_flags and vm_page_prot are protected by the mmap_lock held in write mode.
    vma_start_write(vma)
    vm_flags_reset(vma, newflags)                 # vm_flags_reset_once
    if vma_wants_manual_pte_write_upgrade(vma):
        mm_cp_flags |= MM_CP_TRY_CHANGE_WRITABLE
    # vma_set_page_prot(vma): the model derives vm_page_prot from vm_flags.
    sched.operated_on(start, end)
    change_protection(tlb, vma, start, end, mm_cp_flags)
    # (oldflags & VM_ACCOUNT) && !(newflags & VM_ACCOUNT): vm_unacct_memory(nrpages)
    # Private VM_LOCKED VMA becoming writable: trigger COW to avoid major fault on access.
    if (oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED)) == VM_LOCKED and newflags & VM_WRITE:
        populate_vma_page_range(vma, start, end, None)
    vm_stat_account(mm, oldflags, -nrpages)
    vm_stat_account(mm, newflags, nrpages)
    # perf_event_mmap(vma)
    return 0


def do_mprotect_pkey(mm, start: int, length: int, prot: int, pkey: int) -> int:
    """The mprotect(2) / pkey_mprotect(2) system call on *mm* (current->mm): 0 or a negative
    errno. Models mm/mprotect.c do_mprotect_pkey() of 6.18, in its check order."""
    start &= MASK64
    length &= MASK64
    grows = prot & (PROT_GROWSDOWN | PROT_GROWSUP)
    rier = False                                  # no READ_IMPLIES_EXEC personality

    prot &= ~(PROT_GROWSDOWN | PROT_GROWSUP)
    if grows == (PROT_GROWSDOWN | PROT_GROWSUP):  # can't be both
        return -EINVAL
    if start & ~PAGE_MASK & MASK64:
        return -EINVAL
    if not length:
        return 0
    length = PAGE_ALIGN(length)
    end = (start + length) & MASK64
    if end <= start:
        return -ENOMEM
    if not arch_validate_prot(prot, start):
        return -EINVAL
    reqprot = prot

    if mmap_write_lock_killable(mm):
        return -EINTR
    error = _mprotect_vmas(mm, start, end, prot, reqprot, pkey, grows, rier)
    mmap_write_unlock(mm)                         # out:
    return error


def _mprotect_vmas(mm, start: int, end: int, prot: int, reqprot: int, pkey: int, grows: int,
                   rier: bool) -> int:
    """The part of do_mprotect_pkey() between mmap_write_lock and ``out:`` (split out only
    so that a ``goto out`` is a return)."""
    # If userspace did not allocate the pkey, do not let them use it here.
    error = -EINVAL
    if pkey not in (-1, 0):                       # mm_pkey_is_allocated: only pkey 0
        return error

    vmi = VmaIterator(mm.mm_mt, start)            # vma_iter_init(&vmi, current->mm, start)
    vma = vmi.vma_find(end)
    error = -ENOMEM
    if vma is None:
        return error

    if grows & PROT_GROWSDOWN:
        if vma.vm_start >= end:
            return error
        start = vma.vm_start
        error = -EINVAL
        if not vma.vm_flags & VM_GROWSDOWN:
            return error
    else:
        if vma.vm_start > start:
            return error
        if grows & PROT_GROWSUP:
            end = vma.vm_end
            error = -EINVAL
            if not vma.vm_flags & VM_GROWSUP:
                return error

    prev = vmi.vma_prev()
    if start > vma.vm_start:
        prev = vma

    tlb = mmu_gather()
    tlb_gather_mmu(tlb, mm)
    nstart = start
    tmp = vma.vm_start
    error = 0
    while True:                                   # for_each_vma_range(vmi, vma, end)
        vma = vmi.vma_find(end)
        if vma is None:
            break
        if vma.vm_start != tmp:
            error = -ENOMEM
            break
        # Does the application expect PROT_READ to imply PROT_EXEC
        if rier:
            prot |= PROT_EXEC
        # Each mprotect() call explicitly passes r/w/x permissions. If a permission is not
        # passed to mprotect(), it must be cleared from the VMA.
        mask_off_old_flags = VM_ACCESS_FLAGS          # | VM_FLAGS_CLEAR (pkey bits)
        newflags = calc_vm_prot_bits(prot, pkey)
        newflags |= vma.vm_flags & ~mask_off_old_flags
        # newflags >> 4 shift VM_MAY% in place of VM_%
        if (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS:
            error = -EACCES
            break
        # map_deny_write_exec (MDWE), arch_validate_flags, security_file_mprotect: not
        # modelled.
        tmp = vma.vm_end
        if tmp > end:
            tmp = end
        # (vma->vm_ops->mprotect: none)
        pprev = [prev]
        error = mprotect_fixup(vmi, tlb, vma, pprev, nstart, tmp, newflags)
        if error:
            break
        prev = pprev[0]
        tmp = prev.vm_end                         # tmp = vma_iter_end(&vmi)
        vmi.vma_iter_set(tmp)
        nstart = tmp
        prot = reqprot
    tlb_finish_mmu(tlb)

    if not error and tmp < end:
        error = -ENOMEM
    return error


__all__ = ["do_mprotect_pkey", "mprotect_fixup", "change_protection",
           "PROT_SEM"]
