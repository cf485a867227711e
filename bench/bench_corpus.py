"""The scenario corpus at one preemption bound: what each scenario obligation costs.

For every corpus scenario, as written and with each ``[[expect.without]]`` fix set switched
off, explores at preemption bound K (default 2) exactly as ``unmapcheck prove --bound K`` does
(stopping at the first counterexample unless the scenario's outcome conditions need the whole
bounded space) and reports the DPOR executions, the steps, the seconds and the verdict's
ingredients (counterexample groups, complete or not). The totals at the end are the figures
the README compares before and after a model change: run this script on both commits.

    python bench/bench_corpus.py [--bound K] [-k PATTERN] [--timeout S]
"""

from __future__ import annotations

import argparse
import time

from unmapcheck.checker.prove import explore_scenario
from unmapcheck.checker.scenario import load
from unmapcheck.proofs import scenario_paths


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bound", type=int, default=2)
    ap.add_argument("-k", default="", help="only scenarios whose name contains this")
    ap.add_argument("--timeout", type=float, default=300.0)
    args = ap.parse_args()
    rows = []
    for path in scenario_paths():
        sc = load(path)
        for fixes in [[]] + [list(v.fixes) for v in sc.variants]:
            name = sc.name + (f" --without {','.join(fixes)}" if fixes else "")
            if args.k not in name:
                continue
            s = sc.with_fixes_off(fixes) if fixes else sc
            t0 = time.monotonic()
            res = explore_scenario(s, args.bound, args.timeout)
            dt = time.monotonic() - t0
            found = ",".join(sorted(res.violated())) or "-"
            rows.append((name, res.stats.executions, res.stats.steps, dt, found,
                         res.stats.complete))
            print(f"{name:70s} {res.stats.executions:7d} execs {res.stats.steps:9d} steps "
                  f"{dt:7.2f} s  found {found:12s} {'complete' if res.stats.complete else ''}",
                  flush=True)
    print(f"\n{len(rows)} scenario obligations at preemption bound {args.bound}: "
          f"{sum(r[1] for r in rows)} executions, {sum(r[2] for r in rows)} steps, "
          f"{sum(r[3] for r in rows):.1f} s")


if __name__ == "__main__":
    main()
