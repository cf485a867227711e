"""fork() and the life of an mm_struct: kernel/fork.c, and the copy side of mm/memory.c.

Models, of Linux 6.18:
* kernel/fork.c: mm_init, mm_alloc, dup_mm, copy_mm, mmget, mmget_not_zero, mmput, __mmput,
  mmgrab, mmdrop, __mmdrop, mm_free_pgd (pgd_free), check_mm, and kernel/exit.c exit_mm;
* mm/mmap.c dup_mmap (it moved there from kernel/fork.c in 6.16; the model keeps it here;
  vm_area_dup is impl/vma.py's);
* mm/memory.c copy_page_range, vma_needs_copy, copy_p4d_range, copy_pud_range,
  copy_pmd_range, copy_pte_range, copy_present_ptes, __copy_present_ptes,
  copy_nonpresent_pte, and include/linux/pgtable.h wrprotect_ptes / ptep_set_wrprotect.

Fix toggle 9f9f1acd713d ("mm: fix rss count leakage during migration"), in
copy_nonpresent_pte(): on (default), a migration entry is counted in the child's
``rss[mm_counter(folio)]``; off (before v3.3), it is not counted, so the child's counter is
one short and check_mm() reports it when the child exits.

Simplifications common to the module:
* no THP or hugetlb (copy_huge_pmd/pud, copy_hugetlb_page_range), no userfaultfd, no KSM,
  no khugepaged, no uprobes, no mempolicy, no mmu notifiers, no write_protect_seq (GUP-fast
  is not modelled), no exe_file, no aio, no futexes, no lazy-TLB mm refcounting (a CPU keeps
  running the old mm only as cpu.active_mm);
* allocation never fails: the -ENOMEM / -EAGAIN paths of dup_mmap and copy_pte_range (and
  copy_present_page, which a pinned page would need) are left out with a comment;
* folio_try_dup_anon_rmap_ptes never fails (no GUP pins), so no page is copied at fork;
* swapoff is not modelled, so a child with swap entries is not put on the mmlist;
* need_resched() is never true: copy_pte_range never breaks out to reschedule.
"""

from __future__ import annotations

from . import sched
from .bug import WARN
from .fault import is_cow_mapping
from .constants import (EINTR, EIO, ENOMEM, MM_SWAPENTS, NR_MM_COUNTERS, PAGE_SIZE,
                        RSS_COUNTER_NAMES, VM_DONTCOPY, VM_LOCKED_MASK, VM_MIXEDMAP, VM_NOHUGEPAGE, VM_PFNMAP, VM_SHARED, VM_WIPEONFORK)
from .cpu import flush_tlb_mm
from .locks import (mmap_write_lock, mmap_write_lock_killable, mmap_write_unlock, might_sleep)
from .mm_types import (vma_mark_attached, vma_start_write, MapleTree, VmaIterator, add_mm_rss_vec, get_mm_counter, get_mm_rss,
                       mm_counter, mm_counter_file, mm_struct, vm_area_struct, vm_flags_clear,
                       vma_pages)
from .page import folio_get, folio_test_anon
from .pgtable import (EntryPtr, LEVEL_PGD, free_table, iter_tables, p4d_addr_end, p4d_offset,
                      pgd_addr_end, pgd_offset, pgdp_get, pmd_addr_end, pmd_alloc, pmd_offset,
                      pmdp_get, pte_alloc, pte_lockptr, pte_offset_map, pte_offset_map_lock,
                      pte_unmap_unlock, ptep_get, pud_addr_end, pud_alloc, pud_offset,
                      pudp_get, set_pte_at)
from .locks import spin_lock
from .pte import (is_migration_entry, is_writable_migration_entry, make_migration_entry,
                  non_swap_entry, pte_mkclean, pte_mkold, pte_none, pte_present,
                  pte_swp_clear_exclusive, pte_swp_exclusive, pte_t, pte_wrprotect,
                  pte_write, swp_offset)
from .sched import KernelBug, NotModelled, model_only
from .swapfile import swap_duplicate

FIX_MIGRATION_RSS = "9f9f1acd713d"

