"""Tests of munmap: __vm_munmap -> do_vmi_munmap -> vms_gather_munmap_vmas /
vms_complete_munmap_vmas / vms_clear_ptes (impl/vma.py, impl/mmap.py).

The argument edge cases carry the real kernel's answers: each was run as a raw munmap(2)
syscall (ctypes, syscall number 11, in a fresh child process) on this machine's Linux 6.18
x86-64 kernel (4-level paging, TASK_SIZE = 0x7ffffffff000); the value is in the test name or
the table below. The layout cases were compared with /proc/self/maps after the same calls.
"""

from __future__ import annotations

import pytest

from unmapcheck.impl.constants import (EINVAL, MM_ANONPAGES, MM_SHMEMPAGES, PGDIR_SIZE,
                                       PMD_SIZE, PROT_READ, PUD_SIZE, TASK_SIZE, ULONG_MAX)
from unmapcheck.impl.filemap import generic_perform_write
from unmapcheck.impl.locks import mmap_write_lock, mmap_write_unlock
from unmapcheck.impl.mm_types import VmaIterator
from unmapcheck.impl.page import page_mapcount
from unmapcheck.impl.pgtable import LEVEL_PGD, LEVEL_PMD, LEVEL_PTE, LEVEL_PUD
from unmapcheck.impl.rmap import anon_vma_chain
from unmapcheck.impl.vma import do_vmi_munmap, do_vmi_munmap_args

from vmakit import ANON, BASE, SHANON, Env, P, Recorder

MAP_SHARED_FILE = 0x01 | 0x10


# =============================================================================================
# Argument checks (do_vmi_munmap), against the real kernel
# =============================================================================================
# (start relative to BASE unless absolute, len, real kernel's result)
REAL_MUNMAP_ARGS = [
    ("unaligned start", BASE + 1, P, -EINVAL),
    ("len 0", BASE, 0, -EINVAL),
    ("len ULONG_MAX", BASE, ULONG_MAX, -EINVAL),
    ("unaligned len over a hole", BASE, 1, 0),
    ("hole of 4 pages", BASE, 4 * P, 0),
    ("start 0, one page", 0, P, 0),
    ("last page below TASK_SIZE", TASK_SIZE - P, P, 0),
    ("start == TASK_SIZE", TASK_SIZE, P, -EINVAL),
    ("start == TASK_SIZE, len 0", TASK_SIZE, 0, -EINVAL),
    ("range crosses TASK_SIZE", TASK_SIZE - P, 2 * P, -EINVAL),
    ("start 1<<47", 1 << 47, P, -EINVAL),
    ("kernel address", 0xFFFF800000000000, P, -EINVAL),
    ("len TASK_SIZE - start + 1", BASE, TASK_SIZE - BASE + 1, -EINVAL),
    ("PAGE_ALIGN(len) would wrap", BASE, ULONG_MAX - P + 2, -EINVAL),
]


@pytest.mark.parametrize("name,start,length,expected", REAL_MUNMAP_ARGS,
                         ids=[c[0] for c in REAL_MUNMAP_ARGS])
def test_munmap_arguments_match_real_kernel(name, start, length, expected):
    env = Env()
    assert env.munmap(start, length) == expected
    # The lock is released whatever the outcome.
    assert env.mm.mmap_lock.writer is None and env.mm.mmap_lock.readers == []


def test_munmap_of_nothing_returns_0_and_leaves_mappings_alone():
    env = Env()
    assert env.mmap(BASE + 8 * P, 2 * P) == BASE + 8 * P
    assert env.munmap(BASE, 4 * P) == 0
    assert env.layout() == [(8, 10, (BASE >> 12) + 8)]
    assert env.mm.map_count == 1


def test_munmap_unaligned_len_rounds_up_to_whole_pages():
    env = Env()
    env.mmap(BASE, 4 * P)
    assert env.munmap(BASE, P + 1) == 0
    assert env.layout() == [(2, 4, (BASE >> 12) + 2)]


