"""LOST_WRITE.cow judges the stores a COW copy missed by what the copy holds: the last
store to each byte, and only when the copy's byte differs (a store of the value already
there loses nothing). The explorer's side (a real wp_page_copy racing a stale translation)
is tests/checker/test_checker_catches.py."""

from __future__ import annotations

from unmapcheck.impl import System
from unmapcheck.spec.check import violations
from unmapcheck.spec.view import ConcreteView

BASE = 0x7f0000000000


def _judge(stores, copy_bytes):
    s = System()
    p = s.spawn()
    dst = s.machine.zone.alloc_page("anon")
    dst.data = dict(copy_bytes)
    ev = {"mm": p.mm, "addr": BASE, "src": 5, "dst": dst.pfn, "stores": stores}
    return [f for f in violations(ConcreteView(s.machine), "cow_copy", ev)
            if f.name == "LOST_WRITE.cow"]


def test_a_store_the_copy_does_not_hold_is_lost():
    found = _judge([(1, 8, 0x42)], {8: 0x17})
    assert len(found) == 1
    assert "CPU1 stored 0x42 at 0x7f0000000008" in found[0].message
    assert "has 0x17 there" in found[0].message


def test_a_store_of_the_value_the_copy_holds_loses_nothing():
    assert _judge([(1, 8, 0x42)], {8: 0x42}) == []


def test_only_the_last_store_to_a_byte_is_judged():
    # 0x41 was overwritten by 0x42 anyway; the copy holding 0x42 misses nothing
    assert _judge([(1, 8, 0x41), (1, 8, 0x42)], {8: 0x42}) == []
    assert len(_judge([(1, 8, 0x42), (1, 8, 0x41)], {8: 0x42})) == 1


def test_no_store_after_the_copy_is_no_violation():
    assert _judge([], {}) == []
