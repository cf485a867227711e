"""checker/scenario.schema.json: a JSON Schema of the scenario format (docs/scenario-format.md)
that agrees with the loader (checker/scenario.py) on the corpus, on some malformed inputs, and
on which keys each table accepts."""

from __future__ import annotations

import ast
import dataclasses
import importlib.resources
import json
import tomllib
from pathlib import Path

import jsonschema
import pytest

from unmapcheck.checker import scenario as S
from unmapcheck.checker.scenario import ScenarioError, parse
from unmapcheck.impl.machine import Tunables

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "checker" / "scenario.schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
VALIDATOR = jsonschema.Draft202012Validator(SCHEMA)
CORPUS = sorted((ROOT / "proofs" / "scenarios").glob("*.toml"))
DEFS = SCHEMA["$defs"]

GOOD = """
[scenario]
name = "s"
cpus = 2

[[file]]
name = "f"
size = 8192

[[process]]
name = "p"
[[process.mapping]]
addr = 0x7f0000000000
pages = 1
prot = "rw"
populate = "write"
mlock = false

[[thread]]
name = "T0"
process = "p"
program = [
  { op = "load", addr = 0x7f0000000000 },
  { op = "madvise", addr = 0x7f0000000000, len = 0x1000, advice = "MADV_DONTNEED" },
  { op = "mmap", addr = 0x7f0000100000, len = 0x1000, prot = "PROT_READ|PROT_WRITE", flags = "MAP_SHARED|MAP_FIXED", file = "f" },
]

[[thread]]
name = "wb"
actor = "writeback"
file = "f"
index = 1

[bounds]
preemptions = 2

[expect]
never = true
"""


def _valid(text: str) -> bool:
    return VALIDATOR.is_valid(tomllib.loads(text))


def test_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_is_shipped_in_the_package():
    res = importlib.resources.files("unmapcheck.checker") / "scenario.schema.json"
    assert res.is_file()
    assert json.loads(res.read_text()) == SCHEMA


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_validates(path):
    S.load(path)                                    # the loader accepts it ...
    errors = [e.message for e in VALIDATOR.iter_errors(tomllib.loads(path.read_text()))]
    assert errors == []                             # ... and so does the schema


def test_corpus_is_not_empty():
    assert len(CORPUS) >= 10


def test_good_example_is_accepted_by_both():
    parse(GOOD)
    assert _valid(GOOD)


BAD = {
    "unknown top-level key": ("[bounds]", "colour = 1\n[bounds]"),
    "unknown key in [scenario]": ('cpus = 2', 'cpus = 2\ncolour = "red"'),
    "unknown key in a mapping": ('prot = "rw"', 'prot = "rw"\nhuge = true'),
    "unknown key in an op": ('{ op = "load", addr = 0x7f0000000000 }',
                             '{ op = "load", addr = 0x7f0000000000, len = 1 }'),
    "unknown key in an actor": ("index = 1", "index = 1\nprocess = \"p\""),
    "unknown key in [bounds]": ("preemptions = 2", "preemptions = 2\ndepth = 3"),
    "unknown key in [expect]": ("never = true", "never = true\nalways = true"),
    "cpus is a float": ("cpus = 2", "cpus = 2.5"),
    "cpus out of range": ("cpus = 2", "cpus = 9"),
    "name is an integer": ('name = "s"', "name = 5"),
    "pages is a boolean": ("pages = 1", "pages = true"),
    "bad populate value": ('populate = "write"', 'populate = "yes"'),
    "mlock is a string": ("mlock = false", 'mlock = "false"'),
    "unknown op": ('op = "load"', 'op = "loadd"'),
    "unknown advice": ('"MADV_DONTNEED"', '"MADV_DONTNEDE"'),
    "bad prot": ('prot = "PROT_READ|PROT_WRITE"', 'prot = "PROT_RAED"'),
    "store value over 255": ('{ op = "load", addr = 0x7f0000000000 }',
                             '{ op = "store", addr = 0x7f0000000000, value = 256 }'),
    "never is a string": ("never = true", 'never = "true"'),
    "never and sometimes": ("never = true", 'never = true\nsometimes = ["I1"]'),
    "unknown invariant": ("never = true", 'sometimes = ["I9"]'),
    "unknown actor": ('actor = "writeback"', 'actor = "kswapd"'),
    "unknown fix": ("cpus = 2", 'cpus = 2\nfixes_off = ["deadbeef00"]'),
    "steps out of range": ("preemptions = 2", "steps = 0"),
    "no [expect]": ("[expect]\nnever = true", ""),
    "user thread without process": ('name = "T0"\nprocess = "p"', 'name = "T0"'),
}


@pytest.mark.parametrize("old,new", BAD.values(), ids=list(BAD))
def test_refused_by_loader_and_schema(old, new):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    with pytest.raises(ScenarioError):
        parse(text)
    assert not _valid(text)


# --- every key the loader accepts appears in the schema --------------------------------------
# The tables whose ``where`` is a variable: (function, variable) -> table.
_WHERE_VARS = {("file_specs", "w"): "file", ("process_specs", "w"): "process",
               ("expectations", "ww"): "expect.without"}


