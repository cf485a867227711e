"""Page migration: a kernel thread moving a folio to a new frame while it stays mapped.

Models mm/migrate.c: migrate_pages -> migrate_pages_sync / migrate_pages_batch ->
migrate_folio_unmap (lock the folio, try_to_migrate: PTEs become migration entries) ->
try_to_unmap_flush -> migrate_folio_move (move_to_new_folio: copy contents and flags, move the
page-cache slot; remove_migration_ptes: entries become PTEs of the new frame; drop the old
frame), with the undo paths, putback_movable_pages, and migration_entry_wait for faults that
hit a migration entry. Isolation (mm/vmscan.c folio_isolate_lru via isolate_folio_to_list)
is the actor's first step.

Reference counts, as in the kernel: every PTE mapping a folio holds a reference, the page
cache holds one, isolation holds one. try_to_migrate_one drops the mapping references with
the mapcount; __folio_migrate_mapping freezes the old folio at exactly "page cache +
isolation" and moves the page-cache reference to the new one; remove_migration_pte takes a
reference on the new folio per restored PTE; the allocation reference of the new folio is
dropped at the end, and migrate_folio_done drops the isolation reference of the old one, which
frees it. rss is untouched throughout: a migration entry counts like the page it stands for.

Simplifications: order-0 folios only (no THP split, no large-folio batching, no hugetlb, no
movable_ops/balloon pages, no device memory, no hwpoison); the LRU is the PG_lru flag
(isolation clears it and takes a reference, putback sets it and drops the reference); no
swap cache, buffer heads or PG_private (a page-cache folio's expected count is page
cache + mappings + isolation); no statistics, page_owner, memcg or NUMA bookkeeping; the
destination frame comes from the single zone. The 6.18 sync path first tries one
MIGRATE_ASYNC batch (TTU_BATCH_FLUSH: the TLB flush of the unmap is deferred to
try_to_unmap_flush()), then retries synchronously, as the kernel does.
"""

from __future__ import annotations

from typing import Callable, Optional

from . import sched
from .constants import EAGAIN, EBUSY, ENOMEM
from .filemap import folio_add_lru
from .locks import spin_unlock
from .page import (PG_active, PG_dirty, PG_locked, PG_lru, PG_swapbacked, PG_swapcache,
                   PG_unevictable, PG_uptodate, PG_writeback, Page, folio_lock, folio_mapped, folio_put,
                   folio_ref_count, folio_test_anon, folio_test_mlocked, folio_try_get,
                   folio_trylock, folio_unlock, page_mapcount)
from .pgtable import pte_offset_map_lock, pte_unmap, pte_unmap_unlock, ptep_get
from .pte import is_migration_entry, pte_none, pte_present
from .rmap import (PG_anon_exclusive, TTU_BATCH_FLUSH, folio_get_anon_vma, folio_mapping,
                   put_anon_vma, remove_migration_ptes, try_to_migrate, try_to_unmap_flush)
from .sched import KernelBug
from .writeback import folio_test_writeback, folio_wait_writeback

# include/linux/migrate_mode.h
MIGRATE_ASYNC = 0
MIGRATE_SYNC_LIGHT = 1
MIGRATE_SYNC = 2

# include/linux/migrate_mode.h enum migrate_reason (the ones the model's actors use).
MR_COMPACTION = 0
MR_MEMORY_FAILURE = 1
MR_MEMORY_HOTPLUG = 2
MR_SYSCALL = 3
MR_MEMPOLICY_MBIND = 4
MR_NUMA_MISPLACED = 5
MR_CONTIG_RANGE = 6
MR_LONGTERM_PIN = 7
MR_DEMOTION = 8

# mm/migrate.c
PAGE_WAS_MAPPED = 1 << 0
PAGE_WAS_MLOCKED = 1 << 1
NR_MAX_MIGRATE_PAGES_RETRY = 10
NR_MAX_MIGRATE_ASYNC_RETRY = 3
NR_MAX_MIGRATE_SYNC_RETRY = NR_MAX_MIGRATE_PAGES_RETRY - NR_MAX_MIGRATE_ASYNC_RETRY

