"""Run a sequence on the model (``unmapcheck.impl.System``) and report it like real.py does.

The model reserves the same window as the real runner: a PROT_NONE
MAP_PRIVATE|MAP_ANONYMOUS|MAP_NORESERVE mapping of ``window_pages`` pages at the 2 MiB aligned
address :data:`MODEL_WINDOW_BASE` (MAP_FIXED_NOREPLACE), far below the model's top-down
mmap base (``impl.constants.MMAP_BASE``), so that non-fixed mmaps the hint cannot satisfy land
far above the window, as they do in the real child. Every address in the report is an offset
into the window. The same :func:`sequence.refusal` rule decides which calls run, and a
non-fixed mmap placed outside the window is unmapped at once (:func:`sequence.placement`).

Nothing is passed silently: an impl/ that cannot be imported, a missing System API, or an
exception raised by the model inside a call ends the report with ``error`` naming the call,
which compare.py reports as a mismatch.
"""

from __future__ import annotations

import traceback

from . import sequence as S

MODEL_WINDOW_BASE = 0x7E0000000000

# fs/proc/task_mmu.c show_smap_vma_flags(): the mnemonics the oracle compares, by vm_flags bit
# (the values are include/linux/mm.h's, as in impl/constants.py).
VMFLAG_MNEMONICS = (
    (0x00000001, "rd"), (0x00000002, "wr"), (0x00000004, "ex"), (0x00000008, "sh"),
    (0x00000010, "mr"), (0x00000020, "mw"), (0x00000040, "me"), (0x00000080, "ms"),
    (0x00000100, "gd"), (0x00000400, "pf"), (0x00002000, "lo"), (0x00004000, "io"),
    (0x00008000, "sr"), (0x00010000, "rr"), (0x00020000, "dc"), (0x00040000, "de"),
    (0x00080000, "lf"), (0x00100000, "ac"), (0x00200000, "nr"), (0x00400000, "ht"),
    (0x00800000, "sf"), (0x02000000, "wf"), (0x04000000, "dd"), (0x10000000, "mm"),
    (0x20000000, "hg"), (0x40000000, "nh"), (0x80000000, "mg"),
)


class ModelUnavailable(RuntimeError):
    """impl/ cannot run sequences (yet); ``str()`` is one line saying what is missing."""


def _impl():
    try:
        from unmapcheck import impl
        System = impl.System
    except Exception as e:   # ImportError, AttributeError from impl's lazy __getattr__
        raise ModelUnavailable(f"model: unmapcheck.impl.System is not usable: "
                               f"{type(e).__name__}: {e}") from None
    return impl, System


def vmflags_string(vm_flags: int) -> str:
    return " ".join(m for bit, m in VMFLAG_MNEMONICS if vm_flags & bit)


def _is_signal(e: BaseException) -> str | None:
    # impl raises SigSegv/SigBus from x86_fault; match by name so that either definition
    # (impl.system re-exports or its own) is recognised.
    name = type(e).__name__
    if name == "SigSegv":
        return "SIGSEGV"
    if name == "SigBus":
        return "SIGBUS"
    return None


