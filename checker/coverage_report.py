"""``unmapcheck prove --coverage``: how much of ``impl/`` the proof obligations execute.

prove runs again in a child process under coverage.py (a small script that starts
coverage, then calls the CLI's ``main(["prove", ...])``), measuring only the
``unmapcheck.impl`` package. A child, not this process, because the CLI has already
imported part of impl/ before a command runs (the scenario loader imports spec/, which
imports impl/): measured here, the module-level lines of those modules would read as never
executed. The child's forked ``--jobs`` workers are
measured too: a multiprocessing after-fork hook starts a collector in each worker and saves
its data when the worker ends, or on the SIGTERM of Pool.terminate() (see ``_CHILD``), with
``parallel = true``; the data files are combined here. ``concurrency = greenlet`` because
the explorer runs each kernel thread of a scenario as a greenlet.

What is reported:

* line coverage of impl/: executable statements (as coverage.py counts them) executed by
  the obligations, per file and in total;
* the same figure over the *kernel statements*: every statement less the model's own, which
  a correct model run on valid input never executes by design: the body of an assertion
  (``raise KernelBug`` for BUG_ON/VM_BUG_ON, ``raise LockDiscipline`` for lockdep,
  ``raise Deadlock``), the model's argument checks (``raise ValueError``/``TypeError``), its
  boundary (``raise NotModelled``/``NotSupported``: a path the model refuses to guess), the
  kernel's reports of a bug it caught in itself (the bodies of ``@reports_bug`` functions,
  WARN and print_bad_pte, and the statements that call them), and the text of its objects
  (``__repr__``, ``__str__``, the bodies of ``@model_only`` functions). The ``if`` that
  guards an assertion stays a kernel statement: only the raise is set apart. Both figures
  are reported, the model's own statements counted apart;
* the *kernel-mirroring functions* never executed: every module-level ``def`` of
  ``impl/*.py`` (including those inside a module-level ``if``/``try``) whose name does not
  start with a single underscore (``__split_vma`` counts, ``_tunable`` and ``__getattr__``
  do not) and that is not marked ``@model_only`` (the text of a PTE for traces, say) or
  ``@reports_bug`` (WARN: only a kernel that caught a bug in itself runs it). A function
  whose body has no statement (a no-op, its docstring only) is not counted: there is
  nothing of it to execute. A
  function counts as executed when any line of its body (after the ``def`` line, its
  decorators and its default values, which run at import) was executed.

The full report (``--coverage FILE``) is JSON, ``{"schema": "unmapcheck-coverage",
"version": 1, ...}``, with each file's statements, executed and missing lines, and each
function's line range, statements, executed statements and whether it ran; it is written
atomically (:func:`unmapcheck.checker.trace.write_atomic`).
"""

from __future__ import annotations

import ast
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

PACKAGE = "unmapcheck.impl"
SCHEMA = "unmapcheck-coverage"
VERSION = 1


def impl_dir() -> Path:
    """The folder of the installed ``unmapcheck.impl`` package (impl/ of the work tree in an
    editable install)."""
    import unmapcheck.impl
    return Path(os.path.realpath(next(iter(unmapcheck.impl.__path__))))


def impl_files(root: Optional[Path] = None) -> list[Path]:
    root = root or impl_dir()
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)


def is_kernel_name(name: str) -> bool:
    """A kernel-mirroring name: no single leading underscore (``__split_vma`` is one,
    ``_tunable`` and dunders such as ``__getattr__`` are not)."""
    if name.startswith("__"):
        return not name.endswith("__")
    return not name.startswith("_")


@dataclass
class FunctionSpan:
    name: str
    line: int            # the def line
    body_line: int       # the first line of the body (after the signature)
    end_line: int

    def lines(self) -> range:
        return range(self.body_line, self.end_line + 1)


def module_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """The module-level defs of a module: its body and the bodies of module-level ``if``,
    ``try`` and ``with`` blocks (not classes, not nested functions)."""
    out: list = []

    def visit(stmts):
        for st in stmts:
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append(st)
            elif isinstance(st, ast.If):
                visit(st.body)
                visit(st.orelse)
            elif isinstance(st, ast.Try) or type(st).__name__ == "TryStar":
                visit(st.body)
                for h in st.handlers:
                    visit(h.body)
                visit(st.orelse)
                visit(st.finalbody)
            elif isinstance(st, (ast.With, ast.AsyncWith)):
                visit(st.body)
    visit(tree.body)
    return out


def is_model_only(f) -> bool:
    """A def decorated ``@model_only`` (impl/sched.py): the model's own helper, not kernel
    code."""
    return any((isinstance(d, ast.Name) and d.id == "model_only") or
               (isinstance(d, ast.Attribute) and d.attr == "model_only")
               for d in f.decorator_list)


