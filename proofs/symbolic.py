"""The symbolic proof obligations of ``unmapcheck prove``.

Three kinds (docs/invariants.md explains each in kernel terms):

* ``inductive:<op>``: for every abstract state within the bound (``--bound N``: N pages in
  two PTE tables, N + 2 frames, 2 CPUs, 3 VMA slots, 2 mms), if the state satisfies every
  state invariant of spec/invariants.py (encoded through spec/symbolic.py's SymbolicView) and
  the abstract state's well-formedness, then so does the state after the abstract operation
  <op> of spec/abstract.py, and the invariants checked at the events the operation reports
  (I1.return, I1.flush, I3.split, I3.pgoff, EXIT_CLEAN) hold.
* ``impl:<function>``: the implementation's own function, run on z3 bit-vectors (impl/word.py),
  is correct for all 64-bit inputs: __split_vma_fields, unmap_single_vma_range,
  unmap_vmas with end = ULONG_MAX, pgd/pud/pmd_addr_end, do_vmi_munmap's argument checks.
* ``bounded:<what>``: a complete bounded check that runs the implementation on every case:
  zap_pte_range over every page table of N entries of every kind, and the mmu_gather protocol
  over every sequence of gather operations up to length N.

Every obligation first checks that its assumptions are satisfiable (a vacuous proof is
FAILED); a solver timeout or "unknown" is UNKNOWN, never PROVED. The impl functions are
looked up when the obligation runs, so a test can replace one (monkeypatch) and watch the
obligation fail.
"""

from __future__ import annotations

import itertools
import time
from typing import Any, Callable, Optional

import z3

from unmapcheck.checker.prove import FAILED, PROVED, UNKNOWN, Obligation, ObligationResult, Options

MASK64 = (1 << 64) - 1
DEFAULT_PAGES = 3
DEFAULT_ZAP_ENTRIES = 4
DEFAULT_GATHER_LENGTH = 5


# --- solver plumbing ------------------------------------------------------------------------------
class _Budget:
    def __init__(self, opts: Options):
        self.t0 = time.monotonic()
        self.timeout = opts.timeout if opts.timeout else 60.0

    def left_ms(self) -> int:
        return max(1, int((self.timeout - (time.monotonic() - self.t0)) * 1000))

    def expired(self) -> bool:
        return time.monotonic() - self.t0 >= self.timeout

    def elapsed(self) -> float:
        return time.monotonic() - self.t0


def _solver(budget: _Budget) -> z3.Solver:
    s = z3.Solver()
    s.set("timeout", budget.left_ms())
    return s


def _check(s: z3.Solver, budget: _Budget, *extra):
    s.set("timeout", budget.left_ms())
    return s.check(*extra)


def _result(name, kind, bound, status, budget, detail="", cex: Optional[str] = None, **data):
    d = dict(data)
    if cex:
        d["counterexample"] = cex
    return ObligationResult(name, kind, bound, status, budget.elapsed(), detail, d)


def _vacuity(s: z3.Solver, budget: _Budget, name: str, kind: str, bound: str,
             what: str) -> Optional[ObligationResult]:
    """None when the assumptions are satisfiable; else the FAILED/UNKNOWN result."""
    r = _check(s, budget)
    if r == z3.unsat:
        return _result(name, kind, bound, FAILED, budget,
                       f"vacuous: the assumptions ({what}) are unsatisfiable, so the proof "
                       f"would hold for no state at all")
    if r == z3.unknown:
        return _result(name, kind, bound, UNKNOWN, budget,
                       f"z3 could not decide whether the assumptions are satisfiable "
                       f"({s.reason_unknown()})")
    return None


# --- counterexample rendering -------------------------------------------------------------------
def _val(mdl, t):
    v = mdl.eval(t, model_completion=True)
    if z3.is_true(v):
        return True
    if z3.is_false(v):
        return False
    if z3.is_int_value(v):
        return v.as_long()
    if z3.is_bv_value(v):
        return v.as_long()
    return str(v)


def render_state(mdl, S, title: str) -> str:
    """The abstract state under a model, the way a kernel developer reads it."""
    from unmapcheck.impl.constants import RSS_COUNTER_NAMES
    from unmapcheck.impl.pte import KIND_NAMES
    lines = [f"{title}:"]
    for i, f in enumerate(S.frames):
        v = {k: _val(mdl, t) for k, t in f.f.items()}
        if v["free"]:
            continue
        kind = ("zero page" if i == 0 else "page table" if v["is_table"] else
                "anon" if v["anon"] else "page cache" if v["pagecache"] else "page")
        lines.append(f"  frame {i}: {kind} gen {v['gen']} refcount {v['refcount']} "
                     f"mapcount {v['mapcount']}" + (" dirty" if v["dirty"] else "") +
                     (" swapbacked" if v["swapbacked"] else ""))
    for (m, t), r in S.tables.items():
        if _val(mdl, r.valid):
            lines.append(f"  mm{m} PTE table {t}: frame {_val(mdl, r.pfn)}")
    for (m, v), p in S.ptes.items():
        k = _val(mdl, p.kind)
        if k == 0:
            continue
        name = KIND_NAMES[k] if isinstance(k, int) and 0 <= k < 4 else str(k)
        bits = [b for b in ("write", "dirty", "special") if _val(mdl, p.f[b])]
        lines.append(f"  mm{m} pte[page {v}]: {name} pfn {_val(mdl, p.pfn)} {' '.join(bits)}")
    for (c, m, v), r in S.tlb.items():
        if _val(mdl, r.valid):
            bits = [b for b in ("write", "dirty") if _val(mdl, r.f[b])]
            lines.append(f"  cpu{c} tlb mm{m} page {v} -> pfn {_val(mdl, r.pfn)} gen "
                         f"{_val(mdl, r.gen)} {' '.join(bits)}")
    for (c, m, t), r in S.pwc.items():
        if _val(mdl, r.valid):
            lines.append(f"  cpu{c} walk cache mm{m} table {t} -> pfn {_val(mdl, r.pfn)} gen "
                         f"{_val(mdl, r.gen)}")
    for m, vs in S.vmas.items():
        for i, r in enumerate(vs):
            if _val(mdl, r.valid):
                lines.append(f"  mm{m} vma[{i}]: pages [{_val(mdl, r.start)}, "
                             f"{_val(mdl, r.end)}) pgoff {_val(mdl, r.pgoff)} flags "
                             f"{_val(mdl, r.flags):#x}" + (" anon" if _val(mdl, r.anon) else ""))
        rss = ", ".join(f"{RSS_COUNTER_NAMES[k]}={_val(mdl, x)}" for k, x in enumerate(S.rss[m]))
        lines.append(f"  mm{m} rss: {rss}; map_count {_val(mdl, S.map_count[m])}")
    lines.append(f"  next_gen {_val(mdl, S.next_gen)}")
    return "\n".join(lines)


