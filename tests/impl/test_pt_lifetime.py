"""Page-table lifetime: RCU table freeing against lockless walkers (GUP-fast, pte_offset_map's
RCU window), the table batch's allocation failure as an explorer choice, and the vendor's
INVLPG semantics.

Each checker capability is shown to catch a bug: the implementation is broken on purpose
(a table freed without waiting for a grace period, an IPI that does not wait, a read-side
section left open) and the explorer must report it with a trace.
"""

from __future__ import annotations

import pytest

from unmapcheck.checker.explore import iterative_context_bounding
from unmapcheck.checker.scenario import parse
from unmapcheck.checker.trace import counterexample_trace, replay
from unmapcheck.impl import cpu as cpu_mod
from unmapcheck.impl import mmu_gather, pgtable
from unmapcheck.impl.constants import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PMD_SIZE, PAGE_SIZE
from unmapcheck.impl.machine import Machine
from unmapcheck.impl.system import System
from unmapcheck.proofs import SCENARIO_DIR

GUP = SCENARIO_DIR / "never-gup-fast-vs-munmap.toml"
BASE = 0x7F0000000000
PROT_RW = 3


def _gup_scenario(arch: str = "x86", choices=("alloc",)):
    text = GUP.read_text()
    assert 'arch = "x86"' in text and 'choices = ["alloc"]' in text
    text = text.replace('arch = "x86"', f'arch = "{arch}"').replace(
        'choices = ["alloc"]', f"choices = {list(choices)!r}".replace("'", '"'))
    return parse(text, str(GUP))


def _found(sc, group: str, bound: int = 2):
    res = iterative_context_bounding(sc, bound, stop_at_first=True)
    assert group in res.violated(), f"expected {group}, got {sorted(res.violated())}"
    best = res.counterexamples[group]
    trace = counterexample_trace(sc, best).to_json()
    assert trace["violation"]["group"] == group
    assert replay(trace, "<memory>").reproduced
    return res, trace


@pytest.mark.parametrize("arch", ["x86", "arm64"])
def test_gup_fast_against_munmap_is_safe(arch):
    res = iterative_context_bounding(_gup_scenario(arch), 2, stop_at_first=False)
    assert res.stats.complete
    assert not res.counterexamples, res.best().violation
    # The alloc choice was explored both ways: the batch and the one-table fallback.
    assert res.stats.plans >= 2


def test_a_table_freed_without_a_grace_period_is_caught(monkeypatch):
    """tlb_remove_table_free() freeing the batch at once (no call_rcu): on arm64, whose TLBI
    broadcast does not wait for CPUs with interrupts off, GUP-fast walks a table the munmap
    has just freed. (On x86 the flush IPI itself waits for GUP-fast's IRQs-off section, the
    protection x86 relied on before MMU_GATHER_RCU_TABLE_FREE: see the next test.)"""
    monkeypatch.setattr(mmu_gather, "call_rcu",
                        lambda machine, func, label, writes=(): func())
    _, trace = _found(_gup_scenario("arm64", ()), "PT_LIFETIME")
    assert "T1" in trace["violation"]["message"] or "gup" in trace["violation"]["message"].lower()


def test_on_x86_the_flush_ipi_waits_for_gup_fast(monkeypatch):
    """Without the RCU grace period, x86 is still safe: freeing page tables flushes every CPU
    of mm_cpumask by IPI (native_flush_tlb_multi with freed_tables), and a CPU with interrupts
    off (GUP-fast) takes it only when it is done. Breaking that wait as well is caught."""
    from unmapcheck.impl import x86_tlb
    monkeypatch.setattr(mmu_gather, "call_rcu",
                        lambda machine, func, label, writes=(): func())
    res = iterative_context_bounding(_gup_scenario("x86", ()), 2, stop_at_first=False)
    assert res.stats.complete and not res.counterexamples
    monkeypatch.setattr(x86_tlb, "takes_interrupts", lambda machine, cpu: not cpu.busy)
    _found(_gup_scenario("x86", ()), "PT_LIFETIME")


