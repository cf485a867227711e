"""VMA manipulation: merge, split, munmap and the mapping of a new region.

Models mm/vma.c and mm/vma.h of Linux 6.18 (struct vma_merge_struct, struct vma_munmap_struct,
struct vma_prepare, vma_merge_new_range, vma_merge_existing_range, vma_expand,
vma_modify / vma_modify_flags, __split_vma, split_vma, do_vmi_munmap, do_vmi_align_munmap,
vms_gather_munmap_vmas, vms_complete_munmap_vmas, vms_clear_ptes, remove_vma,
__mmap_region / mmap_region, copy_vma, acct_stack_growth, expand_downwards), mm/vma_init.c
(vm_area_alloc, vm_area_dup, vm_area_free) and the accounting helpers of mm/internal.h
(is_exec_mapping ...). copy_vma and vma_link are mremap's: the model has no mremap(2);
bounded:copy_vma (proofs/copy_vma.py) and the unit tests of fix 7e7757876f25 call copy_vma
as move_vma does. unmap_region is not modelled: its one caller in 6.18 is __mmap_region's
error path after a driver's ->mmap failed, and no ->mmap fails in the model.
vma_merge_extend, vma_shrink and vma_modify_name are not modelled: their callers (brk,
mremap, exec's shift_arg_pages, prctl(PR_SET_VMA)) are not in the model.

6.18 forms, not later ones: unmap_vmas(tlb, mas, vma, start, end, tree_end, mm_wr_locked)
(6.19's struct unmap_desc / UNMAP_STATE are not used); vma_modify_flags() takes the new flags by value (no VM_STICKY propagation); the mmap_state
setup is __mmap_prepare() (renamed __mmap_setup() later); vma_merge_copied_range() does not
exist yet (copy_vma() clears vmg.middle and calls vma_merge_new_range()).

Simplifications common to the module:
* the maple tree is :class:`~unmapcheck.impl.mm_types.MapleTree`, a list sorted by vm_start.
  A ``vma_iterator`` is a :class:`~unmapcheck.impl.mm_types.VmaIterator`, at an address or on
  a VMA like a maple state. Where the kernel moves the maple state with vma_prev()/vma_next()
  for the sake of a later store, the model sets the position explicitly (vma_iter_set),
  because the stores here overwrite by range, as maple-tree stores do;
* the side tree of a munmap (mt_detach) is a MapleTree keyed by address, not by the index
  0..vma_count-1 the kernel uses; its walks therefore bound by address (vms.end, unmap_end)
  where the kernel bounds by vma_count - 1; the order of the walk is the same;
* the per-VMA locks are impl/mmap_lock.py's (vma_start_write, vma_mark_attached/detached as
  6.18 has them); no mempolicy,
  no userfaultfd, no anon_vma_name, no uprobes, no THP (vma_adjust_trans_huge), no hugetlb,
  no mseal, no KSM, no memory-cgroup or overcommit accounting (vm_unacct_memory and
  security_vm_enough_memory_mm are no-ops), no vm_ops (->close, ->may_split, ->open: the
  model's files are shmem/regular files without them), no struct file reference counts
  (get_file/fput are comments);
* allocation never fails (vma_iter_prealloc, vm_area_dup, anon_vma_clone succeed), so the
  -ENOMEM unwind paths are kept only where they are the kernel's visible branch structure;
* mm counters protected by the mmap write lock (map_count, total_vm, locked_vm, data_vm,
  exec_vm, stack_vm) are updated without scheduling points: every reader and writer of them
  holds mmap_lock, whose operations are the points that order them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from . import sched, word
from .bug import WARN
from .constants import (EINVAL, ENOMEM, FIRST_USER_ADDRESS, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE,
                        TASK_SIZE, ULONG_MAX, USER_PGTABLES_CEILING, VM_ACCOUNT, VM_EXEC,
                        VM_GROWSDOWN, VM_HUGETLB, VM_IGNORE_MERGE, VM_LOCKED, VM_LOCKED_MASK,
                        VM_NORESERVE, VM_READ, VM_SHARED, VM_SPECIAL, VM_WRITE)
from .locks import (might_sleep, mmap_assert_write_locked, mmap_read_unlock,
                    mmap_write_downgrade)
from .mmap_lock import vma_assert_write_locked
from .mm_types import (vma_mark_attached, vma_mark_detached, vma_start_write, MapleTree, VmaIterator, mm_struct, vm_area_struct, vm_flags_clear,
                       vma_is_anonymous, vma_pages)
from .sched import KernelBug

# include/linux/mm.h: VM_STACK is VM_GROWSDOWN on x86-64 (no CONFIG_STACK_GROWSUP).
VM_STACK = VM_GROWSDOWN
VM_ACCESS_FLAGS = VM_READ | VM_WRITE | VM_EXEC
# mm/mmap.c: stack_guard_gap = 256UL << PAGE_SHIFT.
STACK_GUARD_GAP = 256 << PAGE_SHIFT

# mm/vma.h enum vma_merge_state.
VMA_MERGE_START, VMA_MERGE_ERROR_NOMEM, VMA_MERGE_NOMERGE, VMA_MERGE_SUCCESS = range(4)

FIX_VMA_MERGE_CASE3 = "7e7757876f25"
FIX_DUP_ANON_VMA_LOCK = "d8ab9f7b644a"


def IS_ERR(x) -> bool:
    """include/linux/err.h IS_ERR() for a function that returns a VMA or -errno."""
    return isinstance(x, int) and -4095 <= x < 0


def PHYS_PFN(x: int) -> int:
    return (x >> PAGE_SHIFT) & ULONG_MAX


# =============================================================================================
# mm/internal.h: accounting classes of a mapping
# =============================================================================================
def is_exec_mapping(flags: int) -> bool:
    """Executable code area: executable, not writable, not a stack."""
    return (flags & (VM_EXEC | VM_WRITE | VM_STACK)) == VM_EXEC


def is_stack_mapping(flags: int) -> bool:
    """Stack area (VM_GROWSDOWN on x86)."""
    return (flags & VM_STACK) == VM_STACK


def is_data_mapping(flags: int) -> bool:
    """Data area: private, writable, not a stack."""
    return (flags & (VM_WRITE | VM_SHARED | VM_STACK)) == VM_WRITE


def vm_start_gap(vma: vm_area_struct) -> int:
    """include/linux/mm.h vm_start_gap(): a stack's start minus the guard gap."""
    vm_start = vma.vm_start
    if vma.vm_flags & VM_GROWSDOWN:
        vm_start -= STACK_GUARD_GAP
        if vm_start > vma.vm_start or vm_start < 0:
            vm_start = 0
    return vm_start


# =============================================================================================
# mm/vma_init.c: allocation of vm_area_structs
# =============================================================================================
def vm_area_alloc(mm: mm_struct) -> vm_area_struct:
    """Allocate an empty, detached VMA of *mm*. Models mm/vma_init.c vm_area_alloc()
    (vma_init: no vm_ops, no flags, range 0-0)."""
    vma = vm_area_struct(mm, 0, 0, 0)
    vma.detached = True
    vma.vm_refcnt = 0
    return vma


def vm_area_dup(orig: vm_area_struct) -> vm_area_struct:
    """Copy a VMA's fields into a new, detached VMA (split, fork, copy_vma).

    Models mm/vma_init.c vm_area_dup(): the copy shares vm_file and anon_vma with the
    original (the kernel's memcpy); its anon_vma_chain is empty (anon_vma_clone fills it)."""
    new = vm_area_struct(orig.vm_mm, orig.vm_start, orig.vm_end, orig.vm_flags,
                         orig.vm_pgoff, orig.vm_file)
    new.anon_vma = orig.anon_vma
    new.detached = True
    new.vm_refcnt = 0
    return new


def vm_area_free(vma: vm_area_struct) -> None:
    """Models mm/vma_init.c vm_area_free(): the model keeps the object (a stale pointer to it
    stays readable) and marks it detached."""
    vma.detached = True
    vma.vm_refcnt = 0


def vma_set_range(vma: vm_area_struct, start: int, end: int, pgoff: int) -> None:
    """mm/vma.h vma_set_range(): set vm_start, vm_end and vm_pgoff together."""
    sched.point("vma_set_range", writes=(vma.obj,))
    vma.vm_start = start
    vma.vm_end = end
    vma.vm_pgoff = pgoff


def vma_pgoff_offset(vma: vm_area_struct, addr: int) -> int:
    """mm/vma.h vma_pgoff_offset(): the pgoff *addr* has in *vma* (addr >= vm_start)."""
    return (vma.vm_pgoff + PHYS_PFN(addr - vma.vm_start)) & ULONG_MAX


# =============================================================================================
# Maple-tree updates (include/linux/mm.h, mm/vma.h vma_iter_*)
# =============================================================================================
def _tree_point(tree: MapleTree, label: str, vma: Optional[vm_area_struct] = None) -> None:
    """A scheduling point writing *tree*; a write to an mm's own tree (not a munmap's side
    tree) requires mmap_lock held for write, as every maple-tree update of mm->mm_mt does."""
    if vma is not None and tree is vma.vm_mm.mm_mt:
        mmap_assert_write_locked(vma.vm_mm)
    sched.point(label, writes=(tree.obj,))


