"""Tests of impl/vma.py: __split_vma and its field arithmetic, the merge cases of
vma_merge_new_range (mmap) and vma_merge_existing_range (vma_modify_flags, as mprotect,
mlock and madvise use it), map_count, the file and anon rmap links, and fix toggle
7e7757876f25 ("mm/mremap: fix vm_pgoff in vma_merge() case 3").

Layouts marked "real kernel" were checked against /proc/self/maps after the same mmap(2) /
mprotect(2) calls on this machine's Linux 6.18 (memfd file offsets in pages).
"""

from __future__ import annotations

import pytest

from unmapcheck.impl.constants import (MAP_FIXED, MAP_SHARED, MAP_STACK, PROT_READ,
                                       PROT_WRITE, VM_ACCOUNT, VM_EXEC,
                                       VM_NOHUGEPAGE, VM_NORESERVE, VM_READ, VM_SHARED,
                                       VM_WRITE)
from unmapcheck.impl.filemap import generic_perform_write
from unmapcheck.impl.locks import mmap_write_lock, mmap_write_unlock
from unmapcheck.impl.mm_types import VmaIterator, find_vma_prev, linear_page_index, vm_flags_reset, vma_start_write
from unmapcheck.impl.rmap import anon_vma_chain
from unmapcheck.impl.sched import KernelBug
from unmapcheck.impl import vma as V

from vmakit import ANON, BASE, RW, SHANON, Env, P

FILE_SHARED = MAP_SHARED | MAP_FIXED
split_vma_fields = getattr(V, "__split_vma_fields")
__split = getattr(V, "__split_vma")


def pgoffs(env, addrs):
    """pgoff(a) = vm_pgoff + (a - vm_start) / PAGE_SIZE for each mapped address (I3)."""
    out = {}
    for a in addrs:
        vma = next((v for v in env.vmas() if v.vm_start <= a < v.vm_end), None)
        out[a] = None if vma is None else linear_page_index(vma, a)
    return out


def modify_flags(env, start, end, new_prot):
    """What mprotect_fixup does around vma_modify_flags(): find vma and prev, ask for the
    split/merge, then set the flags on the VMA that now covers [start, end)."""
    mm = env.mm
    mmap_write_lock(mm)
    try:
        vma, prev = find_vma_prev(mm, start)
        if vma.vm_start < start:
            prev = vma                        # mprotect: "if (start > vma->vm_start) prev = vma"
        oldflags = vma.vm_flags
        newflags = (oldflags & ~(VM_READ | VM_WRITE | VM_EXEC)) | \
            (VM_READ if new_prot & PROT_READ else 0) | (VM_WRITE if new_prot & PROT_WRITE else 0)
        # mprotect_fixup()'s accounting: a private mapping turning writable is charged
        # (VM_ACCOUNT); one turning read-only before any fault is uncharged.
        if newflags & VM_WRITE:
            if not oldflags & (VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE):
                newflags |= VM_ACCOUNT
        elif oldflags & VM_ACCOUNT and vma.vm_file is None and vma.anon_vma is None:
            newflags &= ~VM_ACCOUNT
        vmi = VmaIterator(mm.mm_mt, start)
        ret = V.vma_modify_flags(vmi, prev, vma, start, end, newflags)
        assert not V.IS_ERR(ret), ret
        vma_start_write(ret)                     # as mprotect_fixup() does
        vm_flags_reset(ret, newflags)
        return ret
    finally:
        mmap_write_unlock(mm)


def filled_memfd(env, npages):
    f = env.memfd(npages)
    for i in range(npages):
        assert generic_perform_write(f, i * P, bytes([0x40 + i])) == 1
    return f


# =============================================================================================
# __split_vma_fields: the arithmetic, on ints and on z3 bit-vectors
# =============================================================================================
def test_split_fields_new_below_and_above():
    s, e, pg = BASE, BASE + 8 * P, 100
    assert split_vma_fields(s, e, pg, BASE + 3 * P, 1) == (s, BASE + 3 * P, 100,
                                                          BASE + 3 * P, e, 103)
    assert split_vma_fields(s, e, pg, BASE + 3 * P, 0) == (BASE + 3 * P, e, 103,
                                                          s, BASE + 3 * P, 100)


def test_split_fields_wrap_like_unsigned_long():
    ulong_max = (1 << 64) - 1
    # pgoff arithmetic wraps modulo 2**64 as in C.
    _, _, new_pgoff, _, _, _ = split_vma_fields(0, 4 * P, ulong_max, 2 * P, 0)
    assert new_pgoff == 1