# include/linux/mm.h VM_INIT_DEF_MASK: the def_flags a child inherits.
VM_INIT_DEF_MASK = VM_NOHUGEPAGE
# include/linux/mm_types.h MMF_INIT_MASK: the mm flags a child inherits (dumpable, dump
# filter, THP disable, MDWE, VM_MERGE_ANY, topdown). None of the model's flags is among them.
MMF_INIT_MASK = 0
# include/uapi/linux/sched.h
CLONE_VM = 0x00000100


# =================================================================================================
# mm_struct reference counts (include/linux/sched/mm.h, kernel/fork.c)
# =================================================================================================
def mmgrab(mm) -> None:
    """include/linux/sched/mm.h mmgrab(): pin the mm_struct (mm_count)."""
    sched.point("mmgrab", writes=(("mm_count", mm.id),))
    mm.mm_count += 1


def mmdrop(mm) -> None:
    """include/linux/sched/mm.h mmdrop(): drop an mm_count reference; the last frees the
    mm_struct (__mmdrop)."""
    sched.point("atomic_dec_and_test(&mm->mm_count)", writes=(("mm_count", mm.id),))
    mm.mm_count -= 1
    if mm.mm_count < 0:
        raise KernelBug(f"mmdrop: mm{mm.id} mm_count underflow")
    if mm.mm_count == 0:
        __mmdrop(mm)


def mmget(mm) -> None:
    """include/linux/sched/mm.h mmget(): pin the address space (mm_users)."""
    sched.point("mmget", writes=(("mm_users", mm.id),))
    mm.mm_users += 1


def mmput(mm) -> None:
    """Drop an mm_users reference; the last one tears the address space down (__mmput).
    Models kernel/fork.c mmput()."""
    might_sleep("mmput")
    sched.point("atomic_dec_and_test(&mm->mm_users)", writes=(("mm_users", mm.id),))
    mm.mm_users -= 1
    if mm.mm_users < 0:
        raise KernelBug(f"mmput: mm{mm.id} mm_users underflow")
    if mm.mm_users == 0:
        __mmput(mm)


def __mmput(mm) -> None:
    """The last user is gone: exit_mmap() frees every VMA, page and page table, then the
    mm_users pin on mm_count is dropped. Models kernel/fork.c __mmput() (uprobes, aio, ksm,
    khugepaged, the huge zero folio, exe_file, mmlist, binfmt, lru_gen, futex hash: none in
    the model)."""
    from .mmap import exit_mmap
    if mm.mm_users:
        raise KernelBug(f"VM_BUG_ON(atomic_read(&mm->mm_users)): mm{mm.id}")
    exit_mmap(mm)
    mmdrop(mm)


def mm_free_pgd(mm) -> None:
    """kernel/fork.c mm_free_pgd() -> pgd_free(): free the pgd frame. Whatever the pgd still
    points at is leaked (the kernel does not look); the model reports a
    ``pgtable_leak`` event so that "nothing is left after exit" can be checked."""
    pgd = mm.pgd
    if pgd.table:
        leaked = [(level, base, page.pfn) for level, base, page in iter_tables(mm)
                  if level != LEVEL_PGD]
        sched.event("pgtable_leak", mm=mm, tables=leaked)
    free_table(mm, pgd)


@model_only
def _forget_mm(mm) -> None:
    """The model's bookkeeping in __mmdrop: from here on nothing can reach the mm_struct, so
    views and invariants stop looking at it (the machine's list of mms) before its pgd
    goes."""
    mm.freed = True
    mms = getattr(mm.machine, "mms", None)
    if mms is not None and mm in mms:
        mms.remove(mm)


def __mmdrop(mm) -> None:
    """Free the mm_struct: the pgd, then check_mm() of what the counters say.
    Models kernel/fork.c __mmdrop() (no lazy-TLB shootdown, no mm id, no cid, no pasid)."""
    cur = sched.current()
    if cur.task is not None and cur.task.mm is mm:
        WARN(mm.machine, f"WARN_ON_ONCE(mm == current->mm) in __mmdrop: mm{mm.id}")
    _forget_mm(mm)
    # cleanup_lazy_tlbs(mm): nothing (MMU_LAZY_TLB_SHOOTDOWN is powerpc's; x86 lazy CPUs
    # were moved to init_mm by exit_mmap's flush, which freed the page tables).
    mm_free_pgd(mm)
    # destroy_context / mmu_notifier_subscriptions_destroy: nothing.
    check_mm(mm)
    sched.event("mm_freed", mm=mm)