class MigrateCtx:
    """The migration thread's private bookkeeping: which list each folio's ->lru is on, and
    the record a destination folio carries from unmap to move (dst->private in 6.18:
    the anon_vma and the PAGE_WAS_* bits). Thread-local, so no scheduling points."""

    def __init__(self) -> None:
        self.lru: dict[int, list] = {}
        self.private: dict[int, tuple[int, object]] = {}

    def list_add_tail(self, folio: Page, head: list) -> None:
        head.append(folio)
        self.lru[id(folio)] = head

    def list_del(self, folio: Page) -> None:
        head = self.lru.pop(id(folio), None)
        if head is not None and folio in head:
            head.remove(folio)

    def list_move_tail(self, folio: Page, head: list) -> None:
        self.list_del(folio)
        self.list_add_tail(folio, head)


class migrate_pages_stats:
    def __init__(self) -> None:
        self.nr_succeeded = 0
        self.nr_failed_pages = 0


# =============================================================================================
# Isolation and putback
# =============================================================================================
def folio_isolate_lru(folio: Page) -> bool:
    """mm/vmscan.c folio_isolate_lru(): take the folio off the LRU (test-and-clear PG_lru)
    and hold a reference for the isolation."""
    sched.point("folio_test_clear_lru", writes=(folio.obj,))
    if not folio.flags & PG_lru:
        return False
    folio.flags &= ~PG_lru
    folio._refcount += 1                    # folio_get()
    # lruvec_del_folio(): no LRU lists.
    return True


def isolate_folio_to_list(ctx: MigrateCtx, folio: Page, lst: list) -> bool:
    """mm/migrate.c isolate_folio_to_list(): the caller holds a reference."""
    if not folio_isolate_lru(folio):
        return False
    # node_stat_add_folio(NR_ISOLATED_*): not modelled.
    ctx.list_add_tail(folio, lst)
    return True


def folio_putback_lru(folio: Page) -> None:
    """mm/vmscan.c folio_putback_lru(): back on the LRU, dropping the isolation reference."""
    folio_add_lru(folio)
    folio_put(folio)


def putback_movable_pages(ctx: MigrateCtx, lst: list) -> None:
    """mm/migrate.c putback_movable_pages()."""
    for folio in list(lst):
        ctx.list_del(folio)
        folio_putback_lru(folio)


# =============================================================================================
# The copy
# =============================================================================================
def folio_expected_ref_count(folio: Page) -> int:
    """include/linux/mm.h folio_expected_ref_count(): the swap cache (an anonymous folio in
    it) or the page cache (a file folio with a mapping), plus one per page-table mapping.
    No PG_private."""
    sched.point("folio_expected_ref_count", reads=(folio.obj,))
    ref_count = 0
    if folio.mapping is not None and folio.mapping.is_anon:
        ref_count += 1 if folio.flags & PG_swapcache else 0
    else:
        ref_count += 1 if folio.mapping is not None else 0
    return ref_count + page_mapcount(folio)


def folio_mc_copy(dst: Page, src: Page) -> int:
    """mm/util.c folio_mc_copy(): copy the contents (machine-check safe copy)."""
    sched.point("folio_mc_copy", reads=(("frame", src.pfn),), writes=(("frame", dst.pfn),))
    dst.copy_data_from(src)
    return 0


