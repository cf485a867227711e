"""mlock(2) family (impl/mlock.py): locked_vm, PG_mlocked, population, the 5.x munlock walk,
and the error returns against the real kernel of this machine."""

from __future__ import annotations

import pytest

from mmkit import (NONE, RO, RW, SHARED, Env, RealWindow, Recorder, errname,
                   model_vmas, needs_real_kernel, page, real_syscall, real_vmlck_kb, SYS_mlock,
                   SYS_mlock2, SYS_munlock)

from unmapcheck.impl.constants import (EINVAL, ENOMEM, MCL_CURRENT, MCL_FUTURE, MLOCK_ONFAULT,
                                       MM_ANONPAGES, MM_SHMEMPAGES, PAGE_SIZE, VM_LOCKED,
                                       VM_LOCKONFAULT)
from unmapcheck.impl.mlock import (munlock_vma_pages_all, sys_mlock, sys_mlock2,
                                   sys_mlockall, sys_munlock, sys_munlockall)
from unmapcheck.impl.page import PG_mlocked, PG_unevictable


def mlocked(env, start, n):
    return [bool(env.page_at(start + i * PAGE_SIZE).flags & PG_mlocked)
            for i in env.present(start, n)]


def test_mlock_marks_mapped_pages_populates_the_rest_and_counts_locked_vm():
    env = Env()
    env.vma(page(0), 4, RW)
    env.touch(page(0), 2)                        # pages 0 and 1 already mapped
    assert sys_mlock(env.mm, page(0), 4 * PAGE_SIZE) == 0
    assert env.mm.locked_vm == 4
    assert env.present(page(0), 4) == [0, 1, 2, 3]   # populated with write faults
    assert env.rss()[MM_ANONPAGES] == 4
    assert mlocked(env, page(0), 4) == [True] * 4
    assert all(env.page_at(page(i)).flags & PG_unevictable for i in range(4))
    (v,) = list(env.mm.mm_mt)
    assert v.vm_flags & VM_LOCKED and not v.vm_flags & 0x4000   # VM_IO only during the walk
    env.check_exact()
    # mlock again: nothing changes, locked_vm is not counted twice.
    assert sys_mlock(env.mm, page(0), 4 * PAGE_SIZE) == 0
    assert env.mm.locked_vm == 4


def test_munlock_middle_splits_and_clears_pg_mlocked():
    env = Env()
    env.vma(page(0), 4, RW)
    assert sys_mlock(env.mm, page(0), 4 * PAGE_SIZE) == 0
    assert sys_munlock(env.mm, page(1), PAGE_SIZE) == 0
    assert [(v.vm_start, v.vm_end, bool(v.vm_flags & VM_LOCKED)) for v in env.mm.mm_mt] == \
        [(page(0), page(1), True), (page(1), page(2), False), (page(2), page(4), True)]
    assert env.mm.locked_vm == 3
    assert mlocked(env, page(0), 4) == [True, False, True, True]
    assert sys_munlock(env.mm, page(0), 4 * PAGE_SIZE) == 0
    assert env.mm.locked_vm == 0 and len(env.mm.mm_mt) == 1       # merged back
    assert mlocked(env, page(0), 4) == [False] * 4


def test_read_only_private_anonymous_mlock_maps_the_zero_page():
    env = Env()
    env.vma(page(0), 4, RO)
    assert sys_mlock(env.mm, page(0), 4 * PAGE_SIZE) == 0
    zero = env.machine.zone.zero_page.pfn
    assert [env.pte(page(i)).pfn for i in range(4)] == [zero] * 4
    assert all(env.pte(page(i)).special for i in range(4))
    assert env.rss() == [0, 0, 0, 0] and env.mm.locked_vm == 4


def test_prot_none_locks_the_vma_then_fails_to_populate():
    env = Env()
    env.vma(page(0), 4, NONE)
    assert sys_mlock(env.mm, page(0), 4 * PAGE_SIZE) == -ENOMEM
    assert env.mm.locked_vm == 4 and env.present(page(0), 4) == []


