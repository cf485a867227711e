"""Run every Python code block of README.md and docs/*.md.

A Python block is a fenced block (``` or ~~~, any indentation, so fences inside list items
count) whose info string starts with python, py or python3. Other fenced blocks (toml, json,
sh, ...) and indented code blocks (the README's shell commands) are not run. Each block runs
in a fresh namespace, with the current directory a tmp_path, compiled under the name
"FILE:LINE" (LINE: the opening fence) so a traceback names the doc and the block.

Opting out: a block whose first line is

    # doctest: skip <reason>

is reported as skipped with that reason; a marker without a reason fails. Use it only for a
block that truly cannot run here (say why), never to hide a broken example.
"""

import linecache
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PY_LANGS = {"python", "py", "python3"}
FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
SKIP = re.compile(r"^\s*#\s*doctest:\s*skip\b[\s:,.\-\u2014]*(?P<reason>.*)$")


def python_blocks(text):
    """[(line of the opening fence, source)] for each fenced Python block of a Markdown text.

    A fence closes only on a line of the same character, at least as long, and nothing else
    (CommonMark), so a ```python inside a ````markdown block is content, not a block. The
    opening fence's indentation is removed from the block's lines.
    """
    blocks, block = [], None  # block: (indent, fence, is_python, line, body)
    for n, raw in enumerate(text.splitlines(), 1):
        if block is None:
            m = FENCE.match(raw)
            if m and not (m["fence"][0] == "`" and "`" in m["info"]):
                words = m["info"].split()
                lang = words[0].lower() if words else ""
                block = (len(m["indent"]), m["fence"], lang in PY_LANGS, n, [])
            continue
        indent, fence, is_python, start, body = block
        s = raw.strip()
        if len(s) >= len(fence) and set(s) == {fence[0]}:
            if is_python:
                blocks.append((start, "\n".join(body) + "\n"))
            block = None
            continue
        lead = len(raw) - len(raw.lstrip(" "))
        body.append(raw[min(indent, lead):])
    if block is not None and block[2]:  # unclosed: runs to the end of the document
        blocks.append((block[3], "\n".join(block[4]) + "\n"))
    return blocks


def _cases():
    for path in DOCS:
        name = path.relative_to(ROOT).as_posix()
        for i, (line, src) in enumerate(python_blocks(path.read_text(encoding="utf-8")), 1):
            yield pytest.param(name, line, src, id=f"{name}:block{i}-line{line}")


@pytest.mark.parametrize("name, line, src", list(_cases()))
def test_doc_block_runs(name, line, src, tmp_path, monkeypatch):
    first = src.splitlines()[0] if src.strip() else ""
    m = SKIP.match(first)
    if m:
        if not m["reason"].strip():
            pytest.fail(f"{name}:{line}: '# doctest: skip' needs a reason")
        pytest.skip(f"{name}:{line}: {m['reason'].strip()}")
    monkeypatch.chdir(tmp_path)
    filename = f"{name}:{line}"
    linecache.cache[filename] = (len(src), None, src.splitlines(True), filename)  # traceback shows the source
    ns = {"__name__": "__main__"}
    exec(compile(src, filename, "exec"), ns)


def test_readme_has_python_blocks():
    assert python_blocks((ROOT / "README.md").read_text(encoding="utf-8"))


def test_extractor():
    text = "\n".join([
        "# Title",                    # 1
        "```toml",                    # 2
        "x = 1",                      # 3
        "```",                        # 4
        "```python",                  # 5
        "a = 1",                      # 6
        "```",                        # 7
        "    python3 -m pytest -q",   # 8  indented code: shell, not run
        "```json",                    # 9
        '{"b": 2}',                   # 10
        "```",                        # 11
        "1. a list item:",            # 12
        "",                           # 13
        "   ```py",                   # 14 indented fence
        "   if a:",                   # 15
        "       b = 2",               # 16
        "   ```",                     # 17
        "````markdown",               # 18 nested: the inner block is content
        "```python",                  # 19
        "not run",                    # 20
        "```",                        # 21
        "````",                       # 22
        "```sh",                      # 23
        "echo hi",                    # 24
        "```",                        # 25
        "~~~python3 extra words",     # 26
        "c = 3",                      # 27
        "~~~",                        # 28
    ])
    assert python_blocks(text) == [
        (5, "a = 1\n"),
        (14, "if a:\n    b = 2\n"),
        (26, "c = 3\n"),
    ]
    assert python_blocks("```sh\necho\n```\n```toml\n[x]\n```\n```json\n{}\n```\n") == []
