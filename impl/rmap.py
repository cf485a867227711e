"""The reverse map: anon_vma for anonymous pages, i_mmap for file pages, and the mapcount.

Models mm/rmap.c (struct anon_vma and its chains: anon_vma_prepare, anon_vma_clone,
anon_vma_fork, unlink_anon_vmas; the mapcount: folio_add_new_anon_rmap,
folio_add_anon_rmap_ptes, folio_add_file_rmap_ptes, folio_remove_rmap_ptes,
folio_move_anon_rmap; the walks: rmap_walk, folio_mkclean, try_to_migrate; the batched unmap
flush: set_tlb_ubc_flush_pending, try_to_unmap_flush, flush_tlb_batched_pending),
include/linux/rmap.h (folio_try_dup_anon_rmap_ptes, folio_dup_file_rmap_ptes,
folio_try_share_anon_rmap_pte, struct page_vma_mapped_walk), mm/page_vma_mapped.c
(page_vma_mapped_walk), mm/interval_tree.c (vma_interval_tree_*), mm/vma.c's
unlink_file_vma_batch_* (free_pgtables' batch form), mm/pgtable-generic.c ptep_clear_flush,
the i_mmap lock helpers of include/linux/fs.h, and, beside try_to_migrate which they undo,
mm/migrate.c's remove_migration_pte(s).

6.18 shapes where later kernels differ: anon_vma_clone(dst, src) takes two arguments and
does the fork-time reuse itself (later kernels add an operation argument and split out
maybe_reuse_anon_vma); non-present entries are tested with is_migration_entry() and friends
(include/linux/swapops.h), not the later softleaf_* helpers.

Simplifications common to the module:
* every folio is order 0 (no THP, no large folios): a folio and its page are one record, the
  mapcount is ``page._mapcount`` (stored from -1), ``nr_pages`` is always 1;
* no KSM, no hugetlb, no device-private/-exclusive entries, no mlock bookkeeping, no memcg,
  no mmu notifiers, no per-node NR_*_MAPPED statistics: the places are marked with comments;
* the anon_vma interval tree (anon_vma->rb_root) is a list of the chained VMAs in insertion
  order, queried by pgoff range; the VMA's ``same_vma`` list of anon_vma_chains is a list of
  AnonVma (newest first, as list_add builds it): ``vma.anon_vma_chain``;
* the file interval tree (mapping->i_mmap) is ``AddressSpace.i_mmap``, a list kept sorted by
  vm_pgoff (ties in insertion order), which is the order an in-order walk of the kernel's
  interval tree visits;
* page_vma_mapped_walk looks at exactly one PTE (order 0): the one at vma_address();
* migration entries carry pfn, write, young and dirty; there is no readable-exclusive form,
  so a read-only PageAnonExclusive page comes back from migration as possibly shared;
* ``current->tlb_ubc`` lives on the running sched.Context, ``mm->tlb_flush_batched`` on the
  mm_struct (as an attribute added on first use).
"""

from __future__ import annotations

import bisect
from typing import Any, Callable, Optional

from . import sched
from .bug import WARN
from .constants import (EBUSY, EFAULT, ENOMEM, MM_ANONPAGES, MM_SWAPENTS, PAGE_SHIFT, PAGE_SIZE,
                        PMD_SIZE, VM_EXEC, VM_LOCKED, VM_READ, VM_SHARED, VM_WRITE)
from .locks import (RwSem, down_read, down_read_trylock, down_write, lockdep_assert_held_write,
                    might_sleep, spin_lock, spin_unlock, up_read, up_write)
from .mm_types import linear_page_index, vm_flags_read
from .page import (PG_anon_exclusive, PG_dirty, PG_locked, PG_swapbacked, PG_swapcache, Page,
                   folio_get, folio_mapped, folio_put, folio_set_dirty, folio_set_flag,
                   folio_test_anon, folio_test_dirty)
from .pgtable import (EntryPtr, pmd_none, pmdp_get, pte_offset_map_lock,
                      pte_offset_map_rw_nolock, pte_unmap, pte_unmap_unlock,
                      pte_accessible, ptep_clear_flush, ptep_get, ptep_get_and_clear,
                      set_pte_at, walk_to_pmd)
from .pte import (MIGRATION, is_migration_entry, is_writable_migration_entry,
                  make_migration_entry, pfn_pte, pte_dirty, pte_mkclean, pte_mkdirty, pte_mkold,
                  pte_mkwrite, pte_none, pte_present, pte_pfn, pte_t, pte_write, pte_wrprotect,
                  pte_young)
from .sched import KernelBug, may_fail

# include/linux/rmap.h: rmap_t flags.
RMAP_NONE = 0
RMAP_EXCLUSIVE = 1 << 0

# include/linux/rmap.h: enum ttu_flags (the ones the model distinguishes).
TTU_SPLIT_HUGE_PMD = 0x4
TTU_IGNORE_MLOCK = 0x8
TTU_SYNC = 0x10
TTU_BATCH_FLUSH = 0x40
TTU_RMAP_LOCKED = 0x80

# include/linux/rmap.h: page_vma_mapped_walk flags.
PVMW_SYNC = 1 << 0
PVMW_MIGRATION = 1 << 1



# --- PageAnonExclusive (include/linux/page-flags.h) -------------------------------------------
def PageAnonExclusive(page: Page) -> bool:
    sched.point("PageAnonExclusive", reads=(page.obj,))
    return bool(page.flags & PG_anon_exclusive)


def SetPageAnonExclusive(page: Page) -> None:
    sched.point("SetPageAnonExclusive", writes=(page.obj,))
    page.flags |= PG_anon_exclusive


def ClearPageAnonExclusive(page: Page) -> None:
    sched.point("ClearPageAnonExclusive", writes=(page.obj,))
    page.flags &= ~PG_anon_exclusive


# =============================================================================================
# struct anon_vma and the anon_vma_chain
# =============================================================================================
class AnonVma:
    """``struct anon_vma``: what an anonymous page's ->mapping points at.

    ``vmas`` stands for the interval tree ``rb_root`` of anon_vma_chains: the VMAs linked to
    this anon_vma. ``rwsem`` is the root's (anon_vma_lock_write locks ``root->rwsem``).
    ``refcount``, ``num_children``, ``num_active_vmas`` and ``parent`` are the kernel's.
    """

    is_anon = True

    def __init__(self, machine, root: "AnonVma | None" = None):
        self.id = machine.next_id("anon_vma")
        self.machine = machine
        self.root = root or self
        self.parent: AnonVma = self
        self.vmas: list = []
        self.rwsem = RwSem(f"anon_vma:{self.id}") if root is None else self.root.rwsem
        self.refcount = 1
        self.num_children = 0
        self.num_active_vmas = 0
        self.freed = False
        machine.anon_vmas.append(self)

    @property
    def obj(self) -> tuple:
        return ("anon_vma", self.root.id)

    def __repr__(self) -> str:
        return (f"<anon_vma {self.id} root={self.root.id} vmas={len(self.vmas)} "
                f"ref={self.refcount}{' FREED' if self.freed else ''}>")


def anon_vma_chain(vma) -> list:
    """``vma->anon_vma_chain`` (the same_vma list) as a list of AnonVma, newest first."""
    return vma.anon_vma_chain

def anon_vma_alloc(machine) -> AnonVma:
    """mm/rmap.c anon_vma_alloc(): a new root anon_vma with refcount 1 and num_children 0
    (anon_vma_ctor); the caller sets parent/root as needed."""
    anon_vma = AnonVma(machine)
    anon_vma.num_children = 0
    anon_vma.num_active_vmas = 0
    anon_vma.parent = anon_vma
    anon_vma.root = anon_vma
    return anon_vma


def anon_vma_free(anon_vma: AnonVma) -> None:
    """mm/rmap.c anon_vma_free(): the model marks it freed (a page still pointing at it is
    then visible to the invariants)."""
    anon_vma.freed = True


def get_anon_vma(anon_vma: AnonVma) -> None:
    """include/linux/rmap.h get_anon_vma()."""
    sched.point("get_anon_vma", writes=(("anon_vma_ref", anon_vma.id),))
    anon_vma.refcount += 1


def put_anon_vma(anon_vma: AnonVma) -> None:
    """include/linux/rmap.h put_anon_vma() -> mm/rmap.c __put_anon_vma(): the last reference
    frees it, and drops the reference it held on its root."""
    sched.point("put_anon_vma", writes=(("anon_vma_ref", anon_vma.id),))
    anon_vma.refcount -= 1
    if anon_vma.refcount < 0:
        raise KernelBug(f"VM_BUG_ON: anon_vma {anon_vma.id} refcount underflow")
    if anon_vma.refcount == 0:
        __put_anon_vma(anon_vma)


def __put_anon_vma(anon_vma: AnonVma) -> None:
    root = anon_vma.root
    anon_vma_free(anon_vma)
    if root is not anon_vma:
        sched.point("put_anon_vma(root)", writes=(("anon_vma_ref", root.id),))
        root.refcount -= 1
        if root.refcount == 0:
            anon_vma_free(root)


def anon_vma_lock_write(anon_vma: AnonVma) -> None:
    """include/linux/rmap.h anon_vma_lock_write(): down_write(&anon_vma->root->rwsem)."""
    down_write(anon_vma.root.rwsem)


def anon_vma_unlock_write(anon_vma: AnonVma) -> None:
    up_write(anon_vma.root.rwsem)


def anon_vma_lock_read(anon_vma: AnonVma) -> None:
    down_read(anon_vma.root.rwsem)


def anon_vma_unlock_read(anon_vma: AnonVma) -> None:
    up_read(anon_vma.root.rwsem)


