"""Which kernel paths the corpus races against which: the race matrix of docs/race-matrix.md.

A *path* is what a scenario thread runs: a system call (madvise by advice), a user access
(``load``/``store``: a TLB hit, or a page fault), or a kernel actor (the OOM reaper,
writeback, migration). Two paths race in a scenario when two different threads run them
(a thread may race another thread running the same path: munmap against munmap). The
matrix is computed from the scenario files, so it cannot drift from the corpus; the test
suite checks that docs/race-matrix.md shows what :func:`render` gives.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path
from typing import Iterable, Optional

PATHS = ("munmap", "mmap", "mprotect", "MADV_DONTNEED", "MADV_FREE", "MADV_PAGEOUT", "mlock", "munlock",
         "mlockall", "munlockall", "pwrite", "fork", "exec", "exit", "load/store", "gup_fast", "context_switch", "oom_reaper",
         "writeback", "migrate")


def thread_paths(thread) -> set[str]:
    if thread.actor:
        return {thread.actor}
    out = set()
    for op in thread.program:
        if op.op == "madvise":
            out.add(_advice_name(op.args.get("advice")))
        elif op.op in ("load", "store"):
            out.add("load/store")
        else:
            out.add(op.op)
    return out


def _advice_name(advice) -> str:
    from unmapcheck.impl import constants as C
    names = {getattr(C, n): n for n in dir(C) if n.startswith("MADV_")}
    return names.get(advice, str(advice))


def race_pairs(paths: Optional[Iterable[Path]] = None) -> dict[tuple[str, str], list[str]]:
    """{(path, path) in PATHS order: the names of the scenarios that race them}."""
    from unmapcheck.checker.scenario import load
    from unmapcheck.proofs import scenario_paths
    order = {p: i for i, p in enumerate(PATHS)}
    out: dict[tuple[str, str], list[str]] = {}
    for f in (scenario_paths() if paths is None else paths):
        sc = load(f)
        for t1, t2 in combinations(sc.threads, 2):
            for a in thread_paths(t1):
                for b in thread_paths(t2):
                    key = tuple(sorted((a, b), key=lambda p: (order.get(p, len(PATHS)), p)))
                    names = out.setdefault(key, [])
                    if sc.name not in names:
                        names.append(sc.name)
    return out


def render(paths: Optional[Iterable[Path]] = None) -> str:
    """The matrix as a Markdown table (the number of scenarios racing each pair; the upper
    triangle), then the scenarios of each pair."""
    pairs = race_pairs(paths)
    short = {p: p.replace("MADV_", "") for p in PATHS}
    lines = ["| | " + " | ".join(short[p] for p in PATHS) + " |",
             "| --- |" + " ---: |" * len(PATHS)]
    for i, a in enumerate(PATHS):
        cells = []
        for j, b in enumerate(PATHS):
            n = len(pairs.get((a, b), [])) if j >= i else None
            cells.append("" if n is None else (str(n) if n else "."))
        lines.append(f"| **{short[a]}** | " + " | ".join(cells) + " |")
    lines.append("")
    def rank(p: str) -> tuple:
        # (a path the table has no column for, such as MADV_POPULATE_READ, comes after the
        # columns, by name: the order must not depend on set iteration, i.e. the hash seed)
        return (PATHS.index(p), "") if p in PATHS else (len(PATHS), p)
    for (a, b), names in sorted(pairs.items(), key=lambda kv: (rank(kv[0][0]),
                                                               rank(kv[0][1]))):
        lines.append(f"- {a} x {b}: " + ", ".join(sorted(names)))
    return "\n".join(lines) + "\n"
