"""Tests of impl/rmap.py: anon_vma chains, i_mmap, the mapcount, rmap walks, folio_mkclean,
try_to_migrate / remove_migration_ptes, the batched unmap flush.

State is built by hand (a Machine, an mm_struct, VMAs stored in mm.mm_mt, PTEs installed with
the pgtable allocators and set_pte_at), independent of the syscall layer.
"""

from __future__ import annotations

import pytest
from statekit import install_pte, new_mm, read_pte, tlb_has, touch
from schedkit import Recorder

from unmapcheck.impl import cpu as hw
from unmapcheck.impl import rmap, sched
from unmapcheck.impl.constants import (MM_ANONPAGES, MM_FILEPAGES, PAGE_SIZE, VM_MAYSHARE,
                                       VM_READ, VM_SHARED, VM_WRITE)
from unmapcheck.impl.filemap import File
from unmapcheck.impl.locks import spin_lock, spin_unlock
from unmapcheck.impl.machine import Machine
from unmapcheck.impl.mm_types import inc_mm_counter, vm_area_struct
from unmapcheck.impl.page import (PG_dirty, PG_locked, PG_lru, folio_get, page_mapcount,
                                  page_ref_count)
from unmapcheck.impl.pgtable import (lookup_pte, set_pte_at)
from unmapcheck.impl.pte import (PTE_NONE, is_migration_entry, is_writable_migration_entry,
                                 pfn_pte, pte_none)
from unmapcheck.impl.sched import KernelBug

BASE = 0x7F0000000000


# --- hand-built state ---------------------------------------------------------------------------


def anon_vma_at(mm, start, npages=4, flags=VM_READ | VM_WRITE):
    vma = vm_area_struct(mm, start, start + npages * PAGE_SIZE, flags, start >> 12)
    mm.mm_mt.store(vma)
    assert rmap.anon_vma_prepare(vma) == 0
    return vma


def map_new_anon(mm, vma, addr, write=True, dirty=False):
    page = mm.zone.alloc_page("anon")           # refcount 1: the PTE's reference
    page.flags |= PG_lru
    rmap.folio_add_new_anon_rmap(page, vma, addr)
    install_pte(mm, addr, pfn_pte(page.pfn, write=write, dirty=dirty))
    inc_mm_counter(mm, MM_ANONPAGES)
    return page


def file_vma_at(mm, file, start, npages=4, pgoff=0, shared=True):
    flags = VM_READ | VM_WRITE | ((VM_SHARED | VM_MAYSHARE) if shared else 0)
    vma = vm_area_struct(mm, start, start + npages * PAGE_SIZE, flags, pgoff, file)
    mm.mm_mt.store(vma)
    mapping = file.f_mapping
    rmap.i_mmap_lock_write(mapping)
    rmap.vma_interval_tree_insert(vma, mapping.i_mmap)
    rmap.i_mmap_unlock_write(mapping)
    return vma


def cache_page(m, file, index):
    page = m.zone.alloc_page("file")            # refcount 1: the page cache's reference
    page.mapping = file.f_mapping
    page.index = index
    page.flags |= PG_lru
    file.f_mapping.i_pages[index] = page
    return page


def map_file_page(mm, vma, page, write=True, dirty=False):
    addr = vma.vm_start + ((page.index - vma.vm_pgoff) << 12)
    folio_get(page)
    rmap.folio_add_file_rmap_ptes(page, page, 1, vma)
    install_pte(mm, addr, pfn_pte(page.pfn, write=write, dirty=dirty))
    inc_mm_counter(mm, MM_FILEPAGES)
    return addr


@pytest.fixture
def recorder():
    rec = Recorder()
    sched.install(rec)
    yield rec
    sched.uninstall()


@pytest.fixture(autouse=True)
def fresh_current():
    """Each test starts with a clean ``current`` (no owed TLB flush, no held locks)."""
    sched.uninstall()
    sched.current().__dict__.pop("tlb_ubc", None)
    yield
    sched.current().__dict__.pop("tlb_ubc", None)
    sched.current().held.clear()


def no_locks_held():
    return sched.current().held == []


