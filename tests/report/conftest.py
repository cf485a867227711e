"""Fixtures for the report tests: the synthetic trace of tracekit.py, as a dict and as a file."""

from __future__ import annotations

import json

import pytest

from tracekit import make_trace


@pytest.fixture
def trace_doc() -> dict:
    return make_trace()


@pytest.fixture
def trace_file(tmp_path, trace_doc) -> str:
    p = tmp_path / "t.json"
    p.write_text(json.dumps(trace_doc, indent=1))
    return str(p)
