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
PR_SET_PDEATHSIG = 1
PR_SET_THP_DISABLE = 41
PR_GET_THP_DISABLE = 42
FIONREAD = 0x541B
# How long close() lets an interrupted worker clean up (kill and reap its child) before it is
# killed; how long any wait for a killed process may take before it is given up.
STOP_GRACE = 3.0
REAP_TIMEOUT = 10.0
# A request may ask the child to sleep before a call (tests of the clean-up only).
MAX_PAUSE = 120.0

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


class UnsafePath(OSError):
    """A directory or file the probe may not be cached in or loaded from (owned by someone
    else, writable by others, a symlink, not what it should be); ``str()`` is one line."""


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


def _check_ancestors(real_dir: str) -> None:
    """Every folder above ``real_dir`` (a path without symlinks) must be owned by root or by
    us and not writable by anyone else, unless it is sticky (/tmp: others cannot rename or
    remove what we own there). Otherwise someone else could swap the cache folder for theirs
    between our check and our use."""
    import stat
    euid = os.geteuid()
    d = os.path.dirname(real_dir)
    while True:
        st = os.stat(d)
        if st.st_uid not in (0, euid):
            raise UnsafePath(f"{d} is owned by uid {st.st_uid}")
        if st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX:
            raise UnsafePath(f"{d} is writable by others (mode {stat.S_IMODE(st.st_mode):o})")
        parent = os.path.dirname(d)
        if parent == d:
            return
        d = parent


def _ours_and_private(path: str, st) -> None:
    """UnsafePath unless *st* (of *path*) is owned by os.geteuid() and not writable by group
    or others."""
    import stat
    if st.st_uid != os.geteuid():
        raise UnsafePath(f"{path} is owned by uid {st.st_uid}, not by us "
                         f"(uid {os.geteuid()})")
    if st.st_mode & 0o022:
        raise UnsafePath(f"{path} is writable by others (mode {stat.S_IMODE(st.st_mode):o})")


def private_dir(path: str, create: bool = False) -> str:
    """``path`` as a folder only we control, or UnsafePath: a real folder (os.lstat: not a
    symlink), owned by os.geteuid(), not writable by group or others, under folders owned by
    root or us that no one else can write to (sticky ones excepted). With ``create`` it is
    made (mode 0700) if missing. Returns its real path, to be used from then on."""
    import stat
    path = os.path.abspath(path)
    if create and not os.path.lexists(path):
        os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise UnsafePath(f"{path} is a symlink")
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafePath(f"{path} is not a folder")
    _ours_and_private(path, st)
    real = os.path.join(os.path.realpath(os.path.dirname(path)), os.path.basename(path))
    _check_ancestors(real)
    return real


def _verified_fd(path: str) -> int:
    """Open the probe for loading, or raise UnsafePath/OSError: opened without following a
    symlink, then checked on the open file (fstat), so what is checked is what is loaded: a
    regular file owned by os.geteuid() that no one else can write."""
    import stat
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(f"{path} is not a regular file")
        _ours_and_private(path, st)
    except BaseException:
        os.close(fd)
        raise
    return fd


def verify_probe(path: str) -> str:
    """Check the probe at ``path`` (its folder as :func:`private_dir`, the file as
    :func:`_verified_fd`); return its real path, or raise UnsafePath/OSError."""
    d = private_dir(os.path.dirname(os.path.abspath(path)))
    real = os.path.join(d, os.path.basename(path))
    os.close(_verified_fd(real))
    return real


def load_probe(path: str):
    """ctypes.CDLL of the probe at ``path``, verified first. The library is loaded through
    /proc/self/fd of the descriptor that was checked, so no one can swap the file between
    the check and the load."""
    real = verify_probe(path)
    fd = _verified_fd(real)
    try:
        return ctypes.CDLL(f"/proc/self/fd/{fd}")
    finally:
        os.close(fd)