def vma_iter_store_new(vmi: VmaIterator, vma: vm_area_struct) -> None:
    """Store *vma* over its range [vm_start, vm_end) and mark it attached.

    Models mm/vma.h vma_iter_store_new(): a maple-tree store overwrites whatever the range
    held, so VMAs that a MAP_FIXED mmap detached but left in the tree leave it here."""
    tree = vmi.tree
    _tree_point(tree, "vma_iter_store_new", vma)
    for v in list(tree.vmas):
        if v is not vma and v.vm_start < vma.vm_end and v.vm_end > vma.vm_start:
            tree.erase(v)
    tree.store(vma)
    vma_mark_attached(vma)
    vmi.vma_iter_set(vma.vm_end)


def vma_iter_store_overwrite(vmi: VmaIterator, vma: vm_area_struct) -> None:
    """Store *vma* (already in the tree, range just changed by a merge) over its range,
    dropping the VMAs the merge removes, and restore the tree's order.

    Models mm/vma.h vma_iter_store_overwrite()."""
    tree = vmi.tree
    _tree_point(tree, "vma_iter_store_overwrite", vma)
    for v in list(tree.vmas):
        if v is not vma and v.vm_start < vma.vm_end and v.vm_end > vma.vm_start:
            tree.erase(v)
    if vma not in tree.vmas:
        tree.store(vma)
    tree.resort()
    vmi.vma_iter_set(vma.vm_end)


def vma_iter_clear_gfp(vmi: VmaIterator, start: int, end: int) -> int:
    """Remove every VMA in [start, end) from the tree (the munmap range, after the splits
    made it exact). Models mm/vma.h vma_iter_clear_gfp(); returns 0."""
    tree = vmi.tree
    _tree_point(tree, "vma_iter_clear_gfp")
    first = next((v for v in tree.vmas if v.vm_start < end and v.vm_end > start), None)
    if first is not None and tree is first.vm_mm.mm_mt:
        mmap_assert_write_locked(first.vm_mm)
    for v in list(tree.vmas):
        if v.vm_start < end and v.vm_end > start:
            if v.vm_start < start or v.vm_end > end:
                raise KernelBug(f"vma_iter_clear_gfp: {v} straddles [{start:#x}, {end:#x})")
            tree.erase(v)
    vmi.vma_iter_set(start)
    return 0


def vma_iter_set(vmi: VmaIterator, addr: int) -> None:
    """include/linux/mm.h vma_iter_set()."""
    vmi.vma_iter_set(addr)


def _vma_before(tree: MapleTree, addr: int) -> Optional[vm_area_struct]:
    """The last VMA that ends at or below *addr* (what vma_prev() returns from a maple state
    positioned at the gap or VMA starting at *addr*)."""
    return VmaIterator(tree, addr).vma_prev()


def vma_iter_next_rewind(vmi: VmaIterator):
    """mm/vma.h vma_iter_next_rewind(): (next, prev) around the gap at the iterator's
    position, leaving the iterator there."""
    addr = vmi.index
    prev = _vma_before(vmi.tree, addr)
    nxt = vmi.vma_find(ULONG_MAX)
    vmi.vma_iter_set(addr)
    return nxt, prev


# =============================================================================================
# struct vma_prepare: locking around a VMA change (mm/vma.c)
# =============================================================================================
@dataclass
class struct_vma_prepare:
    """mm/vma.h struct vma_prepare (renamed: Python cannot give a class and the function
    vma_prepare() one name)."""

    vma: Optional[vm_area_struct] = None
    adj_next: Optional[vm_area_struct] = None
    file: object = None
    mapping: object = None
    anon_vma: object = None
    insert: Optional[vm_area_struct] = None
    remove: Optional[vm_area_struct] = None
    remove2: Optional[vm_area_struct] = None
    skip_vma_uprobe: bool = False
    # Model-only: the ranges of the VMAs involved before the change (for the I3 check).
    before: tuple = ()


def _vma_fields(vma: vm_area_struct) -> dict:
    return {"start": vma.vm_start, "end": vma.vm_end, "pgoff": vma.vm_pgoff,
            "flags": vma.vm_flags}


def init_multi_vma_prep(vp: struct_vma_prepare, vma: vm_area_struct,
                        vmg: Optional["vma_merge_struct"]) -> None:
    """Fill *vp* for a change of *vma* and, if *vmg* says so, removal of middle/next and the
    adjustment of middle's or next's start. Models mm/vma.c init_multi_vma_prep()."""
    vp.__init__()
    vp.vma = vma
    vp.anon_vma = vma.anon_vma
    remove_slot = "remove"
    if vmg is not None and vmg._remove_middle:
        vp.remove = vmg.middle
        remove_slot = "remove2"
    if vmg is not None and vmg._remove_next:
        setattr(vp, remove_slot, vmg.next)
    if vmg is not None and vmg._adjust_middle_start:
        adjust = vmg.middle
    elif vmg is not None and vmg._adjust_next_start:
        adjust = vmg.next
    else:
        adjust = None
    vp.adj_next = adjust
    if vp.anon_vma is None and adjust is not None:
        vp.anon_vma = adjust.anon_vma
    # VM_WARN_ON(vp->anon_vma && adjust && adjust->anon_vma && vp->anon_vma != adjust->anon_vma)
    vp.file = vma.vm_file
    if vp.file is not None:
        vp.mapping = vma.vm_file.f_mapping
    if vmg is not None and vmg.skip_vma_uprobe:
        vp.skip_vma_uprobe = True


def init_vma_prep(vp: struct_vma_prepare, vma: vm_area_struct) -> None:
    """mm/vma.c init_vma_prep()."""
    init_multi_vma_prep(vp, vma, None)


def __vma_link_file(vma: vm_area_struct, mapping) -> None:
    """mm/vma.c __vma_link_file(): insert into the file's i_mmap (mapping_allow_writable's
    i_mmap_writable count is not modelled). Caller holds i_mmap_rwsem for write."""
    from .rmap import vma_interval_tree_insert
    vma_interval_tree_insert(vma, mapping.i_mmap)


def vma_prepare(vp: struct_vma_prepare) -> None:
    """Take the locks a VMA change needs and take the VMAs out of the interval trees whose
    keys change. Models mm/vma.c vma_prepare() (uprobe_munmap not modelled)."""
    from .rmap import anon_vma_lock_write, i_mmap_lock_write, vma_interval_tree_remove
    vp.before = tuple(_vma_fields(v) for v in (vp.vma, vp.adj_next, vp.remove, vp.remove2)
                      if v is not None)
    if vp.file is not None:
        i_mmap_lock_write(vp.mapping)
        if vp.insert is not None and vp.insert.vm_file is not None:
            # Put the new half into the interval tree now, so its pages stay visible to rmap.
            __vma_link_file(vp.insert, vp.insert.vm_file.f_mapping)
    if vp.anon_vma is not None:
        anon_vma_lock_write(vp.anon_vma)
        # anon_vma_interval_tree_pre_update_vma(vp->vma) (and adj_next): the model's anon_vma
        # tree is an unkeyed list, queried with the VMAs' live fields; nothing to take out.
    if vp.file is not None:
        vma_interval_tree_remove(vp.vma, vp.mapping.i_mmap)
        if vp.adj_next is not None:
            vma_interval_tree_remove(vp.adj_next, vp.mapping.i_mmap)


def vma_complete(vp: struct_vma_prepare, vmi: VmaIterator, mm: mm_struct) -> None:
    """Put the changed VMAs back into the interval trees, insert a split's new half into the
    VMA tree, drop the locks, and free what a merge removed. Models mm/vma.c vma_complete()."""
    from .rmap import (__remove_shared_vm_struct, anon_vma_unlock_write, i_mmap_unlock_write,
                       unlink_anon_vmas, vma_interval_tree_insert)
    if vp.file is not None:
        if vp.adj_next is not None:
            vma_interval_tree_insert(vp.adj_next, vp.mapping.i_mmap)
        vma_interval_tree_insert(vp.vma, vp.mapping.i_mmap)
    if vp.remove is not None and vp.file is not None:
        __remove_shared_vm_struct(vp.remove, vp.mapping)
        if vp.remove2 is not None:
            __remove_shared_vm_struct(vp.remove2, vp.mapping)
    elif vp.insert is not None:
        # split_vma has split insert from vma: insert it before dropping the locks.
        vma_iter_store_new(vmi, vp.insert)
        mm.map_count += 1
    if vp.anon_vma is not None:
        # anon_vma_interval_tree_post_update_vma(): see vma_prepare.
        anon_vma_unlock_write(vp.anon_vma)
    if vp.file is not None:
        i_mmap_unlock_write(vp.mapping)
        # uprobe_mmap(): not modelled.
    # Model-only: every address that stays mapped keeps its file offset (invariant I3.pgoff).
    sched.event("vma_change", what="vma_complete", old=list(vp.before),
                new=[_vma_fields(v) for v in (vp.vma, vp.adj_next, vp.insert) if v is not None])
    remove = vp.remove
    while remove is not None:                      # again:
        vma_mark_detached(remove)
        # if (vp->file) fput(vp->file): no file reference counts in the model.
        if remove.anon_vma is not None:
            unlink_anon_vmas(remove)
        mm.map_count -= 1
        vm_area_free(remove)
        # mprotect's "case 6": middle and next are both removed.
        remove, vp.remove2 = vp.remove2, None


