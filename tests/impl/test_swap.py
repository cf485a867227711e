"""Swap-out and swap-in (impl/swapfile.py, impl/vmscan.py, try_to_unmap_one, do_swap_page):
MADV_PAGEOUT's reclaim as 6.18 does it, the swap counts and the swap cache, and what the
checker catches when they are broken."""

from __future__ import annotations

from pathlib import Path

import pytest

from unmapcheck.impl import System
from unmapcheck.impl.constants import (MADV_FREE, MADV_PAGEOUT, MADV_WILLNEED, MAP_ANONYMOUS,
                                       MAP_PRIVATE, MAP_SHARED, MM_ANONPAGES, MM_FILEPAGES,
                                       MM_SWAPENTS, PROT_READ, PROT_WRITE)
from unmapcheck.impl.machine import Tunables
from unmapcheck.impl.page import PG_active, PG_swapcache
from unmapcheck.impl.pgtable import lookup_pte, ptep_get
from unmapcheck.impl.pte import PRESENT, SWAP

RW = PROT_READ | PROT_WRITE
ANON = MAP_PRIVATE | MAP_ANONYMOUS
P = 0x1000
SCENARIOS = Path(__file__).resolve().parents[2] / "proofs" / "scenarios"


def _system(swap_pages=4):
    s = System(tunables=Tunables(swap_pages=swap_pages))
    return s, s.spawn()


def _pte(p, addr):
    return ptep_get(lookup_pte(p.mm, addr))


def test_pageout_swaps_an_exclusive_page_out_and_a_fault_reads_it_back():
    s, p = _system()
    a = p.mmap(0, 2 * P, RW, ANON)
    p.store(a, 0x41)
    p.store(a + P, 0x42)
    si = s.machine.swap
    allocated = s.machine.zone.nr_allocated()
    assert p.madvise(a, 2 * P, MADV_PAGEOUT) == 0
    ptes = [_pte(p, a), _pte(p, a + P)]
    assert [e.kind for e in ptes] == [SWAP, SWAP]
    assert all(e.swp_exclusive for e in ptes)          # the pages were exclusive
    assert p.mm.rss_stat[MM_ANONPAGES] == 0 and p.mm.rss_stat[MM_SWAPENTS] == 2
    assert {si.swap_map[e.offset] for e in ptes} == {1}  # one PTE each, out of the cache
    assert not si.cache
    assert s.machine.zone.nr_allocated() == allocated - 2   # both frames freed
    assert sorted(si.data[e.offset][0] for e in ptes) == [0x41, 0x42]
    maj = p.task.maj_flt
    assert p.load(a + P) == 0x42                       # skip-swapcache swap-in
    assert p.task.maj_flt == maj + 1
    e = _pte(p, a + P)
    assert e.kind == PRESENT and e.write               # exclusive: writable at once
    assert p.mm.rss_stat[MM_ANONPAGES] == 1 and p.mm.rss_stat[MM_SWAPENTS] == 1
    assert ptes[1].offset not in si.swap_map           # its last reference went
    p.exit()
    assert not si.swap_map and not si.cache            # zap freed the other slot


def test_without_swap_pageout_keeps_anonymous_pages_active():
    s, p = _system(swap_pages=0)
    a = p.mmap(0, P, RW, ANON)
    p.store(a, 0x41)
    assert p.madvise(a, P, MADV_PAGEOUT) == 0          # folio_alloc_swap: -ENOMEM
    e = _pte(p, a)
    assert e.kind == PRESENT
    page = s.machine.zone.pfn_to_page(e.pfn)
    assert page.flags & PG_active and page._refcount == 1
    assert p.load(a) == 0x41


def _paged_out_then_forked():
    """A page (0x41) paged out to swap, then a fork: parent and child each hold a swap PTE
    for its slot. Returns the system, parent, child, address, slot and swap device."""
    s, p = _system()
    a = p.mmap(0, P, RW, ANON)
    p.store(a, 0x41)
    p.madvise(a, P, MADV_PAGEOUT)
    off = _pte(p, a).offset
    c = p.fork()
    return s, p, c, a, off, s.machine.swap