def check_mm(mm) -> None:
    """Report counters that are not zero when the mm_struct is freed, in dmesg, as 6.18
    does ("BUG: Bad rss-counter state ... Comm:... Pid:..."; the Comm/Pid part was added in
    6.17), and a ``bad_rss`` event for each. Models kernel/fork.c check_mm(); ``mm:%p`` is
    printed as a hashed-pointer-like token derived from the mm's id."""
    cur = sched.current()
    task = cur.task
    comm = task.comm if task is not None else cur.name
    pid = task.pid if task is not None else 0
    for i in range(NR_MM_COUNTERS):
        x = get_mm_counter(mm, i)
        if x:
            mm.machine.printk(f"BUG: Bad rss-counter state mm:{mm_ptr(mm)} "
                              f"type:{RSS_COUNTER_NAMES[i]} val:{x} Comm:{comm} Pid:{pid}")
            sched.event("bad_rss", mm=mm, member=i, value=x)
    if mm.pgtables_bytes:
        mm.machine.printk(f"BUG: non-zero pgtables_bytes on freeing mm: {mm.pgtables_bytes}")
        sched.event("bad_pgtables_bytes", mm=mm, value=mm.pgtables_bytes)


def mm_ptr(mm) -> str:
    """What ``%p`` prints for the mm (a hashed pointer: 16 hex digits)."""
    return f"{0x00000000deadb000 + mm.id * 0x400:016x}"


# =================================================================================================
# mm_struct creation (kernel/fork.c)
# =================================================================================================
def mm_init(mm, p, user_ns=None):
    """Initialise a new mm_struct: empty VMA tree, no counters, one user and one count, the
    flags a child inherits from current's mm. Models kernel/fork.c mm_init(); the pgd is
    allocated by the mm_struct constructor (mm_alloc_pgd)."""
    mm.mm_mt = MapleTree(f"mm{mm.id}")
    mm.map_count = 0
    mm.locked_vm = 0
    mm.pgtables_bytes = 0                        # mm_pgtables_bytes_init
    mm.mm_users = 1
    mm.mm_count = 1
    mm.rss_stat = [0] * NR_MM_COUNTERS
    mm.tlb_flush_pending = 0                     # init_tlb_flush_pending
    mm.cpumask = set()
    mm.oom_victim = False
    cur_task = sched.current().task
    cur_mm = cur_task.mm if cur_task is not None else None
    if cur_mm is not None:
        mm.flags = cur_mm.flags & MMF_INIT_MASK  # mmf_init_flags(current->mm->flags)
        mm.def_flags = cur_mm.def_flags & VM_INIT_DEF_MASK
    else:
        mm.flags = 0                             # default_dump_filter: not modelled
        mm.def_flags = 0
    return mm


def mm_alloc(machine):
    """Allocate and initialise a new, empty mm_struct (what exec builds the new image in).
    Models kernel/fork.c mm_alloc()."""
    mm = mm_struct(machine)                      # allocate_mm() + mm_alloc_pgd()
    return mm_init(mm, None)


def dup_mm(tsk, oldmm):
    """A copy of *oldmm* for the child *tsk*: a new mm_struct, then dup_mmap().
    Models kernel/fork.c dup_mm(); returns the new mm (allocation never fails)."""
    mm = mm_struct(oldmm.machine)                # allocate_mm()
    # memcpy(mm, oldmm, sizeof(*mm)): the fields mm_init() does not reset
    mm.total_vm = oldmm.total_vm
    mm.data_vm = oldmm.data_vm
    mm.exec_vm = oldmm.exec_vm
    mm.stack_vm = oldmm.stack_vm
    mm_init(mm, tsk)
    mm.def_flags = oldmm.def_flags & VM_INIT_DEF_MASK
    err = dup_mmap(mm, oldmm)
    if err:
        # free_pt: mm->binfmt = NULL; mm_init_owner(mm, NULL); mmput(mm);
        mmput(mm)
        return None
    mm.hiwater_rss = get_mm_rss(mm)
    mm.hiwater_vm = mm.total_vm
    return mm


