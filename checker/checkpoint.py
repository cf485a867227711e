"""``explore --checkpoint FILE``: save a long exploration and resume it.

An exploration is a sequence of DPOR searches (rounds: one per preemption bound, and per
injection plan of a scenario with choices, checker/explore.py), each run as work units by a
coordinator (checker/parallel.py). The checkpoint holds

- the result of every round that finished (keyed by its plan and bound): a resumed
  exploration takes it instead of running the round again;
- the coordinator's state of the round that was running (parallel.Coordinator): the merged
  results of its finished units, the units queued, their order at each state, and the units
  not finished, which the resumed round runs again (a unit's result counts only once it
  has finished, so a unit cut off half way is neither lost nor counted twice).

It is written (atomically: checker/trace.py write_atomic) when a round ends, every SAVE_EVERY
seconds during one, and when the exploration stops early (a time or execution budget,
Ctrl-C, SIGTERM). A finished exploration's checkpoint resumes to the same result at once.

The file is JSON data (never code). It names the search it belongs to: the scenario's text,
the fixes switched off, the preemption bound asked for, and the model (a hash of impl/):
resuming with any of them changed would mix two searches, so it is refused (one line,
exit 2), as is a file that is not a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Callable, Optional

from .explore import Counterexample, Result, Stats
from .parallel import Coordinator
from .runtime import Violation
from .scenario import Scenario

FORMAT = "unmapcheck-checkpoint"
VERSION = 1
SAVE_EVERY = 30.0          # seconds between saves during a round


class CheckpointError(Exception):
    """A checkpoint file that cannot be used: one line naming the file and why."""


def model_hash() -> str:
    """The model a search ran: every source file of impl/."""
    impl = Path(__file__).resolve().parent.parent / "impl"
    h = hashlib.sha256()
    for f in sorted(impl.rglob("*.py")):
        h.update(f.relative_to(impl).as_posix().encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


def identity(scenario: Scenario, bound: Optional[int]) -> dict:
    return {"scenario": scenario.name,
            "scenario_sha256": hashlib.sha256(scenario.text.encode()).hexdigest(),
            "fixes_off": sorted(scenario.fixes_off), "preemptions": bound,
            "max_steps": scenario.max_steps, "model_sha256": model_hash()}


# --- JSON, both ways ----------------------------------------------------------------------------
def _freeze(x):
    """JSON arrays back to the tuples the results are keyed by."""
    return tuple(_freeze(v) for v in x) if isinstance(x, list) else x


def _result_to_json(r: Result) -> dict:
    st = r.stats
    return {
        "stats": {k: getattr(st, k) for k in Stats.__dataclass_fields__},
        "counterexamples": {g: {"violation": vars(c.violation), "schedule": list(c.schedule),
                                "preemptions": c.preemptions,
                                "inject": sorted(list(p) for p in c.inject)}
                            for g, c in r.counterexamples.items()},
        "outcomes": [list(o) for o in r.outcomes],
        "outcome_counts": [[k, n, list(r.outcome_schedules.get(k, ()))]
                           for k, n in r.outcome_counts.items()],
        "choice_points": sorted(list(p) for p in r.choice_points),
        "plans": [sorted(list(p) for p in plan) for plan in r.plans],
    }


def _result_from_json(d: dict) -> Result:
    known = Stats.__dataclass_fields__
    res = Result(Stats(**{k: v for k, v in d["stats"].items() if k in known}))
    for g, c in d["counterexamples"].items():
        res.counterexamples[g] = Counterexample(
            Violation(**c["violation"]), [int(t) for t in c["schedule"]],
            int(c["preemptions"]), frozenset(_freeze(p) for p in c["inject"]))
    res.outcomes = {_freeze(o) for o in d["outcomes"]}
    for k, n, sched in d["outcome_counts"]:
        res.outcome_counts[_freeze(k)] = int(n)
        res.outcome_schedules[_freeze(k)] = [int(t) for t in sched]
    res.choice_points = {_freeze(p) for p in d["choice_points"]}
    res.plans = [frozenset(_freeze(p) for p in plan) for plan in d["plans"]]
    return res


def _coordinator_to_json(c: Coordinator) -> dict:
    # (queued is not written: it is every state's queued threads, read back from order)
    return {"merged": _result_to_json(c.merged),
            "order": [[list(k), list(v)] for k, v in c.order.items()],
            "pending": sorted(list(p) for p in c.pending),
            "handed": [[list(p), list(i), list(o)] for p, i, o in c.handed]}


def _coordinator_from_json(d: dict) -> Coordinator:
    order = {_freeze(k): [int(t) for t in v] for k, v in d["order"]}
    return Coordinator(_result_from_json(d["merged"]),
                       queued={state + (t,) for state, ts in order.items() for t in ts},
                       order=order,
                       pending={_freeze(p) for p in d["pending"]},
                       handed=[(_freeze(p), _freeze(i), _freeze(o)) for p, i, o in d["handed"]])


def _round_key(scenario: Scenario, bound: Optional[int]) -> str:
    plan = sorted(list(p) for p in scenario.inject)
    return json.dumps({"plan": plan, "bound": bound}, sort_keys=True)


# --- the file -----------------------------------------------------------------------------------
class Checkpoint:
    """The checkpoint of one exploration (see the module docstring)."""

    def __init__(self, path: str, ident: dict):
        self.path = path
        self.ident = ident
        self.rounds: dict[str, dict] = {}            # round key -> result (JSON)
        self.current: Optional[tuple[str, dict]] = None   # round key, coordinator (JSON)

    @classmethod
    def open(cls, path: str, ident: dict, threads: int) -> "Checkpoint":
        """The checkpoint at *path* (CheckpointError if it is not one, or belongs to another
        search, or names a thread the scenario's *threads* do not have), or a new one if
        there is no file yet."""
        cp = cls(path, ident)
        if not os.path.exists(path):
            return cp
        try:
            with open(path, "rb") as f:
                doc = json.loads(f.read().decode("utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise CheckpointError(f"--checkpoint {path}: not a readable checkpoint "
                                  f"({type(e).__name__}: {e})") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise CheckpointError(f"--checkpoint {path}: not an unmapcheck checkpoint "
                                  f"(no \"format\": \"{FORMAT}\")")
        if doc.get("version") != VERSION:
            raise CheckpointError(f"--checkpoint {path}: checkpoint version "
                                  f"{doc.get('version')!r}, this unmapcheck reads {VERSION}")
        theirs = doc.get("search")
        if theirs != ident:
            diff = sorted(k for k in ident if not isinstance(theirs, dict) or
                          theirs.get(k) != ident[k])
            raise CheckpointError(f"--checkpoint {path}: a checkpoint of another search "
                                  f"(differs in: {', '.join(diff) or 'its fields'}); give "
                                  f"another file to start this one")
        try:
            cp.rounds = {str(k): v for k, v in doc["rounds"].items()}
            for v in cp.rounds.values():
                _result_from_json(v)
            cur = doc.get("current")
            if cur is not None:
                st = _coordinator_from_json(cur["state"])
                for prefix in [*st.order, *st.queued, *st.pending,
                               *(u[0] for u in st.handed)]:
                    bad = [t for t in prefix if not isinstance(t, int) or
                           not 0 <= t < threads]
                    if bad:
                        raise ValueError(f"thread {bad[0]!r} in a schedule: the scenario "
                                         f"has {threads} threads")
                cp.current = (str(cur["round"]), cur["state"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"--checkpoint {path}: malformed checkpoint "
                                  f"({type(e).__name__}: {e})") from None
        return cp

    def save(self) -> None:
        from .trace import write_atomic
        doc = {"format": FORMAT, "version": VERSION, "search": self.ident,
               "rounds": self.rounds,
               "current": None if self.current is None else
               {"round": self.current[0], "state": self.current[1]}}
        write_atomic(self.path, json.dumps(doc) + "\n")

    def rounds_runner(self, run: Callable) -> Callable[[Scenario, Optional[int]], Result]:
        """*run* (explore_parallel with its backend: scenario, bound, resume=, on_state=)
        as a round of iterative_context_bounding that is taken from the checkpoint when it
        finished before, resumed when it was running, and saved as it goes."""
        def round_(scenario: Scenario, bound: Optional[int]) -> Result:
            key = _round_key(scenario, bound)
            if key in self.rounds:
                return _result_from_json(self.rounds[key])
            resume = None
            if self.current is not None and self.current[0] == key:
                resume = _coordinator_from_json(self.current[1])

            def on_state(st: Coordinator) -> None:
                self.current = (key, _coordinator_to_json(st))
                self.save()
            res = run(scenario, bound, resume=resume, on_state=on_state,
                      state_every=SAVE_EVERY)
            if res.stats.complete:
                self.rounds[key] = _result_to_json(res)
                self.current = None
                self.save()
            return res
        return round_
