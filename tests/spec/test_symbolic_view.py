"""spec/symbolic.py's SymbolicView against spec/view.py's ConcreteView.

Both answer the same questions; evaluated on the same state (a live machine, and the
constant abstract state of its abstraction), every state invariant of spec/invariants.py
must come out the same, holding or not.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest
import z3

from unmapcheck.impl import MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, PAGE_SIZE
from unmapcheck.spec import abstract as A
from unmapcheck.spec.symbolic import AbsState, Bounds, SymbolicView, Word
from unmapcheck.spec.view import ConcreteView

sys.path.insert(0, str(Path(__file__).parent))
from test_refinement import BASE, Harness  # noqa: E402

P = PAGE_SIZE


def constant_state(machine) -> AbsState:
    v = A.abstract(machine)
    ids = sorted(v.vmas)
    r = v.remap(ids)
    vpns = {p for (_, p) in r.ptes} | {p for (_, _, p) in r.tlb} | {BASE >> 12}
    tables = {t for (_, t) in r.tables} | {t for (_, _, t) in r.pwc}
    nframes = max([0] + list(r.frames) + list(r.untracked)) + 1
    b = Bounds(vpns=tuple(vpns), nframes=nframes, ncpus=r.ncpus,
               nvmas=max([len(x) for x in r.vmas.values()] + [1]), nmms=len(ids),
               tables=tuple(tables))
    return AbsState.from_value(b, r)


def agree(machine) -> dict:
    S = ConcreteView(machine)
    state = constant_state(machine)
    out = {}
    for inv in A.state_invariants():
        concrete = inv.witness(S) is None
        t = z3.simplify(A.encode(inv, state))
        assert z3.is_true(t) or z3.is_false(t), (inv.name, t)
        assert concrete == z3.is_true(t), (inv.name, concrete)
        out[inv.name] = concrete
    return out


def test_interfaces_are_the_same():
    pub = lambda cls: {n for n in dir(cls) if not n.startswith("_")}
    assert pub(ConcreteView) == pub(SymbolicView)


@pytest.mark.parametrize("seed", range(4))
def test_invariants_agree_on_every_state_of_a_random_run(seed):
    rng = random.Random(seed)
    h = Harness(procs=2)
    for _ in range(12):
        h.pick(rng)
        getattr(h, rng.choice(["mmap", "mmap", "access", "access", "munmap", "dontneed"]))(rng)
        assert all(agree(h.sys.machine).values())


def test_invariants_agree_when_they_fail():
    h = Harness()
    h.p.mmap(BASE, 2 * P, 3, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    h.p.store(BASE, 1, cpu=0)
    h.p.mm.rss_stat[1] += 1                          # an rss leak
    page = h.sys.machine.zone.pfn_to_page(h.sys.machine.cpus[0].tlb[h.mm, BASE >> 12].pfn)
    page._mapcount += 1                              # a mapcount leak
    res = agree(h.sys.machine)
    assert res["I2.exact"] is False and res["I4.exact"] is False
    assert res["VMA_TREE.sorted"] is True


def test_coherent_agrees_on_a_stale_tlb_entry():
    """I1.coherent (every TLB entry of a live mm agrees with its PTE once no thread is in the
    kernel) holds on a clean state and fails, in both views, when a PTE is cleared behind
    the TLB's back."""
    from unmapcheck.impl.pgtable import lookup_pte
    h = Harness()
    h.p.mmap(BASE, 2 * P, 3, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED)
    h.p.store(BASE, 1, cpu=1)
    h.p.load(BASE + P, cpu=0)
    assert agree(h.sys.machine)["I1.coherent"] is True
    ptep = lookup_pte(h.p.mm, BASE)
    del ptep.table.table[ptep.idx]                   # the PTE goes, CPU1's TLB keeps it
    res = agree(h.sys.machine)
    assert res["I1.coherent"] is False and res["VMA_TREE.sorted"] is True


def test_word_is_unsigned_on_bitvectors_and_exact_on_ints():
    x = Word(z3.BitVecVal(2 ** 63, 64))
    assert z3.is_true(z3.simplify(x > 1))                 # unsigned, not negative
    assert z3.is_true(z3.simplify((x >> 62) == 2))        # logical shift
    assert z3.is_true(z3.simplify((Word(z3.BitVecVal(0, 64)) - 1) == (1 << 64) - 1))
    y = Word(z3.IntVal(3 * P + 5))
    assert z3.is_true(z3.simplify((y >> 12) == 3))
    with pytest.raises(TypeError):
        bool(x)
