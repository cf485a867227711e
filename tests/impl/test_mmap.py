"""Tests of impl/mmap.py: the mmap system call (sys_mmap -> ksys_mmap_pgoff ->
vm_mmap_pgoff -> do_mmap -> __get_unmapped_area / mmap_region), its flags and accounting,
population (MAP_POPULATE, MAP_LOCKED), and exit_mmap in both kernel eras.

The argument cases carry the real kernel's answers: each was run as a raw mmap(2) syscall
(ctypes, syscall number 9, in a fresh child process, memfds from memfd_create(2)) on this
machine's Linux 6.18 x86-64 kernel, as root unless "unprivileged" (setuid 65534). Facts of
that machine the model reproduces through Machine.tunables: /proc/sys/vm/mmap_min_addr reads
4096 (a MAP_FIXED at 0 needs CAP_SYS_RAWIO) but hints are rounded up to 0x10000
(CONFIG_LSM_MMAP_MIN_ADDR); RLIMIT_MEMLOCK is 8 MiB; soft-dirty is off (no "sd" VmFlag).
"""

from __future__ import annotations

import pytest

from unmapcheck.impl import sched
from unmapcheck.impl.constants import (EACCES, EAGAIN, EBADF, EEXIST, EINVAL, ENOMEM, EOVERFLOW,
                                       EPERM, MAP_ANONYMOUS, MAP_FIXED, MAP_FIXED_NOREPLACE,
                                       MAP_GROWSDOWN, MAP_HUGETLB, MAP_LOCKED, MAP_NONBLOCK,
                                       MAP_POPULATE, MAP_PRIVATE, MAP_SHARED,
                                       MAP_SHARED_VALIDATE, MAP_STACK, MAP_SYNC, MM_ANONPAGES,
                                       MM_SHMEMPAGES, MMF_OOM_SKIP, MMAP_BASE, PROT_READ,
                                       PROT_WRITE, TASK_SIZE, ULONG_MAX, VM_ACCOUNT,
                                       VM_LOCKED, VM_MAYSHARE, VM_MAYWRITE, VM_NOHUGEPAGE,
                                       VM_SHARED, VM_SYNC)
from unmapcheck.impl.filemap import generic_perform_write
from unmapcheck.impl.mmap import (EOPNOTSUPP, FMODE_READ, FMODE_WRITE, exit_mmap, sys_mmap)
from unmapcheck.impl.pgtable import LEVEL_PGD
from unmapcheck.impl.sched import KernelBug

from vmakit import BASE, RW, Env, P, Recorder

PRIV = MAP_PRIVATE | MAP_ANONYMOUS
FSH = MAP_SHARED
NOFILE = object()        # "use the Env's memfd"


def run(env, addr, length, prot, flags, fd=None, off=0):
    """sys_mmap with the memfd of the test when fd is NOFILE."""
    return sys_mmap(env.mm, addr, length, prot, flags, fd, off)


