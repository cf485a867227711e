"""The guided hunt: keep the scenarios that reached something new, and edit them.

A random scenario rarely has every condition a deep bug needs at once (a merge into a hole
whose anon_vma_clone fails twice, then an munmap of the donor while another thread faults
in the target: seven conditions, none in 20,000 swarm draws). Coverage-guided fuzzers (AFL,
syzkaller) get there a step at a time: a scenario that reaches new code is kept in a corpus,
and new scenarios are made by editing kept ones, so each condition met is kept while the
next one is looked for. This module is that loop over the hunt's scenarios:

- **signal** (signal.py): the steps, own-thread edges and racing step pairs of the DPOR
  executions of a scenario (PCT's runs are not counted). A scenario whose signal has a
  feature no earlier scenario had joins the corpus, with all it reached.
- **the deterministic stage**: each entry, when it joins, gets each edit kind of STAGE
  once, in a seeded order: half of the edited scenarios are such a stage edit of a
  favoured entry that has one left, chosen by weight (below), then one time in two one
  random edit more, as AFL's deterministic stage tries every mutation on a new input.
- **seeds** (``--from``): scenarios a user has, explored first as scenarios 0, 1, ...,
  and kept like any scenario that reached something new (syzkaller's and AFL's input
  corpora).
- **choosing a parent** for the other half: among the favoured entries (AFL's corpus
  culling: for each feature in turn, rarest first, the cheapest entry that reached it, in
  model steps, unless an entry already chosen has it; a small set that reaches everything
  the corpus reached), each weighted by the sum, over its features, of
  ``RARITY // hits**2``, hits being how many scenarios so far reached the feature (rare
  features first, as AFLFast and libFuzzer's entropic schedule weigh rare edges). Integer
  weights and sorted features, so the choice does not depend on the order a set is
  iterated in.
- **editing** (Mutator): one to four edits of the parent, each meaningful in mm: an op
  inserted, replaced, dropped, copied to another thread (two threads on one range), or
  widened to the whole mapping or the whole page table around it; an munmap or
  MADV_DONTNEED of the whole table around an address the thread used, after its use (what
  frees a table); a load, store or GUP-fast in another thread at the edge of a syscall's
  range or just outside it (a fault racing with a split, merge or unmap of its VMA or its
  neighbour); the failure choices switched on (with two failing branches); a mapping
  populated, emptied, written, made read-only or PROT_NONE, or mlocked; a mapping split
  around a one-page hole (two neighbours in one table, a hole a MAP_FIXED mmap can fill);
  a mapping, a thread or a kernel actor added; a prelude (generate.py) put first; exit or
  exec put last. The edited scenario goes through the loader like every scenario (a
  refused one is edited again, up to ten times, then drawn fresh).
- **fresh draws**: one scenario in two is still a swarm draw (generate.py), the very one the
  unguided campaign draws at that index.

Determinism with any number of workers: scenario i is made when the result of scenario
i - LAG - 1 is taken (results are taken in index order), from the corpus and hits as they
are then; scenarios 0..LAG are fresh. So the same seed and budget give the same scenarios,
findings and files whatever runs them, as long as no more than LAG scenarios are in flight
(``--jobs`` up to LAG / 2 keeps the pipeline full; more workers wait).
"""

from __future__ import annotations

import copy
import hashlib
import random
from dataclasses import dataclass, field
from typing import Optional

from .generate import (OTHER, PAGE, PMD_PAGES, USER_OPS, Generator, Options, Swarm, _pick,
                       free_table_op)
from .scenario import HuntScenario, Thread, to_toml

LAG = 16            # scenarios between a result and the scenario it can steer
RARITY = 1 << 20    # a feature reached by one scenario weighs this much
FRESH = 0.5         # the share of swarm draws once the corpus has an entry
TRIES = 10          # edits of a parent the loader may refuse before a fresh draw
# the edits each new corpus entry gets once, in a seeded order, before random ones (the
# deterministic stage of AFL, with the edits that carry an mm meaning of their own)
STAGE = ("free_table", "race_access", "choices", "copy_op", "widen_op", "hole")


def _seed(seed: int, i: int, what: str) -> int:
    return int.from_bytes(hashlib.sha256(f"unmapcheck-hunt:{seed}:{i}:{what}".encode())
                          .digest()[:8], "big")


@dataclass
class Entry:
    index: int                         # the scenario's index in the campaign
    spec: HuntScenario
    features: frozenset                # everything its DPOR executions reached
    steps: int                         # what exploring it cost
    pending: list = field(default_factory=list)    # edit kinds its stage has yet to try


