"""Benchmark of exit_mmap on the model (not a timed test: a check you run by hand).

    python bench/bench_exit_mmap.py [--sizes 1000,10000,100000] [--repeat N] [--profile]

1. Linear cost: a process with N touched pages (a private anonymous mapping, one store per
   page, on alternating CPUs) exits; the time of the exit alone (mmput -> exit_mmap: zap,
   free_pgtables, the final flush, freeing the pages and VMAs) gives PTEs zapped per second
   at each N. The rate must stay flat: the ratio of the rate at the largest N to the rate at
   the smallest must lie in [0.5, 2] (1 is linear cost).
2. Sparse address space: 1,000 touched pages at the start of a 1 TiB MAP_NORESERVE anonymous
   mapping against a 1,000-page mapping: the ratio of the exit times must be <= 2, because
   unmap_vmas and free_pgtables skip empty upper-level entries (pgd_none, pud_none, pmd_none)
   as the kernel does, instead of visiting the span. The number of scheduling points (every
   page-table entry the walks read is one) is reported for both: the 1 TiB exit may visit the
   512 entries of each populated PUD and PMD table once per walk, never the 2^28 pages.

Times are process CPU time (time.process_time: other load on the machine does not count), the
best of --repeat runs, with the garbage collector off during the timed exit (as timeit does).
Every exit is checked to be clean: dmesg empty (no bad rss-counter, no pgtables_bytes) and
every frame but the zero page free.

Exit status: 0 if both targets are met, 1 if one is missed (or an exit was not clean).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import sys
import time

from unmapcheck.impl import (MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PAGE_SIZE, PROT_READ,
                             PROT_WRITE, System, sched)

TIB_PAGES = (1 << 40) // PAGE_SIZE
SPARSE_TOUCHED = 1000
FLAT_RANGE = (0.5, 2.0)
SPARSE_MAX = 2.0


def build(span_pages: int, touched: int):
    """A process whose first *touched* pages of a *span_pages* mapping were stored to."""
    s = System(cpus=2)
    p = s.spawn("bench")
    addr = p.mmap(0, span_pages * PAGE_SIZE, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE)
    if addr < 0:
        raise SystemExit(f"mmap of {span_pages} pages failed: {addr}")
    for i in range(touched):
        p.store(addr + i * PAGE_SIZE, 1 + (i & 0x3F), cpu=i & 1)
    rss = p.rss()["MM_ANONPAGES"]
    if rss != touched:
        raise SystemExit(f"populating {touched} pages gave rss {rss}")
    return s, p


def check_clean(s: System, what: str) -> list[str]:
    bad = [f"{what}: dmesg: {line}" for line in s.dmesg]
    left = s.machine.zone.nr_allocated() - 1          # the zero page stays
    if left:
        bad.append(f"{what}: {left} frames still allocated after exit")
    return bad


def time_exit(span_pages: int, touched: int, repeat: int, problems: list) -> tuple:
    """Best CPU and wall seconds of the exit over *repeat* fresh processes."""
    best_cpu = best_wall = float("inf")
    for _ in range(repeat):
        s, p = build(span_pages, touched)
        gc.collect()
        gc.disable()
        try:
            w0, c0 = time.perf_counter(), time.process_time()
            p.exit()
            c1, w1 = time.process_time(), time.perf_counter()
        finally:
            gc.enable()
        problems += check_clean(s, f"exit of {touched}/{span_pages} pages")
        best_cpu, best_wall = min(best_cpu, c1 - c0), min(best_wall, w1 - w0)
    return best_cpu, best_wall


def count_points(span_pages: int, touched: int) -> int:
    """Scheduling points of one exit (each page-table entry read, lock, counter update ... is
    one): a measure of the work the walks do that does not depend on timing."""
    s, p = build(span_pages, touched)
    n = 0
    real = sched.point

    def counting(*a, **k):
        nonlocal n
        n += 1
        return real(*a, **k)
    sched.point = counting
    try:
        p.exit()
    finally:
        sched.point = real
    return n


def profile_exit(touched: int, top: int) -> str:
    s, p = build(touched, touched)
    prof = cProfile.Profile()
    prof.enable()
    p.exit()
    prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000",
                    help="touched pages per process, comma separated (default %(default)s)")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per size, the best counts (default %(default)s; the sparse "
                         "comparison runs at least 7 of each)")
    ap.add_argument("--profile", action="store_true",
                    help="also print a cProfile of the largest size's exit")
    args = ap.parse_args()
    sizes = sorted(int(x) for x in args.sizes.split(","))
    problems: list[str] = []

    # Warm up: the first exits import the modules of the exit path and grow the allocator's
    # arenas; the first size would otherwise pay for that.
    for _ in range(3):
        s, p = build(2000, 2000)
        p.exit()

    print("exit_mmap of a process with N touched pages (private anonymous, both CPUs)")
    print(f"{'pages':>9} {'populate s':>11} {'exit cpu ms':>12} {'exit wall ms':>13} "
          f"{'PTEs/s (cpu)':>13} {'us/PTE':>7}")
    rates = {}
    for n in sizes:
        t0 = time.process_time()
        build(n, n)
        populate = time.process_time() - t0
        cpu, wall = time_exit(n, n, args.repeat, problems)
        rates[n] = n / cpu
        print(f"{n:>9,} {populate:>11.2f} {cpu * 1e3:>12.2f} {wall * 1e3:>13.2f} "
              f"{rates[n]:>13,.0f} {cpu / n * 1e6:>7.2f}")
    flat = rates[sizes[-1]] / rates[sizes[0]]
    flat_ok = FLAT_RANGE[0] <= flat <= FLAT_RANGE[1]
    print(f"rate at {sizes[-1]:,} / rate at {sizes[0]:,} pages: {flat:.2f} "
          f"(target {FLAT_RANGE[0]}..{FLAT_RANGE[1]}: {'ok' if flat_ok else 'MISSED'})")

    print()
    print(f"{SPARSE_TOUCHED:,} touched pages: a {SPARSE_TOUCHED:,}-page mapping against the "
          f"start of a 1 TiB MAP_NORESERVE one")
    # Alternate the two, so that a change of load on the machine affects both alike.
    dense_cpu = dense_wall = sparse_cpu = sparse_wall = float("inf")
    for _ in range(max(args.repeat, 7)):
        c, w = time_exit(SPARSE_TOUCHED, SPARSE_TOUCHED, 1, problems)
        dense_cpu, dense_wall = min(dense_cpu, c), min(dense_wall, w)
        c, w = time_exit(TIB_PAGES, SPARSE_TOUCHED, 1, problems)
        sparse_cpu, sparse_wall = min(sparse_cpu, c), min(sparse_wall, w)
    dense_pts = count_points(SPARSE_TOUCHED, SPARSE_TOUCHED)
    sparse_pts = count_points(TIB_PAGES, SPARSE_TOUCHED)
    print(f"{'mapping':>9} {'exit cpu ms':>12} {'exit wall ms':>13} {'points':>8}")
    print(f"{'1000 pg':>9} {dense_cpu * 1e3:>12.2f} {dense_wall * 1e3:>13.2f} {dense_pts:>8,}")
    print(f"{'1 TiB':>9} {sparse_cpu * 1e3:>12.2f} {sparse_wall * 1e3:>13.2f} {sparse_pts:>8,}")
    sparse = sparse_cpu / dense_cpu
    sparse_ok = sparse <= SPARSE_MAX
    print(f"exit time 1 TiB / 1000 pages: {sparse:.2f} (target <= {SPARSE_MAX}: "
          f"{'ok' if sparse_ok else 'MISSED'}); points {sparse_pts / dense_pts:.2f}x "
          f"(+{sparse_pts - dense_pts:,} for the empty entries of the populated upper tables; "
          f"the span has {TIB_PAGES:,} pages)")

    if args.profile:
        print()
        print(f"cProfile of the exit of {sizes[-1]:,} touched pages (by own time):")
        print(profile_exit(sizes[-1], 20))

    for line in problems:
        print(f"NOT CLEAN: {line}")
    ok = flat_ok and sparse_ok and not problems
    print("all targets met" if ok else "a target was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
