"""explore --checkpoint (checker/checkpoint.py): an exploration stopped any number of times
and resumed from its file finds what one uninterrupted search finds; a checkpoint that
forgets the units it had not finished (or not yet considered) is caught; a file of another search, or not a
checkpoint at all, is one line and exit 2."""

from __future__ import annotations

import functools
import json
import signal
import subprocess
import sys
import time

import pytest

from unmapcheck.checker import checkpoint as CP
from unmapcheck.checker.backend import Backend
from unmapcheck.checker.cli import main
from unmapcheck.checker.parallel import explore_parallel
from unmapcheck.proofs import SCENARIO_DIR

from scenario_gen import generate
from test_parallel import SEEDS, _brute, _same

S99 = str(SCENARIO_DIR / "99baac21e458-parallel-dontneed.toml")


def _in_slices(sc, bound, path, slice_executions: int) -> tuple:
    """Explore *sc* at *bound* in sessions of at most *slice_executions* more executions
    each, every session a fresh process's view: the checkpoint re-read from its file."""
    ident = CP.identity(sc, bound)
    sessions = 0
    while True:
        sessions += 1
        cp = CP.Checkpoint.open(str(path), ident, len(sc.threads))
        done = 0 if cp.current is None else \
            json.loads(json.dumps(cp.current[1]))["merged"]["stats"]["executions"]
        run = functools.partial(explore_parallel, backend=Backend(0), split=3,
                                max_executions=done + slice_executions)
        res = cp.rounds_runner(run)(sc, bound)
        if res.stats.complete:
            return res, sessions
        assert sessions < 500, "the resumed search makes no progress"


@pytest.mark.parametrize("bound", [1, pytest.param(None, marks=pytest.mark.slow)])
def test_a_search_resumed_many_times_matches_brute_force(tmp_path, bound):
    compared = resumed = 0
    for seed in SEEDS:
        sc = generate(seed)
        brute = _brute(sc, bound)
        if brute is None:
            continue
        path = tmp_path / f"cp-{seed}-{bound}.json"
        res, sessions = _in_slices(sc, bound, path, 3)
        _same(sc, bound, res, brute)
        compared += 1
        resumed += sessions > 1
        # A finished search's checkpoint gives its result again, without running.
        again = CP.Checkpoint.open(str(path), CP.identity(sc, bound),
                                   len(sc.threads)).rounds_runner(
            lambda *a, **k: pytest.fail("a finished round ran again"))(sc, bound)
        assert again.outcomes == res.outcomes and again.violated() == res.violated()
        assert again.stats.executions == res.stats.executions
    assert compared >= 4 and resumed >= 3


def test_a_checkpoint_that_forgets_unfinished_units_is_caught(tmp_path, monkeypatch):
    real = CP._coordinator_to_json

    def forgetful(c):
        d = real(c)
        d["pending"], d["handed"] = [], []
        return d
    monkeypatch.setattr(CP, "_coordinator_to_json", forgetful)
    for seed in SEEDS:
        sc = generate(seed)
        brute = _brute(sc, 1)
        if brute is None:
            continue
        res, _ = _in_slices(sc, 1, tmp_path / f"cp-{seed}.json", 3)
        if res.outcomes != brute.outcomes or res.violated() != brute.violated():
            return
    pytest.fail("forgetting the unfinished units lost nothing on any generated scenario")


def test_cli_stops_on_a_budget_and_resumes_to_the_verdict(tmp_path, capsys):
    cp = tmp_path / "cp.json"
    assert main(["explore", S99, "--preemptions", "1", "--checkpoint", str(cp),
                 "--max-executions", "40", "--json"]) == 3
    first = json.loads(capsys.readouterr().out)
    assert not first["stats"]["complete"] and cp.exists()
    assert main(["explore", S99, "--preemptions", "1", "--checkpoint", str(cp), "--json"]) == 0
    done = json.loads(capsys.readouterr().out)
    assert done["verdict"] == "PROVED" and done["stats"]["complete"]
    # With the fix off, a resumed search still finds the bug.
    cp2 = tmp_path / "cp2.json"
    assert main(["explore", S99, "--without", "99baac21e458", "--preemptions", "1",
                 "--checkpoint", str(cp2), "--max-executions", "2"]) in (1, 3)
    capsys.readouterr()
    assert main(["explore", S99, "--without", "99baac21e458", "--preemptions", "1",
                 "--checkpoint", str(cp2), "--json"]) == 0
    assert "I1" in json.loads(capsys.readouterr().out)["violations"]


