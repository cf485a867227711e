"""The scenario corpus behaves as expected, each historic bug in both directions.

With every fix on, each scenario is ``never``; with the fix of its bug switched off
(``[[expect.without]]``), the explorer finds the violation, and its counterexample trace
replays: it still fails on the current implementation with the fix off, and the same schedule
no longer fails (or no longer runs) with the fix on.
"""

from __future__ import annotations

import pytest

from unmapcheck.checker.prove import PROVED, explore_scenario, judge
from unmapcheck.checker.scenario import load
from unmapcheck.checker.trace import counterexample_trace, replay
from unmapcheck.proofs import scenario_paths

# The costliest explorations (about 10 s or more each here) run under the slow marker, to keep the
# default run under 10 minutes; `unmapcheck prove` runs them all.
SLOW = {"1cf35d47712d-5df397dec7c4-lost-write", "d86564a2f085-table-free-batch-failure",
        "fb49c455323f-fork-vs-vma-locked-fault",
        "fb49c455323f-fork-vs-vma-locked-fault--without-fb49c455323f",
        "0ed1325967ab-radix-pwc-batch-failure", "d8ab9f7b644a-merge-vs-vma-locked-fault",
        "never-lazy-tlb-vs-munmap",
        "d86564a2f085-table-free-batch-failure--without-d86564a2f085",
        "d8ab9f7b644a-merge-vs-vma-locked-fault--without-d8ab9f7b644a",
        "0ed1325967ab-radix-pwc-batch-failure--without-0ed1325967ab",
        "never-vma-locked-fault-vs-neighbour", "never-munmap-vs-dontneed-overlap",
        "never-vma-locked-dontneed-vs-neighbour-split", "99baac21e458-parallel-dontneed",
        "9f9f1acd713d-migration-entry-rss", "never-stack-growth-vs-fault",
        "never-migrate-vs-exit-anon-vma-root"}


def _case(path, fixes, name):
    return pytest.param(path, fixes, id=name,
                        marks=[pytest.mark.slow] if name in SLOW else [])


CASES = []
for _path in scenario_paths():
    _sc = load(_path)
    CASES.append(_case(_path, (), _sc.name))
    for _v in _sc.variants:
        CASES.append(_case(_path, tuple(_v.fixes),
                           f"{_sc.name}--without-{'-'.join(_v.fixes)}"))
assert SLOW <= {c.id for c in CASES}, "a slow case names no corpus scenario"


@pytest.mark.parametrize("path,fixes", CASES)
def test_scenario_as_expected(path, fixes):
    sc = load(path).with_fixes_off(list(fixes))
    res = explore_scenario(sc, None, timeout=300)
    verdict = judge(sc, res, sc.name, 0.0)
    assert verdict.status == PROVED, verdict.detail
    if sc.expect_never:
        assert res.stats.complete
        return
    if not sc.expect_sometimes:
        # An outcome condition alone (exists = ...): the verdict above found its witness.
        assert sc.outcome_expect and res.outcome_counts
        return
    # A counterexample: its trace names the expected invariant and replays.
    best = min((res.counterexamples[g] for g in sc.expect_sometimes), key=lambda c: c.rank())
    trace = counterexample_trace(sc, best).to_json()
    assert trace["violation"]["group"] in sc.expect_sometimes
    assert trace["steps"] and len(trace["states"]) == len(trace["steps"]) + 1
    assert replay(trace, "<memory>").reproduced
    fixed = dict(trace, fixes_off=[c for c in trace["fixes_off"] if c not in fixes])
    assert not replay(fixed, "<memory>").reproduced


X86_CASES = [c for c in CASES if load(c.values[0]).arch == "x86"
             and load(c.values[0]).vendor == "intel"]


@pytest.mark.slow
@pytest.mark.parametrize("path,fixes", X86_CASES)
def test_x86_scenario_keeps_its_outcome_on_amd(path, fixes):
    """Every x86 scenario written for Intel's INVLPG keeps its expected outcome with AMD's
    (EFER.TCE: INVLPG drops only the paging-structure entries on the path to the address).
    Behind the slow marker: it re-explores the whole x86 corpus (about 45 s)."""
    from dataclasses import replace
    sc = replace(load(path).with_fixes_off(list(fixes)), vendor="amd")
    res = explore_scenario(sc, None, timeout=300)
    verdict = judge(sc, res, sc.name, 0.0)
    assert verdict.status == PROVED, verdict.detail


def test_prove_covers_every_historic_fix():
    """Every fix toggle is switched off by a corpus scenario's variant, or by a bounded
    obligation of its own (7e7757876f25, in mremap's copy_vma: bounded:copy_vma)."""
    import re
    from unmapcheck.checker.prove import all_obligations
    from unmapcheck.impl.fixes import FIXES
    covered = {c for p in scenario_paths() for v in load(p).variants for c in v.fixes}
    covered |= {m for ob in all_obligations()
                for m in re.findall(r"\(without ([0-9a-f]{12})\)", ob.name)}
    assert covered >= set(FIXES)