def anon_vma_chain_link(vma, anon_vma: AnonVma) -> None:
    """mm/rmap.c anon_vma_chain_link(): add the chain to vma->anon_vma_chain (at the head)
    and to anon_vma->rb_root (anon_vma_interval_tree_insert). Caller holds the anon_vma
    (root) lock for write: the interval tree is what rmap walkers read under its read side.
    6.18 does not assert it here; the model does (lockdep_assert_held_write)."""
    lockdep_assert_held_write(anon_vma.root.rwsem, "anon_vma_chain_link")
    sched.point("anon_vma_chain_link", writes=(anon_vma.obj, vma.obj))
    anon_vma_chain(vma).insert(0, anon_vma)
    anon_vma.vmas.append(vma)


def anon_vma_compatible(a, b) -> bool:
    """mm/vma.c anon_vma_compatible(): could *a* and *b* (in address order) share an
    anon_vma? Adjacent, the same file (no mempolicies in the model: mpol_equal), flags that
    differ only in what mprotect may change, and pgoffs that continue."""
    from .constants import VM_SOFTDIRTY
    return (a.vm_end == b.vm_start
            and a.vm_file is b.vm_file
            and not ((vm_flags_read(a) ^ vm_flags_read(b))
                     & ~(VM_READ | VM_WRITE | VM_EXEC | VM_SOFTDIRTY))
            and b.vm_pgoff == a.vm_pgoff + ((b.vm_start - a.vm_start) >> PAGE_SHIFT))


def reusable_anon_vma(old, a, b) -> Optional[AnonVma]:
    """mm/vma.c reusable_anon_vma(): *old*'s anon_vma, if *a* and *b* are compatible and it
    is *old*'s only one (not one that went through fork). Read once (READ_ONCE): it may be
    being set up concurrently by a fault in *old*, which is fine."""
    if anon_vma_compatible(a, b):
        sched.point("READ_ONCE(old->anon_vma)", reads=(old.obj,))
        anon_vma = old.anon_vma
        if anon_vma is not None and len(anon_vma_chain(old)) == 1:   # list_is_singular
            return anon_vma
    return None


def find_mergeable_anon_vma(vma) -> Optional[AnonVma]:
    """Reuse a neighbour's anon_vma (the next VMA first, then the previous one) when the two
    could merge, so that faults after a run of mprotects do not leave distinct anon_vmas
    that stop a later mprotect from merging the VMAs again (which /proc/PID/maps shows).
    Models mm/vma.c find_mergeable_anon_vma(); caller holds mmap_lock (read)."""
    from .mm_types import find_vma, find_vma_prev
    anon_vma = None
    # The next VMA first: vma_iter_load() at vm_end, the VMA starting right there (if any).
    nxt = find_vma(vma.vm_mm, vma.vm_end)
    if nxt is not None and nxt.vm_start == vma.vm_end:
        anon_vma = reusable_anon_vma(nxt, vma, nxt)
        if anon_vma is not None:
            return anon_vma
    this, prev = find_vma_prev(vma.vm_mm, vma.vm_start)
    if this is not vma:
        raise KernelBug(f"VM_BUG_ON_VMA(prev != vma): {vma}")
    # Then the previous one.
    if prev is not None:
        anon_vma = reusable_anon_vma(prev, prev, vma)
    # None: the caller allocates a new anon_vma.
    return anon_vma


def anon_vma_prepare(vma) -> int:
    """Make sure *vma* has an anon_vma before an anonymous page is mapped in it.

    Models include/linux/rmap.h anon_vma_prepare() and mm/rmap.c __anon_vma_prepare().
    Returns 0 (allocation does not fail in the model)."""
    sched.point("READ vma->anon_vma", reads=(vma.obj,))
    if vma.anon_vma is not None:
        return 0
    return __anon_vma_prepare(vma)


def __anon_vma_prepare(vma) -> int:
    """mm/rmap.c __anon_vma_prepare(): allocate (or find) an anon_vma, then under its lock and
    mm->page_table_lock install it unless another thread did meanwhile."""
    mm = vma.vm_mm
    might_sleep("__anon_vma_prepare")
    # anon_vma_chain_alloc(GFP_KERNEL): the model's chains are list slots.
    anon_vma = find_mergeable_anon_vma(vma)
    allocated = None
    if anon_vma is None:
        anon_vma = anon_vma_alloc(mm.machine)
        anon_vma.num_children += 1          # self-parent link for root
        allocated = anon_vma

    anon_vma_lock_write(anon_vma)
    # page_table_lock to protect against threads
    spin_lock(mm.page_table_lock)
    sched.point("READ vma->anon_vma", reads=(vma.obj,))
    if vma.anon_vma is None:
        sched.point("WRITE vma->anon_vma", writes=(vma.obj,))
        vma.anon_vma = anon_vma
        anon_vma_chain_link(vma, anon_vma)
        anon_vma.num_active_vmas += 1
        allocated = None
    spin_unlock(mm.page_table_lock)
    anon_vma_unlock_write(anon_vma)

    if allocated is not None:
        put_anon_vma(allocated)
    return 0


def anon_vma_clone(dst, src) -> int:
    """Attach *dst* to every anon_vma *src* is attached to (split_vma, copy_vma, and the first
    half of anon_vma_fork).

    Models mm/rmap.c anon_vma_clone() of 6.18, including the reuse of an anon_vma that has
    no VMA and at most one child (for fork). Returns 0 or -ENOMEM.

    Each anon_vma_chain is first allocated with GFP_NOWAIT under the root's lock; when that
    fails (choice kind "alloc") the lock is dropped and the chain allocated with GFP_KERNEL,
    which fails only where the scenario says so (choice kind "enomem": an order-0 GFP_KERNEL
    allocation fails for an OOM victim or under fault injection). On that failure
    (enomem_failure) dst->anon_vma goes back to NULL and dst is unlinked from what it was
    linked to so far: callers do not use dst->anon_vma after a failed clone."""
    root = None
    for anon_vma in list(reversed(anon_vma_chain(src))):
        if may_fail("alloc", "anon_vma_clone: anon_vma_chain_alloc(GFP_NOWAIT)"):
            if root is not None:            # unlock_anon_vma_root(root); root = NULL
                up_write(root.rwsem)
                root = None
            might_sleep("anon_vma_chain_alloc(GFP_KERNEL)")
            if may_fail("enomem", "anon_vma_clone: anon_vma_chain_alloc(GFP_KERNEL)"):
                # enomem_failure: dst->anon_vma is dropped first, or unlink_anon_vmas()
                # would decrement its num_active_vmas, which this clone never incremented.
                sched.point("WRITE vma->anon_vma", writes=(dst.obj,))
                dst.anon_vma = None
                unlink_anon_vmas(dst)
                return -ENOMEM
        if root is not anon_vma.root:       # lock_anon_vma_root()
            if root is not None:
                up_write(root.rwsem)
            root = anon_vma.root
            down_write(root.rwsem)
        anon_vma_chain_link(dst, anon_vma)
        # Reuse an existing anon_vma if it has no VMA and only one anon_vma child; the
        # root anon_vma is never reused (it has a self-parent reference and a child).
        if (dst.anon_vma is None and src.anon_vma is not None
                and anon_vma.num_children < 2 and anon_vma.num_active_vmas == 0):
            sched.point("WRITE vma->anon_vma", writes=(dst.obj,))
            dst.anon_vma = anon_vma
    if dst.anon_vma is not None:
        dst.anon_vma.num_active_vmas += 1
    if root is not None:                    # unlock_anon_vma_root()
        up_write(root.rwsem)
    return 0


def anon_vma_fork(vma, pvma) -> int:
    """Attach the child's new *vma* to the parent's anon_vmas and give it an anon_vma of its
    own, a child of the parent's (fork's dup_mmap).

    Models mm/rmap.c anon_vma_fork(). Returns 0, or -ENOMEM when anon_vma_clone() fails
    (anon_vma_alloc() itself does not fail in the model)."""
    # Don't bother if the parent process has no anon_vma here.
    if pvma.anon_vma is None:
        return 0
    # Drop inherited anon_vma, we'll reuse existing or allocate new.
    vma.anon_vma = None
    # First, attach the new VMA to the parent VMA's anon_vmas, so rmap can find non-COWed
    # pages in child processes.
    error = anon_vma_clone(vma, pvma)
    if error:
        return error
    # An existing anon_vma has been reused, all done then.
    if vma.anon_vma is not None:
        return 0
    # Then add our own anon_vma.
    anon_vma = anon_vma_alloc(vma.vm_mm.machine)
    anon_vma.num_active_vmas += 1
    # The root anon_vma's rwsem is the lock actually used when we lock any of the anon_vmas
    # in this anon_vma tree.
    anon_vma.root = pvma.anon_vma.root
    anon_vma.rwsem = anon_vma.root.rwsem
    anon_vma.parent = pvma.anon_vma
    # With refcounts, an anon_vma can stay around longer than the process it belongs to.
    # The root anon_vma needs to be pinned until this anon_vma is freed.
    get_anon_vma(anon_vma.root)
    # Mark this anon_vma as the one where our new (COWed) pages go.
    sched.point("WRITE vma->anon_vma", writes=(vma.obj,))
    vma.anon_vma = anon_vma
    anon_vma_lock_write(anon_vma)
    anon_vma_chain_link(vma, anon_vma)
    anon_vma.parent.num_children += 1
    anon_vma_unlock_write(anon_vma)
    return 0


