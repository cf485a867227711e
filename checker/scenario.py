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

What the loader accepts can be set up and run: it checks, up front,

* the bytes (UTF-8) and the TOML, nested at most 32 deep;
* every value's type (booleans are ``true``/``false``, never a string or a number; a table
  where an array is expected, or the reverse, is an error) and range (bounds: steps up to
  10**6, executions up to 10**9, preemptions up to 64; cpus 1 to 8; op addresses and lengths
  are unsigned longs; a byte is 0..255; the tunables' own ranges);
* names: processes, files and threads have unique, non-empty, printable names;
* references: a mapping's or an mmap op's file is declared, a thread's process exists, the
  OOM reaper's process is an ``oom_victim``, a writeback index lies within its file;
* ``exit`` is the last thread of a process leaving: nothing follows it in its thread, and no
  other thread of that process runs ops (it would run on a process that has gone);
* the initial state: a mapping is page aligned and ends at or below TASK_SIZE, does not
  overlap another mapping of its process (inherited ones included: MAP_FIXED would replace it
  silently), its ``data`` pages lie inside it, the pages the setup touches (populate, mlock,
  data) lie inside the file and are at most 512, populate and data have the access they need.

What the model alone can answer (an mmap or mlock of the setup failing) is reported by
checker/setup.py as the same one line, naming the mapping.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from unmapcheck.impl import constants as C
from unmapcheck.impl.cpu import ARCHES, VENDORS
from unmapcheck.impl.sched import CHOICE_KINDS
from unmapcheck.impl.fixes import ERAS, FIXES, resolve_commit
from unmapcheck.spec.invariants import GROUPS


class ScenarioError(Exception):
    """A one-line description of what is wrong with a scenario, and where."""


SYSCALL_OPS = ("mmap", "munmap", "mprotect", "madvise", "mlock", "munlock", "mlockall",
               "munlockall", "pwrite", "fork", "exec", "exit", "gup_fast", "context_switch")
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
    where: str = ""                 # process[i].mapping[j]
    line: Optional[int] = None      # its line in the file, if known


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
    line: Optional[int] = None      # its line in the file, if known

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
    # x86 only: whose INVLPG semantics the CPUs have (impl/cpu.py invlpg).
    vendor: str = "intel"
    # The kinds of nondeterministic branch switched on (impl/sched.py CHOICE_KINDS), and
    # how many of them one execution may take the failing side of.
    choices: tuple = ()
    max_choices: int = 1
    # The plan of one exploration: the (thread, k) branches that take the failing side
    # (set by the explorer, checker/explore.py explore_choices; recorded in traces).
    inject: frozenset = frozenset()

    def with_inject(self, plan) -> "Scenario":
        """The scenario with the branches of *plan* ((thread, k) pairs) taking the failing
        side."""
        import copy
        s = copy.copy(self)
        s.inject = frozenset(tuple(p) for p in plan)
        return s

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


# --- limits --------------------------------------------------------------------------------------
MAX_NAME = 100                  # characters in a name
MAX_STEPS = 10**6               # bounds.steps: steps of one execution
MAX_EXECUTIONS = 10**9          # bounds.executions
MAX_PREEMPTIONS = 64            # bounds.preemptions
MAX_CPUS = 8
MAX_FILE_SIZE = 1 << 40         # bytes (the setup maps a file whole to write its data)
MAX_TOUCHED_PAGES = 512         # pages of a mapping the setup touches (populate, mlock): a
                                # PTE table's worth (invariants are checked over every page
                                # at every step)
MAX_DEPTH = 32                  # nesting of tables and arrays in the document
ULONG_MAX = (1 << 64) - 1


# --- parsing helpers ---------------------------------------------------------------------------
def _show(v: Any, limit: int = 60) -> str:
    """A value for an error message: its repr (which escapes control characters), short."""
    try:
        text = repr(v)
    except RecursionError:                      # pragma: no cover - depth is checked first
        text = f"<a {type(v).__name__} nested too deeply>"
    except ValueError:                          # an int too long to print in decimal
        text = f"<an integer of {v.bit_length()} bits>"
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _kind(v: Any) -> str:
    """What a TOML value is, in TOML's words."""
    if isinstance(v, bool):
        return f"a boolean ({str(v).lower()})"
    if isinstance(v, int):
        return f"an integer ({_show(v)})"
    if isinstance(v, float):
        return f"a float ({_show(v)})"
    if isinstance(v, str):
        return f"a string ({_show(v)})"
    if isinstance(v, dict):
        return "a table"
    if isinstance(v, list):
        return "an array"
    return f"a {type(v).__name__} ({_show(v)})"


def _one_line(text: str) -> str:
    """Escape whatever could break the one line (a newline, a control character, a lone
    surrogate from undecodable input)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else
                   ch.encode("unicode_escape", "backslashreplace").decode("ascii")
                   for ch in text)


_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\s\"'-]+?)\s*\]\]?")


class _Ctx:
    def __init__(self, path: str, text: str):
        self.path = path
        self.lines = text.splitlines()
        # Table headers ([name] and [[name]]), in order: (line number, name, is an array).
        self.headers: list[tuple[int, str, bool]] = []
        for i, line in enumerate(self.lines, 1):
            m = _HEADER.match(line)
            if m:
                self.headers.append((i, re.sub(r"[\s\"']+", "", m.group(2)),
                                     m.group(1) == "[["))

    def line_of(self, key: str, start: int = 0, end: Optional[int] = None) -> Optional[int]:
        """The first line in [start, end) (0-based indices) that assigns *key*."""
        pat = re.compile(r"^\s*" + re.escape(key) + r"\s*=|[{,]\s*" + re.escape(key) + r"\s*=")
        for i in range(start, len(self.lines) if end is None else end):
            if pat.search(self.lines[i]):
                return i + 1
        return None

    def _section(self, where: str) -> Optional[tuple[int, Optional[int]]]:
        """The lines [header, next header) of the table *where* names (``thread[2]``,
        ``process[0].mapping[1]``, ``expect.without[0]``, ``bounds`` ...), when it is
        written with a header; 1-based."""
        if where == "scenario file":
            return (0, self.headers[0][0] if self.headers else None)
        lo, hi = 0, None                        # the window the next part is looked for in
        found: Optional[int] = None
        name = ""
        for part, index in re.findall(r"([A-Za-z_]+)(?:\[(\d+)\])?", where.split(" ")[0]):
            name = f"{name}.{part}" if name else part
            inside = [(ln, n, arr) for ln, n, arr in self.headers
                      if n == name and ln > lo and (hi is None or ln < hi)]
            if index:
                entries = [ln for ln, _, arr in inside if arr]
                if int(index) >= len(entries):
                    break
                k = int(index)
                found = lo = entries[k]
                hi = entries[k + 1] if k + 1 < len(entries) else hi
            else:
                tables = [ln for ln, _, arr in inside if not arr]
                if not tables:
                    break
                found = lo = tables[0]
        if found is None:
            return None
        return found, next((ln for ln, _, _ in self.headers if ln > found), None)

    def locate(self, where: str, key: Optional[str]) -> Optional[int]:
        """The line of *key* in the table *where* names, else that table's header line,
        else the first line assigning *key* anywhere."""
        sec = self._section(where)
        if sec is not None:
            line = self.line_of(key, sec[0], None if sec[1] is None else sec[1] - 1) \
                if key else None
            return line or sec[0] or None
        return self.line_of(key) if key else None

    def fail(self, where: str, msg: str, key: Optional[str] = None) -> ScenarioError:
        line = self.locate(where, key)
        loc = f"{self.path}:{line}" if line else self.path
        return ScenarioError(_one_line(f"{loc}: {where}: {msg}"))


def _int(ctx: _Ctx, where: str, key: str, v: Any, lo: Optional[int] = None,
         hi: Optional[int] = None) -> int:
    if isinstance(v, str):
        try:
            v = int(v, 0)
        except ValueError:
            raise ctx.fail(where, f"expected an integer, got {_kind(v)}", key) from None
    if isinstance(v, bool) or not isinstance(v, int):
        raise ctx.fail(where, f"expected an integer, got {_kind(v)}", key)
    if lo is not None and v < lo:
        raise ctx.fail(where, f"must be at least {lo}, got {_show(v)}", key)
    if hi is not None and v > hi:
        raise ctx.fail(where, f"must be at most {_num(hi)}, got {_show(v)}", key)
    return v


def _num(n: int) -> str:
    return f"{n:#x}" if n > 1 << 32 else str(n)


def _bool(ctx: _Ctx, where: str, key: str, v: Any, what: str = "") -> bool:
    if not isinstance(v, bool):
        raise ctx.fail(where, f"expected true or false{what}, got {_kind(v)}", key)
    return v


def _str(ctx: _Ctx, where: str, key: str, v: Any, what: str = "a string") -> str:
    if not isinstance(v, str):
        raise ctx.fail(where, f"expected {what}, got {_kind(v)}", key)
    return v


def _name(ctx: _Ctx, where: str, key: str, v: Any) -> str:
    """A name: a non-empty string of printable characters, without surrounding spaces."""
    if not isinstance(v, str):
        raise ctx.fail(where, f"expected a name (a non-empty string), got {_kind(v)}", key)
    if not v:
        raise ctx.fail(where, "a name must not be empty", key)
    if len(v) > MAX_NAME:
        raise ctx.fail(where, f"a name has at most {MAX_NAME} characters, got {len(v)}", key)
    if not v.isprintable():
        raise ctx.fail(where, f"a name must be printable characters, got {_show(v)}", key)
    if v != v.strip():
        raise ctx.fail(where, f"a name must not begin or end with a space, got {_show(v)}",
                       key)
    return v


def _choice(ctx: _Ctx, where: str, key: str, v: Any, known, what: str) -> str:
    if not isinstance(v, str) or v not in known:
        raise ctx.fail(where, f"unknown {what} {_show(v)} (known: {', '.join(known)})", key)
    return v


def _prot(ctx: _Ctx, where: str, v: Any) -> int:
    key = where.rsplit(".", 1)[-1]
    if isinstance(v, int) and not isinstance(v, bool):
        return _int(ctx, where, key, v, 0, ULONG_MAX)
    if isinstance(v, str):
        if v in ("none", "---", ""):
            return C.PROT_NONE
        if all(ch in "rwx-" for ch in v):
            return sum(_PROT[ch] for ch in set(v) if ch != "-")
        names = [n.strip() for n in v.split("|")]
        if all(hasattr(C, n) and n.startswith("PROT_") for n in names):
            total = 0
            for n in names:
                total |= getattr(C, n)
            return total
    raise ctx.fail(where, f"expected a protection like \"rw\" or \"PROT_READ|PROT_WRITE\", "
                   f"got {_kind(v)}", key)


def _named(ctx: _Ctx, where: str, v: Any, prefix: str, hi: int = ULONG_MAX) -> int:
    key = where.rsplit(".", 1)[-1]
    if isinstance(v, int) and not isinstance(v, bool):
        return _int(ctx, where, key, v, 0, hi)
    if isinstance(v, str):
        total = 0
        for n in v.split("|"):
            n = n.strip()
            if not n.startswith(prefix):
                n = prefix + n.upper()
            value = getattr(C, n, None) if n.isidentifier() else None
            if not isinstance(value, int) or isinstance(value, bool):
                raise ctx.fail(where, f"unknown {prefix.rstrip('_')} value {_show(v)}", key)
            total |= value
        return total
    raise ctx.fail(where, f"expected a name or an integer, got {_kind(v)}", key)


def _table(ctx: _Ctx, where: str, obj: Any, allowed: set[str], named: bool = True,
           what: str = "a table") -> dict:
    """A table, with only *allowed* fields, and (if *named*) a ``name``."""
    if not isinstance(obj, dict):
        raise ctx.fail(where, f"expected {what}, got {_kind(obj)}")
    _only(ctx, where, obj, allowed)
    if named:
        if "name" not in obj:
            raise ctx.fail(f"{where}.name", "missing (every entry needs a name)")
        _name(ctx, f"{where}.name", "name", obj["name"])
    return obj


def _tables(ctx: _Ctx, where: str, v: Any, header: str) -> list:
    """An array of tables (``[[header]]`` entries, or an array of inline tables)."""
    if v is None:
        return []
    if not isinstance(v, list):
        raise ctx.fail(where, f"expected an array of tables ([[{header}]] entries), got "
                       f"{_kind(v)}", where.rsplit(".", 1)[-1])
    for i, x in enumerate(v):
        if not isinstance(x, dict):
            raise ctx.fail(f"{where}[{i}]", f"expected a table (a [[{header}]] entry), got "
                           f"{_kind(x)}", where.rsplit(".", 1)[-1])
    return v


def _list(ctx: _Ctx, where: str, key: str, v: Any, what: str) -> list:
    if not isinstance(v, list):
        raise ctx.fail(where, f"expected {what}, got {_kind(v)}", key)
    return v


def _only(ctx: _Ctx, where: str, table: dict, allowed: set[str]) -> None:
    for k in table:
        if k not in allowed:
            raise ctx.fail(where, f"unknown field {_show(k)} (allowed: "
                           f"{', '.join(sorted(allowed))})", k)


def _data(ctx: _Ctx, where: str, v: Any, pages: int, what: str) -> dict[int, int]:
    """``data = { INDEX = BYTE, ... }``: the first byte of page INDEX (0 .. pages-1)."""
    if v is None:
        return {}
    if not isinstance(v, dict):
        raise ctx.fail(where, f"expected a table of page index = byte value, got {_kind(v)}",
                       "data")
    out: dict[int, int] = {}
    for k, b in v.items():
        kw = f"{where}[{k}]" if re.fullmatch(r"[-\w]{1,24}", k, re.ASCII) else \
            f"{where}[{_show(k, 24)}]"
        try:
            idx = int(k, 0)
        except ValueError:
            raise ctx.fail(kw, f"page index {_show(k)} is not an integer", "data") from None
        if not 0 <= idx < pages:
            raise ctx.fail(kw, f"page index {_show(idx, 24)} is outside the {what} (pages 0 "
                           f"to {pages - 1})" if pages else
                           f"page index {_show(idx, 24)}: the {what} has no pages", "data")
        if idx in out:
            raise ctx.fail(kw, f"page {idx} is given twice", "data")
        out[idx] = _int(ctx, kw, "data", b, 0, 255)
    return out


def _depth(v: Any, limit: int) -> bool:
    """Is *v* nested at most *limit* deep (iteratively: no recursion on input)?"""
    stack = [(v, 0)]
    while stack:
        x, d = stack.pop()
        if d > limit:
            return False
        if isinstance(x, dict):
            stack.extend((y, d + 1) for y in x.values())
        elif isinstance(x, list):
            stack.extend((y, d + 1) for y in x)
    return True


def _pages(nbytes: int) -> int:
    return (nbytes + C.PAGE_SIZE - 1) // C.PAGE_SIZE


# --- the loader ---------------------------------------------------------------------------------
def load(path: str | Path) -> Scenario:
    path = str(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise ScenarioError(_one_line(f"{path}: cannot read: {e.strerror or e}")) from None
    return parse_bytes(data, path)


def parse_bytes(data: bytes, path: str = "<scenario>") -> Scenario:
    """Parse the bytes of a scenario file: UTF-8 TOML."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        raise ScenarioError(_one_line(
            f"{path}:{line}: not UTF-8: byte {data[e.start]:#04x} at offset {e.start} "
            f"({e.reason})")) from None
    return parse(text, path)