# =============================================================================================
# struct vma_merge_struct and the mergeability tests (mm/vma.c)
# =============================================================================================
@dataclass
class vma_merge_struct:
    """mm/vma.h struct vma_merge_struct.

    The kernel's internal flags ``__adjust_middle_start``, ``__adjust_next_start``,
    ``__remove_middle`` and ``__remove_next`` are named with a single leading underscore
    (Python would mangle the double one).

    ``copied_from``: 6.18's copy_vma() only sets ``vmg.middle = NULL``; the model records the
    mremap source here (the field later kernels added with this meaning) so that the
    pre-7e7757876f25 path can tell mremap's merge (6.3's vma_merge "case 3") from mmap's.
    """

    mm: mm_struct
    vmi: VmaIterator
    prev: Optional[vm_area_struct] = None
    middle: Optional[vm_area_struct] = None
    next: Optional[vm_area_struct] = None
    target: Optional[vm_area_struct] = None
    start: int = 0
    end: int = 0
    pgoff: int = 0
    vm_flags: int = 0
    file: object = None
    anon_vma: object = None
    state: int = VMA_MERGE_START
    copied_from: Optional[vm_area_struct] = None
    just_expand: bool = False
    give_up_on_oom: bool = False
    skip_vma_uprobe: bool = False
    _adjust_middle_start: bool = False
    _adjust_next_start: bool = False
    _remove_middle: bool = False
    _remove_next: bool = False


def VMG_VMA_STATE(vmi: VmaIterator, prev: Optional[vm_area_struct], vma: vm_area_struct,
                  start: int, end: int) -> vma_merge_struct:
    """mm/vma.h VMG_VMA_STATE(): a merge state describing [start, end) of existing *vma*."""
    return vma_merge_struct(mm=vma.vm_mm, vmi=vmi, prev=prev, middle=vma, next=None,
                            start=start, end=end, vm_flags=vma.vm_flags,
                            pgoff=vma_pgoff_offset(vma, start), file=vma.vm_file,
                            anon_vma=vma.anon_vma, state=VMA_MERGE_START)


def vmg_nomem(vmg: vma_merge_struct) -> bool:
    return vmg.state == VMA_MERGE_ERROR_NOMEM


def _list_is_singular(vma: vm_area_struct) -> bool:
    from .rmap import anon_vma_chain
    return len(anon_vma_chain(vma)) == 1


def vma_had_uncowed_parents(vma: Optional[vm_area_struct]) -> bool:
    """mm/vma.c vma_had_uncowed_parents(): the VMA was forked from a parent whose anon_vma
    it still shares (its anon_vma_chain has more than one entry)."""
    return vma is not None and vma.anon_vma is not None and not _list_is_singular(vma)


def is_mergeable_vma(vmg: vma_merge_struct, merge_next: bool) -> bool:
    """Flags (but VM_IGNORE_MERGE) and file must match the neighbour. Models mm/vma.c
    is_mergeable_vma() (mempolicy, userfaultfd context and anon_vma_name are not modelled:
    always equal)."""
    vma = vmg.next if merge_next else vmg.prev
    if (vma.vm_flags ^ vmg.vm_flags) & ~VM_IGNORE_MERGE:
        return False
    if vma.vm_file is not vmg.file:
        return False
    return True


def is_mergeable_anon_vma(vmg: vma_merge_struct, merge_next: bool) -> bool:
    """The anon_vmas of the range and of the neighbour are compatible. Models mm/vma.c
    is_mergeable_anon_vma()."""
    tgt = vmg.next if merge_next else vmg.prev
    src = vmg.middle
    tgt_anon = tgt.anon_vma
    src_anon = vmg.anon_vma
    # VM_WARN_ON(src && src_anon != src->anon_vma)
    # Case 1 - we will dup_anon_vma() from src into tgt.
    if tgt_anon is None and src_anon is not None:
        return not vma_had_uncowed_parents(src)
    # Case 2 - we will simply use tgt's anon_vma.
    if tgt_anon is not None and src_anon is None:
        return not vma_had_uncowed_parents(tgt)
    # Case 3 - the anon_vma's are already shared.
    return src_anon is tgt_anon


def can_vma_merge_before(vmg: vma_merge_struct) -> bool:
    """The range can merge in front of vmg.next (lower address and file offset). Models
    mm/vma.c can_vma_merge_before()."""
    pglen = PHYS_PFN(vmg.end - vmg.start)
    if is_mergeable_vma(vmg, True) and is_mergeable_anon_vma(vmg, True):
        if vmg.next.vm_pgoff == vmg.pgoff + pglen:
            return True
    return False


def can_vma_merge_after(vmg: vma_merge_struct) -> bool:
    """The range can merge behind vmg.prev. Models mm/vma.c can_vma_merge_after()."""
    if is_mergeable_vma(vmg, False) and is_mergeable_anon_vma(vmg, False):
        if vmg.prev.vm_pgoff + vma_pages(vmg.prev) == vmg.pgoff:
            return True
    return False


def can_vma_merge_left(vmg: vma_merge_struct) -> bool:
    """mm/vma.c can_vma_merge_left()."""
    return (vmg.prev is not None and vmg.prev.vm_end == vmg.start
            and can_vma_merge_after(vmg))


def can_vma_merge_right(vmg: vma_merge_struct, can_merge_left: bool) -> bool:
    """mm/vma.c can_vma_merge_right(): mergeable with next and, if also with prev, prev and
    next have compatible anon_vmas."""
    nxt = vmg.next
    if nxt is None or vmg.end != nxt.vm_start or not can_vma_merge_before(vmg):
        return False
    if not can_merge_left:
        return True
    prev = vmg.prev
    return prev.anon_vma is None or nxt.anon_vma is None or prev.anon_vma is nxt.anon_vma


def can_merge_remove_vma(vma: vm_area_struct) -> bool:
    """mm/vma.c can_merge_remove_vma(): no ->close hook (the model's VMAs have none)."""
    return True


def dup_anon_vma(dst: vm_area_struct, src: vm_area_struct):
    """When the merge target has no anon_vma but the source has, give the target the
    source's. Models mm/vma.c dup_anon_vma(); returns (0, dup) or (-ENOMEM, None).

    6.18 asserts the target write-locked (its callers lock it first: see
    :func:`_lock_merge_target`), so no fault under the per-VMA lock can see the anon_vma
    before anon_vma_clone() has tied the target to it, or after a failed clone has set it
    back to NULL."""
    from .rmap import anon_vma_clone
    if src.anon_vma is not None and dst.anon_vma is None:
        if dst.vm_mm.machine.fixes.on(FIX_DUP_ANON_VMA_LOCK):
            vma_assert_write_locked(dst)
        sched.point("WRITE vma->anon_vma", writes=(dst.obj,))
        dst.anon_vma = src.anon_vma
        ret = anon_vma_clone(dst, src)
        if ret:
            return ret, None
        return 0, dst
    return 0, None


def vmg_adjust_set_range(vmg: vma_merge_struct) -> None:
    """Set the new range of the VMA whose start a merge moves (middle or next). Models
    mm/vma.c vmg_adjust_set_range()."""
    if vmg._adjust_middle_start:
        adjust = vmg.middle
        pgoff = adjust.vm_pgoff + PHYS_PFN(vmg.end - adjust.vm_start)
    elif vmg._adjust_next_start:
        adjust = vmg.next
        pgoff = adjust.vm_pgoff - PHYS_PFN(adjust.vm_start - vmg.end)
    else:
        return
    vma_set_range(adjust, vmg.end, adjust.vm_end, pgoff & ULONG_MAX)


def _lock_merge_target(vma: vm_area_struct) -> None:
    """vma_start_write() of a merge's target, before dup_anon_vma() may set its anon_vma
    (6.18's vma_expand() and vma_merge_existing_range()).

    Fix toggle d8ab9f7b644a ("mm: lock VMA in dup_anon_vma() before setting ->anon_vma",
    v6.5-rc4) off: v6.4 to v6.5-rc3 write-locked the target only in vma_prepare(), after
    dup_anon_vma() (:func:`commit_merge` does that then, with the VMAs the merge removes
    or adjusts), and not at all when the clone failed."""
    if vma.vm_mm.machine.fixes.on(FIX_DUP_ANON_VMA_LOCK):
        vma_start_write(vma)


def commit_merge(vmg: vma_merge_struct) -> int:
    """Carry out a merge: lock, set the target's (and the adjusted VMA's) range, store, and
    free the removed VMAs. Models mm/vma.c commit_merge(); returns 0."""
    vp = struct_vma_prepare()
    if vmg._adjust_next_start:
        # We manipulate middle and adjust next, which is the target.
        vma = vmg.middle
        vma_iter_set(vmg.vmi, vmg.end)               # vma_iter_config(vmi, end, next->vm_end)
    else:
        vma = vmg.target
        vma_iter_set(vmg.vmi, vmg.start)             # vma_iter_config(vmi, start, end)
    init_multi_vma_prep(vp, vma, vmg)
    # vma_iter_prealloc(): allocation does not fail in the model.
    if not vmg.mm.machine.fixes.on(FIX_DUP_ANON_VMA_LOCK):
        # v6.4 vma_prepare() write-locked every VMA it was given.
        for v in (vp.vma, vp.adj_next, vp.remove, vp.remove2):
            if v is not None:
                vma_start_write(v)
    vma_prepare(vp)
    # vma_adjust_trans_huge(): no THP.
    vma_set_range(vma, vmg.start, vmg.end, vmg.pgoff)
    vmg_adjust_set_range(vmg)
    vma_iter_store_overwrite(vmg.vmi, vmg.target)
    vma_complete(vp, vmg.vmi, vma.vm_mm)
    return 0


