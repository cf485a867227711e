"""``unmapcheck oracle``: the real kernel as an oracle, from the command line.

    unmapcheck oracle [--examples N] [--seed S] [--max-calls K] [--save FILE] [--json]
                      [--jobs N | --dask ADDRESS]
    unmapcheck oracle --sequence FILE [--json]
    unmapcheck oracle --record FILE.json.gz [--examples N] [--seed S] [--max-calls K]

Without ``--sequence``: a campaign (:func:`.campaign.run_campaign`): N generated sequences
(seeded: the same N and S give the same sequences), each run on the real kernel in a fresh
child process and on the model, compared call by call; on a terminal, a progress line on
stderr. At the end a summary: sequences run, calls compared, mismatches by kind, and for the
first mismatch, shrunk to a minimal sequence, the difference, the sequence and a ready-to-paste
pytest regression test (``--save FILE`` also writes the minimal sequence, TOML or JSON by
extension, for ``--sequence``).

With ``--jobs N`` or ``--dask ADDRESS``: the same campaign sharded by seed (campaign.py,
``run_sharded_campaign``): shards of 100 sequences, each generated from a seed derived from S,
run on N local processes or on a dask.distributed cluster; the same N and S give the same
sequences whatever the number of jobs.

With ``--sequence FILE``: replay one saved sequence (TOML or JSON, data only) on both sides.

With ``--record FILE.json.gz``: run the campaign and write the real kernel's reports
(recorded.py) for ``unmapcheck prove``'s ``oracle:recorded`` obligation; nothing is written
when the model disagrees anywhere (exit 1).

Exit codes: 0 the model matches the real kernel; 1 a mismatch; 2 bad input (a malformed
sequence file: one line naming the file, the call and the field; an empty file, one without
calls or one that is not a regular file, such as /dev/null, is bad input too), or the real
kernel cannot be used here (not Linux/x86-64, no /proc/self/smaps, no C compiler for the
load/store probe), or the model cannot run sequences: one line, no traceback; 130 interrupted
(Ctrl-C: the real-kernel worker and its child are killed first).
"""

from __future__ import annotations

import json
import sys

EXIT_OK, EXIT_MISMATCH, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130
DEFAULT_EXAMPLES = 200


def _error(msg: str) -> int:
    print(f"unmapcheck: error: {msg}", file=sys.stderr)
    return EXIT_ERROR