def copy_mm(clone_flags: int, tsk, current_mm):
    """kernel/fork.c copy_mm(): CLONE_VM shares the mm (mmget), otherwise dup_mm.
    Sets tsk.mm / tsk.active_mm; returns 0."""
    tsk.mm = None
    tsk.active_mm = None
    oldmm = current_mm
    if oldmm is None:
        return 0
    if clone_flags & CLONE_VM:
        mmget(oldmm)
        mm = oldmm
    else:
        mm = dup_mm(tsk, oldmm)
        if mm is None:
            return -ENOMEM
    tsk.mm = mm
    tsk.active_mm = mm
    return 0


def exit_mm(tsk) -> None:
    """The task lets go of its mm: under mmap_read_lock (which orders it with the OOM
    killer and coredump) and task_lock, ``current->mm = NULL`` and enter_lazy_tlb() (x86
    keeps the dying mm loaded, lazily, until a flush that frees tables moves the CPU to
    init_mm); then mmput(). Models kernel/exit.c exit_mm() of 6.18 (exit_mm_release's
    futex and vfork work, membarrier and mm_update_next_owner have nothing to do with the
    address space; no lazy-TLB refcount: the model's CPU keeps the old mm as its
    tlbstate; an OOM victim's exit_oom_victim is the OOM reaper's business)."""
    from .cpu import context_switch_to_kernel_thread
    from .locks import mmap_read_lock, mmap_read_unlock
    mm = tsk.mm
    # exit_mm_release(current, mm)
    if mm is None:
        return
    mmap_read_lock(mm)
    # mmgrab_lazy_tlb(mm); BUG_ON(mm != current->active_mm)
    # task_lock(current): what a context switch to this task reads (pick_next_task)
    sched.point("task_lock: current->mm = NULL", writes=(("task", tsk.pid),))
    tsk.mm = None
    # membarrier_update_current_mm(NULL)
    context_switch_to_kernel_thread(mm.machine, mm.machine.cpus[sched.current().cpu])
    # task_unlock(current)
    mmap_read_unlock(mm)
    # mm_update_next_owner(mm)
    mmput(mm)


# =================================================================================================
# dup_mmap (mm/mmap.c since 6.16; vm_area_dup is impl/vma.py's)
# =================================================================================================
def __mt_dup(old_mt: MapleTree, new_mt: MapleTree) -> int:
    """lib/maple_tree.c __mt_dup(): the new tree has the same entries (the parent's VMAs,
    replaced one by one by dup_mmap)."""
    sched.point("__mt_dup", reads=(old_mt.obj,), writes=(new_mt.obj,))
    new_mt.starts = list(old_mt.starts)
    new_mt.vmas = list(old_mt.vmas)
    return 0


def vma_iter_bulk_store(vmi: VmaIterator, old: vm_area_struct, tmp: vm_area_struct) -> None:
    """mm/vma.h vma_iter_bulk_store(): overwrite the entry the iterator is on (*old*, the
    parent's VMA that __mt_dup copied) with *tmp*."""
    vmi.clear(old)
    vmi.store(tmp)
    vma_mark_attached(tmp)


