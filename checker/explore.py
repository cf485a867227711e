"""Exploration strategies: optimal DPOR, source-DPOR, brute force, random and PCT.

Each is a scheduler on the one stepping loop (checker/driver.py); the DPOR tree state and the
happens-before clocks are in checker/path.py.

**Optimal DPOR** (Abdulla, Aronis, Jonsson, Sagonas, JACM 2017, Algorithm 2: source sets and
wakeup trees) is the search without a preemption bound: for each race (i, n) the sequence
v = notdep(i).n is inserted into the wakeup tree of the state before step i unless a thread
asleep there is a weak initial of v, and the wakeup tree's branches are explored leftmost
first, so no two complete executions are equivalent. Steps that wait break that guarantee in
one place: the model declares what a step reads and writes, not what its wait depends on, so
a wakeup sequence that moves a waiting step (a lock acquire, a flush IPI) ahead of what it
waits for ends at a state where the step cannot run; the branch is then replaced by every
runnable thread (counted as ``wakeup_blocked``; the execution may end sleep-set blocked), and
the race is also reversed before the step that took the lock or began the instruction.

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

from .driver import FINISHED, OUT_OF_TIME, TRUNCATED, Run, Scheduler, drive
from .path import Clocks, Node, WakeupNode, insert, weak_initial
from .runtime import Event, Violation, dependent
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
    # Executions that ran to their end (or a deadlock); the others were cut short: blocked
    # by sleep sets, over the preemption bound, truncated, or out of time.
    complete_executions: int = 0
    steps: int = 0
    sleep_pruned: int = 0
    # Optimal DPOR: wakeup-tree branches whose thread was blocked when reached (each replaced
    # by every runnable thread).
    wakeup_blocked: int = 0
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
    # Work units explored (checker/parallel.py; 0: one process).
    units: int = 0

    @property
    def executions_per_second(self) -> float:
        return self.executions / self.elapsed if self.elapsed else 0.0

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.elapsed if self.elapsed else 0.0

    def as_dict(self) -> dict:
        return {"mode": self.mode, "executions": self.executions,
                "complete_executions": self.complete_executions, "steps": self.steps,
                "executions_per_second": round(self.executions_per_second, 1),
                "steps_per_second": round(self.steps_per_second, 1),
                "pruned_by_sleep_sets": self.sleep_pruned,
                "wakeup_branches_blocked": self.wakeup_blocked,
                "pruned_by_preemption_bound": self.bound_pruned,
                "truncated_by_step_bound": self.truncated,
                "preemption_bound": self.preemption_bound,
                "max_preemptions_explored": self.max_preemptions_seen,
                "complete": self.complete, "elapsed_s": round(self.elapsed, 3),
                "time_to_first_violation_s": (None if self.time_to_first_violation is None
                                              else round(self.time_to_first_violation, 3)),
                "interrupted": self.interrupted, "saturated": self.saturated,
                "injection_plans": self.plans, "work_units": self.units}


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


class _Search(Scheduler):
    """What every strategy shares: the budget, and recording each execution's outcome,
    violations and statistics."""

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

    def _record(self, run: Run) -> None:
        """Count an execution; only one that ran to its end (or deadlocked) has an outcome
        (a sleep-set-blocked or bound-pruned one stops early, its outcome is elsewhere)."""
        ex, schedule, preemptions = run.ex, run.schedule, run.preemptions
        st = self.stats
        st.executions += 1
        st.steps += len(ex.events)
        st.max_preemptions_seen = max(st.max_preemptions_seen, run.total_preemptions)
        if run.status == TRUNCATED:
            st.truncated += 1
        if run.status == OUT_OF_TIME:
            self.stop = True
        self.result.choice_points.update((t, k) for t, k, _, _ in ex.choice_points)
        if run.complete:
            st.complete_executions += 1
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
            if st.time_to_first_violation is None:
                st.time_to_first_violation = time.monotonic() - self.t0
        if st.executions >= self.max_executions:
            self.stop = True
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.stop = True

    def finish(self, complete: bool) -> Result:
        self.stats.elapsed = time.monotonic() - self.t0
        self.stats.complete = complete and not self.stop
        return self.result


class DporSearch(_Search):
    """DPOR: optimal (wakeup trees and sleep sets) by default without a preemption bound,
    source sets with conservative backtracking under one (``optimal=False`` selects
    source-DPOR without a bound too; ``sleep_sets=False`` gives plain source-DPOR;
    ``brute_force=True`` explores every enabled choice at every state)."""

    def __init__(self, scenario: Scenario, bound: Optional[int] = None,
                 sleep_sets: Optional[bool] = None,
                 brute_force: bool = False, deadline: Optional[float] = None,
                 max_executions: Optional[int] = None,
                 on_execution: Optional[Callable] = None, collect_traces: bool = False,
                 optimal: Optional[bool] = None, root: tuple = (),
                 split: Optional[int] = None, root_order: tuple = (),
                 time_slice: Optional[float] = None):
        if sleep_sets is None:
            # Sleep sets and a preemption bound do not mix: a thread asleep at a state was
            # explored there with a different preemption budget than it would have here, so
            # the bounded search could lose executions (Coons et al. 2013, section 4; the
            # soundness test shows it). Bounded searches run without them.
            sleep_sets = bound is None
        sleep_sets = sleep_sets and not brute_force
        if optimal is None:
            optimal = sleep_sets and bound is None
        if optimal and (bound is not None or not sleep_sets or brute_force):
            raise ValueError("optimal DPOR needs sleep sets and no preemption bound")
        if optimal and split is not None:
            raise ValueError("a work unit (split) is explored with source-DPOR")
        mode = "bruteforce" if brute_force else "optimal-dpor" if optimal else "source-dpor"
        super().__init__(scenario, bound, mode, deadline, max_executions)
        self.collect_traces = collect_traces
        self.sleep_sets = sleep_sets
        self.brute_force = brute_force
        self.optimal = optimal
        self.stack: list[Node] = []
        self.on_execution = on_execution
        # A work unit (checker/parallel.py): explore only the executions that extend the
        # schedule *root*; the choices still to try at the states above depth
        # len(root) + split are handed back as new units (``exported``) instead of explored.
        self.root = tuple(root)
        # For each state of the prefix, the threads the coordinator has queued there, in its
        # order: those before the prefix's own choice count as explored before it.
        self.root_order = tuple(tuple(o) for o in root_order) or tuple((t,) for t in self.root)
        self.export_depth = None if split is None else len(self.root) + split
        self.exported: list[tuple] = []   # (prefix, initials, choices made there)
        # After this many seconds a unit hands back everything it has not explored yet.
        self.slice_end = None if time_slice is None else time.monotonic() + time_slice
        # Per execution (reset by _execute).
        self._replay = 0
        self._clocks = Clocks(len(scenario.threads))
        self._child_sleep: set[int] = set()
        self._child_wakeup: list[WakeupNode] = []

    def _allowed(self, node: Node, tid: int) -> bool:
        return self.bound is None or node.preemptions + node.cost(tid) <= self.bound

    def run(self) -> Result:
        try:
            while True:
                self._execute()
                if self.export_depth is not None:
                    if self.stop or (self.slice_end is not None and
                                     time.monotonic() > self.slice_end):
                        # The slice, the time or the execution budget is over: everything
                        # left is handed back, so the unit is complete (the coordinator
                        # judges its own budgets).
                        self.export_depth = len(self.stack)
                        self.stop = False
                    self._export()
                if self.stop or not self._backtrack():
                    break
        except KeyboardInterrupt:
            self.stats.interrupted = True
            self.stop = True
        return self.finish(complete=not self.stop)

    def _export(self) -> None:
        """Hand the new choices at the states above the export depth back as work units:
        each is the schedule to that state plus the thread to try there."""
        path = [n.chosen for n in self.stack]
        for k, node in enumerate(self.stack[:self.export_depth]):
            new = node.backtrack - node.done - node.handed - \
                (node.sleep if self.sleep_sets else set())
            for t in sorted(new):
                node.handed.add(t)
                if self._allowed(node, t):
                    # The unit, the initials that justify it, and the choices this search
                    # made or makes at that state (the coordinator orders them before it).
                    self.exported.append((tuple(path[:k]) + (t,),
                                          tuple(sorted(node.why.get(t, ()))),
                                          (node.chosen,) + tuple(sorted(node.done -
                                                                        {node.chosen}))))
                else:
                    self.stats.bound_pruned += 1

    # --- choosing the next execution ----------------------------------------------------
    def _backtrack(self) -> bool:
        """Pop finished states; set the deepest state with something left to its next choice."""
        floor = self.export_depth or 0
        while len(self.stack) > floor:
            node = self.stack[-1]
            if self.optimal:
                if self._take_wakeup(node):
                    return True
            else:
                cands = sorted(node.backtrack - node.done -
                               (node.sleep if self.sleep_sets else set()))
                for c in cands:
                    node.done.add(c)
                    if not self._allowed(node, c):
                        self.stats.bound_pruned += 1
                        continue
                    node.chosen = c
                    return True
            self.stack.pop()
        return False

    def _take_wakeup(self, node: Node) -> bool:
        """Optimal DPOR: run the leftmost branch of *node*'s wakeup tree next. A branch whose
        thread is asleep is covered; one whose thread is blocked here (a race reversed past a
        lock the thread waits for) is replaced by every runnable thread, the conservative
        choice."""
        while node.wakeup:
            w = node.wakeup.pop(0)
            if w.tid in node.sleep or w.tid in node.done:
                continue
            if w.tid not in node.enabled:
                self.stats.wakeup_blocked += 1
                self._wake_all(node)
                continue
            node.done.add(w.tid)
            node.chosen = w.tid
            self._child_wakeup = w.children
            return True
        return False

    # --- one execution ---------------------------------------------------------------------
    def _execute(self) -> None:
        self._replay = len(self.stack)
        self._clocks = Clocks(len(self.scenario.threads))
        self._child_sleep = set()
        if self._replay == 0:
            self._child_wakeup = []
        # A work unit runs each execution to its end: its budget is checked between
        # executions, so everything it did not explore is a choice at some state, handed back.
        run = drive(self.scenario, self,
                    deadline=None if self.export_depth is not None else self.deadline)
        ex = run.ex
        if self.collect_traces and run.status == FINISHED:
            c = self._clocks
            self.result.traces.add(frozenset(
                (c.tids[k], c.seqs[k], tuple(c.vcs[k])) for k in range(len(c.tids))))
        self._record(run)
        if self.on_execution is not None:
            self.on_execution(self, ex)

    def pick(self, run: Run, enabled: list[int]) -> Optional[int]:
        depth = run.depth
        if depth < self._replay:
            node = self.stack[depth]
            tid = node.chosen
            if tid not in enabled:
                raise RuntimeError(f"replay diverged at step {depth}: thread {tid} not "
                                   f"enabled (the model is not deterministic)")
            return tid
        prev = run.prev
        pendings = {t.tid: t.pending
                    for t in run.ex.threads if not t.done and t.pending is not None}
        node = Node(enabled, pendings, self._child_sleep if self.sleep_sets else set(),
                    prev, run.total_preemptions)
        self.stack.append(node)
        if depth < len(self.root):
            # The unit's prefix: replayed as given (its other choices belong to other units).
            tid = self.root[depth]
            if tid not in enabled:
                raise RuntimeError(f"work unit diverged at step {depth}: thread {tid} not "
                                   f"enabled (the model is not deterministic)")
            order = self.root_order[depth]
            node.done = set(order[:order.index(tid)]) | {tid}
            node.chosen = tid
            node.backtrack = set(order)
            node.handed = set(order) - node.done
            return tid
        if self.optimal:
            node.wakeup = self._child_wakeup
            self._child_wakeup = []
            if node.wakeup and self._take_wakeup(node):
                return node.chosen
        cands = [t for t in enabled if t not in node.sleep]
        if not cands:
            self.stats.sleep_pruned += 1
            node.done = set(enabled)
            return None
        allowed = [t for t in cands if self._allowed(node, t)]
        if not allowed:
            self.stats.bound_pruned += 1
            node.done = set(enabled)
            return None
        tid = prev if prev in allowed else allowed[0]
        node.backtrack = set(enabled) if self.brute_force else {tid}
        node.done = {tid}
        node.chosen = tid
        return tid

    def replayed_findings(self, run: Run) -> Optional[tuple]:
        # The steps above the deepest state's (new) choice ran in the previous execution,
        # after the same schedule: the model is deterministic, so the state after each is the
        # one judged then (a divergence raises in pick).
        k = run.depth - 1
        if k < self._replay - 1:
            return self.stack[k].findings
        return None

    def stepped(self, run: Run, tid: int, ev: Event) -> bool:
        node = self.stack[run.depth - 1]
        node.findings = ev.findings
        c = self._clocks
        deps, base = c.add(tid, ev)
        if not self.brute_force:
            n = len(c.tids) - 1
            for i in c.races(n, deps, base):
                if self.optimal:
                    self._reverse_optimal(i, n, run.ex.events)
                else:
                    self._reverse(i, n, run.ex.events)
        if self.sleep_sets and run.depth >= self._replay:
            # (Only the last replayed step's answer is used: by the first new state.)
            self._child_sleep = {q for q in node.asleep() if q in node.pendings and
                                 not dependent(node.pendings[q], ev)}
        return True

    # --- races -------------------------------------------------------------------------
    def _lock_taker(self, i: int, n: int, events) -> Optional[int]:
        """For a blocking step n racing with step i (which releases what n waits for: a lock,
        a CPU busy in an instruction), the latest step of i's thread before i that
        conflicts with n: the one that took it."""
        ti = self._clocks.tids[i]
        for j in range(i - 1, -1, -1):
            if self._clocks.tids[j] == ti and dependent(events[j], events[n]):
                return j
        return None

    def _reverse(self, i: int, n: int, events) -> None:
        """Source-DPOR, race (i, n): make sure some weak initial of notdep(i).n is tried
        before step i."""
        c = self._clocks
        initials = c.initials(c.not_after(i, n) + [n])
        node = self.stack[i]
        if node.backtrack.intersection(initials):
            return
        p = c.tids[n] if c.tids[n] in initials else initials[0]
        self._add_backtrack(i, p, events, frozenset(initials))
        if events[n].blocking:
            # e_n waits for something e_i's thread holds (a lock it took, a CPU it keeps busy
            # in the middle of an instruction): e_n cannot be moved just before e_i, which
            # releases it; it can be moved before the step of that thread that took it.
            j = self._lock_taker(i, n, events)
            if j is not None:
                self._add_backtrack(j, p, events, frozenset(initials))
        if self.bound is not None:
            # Conservative branch: also at the start of the block that contains step i.
            j = i
            while j > 0 and self.stack[j - 1].chosen == self.stack[i].chosen and \
                    self.stack[j].prev == self.stack[i].chosen:
                j -= 1
            if j != i:
                self._add_backtrack(j, p, events, frozenset(initials))

    def _add_backtrack(self, i: int, p: int, events, initials: frozenset = frozenset()) -> None:
        """Try thread *p* at state *i*. If p is blocked there (its pending step waits for a
        lock another thread holds), the race to reverse is with the step that took the lock:
        p is tried at the latest earlier state where it was enabled and the next step of
        another thread conflicted with p's pending acquire. (Reversing the release with the
        acquire is impossible: the acquire is not enabled before the release.) Only if there
        is no such state are all threads enabled at i tried."""
        node = self.stack[i]
        if p in node.enabled:
            if p not in node.backtrack:
                node.why[p] = initials
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

    def _reverse_optimal(self, i: int, n: int, events) -> None:
        """Optimal DPOR, race (i, n): unless a thread asleep at the state before step i is a
        weak initial of v = notdep(i).n (an equivalent execution is covered), insert v into
        that state's wakeup tree (Abdulla et al., JACM 2017, Algorithm 2).

        A blocking step n that could not run at that state (it waits for what step i
        releases: a lock, a CPU's instruction boundary) cannot be moved before step i; it is
        moved instead to the latest earlier state where it was runnable as the same step,
        before whatever blocked it (the way Nidhugg's optimal mode reverses a lock release
        and acquire as a race between the two acquires). Failing that, every runnable thread
        is tried at state i (Flanagan and Godefroid)."""
        c = self._clocks
        v = c.not_after(i, n) + [n]
        targets = [(i, v)]
        if events[n].blocking:
            tn = c.tids[n]
            targets = []
            j = self._lock_taker(i, n, events)
            if j is not None:
                targets.append((j, c.not_after(j, n) + [n]))
            if tn in self.stack[i].enabled or any(c.tids[k] == tn for k in v[:-1]):
                targets.append((i, v))
            elif j is None:
                k = self._last_runnable(tn, i)
                if k is None:
                    self._wake_all(self.stack[i])
                    return
                targets.append((k, [n]))
        for t, seq in targets:
            node = self.stack[t]
            if any(weak_initial(q, node.pendings[q], seq, c, events)
                   for q in node.asleep() if q in node.pendings):
                continue
            insert(node.wakeup, seq, c, events)

    @staticmethod
    def _wake_all(node: Node) -> None:
        """Try every runnable thread that is not asleep at *node* (the conservative choice)."""
        have = {w.tid for w in node.wakeup}
        for q in node.enabled:
            if q not in node.asleep() and q not in node.done and q not in have:
                node.wakeup.append(WakeupNode(q, node.pendings.get(q)))

    def _last_runnable(self, tid: int, i: int) -> Optional[int]:
        """The latest state before step i where *tid* was runnable with the step it runs at
        step n pending (it made no step in between), if any."""
        sched = self._clocks.tids
        for j in range(i - 1, -1, -1):
            if sched[j] == tid:
                return None
            if tid in self.stack[j].enabled:
                return j
        return None


class RandomSearch(_Search):
    """Seeded random scheduling (``pct_depth=None``) or PCT with bug depth d."""

    def __init__(self, scenario: Scenario, executions: int, seed: int,
                 pct_depth: Optional[int] = None, deadline: Optional[float] = None):
        super().__init__(scenario, None, "pct" if pct_depth else "random", deadline, executions)
        self.rng = random.Random(seed)
        self.executions = executions
        self.pct_depth = pct_depth
        self.est_steps = 200
        self._prio: list[int] = []
        self._change: set[int] = set()

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
        n = len(self.scenario.threads)
        prio = list(range(n))
        self.rng.shuffle(prio)
        self._prio = [p + self.pct_depth for p in prio] if self.pct_depth else prio
        self._change = set(self.rng.sample(range(1, self.est_steps),
                                           min(self.est_steps - 1, (self.pct_depth or 1) - 1)))
        run = drive(self.scenario, self, deadline=self.deadline)
        self.est_steps = max(self.est_steps, run.depth + 1)
        self._record(run)

    def pick(self, run: Run, enabled: list[int]) -> Optional[int]:
        if not self.pct_depth:
            return self.rng.choice(enabled)
        prio, depth = self._prio, run.depth
        tid = max(enabled, key=lambda t: prio[t])
        if depth in self._change:
            prio[tid] = self.pct_depth - 1 - len([c for c in self._change if c < depth])
        return tid



def iterative_context_bounding(scenario: Scenario, max_bound: Optional[int],
                               stop_at_first: bool = True, deadline: Optional[float] = None,
                               max_executions: Optional[int] = None,
                               on_bound: Optional[Callable] = None,
                               on_execution: Optional[Callable] = None,
                               optimal: bool = True,
                               parallel: Optional[Callable] = None,
                               stop_when: Optional[Callable[[Result], bool]] = None) -> Result:
    """DPOR with preemption bounds 0, 1, ... max_bound (None: unbounded after the bounded
    rounds up to 2; that round is optimal DPOR unless *optimal* is False). Stops at the first
    bound that finds a violation when *stop_at_first*. A scenario with ``choices`` is
    explored once per injection plan (explore_choices). *parallel* (scenario, bound) ->
    Result runs each round instead (checker/parallel.py: work units on processes or a
    cluster). *stop_when* (result so far) -> bool also ends the search after a round or a
    plan: the caller's verdict is decided (checker/prove.py: every group ``sometimes``
    names found and every ``exists`` reached)."""
    def run(sc: Scenario) -> Result:
        return _icb(sc, max_bound, stop_at_first, deadline, max_executions, on_bound,
                    on_execution, optimal, parallel, stop_when)
    if not scenario.choices:
        return run(scenario)
    if not stop_at_first and stop_when is None:
        return explore_choices(scenario, run, False, None)
    return _choices_bound_first(scenario, max_bound, stop_at_first, deadline, max_executions,
                                on_bound, on_execution, optimal, parallel, stop_when)


def _choices_bound_first(scenario: Scenario, max_bound: Optional[int], stop_at_first: bool,
                         deadline: Optional[float], max_executions: Optional[int],
                         on_bound: Optional[Callable], on_execution: Optional[Callable],
                         optimal: bool, parallel: Optional[Callable],
                         stop_when: Optional[Callable[[Result], bool]]) -> Result:
    """A search for a violation (or for what *stop_when* waits for) in a scenario with
    ``choices``: every injection plan up to bound b before any plan at bound b + 1, so a
    violation that needs a failing branch is found at the smallest bound that has it, over
    all plans (and its counterexample has the fewest preemptions), instead of after the whole
    bounded search of every plan before it. Each step re-runs explore_choices with the
    larger bound (its rounds re-explore the smaller ones, which cost little next to the
    largest), the plans with failing branches that the smaller bound met first; the
    statistics add up every search run."""
    t0 = time.monotonic()
    rounds = list(range(0, max_bound + 1)) if max_bound is not None else [0, 1, 2, None]
    spent = {f: 0 for f in _ADDED}
    res: Optional[Result] = None
    for b in rounds:
        if on_bound is not None:
            on_bound(b)

        def run(sc: Scenario, b=b) -> Result:
            return _icb(sc, b, stop_at_first, deadline, max_executions, None,
                        on_execution, optimal, parallel, stop_when)
        # The plans with failing branches a smaller bound met first: the scenario asks for
        # choices because the failing sides are where its bugs are.
        known = tuple(p for p in (res.plans if res is not None else []) if p)
        res = explore_choices(scenario, run, stop_at_first, stop_when, first=known)
        for f in _ADDED:
            spent[f] += getattr(res.stats, f)
        st = res.stats
        if st.interrupted or not st.complete or st.saturated:
            break
        if (stop_at_first and res.counterexamples) or (stop_when is not None and stop_when(res)):
            break
    assert res is not None
    for f in _ADDED:
        setattr(res.stats, f, spent[f])
    res.stats.elapsed = time.monotonic() - t0
    return res


def explore_choices(scenario: Scenario, run: Callable[[Scenario], Result],
                    stop_at_first: bool = True,
                    stop_when: Optional[Callable[[Result], bool]] = None,
                    first: tuple = ()) -> Result:
    """Both sides of every branch the kernel does not control (impl/sched.py may_fail),
    the way fault injection's fail-nth does it: explore with no branch failing, collect the
    branches the executions met ((thread, k): the thread's k-th branch of a kind the
    scenario switched on), then explore again with each one failing, and so on up to
    ``max_choices`` failing branches per execution. Every plan is a full search (*run*), so
    the interleavings of each are covered as without choices; the results are merged (the
    counterexample of a group is the best-ranked over all plans, and says its plan).
    *first*: plans (known from a smaller bound) to explore before the one with no failing
    branch, in this order."""
    todo: list[frozenset] = list(dict.fromkeys(list(first) + [frozenset()]))
    seen = set(todo)
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
        if (stop_at_first and merged.counterexamples) or \
                (stop_when is not None and stop_when(merged)):
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


# The statistics that add up over searches (rounds of bounds, injection plans).
_ADDED = ("executions", "complete_executions", "steps", "sleep_pruned", "wakeup_blocked",
          "bound_pruned", "truncated", "units")


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
    for f in _ADDED:
        setattr(sa, f, getattr(sa, f) + getattr(sb, f))
    sa.max_preemptions_seen = max(sa.max_preemptions_seen, sb.max_preemptions_seen)
    sa.complete = sa.complete and sb.complete
    sa.saturated = sa.saturated and sb.saturated
    sa.interrupted = sa.interrupted or sb.interrupted
    if sa.time_to_first_violation is None:
        sa.time_to_first_violation = sb.time_to_first_violation
    return a


def _icb(scenario: Scenario, max_bound: Optional[int], stop_at_first: bool,
         deadline: Optional[float], max_executions: Optional[int],
         on_bound: Optional[Callable], on_execution: Optional[Callable],
         optimal: bool = True, parallel: Optional[Callable] = None,
         stop_when: Optional[Callable[[Result], bool]] = None) -> Result:
    total = Stats(mode="dpor+icb")
    t0 = time.monotonic()
    bounds = list(range(0, max_bound + 1)) if max_bound is not None else [0, 1, 2, None]
    last: Optional[Result] = None
    for b in bounds:
        if on_bound is not None:
            on_bound(b)
        if parallel is not None:
            res = parallel(scenario, b)
            stopped = not res.stats.complete
        else:
            search = DporSearch(scenario, bound=b, deadline=deadline,
                                max_executions=max_executions, on_execution=on_execution,
                                optimal=optimal and b is None)
            res = search.run()
            stopped = search.stop
        for f in _ADDED:
            setattr(total, f, getattr(total, f) + getattr(res.stats, f))
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
        if res.stats.interrupted or stopped:
            total.complete = False
            break
        if (stop_at_first and res.counterexamples) or (stop_when is not None and stop_when(res)):
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