# =============================================================================================
# Merging (mm/vma.c)
# =============================================================================================
def vma_merge_existing_range(vmg: vma_merge_struct) -> Optional[vm_area_struct]:
    """Merge [vmg.start, vmg.end) of existing VMA vmg.middle, whose attributes are changing
    to vmg's, with prev and/or next if they are compatible (mprotect, mlock, madvise).

    Models mm/vma.c vma_merge_existing_range(). Returns the merged VMA or None.

    Fix toggle 7e7757876f25 ("mm/mremap: fix vm_pgoff in vma_merge() case 3"): the
    whole-middle merge into next (6.3's vma_merge "case 8") takes next->vm_pgoff - pglen;
    before the fix the same branch took mid->vm_pgoff. For this branch the two are equal
    (can_vma_merge_before() required next->vm_pgoff == vmg->pgoff + pglen, and vmg->pgoff is
    middle's when the range starts at middle), as the fix's commit message says: the
    observable case is 6.3's "case 3", mremap's merge of a new range into next, modelled in
    :func:`vma_merge_new_range`. A tail-mprotect merge into next (6.3's "case 4", 6.18's
    __adjust_next_start) computes next's pgoff in vmg_adjust_set_range(), which the fix did
    not touch.
    """
    middle = vmg.middle
    prev = vmg.prev
    start = vmg.start
    end = vmg.end
    left_side = middle is not None and start == middle.vm_start
    right_side = middle is not None and end == middle.vm_end
    anon_dup = None
    err = 0

    mmap_assert_write_locked(vmg.mm)
    if middle is None:
        raise KernelBug("VM_WARN_ON_VMG(!middle): vma_merge_existing_range without middle")
    if vmg.next is not None:
        raise KernelBug("VM_WARN_ON_VMG(vmg->next): the caller must not set next")
    if prev is not None and start <= prev.vm_start:
        raise KernelBug("VM_WARN_ON_VMG(prev && start <= prev->vm_start)")
    if start >= end:
        raise KernelBug("VM_WARN_ON_VMG(start >= end)")
    if (middle is not prev and start != middle.vm_start) or end > middle.vm_end:
        raise KernelBug("VM_WARN_ON_VMG: the range is not inside middle")

    vmg.state = VMA_MERGE_NOMERGE

    # A special mapping, or a range touching neither end of the VMA, cannot merge.
    if vmg.vm_flags & VM_SPECIAL or (not left_side and not right_side):
        return None

    merge_left = can_vma_merge_left(vmg) if left_side else False

    if right_side:
        nxt = vmg.next = _vma_after(vmg.vmi.tree, middle)   # vma_iter_next_range()
        merge_right = can_vma_merge_right(vmg, merge_left)
    else:
        merge_right = False
        nxt = None

    if not merge_left and not merge_right:
        return None
    # (If merging prev, the kernel positions the iterator there: vma_prev(vmg->vmi).)

    merge_both = merge_left and merge_right
    # If we span the entire VMA, a merge implies it will be deleted.
    vmg._remove_middle = left_side and right_side
    if vmg._remove_middle and not can_merge_remove_vma(middle):
        return None
    # If we merge both VMAs, then next is also deleted.
    vmg._remove_next = merge_both
    if vmg._remove_next and not can_merge_remove_vma(nxt):
        vmg._remove_next = False
        merge_right = False
        merge_both = False

    vma_start_write(middle)
    if merge_right:
        _lock_merge_target(nxt)
        vmg.target = nxt
    if merge_left:
        _lock_merge_target(prev)
        vmg.target = prev

    if merge_both:
        #  prev extends over middle and next, both deleted.
        vmg.start = prev.vm_start
        vmg.end = nxt.vm_end
        vmg.pgoff = prev.vm_pgoff
        err, anon_dup = dup_anon_vma(prev, nxt if nxt.anon_vma is not None else middle)
    elif merge_left:
        #  prev extends over (part of) middle, which shrinks or is deleted.
        vmg.start = prev.vm_start
        vmg.pgoff = prev.vm_pgoff
        if not vmg._remove_middle:
            vmg._adjust_middle_start = True
        err, anon_dup = dup_anon_vma(prev, middle)
    else:  # merge_right
        #  next extends down over (part of) middle, which shrinks or is deleted.
        pglen = PHYS_PFN(vmg.end - vmg.start)
        if vmg._remove_middle:
            vmg.end = nxt.vm_end
            if vmg.mm.machine.fixes.on(FIX_VMA_MERGE_CASE3):
                vmg.pgoff = (nxt.vm_pgoff - pglen) & ULONG_MAX
            else:
                # v6.3 "cases 3, 8": vma_pgoff = mid->vm_pgoff;
                vmg.pgoff = middle.vm_pgoff
        else:
            # We shrink middle and expand next.
            vmg._adjust_next_start = True
            vmg.start = middle.vm_start
            vmg.end = start
            vmg.pgoff = middle.vm_pgoff
        err, anon_dup = dup_anon_vma(nxt, middle)

    if err or commit_merge(vmg):
        # abort:
        vma_iter_set(vmg.vmi, start)
        if anon_dup is not None:
            from .rmap import unlink_anon_vmas
            unlink_anon_vmas(anon_dup)
        if not vmg.give_up_on_oom:
            vmg.state = VMA_MERGE_ERROR_NOMEM
        return None

    # khugepaged_enter_vma(): no THP.
    vmg.state = VMA_MERGE_SUCCESS
    return vmg.target


def _vma_after(tree: MapleTree, vma: vm_area_struct) -> Optional[vm_area_struct]:
    """The VMA following *vma* in the tree, if any (vma_iter_next_range())."""
    sched.point("vma_next", reads=(tree.obj,))
    for v in tree.vmas:
        if v.vm_start >= vma.vm_end:
            return v
    return None


def vma_merge_new_range(vmg: vma_merge_struct) -> Optional[vm_area_struct]:
    """Merge a new range [vmg.start, vmg.end), which holds no VMA, with vmg.prev and/or
    vmg.next (mmap, brk, mremap's copy_vma): expand prev, or next downwards, or prev over the
    range and next (removing next).

    Models mm/vma.c vma_merge_new_range(). Returns the expanded VMA or None.

    Fix toggle 7e7757876f25 ("mm/mremap: fix vm_pgoff in vma_merge() case 3"): when a range
    copied by mremap merges only into next, which expands downwards, the merged VMA's pgoff
    is the range's own (next->vm_pgoff - pglen). Before the fix (v6.3: introduced by
    0503ea8f5ba7, fixed in v6.4-rc1 and 6.3.1) vma_merge()'s case 3 took mid->vm_pgoff, and
    mid was next: the merged VMA kept next's old pgoff for its new, lower start, so every
    page of it read the wrong file offset. mmap's merges went through mmap_region's own
    expansion code in 6.3 and were not affected, so the pre-fix branch applies only to a
    copied range (vmg.copied_from set by :func:`copy_vma`).
    """
    prev = vmg.prev
    nxt = vmg.next
    end = vmg.end

    mmap_assert_write_locked(vmg.mm)
    if vmg.middle is not None or vmg.target is not None:
        raise KernelBug("VM_WARN_ON_VMG(vmg->middle || vmg->target)")

    vmg.state = VMA_MERGE_NOMERGE

    # Special VMAs are unmergeable, also if no prev/next.
    if (vmg.vm_flags & VM_SPECIAL) or (prev is None and nxt is None):
        return None

    can_merge_left = can_vma_merge_left(vmg)
    can_merge_right = (not vmg.just_expand) and can_vma_merge_right(vmg, can_merge_left)

    # If we can merge with the next VMA, adjust vmg accordingly.
    if can_merge_right:
        vmg.end = nxt.vm_end
        vmg.target = nxt
        if (not can_merge_left and vmg.copied_from is not None
                and not vmg.mm.machine.fixes.on(FIX_VMA_MERGE_CASE3)):
            # v6.3 vma_merge() case 3 (mid == next): vma_pgoff = mid->vm_pgoff;
            vmg.pgoff = nxt.vm_pgoff

    # If we can merge with the previous VMA, adjust vmg accordingly.
    if can_merge_left:
        vmg.start = prev.vm_start
        vmg.target = prev
        vmg.pgoff = prev.vm_pgoff
        # If next cannot be removed, reduce the operation to merging prev and the range.
        if can_merge_right and not can_merge_remove_vma(nxt):
            vmg.end = end
        # (Not just_expand: the kernel moves the iterator to prev, vma_prev(vmg->vmi).)

    # Now try to expand adjacent VMA(s); this removes next if there are VMAs on both sides.
    if vmg.target is not None and not vma_expand(vmg):
        # khugepaged_enter_vma(): no THP.
        vmg.state = VMA_MERGE_SUCCESS
        return vmg.target
    return None


def vma_expand(vmg: vma_merge_struct) -> int:
    """Expand vmg.target to [vmg.start, vmg.end), removing vmg.next if the range ends at
    next's end. Models mm/vma.c vma_expand(); returns 0, or -ENOMEM when dup_anon_vma() fails."""
    anon_dup = None
    remove_next = False
    target = vmg.target
    nxt = vmg.next

    mmap_assert_write_locked(vmg.mm)
    _lock_merge_target(target)
    if nxt is not None and target is not nxt and vmg.end == nxt.vm_end:
        remove_next = True
        # VM_WARN_ON_VMG(!can_merge_remove_vma(next))
        ret, anon_dup = dup_anon_vma(target, nxt)
        if ret:
            return ret
    if target is None:
        raise KernelBug("VM_WARN_ON_VMG(!target)")
    if nxt is not None and not remove_next and nxt is not target and vmg.end > nxt.vm_start:
        raise KernelBug("VM_WARN_ON_VMG: expanding over part of next")
    if target.vm_start < vmg.start or target.vm_end > vmg.end:
        raise KernelBug("VM_WARN_ON_VMG: vma_expand only expands")
    if remove_next:
        vma_start_write(nxt)
        vmg._remove_next = True
    if commit_merge(vmg):
        if anon_dup is not None:
            from .rmap import unlink_anon_vmas
            unlink_anon_vmas(anon_dup)
        if not vmg.give_up_on_oom:
            vmg.state = VMA_MERGE_ERROR_NOMEM
        return -ENOMEM
    return 0


