"""A syscall sequence for the oracle, as pure data: load, validate, save (TOML and JSON).

A sequence is what both sides of the differential test run: the real kernel (real.py, in a
fresh child process) and the model (model.py, on ``unmapcheck.impl.System``). It is data, never
code: loading a file parses TOML or JSON and checks every field; nothing in a file is executed.

Shape (see README.md for the full format)::

    window_pages = 64                 # optional, the size of the reserved window in pages
    [[files]]                         # optional memfds the calls can map
    name = "f"
    size = 16384
    [[calls]]
    op = "mmap"                       # mmap munmap mprotect madvise mlock munlock fork load store
    addr = 0x1000                     # a byte offset into the window (may be unaligned, < 0, ...)
    length = 16384                    # raw unsigned long (0, unaligned, 0xffffffffffffffff ...)
    prot = "PROT_READ|PROT_WRITE"     # an integer or names joined by '|'
    flags = "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED"

This module is self-contained (standard library only): the real-kernel worker process loads it
by path, without importing the rest of the package. The names of the flag tables carry the
values of ``unmapcheck.impl.constants`` (a test checks that they agree).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from typing import Any, Iterable

PAGE_SIZE = 4096
PAGE_SHIFT = 12
ULONG_MAX = (1 << 64) - 1
# x86-64 with 4-level paging (arch/x86/include/asm/page_64_types.h: TASK_SIZE_MAX).
TASK_SIZE = (1 << 47) - PAGE_SIZE
DEFAULT_WINDOW_PAGES = 64
MAX_WINDOW_PAGES = 1 << 18          # 1 GiB of address space; the window is only reserved
MAX_CALLS = 10000
MAX_FORKS = 16
MAX_FILE_SIZE = 1 << 30
MAX_FILES = 16
# Both runners keep at least this much address space unmapped on each side of the window, so
# that what happens just outside it is the same on both (see refusal()).
GAP = 1 << 20
MAX_CHARGED_MMAP = 1 << 30

# --- symbolic names (values of include/uapi/asm-generic/mman-common.h, linux/mman.h) --------
PROT_NAMES: dict[str, int] = {
    "PROT_NONE": 0x0, "PROT_READ": 0x1, "PROT_WRITE": 0x2, "PROT_EXEC": 0x4,
    "PROT_GROWSDOWN": 0x01000000, "PROT_GROWSUP": 0x02000000,
}
MAP_NAMES: dict[str, int] = {
    "MAP_SHARED": 0x01, "MAP_PRIVATE": 0x02, "MAP_SHARED_VALIDATE": 0x03, "MAP_FIXED": 0x10,
    "MAP_ANONYMOUS": 0x20, "MAP_32BIT": 0x40, "MAP_GROWSDOWN": 0x0100,
    "MAP_DENYWRITE": 0x0800, "MAP_EXECUTABLE": 0x1000, "MAP_LOCKED": 0x2000,
    "MAP_NORESERVE": 0x4000, "MAP_POPULATE": 0x8000, "MAP_NONBLOCK": 0x10000,
    "MAP_STACK": 0x20000, "MAP_HUGETLB": 0x40000, "MAP_SYNC": 0x80000,
    "MAP_FIXED_NOREPLACE": 0x100000, "MAP_UNINITIALIZED": 0x4000000,
}
MADV_NAMES: dict[str, int] = {
    "MADV_NORMAL": 0, "MADV_RANDOM": 1, "MADV_SEQUENTIAL": 2, "MADV_WILLNEED": 3,
    "MADV_DONTNEED": 4, "MADV_FREE": 8, "MADV_REMOVE": 9, "MADV_DONTFORK": 10,
    "MADV_DOFORK": 11, "MADV_MERGEABLE": 12, "MADV_UNMERGEABLE": 13, "MADV_HUGEPAGE": 14,
    "MADV_NOHUGEPAGE": 15, "MADV_DONTDUMP": 16, "MADV_DODUMP": 17, "MADV_WIPEONFORK": 18,
    "MADV_KEEPONFORK": 19, "MADV_COLD": 20, "MADV_PAGEOUT": 21, "MADV_POPULATE_READ": 22,
    "MADV_POPULATE_WRITE": 23, "MADV_DONTNEED_LOCKED": 24, "MADV_COLLAPSE": 25,
}
# Advice values a sequence may not use: they act on the machine, not on the process
# (MADV_HWPOISON, MADV_SOFT_OFFLINE poison or offline the physical page).
FORBIDDEN_ADVICE = {100: "MADV_HWPOISON", 101: "MADV_SOFT_OFFLINE"}

PROT_NONE, PROT_READ, PROT_WRITE, PROT_EXEC = 0x0, 0x1, 0x2, 0x4
MAP_SHARED, MAP_PRIVATE, MAP_TYPE = 0x01, 0x02, 0x0F
MAP_FIXED, MAP_ANONYMOUS, MAP_NORESERVE = 0x10, 0x20, 0x4000
MAP_LOCKED, MAP_POPULATE, MAP_FIXED_NOREPLACE = 0x2000, 0x8000, 0x100000

# --- the calls -------------------------------------------------------------------------------
# For each op, its fields in order: (name, kind). Kinds: addr (window offset), ulong, prot,
# flags, advice, byte, file (None or a file name).
OPS: dict[str, tuple[tuple[str, str], ...]] = {
    "mmap": (("addr", "addr"), ("length", "ulong"), ("prot", "prot"), ("flags", "flags"),
             ("file", "file"), ("offset", "ulong")),
    "munmap": (("addr", "addr"), ("length", "ulong")),
    "mprotect": (("addr", "addr"), ("length", "ulong"), ("prot", "prot")),
    "madvise": (("addr", "addr"), ("length", "ulong"), ("advice", "advice")),
    "mlock": (("addr", "addr"), ("length", "ulong")),
    "munlock": (("addr", "addr"), ("length", "ulong")),
    "fork": (),
    "load": (("addr", "addr"),),
    "store": (("addr", "addr"), ("byte", "byte")),
}
# Fields a file may leave out, with their defaults.
OPTIONAL = {"file": None, "offset": 0}


class SequenceError(ValueError):
    """A malformed sequence. ``str()`` is one line: file, call, field and what is wrong."""


@dataclass(frozen=True)
class File:
    """A memfd the sequence creates before its first call (memfd_create + ftruncate)."""
    name: str
    size: int


@dataclass(frozen=True)
class Call:
    """One call. Only the fields of ``OPS[op]`` mean anything; the rest stay at their defaults.

    ``addr`` is a byte offset into the window (the runner adds the window's base).
    """
    op: str
    addr: int = 0
    length: int = 0
    prot: int = 0
    flags: int = 0
    file: str | None = None
    offset: int = 0
    advice: int = 0
    byte: int = 0

    # Constructors that read like the syscalls.
    @classmethod
    def mmap(cls, addr, length, prot, flags, file=None, offset=0) -> "Call":
        return cls("mmap", addr=addr, length=length, prot=prot, flags=flags, file=file,
                   offset=offset)

    @classmethod
    def munmap(cls, addr, length) -> "Call":
        return cls("munmap", addr=addr, length=length)

    @classmethod
    def mprotect(cls, addr, length, prot) -> "Call":
        return cls("mprotect", addr=addr, length=length, prot=prot)

    @classmethod
    def madvise(cls, addr, length, advice) -> "Call":
        return cls("madvise", addr=addr, length=length, advice=advice)

    @classmethod
    def mlock(cls, addr, length) -> "Call":
        return cls("mlock", addr=addr, length=length)

    @classmethod
    def munlock(cls, addr, length) -> "Call":
        return cls("munlock", addr=addr, length=length)

    @classmethod
    def fork(cls) -> "Call":
        return cls("fork")

    @classmethod
    def load(cls, addr) -> "Call":
        return cls("load", addr=addr)

    @classmethod
    def store(cls, addr, byte) -> "Call":
        return cls("store", addr=addr, byte=byte)

    def fields(self) -> dict[str, Any]:
        """The op's own fields, in order."""
        return {name: getattr(self, name) for name, _ in OPS[self.op]}

    def describe(self) -> str:
        """``mmap(0x0, 0x4000, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, file='f')``."""
        parts = []
        for name, kind in OPS[self.op]:
            v = getattr(self, name)
            if name in OPTIONAL and v == OPTIONAL[name]:
                continue
            if kind in ("prot", "flags", "advice"):
                parts.append(symbolic(kind, v))
            elif kind == "file":
                parts.append(f"file={v!r}")
            elif name == "offset":
                parts.append(f"offset={_hex(v)}")
            elif kind == "byte":
                parts.append(str(v))
            else:
                parts.append(_hex(v))
        return f"{self.op}({', '.join(parts)})"


@dataclass(frozen=True)
class Sequence:
    calls: tuple[Call, ...] = ()
    files: tuple[File, ...] = ()
    window_pages: int = DEFAULT_WINDOW_PAGES

    def __post_init__(self):
        object.__setattr__(self, "calls", tuple(self.calls))
        object.__setattr__(self, "files", tuple(self.files))

    @property
    def window_size(self) -> int:
        return self.window_pages * PAGE_SIZE

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"window_pages": self.window_pages}
        if self.files:
            d["files"] = [{"name": f.name, "size": f.size} for f in self.files]
        calls = []
        for c in self.calls:
            cd = {"op": c.op}
            for k, v in c.fields().items():
                if k in OPTIONAL and v == OPTIONAL[k]:
                    continue
                cd[k] = v
            calls.append(cd)
        d["calls"] = calls
        return d

    def with_calls(self, calls: Iterable[Call]) -> "Sequence":
        return Sequence(calls=tuple(calls), files=self.files, window_pages=self.window_pages)


