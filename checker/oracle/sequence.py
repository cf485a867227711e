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
# that what happens just outside it (a hint honoured across its end) is the same on both (see
# placement()); nothing there stays mapped (see refusal()).
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
MAP_HUGETLB = 0x40000
PROT_GROWSDOWN, PROT_GROWSUP = 0x01000000, 0x02000000

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
def _short(v: Any, limit: int = 60) -> str:
    """A value for an error message: repr (which escapes control characters), integers
    beyond 64 bits by their size (str() of a huge int is slow, or refused past 4,300 digits),
    and anything longer than ``limit`` cut short."""
    if isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > 64:
        return f"a {'negative ' if v < 0 else ''}{v.bit_length()}-bit integer"
    if isinstance(v, (list, dict)):
        return f"a {'list' if isinstance(v, list) else 'table'} of {len(v)}"
    r = repr(v) if not isinstance(v, int) or isinstance(v, bool) else str(v)
    return r if len(r) <= limit else r[:limit - 3] + "..."


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
            parts.append(f"field {_short(fld)}")
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
            raise where.err(f"unknown file {_short(raw)} (files: {known})", idx, op, name)
        return raw
    lo, hi, expected = _KIND_RANGE[kind]
    if kind in _TABLES:
        v = _parse_names(kind, raw)
    else:
        v = _parse_int(raw)
    if v is None:
        raise where.err(f"expected {expected}", idx, op, name)
    if not lo <= v <= hi:
        raise where.err(f"{_short(v)} out of range (expected {expected})", idx, op, name)
    if kind == "advice" and v in FORBIDDEN_ADVICE:
        raise where.err(f"{FORBIDDEN_ADVICE[v]} is not allowed (it acts on the machine's "
                        f"physical memory)", idx, op, name)
    return v


# fullmatch: ``$`` would also match before a trailing newline.
_FILE_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def from_dict(data: Any, source: str = "<sequence>", _lines: _TomlLines | None = None) \
        -> Sequence:
    """Validate a parsed TOML/JSON document and build the :class:`Sequence`."""
    where = _Where(source, _lines)
    if not isinstance(data, dict):
        raise where.err("expected a table/object at the top level")
    unknown = sorted(set(data) - {"window_pages", "files", "calls"})
    if unknown:
        raise where.err(f"unknown top-level key {_short(unknown[0])} "
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
            raise where.err(f"unknown field {_short(extra[0])} (known: name, size)", i,
                            section="files")
        name = f.get("name")
        if not isinstance(name, str) or not _FILE_NAME.fullmatch(name):
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
            raise where.err(f"unknown op {_short(op)} (known: {', '.join(OPS)})", i, fld="op")
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


# A sequence file is at most this big (MAX_CALLS calls of a few hundred bytes each).
MAX_FILE_BYTES = 8 << 20


def printable(s: str) -> str:
    """``s`` with every character that is not printable (control characters, a newline, NUL,
    an escape, a lone surrogate from an undecodable file name) escaped, so that a message
    naming it stays one harmless line."""
    if s.isprintable():
        return s
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in s)


def _parse_error(kind: str, source: str, e: BaseException) -> SequenceError:
    """Errors the parsers raise besides their own: nesting deeper than the interpreter's
    recursion limit (RecursionError), an integer with more digits than int() converts
    (ValueError), a document too big for memory."""
    if isinstance(e, RecursionError):
        return SequenceError(f"{source}: not valid {kind}: nested too deeply")
    if isinstance(e, MemoryError):
        return SequenceError(f"{source}: not valid {kind}: too big")
    msg = str(e).splitlines()[0] if str(e) else type(e).__name__
    if "integer string conversion" in msg:
        msg = "an integer with more than 4300 digits"
    return SequenceError(f"{source}: not valid {kind}: {printable(msg)[:200]}")


def loads_toml(text: str, source: str = "<toml>") -> Sequence:
    import tomllib
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SequenceError(f"{source}: not valid TOML: {printable(str(e))}") from None
    except (RecursionError, ValueError, MemoryError) as e:
        raise _parse_error("TOML", source, e) from None
    return from_dict(data, source, _TomlLines(text))


def _json_object(pairs):
    d = {}
    for k, v in pairs:
        if k in d:
            raise _DuplicateKey(k)
        d[k] = v
    return d


