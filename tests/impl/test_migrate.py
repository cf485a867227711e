"""Tests of impl/migrate.py: the migration actor on anonymous and page-cache folios, the
reference/mapcount/rss accounting, the deferred TLB flush, a zap racing with the migration
(bug 15's step 3), the undo path, and migration_entry_wait.

State is built by hand (Machine, mm_struct, VMAs in mm.mm_mt, PTEs via the pgtable
allocators), independent of the syscall layer.
"""

from __future__ import annotations

import pytest
from statekit import install_pte, new_mm, read_pte, tlb_has, touch
from schedkit import GreenletRuntime, random_policy

from unmapcheck.impl import cpu as hw
from unmapcheck.impl import migrate, rmap, sched
from unmapcheck.impl.constants import (EBUSY, MM_ANONPAGES, MM_FILEPAGES, PAGE_SIZE,
                                       VM_MAYSHARE, VM_READ, VM_SHARED, VM_WRITE)
from unmapcheck.impl.filemap import File
from unmapcheck.impl.machine import Machine
from unmapcheck.impl.mm_types import inc_mm_counter, vm_area_struct
from unmapcheck.impl.page import (PG_dirty, PG_locked, PG_lru, folio_get, folio_put,
                                  page_mapcount, page_ref_count)
from unmapcheck.impl.pgtable import (lookup_pte, set_pte_at, walk_to_pmd)
from unmapcheck.impl.pte import PTE_NONE, is_migration_entry, pfn_pte, pte_none

BASE = 0x7F0000000000


# --- hand-built state (same shape as tests/impl/test_rmap.py) -----------------------------------


def anon_setup(m, cpus=(0,), value=0x5A):
    mm = new_mm(m, cpus)
    vma = vm_area_struct(mm, BASE, BASE + 4 * PAGE_SIZE, VM_READ | VM_WRITE, BASE >> 12)
    mm.mm_mt.store(vma)
    rmap.anon_vma_prepare(vma)
    page = m.zone.alloc_page("anon")
    page.flags |= PG_lru
    rmap.folio_add_new_anon_rmap(page, vma, BASE)
    install_pte(mm, BASE, pfn_pte(page.pfn, write=True))
    inc_mm_counter(mm, MM_ANONPAGES)
    for c in cpus:
        touch(m, c, mm, BASE, True, value)
    return mm, vma, page


def file_setup(m, cpus=(0,), value=0x33):
    mm = new_mm(m, cpus)
    f = File(m, "f", 4 * PAGE_SIZE, shmem=True)
    flags = VM_READ | VM_WRITE | VM_SHARED | VM_MAYSHARE
    vma = vm_area_struct(mm, BASE, BASE + 4 * PAGE_SIZE, flags, 0, f)
    mm.mm_mt.store(vma)
    rmap.vma_interval_tree_insert(vma, f.f_mapping.i_mmap)
    page = m.zone.alloc_page("file")                # the page cache's reference
    page.mapping, page.index = f.f_mapping, 2
    page.flags |= PG_lru
    f.f_mapping.i_pages[2] = page
    folio_get(page)                                 # the PTE's reference
    rmap.folio_add_file_rmap_ptes(page, page, 1, vma)
    addr = BASE + 2 * PAGE_SIZE
    install_pte(mm, addr, pfn_pte(page.pfn, write=True))
    inc_mm_counter(mm, MM_FILEPAGES)
    for c in cpus:
        touch(m, c, mm, addr, True, value)
    return mm, f, vma, page, addr


@pytest.fixture(autouse=True)
def fresh_current():
    sched.uninstall()
    sched.current().__dict__.pop("tlb_ubc", None)
    yield
    sched.current().__dict__.pop("tlb_ubc", None)
    sched.current().held.clear()


def nothing_locked(*pages):
    return sched.current().held == [] and not any(p.flags & PG_locked for p in pages)


# --- round trips ---------------------------------------------------------------------------------
@pytest.mark.parametrize("cpus", [(0,), (0, 1)])
@pytest.mark.parametrize("mode", [migrate.MIGRATE_SYNC, migrate.MIGRATE_ASYNC])
def test_anon_round_trip(cpus, mode):
    m = Machine(cpus=2)
    mm, vma, src = anon_setup(m, cpus)
    assert tlb_has(m, mm, BASE) == list(cpus)
    allocated = m.zone.nr_allocated()
    assert migrate.migrate_folio_actor(m, src, mode=mode) == 0
    pte = read_pte(mm, BASE)
    dst = m.zone.pfn_to_page(pte.pfn)
    assert dst is not src and src.free                    # the old frame was freed
    assert pte.write and pte.dirty and pte.young
    assert page_mapcount(dst) == 1 and page_ref_count(dst) == 1
    assert dst.mapping is vma.anon_vma and dst.index == vma.vm_pgoff
    assert dst.flags & PG_lru and dst.flags & PG_dirty and rmap.PageAnonExclusive(dst)
    assert dst.read_byte(0) == 0x5A                      # contents copied
    assert mm.rss_stat[MM_ANONPAGES] == 1                # rss unchanged
    assert m.zone.nr_allocated() == allocated            # one frame out, one in
    assert tlb_has(m, mm, BASE) == []                    # no CPU can still reach src
    assert nothing_locked(dst) and vma.anon_vma.refcount == 1
    assert touch(m, 0, mm, BASE, False) == 0x5A          # reads the new frame