def test_an_ipi_that_does_not_wait_is_caught_only_on_the_failure_path(monkeypatch):
    """tlb_remove_table_sync_one() returning without waiting for CPUs with IRQs off: on arm64
    (no PT_RECLAIM in 6.18) the one-table fallback of a failed batch allocation relies on it.
    The bug is reachable only through the allocation-failure choice."""
    monkeypatch.setattr(mmu_gather, "tlb_remove_table_sync_one", lambda machine: None)
    clean = iterative_context_bounding(_gup_scenario("arm64", ()), 2, stop_at_first=False)
    assert clean.stats.complete and not clean.counterexamples
    _, trace = _found(_gup_scenario("arm64", ("alloc",)), "PT_LIFETIME")
    assert trace["inject"], "the counterexample must record the failing branch it took"


def test_a_read_section_left_open_is_a_lock_discipline_violation(monkeypatch):
    """pte_unmap() that does not end pte_offset_map()'s RCU section when munmap's zap calls
    it: munmap returns to user space inside a read-side critical section. (Broken
    everywhere, the setup's first page fault would already return inside one: the fault's
    return to user space is checked too, see test_fault.py.)"""
    from unmapcheck.impl import sched
    real = pgtable.pte_unmap

    def leaves_the_section_open_in_munmap(ptep):
        if sched.current().syscall == "munmap":
            return None
        return real(ptep)
    monkeypatch.setattr(pgtable, "pte_unmap", leaves_the_section_open_in_munmap)
    res = iterative_context_bounding(_gup_scenario("x86", ()), 0, stop_at_first=True)
    assert "LOCK" in res.violated()
    assert "RCU" in res.counterexamples["LOCK"].violation.message or \
        "rcu" in res.counterexamples["LOCK"].violation.message


def test_gup_fast_only_gets_the_present_pages():
    p = System().spawn()
    a = p.mmap(BASE, 4 * PAGE_SIZE, PROT_RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    assert a == BASE
    assert p.gup_fast_only(BASE, 4) == 0          # nothing faulted in: GUP-fast gives up
    p.store(BASE, 1)
    p.store(BASE + PAGE_SIZE, 2)
    assert p.gup_fast_only(BASE, 4) == 2          # stops at the first hole
    assert p.gup_fast_only(BASE + PAGE_SIZE, 1, write=True) == 1
    rss_before = p.rss()
    assert p.munmap(BASE, 4 * PAGE_SIZE) == 0
    assert p.gup_fast_only(BASE, 1) == 0
    assert sum(rss_before.values()) >= 2 and sum(p.rss().values()) == 0


@pytest.mark.parametrize("vendor,survives", [("intel", False), ("amd", True)])
def test_invlpg_drops_walk_caches_per_vendor(vendor, survives):
    """Intel's INVLPG drops every paging-structure-cache entry of the PCID; AMD's (EFER.TCE)
    only those on the path to the address: the walk cache of another 2 MiB region stays."""
    s = System(vendor=vendor)
    p = s.spawn()
    p.mmap(BASE, 2 * PMD_SIZE, PROT_RW, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    p.store(BASE, 1)
    p.store(BASE + PMD_SIZE, 2)
    machine: Machine = s.machine
    cpu0 = machine.cpus[0]
    mm_id = p.mm.id
    far = [k for k in cpu0.pwc if k[0] == mm_id and k[1] == cpu_mod.LEVEL_PTE and k[2] == (BASE + PMD_SIZE) >> 21]
    assert far, "the walk of the second region was not cached"
    cpu_mod.invlpg(machine, cpu0, mm_id, BASE)
    still = [k for k in cpu0.pwc if k[0] == mm_id and k[1] == cpu_mod.LEVEL_PTE and k[2] == (BASE + PMD_SIZE) >> 21]
    assert bool(still) == survives
