"""docs/race-matrix.md shows the race matrix of the corpus as it is."""

from __future__ import annotations

from pathlib import Path

from unmapcheck.proofs.matrix import PATHS, race_pairs, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "race-matrix.md"


def test_the_doc_shows_the_matrix_of_the_corpus():
    text = DOC.read_text(encoding="utf-8")
    shown = text.split("<!-- race-matrix:begin -->\n", 1)[1].split("<!-- race-matrix:end -->")[0]
    assert shown == render(), "docs/race-matrix.md is stale: paste proofs.matrix.render()"


def test_pairs_come_from_different_threads(tmp_path):
    one = tmp_path / "one.toml"
    one.write_text("""
[scenario]
name = "one-thread"
cpus = 2
[[process]]
name = "p"
[[process.mapping]]
addr = 0x7f0000000000
pages = 1
prot = "rw"
[[thread]]
name = "T0"
process = "p"
cpu = 0
program = [ { op = "munmap", addr = 0x7f0000000000, len = 0x1000 }, { op = "mlock", addr = 0x7f0000000000, len = 0x1000 } ]
[[thread]]
name = "T1"
process = "p"
cpu = 1
program = [ { op = "madvise", addr = 0x7f0000000000, len = 0x1000, advice = "MADV_FREE" } ]
[expect]
never = true
""")
    pairs = race_pairs([one])
    # munmap and mlock are one thread's: they do not race each other; each races MADV_FREE
    assert pairs == {("munmap", "MADV_FREE"): ["one-thread"],
                     ("MADV_FREE", "mlock"): ["one-thread"]}
    assert all(a in PATHS and b in PATHS for a, b in pairs)


def test_the_matrix_does_not_depend_on_the_hash_seed():
    """A path the table has no column for (MADV_POPULATE_READ ...) is listed in an order of
    its own; set iteration (PYTHONHASHSEED) must not change the page."""
    import os
    import subprocess
    import sys
    outs = set()
    for seed in ("1", "3", "4"):
        p = subprocess.run([sys.executable, "-c", "from unmapcheck.proofs.matrix import "
                            "render; print(render(), end='')"], capture_output=True,
                           text=True, env=dict(os.environ, PYTHONHASHSEED=seed), timeout=120)
        assert p.returncode == 0, p.stderr
        outs.add(p.stdout)
    assert len(outs) == 1
