"""Reclaim of the folios MADV_PAGEOUT isolated: mm/vmscan.c of 6.18.

reclaim_pages() -> reclaim_folio_list() -> shrink_folio_list() with the scan_control of
reclaim_folio_list (may_writepage, may_unmap, may_swap, no_demotion; no memcg) and
ignore_references: each folio is locked with a trylock, unmapped from every mm
(try_to_unmap with a batched TLB flush), an anonymous one first given a swap slot and the
swap cache (folio_alloc_swap), written out if dirty (pageout: swap_writeout for anonymous
folios; a dirty page-cache folio is never written from here, it is activated), then taken
out of the swap or page cache (__remove_mapping, which gives up if anyone took a reference
meanwhile) and freed after the batched flush; a lazily freeable (MADV_FREE) folio is
discarded. What is kept goes back on the LRU. Read from v6.18
(docs/research/swap-6.18.md). Simplifications: order-0 folios only (no splitting), no
kswapd (current_is_kswapd() is false), no memcg, no demotion, no workingset shadow
entries, no buffer heads (folio_needs_release() is false), no dirty/writeback throttling
statistics; the LRU is the PG_lru/PG_active flags. A dirty shmem folio would need
shmem_writeout() (shmem swap-out), which is not modelled: reclaim raises NotSupported
there rather than keep it silently.
"""

from __future__ import annotations

from . import sched
from .filemap import __filemap_remove_folio, shmem_mapping
from .page import (PG_active, PG_dirty, PG_locked, PG_mlocked, PG_swapbacked, PG_swapcache,
                   PG_unevictable, PG_writeback, Page, folio_mapped, folio_test_anon,
                   folio_trylock, folio_unlock)
from .rmap import TTU_BATCH_FLUSH, folio_mapping, try_to_unmap, try_to_unmap_flush, \
    try_to_unmap_flush_dirty
from .sched import KernelBug
from .swapfile import (SWAP_SPACE, __swap_cache_del_folio, folio_alloc_swap, folio_free_swap,
                       put_swap_folio, swap_writeout, vm_swap_full)

# enum pageout_t
PAGE_KEEP, PAGE_ACTIVATE, PAGE_SUCCESS, PAGE_CLEAN = range(4)


def folio_evictable(folio: Page) -> bool:
    """mm/internal.h folio_evictable(): not on an unevictable mapping, not mlocked."""
    return not folio.flags & (PG_unevictable | PG_mlocked)


def folio_maybe_dma_pinned(folio: Page) -> bool:
    """include/linux/mm.h folio_maybe_dma_pinned(): the model's GUP takes plain references
    (FOLL_GET), never FOLL_PIN's GUP_PIN_COUNTING_BIAS, so no folio looks pinned; an extra
    reference makes __remove_mapping's freeze fail instead."""
    return False


def is_page_cache_freeable(folio: Page) -> bool:
    """mm/vmscan.c is_page_cache_freeable(): only the isolation and the cache hold it."""
    sched.point("folio_ref_count", reads=(folio.obj,))
    return folio._refcount == 2


def pageout(folio: Page, mapping, machine) -> int:
    """mm/vmscan.c pageout(): write a dirty, locked, unmapped folio out. Returns PAGE_KEEP
    or PAGE_ACTIVATE (the folio still locked), PAGE_CLEAN (locked: it was not dirty after
    all) or PAGE_SUCCESS (unlocked: the write was issued, and on the model's synchronous
    swap device completed)."""
    if not is_page_cache_freeable(folio):
        return PAGE_KEEP
    if mapping is None:
        return PAGE_KEEP            # (orphaned buffer pages: no buffers in the model)
    if mapping is not SWAP_SPACE:
        if not shmem_mapping(mapping):
            # Reclaim never writes filesystem folios (that is the flusher's job).
            return PAGE_ACTIVATE
        from .madvise import NotSupported
        raise NotSupported("madvise(MADV_PAGEOUT) of a dirty shmem page",
                           "shmem_writeout (shmem swap-out)")
    # folio_clear_dirty_for_io(): the swap space has no writeback-capable bdi.
    from .page import folio_clear_dirty
    if not folio_clear_dirty(folio):
        return PAGE_CLEAN
    # writeout(): folio_set_reclaim (PG_reclaim bookkeeping: not modelled)
    swap_writeout(machine, folio)
    return PAGE_SUCCESS