def parse(text: str, path: str = "<scenario>") -> Scenario:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        # "... (at line 3, column 7)": the line goes where every error has it
        m = re.search(r" \(at line (\d+), column (\d+)\)$", str(e))
        loc = f"{path}:{m.group(1)}" if m else path
        what = f"{str(e)[:m.start()]} (column {m.group(2)})" if m else str(e)
        raise ScenarioError(_one_line(f"{loc}: not valid TOML: {what}")) from None
    except RecursionError:
        raise ScenarioError(_one_line(f"{path}: not valid TOML: nested too deeply")) from None
    except ValueError as e:         # e.g. an integer of more than 4300 digits
        raise ScenarioError(_one_line(f"{path}: not valid TOML: {e}")) from None
    except TypeError as e:          # pragma: no cover - not a str
        raise ScenarioError(_one_line(f"{path}: not valid TOML: {e}")) from None
    ctx = _Ctx(path, text)
    if not _depth(doc, MAX_DEPTH):
        raise ctx.fail("scenario file", f"tables and arrays nested more than {MAX_DEPTH} "
                       f"deep")
    return _Loader(ctx, doc, text).scenario()


_MAPPING_FIELDS = {"addr", "pages", "prot", "shared", "file", "offset", "populate",
                   "populate_cpu", "mlock", "data"}
