"""Everyday use: your own scenarios in prove and list, corpus names in explore, JUnit, one
JSON envelope, expected violations reading FOUND."""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET

from unmapcheck.checker.cli import main
from unmapcheck.proofs import SCENARIO_DIR

SMALL = SCENARIO_DIR / "687cb0884a71-oom-reaper-arm64.toml"


def test_prove_takes_files_and_folders(tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    shutil.copy(SMALL, mine / "a.toml")
    assert main(["prove", str(mine), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "unmapcheck-prove" and doc["version"] == 1
    names = [r["name"] for r in doc["results"]]
    assert names == ["scenario:687cb0884a71-oom-reaper-arm64",
                     "scenario:687cb0884a71-oom-reaper-arm64 --without 687cb0884a71"]
    assert [r["result"] for r in doc["results"]] == ["PROVED", "FOUND"]
    assert doc["summary"]["found"] == 1 and doc["summary"]["proved"] == 1
    assert main(["prove", str(mine / "a.toml"), "-k", "without"]) == 0
    out = capsys.readouterr().out
    assert "FOUND" in out and "1 obligations" in out


def test_list_with_a_pattern(capsys):
    assert main(["list", "-k", "LOST"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4 and all("lost-write" in line for line in lines)
    assert main(["list", "-k", "impl:p*_addr_end", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "unmapcheck-list"
    assert [o["name"] for o in doc["obligations"]] == ["impl:pgd_addr_end", "impl:pud_addr_end",
                                                       "impl:pmd_addr_end"]
    assert main(["list", "-k", "nothing-like-this"]) == 2


def test_explore_takes_a_corpus_name(capsys):
    assert main(["explore", "687cb0884a71", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "unmapcheck-explore" and doc["scenario"] == "687cb0884a71-oom-reaper-arm64"
    assert main(["explore", "never-", "--json"]) == 2          # several match
    assert "several corpus scenarios" in capsys.readouterr().err


def test_junit_output(tmp_path, capsys):
    out = tmp_path / "r.xml"
    assert main(["prove", "impl:pgd", "687cb", "--junit", str(out)]) == 0
    root = ET.parse(out).getroot()
    assert root.tag == "testsuite" and root.get("tests") == "3" and root.get("failures") == "0"
    results = {c.get("name"): c.find("properties/property[@name='result']").get("value")
               for c in root.iter("testcase")}
    assert results["scenario:687cb0884a71-oom-reaper-arm64 --without 687cb0884a71"] == "FOUND"


def test_not_on_a_terminal_each_obligation_is_a_line(capsys):
    assert main(["prove", "impl:pgd", "impl:pud", "--jobs", "1"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[1/2] PROVED  impl:pgd_addr_end")
    assert out[1].startswith("[2/2] PROVED  impl:pud_addr_end")
    # in parallel (the default: one job per usable CPU) a line per obligation as it ends
    assert main(["prove", "impl:pgd", "impl:pud", "--jobs", "2"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert sorted(line.split("(")[0].split("]", 1)[1].strip() for line in out[:2]) == \
        ["PROVED  impl:pgd_addr_end", "PROVED  impl:pud_addr_end"]
    assert {line.split("]")[0] for line in out[:2]} == {"[1/2", "[2/2"}


def test_replay_json_envelope(tmp_path, capsys):
    t = tmp_path / "t.json"
    assert main(["explore", str(SMALL), "--without", "687cb0884a71", "--trace-out", str(t)]) == 0
    capsys.readouterr()
    assert main(["replay", str(t), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["schema"] == "unmapcheck-replay" and doc["reproduced"] is True


def test_text_trace_wraps_instead_of_cutting():
    from unmapcheck.checker.explore import iterative_context_bounding
    from unmapcheck.checker.scenario import load
    from unmapcheck.checker.trace import counterexample_trace, render_text
    sc = load(SCENARIO_DIR / "99baac21e458-parallel-dontneed.toml").with_fixes_off(
        ["99baac21e458"])
    best = iterative_context_bounding(sc, 1).best()
    doc = counterexample_trace(sc, best).to_json()
    changes = [c for s in doc["steps"] for c in s["changes"] if c[0] != "pages"]
    for width in (60, 200):
        text = render_text(doc, width=width)
        flat = " ".join(text.split())             # undo the wrapping
        assert max(len(line) for line in text.splitlines()
                   if not line.startswith(("scenario:", "VIOLATED", "reproduce", "race"))) <= width
        for var, key, old, new in changes:        # every change, whole
            assert f"{var} {key}" in flat or width == 60
        assert "more changes" not in text