# --- anon_vma ---------------------------------------------------------------------------------
def test_anon_vma_prepare_allocates_once_and_chains():
    m = Machine()
    mm = new_mm(m)
    vma = anon_vma_at(mm, BASE)
    av = vma.anon_vma
    assert av is not None and av.root is av
    assert av.vmas == [vma] and rmap.anon_vma_chain(vma) == [av]
    assert av.num_active_vmas == 1 and av.num_children == 1
    assert rmap.anon_vma_prepare(vma) == 0 and vma.anon_vma is av   # second call: no-op
    assert mm.page_table_lock.owner is None and av.rwsem.writer is None


def test_anon_vma_clone_shares_for_split_and_unlink_frees_last():
    m = Machine()
    mm = new_mm(m)
    vma = anon_vma_at(mm, BASE, npages=4)
    av = vma.anon_vma
    # __split_vma: the new VMA is a copy (vm_area_dup copies ->anon_vma), then cloned.
    new = vm_area_struct(mm, BASE + 2 * PAGE_SIZE, BASE + 4 * PAGE_SIZE, vma.vm_flags,
                         vma.vm_pgoff + 2)
    new.anon_vma = vma.anon_vma
    assert rmap.anon_vma_clone(new, vma) == 0
    assert new.anon_vma is av and av.vmas == [vma, new]
    assert av.num_active_vmas == 2
    rmap.unlink_anon_vmas(new)
    assert new.anon_vma is None and av.vmas == [vma] and not av.freed
    rmap.unlink_anon_vmas(vma)
    assert av.vmas == [] and av.freed and av.refcount == 0


def test_anon_vma_fork_links_child_to_parent_tree():
    m = Machine()
    pmm, cmm = new_mm(m), new_mm(m)
    pvma = anon_vma_at(pmm, BASE)
    cvma = vm_area_struct(cmm, pvma.vm_start, pvma.vm_end, pvma.vm_flags, pvma.vm_pgoff)
    cvma.anon_vma = pvma.anon_vma                  # vm_area_dup
    assert rmap.anon_vma_fork(cvma, pvma) == 0
    pav, cav = pvma.anon_vma, cvma.anon_vma
    assert cav is not pav and cav.root is pav and cav.parent is pav
    assert cav.rwsem is pav.rwsem
    # The child VMA is on the parent's anon_vma (to find non-COWed pages) and on its own.
    assert pav.vmas == [pvma, cvma] and cav.vmas == [cvma]
    assert rmap.anon_vma_chain(cvma) == [cav, pav]
    assert pav.num_children == 2 and pav.refcount == 2      # pinned by the child
    rmap.unlink_anon_vmas(cvma)
    assert cav.freed and not pav.freed and pav.refcount == 1 and pav.vmas == [pvma]


# --- the file side ------------------------------------------------------------------------------
def test_i_mmap_insert_keeps_pgoff_order_and_remove():
    m = Machine()
    mm = new_mm(m)
    f = File(m, "f", 16 * PAGE_SIZE)
    a = file_vma_at(mm, f, BASE, pgoff=4)
    b = file_vma_at(mm, f, BASE + 0x100000, pgoff=0)
    c = file_vma_at(mm, f, BASE + 0x200000, pgoff=4)
    assert f.f_mapping.i_mmap == [b, a, c]
    assert rmap.vma_interval_tree_foreach(f.f_mapping, 5, 5) == [a, c]
    assert rmap.vma_interval_tree_foreach(f.f_mapping, 0, 0) == [b]
    vb = rmap.unlink_vma_file_batch()
    rmap.unlink_file_vma_batch_add(vb, a)
    assert f.f_mapping.i_mmap == [b, a, c]          # batched until the batch is processed
    rmap.unlink_file_vma_batch_final(vb)
    assert f.f_mapping.i_mmap == [b, c] and vb.count == 0
    assert f.f_mapping.i_mmap_rwsem.writer is None
    with pytest.raises(KernelBug):
        rmap.vma_interval_tree_insert(a, File(m, "other", 0).f_mapping.i_mmap)


