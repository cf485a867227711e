"""The swap device, its slot counts and the swap cache, as 6.18 keeps them.

Models mm/swapfile.c (swap_map counts, SWAP_HAS_CACHE, folio_alloc_swap, swap_duplicate,
swapcache_prepare, swap_free_nr, put_swap_folio, free_swap_and_cache_nr, folio_free_swap),
mm/swap_state.c (the swap cache: swap_cache_get_folio, swap_cache_add_folio,
__swap_cache_del_folio / swap_cache_del_folio, free_swap_cache, free_pages_and_swap_cache; in 6.18 the cache is the cluster's swap
table, the "swap table phase I" series) and mm/page_io.c (swap_writeout, swap_read_folio).
Read from v6.18 (docs/research/swap-6.18.md says where).

The machine has one swap device of ``Tunables.swap_pages`` slots (0: no swap, as on a
machine without a swap device: folio_alloc_swap() fails and reclaim keeps anonymous
folios). Offsets start at 1 (slot 0 is the swap header). Simplifications:

* the device is SWP_SYNCHRONOUS_IO (zram's kind): a write or a read completes before
  swap_writeout() / swap_read_folio() return, so writeback never outlives the call and no
  readahead is done (swapin_readahead reads the one entry it was asked for);
* no zswap, no zeromap shortcut (a zero-filled folio is written like any other: the
  contents read back are the same), no swap continuation pages (a slot with
  SWAP_MAP_MAX references raises "not modelled"; the model's scenarios stay far below), no swapoff (get_swap_device() always succeeds), no memcg swap
  accounting, no swap clusters (one lock object per slot: ``("swap", offset)``);
* order-0 folios only (the model has no large folios).
"""

from __future__ import annotations

from typing import Optional

from . import sched
from .constants import ENOENT, ENOMEM, EEXIST
from .page import (PG_locked, PG_swapcache, PG_writeback, Page, folio_set_dirty,
                   folio_try_get, folio_unlock)
from .sched import KernelBug, NotModelled

# include/linux/swap.h
SWAP_HAS_CACHE = 0x40        # the slot is in the swap cache (or being added to it)
SWAP_MAP_MAX = 0x3e          # the largest count without continuation pages


class _SwapSpace:
    """The swap cache's address_space, as folio_mapping() names it for a folio in the swap
    cache (the model's rmap folio_mapping() answers None for every anonymous folio; reclaim
    asks with this in mind)."""

    def __repr__(self) -> str:
        return "<swap address_space>"


SWAP_SPACE = _SwapSpace()


def _slot(offset: int) -> tuple:
    return ("swap", offset)


def swap_info(machine):
    """The swap device (``swap_info[0]``)."""
    return machine.swap


class swap_info_struct:
    """include/linux/swap.h struct swap_info_struct, the parts the model needs.

    ``swap_map``: offset -> count of references (PTEs, shmem) | SWAP_HAS_CACHE; a missing
    offset is a free slot. ``data``: what the device holds at each written slot (the
    folio's bytes when swap_writeout() wrote it). ``cache``: the swap cache, offset ->
    folio (6.18's swap table). ``pages``: the device's size in slots."""

    def __init__(self, pages: int):
        self.pages = pages
        self.swap_map: dict[int, int] = {}
        self.data: dict[int, dict] = {}
        self.cache: dict[int, Page] = {}

    def nr_swap_pages(self) -> int:
        return self.pages - len(self.swap_map)


# --- counts (mm/swapfile.c) ------------------------------------------------------------------
def __swap_count(machine, offset: int) -> int:
    """mm/swapfile.c __swap_count(): the references (without SWAP_HAS_CACHE), read without
    the cluster lock."""
    sched.point("__swap_count", reads=(_slot(offset),))
    return swap_info(machine).swap_map.get(offset, 0) & ~SWAP_HAS_CACHE


def vm_swap_full(machine) -> bool:
    """include/linux/swap.h vm_swap_full(): more than half of swap is in use (6.18's
    mem_cgroup_swap_full() without memcg)."""
    si = swap_info(machine)
    return si.nr_swap_pages() * 2 < si.pages


def _swap_entries_free(si, offset: int) -> None:
    """swap_entries_free() -> swap_range_free(): the slot is free again."""
    del si.swap_map[offset]
    si.data.pop(offset, None)