def is_bug_report(f) -> bool:
    """A def decorated ``@reports_bug`` (impl/bug.py): it runs only when the kernel caught a
    bug in itself (a WARNING, a bad-PTE report)."""
    return any((isinstance(d, ast.Name) and d.id == "reports_bug") or
               (isinstance(d, ast.Attribute) and d.attr == "reports_bug")
               for d in f.decorator_list)


def is_kernel_function(f) -> bool:
    """A kernel-mirroring function: a kernel-mirroring name, not marked ``@model_only`` or
    ``@reports_bug``."""
    return is_kernel_name(f.name) and not is_model_only(f) and not is_bug_report(f)


# What a raise of these means: a correct model run on valid input never reaches it.
MODEL_RAISES = frozenset({"KernelBug", "LockDiscipline", "Deadlock", "ValueError", "TypeError",
                          "NotModelled", "NotSupported"})
# Methods that are the text of the model's objects (traces, debugging), not kernel code.
MODEL_TEXT_METHODS = frozenset({"__repr__", "__str__"})


def _raised_name(node: ast.Raise) -> Optional[str]:
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    if isinstance(exc, ast.Name):
        return exc.id
    if isinstance(exc, ast.Attribute):
        return exc.attr
    return None


def _called_name(node: ast.stmt) -> Optional[str]:
    """The name a statement that is one call (``f(...)``, ``mod.f(...)``) calls."""
    if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
        fn = node.value.func
        if isinstance(fn, ast.Name):
            return fn.id
        if isinstance(fn, ast.Attribute):
            return fn.attr
    return None


def bug_reporters(root: Optional[Path] = None) -> frozenset[str]:
    """The names of impl/'s ``@reports_bug`` functions."""
    return frozenset(f.name for path in impl_files(root)
                     for f in module_functions(ast.parse(path.read_text(encoding="utf-8")))
                     if is_bug_report(f))


