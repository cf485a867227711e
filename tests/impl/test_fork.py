"""fork (impl/fork.py: dup_mm, dup_mmap, copy_page_range ...), mmput/mmdrop and check_mm."""

from __future__ import annotations

import pytest

from mmkit import RO, RW, SHARED, Env, Recorder, page

from unmapcheck.impl import rmap
from unmapcheck.impl.constants import (MADV_DONTFORK, MADV_WIPEONFORK, MM_ANONPAGES,
                                       MM_FILEPAGES, MM_SHMEMPAGES, MM_SWAPENTS, PAGE_SIZE,
                                       VM_LOCKED)
from unmapcheck.impl.fork import (CLONE_VM, check_mm, copy_mm, dup_mm, exit_mm, mm_alloc,
                                  mm_ptr, mmget, mmput)
from unmapcheck.impl.madvise import do_madvise
from unmapcheck.impl.mm_types import add_mm_counter
from unmapcheck.impl.page import page_mapcount, page_ref_count
from unmapcheck.impl.pgtable import lookup_pte, set_pte_at
from unmapcheck.impl.pte import make_migration_entry, swp_entry_to_pte
from unmapcheck.impl.task import task_struct


def fork(env: Env):
    cmm = dup_mm(env.task, env.mm)
    child = task_struct(env.machine, cmm, "child")
    return child, cmm


def test_cow_both_ptes_read_only_refcount_mapcount_rss():
    env = Env()
    env.vma(page(0), 4, RW)
    env.touch(page(0), 4)
    assert env.tlb_has(0, page(0))               # a writable TLB entry in the parent
    pages = [env.page_at(page(i)) for i in range(4)]
    assert all(rmap.PageAnonExclusive(p) for p in pages)
    child, cmm = fork(env)
    for i, p in enumerate(pages):
        ppte, cpte = env.pte(page(i)), env.pte(page(i), cmm)
        assert ppte.pfn == cpte.pfn == p.pfn
        assert not ppte.write and not cpte.write     # write-protected in both
        assert not cpte.young                        # the child's copy is old
        assert page_ref_count(p) == 2 and page_mapcount(p) == 2
        assert not rmap.PageAnonExclusive(p)         # shared now
    assert env.rss()[MM_ANONPAGES] == 4 and env.rss(cmm)[MM_ANONPAGES] == 4
    assert not env.tlb_has(0, page(0))           # flush_tlb_mm(oldmm) at the end of dup_mmap
    assert cmm.map_count == 1 and cmm.total_vm == env.mm.total_vm
    env.check_exact()
    env.check_exact(cmm)
    # The child's anonymous VMA is attached to the parent's anon_vma and has its own.
    cvma = next(iter(cmm.mm_mt))
    pvma = next(iter(env.mm.mm_mt))
    assert cvma.anon_vma is not pvma.anon_vma and cvma.anon_vma.parent is pvma.anon_vma


def test_cow_write_copies_and_both_see_their_data():
    env = Env()
    env.vma(page(0), 1, RW)
    env.store(page(0), 0x11)
    child, cmm = fork(env)
    old = env.page_at(page(0))
    env.store(page(0), 0x22)                     # the parent breaks COW
    assert env.page_at(page(0)) is not old
    assert env.load(page(0)) == 0x22
    assert env.load(page(0), cpu=1, task=child) == 0x11
    assert page_mapcount(old) == 1 and page_ref_count(old) == 1
    env.check_exact()
    env.check_exact(cmm)


def test_exit_of_both_leaves_nothing():
    env = Env()
    env.vma(page(0), 4, RW)
    env.vma(page(600), 2, RW)                    # another PTE table
    env.touch(page(0), 4)
    env.touch(page(600), 2)
    child, cmm = fork(env)
    env.store(page(1), 9)                        # one COW copy
    env.store(page(0), 9, cpu=1, task=child)     # and one in the child
    env.on(1, child)
    exit_mm(child)
    assert cmm.freed and cmm not in env.machine.mms
    env.on(0)
    exit_mm(env.task)
    assert env.mm.freed
    assert env.machine.zone.nr_allocated() == 1  # only the zero page is left
    assert not [l for l in env.machine.dmesg if "BUG" in l]


def test_shared_and_clean_file_mappings_are_not_copied():
    env = Env()
    f = env.memfd(4)
    env.vma(page(0), 4, RW | SHARED, file=f)
    env.touch(page(0), 4)
    g = env.memfd(2)
    env.vma(page(8), 2, RO, file=g)
    env.touch(page(8), 2, write=False)
    assert env.rss()[MM_SHMEMPAGES] == 6
    child, cmm = fork(env)
    assert env.rss(cmm) == [0, 0, 0, 0]          # vma_needs_copy(): no anon_vma, no copy
    assert env.present(page(0), 4, cmm) == []
    assert page_mapcount(f.f_mapping.i_pages[0]) == 1
    # The child's VMAs are in the files' i_mmap, right after the parent's.
    assert [v.vm_mm for v in f.f_mapping.i_mmap] == [env.mm, cmm]
    assert env.load(page(2), cpu=1, task=child) == 0x42     # faults the shared page in
    assert env.rss(cmm)[MM_SHMEMPAGES] >= 1


def test_private_file_mapping_with_cow_page_is_copied():
    env = Env()
    f = env.memfd(2)
    env.vma(page(0), 2, RW, file=f)
    env.store(page(0), 5)                        # anonymous COW page, anon_vma prepared
    env.load(page(1))                            # page-cache page
    child, cmm = fork(env)
    assert env.rss(cmm) == env.rss()
    assert page_mapcount(f.f_mapping.i_pages[1]) == 2
    env.check_exact(cmm)


