"""prove never drops an obligation silently: what cannot be loaded is an error (exit 2)."""

from __future__ import annotations

import sys

import pytest

from unmapcheck.checker import prove as P
from unmapcheck.checker.cli import main


def _forget_symbolic(monkeypatch):
    # Make the next import of the symbolic obligations really happen (and fail).
    monkeypatch.delitem(sys.modules, "unmapcheck.proofs.symbolic", raising=False)


def test_prove_without_z3_is_an_error_naming_the_obligations(monkeypatch, capsys):
    _forget_symbolic(monkeypatch)
    monkeypatch.setitem(sys.modules, "z3", None)          # import z3 -> ImportError
    assert main(["prove"]) == 2
    err = capsys.readouterr().err
    assert "cannot load the symbolic obligations" in err and "z3" in err
    assert err.count("\n") == 1                           # one line, no traceback
    assert main(["prove", "--list"]) == 2                 # --list does not hide it either


def test_a_broken_corpus_scenario_is_an_error(monkeypatch, tmp_path, capsys):
    bad = tmp_path / "broken.toml"
    bad.write_text("[scenario]\nname = 'x'\n")
    import unmapcheck.proofs as proofs
    real = proofs.scenario_paths
    monkeypatch.setattr(proofs, "scenario_paths", lambda: real() + [bad])
    assert main(["prove", "--list"]) == 2
    err = capsys.readouterr().err
    assert "cannot load the scenario obligation" in err and "broken.toml" in err


def test_list_and_run_count_the_same_obligations(capsys):
    assert main(["prove", "--list"]) == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(listed) == len(P.all_obligations())
    impl_listed = [line for line in listed if " impl:" in line]
    assert impl_listed
    import json
    assert main(["prove", "impl:", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["total"] == len(impl_listed)
    assert doc["summary"]["proved"] == len(impl_listed)


@pytest.mark.parametrize("name", ["impl:pgd_addr_end"])
def test_a_single_obligation_runs(name, capsys):
    assert main(["prove", name]) == 0
    assert "1 obligations: 1 proved" in capsys.readouterr().out


_ONE_THREAD = """
[scenario]
name = "{name}"
cpus = 1

[[process]]
name = "p"
[[process.mapping]]
addr = 0x7f0000000000
pages = 1
prot = "rw"

[[thread]]
name = "T0"
process = "p"
cpu = 0
program = [ {{ op = "load", addr = 0x7f0000000000 }} ]

[expect]
{expect}
"""


@pytest.mark.parametrize("jobs", [1, 2])
def test_fail_fast_stops_at_the_first_obligation_not_proved(tmp_path, capsys, jobs):
    """A folder of three scenarios, the first of which expects an outcome the kernel never
    produces (an anonymous page reads 0, not 0x99): prove -x stops there and reports the
    other two as not run; without -x all three run."""
    import json
    (tmp_path / "a.toml").write_text(_ONE_THREAD.format(name="a", expect='exists = "T0[0] == 0x99"'))
    for n in "bc":
        (tmp_path / f"{n}.toml").write_text(_ONE_THREAD.format(name=n, expect="never = true"))
    assert main(["prove", str(tmp_path), "--json", "-x", f"--jobs={jobs}"]) == 1
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["failed"] == 1 and summary["total"] + summary["not_run"] == 3
    if jobs == 1:
        assert summary["total"] == 1 and summary["not_run"] == 2
    assert main(["prove", str(tmp_path), "-x", f"--jobs={jobs}"]) == 1
    out = capsys.readouterr().out
    assert "FAILED scenario:a" in out
    if jobs == 1:
        assert "2 of 3 obligations not run" in out
    assert main(["prove", str(tmp_path), "--json", f"--jobs={jobs}"]) == 1
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary == dict(summary, total=3, failed=1, proved=2, not_run=0)
