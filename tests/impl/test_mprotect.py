"""mprotect(2) (impl/mprotect.py): split/merge, PTE write bits, TLB flushes, and the error
returns against the real kernel of this machine."""

from __future__ import annotations

import pytest

from mmkit import (BASE, RO, RW, SHARED, Env, RealWindow, Recorder, errname,
                   model_vmas, needs_real_kernel, page, real_syscall, SYS_mprotect)

from unmapcheck.impl.constants import (EACCES, EINVAL, ENOMEM, MM_ANONPAGES, PAGE_SIZE,
                                       PROT_EXEC, PROT_GROWSDOWN, PROT_GROWSUP, PROT_NONE,
                                       PROT_READ, PROT_WRITE, VM_ACCOUNT, VM_MAYWRITE, VM_READ,
                                       VM_WRITE)
from unmapcheck.impl.fork import dup_mm
from unmapcheck.impl.mprotect import do_mprotect_pkey

RWP = PROT_READ | PROT_WRITE


def spans(env):
    return [((v.vm_start - BASE) // PAGE_SIZE, (v.vm_end - BASE) // PAGE_SIZE,
             v.vm_flags & (VM_READ | VM_WRITE)) for v in env.mm.mm_mt]


def test_split_write_protect_flush_then_merge_and_upgrade():
    env = Env()
    env.vma(page(0), 4, RW)
    env.touch(page(0), 4)
    pages = [env.page_at(page(i)) for i in range(4)]
    with Recorder() as rec:
        assert do_mprotect_pkey(env.mm, page(1), 2 * PAGE_SIZE, PROT_READ, -1) == 0
    assert spans(env) == [(0, 1, VM_READ | VM_WRITE), (1, 3, VM_READ), (3, 4, VM_READ | VM_WRITE)]
    assert [env.pte(page(i)).write for i in range(4)] == [True, False, False, True]
    # Write permission taken away: the middle range was flushed, the rest kept.
    assert [(i["start"], i["end"]) for k, i in rec.events if k == "tlb_flush"] == \
        [(page(1), page(3))]
    assert [env.tlb_has(0, page(i)) for i in range(4)] == [True, False, False, True]
    assert [env.page_at(page(i)) for i in range(4)] == pages      # same pages, still mapped
    env.check_exact()
    # Back to read-write: one VMA again, and the exclusive anonymous pages are made writable
    # at once (set_write_prot_commit_flush_ptes), without a flush (a permission was only added).
    with Recorder() as rec:
        assert do_mprotect_pkey(env.mm, page(0), 4 * PAGE_SIZE, RWP, -1) == 0
    assert spans(env) == [(0, 4, VM_READ | VM_WRITE)]
    assert all(env.pte(page(i)).write for i in range(4))
    assert "tlb_flush" not in rec.kinds()
    assert env.mm.map_count == 1


def test_shared_cow_pages_stay_read_only():
    env = Env()
    env.vma(page(0), 2, RW)
    env.touch(page(0), 2)
    cmm = dup_mm(env.task, env.mm)
    assert do_mprotect_pkey(env.mm, page(0), 2 * PAGE_SIZE, PROT_READ, -1) == 0
    assert do_mprotect_pkey(env.mm, page(0), 2 * PAGE_SIZE, RWP, -1) == 0
    # Not PageAnonExclusive any more (the child maps them): a write must go through COW.
    assert not env.pte(page(0)).write and not env.pte(page(1)).write
    env.store(page(0), 1)
    assert env.page_at(page(0)) is not env.page_at(page(0), cmm)
    env.check_exact()
    env.check_exact(cmm)


def test_shared_memfd_mapping_is_writable_directly():
    env = Env()
    f = env.memfd(2)
    env.vma(page(0), 2, RW | SHARED, file=f)
    env.touch(page(0), 2)
    assert do_mprotect_pkey(env.mm, page(0), 2 * PAGE_SIZE, PROT_READ, -1) == 0
    assert not env.pte(page(0)).write
    assert do_mprotect_pkey(env.mm, page(0), 2 * PAGE_SIZE, RWP, -1) == 0
    assert env.pte(page(0)).write                # shmem: no write-notify, vm_page_prot is RW