class _DuplicateKey(ValueError):
    pass


def _json_constant(name):
    raise ValueError(f"{name} is not a number here")


def loads_json(text: str, source: str = "<json>") -> Sequence:
    """Parse JSON strictly: a key twice in one object, NaN and Infinity are errors (the last
    value of a repeated key would otherwise win silently)."""
    try:
        data = json.loads(text, object_pairs_hook=_json_object, parse_constant=_json_constant)
    except json.JSONDecodeError as e:
        raise SequenceError(f"{source}:{e.lineno}: not valid JSON: {e.msg}") from None
    except _DuplicateKey as e:
        raise SequenceError(f"{source}: not valid JSON: duplicate key "
                            f"{printable(repr(e.args[0]))}") from None
    except (RecursionError, ValueError, MemoryError) as e:
        raise _parse_error("JSON", source, e) from None
    return from_dict(data, source)


def _read_regular(path: str, source: str) -> bytes:
    """The bytes of the regular file ``path`` (at most MAX_FILE_BYTES). Opened without
    blocking (a FIFO would wait for a writer) and checked with fstat, so a device, a FIFO, a
    directory or /dev/null is refused, not read."""
    import stat
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) \
        | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise SequenceError(f"{source}: cannot read: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            what = ("a directory" if stat.S_ISDIR(st.st_mode) else
                    "a character device" if stat.S_ISCHR(st.st_mode) else
                    "a block device" if stat.S_ISBLK(st.st_mode) else
                    "a FIFO" if stat.S_ISFIFO(st.st_mode) else
                    "a socket" if stat.S_ISSOCK(st.st_mode) else "not a regular file")
            raise SequenceError(f"{source}: cannot read: {what}, not a regular file")
        if st.st_size > MAX_FILE_BYTES:
            raise SequenceError(f"{source}: too big ({st.st_size} bytes; a sequence file "
                                f"has at most {MAX_FILE_BYTES})")
        chunks, total = [], 0
        while total <= MAX_FILE_BYTES:
            b = os.read(fd, 1 << 20)
            if not b:
                break
            chunks.append(b)
            total += len(b)
        if total > MAX_FILE_BYTES:
            raise SequenceError(f"{source}: too big (a sequence file has at most "
                                f"{MAX_FILE_BYTES} bytes)")
        return b"".join(chunks)
    except OSError as e:
        raise SequenceError(f"{source}: cannot read: {e.strerror or e}") from None
    finally:
        os.close(fd)


def load(path: str | os.PathLike) -> Sequence:
    """Load a ``.toml`` or ``.json`` sequence file (by extension; otherwise by content).

    Bad input raises SequenceError, whose message is one line starting with the path as given
    (control characters escaped): a path with a NUL or another control character, a file that
    is not a regular file (a directory, /dev/null, a FIFO), one over MAX_FILE_BYTES, one that
    is not UTF-8, TOML or JSON that does not parse (nesting too deep, a number too long for
    int(), a duplicate JSON key), a document that is not a valid sequence, and a sequence
    without calls (an empty file replays nothing: it is a mistake, not a pass).
    """
    try:
        path = os.fspath(path)
    except TypeError:
        raise SequenceError(f"{printable(repr(path))}: not a path") from None
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    source = printable(path) or "''"
    if path == "":
        raise SequenceError("'': cannot read: an empty path")
    if any(not c.isprintable() and not "\ud800" <= c <= "\udfff" for c in path):
        # NUL cannot name a file; the other control characters can, but a name with a
        # newline or an escape sequence is a mistake far more often than a file. (Lone
        # surrogates stand for bytes that are not UTF-8: allowed, shown escaped.)
        raise SequenceError(f"{source}: the path contains a control character")
    raw = _read_regular(path, source)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SequenceError(f"{source}: not UTF-8 text") from None
    if path.endswith(".json") or (not path.endswith(".toml") and text.lstrip().startswith("{")):
        seq = loads_json(text, source)
    else:
        seq = loads_toml(text, source)
    if not seq.calls:
        raise SequenceError(f"{source}: no calls (a sequence file needs at least one "
                            f"[[calls]] entry)")
    return seq


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


