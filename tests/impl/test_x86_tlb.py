"""x86 TLB shootdown (impl/x86_tlb.py): lazy TLB mode, tlb_gen catch-up, the flush steps per
CPU, and the checker catching each of them broken on purpose."""

from __future__ import annotations

import pytest

from unmapcheck.checker.explore import iterative_context_bounding
from unmapcheck.checker.scenario import load, parse
from unmapcheck.checker.trace import counterexample_trace, replay
from unmapcheck.impl import x86_tlb
from unmapcheck.impl.constants import (MADV_DONTNEED, MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE,
                                       PAGE_SIZE, PROT_READ, PROT_WRITE)
from unmapcheck.impl.system import System
from unmapcheck.impl.x86_tlb import translation_usable
from unmapcheck.proofs import SCENARIO_DIR

BASE = 0x7F0000000000
RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED
LAZY = SCENARIO_DIR / "never-lazy-tlb-vs-munmap.toml"
SWITCH = SCENARIO_DIR / "fea4e317f9e7-83b0177a6c48-switch-mm-vs-flush.toml"


def _two_processes(npages: int = 1):
    s = System(cpus=2)
    m, q = s.spawn(), s.spawn()
    assert m.mmap(BASE, npages * PAGE_SIZE, RW, ANON) == BASE
    return s, m, q


def test_a_cpu_running_another_mm_is_skipped_and_catches_up_on_switch_back():
    s, m, q = _two_processes()
    m.store(BASE, 0x41, cpu=0)
    cpu0 = s.machine.cpus[0]
    m.context_switch(q, cpu=0)
    assert cpu0.tlbstate.loaded_mm is q.mm and 0 in m.mm.cpumask
    gen = m.mm.tlb_gen
    assert m.madvise(BASE, PAGE_SIZE, MADV_DONTNEED, cpu=1) == 0
    assert m.mm.tlb_gen == gen + 1
    # Skipped: the entry is still cached under m's PCID, but not usable without a flush.
    assert (m.mm.id, BASE >> 12) in cpu0.tlb
    assert not translation_usable(s.machine, cpu0, m.mm.id, leaf=True)
    # Switching back sees the new tlb_gen and loads CR3 without NOFLUSH.
    assert m.load(BASE, cpu=0) == 0
    assert cpu0.tlbstate.ctxs[m.mm.id] == m.mm.tlb_gen
    assert cpu0.tlbstate.loaded_mm is m.mm and cpu0.tlbstate.published_mm is m.mm


def test_lazy_mode_keeps_the_mm_loaded_and_leaves_it_on_a_freed_tables_flush():
    s, m, q = _two_processes()
    m.store(BASE, 1, cpu=0)
    cpu0 = s.machine.cpus[0]
    m.context_switch(None, cpu=0)
    assert cpu0.tlbstate.is_lazy and cpu0.tlbstate.loaded_mm is m.mm
    # A lazy CPU's walk cache is still usable (speculative walks); its TLB entries are not
    # once it is behind the mm's tlb_gen.
    assert translation_usable(s.machine, cpu0, m.mm.id, leaf=False)
    m.madvise(BASE, PAGE_SIZE, MADV_DONTNEED, cpu=1)          # no table freed: skipped
    assert cpu0.tlbstate.is_lazy and cpu0.tlbstate.ctxs[m.mm.id] < m.mm.tlb_gen
    assert not translation_usable(s.machine, cpu0, m.mm.id, leaf=True)
    m.munmap(BASE, PAGE_SIZE, cpu=1)                          # frees the page tables
    assert cpu0.tlbstate.loaded_mm is None and not cpu0.tlbstate.is_lazy
    assert not translation_usable(s.machine, cpu0, m.mm.id, leaf=False)
    # The next flush finds CPU0 on another mm and trims it from mm_cpumask.
    m.mmap(BASE, PAGE_SIZE, RW, ANON, cpu=1)
    m.store(BASE, 2, cpu=1)
    m.munmap(BASE, PAGE_SIZE, cpu=1)
    assert 0 not in m.mm.cpumask


def test_flush_tlb_func_partial_only_when_one_generation_behind():
    s, m, q = _two_processes(4)
    for i in range(4):
        m.store(BASE + i * PAGE_SIZE, 1, cpu=0)
        m.load(BASE + i * PAGE_SIZE, cpu=1)
    cpu1 = s.machine.cpus[1]
    # One generation behind: INVLPG of the range only; the other entries stay.
    m.madvise(BASE, PAGE_SIZE, MADV_DONTNEED, cpu=0)
    assert (m.mm.id, (BASE >> 12) + 1) in cpu1.tlb and (m.mm.id, BASE >> 12) not in cpu1.tlb
    # Two flushes while CPU1 runs another mm, then back: the switch flushes everything.
    m.context_switch(q, cpu=1)
    m.madvise(BASE + PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED, cpu=0)
    m.madvise(BASE + 2 * PAGE_SIZE, PAGE_SIZE, MADV_DONTNEED, cpu=0)
    m.load(BASE + 3 * PAGE_SIZE, cpu=1)
    assert [k for k in cpu1.tlb if k[0] == m.mm.id] == [(m.mm.id, (BASE >> 12) + 3)]


def test_more_strides_than_the_ceiling_is_a_full_flush():
    from unmapcheck.impl import sched
    from unmapcheck.impl.cpu import TLB_FLUSH_ALL, TLB_SINGLE_PAGE_FLUSH_CEILING
    s = System(cpus=2)
    m = s.spawn()
    sched.set_current(sched.Context(name="t", cpu=0))
    n = TLB_SINGLE_PAGE_FLUSH_CEILING
    part = x86_tlb.get_flush_tlb_info(m.mm, BASE, BASE + n * PAGE_SIZE, 12, False, 1)
    full = x86_tlb.get_flush_tlb_info(m.mm, BASE, BASE + (n + 1) * PAGE_SIZE, 12, False, 1)
    assert (part.start, part.end) == (BASE, BASE + n * PAGE_SIZE)
    assert (full.start, full.end) == (0, TLB_FLUSH_ALL)