class _ModelRun:
    def __init__(self, seq: S.Sequence, system_kw: dict):
        self.seq = seq
        impl, System = _impl()
        self.impl = impl
        self.system = System(**system_kw)
        self.proc = self.system.spawn()
        self.base = MODEL_WINDOW_BASE
        self.size = seq.window_size
        self.fds: dict[str, int] = {}
        self.file_ids: dict[object, str] = {}

    def setup(self) -> None:
        for f in self.seq.files:
            fd = self.system.memfd_create(f.name, f.size)
            if fd < 0:
                raise ModelUnavailable(f"model: memfd_create({f.name!r}, {f.size}) "
                                       f"returned {fd}")
            self.fds[f.name] = fd
            fobj = self.system.file(fd)
            self.file_ids[getattr(fobj, "id", fd)] = f.name
        # The same window as the real child: PROT_NONE, private, anonymous, NORESERVE.
        gap_lo, gap_hi = self.base - S.GAP, self.base + self.size + S.GAP
        for e in self.proc.maps():
            if e.end > gap_lo and e.start < gap_hi:
                raise ModelUnavailable(f"model: the window's neighbourhood is not empty: "
                                       f"{e.start:#x}-{e.end:#x}")
        r = self.proc.mmap(self.base, self.size, S.PROT_NONE,
                           S.MAP_PRIVATE | S.MAP_ANONYMOUS | S.MAP_NORESERVE
                           | S.MAP_FIXED_NOREPLACE)
        if r != self.base:
            raise ModelUnavailable(f"model: reserving the window at {self.base:#x} returned "
                                   f"{r:#x}" if r >= 0 else f"model: reserving the window "
                                   f"returned {r}")

    def exec_call(self, call: S.Call) -> dict:
        r = {"ret": None, "placed": None, "signal": None, "value": None, "refused": None}
        why = S.refusal(call, self.size)
        if why is not None:
            r["refused"] = why
            return r
        p = self.proc
        op = call.op
        addr = (self.base + call.addr) & S.ULONG_MAX
        if op == "mmap":
            fd = self.fds[call.file] if call.file is not None else -1
            ret = p.mmap(addr, call.length, call.prot, call.flags, fd, call.offset)
            if ret < 0:
                r["ret"] = ret
                return r
            alen = S.page_align(call.length)
            r["ret"], r["placed"] = S.placement(ret - self.base, alen, self.size)
            if r["placed"] is not None:
                u = p.munmap(ret, alen)
                if u != 0:
                    raise RuntimeError(f"unmapping the mapping placed outside the window at "
                                       f"{ret:#x} returned {u}")
            return r
        if op == "fork":
            self.proc = p.fork()
            r["ret"] = 0
            return r
        if op in ("load", "store"):
            try:
                if op == "load":
                    r["value"] = p.load(addr)
                else:
                    p.store(addr, call.byte)
                r["ret"] = 0
            except Exception as e:
                sig = _is_signal(e)
                if sig is None:
                    raise
                r["signal"] = sig
            return r
        fn = getattr(p, op)
        if op == "mprotect":
            r["ret"] = fn(addr, call.length, call.prot)
        elif op == "madvise":
            r["ret"] = fn(addr, call.length, call.advice)
        else:                                   # munmap, mlock, munlock
            r["ret"] = fn(addr, call.length)
        return r

    def _file_name(self, entry) -> str | None:
        fid = getattr(entry, "file", None)
        if fid is None:
            return None
        if fid in self.file_ids:
            return self.file_ids[fid]
        # The sequence creates only its memfds: any other file is the shmem file of a shared
        # anonymous mapping, which /proc shows as "/dev/zero (deleted)".
        return "/dev/zero"

    def window_vmas(self) -> list[dict]:
        p = self.proc
        maps = p.maps()
        smaps = p.smaps()
        if len(smaps) != len(maps):
            raise RuntimeError(f"model: maps() has {len(maps)} entries, smaps() {len(smaps)}")
        # VmFlags come from the VMAs themselves (impl: mm.mm_mt.vmas, in maps() order).
        vmas = getattr(getattr(getattr(p, "mm", None), "mm_mt", None), "vmas", None)
        lo, hi = self.base, self.base + self.size
        out = []
        for i, (e, sm) in enumerate(zip(maps, smaps)):
            if e.end <= lo or e.start >= hi:
                continue
            fname = self._file_name(e)
            rss, anon = int(sm["Rss"]), int(sm["Anonymous"])
            v = {"start": e.start - lo, "end": e.end - lo, "perms": e.perms,
                 "offset": e.offset if fname is not None else 0, "file": fname,
                 "Rss": rss, "Anonymous": anon,
                 # As on the real side: smaps has no per-VMA Shmem line; a shmem-backed VMA's
                 # shmem pages are its Rss less its anonymous pages.
                 "Shmem": rss - anon if fname is not None else 0,
                 "Locked": int(sm["Locked"]),
                 "VmFlags": None}
            if vmas is not None and i < len(vmas) and vmas[i].vm_start == e.start:
                v["VmFlags"] = vmflags_string(vmas[i].vm_flags)
            out.append(v)
        return out


def tunables_for(env: dict | None):
    """The model's ``Tunables`` for the real run's environment (its report's ``env``):
    CAP_IPC_LOCK and RLIMIT_MEMLOCK. Without one (``None``: a regression test recorded before
    ``env`` was kept, or a model-only run) the oracle's usual setting: root, so capable, with
    the default 8 MiB limit."""
    from unmapcheck.impl.machine import Tunables
    env = env or {}
    t = Tunables(capable=bool(env.get("cap_ipc_lock", True)))
    limit = env.get("memlock_limit")
    if isinstance(limit, int):
        t.rlimit_memlock = S.ULONG_MAX if limit < 0 else limit
    return t


def run_model(seq: S.Sequence, env: dict | None = None, **system_kw) -> dict:
    """Run ``seq`` on a fresh model System and return a report shaped like real.py's.

    ``env`` is the real report's environment (see :func:`tunables_for`), used unless
    ``system_kw`` has ``tunables``. ``system_kw`` go to ``System(...)`` (e.g. ``cpus=2``,
    ``fixes_off=[...]``). Raises ModelUnavailable when impl/ cannot run sequences at all; an
    exception inside a call ends the report with ``error`` (the traceback's last frame
    named) instead.
    """
    system_kw.setdefault("cpus", 2)
    if "tunables" not in system_kw:
        system_kw["tunables"] = tunables_for(env)
    try:
        run = _ModelRun(seq, system_kw)
        run.setup()
    except ModelUnavailable:
        raise
    except Exception as e:      # System(), spawn(), memfd_create() or the window's mmap
        raise ModelUnavailable(f"model: cannot set up a process and its window: "
                               f"{type(e).__name__}: {e}") from None
    report = {"side": "model", "window_pages": seq.window_pages, "calls": [], "error": None,
              "window_base": run.base}
    for i, call in enumerate(seq.calls):
        try:
            r = run.exec_call(call)
            r["vmas"] = run.window_vmas()
        except ModelUnavailable:
            raise
        except Exception as e:
            tb = traceback.extract_tb(e.__traceback__)
            where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno} " \
                    f"({tb[-1].name})" if tb else ""
            report["error"] = f"call {i} {call.describe()}: model raised " \
                              f"{type(e).__name__}: {e}{where}"
            break
        report["calls"].append(r)
    return report