# =============================================================================================
# Argument checks and errors, against the real kernel
# =============================================================================================
# (name, addr, len, prot, flags, file?, offset, expected: an errno or "ok")
REAL_MMAP = [
    ("len 0", 0, 0, RW, PRIV, False, 0, -EINVAL),
    ("len ULONG_MAX (PAGE_ALIGN wraps)", 0, ULONG_MAX, RW, PRIV, False, 0, -ENOMEM),
    ("len ULONG_MAX-4095 (aligned, too big)", 0, ULONG_MAX - P + 1, RW, PRIV, False, 0,
     -ENOMEM),
    ("len TASK_SIZE+4096", 0, TASK_SIZE + P, RW, PRIV, False, 0, -ENOMEM),
    ("offset not page aligned", 0, P, RW, PRIV, False, 1, -EINVAL),
    ("anonymous MAP_SHARED_VALIDATE", 0, P, RW, MAP_SHARED_VALIDATE | MAP_ANONYMOUS, False, 0,
     -EINVAL),
    ("anonymous map type 0", 0, P, RW, MAP_ANONYMOUS, False, 0, -EINVAL),
    ("anonymous map type 0xf", 0, P, RW, 0xF | MAP_ANONYMOUS, False, 0, -EINVAL),
    ("MAP_FIXED unaligned address", BASE + 1, P, RW, PRIV | MAP_FIXED, False, 0, -EINVAL),
    ("MAP_FIXED last page below TASK_SIZE", TASK_SIZE - P, P, RW, PRIV | MAP_FIXED, False, 0,
     "ok"),
    ("MAP_FIXED at TASK_SIZE", TASK_SIZE, P, RW, PRIV | MAP_FIXED, False, 0, -ENOMEM),
    ("MAP_FIXED crossing TASK_SIZE", TASK_SIZE - P, 2 * P, RW, PRIV | MAP_FIXED, False, 0,
     -ENOMEM),
    ("MAP_FIXED at 1<<48", 1 << 48, P, RW, PRIV | MAP_FIXED, False, 0, -ENOMEM),
    ("unknown prot bit 0x8", 0, P, 0x8, PRIV, False, 0, "ok"),
    ("anonymous shared MAP_GROWSDOWN", 0, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_GROWSDOWN,
     False, 0, -EINVAL),
    ("anonymous huge offset is ignored", 0, P, RW, PRIV, False, ULONG_MAX & ~(P - 1), "ok"),
    ("anonymous MAP_DROPPABLE", 0, P, RW, 0x08 | MAP_ANONYMOUS, False, 0, "ok"),
    ("anonymous MAP_HUGETLB, no huge pages", 0, P, RW, PRIV | MAP_HUGETLB, False, 0, -ENOMEM),
    ("memfd MAP_SHARED_VALIDATE|MAP_SYNC", 0, P, RW, MAP_SHARED_VALIDATE | MAP_SYNC, True, 0,
     -EOPNOTSUPP),
    ("memfd MAP_SHARED_VALIDATE|MAP_FIXED_NOREPLACE", BASE, P, RW,
     MAP_SHARED_VALIDATE | MAP_FIXED_NOREPLACE, True, 0, -EOPNOTSUPP),
    ("memfd MAP_SHARED_VALIDATE|0x200000", 0, P, RW, MAP_SHARED_VALIDATE | 0x200000, True, 0,
     -EOPNOTSUPP),
    ("memfd MAP_SHARED|MAP_SYNC is accepted", 0, P, RW, MAP_SHARED | MAP_SYNC, True, 0, "ok"),
    ("memfd MAP_PRIVATE|0x200000 is accepted", 0, P, RW, MAP_PRIVATE | 0x200000, True, 0,
     "ok"),
    ("memfd map type 0", 0, P, RW, 0, True, 0, -EINVAL),
    ("memfd map type 0xf", 0, P, RW, 0xF, True, 0, -EINVAL),
    ("memfd offset not page aligned", 0, P, RW, FSH, True, 5, -EINVAL),
    ("memfd offset ULONG_MAX & PAGE_MASK", 0, P, RW, FSH, True, ULONG_MAX & ~(P - 1),
     -EOVERFLOW),
    ("memfd offset 1<<62", 0, P, RW, FSH, True, 1 << 62, "ok"),
    ("memfd offset 1<<63", 0, P, RW, FSH, True, 1 << 63, -EOVERFLOW),
    ("memfd offset beyond i_size", 0, P, RW, FSH, True, 8 * P, "ok"),
    ("memfd MAP_GROWSDOWN", 0, P, RW, FSH | MAP_GROWSDOWN, True, 0, -EINVAL),
    ("memfd len 0", 0, 0, RW, FSH, True, 0, -EINVAL),
    ("memfd len ULONG_MAX", 0, ULONG_MAX, RW, FSH, True, 0, -ENOMEM),
]


