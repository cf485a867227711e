"""The real-kernel runner's own safety: the SIGSEGV probe it loads (as root, here) and the
processes it starts.

- The probe is never loaded from a place someone else controls: a library planted at the old
  predictable path in the shared temporary folder, or in a cache folder that is writable by
  others, owned by someone else or a symlink, is not used (a planted library here has a
  constructor that leaves a marker file: the marker must not appear).
- The child of a sequence, and every process it forked, is killed and reaped when the worker
  dies, when the runner's process is interrupted or killed, and at the sequence's timeout;
  each within a bounded time.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import pytest

from unmapcheck.checker.cli import main
from unmapcheck.checker.oracle import real as R
from unmapcheck.checker.oracle import sequence as S
from unmapcheck.checker.oracle.sequence import Call, Sequence

P = 4096
DIGEST = hashlib.sha256(R.PROBE_SOURCE.encode()).hexdigest()[:16]
PROBE_NAME = f"probe-{DIGEST}.so"
SIMPLE = Sequence(calls=(Call.mmap(0, P, 3, S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_FIXED),
                         Call.store(0, 5), Call.load(0)))

needs_cc = pytest.mark.skipif(R._find_cc() is None, reason="no C compiler")
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (chown)")


@pytest.fixture(autouse=True)
def fresh_session_dir(monkeypatch):
    monkeypatch.setattr(R, "_session_dir", None)


def planted_library(path, marker) -> None:
    """A library that exports the probe's functions and, when loaded, creates ``marker``."""
    src = str(path) + ".c"
    with open(src, "w") as f:
        f.write(textwrap.dedent(f"""\
            #include <fcntl.h>
            #include <unistd.h>
            __attribute__((constructor)) static void planted(void)
            {{
                int fd = open("{marker}", O_WRONLY | O_CREAT, 0644);
                if (fd >= 0)
                    close(fd);
            }}
            int probe_load(unsigned long a, unsigned char *o) {{ *o = 0x99; return 0; }}
            int probe_store(unsigned long a, unsigned char v) {{ return 0; }}
            """))
    subprocess.run([R._find_cc(), "-shared", "-fPIC", "-o", str(path), src], check=True)
    os.unlink(src)


def real_probe_works(probe: str) -> None:
    """Run SIMPLE through a worker loading ``probe``: the store and the load go through it."""
    r = R.RealRunner.__new__(R.RealRunner)
    r._subprocess, r.timeout, r.probe, r.proc, r.runs = subprocess, 30.0, probe, None, 0
    try:
        rep = r.run(SIMPLE)
    finally:
        r.close()
    assert rep["error"] is None
    assert rep["calls"][2]["value"] == 5         # the real probe read it back (not 0x99)


# --- the probe ------------------------------------------------------------------------------
@needs_cc
def test_a_library_planted_at_the_old_predictable_path_is_not_used(tmp_path, monkeypatch):
    shared = tmp_path / "shared-tmp"              # stands for the shared /tmp
    shared.mkdir()
    os.chmod(shared, 0o1777)
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(shared))
    monkeypatch.setattr(tempfile, "tempdir", str(shared))
    old = shared / f"unmapcheck-{os.getuid()}"    # where the probe used to be looked for
    old.mkdir()
    marker = tmp_path / "PLANTED-LIBRARY-RAN"
    planted_library(old / PROBE_NAME, marker)
    # A cache folder that cannot be used (writable by everyone), so that the old code fell
    # back to the predictable path; it holds a planted library too.
    cache = tmp_path / "cache"
    cache.mkdir()
    os.chmod(cache, 0o777)
    planted_library(cache / PROBE_NAME, marker)
    monkeypatch.setenv("UNMAPCHECK_CACHE", str(cache))

    so = R.probe_library()
    assert os.path.dirname(so) not in (str(old), str(cache))
    d = os.path.dirname(so)
    st = os.lstat(d)
    assert st.st_uid == os.geteuid() and st.st_mode & 0o777 == 0o700
    assert os.path.basename(d).startswith("unmapcheck-probe-")     # a fresh mkdtemp folder
    real_probe_works(so)
    with R.RealRunner() as r:                      # the runner as the CLI builds it
        assert r.probe == so
        assert r.run(SIMPLE)["calls"][2]["value"] == 5
    assert main(["oracle", "--sequence", str(_saved(tmp_path))]) == 0
    assert not marker.exists()


