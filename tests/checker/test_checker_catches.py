"""Each checker capability catches a bug: the implementation is broken on purpose and the
explorer must report the violation, with a trace that names it.

(The historic bugs, each a fix toggled off, are in test_corpus.py.)
"""

from __future__ import annotations


from unmapcheck.checker.explore import iterative_context_bounding
from unmapcheck.checker.scenario import load, parse
from unmapcheck.checker.trace import counterexample_trace
from unmapcheck.impl import mmu_gather, rmap, vma, zap
from unmapcheck.proofs import SCENARIO_DIR

OVERLAP = SCENARIO_DIR / "never-munmap-vs-dontneed-overlap.toml"

SPLIT = """
[scenario]
name = "split-a-file-mapping"
cpus = 2

[[file]]
name = "f"
size = 12288

[[process]]
name = "p"
[[process.mapping]]
addr = 0x7f0000000000
pages = 3
prot = "rw"
file = "f"
populate = "write"

[[thread]]
name = "T0"
process = "p"
cpu = 0
program = [ { op = "munmap", addr = 0x7f0000001000, len = 0x1000 },
            { op = "load", addr = 0x7f0000002000 } ]

[[thread]]
name = "T1"
process = "p"
cpu = 1
program = [ { op = "load", addr = 0x7f0000000000 } ]

[bounds]
preemptions = 1

[expect]
never = true
"""


def _explore(sc, bound=1):
    res = iterative_context_bounding(sc, bound, stop_at_first=True)
    assert res.counterexamples, "the broken implementation was not caught"
    best = res.best()
    trace = counterexample_trace(sc, best).to_json()
    assert trace["violation"]["group"] == best.violation.group
    return res, trace


def test_the_unbroken_scenarios_pass():
    for sc in (load(OVERLAP), parse(SPLIT, "split.toml")):
        res = iterative_context_bounding(sc, 1, stop_at_first=False)
        assert not res.counterexamples, res.best().violation


def test_a_skipped_tlb_flush_is_caught_as_I1(monkeypatch):
    monkeypatch.setattr(mmu_gather, "tlb_flush", lambda tlb: None)
    res, trace = _explore(load(OVERLAP))
    assert "I1" in res.violated()
    assert "TLB" in trace["violation"]["message"]


def test_a_lost_rss_update_is_caught_as_I2(monkeypatch):
    monkeypatch.setattr(zap, "add_mm_rss_vec", lambda mm, rss: None)
    res, trace = _explore(load(OVERLAP))
    assert "I2" in res.violated()
    assert "MM_ANONPAGES" in res.counterexamples["I2"].violation.message


def test_a_split_that_loses_pgoff_is_caught_as_I3(monkeypatch):
    real = vma.__dict__["__split_vma_fields"]

    def broken(vm_start, vm_end, vm_pgoff, addr, new_below):
        out = list(real(vm_start, vm_end, vm_pgoff, addr, new_below))
        if new_below:
            out[5] = vm_pgoff          # the upper part keeps the old pgoff
        else:
            out[2] = vm_pgoff
        return tuple(out)
    monkeypatch.setitem(vma.__dict__, "__split_vma_fields", broken)
    res, trace = _explore(parse(SPLIT, "split.toml"))
    assert "I3" in res.violated()
    msg = res.counterexamples["I3"].violation.message
    assert "file page" in msg or "__split_vma" in msg


def test_a_missed_rmap_removal_is_caught(monkeypatch):
    monkeypatch.setattr(rmap, "folio_remove_rmap_ptes", lambda *a, **k: None)
    res, _ = _explore(load(OVERLAP))
    # The page is freed while its mapcount says it is mapped (a kernel BUG), or the mapcount
    # no longer matches the PTEs at quiescence.
    assert res.violated() & {"I4", "BUG"}


def test_a_lock_never_released_is_a_lock_discipline_error_or_a_deadlock(monkeypatch):
    monkeypatch.setattr(zap, "pte_unmap_unlock", lambda ptep, ptl: None)
    res, trace = _explore(load(OVERLAP))
    assert res.violated() & {"LOCK", "DEADLOCK"}
    msg = " ".join(c.violation.message for c in res.counterexamples.values())
    assert "held" in msg or "blocked" in msg