def test_munmap_args_helper_rejects_every_wrapping_range_symbolically():
    """do_vmi_munmap_args() on z3 bit-vectors: whatever it accepts stays inside
    (0, TASK_SIZE], page aligned, without wrapping; whatever lies so is accepted."""
    z3 = pytest.importorskip("z3")
    start, length = z3.BitVecs("start len", 64)
    invalid, end = do_vmi_munmap_args(start, length)
    ok = z3.Not(invalid)
    s = z3.Solver()
    s.add(ok)
    assert s.check() == z3.sat                     # not vacuous
    bad = z3.Or(z3.ULT(end, start), end == start, z3.UGT(end, TASK_SIZE),
                (start & (P - 1)) != 0, z3.ULT(end - start, length))
    s.add(bad)
    assert s.check() == z3.unsat
    # And a legal range is never rejected.
    s2 = z3.Solver()
    s2.add(invalid, (start & (P - 1)) == 0, z3.ULE(start, TASK_SIZE), length != 0,
           z3.ULE(length, TASK_SIZE - start))
    assert s2.check() == z3.unsat


# =============================================================================================
# Layout: splits, several VMAs, holes (compared with /proc/self/maps on the real kernel)
# =============================================================================================
def test_munmap_middle_splits_three_ways_real_kernel_leaves_4_6_and_8_12():
    env = Env()
    env.mmap(BASE + 4 * P, 8 * P)
    assert env.mm.map_count == 1
    assert env.munmap(BASE + 6 * P, 2 * P) == 0
    pg = BASE >> 12
    assert env.layout() == [(4, 6, pg + 4), (8, 12, pg + 8)]
    assert env.mm.map_count == 2
    assert env.mm.total_vm == 6
    assert env.mm.data_vm == 6


def test_munmap_across_holes_real_kernel_leaves_2_3_and_11_12():
    env = Env()
    for start in (2, 6, 10):
        env.mmap(BASE + start * P, 2 * P)
    assert env.mm.map_count == 3
    assert env.munmap(BASE + 3 * P, 8 * P) == 0
    pg = BASE >> 12
    assert env.layout() == [(2, 3, pg + 2), (11, 12, pg + 11)]
    assert env.mm.map_count == 2
    assert env.mm.total_vm == 2


def test_munmap_of_several_whole_vmas():
    env = Env()
    env.mmap(BASE, 2 * P)
    env.mmap(BASE + 2 * P, 2 * P, prot=PROT_READ)        # different flags: no merge
    env.mmap(BASE + 4 * P, 2 * P)
    assert env.mm.map_count == 3
    assert env.munmap(BASE, 6 * P) == 0
    assert env.layout() == [] and env.mm.map_count == 0 and env.mm.total_vm == 0


def test_munmap_leaves_detached_vmas_marked_and_tree_sorted():
    env = Env()
    env.mmap(BASE, 8 * P)
    victim = env.vmas()[0]
    env.munmap(BASE + 2 * P, 2 * P)
    vmas = env.vmas()
    assert all(not v.detached for v in vmas)
    assert [v.vm_start for v in vmas] == sorted(v.vm_start for v in vmas)
    # __split_vma keeps the original object for the part that goes (new_below, then not).
    assert victim not in vmas and victim.detached
    assert (victim.vm_start, victim.vm_end) == (BASE + 2 * P, BASE + 4 * P)


def test_split_halves_share_the_anon_vma_and_keep_their_pages_mapped():
    env = Env()
    env.mmap(BASE, 8 * P)
    for i in range(8):
        env.touch(BASE + i * P)
    pages = [env.machine.zone.pfn_to_page(env.pte(BASE + i * P).pfn) for i in range(8)]
    assert env.munmap(BASE + 3 * P, 2 * P) == 0
    low, high = env.vmas()
    assert low.anon_vma is not None and high.anon_vma is not None
    assert low.anon_vma.root is high.anon_vma.root
    assert set(anon_vma_chain(low)) & set(anon_vma_chain(high))
    for i in (0, 1, 2, 5, 6, 7):
        assert page_mapcount(pages[i]) == 1 and not pages[i].free
    for i in (3, 4):
        assert pages[i].free
    assert env.mm.rss_stat[MM_ANONPAGES] == 6


