"""Files and the page cache: memfd-like shmem files, ``struct address_space``, the folio lock,
and the file side of page faults.

Models include/linux/fs.h (struct address_space, i_mmap, i_mmap_rwsem, i_size_read/write),
include/linux/pagemap.h (folio_lock, folio_trylock, folio_try_get, linear_page_index), the
page-cache and fault parts of mm/filemap.c (filemap_get_entry, filemap_get_folio,
filemap_add_folio, folio_unlock, __folio_lock, filemap_fault, next_uptodate_folio,
filemap_map_order0_folio, filemap_map_pages, filemap_page_mkwrite, generic_perform_write),
the fault/write parts of mm/shmem.c (shmem_get_folio_gfp, shmem_alloc_and_add_folio,
shmem_add_to_page_cache, shmem_fault, shmem_write_begin/end, shmem_zero_setup), and the hole
punch: fs/open.c vfs_fallocate, mm/shmem.c shmem_fallocate (FALLOC_FL_PUNCH_HOLE),
shmem_truncate_range, shmem_undo_range, shmem_get_partial_folio, mm/truncate.c
truncate_inode_folio, truncate_cleanup_folio, truncate_inode_partial_folio, and mm/filemap.c
find_get_entry, find_get_entries, find_lock_entries, filemap_remove_folio,
__filemap_remove_folio, page_cache_delete, filemap_free_folio.

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
  no truncation (i_size never shrinks); a page-cache page outlives every unmap and leaves the
  cache only by a hole punch (MADV_REMOVE -> vfs_fallocate(FALLOC_FL_PUNCH_HOLE) on shmem);
  no invalidate_lock, no seals, no shmem block accounting (shmem_recalc_inode), no
  shmem_falloc wait (a fault racing with a hole punch just refills the page, which the
  kernel allows too: the wait only avoids a livelock);
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
from .word import MASK64
from .sched import KernelBug, NotModelled, model_only

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
        # inode->i_rwsem (inode_lock): serialises fallocate with other writers of the file.
        self.i_rwsem = RwSem(f"i_rwsem:file{self.id}")
        machine.files.append(self)

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
        raise NotModelled("truncation (shrinking i_size) is not modelled")
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
    Left out: the hole-punch wait (shmem_falloc_wait): a fault racing with a hole punch
    refills the page at once (see the module doc)."""
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
        raise NotModelled("write(2) is modelled for shmem files only")
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


def shmem_file_write_iter(inode: File, pos: int, data: bytes) -> int:
    """mm/shmem.c shmem_file_write_iter() for a pwrite(2) of *data* at *pos*: under
    inode_lock, generic_perform_write(). Returns the bytes written or a negative errno.
    (generic_write_checks' rlimit and O_APPEND, file_remove_privs, file_update_time and
    the seals of a sealed memfd are left out: the model's memfds are writable and unsealed.)"""
    inode_lock(inode)
    ret = generic_perform_write(inode, pos, data)
    inode_unlock(inode)
    return ret


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
    # (folio_wait_stable: no backing device of the model needs stable pages, so it never
    # waits)
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
    from .pgtable import pmd_install
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


# --- truncation and hole punch (mm/filemap.c, mm/truncate.c, mm/shmem.c, fs/open.c) -------------
FALLOC_FL_KEEP_SIZE = 0x01
FALLOC_FL_PUNCH_HOLE = 0x02
EOPNOTSUPP = 95


def inode_lock(inode: File) -> None:
    """include/linux/fs.h inode_lock(): down_write(&inode->i_rwsem)."""
    from .locks import down_write
    down_write(inode.i_rwsem)


def inode_unlock(inode: File) -> None:
    """include/linux/fs.h inode_unlock()."""
    from .locks import up_write
    up_write(inode.i_rwsem)


def find_get_entry(xas: xa_state, max_index: int) -> Optional[Page]:
    """mm/filemap.c find_get_entry(): the next folio at an index <= max_index with a
    reference, the cursor on it (retrying a folio freed or moved under us); None at the end.
    (No value entries: shmem pages are never swapped out in the model.)"""
    while True:
        folio = xas_next_entry(xas, max_index)
        if folio is None:
            return None
        if not folio_try_get(folio):
            xas.xa_index -= 1                     # xas_reset: look at this index again
            continue
        sched.point("xas_reload", reads=(xas.mapping.cache_obj,))
        if xas.mapping.i_pages.get(xas.xa_index) is not folio:
            folio_put(folio)
            xas.xa_index -= 1
            continue
        return folio


