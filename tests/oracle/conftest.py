"""Fixtures shared by the oracle tests."""

from __future__ import annotations

import pytest

from unmapcheck.checker.oracle import real as R


@pytest.fixture(scope="session")
def runner():
    """The real-kernel runner (a persistent worker forking a fresh child per sequence).
    Skipped, with the reason, where the real kernel cannot be used (not Linux x86-64, no
    /proc/self/smaps, no C compiler for the fault probe)."""
    try:
        r = R.RealRunner()
    except R.OracleUnavailable as e:
        pytest.skip(str(e))
    yield r
    r.close()
