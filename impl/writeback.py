"""Writeback: the flusher writing a dirty page-cache folio to disk.

Models mm/page-writeback.c (folio_clear_dirty_for_io, folio_prepare_writeback,
writeback_iter's per-folio steps, __folio_start_writeback, mapping_can_writeback via
include/linux/backing-dev.h), folio_end_writeback / folio_wait_writeback of mm/filemap.c, and
a filesystem's ->writepages (fs/mpage.c, fs/buffer.c block_write_full_folio) in the smallest
form that shows lost writes: the folio's contents are copied to the file's on-disk image,
``mapping.disk[index]`` (filemap.py's AddressSpace; filemap_read_folio reads it back), at
the moment the I/O reads the page.

The race this actor exists for (fixed by 1cf35d47712d and 5df397dec7c4): folio_clear_dirty_for_io()
calls folio_mkclean(), which write-protects and cleans every shared PTE (flushing the TLBs),
and only then clears PG_dirty. If a zap has already removed the folio's rmap but not yet
flushed a writable, dirty TLB entry, folio_mkclean() sees an unmapped folio and returns at
once; the user keeps writing through the stale entry into a folio the kernel now believes
clean, and what reaches the disk misses those writes.

Simplifications: one folio at a time, chosen by the caller (no dirty tags, no inode lists,
no writeback_control ranges or sync modes beyond WB_SYNC_NONE's skip of folios already
under writeback); I/O completes in the same actor right after submission; no buffer heads,
no memcg/bdi statistics. The flusher writes back only files whose backing device accounts
dirty pages: a shmem file (the model's memfd, ``File.shmem``) has none and is skipped, as the
kernel's flusher never writes shmem (it is swapped out by reclaim instead).
"""

from __future__ import annotations

from . import sched
from .filemap import filemap_get_folio, mapping_can_writeback
from .page import (PG_locked, PG_writeback, Page, folio_clear_dirty, folio_clear_flag, folio_lock,
                   folio_put, folio_set_dirty, folio_set_flag, folio_test_dirty, folio_unlock)
from .rmap import folio_mapping, folio_mkclean
from .sched import KernelBug

WB_SYNC_NONE = 0
WB_SYNC_ALL = 1


class writeback_control:
    """``struct writeback_control``, the fields the model uses."""

    def __init__(self, sync_mode: int = WB_SYNC_NONE):
        self.sync_mode = sync_mode
        self.nr_written = 0


# --- PG_writeback (mm/page-writeback.c, mm/filemap.c) -----------------------------------------
def folio_test_writeback(folio: Page) -> bool:
    sched.point("folio_test_writeback", reads=(folio.obj,))
    return bool(folio.flags & PG_writeback)


def __folio_start_writeback(folio: Page, keep_write: bool = False) -> None:
    """mm/page-writeback.c __folio_start_writeback(): set PG_writeback (the dirty and
    writeback tags of the page cache are not modelled)."""
    if folio.flags & PG_writeback:
        raise KernelBug(f"VM_BUG_ON_FOLIO(folio_test_writeback): pfn {folio.pfn}")
    folio_set_flag(folio, PG_writeback)


def folio_start_writeback(folio: Page) -> None:
    __folio_start_writeback(folio, False)


def folio_end_writeback(folio: Page) -> None:
    """mm/filemap.c folio_end_writeback(): clear PG_writeback and wake waiters."""
    folio_clear_flag(folio, PG_writeback)


def folio_wait_writeback(folio: Page) -> None:
    """mm/page-writeback.c folio_wait_writeback(): sleep until PG_writeback is clear."""
    from .locks import might_sleep
    might_sleep("folio_wait_writeback")
    sched.point("folio_wait_writeback", reads=(folio.obj,),
                wait=lambda: not folio.flags & PG_writeback)