def test_hole_locks_the_first_vma_and_populates_nothing():
    env = Env()
    env.vma(page(0), 4, RW)
    assert sys_mlock(env.mm, page(0), 8 * PAGE_SIZE) == -ENOMEM
    assert env.mm.locked_vm == 4 and env.present(page(0), 4) == []


def test_mlock2_onfault_and_bad_flags():
    env = Env()
    env.vma(page(0), 4, RW)
    assert sys_mlock2(env.mm, page(0), 4 * PAGE_SIZE, 2) == -EINVAL
    assert sys_mlock2(env.mm, page(0), 4 * PAGE_SIZE, MLOCK_ONFAULT) == 0
    (v,) = list(env.mm.mm_mt)
    assert v.vm_flags & VM_LOCKONFAULT and env.present(page(0), 4) == []
    env.store(page(2))                           # a fault in a VM_LOCKED VMA: mlocked page
    assert mlocked(env, page(0), 4) == [True]


def test_shared_memfd_is_populated_with_read_faults():
    env = Env()
    f = env.memfd(4)
    env.vma(page(0), 4, RW | SHARED, file=f)
    assert sys_mlock(env.mm, page(0), 4 * PAGE_SIZE) == 0
    assert env.rss()[MM_SHMEMPAGES] == 4
    assert not any(env.pte(page(i)).dirty for i in range(4))   # not dirtied for nothing


def test_mlockall_and_munlockall():
    env = Env()
    env.vma(page(0), 2, RW)
    env.vma(page(4), 2, RO)
    assert sys_mlockall(env.mm, MCL_CURRENT | MCL_FUTURE) == 0
    assert env.mm.locked_vm == 4 and env.mm.def_flags & VM_LOCKED
    assert env.rss()[MM_ANONPAGES] == 2          # the RO VMA got the zero page
    assert sys_munlockall(env.mm) == 0
    assert env.mm.locked_vm == 0 and not env.mm.def_flags & VM_LOCKED


def test_5x_munlock_walk_marks_the_walker_and_clears_pg_mlocked():
    env = Env(era="5.x")
    v = env.vma(page(0), 3, RW)
    assert sys_mlock(env.mm, page(0), 3 * PAGE_SIZE) == 0
    seen = []
    with Recorder(lambda label: seen.append(v.walkers) if label.startswith("ptep_get") else None) \
            as rec:
        munlock_vma_pages_all(v)
    assert seen and all(w == 1 for w in seen)    # every PTE read happens inside the walker
    assert v.walkers == 0 and not v.vm_flags & VM_LOCKED
    assert mlocked(env, page(0), 3) == [False] * 3
    assert rec.labels.count("munlock_walker_enter") == 3
    assert "zap_under_walker" not in rec.kinds()
    env.check_exact()                            # follow_page's references were dropped
    assert all(env.page_at(page(i))._refcount == 1 for i in range(3))


def test_walker_entering_a_vma_being_zapped_is_reported():
    env = Env(era="5.x")
    v = env.vma(page(0), 1, RW)
    env.touch(page(0), 1)
    v.zappers = 1                                # a zap is inside the VMA
    with Recorder() as rec:
        munlock_vma_pages_all(v)
    v.zappers = 0
    assert "zap_under_walker" in rec.kinds()


# --- model against the real kernel ------------------------------------------------------------
# (description, syscall, start page, offset, length, flags, layout prot, expected)
CASES = [
    ("rw anon", "mlock", 0, 0, 4 * PAGE_SIZE, 0, 3, 0),
    ("read-only anon: zero page", "mlock", 0, 0, 4 * PAGE_SIZE, 0, 1, 0),
    ("PROT_NONE", "mlock", 0, 0, 4 * PAGE_SIZE, 0, 0, -ENOMEM),
    ("unaligned start and len", "mlock", 1, 5, 10, 0, 3, 0),
    ("len 0", "mlock", 0, 0, 0, 0, 3, 0),
    ("len 0 unaligned start", "mlock", 0, 3, 0, 0, 3, 0),
    ("hole", "mlock", 0, 0, 8 * PAGE_SIZE, 0, 3, -ENOMEM),
    ("only a hole", "mlock", 10, 0, 2 * PAGE_SIZE, 0, 3, -ENOMEM),
    ("range wraps", "mlock", 0, 0, 2 ** 64 - PAGE_SIZE, 0, 3, -EINVAL),
    ("mlock2 bad flags", "mlock2", 0, 0, 4 * PAGE_SIZE, 2, 3, -EINVAL),
    ("mlock2 onfault", "mlock2", 0, 0, 4 * PAGE_SIZE, MLOCK_ONFAULT, 3, 0),
    ("munlock unlocked", "munlock", 0, 0, 4 * PAGE_SIZE, 0, 3, 0),
    ("munlock hole", "munlock", 0, 0, 8 * PAGE_SIZE, 0, 3, -ENOMEM),
]