# =============================================================================================
# PTEs, pages, TLBs
# =============================================================================================
def test_munmap_zaps_ptes_frees_pages_and_flushes_every_cpu():
    env = Env(cpus=2)
    env.mmap(BASE, 4 * P)
    for i in range(4):
        env.touch(BASE + i * P, cpu=0)
        env.touch(BASE + i * P, write=False, cpu=1)
    pages = [env.machine.zone.pfn_to_page(env.pte(BASE + i * P).pfn) for i in range(4)]
    assert env.mm.rss_stat[MM_ANONPAGES] == 4
    assert env.tlb_entries(BASE, BASE + 4 * P)
    assert env.munmap(BASE + P, 2 * P) == 0
    assert env.pte(BASE + P).kind == 0 and env.pte(BASE + 2 * P).kind == 0
    assert env.pte(BASE).kind == 1 and env.pte(BASE + 3 * P).kind == 1
    assert pages[1].free and pages[2].free
    assert not pages[0].free and not pages[3].free
    assert env.mm.rss_stat[MM_ANONPAGES] == 2
    # N1: when munmap returns no CPU translates the unmapped range.
    assert env.tlb_entries(BASE + P, BASE + 3 * P) == []


def test_munmap_takes_write_lock_downgrades_then_zaps_under_read_lock():
    env = Env()
    env.mmap(BASE, 2 * P)
    env.touch(BASE)
    with Recorder() as rec:
        assert env.munmap(BASE, 2 * P) == 0
    lock = env.mm.mmap_lock
    assert rec.lock_ops(lock) == ["down_write", "downgrade_write", "up_read"]
    down = rec.index("down_write", lock)
    clear = rec.index("vma_iter_clear_gfp")
    downgrade = rec.index("downgrade_write", lock)
    zap = rec.index("ptep_get_and_clear")
    free_table = rec.index("__tlb_remove_table")
    up = rec.index("up_read", lock)
    assert down < clear < downgrade < zap < free_table < up
    assert env.mm.mmap_lock.writer is None and env.mm.mmap_lock.readers == []


def test_do_vmi_munmap_error_leaves_the_lock_to_the_caller():
    env = Env()
    mm = env.mm
    mmap_write_lock(mm)
    vmi = VmaIterator(mm.mm_mt, BASE + 1)
    assert do_vmi_munmap(vmi, mm, BASE + 1, P, None, True) == -EINVAL
    assert mm.mmap_lock.writer is not None
    mmap_write_unlock(mm)


# =============================================================================================
# Page tables: freed or kept according to floor (prev's end) and ceiling (next's start)
# =============================================================================================
def _levels(env, level):
    return sorted(base for lvl, base in env.tables() if lvl == level)


def test_pte_table_kept_when_prev_shares_it():
    env = Env()
    env.mmap(BASE, 4 * P)
    env.mmap(BASE + 8 * P, 4 * P, prot=PROT_READ)
    env.touch(BASE)
    env.touch(BASE + 8 * P, write=False)
    before = env.tables()
    assert env.munmap(BASE + 8 * P, 4 * P) == 0
    assert env.tables() == before                      # floor = prev's end: table kept
    assert env.pte(BASE).kind == 1


def test_pte_table_kept_when_next_shares_it():
    env = Env()
    env.mmap(BASE, 4 * P)
    env.mmap(BASE + 8 * P, 4 * P, prot=PROT_READ)
    env.touch(BASE)
    env.touch(BASE + 8 * P, write=False)
    before = env.tables()
    assert env.munmap(BASE, 4 * P) == 0
    assert env.tables() == before                      # ceiling = next's start: table kept
    assert env.pte(BASE + 8 * P).kind == 1