def unlink_anon_vmas(vma) -> None:
    """Detach *vma* from all its anon_vmas and free those left without VMAs (remove_vma,
    free_pgtables' callers, and error paths).

    Models mm/rmap.c unlink_anon_vmas()."""
    chain = anon_vma_chain(vma)
    root = None
    empty: list[AnonVma] = []
    # Unlink each anon_vma chained to the VMA. This list is ordered from newest to oldest,
    # ensuring the root anon_vma gets freed last.
    for anon_vma in list(chain):
        if root is not anon_vma.root:       # lock_anon_vma_root()
            if root is not None:
                up_write(root.rwsem)
            root = anon_vma.root
            down_write(root.rwsem)
        lockdep_assert_held_write(anon_vma.root.rwsem, "anon_vma_interval_tree_remove")
        sched.point("anon_vma_interval_tree_remove", writes=(anon_vma.obj, vma.obj))
        anon_vma.vmas.remove(vma)
        # Leave empty anon_vmas on the list: they are freed outside the lock.
        if not anon_vma.vmas:
            anon_vma.parent.num_children -= 1
            empty.append(anon_vma)
            continue
        chain.remove(anon_vma)
    if vma.anon_vma is not None:
        vma.anon_vma.num_active_vmas -= 1
        # The VMA may still be used after the unlink; an anon_vma is prepared again at
        # the next fault.
        sched.point("WRITE vma->anon_vma", writes=(vma.obj,))
        vma.anon_vma = None
    if root is not None:                    # unlock_anon_vma_root()
        up_write(root.rwsem)
    # The list now holds only empty, unlinked anon_vmas: destroy them.
    for anon_vma in empty:
        put_anon_vma(anon_vma)
        chain.remove(anon_vma)


# =============================================================================================
# The file side: mapping->i_mmap and its lock
# =============================================================================================
def i_mmap_lock_write(mapping) -> None:
    """include/linux/fs.h i_mmap_lock_write(): down_write(&mapping->i_mmap_rwsem)."""
    down_write(mapping.i_mmap_rwsem)


def i_mmap_unlock_write(mapping) -> None:
    up_write(mapping.i_mmap_rwsem)


def i_mmap_lock_read(mapping) -> None:
    down_read(mapping.i_mmap_rwsem)


def i_mmap_unlock_read(mapping) -> None:
    up_read(mapping.i_mmap_rwsem)


def _i_mmap_owner(node, root):
    """The AddressSpace whose i_mmap *root* is: callers pass ``mapping.i_mmap`` (as the kernel
    passes ``&mapping->i_mmap``) or the mapping itself."""
    mapping = node.vm_file.f_mapping
    if root is not mapping and root is not mapping.i_mmap:
        raise KernelBug(f"vma_interval_tree: {node} is not a mapping of that i_mmap")
    return mapping


def vma_interval_tree_insert(node, root) -> None:
    """Insert VMA *node* into a file's i_mmap. Caller holds i_mmap_rwsem for write.

    Models mm/interval_tree.c vma_interval_tree_insert() (the tree keyed by vm_pgoff; the
    model keeps the list sorted by vm_pgoff, ties in insertion order)."""
    mapping = _i_mmap_owner(node, root)
    sched.point("vma_interval_tree_insert", writes=(mapping.obj,))
    keys = [v.vm_pgoff for v in mapping.i_mmap]
    mapping.i_mmap.insert(bisect.bisect_right(keys, node.vm_pgoff), node)


def vma_interval_tree_insert_after(node, prev, root) -> None:
    """mm/interval_tree.c vma_interval_tree_insert_after(): insert *node* right after *prev*
    (fork's dup_mmap: the child's VMA next to the parent's, same pgoff)."""
    mapping = _i_mmap_owner(node, root)
    sched.point("vma_interval_tree_insert_after", writes=(mapping.obj,))
    mapping.i_mmap.insert(mapping.i_mmap.index(prev) + 1, node)


def vma_interval_tree_remove(node, root) -> None:
    """mm/interval_tree.c vma_interval_tree_remove(). Caller holds i_mmap_rwsem for write."""
    mapping = _i_mmap_owner(node, root)
    sched.point("vma_interval_tree_remove", writes=(mapping.obj,))
    mapping.i_mmap.remove(node)


def vma_last_pgoff(vma) -> int:
    """mm/interval_tree.c vma_last_pgoff(): the last file page the VMA maps."""
    return vma.vm_pgoff + ((vma.vm_end - vma.vm_start) >> PAGE_SHIFT) - 1


def vma_interval_tree_foreach(mapping, first: int, last: int) -> list:
    """``vma_interval_tree_foreach(vma, &mapping->i_mmap, first, last)``: the VMAs whose pgoff
    range overlaps [first, last], read under i_mmap_rwsem (a snapshot taken at one point)."""
    sched.point("vma_interval_tree_foreach", reads=(mapping.obj,))
    return [v for v in mapping.i_mmap
            if v.vm_pgoff <= last and vma_last_pgoff(v) >= first]


def anon_vma_interval_tree_foreach(anon_vma: AnonVma, first: int, last: int) -> list:
    """``anon_vma_interval_tree_foreach(avc, &anon_vma->rb_root, first, last)``."""
    sched.point("anon_vma_interval_tree_foreach", reads=(anon_vma.obj,))
    return [v for v in anon_vma.vmas
            if v.vm_pgoff <= last and vma_last_pgoff(v) >= first]


# =============================================================================================
# The mapcount
# =============================================================================================
def _mapcount_add(folio: Page, page: Page, diff: int, label: str) -> int:
    """``atomic_add_return(diff, &page->_mapcount)`` for an order-0 folio: one scheduling point
    writing the struct page; returns the new stored value."""
    sched.point(label, writes=(page.obj,))
    page._mapcount += diff
    return page._mapcount


def __folio_rmap_sanity_checks(folio: Page, page: Page, nr_pages: int) -> None:
    """include/linux/rmap.h __folio_rmap_sanity_checks() in the model: the zero page is never
    rmapped, the folio is order 0."""
    if nr_pages != 1 or folio is not page:
        raise KernelBug(f"VM_WARN_ON_FOLIO: order-0 model got nr_pages={nr_pages}")
    if folio.pfn == 0:
        raise KernelBug("VM_WARN_ON_FOLIO: rmap operation on the zero page")


def __folio_set_anon(folio: Page, vma, address: int, exclusive: bool) -> None:
    """mm/rmap.c __folio_set_anon(): ->mapping = the VMA's anon_vma (or its root when the
    page may be shared), ->index = linear_page_index(vma, address)."""
    anon_vma = vma.anon_vma
    if anon_vma is None:
        raise KernelBug("BUG_ON(!anon_vma): __folio_set_anon without anon_vma_prepare")
    # If the folio isn't exclusive to this vma, we must use the _oldest_ possible anon_vma
    # for the folio mapping.
    if not exclusive:
        anon_vma = anon_vma.root
    sched.point("__folio_set_anon", writes=(folio.obj,))
    folio.mapping = anon_vma
    folio.index = linear_page_index(vma, address)


def folio_add_new_anon_rmap(folio: Page, vma, address: int, flags: int = RMAP_EXCLUSIVE
                            ) -> None:
    """Add the first mapping of a new anonymous folio (it becomes PageAnon; mapcount -1 -> 0).

    Models mm/rmap.c folio_add_new_anon_rmap(). *flags* defaults to RMAP_EXCLUSIVE, what the
    fault paths pass. The caller holds the PTL (or the folio is not yet visible)."""
    exclusive = bool(flags & RMAP_EXCLUSIVE)
    if address < vma.vm_start or address >= vma.vm_end:
        raise KernelBug(f"VM_BUG_ON_VMA: address {address:#x} outside {vma}")
    # VM_DROPPABLE is not modelled.
    if not folio.flags & PG_swapbacked:
        sched.point("__folio_set_swapbacked", writes=(folio.obj,))
        folio.flags |= PG_swapbacked
    __folio_set_anon(folio, vma, address, exclusive)
    # !folio_test_large(folio): increment count (starts at -1).
    sched.point("folio_add_new_anon_rmap", writes=(folio.obj,))
    folio._mapcount = 0
    if exclusive:
        folio.flags |= PG_anon_exclusive
    # __lruvec_stat_mod_folio(NR_ANON_MAPPED): statistics are not modelled.


def folio_move_anon_rmap(folio: Page, vma) -> None:
    """Move an exclusive anonymous folio to *vma*'s anon_vma (after a COW reuse, so that rmap
    walks need not search the parent's). Caller holds the folio lock.

    Models mm/rmap.c folio_move_anon_rmap()."""
    _assert_folio_locked(folio, "folio_move_anon_rmap", bug=True)
    if vma.anon_vma is None:
        raise KernelBug(f"VM_BUG_ON_VMA(!anon_vma): {vma}")
    sched.point("folio_move_anon_rmap", writes=(folio.obj,))
    folio.mapping = vma.anon_vma


def __folio_add_rmap(folio: Page, page: Page, nr_pages: int, vma, label: str) -> int:
    """mm/rmap.c __folio_add_rmap(), RMAP_LEVEL_PTE, order 0: increment the mapcount; returns
    the number of pages that became mapped (for the statistics)."""
    __folio_rmap_sanity_checks(folio, page, nr_pages)
    return 1 if _mapcount_add(folio, page, 1, label) == 0 else 0


def folio_add_anon_rmap_ptes(folio: Page, page: Page, nr_pages: int, vma, address: int,
                             flags: int = RMAP_NONE) -> None:
    """Add PTE mappings of an existing anonymous folio (swap-in, remove_migration_pte).

    Models mm/rmap.c folio_add_anon_rmap_ptes() -> __folio_add_anon_rmap(). The caller holds
    the PTL. No KSM: __page_check_anon_rmap's checks are the ones below."""
    if not folio_test_anon(folio):
        raise KernelBug(f"VM_BUG_ON_FOLIO(!folio_test_anon): pfn {folio.pfn}")
    __folio_add_rmap(folio, page, nr_pages, vma, "folio_add_anon_rmap_ptes")
    # __page_check_anon_rmap(): the page's index must be this VMA's for the address.
    if folio.index != linear_page_index(vma, address):
        raise KernelBug(f"VM_BUG_ON_PAGE: pfn {folio.pfn} index {folio.index} mapped at "
                        f"{address:#x} in {vma}")
    if flags & RMAP_EXCLUSIVE:
        SetPageAnonExclusive(page)
    # mlock_vma_folio() for VM_LOCKED VMAs: mlock bookkeeping is not modelled.