def __remove_mapping(machine, mapping, folio: Page) -> bool:
    """mm/vmscan.c __remove_mapping(): take the locked, unmapped folio out of the swap or
    page cache if only the isolation and the cache hold it (folio_ref_freeze(folio, 2):
    a reference taken meanwhile, a fault's or GUP's, wins) and it is clean. True if the
    folio left the cache; the caller then frees it (its count is frozen at zero)."""
    if mapping is SWAP_SPACE:
        offset = folio.swap_slot
        sched.point("__remove_mapping(swap cluster lock)", reads=(("swap", offset),),
                    writes=(("swap", offset), folio.obj))
    else:
        sched.point("__remove_mapping(i_pages lock)", reads=(mapping.cache_obj,),
                    writes=(mapping.cache_obj, folio.obj))
    if folio._refcount != 2:                      # !folio_ref_freeze(folio, 1 + nr)
        return False
    if folio.flags & PG_dirty:                    # folio_ref_unfreeze(folio, 1 + nr)
        return False
    folio._refcount = 0
    if mapping is SWAP_SPACE:
        __swap_cache_del_folio(machine, folio, offset)
        put_swap_folio(machine, folio, offset)
    else:
        # (workingset_eviction shadow: not modelled)
        __filemap_remove_folio(folio)
    return True


def _mapping_of(folio: Page):
    """folio_mapping() as reclaim sees it: SWAP_SPACE for a folio in the swap cache (the
    model's folio_mapping() answers None for every anonymous folio)."""
    if folio.flags & PG_swapcache:
        return SWAP_SPACE
    return folio_mapping(folio)


def shrink_folio_list(machine, folio_list: list) -> tuple[list, int]:
    """mm/vmscan.c shrink_folio_list() for reclaim_folio_list(): returns the folios kept
    (still isolated, for the caller to put back) and how many were reclaimed."""
    ret_folios: list = []
    free_folios: list = []
    nr_reclaimed = 0
    for folio in list(folio_list):
        folio_list.remove(folio)
        kept = _shrink_folio(machine, folio)
        if kept:
            ret_folios.append(folio)
        else:
            free_folios.append(folio)
            nr_reclaimed += 1
    # Flush the batched TLB entries before the frames go back (mem_cgroup_uncharge_folios,
    # try_to_unmap_flush, free_unref_folios).
    try_to_unmap_flush()
    for folio in free_folios:
        folio.zone.free_unref_page(folio)
    return ret_folios, nr_reclaimed