# --- formatting helpers ----------------------------------------------------------------------
def _hex(v: int) -> str:
    return hex(v) if v >= 0 else "-" + hex(-v)


_TABLES = {"prot": PROT_NAMES, "flags": MAP_NAMES, "advice": MADV_NAMES}


def symbolic(kind: str, value: int) -> str:
    """``PROT_READ|PROT_WRITE`` for prot/flags, ``MADV_DONTNEED`` for advice; hex leftovers."""
    if kind == "advice":
        for n, v in MADV_NAMES.items():
            if v == value:
                return n
        return FORBIDDEN_ADVICE.get(value, str(value))
    table = _TABLES[kind]
    if kind == "prot" and value == 0:
        return "PROT_NONE"
    names, rest = [], value
    if kind == "flags":
        t = value & MAP_TYPE
        for n in ("MAP_SHARED", "MAP_PRIVATE", "MAP_SHARED_VALIDATE"):
            if MAP_NAMES[n] == t:
                names.append(n)
                rest &= ~MAP_TYPE
                break
    for n, v in table.items():
        if v and kind == "flags" and v & MAP_TYPE == v:
            continue
        if v and rest & v == v:
            names.append(n)
            rest &= ~v
    if rest:
        names.append(hex(rest))
    return "|".join(names) if names else "0"


