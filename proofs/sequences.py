"""``bounded:sequences(...)``: every short system-call sequence on small mappings, with every
invariant checked after every step.

The scenario corpus covers the paths the historic bugs live on; this covers the rest of what
the model has, sequentially: for each *layout* (a process with two mappings, placed inside
one PTE table, across a PMD boundary, across a PGD entry's boundary and 512 GiB apart, or covering a
whole PTE table; anonymous, private and shared file, shmem and mlocked; populated from the
other CPU, so that its TLB holds translations every flush must reach), every sequence of at
most K calls (K = 2, or ``prove --bound K``) drawn from an alphabet of munmap, mprotect (read-only, and back to
read-write), madvise (MADV_DONTNEED, MADV_FREE, MADV_COLD, MADV_WILLNEED, MADV_DONTFORK, a
range that spans both mappings and the hole between them, MADV_REMOVE where A is shmem),
mlock, munlock, mlockall(MCL_CURRENT|MCL_FUTURE; with MCL_ONFAULT on the 512-page layout),
munlockall, mmap(MAP_FIXED) over a mapping and mmap with a hint, a GUP-fast write pin, loads
and stores to both mappings, fork, exec and exit (exit and exec only last: afterwards the
addresses are gone), is run by one thread on CPU0 through the explorer. The explorer
evaluates every invariant of spec/invariants.py at every step (``step``), whenever the mm is
quiescent, and at every event (each flush, each return to user space, exit_mmap's end,
check_mm), exactly as for a corpus scenario: the same single checking path.

Each sequence is a generated scenario (TOML text, parsed by the scenario loader, never
code); a violation fails the obligation and reports the sequence and the scenario text, so
``unmapcheck explore`` reproduces it from a file. One thread means one interleaving: the
races are the corpus's business; what this finds is a path that breaks an invariant on its
own (a flush that misses the other CPU, an rss or mapcount update on the wrong counter, a
split that loses pgoff, a page-table reclaim that leaves a table mapped).
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass
from typing import Optional

from unmapcheck.checker.prove import (FAILED, PROVED, UNKNOWN, Obligation, ObligationResult,
                                      Options)

PAGE = 0x1000
DEFAULT_LENGTH = 2
# Steps of one execution at most (a scenario's default is 5,000): mlockall populates every
# mapping of a layout.
STEPS = 20_000
# The machine's swap device (MADV_PAGEOUT swaps A's anonymous pages out): room for every
# page a sequence can swap out.
SWAP_PAGES = 8


@dataclass(frozen=True)
class Layout:
    """A process with mappings A (several pages) and B (one page), B above A."""
    name: str
    arch: str
    a: int
    a_pages: int
    b: int
    mappings: str          # the [[process.mapping]] (and [[file]]) tables, TOML
    files: str = ""
    shmem: bool = False    # A is shmem: MADV_REMOVE punches a hole (the model punches none
                           # in a regular file: fallocate is not modelled there); no
                           # MADV_PAGEOUT (a dirty shmem page's shmem_writeout is not
                           # modelled)
    # mlockall's flags: MCL_ONFAULT where A is a whole 512-page table, so that mlockall does
    # not fault in 512 pages in each of the sequences that call it (the populate itself is
    # the small layouts' business).
    mlockall: str = "MCL_CURRENT|MCL_FUTURE"


LAYOUTS = [
    # Inside one PTE table, with a hole between: private anonymous (populated by a write on
    # CPU1, so both have data and CPU1 caches writable translations) and a private file page.
    Layout("inside-a-table", "x86", 0x7f0000000000, 2, 0x7f0000003000, """
[[process.mapping]]
addr = 0x7f0000000000
pages = 2
prot = "rw"
populate = "write"
populate_cpu = 1
data = { 0 = 0x11, 1 = 0x12 }
[[process.mapping]]
addr = 0x7f0000003000
pages = 1
prot = "rw"
file = "f"
populate = "read"
populate_cpu = 1
""", """
[[file]]
name = "f"
size = 4096
shmem = false
data = { 0 = 0x21 }
"""),
    # A straddles a PMD boundary: its first page is the last entry of one PTE table, its
    # second the first entry of the next, which B, a dirty shared file page, shares (one
    # VMA's walks, zaps, copies and protection changes cross from one table to the next;
    # free_pgtables frees the first table and keeps the shared one; writeback's dirty page).
    Layout("across-a-pmd-boundary", "x86", 0x7f00001ff000, 2, 0x7f0000202000, """