_THREAD_FIELDS = {
    None: {"name", "cpu", "process", "program"},
    "writeback": {"name", "cpu", "actor", "file", "index"},
    "oom_reaper": {"name", "cpu", "actor", "process"},
    "migrate": {"name", "cpu", "actor", "process", "addr"},
}


class _Loader:
    def __init__(self, ctx: _Ctx, doc: dict, text: str):
        self.ctx = ctx
        self.doc = doc
        self.text = text

    def fail(self, where: str, msg: str, key: Optional[str] = None) -> ScenarioError:
        return self.ctx.fail(where, msg, key)

    def scenario(self) -> Scenario:
        ctx, doc = self.ctx, self.doc
        _only(ctx, "scenario file", doc, {"scenario", "tunables", "file", "process", "thread",
                                           "bounds", "expect"})
        top = doc.get("scenario")
        if top is None:
            raise ctx.fail("scenario", "missing [scenario] table")
        if not isinstance(top, dict):
            raise ctx.fail("scenario", f"expected the [scenario] table, got {_kind(top)}",
                           "scenario")
        _only(ctx, "scenario", top, {"name", "description", "cpus", "arch", "era",
                                     "fixes_off", "vendor", "choices", "max_choices"})
        if "name" not in top:
            raise ctx.fail("scenario.name", "missing (the scenario needs a name)")
        name = _name(ctx, "scenario.name", "name", top["name"])
        description = _str(ctx, "scenario.description", "description",
                           top.get("description", ""))
        self.cpus = cpus = _int(ctx, "scenario.cpus", "cpus", top.get("cpus", 2), 1, MAX_CPUS)
        arch = _choice(ctx, "scenario.arch", "arch", top.get("arch", "x86"), ARCHES, "arch")
        era = _choice(ctx, "scenario.era", "era", top.get("era", "6.18"), ERAS, "era")
        vendor = _choice(ctx, "scenario.vendor", "vendor", top.get("vendor", "intel"), VENDORS,
                         "vendor")
        if vendor != "intel" and arch != "x86":
            raise ctx.fail("scenario.vendor", f"vendor {vendor!r} is an x86 vendor, but arch is "
                           f"{arch!r}", "vendor")
        choices = []
        for i, k in enumerate(_list(ctx, "scenario.choices", "choices", top.get("choices", []),
                                    "a list of branch kinds like [\"alloc\", \"enomem\", \"resched\"]")):
            k = _choice(ctx, f"scenario.choices[{i}]", "choices", k, CHOICE_KINDS, "choice kind")
            if k in choices:
                raise ctx.fail(f"scenario.choices[{i}]", f"{k!r} is listed twice", "choices")
            choices.append(k)
        max_choices = _int(ctx, "scenario.max_choices", "max_choices",
                           top.get("max_choices", 1), 1, 3)
        fixes_off = self.fixes("scenario.fixes_off", "fixes_off", top.get("fixes_off", []))
        for c in fixes_off:
            if FIXES[c].era != "6.18" and FIXES[c].era != era:
                raise ctx.fail("scenario.fixes_off", f"fix {c} lives in the {FIXES[c].era} era "
                               f"of the code; set era = \"{FIXES[c].era}\"", "fixes_off")
        self.tunables = self.tunables_table()
        self.files = self.file_specs()
        self.processes = self.process_specs()
        threads = self.thread_specs()
        preemptions, max_steps, max_exec = self.bounds()
        never, sometimes, outcome_expect, variants = self.expectations(threads)
        return Scenario(self.ctx.path, name, description, cpus, arch, era, fixes_off,
                        self.tunables, self.files, self.processes, threads, preemptions,
                        max_steps, max_exec, never, list(sometimes), self.text, variants,
                        outcome_expect, vendor, tuple(choices), max_choices)

    # --- [scenario] ---------------------------------------------------------------------
    def fixes(self, where: str, key: str, v: Any) -> list[str]:
        out: list[str] = []
        for i, c in enumerate(_list(self.ctx, where, key, v,
                                    "a list of fix commits like [\"99baac21e458\"]")):
            if not isinstance(c, str):
                raise self.fail(f"{where}[{i}]", f"expected a fix commit (a string), got "
                                f"{_kind(c)}", key)
            try:
                commit = resolve_commit(c)
            except ValueError:
                raise self.fail(f"{where}[{i}]", f"unknown fix commit {_show(c, 40)} (known: "
                                f"{', '.join(FIXES)})", key) from None
            if commit in out:
                raise self.fail(f"{where}[{i}]", f"fix {commit} is listed twice", key)
            out.append(commit)
        return out

    # --- [tunables] ----------------------------------------------------------------------
    def tunables_table(self) -> dict:
        from unmapcheck.impl.machine import Tunables
        ctx = self.ctx
        table = self.doc.get("tunables", {})
        if not isinstance(table, dict):
            raise ctx.fail("tunables", f"expected a table ([tunables]), got {_kind(table)}",
                           "tunables")
        fields = Tunables.__dataclass_fields__
        out: dict[str, Any] = {}
        for k, v in table.items():
            w = f"tunables.{_show(k, 40) if not k.isidentifier() else k}"
            if k not in fields:
                raise ctx.fail(w, f"unknown tunable (known: {', '.join(sorted(fields))})", k)
            if isinstance(fields[k].default, bool):
                out[k] = _bool(ctx, w, k, v)
            elif k == "fault_around_pages":
                n = _int(ctx, w, k, v, 1, 512)
                if n & (n - 1):
                    raise ctx.fail(w, f"must be a power of two (1 to 512), got {n}", k)
                out[k] = n
            elif k in ("dac_mmap_min_addr", "lsm_mmap_min_addr"):
                n = _int(ctx, w, k, v, 0, C.TASK_SIZE)
                out[k] = n
            elif k in ("max_map_count",):
                out[k] = _int(ctx, w, k, v, 1, 1 << 31)
            elif k == "swap_pages":
                out[k] = _int(ctx, w, k, v, 0, 1 << 20)
            elif k in ("rlimit_memlock", "rlimit_stack"):
                out[k] = _int(ctx, w, k, v, 0, ULONG_MAX)
            else:                               # the mmu_gather's capacities
                out[k] = _int(ctx, w, k, v, 1, 1 << 20)
        return out

    # --- [[file]] -----------------------------------------------------------------------
    def file_specs(self) -> list[FileSpec]:
        ctx = self.ctx
        files: list[FileSpec] = []
        for i, f in enumerate(_tables(ctx, "file", self.doc.get("file"), "file")):
            w = f"file[{i}]"
            _table(ctx, w, f, {"name", "size", "data", "shmem"})
            if f["name"] in {x.name for x in files}:
                raise ctx.fail(f"{w}.name", f"a second file named {_show(f['name'])}", "name")
            shmem = _bool(ctx, f"{w}.shmem", "shmem", f.get("shmem", True),
                          " (true: a memfd, false: a regular file)")
            size = _int(ctx, f"{w}.size", "size", f.get("size", 0), 0, MAX_FILE_SIZE)
            data = _data(ctx, f"{w}.data", f.get("data"), _pages(size), "file")
            files.append(FileSpec(f["name"], size, data, shmem))
        return files

    # --- [[process]] --------------------------------------------------------------------
    def process_specs(self) -> list[ProcessSpec]:
        ctx = self.ctx
        processes: list[ProcessSpec] = []
        # What each process has mapped once it is set up (inherited from fork_of, then its own).
        spans: dict[str, list[tuple[int, int, str]]] = {}
        for i, p in enumerate(_tables(ctx, "process", self.doc.get("process"), "process")):
            w = f"process[{i}]"
            _table(ctx, w, p, {"name", "mapping", "oom_victim", "fork_of"})
            pname = p["name"]
            if pname in spans:
                raise ctx.fail(f"{w}.name", f"a second process named {_show(pname)}", "name")
            fork_of = p.get("fork_of")
            if fork_of is not None:
                if not isinstance(fork_of, str) or fork_of not in spans:
                    raise ctx.fail(f"{w}.fork_of", f"no earlier process named {_show(fork_of)}",
                                   "fork_of")
            oom_victim = _bool(ctx, f"{w}.oom_victim", "oom_victim", p.get("oom_victim", False))
            have = [(lo, hi, o if o.endswith("(inherited)") else f"{o} (inherited)")
                    for lo, hi, o in spans[fork_of]] if fork_of is not None else []
            maps = []
            for j, m in enumerate(_tables(ctx, f"{w}.mapping", p.get("mapping"),
                                          "process.mapping")):
                mw = f"{w}.mapping[{j}]"
                mapping = self.mapping(mw, m)
                mapping.line = self.ctx.locate(mw, None)
                end = mapping.addr + mapping.pages * C.PAGE_SIZE
                for lo, hi, other in have:
                    if mapping.addr < hi and lo < end:
                        raise ctx.fail(f"{mw}.addr", f"{mapping.addr:#x}-{end:#x} overlaps "
                                       f"{other} ({lo:#x}-{hi:#x}) of process "
                                       f"{_show(pname)}", "addr")
                have.append((mapping.addr, end, mw))
                maps.append(mapping)
            spans[pname] = have
            processes.append(ProcessSpec(pname, maps, oom_victim, fork_of))
        return processes

    def mapping(self, mw: str, m: dict) -> Mapping:
        ctx = self.ctx
        _table(ctx, mw, m, _MAPPING_FIELDS, named=False)
        if "addr" not in m:
            raise ctx.fail(f"{mw}.addr", "missing (MAP_FIXED needs an address)")
        addr = _int(ctx, f"{mw}.addr", "addr", m["addr"], 0, C.TASK_SIZE)
        if addr % C.PAGE_SIZE:
            raise ctx.fail(f"{mw}.addr", f"{addr:#x} is not page aligned", "addr")
        max_pages = C.TASK_SIZE // C.PAGE_SIZE
        pages = _int(ctx, f"{mw}.pages", "pages", m.get("pages", 1), 1, max_pages)
        end = addr + pages * C.PAGE_SIZE
        if end > C.TASK_SIZE:
            raise ctx.fail(f"{mw}.pages", f"the mapping {addr:#x}-{end:#x} ends above "
                           f"TASK_SIZE ({C.TASK_SIZE:#x})", "pages")
        prot = _prot(ctx, f"{mw}.prot", m.get("prot", "rw"))
        shared = _bool(ctx, f"{mw}.shared", "shared", m.get("shared", False),
                       " (true: MAP_SHARED, false: MAP_PRIVATE)")
        file = m.get("file")
        fspec = None
        if file is not None:
            if not isinstance(file, str) or file not in {f.name for f in self.files}:
                raise ctx.fail(f"{mw}.file", f"no file named {_show(file)} (declare it with "
                               f"[[file]]; leave file out for an anonymous mapping)", "file")
            fspec = next(f for f in self.files if f.name == file)
        if "offset" in m and fspec is None:
            raise ctx.fail(f"{mw}.offset", "an offset needs a file (an anonymous mapping has "
                           "none)", "offset")
        offset = _int(ctx, f"{mw}.offset", "offset", m.get("offset", 0), 0, MAX_FILE_SIZE)
        if offset % C.PAGE_SIZE:
            raise ctx.fail(f"{mw}.offset", f"{offset:#x} is not page aligned", "offset")
        populate = _choice(ctx, f"{mw}.populate", "populate", m.get("populate", "none"),
                           POPULATE, "populate mode")
        populate_cpu = _int(ctx, f"{mw}.populate_cpu", "populate_cpu", m.get("populate_cpu", 0),
                            0, self.cpus - 1)
        mlock = _bool(ctx, f"{mw}.mlock", "mlock", m.get("mlock", False))
        data = _data(ctx, f"{mw}.data", m.get("data"), pages, "mapping")
        if (populate != "none" or mlock) and pages > MAX_TOUCHED_PAGES:
            what = "populated" if populate != "none" else "mlocked"
            raise ctx.fail(f"{mw}.pages", f"a {what} mapping has at most {MAX_TOUCHED_PAGES} "
                           f"pages (the setup touches each), got {pages}", "pages")
        if populate == "write" and not prot & C.PROT_WRITE:
            raise ctx.fail(f"{mw}.populate", "populate = \"write\" needs a writable mapping "
                           "(prot with w)", "populate")
        if populate == "read" and prot == C.PROT_NONE:
            raise ctx.fail(f"{mw}.populate", "populate = \"read\" needs a readable mapping "
                           "(prot with r)", "populate")
        if data and not prot & C.PROT_WRITE:
            raise ctx.fail(f"{mw}.data", "data is written by the setup: it needs a writable "
                           "mapping (prot with w)", "data")
        if fspec is not None:
            first = offset // C.PAGE_SIZE
            eof = _pages(fspec.size)
            touched = max(data, default=-1) + 1
            if populate != "none" or mlock:
                touched = pages
            if first + touched > eof:
                why = ("populate" if populate != "none" else "mlock" if mlock else "data")
                raise ctx.fail(f"{mw}.{why}", f"the setup would touch file page "
                               f"{first + touched - 1} of {_show(fspec.name)}, past its end "
                               f"(size {fspec.size}: {eof} page(s)): that access is SIGBUS",
                               why)
        return Mapping(addr=addr, pages=pages, prot=prot, shared=shared, file=file,
                       offset=offset, populate=populate, populate_cpu=populate_cpu,
                       mlock=mlock, data=data, where=mw)

    # --- [[thread]] ---------------------------------------------------------------------
    def thread_specs(self) -> list[ThreadSpec]:
        ctx = self.ctx
        procs = {p.name: p for p in self.processes}
        file_names = {f.name for f in self.files}
        threads: list[ThreadSpec] = []
        for i, t in enumerate(_tables(ctx, "thread", self.doc.get("thread"), "thread")):
            w = f"thread[{i}]"
            if not isinstance(t, dict):     # pragma: no cover - _tables checked
                raise ctx.fail(w, "expected a table")
            actor = t.get("actor")
            if actor is not None:
                actor = _choice(ctx, f"{w}.actor", "actor", actor, ACTORS, "actor")
            _table(ctx, w, t, _THREAD_FIELDS[actor], named=False)
            if "name" in t:
                tname = _name(ctx, f"{w}.name", "name", t["name"])
            else:
                tname = f"T{i}"
            if tname in {x.name for x in threads}:
                raise ctx.fail(f"{w}.name", f"a second thread named {_show(tname)}"
                               + ("" if "name" in t else " (its default name)"), "name")
            cpu = _int(ctx, f"{w}.cpu", "cpu", t.get("cpu", i % self.cpus), 0, self.cpus - 1)
            process = t.get("process")
            if process is not None and (not isinstance(process, str) or process not in procs):
                raise ctx.fail(f"{w}.process", f"no process named {_show(process)}", "process")
            target: dict[str, Any] = {}
            program: list[Op] = []
            if actor is None:
                if process is None:
                    raise ctx.fail(f"{w}.process", "a user thread needs a process", "process")
                ops = _list(ctx, f"{w}.program", "program", t.get("program", []),
                            "an array of ops like [ { op = \"load\", addr = 0x1000 } ]")
                for j, op in enumerate(ops):
                    program.append(_op(ctx, f"{w}.program[{j}]", op, self.cpus, file_names,
                                       set(procs)))
            elif actor == "writeback":
                file = t.get("file")
                if file is None:
                    raise ctx.fail(f"{w}.file", "the writeback actor needs a file", "file")
                if not isinstance(file, str) or file not in file_names:
                    raise ctx.fail(f"{w}.file", f"no file named {_show(file)}", "file")
                size = next(f.size for f in self.files if f.name == file)
                npages = _pages(size)
                if npages == 0:
                    raise ctx.fail(f"{w}.file", f"file {_show(file)} is empty: there is no "
                                   f"page to write back", "file")
                target = {"file": file, "index": _int(ctx, f"{w}.index", "index",
                                                      t.get("index", 0), 0, npages - 1)}
            else:                                   # oom_reaper, migrate
                if process is None:
                    raise ctx.fail(f"{w}.process", f"the {actor} actor needs a target process",
                                   "process")
                if actor == "oom_reaper" and not procs[process].oom_victim:
                    raise ctx.fail(f"{w}.process", f"the OOM reaper reaps an OOM victim: mark "
                                   f"process {_show(process)} with oom_victim = true",
                                   "process")
                if actor == "migrate":
                    if "addr" not in t:
                        raise ctx.fail(f"{w}.addr", "the migrate actor needs the address of "
                                       "the page to migrate", "actor")
                    target = {"addr": _int(ctx, f"{w}.addr", "addr", t["addr"], 0,
                                           C.TASK_SIZE - 1)}
            threads.append(ThreadSpec(tname, cpu, process, actor, program, target))
        if not threads:
            raise ctx.fail("thread", "a scenario needs at least one [[thread]]")
        self.check_exits(threads)
        return threads

    def check_exits(self, threads: list[ThreadSpec]) -> None:
        """``exit`` is the process's last thread leaving (the process is gone after it):
        nothing may follow it in its thread, and no other thread may use that process.
        ``exec`` needs a process of one user thread (de_thread() is not modelled)."""
        exits: dict[str, tuple[int, ThreadSpec, Op]] = {}
        for i, t in enumerate(threads):
            for j, op in enumerate(t.program):
                if op.op != "exit":
                    continue
                if j + 1 < len(t.program):
                    nxt = t.program[j + 1]
                    raise self.fail(nxt.where, f"{nxt.op} after exit: the thread's process "
                                    f"{_show(t.process)} has exited at program[{j}]", "op")
                if t.process in exits:
                    k, other, _ = exits[t.process]
                    raise self.fail(op.where, f"process {_show(t.process)} already exits in "
                                    f"thread {_show(other.name)} (thread[{k}]): exit is the "
                                    f"last thread of a process leaving, so only one thread "
                                    f"may exit it", "op")
                exits[t.process] = (i, t, op)
        for i, t in enumerate(threads):
            if t.actor is None and t.program and t.process in exits:
                k, other, op = exits[t.process]
                if other is not t:
                    raise self.fail(f"thread[{i}].program", f"thread {_show(other.name)} "
                                    f"exits process {_show(t.process)} ({op.where}), the "
                                    f"last thread leaving it, so no other thread may run ops "
                                    f"on it", "program")
        # exec in a multi-threaded process: fs/exec.c de_thread() kills every other thread
        # of the process and waits for them to leave before exec_mmap(); the model has no
        # de_thread(), so another user thread of that process would go on running in the
        # mm that exec tears down, a false alarm
        for i, t in enumerate(threads):
            for op in t.program:
                if op.op != "exec":
                    continue
                other = next((k for k, u in enumerate(threads) if u is not t and
                              u.actor is None and u.program and u.process == t.process),
                             None)
                if other is not None:
                    raise self.fail(op.where, f"exec in process {_show(t.process)}, which "
                                    f"thread {_show(threads[other].name)} (thread[{other}]) "
                                    f"also runs: exec kills the other threads first "
                                    f"(de_thread), which the model leaves out, so exec needs "
                                    f"a process of one user thread", "op")

    # --- [bounds] -----------------------------------------------------------------------
    def bounds(self) -> tuple[Optional[int], int, int]:
        ctx = self.ctx
        bounds = self.doc.get("bounds", {})
        if not isinstance(bounds, dict):
            raise ctx.fail("bounds", f"expected a table ([bounds]), got {_kind(bounds)}",
                           "bounds")
        _only(ctx, "bounds", bounds, {"preemptions", "steps", "executions"})
        preemptions = bounds.get("preemptions")
        if preemptions is not None:
            preemptions = _int(ctx, "bounds.preemptions", "preemptions", preemptions, 0,
                               MAX_PREEMPTIONS)
        max_steps = _int(ctx, "bounds.steps", "steps", bounds.get("steps", 5000), 1, MAX_STEPS)
        max_exec = _int(ctx, "bounds.executions", "executions",
                        bounds.get("executions", 200000), 1, MAX_EXECUTIONS)
        return preemptions, max_steps, max_exec

    # --- [expect] -----------------------------------------------------------------------
    def expectations(self, threads):
        ctx = self.ctx
        expect = self.doc.get("expect")
        if expect is None:
            raise ctx.fail("expect", "missing [expect] table (never = true, or sometimes = "
                           "[...])")
        if not isinstance(expect, dict):
            raise ctx.fail("expect", f"expected the [expect] table, got {_kind(expect)}",
                           "expect")
        _only(ctx, "expect", expect, {"never", "sometimes", "without"} | set(QUANTIFIERS))
        never, sometimes = _expectation(ctx, "expect", expect)
        outcome_expect = _outcome_expectations(ctx, "expect", expect, threads)
        variants: list[Variant] = []
        for i, w in enumerate(_tables(ctx, "expect.without", expect.get("without"),
                                      "expect.without")):
            ww = f"expect.without[{i}]"
            _only(ctx, ww, w, {"fixes", "never", "sometimes"} | set(QUANTIFIERS))
            fixes = self.fixes(f"{ww}.fixes", "fixes", w.get("fixes", []))
            if not fixes:
                raise ctx.fail(f"{ww}.fixes", "name at least one fix commit", "fixes")
            if any(set(v.fixes) == set(fixes) for v in variants):
                raise ctx.fail(f"{ww}.fixes", "a second [[expect.without]] entry for the same "
                               "fixes", "fixes")
            v_never, v_sometimes = _expectation(ctx, ww, w)
            variants.append(Variant(fixes, v_never, v_sometimes,
                                    _outcome_expectations(ctx, ww, w, threads)))
        return never, sometimes, outcome_expect, variants