def run_model(call, start, offset, length, flags, prot):
    from mmkit import NONE as N
    env = Env()
    env.vma(page(0), 4, {3: RW, 1: RO, 0: N}[prot])
    addr = page(start) + offset
    if call == "mlock":
        ret = sys_mlock(env.mm, addr, length)
    elif call == "mlock2":
        ret = sys_mlock2(env.mm, addr, length, flags)
    else:
        ret = sys_munlock(env.mm, addr, length)
    return ret, model_vmas(env), env.mm.locked_vm * 4


@pytest.mark.parametrize("desc,call,start,offset,length,flags,prot,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_errors_match_recorded_kernel(desc, call, start, offset, length, flags, prot, expected):
    ret, _, _ = run_model(call, start, offset, length, flags, prot)
    assert ret == expected, (desc, errname(ret), errname(expected))


@needs_real_kernel
@pytest.mark.parametrize("desc,call,start,offset,length,flags,prot,expected", CASES,
                         ids=[c[0] for c in CASES])
def test_matches_real_kernel(desc, call, start, offset, length, flags, prot, expected):
    """Same return, same VMAs with the same Rss and Locked, same VmLck."""
    ret, model_after, model_lck = run_model(call, start, offset, length, flags, prot)
    win = RealWindow()
    try:
        win.layout(vmas=((0, 4, prot),), touch=False)
        base_lck = real_vmlck_kb()
        addr = win.base + start * PAGE_SIZE + offset
        if call == "mlock":
            real = real_syscall(SYS_mlock, addr, length)
        elif call == "mlock2":
            real = real_syscall(SYS_mlock2, addr, length, flags)
        else:
            real = real_syscall(SYS_munlock, addr, length)
        real_after = win.vmas()
        real_lck = real_vmlck_kb() - base_lck
    finally:
        win.close()
    assert ret == real, (desc, errname(ret), errname(real))
    assert model_after == real_after
    assert model_lck == real_lck


def test_mlockall_and_munlockall_as_scenario_ops():
    """The scenario ops reach sys_mlockall/sys_munlockall: a locked VMA refuses
    MADV_DONTNEED (-EINVAL) until munlockall, and MCL_ONFAULT alone is -EINVAL."""
    from unmapcheck.checker.prove import PROVED, explore_scenario, judge
    from unmapcheck.checker.scenario import parse
    text = """
[scenario]
name = "mlockall-op"
[[process]]
name = "p"
[[process.mapping]]
addr = 0x7f0000000000
pages = 2
prot = "rw"
[[thread]]
name = "T0"
process = "p"
program = [
  { op = "mlockall", flags = "MCL_CURRENT" },
  { op = "madvise", addr = 0x7f0000000000, len = 0x2000, advice = "MADV_DONTNEED" },
  { op = "munlockall" },
  { op = "madvise", addr = 0x7f0000000000, len = 0x2000, advice = "MADV_DONTNEED" },
  { op = "mlockall", flags = "MCL_ONFAULT" },
]
[expect]
never = true
forall = ["T0[0] == 0", "T0[1] == -22", "T0[2] == 0", "T0[3] == 0", "T0[4] == -22"]
"""
    sc = parse(text, "<mlockall>")
    verdict = judge(sc, explore_scenario(sc, None, 60.0), "mlockall-op", 0.0)
    assert verdict.status == PROVED, verdict.detail
