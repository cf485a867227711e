"""64-bit ``unsigned long`` arithmetic that runs on Python ints and on z3 bit-vectors alike.

The kernel's address arithmetic wraps at 2**64 and compares unsigned. The few impl functions
that the proofs run on symbolic inputs (the p*d_addr_end helpers, unmap_single_vma's clipping,
munmap's argument checks, __split_vma's field arithmetic) are written with these helpers, so
that the proof executes the implementation's own code rather than a second copy of its logic.
On ints every helper reduces modulo 2**64 exactly as C does; on z3 ``BitVecRef`` values it
builds the corresponding bit-vector term (z3 is imported only when a symbolic value appears).
The helpers on the walk loops' path (add, sub, band, ult, ite: every p*d_addr_end) first test
for two plain ints, the concrete machine's case, and compute the same expression as the
general path without the symbolic check.
"""

from __future__ import annotations

from typing import Any

MASK64 = (1 << 64) - 1


def is_sym(*xs: Any) -> bool:
    # A plain loop, not any() over a generator: this runs several times for every p*d_addr_end
    # of every walk (bool is an int).
    for x in xs:
        if not isinstance(x, int):
            return True
    return False


def _z3():
    import z3
    return z3


def _bv(x: Any):
    z3 = _z3()
    return x if isinstance(x, z3.BitVecRef) else z3.BitVecVal(x & MASK64, 64)


def add(a: Any, b: Any) -> Any:
    """a + b, wrapping at 2**64."""
    if a.__class__ is int and b.__class__ is int:
        return (a + b) & MASK64
    if is_sym(a, b):
        return _bv(a) + _bv(b)
    return (a + b) & MASK64


def sub(a: Any, b: Any) -> Any:
    """a - b, wrapping at 2**64."""
    if a.__class__ is int and b.__class__ is int:
        return (a - b) & MASK64
    if is_sym(a, b):
        return _bv(a) - _bv(b)
    return (a - b) & MASK64


def band(a: Any, b: Any) -> Any:
    """a & b."""
    if a.__class__ is int and b.__class__ is int:
        return a & b & MASK64
    if is_sym(a, b):
        return _bv(a) & _bv(b)
    return a & b & MASK64


def shr(a: Any, n: int) -> Any:
    """Logical right shift of an unsigned long."""
    if is_sym(a):
        return _z3().LShR(_bv(a), n)
    return (a & MASK64) >> n


def ult(a: Any, b: Any) -> Any:
    """a < b, unsigned."""
    if a.__class__ is int and b.__class__ is int:
        return (a & MASK64) < (b & MASK64)
    if is_sym(a, b):
        return _z3().ULT(_bv(a), _bv(b))
    return (a & MASK64) < (b & MASK64)


def eq(a: Any, b: Any) -> Any:
    if is_sym(a, b):
        return _bv(a) == _bv(b)
    return (a & MASK64) == (b & MASK64)


def ite(cond: Any, a: Any, b: Any) -> Any:
    """C's ``cond ? a : b``."""
    if cond.__class__ is bool and a.__class__ is int and b.__class__ is int:
        return a if cond else b
    if is_sym(cond, a, b):
        z3 = _z3()
        c = cond if isinstance(cond, z3.BoolRef) else z3.BoolVal(bool(cond))
        return z3.If(c, _bv(a), _bv(b))
    return a if cond else b


def lor(a: Any, b: Any) -> Any:
    if is_sym(a, b):
        z3 = _z3()
        return z3.Or(_as_bool(a), _as_bool(b))
    return bool(a) or bool(b)


def land(a: Any, b: Any) -> Any:
    if is_sym(a, b):
        z3 = _z3()
        return z3.And(_as_bool(a), _as_bool(b))
    return bool(a) and bool(b)


def lnot(a: Any) -> Any:
    if is_sym(a):
        return _z3().Not(_as_bool(a))
    return not a


def _as_bool(x: Any):
    z3 = _z3()
    if isinstance(x, z3.BoolRef):
        return x
    if isinstance(x, z3.BitVecRef):
        return x != 0
    return z3.BoolVal(bool(x))


def umax(a: Any, b: Any) -> Any:
    """The kernel's max() on unsigned longs."""
    return ite(ult(a, b), b, a)


def umin(a: Any, b: Any) -> Any:
    return ite(ult(b, a), b, a)
