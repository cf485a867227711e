"""``unmapcheck oracle`` (checker/oracle/cli.py) through ``unmapcheck.checker.cli.main``.

Campaigns and replays need the real kernel and skip (with the reason) where it cannot be
used; bad input and an unusable real kernel are checked everywhere: exit code 2, one line on
stderr, no traceback.
"""

from __future__ import annotations

import json
import sys
import tempfile

import pytest

from unmapcheck.checker.cli import main
from unmapcheck.checker.oracle import campaign as C
from unmapcheck.checker.oracle import real as R
from unmapcheck.checker.oracle import sequence as S
from unmapcheck.checker.oracle.sequence import Call, Sequence

P = 4096
RW = S.PROT_READ | S.PROT_WRITE
AF = S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED

GOOD = Sequence(calls=(Call.mmap(0, 2 * P, RW, AF), Call.store(0, 1),
                       Call.mprotect(0, 2 * P, S.PROT_NONE), Call.munmap(P, P)))


@pytest.fixture(scope="module")
def real_kernel():
    try:
        R.check_real_kernel()
        R.probe_library()
    except R.OracleUnavailable as e:
        pytest.skip(str(e))


def one_line_error(capsys) -> str:
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "Traceback" not in out
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("unmapcheck: error: ")
    return lines[0]


def perturb_model(monkeypatch):
    """Make the model report one kB more Rss for the first VMA after every call: a mismatch
    on any sequence that maps something."""
    real_run_model = C.run_model

    def broken(seq, **kw):
        rep = real_run_model(seq, **kw)
        for c in rep["calls"]:
            if c.get("vmas"):
                c["vmas"][0] = dict(c["vmas"][0], Rss=c["vmas"][0]["Rss"] + 4)
        return rep
    monkeypatch.setattr(C, "run_model", broken)


# --- campaigns ----------------------------------------------------------------------------
def test_campaign_summary_and_exit_0(real_kernel, capsys):
    assert main(["oracle", "--examples", "12", "--seed", "7"]) == 0
    out, err = capsys.readouterr()
    assert "sequences run    12" in out
    assert "mismatches       0" in out
    assert "real kernel " in out and "result: the model matches the real kernel" in out
    assert err == ""                              # not a terminal: no progress line