def __swap_duplicate(machine, offset: int, usage: int) -> int:
    """mm/swapfile.c __swap_duplicate(entry, usage, 1): add a reference (usage 1) or the
    cache bit (usage SWAP_HAS_CACHE)."""
    sched.point("__swap_duplicate", writes=(_slot(offset),))
    si = swap_info(machine)
    count = si.swap_map.get(offset, 0)
    has_cache = count & SWAP_HAS_CACHE
    count &= ~SWAP_HAS_CACHE
    if usage == SWAP_HAS_CACHE:
        if not count and not has_cache:
            return -ENOENT                 # no users and no cache: the slot is free
        if has_cache:
            return -EEXIST                 # someone else added the cache
        has_cache = SWAP_HAS_CACHE
    else:
        if not count and not has_cache:
            return -ENOENT
        if count >= SWAP_MAP_MAX:
            # Not a kernel bug: add_swap_count_continuation() would take over here.
            raise NotModelled("swap count continuation (more than SWAP_MAP_MAX references "
                              "to one slot)")
        count += usage
    si.swap_map[offset] = count | has_cache
    return 0


def swap_duplicate(machine, offset: int) -> int:
    """mm/swapfile.c swap_duplicate(): one more PTE references the slot (fork, try_to_unmap).
    Returns 0, or -ENOMEM in the kernel only when a continuation page cannot be had (never
    in the model); -ENOENT on a free slot is reported as 0, as the kernel does."""
    err = __swap_duplicate(machine, offset, 1)
    return 0 if err == -ENOENT else err


def swapcache_prepare(machine, offset: int) -> int:
    """mm/swapfile.c swapcache_prepare(entry, 1): claim the slot's cache bit before adding
    (or instead of adding, on the skip-swapcache swap-in) a folio; -EEXIST if taken."""
    return __swap_duplicate(machine, offset, SWAP_HAS_CACHE)


def swap_entries_put_cache(machine, offset: int) -> None:
    """mm/swapfile.c swap_entries_put_cache(): drop the cache bit; a slot nobody else
    references is freed."""
    sched.point("swap_entries_put_cache", writes=(_slot(offset),))
    si = swap_info(machine)
    count = si.swap_map.get(offset, 0)
    if not count & SWAP_HAS_CACHE:
        raise KernelBug(f"swap_entries_put_cache: slot {offset} has no cache bit")
    if count == SWAP_HAS_CACHE:
        _swap_entries_free(si, offset)
    else:
        si.swap_map[offset] = count & ~SWAP_HAS_CACHE


def put_swap_folio(machine, folio: Page, offset: int) -> None:
    """mm/swapfile.c put_swap_folio()."""
    swap_entries_put_cache(machine, offset)


def swapcache_clear(machine, offset: int) -> None:
    """mm/swapfile.c swapcache_clear(): the skip-swapcache swap-in's cache bit goes."""
    swap_entries_put_cache(machine, offset)


def swap_free(machine, offset: int) -> None:
    """include/linux/swap.h swap_free() -> swap_free_nr(entry, 1): one PTE reference less;
    at zero with no cache the slot is freed (no swap-cache reclaim here)."""
    sched.point("swap_free", writes=(_slot(offset),))
    si = swap_info(machine)
    count = si.swap_map.get(offset, 0)
    if not count & ~SWAP_HAS_CACHE:
        raise KernelBug(f"swap_free: slot {offset} has no reference (count {count:#x})")
    count -= 1
    if count == 0:
        _swap_entries_free(si, offset)
    else:
        si.swap_map[offset] = count


def free_swap_and_cache(machine, offset: int) -> None:
    """mm/swapfile.c free_swap_and_cache_nr(entry, 1): a zapped PTE's reference goes; a slot
    left with only its cache has the cached folio reclaimed if nobody maps it and it can be
    locked at once (__try_to_reclaim_swap(TTRS_UNMAPPED | TTRS_FULL))."""
    swap_free(machine, offset)
    si = swap_info(machine)
    sched.point("swap_only_has_cache", reads=(_slot(offset),))
    if si.swap_map.get(offset) != SWAP_HAS_CACHE:
        return
    __try_to_reclaim_swap(machine, offset, full=True)


def __try_to_reclaim_swap(machine, offset: int, full: bool) -> None:
    """mm/swapfile.c __try_to_reclaim_swap(si, offset, TTRS_UNMAPPED [| TTRS_FULL])."""
    from .page import folio_mapped, folio_put, folio_trylock
    folio = swap_cache_get_folio(machine, offset)
    if folio is None:
        return
    if folio_trylock(folio):
        # TTRS_UNMAPPED: nobody maps the folio; TTRS_FULL: swap is more than half used.
        need_reclaim = not folio_mapped(folio) or (full and vm_swap_full(machine))
        if (need_reclaim and folio.flags & PG_swapcache and folio.swap_slot == offset
                and folio_swapcache_freeable(folio)
                and swap_info(machine).swap_map.get(offset) == SWAP_HAS_CACHE):
            swap_cache_del_folio(machine, folio)
            folio_set_dirty(folio)
        folio_unlock(folio)
    folio_put(folio)