@pytest.mark.parametrize("name,addr,length,prot,flags,with_file,off,expected", REAL_MMAP,
                         ids=[c[0] for c in REAL_MMAP])
def test_mmap_arguments_match_real_kernel(name, addr, length, prot, flags, with_file, off,
                                          expected):
    env = Env(capable=True)
    fd = env.memfd(1) if with_file else None
    ret = run(env, addr, length, prot, flags, fd, off)
    if expected == "ok":
        assert ret >= 0 and ret % P == 0
        assert env.mm.map_count == 1
    else:
        assert ret == expected
        assert env.mm.map_count == 0
    assert env.mm.mmap_lock.writer is None


def test_len_and_pgoff_checks_symbolically():
    """do_mmap_len_pgoff() on z3 bit-vectors: an accepted length rounds up to whole pages
    without wrapping, and the file range's last page index does not wrap."""
    z3 = pytest.importorskip("z3")
    from unmapcheck.impl.mmap import do_mmap_len_pgoff
    length, pgoff = z3.BitVecs("len pgoff", 64)
    zero, wraps, pgoff_wraps, aligned = do_mmap_len_pgoff(length, pgoff)
    s = z3.Solver()
    s.add(z3.Not(zero), z3.Not(wraps), z3.Not(pgoff_wraps))
    assert s.check() == z3.sat
    s.add(z3.Or(z3.ULT(aligned, length), z3.UGE(aligned - length, P), (aligned & (P - 1)) != 0,
                z3.ULT(pgoff + z3.LShR(aligned, 12), pgoff)))
    assert s.check() == z3.unsat


def test_negative_python_ints_are_unsigned_longs():
    env = Env()
    assert env.mmap(BASE, -1) == -ENOMEM              # len ULONG_MAX
    assert env.munmap(-P, P) == -EINVAL               # start 0xfffffffffffff000


def test_bad_fd_is_ebadf_and_anonymous_ignores_fd():
    env = Env()
    assert run(env, 0, P, RW, MAP_PRIVATE, None) == -EBADF
    assert run(env, 0, P, RW, PRIV, None) > 0


@pytest.mark.parametrize("f_mode,flags,prot,expected", [
    (FMODE_READ, MAP_SHARED, RW, -EACCES),
    (FMODE_READ, MAP_SHARED, PROT_READ, "ok"),
    (FMODE_READ, MAP_PRIVATE, RW, "ok"),
    (FMODE_WRITE, MAP_SHARED, PROT_WRITE, -EACCES),
    (FMODE_WRITE, MAP_PRIVATE, PROT_READ, -EACCES),
], ids=["O_RDONLY shared write: EACCES", "O_RDONLY shared read: ok",
        "O_RDONLY private write: ok", "O_WRONLY shared write: EACCES",
        "O_WRONLY private read: EACCES"])
def test_file_open_mode_checks_match_real_kernel(f_mode, flags, prot, expected):
    env = Env()
    f = env.memfd(1)
    f.f_mode = f_mode                 # a memfd reopened through /proc/self/fd/N
    ret = run(env, 0, P, prot, flags, f)
    if expected == "ok":
        assert ret > 0
    else:
        assert ret == expected


def test_read_only_fd_shared_mapping_is_not_vm_shared_real_kernel_vmflags_rd_mr_me_ms():
    env = Env()
    f = env.memfd(1)
    f.f_mode = FMODE_READ
    run(env, 0, P, PROT_READ, MAP_SHARED, f)
    flags = env.vmas()[0].vm_flags
    assert flags & VM_MAYSHARE and not flags & (VM_SHARED | VM_MAYWRITE)


