"""Run a sequence on the machine's real Linux kernel, in a fresh child process.

How it works:

- A persistent *worker* process (``python -I -S real.py --worker``, standard library only)
  reads one sequence per line (JSON) on stdin and, for each, forks a fresh *child* that runs
  the sequence and sends its report back over a pipe; the worker forwards it as one JSON line.
  Forking a small interpreter per sequence keeps runs independent and fast (a campaign of
  thousands of sequences needs no new interpreter per sequence).
- The child disables THP for itself (prctl PR_SET_THP_DISABLE), reserves the *window* (a
  PROT_NONE MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE mapping of ``window_pages`` pages at a 2 MiB
  aligned address, carved out of a larger reservation whose excess is unmapped, so there is
  unmapped space on both sides), creates the sequence's memfds, and runs the calls with raw
  syscalls through ctypes (``syscall(2)``, so glibc adds no checks of its own).
- It never touches memory outside the window: :func:`sequence.refusal` decides which calls
  run (the model adapter applies the same rule); a non-fixed mmap whose result is not inside
  the window is unmapped at once and reported as placed outside.
- One-byte loads and stores go through a tiny C probe (sigsetjmp/siglongjmp on SIGSEGV and
  SIGBUS), built with the C compiler at first use into a cache directory and loaded by ctypes.
- After every call the child reports the return value, the VMAs intersecting the window and
  their Rss / Anonymous / Shmem / Locked (kB) from /proc/self/smaps.

The report is a dict (JSON-compatible); see README.md "Reports".
"""

from __future__ import annotations

# The worker imports only what it needs: every extension module it loads adds VMAs that each
# /proc/self/smaps read must walk (the parent's helpers import the rest lazily).
import ctypes
import json
import os
import select
import signal
import sys

if __package__:
    from . import sequence as S
else:                                            # run as the worker script: load by path
    import importlib.util as _ilu
    _spec = _ilu.spec_from_file_location(
        "_unmapcheck_oracle_sequence",
        os.path.join(os.path.dirname(os.path.abspath(__file__)), "sequence.py"))
    S = _ilu.module_from_spec(_spec)
    sys.modules[_spec.name] = S
    _spec.loader.exec_module(S)

PAGE_SIZE = S.PAGE_SIZE
PMD_SIZE = 2 << 20
# Where the child asks for its reservation: far below the mmap area (top-down allocations of
# the interpreter land above it) and far above the heap, so nothing else grows into the
# window's holes.
WINDOW_HINT = 0x100000000000
RESERVE_SLACK = 4 << 20            # reservation = window + slack: >= GAP stays free each side
SEQUENCE_TIMEOUT = 30.0

# x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl).
SYS_mmap, SYS_mprotect, SYS_munmap, SYS_madvise = 9, 10, 11, 28
SYS_ftruncate, SYS_mlock, SYS_munlock, SYS_prctl, SYS_memfd_create = 77, 149, 150, 157, 319
PR_SET_THP_DISABLE = 41
PR_GET_THP_DISABLE = 42

SIGNAMES = {int(signal.SIGSEGV): "SIGSEGV", int(signal.SIGBUS): "SIGBUS"}

PROBE_SOURCE = r"""
/* unmapcheck oracle probe: one-byte loads/stores that report SIGSEGV/SIGBUS (built by
 * checker/oracle/real.py). probe_load/probe_store return 0 or the signal number. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <string.h>

static sigjmp_buf probe_env;
static volatile sig_atomic_t probe_sig;

static void probe_handler(int sig)
{
	probe_sig = sig;
	siglongjmp(probe_env, 1);
}

static int probe_begin(struct sigaction *old_segv, struct sigaction *old_bus)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = probe_handler;
	sigemptyset(&sa.sa_mask);
	sa.sa_flags = SA_NODEFER;
	if (sigaction(SIGSEGV, &sa, old_segv) || sigaction(SIGBUS, &sa, old_bus))
		return -1;
	probe_sig = 0;
	return 0;
}

static void probe_end(struct sigaction *old_segv, struct sigaction *old_bus)
{
	sigaction(SIGSEGV, old_segv, NULL);
	sigaction(SIGBUS, old_bus, NULL);
}

int probe_load(unsigned long addr, unsigned char *out)
{
	struct sigaction old_segv, old_bus;

	if (probe_begin(&old_segv, &old_bus))
		return -1;
	if (sigsetjmp(probe_env, 1) == 0)
		*out = *(volatile unsigned char *)addr;
	probe_end(&old_segv, &old_bus);
	return probe_sig;
}

int probe_store(unsigned long addr, unsigned char val)
{
	struct sigaction old_segv, old_bus;

	if (probe_begin(&old_segv, &old_bus))
		return -1;
	if (sigsetjmp(probe_env, 1) == 0)
		*(volatile unsigned char *)addr = val;
	probe_end(&old_segv, &old_bus);
	return probe_sig;
}
"""