def test_campaign_json(real_kernel, capsys):
    assert main(["oracle", "--examples", "5", "--seed", "3", "--max-calls", "4",
                 "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["schema"] == "unmapcheck-oracle" and d["version"] == 1
    assert d["mode"] == "campaign" and d["sequences_run"] == 5 and d["mismatches"] == 0
    assert d["calls_compared"] >= 0 and d["kernel"] and d["first_mismatch"] is None


def test_campaign_progress_line_on_a_terminal(real_kernel, capsys, monkeypatch):
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    assert main(["oracle", "--examples", "6", "--seed", "1"]) == 0
    err = capsys.readouterr().err
    assert "\roracle: 6/6 sequences, 0 mismatching" in err
    assert err.endswith("\r")                     # the line is cleared at the end


def test_campaign_mismatch_exit_1_minimal_sequence_and_regression_test(
        real_kernel, capsys, monkeypatch, tmp_path):
    perturb_model(monkeypatch)
    save = tmp_path / "min.toml"
    assert main(["oracle", "--examples", "8", "--seed", "2", "--save", str(save)]) == 1
    out = capsys.readouterr().out
    assert "smaps Rss" in out and "result: MISMATCH" in out
    assert "first mismatch, shrunk to a minimal sequence" in out
    assert "def test_oracle_" in out and "assert_model_matches(SEQ, REAL)" in out
    seq = S.load(save)                            # the minimal sequence: one mapping call
    assert [c.op for c in seq.calls] == ["mmap"] and not seq.files
    # Replaying it gives the same verdict.
    assert main(["oracle", "--sequence", str(save)]) == 1
    assert "MISMATCH: call 0 mmap" in capsys.readouterr().out


# --- sharded campaigns (--jobs / --dask) ---------------------------------------------------
def test_sharded_campaign_is_the_same_whatever_the_jobs(real_kernel, capsys, monkeypatch):
    """Shards depend on N and S only: --jobs 1 and --jobs 2 run the same sequences."""
    monkeypatch.setattr(C, "SHARD_EXAMPLES", 10)
    docs = []
    for jobs in ("1", "2"):
        assert main(["oracle", "--examples", "25", "--seed", "4", "--jobs", jobs,
                     "--json"]) == 0
        docs.append(json.loads(capsys.readouterr().out))
    one, two = docs
    assert one["shards"] == two["shards"] == 3
    assert one["sequences_run"] == two["sequences_run"] == 25
    assert (one["calls_compared"], one["refused_calls"]) == \
        (two["calls_compared"], two["refused_calls"])
    assert C.shards(25, 4) != C.shards(25, 5)


def test_sharded_campaign_finds_a_planted_mismatch_and_shrinks_it(
        real_kernel, capsys, monkeypatch, tmp_path):
    """The workers are forked after the model is broken: every shard counts mismatches, and
    the first mismatching shard is shrunk here as a one-shard campaign is."""
    perturb_model(monkeypatch)
    monkeypatch.setattr(C, "SHARD_EXAMPLES", 4)
    save = tmp_path / "min.toml"
    assert main(["oracle", "--examples", "8", "--seed", "2", "--jobs", "2", "--save",
                 str(save), "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert d["shards"] == 2 and d["mismatches"] >= 2 and d["saved_to"] == str(save)
    assert [c.op for c in S.load(save).calls] == ["mmap"]


@pytest.mark.parametrize("argv, what", [
    (["--jobs", "0"], "--jobs must be between 1 and 1024"),
    (["--jobs", "2", "--dask", "local"], "give one"),
    (["--jobs", "2", "--sequence", "x.toml"], "not for --sequence or --record"),
    (["--dask", "local", "--record", "x.json.gz"], "not for --sequence or --record"),
])
def test_sharding_bad_arguments(capsys, argv, what):
    assert main(["oracle", *argv]) == 2
    assert what in one_line_error(capsys)


def test_sharded_campaign_unreachable_scheduler(capsys, monkeypatch):
    from unmapcheck.checker import backend
    monkeypatch.setattr(backend, "CONNECT_TIMEOUT", 0.5)
    assert main(["oracle", "--examples", "3", "--dask", "tcp://127.0.0.1:9"]) == 2
    assert "cannot reach the scheduler" in one_line_error(capsys)


# --- replay -------------------------------------------------------------------------------
def test_replay_toml_and_json(real_kernel, capsys, tmp_path):
    for name in ("seq.toml", "seq.json"):
        path = tmp_path / name
        S.save(GOOD, path)
        assert main(["oracle", "--sequence", str(path)]) == 0
        out = capsys.readouterr().out
        assert f"{len(GOOD.calls)} calls" in out and "the model matches" in out
    assert main(["oracle", "--sequence", str(tmp_path / "seq.json"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["mode"] == "replay" and d["ok"] and d["calls"] == 4 and d["mismatch"] is None


def test_replay_mismatch_json(real_kernel, capsys, monkeypatch, tmp_path):
    perturb_model(monkeypatch)
    path = tmp_path / "seq.toml"
    S.save(GOOD, path)
    assert main(["oracle", "--sequence", str(path), "--json"]) == 1
    d = json.loads(capsys.readouterr().out)
    assert not d["ok"] and d["mismatch_call"] == 0 and d["mismatch_field"] == "Rss"
    assert "def test_oracle_" in d["regression_test"]


# --- bad input: exit 2, one line ----------------------------------------------------------
def test_malformed_sequence_file_names_file_line_call_field(capsys, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('[[calls]]\nop = "mmap"\naddr = 0\nlength = 0x1000\n'
                    'prot = "PROT_READ|PROT_BOGUS"\nflags = "MAP_PRIVATE"\n')
    assert main(["oracle", "--sequence", str(path)]) == 2
    line = one_line_error(capsys)
    assert "bad.toml:5: call 0 (mmap): field 'prot'" in line


def test_malformed_json_and_missing_field(capsys, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"calls": [{"op": "munmap", "addr": 0}]}))
    assert main(["oracle", "--sequence", str(path)]) == 2
    assert "bad.json: call 0 (munmap): field 'length': missing" in one_line_error(capsys)
    path.write_text("{not json")
    assert main(["oracle", "--sequence", str(path)]) == 2
    assert "bad.json:1: not valid JSON" in one_line_error(capsys)


def test_missing_sequence_file(capsys, tmp_path):
    assert main(["oracle", "--sequence", str(tmp_path / "nope.toml")]) == 2
    assert "nope.toml: cannot read" in one_line_error(capsys)


@pytest.mark.parametrize("argv, what", [
    (["--examples", "0"], "--examples must be at least 1"),
    (["--max-calls", "0"], "--max-calls must be at least 1"),
    (["--save", "out.txt"], "must end in .toml or .json"),
    (["--sequence", "x.toml", "--examples", "5"], "--sequence replays one saved sequence"),
])
def test_usage_errors(capsys, argv, what):
    assert main(["oracle"] + argv) == 2
    assert what in one_line_error(capsys)


# --- the real kernel cannot be used: exit 2, one line -------------------------------------
def test_another_os(capsys, monkeypatch):
    monkeypatch.setattr(R.sys, "platform", "darwin")
    assert main(["oracle", "--examples", "3"]) == 2
    assert "needs Linux, this is darwin" in one_line_error(capsys)


def test_no_proc_smaps(capsys, monkeypatch, tmp_path):
    if sys.platform != "linux":
        pytest.skip("not Linux")
    monkeypatch.setattr(R, "SMAPS_PATH", str(tmp_path / "no-smaps"))
    path = tmp_path / "seq.toml"
    S.save(GOOD, path)
    assert main(["oracle", "--sequence", str(path)]) == 2
    assert "no-smaps is missing" in one_line_error(capsys)


def test_no_c_compiler(capsys, monkeypatch, tmp_path):
    if sys.platform != "linux":
        pytest.skip("not Linux")
    monkeypatch.setattr(R, "_find_cc", lambda: None)
    monkeypatch.setenv("UNMAPCHECK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))   # no probe cached anywhere
    assert main(["oracle", "--examples", "3"]) == 2
    assert "no C compiler found" in one_line_error(capsys)
