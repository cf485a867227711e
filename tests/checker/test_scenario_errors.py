"""A malformed scenario gets one line naming the file, the line and the field."""

from __future__ import annotations

import pytest

from unmapcheck.checker.scenario import ScenarioError, load, parse

GOOD = """
[scenario]
name = "s"
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
program = [ { op = "load", addr = 0x7f0000000000 } ]

[expect]
never = true
"""


def test_the_good_scenario_parses():
    sc = parse(GOOD, "good.toml")
    assert sc.name == "s" and sc.threads[0].program[0].op == "load"


@pytest.mark.parametrize("old,new,where", [
    ('cpus = 2', 'cpus = "two"', "scenario.cpus"),
    ('cpus = 2', 'cpus = 0', "scenario.cpus"),
    ('prot = "rw"', 'prot = "rwz"', "process[0].mapping[0].prot"),
    ('addr = 0x7f0000000000\npages', 'addr = 0x7f0000000001\npages', "process[0].mapping[0].addr"),
    ('op = "load"', 'op = "lod"', "thread[0].program[0].op"),
    ('process = "p"', 'process = "q"', "thread[0].process"),
    ('never = true', 'never = true\nsometimes = ["I1"]', "expect"),
    ('never = true', 'sometimes = ["I9"]', "expect.sometimes"),
    ('name = "s"', 'name = "s"\nfixes_off = ["deadbeef"]', "scenario.fixes_off[0]"),
    ('name = "s"', 'name = "s"\ncolour = 1', "scenario"),
    ('[expect]', '[bounds]\npreemptions = -1\n[expect]', "bounds.preemptions"),
])
def test_errors_name_file_line_and_field(old, new, where):
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    with pytest.raises(ScenarioError) as e:
        parse(text, "bad.toml")
    msg = str(e.value)
    assert msg.startswith("bad.toml"), msg
    assert where in msg, msg
    assert "\n" not in msg


def test_line_numbers_point_at_the_field():
    text = GOOD.replace('cpus = 2', 'cpus = "two"')
    with pytest.raises(ScenarioError) as e:
        parse(text, "bad.toml")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l.startswith("cpus"))
    assert str(e.value).startswith(f"bad.toml:{line}:")


def test_not_toml_and_unreadable(tmp_path):
    with pytest.raises(ScenarioError, match="not valid TOML"):
        parse("[scenario\nname=", "x.toml")
    with pytest.raises(ScenarioError, match="cannot read"):
        load(tmp_path / "missing.toml")


def test_a_fix_of_another_era_needs_that_era():
    text = GOOD.replace('name = "s"', 'name = "s"\nfixes_off = ["27ae357fa82b"]')
    with pytest.raises(ScenarioError, match='era = "5.x"'):
        parse(text, "bad.toml")


def test_scenario_files_are_data_not_code(tmp_path):
    """A scenario is TOML: nothing in it is evaluated (a Python expression stays a string and
    is rejected where a number is expected)."""
    text = GOOD.replace('pages = 1', 'pages = "__import__(\'os\').getpid()"')
    with pytest.raises(ScenarioError, match="pages"):
        parse(text, "bad.toml")
