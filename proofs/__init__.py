"""Proof obligations: the symbolic (z3) obligations and the interleaving scenarios.

``proofs/scenarios/*.toml`` are the interleaving scenarios (data); ``symbolic.py`` lists the
z3 obligations. ``unmapcheck prove`` runs both.
"""

from pathlib import Path

SCENARIO_DIR = Path(__file__).parent / "scenarios"


def scenario_paths() -> list[Path]:
    return sorted(SCENARIO_DIR.glob("*.toml"))