def test_account_flag_follows_the_kernel():
    env = Env()
    env.vma(page(0), 2, RW & ~VM_WRITE)          # a read-only private anonymous VMA
    assert do_mprotect_pkey(env.mm, page(0), 2 * PAGE_SIZE, RWP, -1) == 0
    (v,) = list(env.mm.mm_mt)
    assert v.vm_flags & VM_ACCOUNT               # made writable: charged
    assert do_mprotect_pkey(env.mm, page(0), 2 * PAGE_SIZE, PROT_READ, -1) == 0
    (v,) = list(env.mm.mm_mt)
    assert not v.vm_flags & VM_ACCOUNT           # read-only again, no anon_vma: uncharged


def test_needs_maywrite():
    env = Env()
    env.vma(page(0), 2, RO & ~VM_MAYWRITE, file=env.memfd(2))
    assert do_mprotect_pkey(env.mm, page(0), 2 * PAGE_SIZE, RWP, -1) == -EACCES


def test_prot_none_makes_protnone_ptes_flushed_and_back():
    """x86: mprotect(PROT_NONE) keeps the pages mapped (rss, mapcount) as protnone PTEs that
    the MMU does not use (flushed; a load faults and is SIGSEGV); making the range readable
    again turns them back into present PTEs of the same pages, with no flush."""
    from unmapcheck.impl.pte import pte_present, pte_protnone
    from unmapcheck.impl.x86_fault import SigSegv
    env = Env()
    env.vma(page(0), 2, RW)
    env.vma(page(4), 2, RW)
    env.touch(page(0), 2)
    pages = [env.page_at(page(i)) for i in range(2)]
    with Recorder() as rec:
        assert do_mprotect_pkey(env.mm, page(0), 2 * PAGE_SIZE, PROT_NONE, -1) == 0
    assert all(pte_present(env.pte(page(i))) and pte_protnone(env.pte(page(i)))
               and not env.pte(page(i)).write for i in range(2))
    assert [(i["start"], i["end"]) for k, i in rec.events if k == "tlb_flush"] == \
        [(page(0), page(2))]
    assert not env.tlb_has(0, page(0)) and not env.tlb_has(0, page(1))
    assert env.rss()[MM_ANONPAGES] == 2
    env.check_exact()
    with pytest.raises(SigSegv):
        env.load(page(0))
    assert env.mm.mmap_lock.state() == "unlocked" and env.mm.tlb_flush_pending == 0
    with Recorder() as rec:
        assert do_mprotect_pkey(env.mm, page(0), 2 * PAGE_SIZE, RWP, -1) == 0
    assert "tlb_flush" not in rec.kinds()                 # !_PAGE_PRESENT -> *: no flush
    assert [env.page_at(page(i)) for i in range(2)] == pages
    assert not any(pte_protnone(env.pte(page(i))) for i in range(2))
    assert env.load(page(1)) == 0x41                      # the data survived
    # An empty range: nothing to change.
    assert do_mprotect_pkey(env.mm, page(4), 2 * PAGE_SIZE, PROT_NONE, -1) == 0
    env.check_exact()


def test_protnone_ptes_are_copied_by_fork_and_zapped():
    """A protnone PTE is present to the kernel: fork copies it (the VMA has an anon_vma),
    munmap zaps it and frees the page."""
    from unmapcheck.impl.mmap import __vm_munmap
    from unmapcheck.impl.pte import pte_protnone
    env = Env()
    env.vma(page(0), 2, RW)
    env.touch(page(0), 2)
    assert do_mprotect_pkey(env.mm, page(0), 2 * PAGE_SIZE, PROT_NONE, -1) == 0
    before = env.allocated()
    cmm = dup_mm(env.task, env.mm)
    assert pte_protnone(env.pte(page(0), cmm)) and env.rss(cmm)[MM_ANONPAGES] == 2
    assert page_mapcount_of(env, page(0)) == 2
    env.check_exact(cmm)
    assert __vm_munmap(env.mm, page(0), 2 * PAGE_SIZE, True) == 0
    assert env.rss()[MM_ANONPAGES] == 0 and page_mapcount_of(env, page(0), cmm) == 1
    assert env.allocated() >= before