[[process.mapping]]
addr = 0x7f00001ff000
pages = 2
prot = "rw"
populate = "write"
populate_cpu = 1
[[process.mapping]]
addr = 0x7f0000202000
pages = 1
prot = "rw"
file = "f"
shared = true
populate = "write"
populate_cpu = 1
""", """
[[file]]
name = "f"
size = 4096
shmem = false
"""),
    # A covers a whole PTE table with two pages touched (PT_RECLAIM's empty-table reclaim
    # after MADV_DONTNEED, a whole-table munmap); arm64's last-level and walk-cache flushes.
    Layout("whole-table-arm64", "arm64", 0x7f0000200000, 512, 0x7f0000400000, """
[[process.mapping]]
addr = 0x7f0000200000
pages = 512
prot = "rw"
populate_cpu = 1
data = { 0 = 0x31, 511 = 0x32 }
[[process.mapping]]
addr = 0x7f0000400000
pages = 1
prot = "rw"
populate = "write"
populate_cpu = 1
""", mlockall="MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT"),
    # A straddles a PGD-entry boundary (512 GiB, so a PUD and a PMD boundary too) and B is in
    # the next PGD entry: an unmap frees or keeps PMD and PUD tables by free_pgd_range's floor
    # and ceiling (A's first page ends where its last page's tables start; B's start is a
    # ceiling aligned at every level). B is a private file page, read.
    Layout("across-a-pgd-boundary", "x86", 0x7efffffff000, 2, 0x7f8000000000, """
[[process.mapping]]
addr = 0x7efffffff000
pages = 2
prot = "rw"
populate = "write"
populate_cpu = 1
data = { 0 = 0x41, 1 = 0x42 }
[[process.mapping]]
addr = 0x7f8000000000
pages = 1
prot = "rw"
file = "f"
populate = "read"
populate_cpu = 1
""", """
[[file]]
name = "f"
size = 4096
shmem = false
data = { 0 = 0x43 }
"""),
    # Shared shmem, mlocked (munlock on unmap, VM_LOCKED zaps), and a read-only private
    # anonymous page that maps the zero page.
    Layout("shmem-mlocked", "x86", 0x7f0000000000, 2, 0x7f0000002000, """
[[process.mapping]]
addr = 0x7f0000000000
pages = 2
prot = "rw"
file = "s"
shared = true
mlock = true
populate = "write"
populate_cpu = 1
[[process.mapping]]
addr = 0x7f0000002000
pages = 1
prot = "r"
populate = "read"
populate_cpu = 1
""", """
[[file]]
name = "s"
size = 8192
shmem = true
""", shmem=True),
]


def alphabet(lay: Layout) -> list[tuple[str, str]]:
    """(label, TOML op) of every call a sequence draws from, for this layout's A and B."""
    a, n, b = lay.a, lay.a_pages * PAGE, lay.b
    span = b + PAGE - a

    def call(label: str, **kw) -> tuple[str, str]:
        fields = ", ".join(f"{k} = {_toml(v)}" for k, v in kw.items())
        return label, "{ " + fields + " }"
    return [
        call("munmap(A)", op="munmap", addr=a, len=n),
        call("munmap(A first page)", op="munmap", addr=a, len=PAGE),
        call("munmap(A last page)", op="munmap", addr=a + n - PAGE, len=PAGE),
        call("munmap(B)", op="munmap", addr=b, len=PAGE),
        call("mprotect(A, r)", op="mprotect", addr=a, len=n, prot="r"),
        call("mprotect(A first page, r)", op="mprotect", addr=a, len=PAGE, prot="r"),
        call("mprotect(B, r)", op="mprotect", addr=b, len=PAGE, prot="r"),
        call("mprotect(A, rw)", op="mprotect", addr=a, len=n, prot="rw"),
        call("madvise(A, MADV_DONTNEED)", op="madvise", addr=a, len=n, advice="MADV_DONTNEED"),
        call("madvise(A, MADV_FREE)", op="madvise", addr=a, len=n, advice="MADV_FREE"),
        call("madvise(A, MADV_COLD)", op="madvise", addr=a, len=n, advice="MADV_COLD"),
        call("madvise(A..B, MADV_DONTNEED)", op="madvise", addr=a, len=span,
             advice="MADV_DONTNEED"),
    ] + ([] if lay.shmem else [
        call("madvise(A, MADV_PAGEOUT)", op="madvise", addr=a, len=n, advice="MADV_PAGEOUT"),
        call("madvise(A..B, MADV_PAGEOUT)", op="madvise", addr=a, len=span,
             advice="MADV_PAGEOUT"),
    ]) + [
        call("mlock(A first page)", op="mlock", addr=a, len=PAGE),
        call("munlock(A..B)", op="munlock", addr=a, len=span),
        call(f"mlockall({lay.mlockall})", op="mlockall", flags=lay.mlockall),
        call("munlockall", op="munlockall"),
        call("madvise(A, MADV_WILLNEED)", op="madvise", addr=a, len=n,
             advice="MADV_WILLNEED"),
        call("madvise(A, MADV_DONTFORK)", op="madvise", addr=a, len=n, advice="MADV_DONTFORK"),
        call("mmap(A first page, MAP_FIXED)", op="mmap", addr=a, len=PAGE, prot="rw",
             flags="MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED"),
        call("mmap(a hint below A)", op="mmap", addr=a - 16 * PAGE, len=PAGE, prot="rw",
             flags="MAP_PRIVATE|MAP_ANONYMOUS"),
        call("gup_fast(A, write)", op="gup_fast", addr=a, pages=1, write=True),
        call("load(A)", op="load", addr=a),
        call("store(A)", op="store", addr=a, value=0x51),
        call("load(B)", op="load", addr=b),
        call("store(B)", op="store", addr=b, value=0x52),
        call("fork", op="fork"),
        call("exec", op="exec"),
        call("exit", op="exit"),
    ] + ([call("madvise(A, MADV_REMOVE)", op="madvise", addr=a, len=n, advice="MADV_REMOVE")]
         if lay.shmem else [])


