"""madvise(2) (impl/madvise.py) on hand-built VMAs, and its error returns against the real
kernel of this machine (6.18.44, x86-64) through ctypes."""

from __future__ import annotations

import pytest

from mmkit import (BASE, LOCKED, RO, RW, SHARED, Env, REAL, RealWindow, Recorder, errname,
                   model_vmas, needs_real_kernel, page, real_syscall, SYS_madvise)

from unmapcheck.impl.constants import (EINVAL, ENOMEM, MADV_COLD, MADV_DODUMP, MADV_DOFORK,
                                       MADV_DONTDUMP, MADV_DONTFORK, MADV_DONTNEED,
                                       MADV_DONTNEED_LOCKED, MADV_FREE, MADV_HUGEPAGE,
                                       MADV_HWPOISON, MADV_KEEPONFORK, MADV_MERGEABLE,
                                       MADV_NORMAL, MADV_PAGEOUT, MADV_POPULATE_WRITE,
                                       MADV_RANDOM, MADV_REMOVE, MADV_SEQUENTIAL,
                                       MADV_WILLNEED, MADV_WIPEONFORK, MM_ANONPAGES,
                                       MM_SHMEMPAGES, PAGE_SIZE, PMD_SIZE, VM_DONTCOPY,
                                       VM_DONTDUMP, VM_HUGEPAGE, VM_MERGEABLE, VM_RAND_READ,
                                       VM_SEQ_READ, VM_WIPEONFORK)
from unmapcheck.impl.madvise import MADV_GUARD_INSTALL, NotSupported, do_madvise
from unmapcheck.impl.mm_types import inc_tlb_flush_pending, dec_tlb_flush_pending
from unmapcheck.impl.page import PG_dirty, PG_swapbacked, page_mapcount


def layout(env: Env):
    """The layout RealWindow uses: anonymous private RW VMAs at pages [0, 4) and [6, 10),
    every page written, a hole at [4, 6)."""
    a = env.vma(page(0), 4, RW)
    b = env.vma(page(6), 4, RW)
    env.touch(page(0), 4)
    env.touch(page(6), 4)
    return a, b


# --- MADV_DONTNEED ---------------------------------------------------------------------------
def test_dontneed_zaps_flushes_and_frees():
    env = Env()
    layout(env)
    env.load(page(1), cpu=1)                     # CPU1's TLB caches page 1 too
    assert env.tlb_has(0, page(1)) and env.tlb_has(1, page(1))
    victims = [env.page_at(page(i)) for i in (1, 2)]
    before = env.allocated()
    assert do_madvise(env.mm, page(1), 2 * PAGE_SIZE, MADV_DONTNEED) == 0
    assert env.present(page(0), 4) == [0, 3]
    assert env.rss()[MM_ANONPAGES] == 6
    # The TLB entries of the zapped range are gone on every CPU; the rest stay.
    assert not env.tlb_has(0, page(1)) and not env.tlb_has(1, page(1))
    assert not env.tlb_has(0, page(2))
    assert env.tlb_has(0, page(0)) and env.tlb_has(0, page(3))
    # The pages were freed after the flush (poisoned frames back on the free list).
    assert env.allocated() == before - 2
    assert all(p.free for p in victims)
    assert env.mm.tlb_flush_pending == 0
    env.check_exact()
    # A new access reads zero-fill: a fresh anonymous page.
    assert env.load(page(1)) == 0
    assert env.rss()[MM_ANONPAGES] == 6          # a read maps the zero page: no rss
    env.check_exact()


def test_dontneed_across_hole_zaps_both_vmas_and_returns_enomem():
    env = Env()
    layout(env)
    assert do_madvise(env.mm, page(0), 10 * PAGE_SIZE, MADV_DONTNEED) == -ENOMEM
    assert env.present(page(0), 10) == []
    assert env.rss()[MM_ANONPAGES] == 0
    env.check_exact()


def test_dontneed_starting_in_hole():
    env = Env()
    layout(env)
    assert do_madvise(env.mm, page(4), 4 * PAGE_SIZE, MADV_DONTNEED) == -ENOMEM
    assert env.present(page(0), 10) == [0, 1, 2, 3, 8, 9]


def test_dontneed_locked_is_einval_and_dontneed_locked_is_not():
    env = Env()
    env.vma(page(0), 4, RW | LOCKED)
    env.touch(page(0), 4)
    assert do_madvise(env.mm, page(0), 4 * PAGE_SIZE, MADV_DONTNEED) == -EINVAL
    assert env.present(page(0), 4) == [0, 1, 2, 3]
    assert do_madvise(env.mm, page(0), 4 * PAGE_SIZE, MADV_DONTNEED_LOCKED) == 0
    assert env.present(page(0), 4) == []
    env.check_exact()