def test_a_double_unlock_is_a_lock_discipline_error(monkeypatch):
    from unmapcheck.impl.locks import spin_unlock

    def twice(ptep, ptl):
        spin_unlock(ptl)
        spin_unlock(ptl)
    monkeypatch.setattr(zap, "pte_unmap_unlock", twice)
    res, _ = _explore(load(OVERLAP))
    assert "LOCK" in res.violated()
    assert "spin_unlock" in res.counterexamples["LOCK"].violation.message


def test_sleeping_under_a_spinlock_is_a_lock_discipline_error(monkeypatch):
    from unmapcheck.impl.locks import mmap_read_lock, mmap_read_unlock

    def sleeps(mm):
        mmap_read_lock(mm)          # an rwsem taken under the PTL
        mmap_read_unlock(mm)
    monkeypatch.setattr(zap, "flush_tlb_batched_pending", sleeps)
    res, _ = _explore(load(OVERLAP))
    assert "LOCK" in res.violated()
    assert "sleeping function called" in res.counterexamples["LOCK"].violation.message


SAME_PAGE = SCENARIO_DIR / "never-fault-vs-fault-same-page.toml"


def test_a_lost_race_page_not_put_is_caught_as_a_leaked_reference(monkeypatch):
    """do_cow_fault's uncharge path (finish_fault lost the race: VM_FAULT_NOPAGE) forgets
    folio_put() on the copy it allocated: the page is never freed. Only REFCOUNT.exact
    sees it (refcount 1, no mapping, not in the page cache); the trace replays it."""
    import sys

    from unmapcheck.checker.trace import replay
    from unmapcheck.impl import fault

    real_put = fault.folio_put

    def put(folio):
        caller = sys._getframe(1)
        if caller.f_code.co_name == "do_cow_fault" and caller.f_locals.get("folio") is folio:
            return
        real_put(folio)
    monkeypatch.setattr(fault, "folio_put", put)
    res, trace = _explore(load(SAME_PAGE), bound=1)
    assert "REFCOUNT" in res.violated()
    found = res.counterexamples["REFCOUNT"].violation
    assert found.name == "REFCOUNT.exact" and "leaked" in found.message
    again = replay(trace, "leak.json")
    assert again.reproduced and again.violation["invariant"] == "REFCOUNT.exact", again.message


def test_the_same_page_race_is_clean_and_refcounts_are_exact():
    res = iterative_context_bounding(load(SAME_PAGE), 1, stop_at_first=False)
    assert not res.counterexamples, res.best().violation
    assert res.stats.executions > 1


COW = """
[scenario]
name = "fork-then-cow-store"
cpus = 2

[[process]]
name = "p"
[[process.mapping]]
addr = 0x7f0000000000
pages = 1
prot = "rw"
populate = "write"
populate_cpu = 1

[[thread]]
name = "T0"
process = "p"
cpu = 0
program = [ { op = "fork" }, { op = "store", addr = 0x7f0000000008, value = 0x41 } ]

[[thread]]
name = "T1"
process = "p"
cpu = 1
program = [ { op = "store", addr = 0x7f0000000000, value = 0x42 } ]

[bounds]
preemptions = 2

[expect]
never = true
"""


def test_a_cow_copy_is_clean_when_fork_flushes():
    res = iterative_context_bounding(parse(COW, "cow.toml"), 2, stop_at_first=False)
    assert not res.counterexamples, res.best().violation


def test_a_store_a_cow_copy_misses_is_caught_as_a_lost_write(monkeypatch):
    # fork no longer flushes the parent's TLBs: CPU1 keeps its writable translation of the
    # page fork write-protected, and T0's COW copy can miss CPU1's store.
    from unmapcheck.impl import fork
    monkeypatch.setattr(fork, "flush_tlb_mm", lambda machine, mm: None)
    res = iterative_context_bounding(parse(COW, "cow.toml"), 2, stop_at_first=False)
    assert "LOST_WRITE" in res.violated()
    v = res.counterexamples["LOST_WRITE"].violation
    assert v.name == "LOST_WRITE.cow"
    assert "stored 0x42" in v.message and "after wp_page_copy copied" in v.message
    trace = counterexample_trace(parse(COW, "cow.toml"),
                                 res.counterexamples["LOST_WRITE"]).to_json()
    assert trace["violation"]["invariant"] == "LOST_WRITE.cow"
