"""Benchmark of the symbolic part of ``unmapcheck prove`` (not a timed test).

    python bench/bench_prove.py [--bound N] [--timeout S] [--cli] [--jobs N]

Runs every obligation of proofs/symbolic.py in this process, one after the other, and prints
each one's status and seconds, then the total. With --cli it also times the command line
itself (``unmapcheck prove inductive impl bounded``, a fresh interpreter: imports included).
The budget is 60 s for the default bounds on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bound", type=int, default=None)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--cli", action="store_true", help="also time the unmapcheck command")
    ap.add_argument("--jobs", type=int, default=1, help="--jobs for the timed command")
    args = ap.parse_args()

    t_import = time.monotonic()
    from unmapcheck.checker.prove import Options, run_obligation
    from unmapcheck.proofs.symbolic import OBLIGATIONS
    t_import = time.monotonic() - t_import
    opts = Options(bound=args.bound, timeout=args.timeout)
    print(f"{len(OBLIGATIONS)} symbolic obligations, bound "
          f"{'default' if args.bound is None else args.bound}, timeout {args.timeout:g}s, "
          f"{os.cpu_count()} CPUs (imports {t_import:.2f}s)")
    w = max(len(o.name) for o in OBLIGATIONS)
    total = 0.0
    bad = 0
    t0 = time.monotonic()
    for o in OBLIGATIONS:
        r = run_obligation(o, opts)
        total += r.seconds
        bad += r.status != "PROVED"
        print(f"  {o.name.ljust(w)}  {r.status:8} {r.seconds:7.2f}s  {r.bound}")
    wall = time.monotonic() - t0
    print(f"total {total:.2f}s (wall {wall:.2f}s); {len(OBLIGATIONS) - bad} proved, "
          f"{bad} not proved")
    if args.cli:
        cmd = ["unmapcheck", "prove", "inductive", "impl", "bounded", "--jobs", str(args.jobs),
               "--timeout", str(args.timeout)]
        if args.bound is not None:
            cmd += ["--bound", str(args.bound)]
        t0 = time.monotonic()
        rc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        print(f"`{' '.join(cmd)}`: exit {rc}, {time.monotonic() - t0:.2f}s wall")
    return 0 if bad == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
