"""checker/backend.py: the one backend of explore's work units, prove's obligations and the
oracle's shards; and prove --dask, which sends obligations (not file names) to the workers."""

from __future__ import annotations

import json
import time

import pytest

from unmapcheck.checker.backend import Backend
from unmapcheck.checker.cli import main

from test_prove_load import _ONE_THREAD


def _hang(_):
    time.sleep(3600)


def _square(x):
    return x * x


def _boom(x):
    raise ValueError(f"task {x} failed")


def test_in_process_backend_runs_at_submit_and_keeps_a_task_error_for_result():
    b = Backend(0)
    ok, bad = b.submit(_square, 7), b.submit(_boom, 3)
    done, rest = b.wait_any({ok, bad})
    assert done == {ok, bad} and not rest
    assert ok.result() == 49
    with pytest.raises(ValueError, match="task 3 failed"):
        bad.result()


def test_local_backend_close_kills_a_running_task():
    """A fail-fast prove or a cut-short exploration does not wait for what is running."""
    b = Backend(1)
    f = b.submit(_hang, None)
    deadline = time.monotonic() + 30
    # running: the task is in the worker, not only the worker alive (a task not yet handed
    # to it is cancelled instead, and its idle worker gets GRACE seconds to leave)
    while not (f.running() and any(p.is_alive() for p in b.executor._processes.values())):
        assert time.monotonic() < deadline, "the worker never started"
        time.sleep(0.05)
    workers = list(b.executor._processes.values())
    b.close({f})
    # close() has killed the worker; the executor's own thread may be the one that reaps
    # it, and until it has set the exit code is_alive() can still say True for a moment
    settle = time.monotonic() + 10
    while any(p.is_alive() for p in workers) and time.monotonic() < settle:
        time.sleep(0.05)
    assert workers and not any(p.is_alive() for p in workers)


def test_local_backend_results_come_back_in_any_order():
    b = Backend(2)
    try:
        futures = {b.submit(_square, i) for i in range(6)}
        got = set()
        while futures:
            done, futures = b.wait_any(futures)
            got |= {f.result() for f in done}
        assert got == {i * i for i in range(6)}
    finally:
        b.close()


def test_prove_on_a_dask_local_cluster_sends_the_obligations(tmp_path, capsys):
    """User scenario files are loaded here and the obligations (with their scenarios) are
    sent to the workers; each verdict comes back."""
    pytest.importorskip("distributed")
    (tmp_path / "ok.toml").write_text(_ONE_THREAD.format(name="ok", expect="never = true"))
    (tmp_path / "bad.toml").write_text(_ONE_THREAD.format(
        name="bad", expect='exists = "T0[0] == 0x99"'))
    assert main(["prove", str(tmp_path), "impl:pgd", "--dask", "local", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    by_name = {r["name"]: r["status"] for r in doc["results"]}
    assert by_name == {"scenario:ok": "PROVED", "scenario:bad": "FAILED",
                       "impl:pgd_addr_end": "PROVED"}


def test_prove_dask_bad_uses(capsys, monkeypatch):
    from unmapcheck.checker import backend
    monkeypatch.setattr(backend, "CONNECT_TIMEOUT", 0.5)
    assert main(["prove", "impl:pgd", "--dask", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot reach the scheduler" in err and "\n" not in err
    assert main(["prove", "impl:pgd", "--dask", "local", "--coverage"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--coverage" in err and "--dask" in err and "\n" not in err
