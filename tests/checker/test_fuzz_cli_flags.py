"""Flags: a bad argument gets one line and exit 2, never a traceback, never exit 1 (which
means "violation found"), and never silent acceptance."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unmapcheck.checker.cli import main
from unmapcheck.proofs import SCENARIO_DIR

SMALL = str(SCENARIO_DIR / "687cb0884a71-oom-reaper-arm64.toml")

NUMBERS = ["-1", "0", "1", "2", "3", "65", "10000000000000000000000", "nan", "inf", "-inf",
           "0.5", "1e9", "", "abc", "0x10", "\x1b[31m"]
PATHS = ["", "/nonexistent-folder/x.json", "/", ".", "out.json", "\x00bad"]


def _run(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:                   # argparse's own exit (--help, --version)
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


@pytest.mark.parametrize("argv, needle", [
    (["explore", SMALL, "--pct", "-1", "--random", "3"], "--pct"),
    (["explore", SMALL, "--pct", "0", "--random", "3"], "--pct"),
    (["explore", SMALL, "--timeout", "0"], "--timeout"),
    (["explore", SMALL, "--timeout", "nan"], "--timeout"),
    (["explore", SMALL, "--timeout", "-1"], "--timeout"),
    (["explore", SMALL, "--max-executions", "0"], "--max-executions"),
    (["explore", SMALL, "--preemptions", "1000"], "--preemptions"),
    (["explore", SMALL, "--random", "5", "--preemptions", "1"], "--preemptions"),
    (["explore", SMALL, "--trace-out", "/nonexistent-folder/t.json"], "does not exist"),
    (["explore", SMALL, "--html", "/"], "folder"),
    (["prove", "--timeout", "inf"], "--timeout"),
    (["prove", ""], "empty obligation name"),
    (["prove", "impl:pgd_addr_end", "--trace-dir", "/nonexistent-folder/sub/d"],
     "does not exist"),
    (["prove", "--jobs", "0"], "--jobs"),
    (["show", "/nonexistent.json"], "cannot read"),
    (["explore"], "required"),
    (["explore", SMALL, "--preemptions", "x"], "a number between 0 and 64 or 'none'"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_flags_are_one_line_exit_2(argv, needle, capsys):
    rc, out, err = _run(argv, capsys)
    assert rc == 2, (argv, rc, err)
    assert err.count("\n") == 1 and err.startswith("unmapcheck") and needle in err, err
    assert "Traceback" not in err


def test_version(capsys):
    rc, out, err = _run(["--version"], capsys)
    assert rc == 0 and out.startswith("unmapcheck ")


def test_a_huge_bound_saturates_instead_of_rerunning(capsys):
    import json
    rc, out, err = _run(["explore", SMALL, "--preemptions", "64", "--json"], capsys)
    assert rc == 0
    stats = json.loads(out)["stats"]
    assert stats["saturated"] and stats["complete"] and stats["preemption_bound"] < 64


EXPLORE_FLAGS = ["--preemptions", "--random", "--pct", "--seed", "--max-executions",
                 "--timeout", "--without"]
PROVE_FLAGS = ["--bound", "--timeout", "--jobs"]


@st.composite
def argvs(draw):
    cmd = draw(st.sampled_from(["explore", "prove", "show", "replay"]))
    if cmd == "explore":
        argv = ["explore", draw(st.sampled_from([SMALL, "", "/nonexistent.toml"]))]
        for flag in draw(st.lists(st.sampled_from(EXPLORE_FLAGS), max_size=4, unique=True)):
            argv += [flag, draw(st.sampled_from(NUMBERS + ["99baac21e458", "zz"]))]
        if draw(st.booleans()):
            argv += ["--trace-out", draw(st.sampled_from(PATHS))]
        # Keep the valid ones cheap.
        argv += ["--max-executions", "30"] if "--max-executions" not in argv else []
        return argv
    if cmd == "prove":
        argv = ["prove", draw(st.sampled_from(["impl:pgd_addr_end", "", "nosuch",
                                               "impl:do_vmi_munmap_args"]))]
        for flag in draw(st.lists(st.sampled_from(PROVE_FLAGS), max_size=3, unique=True)):
            argv += [flag, draw(st.sampled_from(NUMBERS))]
        return argv
    return [cmd, draw(st.sampled_from(PATHS + ["/nonexistent.json"]))] + \
        draw(st.sampled_from([[], ["--json"], ["--html", "/nonexistent-folder/x.html"]]))[
            : (1 if cmd == "replay" else 2)]


def _check_flags(argv, capsys, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
    rc, out, err = _run(argv, capsys)
    assert rc in (0, 1, 2, 3), (argv, rc, err)
    assert "Traceback" not in err and "internal error" not in err, (argv, err)
    if rc == 2:
        assert err.count("\n") == 1 and err.startswith("unmapcheck"), (argv, err)


_HC = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow]


@settings(max_examples=600, deadline=None, derandomize=True, suppress_health_check=_HC)
@given(argv=argvs())
def test_fuzzed_flags_never_trace_back(argv, capsys, tmp_path_factory, monkeypatch):
    _check_flags(argv, capsys, tmp_path_factory, monkeypatch)


@pytest.mark.slow
@settings(max_examples=20000, deadline=None, suppress_health_check=_HC)
@given(argv=argvs())
def test_fuzzed_flags_never_trace_back_long(argv, capsys, tmp_path_factory, monkeypatch):
    _check_flags(argv, capsys, tmp_path_factory, monkeypatch)
