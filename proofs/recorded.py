"""oracle:recorded: the model against the real kernel's recorded behaviour.

checker/oracle/recorded.py keeps a campaign of the oracle as data: N generated system-call
sequences (on a window of anonymous, memfd and file mappings: mmap, munmap, mprotect,
madvise, mlock, munlock, fork, loads and stores) with what Linux reported for each call (its
result, then the VMA list with smaps counters and VmFlags). This obligation runs every
sequence on the model and compares, call by call, as the live oracle does. PROVED means the
model behaves as that kernel did on all of them; FAILED names the first call that differs,
with the sequence (save it as TOML and replay it on this machine's kernel with
``unmapcheck oracle --sequence FILE``). It needs no kernel, no compiler and no network.

What it cannot see: anything the reports do not record (TLB contents, page identities,
interleavings: those are the invariants' and the explorer's), and behaviour outside the
recorded sequences. ``--bound`` does not apply to it (the recording is the bound);
``--timeout`` does: a run cut short is UNKNOWN with how many sequences were checked.
Re-record with ``unmapcheck oracle --record proofs/oracle-recorded.json.gz --examples N
--seed S`` on a machine whose kernel the model mirrors.
"""

from __future__ import annotations

import time

from unmapcheck.checker.prove import (FAILED, PROVED, UNKNOWN, LoadError, Obligation,
                                      ObligationResult, Options)

NAME = "oracle:recorded"


def _bound(rec) -> str:
    return f"{rec.examples} sequences recorded on Linux {rec.kernel}"


def run(rec, opts: Options) -> ObligationResult:
    """Replay recording *rec* (a Recording, or a Header: then the whole file is read and
    checked now; a malformed one is FAILED with the one-line reason)."""
    from unmapcheck.checker.oracle import sequence as S
    from unmapcheck.checker.oracle.recorded import RecordingError, load, replay
    t0 = time.monotonic()
    if not hasattr(rec, "entries"):
        try:
            rec = load(rec.path)
        except RecordingError as e:
            return ObligationResult(NAME, "oracle", _bound(rec), FAILED,
                                    time.monotonic() - t0, f"cannot load the recording: {e}")
    out = replay(rec, opts.timeout)
    seconds = time.monotonic() - t0
    if out.mismatch is not None:
        return ObligationResult(NAME, "oracle", _bound(rec), FAILED, seconds,
                                f"sequence {out.checked} of the recording: {out.mismatch}",
                                {"counterexample": "the sequence (save it as TOML and run "
                                 "unmapcheck oracle --sequence FILE):\n" +
                                 S.dumps_toml(out.sequence)})
    if out.checked < len(rec.entries):
        return ObligationResult(NAME, "oracle", _bound(rec), UNKNOWN, seconds,
                                f"time budget spent after {out.checked} of "
                                f"{len(rec.entries)} sequences")
    return ObligationResult(NAME, "oracle", _bound(rec), PROVED, seconds,
                            f"all {out.checked} sequences: every call's result, VMA list, "
                            f"smaps counters and VmFlags as Linux {rec.kernel} reported them")


def obligations() -> list[Obligation]:
    from unmapcheck.checker.oracle.recorded import (RecordingError, default_recording,
                                                    read_header)
    try:
        rec = read_header(default_recording())
    except RecordingError as e:
        raise LoadError(f"cannot load {NAME}: {e}") from None
    return [Obligation(NAME, "oracle", _bound(rec), lambda opts, rec=rec: run(rec, opts))]