def test_map_fixed_noreplace_real_kernel():
    env = Env()
    a = run(env, BASE, 4 * P, RW, PRIV | MAP_FIXED)
    assert run(env, a + P, P, RW, PRIV | MAP_FIXED_NOREPLACE) == -EEXIST
    assert run(env, a - P, 2 * P, RW, PRIV | MAP_FIXED_NOREPLACE) == -EEXIST
    assert run(env, a + 5 * P + 1, P, RW, PRIV | MAP_FIXED_NOREPLACE) == -EINVAL
    assert run(env, a + 5 * P, P, RW, PRIV | MAP_FIXED_NOREPLACE) == a + 5 * P


# =============================================================================================
# Addresses: hints, mmap_min_addr, top-down placement
# =============================================================================================
@pytest.mark.parametrize("hint,expected", [(0x1000, 0x10000), (0x8000, 0x10000),
                                           (0x20000, 0x20000)],
                         ids=["hint 0x1000 -> 0x10000", "hint 0x8000 -> 0x10000",
                              "hint 0x20000 kept"])
def test_hint_below_mmap_min_addr_is_rounded_up_real_kernel(hint, expected):
    env = Env()
    assert run(env, hint, P, RW, PRIV) == expected


def test_map_fixed_low_addresses_need_cap_sys_rawio_real_kernel():
    unpriv = Env(capable=False)
    assert run(unpriv, 0, P, RW, PRIV | MAP_FIXED) == -EPERM
    assert run(unpriv, 0x1000, P, RW, PRIV | MAP_FIXED) == 0x1000
    assert run(unpriv, 0x8000, P, RW, PRIV | MAP_FIXED) == 0x8000
    root = Env(capable=True)
    assert run(root, 0, P, RW, PRIV | MAP_FIXED) == 0


def test_unaligned_hint_is_aligned_and_a_taken_hint_is_moved():
    env = Env()
    assert run(env, BASE + 1, P, RW, PRIV) == BASE
    second = run(env, BASE, P, RW, PRIV)
    assert second != BASE and second > 0


def test_hint_above_47_bits_is_ignored_real_kernel():
    env = Env()
    assert run(env, 1 << 48, P, RW, PRIV) == MMAP_BASE - P


def test_top_down_placement_and_consecutive_anonymous_mmaps_merge():
    env = Env()
    a = run(env, 0, 2 * P, RW, PRIV)
    b = run(env, 0, 2 * P, RW, PRIV)
    assert a == MMAP_BASE - 2 * P and b == a - 2 * P
    assert env.mm.map_count == 1                       # b merged with a (contiguous pgoff)
    c = run(env, 0, 2 * P, PROT_READ, PRIV)
    assert c == b - 2 * P and env.mm.map_count == 2


def test_top_down_search_fills_a_hole():
    env = Env()
    run(env, MMAP_BASE - 2 * P, 2 * P, RW, PRIV | MAP_FIXED)
    run(env, MMAP_BASE - 8 * P, 2 * P, RW, PRIV | MAP_FIXED)
    assert run(env, 0, 3 * P, PROT_READ, PRIV) == MMAP_BASE - 5 * P
    assert run(env, 0, 2 * P, PROT_READ, MAP_SHARED | MAP_ANONYMOUS) == MMAP_BASE - 10 * P