def test_dontneed_stops_at_a_locked_vma_after_zapping_the_first():
    env = Env()
    env.vma(page(0), 2, RW)
    env.vma(page(2), 2, RW | LOCKED)
    env.touch(page(0), 4)
    assert do_madvise(env.mm, page(0), 4 * PAGE_SIZE, MADV_DONTNEED) == -EINVAL
    assert env.present(page(0), 4) == [2, 3]


def test_dontneed_of_shared_file_mapping_keeps_page_cache():
    env = Env()
    f = env.memfd(4)
    env.vma(page(0), 4, RW | SHARED, file=f)
    env.touch(page(0), 4)
    assert env.rss()[MM_SHMEMPAGES] == 4
    cached = [f.f_mapping.i_pages[i] for i in range(4)]
    assert do_madvise(env.mm, page(0), 4 * PAGE_SIZE, MADV_DONTNEED) == 0
    assert env.rss()[MM_SHMEMPAGES] == 0
    assert all(not p.free and page_mapcount(p) == 0 for p in cached)
    assert env.load(page(2)) == 0x42              # the data is still in the page cache
    env.check_exact()


def test_dontneed_whole_pmd_range_reclaims_the_page_table():
    env = Env()
    env.vma(BASE, 512, RW)
    env.touch(BASE, 2)
    tables = env.tables()
    ptbytes = env.mm.pgtables_bytes
    assert do_madvise(env.mm, BASE, PMD_SIZE, MADV_DONTNEED) == 0
    assert env.tables() == tables - 1            # CONFIG_PT_RECLAIM: the PTE table is freed
    assert env.mm.pgtables_bytes == ptbytes - PAGE_SIZE
    env.check_exact()


def test_dontneed_one_gather_for_the_whole_call():
    """6.16+: one mmu_gather spans all VMAs; each VMA's range is flushed at its end
    (tlb_end_vma), and nothing is left to flush at tlb_finish_mmu."""
    env = Env()
    layout(env)
    with Recorder() as rec:
        assert do_madvise(env.mm, page(0), 10 * PAGE_SIZE, MADV_DONTNEED) == -ENOMEM
    flushes = [(i["start"], i["end"]) for k, i in rec.events if k == "tlb_flush"]
    assert flushes == [(page(0), page(4)), (page(6), page(10))]
    assert rec.labels.count("inc_tlb_flush_pending") == 1
    assert rec.labels.count("dec_tlb_flush_pending") == 1


@pytest.mark.parametrize("fixed", [True, False])
def test_dontneed_nested_gather_forces_flush(fixed):
    """Bug 1 (99baac21e458): another thread is batching a flush of the same mm; this
    madvise finds nothing to zap, but must still flush before returning."""
    env = Env(fixes_off=() if fixed else ("99baac21e458",))
    layout(env)
    inc_tlb_flush_pending(env.mm)                # the other thread's gather is open
    with Recorder() as rec:
        assert do_madvise(env.mm, page(4), 2 * PAGE_SIZE, MADV_DONTNEED) == -ENOMEM
    dec_tlb_flush_pending(env.mm)
    flushed = "tlb_flush" in rec.kinds()
    assert flushed == fixed


# --- MADV_FREE ------------------------------------------------------------------------------------
def test_free_cleans_ptes_marks_lazyfree_flushes_and_keeps_rss():
    env = Env()
    layout(env)
    p1 = env.page_at(page(1))
    p1.flags |= PG_dirty                         # a folio dirtied earlier (e.g. by writeback)
    assert env.pte(page(1)).dirty and env.tlb_has(0, page(1))
    assert do_madvise(env.mm, page(0), 4 * PAGE_SIZE, MADV_FREE) == 0
    pte = env.pte(page(1))
    assert pte.kind == 1 and not pte.dirty and not pte.young
    assert not p1.flags & PG_dirty and not p1.flags & PG_swapbacked   # lazyfree
    assert not env.tlb_has(0, page(1))           # the dirty TLB entry was flushed
    assert env.rss()[MM_ANONPAGES] == 8          # MADV_FREE does not change rss
    env.check_exact()
    # A new store walks the page table again and dirties the PTE (no lost write).
    env.store(page(1), 7)
    assert env.pte(page(1)).dirty


