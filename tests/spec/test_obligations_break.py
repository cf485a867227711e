"""Each symbolic obligation of proofs/symbolic.py fails, with a counterexample, when its
target is broken on purpose; and every obligation is PROVED on the real implementation.

The breaks (monkeypatched for one test):
* impl:__split_vma_fields: the upper half does not advance its pgoff;
* impl:unmap_single_vma_range / impl:unmap_vmas(0, ULONG_MAX): the clipping treats end as
  inclusive (end_addr + 1, which wraps to 0 for ULONG_MAX: exit_mmap zaps nothing);
* impl:p*d_addr_end: the boundary comparison without the "- 1"s (no wrap-around at the top);
* impl:do_vmi_munmap_args: the "len > TASK_SIZE - start" check is missing;
* bounded:zap_pte_range: zap_nonpresent_ptes skips the migration entry's rss decrement (fix
  9f9f1acd713d off);
* bounded:mmu_gather: tlb_flush_mmu frees the batched pages before it flushes the TLB;
* inductive:<op>: the abstract operation is broken (see BREAKS below).
"""

from __future__ import annotations

import pytest
import z3

from unmapcheck.checker.prove import FAILED, PROVED, UNKNOWN, Options, run_obligation
from unmapcheck.impl import word
from unmapcheck.proofs import symbolic as P
from unmapcheck.spec import abstract as A

FAST = Options(bound=2, timeout=120)


def ob(name: str):
    hits = [o for o in P.OBLIGATIONS if o.name == name]
    assert hits, name
    return hits[0]


def expect_failed(name: str, opts: Options = FAST):
    r = run_obligation(ob(name), opts)
    assert r.status == FAILED, (r.status, r.detail)
    assert "vacuous" not in r.detail and "error while checking" not in r.detail, r.detail
    assert r.data.get("counterexample"), r
    return r


# --- implementation-level obligations ---------------------------------------------------------
def test_split_vma_fields_without_pgoff_carry(monkeypatch):
    from unmapcheck.impl import vma as V
    orig = getattr(V, "__split_vma_fields")

    def broken(vm_start, vm_end, vm_pgoff, addr, new_below):
        out = list(orig(vm_start, vm_end, vm_pgoff, addr, new_below))
        out[2] = word.ite(new_below, out[2], vm_pgoff)       # new (upper) keeps the old pgoff
        out[5] = word.ite(new_below, vm_pgoff, out[5])       # vma (upper) keeps it too
        return tuple(out)
    monkeypatch.setattr(V, "__split_vma_fields", broken)
    r = expect_failed("impl:__split_vma_fields")
    assert "I3.split" in r.detail or "I3.pgoff" in r.detail


def _inclusive_end(vma, start_addr, end_addr):
    start = word.umax(vma.vm_start, start_addr)
    end = word.umin(vma.vm_end, word.add(end_addr, 1))     # off by one, wraps for ULONG_MAX
    return word.land(word.ult(start, vma.vm_end), word.ult(vma.vm_start, end)), start, end


def test_unmap_single_vma_range_inclusive_end(monkeypatch):
    from unmapcheck.impl import zap
    monkeypatch.setattr(zap, "unmap_single_vma_range", _inclusive_end)
    expect_failed("impl:unmap_single_vma_range")


def test_unmap_vmas_ulong_max_wraps(monkeypatch):
    from unmapcheck.impl import zap
    monkeypatch.setattr(zap, "unmap_single_vma_range", _inclusive_end)
    r = expect_failed("impl:unmap_vmas(0, ULONG_MAX)")
    assert "every address of the VMA is zapped" in r.detail


@pytest.mark.parametrize("level", ["pgd", "pud", "pmd"])
def test_addr_end_without_wraparound(monkeypatch, level):
    from unmapcheck.impl import constants as C
    from unmapcheck.impl import pgtable
    size = {"pgd": C.PGDIR_SIZE, "pud": C.PUD_SIZE, "pmd": C.PMD_SIZE}[level]
    mask = {"pgd": C.PGDIR_MASK, "pud": C.PUD_MASK, "pmd": C.PMD_MASK}[level]

    def naive(addr, end):
        boundary = word.band(word.add(addr, size), mask)
        return word.ite(word.ult(boundary, end), boundary, end)    # no "- 1"s
    monkeypatch.setattr(pgtable, f"{level}_addr_end", naive)
    r = expect_failed(f"impl:{level}_addr_end")
    cex = r.data["counterexample"]
    assert "end=0x0," in cex or "next=0x0\n" in cex      # a wrap at the top of the space


