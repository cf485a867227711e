"""What an explored scenario reached: the hunt's coverage signal (syzkaller's term).

A guided hunt (campaign.py, evolve.py) keeps a scenario whose executions reached something
no earlier scenario of the campaign reached, and edits it. What counts as reached is read
from the explorer's executions (checker/runtime.py Event), never from Python's coverage, so
it is the same on every machine and costs no tracing:

- ``("step", L)``: a step of label L ran (a kernel function or the point inside it the model
  stops at: "vma_iter_store_new", "anon_vma_clone: anon_vma_chain_alloc(GFP_NOWAIT)");
- ``("edge", K, L)``: a thread ran step L right after its own step K (AFL's edge coverage:
  the same steps in another order, or one reached after a failed allocation or a retry,
  are a branch of the kernel code the label set alone does not tell apart);
- ``("race", K, L)``: step L of one thread touched what step K of another thread wrote (or
  wrote what it read) shortly before it (at most RACE_WINDOW steps earlier): the pair of
  kernel functions racing, the concurrency signal of Krace's alias coverage (Xu, Kashyap,
  Min and Kim, S&P 2020), here from the model's own read and write sets.

A feature is a tuple of strings, not a hash: Python's str hash differs between processes,
and the campaign's choices must not depend on it (evolve.py weighs with integer sums).
"""

from __future__ import annotations

RACE_WINDOW = 12


def add_features(events, into: set) -> None:
    """Add the features of one execution's *events* to the set *into*."""
    last: dict = {}                       # tid -> label of its previous step
    for i, e in enumerate(events):
        label = e.label
        into.add(("step", label))
        prev = last.get(e.tid)
        if prev is not None:
            into.add(("edge", prev, label))
        last[e.tid] = label
        if not (e.reads or e.writes):
            continue
        for j in range(i - 1, max(-1, i - 1 - RACE_WINDOW), -1):
            o = events[j]
            if o.tid == e.tid:
                continue
            if (o.writes & (e.reads | e.writes)) or (e.writes & o.reads):
                into.add(("race", o.label, label))
                break
