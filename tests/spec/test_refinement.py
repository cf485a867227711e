"""Refinement: every step of the implementation is a transition of the abstract specification.

Random system-call sequences run on the impl System API (mmap, munmap, mprotect,
madvise(MADV_DONTNEED), loads and stores on either CPU, exit); after each call,
spec/abstract.py's check_refinement() checks that the post-state the implementation reached
is one the abstract operation allows from the abstraction of the pre-state.
"""

from __future__ import annotations

import random

import pytest

from unmapcheck.impl import (MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED,
                             PAGE_SIZE, PMD_SIZE, PROT_READ, PROT_WRITE)
from unmapcheck.spec.abstract import abstract, check_refinement

P = PAGE_SIZE
BASE = 0x10000000          # PMD aligned: 512 pages per PTE table from here
NPAGES = 12                # the window the sequences play in (from a PMD boundary by default)


class Harness:
    """One or two processes on a 2-CPU machine, sharing a memfd; ``pick`` chooses the process
    the next call is made by (two processes share page-cache pages, so mapcounts and the
    frames' fate depend on both mms)."""

    def __init__(self, cpus: int = 2, procs: int = 1, base: int = BASE):
        from unmapcheck.impl import System
        self.base = base
        self.sys = System(cpus=cpus)
        self.procs = [self.sys.spawn() for _ in range(procs)]
        self.p = self.procs[0]
        self.mm = self.p.mm.id
        self.fd = self.sys.memfd_create("f", 16 * P)
        self.checked = 0

    def pick(self, rng: random.Random) -> None:
        self.p = rng.choice(self.procs)
        self.mm = self.p.mm.id

    def check(self, op: str, args: dict, fn):
        pre = abstract(self.sys.machine)
        ret = fn()
        res = check_refinement(pre, op, dict(mm=self.mm, **args), self.sys.machine)
        self.checked += 1
        assert res.ok, f"{op}{args} -> {ret}: refinement fails on {res.mismatches}\n{res.detail}"
        return ret

    # --- the calls --------------------------------------------------------------------------
    def mmap(self, rng: random.Random):
        first = rng.randrange(NPAGES)
        n = rng.randint(1, min(4, NPAGES - first))
        addr, length = self.base + first * P, n * P
        kind = rng.choice(["anon", "anon", "shared_file", "private_file"])
        prot = rng.choice([PROT_READ, PROT_READ | PROT_WRITE, PROT_READ | PROT_WRITE])
        if kind == "anon":
            flags, fd, off = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0
        else:
            flags = (MAP_SHARED if kind == "shared_file" else MAP_PRIVATE) | MAP_FIXED
            fd, off = self.fd, rng.randrange(4) * P
        args = dict(addr=addr, length=length, prot=prot, flags=flags, offset=off)
        ret = self.check("mmap", args, lambda: self.p.mmap(addr, length, prot, flags, fd, off))
        assert ret == addr

    def munmap(self, rng: random.Random):
        first = rng.randrange(NPAGES)
        n = rng.randint(1, NPAGES - first)
        addr, length = self.base + first * P, n * P
        assert self.check("munmap", dict(addr=addr, length=length),
                          lambda: self.p.munmap(addr, length)) == 0

    def mprotect(self, rng: random.Random):
        # A range inside one mapped VMA (mprotect over a hole fails part way, which the
        # specification does not describe); PROT_NONE over populated pages is not modelled.
        vmas = self.p.mm.mm_mt.vmas
        if not vmas:
            return
        v = rng.choice(vmas)
        npages = (v.vm_end - v.vm_start) // P
        first = rng.randrange(npages)
        n = rng.randint(1, npages - first)
        addr, length = v.vm_start + first * P, n * P
        prot = rng.choice([PROT_READ, PROT_READ | PROT_WRITE])
        assert self.check("mprotect", dict(addr=addr, length=length, prot=prot),
                          lambda: self.p.mprotect(addr, length, prot)) == 0

    def dontneed(self, rng: random.Random):
        first = rng.randrange(NPAGES)
        n = rng.randint(1, NPAGES - first)
        addr, length = self.base + first * P, n * P
        covered = all(any(v.vm_start <= self.base + (first + i) * P < v.vm_end
                          for v in self.p.mm.mm_mt.vmas) for i in range(n))
        ret = self.check("madvise_dontneed", dict(addr=addr, length=length),
                         lambda: self.p.madvise(addr, length, MADV_DONTNEED))
        assert ret == (0 if covered else -12)

    def access(self, rng: random.Random):
        from unmapcheck.impl import SigSegv, SigBus
        addr = self.base + rng.randrange(NPAGES) * P + rng.randrange(P)
        cpu = rng.randrange(len(self.sys.cpus))
        write = rng.random() < 0.5
        pre = abstract(self.sys.machine)
        try:
            if write:
                self.p.store(addr, rng.randrange(256), cpu=cpu)
            else:
                self.p.load(addr, cpu=cpu)
            op = "access"
        except (SigSegv, SigBus):
            op = "segv"
        res = check_refinement(pre, op, dict(mm=self.mm, addr=addr, cpu=cpu, write=write),
                               self.sys.machine)
        self.checked += 1
        assert res.ok, f"{op} {addr:#x} cpu{cpu} write={write}: {res.mismatches}\n{res.detail}"

    def exit(self):
        assert self.check("exit_mmap", {}, lambda: self.p.exit()) == 0


