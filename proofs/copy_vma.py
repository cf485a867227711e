"""``bounded:copy_vma``: mremap's copy_vma() (mm/vma.c) at every placement among neighbours
it can merge with, with every invariant checked at every step.

The model has no mremap(2). copy_vma() is the part of it that makes the VMA at the new
address (move_vma -> copy_vma, before move_page_tables), by a merge with the neighbours
there when their flags, anon_vma and file offsets allow (vma_merge_new_range: merging into
prev, into next, or into both) or by a new VMA; and a historic bug lives in that merge
(7e7757876f25: a range merged into the following VMA, which expands downwards, gave it the
new range's pgoff). So this obligation runs copy_vma() itself, as move_vma() calls it (the
mmap_lock held for write), on a two-page source, a mapping of a file at offset 4 or
unfaulted anonymous memory (copy_vma gives it the new address's pgoff): to a free two-page
range D whose neighbour below (ending at D) and above (starting at D + 2 pages) is absent,
continues the copy's offsets (so it can merge), or is the same kind of mapping that cannot
merge (another offset, or read-only); and to the range right above and right below the
source itself, with a neighbour on the far side or none (a merge that takes the source in:
copy_vma then hands back the merged VMA through *vmap). A faulted anonymous range (it has an
anon_vma, and keeps its pgoff) merges only with VMAs that share its anon_vma: it is moved
away from the middle of its VMA and back between the two parts left (prev, next or both).

After each copy: every invariant held at every step and event (I3.pgoff at each
vma_complete: every address that stayed mapped keeps its file offset), every state
invariant holds (VMA tree, map_count, the i_mmap and anon_vma chains), the VMA at D covers
[D, D + 2 pages) with the offset asked for, and a load from each page of the copy reads the
file page at that offset (a zero for anonymous memory). ``bounded:copy_vma(without
7e7757876f25)`` runs the same copies with the fix switched off and expects the violation
(I3.pgoff in the merge into next).
"""

from __future__ import annotations

import itertools
import time
from typing import Optional

from unmapcheck.checker.prove import (FAILED, PROVED, UNKNOWN, Obligation, ObligationResult,
                                      Options)

FIX = "7e7757876f25"
NEIGHBOURS = ("none", "merge", "nomerge")
#: The file's pages and what each holds (page i: 0x40 + i).
FILE_PAGES = 16
SOURCE_PGOFF = 4
PAGES = 2
#: Where the source and the destination go (page numbers from BASE): far enough apart that
#: no neighbour of one touches the other.
BASE = 0x10000000
SOURCE_AT = 32
DEST_AT = 16


def cases():
    """(source kind, prev, next, placement) of every copy: a file or unfaulted anonymous
    source to D between neighbours, and to the range right above and right below itself
    (with a neighbour on the far side, or none); a faulted anonymous range moved back home between the parts of
    the VMA it was moved out of (the only neighbours whose anon_vma and offsets it can
    merge with)."""
    for src, prev, nxt in itertools.product(("file", "anon"), NEIGHBOURS, NEIGHBOURS):
        yield src, prev, nxt, "between"
    for src, other in itertools.product(("file", "anon"), NEIGHBOURS):
        yield src, "source", other, "above-source"
        yield src, other, "source", "below-source"
    for prev, nxt in (("merge", "merge"), ("merge", "none"), ("none", "merge")):
        yield "anon_faulted", prev, nxt, "back-home"


def _describe(case) -> str:
    src, prev, nxt, where = case
    if where == "back-home":
        return (f"a faulted anonymous range moved back between the parts of its VMA "
                f"(prev={prev}, next={nxt})")
    if where != "between":
        far = nxt if where == "above-source" else prev
        return (f"a {src} source copied to the range right {where.split('-')[0]} it "
                f"({'next' if where == 'above-source' else 'prev'}={far})")
    return f"a {src} source copied between prev={prev} and next={nxt}"