def find_get_entries(mapping: AddressSpace, start: list, end: int, fbatch: list,
                     indices: list) -> int:
    """mm/filemap.c find_get_entries(): the folios of [start[0], end] with a reference each
    (``start`` is a one-element list standing for ``pgoff_t *start``, moved past the last
    one). One batch holds every entry (the kernel's holds PAGEVEC_SIZE)."""
    xas = xa_state(mapping, start[0])
    while True:
        folio = find_get_entry(xas, end)
        if folio is None:
            break
        indices.append(xas.xa_index)
        fbatch.append(folio)
    if fbatch:
        start[0] = indices[-1] + 1                # order 0: round_down(index + 1, 1)
    return len(fbatch)


def find_lock_entries(mapping: AddressSpace, start: list, end: int, fbatch: list,
                      indices: list) -> int:
    """mm/filemap.c find_lock_entries(): the folios of [start[0], end] that could be locked
    without waiting, locked and with a reference each; a folio that is locked by someone
    else or left the mapping is skipped (order 0: never straddles the range). One batch."""
    xas = xa_state(mapping, start[0])
    while True:
        folio = find_get_entry(xas, end)
        if folio is None:
            break
        # (large folios beginning before start or extending beyond end: order 0 only)
        if not folio_trylock(folio):
            folio_put(folio)                      # goto put
            continue
        if folio.mapping is not mapping:          # (folio_test_writeback: no writeback here)
            folio_unlock(folio)                   # goto unlock
            folio_put(folio)
            continue
        indices.append(xas.xa_index)
        fbatch.append(folio)
    if fbatch:
        start[0] = indices[-1] + 1
    return len(fbatch)


def folio_batch_release(fbatch: list) -> None:
    """include/linux/pagevec.h folio_batch_release(): drop the batch's references."""
    for folio in fbatch:
        folio_put(folio)
    fbatch.clear()


def page_cache_delete(mapping: AddressSpace, folio: Page) -> None:
    """mm/filemap.c page_cache_delete(): clear the folio's slot in i_pages (no shadow entry:
    no workingset) and its ->mapping, under the i_pages lock (one step)."""
    sched.point("page_cache_delete", reads=(mapping.cache_obj,),
                writes=(mapping.cache_obj, folio.obj))
    if mapping.i_pages.get(folio.index) is not folio:
        raise KernelBug(f"VM_BUG_ON_FOLIO: page_cache_delete of pfn {folio.pfn}: not at index "
                        f"{folio.index}")
    del mapping.i_pages[folio.index]
    folio.mapping = None


def __filemap_remove_folio(folio: Page) -> None:
    """mm/filemap.c __filemap_remove_folio(): unaccount and delete from the page cache.
    (filemap_unaccount_folio's "BUG: Bad page cache" check of a still-mapped folio is a
    printk in the kernel: the model's check_mm/mapcount invariants see such a folio.)"""
    mapping = folio.mapping
    page_cache_delete(mapping, folio)


def filemap_free_folio(mapping: AddressSpace, folio: Page) -> None:
    """mm/filemap.c filemap_free_folio(): drop the page cache's reference (shmem has no
    ->free_folio)."""
    folio_put(folio)                              # folio_put_refs(folio, folio_nr_pages())


def filemap_remove_folio(folio: Page) -> None:
    """mm/filemap.c filemap_remove_folio(): remove a locked folio from the page cache and drop
    the cache's reference. (The inode LRU, inode_add_lru, is not modelled.)"""
    mapping = folio.mapping
    if not folio.flags & PG_locked:
        raise KernelBug("BUG_ON(!folio_test_locked(folio))")
    __filemap_remove_folio(folio)
    filemap_free_folio(mapping, folio)


def folio_cancel_dirty(folio: Page) -> None:
    """include/linux/pagemap.h folio_cancel_dirty(): the folio is going away, its dirt with
    it (no dirty accounting in the model)."""
    from .page import folio_clear_dirty
    if folio.flags & PG_dirty:
        folio_clear_dirty(folio)


