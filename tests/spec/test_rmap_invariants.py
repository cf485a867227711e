"""RMAP.file (a file VMA's PTE maps the page its file's page cache holds at that offset),
RMAP.private_file (a private mapping maps a page-cache page only read-only) and RMAP.chains
(every VMA on a reverse map is a live VMA): they hold on the correct model, they judge a
corrupted state, and the explorer reports a broken kernel path with a trace."""

from __future__ import annotations

import inspect
from pathlib import Path

from unmapcheck.checker.explore import iterative_context_bounding
from unmapcheck.checker.prove import explore_scenario, judge
from unmapcheck.checker.scenario import load, parse
from unmapcheck.impl import System
from unmapcheck.impl.constants import (MADV_REMOVE, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED,
                                       PROT_READ, PROT_WRITE)
from unmapcheck.spec import check as CHECK
from unmapcheck.spec.view import ConcreteView

RW = PROT_READ | PROT_WRITE
P = 0x1000
SCENARIOS = Path(__file__).resolve().parents[2] / "proofs" / "scenarios"


def _first_violation(name: str, bound: int = 0):
    """The best counterexample of corpus scenario *name* at preemption bound *bound*."""
    best = iterative_context_bounding(load(str(SCENARIOS / f"{name}.toml")), bound).best()
    assert best is not None and best.schedule, name
    return best


def _names(machine) -> set[str]:
    S = ConcreteView(machine)
    return {f.name for f in CHECK.violations(S, "quiescent")}


def test_shared_and_private_file_mappings_satisfy_rmap_file():
    s = System()
    p = s.spawn()
    fd = s.memfd_create("m", 2 * P)
    shared = p.mmap(0, 2 * P, RW, MAP_SHARED, fd)
    private = p.mmap(0, 2 * P, RW, MAP_PRIVATE, fd)
    p.store(shared, 0x41)
    assert p.load(private) == 0x41          # the page-cache page, mapped read-only
    p.store(private + P, 0x42)              # a COW copy: anonymous, not judged
    assert not _names(s.machine) & {"RMAP.file", "RMAP.private_file", "RMAP.chains"}
    assert p.madvise(shared, 2 * P, MADV_REMOVE) == 0
    assert not _names(s.machine) & {"RMAP.file", "RMAP.private_file", "RMAP.chains"}
    p.exit()
    assert not _names(s.machine) & {"RMAP.file", "RMAP.private_file", "RMAP.chains"}


def test_rmap_file_judges_a_page_left_mapped_after_it_left_the_cache():
    s = System()
    p = s.spawn()
    fd = s.memfd_create("m", P)
    f = s.file(fd)
    a = p.mmap(0, P, RW, MAP_SHARED, fd)
    p.store(a, 0x41)
    page = f.f_mapping.i_pages.pop(0)       # truncated behind the PTE's back
    page.mapping = None
    assert "RMAP.file" in _names(s.machine)


def test_rmap_file_judges_a_page_of_another_offset():
    s = System()
    p = s.spawn()
    fd = s.memfd_create("m", 2 * P)
    f = s.file(fd)
    a = p.mmap(0, 2 * P, RW, MAP_SHARED, fd)
    p.store(a, 0x41)
    p.store(a + P, 0x42)
    cache = f.f_mapping.i_pages
    cache[0], cache[1] = cache[1], cache[0]   # each PTE now maps the other index's page
    cache[0].index, cache[1].index = 0, 1
    assert "RMAP.file" in _names(s.machine)


def test_rmap_private_file_judges_a_writable_page_cache_pte_in_a_private_mapping():
    from unmapcheck.impl.pgtable import lookup_pte, ptep_get, set_pte_at
    from unmapcheck.impl.pte import pte_mkwrite
    s = System()
    p = s.spawn()
    fd = s.create_file("f", P)
    a = p.mmap(0, P, RW, MAP_PRIVATE, fd)
    assert p.load(a) == 0
    assert "RMAP.private_file" not in _names(s.machine)
    ptep = lookup_pte(p.mm, a)
    set_pte_at(p.mm, a, ptep, pte_mkwrite(ptep_get(ptep)))
    assert "RMAP.private_file" in _names(s.machine)


def test_a_cow_fault_that_reuses_a_page_cache_page_is_caught(monkeypatch):
    """do_wp_page() reusing a page-cache page in a private mapping (wp_page_reuse instead of
    wp_page_copy): the store writes the file."""
    from unmapcheck.impl import fault as F
    real = F.wp_page_copy

    def reuse(vmf):
        if vmf.page is not None and not F.folio_test_anon(vmf.page):
            vmf.pte, vmf.ptl = F.pte_offset_map_lock(vmf.vma.vm_mm, vmf.pmd, vmf.address)
            F.wp_page_reuse(vmf, None)
            F.folio_put(vmf.page)
            return 0
        return real(vmf)
    monkeypatch.setattr(F, "wp_page_copy", reuse)
    best = _first_violation("never-cow-fault-vs-cow-fault")
    assert best.violation.name == "RMAP.private_file", best


def test_rmap_chains_judges_a_vma_freed_while_still_on_its_anon_vma():
    s = System()
    p = s.spawn()
    a = p.mmap(0, 2 * P, RW, MAP_PRIVATE | MAP_ANONYMOUS)
    p.store(a, 0x41)
    vma = p.mm.mm_mt.vmas[0]
    p.mm.mm_mt.vmas.remove(vma)             # gone from the tree, still on vma->anon_vma
    assert "RMAP.chains" in _names(s.machine)


