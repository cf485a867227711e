"""The recorded oracle (checker/oracle/recorded.py, proofs/recorded.py): the real kernel's
reports kept as data and replayed on the model by prove's oracle:recorded, without a kernel."""

from __future__ import annotations

import gzip
import json

import pytest

from unmapcheck.checker.oracle import recorded as R
from unmapcheck.checker.prove import FAILED, PROVED, UNKNOWN, Options
from unmapcheck.proofs import recorded as P


@pytest.fixture(scope="module")
def shipped():
    return R.load(R.default_recording())


def _first(rec, n):
    return R.Recording(rec.path, rec.kernel, rec.seed, n, rec.entries[:n])


def test_the_shipped_recording_is_the_model_s_kernel_and_the_model_matches_it(shipped):
    assert shipped.kernel.startswith("6.18."), shipped.kernel
    assert len(shipped.entries) == shipped.examples >= 1000
    ops = {c.op for seq, _ in shipped.entries for c in seq.calls}
    assert {"mmap", "munmap", "mprotect", "madvise", "mlock", "fork", "store"} <= ops, ops
    r = P.run(shipped, Options(timeout=600))
    assert r.status == PROVED, r.detail
    assert f"all {len(shipped.entries)} sequences" in r.detail


def test_an_mprotect_that_loses_vm_account_is_caught(shipped, monkeypatch):
    """vma_modify_flags() that drops VM_ACCOUNT (mprotect_fixup's "newflags & VM_WRITE"
    negated, say): no invariant is broken (the flag only charges commit and decides
    merges), but the kernel's VmFlags say "ac" and the model's do not, or a merge the
    kernel makes is not made."""
    from unmapcheck.impl import vma
    from unmapcheck.impl.constants import VM_ACCOUNT
    real = vma.vma_modify_flags
    monkeypatch.setattr(vma, "vma_modify_flags",
                        lambda vmi, prev, vma, start, end, newflags:
                        real(vmi, prev, vma, start, end, newflags & ~VM_ACCOUNT))
    r = P.run(shipped, Options(timeout=600))
    assert r.status == FAILED, r.detail
    # (vma_modify_flags serves mlock too: the first difference may be a merge not made)
    assert "VmFlags" in r.detail or "VMA list differs" in r.detail, r.detail
    assert "calls" in r.data["counterexample"] or "[[" in r.data["counterexample"]


def test_an_mlock_one_page_short_is_caught(shipped, monkeypatch):
    """apply_vma_lock_flags() that stops one page early: the last page is neither locked
    nor populated, so smaps' Locked/Rss and the VMA split differ from the kernel's."""
    from unmapcheck.impl import mlock
    real = mlock.apply_vma_lock_flags

    def short(mm, start, length, flags):
        return real(mm, start, length - 4096 if length > 4096 else length, flags)
    monkeypatch.setattr(mlock, "apply_vma_lock_flags", short)
    r = P.run(shipped, Options(timeout=600))
    assert r.status == FAILED and "mlock" in r.detail, r.detail


def test_a_budget_cut_short_is_unknown(shipped):
    r = P.run(shipped, Options(timeout=0.0))
    assert r.status == UNKNOWN and "time budget" in r.detail


def _write(path, doc):
    path.write_bytes(gzip.compress(json.dumps(doc).encode()))


def test_a_malformed_recording_is_one_line(tmp_path, shipped):
    good = json.loads(gzip.decompress(R.default_recording().read_bytes()))
    entry = next(e for e in good["entries"] if e["sequence"]["calls"])
    cases = {
        "not gzip": (b"plain", "not a gzip'd JSON recording"),
        "schema": ({**good, "schema": "other"}, "not a recording"),
        "kernel": ({**good, "kernel": 5}, "kernel: expected str"),
        "count": ({**good, "examples": 2, "entries": [entry]}, "examples says 2"),
        "entry": ({**good, "examples": 1, "entries": [{"sequence": {}}]},
                  "entries[0]: expected {sequence, real}"),
        "calls": ({**good, "examples": 1,
                   "entries": [{"sequence": entry["sequence"],
                                "real": {**entry["real"], "calls": []}}]},
                  "one call (with its vmas) per call"),
        "sequence": ({**good, "examples": 1,
                      "entries": [{"sequence": {**entry["sequence"], "calls": "x"},
                                   "real": entry["real"]}]}, "entries[0].sequence"),
    }
    for name, (doc, want) in cases.items():
        p = tmp_path / f"{name}.json.gz"
        if isinstance(doc, bytes):
            p.write_bytes(doc)
        else:
            _write(p, doc)
        with pytest.raises(R.RecordingError) as e:
            R.load(p)
        msg = str(e.value)
        assert want in msg and str(p) in msg and "\n" not in msg, (name, msg)
    with pytest.raises(R.RecordingError, match="cannot read"):
        R.load(tmp_path / "missing.json.gz")
    # listing reads only the header, which must come first
    _write(tmp_path / "sorted.json.gz", {"entries": [], **{k: good[k] for k in R.HEADER_KEYS}})
    with pytest.raises(R.RecordingError, match="its header first"):
        R.read_header(tmp_path / "sorted.json.gz")
    head = R.read_header(R.default_recording())
    assert (head.kernel, head.examples) == (shipped.kernel, len(shipped.entries))


def test_record_writes_what_the_kernel_reported_and_replays_it(tmp_path, runner, capsys):
    from unmapcheck.checker.cli import main
    out = tmp_path / "rec.json.gz"
    assert main(["oracle", "--record", str(out), "--examples", "15", "--seed", "7"]) == 0
    assert "recorded 15 sequences" in capsys.readouterr().out
    rec = R.load(out)
    assert len(rec.entries) == 15 and rec.seed == 7 and rec.kernel
    again = R.replay(rec, 600)
    assert again.checked == 15 and again.mismatch is None
    assert main(["oracle", "--record", str(tmp_path / "r.json"), "--examples", "2"]) == 2
    assert main(["oracle", "--record", str(tmp_path / "no" / "r.json.gz")]) == 2
    err = capsys.readouterr().err
    assert "must end in .json.gz" in err and "does not exist" in err
