"""The real Linux kernel as an oracle: differential testing of the model against it.

A syscall sequence (:mod:`.sequence`, data only) runs on the machine's kernel in a fresh child
process (:mod:`.real`) and on the model (:mod:`.model`); :mod:`.compare` names the first call
and field where the two reports differ; :mod:`.strategies` generates sequences with hypothesis
and prints a minimal mismatch as a pytest regression test. :mod:`.campaign` holds the entry
points the CLI calls: :func:`run_campaign` and :func:`replay`.
"""

from .sequence import Call, File, Sequence, SequenceError

__all__ = ["Call", "File", "Sequence", "SequenceError", "run_campaign", "replay"]


def run_campaign(examples: int, seed: int, window_pages: int = 64, **kw):
    """Generate ``examples`` sequences, run each on the real kernel and on the model, compare.

    See :func:`unmapcheck.checker.oracle.campaign.run_campaign`.
    """
    from .campaign import run_campaign as _rc
    return _rc(examples, seed, window_pages=window_pages, **kw)


def replay(path, **kw):
    """Run a saved sequence on both sides and compare. See :func:`.campaign.replay`."""
    from .campaign import replay as _r
    return _r(path, **kw)