def _expectation(ctx: _Ctx, where: str, table: dict) -> tuple[bool, list[str]]:
    never = _bool(ctx, f"{where}.never", "never", table.get("never", False))
    sometimes = _list(ctx, f"{where}.sometimes", "sometimes", table.get("sometimes", []),
                      "a list of invariant names")
    if never and sometimes:
        raise ctx.fail(where, "give never = true or sometimes = [...], not both", "never")
    if not never and not sometimes and not any(q in table for q in QUANTIFIERS):
        raise ctx.fail(where, "give never = true, sometimes = [...], or an outcome condition "
                       "(exists, not_exists, forall)", "never")
    known = list(GROUPS) + ["DEADLOCK", "BUG", "LOCK"]
    for i, g in enumerate(sometimes):
        if not isinstance(g, str) or g not in known:
            raise ctx.fail(f"{where}.sometimes", f"unknown invariant {_show(g)} (known: "
                           f"{', '.join(known)})", "sometimes")
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
    "mlock": {"addr", "len", "flags"},
    "munlock": {"addr", "len"},
    "mlockall": {"flags"},
    "munlockall": set(),
    "pwrite": {"file", "offset", "value", "len"},
    "fork": set(), "exec": set(), "exit": set(),
    "gup_fast": {"addr", "pages", "write"},
    "context_switch": {"to"},
    "load": {"addr"},
    "store": {"addr", "value"},
}
# The op fields a program may leave out (mmap's file and offset, gup_fast's write,
# pwrite's len: one byte; mlock's flags: mlock(2), with them mlock2(2)).
_OP_OPTIONAL = {"mmap": frozenset({"offset", "file"}), "gup_fast": frozenset({"write"}),
                "pwrite": frozenset({"len"}), "mlock": frozenset({"flags"})}