# --- the clean-for-I/O step -----------------------------------------------------------------------
def folio_clear_dirty_for_io(folio: Page) -> bool:
    """Clear a folio's dirty state before writing it out; returns whether it was dirty.

    Models mm/page-writeback.c folio_clear_dirty_for_io(): first folio_mkclean() (write-
    protect and clean every shared PTE, flushing the TLBs; a PTE found dirty re-dirties the
    folio, so the data it wrote is written now), then test-and-clear PG_dirty. The caller
    holds the folio lock. The bdi_writeback statistics and the inode-wb cookie are not
    modelled."""
    mapping = folio_mapping(folio)
    if not folio.flags & PG_locked:
        raise KernelBug(f"VM_BUG_ON_FOLIO(!folio_test_locked): pfn {folio.pfn}")
    if mapping is not None and mapping_can_writeback(mapping):
        # Clean the PTEs first: anything written through them from now on faults and
        # re-dirties the folio, so this writeback or the next one carries it.
        if folio_mkclean(folio):
            folio_set_dirty(folio)          # folio_mark_dirty()
        # unlocked_inode_to_wb_begin(): not modelled.
        ret = False
        if folio_clear_dirty(folio):        # folio_test_clear_dirty()
            # NR_FILE_DIRTY / NR_ZONE_WRITE_PENDING / WB_RECLAIMABLE: not modelled.
            ret = True
        return ret
    return folio_clear_dirty(folio)


def folio_prepare_writeback(mapping, wbc: writeback_control, folio: Page) -> bool:
    """mm/page-writeback.c folio_prepare_writeback(): with the folio locked, check that it
    is still this file's, still dirty and not already under writeback; then clear it for
    I/O."""
    # The folio may have been truncated or invalidated.
    sched.point("READ folio->mapping", reads=(folio.obj,))
    if folio.mapping is not mapping:
        return False
    # Someone else may already have written it back.
    if not folio_test_dirty(folio):
        return False
    if folio_test_writeback(folio):
        if wbc.sync_mode == WB_SYNC_NONE:
            return False
        folio_wait_writeback(folio)
    if folio.flags & PG_writeback:
        raise KernelBug(f"BUG_ON(folio_test_writeback): pfn {folio.pfn}")
    if not folio_clear_dirty_for_io(folio):
        return False
    return True


def submit_folio_write(mapping, folio: Page) -> None:
    """The I/O itself (->writepages: block_write_full_folio -> submit_bh, or mpage's bio):
    the device reads the folio's contents into the file's on-disk image."""
    sched.point("submit_bio(WRITE)", reads=(("frame", folio.pfn), folio.obj),
                writes=(("disk", mapping.id),))
    mapping.disk[folio.index] = dict(folio.data) if folio.data is not None else None


def writeback_folio_actor(machine, file, index: int) -> int:
    """The flusher thread writing back page *index* of *file*: returns 1 if it wrote the
    folio, 0 if there was nothing to write.

    Models the per-folio path of wb_workfn -> ... -> do_writepages -> ->writepages ->
    writeback_iter(): writeback_get_folio() finds the folio (with a reference) and locks it,
    folio_prepare_writeback() checks and clears it for I/O (folio_clear_dirty_for_io ->
    folio_mkclean), the filesystem starts writeback, unlocks the folio and submits the bio;
    the I/O completes (folio_end_writeback) and the reference is dropped.

    Simplification: the caller names the folio instead of the flusher finding it by the
    page cache's dirty tag."""
    mapping = file.f_mapping
    if not mapping_can_writeback(mapping):
        # The flusher never writes shmem pages (noop_backing_dev_info).
        return 0
    wbc = writeback_control(WB_SYNC_NONE)
    # writeback_get_folio(): filemap_get_folios_tag(PAGECACHE_TAG_DIRTY) takes a reference.
    folio = filemap_get_folio(mapping, index)
    if folio is None:
        return 0
    folio_lock(folio)
    if not folio_prepare_writeback(mapping, wbc, folio):
        folio_unlock(folio)
        folio_put(folio)
        return 0
    # ->writepages for the folio (block_write_full_folio shape): start writeback, unlock,
    # submit. The folio may be dirtied again once it is unlocked.
    folio_start_writeback(folio)
    folio_unlock(folio)
    submit_folio_write(mapping, folio)
    wbc.nr_written += 1
    # I/O completion.
    folio_end_writeback(folio)
    folio_put(folio)
    return 1