def _one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err, err
    return err


def test_a_checkpoint_of_another_search_is_refused(tmp_path, capsys):
    cp = tmp_path / "cp.json"
    assert main(["explore", S99, "--preemptions", "0", "--checkpoint", str(cp)]) == 0
    capsys.readouterr()
    for other in (["--preemptions", "1"], ["--preemptions", "0", "--without", "99baac21e458"]):
        assert main(["explore", S99, *other, "--checkpoint", str(cp)]) == 2
        err = _one_line(capsys)
        assert "a checkpoint of another search" in err and str(cp) in err


@pytest.mark.parametrize("content, what", [
    (b"", "not a readable checkpoint"),
    (b"\xff\xfe", "not a readable checkpoint"),
    (b"[1, 2]", "not an unmapcheck checkpoint"),
    (b'{"format": "unmapcheck-trace"}', "not an unmapcheck checkpoint"),
    (b'{"format": "unmapcheck-checkpoint", "version": 99}', "version 99"),
])
def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path, capsys, content, what):
    cp = tmp_path / "cp.json"
    cp.write_bytes(content)
    assert main(["explore", S99, "--preemptions", "0", "--checkpoint", str(cp)]) == 2
    assert what in _one_line(capsys)
    assert cp.read_bytes() == content                # never overwritten


def test_a_damaged_checkpoint_of_this_search_is_refused(tmp_path, capsys):
    cp = tmp_path / "cp.json"
    assert main(["explore", S99, "--preemptions", "1", "--checkpoint", str(cp)]) == 0
    capsys.readouterr()
    doc = json.loads(cp.read_text())
    doc["rounds"] = {"x": {"stats": 5}}
    cp.write_text(json.dumps(doc))
    assert main(["explore", S99, "--preemptions", "1", "--checkpoint", str(cp)]) == 2
    assert "malformed checkpoint" in _one_line(capsys)


def test_a_checkpoint_naming_a_thread_the_scenario_lacks_is_refused(tmp_path, capsys):
    cp = tmp_path / "cp.json"
    assert main(["explore", S99, "--preemptions", "1", "--checkpoint", str(cp),
                 "--max-executions", "20"]) == 3
    capsys.readouterr()
    doc = json.loads(cp.read_text())
    assert doc["current"] is not None
    doc["current"]["state"]["pending"] = [[0, 7]]
    cp.write_text(json.dumps(doc))
    assert main(["explore", S99, "--preemptions", "1", "--checkpoint", str(cp)]) == 2
    err = _one_line(capsys)
    assert "malformed checkpoint" in err and "thread 7" in err


def test_checkpoint_is_for_the_dpor_search(capsys):
    assert main(["explore", S99, "--random", "5", "--checkpoint", "x.json"]) == 2
    assert "--checkpoint" in _one_line(capsys)


def test_sigterm_saves_the_checkpoint(tmp_path):
    """A search stopped by SIGTERM leaves a checkpoint a later run resumes from."""
    cp = tmp_path / "cp.json"
    proc = subprocess.Popen([sys.executable, "-m", "unmapcheck.checker.cli", "explore", S99,
                             "--preemptions", "none", "--checkpoint", str(cp)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Wait until the bounded rounds (0, 1, 2) are saved, so that the signal lands in the
    # unbounded round (a fixed sleep could land in a bounded one on a loaded machine), then
    # stop the search.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            if len(json.loads(cp.read_text()).get("rounds") or ()) >= 3:
                break
        except (OSError, ValueError):
            continue
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (out, err)
    doc = json.loads(cp.read_text())
    assert doc["format"] == "unmapcheck-checkpoint" and doc["rounds"]
    assert doc["current"] is not None and doc["current"]["state"]["pending"]


def test_the_coordinators_state_survives_the_file():
    """What is written is what is read back: queued (rebuilt from order), order, pending,
    handed, and the merged results."""
    states = []
    for seed in SEEDS:
        sc = generate(seed)
        explore_parallel(sc, 1, backend=Backend(0), split=3, max_executions=4,
                         on_state=states.append)
    assert states
    for st in states:
        back = CP._coordinator_from_json(json.loads(json.dumps(CP._coordinator_to_json(st))))
        assert back.queued == st.queued and back.order == st.order
        assert back.pending == st.pending and back.handed == st.handed
        assert back.merged.outcomes == st.merged.outcomes
        assert back.merged.outcome_counts == st.merged.outcome_counts
        assert back.merged.violated() == st.merged.violated()
        assert back.merged.stats == st.merged.stats
