"""Small random scenarios for the soundness comparison of DPOR with brute force.

Each scenario is built as TOML text and parsed with the real loader, so the format is
exercised too. One process, one or two mappings of one to three pages (anonymous or a shared
regular file), populated on one CPU or not, two threads with one or two operations each
(loads, stores, MADV_DONTNEED, munmap, mprotect), sometimes a writeback actor, and a random
set of fix toggles switched off so that violations are reachable as well as outcomes.
"""

from __future__ import annotations

import random

from unmapcheck.checker.scenario import Scenario, parse

BASE = 0x7F0000000000
FIXES = ["99baac21e458", "7a30df49f63a", "1cf35d47712d", "5df397dec7c4"]


def _op(rng: random.Random, pages: int, heavy: bool) -> str:
    page = rng.randrange(pages)
    addr = BASE + page * 0x1000
    kinds = ["load", "store"] + (["madvise", "munmap", "mprotect"] if heavy else [])
    k = rng.choice(kinds)
    if k == "load":
        return f'{{ op = "load", addr = {addr:#x} }}'
    if k == "store":
        return f'{{ op = "store", addr = {addr:#x}, value = {rng.randrange(1, 255)} }}'
    npages = rng.randint(1, pages - page)
    length = npages * 0x1000
    if k == "madvise":
        return f'{{ op = "madvise", addr = {addr:#x}, len = {length:#x}, advice = "MADV_DONTNEED" }}'
    if k == "munmap":
        return f'{{ op = "munmap", addr = {addr:#x}, len = {length:#x} }}'
    prot = rng.choice(["r", "rw"])
    return f'{{ op = "mprotect", addr = {addr:#x}, len = {length:#x}, prot = "{prot}" }}'


def generate(seed: int, heavy_ops: int = 1, light: bool = False) -> Scenario:
    """A scenario with at most *heavy_ops* system calls in total (they are long). A *light*
    scenario has populated mappings and only loads and stores (TLB hits and walks, no page
    faults, no system calls), so that all its interleavings can be enumerated."""
    rng = random.Random(seed)
    if light:
        heavy_ops = 0
    pages = rng.randint(1, 3)
    shared_file = rng.random() < 0.3 and not light
    arch = rng.choice(["x86", "arm64"])
    off = sorted(f for f in FIXES if rng.random() < 0.3)
    lines = [
        "[scenario]", f'name = "gen-{seed}"', "cpus = 2", f'arch = "{arch}"',
        f"fixes_off = {off!r}".replace("'", '"'), "",
    ]
    if shared_file:
        lines += ["[[file]]", 'name = "f"', f"size = {pages * 4096}", "shmem = false", ""]
    populate = "write" if light else rng.choice(["none", "read", "write", "write"])
    lines += ["[[process]]", 'name = "p"', "[[process.mapping]]", f"addr = {BASE:#x}",
              f"pages = {pages}", 'prot = "rw"', f'populate = "{populate}"',
              f"populate_cpu = {rng.randrange(2)}"]
    if shared_file:
        lines += ["shared = true", 'file = "f"']
    lines.append("")
    heavy_left = heavy_ops
    for t in range(2):
        ops = []
        for _ in range(rng.randint(1, 2)):
            heavy = heavy_left > 0 and rng.random() < 0.5
            op = _op(rng, pages, heavy)
            if any(k in op for k in ("madvise", "munmap", "mprotect")):
                heavy_left -= 1
            ops.append(op)
        lines += ["[[thread]]", f'name = "T{t}"', 'process = "p"', f"cpu = {t}",
                  "program = [" + ", ".join(ops) + "]", ""]
    if shared_file and rng.random() < 0.5:
        lines += ["[[thread]]", 'name = "wb"', 'actor = "writeback"', "cpu = 1", 'file = "f"',
                  "index = 0", ""]
    lines += ["[bounds]", "steps = 2000", "", "[expect]", "never = true", ""]
    return parse("\n".join(lines), f"<generated {seed}>")
