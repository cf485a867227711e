"""The explore, replay and show commands as a user runs them: output and exit codes."""

from __future__ import annotations

import json

from unmapcheck.checker.cli import main
from unmapcheck.proofs import SCENARIO_DIR

S99 = str(SCENARIO_DIR / "99baac21e458-parallel-dontneed.toml")


def test_explore_fixed_kernel_is_never(capsys):
    assert main(["explore", S99]) == 0
    out = capsys.readouterr().out
    assert "as expected" in out and "complete" in out


def test_explore_without_the_fix_finds_it_and_saves_a_replayable_trace(tmp_path, capsys):
    trace = tmp_path / "t.json"
    assert main(["explore", S99, "--without", "99baac21e458", "--trace-out", str(trace)]) == 0
    out = capsys.readouterr().out
    assert "VIOLATED I1.return" in out and "CPU0's TLB maps" in out
    doc = json.loads(trace.read_text())
    assert doc["schema"] == "unmapcheck-trace" and doc["violation"]["group"] == "I1"
    assert main(["replay", str(trace)]) == 1          # still fails
    assert "still fails" in capsys.readouterr().out
    assert main(["show", str(trace)]) == 0
    assert "VIOLATED I1.return" in capsys.readouterr().out


def test_explore_json(capsys):
    assert main(["explore", S99, "--without", "99baac2", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["verdict"] == "PROVED" and "I1" in doc["violations"]
    assert doc["stats"]["executions"] >= 1


def test_explore_random_and_pct_modes(capsys):
    assert main(["explore", S99, "--without", "99baac21e458", "--random", "200",
                 "--seed", "3", "--json"]) in (0, 3)     # 3: the outcome condition undecided
    doc = json.loads(capsys.readouterr().out)
    assert doc["stats"]["mode"] == "random" and doc["stats"]["executions"] >= 1
    assert main(["explore", S99, "--pct", "3", "--random", "50", "--seed", "1", "--json"]) == 3
    # A PCT campaign is never complete, so a `never` scenario is not proved by it.
    doc = json.loads(capsys.readouterr().out)
    assert doc["stats"]["mode"] == "pct" and doc["verdict"] == "UNKNOWN"


def test_usage_errors_exit_2_with_one_line(tmp_path, capsys):
    for argv in (["explore", str(tmp_path / "nope.toml")],
                 ["explore", S99, "--without", "0123456"],
                 ["explore", S99, "--preemptions", "-1"],
                 ["replay", str(tmp_path / "nope.json")]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("unmapcheck: error:") and "\n" not in err, err
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "unmapcheck-trace", "version": 1, "scen')
    assert main(["replay", str(bad)]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_replay_says_when_a_trace_no_longer_fails(tmp_path, capsys):
    trace = tmp_path / "t.json"
    main(["explore", S99, "--without", "99baac21e458", "--trace-out", str(trace)])
    capsys.readouterr()
    doc = json.loads(trace.read_text())
    doc["fixes_off"] = []                                 # the fix is back on
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(doc))
    assert main(["replay", str(fixed)]) == 0
    assert "no longer fails" in capsys.readouterr().out


SMALL = """
[scenario]
name = "load-vs-munmap"
cpus = 2

[[process]]
name = "p"
[[process.mapping]]
addr = 0x7f0000000000
pages = 3
prot = "rw"
populate = "write"
populate_cpu = 0

[[thread]]
name = "T0"
process = "p"
cpu = 0
program = [{ op = "load", addr = 0x7f0000002000 }]

[[thread]]
name = "T1"
process = "p"
cpu = 1
program = [{ op = "munmap", addr = 0x7f0000002000, len = 0x1000 }]

[expect]
never = true
"""


def test_explore_without_a_bound_covers_the_whole_space(tmp_path, capsys):
    """--preemptions none: bounds 0, 1, 2, then the unbounded search, complete; optimal DPOR
    and source-DPOR see the same outcomes (the load reads the byte or gets SIGSEGV)."""
    sc = tmp_path / "small.toml"
    sc.write_text(SMALL)
    docs = {}
    for dpor in ("optimal", "source"):
        assert main(["explore", str(sc), "--preemptions", "none", "--dpor", dpor,
                     "--outcomes", "--json"]) == 0
        docs[dpor] = json.loads(capsys.readouterr().out)
    for doc in docs.values():
        assert doc["stats"]["complete"] and doc["stats"]["preemption_bound"] is None
        assert doc["stats"]["executions"] >= doc["stats"]["complete_executions"] > 1
    outcomes = {d: sorted(json.dumps(o["results"], sort_keys=True) for o in doc["outcomes"])
                for d, doc in docs.items()}
    assert outcomes["optimal"] == outcomes["source"]
    assert any("SIGSEGV" in o for o in outcomes["optimal"])


def test_a_bad_preemption_bound_is_one_line_exit_2(capsys):
    for bad in ("nine", "-1", "65"):
        assert main(["explore", S99, "--preemptions", bad]) == 2
        err = capsys.readouterr().err.strip()
        assert "--preemptions" in err and "\n" not in err


def test_sigterm_ends_a_search_as_ctrl_c_does(tmp_path):
    """A search stopped by SIGTERM prints its statistics so far and exits 3 (unknown)."""
    import signal
    import subprocess
    import sys
    import time
    proc = subprocess.Popen([sys.executable, "-m", "unmapcheck.checker.cli", "explore", S99,
                             "--preemptions", "none"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(4)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    assert "interrupted" in out and "executions" in out