def _literal_key_sets() -> dict[str, set[str]]:
    """The literal key sets of the ``_only(...)`` and ``_table(...)`` calls of
    checker/scenario.py, by the table the call checks (its ``where`` argument): {"scenario
    file": {...}, "scenario": {...}, "file": {...}, ...}."""
    tree = ast.parse(Path(S.__file__).read_text())
    out: dict[str, set[str]] = {}
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef):
            continue
        for node in ast.walk(func):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("_only", "_table") and len(node.args) >= 4):
                continue
            where, allowed = node.args[1], node.args[3]
            if isinstance(allowed, ast.BinOp):           # {...} | set(QUANTIFIERS)
                keys = set(ast.literal_eval(allowed.left)) | set(S.QUANTIFIERS)
            elif isinstance(allowed, ast.Set):
                keys = set(ast.literal_eval(allowed))
            else:
                continue                    # a name (_MAPPING_FIELDS ...): tested below
            if isinstance(where, ast.Constant):
                out[where.value] = keys
            elif isinstance(where, ast.Name) and (func.name, where.id) in _WHERE_VARS:
                out[_WHERE_VARS[func.name, where.id]] = keys
    return out


def _props(defn: dict) -> set[str]:
    return set(defn["properties"])


def test_literal_key_sets_were_found():
    sets = _literal_key_sets()
    assert {"scenario file", "scenario", "file", "process", "bounds", "expect",
            "expect.without"} <= set(sets)


@pytest.mark.parametrize("where,schema_def", [
    ("scenario file", None), ("scenario", "scenario"), ("file", "file"),
    ("process", "process"), ("bounds", "bounds"), ("expect", "expect"),
    ("expect.without", "without"),
])
def test_table_keys_match(where, schema_def):
    keys = _literal_key_sets()[where]
    defn = SCHEMA if schema_def is None else DEFS[schema_def]
    assert _props(defn) == keys
    assert defn["additionalProperties"] is False


def test_mapping_keys_match():
    assert _props(DEFS["mapping"]) == S._MAPPING_FIELDS
    assert DEFS["mapping"]["additionalProperties"] is False


def test_tunable_keys_match():
    assert _props(DEFS["tunables"]) == {f.name for f in dataclasses.fields(Tunables)}
    assert DEFS["tunables"]["additionalProperties"] is False


@pytest.mark.parametrize("actor", [None, *S.ACTORS])
def test_thread_keys_match(actor):
    defn = DEFS[f"thread_{actor or 'user'}"]
    assert _props(defn) == S._THREAD_FIELDS[actor]
    assert defn["additionalProperties"] is False


def test_thread_actors_match():
    assert DEFS["thread"]["properties"]["actor"]["enum"] == list(S.ACTORS)
    assert set(S._THREAD_FIELDS) == {None, *S.ACTORS}


@pytest.mark.parametrize("op", list(S._OP_FIELDS))
def test_op_keys_match(op):
    defn = DEFS[f"op_{op}"]
    assert _props(defn) == S._OP_FIELDS[op] | {"op"}
    assert defn["properties"]["op"] == {"const": op, "description": defn["properties"]["op"]
                                        ["description"]}
    assert set(defn["required"]) == {"op"} | (S._OP_FIELDS[op] -
                                              S._OP_OPTIONAL.get(op, frozenset()))
    assert defn["additionalProperties"] is False


def test_op_names_match():
    assert DEFS["op"]["properties"]["op"]["enum"] == list(S._OP_FIELDS)
    assert list(S._OP_FIELDS) == [*S.SYSCALL_OPS, *S.USER_OPS]


def test_enums_match_the_loader():
    from unmapcheck.impl.cpu import ARCHES
    from unmapcheck.impl.fixes import ERAS
    from unmapcheck.spec.invariants import GROUPS
    assert DEFS["scenario"]["properties"]["arch"]["enum"] == list(ARCHES)
    assert DEFS["scenario"]["properties"]["era"]["enum"] == list(ERAS)
    assert DEFS["mapping"]["properties"]["populate"]["enum"] == list(S.POPULATE)
    assert set(DEFS["expect"]["properties"]["sometimes"]["items"]["enum"]) == \
        set(GROUPS) | {"DEADLOCK", "BUG", "LOCK"}


@pytest.mark.parametrize("value,ok", [
    ('"rw"', True), ('"r-x"', True), ('"none"', True), ('"---"', True), ("3", True),
    ('"PROT_READ|PROT_WRITE"', True), ('"PROT_READ | PROT_EXEC"', True),
    ('"rwz"', False), ('"READ"', False), ("-1", False), ("true", False),
])
def test_prot_forms(value, ok):
    text = GOOD.replace('prot = "rw"', f"prot = {value}\npopulate_cpu = 0", 1) \
        .replace('populate = "write"', 'populate = "none"')
    loader_ok = True
    try:
        parse(text)
    except ScenarioError:
        loader_ok = False
    assert loader_ok == ok
    assert _valid(text) == ok


@pytest.mark.parametrize("value,ok", [
    ('"MAP_SHARED|MAP_FIXED"', True), ('"shared|fixed"', True), ('"Private | Fixed"', True),
    ("17", True), ('"MAP_SHAREDD"', False), ('""', False), ("1.5", False),
])
def test_flags_forms(value, ok):
    text = GOOD.replace('flags = "MAP_SHARED|MAP_FIXED"', f"flags = {value}", 1)
    loader_ok = True
    try:
        parse(text)
    except ScenarioError:
        loader_ok = False
    assert loader_ok == ok
    assert _valid(text) == ok


@pytest.mark.parametrize("fix,ok", [
    ("99baac21e458", True), ("99baac2", True), ("99BAAC21E4", True),
    ("99baac", False), ("99baac21e459", False),
])
def test_fix_prefixes(fix, ok):
    text = GOOD.replace("cpus = 2", f'cpus = 2\nfixes_off = ["{fix}"]', 1)
    loader_ok = True
    try:
        parse(text)
    except ScenarioError:
        loader_ok = False
    assert loader_ok == ok
    assert _valid(text) == ok
