"""Outcomes: each op's result is recorded and shown; litmus conditions are judged."""

from __future__ import annotations

import copy
import json

import pytest

from unmapcheck.checker.cli import main
from unmapcheck.checker.explore import iterative_context_bounding
from unmapcheck.checker.prove import FAILED, PROVED, judge
from unmapcheck.checker.scenario import ScenarioError, load, parse
from unmapcheck.checker.trace import counterexample_trace, render_text
from unmapcheck.proofs import SCENARIO_DIR

S99 = SCENARIO_DIR / "99baac21e458-parallel-dontneed.toml"


@pytest.mark.slow      # (12 s: explores 99baac21e458 both ways; the tests below judge outcomes)
def test_explore_lists_the_outcomes_with_their_counts(capsys):
    assert main(["explore", str(S99), "--outcomes"]) == 0
    fixed = capsys.readouterr().out
    assert "1 distinct outcome(s)" in fixed and "T0: [0, 0x00]  T1: [0]" in fixed
    assert main(["explore", str(S99), "--without", "99baac21e458", "--outcomes", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    reads = {o["results"]["T0"][1]: o["executions"] for o in doc["outcomes"]}
    assert set(reads) == {0, 0x41} and all(n >= 1 for n in reads.values())
    assert doc["outcome_expectations"][0]["status"] == PROVED


def test_a_condition_that_does_not_hold_fails_the_verdict():
    sc = load(S99)
    assert [str(oe.condition) for oe in sc.outcome_expect] == ["T0[1] == 0x41"]
    broken = copy.copy(sc)
    broken.fixes_off = ["99baac21e458"]       # the fix-on expectation, on the buggy kernel
    broken.expect_never = False
    broken.expect_sometimes = ["I1"]
    res = iterative_context_bounding(broken, 2, stop_at_first=False)
    v = judge(broken, res, "x", 0.0)
    assert v.status == FAILED and "T0[1] == 0x41" in v.detail
    ok = judge(sc.with_fixes_off(["99baac21e458"]), res, "x", 0.0)
    assert ok.status == PROVED


def test_the_trace_shows_each_result_at_its_step():
    sc = load(S99).with_fixes_off(["99baac21e458"])
    res = iterative_context_bounding(sc, 1)
    best = res.best()
    doc = counterexample_trace(sc, best).to_json()
    results = [(s["index"], r) for s in doc["steps"] for r in s.get("results", [])]
    assert any("madvise(" in r and r.endswith("= 0") for _, r in results)
    last = doc["steps"][-1]
    assert any(r.startswith("madvise(") for r in last["results"])   # returned at the end
    assert "=> madvise(" in render_text(doc)


BASE = """
[scenario]
name = "c"
[[process]]
name = "p"
[[process.mapping]]
addr = 0x7f0000000000
[[thread]]
name = "T0"
process = "p"
program = [ { op = "load", addr = 0x7f0000000000 } ]
[expect]
"""


@pytest.mark.parametrize("expect, message", [
    ('exists = "T0[0] =="', "expect.exists: column"),
    ('exists = "T9[0] == 1"', "no thread named 'T9'"),
    ('forall = "T0[1] == 1"', "T0[1]: thread T0 has 1 op(s)"),
    ('not_exists = 3', "expected a condition string"),
    ('exists = ["T0[0] == 0", "T0[0] == -ENOSUCH"]', "expect.exists[1]"),
])
def test_malformed_conditions_are_located_errors(expect, message):
    with pytest.raises(ScenarioError) as e:
        parse(BASE + expect, "c.toml")
    text = str(e.value)
    assert text.startswith("c.toml:") and message in text and "\n" not in text


def test_a_condition_alone_is_an_expectation():
    sc = parse(BASE + 'forall = "T0[0] == 0"', "c.toml")
    res = iterative_context_bounding(sc, 0, stop_at_first=False)
    assert judge(sc, res, "c", 0.0).status == PROVED
    sc = parse(BASE + 'exists = "T0[0] == 7"', "c.toml")
    res = iterative_context_bounding(sc, 0, stop_at_first=False)
    assert judge(sc, res, "c", 0.0).status == FAILED


def test_the_html_report_shows_the_results(tmp_path):
    from unmapcheck.checker.report import render_html
    sc = load(S99).with_fixes_off(["99baac21e458"])
    best = iterative_context_bounding(sc, 1).best()
    doc = counterexample_trace(sc, best).to_json()
    html = render_html(doc)
    assert '<ul class="ret">' in html
    assert "madvise(addr=0x7f0000000000, len=0x1000, MADV_DONTNEED) = 0" in html


def test_prove_traces_carry_a_reproduce_command(tmp_path, capsys):
    import shlex
    assert main(["prove", "scenario:99baac21e458-parallel-dontneed --without",
                 "--trace-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    [path] = list(tmp_path.glob("*.json"))
    doc = json.loads(path.read_text())
    words = shlex.split(doc["command"])
    assert words[:2] == ["unmapcheck", "explore"] and "--without" in words
    again = tmp_path / "again.json"
    assert main(words[1:] + ["--trace-out", str(again)]) == 0
    capsys.readouterr()
    assert json.loads(again.read_text())["schedule"] == doc["schedule"]
