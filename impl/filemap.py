"""Files and the page cache: memfd-like shmem files, ``struct address_space``, the folio lock,
and the file side of page faults.

Models include/linux/fs.h (struct address_space, i_mmap, i_mmap_rwsem, i_size_read/write),
include/linux/pagemap.h (folio_lock, folio_trylock, folio_try_get, linear_page_index), the
page-cache and fault parts of mm/filemap.c (filemap_get_entry, filemap_get_folio,
filemap_add_folio, folio_unlock, __folio_lock, filemap_fault, next_uptodate_folio,
filemap_map_order0_folio, filemap_map_pages, filemap_page_mkwrite, generic_perform_write),
and the fault/write parts of mm/shmem.c (shmem_get_folio_gfp, shmem_alloc_and_add_folio,
shmem_add_to_page_cache, shmem_fault, shmem_write_begin/end, shmem_zero_setup).

Simplifications common to the module:
* every folio is order 0 (no THP, no large folios in the page cache), so the large-folio
  branches of filemap_map_pages (filemap_map_folio_range, filemap_map_pmd's do_set_pmd) are
  left out;
* a File is its own inode (``File.size`` is i_size); shmem files (memfd, MAP_SHARED|
  MAP_ANONYMOUS) are the main kind; ``File(shmem=False)`` is a regular disk file whose
  pages are read from ``AddressSpace.disk`` (the on-disk image writeback fills; unwritten
  pages read as zeros), and whose shared writable mappings are write-notified through
  filemap_page_mkwrite;
* no readahead, no mmap_miss accounting, no workingset, no hwpoison, no swap of shmem pages,
  no truncation or hole punch (a page, once in the cache, stays there: page-cache pages
  outlive every unmap), no invalidate_lock (nothing truncates);
* i_size changes only by growing (i_size_write), so i_size_read needs no scheduling point;
* the LRU is a flag: folio_add_lru sets PG_lru at once instead of parking the folio (and a
  reference) in a per-CPU batch;
* the folio lock is PG_locked with the waiter blocked until the bit clears (a sleeping lock:
  taking it under a spinlock is a lock-discipline bug, as might_sleep() says).
"""

from __future__ import annotations

from typing import Optional

from . import sched
from .constants import EFBIG, EINVAL, EEXIST, ENOENT, ENOMEM, PAGE_SHIFT, PAGE_SIZE, ULONG_MAX
from .locks import RwSem
from .page import (PG_dirty, PG_locked, PG_lru, PG_swapbacked, PG_uptodate, Page, folio_lock,
                   folio_put, folio_test_locked, folio_try_get, folio_trylock, folio_unlock)
from .sched import KernelBug

# include/linux/shmem_fs.h enum sgp_type, in its order (SGP_CACHE compares below SGP_WRITE).
SGP_READ, SGP_NOALLOC, SGP_CACHE, SGP_WRITE, SGP_FALLOC = range(5)

# fs/shmem: MAX_LFS_FILESIZE on 64-bit.
MAX_LFS_FILESIZE = (1 << 63) - 1


def DIV_ROUND_UP(n: int, d: int) -> int:
    return (n + d - 1) // d


class AddressSpace:
    """``struct address_space`` of a file: the page cache (``i_pages``: index to Page) and the
    reverse map of the file's shared and private mappings (``i_mmap``: the VMAs, in insertion
    order; the kernel's interval tree answers the same queries)."""

    is_anon = False

    def __init__(self, machine, host: "File"):
        self.id = host.id
        self.host = host
        self.i_pages: dict = {}
        self.i_mmap: list = []
        self.i_mmap_rwsem = RwSem(f"i_mmap_rwsem:file{host.id}")
        # A regular file's on-disk image (index -> the bytes written back), model-only:
        # filemap_fault reads new pages from it, writeback (impl/writeback.py) writes to it.
        self.disk: dict = {}

    @property
    def obj(self) -> tuple:
        return ("i_mmap", self.id)

    @property
    def cache_obj(self) -> tuple:
        return ("page_cache", self.id)

    @property
    def nrpages(self) -> int:
        return len(self.i_pages)

    def __repr__(self) -> str:
        return f"<address_space file{self.id} nrpages={len(self.i_pages)}>"


