"""Fuzzing the oracle's sequence files: bad input gets one line and exit 2, never a traceback,
a hang or exit 0.

Seeds are saved sequences (the regression corpus's, hand-written ones, freshly generated
ones), written as TOML or JSON. Each input mutates one:

- bytes: flips, deletions, duplications, truncation, inserted tokens (NUL, invalid UTF-8,
  brackets, quotes, long digit strings, ``[[calls]]``), deep nesting;
- structure: a value of the wrong type (bool, float, string, list, table, deeply nested list),
  huge and negative numbers, bad names (a trailing newline, control characters, NUL, too long,
  empty), unknown and missing keys, unknown ops and flag names, no calls, too many calls,
  windows out of range, JSON with a key twice, NaN;
- the file itself: empty, a directory, /dev/null, a FIFO, a symlink to a device, too big, a
  name with a control character.

Every input goes through the loader (``sequence.load``): it returns a Sequence or raises
SequenceError with one line starting with the path; nothing else. A few hundred go through the
command line (``unmapcheck oracle --sequence FILE``: each valid one runs a real child and the
model): invalid input exits 2 with one line ``unmapcheck: error: PATH: ...`` and nothing on
stdout; valid input exits 0 or 1 (a mismatch is an answer); never a traceback. The statistics
are printed (``pytest -s``).
"""

from __future__ import annotations

import collections
import glob
import importlib.util
import json
import os
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unmapcheck.checker.cli import main
from unmapcheck.checker.oracle import real as R
from unmapcheck.checker.oracle import sequence as S
from unmapcheck.checker.oracle.sequence import Call, File, Sequence, SequenceError
from unmapcheck.checker.oracle.strategies import sequences

P = 4096
HERE = os.path.dirname(os.path.abspath(__file__))


