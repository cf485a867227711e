"""Hypothesis strategies for oracle sequences, and the printer of a regression test.

The sequences aim at what the unmap paths get wrong: several VMAs close together (most
addresses fall in the first 16 pages of the window), partial and spanning ranges, holes, and
the edge cases of every argument (unaligned, zero and overflowing lengths, addresses at and
beyond the window, MAP_FIXED_NOREPLACE over existing mappings, memfd shared and private
mappings, mprotect splits and merges, mlock, fork).

Shrinking: every choice is an index or a small integer whose simplest value (0) is the plain
case (page aligned, one page, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_FIXED, anonymous), and
calls are list elements, so hypothesis shrinks a failure to few calls with plain arguments.
"""

from __future__ import annotations

import hashlib
import json
import sys

from hypothesis import strategies as st

from . import sequence as S
from .sequence import MADV_NAMES as MADV, Call, File, Sequence

P = S.PAGE_SIZE
HOT_PAGES = 16
RW = S.PROT_READ | S.PROT_WRITE
MAX_FORKS_GENERATED = 2

# Advice the strategies use. Left out: MADV_PAGEOUT (with swap it would swap pages out, so the
# result depends on the machine), MADV_HUGEPAGE/NOHUGEPAGE/COLLAPSE (THP is off in the real
# child and absent from the model), MADV_MERGEABLE/UNMERGEABLE (KSM), MADV_HWPOISON and
# MADV_SOFT_OFFLINE (refused by the sequence format).
ADVICE = [MADV[n] for n in (
    "MADV_DONTNEED", "MADV_DONTNEED_LOCKED", "MADV_FREE", "MADV_REMOVE", "MADV_WILLNEED",
    "MADV_COLD", "MADV_DONTFORK", "MADV_DOFORK", "MADV_WIPEONFORK", "MADV_KEEPONFORK",
    "MADV_POPULATE_READ", "MADV_POPULATE_WRITE", "MADV_NORMAL", "MADV_RANDOM",
    "MADV_SEQUENTIAL", "MADV_DONTDUMP", "MADV_DODUMP")] + [999]

# Advice whose effect the comparison can see (rss, VMA splits, flags): drawn more often.
EFFECT_ADVICE = {MADV[n] for n in (
    "MADV_DONTNEED_LOCKED", "MADV_FREE", "MADV_REMOVE", "MADV_POPULATE_READ",
    "MADV_POPULATE_WRITE", "MADV_DONTFORK", "MADV_WIPEONFORK")}

PROTS = [RW, S.PROT_READ, S.PROT_NONE, S.PROT_WRITE, S.PROT_EXEC, RW | S.PROT_EXEC,
         S.PROT_READ | S.PROT_EXEC]
EDGE_PROTS = [S.PROT_READ | S.PROT_NAMES["PROT_GROWSDOWN"], 0x8, 0x10]


def _pick(draw, table):
    """A weighted choice from ``[(weight, value), ...]``, drawn as one integer that shrinks
    towards the first entry (the plain case)."""
    total = sum(w for w, _ in table)
    i = draw(st.integers(0, total - 1))
    for w, v in table:
        if i < w:
            return v
        i -= w
    raise AssertionError("unreachable")


def _addr(draw, w: int, anchors: list[int] = ()) -> int:
    """A window offset: mostly page aligned near where an earlier mmap of the sequence asked
    to map (``anchors``) or in the first HOT_PAGES pages; sometimes anywhere in the window,
    unaligned, at or beyond its end, before it, or absurd."""
    hot = min(w, HOT_PAGES)
    table = [(12, "near")] if anchors else []
    table += [(8, "hot"), (2, "any"), (1, "unaligned"), (1, "end"), (1, "before"),
              (1, "absurd")]
    kind = _pick(draw, table)
    if kind == "near":
        base = _pick(draw, [(1, a) for a in anchors])
        return base + draw(st.integers(0, 7)) * P
    if kind == "hot":
        return draw(st.integers(0, hot)) * P
    if kind == "any":
        return draw(st.integers(0, w)) * P
    if kind == "unaligned":
        return draw(st.integers(0, hot)) * P + draw(st.integers(1, P - 1))
    if kind == "end":
        return (w + draw(st.integers(-2, 3))) * P
    if kind == "before":
        return -draw(st.integers(1, 4)) * P
    return _pick(draw, [(1, 1 << 47), (1, 1 << 63), (1, S.ULONG_MAX - P + 1), (1, -(1 << 47))])