def folio_swapcache_freeable(folio: Page) -> bool:
    """mm/swap.h folio_swapcache_freeable(): not under writeback (no hibernation)."""
    return not folio.flags & PG_writeback


def folio_swapped(machine, folio: Page) -> bool:
    """mm/swapfile.c folio_swapped(): does a PTE still reference the folio's slot."""
    return __swap_count(machine, folio.swap_slot) != 0


def folio_free_swap(machine, folio: Page) -> bool:
    """mm/swapfile.c folio_free_swap(): the locked folio leaves the swap cache if nothing
    references its slot any more; its contents now live only in memory (dirty)."""
    if not folio.flags & PG_locked:
        raise KernelBug("VM_BUG_ON_FOLIO(!folio_test_locked(folio))")
    if not folio.flags & PG_swapcache:
        return False
    if not folio_swapcache_freeable(folio):
        return False
    if folio_swapped(machine, folio):
        return False
    swap_cache_del_folio(machine, folio)
    folio_set_dirty(folio)
    return True


def free_swap_cache(machine, folio: Page) -> None:
    """mm/swap_state.c free_swap_cache(): a folio that has just lost a mapping leaves the swap
    cache if nothing maps it any more and its lock can be had at once; the tests before the
    trylock are racy, folio_free_swap() rechecks under the lock (and keeps the folio cached
    while a swap PTE still references its slot)."""
    from .page import folio_mapped, folio_trylock, folio_unlock
    if folio.flags & PG_swapcache and not folio_mapped(folio) and folio_trylock(folio):
        folio_free_swap(machine, folio)
        folio_unlock(folio)


def free_pages_and_swap_cache(machine, pages: list) -> None:
    """mm/swap_state.c free_pages_and_swap_cache(): drop each page from the swap cache where
    it can go (free_swap_cache), then the reference the caller held (folios_put_refs)."""
    from .page import folio_put
    for folio in pages:
        free_swap_cache(machine, folio)
        folio_put(folio)


def folio_alloc_swap(machine, folio: Page) -> int:
    """mm/swapfile.c folio_alloc_swap(): a free slot (the lowest: the model has no
    clusters) with SWAP_HAS_CACHE, and the folio in the swap cache; -ENOMEM when swap is
    full or there is none."""
    si = swap_info(machine)
    sched.point("swap_alloc", reads=(("swap_device",),), writes=(("swap_device",),))
    offset = next((o for o in range(1, si.pages + 1) if o not in si.swap_map), 0)
    if not offset:
        return -ENOMEM
    si.swap_map[offset] = SWAP_HAS_CACHE
    # (mem_cgroup_try_charge_swap: no memcg)
    swap_cache_add_folio(machine, folio, offset)
    return 0


# --- the swap cache (mm/swap_state.c) --------------------------------------------------------
def swap_cache_get_folio(machine, offset: int) -> Optional[Page]:
    """mm/swap_state.c swap_cache_get_folio(): the cached folio with a reference, unlocked,
    or None; the caller rechecks folio_matches_swap_entry() once it holds the lock."""
    sched.point("swap_cache_get_folio", reads=(_slot(offset),))
    folio = swap_info(machine).cache.get(offset)
    if folio is None or not folio_try_get(folio):
        return None
    return folio


def swap_slot_cached(machine, offset: int) -> bool:
    """Model-only: is the slot's SWAP_HAS_CACHE bit set. The kernel's -EEXIST paths sleep a
    tick and retry; the model's wait for this to change stands for those retries."""
    return bool(swap_info(machine).swap_map.get(offset, 0) & SWAP_HAS_CACHE)


def __read_swap_cache_async(machine, offset: int) -> tuple[Optional[Page], bool]:
    """mm/swap_state.c __read_swap_cache_async(): the slot's folio from the swap cache
    (unlocked), or a new one added to it, locked, for the caller to read; (None, False) if
    the slot was freed meanwhile. No memcg charge, no workingset refault."""
    from .filemap import __folio_set_locked, folio_add_lru
    from .page import PG_swapbacked, folio_put
    while True:
        folio = swap_cache_get_folio(machine, offset)
        if folio is not None:
            return folio, False
        # Just skip read ahead for unused swap slot (swap_entry_swapped()).
        if not __swap_count(machine, offset):
            return None, False
        new_folio = machine.zone.alloc_page("anon")
        # Swap entry may have been freed since our caller observed it.
        err = swapcache_prepare(machine, offset)
        if not err:
            break
        folio_put(new_folio)
        if err != -EEXIST:
            return None, False
        # Another path owns the cache bit but has not added its folio yet.
        sched.point("schedule_timeout_uninterruptible(1)", reads=(_slot(offset),),
                    wait=lambda: (not swap_slot_cached(machine, offset)
                                  or offset in swap_info(machine).cache))
    # The swap entry is ours to swap in. Prepare the new folio.
    __folio_set_locked(new_folio)
    new_folio.flags |= PG_swapbacked                     # __folio_set_swapbacked()
    swap_cache_add_folio(machine, new_folio, offset)
    folio_add_lru(new_folio)
    return new_folio, True