def dup_mmap(mm, oldmm) -> int:
    """Copy every VMA of *oldmm* into *mm* (except VM_DONTCOPY ones), link the copies into
    the reverse maps, copy the page tables (write-protecting COW pages in both), and flush
    the parent's TLB. Returns 0.

    Models dup_mmap() of 6.18 (mm/mmap.c): oldmm's mmap_lock is held for write throughout,
    so the parent's threads cannot fault; the parent's TLBs may still hold writable entries
    for the pages write-protected here until flush_tlb_mm(oldmm) at the end."""
    from .rmap import (anon_vma_fork, i_mmap_lock_write, i_mmap_unlock_write,
                       vma_interval_tree_insert_after)
    from .vma import vm_area_dup
    retval = 0
    if mmap_write_lock_killable(oldmm):
        return -EINTR
    # flush_cache_dup_mm, uprobe_dup_mmap: nothing to do.
    # Not linked in yet - no deadlock potential:
    mmap_write_lock(mm)                          # mmap_write_lock_nested
    # dup_mm_exe_file: no exe_file in the model.
    mm.total_vm = oldmm.total_vm
    mm.data_vm = oldmm.data_vm
    mm.exec_vm = oldmm.exec_vm
    mm.stack_vm = oldmm.stack_vm

    # Use __mt_dup() to efficiently build an identical maple tree.
    retval = __mt_dup(oldmm.mm_mt, mm.mm_mt)
    vmi = VmaIterator(mm.mm_mt, 0)
    while True:                                  # for_each_vma(vmi, mpnt)
        mpnt = vmi.vma_next()
        if mpnt is None:
            break
        if mm.machine.fixes.on("fb49c455323f"):
            vma_start_write(mpnt)
        if mpnt.vm_flags & VM_DONTCOPY:
            from .mmap import vm_stat_account
            vmi.clear(mpnt)                      # vma_iter_clear_gfp(&vmi, start, end)
            vm_stat_account(mm, mpnt.vm_flags, -vma_pages(mpnt))
            continue
        # charge: VM_ACCOUNT -> security_vm_enough_memory_mm(oldmm, len): overcommit
        # accounting is not modelled.
        tmp = vm_area_dup(mpnt)
        # vma_dup_policy: no NUMA policy.
        tmp.vm_mm = mm
        # dup_userfaultfd: no userfaultfd.
        if tmp.vm_flags & VM_WIPEONFORK:
            # VM_WIPEONFORK gets a clean slate in the child.
            tmp.anon_vma = None
        elif anon_vma_fork(tmp, mpnt):
            # goto fail_nomem_anon_vma_fork: 6.18 marks the failure point in the child's
            # tree with XA_ZERO_ENTRY, sets MMF_OOM_SKIP/MMF_UNSTABLE and lets exit_mmap stop
            # there. That path is not in the model: say so rather than do something else.
            raise NotModelled("dup_mmap's failure path (anon_vma_fork -ENOMEM: XA_ZERO_ENTRY "
                              "in the child's tree) is not modelled")
        vm_flags_clear(tmp, VM_LOCKED_MASK)
        # (hugetlb_dup_vma_private: no hugetlb)
        # Link the vma into the MT. After using __mt_dup(), it cannot fail.
        vma_iter_bulk_store(vmi, mpnt, tmp)
        mm.map_count += 1
        # (tmp->vm_ops->open: nothing the model tracks)
        file = tmp.vm_file
        if file is not None:
            mapping = file.f_mapping
            # get_file(file); mapping_allow_writable: not modelled.
            i_mmap_lock_write(mapping)
            # insert tmp into the share list, just after mpnt
            vma_interval_tree_insert_after(tmp, mpnt, mapping.i_mmap)
            i_mmap_unlock_write(mapping)
        if not tmp.vm_flags & VM_WIPEONFORK:
            retval = copy_page_range(tmp, mpnt)
        if retval:
            break                                # goto loop_out (never: no allocation fails)
    # a new mm has just been created: arch_dup_mmap() -> 0
    # loop_out: vma_iter_free; ksm_fork, khugepaged_fork: nothing.
    mmap_write_unlock(mm)
    flush_tlb_mm(oldmm.machine, oldmm)
    mmap_write_unlock(oldmm)
    # dup_userfaultfd_complete: nothing.
    return retval


# =================================================================================================
# copy_page_range and friends (mm/memory.c)
# =================================================================================================
def ptep_set_wrprotect(mm, addr: int, ptep: EntryPtr) -> None:
    """arch/x86/include/asm/pgtable.h ptep_set_wrprotect(): an atomic clear of the RW bit
    (clear_bit on the PTE), one step, so a concurrent hardware dirty-bit update is kept."""
    sched.point("ptep_set_wrprotect", reads=(ptep.obj,), writes=(ptep.obj,))
    pte = ptep.table.table.get(ptep.idx)
    if pte is not None and pte_present(pte):
        ptep.table.table[ptep.idx] = pte_wrprotect(pte)


def wrprotect_ptes(mm, addr: int, ptep: EntryPtr, nr: int) -> None:
    """include/linux/pgtable.h wrprotect_ptes()."""
    for _ in range(nr):
        ptep_set_wrprotect(mm, addr, ptep)
        addr += PAGE_SIZE
        ptep = ptep + 1