def test_split_fields_symbolic_coverage_and_pgoff():
    """On 64-bit symbolic values: for any page-aligned split inside the VMA, the halves are
    non-empty, cover the old range exactly, and keep pgoff(a) for every address."""
    z3 = pytest.importorskip("z3")
    s, e, pg, addr, a = z3.BitVecs("s e pg addr a", 64)
    below = z3.Bool("below")
    ns, ne, npg, vs, ve, vpg = split_vma_fields(s, e, pg, addr, below)
    pre = z3.And(z3.ULT(s, addr), z3.ULT(addr, e), (s & (P - 1)) == 0, (addr & (P - 1)) == 0,
                 (e & (P - 1)) == 0)
    lo_s, lo_e, lo_pg = z3.If(below, ns, vs), z3.If(below, ne, ve), z3.If(below, npg, vpg)
    hi_s, hi_e, hi_pg = z3.If(below, vs, ns), z3.If(below, ve, ne), z3.If(below, vpg, npg)
    cover = z3.And(lo_s == s, lo_e == addr, hi_s == addr, hi_e == e,
                   z3.ULT(lo_s, lo_e), z3.ULT(hi_s, hi_e))

    def pgoff(start, off):
        return off + z3.LShR(a - start, 12)
    keep = z3.And(
        z3.Implies(z3.And(z3.ULE(lo_s, a), z3.ULT(a, lo_e)), pgoff(lo_s, lo_pg) == pgoff(s, pg)),
        z3.Implies(z3.And(z3.ULE(hi_s, a), z3.ULT(a, hi_e)), pgoff(hi_s, hi_pg) == pgoff(s, pg)))
    solver = z3.Solver()
    solver.add(pre)
    assert solver.check() == z3.sat
    solver.add(z3.Not(z3.And(cover, keep)))
    assert solver.check() == z3.unsat


# =============================================================================================
# __split_vma / split_vma
# =============================================================================================
@pytest.mark.parametrize("new_below", [1, 0])
def test_split_anon_vma_links_both_halves(new_below):
    env = Env()
    env.mmap(BASE, 8 * P)
    env.touch(BASE)
    vma = env.vmas()[0]
    mmap_write_lock(env.mm)
    vmi = VmaIterator(env.mm.mm_mt, BASE)
    assert V.split_vma(vmi, vma, BASE + 3 * P, new_below) == 0
    mmap_write_unlock(env.mm)
    low, high = env.vmas()
    assert (low.vm_start, low.vm_end, high.vm_start, high.vm_end) == \
        (BASE, BASE + 3 * P, BASE + 3 * P, BASE + 8 * P)
    assert high.vm_pgoff == low.vm_pgoff + 3
    assert env.mm.map_count == 2
    assert (vma is high) == bool(new_below)
    new = low if new_below else high
    assert new.detached is False and new.anon_vma is vma.anon_vma
    assert set(anon_vma_chain(new)) == set(anon_vma_chain(vma))
    assert new in vma.anon_vma.vmas and vma in vma.anon_vma.vmas


def test_split_file_vma_inserts_new_half_in_i_mmap_sorted_by_pgoff():
    env = Env()
    f = env.memfd(8)
    env.mmap(BASE, 8 * P, flags=FILE_SHARED, file=f, pgoff=0)
    vma = env.vmas()[0]
    mmap_write_lock(env.mm)
    assert __split(VmaIterator(env.mm.mm_mt, BASE), vma, BASE + 5 * P, 1) == 0
    mmap_write_unlock(env.mm)
    low, high = env.vmas()
    assert (low.vm_pgoff, high.vm_pgoff) == (0, 5)
    assert f.f_mapping.i_mmap == [low, high]


def test_split_vma_refuses_at_max_map_count_but___split_vma_does_not():
    env = Env(max_map_count=1)
    env.mmap(BASE, 8 * P)
    vma = env.vmas()[0]
    mmap_write_lock(env.mm)
    vmi = VmaIterator(env.mm.mm_mt, BASE)
    assert V.split_vma(vmi, vma, BASE + P, 0) == -12                 # -ENOMEM
    assert __split(vmi, vma, BASE + P, 0) == 0
    mmap_write_unlock(env.mm)
    assert env.mm.map_count == 2


def test_split_at_the_edge_is_a_kernel_warning():
    env = Env()
    env.mmap(BASE, 2 * P)
    vma = env.vmas()[0]
    mmap_write_lock(env.mm)
    with pytest.raises(KernelBug):
        __split(VmaIterator(env.mm.mm_mt, BASE), vma, BASE, 0)
    mmap_write_unlock(env.mm)


