"""Physical frames, ``struct page``, and the page allocator.

Models include/linux/mm_types.h (struct page / struct folio), include/linux/page-flags.h,
include/linux/page_ref.h, include/linux/mm.h (folio_get, folio_put, page_mapcount) and the
buddy allocator's entry points in mm/page_alloc.c (alloc_pages, free_unref_page).

Simplifications, stated once here:
* every folio is order 0 (THP is off), so a folio and its page are one record;
* the allocator is a single zone with a LIFO free list; a frame that is freed and reallocated
  gets a new *generation*, so that a TLB or walk-cache entry made before the free can be told
  from one made after (the invariants compare generations, the hardware does not);
* a freed frame is poisoned: its contents read back as POISON_FREE, as with page poisoning;
* page contents are sparse: a dict of byte offset to value, absent bytes read as zero.
"""

from __future__ import annotations

from typing import Any, Optional

from . import sched
from .constants import POISON_FREE
from .sched import KernelBug, model_only

# include/linux/page-flags.h, the bits the model uses.
PG_locked = 1 << 0
PG_referenced = 1 << 2
PG_uptodate = 1 << 3
PG_dirty = 1 << 4
PG_lru = 1 << 5
PG_active = 1 << 7
PG_swapcache = 1 << 8            # PG_owner_priv_1, which means this on swap-backed folios
PG_reserved = 1 << 10
PG_writeback = 1 << 13
PG_anon_exclusive = 1 << 16      # PG_mappedtodisk, which means this on anonymous pages
PG_swapbacked = 1 << 19
PG_unevictable = 1 << 20
PG_mlocked = 1 << 21

PAGE_FLAG_NAMES = (
    (PG_locked, "locked"), (PG_referenced, "referenced"), (PG_uptodate, "uptodate"),
    (PG_dirty, "dirty"), (PG_lru, "lru"), (PG_active, "active"), (PG_swapcache, "swapcache"),
    (PG_reserved, "reserved"),
    (PG_writeback, "writeback"), (PG_anon_exclusive, "anon_exclusive"),
    (PG_swapbacked, "swapbacked"),
    (PG_unevictable, "unevictable"), (PG_mlocked, "mlocked"),
)

POISONED = None  # Page.data of a freed frame


class Page:
    """``struct page`` of an order-0 folio.

    ``_mapcount`` is stored as the kernel stores it, starting at -1; :func:`page_mapcount`
    adds one. ``mapping`` is an ``AnonVma`` for anonymous pages (PageAnon), an
    ``AddressSpace`` for page-cache pages, None otherwise. Page-table pages carry their
    entries in ``table`` (index to entry), their ``level`` (1 = PTE ... 4 = PGD) and, for PTE
    tables, the split page-table lock ``ptl`` (USE_SPLIT_PTE_PTLOCKS).
    """

    __slots__ = ("pfn", "zone", "_refcount", "_mapcount", "flags", "mapping", "index", "data",
                 "gen", "table", "level", "ptl", "free", "kind", "swap_slot", "obj")

    def __init__(self, pfn: int, zone: "Zone"):
        self.pfn = pfn
        # The object name scheduling points use for this struct page (the pfn never changes,
        # so the tuple is made once, not at every access).
        self.obj: tuple = ("page", pfn)
        self.zone = zone
        self._refcount = 0
        self._mapcount = -1
        self.flags = 0
        self.mapping: Any = None
        self.index = 0
        self.data: Optional[dict] = POISONED
        self.gen = 0
        self.table: Optional[dict] = None
        self.level = 0
        self.ptl: Any = None
        self.free = True
        self.kind = "free"
        self.swap_slot = 0

    def __repr__(self) -> str:
        return f"<page pfn={self.pfn} {self.kind} ref={self._refcount} map={self._mapcount + 1}>"

    # --- contents ------------------------------------------------------------------------
    def read_byte(self, offset: int) -> int:
        if self.data is POISONED:
            return POISON_FREE
        return self.data.get(offset, 0)

    def write_byte(self, offset: int, value: int) -> None:
        if self.data is POISONED:
            # A write to a freed frame through a stale translation: the poison is overwritten
            # in the real machine, which the invariants report as a use-after-free.
            self.data = {}
        self.data[offset] = value

    def copy_data_from(self, src: "Page") -> None:
        """copy_user_highpage(): the COW copy of a frame's contents."""
        self.data = dict(src.data) if src.data is not POISONED else {}


