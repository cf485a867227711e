"""Fuzzing the scenario input surface (issue 15): the loader, then the model, on mutated corpus
scenarios.

The corpus files (proofs/scenarios/*.toml) are mutated at the byte level (bits flipped, bytes
inserted and deleted, truncation, invalid UTF-8, deep nesting, lines duplicated) and at the
TOML level (parsed with tomllib; a value at a random path replaced by one of another type: a
boolean, an integer (huge, negative), a string ("", "false", control characters), an array, a
table, a deeply nested value; keys deleted; array entries duplicated or dropped; numbers
nudged), re-serialised by a small TOML writer below, and loaded. Whatever the input:

- the loader either accepts it or raises ScenarioError with one line starting with the path;
- what it accepts can be set up and run: ``Execution(sc)`` and at most 200 steps (always the
  first enabled thread), then ``close()``, raise nothing but a one-line ScenarioError (a setup
  the loader could not rule out, or an op outside the model): violations are recorded, never
  raised.

A third source writes scenarios from scratch (generate(): mostly well-formed, with edge-case
op arguments, several processes, files and actors), so that much of what reaches the model is
what a user would write.

The default run is 8,000 inputs in about 12 s (derandomized, no example database:
reproducible); ``pytest -m slow`` runs 60,000.
"""

from __future__ import annotations

import datetime
import math
import random
import tomllib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from unmapcheck.checker.runtime import Execution
from unmapcheck.checker.scenario import ScenarioError, parse, parse_bytes
from unmapcheck.proofs import scenario_paths

PATH = "fuzz.toml"
MAX_STEPS = 200

CORPUS = [(p.name, p.read_bytes()) for p in sorted(map(Path, scenario_paths()))]
DOCS = [(name, tomllib.loads(raw.decode())) for name, raw in CORPUS]


# --- a small TOML writer -------------------------------------------------------------------
def _key(k: str) -> str:
    return _string(k)


def _string(s: str) -> str:
    out = ['"']
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ord(ch) < 0x20 or ord(ch) == 0x7f:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


class Deep:
    """A value nested *n* deep (arrays and inline tables), written out without recursion."""

    def __init__(self, n: int, leaf: str):
        self.n, self.leaf = n, leaf

    def text(self) -> str:
        opens = "".join("[" if i % 2 else "{a = " for i in range(self.n))
        closes = "".join("]" if i % 2 else "}" for i in reversed(range(self.n)))
        return opens + self.leaf + closes


def _value(v) -> str:
    """One TOML value on one line (inline tables and arrays)."""
    if isinstance(v, Deep):
        return v.text()
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v) if abs(v) < 1 << 64 else hex(v) if v > 0 else str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, (datetime.datetime, datetime.date, datetime.time)):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def dumps(doc: dict) -> str:
    """*doc* as TOML: top-level values first, then ``[table]`` and ``[[array]]`` sections
    (their contents inline), so that the loader's line finding sees headers too."""
    head, body = [], []
    for k, v in doc.items():
        if isinstance(v, dict):
            body.append(f"[{_key(k)}]")
            body += [f"{_key(a)} = {_value(b)}" for a, b in v.items()]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for x in v:
                body.append(f"[[{_key(k)}]]")
                body += [f"{_key(a)} = {_value(b)}" for a, b in x.items()]
        else:
            head.append(f"{_key(k)} = {_value(v)}")
    return "\n".join(head + body) + "\n"


def test_the_writer_round_trips_the_corpus():
    for name, doc in DOCS:
        assert tomllib.loads(dumps(doc)) == doc, name
        parse(dumps(doc), name)


# --- mutations -----------------------------------------------------------------------------
STRINGS = ["", "false", "true", "no", "0", "x", "p", "T0", "T1", "f", "victim", "rw", "none",
           "write", "MADV_DONTNEED", "MADV_PAGEOUT", "MADV_REMOVE", "MAP_SHARED", "exit",
           "load", "oom_reaper", "migrate", "writeback", "99baac21e458", "5.x", "arm64",
           "line\nbreak", "\x1b[2J", "tab\there", "\x00", " p", "p ", "\u202eevil", "x" * 300,
           "0x7f0000000000", "-1", "9" * 30, "I1", "LOST_WRITE", "T0[0] == 0"]