# --- inductive obligations ------------------------------------------------------------------------
def inductive_bounds(n: Optional[int]):
    from unmapcheck.spec.symbolic import Bounds
    n = DEFAULT_PAGES if n is None else max(1, n)
    first = 512 - n // 2          # the pages straddle a PTE-table boundary when n >= 2
    return Bounds(vpns=tuple(range(first, first + n)), nframes=n + 2, ncpus=2, nvmas=3, nmms=2)


def _op_instances(op: str, b) -> list[tuple[str, dict]]:
    """The operation's arguments: symbolic where they are values, and every slot where they
    are slots (mm 0 and CPU 0 stand for any by symmetry)."""
    s, e = z3.Ints("arg.s arg.e")
    w = z3.Bool("arg.write")
    if op in ("munmap", "madvise_dontneed", "flush"):
        return [("", dict(m=0, s=s, e=e))]
    if op == "mprotect":
        return [("", dict(m=0, s=s, e=e, prot=z3.BitVec("arg.prot", 64)))]
    if op == "mmap":
        return [("", dict(m=0, s=s, e=e, flags=z3.BitVec("arg.flags", 64),
                          pgoff=z3.Int("arg.pgoff"), anon=z3.Bool("arg.anon")))]
    if op == "exit_mmap":
        return [("", dict(m=0))]
    if op == "split_vma":
        return [("", dict(m=0, i=0, addr=s, new_below=z3.Bool("arg.new_below")))]
    if op == "fault":
        return [(f" at page {v}", dict(m=0, v=v, write=w)) for v in b.vpns]
    if op in ("access_hit", "access_fill", "access", "segv"):
        return [(f" at page {v}", dict(c=0, m=0, v=v, write=w)) for v in b.vpns]
    raise ValueError(op)


INDUCTIVE_OPS = ("munmap", "madvise_dontneed", "exit_mmap", "split_vma", "mprotect", "mmap",
                 "fault", "access_hit", "access_fill", "segv", "flush")


def run_inductive(op: str, opts: Options, name: Optional[str] = None) -> ObligationResult:
    from unmapcheck.spec import abstract as A
    from unmapcheck.spec import invariants as INV
    from unmapcheck.spec.symbolic import AbsState
    budget = _Budget(opts)
    b = inductive_bounds(opts.bound)
    name = name or f"inductive:{op}"
    bound = b.describe()
    checked = 0
    for where, args in _op_instances(op, b):
        pre = AbsState.fresh(b, "pre")
        ch = A.Choices("choice")
        T = A.OPS[op](pre, ch, **args)
        assume = A.encode_all(pre)
        s = _solver(budget)
        for _, t in assume:
            s.add(t)
        s.add(T.relation())
        bad = _vacuity(s, budget, name, "symbolic", bound,
                       f"the invariants and {op}'s precondition{where}")
        if bad is not None:
            return bad
        targets = A.encode_all(T.post)
        for kind, ev in T.events:
            for inv in INV.by_when(kind):
                targets.append((f"{inv.name} (at {kind})", A.encode(inv, T.post, ev)))
        for tname, t in targets:
            r = _check(s, budget, z3.Not(t))
            checked += 1
            if r == z3.sat:
                mdl = s.model()
                argtxt = ", ".join(f"{k}={_val(mdl, v) if isinstance(v, z3.ExprRef) else v}"
                                   for k, v in args.items())
                cex = (f"{op}({argtxt}) breaks {tname}\n" + render_state(mdl, pre, "before") +
                       "\n" + render_state(mdl, T.post, "after"))
                return _result(name, "symbolic", bound, FAILED, budget,
                               f"{op}{where} does not preserve {tname}", cex)
            if r == z3.unknown:
                return _result(name, "symbolic", bound, UNKNOWN, budget,
                               f"{tname}{where}: z3 gave up ({s.reason_unknown()})")
    return _result(name, "symbolic", bound, PROVED, budget,
                   f"{checked} invariant(s) preserved (state invariants of spec/invariants.py, "
                   f"WF.*, and the event invariants {op} reports)")