# --- validation ------------------------------------------------------------------------------
class _Where:
    """Builds the one-line error prefix: ``file[:line]: call N (op): field 'x'``."""

    def __init__(self, source: str, lines: "_TomlLines | None"):
        self.source = source
        self.lines = lines

    def err(self, msg: str, call: int | None = None, op: str | None = None,
            fld: str | None = None, section: str = "calls") -> SequenceError:
        loc = self.source
        line = self.lines.line_of(section, call, fld) if (self.lines and call is not None) \
            else None
        if line is not None:
            loc += f":{line}"
        parts = [loc]
        if call is not None:
            what = "call" if section == "calls" else "file"
            parts.append(f"{what} {call}" + (f" ({op})" if op else ""))
        if fld is not None:
            parts.append(f"field {fld!r}")
        parts.append(msg)
        return SequenceError(": ".join(parts))


class _TomlLines:
    """Line numbers of ``[[calls]]`` / ``[[files]]`` blocks and of the keys inside them.

    A best effort over the raw text (tomllib keeps no positions): only the array-of-tables
    form is mapped; for inline tables no line is given.
    """

    _hdr = re.compile(r"^\s*\[\[\s*(\w+)\s*\]\]")
    _key = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")

    def __init__(self, text: str):
        self.blocks: dict[str, list[tuple[int, dict[str, int]]]] = {}
        cur = None
        for n, raw in enumerate(text.splitlines(), 1):
            m = self._hdr.match(raw)
            if m:
                cur = (n, {})
                self.blocks.setdefault(m.group(1), []).append(cur)
                continue
            if raw.lstrip().startswith("["):
                cur = None
                continue
            m = self._key.match(raw)
            if m and cur is not None:
                cur[1].setdefault(m.group(1), n)

    def line_of(self, section: str, idx: int, fld: str | None) -> int | None:
        blocks = self.blocks.get(section, [])
        if idx >= len(blocks):
            return None
        start, keys = blocks[idx]
        if fld is not None and fld in keys:
            return keys[fld]
        return start


def _parse_int(v: Any) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        s = v.strip().replace("_", "")
        try:
            return int(s, 0)
        except ValueError:
            return None
    return None