class File:
    """A file and its inode: a memfd (``shmem=True``, the default: mm/shmem.c) or a regular
    disk file (``shmem=False``: mm/filemap.c's generic_file_vm_ops). ``size`` is i_size."""

    def __init__(self, machine, name: str, size: int, shmem: bool = True):
        self.id = machine.next_id("file")
        self.machine = machine
        self.name = name
        self.size = size
        self.shmem = shmem
        self.f_mapping = AddressSpace(machine, self)

    @property
    def i_mapping(self) -> AddressSpace:
        return self.f_mapping

    def __repr__(self) -> str:
        return f"<file {self.id} {self.name!r} size={self.size}>"


def memfd_create(machine, name: str, size: int = 0) -> File:
    """mm/memfd.c memfd_create() + ftruncate(size): an unlinked shmem file."""
    return File(machine, name, size, shmem=True)


def shmem_zero_setup(vma) -> File:
    """mm/shmem.c shmem_zero_setup(): back a MAP_SHARED|MAP_ANONYMOUS VMA with a new shmem
    file of the VMA's size ("/dev/zero (deleted)"), so that it faults like a memfd mapping.
    Models shmem_zero_setup(); the kernel also sets vma->vm_ops = &shmem_anon_vm_ops, which
    the model derives from vm_file (:func:`vma_vm_ops`)."""
    mm = vma.vm_mm
    file = File(mm.machine, "dev/zero", vma.vm_end - vma.vm_start, shmem=True)
    vma.vm_file = file
    return file


def shmem_mapping(mapping: AddressSpace) -> bool:
    """mm/shmem.c shmem_mapping()."""
    return mapping is not None and mapping.host.shmem


def i_size_read(inode: File) -> int:
    """include/linux/fs.h i_size_read(). No scheduling point: i_size only grows in the model
    (no truncation), so a stale read is harmless."""
    return inode.size


def i_size_write(inode: File, size: int) -> None:
    """include/linux/fs.h i_size_write() (ftruncate growing a memfd, a write past EOF)."""
    if size < inode.size:
        raise NotImplementedError("truncation (shrinking i_size) is not modelled")
    inode.size = size


# --- folio flag tests, reference helpers (include/linux/page-flags.h, page_ref.h) ----------------
def folio_test_uptodate(folio: Page) -> bool:
    return bool(folio.flags & PG_uptodate)


def folio_test_lru(folio: Page) -> bool:
    return bool(folio.flags & PG_lru)


def folio_mark_uptodate(folio: Page) -> None:
    """folio_mark_uptodate() on a folio others can see (in the page cache)."""
    sched.point("folio_mark_uptodate", writes=(folio.obj,))
    folio.flags |= PG_uptodate


def __folio_mark_uptodate(folio: Page) -> None:
    """__folio_mark_uptodate(): the non-atomic form, on a folio only its allocator sees."""
    folio.flags |= PG_uptodate


def folio_ref_add(folio: Page, nr: int) -> None:
    """include/linux/page_ref.h folio_ref_add()."""
    if nr == 0:
        return
    sched.point("folio_ref_add", writes=(folio.obj,))
    folio._refcount += nr


def folio_ref_dec(folio: Page) -> None:
    """include/linux/page_ref.h folio_ref_dec(): drop a reference the caller knows is not the
    last one (a locked page-cache folio cannot be freed)."""
    sched.point("folio_ref_dec", writes=(folio.obj,))
    if folio._refcount <= 1:
        raise KernelBug(f"VM_BUG_ON_FOLIO: folio_ref_dec to zero on pfn {folio.pfn}")
    folio._refcount -= 1


# --- the folio lock (include/linux/pagemap.h, mm/filemap.c) -------------------------------------
def __folio_set_locked(folio: Page) -> None:
    """__folio_set_locked(): lock a folio nobody else can see yet (no wait, no point)."""
    folio.flags |= PG_locked


def folio_mark_dirty(folio: Page) -> bool:
    """mm/page-writeback.c folio_mark_dirty(): set PG_dirty; returns whether it was clean
    (the "dirtied" that fault_dirty_shared_page() throttles on)."""
    sched.point("folio_mark_dirty", writes=(folio.obj,))
    was_clean = not folio.flags & PG_dirty
    folio.flags |= PG_dirty
    return was_clean