def _saved(tmp_path):
    p = tmp_path / "simple.toml"
    S.save(SIMPLE, p)
    return p


@needs_cc
@pytest.mark.parametrize("bad", ["world-writable", "group-writable", "other-owner", "symlink",
                                 "a-file", "parent-writable"])
def test_a_cache_folder_with_bad_ownership_or_mode_is_refused(tmp_path, bad):
    if bad == "other-owner" and os.geteuid() != 0:
        pytest.skip("needs root (chown)")
    marker = tmp_path / "PLANTED-LIBRARY-RAN"
    cache = tmp_path / "cache"
    if bad == "symlink":
        target = tmp_path / "elsewhere"
        target.mkdir(mode=0o700)
        planted_library(target / PROBE_NAME, marker)
        os.symlink(target, cache)
    elif bad == "a-file":
        cache.write_text("not a folder")
    elif bad == "parent-writable":
        parent = tmp_path / "open"
        parent.mkdir()
        os.chmod(parent, 0o777)                   # not sticky: others could swap "cache"
        cache = parent / "cache"
        cache.mkdir(mode=0o700)
        planted_library(cache / PROBE_NAME, marker)
    else:
        cache.mkdir(mode=0o700)
        planted_library(cache / PROBE_NAME, marker)
        if bad == "world-writable":
            os.chmod(cache, 0o777)
        elif bad == "group-writable":
            os.chmod(cache, 0o770)
        else:
            os.chown(cache, 65534, 65534)
    with pytest.raises(R.UnsafePath):
        R.private_dir(str(cache))
    so = R.probe_library(cache_dir=str(cache))
    assert not so.startswith(str(tmp_path))       # built in a fresh private folder instead
    real_probe_works(so)
    assert not marker.exists()