def _parse_names(kind: str, v: Any) -> int | None:
    """An integer, an integer literal string, or names joined by '|' (never evaluated)."""
    n = _parse_int(v)
    if n is not None or not isinstance(v, str):
        return n
    table = _TABLES[kind]
    total = 0
    for part in v.split("|"):
        part = part.strip()
        if part in table:
            total |= table[part]
            continue
        p = _parse_int(part)
        if p is None or p < 0:
            return None
        total |= p
    return total


_KIND_RANGE = {
    "addr": (-ULONG_MAX, ULONG_MAX, "an integer (a byte offset into the window)"),
    "ulong": (0, ULONG_MAX, "an integer in 0..2**64-1"),
    "prot": (0, ULONG_MAX, "an integer or PROT_* names joined by '|'"),
    "flags": (0, ULONG_MAX, "an integer or MAP_* names joined by '|'"),
    "advice": (0, (1 << 31) - 1, "an integer or a MADV_* name"),
    "byte": (0, 255, "an integer in 0..255"),
}


def _check_value(where: _Where, idx: int, op: str, name: str, kind: str, raw: Any,
                 files: dict[str, File]):
    if kind == "file":
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise where.err("expected the name of a file of the sequence (a string)",
                            idx, op, name)
        if raw not in files:
            known = ", ".join(sorted(files)) or "none declared"
            raise where.err(f"unknown file {raw!r} (files: {known})", idx, op, name)
        return raw
    lo, hi, expected = _KIND_RANGE[kind]
    if kind in _TABLES:
        v = _parse_names(kind, raw)
    else:
        v = _parse_int(raw)
    if v is None:
        raise where.err(f"expected {expected}", idx, op, name)
    if not lo <= v <= hi:
        raise where.err(f"{v} out of range (expected {expected})", idx, op, name)
    if kind == "advice" and v in FORBIDDEN_ADVICE:
        raise where.err(f"{FORBIDDEN_ADVICE[v]} is not allowed (it acts on the machine's "
                        f"physical memory)", idx, op, name)
    return v


_FILE_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")


def from_dict(data: Any, source: str = "<sequence>", _lines: _TomlLines | None = None) \
        -> Sequence:
    """Validate a parsed TOML/JSON document and build the :class:`Sequence`."""
    where = _Where(source, _lines)
    if not isinstance(data, dict):
        raise where.err("expected a table/object at the top level")
    unknown = sorted(set(data) - {"window_pages", "files", "calls"})
    if unknown:
        raise where.err(f"unknown top-level key {unknown[0]!r} "
                        f"(known: window_pages, files, calls)")
    wp = data.get("window_pages", DEFAULT_WINDOW_PAGES)
    wpi = _parse_int(wp)
    if wpi is None or not 1 <= wpi <= MAX_WINDOW_PAGES:
        raise where.err(f"field 'window_pages': expected an integer in 1..{MAX_WINDOW_PAGES}")
    files_raw = data.get("files", [])
    if not isinstance(files_raw, list):
        raise where.err("field 'files': expected an array of tables")
    if len(files_raw) > MAX_FILES:
        raise where.err(f"field 'files': at most {MAX_FILES} files")
    files: dict[str, File] = {}
    for i, f in enumerate(files_raw):
        if not isinstance(f, dict):
            raise where.err("expected a table with name and size", i, section="files")
        extra = sorted(set(f) - {"name", "size"})
        if extra:
            raise where.err(f"unknown field {extra[0]!r} (known: name, size)", i,
                            section="files")
        name = f.get("name")
        if not isinstance(name, str) or not _FILE_NAME.match(name):
            raise where.err("expected 1-64 characters of A-Z a-z 0-9 _ . -", i,
                            fld="name", section="files")
        if name in files:
            raise where.err(f"duplicate file name {name!r}", i, fld="name", section="files")
        if "size" not in f:
            raise where.err("missing", i, fld="size", section="files")
        size = _parse_int(f["size"])
        if size is None or not 0 <= size <= MAX_FILE_SIZE:
            raise where.err(f"expected an integer in 0..{MAX_FILE_SIZE}", i, fld="size",
                            section="files")
        files[name] = File(name, size)
    calls_raw = data.get("calls", [])
    if not isinstance(calls_raw, list):
        raise where.err("field 'calls': expected an array of tables")
    if len(calls_raw) > MAX_CALLS:
        raise where.err(f"field 'calls': at most {MAX_CALLS} calls")
    calls = []
    forks = 0
    for i, c in enumerate(calls_raw):
        if not isinstance(c, dict):
            raise where.err("expected a table", i)
        op = c.get("op")
        if not isinstance(op, str) or op not in OPS:
            raise where.err(f"unknown op {op!r} (known: {', '.join(OPS)})", i, fld="op")
        spec = OPS[op]
        names = [n for n, _ in spec]
        extra = [k for k in c if k != "op" and k not in names]
        if extra:
            raise where.err(f"unknown field for {op} (known: {', '.join(names) or 'none'})",
                            i, op, extra[0])
        kwargs = {}
        for name, kind in spec:
            if name not in c:
                if name in OPTIONAL:
                    kwargs[name] = OPTIONAL[name]
                    continue
                raise where.err("missing", i, op, name)
            kwargs[name] = _check_value(where, i, op, name, kind, c[name], files)
        if op == "fork":
            forks += 1
            if forks > MAX_FORKS:
                raise where.err(f"at most {MAX_FORKS} forks per sequence", i, op)
        calls.append(Call(op, **kwargs))
    return Sequence(calls=tuple(calls), files=tuple(files.values()), window_pages=wpi)