def __folio_migrate_mapping(mapping, newfolio: Page, folio: Page, expected_count: int) -> int:
    """Give *newfolio* the identity of *folio*: index and mapping; for a page-cache folio,
    also its slot in i_pages, its page-cache reference and its dirty bit.

    Models mm/migrate.c __folio_migrate_mapping(). For a page-cache folio the section under
    the i_pages lock (freeze the old folio's count at *expected_count*, move the slot and the
    reference, unfreeze at one less) is one step: a lockless lookup sees the old folio
    before it or the new one after it, and one that took a reference before it makes the
    freeze fail (-EAGAIN)."""
    if mapping is None and folio.flags & PG_swapcache:
        return _migrate_swapcache(newfolio, folio, expected_count)
    if mapping is None:
        # Anonymous folio without a mapping: no turning back from here.
        sched.point("__folio_migrate_mapping", reads=(folio.obj,), writes=(newfolio.obj,))
        newfolio.index = folio.index
        newfolio.mapping = folio.mapping
        if folio.flags & PG_swapbacked:
            newfolio.flags |= PG_swapbacked     # __folio_set_swapbacked()
        return 0

    sched.point("__folio_migrate_mapping", reads=(mapping.cache_obj,),
                writes=(mapping.cache_obj, folio.obj, newfolio.obj))
    if folio._refcount != expected_count:      # !folio_ref_freeze(folio, expected_count)
        return -EAGAIN
    # Now no one else is looking at the folio: no turning back from here.
    newfolio.index = folio.index
    newfolio.mapping = folio.mapping
    newfolio._refcount += 1                    # folio_ref_add(newfolio, nr): cache reference
    if folio.flags & PG_swapbacked:
        newfolio.flags |= PG_swapbacked
    # Move dirty while the refs are frozen and newfolio not yet exposed.
    if folio.flags & PG_dirty:
        folio.flags &= ~PG_dirty
        newfolio.flags |= PG_dirty
    mapping.i_pages[folio.index] = newfolio   # xas_store()
    # Drop the cache reference of the old folio by unfreezing to one less.
    folio._refcount = expected_count - 1
    return 0


def _migrate_swapcache(newfolio: Page, folio: Page, expected_count: int) -> int:
    """__folio_migrate_mapping() for an anonymous folio in the swap cache (folio_mapping()
    is the swap address_space there; the model's folio_mapping() answers None for every
    anonymous folio): under the swap cache's lock, freeze the count, give the new folio the
    slot, the cache's reference and the dirty bit, unfreeze the old one at one less."""
    from .swapfile import swap_info
    offset = folio.swap_slot
    machine = folio.zone.machine
    sched.point("__folio_migrate_mapping(swap cache)", reads=(("swap", offset),),
                writes=(("swap", offset), folio.obj, newfolio.obj))
    if folio._refcount != expected_count:      # !folio_ref_freeze(folio, expected_count)
        return -EAGAIN
    newfolio.index = folio.index
    newfolio.mapping = folio.mapping
    newfolio._refcount += 1                    # folio_ref_add(newfolio, nr): cache reference
    newfolio.flags |= PG_swapbacked | PG_swapcache
    newfolio.swap_slot = offset                # newfolio->private = folio_get_private(folio)
    if folio.flags & PG_dirty:
        folio.flags &= ~PG_dirty
        newfolio.flags |= PG_dirty
    swap_info(machine).cache[offset] = newfolio   # xas_store()
    folio._refcount = expected_count - 1
    return 0


def folio_migrate_flags(newfolio: Page, folio: Page) -> None:
    """Copy the page flags that travel with the contents.

    Models mm/migrate.c folio_migrate_flags(): uptodate, active/unevictable (moved),
    PG_mappedtodisk (which is PG_anon_exclusive on anon folios), dirty. Both folios are
    locked and the old one is unmapped, so the copy is one step. No young/idle, cpupid,
    KSM, swap cache, readahead, page_owner or memcg."""
    sched.point("folio_migrate_flags", writes=(folio.obj, newfolio.obj))
    if folio.flags & PG_uptodate:
        newfolio.flags |= PG_uptodate
    if folio.flags & PG_active:
        folio.flags &= ~PG_active
        newfolio.flags |= PG_active
    elif folio.flags & PG_unevictable:
        folio.flags &= ~PG_unevictable
        newfolio.flags |= PG_unevictable
    if folio.flags & PG_anon_exclusive:   # folio_test_mappedtodisk()
        newfolio.flags |= PG_anon_exclusive
    # Move dirty on pages not done by folio_migrate_mapping().
    if folio.flags & PG_dirty:
        newfolio.flags |= PG_dirty