class OracleUnavailable(RuntimeError):
    """The real kernel cannot be used here; ``str()`` is one line saying why."""


class OracleError(RuntimeError):
    """The real-kernel runner failed (worker died, timeout, bad report)."""


# --- environment checks ----------------------------------------------------------------------
SMAPS_PATH = "/proc/self/smaps"       # what check_real_kernel() looks for


def check_real_kernel() -> None:
    """Raise OracleUnavailable (one line) unless this machine can serve as the oracle."""
    if sys.platform != "linux":
        raise OracleUnavailable(f"real-kernel oracle: needs Linux, this is {sys.platform}")
    mach = os.uname().machine
    if mach not in ("x86_64", "amd64"):
        raise OracleUnavailable(f"real-kernel oracle: needs x86-64 (the model's page tables "
                                f"and syscall numbers), this is {mach}")
    if os.sysconf("SC_PAGE_SIZE") != PAGE_SIZE:
        raise OracleUnavailable("real-kernel oracle: needs 4 KiB pages")
    if not os.path.exists(SMAPS_PATH):
        raise OracleUnavailable(f"real-kernel oracle: {SMAPS_PATH} is missing "
                                "(procfs not mounted, or a kernel without CONFIG_PROC_PAGE_MONITOR)")


def _cache_dir() -> str:
    d = os.environ.get("UNMAPCHECK_CACHE")
    if not d:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                                 ".cache")
        d = os.path.join(base, "unmapcheck")
    return d


def _find_cc() -> str | None:
    import shutil
    for cand in (os.environ.get("CC"), "cc", "gcc", "clang"):
        if cand:
            path = shutil.which(cand)
            if path:
                return path
    return None


def probe_library(cache_dir: str | None = None) -> str:
    """Path of the compiled load/store probe, building it on first use.

    Cached as ``probe-<hash of the source>.so`` in ``$UNMAPCHECK_CACHE``, else
    ``$XDG_CACHE_HOME/unmapcheck`` or ``~/.cache/unmapcheck`` (falling back to a directory under
    the system's temporary directory); written atomically (temp file + os.replace), so
    concurrent builders are harmless. Raises OracleUnavailable when no C compiler exists.
    """
    import hashlib
    import subprocess
    import tempfile
    digest = hashlib.sha256(PROBE_SOURCE.encode()).hexdigest()[:16]
    dirs = [cache_dir or _cache_dir(),
            os.path.join(tempfile.gettempdir(), f"unmapcheck-{os.getuid()}")]
    for d in dirs:
        so = os.path.join(d, f"probe-{digest}.so")
        if os.path.exists(so):
            return so
    cc = _find_cc()
    if cc is None:
        raise OracleUnavailable("real-kernel oracle: no C compiler found (cc, gcc or clang; "
                                "or set CC): it is needed once to build the load/store probe "
                                "that survives SIGSEGV/SIGBUS")
    last = ""
    for d in dirs:
        try:
            os.makedirs(d, exist_ok=True)
            so = os.path.join(d, f"probe-{digest}.so")
            fd, src = tempfile.mkstemp(prefix=".probe-", suffix=".c", dir=d)
        except OSError as e:
            last = f"{d}: {e.strerror}"
            continue
        tmp_so = src[:-2] + ".so"
        try:
            with os.fdopen(fd, "w") as f:
                f.write(PROBE_SOURCE)
            r = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", tmp_so, src],
                               capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                msg = (r.stderr.strip().splitlines() or ["failed"])[0]
                raise OracleUnavailable(f"real-kernel oracle: building the probe with {cc} "
                                        f"failed: {msg}")
            os.replace(tmp_so, so)
            return so
        except OSError as e:
            last = f"{d}: {e.strerror}"
        finally:
            for p in (src, tmp_so):
                try:
                    os.unlink(p)
                except OSError:
                    pass
    raise OracleUnavailable(f"real-kernel oracle: cannot write the probe ({last})")


