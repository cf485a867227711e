"""The reverse map: anon_vma for anonymous pages, i_mmap for file pages, and the mapcount.

Models mm/rmap.c (struct anon_vma and its chains: anon_vma_prepare, anon_vma_clone,
anon_vma_fork, unlink_anon_vmas; the mapcount: folio_add_new_anon_rmap,
folio_add_anon_rmap_ptes, folio_add_file_rmap_ptes, folio_remove_rmap_ptes; the walks:
rmap_walk, folio_mkclean, try_to_migrate, remove_migration_ptes), include/linux/rmap.h
(folio_try_dup_anon_rmap_ptes, folio_dup_file_rmap_ptes, struct page_vma_mapped_walk),
mm/page_vma_mapped.c (page_vma_mapped_walk), mm/interval_tree.c (vma_interval_tree_*) and the
i_mmap lock helpers of include/linux/fs.h.

Simplifications common to the module:
* every folio is order 0 (no THP, no large folios): a folio and its page are one record, the
  mapcount is ``page._mapcount`` (stored from -1), ``nr_pages`` is always 1;
* no KSM, no hugetlb, no device-private/-exclusive entries, no mlock bookkeeping, no memcg,
  no mmu notifiers, no per-node NR_*_MAPPED statistics: the places are marked with comments;
* the anon_vma interval tree (anon_vma->rb_root) is a list of the chained VMAs in insertion
  order, queried by pgoff range; the VMA's ``same_vma`` list of anon_vma_chains is a list of
  AnonVma (newest first, as list_add builds it);
* the file interval tree (mapping->i_mmap) is ``AddressSpace.i_mmap``, a list kept sorted by
  vm_pgoff (ties in insertion order), which is the order an in-order walk of the kernel's
  interval tree visits;
* page_vma_mapped_walk looks at exactly one PTE (order 0): the one at vma_address();
* try_to_migrate flushes synchronously (ptep_clear_flush); the TTU_BATCH_FLUSH deferral of
  the TLB flush (set_tlb_ubc_flush_pending / try_to_unmap_flush) is not modelled.
"""

from __future__ import annotations

import bisect
from typing import Any, Callable, Optional

from . import sched
from .constants import EBUSY, PAGE_SHIFT, VM_SHARED
from .cpu import flush_tlb_page
from .locks import (RwSem, down_read, down_write, might_sleep, spin_lock, spin_unlock, up_read,
                    up_write)
from .mm_types import linear_page_index
from .page import (Page, folio_get, folio_mapped, folio_put, folio_set_dirty, folio_test_anon,
                   PG_swapbacked)
from .pgtable import (EntryPtr, pmd_none, pmdp_get, pte_index, pte_offset_map_lock,
                      pte_unmap_unlock, ptep_get, ptep_get_and_clear, set_pte_at, walk_to_pmd)
from .pte import (PTE_NONE, is_migration_entry, is_swap_pte, is_writable_migration_entry,
                  make_migration_entry, pfn_pte, pte_dirty, pte_mkclean, pte_mkdirty,
                  pte_present, pte_pfn, pte_write, pte_wrprotect)
from .sched import KernelBug

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

# include/linux/page-flags.h: PG_anon_exclusive (an alias of PG_mappedtodisk on anon pages).
# page.py does not define it; the model keeps it in a bit page.py leaves unused.
PG_anon_exclusive = 1 << 16


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

    @property
    def obj(self) -> tuple:
        return ("anon_vma", self.root.id)

    def __repr__(self) -> str:
        return (f"<anon_vma {self.id} root={self.root.id} vmas={len(self.vmas)} "
                f"ref={self.refcount}{' FREED' if self.freed else ''}>")


def anon_vma_chain(vma) -> list:
    """``vma->anon_vma_chain`` (the same_vma list) as a list of AnonVma, newest first.

    vm_area_struct (mm_types.py) has no slot for it, so the model keeps it in a side table on
    the machine keyed by the VMA's id, unless the VMA grows an ``anon_vma_chain`` attribute."""
    chain = getattr(vma, "anon_vma_chain", None)
    if chain is not None:
        return chain
    table = vma.vm_mm.machine.__dict__.setdefault("anon_vma_chains", {})
    return table.setdefault(vma.id, [])


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
    lock for write."""
    sched.point("anon_vma_chain_link", writes=(anon_vma.obj, vma.obj))
    anon_vma_chain(vma).insert(0, anon_vma)
    anon_vma.vmas.append(vma)


def find_mergeable_anon_vma(vma) -> Optional[AnonVma]:
    """mm/vma.c find_mergeable_anon_vma(): reuse a neighbour's anon_vma when the VMAs could
    merge. Simplification: the model never reuses one (every VMA that faults gets its own),
    which changes which anon_vma pages point at, not which PTEs exist."""
    return None


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

    Models mm/rmap.c anon_vma_clone(), including the reuse of an anon_vma that has no VMA
    and at most one child (for fork). Returns 0 (no allocation failure in the model)."""
    root = None
    for anon_vma in list(reversed(anon_vma_chain(src))):
        # anon_vma_chain_alloc(GFP_NOWAIT) cannot fail in the model.
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

    Models mm/rmap.c anon_vma_fork(). Returns 0."""
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
