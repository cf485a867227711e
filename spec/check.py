"""The one invariant-checking path, and the events the model reports.

Every client that judges a concrete model state (the explorer after every step and at every
return to user space, the stateful test after every call, prove's bounded obligations,
``replay``) asks :func:`violations` with a state view, the *moment*, and, for an event, its
fields. What is checked at which moment is decided here and nowhere else:

* ``"step"``: after a step. The invariants whose ``when`` is ``"step"``; with *changed* (the
  kinds of object the step wrote or added to: the first field of its scheduling point's
  object tuples), only those whose footprint the step touched.
* ``"quiescent"``: when no thread is inside a kernel path on an mm. The invariants whose
  ``when`` is ``"quiescent"``, for each mm in *quiet_mms*; the ones about every page (I4,
  REFCOUNT), every mm's reverse-map links (RMAP.chains) and every clean file page
  (LOST_WRITE.clean) only when *all_quiet* (no thread in the kernel anywhere).
* an event kind of :data:`EVENTS`: the invariants attached to that event (``when`` = the
  kind). A return to user space also makes its mm quiescent when it is in *quiet_mms*.

The kernel's complaints are events too (``warn``, ``bad_pte``, ``bad_rss``, ``pgtable_leak``,
``bad_pgtables_bytes``): each has an invariant whose body is false, so every complaint is a
named violation wherever the state is judged. BUG_ON (impl/sched.py KernelBug), deadlocks and
lock-discipline errors stop the running thread and are reported by the runtime that catches
them (checker/runtime.py), under the names in :data:`RUNTIME_VIOLATIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

from . import invariants as INV

#: Every event the model reports with ``sched.event(kind, ...)``: kind -> what it means.
EVENTS: dict[str, str] = {
    "tlb_flush": "a TLB flush of a range completed on every CPU it was sent to",
    "return_to_user": "a system call returns to user space (ranges: what it operated on)",
    "split_vma": "__split_vma made two VMAs of one",
    "vma_change": "VMAs were merged, expanded, shrunk or removed (old and new records)",
    "zap_under_walker": "the OOM reaper is about to zap a VMA a page walker is inside",
    "exit_mmap_done": "exit_mmap finished tearing an mm down",
    "mm_freed": "__mmdrop freed an mm_struct",
    "pgtable_free": "a page-table page was freed (pfn, gen): by an RCU callback or at once",
    "cow_copy": "wp_page_copy's copy replaced a page (its ptep_clear_flush done), with the "
                "user stores through the old translation after the copy read the page",
    "choice": "the explorer took the failing side of a branch the kernel does not control "
              "(a GFP_NOWAIT allocation failed, need_resched() was true)",
    # The kernel's complaints:
    "warn": "WARN / WARN_ON_ONCE / VM_WARN_ON fired (impl/bug.py)",
    "bad_pte": "print_bad_pte: \"BUG: Bad page map\"",
    "bad_rss": "check_mm: \"BUG: Bad rss-counter state\"",
    "pgtable_leak": "the pgd still maps page tables when the mm is freed",
    "bad_pgtables_bytes": "check_mm: \"BUG: non-zero pgtables_bytes on freeing mm\"",
}

#: Violations the runtime reports itself (a thread stopped): name -> meaning.
RUNTIME_VIOLATIONS: dict[str, str] = {
    "BUG": "BUG_ON / VM_BUG_ON fired (the kernel would oops)",
    "DEADLOCK": "every remaining thread is blocked",
    "LOCK": "lock discipline: unlock of a lock not held, sleeping under a spinlock, "
            "a lock held on return to user space",
}

MOMENTS = ("step", "quiescent") + tuple(EVENTS)

# Invariants about every page of the machine: a thread inside any mm may hold a batched
# mapcount or refcount change, so they are judged only when no thread is in the kernel.
_GLOBAL_GROUPS = ("I4", "REFCOUNT")
# And invariants over every mm's reverse-map links (the freed mms' too) and every file page:
# a munmap or a writeback in flight anywhere may hold them half-changed.
_GLOBAL_NAMES = ("RMAP.chains", "LOST_WRITE.clean")


@dataclass(frozen=True)
class Finding:
    """One violated invariant: its name (``I1.return``), group (``I1``) and what is wrong,
    in kernel terms."""

    name: str
    group: str
    message: str


def _judge(invs: Iterable, S, ev: Optional[dict]) -> list[Finding]:
    out = []
    for inv in invs:
        w = inv.witness(S, ev)
        if w is not None:
            out.append(Finding(inv.name, inv.group, inv.message(S, w, ev)))
    return out


def violations(S, moment: str, event: Optional[dict] = None, *,
               changed: Optional[set] = None, quiet_mms: Optional[list] = None,
               all_quiet: bool = True) -> list[Finding]:
    """The invariants violated at *moment* in the state seen through view *S*.

    *quiet_mms* are the mms no thread is in the kernel on (default: every mm of the view);
    *all_quiet* says no thread is in the kernel anywhere."""
    if moment == "step":
        invs = [inv for inv in INV.by_when("step")
                if changed is None or not inv.footprint or not inv.footprint.isdisjoint(changed)]
        return _judge(invs, S, None)
    if moment == "quiescent":
        mms = S.mms() if quiet_mms is None else quiet_mms
        out: list[Finding] = []
        for inv in INV.by_when("quiescent"):
            if inv.group in _GLOBAL_GROUPS or inv.name in _GLOBAL_NAMES:
                if all_quiet:
                    out += _judge([inv], S, None)
                continue
            for mm in mms:
                out += _judge([inv], S, {"mm": mm})
        return out
    if moment not in EVENTS:
        raise ValueError(f"unknown moment or event kind {moment!r} (declared: "
                         f"{', '.join(MOMENTS)})")
    out = _judge(INV.by_when(moment), S, event)
    if moment == "return_to_user" and event is not None and event.get("mm") is not None:
        mms = S.mms() if quiet_mms is None else quiet_mms
        mine = [m for m in mms if m is event["mm"]]
        out += violations(S, "quiescent", quiet_mms=mine, all_quiet=all_quiet)
    return out
