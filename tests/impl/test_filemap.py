"""The page cache, shmem and the folio lock (impl/filemap.py)."""

from __future__ import annotations

import pytest

from faultkit import BASE, RW, SHARED, Env

from unmapcheck.impl.sched import NotModelled
from unmapcheck.impl import sched
from unmapcheck.impl.constants import EEXIST, EINVAL, MM_SHMEMPAGES, PAGE_SIZE
from unmapcheck.impl.fault import (FAULT_FLAG_USER, VM_FAULT_LOCKED, VM_FAULT_MAJOR,
                                   VM_FAULT_SIGBUS, vm_fault)
from unmapcheck.impl.filemap import (SGP_CACHE, SGP_READ, File, cache_page, filemap_add_folio,
                                     filemap_fault, filemap_get_folio, folio_lock,
                                     folio_unlock, generic_perform_write, i_size_write,
                                     next_uptodate_folio, shmem_fault, shmem_get_folio,
                                     shmem_zero_setup, vma_vm_ops, xa_state, generic_file_vm_ops,
                                     shmem_vm_ops)
from unmapcheck.impl.locks import LockDiscipline, spin_lock, spin_unlock
from unmapcheck.impl.mm_types import mm_counter
from unmapcheck.impl.page import (PG_dirty, PG_locked, PG_swapbacked, PG_uptodate,
                                  folio_put, page_mapcount)
from unmapcheck.impl.sched import KernelBug
from unmapcheck.impl.x86_fault import user_access


def test_shmem_get_folio_allocates_a_swapbacked_cache_page_once():
    env = Env()
    f = File(env.machine, "m", 3 * PAGE_SIZE)
    err, folio = shmem_get_folio(f, 1, 0, SGP_CACHE)
    assert err == 0
    assert folio.kind == "file" and folio.mapping is f.f_mapping and folio.index == 1
    assert folio.flags & PG_swapbacked and folio.flags & PG_uptodate
    assert folio.flags & PG_locked                       # returned locked
    assert folio._refcount == 2                          # page cache + caller
    assert page_mapcount(folio) == 0
    assert mm_counter(folio) == MM_SHMEMPAGES            # mm_counter_file: swapbacked
    assert f.f_mapping.i_pages == {1: folio}
    folio_unlock(folio)
    folio_put(folio)
    assert folio._refcount == 1 and not folio.free       # the page cache keeps it
    err, again = shmem_get_folio(f, 1, 0, SGP_CACHE)
    assert err == 0 and again is folio
    folio_unlock(again)
    folio_put(again)


def test_shmem_get_folio_past_i_size():
    env = Env()
    f = File(env.machine, "m", PAGE_SIZE + 1)            # two pages (the second partial)
    err, folio = shmem_get_folio(f, 2, 0, SGP_CACHE)
    assert err == -EINVAL and folio is None
    err, folio = shmem_get_folio(f, 0, 0, SGP_READ)      # a hole: NULL folio, no error
    assert err == 0 and folio is None
    assert f.f_mapping.i_pages == {}


def test_shmem_fault_returns_the_locked_page_or_sigbus():
    env = Env()
    f = File(env.machine, "m", 2 * PAGE_SIZE)
    vma = env.vma(BASE, 4, RW | SHARED, file=f)
    assert vma_vm_ops(vma) is shmem_vm_ops
    vmf = vm_fault(vma, BASE + PAGE_SIZE, FAULT_FLAG_USER)
    assert shmem_fault(vmf) == VM_FAULT_LOCKED
    assert vmf.page is cache_page(f, 1) and vmf.page.flags & PG_locked
    folio_unlock(vmf.page)
    folio_put(vmf.page)
    vmf = vm_fault(vma, BASE + 3 * PAGE_SIZE, FAULT_FLAG_USER)
    assert shmem_fault(vmf) == VM_FAULT_SIGBUS and vmf.page is None


def test_write_populates_the_page_cache_and_grows_i_size():
    env = Env()
    f = File(env.machine, "m", 0)
    data = bytes(range(1, 11))
    assert generic_perform_write(f, PAGE_SIZE - 4, data) == 10
    assert f.size == PAGE_SIZE + 6
    p0, p1 = cache_page(f, 0), cache_page(f, 1)
    assert [p0.read_byte(PAGE_SIZE - 4 + i) for i in range(4)] == [1, 2, 3, 4]
    assert [p1.read_byte(i) for i in range(6)] == [5, 6, 7, 8, 9, 10]
    for p in (p0, p1):
        assert p.flags & PG_dirty and p.flags & PG_uptodate and not p.flags & PG_locked
        assert p._refcount == 1
    with pytest.raises(NotModelled):
        i_size_write(f, 0)


def test_filemap_get_folio_and_add():
    env = Env()
    f = File(env.machine, "m", 2 * PAGE_SIZE)
    assert filemap_get_folio(f.f_mapping, 0) is None
    generic_perform_write(f, 0, b"x")
    p = filemap_get_folio(f.f_mapping, 0)
    assert p is cache_page(f, 0) and p._refcount == 2
    folio_put(p)
    other = env.machine.zone.alloc_page("file")
    other.flags |= PG_locked
    assert filemap_add_folio(f.f_mapping, other, 0) == -EEXIST
    assert other._refcount == 1 and other.mapping is None


