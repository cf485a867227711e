"""Interleaving scenarios: TOML data (never code) describing a race to explore.

A scenario gives the machine (cpus, arch, kernel era, fix toggles switched off, tunables), the
initial processes with their mappings and page contents (set up sequentially before the race),
one program per thread (syscalls, user loads and stores, or a kernel actor: the OOM reaper,
writeback, page migration), the bounds, and the expected outcome in the style of LKMM litmus
tests: ``never = true`` (no interleaving violates any invariant) or
``sometimes = ["I1", ...]`` (in some interleaving these invariant groups are violated).

Every malformed input is reported as one :class:`ScenarioError` line naming the file, the line
when it can be found, and the field: ``99baac.toml:14: thread[1].program[0].advice: unknown
advice 'MADV_DONTNEDE'``.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from unmapcheck.impl import constants as C
from unmapcheck.impl.cpu import ARCHES
from unmapcheck.impl.fixes import ERAS, FIXES, resolve_commit
from unmapcheck.spec.invariants import GROUPS


class ScenarioError(Exception):
    """A one-line description of what is wrong with a scenario, and where."""


SYSCALL_OPS = ("mmap", "munmap", "mprotect", "madvise", "mlock", "munlock", "fork", "exec",
               "exit")
USER_OPS = ("load", "store")
ACTORS = ("oom_reaper", "writeback", "migrate")
POPULATE = ("none", "read", "write")

_PROT = {"r": C.PROT_READ, "w": C.PROT_WRITE, "x": C.PROT_EXEC}


@dataclass
class Mapping:
    addr: int
    pages: int
    prot: int
    shared: bool
    file: Optional[str]
    offset: int
    populate: str
    populate_cpu: int
    mlock: bool
    data: dict[int, int]


@dataclass
class ProcessSpec:
    name: str
    mappings: list[Mapping]
    oom_victim: bool = False
    fork_of: Optional[str] = None


@dataclass
class FileSpec:
    name: str
    size: int
    data: dict[int, int]
    shmem: bool = True


@dataclass
class Op:
    op: str
    args: dict[str, Any]
    where: str

    def describe(self) -> str:
        parts = []
        for k, v in self.args.items():
            if k in ("addr", "len") and isinstance(v, int):
                parts.append(f"{k}={v:#x}")
            elif k == "advice":
                parts.append(_constant_name("MADV_", v))
            elif k == "prot":
                parts.append(_flags_text("PROT_", v, "PROT_NONE"))
            elif k == "flags":
                parts.append(_flags_text("MAP_", v, "0"))
            else:
                parts.append(f"{k}={v}")
        return f"{self.op}({', '.join(parts)})"


def _constant_name(prefix: str, value: int) -> str:
    for name in dir(C):
        if name.startswith(prefix) and getattr(C, name) == value:
            return name
    return str(value)


def _flags_text(prefix: str, value: int, zero: str) -> str:
    names = [n for n in dir(C) if n.startswith(prefix) and getattr(C, n) and
             bin(getattr(C, n)).count("1") == 1 and value & getattr(C, n)]
    return "|".join(sorted(names)) if names else zero


@dataclass
class ThreadSpec:
    name: str
    cpu: int
    process: Optional[str]
    actor: Optional[str]
    program: list[Op]
    target: dict[str, Any] = field(default_factory=dict)


@dataclass
class Scenario:
    path: str
    name: str
    description: str
    cpus: int
    arch: str
    era: str
    fixes_off: list[str]
    tunables: dict[str, int]
    files: list[FileSpec]
    processes: list[ProcessSpec]
    threads: list[ThreadSpec]
    preemptions: Optional[int]
    max_steps: int
    max_executions: int
    expect_never: bool
    expect_sometimes: list[str]
    text: str = ""
    variants: list["Variant"] = field(default_factory=list)
    # Litmus-style conditions over the outcome (checker/litmus.py): [expect] exists /
    # not_exists / forall.
    outcome_expect: list = field(default_factory=list)

    def with_fixes_off(self, extra: list[str]) -> "Scenario":
        """The scenario with more fixes switched off, and the expectation that goes with that
        set of fixes (an ``[[expect.without]]`` entry), or no expectation if none matches."""
        import copy
        s = copy.copy(self)
        s.fixes_off = sorted(set(self.fixes_off) | set(extra))
        if set(s.fixes_off) != set(self.fixes_off):
            match = [v for v in self.variants if set(v.fixes) == set(extra)]
            if match:
                s.expect_never, s.expect_sometimes = match[0].never, list(match[0].sometimes)
                s.outcome_expect = list(match[0].outcomes)
            else:
                s.expect_never, s.expect_sometimes, s.outcome_expect = False, [], []
        return s

    def has_expectation(self) -> bool:
        return self.expect_never or bool(self.expect_sometimes) or bool(self.outcome_expect)

    def needs_every_outcome(self) -> bool:
        """Does judging the expectation need the whole (bounded) space explored, rather
        than stopping at the first bound that violates what ``sometimes`` names?"""
        return self.expect_never or bool(self.outcome_expect)


@dataclass
class Variant:
    """``[[expect.without]]``: what to expect when these fixes are switched off."""

    fixes: list[str]
    never: bool
    sometimes: list[str]
    outcomes: list = field(default_factory=list)


# --- parsing helpers ---------------------------------------------------------------------------
class _Ctx:
    def __init__(self, path: str, text: str):
        self.path = path
        self.lines = text.splitlines()

    def line_of(self, key: str) -> Optional[int]:
        pat = re.compile(r"^\s*" + re.escape(key) + r"\s*=")
        for i, line in enumerate(self.lines, 1):
            if pat.search(line):
                return i
        return None

    def fail(self, where: str, msg: str, key: Optional[str] = None) -> ScenarioError:
        line = self.line_of(key) if key else None
        loc = f"{self.path}:{line}" if line else self.path
        return ScenarioError(f"{loc}: {where}: {msg}")


def _int(ctx: _Ctx, where: str, key: str, v: Any, lo: Optional[int] = None,
         hi: Optional[int] = None) -> int:
    if isinstance(v, bool):
        raise ctx.fail(where, f"expected an integer, got {v!r}", key)
    if isinstance(v, str):
        try:
            v = int(v, 0)
        except ValueError:
            raise ctx.fail(where, f"expected an integer, got {v!r}", key) from None
    if not isinstance(v, int):
        raise ctx.fail(where, f"expected an integer, got {type(v).__name__}", key)
    if lo is not None and v < lo:
        raise ctx.fail(where, f"must be at least {lo}, got {v}", key)
    if hi is not None and v > hi:
        raise ctx.fail(where, f"must be at most {hi}, got {v}", key)
    return v


def _prot(ctx: _Ctx, where: str, v: Any) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str):
        if v in ("none", "---", ""):
            return C.PROT_NONE
        if all(ch in "rwx-" for ch in v):
            return sum(_PROT[ch] for ch in set(v) if ch != "-")
        names = [n.strip() for n in v.split("|")]
        if all(hasattr(C, n) and n.startswith("PROT_") for n in names):
            return sum(getattr(C, n) for n in names)
    raise ctx.fail(where, f"expected a protection like \"rw\" or \"PROT_READ|PROT_WRITE\", "
                   f"got {v!r}", where.rsplit(".", 1)[-1])


def _named(ctx: _Ctx, where: str, v: Any, prefix: str) -> int:
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if isinstance(v, str):
        total = 0
        for n in v.split("|"):
            n = n.strip()
            if not n.startswith(prefix):
                n = prefix + n.upper()
            if not hasattr(C, n):
                raise ctx.fail(where, f"unknown {prefix.rstrip('_')} value {v!r}",
                               where.rsplit(".", 1)[-1])
            total |= getattr(C, n)
        return total
    raise ctx.fail(where, f"expected a name or an integer, got {v!r}", where.rsplit(".", 1)[-1])


def _table(ctx: _Ctx, where: str, obj: Any, allowed: set[str], named: bool = True) -> dict:
    """An entry of an array of tables: a table, with only *allowed* fields, and (if *named*)
    a string ``name``."""
    if not isinstance(obj, dict):
        raise ctx.fail(where, "expected a table")
    _only(ctx, where, obj, allowed)
    if named and not isinstance(obj.get("name"), str):
        raise ctx.fail(f"{where}.name", "missing or not a string", "name")
    return obj


def _only(ctx: _Ctx, where: str, table: dict, allowed: set[str]) -> None:
    for k in table:
        if k not in allowed:
            raise ctx.fail(where, f"unknown field {k!r} (allowed: {', '.join(sorted(allowed))})",
                           k)


def _data(ctx: _Ctx, where: str, v: Any) -> dict[int, int]:
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ctx.fail(where, "expected a table of page index = byte value", "data")
    out = {}
    for k, b in v.items():
        try:
            idx = int(k, 0)
        except ValueError:
            raise ctx.fail(where, f"page index {k!r} is not an integer", "data") from None
        out[idx] = _int(ctx, f"{where}[{k}]", "data", b, 0, 255)
    return out


# --- the loader ---------------------------------------------------------------------------------
def load(path: str | Path) -> Scenario:
    path = str(path)
    try:
        text = Path(path).read_text()
    except OSError as e:
        raise ScenarioError(f"{path}: cannot read: {e.strerror}") from None
    return parse(text, path)


def parse(text: str, path: str = "<scenario>") -> Scenario:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ScenarioError(f"{path}: not valid TOML: {e}") from None
    ctx = _Ctx(path, text)
    _only(ctx, "scenario file", doc, {"scenario", "tunables", "file", "process", "thread",
                                       "bounds", "expect"})
    top = doc.get("scenario")
    if not isinstance(top, dict):
        raise ctx.fail("scenario", "missing [scenario] table")
    _only(ctx, "scenario", top, {"name", "description", "cpus", "arch", "era", "fixes_off"})
    name = top.get("name")
    if not isinstance(name, str) or not name:
        raise ctx.fail("scenario.name", "missing or not a string", "name")
    cpus = _int(ctx, "scenario.cpus", "cpus", top.get("cpus", 2), 1, 8)
    arch = top.get("arch", "x86")
    if arch not in ARCHES:
        raise ctx.fail("scenario.arch", f"unknown arch {arch!r} (known: {', '.join(ARCHES)})",
                       "arch")
    era = top.get("era", "6.18")
    if era not in ERAS:
        raise ctx.fail("scenario.era", f"unknown era {era!r} (known: {', '.join(ERAS)})", "era")
    fixes_off = []
    for i, c in enumerate(top.get("fixes_off", [])):
        try:
            fixes_off.append(resolve_commit(str(c)))
        except ValueError as e:
            raise ctx.fail(f"scenario.fixes_off[{i}]", str(e), "fixes_off") from None
    for c in fixes_off:
        if FIXES[c].era != "6.18" and FIXES[c].era != era:
            raise ctx.fail("scenario.fixes_off", f"fix {c} lives in the {FIXES[c].era} era of "
                           f"the code; set era = \"{FIXES[c].era}\"", "fixes_off")

    tunables = {}
    from unmapcheck.impl.machine import Tunables
    allowed_tunables = set(Tunables.__dataclass_fields__)
    for k, v in (doc.get("tunables") or {}).items():
        if k not in allowed_tunables:
            raise ctx.fail(f"tunables.{k}", f"unknown tunable (known: "
                           f"{', '.join(sorted(allowed_tunables))})", k)
        tunables[k] = _int(ctx, f"tunables.{k}", k, v, 1)

    files = []
    for i, f in enumerate(doc.get("file", [])):
        w = f"file[{i}]"
        _table(ctx, w, f, {"name", "size", "data", "shmem"})
        if not isinstance(f.get("shmem", True), bool):
            raise ctx.fail(f"{w}.shmem", "expected true (a memfd) or false (a regular file)",
                           "shmem")
        files.append(FileSpec(f["name"], _int(ctx, f"{w}.size", "size", f.get("size", 0), 0),
                              _data(ctx, f"{w}.data", f.get("data")), f.get("shmem", True)))
    file_names = {f.name for f in files}

    processes = []
    for i, p in enumerate(doc.get("process", [])):
        w = f"process[{i}]"
        _table(ctx, w, p, {"name", "mapping", "oom_victim", "fork_of"})
        fork_of = p.get("fork_of")
        if fork_of is not None and fork_of not in {q.name for q in processes}:
            raise ctx.fail(f"{w}.fork_of", f"no earlier process named {fork_of!r}", "fork_of")
        maps = []
        for j, m in enumerate(p.get("mapping", [])):
            mw = f"{w}.mapping[{j}]"
            _table(ctx, mw, m, {"addr", "pages", "prot", "shared", "file", "offset", "populate",
                               "populate_cpu", "mlock", "data"}, named=False)
            file = m.get("file")
            if file is not None and file not in file_names:
                raise ctx.fail(f"{mw}.file", f"no file named {file!r}", "file")
            populate = m.get("populate", "none")
            if populate not in POPULATE:
                raise ctx.fail(f"{mw}.populate", f"expected one of {', '.join(POPULATE)}",
                               "populate")
            addr = _int(ctx, f"{mw}.addr", "addr", m.get("addr"), 0)
            if addr % C.PAGE_SIZE:
                raise ctx.fail(f"{mw}.addr", f"{addr:#x} is not page aligned", "addr")
            maps.append(Mapping(
                addr=addr, pages=_int(ctx, f"{mw}.pages", "pages", m.get("pages", 1), 1, 1 << 36),
                prot=_prot(ctx, f"{mw}.prot", m.get("prot", "rw")),
                shared=bool(m.get("shared", False)), file=file,
                offset=_int(ctx, f"{mw}.offset", "offset", m.get("offset", 0), 0),
                populate=populate,
                populate_cpu=_int(ctx, f"{mw}.populate_cpu", "populate_cpu",
                                  m.get("populate_cpu", 0), 0, cpus - 1),
                mlock=bool(m.get("mlock", False)), data=_data(ctx, f"{mw}.data", m.get("data"))))
        processes.append(ProcessSpec(p["name"], maps, bool(p.get("oom_victim", False)),
                                     fork_of))
    proc_names = {p.name for p in processes}

    threads = []
    for i, t in enumerate(doc.get("thread", [])):
        w = f"thread[{i}]"
        _table(ctx, w, t, {"name", "cpu", "process", "actor", "program", "file", "index",
                           "addr"}, named=False)
        tname = t.get("name", f"T{i}")
        cpu = _int(ctx, f"{w}.cpu", "cpu", t.get("cpu", i % cpus), 0, cpus - 1)
        actor = t.get("actor")
        process = t.get("process")
        if actor is not None and actor not in ACTORS:
            raise ctx.fail(f"{w}.actor", f"unknown actor {actor!r} (known: {', '.join(ACTORS)})",
                           "actor")
        if process is not None and process not in proc_names:
            raise ctx.fail(f"{w}.process", f"no process named {process!r}", "process")
        target: dict[str, Any] = {}
        program: list[Op] = []
        if actor is None:
            if process is None:
                raise ctx.fail(f"{w}.process", "a user thread needs a process", "process")
            for j, op in enumerate(t.get("program", [])):
                program.append(_op(ctx, f"{w}.program[{j}]", op, cpus))
        elif actor == "writeback":
            if t.get("file") not in file_names:
                raise ctx.fail(f"{w}.file", "the writeback actor needs an existing file", "file")
            target = {"file": t["file"], "index": _int(ctx, f"{w}.index", "index",
                                                       t.get("index", 0), 0)}
        elif actor in ("oom_reaper", "migrate"):
            if process is None:
                raise ctx.fail(f"{w}.process", f"the {actor} actor needs a target process",
                               "process")
            if actor == "migrate":
                target = {"addr": _int(ctx, f"{w}.addr", "addr", t.get("addr"), 0)}
        threads.append(ThreadSpec(tname, cpu, process, actor, program, target))
    if not threads:
        raise ctx.fail("thread", "a scenario needs at least one [[thread]]")

    bounds = doc.get("bounds") or {}
    _only(ctx, "bounds", bounds, {"preemptions", "steps", "executions"})
    preemptions = bounds.get("preemptions")
    if preemptions is not None:
        preemptions = _int(ctx, "bounds.preemptions", "preemptions", preemptions, 0, 64)
    max_steps = _int(ctx, "bounds.steps", "steps", bounds.get("steps", 5000), 1)
    max_exec = _int(ctx, "bounds.executions", "executions", bounds.get("executions", 200000), 1)

    expect = doc.get("expect")
    if not isinstance(expect, dict):
        raise ctx.fail("expect", "missing [expect] table (never = true, or sometimes = [...])")
    _only(ctx, "expect", expect, {"never", "sometimes", "without"} | set(QUANTIFIERS))
    never, sometimes = _expectation(ctx, "expect", expect)
    outcome_expect = _outcome_expectations(ctx, "expect", expect, threads)
    variants = []
    for i, w in enumerate(expect.get("without", [])):
        ww = f"expect.without[{i}]"
        if not isinstance(w, dict):
            raise ctx.fail(ww, "expected a table with fixes = [...] and never/sometimes")
        _only(ctx, ww, w, {"fixes", "never", "sometimes"} | set(QUANTIFIERS))
        fixes = []
        for c in w.get("fixes", []):
            try:
                fixes.append(resolve_commit(str(c)))
            except ValueError as e:
                raise ctx.fail(f"{ww}.fixes", str(e), "fixes") from None
        if not fixes:
            raise ctx.fail(f"{ww}.fixes", "name at least one fix commit", "fixes")
        v_never, v_sometimes = _expectation(ctx, ww, w)
        variants.append(Variant(fixes, v_never, v_sometimes,
                                _outcome_expectations(ctx, ww, w, threads)))
    return Scenario(path, name, str(top.get("description", "")), cpus, arch, era, fixes_off,
                    tunables, files, processes, threads, preemptions, max_steps, max_exec,
                    never, list(sometimes), text, variants, outcome_expect)


def _expectation(ctx: _Ctx, where: str, table: dict) -> tuple[bool, list[str]]:
    never = table.get("never", False)
    if not isinstance(never, bool):
        raise ctx.fail(f"{where}.never", "expected true or false", "never")
    sometimes = table.get("sometimes", [])
    if not isinstance(sometimes, list):
        raise ctx.fail(f"{where}.sometimes", "expected a list of invariant names", "sometimes")
    if never and sometimes:
        raise ctx.fail(where, "give never = true or sometimes = [...], not both", "never")
    if not never and not sometimes and not any(q in table for q in QUANTIFIERS):
        raise ctx.fail(where, "give never = true, sometimes = [...], or an outcome condition "
                       "(exists, not_exists, forall)", "never")
    for g in sometimes:
        if g not in GROUPS and g not in ("DEADLOCK", "BUG", "LOCK"):
            raise ctx.fail(f"{where}.sometimes", f"unknown invariant {g!r} (known: "
                           f"{', '.join(list(GROUPS) + ['DEADLOCK', 'BUG', 'LOCK'])})",
                           "sometimes")
    return never, list(sometimes)


QUANTIFIERS = ("exists", "not_exists", "forall")


def _outcome_expectations(ctx: _Ctx, where: str, table: dict, threads: list) -> list:
    """``exists`` / ``not_exists`` / ``forall``: a condition (a string) or a list of them,
    parsed as data by checker/litmus.py; every THREAD[INDEX] it names must be an op of
    that thread's program (an actor thread has one result, index 0)."""
    sizes = {t.name: (len(t.program) if t.actor is None else 1) for t in threads}
    out = []
    for q in QUANTIFIERS:
        if q not in table:
            continue
        from .litmus import ConditionError, OutcomeExpectation, parse_condition
        v = table[q]
        texts = v if isinstance(v, list) else [v]
        if not texts or not all(isinstance(x, str) for x in texts):
            raise ctx.fail(f"{where}.{q}", "expected a condition string (or a list of them), "
                           "like \"T0[1] == 0x41\"", q)
        for i, text in enumerate(texts):
            w = f"{where}.{q}" + (f"[{i}]" if isinstance(v, list) else "")
            try:
                cond = parse_condition(text)
            except ConditionError as e:
                raise ctx.fail(w, str(e), q) from None
            for thread, index in sorted(cond.refs()):
                if thread not in sizes:
                    raise ctx.fail(w, f"no thread named {thread!r}", q)
                if index >= sizes[thread]:
                    raise ctx.fail(w, f"{thread}[{index}]: thread {thread} has "
                                   f"{sizes[thread]} op(s) (indices from 0)", q)
            out.append(OutcomeExpectation(q, cond))
    return out