# --- the child: runs one sequence ------------------------------------------------------------
class _Kernel:
    """ctypes bindings, made once in the worker and inherited by every child."""

    def __init__(self, probe_path: str):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.sc = self.libc.syscall
        self.sc.restype = ctypes.c_long
        self.probe = ctypes.CDLL(probe_path)
        self.probe.probe_load.argtypes = [ctypes.c_ulong, ctypes.POINTER(ctypes.c_ubyte)]
        self.probe.probe_load.restype = ctypes.c_int
        self.probe.probe_store.argtypes = [ctypes.c_ulong, ctypes.c_ubyte]
        self.probe.probe_store.restype = ctypes.c_int

    def syscall(self, nr: int, *args: int) -> int:
        """The raw result: >= 0, or -errno."""
        ctypes.set_errno(0)
        r = self.sc(ctypes.c_long(nr), *[ctypes.c_ulong(a & S.ULONG_MAX) for a in args])
        if r == -1:
            return -ctypes.get_errno()
        return r

    def mmap(self, addr, length, prot, flags, fd, off) -> int:
        r = self.syscall(SYS_mmap, addr, length, prot, flags, fd, off)
        # Success returns an address (< 2**47 here); failure -errno (-4095..-1).
        return r


def _smaps_lines_until(end_w: int):
    """The lines of /proc/self/smaps up to the first VMA that starts at or after ``end_w``.

    /proc/PID/smaps is a seq_file that walks a VMA's page tables only when its record is
    generated; stopping early spares the walk of every VMA above the window (the window sits
    below the interpreter's mappings), which makes a report several times cheaper.
    """
    fd = os.open("/proc/self/smaps", os.O_RDONLY)
    try:
        rest = b""
        while True:
            chunk = os.read(fd, 16384)
            if not chunk:
                if rest:
                    yield rest
                return
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            for line in lines:
                if line and (48 <= line[0] <= 57 or 97 <= line[0] <= 102):
                    if int(line[:line.index(b"-")], 16) >= end_w:
                        return
                yield line
    finally:
        os.close(fd)


def _read_smaps_window(base: int, size: int, memfd_inodes: dict) -> list[dict]:
    """The VMAs of /proc/self/smaps that intersect [base, base+size), as window offsets."""
    end_w = base + size
    out = []
    cur = None
    for line in _smaps_lines_until(end_w):
        if not line:
            continue
        c = line[0]
        if 48 <= c <= 57 or 97 <= c <= 102:         # a header: hex start
            dash = line.index(b"-")
            sp = line.index(b" ", dash)
            start = int(line[:dash], 16)
            end = int(line[dash + 1:sp], 16)
            if end <= base or start >= end_w:
                cur = None
                continue
            parts = line.split(None, 5)
            perms = parts[1].decode()
            offset = int(parts[2], 16)
            inode = int(parts[4])
            path = parts[5].decode(errors="replace").strip() if len(parts) > 5 else ""
            fname = None
            shmem = False
            if path.startswith("/memfd:"):
                fname = memfd_inodes.get(inode)
                if fname is None:
                    fname = path[len("/memfd:"):].removesuffix(" (deleted)")
                shmem = True
            elif path.startswith("/dev/zero"):
                fname = "/dev/zero"
                shmem = True
            elif path:
                fname = path
            if fname is None:
                offset = 0
            cur = {"start": start - base, "end": end - base, "perms": perms,
                   "offset": offset, "file": fname, "Rss": 0, "Anonymous": 0, "Shmem": 0,
                   "Locked": 0, "VmFlags": "", "_shmem": shmem}
            out.append(cur)
            continue
        if cur is None:
            continue
        if line.startswith(b"Rss:"):
            cur["Rss"] = int(line.split()[1])
        elif line.startswith(b"Anonymous:"):
            cur["Anonymous"] = int(line.split()[1])
        elif line.startswith(b"Locked:"):
            cur["Locked"] = int(line.split()[1])
        elif line.startswith(b"VmFlags:"):
            cur["VmFlags"] = line[8:].decode().strip()
    for v in out:
        # smaps has no per-VMA Shmem line: the shmem pages of a shmem-backed VMA (memfd,
        # shared anonymous) are its Rss less its anonymous (COW) pages.
        if v.pop("_shmem"):
            v["Shmem"] = v["Rss"] - v["Anonymous"]
    return out


def _reserve_window(k: _Kernel, size: int) -> int:
    from_flags = S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_NORESERVE
    total = size + RESERVE_SLACK
    res = k.mmap(WINDOW_HINT, total, S.PROT_NONE, from_flags, -1, 0)
    if res < 0:
        raise OSError(-res, f"reserving the window ({total} bytes)")
    base = (res + S.GAP + PMD_SIZE - 1) & ~(PMD_SIZE - 1)
    if base - res:
        k.syscall(SYS_munmap, res, base - res)
    tail = res + total - (base + size)
    if tail:
        k.syscall(SYS_munmap, base + size, tail)
    return base


