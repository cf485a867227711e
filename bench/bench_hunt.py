"""How fast ``unmapcheck hunt`` finds each historic bug without its hand-written scenario.

For every fix the corpus carries with an expected invariant violation (a scenario's
``[[expect.without]]`` entry with ``sometimes``), a hunt is run with that fix off, on the
machine of its corpus scenario (arch, vendor, era), for several seeds, stopping at the first
violating scenario (``--first``) or when the budget is spent. Reported per fix: the median
time and model steps to the first violating scenario over the seeds (a seed that found
nothing counts as the budget, and the row says how many found it), whether the violation was
the invariant the corpus expects, and the size of the shrunk scenario. Fixes whose bug is an
outcome, not an invariant violation (a litmus condition), are listed as not hunted: the hunt
looks for invariant violations only.

    python bench/bench_hunt.py [--seeds N] [--budget SECONDS] [--jobs N] [-k PATTERN]
                               [--unguided] [--seeded]

Guided campaigns (the hunt's default: half the scenarios are edits of earlier ones that
reached something new) unless --unguided. With --seeded, each campaign starts from the
corpus as seeds (``unmapcheck hunt --from``) less every scenario that carries the fix under
test: what a user with the other scenarios would get.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile

from unmapcheck.checker.backend import Backend
from unmapcheck.checker.hunt.campaign import STEPS_PER_SECOND, hunt
from unmapcheck.checker.hunt.generate import Options
from unmapcheck.checker.scenario import load
from unmapcheck.proofs import scenario_paths


def targets(pattern: str) -> list[tuple]:
    """(fixes, expected groups, arch, vendor, era, corpus scenario) of each fix set."""
    out, seen = [], set()
    for path in scenario_paths():
        sc = load(path)
        for v in sc.variants:
            key = (tuple(sorted(v.fixes)), sc.arch, sc.vendor if sc.arch == "x86" else "")
            if key in seen or pattern not in ",".join(key[0]) + sc.name:
                continue
            seen.add(key)
            out.append((list(key[0]), list(v.sometimes), sc.arch, sc.vendor, sc.era, sc.name))
    return out


SEEDED = ", seeded with the corpus less the fix's own scenarios"


def _seeds(fixes: list, opts: Options) -> list:
    """The corpus scenarios that carry none of *fixes* in a variant, as hunt seeds (what
    ``unmapcheck hunt --from`` makes of them)."""
    from unmapcheck.checker.hunt.cli import _seeds as from_paths
    return from_paths([str(p) for p in scenario_paths()
                       if not any(set(v.fixes) & set(fixes) for v in load(p).variants)], opts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--budget", type=float, default=60.0, help="seconds of model steps a seed")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("-k", default="")
    ap.add_argument("--unguided", action="store_true", help="swarm draws only")
    ap.add_argument("--seeded", action="store_true",
                    help="seed each campaign with the corpus less the fix's own scenarios")
    args = ap.parse_args()
    budget = int(args.budget * STEPS_PER_SECOND)
    print(f"hunt per fix: {args.seeds} seeds, budget {args.budget:g} s "
          f"({budget:,} steps) each, --jobs {args.jobs}, "
          f"{'unguided' if args.unguided else 'guided'}{SEEDED if args.seeded else ''}, "
          f"stopping at the first violation\n")
    print(f"{'fixes off':28} {'machine':16} {'expects':12} {'found':6} {'median s':>9} "
          f"{'median steps':>13} {'groups found':18} shrunk (threads/ops/mappings/pages)")
    for fixes, expects, arch, vendor, era, name in targets(args.k):
        machine = f"{arch}{'/' + vendor if arch == 'x86' else ''} {era}"
        if not expects:
            print(f"{','.join(fixes):28} {machine:16} {'(outcome)':12} not hunted: an outcome, "
                  f"not an invariant violation ({name})")
            continue
        times, steps, groups, sizes, found = [], [], set(), [], 0
        for seed in range(1, args.seeds + 1):
            opts = Options(arch=arch, vendor=vendor if arch == "x86" else None, era=era,
                           fixes_off=fixes)
            seeds = _seeds(fixes, opts) if args.seeded else []
            with tempfile.TemporaryDirectory() as out:
                s = hunt(seed, budget, opts, Backend(args.jobs), out, stop_at_first=True,
                         guided=not args.unguided, seeds=seeds)
            if s.first_steps is None:
                times.append(s.seconds)
                steps.append(s.steps)
                continue
            found += 1
            times.append(s.first_seconds)
            steps.append(s.first_steps)
            for f in s.findings:
                groups.add(f.group)
                sizes.append(f"{f.shrunk['threads']}/{f.shrunk['ops']}/{f.shrunk['mappings']}"
                             f"/{f.shrunk['pages']}")
        hit = "yes" if groups & set(expects) else ("other" if groups else "-")
        print(f"{','.join(fixes):28} {machine:16} {','.join(expects):12} "
              f"{found}/{args.seeds:<4} {statistics.median(times):9.1f} "
              f"{int(statistics.median(steps)):13,} {(','.join(sorted(groups)) or '-') + ' ' + hit:18} "
              f"{' '.join(sizes) or '-'}", flush=True)


if __name__ == "__main__":
    main()