def validate(seq: Sequence, source: str = "<sequence>") -> Sequence:
    """Check a Sequence built in Python (e.g. by a strategy) by the same rules as a file."""
    return from_dict(seq.to_dict(), source)


def loads_toml(text: str, source: str = "<toml>") -> Sequence:
    import tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SequenceError(f"{source}: not valid TOML: {e}") from None
    return from_dict(data, source, _TomlLines(text))


def loads_json(text: str, source: str = "<json>") -> Sequence:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise SequenceError(f"{source}:{e.lineno}: not valid JSON: {e.msg}") from None
    return from_dict(data, source)


def load(path: str | os.PathLike) -> Sequence:
    """Load a ``.toml`` or ``.json`` sequence file (by extension; otherwise by content)."""
    path = os.fspath(path)
    name = os.path.basename(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise SequenceError(f"{name}: cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SequenceError(f"{name}: not UTF-8 text") from None
    if path.endswith(".json") or (not path.endswith(".toml") and text.lstrip().startswith("{")):
        return loads_json(text, name)
    return loads_toml(text, name)


# --- writing ---------------------------------------------------------------------------------
def _toml_int(v: int) -> str:
    if v < 0:
        return str(v)
    return hex(v) if v >= 4096 else str(v)


def _toml_str(s: str) -> str:
    return json.dumps(s)          # a JSON string is a valid TOML basic string


def dumps_toml(seq: Sequence, comment: str | None = None) -> str:
    out = []
    if comment:
        out += [f"# {line}" for line in comment.splitlines()]
    out.append(f"window_pages = {seq.window_pages}")
    for f in seq.files:
        out += ["", "[[files]]", f"name = {_toml_str(f.name)}", f"size = {_toml_int(f.size)}"]
    for c in seq.calls:
        out += ["", "[[calls]]", f"op = {_toml_str(c.op)}"]
        for name, kind in OPS[c.op]:
            v = getattr(c, name)
            if name in OPTIONAL and v == OPTIONAL[name]:
                continue
            if kind in _TABLES:
                out.append(f"{name} = {_toml_str(symbolic(kind, v))}")
            elif kind == "file":
                out.append(f"{name} = {_toml_str(v)}")
            else:
                out.append(f"{name} = {_toml_int(v)}")
    return "\n".join(out) + "\n"


def dumps_json(seq: Sequence) -> str:
    return json.dumps(seq.to_dict(), indent=1) + "\n"


def atomic_write(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a temporary file beside it, then os.replace)."""
    import tempfile
    path = os.fspath(path)
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save(seq: Sequence, path: str | os.PathLike, comment: str | None = None) -> None:
    """Save as JSON if ``path`` ends in ``.json``, else as TOML."""
    p = os.fspath(path)
    atomic_write(p, dumps_json(seq) if p.endswith(".json") else dumps_toml(seq, comment))


# --- what the runners may execute --------------------------------------------------------------
def page_align(v: int) -> int:
    """PAGE_ALIGN() on an unsigned long: wraps to 0 near ULONG_MAX, as in the kernel."""
    return (v + PAGE_SIZE - 1) & ULONG_MAX & ~(PAGE_SIZE - 1)


def refusal(call: Call, window_size: int) -> str | None:
    """Why a runner must not execute ``call``, or None when it is safe.

    Both runners apply this same rule, so a refused call compares equal. A call is safe when it
    can only touch the window, or when the kernel certainly rejects it in its argument checks
    before it looks at any VMA (a zero, wrapping or >TASK_SIZE length, an unaligned address
    where the syscall demands alignment). Everything else that could reach outside the window
    (MAP_FIXED, munmap, mprotect, madvise, mlock, munlock, load and store beyond it) is refused:
    outside the window the real process has its own mappings (the Python interpreter) and the
    model has none, so the results would mean nothing, and the real one could crash the runner.
    Non-fixed mmaps (with or without a hint, MAP_FIXED_NOREPLACE) never replace a mapping; they
    always run, and a result outside the window is unmapped at once ("placed outside").
    """
    op = call.op
    a, n = call.addr, call.length

    def within(lo: int, hi: int, gap: int = 0) -> bool:
        return -gap <= lo <= hi <= window_size + gap

    if op == "fork":
        return None
    if op in ("load", "store"):
        return None if within(a, a + 1) else "access outside the window"
    if op == "munmap":
        # do_vmi_munmap(): offset_in_page(start) || len > TASK_SIZE - start -> -EINVAL;
        # end == start (len 0) -> -EINVAL.
        if a % PAGE_SIZE or n == 0 or n > TASK_SIZE:
            return None
        return None if within(a, a + page_align(n)) else "range outside the window"
    if op == "mmap":
        alen = page_align(n)
        if n == 0 or alen == 0 or alen > TASK_SIZE or call.offset % PAGE_SIZE:
            return None                     # -EINVAL / -ENOMEM before anything is mapped
        if (call.offset >> PAGE_SHIFT) + (alen >> PAGE_SHIFT) > ULONG_MAX >> PAGE_SHIFT:
            return None                     # -EOVERFLOW
        if call.flags & (MAP_POPULATE | MAP_LOCKED) and alen > window_size:
            return "populating mapping larger than the window"
        if alen > MAX_CHARGED_MMAP and not call.flags & MAP_NORESERVE:
            return "mapping larger than 1 GiB without MAP_NORESERVE (overcommit depends " \
                   "on the machine)"
        if call.flags & MAP_FIXED_NOREPLACE:
            # Never replaces, but outside the window the real process has its own mappings.
            return None if within(a, a + alen, GAP) or a % PAGE_SIZE else \
                "MAP_FIXED_NOREPLACE range outside the window"
        if call.flags & MAP_FIXED:
            if a % PAGE_SIZE:
                return None                 # -EINVAL
            return None if within(a, a + alen) else "MAP_FIXED range outside the window"
        return None
    if op in ("mprotect", "madvise"):
        # mprotect: unaligned start -> -EINVAL; len 0 -> 0; PAGE_ALIGN(len) == 0 -> -ENOMEM.
        # madvise:  unaligned start -> -EINVAL; len 0 -> 0; PAGE_ALIGN(len) == 0 -> -EINVAL.
        # (A wrapping end depends on the window's base, so it is not relied on.)
        if a % PAGE_SIZE or n == 0 or page_align(n) == 0:
            return None
        return None if within(a, a + page_align(n)) else "range outside the window"
    if op in ("mlock", "munlock"):
        # do_mlock(): len = PAGE_ALIGN(len + offset_in_page(start)); start &= PAGE_MASK;
        # a zero len returns 0 (the sum wraps like the kernel's unsigned long).
        start = a - (a % PAGE_SIZE)
        alen = page_align((n + (a % PAGE_SIZE)) & ULONG_MAX)
        if alen == 0:
            return None
        return None if within(start, start + alen) else "range outside the window"
    raise ValueError(f"unknown op {op!r}")


def placement(off: int, alen: int, window_size: int) -> tuple[int | None, str | None]:
    """How a runner reports a successful mmap that returned window offset ``off``.

    Inside the window: ``(off, None)``. Otherwise the runner unmaps it at once and reports
    ``"outside"``: with its offset when it lies within GAP of the window (where both sides
    have the same free space, e.g. a hint honoured across the window's end), else without
    (``None``: where a far placement lands depends on the process, not on the kernel's rules).
    """
    if 0 <= off and off + alen <= window_size:
        return off, None
    if -GAP <= off and off + alen <= window_size + GAP:
        return off, "outside"
    return None, "outside"