def _exec_call(k: _Kernel, call, base: int, size: int, fds: dict) -> dict:
    r = {"ret": None, "placed": None, "signal": None, "value": None, "refused": None}
    why = S.refusal(call, size)
    if why is not None:
        r["refused"] = why
        return r
    op = call.op
    addr = (base + call.addr) & S.ULONG_MAX
    if op == "mmap":
        fd = fds[call.file] if call.file is not None else -1
        ret = k.mmap(addr, call.length, call.prot, call.flags, fd, call.offset)
        if ret < 0:
            r["ret"] = ret
            return r
        alen = S.page_align(call.length)
        r["ret"], r["placed"] = S.placement(ret - base, alen, size)
        if r["placed"] is not None:
            k.syscall(SYS_munmap, ret, alen)
        return r
    if op == "munmap":
        r["ret"] = k.syscall(SYS_munmap, addr, call.length)
    elif op == "mprotect":
        r["ret"] = k.syscall(SYS_mprotect, addr, call.length, call.prot)
    elif op == "madvise":
        r["ret"] = k.syscall(SYS_madvise, addr, call.length, call.advice)
    elif op == "mlock":
        r["ret"] = k.syscall(SYS_mlock, addr, call.length)
    elif op == "munlock":
        r["ret"] = k.syscall(SYS_munlock, addr, call.length)
    elif op == "load":
        out = ctypes.c_ubyte(0)
        sig = k.probe.probe_load(addr, ctypes.byref(out))
        if sig:
            r["signal"] = SIGNAMES.get(sig, f"signal {sig}")
        else:
            r["ret"] = 0
            r["value"] = out.value
    elif op == "store":
        sig = k.probe.probe_store(addr, call.byte)
        if sig:
            r["signal"] = SIGNAMES.get(sig, f"signal {sig}")
        else:
            r["ret"] = 0
    else:
        raise ValueError(f"op {op!r} is not executed here")
    return r


def _env_info() -> dict:
    """What of the environment shapes the results: kernel, CAP_IPC_LOCK, RLIMIT_MEMLOCK."""
    caps = 0
    limit = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    caps = int(line.split()[1], 16)
        with open("/proc/self/limits") as f:
            for line in f:
                if line.startswith("Max locked memory"):
                    v = line.split()[3]
                    limit = -1 if v == "unlimited" else int(v)
    except (OSError, ValueError, IndexError):
        pass
    return {"kernel": os.uname().release, "cap_ipc_lock": bool(caps & (1 << 14)),
            "memlock_limit": limit}


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _child_main(k: _Kernel, seq, wfd: int, env: dict) -> None:
    """Run ``seq`` in this (fresh) process and write the report to ``wfd``; never returns."""
    report = {"side": "real", "env": env, "window_pages": seq.window_pages, "calls": [],
              "error": None}
    size = seq.window_size
    try:
        if k.syscall(SYS_prctl, PR_SET_THP_DISABLE, 1, 0, 0, 0) < 0 or \
                k.syscall(SYS_prctl, PR_GET_THP_DISABLE, 0, 0, 0, 0) != 1:
            raise OSError("prctl(PR_SET_THP_DISABLE) failed")
        base = _reserve_window(k, size)
        fds, inodes = {}, {}
        for f in seq.files:
            name = ctypes.create_string_buffer(f.name.encode())
            fd = k.syscall(SYS_memfd_create, ctypes.addressof(name), 0)
            if fd < 0:
                raise OSError(-fd, f"memfd_create({f.name!r})")
            rr = k.syscall(SYS_ftruncate, fd, f.size)
            if rr < 0:
                raise OSError(-rr, f"ftruncate({f.name!r}, {f.size})")
            fds[f.name] = fd
            inodes[os.fstat(fd).st_ino] = f.name
        report["window_base"] = base
        for i, call in enumerate(seq.calls):
            if call.op == "fork":
                sys.stdout.flush()
                pid = os.fork()
                if pid == 0:
                    r = {"ret": 0, "placed": None, "signal": None, "value": None,
                         "refused": None}
                else:
                    _, status = os.waitpid(pid, 0)
                    if os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0:
                        os._exit(0)           # the child wrote the report
                    why = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                           else f"exit status {os.WEXITSTATUS(status)}")
                    raise OSError(f"the child forked at call {i} died ({why})")
            else:
                r = _exec_call(k, call, base, size, fds)
            r["vmas"] = _read_smaps_window(base, size, inodes)
            report["calls"].append(r)
    except BaseException as e:                   # report, never die silently
        report["error"] = f"{type(e).__name__}: {e}"
    try:
        _write_all(wfd, json.dumps(report).encode())
        os._exit(0)
    finally:
        os._exit(3)


