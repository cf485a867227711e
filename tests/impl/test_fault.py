"""The page-fault paths (impl/fault.py, impl/x86_fault.py) on hand-built VMAs.

Numbers marked "real kernel" were measured on this machine's kernel (6.18.44, x86-64) by a C
program that ran the same sequence and read /proc/self/smaps, smaps_rollup, status and
getrusage (see the report of the fault-path work); the model must give the same answers.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings, strategies as st

from faultkit import BASE, LOCKED, NONE, RO, RW, SHARED, Env

from unmapcheck.impl import rmap, sched
from unmapcheck.impl.constants import (MM_ANONPAGES, MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS,
                                       PAGE_SIZE, TASK_SIZE)
from unmapcheck.impl.fault import (FAULT_FLAG_USER, FAULT_FLAG_WRITE, VM_FAULT_SIGBUS,
                                   handle_mm_fault, vm_normal_page)
from unmapcheck.impl.filemap import File, cache_page, folio_test_uptodate
from unmapcheck.impl.locks import mmap_read_lock, mmap_read_unlock
from unmapcheck.impl.page import (PG_dirty, PG_locked, PG_mlocked, folio_test_anon,
                                  page_mapcount)
from unmapcheck.impl.pgtable import iter_ptes, lookup_pte, pte_clear, set_pte_at
from unmapcheck.impl.pte import (PTE_NONE, make_migration_entry, pfn_pte, pte_wrprotect,
                                 swp_entry_to_pte)
from unmapcheck.impl.x86_fault import SEGV_ACCERR, SEGV_MAPERR, SigBus, SigSegv, user_access

A = BASE + 16 * PAGE_SIZE          # an address inside most test VMAs, pte_index 16


def load(env: Env, addr: int, cpu: int = 0):
    return user_access(env.task, env.cpu[cpu], addr, False)


def store(env: Env, addr: int, value: int, cpu: int = 0):
    return user_access(env.task, env.cpu[cpu], addr, True, value)


# --- anonymous memory ---------------------------------------------------------------------------
def test_anon_read_maps_the_zero_page():
    env = Env()
    vma = env.vma(BASE, 32, RW)
    zero = env.machine.zone.zero_page
    assert load(env, A + 5) == 0
    pte = env.pte(A)
    assert pte.pfn == zero.pfn and pte.special and not pte.write and not pte.dirty
    # real kernel: Rss 0 kB after reading a fresh private anonymous page (and dRssAnon 0 kB
    # after reading 4096 of them)
    assert env.rss == [0, 0, 0, 0]
    assert zero._refcount == 1 and zero._mapcount == -1
    assert vma.anon_vma is None                  # a read fault prepares no anon_vma
    assert vm_normal_page(vma, A, pte) is None
    # only the faulting page: no fault-around for anonymous memory
    assert env.present(BASE, 32) == [16]


def test_anon_write_allocates_an_exclusive_page():
    env = Env()
    vma = env.vma(BASE, 32, RW)
    store(env, A + 7, 0x5A)
    pte = env.pte(A)
    page = env.page_at(A)
    assert pte.write and pte.dirty and pte.young and not pte.special
    assert folio_test_anon(page) and page.mapping is vma.anon_vma
    assert page_mapcount(page) == 1 and page._refcount == 1
    assert rmap.PageAnonExclusive(page)
    assert env.rss[MM_ANONPAGES] == 1 and sum(env.rss) == 1
    assert load(env, A + 7) == 0x5A and load(env, A + 8) == 0


def test_anon_cow_after_read_replaces_the_zero_page():
    env = Env()
    env.vma(BASE, 4, RW)
    assert load(env, BASE) == 0
    assert env.pte(BASE).special
    store(env, BASE + 1, 9)
    pte = env.pte(BASE)
    page = env.page_at(BASE)
    # real kernel: Rss 0 -> 4 kB, Anonymous 0 -> 4 kB on the write after the read
    assert not pte.special and pte.write and pte.dirty and page.pfn != 0
    assert env.rss == [0, 1, 0, 0]
    assert page_mapcount(page) == 1 and page._refcount == 1
    z = env.machine.zone.zero_page
    assert z._refcount == 1 and z._mapcount == -1
    # the CPU's TLB now holds the new page, writable
    entry = env.cpu[0].tlb[(env.mm.id, BASE >> 12)]
    assert entry.pfn == page.pfn and entry.write


def test_locked_vma_mlocks_new_anonymous_pages():
    env = Env()
    env.vma(BASE, 4, RW | LOCKED)
    store(env, BASE, 1)
    assert env.page_at(BASE).flags & PG_mlocked
    env2 = Env()
    env2.vma(BASE, 4, RW)
    store(env2, BASE, 1)
    assert not env2.page_at(BASE).flags & PG_mlocked


def test_cow_of_a_page_shared_with_another_mm_then_reuse_by_the_last_user():
    """As after fork: two mms map the same anonymous page read-only. The first writer copies
    (the page has two references); the second, now the only user, reuses it in place."""
    env = Env()
    vma = env.vma(BASE, 4, RW)
    store(env, BASE, 0x11)
    page = env.page_at(BASE)
    # a second mm (the "child") sharing the page read-only, the way copy_present_pte does it
    from unmapcheck.impl.mm_types import mm_struct, vm_area_struct
    from unmapcheck.impl.task import task_struct
    mm2 = mm_struct(env.machine)
    t2 = task_struct(env.machine, mm2)
    vma2 = vm_area_struct(mm2, BASE, BASE + 4 * PAGE_SIZE, RW)
    mm2.mm_mt.store(vma2)
    assert rmap.anon_vma_prepare(vma2) == 0
    ptep = lookup_pte(env.mm, BASE)
    set_pte_at(env.mm, BASE, ptep, pte_wrprotect(ptep.table.table[ptep.idx]))
    env.cpu[0].tlb.clear()                       # the flush fork does (flush_tlb_mm)
    page._refcount += 1                          # folio_get
    assert rmap.folio_try_dup_anon_rmap_pte(page, page, vma2, vma) == 0
    from unmapcheck.impl.pgtable import walk_to_pmd, pte_alloc, pte_offset_map, pte_unmap
    pmd = walk_to_pmd(mm2, BASE, alloc=True)
    pte_alloc(mm2, pmd)
    ptep2 = pte_offset_map(pmd, BASE)            # (an RCU read-side section until pte_unmap)
    set_pte_at(mm2, BASE, ptep2, pfn_pte(page.pfn, write=False))
    pte_unmap(ptep2)
    mm2.rss_stat[MM_ANONPAGES] = 1
    assert page._refcount == 2 and page_mapcount(page) == 2

    store(env, BASE + 1, 0x22)                   # parent writes: copy
    new = env.page_at(BASE)
    assert new.pfn != page.pfn and new.read_byte(0) == 0x11 and new.read_byte(1) == 0x22
    assert page._refcount == 1 and page_mapcount(page) == 1
    assert env.rss[MM_ANONPAGES] == 1

    user_access(t2, env.cpu[1], BASE + 2, True, 0x33)     # child writes: reuse in place
    ptep2 = lookup_pte(mm2, BASE)
    pte2 = ptep2.table.table[ptep2.idx]
    assert pte2.pfn == page.pfn and pte2.write and pte2.dirty
    assert rmap.PageAnonExclusive(page)
    assert page.read_byte(0) == 0x11 and page.read_byte(1) == 0 and page.read_byte(2) == 0x33


# --- file mappings -------------------------------------------------------------------------------
def test_private_memfd_read_maps_the_page_cache_page_as_shmem():
    env = Env()
    f = env.memfd(1)
    env.vma(BASE, 1, RW, file=f)
    cached = cache_page(f, 0)
    assert load(env, BASE) == 0x40
    pte = env.pte(BASE)
    assert pte.pfn == cached.pfn and not pte.write and not pte.special
    # real kernel: a MAP_PRIVATE memfd page read counts in RssShmem (4096 pages read:
    # dRssShmem = 16384 kB, dRssFile = 0, dRssAnon = 0) and in smaps_rollup's Pss_Shmem.
    assert env.rss == [0, 0, 0, 1]
    assert page_mapcount(cached) == 1 and cached._refcount == 2   # page cache + PTE


def test_regular_file_read_counts_as_filepages():
    env = Env()
    f = File(env.machine, "disk", 2 * PAGE_SIZE, shmem=False)
    f.f_mapping.disk[1] = {0: 0x77}
    env.vma(BASE, 2, RO, file=f)
    assert load(env, BASE + PAGE_SIZE) == 0x77
    assert env.rss == [1, 0, 0, 0]
    assert env.rss[MM_FILEPAGES] == 1


def test_private_memfd_write_cows_into_an_anonymous_page():
    env = Env()
    f = env.memfd(1)
    vma = env.vma(BASE, 1, RW, file=f)
    cached = cache_page(f, 0)
    cached.flags &= ~PG_dirty                    # as if written back
    store(env, BASE + 3, 0x99)
    page = env.page_at(BASE)
    assert page.pfn != cached.pfn and folio_test_anon(page) and page.mapping is vma.anon_vma
    assert page.read_byte(0) == 0x40 and page.read_byte(3) == 0x99
    assert cached.read_byte(3) == 0 and not cached.flags & PG_dirty
    assert page_mapcount(cached) == 0 and cached._refcount == 1   # only the page cache
    assert env.rss == [0, 1, 0, 0]
    assert env.pte(BASE).write and env.pte(BASE).dirty


def test_private_memfd_read_then_write():
    env = Env()
    f = env.memfd(16)
    env.vma(BASE, 16, RW, file=f)
    assert load(env, BASE) == 0x40
    # real kernel: Rss 64 kB (fault-around: 16 pages), Anonymous 0
    assert env.rss == [0, 0, 0, 16]
    store(env, BASE, 0x41)
    # real kernel: Rss 64 kB, Anonymous 4 kB after the write
    assert env.rss == [0, 1, 0, 15]
    assert folio_test_anon(env.page_at(BASE))
    assert page_mapcount(cache_page(f, 0)) == 0
    assert all(page_mapcount(cache_page(f, i)) == 1 for i in range(1, 16))


def test_shared_memfd_write_dirties_page_and_pte():
    env = Env()
    f = env.memfd(1)
    env.vma(BASE, 1, RW | SHARED, file=f)
    cached = cache_page(f, 0)
    cached.flags &= ~PG_dirty                    # as if written back
    store(env, BASE + 1, 0x61)
    pte = env.pte(BASE)
    assert pte.pfn == cached.pfn and pte.write and pte.dirty
    assert cached.flags & PG_dirty
    assert cached.read_byte(1) == 0x61 and not cached.flags & PG_locked
    assert env.rss == [0, 0, 0, 1]


def test_shared_memfd_read_maps_writable_so_the_write_does_not_fault():
    # real kernel: shared memfd read 1 fault, write-after-read 0 faults (no write-notify for
    # shmem); private memfd: 1 + 1 (COW); shared ext4 file: 1 + 1 (write-notify)
    env = Env()
    f = env.memfd(1)
    env.vma(BASE, 1, RW | SHARED, file=f)
    cache_page(f, 0).flags &= ~PG_dirty          # as if written back
    load(env, BASE)
    pte = env.pte(BASE)
    assert pte.write and not pte.dirty
    tlb = env.cpu[0].tlb[(env.mm.id, BASE >> 12)]
    assert tlb.write
    store(env, BASE, 1)                          # the MMU sets the dirty bit, no fault
    assert env.pte(BASE).dirty


def test_shared_regular_file_is_write_notified():
    env = Env()
    f = File(env.machine, "disk", PAGE_SIZE, shmem=False)
    env.vma(BASE, 1, RW | SHARED, file=f)
    load(env, BASE)
    page = cache_page(f, 0)
    assert not env.pte(BASE).write and not page.flags & PG_dirty
    store(env, BASE, 5)                          # wp_page_shared -> filemap_page_mkwrite
    pte = env.pte(BASE)
    assert pte.pfn == page.pfn and pte.write and pte.dirty
    assert page.flags & PG_dirty and not page.flags & PG_locked
    assert page._refcount == 2 and page_mapcount(page) == 1


# --- fault-around ------------------------------------------------------------------------------
# (offset of the VMA from a PMD boundary in pages, VMA pages, vm_pgoff, faulting page) ->
# pages mapped, measured on the real kernel with a 64-page memfd fully in the page cache.
FAULT_AROUND_CASES = [
    (0, 32, 0, 0, 16), (0, 32, 0, 10, 16), (0, 32, 0, 17, 16), (5, 32, 0, 10, 16),
    (5, 32, 0, 2, 16), (5, 4, 0, 1, 4), (3, 32, 7, 20, 16), (0, 32, 40, 5, 16),
    (510, 8, 0, 0, 2), (510, 8, 0, 3, 6), (500, 30, 0, 15, 16), (13, 32, 0, 0, 16),
]


@pytest.mark.parametrize("off,npages,pgoff,k,expected", FAULT_AROUND_CASES)
def test_fault_around_matches_the_real_kernel(off, npages, pgoff, k, expected):
    env = Env()
    f = env.memfd(64)
    start = BASE + off * PAGE_SIZE
    env.vma(start, npages, RO, file=f, pgoff=pgoff)
    assert load(env, start + k * PAGE_SIZE) == 0x40 + (pgoff + k) % 64
    mapped = env.present(start, npages)
    assert len(mapped) == expected
    assert k in mapped
    # the window is contiguous, inside one PTE table
    assert mapped == list(range(mapped[0], mapped[0] + expected))
    tables = {lookup_pte(env.mm, start + i * PAGE_SIZE).table.pfn for i in mapped}
    assert len(tables) == 1
    assert env.rss == [0, 0, 0, expected]
    for i in mapped:
        page = cache_page(f, pgoff + i)
        assert env.pte(start + i * PAGE_SIZE).pfn == page.pfn
        assert page_mapcount(page) == 1 and page._refcount == 2 and not page.flags & PG_locked


def test_fault_around_maps_only_cached_pages_then_fault_fills_the_hole():
    env = Env()
    f = env.memfd(32, populate=range(0, 32, 2))
    env.vma(BASE, 32, RO, file=f)
    load(env, BASE + 4 * PAGE_SIZE)
    # real kernel: 8 pages (the even ones of the 16-page window)
    assert env.present(BASE, 32) == list(range(0, 16, 2))
    load(env, BASE + 5 * PAGE_SIZE)
    # real kernel: 9 pages after faulting the uncached page 5
    assert env.present(BASE, 32) == sorted(list(range(0, 16, 2)) + [5])
    assert env.rss[MM_SHMEMPAGES] == 9


def test_fault_around_disabled():
    env = Env(fault_around_pages=1)
    f = env.memfd(32)
    env.vma(BASE, 32, RO, file=f)
    load(env, BASE + 3 * PAGE_SIZE)
    assert env.present(BASE, 32) == [3]


def test_fault_around_stops_at_i_size_and_beyond_is_sigbus():
    env = Env()
    f = env.memfd(5)
    env.vma(BASE, 16, RO | SHARED, file=f)
    load(env, BASE)
    # real kernel: size 5 pages, 16-page mapping, read page 0 -> Rss 5 pages
    assert env.present(BASE, 16) == [0, 1, 2, 3, 4]
    with pytest.raises(SigBus) as e:
        load(env, BASE + 6 * PAGE_SIZE + 12)     # real kernel: SIGBUS (7)
    assert e.value.addr == BASE + 6 * PAGE_SIZE + 12
    assert env.mm.mmap_lock.readers == [] and env.mm.mmap_lock.writer is None
    assert cache_page(f, 6) is None              # nothing was allocated past EOF
    assert handle_mm_fault_locked(env, BASE + 7 * PAGE_SIZE, 0) == VM_FAULT_SIGBUS


def handle_mm_fault_locked(env: Env, addr: int, flags: int) -> int:
    mmap_read_lock(env.mm)
    try:
        vma = env.mm.mm_mt.vmas[[v.vm_start <= addr < v.vm_end for v in
                                  env.mm.mm_mt.vmas].index(True)]
        return handle_mm_fault(vma, addr, flags | FAULT_FLAG_USER)
    finally:
        mmap_read_unlock(env.mm)


# --- signals -------------------------------------------------------------------------------------
def test_write_to_read_only_vma_is_sigsegv_accerr():
    env = Env()
    f = env.memfd(1)
    env.vma(BASE, 1, RO | SHARED, file=f)
    assert load(env, BASE) == 0x40
    with pytest.raises(SigSegv) as e:            # real kernel: SIGSEGV (11)
        store(env, BASE, 1)
    assert e.value.code == SEGV_ACCERR and e.value.addr == BASE
    assert env.mm.mmap_lock.readers == []


def test_prot_none_read_is_sigsegv():
    env = Env()
    env.vma(BASE, 1, NONE)
    with pytest.raises(SigSegv) as e:            # real kernel: SIGSEGV (11)
        load(env, BASE)
    assert e.value.code == SEGV_ACCERR
    assert env.pte(BASE) == PTE_NONE


def test_unmapped_and_kernel_addresses_are_sigsegv_maperr():
    env = Env()
    env.vma(BASE, 1, RW)
    with pytest.raises(SigSegv) as e:
        load(env, BASE + PAGE_SIZE)
    assert e.value.code == SEGV_MAPERR
    with pytest.raises(SigSegv):
        store(env, TASK_SIZE + 0x1000, 1)
    with pytest.raises(SigSegv):
        load(env, 0xFFFF_8880_0000_0000)
    assert env.mm.mmap_lock.readers == []


def test_access_below_a_growsdown_vma_expands_it_unless_the_guard_gap_is_taken():
    """lock_mm_and_find_vma -> expand_stack_locked -> expand_downwards (real kernel 6.18.44:
    tests/oracle/regressions/test_access_below_a_growsdown_vma_grows_the_stack.py)."""
    from unmapcheck.impl.constants import VM_GROWSDOWN
    env = Env()
    stack = env.vma(BASE + 16 * PAGE_SIZE, 1, RW | VM_GROWSDOWN, pgoff=(BASE >> 12) + 16)
    store(env, BASE + 12 * PAGE_SIZE, 7)             # four pages below: grows to there
    assert (stack.vm_start, stack.vm_end) == (BASE + 12 * PAGE_SIZE, BASE + 17 * PAGE_SIZE)
    assert stack.vm_pgoff == (BASE >> 12) + 12 and stack.anon_vma is not None
    assert load(env, BASE + 12 * PAGE_SIZE) == 7
    assert env.mm.mmap_lock.readers == [] and env.mm.mmap_lock.writer is None
    # An accessible VMA ending less than stack_guard_gap below the new start: SIGSEGV.
    env.vma(BASE, 1, RW)
    with pytest.raises(SigSegv) as e:
        load(env, BASE + 8 * PAGE_SIZE)
    assert e.value.code == SEGV_MAPERR and stack.vm_start == BASE + 12 * PAGE_SIZE
    assert env.mm.mmap_lock.readers == [] and env.mm.mmap_lock.writer is None


# --- the TLB -------------------------------------------------------------------------------------
def test_tlb_hit_uses_the_cached_translation():
    env = Env()
    env.vma(BASE, 4, RW)
    store(env, BASE, 0x42, cpu=0)
    page = env.page_at(BASE)
    assert env.mm.cpumask == {0}
    assert env.cpu[0].active_mm is env.mm
    key = (env.mm.id, BASE >> 12)
    assert env.cpu[0].tlb[key].pfn == page.pfn
    # clear the PTE behind the TLB's back (no flush): CPU 0 still reads the old page...
    ptep = lookup_pte(env.mm, BASE)
    pte_clear(env.mm, BASE, ptep)
    assert load(env, BASE, cpu=0) == 0x42
    # ...while CPU 1 misses, faults, and gets the zero page
    assert load(env, BASE, cpu=1) == 0
    assert env.pte(BASE).special
    assert env.mm.cpumask == {0, 1}


def test_cow_flushes_the_old_translation_on_every_cpu():
    env = Env()
    env.vma(BASE, 1, RW)
    load(env, BASE, cpu=0)
    load(env, BASE, cpu=1)                       # both CPUs cache the zero page
    key = (env.mm.id, BASE >> 12)
    assert env.cpu[1].tlb[key].pfn == 0
    store(env, BASE, 7, cpu=0)                   # wp_page_copy: ptep_clear_flush
    assert key not in env.cpu[1].tlb
    assert load(env, BASE, cpu=1) == 7


# --- non-present entries -------------------------------------------------------------------------
def test_migration_entry_waits_for_the_folio_lock_then_retries():
    env = Env()
    env.vma(BASE, 1, RW)
    store(env, BASE, 3)
    page = env.page_at(BASE)
    ptep = lookup_pte(env.mm, BASE)
    old = ptep.table.table[ptep.idx]
    set_pte_at(env.mm, BASE, ptep, make_migration_entry(page.pfn, True))
    env.cpu[0].tlb.clear()
    # migration in progress holds the folio lock: the fault sleeps on it (a single thread
    # would sleep forever)
    page.flags |= PG_locked
    with pytest.raises(sched.Deadlock):
        handle_mm_fault_locked(env, BASE, 0)
    env.mm.mmap_lock.readers.clear()
    # migration done and unlocked, but the entry still there: the fault returns 0 and the
    # PTE is untouched (the instruction will be retried)
    page.flags &= ~PG_locked
    assert handle_mm_fault_locked(env, BASE, 0) == 0
    assert env.pte(BASE).kind == 3
    # remove_migration_ptes put the page back: the retried access succeeds
    set_pte_at(env.mm, BASE, ptep, old)
    assert load(env, BASE) == 3


def test_migration_entry_forever_is_a_livelock_in_a_sequential_run():
    env = Env()
    env.vma(BASE, 1, RW)
    store(env, BASE, 3)
    page = env.page_at(BASE)
    ptep = lookup_pte(env.mm, BASE)
    set_pte_at(env.mm, BASE, ptep, make_migration_entry(page.pfn, True))
    env.cpu[0].tlb.clear()
    with pytest.raises(sched.Deadlock):
        load(env, BASE)


def test_swap_entry_is_read_back_into_an_exclusive_anonymous_page():
    env = Env()
    vma = env.vma(BASE, 2, RW)
    assert rmap.anon_vma_prepare(vma) == 0
    from unmapcheck.impl.pgtable import walk_to_pmd, pte_alloc, pte_offset_map, pte_unmap
    pmd = walk_to_pmd(env.mm, BASE, alloc=True)
    pte_alloc(env.mm, pmd)
    # What reclaim leaves once the folio is gone: a slot one PTE references.
    env.machine.swap.swap_map[5] = 1
    env.machine.swap.data[5] = {0: 0xAB, 1: 0xCD}
    ptep = pte_offset_map(pmd, BASE)             # (an RCU read-side section until pte_unmap)
    set_pte_at(env.mm, BASE, ptep, swp_entry_to_pte(5))
    pte_unmap(ptep)
    env.mm.rss_stat[MM_SWAPENTS] = 1
    assert load(env, BASE + 1) == 0xCD
    page = env.page_at(BASE)
    pte = env.pte(BASE)
    assert folio_test_anon(page) and rmap.PageAnonExclusive(page)
    assert pte.write and not pte.dirty           # exclusive: writable; a read: clean
    assert env.rss == [0, 1, 0, 0]
    assert 5 not in env.machine.swap.swap_map         # swap_free, swapcache_clear
    assert page_mapcount(page) == 1 and page._refcount == 1 and not page.flags & PG_locked
    assert folio_test_uptodate(page)


def test_write_fault_sets_dirty_on_a_clean_writable_pte():
    env = Env()
    f = env.memfd(2)
    env.vma(BASE, 2, RW | SHARED, file=f)
    cache_page(f, 0).flags &= ~PG_dirty          # page 0 written back, page 1 still dirty
    load(env, BASE)
    # set_pte_range: a read fault through a writable vm_page_prot maps a dirty folio dirty
    assert env.pte(BASE + PAGE_SIZE).dirty and env.pte(BASE + PAGE_SIZE).write
    assert not env.pte(BASE).dirty
    ret = handle_mm_fault_locked(env, BASE, FAULT_FLAG_WRITE)
    assert ret == 0 and env.pte(BASE).dirty


# --- fault counts (getrusage ru_minflt deltas on the real kernel) -------------------------------
def count_faults(monkeypatch, env: Env, accesses) -> list[int]:
    from unmapcheck.impl import x86_fault
    n = [0]
    real = x86_fault.exc_page_fault

    def counting(task, error_code, address):
        n[0] += 1
        return real(task, error_code, address)
    monkeypatch.setattr(x86_fault, "exc_page_fault", counting)
    out = []
    for page, write in accesses:
        before = n[0]
        if write:
            store(env, BASE + page * PAGE_SIZE, 2)
        else:
            load(env, BASE + page * PAGE_SIZE)
        out.append(n[0] - before)
    return out


@pytest.mark.parametrize("flags,shmem,accesses,expected", [
    # real kernel: shared memfd: read pg0 1 fault, write pg0 0 faults, write pg5 0 faults
    (RW | SHARED, True, [(0, False), (0, True), (5, True)], [1, 0, 0]),
    # real kernel: private memfd: read pg0 1, write pg5 (faulted around, read-only) 1
    (RW, True, [(0, False), (5, True)], [1, 1]),
    # real kernel: private memfd: write pg3 first 1 (no fault-around on a write), read pg4 1
    (RW, True, [(3, True), (4, False)], [1, 1]),
    # real kernel: shared ext4 file: read 1, write-after-read 1 (write-notify)
    (RW | SHARED, False, [(0, False), (0, True)], [1, 1]),
])
def test_fault_counts_match_the_real_kernel(monkeypatch, flags, shmem, accesses, expected):
    env = Env()
    if shmem:
        f = env.memfd(16)
    else:
        f = File(env.machine, "disk", 16 * PAGE_SIZE, shmem=False)
    env.vma(BASE, 16, flags, file=f)
    assert count_faults(monkeypatch, env, accesses) == expected


# --- a property test: random loads and stores against a reference memory -------------------------
OPS = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 7), st.booleans(),
                         st.integers(0, 255), st.integers(0, 1)), max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=OPS)
def test_random_accesses_agree_with_a_reference_memory(ops):
    """Three VMAs -- private anonymous, private memfd, shared memfd (same file) -- and random
    one-byte loads and stores on two CPUs. Reference: anonymous memory reads its own stores
    or 0; a shared mapping reads and writes the file; a private file page reads the file until
    the mapping's first store to it (COW), its own copy afterwards. After every access the
    rss counters and every page's mapcount and refcount equal what the PTEs say."""
    env = Env()
    f = env.memfd(8)
    bases = [BASE, BASE + 0x100000, BASE + 0x200000]
    env.vma(bases[0], 8, RW)
    env.vma(bases[1], 8, RW, file=f)
    env.vma(bases[2], 8, RW | SHARED, file=f)
    file_mem = {p: 0x40 + p for p in range(8)}          # byte 0 of each file page
    anon = {}
    private = {}                                        # COWed pages of the private mapping
    for vi, page, write, value, cpu in ops:
        addr = bases[vi] + page * PAGE_SIZE
        if write:
            store(env, addr, value, cpu)
            if vi == 0:
                anon[page] = value
            elif vi == 1:
                private[page] = value
            else:
                file_mem[page] = value
        else:
            got = load(env, addr, cpu)
            want = (anon.get(page, 0) if vi == 0 else
                    private.get(page, file_mem[page]) if vi == 1 else file_mem[page])
            assert got == want, (vi, page)
        # accounting is exact after every access
        counts, rss = {}, [0, 0, 0, 0]
        for vaddr, pte, _t in iter_ptes(env.mm):
            if pte.kind != 1 or pte.special:
                continue
            pg = env.machine.zone.pfn_to_page(pte.pfn)
            counts[pg.pfn] = counts.get(pg.pfn, 0) + 1
            rss[MM_ANONPAGES if folio_test_anon(pg) else MM_SHMEMPAGES] += 1
        assert rss == env.rss
        for pg in env.machine.zone.mem_map:
            if not pg.free and pg.kind in ("anon", "file"):
                assert page_mapcount(pg) == counts.get(pg.pfn, 0)
                assert pg._refcount == counts.get(pg.pfn, 0) + (pg.kind == "file")
                assert not pg.flags & PG_locked