# --- implementation-level obligations (all 64-bit inputs) --------------------------------------
def _bv(name: str):
    return z3.BitVec(name, 64)


def _aligned(x):
    return (x & 0xFFF) == 0


def _prove_valid(name: str, budget: _Budget, assumptions: list, goals: list[tuple[str, Any]],
                 show: list[tuple[str, Any]], what: str, bound: str = "all 64-bit inputs"
                 ) -> ObligationResult:
    s = _solver(budget)
    s.add(*assumptions)
    bad = _vacuity(s, budget, name, "symbolic", bound, what)
    if bad is not None:
        return bad
    for gname, g in goals:
        r = _check(s, budget, z3.Not(g))
        if r == z3.sat:
            mdl = s.model()
            vals = ", ".join(f"{k}={_val(mdl, v):#x}" if isinstance(_val(mdl, v), int) and
                             not isinstance(_val(mdl, v), bool) else f"{k}={_val(mdl, v)}"
                             for k, v in show)
            return _result(name, "symbolic", bound, FAILED, budget,
                           f"{gname} fails for {vals}", f"counterexample: {vals}\nfails: {gname}")
        if r == z3.unknown:
            return _result(name, "symbolic", bound, UNKNOWN, budget,
                           f"{gname}: z3 gave up ({s.reason_unknown()})")
    return _result(name, "symbolic", bound, PROVED, budget,
                   f"{len(goals)} propert{'y' if len(goals) == 1 else 'ies'} proved")


def run_split_vma_fields(opts: Options) -> ObligationResult:
    """__split_vma's field arithmetic: both halves non-empty, their union is the old range,
    pgoff carries over (I3.split and I3.pgoff, evaluated on the impl's outputs)."""
    from unmapcheck.impl import vma as V
    from unmapcheck.spec import invariants as INV
    from unmapcheck.spec.logic import z3_logic
    from unmapcheck.spec.symbolic import Word
    budget = _Budget(opts)
    name = "impl:__split_vma_fields"
    fields = getattr(V, "__split_vma_fields")
    vs, ve, pg, addr, fl = _bv("vm_start"), _bv("vm_end"), _bv("vm_pgoff"), _bv("addr"), \
        _bv("vm_flags")
    nb = z3.Bool("new_below")
    ns, ne, npg, ks, ke, kpg = fields(vs, ve, pg, addr, nb)
    W = Word

    def rec(s, e, p):
        return {"start": W(s), "end": W(e), "pgoff": W(p), "flags": W(fl)}
    new, kept = rec(ns, ne, npg), rec(ks, ke, kpg)
    low = {k: W(z3.If(nb, new[k].t, kept[k].t)) for k in new}
    high = {k: W(z3.If(nb, kept[k].t, new[k].t)) for k in new}
    old = rec(vs, ve, pg)
    B = z3_logic()
    ev_split = {"old": old, "low": low, "high": high, "addr": W(addr)}
    ev_change = {"what": "split_vma", "old": [old], "new": [low, high]}
    goals = [("I3.split", INV.REGISTRY["I3.split"].holds(None, B, ev_split)),
             ("I3.pgoff", INV.REGISTRY["I3.pgoff"].holds(None, B, ev_change))]
    # __split_vma's WARN_ONs: vm_start < addr < vm_end; VMAs and addr are page aligned.
    assume = [z3.ULT(vs, addr), z3.ULT(addr, ve), _aligned(vs), _aligned(ve), _aligned(addr)]
    return _prove_valid(name, budget, assume, goals,
                        [("vm_start", vs), ("vm_end", ve), ("vm_pgoff", pg), ("addr", addr),
                         ("new_below", nb)], "vm_start < addr < vm_end, page aligned")


def run_unmap_single_vma_range(opts: Options) -> ObligationResult:
    """unmap_single_vma's clipping: for every VMA and every range, the addresses zapped are
    exactly those of the VMA inside the range, and a non-empty result is a proper range
    (unmap_page_range's BUG_ON(addr >= end) cannot fire)."""
    from unmapcheck.impl import zap as Z
    budget = _Budget(opts)
    name = "impl:unmap_single_vma_range"
    vs, ve, sa, ea, a = _bv("vm_start"), _bv("vm_end"), _bv("start_addr"), _bv("end_addr"), \
        _bv("a")

    class Vma:
        vm_start, vm_end = vs, ve
    ok, start, end = Z.unmap_single_vma_range(Vma, sa, ea)
    ok = ok if isinstance(ok, z3.BoolRef) else z3.BoolVal(bool(ok))
    zapped = z3.And(ok, z3.ULE(start, a), z3.ULT(a, end))
    wanted = z3.And(z3.ULE(vs, a), z3.ULT(a, ve), z3.ULE(sa, a), z3.ULT(a, ea))
    goals = [("zapped(a) <=> a in the VMA and in [start_addr, end_addr)", zapped == wanted),
             ("ok => start < end", z3.Implies(ok, z3.ULT(start, end)))]
    assume = [z3.ULT(vs, ve), z3.ULT(sa, ea)]
    return _prove_valid(name, budget, assume, goals,
                        [("vm_start", vs), ("vm_end", ve), ("start_addr", sa),
                         ("end_addr", ea), ("a", a)], "vm_start < vm_end, start_addr < end_addr")