def folio_add_lru(folio: Page) -> None:
    """mm/swap.c folio_add_lru(). Simplified: the per-CPU batch is drained at once, so the
    folio is on the LRU (PG_lru) immediately and the batch holds no reference."""
    sched.point("folio_add_lru", writes=(folio.obj,))
    if folio.flags & PG_lru:
        raise KernelBug(f"VM_BUG_ON_FOLIO(folio_test_lru(folio)): pfn {folio.pfn}")
    folio.flags |= PG_lru


# --- the page cache (mm/filemap.c) --------------------------------------------------------------
def filemap_get_entry(mapping: AddressSpace, index: int) -> Optional[Page]:
    """mm/filemap.c filemap_get_entry(): the folio at *index* with a reference, or None.
    (No value entries: shmem pages are never swapped out in the model.)"""
    while True:
        sched.point("filemap_get_entry", reads=(mapping.cache_obj,))
        folio = mapping.i_pages.get(index)
        if folio is None:
            return None
        if not folio_try_get(folio):
            continue                    # freed under us: xas_reset and look again
        if mapping.i_pages.get(index) is not folio:
            folio_put(folio)            # "Has the folio moved or been split?"
            continue
        return folio


def filemap_get_folio(mapping: AddressSpace, index: int) -> Optional[Page]:
    """include/linux/pagemap.h filemap_get_folio() (__filemap_get_folio with no FGP flags):
    the cached folio with a reference, or None (the kernel's ERR_PTR(-ENOENT))."""
    return filemap_get_entry(mapping, index)


def filemap_add_folio(mapping: AddressSpace, folio: Page, index: int) -> int:
    """mm/filemap.c filemap_add_folio() -> __filemap_add_folio(): insert a locked new folio;
    the page cache takes its own reference. Returns 0 or -EEXIST."""
    if not folio.flags & PG_locked:
        raise KernelBug("VM_BUG_ON_FOLIO(!folio_test_locked(folio))")
    sched.point("__filemap_add_folio", reads=(mapping.cache_obj,),
                writes=(mapping.cache_obj, folio.obj))
    if index in mapping.i_pages:
        return -EEXIST
    folio._refcount += 1                # folio_ref_add(folio, nr): the cache's reference
    folio.mapping = mapping
    folio.index = index
    mapping.i_pages[index] = folio
    return 0


# --- shmem (mm/shmem.c) -------------------------------------------------------------------------
def shmem_add_to_page_cache(folio: Page, mapping: AddressSpace, index: int) -> int:
    """mm/shmem.c shmem_add_to_page_cache(): as filemap_add_folio, for a swap-backed folio."""
    return filemap_add_folio(mapping, folio, index)


def shmem_alloc_and_add_folio(vmf, inode: File, index: int, fault_mm):
    """mm/shmem.c shmem_alloc_and_add_folio() for order 0: allocate, lock, mark swap-backed,
    insert into the page cache, put on the LRU. Returns (folio, 0) or (None, -errno); the
    folio comes back locked with the caller's reference (the page cache holds another)."""
    mapping = inode.f_mapping
    folio = inode.machine.zone.alloc_page("file")        # shmem_alloc_folio()
    __folio_set_locked(folio)
    folio.flags |= PG_swapbacked                          # __folio_set_swapbacked()
    error = shmem_add_to_page_cache(folio, mapping, index)
    if error:
        folio.flags &= ~PG_locked                         # unlock: folio_unlock + folio_put
        folio_put(folio)
        return None, error
    # shmem_inode_acct_blocks / shmem_recalc_inode: no quota in the model.
    folio_add_lru(folio)
    return folio, 0