def model_statement_lines(path: Path, reporters: frozenset[str] = frozenset()) -> set[int]:
    """The first lines of the statements of *path* that are the model's own (see the module
    docstring): assertion, argument-check and boundary raises; a statement that only calls
    one of *reporters* (the ``@reports_bug`` functions: a WARN, a bad-PTE report); every
    statement in the body of a ``__repr__``/``__str__`` method or of a ``@model_only`` or
    ``@reports_bug`` function."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and _raised_name(node) in MODEL_RAISES:
            lines.add(node.lineno)
        elif isinstance(node, ast.stmt) and _called_name(node) in reporters:
            lines.add(node.lineno)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                node.name in MODEL_TEXT_METHODS or is_model_only(node) or is_bug_report(node)):
            for st in node.body:
                lines.update(n.lineno for n in ast.walk(st) if isinstance(n, ast.stmt))
    return lines


def _does_something(f) -> bool:
    """Whether a def's body has a statement besides its docstring and ``pass`` (a no-op such
    as flush_cache_page on x86 has none: nothing of it can be executed)."""
    return any(not isinstance(st, ast.Pass) and
               not (isinstance(st, ast.Expr) and isinstance(st.value, ast.Constant))
               for st in f.body)


def kernel_functions(path: Path) -> list[FunctionSpan]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [FunctionSpan(f.name, f.lineno, f.body[0].lineno, f.end_lineno or f.lineno)
            for f in module_functions(tree) if is_kernel_function(f) and _does_something(f)]


# --- the report -------------------------------------------------------------------------------
@dataclass
class FileCoverage:
    file: str                       # impl/NAME.py
    statements: int
    executed: int
    missing_lines: list[int]
    functions: list[dict] = field(default_factory=list)
    model_statements: int = 0       # of statements: the model's own (model_statement_lines)
    model_executed: int = 0         # of those, executed

    @property
    def percent(self) -> float:
        return 100.0 * self.executed / self.statements if self.statements else 100.0

    @property
    def kernel_statements(self) -> int:
        return self.statements - self.model_statements

    @property
    def kernel_executed(self) -> int:
        return self.executed - self.model_executed


@dataclass
class CoverageReport:
    files: list[FileCoverage]
    jobs: int = 1

    @property
    def statements(self) -> int:
        return sum(f.statements for f in self.files)

    @property
    def executed(self) -> int:
        return sum(f.executed for f in self.files)

    @property
    def percent(self) -> float:
        return 100.0 * self.executed / self.statements if self.statements else 100.0

    @property
    def kernel_statements(self) -> int:
        return sum(f.kernel_statements for f in self.files)

    @property
    def kernel_executed(self) -> int:
        return sum(f.kernel_executed for f in self.files)

    @property
    def kernel_percent(self) -> float:
        k = self.kernel_statements
        return 100.0 * self.kernel_executed / k if k else 100.0

    def functions(self) -> list[tuple[str, dict]]:
        return [(f.file, fn) for f in self.files for fn in f.functions]

    def not_executed(self) -> list[dict]:
        return [{"file": file, "function": fn["name"], "line": fn["line"]}
                for file, fn in self.functions() if not fn["executed"]]

    def summary(self, report_path: Optional[str] = None) -> dict:
        """The ``coverage`` field of ``prove --json``."""
        fns = self.functions()
        return {"package": PACKAGE,
                "percent": round(self.percent, 2),
                "statements": self.statements,
                "executed": self.executed,
                "kernel_percent": round(self.kernel_percent, 2),
                "kernel_statements": self.kernel_statements,
                "kernel_executed": self.kernel_executed,
                "files": [{"file": f.file, "statements": f.statements, "executed": f.executed,
                           "percent": round(f.percent, 2),
                           "kernel_statements": f.kernel_statements,
                           "kernel_executed": f.kernel_executed} for f in self.files],
                "functions": {"total": len(fns),
                              "executed": sum(1 for _, fn in fns if fn["executed"])},
                "not_executed": self.not_executed(),
                "jobs": self.jobs,
                "report": report_path}

    def full(self) -> dict:
        """The ``--coverage FILE`` report."""
        s = self.summary()
        s.pop("files")
        s.pop("report")
        return {"schema": SCHEMA, "version": VERSION, **s,
                "files": [{"file": f.file, "statements": f.statements,
                           "executed": f.executed, "percent": round(f.percent, 2),
                           "kernel_statements": f.kernel_statements,
                           "kernel_executed": f.kernel_executed,
                           "missing_lines": f.missing_lines, "functions": f.functions}
                          for f in self.files]}

    def render(self) -> str:
        """The table printed after prove's own output."""
        def kernel_cover(c) -> str:
            k = c.kernel_statements
            return f"{100.0 * c.kernel_executed / k:.1f}%" if k else "100.0%"
        rows = [(f.file, str(f.statements), str(f.executed), f"{f.percent:.1f}%", kernel_cover(f),
                 f"{sum(1 for fn in f.functions if fn['executed'])}/{len(f.functions)}")
                for f in self.files]
        fns = self.functions()
        run = sum(1 for _, fn in fns if fn["executed"])
        rows.append(("total", str(self.statements), str(self.executed),
                     f"{self.percent:.1f}%", kernel_cover(self), f"{run}/{len(fns)}"))
        head = ("file", "statements", "executed", "cover", "kernel", "functions run")
        widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]

        def line(r):
            return "  " + "  ".join(r[i].ljust(widths[i]) if i == 0 else r[i].rjust(widths[i])
                                    for i in range(len(head)))
        out = [f"coverage of {PACKAGE} (impl/) by these obligations"
               + (f" (--jobs {self.jobs})" if self.jobs > 1 else "") + ":",
               line(head)]
        out += [line(r) for r in rows[:-1]]
        out.append("  " + "-" * (sum(widths) + 2 * (len(head) - 1)))
        out.append(line(rows[-1]))
        model = self.statements - self.kernel_statements
        out.append(f"\nkernel statements: {self.kernel_executed} of {self.kernel_statements} "
                   f"executed ({self.kernel_percent:.1f}%); the 'kernel' column leaves out the "
                   f"model's own {model} statements ({self.executed - self.kernel_executed} "
                   f"executed): assertion bodies, argument checks, not-modelled boundaries, "
                   f"object text")
        missing = self.not_executed()
        out.append(f"\nkernel-mirroring functions never executed: {len(missing)} of {len(fns)}")
        by_file: dict[str, list[str]] = {}
        for m in missing:
            by_file.setdefault(m["file"], []).append(m["function"])
        for file, names in by_file.items():
            text = f"  {file}: " + ", ".join(names)
            out.extend(_wrap(text, 100, " " * (len(file) + 4)))
        return "\n".join(out)


def _wrap(text: str, width: int, indent: str) -> list[str]:
    import textwrap
    return textwrap.wrap(text, width, subsequent_indent=indent, break_long_words=False,
                         break_on_hyphens=False) or [text]