def __migrate_folio(mapping, dst: Page, src: Page, src_private, mode: int) -> int:
    """mm/migrate.c __migrate_folio(): check the references, copy, move the mapping, copy
    the flags."""
    expected_count = folio_expected_ref_count(src) + 1
    # Check whether src does not have extra refs before we do more work.
    if folio_ref_count(src) != expected_count:
        return -EAGAIN
    rc = folio_mc_copy(dst, src)
    if rc:
        return rc
    rc = __folio_migrate_mapping(mapping, dst, src, expected_count)
    if rc:
        return rc
    # folio_attach_private(): no PG_private in the model.
    folio_migrate_flags(dst, src)
    return 0


def migrate_folio(mapping, dst: Page, src: Page, mode: int) -> int:
    """mm/migrate.c migrate_folio(): the simple migration, also shmem's ->migrate_folio and,
    without buffer heads, what filemap_migrate_folio/buffer_migrate_folio come down to."""
    if src.flags & PG_writeback:
        raise KernelBug(f"BUG_ON(folio_test_writeback): migrate_folio of pfn {src.pfn}")
    return __migrate_folio(mapping, dst, src, None, mode)


def move_to_new_folio(dst: Page, src: Page, mode: int) -> int:
    """Move *src* (locked, unmapped) to *dst* (locked). Models mm/migrate.c
    move_to_new_folio(); every mapping's ->migrate_folio is migrate_folio in the model."""
    mapping = folio_mapping(src)
    if not src.flags & PG_locked or not dst.flags & PG_locked:
        raise KernelBug("VM_BUG_ON_FOLIO(!folio_test_locked): move_to_new_folio")
    if mapping is None:
        rc = migrate_folio(mapping, dst, src, mode)
    else:
        # mapping_inaccessible(): not modelled; a_ops->migrate_folio.
        rc = migrate_folio(mapping, dst, src, mode)
    if not rc:
        # A page-cache folio's ->mapping is cleared before it is freed; an anonymous folio
        # stays anonymous until freed.
        if not folio_test_anon(src):
            sched.point("WRITE src->mapping", writes=(src.obj,))
            src.mapping = None
        # flush_dcache_folio(): nothing on x86/arm64.
    return rc


# =============================================================================================
# Unmap and move
# =============================================================================================
def __migrate_folio_record(ctx: MigrateCtx, dst: Page, old_page_state: int, anon_vma) -> None:
    ctx.private[id(dst)] = (old_page_state, anon_vma)


def __migrate_folio_extract(ctx: MigrateCtx, dst: Page) -> tuple[int, object]:
    return ctx.private.pop(id(dst), (0, None))


def migrate_folio_undo_src(ctx: MigrateCtx, src: Page, page_was_mapped: int, anon_vma,
                           locked: bool, ret: Optional[list]) -> None:
    """mm/migrate.c migrate_folio_undo_src(): restore the source after a failure."""
    if page_was_mapped:
        remove_migration_ptes(src, src, 0)
    # Drop an anon_vma reference if we took one.
    if anon_vma is not None:
        put_anon_vma(anon_vma)
    if locked:
        folio_unlock(src)
    if ret is not None:
        ctx.list_move_tail(src, ret)


def migrate_folio_undo_dst(dst: Page, locked: bool, put_new_folio: Optional[Callable],
                           private) -> None:
    """mm/migrate.c migrate_folio_undo_dst(): give back the destination after a failure."""
    if locked:
        folio_unlock(dst)
    if put_new_folio is not None:
        put_new_folio(dst, private)
    else:
        folio_put(dst)


def migrate_folio_done(src: Page, reason: int) -> None:
    """mm/migrate.c migrate_folio_done(): drop the isolation reference of a migrated (or
    meanwhile freed) source; normally the last one, which frees it."""
    # mod_node_page_state(NR_ISOLATED_*): not modelled.
    if reason != MR_MEMORY_FAILURE:
        folio_put(src)


