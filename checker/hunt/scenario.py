"""A hunt's scenario as plain data, and the scenario TOML it stands for.

The generator and the shrinker work on these records (dropping a thread or halving a mapping
is an edit of a list); :func:`to_toml` writes the same format a user writes
(docs/scenario-format.md), so every scenario the hunt explores is parsed and checked by the
one loader (checker/scenario.py) and every finding is a file ``unmapcheck explore`` runs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional


@dataclass
class File:
    name: str
    pages: int
    shmem: bool
    size: Optional[int] = None                    # bytes, when not pages * 4096
    data: dict = field(default_factory=dict)      # page index -> byte


@dataclass
class Mapping:
    addr: int
    pages: int
    prot: str = "rw"
    shared: bool = False
    file: Optional[str] = None
    offset: int = 0
    populate: str = "none"
    populate_cpu: int = 0
    mlock: bool = False
    data: dict = field(default_factory=dict)      # page index -> byte

    @property
    def end(self) -> int:
        return self.addr + self.pages * 4096


@dataclass
class Process:
    name: str
    mappings: list = field(default_factory=list)
    oom_victim: bool = False
    fork_of: Optional[str] = None


@dataclass
class Thread:
    name: str
    cpu: int
    process: Optional[str] = None
    ops: list = field(default_factory=list)        # each an op table: {"op": ..., ...}
    actor: Optional[str] = None
    target: dict = field(default_factory=dict)     # an actor's file/index or addr


@dataclass
class HuntScenario:
    name: str
    cpus: int
    arch: str
    vendor: str = "intel"
    era: str = "6.18"
    fixes_off: list = field(default_factory=list)
    choices: list = field(default_factory=list)
    max_choices: int = 1
    files: list = field(default_factory=list)
    processes: list = field(default_factory=list)
    threads: list = field(default_factory=list)
    steps: int = 4000
    preemptions: Optional[int] = None
    description: str = ""
    # the PMD (or PUD) boundary the generator placed the mappings around: where edits
    # (evolve.py) place new ops and mappings; not part of the TOML
    boundary: int = 0
    tunables: dict = field(default_factory=dict)

    def size(self) -> dict:
        """What the shrinker makes smaller, for the report."""
        return {"threads": len(self.threads),
                "ops": sum(len(t.ops) for t in self.threads),
                "mappings": sum(len(p.mappings) for p in self.processes),
                "pages": sum(m.pages for p in self.processes for m in p.mappings),
                "cpus": self.cpus}


def _value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return hex(v) if v >= 4096 else str(v)
    if isinstance(v, str):
        return json.dumps(v)           # a TOML basic string: the same escapes for ASCII
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"no TOML for {v!r}")


def to_toml(s: HuntScenario) -> str:
    out = ["[scenario]", f"name = {_value(s.name)}"]
    if s.description:
        out.append(f"description = {_value(s.description)}")
    out += [f"cpus = {s.cpus}", f"arch = {_value(s.arch)}"]
    if s.arch == "x86":
        out.append(f"vendor = {_value(s.vendor)}")
    out += [f"era = {_value(s.era)}", f"fixes_off = {_value(list(s.fixes_off))}"]
    if s.choices:
        out.append(f"choices = {_value(list(s.choices))}")
        if s.max_choices != 1:
            out.append(f"max_choices = {s.max_choices}")
    if s.tunables:
        out += ["", "[tunables]"] + [f"{k} = {_value(v)}" for k, v in s.tunables.items()]
    for f in s.files:
        size = f.pages * 4096 if f.size is None else f.size
        out += ["", "[[file]]", f"name = {_value(f.name)}", f"size = {size:#x}",
                f"shmem = {_value(f.shmem)}"]
        if f.data:
            out.append("data = { " + ", ".join(f"{k} = {v:#x}" for k, v in
                                               sorted(f.data.items())) + " }")
    for p in s.processes:
        out += ["", "[[process]]", f"name = {_value(p.name)}"]
        if p.oom_victim:
            out.append("oom_victim = true")
        if p.fork_of:
            out.append(f"fork_of = {_value(p.fork_of)}")
        for m in p.mappings:
            out += ["[[process.mapping]]", f"addr = {m.addr:#x}", f"pages = {m.pages}",
                    f"prot = {_value(m.prot)}"]
            if m.shared:
                out.append("shared = true")
            if m.file is not None:
                out += [f"file = {_value(m.file)}", f"offset = {m.offset:#x}"]
            if m.populate != "none":
                out += [f"populate = {_value(m.populate)}", f"populate_cpu = {m.populate_cpu}"]
            if m.mlock:
                out.append("mlock = true")
            if m.data:
                out.append("data = { " + ", ".join(f"{k} = {v:#x}" for k, v in
                                                   sorted(m.data.items())) + " }")
    for t in s.threads:
        out += ["", "[[thread]]", f"name = {_value(t.name)}", f"cpu = {t.cpu}"]
        if t.actor:
            out.append(f"actor = {_value(t.actor)}")
            for k, v in t.target.items():
                out.append(f"{k} = {_value(v)}")
        if t.process is not None:
            out.append(f"process = {_value(t.process)}")
        if t.actor is None:
            out.append("program = [")
            out += [f"  {_value(op)}," for op in t.ops]
            out.append("]")
    out += ["", "[bounds]", f"steps = {s.steps}"]
    if s.preemptions is not None:
        out.append(f"preemptions = {s.preemptions}")
    out += ["", "[expect]", "never = true", ""]
    return "\n".join(out)


def from_toml(text: str, path: str) -> HuntScenario:
    """A user's scenario file as a hunt scenario, to seed a guided campaign's corpus
    (``unmapcheck hunt --from``): its machine, choices, tunables, files, processes and
    threads as written. Its expectations are dropped (the hunt judges the invariants) and
    so is its preemption bound (the hunt explores at its own). The file is checked by the
    scenario loader first, so a malformed one is refused with the loader's one-line error
    (checker.scenario.ScenarioError)."""
    import tomllib

    from ..scenario import parse
    sc = parse(text, path)                        # the one loader: raises ScenarioError
    # what the loader keeps as written comes from it; mappings and programs from the TOML
    # itself, whose spelling (prot = "rw", flags = "MAP_...") is the one to_toml writes
    doc = tomllib.loads(text)

    def data(table) -> dict:
        return {int(k): int(v) for k, v in (table or {}).items()}

    s = HuntScenario(name=sc.name, cpus=sc.cpus, arch=sc.arch, vendor=sc.vendor, era=sc.era,
                     fixes_off=list(sc.fixes_off), choices=list(sc.choices),
                     max_choices=sc.max_choices, steps=sc.max_steps,
                     tunables=dict(sc.tunables))
    for f in sc.files:
        s.files.append(File(f.name, -(-f.size // 4096), f.shmem,
                            None if f.size % 4096 == 0 else f.size, dict(f.data)))
    for p in doc.get("process", []):
        proc = Process(p["name"], oom_victim=p.get("oom_victim", False),
                       fork_of=p.get("fork_of"))
        for m in p.get("mapping", []):
            proc.mappings.append(Mapping(
                m["addr"], m["pages"], prot=m.get("prot", "rw"), shared=m.get("shared", False),
                file=m.get("file"), offset=m.get("offset", 0),
                populate=m.get("populate", "none"), populate_cpu=m.get("populate_cpu", 0),
                mlock=m.get("mlock", False), data=data(m.get("data"))))
        s.processes.append(proc)
    for t in doc.get("thread", []):
        actor = t.get("actor")
        target = {k: v for k, v in t.items()
                  if k not in ("name", "cpu", "process", "program", "actor")}
        s.threads.append(Thread(t["name"], t.get("cpu", 0), t.get("process"),
                                [dict(op) for op in t.get("program", [])], actor, target))
    # edits place new ops and mappings around a page-table boundary: the PMD boundary
    # nearest the first mapping
    maps = [m for p in s.processes for m in p.mappings]
    pmd = 512 * 4096
    s.boundary = (maps[0].addr + pmd // 2) // pmd * pmd if maps else 0x7F0000000000 + pmd
    return s
