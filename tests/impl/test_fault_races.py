"""Concurrent faults on the same pages, under many seeded random schedules.

A minimal greenlet runtime (independent of the checker) switches threads at every
scheduling point of impl/ code; a thread whose step is blocked (a lock held, a folio locked)
is not scheduled. After both accesses complete, the state must be consistent: every present
PTE counted once in rss, every mapped page's mapcount equal to the PTEs that map it, no page
leaked (an anonymous page nobody maps is freed), no lock left held.
"""

from __future__ import annotations

import random

import pytest
from schedkit import GreenletRuntime, random_policy

from faultkit import BASE, RW, SHARED, Env

from unmapcheck.impl import sched
from unmapcheck.impl.constants import MM_ANONPAGES, MM_SHMEMPAGES, PAGE_SIZE
from unmapcheck.impl.filemap import cache_page
from unmapcheck.impl.page import PG_locked, folio_test_anon, page_mapcount
from unmapcheck.impl.pgtable import iter_ptes
from unmapcheck.impl.x86_fault import user_access


def check_consistent(env: Env) -> None:
    mm = env.mm
    counts = {}
    rss = [0, 0, 0, 0]
    for addr, pte, _table in iter_ptes(mm):
        if pte.kind != 1 or pte.special:
            continue
        page = env.machine.zone.pfn_to_page(pte.pfn)
        assert not page.free
        counts[page.pfn] = counts.get(page.pfn, 0) + 1
        rss[MM_ANONPAGES if folio_test_anon(page) else MM_SHMEMPAGES] += 1
    assert rss == mm.rss_stat
    for page in env.machine.zone.mem_map:
        if page.free or page.kind not in ("anon", "file"):
            continue
        assert page_mapcount(page) == counts.get(page.pfn, 0), page
        assert not page.flags & PG_locked, page
        if page.kind == "anon":
            # no leak: an anonymous page is referenced exactly by its mappings
            assert page._refcount == counts.get(page.pfn, 0) >= 1, page
        else:
            # a page-cache page: the cache's reference plus one per mapping
            assert page._refcount == 1 + counts.get(page.pfn, 0), page
    assert mm.mmap_lock.readers == [] and mm.mmap_lock.writer is None
    assert mm.page_table_lock.owner is None


def run_seeds(make, nseeds=150):
    for seed in range(nseeds):
        env, bodies, final = make()
        GreenletRuntime(bodies, random_policy(random.Random(seed),
                                              0.0 if seed % 2 else 0.97), prefix="T").run()
        check_consistent(env)
        final(env)


def test_two_cpus_write_the_same_fresh_anonymous_page():
    def make():
        env = Env()
        env.vma(BASE, 4, RW)
        bodies = [lambda: user_access(env.task, env.cpu[0], BASE, True, 1),
                  lambda: user_access(env.task, env.cpu[1], BASE + 1, True, 2)]

        def final(env):
            page = env.page_at(BASE)
            assert page.read_byte(0) == 1 and page.read_byte(1) == 2
            assert env.mm.rss_stat == [0, 1, 0, 0]
            assert sum(1 for p in env.machine.zone.mem_map
                       if not p.free and p.kind == "anon") == 1
        return env, bodies, final
    run_seeds(make)


def test_two_cpus_cow_the_zero_page():
    def make():
        env = Env()
        env.vma(BASE, 4, RW)
        user_access(env.task, env.cpu[0], BASE, False)
        user_access(env.task, env.cpu[1], BASE, False)
        bodies = [lambda: user_access(env.task, env.cpu[0], BASE, True, 1),
                  lambda: user_access(env.task, env.cpu[1], BASE + 1, True, 2)]

        def final(env):
            page = env.page_at(BASE)
            assert page.read_byte(0) == 1 and page.read_byte(1) == 2
            assert env.mm.rss_stat == [0, 1, 0, 0]
        return env, bodies, final
    run_seeds(make)


def test_two_cpus_fault_around_the_same_file_window():
    def make():
        env = Env()
        f = env.memfd(32, populate=range(0, 32, 3))
        env.vma(BASE, 32, RW | SHARED, file=f)
        bodies = [lambda: user_access(env.task, env.cpu[0], BASE + 1 * PAGE_SIZE, False),
                  lambda: user_access(env.task, env.cpu[1], BASE + 6 * PAGE_SIZE, True, 9)]

        def final(env):
            assert cache_page(f, 6).read_byte(0) == 9
            assert cache_page(f, 1) is not None
        return env, bodies, final
    run_seeds(make)


def test_cow_of_a_private_file_page_races_a_read():
    def make():
        env = Env()
        f = env.memfd(4)
        env.vma(BASE, 4, RW, file=f)
        bodies = [lambda: user_access(env.task, env.cpu[0], BASE, True, 0x77),
                  lambda: user_access(env.task, env.cpu[1], BASE + 2 * PAGE_SIZE, False)]

        def final(env):
            assert env.page_at(BASE).read_byte(0) == 0x77
            assert cache_page(f, 0).read_byte(0) == 0x40
            assert env.mm.rss_stat[MM_ANONPAGES] == 1
        return env, bodies, final
    run_seeds(make)


def test_blocked_fault_is_reported_as_deadlock_not_hung():
    env = Env()
    vma = env.vma(BASE, 1, RW)
    env.mm.mmap_lock.writer = "munmap"          # a writer that never releases mmap_lock
    env.mm.mm_lock_seq += 1                     # ... and has write-locked the VMA
    vma.vm_lock_seq = env.mm.mm_lock_seq
    bodies = [lambda: user_access(env.task, env.cpu[1], BASE, False)]
    with pytest.raises(sched.Deadlock):
        GreenletRuntime(bodies, random_policy(random.Random(0)), prefix="T").run()
