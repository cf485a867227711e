"""unmapcheck mutate: mutants of impl/ run against prove on a temporary copy of the package.

Kept fast: one obligation that kills the known-bad mutant (bounded:mmu_gather, a few
seconds), and a laid-out copy with a tiny extra module for the equivalent mutant."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from unmapcheck.checker import mutate as M
from unmapcheck.checker.cli import main

KILLER = "bounded:mmu_gather"          # unmapcheck prove --list: the mmu_gather protocol


def _run(argv, capsys):
    try:
        rc = main(argv)
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def _tree_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts:
            h.update(p.relative_to(folder).as_posix().encode() + b"\0" + p.read_bytes())
    return h.hexdigest()


def test_deleting_the_flush_of_tlb_flush_mmu_is_killed_and_the_tree_is_untouched(capsys):
    impl = M.package_dirs()["unmapcheck.impl"]
    before = _tree_hash(impl)
    rc, out, err = _run(["mutate", "tlb_flush_mmu", "-k", "delete_tlb_flush",
                         "--obligations", KILLER, "--json"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert doc["schema"] == "unmapcheck-mutate" and doc["version"] == 1
    [m] = doc["mutants"]
    assert m["id"] == "mmu_gather.tlb_flush_mmu.delete_tlb_flush.1"
    assert (m["file"], m["function"], m["operator"]) == \
        ("impl/mmu_gather.py", "tlb_flush_mmu", "delete_tlb_flush")
    assert (m["before"], m["after"]) == ("tlb_flush_mmu_tlbonly(tlb)", "pass")
    assert m["status"] == "KILLED" and m["killer"] == KILLER, m
    assert doc["obligations"]["names"] == [KILLER]
    assert doc["summary"] == dict(doc["summary"], total=1, killed=1, survived=0,
                                  equivalent=0, incompetent=0, timeout=0, score=1.0)
    assert _tree_hash(impl) == before          # the mutant was written to a copy only


EQUIV_MODULE = '''"""Only for the mutation tests: nothing calls these."""
from .mmu_gather import tlb_flush_mmu


def tlb_flush_dead(tlb):
    return None
    tlb_flush_mmu(tlb)


def tlb_flush_live(tlb):
    tlb_flush_mmu(tlb)
'''


def test_an_equivalent_mutant_is_listed_apart_and_not_scored(tmp_path):
    M.copy_package(tmp_path, M.package_dirs())
    (tmp_path / "unmapcheck" / "impl" / "zz_mutate_probe.py").write_text(EQUIV_MODULE)
    before = _tree_hash(tmp_path)
    pkg = M.Package(tmp_path)
    mutants = M.select(pkg, ["impl/zz_mutate_probe.py"], "delete_tlb_flush")
    by_fn = {m.function: m for m in mutants}
    assert sorted(by_fn) == ["tlb_flush_dead", "tlb_flush_live"]
    # deleting a call after the return changes the source, not the byte-code
    assert by_fn["tlb_flush_dead"].equivalent == "same byte-code as the original"
    assert by_fn["tlb_flush_live"].equivalent is None
    M.run_mutants(pkg, mutants, "impl:pgd_addr_end", jobs=1, timeout=120)
    assert by_fn["tlb_flush_dead"].status == M.EQUIVALENT
    assert by_fn["tlb_flush_dead"].seconds == 0            # never run
    # no obligation calls it: survived without a run, not assumed equivalent
    assert by_fn["tlb_flush_live"].status == M.SURVIVED
    assert by_fn["tlb_flush_live"].reached_by == 0
    assert "no obligation executes tlb_flush_live" in by_fn["tlb_flush_live"].detail
    s = M.summarise(mutants)
    assert (s.total, s.equivalent, s.survived, s.killed) == (2, 1, 1, 0)
    assert s.score == 0.0                    # 0 killed of the 1 that counts, not of 2
    table = M.render_table(mutants, run=True)
    assert "EQUIVALENT" in table and "SURVIVED" in table
    assert "tlb_flush_mmu(tlb)  ->  pass" in table
    assert _tree_hash(tmp_path) == before    # the laid-out tree too: runs use their own copy


MODEL_ONLY_MODULE = '''"""Only for the mutation tests."""
from .mmu_gather import tlb_flush_mmu
from .sched import model_only


@model_only
def tlb_flush_text(tlb):
    if tlb.fullmm:
        tlb_flush_mmu(tlb)
    return "text"


def tlb_flush_kernel(tlb):
    if tlb.fullmm:
        tlb_flush_mmu(tlb)
'''


def test_a_model_only_helper_is_neither_mutated_nor_counted_as_kernel_code(tmp_path):
    from unmapcheck.checker.coverage_report import kernel_functions
    M.copy_package(tmp_path, M.package_dirs())
    probe = tmp_path / "unmapcheck" / "impl" / "zz_mutate_probe.py"
    probe.write_text(MODEL_ONLY_MODULE)
    pkg = M.Package(tmp_path)
    assert {m.function for m in pkg.mutants([probe])} == {"tlb_flush_kernel"}
    assert [f.name for f in kernel_functions(probe)] == ["tlb_flush_kernel"]
    # impl/'s own: the text of a PTE for traces
    assert "describe" not in M.Package().function_names()


def test_unknown_function_or_path_is_one_line_exit_2(capsys):
    for argv, needle in [(["mutate", "no_such_kernel_function"], "no_such_kernel_function"),
                         (["mutate", "impl/no_such_file.py"], "no_such_file.py"),
                         (["mutate", "tlb_flush_mmu", "-k", "zzz-no-mutant"], "zzz-no-mutant"),
                         (["mutate", "tlb_flush_mmu", "--obligations", "zzz-none"], "zzz-none"),
                         (["mutate", "--fail-under", "2"], "--fail-under")]:
        rc, out, err = _run(argv, capsys)
        assert rc == 2, (argv, rc, err)
        assert err.count("\n") == 1 and err.startswith("unmapcheck") and needle in err, err
        assert "Traceback" not in err


def test_list_is_deterministic_and_sorted(capsys):
    runs = [_run(["mutate", "impl/mmu_gather.py", "--list"], capsys) for _ in range(2)]
    assert runs[0] == runs[1] and runs[0][0] == 0
    text = runs[0][1]
    assert "mmu_gather.tlb_flush_mmu.delete_tlb_flush.1" in text
    assert "tlb_flush_mmu_tlbonly(tlb); tlb_flush_mmu_free(tlb)  ->  " \
        "tlb_flush_mmu_free(tlb); tlb_flush_mmu_tlbonly(tlb)" in text
    rc, out, _ = _run(["mutate", "impl/mmu_gather.py", "--list", "--json"], capsys)
    ms = json.loads(out)["mutants"]
    assert [(m["file"], m["line"], m["operator"]) for m in ms] == \
        sorted((m["file"], m["line"], m["operator"]) for m in ms)
    assert len({m["id"] for m in ms}) == len(ms)
    assert {m["operator"] for m in ms} <= set(M.OPERATORS)
    # a seeded sample: the same every time, a subset, in the listing's order
    samples = [json.loads(_run(["mutate", "impl/mmu_gather.py", "--list", "--json",
                                "--max-mutants", "5", "--seed", "7"], capsys)[1])["mutants"]
               for _ in range(2)]
    ids = [m["id"] for m in ms]
    picked = [m["id"] for m in samples[0]]
    assert picked == [m["id"] for m in samples[1]] and len(picked) == 5
    assert picked == [i for i in ids if i in picked]


def test_each_operator_finds_its_sites_in_impl():
    pkg = M.Package()
    found = {m.operator for m in pkg.mutants()}
    assert found == set(M.OPERATORS), set(M.OPERATORS) - found


IMPORT_TIME_MODULE = '''"""Only for the mutation tests: a value computed at import."""


def build_table(n):
    if n > 0:
        return 1
    return 0


TABLE = build_table(1)
'''


def test_a_function_run_at_import_reaches_every_obligation(tmp_path):
    """build_table runs only when its module is imported, outside every obligation: what
    it computes can change what any obligation sees, so its mutant runs against all of
    them (and survives here: nothing reads TABLE), not skipped as unreached."""
    M.copy_package(tmp_path, M.package_dirs())
    (tmp_path / "unmapcheck" / "impl" / "zz_mutate_import.py").write_text(IMPORT_TIME_MODULE)
    pkg = M.Package(tmp_path)
    [m] = M.select(pkg, ["impl/zz_mutate_import.py"], "negate_condition")
    M.run_mutants(pkg, [m], "impl:pgd_addr_end", jobs=1, timeout=120)
    assert m.reached_by == 1 and m.status == M.SURVIVED, (m.reached_by, m.status, m.detail)
    assert "as expected" in m.detail


def test_a_mutant_runs_only_against_the_obligations_that_reach_it(capsys):
    """Coverage-guided selection: tlb_finish_mmu runs (inside the explorer's greenlets) in
    the two 7a30df49f63a obligations and not in impl:pgd_addr_end, so a mutant of it runs
    against those two only; --fail-fast (the default) stops at the first that kills it,
    --all-killers runs both. The fix's condition negated is wrong both ways: the nested
    flush drops freed_tables with the fix on and keeps it with the fix off."""
    argv = ["mutate", "tlb_finish_mmu", "-k", "negate_condition.2",
            "--obligations", "[si]*:[7p][ag]*", "--json"]
    both = ["scenario:7a30df49f63a-munmap-vs-dontneed-walkcache",
            "scenario:7a30df49f63a-munmap-vs-dontneed-walkcache --without 7a30df49f63a"]
    rc, out, err = _run(argv, capsys)
    assert rc == 0, err
    doc = json.loads(out)
    assert sorted(doc["obligations"]["names"]) == ["impl:pgd_addr_end"] + both
    [m] = doc["mutants"]
    assert m["reached_by"] == 2, m
    assert m["status"] == "KILLED" and len(m["killers"]) == 1 and m["killer"] in both, m
    rc, out, err = _run(argv + ["--all-killers"], capsys)
    [m] = json.loads(out)["mutants"]
    assert m["status"] == "KILLED" and sorted(m["killers"]) == both, m


def test_reach_picks_the_obligations_inside_the_function_cheapest_first():
    reach = M.Reach({"*": [["late.py", 3]],
                     "a": [["zap.py", 10], ["zap.py", 40]], "b": [["zap.py", 12]]},
                    {"a": 2.0, "b": 1.0, "c": 0.5})
    inner = M.Mutant("x", "impl/zap.py", "m", 11, 0, "f", "op", 1, "", "", span=(9, 20))
    assert reach.obligations(inner) == (["b", "a"], False)       # cheapest first
    at_import = M.Mutant("y", "impl/late.py", "m", 4, 0, "g", "op", 1, "", "", span=(3, 5))
    assert reach.obligations(at_import) == (["c", "b", "a"], True)
    elsewhere = M.Mutant("z", "impl/zap.py", "m", 30, 0, "h", "op", 1, "", "", span=(25, 35))
    assert reach.obligations(elsewhere) == ([], False)
    # the default budget follows what the mutant runs, not a whole prove
    assert reach.budgets(["b", "a"]) == {"b": 2 * 1.0 + 10, "a": 2 * 2.0 + 10}
    assert reach.time_limit(["b", "a"]) == (2 * 1.0 + 10) + (2 * 2.0 + 10) + 30
    # a child stopped at an obligation's budget (a loop without scheduling points) is a
    # TIMEOUT that names the obligation
    m = M.Mutant("w", "impl/zap.py", "m", 11, 0, "f", "op", 1, "", "", span=(9, 20))
    M.judge(m, M.RunResult(M.EXIT_OBLIGATION_BUDGET, "",
                           "obligation ran past its budget: scenario:x --without y\n", 42.0))
    assert (m.status, m.killers) == (M.TIMEOUT, ["scenario:x --without y"])


def test_every_reviewed_equivalent_still_matches_a_mutant_of_impl():
    """An entry of mutate-equivalent.toml whose code changed stops matching: it must then be
    argued again or removed, never silently keep a mutant out of the score."""
    reviewed = M.load_reviewed()
    assert reviewed, "mutate-equivalent.toml lists nothing"
    seen: dict[tuple, list] = {}
    for m in M.Package().mutants():
        key = (m.function, m.operator, m.before, m.after)
        seen.setdefault(key, []).append(m)
        seen.setdefault(key + (m.within,), []).append(m)
    stale = [key for key in reviewed if key not in seen]
    assert not stale, f"entries that match no mutant: {stale}"
    for key, why in reviewed.items():
        for m in seen[key]:
            if len(key) == 4 and key + (m.within,) in reviewed:
                continue                    # a narrower entry decides that one
            assert m.equivalent == f"reviewed: {why}", m.id


def test_a_reviewed_equivalent_within_a_block_marks_only_that_block():
    """next_uptodate_folio puts its reference in five branches; the entry for the branch a
    model state never reaches (an unlocked folio that is not uptodate) marks that one only."""
    puts = [m for m in M.Package().mutants(functions={"next_uptodate_folio"})
            if m.operator == "delete_count_update"]
    assert len({(m.before, m.after) for m in puts}) == 1 and len(puts) >= 5
    marked = [m.within for m in puts if m.equivalent]
    assert marked == ["if not folio_test_uptodate(folio):"]
    # an elif is a statement of its if's else branch
    tests = {m.before: m.within for m in M.Package().mutants(
        functions={"__mlock_posix_error_return"}) if m.operator == "negate_condition"}
    assert tests == {"if retval == -EFAULT:": "",
                     "if retval == -ENOMEM:": "else of if retval == -EFAULT:"}


def test_a_reviewed_equivalent_is_not_run_and_not_scored(tmp_path):
    M.copy_package(tmp_path, M.package_dirs())
    (tmp_path / "unmapcheck" / "impl" / "zz_mutate_probe.py").write_text(EQUIV_MODULE)
    pkg = M.Package(tmp_path)
    reviewed = {("tlb_flush_live", "delete_tlb_flush", "tlb_flush_mmu(tlb)", "pass"):
                "nothing calls it"}
    mutants = [m for m in pkg.mutants(functions={"tlb_flush_live"}, reviewed=reviewed)
               if m.operator == "delete_tlb_flush"]
    [m] = mutants
    assert m.equivalent == "reviewed: nothing calls it"
    M.run_mutants(pkg, mutants, "impl:pgd_addr_end", jobs=1, timeout=120)
    assert m.status == M.EQUIVALENT and m.seconds == 0
    s = M.summarise(mutants)
    assert (s.total, s.equivalent, s.survived) == (1, 1, 0)


def test_a_malformed_reviewed_file_is_one_line(tmp_path):
    bad = {
        "x = 1\n": "only [[equivalent]]",
        "[[equivalent]]\nfunction = 'f'\n": "needs exactly",
        "[[equivalent]]\nfunction='f'\noperator='nope'\nbefore='a'\nafter='b'\nreason='r'\n":
            "unknown operator",
        "[[equivalent]\n": "",
        ("[[equivalent]]\nfunction='f'\noperator='off_by_one'\nbefore='a'\nafter='b'\n"
         "reason='r'\n") * 2: "listed twice",
        ("[[equivalent]]\nfunction='f'\noperator='off_by_one'\nbefore='a'\nafter='b'\n"
         "reason='r'\nwithin=''\n"): "needs exactly",
        ("[[equivalent]]\nfunction='f'\noperator='off_by_one'\nbefore='a'\nafter='b'\n"
         "reason='r'\ninside='if x:'\n"): "needs exactly",
    }
    for text, want in bad.items():
        p = tmp_path / "eq.toml"
        p.write_text(text)
        with pytest.raises(M.ReviewedError) as e:
            M.load_reviewed(p)
        assert want in str(e.value) and "\n" not in str(e.value) and str(p) in str(e.value)


@pytest.mark.slow
def test_mutants_run_on_a_dask_cluster_as_they_do_here(capsys):
    """--dask ADDRESS: a real LocalCluster (two worker processes); each mutant is a task that
    runs prove on the worker's own copy of the package. Same verdicts as a local run."""
    from distributed import LocalCluster
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        rc, out, err = _run(["mutate", "tlb_flush_mmu", "-k", "mmu_gather.tlb_flush_mmu.",
                             "--obligations", KILLER, "--dask", cluster.scheduler_address,
                             "--json"], capsys)
    assert rc == 0, err
    doc = json.loads(out)
    by_id = {m["id"]: m for m in doc["mutants"]}
    flush = by_id["mmu_gather.tlb_flush_mmu.delete_tlb_flush.1"]
    assert flush["status"] == "KILLED" and flush["killer"] == KILLER, flush
    assert len(by_id) >= 2 and all(m["status"] in ("KILLED", "SURVIVED", "EQUIVALENT")
                                   for m in by_id.values())


def test_an_unreachable_scheduler_is_one_line_exit_2(capsys, monkeypatch):
    from unmapcheck.checker import backend
    monkeypatch.setattr(backend, "CONNECT_TIMEOUT", 2)
    rc, out, err = _run(["mutate", "tlb_flush_mmu", "-k", "delete_tlb_flush", "--obligations",
                         KILLER, "--dask", "tcp://127.0.0.1:9"], capsys)
    last = err.strip().splitlines()[-1]
    assert rc == 2 and "Traceback" not in err, err
    assert last.startswith("unmapcheck: error: --dask") and "cannot reach the scheduler" in last


def _processes_under(folder: Path) -> list[int]:
    """The pids whose command line names *folder* (a mutant's child runs on a copy there)."""
    found = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes()
            except OSError:
                continue
            if str(folder).encode() in cmd:
                found.append(int(d.name))
    return found


def test_sigterm_ends_mutate_as_ctrl_c_does_and_leaves_no_child(tmp_path):
    """The children run in sessions of their own, so a SIGTERM (a batch system's time limit)
    reaches only mutate: it must stop them and remove the copies, and exit 3."""
    import os
    import signal
    import subprocess
    import sys
    import time
    env = dict(os.environ, TMPDIR=str(tmp_path))
    proc = subprocess.Popen([sys.executable, "-c", "from unmapcheck.checker.cli import main; "
                             "raise SystemExit(main(['mutate', 'tlb_flush_mmu', "
                             f"'--obligations', '{KILLER}']))"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not any(p != proc.pid for p in _processes_under(tmp_path)):
        assert time.monotonic() < deadline and proc.poll() is None, "no child started"
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 3, err
    time.sleep(0.5)
    left = _processes_under(tmp_path)
    assert left == [], [Path(f"/proc/{p}/cmdline").read_bytes()[:300] for p in left]
    assert list(tmp_path.iterdir()) == [], "the copies were not removed"


def test_the_change_detector_runs_last_and_its_kills_are_counted_apart():
    """baseline:sequences is cheap, but a mutant it kills is one the model merely does
    differently: it runs after every other obligation, and the summary counts the mutants
    only it killed and gives the score without them."""
    from types import SimpleNamespace as NS
    reach = {"*": [], "bounded:x": [("zap.py", 10)], "baseline:sequences": [("zap.py", 10)],
             "scenario:slow": [("zap.py", 12)], "scenario:other": [("mmap.py", 10)]}
    seconds = {"bounded:x": 5.0, "baseline:sequences": 1.0, "scenario:slow": 30.0,
               "scenario:other": 0.5}
    r = M.Reach(reach, seconds)
    names, anywhere = r.obligations(NS(file="impl/zap.py", span=(5, 20)))
    assert names == ["bounded:x", "scenario:slow", "baseline:sequences"] and not anywhere
    mutants = [NS(status=M.KILLED, killers=["baseline:sequences"]),
               NS(status=M.KILLED, killers=["bounded:x"]),
               NS(status=M.KILLED, killers=["bounded:x", "baseline:sequences"]),
               NS(status=M.SURVIVED, killers=[])]
    s = M.summarise(mutants)
    assert (s.killed, s.killed_by_baseline_only) == (3, 1)
    assert s.score == 0.75 and s.score_without_baseline == 0.5
    assert s.as_dict()["score_without_baseline"] == 0.5