def folio_add_anon_rmap_pte(folio: Page, page: Page, vma, address: int,
                            flags: int = RMAP_NONE) -> None:
    folio_add_anon_rmap_ptes(folio, page, 1, vma, address, flags)


def folio_add_file_rmap_ptes(folio: Page, page: Page, nr_pages: int, vma) -> None:
    """Add PTE mappings of a page-cache folio.

    Models mm/rmap.c folio_add_file_rmap_ptes() -> __folio_add_file_rmap(). The caller holds
    the PTL."""
    if folio_test_anon(folio):
        raise KernelBug(f"VM_WARN_ON_FOLIO(folio_test_anon): pfn {folio.pfn}")
    __folio_add_rmap(folio, page, nr_pages, vma, "folio_add_file_rmap_ptes")
    # __folio_mod_stat(NR_FILE_MAPPED) and mlock_vma_folio(): not modelled.


def folio_add_file_rmap_pte(folio: Page, page: Page, vma) -> None:
    folio_add_file_rmap_ptes(folio, page, 1, vma)


def folio_remove_rmap_ptes(folio: Page, page: Page, nr_pages: int, vma) -> None:
    """Remove PTE mappings of a folio: decrement the mapcount.

    Models mm/rmap.c folio_remove_rmap_ptes() -> __folio_remove_rmap(), order 0. An underflow
    (mapcount below 0) is not raised here: the stored value goes below -1, which the
    invariants and the zap path's print_bad_pte report, as the kernel's page checks do. The
    caller holds the PTL, or runs after the TLB flush (the mmu_gather's delayed rmap)."""
    __folio_rmap_sanity_checks(folio, page, nr_pages)
    _mapcount_add(folio, page, -1, "folio_remove_rmap_ptes")
    # __folio_mod_stat(NR_ANON_MAPPED/NR_FILE_MAPPED), deferred split of partially mapped
    # large anon folios, and munlock_vma_folio(): not modelled.


def folio_remove_rmap_pte(folio: Page, page: Page, vma) -> None:
    folio_remove_rmap_ptes(folio, page, 1, vma)


def folio_try_dup_anon_rmap_ptes(folio: Page, page: Page, nr_pages: int, dst_vma,
                                 src_vma) -> int:
    """Duplicate PTE mappings of an anonymous folio for fork (copy_present_ptes).

    Models include/linux/rmap.h folio_try_dup_anon_rmap_ptes() -> __folio_try_dup_anon_rmap().
    No GUP pins in the model, so folio_needs_cow_for_dma() is false and it never fails;
    returns 0 (-EBUSY in the kernel when the folio may be pinned)."""
    if not folio_test_anon(folio):
        raise KernelBug(f"VM_WARN_ON_FOLIO(!folio_test_anon): pfn {folio.pfn}")
    __folio_rmap_sanity_checks(folio, page, nr_pages)
    maybe_pinned = False        # folio_needs_cow_for_dma(): no pins in the model
    if maybe_pinned and PageAnonExclusive(page):
        return -EBUSY
    if PageAnonExclusive(page):
        ClearPageAnonExclusive(page)
    _mapcount_add(folio, page, 1, "folio_try_dup_anon_rmap_ptes")
    return 0


def folio_try_dup_anon_rmap_pte(folio: Page, page: Page, dst_vma, src_vma) -> int:
    return folio_try_dup_anon_rmap_ptes(folio, page, 1, dst_vma, src_vma)


def folio_dup_file_rmap_ptes(folio: Page, page: Page, nr_pages: int, dst_vma) -> None:
    """include/linux/rmap.h folio_dup_file_rmap_ptes(): fork's copy of a file PTE."""
    __folio_rmap_sanity_checks(folio, page, nr_pages)
    _mapcount_add(folio, page, 1, "folio_dup_file_rmap_ptes")


def folio_dup_file_rmap_pte(folio: Page, page: Page, dst_vma) -> None:
    folio_dup_file_rmap_ptes(folio, page, 1, dst_vma)


# =============================================================================================
# The file side of VMA teardown (mm/vma.c unlink_file_vma_batch_*, free_pgtables' 6.18 form;
# unlink_file_vma, hugetlb's one-VMA form, is not modelled: no hugetlb)
# =============================================================================================
def __remove_shared_vm_struct(vma, mapping) -> None:
    """mm/vma.c __remove_shared_vm_struct(): take the VMA out of the file's i_mmap. Caller
    holds i_mmap_rwsem for write. (mapping_unmap_writable's i_mmap_writable count and
    flush_dcache_mmap_lock are not modelled.)"""
    vma_interval_tree_remove(vma, mapping.i_mmap)


class unlink_vma_file_batch:
    """``struct unlink_vma_file_batch`` (mm/vma.h): up to 8 VMAs of one file, unlinked
    under one i_mmap_rwsem hold."""

    def __init__(self) -> None:
        self.count = 0
        self.vmas: list = []


# ARRAY_SIZE(struct unlink_vma_file_batch.vmas) (mm/vma.h)
UNLINK_VMA_FILE_BATCH = 8


def unlink_file_vma_batch_init(vb: unlink_vma_file_batch) -> None:
    vb.count = 0
    vb.vmas = []


def unlink_file_vma_batch_process(vb: unlink_vma_file_batch) -> None:
    """mm/vma.c unlink_file_vma_batch_process()."""
    mapping = vb.vmas[0].vm_file.f_mapping
    i_mmap_lock_write(mapping)
    for vma in vb.vmas[:vb.count]:
        __remove_shared_vm_struct(vma, mapping)
    i_mmap_unlock_write(mapping)
    unlink_file_vma_batch_init(vb)


def unlink_file_vma_batch_add(vb: unlink_vma_file_batch, vma) -> None:
    """mm/vma.c unlink_file_vma_batch_add() (free_pgtables' 6.18 form)."""
    if vma.vm_file is None:
        return
    if (vb.count > 0 and vb.vmas[0].vm_file is not vma.vm_file) or \
            vb.count == UNLINK_VMA_FILE_BATCH:
        unlink_file_vma_batch_process(vb)
    vb.vmas.append(vma)
    vb.count += 1


def unlink_file_vma_batch_final(vb: unlink_vma_file_batch) -> None:
    """mm/vma.c unlink_file_vma_batch_final()."""
    if vb.count > 0:
        unlink_file_vma_batch_process(vb)


# =============================================================================================
# Folio -> mapping helpers
# =============================================================================================
def folio_anon_vma(folio: Page) -> Optional[AnonVma]:
    """mm/util.c folio_anon_vma(): the anon_vma ->mapping points at, or None."""
    sched.point("READ folio->mapping", reads=(folio.obj,))
    mapping = folio.mapping
    if mapping is None or not mapping.is_anon:
        return None
    return mapping


def folio_mapping(folio: Page):
    """mm/util.c folio_mapping(): the page-cache address_space, None for anon folios (no
    swap cache in the model) and for folios that left the page cache."""
    sched.point("READ folio->mapping", reads=(folio.obj,))
    mapping = folio.mapping
    if mapping is None or mapping.is_anon:
        return None
    return mapping


def folio_pgoff(folio: Page) -> int:
    return folio.index


def _assert_folio_locked(folio: Page, what: str, bug: bool) -> None:
    """VM_BUG_ON_FOLIO / VM_WARN_ON_FOLIO(!folio_test_locked(folio)). A debug assertion on
    a lock the caller must hold itself, so it reads the bit without a scheduling point."""
    if folio.flags & PG_locked:
        return
    if bug:
        raise KernelBug(f"VM_BUG_ON_FOLIO(!folio_test_locked): {what} on pfn {folio.pfn}")
    # VM_WARN_ON_FOLIO only warns; the model has no dmesg handle here and carries on.


def vma_address(vma, pgoff: int, nr_pages: int) -> int:
    """mm/internal.h vma_address(): the user address of file/anon page *pgoff* in *vma*, or
    -EFAULT when it lies outside."""
    if pgoff >= vma.vm_pgoff:
        address = vma.vm_start + ((pgoff - vma.vm_pgoff) << PAGE_SHIFT)
        # Check for address beyond vma.
        if address < vma.vm_start or address >= vma.vm_end:
            address = -EFAULT
    elif pgoff + nr_pages - 1 >= vma.vm_pgoff:
        address = vma.vm_start
    else:
        address = -EFAULT
    return address


# =============================================================================================
# page_vma_mapped_walk (mm/page_vma_mapped.c)
# =============================================================================================
class PageVmaMappedWalk:
    """``struct page_vma_mapped_walk`` (renamed: Python has one namespace for the struct and
    the function): where a folio is looked for, and, after a successful
    step, the PTE found and the page-table lock held (``ptl``)."""

    __slots__ = ("pfn", "nr_pages", "pgoff", "vma", "address", "pmd", "pte", "ptl", "flags")

    def __init__(self, pfn: int, nr_pages: int, pgoff: int, vma, address: int, flags: int):
        self.pfn = pfn
        self.nr_pages = nr_pages
        self.pgoff = pgoff
        self.vma = vma
        self.address = address
        self.pmd: Optional[EntryPtr] = None
        self.pte: Optional[EntryPtr] = None
        self.ptl = None
        self.flags = flags


def DEFINE_FOLIO_VMA_WALK(folio: Page, vma, address: int, flags: int) -> PageVmaMappedWalk:
    """include/linux/rmap.h DEFINE_FOLIO_VMA_WALK()."""
    return PageVmaMappedWalk(folio.pfn, 1, folio_pgoff(folio), vma, address, flags)