def _length(draw, w: int) -> int:
    """A length: mostly 1..8 pages; sometimes unaligned, zero, window-sized or overflowing."""
    kind = _pick(draw, [(12, "pages"), (2, "unaligned"), (2, "edge")])
    if kind == "pages":
        return draw(st.integers(1, 8)) * P
    if kind == "unaligned":
        return draw(st.integers(0, 8)) * P + draw(st.integers(1, P - 1))
    return _pick(draw, [(1, v) for v in (0, w * P, (w + 1) * P, S.ULONG_MAX,
                                          S.ULONG_MAX - P + 1, 1 << 63, 1 << 47, S.TASK_SIZE)])


def _prot(draw) -> int:
    return _pick(draw, [(6, v) for v in PROTS] + [(1, v) for v in EDGE_PROTS])


def _mmap(draw, w: int, files: tuple[str, ...], simple: bool = False,
          anchors: list[int] = ()) -> Call:
    if simple:
        addr = draw(st.integers(0, min(w, HOT_PAGES))) * P
        length = draw(st.integers(1, 8)) * P
        prot = RW
        share = _pick(draw, [(2, S.MAP_PRIVATE), (1, S.MAP_SHARED)])
        place = S.MAP_FIXED
    else:
        addr, length, prot = _addr(draw, w, anchors), _length(draw, w), _prot(draw)
        share = _pick(draw, [(6, S.MAP_PRIVATE), (4, S.MAP_SHARED), (1, 0),
                             (1, S.MAP_NAMES["MAP_SHARED_VALIDATE"])])
        # The window is reserved (PROT_NONE) until the sequence unmaps parts of it, so
        # MAP_FIXED_NOREPLACE and hints mostly fail: -EEXIST, placed outside.
        place = _pick(draw, [(6, S.MAP_FIXED), (1, S.MAP_FIXED_NOREPLACE), (1, 0)])
    extra = 0 if simple else _pick(draw, [(12, 0), (1, S.MAP_POPULATE), (1, S.MAP_LOCKED),
                                          (1, S.MAP_NORESERVE),
                                          (1, S.MAP_NAMES["MAP_GROWSDOWN"])])
    file = None
    if files:
        file = _pick(draw, [(len(files), None)] + [(1, f) for f in files])
    flags = share | place | extra
    offset = 0
    if file is None:
        flags |= S.MAP_ANONYMOUS
    else:
        kind = _pick(draw, [(6, "zero"), (3, "pages"), (1, "edge")])
        if kind == "pages":
            offset = draw(st.integers(1, 8)) * P
        elif kind == "edge":
            offset = _pick(draw, [(1, 1), (1, 1 << 63), (1, S.ULONG_MAX - P + 1)])
        if not simple and _pick(draw, [(15, False), (1, True)]):
            flags |= S.MAP_ANONYMOUS          # MAP_ANONYMOUS with an fd: the fd is ignored
    return Call.mmap(addr, length, prot, flags, file, offset)


_OPS = [(4, "mmap"), (3, "store"), (3, "load"), (2, "munmap"), (2, "mprotect"),
        (3, "madvise"), (1, "mlock"), (1, "munlock"), (1, "fork")]


def _call(draw, w: int, files: tuple[str, ...], allow_fork: bool,
          anchors: list[int] = ()) -> Call:
    op = _pick(draw, _OPS if allow_fork else _OPS[:-1])
    if op == "mmap":
        return _mmap(draw, w, files, anchors=anchors)
    if op == "fork":
        return Call.fork()
    addr = _addr(draw, w, anchors)
    if op == "store":
        return Call.store(addr, draw(st.integers(0, 255)))
    if op == "load":
        return Call.load(addr)
    length = _length(draw, w)
    if op == "mprotect":
        return Call.mprotect(addr, length, _prot(draw))
    if op == "madvise":
        return Call.madvise(addr, length, _pick(draw, [(6, ADVICE[0])] + [
            (3 if a in EFFECT_ADVICE else 1, a) for a in ADVICE[1:]]))
    return getattr(Call, op)(addr, length)


@st.composite
def sequences(draw, window_pages: int = S.DEFAULT_WINDOW_PAGES, max_calls: int = 12,
              max_files: int = 2, allow_fork: bool = True) -> Sequence:
    """A valid :class:`Sequence`: 0..max_files memfds, up to 3 plain MAP_FIXED mmaps to start
    with, then up to ``max_calls`` calls of every kind (at most two forks), whose addresses lean
    towards where earlier mmaps asked to map.

    Every choice is drawn as an integer whose smallest value is the plain case, in a fixed
    order, so generation is deterministic for a seed and shrinks well.
    """
    w = window_pages
    nfiles = draw(st.integers(0, max_files))
    files = []
    for i in range(nfiles):
        if _pick(draw, [(4, "pages"), (1, "unaligned")]) == "pages":
            size = draw(st.integers(0, 24)) * P
        else:
            size = draw(st.integers(0, 8)) * P + 100
        files.append(File(f"f{i}", size))
    names = tuple(f.name for f in files)
    out = [_mmap(draw, w, names, simple=True) for _ in range(draw(st.integers(0, 3)))]
    forks = 0
    n = draw(st.integers(0, max_calls))     # 0 lets a failure shrink to its setup mmaps
    for _ in range(n):
        anchors = sorted({c.addr for c in out if c.op == "mmap" and c.addr % P == 0
                          and 0 <= c.addr < w * P})
        c = _call(draw, w, names, allow_fork and forks < MAX_FORKS_GENERATED, anchors)
        forks += c.op == "fork"
        out.append(c)
    return Sequence(calls=tuple(out), files=tuple(files), window_pages=w)


