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
    r = B.run(Options(timeout=300), only="inside-a-table")
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
    r = B.run(Options(timeout=300), only="inside-a-table")
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
    r = B.run(Options(timeout=300), only="inside-a-table")
    assert r.status == FAILED, r.detail
    assert "results: recorded" in r.detail and "-11" in r.detail, r.detail


def test_a_changed_result_of_a_corpus_scenario_is_caught(monkeypatch):
    """mlock over RLIMIT_MEMLOCK that does not count the pages of the range already locked
    (count_mm_mlocked_page_nr answering 0): a refused mlock the kernel accepts, in a
    one-thread corpus scenario."""
    from unmapcheck.impl import mlock
    monkeypatch.setattr(mlock, "count_mm_mlocked_page_nr", lambda mm, start, length: 0)
    r = B.run(Options(timeout=300), only="never-mlock-rlimit")
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
    (gzip.compress(b'{"schema": "unmapcheck-baseline", "version": 4, "layouts": []}'),
     "field 'layouts'"),
    (gzip.compress(b'{"schema": "unmapcheck-baseline", "version": 4, "layouts": {}}'),
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


def test_a_fault_that_was_not_needed_is_caught(monkeypatch):
    """vma_wants_writenotify() answering "yes" for every shared mapping (shmem has no
    ->page_mkwrite and does not account dirty pages, so 6.18 answers "no"): safe, every
    write still lands, but mprotect's read-write upgrade of a shared shmem mapping no longer
    makes its PTEs writable, and the next store takes a write-protect fault the baseline did
    not record."""
    from unmapcheck.impl import fault
    monkeypatch.setattr(fault, "vma_wants_writenotify", lambda vma: True)
    r = B.run(Options(timeout=300), only="shmem-mlocked")
    assert r.status == FAILED, r.detail
    assert "does not do what the baseline recorded: faults: recorded" in r.detail, r.detail


def test_mm_account_fault_counts_what_getrusage_reports():
    """A completed fault counts once, in min_flt (the model's faults are minor: no I/O); a
    failed one (a store to a read-only mapping: SIGSEGV) not at all."""
    from unmapcheck.impl import SigSegv, System
    from unmapcheck.impl.constants import MAP_ANONYMOUS, MAP_PRIVATE, PROT_READ, PROT_WRITE
    s = System()
    p = s.spawn()
    a = p.mmap(0, 0x2000, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS)
    r = p.mmap(0, 0x1000, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS)
    before = (p.task.min_flt, p.task.maj_flt)
    p.store(a, 1)
    p.store(a + 0x1000, 2)
    p.store(a, 3)                       # the PTE is writable now: no fault
    assert (p.task.min_flt, p.task.maj_flt) == (before[0] + 2, before[1])
    with pytest.raises(SigSegv):
        p.store(r, 4)
    assert (p.task.min_flt, p.task.maj_flt) == (before[0] + 2, before[1])
    p.load(r)                           # a read fault on it maps the zero page
    assert p.task.min_flt == before[0] + 3


def test_a_zap_that_no_longer_dirties_its_page_is_caught(monkeypatch):
    """zap_present_folio_ptes() no longer moving a dirty PTE's dirty bit to the page-cache
    folio: munmap of the shared shmem mapping A, written through its PTEs at setup, leaves
    its pages clean in the page cache (reclaim would drop them as if never written). No
    invariant of a one-thread program objects; the frames left dirty differ from the
    baseline's."""
    from unmapcheck.impl import zap
    monkeypatch.setattr(zap, "folio_set_dirty", lambda folio: None)
    r = B.run(Options(timeout=300), only="shmem-mlocked")
    assert r.status == FAILED, r.detail
    assert "does not do what the baseline recorded: dirty: recorded" in r.detail, r.detail


def test_an_rss_high_water_mark_gone_wrong_is_caught(monkeypatch):
    """get_mm_rss() leaving out MM_SHMEMPAGES: the rss counters themselves stay exact, so no
    invariant objects, but the VmHWM of a process with shmem pages mapped differs from the
    baseline's."""
    from unmapcheck.impl import mm_types
    from unmapcheck.impl.constants import MM_ANONPAGES, MM_FILEPAGES
    monkeypatch.setattr(mm_types, "get_mm_rss", lambda mm: mm.rss_stat[MM_FILEPAGES]
                        + mm.rss_stat[MM_ANONPAGES])
    r = B.run(Options(timeout=300), only="shmem-mlocked")
    assert r.status == FAILED, r.detail
    assert "does not do what the baseline recorded: hiwater: recorded" in r.detail, r.detail
