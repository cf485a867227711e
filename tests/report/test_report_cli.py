"""`unmapcheck show BAD.json --html OUT`: a malformed or truncated trace is one line on stderr
and exit status 2, never a traceback, and no report is written. And the real thing: a trace
from the scenario corpus, through `explore --html` and `show --html`."""

from __future__ import annotations

import json
import os

import pytest

from unmapcheck.checker.cli import main

from tracekit import make_trace

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def _good() -> dict:
    return make_trace()


def _without(*path):
    def f():
        doc = _good()
        d = doc
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
        return json.dumps(doc)
    return f


def _with(value, *path):
    def f():
        doc = _good()
        d = doc
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
        return json.dumps(doc)
    return f


CASES = {
    # truncated JSON: a trace cut off while being copied or written by something else
    "truncated": lambda: json.dumps(_good(), indent=1)[:2000],
    "truncated-at-end": lambda: json.dumps(_good())[:-1],
    "empty": lambda: "",
    "not-utf8": lambda: b"\xff\xfe{\"schema\": 1}",
    "too-deep": lambda: "[" * 100000,
    # wrong schema
    "json-array": lambda: "[1, 2, 3]",
    "other-schema": _with("itf", "schema"),
    "no-schema": _without("schema"),
    # unknown version
    "version-2": _with(2, "version"),
    "version-string": _with("1", "version"),
    "no-version": _without("version"),
    # missing or mistyped fields
    "no-steps": _without("steps"),
    "no-states": _without("states"),
    "no-threads": _without("threads"),
    "no-violation": _without("violation"),
    "no-scenario-text": _without("scenario", "text"),
    "step-without-function": _without("steps", 3, "function"),
    "step-without-changes": _without("steps", 3, "changes"),
    "state-not-itf": _with({"ptes": {"map": []}}, "states", 2),
    # what load_trace accepts but the report cannot show
    "states-missing-one": lambda: json.dumps({**_good(), "states": _good()["states"][:-1]}),
    "unknown-thread": _with("T7", "steps", 3, "thread"),
    "changes-not-a-list": _with(5, "steps", 3, "changes"),
    "bad-change": _with([["ptes"]], "steps", 3, "changes"),
    "race-out-of-range": _with([3, 99], "race"),
    "threads-not-objects": _with(["T0", "T1"], "threads"),
    # what the text display used to accept or crash on (issue 15): one validator now
    "fixes-off-null": _with(None, "fixes_off"),
    "fixes-off-nested": _with([["99baac21e458"]], "fixes_off"),
    "fixes-off-unknown": _with(["deadbeef0000"], "fixes_off"),
    "race-an-integer": _with(3, "race"),
    "race-one-step": _with([3], "race"),
    "step-thread-a-list": _with(["T1"], "steps", 3, "thread"),
    "step-index-wrong": _with(4, "steps", 3, "index"),
    "step-results-not-strings": _with([1, 2], "steps", 3, "results"),
    "step-preemption-a-string": _with("no", "steps", 3, "preemption"),
    "thread-cpu-a-bool": _with(True, "threads", 0, "cpu"),
    "thread-name-twice": _with("T1", "threads", 0, "name"),
    "schedule-names-no-thread": _with(7, "schedule", 0),
    "schedule-disagrees-with-steps": _with(0, "schedule", 3),
    "schedule-too-short": _with([1, 1], "schedule"),
    "preemptions-wrong": _with(9, "preemptions"),
    "preemptions-a-string": _with("2", "preemptions"),
    "violation-without-group": _without("violation", "group"),
    "violation-unknown-group": _with("I7", "violation", "group"),
    "violation-step-a-string": _with("13", "violation", "step"),
    "violation-message-a-list": _with(["x"], "violation", "message"),
    "version-true": _with(True, "version"),
    "lone-surrogate": lambda: json.dumps(_good()).replace("ptep_get_and_clear", "\\ud800"),
    "huge-number": lambda: json.dumps(_good()).replace('"index": 3', '"index": ' + "9" * 5000),
    "state-value-an-object": _with([["mm1 0x7f0000000000", {"a": 1}]], "states", 2, "ptes",
                                   "#map"),
}


@pytest.mark.parametrize("mode", ["text", "html"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_trace_is_one_line_and_exit_2(tmp_path, capsys, case, mode):
    """`show` and `show --html` refuse the same traces (one validator), with one line."""
    content = CASES[case]()
    bad = tmp_path / "BAD.json"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    out = tmp_path / "out.html"
    argv = ["show", str(bad)] + (["--html", str(out)] if mode == "html" else [])
    rc = main(argv)
    cap = capsys.readouterr()
    assert rc == 2, cap
    lines = cap.err.splitlines()
    assert len(lines) == 1, cap.err
    assert lines[0].startswith("unmapcheck: error: ")
    assert "Traceback" not in cap.err
    assert cap.out == ""
    assert not out.exists()
    assert sorted(os.listdir(tmp_path)) == ["BAD.json"]


def test_missing_file_is_one_line(tmp_path, capsys):
    rc = main(["show", str(tmp_path / "nope.json"), "--html", str(tmp_path / "o.html")])
    cap = capsys.readouterr()
    assert rc == 2 and len(cap.err.splitlines()) == 1 and "cannot read" in cap.err


def test_good_trace_writes_the_report(trace_file, tmp_path, capsys):
    out = tmp_path / "out.html"
    assert main(["show", trace_file, "--html", str(out)]) == 0
    cap = capsys.readouterr()
    assert cap.out.strip() == f"report written to {out}" and cap.err == ""
    text = out.read_text()
    assert text.startswith("<!DOCTYPE html>") and "I1.freed_frame" in text


SCENARIOS = os.path.join(ROOT, "proofs", "scenarios")
REAL = [("99baac21e458-parallel-dontneed.toml", ["99baac21e458"]),
        ("1cf35d47712d-5df397dec7c4-lost-write.toml", ["5df397dec7c4"])]


@pytest.mark.parametrize("name,without", REAL, ids=[n for n, _ in REAL])
def test_real_counterexample_explore_and_show_give_the_same_report(name, without, tmp_path,
                                                                   capsys):
    """Real traces of the corpus (the parallel MADV_DONTNEED bug and the lost write): the
    report holds every step, the violated invariant, and the race pair, highlighted and
    linked both ways; explore --html and show --html give the same file."""
    scenario = os.path.join(SCENARIOS, name)
    trace, html1, html2 = (str(tmp_path / n) for n in ("t.json", "a.html", "b.html"))
    argv = ["explore", scenario, "--trace-out", trace, "--html", html1]
    for c in without:
        argv += ["--without", c]
    main(argv)
    capsys.readouterr()
    assert os.path.exists(trace) and os.path.exists(html1)
    assert main(["show", trace, "--html", html2]) == 0
    with open(html1) as a, open(html2) as b:
        text = a.read()
        assert text == b.read()
    doc = json.load(open(trace))
    assert doc["violation"]["invariant"] in text
    for i in range(len(doc["steps"])):
        assert f'<tr id="s{i}" data-step="{i}"' in text
    a, b = doc["race"]
    assert f'<a href="#s{a}">step {a}</a>' in text and f'<a href="#s{b}">step {b}</a>' in text
