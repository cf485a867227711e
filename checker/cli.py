"""The ``unmapcheck`` command line.

    unmapcheck prove [NAME ...] [--bound N] [--timeout S] [--json] [--jobs N | --dask ADDRESS]
                     [--list] [-x]
                     [--coverage [FILE.json]]
    unmapcheck mutate [PATH|FUNCTION ...] [-k PATTERN] [--obligations PATTERN] [--jobs N]
                      [--timeout S] [--max-mutants N --seed S] [--fail-under SCORE]
                      [--all-killers] [--list] [--json]
    unmapcheck explore SCENARIO [--without COMMIT ...] [--preemptions K|none]
                       [--dpor optimal|source] [--jobs N | --dask ADDRESS]
                       [--checkpoint FILE]
                       [--random N --seed S | --pct D --random N --seed S]
                       [--trace-out FILE] [--html FILE] [--outcomes] [--json]
    unmapcheck replay TRACE [--json]
    unmapcheck show TRACE [--html OUT] [--all]
    unmapcheck oracle [--examples N --seed S --max-calls K --save FILE]
                      [--jobs N | --dask ADDRESS] [--sequence FILE]
    unmapcheck hunt [--seed S] [--budget SECONDS] [--scenarios N] [--out DIR] [--arch A]
                    [--vendor V] [--era E] [--without COMMIT ...] [--jobs N | --dask ADDRESS]
    unmapcheck fixes

Exit codes, for every command: 0 everything as expected (every obligation PROVED); 1 a
violation, an expected violation or outcome not found, or a FAILED obligation; 2 a usage or
input error; 3 nothing failed but something is undecided (an UNKNOWN obligation, a search cut
short before it could decide), which is never counted as proved.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import signal
import sys
import time
from typing import Optional

from .console import Progress  # noqa: F401  (the oracle's CLI imports it from here)

EXIT_OK, EXIT_FAIL, EXIT_USAGE, EXIT_UNKNOWN = 0, 1, 2, 3
JSON_VERSION = 1


class UsageError(Exception):
    pass


EXIT_INTERNAL = 4          # a bug in unmapcheck (never the answer to bad input)


def _err(msg: str) -> int:
    print(f"unmapcheck: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _positive_seconds(flag: str, value: Optional[float]) -> None:
    """A time budget is a finite number of seconds > 0 (0, a negative, nan or inf would mean
    "no limit" or "nothing" by accident)."""
    import math
    if value is not None and not (math.isfinite(value) and value > 0):
        raise UsageError(f"{flag} must be a finite number of seconds > 0, got {value!r}")


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, as taskset or a container's
    cpuset sets it), the default of prove --jobs."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


UNBOUNDED = "none"


@contextlib.contextmanager
def _explore_backend(args, deadline, sc, bound):
    """explore --jobs N / --dask ADDRESS / --checkpoint FILE: each DPOR round as work units
    on local processes (one with only --checkpoint) or a dask.distributed cluster
    (checker/parallel.py, checker/backend.py), saved to and resumed from the checkpoint
    (checker/checkpoint.py); None: the one-process search."""
    if not args.dask and (args.jobs or 1) == 1 and not args.checkpoint:
        yield None
        return
    from .parallel import explore_parallel
    checkpoint = None
    if args.checkpoint:
        from .checkpoint import Checkpoint, identity
        checkpoint = Checkpoint.open(args.checkpoint, identity(sc, bound), len(sc.threads))
    jobs = args.jobs or (1 if args.checkpoint else usable_cpus())
    from .backend import backend
    with backend(jobs, args.dask) as pool:
        run = functools.partial(explore_parallel, backend=pool, deadline=deadline,
                                max_executions=args.max_executions)
        yield run if checkpoint is None else checkpoint.rounds_runner(run)


def _preemption_bound(text: Optional[str]):
    """--preemptions K (0..64) or none (no bound: bounds 0, 1 and 2, then the unbounded
    search)."""
    if text is None or text.strip().lower() == UNBOUNDED:
        return None if text is None else UNBOUNDED
    try:
        value = int(text)
    except ValueError:
        raise UsageError(f"--preemptions must be a number between 0 and 64 or 'none', "
                         f"got {text!r}") from None
    _int_range("--preemptions", value, 0, 64)
    return value


def _int_range(flag: str, value: Optional[int], lo: int, hi: int) -> None:
    if value is not None and not lo <= value <= hi:
        raise UsageError(f"{flag} must be between {lo} and {hi}, got {value}")


def _input_path(what: str, path: str) -> None:
    """An input file name the OS can take (the loaders say what is wrong with the file)."""
    if not path or "\0" in path or path != path.strip("\n"):
        raise UsageError(f"{what}: not a usable file name: {path!r}")


def _writable_output(flag: str, path: Optional[str], directory: bool = False) -> None:
    """Check an output path before the work starts: its folder exists and is writable (for
    --trace-dir: the folder itself, which is created if its parent is writable)."""
    if path is None:
        return
    if not path or "\0" in path:
        raise UsageError(f"{flag}: not a usable path: {path!r}")
    target = os.path.abspath(path)
    if directory:
        if os.path.isdir(target):
            folder = target
        elif os.path.exists(target):
            raise UsageError(f"{flag} {path}: exists and is not a folder")
        else:
            folder = os.path.dirname(target)
    else:
        if os.path.isdir(target):
            raise UsageError(f"{flag} {path}: is a folder, not a file name")
        folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise UsageError(f"{flag} {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {path}: folder {folder} is not writable")


# --- explore ------------------------------------------------------------------------------------
@contextlib.contextmanager
def _sigterm_as_ctrl_c():
    """SIGTERM (a batch system's time limit, `kill`) ends a long command as Ctrl-C does."""
    old = signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def cmd_explore(args) -> int:
    # (the statistics so far, the best trace, exit 3)
    with _sigterm_as_ctrl_c():
        return _explore(args)


def without_fixes(args) -> list[str]:
    """The full commit ids of a command's --without COMMIT arguments (a usage error names
    one that matches no fix, or several)."""
    from unmapcheck.impl.fixes import resolve_commit
    out = []
    for c in args.without or []:
        try:
            out.append(resolve_commit(c))
        except ValueError as e:
            raise UsageError(f"--without: {e}") from None
    return out


def _explore(args) -> int:
    from .explore import RandomSearch, iterative_context_bounding
    from .prove import judge
    from .scenario import load
    from .trace import counterexample_trace, render_text

    without = without_fixes(args)
    args.preemptions = _preemption_bound(args.preemptions)
    if args.pct is not None and args.random is None:
        raise UsageError("--pct needs --random N (the number of executions)")
    _int_range("--pct", args.pct, 1, 64)
    _int_range("--random", args.random, 1, 10 ** 9)
    _int_range("--max-executions", args.max_executions, 1, 10 ** 9)
    _int_range("--seed", args.seed, 0, 2 ** 63 - 1)
    if args.random is not None and args.preemptions is not None:
        raise UsageError("--preemptions bounds the DPOR search; --random runs unbounded "
                         "random schedules (give one of them)")
    _int_range("--jobs", args.jobs, 1, 1024)
    if args.random is not None and (args.jobs or args.dask or args.checkpoint):
        raise UsageError("--jobs, --dask and --checkpoint are for the DPOR search; --random "
                         "runs in one process")
    _positive_seconds("--timeout", args.timeout)
    _writable_output("--trace-out", args.trace_out)
    _writable_output("--html", args.html)
    _writable_output("--checkpoint", args.checkpoint)
    sc = load(_scenario_path(args.scenario))
    if without:
        sc = sc.with_fixes_off(without)
    progress = Progress(False if args.json else None)
    deadline = time.monotonic() + args.timeout if args.timeout else None

    def on_exec(search, ex):
        s = search.stats
        progress.update(f"{sc.name}: bound {search.bound if search.bound is not None else '-'} "
                        f"executions {s.executions} steps {s.steps} "
                        f"violations {len(search.result.counterexamples)}")

    t0 = time.monotonic()
    if args.random is not None:
        from .minimise import minimise
        search = RandomSearch(sc, args.random, args.seed, pct_depth=args.pct, deadline=deadline)
        result = search.run()
        # Random and PCT schedules are full of needless switches: show each minimised.
        for g, c in list(result.counterexamples.items()):
            result.counterexamples[g] = minimise(sc, c)
    else:
        bound = sc.preemptions if args.preemptions is None else \
            None if args.preemptions == UNBOUNDED else args.preemptions
        with _explore_backend(args, deadline, sc, bound) as parallel:
            result = iterative_context_bounding(
                sc, bound, stop_at_first=not sc.needs_every_outcome(), deadline=deadline,
                max_executions=args.max_executions, on_execution=on_exec,
                optimal=args.dpor == "optimal", parallel=parallel)
    progress.done()
    elapsed = time.monotonic() - t0
    verdict = judge(sc, result, f"scenario:{sc.name}", elapsed) if sc.has_expectation() else None
    best = result.best()
    trace = None
    if best is not None:
        trace = counterexample_trace(sc, best,
                                     command=reproduce_command(args, without))
        if args.trace_out:
            trace.save(args.trace_out)
        if args.html:
            from .report import write_html
            write_html(trace.to_json(), args.html)
    if args.json:
        out = {"scenario": sc.name, "path": sc.path, "fixes_off": sc.fixes_off,
               "stats": result.stats.as_dict(),
               "violations": {g: {"invariant": c.violation.name, "message": c.violation.message,
                                  "preemptions": c.preemptions, "steps": c.steps,
                                  "schedule": c.schedule}
                              for g, c in sorted(result.counterexamples.items())},
               "expected": ({"never": True} if sc.expect_never else
                            {"sometimes": sc.expect_sometimes} if sc.has_expectation() else None),
               "verdict": verdict.status if verdict else None,
               "command": reproduce_command(args, without),
               "trace": args.trace_out}
        if args.outcomes:
            out["outcomes"] = [{"results": dict(k), "executions": n}
                               for k, n in _sorted_outcomes(result)]
        if verdict is not None and verdict.data.get("outcomes"):
            out["outcome_expectations"] = verdict.data["outcomes"]
        _print_json("explore", out)
    else:
        st = result.stats
        print(f"scenario {sc.name} ({sc.path})" +
              (f", fixes off: {', '.join(sc.fixes_off)}" if sc.fixes_off else ""))
        if trace is not None:
            print()
            print(render_text(trace.to_json()))
            print()
        print(f"executions {st.executions} ({st.complete_executions} complete, "
              f"{st.sleep_pruned} sleep-set blocked; {st.bound_pruned} choices cut by the bound)  "
              f"steps {st.steps}  "
              f"({st.executions_per_second:.0f} exec/s, {st.steps_per_second:.0f} steps/s)  "
              f"preemption bound "
              f"{st.preemption_bound if st.preemption_bound is not None else 'none'}  "
              f"{'complete' if st.complete else 'incomplete'}"
              + ("  (interrupted)" if st.interrupted else ""))
        for g, c in sorted(result.counterexamples.items()):
            print(f"violated {c.violation.name}: {c.violation.message} "
                  f"[{c.preemptions} preemptions, {c.steps} steps]")
        if verdict is not None:
            print(f"expected {'never' if sc.expect_never else 'sometimes ' + ', '.join(sc.expect_sometimes)}: "
                  f"{'as expected' if verdict.status == 'PROVED' else verdict.status}: "
                  f"{verdict.detail}")
        if args.outcomes:
            print(render_outcomes(sc, result))
        if args.trace_out and trace is not None:
            print(f"trace written to {args.trace_out}")
    if verdict is not None:
        return {"PROVED": EXIT_OK, "FAILED": EXIT_FAIL}.get(verdict.status, EXIT_UNKNOWN)
    if result.counterexamples:
        return EXIT_FAIL
    # No expectation and no violation: complete is "as expected"; a search cut short (a
    # budget, Ctrl-C, random or PCT mode) decided nothing.
    return EXIT_OK if result.stats.complete else EXIT_UNKNOWN


def _sorted_outcomes(result) -> list:
    return sorted(result.outcome_counts.items(), key=lambda kv: (-kv[1], repr(kv[0])))


def render_outcomes(sc, result) -> str:
    """The distinct outcomes of the complete executions, most frequent first, each with how
    many executions reached it (those of the largest preemption bound explored)."""
    from .litmus import format_outcome
    kinds = {t.name: [op.op if op.op in ("load", "store") else "syscall" for op in t.program]
             for t in sc.threads}
    rows = _sorted_outcomes(result)
    lines = [f"{len(rows)} distinct outcome(s) of {sum(n for _, n in rows)} complete "
             f"execution(s):"]
    for key, n in rows:
        lines.append(f"  {n:>7}  {format_outcome(dict(key), kinds)}")
    return "\n".join(lines)


def _scenario_path(name: str) -> str:
    """A scenario file, or the name (or a unique prefix) of a corpus scenario."""
    from unmapcheck.proofs import scenario_paths
    if os.path.exists(name):
        return name
    corpus = {p.stem: str(p) for p in scenario_paths()}
    if name in corpus:
        return corpus[name]
    hits = [stem for stem in corpus if stem.startswith(name)]
    if len(hits) == 1:
        return corpus[hits[0]]
    if hits:
        raise UsageError(f"{name!r} names several corpus scenarios: {', '.join(sorted(hits))}")
    return name                 # the loader says it cannot be read


def reproduce_command(args, without: list[str]) -> str:
    """The explore command line that reproduces this search: every option that shaped it
    (fixes, bound, mode, seed, PCT depth, budgets), shell-quoted."""
    import shlex
    words = ["unmapcheck", "explore", args.scenario]
    for c in without:
        words += ["--without", c]
    if args.random is not None:
        words += ["--random", str(args.random), "--seed", str(args.seed)]
        if args.pct is not None:
            words += ["--pct", str(args.pct)]
    elif args.preemptions is not None:
        words += ["--preemptions", str(args.preemptions)]
    if args.random is None and args.dpor != "optimal":
        words += ["--dpor", args.dpor]
    if args.max_executions is not None:
        words += ["--max-executions", str(args.max_executions)]
    if args.timeout:
        words += ["--timeout", repr(args.timeout)]
    return " ".join(shlex.quote(w) for w in words)


# --- replay and show ----------------------------------------------------------------------------
def cmd_replay(args) -> int:
    from .trace import load_trace, replay
    doc = load_trace(args.trace)
    res = replay(doc, args.trace)
    if args.json:
        _print_json("replay", {"reproduced": res.reproduced, "steps": res.steps_run,
                               "violation": res.violation, "message": res.message})
    else:
        print(f"{args.trace}: {res.message} ({res.steps_run} steps replayed)")
    return EXIT_FAIL if res.reproduced else EXIT_OK


def cmd_show(args) -> int:
    from .trace import load_trace, render_text
    _writable_output("--html", args.html)
    doc = load_trace(args.trace)
    if args.html:
        from .report import write_html
        write_html(doc, args.html)
        print(f"report written to {args.html}")
        return EXIT_OK
    print(render_text(doc, all_changes=args.all))
    return EXIT_OK


# --- prove --------------------------------------------------------------------------------------
def _select_obligations(names: list[str], pattern: Optional[str] = None) -> list:
    """The obligations named on the command line: an existing scenario file or folder (every
    *.toml below it) gives that scenario's obligations; anything else is a corpus obligation
    name or prefix (``scenario:`` may be left out). *pattern* (-k) keeps those whose name
    contains it (a glob when it has * ? or [)."""
    from pathlib import Path
    from .prove import all_obligations, scenario_obligations
    if not names:
        obs = all_obligations()
    else:
        corpus = None
        obs = []
        for n in names:
            if not n.strip():
                raise UsageError("an empty obligation name matches nothing (unmapcheck list "
                                 "shows them)")
            path = Path(n)
            if path.is_dir():
                files = sorted(path.rglob("*.toml"))
                if not files:
                    raise UsageError(f"{n}: no scenario files (*.toml) in this folder")
                hit = scenario_obligations(files)
            elif path.is_file():
                hit = scenario_obligations([path])
            else:
                corpus = corpus if corpus is not None else all_obligations()
                hit = [ob for ob in corpus if ob.name == n or ob.name.startswith(n)
                       or ob.name.startswith("scenario:" + n)]
                if not hit:
                    raise UsageError(f"no obligation or scenario file named {n!r} "
                                     f"(unmapcheck list shows them)")
            obs.extend(h for h in hit if all(h.name != o.name or h is o for o in obs))
    if pattern:
        import fnmatch
        glob = any(c in pattern for c in "*?[")
        obs = [ob for ob in obs if (fnmatch.fnmatchcase(ob.name, pattern) if glob
                                    else pattern.lower() in ob.name.lower())]
        if not obs:
            raise UsageError(f"-k {pattern!r} matches no obligation (unmapcheck list shows "
                             f"them)")
    return obs


def cmd_list(args) -> int:
    obs = _select_obligations(args.names, args.k)
    if args.json:
        _print_json("list", {"obligations": [{"name": ob.name, "kind": ob.kind,
                                              "bound": ob.bound} for ob in obs]})
        return EXIT_OK
    for ob in obs:
        print(f"{ob.kind:9} {ob.name}  [{ob.bound}]")
    return EXIT_OK


def _print_json(command: str, body: dict) -> None:
    """Every command's --json: one envelope, {"schema": "unmapcheck-COMMAND", "version": N,
    ...}, documented in docs/json-output.md."""
    print(json.dumps({"schema": f"unmapcheck-{command}", "version": JSON_VERSION, **body},
                     indent=1))


def cmd_prove(args) -> int:
    from .console import ProveReporter, print_table, status_label
    from .prove import FAILED, UNKNOWN, Options, run_many
    if args.coverage and not args.coverage.endswith(".json"):
        # "--coverage NAME": argparse gave the optional FILE an obligation name.
        args.names = [args.coverage, *args.names]
        args.coverage = ""
    if args.record_baseline is not None:
        return _record_baseline(args)
    obs = _select_obligations(args.names, args.k)
    if args.list:
        for ob in obs:
            print(f"{ob.kind:9} {ob.name}  [{ob.bound}]")
        return EXIT_OK
    _int_range("--bound", args.bound, 0, 64)
    _positive_seconds("--timeout", args.timeout)
    _int_range("--jobs", args.jobs, 1, 1024)
    if args.jobs is None:
        args.jobs = usable_cpus()
    _writable_output("--trace-dir", args.trace_dir, directory=True)
    _writable_output("--junit", args.junit)
    _writable_output("--coverage", args.coverage or None)
    if args.trace_dir:
        os.makedirs(args.trace_dir, exist_ok=True)
    if args.coverage is not None:
        if args.dask:
            raise UsageError("--coverage measures this machine's processes: it cannot be "
                             "combined with --dask")
        return _prove_with_coverage(args)
    opts = Options(bound=args.bound, timeout=args.timeout or 60.0, trace_dir=args.trace_dir)
    reporter = ProveReporter(len(obs), quiet=args.json)
    t0 = time.monotonic()
    try:
        results = run_many(obs, opts, args.jobs, reporter.finished, reporter.started,
                           fail_fast=args.fail_fast, dask=args.dask)
    finally:
        reporter.close()
    total = time.monotonic() - t0
    not_run = len(obs) - len(results)
    failed = [r for r in results if r.status == FAILED]
    unknown = [r for r in results if r.status == UNKNOWN]
    found = [r for r in results if status_label(r) == "FOUND"]
    proved = len(results) - len(failed) - len(unknown) - len(found)
    if args.junit:
        from .junit import write_junit
        write_junit(args.junit, results, total)
    if args.json:
        _print_json("prove", {"results": [dict(r.as_dict(), result=status_label(r))
                                          for r in results],
                              "summary": {"total": len(results), "proved": proved,
                                          "found": len(found), "failed": len(failed),
                                          "unknown": len(unknown), "not_run": not_run,
                                          "seconds": round(total, 3)}})
    else:
        if sys.stdout.isatty():
            print_table(results)
        for r in results:
            if r.status != "PROVED":
                print(f"\n{r.status} {r.name}: {r.detail}")
                if r.data.get("counterexample"):
                    print(r.data["counterexample"])
                if r.data.get("trace"):
                    print(f"trace: {r.data['trace']}")
        print(f"\n{len(results)} obligations: {proved} proved, {len(found)} found as expected "
              f"(a fix switched off), {len(failed)} failed, {len(unknown)} unknown "
              f"({total:.1f}s)")
        if not_run:
            print(f"--fail-fast: stopped at the first obligation not proved; {not_run} of "
                  f"{len(obs)} obligations not run")
    if failed:
        return EXIT_FAIL
    if unknown:
        return EXIT_UNKNOWN
    return EXIT_OK


def _record_baseline(args) -> int:
    """prove --record-baseline FILE: nothing else may be asked of the same run."""
    from unmapcheck.proofs.baseline import record
    others = [flag for flag, on in (("--coverage", args.coverage is not None),
                                    ("--list", args.list), ("--json", args.json),
                                    ("--dask", args.dask), ("--junit", args.junit),
                                    ("--trace-dir", args.trace_dir), ("-k", args.k),
                                    ("--bound", args.bound is not None),
                                    ("obligation names", bool(args.names))) if on]
    if others:
        raise UsageError(f"--record-baseline records every bounded sequence and exits: it "
                         f"takes no {others[0]}")
    if not args.record_baseline.endswith(".json.gz"):
        raise UsageError(f"--record-baseline {args.record_baseline!r}: the file name must "
                         f"end in .json.gz")
    _writable_output("--record-baseline", args.record_baseline)
    t0 = time.monotonic()
    n = record(args.record_baseline)
    print(f"recorded the baseline of {n} sequential programs to {args.record_baseline} "
          f"({time.monotonic() - t0:.1f}s)")
    return EXIT_OK


def _prove_with_coverage(args) -> int:
    """prove again in a child process under coverage.py (checker/coverage_report.py says
    why a child), then the coverage of impl/: a table after prove's own output, or the
    "coverage" field of its JSON; the full report to FILE if one was given."""
    from .coverage_report import run_prove_under_coverage, write_report
    argv = [f"--jobs={args.jobs}"]
    if args.bound is not None:
        argv.append(f"--bound={args.bound}")
    if args.timeout is not None:
        argv.append(f"--timeout={args.timeout!r}")
    if args.json:
        argv.append("--json")
    if args.trace_dir:
        argv.append(f"--trace-dir={os.path.abspath(args.trace_dir)}")
    if args.junit:
        argv.append(f"--junit={os.path.abspath(args.junit)}")
    if args.k:
        argv.append(f"-k{args.k}")
    if args.fail_fast:
        argv.append("--fail-fast")
    argv += ["--", *args.names]
    code, out, report = run_prove_under_coverage(argv, args.jobs, capture=args.json)
    if report is None:                  # the child could not run the obligations
        if out:
            sys.stdout.write(out)
        return code
    if args.coverage:
        write_report(args.coverage, report)
    if args.json:
        doc = json.loads(out)
        doc["coverage"] = report.summary(args.coverage or None)
        print(json.dumps(doc, indent=1))
    else:
        print()
        print(report.render())
        if args.coverage:
            print(f"\ncoverage report written to {args.coverage}")
    return code


# --- mutate -------------------------------------------------------------------------------------
def cmd_mutate(args) -> int:
    from .mutate import run_cli
    # (the mutants' children run in sessions of their own: without this a SIGTERM would end
    # mutate and leave them running on their copies)
    with _sigterm_as_ctrl_c():
        return run_cli(args)


# --- fixes and oracle ---------------------------------------------------------------------------
def cmd_fixes(args) -> int:
    from unmapcheck.impl.fixes import FIXES
    for f in FIXES.values():
        era = f" (kernel era {f.era})" if f.era != "6.18" else ""
        print(f"{f.commit}  {f.version:6}  {f.title}{era}\n    off: {f.effect_when_off}")
    return EXIT_OK


def cmd_hunt(args) -> int:
    from .hunt.cli import run as hunt_run
    # (what was found so far is shrunk and written, exit 1; nothing found: exit 3)
    with _sigterm_as_ctrl_c():
        return hunt_run(args)


def cmd_oracle(args) -> int:
    from .oracle.cli import run as oracle_run
    return oracle_run(args)


class _Parser(argparse.ArgumentParser):
    """argparse with the project's error contract: one line on stderr, exit 2."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="unmapcheck", description="A formal model and model checker for the "
                "Linux kernel's unmap paths.", epilog=EXIT_CODES)
    p.add_argument("--version", action="version", version=f"unmapcheck {_version()}")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=_Parser)

    pr = sub.add_parser("prove", epilog=EXIT_CODES, help="run the proof obligations and scenarios")
    pr.add_argument("names", nargs="*", metavar="NAME|FILE|DIR",
                    help="obligations to run: corpus names or prefixes, scenario files, "
                    "folders of scenario files (default: every corpus obligation)")
    pr.add_argument("--bound", type=int, help="override the bound (symbolic: size, scenarios: "
                    "preemptions)")
    pr.add_argument("--timeout", type=float, help="seconds per obligation (default 60)")
    pr.add_argument("--json", action="store_true", help="machine-readable results")
    pr.add_argument("--jobs", type=int, help="obligations run in parallel (default: the "
                    "CPUs this process may use)")
    pr.add_argument("--dask", metavar="ADDRESS", help="run the obligations on a "
                    "dask.distributed cluster (a scheduler address, or 'local' for a "
                    "LocalCluster of this machine)")
    pr.add_argument("--list", action="store_true", help="list the obligations and exit")
    pr.add_argument("-x", "--fail-fast", action="store_true",
                    help="stop at the first obligation that is not proved (FAILED or "
                    "UNKNOWN); the rest are reported as not run")
    pr.add_argument("--trace-dir", help="write a counterexample trace per scenario here")
    pr.add_argument("-k", metavar="PATTERN", help="only obligations whose name contains "
                    "PATTERN (a glob if it has * ? [)")
    pr.add_argument("--junit", metavar="FILE", help="also write the results as JUnit XML")
    pr.add_argument("--coverage", nargs="?", const="", metavar="FILE.json",
                    help="run under coverage.py and report the line coverage of impl/ and "
                    "the kernel-mirroring functions never executed; FILE.json (the name must "
                    "end in .json: anything else is taken as an obligation name) gets the "
                    "full per-file, per-function report")
    pr.add_argument("--record-baseline", metavar="FILE.json.gz",
                    help="record what the model does on every bounded sequence (results, "
                    "TLB flushes, frames left) to FILE.json.gz, the baseline the "
                    "baseline:sequences obligation compares with (by default "
                    "proofs/baseline-sequences.json.gz), and exit")
    pr.set_defaults(func=cmd_prove)

    mu = sub.add_parser("mutate", epilog=MUTATE_EXIT_CODES,
                        help="mutation testing of impl/: does prove kill each mutant?")
    mu.add_argument("targets", nargs="*", metavar="PATH|FUNCTION",
                    help="mutate only these files of impl/ (impl/zap.py, zap.py) or functions "
                    "(zap_pte_range, Class.method); default: all of impl/")
    mu.add_argument("-k", metavar="PATTERN", help="only mutants whose id contains PATTERN "
                    "(a glob if it has * ? [)")
    mu.add_argument("--obligations", metavar="PATTERN",
                    help="run only the obligations matching PATTERN, as prove -k does "
                    "(default: every obligation)")
    mu.add_argument("--jobs", type=int, default=1, help="mutants run in parallel")
    mu.add_argument("--dask", metavar="ADDRESS",
                    help="run the mutants on a dask.distributed cluster (a scheduler address "
                    "such as tcp://host:8786, or 'local' for a LocalCluster of this "
                    "machine); the baseline runs here")
    mu.add_argument("--all-killers", action="store_true",
                    help="run every obligation that reaches a mutant (default: stop at the "
                    "first that kills it)")
    mu.add_argument("--timeout", type=float,
                    help="seconds per mutant (default: each obligation 2 x its time in the "
                    "unmutated run + 10, the mutant their sum + 30)")
    mu.add_argument("--max-mutants", type=int, metavar="N",
                    help="run a seeded sample of N mutants when more are selected")
    mu.add_argument("--seed", type=int, default=0, help="seed of the --max-mutants sample")
    mu.add_argument("--fail-under", type=float, metavar="SCORE",
                    help="exit 1 when the score (0..1) is below SCORE")
    mu.add_argument("--list", action="store_true", help="list the mutants without running them")
    mu.add_argument("--json", action="store_true")
    mu.set_defaults(func=cmd_mutate)

    ls = sub.add_parser("list", epilog=EXIT_CODES, help="list the obligations and scenarios")
    ls.add_argument("names", nargs="*", metavar="NAME|FILE|DIR",
                    help="corpus names or prefixes, scenario files, folders of scenarios")
    ls.add_argument("-k", metavar="PATTERN", help="only names containing PATTERN (a glob if "
                    "it has * ? [)")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(func=cmd_list)

    ex = sub.add_parser("explore", epilog=EXIT_CODES, help="explore the interleavings of one scenario")
    ex.add_argument("scenario", help="scenario TOML file")
    ex.add_argument("--without", action="append", metavar="COMMIT",
                    help="switch this historical fix off (repeatable)")
    ex.add_argument("--preemptions", metavar="K|none",
                    help="preemption bound (default: the scenario's); none: no bound (bounds "
                    "0, 1, 2, then the whole space)")
    ex.add_argument("--jobs", type=int, help="split the search into work units on N "
                    "processes (source-DPOR; default: one process)")
    ex.add_argument("--dask", metavar="ADDRESS", help="run the work units on a "
                    "dask.distributed cluster (a scheduler address, or 'local' for a "
                    "LocalCluster of this machine)")
    ex.add_argument("--checkpoint", metavar="FILE", help="save the exploration here as it "
                    "goes (every 30 s, at each bound, and when it stops early) and resume it "
                    "from here if the file exists; the search runs as work units "
                    "(source-DPOR)")
    ex.add_argument("--dpor", choices=("optimal", "source"), default="optimal",
                    help="the unbounded search: optimal DPOR (wakeup trees, the default) or "
                    "source-DPOR; bounded rounds always use source sets with conservative "
                    "backtracking")
    ex.add_argument("--random", type=int, metavar="N", help="N seeded random executions")
    ex.add_argument("--pct", type=int, metavar="D", help="PCT scheduling with bug depth D")
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--max-executions", type=int, help="stop after this many executions")
    ex.add_argument("--timeout", type=float, help="stop after this many seconds")
    ex.add_argument("--trace-out", metavar="FILE", help="save the counterexample trace (JSON)")
    ex.add_argument("--html", metavar="FILE", help="write an HTML report of the counterexample")
    ex.add_argument("--outcomes", action="store_true",
                    help="list the distinct outcomes (each op's result) and how many "
                    "executions reached each")
    ex.add_argument("--json", action="store_true")
    ex.set_defaults(func=cmd_explore)

    rp = sub.add_parser("replay", epilog=EXIT_CODES, help="re-execute a saved trace on the current implementation")
    rp.add_argument("trace")
    rp.add_argument("--json", action="store_true")
    rp.set_defaults(func=cmd_replay)

    sh = sub.add_parser("show", epilog=EXIT_CODES, help="print a trace, or write it as an HTML report")
    sh.add_argument("trace")
    sh.add_argument("--html", metavar="OUT")
    sh.add_argument("--all", action="store_true", help="show every state change")
    sh.set_defaults(func=cmd_show)

    orc = sub.add_parser("oracle", epilog=EXIT_CODES, help="differential testing against the real kernel")
    orc.add_argument("--examples", type=int, metavar="N",
                     help="generated sequences to run (default 200)")
    orc.add_argument("--seed", type=int, default=0,
                     help="seed of the generated sequences (default 0)")
    orc.add_argument("--max-calls", type=int, metavar="K",
                     help="calls per generated sequence after the setup (default 12)")
    orc.add_argument("--save", metavar="FILE",
                     help="write the minimal mismatching sequence here (.toml or .json)")
    orc.add_argument("--sequence", metavar="FILE",
                     help="replay one saved sequence (TOML or JSON)")
    orc.add_argument("--record", metavar="FILE.json.gz",
                     help="record the campaign's real-kernel reports here for prove's "
                          "oracle:recorded (refused if the model disagrees anywhere)")
    orc.add_argument("--jobs", type=int, metavar="N",
                     help="run the campaign in shards of 100 sequences (each from a seed "
                          "derived from --seed) on N local processes")
    orc.add_argument("--dask", metavar="ADDRESS",
                     help="run the campaign's shards on a dask.distributed cluster (a "
                          "scheduler address, or 'local')")
    orc.add_argument("--json", action="store_true", help="print the result as JSON")
    orc.set_defaults(func=cmd_oracle)

    from .hunt.cli import add_parser as add_hunt
    add_hunt(sub, EXIT_CODES, cmd_hunt)

    fx = sub.add_parser("fixes", epilog=EXIT_CODES, help="list the historical fix toggles")
    fx.set_defaults(func=cmd_fixes)
    return p


EXIT_CODES = """exit codes: 0 as expected (every obligation PROVED); 1 a violation, or an
expected violation or outcome not found; 2 a usage or input error; 3 undecided (UNKNOWN, a
search cut short, interrupted); 4 an internal error (a bug in unmapcheck: please report it)."""


MUTATE_EXIT_CODES = """exit codes: 0 the mutants ran (survivors or not); 1 the score is below
--fail-under; 2 a usage or input error (an unknown path or function, a pattern that matches
nothing, an unmutated impl/ that does not pass the chosen obligations); 3 interrupted; 4 an
internal error."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("unmapcheck")
    except PackageNotFoundError:
        return "unknown"


def main(argv: Optional[list[str]] = None) -> int:
    from .backend import BackendError
    from .checkpoint import CheckpointError
    from .prove import LoadError
    from .scenario import ScenarioError
    from .trace import OutputError, TraceError
    errors = (UsageError, ScenarioError, TraceError, LoadError, OutputError, BackendError,
              CheckpointError)
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        for what in ("scenario", "trace"):
            if isinstance(getattr(args, what, None), str):
                _input_path(what, getattr(args, what))
        return args.func(args)
    except errors as e:
        return _err(str(e))
    except BrokenPipeError:
        return EXIT_OK
    except KeyboardInterrupt:
        # (a search catches Ctrl-C itself and reports what it has; this is Ctrl-C anywhere
        # else: before the search starts, while a trace is built)
        print("unmapcheck: interrupted", file=sys.stderr)
        return EXIT_UNKNOWN
    except OSError as e:
        where = f"{e.filename}: " if getattr(e, "filename", None) else ""
        return _err(f"{where}{e.strerror or e}")
    except RecursionError:
        return _err("input nested too deeply")
    except Exception as e:                      # a bug: one line, and not exit 1
        if os.environ.get("UNMAPCHECK_DEBUG"):
            raise
        print(f"unmapcheck: internal error: {type(e).__name__}: {e} (a bug in unmapcheck; "
              f"UNMAPCHECK_DEBUG=1 shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":
    sys.exit(main())