def run_unmap_vmas_ulong_max(opts: Options) -> ObligationResult:
    """exit_mmap's unmap_vmas(tlb, vmi, vma, 0, ULONG_MAX, ULONG_MAX): every address of
    every VMA is zapped (seed 001: "Use -1 here to ensure all VMAs in the mm are unmapped").
    The impl's unmap_vmas runs with symbolic VMA bounds; the iterator records the bound it is
    asked for (VmaIterator.vma_find(max) returns the VMAs that start below max)."""
    from unmapcheck.impl import zap as Z
    from unmapcheck.impl.constants import ULONG_MAX
    budget = _Budget(opts)
    name = "impl:unmap_vmas(0, ULONG_MAX)"
    vs, ve, a, ns = _bv("vm_start"), _bv("vm_end"), _bv("a"), _bv("next_vm_start")

    class Vma:
        vm_start, vm_end = vs, ve
    calls, bounds = [], []

    class Vmi:
        def vma_find(self, max_addr):
            bounds.append(max_addr)
            return None
    saved = Z.unmap_single_vma
    try:
        Z.unmap_single_vma = lambda tlb, vma, s, e, d, w: calls.append(
            Z.unmap_single_vma_range(vma, s, e))
        Z.unmap_vmas(None, Vmi(), Vma, 0, ULONG_MAX, ULONG_MAX, False)
    finally:
        Z.unmap_single_vma = saved
    if len(calls) != 1 or len(bounds) != 1:
        return _result(name, "symbolic", "all 64-bit inputs", FAILED, budget,
                       f"unmap_vmas made {len(calls)} zap call(s) and {len(bounds)} iterator "
                       f"lookups for one VMA")
    ok, start, end = calls[0]
    ok = ok if isinstance(ok, z3.BoolRef) else z3.BoolVal(bool(ok))
    mx = bounds[0] if isinstance(bounds[0], z3.BitVecRef) else z3.BitVecVal(bounds[0], 64)
    goals = [("every address of the VMA is zapped",
              z3.Implies(z3.And(z3.ULE(vs, a), z3.ULT(a, ve)),
                         z3.And(ok, z3.ULE(start, a), z3.ULT(a, end)))),
             ("nothing outside the VMA is zapped",
              z3.Implies(z3.And(ok, z3.ULE(start, a), z3.ULT(a, end)),
                         z3.And(z3.ULE(vs, a), z3.ULT(a, ve)))),
             ("the iterator reaches every later VMA", z3.ULT(ns, mx))]
    assume = [z3.ULT(vs, ve), _aligned(vs), _aligned(ve), _aligned(ns), z3.ULE(ve, ns),
              ns != 0]
    return _prove_valid(name, budget, assume, goals,
                        [("vm_start", vs), ("vm_end", ve), ("a", a), ("next_vm_start", ns)],
                        "page-aligned VMAs, the next one above the first")


def run_addr_end(level: str, opts: Options) -> ObligationResult:
    """p*d_addr_end: the step of the page-table walk loops (``next = p*d_addr_end(addr, end);
    ...; addr = next; if addr == end break``). For all 64-bit addr < end, or end == 0 (the
    top of the address space, which the "- 1" comparisons are there for): the step advances
    (0 < next - addr), never past end (next - addr <= end - addr, in the wrapped order), stays
    in one table entry, stops at the entry's boundary or at end, and leaves the loop's
    precondition true for next. By induction on end - addr, the walk visits exactly
    [start, end), entry by entry, and terminates."""
    from unmapcheck.impl import constants as C
    from unmapcheck.impl import pgtable as PT
    budget = _Budget(opts)
    fn = getattr(PT, f"{level}_addr_end")
    size = {"pgd": C.PGDIR_SIZE, "pud": C.PUD_SIZE, "pmd": C.PMD_SIZE}[level]
    mask = {"pgd": C.PGDIR_MASK, "pud": C.PUD_MASK, "pmd": C.PMD_MASK}[level]
    addr, end = _bv("addr"), _bv("end")
    nxt = fn(addr, end)
    nxt = nxt if isinstance(nxt, z3.BitVecRef) else z3.BitVecVal(nxt, 64)
    k, d = nxt - addr, end - addr
    m = z3.BitVecVal(mask, 64)
    goals = [("progress: next != addr", k != 0),
             ("never past end: next - addr <= end - addr", z3.ULE(k, d)),
             ("one entry: [addr, next) lies in one table entry",
              z3.And(z3.ULE(k, size), (addr & m) == ((nxt - 1) & m))),
             ("maximal: next is end or the next entry's start",
              z3.Or(nxt == end, (nxt & ~m) == 0)),
             ("the loop condition holds again: next == end, or next < end, or end is the top",
              z3.Or(nxt == end, z3.ULT(nxt, end), end == 0))]
    # The walks' precondition: a non-empty [addr, end), where end == 0 is the top of the
    # address space (the kernel's callers never pass a range that wraps elsewhere).
    pre = [addr != end, z3.Or(z3.ULT(addr, end), end == 0)]
    return _prove_valid(f"impl:{level}_addr_end", budget, pre, goals,
                        [("addr", addr), ("end", end), ("next", nxt)],
                        "addr < end, or end == 0 (the top)")