def test_munmap_args_without_overflow_check(monkeypatch):
    from unmapcheck.impl import vma as V
    from unmapcheck.impl.constants import PAGE_MASK, PAGE_SIZE, TASK_SIZE

    def broken(start, len_):
        bad = word.lor(word.lnot(word.eq(word.band(start, PAGE_SIZE - 1), 0)),
                       word.ult(TASK_SIZE, start))
        end = word.add(start, word.band(word.add(len_, PAGE_SIZE - 1), PAGE_MASK))
        return word.lor(bad, word.eq(end, start)), end
    monkeypatch.setattr(V, "do_vmi_munmap_args", broken)
    expect_failed("impl:do_vmi_munmap_args")


# --- bounded obligations ----------------------------------------------------------------------
def test_zap_pte_range_without_migration_rss_fix(monkeypatch):
    from unmapcheck.impl import zap
    from unmapcheck.impl.fixes import resolve_commit
    fix = resolve_commit("9f9f1acd713d")
    orig = zap.zap_nonpresent_ptes

    def without_fix(tlb, *args):
        fx = tlb.mm.machine.fixes
        saved = fx.off
        fx.off = saved | {fix}
        try:
            return orig(tlb, *args)
        finally:
            fx.off = saved
    monkeypatch.setattr(zap, "zap_nonpresent_ptes", without_fix)
    r = expect_failed("bounded:zap_pte_range")
    assert "mig_" in r.detail and "I2.exact" in r.detail


def test_mmu_gather_free_before_flush(monkeypatch):
    from unmapcheck.impl import mmu_gather as G
    from unmapcheck.impl import zap

    def free_first(tlb):
        G.tlb_flush_mmu_free(tlb)
        G.tlb_flush_mmu_tlbonly(tlb)
    monkeypatch.setattr(G, "tlb_flush_mmu", free_first)
    monkeypatch.setattr(zap, "tlb_flush_mmu", free_first)
    r = expect_failed("bounded:mmu_gather")
    assert "I1.freed_frame" in r.detail


# --- inductive obligations: the abstract operations broken on purpose -------------------------
def _wrap(monkeypatch, op: str, corrupt):
    orig = A.OPS[op]

    def broken(pre, ch, **kw):
        T = orig(pre, ch, **kw)
        corrupt(T, kw)
        return T
    monkeypatch.setitem(A.OPS, op, broken)


def _forget_rss(T, kw):
    T.post.rss = {m: list(v) for m, v in T.pre.rss.items()}


def _keep_tlb(T, kw):
    T.post.tlb = dict(T.pre.tlb)


def _no_pgoff_carry(T, kw):
    m, i = kw["m"], kw["i"]
    T.post.vmas[m] = [r.replace(pgoff=T.pre.vmas[m][i].pgoff) for r in T.post.vmas[m]]
    T.events = [A._vma_change_event(T.pre, T.post, m, "split_vma")]


def _keep_mapcount(T, kw):
    T.post.frames = [f.replace(mapcount=p.mapcount) for f, p in zip(T.post.frames, T.pre.frames)]


def _dirty_tlb(T, kw):
    key = (kw["c"], kw["m"], kw["v"])
    T.post.tlb[key] = T.post.tlb[key].replace(dirty=True)


def _clean_pte(T, kw):
    key = (kw["m"], kw["v"])
    T.post.ptes[key] = T.post.ptes[key].replace(dirty=T.pre.ptes[key].dirty)


def _stale_walk_cache(T, kw):
    key = (kw["c"], kw["m"], kw["v"] >> 9)
    w = T.post.pwc[key]
    T.post.pwc[key] = w.replace(valid=True, gen=w.gen + 1)