def page_mapcount(page: Page) -> int:
    """include/linux/mm.h page_mapcount(): the stored _mapcount plus one."""
    return page._mapcount + 1


@model_only
def page_ref_count(page: Page) -> int:
    """include/linux/page_ref.h page_ref_count(), for the tests: no modelled path calls it
    (they read folio->_refcount where the kernel does, with its scheduling point)."""
    return page._refcount


def folio_test_anon(page: Page) -> bool:
    """include/linux/page-flags.h folio_test_anon() (PAGE_MAPPING_ANON in ->mapping)."""
    return page.mapping is not None and page.mapping.is_anon


def folio_test_swapbacked(page: Page) -> bool:
    return bool(page.flags & PG_swapbacked)


def folio_test_swapcache(page: Page) -> bool:
    """include/linux/page-flags.h folio_test_swapcache(): swap-backed and in the swap cache."""
    return bool(page.flags & PG_swapbacked) and bool(page.flags & PG_swapcache)


def folio_test_dirty(page: Page) -> bool:
    return bool(page.flags & PG_dirty)


def folio_test_mlocked(page: Page) -> bool:
    return bool(page.flags & PG_mlocked)


def folio_mapped(page: Page) -> bool:
    """include/linux/mm.h folio_mapped(): is any PTE (still counted in rmap) mapping it."""
    sched.point("folio_mapped", reads=(page.obj,))
    return page._mapcount >= 0


class Zone:
    """The page allocator (mm/page_alloc.c) over a growable array of frames (mem_map).

    Frame 0 is the shared zero page (ZERO_PAGE(0)): reserved, never freed, never counted in
    rss or mapcount (vm_normal_page() returns NULL for it).
    """

    def __init__(self) -> None:
        self.mem_map: list[Page] = []
        self.free_list: list[int] = []
        # ("tlb", cpu) objects, set by the Machine: see free_unref_page().
        self.tlb_objs: tuple = ()
        self.generation = 0
        zero = self._new_frame()
        zero.free = False
        zero.kind = "zero"
        zero.flags = PG_reserved
        zero._refcount = 1
        zero.data = {}
        self.zero_page = zero

    def _new_frame(self) -> Page:
        page = Page(len(self.mem_map), self)
        self.mem_map.append(page)
        return page

    def pfn_to_page(self, pfn: int) -> Page:
        return self.mem_map[pfn]

    def alloc_page(self, kind: str) -> Page:
        """alloc_pages(GFP_*, 0): a zeroed frame with refcount 1 (and a new generation)."""
        sched.point("alloc_pages", writes=(("zone",),))
        if self.free_list:
            page = self.mem_map[self.free_list.pop()]
        else:
            page = self._new_frame()
        self.generation += 1
        page.gen = self.generation
        page.free = False
        page.kind = kind
        page._refcount = 1
        page._mapcount = -1
        page.flags = 0
        page.mapping = None
        page.index = 0
        page.data = {}
        page.table = None
        page.level = 0
        page.ptl = None
        page.swap_slot = 0
        return page

    def free_unref_page(self, page: Page) -> None:
        """free_unref_page() / free_frozen_pages(): the frame goes back, poisoned.

        The step also *reads* every CPU's TLB: not because the kernel does, but because the
        invariant "no TLB entry reaches a freed frame" relates the two, and a step that can
        falsify an invariant over several objects must be dependent on all of them for the
        partial-order reduction to preserve it (the visibility condition)."""
        sched.point("free_unref_page", reads=self.tlb_objs, writes=(page.obj, ("zone",)))
        if page.free:
            raise KernelBug(f"BUG: Bad page state: double free of pfn {page.pfn}")
        if page._mapcount != -1:
            raise KernelBug(f"BUG: Bad page state in process: pfn {page.pfn} "
                            f"mapcount:{page_mapcount(page)} freed while mapped")
        page.free = True
        page.kind = "free"
        page.data = POISONED
        page.table = None
        page.mapping = None
        page.flags = 0
        self.free_list.append(page.pfn)

    def nr_allocated(self) -> int:
        return sum(1 for p in self.mem_map if not p.free)