def test_fork_shares_a_slot_and_the_swap_cache_serves_both():
    s, p, c, a, off, si = _paged_out_then_forked()
    assert si.swap_map[off] == 2                       # swap_duplicate
    assert not _pte(p, a).swp_exclusive                # cleared in the parent
    assert c.load(a) == 0x41                           # read into the swap cache
    page = si.cache[off]
    assert page.flags & PG_swapcache
    assert p.load(a) == 0x41                           # found there: the same page
    assert s.machine.zone.pfn_to_page(_pte(p, a).pfn) is page
    assert not _pte(p, a).write                        # shared: read-only
    p.store(a, 0x55)                                   # COW: the child keeps its page
    assert c.load(a) == 0x41 and p.load(a) == 0x55
    c.exit()
    p.exit()
    # The last unmap frees the page from the swap cache and the slot with it: the zap's
    # free_pages_and_swap_cache -> free_swap_cache -> folio_free_swap (no PTE references
    # the slot any more).
    assert list(si.cache) == [] and si.swap_map == {}


def test_a_zap_frees_the_swap_cache_page_only_when_nothing_maps_it_or_its_slot():
    """free_swap_cache: an unmapped page stays in the swap cache while a swap PTE still
    references its slot; the last unmap frees both."""
    s, p, c, a, off, si = _paged_out_then_forked()
    assert p.load(a) == 0x41                 # the parent maps the page from the swap cache
    p.munmap(a, P)                           # nothing maps it now, but the child's swap PTE
    assert list(si.cache) == [off] and si.swap_map == {off: 0x41}    # references the slot
    assert c.load(a) == 0x41                 # the child maps it from the cache
    c.munmap(a, P)                           # the last mapping and the last reference
    assert list(si.cache) == [] and si.swap_map == {}


def test_pageout_discards_a_clean_lazyfree_page_and_keeps_a_redirtied_one():
    s, p = _system(swap_pages=0)
    a = p.mmap(0, 2 * P, RW, ANON)
    p.store(a, 0x41)
    p.store(a + P, 0x42)
    assert p.madvise(a, 2 * P, MADV_FREE) == 0
    p.store(a + P, 0x43)                               # re-dirtied after MADV_FREE
    assert p.madvise(a, 2 * P, MADV_PAGEOUT) == 0
    assert _pte(p, a).kind != PRESENT                  # discarded (no swap needed)
    assert _pte(p, a + P).kind == PRESENT              # kept: its PTE was dirty
    assert p.mm.rss_stat[MM_ANONPAGES] == 1 and p.mm.rss_stat[MM_SWAPENTS] == 0
    assert p.load(a) == 0 and p.load(a + P) == 0x43


def test_pageout_drops_a_clean_file_page_and_keeps_a_dirty_one():
    s, p = _system(swap_pages=0)
    fd = s.create_file("f", 2 * P)
    s.file(fd).f_mapping.disk[0] = {0: 0x61}          # the file's on-disk image
    clean = p.mmap(0, P, PROT_READ, MAP_PRIVATE, fd, 0)
    shared = p.mmap(0, P, RW, MAP_SHARED, fd, P)
    assert p.load(clean) == 0x61
    p.store(shared, 0x71)                              # a dirty page-cache page
    assert p.mm.rss_stat[MM_FILEPAGES] == 2
    assert p.madvise(clean, P, MADV_PAGEOUT) == 0
    assert p.madvise(shared, P, MADV_PAGEOUT) == 0
    assert _pte(p, clean).kind != PRESENT              # unmapped and out of the page cache
    f = s.file(fd)
    assert 0 not in f.f_mapping.i_pages
    assert 1 in f.f_mapping.i_pages                    # the dirty page stays cached
    assert p.mm.rss_stat[MM_FILEPAGES] == 0            # ... but unmapped
    assert p.load(clean) == 0x61 and p.load(shared) == 0x71