# --- seeds ----------------------------------------------------------------------------------
def _regression_seeds() -> list[Sequence]:
    out = []
    for path in sorted(glob.glob(os.path.join(HERE, "regressions", "test_*.py"))):
        spec = importlib.util.spec_from_file_location(
            "_fuzz_seed_" + os.path.basename(path)[:-3], path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        if isinstance(getattr(mod, "SEQ", None), Sequence):
            out.append(mod.SEQ)
    return out


AF = S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED
SAVED = _regression_seeds() + [
    Sequence(calls=(Call.mmap(0, 2 * P, 3, AF), Call.store(0, 1),
                    Call.mprotect(0, 2 * P, 0), Call.munmap(P, P))),
    Sequence(window_pages=16, files=(File("f", 4 * P), File("g.x-1", 100)), calls=(
        Call.mmap(0, 4 * P, 3, S.MAP_SHARED | S.MAP_FIXED, "f"), Call.fork(),
        Call.madvise(0, P, 9), Call.mlock(1, P), Call.munlock(0, 2 * P), Call.load(5),
        Call.mmap(8 * P, P, 1, S.MAP_PRIVATE | S.MAP_FIXED_NOREPLACE, "g.x-1", P))),
    Sequence(calls=(Call.mmap(64 * P, P, 3, AF, None, 1 << 63),
                    Call.mmap(0, P, 3, AF | 0x40000))),
]
assert len(SAVED) >= 8


def seeds(max_calls: int = 8):
    """A saved sequence (three times in four: cheap to draw) or a freshly generated one."""
    saved = st.sampled_from(SAVED)
    return st.one_of(saved, saved, saved,
                     sequences(window_pages=16, max_calls=max_calls, max_files=2))


# --- values that do not belong ------------------------------------------------------------
class Deep:
    """A list nested ``depth`` deep, written out directly (json.dumps would recurse)."""

    def __init__(self, depth: int, opener: str = "["):
        self.depth, self.opener = depth, opener


BAD_NAMES = ["f\n", "f\r", "a\x00b", "", "x" * 65, "é", "../x", " f", "f ", "\x1b[31mf",
             "f\u2028", "-", "f\t", "\ud800", "f\\n"]
BAD_STRINGS = ["", "PROT_READ|", "|", "PROT_READ|__import__('os')", "MAP_" * 50,
               "0x", "0x" + "f" * 40, "9" * 5000, "1e9", "-0x1000", "MADV_HWPOISON",
               "MAP_FIXED | MAP_ANONYMOUS | PROT_READ", "nan", " 12 ", "1_000_", "0b101",
               "mremap", "\x00", "f\n"]
HUGE = [1 << 64, -(1 << 64), (1 << 64) - 1, -((1 << 64) - 1), 1 << 200, -(1 << 200),
        10 ** 4000, 1 << 63, -1, 2 ** 31, 2 ** 18 + 1, 0]


def bad_values(draw_depth: bool = True):
    vals = [st.sampled_from([True, False, 1.5, float("inf"), -0.0, None, [], {}, [1, 2],
                             {"op": "fork"}, "x"]),
            st.sampled_from(BAD_STRINGS), st.sampled_from(BAD_NAMES), st.sampled_from(HUGE),
            st.integers(), st.text(max_size=20)]
    if draw_depth:
        vals.append(st.sampled_from([50, 999, 1000, 5000, 100000]).map(Deep))
    return st.one_of(*vals)


# --- writers that take anything -----------------------------------------------------------
_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


def _toml_key(k) -> str:
    k = str(k)
    return k if k and set(k) <= _BARE else json.dumps(k)


def _int_text(v: int) -> str:
    try:
        return str(v)
    except ValueError:                            # over 4300 digits: str() refuses
        return "9" * 4500


def _toml_value(v) -> str:
    if isinstance(v, Deep):
        return "[" * v.depth + "1" + "]" * v.depth
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return _int_text(v)
    if isinstance(v, float):
        if v != v:
            return "nan"
        return {float("inf"): "inf", float("-inf"): "-inf"}.get(v, repr(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v if x is not None) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()
                               if x is not None) + "}"
    return json.dumps(str(v))


def to_toml(d) -> str:
    if not isinstance(d, dict):
        return f"calls = {_toml_value(d)}\n"
    out, tables = [], []
    for k, v in d.items():
        if v is None:
            continue
        if k in ("calls", "files") and isinstance(v, list) and v and \
                all(isinstance(x, dict) for x in v):
            tables.append((k, v))
        else:
            out.append(f"{_toml_key(k)} = {_toml_value(v)}")
    for k, v in tables:
        for t in v:
            out += ["", f"[[{k}]]"] + [f"{_toml_key(a)} = {_toml_value(b)}"
                                       for a, b in t.items() if b is not None]
    return "\n".join(out) + "\n"


def _json_value(v) -> str:
    if isinstance(v, Deep):
        return "[" * v.depth + "1" + "]" * v.depth
    if isinstance(v, bool) or v is None:
        return json.dumps(v)
    if isinstance(v, int):
        return _int_text(v)
    if isinstance(v, float):
        return json.dumps(v)                      # NaN, Infinity: not JSON, must be refused
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_json_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))}: {_json_value(x)}"
                               for k, x in v.items()) + "}"
    return json.dumps(str(v))


