"""Threads that share a CPU run their ops one at a time (checker/setup.py _OnCpu).

The explorer once interleaved two threads of one CPU at any step: `unmapcheck hunt` found an
I1.freed_table "violation" on the correct kernel where one thread ran on CPU0 in the
middle of another's switch_mm_irqs_off (IRQs off) and the first then went on with the
second's mm loaded, which the kernel cannot do."""

from __future__ import annotations

from unmapcheck.checker.explore import iterative_context_bounding
from unmapcheck.checker.scenario import parse

TWO_EXITS_ON_CPU0 = """
[scenario]
name = "two-exits-on-cpu0"
cpus = 2
arch = "x86"
[[file]]
name = "f1"
size = 0x1000
[[process]]
name = "p"
[[process]]
name = "q"
[[process.mapping]]
addr = 0x7f0000800000
pages = 1
prot = "rw"
shared = true
file = "f1"
data = { 0 = 0xfc }
[[thread]]
name = "T0"
cpu = 0
process = "p"
program = [{ op = "exit" }]
[[thread]]
name = "T2"
cpu = 0
process = "q"
program = [{ op = "exit" }]
[expect]
never = true
"""


def _ops_on_cpu0_never_overlap(text: str) -> tuple:
    """Explore *text* without a bound; check that no step of one thread falls inside
    another thread's op on the shared CPU. Returns (result, executions checked)."""
    seen = [0]

    def check(search, ex) -> None:
        seen[0] += 1
        inside = None                      # the thread holding CPU0 for an op
        for e in ex.events:
            if e.label == "schedule() in (CPU0)":
                assert inside is None, [x.label for x in ex.events]
                inside = e.tid
            elif inside is not None:
                assert e.tid == inside, [(x.tid, x.label) for x in ex.events]
            if e.label == "schedule() out (CPU0)":
                inside = None
    res = iterative_context_bounding(parse(text, "<t>"), None, on_execution=check)
    return res, seen[0]


def test_two_exits_on_one_cpu_are_not_a_false_alarm():
    res, n = _ops_on_cpu0_never_overlap(TWO_EXITS_ON_CPU0)
    assert not res.counterexamples, res.counterexamples
    assert n >= 2                                    # both orders of the two exits


def test_an_op_that_gets_a_signal_gives_its_cpu_back():
    text = TWO_EXITS_ON_CPU0.replace(
        'program = [{ op = "exit" }]\n[[thread]]\nname = "T2"',
        'program = [{ op = "load", addr = 0x1000 }, { op = "exit" }]\n[[thread]]\nname = "T2"')
    assert '"load"' in text
    res, n = _ops_on_cpu0_never_overlap(text)
    assert not res.counterexamples and n >= 2


def test_without_the_rule_the_false_alarm_comes_back(monkeypatch):
    """The rule is what removes it: with threads of one CPU interleaved anywhere again,
    the same scenario reports the I1 the hunt found."""
    from unmapcheck.checker import setup
    monkeypatch.setattr(setup._OnCpu, "__enter__", lambda self: None)
    res = iterative_context_bounding(parse(TWO_EXITS_ON_CPU0, "<t>"), None)
    assert "I1" in res.counterexamples
