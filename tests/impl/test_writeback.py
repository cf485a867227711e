"""Tests of impl/writeback.py: the flusher actor (folio_clear_dirty_for_io -> folio_mkclean,
then PG_dirty, then the disk image), and the lost write of bugs 3/4 when the rmap was removed
before the TLB flush.

State is built by hand (Machine, mm_struct, VMAs in mm.mm_mt, PTEs via the pgtable
allocators), independent of the syscall layer.
"""

from __future__ import annotations

import pytest
from statekit import install_pte, read_pte, tlb_has, touch
from schedkit import GreenletRuntime, random_policy, scripted_policy

from unmapcheck.impl import cpu as hw
from unmapcheck.impl import rmap, sched, writeback
from unmapcheck.impl.constants import MM_FILEPAGES, PAGE_SIZE, VM_MAYSHARE, VM_READ, VM_SHARED, \
    VM_WRITE
from unmapcheck.impl.filemap import File
from unmapcheck.impl.machine import Machine
from unmapcheck.impl.mm_types import inc_mm_counter, mm_struct, vm_area_struct
from unmapcheck.impl.page import (PG_dirty, PG_locked, PG_lru, PG_writeback, folio_get,
                                  page_mapcount, page_ref_count)
from unmapcheck.impl.pgtable import (lookup_pte)
from unmapcheck.impl.pte import pfn_pte
from unmapcheck.impl.sched import KernelBug

BASE = 0x7F0000000000
INDEX = 1


# --- hand-built state (same shape as tests/impl/test_rmap.py) -----------------------------------


def shared_file(m, shmem=False, cpus=(0, 1)):
    """A disk file with page INDEX cached, mapped shared and writable at *addr*, and written
    (0xAA at offset 0) through every CPU so that each holds a writable, dirty TLB entry."""
    mm = mm_struct(m)
    for c in cpus:
        hw.switch_mm(m.cpus[c], mm)
    f = File(m, "f", 4 * PAGE_SIZE, shmem=shmem)
    flags = VM_READ | VM_WRITE | VM_SHARED | VM_MAYSHARE
    vma = vm_area_struct(mm, BASE, BASE + 4 * PAGE_SIZE, flags, 0, f)
    mm.mm_mt.store(vma)
    rmap.vma_interval_tree_insert(vma, f.f_mapping.i_mmap)
    page = m.zone.alloc_page("file")                # the page cache's reference
    page.mapping, page.index = f.f_mapping, INDEX
    page.flags |= PG_lru
    f.f_mapping.i_pages[INDEX] = page
    folio_get(page)                                 # the PTE's reference
    rmap.folio_add_file_rmap_ptes(page, page, 1, vma)
    addr = BASE + INDEX * PAGE_SIZE
    install_pte(mm, addr, pfn_pte(page.pfn, write=True))
    inc_mm_counter(mm, MM_FILEPAGES)
    for c in cpus:
        touch(m, c, mm, addr, True, 0xAA)
    page.flags |= PG_dirty                          # set_page_dirty() by the write fault
    return mm, f, vma, page, addr


@pytest.fixture(autouse=True)
def fresh_current():
    sched.uninstall()
    yield
    sched.current().held.clear()


# --- the clean path -----------------------------------------------------------------------------
def test_writeback_cleans_ptes_tlbs_and_writes_the_disk():
    m = Machine(cpus=2)
    mm, f, vma, page, addr = shared_file(m)
    assert tlb_has(m, mm, addr) == [0, 1]
    assert writeback.writeback_folio_actor(m, f, INDEX) == 1
    assert f.f_mapping.disk[INDEX] == {0: 0xAA}
    assert not page.flags & (PG_dirty | PG_writeback | PG_locked)
    pte = read_pte(mm, addr)
    assert pte.pfn == page.pfn and not pte.write and not pte.dirty
    assert tlb_has(m, mm, addr) == []
    assert page_ref_count(page) == 2 and page_mapcount(page) == 1
    assert sched.current().held == [] and f.f_mapping.i_mmap_rwsem.readers == []
    # The next write faults on the write-protected PTE: it cannot be lost silently.
    with pytest.raises(hw.Fault):
        touch(m, 0, mm, addr, True, 0xBB)
    # Nothing dirty left: a second pass writes nothing.
    assert writeback.writeback_folio_actor(m, f, INDEX) == 0


