"""CONFIG_PT_RECLAIM: MADV_DONTNEED over a whole PTE table frees the table (impl/zap.py
zap_pte_range's reclaim tail), as 6.18 has it (mm/pt_reclaim.c, x86-64 only, freed with
``start``) and as 7.0 has it (mm/memory.c, x86 and arm64, freed with ``addr == end`` until
478a1c3abebf), and the any_skipped reset of zap_nonpresent_ptes that lets a table which held
swap or migration entries be reclaimed."""

from __future__ import annotations

import pytest

from mmkit import BASE, RW, Env, Recorder, page

from unmapcheck.impl import rmap
from unmapcheck.impl.constants import (MADV_DONTNEED, MM_ANONPAGES, MM_SWAPENTS, PAGE_SIZE,
                                       PMD_SHIFT, PMD_SIZE)
from unmapcheck.impl.madvise import do_madvise
from unmapcheck.impl.mm_types import add_mm_counter
from unmapcheck.impl.page import folio_get, folio_put, page_mapcount
from unmapcheck.impl.pgtable import LEVEL_PTE, lookup_pte, set_pte_at
from unmapcheck.impl.pte import MIGRATION, SWAP, make_migration_entry, swp_entry_to_pte
from unmapcheck.impl.zap import config_pt_reclaim

FIX = "478a1c3abebf"


def table_of(env: Env, addr: int = BASE):
    """The PTE table frame that maps *addr*, or None."""
    ptep = lookup_pte(env.mm, addr)
    return None if ptep is None else ptep.table


def walk_cache_table(env: Env, cpu: int, addr: int = BASE):
    """The PTE table CPU *cpu*'s paging-structure cache holds for *addr* (a pfn), or None."""
    hit = env.cpus[cpu].pwc.get((env.mm.id, LEVEL_PTE, addr >> PMD_SHIFT))
    return None if hit is None else hit[0]


def dontneed(env: Env, addr: int, length: int) -> Recorder:
    with Recorder() as rec:
        env.on(0)
        assert do_madvise(env.mm, addr, length, MADV_DONTNEED) == 0
    return rec


def flushes(rec: Recorder) -> list[tuple[int, int, bool]]:
    return [(i["start"], i["end"], i["freed_tables"]) for k, i in rec.events
            if k == "tlb_flush"]


def table_with_swap_and_migration_entries(env: Env):
    """A 2 MiB anonymous VMA whose PTE table holds a present page (page 0), a swap entry
    (page 1) and a migration entry (page 2), each accounted as the kernel accounts it:
    MM_ANONPAGES 2 (the present page and the page under migration), MM_SWAPENTS 1."""
    env.vma(BASE, 512, RW)
    env.touch(BASE, 3)
    # Page 1 swapped out by hand (what reclaim leaves once the folio is gone).
    slot = 1
    env.machine.swap.swap_map[slot] = 1
    env.machine.swap.data[slot] = {0: 0x41}
    old = env.page_at(page(1))
    set_pte_at(env.mm, page(1), lookup_pte(env.mm, page(1)), swp_entry_to_pte(slot))
    rmap.folio_remove_rmap_ptes(old, old, 1, None)
    folio_put(old)
    add_mm_counter(env.mm, MM_ANONPAGES, -1)
    add_mm_counter(env.mm, MM_SWAPENTS, 1)
    # Page 2 under migration: try_to_migrate_one() by hand (isolation keeps a reference;
    # the mapping drops its rmap and reference; rss is left alone).
    mig = env.page_at(page(2))
    folio_get(mig)
    set_pte_at(env.mm, page(2), lookup_pte(env.mm, page(2)),
               make_migration_entry(mig.pfn, True))
    rmap.folio_remove_rmap_ptes(mig, mig, 1, None)
    folio_put(mig)
    assert env.pte(page(1)).kind == SWAP and env.pte(page(2)).kind == MIGRATION
    assert env.rss()[MM_ANONPAGES] == 2 and env.rss()[MM_SWAPENTS] == 1
    env.check_exact()
    return slot, mig


# --- CONFIG_PT_RECLAIM per era and architecture -----------------------------------------------
@pytest.mark.parametrize("era,arch,enabled", [
    ("6.18", "x86", True), ("6.18", "arm64", False),
    ("7.0", "x86", True), ("7.0", "arm64", True),
    ("5.x", "x86", True), ("5.x", "arm64", False),
])
def test_config_pt_reclaim(era, arch, enabled):
    """6.18: only x86_64 selects ARCH_SUPPORTS_PT_RECLAIM; 7.0 (9c8c02df3f87): every
    MMU_GATHER_RCU_TABLE_FREE architecture, x86 and arm64 both."""
    env = Env(arch=arch, era=era)
    assert config_pt_reclaim(env.machine) is enabled
    env.vma(BASE, 512, RW)
    env.touch(BASE, 2)
    tables, ptbytes = env.tables(), env.mm.pgtables_bytes
    dontneed(env, BASE, PMD_SIZE)
    assert env.present(BASE, 512) == []
    assert (table_of(env) is None) is enabled
    assert env.tables() == tables - enabled
    assert env.mm.pgtables_bytes == ptbytes - PAGE_SIZE * enabled
    env.check_exact()