def _stale_in_range(T, kw):
    for (c, m, v), r in list(T.post.tlb.items()):
        if m == kw["m"]:
            T.post.tlb[c, m, v] = r.replace(valid=True, pfn=r.pfn + 1)


BREAKS = {
    "munmap": ("the zap is skipped", lambda mp: mp.setattr(A, "_zap", lambda *a: None),
               "PTE_IN_VMA"),
    "madvise_dontneed": ("rss is not updated", lambda mp: _wrap(mp, "madvise_dontneed",
                                                                _forget_rss), "I2.exact"),
    "exit_mmap": ("the TLBs are not flushed", lambda mp: _wrap(mp, "exit_mmap", _keep_tlb), ""),
    "split_vma": ("pgoff is not carried over", lambda mp: _wrap(mp, "split_vma",
                                                                _no_pgoff_carry), "I3.pgoff"),
    "mprotect": ("the TLBs are not flushed", lambda mp: _wrap(mp, "mprotect", _keep_tlb), ""),
    "mmap": ("the old mappings are not removed", lambda mp: mp.setattr(
        A, "_carve", lambda pre, post, m, s, e, rel, newflags=None: 0), ""),
    "fault": ("mapcount is not updated", lambda mp: _wrap(mp, "fault", _keep_mapcount),
              "I4.exact"),
    "access_hit": ("a hit dirties the TLB entry", lambda mp: _wrap(mp, "access_hit", _dirty_tlb),
                   ""),
    "access_fill": ("a store's fill leaves the PTE clean", lambda mp: _wrap(
        mp, "access_fill", _clean_pte), ""),
    "segv": ("the walk caches a stale table", lambda mp: _wrap(mp, "segv", _stale_walk_cache),
             ""),
    "flush": ("the flush leaves wrong translations", lambda mp: _wrap(mp, "flush", _stale_in_range),
              ""),
}


@pytest.mark.parametrize("op", sorted(BREAKS))
def test_inductive_obligation_catches_a_broken_operation(monkeypatch, op):
    what, apply, must = BREAKS[op]
    apply(monkeypatch)
    r = expect_failed(f"inductive:{op}")
    assert must in r.detail, (what, r.detail)
    assert "before:" in r.data["counterexample"] and "after:" in r.data["counterexample"]


def test_every_symbolic_obligation_has_a_break_test():
    covered = {f"inductive:{op}" for op in BREAKS} | {
        "impl:__split_vma_fields", "impl:unmap_single_vma_range", "impl:unmap_vmas(0, ULONG_MAX)",
        "impl:pgd_addr_end", "impl:pud_addr_end", "impl:pmd_addr_end",
        "impl:do_vmi_munmap_args", "bounded:zap_pte_range", "bounded:mmu_gather"}
    assert {o.name for o in P.OBLIGATIONS} == covered


# --- vacuity and timeouts ---------------------------------------------------------------------
def test_vacuous_assumptions_are_failed_not_proved(monkeypatch):
    orig = A.well_formed
    monkeypatch.setattr(A, "well_formed", lambda S: orig(S) + [("WF.false", z3.BoolVal(False))])
    r = run_obligation(ob("inductive:munmap"), FAST)
    assert r.status == FAILED and "vacuous" in r.detail


def test_a_timeout_is_unknown_never_proved():
    for name in ("inductive:fault", "bounded:zap_pte_range"):
        r = run_obligation(ob(name), Options(bound=None, timeout=0.001))
        assert r.status == UNKNOWN, (name, r.status, r.detail)


# --- the real implementation ------------------------------------------------------------------
def test_every_symbolic_obligation_is_proved_on_the_real_implementation():
    for o in P.OBLIGATIONS:
        r = run_obligation(o, FAST)
        assert r.status == PROVED, (o.name, r.status, r.detail, r.data.get("counterexample"))


@pytest.mark.slow
def test_every_symbolic_obligation_is_proved_at_the_default_bounds():
    for o in P.OBLIGATIONS:
        r = run_obligation(o, Options(timeout=120))
        assert r.status == PROVED, (o.name, r.status, r.detail)
