"""The two interpretations of the invariant language: concrete Python and z3.

An invariant (spec/invariants.py) is written once, as a function of a *state view* and of a
*logic*. The view answers questions about a state (its frames, PTEs, TLB entries, VMAs,
counters); the logic supplies the connectives and quantifiers. Evaluated with
:data:`CONCRETE` over a view of a live model state, the invariant is a Python bool, fast
enough to check at every step of an exploration. Evaluated with :data:`Z3` over a symbolic
view (spec/symbolic.py), the same function builds the z3 formula the proofs use.

Quantifiers range over the view's finite domains: a concrete view enumerates what exists (the
non-none PTEs, the TLB entries present); a symbolic view enumerates its bounded slots, each
with a validity term. Invariants are written guarded ("for every x: x exists implies P(x)"),
so ranging over the existing elements and ranging over all slots agree.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable


class ConcreteLogic:
    name = "concrete"

    @staticmethod
    def And(*xs: Any) -> bool:
        return all(xs)

    @staticmethod
    def Or(*xs: Any) -> bool:
        return any(xs)

    @staticmethod
    def Not(x: Any) -> bool:
        return not x

    @staticmethod
    def Implies(a: Any, b: Any) -> bool:
        return (not a) or bool(b)

    @staticmethod
    def If(c: Any, a: Any, b: Any) -> Any:
        return a if c else b

    @staticmethod
    def forall(domain: Iterable, body: Callable[[Any], Any]) -> bool:
        for x in domain:
            if not body(x):
                return False
        return True

    @staticmethod
    def exists(domain: Iterable, body: Callable[[Any], Any]) -> bool:
        for x in domain:
            if body(x):
                return True
        return False

    @staticmethod
    def count(domain: Iterable, body: Callable[[Any], Any]) -> int:
        return sum(1 for x in domain if body(x))

    @staticmethod
    def witness(domain: Iterable, body: Callable[[Any], Any]) -> Any:
        """The first element for which *body* is false (for reporting), or None."""
        for x in domain:
            if not body(x):
                return x
        return None


class Z3Logic:
    name = "z3"

    def __init__(self) -> None:
        import z3
        self.z3 = z3

    def And(self, *xs: Any):
        return self.z3.And(*[self._b(x) for x in xs]) if xs else self.z3.BoolVal(True)

    def Or(self, *xs: Any):
        return self.z3.Or(*[self._b(x) for x in xs]) if xs else self.z3.BoolVal(False)

    def Not(self, x: Any):
        return self.z3.Not(self._b(x))

    def Implies(self, a: Any, b: Any):
        return self.z3.Implies(self._b(a), self._b(b))

    def If(self, c: Any, a: Any, b: Any):
        return self.z3.If(self._b(c), a, b)

    # A symbolic domain is a list of bounded *slots*; a slot that may or may not exist carries
    # its existence as ``guard`` (a tuple's guard is the conjunction of its components'). The
    # quantifiers range over the existing elements only: forall is guard => body, exists and
    # count are guard /\ body. Concrete domains hold existing elements only, so both agree.
    def guard(self, x: Any):
        if isinstance(x, tuple):
            gs = [g for g in (self.guard(c) for c in x) if g is not None]
            if not gs:
                return None
            return gs[0] if len(gs) == 1 else self.z3.And(*gs)
        return getattr(x, "guard", None)

    def _guarded(self, x: Any, body: Callable[[Any], Any], implies: bool):
        g = self.guard(x)
        b = self._b(body(x))
        if g is None:
            return b
        return self.z3.Implies(g, b) if implies else self.z3.And(g, b)

    def forall(self, domain: Iterable, body: Callable[[Any], Any]):
        return self.And(*[self._guarded(x, body, True) for x in domain])

    def exists(self, domain: Iterable, body: Callable[[Any], Any]):
        return self.Or(*[self._guarded(x, body, False) for x in domain])

    def count(self, domain: Iterable, body: Callable[[Any], Any]):
        terms = [self.z3.If(self._guarded(x, body, False), 1, 0) for x in domain]
        return self.z3.Sum(terms) if terms else self.z3.IntVal(0)

    def _b(self, x: Any):
        if isinstance(x, bool):
            return self.z3.BoolVal(x)
        return x


CONCRETE = ConcreteLogic()
_Z3 = None


def z3_logic() -> Z3Logic:
    global _Z3
    if _Z3 is None:
        _Z3 = Z3Logic()
    return _Z3