def page_vma_mapped_walk_done(pvmw: PageVmaMappedWalk) -> None:
    """include/linux/rmap.h page_vma_mapped_walk_done(): drop the PTL if held."""
    if pvmw.pte is not None:
        pte_unmap(pvmw.pte)
        pvmw.pte = None        # (model: a walk is done once; the kernel leaves the field)
    if pvmw.ptl is not None:
        spin_unlock(pvmw.ptl)
        pvmw.ptl = None


def not_found(pvmw: PageVmaMappedWalk) -> bool:
    page_vma_mapped_walk_done(pvmw)
    return False


def vma_address_end(pvmw: PageVmaMappedWalk) -> int:
    """mm/internal.h vma_address_end(): the end of the range the walk may look at; for an
    order-0 folio, the one page at pvmw->address."""
    if pvmw.nr_pages == 1:
        return pvmw.address + PAGE_SIZE
    address = vma_address(pvmw.vma, pvmw.pgoff + pvmw.nr_pages, 1)
    return pvmw.vma.vm_end if address == -EFAULT or address > pvmw.vma.vm_end else address


def map_pte(pvmw: PageVmaMappedWalk, pmdval) -> bool:
    """mm/page_vma_mapped.c map_pte(): map the PTE table and lock it.

    With PVMW_SYNC the lock is always taken (pte_offset_map_lock). Otherwise the entry is
    first read without the lock and the lock is taken only if it might be what the walk looks
    for (a present PTE, or a migration entry under PVMW_MIGRATION); a none PTE returns false
    without ever touching the PTL. Device-private entries are not modelled."""
    mm = pvmw.vma.vm_mm
    if pvmw.flags & PVMW_SYNC:
        # Use the stricter lookup.
        pvmw.pte, pvmw.ptl = pte_offset_map_lock(mm, pvmw.pmd, pvmw.address)
        return pvmw.pte is not None

    is_migration = bool(pvmw.flags & PVMW_MIGRATION)
    while True:  # again:
        # pte_offset_map_rw_nolock(): the table (inside an RCU read-side section), its
        # lock, and the pmd value used.
        pvmw.pte, pmdval, ptl = pte_offset_map_rw_nolock(mm, pvmw.pmd, pvmw.address)
        if pvmw.pte is None:
            return False
        ptent = ptep_get(pvmw.pte)          # ptep_get_lockless()
        if pte_none(ptent):
            return False
        elif pte_present(ptent):
            if is_migration:
                return False
        elif not is_migration:
            # Device-private / device-exclusive entries are not modelled.
            return False
        spin_lock(ptl)
        now = pmdp_get(pvmw.pmd)            # pmdp_get_lockless()
        if now != pmdval:
            pte_unmap_unlock(pvmw.pte, ptl)
            continue
        pvmw.ptl = ptl
        return True


def check_pte(pvmw: PageVmaMappedWalk, pte_nr: int) -> bool:
    """mm/page_vma_mapped.c check_pte(): does the PTE map (or, with PVMW_MIGRATION, hold a
    migration entry for) a pfn of [pvmw->pfn, pvmw->pfn + nr_pages)?"""
    ptent = ptep_get(pvmw.pte)
    if pvmw.flags & PVMW_MIGRATION:
        if not is_migration_entry(ptent):
            return False
        pfn = ptent.pfn
    elif pte_present(ptent):
        pfn = pte_pfn(ptent)
    else:
        # Device-private / device-exclusive entries are not modelled.
        return False
    if pfn + pte_nr - 1 < pvmw.pfn:
        return False
    if pfn > pvmw.pfn + pvmw.nr_pages - 1:
        return False
    return True


def page_vma_mapped_walk(pvmw: PageVmaMappedWalk) -> bool:
    """Find the next PTE in pvmw->vma that maps the folio; on success the PTL is held.

    Models mm/page_vma_mapped.c page_vma_mapped_walk(). No THP and no hugetlb: the pmd is
    never huge, and an order-0 folio has one PTE to look at, so after one hit the next call
    returns false (and drops the PTL)."""
    vma = pvmw.vma
    mm = vma.vm_mm
    # "The only possible pmd mapping has been handled on last iteration": no THP.
    # is_vm_hugetlb_page(): no hugetlb.
    end = vma_address_end(pvmw)
    if pvmw.pte is not None:
        return _next_pte(pvmw, end)
    while pvmw.address < end:  # restart:
        pvmw.pmd = walk_to_pmd(mm, pvmw.address, alloc=False)
        if pvmw.pmd is None:
            # pgd/p4d/pud not present: step_forward past it, which is past the folio.
            return False
        pmde = pmdp_get(pvmw.pmd)           # pmdp_get_lockless()
        # pmd_trans_huge() / pmd migration entries: no THP.
        if pmd_none(pmde):
            # !pmd_present: step_forward(pvmw, PMD_SIZE).
            pvmw.address = (pvmw.address + PMD_SIZE) & ~(PMD_SIZE - 1)
            continue
        if not map_pte(pvmw, pmde):
            if pvmw.pte is None:
                continue                    # goto restart
            return _next_pte(pvmw, end)
        # this_pte:
        if check_pte(pvmw, 1):
            return True
        return _next_pte(pvmw, end)
    return False


def _next_pte(pvmw: PageVmaMappedWalk, end: int) -> bool:
    """The ``next_pte:`` loop of page_vma_mapped_walk(): step to the folio's next page. An
    order-0 folio has none, so the walk ends (dropping the PTL)."""
    pvmw.address += PAGE_SIZE
    if pvmw.address >= end:
        return not_found(pvmw)
    raise KernelBug("page_vma_mapped_walk: large folios are not modelled")


# =============================================================================================
# rmap_walk (mm/rmap.c)
# =============================================================================================
class rmap_walk_control:
    """``struct rmap_walk_control``: the callbacks of an rmap walk. ``rmap_one(folio, vma,
    address, arg)`` returns False to stop; ``done(folio)`` True to stop; ``anon_lock`` takes
    the anon_vma lock; ``invalid_vma(vma, arg)`` True to skip a VMA."""

    def __init__(self, rmap_one: Callable, arg: Any = None, done: Optional[Callable] = None,
                 anon_lock: Optional[Callable] = None, invalid_vma: Optional[Callable] = None,
                 try_lock: bool = False):
        self.rmap_one = rmap_one
        self.arg = arg
        self.done = done
        self.anon_lock = anon_lock
        self.invalid_vma = invalid_vma
        self.try_lock = try_lock
        self.contended = False


def _anon_vma_ref_inc_not_zero(anon_vma: AnonVma) -> bool:
    """atomic_inc_not_zero(&anon_vma->refcount)."""
    sched.point("atomic_inc_not_zero(anon_vma->refcount)",
                writes=(("anon_vma_ref", anon_vma.id),))
    if anon_vma.refcount == 0:
        return False
    anon_vma.refcount += 1
    return True


def folio_get_anon_vma(folio: Page) -> Optional[AnonVma]:
    """Take a reference on the anon_vma of a mapped anonymous folio (migration, so that the
    anon_vma outlives the unmap). Models mm/rmap.c folio_get_anon_vma()."""
    anon_vma = folio_anon_vma(folio)
    if anon_vma is None:
        return None
    if not folio_mapped(folio):
        return None
    if not _anon_vma_ref_inc_not_zero(anon_vma):
        return None
    # If this folio is still mapped, then its anon_vma cannot have been freed.
    if not folio_mapped(folio):
        put_anon_vma(anon_vma)
        return None
    return anon_vma


def folio_lock_anon_vma_read(folio: Page, rwc: Optional[rmap_walk_control]
                             ) -> Optional[AnonVma]:
    """Find and read-lock the anon_vma of a mapped folio, or None if it is not mapped.

    Models mm/rmap.c folio_lock_anon_vma_read(): a trylock first; if that fails, pin the
    anon_vma with a reference and sleep on the lock."""
    anon_vma = folio_anon_vma(folio)
    if anon_vma is None:
        return None
    if not folio_mapped(folio):
        return None
    root_anon_vma = anon_vma.root
    if down_read_trylock(root_anon_vma.rwsem):
        # If the folio is still mapped, this anon_vma is still its anon_vma.
        if not folio_mapped(folio):
            up_read(root_anon_vma.rwsem)
            anon_vma = None
        return anon_vma
    if rwc is not None and rwc.try_lock:
        rwc.contended = True
        return None
    # trylock failed, we got to sleep
    if not _anon_vma_ref_inc_not_zero(anon_vma):
        return None
    if not folio_mapped(folio):
        put_anon_vma(anon_vma)
        return None
    # we pinned the anon_vma, it's safe to sleep
    anon_vma_lock_read(anon_vma)
    sched.point("atomic_dec_and_test(anon_vma->refcount)",
                writes=(("anon_vma_ref", anon_vma.id),))
    anon_vma.refcount -= 1
    if anon_vma.refcount == 0:
        # We held the last reference: release the lock and bail.
        anon_vma_unlock_read(anon_vma)
        __put_anon_vma(anon_vma)
        anon_vma = None
    return anon_vma


def rmap_walk_anon_lock(folio: Page, rwc: rmap_walk_control) -> Optional[AnonVma]:
    """mm/rmap.c rmap_walk_anon_lock()."""
    if rwc.anon_lock is not None:
        return rwc.anon_lock(folio, rwc)
    # remove_migration_ptes() cannot use folio_lock_anon_vma_read(), which depends on
    # folio_mapped(); its callers hold a reference on the anon_vma instead.
    anon_vma = folio_anon_vma(folio)
    if anon_vma is None:
        return None
    if down_read_trylock(anon_vma.root.rwsem):     # anon_vma_trylock_read()
        return anon_vma
    if rwc.try_lock:
        rwc.contended = True
        return None
    anon_vma_lock_read(anon_vma)
    return anon_vma