# --- the any_skipped reset (zap_nonpresent_ptes) ----------------------------------------------
@pytest.mark.parametrize("arch", ["x86", "arm64"])
def test_table_with_swap_and_migration_entries_is_reclaimed_on_x86_618(arch):
    """6.18's zap_nonpresent_ptes sets any_skipped and resets it once the entry is cleared
    (zap_install_uffd_wp_if_needed), so a table that held a swap entry and a migration entry
    is freed by MADV_DONTNEED of the whole table: on x86, where 6.18 has PT_RECLAIM; on
    arm64 6.18 has none and the emptied table stays."""
    env = Env(arch=arch)
    slot, mig = table_with_swap_and_migration_entries(env)
    table = table_of(env)
    tables, ptbytes = env.tables(), env.mm.pgtables_bytes
    frames = env.allocated()
    dontneed(env, BASE, PMD_SIZE)
    reclaimed = arch == "x86"
    # Every entry was zapped, and each counter is back to zero, exactly.
    assert [env.pte(page(i)).kind for i in range(3)] == [0, 0, 0]
    assert env.rss() == [0, 0, 0, 0]
    assert slot not in env.machine.swap.swap_map            # free_swap_and_cache
    assert not mig.free and page_mapcount(mig) == 0         # migration still holds it
    assert (table_of(env) is None) is reclaimed
    assert table.free is reclaimed
    assert env.tables() == tables - reclaimed
    assert env.mm.pgtables_bytes == ptbytes - PAGE_SIZE * reclaimed
    # Freed: page 0 (the present page) and, on x86, the PTE table.
    assert env.allocated() == frames - 1 - reclaimed
    env.check_exact()


def test_table_with_swap_and_migration_entries_is_reclaimed_in_70_on_arm64():
    env = Env(arch="arm64", era="7.0")
    table_with_swap_and_migration_entries(env)
    table = table_of(env)
    ptbytes = env.mm.pgtables_bytes
    dontneed(env, BASE, PMD_SIZE)
    assert table_of(env) is None and table.free
    assert env.mm.pgtables_bytes == ptbytes - PAGE_SIZE
    assert env.rss() == [0, 0, 0, 0]
    env.check_exact()


def test_a_range_short_of_the_table_never_reclaims():
    """end - start >= PMD_SIZE or nothing: one page less keeps the (now empty) table."""
    env = Env()
    env.vma(BASE, 512, RW)
    env.touch(BASE, 2)
    ptbytes = env.mm.pgtables_bytes
    dontneed(env, BASE, PMD_SIZE - PAGE_SIZE)
    assert table_of(env) is not None and env.present(BASE, 512) == []
    assert env.mm.pgtables_bytes == ptbytes


# --- the flush address ---------------------------------------------------------------------------
def touch_then_dontneed_page(env: Env):
    """Touch page 0 on CPU0 (its walk cache now holds the PTE table) and MADV_DONTNEED it:
    the table is empty but installed, and nothing is left to flush. On arm64 the flush was
    last-level only and the walk cache keeps the table; on x86 INVLPG dropped it, so CPU0
    walks again without an access, as a speculative walk may (the model makes none itself)."""
    from unmapcheck.impl.cpu import _walk
    env.vma(BASE, 512, RW)
    env.touch(BASE, 1)
    dontneed(env, BASE, PAGE_SIZE)
    table = table_of(env)
    assert table is not None and env.present(BASE, 512) == []
    if env.machine.arch == "x86":
        assert walk_cache_table(env, 0) is None
        _walk(env.cpus[0], env.mm, BASE)
    assert walk_cache_table(env, 0) == table.pfn
    return table


def test_618_frees_the_table_with_start():
    """6.18 (mm/pt_reclaim.c free_pte(mm, start, ...)): the only flush of the whole-table
    MADV_DONTNEED is for [start, start + PAGE_SIZE) with freed_tables."""
    env = Env(arch="x86")
    table = touch_then_dontneed_page(env)
    rec = dontneed(env, BASE, PMD_SIZE)
    assert flushes(rec) == [(BASE, BASE + PAGE_SIZE, True)]
    assert table.free and walk_cache_table(env, 0) is None