def build_report(cov, root: Optional[Path] = None, jobs: int = 1) -> CoverageReport:
    """Measure every impl/ file (those never imported too) from a loaded Coverage."""
    root = root or impl_dir()
    data = cov.get_data()
    reporters = bug_reporters(root)
    files = []
    for path in impl_files(root):
        real = os.path.realpath(path)
        _, statements, _excluded, missing, _ = cov.analysis2(real)
        statements, missing = set(statements), set(missing)
        executed_lines = set(data.lines(real) or ()) | (statements - missing)
        fns = []
        for fn in kernel_functions(path):
            body = set(fn.lines())
            st = statements & body
            fns.append({"name": fn.name, "line": fn.line, "end_line": fn.end_line,
                        "statements": len(st), "executed_statements": len(st - missing),
                        "executed": bool(executed_lines & body)})
        rel = "impl/" + path.relative_to(root).as_posix()
        model = statements & model_statement_lines(path, reporters)
        files.append(FileCoverage(rel, len(statements), len(statements - missing),
                                  sorted(missing), fns, model_statements=len(model),
                                  model_executed=len(model - missing)))
    return CoverageReport(files, jobs)


# --- running prove under coverage ---------------------------------------------------------------
RCFILE = """\
[run]
source_pkgs = {package}
data_file = {data_file}
parallel = true
concurrency = greenlet
branch = false
disable_warnings = module-not-measured, module-not-imported, no-data-collected, already-imported
"""

# The child: measure, run prove, save. prove's --jobs workers are forked multiprocessing
# processes: multiprocessing runs its after-fork hooks in each one (after clearing the
# finalizers it inherited), and this hook starts a Coverage there and saves it when the
# worker ends, either way it ends: normally (a finalizer that _bootstrap runs on the way
# out) or by Pool.terminate()'s SIGTERM, whichever comes first, once (a SIGTERM during the
# finalizer's save waits for it). coverage.py's own multiprocessing support saves in
# _bootstrap's finally and, with sigterm = true, again from a SIGTERM handler; terminate()
# can send that signal while a worker that already got its sentinel is saving, and the
# data file came out broken (seen here: a worker's data lost one run in three): hence this.
_CHILD = """\
import os, signal, sys
import multiprocessing.util as mp_util
import coverage

RCFILE = sys.argv[1]


def _worker_coverage(_hook):
    cov = coverage.Coverage(config_file=RCFILE, data_suffix=True)
    cov.start()
    state = {"saving": False}

    def save():
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        if not state["saving"]:
            state["saving"] = True
            cov.stop()
            cov.save()

    def on_sigterm(signum, frame):
        # A SIGTERM that arrived just before save() blocked it still runs this handler, at
        # some point inside the save: let that save finish, the worker exits after it.
        if state["saving"]:
            return
        save()
        os._exit(128 + signal.SIGTERM)

    signal.signal(signal.SIGTERM, on_sigterm)
    mp_util.Finalize(None, save, exitpriority=1000)


class _Hook:
    pass


_hook = _Hook()
mp_util.register_after_fork(_hook, _worker_coverage)
cov = coverage.Coverage(config_file=RCFILE)
cov.start()
code = 4
try:
    from unmapcheck.checker.cli import main
    code = main(["prove", *sys.argv[2:]])
finally:
    cov.stop()
    cov.save()
sys.exit(code)
"""


def run_prove_under_coverage(argv: list[str], jobs: int, capture: bool):
    """Run ``unmapcheck prove ARGV`` in a child process under coverage.py; return (exit
    code, its stdout if *capture* else None, the report). The child's stdout is this
    process's unless *capture*; its stderr always is."""
    import coverage
    tmp = tempfile.mkdtemp(prefix="unmapcheck-coverage-")
    try:
        data_file = os.path.join(tmp, ".coverage")
        rcfile = os.path.join(tmp, "coveragerc")
        with open(rcfile, "w", encoding="utf-8") as f:
            f.write(RCFILE.format(package=PACKAGE, data_file=data_file))
        env = dict(os.environ)
        for k in ("COVERAGE_RCFILE", "COVERAGE_PROCESS_START", "COVERAGE_FILE"):
            env.pop(k, None)
        cmd = [sys.executable, "-c", _CHILD, rcfile, *argv]
        sys.stdout.flush()
        proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE if capture else None,
                              text=True)
        out = proc.stdout if capture else None
        if proc.returncode not in (0, 1, 3):       # a usage error or a crash: nothing measured
            return proc.returncode, out, None
        cov = coverage.Coverage(config_file=rcfile, data_file=data_file)
        cov.combine(data_paths=[tmp], strict=False, keep=False)
        cov.load()
        return proc.returncode, out, build_report(cov, jobs=jobs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_report(path: str, report: CoverageReport) -> None:
    from .trace import write_atomic
    write_atomic(path, json.dumps(report.full(), indent=1) + "\n")
