"""The printed reproduce command reproduces: run it and get the same trace, byte for byte."""

from __future__ import annotations

import json
import shlex

import pytest

from unmapcheck.checker.cli import main
from unmapcheck.proofs import SCENARIO_DIR

S99 = str(SCENARIO_DIR / "99baac21e458-parallel-dontneed.toml")


@pytest.mark.parametrize("extra", [
    # (the unbounded default: 9.5 s here; the bounded, random, PCT and capped forms below
    # replay through the same printed command)
    pytest.param([], marks=pytest.mark.slow),
    ["--preemptions", "1"],
    ["--random", "300", "--seed", "4"],
    ["--random", "40", "--seed", "1", "--pct", "3"],
    ["--max-executions", "500"],
])
def test_the_printed_command_gives_the_same_trace(tmp_path, capsys, extra):
    first = tmp_path / "first.json"
    # (A random search is never complete, so the scenario's outcome condition may be left
    # UNKNOWN, exit 3: the second run must agree on that too.)
    rc = main(["explore", S99, "--without", "99baac21e458", *extra, "--trace-out", str(first)])
    assert rc in (0, 3)
    out = capsys.readouterr().out
    doc = json.loads(first.read_text())
    cmd = doc["command"]
    assert f"reproduce: {cmd}" in out
    words = shlex.split(cmd)
    assert words[:2] == ["unmapcheck", "explore"]
    for opt in extra:                         # every option that shaped the search is there
        assert opt in words
    again = tmp_path / "again.json"
    assert main(words[1:] + ["--trace-out", str(again)]) == rc
    capsys.readouterr()
    assert again.read_bytes() == first.read_bytes()


def test_random_and_pct_counterexamples_are_minimised(tmp_path, capsys):
    # Unminimised, seed 4's I1 schedule has 13 preemptions; DPOR's has 1.
    for extra in (["--random", "300", "--seed", "4"], ["--random", "40", "--seed", "1",
                                                       "--pct", "3"]):
        t = tmp_path / "t.json"
        assert main(["explore", S99, "--without", "99baac21e458", *extra, "--json",
                     "--trace-out", str(t)]) in (0, 3)
        doc = json.loads(capsys.readouterr().out)
        assert doc["violations"]["I1"]["preemptions"] == 1
        assert json.loads(t.read_text())["preemptions"] == 1