def _shrink_folio(machine, folio: Page) -> bool:
    """One iteration of shrink_folio_list()'s loop: True if the folio is kept (activated or
    not), False if it was freed (its count is zero: it goes on free_folios)."""
    if not folio_trylock(folio):
        return True                                               # keep
    if not folio_evictable(folio):
        return _activate_locked(machine, folio)
    # (sc->may_unmap is set; folio_check_dirty_writeback: nothing for these folios)
    sched.point("folio_test_writeback", reads=(folio.obj,))
    if folio.flags & PG_writeback:
        # Not kswapd, writeback throttling sane: mark it for immediate reclaim and move on
        # (folio_set_reclaim: not modelled).
        return _activate_locked(machine, folio)
    # ignore_references: FOLIOREF_RECLAIM.
    # Anonymous process memory without backing storage: try to allocate it some swap space
    # here.
    if folio_test_anon(folio) and folio.flags & PG_swapbacked and not folio.flags & PG_swapcache:
        if folio_maybe_dma_pinned(folio):
            return _keep_locked(folio)
        if folio_alloc_swap(machine, folio):
            return _activate_locked(machine, folio)               # activate_locked_split
        # Normally the folio gets dirtied in unmapping; do it now for the new swap entry.
        from .page import folio_set_dirty
        folio_set_dirty(folio)
    # The folio is mapped into the page tables of one or more processes: try to unmap it.
    if folio_mapped(folio):
        try_to_unmap(folio, TTU_BATCH_FLUSH)
        if folio_mapped(folio):
            return _activate_locked(machine, folio)
    # A page that may be DMA-pinned: not in the model (folio_maybe_dma_pinned).
    mapping = _mapping_of(folio)
    if folio.flags & PG_dirty:
        if not folio.flags & PG_swapbacked:
            # Dirty file folio: only the flusher writes those (folio_is_file_lru, not kswapd).
            return _activate_locked(machine, folio)
        # Folio is dirty: flush the TLB if a writable entry potentially exists, so that
        # no store lands after the write.
        try_to_unmap_flush_dirty()
        res = pageout(folio, mapping, machine)
        if res == PAGE_KEEP:
            return _keep_locked(folio)
        if res == PAGE_ACTIVATE:
            return _activate_locked(machine, folio)
        if res == PAGE_SUCCESS:
            if folio.flags & (PG_writeback | PG_dirty):
                return True                                       # keep
            # A synchronous write: the folio is clean; relock it and free it.
            if not folio_trylock(folio):
                return True
            if folio.flags & (PG_dirty | PG_writeback):
                return _keep_locked(folio)
            mapping = _mapping_of(folio)
        # PAGE_CLEAN: try to free the folio below.
    # (folio_needs_release: no buffers)
    if folio_test_anon(folio) and not folio.flags & PG_swapbacked:
        # A lazily freeable folio try_to_unmap() discarded: only the isolation holds it.
        sched.point("folio_ref_freeze(folio, 1)", writes=(folio.obj,))
        if folio._refcount != 1:
            return _keep_locked(folio)
        folio._refcount = 0
    elif mapping is None or not __remove_mapping(machine, mapping, folio):
        return _keep_locked(folio)
    folio_unlock(folio)
    return False                                                  # free_it


def _activate_locked(machine, folio: Page) -> bool:
    """shrink_folio_list()'s ``activate_locked:``: drop a swap cache entry nobody needs when
    swap is filling up or the folio is mlocked, mark it active (unless mlocked), unlock."""
    from .page import folio_set_flag
    if folio.flags & PG_swapcache and (vm_swap_full(machine) or folio.flags & PG_mlocked):
        folio_free_swap(machine, folio)
    if not folio.flags & PG_mlocked:
        folio_set_flag(folio, PG_active)
    return _keep_locked(folio)


def _keep_locked(folio: Page) -> bool:
    if not folio.flags & PG_locked:
        raise KernelBug(f"shrink_folio_list: keep_locked of unlocked pfn {folio.pfn}")
    folio_unlock(folio)
    return True


def reclaim_pages(machine, folio_list: list) -> int:
    """mm/vmscan.c reclaim_pages() -> reclaim_folio_list(): reclaim the isolated folios
    (one node), put the ones kept back on the LRU; returns the number reclaimed. The
    memalloc_noreclaim_save() section is not modelled."""
    from .migrate import folio_putback_lru
    from .page import folio_clear_flag
    if not folio_list:
        return 0
    for folio in folio_list:
        folio_clear_flag(folio, PG_active)
    kept, nr_reclaimed = shrink_folio_list(machine, folio_list)
    for folio in kept:
        folio_putback_lru(folio)
    return nr_reclaimed


__all__ = ["reclaim_pages", "shrink_folio_list", "pageout", "__remove_mapping",
           "folio_evictable"]