def shmem_get_folio_gfp(inode: File, index: int, write_end: int, sgp: int, vmf=None):
    """mm/shmem.c shmem_get_folio_gfp(): find the folio at *index* in the page cache, or
    allocate and insert a zeroed one. Returns (error, folio); on success the folio is locked
    and carries a reference for the caller. Beyond i_size, SGP_READ/SGP_CACHE fail with
    -EINVAL (which shmem_fault turns into VM_FAULT_SIGBUS).

    Left out: userfaultfd minor/missing faults, swap entries in the page cache (shmem pages
    are never swapped out in the model), huge orders, fallocated-but-not-uptodate folios
    other than the generic "not uptodate: clear it" path."""
    mapping = inode.f_mapping
    if not mapping.host.shmem:
        raise KernelBug("WARN_ON_ONCE(!shmem_mapping(inode->i_mapping))")
    if index > (MAX_LFS_FILESIZE >> PAGE_SHIFT):
        return -EFBIG, None
    while True:                                           # repeat:
        if sgp <= SGP_CACHE and (index << PAGE_SHIFT) >= i_size_read(inode):
            return -EINVAL, None
        alloced = False
        folio = filemap_get_entry(mapping, index)
        # (userfaultfd_minor(vma): not modelled)
        # (xa_is_value(folio): shmem swap entries are not modelled)
        if folio is not None:
            folio_lock(folio)
            if folio.mapping is not mapping:              # truncated under us
                folio_unlock(folio)
                folio_put(folio)
                continue
            if folio_test_uptodate(folio):
                return 0, folio                           # goto out
            if sgp != SGP_READ:
                return _shmem_get_folio_clear(inode, index, folio, sgp, alloced)
            folio_unlock(folio)
            folio_put(folio)
        if sgp == SGP_READ:
            return 0, None
        if sgp == SGP_NOALLOC:
            return -ENOENT, None
        # (userfaultfd_missing(vma): not modelled; shmem_allowable_huge_orders: no THP)
        folio, error = shmem_alloc_and_add_folio(vmf, inode, index,
                                                 vmf.vma.vm_mm if vmf is not None else None)
        if folio is None:
            if error == -EEXIST:
                continue                                  # goto repeat
            return error, None
        alloced = True
        if sgp == SGP_FALLOC:
            sgp = SGP_WRITE
        return _shmem_get_folio_clear(inode, index, folio, sgp, alloced)


def _shmem_get_folio_clear(inode: File, index: int, folio: Page, sgp: int, alloced: bool):
    """The ``clear:`` tail of shmem_get_folio_gfp(): zero and mark uptodate a folio the
    caller will not fill, recheck i_size."""
    if sgp != SGP_WRITE and not folio_test_uptodate(folio):
        sched.point("clear_highpage", writes=(("frame", folio.pfn),))
        folio.data = {}
        folio_mark_uptodate(folio)
    if sgp <= SGP_CACHE and (index << PAGE_SHIFT) >= i_size_read(inode):
        # unlock: (filemap_remove_folio if alloced: no truncation in the model, and i_size
        # never shrinks, so this recheck cannot fail after the first one passed)
        folio_unlock(folio)
        folio_put(folio)
        return -EINVAL, None
    return 0, folio


def shmem_get_folio(inode: File, index: int, write_end: int, sgp: int):
    """mm/shmem.c shmem_get_folio(): returns (error, folio)."""
    return shmem_get_folio_gfp(inode, index, write_end, sgp, None)


def vmf_error(err: int) -> int:
    """include/linux/mm.h vmf_error(): -ENOMEM is VM_FAULT_OOM, anything else SIGBUS."""
    from .fault import VM_FAULT_OOM, VM_FAULT_SIGBUS
    if err == -ENOMEM:
        return VM_FAULT_OOM
    return VM_FAULT_SIGBUS


def shmem_fault(vmf) -> int:
    """mm/shmem.c shmem_fault(): ->fault of a shmem VMA: the page-cache folio for
    vmf->pgoff, allocated on first touch, returned locked with a reference in vmf->page.
    Left out: the hole-punch wait (shmem_falloc_wait: no fallocate in the model)."""
    from .fault import VM_FAULT_LOCKED
    inode = vmf.vma.vm_file
    ret = 0
    if vmf.page is not None:
        raise KernelBug("WARN_ON_ONCE(vmf->page != NULL)")
    err, folio = shmem_get_folio_gfp(inode, vmf.pgoff, 0, SGP_CACHE, vmf)
    if err:
        return vmf_error(err)
    if folio is not None:
        vmf.page = folio
        ret |= VM_FAULT_LOCKED
    return ret


def shmem_write_begin(inode: File, pos: int, length: int):
    """mm/shmem.c shmem_write_begin(): the locked folio a write() fills (SGP_WRITE)."""
    index = pos >> PAGE_SHIFT
    return shmem_get_folio(inode, index, pos + length, SGP_WRITE)


