"""The pytest plugin (checker/pytest_plugin.py, the ``pytest11`` entry point ``unmapcheck``):
scenario files collected as test items in a user's own test suite.

Each test runs an inner pytest session in a subprocess, in a fresh directory, so that the
plugin is loaded the way a user gets it: through the installed package's entry point.
"""

import subprocess
import sys
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

CORPUS = Path(__file__).resolve().parents[2] / "proofs" / "scenarios"
OOM = "687cb0884a71-oom-reaper-arm64"          # the cheapest corpus scenario (~0.3 s)
DONTNEED = "99baac21e458-parallel-dontneed"    # about a second


def corpus(name: str) -> str:
    return (CORPUS / f"{name}.toml").read_text()


# fnmatch patterns below write a literal "[" as "[[]" ("[" opens a character class).


def no_traceback(text: str) -> None:
    """No Python traceback in the output: the report is the verdict and the trace."""
    assert "Traceback" not in text
    assert "pytest_plugin.py" not in text
    assert not [line for line in text.splitlines() if line.startswith(("E   ", ">   "))]


def test_entry_point_registered_and_lazy():
    from importlib.metadata import entry_points
    eps = {ep.name: ep.value for ep in entry_points(group="pytest11")}
    assert eps.get("unmapcheck") == "unmapcheck.checker.pytest_plugin"
    # Loading the plugin imports no part of the checker (nothing for a run without scenarios).
    out = subprocess.run(
        [sys.executable, "-c", "import sys, unmapcheck.checker.pytest_plugin; "
         "print(sorted(m for m in sys.modules if m.startswith('unmapcheck')))"],
        capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['unmapcheck', 'unmapcheck.checker', " \
                          "'unmapcheck.checker.pytest_plugin']"


def test_naming_convention_one_item_per_fix_set(pytester):
    pytester.makefile(".unmapcheck.toml", x=corpus(OOM))
    pytester.makepyfile(test_plain="def test_plain():\n    pass\n")
    pytester.makefile(".toml", other=corpus(OOM))       # not *.unmapcheck.toml: not collected
    res = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=3)
    res.stdout.fnmatch_lines([
        f"x.unmapcheck.toml::{OOM} PASSED*",
        f"x.unmapcheck.toml::{OOM}[[]without 687cb0884a71] PASSED*",
    ])
    assert "other.toml" not in res.stdout.str()


@pytest.mark.slow      # (13 s: the 99baac21e458 scenario both ways, in a subprocess)
def test_dontneed_ids_and_marker(pytester):
    pytester.makefile(".unmapcheck.toml", x=corpus(DONTNEED))
    res = pytester.runpytest_subprocess("-v", "-m", "unmapcheck", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=2)
    res.stdout.fnmatch_lines([f"x.unmapcheck.toml::{DONTNEED} PASSED*",
                              f"x.unmapcheck.toml::{DONTNEED}[[]without 99baac21e458] "
                              f"PASSED*"])


def test_wrong_expectation_fails_with_the_trace(pytester):
    # With the fix off the reaper's flush is skipped: `never` is wrong there.
    text = corpus(OOM).replace('fixes = ["687cb0884a71"]\nsometimes = ["I1"]',
                               'fixes = ["687cb0884a71"]\nnever = true')
    assert text != corpus(OOM)
    pytester.makefile(".unmapcheck.toml", x=text)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--unmapcheck-bound", "1")
    res.assert_outcomes(passed=1, failed=1)
    out = res.stdout.str()
    res.stdout.fnmatch_lines([
        f"*unmapcheck: {OOM}[[]without 687cb0884a71]*",
        f"unmapcheck FAILED: {OOM}[[]without 687cb0884a71] (x.unmapcheck.toml)",
        "expected: never",
        "verdict: expected never, but I1.*",
        "VIOLATED I1.*",
        "reproduce: unmapcheck explore x.unmapcheck.toml --without 687cb0884a71 "
        "--preemptions 1",
        f"FAILED x.unmapcheck.toml::{OOM}[[]without 687cb0884a71]*",
    ])
    no_traceback(out)