def alloc_migration_target(src: Page, private) -> Optional[Page]:
    """mm/migrate.c alloc_migration_target(): a new order-0 frame (the model has one zone
    and one node)."""
    return src.zone.alloc_page(src.kind)


def migrate_folio_unmap(ctx: MigrateCtx, get_new_folio: Callable, put_new_folio, private,
                        src: Page, mode: int, ret: list) -> tuple[int, Optional[Page]]:
    """Allocate the destination, lock the source and replace its PTEs by migration entries.

    Models mm/migrate.c migrate_folio_unmap(); returns (rc, dst). On failure the source is
    restored (its migration entries turned back into PTEs) and the destination freed."""
    rc = -EAGAIN
    old_page_state = 0
    anon_vma = None
    locked = False
    dst_locked = False

    dst = get_new_folio(src, private)
    if dst is None:
        return -ENOMEM, None
    ctx.private.pop(id(dst), None)          # dst->private = NULL

    if not folio_trylock(src):
        if mode == MIGRATE_ASYNC:
            return _unmap_out(ctx, rc, src, dst, old_page_state, anon_vma, locked,
                              dst_locked, put_new_folio, private, ret)
        # PF_MEMALLOC (direct compaction) does not apply to the migration thread.
        # In "light" mode, transient locks may be waited for, but not I/O.
        if mode == MIGRATE_SYNC_LIGHT and not src.flags & PG_uptodate:
            return _unmap_out(ctx, rc, src, dst, old_page_state, anon_vma, locked,
                              dst_locked, put_new_folio, private, ret)
        folio_lock(src)
    locked = True
    if folio_test_mlocked(src):
        old_page_state |= PAGE_WAS_MLOCKED

    if folio_test_writeback(src):
        # Only a fully synchronous migration waits for writeback.
        if mode != MIGRATE_SYNC:
            rc = -EBUSY
            return _unmap_out(ctx, rc, src, dst, old_page_state, anon_vma, locked,
                              dst_locked, put_new_folio, private, ret)
        folio_wait_writeback(src)

    # try_to_migrate() takes the mapcount to 0: hold the anon_vma until the end of the
    # migration so that it is not freed meanwhile.
    if folio_test_anon(src):
        anon_vma = folio_get_anon_vma(src)

    # Block others from accessing the new folio when we get around to establishing
    # additional references.
    if not folio_trylock(dst):
        return _unmap_out(ctx, rc, src, dst, old_page_state, anon_vma, locked, dst_locked,
                          put_new_folio, private, ret)
    dst_locked = True

    # movable_ops pages: not modelled.
    sched.point("READ src->mapping", reads=(src.obj,))
    if src.mapping is None:
        # A folio that left the page cache (truncated) or a swap-cache folio with no rmap
        # yet; no fs-private data in the model, so nothing to free.
        pass
    elif folio_mapped(src):
        # Establish migration ptes.
        if folio_test_anon(src) and anon_vma is None:
            raise KernelBug(f"VM_BUG_ON_FOLIO(anon && !anon_vma): pfn {src.pfn}")
        try_to_migrate(src, TTU_BATCH_FLUSH if mode == MIGRATE_ASYNC else 0)
        old_page_state |= PAGE_WAS_MAPPED

    if not folio_mapped(src):
        __migrate_folio_record(ctx, dst, old_page_state, anon_vma)
        return 0, dst

    return _unmap_out(ctx, rc, src, dst, old_page_state, anon_vma, locked, dst_locked,
                      put_new_folio, private, ret)


def _unmap_out(ctx, rc, src, dst, old_page_state, anon_vma, locked, dst_locked,
               put_new_folio, private, ret):
    """The ``out:`` label of migrate_folio_unmap()."""
    # A folio that has not been unmapped goes back to the right list unless we retry.
    if rc == -EAGAIN:
        ret = None
    migrate_folio_undo_src(ctx, src, old_page_state & PAGE_WAS_MAPPED, anon_vma, locked, ret)
    migrate_folio_undo_dst(dst, dst_locked, put_new_folio, private)
    return rc, None