def swapin_readahead(machine, offset: int) -> Optional[Page]:
    """mm/swap_state.c swapin_readahead(): the model reads no neighbours (a readahead
    window of one: the faulting slot), so it is read_swap_cache_async() of the slot."""
    folio, page_allocated = __read_swap_cache_async(machine, offset)
    if page_allocated:
        swap_read_folio(machine, folio, offset)
    return folio


def folio_matches_swap_entry(folio: Page, offset: int) -> bool:
    """mm/swap.h folio_matches_swap_entry()."""
    return bool(folio.flags & PG_swapcache) and folio.swap_slot == offset


def swap_cache_add_folio(machine, folio: Page, offset: int) -> None:
    """mm/swap_state.c swap_cache_add_folio(): the caller set SWAP_HAS_CACHE; the cache takes
    a reference."""
    sched.point("swap_cache_add_folio", writes=(_slot(offset), folio.obj))
    folio._refcount += 1                                  # folio_ref_add(folio, nr)
    folio.flags |= PG_swapcache
    folio.swap_slot = offset
    swap_info(machine).cache[offset] = folio


def __swap_cache_del_folio(machine, folio: Page, offset: int) -> None:
    """mm/swap_state.c __swap_cache_del_folio(): out of the cache (no shadow entries in the
    model); the cache bit and the reference stay for the caller."""
    sched.point("__swap_cache_del_folio", writes=(_slot(offset), folio.obj))
    si = swap_info(machine)
    if si.cache.get(offset) is not folio:
        raise KernelBug(f"__swap_cache_del_folio: slot {offset} does not cache pfn {folio.pfn}")
    del si.cache[offset]
    folio.swap_slot = 0
    folio.flags &= ~PG_swapcache


def swap_cache_del_folio(machine, folio: Page) -> None:
    """mm/swap_state.c swap_cache_del_folio(): delete, drop the cache bit and the cache's
    reference."""
    from .page import folio_put
    offset = folio.swap_slot
    __swap_cache_del_folio(machine, folio, offset)
    put_swap_folio(machine, folio, offset)
    folio_put(folio)                                      # folio_ref_sub(folio, nr)


# --- I/O (mm/page_io.c) ----------------------------------------------------------------------
def swap_writeout(machine, folio: Page) -> int:
    """mm/page_io.c swap_writeout() on a SWP_SYNCHRONOUS_IO device: a folio whose slot no
    PTE references any more leaves the swap cache instead; otherwise its contents are written
    (folio_start_writeback, unlock, the write, folio_end_writeback) before it returns. The
    folio is unlocked on return."""
    if folio_free_swap(machine, folio):
        folio_unlock(folio)
        return 0
    # (arch_prepare_to_swap: nothing; zeromap and zswap_store: not modelled)
    sched.point("folio_start_writeback", writes=(folio.obj,))
    folio.flags |= PG_writeback
    folio_unlock(folio)
    offset = folio.swap_slot
    sched.point("swap_writepage_bdev_sync", reads=(folio.obj,), writes=(_slot(offset),))
    swap_info(machine).data[offset] = dict(folio.data or {})
    sched.point("folio_end_writeback", writes=(folio.obj,))
    folio.flags &= ~PG_writeback
    return 0


def swap_read_folio(machine, folio: Page, offset: int) -> None:
    """mm/page_io.c swap_read_folio() on a SWP_SYNCHRONOUS_IO device: fill the locked folio
    from slot *offset*, mark it uptodate and unlock it, all before returning."""
    from .page import PG_uptodate
    sched.point("swap_read_folio_bdev_sync", reads=(_slot(offset),), writes=(folio.obj,))
    si = swap_info(machine)
    if offset not in si.data:
        raise KernelBug(f"swap_read_folio: slot {offset} was never written")
    folio.data = dict(si.data[offset])
    folio.flags |= PG_uptodate
    folio_unlock(folio)


__all__ = ["SWAP_HAS_CACHE", "swap_info_struct", "__swap_count", "vm_swap_full",
           "swap_duplicate", "swapcache_prepare", "put_swap_folio", "swapcache_clear",
           "swap_free", "free_swap_and_cache", "folio_free_swap", "folio_alloc_swap",
           "swap_cache_get_folio", "folio_matches_swap_entry", "swap_cache_add_folio",
           "swap_cache_del_folio", "swap_writeout", "swap_read_folio", "swapin_readahead",
           "swap_slot_cached"]
