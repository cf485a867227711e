"""``unmapcheck hunt``: the command line of the hunt (campaign.py).

    unmapcheck hunt [--seed S] [--budget SECONDS] [--scenarios N] [--first] [--out DIR]
                    [--arch x86|arm64|ppc64] [--vendor intel|amd] [--era E]
                    [--without COMMIT ...] [--no-choices] [--unguided]
                    [--from PATH ...] [--jobs N | --dask ADDRESS] [--json]

Exit codes: 0 nothing found; 1 a finding (an invariant violated: its shrunk scenario, trace
and report are in --out); 2 bad input; 3 interrupted before the budget was spent, nothing
found.
"""

from __future__ import annotations

import json

from .campaign import STEPS_PER_SECOND

EXIT_OK, EXIT_FOUND, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3
DEFAULT_BUDGET = 60.0
DEFAULT_OUT = "hunt-findings"


def add_parser(sub, epilog: str, func) -> None:
    h = sub.add_parser("hunt", epilog=epilog,
                       help="random scenarios explored for the bugs nobody wrote one for")
    h.add_argument("--seed", type=int, default=0, help="seed of the campaign (default 0)")
    h.add_argument("--budget", type=float, metavar="SECONDS",
                   help=f"model steps to spend, in seconds of one core here ({STEPS_PER_SECOND:,}"
                        f" steps each; default {DEFAULT_BUDGET:g}): the same seed and budget "
                        f"find the same on any machine")
    h.add_argument("--scenarios", type=int, metavar="N",
                   help="stop after N scenarios (whichever of this and --budget comes first)")
    h.add_argument("--first", action="store_true",
                   help="stop at the first violating scenario (then shrink and write it)")
    h.add_argument("--out", metavar="DIR", default=DEFAULT_OUT,
                   help=f"where findings are written (default {DEFAULT_OUT}/)")
    h.add_argument("--arch", choices=("x86", "arm64", "ppc64"),
                   help="the architecture of every scenario (default: x86 or arm64, drawn)")
    h.add_argument("--vendor", choices=("intel", "amd"),
                   help="x86's INVLPG semantics (default: drawn)")
    h.add_argument("--era", choices=("6.18", "5.x", "7.0"),
                   help="the kernel era (default 6.18, or the era of a fix given to --without)")
    h.add_argument("--without", action="append", metavar="COMMIT",
                   help="switch a historic fix off in every scenario (repeatable)")
    h.add_argument("--no-choices", action="store_true",
                   help="never switch the allocation-failure and resched choices on")
    h.add_argument("--unguided", action="store_true",
                   help="every scenario a fresh random draw (default: half of them are edits "
                        "of earlier scenarios that reached new kernel steps or races)")
    h.add_argument("--from", dest="seeds", action="append", metavar="PATH",
                   help="a scenario file, or a folder of them (*.toml), explored first and "
                        "kept in the corpus as a start for the edits (repeatable; their "
                        "expectations and bounds are dropped, the campaign's fix set, era "
                        "and machine options applied)")
    h.add_argument("--jobs", type=int, help="scenarios explored in parallel (default: the "
                   "usable CPUs)")
    h.add_argument("--dask", metavar="ADDRESS", help="explore on a dask.distributed cluster "
                   "(a scheduler address, or 'local')")
    h.add_argument("--json", action="store_true", help="print the result as JSON")
    h.set_defaults(func=func)


def run(args) -> int:
    import math

    from unmapcheck.impl.fixes import FIXES

    from ..backend import backend
    from ..cli import UsageError, _int_range, _writable_output, usable_cpus, without_fixes
    from ..console import Progress
    from .campaign import hunt
    from .generate import Options
    budget = DEFAULT_BUDGET if args.budget is None else args.budget
    if not (math.isfinite(budget) and 0 < budget <= 10 ** 7):
        raise UsageError(f"--budget must be a number of seconds > 0 and at most 10**7, got "
                         f"{args.budget!r}")
    _int_range("--seed", args.seed, 0, 2 ** 63 - 1)
    _int_range("--scenarios", args.scenarios, 1, 10 ** 9)
    _int_range("--jobs", args.jobs, 1, 1024)
    if args.jobs and args.dask:
        raise UsageError("--jobs runs local processes, --dask a cluster's workers: give one")
    if args.vendor and args.arch and args.arch != "x86":
        raise UsageError(f"--vendor is x86's INVLPG semantics: not for --arch {args.arch}")
    _writable_output("--out", args.out, directory=True)
    fixes = without_fixes(args)
    eras = {FIXES[c].era for c in fixes} - {"6.18"}
    if len(eras) > 1:
        raise UsageError(f"--without: fixes of different kernel eras ({', '.join(sorted(eras))})")
    era = args.era or (eras.pop() if eras else "6.18")
    if args.era and eras and eras != {args.era}:
        raise UsageError(f"--without {fixes[0]} lives in kernel era {eras.pop()}, not "
                         f"--era {args.era}")
    options = Options(arch=args.arch, vendor=args.vendor, era=era,
                      fixes_off=sorted(set(fixes)), choices=not args.no_choices)
    seeds = _seeds(args.seeds or [], options)
    steps = int(budget * STEPS_PER_SECOND)
    progress = Progress(False if args.json else None)

    def on_progress(s) -> None:
        progress.update(f"hunt: {s.scenarios} scenarios, {s.steps * 100 // steps}% of the "
                        f"budget, {s.violating_scenarios} violating")

    with backend(args.jobs or usable_cpus(), args.dask) as pool:
        try:
            summary = hunt(args.seed, steps, options, pool, args.out, on_progress,
                           max_scenarios=args.scenarios, stop_at_first=args.first,
                           guided=not args.unguided, seeds=seeds)
        finally:
            progress.done()
    if args.json:
        print(json.dumps({"schema": "unmapcheck-hunt", "version": 1,
                          "options": {"arch": options.arch, "vendor": options.vendor,
                                      "era": options.era, "fixes_off": options.fixes_off,
                                      "choices": options.choices},
                          **summary.as_dict()}, indent=1))
    else:
        _print(summary, options, budget)
    if summary.findings:
        return EXIT_FOUND
    return EXIT_UNKNOWN if summary.interrupted else EXIT_OK


