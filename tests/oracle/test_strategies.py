"""Strategies generate valid sequences that shrink well; campaigns count, shrink and print a
regression test."""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, find, given, settings

from unmapcheck.checker.oracle import sequence as S
from unmapcheck.checker.oracle.campaign import run_campaign
from unmapcheck.checker.oracle.sequence import Call, Sequence
from unmapcheck.checker.oracle.strategies import regression_test, sequences

P = 4096


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(sequences(window_pages=32))
def test_generated_sequences_are_valid_and_round_trip(seq):
    assert S.validate(seq) == seq
    assert S.loads_toml(S.dumps_toml(seq)) == seq
    assert S.loads_json(S.dumps_json(seq)) == seq
    assert sum(c.op == "fork" for c in seq.calls) <= 2


FIND = settings(database=None, max_examples=2000, derandomize=True)


def test_shrinks_to_the_plain_case():
    seq = find(sequences(), lambda s: any(c.op == "munmap" for c in s.calls), settings=FIND)
    assert seq == Sequence(calls=(Call.munmap(0, P),))
    seq = find(sequences(), lambda s: any(c.op == "mmap" and c.file for c in s.calls),
               settings=FIND)
    assert len(seq.calls) == 1 and len(seq.files) == 1
    [c] = seq.calls
    assert (c.addr, c.length, c.prot, c.flags, c.offset) == \
        (0, P, S.PROT_READ | S.PROT_WRITE, S.MAP_PRIVATE | S.MAP_FIXED, 0)


def test_generator_covers_every_op_and_argument_edge():
    """Tuning the generator (weights, max_calls) must not lose an op or an edge case: in
    2,000 sequences of the default campaign's shape every op, advice and prot appears, and so
    do the argument edges (unaligned, zero and overflowing lengths, addresses before, at and
    beyond the window, MAP_FIXED_NOREPLACE, hints, MAP_POPULATE/LOCKED/GROWSDOWN, files)."""
    from hypothesis import Phase, seed as hseed
    from unmapcheck.checker.oracle.strategies import ADVICE, EDGE_PROTS, PROTS
    seen: set = set()
    w = S.DEFAULT_WINDOW_PAGES * P

    @settings(max_examples=2000, phases=[Phase.generate], database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @hseed(20251121)
    @given(sequences())
    def collect(seq):
        seen.update(("file",) for _ in seq.files[:1])
        for c in seq.calls:
            seen.add(("op", c.op))
            if c.op == "fork":
                continue
            if c.op == "madvise":
                seen.add(("advice", c.advice))
            if c.op in ("mmap", "mprotect"):
                seen.add(("prot", c.prot))
            if c.op == "mmap":
                for f in ("MAP_FIXED", "MAP_FIXED_NOREPLACE", "MAP_POPULATE", "MAP_LOCKED",
                          "MAP_GROWSDOWN", "MAP_SHARED", "MAP_PRIVATE", "MAP_ANONYMOUS"):
                    if c.flags & S.MAP_NAMES[f]:
                        seen.add(("flag", f))
                if not c.flags & (S.MAP_FIXED | S.MAP_FIXED_NOREPLACE):
                    seen.add(("flag", "hint"))
                if c.file is not None:
                    seen.add(("mmap", "file"))
            if c.addr % P:
                seen.add(("addr", "unaligned"))
            if c.addr >= w:
                seen.add(("addr", "at or beyond the window"))
            if c.addr < 0:
                seen.add(("addr", "before the window"))
            if c.op in ("mmap", "munmap", "mprotect", "madvise", "mlock", "munlock"):
                if c.length == 0:
                    seen.add(("length", 0))
                elif c.length % P:
                    seen.add(("length", "unaligned"))
                if c.length >= 1 << 63:
                    seen.add(("length", "overflowing"))
    collect()
    want = {("op", op) for op in S.OPS} | {("advice", a) for a in ADVICE} | \
        {("prot", p) for p in PROTS + EDGE_PROTS} | \
        {("flag", f) for f in ("MAP_FIXED", "MAP_FIXED_NOREPLACE", "MAP_POPULATE",
                               "MAP_LOCKED", "MAP_GROWSDOWN", "MAP_SHARED", "MAP_PRIVATE",
                               "MAP_ANONYMOUS", "hint")} | \
        {("mmap", "file"), ("file",), ("addr", "unaligned"), ("addr", "at or beyond the window"),
         ("addr", "before the window"), ("length", 0), ("length", "unaligned"),
         ("length", "overflowing")}
    assert want - seen == set()


def test_regression_test_source_runs():
    seq = Sequence(files=(S.File("f0", P),), calls=(
        Call.mmap(0, P, 3, S.MAP_SHARED | S.MAP_FIXED, "f0"), Call.madvise(0, P, 4),
        Call.mprotect(0, P, 0x8), Call.store(0, 1)))
    real = {"side": "real", "env": {"kernel": "6.18.44"}, "error": None,
            "calls": [{"ret": 0, "vmas": []}] * 4}
    src = regression_test(seq, real, "call 3 store(0x0, 1): smaps Rss ...", name="test_x")
    assert "# First difference: call 3 store(0x0, 1): smaps Rss ..." in src
    assert "Call.madvise(0x0, 0x1000, MADV_DONTNEED)" in src
    ns: dict = {}
    exec(compile(src, "<regression>", "exec"), ns)
    seen = []
    ns["assert_model_matches"] = lambda s, r: seen.append((s, r))
    ns["test_x"]()
    assert seen[0][0] == seq and seen[0][1]["calls"] == real["calls"]


def test_real_runner_agrees_with_itself(runner):
    # The oracle must be deterministic: the same sequence, two fresh children, same report.
    s = run_campaign(40, seed=7, window_pages=16, runner=runner, model_runner=runner.run)
    assert (s.sequences_run, s.mismatches) == (40, 0)
    assert s.calls_compared > 40 and s.kernel


def test_campaign_finds_counts_and_shrinks_a_mismatch(runner, tmp_path):
    # A "model" that forgets anonymous pages: every Anonymous > 0 differs.
    def lying(seq):
        rep = copy.deepcopy(runner.run(seq))
        for c in rep["calls"]:
            for v in c["vmas"]:
                v["Anonymous"] = 0
        return rep
    out = tmp_path / "min.toml"
    s = run_campaign(60, seed=3, window_pages=16, runner=runner, model_runner=lying,
                     save_to=str(out))
    assert s.mismatches > 0 and sum(s.mismatch_kinds.values()) == s.mismatches
    assert all(k.startswith("smaps Anonymous after ") for k in s.mismatch_kinds)
    mm = s.first_mismatch
    assert mm.field == "Anonymous" and mm.message.startswith(f"call {mm.call} ")
    # Minimal: a mapping and one call that puts an anonymous page in it (a store, or an
    # mlock that populates it).
    ops = [c.op for c in s.minimal_sequence.calls]
    assert ops[0] == "mmap" and len(ops) == 2, ops
    assert S.load(out) == s.minimal_sequence
    assert "def test_oracle_" in s.regression_test
    assert "minimal mismatch" in str(s)