def folio_get(page: Page) -> None:
    """include/linux/mm.h folio_get(): take a reference."""
    sched.point("folio_get", adds=(page.obj,))
    if page._refcount <= 0:
        raise KernelBug(f"VM_BUG_ON_FOLIO: folio_get on pfn {page.pfn} with refcount "
                        f"{page._refcount}")
    page._refcount += 1


def folio_put(page: Page) -> None:
    """include/linux/mm.h folio_put(): drop a reference; the last one frees the frame."""
    if page.pfn == 0:
        return
    sched.point("folio_put", writes=(page.obj,))
    if page._refcount <= 0:
        raise KernelBug(f"VM_BUG_ON_FOLIO: refcount underflow on pfn {page.pfn}")
    page._refcount -= 1
    if page._refcount == 0:
        __folio_put(page)


def __folio_put(page: Page) -> None:
    """mm/swap.c __folio_put(): the page leaves the page cache/LRU and is freed."""
    page.zone.free_unref_page(page)


def folio_set_dirty(page: Page) -> None:
    """folio_mark_dirty() / set_page_dirty(): PG_dirty set (for page-cache pages this is what
    writeback looks at)."""
    sched.point("folio_mark_dirty", writes=(page.obj,))
    page.flags |= PG_dirty


def folio_clear_dirty(page: Page) -> bool:
    """folio_test_clear_dirty(): returns whether it was dirty. Reads every TLB for the same
    reason as free_unref_page(): the lost-write invariant relates PG_dirty and the TLBs."""
    sched.point("folio_test_clear_dirty", reads=page.zone.tlb_objs, writes=(page.obj,))
    was = bool(page.flags & PG_dirty)
    page.flags &= ~PG_dirty
    return was


def folio_set_flag(page: Page, flag: int) -> None:
    sched.point("folio_set_flag", writes=(page.obj,))
    page.flags |= flag


def folio_clear_flag(page: Page, flag: int) -> None:
    sched.point("folio_clear_flag", writes=(page.obj,))
    page.flags &= ~flag


@model_only
def page_flag_names(page: Page) -> list[str]:
    return [name for bit, name in PAGE_FLAG_NAMES if page.flags & bit]


# --- folio lock and reference helpers (include/linux/pagemap.h, include/linux/page_ref.h) ------
def folio_test_locked(page: Page) -> bool:
    """folio_test_locked(): is PG_locked set."""
    sched.point("folio_test_locked", reads=(page.obj,))
    return bool(page.flags & PG_locked)


def folio_trylock(page: Page) -> bool:
    """include/linux/pagemap.h folio_trylock(): test-and-set PG_locked."""
    sched.point("folio_trylock", writes=(page.obj,))
    if page.flags & PG_locked:
        return False
    page.flags |= PG_locked
    return True


def folio_lock(page: Page) -> None:
    """include/linux/pagemap.h folio_lock() -> __folio_lock(): sleep until PG_locked can be
    taken. A sleeping lock: taking it under a spinlock is a bug."""
    from .locks import might_sleep
    might_sleep(f"folio_lock(pfn {page.pfn})")
    sched.point("folio_lock", writes=(page.obj,), wait=lambda: not page.flags & PG_locked)
    page.flags |= PG_locked


def folio_unlock(page: Page) -> None:
    """mm/filemap.c folio_unlock(): clear PG_locked and wake waiters."""
    sched.point("folio_unlock", writes=(page.obj,))
    if not page.flags & PG_locked:
        raise KernelBug(f"VM_BUG_ON_FOLIO(!folio_test_locked): folio_unlock of pfn {page.pfn}")
    page.flags &= ~PG_locked


def folio_try_get(page: Page) -> bool:
    """include/linux/page_ref.h folio_try_get(): take a reference unless the count is zero
    (the folio is free or frozen)."""
    sched.point("folio_try_get", writes=(page.obj,))
    if page._refcount <= 0:
        return False
    page._refcount += 1
    return True


def folio_ref_count(page: Page) -> int:
    """include/linux/page_ref.h folio_ref_count()."""
    sched.point("folio_ref_count", reads=(page.obj,))
    return page._refcount