def truncate_cleanup_folio(folio: Page) -> None:
    """mm/truncate.c truncate_cleanup_folio(): unmap a folio that is (still, or again)
    mapped, then cancel its dirty state. (No private data: folio_invalidate is never
    needed.)"""
    from .page import folio_mapped
    from .zap import unmap_mapping_folio
    if folio_mapped(folio):
        unmap_mapping_folio(folio)
    folio_cancel_dirty(folio)


def truncate_inode_folio(mapping: AddressSpace, folio: Page) -> int:
    """mm/truncate.c truncate_inode_folio(): a locked folio leaves the page cache."""
    from .constants import EIO
    if folio.mapping is not mapping:
        return -EIO
    truncate_cleanup_folio(folio)
    filemap_remove_folio(folio)
    return 0


def truncate_inode_partial_folio(folio: Page, lstart: int, lend: int) -> bool:
    """mm/truncate.c truncate_inode_partial_folio() for an order-0 folio: a folio wholly in
    [lstart, lend] leaves the cache; otherwise the part of it in the range is zeroed.
    Returns true (an order-0 folio never needs splitting)."""
    pos = folio.index << PAGE_SHIFT
    size = PAGE_SIZE
    offset = lstart - pos if pos < lstart else 0
    if pos + size <= lend:
        length = size - offset
    else:
        length = lend + 1 - pos - offset
    # folio_wait_writeback(): no writeback of shmem
    if length == size:
        truncate_inode_folio(folio.mapping, folio)
        return True
    sched.point("folio_zero_range", writes=(("frame", folio.pfn),))
    for off in range(offset, offset + length):    # folio_zero_range(folio, offset, length)
        folio.data.pop(off, None)
    return True


def shmem_get_partial_folio(inode: File, index: int) -> Optional[Page]:
    """mm/shmem.c shmem_get_partial_folio(): the cached folio at *index*, locked, with a
    reference; None for a hole (SGP_READ never allocates; beyond i_size it fails)."""
    folio = filemap_get_entry(inode.i_mapping, index)
    if folio is None:
        return None
    folio_lock(folio)
    if folio.mapping is inode.i_mapping:
        return folio
    # The folio has been swapped out (the model: removed under us).
    folio_unlock(folio)
    folio_put(folio)
    err, folio = shmem_get_folio(inode, index, 0, SGP_READ)
    return folio


def shmem_undo_range(inode: File, lstart: int, lend: int, unfalloc: bool) -> None:
    """Remove the pages of bytes [lstart, lend] from a shmem file's page cache and free them
    (the parts of partial pages at the ends are zeroed). Models mm/shmem.c
    shmem_undo_range() for a truncate or hole punch (unfalloc false: fallocate's
    preallocation is not modelled): first the folios that lock without waiting, then the
    partial folios at each end, then every folio left in the range, waiting for its lock.
    No swap entries (shmem pages are never swapped out), no large folios, no fallocend."""
    mapping = inode.i_mapping
    start = (lstart + PAGE_SIZE - 1) >> PAGE_SHIFT
    end = (lend + 1) >> PAGE_SHIFT
    if lend == -1:
        end = MASK64                              # to the end of the file
    fbatch: list = []
    indices: list = []
    index = [start]
    while index[0] < end and find_lock_entries(mapping, index, end - 1, fbatch, indices):
        for folio in fbatch:
            if not unfalloc:                      # || !folio_test_uptodate(folio)
                truncate_inode_folio(mapping, folio)
            folio_unlock(folio)
        folio_batch_release(fbatch)
        indices.clear()

    same_folio = (lstart >> PAGE_SHIFT) == (lend >> PAGE_SHIFT)
    folio = shmem_get_partial_folio(inode, lstart >> PAGE_SHIFT)
    if folio is not None:
        same_folio = lend < ((folio.index + 1) << PAGE_SHIFT)      # folio_next_pos()
        folio_mark_dirty(folio)
        if not truncate_inode_partial_folio(folio, lstart, lend):
            start = folio.index + 1
        folio_unlock(folio)
        folio_put(folio)
        folio = None
    if not same_folio:
        folio = shmem_get_partial_folio(inode, lend >> PAGE_SHIFT)
    if folio is not None:
        folio_mark_dirty(folio)
        truncate_inode_partial_folio(folio, lstart, lend)
        folio_unlock(folio)
        folio_put(folio)

    # whole_folios:
    index = [start]
    while index[0] < end:
        if not find_get_entries(mapping, index, end - 1, fbatch, indices):
            # Nothing left: a hole punch (bounded end) stops here.
            if index[0] == start or end != MASK64:
                break
            # A truncation to EOF goes round again until the range is empty.
            index = [start]
            continue
        for i, folio in enumerate(fbatch):
            folio_lock(folio)
            if not unfalloc:
                if folio.mapping is not mapping:
                    # Left the mapping meanwhile: look at this index again.
                    folio_unlock(folio)
                    index = [indices[i]]
                    break
                truncate_inode_folio(mapping, folio)
            folio_unlock(folio)
        folio_batch_release(fbatch)
        indices.clear()
    # shmem_recalc_inode(inode, 0, -nr_swaps_freed): no block accounting in the model.