@dataclass
class Evolution:
    """The corpus and the feature counts of one campaign (the coordinator's state)."""
    seed: int
    options: Options
    guided: bool = True
    corpus: list = field(default_factory=list)
    hits: dict = field(default_factory=dict)         # feature -> scenarios that reached it
    mutated: int = 0                                 # scenarios made by editing a parent
    seeds: list = field(default_factory=list)        # scenarios 0.. (--from), as given
    _favoured: Optional[list] = None                 # culled corpus, None: to recompute

    def draw(self, i: int, fresh_seed: int) -> tuple[HuntScenario, str, Optional[int]]:
        """Scenario *i*: its record, its TOML and the index of its parent (None: a swarm
        draw from Random(fresh_seed))."""
        gen = Generator(self.options)
        name = f"hunt-{self.seed}-{i}"
        if i < len(self.seeds):
            s = copy.deepcopy(self.seeds[i])
            s.name = name
            return s, to_toml(s), None
        if self.guided and self.corpus:
            rng = random.Random(_seed(self.seed, i, "evolve"))
            if rng.random() >= FRESH:
                favoured = self._favoured_entries()
                weights = self._weights(favoured)
                staged = [(w, e) for w, e in zip(weights, favoured) if e.pending]
                if staged and rng.random() < 0.5:
                    # the deterministic stage: a favoured entry (by weight) with an edit
                    # kind not yet tried on it
                    parent = rng.choices([e for _, e in staged], [w for w, _ in staged])[0]
                    first = parent.pending.pop(0)
                else:
                    parent = rng.choices(favoured, weights=weights)[0]
                    first = None
                got = Mutator(gen, rng).mutate(parent.spec, name, first)
                if got is not None:
                    self.mutated += 1
                    return got[0], got[1], parent.index
        s, text = gen.scenario(random.Random(fresh_seed), name)
        return s, text, None

    def take(self, index: int, spec: HuntScenario, features, steps: int) -> None:
        """Scenario *index*'s result, in index order: count its features; keep it if it
        reached one nothing before it did."""
        new = False
        for f in features:
            n = self.hits.get(f, 0)
            new |= n == 0
            self.hits[f] = n + 1
        if self.guided and new:
            stage = list(STAGE)
            random.Random(_seed(self.seed, index, "stage")).shuffle(stage)
            self.corpus.append(Entry(index, spec, frozenset(features), steps, stage))
        self._favoured = None

    def _favoured_entries(self) -> list[Entry]:
        if self._favoured is None:
            best: dict = {}
            for e in self.corpus:                   # index order: ties go to the earliest
                for f in e.features:
                    if f not in best or e.steps < best[f].steps:
                        best[f] = e
            chosen: dict[int, Entry] = {}
            covered: set = set()
            for f in sorted(best, key=lambda f: (self.hits[f], f)):
                if f not in covered:
                    e = best[f]
                    chosen[e.index] = e
                    covered |= e.features
            self._favoured = sorted(chosen.values(), key=lambda e: e.index)
        return self._favoured

    def _weights(self, entries: list[Entry]) -> list[int]:
        # squared, so that one feature a single scenario reached outweighs a thousand
        # that a hundred reached
        return [max(1, sum(RARITY // self.hits[f] ** 2 for f in e.features))
                for e in entries]


def _user_threads(s: HuntScenario) -> list[Thread]:
    return [t for t in s.threads if t.actor is None]


def _has_range(op: dict) -> bool:
    return "len" in op


class Mutator:
    """Edits of a hunt scenario (module docstring); each returns False when it does not
    apply to the scenario at hand."""

    def __init__(self, gen: Generator, rng: random.Random):
        self.gen, self.rng = gen, rng
        self.sw = Swarm(ops=USER_OPS, mappings=["anon", "file_private", "file_shared", "shmem"],
                        actors=[], ends=["exit", "exec"], mlock=True, fork_child=False,
                        holes=True, guard=True)
        self.edits = [(self.insert_op, 5), (self.replace_op, 2), (self.drop_op, 2),
                      (self.copy_op, 3), (self.widen_op, 2), (self.free_table, 3),
                      (self.race_access, 3), (self.choices, 2),
                      (self.mapping_state, 3), (self.hole, 1), (self.add_mapping, 1),
                      (self.add_thread, 1), (self.add_actor, 1), (self.prelude, 1),
                      (self.end, 1)]

    def mutate(self, parent: HuntScenario, name: str,
               first: Optional[str] = None) -> Optional[tuple[HuntScenario, str]]:
        """The parent edited: by the edit *first* (a method's name), then one time in two
        by a random one; without *first*, by one to four random edits."""
        from ..scenario import ScenarioError, parse
        rng = self.rng
        for _ in range(TRIES):
            s = copy.deepcopy(parent)
            s.name, s.description, s.preemptions = name, "", None
            if first is not None:
                done = int(getattr(self, first)(s))
                if not done:
                    return None             # it does not apply: the stage moves on
                if rng.random() < 0.5:
                    _pick(rng, self.edits)(s)
            else:
                done = 0
                for _ in range(1 + min(3, int(rng.expovariate(1.0)))):
                    done += bool(_pick(rng, self.edits)(s))
            if not done:
                continue
            text = to_toml(s)
            try:
                parse(text, f"<{name}>")
            except ScenarioError:
                continue
            return s, text
        return None

    # --- ops ---------------------------------------------------------------------------------
    def _new_op(self, s: HuntScenario, t: Thread) -> dict:
        return self.gen._op(self.rng, s, s.boundary, _pick(self.rng, USER_OPS), t.process)

    def insert_op(self, s: HuntScenario) -> bool:
        ts = _user_threads(s)
        if not ts:
            return False
        t = self.rng.choice(ts)
        t.ops.insert(self.rng.randint(0, len(t.ops)), self._new_op(s, t))
        return True

    def replace_op(self, s: HuntScenario) -> bool:
        ts = [t for t in _user_threads(s) if t.ops]
        if not ts:
            return False
        t = self.rng.choice(ts)
        t.ops[self.rng.randrange(len(t.ops))] = self._new_op(s, t)
        return True

    def drop_op(self, s: HuntScenario) -> bool:
        ts = [t for t in _user_threads(s) if len(t.ops) > 1]
        if not ts:
            return False
        t = self.rng.choice(ts)
        t.ops.pop(self.rng.randrange(len(t.ops)))
        return True

    def copy_op(self, s: HuntScenario) -> bool:
        """An op of one thread into another thread of the same process or its fork: two
        threads on the same range, the shape of most unmap races."""
        ts = _user_threads(s)
        pairs = [(a, b) for a in ts for b in ts if a is not b and a.ops]
        if not pairs:
            return False
        a, b = self.rng.choice(pairs)
        op = dict(self.rng.choice(a.ops))
        if op["op"] in ("exit", "exec"):
            return False
        b.ops.insert(self.rng.randint(0, len(b.ops)), op)
        return True

    def widen_op(self, s: HuntScenario) -> bool:
        """An op's range made the whole mapping it starts in, or the whole page table (2 MiB,
        PMD aligned) around it: what frees a table."""
        ops = [op for t in _user_threads(s) for op in t.ops if _has_range(op)]
        if not ops:
            return False
        op = self.rng.choice(ops)
        maps = [m for p in s.processes for m in p.mappings if m.addr <= op["addr"] < m.end]
        if maps and self.rng.random() < 0.5:
            op["addr"], op["len"] = maps[0].addr, maps[0].pages * PAGE
        else:
            table = PMD_PAGES * PAGE
            op["addr"], op["len"] = op["addr"] - op["addr"] % table, table
        return True

    def race_access(self, s: HuntScenario) -> bool:
        """A load or store (or GUP-fast) in another thread, at the first or last page of a
        syscall's range or at the page just outside it: a fault or a lockless walk racing
        with a system call on that range or on its neighbour (under the per-VMA lock, a
        fault on the neighbour of a VMA being split, merged or unmapped)."""
        ts = _user_threads(s)
        ranged = [(t, op) for t in ts for op in t.ops if _has_range(op)]
        if not ranged:
            return False
        t, op = self.rng.choice(ranged)
        others = [u for u in ts if u is not t]
        if not others:
            return False
        u = self.rng.choice(others)
        addr = self.rng.choice([op["addr"], op["addr"] + op["len"] - PAGE,
                                op["addr"] - PAGE, op["addr"] + op["len"]])
        kind = self.rng.choice(["store", "store", "load", "gup_fast"])
        new: dict = {"op": kind, "addr": addr}
        if kind == "store":
            new["value"] = self.rng.randrange(1, 256)
        elif kind == "gup_fast":
            new.update(pages=1, write=self.rng.random() < 0.5)
        u.ops.insert(self.rng.randint(0, len(u.ops)), new)
        return True

    def free_table(self, s: HuntScenario) -> bool:
        """An munmap or MADV_DONTNEED-like advice of the whole page table (2 MiB, PMD
        aligned) around an address the thread used or its process maps, put after the
        thread's last use of it: the range that frees the table, after whatever state the
        thread's earlier ops left the table and the TLBs in."""
        ts = _user_threads(s)
        if not ts:
            return False
        t = self.rng.choice(ts)
        used = [(k, op["addr"]) for k, op in enumerate(t.ops) if "addr" in op]
        mapped = [(len(t.ops), m.addr) for p in s.processes if p.name == t.process
                  for m in p.mappings]
        if not used + mapped:
            return False
        k, addr = self.rng.choice(used + mapped)
        t.ops.insert(self.rng.randint(min(k + 1, len(t.ops)), len(t.ops)),
                     free_table_op(self.rng, addr))
        return True

    # --- the scenario's setup ----------------------------------------------------------------
    def choices(self, s: HuntScenario) -> bool:
        if not self.gen.options.choices:
            return False
        s.choices = self.rng.choice([["alloc"], ["alloc", "enomem"], ["alloc", "enomem"],
                                     ["enomem"], ["resched"], ["alloc", "resched"]])
        s.max_choices = self.rng.choice([1, 2, 2])
        return True

    def mapping_state(self, s: HuntScenario) -> bool:
        maps = [(p, m) for p in s.processes for m in p.mappings]
        if not maps:
            return False
        _, m = self.rng.choice(maps)
        what = self.rng.choice(["populate", "untouched", "data", "prot", "mlock"])
        if what == "populate":
            m.populate = self.rng.choice(["write", "read"]) if m.pages <= 8 else "none"
            m.populate_cpu = self.rng.randrange(s.cpus)
            if "w" not in m.prot:
                m.populate = "read" if m.prot != "none" else "none"
        elif what == "untouched":
            m.populate, m.data = "none", {}
        elif what == "data" and "w" in m.prot:
            m.data[self.rng.randrange(m.pages)] = self.rng.randrange(1, 256)
        elif what == "prot":
            m.prot = self.rng.choice(["rw", "r", "none"])
            if m.prot != "rw":
                m.data = {}
                if m.prot == "none":
                    m.populate, m.mlock = "none", False
                elif m.populate == "write":
                    m.populate = "read"
        elif what == "mlock":
            m.mlock = not m.mlock and m.pages <= 8 and m.prot != "none"
        else:
            return False
        return True

    def hole(self, s: HuntScenario) -> bool:
        """A mapping of three pages or more made two, with a page between them unmapped;
        the right one keeps its own state (the edit that follows may change either)."""
        maps = [(p, m) for p in s.processes for m in p.mappings if m.pages >= 3]
        if not maps:
            return False
        p, m = self.rng.choice(maps)
        k = self.rng.randint(1, m.pages - 2)                # the hole's page
        right = copy.deepcopy(m)
        right.addr, right.pages = m.addr + (k + 1) * PAGE, m.pages - k - 1
        right.offset = m.offset + (k + 1) * PAGE if m.file is not None else 0
        right.data = {i - k - 1: v for i, v in m.data.items() if i > k}
        m.pages, m.data = k, {i: v for i, v in m.data.items() if i < k}
        p.mappings.insert(p.mappings.index(m) + 1, right)
        return True

    def add_mapping(self, s: HuntScenario) -> bool:
        p = s.processes[0]
        m = self.gen._mapping(self.rng, s, p, s.boundary, self.sw)
        if m is None:
            return False
        p.mappings.append(m)
        return True

    def add_thread(self, s: HuntScenario) -> bool:
        if len(s.threads) >= 3:
            return False
        procs = [p.name for p in s.processes if p.name != OTHER]
        t = Thread(f"T{len(s.threads)}", len(s.threads), self.rng.choice(procs))
        t.ops = [self._new_op(s, t) for _ in range(self.rng.choice([1, 2]))]
        s.threads.append(t)
        s.cpus = max(s.cpus, len(s.threads))
        return True

    def add_actor(self, s: HuntScenario) -> bool:
        if len(s.threads) >= 3:
            return False
        p = s.processes[0]
        kinds = [a for a in ("oom_reaper", "writeback", "migrate")
                 if a not in {t.actor for t in s.threads}]
        regular = [f for f in s.files if not f.shmem]
        if not regular and "writeback" in kinds:
            kinds.remove("writeback")
        if not p.mappings and "migrate" in kinds:
            kinds.remove("migrate")
        if not kinds:
            return False
        actor = self.rng.choice(kinds)
        target: dict = {}
        if actor == "oom_reaper":
            p.oom_victim = True
        elif actor == "writeback":
            f = self.rng.choice(regular)
            target = {"file": f.name, "index": self.rng.randrange(f.pages)}
        else:
            target = {"addr": self.gen._address(self.rng, s, s.boundary)}
        n = len(s.threads)
        s.threads.append(Thread(f"A{n}", n, None if actor == "writeback" else p.name,
                                actor=actor, target=target))
        s.cpus = max(s.cpus, len(s.threads))
        return True

    def prelude(self, s: HuntScenario) -> bool:
        ts = [t for t in _user_threads(s) if t.process == s.processes[0].name]
        if not ts:
            return False
        ops = self.gen._prelude(self.rng, s, self.rng.choice(["touch", "emptied",
                                                              "cached_empty"]))
        ts[0].ops[:0] = ops
        return bool(ops)

    def end(self, s: HuntScenario) -> bool:
        ts = _user_threads(s)
        if not ts:
            return False
        t = self.rng.choice(ts)
        if t.ops and t.ops[-1]["op"] in ("exit", "exec"):
            return False
        t.ops.append({"op": self.rng.choice(["exit", "exec"])})
        return True