MAX_PWRITE_LEN = 4 * 4096


#: context_switch's ``to`` for a kernel thread (enter_lazy_tlb).
KERNEL_THREAD = "kernel"


def _op(ctx: _Ctx, where: str, op: Any, cpus: int, file_names: set[str],
        process_names: set[str]) -> Op:
    if not isinstance(op, dict):
        raise ctx.fail(where, f"expected an inline table like {{ op = \"load\", addr = "
                       f"0x1000 }}, got {_kind(op)}", "program")
    if "op" not in op:
        raise ctx.fail(f"{where}.op", f"missing (one of {', '.join(_OP_FIELDS)})", "program")
    kind = op["op"]
    if not isinstance(kind, str) or kind not in _OP_FIELDS:
        raise ctx.fail(f"{where}.op", f"unknown op {_show(kind)} (known: "
                       f"{', '.join(_OP_FIELDS)})", "op")
    fields = {k: v for k, v in op.items() if k != "op"}
    _only(ctx, where, fields, _OP_FIELDS[kind])
    args: dict[str, Any] = {}
    for k, v in fields.items():
        fw = f"{where}.{k}"
        if k == "prot":
            args[k] = _prot(ctx, fw, v)
        elif k == "flags" and kind == "mlockall":
            args[k] = _named(ctx, fw, v, "MCL_", (1 << 31) - 1)      # an int
        elif k == "flags" and kind == "mlock":
            args[k] = _named(ctx, fw, v, "MLOCK_", (1 << 31) - 1)    # mlock2's int
        elif k == "flags":
            args[k] = _named(ctx, fw, v, "MAP_")
        elif k == "advice":
            args[k] = _named(ctx, fw, v, "MADV_", (1 << 31) - 1)      # an int
        elif k == "file":
            if not isinstance(v, str) or v not in file_names:
                raise ctx.fail(fw, f"no file named {_show(v)} (declare it with [[file]])", k)
            args[k] = v
        elif k == "value":
            args[k] = _int(ctx, fw, k, v, 0, 255)
        elif k == "pages":
            args[k] = _int(ctx, fw, k, v, 1, 512)
        elif k == "len" and kind == "pwrite":
            args[k] = _int(ctx, fw, k, v, 1, MAX_PWRITE_LEN)
        elif k == "write":
            args[k] = _bool(ctx, fw, k, v)
        elif k == "to":
            if not isinstance(v, str) or (v != KERNEL_THREAD and v not in process_names):
                raise ctx.fail(fw, f"expected a process name or {KERNEL_THREAD!r} (a kernel "
                               f"thread), got {_show(v)}", k)
            args[k] = v
        else:                                   # addr, len, offset: unsigned long
            args[k] = _int(ctx, fw, k, v, 0, ULONG_MAX)
    for need in sorted(_OP_FIELDS[kind] - _OP_OPTIONAL.get(kind, frozenset())):
        if need not in args:
            raise ctx.fail(f"{where}.{need}", f"{kind} needs {need}", "op")
    return Op(kind, args, where, ctx.locate(where, "op"))