# =============================================================================================
# VMA flags and accounting
# =============================================================================================
def test_private_writable_mapping_is_accounted_shared_is_not_real_kernel_vmflag_ac():
    env = Env()
    run(env, BASE, P, RW, PRIV | MAP_FIXED)
    run(env, BASE + 4 * P, P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
    run(env, BASE + 8 * P, P, PROT_READ, PRIV | MAP_FIXED)
    priv, shared, ro = env.vmas()
    assert priv.vm_flags & VM_ACCOUNT
    assert not shared.vm_flags & VM_ACCOUNT and shared.vm_flags & VM_SHARED
    assert not ro.vm_flags & VM_ACCOUNT
    assert env.mm.total_vm == 3 and env.mm.data_vm == 1


def test_map_stack_and_map_sync_flags_real_kernel_vmflags_nh_sf():
    env = Env()
    f = env.memfd(1)
    run(env, BASE, P, RW, PRIV | MAP_STACK | MAP_FIXED)
    run(env, BASE + 4 * P, P, RW, MAP_SHARED | MAP_SYNC | MAP_FIXED, f)
    stack, sync = env.vmas()
    assert stack.vm_flags & VM_NOHUGEPAGE
    assert sync.vm_flags & VM_SYNC


def test_file_mapping_sets_pgoff_and_links_into_i_mmap():
    env = Env()
    f = env.memfd(8)
    assert run(env, BASE, 2 * P, RW, MAP_SHARED | MAP_FIXED, f, 3 * P) == BASE
    vma = env.vmas()[0]
    assert vma.vm_file is f and vma.vm_pgoff == 3
    assert f.f_mapping.i_mmap == [vma]


def test_shared_anonymous_mapping_gets_a_shmem_file_and_pgoff_0():
    env = Env()
    run(env, BASE, 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED, None, 5 * P)
    vma = env.vmas()[0]
    assert vma.vm_pgoff == 0 and vma.vm_file is not None and vma.vm_file.shmem
    assert vma.vm_file.f_mapping.i_mmap == [vma]


def test_max_map_count_real_default_65530():
    env = Env(max_map_count=2)
    assert run(env, BASE, P, RW, PRIV | MAP_FIXED) == BASE
    assert run(env, BASE + 2 * P, P, PROT_READ, PRIV | MAP_FIXED) > 0
    assert run(env, BASE + 4 * P, P, RW, PRIV | MAP_FIXED) > 0      # map_count 2 > 2? no
    assert run(env, BASE + 6 * P, P, PROT_READ, PRIV | MAP_FIXED) == -ENOMEM
    assert Env().machine.tunables.max_map_count == 65530


def test_map_fixed_over_an_existing_mapping_frees_its_pages():
    env = Env()
    run(env, BASE, 4 * P, RW, PRIV | MAP_FIXED)
    for i in range(4):
        env.touch(BASE + i * P)
    old = [env.machine.zone.pfn_to_page(env.pte(BASE + i * P).pfn) for i in range(4)]
    assert run(env, BASE + P, 2 * P, PROT_READ, PRIV | MAP_FIXED) == BASE + P
    assert old[1].free and old[2].free and not old[0].free
    assert env.mm.rss_stat[MM_ANONPAGES] == 2
    assert env.mm.map_count == 3 and env.mm.total_vm == 4
    assert env.tlb_entries(BASE + P, BASE + 3 * P) == []


# =============================================================================================
# MAP_LOCKED and population
# =============================================================================================
def test_map_locked_respects_rlimit_memlock_real_kernel():
    """Real kernel, RLIMIT_MEMLOCK 8 MiB: unprivileged 16 MiB -> -EAGAIN, 4 MiB -> ok; root
    16 MiB -> ok. Scaled down here (limit 8 pages) to keep the test fast."""
    unpriv = Env(rlimit_memlock=8 * P)
    assert run(unpriv, 0, 16 * P, RW, PRIV | MAP_LOCKED) == -EAGAIN
    a = run(unpriv, 0, 4 * P, RW, PRIV | MAP_LOCKED)
    assert a > 0 and unpriv.mm.locked_vm == 4
    assert unpriv.vmas()[0].vm_flags & VM_LOCKED
    assert len(unpriv.ptes()) == 4                     # VM_LOCKED populates
    root = Env(rlimit_memlock=8 * P, capable=True)
    assert run(root, 0, 16 * P, RW, PRIV | MAP_LOCKED) > 0
    assert root.mm.locked_vm == 16


def test_map_populate_faults_every_page_writable_for_private_writable():
    env = Env()
    a = run(env, BASE, 4 * P, RW, PRIV | MAP_POPULATE | MAP_FIXED)
    assert a == BASE
    ptes = dict(env.ptes())
    assert sorted(ptes) == [BASE + i * P for i in range(4)]
    assert all(p.write for p in ptes.values())
    assert env.mm.rss_stat[MM_ANONPAGES] == 4
    assert env.mm.mmap_lock.writer is None and env.mm.mmap_lock.readers == []


def test_map_populate_with_map_nonblock_does_not_populate():
    env = Env()
    run(env, BASE, 4 * P, RW, PRIV | MAP_POPULATE | MAP_NONBLOCK | MAP_FIXED)
    assert env.ptes() == []


def test_map_populate_of_shared_memfd_reads_the_page_cache():
    env = Env()
    f = env.memfd(4)
    for i in range(4):
        generic_perform_write(f, i * P, bytes([0x40 + i]))
    run(env, BASE, 4 * P, RW, MAP_SHARED | MAP_POPULATE | MAP_FIXED, f)
    assert len(env.ptes()) == 4
    assert env.mm.rss_stat[MM_SHMEMPAGES] == 4


def test_populate_skips_prot_none():
    env = Env()
    assert run(env, BASE, 2 * P, 0, PRIV | MAP_POPULATE | MAP_FIXED) == BASE
    assert env.ptes() == []


# =============================================================================================
# exit_mmap
# =============================================================================================
def _busy_mm(env):
    """Anonymous, shared-file, shared-anonymous and MAP_FIXED-split mappings in several PMD
    and PUD ranges, touched on both CPUs. Returns (anonymous frames, page-cache frames)."""
    f = env.memfd(4)
    for i in range(4):
        generic_perform_write(f, i * P, bytes([0x40 + i]))
    run(env, BASE, 8 * P, RW, PRIV | MAP_FIXED)
    run(env, BASE + 2 * P, 2 * P, PROT_READ, PRIV | MAP_FIXED)
    run(env, BASE + (1 << 21), 4 * P, RW, MAP_SHARED | MAP_FIXED, f)
    run(env, BASE + (1 << 30), 2 * P, RW, MAP_SHARED | MAP_ANONYMOUS | MAP_FIXED)
    run(env, 0, 3 * P, RW, PRIV)                           # top-down, another PGD slot
    for addr in (BASE, BASE + P, BASE + 5 * P, BASE + (1 << 30), MMAP_BASE - P):
        env.touch(addr, cpu=0)
    env.touch(BASE + 2 * P, write=False, cpu=0)          # read-only: the zero page
    for i in range(4):
        env.touch(BASE + (1 << 21) + i * P, write=False, cpu=1)
    env.touch(BASE + 5 * P, write=False, cpu=1)
    zone = env.machine.zone
    anon = [zone.pfn_to_page(pte.pfn) for addr, pte in env.ptes()
            if not BASE + (1 << 21) <= addr < BASE + (1 << 21) + 4 * P
            and zone.pfn_to_page(pte.pfn).kind != "zero"
            and addr != BASE + (1 << 30)]
    cache = list(f.f_mapping.i_pages.values())
    return anon, cache, f


def _assert_nothing_left(env, anon, cache, f, oom_skip=True):
    mm = env.mm
    assert env.vmas() == []
    assert env.ptes() == []
    assert env.tables() == [(LEVEL_PGD, 0)]
    assert mm.rss_stat == [0, 0, 0, 0]
    assert mm.pgtables_bytes == 0
    assert all(p.free for p in anon)
    assert all(not p.free and p._mapcount == -1 for p in cache)   # file pages outlive
    assert f.f_mapping.i_mmap == []
    assert bool(mm.flags & (1 << MMF_OOM_SKIP)) == oom_skip
    assert mm.mmap_lock.writer is None and mm.mmap_lock.readers == []
    for c in env.machine.cpus:
        assert not any(mm_id == mm.id for (mm_id, _vpn) in c.tlb)


@pytest.mark.parametrize("era,fixes_off", [("6.18", ()), ("5.x", ()),
                                           ("5.x", ("27ae357fa82b",))],
                         ids=["6.18", "5.x fixed", "5.x before 27ae357fa82b"])
def test_exit_mmap_leaves_nothing(era, fixes_off):
    env = Env(era=era, fixes_off=fixes_off)
    anon, cache, f = _busy_mm(env)
    assert len(anon) == 4 and len(cache) == 4
    with Recorder() as rec:
        exit_mmap(env.mm)
    assert [k for k, _ in rec.events][-1] == "exit_mmap_done"
    # 5.x with the fix sets MMF_OOM_SKIP only for an OOM victim (seed 001); v4.14-v4.16 and
    # 6.18 set it unconditionally.
    _assert_nothing_left(env, anon, cache, f, oom_skip=(era, fixes_off) != ("5.x", ()))
    lock = env.mm.mmap_lock
    if era == "6.18":
        assert rec.lock_ops(lock) == ["down_read", "up_read", "down_write", "up_write"]
        # the zap runs under the read lock, free_pgtables under the write lock
        assert rec.index("down_read", lock) < rec.index("ptep_get_and_clear") < \
            rec.index("up_read", lock) < rec.index("down_write", lock) < \
            rec.index("__tlb_remove_table") < rec.index("up_write", lock)
    else:
        assert rec.lock_ops(lock) == []          # no OOM victim: no handshake, no lock


def test_exit_mmap_5x_oom_victim_reaps_first_with_fix():
    env = Env(era="5.x")
    anon, cache, f = _busy_mm(env)
    env.mm.oom_victim = True
    with Recorder() as rec:
        exit_mmap(env.mm)
    _assert_nothing_left(env, anon, cache, f)
    lock = env.mm.mmap_lock
    assert rec.lock_ops(lock) == ["down_write", "up_write"]
    # __oom_reap_task_mm (MMF_UNSTABLE, then a zap) and the handshake come before the
    # fullmm teardown's first table free.
    assert rec.index("down_write", lock) < rec.index("__tlb_remove_table")


def test_exit_mmap_5x_oom_victim_before_fix_handshake_comes_after_the_zap():
    env = Env(era="5.x", fixes_off=("27ae357fa82b",))
    anon, cache, f = _busy_mm(env)
    env.mm.oom_victim = True
    with Recorder() as rec:
        exit_mmap(env.mm)
    _assert_nothing_left(env, anon, cache, f)
    lock = env.mm.mmap_lock
    assert rec.lock_ops(lock) == ["down_write", "up_write"]
    assert rec.index("ptep_get_and_clear") < rec.index("down_write", lock) < \
        rec.index("__tlb_remove_table")


def test_exit_mmap_5x_munlocks_locked_vmas():
    pytest.importorskip("unmapcheck.impl.mlock")
    env = Env(era="5.x", capable=True)
    run(env, BASE, 2 * P, RW, PRIV | MAP_LOCKED | MAP_FIXED)
    assert env.mm.locked_vm == 2
    exit_mmap(env.mm)
    assert env.mm.locked_vm == 0 and env.vmas() == [] and env.ptes() == []


@pytest.mark.parametrize("era", ["6.18", "5.x"])
def test_exit_mmap_of_an_empty_mm(era):
    env = Env(era=era)
    with Recorder() as rec:
        exit_mmap(env.mm)
    assert [k for k, _ in rec.events] == ["exit_mmap_done"]
    assert env.vmas() == [] and env.tables() == [(LEVEL_PGD, 0)]


def test_exit_mmap_bug_on_map_count_mismatch():
    env = Env()
    run(env, BASE, 2 * P, RW, PRIV | MAP_FIXED)
    env.mm.map_count += 1
    with pytest.raises(KernelBug, match="map_count"):
        exit_mmap(env.mm)
    sched.uninstall()