def test_pageout_of_a_dirty_shmem_page_is_not_modelled():
    from unmapcheck.impl.madvise import NotSupported
    s, p = _system()
    fd = s.memfd_create("m", P)
    m = p.mmap(0, P, RW, MAP_SHARED, fd, 0)
    p.store(m, 0x41)
    with pytest.raises(NotSupported, match="shmem_writeout"):
        p.madvise(m, P, MADV_PAGEOUT)


def test_willneed_reads_swap_entries_into_the_swap_cache():
    s, p = _system()
    a = p.mmap(0, P, RW, ANON)
    p.store(a, 0x41)
    p.madvise(a, P, MADV_PAGEOUT)
    off = _pte(p, a).offset
    assert p.madvise(a, P, MADV_WILLNEED) == 0
    assert off in s.machine.swap.cache and _pte(p, a).kind == SWAP
    maj = p.task.maj_flt
    assert p.load(a) == 0x41
    assert p.task.maj_flt == maj                       # found in the swap cache: minor
    p.exit()


# --- the checker catches a broken reclaim ---------------------------------------------------
def _verdict(name):
    """The corpus obligation's verdict for scenario *name* (invariants and outcomes)."""
    from unmapcheck.checker.prove import explore_scenario, judge
    from unmapcheck.checker.scenario import load
    sc = load(str(SCENARIOS / f"{name}.toml"))
    res = explore_scenario(sc, None, 300)
    return judge(sc, res, name, 0.0), res


@pytest.mark.slow      # (prove runs these three scenarios; the tests below break them)
def test_the_reclaim_scenarios_hold_on_the_correct_model():
    for name in ("never-pageout-vs-store", "never-madv-free-vs-pageout",
                 "never-pageout-vs-fork"):
        verdict, _ = _verdict(name)
        assert verdict.status == "PROVED", (name, verdict.detail)


def test_a_remove_mapping_that_ignores_new_references_is_caught(monkeypatch):
    """__remove_mapping() without its folio_ref_freeze(): a page a racing fault found in the
    swap cache, and mapped, is freed under its PTE."""
    from unmapcheck.impl import vmscan
    real = vmscan.__remove_mapping

    def no_freeze(machine, mapping, folio):
        folio._refcount = 2
        return real(machine, mapping, folio)
    monkeypatch.setattr(vmscan, "__remove_mapping", no_freeze)
    verdict, res = _verdict("never-pageout-vs-store")
    assert verdict.status == "FAILED", verdict.detail
    best = res.best()
    assert best is not None and best.schedule and best.violation.name


def test_a_pageout_that_writes_before_the_flush_is_caught(monkeypatch):
    """try_to_unmap_flush_dirty() skipped: CPU1 can still store through its dirty
    translation after the page was written to swap, and the page is then freed with the
    store in it: the store is lost."""
    from unmapcheck.impl import vmscan
    monkeypatch.setattr(vmscan, "try_to_unmap_flush_dirty", lambda: None)
    verdict, _ = _verdict("never-pageout-vs-store")
    assert verdict.status == "FAILED", verdict.detail


def test_a_lazyfree_discard_that_ignores_the_dirty_bit_is_caught(monkeypatch):
    """try_to_unmap_one() blind to the PTE's dirty bit (rmap's pte_dirty() answering "no";
    in this scenario only reclaim's unmap reads it): a lazyfree page a store re-dirtied
    after MADV_FREE is discarded, and the store is lost."""
    from unmapcheck.impl import rmap
    monkeypatch.setattr(rmap, "pte_dirty", lambda pte: False)
    verdict, _ = _verdict("never-madv-free-vs-pageout")
    assert verdict.status == "FAILED", verdict.detail
