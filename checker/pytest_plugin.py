"""A pytest plugin: unmapcheck scenario files as test items in your own test suite.

Registered as the ``pytest11`` entry point ``unmapcheck`` (pyproject.toml), so it is active
wherever the package is installed; ``-p no:unmapcheck`` switches it off. What it collects:

* every file named ``*.unmapcheck.toml`` that pytest visits (the naming convention);
* every ``*.toml`` under the directories named by the ini option ``unmapcheck_scenarios``
  (paths relative to the rootdir). When pytest runs from the rootdir without path
  arguments, those directories are collected even if ``testpaths`` does not reach them.

Each scenario file gives one item per fix set, as ``unmapcheck prove`` counts obligations
(checker/prove.py): the scenario as written (``NAME``) and one per ``[[expect.without]]`` entry
(``NAME[without COMMIT,...]``). An item explores its scenario with ``explore_scenario`` and
judges it with ``judge``: PROVED passes; FAILED fails with the verdict and the counterexample
trace as text (no Python traceback); UNKNOWN (the search was cut short) fails, or is skipped
with ``--unmapcheck-unknown=skip``. A malformed file is a collection error with the loader's
one-line message.

Options (command line, or the ini option of the same name with underscores):
``--unmapcheck-timeout SECONDS`` (default 60, per item), ``--unmapcheck-bound N`` (override
every scenario's preemption bound), ``--unmapcheck-unknown fail|skip`` (default fail).

This module imports only pytest and the standard library at load time: the checker is
imported when a scenario file is collected, so the plugin costs nothing in a test run that
has no scenario files (this project's own tests/ among them).
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Optional

import pytest

SUFFIX = ".unmapcheck.toml"
DEFAULT_TIMEOUT = 60.0
UNKNOWN_POLICIES = ("fail", "skip")

_DIRS_KEY = pytest.StashKey[list]()
_SETTINGS_KEY = pytest.StashKey[dict]()


# --- options ------------------------------------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("unmapcheck", "unmapcheck scenario files (*.unmapcheck.toml)")
    group.addoption("--unmapcheck-timeout", dest="unmapcheck_timeout", default=None,
                    metavar="SECONDS",
                    help=f"time budget of each scenario item, in seconds (default "
                         f"{DEFAULT_TIMEOUT:g}); a search cut short is UNKNOWN")
    group.addoption("--unmapcheck-bound", dest="unmapcheck_bound", default=None, metavar="N",
                    help="preemption bound of every scenario item, instead of each "
                         "scenario's [bounds] preemptions")
    group.addoption("--unmapcheck-unknown", dest="unmapcheck_unknown", default=None,
                    choices=UNKNOWN_POLICIES,
                    help="what an UNKNOWN verdict (search cut short) does: fail (default) "
                         "or skip")
    parser.addini("unmapcheck_scenarios", type="args", default=[],
                  help="directories (relative to the rootdir) whose *.toml files are "
                       "unmapcheck scenarios to collect")
    parser.addini("unmapcheck_timeout", type="string", default="",
                  help=f"time budget of each scenario item, in seconds "
                       f"(default {DEFAULT_TIMEOUT:g})")
    parser.addini("unmapcheck_bound", type="string", default="",
                  help="preemption bound of every scenario item (default: each scenario's)")
    parser.addini("unmapcheck_unknown", type="string", default="",
                  help="what an UNKNOWN verdict does: fail (default) or skip")


def _setting(config: pytest.Config, name: str) -> tuple[str, Optional[str]]:
    """(where it came from, the value) of option *name*: the command line wins over the ini
    file; (…, None) when neither gives it."""
    v = config.getoption(name)
    if v is not None:
        return "--" + name.replace("_", "-"), str(v)
    v = str(config.getini(name) or "").strip()
    return name, (v or None)


def _settings(config: pytest.Config) -> dict:
    """The validated options, once per session; a bad value is a usage error (one line)."""
    if _SETTINGS_KEY in config.stash:
        return config.stash[_SETTINGS_KEY]
    where, v = _setting(config, "unmapcheck_timeout")
    timeout = DEFAULT_TIMEOUT
    if v is not None:
        try:
            timeout = float(v)
        except ValueError:
            raise pytest.UsageError(f"{where}: expected a number of seconds, got {v!r}") from None
        if not timeout > 0 or timeout == float("inf"):
            raise pytest.UsageError(f"{where}: must be a positive number of seconds, got {v!r}")
    where, v = _setting(config, "unmapcheck_bound")
    bound = None
    if v is not None:
        try:
            bound = int(v, 0)
        except ValueError:
            raise pytest.UsageError(f"{where}: expected an integer, got {v!r}") from None
        if not 0 <= bound <= 64:
            raise pytest.UsageError(f"{where}: must be between 0 and 64, got {bound}")
    where, v = _setting(config, "unmapcheck_unknown")
    unknown = v or "fail"
    if unknown not in UNKNOWN_POLICIES:
        raise pytest.UsageError(f"{where}: expected fail or skip, got {unknown!r}")
    out = {"timeout": timeout, "bound": bound, "unknown": unknown}
    config.stash[_SETTINGS_KEY] = out
    return out


def _scenario_dirs(config: pytest.Config) -> list[Path]:
    """The ``unmapcheck_scenarios`` directories, absolute (relative ones from the rootdir)."""
    if _DIRS_KEY not in config.stash:
        config.stash[_DIRS_KEY] = [(config.rootpath / d).resolve()
                                   for d in config.getini("unmapcheck_scenarios")]
    return config.stash[_DIRS_KEY]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "unmapcheck: an unmapcheck scenario item (collected "
                                       "from a scenario file; select with -m unmapcheck)")
    _settings(config)                      # a bad option value: a usage error, before collection
    dirs = _scenario_dirs(config)
    if not dirs:
        return
    for d in dirs:
        if not d.is_dir():
            raise pytest.UsageError(f"unmapcheck_scenarios: {d} is not a directory")
    # Run from the rootdir without path arguments, pytest collects testpaths: add the
    # scenario directories they do not reach. With explicit paths (or run from another
    # directory), pytest collects only those, as usual.
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return
    here = config.invocation_params.dir
    given = [(here / a.split("::")[0]).resolve() for a in config.args]
    for d in dirs:
        if not any(_within(d, g) or _within(g, d) for g in given):
            config.args.append(str(d))


def _within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def pytest_report_header(config: pytest.Config) -> Optional[str]:
    dirs = _scenario_dirs(config)
    if not dirs:
        return None
    return "unmapcheck scenarios: " + ", ".join(
        str(d.relative_to(config.rootpath)) if _within(d, config.rootpath) else str(d)
        for d in dirs)


# --- collection ---------------------------------------------------------------------------------
def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    name = file_path.name
    if name.endswith(SUFFIX) and len(name) > len(SUFFIX):
        return ScenarioFile.from_parent(parent, path=file_path)
    if file_path.suffix == ".toml":
        dirs = _scenario_dirs(parent.config)
        if dirs and any(_within(file_path.resolve(), d) for d in dirs):
            return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    """One scenario file: an item for the scenario as written and one per
    ``[[expect.without]]`` entry."""

    def collect(self):
        from unmapcheck.checker.scenario import ScenarioError, load
        try:
            sc = load(self._display_path())
            variants = [([], sc)] + [(list(v.fixes), sc.with_fixes_off(v.fixes))
                                     for v in sc.variants]
        except ScenarioError as e:
            # One line, as `unmapcheck explore` prints it (CollectError: no traceback).
            raise self.CollectError(str(e)) from None
        lines = sc.text.splitlines()
        without_lines = [i for i, line in enumerate(lines)
                         if line.strip().startswith("[[expect.without]]")]
        expect_line = next((i for i, line in enumerate(lines)
                            if line.strip().startswith("[expect]")), 0)
        for k, (fixes, s) in enumerate(variants):
            name = sc.name + (f"[without {','.join(fixes)}]" if fixes else "")
            line = without_lines[k - 1] if fixes and k - 1 < len(without_lines) else expect_line
            yield ScenarioItem.from_parent(self, name=name, scenario=s, fixes=fixes, line=line)

    def _display_path(self) -> str:
        """The file's path as messages, traces and reproduce commands show it: relative to
        the directory pytest was run from when it is below it."""
        here = self.config.invocation_params.dir
        return str(self.path.relative_to(here)) if _within(self.path, here) else str(self.path)


class ScenarioFailed(Exception):
    """A FAILED verdict; its text (verdict and trace) is the whole failure report."""


class ScenarioUndecided(Exception):
    """An UNKNOWN verdict under --unmapcheck-unknown=fail."""


class ScenarioItem(pytest.Item):
    """One scenario with one set of fixes switched off, judged as ``unmapcheck prove``
    judges an obligation."""

    def __init__(self, *, scenario, fixes: list[str], line: int = 0, **kw):
        super().__init__(**kw)
        self.scenario = scenario
        self.fixes = fixes
        self.line = line
        self.verdict = None
        self.add_marker(pytest.mark.unmapcheck)

    def runtest(self) -> None:
        from unmapcheck.checker.prove import FAILED, PROVED, explore_scenario, judge
        opts = _settings(self.config)
        sc = self.scenario
        t0 = time.monotonic()
        result = explore_scenario(sc, opts["bound"], opts["timeout"])
        verdict = judge(sc, result, self._obligation_name(), time.monotonic() - t0)
        self.verdict = verdict
        self.user_properties.append(("unmapcheck_verdict", verdict.status))
        summary = self._summary(verdict, result, opts)
        if verdict.status == PROVED:
            self.add_report_section("call", "unmapcheck", summary)     # shown by -rP
            return
        if verdict.status == FAILED:
            raise ScenarioFailed(summary + self._traces(verdict, result, opts))
        if opts["unknown"] == "skip":
            # Reported at the scenario file (as a skip mark is), not at this line.
            raise pytest.skip.Exception(
                f"{self.name}: UNKNOWN, the search was cut short before it could decide "
                f"({self._budget(opts)}): {verdict.detail}", _use_item_location=True)
        raise ScenarioUndecided(summary + "\nthe search was cut short before it could decide: "
                                "an undecided item never passes (give a larger "
                                "--unmapcheck-timeout, a smaller --unmapcheck-bound, or "
                                "--unmapcheck-unknown=skip)")

    def repr_failure(self, excinfo, style=None):
        if isinstance(excinfo.value, (ScenarioFailed, ScenarioUndecided)):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self):
        return self.path, self.line, f"unmapcheck: {self.name}"

    # --- the report ---
    def _obligation_name(self) -> str:
        return f"scenario:{self.scenario.name}" + (
            f" --without {','.join(self.fixes)}" if self.fixes else "")

    def _budget(self, opts: dict) -> str:
        bound = opts["bound"] if opts["bound"] is not None else self.scenario.preemptions
        return (f"timeout {opts['timeout']:g} s, preemption bound "
                f"{bound if bound is not None else 'none'}, executions <= "
                f"{self.scenario.max_executions}")

    def _expected(self) -> str:
        sc = self.scenario
        parts = []
        if sc.expect_never:
            parts.append("never")
        if sc.expect_sometimes:
            parts.append("sometimes " + ", ".join(sc.expect_sometimes))
        parts += [f"{oe.quantifier} {oe.condition}" for oe in sc.outcome_expect]
        return "; ".join(parts) or "(nothing)"

    def _summary(self, verdict, result, opts: dict) -> str:
        sc = self.scenario
        st = result.stats
        lines = [f"unmapcheck {verdict.status}: {self.name} ({sc.path})",
                 f"fixes off: {', '.join(sc.fixes_off) if sc.fixes_off else 'none'}",
                 f"expected: {self._expected()}",
                 f"verdict: {verdict.detail or verdict.status}",
                 f"search: {'complete' if st.complete else 'cut short'} after "
                 f"{st.executions} executions, {st.steps} steps, {verdict.seconds:.2f} s "
                 f"({verdict.bound})",
                 f"budget: {self._budget(opts)}"]
        return "\n".join(lines) + "\n"

    def _command(self, opts: dict) -> str:
        words = ["unmapcheck", "explore", str(self.scenario.path)]
        for c in self.fixes:
            words += ["--without", c]
        bound = opts["bound"] if opts["bound"] is not None else self.scenario.preemptions
        if bound is not None:
            words += ["--preemptions", str(bound)]
        return " ".join(shlex.quote(w) for w in words)

    def _traces(self, verdict, result, opts: dict) -> str:
        """The counterexample as a text trace: for ``never``, the best invariant violation;
        for a ``not_exists`` / ``forall`` condition, an execution reaching an outcome it
        forbids. An expected violation or outcome that a complete search never reached has
        no trace to show."""
        from unmapcheck.checker.trace import build_trace, counterexample_trace, render_text
        sc = self.scenario
        best = result.best()
        if sc.expect_never and best is not None:
            trace = counterexample_trace(sc, best,
                                         command=self._command(opts))
            return "\n" + render_text(trace.to_json())
        schedule = self._outcome_witness(result)
        if schedule is not None:
            # A group no violation has: replay the whole schedule, up to the outcome.
            trace = build_trace(sc, schedule, "\0", command=self._command(opts))
            return ("\nan execution reaching the forbidden outcome:\n\n" +
                    render_text(trace.to_json()))
        return f"\nno counterexample trace to show; reproduce: {self._command(opts)}"

    def _outcome_witness(self, result) -> Optional[list[int]]:
        for oe in self.scenario.outcome_expect:
            if oe.quantifier not in ("not_exists", "forall"):
                continue
            for key in result.outcome_counts:
                holds = oe.condition.evaluate(dict(key))
                if holds == (oe.quantifier == "not_exists"):
                    return result.outcome_schedules.get(key)
        return None