def _seeds(paths: list, options) -> list:
    """The scenarios of --from (files, and the *.toml of folders, in name order), each
    checked by the loader as written and again with the campaign's options applied."""
    from pathlib import Path

    from ..cli import UsageError
    from ..scenario import ScenarioError, parse
    from .scenario import from_toml, to_toml
    files: list = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            found = sorted(path.glob("*.toml"))
            if not found:
                raise UsageError(f"--from {p}: no scenario files (*.toml) in this folder")
            files += found
        elif path.is_file():
            files.append(path)
        else:
            raise UsageError(f"--from {p}: no such file or folder")
    out = []
    for f in files:
        try:
            text = f.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"--from {f}: not UTF-8 text") from None
        s = from_toml(text, str(f))                 # ScenarioError: the loader's line
        options.apply(s)
        try:
            parse(to_toml(s), str(f))
        except ScenarioError as e:
            raise UsageError(f"--from {f}: not a scenario of this campaign (arch "
                             f"{s.arch}, era {s.era}, fixes off: "
                             f"{', '.join(s.fixes_off) or 'none'}): {e}") from None
        out.append(s)
    return out


def _print(s, options, budget: float) -> None:
    what = ", ".join(filter(None, [
        f"arch {options.arch}" if options.arch else "arch x86/arm64",
        f"vendor {options.vendor}" if options.vendor else None,
        f"era {options.era}",
        f"fixes off: {', '.join(options.fixes_off)}" if options.fixes_off else "every fix on"]))
    print(f"hunt: seed {s.seed}, budget {budget:g} s ({s.budget_steps:,} model steps), {what}")
    print(f"  scenarios        {s.scenarios} ({s.outside} outside the model)")
    for why, n in sorted(s.outside_why.items(), key=lambda kv: -kv[1]):
        print(f"    {n:4}  {why}")
    if s.seeds:
        print(f"  seeds            {s.seeds} (--from), explored first")
    if s.guided:
        print(f"  guided           {s.mutated} of them edits of earlier ones; {s.corpus} "
              f"kept for reaching something new, {s.features:,} features")
    print(f"  executions       {s.executions:,} ({s.steps:,} steps)")
    print(f"  violating        {s.violating_scenarios} scenarios" +
          (f" (the first after {s.first_steps:,} steps, {s.first_seconds:.1f} s)"
           if s.first_steps is not None else ""))
    print(f"  time             {s.seconds:.1f} s" + ("  (interrupted)" if s.interrupted else ""))
    if not s.findings:
        print("result: nothing found")
        return
    print(f"\n{len(s.findings)} finding(s), one per invariant and racing functions:")
    for n, f in enumerate(s.findings, 1):
        race = " vs ".join(x for x in f.functions if x) or "(no race highlighted)"
        print(f"\n{n}. {f.invariant}: {f.message}")
        print(f"   race: {race}; scenario {f.index}, shrunk from "
              f"{_size(f.original)} to {_size(f.shrunk)}; {f.preemptions} preemptions, "
              f"{f.steps} steps")
        for kind in ("toml", "trace", "html"):
            if kind in f.files:
                print(f"   {kind:5} {f.files[kind]}")
        if "toml" in f.files:
            print(f"   reproduce: unmapcheck explore {f.files['toml']}")
    print(f"\nresult: FOUND {len(s.findings)}")


def _size(d: dict) -> str:
    return (f"{d.get('threads', 0)} threads/{d.get('ops', 0)} ops/{d.get('mappings', 0)} "
            f"mappings/{d.get('pages', 0)} pages")
