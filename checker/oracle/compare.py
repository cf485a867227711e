"""Compare a real-kernel report with a model report; name the first call and field that differ.

Per call, in this order (the first difference wins, so the most basic one is named):

1. whether the call ran (``refused``: both sides apply the same rule, so this only differs
   if a report is malformed);
2. the return value (``ret``: an address as a window offset, 0, or -errno), where a non-fixed
   mmap was placed (``placed``), the signal of a load/store (``signal``) and the byte a load
   read (``value``);
3. the VMA list of the window: start, end, perms, file offset, file;
4. per VMA, smaps Rss, Anonymous, Shmem, Locked (kB);
5. per VMA, the VmFlags mnemonics (optional, ``vmflags=True``).

A report whose run broke (``error``) is a difference at the call where it broke. A broken
real run is not the model's fault: :func:`compare` raises :class:`RealRunFailed` for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import sequence as S

SMAPS_FIELDS = ("Rss", "Anonymous", "Shmem", "Locked")
RESULT_FIELDS = ("refused", "ret", "placed", "signal", "value")
ERRNO = {1: "EPERM", 2: "ENOENT", 4: "EINTR", 5: "EIO", 9: "EBADF", 11: "EAGAIN",
         12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 19: "ENODEV",
         22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 27: "EFBIG", 75: "EOVERFLOW",
         95: "EOPNOTSUPP"}


class RealRunFailed(RuntimeError):
    """The real-kernel run itself failed (not a model mismatch)."""


@dataclass(frozen=True)
class Mismatch:
    call: int             # index into seq.calls
    call_desc: str        # "munmap(0x1000, 0x1000)"
    kind: str             # "result", "vmas", "smaps", "vmflags", "model error", "length"
    field: str            # "ret", "VMA list", "Rss", ...
    real: object
    model: object
    message: str          # one line

    def __str__(self) -> str:
        return self.message


def fmt_ret(call_op: str | None, v) -> str:
    if v is None:
        return "none"
    if isinstance(v, int) and v < 0 and -v in ERRNO:
        return f"-{ERRNO[-v]}"
    if isinstance(v, int) and call_op == "mmap":
        return S._hex(v)
    return str(v)


def fmt_vma(v: dict) -> str:
    s = f"{S._hex(v['start'])}-{S._hex(v['end'])} {v['perms']}"
    if v.get("file") is not None:
        s += f" {v['file']}@{S._hex(v['offset'])}"
    return s


def fmt_vmas(vs: list[dict]) -> str:
    return "[" + ", ".join(fmt_vma(v) for v in vs) + "]"


def _layout(v: dict) -> tuple:
    return (v["start"], v["end"], v["perms"], v["offset"], v["file"])


def compare(seq: S.Sequence, real: dict, model: dict, vmflags: bool = True) \
        -> Mismatch | None:
    """The first difference between the two reports of ``seq``, or None."""
    if real.get("error"):
        raise RealRunFailed(f"real-kernel run failed: {real['error']}")
    rcalls, mcalls = real["calls"], model["calls"]
    if len(rcalls) != len(seq.calls):
        raise RealRunFailed(f"real-kernel report has {len(rcalls)} calls for a sequence of "
                            f"{len(seq.calls)}")
    for i, call in enumerate(seq.calls):
        desc = call.describe()
        head = f"call {i} {desc}"
        if i >= len(mcalls):
            err = model.get("error") or "the model report ends here"
            if err.startswith(f"call {i} "):
                err = err.split(": ", 1)[1] if ": " in err else err
            return Mismatch(i, desc, "model error", "error", None, err,
                            f"{head}: model failed: {err}")
        r, m = rcalls[i], mcalls[i]
        for f in RESULT_FIELDS:
            if r.get(f) != m.get(f):
                if f in ("ret",):
                    rv, mv = fmt_ret(call.op, r.get(f)), fmt_ret(call.op, m.get(f))
                else:
                    rv, mv = repr(r.get(f)), repr(m.get(f))
                return Mismatch(i, desc, "result", f, r.get(f), m.get(f),
                                f"{head}: {f} differs: real {rv}, model {mv}")
        rv_, mv_ = r["vmas"], m["vmas"]
        if [_layout(v) for v in rv_] != [_layout(v) for v in mv_]:
            return Mismatch(i, desc, "vmas", "VMA list", rv_, mv_,
                            f"{head}: VMA list differs: real {fmt_vmas(rv_)} "
                            f"model {fmt_vmas(mv_)}")
        for a, b in zip(rv_, mv_):
            for f in SMAPS_FIELDS:
                if a[f] != b[f]:
                    return Mismatch(
                        i, desc, "smaps", f, a[f], b[f],
                        f"{head}: smaps {f} of VMA {S._hex(a['start'])}-{S._hex(a['end'])}: "
                        f"real {a[f]} kB, model {b[f]} kB")
        if vmflags:
            for a, b in zip(rv_, mv_):
                if b.get("VmFlags") is None:
                    continue       # the model could not say; compared when it can
                fa, fb = set(a["VmFlags"].split()), set(b["VmFlags"].split())
                if fa != fb:
                    extra = []
                    if fa - fb:
                        extra.append("only real: " + " ".join(sorted(fa - fb)))
                    if fb - fa:
                        extra.append("only model: " + " ".join(sorted(fb - fa)))
                    return Mismatch(
                        i, desc, "vmflags", "VmFlags", a["VmFlags"], b["VmFlags"],
                        f"{head}: VmFlags of VMA {S._hex(a['start'])}-{S._hex(a['end'])}: "
                        f"real [{a['VmFlags']}] model [{b['VmFlags']}] ({'; '.join(extra)})")
    if model.get("error"):
        return Mismatch(len(seq.calls), "", "model error", "error", None, model["error"],
                        f"after the last call: model failed: {model['error']}")
    return None


def assert_model_matches(seq: S.Sequence, real: dict, vmflags: bool = True, **system_kw) \
        -> None:
    """Run ``seq`` on the model and assert that it reproduces the recorded real report.

    For regression tests: ``real`` is a real-kernel report recorded once (so the test needs
    neither the real kernel nor a C compiler); its ``env`` (CAP_IPC_LOCK, RLIMIT_MEMLOCK),
    when recorded, sets the model's tunables.
    """
    from .model import run_model
    model = run_model(seq, env=real.get("env"), **system_kw)
    mm = compare(seq, real, model, vmflags=vmflags)
    if mm is not None:
        raise AssertionError(mm.message)


def calls_compared(seq: S.Sequence, model: dict, mismatch: Mismatch | None) -> int:
    """How many calls were compared field by field (all, or up to and including a mismatch)."""
    if mismatch is None:
        return len(seq.calls)
    return min(mismatch.call + 1, len(seq.calls))