def rmap_walk_anon(folio: Page, rwc: rmap_walk_control) -> None:
    """Call rwc->rmap_one for each VMA of the folio's anon_vma that may map it.

    Models mm/rmap.c rmap_walk_anon() with locked false: its callers with the anon_vma
    already locked (rmap_walk_locked: THP splitting and hugetlb migration) are not modelled."""
    anon_vma = rmap_walk_anon_lock(folio, rwc)
    if anon_vma is None:
        return
    pgoff_start = folio_pgoff(folio)
    pgoff_end = pgoff_start                 # + folio_nr_pages(folio) - 1, order 0
    for vma in anon_vma_interval_tree_foreach(anon_vma, pgoff_start, pgoff_end):
        address = vma_address(vma, pgoff_start, 1)
        if address == -EFAULT:
            raise KernelBug(f"VM_BUG_ON_VMA(address == -EFAULT): {vma}")
        if rwc.invalid_vma is not None and rwc.invalid_vma(vma, rwc.arg):
            continue
        if not rwc.rmap_one(folio, vma, address, rwc.arg):
            break
        if rwc.done is not None and rwc.done(folio):
            break
    anon_vma_unlock_read(anon_vma)


def __rmap_walk_file(folio: Optional[Page], mapping, pgoff_start: int, nr_pages: int,
                     rwc: rmap_walk_control) -> None:
    """Call rwc->rmap_one for each VMA of *mapping* that maps file page *pgoff_start*.

    Models mm/rmap.c __rmap_walk_file() with locked false (rmap_walk_locked's callers are
    not modelled): i_mmap_rwsem is taken for read (a trylock first)."""
    pgoff_end = pgoff_start + nr_pages - 1
    if not down_read_trylock(mapping.i_mmap_rwsem):         # i_mmap_trylock_read()
        if rwc.try_lock:
            rwc.contended = True
            return
        i_mmap_lock_read(mapping)
    for vma in vma_interval_tree_foreach(mapping, pgoff_start, pgoff_end):
        address = vma_address(vma, pgoff_start, nr_pages)
        if address == -EFAULT:
            raise KernelBug(f"VM_BUG_ON_VMA(address == -EFAULT): {vma}")
        if rwc.invalid_vma is not None and rwc.invalid_vma(vma, rwc.arg):
            continue
        if not rwc.rmap_one(folio, vma, address, rwc.arg):
            break
        if rwc.done is not None and rwc.done(folio):
            break
    i_mmap_unlock_read(mapping)


def rmap_walk_file(folio: Page, rwc: rmap_walk_control) -> None:
    """mm/rmap.c rmap_walk_file() with locked false: the folio lock keeps ->mapping from being
    truncated."""
    _assert_folio_locked(folio, "rmap_walk_file", bug=True)
    sched.point("READ folio->mapping", reads=(folio.obj,))
    mapping = folio.mapping
    if mapping is None:
        return
    __rmap_walk_file(folio, mapping, folio.index, 1, rwc)


def rmap_walk(folio: Page, rwc: rmap_walk_control) -> None:
    """mm/rmap.c rmap_walk(). No KSM."""
    if folio_test_anon(folio):
        _assert_folio_locked(folio, "rmap_walk_anon", bug=False)
        rmap_walk_anon(folio, rwc)
    else:
        rmap_walk_file(folio, rwc)


# =============================================================================================
# ptep_clear_flush (mm/pgtable-generic.c)
# =============================================================================================


def flush_cache_page(vma, address: int, pfn: int) -> None:
    """Nothing to do on x86 and arm64 (PIPT/VIPT non-aliasing caches)."""


# =============================================================================================
# folio_mkclean (mm/rmap.c)
# =============================================================================================
def page_vma_mkclean_one(pvmw: PageVmaMappedWalk) -> int:
    """Write-protect and clean the PTE(s) of the walk that are dirty or writable, flushing
    each from the TLBs before it is made clean. Models mm/rmap.c page_vma_mkclean_one(); mmu
    notifiers are not modelled."""
    cleaned = 0
    vma = pvmw.vma
    while page_vma_mapped_walk(pvmw):
        ret = 0
        address = pvmw.address
        if pvmw.pte is not None:
            pte = pvmw.pte
            entry = ptep_get(pte)
            # PFN swap PTEs (device-exclusive) are clean and not writable from the CPU.
            if not pte_present(entry):
                continue
            if not pte_dirty(entry) and not pte_write(entry):
                continue
            flush_cache_page(vma, address, pte_pfn(entry))
            entry = ptep_clear_flush(vma, address, pte)
            entry = pte_wrprotect(entry)
            entry = pte_mkclean(entry)
            set_pte_at(vma.vm_mm, address, pte, entry)
            ret = 1
        # else: a PMD-mapped folio (THP), not modelled.
        if ret:
            cleaned += 1
    return cleaned


def page_mkclean_one(folio: Page, vma, address: int, arg) -> bool:
    """mm/rmap.c page_mkclean_one(): a PVMW_SYNC walk (always under the PTL)."""
    pvmw = DEFINE_FOLIO_VMA_WALK(folio, vma, address, PVMW_SYNC)
    arg[0] += page_vma_mkclean_one(pvmw)
    return True


def invalid_mkclean_vma(vma, arg) -> bool:
    """mm/rmap.c invalid_mkclean_vma(): only shared mappings are cleaned. (VM_SHARED never
    changes during a VMA's life, so the plain read needs no scheduling point.)"""
    if vma.vm_flags & VM_SHARED:
        return False
    return True


def folio_mkclean(folio: Page) -> int:
    """Clean and write-protect every shared PTE mapping a page-cache folio; returns how many
    PTEs were dirty or writable. The caller holds the folio lock.

    Models mm/rmap.c folio_mkclean(). Its first test is the one bugs 3 and 4 hinge on: a folio
    whose rmap was already removed (!folio_mapped) returns 0 at once, without taking any
    page-table lock, even if a TLB still holds a writable, dirty translation for it."""
    cleaned = [0]
    rwc = rmap_walk_control(rmap_one=page_mkclean_one, arg=cleaned,
                            invalid_vma=invalid_mkclean_vma)
    _assert_folio_locked(folio, "folio_mkclean", bug=True)
    if not folio_mapped(folio):
        return 0
    mapping = folio_mapping(folio)
    if mapping is None:
        return 0
    rmap_walk(folio, rwc)
    return cleaned[0]


# =============================================================================================
# Batched TLB flushing of unmaps (mm/rmap.c, CONFIG_ARCH_WANT_BATCHED_UNMAP_TLB_FLUSH)
# =============================================================================================
TLB_FLUSH_BATCH_FLUSHED_SHIFT = 16
TLB_FLUSH_BATCH_PENDING_MASK = (1 << (TLB_FLUSH_BATCH_FLUSHED_SHIFT - 1)) - 1
TLB_FLUSH_BATCH_PENDING_LARGE = TLB_FLUSH_BATCH_PENDING_MASK // 2


class tlbflush_unmap_batch:
    """``current->tlb_ubc``: the TLB flush a thread owes for PTEs it cleared without flushing.
    ``arch`` holds (mm, start, end) ranges (x86 keeps a cpumask and flushes everything on it;
    the model flushes each recorded mm)."""

    def __init__(self) -> None:
        self.arch: list = []
        self.flush_required = False
        self.writable = False


def current_tlb_ubc() -> tlbflush_unmap_batch:
    """``&current->tlb_ubc`` (thread-local: no scheduling point)."""
    ctx = sched.current()
    ubc = ctx.__dict__.get("tlb_ubc")
    if ubc is None:
        ubc = tlbflush_unmap_batch()
        ctx.__dict__["tlb_ubc"] = ubc
    return ubc


def _tlb_flush_batched_obj(mm) -> tuple:
    return ("tlb_flush_batched", mm.id)


def _read_tlb_flush_batched(mm) -> int:
    sched.point("atomic_read(mm->tlb_flush_batched)", reads=(_tlb_flush_batched_obj(mm),))
    return mm.tlb_flush_batched


def arch_tlbbatch_should_defer(mm) -> bool:
    """arch/x86 arch_tlbbatch_should_defer(): defer if a CPU other than this one may cache the
    mm's translations (arm64: always)."""
    if mm.machine.arch == "arm64":
        return True
    sched.point("cpumask_any_but(mm_cpumask)", reads=(("cpumask", mm.id),))
    this_cpu = sched.current().cpu
    return any(c != this_cpu for c in mm.cpumask)


def should_defer_flush(mm, flags: int) -> bool:
    """mm/rmap.c should_defer_flush(): always false without
    CONFIG_ARCH_WANT_BATCHED_UNMAP_TLB_FLUSH (x86 and arm64 select it; powerpc does not)."""
    if mm.machine.arch == "ppc64":
        return False
    if not flags & TTU_BATCH_FLUSH:
        return False
    return arch_tlbbatch_should_defer(mm)


def arch_tlbbatch_add_pending(arch: list, mm, start: int, end: int) -> None:
    """arch_tlbbatch_add_pending(): remember what to flush (x86: the CPUs of mm_cpumask)."""
    arch.append((mm, start, end))


