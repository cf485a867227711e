"""The guided hunt (checker/hunt/evolve.py, signal.py): the signal a scenario's executions
reach, the corpus of scenarios that reached something new, the edits made from it, and a
guided campaign that is the same whatever runs it."""

from __future__ import annotations

import copy
import random
from pathlib import Path

from unmapcheck.checker.backend import Backend
from unmapcheck.checker.explore import iterative_context_bounding
from unmapcheck.checker.hunt import campaign, evolve
from unmapcheck.checker.hunt.evolve import Evolution, Mutator
from unmapcheck.checker.hunt.generate import PAGE, Generator, Options
from unmapcheck.checker.hunt.scenario import (HuntScenario, Mapping, Process, Thread,
                                              to_toml)
from unmapcheck.checker.hunt.signal import add_features
from unmapcheck.checker.scenario import load, parse

MERGE = str(Path(__file__).resolve().parents[2] / "proofs" / "scenarios" /
            "d8ab9f7b644a-merge-vs-vma-locked-fault.toml")


def _features(sc) -> set:
    got: set = set()
    iterative_context_bounding(sc, 1, max_executions=60,
                               on_execution=lambda s, ex: add_features(ex.events, got))
    return got


def test_the_signal_has_steps_edges_and_the_races_of_two_threads():
    got = _features(load(MERGE))
    kinds = {f[0] for f in got}
    assert kinds == {"step", "edge", "race"}
    # the merge publishing the target's anon_vma races with the other thread's fault
    assert ("step", "WRITE vma->anon_vma") in got
    races = {f[1:] for f in got if f[0] == "race"}
    assert any("anon_vma" in a or "anon_vma" in b for a, b in races), sorted(races)[:20]
    # one thread alone has no race
    one = parse(open(MERGE).read().split("[[thread]]\nname = \"T1\"")[0] +
                "[expect]\nnever = true\n", "<one>")
    assert len(one.threads) == 1
    assert not any(f[0] == "race" for f in _features(one))


def _spec(prot: str = "rw") -> HuntScenario:
    base = 0x7F0000200000
    return HuntScenario(
        "x", 2, "x86", boundary=base,
        processes=[Process("p", [Mapping(base, 4, prot=prot), Mapping(base + 5 * PAGE, 2)])],
        threads=[Thread("T0", 0, "p", [{"op": "munmap", "addr": base, "len": PAGE}]),
                 Thread("T1", 1, "p", [{"op": "load", "addr": base}])])


def test_the_corpus_keeps_what_reached_something_new_and_favours_the_rare():
    ev = Evolution(1, Options(arch="x86"))
    ev.take(0, _spec(), {("step", "a"), ("step", "b")}, 100)
    ev.take(1, _spec(), {("step", "a")}, 50)                    # nothing new: not kept
    ev.take(2, _spec(), {("step", "a"), ("step", "c")}, 100)
    assert [e.index for e in ev.corpus] == [0, 2]
    assert ev.hits[("step", "a")] == 3
    # both are favoured (each is the only one with b or c); c, as rare as b, weighs alike
    fav = ev._favoured_entries()
    assert [e.index for e in fav] == [0, 2]
    w = ev._weights(fav)
    assert w[0] == w[1] > 0
    ev.take(3, _spec(), {("step", "a"), ("step", "b"), ("step", "d")}, 10)
    # 3 is cheaper and has b: entry 0 is no longer favoured
    assert [e.index for e in ev._favoured_entries()] == [2, 3]
    # unguided: nothing kept
    flat = Evolution(1, Options(arch="x86"), guided=False)
    flat.take(0, _spec(), {("step", "a")}, 1)
    assert not flat.corpus


def test_edits_give_scenarios_the_loader_accepts_and_differ_from_their_parent():
    gen = Generator(Options(arch="x86"))
    parents = [gen.scenario(random.Random(i), f"p{i}")[0] for i in range(15)]
    kinds: dict = {}
    made = 0
    for i in range(300):
        rng = random.Random(i)
        m = Mutator(gen, rng)
        parent = parents[i % len(parents)]
        got = m.mutate(parent, f"m{i}")
        if got is None:
            continue
        made += 1
        s, text = got
        assert to_toml(s) == text and text != to_toml(parent)
        parse(text, "<m>")                          # accepted by the loader
        assert s.arch == "x86" and s.boundary == parent.boundary
        kinds["more_ops"] = kinds.get("more_ops", 0) + (
            sum(len(t.ops) for t in s.threads) > sum(len(t.ops) for t in parent.threads))
        kinds["choices"] = kinds.get("choices", 0) + (s.choices != parent.choices)
        kinds["mappings"] = kinds.get("mappings", 0) + (
            sum(len(p.mappings) for p in s.processes) >
            sum(len(p.mappings) for p in parent.processes))
    assert made >= 250
    assert all(n >= 10 for n in kinds.values()), kinds
    # the same rng edits the same way
    a = Mutator(gen, random.Random(5)).mutate(parents[0], "m")
    b = Mutator(gen, random.Random(5)).mutate(parents[0], "m")
    assert a is not None and a[1] == b[1]