def shmem_write_end(inode: File, pos: int, copied: int, folio: Page) -> int:
    """mm/shmem.c shmem_write_end(): extend i_size, mark the folio uptodate and dirty,
    unlock it and drop the write's reference."""
    if pos + copied > inode.size:
        i_size_write(inode, pos + copied)
    if not folio_test_uptodate(folio):
        folio_mark_uptodate(folio)      # the rest of the folio is already zero in the model
    folio_mark_dirty(folio)
    folio_unlock(folio)
    folio_put(folio)
    return copied


def generic_perform_write(inode: File, pos: int, data: bytes) -> int:
    """mm/filemap.c generic_perform_write() for a shmem file (write(2)/pwrite(2) on a memfd):
    page by page, write_begin, copy into the page-cache folio, write_end. Returns the bytes
    written or a negative errno. (The path write(2) takes to populate the page cache, which
    fault-around then maps.)"""
    if not inode.shmem:
        raise NotImplementedError("write(2) is modelled for shmem files only")
    written = 0
    while written < len(data):
        offset = pos & (PAGE_SIZE - 1)
        chunk = min(PAGE_SIZE - offset, len(data) - written)
        err, folio = shmem_write_begin(inode, pos, chunk)
        if err:
            return written or err
        sched.point("copy_folio_from_iter", writes=(("frame", folio.pfn),))
        if folio.data is None:
            folio.data = {}
        for i in range(chunk):
            folio.data[offset + i] = data[written + i]
        shmem_write_end(inode, pos, chunk, folio)
        pos += chunk
        written += chunk
    return written


# --- regular files (mm/filemap.c generic_file_vm_ops) --------------------------------------------
def filemap_fault(vmf) -> int:
    """mm/filemap.c filemap_fault() for a regular file: the cached folio, or a new one "read"
    from disk (zero-filled, marked uptodate), returned locked with a reference.
    Left out: readahead, mmap_miss, the invalidate_lock (no truncation), dropping mmap_lock
    for I/O (the read completes at once, so VM_FAULT_RETRY never comes from here)."""
    from .fault import VM_FAULT_LOCKED, VM_FAULT_MAJOR, VM_FAULT_OOM, VM_FAULT_SIGBUS
    file = vmf.vma.vm_file
    mapping = file.f_mapping
    inode = mapping.host
    index = vmf.pgoff
    ret = 0
    max_idx = DIV_ROUND_UP(i_size_read(inode), PAGE_SIZE)
    if index >= max_idx:
        return VM_FAULT_SIGBUS
    while True:
        folio = filemap_get_folio(mapping, index)
        if folio is None:
            # No page in the page cache at all: __filemap_get_folio(FGP_CREAT|FGP_FOR_MMAP)
            ret = VM_FAULT_MAJOR
            folio = inode.machine.zone.alloc_page("file")
            __folio_set_locked(folio)
            err = filemap_add_folio(mapping, folio, index)
            if err:
                folio.flags &= ~PG_locked
                folio_put(folio)
                if err == -EEXIST:
                    continue
                return VM_FAULT_OOM
            folio_add_lru(folio)
            filemap_read_folio(file, folio)
        else:
            folio_lock(folio)                   # lock_folio_maybe_drop_mmap()
        if folio.mapping is not mapping:        # truncated: retry_find
            folio_unlock(folio)
            folio_put(folio)
            continue
        break
    max_idx = DIV_ROUND_UP(i_size_read(inode), PAGE_SIZE)
    if index >= max_idx:
        folio_unlock(folio)
        folio_put(folio)
        return VM_FAULT_SIGBUS
    vmf.page = folio
    return ret | VM_FAULT_LOCKED


def filemap_read_folio(file: File, folio: Page) -> None:
    """mm/filemap.c filemap_read_folio(): read a new page-cache folio from the file's
    on-disk image (``mapping.disk``; never-written pages read as zeros) and mark it
    uptodate. The I/O completes at once."""
    saved = file.f_mapping.disk.get(folio.index)
    sched.point("filemap_read_folio", writes=(("frame", folio.pfn), folio.obj))
    folio.data = dict(saved) if saved else {}
    folio.flags |= PG_uptodate