def test_dirty_pte_on_a_clean_folio_is_written_too():
    """folio_mkclean() reports a dirty PTE, which re-dirties the folio before PG_dirty is
    tested: the data written through the PTE goes to disk now."""
    m = Machine(cpus=2)
    mm, f, vma, page, addr = shared_file(m)
    page.flags |= PG_locked
    page.flags &= ~PG_dirty
    assert writeback.folio_clear_dirty_for_io(page) is True
    assert not page.flags & PG_dirty and not read_pte(mm, addr).dirty


def test_clean_folio_shmem_and_missing_index_write_nothing():
    m = Machine(cpus=2)
    mm, f, vma, page, addr = shared_file(m)
    assert writeback.writeback_folio_actor(m, f, INDEX + 1) == 0     # not cached
    # A clean folio is skipped before folio_mkclean (folio_prepare_writeback), even with a
    # dirty PTE: the flusher only finds folios the page cache tags dirty.
    page.flags &= ~PG_dirty
    assert writeback.writeback_folio_actor(m, f, INDEX) == 0
    assert read_pte(mm, addr).dirty and INDEX not in f.f_mapping.disk
    m2 = Machine(cpus=2)
    mm2, f2, vma2, page2, addr2 = shared_file(m2, shmem=True)
    assert writeback.writeback_folio_actor(m2, f2, INDEX) == 0       # the flusher skips shmem
    assert page2.flags & PG_dirty and read_pte(mm2, addr2).write
    assert f2.f_mapping.disk == {}


def test_folio_under_writeback_is_skipped_and_lock_is_required():
    m = Machine(cpus=2)
    mm, f, vma, page, addr = shared_file(m)
    with pytest.raises(KernelBug):
        writeback.folio_clear_dirty_for_io(page)          # the folio lock is required
    page.flags |= PG_writeback
    assert writeback.writeback_folio_actor(m, f, INDEX) == 0   # WB_SYNC_NONE skips it
    assert page.flags & PG_dirty and not page.flags & PG_locked
    assert page_ref_count(page) == 2


# --- the lost write of bugs 3 and 4 --------------------------------------------------------------
def test_lost_write_when_rmap_is_removed_before_the_flush():
    """A zap in the pre-5df397dec7c4 order: PTE cleared, folio dirtied and its rmap removed,
    TLB flush still pending. Writeback sees an unmapped folio, cleans it and writes it out;
    CPU 1 keeps writing through its stale, writable, dirty TLB entry. The folio is clean in
    the kernel's view but holds data the disk never got: the write is lost (N3)."""
    m = Machine(cpus=2)
    mm, f, vma, page, addr = shared_file(m)
    ptep = lookup_pte(mm, addr)
    # zap_pte_range (no flush yet): ptep_get_and_clear_full, set_page_dirty, rmap removal.
    from unmapcheck.impl.pgtable import ptep_get_and_clear
    old = ptep_get_and_clear(mm, addr, ptep)
    assert old.dirty
    page.flags |= PG_dirty
    rmap.folio_remove_rmap_ptes(page, page, 1, vma)
    # The flusher.
    assert writeback.writeback_folio_actor(m, f, INDEX) == 1
    assert f.f_mapping.disk[INDEX] == {0: 0xAA} and not page.flags & PG_dirty
    # CPU 1 writes through the stale TLB entry: no fault, no dirtying.
    assert tlb_has(m, mm, addr) == [0, 1]
    touch(m, 1, mm, addr, True, 0xCC)
    assert page.read_byte(0) == 0xCC
    assert not page.flags & PG_dirty                    # clean ...
    assert f.f_mapping.disk[INDEX][0] == 0xAA           # ... yet different from the disk