def test_pte_table_freed_in_its_own_pmd_range_upper_tables_kept_for_prev():
    env = Env()
    env.mmap(BASE, 4 * P)
    env.mmap(BASE + PMD_SIZE, 4 * P, prot=PROT_READ)
    env.touch(BASE)
    env.touch(BASE + PMD_SIZE, write=False)
    assert _levels(env, LEVEL_PTE) == [BASE, BASE + PMD_SIZE]
    bytes_before = env.mm.pgtables_bytes
    assert env.munmap(BASE + PMD_SIZE, 4 * P) == 0
    assert _levels(env, LEVEL_PTE) == [BASE]
    assert _levels(env, LEVEL_PMD) == [BASE & ~(PUD_SIZE - 1)]
    assert env.mm.pgtables_bytes == bytes_before - P


def test_last_mapping_gone_frees_every_table_but_the_pgd():
    env = Env()
    env.mmap(BASE, 4 * P)
    env.touch(BASE)
    assert {lvl for lvl, _ in env.tables()} == {LEVEL_PGD, LEVEL_PUD, LEVEL_PMD, LEVEL_PTE}
    assert env.munmap(BASE, 4 * P) == 0
    assert env.tables() == [(LEVEL_PGD, 0)]
    assert env.mm.pgtables_bytes == 0
    assert env.ptes() == []


def test_tables_of_a_far_away_mapping_survive():
    env = Env()
    far = BASE + 4 * PGDIR_SIZE
    env.mmap(BASE, 2 * P)
    env.mmap(far, 2 * P)
    env.touch(BASE)
    env.touch(far)
    assert env.munmap(BASE, 2 * P) == 0
    assert env.pte(far).kind == 1
    assert _levels(env, LEVEL_PTE) == [far]
    assert _levels(env, LEVEL_PUD) == [far & ~(PGDIR_SIZE - 1)]


# =============================================================================================
# File and shared mappings
# =============================================================================================
def test_munmap_of_shared_file_mapping_unlinks_it_and_keeps_the_page_cache():
    env = Env()
    f = env.memfd(4)
    for i in range(4):
        assert generic_perform_write(f, i * P, bytes([0x40 + i])) == 1
    assert env.mmap(BASE, 4 * P, flags=MAP_SHARED_FILE, file=f) == BASE
    vma = env.vmas()[0]
    assert f.f_mapping.i_mmap == [vma]
    for i in range(4):
        assert env.touch(BASE + i * P, write=False) == 0x40 + i
    assert env.mm.rss_stat[MM_SHMEMPAGES] == 4
    cached = dict(f.f_mapping.i_pages)
    assert env.munmap(BASE, 4 * P) == 0
    assert f.f_mapping.i_mmap == []
    assert env.mm.rss_stat[MM_SHMEMPAGES] == 0
    for idx, page in cached.items():
        assert not page.free and page_mapcount(page) == 0
        assert page.read_byte(0) == 0x40 + idx


def test_munmap_part_of_shared_file_mapping_keeps_both_halves_in_i_mmap():
    env = Env()
    f = env.memfd(8)
    env.mmap(BASE, 8 * P, flags=MAP_SHARED_FILE, file=f, pgoff=0)
    assert env.munmap(BASE + 2 * P, 2 * P) == 0
    low, high = env.vmas()
    assert (low.vm_pgoff, high.vm_pgoff) == (0, 4)
    assert f.f_mapping.i_mmap == [low, high]


def test_munmap_of_shared_anonymous_memory():
    env = Env()
    env.mmap(BASE, 4 * P, flags=SHANON)
    vma = env.vmas()[0]
    shm = vma.vm_file
    assert shm is not None and shm.f_mapping.i_mmap == [vma]
    env.touch(BASE, value=7)
    assert env.mm.rss_stat[MM_SHMEMPAGES] == 1
    assert env.munmap(BASE, 4 * P) == 0
    assert shm.f_mapping.i_mmap == [] and env.mm.rss_stat[MM_SHMEMPAGES] == 0


def test_munmap_unlocks_locked_vm():
    env = Env(capable=True)
    assert env.mmap(BASE, 4 * P, flags=ANON | 0x2000) == BASE          # MAP_LOCKED
    assert env.mm.locked_vm == 4
    assert env.munmap(BASE + P, 2 * P) == 0
    assert env.mm.locked_vm == 2