def run_munmap_args(opts: Options) -> ObligationResult:
    """do_vmi_munmap's argument checks: a (start, len) is accepted exactly when start is page
    aligned and [start, start + len) is a non-empty range of user space, computed without
    wrapping; an accepted one unmaps exactly [start, start + PAGE_ALIGN(len))."""
    from unmapcheck.impl import vma as V
    from unmapcheck.impl.constants import TASK_SIZE
    budget = _Budget(opts)
    name = "impl:do_vmi_munmap_args"
    fn = getattr(V, "do_vmi_munmap_args")
    start, ln = _bv("start"), _bv("len")
    invalid, end = fn(start, ln)
    invalid = invalid if isinstance(invalid, z3.BoolRef) else z3.BoolVal(bool(invalid))
    end = end if isinstance(end, z3.BitVecRef) else z3.BitVecVal(end, 64)
    S, L, E = z3.ZeroExt(2, start), z3.ZeroExt(2, ln), z3.ZeroExt(2, end)   # no wrapping
    T = z3.BitVecVal(TASK_SIZE, 66)
    roundup = (L + 0xFFF) & ~z3.BitVecVal(0xFFF, 66)
    accept = z3.And(_aligned(start), z3.ULE(S, T), L != 0, z3.ULE(S + L, T))
    goals = [("accepted exactly when aligned, non-empty and inside user space without wrapping",
              z3.Not(invalid) == accept),
             ("an accepted call unmaps exactly [start, start + PAGE_ALIGN(len))",
              z3.Implies(z3.Not(invalid), z3.And(E == S + roundup, z3.ULT(S, E), z3.ULE(E, T),
                                                 _aligned(end))))]
    return _prove_valid(name, budget, [], goals, [("start", start), ("len", ln), ("end", end)],
                        "none")


# --- bounded: zap_pte_range ---------------------------------------------------------------------
ZAP_KINDS = ("none", "anon", "file", "file_dirty", "shmem", "zero", "swap", "mig_anon",
             "mig_file")


def _zap_case(kinds: tuple, small_batches: bool = True):
    """A machine with one mm, one private file VMA over len(kinds) pages, and a page table
    whose entries are *kinds*; TLBs of both CPUs hold the present entries. Returns
    (machine, mm, vma, base). The VMA maps a memfd when *kinds* has a shmem page and a
    regular file otherwise, and every file page is its file's page of the index the VMA maps
    there (RMAP.file): with a shmem page, "file" and "file_dirty" are clean and dirty shmem
    pages."""
    from unmapcheck.impl import cpu as hw
    from unmapcheck.impl import rmap
    from unmapcheck.impl.constants import (MM_SWAPENTS, PAGE_SIZE, VM_MAYREAD, VM_MAYWRITE,
                                           VM_READ, VM_WRITE)
    from unmapcheck.impl.filemap import File
    from unmapcheck.impl.machine import Machine
    from unmapcheck.impl.mm_types import inc_mm_counter, mm_counter, mm_struct, vm_area_struct
    from unmapcheck.impl.page import PG_locked, PG_lru, PG_swapbacked, PG_uptodate, folio_get
    from unmapcheck.impl.pgtable import (p4d_offset, pgd_offset, pmd_alloc, pte_alloc,
                                         pte_offset_map, pud_alloc, set_pte_at)
    from unmapcheck.impl.pte import (make_migration_entry, pfn_pte, pte_mkspecial,
                                     swp_entry_to_pte)
    base = 0x7F0000000000
    n = len(kinds)
    m = Machine(cpus=2)
    if small_batches:
        # Two pages per batch and two batches: the force_flush path of zap_pte_range (flush,
        # then retry the rest of the table) is taken within a few entries.
        m.tunables.gather_bundle = 3
        m.tunables.gather_batch = 3
        m.tunables.gather_batch_count = 1
    mm = mm_struct(m)
    for c in m.cpus:
        hw.switch_mm(c, mm)
    regular = File(m, "file", n * PAGE_SIZE, shmem=False)
    shm = File(m, "shm", n * PAGE_SIZE, shmem=True)
    backing = shm if "shmem" in kinds else regular
    vma = vm_area_struct(mm, base, base + n * PAGE_SIZE,
                         VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE, 0, backing)
    mm.mm_mt.store(vma)
    mm.map_count = 1
    assert rmap.anon_vma_prepare(vma) == 0

    def install(addr, pte):
        pgdp = pgd_offset(mm, addr)
        pmdp = pmd_alloc(mm, pud_alloc(mm, p4d_offset(pgdp, addr), addr), addr)
        pte_alloc(mm, pmdp)
        set_pte_at(mm, addr, pte_offset_map(pmdp, addr), pte)

    def cache_page(f, index):
        page = m.zone.alloc_page("file")          # refcount 1: the page cache's reference
        page.mapping = f.f_mapping
        page.index = index
        page.flags |= PG_lru | PG_uptodate | (PG_swapbacked if f.shmem else 0)
        f.f_mapping.i_pages[index] = page
        return page

    for i, k in enumerate(kinds):
        addr = base + i * PAGE_SIZE
        if k == "none":
            continue
        if k in ("anon", "mig_anon"):
            page = m.zone.alloc_page("anon")      # refcount 1: the PTE's (or migration's)
            page.flags |= PG_lru | PG_swapbacked
            rmap.folio_add_new_anon_rmap(page, vma, addr)
            inc_mm_counter(mm, mm_counter(page))
            if k == "anon":
                install(addr, pfn_pte(page.pfn, write=True, dirty=True))
            else:   # try_to_migrate: the rmap goes, the counter and a reference stay
                page.flags |= PG_locked           # (migrate_pages holds the folio locked)
                rmap.folio_remove_rmap_ptes(page, page, 1, vma)
                install(addr, make_migration_entry(page.pfn, True))
        elif k in ("file", "file_dirty", "shmem", "mig_file"):
            page = cache_page(backing, i)
            folio_get(page)                       # the PTE's (or migration's) reference
            inc_mm_counter(mm, mm_counter(page))
            if k == "mig_file":
                page.flags |= PG_locked
                install(addr, make_migration_entry(page.pfn, False))
            else:
                rmap.folio_add_file_rmap_ptes(page, page, 1, vma)
                # Read-only: a private mapping never maps a page-cache page writable
                # (RMAP.private_file); the dirty bit is what zap transfers to the page.
                install(addr, pfn_pte(page.pfn, write=False, dirty=k != "file"))
        elif k == "zero":
            install(addr, pte_mkspecial(pfn_pte(m.zone.zero_page.pfn, write=False)))
        elif k == "swap":
            slot = 1 + len(m.swap.swap_map)
            m.swap.swap_map[slot] = 1            # one PTE references it
            m.swap.data[slot] = {}
            install(addr, swp_entry_to_pte(slot))
            inc_mm_counter(mm, MM_SWAPENTS)
    for i, k in enumerate(kinds):
        if k in ("anon", "file", "file_dirty", "shmem", "zero"):
            for c in m.cpus:
                entry = hw.mmu_translate(c, mm, base + i * PAGE_SIZE, False)
                hw.mmu_access_data(c, mm, base + i * PAGE_SIZE, entry, False)
    return m, mm, vma, base


