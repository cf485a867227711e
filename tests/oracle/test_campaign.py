"""The differential campaign: generated sequences (seeded, so the same sequences every run),
each on the real kernel and on the model, with zero mismatches: 800 in the default run, 4,000
behind the slow marker.

Every op and every argument edge case of the generator (checker/oracle/strategies.py) is in
play: unaligned, zero and overflowing lengths, addresses before, at and beyond the window,
MAP_FIXED/MAP_FIXED_NOREPLACE/hints, private and shared memfd and anonymous mappings,
MAP_POPULATE/MAP_LOCKED/MAP_GROWSDOWN, every prot (PROT_NONE over populated pages included),
every advice the model has (MADV_REMOVE's hole punch and MADV_POPULATE_* included), mlock,
munlock, fork, loads and stores. About 30 s on this 2-core machine for 2,000.

A failure prints the minimal mismatching sequence as a ready-to-paste regression test (for
tests/oracle/test_regressions.py). Skipped, with the reason, where the real kernel cannot be
used.
"""

from __future__ import annotations

import pytest

from unmapcheck.checker.oracle.campaign import run_campaign

SEED = 20251121


@pytest.mark.parametrize("examples", [800, pytest.param(4000, marks=pytest.mark.slow)])
def test_campaign_sequences_zero_mismatches(runner, examples):
    s = run_campaign(examples, seed=SEED, runner=runner)
    assert s.sequences_run == examples
    assert s.calls_compared > 5 * examples          # sequences are not trivially short
    assert s.mismatches == 0, f"{s}\n\n{s.regression_test}"