def _setup(case, fixes_off):
    """The machine, mm and task; the source VMA; the destination address and pgoff."""
    from unmapcheck.impl.constants import (MAP_ANONYMOUS, MAP_FIXED, MAP_PRIVATE, MAP_SHARED,
                                           PAGE_SIZE, PROT_READ, PROT_WRITE)
    from unmapcheck.impl.filemap import File
    from unmapcheck.impl.machine import Machine, Tunables
    from unmapcheck.impl.mm_types import mm_struct
    from unmapcheck.impl import mmap as M
    from unmapcheck.impl.locks import mmap_write_lock, mmap_write_unlock
    from unmapcheck.impl.task import task_struct
    from unmapcheck.impl.vma import copy_vma
    from unmapcheck.impl.x86_fault import user_access
    P = PAGE_SIZE
    src, prev, nxt, where = case
    m = Machine(cpus=2, fixes_off=fixes_off, tunables=Tunables(fault_around_pages=1))
    mm = mm_struct(m)
    task = task_struct(m, mm)
    f = File(m, "f", FILE_PAGES * P, shmem=False)
    for i in range(FILE_PAGES):
        f.f_mapping.disk[i] = {0: 0x40 + i}
    rw, ro = PROT_READ | PROT_WRITE, PROT_READ
    shared = MAP_SHARED | MAP_FIXED
    anon = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED

    def mmap(page: int, pages: int, prot: int, flags: int, pgoff: int = 0, file=None) -> None:
        addr = BASE + page * P
        got = M.ksys_mmap_pgoff(mm, addr, pages * P, prot, flags, file, pgoff)
        if got != addr:
            raise RuntimeError(f"setting up {_describe(case)}: mmap at {addr:#x} gave {got}")

    if where == "back-home":
        # mremap of the middle of a faulted VMA away (copy_vma, then the old range
        # unmapped: the VMA splits, both parts keep its anon_vma), and the range is about
        # to be moved back between what is left of it.
        home = DEST_AT - PAGES
        mmap(home, 3 * PAGES, rw, anon)
        for i in range(3 * PAGES):
            user_access(task, m.cpus[0], BASE + (home + i) * P, True, 0x70 + i)
        vma = next(v for v in mm.mm_mt.vmas if v.vm_start == BASE + home * P)
        mmap_write_lock(mm)
        moved, _ = copy_vma([vma], BASE + SOURCE_AT * P, PAGES * P, vma.vm_pgoff + PAGES)
        mmap_write_unlock(mm)
        gone = (DEST_AT - (PAGES if prev == "none" else 0),
                DEST_AT + PAGES * (2 if nxt == "none" else 1))
        if getattr(M, "__vm_munmap")(mm, BASE + gone[0] * P, (gone[1] - gone[0]) * P, True):
            raise RuntimeError(f"setting up {_describe(case)}: munmap failed")
        return m, mm, task, moved, BASE + DEST_AT * P, moved.vm_pgoff
    src_at = SOURCE_AT if where == "between" else DEST_AT
    if src == "file":
        mmap(src_at, PAGES, rw, shared, SOURCE_PGOFF, f)
    else:
        mmap(src_at, PAGES, rw, anon)
    dest = {"between": DEST_AT, "above-source": DEST_AT + PAGES,
            "below-source": DEST_AT - PAGES}[where]
    for side, kind in (("prev", prev), ("next", nxt)):
        if kind in ("none", "source"):
            continue
        at = dest - PAGES if side == "prev" else dest + PAGES
        if src == "file":
            # Offsets that continue the copy's (SOURCE_PGOFF at dest), or that cannot.
            merge_pgoff = SOURCE_PGOFF - PAGES if side == "prev" else SOURCE_PGOFF + PAGES
            mmap(at, PAGES, rw, shared, merge_pgoff if kind == "merge" else 12, f)
        else:
            mmap(at, PAGES, rw if kind == "merge" else ro, anon)
    src_vma = next(v for v in mm.mm_mt.vmas if v.vm_start == BASE + src_at * P)
    return m, mm, task, src_vma, BASE + dest * P, src_vma.vm_pgoff


def _pgoffs(mm) -> dict:
    """The file offset (in pages) of every mapped page: what I3.pgoff compares."""
    from unmapcheck.impl.constants import PAGE_SIZE
    return {a: v.vm_pgoff + (a - v.vm_start) // PAGE_SIZE
            for v in mm.mm_mt.vmas for a in range(v.vm_start, v.vm_end, PAGE_SIZE)}