def copy_nonpresent_pte(dst_mm, src_mm, dst_pte: EntryPtr, src_pte: EntryPtr, dst_vma,
                        src_vma, addr: int, rss: list) -> int:
    """Copy a swap or migration entry into the child. A migration entry still stands for
    the page being migrated, so the child counts it in rss[mm_counter(folio)]; a writable
    migration entry in a COW mapping is made read-only in both (so the COW happens later).
    Returns 0, or -EIO when the swap slot cannot be referenced.

    A swap entry gets one more reference to its slot (swap_duplicate), and an exclusive one
    loses its exclusive bit in the parent: the page is shared once swapped in again.

    Models mm/memory.c copy_nonpresent_pte() of 6.18 (swp_entry_t helpers; softleaf is
    6.19+). No device-private/exclusive entries, no PTE markers, no uffd-wp, no mmlist
    (swapoff is not modelled).

    Fix toggle 9f9f1acd713d off (v3.2 copy_one_pte): ``if (likely(!non_swap_entry(entry)))
    rss[MM_SWAPENTS]++; else if (is_write_migration_entry(entry) && is_cow_mapping(...))``
    -- a migration entry adds nothing to the child's rss."""
    vm_flags = dst_vma.vm_flags
    orig_pte = ptep_get(src_pte)
    pte = orig_pte
    if not non_swap_entry(orig_pte):
        if swap_duplicate(dst_mm.machine, swp_offset(orig_pte)) < 0:
            return -EIO
        # (make sure dst_mm is on swapoff's mmlist: no swapoff in the model)
        if pte_swp_exclusive(orig_pte):
            pte = pte_swp_clear_exclusive(orig_pte)
            set_pte_at(src_mm, addr, src_pte, pte)
        rss[MM_SWAPENTS] += 1
    elif is_migration_entry(orig_pte):
        folio = src_mm.zone.pfn_to_page(orig_pte.pfn)   # pfn_swap_entry_folio(entry)
        if dst_mm.machine.fixes.on(FIX_MIGRATION_RSS):
            rss[mm_counter(folio)] += 1
        if is_writable_migration_entry(orig_pte) and is_cow_mapping(vm_flags):
            # COW mappings require pages in both parent and child to be set to read.
            pte = make_migration_entry(orig_pte.pfn, False)
            set_pte_at(src_mm, addr, src_pte, pte)
    # (device private / device exclusive / pte markers: not modelled)
    # (!userfaultfd_wp(dst_vma): pte_swp_clear_uffd_wp is a no-op)
    set_pte_at(dst_mm, addr, dst_pte, pte)
    return 0


def __copy_present_ptes(dst_vma, src_vma, dst_pte: EntryPtr, src_pte: EntryPtr, pte: pte_t,
                        addr: int, nr: int) -> None:
    """mm/memory.c __copy_present_ptes(): a COW mapping write-protects the PTE in the
    parent and in the child; a shared mapping's child PTE is clean; the child's is old."""
    src_mm = src_vma.vm_mm
    # If it's a COW mapping, write protect it both processes.
    if is_cow_mapping(src_vma.vm_flags) and pte_write(pte):
        wrprotect_ptes(src_mm, addr, src_pte, nr)
        pte = pte_wrprotect(pte)
    # If it's a shared mapping, mark it clean in the child.
    if src_vma.vm_flags & VM_SHARED:
        pte = pte_mkclean(pte)
    pte = pte_mkold(pte)
    # (!userfaultfd_wp(dst_vma): pte_clear_uffd_wp is a no-op)
    set_pte_at(dst_vma.vm_mm, addr, dst_pte, pte)   # set_ptes(..., nr) with nr == 1