# --- mapcount -----------------------------------------------------------------------------------
def test_mapcount_bookkeeping_anon(recorder):
    m = Machine()
    mm = new_mm(m)
    vma = anon_vma_at(mm, BASE)
    page = m.zone.alloc_page("anon")
    assert page_mapcount(page) == 0 and page._mapcount == -1
    rmap.folio_add_new_anon_rmap(page, vma, BASE + PAGE_SIZE)
    assert page._mapcount == 0 and page_mapcount(page) == 1
    assert page.mapping is vma.anon_vma and page.index == vma.vm_pgoff + 1
    assert rmap.PageAnonExclusive(page)
    rmap.folio_add_anon_rmap_ptes(page, page, 1, vma, BASE + PAGE_SIZE, rmap.RMAP_NONE)
    assert page_mapcount(page) == 2
    rmap.folio_remove_rmap_ptes(page, page, 1, vma)
    rmap.folio_remove_rmap_ptes(page, page, 1, vma)
    assert page_mapcount(page) == 0
    # An underflow is recorded, not raised: the zap path reports it (print_bad_pte).
    rmap.folio_remove_rmap_ptes(page, page, 1, vma)
    assert page_mapcount(page) == -1
    # Every mapcount change was a scheduling point writing the struct page.
    labels = [p for p in recorder.points if p[0] in (
        "folio_add_new_anon_rmap", "folio_add_anon_rmap_ptes", "folio_remove_rmap_ptes")]
    assert len(labels) == 5
    assert all(("page", page.pfn) in p[2] for p in labels)


def test_mapcount_bookkeeping_file_and_fork_dup():
    m = Machine()
    mm = new_mm(m)
    f = File(m, "f", 4 * PAGE_SIZE)
    vma = file_vma_at(mm, f, BASE)
    page = cache_page(m, f, 0)
    map_file_page(mm, vma, page)
    assert page_mapcount(page) == 1 and page_ref_count(page) == 2
    rmap.folio_dup_file_rmap_ptes(page, page, 1, vma)
    assert page_mapcount(page) == 2
    with pytest.raises(KernelBug):               # a file folio is not anonymous
        rmap.folio_try_dup_anon_rmap_ptes(page, page, 1, vma, vma)
    avma = anon_vma_at(mm, BASE + 0x100000)
    apage = map_new_anon(mm, avma, avma.vm_start)
    assert rmap.PageAnonExclusive(apage)
    assert rmap.folio_try_dup_anon_rmap_ptes(apage, apage, 1, avma, avma) == 0
    assert page_mapcount(apage) == 2 and not rmap.PageAnonExclusive(apage)
    with pytest.raises(KernelBug):               # the zero page is never rmapped
        rmap.folio_add_file_rmap_ptes(m.zone.zero_page, m.zone.zero_page, 1, vma)


# --- rmap_walk ----------------------------------------------------------------------------------
def test_rmap_walk_file_visits_only_vmas_covering_the_index():
    m = Machine()
    mm = new_mm(m)
    f = File(m, "f", 16 * PAGE_SIZE)
    a = file_vma_at(mm, f, BASE, npages=4, pgoff=0)
    b = file_vma_at(mm, f, BASE + 0x100000, npages=4, pgoff=2)
    file_vma_at(mm, f, BASE + 0x200000, npages=2, pgoff=8)
    page = cache_page(m, f, 3)
    page.flags |= PG_locked
    seen = []
    rwc = rmap.rmap_walk_control(rmap_one=lambda fo, v, addr, arg: seen.append((v, addr)) or True)
    rmap.rmap_walk(page, rwc)
    assert seen == [(a, BASE + 3 * PAGE_SIZE), (b, BASE + 0x100000 + PAGE_SIZE)]
    assert f.f_mapping.i_mmap_rwsem.readers == []


def test_rmap_walk_anon_follows_fork_chain():
    m = Machine()
    pmm, cmm = new_mm(m), new_mm(m)
    pvma = anon_vma_at(pmm, BASE)
    page = map_new_anon(pmm, pvma, BASE)
    cvma = vm_area_struct(cmm, pvma.vm_start, pvma.vm_end, pvma.vm_flags, pvma.vm_pgoff)
    cvma.anon_vma = pvma.anon_vma
    rmap.anon_vma_fork(cvma, pvma)
    page.flags |= PG_locked
    seen = []
    rwc = rmap.rmap_walk_control(rmap_one=lambda fo, v, addr, arg: seen.append(v) or True,
                                 anon_lock=rmap.folio_lock_anon_vma_read)
    rmap.rmap_walk(page, rwc)
    assert seen == [pvma, cvma]
    assert pvma.anon_vma.rwsem.readers == []