# --- interleavings: user writes, a zap, and the flusher -------------------------------------------
def user_writes(m, mm, addr, values):
    """User stores on CPU 0; a fault (PTE gone or write-protected) ends the thread (the
    model's fault handling is not part of this test)."""
    for v in values:
        try:
            touch(m, 0, mm, addr, True, v)
        except hw.Fault:
            return


def zap_dirty_shared_pte(m, mm, vma, addr, delay_rmap):
    """zap_pte_range for one dirty shared-file PTE, flushing under the PTL (1cf35d47712d);
    delay_rmap: remove the rmap after the flush (5df397dec7c4) or, off, before it."""
    from unmapcheck.impl.mm_types import dec_mm_counter
    from unmapcheck.impl.page import folio_put, folio_set_dirty
    from unmapcheck.impl.pgtable import ptep_get_and_clear, pte_offset_map_lock, \
        pte_unmap_unlock, walk_to_pmd
    ptep, ptl = pte_offset_map_lock(mm, walk_to_pmd(mm, addr, alloc=False), addr)
    pte = ptep_get_and_clear(mm, addr, ptep)
    page = m.zone.pfn_to_page(pte.pfn)
    if pte.dirty:
        folio_set_dirty(page)
    if not delay_rmap:
        rmap.folio_remove_rmap_pte(page, page, vma)
    dec_mm_counter(mm, MM_FILEPAGES)
    hw.flush_tlb_page(m, mm, addr)                 # tlb_flush_mmu_tlbonly under the PTL
    if delay_rmap:
        rmap.folio_remove_rmap_pte(page, page, vma)    # tlb_flush_rmaps
    pte_unmap_unlock(ptep, ptl)
    folio_put(page)


def lost_write(f, page):
    """N3's observable: the folio is clean but its contents differ from the disk."""
    disk = f.f_mapping.disk.get(INDEX)
    return disk is not None and not page.flags & PG_dirty and disk != page.data


def run_flusher_vs_zap(policy_for, delay_rmap):
    m = Machine(cpus=2)
    mm, f, vma, page, addr = shared_file(m, cpus=(0,))
    rt = GreenletRuntime([
        lambda: user_writes(m, mm, addr, (1, 2, 3)),
        lambda: zap_dirty_shared_pte(m, mm, vma, addr, delay_rmap),
        lambda: writeback.writeback_folio_actor(m, f, INDEX),
    ], policy_for)
    rt.run()
    assert all(ctx.held == [] for ctx in rt.ctxs)
    assert page_mapcount(page) == 0 and page_ref_count(page) == 1
    return f, page


USER, ZAP, FLUSHER = 0, 1, 2


@pytest.mark.parametrize("delay_rmap", [True, False])
def test_flusher_inside_the_zap_window(delay_rmap):
    """The zap has cleared the PTE and (without 5df397dec7c4) removed the rmap; it holds the
    PTL and has not flushed. The flusher runs, then the user writes through its TLB entry,
    then the zap finishes. Without the fix folio_mkclean returns early and the writes after
    the I/O are lost; with it folio_mkclean waits on the PTL, the user's writes land before
    the flush, and the I/O carries them."""
    window = "folio_remove_rmap_ptes" if not delay_rmap else "add_mm_counter(MM_FILEPAGES, -1)"
    f, page = run_flusher_vs_zap(scripted_policy(
        [(ZAP, window), (FLUSHER, None), (USER, None), (ZAP, None)]), delay_rmap)
    if delay_rmap:
        assert not lost_write(f, page)
        assert f.f_mapping.disk[INDEX] == page.data == {0: 3}
    else:
        assert lost_write(f, page)
        assert f.f_mapping.disk[INDEX] == {0: 0xAA} and page.data == {0: 3}


def test_flusher_vs_zap_random_schedules_never_lose_writes_with_the_fix():
    import random
    for seed in range(200):
        f, page = run_flusher_vs_zap(random_policy(random.Random(seed)), True)
        assert not lost_write(f, page), seed
