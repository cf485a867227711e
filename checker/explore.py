"""Exploration strategies: source-DPOR with sleep sets, brute force, random and PCT.

**Source-DPOR** (Abdulla, Aronis, Jonsson, Sagonas, POPL 2014, Algorithm 1) with sleep sets,
stateless: every execution re-runs the scenario from the start along the recorded schedule
prefix. After each step the happens-before relation is extended with vector clocks (two steps
are dependent when one writes an object the other reads or writes, and steps of one thread are
ordered); for each *race* (a dependent pair from different threads not ordered through a third
step) the weak initials of the reversed sequence are computed and, unless one of them is
already in the backtrack set of the state before the first step of the race, one is added.
A thread whose pending step is independent of everything since it was explored at a state is
kept asleep, which prunes executions equivalent to ones already explored.

**Blocking steps.** A lock acquire or a flush IPI may wait (the runtime knows it as a
disabled step). A race between the step that releases a lock (or ends an instruction) and a
waiting step cannot be reversed by moving the waiter just before the release; it is reversed
by trying the waiter before the step of the same thread that took the lock (or began the
instruction). When the thread to try is itself blocked at the chosen state, it is tried at
the latest earlier state where it was enabled and another thread's step conflicted with its
pending step; only failing that are all enabled threads tried (Flanagan and Godefroid).

**Preemption bound.** A preemption is a switch away from a thread that could have continued.
With a bound, a choice that would exceed it is not explored; to keep the reduction complete for
the bounded space, each backtrack point is also added at the start of the thread block
containing it, where the switch costs no more preemptions than the original schedule did
(the conservative branch of Coons, Musuvathi and McKinley, "Bounded partial-order reduction",
OOPSLA 2013), and sleep sets are not used (they are unsound with a bound: a thread asleep at
a state may have been explored there with less preemption budget). The soundness test
(tests/checker/test_dpor_soundness.py) compares both modes with brute force.
:func:`iterative_context_bounding` runs the search with bounds 0, 1, 2 ... so the first
counterexample found has the fewest preemptions.

**Brute force** enumerates every interleaving (within the bound): the reference the soundness
test compares DPOR against. **Random** picks an enabled thread uniformly at random at every
step; **PCT** (Burckhardt et al., ASPLOS 2010) gives threads random priorities and lowers the
running thread's priority at d-1 random steps. Both are seeded.

Invariant violations and deadlocks are recorded with the schedule that reached them; for each
violated invariant group the best schedule is kept: fewest preemptions, then fewest steps.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from .runtime import Execution, Violation, dependent
from .scenario import Scenario


@dataclass
class Counterexample:
    violation: Violation
    schedule: list[int]          # thread ids, one per step, up to the violating step
    preemptions: int
    # The branches (thread, k) that took the failing side (Scenario.inject): part of what
    # reproduces the execution, with the schedule.
    inject: frozenset = frozenset()

    def scenario(self, sc: Scenario) -> Scenario:
        """*sc* as this counterexample ran it (its injection plan)."""
        return sc.with_inject(self.inject) if self.inject != sc.inject else sc

    @property
    def steps(self) -> int:
        return len(self.schedule)

    def rank(self) -> tuple:
        return (self.preemptions, self.steps)


@dataclass
class Stats:
    mode: str = "dpor"
    executions: int = 0
    steps: int = 0
    sleep_pruned: int = 0
    bound_pruned: int = 0
    truncated: int = 0
    elapsed: float = 0.0
    preemption_bound: Optional[int] = None
    max_preemptions_seen: int = 0
    complete: bool = False
    time_to_first_violation: Optional[float] = None
    interrupted: bool = False
    # Iterative context bounding stopped early: a round pruned nothing by its bound, so it
    # covered every bound (the unbounded space).
    saturated: bool = False
    # Injection plans explored (explore_choices): 1 for a scenario without choices.
    plans: int = 1

    @property
    def executions_per_second(self) -> float:
        return self.executions / self.elapsed if self.elapsed else 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.elapsed if self.elapsed else 0.0

    def as_dict(self) -> dict:
        return {"mode": self.mode, "executions": self.executions, "steps": self.steps,
                "executions_per_second": round(self.executions_per_second, 1),
                "steps_per_second": round(self.steps_per_second, 1),
                "pruned_by_sleep_sets": self.sleep_pruned,
                "pruned_by_preemption_bound": self.bound_pruned,
                "truncated_by_step_bound": self.truncated,
                "preemption_bound": self.preemption_bound,
                "max_preemptions_explored": self.max_preemptions_seen,
                "complete": self.complete, "elapsed_s": round(self.elapsed, 3),
                "time_to_first_violation_s": (None if self.time_to_first_violation is None
                                              else round(self.time_to_first_violation, 3)),
                "interrupted": self.interrupted, "saturated": self.saturated,
                "injection_plans": self.plans}


@dataclass
class Result:
    stats: Stats
    counterexamples: dict[str, Counterexample] = field(default_factory=dict)
    outcomes: set = field(default_factory=set)
    # The distinct results (every thread's syscall return values, loaded bytes and signals,
    # by thread name) of the complete executions, with how many executions reached each and
    # the schedule of the first that did: what ``explore --outcomes`` lists and litmus
    # conditions are judged on. Keys are tuples of (thread, results) pairs.
    outcome_counts: dict = field(default_factory=dict)
    outcome_schedules: dict = field(default_factory=dict)
    # Mazurkiewicz traces seen (when collected): each is the set of its events with their
    # vector clocks, which identifies the partial order of a deterministic program.
    traces: set = field(default_factory=set)
    # Branches of sched.may_fail met by some execution: (thread, k).
    choice_points: set = field(default_factory=set)
    # The injection plans explored (explore_choices), in order.
    plans: list = field(default_factory=list)

    def violated(self) -> set[str]:
        return set(self.counterexamples)

    def best(self) -> Optional[Counterexample]:
        if not self.counterexamples:
            return None
        return min(self.counterexamples.values(), key=lambda c: c.rank())


class _Node:
    __slots__ = ("enabled", "pendings", "sleep", "backtrack", "done", "chosen", "prev",
                 "preemptions")

    def __init__(self, enabled, pendings, sleep, prev, preemptions):
        self.enabled = enabled
        self.pendings = pendings
        self.sleep = sleep
        self.backtrack: set[int] = set()
        self.done: set[int] = set()
        self.chosen = -1
        self.prev = prev
        self.preemptions = preemptions

    def cost(self, tid: int) -> int:
        """1 if running *tid* here preempts the thread that ran last."""
        return int(self.prev is not None and tid != self.prev and self.prev in self.enabled)


class _Search:
    """Shared machinery: run one execution along a schedule, record outcomes/violations."""

    def __init__(self, scenario: Scenario, bound: Optional[int], mode: str,
                 deadline: Optional[float], max_executions: Optional[int]):
        self.scenario = scenario
        self.bound = bound
        self.stats = Stats(mode=mode, preemption_bound=bound)
        self.result = Result(self.stats)
        self.deadline = deadline
        self.max_executions = max_executions or scenario.max_executions
        self.t0 = time.monotonic()
        self.stop = False

    def _record(self, ex: Execution, schedule: list[int], preemptions: list[int],
                complete: bool = True) -> None:
        """Count an execution; only one that ran to its end (or deadlocked) has an outcome
        (a sleep-set-blocked or bound-pruned one stops early, its outcome is elsewhere)."""
        self.stats.executions += 1
        self.stats.steps += len(ex.events)
        self.result.choice_points.update((t, k) for t, k, _, _ in ex.choice_points)
        if complete:
            self.result.outcomes.add(ex.outcome())
            key = tuple((name, tuple(vals)) for name, vals in ex.results().items())
            counts = self.result.outcome_counts
            counts[key] = counts.get(key, 0) + 1
            self.result.outcome_schedules.setdefault(key, list(schedule))
        for v in ex.violations:
            upto = v.step + 1
            pre = preemptions[upto - 1] if upto > 0 and preemptions else 0
            cex = Counterexample(v, schedule[:upto], pre, self.scenario.inject)
            old = self.result.counterexamples.get(v.group)
            if old is None or cex.rank() < old.rank():
                self.result.counterexamples[v.group] = cex
            if self.stats.time_to_first_violation is None:
                self.stats.time_to_first_violation = time.monotonic() - self.t0
        if self.stats.executions >= self.max_executions:
            self.stop = True
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.stop = True

    def _past_deadline(self, depth: int) -> bool:
        """The time budget is honoured inside an execution too (checked every 64 steps): a
        long execution stops where it is, and the search with it, incomplete."""
        if self.deadline is not None and depth % 64 == 0 and time.monotonic() > self.deadline:
            self.stop = True
            return True
        return False

    def finish(self, complete: bool) -> Result:
        self.stats.elapsed = time.monotonic() - self.t0
        self.stats.complete = complete and not self.stop
        return self.result


class DporSearch(_Search):
    """Source-DPOR with sleep sets (``sleep_sets=False`` gives plain source-DPOR;
    ``brute_force=True`` explores every enabled choice at every state)."""

    def __init__(self, scenario: Scenario, bound: Optional[int] = None,
                 sleep_sets: Optional[bool] = None,
                 brute_force: bool = False, deadline: Optional[float] = None,
                 max_executions: Optional[int] = None,
                 on_execution: Optional[Callable] = None, collect_traces: bool = False):
        super().__init__(scenario, bound, "bruteforce" if brute_force else "dpor", deadline,
                         max_executions)
        self.collect_traces = collect_traces
        if sleep_sets is None:
            # Sleep sets and a preemption bound do not mix: a thread asleep at a state was
            # explored there with a different preemption budget than it would have here, so
            # the bounded search could lose executions (Coons et al. 2013, section 4; the
            # soundness test shows it). Bounded searches run without them.
            sleep_sets = bound is None
        self.sleep_sets = sleep_sets and not brute_force
        self.brute_force = brute_force
        self.stack: list[_Node] = []
        self.on_execution = on_execution

    def _allowed(self, node: _Node, tid: int) -> bool:
        return self.bound is None or node.preemptions + node.cost(tid) <= self.bound

    def run(self) -> Result:
        try:
            while True:
                self._execute()
                if self.stop or not self._backtrack():
                    break
        except KeyboardInterrupt:
            self.stats.interrupted = True
            self.stop = True
        return self.finish(complete=not self.stop)

    def _backtrack(self) -> bool:
        while self.stack:
            node = self.stack[-1]
            cands = sorted(node.backtrack - node.done - (node.sleep if self.sleep_sets else set()))
            for c in cands:
                if not self._allowed(node, c):
                    node.done.add(c)
                    self.stats.bound_pruned += 1
                    continue
                node.done.add(c)
                node.chosen = c
                return True
            self.stack.pop()
        return False

    def _execute(self) -> None:
        sc = self.scenario
        ex = Execution(sc)
        n_threads = len(ex.threads)
        replay = len(self.stack)
        # Happens-before bookkeeping for this execution.
        vcs: list[list[int]] = []
        tids: list[int] = []
        seqs: list[int] = []
        last_of_thread: dict[int, int] = {}
        count: dict[int, int] = {}
        last_write: dict = {}
        reads_since: dict = {}
        adds_since: dict = {}
        schedule: list[int] = []
        preemptions: list[int] = []
        child_sleep: set[int] = set()
        try:
            depth = 0
            while not ex.finished() and not ex.deadlocked:
                if depth >= sc.max_steps:
                    self.stats.truncated += 1
                    break
                if self._past_deadline(depth):
                    break
                enabled = ex.enabled()
                if not enabled:
                    break
                if depth < replay:
                    node = self.stack[depth]
                    tid = node.chosen
                    if tid not in enabled:
                        raise RuntimeError(f"replay diverged at step {depth}: thread {tid} not "
                                           f"enabled (the model is not deterministic)")
                else:
                    prev = self.stack[depth - 1].chosen if depth else None
                    pre = (self.stack[depth - 1].preemptions +
                           self.stack[depth - 1].cost(prev)) if depth else 0
                    pendings = {t.tid: t.pending
                                for t in ex.threads if not t.done and t.pending is not None}
                    node = _Node(enabled, pendings, child_sleep if self.sleep_sets else set(),
                                 prev, pre)
                    cands = [t for t in enabled if t not in node.sleep]
                    allowed = [t for t in cands if self._allowed(node, t)]
                    if not cands:
                        self.stats.sleep_pruned += 1
                        self.stack.append(node)
                        node.done = set(enabled)
                        break
                    if not allowed:
                        self.stats.bound_pruned += 1
                        self.stack.append(node)
                        node.done = set(enabled)
                        break
                    tid = prev if prev in allowed else allowed[0]
                    node.backtrack = set(enabled) if self.brute_force else {tid}
                    node.done = {tid}
                    node.chosen = tid
                    self.stack.append(node)
                preemptions.append(node.preemptions + node.cost(tid))
                schedule.append(tid)
                ev = ex.step(tid)
                # --- happens-before and races -------------------------------------------
                n = len(tids)
                seq = count.get(tid, 0) + 1
                count[tid] = seq
                deps = set()
                for o in ev.reads:
                    w = last_write.get(o)
                    if w is not None:
                        deps.add(w)
                    deps.update(adds_since.get(o, ()))
                for o in ev.adds:
                    w = last_write.get(o)
                    if w is not None:
                        deps.add(w)
                    deps.update(reads_since.get(o, ()))
                for o in ev.writes:
                    w = last_write.get(o)
                    if w is not None:
                        deps.add(w)
                    deps.update(reads_since.get(o, ()))
                    deps.update(adds_since.get(o, ()))
                base = list(vcs[last_of_thread[tid]]) if tid in last_of_thread else [0] * n_threads
                vc = list(base)
                vc[tid] = seq
                for j in deps:
                    vj = vcs[j]
                    for k in range(n_threads):
                        if vj[k] > vc[k]:
                            vc[k] = vj[k]
                vcs.append(vc)
                tids.append(tid)
                seqs.append(seq)
                last_of_thread[tid] = n
                for o in ev.reads:
                    if o not in ev.writes:
                        reads_since.setdefault(o, []).append(n)
                for o in ev.adds:
                    if o not in ev.writes:
                        adds_since.setdefault(o, []).append(n)
                for o in ev.writes:
                    last_write[o] = n
                    reads_since[o] = []
                    adds_since[o] = []
                if not self.brute_force:
                    for i in deps:
                        if tids[i] == tid:
                            continue
                        if self._covered(i, n, deps, base, vcs, tids, seqs, n_threads):
                            continue
                        self._reverse(i, n, vcs, tids, seqs, ex.events)
                # --- sleep set of the next state ----------------------------------------
                if self.sleep_sets:
                    asleep = (node.sleep | node.done) - {tid}
                    child_sleep = {q for q in asleep if q in node.pendings and
                                   not dependent(node.pendings[q], ev)}
                depth += 1
            self.stats.max_preemptions_seen = max(self.stats.max_preemptions_seen,
                                                  preemptions[-1] if preemptions else 0)
        finally:
            ex.close()
        if self.collect_traces and ex.finished():
            self.result.traces.add(frozenset(
                (tids[k], seqs[k], tuple(vcs[k])) for k in range(len(tids))))
        self._record(ex, schedule, preemptions, complete=ex.finished() or ex.deadlocked)
        if self.on_execution is not None:
            self.on_execution(self, ex)

    @staticmethod
    def _covered(i, n, deps, base, vcs, tids, seqs, n_threads) -> bool:
        """Is event i happens-before event n through some path other than the direct edge?"""
        ti, si = tids[i], seqs[i]
        if base[ti] >= si:
            return True
        for j in deps:
            if j != i and vcs[j][ti] >= si:
                return True
        return False

    def _reverse(self, i: int, n: int, vcs, tids, seqs, events) -> None:
        """Race (i, n): make sure some weak initial of notdep(i).n is tried before step i."""
        ti, si = tids[i], seqs[i]
        v = [k for k in range(i + 1, n) if vcs[k][ti] < si] + [n]
        initials: list[int] = []
        seen_threads: set[int] = set()
        for idx, k in enumerate(v):
            tk = tids[k]
            if tk in seen_threads:
                continue
            seen_threads.add(tk)
            if all(vcs[k][tids[j]] < seqs[j] for j in v[:idx]):
                initials.append(tk)
        node = self.stack[i]
        if node.backtrack.intersection(initials):
            return
        p = tids[n] if tids[n] in initials else initials[0]
        self._add_backtrack(i, p, events)
        if events[n].blocking:
            # e_n waits for something e_i's thread holds (a lock it took, a CPU it keeps busy
            # in the middle of an instruction): e_n cannot be moved just before e_i, which
            # releases it; it can be moved before the step of that thread that took it.
            ti_ = tids[i]
            for j in range(i - 1, -1, -1):
                if tids[j] == ti_ and dependent(events[j], events[n]):
                    self._add_backtrack(j, p, events)
                    break
        if self.bound is not None:
            # Conservative branch: also at the start of the block that contains step i.
            j = i
            while j > 0 and self.stack[j - 1].chosen == self.stack[i].chosen and \
                    self.stack[j].prev == self.stack[i].chosen:
                j -= 1
            if j != i:
                self._add_backtrack(j, p, events)

    def _add_backtrack(self, i: int, p: int, events) -> None:
        """Try thread *p* at state *i*. If p is blocked there (its pending step waits for a
        lock another thread holds), the race to reverse is with the step that took the lock:
        p is tried at the latest earlier state where it was enabled and the next step of
        another thread conflicted with p's pending acquire. (Reversing the release with the
        acquire is impossible: the acquire is not enabled before the release.) Only if there
        is no such state are all threads enabled at i tried."""
        node = self.stack[i]
        if p in node.enabled:
            node.backtrack.add(p)
            return
        want = node.pendings.get(p)
        if want is not None:
            for j in range(i - 1, -1, -1):
                e = events[j]
                if e.tid != p and dependent(want, e) and p in self.stack[j].enabled:
                    self.stack[j].backtrack.add(p)
                    return
        node.backtrack.update(node.enabled)


class RandomSearch(_Search):
    """Seeded random scheduling (``pct_depth=None``) or PCT with bug depth d."""

    def __init__(self, scenario: Scenario, executions: int, seed: int,
                 pct_depth: Optional[int] = None, deadline: Optional[float] = None):
        super().__init__(scenario, None, "pct" if pct_depth else "random", deadline, executions)
        self.rng = random.Random(seed)
        self.executions = executions
        self.pct_depth = pct_depth
        self.est_steps = 200

    def run(self) -> Result:
        try:
            for _ in range(self.executions):
                self._execute()
                if self.stop:
                    break
        except KeyboardInterrupt:
            self.stats.interrupted = True
            self.stop = True
        return self.finish(complete=False)

    def _execute(self) -> None:
        sc = self.scenario
        ex = Execution(sc)
        n = len(ex.threads)
        prio = list(range(n))
        self.rng.shuffle(prio)
        prio = [p + self.pct_depth for p in prio] if self.pct_depth else prio
        change = set(self.rng.sample(range(1, self.est_steps), min(self.est_steps - 1,
                                                                   (self.pct_depth or 1) - 1)))
        schedule: list[int] = []
        preemptions: list[int] = []
        pre = 0
        prev = None
        try:
            depth = 0
            while not ex.finished() and not ex.deadlocked and depth < sc.max_steps:
                if self._past_deadline(depth):
                    break
                enabled = ex.enabled()
                if not enabled:
                    break
                if self.pct_depth:
                    tid = max(enabled, key=lambda t: prio[t])
                    if depth in change:
                        prio[tid] = self.pct_depth - 1 - len([c for c in change if c < depth])
                else:
                    tid = self.rng.choice(enabled)
                if prev is not None and tid != prev and prev in enabled:
                    pre += 1
                preemptions.append(pre)
                schedule.append(tid)
                ex.step(tid)
                prev = tid
                depth += 1
            if depth >= sc.max_steps and not ex.finished():
                self.stats.truncated += 1
            self.est_steps = max(self.est_steps, depth + 1)
            self.stats.max_preemptions_seen = max(self.stats.max_preemptions_seen, pre)
        finally:
            ex.close()
        self._record(ex, schedule, preemptions, complete=ex.finished() or ex.deadlocked)


def iterative_context_bounding(scenario: Scenario, max_bound: Optional[int],
                               stop_at_first: bool = True, deadline: Optional[float] = None,
                               max_executions: Optional[int] = None,
                               on_bound: Optional[Callable] = None,
                               on_execution: Optional[Callable] = None) -> Result:
    """DPOR with preemption bounds 0, 1, ... max_bound (None: unbounded after the bounded
    rounds up to 2). Stops at the first bound that finds a violation when *stop_at_first*.
    A scenario with ``choices`` is explored once per injection plan (explore_choices)."""
    def run(sc: Scenario) -> Result:
        return _icb(sc, max_bound, stop_at_first, deadline, max_executions, on_bound,
                    on_execution)
    if not scenario.choices:
        return run(scenario)
    return explore_choices(scenario, run, stop_at_first)


def explore_choices(scenario: Scenario, run: Callable[[Scenario], Result],
                    stop_at_first: bool = True) -> Result:
    """Both sides of every branch the kernel does not control (impl/sched.py may_fail),
    the way fault injection's fail-nth does it: explore with no branch failing, collect the
    branches the executions met ((thread, k): the thread's k-th branch of a kind the
    scenario switched on), then explore again with each one failing, and so on up to
    ``max_choices`` failing branches per execution. Every plan is a full search (*run*), so
    the interleavings of each are covered as without choices; the results are merged (the
    counterexample of a group is the best-ranked over all plans, and says its plan)."""
    todo: list[frozenset] = [frozenset()]
    seen = {frozenset()}
    merged: Optional[Result] = None
    t0 = time.monotonic()
    while todo:
        plan = todo.pop(0)
        res = run(scenario.with_inject(plan))
        res.plans = [plan]
        if merged is None:
            merged = res
        else:
            merged = _merge(merged, res)
        if res.stats.interrupted or not res.stats.complete:
            merged.stats.complete = False
            if res.stats.interrupted:
                break
        if stop_at_first and merged.counterexamples:
            break
        if len(plan) < scenario.max_choices:
            for point in sorted(res.choice_points - set(plan)):
                nxt = plan | {point}
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
    assert merged is not None
    merged.stats.elapsed = time.monotonic() - t0
    merged.stats.plans = len(merged.plans)
    return merged


def _merge(a: Result, b: Result) -> Result:
    """The result of two searches over disjoint sets of executions (two plans)."""
    for g, c in b.counterexamples.items():
        old = a.counterexamples.get(g)
        if old is None or c.rank() < old.rank():
            a.counterexamples[g] = c
    a.outcomes |= b.outcomes
    for key, n in b.outcome_counts.items():
        a.outcome_counts[key] = a.outcome_counts.get(key, 0) + n
        a.outcome_schedules.setdefault(key, b.outcome_schedules[key])
    a.choice_points |= b.choice_points
    a.plans += b.plans
    a.traces |= b.traces
    sa, sb = a.stats, b.stats
    sa.executions += sb.executions
    sa.steps += sb.steps
    sa.sleep_pruned += sb.sleep_pruned
    sa.bound_pruned += sb.bound_pruned
    sa.truncated += sb.truncated
    sa.max_preemptions_seen = max(sa.max_preemptions_seen, sb.max_preemptions_seen)
    sa.complete = sa.complete and sb.complete
    sa.saturated = sa.saturated and sb.saturated
    sa.interrupted = sa.interrupted or sb.interrupted
    if sa.time_to_first_violation is None:
        sa.time_to_first_violation = sb.time_to_first_violation
    return a


def _icb(scenario: Scenario, max_bound: Optional[int], stop_at_first: bool,
         deadline: Optional[float], max_executions: Optional[int],
         on_bound: Optional[Callable], on_execution: Optional[Callable]) -> Result:
    total = Stats(mode="dpor+icb")
    t0 = time.monotonic()
    bounds = list(range(0, max_bound + 1)) if max_bound is not None else [0, 1, 2, None]
    last: Optional[Result] = None
    for b in bounds:
        search = DporSearch(scenario, bound=b, deadline=deadline, max_executions=max_executions,
                            on_execution=on_execution)
        if on_bound is not None:
            on_bound(b)
        res = search.run()
        total.executions += res.stats.executions
        total.steps += res.stats.steps
        total.sleep_pruned += res.stats.sleep_pruned
        total.bound_pruned += res.stats.bound_pruned
        total.truncated += res.stats.truncated
        total.max_preemptions_seen = max(total.max_preemptions_seen,
                                         res.stats.max_preemptions_seen)
        total.preemption_bound = b
        total.complete = res.stats.complete and res.stats.truncated == 0
        total.interrupted = res.stats.interrupted
        if res.stats.time_to_first_violation is not None and total.time_to_first_violation is None:
            total.time_to_first_violation = time.monotonic() - t0
        if last is not None:
            for g, c in last.counterexamples.items():
                res.counterexamples.setdefault(g, c)
            res.outcomes |= last.outcomes
            # Each round re-explores the rounds below it: keep the larger round's counts.
            for key, n in last.outcome_counts.items():
                res.outcome_counts.setdefault(key, n)
                res.outcome_schedules.setdefault(key, last.outcome_schedules[key])
        last = res
        if res.stats.interrupted or search.stop:
            total.complete = False
            break
        if stop_at_first and res.counterexamples:
            break
        if res.stats.complete and res.stats.bound_pruned == 0 and res.stats.truncated == 0:
            # Nothing was cut by the bound: this round explored the unbounded space, and a
            # larger bound would only repeat it (a huge --preemptions costs nothing more).
            total.saturated = True
            break
    total.elapsed = time.monotonic() - t0
    assert last is not None
    last.stats = total
    return last