def _run_forked(k: _Kernel, seq, env: dict, timeout: float) -> dict:
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(rfd)
        try:
            os.setpgid(0, 0)        # its own group: a timeout kills forked descendants too
        except OSError:
            pass
        _child_main(k, seq, wfd, env)
    os.close(wfd)
    try:
        os.setpgid(pid, pid)        # as the child does; whichever runs first wins
    except OSError:
        pass
    chunks = []
    timed_out = False
    try:
        while True:
            ready, _, _ = select.select([rfd], [], [], timeout)
            if not ready:
                timed_out = True
                try:
                    os.killpg(pid, signal.SIGKILL)
                except OSError:
                    os.kill(pid, signal.SIGKILL)
                break
            b = os.read(rfd, 1 << 16)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(rfd)
        _, status = os.waitpid(pid, 0)
    if timed_out:
        return {"side": "real", "env": env, "calls": [], "error":
                f"timeout: the sequence ran longer than {timeout:.0f} s"}
    data = b"".join(chunks)
    if not data:
        why = (f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
               else f"exit status {os.WEXITSTATUS(status)}")
        return {"side": "real", "env": env, "calls": [],
                "error": f"the child died without a report ({why})"}
    return json.loads(data)


def _worker_main(probe_path: str) -> int:
    """The persistent worker: one JSON request per stdin line, one JSON report per line."""
    check_real_kernel()
    k = _Kernel(probe_path)
    env = _env_info()
    inp = sys.stdin.buffer
    out = sys.stdout.buffer
    while True:
        line = inp.readline()
        if not line:
            return 0
        try:
            req = json.loads(line)
            seq = S.from_dict(req["seq"], "<request>")
            rep = _run_forked(k, seq, env, float(req.get("timeout", SEQUENCE_TIMEOUT)))
        except Exception as e:                   # a bad request: answer, keep serving
            rep = {"side": "real", "calls": [], "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(rep).encode() + b"\n")
        out.flush()


# --- the parent's side -------------------------------------------------------------------------
class RealRunner:
    """A persistent worker that runs sequences on the real kernel.

    >>> with RealRunner() as r:
    ...     report = r.run(seq)
    """

    def __init__(self, timeout: float = SEQUENCE_TIMEOUT):
        import subprocess
        self._subprocess = subprocess
        check_real_kernel()
        self.timeout = timeout
        self.probe = probe_library()
        self.proc = None
        self.runs = 0

    def _start(self) -> None:
        subprocess = self._subprocess
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", os.path.abspath(__file__), "--worker", self.probe],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            close_fds=True)

    def run(self, seq) -> dict:
        """Run ``seq`` (a validated Sequence) and return the real kernel's report."""
        if self.proc is None or self.proc.poll() is not None:
            self._start()
        req = json.dumps({"seq": seq.to_dict(), "timeout": self.timeout}).encode() + b"\n"
        try:
            self.proc.stdin.write(req)
            self.proc.stdin.flush()
            fd = self.proc.stdout.fileno()
            ready, _, _ = select.select([fd], [], [], self.timeout + 30)
            line = self.proc.stdout.readline() if ready else b""
        except (BrokenPipeError, OSError):
            line = b""
        if not line:
            err = self._stop()
            raise OracleError("real-kernel worker died" + (f": {err}" if err else ""))
        self.runs += 1
        return json.loads(line)

    def _stop(self) -> str:
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        err = b""
        try:
            proc.stdin.close()
        except OSError:
            pass
        try:
            proc.wait(timeout=5)
        except self._subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        try:
            err = proc.stderr.read() or b""
        except (OSError, ValueError):
            pass
        proc.stdout.close()
        proc.stderr.close()
        lines = err.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def close(self) -> None:
        self._stop()

    def __enter__(self) -> "RealRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_shared: RealRunner | None = None


def shared_runner() -> RealRunner:
    """One worker per process, started on first use, stopped at exit."""
    global _shared
    if _shared is None:
        import atexit
        _shared = RealRunner()
        atexit.register(_shared.close)
    return _shared


def run_real(seq) -> dict:
    """Run ``seq`` on the real kernel (in a fresh child of the shared worker)."""
    return shared_runner().run(seq)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        try:
            sys.exit(_worker_main(sys.argv[2]))
        except OracleUnavailable as e:
            print(e, file=sys.stderr)
            sys.exit(2)
    print("usage: real.py --worker PROBE.so (started by RealRunner)", file=sys.stderr)
    sys.exit(2)
