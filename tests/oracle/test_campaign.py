"""The default run's differential campaign: 2,000 generated sequences (seeded, so the same
sequences every run), each on the real kernel and on the model, with zero mismatches.

Every op and every argument edge case of the generator (checker/oracle/strategies.py) is in
play: unaligned, zero and overflowing lengths, addresses before, at and beyond the window,
MAP_FIXED/MAP_FIXED_NOREPLACE/hints, private and shared memfd and anonymous mappings,
MAP_POPULATE/MAP_LOCKED/MAP_GROWSDOWN, every prot (PROT_NONE over populated pages included),
every advice the model has (MADV_REMOVE's hole punch and MADV_POPULATE_* included), mlock,
munlock, fork, loads and stores. About 30 s on this 2-core machine.

A failure prints the minimal mismatching sequence as a ready-to-paste regression test (for
tests/oracle/test_regressions.py). Skipped, with the reason, where the real kernel cannot be
used.
"""

from __future__ import annotations


from unmapcheck.checker.oracle.campaign import run_campaign

EXAMPLES = 2000
SEED = 20251121


def test_campaign_2000_sequences_zero_mismatches(runner):
    s = run_campaign(EXAMPLES, seed=SEED, runner=runner)
    assert s.sequences_run == EXAMPLES
    assert s.calls_compared > 5 * EXAMPLES          # sequences are not trivially short
    assert s.mismatches == 0, f"{s}\n\n{s.regression_test}"