# =============================================================================================
# vma_merge_new_range (through mmap)
# =============================================================================================
def test_adjacent_anonymous_mmaps_merge_real_kernel_4_8():
    env = Env()
    env.mmap(BASE + 4 * P, 2 * P)
    env.mmap(BASE + 6 * P, 2 * P)
    assert env.layout() == [(4, 8, (BASE >> 12) + 4)]
    assert env.mm.map_count == 1 and env.mm.total_vm == 4


def test_mmap_between_two_vmas_merges_all_three():
    env = Env()
    env.mmap(BASE, 2 * P)
    env.mmap(BASE + 4 * P, 2 * P)
    assert env.mm.map_count == 2
    env.mmap(BASE + 2 * P, 2 * P)
    assert env.layout() == [(0, 6, BASE >> 12)]
    assert env.mm.map_count == 1 and env.mm.total_vm == 6


def test_file_mmaps_merge_only_at_contiguous_offsets_real_kernel():
    """Real kernel: 2 pages at offset 2, 2 at offset 4, 2 at offset 0 (at +10), then 2 at
    offset 6 (at +8) -> '4-10 off=2' and '10-12 off=0'."""
    env = Env()
    f = env.memfd(16)
    env.mmap(BASE + 4 * P, 2 * P, prot=PROT_READ, flags=FILE_SHARED, file=f, pgoff=2)
    env.mmap(BASE + 6 * P, 2 * P, prot=PROT_READ, flags=FILE_SHARED, file=f, pgoff=4)
    env.mmap(BASE + 10 * P, 2 * P, prot=PROT_READ, flags=FILE_SHARED, file=f, pgoff=0)
    env.mmap(BASE + 8 * P, 2 * P, prot=PROT_READ, flags=FILE_SHARED, file=f, pgoff=6)
    assert env.layout() == [(4, 10, 2), (10, 12, 0)]
    assert f.f_mapping.i_mmap == sorted(env.vmas(), key=lambda v: v.vm_pgoff)


def test_shared_anonymous_mmaps_do_not_merge_real_kernel():
    env = Env()
    env.mmap(BASE + 4 * P, 2 * P, flags=SHANON)
    env.mmap(BASE + 6 * P, 2 * P, flags=SHANON)
    assert env.layout() == [(4, 6, 0), (6, 8, 0)]
    a, b = env.vmas()
    assert a.vm_file is not b.vm_file


def test_map_stack_sets_nohugepage_and_does_not_merge_real_kernel():
    env = Env()
    env.mmap(BASE + 4 * P, 2 * P, flags=ANON | MAP_STACK)
    env.mmap(BASE + 6 * P, 2 * P)
    a, b = env.vmas()
    assert a.vm_flags & VM_NOHUGEPAGE and not b.vm_flags & VM_NOHUGEPAGE
    assert env.mm.map_count == 2


def test_map_fixed_over_the_middle_with_same_flags_merges_back_real_kernel_4_12():
    env = Env()
    env.mmap(BASE + 4 * P, 8 * P)
    env.touch(BASE + 6 * P)
    assert env.mmap(BASE + 6 * P, 2 * P) == BASE + 6 * P
    assert env.layout() == [(4, 12, (BASE >> 12) + 4)]
    assert env.mm.map_count == 1 and env.mm.total_vm == 8
    assert env.pte(BASE + 6 * P).kind == 0            # the old page was unmapped


def test_map_fixed_over_the_middle_with_other_prot_splits_three_ways_real_kernel():
    env = Env()
    env.mmap(BASE + 4 * P, 8 * P)
    env.mmap(BASE + 6 * P, 2 * P, prot=PROT_READ)
    pg = BASE >> 12
    assert env.layout() == [(4, 6, pg + 4), (6, 8, pg + 6), (8, 12, pg + 8)]
    assert env.mm.map_count == 3 and env.mm.total_vm == 8


# =============================================================================================
# vma_merge_existing_range / vma_modify_flags (the mprotect side)
# =============================================================================================
def test_modify_middle_splits_into_three():
    env = Env()
    env.mmap(BASE, 8 * P)
    ret = modify_flags(env, BASE + 2 * P, BASE + 4 * P, PROT_READ)
    assert (ret.vm_start, ret.vm_end) == (BASE + 2 * P, BASE + 4 * P)
    assert [(s, e) for s, e, _ in env.layout()] == [(0, 2), (2, 4), (4, 8)]
    assert env.mm.map_count == 3


