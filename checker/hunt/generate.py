"""Random scenarios for the hunt, biased to where unmap bugs live.

One scenario is drawn from one ``random.Random`` (seeded by the campaign): 2 or 3 CPUs; one
process with one to three mappings of the kinds the model has (private anonymous, private
and shared regular file, shmem, mlocked, PROT_NONE guards; populated by reads or writes, or
sparsely by a few stores, or not at all), sometimes a forked child that inherits them,
sometimes an OOM victim, sometimes an unrelated process (another mm for a CPU to switch to);
two or three threads: user threads running one to three ops, or three to five (munmap,
madvise with DONTNEED, DONTNEED_LOCKED, FREE and COLD, mprotect, mlock, munlock, MAP_FIXED
mmap, fork, exec, exit, loads, stores, GUP-fast and context switches; a MAP_FIXED mmap is a
stack, MAP_GROWSDOWN, one time in three), or a kernel actor (the OOM reaper, writeback,
migration: its migration entries are the non-present entries a hunt meets; the model
installs swap entries only through reclaim, which it leaves out, so none are drawn). The
first thread may begin with a prelude that puts a page table in a state table freeing and
flushing must handle (populated by this CPU; allocated but empty; empty and still reached
from this CPU's paging-structure caches: Generator._prelude), then, one time in two, an
munmap or zapping madvise of that whole table (free_table_op).

Placement is biased to page-table boundaries: each scenario picks a PMD boundary B (a PUD
boundary one time in four) and places mappings that end at B (the last entries of a table),
start at B, straddle it, or cover a whole PTE table, with neighbours that share a table
(adjacent, or one or two pages apart: a hole a MAP_FIXED mmap can fill and merge); op
ranges cover one whole mapping, or start and end at mapping edges, at B, one page either
side of it, or inside a mapping; loads and stores also land just outside a mapping. The
allocation-failure (alloc, enomem) and resched choices are switched on in a quarter of the
scenarios, with up to two failing branches an execution (an error path can need a
GFP_NOWAIT attempt and its retry to fail) one time in three.

Each scenario draws from its own random subset of these features (swarm testing, the
:class:`Swarm` below). Only what the model has is drawn; each scenario is checked by the
scenario loader before it is explored (a scenario the loader refuses is drawn again:
``Generator.rejected`` counts them).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Optional

from .scenario import File, HuntScenario, Mapping, Process, Thread, to_toml

PAGE = 4096
PMD_PAGES = 512                      # a PTE table maps 2 MiB
PUD_SIZE = 1 << 30
REGION = 0x7F0000000000              # below it nothing is mapped; PUD aligned
OTHER = "q"                          # the unrelated process (Swarm.other_process)

# (MADV_PAGEOUT is not drawn yet: a hunt's machine has no swap device, and a dirty shmem
# page's reclaim, shmem_writeout, is not modelled)
MADVICES = [("MADV_DONTNEED", 5), ("MADV_FREE", 1), ("MADV_COLD", 1),
            ("MADV_DONTNEED_LOCKED", 1)]
USER_OPS = [("madvise", 6), ("munmap", 4), ("mprotect", 2), ("mlock", 1), ("munlock", 1),
            ("mmap", 1), ("load", 4), ("store", 4), ("gup_fast", 1), ("fork", 1),
            ("context_switch", 1)]


@dataclass
class Options:
    """What the command line fixes; None: drawn per scenario."""
    arch: Optional[str] = None                 # "x86", "arm64", "ppc64"
    vendor: Optional[str] = None               # "intel", "amd"
    era: str = "6.18"
    fixes_off: list = field(default_factory=list)
    choices: bool = True                       # some scenarios switch choices on

    def apply(self, s: HuntScenario) -> None:
        """Make a scenario from elsewhere (a seed of ``--from``) one of this campaign's:
        its fix set and era, and its arch and vendor where the command line fixes them."""
        s.fixes_off, s.era = list(self.fixes_off), self.era
        if self.arch is not None:
            s.arch = self.arch
        if s.arch != "x86":
            s.vendor = "intel"
        elif self.vendor is not None:
            s.vendor = self.vendor
        if not self.choices:
            s.choices, s.max_choices = [], 1


def _pick(rng: random.Random, weighted):
    return rng.choices([w[0] for w in weighted], weights=[w[1] for w in weighted])[0]


def free_table_op(rng: random.Random, addr: int) -> dict:
    """An munmap or a zapping madvise (MADV_DONTNEED, MADV_DONTNEED_LOCKED) of the whole PTE
    table (2 MiB, PMD aligned) that maps *addr*: the ranges that free a page table
    (munmap's free_pgtables; PT_RECLAIM's reclaim of an emptied table, on a zap)."""
    table = PMD_PAGES * PAGE
    op: dict = {"addr": addr - addr % table, "len": table}
    what = _pick(rng, [("MADV_DONTNEED", 3), ("munmap", 1), ("MADV_DONTNEED_LOCKED", 1)])
    return {"op": "munmap", **op} if what == "munmap" else \
        {"op": "madvise", **op, "advice": what}


class Generator:
    def __init__(self, options: Options):
        self.options = options
        self.rejected = 0

    def scenario(self, rng: random.Random, name: str) -> tuple[HuntScenario, str]:
        """A scenario the loader accepts, and its TOML."""
        from ..scenario import ScenarioError, parse
        for _ in range(100):
            s = self._draw(rng, name)
            text = to_toml(s)
            try:
                parse(text, f"<{name}>")
            except ScenarioError:
                self.rejected += 1
                continue
            return s, text
        raise RuntimeError("the hunt's generator drew 100 scenarios the loader refused")

    # --- drawing -------------------------------------------------------------------------------
    def _draw(self, rng: random.Random, name: str) -> HuntScenario:
        o = self.options
        arch = o.arch or rng.choice(["x86", "x86", "arm64"])
        s = HuntScenario(name=name, cpus=rng.choice([2, 2, 3]), arch=arch,
                         vendor=o.vendor or rng.choice(["intel", "amd"]), era=o.era,
                         fixes_off=list(o.fixes_off))
        sw = Swarm.draw(rng)
        if o.choices and rng.random() < 0.25:
            s.choices = rng.choice([["alloc"], ["alloc"], ["enomem"], ["resched"],
                                    ["resched"], ["alloc", "enomem"], ["alloc", "resched"]])
        boundary = REGION + (PUD_SIZE if rng.random() < 0.25 else
                             rng.randint(1, 8) * PMD_PAGES * PAGE)
        s.boundary = boundary
        if o.choices and any(c in s.choices for c in ("alloc", "enomem")):
            # an error path can need two failures (a GFP_NOWAIT attempt and its retry)
            s.max_choices = rng.choice([1, 1, 2])
        p = Process("p", oom_victim="oom_reaper" in sw.actors)
        s.processes.append(p)
        for i in range(rng.choice([1, 1, 2, 2, 3])):
            m = self._mapping(rng, s, p, boundary, sw)
            if m is not None:
                p.mappings.append(m)
        if sw.fork_child:
            s.processes.append(Process("c", fork_of="p"))
        if sw.other_process:
            # an unrelated process: another mm for a CPU to switch to (switch_mm between two
            # user mms, not the lazy switch to a kernel thread), with a mapping of its own
            # one time in two
            q = Process(OTHER)
            s.processes.append(q)
            if rng.random() < 0.5:
                m = self._mapping(rng, s, q, boundary, sw)
                if m is not None:
                    q.mappings.append(m)
        self._threads(rng, s, boundary, sw)
        return s

    def _placement(self, rng: random.Random, boundary: int) -> tuple[int, int]:
        small = rng.choice([1, 1, 2, 2, 3, 4, 8])
        kind = rng.choice(["ends_at_table", "starts_at_table", "straddles", "inside",
                           "whole_table"])
        if kind == "ends_at_table":
            return boundary - small * PAGE, small
        if kind == "starts_at_table":
            return boundary, small
        if kind == "straddles":
            before = rng.randint(1, small)
            return boundary - before * PAGE, small + rng.randint(1, 2)
        if kind == "inside":
            return boundary + rng.randint(1, 64) * PAGE, small
        return boundary - PMD_PAGES * PAGE * rng.randint(0, 1), PMD_PAGES

    def _mapping(self, rng: random.Random, s: HuntScenario, p: Process,
                 boundary: int, sw: "Swarm") -> Optional[Mapping]:
        for _ in range(10):
            addr, pages = self._placement(rng, boundary)
            if rng.random() < 0.4 and p.mappings:           # a neighbour sharing a table
                last = p.mappings[-1]
                # adjacent, or (with holes) one or two pages away: a hole a MAP_FIXED mmap
                # can fill, merging with both sides
                gap = rng.choice([1, 2]) * PAGE if sw.holes and rng.random() < 0.6 else 0
                addr = (last.end + gap if rng.random() < 0.5 else
                        last.addr - pages * PAGE - gap)
            if all(addr + pages * PAGE <= m.addr or m.end <= addr for m in p.mappings):
                break
        else:
            return None
        kind = rng.choice(sw.mappings)
        m = Mapping(addr, pages, prot=rng.choice(["rw", "rw", "rw", "r"] +
                                                 (["none"] if sw.guard else [])))
        if kind != "anon":
            f = File(f"f{len(s.files)}", pages + rng.randint(0, 2), shmem=kind == "shmem")
            s.files.append(f)
            m.file, m.shared = f.name, kind != "file_private"
        small = pages <= 8
        how = rng.random()
        if m.prot == "none":                # a guard region: nothing to populate or write
            pass
        elif small and how < 0.55:
            m.populate = "write" if "w" in m.prot and rng.random() < 0.7 else "read"
            m.populate_cpu = rng.randrange(s.cpus)
        elif "w" in m.prot and how < 0.8:
            # sparse: a few pages written at setup (the rest of the table stays empty)
            for _ in range(rng.randint(1, 3)):
                m.data[rng.randrange(pages)] = rng.randrange(1, 256)
        if small and "w" in m.prot and rng.random() < 0.3 and not m.data:
            m.data = {i: 0x41 + i for i in range(min(pages, 4))}
        # (mlock of a PROT_NONE mapping fails with ENOMEM, in Linux and in the model)
        m.mlock = small and sw.mlock and m.prot != "none" and rng.random() < 0.5
        return m

    def _points(self, s: HuntScenario, boundary: int) -> list[int]:
        """Addresses op ranges start and end at: mapping edges, the boundary and its
        neighbours, a page inside each mapping."""
        pts = {boundary, boundary - PAGE, boundary + PAGE}
        for p in s.processes:
            for m in p.mappings:
                pts |= {m.addr, m.end, m.addr + PAGE * (m.pages // 2)}
        return sorted(pts)

    def _range(self, rng: random.Random, s: HuntScenario, boundary: int) -> tuple[int, int]:
        maps = [m for p in s.processes for m in p.mappings]
        if maps and rng.random() < 0.25:
            # one whole mapping, the way programs free or advise a buffer
            m = rng.choice(maps)
            return m.addr, m.pages * PAGE
        pts = self._points(s, boundary)
        a = rng.choice(pts[:-1])
        b = rng.choice([x for x in pts if x > a])
        return a, b - a

    def _address(self, rng: random.Random, s: HuntScenario, boundary: int) -> int:
        maps = [m for p in s.processes for m in p.mappings]
        r = rng.random()
        if maps and r < 0.8:
            m = rng.choice(maps)
            return m.addr + PAGE * rng.choice([0, m.pages - 1, rng.randrange(m.pages)])
        if maps and r < 0.9:
            # just outside a mapping: a hole, a guard or a neighbour (a fault there walks
            # the same page table and may find no VMA)
            m = rng.choice(maps)
            return rng.choice([m.end, m.addr - PAGE])
        return boundary

    def _op(self, rng: random.Random, s: HuntScenario, boundary: int, kind: str,
            own: str) -> dict:
        if kind in ("load", "store"):
            op = {"op": kind, "addr": self._address(rng, s, boundary)}
            if kind == "store":
                op["value"] = rng.randrange(1, 256)
            return op
        if kind == "gup_fast":
            return {"op": "gup_fast", "addr": self._address(rng, s, boundary),
                    "pages": rng.choice([1, 1, 2]), "write": rng.random() < 0.5}
        if kind == "fork":
            return {"op": "fork"}
        if kind == "context_switch":
            # to a kernel thread (lazy TLB mode) or to another process's mm; the thread's
            # next op switches back
            others = [p.name for p in s.processes if p.name != own]
            return {"op": "context_switch",
                    "to": rng.choice(others) if others and rng.random() < 0.6 else "kernel"}
        addr, length = self._range(rng, s, boundary)
        if kind == "madvise":
            return {"op": "madvise", "addr": addr, "len": length,
                    "advice": _pick(rng, MADVICES)}
        if kind == "mprotect":
            return {"op": "mprotect", "addr": addr, "len": length,
                    "prot": rng.choice(["r", "rw", "none"])}
        if kind == "mmap":
            # over what is there (MAP_FIXED), anonymous, one time in three a stack
            # (MAP_GROWSDOWN: a fault below it grows it); one time in two exactly into a
            # hole between two mappings of the thread's process (vma_merge on both sides)
            mine = sorted((m for p in s.processes if p.name == own for m in p.mappings),
                          key=lambda m: m.addr)
            holes = [(a.end, b.addr - a.end) for a, b in zip(mine, mine[1:]) if a.end < b.addr]
            if holes and rng.random() < 0.5:
                addr, length = rng.choice(holes)
            stack = "|MAP_GROWSDOWN" if rng.random() < 0.33 else ""
            return {"op": "mmap", "addr": addr, "len": length, "prot": "rw",
                    "flags": "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED" + stack}
        return {"op": kind, "addr": addr, "len": length}           # munmap, mlock, munlock

    def _prelude(self, rng: random.Random, s: HuntScenario, kind: str) -> list:
        """Ops that first put one page table of the process in a state table freeing and
        TLB flushing must handle (Swarm.prelude): 'touch', the table populated and cached
        by this CPU; 'emptied', the table allocated but mapping nothing (the mapping's
        setup then maps nothing: no populate, data or mlock); 'cached_empty',
        allocated, empty and reached from this CPU's paging-structure caches: the walk of
        a fault that finds no PTE and no access right (a PROT_NONE VMA, SIGSEGV) caches
        the pointer to the table and leaves no TLB entry, so only a flush that names an
        address inside the table invalidates it (on AMD, whose INVLPG drops only the
        paging-structure entries on the path to its address)."""
        maps = [m for m in s.processes[0].mappings if m.prot == "rw"]
        if not maps:
            return []
        # a table is freed (and its paging-structure entries must go) only by a range that
        # covers it all: the table of a mapping that spans one when there is one
        table = PMD_PAGES * PAGE

        def first_table(m: Mapping) -> int:         # the first PMD-aligned table it spans
            return -(-m.addr // table) * table
        whole = [m for m in maps if first_table(m) + table <= m.end]
        m = rng.choice(whole or maps)
        if whole:
            page = first_table(m) + PAGE * rng.choice([0, PMD_PAGES - 1,
                                                       rng.randrange(PMD_PAGES)])
        else:
            page = m.addr + PAGE * rng.choice([0, m.pages - 1, rng.randrange(m.pages)])
        ops = [{"op": "store", "addr": page, "value": rng.randrange(1, 256)}]
        if kind in ("emptied", "cached_empty"):
            # the table is to be empty: the mapping's setup maps nothing in it
            m.populate, m.data, m.mlock = "none", {}, False
            ops.append({"op": "madvise", "addr": page, "len": PAGE,
                        "advice": "MADV_DONTNEED"})
        if kind == "cached_empty":
            ops += [{"op": "mprotect", "addr": m.addr, "len": m.pages * PAGE, "prot": "none"},
                    {"op": "load", "addr": page}]
        return ops

    def _threads(self, rng: random.Random, s: HuntScenario, boundary: int,
                 sw: "Swarm") -> None:
        # One CPU a thread: threads that share a CPU run their ops one at a time
        # (docs/scenario-format.md), which would hide every race inside a system call
        # between them; a scenario shares a CPU through its context_switch ops, and a third
        # thread brings a third CPU.
        n = rng.choice([2, 2, 3])
        s.cpus = max(s.cpus, n)
        procs = [p.name for p in s.processes]
        p = s.processes[0]
        actors = []
        if p.oom_victim:
            actors.append(("oom_reaper", {}))
        regular = [f for f in s.files if not f.shmem]
        if "writeback" in sw.actors and regular:
            actors.append(("writeback", {"file": regular[0].name,
                                         "index": rng.randrange(regular[0].pages)}))
        if "migrate" in sw.actors and p.mappings:
            actors.append(("migrate", {"addr": self._address(rng, s, boundary)}))
        rng.shuffle(actors)
        for i in range(n):
            cpu = i % s.cpus
            if i > 0 and actors:                # (thread 0 is always a user thread)
                actor, target = actors.pop()
                proc = None if actor == "writeback" else "p"
                s.threads.append(Thread(f"A{i}", cpu, proc, actor=actor, target=target))
                continue
            # threads run in the process and its forked child; the unrelated process is
            # mostly a context-switch target
            near = [x for x in procs if x != OTHER]
            if OTHER in procs and i > 0 and rng.random() < 0.15:
                proc = OTHER
            else:
                proc = near[i % len(near)] if rng.random() < 0.8 else rng.choice(near)
            count = rng.choice([3, 4, 5] if sw.long_programs else [1, 2, 2, 3])
            ops = [self._op(rng, s, boundary, _pick(rng, sw.ops), proc) for _ in range(count)]
            if i == 0 and sw.prelude:
                pre = self._prelude(rng, s, sw.prelude)
                if pre and rng.random() < 0.5:
                    # the table the prelude prepared, freed next: what it was prepared for
                    pre.append(free_table_op(rng, pre[0]["addr"]))
                ops = pre + ops
            s.threads.append(Thread(f"T{i}", cpu, proc, ops))
        # exit and exec end a process's life: only for a process with one user thread.
        users: dict = {}
        for t in s.threads:
            if t.actor is None:
                users.setdefault(t.process, []).append(t)
        for proc, ts in users.items():
            if len(ts) == 1 and sw.ends and rng.random() < 0.7:
                ts[0].ops.append({"op": rng.choice(sw.ends)})


@dataclass
class Swarm:
    """The features one scenario draws from (swarm testing: Groce, Zhang, Eide, Chen and
    Regehr, ISSTA 2012). Each feature is in with probability one half (at least one op kind
    and one mapping kind), so the rare combinations that a bug needs (an OOM victim with an
    mlocked mapping that exits while the reaper runs; a dirty shared file page that is
    unmapped while writeback runs) come up far more often than when every feature is
    always possible, each feature getting only a small share of every scenario."""
    ops: list
    mappings: list
    actors: list
    ends: list
    mlock: bool
    fork_child: bool
    other_process: bool = False     # an unrelated process q (another mm to switch to)
    holes: bool = False             # neighbours one or two pages apart
    guard: bool = False             # PROT_NONE mappings
    long_programs: bool = False     # three to five ops a thread instead of one to three
    prelude: str = ""               # Generator._prelude: "", touch, emptied, cached_empty

    @classmethod
    def draw(cls, rng: random.Random) -> "Swarm":
        def some(items: list, p: float = 0.5) -> list:
            got = [x for x in items if rng.random() < p]
            return got or [rng.choice(items)]
        mappings = some(["anon", "file_private", "file_shared", "shmem"])
        actors = [a for a in ("oom_reaper", "writeback", "migrate") if rng.random() < 0.35]
        if "writeback" in actors and not {"file_private", "file_shared"} & set(mappings):
            mappings.append("file_shared")          # writeback needs a regular file
        return cls(ops=some(USER_OPS), mappings=mappings, actors=actors,
                   ends=[e for e in ("exit", "exec") if rng.random() < 0.35],
                   mlock=rng.random() < 0.3, fork_child=rng.random() < 0.25,
                   other_process=rng.random() < 0.2, holes=rng.random() < 0.3,
                   guard=rng.random() < 0.15, long_programs=rng.random() < 0.15,
                   prelude=rng.choice(["touch", "emptied", "cached_empty"]) if rng.random() < 0.3
                   else "")
