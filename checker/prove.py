"""Obligations and how ``unmapcheck prove`` judges them.

An obligation is symbolic (a z3 proof, proofs/symbolic.py) or an interleaving scenario
(proofs/scenarios/*.toml, explored by DPOR with iterative context bounding; each
``[[expect.without]]`` entry of a scenario is one more obligation with those fixes off).

Results: PROVED (the property holds within the stated bound: for a scenario, the expected
outcome was established by a complete search, or every expected violation was found),
FAILED (with a counterexample), UNKNOWN (the solver timed out or gave up, or the search was
cut short before it could decide). UNKNOWN is never reported as PROVED.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from .scenario import Scenario, load

PROVED, FAILED, UNKNOWN = "PROVED", "FAILED", "UNKNOWN"


@dataclass
class ObligationResult:
    name: str
    kind: str
    bound: str
    status: str
    seconds: float
    detail: str = ""
    data: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "kind": self.kind, "bound": self.bound,
                "status": self.status, "seconds": round(self.seconds, 3),
                "detail": self.detail, **({"data": self.data} if self.data else {})}


@dataclass
class Obligation:
    name: str
    kind: str
    bound: str
    run: Callable[["Options"], ObligationResult]


@dataclass
class Options:
    bound: Optional[int] = None          # override of the bound (symbolic: size; scenario: K)
    timeout: float = 60.0                # per obligation, seconds
    trace_dir: Optional[str] = None


def judge(scenario: Scenario, result, name: str, seconds: float) -> ObligationResult:
    """Compare an exploration's result with the scenario's expectation: the invariant part
    (never / sometimes) and each outcome condition (exists / not_exists / forall); the
    worst of them is the verdict (FAILED, then UNKNOWN, then PROVED)."""
    verdict = _judge_invariants(scenario, result, name, seconds)
    if not scenario.outcome_expect:
        return verdict
    outcomes = [dict(key) for key in result.outcome_counts]
    parts = [(verdict.status, verdict.detail)] if verdict.detail else []
    checks = []
    for oe in scenario.outcome_expect:
        status, detail = oe.judge(outcomes, result.stats.complete)
        checks.append({"expect": f"{oe.quantifier} {oe.condition}", "status": status,
                       "detail": detail})
        parts.append((status, detail))
    verdict.data["outcomes"] = checks
    rank = {FAILED: 0, UNKNOWN: 1, PROVED: 2}
    parts.sort(key=lambda p: rank[p[0]])               # what decided the verdict first
    verdict.status = parts[0][0]
    verdict.detail = "; ".join(d for _, d in parts)
    return verdict


def _judge_invariants(scenario: Scenario, result, name: str,
                      seconds: float) -> ObligationResult:
    """The never / sometimes part of :func:`judge` (PROVED with no detail when the scenario
    states only outcome conditions)."""
    from .explore import Result
    assert isinstance(result, Result)
    st = result.stats
    found = result.violated()
    bound = (f"preemptions<={st.preemption_bound}" if st.preemption_bound is not None
             else "unbounded") + f", steps<={scenario.max_steps}"
    if st.saturated:
        bound = f"every bound (saturated at preemptions<={st.preemption_bound}), " \
                f"steps<={scenario.max_steps}"
    data = {"stats": st.as_dict(), "violated": sorted(found)}
    if not scenario.expect_never and not scenario.expect_sometimes:
        return ObligationResult(name, "scenario", bound, PROVED, seconds, "", data)
    if scenario.expect_never:
        if found:
            best = result.best()
            return ObligationResult(name, "scenario", bound, FAILED, seconds,
                                    f"expected never, but {best.violation.name}: "
                                    f"{best.violation.message}", data)
        if not st.complete:
            return ObligationResult(name, "scenario", bound, UNKNOWN, seconds,
                                    "search cut short (execution or time budget) before it was "
                                    "complete", data)
        return ObligationResult(name, "scenario", bound, PROVED, seconds,
                                f"no violation in {st.executions} executions", data)
    missing = [g for g in scenario.expect_sometimes if g not in found]
    extra = sorted(found - set(scenario.expect_sometimes))
    if not missing:
        best = min((result.counterexamples[g] for g in scenario.expect_sometimes),
                   key=lambda c: c.rank())
        detail = (f"found {', '.join(scenario.expect_sometimes)} "
                  f"({best.preemptions} preemptions, {best.steps} steps)")
        if extra:
            detail += f"; also violated: {', '.join(extra)}"
        data["expected_violation_found"] = True
        return ObligationResult(name, "scenario", bound, PROVED, seconds, detail, data)
    if not st.complete:
        return ObligationResult(name, "scenario", bound, UNKNOWN, seconds,
                                f"{', '.join(missing)} not found before the search was cut "
                                f"short", data)
    return ObligationResult(name, "scenario", bound, FAILED, seconds,
                            f"expected {', '.join(missing)} in some interleaving; a complete "
                            f"search found none" + (f" (violated: {', '.join(extra)})"
                                                    if extra else ""), data)


def explore_scenario(scenario: Scenario, bound: Optional[int], timeout: Optional[float],
                     max_executions: Optional[int] = None, stop_at_first: Optional[bool] = None):
    from .explore import iterative_context_bounding
    deadline = time.monotonic() + timeout if timeout else None
    stop_when = None
    if stop_at_first is None:
        stop_at_first = not scenario.needs_every_outcome()
        stop_when = decided(scenario)
    max_bound = bound if bound is not None else scenario.preemptions
    return iterative_context_bounding(scenario, max_bound, stop_at_first=stop_at_first,
                                      deadline=deadline, max_executions=max_executions,
                                      stop_when=stop_when)


def decided(scenario: Scenario) -> Optional[Callable]:
    """For an expectation that only asks for things to be found (``sometimes`` groups and
    ``exists`` conditions, no ``never``, ``not_exists`` or ``forall``): a test of a search
    result that says every one of them was found, so that no further round can change the
    verdict (judge). None for any other expectation (it needs the whole bounded space)."""
    if scenario.expect_never or not scenario.expect_sometimes or \
            any(oe.quantifier != "exists" for oe in scenario.outcome_expect):
        return None

    def found_everything(result) -> bool:
        if not set(scenario.expect_sometimes) <= result.violated():
            return False
        outcomes = [dict(key) for key in result.outcome_counts]
        return all(oe.judge(outcomes, False)[0] == PROVED for oe in scenario.outcome_expect)
    return found_everything


def scenario_obligations(paths=None) -> list[Obligation]:
    """One obligation per scenario file and fix set (the scenario as written, and one per
    ``[[expect.without]]`` entry): the corpus (proofs/scenarios) unless *paths* are given."""
    from unmapcheck.proofs import scenario_paths
    from .scenario import ScenarioError
    out = []
    for path in (scenario_paths() if paths is None else paths):
        try:
            sc = load(path)
        except ScenarioError as e:
            raise LoadError(f"cannot load the scenario obligation {e}") from None
        variants = [([], sc)] + [(v.fixes, sc.with_fixes_off(v.fixes)) for v in sc.variants]
        for fixes, s in variants:
            name = f"scenario:{sc.name}" + (f" --without {','.join(fixes)}" if fixes else "")
            bound = (f"preemptions<={s.preemptions}" if s.preemptions is not None
                     else "unbounded")

            def run(opts: Options, s=s, name=name, fixes=fixes) -> ObligationResult:
                t0 = time.monotonic()
                res = explore_scenario(s, opts.bound, opts.timeout)
                out = judge(s, res, name, time.monotonic() - t0)
                if out.status != UNKNOWN and opts.trace_dir and res.best() is not None:
                    from .trace import counterexample_trace
                    import os
                    best = res.best()
                    tr = counterexample_trace(s, best,
                                              command=_explore_command(s, fixes, opts))
                    safe = name.replace(":", "_").replace(" ", "_").replace(",", "_")
                    path = os.path.join(opts.trace_dir, safe + ".json")
                    tr.save(path)
                    out.data["trace"] = path
                return out
            out.append(Obligation(name, "scenario", bound, run))
    return out


class LoadError(Exception):
    """An obligation that cannot be loaded: one line naming it and why. Never skipped:
    ``prove`` stops with exit 2 rather than run fewer obligations than it lists."""


def _explore_command(s: Scenario, fixes: list[str], opts: Options) -> str:
    """The explore command that runs the search this obligation ran (same scenario, fixes
    and preemption bound: the same counterexample)."""
    import shlex
    words = ["unmapcheck", "explore", str(s.path)]
    for c in fixes:
        words += ["--without", c]
    bound = opts.bound if opts.bound is not None else s.preemptions
    if bound is not None:
        words += ["--preemptions", str(bound)]
    return " ".join(shlex.quote(w) for w in words)


def symbolic_obligations() -> list[Obligation]:
    try:
        from unmapcheck.proofs.symbolic import OBLIGATIONS
    except Exception as e:      # z3 missing or broken, a syntax error in proofs/symbolic.py
        raise LoadError(f"cannot load the symbolic obligations (unmapcheck.proofs.symbolic): "
                        f"{type(e).__name__}: {e}") from None
    return list(OBLIGATIONS)


def sequence_obligations() -> list[Obligation]:
    from unmapcheck.proofs.sequences import obligations
    return obligations()


def copy_vma_obligations() -> list[Obligation]:
    from unmapcheck.proofs.copy_vma import obligations
    return obligations()


def baseline_obligations() -> list[Obligation]:
    from unmapcheck.proofs.baseline import obligations
    return obligations()


def recorded_obligations() -> list[Obligation]:
    from unmapcheck.proofs.recorded import obligations
    return obligations()


def all_obligations() -> list[Obligation]:
    return symbolic_obligations() + sequence_obligations() + copy_vma_obligations() + \
        baseline_obligations() + recorded_obligations() + scenario_obligations()


def run_obligation(ob: Obligation, opts: Options) -> ObligationResult:
    t0 = time.monotonic()
    try:
        return ob.run(opts)
    except Exception as e:   # an obligation that crashes is not proved
        return ObligationResult(ob.name, ob.kind, ob.bound, FAILED, time.monotonic() - t0,
                                f"error while checking: {type(e).__name__}: {e}")


# The obligations of a local parallel run: the backend's workers are forked after this is
# set, so they inherit the list (user scenario files included) and are sent only an index.
_POOL_OBLIGATIONS: list[Obligation] = []


def _run_index(i: int, opts: Options) -> tuple[int, dict]:
    return i, run_obligation(_POOL_OBLIGATIONS[i], opts).as_dict()


def _run_sent(i: int, ob: Obligation, opts: Options) -> tuple[int, dict]:
    """On a Dask worker: the obligation itself was sent (pickled by Dask; a scenario
    obligation carries its loaded scenario, so the file need not exist there)."""
    return i, run_obligation(ob, opts).as_dict()


def stops_a_fail_fast_run(r: ObligationResult) -> bool:
    """What ``prove --fail-fast`` stops at: an obligation that is not proved (FAILED, or
    UNKNOWN: undecided is not proved either)."""
    return r.status in (FAILED, UNKNOWN)


def run_many(obs: list[Obligation], opts: Options, jobs: int,
             progress: Optional[Callable[[ObligationResult], Any]] = None,
             started: Optional[Callable[[Obligation], Any]] = None,
             fail_fast: bool = False, dask: Optional[str] = None) -> list[ObligationResult]:
    """Run *obs*; *started* is told when one starts (in-process runs only), *progress* when
    one finishes. With *jobs* > 1 they run on that many local processes, with *dask* (a
    scheduler address, or "local") on that dask.distributed cluster (checker/backend.py;
    BackendError if it cannot be reached). With *fail_fast* the run stops at the first
    obligation that is not proved: the result list then holds only what finished (in
    *obs*' order), the rest was not run (running ones are stopped)."""
    if dask is None and (jobs <= 1 or len(obs) <= 1):
        out = []
        for ob in obs:
            if started:
                started(ob)
            r = run_obligation(ob, opts)
            if progress:
                progress(r)
            out.append(r)
            if fail_fast and stops_a_fail_fast_run(r):
                break
        return out
    from .backend import backend
    global _POOL_OBLIGATIONS
    _POOL_OBLIGATIONS = list(obs)
    results: dict[int, ObligationResult] = {}
    with backend(min(jobs, len(obs)), dask) as pool:
        if pool.client is not None:
            futures = {pool.submit(_run_sent, i, ob, opts) for i, ob in enumerate(obs)}
        else:
            futures = {pool.submit(_run_index, i, opts) for i in range(len(obs))}
        while futures:
            done, futures = pool.wait_any(futures)
            for f in sorted(done, key=lambda f: f.result()[0]):
                i, d = f.result()
                r = ObligationResult(d["name"], d["kind"], d["bound"], d["status"],
                                     d["seconds"], d["detail"], d.get("data", {}))
                results[i] = r
                if progress:
                    progress(r)
                if fail_fast and stops_a_fail_fast_run(r):
                    pool.close(futures)
                    futures = set()
                    break
    return [results[i] for i in range(len(obs)) if i in results]


def found_as_expected(r: ObligationResult) -> bool:
    """A scenario obligation PROVED because the violation it expects (a fix switched off)
    was found: it reads FOUND, not PROVED."""
    return r.status == PROVED and bool(r.data.get("expected_violation_found"))