def _build_probe(d: str, so_name: str, cc: str) -> str:
    """Compile the probe into the private folder ``d`` (a fresh private folder inside it for
    the source and the output), then rename it to ``d/so_name`` atomically; concurrent
    builders are harmless (the last rename wins, each file whole)."""
    import subprocess
    import tempfile
    work = tempfile.mkdtemp(prefix=".build-", dir=d)          # mode 0700, ours
    try:
        src = os.path.join(work, "probe.c")
        out = os.path.join(work, "probe.so")
        fd = os.open(src, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(PROBE_SOURCE)
        try:
            r = subprocess.run([cc, "-O2", "-shared", "-fPIC", "-o", out, src],
                               capture_output=True, text=True, timeout=120,
                               stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise OracleUnavailable(f"real-kernel oracle: building the probe with {cc} "
                                    f"failed: {e}") from None
        if r.returncode != 0:
            msg = (r.stderr.strip().splitlines() or ["failed"])[0]
            raise OracleUnavailable(f"real-kernel oracle: building the probe with {cc} "
                                    f"failed: {msg}")
        os.chmod(out, 0o755)
        os.close(_verified_fd(out))
        final = os.path.join(d, so_name)
        os.replace(out, final)
        return final
    finally:
        import shutil
        shutil.rmtree(work, ignore_errors=True)


_session_dir: str | None = None


def _private_session_dir() -> str:
    """A fresh private folder for this process (tempfile.mkdtemp: a new random name, mode
    0700, created by us), removed at exit: where the probe is built when the cache folder
    cannot be used."""
    global _session_dir
    if _session_dir is None or not os.path.isdir(_session_dir):
        import atexit
        import shutil
        import tempfile
        d = tempfile.mkdtemp(prefix="unmapcheck-probe-")
        atexit.register(shutil.rmtree, d, True)
        _session_dir = d
    return private_dir(_session_dir)


def probe_library(cache_dir: str | None = None) -> str:
    """Path of the compiled load/store probe, building it if needed. Nothing is loaded or
    returned that was not verified (the probe runs inside the oracle's processes, as root
    here).

    The cache folder is ``cache_dir``, else ``$UNMAPCHECK_CACHE``, else
    ``$XDG_CACHE_HOME/unmapcheck`` or ``~/.cache/unmapcheck`` (created with mode 0700). It is
    used only if :func:`private_dir` accepts it: a real folder (not a symlink), owned by us,
    not writable by group or others, under folders only root or we can change. The probe in
    it, ``probe-<hash of the source>.so``, is used only if it is a regular file (not a
    symlink) owned by us and not writable by others; otherwise it is rebuilt: compiled in a
    fresh private folder inside the cache folder and renamed into place (atomic). When the
    cache folder is refused, the probe is built in a new private folder of this process
    (tempfile.mkdtemp, mode 0700), never in a predictable place in the shared /tmp. Raises
    OracleUnavailable when no C compiler exists or the build fails.
    """
    import hashlib
    digest = hashlib.sha256(PROBE_SOURCE.encode()).hexdigest()[:16]
    so_name = f"probe-{digest}.so"
    try:
        d = private_dir(cache_dir or _cache_dir(), create=True)
    except OSError:                      # UnsafePath, or the folder cannot be made
        d = None
    if d is not None:
        so = os.path.join(d, so_name)
        try:
            return verify_probe(so)
        except FileNotFoundError:
            pass
        except OSError:
            # Not ours, a symlink, writable by others ... : never loaded; replaced below
            # (os.replace swaps the name, whatever it was).
            pass
    cc = _find_cc()
    if cc is None:
        raise OracleUnavailable("real-kernel oracle: no C compiler found (cc, gcc or clang; "
                                "or set CC): it is needed once to build the load/store probe "
                                "that survives SIGSEGV/SIGBUS")
    if d is not None:
        try:
            return verify_probe(_build_probe(d, so_name, cc))
        except OSError:
            pass                         # a read-only cache, a full disk: build privately
    try:
        d = _private_session_dir()
        so = os.path.join(d, so_name)
        if os.path.exists(so):
            return verify_probe(so)
        return verify_probe(_build_probe(d, so_name, cc))
    except OSError as e:
        raise OracleUnavailable(f"real-kernel oracle: cannot build the probe in a private "
                                f"folder: {e}") from None


# --- the child: runs one sequence ------------------------------------------------------------
class _Kernel:
    """ctypes bindings, made once in the worker and inherited by every child."""

    def __init__(self, probe_path: str):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.sc = self.libc.syscall
        self.sc.restype = ctypes.c_long
        self.probe = load_probe(probe_path)
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

    def pending(self, fd: int) -> int:
        """Bytes waiting in the pipe ``fd`` (ioctl FIONREAD), -1 if unknown."""
        n = ctypes.c_int(0)
        if self.libc.ioctl(fd, ctypes.c_ulong(FIONREAD), ctypes.byref(n)) != 0:
            return -1
        return n.value

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


def _die_with_parent(k: _Kernel, parent: int) -> None:
    """Have the kernel SIGKILL this process when ``parent`` (the process that forked it) dies
    (PR_SET_PDEATHSIG), and exit now if it already has: so a child of a worker that dies,
    and every process the child forked, dies with it instead of running on, orphaned."""
    if k.syscall(SYS_prctl, PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) < 0 \
            or os.getppid() != parent:
        os._exit(5)


def _check_window_closed(vmas: list, size: int) -> None:
    """No VMA crosses the window's boundary (see sequence.refusal: mprotect(PROT_GROWSDOWN)
    inside the window relies on it). A breach stops the run as a harness error."""
    for v in vmas:
        if v["start"] < 0 or v["end"] > size:
            raise OSError(f"a VMA crosses the window's boundary: {S._hex(v['start'])}-"
                          f"{S._hex(v['end'])} (window {S._hex(size)})")


def _child_main(k: _Kernel, seq, wfd: int, env: dict, pause=None) -> None:
    """Run ``seq`` in this (fresh) process and write the report to ``wfd``; never returns.
    ``pause``: ``(i, seconds)``, sleep before call i (tests of the clean-up only)."""
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
            if pause is not None and pause[0] == i:
                import time
                time.sleep(pause[1])
            if call.op == "fork":
                sys.stdout.flush()
                me = os.getpid()
                pid = os.fork()
                if pid == 0:
                    _die_with_parent(k, me)
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
            _check_window_closed(r["vmas"], size)
            report["calls"].append(r)
    except BaseException as e:                   # report, never die silently
        report["error"] = f"{type(e).__name__}: {e}"
    try:
        _write_all(wfd, json.dumps(report).encode())
        os._exit(0)
    finally:
        os._exit(3)


class _Abandoned(Exception):
    """The worker's stdin closed while a sequence ran: the parent gave up on it (or died)."""


def _kill_and_reap(pid: int) -> int | None:
    """SIGKILL the child's process group (the child and everything it forked), then reap the
    child; the wait status, or None if it could not be reaped within REAP_TIMEOUT. The group
    is killed before the child is reaped, while its id cannot be reused; after a normal end
    (the child exited) the kill finds nothing left to do."""
    import time
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + REAP_TIMEOUT
    pause = 0.0001
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return None
        if done:
            return status
        if time.monotonic() > deadline:
            return None
        time.sleep(pause)                 # the child is exiting: usually done at once
        pause = min(pause * 2, 0.05)


def _run_forked(k: _Kernel, seq, env: dict, timeout: float, pause=None) -> dict:
    """Run ``seq`` in a fresh child and return its report.

    The child is the leader of its own process group, dies with the worker
    (PR_SET_PDEATHSIG) and holds none of the worker's stdio (/dev/null instead), so that
    the parent sees the worker's death at once. Its group is killed and the child reaped
    whatever happens: after its report, at the timeout, when the worker's stdin closes
    while it runs (the parent gave up or died: then _Abandoned), on any error."""
    import time
    rfd, wfd = os.pipe()
    worker = os.getpid()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rfd)
            try:
                os.setpgid(0, 0)    # its own group: a kill reaches forked descendants too
            except OSError:
                pass
            _die_with_parent(k, worker)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            if null > 2:
                os.close(null)
            _child_main(k, seq, wfd, env, pause)
        finally:
            os._exit(4)
    os.close(wfd)
    try:
        os.setpgid(pid, pid)        # as the child does; whichever runs first wins
    except OSError:
        pass
    chunks = []
    ended = None                    # None: the report is complete
    watch = [rfd, 0]
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                ended = "timeout"
                break
            ready, _, _ = select.select(watch, [], [], left)
            if rfd in ready:
                b = os.read(rfd, 1 << 16)
                if not b:
                    break
                chunks.append(b)
                continue
            if 0 in ready:
                if k.pending(0) == 0:          # readable with nothing to read: EOF
                    ended = "abandoned"
                    break
                watch = [rfd]                  # a request too early: read after this one
    except BaseException:
        ended = ended or "interrupted"
        raise
    finally:
        os.close(rfd)
        status = _kill_and_reap(pid)
    if ended == "abandoned":
        raise _Abandoned()
    if ended == "timeout":
        return {"side": "real", "env": env, "calls": [], "error":
                f"timeout: the sequence ran longer than {timeout:.0f} s"}
    data = b"".join(chunks)
    if not data:
        if status is None:
            why = "not reaped"
        elif os.WIFSIGNALED(status):
            why = f"signal {os.WTERMSIG(status)}"
        else:
            why = f"exit status {os.WEXITSTATUS(status)}"
        return {"side": "real", "env": env, "calls": [],
                "error": f"the child died without a report ({why})"}
    return json.loads(data)


def _worker_main(probe_path: str) -> int:
    """The persistent worker: one JSON request per stdin line, one JSON report per line.
    It exits when its stdin closes, killing the child of a sequence still running."""
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
            pause = req.get("pause")
            if pause is not None:
                pause = (int(pause[0]), min(float(pause[1]), MAX_PAUSE))
            rep = _run_forked(k, seq, env, float(req.get("timeout", SEQUENCE_TIMEOUT)),
                              pause)
        except _Abandoned:
            return 0
        except Exception as e:                   # a bad request: answer, keep serving
            rep = {"side": "real", "calls": [], "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(rep).encode() + b"\n")
        out.flush()


# --- the parent's side -------------------------------------------------------------------------
class RealRunner:
    """A persistent worker that runs sequences on the real kernel.

    >>> with RealRunner() as r:
    ...     report = r.run(seq)

    Clean-up: the worker runs in its own session (a Ctrl-C at the terminal reaches only this
    process, which then closes the runner); :meth:`close` closes the worker's stdin, on which
    the worker kills the child of a sequence still running and exits, and kills the worker
    after STOP_GRACE seconds if it has not. The child dies with the worker
    (PR_SET_PDEATHSIG), and so does every process it forked, and it holds none of the
    worker's pipes, so a dead worker is seen at once. Every wait is bounded.
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
            close_fds=True, start_new_session=True)

    @property
    def worker_pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def run(self, seq, _pause: tuple[int, float] | None = None) -> dict:
        """Run ``seq`` (a validated Sequence) and return the real kernel's report.

        ``_pause=(i, seconds)`` makes the child sleep before call i (tests of the clean-up).
        Raises OracleError when the worker dies or does not answer in time; the worker is then
        stopped, and the next run starts a new one."""
        import time
        if self.proc is None or self.proc.poll() is not None:
            self._stop()
            self._start()
        req = {"seq": seq.to_dict(), "timeout": self.timeout}
        if _pause is not None:
            req["pause"] = list(_pause)
        line = b""
        ok = False
        try:
            self.proc.stdin.write(json.dumps(req).encode() + b"\n")
            self.proc.stdin.flush()
            fd = self.proc.stdout.fileno()
            deadline = time.monotonic() + self.timeout + REAP_TIMEOUT + 5
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                ready, _, _ = select.select([fd], [], [], min(left, 1.0))
                if ready:
                    line = self.proc.stdout.readline()
                    break
                if self.proc.poll() is not None:      # dead, yet no EOF: do not wait on
                    break
            ok = bool(line)
        except (BrokenPipeError, OSError):
            line = b""
        finally:
            if not ok:                                 # failed, timed out or interrupted
                err = self._stop(kill=True)
        if not line:
            raise OracleError("real-kernel worker died" + (f": {err}" if err else ""))
        self.runs += 1
        return json.loads(line)

    def _stop(self, kill: bool = False) -> str:
        """Stop the worker (closing its stdin; SIGKILL if ``kill`` or if it has not exited
        within STOP_GRACE) and reap it; the last line it wrote to stderr."""
        proc, self.proc = self.proc, None
        if proc is None:
            return ""
        try:
            proc.stdin.close()
        except OSError:
            pass
        # Closing stdin lets a worker that is still alive kill its child and exit by itself;
        # if it does not (in time), SIGKILL: its child dies with it (PR_SET_PDEATHSIG).
        try:
            proc.wait(timeout=0.5 if kill else STOP_GRACE)
        except self._subprocess.TimeoutExpired:
            proc.kill()
            try:
                proc.wait(timeout=REAP_TIMEOUT)
            except self._subprocess.TimeoutExpired:
                pass
        err = _read_available(proc.stderr)
        for f in (proc.stdout, proc.stderr):
            try:
                f.close()
            except OSError:
                pass
        lines = err.decode(errors="replace").strip().splitlines()
        return lines[-1] if lines else ""

    def close(self) -> None:
        self._stop()

    def __enter__(self) -> "RealRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _read_available(f, limit: int = 1 << 16, wait: float = 0.5) -> bytes:
    """What can be read from the pipe ``f`` within ``wait`` seconds (up to ``limit`` bytes),
    never blocking on a writer that keeps it open."""
    import time
    out = b""
    try:
        fd = f.fileno()
        deadline = time.monotonic() + wait
        while len(out) < limit:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                break
            b = os.read(fd, limit - len(out))
            if not b:
                break
            out += b
    except (OSError, ValueError):
        pass
    return out


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
        except OSError as e:                # the probe failed verification (UnsafePath)
            print(f"real-kernel oracle: the probe cannot be loaded: {e}", file=sys.stderr)
            sys.exit(2)
    print("usage: real.py --worker PROBE.so (started by RealRunner)", file=sys.stderr)
    sys.exit(2)
