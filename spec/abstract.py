"""The abstract specification: each operation as a z3 transition, Hyperkernel style.

The state is spec/symbolic.py's :class:`AbsState` (frames, PTE slots, PTE tables, TLB and
walk-cache slots, VMA slots, rss, map_count). An operation is a function

    op(pre, ch, **args) -> Transition(post, rel, events)

where *post* is the new state, every field a z3 term over the pre-state, the arguments and
the choice variables *ch* (what the kernel may decide: which free frame a fault allocates,
whether an empty page table is freed, whether a TLB keeps an entry), and *rel* the
operation's precondition and the constraints on its choices. The operations are those of
the kernel at system-call granularity (each runs to completion):

* ``munmap(m, s, e)``: VMAs lose [s, e) (split as needed), its PTEs are zapped;
* ``madvise_dontneed(m, s, e)``: the PTEs of [s, e) are zapped, the VMAs stay;
* ``exit_mmap(m)``: everything of the mm goes (VMAs, PTEs, page tables, TLB entries);
* ``split_vma(m, i, addr, new_below)``: VMA slot i is split at addr, pgoff carried over;
* ``mprotect(m, s, e, prot)``: the VMAs of [s, e) get the new R/W/X bits (split as needed),
  PTEs lose write permission or may gain it;
* ``fault(m, v, write)``: a page fault at page v maps it (zero page, a new page, a page-cache
  page, COW, write upgrade, swap-in; fault-around may map page-cache neighbours);
* ``access_hit(c, m, v, write)`` / ``access_fill(c, m, v, write)``: a user access through CPU
  c's TLB: a hit changes nothing; a miss walks the present PTE and fills the TLB and the walk
  cache (setting the PTE's dirty bit on a store);
* ``access(c, m, v, write)``: what a user load or store does (hit, or fault if needed, then
  fill); ``segv``: an access the kernel answers with SIGSEGV;
* ``flush(m, s, e)``: a TLB flush of [s, e) on every CPU;
* ``mmap(m, s, e, flags, pgoff, anon)``: a new VMA (after unmapping [s, e) for MAP_FIXED).

Page numbers (not byte addresses) are the abstract unit; the 64-bit arithmetic that turns a
system call's arguments into page ranges is proved separately (proofs/symbolic.py).

What every kernel operation does besides its own changes (:func:`_finish`) is written once:
the frame bookkeeping follows from the PTE changes (mapcount and refcount move with the PTEs
that map a frame, a frame whose last reference goes is freed, rss moves with the PTEs counted
in each counter), and the TLBs and walk caches end *coherent*: an entry may be dropped at any
time, and an entry that stays must agree with the page table (the PTE is present, maps the
same frame of the same generation, and permits what the entry permits; a walk-cache entry
points at a live PTE table). A stale entry that an implementation leaves behind is therefore
not a post-state the specification allows, which is what the refinement check catches.

The abstraction function :func:`abstract` maps a live model state (through
:class:`~unmapcheck.spec.view.ConcreteView`) to an :class:`AbsValue`, and
:func:`check_refinement` checks that an implementation step is one of the abstract
operation's transitions, on the fields the abstract state has.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import z3

from unmapcheck.impl.constants import (NR_MM_COUNTERS, PAGE_SHIFT, PAGE_SIZE,
                                       VM_EXEC, VM_HUGETLB, VM_LOCKED, VM_PFNMAP, VM_READ,
                                       VM_SHARED, VM_WRITE)
from unmapcheck.impl.pte import MIGRATION, NONE, PRESENT, SWAP

from . import invariants as INV
from .logic import z3_logic
from .symbolic import (NONE_PTE, PTE_FIELDS, PTRS_SHIFT, PWC_FIELDS, TABLE_FIELDS, TLB_FIELDS,
                       VMA_FIELDS, AbsState, Bounds, Rec, SMm, SPte, SymbolicView, Word,
                       vma_event_record)

RWX = VM_READ | VM_WRITE | VM_EXEC
#: The vm_flags bits the abstract VMAs are compared on (the rest is bookkeeping such as
#: VM_ACCOUNT or VM_SOFTDIRTY that the specification leaves to the implementation).
FLAGS_COMPARED = RWX | VM_SHARED | VM_LOCKED


class Choices:
    """The choice variables of one transition (named, so a counterexample can show them)."""

    def __init__(self, tag: str):
        self.tag = tag
        self.vars: list = []

    def bool(self, name: str):
        v = z3.Bool(f"{self.tag}.{name}")
        self.vars.append(v)
        return v

    def int(self, name: str):
        v = z3.Int(f"{self.tag}.{name}")
        self.vars.append(v)
        return v


@dataclass
class Transition:
    op: str
    pre: AbsState
    post: AbsState
    rel: list                        # precondition and choice constraints (z3 Bools)
    events: list = field(default_factory=list)   # (kind, ev) for the event invariants

    def relation(self):
        return z3.And(*self.rel) if self.rel else z3.BoolVal(True)


def _bv(x: int):
    return z3.BitVecVal(x, 64)


def _has(flags, bit: int):
    return (flags & _bv(bit)) != _bv(0)


def _none_pte() -> Rec:
    return Rec.const(PTE_FIELDS, NONE_PTE)


def _sel(pairs: list, default: Rec) -> Rec:
    """The record of the first (cond, rec) whose cond holds (at most one does), else default."""
    out = default
    for c, r in reversed(pairs):
        out = r.ite(c, out)
    return out


# --- the generic part of every kernel operation -------------------------------------------------
def _maps(pte: Rec, f: int):
    return z3.And(pte.kind == PRESENT, z3.Not(pte.special), pte.pfn == f)


def _pinned(S: AbsState, f: int):
    """Migration entries that reference frame f (each holds the page pinned)."""
    return z3.Sum([z3.If(z3.And(p.kind == MIGRATION, p.pfn == f), 1, 0)
                   for p in S.ptes.values()] or [z3.IntVal(0)])


def _finish(pre: AbsState, post: AbsState, ch: Choices, rel: list, *, may_free_tables=(),
            must_free_tables=(), may_alloc: bool = False, marks: Callable = None,
            fresh_kinds: Callable = None) -> dict:
    """Complete *post* (whose VMAs and PTEs the operation has set) with what follows from the
    PTE changes: page tables freed or allocated, frame bookkeeping, rss, TLB and walk-cache
    coherence, the allocator's generation counter. Appends the constraints to *rel*; returns
    the choice variables "frame f is allocated by this operation" by frame."""
    b = pre.b
    Spre, Spost = SymbolicView(pre), None
    changed = [k for k in pre.ptes if post.ptes[k] is not pre.ptes[k]]

    # Page tables: an empty table may be freed (munmap, MADV_DONTNEED), must be freed
    # (exit_mmap); a PTE that appears in a missing table makes the fault allocate one.
    freed: dict = {}
    newt: dict = {}
    for (m, t), r in pre.tables.items():
        empty = z3.And(*[post.ptes[m, v].kind == NONE for v in b.vpns if v >> PTRS_SHIFT == t])
        if m in must_free_tables:
            freed[m, t] = r.valid
            rel.append(empty)
        elif m in may_free_tables:
            freed[m, t] = z3.And(r.valid, ch.bool(f"free_table.mm{m}.{t}"), empty)
        else:
            freed[m, t] = z3.BoolVal(False)
        need = z3.And(z3.Not(r.valid), z3.Not(empty))
        if may_alloc:
            pfn = ch.int(f"table_pfn.mm{m}.{t}")
            rel.append(z3.Implies(need, z3.And(pfn > 0, pfn < b.nframes)))
            newt[m, t] = (need, pfn)
            kept = z3.And(r.valid, z3.Not(freed[m, t]))
            post.tables[m, t] = Rec(TABLE_FIELDS, {
                "valid": z3.Or(need, kept), "pfn": z3.If(need, pfn, z3.If(kept, r.pfn, 0))})
        else:
            rel.append(z3.Not(need))
            post.tables[m, t] = Rec(TABLE_FIELDS, {"valid": z3.And(r.valid, z3.Not(freed[m, t])),
                                                   "pfn": z3.If(freed[m, t], 0, r.pfn)})

    # Frames.
    fresh_gens = []
    fresh_vars: dict = {}
    new_frames = []
    for f, fr in enumerate(pre.frames):
        dmap = z3.Sum([z3.If(_maps(post.ptes[k], f), 1, 0) - z3.If(_maps(pre.ptes[k], f), 1, 0)
                       for k in changed] or [z3.IntVal(0)])
        table_freed = z3.Or(*[z3.And(freed[k], pre.tables[k].pfn == f) for k in pre.tables])
        table_new = z3.Or(*[z3.And(need, pfn == f) for need, pfn in newt.values()]) \
            if newt else z3.BoolVal(False)
        mark = z3.Or(*[z3.And(pre.ptes[k].kind == PRESENT, z3.Not(pre.ptes[k].special),
                              pre.ptes[k].pfn == f, pre.ptes[k].dirty, z3.Not(fr.anon),
                              z3.Not(_maps(post.ptes[k], f))) for k in changed])
        if marks is not None:
            mark = z3.Or(mark, marks(f))
        mapcount = fr.mapcount + dmap
        refcount = fr.refcount + dmap - z3.If(table_freed, 1, 0)
        gone = z3.And(z3.Not(fr.free), refcount <= 0)
        live = Rec(fr.fields, dict(fr.f, mapcount=mapcount, refcount=refcount,
                                   dirty=z3.Or(fr.dirty, mark)))
        cleared = Rec(fr.fields, {"free": z3.BoolVal(True), "gen": fr.gen, "refcount": z3.IntVal(0),
                                  "mapcount": z3.IntVal(0), "anon": z3.BoolVal(False),
                                  "swapbacked": z3.BoolVal(False), "pagecache": z3.BoolVal(False),
                                  "dirty": z3.BoolVal(False), "is_table": z3.BoolVal(False)})
        nf = live.ite(z3.Not(z3.Or(fr.free, gone)), cleared)
        if may_alloc and f != 0:
            fresh = ch.bool(f"alloc{f}")
            gen = ch.int(f"gen{f}")
            extra = ch.int(f"extra_ref{f}")
            kind = {k: ch.bool(f"{k}{f}") for k in ("anon", "pagecache", "swapbacked", "dirty")}
            frec = Rec(fr.fields, {"free": z3.BoolVal(False), "gen": gen,
                                   "refcount": mapcount + extra, "mapcount": mapcount,
                                   "anon": kind["anon"], "pagecache": kind["pagecache"],
                                   "swapbacked": kind["swapbacked"], "dirty": kind["dirty"],
                                   "is_table": table_new})
            rel += [z3.Implies(fresh, fr.free), z3.Implies(table_new, fresh),
                    z3.Implies(fresh, gen > pre.next_gen),
                    z3.Implies(fresh, z3.Or(table_new, mapcount > 0, kind["pagecache"])),
                    z3.Implies(fresh, z3.And(extra >= 0, mapcount + extra >= 1)),
                    z3.Implies(fresh, z3.Not(z3.And(kind["anon"], kind["pagecache"]))),
                    z3.Implies(table_new, z3.And(extra == 1, mapcount == 0,
                                                 *[z3.Not(x) for x in kind.values()]))]
            if fresh_kinds is not None:
                rel.append(z3.Implies(fresh, fresh_kinds(f, frec)))
            fresh_gens.append((fresh, gen))
            fresh_vars[f] = fresh
            nf = frec.ite(fresh, nf)
        new_frames.append(nf)
    for i in range(len(fresh_gens)):
        for j in range(i + 1, len(fresh_gens)):
            (fi, gi), (fj, gj) = fresh_gens[i], fresh_gens[j]
            rel.append(z3.Implies(z3.And(fi, fj), gi != gj))
    post.frames = new_frames
    if may_alloc:
        ng = ch.int("next_gen")
        rel.append(ng >= pre.next_gen)
        rel += [z3.Implies(fr_, ng >= g) for fr_, g in fresh_gens]
        post.next_gen = ng
    Spost = SymbolicView(post)
    B = z3_logic()

    # rss: each counter moves with the PTEs counted in it.
    for m in range(b.nmms):
        ks = [k for k in changed if k[0] == m]
        if not ks:
            continue
        for c in range(NR_MM_COUNTERS):
            delta = []
            for k in ks:
                p_new = SPte(m, k[1], post.ptes[k]).with_guard(post.ptes[k].kind != NONE)
                p_old = SPte(m, k[1], pre.ptes[k]).with_guard(pre.ptes[k].kind != NONE)
                delta.append(B.count([p_new], lambda p: INV.counts_as(Spost, B, p, c)) -
                             B.count([p_old], lambda p: INV.counts_as(Spre, B, p, c)))
            post.rss[m][c] = pre.rss[m][c] + z3.Sum(delta)

    _coherent_caches(pre, post, ch)
    return fresh_vars


def _tlb_coherent(S: AbsState, m: int, v: int, r: Rec):
    p = S.ptes[m, v]
    return z3.And(p.kind == PRESENT, p.pfn == r.pfn, z3.Implies(r.write, p.write),
                  z3.Implies(r.dirty, p.dirty),
                  z3.Not(S.frame_field(r.pfn, "free", z3.BoolVal(True))),
                  S.frame_field(r.pfn, "gen", z3.IntVal(-1)) == r.gen)


def _pwc_coherent(S: AbsState, m: int, t: int, r: Rec):
    tb = S.tables[m, t]
    return z3.And(tb.valid, tb.pfn == r.pfn,
                  z3.Not(S.frame_field(r.pfn, "free", z3.BoolVal(True))),
                  S.frame_field(r.pfn, "gen", z3.IntVal(-1)) == r.gen)


def _invalid(rec: Rec) -> Rec:
    return Rec(rec.fields, {k: (z3.BoolVal(False) if s == "bool" else
                                z3.IntVal(0) if s == "int" else z3.BitVecVal(0, 64))
                            for k, s in rec.fields})


def _coherent_caches(pre: AbsState, post: AbsState, ch: Choices) -> None:
    """Each TLB and walk-cache entry may be dropped; one that stays must be coherent."""
    for (c, m, v), r in pre.tlb.items():
        keep = z3.And(r.valid, ch.bool(f"keep_tlb.cpu{c}.mm{m}.{v}"), _tlb_coherent(post, m, v, r))
        post.tlb[c, m, v] = r.ite(keep, _invalid(r))
    for (c, m, t), r in pre.pwc.items():
        keep = z3.And(r.valid, ch.bool(f"keep_pwc.cpu{c}.mm{m}.{t}"), _pwc_coherent(post, m, t, r))
        post.pwc[c, m, t] = r.ite(keep, _invalid(r))


# --- VMAs ----------------------------------------------------------------------------------------
def _vrec(valid, start, end, pgoff, flags, anon) -> Rec:
    return Rec(VMA_FIELDS, {"valid": valid, "start": start, "end": end, "pgoff": pgoff,
                            "flags": flags, "anon": anon})


def _place(pre_slots: list, slots: list, extras: list, rel: list) -> tuple:
    """Put the extra pieces (exists, rec) into the slots that were free before, in order;
    returns (new slots, number of extras). Not enough free slots: the precondition fails."""
    free = [z3.Not(r.valid) for r in pre_slots]
    rank, acc = [], z3.IntVal(0)
    for fr in free:
        rank.append(acc)
        acc = acc + z3.If(fr, 1, 0)
    out = list(slots)
    ordinal = z3.IntVal(0)
    for exists, rec in extras:
        hit = [z3.And(free[j], rank[j] == ordinal) for j in range(len(slots))]
        rel.append(z3.Implies(exists, z3.Or(*hit)))
        for j in range(len(slots)):
            out[j] = rec.replace(valid=True).ite(z3.And(exists, hit[j]), out[j])
        ordinal = ordinal + z3.If(exists, 1, 0)
    return out, ordinal


def _carve(pre: AbsState, post: AbsState, m: int, s, e, rel: list, newflags=None) -> Any:
    """Take [s, e) out of mm m's VMAs (newflags None: unmap) or give it the flags
    newflags(old) (mprotect); VMAs that straddle s or e are split, the outer pieces keeping
    their pgoff arithmetic. Returns the change in the number of VMAs."""
    vs = pre.vmas[m]
    dflt = _vrec(z3.BoolVal(False), z3.IntVal(0), z3.IntVal(0), z3.IntVal(0), _bv(0),
                 z3.BoolVal(False))
    slots, lefts, rights, both, removed = [], [], [], [], []
    for r in vs:
        inter = z3.And(r.valid, r.start < e, s < r.end)
        has_l = z3.And(inter, r.start < s)
        has_r = z3.And(inter, e < r.end)
        left = _vrec(z3.BoolVal(True), r.start, s, r.pgoff, r.flags, r.anon)
        right = _vrec(z3.BoolVal(True), e, r.end, r.pgoff + (e - r.start), r.flags, r.anon)
        lo = z3.If(r.start < s, s, r.start)
        hi = z3.If(e < r.end, e, r.end)
        if newflags is None:
            kept = left.ite(has_l, right.ite(has_r, r.replace(valid=False)))
            slots.append(kept.ite(inter, r))
            both.append((z3.And(has_l, has_r), right))
            removed.append(z3.And(inter, z3.Not(has_l), z3.Not(has_r)))
        else:
            mid = _vrec(z3.BoolVal(True), lo, hi, r.pgoff + (lo - r.start), newflags(r.flags),
                        r.anon)
            slots.append(mid.ite(inter, r))
            lefts.append((has_l, left))
            rights.append((has_r, right))
    if newflags is None:
        extras = [(z3.Or(*[c for c, _ in both]), _sel(both, dflt))]
    else:
        extras = [(z3.Or(*[c for c, _ in lefts]), _sel(lefts, dflt)),
                  (z3.Or(*[c for c, _ in rights]), _sel(rights, dflt))]
    post.vmas[m], added = _place(vs, slots, extras, rel)
    dn = added - z3.Sum([z3.If(c, 1, 0) for c in removed] or [z3.IntVal(0)])
    post.map_count[m] = pre.map_count[m] + dn
    return dn


def _zap(pre: AbsState, post: AbsState, m: int, s, e) -> None:
    """Every PTE of mm m in [s, e) becomes none."""
    for v in pre.b.vpns:
        r = pre.ptes[m, v]
        post.ptes[m, v] = _none_pte().ite(z3.And(s <= v, v < e), r)


def _vma_change_event(pre: AbsState, post: AbsState, m: int, what: str) -> tuple:
    return ("vma_change", {"what": what, "mm": SMm(m),
                           "old": [vma_event_record(r, r.valid) for r in pre.vmas[m]],
                           "new": [vma_event_record(r, r.valid) for r in post.vmas[m]]})


def _return_event(m: int, s, e, syscall: str) -> tuple:
    start, end = Word(s * PAGE_SIZE), Word(e * PAGE_SIZE)
    return ("return_to_user", {"mm": SMm(m), "start": start, "end": end, "start_tick": 0,
                               "ranges": [(start, end)], "syscall": syscall, "cpu": 0})


def _vma_at(S: AbsState, m: int, v):
    """(cond, rec) for each VMA slot: cond says v lies in it."""
    return [(z3.And(r.valid, r.start <= v, v < r.end), r) for r in S.vmas[m]]


# --- operations ----------------------------------------------------------------------------------
def munmap(pre: AbsState, ch: Choices, m: int, s, e) -> Transition:
    post, rel = pre.copy(), [s < e, s >= 0]
    _carve(pre, post, m, s, e, rel)
    _zap(pre, post, m, s, e)
    _finish(pre, post, ch, rel, may_free_tables={m})
    return Transition("munmap", pre, post, rel,
                      [_return_event(m, s, e, "munmap"), _vma_change_event(pre, post, m, "munmap")])


def madvise_dontneed(pre: AbsState, ch: Choices, m: int, s, e) -> Transition:
    """MADV_DONTNEED of [s, e): the PTEs go, the VMAs stay. Precondition: no VM_LOCKED,
    VM_PFNMAP or VM_HUGETLB VMA in the range (madvise refuses those with -EINVAL)."""
    post, rel = pre.copy(), [s < e, s >= 0]
    bad = VM_LOCKED | VM_PFNMAP | VM_HUGETLB
    for r in pre.vmas[m]:
        rel.append(z3.Not(z3.And(r.valid, r.start < e, s < r.end, _has(r.flags, bad))))
    _zap(pre, post, m, s, e)
    _finish(pre, post, ch, rel, may_free_tables={m})
    return Transition("madvise_dontneed", pre, post, rel,
                      [_return_event(m, s, e, "madvise(MADV_DONTNEED)")])


def exit_mmap(pre: AbsState, ch: Choices, m: int) -> Transition:
    post, rel = pre.copy(), []
    for v in pre.b.vpns:
        post.ptes[m, v] = _none_pte()
    post.vmas[m] = [r.replace(valid=False) for r in pre.vmas[m]]
    post.map_count[m] = z3.IntVal(0)
    _finish(pre, post, ch, rel, must_free_tables={m})
    for (c, mm, v), r in list(post.tlb.items()):
        if mm == m:
            post.tlb[c, mm, v] = _invalid(r)
    return Transition("exit_mmap", pre, post, rel, [("exit_mmap_done", {"mm": SMm(m)})])


def split_vma(pre: AbsState, ch: Choices, m: int, i: int, addr, new_below) -> Transition:
    """__split_vma(vma = slot i, addr, new_below): the new VMA (in the first free slot) takes
    the part below addr (new_below) or above it."""
    post, rel = pre.copy(), []
    r = pre.vmas[m][i]
    rel += [r.valid, r.start < addr, addr < r.end]
    nb = new_below if not isinstance(new_below, bool) else z3.BoolVal(new_below)
    low = _vrec(z3.BoolVal(True), r.start, addr, r.pgoff, r.flags, r.anon)
    high = _vrec(z3.BoolVal(True), addr, r.end, r.pgoff + (addr - r.start), r.flags, r.anon)
    slots = list(pre.vmas[m])
    slots[i] = high.ite(nb, low)
    post.vmas[m], added = _place(pre.vmas[m], slots, [(z3.BoolVal(True), low.ite(nb, high))], rel)
    post.map_count[m] = pre.map_count[m] + 1
    ev = {"old": vma_event_record(r), "low": vma_event_record(low),
          "high": vma_event_record(high), "addr": Word(addr * PAGE_SIZE)}
    return Transition("split_vma", pre, post, rel,
                      [("split_vma", ev), _vma_change_event(pre, post, m, "split_vma")])


def _fully_covered(S: AbsState, m: int, s, e):
    """[s, e) lies in the union of mm m's VMAs (with no hole): s is covered, and every VMA
    that ends inside the range is followed by one that starts where it ends."""
    vs = S.vmas[m]
    conds = [S.covers(m, s)]
    for r in vs:
        ends_inside = z3.And(r.valid, r.start < e, s < r.end, r.end < e)
        conds.append(z3.Implies(ends_inside, z3.Or(*[z3.And(o.valid, o.start == r.end)
                                                     for o in vs])))
    return z3.And(*conds)


def mprotect(pre: AbsState, ch: Choices, m: int, s, e, prot) -> Transition:
    """mprotect of [s, e) to the VM_READ/VM_WRITE/VM_EXEC bits *prot* (a 64-bit value).
    Precondition: the range is mapped without holes (else -ENOMEM, with the VMAs before the
    hole already changed, which this operation does not describe)."""
    post, rel = pre.copy(), [s < e, s >= 0, _fully_covered(pre, m, s, e)]
    prot = prot if not isinstance(prot, int) else _bv(prot)
    rel.append(prot & _bv(~RWX & ((1 << 64) - 1)) == _bv(0))
    _carve(pre, post, m, s, e, rel, newflags=lambda fl: (fl & _bv(~RWX & ((1 << 64) - 1))) | prot)
    new_w = _has(prot, VM_WRITE)
    Spre = SymbolicView(pre)
    for v in pre.b.vpns:
        p = pre.ptes[m, v]
        inr = z3.And(s <= v, v < e)
        shared = z3.Or(*[z3.And(c, _has(r.flags, VM_SHARED)) for c, r in _vma_at(pre, m, v)])
        up = ch.bool(f"mkwrite.{v}")
        # can_change_pte_writable(): a private anonymous page only while it is exclusive
        # (PageAnonExclusive; order-0 pages: mapcount 1)
        anon = z3.And(Spre.frame_anon(Spre.frame(p.pfn)),
                      Spre.mapcount(Spre.frame(p.pfn)) == 1)
        w = z3.If(new_w, z3.Or(p.write, z3.And(up, p.kind == PRESENT, z3.Not(p.special),
                                               z3.Or(anon, shared))), False)
        mapped = z3.Or(p.kind == PRESENT, p.kind == MIGRATION)
        post.ptes[m, v] = p.replace(write=z3.If(z3.And(inr, mapped), w, p.write))
    _finish(pre, post, ch, rel)
    return Transition("mprotect", pre, post, rel,
                      [_return_event(m, s, e, "mprotect"),
                       _vma_change_event(pre, post, m, "mprotect")])


def fault(pre: AbsState, ch: Choices, m: int, v: int, write) -> Transition:
    """A page fault at page v (a read, or a write if *write*), handled successfully."""
    post, rel = pre.copy(), []
    write = write if not isinstance(write, bool) else z3.BoolVal(write)
    Spre = SymbolicView(pre)
    at = _vma_at(pre, m, v)
    rel.append(z3.Or(*[c for c, _ in at]))
    rel.append(z3.Or(*[z3.And(c, (r.flags & z3.If(write, _bv(VM_WRITE), _bv(RWX))) != _bv(0))
                       for c, r in at]))
    anon_v = z3.Or(*[z3.And(c, r.anon) for c, r in at])
    shared_v = z3.Or(*[z3.And(c, _has(r.flags, VM_SHARED)) for c, r in at])
    vwrite = z3.Or(*[z3.And(c, _has(r.flags, VM_WRITE)) for c, r in at])
    p = pre.ptes[m, v]
    rel.append(p.kind != MIGRATION)
    pfn, w = ch.int("pfn"), ch.bool("write")
    reuse = z3.And(p.kind == PRESENT, pfn == p.pfn)
    dirty = ch.bool("dirty")            # fixed below, once the frames are known
    new = Rec(PTE_FIELDS, {"kind": z3.IntVal(PRESENT), "pfn": pfn, "write": w, "dirty": dirty,
                           "special": pfn == 0})
    existing_cache = z3.And(z3.Not(Spre.frame_free(Spre.frame(pfn))),
                            Spre.frame_pagecache(Spre.frame(pfn)), z3.Not(anon_v),
                            z3.Or(shared_v, z3.Not(write)))
    rel += [z3.Implies(write, w), z3.Implies(w, vwrite),
            z3.Implies(pfn == 0, z3.And(z3.Not(write), anon_v, z3.Not(w))),
            z3.Implies(z3.And(p.kind == PRESENT, z3.Not(reuse)), write),      # COW
            z3.Implies(z3.And(reuse, w, z3.Not(p.write)),                      # write upgrade:
                       z3.Or(z3.And(Spre.frame_anon(Spre.frame(pfn)),           # wp_page_reuse of
                                    Spre.mapcount(Spre.frame(pfn)) == 1),       # an exclusive page
                             shared_v)),
            pfn >= 0, pfn < pre.b.nframes]
    post.ptes[m, v] = new
    # Fault-around: a read fault in a file VMA may map page-cache pages around v.
    for u in pre.b.vpns:
        if u == v or u >> PTRS_SHIFT != v >> PTRS_SHIFT:
            continue
        q = pre.ptes[m, u]
        same_vma = z3.Or(*[z3.And(c, r.valid, r.start <= u, u < r.end) for c, r in at])
        may = z3.And(q.kind == NONE, same_vma, z3.Not(anon_v), z3.Not(write),
                     ch.bool(f"around.{u}"))
        upfn = ch.int(f"around_pfn.{u}")
        rel.append(z3.Implies(may, z3.And(upfn > 0, upfn < pre.b.nframes,
                                          z3.Not(Spre.frame_free(Spre.frame(upfn))),
                                          Spre.frame_pagecache(Spre.frame(upfn)))))
        # (writable in a shared writable mapping that needs no write notification: shmem)
        uw = z3.And(ch.bool(f"around_write.{u}"), shared_v, vwrite)
        # set_pte_range: a writable PTE of a dirty folio is made dirty even on a read fault
        ud = z3.And(uw, Spre.frame_dirty(Spre.frame(upfn)))
        mapped = Rec(PTE_FIELDS, {"kind": z3.IntVal(PRESENT), "pfn": upfn, "write": uw,
                                  "dirty": ud, "special": z3.BoolVal(False)})
        post.ptes[m, u] = mapped.ite(may, q)

    def kinds(f, rec):
        # A new page at v: anonymous for an anonymous VMA and for a write to a private file
        # mapping (COW), a page-cache page otherwise; a new page elsewhere is a page-cache page
        # (read in for a COW source).
        at_v = z3.And(z3.Not(reuse), pfn == f)
        anon_page = z3.Or(anon_v, z3.And(z3.Not(shared_v), write))
        return z3.And(z3.Implies(at_v, z3.If(anon_page, rec.anon, z3.And(rec.pagecache,
                                                                         z3.Not(rec.anon)))),
                      z3.Implies(z3.And(z3.Not(at_v), z3.Not(rec.is_table)),
                                 z3.And(rec.pagecache, z3.Not(rec.anon))))

    def marks(f):
        return z3.And(write, shared_v, pfn == f)

    fresh = _finish(pre, post, ch, rel, may_alloc=True, marks=marks, fresh_kinds=kinds)
    # A new mapping at v is the zero page, a frame this fault allocates, or a page-cache page.
    fresh_pfn = z3.Or(*[z3.And(pfn == f, x) for f, x in fresh.items()])
    rel.append(z3.Implies(z3.Not(reuse), z3.Or(pfn == 0, fresh_pfn, existing_cache)))
    # What the PTE at v maps: an anonymous page in an anonymous VMA and behind a writable PTE
    # of a private mapping (COW), a page-cache page otherwise.
    anon_at = post.frame_field(pfn, "anon", z3.BoolVal(False))
    cache_at = post.frame_field(pfn, "pagecache", z3.BoolVal(False))
    # The PTE is dirty after a write, and after a read that maps a dirty folio writable
    # (set_pte_range); a spurious fault keeps the bit.
    dirty_at = post.frame_field(pfn, "dirty", z3.BoolVal(False))
    rel.append(dirty == z3.Or(write, z3.And(reuse, p.dirty), z3.And(w, dirty_at)))
    rel += [z3.Implies(z3.And(w, z3.Not(shared_v)), anon_at),
            z3.Implies(z3.And(z3.Not(reuse), pfn != 0),
                       z3.If(z3.Or(anon_v, z3.And(z3.Not(shared_v), write)), anon_at, cache_at))]
    return Transition("fault", pre, post, rel)


def access_hit(pre: AbsState, ch: Choices, c: int, m: int, v: int, write) -> Transition:
    t = pre.tlb[c, m, v]
    write = write if not isinstance(write, bool) else z3.BoolVal(write)
    return Transition("access_hit", pre, pre.copy(),
                      [t.valid, z3.Implies(write, z3.And(t.write, t.dirty))])


def access_fill(pre: AbsState, ch: Choices, c: int, m: int, v: int, write) -> Transition:
    """A TLB miss: the MMU walks to the present PTE, sets its dirty bit on a store, and fills
    the TLB and the walk cache."""
    post = pre.copy()
    write = write if not isinstance(write, bool) else z3.BoolVal(write)
    p = pre.ptes[m, v]
    t = v >> PTRS_SHIFT
    tb = pre.tables[m, t]
    rel = [p.kind == PRESENT, z3.Implies(write, p.write), tb.valid]
    dirty = z3.Or(p.dirty, write)
    post.ptes[m, v] = p.replace(dirty=dirty)
    post.tlb[c, m, v] = Rec(TLB_FIELDS, {"valid": z3.BoolVal(True), "pfn": p.pfn,
                                         "gen": pre.frame_field(p.pfn, "gen", z3.IntVal(-1)),
                                         "write": p.write, "dirty": dirty})
    post.pwc[c, m, t] = Rec(PWC_FIELDS, {"valid": z3.BoolVal(True), "pfn": tb.pfn,
                                         "gen": pre.frame_field(tb.pfn, "gen", z3.IntVal(-1))})
    return Transition("access_fill", pre, post, rel)


def access(pre: AbsState, ch: Choices, c: int, m: int, v: int, write) -> Transition:
    """A user load or store as the MMU and the fault handler do it: a TLB hit; or a walk of a
    PTE that permits the access and a fill; or a fault that makes the PTE permit it, then a
    walk and a fill."""
    write = write if not isinstance(write, bool) else z3.BoolVal(write)
    hit = access_hit(pre, ch, c, m, v, write)
    t = pre.tlb[c, m, v]
    is_hit = z3.And(t.valid, z3.Implies(write, z3.And(t.write, t.dirty)))
    p = pre.ptes[m, v]
    permits = z3.And(p.kind == PRESENT, z3.Implies(write, p.write),
                     pre.tables[m, v >> PTRS_SHIFT].valid)
    direct = access_fill(pre, ch, c, m, v, write)
    flt = fault(pre, ch, m, v, write)
    after = access_fill(flt.post, ch, c, m, v, write)
    post = hit.post.ite(is_hit, direct.post.ite(permits, after.post))
    rel = [z3.Or(z3.And(is_hit, hit.relation()),
                 z3.And(z3.Not(is_hit), permits, direct.relation()),
                 z3.And(z3.Not(is_hit), z3.Not(permits), flt.relation(), after.relation()))]
    return Transition("access", pre, post, rel)


def segv(pre: AbsState, ch: Choices, c: int, m: int, v: int, write) -> Transition:
    """An access the kernel answers with SIGSEGV: no VMA permits it; the CPU drops its TLB
    entry for the address (x86 does on a #PF) and nothing else changes, but for the walk
    cache: the walk may have cached the PTE table it went through, and the fault may drop the
    entry for the address (an Intel CPU does, SDM 3A 4.10.4.1; impl/cpu.py _page_fault)."""
    post = pre.copy()
    write = write if not isinstance(write, bool) else z3.BoolVal(write)
    rel = [z3.Not(z3.Or(*[z3.And(cnd, (r.flags & z3.If(write, _bv(VM_WRITE), _bv(RWX))) != _bv(0))
                          for cnd, r in _vma_at(pre, m, v)]))]
    r = pre.tlb[c, m, v]
    post.tlb[c, m, v] = r.ite(ch.bool("keep"), _invalid(r))
    # The walk that found no PTE may have cached the PTE table it went through.
    t = v >> PTRS_SHIFT
    tb, w = pre.tables[m, t], pre.pwc[c, m, t]
    walked = Rec(PWC_FIELDS, {"valid": z3.BoolVal(True), "pfn": tb.pfn,
                              "gen": pre.frame_field(tb.pfn, "gen", z3.IntVal(-1))})
    kept = walked.ite(z3.And(tb.valid, ch.bool("walked")), w)
    post.pwc[c, m, t] = _invalid(w).ite(ch.bool("pwc_dropped"), kept)
    return Transition("segv", pre, post, rel)


def flush(pre: AbsState, ch: Choices, m: int, s, e) -> Transition:
    """A TLB flush of mm m's [s, e) on every CPU (flush_tlb_mm_range): no entry of the range
    survives; others may go too, and so may walk-cache entries."""
    post, rel = pre.copy(), [s < e]
    for (c, mm, v), r in pre.tlb.items():
        gone = z3.BoolVal(False) if mm != m else z3.And(s <= v, v < e)
        keep = z3.And(r.valid, z3.Not(gone), ch.bool(f"keep_tlb.cpu{c}.mm{mm}.{v}"))
        post.tlb[c, mm, v] = r.ite(keep, _invalid(r))
    for (c, mm, t), r in pre.pwc.items():
        keep = z3.And(r.valid, ch.bool(f"keep_pwc.cpu{c}.mm{mm}.{t}"))
        post.pwc[c, mm, t] = r.ite(keep, _invalid(r))
    return Transition("flush", pre, post, rel,
                      [("tlb_flush", {"mm": SMm(m), "start": Word(s * PAGE_SIZE),
                                      "end": Word(e * PAGE_SIZE)})])


def mmap(pre: AbsState, ch: Choices, m: int, s, e, flags, pgoff, anon) -> Transition:
    """A new VMA [s, e) with *flags*, *pgoff*, anonymous or not, after unmapping whatever
    [s, e) held (MAP_FIXED); the kernel may merge it with its neighbours, which the abstract
    state need not do (refinement compares what each address maps to)."""
    post, rel = pre.copy(), [s < e, s >= 0]
    _carve(pre, post, m, s, e, rel)
    _zap(pre, post, m, s, e)
    flags = flags if not isinstance(flags, int) else _bv(flags)
    anon = anon if not isinstance(anon, bool) else z3.BoolVal(anon)
    # MAP_SHARED|MAP_ANONYMOUS is shmem (shmem_zero_setup): an anonymous VMA is private
    rel.append(z3.Implies(anon, z3.Not(_has(flags, VM_SHARED))))
    new = _vrec(z3.BoolVal(True), s, e, pgoff, flags, anon)
    carved = post.vmas[m]
    # What stays mapped keeps its pgoff (the event covers the unmapping part; the new VMA
    # is new).
    change = _vma_change_event(pre, post, m, "mmap")
    post.vmas[m], _ = _place(carved, carved, [(z3.BoolVal(True), new)], rel)
    post.map_count[m] = post.map_count[m] + 1
    _finish(pre, post, ch, rel, may_free_tables={m})
    return Transition("mmap", pre, post, rel, [change])


def unchanged(pre: AbsState, ch: Choices) -> Transition:
    """A call that fails before changing anything (an -EINVAL from argument checks)."""
    return Transition("unchanged", pre, pre.copy(), [])


OPS: dict[str, Callable[..., Transition]] = {
    "munmap": munmap, "madvise_dontneed": madvise_dontneed, "exit_mmap": exit_mmap,
    "split_vma": split_vma, "mprotect": mprotect, "fault": fault, "access_hit": access_hit,
    "access_fill": access_fill, "access": access, "segv": segv, "flush": flush, "mmap": mmap,
    "unchanged": unchanged,
}


# --- well-formedness of the abstract state ------------------------------------------------------
def well_formed(S: AbsState) -> list[tuple[str, Any]]:
    """Structural facts of the abstract state that the invariants of spec/invariants.py rely
    on to be inductive (together they are the inductive invariant the proofs use). Named
    conjuncts, ``WF.<name>``."""
    b = S.b
    out = []
    fr = []
    for i, f in enumerate(S.frames):
        fr.append(z3.Implies(f.free, z3.And(f.refcount == 0, f.mapcount == 0, z3.Not(f.anon),
                                            z3.Not(f.pagecache), z3.Not(f.swapbacked),
                                            z3.Not(f.dirty), z3.Not(f.is_table))))
        fr.append(z3.Implies(z3.Not(f.free), f.refcount >= 1))
        fr += [f.gen >= 0, f.gen <= S.next_gen, z3.Not(z3.And(f.anon, f.pagecache)),
               z3.Implies(f.is_table, z3.And(z3.Not(f.anon), z3.Not(f.pagecache),
                                             f.mapcount == 0, f.refcount == 1))]
    out.append(("WF.frames", z3.And(*fr)))
    z = S.frames[0]
    out.append(("WF.zero_page", z3.And(z3.Not(z.free), z3.Not(z.is_table), z3.Not(z.anon),
                                       z3.Not(z.pagecache), z.refcount >= 1)))
    pt = []
    for (m, v), p in S.ptes.items():
        f_ok = z3.And(p.pfn > 0, p.pfn < b.nframes,
                      z3.Not(S.frame_field(p.pfn, "free", z3.BoolVal(True))),
                      z3.Not(S.frame_field(p.pfn, "is_table", z3.BoolVal(True))))
        pt += [p.kind >= NONE, p.kind <= MIGRATION,
               z3.Implies(p.kind == NONE, z3.And(p.pfn == 0, z3.Not(p.write), z3.Not(p.dirty),
                                                 z3.Not(p.special))),
               z3.Implies(p.kind == PRESENT, z3.And(p.special == (p.pfn == 0),
                                                    z3.Or(p.pfn == 0, f_ok))),
               z3.Implies(p.special, z3.And(p.kind == PRESENT, z3.Not(p.write))),
               z3.Implies(p.kind == MIGRATION, z3.And(f_ok, z3.Not(p.dirty))),
               z3.Implies(p.kind == SWAP, z3.And(p.pfn == 0, z3.Not(p.write), z3.Not(p.dirty))),
               z3.Implies(p.kind != NONE, S.tables[m, v >> PTRS_SHIFT].valid)]
    out.append(("WF.ptes", z3.And(*pt)))
    # An anonymous page is mapped only in private VMAs, and an anonymous VMA is private: a
    # MAP_SHARED anonymous mapping is shmem (shmem_zero_setup: its pages are page-cache
    # pages, vma_is_anonymous() is false), and no call makes a private VMA shared.
    ap = []
    for (m, v), p in S.ptes.items():
        anon = z3.And(z3.Or(p.kind == PRESENT, p.kind == MIGRATION),
                      S.frame_field(p.pfn, "anon", z3.BoolVal(False)))
        ap.append(z3.Implies(anon, z3.And(*[z3.Implies(c, z3.Not(_has(r.flags, VM_SHARED)))
                                            for c, r in _vma_at(S, m, v)])))
    ap += [z3.Implies(z3.And(r.valid, r.anon), z3.Not(_has(r.flags, VM_SHARED)))
           for m in S.vmas for r in S.vmas[m]]
    out.append(("WF.anon_private", z3.And(*ap)))
    pins = []
    for i in range(1, b.nframes):
        f = S.frames[i]
        pins.append(z3.Implies(z3.Not(f.free), f.refcount >= f.mapcount + _pinned(S, i)))
    out.append(("WF.pins", z3.And(*pins)))
    tb = []
    keys = list(S.tables)
    for k in keys:
        r = S.tables[k]
        tb.append(z3.Implies(r.valid, z3.And(r.pfn > 0, r.pfn < b.nframes,
                                             z3.Not(S.frame_field(r.pfn, "free", z3.BoolVal(True))),
                                             S.frame_field(r.pfn, "is_table", z3.BoolVal(False)))))
        tb.append(z3.Implies(z3.Not(r.valid), r.pfn == 0))
    for i, k in enumerate(keys):
        for k2 in keys[i + 1:]:
            tb.append(z3.Implies(z3.And(S.tables[k].valid, S.tables[k2].valid),
                                 S.tables[k].pfn != S.tables[k2].pfn))
    for i, f in enumerate(S.frames):
        tb.append(z3.Implies(f.is_table, z3.Or(*[z3.And(S.tables[k].valid, S.tables[k].pfn == i)
                                                 for k in keys])))
    out.append(("WF.tables", z3.And(*tb)))
    out.append(("WF.tlb", z3.And(*[z3.Implies(r.valid, _tlb_coherent(S, m, v, r))
                                   for (c, m, v), r in S.tlb.items()])))
    out.append(("WF.pwc", z3.And(*[z3.Implies(r.valid, _pwc_coherent(S, m, t, r))
                                   for (c, m, t), r in S.pwc.items()])))
    out.append(("WF.vmas", z3.And(*[z3.Implies(r.valid, r.start >= 0)
                                    for m in S.vmas for r in S.vmas[m]])))
    return out


# --- the invariants, encoded through the symbolic view --------------------------------------------
STATE_WHEN = ("step", "quiescent")


def state_invariants() -> list:
    """The state invariants the proofs encode: every one but those judged on concrete
    states only (``concrete_only``: the abstract state lacks what they read)."""
    return [inv for inv in INV.REGISTRY.values()
            if inv.when in STATE_WHEN and not inv.concrete_only]


def encode(inv, S: AbsState, ev: Optional[dict] = None):
    """An invariant of spec/invariants.py as a z3 formula over the abstract state."""
    return inv.holds(SymbolicView(S), z3_logic(), ev)


def encode_all(S: AbsState) -> list[tuple[str, Any]]:
    """Every state invariant (``when`` "step" or "quiescent") and every WF conjunct."""
    return [(inv.name, encode(inv, S)) for inv in state_invariants()] + well_formed(S)


# --- the abstraction function ---------------------------------------------------------------------
@dataclass
class AbsValue:
    """A concrete abstract state, keyed by the concrete mm ids (see :func:`abstract`)."""

    frames: dict                    # pfn -> fields (frames of the abstract state)
    untracked: set                  # pfns of page-table pages above the PTE level
    ptes: dict                      # (mm id, vpn) -> fields
    tables: dict                    # (mm id, table index) -> {valid, pfn}
    tlb: dict                       # (cpu, mm id, vpn) -> fields
    pwc: dict                       # (cpu, mm id, table index) -> fields
    vmas: dict                      # mm id -> [fields], in tree order
    rss: dict                       # mm id -> [counters]
    map_count: dict                 # mm id -> int
    next_gen: int
    ncpus: int
    live: set                       # ids of the mms that are not freed

    def remap(self, ids: list) -> "AbsValue":
        """The same value with mm ids replaced by their index in *ids*."""
        ix = {i: n for n, i in enumerate(ids)}
        return AbsValue(dict(self.frames), set(self.untracked),
                        {(ix[m], v): d for (m, v), d in self.ptes.items()},
                        {(ix[m], t): d for (m, t), d in self.tables.items()},
                        {(c, ix[m], v): d for (c, m, v), d in self.tlb.items()},
                        {(c, ix[m], t): d for (c, m, t), d in self.pwc.items()},
                        {ix[m]: d for m, d in self.vmas.items()},
                        {ix[m]: d for m, d in self.rss.items()},
                        {ix[m]: d for m, d in self.map_count.items()},
                        self.next_gen, self.ncpus, {ix[m] for m in self.live})


def abstract(machine) -> AbsValue:
    """The abstraction function: a model state (an impl Machine) as an abstract state, read
    through ConcreteView. Page-table pages above the PTE level are not part of the abstract
    state (``untracked``); PTE tables are keyed by their index (vpn >> 9), walk-cache entries
    at the PTE-table level likewise; none PTEs, invalid TLB entries and free frames are left
    out (the constant state fills them in canonically)."""
    from unmapcheck.impl.pgtable import LEVEL_PTE, iter_tables
    from .view import ConcreteView
    S = ConcreteView(machine)
    frames, untracked = {}, set()
    mms = [mm for mm in machine.mms]
    live = {mm.id for mm in S.mms()}
    tables = {}
    for mm in S.mms():
        for level, base, page in iter_tables(mm):
            if level == LEVEL_PTE:
                tables[mm.id, base >> (PAGE_SHIFT + PTRS_SHIFT)] = {"valid": True, "pfn": page.pfn}
            else:
                untracked.add(page.pfn)
    for f in S.frames():
        if S.frame_free(f):
            continue
        if S.frame_is_table(f) and f.level != LEVEL_PTE:
            untracked.add(f.pfn)
            continue
        frames[f.pfn] = {"free": False, "gen": S.frame_gen(f), "refcount": S.refcount(f),
                         "mapcount": S.mapcount(f), "anon": S.frame_anon(f),
                         "swapbacked": S.frame_swapbacked(f), "pagecache": S.frame_pagecache(f),
                         "dirty": S.frame_dirty(f), "is_table": S.frame_is_table(f)}
    ptes = {}
    for p in S.ptes():
        present, mig = S.pte_present(p), S.pte_migration(p)
        kind = PRESENT if present else MIGRATION if mig else SWAP
        ptes[p.mm.id, S.pte_vpn(p)] = {"kind": kind,
                                       "pfn": S.pte_pfn(p) if (present or mig) else 0,
                                       "write": S.pte_write(p) if (present or mig) else False,
                                       "dirty": S.pte_dirty(p) if present else False,
                                       "special": S.pte_special(p) if present else False}
    tlb = {(S.tlb_cpu(t), t.mm_id, S.tlb_vpn(t)): {"valid": True, "pfn": S.tlb_pfn(t),
                                                   "gen": S.tlb_gen(t), "write": S.tlb_write(t),
                                                   "dirty": S.tlb_dirty(t)}
           for t in S.tlb_entries()}
    pwc = {(w.cpu, w.mm_id, w.prefix): {"valid": True, "pfn": S.pwc_pfn(w), "gen": S.pwc_gen(w)}
           for w in S.pwc_entries() if w.level == LEVEL_PTE}
    vmas, rss, mc = {}, {}, {}
    for mm in mms:
        if mm.id in live:
            vmas[mm.id] = [{"start": S.vma_start(v), "end": S.vma_end(v), "pgoff": S.vma_pgoff(v),
                            "flags": S.vma_flags(v), "anon": v.vm_file is None}
                           for v in S.vmas(mm)]
            rss[mm.id] = [S.rss(mm, k) for k in range(NR_MM_COUNTERS)]
            mc[mm.id] = S.map_count(mm)
        else:
            vmas[mm.id], rss[mm.id], mc[mm.id] = [], [0] * NR_MM_COUNTERS, 0
    return AbsValue(frames, untracked, ptes, tables, tlb, pwc, vmas, rss, mc,
                    machine.zone.generation, len(machine.cpus), live)


# --- refinement ---------------------------------------------------------------------------------
@dataclass
class RefinementResult:
    ok: bool
    op: str
    mismatches: list
    detail: str = ""

    def __bool__(self) -> bool:
        return self.ok


def _pages(addr: int, length: int) -> tuple[int, int]:
    end = addr + ((length + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1))
    return addr >> PAGE_SHIFT, end >> PAGE_SHIFT


def _op_args(op: str, args: dict, ids: list) -> tuple[str, dict, list]:
    """System-call-level arguments (bytes, prot, flags, the mm id) to the abstract operation's
    (page numbers, the mm's index); also the page numbers the universe must contain."""
    from unmapcheck.impl.constants import MAP_ANONYMOUS, MAP_SHARED
    a = dict(args)
    m = ids.index(a.pop("mm"))
    if op in ("munmap", "madvise_dontneed", "mprotect", "flush", "mmap"):
        s, e = _pages(a.pop("addr"), a.pop("length"))
        out = {"m": m, "s": z3.IntVal(s), "e": z3.IntVal(e)}
        if op == "mprotect":
            out["prot"] = a.pop("prot") & RWX
        if op == "mmap":
            prot, flags = a.pop("prot"), a.pop("flags")
            out["flags"] = (prot & RWX) | (VM_SHARED if flags & MAP_SHARED else 0)
            out["anon"] = bool(flags & MAP_ANONYMOUS) and not flags & MAP_SHARED
            # An anonymous private mapping's vm_pgoff is its address in pages (mmap_region);
            # a file or shared mapping's is the offset in pages.
            out["pgoff"] = z3.IntVal(s if out["anon"] else a.pop("offset", 0) >> PAGE_SHIFT)
        return op, out, [s, e - 1]
    if op in ("access", "segv", "fault", "access_hit", "access_fill"):
        v = a.pop("addr") >> PAGE_SHIFT
        out = {"m": m, "v": v, "write": bool(a.pop("write"))}
        if op != "fault":
            out["c"] = a.pop("cpu")
        return op, out, [v]
    if op == "exit_mmap":
        return op, {"m": m}, []
    if op == "split_vma":
        return op, {"m": m, "i": a.pop("slot"), "addr": z3.IntVal(a.pop("addr") >> PAGE_SHIFT),
                    "new_below": bool(a.pop("new_below"))}, []
    if op == "unchanged":
        return op, {}, []
    raise ValueError(f"unknown operation {op!r} (known: {', '.join(OPS)})")


def check_refinement(before, op: str, args: dict, after, timeout_ms: int = 20000
                     ) -> RefinementResult:
    """Is the implementation's step from *before* to *after* a transition of the abstract
    operation *op*? *before* is a Machine (abstracted now) or an :class:`AbsValue` taken
    before the step; *after* a Machine or AbsValue. *args* are the call's arguments at the
    system-call level: ``mm`` (the mm id), and ``addr``/``length`` (munmap, madvise_dontneed,
    mprotect + ``prot``, flush, mmap + ``prot``, ``flags``, ``offset``), ``addr``/``cpu``/
    ``write`` (access, segv), ``addr``/``write`` (fault), ``slot``/``addr``/``new_below``
    (split_vma: slot is the VMA's index in tree order).

    Compared: every frame but the upper-level page tables (all fields of a live frame), every
    PTE slot, PTE table, TLB and walk-cache entry of the pages and tables either state or the
    call involves, the rss counters of the live mms, the allocator's generation, and what
    every address maps to (covered, pgoff, compared flags, anonymous) -- the VMA layout up to
    merges, which the specification leaves to the implementation."""
    pre_v = before if isinstance(before, AbsValue) else abstract(before)
    post_v = after if isinstance(after, AbsValue) else abstract(after)
    ids = sorted(set(pre_v.vmas) | set(post_v.vmas))
    if "mm" not in args and op != "unchanged":
        raise ValueError("args needs the mm id ('mm')")
    opname, oargs, extra_vpns = _op_args(op, {"mm": ids[0], **args} if op == "unchanged" else args,
                                         ids)
    pre_r, post_r = pre_v.remap(ids), post_v.remap(ids)
    vpns = {v for (_, v) in pre_r.ptes} | {v for (_, v) in post_r.ptes} | \
        {v for (_, _, v) in pre_r.tlb} | {v for (_, _, v) in post_r.tlb}
    if op in ("access", "segv", "fault", "access_hit", "access_fill"):
        vpns |= set(extra_vpns)
    tables = {t for (_, t) in pre_r.tables} | {t for (_, t) in post_r.tables} | \
        {t for (_, _, t) in pre_r.pwc} | {t for (_, _, t) in post_r.pwc}
    nframes = max([0] + list(pre_r.frames) + list(post_r.frames) + list(pre_r.untracked) +
                  list(post_r.untracked)) + 1
    nvmas = max([len(v) for v in pre_r.vmas.values()] + [len(v) for v in post_r.vmas.values()]
                + [0]) + 2
    b = Bounds(vpns=tuple(sorted(vpns)), nframes=nframes, ncpus=max(pre_r.ncpus, post_r.ncpus),
               nvmas=nvmas, nmms=len(ids), tables=tuple(sorted(tables)))
    pre = AbsState.from_value(b, pre_r)
    want = AbsState.from_value(b, post_r)
    ch = Choices("ch")
    T = OPS[opname](pre, ch, **oargs)
    post = T.post
    s = z3.Solver()
    s.set("timeout", timeout_ms)
    s.add(T.relation())
    checks = _compare(post, want, pre_r, post_r, oargs, b)
    for name, cond in checks:
        s.assert_and_track(cond, name)
    r = s.check()
    if r == z3.sat:
        return RefinementResult(True, op, [])
    if r == z3.unknown:
        return RefinementResult(False, op, ["unknown"], f"z3: {s.reason_unknown()}")
    core = sorted(str(x) for x in s.unsat_core())
    # Describe the mismatch: the abstract post-state closest to the implementation's (the
    # most comparisons satisfied), and where the two differ.
    s2 = z3.Optimize()
    s2.set("timeout", timeout_ms)
    s2.add(T.relation())
    for name, cond in checks:
        s2.add_soft(cond, 1, id="cmp")
    detail = ""
    if s2.check() == z3.sat:
        mdl = s2.model()
        differ = [name for name, cond in checks
                  if z3.is_false(mdl.eval(cond, model_completion=True))]
        core = differ or core
        lines = []
        for name in core[:12]:
            lines.append(f"  {name}: spec allows {_show(mdl, post, name)}, "
                         f"impl has {_show(None, want, name)}")
        detail = "\n".join(lines)
    else:
        detail = (f"the operation's precondition does not hold in the pre-state "
                  f"(not a {op} the specification describes)")
    return RefinementResult(False, op, core, detail)


def _show(mdl, S: AbsState, name: str) -> str:
    """Evaluate the state part named by a comparison label (for messages)."""
    parts = name.split(":")
    if mdl is not None:
        def ev(t):
            return mdl.eval(t, model_completion=True)
    else:
        ev = z3.simplify
    try:
        kind = parts[0]
        if kind == "frame":
            return str({k: ev(v) for k, v in S.frames[int(parts[1])].f.items()})
        if kind == "pte":
            return str({k: ev(v) for k, v in S.ptes[int(parts[1]), int(parts[2])].f.items()})
        if kind == "tlb":
            key = (int(parts[1]), int(parts[2]), int(parts[3]))
            return str({k: ev(v) for k, v in S.tlb[key].f.items()})
        if kind == "pwc":
            key = (int(parts[1]), int(parts[2]), int(parts[3]))
            return str({k: ev(v) for k, v in S.pwc[key].f.items()})
        if kind == "table":
            return str({k: ev(v) for k, v in S.tables[int(parts[1]), int(parts[2])].f.items()})
        if kind == "rss":
            return str([ev(x) for x in S.rss[int(parts[1])]])
        if kind == "vma":
            m, x = int(parts[1]), int(parts[2])
            return str(_meaning_at(S, m, z3.IntVal(x), ev))
        if kind == "next_gen":
            return str(ev(S.next_gen))
    except Exception as e:  # a message helper must not hide the mismatch
        return f"? ({e})"
    return "?"


def _meaning(S: AbsState, m: int, x):
    """What page x of mm m maps to: (covered, pgoff of x, compared flags, anonymous)."""
    at = [(z3.And(r.valid, r.start <= x, x < r.end), r) for r in S.vmas[m]]
    cov = z3.Or(*[c for c, _ in at]) if at else z3.BoolVal(False)
    pg, fl, an = z3.IntVal(0), _bv(0), z3.BoolVal(False)
    for c, r in reversed(at):
        pg = z3.If(c, r.pgoff + (x - r.start), pg)
        fl = z3.If(c, r.flags & _bv(FLAGS_COMPARED), fl)
        an = z3.If(c, r.anon, an)
    return cov, pg, fl, an


def _meaning_at(S, m, x, ev):
    cov, pg, fl, an = _meaning(S, m, x)
    return {"covered": ev(cov), "pgoff": ev(pg), "flags": ev(fl), "anon": ev(an)}


def _compare(post: AbsState, want: AbsState, pre_v: AbsValue, post_v: AbsValue, oargs: dict,
             b: Bounds) -> list:
    out = []
    skip = pre_v.untracked | post_v.untracked
    for i in range(b.nframes):
        if i in skip:
            continue
        a, w = post.frames[i], want.frames[i]
        if i in post_v.frames:
            out.append((f"frame:{i}", a.eq(w)))
        else:
            out.append((f"frame:{i}", a.free))
    for k, w in want.ptes.items():
        a = post.ptes[k]
        d = post_v.ptes.get(k)
        name = f"pte:{k[0]}:{k[1]}"
        if d is None:
            out.append((name, a.kind == NONE))
        elif d["kind"] == PRESENT:
            out.append((name, a.eq(w)))
        elif d["kind"] == MIGRATION:
            out.append((name, a.eq(w, ("kind", "pfn", "write"))))
        else:
            out.append((name, a.kind == SWAP))
    for k, w in want.tables.items():
        a = post.tables[k]
        out.append((f"table:{k[0]}:{k[1]}", z3.And(a.valid == w.valid,
                                                   z3.Implies(w.valid, a.pfn == w.pfn))))
    for k, w in want.tlb.items():
        a = post.tlb[k]
        out.append((f"tlb:{k[0]}:{k[1]}:{k[2]}", z3.And(a.valid == w.valid,
                                                        z3.Implies(w.valid, a.eq(w)))))
    for k, w in want.pwc.items():
        a = post.pwc[k]
        out.append((f"pwc:{k[0]}:{k[1]}:{k[2]}", z3.And(a.valid == w.valid,
                                                        z3.Implies(w.valid, a.eq(w)))))
    for m in range(b.nmms):
        if m not in post_v.live:
            continue
        out.append((f"rss:{m}", z3.And(*[x == y for x, y in zip(post.rss[m], want.rss[m])])))
        points = set()
        for vv in (pre_v.vmas.get(m, []), post_v.vmas.get(m, [])):
            for d in vv:
                points |= {d["start"], d["end"]}
        for key in ("s", "e", "addr"):
            x = oargs.get(key)
            if x is not None and oargs.get("m") == m:
                points.add(z3.simplify(x).as_long())
        for x in sorted(points):
            xa = z3.IntVal(x)
            mine, theirs = _meaning(post, m, xa), _meaning(want, m, xa)
            cov = mine[0] == theirs[0]
            same = z3.And(*[p == q for p, q in zip(mine[1:], theirs[1:])])
            out.append((f"vma:{m}:{x}", z3.And(cov, z3.Implies(theirs[0], same))))
    out.append(("next_gen", post.next_gen == want.next_gen))
    return out