def migrate_folio_move(ctx: MigrateCtx, put_new_folio, private, src: Page, dst: Page,
                       mode: int, reason: int, ret: list, dst_list: list) -> int:
    """Copy the unmapped source into the destination and map the destination where the
    source was. Models mm/migrate.c migrate_folio_move()."""
    old_page_state, anon_vma = __migrate_folio_extract(ctx, dst)
    ctx.list_del(dst)                       # prev = dst->lru.prev; list_del(&dst->lru)

    # movable_ops pages, deferred split queue of large folios: not modelled.
    rc = move_to_new_folio(dst, src, mode)
    if rc:
        # out:
        if rc == -EAGAIN:
            ctx.list_add_tail(dst, dst_list)        # list_add(&dst->lru, prev)
            __migrate_folio_record(ctx, dst, old_page_state, anon_vma)
            return rc
        migrate_folio_undo_src(ctx, src, old_page_state & PAGE_WAS_MAPPED, anon_vma, True,
                               ret)
        migrate_folio_undo_dst(dst, True, put_new_folio, private)
        return rc

    # Push dst to the LRU now, so that remove_migration_ptes() of an mlocked folio finds it
    # there. PAGE_WAS_MLOCKED: lru_add_drain(), nothing to drain in the model.
    folio_add_lru(dst)
    if old_page_state & PAGE_WAS_MAPPED:
        remove_migration_ptes(src, dst, 0)

    # out_unlock_both:
    folio_unlock(dst)
    # folio_set_owner_migrate_reason(): no page_owner.
    # The migration's reference on dst; the PTEs (and page cache) hold theirs.
    folio_put(dst)
    # A migrated folio has all references removed but ours, and will be freed.
    ctx.list_del(src)
    # Drop an anon_vma reference if we took one.
    if anon_vma is not None:
        put_anon_vma(anon_vma)
    folio_unlock(src)
    migrate_folio_done(src, reason)
    return rc


def migrate_folios_move(ctx: MigrateCtx, src_folios: list, dst_folios: list, put_new_folio,
                        private, mode: int, reason: int, ret_folios: list,
                        stats: migrate_pages_stats, counters: dict) -> None:
    """mm/migrate.c migrate_folios_move(): move each unmapped folio to its destination."""
    for folio, dst in list(zip(src_folios, dst_folios)):
        rc = migrate_folio_move(ctx, put_new_folio, private, folio, dst, mode, reason,
                                ret_folios, dst_folios)
        # 0: the folio will be freed; -EAGAIN: stays on src_folios; else: on ret_folios.
        if rc == -EAGAIN:
            counters["retry"] += 1
        elif rc == 0:
            stats.nr_succeeded += 1
        else:
            counters["nr_failed"] += 1
            stats.nr_failed_pages += 1


def migrate_folios_undo(ctx: MigrateCtx, src_folios: list, dst_folios: list, put_new_folio,
                        private, ret_folios: list) -> None:
    """mm/migrate.c migrate_folios_undo(): restore what was unmapped but not moved."""
    for folio, dst in list(zip(src_folios, dst_folios)):
        old_page_state, anon_vma = __migrate_folio_extract(ctx, dst)
        migrate_folio_undo_src(ctx, folio, old_page_state & PAGE_WAS_MAPPED, anon_vma, True,
                               ret_folios)
        ctx.list_del(dst)
        migrate_folio_undo_dst(dst, True, put_new_folio, private)