def shmem_truncate_range(inode: File, lstart: int, lend: int) -> None:
    """mm/shmem.c shmem_truncate_range() (no timestamps in the model)."""
    shmem_undo_range(inode, lstart, lend, False)


def shmem_fallocate(file: File, mode: int, offset: int, length: int) -> int:
    """->fallocate of a shmem file, FALLOC_FL_PUNCH_HOLE|FALLOC_FL_KEEP_SIZE: unmap the whole
    pages of the range from every mapping (private COW copies stay), then remove them from
    the page cache. Models the punch-hole branch of mm/shmem.c shmem_fallocate() (no seals;
    the shmem_falloc wait queue for racing faults is left out, see the module doc);
    preallocation (mode without PUNCH_HOLE) is not modelled."""
    from .zap import unmap_mapping_range
    inode = file
    if mode & ~(FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE):
        return -EOPNOTSUPP
    inode_lock(inode)
    try:
        if mode & FALLOC_FL_PUNCH_HOLE:
            mapping = file.f_mapping
            unmap_start = (offset + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)     # round_up
            unmap_end = ((offset + length) & ~(PAGE_SIZE - 1)) - 1        # round_down - 1
            # (F_SEAL_WRITE: no seals; inode->i_private = &shmem_falloc: not modelled)
            if unmap_end > unmap_start:
                unmap_mapping_range(mapping, unmap_start, 1 + unmap_end - unmap_start, 0)
            shmem_truncate_range(inode, offset, offset + length - 1)
            # Private COW copies stay mapped, so no second unmap is needed.
            return 0
        raise NotModelled("shmem_fallocate: preallocation is not modelled")
    finally:
        inode_unlock(inode)


def vfs_fallocate(file: File, mode: int, offset: int, length: int) -> int:
    """fs/open.c vfs_fallocate(): the generic checks, then ->fallocate. *offset* and
    *length* are loff_t (signed 64-bit). The file is open for writing (a memfd is O_RDWR);
    no append-only or immutable inodes, no LSM, no fsnotify. Only shmem's ->fallocate is
    modelled (a regular file's raises NotModelled)."""
    if offset >= 1 << 63:
        offset -= 1 << 64
    if length >= 1 << 63:
        length -= 1 << 64
    if offset < 0 or length <= 0:
        return -EINVAL
    if mode & ~(0x7f):                            # FALLOC_FL_MODE_MASK | KEEP_SIZE
        return -EOPNOTSUPP
    if mode & FALLOC_FL_PUNCH_HOLE and not mode & FALLOC_FL_KEEP_SIZE:
        return -EOPNOTSUPP
    # (FMODE_WRITE, IS_APPEND, IS_IMMUTABLE, IS_SWAPFILE, security_file_permission: pass)
    # Check for wraparound.
    if offset + length >= 1 << 63:
        return -EFBIG
    if offset + length > MAX_LFS_FILESIZE:        # inode->i_sb->s_maxbytes
        return -EFBIG
    if not file.shmem:
        raise NotModelled("vfs_fallocate on a regular file is not modelled")
    return shmem_fallocate(file, mode, offset, length)


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


@model_only
def cache_page(file: File, index: int) -> Optional[Page]:
    """The folio at *index* of *file*'s page cache, or None (for views and tests: no
    reference, no scheduling point)."""
    return file.f_mapping.i_pages.get(index)