def test_modify_whole_vma_without_neighbours_returns_it_unsplit():
    env = Env()
    env.mmap(BASE, 4 * P)
    vma = env.vmas()[0]
    assert modify_flags(env, BASE, BASE + 4 * P, PROT_READ) is vma
    assert env.mm.map_count == 1


def test_modify_head_merges_left_into_prev():
    env = Env()
    env.mmap(BASE, 4 * P, prot=PROT_READ)
    env.mmap(BASE + 4 * P, 4 * P)
    prev = env.vmas()[0]
    ret = modify_flags(env, BASE + 4 * P, BASE + 6 * P, PROT_READ)
    assert ret is prev and (prev.vm_start, prev.vm_end) == (BASE, BASE + 6 * P)
    assert [(s, e) for s, e, _ in env.layout()] == [(0, 6), (6, 8)]
    assert env.vmas()[1].vm_pgoff == (BASE >> 12) + 6
    assert env.mm.map_count == 2


def test_modify_middle_vma_merges_both_sides_into_one():
    env = Env()
    env.mmap(BASE, 2 * P)
    env.mmap(BASE + 2 * P, 2 * P, prot=PROT_READ)
    env.mmap(BASE + 4 * P, 2 * P)
    assert env.mm.map_count == 3
    modify_flags(env, BASE + 2 * P, BASE + 4 * P, RW)
    assert env.layout() == [(0, 6, BASE >> 12)]
    assert env.mm.map_count == 1


def test_incompatible_anon_vmas_allow_only_the_left_merge():
    env = Env()
    env.mmap(BASE, 4 * P)
    env.mmap(BASE + 4 * P, 4 * P, prot=PROT_READ)
    env.mmap(BASE + 8 * P, 4 * P)
    env.touch(BASE)
    env.touch(BASE + 8 * P)
    a, _, c = env.vmas()
    assert a.anon_vma is not None and c.anon_vma is not None and a.anon_vma is not c.anon_vma
    modify_flags(env, BASE + 4 * P, BASE + 8 * P, RW)
    assert [(s, e) for s, e, _ in env.layout()] == [(0, 8), (8, 12)]
    assert env.mm.map_count == 2


def test_mprotect_tail_of_file_vma_merges_into_next_real_kernel_4_6_off0_6_12_off2():
    env = Env()
    f = env.memfd(16)
    env.mmap(BASE + 4 * P, 4 * P, prot=PROT_READ, flags=FILE_SHARED, file=f, pgoff=0)
    env.mmap(BASE + 8 * P, 4 * P, prot=RW, flags=FILE_SHARED, file=f, pgoff=4)
    modify_flags(env, BASE + 6 * P, BASE + 8 * P, RW)
    assert env.layout() == [(4, 6, 0), (6, 12, 2)]
    assert f.f_mapping.i_mmap == env.vmas()


def test_mprotect_whole_file_vma_merges_into_next_real_kernel_4_12_off0():
    env = Env()
    f = env.memfd(16)
    env.mmap(BASE + 4 * P, 4 * P, prot=PROT_READ, flags=FILE_SHARED, file=f, pgoff=0)
    env.mmap(BASE + 8 * P, 4 * P, prot=RW, flags=FILE_SHARED, file=f, pgoff=4)
    modify_flags(env, BASE + 4 * P, BASE + 8 * P, RW)
    assert env.layout() == [(4, 12, 0)]
    assert env.mm.map_count == 1 and f.f_mapping.i_mmap == env.vmas()


# =============================================================================================
# Fix toggle 7e7757876f25 "mm/mremap: fix vm_pgoff in vma_merge() case 3"
# =============================================================================================
def _case3(fixes_off):
    """mremap's copy_vma() of a 2-page file range (offset 2) to just below a mapping of the
    same file at offset 4: the copy merges into next, which expands downwards."""
    env = Env(fixes_off=fixes_off, fault_around_pages=1)
    f = filled_memfd(env, 16)
    nxt_addr = BASE + 8 * P
    env.mmap(nxt_addr, 4 * P, prot=PROT_READ, flags=FILE_SHARED, file=f, pgoff=4)
    env.mmap(BASE + 20 * P, 2 * P, prot=PROT_READ, flags=FILE_SHARED, file=f, pgoff=2)
    # A page of next that stays mapped, faulted before the merge: file page 4.
    assert env.touch(nxt_addr, write=False) == 0x44
    before = pgoffs(env, [nxt_addr + i * P for i in range(4)])
    src = next(v for v in env.vmas() if v.vm_start == BASE + 20 * P)
    mmap_write_lock(env.mm)
    new_vma, _ = V.copy_vma([src], BASE + 6 * P, 2 * P, 2)
    mmap_write_unlock(env.mm)
    after = pgoffs(env, [nxt_addr + i * P for i in range(4)])
    return env, new_vma, before, after