def run(args) -> int:
    """Run ``unmapcheck oracle`` with parsed *args* (``examples``, ``seed``, ``sequence``,
    ``json``; optional ``max_calls``, ``save``). Returns the exit code."""
    from .model import ModelUnavailable
    from .real import OracleError, OracleUnavailable
    from ..backend import BackendError
    from ..trace import OutputError
    from .recorded import RecordingError
    from .sequence import SequenceError

    examples = getattr(args, "examples", None)
    max_calls = getattr(args, "max_calls", None)
    save = getattr(args, "save", None)
    record = getattr(args, "record", None)
    jobs, dask = getattr(args, "jobs", None), getattr(args, "dask", None)
    if (jobs is not None or dask is not None) and (args.sequence is not None or
                                                   record is not None):
        return _error("--jobs and --dask shard a campaign: not for --sequence or --record")
    if jobs is not None and not 1 <= jobs <= 1024:
        return _error(f"--jobs must be between 1 and 1024, got {jobs}")
    if jobs is not None and dask is not None:
        return _error("--jobs runs local processes, --dask a cluster's workers: give one")
    if args.sequence is not None:
        if examples is not None or save is not None or max_calls is not None or \
                record is not None:
            return _error("--sequence replays one saved sequence: --examples, --max-calls, "
                          "--save and --record are for a campaign")
    elif record is not None:
        if save is not None or args.json:
            return _error("--record writes a recording: --save and --json are for a campaign")
        if not record.endswith(".json.gz"):
            return _error(f"--record {record}: the file name must end in .json.gz")
        from ..cli import UsageError, _writable_output
        try:
            _writable_output("--record", record)
        except UsageError as e:
            return _error(str(e))
        examples = DEFAULT_EXAMPLES if examples is None else examples
        if examples < 1:
            return _error("--examples must be at least 1")
        if max_calls is not None and max_calls < 1:
            return _error("--max-calls must be at least 1")
    else:
        examples = DEFAULT_EXAMPLES if examples is None else examples
        if examples < 1:
            return _error("--examples must be at least 1")
        if max_calls is not None and max_calls < 1:
            return _error("--max-calls must be at least 1")
        if save is not None and not save.endswith((".toml", ".json")):
            return _error(f"--save {save}: the file name must end in .toml or .json")
    try:
        if args.sequence is not None:
            return _replay(args)
        if record is not None:
            return _record(args, examples, max_calls, record)
        return _campaign(args, examples, max_calls, save)
    except RecordingError as e:
        print(f"unmapcheck: {e}", file=sys.stderr)
        return EXIT_MISMATCH
    except BackendError as e:
        return _error(str(e))
    except OutputError as e:
        return _error(str(e))
    except SequenceError as e:
        return _error(str(e))
    except (OracleUnavailable, ModelUnavailable) as e:
        return _error(str(e))
    except OracleError as e:
        # The harness broke (a worker died, a timeout): not a verdict on the model.
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        return _error(first)
    except OSError as e:
        from .sequence import printable
        name = printable(str(getattr(e, "filename", "") or ""))
        return _error(f"{name}: {e.strerror or e}".lstrip(": "))
    except KeyboardInterrupt:
        # The runners were closed on the way out (their worker and its child killed).
        print("unmapcheck: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


# --- replay -----------------------------------------------------------------------------------
def _replay(args) -> int:
    from . import sequence as S
    from .campaign import replay
    from .strategies import regression_test
    seq = S.load(args.sequence)                   # SequenceError: one line, exit 2
    res = replay(seq, require_model=True)         # the sequence read once, checked once
    kernel = (res.real.get("env") or {}).get("kernel")
    test = regression_test(seq, res.real, res.mismatch) if res.mismatch else None
    if args.json:
        print(json.dumps({
            "schema": "unmapcheck-oracle", "version": 1,
            "mode": "replay", "sequence": args.sequence, "kernel": kernel,
            "calls": len(seq.calls),
            "refused_calls": sum(1 for c in res.real["calls"] if c.get("refused")),
            "ok": res.ok, "mismatch": str(res.mismatch) if res.mismatch else None,
            "mismatch_call": res.mismatch.call if res.mismatch else None,
            "mismatch_field": res.mismatch.field if res.mismatch else None,
            "regression_test": test}, indent=1))
    else:
        print(f"oracle replay: {S.printable(args.sequence)}: {len(seq.calls)} calls, "
              f"real kernel {kernel}")
        if res.mismatch is None:
            print("result: the model matches the real kernel")
        else:
            print(f"MISMATCH: {res.mismatch}")
            print("sequence:")
            for i, c in enumerate(seq.calls):
                mark = "  <-" if i == res.mismatch.call else ""
                print(f"  {i}: {c.describe()}{mark}")
            print("\nregression test (for tests/oracle/test_regressions.py):\n")
            print(test)
    return EXIT_OK if res.ok else EXIT_MISMATCH


# --- record -----------------------------------------------------------------------------------
def _record(args, examples: int, max_calls, path: str) -> int:
    from ..cli import Progress
    from .recorded import record
    progress = Progress()

    def on_sequence(done: int, total: int, mismatches: int) -> None:
        progress.update(f"oracle record: {done}/{total} sequences")

    try:
        rec = record(path, examples, args.seed, max_calls=max_calls or 12,
                     progress=on_sequence)
    finally:
        progress.done()
    print(f"recorded {len(rec.entries)} sequences (seed {rec.seed}) on Linux {rec.kernel} "
          f"to {path}")
    return EXIT_OK


# --- campaign ---------------------------------------------------------------------------------
def _campaign(args, examples: int, max_calls, save) -> int:
    from ..cli import Progress
    from .campaign import SHARD_EXAMPLES, run_campaign
    progress = Progress(False if args.json else None)

    def on_sequence(done: int, total: int, mismatches: int) -> None:
        progress.update(f"oracle: {done}/{total} sequences, {mismatches} mismatching",
                        force=done == total)

    def on_shrink(runs: int) -> None:
        progress.update(f"oracle: shrinking the first mismatch ({runs} runs)")

    kw = {"max_calls": max_calls} if max_calls is not None else {}
    jobs, dask = getattr(args, "jobs", None), getattr(args, "dask", None)
    try:
        if jobs is None and dask is None:
            s = run_campaign(examples, args.seed, save_to=save, progress=on_sequence,
                             shrink_progress=on_shrink, **kw)
        else:
            from ..backend import backend
            from .campaign import run_sharded_campaign
            with backend(jobs or 1, dask) as pool:
                s = run_sharded_campaign(examples, args.seed, pool, save_to=save,
                                         progress=on_sequence, shrink_progress=on_shrink,
                                         **kw)
    finally:
        progress.done()
    if args.json:
        d = {"schema": "unmapcheck-oracle", "version": 1, **s.to_dict()}
        d["mode"] = "campaign"
        d["first_mismatch_call"] = s.first_mismatch.call if s.first_mismatch else None
        d["first_mismatch_field"] = s.first_mismatch.field if s.first_mismatch else None
        d["regression_test"] = s.regression_test
        print(json.dumps(d, indent=1))
        return EXIT_MISMATCH if s.mismatches else EXIT_OK
    print(f"oracle campaign: seed {s.seed}, {s.examples} sequences requested, window "
          f"{s.window_pages} pages, real kernel {s.kernel}")
    if s.shards:
        print(f"  shards           {s.shards} (of up to {SHARD_EXAMPLES} sequences, seeds "
              f"derived from {s.seed})")
    print(f"  sequences run    {s.sequences_run}")
    print(f"  calls compared   {s.calls_compared} ({s.refused_calls} refused on both sides)")
    kinds = ""
    if s.mismatch_kinds:
        kinds = " (" + ", ".join(f"{k}: {v}" for k, v in sorted(s.mismatch_kinds.items())) + ")"
    print(f"  mismatches       {s.mismatches}{kinds}")
    print(f"  time             {s.seconds:.1f} s")
    if not s.mismatches:
        print("result: the model matches the real kernel")
        return EXIT_OK
    if s.first_mismatch is not None:
        print(f"\nfirst mismatch, shrunk to a minimal sequence ({s.shrink_runs} runs):")
        print(f"  {s.first_mismatch}")
        for i, c in enumerate(s.minimal_sequence.calls):
            mark = "  <-" if i == s.first_mismatch.call else ""
            print(f"  {i}: {c.describe()}{mark}")
        if s.saved_to:
            print(f"saved to {s.saved_to} (replay: unmapcheck oracle --sequence {s.saved_to})")
        print("\nregression test (for tests/oracle/test_regressions.py):\n")
        print(s.regression_test)
    print(f"result: MISMATCH ({s.mismatches} of {s.sequences_run} sequences)")
    return EXIT_MISMATCH