def test_forbidden_outcome_shows_the_execution_reaching_it(pytester):
    # With the fix off T0's load can read the old byte: not_exists is wrong there.
    text = corpus(DONTNEED).replace('sometimes = ["I1"]\nexists = "T0[1] == 0x41"',
                                    'not_exists = "T0[1] == 0x41"')
    assert text != corpus(DONTNEED)
    pytester.makefile(".unmapcheck.toml", x=text)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                        f"x.unmapcheck.toml::{DONTNEED}[without 99baac21e458]")
    res.assert_outcomes(failed=1)
    res.stdout.fnmatch_lines(["expected: not_exists T0[[]1] == 0x41",
                              "an execution reaching the forbidden outcome:",
                              "*=> load(addr=0x7f0000000000) = 0x41*"])
    no_traceback(res.stdout.str())


def test_ini_directories(pytester):
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\ntestpaths = ["tests"]\n'
                               'unmapcheck_scenarios = ["scenarios"]\n')
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_a.py").write_text("def test_a():\n    pass\n")
    sub = pytester.path / "scenarios" / "mm"
    sub.mkdir(parents=True)
    (sub / "oom.toml").write_text(corpus(OOM))
    (pytester.path / "scenarios" / "README.md").write_text("not a scenario\n")
    # No path arguments: testpaths and the scenario directory.
    res = pytester.runpytest_subprocess("-v", "-p", "no:cacheprovider")
    res.assert_outcomes(passed=3)
    res.stdout.fnmatch_lines(["unmapcheck scenarios: scenarios",
                              f"scenarios/mm/oom.toml::{OOM} PASSED*",
                              f"scenarios/mm/oom.toml::{OOM}[[]without 687cb0884a71] "
                              f"PASSED*"])
    # Explicit paths: only those, as usual.
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "tests").assert_outcomes(passed=1)
    # A directory that does not exist is a usage error.
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                        "-o", "unmapcheck_scenarios=nowhere")
    assert res.ret == pytest.ExitCode.USAGE_ERROR
    assert "unmapcheck_scenarios:" in res.stderr.str() and "is not a directory" in \
        res.stderr.str()


def test_malformed_file_is_a_one_line_collection_error(pytester):
    text = corpus(OOM).replace('arch = "arm64"', 'arch = "sparc"')
    pytester.makefile(".unmapcheck.toml", bad=text)
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    assert res.ret == pytest.ExitCode.INTERRUPTED
    res.stdout.fnmatch_lines([
        "*ERROR collecting bad.unmapcheck.toml*",
        "bad.unmapcheck.toml:10: scenario.arch: unknown arch 'sparc' (known: *)",
    ])
    no_traceback(res.stdout.str())


def test_search_cut_short_fails_or_skips(pytester):
    pytester.makefile(".unmapcheck.toml", x=corpus(DONTNEED))
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider",
                                        "--unmapcheck-timeout", "0.001")
    res.assert_outcomes(failed=2)
    res.stdout.fnmatch_lines([f"unmapcheck UNKNOWN: {DONTNEED} (x.unmapcheck.toml)",
                              "the search was cut short before it could decide*"])
    no_traceback(res.stdout.str())
    res = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-rs",
                                        "--unmapcheck-timeout", "0.001",
                                        "--unmapcheck-unknown=skip")
    res.assert_outcomes(skipped=2)
    res.stdout.fnmatch_lines(["SKIPPED * x.unmapcheck.toml:*: *UNKNOWN, the search was cut "
                              "short*"])


def test_options_from_the_ini_file_and_bad_values(pytester):
    pytester.makeini("[pytest]\nunmapcheck_timeout = 0.001\nunmapcheck_unknown = skip\n")
    pytester.makefile(".unmapcheck.toml", x=corpus(DONTNEED))
    pytester.runpytest_subprocess("-p", "no:cacheprovider").assert_outcomes(skipped=2)
    for args, message in [(["--unmapcheck-timeout", "0"], "--unmapcheck-timeout: must be a "
                           "positive number of seconds"),
                          (["--unmapcheck-bound", "x"], "--unmapcheck-bound: expected an "
                           "integer")]:
        res = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)
        assert res.ret == pytest.ExitCode.USAGE_ERROR
        assert message in res.stderr.str()