# =============================================================================================
# Splitting (mm/vma.c)
# =============================================================================================
def __split_vma_fields(vm_start, vm_end, vm_pgoff, addr, new_below):
    """The field arithmetic of __split_vma() on unsigned longs: splitting [vm_start, vm_end)
    with pgoff vm_pgoff at *addr* gives the new VMA's and the old VMA's fields.

    Returns ``(new_start, new_end, new_pgoff, vma_start, vma_end, vma_pgoff)``. With
    *new_below* the new VMA is the lower part [vm_start, addr) and the old one keeps
    [addr, vm_end) with its pgoff advanced by the pages it lost; otherwise the new VMA is the
    upper part [addr, vm_end) with the advanced pgoff and the old one keeps [vm_start, addr).
    Written with impl/word.py so the proofs can run it on symbolic 64-bit values (and
    *new_below* may be a z3 Bool).
    """
    delta = word.shr(word.sub(addr, vm_start), PAGE_SHIFT)
    upper_pgoff = word.add(vm_pgoff, delta)
    # new = vm_area_dup(vma); new_below: new->vm_end = addr;
    #                         else: new->vm_start = addr, new->vm_pgoff += delta.
    new_start = word.ite(new_below, vm_start, addr)
    new_end = word.ite(new_below, addr, vm_end)
    new_pgoff = word.ite(new_below, vm_pgoff, upper_pgoff)
    # new_below: vma->vm_start = addr, vma->vm_pgoff += (addr - new->vm_start) >> PAGE_SHIFT;
    # else:      vma->vm_end = addr.
    vma_start = word.ite(new_below, addr, vm_start)
    vma_end = word.ite(new_below, vm_end, addr)
    vma_pgoff = word.ite(new_below, upper_pgoff, vm_pgoff)
    return new_start, new_end, new_pgoff, vma_start, vma_end, vma_pgoff


def __split_vma(vmi: VmaIterator, vma: vm_area_struct, addr: int, new_below: int) -> int:
    """Split *vma* at *addr*; a new VMA takes the part below (new_below) or above addr, and is
    inserted into the tree, the file's i_mmap and the anon_vmas of *vma*; map_count grows by
    one. The iterator is left at *vma*. Bypasses the max_map_count check.

    Models mm/vma.c __split_vma(); returns 0. The field arithmetic is
    :func:`__split_vma_fields`. No ->may_split (no vm_ops), no mempolicy, no hugetlb split."""
    from .rmap import anon_vma_clone
    if vma.vm_start >= addr:
        raise KernelBug(f"WARN_ON(vma->vm_start >= addr): {vma} at {addr:#x}")
    if vma.vm_end <= addr:
        raise KernelBug(f"WARN_ON(vma->vm_end <= addr): {vma} at {addr:#x}")
    old = _vma_fields(vma)
    (new_start, new_end, new_pgoff,
     vma_start, vma_end, vma_pgoff) = __split_vma_fields(vma.vm_start, vma.vm_end,
                                                         vma.vm_pgoff, addr, bool(new_below))
    new = vm_area_dup(vma)
    new.vm_start, new.vm_end, new.vm_pgoff = new_start, new_end, new_pgoff
    # vma_iter_config + vma_iter_prealloc, vma_dup_policy: cannot fail in the model.
    err = anon_vma_clone(new, vma)
    if err:
        vm_area_free(new)
        return err
    # if (new->vm_file) get_file(new->vm_file); new->vm_ops->open(): not modelled.
    vma_start_write(vma)
    vma_start_write(new)
    vp = struct_vma_prepare()
    init_vma_prep(vp, vma)
    vp.insert = new
    vma_prepare(vp)
    # vma_adjust_trans_huge() / hugetlb_split(): no THP, no hugetlb.
    vma_set_range(vma, vma_start, vma_end, vma_pgoff)
    vma_complete(vp, vmi, vma.vm_mm)        # stores new, map_count++
    vmi.tree.resort()
    low, high = (new, vma) if new_below else (vma, new)
    sched.event("split_vma", old=old, low=_vma_fields(low), high=_vma_fields(high), addr=addr)
    # Success: the iterator points at vma (vma_next after new_below, vma_prev otherwise).
    vma_iter_set(vmi, vma.vm_end)
    return 0


def split_vma(vmi: VmaIterator, vma: vm_area_struct, addr: int, new_below: int) -> int:
    """Split *vma* at *addr*, unless the mm is at max_map_count. Models mm/vma.c
    split_vma(); returns 0 or -ENOMEM."""
    if vma.vm_mm.map_count >= vma.vm_mm.machine.tunables.max_map_count:
        return -ENOMEM
    return __split_vma(vmi, vma, addr, new_below)


# =============================================================================================
# vma_modify: split/merge for an attribute change of part of a VMA (mm/vma.c)
# =============================================================================================
def vma_modify(vmg: vma_merge_struct):
    """Try to merge the range with a neighbour; otherwise split the VMA so that the range is
    a VMA of its own. Models mm/vma.c vma_modify(); returns the VMA or -errno."""
    vma = vmg.middle
    start = vmg.start
    end = vmg.end
    # First, try to merge.
    merged = vma_merge_existing_range(vmg)
    if merged is not None:
        return merged
    if vmg_nomem(vmg):
        return -ENOMEM
    # Split any preceding portion of the VMA.
    if vma.vm_start < start:
        err = split_vma(vmg.vmi, vma, start, 1)
        if err:
            return err
    # Split any trailing portion of the VMA.
    if vma.vm_end > end:
        err = split_vma(vmg.vmi, vma, end, 0)
        if err:
            return err
    return vma


def vma_modify_flags(vmi: VmaIterator, prev: Optional[vm_area_struct], vma: vm_area_struct,
                     start: int, end: int, vm_flags: int):
    """Prepare [start, end) of *vma* for its flags to become *vm_flags*: merge with prev/next
    or split. The caller (mprotect_fixup, mlock_fixup, madvise_update_vma) then sets the
    flags on the returned VMA.

    Models mm/vma.c vma_modify_flags() of 6.18 (flags by value); returns the VMA that covers
    exactly [start, end), or -errno (IS_ERR)."""
    vmg = VMG_VMA_STATE(vmi, prev, vma, start, end)
    vmg.vm_flags = vm_flags
    return vma_modify(vmg)


# =============================================================================================
# Linking and freeing (mm/vma.c)
# =============================================================================================
def vma_link_file(vma: vm_area_struct, hold_rmap_lock: bool = False) -> None:
    """Insert a new file VMA into its file's i_mmap. Models mm/vma.c vma_link_file()."""
    from .rmap import i_mmap_lock_write, i_mmap_unlock_write
    file = vma.vm_file
    if file is not None:
        mapping = file.f_mapping
        i_mmap_lock_write(mapping)
        __vma_link_file(vma, mapping)
        if not hold_rmap_lock:
            i_mmap_unlock_write(mapping)


def vma_link(mm: mm_struct, vma: vm_area_struct) -> int:
    """Insert a new VMA into the tree and its file's i_mmap. Models mm/vma.c vma_link()."""
    vmi = VmaIterator(mm.mm_mt, vma.vm_start)
    vma_start_write(vma)
    vma_iter_store_new(vmi, vma)
    vma_link_file(vma)
    mm.map_count += 1
    return 0


def remove_vma(vma: vm_area_struct) -> None:
    """Close a VMA and free it. Models mm/vma.c remove_vma() (vma_close: no ->close; fput:
    no file reference counts; mpol_put: no mempolicy)."""
    might_sleep("remove_vma")
    vm_area_free(vma)


def copy_vma(vmap: list, addr: int, length: int, pgoff: int):
    """Copy VMA ``vmap[0]`` to [addr, addr + length) with file offset *pgoff*, merging with
    the neighbours there when possible (mremap's move, before the page tables move).

    Models mm/vma.c copy_vma() of 6.18; *vmap* is a one-element list standing for the
    ``struct vm_area_struct **vmap`` the kernel updates. Returns (new_vma, need_rmap_locks)
    or (None, False). The page tables are not moved here (move_page_tables is mremap's)."""
    from .mm_types import find_vma_prev
    from .rmap import anon_vma_clone
    vma = vmap[0]
    vma_start = vma.vm_start
    mm = vma.vm_mm
    faulted_in_anon_vma = True
    vmi = VmaIterator(mm.mm_mt, addr)
    vmg = VMG_VMA_STATE(vmi, None, vma, addr, addr + length)

    # An unfaulted anonymous VMA takes the new location's pgoff, to increase its chance of
    # merging.
    if vma_is_anonymous(vma) and vma.anon_vma is None:
        pgoff = addr >> PAGE_SHIFT
        faulted_in_anon_vma = False
    if vma.vm_file is not None:
        vmg.skip_vma_uprobe = True

    new_vma, vmg.prev = find_vma_prev(mm, addr)
    if new_vma is not None and new_vma.vm_start < addr + length:
        return None, False                       # should never get here
    vmg.pgoff = pgoff
    vmg.next, _ = vma_iter_next_rewind(vmi)
    vmg.copied_from = vmg.middle                 # model marker, see vma_merge_struct
    vmg.middle = None
    new_vma = vma_merge_new_range(vmg)
    if new_vma is not None:
        # The source VMA may have been merged into new_vma.
        if vma_start >= new_vma.vm_start and vma_start < new_vma.vm_end:
            if faulted_in_anon_vma:
                raise KernelBug("VM_BUG_ON_VMA(faulted_in_anon_vma): copy_vma merged with self")
            vmap[0] = vma = new_vma
        need_rmap_locks = new_vma.vm_pgoff <= vma.vm_pgoff
        return new_vma, need_rmap_locks
    new_vma = vm_area_dup(vma)
    vma_set_range(new_vma, addr, addr + length, pgoff)
    if anon_vma_clone(new_vma, vma):
        vm_area_free(new_vma)                    # out_free_mempol -> out_free_vma
        return None, False
    # get_file / ->open: not modelled.
    vma_link(mm, new_vma)
    return new_vma, False


