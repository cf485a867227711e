"""Per-VMA locks (impl/mmap_lock.py): the lock protocol, the fault path under the VMA lock
alone and its fallback, the writers, and the checker catching a writer that does not lock."""

from __future__ import annotations

import random

import pytest
from faultkit import BASE, RW, Env
from schedkit import GreenletRuntime, Recorder, random_policy

from unmapcheck.checker.explore import iterative_context_bounding
from unmapcheck.checker.scenario import parse
from unmapcheck.checker.trace import counterexample_trace, replay
from unmapcheck.impl import mm_types, sched, vma as vma_mod
from unmapcheck.impl.locks import mmap_write_downgrade, mmap_write_lock, mmap_read_unlock
from unmapcheck.impl.mmap_lock import (EAGAIN, VMA_LOCK_OFFSET, lock_vma_under_rcu,
                                       vma_end_read, vma_start_read, vma_start_write)
from unmapcheck.impl.x86_fault import user_access


def _as(name: str, cpu: int = 0):
    sched.set_current(sched.Context(name=name, cpu=cpu))


def test_a_read_fault_takes_only_the_vma_lock():
    env = Env()
    env.vma(BASE, 1, RW)
    with Recorder() as rec:
        user_access(env.task, env.cpu[0], BASE, False)
    assert any(label.startswith("vma_start_read") for label in rec.labels)
    assert "down_read" not in rec.labels and "down_read_trylock" not in rec.labels


def test_the_5x_era_faults_under_mmap_lock():
    env = Env(era="5.x")
    env.vma(BASE, 1, RW)
    with Recorder() as rec:
        user_access(env.task, env.cpu[0], BASE, False)
    assert "down_read" in rec.labels
    assert not any(label.startswith("vma_start_read") for label in rec.labels)


def test_a_write_fault_prepares_the_anon_vma_with_mmap_read_trylock():
    env = Env()
    vma = env.vma(BASE, 1, RW)
    assert vma.anon_vma is None
    with Recorder() as rec:
        user_access(env.task, env.cpu[0], BASE, True, 0x41)
    assert vma.anon_vma is not None
    assert "down_read_trylock" in rec.labels and "down_read" not in rec.labels
    assert vma.vm_refcnt == 1                      # the reader's count is gone


def test_a_write_fault_falls_back_when_the_trylock_fails():
    """mmap_lock held for write by a writer that has not write-locked this VMA: the fault
    gets the VMA lock, cannot prepare the anon_vma (trylock fails: VM_FAULT_RETRY), drops
    the VMA lock and waits for mmap_lock: here forever."""
    env = Env()
    vma = env.vma(BASE, 1, RW)
    env.mm.mmap_lock.writer = "mprotect"
    bodies = [lambda: user_access(env.task, env.cpu[1], BASE, True, 1)]
    with pytest.raises(sched.Deadlock):
        GreenletRuntime(bodies, random_policy(random.Random(0)), prefix="T").run()
    assert vma.vm_refcnt == 1


def test_write_locks_end_at_downgrade_and_exclude_readers():
    env = Env()
    vma = env.vma(BASE, 1, RW)
    _as("writer")
    mmap_write_lock(env.mm)
    assert env.mm.mm_lock_seq % 2 == 1
    vma_start_write(vma)
    assert vma.vm_lock_seq == env.mm.mm_lock_seq
    _as("reader", 1)
    assert vma_start_read(env.mm, vma) is None
    assert lock_vma_under_rcu(env.mm, BASE) is None
    _as("writer")
    mmap_write_downgrade(env.mm)
    assert env.mm.mm_lock_seq % 2 == 0 and vma.vm_lock_seq != env.mm.mm_lock_seq
    _as("reader", 1)
    assert lock_vma_under_rcu(env.mm, BASE) is vma and vma.vm_refcnt == 2
    vma_end_read(vma)
    _as("writer")
    mmap_read_unlock(env.mm)


def test_a_detached_vma_cannot_be_read_locked():
    env = Env()
    vma = env.vma(BASE, 1, RW)
    vma.vm_refcnt = 0
    _as("reader")
    assert vma_start_read(env.mm, vma) is EAGAIN
    vma.vm_refcnt = 1 + VMA_LOCK_OFFSET           # a writer waiting for readers
    assert vma_start_read(env.mm, vma) is None