# --- page_vma_mapped_walk -----------------------------------------------------------------------
def test_page_vma_mapped_walk_takes_and_drops_the_ptl():
    m = Machine()
    mm = new_mm(m)
    vma = anon_vma_at(mm, BASE)
    page = map_new_anon(mm, vma, BASE)
    pvmw = rmap.DEFINE_FOLIO_VMA_WALK(page, vma, BASE, 0)
    assert rmap.page_vma_mapped_walk(pvmw)
    assert pvmw.ptl is not None and pvmw.ptl.owner == sched.current().name
    assert not rmap.page_vma_mapped_walk(pvmw)       # order 0: one PTE only
    assert pvmw.ptl is None and no_locks_held()


def test_page_vma_mapped_walk_lockless_skip_of_none_pte(recorder):
    m = Machine()
    mm = new_mm(m)
    vma = anon_vma_at(mm, BASE)
    page = map_new_anon(mm, vma, BASE)
    page2 = map_new_anon(mm, vma, BASE + PAGE_SIZE)
    del page2
    # Look for *page* at the next address: present PTE, other pfn -> locked then not found.
    pvmw = rmap.DEFINE_FOLIO_VMA_WALK(page, vma, BASE + PAGE_SIZE, 0)
    assert not rmap.page_vma_mapped_walk(pvmw) and no_locks_held()
    # At an address whose PTE is none: no PTL at all without PVMW_SYNC ...
    recorder.points.clear()
    pvmw = rmap.DEFINE_FOLIO_VMA_WALK(page, vma, BASE + 2 * PAGE_SIZE, 0)
    assert not rmap.page_vma_mapped_walk(pvmw)
    assert not any(p[0] == "spin_lock" for p in recorder.points)
    # ... and with PVMW_SYNC the walk serialises on the PTL.
    recorder.points.clear()
    pvmw = rmap.DEFINE_FOLIO_VMA_WALK(page, vma, BASE + 2 * PAGE_SIZE, rmap.PVMW_SYNC)
    assert not rmap.page_vma_mapped_walk(pvmw)
    assert any(p[0] == "spin_lock" for p in recorder.points) and no_locks_held()


# --- folio_mkclean ------------------------------------------------------------------------------
def shared_dirty_file_page(m, cpus=(0, 1)):
    mm = new_mm(m, cpus)
    f = File(m, "f", 4 * PAGE_SIZE, shmem=False)
    vma = file_vma_at(mm, f, BASE)
    page = cache_page(m, f, 1)
    addr = map_file_page(mm, vma, page, write=True)
    for c in cpus:
        touch(m, c, mm, addr, write=True, value=c + 1)   # dirty TLB entries everywhere
    page.flags |= PG_dirty
    return mm, f, vma, page, addr


def test_folio_mkclean_cleans_write_protects_and_flushes_every_cpu():
    m = Machine(cpus=2)
    mm, f, vma, page, addr = shared_dirty_file_page(m)
    assert read_pte(mm, addr).dirty and read_pte(mm, addr).write
    assert tlb_has(m, mm, addr) == [0, 1]
    page.flags |= PG_locked                          # the caller holds the folio lock
    assert rmap.folio_mkclean(page) == 1
    pte = read_pte(mm, addr)
    assert pte.pfn == page.pfn and not pte.write and not pte.dirty
    assert tlb_has(m, mm, addr) == []
    assert no_locks_held() and f.f_mapping.i_mmap_rwsem.readers == []
    # Already clean and read-only: nothing to do the second time.
    assert rmap.folio_mkclean(page) == 0
    # A write now faults (the PTE is read-only), which is how the folio gets re-dirtied.
    with pytest.raises(hw.Fault):
        touch(m, 0, mm, addr, write=True)


def test_folio_mkclean_skips_private_mappings_and_needs_the_folio_lock():
    m = Machine()
    mm = new_mm(m)
    f = File(m, "f", 4 * PAGE_SIZE, shmem=False)
    vma = file_vma_at(mm, f, BASE, shared=False)
    page = cache_page(m, f, 0)
    addr = map_file_page(mm, vma, page, write=False, dirty=False)
    with pytest.raises(KernelBug):
        rmap.folio_mkclean(page)
    page.flags |= PG_locked
    set_pte_at(mm, addr, lookup_pte(mm, addr), pfn_pte(page.pfn, write=True, dirty=True))
    assert rmap.folio_mkclean(page) == 0             # invalid_mkclean_vma: not VM_SHARED
    assert read_pte(mm, addr).dirty