def copy_present_ptes(dst_vma, src_vma, dst_pte: EntryPtr, src_pte: EntryPtr, pte: pte_t,
                      addr: int, max_nr: int, rss: list) -> int:
    """Copy one present PTE: take a reference on the page and dup its rmap (anonymous:
    folio_try_dup_anon_rmap_pte, which clears PageAnonExclusive; file: folio_dup_file_rmap),
    count it in the child's rss, then __copy_present_ptes. Returns the number of PTEs
    copied (1). Models mm/memory.c copy_present_ptes() for small folios (order 0); the
    large-folio batch and the pinned-page copy (copy_present_page) are left out."""
    from .rmap import folio_dup_file_rmap_pte, folio_try_dup_anon_rmap_pte
    from .zap import vm_normal_page
    page = vm_normal_page(src_vma, addr, pte)
    if page is not None:
        folio = page
        # (folio_test_large: order 0 only)
        folio_get(folio)
        if folio_test_anon(folio):
            # If this page may have been pinned by the parent process, copy it now: the
            # model has no pins, so folio_try_dup_anon_rmap_pte never fails.
            if folio_try_dup_anon_rmap_pte(folio, page, dst_vma, src_vma):
                raise KernelBug("folio_try_dup_anon_rmap_pte failed without GUP pins")
            rss[mm_counter(folio)] += 1          # rss[MM_ANONPAGES]++
        else:
            folio_dup_file_rmap_pte(folio, page, dst_vma)
            rss[mm_counter_file(folio)] += 1
    # copy_pte:
    __copy_present_ptes(dst_vma, src_vma, dst_pte, src_pte, pte, addr, 1)
    return 1


def copy_pte_range(dst_vma, src_vma, dst_pmd: EntryPtr, src_pmd: EntryPtr, addr: int,
                   end: int) -> int:
    """Copy the PTEs of one table: both PTLs held (the child's first), the child's rss
    batched in rss[] and added before the child's PTL is dropped.
    Models mm/memory.c copy_pte_range() (need_resched() never true, so no break to
    reschedule; no -EAGAIN/-EBUSY/-EHWPOISON paths)."""
    dst_mm = dst_vma.vm_mm
    src_mm = src_vma.vm_mm
    ret = 0
    rss = [0] * NR_MM_COUNTERS
    # pte_alloc_map_lock(dst_mm, dst_pmd, addr, &dst_ptl)
    if pte_alloc(dst_mm, dst_pmd):
        return -ENOMEM
    dst_pte, dst_ptl = pte_offset_map_lock(dst_mm, dst_pmd, addr)
    if dst_pte is None:
        return -ENOMEM
    # We already hold the exclusive mmap_lock: the PTE page is stable.
    src_pte = pte_offset_map(src_pmd, addr)          # pte_offset_map_rw_nolock
    if src_pte is None:
        pte_unmap_unlock(dst_pte, dst_ptl)
        return 0
    src_ptl = pte_lockptr(src_mm, src_pte)
    spin_lock(src_ptl)                               # spin_lock_nested(src_ptl, ...)
    orig_src_pte = src_pte
    orig_dst_pte = dst_pte
    while True:
        nr = 1
        ptent = ptep_get(src_pte)
        if pte_none(ptent):
            pass
        elif not pte_present(ptent):
            ret = copy_nonpresent_pte(dst_mm, src_mm, dst_pte, src_pte, dst_vma, src_vma,
                                      addr, rss)
            if ret == -EIO:
                break
        else:
            max_nr = (end - addr) // PAGE_SIZE
            nr = copy_present_ptes(dst_vma, src_vma, dst_pte, src_pte, ptent, addr, max_nr,
                                   rss)
        dst_pte = dst_pte + nr
        src_pte = src_pte + nr
        addr += PAGE_SIZE * nr
        if addr == end:
            break
    pte_unmap_unlock(orig_src_pte, src_ptl)
    add_mm_rss_vec(dst_mm, rss)
    pte_unmap_unlock(orig_dst_pte, dst_ptl)
    # (ret == -EIO: add_swap_count_continuation / swap_retry_table_alloc, then again:)
    return ret


def copy_pmd_range(dst_vma, src_vma, dst_pud: EntryPtr, src_pud: EntryPtr, src_pudval,
                   addr: int, end: int) -> int:
    """mm/memory.c copy_pmd_range() (no huge pmds)."""
    dst_mm = dst_vma.vm_mm
    dst_pmd = pmd_alloc(dst_mm, dst_pud, addr)
    src_pmd = pmd_offset(src_pud, src_pudval, addr)
    while True:
        next_ = pmd_addr_end(addr, end)
        if pmdp_get(src_pmd) is not None:            # pmd_none_or_clear_bad(src_pmd)
            if copy_pte_range(dst_vma, src_vma, dst_pmd, src_pmd, addr, next_):
                return -ENOMEM
        dst_pmd = dst_pmd + 1
        src_pmd = src_pmd + 1
        addr = next_
        if addr == end:
            return 0