# --- the return to user space after a fault (exit_to_user_mode_prepare's lockdep check) ----------
def test_a_fault_that_returns_to_user_space_holding_a_lock_is_reported(monkeypatch):
    """A page fault returns to user space through irqentry_exit_to_user_mode(), where
    lockdep_sys_exit() checks no lock is held, as after a system call."""
    from unmapcheck.impl import System, locks
    from unmapcheck.impl import x86_fault as X
    from unmapcheck.impl.constants import MAP_PRIVATE
    s = System()
    p = s.spawn()
    fd = s.create_file("f", PAGE_SIZE)
    a = p.mmap(0, PAGE_SIZE, RW, MAP_PRIVATE, fd)
    assert p.load(a) == 0
    real = X.handle_mm_fault

    def keeps_the_page_table_lock(vma, address, flags, regs=None):
        ret = real(vma, address, flags, regs)
        locks.spin_lock(vma.vm_mm.page_table_lock)
        return ret
    monkeypatch.setattr(X, "handle_mm_fault", keeps_the_page_table_lock)
    with pytest.raises(sched.LockDiscipline, match="lock held when returning to user space"):
        p.store(a, 0x41)


def test_the_explorer_reports_a_lost_cow_race_that_keeps_the_pte_lock(monkeypatch):
    """never-cow-fault-vs-cow-fault with wp_page_copy's lost race (the PTE changed under
    it) returning without pte_unmap_unlock(): the fault returns to user space holding the
    PTL (LOCK, with a trace)."""
    import sys
    from pathlib import Path
    from unmapcheck.checker.explore import iterative_context_bounding
    from unmapcheck.checker.scenario import load
    from unmapcheck.impl import fault as F
    sc = load(str(Path(__file__).resolve().parents[2] / "proofs" / "scenarios"
                  / "never-cow-fault-vs-cow-fault.toml"))
    assert iterative_context_bounding(sc, 1).best() is None
    real = F.pte_unmap_unlock

    def keep_on_lost_race(pte, ptl):
        caller = sys._getframe(1)
        if caller.f_code.co_name == "wp_page_copy" and not caller.f_locals["page_copied"]:
            return None
        return real(pte, ptl)
    monkeypatch.setattr(F, "pte_unmap_unlock", keep_on_lost_race)
    best = iterative_context_bounding(sc, 1).best()
    assert best is not None and best.violation.group == "LOCK", best
    assert "lock held when returning to user space" in best.violation.message
    assert best.schedule and best.preemptions == 1