# =============================================================================================
# munmap (mm/vma.c)
# =============================================================================================
@dataclass
class vma_munmap_struct:
    """mm/vma.h struct vma_munmap_struct."""

    vmi: VmaIterator
    vma: Optional[vm_area_struct]
    prev: Optional[vm_area_struct] = None
    next: Optional[vm_area_struct] = None
    start: int = 0
    end: int = 0
    unmap_start: int = FIRST_USER_ADDRESS
    unmap_end: int = USER_PGTABLES_CEILING
    vma_count: int = 0
    unlock: bool = False
    clear_ptes: bool = False
    nr_pages: int = 0
    locked_vm: int = 0
    nr_accounted: int = 0
    exec_vm: int = 0
    stack_vm: int = 0
    data_vm: int = 0
    mm: Optional[mm_struct] = None


def init_vma_munmap(vms: vma_munmap_struct, vmi: VmaIterator, vma: Optional[vm_area_struct],
                    start: int, end: int, uf, unlock: bool) -> None:
    """mm/vma.c init_vma_munmap()."""
    vms.vmi = vmi
    vms.vma = vma
    if vma is not None:
        vms.start = start
        vms.end = end
        vms.mm = vma.vm_mm
    else:
        vms.start = vms.end = 0
    vms.unlock = unlock
    vms.vma_count = 0
    vms.nr_pages = vms.locked_vm = vms.nr_accounted = 0
    vms.exec_vm = vms.stack_vm = vms.data_vm = 0
    vms.unmap_start = FIRST_USER_ADDRESS
    vms.unmap_end = USER_PGTABLES_CEILING
    vms.clear_ptes = False


def mt_detach_tree(mm: mm_struct) -> MapleTree:
    """``struct maple_tree mt_detach`` on the munmap caller's stack (MA_STATE mas_detach)."""
    return MapleTree(f"mm{mm.id}:detach{mm.machine.next_id('mt_detach')}")


def reattach_vmas(mas_detach: VmaIterator) -> None:
    """Undo a gather: mark the detached VMAs attached again (they never left the main tree).
    Models mm/vma.c reattach_vmas()."""
    for vma in list(mas_detach.tree.vmas):
        vma_mark_attached(vma)
    mas_detach.tree.vmas.clear()
    mas_detach.tree.starts.clear()


def vms_gather_munmap_vmas(vms: vma_munmap_struct, mas_detach: VmaIterator) -> int:
    """Split the first and last VMA at the range's ends, then move every VMA of the range into
    the side tree *mas_detach*, counting pages, locked, accounted, exec/stack/data pages;
    find prev and next and so the page-table floor and ceiling (unmap_start, unmap_end).

    Models mm/vma.c vms_gather_munmap_vmas(); returns 0 or -errno (no mseal, no userfaultfd).
    The VMAs stay in the mm's tree until vma_iter_clear_gfp() (munmap) or the new VMA's store
    (MAP_FIXED mmap) overwrites them."""
    vmi = vms.vmi
    mm = vms.vma.vm_mm
    max_map_count = mm.machine.tunables.max_map_count

    # If we need to split any vma, do it now to save pain later. Does it split the first one?
    if vms.start > vms.vma.vm_start:
        # Make sure that map_count on return from munmap() will not exceed its limit; but
        # let map_count go just above its limit temporarily, to help free resources.
        if vms.end < vms.vma.vm_end and mm.map_count >= max_map_count:
            return -ENOMEM                                   # map_count_exceeded
        # vma_is_sealed(): no mseal.
        error = __split_vma(vmi, vms.vma, vms.start, 1)
        if error:
            return error                                     # start_split_failed
    vms.prev = _vma_before(vmi.tree, vms.start)              # vma_prev(vms->vmi)
    if vms.prev is not None:
        vms.unmap_start = vms.prev.vm_end
    vma_iter_set(vmi, vms.start)

    # Detach a range of VMAs from the mm (for_each_vma_range(*vmi, next, end)).
    while True:
        nxt = vmi.vma_find(vms.end)
        if nxt is None:
            break
        # Does it split the end?
        if nxt.vm_end > vms.end:
            error = __split_vma(vmi, nxt, vms.end, 0)
            if error:
                reattach_vmas(mas_detach)                    # end_split_failed
                return error
        vma_iter_set(vmi, nxt.vm_end)
        vma_start_write(nxt)
        vms.vma_count += 1
        mas_detach.tree.store(nxt)                           # mas_store_gfp(mas_detach, next)
        vma_mark_detached(nxt)
        nrpages = vma_pages(nxt)
        vms.nr_pages += nrpages
        if nxt.vm_flags & VM_LOCKED:
            vms.locked_vm += nrpages
        if nxt.vm_flags & VM_ACCOUNT:
            vms.nr_accounted += nrpages
        if is_exec_mapping(nxt.vm_flags):
            vms.exec_vm += nrpages
        elif is_stack_mapping(nxt.vm_flags):
            vms.stack_vm += nrpages
        elif is_data_mapping(nxt.vm_flags):
            vms.data_vm += nrpages
        # userfaultfd_unmap_prep(): not modelled.
        if nxt.vm_start < vms.start or nxt.vm_start > vms.end:
            raise KernelBug("BUG_ON: detached VMA outside the munmap range")

    vms.next = vmi.vma_next()
    if vms.next is not None:
        vms.unmap_end = vms.next.vm_start
    # while (vma_iter_addr(vms->vmi) > vms->start) vma_iter_prev_range(vms->vmi);
    vma_iter_set(vmi, vms.start)
    vms.clear_ptes = True
    return 0


def vms_clear_ptes(vms: vma_munmap_struct, mas_detach: VmaIterator, mm_wr_locked: bool) -> None:
    """Zap the detached VMAs' PTEs in [vms.start, vms.end) and free the page tables between
    prev's end and next's start (unmap_start, unmap_end), under one mmu_gather.

    Models mm/vma.c vms_clear_ptes() of 6.18 (the open-coded unmap, before 6.19's
    unmap_desc): tlb_gather_mmu, update_hiwater_rss, unmap_vmas over the side tree,
    free_pgtables with floor/ceiling from prev/next, tlb_finish_mmu. With *mm_wr_locked*
    False the caller holds mmap_lock for read only: the VMAs were isolated before the
    downgrade."""
    from .free_pgtables import free_pgtables
    from .mmu_gather import mmu_gather, tlb_finish_mmu, tlb_gather_mmu
    from .zap import unmap_vmas, update_hiwater_rss
    if not vms.clear_ptes:       # Nothing to do
        return
    mm = vms.vma.vm_mm
    tlb = mmu_gather()
    vma_iter_set(mas_detach, vms.vma.vm_end)                 # mas_set(mas_detach, 1)
    tlb_gather_mmu(tlb, mm)
    update_hiwater_rss(mm)
    # The kernel bounds the side-tree walk by vms->vma_count (index space); the model's side
    # tree is keyed by address, so the bound is vms->end.
    sched.operated_on(vms.start, vms.end)
    unmap_vmas(tlb, mas_detach, vms.vma, vms.start, vms.end, vms.end, mm_wr_locked)
    vma_iter_set(mas_detach, vms.vma.vm_end)                 # mas_set(mas_detach, 1)
    # start and end may be different if there is no prev or next vma.
    free_pgtables(tlb, mas_detach, vms.vma, vms.unmap_start, vms.unmap_end, mm_wr_locked)
    tlb_finish_mmu(tlb)
    vms.clear_ptes = False


def vms_clean_up_area(vms: vma_munmap_struct, mas_detach: VmaIterator) -> None:
    """Clear the PTEs of the VMAs a MAP_FIXED mmap replaces while they are still in the tree
    (vma_close: no ->close). Models mm/vma.c vms_clean_up_area()."""
    if not vms.nr_pages:
        return
    vms_clear_ptes(vms, mas_detach, True)


def update_hiwater_vm(mm: mm_struct) -> None:
    """include/linux/mm.h update_hiwater_vm()."""
    if mm.hiwater_vm < mm.total_vm:
        mm.hiwater_vm = mm.total_vm


