"""unmapcheck hunt (checker/hunt/): random scenarios, explored, shrunk and written out.

The generator only draws what the loader accepts, with a bias to page-table boundaries; a
campaign is the same for the same seed and budget whatever runs it; with a historic fix
switched off a short hunt finds the bug without its hand-written scenario, shrinks it and
writes a scenario that reproduces it; on the correct kernel a short hunt finds nothing.
"""

from __future__ import annotations

import json
import random

import pytest

from unmapcheck.checker.backend import Backend
from unmapcheck.checker.cli import main
from unmapcheck.checker.hunt.campaign import hunt
from unmapcheck.checker.hunt.generate import PAGE, PMD_PAGES, Generator, Options
from unmapcheck.checker.scenario import parse


def test_generated_scenarios_load_and_sit_on_table_boundaries():
    g = Generator(Options())
    at_boundary = whole_table = actors = 0
    for i in range(300):
        s, text = g.scenario(random.Random(i), f"g{i}")
        sc = parse(text, "<g>")
        assert len(sc.threads) == len(s.threads) >= 2
        assert len({t.cpu for t in s.threads}) == len(s.threads)      # a CPU each
        maps = [m for p in s.processes for m in p.mappings]
        assert sum(len(p.mappings) for p in sc.processes) == len(maps)
        table = PMD_PAGES * PAGE
        at_boundary += any(m.addr % table == 0 or m.end % table == 0 for m in maps)
        whole_table += any(m.pages == PMD_PAGES for m in maps)
        actors += any(t.actor for t in s.threads)
    assert g.rejected < 30
    assert at_boundary > 150 and whole_table > 20 and actors > 30


def test_the_same_seed_draws_the_same_scenario():
    a = Generator(Options()).scenario(random.Random(7), "x")[1]
    b = Generator(Options()).scenario(random.Random(7), "x")[1]
    c = Generator(Options()).scenario(random.Random(8), "x")[1]
    assert a == b and a != c


def test_options_fix_the_machine():
    g = Generator(Options(arch="arm64", fixes_off=["99baac21e458"], choices=False))
    for i in range(30):
        s, _ = g.scenario(random.Random(i), "x")
        assert s.arch == "arm64" and s.fixes_off == ["99baac21e458"] and not s.choices


def _signature(summary) -> tuple:
    return (summary.scenarios, summary.steps, summary.executions,
            [(f.signature, f.index, f.shrunk) for f in summary.findings])


def test_a_campaign_is_the_same_whatever_runs_it(tmp_path):
    opts = Options(fixes_off=["99baac21e458"], arch="x86")
    one = hunt(9, 10 ** 9, opts, Backend(0), str(tmp_path / "a"), max_scenarios=2)
    two = hunt(9, 10 ** 9, opts, Backend(2), str(tmp_path / "b"), max_scenarios=2)
    assert one.scenarios == 2 and one.findings and _signature(one) == _signature(two)
    for f1, f2 in zip(one.findings, two.findings):
        for kind in ("toml", "trace"):
            assert open(f1.files[kind]).read().replace(str(tmp_path / "a"), "") == \
                open(f2.files[kind]).read().replace(str(tmp_path / "b"), "")


def test_the_budget_is_counted_in_steps():
    opts = Options()
    small = hunt(1, 50_000, opts, Backend(0), None, max_scenarios=50)
    assert small.steps >= 50_000 and small.scenarios < 50
    # the scenario that crossed the budget is the last one taken, whatever ran beside it
    again = hunt(1, 50_000, opts, Backend(2), None, max_scenarios=50)
    assert (again.scenarios, again.steps) == (small.scenarios, small.steps)