# --- mutations ----------------------------------------------------------------------------
@st.composite
def structural(draw, seq: Sequence, bounded: bool):
    """The seed as a document, with one to three values, keys or lists changed."""
    d = seq.to_dict()
    d["calls"] = [dict(c) for c in d["calls"]]
    if "files" in d:
        d["files"] = [dict(f) for f in d["files"]]
    dup_json_key = False
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from([
            "value", "value", "value", "top", "delete", "unknown key", "op", "file name",
            "no calls", "window", "nest calls", "dup key", "flags", "flags",
            "value", "value", "delete", "op", "file name", "top", "flags", "many calls"]))
        calls = d.get("calls")
        if kind in ("value", "delete", "unknown key", "op", "flags") and \
                (not isinstance(calls, list) or not calls or not isinstance(calls[0], dict)):
            kind = "top"
        if kind == "value":
            c = calls[draw(st.integers(0, len(calls) - 1))]
            if isinstance(c, dict) and c:
                key = draw(st.sampled_from(sorted(c, key=str)))
                c[key] = draw(bad_values(not bounded))
        elif kind == "top":
            d[draw(st.sampled_from(["window_pages", "files", "calls"]))] = \
                draw(bad_values(not bounded))
        elif kind == "delete":
            c = calls[draw(st.integers(0, len(calls) - 1))]
            if isinstance(c, dict) and c:
                del c[draw(st.sampled_from(sorted(c, key=str)))]
        elif kind == "unknown key":
            target = draw(st.sampled_from(["top", "call"]))
            key = draw(st.sampled_from(["lenght", "windows", "op2", "", "\n", "x" * 200]))
            (d if target == "top" else calls[0])[key] = 1
        elif kind == "op":
            calls[draw(st.integers(0, len(calls) - 1))]["op"] = draw(st.sampled_from(
                ["mremap", "exit", "MMAP", "mmap ", "", "__class__"] + BAD_NAMES))
        elif kind == "flags":
            c = calls[draw(st.integers(0, len(calls) - 1))]
            key = draw(st.sampled_from(["prot", "flags", "advice", "addr", "length", "offset",
                                        "byte", "file"]))
            c[key] = draw(st.one_of(st.sampled_from(BAD_STRINGS), st.sampled_from(HUGE),
                                    st.sampled_from(list(S.MAP_NAMES) + list(S.MADV_NAMES)
                                                    + [100, 101, "MADV_SOFT_OFFLINE"])))
        elif kind == "file name":
            d.setdefault("files", [{"name": "f", "size": P}])
            if isinstance(d["files"], list) and d["files"] and isinstance(d["files"][0], dict):
                d["files"][0][draw(st.sampled_from(["name", "size", "mode"]))] = \
                    draw(st.one_of(st.sampled_from(BAD_NAMES), st.sampled_from(HUGE)))
        elif kind == "no calls":
            d["calls"] = []
        elif kind == "many calls":
            plain = seq.to_dict()["calls"] or [{"op": "fork"}]
            n = draw(st.sampled_from([50, 200] if bounded else [200, 10000, 10001]))
            d["calls"] = (plain * (n // len(plain) + 1))[:n]
        elif kind == "window":
            d["window_pages"] = draw(st.sampled_from(
                [0, -1, 1, 2, 255, "64", "0x10", 1.0, True] +
                ([] if bounded else [S.MAX_WINDOW_PAGES, S.MAX_WINDOW_PAGES + 1, 1 << 70])))
        elif kind == "nest calls":
            d["calls"] = Deep(draw(st.sampled_from([3, 100, 5000])))
        elif kind == "dup key":
            dup_json_key = True
    return d, dup_json_key


# Values of the right type that a saved sequence would rarely hold: still valid input.
EDGE = {
    "addr": st.one_of(st.sampled_from([-1, -P, 1 << 47, 1 << 63, S.ULONG_MAX, -S.ULONG_MAX,
                                       "0x1000", "4_096"]), st.integers(-64 * P, 64 * P)),
    "length": st.one_of(st.sampled_from([0, 1, P - 1, S.ULONG_MAX, 1 << 63, S.TASK_SIZE,
                                         "0xffff_ffff_ffff_ffff"]), st.integers(0, 64 * P)),
    "offset": st.sampled_from([0, 1, P, 1 << 63, S.ULONG_MAX - P + 1, S.ULONG_MAX]),
    "prot": st.one_of(st.integers(0, 0x8), st.sampled_from(
        ["PROT_READ|PROT_GROWSDOWN", "PROT_GROWSUP", "PROT_GROWSDOWN|PROT_GROWSUP",
         "PROT_EXEC", "0xffffffff"])),
    "flags": st.lists(st.sampled_from(list(S.MAP_NAMES)), min_size=1, max_size=4).map(
        "|".join),
    "advice": st.one_of(st.sampled_from(list(S.MADV_NAMES)), st.integers(0, 30),
                        st.just(2 ** 31 - 1)),
    "byte": st.integers(0, 255),
}


@st.composite
def valid_edges(draw, seq: Sequence):
    """The seed with one to three fields of its calls set to unusual values of the right type
    (the sequence stays valid unless a call lost a field it needs)."""
    d = seq.to_dict()
    d["calls"] = [dict(c) for c in d["calls"]]
    if not d["calls"]:
        d["calls"] = [{"op": "load", "addr": 0}]
    for _ in range(draw(st.integers(1, 3))):
        c = d["calls"][draw(st.integers(0, len(d["calls"]) - 1))]
        fields = [n for n, _ in S.OPS[c["op"]] if n in EDGE]
        if fields:
            f = draw(st.sampled_from(fields))
            c[f] = draw(EDGE[f])
    return d


BYTE_TOKENS = [b"\x00", b"\xff", b"\xc3", b"[", b"]", b"{", b"}", b"\"", b"'", b"=", b",",
               b"\n", b"[[calls]]\n", b"[[files]]\n", b"op = \"fork\"\n", b"9" * 5000,
               b"0x" + b"f" * 64, b"[" * 3000, b"{\"a\":" * 3000, b"\\u0000", b"\\ud800",
               b"NaN", b"Infinity", b"true", b"-", b"#", b"\xef\xbb\xbf", b"\r\n", b"\t"]


@st.composite
def byte_level(draw, text: bytes):
    b = bytearray(text)
    for _ in range(draw(st.integers(1, 4))):
        if not b:
            b += draw(st.sampled_from(BYTE_TOKENS))
            continue
        i = draw(st.integers(0, len(b) - 1))
        kind = draw(st.sampled_from(["flip", "delete", "insert", "insert", "dup",
                                     "truncate"]))
        if kind == "flip":
            b[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "delete":
            del b[i:i + draw(st.integers(1, 16))]
        elif kind == "insert":
            b[i:i] = draw(st.one_of(st.sampled_from(BYTE_TOKENS), st.binary(max_size=8)))
        elif kind == "dup":
            j = min(len(b), i + draw(st.integers(1, 64)))
            b[j:j] = b[i:j]
        else:
            del b[i:]
    return bytes(b)


@st.composite
def mutated(draw, bounded: bool = False):
    """``(suffix, content)``: content is bytes, or a special file kind."""
    seq = draw(seeds())
    fmt = draw(st.sampled_from(["toml", "json"]))
    suffix = draw(st.sampled_from([f".{fmt}"] * 16 + ["", ".txt", f".{fmt}\n",
                                                       f"\x1b[1m.{fmt}"]))
    how = draw(st.sampled_from(["bytes", "bytes", "structure", "structure", "structure",
                                "file", "as is", "edge", "edge"]))
    if fmt == "toml":
        text = S.dumps_toml(seq, comment=draw(st.sampled_from([None, "seed"])))
    else:
        text = S.dumps_json(seq)
    if how == "as is":
        return suffix, text.encode()
    if how == "edge":
        d = draw(valid_edges(seq))
        return suffix, (to_toml(d) if fmt == "toml" else _json_value(d)).encode()
    if how == "bytes":
        return suffix, draw(byte_level(text.encode()))
    if how == "file":
        kind = draw(st.sampled_from(["empty", "blank", "dir", "devnull", "fifo", "symlink",
                                     "big", "bom"]))
        if kind == "big" and bounded:
            kind = "empty"
        return suffix, {"empty": b"", "blank": b"\n  \n# only a comment\n",
                        "bom": b"\xef\xbb\xbf" + text.encode()}.get(kind, kind)
    d, dup = draw(structural(seq, bounded))
    if fmt == "toml":
        return suffix, to_toml(d).encode("utf-8", "surrogatepass")
    body = _json_value(d)
    if dup and body.startswith("{"):
        body = "{\"window_pages\": 3, " + body[1:]
    return suffix, body.encode("utf-8", "surrogatepass")


def materialise(tmp: str, n: int, suffix: str, content) -> str:
    """Write the input as a file (or make the special file); return its path."""
    path = os.path.join(tmp, f"in{n}{suffix}")
    if isinstance(content, bytes):
        with open(path, "wb") as f:
            f.write(content)
    elif content == "dir":
        os.mkdir(path)
    elif content == "devnull":
        os.symlink(os.devnull, path)
    elif content == "fifo":
        os.mkfifo(path)
    elif content == "symlink":
        os.symlink("/dev/zero", path)
    elif content == "big":
        with open(path, "wb") as f:
            f.write(b"# padding\n" * (S.MAX_FILE_BYTES // 10 + 1))
    else:
        raise AssertionError(content)
    return path


STATS: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


def load_outcome(path: str) -> tuple[Sequence | None, str | None]:
    """The loader's answer: a Sequence, or the one-line message of its SequenceError (any
    other exception fails the test)."""
    try:
        return S.load(path), None
    except SequenceError as e:
        msg = str(e)
        assert "\n" not in msg and msg, repr(msg)
        assert msg.startswith(S.printable(path)), (msg, path)
        return None, msg


def _kind(msg: str, path: str) -> str:
    """``"field 'prot': expected"``, ``"not valid TOML"``, ``"cannot read"``: the message without
    the path, the line and the call's number."""
    import re
    rest = msg[len(S.printable(path)):].lstrip(":0123456789 ")
    rest = re.sub(r"^(call|file) \d+( \(\w+\))?: ", "", rest)
    head, _, tail = rest.partition(": ")
    if head.startswith("field ") and tail:
        head = f"{head}: {' '.join(tail.split()[:2])}"
    if head.startswith(("unknown top-level key", "unknown field")) or \
            "unknown field" in head:
        return "unknown key"
    return re.sub(r"\(.*", "", " ".join(head.split()[:4])).strip()


FUZZ = dict(derandomize=True, deadline=None, database=None,
            suppress_health_check=list(HealthCheck))


def _loader_fuzz(tmp_path, n_examples: int, name: str):
    tmp = str(tmp_path)
    counter = [0]

    @settings(max_examples=n_examples, **FUZZ)
    @given(mutated())
    def check(inp):
        counter[0] += 1
        path = materialise(tmp, counter[0], *inp)
        t0 = time.monotonic()
        seq, msg = load_outcome(path)
        assert time.monotonic() - t0 < 10, "the loader took too long"
        s = STATS[name]
        s["inputs"] += 1
        if seq is not None:
            s["valid"] += 1
            assert seq.calls
        else:
            s["invalid"] += 1
            s["error: " + _kind(msg, path)] += 1

    check()
    print(f"\n{name}: " + ", ".join(f"{k} {v}" for k, v in STATS[name].most_common()))
    assert STATS[name]["valid"] and STATS[name]["invalid"]


def _cli_fuzz(tmp_path, capsys, n_examples: int, name: str):
    try:
        R.check_real_kernel()
        R.probe_library()
    except R.OracleUnavailable as e:
        pytest.skip(str(e))
    tmp = str(tmp_path)
    counter = [0]
    capsys.readouterr()

    @settings(max_examples=n_examples, **FUZZ)
    @given(mutated(bounded=True))
    def check(inp):
        counter[0] += 1
        path = materialise(tmp, counter[0], *inp)
        seq, msg = load_outcome(path)
        if seq is not None and (seq.window_pages > 256 or len(seq.calls) > 300):
            return            # a valid sequence too big for a quick run (the loader test has it)
        t0 = time.monotonic()
        rc = main(["oracle", "--sequence", path])
        took = time.monotonic() - t0
        out, err = capsys.readouterr()
        assert "Traceback" not in out + err
        assert took < 60, f"{took:.0f} s"
        s = STATS[name]
        s["inputs"] += 1
        s[f"exit {rc}"] += 1
        if seq is None:
            assert rc == 2, (rc, msg, out, err)
            assert out == ""
            assert err.splitlines() == [f"unmapcheck: error: {msg}"], (err, msg)
        else:
            assert rc in (0, 1), (rc, out, err)
            assert err == ""
            if rc == 1:
                s["mismatch: " + next((ln for ln in out.splitlines()
                                       if ln.startswith("MISMATCH")), "?")[:160]] += 1

    check()
    print(f"\n{name}: " + ", ".join(f"{k} {v}" for k, v in STATS[name].most_common()))
    assert STATS[name]["exit 2"] and (STATS[name]["exit 0"] + STATS[name]["exit 1"])


def test_fuzz_the_sequence_loader(tmp_path):
    _loader_fuzz(tmp_path, 1500, "loader")


def test_fuzz_oracle_replay_command_line(tmp_path, capsys):
    _cli_fuzz(tmp_path, capsys, 300, "cli")


@pytest.mark.slow
def test_fuzz_the_sequence_loader_long(tmp_path):
    _loader_fuzz(tmp_path, 30000, "loader (slow)")


@pytest.mark.slow
def test_fuzz_oracle_replay_command_line_long(tmp_path, capsys):
    _cli_fuzz(tmp_path, capsys, 3000, "cli (slow)")


# --- the cases the issue names, one by one ------------------------------------------------
@pytest.mark.parametrize("content, expected", [
    (b"", "no calls"),
    (b"\n# nothing\n", "no calls"),
    (b"calls = " + b"[" * 5000 + b"]" * 5000 + b"\n", "not valid TOML: nested too deeply"),
    (b'{"calls": ' + b"[" * 100000 + b"]" * 100000 + b"}", "not valid JSON: nested too deeply"),
    (b'[[files]]\nname = "f\\n"\nsize = 1\n[[calls]]\nop = "fork"\n',
     "file 0: field 'name': expected 1-64 characters"),
    (b'[[files]]\nname = "f\\u0000"\nsize = 1\n[[calls]]\nop = "fork"\n',
     "file 0: field 'name': expected 1-64 characters"),
    (b'[[calls]]\nop = "load"\naddr = ' + b"9" * 5000 + b"\n",
     "not valid TOML: an integer with more than 4300 digits"),
    (b'{"calls": [{"op": "load", "addr": 1, "addr": 2}]}', "duplicate key 'addr'"),
    (b'{"calls": [{"op": "load", "addr": NaN}]}', "not valid JSON: NaN is not a number"),
], ids=["empty", "comment only", "deep TOML", "deep JSON", "name with newline", "name with NUL",
        "5000 digits", "duplicate JSON key", "NaN"])
def test_named_bad_inputs_are_one_line_exit_2(tmp_path, capsys, content, expected):
    suffix = ".json" if content.startswith(b"{") else ".toml"
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(content)
    assert main(["oracle", "--sequence", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1, err
    assert err.startswith(f"unmapcheck: error: {path}") and expected in err, err


@pytest.mark.parametrize("kind", ["devnull", "dir", "fifo", "symlink"])
def test_a_file_that_is_not_regular_is_one_line_exit_2(tmp_path, capsys, kind):
    path = os.devnull if kind == "devnull" else materialise(str(tmp_path), 0, ".toml", kind)
    assert main(["oracle", "--sequence", path]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.splitlines() == [
        f"unmapcheck: error: {path}: cannot read: " + {
            "devnull": "a character device", "dir": "a directory", "fifo": "a FIFO",
            "symlink": "a character device"}[kind] + ", not a regular file"]


@pytest.mark.parametrize("name", ["seq.toml\n", "seq\x1b[31m.toml", "seq\x00.toml"])
def test_a_path_with_a_control_character_is_one_line_exit_2(tmp_path, capsys, name):
    path = str(tmp_path / name)
    if "\x00" not in name:
        S.save(SAVED[-2], path)                    # the file exists: still refused
    assert main(["oracle", "--sequence", path]) == 2
    out, err = capsys.readouterr()
    assert out == "" and len(err.splitlines()) == 1 and "\x1b" not in err
    assert err.rstrip("\n").endswith("the path contains a control character")