def test_dontcopy_and_wipeonfork():
    env = Env()
    env.vma(page(0), 2, RW)
    env.vma(page(4), 2, RW)
    env.vma(page(8), 2, RW | VM_LOCKED)
    env.touch(page(0), 2)
    env.touch(page(4), 2)
    env.touch(page(8), 2)
    assert do_madvise(env.mm, page(0), 2 * PAGE_SIZE, MADV_DONTFORK) == 0
    assert do_madvise(env.mm, page(4), 2 * PAGE_SIZE, MADV_WIPEONFORK) == 0
    child, cmm = fork(env)
    vmas = list(cmm.mm_mt)
    assert [v.vm_start for v in vmas] == [page(4), page(8)]     # DONTCOPY VMA left out
    assert vmas[0].anon_vma is None                            # wiped: a clean slate
    assert env.present(page(4), 2, cmm) == []
    assert not vmas[1].vm_flags & VM_LOCKED                    # mlock is not inherited
    assert env.rss(cmm)[MM_ANONPAGES] == 2
    assert cmm.map_count == 2
    assert env.load(page(4), cpu=1, task=child) == 0           # zero-fill in the child
    env.check_exact(cmm)


def test_swap_entry_is_duplicated_and_counted():
    env = Env()
    env.vma(page(0), 2, RW)
    env.touch(page(0), 2)
    # A swap entry installed by hand: what reclaim leaves once the folio is gone.
    slot = 1
    env.machine.swap.swap_map[slot] = 1
    env.machine.swap.data[slot] = {0: 0x77}
    ptep = lookup_pte(env.mm, page(1))
    old = env.page_at(page(1))
    set_pte_at(env.mm, page(1), ptep, swp_entry_to_pte(slot))
    rmap.folio_remove_rmap_ptes(old, old, 1, None)
    from unmapcheck.impl.page import folio_put
    folio_put(old)
    add_mm_counter(env.mm, MM_ANONPAGES, -1)
    add_mm_counter(env.mm, MM_SWAPENTS, 1)
    child, cmm = fork(env)
    assert env.rss(cmm)[MM_SWAPENTS] == 1
    assert env.pte(page(1), cmm).kind == 2
    assert env.machine.swap.swap_map[slot] == 2              # swap_duplicate: one per PTE
    env.check_exact(cmm)
    # The slot is shared: the child reads it into the swap cache, the parent finds it there.
    assert env.load(page(1), cpu=1, task=child) == 0x77
    assert env.load(page(1)) == 0x77
    assert env.page_at(page(1)) is env.page_at(page(1), cmm)


@pytest.mark.parametrize("fixed", [True, False])
def test_migration_entry_counted_in_child(fixed):
    """9f9f1acd713d: a migration entry still stands for its page; fork counts it in the
    child's rss (before v3.3 it did not)."""
    env = Env(fixes_off=() if fixed else ("9f9f1acd713d",))
    env.vma(page(0), 1, RW)
    env.store(page(0), 3)
    p = env.page_at(page(0))
    # try_to_migrate_one() by hand: the PTE becomes a writable migration entry, the mapping
    # drops its rmap and reference; rss is left alone. (Isolation holds a reference.)
    from unmapcheck.impl.page import folio_get, folio_put
    folio_get(p)
    ptep = lookup_pte(env.mm, page(0))
    set_pte_at(env.mm, page(0), ptep, make_migration_entry(p.pfn, True))
    rmap.folio_remove_rmap_ptes(p, p, 1, None)
    folio_put(p)
    child, cmm = fork(env)
    assert env.rss(cmm)[MM_ANONPAGES] == (1 if fixed else 0)
    # COW: the writable migration entry became read-only in both.
    assert not env.pte(page(0)).write and not env.pte(page(0), cmm).write
    if fixed:
        env.check_exact(cmm)


def test_clone_vm_shares_the_mm():
    env = Env()
    t2 = task_struct(env.machine, None, "thread")
    assert copy_mm(CLONE_VM, t2, env.mm) == 0
    assert t2.mm is env.mm and env.mm.mm_users == 2
    mmput(env.mm)
    assert not env.mm.freed


def test_mm_users_and_mm_count():
    env = Env()
    mm = mm_alloc(env.machine)
    mmget(mm)
    mmput(mm)
    assert not mm.freed
    mmput(mm)
    assert mm.freed


def test_check_mm_reports_a_leaked_counter_exactly():
    env = Env()
    mm = mm_alloc(env.machine)
    add_mm_counter(mm, MM_ANONPAGES, 1)
    add_mm_counter(mm, MM_FILEPAGES, -2)
    mm.pgtables_bytes = 4096
    with Recorder() as rec:
        mmput(mm)
    assert env.machine.dmesg == [
        f"BUG: Bad rss-counter state mm:{mm_ptr(mm)} type:MM_FILEPAGES val:-2 Comm:t0 Pid:1",
        f"BUG: Bad rss-counter state mm:{mm_ptr(mm)} type:MM_ANONPAGES val:1 Comm:t0 Pid:1",
        "BUG: non-zero pgtables_bytes on freeing mm: 4096",
    ]
    bad = [(i["member"], i["value"]) for k, i in rec.events if k == "bad_rss"]
    assert bad == [(MM_FILEPAGES, -2), (MM_ANONPAGES, 1)]
    assert len(mm_ptr(mm)) == 16


def test_check_mm_is_silent_for_a_clean_mm():
    env = Env()
    env.vma(page(0), 2, RW)
    env.touch(page(0), 2)
    mm = env.mm
    env.task.mm = None
    mmput(mm)
    assert env.machine.dmesg == []
    check_mm(mm)
    assert env.machine.dmesg == []