def _state_violations(m) -> list[str]:
    """Every state invariant, judged with no thread in the kernel (spec/check.py)."""
    from unmapcheck.spec import check as CHECK
    from unmapcheck.spec.view import ConcreteView
    S = ConcreteView(m)
    return [f"{f.name}: {f.message}" for moment in ("step", "quiescent")
            for f in CHECK.violations(S, moment)]


class _StepChecker:
    """A sequential runtime for impl/sched.py that judges the state after every step (at the
    next scheduling point, with the step's writes as the explorer passes them) and every
    event the model reports, through spec/check.py as the explorer does; the first
    violation is kept."""

    def __init__(self, machine):
        self.m = machine
        self.bad: Optional[str] = None
        self.last = "start"
        self.changed: Optional[set] = None

    def point(self, label, reads=(), writes=(), wait=None, adds=()):
        from unmapcheck.impl import sched
        if wait is not None and not wait():
            raise sched.Deadlock(f"{label} would sleep forever (sequential run)")
        self._check("step", None)
        self.last = label
        self.changed = {o[0] for o in writes} | {o[0] for o in adds}

    def event(self, kind, info):
        self._check(kind, info)

    def _check(self, moment, info) -> None:
        if self.bad is not None:
            return
        from unmapcheck.spec import check as CHECK
        from unmapcheck.spec.view import ConcreteView
        S = ConcreteView(self.m)
        found = CHECK.violations(S, moment, info, changed=self.changed if moment == "step"
                                 else None, quiet_mms=[], all_quiet=False)
        if found:
            self.bad = f"after {self.last}: {found[0].name}: {found[0].message}"


class _installed:
    """Install a runtime for the duration of a with-block, restoring what was there."""

    def __init__(self, rt):
        self.rt = rt

    def __enter__(self):
        from unmapcheck.impl import sched
        self.prev_rt, self.prev_cur = sched.RT, sched.current()
        sched.RT = self.rt
        return self.rt

    def __exit__(self, *exc):
        from unmapcheck.impl import sched
        sched.RT = self.prev_rt
        sched.set_current(self.prev_cur)
        return False


def run_zap_pte_range(opts: Options) -> ObligationResult:
    """zap_pte_range over every page table of N entries (each none, a present anonymous,
    clean file, dirty file or shmem page, the zero page, a swap entry, or a migration entry
    of an anonymous or a file page): afterwards every PTE of the range is none, and the rss
    counters and every page's mapcount are exact (I2, I4), no page was reported bad, and no
    TLB reaches a freed page (I1). The impl's zap chain runs (unmap_page_range ->
    zap_pte_range -> zap_present_ptes / zap_nonpresent_ptes) with two-page gather batches, so
    the forced flush and retry path is taken too."""
    from unmapcheck.impl import sched
    from unmapcheck.impl import zap as Z
    from unmapcheck.impl.constants import PAGE_SIZE
    from unmapcheck.impl.mmu_gather import mmu_gather, tlb_finish_mmu, tlb_gather_mmu
    from unmapcheck.impl.pgtable import iter_ptes
    budget = _Budget(opts)
    n = DEFAULT_ZAP_ENTRIES if opts.bound is None else max(1, opts.bound)
    name = "bounded:zap_pte_range"
    bound = f"tables of {n} entries x {len(ZAP_KINDS)} kinds ({len(ZAP_KINDS) ** n} tables)"
    count = 0
    for kinds in itertools.product(ZAP_KINDS, repeat=n):
        if budget.expired():
            return _result(name, "bounded", bound, UNKNOWN, budget,
                           f"time budget spent after {count} of {len(ZAP_KINDS) ** n} tables")
        prev = sched.current()
        try:
            m, mm, vma, base = _zap_case(kinds)
        finally:
            sched.set_current(prev)
        before = _state_violations(m)
        if before:
            return _result(name, "bounded", bound, FAILED, budget,
                           f"the test table {kinds} is not a consistent state: {before[0]}")
        checker = _StepChecker(m)
        try:
            with _installed(checker):
                tlb = mmu_gather()
                tlb_gather_mmu(tlb, mm)
                Z.unmap_page_range(tlb, vma, base, base + n * PAGE_SIZE, None)
                tlb_finish_mmu(tlb)
        except Exception as e:
            return _result(name, "bounded", bound, FAILED, budget,
                           f"zapping {kinds} raised {type(e).__name__}: {e}",
                           f"page table: {list(kinds)}")
        count += 1
        problems = ([checker.bad] if checker.bad else []) + _state_violations(m)
        left = [(hex(a), p) for a, p, _ in iter_ptes(mm)]
        if left:
            problems.append(f"PTEs left after the zap: {left}")
        problems += [line for line in m.dmesg if "Bad page map" in line]
        if problems:
            return _result(name, "bounded", bound, FAILED, budget,
                           f"zapping the page table {list(kinds)}: {problems[0]}",
                           f"page table: {list(kinds)}\n" + "\n".join(problems))
    return _result(name, "bounded", bound, PROVED, budget,
                   f"all {count} page tables zapped with exact rss and mapcount")