def test_file_round_trip_moves_the_page_cache_slot():
    m = Machine(cpus=2)
    mm, f, vma, src, addr = file_setup(m, (0, 1))
    src.flags |= PG_dirty
    assert page_ref_count(src) == 2
    assert migrate.migrate_folio_actor(m, src) == 0
    dst = f.f_mapping.i_pages[2]
    assert dst is not src and src.free
    assert read_pte(mm, addr).pfn == dst.pfn and read_pte(mm, addr).write
    assert page_mapcount(dst) == 1 and page_ref_count(dst) == 2    # PTE + page cache
    assert dst.mapping is f.f_mapping and dst.index == 2
    assert dst.flags & PG_dirty and dst.read_byte(0) == 0x33
    assert mm.rss_stat[MM_FILEPAGES] == 1
    assert tlb_has(m, mm, addr) == [] and nothing_locked(dst)


def test_unmapped_page_cache_folio_migrates():
    m = Machine()
    mm, f, vma, src, addr = file_setup(m)
    # Drop the mapping by hand (as a zap would, with its reference).
    set_pte_at(mm, addr, lookup_pte(mm, addr), PTE_NONE)
    rmap.folio_remove_rmap_ptes(src, src, 1, vma)
    folio_put(src)
    assert migrate.migrate_folio_actor(m, src) == 0
    dst = f.f_mapping.i_pages[2]
    assert src.free and page_ref_count(dst) == 1 and page_mapcount(dst) == 0


# --- a zap while the folio is under migration ----------------------------------------------------
def test_zapped_migration_entry_restores_nothing_and_frees_both_frames():
    """Bug 15's step 3: the PTE became a migration entry; munmap zapped the entry; then
    remove_migration_ptes finds nothing. The source frame is still freed exactly once, and the
    destination, never mapped, is freed by the migration's final folio_put."""
    m = Machine()
    mm, vma, src = anon_setup(m)
    ctx = migrate.MigrateCtx()
    from_ = []
    folio_get(src)
    assert migrate.isolate_folio_to_list(ctx, src, from_)
    folio_put(src)
    rc, dst = migrate.migrate_folio_unmap(ctx, migrate.alloc_migration_target, None, m, src,
                                          migrate.MIGRATE_SYNC, [])
    assert rc == 0 and is_migration_entry(read_pte(mm, BASE))
    assert mm.rss_stat[MM_ANONPAGES] == 1                # migration leaves rss alone
    # The zap of the migration entry (zap_nonpresent_ptes clears it; the rss update is the
    # zap's business, fix 9f9f1acd713d).
    set_pte_at(mm, BASE, lookup_pte(mm, BASE), PTE_NONE)
    ctx.list_move_tail(src, [])
    dsts = []
    ctx.list_add_tail(dst, dsts)
    assert migrate.migrate_folio_move(ctx, None, m, src, dst, migrate.MIGRATE_SYNC,
                                      migrate.MR_COMPACTION, [], dsts) == 0
    assert pte_none(read_pte(mm, BASE))
    assert src.free and dst.free
    assert mm.rss_stat[MM_ANONPAGES] == 1                # what the zap must fix up
    assert vma.anon_vma.refcount == 1 and nothing_locked()


# --- failure and undo ----------------------------------------------------------------------------
def test_extra_reference_fails_and_undoes():
    m = Machine(cpus=2)
    mm, vma, src = anon_setup(m, (0, 1))
    folio_get(src)                                      # e.g. a GUP pin-like reference
    allocated = m.zone.nr_allocated()
    rc = migrate.migrate_folio_actor(m, src)
    assert rc > 0
    pte = read_pte(mm, BASE)
    assert pte.pfn == src.pfn and pte.write and pte.dirty
    assert page_mapcount(src) == 1 and page_ref_count(src) == 2
    assert src.flags & PG_lru and rmap.PageAnonExclusive(src)
    assert m.zone.nr_allocated() == allocated            # every destination was freed
    assert tlb_has(m, mm, BASE) == []                    # the unmap was flushed
    assert nothing_locked(src) and vma.anon_vma.refcount == 1
    assert mm.rss_stat[MM_ANONPAGES] == 1