def vms_complete_munmap_vmas(vms: vma_munmap_struct, mas_detach: VmaIterator) -> None:
    """Finish a munmap whose VMAs are out of the tree: update the mm's counts, downgrade
    mmap_lock to read if asked (vms.unlock), zap and free tables (vms_clear_ptes), free the
    VMAs, and drop the lock.

    Models mm/vma.c vms_complete_munmap_vmas() (current->mm is the VMAs' mm)."""
    mm = vms.mm
    mm.map_count -= vms.vma_count
    mm.locked_vm -= vms.locked_vm
    if vms.unlock:
        mmap_write_downgrade(mm)
    if not vms.nr_pages:
        return
    vms_clear_ptes(vms, mas_detach, not vms.unlock)
    # Update high watermark before we lower total_vm.
    update_hiwater_vm(mm)
    mm.total_vm -= vms.nr_pages
    if vms.exec_vm > mm.exec_vm or vms.stack_vm > mm.stack_vm or vms.data_vm > mm.data_vm:
        WARN(mm.machine, "vms_complete_munmap_vmas: exec/stack/data_vm underflow")
    mm.exec_vm -= vms.exec_vm
    mm.stack_vm -= vms.stack_vm
    mm.data_vm -= vms.data_vm
    # Remove and clean up vmas.
    for vma in list(mas_detach.tree.vmas):
        remove_vma(vma)
    # vm_unacct_memory(vms->nr_accounted): no overcommit accounting.
    if vms.unlock:
        mmap_read_unlock(mm)
    # __mt_destroy(mas_detach->tree)
    mas_detach.tree.vmas.clear()
    mas_detach.tree.starts.clear()


def do_vmi_align_munmap(vmi: VmaIterator, vma: vm_area_struct, mm: mm_struct, start: int,
                        end: int, uf, unlock: bool) -> int:
    """munmap the page-aligned [start, end), whose first VMA is *vma*. With *unlock*, the
    mmap_lock is downgraded for the zap and released on success.

    Models mm/vma.c do_vmi_align_munmap(); returns 0 or -errno (lock still held)."""
    mas_detach = VmaIterator(mt_detach_tree(mm), 0)
    vms = vma_munmap_struct(vmi=vmi, vma=vma)
    init_vma_munmap(vms, vmi, vma, start, end, uf, unlock)
    error = vms_gather_munmap_vmas(vms, mas_detach)
    if error:
        return error                                         # gather_failed
    error = vma_iter_clear_gfp(vmi, start, end)
    if error:
        reattach_vmas(mas_detach)                            # clear_tree_failed
        return error
    # Point of no return.
    vms_complete_munmap_vmas(vms, mas_detach)
    return 0


def do_vmi_munmap_args(start, len_):
    """do_vmi_munmap()'s argument checks on unsigned longs: returns ``(invalid, end)`` where
    *invalid* is true exactly when the kernel returns -EINVAL (start not page aligned, start
    above TASK_SIZE, len above TASK_SIZE - start, or a range that rounds to nothing) and
    ``end = start + PAGE_ALIGN(len)``.

    Written with impl/word.py so that a proof can run it on symbolic values: every start/len
    whose range would wrap or leave user space is rejected."""
    offset_in_page = word.band(start, PAGE_SIZE - 1)
    bad = word.lor(word.lor(word.lnot(word.eq(offset_in_page, 0)), word.ult(TASK_SIZE, start)),
                   word.ult(word.sub(TASK_SIZE, start), len_))
    page_align_len = word.band(word.add(len_, PAGE_SIZE - 1), PAGE_MASK)
    end = word.add(start, page_align_len)
    return word.lor(bad, word.eq(end, start)), end


def do_vmi_munmap(vmi: VmaIterator, mm: mm_struct, start: int, len_: int, uf,
                  unlock: bool) -> int:
    """munmap [start, start + len): validate, find the first VMA, unmap. Munmap of nothing
    returns 0 (and drops the lock if *unlock*).

    Models mm/vma.c do_vmi_munmap(); the checks are :func:`do_vmi_munmap_args`.
    Real-kernel facts (Linux 6.18 on x86-64, checked with raw syscalls): unaligned start,
    len 0, len ULONG_MAX, start or start + len above TASK_SIZE -> -EINVAL; an unmapped
    range, address 0, or an unaligned len over a hole -> 0."""
    invalid, end = do_vmi_munmap_args(start, len_)
    if invalid:
        return -EINVAL
    # Find the first overlapping VMA.
    vma = vmi.vma_find(end)
    if vma is None:
        if unlock:
            from .locks import mmap_write_unlock
            mmap_write_unlock(mm)
        return 0
    return do_vmi_align_munmap(vmi, vma, mm, start, end, uf, unlock)


# =============================================================================================
# Mapping a new region (mm/vma.c __mmap_region and its helpers)
# =============================================================================================
@dataclass
class mmap_state:
    """mm/vma.c struct mmap_state (the fields the model uses)."""

    mm: mm_struct
    vmi: VmaIterator
    addr: int
    end: int
    pgoff: int
    pglen: int
    vm_flags: int
    file: object
    charged: int = 0
    prev: Optional[vm_area_struct] = None
    next: Optional[vm_area_struct] = None
    vms: Optional[vma_munmap_struct] = None
    mas_detach: Optional[VmaIterator] = None
    check_ksm_early: bool = True
    hold_file_rmap_lock: bool = False


def MMAP_STATE(mm: mm_struct, vmi: VmaIterator, addr: int, len_: int, pgoff: int,
               vm_flags: int, file) -> mmap_state:
    """mm/vma.c MMAP_STATE()."""
    return mmap_state(mm=mm, vmi=vmi, addr=addr, end=addr + len_, pgoff=pgoff,
                      pglen=PHYS_PFN(len_), vm_flags=vm_flags, file=file)


def VMG_MMAP_STATE(map_: mmap_state, vma: Optional[vm_area_struct]) -> vma_merge_struct:
    """mm/vma.c VMG_MMAP_STATE()."""
    return vma_merge_struct(mm=map_.mm, vmi=map_.vmi, start=map_.addr, end=map_.end,
                            vm_flags=map_.vm_flags, pgoff=map_.pgoff, file=map_.file,
                            prev=map_.prev, middle=vma,
                            next=None if vma is not None else map_.next,
                            state=VMA_MERGE_START)


def accountable_mapping(file, vm_flags: int) -> bool:
    """mm/vma.c accountable_mapping(): private writable, not VM_NORESERVE (no hugetlb)."""
    return (vm_flags & (VM_NORESERVE | VM_SHARED | VM_WRITE)) == VM_WRITE


def __mmap_prepare(map_: mmap_state, uf) -> int:
    """Gather the VMAs the new mapping overlaps (to be unmapped when it is in place), find
    prev and next, account a private writable mapping (VM_ACCOUNT), and clear the PTEs of
    what it replaces. Models mm/vma.c __mmap_prepare() of 6.18 (__mmap_setup() later);
    may_expand_vm() is always true (no RLIMIT_AS/RLIMIT_DATA) and the overcommit check
    always passes."""
    vmi = map_.vmi
    map_.mas_detach = VmaIterator(mt_detach_tree(map_.mm), 0)
    # Find the first overlapping VMA and initialise unmap state.
    first = vmi.vma_find(map_.end)
    vms = map_.vms = vma_munmap_struct(vmi=vmi, vma=first)
    init_vma_munmap(vms, vmi, first, map_.addr, map_.end, uf, False)
    vms.mm = map_.mm
    if vms.vma is not None:
        # Prepare to unmap any existing mapping in the area.
        error = vms_gather_munmap_vmas(vms, map_.mas_detach)
        if error:
            # On error VMAs will already have been reattached.
            vms.nr_pages = 0
            return error
        map_.next = vms.next
        map_.prev = vms.prev
    else:
        vma_iter_set(vmi, map_.addr)
        map_.next, map_.prev = vma_iter_next_rewind(vmi)
    # Check against address space limit: may_expand_vm() (no rlimits in the model).
    # Private writable mapping: check memory availability.
    if accountable_mapping(map_.file, map_.vm_flags):
        map_.charged = map_.pglen - vms.nr_accounted
        # security_vm_enough_memory_mm(): no overcommit limit in the model.
        vms.nr_accounted = 0
        map_.vm_flags |= VM_ACCOUNT
    # Clear PTEs while the vma is still in the tree so that rmap cannot race with the
    # freeing later in the truncate scenario.
    vms_clean_up_area(vms, map_.mas_detach)
    return 0


def shmem_mmap(file, vma: vm_area_struct) -> int:
    """mm/shmem.c's ->mmap for a shmem file (shmem_mmap_prepare in 6.18): file_accessed and
    vma->vm_ops = &shmem_vm_ops (the model derives vm_ops from vm_file:
    filemap.vma_vm_ops). Returns 0."""
    return 0


def mmap_file(file, vma: vm_area_struct) -> int:
    """include/linux/fs.h mmap_file(): the file's ->mmap (shmem or a regular file's
    generic_file_mmap: nothing the model needs to do)."""
    return shmem_mmap(file, vma)


def __mmap_new_file_vma(map_: mmap_state, vma: vm_area_struct) -> int:
    """Attach the file to a new VMA and call its ->mmap. Models mm/vma.c
    __mmap_new_file_vma()."""
    vma.vm_file = map_.file
    # get_file(map->file): no reference counts.
    # The ->mmap of a shmem or regular file does not fail (the model has no driver files),
    # so the kernel's error path here (unmap_region of what a driver may have mapped, then
    # the VMA freed) is not modelled.
    mmap_file(vma.vm_file, vma)
    map_.file = vma.vm_file
    map_.vm_flags = vma.vm_flags
    return 0