# --- the checker catches the shootdown broken on purpose --------------------------------------
def _found(sc, group: str = "I1", bound: int = 2):
    res = iterative_context_bounding(sc, bound, stop_at_first=True)
    assert group in res.violated(), f"expected {group}, got {sorted(res.violated())}"
    trace = counterexample_trace(sc, res.counterexamples[group]).to_json()
    assert trace["violation"]["group"] == group
    assert replay(trace, "<memory>").reproduced
    return trace


@pytest.mark.slow
def test_the_lazy_scenario_is_safe():
    """At bound 2 without stopping at the first violation (the default run's corpus test
    explores the same scenario, tests/checker/test_corpus.py)."""
    res = iterative_context_bounding(load(LAZY), 2, stop_at_first=False)
    assert res.stats.complete and not res.counterexamples, res.best().violation


def test_a_flush_that_skips_lazy_cpus_when_tables_were_freed_is_caught(monkeypatch):
    """The bug class of 3ef938c35035 (CVE-2025-22045): a flush that freed page tables but
    does not IPI lazy CPUs leaves their walk caches pointing at the freed tables. (The model
    has no khugepaged, whose flush_tlb_range() call was the real instance.)"""
    real = x86_tlb.native_flush_tlb_multi

    def no_freed_tables(machine, cpumask, info):
        info.freed_tables = False
        real(machine, cpumask, info)
    monkeypatch.setattr(x86_tlb, "native_flush_tlb_multi", no_freed_tables)
    trace = _found(load(LAZY))
    assert "paging-structure cache" in trace["violation"]["message"]


def test_a_switch_back_that_ignores_tlb_gen_is_caught(monkeypatch):
    real = x86_tlb._reload_tlb

    def never_flush(machine, cpu, next_mm, next_tlb_gen, need_flush):
        real(machine, cpu, next_mm, next_tlb_gen, False)
    monkeypatch.setattr(x86_tlb, "_reload_tlb", never_flush)
    _found(load(SWITCH))


def test_a_flush_that_does_not_wait_for_a_switch_in_progress_is_caught(monkeypatch):
    """The flush IPI is taken only with interrupts on: switch_mm_irqs_off() runs with them
    off, so an IPI sent to a switching CPU runs after loaded_mm is published. Taking it in
    the middle of the switch flushes a CPU that then loads CR3 without flushing."""
    monkeypatch.setattr(x86_tlb, "takes_interrupts", lambda machine, cpu: not cpu.busy)
    _found(load(SWITCH))


@pytest.mark.parametrize("fix", ["fea4e317f9e7", "83b0177a6c48"])
def test_each_fix_alone_closes_its_window(fix):
    """With one of the two fixes off the other does not help: each window is its own."""
    sc = load(SWITCH).with_fixes_off([fix])
    trace = _found(sc)
    steps = [s["label"] for s in trace["steps"]]
    assert any("LOADED_MM_SWITCHING" in s for s in steps)
    assert any("CR3_NOFLUSH" in s for s in steps)


def test_context_switch_op_errors_are_one_line():
    from unmapcheck.checker.scenario import ScenarioError
    text = SWITCH.read_text().replace('to = "q"', 'to = "nobody"')
    with pytest.raises(ScenarioError) as e:
        parse(text, "bad.toml")
    msg = str(e.value)
    assert "\n" not in msg and "program[1].to" in msg and "kernel" in msg


def test_a_switch_to_a_process_that_has_exited_runs_a_kernel_thread():
    """pick_next_task(): an exited process has no thread left, so the CPU runs the idle
    task (x86: lazy TLB mode on the mm it had loaded) instead of failing."""
    s, m, q = _two_processes()
    m.store(BASE, 1, cpu=0)
    assert q.exit(cpu=1) == 0
    m.context_switch(q, cpu=0)
    cpu0 = s.machine.cpus[0]
    assert cpu0.tlbstate.is_lazy and cpu0.tlbstate.loaded_mm is m.mm
    assert m.load(BASE, cpu=0) == 1


@pytest.mark.parametrize("vendor,kept", [("intel", False), ("amd", True)])
def test_a_page_fault_drops_the_walk_cache_entries_of_its_address_on_intel(vendor, kept):
    """SDM vol. 3A 4.10.4.1: a #PF invalidates the PML4/PDPTE/PDE-cache entries that would
    be used for the faulting address. CPU1 caches the walk to the PTE table of BASE, then
    loads from a page of that table with no PTE and faults. On Intel its walk cache no
    longer has the entries, so a retried access walks the tables in memory (a table that
    PT_RECLAIM replaced behind a cached walk is found anew instead of faulting for ever);
    the model keeps AMD's entries (the APM does not promise the invalidation)."""
    from unmapcheck.impl.cpu import Fault, mmu_translate
    s = System(cpus=2, vendor=vendor)
    p = s.spawn()
    assert p.mmap(BASE, 2 * PAGE_SIZE, RW, ANON) == BASE
    p.store(BASE, 1, cpu=1)
    cpu1 = s.machine.cpus[1]
    assert any(k[0] == p.mm.id for k in cpu1.pwc)
    cpu1.tlb.clear()                      # only the walk cache remembers the table
    with pytest.raises(Fault):
        mmu_translate(cpu1, p.mm, BASE + PAGE_SIZE, False)   # not populated: it faults
    assert any(k[0] == p.mm.id for k in cpu1.pwc) == kept