def test_locked_folio_async_is_busy_then_sync_waits():
    m = Machine()
    mm, vma, src = anon_setup(m)
    src.flags |= PG_locked                              # someone holds the folio lock
    assert migrate.migrate_folio_actor(m, src, mode=migrate.MIGRATE_ASYNC) > 0
    assert read_pte(mm, BASE).pfn == src.pfn and src.flags & PG_lru
    with pytest.raises(sched.Deadlock):                 # sync would sleep on the lock
        migrate.migrate_folio_actor(m, src, mode=migrate.MIGRATE_SYNC)


def test_isolation_needs_an_lru_folio():
    m = Machine()
    mm, vma, src = anon_setup(m)
    src.flags &= ~PG_lru                                # already isolated by someone
    assert migrate.migrate_folio_actor(m, src) == -EBUSY
    assert page_ref_count(src) == 1
    free = m.zone.alloc_page("anon")
    folio_put(free)
    assert migrate.migrate_folio_actor(m, free) == -EBUSY   # a free frame: no reference


# --- migration_entry_wait ------------------------------------------------------------------------
def test_migration_entry_wait():
    m = Machine()
    mm, vma, src = anon_setup(m)
    src._refcount += 1
    src.flags |= PG_locked
    rmap.try_to_migrate(src, 0)
    pmd = walk_to_pmd(mm, BASE, alloc=False)
    # The migration thread holds the folio lock: a faulting thread would sleep.
    with pytest.raises(sched.Deadlock):
        migrate.migration_entry_wait(mm, pmd, BASE)
    sched.current().held.clear()
    src.flags &= ~PG_locked
    migrate.migration_entry_wait(mm, pmd, BASE)         # unlocked: returns, fault retries
    assert sched.current().held == []
    migrate.migration_entry_wait(mm, pmd, BASE + PAGE_SIZE)   # none PTE: nothing to wait


# --- interleavings with a concurrent zap ----------------------------------------------------------
def zap_one(m, mm, vma, addr, rss_fix=True):
    """A minimal zap of one PTE (zap_pte_range's order for one entry, with the TLB flush
    under the PTL): a present PTE loses its rmap and reference; a migration entry is just
    cleared (with fix 9f9f1acd713d's rss decrement)."""
    from unmapcheck.impl.mm_types import dec_mm_counter
    from unmapcheck.impl.pgtable import ptep_get_and_clear, pte_offset_map_lock, \
        pte_unmap_unlock
    from unmapcheck.impl.pte import pte_present
    pmd = walk_to_pmd(mm, addr, alloc=False)
    ptep, ptl = pte_offset_map_lock(mm, pmd, addr)
    pte = ptep_get_and_clear(mm, addr, ptep)
    page = None
    if pte_present(pte):
        page = m.zone.pfn_to_page(pte.pfn)
        hw.flush_tlb_page(m, mm, addr)
        rmap.folio_remove_rmap_pte(page, page, vma)
        dec_mm_counter(mm, MM_ANONPAGES)
    elif is_migration_entry(pte) and rss_fix:
        dec_mm_counter(mm, MM_ANONPAGES)
    pte_unmap_unlock(ptep, ptl)
    if page is not None:
        folio_put(page)


@pytest.mark.parametrize("mode", [migrate.MIGRATE_SYNC, migrate.MIGRATE_ASYNC])
def test_migration_vs_zap_random_schedules(mode):
    """Over many seeded random interleavings of the migration actor and a zap of the page:
    nothing leaks and nothing is freed twice; every frame but the page tables ends free; the
    PTE ends none; rss ends exact; no lock or anon_vma reference is left behind."""
    import random
    for seed in range(150):
        m = Machine(cpus=2)
        mm, vma, src = anon_setup(m, (0, 1))
        results = {}
        rng = random.Random(seed)
        rt = GreenletRuntime([
            lambda: results.__setitem__("mig", migrate.migrate_folio_actor(m, src, mode=mode)),
            lambda: zap_one(m, mm, vma, BASE),
        ], random_policy(rng, delay=rng.randrange(0, 150)))
        rt.run()
        assert pte_none(read_pte(mm, BASE)), seed
        assert mm.rss_stat[MM_ANONPAGES] == 0, seed
        user = [p for p in m.zone.mem_map if not p.free and p.kind not in ("pgtable", "zero")]
        assert user == [], (seed, user)
        assert vma.anon_vma.refcount == 1, seed
        assert all(ctx.held == [] for ctx in rt.ctxs), seed
        assert results["mig"] in (0, -EBUSY), (seed, results)