# --- the checker catches a writer that does not exclude VMA-locked faults -------------------
RACE = """
[scenario]
name = "fault-vs-munmap-of-the-same-vma"
cpus = 2
arch = "x86"

[[process]]
name = "p"
[[process.mapping]]
addr = 0x7f0000000000
pages = 1
prot = "rw"
[[process.mapping]]
addr = 0x7f0000002000
pages = 1
prot = "r"

[[thread]]
name = "T0"
process = "p"
cpu = 0
program = [ { op = "load", addr = 0x7f0000002000 } ]

[[thread]]
name = "T1"
process = "p"
cpu = 1
program = [ { op = "munmap", addr = 0x7f0000002000, len = 0x1000 } ]

[bounds]
preemptions = 2

[expect]
never = true
"""


def test_munmap_of_a_vma_a_fault_is_in_is_safe():
    sc = parse(RACE, "race.toml")
    res = iterative_context_bounding(sc, 2, stop_at_first=False)
    assert res.stats.complete and not res.counterexamples, res.best().violation


def test_munmap_without_the_vma_write_lock_is_caught(monkeypatch):
    """vms_gather_munmap_vmas() that neither write-locks nor waits for the VMA's readers
    (vma_start_write, vma_mark_detached's wait): a fault under the VMA lock maps the zero
    page after the zap, in a range no VMA covers any more (its PTE table stays: the
    neighbour shares it)."""
    monkeypatch.setattr(vma_mod, "vma_start_write", lambda vma: None)

    def detach_without_waiting(vma):
        vma.vm_refcnt = max(vma.vm_refcnt - 1, 0)
        vma.detached = True
    monkeypatch.setattr(vma_mod, "vma_mark_detached", detach_without_waiting)
    monkeypatch.setattr(mm_types, "_vma_start_write", lambda vma: None)
    sc = parse(RACE, "race.toml")
    res = iterative_context_bounding(sc, 2, stop_at_first=True)
    assert res.counterexamples, "the unlocked munmap was not caught"
    best = res.best()
    trace = counterexample_trace(sc, best).to_json()
    assert trace["violation"]["group"] == best.violation.group
    assert replay(trace, "<memory>").reproduced
    labels = [s["label"] for s in trace["steps"]]
    assert any(label.startswith("vma_start_read") for label in labels)
    assert best.violation.group == "PTE_IN_VMA", best.violation.message
    assert f"{0x7f0000002000:#x}" in best.violation.message


def test_madvise_dontneed_within_one_vma_takes_only_its_lock():
    from unmapcheck.impl.constants import (MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED,
                                           MAP_PRIVATE, PROT_READ, PROT_WRITE)
    from unmapcheck.impl.system import System
    s = System()
    p = s.spawn()
    p.mmap(BASE, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.mmap(BASE + 0x2000, 0x1000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.store(BASE, 1)
    _as("t0")
    with Recorder() as one:
        assert p.madvise(BASE, 0x2000, MADV_DONTNEED) == 0
    assert any(label.startswith("vma_start_read") for label in one.labels)
    assert "down_read" not in one.labels
    with Recorder() as two:                       # two VMAs: the mmap_lock walk
        assert p.madvise(BASE, 0x3000, MADV_DONTNEED) == 0
    assert "down_read" in two.labels
    assert all(v.vm_refcnt == 1 for v in p.mm.mm_mt.vmas)


def test_exit_of_a_forked_mm_that_frees_the_shared_anon_vma_is_caught(monkeypatch):
    """never-vma-locked-fault-vs-exit-of-forked-mm has teeth: an unlink_anon_vmas() that,
    at the child's exit_mmap, frees the root anon_vma it shares with the parent (a put
    without the reference count) leaves the parent's pages, which its VMA-locked fault is
    using, tied to freed memory: RMAP.anon_vma, with a trace that replays."""
    from unmapcheck.impl import rmap
    from unmapcheck.proofs import SCENARIO_DIR
    from unmapcheck.checker.scenario import load
    original = rmap.unlink_anon_vmas

    def unlink_freeing_the_root(vma):
        roots = {id(av.root): av.root for av in rmap.anon_vma_chain(vma)}
        original(vma)
        for root in roots.values():
            rmap.anon_vma_free(root)
    monkeypatch.setattr(rmap, "unlink_anon_vmas", unlink_freeing_the_root)
    sc = load(SCENARIO_DIR / "never-vma-locked-fault-vs-exit-of-forked-mm.toml")
    res = iterative_context_bounding(sc, 2, stop_at_first=True)
    assert res.counterexamples, "the freed shared anon_vma was not caught"
    best = res.best()
    assert best.violation.group == "RMAP", best.violation.message
    assert "anon_vma (folio->mapping) has been freed" in best.violation.message
    trace = counterexample_trace(sc, best).to_json()
    assert replay(trace, "<memory>").reproduced
    labels = [s["label"] for s in trace["steps"]]
    assert any(label.startswith("anon_vma_interval_tree_remove") for label in labels)
