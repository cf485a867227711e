"""Shrink a violating hunt scenario to a small one that violates the same invariant.

Greedy, in a fixed order (so the result is deterministic): each pass tries, one at a time,
dropping a thread, dropping a forked or unrelated process with its threads (and the
context switches to it), dropping an op, dropping a mapping (and a file no mapping or actor
uses any more), halving a mapping from either end, not populating a mapping, not writing
its data, not mlocking it, not making the process an OOM victim, switching the choices off
or allowing one failing branch only, and three CPUs down to two once two threads are left
(each keeps a CPU of its own). A candidate is kept if the loader accepts it and its
exploration (the hunt's budget, campaign.explore_text) still violates the same invariant
group; the passes repeat until none is kept or *runs* explorations are spent. The
preemption bound is made small afterwards (campaign.py: the bound of the fewest-preemption
counterexample).
"""

from __future__ import annotations

import copy
from typing import Iterator

from .scenario import HuntScenario, to_toml


def _candidates(s: HuntScenario) -> Iterator[HuntScenario]:
    def edit(fn) -> HuntScenario:
        c = copy.deepcopy(s)
        fn(c)
        return c

    for i in range(len(s.threads)):
        if len(s.threads) > 1:
            yield edit(lambda c, i=i: c.threads.pop(i))
    for p in s.processes[1:]:
        yield edit(lambda c, n=p.name: _drop_process(c, n))
    for i, t in enumerate(s.threads):
        for k in range(len(t.ops)):
            yield edit(lambda c, i=i, k=k: c.threads[i].ops.pop(k))
    for pi, p in enumerate(s.processes):
        for mi, m in enumerate(p.mappings):
            yield edit(lambda c, pi=pi, mi=mi: _drop_mapping(c, pi, mi))
            if m.pages > 1:
                half = m.pages // 2
                yield edit(lambda c, pi=pi, mi=mi, h=half: _resize(c, pi, mi, h, keep_end=False))
                yield edit(lambda c, pi=pi, mi=mi, h=half: _resize(c, pi, mi, h, keep_end=True))
            if m.populate != "none":
                yield edit(lambda c, pi=pi, mi=mi: setattr(c.processes[pi].mappings[mi],
                                                            "populate", "none"))
            if m.data:
                yield edit(lambda c, pi=pi, mi=mi: setattr(c.processes[pi].mappings[mi],
                                                            "data", {}))
            if m.mlock:
                yield edit(lambda c, pi=pi, mi=mi: setattr(c.processes[pi].mappings[mi],
                                                            "mlock", False))
        if p.oom_victim:
            yield edit(lambda c, pi=pi: setattr(c.processes[pi], "oom_victim", False))
    if s.choices:
        yield edit(lambda c: setattr(c, "choices", []))
        if s.max_choices > 1:
            yield edit(lambda c: setattr(c, "max_choices", 1))
    if s.cpus > 2 and len(s.threads) <= 2:
        yield edit(_two_cpus)


def _drop_process(c: HuntScenario, name: str) -> None:
    """A process other than the first goes with the threads that run in it, the processes
    forked from it and the context switches to it."""
    gone = {name} | {q.name for q in c.processes if q.fork_of == name}
    c.processes = [q for q in c.processes if q.name not in gone]
    c.threads = [t for t in c.threads if t.process not in gone]
    for t in c.threads:
        t.ops = [op for op in t.ops if not (op["op"] == "context_switch" and
                                            op.get("to") in gone)]


def _drop_mapping(c: HuntScenario, pi: int, mi: int) -> None:
    m = c.processes[pi].mappings.pop(mi)
    used = {x.file for p in c.processes for x in p.mappings} | \
        {t.target.get("file") for t in c.threads}
    if m.file is not None and m.file not in used:
        c.files = [f for f in c.files if f.name != m.file]


def _resize(c: HuntScenario, pi: int, mi: int, pages: int, keep_end: bool) -> None:
    m = c.processes[pi].mappings[mi]
    if keep_end:
        m.addr = m.end - pages * 4096
    m.pages = pages
    m.data = {k: v for k, v in m.data.items() if k < pages}


def _two_cpus(c: HuntScenario) -> None:
    """Two CPUs, each thread keeping a CPU of its own (generate.py: one CPU a thread)."""
    c.cpus = 2
    for i, t in enumerate(c.threads):
        t.cpu = i
    for p in c.processes:
        for m in p.mappings:
            m.populate_cpu %= 2


def shrink(s: HuntScenario, group: str, seed: int, runs: int) -> HuntScenario:
    from ..scenario import ScenarioError, parse
    from .campaign import explore_text
    best = s
    spent = 0
    progress = True
    while progress and spent < runs:
        progress = False
        for cand in _candidates(best):
            if spent >= runs:
                break
            text = to_toml(cand)
            try:
                parse(text, "<shrinking>")
            except ScenarioError:
                continue
            spent += 1
            res, _, _, _ = explore_text(text, "shrinking", seed)
            if res is not None and group in res.counterexamples:
                best = cand
                progress = True
                break
    return best