def test_folio_mkclean_returns_early_on_unmapped_folio_without_any_lock(recorder):
    """The bug-3/4 hinge: once the rmap is gone, folio_mkclean neither looks at the PTE nor
    waits on the PTL, even while a PTE (and TLB entry) still maps the page."""
    m = Machine(cpus=2)
    mm, f, vma, page, addr = shared_dirty_file_page(m)
    # A zap that removed the rmap (the pre-5df397dec7c4 order) but has not flushed the TLB,
    # and even still holds the PTL.
    ptl = lookup_pte(mm, addr).table.ptl
    spin_lock(ptl)
    rmap.folio_remove_rmap_ptes(page, page, 1, vma)
    page.flags |= PG_locked
    recorder.points.clear()
    assert rmap.folio_mkclean(page) == 0              # returns at once: no deadlock on ptl
    labels = [p[0] for p in recorder.points]
    assert labels == ["folio_mapped"]
    assert read_pte(mm, addr).write and read_pte(mm, addr).dirty
    assert tlb_has(m, mm, addr) == [0, 1]
    spin_unlock(ptl)


# --- try_to_migrate / remove_migration_ptes -------------------------------------------------------
@pytest.mark.parametrize("cpus,flags", [((0,), 0), ((0, 1), 0), ((0, 1), rmap.TTU_BATCH_FLUSH)])
def test_try_to_migrate_and_back(cpus, flags):
    m = Machine(cpus=2)
    mm = new_mm(m, cpus)
    vma = anon_vma_at(mm, BASE)
    page = map_new_anon(mm, vma, BASE)
    page._refcount += 1                              # the isolation reference
    for c in cpus:
        touch(m, c, mm, BASE, write=True, value=7)
    page.flags |= PG_locked
    rmap.try_to_migrate(page, flags)
    entry = read_pte(mm, BASE)
    assert is_migration_entry(entry) and entry.pfn == page.pfn
    assert is_writable_migration_entry(entry) and entry.dirty and entry.young
    assert page_mapcount(page) == 0 and page_ref_count(page) == 1
    assert page.flags & PG_dirty                     # the PTE's dirty bit went to the folio
    assert mm.rss_stat[MM_ANONPAGES] == 1           # rss unchanged
    deferred = bool(flags) and len(cpus) > 1
    assert (tlb_has(m, mm, BASE) != []) == deferred
    if deferred:
        assert mm.tlb_flush_batched == 1
        rmap.try_to_unmap_flush()
        assert tlb_has(m, mm, BASE) == []
    assert no_locks_held()
    rmap.remove_migration_ptes(page, page, 0)
    pte = read_pte(mm, BASE)
    assert pte.pfn == page.pfn and pte.write and pte.dirty
    assert page_mapcount(page) == 1 and page_ref_count(page) == 2
    assert rmap.PageAnonExclusive(page)


def test_remove_migration_ptes_restores_nothing_after_zap():
    m = Machine()
    mm = new_mm(m)
    vma = anon_vma_at(mm, BASE)
    page = map_new_anon(mm, vma, BASE)
    page._refcount += 1
    page.flags |= PG_locked
    rmap.try_to_migrate(page, 0)
    set_pte_at(mm, BASE, lookup_pte(mm, BASE), PTE_NONE)   # the zap of the entry
    rmap.remove_migration_ptes(page, page, 0)
    assert pte_none(read_pte(mm, BASE))
    assert page_mapcount(page) == 0 and page_ref_count(page) == 1


def test_flush_tlb_batched_pending_flushes_once():
    m = Machine(cpus=2)
    mm = new_mm(m, (0, 1))
    vma = anon_vma_at(mm, BASE)
    page = map_new_anon(mm, vma, BASE)
    page._refcount += 1
    touch(m, 1, mm, BASE, write=False)
    page.flags |= PG_locked
    rmap.try_to_migrate(page, rmap.TTU_BATCH_FLUSH)
    assert tlb_has(m, mm, BASE) == [1]
    # A parallel munmap/mprotect under the PTL must flush before trusting the page table.
    rmap.flush_tlb_batched_pending(mm)
    assert tlb_has(m, mm, BASE) == []
    assert mm.tlb_flush_batched == 1 | (1 << rmap.TLB_FLUSH_BATCH_FLUSHED_SHIFT)
    rmap.flush_tlb_batched_pending(mm)               # nothing pending: no flush
    rmap.try_to_unmap_flush()
    assert not rmap.current_tlb_ubc().flush_required