# --- the explorer catches broken kernel paths, with a trace -------------------------------------
def test_a_truncation_that_leaves_a_refaulted_page_mapped_is_caught(monkeypatch):
    """truncate_cleanup_folio() without its unmap: a fault that mapped the page again after
    the hole punch's unmap_mapping_range keeps it mapped after it left the page cache."""
    from unmapcheck.impl import filemap
    monkeypatch.setattr(filemap, "truncate_cleanup_folio",
                        lambda folio: filemap.folio_cancel_dirty(folio))
    name = "never-shmem-remove-vs-fault"
    sc = load(str(SCENARIOS / f"{name}.toml"))
    res = explore_scenario(sc, None, 300)
    verdict = judge(sc, res, name, 0.0)
    assert verdict.status == "FAILED", verdict.detail
    best = res.best()
    assert best.violation.name == "RMAP.file" and best.schedule, best.violation


SPLIT_THEN_MERGE = """
[scenario]
name = "split-then-merge"
cpus = 1

[[process]]
name = "p"
[[process.mapping]]
addr = 0x7f0000000000
pages = 2
prot = "rw"
populate = "write"

[[thread]]
name = "T0"
process = "p"
cpu = 0
program = [
  { op = "mprotect", addr = 0x7f0000000000, len = 0x1000, prot = "r" },
  { op = "mprotect", addr = 0x7f0000000000, len = 0x2000, prot = "r" },
]

[expect]
never = true
"""


def test_a_merge_that_leaves_the_removed_vma_on_its_anon_vma_is_caught(monkeypatch):
    """vma_complete() not unlinking the VMA a merge removes (unlink_anon_vmas skipped there
    only): the freed VMA stays on the anon_vma's interval tree."""
    from unmapcheck.impl import rmap
    real = rmap.unlink_anon_vmas

    def skipped_by_vma_complete(vma):
        if inspect.stack()[1].function == "vma_complete":
            return None
        return real(vma)
    sc = parse(SPLIT_THEN_MERGE)
    assert iterative_context_bounding(sc, 0).best() is None
    monkeypatch.setattr(rmap, "unlink_anon_vmas", skipped_by_vma_complete)
    best = iterative_context_bounding(sc, 0).best()
    assert best is not None and best.violation.name == "RMAP.chains", best
    assert best.schedule and "anon_vma" in best.violation.message


# --- LOST_WRITE.clean: a clean file page is what the disk has -----------------------------------
def test_lost_write_clean_judges_a_modified_page_left_clean():
    from unmapcheck.impl.page import PG_dirty
    from unmapcheck.impl.pgtable import lookup_pte, ptep_get, set_pte_at
    from unmapcheck.impl.pte import pte_mkclean
    s = System()
    p = s.spawn()
    fd = s.create_file("f", P)
    a = p.mmap(0, P, RW, MAP_SHARED, fd)
    p.store(a, 0x41)
    assert "LOST_WRITE.clean" not in _names(s.machine)      # dirty: owed to the disk
    page = s.file(fd).f_mapping.i_pages[0]
    page.flags &= ~PG_dirty
    assert "LOST_WRITE.clean" not in _names(s.machine)      # the PTE is still dirty
    ptep = lookup_pte(p.mm, a)
    set_pte_at(p.mm, a, ptep, pte_mkclean(ptep_get(ptep)))
    assert "LOST_WRITE.clean" in _names(s.machine)


def test_a_writeback_that_cleans_without_writing_is_caught(monkeypatch):
    """folio_clear_dirty_for_io() that clears the dirty bit but answers "was clean": the
    writeback skips the folio, whose stores are then never written."""
    from unmapcheck.impl import writeback
    real = writeback.folio_clear_dirty_for_io

    def cleans_but_says_clean(folio):
        real(folio)
        return False
    monkeypatch.setattr(writeback, "folio_clear_dirty_for_io", cleans_but_says_clean)
    best = _first_violation("never-writeback-vs-writeback")
    assert best.violation.name == "LOST_WRITE.clean", best


# --- LOST_WRITE.notify: write-notify mappings map only dirty pages writable ---------------------
def test_lost_write_notify_judges_a_writable_pte_to_a_clean_shared_file_page():
    from unmapcheck.impl.page import PG_dirty
    s = System()
    p = s.spawn()
    fd = s.create_file("f", P)
    a = p.mmap(0, P, RW, MAP_SHARED, fd)
    p.store(a, 0x41)                        # the write fault marks the page dirty
    assert "LOST_WRITE.notify" not in _names(s.machine)
    s.file(fd).f_mapping.i_pages[0].flags &= ~PG_dirty     # cleaned, PTE left writable
    assert "LOST_WRITE.notify" in _names(s.machine)


def test_a_writeback_whose_mkclean_skips_mapped_pages_is_caught(monkeypatch):
    """folio_mkclean() returning before its rmap walk: writeback cleans a page whose shared
    PTE stays writable, so the next store reaches it without a write fault."""
    from unmapcheck.impl import writeback
    monkeypatch.setattr(writeback, "folio_mkclean", lambda folio: 0)
    best = _first_violation("never-writeback-vs-writeback")
    assert best.violation.name == "LOST_WRITE.notify", best