def test_free_on_shared_or_file_mapping_is_einval():
    env = Env()
    f = env.memfd(4)
    env.vma(page(0), 4, RW | SHARED, file=f)
    env.vma(page(8), 4, RW, file=env.memfd(4))
    assert do_madvise(env.mm, page(0), 4 * PAGE_SIZE, MADV_FREE) == -EINVAL
    assert do_madvise(env.mm, page(8), 4 * PAGE_SIZE, MADV_FREE) == -EINVAL


def test_free_skips_a_dirty_page_shared_with_a_child():
    from unmapcheck.impl.fork import dup_mm
    env = Env()
    env.vma(page(0), 1, RW)
    env.touch(page(0), 1)
    p = env.page_at(page(0))
    p.flags |= PG_dirty
    dup_mm(env.task, env.mm)
    assert page_mapcount(p) == 2
    assert do_madvise(env.mm, page(0), PAGE_SIZE, MADV_FREE) == 0
    assert p.flags & PG_dirty and p.flags & PG_swapbacked   # not made lazyfree


# --- flag-only advices ------------------------------------------------------------------------
@pytest.mark.parametrize("advice,flag", [(MADV_DONTFORK, VM_DONTCOPY),
                                         (MADV_WIPEONFORK, VM_WIPEONFORK),
                                         (MADV_DONTDUMP, VM_DONTDUMP),
                                         (MADV_RANDOM, VM_RAND_READ),
                                         (MADV_SEQUENTIAL, VM_SEQ_READ),
                                         (MADV_HUGEPAGE, VM_HUGEPAGE),
                                         (MADV_MERGEABLE, VM_MERGEABLE)])
def test_flag_advice_splits_sets_and_undo_merges(advice, flag):
    undo = {MADV_DONTFORK: MADV_DOFORK, MADV_WIPEONFORK: MADV_KEEPONFORK,
            MADV_DONTDUMP: MADV_DODUMP, MADV_RANDOM: MADV_NORMAL, MADV_SEQUENTIAL: MADV_NORMAL,
            MADV_HUGEPAGE: None, MADV_MERGEABLE: None}[advice]
    env = Env()
    env.vma(page(0), 4, RW)
    env.touch(page(0), 4)
    assert do_madvise(env.mm, page(1), 2 * PAGE_SIZE, advice) == 0
    vmas = list(env.mm.mm_mt)
    assert [(v.vm_start, v.vm_end) for v in vmas] == [(page(0), page(1)), (page(1), page(3)),
                                                     (page(3), page(4))]
    assert [bool(v.vm_flags & flag) for v in vmas] == [False, True, False]
    assert env.present(page(0), 4) == [0, 1, 2, 3]   # a flag change keeps the pages
    env.check_exact()
    if undo is not None:
        assert do_madvise(env.mm, page(1), 2 * PAGE_SIZE, undo) == 0
        vmas = list(env.mm.mm_mt)
        assert [(v.vm_start, v.vm_end) for v in vmas] == [(page(0), page(4))]
        assert not vmas[0].vm_flags & flag


def test_wipeonfork_needs_private_anonymous_memory():
    env = Env()
    env.vma(page(0), 4, RW | SHARED, file=env.memfd(4))
    env.vma(page(8), 4, RW, file=env.memfd(4))
    assert do_madvise(env.mm, page(0), 4 * PAGE_SIZE, MADV_WIPEONFORK) == -EINVAL
    assert do_madvise(env.mm, page(8), 4 * PAGE_SIZE, MADV_WIPEONFORK) == -EINVAL


def test_willneed_on_anonymous_memory_does_nothing():
    env = Env()
    layout(env)
    rss = env.rss()
    assert do_madvise(env.mm, page(0), 4 * PAGE_SIZE, MADV_WILLNEED) == 0
    assert env.rss() == rss and len(env.mm.mm_mt) == 2


def test_cold_clears_young_of_exclusive_pages():
    env = Env()
    layout(env)
    assert env.pte(page(0)).young
    assert do_madvise(env.mm, page(0), 4 * PAGE_SIZE, MADV_COLD) == 0
    assert not env.pte(page(0)).young
    assert not env.tlb_has(0, page(0))
    assert env.rss()[MM_ANONPAGES] == 8