# --- bounded: the mmu_gather protocol -------------------------------------------------------------
GATHER_CONFIGS = (("x86", False), ("arm64", False), ("x86", True))
NPAGES_GATHER = 3


def _gather_case(arch: str):
    from unmapcheck.impl import cpu as hw
    from unmapcheck.impl import rmap
    from unmapcheck.impl.constants import (MM_ANONPAGES, PAGE_SIZE, VM_MAYREAD, VM_MAYWRITE,
                                           VM_READ, VM_WRITE)
    from unmapcheck.impl.machine import Machine
    from unmapcheck.impl.mm_types import inc_mm_counter, mm_struct, vm_area_struct
    from unmapcheck.impl.page import PG_lru, PG_swapbacked
    from unmapcheck.impl.pgtable import (p4d_offset, pgd_offset, pmd_alloc, pte_alloc,
                                         pte_offset_map, pud_alloc, set_pte_at)
    from unmapcheck.impl.pte import pfn_pte
    base = 0x7F0000000000
    m = Machine(cpus=2, arch=arch)
    m.tunables.gather_bundle = 3
    m.tunables.gather_batch = 3
    m.tunables.gather_batch_count = 1
    mm = mm_struct(m)
    for c in m.cpus:
        hw.switch_mm(c, mm)
    vma = vm_area_struct(mm, base, base + NPAGES_GATHER * PAGE_SIZE,
                         VM_READ | VM_WRITE | VM_MAYREAD | VM_MAYWRITE, base >> 12)
    mm.mm_mt.store(vma)
    mm.map_count = 1
    assert rmap.anon_vma_prepare(vma) == 0
    pmds = []
    for i in range(NPAGES_GATHER):
        addr = base + i * PAGE_SIZE
        page = m.zone.alloc_page("anon")
        page.flags |= PG_lru | PG_swapbacked
        rmap.folio_add_new_anon_rmap(page, vma, addr)
        inc_mm_counter(mm, MM_ANONPAGES)
        pgdp = pgd_offset(mm, addr)
        pmdp = pmd_alloc(mm, pud_alloc(mm, p4d_offset(pgdp, addr), addr), addr)
        pte_alloc(mm, pmdp)
        set_pte_at(mm, addr, pte_offset_map(pmdp, addr), pfn_pte(page.pfn, write=True,
                                                                  dirty=True))
        pmds.append(pmdp)
        for c in m.cpus:
            entry = hw.mmu_translate(c, mm, addr, True)
            hw.mmu_access_data(c, mm, addr, entry, True, 1)
    return m, mm, vma, base, pmds[0]


def _gather_sequences(length: int, budget: Optional[_Budget] = None):
    """Every sequence of gather operations up to *length*: zap page i (each page once),
    tlb_flush_mmu, tlb_flush_mmu_tlbonly, free_pgtables (once, after every page is zapped).
    Stops early when *budget* is spent (most candidates are filtered out, so the budget is
    checked between candidates, not only between the sequences yielded)."""
    alphabet = [f"zap{i}" for i in range(NPAGES_GATHER)] + ["flush", "tlbonly", "free_pgtables"]
    for n in range(length + 1):
        for seq in itertools.product(alphabet, repeat=n):
            if budget is not None and budget.expired():
                return
            zaps = [x for x in seq if x.startswith("zap")]
            if len(zaps) != len(set(zaps)) or seq.count("free_pgtables") > 1:
                continue
            if "free_pgtables" in seq:
                i = seq.index("free_pgtables")
                if len(set(x for x in seq[:i] if x.startswith("zap"))) != NPAGES_GATHER:
                    continue
            yield seq


def _run_gather(arch: str, fullmm: bool, seq: tuple) -> Optional[str]:
    """Run one sequence; the first violation (I1.freed_frame, I1.freed_table, or a frame
    left unfreed or still reachable at the end), or None."""
    from unmapcheck.impl import sched
    prev = sched.current()
    try:
        m, mm, vma, base, pmd = _gather_case(arch)
    finally:
        sched.set_current(prev)
    pages = [mm.zone.pfn_to_page(p.pte.pfn) for p in _ptes(m)]
    checker = _StepChecker(m)
    try:
        with _installed(checker):
            bad = _gather_ops(m, mm, vma, base, pmd, fullmm, seq, checker)
    except Exception as e:
        return f"{type(e).__name__}: {e}"
    if bad:
        return bad
    zapped = {int(x[3:]) for x in seq if x.startswith("zap")}
    for i in sorted(zapped):
        if not pages[i].free:
            return f"page {i} (pfn {pages[i].pfn}) was zapped but not freed after tlb_finish_mmu"
    if mm.tlb_flush_pending != 0:
        return f"tlb_flush_pending is {mm.tlb_flush_pending} after tlb_finish_mmu"
    return None


