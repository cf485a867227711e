"""Where parallel work runs: one backend for explore's work units, prove's obligations and
the oracle's campaign shards (and the Dask client mutate uses for its mutants).

A :class:`Backend` runs tasks (a function and its arguments) on

- this process (``jobs=0``): each task runs when submitted; for a search that must stay in
  one process (a test that patches a function the tasks call);
- a local pool of ``jobs`` forked worker processes (``--jobs N``): forked, so a task may
  refer to what the parent loaded before the pool started (prove's obligations, user
  scenario files included) instead of pickling it;
- a dask.distributed cluster (``--dask ADDRESS``): tasks and results are pickled by Dask
  (cloudpickle), so everything a task names must be importable where the workers run (the
  same unmapcheck installed there). ``--dask local`` starts a LocalCluster of this machine's
  usable CPUs, which is how a user tries the cluster path without one.

Every command drives it the same way: ``submit`` tasks, ``wait_any`` for the first to end,
and on leaving (normally, at the first failure of a fail-fast run, on Ctrl-C or SIGTERM)
``close``, which drops the tasks not started and stops those running (a local worker gets
SIGTERM, then SIGKILL; a Dask task is cancelled), while idle local workers exit normally.
"""

from __future__ import annotations

import contextlib
import multiprocessing
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import Callable, Optional

CONNECT_TIMEOUT = 10          # seconds to reach a Dask scheduler
GRACE = 10                    # seconds idle local workers get to exit on their own


class BackendError(Exception):
    """The backend cannot run at all (distributed not installed, a scheduler that cannot be
    reached): one line naming the address."""


class Backend:
    def __init__(self, jobs: int, client=None):
        self.client = client
        self.jobs = jobs
        self.executor = None
        if client is None and jobs > 0:
            self.executor = ProcessPoolExecutor(max_workers=jobs,
                                                mp_context=multiprocessing.get_context("fork"))

    @property
    def workers(self) -> int:
        """How many tasks run at once (a Dask cluster: its workers' threads now)."""
        if self.client is not None:
            return max(1, sum(self.client.nthreads().values()))
        return max(1, self.jobs)

    def submit(self, fn: Callable, *args) -> Future:
        if self.client is not None:
            return self.client.submit(fn, *args, pure=False)
        if self.executor is not None:
            return self.executor.submit(fn, *args)
        f: Future = Future()
        try:
            f.set_result(fn(*args))
        except Exception as e:           # as a worker's exception: raised by result()
            f.set_exception(e)
        return f

    def wait_any(self, futures: set, timeout: Optional[float] = None) -> tuple[set, set]:
        """The futures that have ended (at least one, unless *timeout* seconds passed
        first) and the rest."""
        futures = set(futures)
        if self.client is not None:
            from distributed import wait as dask_wait
            try:
                done = set(dask_wait(list(futures), timeout=timeout,
                                     return_when="FIRST_COMPLETED").done)
            except TimeoutError:        # distributed raises where concurrent.futures returns
                done = set()
            return done, futures - done
        done, rest = wait(futures, timeout=timeout, return_when=FIRST_COMPLETED)
        return set(done), set(rest)

    def close(self, futures=()) -> None:
        """Cancel *futures* (those not started are dropped) and stop the local workers. If
        some of them are still running, their workers are stopped at once (SIGTERM, then
        SIGKILL after 5 s): the work of a run that is over is not finished. Otherwise the
        workers are given GRACE seconds to exit normally (so what they do at exit, such as
        saving coverage data, is done), then stopped the same way: a pool left in a state
        where it would never let them go (a submit cut off by Ctrl-C) cannot hang the
        command."""
        futures = list(futures)
        for f in futures:
            f.cancel()
        if self.executor is None:
            return
        abandon = any(f.running() for f in futures)
        processes = list((getattr(self.executor, "_processes", None) or {}).values())
        self.executor.shutdown(wait=False, cancel_futures=True)
        if not abandon:
            for p in processes:
                p.join(timeout=GRACE)
        for p in processes:
            if p.is_alive():
                p.terminate()
        for p in processes:
            p.join(timeout=5)
            if p.is_alive():
                p.kill()
                p.join(timeout=5)


def dask_client(address: str):
    """A dask.distributed Client of *address* ("local": a LocalCluster of this machine's
    usable CPUs, one thread per worker process). BackendError (one line) if distributed is
    not installed or the scheduler cannot be reached."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise BackendError("--dask needs dask.distributed: pip install 'unmapcheck[dask]'") \
            from None
    try:
        if address == "local":
            from .cli import usable_cpus
            cluster = LocalCluster(n_workers=usable_cpus(), threads_per_worker=1,
                                   processes=True, dashboard_address=None)
            client = Client(cluster)
            client._unmapcheck_cluster = cluster
            return client
        return Client(address, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as e:
        raise BackendError(f"--dask {address}: cannot reach the scheduler: "
                           f"{type(e).__name__}: {e}") from None


def close_dask(client) -> None:
    cluster = getattr(client, "_unmapcheck_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


@contextlib.contextmanager
def backend(jobs: int, dask: Optional[str] = None):
    """The backend of a command's ``--jobs N`` / ``--dask ADDRESS`` (BackendError before
    anything runs if the cluster cannot be reached); closed on the way out."""
    client = dask_client(dask) if dask else None
    b = Backend(jobs, client)
    try:
        yield b
    finally:
        b.close()
        if client is not None:
            close_dask(client)