# --- MADV_REMOVE: a hole punch in the shmem file ---------------------------------------------
def test_remove_punches_a_hole_in_every_mapping_but_keeps_cow_copies():
    """MADV_REMOVE on a shared memfd mapping unmaps the range's file pages from every mapping
    of the file (this one, and a private one of the same file, whose COW copy stays), frees
    them from the page cache, and a later access sees zeros in a fresh page."""
    from unmapcheck.impl.filemap import cache_page
    env = Env()
    f = env.memfd(4)
    env.vma(page(0), 4, RW | SHARED, file=f)
    env.vma(page(8), 4, RO | 0x20, file=f)          # MAP_PRIVATE, VM_MAYWRITE
    env.touch(page(0), 4)                                     # 4 shmem pages, written
    env.load(page(9))                         # private: fault-around maps all 4 file pages
    old = [cache_page(f, i) for i in range(4)]
    assert env.rss()[MM_SHMEMPAGES] == 4 + 4
    env.load(page(1), cpu=1)
    before = env.allocated()
    assert do_madvise(env.mm, page(1), 2 * PAGE_SIZE, MADV_REMOVE) == 0
    assert cache_page(f, 1) is None and cache_page(f, 2) is None
    assert cache_page(f, 0) is old[0] and cache_page(f, 3) is old[3]
    assert env.present(page(0), 4) == [0, 3]
    assert env.present(page(8), 4) == [0, 3]
    assert not env.tlb_has(1, page(1)) and not env.tlb_has(0, page(2))
    assert old[1].free and old[2].free and env.allocated() == before - 2
    assert env.mm.mmap_lock.state() == "unlocked"
    env.check_exact()
    assert env.load(page(1)) == 0                             # a new, zeroed page
    assert cache_page(f, 1) is not None and cache_page(f, 1) is not old[1]
    assert env.load(page(0)) == 0x40                          # outside the hole: kept
    env.check_exact()


def test_remove_leaves_private_cow_copies_alone():
    from unmapcheck.impl.filemap import cache_page
    env = Env()
    f = env.memfd(2)
    env.vma(page(0), 2, RW | SHARED, file=f)
    env.vma(page(4), 2, RW, file=f)
    env.touch(page(0), 2)
    env.store(page(4), 0x77)                                  # COW copy of file page 0
    cow = env.page_at(page(4))
    assert do_madvise(env.mm, page(0), 2 * PAGE_SIZE, MADV_REMOVE) == 0
    assert env.page_at(page(4)) is cow and env.load(page(4)) == 0x77
    assert cache_page(f, 0) is None and cache_page(f, 1) is None
    assert env.rss()[MM_ANONPAGES] == 1 and env.rss()[MM_SHMEMPAGES] == 0
    env.check_exact()


def test_remove_errors():
    env = Env()
    layout(env)
    assert do_madvise(env.mm, page(0), PAGE_SIZE, MADV_REMOVE) == -EINVAL      # anon private
    env.vma(page(16), 2, RW, file=env.memfd(2))
    from unmapcheck.impl.constants import EACCES
    assert do_madvise(env.mm, page(16), PAGE_SIZE, MADV_REMOVE) == -EACCES     # file private
    env.vma(page(20), 2, RW | SHARED | LOCKED, file=env.memfd(2))
    assert do_madvise(env.mm, page(20), PAGE_SIZE, MADV_REMOVE) == -EINVAL     # VM_LOCKED
    assert env.mm.mmap_lock.state() == "unlocked"


# --- MADV_POPULATE_READ/WRITE ---------------------------------------------------------------
def test_populate_read_write_and_errors():
    from unmapcheck.impl.constants import EFAULT, MADV_POPULATE_READ
    env = Env()
    env.vma(page(0), 4, RO)
    env.vma(page(4), 4, RW)
    assert do_madvise(env.mm, page(0), 4 * PAGE_SIZE, MADV_POPULATE_READ) == 0
    assert env.present(page(0), 4) == [0, 1, 2, 3] and env.rss()[MM_ANONPAGES] == 0  # zero page
    assert do_madvise(env.mm, page(4), 4 * PAGE_SIZE, MADV_POPULATE_WRITE) == 0
    assert env.rss()[MM_ANONPAGES] == 4 and all(env.pte(page(i)).write for i in range(4, 8))
    assert do_madvise(env.mm, page(0), PAGE_SIZE, MADV_POPULATE_WRITE) == -EINVAL   # read-only
    assert do_madvise(env.mm, page(6), 4 * PAGE_SIZE, MADV_POPULATE_READ) == -ENOMEM  # hole
    f = env.memfd(1)
    env.vma(page(16), 4, RW | SHARED, file=f)
    assert do_madvise(env.mm, page(16), 4 * PAGE_SIZE, MADV_POPULATE_READ) == -EFAULT  # EOF
    assert env.present(page(16), 4) == [0]                    # the page before EOF was done
    assert env.mm.mmap_lock.state() == "unlocked"
    env.check_exact()