def test_folio_lock_is_a_sleeping_lock():
    env = Env()
    f = env.memfd(1)
    p = cache_page(f, 0)
    folio_lock(p)
    with pytest.raises(sched.Deadlock):                  # a second locker would sleep forever
        folio_lock(p)
    folio_unlock(p)
    with pytest.raises(KernelBug):
        folio_unlock(p)
    spin_lock(env.mm.page_table_lock)
    try:
        with pytest.raises(LockDiscipline):              # might_sleep under a spinlock
            folio_lock(p)
    finally:
        spin_unlock(env.mm.page_table_lock)


def test_next_uptodate_folio_skips_what_cannot_be_mapped_without_io():
    env = Env()
    f = env.memfd(6)
    m = f.f_mapping
    cache_page(f, 1).flags |= PG_locked                  # someone holds the lock
    cache_page(f, 2).flags &= ~PG_uptodate               # being read
    del m.i_pages[3]                                     # a hole
    xas = xa_state(m, 0)
    got = []
    while (folio := next_uptodate_folio(xas, m, 5)) is not None:
        got.append(folio.index)
        assert folio.flags & PG_locked and folio._refcount == 2
        folio_unlock(folio)
        folio_put(folio)
    assert got == [0, 4, 5]
    assert cache_page(f, 1)._refcount == 1 and cache_page(f, 2)._refcount == 1
    f.size = 5 * PAGE_SIZE                               # page 5 now past EOF
    xas = xa_state(m, 4)
    folio = next_uptodate_folio(xas, m, 5)
    assert folio.index == 4
    folio_unlock(folio)
    folio_put(folio)
    assert next_uptodate_folio(xas, m, 5) is None


def test_filemap_fault_reads_a_regular_file_from_disk():
    env = Env()
    f = File(env.machine, "disk", 2 * PAGE_SIZE, shmem=False)
    f.f_mapping.disk[0] = {5: 0x55}
    vma = env.vma(BASE, 4, RW | SHARED, file=f)
    assert vma_vm_ops(vma) is generic_file_vm_ops
    vmf = vm_fault(vma, BASE, FAULT_FLAG_USER)
    assert filemap_fault(vmf) == VM_FAULT_MAJOR | VM_FAULT_LOCKED
    page = vmf.page
    assert page.read_byte(5) == 0x55 and not page.flags & PG_swapbacked
    folio_unlock(page)
    folio_put(page)
    vmf = vm_fault(vma, BASE, FAULT_FLAG_USER)
    assert filemap_fault(vmf) == VM_FAULT_LOCKED          # cached now: minor
    assert vmf.page is page
    folio_unlock(page)
    folio_put(page)
    vmf = vm_fault(vma, BASE + 2 * PAGE_SIZE, FAULT_FLAG_USER)
    assert filemap_fault(vmf) == VM_FAULT_SIGBUS


def test_shared_anonymous_mapping_is_shmem():
    env = Env()
    vma = env.vma(BASE, 2, RW | SHARED)
    f = shmem_zero_setup(vma)
    assert vma.vm_file is f and f.size == 2 * PAGE_SIZE and f.shmem
    user_access(env.task, env.cpu[0], BASE + PAGE_SIZE, True, 3)
    assert env.rss == [0, 0, 0, 1]
    assert cache_page(f, 1).read_byte(0) == 3 and cache_page(f, 1).flags & PG_dirty
    # the page outlives its mapping: only the page cache references it once unmapped
    assert cache_page(f, 1)._refcount == 2


def test_pwrite_to_a_memfd_fills_the_page_cache_and_extends_i_size():
    """System.pwrite -> shmem_file_write_iter -> generic_perform_write: the bytes are in
    the page cache (a later mapping reads them), a write past the end extends i_size, an
    unknown fd is -EBADF and a regular file's write path is NotModelled."""
    from unmapcheck.impl import constants as C
    from unmapcheck.impl.sched import NotModelled
    from unmapcheck.impl.system import System
    s = System()
    fd = s.memfd_create("m", C.PAGE_SIZE)
    assert s.pwrite(fd, b"\x41\x42", C.PAGE_SIZE - 1) == 2       # across the page boundary
    assert s.file(fd).size == C.PAGE_SIZE + 1
    p = s.spawn()
    base = 0x7F0000000000
    assert p.mmap(base, 2 * C.PAGE_SIZE, C.PROT_READ, C.MAP_SHARED | C.MAP_FIXED, fd) == base
    assert p.load(base + C.PAGE_SIZE - 1) == 0x41 and p.load(base + C.PAGE_SIZE) == 0x42
    assert s.pwrite(99, b"x", 0) == -C.EBADF
    reg = s.create_file("r", C.PAGE_SIZE)
    with pytest.raises(NotModelled):
        s.pwrite(reg, b"x", 0)