def migrate_pages_batch(ctx: MigrateCtx, from_: list, get_new_folio, put_new_folio, private,
                        mode: int, reason: int, ret_folios: list, stats: migrate_pages_stats,
                        nr_pass: int) -> int:
    """First unmap as many folios of *from_* as possible, then flush the TLBs once, then move
    the unmapped ones. Models mm/migrate.c migrate_pages_batch(); returns the number of
    folios not migrated, or an error."""
    retry = 1
    nr_failed = 0
    unmap_folios: list = []
    dst_folios: list = []
    rc_saved = 0

    pass_ = 0
    goto_move = False
    while pass_ < nr_pass and retry and not goto_move:
        retry = 0
        for folio in list(from_):
            # Large folios (deferred split, THP split): not modelled.
            # If we hold the last reference, the folio was freed from under us.
            if folio_ref_count(folio) == 1:
                sched.point("folio_clear_active", writes=(folio.obj,))
                folio.flags &= ~(PG_active | PG_unevictable)
                ctx.list_del(folio)
                migrate_folio_done(folio, reason)
                stats.nr_succeeded += 1
                continue
            rc, dst = migrate_folio_unmap(ctx, get_new_folio, put_new_folio, private, folio,
                                          mode, ret_folios)
            # 0: on unmap_folios, dst on dst_folios; -EAGAIN/-ENOMEM: stays on from_;
            # other errors: on ret_folios.
            if rc == -ENOMEM:
                nr_failed += 1
                stats.nr_failed_pages += 1
                # When memory is low, move what is unmapped and stop.
                rc_saved = rc
                if not unmap_folios:
                    return rc               # goto out (nothing to undo)
                goto_move = True
                break
            elif rc == -EAGAIN:
                retry += 1
            elif rc == 0:
                ctx.list_move_tail(folio, unmap_folios)
                ctx.list_add_tail(dst, dst_folios)
            else:
                # Permanent failure (-EBUSY ...): not retried in the next pass.
                nr_failed += 1
                stats.nr_failed_pages += 1
        pass_ += 1
    if not goto_move:
        nr_failed += retry
    # move:
    # Flush TLBs for all unmapped folios.
    try_to_unmap_flush()

    counters = {"retry": 1, "nr_failed": 0}
    pass_ = 0
    while pass_ < nr_pass and counters["retry"]:
        counters["retry"] = 0
        # Move the unmapped folios.
        migrate_folios_move(ctx, unmap_folios, dst_folios, put_new_folio, private, mode,
                            reason, ret_folios, stats, counters)
        pass_ += 1
    nr_failed += counters["retry"] + counters["nr_failed"]

    rc = rc_saved or nr_failed
    # out: clean up the remaining folios.
    migrate_folios_undo(ctx, unmap_folios, dst_folios, put_new_folio, private, ret_folios)
    return rc


def migrate_pages_sync(ctx: MigrateCtx, from_: list, get_new_folio, put_new_folio, private,
                       mode: int, reason: int, ret_folios: list,
                       stats: migrate_pages_stats) -> int:
    """mm/migrate.c migrate_pages_sync(): one MIGRATE_ASYNC batch first, then each folio
    that failed is retried on its own in *mode*."""
    nr_failed = 0
    folios: list = []
    astats = migrate_pages_stats()
    # Try to migrate in batch with MIGRATE_ASYNC mode first.
    rc = migrate_pages_batch(ctx, from_, get_new_folio, put_new_folio, private, MIGRATE_ASYNC,
                             reason, folios, astats, NR_MAX_MIGRATE_ASYNC_RETRY)
    stats.nr_succeeded += astats.nr_succeeded
    if rc < 0:
        stats.nr_failed_pages += astats.nr_failed_pages
        for folio in list(folios):
            ctx.list_move_tail(folio, ret_folios)
        return rc
    # Fall back to migrating every failed folio one by one synchronously.
    for folio in list(folios):
        ctx.list_move_tail(folio, from_)     # list_splice_tail_init(&folios, from)
    while from_:
        ctx.list_move_tail(from_[0], folios)
        rc = migrate_pages_batch(ctx, folios, get_new_folio, put_new_folio, private, mode,
                                 reason, ret_folios, stats, NR_MAX_MIGRATE_SYNC_RETRY)
        for folio in list(folios):
            ctx.list_move_tail(folio, ret_folios)
        if rc < 0:
            return rc
        nr_failed += rc
    return nr_failed


