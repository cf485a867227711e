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