def extent(call: Call) -> tuple[int, int] | None:
    """The window-offset range ``[lo, hi)`` that ``call`` can act on, rounded outward as the
    kernel rounds it, or None when it has no fixed range (fork; an mmap whose placement the
    kernel chooses). See :func:`refusal` for how it is used.

    mmap (MAP_FIXED, MAP_FIXED_NOREPLACE), munmap, mprotect, madvise: ``[addr, addr +
    PAGE_ALIGN(len))``; mlock, munlock: ``[addr & PAGE_MASK, that + PAGE_ALIGN(len +
    offset_in_page(addr)))`` (do_mlock, wrapping as size_t does); load, store: ``[addr,
    addr + 1)``.
    """
    op, a, n = call.op, call.addr, call.length
    if op == "fork":
        return None
    if op in ("load", "store"):
        return a, a + 1
    if op == "mmap":
        if not call.flags & (MAP_FIXED | MAP_FIXED_NOREPLACE):
            return None
        return a, a + page_align(n)
    if op in ("munmap", "mprotect", "madvise"):
        return a, a + page_align(n)
    if op in ("mlock", "munlock"):
        start = a - (a % PAGE_SIZE)
        return start, start + page_align((n + (a % PAGE_SIZE)) & ULONG_MAX)
    raise ValueError(f"unknown op {op!r}")


def pure_rejection(call: Call) -> str | None:
    """The argument check (and its answer) by which ``call`` fails, or does nothing, before
    the system call looks at any VMA, when that check depends on the call's own arguments
    alone: not on the address space, the window's base (it is 2 MiB aligned, so an offset's
    alignment is the address's), the files or the machine. None when there is no such
    check. Each one is quoted from Linux 6.18 (the answer is what the check returns; a
    file mapping with a bad fd fails earlier, with -EBADF, just as harmlessly):

    - mmap: ``off & ~PAGE_MASK`` -> -EINVAL (arch/x86/kernel/sys_x86_64.c, the first check);
      ``len == 0`` -> -EINVAL, ``PAGE_ALIGN(len) == 0`` -> -ENOMEM (do_mmap), ``PAGE_ALIGN(len)
      > TASK_SIZE`` -> -ENOMEM (the first check of __get_unmapped_area(), which do_mmap calls
      before anything else that concerns VMAs); none of these is relied on for an anonymous
      MAP_HUGETLB mapping (ksys_mmap_pgoff() first rounds its length to the huge page size);
    - munmap: ``offset_in_page(start)``, ``len > TASK_SIZE`` (so ``len > TASK_SIZE - start``),
      ``len == 0`` -> -EINVAL (do_vmi_munmap);
    - mprotect: PROT_GROWSDOWN and PROT_GROWSUP together, ``start & ~PAGE_MASK`` -> -EINVAL;
      ``len == 0`` -> 0; ``PAGE_ALIGN(len) == 0`` -> -ENOMEM (do_mprotect_pkey);
    - madvise: ``!PAGE_ALIGNED(start)`` -> -EINVAL; ``len && !PAGE_ALIGN(len)`` -> -EINVAL;
      ``len == 0`` -> 0 (is_valid_madvise, madvise_should_skip; the advice is not relied on:
      which values are valid depends on the kernel's configuration);
    - mlock, munlock: ``PAGE_ALIGN(len + offset_in_page(start)) == 0`` -> 0, nothing done
      (do_mlock / munlock: apply_vma_lock_flags() returns 0 for an empty range).
    """
    op, a, n = call.op, call.addr, call.length
    if op == "mmap":
        if call.offset % PAGE_SIZE:
            return "offset not page aligned: -EINVAL"
        if call.flags & MAP_ANONYMOUS and call.flags & MAP_HUGETLB:
            return None
        if n == 0:
            return "length 0: -EINVAL"
        if page_align(n) == 0:
            return "PAGE_ALIGN(length) wraps to 0: -ENOMEM"
        if page_align(n) > TASK_SIZE:
            return "length above TASK_SIZE: -ENOMEM"
        return None
    if op == "munmap":
        if a % PAGE_SIZE:
            return "address not page aligned: -EINVAL"
        if n == 0:
            return "length 0: -EINVAL"
        if n > TASK_SIZE:
            return "length above TASK_SIZE: -EINVAL"
        return None
    if op == "mprotect":
        if call.prot & PROT_GROWSDOWN and call.prot & PROT_GROWSUP:
            return "PROT_GROWSDOWN|PROT_GROWSUP: -EINVAL"
        if a % PAGE_SIZE:
            return "address not page aligned: -EINVAL"
        if n == 0:
            return "length 0: returns 0"
        if page_align(n) == 0:
            return "PAGE_ALIGN(length) wraps to 0: -ENOMEM"
        return None
    if op == "madvise":
        if a % PAGE_SIZE:
            return "address not page aligned: -EINVAL"
        if n == 0:
            return "length 0: returns 0"
        if page_align(n) == 0:
            return "PAGE_ALIGN(length) wraps to 0: -EINVAL"
        return None
    if op in ("mlock", "munlock"):
        lo, hi = extent(call)
        return "empty range after rounding: returns 0" if hi == lo else None
    return None