def test_case3_merge_keeps_pgoff_with_fix_7e7757876f25():
    env, new_vma, before, after = _case3(())
    assert (new_vma.vm_start, new_vma.vm_end, new_vma.vm_pgoff) == \
        (BASE + 6 * P, BASE + 12 * P, 2)
    assert after == before                              # I3 holds
    # A page faulted after the merge reads the right file page.
    assert env.touch(BASE + 9 * P, write=False) == 0x45
    assert env.touch(BASE + 6 * P, write=False) == 0x42


def test_case3_merge_shifts_pgoff_without_fix_7e7757876f25():
    env, new_vma, before, after = _case3(("7e7757876f25",))
    assert (new_vma.vm_start, new_vma.vm_end) == (BASE + 6 * P, BASE + 12 * P)
    assert new_vma.vm_pgoff == 4                        # v6.3: mid->vm_pgoff, mid == next
    # I3 broken: every address that stayed mapped now maps a file page two further on.
    assert all(after[a] == before[a] + 2 for a in before)
    # The page faulted before the merge stays mapped (its PTE is untouched) but a new fault
    # reads the wrong offset of the file (the rpm segfaults of 6.3).
    assert env.touch(BASE + 9 * P, write=False) == 0x47
    assert env.touch(BASE + 6 * P, write=False) == 0x44


@pytest.mark.parametrize("fixes_off", [(), ("7e7757876f25",)], ids=["fix on", "fix off"])
def test_mprotect_merges_into_next_are_not_affected_by_7e7757876f25(fixes_off):
    """The tail mprotect (6.3's case 4, 6.18's __adjust_next_start) computes next's pgoff in
    vmg_adjust_set_range(), which the fix did not touch; the whole-VMA one (case 8) gets the
    same pgoff either way, as the fix's message says. pgoff(a) holds in both."""
    env = Env(fixes_off=fixes_off)
    f = filled_memfd(env, 16)
    env.mmap(BASE + 4 * P, 4 * P, prot=PROT_READ, flags=FILE_SHARED, file=f, pgoff=0)
    env.mmap(BASE + 8 * P, 4 * P, prot=RW, flags=FILE_SHARED, file=f, pgoff=4)
    addrs = [BASE + i * P for i in range(4, 12)]
    before = pgoffs(env, addrs)
    modify_flags(env, BASE + 6 * P, BASE + 8 * P, RW)          # case 4
    assert pgoffs(env, addrs) == before
    modify_flags(env, BASE + 4 * P, BASE + 6 * P, RW)          # case 8 (whole middle)
    assert pgoffs(env, addrs) == before
    assert env.layout() == [(4, 12, 0)]
    assert env.touch(BASE + 9 * P, write=False) == 0x45


# =============================================================================================
# copy_vma without a merge, vma_link, vm_area_dup
# =============================================================================================
def test_copy_vma_without_neighbours_links_a_new_vma():
    env = Env()
    f = env.memfd(8)
    env.mmap(BASE, 2 * P, prot=PROT_READ, flags=FILE_SHARED, file=f, pgoff=3)
    src = env.vmas()[0]
    mmap_write_lock(env.mm)
    new, need_rmap_locks = V.copy_vma([src], BASE + 10 * P, 2 * P, 3)
    mmap_write_unlock(env.mm)
    assert new is not src and not need_rmap_locks
    assert (new.vm_start, new.vm_pgoff, new.vm_file) == (BASE + 10 * P, 3, f)
    assert env.mm.map_count == 2 and new in f.f_mapping.i_mmap


def test_vm_area_dup_copies_fields_and_starts_detached():
    env = Env()
    env.mmap(BASE, 2 * P)
    env.touch(BASE)
    vma = env.vmas()[0]
    dup = V.vm_area_dup(vma)
    assert (dup.vm_start, dup.vm_end, dup.vm_flags, dup.vm_pgoff, dup.anon_vma) == \
        (vma.vm_start, vma.vm_end, vma.vm_flags, vma.vm_pgoff, vma.anon_vma)
    assert dup.detached and dup.id != vma.id and anon_vma_chain(dup) == []