def set_tlb_ubc_flush_pending(mm, pteval, start: int, end: int) -> None:
    """mm/rmap.c set_tlb_ubc_flush_pending(): record the owed flush and bump the mm's pending
    generation, so that a parallel munmap/mprotect flushes first (flush_tlb_batched_pending)."""
    tlb_ubc = current_tlb_ubc()
    writable = pte_dirty(pteval)
    if not pte_accessible(mm, pteval):
        return
    arch_tlbbatch_add_pending(tlb_ubc.arch, mm, start, end)
    tlb_ubc.flush_required = True
    sched.point("atomic_inc(mm->tlb_flush_batched)", writes=(_tlb_flush_batched_obj(mm),))
    batch = mm.tlb_flush_batched
    if (batch & TLB_FLUSH_BATCH_PENDING_MASK) > TLB_FLUSH_BATCH_PENDING_LARGE:
        # Keep pending from catching up with flushed by overflow: reset to 1 and 0.
        mm.tlb_flush_batched = 1
    else:
        mm.tlb_flush_batched = batch + 1
    # If the PTE was dirty then it's best to assume it's writable.
    if writable:
        tlb_ubc.writable = True


def arch_tlbbatch_flush(machine, arch: list) -> None:
    """arch_tlbbatch_flush(): x86 flushes the whole TLB of every CPU in the batch's cpumask
    (modelled as a full flush of each batched mm); arm64 completes the per-range TLBIs."""
    from .cpu import flush_tlb_mm, flush_tlb_range
    seen = []
    for mm, start, end in arch:
        if machine.arch == "arm64":
            flush_tlb_range(machine, mm, start, end)
        elif mm not in seen:
            seen.append(mm)
            flush_tlb_mm(machine, mm)
    arch.clear()


def try_to_unmap_flush() -> None:
    """mm/rmap.c try_to_unmap_flush(): do the flush this thread owes."""
    tlb_ubc = current_tlb_ubc()
    if not tlb_ubc.flush_required:
        return
    machine = tlb_ubc.arch[0][0].machine
    arch_tlbbatch_flush(machine, tlb_ubc.arch)
    tlb_ubc.flush_required = False
    tlb_ubc.writable = False


def try_to_unmap_flush_dirty() -> None:
    """mm/rmap.c try_to_unmap_flush_dirty(): flush iff a batched PTE was dirty."""
    if current_tlb_ubc().writable:
        try_to_unmap_flush()


def flush_tlb_batched_pending(mm) -> None:
    """Flush the mm if a reclaim/migration thread cleared PTEs of it and has not flushed yet.

    Models mm/rmap.c flush_tlb_batched_pending() (6.18): called under the PTL by
    zap_pte_range, change_pte_range, madvise_free_pte_range and
    madvise_cold_or_pageout_pte_range (and mremap's move_ptes, not modelled) before they act
    on PTEs another thread may have cleared."""
    batch = _read_tlb_flush_batched(mm)
    pending = batch & TLB_FLUSH_BATCH_PENDING_MASK
    flushed = batch >> TLB_FLUSH_BATCH_FLUSHED_SHIFT
    if pending != flushed:
        from .cpu import flush_tlb_mm
        flush_tlb_mm(mm.machine, mm)
        # If a new flush became pending during this one, leave the value as it is.
        sched.point("atomic_cmpxchg(mm->tlb_flush_batched)",
                    writes=(_tlb_flush_batched_obj(mm),))
        if mm.tlb_flush_batched == batch:
            mm.tlb_flush_batched = pending | (pending << TLB_FLUSH_BATCH_FLUSHED_SHIFT)


# =============================================================================================
# try_to_migrate (mm/rmap.c)
# =============================================================================================
def folio_try_share_anon_rmap_pte(folio: Page, page: Page) -> int:
    """include/linux/rmap.h folio_try_share_anon_rmap_pte(): mark an exclusive anon page
    possibly shared before its PTE is replaced (the PTE is already cleared). No GUP pins in
    the model, so it never fails."""
    if not folio_test_anon(folio):
        raise KernelBug(f"VM_WARN_ON_FOLIO(!folio_test_anon): pfn {folio.pfn}")
    # folio_maybe_dma_pinned(): never in the model.
    ClearPageAnonExclusive(page)
    return 0


def make_migration_entry_young(entry):
    """include/linux/swapops.h make_migration_entry_young(): x86 keeps A/D in the entry."""
    return pte_t(MIGRATION, pfn=entry.pfn, write=entry.write, dirty=entry.dirty, young=True)


def make_migration_entry_dirty(entry):
    return pte_t(MIGRATION, pfn=entry.pfn, write=entry.write, dirty=True, young=entry.young)


def is_migration_entry_young(entry) -> bool:
    return entry.young


def is_migration_entry_dirty(entry) -> bool:
    return entry.dirty


def is_readable_migration_entry(entry) -> bool:
    """The model has writable and readable migration entries only (no readable-exclusive
    form), so a read-only exclusive anon page is restored as possibly shared."""
    return is_migration_entry(entry) and not entry.write


def try_to_migrate_one(folio: Page, vma, address: int, arg) -> bool:
    """Replace the PTE mapping *folio* in *vma* by a migration entry.

    Models mm/rmap.c try_to_migrate_one(), order 0: the PTE is cleared and flushed
    (ptep_clear_flush, or cleared with the flush deferred to try_to_unmap_flush() under
    TTU_BATCH_FLUSH), its dirty bit goes to the folio, a migration entry (writable if the PTE
    was, with the young/dirty bits) takes its place, the rmap is removed and the mapping's
    reference dropped. rss is not changed: the entry still counts. No hugetlb, THP, hwpoison,
    device-private pages or mlock draining; mmu notifiers are not modelled."""
    mm = vma.vm_mm
    pvmw = DEFINE_FOLIO_VMA_WALK(folio, vma, address, 0)
    flags = arg
    ret = True
    # When racing with zap_pte_range between its clear and its rmap removal, TTU_SYNC makes
    # the walk wait on the PTL instead of skipping the PTE.
    if flags & TTU_SYNC:
        pvmw.flags = PVMW_SYNC
    while page_vma_mapped_walk(pvmw):
        # PMD-mapped THP migration entries: no THP.
        pteval = ptep_get(pvmw.pte)
        if pte_present(pteval):
            pfn = pte_pfn(pteval)
        else:
            # Device-exclusive PFN swap PTEs: not modelled (check_pte never matches them).
            raise KernelBug("try_to_migrate_one: non-present PTE matched")
        subpage = folio
        address = pvmw.address
        anon_exclusive = folio_test_anon(folio) and PageAnonExclusive(subpage)
        # folio_test_hugetlb(): no hugetlb.
        flush_cache_page(vma, address, pfn)
        # Nuke the page table entry.
        if should_defer_flush(mm, flags):
            # The PTE is cleared but not flushed: a remote CPU may still write to the folio
            # through its TLB until try_to_unmap_flush().
            pteval = ptep_get_and_clear(mm, address, pvmw.pte)
            set_tlb_ubc_flush_pending(mm, pteval, address, address + PAGE_SIZE)
        else:
            pteval = ptep_clear_flush(vma, address, pvmw.pte)
        if pte_dirty(pteval):
            folio_set_dirty(folio)              # folio_mark_dirty()
        writable = pte_write(pteval)
        # update_hiwater_rss(): not modelled. PageHWPoison / pte_unused: not modelled.
        # arch_unmap_one(): nothing on x86/arm64.
        # See folio_try_share_anon_rmap_pte(): clear PTE first.
        if anon_exclusive and folio_try_share_anon_rmap_pte(folio, subpage):
            set_pte_at(mm, address, pvmw.pte, pteval)
            ret = False
            page_vma_mapped_walk_done(pvmw)
            break
        # Store the pfn in a migration entry; do_swap_page() waits until it is removed.
        entry = make_migration_entry(subpage.pfn, writable)
        if pte_young(pteval):
            entry = make_migration_entry_young(entry)
        if pte_dirty(pteval):
            entry = make_migration_entry_dirty(entry)
        set_pte_at(mm, address, pvmw.pte, entry)
        # No need to invalidate here: it synchronizes on the migration entry.
        folio_remove_rmap_pte(folio, subpage, vma)
        # VM_LOCKED: mlock_drain_local(), not modelled.
        folio_put(folio)
    return ret


def folio_not_mapped(folio: Page) -> bool:
    """mm/rmap.c folio_not_mapped(): the rmap walk's done() for unmapping."""
    return not folio_mapped(folio)


def invalid_migration_vma(vma, arg) -> bool:
    """mm/rmap.c invalid_migration_vma(): skip exec's temporary stack VMA. The model's exec
    does not set one up for migration to see, so nothing is skipped."""
    return False


def try_to_migrate(folio: Page, flags: int) -> None:
    """Replace every PTE mapping *folio* by a migration entry. Caller holds the folio lock.

    Models mm/rmap.c try_to_migrate()."""
    rwc = rmap_walk_control(rmap_one=try_to_migrate_one, arg=flags, done=folio_not_mapped,
                            anon_lock=folio_lock_anon_vma_read)
    # Migration ignores mlock and supports only TTU_RMAP_LOCKED, TTU_SPLIT_HUGE_PMD,
    # TTU_SYNC and TTU_BATCH_FLUSH.
    if flags & ~(TTU_RMAP_LOCKED | TTU_SPLIT_HUGE_PMD | TTU_SYNC | TTU_BATCH_FLUSH):
        WARN(None, "WARN_ON_ONCE(flags & ~(TTU_RMAP_LOCKED | TTU_SPLIT_HUGE_PMD | TTU_SYNC | "
                   "TTU_BATCH_FLUSH)) in try_to_migrate")
        return
    # Zone-device folios: not modelled. KSM: none.
    if folio_test_anon(folio):
        rwc.invalid_vma = invalid_migration_vma
    # (TTU_RMAP_LOCKED: rmap_walk_locked; only hugetlb migration passes it, not modelled)
    rmap_walk(folio, rwc)