def test_618_slow_path_frees_with_start_too():
    """A gather of one page forces a flush and a break at every present PTE, so the PTE lock
    is dropped midway and try_to_free_pte(mm, pmd, start, tlb) rechecks the table: it is
    still freed, and flushed at ``start``."""
    env = Env(arch="x86")
    env.machine.tunables.gather_bundle = 2
    env.machine.tunables.gather_batch_count = 0
    env.vma(BASE, 512, RW)
    env.touch(BASE, 3)
    table = table_of(env)
    ptbytes = env.mm.pgtables_bytes
    rec = dontneed(env, BASE, PMD_SIZE)
    assert "__tlb_remove_table" in rec.labels
    assert rec.labels.count("pmd_clear") == 1
    # try_to_free_pte takes the pmd lock with spin_lock (the slow path), never a trylock.
    assert "spin_trylock" not in rec.labels
    fl = flushes(rec)
    assert len(fl) >= 3                                   # the forced flushes, then the table's
    assert fl[-1][0] == BASE and fl[-1][2]
    assert table.free and env.mm.pgtables_bytes == ptbytes - PAGE_SIZE
    assert env.rss() == [0, 0, 0, 0]
    env.check_exact()


@pytest.mark.parametrize("fixed", [True, False])
def test_70_arm64_flush_address_with_and_without_478a1c3abebf(fixed):
    """7.0 before 478a1c3abebf queues the table with addr == end: arm64 invalidates the walk
    cache for the address one past the table, CPU0's entry for the table survives, and the
    table is freed under it. With the fix, the flush is at start and the entry is gone."""
    env = Env(arch="arm64", era="7.0", fixes_off=() if fixed else (FIX,))
    table = touch_then_dontneed_page(env)
    ptbytes = env.mm.pgtables_bytes
    rec = dontneed(env, BASE, PMD_SIZE)
    addr = BASE if fixed else BASE + PMD_SIZE
    assert flushes(rec) == [(addr, addr + PAGE_SIZE, True)]
    assert table.free
    assert env.mm.pgtables_bytes == ptbytes - PAGE_SIZE
    assert env.rss() == [0, 0, 0, 0]
    stale = walk_cache_table(env, 0)
    assert (stale is None) is fixed
    if not fixed:
        assert stale == table.pfn                         # a walk cache reaches a freed table


def test_70_x86_without_the_fix_flushes_at_end_but_invlpg_drops_every_walk_cache_entry():
    """On x86 the model's INVLPG drops the whole paging-structure cache of the PCID (Intel
    semantics), so the wrong address does no harm here. AMD's EFER.TCE (INVLPG drops only
    the target address's entries), where the bug was reported, is not modelled."""
    env = Env(arch="x86", era="7.0", fixes_off=(FIX,))
    table = touch_then_dontneed_page(env)
    rec = dontneed(env, BASE, PMD_SIZE)
    assert flushes(rec) == [(BASE + PMD_SIZE, BASE + PMD_SIZE + PAGE_SIZE, True)]
    assert table.free and walk_cache_table(env, 0) is None


def test_the_fix_changes_nothing_in_618():
    """478a1c3abebf lives in the 7.0 code: 6.18 frees with start either way."""
    for fixes_off in ((), (FIX,)):
        env = Env(arch="x86", fixes_off=fixes_off)
        touch_then_dontneed_page(env)
        assert flushes(dontneed(env, BASE, PMD_SIZE)) == [(BASE, BASE + PAGE_SIZE, True)]


# --- the scenario, through the explorer -------------------------------------------------------
def test_scenario_finds_the_freed_table_only_without_the_fix():
    """Break it on purpose: with 478a1c3abebf off, the explorer finds I1.freed_table in the
    corpus scenario; with it on, the (complete) search finds nothing."""
    from unmapcheck.checker.explore import iterative_context_bounding
    from unmapcheck.checker.scenario import load
    from unmapcheck.proofs import SCENARIO_DIR
    sc = load(SCENARIO_DIR / "478a1c3abebf-pt-reclaim-flush-address.toml")
    assert (sc.era, sc.arch) == ("7.0", "arm64")
    res = iterative_context_bounding(sc, 2, stop_at_first=False)
    assert res.counterexamples == {} and res.stats.complete
    broken = sc.with_fixes_off([FIX])
    assert broken.expect_sometimes == ["I1"]
    res = iterative_context_bounding(broken, 2)
    assert set(res.counterexamples) == {"I1"}
    v = res.counterexamples["I1"].violation
    assert v.name == "I1.freed_table", v


@pytest.mark.parametrize("arch", ["x86", "arm64"])
def test_the_same_sequence_in_618_finds_nothing(arch):
    from unmapcheck.checker.explore import iterative_context_bounding
    from unmapcheck.checker.scenario import load
    from unmapcheck.proofs import SCENARIO_DIR
    sc = load(SCENARIO_DIR / f"never-pt-reclaim-6.18-{arch}.toml")
    assert (sc.era, sc.arch) == ("6.18", arch)
    for fixes_off in ([], [FIX]):
        res = iterative_context_bounding(sc.with_fixes_off(fixes_off), 2, stop_at_first=False)
        assert res.counterexamples == {} and res.stats.complete