def copy_pud_range(dst_vma, src_vma, dst_p4d: EntryPtr, src_p4d: EntryPtr, src_p4dval,
                   addr: int, end: int) -> int:
    """mm/memory.c copy_pud_range() (no huge puds)."""
    dst_mm = dst_vma.vm_mm
    dst_pud = pud_alloc(dst_mm, dst_p4d, addr)
    src_pud = pud_offset(src_p4d, src_p4dval, addr)
    while True:
        next_ = pud_addr_end(addr, end)
        src_pudval = pudp_get(src_pud)
        if src_pudval is not None:                   # pud_none_or_clear_bad(src_pud)
            if copy_pmd_range(dst_vma, src_vma, dst_pud, src_pud, src_pudval, addr, next_):
                return -ENOMEM
        dst_pud = dst_pud + 1
        src_pud = src_pud + 1
        addr = next_
        if addr == end:
            return 0


def copy_p4d_range(dst_vma, src_vma, dst_pgd: EntryPtr, src_pgd: EntryPtr, addr: int,
                   end: int) -> int:
    """mm/memory.c copy_p4d_range(): the folded level."""
    dst_p4d = p4d_offset(dst_pgd, addr)              # p4d_alloc: folded, cannot fail
    src_p4d = p4d_offset(src_pgd, addr)
    while True:
        next_ = p4d_addr_end(addr, end)
        src_p4dval = pgdp_get(src_p4d)
        if src_p4dval is not None:                   # p4d_none_or_clear_bad(src_p4d)
            if copy_pud_range(dst_vma, src_vma, dst_p4d, src_p4d, src_p4dval, addr, next_):
                return -ENOMEM
        dst_p4d = dst_p4d + 1
        src_p4d = src_p4d + 1
        addr = next_
        if addr == end:
            return 0


def vma_needs_copy(dst_vma, src_vma) -> bool:
    """mm/memory.c vma_needs_copy(): copy the page tables only where a fault could not
    rebuild them -- PFN mappings and VMAs with anonymous pages (an anon_vma). Shared and
    read-only file mappings are left to fault in the child."""
    # (userfaultfd_wp(dst_vma): not modelled)
    if src_vma.vm_flags & (VM_PFNMAP | VM_MIXEDMAP):
        return True
    if src_vma.anon_vma is not None:
        return True
    return False


def copy_page_range(dst_vma, src_vma) -> int:
    """Copy the page tables of *src_vma* into *dst_vma*'s mm (fork). Returns 0.
    Models mm/memory.c copy_page_range() (no hugetlb, no mmu notifiers, no
    write_protect_seq: GUP-fast is not modelled)."""
    addr = src_vma.vm_start
    end = src_vma.vm_end
    dst_mm = dst_vma.vm_mm
    src_mm = src_vma.vm_mm
    if not vma_needs_copy(dst_vma, src_vma):
        return 0
    # (is_vm_hugetlb_page: no hugetlb; is_cow: mmu notifier + raw_write_seqcount_begin)
    ret = 0
    dst_pgd = pgd_offset(dst_mm, addr)
    src_pgd = pgd_offset(src_mm, addr)
    while True:
        next_ = pgd_addr_end(addr, end)
        if pgdp_get(src_pgd) is not None:            # pgd_none_or_clear_bad(src_pgd)
            if copy_p4d_range(dst_vma, src_vma, dst_pgd, src_pgd, addr, next_):
                ret = -ENOMEM
                break
        dst_pgd = dst_pgd + 1
        src_pgd = src_pgd + 1
        addr = next_
        if addr == end:
            break
    return ret


__all__ = ["mm_alloc", "mm_init", "dup_mm", "dup_mmap", "copy_mm", "exit_mm", "mmget", "mmput",
           "mmgrab", "mmdrop", "check_mm", "copy_page_range", "copy_nonpresent_pte", "CLONE_VM"]
