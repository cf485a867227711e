"""Explorer benchmark: how close the DPOR searches come to one execution per trace, and the
cost of searching without a bound.

Reports, in one run:
* at preemption bound 2 (source-DPOR with conservative backtracking, the bounded search), on
  99baac21e458 and two more corpus scenarios with every fix on: DPOR's executions, the number
  of distinct Mazurkiewicz traces among all interleavings with at most 2 preemptions (from
  brute-force enumeration) and the ratio (1.0 would be optimal);
* without a bound, on generated scenarios (tests/checker/scenario_gen.py) whose whole space
  brute force enumerates: executions per trace of optimal DPOR (wakeup trees) and of
  source-DPOR with sleep sets, and the sleep-set-blocked executions of each;
* without a bound, every corpus scenario with optimal DPOR under a time budget per scenario
  (``--unbounded-budget``; 0 skips it): executions, complete or not, seconds;
* steps per second, and the time to the first counterexample with 99baac21e458 off;
* work units (checker/parallel.py) at bound 2 on the same scenarios: one process, --jobs 1
  and --jobs 2 (executions and seconds), and the speedup of --jobs 2 over --jobs 1.

    python bench/bench_explore.py [--bound K] [--unbounded-budget SECONDS] [--generated N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from unmapcheck.checker.explore import DporSearch, iterative_context_bounding
from unmapcheck.checker.parallel import explore_parallel
from unmapcheck.checker.scenario import load
from unmapcheck.proofs import SCENARIO_DIR, scenario_paths

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "checker"))
from scenario_gen import generate  # noqa: E402

BOUNDED = ["99baac21e458-parallel-dontneed", "never-munmap-vs-fault-neighbour",
           "never-mlock-vs-munmap"]


def bounded(name: str, bound: int) -> None:
    sc = load(SCENARIO_DIR / f"{name}.toml")
    t0 = time.monotonic()
    dpor = DporSearch(sc, bound=bound, collect_traces=True).run()
    t_dpor = time.monotonic() - t0
    t0 = time.monotonic()
    brute = DporSearch(sc, bound=bound, brute_force=True, collect_traces=True,
                       max_executions=200_000).run()
    t_brute = time.monotonic() - t0
    if not brute.stats.complete:
        print(f"  {name}: brute force did not finish ({brute.stats.executions} executions)")
        return
    assert dpor.outcomes == brute.outcomes, f"{name}: DPOR lost an outcome"
    n = len(brute.traces)
    print(f"  {name}: traces {n}, DPOR {dpor.stats.executions} executions "
          f"({dpor.stats.complete_executions} complete) in {t_dpor:.2f} s = "
          f"{dpor.stats.executions / n:.2f} per trace; brute force {brute.stats.executions} "
          f"in {t_brute:.2f} s; DPOR {dpor.stats.steps_per_second:.0f} steps/s")


def generated(count: int) -> None:
    tot = {"traces": 0, "optimal": 0, "source": 0, "opt_blocked": 0, "src_blocked": 0}
    used = 0
    for seed in range(count):
        sc = generate(seed)
        brute = DporSearch(sc, bound=None, brute_force=True, collect_traces=True,
                           max_executions=5000).run()
        if not brute.stats.complete:
            continue
        opt = DporSearch(sc, bound=None).run()
        src = DporSearch(sc, bound=None, optimal=False).run()
        assert opt.outcomes == brute.outcomes == src.outcomes, f"seed {seed}"
        used += 1
        tot["traces"] += len(brute.traces)
        tot["optimal"] += opt.stats.executions
        tot["source"] += src.stats.executions
        tot["opt_blocked"] += opt.stats.sleep_pruned
        tot["src_blocked"] += src.stats.sleep_pruned
    if not used:
        print("  no generated scenario small enough for brute force")
        return
    t = tot["traces"]
    print(f"  {used} of {count} generated scenarios: {t} traces; optimal DPOR "
          f"{tot['optimal']} executions ({tot['optimal'] / t:.3f} per trace, "
          f"{tot['opt_blocked']} sleep-set blocked); source-DPOR {tot['source']} "
          f"({tot['source'] / t:.3f} per trace, {tot['src_blocked']} sleep-set blocked)")


def unbounded_corpus(budget: float) -> None:
    for path in scenario_paths():
        sc = load(path)
        t0 = time.monotonic()
        res = DporSearch(sc, bound=None, deadline=time.monotonic() + budget).run()
        st = res.stats
        print(f"  {sc.name:55s} {st.executions:7d} executions "
              f"({st.sleep_pruned} sleep-set blocked) "
              f"{'complete' if st.complete else 'INCOMPLETE'} {time.monotonic() - t0:6.1f} s")


def speedup(name: str, bound: int) -> None:
    sc = load(SCENARIO_DIR / f"{name}.toml")
    t0 = time.monotonic()
    one = DporSearch(sc, bound=bound).run()
    t_one = time.monotonic() - t0
    times, runs = {}, {}
    for jobs in (1, 2):
        t0 = time.monotonic()
        runs[jobs] = explore_parallel(sc, bound, jobs=jobs)
        times[jobs] = time.monotonic() - t0
        assert runs[jobs].outcomes == one.outcomes, f"{name}: --jobs {jobs} lost an outcome"
    print(f"  {name}: one process {one.stats.executions} executions {t_one:.2f} s; "
          f"--jobs 1 {runs[1].stats.executions} ({runs[1].stats.units} units) "
          f"{times[1]:.2f} s; --jobs 2 {runs[2].stats.executions} {times[2]:.2f} s; "
          f"speedup of --jobs 2 over --jobs 1 {times[1] / times[2]:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bound", type=int, default=2)
    ap.add_argument("--generated", type=int, default=120,
                    help="generated scenarios to try for the unbounded comparison")
    ap.add_argument("--unbounded-budget", type=float, default=60.0,
                    help="seconds per corpus scenario without a bound (0: skip)")
    args = ap.parse_args()

    print(f"preemption bound {args.bound}, every fix on (source-DPOR vs brute force):")
    for name in BOUNDED:
        bounded(name, args.bound)

    print("\nno bound, generated scenarios (optimal and source-DPOR vs brute force):")
    generated(args.generated)

    sc = load(SCENARIO_DIR / f"{BOUNDED[0]}.toml")
    off = sc.with_fixes_off(["99baac21e458"])
    res = iterative_context_bounding(off, args.bound, stop_at_first=True)
    best = res.best()
    assert best is not None, "the bug was not found"
    print(f"\n99baac21e458 off: first counterexample after "
          f"{res.stats.time_to_first_violation:.3f} s ({res.stats.executions} executions, "
          f"{best.preemptions} preemption(s), {best.steps} steps): {best.violation.name}")

    print(f"\nwork units, preemption bound {args.bound}:")
    for name in BOUNDED:
        speedup(name, args.bound)

    if args.unbounded_budget > 0:
        print(f"\nno bound, every corpus scenario, optimal DPOR, "
              f"{args.unbounded_budget:g} s each:")
        unbounded_corpus(args.unbounded_budget)


if __name__ == "__main__":
    main()