def __mmap_new_vma(map_: mmap_state):
    """Allocate, set up and insert a new VMA for the region (no merge was possible):
    file VMAs get their file and i_mmap link, shared anonymous ones a shmem file
    (shmem_zero_setup). Models mm/vma.c __mmap_new_vma(); returns (0, vma) or (-errno, None)."""
    from .filemap import shmem_zero_setup
    vmi = map_.vmi
    vma = vm_area_alloc(map_.mm)
    vma_iter_set(vmi, map_.addr)                     # vma_iter_config(vmi, addr, end)
    vma.vm_start, vma.vm_end, vma.vm_pgoff = map_.addr, map_.end, map_.pgoff
    vma.vm_flags = map_.vm_flags                     # vm_flags_init(); vm_page_prot: no field
    error = 0
    if map_.file is not None:
        error = __mmap_new_file_vma(map_, vma)
    elif map_.vm_flags & VM_SHARED:
        shmem_zero_setup(vma)
    # else vma_set_anonymous(vma): vm_ops = NULL.
    if error:
        vm_area_free(vma)
        return error, None
    # update_ksm_flags(): no KSM. "Lock the VMA since it is modified after insertion into
    # VMA tree" (33313a747e81, 1c7873e33645).
    vma_start_write(vma)
    vma_iter_store_new(vmi, vma)
    map_.mm.map_count += 1
    vma_link_file(vma, map_.hold_file_rmap_lock)
    return 0, vma


def vma_supports_mlock(vma: vm_area_struct) -> bool:
    """mm/internal.h vma_supports_mlock(): not special, not hugetlb (no gate VMA, no DAX)."""
    if vma.vm_flags & (VM_SPECIAL | VM_HUGETLB):
        return False
    return True


def __mmap_complete(map_: mmap_state, vma: vm_area_struct) -> None:
    """Unmap what the new mapping replaced, account it (total_vm, locked_vm), finalise the
    VMA. Models mm/vma.c __mmap_complete() (perf_event_mmap, uprobe_mmap and
    vma_set_page_prot have nothing to do in the model)."""
    from .mmap import vm_stat_account
    mm = map_.mm
    vm_flags = vma.vm_flags
    # Unmap any existing mapping in the area.
    vms_complete_munmap_vmas(map_.vms, map_.mas_detach)
    vm_stat_account(mm, vma.vm_flags, map_.pglen)
    if vm_flags & VM_LOCKED:
        if not vma_supports_mlock(vma):
            vm_flags_clear(vma, VM_LOCKED_MASK)
        else:
            mm.locked_vm += map_.pglen
    # New (or expanded) VMAs get soft-dirty status where the page tables support it
    # (pgtable_supports_soft_dirty): CONFIG_MEM_SOFT_DIRTY is off on the oracle machine's
    # 6.18 kernel (its VmFlags show no "sd"), so never in the model.


def vms_abort_munmap_vmas(vms: vma_munmap_struct, mas_detach: VmaIterator) -> None:
    """Undo as much of an aborted MAP_FIXED unmap as possible: reattach the VMAs if their
    PTEs are intact, else leave a hole and finish the unmap. Models mm/vma.c
    vms_abort_munmap_vmas()."""
    if not vms.nr_pages:
        return
    if vms.clear_ptes:
        reattach_vmas(mas_detach)
        return
    vma_iter_clear_gfp(vms.vmi, vms.start, vms.end)   # store NULL over the range
    vms_complete_munmap_vmas(vms, mas_detach)


def __mmap_region(mm: mm_struct, file, addr: int, len_: int, vm_flags: int, pgoff: int,
                  uf=None) -> int:
    """Map [addr, addr + len) (aligned, checked) with *vm_flags*: unmap what it overlaps,
    merge with prev/next or insert a new VMA, account. Models mm/vma.c __mmap_region() of
    6.18 (current->mm is *mm*; no ->mmap_prepare hooks: shmem's does nothing the model sees)."""
    vma = None
    vmi = VmaIterator(mm.mm_mt, addr)
    map_ = MMAP_STATE(mm, vmi, addr, len_, pgoff, vm_flags, file)
    error = __mmap_prepare(map_, uf)
    if error:
        vms_abort_munmap_vmas(map_.vms, map_.mas_detach)    # abort_munmap
        return error
    # Attempt to merge with adjacent VMAs...
    if map_.prev is not None or map_.next is not None:
        vmg = VMG_MMAP_STATE(map_, None)
        vma = vma_merge_new_range(vmg)
    # ...but if we can't, allocate a new VMA.
    if vma is None:
        error, vma = __mmap_new_vma(map_)
        if error:
            # unacct_error: vm_unacct_memory(map.charged) - no overcommit accounting.
            vms_abort_munmap_vmas(map_.vms, map_.mas_detach)
            return error
    __mmap_complete(map_, vma)
    return addr


def mmap_region(mm: mm_struct, file, addr: int, len_: int, vm_flags: int, pgoff: int,
                uf=None) -> int:
    """Map a checked, aligned region into *mm* (the caller holds mmap_lock for write).
    Models mm/vma.c mmap_region() (no MDWE, arch_validate_flags always true, no memfd write
    seals: mapping_map_writable succeeds); returns addr or -errno."""
    mmap_assert_write_locked(mm)
    ret = __mmap_region(mm, file, addr, len_, vm_flags, pgoff, uf)
    # validate_mm(): the invariants check the tree.
    return ret


# =============================================================================================
# Stack expansion (mm/vma.c acct_stack_growth, expand_downwards; x86 has no VM_GROWSUP)
# =============================================================================================
def acct_stack_growth(vma: vm_area_struct, size: int, grow: int) -> int:
    """mm/vma.c acct_stack_growth(): may the stack VMA grow by *grow* pages to *size* bytes?
    RLIMIT_STACK (Machine.tunables.rlimit_stack) and the mlock limit are checked;
    may_expand_vm (RLIMIT_AS unlimited, a stack is not a data mapping), hugetlb-only ranges
    and the overcommit check (security_vm_enough_memory_mm) always pass in the model."""
    from .mmap import mlock_future_ok
    mm = vma.vm_mm
    # address space limit tests: may_expand_vm() is true.
    # Stack limit test.
    if size > mm.machine.tunables.rlimit_stack:
        return -ENOMEM
    # mlock limit tests.
    if not mlock_future_ok(mm, bool(vma.vm_flags & VM_LOCKED), grow << PAGE_SHIFT):
        return -ENOMEM
    # (is_hugepage_only_range: no hugetlb; security_vm_enough_memory_mm: no overcommit)
    return 0


def expand_downwards(vma: vm_area_struct, address: int) -> int:
    """Grow a VM_GROWSDOWN VMA down to the page of *address* (the caller holds mmap_lock for
    write): refused (-ENOMEM) when an accessible VMA that is not itself a stack ends less
    than stack_guard_gap below the new start, or the limits say no. Models mm/vma.c
    expand_downwards() of 6.18 (the maple preallocation does not fail)."""
    from .mmap import vm_stat_account
    from .rmap import anon_vma_lock_write, anon_vma_prepare, anon_vma_unlock_write
    mm = vma.vm_mm
    vmi = VmaIterator(mm.mm_mt, vma.vm_start)
    if not vma.vm_flags & VM_GROWSDOWN:
        from .constants import EFAULT
        return -EFAULT
    mmap_assert_write_locked(mm)
    address &= PAGE_MASK
    if address < mm.machine.tunables.mmap_min_addr or address < FIRST_USER_ADDRESS:
        from .constants import EPERM
        return -EPERM
    # The guard gap below a stack.
    prev = vmi.vma_prev()
    if prev is not None:
        from .fault import vma_is_accessible
        if (not prev.vm_flags & VM_GROWSDOWN and vma_is_accessible(prev)
                and address - prev.vm_end < STACK_GUARD_GAP):
            return -ENOMEM
    vmi.vma_iter_set(address)                     # vma_iter_config(&vmi, address, vm_end)
    # (vma_iter_prealloc: never fails)
    # The VMA needs an anon_vma before it can grow (its lock covers the update).
    if anon_vma_prepare(vma):
        return -ENOMEM
    # "Lock the VMA before expanding to prevent concurrent page faults" (c137381f71ae).
    vma_start_write(vma)
    # The anon_vma lock covers the interval update.
    anon_vma_lock_write(vma.anon_vma)
    error = 0
    # Another fault may have grown it meanwhile.
    if address < vma.vm_start:
        size = vma.vm_end - address
        grow = (vma.vm_start - address) >> PAGE_SHIFT
        error = -ENOMEM
        if grow <= vma.vm_pgoff:
            error = acct_stack_growth(vma, size, grow)
            if not error:
                if vma.vm_flags & VM_LOCKED:
                    mm.locked_vm += grow
                vm_stat_account(mm, vma.vm_flags, grow)
                # anon_vma_interval_tree_pre_update_vma: the model's anon_vma lists VMAs
                vma_set_range(vma, address, vma.vm_end, vma.vm_pgoff - grow)
                # The tree entry now covers the new range.
                vma_iter_store_overwrite(vmi, vma)
                # anon_vma_interval_tree_post_update_vma; perf_event_mmap
    anon_vma_unlock_write(vma.anon_vma)
    # validate_mm(): the invariants check the tree.
    return error


__all__ = [
    "acct_stack_growth", "expand_downwards",
    "vma_merge_struct", "vma_munmap_struct", "mmap_state", "VMG_VMA_STATE", "IS_ERR",
    "vm_area_alloc", "vm_area_dup", "vm_area_free", "vma_set_range", "vma_iter_store_new",
    "vma_iter_store_overwrite", "vma_merge_new_range", "vma_merge_existing_range",
    "vma_expand", "vma_modify", "vma_modify_flags", "split_vma", "vma_link", "remove_vma", "copy_vma",
    "do_vmi_munmap", "do_vmi_munmap_args", "do_vmi_align_munmap", "vms_gather_munmap_vmas",
    "vms_complete_munmap_vmas", "vms_clear_ptes", "mmap_region",
    "is_exec_mapping", "is_stack_mapping", "is_data_mapping", "vm_start_gap",
]