def run_sequence(seed: int, steps: int, procs: int = 1, base: int = BASE) -> int:
    rng = random.Random(seed)
    h = Harness(procs=procs, base=base)
    for _ in range(steps):
        h.pick(rng)
        what = rng.choices(["mmap", "munmap", "mprotect", "dontneed", "access"],
                           weights=[3, 1, 1, 1, 6])[0]
        getattr(h, what)(rng)
    for p in h.procs:
        h.p, h.mm = p, p.mm.id
        h.exit()
    return h.checked


@pytest.mark.parametrize("seed", range(12))
def test_random_sequences_refine_the_specification(seed):
    assert run_sequence(seed, 14) >= 10


@pytest.mark.parametrize("seed", range(100, 106))
def test_two_processes_sharing_a_file_refine_the_specification(seed):
    assert run_sequence(seed, 18, procs=2) >= 12


@pytest.mark.parametrize("seed", range(200, 204))
def test_sequences_across_two_page_tables_refine_the_specification(seed):
    """The window straddles a PMD boundary: two PTE tables, freed and refilled."""
    assert run_sequence(seed, 18, procs=2, base=BASE + PMD_SIZE - 6 * P) >= 12


def test_a_stale_tlb_entry_is_not_a_refinement(monkeypatch):
    """Break the flush: munmap then leaves a translation behind, which no abstract munmap
    allows."""
    import unmapcheck.impl.cpu as cpu
    h = Harness()
    addr = BASE
    h.p.mmap(addr, 2 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    h.p.store(addr, 1, cpu=1)
    monkeypatch.setattr(cpu, "_drop_leaf", lambda *a, **k: None)
    monkeypatch.setattr(cpu, "_drop_all", lambda *a, **k: None)
    pre = abstract(h.sys.machine)
    h.p.munmap(addr, 2 * P)
    res = check_refinement(pre, "munmap", dict(mm=h.mm, addr=addr, length=2 * P), h.sys.machine)
    assert not res.ok
    assert any(m.startswith("tlb:1:") for m in res.mismatches), res.mismatches


def test_an_rss_leak_is_not_a_refinement(monkeypatch):
    """Break the accounting: a zap that forgets its rss decrements."""
    import unmapcheck.impl.zap as zap
    h = Harness()
    addr = BASE
    h.p.mmap(addr, 2 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    h.p.store(addr, 1, cpu=0)
    monkeypatch.setattr(zap, "add_mm_rss_vec", lambda mm, rss: None)
    pre = abstract(h.sys.machine)
    h.p.madvise(addr, 2 * P, MADV_DONTNEED)
    res = check_refinement(pre, "madvise_dontneed", dict(mm=h.mm, addr=addr, length=2 * P),
                           h.sys.machine)
    assert not res.ok and "rss:0" in res.mismatches, res.mismatches


def test_split_vma_refines_the_specification():
    """__split_vma called directly (the syscalls reach it through munmap and mprotect)."""
    from unmapcheck.impl.locks import mmap_write_lock, mmap_write_unlock
    from unmapcheck.impl.mm_types import VmaIterator
    from unmapcheck.impl.vma import __split_vma as split
    h = Harness()
    h.p.mmap(BASE, 6 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    h.p.store(BASE + P, 1, cpu=0)
    for new_below, at in ((1, 2), (0, 4)):
        mm = h.p.mm
        vma = [v for v in mm.mm_mt.vmas if v.vm_start <= BASE + at * P < v.vm_end][0]
        slot = mm.mm_mt.vmas.index(vma)
        pre = abstract(h.sys.machine)
        mmap_write_lock(mm)
        split(VmaIterator(mm.mm_mt, vma.vm_start), vma, BASE + at * P, new_below)
        mmap_write_unlock(mm)
        res = check_refinement(pre, "split_vma", dict(mm=h.mm, slot=slot, addr=BASE + at * P,
                                                      new_below=new_below), h.sys.machine)
        assert res.ok, res.detail


def test_tlb_flush_refines_the_specification():
    from unmapcheck.impl.cpu import flush_tlb_range
    h = Harness()
    h.p.mmap(BASE, 3 * P, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    for i in range(3):
        h.p.store(BASE + i * P, 1, cpu=i % 2)
    pre = abstract(h.sys.machine)
    flush_tlb_range(h.sys.machine, h.p.mm, BASE, BASE + 2 * P)
    res = check_refinement(pre, "flush", dict(mm=h.mm, addr=BASE, length=2 * P), h.sys.machine)
    assert res.ok, res.detail
