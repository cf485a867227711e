"""Invariants and the abstract specification, encoded in z3."""