def test_with_a_fix_off_the_hunt_finds_shrinks_and_writes_the_bug(tmp_path, capsys):
    """99baac21e458 off: a hunt stopping at its first violation finds the stale TLB entry
    (in the first scenario of seed 9) with no hand-written scenario, and what it writes
    reproduces it."""
    out = tmp_path / "found"
    assert main(["hunt", "--without", "99baac21e458", "--arch", "x86",
                 "--seed", "9", "--first", "--out", str(out), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "unmapcheck-hunt" and doc["options"]["fixes_off"] == ["99baac21e458"]
    assert doc["first_violation"] is not None and doc["scenarios"] <= 10
    i1 = [f for f in doc["findings"] if f["group"] == "I1"]
    assert i1, doc["findings"]
    f = i1[0]
    assert f["shrunk_size"]["ops"] <= f["original_size"]["ops"]
    assert f["shrunk_size"]["threads"] <= f["original_size"]["threads"]
    assert set(f["files"]) == {"toml", "trace", "html"}
    # the shrunk scenario violates I1 when explored, and its trace still fails on replay
    assert main(["explore", f["files"]["toml"], "--json"]) == 1
    assert "I1" in json.loads(capsys.readouterr().out)["violations"]
    assert main(["replay", f["files"]["trace"]]) == 1
    capsys.readouterr()
    # with the fix on, the same scenario is clean: the finding is the fix's bug
    text = open(f["files"]["toml"]).read().replace('fixes_off = ["99baac21e458"]',
                                                   "fixes_off = []")
    fixed = tmp_path / "fixed.toml"
    fixed.write_text(text)
    assert main(["explore", str(fixed)]) == 0


def test_on_the_correct_kernel_a_short_hunt_finds_nothing(tmp_path, capsys):
    out = tmp_path / "none"
    assert main(["hunt", "--seed", "1", "--scenarios", "12", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "scenarios        12" in text and "result: nothing found" in text
    assert not out.exists()


@pytest.mark.parametrize("argv, what", [
    (["--budget", "0"], "--budget"),
    (["--budget", "nan"], "--budget"),
    (["--scenarios", "0"], "--scenarios"),
    (["--seed", "-1"], "--seed"),
    (["--jobs", "0"], "--jobs"),
    (["--without", "deadbeef00"], "--without"),
    (["--arch", "arm64", "--vendor", "amd"], "--vendor"),
    (["--without", "27ae357fa82b", "--without", "478a1c3abebf"], "different kernel eras"),
    (["--without", "27ae357fa82b", "--era", "6.18"], "--era"),
    (["--jobs", "2", "--dask", "local"], "give one"),
])
def test_bad_arguments_are_one_line_exit_2(capsys, argv, what):
    assert main(["hunt", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err and what in err, err


def test_an_unwritable_output_folder_is_refused_before_the_work(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["hunt", "--scenarios", "1", "--out", str(blocker)]) == 2
    assert "--out" in capsys.readouterr().err


def test_a_hunt_on_a_dask_local_cluster_explores_the_same_scenarios(tmp_path, capsys):
    pytest.importorskip("distributed")
    runs = []
    for backend in (["--jobs", "1"], ["--dask", "local"]):
        assert main(["hunt", "--seed", "3", "--scenarios", "2", "--out", str(tmp_path),
                     "--json", *backend]) == 0
        doc = json.loads(capsys.readouterr().out)
        runs.append((doc["scenarios"], doc["steps"], doc["executions"]))
    assert runs[0] == runs[1] and runs[0][0] == 2


@pytest.mark.slow
def test_sigterm_ends_a_hunt_with_its_summary(tmp_path):
    """A hunt stopped by SIGTERM reports what it explored and exits 3 (nothing found)."""
    import signal
    import subprocess
    import sys
    import time
    proc = subprocess.Popen([sys.executable, "-m", "unmapcheck.checker.cli", "hunt", "--seed",
                             "1", "--budget", "600", "--jobs", "1", "--out", str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, (out, err)
    assert "(interrupted)" in out and "result: nothing found" in out


def test_the_generator_draws_every_feature_of_its_swarm():
    """Over a few hundred scenarios: an unrelated process to switch to, neighbours with a
    hole between them, PROT_NONE guards, long programs, the table-state preludes and two
    failing branches; every context switch names another process or a kernel thread."""
    g = Generator(Options())
    seen = dict(other=0, hole=0, guard=0, long=0, cached_empty=0, two_choices=0)
    for i in range(300):
        s, _ = g.scenario(random.Random(i), f"g{i}")
        names = {p.name for p in s.processes}
        seen["other"] += "q" in names
        for p in s.processes:
            spans = sorted((m.addr, m.end) for m in p.mappings)
            seen["hole"] += any(0 < b[0] - a[1] <= 2 * PAGE for a, b in zip(spans, spans[1:]))
            seen["guard"] += any(m.prot == "none" and not m.data and m.populate == "none"
                                 for m in p.mappings)
        seen["long"] += any(len(t.ops) >= 4 for t in s.threads)
        ops = [op["op"] for t in s.threads[:1] for op in t.ops]
        seen["cached_empty"] += ops[:4] == ["store", "madvise", "mprotect", "load"]
        seen["two_choices"] += s.max_choices == 2
        for t in s.threads:
            for op in t.ops:
                if op["op"] == "context_switch":
                    assert op["to"] == "kernel" or op["to"] in names - {t.process}, op
    assert all(n >= 5 for n in seen.values()), seen


def test_shrinking_drops_an_unrelated_process_with_its_threads_and_switches():
    from unmapcheck.checker.hunt.scenario import HuntScenario, Process, Thread
    from unmapcheck.checker.hunt.shrink import _candidates
    s = HuntScenario("x", 2, "x86", processes=[Process("p"), Process("q"),
                                                Process("c", fork_of="q")],
                     threads=[Thread("T0", 0, "p", [{"op": "context_switch", "to": "c"},
                                                    {"op": "load", "addr": 0x7f0000000000}]),
                              Thread("T1", 1, "q", [{"op": "exit"}]),
                              Thread("T2", 1, "c", [{"op": "exit"}])])
    dropped = [c for c in _candidates(s) if len(c.processes) < 3]
    without_q = next(c for c in dropped if "q" not in {p.name for p in c.processes})
    assert [p.name for p in without_q.processes] == ["p"]       # c was forked from q
    assert [t.name for t in without_q.threads] == ["T0"]
    assert without_q.threads[0].ops == [{"op": "load", "addr": 0x7f0000000000}]


def test_the_explorer_orders_a_switch_to_a_process_both_ways_around_its_exit():
    """DPOR explores the switch that finds the process alive and the one that finds it gone
    (the CPU then runs the idle task), with no internal error."""
    from unmapcheck.checker.explore import iterative_context_bounding
    text = """
[scenario]
name = "switch-vs-exit"
cpus = 2
arch = "x86"
[[process]]
name = "p"
[[process.mapping]]
addr = 0x7f0000000000
pages = 1
prot = "rw"
[[process]]
name = "q"
[[thread]]
name = "T0"
process = "p"
cpu = 0
program = [{ op = "context_switch", to = "q" }, { op = "load", addr = 0x7f0000000000 }]
[[thread]]
name = "T1"
process = "q"
cpu = 1
program = [{ op = "exit" }]
[expect]
never = true
"""
    orders = set()

    def order(search, ex) -> None:
        labels = [e.label for e in ex.events]
        pick = labels.index("pick_next_task")
        gone = labels.index("task_lock: current->mm = NULL")
        orders.add(pick < gone)
    res = iterative_context_bounding(parse(text, "<t>"), None, on_execution=order)
    assert not res.counterexamples and orders == {True, False}