def check_case(case, fixes_off=()) -> Optional[tuple[str, str]]:
    """Run one copy; the first problem found as (invariant group, what), or None. An
    exception propagates: it is never the expected violation."""
    from unmapcheck.impl import sched
    from unmapcheck.impl.constants import PAGE_SIZE
    from unmapcheck.impl.locks import mmap_write_lock, mmap_write_unlock
    from unmapcheck.impl.vma import copy_vma
    from unmapcheck.impl.x86_fault import user_access
    from unmapcheck.proofs.symbolic import _installed, _state_violations, _StepChecker
    prev_task = sched.current()
    try:
        m, mm, task, src_vma, dest, pgoff = _setup(case, fixes_off)
    finally:
        sched.set_current(prev_task)
    before = _state_violations(m)
    if before:
        return "setup", f"the set-up state is not consistent: {before[0]}"
    kept = _pgoffs(mm)
    anon_src = src_vma.vm_file is None
    src_start = src_vma.vm_start
    checker = _StepChecker(m)
    with _installed(checker):
        mmap_write_lock(mm)
        vmap = [src_vma]
        new_vma, _need_rmap_locks = copy_vma(vmap, dest, PAGES * PAGE_SIZE, pgoff)
        mmap_write_unlock(mm)
    if checker.bad:
        return _group(checker.bad), checker.bad
    after = _state_violations(m)
    if after:
        return _group(after[0]), after[0]
    if new_vma is None:
        return "copy", "copy_vma() failed on a free range"
    if not (new_vma.vm_start <= dest and dest + PAGES * PAGE_SIZE <= new_vma.vm_end):
        return "copy", (f"copy_vma() returned {new_vma.vm_start:#x}-{new_vma.vm_end:#x}, which does not "
                f"cover the copy's range {dest:#x}-{dest + PAGES * PAGE_SIZE:#x}")
    holder = next((v for v in mm.mm_mt.vmas if v.vm_start <= src_start < v.vm_end), None)
    if vmap[0] is not holder:
        return "copy", (f"copy_vma() left *vmap at {vmap[0].vm_start:#x}-{vmap[0].vm_end:#x}, "
                        f"not at the VMA that now maps the source's start {src_start:#x}")
    now = _pgoffs(mm)
    moved = [a for a in kept if a in now and now[a] != kept[a]]
    if moved:
        return "I3", (f"the page at {moved[0]:#x}, which stayed mapped, moved from file page "
                f"{kept[moved[0]]} to {now[moved[0]]} (I3.pgoff)")
    want = (dest >> 12) if anon_src and src_vma.anon_vma is None else pgoff
    if now[dest] != want:
        return "I3", f"the copy at {dest:#x} has pgoff {now[dest]}, not {want}"
    for i in range(PAGES):
        got = user_access(task, m.cpus[0], dest + i * PAGE_SIZE, False, 0)
        expect = 0 if anon_src else 0x40 + pgoff + i
        if got != expect:
            return "I3", (f"a load from the copy's page {i} ({dest + i * PAGE_SIZE:#x}) read {got!r}, "
                    f"not {expect:#x} (file page {pgoff + i})")
    bad = _state_violations(m)
    return (_group(bad[0]), bad[0]) if bad else None


def _group(violation: str) -> str:
    """The invariant group named in a "[after STEP: ]NAME: message" line (I3.pgoff -> I3)."""
    from unmapcheck.spec.invariants import REGISTRY
    head = violation[len("after "):] if violation.startswith("after ") else violation
    for part in head.split(": "):
        if part in REGISTRY:
            return REGISTRY[part].group
    return "other"


def run(opts: Options, fixes_off=()) -> ObligationResult:
    """Every case with the fixes on (PROVED when none fails); with *fixes_off*, PROVED with
    ``expected_violation_found`` once a case breaks I3 as the historic bug does (any other
    problem, or a crash, is FAILED either way)."""
    name = obligation_name(fixes_off)
    all_cases = list(cases())
    bound = f"{len(all_cases)} placements of a {PAGES}-page copy"
    t0 = time.monotonic()
    for n, case in enumerate(all_cases):
        if time.monotonic() - t0 > opts.timeout:
            return ObligationResult(name, "bounded", bound, UNKNOWN, time.monotonic() - t0,
                                    f"time budget spent after {n} of {len(all_cases)} copies")
        try:
            problem = check_case(case, fixes_off)
        except Exception as e:
            problem = "crash", f"raised {type(e).__name__}: {e}"
        if problem is None:
            continue
        group, what = problem
        if fixes_off and group == "I3":
            return ObligationResult(name, "bounded", bound, PROVED, time.monotonic() - t0,
                                    f"found I3, as expected with {', '.join(fixes_off)} off: "
                                    f"{_describe(case)}: {what}",
                                    {"expected_violation_found": True})
        return ObligationResult(name, "bounded", bound, FAILED, time.monotonic() - t0,
                                f"{_describe(case)}: {what}")
    if fixes_off:
        return ObligationResult(name, "bounded", bound, FAILED, time.monotonic() - t0,
                                f"no copy shows the bug with {', '.join(fixes_off)} off")
    return ObligationResult(name, "bounded", bound, PROVED, time.monotonic() - t0,
                            f"all {len(all_cases)} copies: every invariant at every step, the "
                            f"copy's range and offsets, loads through it")


def obligation_name(fixes_off=()) -> str:
    return "bounded:copy_vma" + (f"(without {', '.join(fixes_off)})" if fixes_off else "")


def obligations() -> list[Obligation]:
    n = sum(1 for _ in cases())
    bound = f"{n} placements of a {PAGES}-page copy"
    return [Obligation(obligation_name(), "bounded", bound, lambda opts: run(opts)),
            Obligation(obligation_name((FIX,)), "bounded", bound,
                       lambda opts: run(opts, (FIX,)))]
