"""The symbolic state view: the invariants' questions answered with z3 terms.

:class:`AbsState` is the abstract machine state of the specification (spec/abstract.py) over a
*bound*: a fixed set of virtual page numbers with PTE and TLB slots, a fixed number of physical
frames, CPUs, VMA slots and mms. Every field is a z3 term, so one class serves both uses:

* the proofs make every field a fresh variable (:meth:`AbsState.fresh`) and ask z3 whether an
  operation preserves the invariants for *all* states within the bound;
* the refinement check builds the state of a concrete machine as constants
  (:meth:`AbsState.from_value`) and asks whether the implementation's post-state is one the
  abstract operation allows.

:class:`SymbolicView` implements the view interface of spec/view.py (the one
:class:`~unmapcheck.spec.view.ConcreteView` implements) over an AbsState, so the invariants of
spec/invariants.py are evaluated with the z3 logic without being written a second time.

The state, per bound (``Bounds``):

* frames ``0..nframes-1`` (frame 0 is the shared zero page, as in the model's zone): free, gen,
  refcount, mapcount (page_mapcount, i.e. _mapcount + 1), anon, swapbacked, pagecache, dirty,
  is_table;
* per (mm, vpn): a PTE slot: kind (none / present / swap / migration), pfn, write, dirty,
  special;
* per (mm, table index = vpn >> 9): the PTE table covering it: valid, pfn (the upper levels of
  the page table are not part of the abstract state);
* per (cpu, mm, vpn): a TLB slot: valid, pfn, gen, write, dirty;
* per (cpu, mm, table index): a paging-structure-cache slot for the PTE table: valid, pfn, gen;
* per mm: VMA slots (valid, start, end in page numbers, pgoff, flags, anon) in no particular
  order (the tree order is the order of their starts), the four rss counters, map_count;
* next_gen: the number of generations the allocator has handed out (a frame allocated later
  gets a larger generation).

Quantifier domains are the slots; a slot that may not exist carries its existence as
``guard``, which the z3 logic (spec/logic.py) puts in front of every body.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable, Optional

import z3

from unmapcheck.impl.constants import NR_MM_COUNTERS, PAGE_SHIFT
from unmapcheck.impl.pte import MIGRATION, NONE, PRESENT, SWAP

PTRS_SHIFT = 9          # vpn >> 9: the index of the PTE table (one PMD entry's span)


# --- C words -----------------------------------------------------------------------------------
class Word:
    """A symbolic ``unsigned long`` for the invariants' arithmetic on event fields.

    Over a 64-bit bit-vector it has C's semantics (wrapping +/-, logical >>, unsigned
    comparisons); over a z3 Int it is a mathematical non-negative integer (the abstract
    specification's addresses). Python ints mix in freely. ``bool()`` of a Word is an error:
    an invariant must not branch on a symbolic value."""

    __slots__ = ("t",)

    def __init__(self, t):
        self.t = t

    @property
    def bv(self) -> bool:
        return z3.is_bv(self.t)

    def _o(self, x):
        if isinstance(x, Word):
            return x.t
        if isinstance(x, int):
            return z3.BitVecVal(x & ((1 << 64) - 1), 64) if self.bv else z3.IntVal(x)
        return x

    def __add__(self, x):
        return Word(self.t + self._o(x))

    __radd__ = __add__

    def __sub__(self, x):
        return Word(self.t - self._o(x))

    def __rsub__(self, x):
        return Word(self._o(x) - self.t)

    def __rshift__(self, n: int):
        return Word(z3.LShR(self.t, n) if self.bv else self.t / (1 << n))

    def __lshift__(self, n: int):
        return Word(self.t << n if self.bv else self.t * (1 << n))

    def __and__(self, x):
        return Word(self.t & self._o(x))

    def __lt__(self, x):
        return z3.ULT(self.t, self._o(x)) if self.bv else self.t < self._o(x)

    def __le__(self, x):
        return z3.ULE(self.t, self._o(x)) if self.bv else self.t <= self._o(x)

    def __gt__(self, x):
        return z3.UGT(self.t, self._o(x)) if self.bv else self.t > self._o(x)

    def __ge__(self, x):
        return z3.UGE(self.t, self._o(x)) if self.bv else self.t >= self._o(x)

    def __eq__(self, x):  # type: ignore[override]
        return self.t == self._o(x)

    def __ne__(self, x):  # type: ignore[override]
        return self.t != self._o(x)

    def __hash__(self) -> int:
        return id(self)

    def __bool__(self):
        raise TypeError("a symbolic Word has no truth value: use the logic's connectives")

    def __repr__(self) -> str:
        return f"Word({self.t})"


class GDict(dict):
    """An event record (a VMA's fields ...) that may not exist: a dict with a ``guard``."""

    def __init__(self, *a, guard=None, **kw):
        super().__init__(*a, **kw)
        self.guard = guard


# --- bounds and records ------------------------------------------------------------------------
@dataclass(frozen=True)
class Bounds:
    vpns: tuple            # page numbers with PTE and TLB slots
    nframes: int
    ncpus: int
    nvmas: int             # VMA slots per mm
    nmms: int
    tables: tuple = ()     # table indices (vpn >> 9) with table and walk-cache slots

    def __post_init__(self):
        need = tuple(sorted({v >> PTRS_SHIFT for v in self.vpns} | set(self.tables)))
        object.__setattr__(self, "tables", need)
        object.__setattr__(self, "vpns", tuple(sorted(self.vpns)))

    def describe(self) -> str:
        return (f"{len(self.vpns)} pages, {self.nframes} frames, {self.ncpus} CPUs, "
                f"{self.nvmas} VMA slots, {self.nmms} mm{'s' if self.nmms > 1 else ''}")


BOOL, INT, BV64 = "bool", "int", "bv64"
FRAME_FIELDS = (("free", BOOL), ("gen", INT), ("refcount", INT), ("mapcount", INT),
                ("anon", BOOL), ("swapbacked", BOOL), ("pagecache", BOOL), ("dirty", BOOL),
                ("is_table", BOOL))
PTE_FIELDS = (("kind", INT), ("pfn", INT), ("write", BOOL), ("dirty", BOOL), ("special", BOOL))
TABLE_FIELDS = (("valid", BOOL), ("pfn", INT))
TLB_FIELDS = (("valid", BOOL), ("pfn", INT), ("gen", INT), ("write", BOOL), ("dirty", BOOL))
PWC_FIELDS = (("valid", BOOL), ("pfn", INT), ("gen", INT))
VMA_FIELDS = (("valid", BOOL), ("start", INT), ("end", INT), ("pgoff", INT), ("flags", BV64),
              ("anon", BOOL))


def _var(name: str, sort: str):
    if sort == BOOL:
        return z3.Bool(name)
    if sort == INT:
        return z3.Int(name)
    return z3.BitVec(name, 64)


def _val(v: Any, sort: str):
    if sort == BOOL:
        return z3.BoolVal(bool(v))
    if sort == INT:
        return z3.IntVal(int(v))
    return z3.BitVecVal(int(v) & ((1 << 64) - 1), 64)


class Rec:
    """One slot's fields (a name -> z3 term mapping with attribute access)."""

    __slots__ = ("f", "fields")

    def __init__(self, fields: tuple, values: dict):
        object.__setattr__(self, "fields", fields)
        object.__setattr__(self, "f", values)

    @classmethod
    def fresh(cls, fields: tuple, name: str) -> "Rec":
        return cls(fields, {k: _var(f"{name}.{k}", s) for k, s in fields})

    @classmethod
    def const(cls, fields: tuple, values: dict) -> "Rec":
        return cls(fields, {k: _val(values.get(k, 0), s) for k, s in fields})

    def __getattr__(self, k):
        try:
            return self.f[k]
        except KeyError:
            raise AttributeError(k) from None

    def replace(self, **kw) -> "Rec":
        d = dict(self.f)
        for k, v in kw.items():
            sort = dict(self.fields)[k]
            d[k] = _val(v, sort) if isinstance(v, (bool, int)) else v
        return Rec(self.fields, d)

    def ite(self, c, other: "Rec") -> "Rec":
        """c ? self : other, field by field."""
        if self is other:
            return self
        return Rec(self.fields, {k: z3.If(c, self.f[k], other.f[k]) for k, _ in self.fields})

    def eq(self, other: "Rec", only: Optional[Iterable[str]] = None):
        ks = list(only) if only is not None else [k for k, _ in self.fields]
        return z3.And(*[self.f[k] == other.f[k] for k in ks])


NONE_PTE = {"kind": NONE, "pfn": 0, "write": False, "dirty": False, "special": False}


class AbsState:
    """The abstract state within a bound (see the module docstring)."""

    def __init__(self, b: Bounds):
        self.b = b
        self.frames: list[Rec] = []
        self.ptes: dict[tuple, Rec] = {}
        self.tables: dict[tuple, Rec] = {}
        self.tlb: dict[tuple, Rec] = {}
        self.pwc: dict[tuple, Rec] = {}
        self.vmas: dict[int, list[Rec]] = {}
        self.rss: dict[int, list] = {}
        self.map_count: dict[int, Any] = {}
        self.next_gen: Any = None

    # --- construction ----------------------------------------------------------------------
    @classmethod
    def fresh(cls, b: Bounds, name: str = "s") -> "AbsState":
        s = cls(b)
        s.frames = [Rec.fresh(FRAME_FIELDS, f"{name}.frame{i}") for i in range(b.nframes)]
        for m in range(b.nmms):
            for v in b.vpns:
                s.ptes[m, v] = Rec.fresh(PTE_FIELDS, f"{name}.mm{m}.pte{v}")
                for c in range(b.ncpus):
                    s.tlb[c, m, v] = Rec.fresh(TLB_FIELDS, f"{name}.cpu{c}.tlb.mm{m}.{v}")
            for t in b.tables:
                s.tables[m, t] = Rec.fresh(TABLE_FIELDS, f"{name}.mm{m}.table{t}")
                for c in range(b.ncpus):
                    s.pwc[c, m, t] = Rec.fresh(PWC_FIELDS, f"{name}.cpu{c}.pwc.mm{m}.{t}")
            s.vmas[m] = [Rec.fresh(VMA_FIELDS, f"{name}.mm{m}.vma{i}") for i in range(b.nvmas)]
            s.rss[m] = [z3.Int(f"{name}.mm{m}.rss{k}") for k in range(NR_MM_COUNTERS)]
            s.map_count[m] = z3.Int(f"{name}.mm{m}.map_count")
        s.next_gen = z3.Int(f"{name}.next_gen")
        return s

    @classmethod
    def from_value(cls, b: Bounds, val) -> "AbsState":
        """Constants for a concrete abstract value (spec/abstract.py AbsValue)."""
        s = cls(b)
        free = {"free": True}
        s.frames = [Rec.const(FRAME_FIELDS, val.frames.get(i, free)) for i in range(b.nframes)]
        for m in range(b.nmms):
            for v in b.vpns:
                s.ptes[m, v] = Rec.const(PTE_FIELDS, val.ptes.get((m, v), NONE_PTE))
                for c in range(b.ncpus):
                    s.tlb[c, m, v] = Rec.const(TLB_FIELDS, val.tlb.get((c, m, v), {}))
            for t in b.tables:
                s.tables[m, t] = Rec.const(TABLE_FIELDS, val.tables.get((m, t), {}))
                for c in range(b.ncpus):
                    s.pwc[c, m, t] = Rec.const(PWC_FIELDS, val.pwc.get((c, m, t), {}))
            vs = list(val.vmas.get(m, []))
            if len(vs) > b.nvmas:
                raise ValueError(f"mm{m} has {len(vs)} VMAs, the bound has {b.nvmas} slots")
            vs += [{}] * (b.nvmas - len(vs))
            s.vmas[m] = [Rec.const(VMA_FIELDS, dict(d, valid=bool(d))) for d in vs]
            s.rss[m] = [z3.IntVal(x) for x in val.rss.get(m, [0] * NR_MM_COUNTERS)]
            s.map_count[m] = z3.IntVal(val.map_count.get(m, 0))
        s.next_gen = z3.IntVal(val.next_gen)
        return s

    def copy(self) -> "AbsState":
        s = AbsState(self.b)
        s.frames = list(self.frames)
        s.ptes = dict(self.ptes)
        s.tables = dict(self.tables)
        s.tlb = dict(self.tlb)
        s.pwc = dict(self.pwc)
        s.vmas = {m: list(v) for m, v in self.vmas.items()}
        s.rss = {m: list(v) for m, v in self.rss.items()}
        s.map_count = dict(self.map_count)
        s.next_gen = self.next_gen
        return s

    def ite(self, c, other: "AbsState") -> "AbsState":
        """c ? self : other, slot by slot."""
        s = AbsState(self.b)
        s.frames = [a.ite(c, b) for a, b in zip(self.frames, other.frames)]
        for name in ("ptes", "tables", "tlb", "pwc"):
            mine, theirs = getattr(self, name), getattr(other, name)
            setattr(s, name, {k: mine[k].ite(c, theirs[k]) for k in mine})
        s.vmas = {m: [a.ite(c, b) for a, b in zip(self.vmas[m], other.vmas[m])]
                  for m in self.vmas}
        s.rss = {m: [z3.If(c, a, b) for a, b in zip(self.rss[m], other.rss[m])]
                 for m in self.rss}
        s.map_count = {m: z3.If(c, self.map_count[m], other.map_count[m])
                       for m in self.map_count}
        s.next_gen = z3.If(c, self.next_gen, other.next_gen)
        return s

    # --- helpers ---------------------------------------------------------------------------
    def frame_field(self, idx, k: str, default):
        """Field *k* of the frame at index *idx* (an int or a z3 term); *default* when the
        index is out of range (the concrete view's frame(pfn) is None then)."""
        if isinstance(idx, int):
            return self.frames[idx].f[k] if 0 <= idx < self.b.nframes else default
        out = default
        for i in reversed(range(self.b.nframes)):
            out = z3.If(idx == i, self.frames[i].f[k], out)
        return out

    def in_frames(self, idx):
        if isinstance(idx, int):
            return z3.BoolVal(0 <= idx < self.b.nframes)
        return z3.And(idx >= 0, idx < self.b.nframes)

    def table_of(self, v: int) -> int:
        return v >> PTRS_SHIFT

    def covers(self, m: int, v) -> Any:
        return z3.Or(*[z3.And(x.valid, x.start <= v, v < x.end) for x in self.vmas[m]])


# --- handles ---------------------------------------------------------------------------------
class _H:
    guard = None

    def with_guard(self, g):
        c = copy.copy(self)
        c.guard = g if self.guard is None else z3.And(self.guard, g)
        return c


class SMm(_H):
    def __init__(self, m: int):
        self.m = m

    def __eq__(self, o):  # type: ignore[override]
        return isinstance(o, SMm) and o.m == self.m

    def __hash__(self) -> int:
        return hash(("mm", self.m))

    def __repr__(self) -> str:
        return f"mm{self.m}"


class SFrame(_H):
    def __init__(self, idx):
        self.idx = idx

    def __eq__(self, o):  # type: ignore[override]
        """Same frame: a Python bool for two concrete indices, else a z3 term."""
        if not isinstance(o, SFrame):
            return False
        if isinstance(self.idx, int) and not isinstance(o.idx, int):
            return o.idx == self.idx
        return self.idx == o.idx

    def __hash__(self) -> int:
        return id(self)

    def __repr__(self) -> str:
        return f"frame[{self.idx}]"


class SPte(_H):
    def __init__(self, m: int, v: int, rec: Rec):
        self.m, self.v, self.rec = m, v, rec

    def __repr__(self) -> str:
        return f"mm{self.m}.pte[{self.v:#x}]"


class STlb(_H):
    def __init__(self, c: int, m: int, v: int, rec: Rec):
        self.c, self.m, self.v, self.rec = c, m, v, rec

    def __repr__(self) -> str:
        return f"cpu{self.c}.tlb[mm{self.m}:{self.v:#x}]"


class SPwc(_H):
    def __init__(self, c: int, m: int, t: int, rec: Rec):
        self.c, self.m, self.t, self.rec = c, m, t, rec

    def __repr__(self) -> str:
        return f"cpu{self.c}.pwc[mm{self.m}:{self.t}]"


class SVma(_H):
    def __init__(self, m: int, i: int, rec: Rec):
        self.m, self.i, self.rec = m, i, rec

    def __repr__(self) -> str:
        return f"mm{self.m}.vma[{self.i}]"


class STable(_H):
    def __init__(self, m: int, t: Optional[int], rec: Optional[Rec]):
        self.m, self.t, self.rec = m, t, rec

    def __repr__(self) -> str:
        return f"mm{self.m}.pgd" if self.t is None else f"mm{self.m}.table[{self.t}]"


_NONE_REC = Rec.const(PTE_FIELDS, NONE_PTE)


# --- the view --------------------------------------------------------------------------------
class SymbolicView:
    """The view interface of spec/view.py over an :class:`AbsState` (z3 terms)."""

    def __init__(self, state: AbsState):
        self.s = state
        self.b = state.b
        from .logic import z3_logic
        self.logic = z3_logic()

    # --- domains ---------------------------------------------------------------------------
    def mms(self) -> list:
        return [SMm(m) for m in range(self.b.nmms)]

    def frames(self) -> list:
        return [SFrame(i) for i in range(self.b.nframes)]

    def ptes(self) -> list:
        return [p for m in range(self.b.nmms) for p in self.ptes_of(SMm(m))]

    def ptes_of(self, mm) -> list:
        out = []
        for v in self.b.vpns:
            rec = self.s.ptes[mm.m, v]
            out.append(SPte(mm.m, v, rec).with_guard(rec.kind != NONE))
        return out

    def page_table_locked(self) -> bool:
        """The abstract operations are atomic: no page-table lock is held between them."""
        return False

    def tlb_entries(self) -> list:
        return [STlb(c, m, v, r).with_guard(r.valid) for (c, m, v), r in self.s.tlb.items()]

    def pwc_entries(self) -> list:
        return [SPwc(c, m, t, r).with_guard(r.valid) for (c, m, t), r in self.s.pwc.items()]

    def table_readers(self, pfn, gen) -> list:
        """The abstract specification has no lockless walkers (its operations are atomic)."""
        return []

    def vmas(self, mm) -> list:
        return [SVma(mm.m, i, r).with_guard(r.valid) for i, r in enumerate(self.s.vmas[mm.m])]

    def vma_pairs(self, mm) -> list:
        """Neighbours in tree order. The slots are unordered, so every ordered pair (a, b) of
        distinct valid slots with start(a) <= start(b) stands for "a before b"; for a tree
        whose VMAs are non-empty this says the same as the concrete view's neighbour pairs.
        The pair's condition rides on b's guard (a tuple's guard is its parts')."""
        vs = self.vmas(mm)
        return [(a, b.with_guard(a.rec.start <= b.rec.start))
                for a in vs for b in vs if a.i != b.i]

    def select(self, domain: Iterable, pred) -> list:
        return [x.with_guard(self.logic._b(pred(self, self.logic, x))) for x in domain]

    # --- frames ----------------------------------------------------------------------------
    def frame(self, pfn) -> SFrame:
        return SFrame(pfn)

    def frame_free(self, f):
        return z3.Or(z3.Not(self.s.in_frames(f.idx)),
                     self.s.frame_field(f.idx, "free", z3.BoolVal(True)))

    def frame_gen(self, f):
        return self.s.frame_field(f.idx, "gen", z3.IntVal(-1))

    def refcount(self, f):
        return self.s.frame_field(f.idx, "refcount", z3.IntVal(0))

    def mapcount(self, f):
        return self.s.frame_field(f.idx, "mapcount", z3.IntVal(0))

    def refcount_unheld(self, f):
        # The abstract state has no reference holders (REFCOUNT.exact is concrete_only: the
        # proofs do not encode it; the method keeps the two views' interfaces the same).
        return z3.IntVal(0)

    def frame_anon(self, f):
        return self.s.frame_field(f.idx, "anon", z3.BoolVal(False))

    def frame_swap_shared(self, f):
        # The abstract state has no swap cache: no page is shared through a swap slot.
        return z3.BoolVal(False)

    def frame_byte(self, pfn, offset):
        # The abstract state has no page contents (LOST_WRITE.cow is concrete_only and its
        # event, cow_copy, is not one an abstract operation reports): nothing to encode.
        raise NotImplementedError("the abstract state has no page contents")

    def pte_maps_freed_anon_vma(self, p):
        # The abstract state has no anon_vma lifetime: never freed (RMAP.anon_vma is
        # judged on concrete states only).
        return z3.BoolVal(False)

    def pte_maps_foreign_file_page(self, p):
        # The abstract state has no page cache index: every file PTE maps its own page
        # (RMAP.file is judged on concrete states only).
        return z3.BoolVal(False)

    def pte_writes_private_pagecache(self, p):
        # The abstract state does not tell page-cache pages from anonymous ones by VMA
        # sharing (RMAP.private_file is judged on concrete states only).
        return z3.BoolVal(False)

    def pte_writes_clean_shared_file(self, p):
        # The abstract state has no write-notify mappings (LOST_WRITE.notify is judged on
        # concrete states only).
        return z3.BoolVal(False)

    def clean_file_pages(self) -> list:
        # The abstract state has no page contents and no disk (LOST_WRITE.clean is judged on
        # concrete states only).
        return []

    def page_matches_disk(self, page):
        return z3.BoolVal(True)

    def rmap_chain_entries(self) -> list:
        # The abstract state has no reverse maps (RMAP.chains is judged on concrete states
        # only).
        return []

    def page_tables_of(self, mm) -> list:
        # The abstract state has no page tables above the PTE level and no table spans
        # (PTE_IN_VMA.table is judged on concrete states only).
        return []

    def vm_intersects(self, mm, start, end):
        return z3.BoolVal(True)

    def vma_live(self, v):
        return z3.BoolVal(True)

    def frame_pagecache(self, f):
        return self.s.frame_field(f.idx, "pagecache", z3.BoolVal(False))

    def frame_swapbacked(self, f):
        return self.s.frame_field(f.idx, "swapbacked", z3.BoolVal(False))

    def frame_dirty(self, f):
        return self.s.frame_field(f.idx, "dirty", z3.BoolVal(False))

    def frame_is_table(self, f):
        return z3.And(z3.Not(self.frame_free(f)),
                      self.s.frame_field(f.idx, "is_table", z3.BoolVal(False)))

    @staticmethod
    def frame_is_zero(f):
        return f.idx == 0

    # --- PTEs ------------------------------------------------------------------------------
    @staticmethod
    def pte_mm(p):
        return SMm(p.m)

    @staticmethod
    def pte_vpn(p):
        return p.v

    @staticmethod
    def pte_present(p):
        return p.rec.kind == PRESENT

    @staticmethod
    def pte_protnone(p):
        # The abstract state has no PROT_NONE encoding: its mprotect keeps a present PTE
        # present (read-only), so no symbolic PTE is protnone.
        return z3.BoolVal(False)

    @staticmethod
    def pte_swap(p):
        return p.rec.kind == SWAP

    @staticmethod
    def pte_migration(p):
        return p.rec.kind == MIGRATION

    @staticmethod
    def pte_special(p):
        return p.rec.special

    @staticmethod
    def pte_pfn(p):
        return p.rec.pfn

    @staticmethod
    def pte_write(p):
        return p.rec.write

    @staticmethod
    def pte_dirty(p):
        return p.rec.dirty

    def pte_lookup(self, mm, vpn):
        if not isinstance(vpn, int):
            raise TypeError("pte_lookup needs a concrete page number in a symbolic view")
        rec = self.s.ptes.get((mm.m, vpn), _NONE_REC)
        return SPte(mm.m, vpn, rec)

    # --- TLB and walk cache ----------------------------------------------------------------
    @staticmethod
    def tlb_cpu(t):
        return t.c

    @staticmethod
    def tlb_mm(t):
        return SMm(t.m)

    @staticmethod
    def tlb_vpn(t):
        return t.v

    @staticmethod
    def tlb_pfn(t):
        return t.rec.pfn

    @staticmethod
    def tlb_gen(t):
        return t.rec.gen

    @staticmethod
    def tlb_write(t):
        return t.rec.write

    @staticmethod
    def tlb_dirty(t):
        return t.rec.dirty

    @staticmethod
    def tlb_tick(t):
        """Every entry of an abstract state existed before the operation that is judged
        (operations are atomic): fill time 0, and a call's start tick is 0."""
        return 0

    @staticmethod
    def pwc_pfn(w):
        return w.rec.pfn

    @staticmethod
    def pwc_gen(w):
        return w.rec.gen

    # --- VMAs and counters -----------------------------------------------------------------
    @staticmethod
    def vma_start(v):
        return v.rec.start

    @staticmethod
    def vma_end(v):
        return v.rec.end

    @staticmethod
    def vma_pgoff(v):
        return v.rec.pgoff

    @staticmethod
    def vma_flags(v):
        return v.rec.flags

    def rss(self, mm, member: int):
        return self.s.rss[mm.m][member]

    def map_count(self, mm):
        return self.s.map_count[mm.m]

    def tree_size(self, mm):
        return z3.Sum([z3.If(r.valid, 1, 0) for r in self.s.vmas[mm.m]])

    @staticmethod
    def mm_id(mm):
        return mm.m

    @staticmethod
    def mm_exited(mm) -> bool:
        """Abstract mms have no lifetime: exit_mmap empties one (no VMA, map_count 0)."""
        return False

    def vm_covers(self, mm, vpn):
        return self.s.covers(mm.m, vpn)

    def vm_writable(self, mm, vpn):
        from unmapcheck.impl.constants import VM_WRITE
        bit = z3.BitVecVal(VM_WRITE, 64)
        return z3.Or(*[z3.And(x.valid, x.start <= vpn, vpn < x.end, (x.flags & bit) != 0)
                       for x in self.s.vmas[mm.m]])

    def table_frames(self, mm) -> list:
        """The pgd (always there) and the PTE tables (the upper levels are not modelled)."""
        return [STable(mm.m, None, None)] + \
            [STable(mm.m, t, self.s.tables[mm.m, t]).with_guard(self.s.tables[mm.m, t].valid)
             for t in self.b.tables]

    def describe(self, x: Any) -> str:
        return repr(x)


def vma_event_record(rec: Rec, guard=None) -> GDict:
    """A VMA as the invariants' event records hold it (byte addresses, as the model reports
    them), over the abstract state's page-number Ints."""
    return GDict(start=Word(rec.start * (1 << PAGE_SHIFT)), end=Word(rec.end * (1 << PAGE_SHIFT)),
                 pgoff=Word(rec.pgoff), flags=rec.flags, guard=guard)