_LAST_ONLY = ("exec", "exit")


def sequences(lay: Layout, k: int):
    """Every sequence of 1..k calls of the layout's alphabet; exec and exit only last."""
    ops = alphabet(lay)
    for length in range(1, k + 1):
        for seq in itertools.product(ops, repeat=length):
            if any(label in _LAST_ONLY for label, _ in seq[:-1]):
                continue
            yield seq


def scenario_text(lay: Layout, seq) -> str:
    program = ",\n  ".join(op for _, op in seq)
    labels = "; ".join(label for label, _ in seq)
    return f"""# bounded:sequences({lay.name}): {labels}
[scenario]
name = "sequence-{lay.name}"
description = "{labels}"
cpus = 2
arch = "{lay.arch}"

[tunables]
swap_pages = {SWAP_PAGES}
{lay.files}
[[process]]
name = "p"
{lay.mappings}
[[thread]]
name = "T0"
process = "p"
cpu = 0
program = [
  {program},
]

[bounds]
steps = {STEPS}

[expect]
never = true
"""


def _toml(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return hex(v) if v >= 0x1000 else str(v)
    return '"' + str(v) + '"'


def count(lay: Layout, k: int) -> int:
    return sum(1 for _ in sequences(lay, k))


def run_layout(lay: Layout, opts: Options) -> ObligationResult:
    from unmapcheck.checker.prove import explore_scenario, judge
    from unmapcheck.checker.scenario import parse
    k = DEFAULT_LENGTH if opts.bound is None else max(1, opts.bound)
    name, bound = obligation_name(lay), describe_bound(lay, k)
    t0 = time.monotonic()
    done = 0
    for seq in sequences(lay, k):
        if time.monotonic() - t0 > opts.timeout:
            return ObligationResult(name, "bounded", bound, UNKNOWN, time.monotonic() - t0,
                                    f"time budget spent after {done} of {count(lay, k)} "
                                    f"sequences")
        text = scenario_text(lay, seq)
        sc = parse(text, f"<{name}>")
        res = explore_scenario(sc, None, max(1.0, opts.timeout - (time.monotonic() - t0)))
        verdict = judge(sc, res, name, 0.0)
        if verdict.status != PROVED:
            labels = "; ".join(label for label, _ in seq)
            status = FAILED if verdict.status == FAILED else UNKNOWN
            return ObligationResult(name, "bounded", bound, status, time.monotonic() - t0,
                                    f"the sequence [{labels}]: {verdict.detail}",
                                    {"counterexample": "the sequence as a scenario (save it "
                                     "and run unmapcheck explore FILE):\n" + text})
        done += 1
    return ObligationResult(name, "bounded", bound, PROVED, time.monotonic() - t0,
                            f"all {done} sequences of <= {k} calls, every invariant after "
                            f"every step")


def obligation_name(lay: Layout) -> str:
    return f"bounded:sequences({lay.name})"


def describe_bound(lay: Layout, k: int) -> str:
    return f"sequences of <= {k} of {len(alphabet(lay))} calls"


def obligations() -> list[Obligation]:
    return [Obligation(obligation_name(lay), "bounded", describe_bound(lay, DEFAULT_LENGTH),
                       lambda opts, lay=lay: run_layout(lay, opts)) for lay in LAYOUTS]


def layout(name: str) -> Optional[Layout]:
    return next((lay for lay in LAYOUTS if lay.name == name), None)
