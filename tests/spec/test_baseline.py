"""baseline:sequences (proofs/baseline.py): the model's results, flushes and frames left on
every bounded sequence, against the recorded baseline; what it catches that no invariant can,
and its bad inputs."""

from __future__ import annotations

import gzip
import json

import pytest

from unmapcheck.checker.cli import main
from unmapcheck.checker.prove import FAILED, PROVED, Options
from unmapcheck.proofs import baseline as B
from unmapcheck.proofs import sequences as S


@pytest.mark.slow      # (the default run records it and compares: the CLI test below)
def test_the_shipped_baseline_is_what_the_model_does():
    r = B.run(Options(timeout=300))
    assert r.status == PROVED, r.detail
    n = sum(S.count(lay, B.LENGTH) for lay in S.LAYOUTS) + len(B.corpus_programs())
    assert f"all {n} sequential programs" in r.detail
    assert "never-mlock-rlimit" in B.corpus_programs()      # one thread, no choices
    assert "never-anon-vma-clone-enomem" not in B.corpus_programs()     # failure choices


def test_a_flush_that_was_not_needed_is_caught(monkeypatch):
    """x86's pte_needs_flush() answering "yes" to every change (the generic version's
    answer): safe, so no invariant objects, but mprotect now flushes for a PTE whose
    permissions it did not reduce (B was already read-only)."""
    from unmapcheck.impl import mprotect
    monkeypatch.setattr(mprotect, "pte_needs_flush", lambda machine, old, new: True)
    r = B.run(Options(timeout=300))
    assert r.status == FAILED, r.detail
    assert "does not do what the baseline recorded: flushes: recorded" in r.detail, r.detail
    assert "unmapcheck explore" in r.data["counterexample"]
    # the invariants have nothing against it: the bounded obligation still proves
    assert S.run_layout(S.layout("inside-a-table"), Options(bound=1, timeout=300)).status \
        == PROVED


def test_a_page_table_kept_is_caught(monkeypatch):
    """free_pgtables() that frees no page table: nothing maps through the tables it keeps,
    so no invariant objects, but the walk-cache flush that freeing tables needs is gone and
    the frames left after munmap differ."""
    from unmapcheck.impl import free_pgtables
    monkeypatch.setattr(free_pgtables, "free_pgd_range", lambda *a, **k: None)
    r = B.run(Options(timeout=300))
    assert r.status == FAILED, r.detail
    assert "does not do what the baseline recorded: flushes" in r.detail or \
        "does not do what the baseline recorded: pages" in r.detail, r.detail


def test_a_changed_result_is_caught(monkeypatch):
    """mlock of a range that is already locked answering -EAGAIN: a result the baseline did
    not record (and no invariant judges return values)."""
    from unmapcheck.impl import mlock
    real = mlock.do_mlock
    monkeypatch.setattr(mlock, "do_mlock", lambda mm, start, length, flags:
                        -11 if mm.locked_vm else real(mm, start, length, flags))
    r = B.run(Options(timeout=300))
    assert r.status == FAILED, r.detail
    assert "results: recorded" in r.detail and "-11" in r.detail, r.detail


def test_a_changed_result_of_a_corpus_scenario_is_caught(monkeypatch):
    """mlock over RLIMIT_MEMLOCK that does not count the pages of the range already locked
    (count_mm_mlocked_page_nr answering 0): a refused mlock the kernel accepts, in a
    one-thread corpus scenario."""
    from unmapcheck.impl import mlock
    monkeypatch.setattr(mlock, "count_mm_mlocked_page_nr", lambda mm, start, length: 0)
    r = B.run(Options(timeout=300))
    assert r.status == FAILED, r.detail
    assert "scenario never-mlock-rlimit does not do what the baseline recorded: results" \
        in r.detail, r.detail


def _write(path, doc):
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))


def test_a_stale_baseline_fails_with_what_to_do(tmp_path):
    with gzip.open(B.DEFAULT_PATH, "rt") as f:
        doc = json.load(f)
    del doc["layouts"]["inside-a-table"]["fork"]
    _write(tmp_path / "b.json.gz", doc)
    doc2 = json.loads(json.dumps(doc))
    doc2["layouts"]["inside-a-table"]["fork"] = {}
    doc2["scenarios"].pop("never-mlock-rlimit")
    _write(tmp_path / "c.json.gz", doc2)
    r = B.run(Options(timeout=300), tmp_path / "c.json.gz")
    assert r.status == FAILED and "scenario never-mlock-rlimit is not in it" in r.detail
    r = B.run(Options(timeout=300), tmp_path / "b.json.gz")
    assert r.status == FAILED
    assert "stale" in r.detail and "[fork] is not in it" in r.detail
    assert "--record-baseline" in r.detail and "\n" not in r.detail


@pytest.mark.parametrize("content,needle", [
    (b"not gzip", "not a gzip-compressed JSON baseline"),
    (gzip.compress(b"{"), "not a gzip-compressed JSON baseline"),
    (gzip.compress(b'{"schema": "other"}'), "not an unmapcheck-baseline file"),
    (gzip.compress(b'{"schema": "unmapcheck-baseline", "version": 9}'), "version 9"),
    (gzip.compress(b'{"schema": "unmapcheck-baseline", "version": 1, "layouts": []}'),
     "field 'layouts'"),
    (gzip.compress(b'{"schema": "unmapcheck-baseline", "version": 1, "layouts": {}}'),
     "field 'scenarios'"),
])
def test_a_malformed_baseline_is_one_line(tmp_path, content, needle):
    p = tmp_path / "b.json.gz"
    p.write_bytes(content)
    r = B.run(Options(timeout=300), p)
    assert r.status == FAILED and "cannot load the baseline" in r.detail
    assert needle in r.detail and "\n" not in r.detail, r.detail


def test_record_baseline_from_the_cli_writes_the_shipped_file(tmp_path, capsys):
    out = tmp_path / "b.json.gz"
    assert main(["prove", "--record-baseline", str(out)]) == 0
    assert "recorded the baseline of" in capsys.readouterr().out
    assert out.read_bytes() == B.DEFAULT_PATH.read_bytes()     # deterministic, and current


@pytest.mark.parametrize("args,needle", [
    (["--record-baseline", "b.json"], "must end in .json.gz"),
    (["--record-baseline", "/nonexistent/b.json.gz"], "does not exist"),
    (["--record-baseline", "b.json.gz", "--list"], "takes no --list"),
    (["--record-baseline", "b.json.gz", "baseline"], "takes no obligation names"),
])
def test_record_baseline_usage_errors(tmp_path, monkeypatch, capsys, args, needle):
    monkeypatch.chdir(tmp_path)
    assert main(["prove", *args]) == 2
    err = capsys.readouterr().err
    assert needle in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "b.json.gz").exists()