INTS = [0, 1, 2, 3, -1, -4096, 7, 8, 9, 64, 65, 255, 256, 511, 512, 4096, 4097, 1 << 20,
        1 << 31, 1 << 32, 1 << 36, 1 << 47, (1 << 47) - 4096, (1 << 47) - 8192, 1 << 63,
        (1 << 64) - 1, 1 << 64, -(1 << 63), 0x7f0000000000, 0x7f0000001000, 0x7f0000003000,
        0x7ffffffff000, 0x10000000, 10**6, 10**6 + 1, 10**9 + 1, 10**30]


def _random_value(rng: random.Random, depth: int = 0):
    kind = rng.choice(["bool", "int", "int", "str", "str", "float", "list", "table", "deep",
                       "date"])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "int":
        return rng.choice(INTS) if rng.random() < 0.8 else rng.randint(-(1 << 70), 1 << 70)
    if kind == "str":
        return rng.choice(STRINGS)
    if kind == "float":
        return rng.choice([0.0, 1.5, -2.0, float("inf"), float("nan")])
    if kind == "date":
        return datetime.date(2024, 1, 1)
    if kind == "list" and depth < 3:
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if kind == "table" and depth < 3:
        return {rng.choice(["name", "op", "addr", "x", "pages", "fixes", "never"]):
                _random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    if kind == "deep":
        return Deep(rng.choice([3, 8, 40, 200, 900]), rng.choice(["1", '"x"', "{}", "[]"]))
    return rng.choice(INTS)


def _containers(doc) -> list:
    """Every (container, key) in *doc*: dict keys and list indices, at any depth."""
    out = []
    stack = [doc]
    while stack:
        c = stack.pop()
        items = c.items() if isinstance(c, dict) else enumerate(c)
        for k, v in items:
            out.append((c, k))
            if isinstance(v, (dict, list)):
                stack.append(v)
    return out


def _nudge(rng: random.Random, v):
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + rng.choice([-1, 1, -4096, 4096, 0x1000 * rng.randint(1, 8), -v, v])
    if isinstance(v, str):
        return rng.choice([v + "x", v[:-1], v.upper(), v + v, ""])
    return _random_value(rng)


def _leaves(doc) -> list:
    return [c[k] for c, k in _containers(doc) if not isinstance(c[k], (dict, list))]


# Every scalar of the corpus: a value replaced by one of these keeps its type but changes
# meaning (another name, another address, another op), which reaches past the type checks.
POOL = sorted({repr(v): v for _, d in DOCS for v in _leaves(d)}.values(), key=repr)


def mutate_toml(rng: random.Random, doc: dict) -> dict:
    import copy
    doc = copy.deepcopy(doc)
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
        slots = _containers(doc)
        if not slots:
            break
        c, k = rng.choice(slots)
        what = rng.random()
        if what < 0.3:
            c[k] = _random_value(rng)
        elif what < 0.5:
            same = [v for v in POOL if type(v) is type(c[k])]
            c[k] = rng.choice(same or POOL)
        elif what < 0.65:
            c[k] = _nudge(rng, c[k])
        elif what < 0.78:
            del c[k]
        elif what < 0.93 and isinstance(c[k], list) and c[k]:
            i = rng.randrange(len(c[k]))
            c[k].insert(rng.randrange(len(c[k]) + 1), copy.deepcopy(c[k][i]))
        elif isinstance(c, dict):
            c[rng.choice(["colour", "name", "file", "process", "actor", "offset", "index",
                          "data", "mlock", "oom_victim", "fork_of", "program", "shared"])] = \
                _random_value(rng) if rng.random() < 0.5 else rng.choice(STRINGS)
        else:
            c[k] = _random_value(rng)
    return doc


INVALID_UTF8 = [b"\xff", b"\xc3", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80",
                b"\xe2\x82"]


def mutate_bytes(rng: random.Random, raw: bytes) -> bytes:
    data = bytearray(raw)
    for _ in range(rng.choice([1, 1, 2, 3])):
        what = rng.random()
        pos = rng.randrange(len(data) + 1)
        if what < 0.2 and data:
            i = min(pos, len(data) - 1)
            data[i] ^= 1 << rng.randrange(8)
        elif what < 0.35:
            data[pos:pos] = bytes([rng.randrange(256)])
        elif what < 0.5 and data:
            del data[pos:pos + rng.randint(1, 40)]
        elif what < 0.6:
            del data[pos:]
        elif what < 0.72:
            data[pos:pos] = rng.choice(INVALID_UTF8)
        elif what < 0.8:
            n = rng.choice([10, 200, 1000, 5000])
            data[pos:pos] = b"\nx = " + b"[" * n + b"]" * n + b"\n"
        elif what < 0.9:
            lines = bytes(data).split(b"\n")
            i = rng.randrange(len(lines))
            lines.insert(i, lines[i])
            data = bytearray(b"\n".join(lines))
        else:
            data[pos:pos] = rng.choice([b"{", b"}", b"[", b"]", b"=", b'"', b"\n[[thread]]\n",
                                        b"\x00", b"\r", b"#", b"0x", b"-"])
    return bytes(data)


# --- the property --------------------------------------------------------------------------
def check_one(load) -> str:
    """Load, then run briefly; return the outcome (for statistics). Fails the test on any
    exception but a one-line ScenarioError."""
    try:
        sc = load()
    except ScenarioError as e:
        _one_line(e)
        return "rejected"
    try:
        ex = Execution(sc)
    except ScenarioError as e:
        _one_line(e)
        return "setup refused"
    # The invariants are checked over every page at every step: a scenario with many pages
    # populated is run for fewer steps (no hang; the property is the same).
    pages = sum(m.pages for p in sc.processes for m in p.mappings if m.populate != "none"
                or m.mlock)
    try:
        for _ in range(MAX_STEPS if pages <= 16 else 5):
            enabled = ex.enabled()
            if not enabled:
                break
            ex.step(enabled[0])
    except ScenarioError as e:           # an op the model leaves out, when it is reached
        _one_line(e)
        return "op not modelled"
    finally:
        ex.close()
    if ex.violations:
        return "ran: violation"
    return "ran: finished" if ex.finished() else "ran: cut at 200 steps"


def _one_line(e: ScenarioError) -> None:
    msg = str(e)
    assert msg.startswith(PATH), msg
    assert "\n" not in msg and "\r" not in msg and msg.isprintable(), repr(msg)
    assert len(msg) < 1000, msg


def _bytes_case(rng: random.Random) -> str:
    name, raw = rng.choice(CORPUS)
    data = mutate_bytes(rng, raw)
    return check_one(lambda: parse_bytes(data, PATH))


def _toml_case(rng: random.Random) -> str:
    name, doc = rng.choice(DOCS)
    text = dumps(mutate_toml(rng, doc))
    return check_one(lambda: parse(text, PATH))


# Each input is made from a seed (random.Random(seed)): a failure names the seed, and
# `_toml_case(random.Random(SEED))` (or _bytes_case, _generated_case) reproduces it.
SEEDS = st.integers(0, 2**32 - 1)
_SETTINGS = dict(deadline=None, derandomize=True, database=None,
                 suppress_health_check=list(HealthCheck))


@settings(max_examples=2000, **_SETTINGS)
@given(SEEDS)
def test_fuzz_bytes(seed):
    event(_bytes_case(random.Random(seed)))


@settings(max_examples=4000, **_SETTINGS)
@given(SEEDS)
def test_fuzz_toml(seed):
    event(_toml_case(random.Random(seed)))


@pytest.mark.slow
@settings(max_examples=15000, **_SETTINGS)
@given(SEEDS)
def test_fuzz_bytes_long(seed):
    event(_bytes_case(random.Random(seed)))


@pytest.mark.slow
@settings(max_examples=25000, **_SETTINGS)
@given(SEEDS)
def test_fuzz_toml_long(seed):
    event(_toml_case(random.Random(seed)))


# --- generated scenarios -------------------------------------------------------------------
# Mutating the corpus mostly breaks types; these are scenarios written from scratch that are
# mostly well-formed, so that the model runs what the loader accepts: several processes (some
# forked, some OOM victims), file and anonymous mappings with every populate mode, mlock and
# data, ops with edge-case arguments, and actors.
BASE = 0x7F0000000000
ADDRS = [BASE, BASE + 0x1000, BASE + 0x2000, BASE + 0x200000, 0, 0x1000, (1 << 47) - 0x1000,
         1 << 47, (1 << 64) - 0x1000, BASE + 1]
LENS = [0x1000, 0x2000, 0x3000, 0, 1, 0x200000, (1 << 64) - 0x1000, 1 << 47]
ADVICE = ["MADV_DONTNEED", "MADV_FREE", "MADV_REMOVE", "MADV_WILLNEED", "MADV_COLD",
          "MADV_PAGEOUT", "MADV_POPULATE_READ", "MADV_POPULATE_WRITE", "MADV_DONTFORK",
          "MADV_WIPEONFORK", "MADV_COLLAPSE", "MADV_HUGEPAGE", "MADV_DONTNEED_LOCKED",
          "MADV_MERGEABLE", 999, "MADV_SEQUENTIAL", "MADV_NORMAL"]
FLAGS = ["MAP_PRIVATE|MAP_ANONYMOUS", "MAP_SHARED|MAP_ANONYMOUS", "MAP_SHARED|MAP_FIXED",
         "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED", "MAP_SHARED", "MAP_PRIVATE|MAP_ANONYMOUS|"
         "MAP_FIXED_NOREPLACE", "MAP_PRIVATE|MAP_ANONYMOUS|MAP_POPULATE",
         "MAP_PRIVATE|MAP_ANONYMOUS|MAP_GROWSDOWN", "MAP_HUGETLB|MAP_PRIVATE|MAP_ANONYMOUS",
         "MAP_SHARED_VALIDATE|MAP_ANONYMOUS", 0, "MAP_PRIVATE|MAP_ANONYMOUS|MAP_LOCKED"]
FIXES = ["99baac21e458", "7a30df49f63a", "1cf35d47712d", "5df397dec7c4", "687cb0884a71",
         "9f9f1acd713d", "7e7757876f25"]


def _gen_op(rng: random.Random, files: list) -> dict:
    op = rng.choice(["mmap", "munmap", "mprotect", "madvise", "mlock", "munlock", "mlockall",
                     "munlockall", "pwrite", "fork", "exec", "exit", "load", "store", "load",
                     "store"])
    o: dict = {"op": op}
    if op == "pwrite":
        o.update(offset=rng.choice([0, 0x1000, 0xfff, 1 << 40]), value=rng.randrange(256),
                 len=rng.choice([1, 2, 0x1000, 0x4001]))
        if files:
            o["file"] = rng.choice(files)["name"]
        return o
    if op == "mlockall":
        o["flags"] = rng.choice(["MCL_CURRENT", "MCL_FUTURE", "MCL_CURRENT|MCL_ONFAULT",
                                 "MCL_ONFAULT", 0, 8])
    if op not in ("fork", "exec", "exit", "mlockall", "munlockall"):
        o["addr"] = rng.choice(ADDRS)
    if op in ("munmap", "mprotect", "madvise", "mlock", "munlock", "mmap"):
        o["len"] = rng.choice(LENS)
    if op == "store":
        o["value"] = rng.randrange(256)
    if op in ("mprotect", "mmap"):
        o["prot"] = rng.choice(["rw", "r", "none", "rwx", 7, 0x1000000])
    if op == "madvise":
        o["advice"] = rng.choice(ADVICE)
    if op == "mmap":
        o["flags"] = rng.choice(FLAGS)
        if files and rng.random() < 0.5:
            o["file"] = rng.choice(files)["name"]
            o["offset"] = rng.choice([0, 4096, 1 << 63, (1 << 64) - 4096])
    return o


def generate(rng: random.Random) -> dict:
    cpus = rng.choice([1, 2, 3])
    top: dict = {"name": "gen", "cpus": cpus, "arch": rng.choice(["x86", "arm64"]),
                 "era": rng.choice(["6.18", "5.x", "7.0"])}
    if rng.random() < 0.3:
        top["fixes_off"] = rng.sample(FIXES, rng.randint(1, 2))
    doc: dict = {"scenario": top}
    if rng.random() < 0.3:
        doc["tunables"] = {rng.choice(["gather_bundle", "gather_batch", "table_batch",
                                       "gather_batch_count"]): rng.choice([1, 2]),
                           "capable": rng.random() < 0.5,
                           "fault_around_pages": rng.choice([1, 2, 16])}
    files = [{"name": f"f{i}", "size": rng.choice([0, 4096, 8192, 12288, 5000]),
              "shmem": rng.random() < 0.5} for i in range(rng.randint(0, 2))]
    if files:
        doc["file"] = files
    procs = []
    for i in range(rng.randint(1, 3)):
        p: dict = {"name": f"p{i}", "oom_victim": rng.random() < 0.4}
        if i and rng.random() < 0.4:
            p["fork_of"] = f"p{rng.randrange(i)}"
        maps = []
        for j in range(rng.randint(0, 3)):
            m = {"addr": BASE + 0x1000 * rng.choice([0, 1, 2, 3, 4, 8, 512])
                 + 0x400000 * (j + 3 * i), "pages": rng.choice([1, 2, 3]),
                 "prot": rng.choice(["rw", "r", "none", "rwx", "w", "x"]),
                 "shared": rng.random() < 0.4,
                 "populate": rng.choice(["none", "read", "write"]),
                 "populate_cpu": rng.randrange(cpus), "mlock": rng.random() < 0.2}
            if files and rng.random() < 0.5:
                m["file"] = rng.choice(files)["name"]
                if rng.random() < 0.3:
                    m["offset"] = 4096
            if rng.random() < 0.3:
                m["data"] = {"0": rng.randrange(256)}
            if rng.random() < 0.9:              # mostly consistent
                if "w" not in m["prot"]:
                    m.pop("data", None)
                    if m["populate"] == "write":
                        m["populate"] = "read"
                if m["prot"] == "none":
                    m["populate"], m["mlock"] = "none", False
                if "file" in m:
                    f = next(f for f in files if f["name"] == m["file"])
                    f["size"] = max(f["size"], (m["pages"] + ("offset" in m)) * 4096)
            maps.append(m)
        if maps:
            p["mapping"] = maps
        procs.append(p)
    doc["process"] = procs
    threads = []
    for i in range(rng.randint(1, 3)):
        kind = rng.choice([None, None, None, "oom_reaper", "writeback", "migrate"])
        t: dict = {"name": f"T{i}", "cpu": rng.randrange(cpus)}
        if kind is None:
            t["process"] = rng.choice(procs)["name"]
            t["program"] = [_gen_op(rng, files) for _ in range(rng.randint(1, 3))]
        elif kind == "writeback":
            if not files:
                continue
            t.update(actor=kind, file=rng.choice(files)["name"], index=rng.choice([0, 1]))
        else:
            t.update(actor=kind, process=rng.choice(procs)["name"])
            if kind == "oom_reaper" and rng.random() < 0.9:
                next(p for p in procs if p["name"] == t["process"])["oom_victim"] = True
            if kind == "migrate":
                t["addr"] = rng.choice(ADDRS)
        threads.append(t)
    if rng.random() < 0.9:                      # mostly no exit another thread could follow
        seen: set = set()
        for t in threads:
            if "program" in t:
                if t["process"] in seen or any(o["op"] == "exit" for o in t["program"]):
                    t["program"] = [o for o in t["program"] if o["op"] != "exit"] or \
                        [{"op": "load", "addr": BASE}]
                seen.add(t["process"])
    doc["thread"] = threads
    doc["expect"] = {"never": True}
    return doc


def _generated_case(rng: random.Random) -> str:
    text = dumps(generate(rng))
    return check_one(lambda: parse(text, PATH))


@settings(max_examples=2000, **_SETTINGS)
@given(SEEDS)
def test_fuzz_generated(seed):
    event(_generated_case(random.Random(seed)))


@pytest.mark.slow
@settings(max_examples=20000, **_SETTINGS)
@given(SEEDS)
def test_fuzz_generated_long(seed):
    event(_generated_case(random.Random(seed)))