def filemap_page_mkwrite(vmf) -> int:
    """mm/filemap.c filemap_page_mkwrite(): a write-notified shared file page is about to
    become writable: lock it, check it was not truncated, mark it dirty."""
    from .fault import VM_FAULT_LOCKED, VM_FAULT_NOPAGE
    mapping = vmf.vma.vm_file.f_mapping
    folio = vmf.page
    ret = VM_FAULT_LOCKED
    # (sb_start_pagefault / file_update_time: no superblock freeze, no times)
    folio_lock(folio)
    if folio.mapping is not mapping:
        folio_unlock(folio)
        return VM_FAULT_NOPAGE
    folio_mark_dirty(folio)
    # (folio_wait_stable: no writeback in the model)
    return ret


# --- fault-around (mm/filemap.c filemap_map_pages) ----------------------------------------------
class xa_state:
    """``XA_STATE(xas, &mapping->i_pages, start)``: a cursor over the page cache."""

    __slots__ = ("mapping", "xa_index", "started")

    def __init__(self, mapping: AddressSpace, index: int):
        self.mapping = mapping
        self.xa_index = index
        self.started = False


def xas_next_entry(xas: xa_state, max_index: int) -> Optional[Page]:
    """lib/xarray.c xas_next_entry()/xas_find(): the next present entry at an index
    <= max_index, moving the cursor there; None when there is none."""
    sched.point("xas_next_entry", reads=(xas.mapping.cache_obj,))
    lo = xas.xa_index if not xas.started else xas.xa_index + 1
    xas.started = True
    found = [i for i in xas.mapping.i_pages if lo <= i <= max_index]
    if not found:
        xas.xa_index = max_index + 1
        return None
    xas.xa_index = min(found)
    return xas.mapping.i_pages[xas.xa_index]


def next_uptodate_folio(xas: xa_state, mapping: AddressSpace, end_pgoff: int) -> Optional[Page]:
    """mm/filemap.c next_uptodate_folio(): the next cached folio that can be mapped without
    I/O: referenced, not locked by anyone else, uptodate, still in this mapping, below
    i_size; returned locked (trylock) with a reference."""
    folio = xas_next_entry(xas, end_pgoff)
    while folio is not None:
        if folio_try_get(folio):
            if folio_test_locked(folio):
                folio_put(folio)                            # goto skip
            elif mapping.i_pages.get(xas.xa_index) is not folio:   # xas_reload
                folio_put(folio)
            elif not folio_test_uptodate(folio):           # (no readahead flag)
                folio_put(folio)
            elif not folio_trylock(folio):
                folio_put(folio)
            elif folio.mapping is not mapping or not folio_test_uptodate(folio):
                folio_unlock(folio)
                folio_put(folio)
            else:
                max_idx = DIV_ROUND_UP(i_size_read(mapping.host), PAGE_SIZE)
                if xas.xa_index >= max_idx:
                    folio_unlock(folio)
                    folio_put(folio)
                else:
                    return folio
        folio = xas_next_entry(xas, end_pgoff)
    return None


def filemap_map_order0_folio(vmf, folio: Page, addr: int, rss: list) -> int:
    """mm/filemap.c filemap_map_order0_folio(): map one cached folio at *addr* unless its PTE
    is already populated; the folio's reference (from next_uptodate_folio) becomes the
    mapping's. Returns VM_FAULT_NOPAGE when it mapped the faulting address."""
    from .fault import VM_FAULT_NOPAGE, set_pte_range
    from .pgtable import ptep_get
    from .pte import pte_none
    ret = 0
    # (PageHWPoison: not modelled)
    if not pte_none(ptep_get(vmf.pte)):
        folio_ref_dec(folio)            # "Locked folios cannot get truncated."
        return ret
    if vmf.address == addr:
        ret = VM_FAULT_NOPAGE
    set_pte_range(vmf, folio, folio, 1, addr)
    rss[0] += 1
    return ret