def migrate_pages(ctx: MigrateCtx, from_: list, get_new_folio: Callable, put_new_folio,
                  private, mode: int, reason: int) -> int:
    """Migrate the isolated folios on *from_*; returns the number not migrated (they are left
    on *from_* for the caller's putback_movable_pages) or an error.

    Models mm/migrate.c migrate_pages(). No hugetlb folios (migrate_hugetlbs), no split
    folios, one batch (NR_MAX_BATCHED_MIGRATION is never reached)."""
    stats = migrate_pages_stats()
    ret_folios: list = []
    folios: list = []
    for folio in list(from_):
        ctx.list_move_tail(folio, folios)
    if mode == MIGRATE_ASYNC:
        rc = migrate_pages_batch(ctx, folios, get_new_folio, put_new_folio, private, mode,
                                 reason, ret_folios, stats, NR_MAX_MIGRATE_PAGES_RETRY)
    else:
        rc = migrate_pages_sync(ctx, folios, get_new_folio, put_new_folio, private, mode,
                                reason, ret_folios, stats)
    for folio in list(folios):
        ctx.list_move_tail(folio, ret_folios)
    rc_gather = rc
    # out: put the permanent failures back on the migration list for the caller.
    for folio in list(ret_folios):
        ctx.list_move_tail(folio, from_)
    if not from_:
        rc_gather = 0
    return rc_gather


# =============================================================================================
# The actor
# =============================================================================================
def migrate_folio_actor(machine, folio: Page, mode: int = MIGRATE_SYNC,
                        reason: int = MR_COMPACTION) -> int:
    """A kernel thread migrating one folio to a new frame (compaction, NUMA balancing,
    memory offlining all come down to this): returns 0 if it was migrated (or was freed
    meanwhile), a positive count or negative errno if not.

    Models the caller side (isolate_migratepages_block / do_move_pages_to_node shape):
    take a reference, isolate the folio from the LRU (which takes the isolation reference),
    drop the lookup reference, migrate_pages(), and put back what was not migrated."""
    ctx = MigrateCtx()
    from_: list = []
    # folio_get_nontail_page(): a reference unless the folio is being freed.
    if not folio_try_get(folio):
        return -EBUSY
    if not isolate_folio_to_list(ctx, folio, from_):
        folio_put(folio)
        return -EBUSY
    folio_put(folio)
    err = migrate_pages(ctx, from_, alloc_migration_target, None, machine, mode, reason)
    if err:
        putback_movable_pages(ctx, from_)
    return err


# =============================================================================================
# A fault on a migration entry
# =============================================================================================
def migration_entry_wait_on_locked(folio: Page, ptl) -> None:
    """mm/filemap.c migration_entry_wait_on_locked(): the migration thread holds the folio
    lock until the entry is removed; drop the PTL and wait for the unlock. (The kernel takes
    the folio from the entry; the folio cannot be freed before the PTL is dropped, and a
    folio freed after that reads as unlocked.)"""
    spin_unlock(ptl)
    sched.point("folio_wait_bit(PG_locked)", reads=(folio.obj,),
                wait=lambda: not folio.flags & PG_locked)


def migration_entry_wait(mm, pmd, address: int) -> None:
    """A fault found a migration entry: wait until the migration finishes (the fault is then
    retried). Models mm/migrate.c migration_entry_wait()."""
    ptep, ptl = pte_offset_map_lock(mm, pmd, address)
    if ptep is None:
        return
    pte = ptep_get(ptep)
    pte_unmap(ptep)
    if pte_none(pte) or pte_present(pte) or not is_migration_entry(pte):
        spin_unlock(ptl)                                # out:
        return
    # pfn_swap_entry_folio(entry)
    migration_entry_wait_on_locked(mm.zone.pfn_to_page(pte.pfn), ptl)
