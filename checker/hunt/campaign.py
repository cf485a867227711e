"""The hunt's campaign: scenarios drawn, explored, shrunk, de-duplicated and written out.

Scenario i of a campaign with seed S is drawn from ``Random(scenario_seed(S, i))`` and
explored by :func:`explore_one` under a fixed budget: DPOR with iterative context bounding up
to one preemption (EXECUTIONS executions a round, SCENARIO_STEPS model steps over all rounds
and injection plans), then, if that found nothing within it, PCT of depth 2 (PCT_RUNS
executions, seeded by i). Everything is counted in executions and model steps,
never in seconds, so a scenario's result is the same on any machine and whatever runs beside
it. ``--budget SECONDS`` is converted to model steps (STEPS_PER_SECOND, about one second of
one core here): the campaign explores scenarios 0, 1, 2 ... until their steps add up to the
budget, in that order even when they run in parallel (results are taken in index order and
the ones after the budget is spent are dropped), so the same seed and budget give the same
findings, and the same files, with any --jobs or cluster.

A **guided** campaign (the default; ``--unguided`` turns it off) makes half its scenarios by
editing earlier ones whose executions reached a kernel step, an edge or a race no earlier
scenario had (evolve.py, signal.py); scenario i is then made when the result of scenario
i - LAG - 1 is taken, so it too is the same whatever runs it. The other half, and every
scenario of an unguided campaign, are the swarm draws above.

A **finding** is a violated invariant group. Its **signature** is the group and the two
kernel functions of the race the trace highlights (checker/trace.py find_race: the latest
pair of conflicting steps of different threads before the violation); one finding is kept
per signature, the first in scenario order. Each is shrunk (shrink.py) and written to the
output folder as NN-GROUP.toml (the shrunk scenario: ``unmapcheck explore`` reproduces it),
NN-GROUP.json (its counterexample trace) and NN-GROUP.html (the report).

A scenario the model cannot run (an op it leaves out, a setup the model refuses) is counted
as outside the model, never as a finding.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .generate import Options
from .scenario import HuntScenario, to_toml

EXECUTIONS = 150          # DPOR executions per round (bounds 0 and 1)
PCT_RUNS = 40             # PCT executions when DPOR found nothing
PCT_DEPTH = 2
SCENARIO_STEPS = 150_000  # model steps one scenario's DPOR may spend (all bounds and plans)
STEPS_PER_SECOND = 40_000  # the explorer's rate on one core here (bench/bench_explore.py)
SHRINK_RUNS = 80          # explorations one finding's shrinking may spend


def scenario_seed(seed: int, i: int) -> int:
    return int.from_bytes(hashlib.sha256(f"unmapcheck-hunt:{seed}:{i}".encode())
                          .digest()[:8], "big")


@dataclass
class Explored:
    """What exploring one scenario gave (picklable: it comes back from a worker)."""
    index: int
    steps: int = 0
    executions: int = 0
    violations: dict = field(default_factory=dict)    # group -> invariant name, message
    outside: str = ""                                 # why the model cannot run it
    features: frozenset = frozenset()                 # its signal (signal.py), guided only


def explore_text(text: str, name: str, pct_seed: int,
                 features: Optional[set] = None) -> tuple:
    """Explore one scenario's TOML under the hunt's budget: (Result or None, steps,
    executions, why it is outside the model). With *features*, the signal of its DPOR
    executions is added to it (signal.py)."""
    from ..explore import RandomSearch, _merge, iterative_context_bounding
    from ..scenario import ScenarioError, parse
    from .signal import add_features
    sc = parse(text, f"<{name}>")
    spent = [0]

    def within_budget(search, ex) -> None:
        # Every search of the scenario (each bound, each injection plan) shares one budget
        # of model steps: a scenario of long executions or many plans stops early.
        spent[0] += len(ex.events)
        if features is not None:
            add_features(ex.events, features)
        if spent[0] >= SCENARIO_STEPS:
            search.stop = True
    try:
        res = iterative_context_bounding(sc, 1, stop_at_first=True, max_executions=EXECUTIONS,
                                         on_execution=within_budget)
        if not res.counterexamples and spent[0] < SCENARIO_STEPS:
            more = RandomSearch(sc, PCT_RUNS, pct_seed, pct_depth=PCT_DEPTH).run()
            res = _merge(res, more)
    except ScenarioError as e:
        # "<name>: thread[0].program[1]: madvise(...): why": the why, to count reasons by
        return None, 0, 0, str(e).split("): ", 1)[-1]
    return res, res.stats.steps, res.stats.executions, ""


def explore_one(index: int, text: str, name: str, pct_seed: int,
                signal: bool) -> Explored:
    """Explore scenario *index* of the campaign (a task of the backend)."""
    features: Optional[set] = set() if signal else None
    res, steps, execs, outside = explore_text(text, name, pct_seed, features)
    out = Explored(index, steps, execs, outside=outside,
                   features=frozenset(features or ()))
    if res is not None:
        out.violations = {g: (c.violation.name, c.violation.message)
                          for g, c in sorted(res.counterexamples.items())}
    return out


@dataclass
class Finding:
    group: str
    invariant: str
    message: str
    functions: tuple                  # the two racing kernel functions ("" if none)
    index: int                        # the scenario it was first found in
    original: dict = field(default_factory=dict)    # size before shrinking
    shrunk: dict = field(default_factory=dict)      # size after
    preemptions: int = 0
    steps: int = 0
    files: dict = field(default_factory=dict)       # toml, trace, html -> path
    spec: Optional[HuntScenario] = None             # the scenario as drawn or edited

    @property
    def signature(self) -> tuple:
        return (self.group, self.functions)

    def as_dict(self) -> dict:
        return {"group": self.group, "invariant": self.invariant, "message": self.message,
                "functions": list(self.functions), "scenario_index": self.index,
                "original_size": self.original, "shrunk_size": self.shrunk,
                "preemptions": self.preemptions, "steps": self.steps, "files": self.files}


@dataclass
class Summary:
    seed: int
    budget_steps: int
    scenarios: int = 0
    outside: int = 0
    outside_why: dict = field(default_factory=dict)       # reason -> scenarios
    executions: int = 0
    steps: int = 0
    findings: list = field(default_factory=list)
    violating_scenarios: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    guided: bool = True
    mutated: int = 0                # scenarios that were edits of earlier ones (evolve.py)
    seeds: int = 0                  # scenarios given with --from (the first ones)
    corpus: int = 0                 # scenarios kept for reaching something new
    features: int = 0               # distinct features reached (signal.py)
    # When the first violating scenario was taken: model steps spent (machine-independent)
    # and seconds.
    first_steps: Optional[int] = None
    first_seconds: Optional[float] = None

    def as_dict(self) -> dict:
        return {"seed": self.seed, "budget_steps": self.budget_steps,
                "scenarios": self.scenarios, "outside_the_model": self.outside,
                "outside_the_model_why": dict(self.outside_why),
                "executions": self.executions, "steps": self.steps,
                "violating_scenarios": self.violating_scenarios,
                "findings": [f.as_dict() for f in self.findings],
                "seconds": round(self.seconds, 3), "interrupted": self.interrupted,
                "guided": self.guided, "seeds": self.seeds, "edited_scenarios": self.mutated,
                "corpus": self.corpus, "features": self.features,
                "first_violation": None if self.first_steps is None else
                {"steps": self.first_steps, "seconds": round(self.first_seconds, 3)}}


def hunt(seed: int, budget_steps: int, options: Options, pool, out_dir: Optional[str],
         progress: Optional[Callable[[Summary], None]] = None,
         max_scenarios: Optional[int] = None, stop_at_first: bool = False,
         guided: bool = True, seeds: tuple = ()) -> Summary:
    """The campaign (module docstring) on *pool* (checker.backend.Backend); with
    *stop_at_first* it ends with the first violating scenario (in index order); *guided*:
    half the scenarios are edits of earlier ones that reached something new (evolve.py),
    else every scenario is a swarm draw. *seeds* (HuntScenario records, the campaign's
    options applied) are scenarios 0, 1, ...: explored first, and in a guided campaign
    kept and edited like any scenario that reached something new (an input corpus, as
    syzkaller and AFL take one)."""
    from .evolve import LAG, Evolution
    t0 = time.monotonic()
    summary = Summary(seed, budget_steps, guided=guided, seeds=len(seeds))
    evolution = Evolution(seed, options, guided, seeds=list(seeds))
    window = 2 * pool.workers
    running: dict = {}                       # future -> index
    done: dict[int, Explored] = {}
    drawn: dict[int, tuple] = {}             # index -> (spec, text), made but not taken
    nxt = 0                                  # the next index to submit
    taken = 0                                # results taken in order so far
    hits: list[tuple[Explored, HuntScenario, str]] = []

    def make(i: int) -> None:
        # scenario i is made from what the results before i - LAG taught (evolve.py)
        if max_scenarios is None or i < max_scenarios:
            drawn[i] = evolution.draw(i, scenario_seed(seed, i))

    for i in range(LAG + 1):
        make(i)
    try:
        while True:
            while len(running) < window and nxt in drawn:
                spec, text, _ = drawn[nxt]
                running[pool.submit(explore_one, nxt, text, spec.name,
                                    scenario_seed(seed, nxt), guided)] = nxt
                nxt += 1
            if not running:
                break
            ready, _ = pool.wait_any(set(running))
            for f in ready:
                done[running.pop(f)] = f.result()
            stop = False
            while taken in done:
                ex = done.pop(taken)
                spec, text, parent = drawn.pop(taken)
                evolution.take(taken, spec, ex.features, ex.steps)
                summary.mutated += parent is not None
                taken += 1
                make(taken + LAG)
                summary.scenarios += 1
                summary.steps += ex.steps
                summary.executions += ex.executions
                if ex.outside:
                    summary.outside += 1
                    summary.outside_why[ex.outside] = summary.outside_why.get(ex.outside, 0) + 1
                if ex.violations:
                    summary.violating_scenarios += 1
                    hits.append((ex, spec, text))
                    if summary.first_steps is None:
                        summary.first_steps = summary.steps
                        summary.first_seconds = time.monotonic() - t0
                    if stop_at_first:
                        stop = True
                        break
                if progress is not None:
                    progress(summary)
                if summary.steps >= budget_steps or (max_scenarios is not None and
                                             taken >= max_scenarios):
                    stop = True
                    break
            if stop:
                break
    except KeyboardInterrupt:
        summary.interrupted = True
    finally:
        pool.close(set(running))
    summary.corpus = len(evolution.corpus)
    summary.features = len(evolution.hits)
    seen: set = set()
    for ex, spec, text in hits:
        for group, (name, message) in ex.violations.items():
            finding = _finding(ex, spec, text, group, name, message, seed)
            if finding is None or finding.signature in seen:
                continue
            seen.add(finding.signature)
            summary.findings.append(finding)
    for n, f in enumerate(summary.findings, 1):
        _shrink_and_write(f, n, out_dir, seed)
    summary.seconds = time.monotonic() - t0
    return summary


def _finding(ex: Explored, spec: HuntScenario, text: str, group: str, name: str,
             message: str, seed: int) -> Optional["Finding"]:
    """The finding of *group* in scenario *ex*, with the racing functions of its trace."""
    from ..scenario import parse
    sc = parse(text, f"<hunt-{seed}-{ex.index}>")
    res, _, _, _ = explore_text(text, sc.name, scenario_seed(seed, ex.index))
    if res is None or group not in res.counterexamples:
        return None
    tr = _trace(sc, res.counterexamples[group])
    return Finding(group, name, message, _race_functions(tr), ex.index, spec=spec)


def _trace(sc, cex):
    from ..minimise import minimise
    from ..trace import counterexample_trace
    return counterexample_trace(sc, minimise(sc, cex, max_executions=500))


def _race_functions(tr) -> tuple:
    if not tr.race:
        return ("",)
    return tuple(sorted({tr.steps[i].function for i in tr.race}))


def _shrink_and_write(f: Finding, n: int, out_dir: Optional[str], seed: int) -> None:
    from ..scenario import parse
    from .shrink import shrink
    spec = f.spec
    f.original = spec.size()
    small = shrink(spec, f.group, seed, SHRINK_RUNS)
    small.name = f"hunt-{seed}-{f.index}-{f.group.lower()}"
    small.description = (f"Found by unmapcheck hunt (seed {seed}, scenario {f.index}) and "
                         f"shrunk: {f.invariant}: {f.message}")
    f.shrunk = small.size()
    sc = parse(to_toml(small), "<shrunk>")
    from ..explore import iterative_context_bounding
    res = iterative_context_bounding(sc, 3, stop_at_first=True, max_executions=5000)
    cex = res.counterexamples.get(f.group)
    if cex is None:            # never expected: shrink keeps only what still violates
        return
    small.preemptions = max(cex.preemptions, 0)
    text = to_toml(small)
    sc = parse(text, "<shrunk>")
    tr = _trace(sc, cex)
    f.preemptions, f.steps = tr.preemptions, len(tr.schedule)
    if out_dir is None:
        return
    from ..report import write_html
    from ..trace import write_atomic
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, f"{n:02d}-{f.group}")
    toml_path = base + ".toml"
    tr.scenario_path = toml_path
    tr.command = f"unmapcheck explore {toml_path}"
    write_atomic(toml_path, text)
    tr.save(base + ".json")
    write_html(tr.to_json(), base + ".html")
    f.files = {"toml": toml_path, "trace": base + ".json", "html": base + ".html"}
