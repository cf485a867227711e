"""Explorer benchmark on the 99baac21e458 scenario (parallel MADV_DONTNEED).

Reports, in one run:
* with every fix on (the scenario is `never`), at preemption bound 2: the executions DPOR
  explores, the number of distinct Mazurkiewicz traces among all interleavings with at most 2
  preemptions (from brute-force enumeration), and their ratio (1.0 would be optimal);
* unbounded DPOR with sleep sets: executions, sleep-set prunes, whether it completed;
* with the fix off: the time to the first counterexample (iterative context bounding) and its
  preemptions and length;
* steps per second of the explorer.

    python bench/bench_explore.py [--bound K]
"""

from __future__ import annotations

import argparse
import time

from unmapcheck.checker.explore import DporSearch, iterative_context_bounding
from unmapcheck.checker.scenario import load
from unmapcheck.proofs import SCENARIO_DIR

SCENARIO = SCENARIO_DIR / "99baac21e458-parallel-dontneed.toml"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bound", type=int, default=2)
    args = ap.parse_args()
    sc = load(SCENARIO)
    print(f"scenario: {sc.name}")

    t0 = time.monotonic()
    dpor = DporSearch(sc, bound=args.bound, collect_traces=True).run()
    t_dpor = time.monotonic() - t0
    t0 = time.monotonic()
    brute = DporSearch(sc, bound=args.bound, brute_force=True, collect_traces=True).run()
    t_brute = time.monotonic() - t0
    assert dpor.stats.complete and brute.stats.complete
    assert dpor.outcomes == brute.outcomes, "DPOR lost an outcome"
    n_traces = len(brute.traces)
    print(f"\nfix on, preemption bound {args.bound}:")
    print(f"  brute force      {brute.stats.executions:7d} executions  {t_brute:7.2f} s")
    print(f"  Mazurkiewicz     {n_traces:7d} distinct traces (from brute force)")
    print(f"  DPOR             {dpor.stats.executions:7d} executions  {t_dpor:7.2f} s  "
          f"({len(dpor.traces)} distinct traces)")
    print(f"  DPOR / traces    {dpor.stats.executions / n_traces:7.2f}   "
          f"(brute force / traces {brute.stats.executions / n_traces:.2f})")
    print(f"  steps per second {dpor.stats.steps_per_second:9.0f} (DPOR), "
          f"{brute.stats.steps_per_second:.0f} (brute force)")

    t0 = time.monotonic()
    unb = DporSearch(sc, bound=None, deadline=time.monotonic() + 300).run()
    print(f"\nfix on, no bound, sleep sets: {unb.stats.executions} executions, "
          f"{unb.stats.sleep_pruned} pruned by sleep sets, "
          f"{'complete' if unb.stats.complete else 'INCOMPLETE'} in {time.monotonic() - t0:.2f} s, "
          f"{unb.stats.steps_per_second:.0f} steps/s")

    off = sc.with_fixes_off(["99baac21e458"])
    t0 = time.monotonic()
    res = iterative_context_bounding(off, args.bound, stop_at_first=True)
    best = res.best()
    assert best is not None, "the bug was not found"
    print(f"\nfix off: first counterexample after {res.stats.time_to_first_violation:.3f} s "
          f"({res.stats.executions} executions, {best.preemptions} preemption(s), "
          f"{best.steps} steps): {best.violation.name}")


if __name__ == "__main__":
    main()