def test_the_hole_edit_leaves_two_neighbours_and_a_page_between():
    s = _spec()
    m = Mutator(Generator(Options(arch="x86")), random.Random(0))
    assert m.hole(s)
    maps = sorted(s.processes[0].mappings, key=lambda x: x.addr)
    assert len(maps) == 3 and maps[1].addr - maps[0].end == PAGE
    assert maps[0].pages + maps[1].pages == 3


def test_a_guided_campaign_is_the_same_whatever_runs_it(monkeypatch):
    """With a lag of 2, scenarios 3 on are made from what earlier ones reached: one
    process and a pool of two make the same scenarios and take the same results."""
    monkeypatch.setattr(evolve, "LAG", 2)
    made: list = []
    real = Evolution.draw

    def draw(self, i, fresh_seed):
        got = real(self, i, fresh_seed)
        made.append((i, got[1], got[2]))
        return got
    monkeypatch.setattr(Evolution, "draw", draw)
    opts = Options(arch="x86")
    runs = []
    for workers in (0, 2):
        made.clear()
        s = campaign.hunt(4, 10 ** 9, opts, Backend(workers), None, max_scenarios=9)
        runs.append((s.scenarios, s.steps, s.mutated, s.corpus, s.features,
                     sorted(made)))
    assert runs[0] == runs[1]
    scenarios, _, mutated, corpus, features, drawn = runs[0]
    assert scenarios == 9 and mutated >= 1 and corpus >= 1 and features > 100
    assert any(parent is not None for _, _, parent in drawn)


def test_the_free_table_edit_of_a_clean_parent_finds_the_bug_the_parent_only_prepares():
    """478a1c3abebf off, AMD, era 7.0: the parent leaves a PTE table empty and cached by a
    PROT_NONE fault's walk, and is clean; the free_table edit (which each new corpus entry
    gets in its stage) frees that table by MADV_DONTNEED after it, and the freed table is
    still reached (I1); freed by munmap (free_pgtables flushes correctly) it is not."""
    base = 0x7F0000200000
    opts = Options(arch="x86", vendor="amd", era="7.0", fixes_off=["478a1c3abebf"])
    parent = HuntScenario(
        "parent", 2, "x86", vendor="amd", era="7.0", fixes_off=["478a1c3abebf"],
        boundary=base, processes=[Process("p", [Mapping(base, 512)])],
        threads=[Thread("T0", 0, "p", [
            {"op": "store", "addr": base, "value": 1},
            {"op": "madvise", "addr": base, "len": PAGE, "advice": "MADV_DONTNEED"},
            {"op": "mprotect", "addr": base, "len": 512 * PAGE, "prot": "none"},
            {"op": "load", "addr": base}])])
    res, _, _, _ = campaign.explore_text(to_toml(parent), "parent", 1)
    assert res is not None and not res.counterexamples
    verdicts = {}
    for seed in range(12):
        s = copy.deepcopy(parent)
        assert Mutator(Generator(opts), random.Random(seed)).free_table(s)
        added = [op for op in s.threads[0].ops if op not in parent.threads[0].ops]
        assert len(added) == 1 and added[0]["addr"] == base and added[0]["len"] == 512 * PAGE
        if s.threads[0].ops[-1] is not added[0]:
            continue                        # put before the load: the table is not cached
        res, _, _, _ = campaign.explore_text(to_toml(s), "edit", seed)
        kind = added[0].get("advice", "munmap")
        verdicts.setdefault(kind, set()).update(res.counterexamples)
    assert verdicts.get("MADV_DONTNEED") == {"I1"}, verdicts
    assert verdicts.get("munmap", set()) == set(), verdicts
    # every new corpus entry gets the edit once, in its stage
    ev = Evolution(2, opts)
    ev.take(0, parent, {("step", "only this one")}, 1)
    assert sorted(ev.corpus[0].pending) == sorted(evolve.STAGE)
    for i in range(1, 80):
        ev.draw(i, i)
    assert "free_table" not in ev.corpus[0].pending


