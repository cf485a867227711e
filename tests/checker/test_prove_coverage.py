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
