"""Fuzzing the trace input surface (issue 15): `show`, `show --html` and `replay` on mutated
real traces.

Real counterexample traces of the corpus (made by `explore --trace-out` with a fix off) are
mutated at the JSON level (a value at a random path replaced by one of another type, a huge
number, a string with control characters or deep nesting; a key deleted; list elements
dropped, duplicated or swapped; numbers nudged) and at the byte level (truncation, invalid
UTF-8, stray bytes), and fed to the three consumers. Whatever the input:

- no exception escapes `main` (a traceback), and the exit status is 0, 1 or 2;
- `show` accepts (exit 0) exactly when `show --html` does: one validator;
- refused input is exit 2 with one line on stderr, `unmapcheck: error: ...`, and nothing on
  stdout; replay refuses what show refuses;
- what `show` prints has no raw control character; no `.tmp-*` file is left behind.

The default run is 1,300 inputs in about 17 s (reproducible: derandomized, no example
database); `pytest -m slow` runs 40,000.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import re

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from unmapcheck.checker.cli import main
from unmapcheck.proofs import SCENARIO_DIR

# Corpus scenarios with the fix whose absence they expose.
CORPUS = [("99baac21e458-parallel-dontneed.toml", "99baac21e458"),
          ("1cf35d47712d-5df397dec7c4-lost-write.toml", "1cf35d47712d"),
          ("687cb0884a71-oom-reaper-arm64.toml", "687cb0884a71")]

_RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


@pytest.fixture(scope="module", autouse=True)
def one_parser():
    """Build the argument parser once: an argparse parser is reusable, and building it is half
    the cost of a `main` call (the inputs are what is being tested, not the parser)."""
    from unmapcheck.checker import cli
    parser = cli.build_parser()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(cli, "build_parser", lambda: parser)
        yield


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[str, list[tuple[dict, bytes]]]:
    """A work folder and the real traces: (document, file contents) each."""
    work = str(tmp_path_factory.mktemp("fuzz-trace"))
    traces = []
    for name, fix in CORPUS:
        path = os.path.join(work, f"{fix}.json")
        with contextlib.redirect_stdout(io.StringIO()):
            main(["explore", str(SCENARIO_DIR / name), "--without", fix, "--trace-out", path])
        with open(path, "rb") as f:
            raw = f.read()
        doc = json.loads(raw)
        assert doc["violation"].get("group"), name
        traces.append((doc, raw))
    return work, traces


# --- mutations -----------------------------------------------------------------------------
DEEP = "\u0000deep\u0000"                          # placeholder, replaced in the JSON text
INTERESTING_STRINGS = ["", "T0", "T1", "T9", "I1", "I7", "LOST_WRITE", "DEADLOCK",
                       "99baac21e458", "99baac2", "deadbeef0000", "unmapcheck-trace",
                       "\x1b]0;title\x07", "\x1b[2J\x1b[H", "\x9b31m", "line\nbreak", "\ud800",
                       "\u202eevil", "#map", "#meta", "null", "1", "x" * 5000,
                       '[scenario]\nname = "x"\n', "[scenario\n"]

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 60),
    st.sampled_from([-1, 2 ** 63, -(2 ** 64), 10 ** 300, 10 ** 4000]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(INTERESTING_STRINGS),
    st.text(st.characters(categories=["Cc", "Cs", "L", "N", "P", "Zs"]),
            max_size=12),
    st.just(DEEP),
)
_values = st.recursive(_scalars, lambda c: st.lists(c, max_size=4) |
                       st.dictionaries(st.sampled_from(["name", "cpu", "role", "#map", "group",
                                                        "index", "x"]) | st.text(max_size=4),
                                       c, max_size=4), max_leaves=8)


def _walk(data, doc) -> tuple[object, object]:
    """A random (container, key) in *doc*, drawn by a random walk from the top."""
    parent, key, node = None, None, doc
    for _ in range(8):
        if not isinstance(node, (dict, list)) or not node:
            break
        if parent is not None and data.draw(st.integers(0, 3)) == 0:
            break
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        k = keys[data.draw(st.integers(0, len(keys) - 1))]
        parent, key, node = node, k, node[k]
    return parent, key


_strings = st.one_of(st.sampled_from(INTERESTING_STRINGS),
                    st.text(st.characters(categories=["Cc", "L", "N", "P", "S", "Zs"]),
                            max_size=12))


def _mutate_json(data, doc) -> None:
    if data.draw(st.integers(0, 9)) == 0:
        _cut(data, doc)
        event("json mutation: cut (consistent)")
        return
    parent, key = _walk(data, doc)
    if parent is None:
        return
    op = data.draw(st.sampled_from(["replace", "replace", "restring", "delete", "nudge", "dup",
                                    "swap", "empty", "deep"]))
    old = parent[key]
    if op == "delete":
        del parent[key]
    elif op == "restring" and isinstance(old, str):
        parent[key] = data.draw(_strings)      # mostly still valid: a display string
    elif op == "nudge" and isinstance(old, (int, float)) and not isinstance(old, bool):
        parent[key] = old + data.draw(st.sampled_from([-1, 1, -1000, 2 ** 70]))
    elif op == "dup" and isinstance(parent, list):
        parent.insert(key, old)
    elif op == "swap" and isinstance(parent, list) and len(parent) > 1:
        j = data.draw(st.integers(0, len(parent) - 1))
        parent[key], parent[j] = parent[j], parent[key]
    elif op == "empty" and isinstance(old, (dict, list, str)):
        parent[key] = type(old)()
    elif op == "deep":
        parent[key] = DEEP
    else:
        op = "replace"
        parent[key] = data.draw(_values)
    event(f"json mutation: {op}")


def _cut(data, doc) -> None:
    """A shorter trace that is still consistent: the first k steps (and states, schedule),
    the race dropped if it falls outside, the violation's step clamped. Replay then mostly
    finds that the schedule no longer fails."""
    try:
        k = data.draw(st.integers(0, len(doc["steps"])))
        doc["steps"], doc["schedule"] = doc["steps"][:k], doc["schedule"][:k]
        doc["states"] = doc["states"][:k + 1]
        doc["preemptions"] = sum(1 for s in doc["steps"] if s.get("preemption"))
        if any(r >= k for r in doc["race"]):
            doc["race"] = []
        doc["violation"]["step"] = min(doc["violation"]["step"], k - 1)
    except (KeyError, TypeError, AttributeError):   # an earlier mutation broke it
        pass


def _serialise(data, doc) -> bytes:
    text = json.dumps(doc)
    if DEEP in text or json.dumps(DEEP) in text:
        depth = data.draw(st.sampled_from([10, 500, 990, 5000, 100000]))
        text = text.replace(json.dumps(DEEP), "[" * depth + "]" * depth)
    return text.encode("utf-8", "surrogatepass")


def _mutate_bytes(data, raw: bytes) -> bytes:
    op = data.draw(st.sampled_from(["truncate", "invalid-utf8", "byte", "insert", "cut",
                                    "bom"]))
    event(f"byte mutation: {op}")
    pos = data.draw(st.integers(0, len(raw)))
    if op == "truncate":
        return raw[:pos]
    if op == "invalid-utf8":
        bad = data.draw(st.sampled_from([b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80",
                                         b"\xf4\x90\x80\x80", b"\xc0\xaf"]))
        return raw[:pos] + bad + raw[pos:]
    if op == "byte":
        return raw[:pos] + bytes([data.draw(st.integers(0, 255))]) + raw[pos + 1:]
    if op == "insert":
        return raw[:pos] + data.draw(st.binary(min_size=1, max_size=8)) + raw[pos:]
    if op == "cut":
        return raw[:pos] + raw[pos + data.draw(st.integers(1, 2000)):]
    return b"\xef\xbb\xbf" + raw


# --- the consumers -------------------------------------------------------------------------
def _run(argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as e:               # argparse; never expected for these argv
            rc = e.code if isinstance(e.code, int) else 2
    return rc, out.getvalue(), err.getvalue()


def _check_consumers(work: str, content: bytes) -> None:
    f = os.path.join(work, "in.json")
    html = os.path.join(work, "out", "r.html")
    os.makedirs(os.path.dirname(html), exist_ok=True)
    if os.path.exists(html):
        os.unlink(html)
    with open(f, "wb") as fh:
        fh.write(content)
    text = _run(["show", f])
    page = _run(["show", f, "--html", html])
    again = _run(["replay", f])
    for name, (rc, out, err) in (("show", text), ("show --html", page), ("replay", again)):
        assert rc in (0, 1, 2), (name, rc, err)
        assert "Traceback" not in err, (name, err)
        if rc == 2:
            lines = err.splitlines()
            assert len(lines) == 1 and lines[0].startswith("unmapcheck: error: "), (name, err)
            assert out == "", (name, out)
            assert not _RAW_CONTROL.search(err), (name, err)
    # One validator: text and HTML accept exactly the same traces.
    assert (text[0] == 0) == (page[0] == 0), (text, page)
    assert text[0] in (0, 2) and page[0] in (0, 2)
    assert not os.listdir(os.path.dirname(html)) or page[0] == 0
    assert not [n for n in os.listdir(os.path.dirname(html)) if n.startswith(".tmp-")]
    if text[0] == 0:
        assert not _RAW_CONTROL.search(text[1]), text[1]
        assert os.path.exists(html)
        event(f"accepted; replay exit {again[0]}")
    else:
        assert again[0] == 2, ("replay accepts what show refuses", again)
        event("refused")


SETTINGS = dict(derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])


def _json_case(corpus, data) -> None:
    work, traces = corpus
    doc, _ = traces[data.draw(st.integers(0, len(traces) - 1))]
    doc = pickle.loads(pickle.dumps(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate_json(data, doc)
    _check_consumers(work, _serialise(data, doc))


def _bytes_case(corpus, data) -> None:
    work, traces = corpus
    _, raw = traces[data.draw(st.integers(0, len(traces) - 1))]
    for _ in range(data.draw(st.integers(1, 2))):
        raw = _mutate_bytes(data, raw)
    _check_consumers(work, raw)


@settings(max_examples=300, **SETTINGS)
@given(data=st.data())
def test_fuzz_trace_json_mutations(corpus, data):
    _json_case(corpus, data)


@settings(max_examples=1000, **SETTINGS)
@given(data=st.data())
def test_fuzz_trace_byte_mutations(corpus, data):
    _bytes_case(corpus, data)


@pytest.mark.slow
@settings(max_examples=30000, **SETTINGS)
@given(data=st.data())
def test_fuzz_trace_json_mutations_long(corpus, data):
    _json_case(corpus, data)


@pytest.mark.slow
@settings(max_examples=10000, **SETTINGS)
@given(data=st.data())
def test_fuzz_trace_byte_mutations_long(corpus, data):
    _bytes_case(corpus, data)


def test_the_unmutated_traces_show_and_replay(corpus):
    work, traces = corpus
    for doc, raw in traces:
        f = os.path.join(work, "in.json")
        with open(f, "wb") as fh:
            fh.write(raw)
        assert _run(["show", f])[0] == 0
        assert _run(["show", f, "--html", os.path.join(work, "r.html")])[0] == 0
        rc, out, _ = _run(["replay", f])
        assert rc == 1 and "still fails" in out, out