def test_a_sticky_shared_parent_is_accepted(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    (shared / "mine").mkdir(mode=0o700)
    assert R.private_dir(str(shared / "mine")) == str(shared / "mine")


@needs_cc
@pytest.mark.parametrize("bad", ["world-writable-file", "other-owner-file", "symlink-file"])
def test_a_bad_probe_file_in_a_good_cache_is_rebuilt_not_loaded(tmp_path, bad):
    if bad == "other-owner-file" and os.geteuid() != 0:
        pytest.skip("needs root (chown)")
    marker = tmp_path / "PLANTED-LIBRARY-RAN"
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    so_path = cache / PROBE_NAME
    if bad == "symlink-file":
        planted_library(tmp_path / "evil.so", marker)
        os.symlink(tmp_path / "evil.so", so_path)
    else:
        planted_library(so_path, marker)
        if bad == "world-writable-file":
            os.chmod(so_path, 0o666)
        else:
            os.chown(so_path, 65534, 65534)
    with pytest.raises(OSError):
        R.verify_probe(str(so_path))
    so = R.probe_library(cache_dir=str(cache))
    assert so == str(so_path)                     # rebuilt in place, atomically
    st = os.lstat(so)
    assert st.st_uid == os.geteuid() and not st.st_mode & 0o022 and not os.path.islink(so)
    assert sorted(os.listdir(cache)) == [PROBE_NAME]        # no build leftovers
    real_probe_works(so)
    assert not marker.exists()


@needs_cc
def test_the_worker_refuses_an_unverified_probe(tmp_path):
    marker = tmp_path / "PLANTED-LIBRARY-RAN"
    d = tmp_path / "open"
    d.mkdir()
    os.chmod(d, 0o777)
    planted_library(d / PROBE_NAME, marker)
    r = subprocess.run([sys.executable, "-I", "-S", R.__file__, "--worker",
                        str(d / PROBE_NAME)], stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"real-kernel oracle: the probe cannot be loaded: {d} is writable by others (mode 777)"]
    assert not marker.exists()


# --- processes ----------------------------------------------------------------------------------
def session(sid: int) -> list[tuple[int, str]]:
    """The live (not zombie) processes of session ``sid``: the worker (its own session) and
    everything it forked."""
    out = []
    for p in os.listdir("/proc"):
        if not p.isdigit():
            continue
        try:
            with open(f"/proc/{p}/stat") as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append((int(p), fields[0]))
    return out


def wait_gone(sid: int, limit: float = 5.0) -> float:
    t0 = time.monotonic()
    while session(sid):
        assert time.monotonic() - t0 < limit, f"still running: {session(sid)}"
        time.sleep(0.02)
    return time.monotonic() - t0


def wait_tree(sid: int, n: int, limit: float = 10.0) -> None:
    t0 = time.monotonic()
    while len(session(sid)) < n:
        assert time.monotonic() - t0 < limit, session(sid)
        time.sleep(0.02)


# A sequence that forks twice and then sleeps in the grandchild: worker, child, two more.
FORKING = Sequence(calls=(Call.fork(), Call.load(0), Call.fork(), Call.load(0)))


def test_a_dead_worker_takes_its_child_and_descendants_along(runner):
    runner.run(SIMPLE)
    wp = runner.worker_pid
    errors = []

    def kill_worker():
        try:
            wait_tree(wp, 4)
        except AssertionError as e:
            errors.append(e)
        os.kill(wp, signal.SIGKILL)
    threading.Thread(target=kill_worker).start()
    t0 = time.monotonic()
    with pytest.raises(R.OracleError, match="real-kernel worker died"):
        runner.run(FORKING, _pause=(3, 100))
    assert not errors, errors
    assert time.monotonic() - t0 < 10              # was: until the child finished (182 s)
    wait_gone(wp)
    assert runner.run(SIMPLE)["error"] is None     # a new worker serves the next run


def test_the_sequence_timeout_kills_the_whole_group(real_kernel_ok):
    with R.RealRunner(timeout=1.0) as r:
        t0 = time.monotonic()
        rep = r.run(FORKING, _pause=(3, 100))
        assert rep["error"].startswith("timeout:")
        assert time.monotonic() - t0 < 6
        wp = r.worker_pid
        t1 = time.monotonic()
        while len(session(wp)) != 1:               # only the worker is left
            assert time.monotonic() - t1 < 5, session(wp)
            time.sleep(0.02)
        assert r.run(SIMPLE)["error"] is None


SCRIPT = """
import sys
from unmapcheck.checker.oracle import real as R
from unmapcheck.checker.oracle.sequence import Call, Sequence
with R.RealRunner() as r:
    r.run(Sequence(calls=(Call.load(0),)))
    print(r.worker_pid, flush=True)
    r.run(Sequence(calls=(Call.fork(), Call.load(0), Call.fork(), Call.load(0))),
          _pause=(3, 100))
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL],
                         ids=lambda s: signal.Signals(s).name)
def test_an_interrupted_or_killed_runner_process_leaves_nothing_behind(real_kernel_ok, sig):
    p = subprocess.Popen([sys.executable, "-c", SCRIPT], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    try:
        wp = int(p.stdout.readline())
        wait_tree(wp, 4)
        t0 = time.monotonic()
        p.send_signal(sig)
        p.wait(timeout=10)
        assert time.monotonic() - t0 < 10
        wait_gone(wp)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        p.stdout.close()
        p.stderr.close()


@pytest.fixture(scope="module")
def real_kernel_ok():
    try:
        R.check_real_kernel()
        R.probe_library()
    except R.OracleUnavailable as e:
        pytest.skip(str(e))


def test_ctrl_c_in_the_oracle_cli_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    closed = []

    def interrupted(self, seq, _pause=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(R.RealRunner, "__init__", lambda self, timeout=30.0: setattr(
        self, "proc", None))
    monkeypatch.setattr(R.RealRunner, "run", interrupted)
    monkeypatch.setattr(R.RealRunner, "close", lambda self: closed.append(self))
    assert main(["oracle", "--sequence", str(_saved(tmp_path))]) == 130
    out, err = capsys.readouterr()
    assert err.splitlines() == ["unmapcheck: interrupted"] and "Traceback" not in out + err
    assert len(closed) == 1                        # the runner was closed on the way out