def filemap_map_pages(vmf, start_pgoff: int, end_pgoff: int) -> int:
    """mm/filemap.c filemap_map_pages(): ->map_pages, called by do_fault_around(): under one
    PTE lock, map every page of [start_pgoff, end_pgoff] that is already in the page cache,
    uptodate and unlocked, into PTEs that are still none; add them to the mm's file or shmem
    rss in one go. Pages past i_size are not mapped (SIGBUS semantics kept).

    The PTE table is installed (pmd_install of vmf->prealloc_pte, in filemap_map_pmd) only
    once a folio to map was found. No THP: filemap_map_pmd never maps a PMD."""
    from .fault import pmd_install
    from .mm_types import add_mm_counter, mm_counter_file
    from .pgtable import pmdp_get, pte_offset_map_lock, pte_unmap_unlock
    vma = vmf.vma
    file = vma.vm_file
    mapping = file.f_mapping
    last_pgoff = start_pgoff
    ret = 0
    rss = [0]
    # pgoff_t arithmetic: an empty file gives file_end = ULONG_MAX, as in C.
    file_end = (DIV_ROUND_UP(i_size_read(mapping.host), PAGE_SIZE) - 1) & ULONG_MAX
    end_pgoff = min(end_pgoff, file_end)

    xas = xa_state(mapping, start_pgoff)
    folio = next_uptodate_folio(xas, mapping, end_pgoff)
    if folio is None:
        return ret
    # filemap_map_pmd(): no huge PMD to map; install the preallocated table if still none.
    if pmdp_get(vmf.pmd) is None and vmf.prealloc_pte is not None:
        vmf.prealloc_pte = pmd_install(vma.vm_mm, vmf.pmd, vmf.prealloc_pte)

    addr = vma.vm_start + ((start_pgoff - vma.vm_pgoff) << PAGE_SHIFT)
    vmf.pte, vmf.ptl = pte_offset_map_lock(vma.vm_mm, vmf.pmd, addr)
    if vmf.pte is None:
        folio_unlock(folio)
        folio_put(folio)
        return ret

    folio_type = mm_counter_file(folio)
    while True:
        addr += (xas.xa_index - last_pgoff) << PAGE_SHIFT
        vmf.pte = vmf.pte + (xas.xa_index - last_pgoff)
        last_pgoff = xas.xa_index
        # (folio_test_large: never; filemap_map_folio_range is not needed)
        map_ret = filemap_map_order0_folio(vmf, folio, addr, rss)
        ret |= map_ret
        # (mmap_miss accounting: no readahead in the model)
        folio_unlock(folio)
        folio = next_uptodate_folio(xas, mapping, end_pgoff)
        if folio is None:
            break
    add_mm_counter(vma.vm_mm, folio_type, rss[0])
    pte_unmap_unlock(vmf.pte, vmf.ptl)
    return ret


# --- vm_operations_struct ------------------------------------------------------------------------
class vm_operations_struct:
    """``struct vm_operations_struct``: the callbacks the fault path uses."""

    __slots__ = ("name", "fault", "map_pages", "page_mkwrite")

    def __init__(self, name, fault=None, map_pages=None, page_mkwrite=None):
        self.name = name
        self.fault = fault
        self.map_pages = map_pages
        self.page_mkwrite = page_mkwrite

    def __repr__(self) -> str:
        return self.name


#: mm/shmem.c shmem_anon_vm_ops (memfd and MAP_SHARED|MAP_ANONYMOUS files are unlinked, so
#: shmem_mmap_prepare() picks the anon ops; the fault-relevant callbacks equal shmem_vm_ops').
shmem_vm_ops = vm_operations_struct("shmem_vm_ops", fault=shmem_fault,
                                    map_pages=filemap_map_pages)
#: mm/filemap.c generic_file_vm_ops.
generic_file_vm_ops = vm_operations_struct("generic_file_vm_ops", fault=filemap_fault,
                                           map_pages=filemap_map_pages,
                                           page_mkwrite=filemap_page_mkwrite)


def vma_vm_ops(vma) -> Optional[vm_operations_struct]:
    """``vma->vm_ops``: set by the file's ->mmap (shmem_mmap_prepare / generic_file_mmap); the
    model's vm_area_struct has no vm_ops field, so it is derived from vm_file. Anonymous
    VMAs have none (vma_is_anonymous)."""
    file = vma.vm_file
    if file is None:
        return None
    return shmem_vm_ops if file.shmem else generic_file_vm_ops


def mapping_can_writeback(mapping: AddressSpace) -> bool:
    """include/linux/backing-dev.h mapping_can_writeback(): shmem's backing device has no
    BDI_CAP_WRITEBACK, a disk file's has."""
    return not mapping.host.shmem


def cache_page(file: File, index: int) -> Optional[Page]:
    """The folio at *index* of *file*'s page cache, or None (for views and tests: no
    reference, no scheduling point)."""
    return file.f_mapping.i_pages.get(index)