_OP_FIELDS = {
    "mmap": {"addr", "len", "prot", "flags", "file", "offset"},
    "munmap": {"addr", "len"},
    "mprotect": {"addr", "len", "prot"},
    "madvise": {"addr", "len", "advice"},
    "mlock": {"addr", "len"},
    "munlock": {"addr", "len"},
    "fork": set(), "exec": set(), "exit": set(),
    "load": {"addr"},
    "store": {"addr", "value"},
}


def _op(ctx: _Ctx, where: str, op: Any, cpus: int) -> Op:
    if not isinstance(op, dict):
        raise ctx.fail(where, "expected an inline table like { op = \"load\", addr = 0x1000 }")
    kind = op.get("op")
    if kind not in _OP_FIELDS:
        raise ctx.fail(f"{where}.op", f"unknown op {kind!r} (known: {', '.join(_OP_FIELDS)})",
                       "op")
    fields = {k: v for k, v in op.items() if k != "op"}
    _only(ctx, where, fields, _OP_FIELDS[kind])
    args: dict[str, Any] = {}
    for k, v in fields.items():
        fw = f"{where}.{k}"
        if k == "prot":
            args[k] = _prot(ctx, fw, v)
        elif k == "flags":
            args[k] = _named(ctx, fw, v, "MAP_")
        elif k == "advice":
            args[k] = _named(ctx, fw, v, "MADV_")
        elif k == "file":
            args[k] = str(v)
        elif k == "value":
            args[k] = _int(ctx, fw, k, v, 0, 255)
        else:
            args[k] = _int(ctx, fw, k, v, 0, (1 << 64) - 1)
    for need in _OP_FIELDS[kind] - {"offset", "file"}:
        if need not in args:
            raise ctx.fail(f"{where}.{need}", f"{kind} needs {need}", "op")
    return Op(kind, args, where)