def page_mapcount_of(env, addr, mm=None):
    from unmapcheck.impl.page import page_mapcount
    return page_mapcount(env.page_at(addr, mm))


def test_locked_private_vma_becoming_writable_is_populated():
    from unmapcheck.impl.mlock import sys_mlock
    env = Env()
    env.vma(page(0), 4, RO)
    assert sys_mlock(env.mm, page(0), 4 * PAGE_SIZE) == 0
    assert env.rss()[MM_ANONPAGES] == 0          # read faults: the zero page
    assert do_mprotect_pkey(env.mm, page(0), 4 * PAGE_SIZE, RWP, -1) == 0
    assert env.rss()[MM_ANONPAGES] == 4          # COW broken now (populate_vma_page_range)
    env.check_exact()


# --- error returns, model against the real kernel ------------------------------------------
# (description, start page, offset, length, prot, expected on this machine's 6.18.44)
CASES = [
    ("unaligned", 0, 1, PAGE_SIZE, PROT_READ, -EINVAL),
    ("len 0 unaligned", 0, 1, 0, PROT_READ, -EINVAL),
    ("len 0 in a hole", 20, 0, 0, PROT_READ, 0),
    ("len 0 bad prot", 0, 0, 0, 0x100, 0),
    ("range wraps", 0, 0, 2 ** 64 - PAGE_SIZE, PROT_READ, -ENOMEM),
    ("len -1", 0, 0, 2 ** 64 - 1, PROT_READ, -ENOMEM),
    ("across the hole", 0, 0, 10 * PAGE_SIZE, PROT_READ, -ENOMEM),
    ("starting in the hole", 4, 0, 4 * PAGE_SIZE, PROT_READ, -ENOMEM),
    ("only the hole", 4, 0, 2 * PAGE_SIZE, PROT_READ, -ENOMEM),
    ("split inside", 1, 0, 2 * PAGE_SIZE, PROT_READ, 0),
    ("GROWSDOWN|GROWSUP", 0, 0, PAGE_SIZE, PROT_READ | PROT_GROWSDOWN | PROT_GROWSUP, -EINVAL),
    ("GROWSDOWN on a normal VMA", 0, 0, PAGE_SIZE, PROT_READ | PROT_GROWSDOWN, -EINVAL),
    ("GROWSUP (none on x86)", 0, 0, PAGE_SIZE, PROT_READ | PROT_GROWSUP, -EINVAL),
    ("PROT_SEM accepted", 0, 0, PAGE_SIZE, PROT_READ | 0x8, 0),
    ("unknown prot bit", 0, 0, PAGE_SIZE, 0x10, -EINVAL),
    ("exec only", 0, 0, PAGE_SIZE, PROT_EXEC, 0),
    ("beyond TASK_SIZE", 2 ** 35, 0, PAGE_SIZE, PROT_READ, -ENOMEM),
]


def run_model(start, offset, length, prot):
    env = Env()
    env.vma(page(0), 4, RW)
    env.vma(page(6), 4, RW)
    env.touch(page(0), 4)
    env.touch(page(6), 4)
    addr = (page(0) + start * PAGE_SIZE + offset) if start < 2 ** 30 else (1 << 47)
    return do_mprotect_pkey(env.mm, addr, length, prot, -1), model_vmas(env)


@pytest.mark.parametrize("desc,start,offset,length,prot,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_errors_match_recorded_kernel(desc, start, offset, length, prot, expected):
    ret, _ = run_model(start, offset, length, prot)
    assert ret == expected, (desc, errname(ret), errname(expected))


@needs_real_kernel
@pytest.mark.parametrize("desc,start,offset,length,prot,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_errors_match_real_kernel(desc, start, offset, length, prot, expected):
    ret, model_after = run_model(start, offset, length, prot)
    win = RealWindow()
    try:
        win.layout()
        addr = (win.base + start * PAGE_SIZE + offset) if start < 2 ** 30 else (1 << 47)
        real = real_syscall(SYS_mprotect, addr, length, prot)
        real_after = win.vmas()
    finally:
        win.close()
    assert ret == real, (desc, errname(ret), errname(real))
    assert [v[:4] for v in model_after] == [v[:4] for v in real_after]
