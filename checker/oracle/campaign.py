"""Campaigns and replays: the entry points the CLI (``unmapcheck oracle``) calls.

:func:`run_campaign` generates sequences with hypothesis, runs each on the real kernel and on
the model, and compares. It works in two passes so that the counts mean something:

1. *count*: ``examples`` sequences (seeded, deterministic) run on both sides; every mismatch
   is counted, none stops the pass;
2. *shrink* (only if pass 1 found a mismatch): the same seeded generation again, this time
   failing on a mismatch, so hypothesis finds the first mismatching sequence again and
   shrinks it to a minimal one, which is reported (and saved, and printed as a pytest
   regression test).

:func:`replay` runs one saved sequence on both sides and compares.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from . import sequence as S
from .compare import Mismatch, RealRunFailed, compare
from .model import run_model
from .real import OracleError, RealRunner


@dataclass
class CampaignSummary:
    examples: int
    seed: int
    window_pages: int
    sequences_run: int = 0          # pass 1: generated sequences run on both sides
    calls_compared: int = 0         # pass 1: calls compared field by field
    refused_calls: int = 0          # pass 1: calls neither side ran (sequence.refusal)
    mismatches: int = 0             # pass 1: sequences whose reports differ
    mismatch_kinds: dict = field(default_factory=dict)   # "smaps Rss" -> count
    shrink_runs: int = 0            # pass 2: sequences run while shrinking
    first_mismatch: Mismatch | None = None          # of the minimal sequence
    minimal_sequence: S.Sequence | None = None
    minimal_real: dict | None = None
    regression_test: str | None = None
    saved_to: str | None = None
    kernel: str | None = None
    seconds: float = 0.0
    shards: int = 0                 # run_sharded_campaign: how many (0: one hypothesis run)

    @property
    def ok(self) -> bool:
        return self.mismatches == 0

    def to_dict(self) -> dict:
        return {
            "examples": self.examples, "seed": self.seed, "window_pages": self.window_pages,
            "kernel": self.kernel, "sequences_run": self.sequences_run,
            "calls_compared": self.calls_compared, "refused_calls": self.refused_calls,
            "mismatches": self.mismatches, "mismatch_kinds": dict(self.mismatch_kinds),
            "shrink_runs": self.shrink_runs,
            "first_mismatch": str(self.first_mismatch) if self.first_mismatch else None,
            "minimal_sequence": self.minimal_sequence.to_dict()
            if self.minimal_sequence else None,
            "saved_to": self.saved_to, "seconds": round(self.seconds, 3),
            "shards": self.shards,
        }

    def __str__(self) -> str:
        lines = [f"oracle campaign: seed {self.seed}, {self.sequences_run} sequences, "
                 f"{self.calls_compared} calls compared ({self.refused_calls} refused), "
                 f"{self.mismatches} mismatching, real kernel {self.kernel}, "
                 f"{self.seconds:.1f} s"]
        if self.mismatch_kinds:
            lines.append("  mismatch kinds: " + ", ".join(
                f"{k}: {v}" for k, v in sorted(self.mismatch_kinds.items())))
        if self.first_mismatch is not None:
            lines.append(f"  minimal mismatch: {self.first_mismatch}")
            for i, c in enumerate(self.minimal_sequence.calls):
                lines.append(f"    {i}: {c.describe()}")
        if self.saved_to:
            lines.append(f"  saved to {self.saved_to}")
        return "\n".join(lines)


class _Found(Exception):
    pass


def _kind(mm: Mismatch) -> str:
    """``"smaps Rss after store"``, ``"vmas after mlock"``, ``"model error after madvise"``."""
    what = mm.kind if mm.kind in ("vmas", "model error") else f"{mm.kind} {mm.field}"
    op = mm.call_desc.split("(", 1)[0]
    return f"{what} after {op}" if op else what


def run_campaign(examples: int, seed: int, window_pages: int = S.DEFAULT_WINDOW_PAGES,
                 max_calls: int = 12, vmflags: bool = True, save_to: str | None = None,
                 progress=None, runner: RealRunner | None = None, system_kw: dict | None = None,
                 shrink: bool = True, model_runner=None, shrink_progress=None) \
        -> CampaignSummary:
    """Run ``examples`` generated sequences on the real kernel and on the model; compare.

    ``progress(done, total, mismatches)`` is called after each sequence of pass 1,
    ``shrink_progress(runs)`` after each run of pass 2. ``save_to``: where to
    write the minimal mismatching sequence (TOML or JSON by extension). ``system_kw`` go to the
    model's ``System``. Raises OracleUnavailable / ModelUnavailable (one line) when a side
    cannot run at all, and OracleError when the real runner breaks. ``model_runner``
    (``seq -> report``) replaces the model, e.g. to check the real runner against itself.
    """
    from hypothesis import HealthCheck, Phase, Verbosity, given, settings
    from hypothesis import seed as hseed

    from .strategies import regression_test, sequences

    t0 = time.monotonic()
    summary = CampaignSummary(examples, seed, window_pages)
    own = runner is None
    runner = runner or RealRunner()
    skw = dict(system_kw or {})
    if model_runner is None:
        def model_runner(seq, env=None):
            return run_model(seq, env=env, **skw)
        model_runner(S.Sequence(calls=(), window_pages=window_pages))   # fail early, one line
    else:
        user_runner = model_runner

        def model_runner(seq, env=None):
            return user_runner(seq)
    strategy = sequences(window_pages=window_pages, max_calls=max_calls)

    def both(seq: S.Sequence):
        real = runner.run(seq)
        if real.get("error"):
            raise OracleError(f"real-kernel run failed: {real['error']}\n"
                              f"sequence:\n{S.dumps_toml(seq)}")
        summary.kernel = (real.get("env") or {}).get("kernel")
        model = model_runner(seq, real.get("env"))
        return real, model, compare(seq, real, model, vmflags=vmflags)

    common = dict(database=None, deadline=None, derandomize=False, print_blob=False,
                  suppress_health_check=list(HealthCheck), verbosity=Verbosity.quiet,
                  report_multiple_bugs=False)
    try:
        # Pass 1: count.
        @settings(max_examples=examples, phases=[Phase.generate], **common)
        @hseed(seed)
        @given(strategy)
        def count(seq):
            real, model, mm = both(seq)
            summary.sequences_run += 1
            summary.refused_calls += sum(1 for c in real["calls"] if c.get("refused"))
            summary.calls_compared += len(seq.calls) if mm is None else mm.call + 1
            if mm is not None:
                summary.mismatches += 1
                k = _kind(mm)
                summary.mismatch_kinds[k] = summary.mismatch_kinds.get(k, 0) + 1
            if progress is not None:
                progress(summary.sequences_run, examples, summary.mismatches)

        count()

        # Pass 2: shrink the first mismatch.
        if summary.mismatches and shrink:
            last: dict = {}

            @settings(max_examples=examples, phases=[Phase.generate, Phase.shrink], **common)
            @hseed(seed)
            @given(strategy)
            def find(seq):
                real, model, mm = both(seq)
                summary.shrink_runs += 1
                if shrink_progress is not None:
                    shrink_progress(summary.shrink_runs)
                if mm is not None:
                    last.update(seq=seq, real=real, mm=mm)
                    raise _Found(mm.message)

            try:
                find()
            except _Found:
                pass
            if last:
                last.update(_reduce(last["seq"], last["real"], last["mm"], both, summary,
                                    shrink_progress))
                summary.minimal_sequence = last["seq"]
                summary.minimal_real = last["real"]
                summary.first_mismatch = last["mm"]
                summary.regression_test = regression_test(last["seq"], last["real"],
                                                          last["mm"])
                if save_to:
                    S.save(last["seq"], save_to, comment=f"unmapcheck oracle, seed {seed}, "
                                                         f"real kernel {summary.kernel}: "
                                                         f"{last['mm']}")
                    summary.saved_to = save_to
    finally:
        if own:
            runner.close()
    summary.seconds = time.monotonic() - t0
    return summary


# --- sharded by seed: oracle --jobs N / --dask ADDRESS ------------------------------------------
# A campaign of N sequences is cut into shards of SHARD_EXAMPLES; shard i is a campaign of its
# own, generated from shard_seed(S, i), and runs on the command's backend (checker/backend.py):
# a local worker process or a Dask worker, each with its own real-kernel runner. The shards
# depend on N and S only, never on how many run at once: the same N and S give the same
# sequences with --jobs 1, --jobs 8 or a cluster (but other sequences than a run without
# --jobs, which is one hypothesis run of N). Counts are summed; the first shard (in shard
# order) that mismatched is run again here with shrinking, exactly as a one-shard campaign.
SHARD_EXAMPLES = 100


def shard_seed(seed: int, i: int) -> int:
    import hashlib
    return int.from_bytes(hashlib.sha256(f"unmapcheck-oracle:{seed}:{i}".encode())
                          .digest()[:8], "big")


def shards(examples: int, seed: int) -> list[tuple[int, int]]:
    """(sequences, seed) of each shard of a campaign of *examples* from *seed*."""
    return [(min(SHARD_EXAMPLES, examples - start), shard_seed(seed, i))
            for i, start in enumerate(range(0, examples, SHARD_EXAMPLES))]


def _count_shard(examples: int, seed: int, max_calls: int,
                 window_pages: int) -> CampaignSummary:
    return run_campaign(examples, seed, window_pages=window_pages, max_calls=max_calls,
                        shrink=False)


def run_sharded_campaign(examples: int, seed: int, pool, max_calls: int = 12,
                         window_pages: int = S.DEFAULT_WINDOW_PAGES,
                         save_to: str | None = None, progress=None,
                         shrink_progress=None) -> CampaignSummary:
    """The campaign of :func:`run_campaign`, sharded by seed (above) over *pool* (a
    checker.backend.Backend). ``progress(done, total, mismatches)`` after each shard."""
    t0 = time.monotonic()
    plan = shards(examples, seed)
    summary = CampaignSummary(examples, seed, window_pages, shards=len(plan))
    futures = {pool.submit(_count_shard, n, s, max_calls, window_pages): i
               for i, (n, s) in enumerate(plan)}
    results: dict[int, CampaignSummary] = {}
    pending = set(futures)
    try:
        while pending:
            done, pending = pool.wait_any(pending)
            for f in done:
                part = results[futures[f]] = f.result()
                summary.sequences_run += part.sequences_run
                summary.calls_compared += part.calls_compared
                summary.refused_calls += part.refused_calls
                summary.mismatches += part.mismatches
                for k, v in part.mismatch_kinds.items():
                    summary.mismatch_kinds[k] = summary.mismatch_kinds.get(k, 0) + v
                summary.kernel = summary.kernel or part.kernel
                if progress is not None:
                    progress(summary.sequences_run, examples, summary.mismatches)
    finally:
        pool.close(pending)
    first = next((i for i in sorted(results) if results[i].mismatches), None)
    if first is not None:
        n, s = plan[first]
        again = run_campaign(n, s, window_pages=window_pages, max_calls=max_calls,
                             save_to=save_to, shrink_progress=shrink_progress)
        summary.shrink_runs = again.shrink_runs
        summary.first_mismatch = again.first_mismatch
        summary.minimal_sequence = again.minimal_sequence
        summary.minimal_real = again.minimal_real
        summary.regression_test = again.regression_test
        summary.saved_to = again.saved_to
    summary.seconds = time.monotonic() - t0
    return summary


def _reduce(seq: S.Sequence, real: dict, mm: Mismatch, both, summary: CampaignSummary,
            shrink_progress=None) -> dict:
    """After hypothesis' shrinking, delete what the mismatch does not need: single calls
    (from the last to the first, repeated until nothing more goes) and files no call maps,
    keeping a candidate only if it mismatches in the same way (same kind, field and op).
    Hypothesis shrinks the choices it drew; a call whose deletion shifts every later choice
    (a setup mmap, a file) is often out of its reach."""
    def same(a: Mismatch, b: Mismatch) -> bool:
        return _kind(a) == _kind(b)

    best = {"seq": seq, "real": real, "mm": mm}

    def attempt(cand: S.Sequence) -> bool:
        try:
            cand = S.validate(cand)
        except S.SequenceError:
            return False
        r, _, m = both(cand)
        summary.shrink_runs += 1
        if shrink_progress is not None:
            shrink_progress(summary.shrink_runs)
        if m is not None and same(m, best["mm"]):
            best.update(seq=cand, real=r, mm=m)
            return True
        return False

    progress = True
    while progress:
        progress = False
        calls = best["seq"].calls
        for i in reversed(range(len(calls))):
            calls = best["seq"].calls
            if i >= len(calls):
                continue
            cand = S.Sequence(calls=calls[:i] + calls[i + 1:], files=best["seq"].files,
                              window_pages=best["seq"].window_pages)
            if attempt(cand):
                progress = True
        used = {c.file for c in best["seq"].calls if c.op == "mmap" and c.file is not None}
        files = tuple(f for f in best["seq"].files if f.name in used)
        if files != best["seq"].files:
            if attempt(S.Sequence(calls=best["seq"].calls, files=files,
                                  window_pages=best["seq"].window_pages)):
                progress = True
    return best


@dataclass
class ReplayResult:
    sequence: S.Sequence
    real: dict
    model: dict | None
    mismatch: Mismatch | None
    model_error: str | None = None   # the model could not run at all (ModelUnavailable)

    @property
    def ok(self) -> bool:
        return self.mismatch is None and self.model_error is None

    def __str__(self) -> str:
        kernel = (self.real.get("env") or {}).get("kernel")
        if self.model_error:
            return f"replay: {len(self.sequence.calls)} calls: {self.model_error}"
        if self.mismatch is None:
            return (f"replay: {len(self.sequence.calls)} calls: the model matches the real "
                    f"kernel ({kernel})")
        return f"replay: MISMATCH (real kernel {kernel}): {self.mismatch}"


def replay(path, vmflags: bool = True, runner: RealRunner | None = None,
           system_kw: dict | None = None, require_model: bool = False) -> ReplayResult:
    """Load the sequence at ``path`` (TOML or JSON; or take an already loaded Sequence), run
    it on both sides and compare.

    Without a usable model (impl/ not ready) the real report is still returned and
    ``model_error`` says why, unless ``require_model`` (then ModelUnavailable is raised).
    """
    from .model import ModelUnavailable
    seq = path if isinstance(path, S.Sequence) else S.load(path)
    own = runner is None
    runner = runner or RealRunner()
    try:
        real = runner.run(seq)
    finally:
        if own:
            runner.close()
    if real.get("error"):
        raise OracleError(f"real-kernel run failed: {real['error']}")
    try:
        model = run_model(seq, env=real.get("env"), **(system_kw or {}))
    except ModelUnavailable as e:
        if require_model:
            raise
        return ReplayResult(seq, real, None, None, model_error=str(e))
    try:
        mm = compare(seq, real, model, vmflags=vmflags)
    except RealRunFailed as e:
        raise OracleError(str(e)) from None
    return ReplayResult(seq, real, model, mm)
