"""unmapcheck prove --coverage: the line coverage of impl/ and the kernel-mirroring
functions never executed, measured in a child process (and its --jobs workers)."""

from __future__ import annotations

import json

from unmapcheck.checker.cli import main

SMALL = "impl:pgd_addr_end"


def _run(argv, capfd):
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    out = capfd.readouterr()              # capfd: the child writes to the same descriptors
    return rc, out.out, out.err


def test_json_has_the_coverage_field(capfd):
    rc, out, err = _run(["prove", SMALL, "--coverage", "--json"], capfd)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "unmapcheck-prove" and doc["summary"]["proved"] == 1
    cov = doc["coverage"]
    assert cov["package"] == "unmapcheck.impl"
    assert 0 < cov["percent"] < 100 and 0 < cov["executed"] < cov["statements"]
    missing = {(m["file"], m["function"]) for m in cov["not_executed"]}
    assert ("impl/zap.py", "zap_pte_range") in missing
    assert ("impl/mmu_gather.py", "tlb_flush_mmu") in missing
    assert cov["functions"]["total"] > cov["functions"]["executed"] > 0
    assert len(missing) == cov["functions"]["total"] - cov["functions"]["executed"]
    # "kernel-mirroring": no single leading underscore
    assert all(not n.startswith("_") or n.startswith("__") for _, n in missing)
    assert cov["report"] is None


def test_text_table_and_full_report_file(tmp_path, capfd):
    report = tmp_path / "cov.json"
    rc, out, err = _run(["prove", SMALL, "--coverage", str(report)], capfd)
    assert rc == 0, err
    assert "1 obligations: 1 proved" in out                    # prove's own output first
    assert out.index("1 obligations") < out.index("coverage of unmapcheck.impl")
    assert "kernel-mirroring functions never executed" in out and "zap_pte_range" in out
    assert "kernel statements:" in out and " kernel " in out.split("coverage of")[1]
    doc = json.loads(report.read_text())
    assert doc["schema"] == "unmapcheck-coverage" and doc["version"] == 1
    files = {f["file"]: f for f in doc["files"]}
    assert files["impl/zap.py"]["executed"] == 0
    fns = {fn["name"]: fn for fn in files["impl/pgtable.py"]["functions"]}
    assert fns["pgd_addr_end"]["executed"] and fns["pgd_addr_end"]["executed_statements"] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["cov.json"]   # atomic: no .tmp-* left


def test_workers_are_measured_the_same_as_one_process(capfd):
    covs = []
    for jobs in ("1", "2"):
        # the impl-level obligations: 7 of them, about a second, each running impl/ code
        rc, out, err = _run(["prove", "-k", "impl:", "--jobs", jobs, "--coverage", "--json"],
                            capfd)
        assert rc == 0, err
        assert "Traceback" not in err and "CoverageWarning" not in err, err
        cov = json.loads(out)["coverage"]
        assert cov.pop("jobs") == int(jobs)
        covs.append(cov)
    assert covs[0] == covs[1]
    missing = {(m["file"], m["function"]) for m in covs[1]["not_executed"]}
    # run only by the obligations, so only in the workers with --jobs 2: counted
    for fn in [("impl/zap.py", "unmap_vmas"), ("impl/vma.py", "__split_vma_fields"),
               ("impl/pgtable.py", "pud_addr_end")]:
        assert fn not in missing, fn


def test_a_name_after_coverage_is_an_obligation_and_bad_paths_are_one_line(capfd):
    rc, out, err = _run(["prove", "--coverage", SMALL, "--json"], capfd)
    assert rc == 0, err
    doc = json.loads(out)
    assert [r["name"] for r in doc["results"]] == [SMALL] and "coverage" in doc
    rc, out, err = _run(["prove", SMALL, "--coverage", "/nonexistent-folder/c.json"], capfd)
    assert rc == 2 and err.count("\n") == 1 and "does not exist" in err


MODEL_CODE = '''\
from .bug import WARN, reports_bug
from .sched import KernelBug, model_only
from . import sched


def kernel_fn(x):
    if x < 0:
        raise KernelBug("BUG_ON(x < 0)")
    if x > 9:
        WARN(None, "WARN_ON_ONCE(x > 9)")
        return 9
    if x == 5:
        raise sched.NotModelled("five")
    return x


@reports_bug
def print_it(x):
    sched.event("bad", x=x)


@model_only
def text(x):
    return str(x)


def noop(x):
    """Nothing to do on this architecture."""


class Thing:
    def __repr__(self):
        return "<thing>"
'''


def test_model_statements_are_set_apart_by_their_form(tmp_path):
    """The kernel figure leaves out assertion, boundary and bug-report statements and the
    bodies of @reports_bug, @model_only and __repr__; the guarding ifs stay kernel code; a
    no-op and a @reports_bug function are not kernel functions that must run."""
    from unmapcheck.checker.coverage_report import kernel_functions, model_statement_lines
    path = tmp_path / "m.py"
    path.write_text(MODEL_CODE)
    src = MODEL_CODE.splitlines()
    lines = model_statement_lines(path, frozenset({"WARN", "print_it"}))
    picked = {src[n - 1].strip() for n in lines}
    assert picked == {'raise KernelBug("BUG_ON(x < 0)")', 'WARN(None, "WARN_ON_ONCE(x > 9)")',
                      'raise sched.NotModelled("five")', 'sched.event("bad", x=x)',
                      "return str(x)", 'return "<thing>"'}
    assert not any(src[n - 1].strip().startswith("if ") for n in lines)
    assert [f.name for f in kernel_functions(path)] == ["kernel_fn"]


def test_kernel_figure_is_reported_beside_the_raw_one(capfd):
    rc, out, err = _run(["prove", SMALL, "--coverage", "--json"], capfd)
    assert rc == 0, err
    cov = json.loads(out)["coverage"]
    assert 0 < cov["kernel_statements"] < cov["statements"]
    assert cov["kernel_executed"] <= cov["executed"]
    assert cov["kernel_percent"] == round(100 * cov["kernel_executed"]
                                          / cov["kernel_statements"], 2)
    files = {f["file"]: f for f in cov["files"]}
    assert sum(f["kernel_statements"] for f in cov["files"]) == cov["kernel_statements"]
    # impl/bug.py is WARN alone: a @reports_bug function, nothing of it is kernel code to run
    assert files["impl/bug.py"]["kernel_statements"] < files["impl/bug.py"]["statements"]