def test_the_command_line_runs_guided_by_default_and_unguided_on_request(tmp_path, capsys):
    from unmapcheck.checker.cli import main
    import json
    docs = {}
    for flag in ([], ["--unguided"]):
        assert main(["hunt", "--seed", "3", "--scenarios", "2", "--out", str(tmp_path),
                     "--json", "--jobs", "1", *flag]) == 0
        docs[bool(flag)] = json.loads(capsys.readouterr().out)
    guided, unguided = docs[False], docs[True]
    assert guided["guided"] is True and guided["features"] > 100 and guided["corpus"] >= 1
    assert unguided["guided"] is False and unguided["corpus"] == 0
    assert unguided["features"] == 0 and unguided["edited_scenarios"] == 0
    # the first LAG + 1 scenarios are swarm draws either way: the same scenarios
    assert (guided["scenarios"], guided["steps"]) == (unguided["scenarios"], unguided["steps"])
    assert main(["hunt", "--seed", "3", "--scenarios", "1", "--out", str(tmp_path)]) == 0
    assert "guided           0 of them edits" in capsys.readouterr().out


# --- seeds: --from ------------------------------------------------------------------------------
def _structure(sc) -> tuple:
    return (sc.cpus, sc.arch, sc.vendor, sc.era, sc.choices, sc.max_choices, sc.tunables,
            [(f.name, f.size, f.data, f.shmem) for f in sc.files],
            [(p.name, p.oom_victim, p.fork_of,
              [(m.addr, m.pages, m.prot, m.shared, m.file, m.offset, m.populate,
                m.populate_cpu, m.mlock, m.data) for m in p.mappings]) for p in sc.processes],
            [(t.name, t.cpu, t.process, t.actor, t.target,
              [(o.op, o.args) for o in t.program]) for t in sc.threads])


def test_every_corpus_scenario_seeds_a_hunt_as_written():
    from unmapcheck.checker.hunt.scenario import from_toml
    from unmapcheck.proofs import scenario_paths
    paths = scenario_paths()
    assert len(paths) > 40
    for path in paths:
        text = Path(path).read_text()
        s = from_toml(text, str(path))
        again = parse(to_toml(s), "<seed>")
        assert _structure(again) == _structure(parse(text, str(path))), path
        assert again.preemptions is None and not again.expect_sometimes


def test_seeds_are_explored_first_with_the_campaigns_options(tmp_path, capsys,
                                                             monkeypatch):
    from unmapcheck.checker.cli import main
    import json
    # the hand-written scenario, seeded into a campaign with its fix on: nothing
    assert main(["hunt", "--from", MERGE, "--scenarios", "1", "--jobs", "1", "--json",
                 "--out", str(tmp_path)]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["seeds"] == 1 and doc["scenarios"] == 1 and not doc["findings"]
    # a folder of seeds, in name order: scenarios 0 and 1, with the campaign's options
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "a.toml").write_text((Path(MERGE).parent / "never-pt-reclaim-6.18-arm64.toml")
                                  .read_text())
    (seeds / "b.toml").write_text(Path(MERGE).read_text())
    from unmapcheck.checker.hunt.cli import _seeds
    opts = Options(arch="x86", vendor="amd", fixes_off=["d8ab9f7b644a"])
    got = _seeds([str(seeds)], opts)
    assert [s.arch for s in got] == ["x86", "x86"] and [s.vendor for s in got] == ["amd"] * 2
    assert all(s.fixes_off == ["d8ab9f7b644a"] for s in got)
    ev = Evolution(1, opts, seeds=got)
    drawn = [ev.draw(i, i) for i in range(3)]
    assert [parent for _, _, parent in drawn] == [None, None, None]
    assert drawn[1][0].processes[0].mappings == got[1].processes[0].mappings
    assert 'fixes_off = ["d8ab9f7b644a"]' in drawn[1][1] and 'name = "hunt-1-1"' in drawn[1][1]
    assert drawn[2][1] == Generator(opts).scenario(random.Random(2), "hunt-1-2")[1]
    # explored with the fix off, the second seed violates RMAP (shrinking left out: slow)
    monkeypatch.setattr(campaign, "_shrink_and_write", lambda *a: None)
    s = campaign.hunt(1, 10 ** 9, opts, Backend(0), None, max_scenarios=2, seeds=got)
    assert s.seeds == 2 and [(f.group, f.index) for f in s.findings] == [("RMAP", 1)]


def test_bad_seeds_are_refused_with_one_line(tmp_path, capsys):
    from unmapcheck.checker.cli import main
    bad = tmp_path / "bad.toml"
    bad.write_text('[scenario]\nname = "x"\ncpus = 0\n')
    empty = tmp_path / "empty"
    empty.mkdir()
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe[scenario]\n")
    for arg, says in ((str(tmp_path / "none.toml"), "no such file or folder"),
                      (str(empty), "no scenario files"),
                      (str(bad), "bad.toml"),
                      (str(binary), "not UTF-8")):
        assert main(["hunt", "--from", arg, "--scenarios", "1", "--out",
                     str(tmp_path)]) == 2
        err = capsys.readouterr().err
        assert says in err and err.count("\n") == 1, err