def try_to_unmap_one(folio: Page, vma, address: int, arg) -> bool:
    """Unmap *folio* from *vma* for reclaim: an anonymous page's PTE becomes a swap entry
    for its swap cache slot (a reference to the slot: swap_duplicate; exclusive if the page
    was), a lazily freeable (MADV_FREE) clean page is discarded, a page-cache page's PTE is
    cleared; the PTE's dirty bit goes to the folio, the flush is deferred under
    TTU_BATCH_FLUSH (set_tlb_ubc_flush_pending), the rmap and the mapping's reference go.
    Returns False when the folio must stay mapped (an mlocked VMA, a re-dirtied or re-used
    lazyfree page, a page that may be DMA-pinned).

    Models mm/rmap.c try_to_unmap_one() of 6.18, order 0: no hugetlb, THP, hwpoison,
    device-private pages, uffd-wp or soft-dirty bits; mmu notifiers and the swapoff mmlist
    are not modelled."""
    from .mlock import mlock_folio
    from .mm_types import add_mm_counter, dec_mm_counter, inc_mm_counter, mm_counter_file
    from .pte import pte_swp_mkexclusive, swp_entry_to_pte
    from .swapfile import swap_duplicate, swap_free
    from .zap import update_hiwater_rss
    mm = vma.vm_mm
    pvmw = DEFINE_FOLIO_VMA_WALK(folio, vma, address, 0)
    flags = arg
    ret = True
    if flags & TTU_SYNC:
        pvmw.flags = PVMW_SYNC
    while page_vma_mapped_walk(pvmw):
        # If the folio is in an mlock()d vma, we must not swap it out.
        if not flags & TTU_IGNORE_MLOCK and vm_flags_read(vma) & VM_LOCKED:
            ret = False
            # Restore the mlock which got missed (mlock_vma_folio).
            mlock_folio(folio)
            page_vma_mapped_walk_done(pvmw)
            break
        pteval = ptep_get(pvmw.pte)
        if not pte_present(pteval):
            raise KernelBug("try_to_unmap_one: non-present PTE matched")
        pfn = pte_pfn(pteval)
        subpage = folio
        address = pvmw.address
        anon_exclusive = folio_test_anon(folio) and PageAnonExclusive(subpage)
        flush_cache_page(vma, address, pfn)
        # Nuke the page table entry.
        if should_defer_flush(mm, flags):
            pteval = ptep_get_and_clear(mm, address, pvmw.pte)
            set_tlb_ubc_flush_pending(mm, pteval, address, address + PAGE_SIZE)
        else:
            pteval = ptep_clear_flush(vma, address, pvmw.pte)
        # Set the dirty flag on the folio now the PTE is gone.
        if pte_dirty(pteval):
            folio_set_dirty(folio)              # folio_mark_dirty()
        update_hiwater_rss(mm)
        if folio_test_anon(folio):
            entry = folio.swap_slot             # page_swap_entry(subpage)
            if bool(folio.flags & PG_swapbacked) != bool(folio.flags & PG_swapcache):
                WARN(mm.machine, "WARN_ON_ONCE(folio_test_swapbacked(folio) != "
                                 "folio_test_swapcache(folio))")
                set_pte_at(mm, address, pvmw.pte, pteval)
                ret = False
                page_vma_mapped_walk_done(pvmw)
                break
            if not folio.flags & PG_swapbacked:
                # MADV_FREE page: discard it unless it was re-dirtied or is used elsewhere.
                sched.point("folio_ref_count/folio_mapcount (smp_mb)", reads=(folio.obj,))
                ref_count = folio._refcount
                map_count = folio._mapcount + 1
                if folio.flags & PG_dirty:
                    # Redirtied: remap it and move it back to the swap-backed LRU.
                    set_pte_at(mm, address, pvmw.pte, pteval)
                    folio_set_flag(folio, PG_swapbacked)
                    ret = False
                    page_vma_mapped_walk_done(pvmw)
                    break
                if ref_count != 1 + map_count:
                    # A GUP or speculative reference: someone may still use the page.
                    set_pte_at(mm, address, pvmw.pte, pteval)
                    ret = False
                    page_vma_mapped_walk_done(pvmw)
                    break
                add_mm_counter(mm, MM_ANONPAGES, -1)
            else:
                if swap_duplicate(mm.machine, entry) < 0:
                    set_pte_at(mm, address, pvmw.pte, pteval)
                    ret = False
                    page_vma_mapped_walk_done(pvmw)
                    break
                # (arch_unmap_one: nothing on x86 / arm64)
                # See folio_try_share_anon_rmap_pte(): clear the PTE first.
                if anon_exclusive and folio_try_share_anon_rmap_pte(folio, subpage):
                    swap_free(mm.machine, entry)
                    set_pte_at(mm, address, pvmw.pte, pteval)
                    ret = False
                    page_vma_mapped_walk_done(pvmw)
                    break
                # (list_add(&mm->mmlist, &init_mm.mmlist): no swapoff in the model)
                dec_mm_counter(mm, MM_ANONPAGES)
                inc_mm_counter(mm, MM_SWAPENTS)
                swp_pte = swp_entry_to_pte(entry)
                if anon_exclusive:
                    swp_pte = pte_swp_mkexclusive(swp_pte)
                set_pte_at(mm, address, pvmw.pte, swp_pte)
        else:
            # A page-cache page: the PTE stays none, the next access faults it back in.
            dec_mm_counter(mm, mm_counter_file(folio))
        # discard:
        folio_remove_rmap_pte(folio, subpage, vma)
        # (VM_LOCKED: mlock_drain_local)
        folio_put(folio)
    return ret


def try_to_unmap(folio: Page, flags: int) -> None:
    """Try to remove every PTE mapping of *folio* (reclaim). Caller holds the folio lock;
    folio_mapped() tells it whether the walk got them all.

    Models mm/rmap.c try_to_unmap(); its TTU_RMAP_LOCKED branch (rmap_walk_locked) is left
    out: only THP splitting passes that flag, and the model has no THP."""
    rwc = rmap_walk_control(rmap_one=try_to_unmap_one, arg=flags, done=folio_not_mapped,
                            anon_lock=folio_lock_anon_vma_read)
    rmap_walk(folio, rwc)


# =============================================================================================
# remove_migration_ptes (mm/migrate.c; here beside try_to_migrate, which it undoes)
# =============================================================================================
class rmap_walk_arg:
    """``struct rmap_walk_arg`` (mm/migrate.c): the folio whose migration entries to find."""

    def __init__(self, folio: Page, map_unused_to_zeropage: bool = False):
        self.folio = folio
        self.map_unused_to_zeropage = map_unused_to_zeropage


def vma_page_prot_writable(vma) -> bool:
    """Whether vma->vm_page_prot grants write: a shared writable mapping that needs no write
    notification (mm/mmap.c vma_wants_writenotify(): a file whose mapping accounts dirty
    pages must fault on the first write). The model has no vm_page_prot field."""
    if (vm_flags_read(vma) & (VM_WRITE | VM_SHARED)) != (VM_WRITE | VM_SHARED):
        return False
    file = vma.vm_file
    if file is None:
        return True
    return bool(getattr(file, "shmem", True))   # shmem: no dirty accounting, no writenotify


def vm_page_prot_none(vma) -> bool:
    """Whether vma->vm_page_prot is x86's PAGE_NONE (a PROT_NONE VMA): a PTE made from it is
    protnone. (fault.vm_page_prot_none, read through vm_flags_read here.)"""
    return not vm_flags_read(vma) & (VM_READ | VM_WRITE | VM_EXEC)


def remove_migration_pte(folio: Page, vma, addr: int, arg: rmap_walk_arg) -> bool:
    """Restore the migration entry of arg.folio in *vma* (if still there) as a PTE mapping
    *folio*, the migration's destination.

    Models mm/migrate.c remove_migration_pte(). If the entry is gone (zapped while the folio
    was migrating) the PVMW_MIGRATION walk finds nothing and nothing is restored. No THP,
    hugetlb, device-private pages, soft-dirty or uffd bits; map_unused_to_zeropage is only
    used for split THPs and is not modelled."""
    pvmw = DEFINE_FOLIO_VMA_WALK(arg.folio, vma, addr, PVMW_SYNC | PVMW_MIGRATION)
    while page_vma_mapped_walk(pvmw):
        rmap_flags = RMAP_NONE
        old_pte = ptep_get(pvmw.pte)
        entry = old_pte
        folio_get(folio)
        new = folio
        pte = pfn_pte(new.pfn, write=vma_page_prot_writable(vma), dirty=False, young=True,
                      protnone=vm_page_prot_none(vma))      # folio_mk_pte(, vm_page_prot)
        if not is_migration_entry_young(entry):
            pte = pte_mkold(pte)
        if folio_test_dirty(folio) and is_migration_entry_dirty(entry):
            pte = pte_mkdirty(pte)
        if is_writable_migration_entry(entry):
            pte = pte_mkwrite(pte)
        if folio_test_anon(folio) and not is_readable_migration_entry(entry):
            rmap_flags |= RMAP_EXCLUSIVE
        if folio_test_anon(folio):
            folio_add_anon_rmap_pte(folio, new, vma, pvmw.address, rmap_flags)
        else:
            folio_add_file_rmap_pte(folio, new, vma)
        set_pte_at(vma.vm_mm, pvmw.address, pvmw.pte, pte)
        # VM_LOCKED mlock_drain_local(), update_mmu_cache(): nothing to model.
    return True


def remove_migration_ptes(src: Page, dst: Page, flags: int) -> None:
    """Replace every migration entry for *src* by a PTE mapping *dst* (dst == src when a
    migration is undone).

    Models mm/migrate.c remove_migration_ptes(): an rmap walk over *dst* (which already has
    src's mapping and index). Its RMP_LOCKED branch (rmap_walk_locked) is left out: only THP
    splitting and hugetlb migration pass it, neither modelled."""
    arg = rmap_walk_arg(src)
    rwc = rmap_walk_control(rmap_one=remove_migration_pte, arg=arg)
    rmap_walk(dst, rwc)