def _gather_ops(m, mm, vma, base, pmd, fullmm, seq, checker) -> Optional[str]:
    from unmapcheck.impl import mmu_gather as G
    from unmapcheck.impl import zap as Z
    from unmapcheck.impl.constants import FIRST_USER_ADDRESS, PAGE_SIZE, USER_PGTABLES_CEILING
    from unmapcheck.impl.free_pgtables import free_pgtables
    from unmapcheck.impl.mm_types import VmaIterator
    tlb = G.mmu_gather()
    (G.tlb_gather_mmu_fullmm if fullmm else G.tlb_gather_mmu)(tlb, mm)
    for op in seq + ("finish",):
        if op.startswith("zap"):
            i = int(op[3:])
            Z.zap_pte_range(tlb, vma, pmd, base + i * PAGE_SIZE, base + (i + 1) * PAGE_SIZE,
                            None)
        elif op == "flush":
            G.tlb_flush_mmu(tlb)
        elif op == "tlbonly":
            G.tlb_flush_mmu_tlbonly(tlb)
        elif op == "free_pgtables":
            # mm_wr_locked false: the harness holds no mmap_lock (as munmap's downgraded
            # path, whose VMAs were write-locked and detached before); it only decides
            # whether free_pgtables() write-locks each VMA.
            free_pgtables(tlb, VmaIterator(mm.mm_mt, vma.vm_end), vma, FIRST_USER_ADDRESS,
                          USER_PGTABLES_CEILING, False)
        else:
            G.tlb_finish_mmu(tlb)
        checker.point(f"end of {op}")
        if checker.bad:
            return f"in {'tlb_finish_mmu' if op == 'finish' else op}: {checker.bad}"
    return None


def _ptes(m):
    from unmapcheck.spec.view import ConcreteView
    return ConcreteView(m).ptes()


def run_mmu_gather(opts: Options) -> ObligationResult:
    """The mmu_gather protocol: over every sequence of gather operations up to length N (zap
    a page through zap_pte_range, tlb_flush_mmu, tlb_flush_mmu_tlbonly, free_pgtables), on
    x86 and arm64 with a range gather and on x86 with a fullmm gather, with both CPUs caching
    every page and the page table: after every operation and after tlb_finish_mmu, no TLB
    entry reaches a freed page and no walk-cache entry a freed page table (I1.freed_frame,
    I1.freed_table); after tlb_finish_mmu every zapped page is freed and tlb_flush_pending is
    back to 0. (A fullmm gather on arm64 skips the flush by design: it is only used when no
    CPU can run the mm, which this setup violates on purpose, see bug 687cb0884a71.)"""
    budget = _Budget(opts)
    length = DEFAULT_GATHER_LENGTH if opts.bound is None else max(0, opts.bound)
    name = "bounded:mmu_gather"
    bound = f"sequences of <= {length} ops x {len(GATHER_CONFIGS)} configs"
    count = 0
    for arch, fullmm in GATHER_CONFIGS:
        for seq in _gather_sequences(length, budget):
            if budget.expired():
                return _result(name, "bounded", bound, UNKNOWN, budget,
                               f"time budget spent after {count} sequences")
            bad = _run_gather(arch, fullmm, seq)
            count += 1
            if bad:
                g = "tlb_gather_mmu_fullmm" if fullmm else "tlb_gather_mmu"
                text = f"{arch}, {g}: {' ; '.join(seq + ('tlb_finish_mmu',))}"
                return _result(name, "bounded", bound, FAILED, budget, f"{text}: {bad}",
                               f"sequence: {text}\n{bad}")
    if budget.expired():
        return _result(name, "bounded", bound, UNKNOWN, budget,
                       f"time budget spent after {count} sequences")
    return _result(name, "bounded", bound, PROVED, budget,
                   f"{count} gather sequences, no page or table freed before its flush")


# --- the list -------------------------------------------------------------------------------------
def _ob(name: str, kind: str, bound: str, fn: Callable[[Options], ObligationResult]) -> Obligation:
    return Obligation(name, kind, bound, fn)


def _inductive(op: str) -> Obligation:
    b = inductive_bounds(None)
    return _ob(f"inductive:{op}", "symbolic", b.describe(),
               lambda opts, op=op: run_inductive(op, opts))


OBLIGATIONS: list[Obligation] = (
    [_inductive(op) for op in INDUCTIVE_OPS] +
    [_ob("impl:__split_vma_fields", "symbolic", "all 64-bit inputs", run_split_vma_fields),
     _ob("impl:unmap_single_vma_range", "symbolic", "all 64-bit inputs",
         run_unmap_single_vma_range),
     _ob("impl:unmap_vmas(0, ULONG_MAX)", "symbolic", "all 64-bit inputs",
         run_unmap_vmas_ulong_max)] +
    [_ob(f"impl:{lv}_addr_end", "symbolic", "all 64-bit inputs",
         lambda opts, lv=lv: run_addr_end(lv, opts)) for lv in ("pgd", "pud", "pmd")] +
    [_ob("impl:do_vmi_munmap_args", "symbolic", "all 64-bit inputs", run_munmap_args),
     _ob("bounded:zap_pte_range", "bounded",
         f"tables of {DEFAULT_ZAP_ENTRIES} entries x {len(ZAP_KINDS)} kinds", run_zap_pte_range),
     _ob("bounded:mmu_gather", "bounded", f"sequences of <= {DEFAULT_GATHER_LENGTH} ops",
         run_mmu_gather)]
)
