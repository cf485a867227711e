"""The oracle stays in its window: ``sequence.refusal`` checked against an independent
statement of the kernel's argument checks, and MAP_FIXED calls outside the window refused on
both sides.

The independent statement (:func:`prologue`) follows each system call's first lines in Linux
6.18 on the real 64-bit values, for a given window base: it says whether the call is rejected
(or does nothing) before it looks at a VMA, or else which address range it acts on. The
property: for every call ``refusal`` lets run, and for every base a window could have (both
runners' bases among them), the call is rejected by that prologue or acts only inside the
window, or is a non-fixed mmap (the kernel places it in free space) or fork.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unmapcheck.checker.oracle import model as M
from unmapcheck.checker.oracle import real as R
from unmapcheck.checker.oracle import sequence as S
from unmapcheck.checker.oracle.compare import compare
from unmapcheck.checker.oracle.sequence import Call, File, Sequence
from unmapcheck.checker.oracle.strategies import sequences

P = 4096
U64 = (1 << 64) - 1
TASK_SIZE = (1 << 47) - P
RW = S.PROT_READ | S.PROT_WRITE
ANON = S.MAP_PRIVATE | S.MAP_ANONYMOUS
PMD = 2 << 20


def _bases(size: int) -> list[int]:
    """Window bases to check a call against: the real runner's usual one, the model's, and
    2 MiB-aligned bases low and high in the address space (the rule may not depend on it)."""
    top = (TASK_SIZE - size - (8 << 20)) & ~(PMD - 1)
    return [R.WINDOW_HINT, M.MODEL_WINDOW_BASE, 1 << 30, top]


def _page_align(v: int) -> int:
    return (v + P - 1) & U64 & ~(P - 1)


def prologue(c: Call, base: int):
    """What the kernel does first with ``c`` at window ``base`` (Linux 6.18, x86-64):
    ``"rejected"`` (an error or a no-op before any VMA is looked at), ``"free space"`` (an mmap
    the kernel places), ``"unknown"`` (its extent is not computed here: anonymous hugetlb) or
    the absolute range ``(start, end)`` it acts on."""
    addr = (base + c.addr) & U64
    n = c.length
    if c.op == "fork":
        return "rejected"                       # touches no range
    if c.op in ("load", "store"):
        return addr, addr + 1
    if c.op == "mmap":
        # arch/x86/kernel/sys_x86_64.c: if (off & ~PAGE_MASK) return -EINVAL;
        if c.offset & (P - 1):
            return "rejected"
        # ksys_mmap_pgoff(): anonymous MAP_HUGETLB rounds len to the huge page size.
        if c.flags & S.MAP_ANONYMOUS and c.flags & 0x40000:
            return "unknown"
        # do_mmap(): if (!len) -EINVAL; len = PAGE_ALIGN(len); if (!len) -ENOMEM;
        if n == 0 or _page_align(n) == 0:
            return "rejected"
        ln = _page_align(n)
        # __get_unmapped_area(): if (len > TASK_SIZE) return -ENOMEM;
        if ln > TASK_SIZE:
            return "rejected"
        if c.flags & (S.MAP_FIXED | S.MAP_FIXED_NOREPLACE):
            return addr, addr + ln
        return "free space"
    if c.op == "munmap":
        # do_vmi_munmap(): offset_in_page(start) || start > TASK_SIZE || len > TASK_SIZE-start
        if addr & (P - 1) or addr > TASK_SIZE or n > TASK_SIZE - addr:
            return "rejected"
        end = addr + _page_align(n)
        if end == addr:
            return "rejected"
        return addr, end
    if c.op == "mprotect":
        grows = c.prot & (S.PROT_GROWSDOWN | S.PROT_GROWSUP)
        if grows == S.PROT_GROWSDOWN | S.PROT_GROWSUP or addr & (P - 1) or n == 0:
            return "rejected"
        end = (addr + _page_align(n)) & U64
        if end <= addr:
            return "rejected"
        # PROT_GROWSDOWN: down to the start of the VMA holding addr, which lies inside the
        # window when addr does (no VMA crosses its boundary: checked by the real child).
        return addr, end
    if c.op == "madvise":
        ln = _page_align(n)
        if addr & (P - 1) or (n and not ln):
            return "rejected"
        end = (addr + ln) & U64
        if end < addr or end == addr:
            return "rejected"
        return addr, end
    if c.op in ("mlock", "munlock"):
        ln = _page_align((n + (addr & (P - 1))) & U64)
        start = addr & ~(P - 1)
        end = (start + ln) & U64
        if end <= start:                        # -EINVAL (wrapped) or 0 (empty)
            return "rejected"
        return start, end
    raise AssertionError(c.op)


def assert_stays_in_window(c: Call, size: int) -> None:
    if S.refusal(c, size) is not None:
        return
    for base in _bases(size):
        what = prologue(c, base)
        assert what != "unknown", f"{c.describe()} runs, but its extent is unknown"
        if isinstance(what, tuple):
            lo, hi = what
            assert base <= lo <= hi <= base + size, \
                f"{c.describe()} runs and acts on {lo - base:#x}..{hi - base:#x} of a window " \
                f"of {size:#x} (base {base:#x})"


# --- calls, from the project's generator and from a wider one -------------------------------
def _addrs(w: int):
    return st.one_of(
        st.integers(0, w // P).map(lambda i: i * P),
        st.integers(-4 * P, w + 4 * P),
        st.sampled_from([-P, -1, w - 1, w, w + P, S.GAP, -S.GAP, 1 << 47, 1 << 63, U64 - P + 1,
                         -(1 << 47), U64, -U64, TASK_SIZE]),
        st.integers(-U64, U64))


LENGTHS = st.one_of(
    st.integers(0, 16).map(lambda i: i * P), st.integers(0, 20 * P),
    st.sampled_from([0, 1, P - 1, P, TASK_SIZE, TASK_SIZE + 1, TASK_SIZE + P, 1 << 47,
                     (1 << 47) + 1, 1 << 63, U64, U64 - P + 1, U64 - P, U64 - 2 * P + 2]),
    st.integers(0, U64))

FLAG_BITS = [S.MAP_NAMES[n] for n in S.MAP_NAMES] + [0x08, 1 << 26, 21 << 26, 30 << 26]


@st.composite
def calls(draw, w: int):
    op = draw(st.sampled_from(list(S.OPS)))
    if op == "fork":
        return Call.fork()
    addr = draw(_addrs(w))
    if op == "load":
        return Call.load(addr)
    if op == "store":
        return Call.store(addr, 1)
    n = draw(LENGTHS)
    if op == "mmap":
        flags = 0
        for b in draw(st.lists(st.sampled_from(FLAG_BITS), max_size=5)):
            flags |= b
        off = draw(st.one_of(st.just(0), st.integers(0, 8).map(lambda i: i * P),
                             st.sampled_from([1, 1 << 63, U64 - P + 1, U64]),
                             st.integers(0, U64)))
        file = draw(st.sampled_from([None, "f"]))
        return Call.mmap(addr, n, draw(st.integers(0, 7)), flags, file, off)
    if op == "mprotect":
        prot = draw(st.sampled_from([0, RW, S.PROT_READ | S.PROT_GROWSDOWN,
                                     S.PROT_READ | S.PROT_GROWSUP,
                                     S.PROT_GROWSDOWN | S.PROT_GROWSUP, 0x8]))
        return Call.mprotect(addr, n, prot)
    if op == "madvise":
        return Call.madvise(addr, n, draw(st.sampled_from([4, 8, 9, 22, 23, 999])))
    return getattr(Call, op)(addr, n)


CHECK = settings(max_examples=2000, derandomize=True, deadline=None, database=None,
                 suppress_health_check=list(HealthCheck))


@CHECK
@given(st.sampled_from([1, 16, 64, 1 << 18]).flatmap(
    lambda w: st.tuples(st.just(w), calls(w * P))))
def test_every_call_refusal_accepts_stays_in_the_window(wc):
    w, c = wc
    assert_stays_in_window(c, w * P)


@settings(max_examples=500, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(sequences())
def test_generated_calls_stay_in_the_window(seq):
    for c in seq.calls:
        assert_stays_in_window(c, seq.window_size)


def test_the_rule_is_not_the_old_offset_guess():
    # With MAP_ANONYMOUS the kernel ignores the offset: a MAP_FIXED mapping with a huge
    # offset succeeds wherever it is asked to go. The rule must not assume -EOVERFLOW.
    w = 64 * P
    for c in (Call.mmap(w, P, RW, ANON | S.MAP_FIXED, None, 1 << 63),
              Call.mmap(-P, P, RW, ANON | S.MAP_FIXED, None, U64 - P + 1),
              Call.mmap(1 << 40, 2 * P, RW, S.MAP_SHARED | S.MAP_ANONYMOUS | S.MAP_FIXED,
                        None, 1 << 62)):
        assert S.refusal(c, w) == "MAP_FIXED range outside the window"
        assert prologue(c, R.WINDOW_HINT) != "rejected"


# --- both sides -----------------------------------------------------------------------------
OUTSIDE = [
    Call.mmap(64 * P, P, RW, ANON | S.MAP_FIXED),                          # just past the end
    Call.mmap(64 * P, 4 * P, RW, ANON | S.MAP_FIXED, None, 1 << 63),       # a huge offset
    Call.mmap(-4 * P, P, RW, ANON | S.MAP_FIXED, None, U64 - P + 1),       # below, huge offset
    Call.mmap(1 << 40, P, RW, S.MAP_SHARED | S.MAP_ANONYMOUS | S.MAP_FIXED, None, 1 << 62),
    Call.mmap(64 * P, P, RW, ANON | S.MAP_FIXED_NOREPLACE),                # NOREPLACE
    Call.mmap(-P, P, RW, ANON | S.MAP_FIXED_NOREPLACE, None, 1 << 63),
    Call.mmap(60 * P, 8 * P, RW, S.MAP_SHARED | S.MAP_FIXED, "f"),        # across the end
    Call.mmap(0, P, RW, ANON | S.MAP_FIXED | S.MAP_HUGETLB | S.MAP_NORESERVE),   # 2 MiB
    Call.mmap(0, P, RW, ANON | S.MAP_HUGETLB | S.MAP_NORESERVE),
]
OUTSIDE_SEQ = Sequence(window_pages=64, files=(File("f", 8 * P),), calls=(
    Call.mmap(0, 4 * P, RW, ANON | S.MAP_FIXED), Call.store(0, 7), *OUTSIDE,
    Call.load(0), Call.munmap(0, 4 * P)))


def _check_refused_both_sides(real: dict, model: dict) -> None:
    assert real["error"] is None and model["error"] is None
    for rep in (real, model):
        calls = rep["calls"]
        assert len(calls) == len(OUTSIDE_SEQ.calls)
        for i, c in enumerate(OUTSIDE, start=2):
            r = calls[i]
            assert r["refused"] and r["ret"] is None, (rep["side"], i, r)
        # Nothing changed: the window still holds the mapping and the PROT_NONE rest.
        assert [(v["start"], v["end"], v["perms"]) for v in calls[len(OUTSIDE) + 1]["vmas"]] \
            == [(0, 4 * P, "rw-p"), (4 * P, 64 * P, "---p")]
        assert calls[len(OUTSIDE) + 2]["value"] == 7
    assert compare(OUTSIDE_SEQ, real, model) is None


def test_map_fixed_outside_the_window_is_refused_by_the_model():
    # The model side alone (with a recorded real report, so this runs everywhere).
    model = M.run_model(OUTSIDE_SEQ)
    assert model["error"] is None
    for i, c in enumerate(OUTSIDE, start=2):
        assert model["calls"][i]["refused"] == S.refusal(c, OUTSIDE_SEQ.window_size)


def test_map_fixed_outside_the_window_is_refused_on_both_sides(runner):
    real = runner.run(OUTSIDE_SEQ)
    model = M.run_model(OUTSIDE_SEQ, env=real.get("env"))
    _check_refused_both_sides(real, model)


@pytest.mark.parametrize("c", OUTSIDE, ids=lambda c: c.describe())
def test_each_outside_call_alone_is_refused_on_both_sides(runner, c):
    seq = Sequence(window_pages=64, files=(File("f", 8 * P),), calls=(c, Call.load(0)))
    real = runner.run(seq)
    model = M.run_model(seq, env=real.get("env"))
    assert real["calls"][0]["refused"] and model["calls"][0]["refused"]
    assert compare(seq, real, model) is None