# --- a minimal mismatch as a pytest regression test ---------------------------------------
def _names_expr(kind: str, value: int, used: set[str]) -> str:
    parts = S.symbolic(kind, value).split("|")
    used.update(p for p in parts if p.startswith(("PROT_", "MAP_", "MADV_")))
    return " | ".join(parts)


def call_source(c: Call, used: set[str]) -> str:
    args = []
    for name, kind in S.OPS[c.op]:
        v = getattr(c, name)
        if name in S.OPTIONAL and v == S.OPTIONAL[name]:
            continue
        if kind in ("prot", "flags", "advice"):
            args.append(_names_expr(kind, v, used))
        elif kind == "file":
            args.append(f"file={v!r}")
        elif name == "offset":
            args.append(f"offset={S._hex(v)}")
        elif kind == "byte":
            args.append(str(v))
        else:
            args.append(S._hex(v))
    return f"Call.{c.op}({', '.join(args)})"


def sequence_source(seq: Sequence, used: set[str]) -> str:
    files = "".join(f"File({f.name!r}, {S._hex(f.size)}), " for f in seq.files)
    lines = [f"Sequence(window_pages={seq.window_pages}, files=({files}), calls=("]
    lines += [f"    {call_source(c, used)}," for c in seq.calls]
    lines.append("))")
    return "\n".join(lines)


def _report_source(rep: dict) -> str:
    """The report as a Python literal, one call per block and one VMA per line."""
    lines = ["{", f"    'side': {rep['side']!r}, 'window_pages': {rep['window_pages']!r}, "
                  f"'error': {rep['error']!r},"]
    if rep.get("env"):
        lines.append(f"    'env': {rep['env']!r},")
    lines.append("    'calls': [")
    for c in rep["calls"]:
        head = repr({k: v for k, v in c.items() if k != "vmas"})[:-1]
        lines.append(f"        {head}, 'vmas': [")
        for v in c.get("vmas", []):
            lines.append(f"            {v!r},")
        lines.append("        ]},")
    lines += ["    ],", "}"]
    return "\n".join(lines)


def print_regression_test(seq: Sequence, real: dict, mismatch=None, file=None) -> None:
    """Print :func:`regression_test` (to stdout, or ``file``)."""
    print(regression_test(seq, real, mismatch), file=file or sys.stdout)


def regression_test(seq: Sequence, real: dict, mismatch=None, name: str | None = None) -> str:
    """A ready-to-paste pytest module: the sequence, the real kernel's recorded report, and a
    test asserting that the model reproduces it (needs neither the real kernel nor a C
    compiler when it runs)."""
    digest = hashlib.sha256(json.dumps(seq.to_dict(), sort_keys=True).encode()).hexdigest()[:10]
    name = name or f"test_oracle_{digest}"
    used: set[str] = set()
    seq_src = sequence_source(seq, used)
    kernel = (real.get("env") or {}).get("kernel", "unknown")
    recorded = {"side": "real", "window_pages": real.get("window_pages", seq.window_pages),
                "error": None, "calls": real["calls"]}
    if real.get("env"):
        recorded["env"] = real["env"]
    rec_src = _report_source(recorded)
    head = [f"# Found by the unmapcheck oracle (real kernel {kernel})."]
    if mismatch is not None:
        head.append(f"# First difference: {mismatch}")
    imports = ""
    if used:
        imports = "from unmapcheck.impl.constants import " + ", ".join(sorted(used)) + "\n"
    return (
        "\n".join(head) + "\n"
        "from unmapcheck.checker.oracle.compare import assert_model_matches\n"
        "from unmapcheck.checker.oracle.sequence import Call, File, Sequence\n"
        f"{imports}\n"
        f"SEQ = {seq_src}\n\n"
        f"# The real kernel's report, recorded by the oracle.\n"
        f"REAL = {rec_src}\n\n\n"
        f"def {name}():\n"
        f"    assert_model_matches(SEQ, REAL)\n")