# --- advices whose effect the model does not have ------------------------------------------
def test_unsupported_advices_raise_after_the_kernels_error_checks():
    env = Env()
    layout(env)
    with pytest.raises(NotSupported, match="MADV_GUARD_INSTALL"):
        do_madvise(env.mm, page(0), PAGE_SIZE, MADV_GUARD_INSTALL)
    # The locks and the gather are balanced after the exception.
    assert env.mm.mmap_lock.state() == "unlocked"
    assert env.mm.tlb_flush_pending == 0
    assert do_madvise(env.mm, page(0), PAGE_SIZE, MADV_HWPOISON) == -EINVAL


# --- error returns, model against the real kernel ------------------------------------------
# (description, start page, length in bytes (relative), advice); the real kernel's answer was
# recorded on this machine (6.18.44) and is re-checked live by test_errors_match_real_kernel.
CASES = [
    ("unaligned start", 0, PAGE_SIZE, MADV_DONTNEED, 1, -EINVAL),
    ("len 0 in a hole", 20, 0, MADV_DONTNEED, 0, 0),
    ("len 0 unaligned", 0, 0, MADV_DONTNEED, 1, -EINVAL),
    ("unknown advice, len 0", 0, 0, 5, 0, -EINVAL),
    ("unknown advice 999", 0, PAGE_SIZE, 999, 0, -EINVAL),
    ("len -1 rounds to 0", 0, -1, MADV_DONTNEED, 0, -EINVAL),
    ("range wraps", 0, 2 ** 64 - 2 * PAGE_SIZE, MADV_DONTNEED, 0, -EINVAL),
    ("len 1 rounds up", 0, 1, MADV_DONTNEED, 0, 0),
    ("across the hole", 0, 10 * PAGE_SIZE, MADV_DONTNEED, 0, -ENOMEM),
    ("starting in the hole", 4, 4 * PAGE_SIZE, MADV_DONTNEED, 0, -ENOMEM),
    ("only the hole", 4, 2 * PAGE_SIZE, MADV_DONTNEED, 0, -ENOMEM),
    ("beyond every VMA", 20, 10 * PAGE_SIZE, MADV_DONTNEED, 0, -ENOMEM),
    ("NORMAL across the hole", 0, 10 * PAGE_SIZE, MADV_NORMAL, 0, -ENOMEM),
    ("FREE across the hole", 0, 10 * PAGE_SIZE, MADV_FREE, 0, -ENOMEM),
    ("WILLNEED across the hole", 0, 10 * PAGE_SIZE, MADV_WILLNEED, 0, -ENOMEM),
    ("DONTFORK inside", 1, 2 * PAGE_SIZE, MADV_DONTFORK, 0, 0),
    ("REMOVE on private anon", 0, 4 * PAGE_SIZE, MADV_REMOVE, 0, -EINVAL),
    ("HWPOISON (no CONFIG_MEMORY_FAILURE)", 0, 0, MADV_HWPOISON, 0, -EINVAL),
]


def run_model(start_page, length, advice, offset):
    env = Env()
    layout(env)
    ret = do_madvise(env.mm, page(start_page) + offset, length & (2 ** 64 - 1), advice)
    return ret, model_vmas(env)


@pytest.mark.parametrize("desc,start,length,advice,offset,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_errors_match_recorded_kernel(desc, start, length, advice, offset, expected):
    ret, _ = run_model(start, length, advice, offset)
    assert ret == expected, (desc, errname(ret), errname(expected))


@needs_real_kernel
@pytest.mark.parametrize("desc,start,length,advice,offset,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_errors_match_real_kernel(desc, start, length, advice, offset, expected):
    """The same call on the same layout in this process's real address space: the same
    return value, and the same VMAs with the same resident pages afterwards."""
    ret, model_after = run_model(start, length, advice, offset)
    win = RealWindow()
    try:
        win.layout()
        real = real_syscall(SYS_madvise, win.base + start * PAGE_SIZE + offset, length, advice)
        real_after = win.vmas()
    finally:
        win.close()
    assert ret == real, (desc, errname(ret), errname(real))
    assert [v[:4] for v in model_after] == [v[:4] for v in real_after]


@needs_real_kernel
def test_real_kernel_is_the_recorded_one():
    import platform
    assert REAL and platform.release().startswith("6.18"), platform.release()