def refusal(call: Call, window_size: int) -> str | None:
    """Why a runner must not execute ``call``, or None when it may.

    Both runners (real.py, model.py) apply this same rule, so a refused call compares equal.
    The rule never guesses what the kernel will answer; a call runs only if one of these holds:

    1. the kernel rejects it, or finds nothing to do, in an argument check that comes before
       it looks at any VMA and depends on the call's own arguments alone
       (:func:`pure_rejection` lists each check, quoted from the kernel);
    2. its :func:`extent` -- the whole range it can act on, as the kernel rounds it --
       lies inside the window ``[0, window_size)``: load, store, munmap, mprotect, madvise,
       mlock, munlock, and every mmap whose placement is forced (MAP_FIXED or
       MAP_FIXED_NOREPLACE), whatever its flags, file or offset;
    3. it is an mmap whose placement the kernel chooses (a hint or none, no MAP_FIXED, no
       MAP_FIXED_NOREPLACE): get_unmapped_area() returns only free space, so it never
       replaces a mapping, and the runner unmaps the result at once if it is not inside the
       window (:func:`placement`);
    4. it is fork.

    Whatever else holds, these are refused:

    - an anonymous MAP_HUGETLB mmap, unless its offset is unaligned (rule 1): the kernel
      rounds its length up to the huge page size (2 MiB or 1 GiB, by the MAP_HUGE_* bits and
      the machine's default_hugepagesz), so its extent is not ``PAGE_ALIGN(len)``, and whether
      it succeeds depends on the machine's huge page pool (hugetlb is not modelled);
    - a populating mmap (MAP_POPULATE, MAP_LOCKED) larger than the window, and a mapping over
      1 GiB without MAP_NORESERVE: their cost, or the overcommit heuristic, depends on the
      machine.

    mprotect with PROT_GROWSDOWN extends its range down to the start of the VMA containing
    ``addr``; that VMA lies inside the window, because no VMA crosses the window's boundary:
    nothing outside the window is ever mapped for longer than the immediate munmap of a
    non-fixed mmap placed there, and the real child checks this after every call.

    Outside the window the real process has its own mappings (the Python interpreter) and the
    model has none: a call reaching there would compare nothing and could crash the runner.
    """
    op = call.op
    if op == "fork":
        return None
    if op == "mmap":
        if call.flags & MAP_ANONYMOUS and call.flags & MAP_HUGETLB \
                and not call.offset % PAGE_SIZE:
            return "anonymous MAP_HUGETLB (hugetlb is not modelled; the huge page size and " \
                   "pool depend on the machine)"
        if pure_rejection(call) is not None:
            return None
        alen = page_align(call.length)
        if call.flags & (MAP_POPULATE | MAP_LOCKED) and alen > window_size:
            return "populating mapping larger than the window"
        if alen > MAX_CHARGED_MMAP and not call.flags & MAP_NORESERVE:
            return "mapping larger than 1 GiB without MAP_NORESERVE (overcommit depends " \
                   "on the machine)"
    elif pure_rejection(call) is not None:
        return None
    ext = extent(call)
    if ext is None:
        return None                        # a non-fixed mmap: the kernel picks free space
    lo, hi = ext
    if 0 <= lo <= hi <= window_size:
        return None
    if op == "mmap":
        what = "MAP_FIXED_NOREPLACE" if call.flags & MAP_FIXED_NOREPLACE else "MAP_FIXED"
        return f"{what} range outside the window"
    if op in ("load", "store"):
        return "access outside the window"
    return "range outside the window"


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
