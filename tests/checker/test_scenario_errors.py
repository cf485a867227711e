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
    ('{ op = "load", addr = 0x7f0000000000 }',
     '{ op = "mlock", addr = 0x7f0000000000, len = 0x1000, flags = "MLOCK_ONFALT" }',
     "thread[0].program[0].flags"),
    ('{ op = "load", addr = 0x7f0000000000 }',
     '{ op = "mlock", addr = 0x7f0000000000, len = 0x1000, flags = true }',
     "thread[0].program[0].flags"),
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


def test_mlock_flags_make_it_mlock2():
    for flags, want in (("", None), (', flags = "MLOCK_ONFAULT"', 1), (", flags = 2", 2),
                        (', flags = "onfault"', 1)):
        text = GOOD.replace('{ op = "load", addr = 0x7f0000000000 }',
                            '{ op = "mlock", addr = 0x7f0000000000, len = 0x1000' + flags + ' }')
        op = parse(text, "s.toml").threads[0].program[0]
        assert op.op == "mlock" and op.args.get("flags") == want


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


# --- issue 15: every malformed or inconsistent scenario is one line, never a traceback ------
FILE_SCENARIO = """
[scenario]
name = "s"
cpus = 2

[[file]]
name = "f"
size = 8192
shmem = false

[[process]]
name = "p"
oom_victim = true
[[process.mapping]]
addr = 0x7f0000000000
pages = 2
prot = "rw"
shared = true
file = "f"
populate = "write"

[[thread]]
name = "T0"
process = "p"
program = [ { op = "load", addr = 0x7f0000000000 } ]

[[thread]]
name = "T1"
process = "p"
program = [
  { op = "mmap", addr = 0x7f0000100000, len = 0x1000, prot = "rw", flags = "MAP_SHARED|MAP_FIXED", file = "f" },
]

[[thread]]
name = "wb"
actor = "writeback"
file = "f"
index = 1

[[thread]]
name = "reaper"
actor = "oom_reaper"
process = "p"

[[thread]]
name = "mig"
actor = "migrate"
process = "p"
addr = 0x7f0000000000

[expect]
never = true
"""


def _error(text: str, path: str = "bad.toml") -> str:
    """The one-line error *text* gets (from the loader, or from building its initial
    state), checked for the shape every scenario error has."""
    from unmapcheck.checker.runtime import Execution
    with pytest.raises(ScenarioError) as e:
        Execution(parse(text, path)).close()
    msg = str(e.value)
    assert msg.startswith(path + ":") or msg.startswith(path + " ") or \
        msg.startswith(path), msg
    assert "\n" not in msg and "\r" not in msg and msg.isprintable(), repr(msg)
    return msg


def _check(text: str, *needles: str, path: str = "bad.toml") -> str:
    msg = _error(text, path)
    for n in needles:
        assert n in msg, (n, msg)
    return msg


def _edit(base: str, old: str, new: str) -> str:
    assert old in base, old
    return base.replace(old, new, 1)


def test_the_file_scenario_parses_and_runs():
    from unmapcheck.checker.runtime import Execution
    sc = parse(FILE_SCENARIO, "good.toml")
    ex = Execution(sc)
    for _ in range(300):
        if not ex.enabled():
            break
        ex.step(ex.enabled()[0])
    ex.close()
    assert ex.finished()


# --- bytes and syntax ----------------------------------------------------------------------
def test_invalid_utf8_names_the_byte_offset(tmp_path):
    from unmapcheck.checker.scenario import parse_bytes
    data = GOOD.encode().replace(b'name = "s"', b'name = "s\xff"')
    offset = data.index(b"\xff")
    path = tmp_path / "bad.toml"
    path.write_bytes(data)
    for err in (lambda: load(path), lambda: parse_bytes(data, str(path))):
        with pytest.raises(ScenarioError) as e:
            err()
        msg = str(e.value)
        assert msg.startswith(f"{path}:3: not UTF-8: byte 0xff at offset {offset}"), msg
        assert "\n" not in msg


@pytest.mark.parametrize("depth", [40, 3000])
def test_deep_nesting_is_one_line(depth):
    text = _edit(GOOD, 'cpus = 2', 'cpus = 2\ndescription = ' + "[" * depth + "]" * depth)
    msg = _check(text, "bad.toml", "nested")
    assert len(msg) < 200


def test_a_toml_syntax_error_names_its_line():
    text = _edit(GOOD, "[expect]", "[expect")
    line = next(i for i, l in enumerate(text.splitlines(), 1) if l == "[expect")
    assert _check(text, "not valid TOML").startswith(f"bad.toml:{line}: ")


def test_a_huge_integer_is_one_line():
    _check(_edit(GOOD, "pages = 1", "pages = " + "9" * 5000), "bad.toml")
    _check(_edit(GOOD, "pages = 1", "pages = 0x" + "f" * 5000), "mapping[0].pages",
           "at most")


# --- a table where a list is expected, and the reverse --------------------------------------
@pytest.mark.parametrize("old,new,where", [
    ("never = true", "never = true\nwithout = true", "expect.without"),
    ("never = true", "never = true\nwithout = [true]", "expect.without[0]"),
    ("never = true", "never = true\n[expect.without]\nfixes = []", "expect.without"),
    ("[expect]", "[bounds]\n[bounds.steps]\n[expect]", "bounds.steps"),
    ("[scenario]", "bounds = [1, 2]\n[scenario]", "bounds"),
    ("[scenario]", "bounds = false\n[scenario]", "bounds"),
    ("[scenario]", "tunables = 5\n[scenario]", "tunables"),
    ("[scenario]", "file = \"f\"\n[scenario]", "file"),
    ("[scenario]", "file = [1]\n[scenario]", "file[0]"),
    ("[scenario]", "process = {}\n[scenario]", "process"),
    ("[scenario]", "scenario = 1\n[x]", "scenario"),
    ("[expect]", "[expect]\n[expect.never]", "expect.never"),
    ('prot = "rw"', 'prot = "rw"\ndata = [1]', "process[0].mapping[0].data"),
    ('prot = "rw"', 'prot = "rw"\ndata = { 0 = [1] }', "process[0].mapping[0].data[0]"),
    ('program = [ { op = "load", addr = 0x7f0000000000 } ]', 'program = { op = "load" }',
     "thread[0].program"),
    ('program = [ { op = "load", addr = 0x7f0000000000 } ]', "program = [ 1 ]",
     "thread[0].program[0]"),
    ('program = [ { op = "load", addr = 0x7f0000000000 } ]',
     'program = [ { op = ["load"], addr = 0x7f0000000000 } ]', "thread[0].program[0].op"),
    ('name = "s"', 'name = "s"\nfixes_off = "99baac21e458"', "scenario.fixes_off"),
    ('name = "s"', 'name = "s"\nfixes_off = [[1]]', "scenario.fixes_off[0]"),
    ('never = true', 'sometimes = "I1"', "expect.sometimes"),
    ('never = true', 'sometimes = [["I1"]]', "expect.sometimes"),
    ('name = "s"', 'name = "s"\narch = ["x86"]', "scenario.arch"),
    ('name = "s"', 'name = "s"\nera = {}', "scenario.era"),
    ('name = "s"', 'name = "s"\ndescription = 5', "scenario.description"),
    ('process = "p"', 'process = ["p"]', "thread[0].process"),
])
def test_a_wrong_kind_of_value_is_named(old, new, where):
    _check(_edit(GOOD, old, new), where)


THREAD = ('[[thread]]\nname = "T0"\nprocess = "p"\n'
          'program = [ { op = "load", addr = 0x7f0000000000 } ]\n')
MAPPING = '[[process.mapping]]\naddr = 0x7f0000000000\npages = 1\nprot = "rw"\n'


@pytest.mark.parametrize("old,new,where", [
    (THREAD, "", "thread"),                             # (moved to the top: thread = ...)
    (MAPPING, "mapping = 3\n", "process[0].mapping"),
    (MAPPING, "mapping = [[]]\n", "process[0].mapping[0]"),
    (MAPPING, "mapping = { addr = 0 }\n", "process[0].mapping"),
])
def test_a_wrong_kind_of_array_is_named(old, new, where):
    text = _edit(GOOD, old, new)
    if where == "thread":
        text = "thread = true\n" + text
    _check(text, where)


# --- strict booleans -----------------------------------------------------------------------
@pytest.mark.parametrize("old,new,where", [
    ('prot = "rw"', 'prot = "rw"\nmlock = "false"', "process[0].mapping[0].mlock"),
    ('prot = "rw"', 'prot = "rw"\nshared = "no"', "process[0].mapping[0].shared"),
    ('prot = "rw"', 'prot = "rw"\nshared = 0', "process[0].mapping[0].shared"),
    ('name = "p"', 'name = "p"\noom_victim = 1', "process[0].oom_victim"),
    ("never = true", 'never = "true"', "expect.never"),
    ("[[process]]", "[tunables]\ncapable = 1\n[[process]]", "tunables.capable"),
])
def test_booleans_are_booleans(old, new, where):
    msg = _check(_edit(GOOD, old, new), where, "expected true or false")
    key = where.rsplit(".", 1)[-1]
    line = next(i for i, l in enumerate(_edit(GOOD, old, new).splitlines(), 1)
                if l.startswith(f"{key} ="))
    assert msg.startswith(f"bad.toml:{line}: "), msg


def test_a_shmem_flag_that_is_not_a_boolean():
    _check(_edit(FILE_SCENARIO, "shmem = false", 'shmem = "false"'), "file[0].shmem",
           "expected true or false")


# --- names ---------------------------------------------------------------------------------
@pytest.mark.parametrize("old,new,where,needle", [
    ("[[thread]]", '[[process]]\nname = "p"\n[[thread]]', "process[1].name", "second process"),
    ('[[thread]]\nname = "wb"', '[[file]]\nname = "f"\n[[thread]]\nname = "wb"', "file[1].name",
     "second file"),
    ('name = "T1"', 'name = "T0"', "thread[1].name", "second thread"),
    ('name = "mig"', 'name = "T0"', "thread[4].name", "second thread"),
    ('file = "f"\npopulate', 'file = ""\npopulate', "process[0].mapping[0].file",
     "no file named ''"),
    ('[[file]]\nname = "f"', '[[file]]\nname = ""', "file[0].name", "empty"),
    ('name = "T0"', "name = 1", "thread[0].name", "expected a name"),
    ('name = "T0"', 'name = "T\\u0007"', "thread[0].name", "printable"),
    ('name = "T0"', 'name = "T\\n0"', "thread[0].name", "printable"),
    ('name = "T0"', 'name = " T0"', "thread[0].name", "space"),
    ('name = "p"', 'name = "p\\u001b[2J"', "process[0].name", "printable"),
    ('name = "s"', 'name = "' + "s" * 500 + '"', "scenario.name", "at most"),
    ('name = "p"', 'name = true', "process[0].name", "expected a name"),
    ('[[file]]\nname = "f"', '[[file]]\nname = ["f"]', "file[0].name", "expected a name"),
])
def test_names_are_unique_printable_strings(old, new, where, needle):
    _check(_edit(FILE_SCENARIO, old, new), where, needle)


def test_a_default_thread_name_can_collide():
    text = _edit(GOOD, '[[thread]]\nname = "T0"', '[[thread]]\nname = "T1"')
    text = text.replace("[expect]", '[[thread]]\nprocess = "p"\n\n[expect]')
    _check(text, "thread[1].name", "second thread named 'T1' (its default name)")


# --- references ----------------------------------------------------------------------------
@pytest.mark.parametrize("old,new,where,needle", [
    ('flags = "MAP_SHARED|MAP_FIXED", file = "f"', 'flags = "MAP_SHARED|MAP_FIXED", file = "g"',
     "thread[1].program[0].file", "no file named 'g'"),
    ('flags = "MAP_SHARED|MAP_FIXED", file = "f"', 'flags = "MAP_SHARED|MAP_FIXED", file = 3',
     "thread[1].program[0].file", "no file named 3"),
    ('name = "T0"\nprocess = "p"', 'name = "T0"\nprocess = "q"', "thread[0].process",
     "no process named 'q'"),
    ('actor = "migrate"\nprocess = "p"', 'actor = "migrate"\nprocess = "q"', "thread[4].process",
     "no process named 'q'"),
    ('actor = "migrate"\nprocess = "p"', 'actor = "migrate"', "thread[4].process",
     "needs a target process"),
    ('actor = "oom_reaper"\nprocess = "p"', 'actor = "oom_reaper"\nprocess = "q"',
     "thread[3].process", "no process named 'q'"),
    ("oom_victim = true", "oom_victim = false", "thread[3].process",
     "oom_victim = true"),
    ('actor = "writeback"\nfile = "f"', 'actor = "writeback"\nfile = "g"', "thread[2].file",
     "no file named 'g'"),
    ('file = "f"\nindex = 1', 'file = "f"\nindex = 2', "thread[2].index", "at most 1"),
    ('file = "f"\nindex = 1', 'file = "f"\nindex = "one"', "thread[2].index",
     "expected an integer"),
    ('file = "f"\nindex = 1', 'file = "f"\nindex = -1', "thread[2].index", "at least 0"),
    ("addr = 0x7f0000000000\n\n[expect]", 'addr = "x"\n\n[expect]', "thread[4].addr",
     "expected an integer"),
    ("addr = 0x7f0000000000\n\n[expect]", "addr = 0x800000000000\n\n[expect]",
     "thread[4].addr", "at most"),
    ("addr = 0x7f0000000000\n\n[expect]", "\n[expect]", "thread[4].addr", "needs the address"),
    ('name = "mig"', 'name = "mig"\nprogram = []', "thread[4]", "unknown field 'program'"),
    ('name = "T0"\nprocess = "p"', 'name = "T0"\nprocess = "p"\nfile = "f"', "thread[0]",
     "unknown field 'file'"),
    ('name = "wb"', 'name = "wb"\nprocess = "p"', "thread[2]", "unknown field 'process'"),
])
def test_references_are_checked_up_front(old, new, where, needle):
    _check(_edit(FILE_SCENARIO, old, new), where, needle)


def _two_threads(prog0: str, prog1: str, process1: str = "p") -> str:
    return _edit(GOOD, '[expect]', f'[[process]]\nname = "other"\n\n[[thread]]\nname = "T1"\n'
                 f'process = "{process1}"\nprogram = [ {prog1} ]\n\n[expect]').replace(
        'program = [ { op = "load", addr = 0x7f0000000000 } ]', f"program = [ {prog0} ]")


@pytest.mark.parametrize("prog0,prog1,where,needle", [
    ('{ op = "exit" }', '{ op = "exit" }', "thread[1].program[0]", "already exits"),
    ('{ op = "exit" }, { op = "exec" }', "", "thread[0].program[1]", "exec after exit"),
    ('{ op = "exit" }, { op = "load", addr = 0 }', "", "thread[0].program[1]",
     "load after exit"),
    ('{ op = "exit" }', '{ op = "exec" }', "thread[1].program", "no other thread"),
    ('{ op = "load", addr = 0 }', '{ op = "exit" }', "thread[0].program", "no other thread"),
    ('{ op = "load", addr = 0 }', '{ op = "exec" }', "thread[1].program[0]", "de_thread"),
    ('{ op = "exec" }', '{ op = "store", addr = 0, value = 1 }', "thread[0].program[0]",
     "one user thread"),
])
def test_nothing_runs_on_a_process_after_its_exit(prog0, prog1, where, needle):
    _check(_two_threads(prog0, prog1), where, needle)


def test_exits_of_different_processes_are_fine():
    from unmapcheck.checker.runtime import Execution
    ex = Execution(parse(_two_threads('{ op = "exit" }', '{ op = "exit" }', "other"), "x"))
    while ex.enabled():
        ex.step(ex.enabled()[0])
    ex.close()
    assert [t.results for t in ex.threads] == [[0], [0]]


@pytest.mark.parametrize("op,where,needle", [
    ('{ op = "load", addr = -1 }', "thread[0].program[0].addr", "at least 0"),
    ('{ op = "load", addr = 0x10000000000000000 }', "thread[0].program[0].addr", "at most"),
    ('{ op = "load", addr = true }', "thread[0].program[0].addr", "expected an integer"),
    ('{ op = "store", addr = 0, value = 256 }', "thread[0].program[0].value", "at most 255"),
    ('{ op = "munmap", addr = 0, len = 1.5 }', "thread[0].program[0].len", "a float"),
    ('{ op = "mmap", addr = 0, len = 4096, prot = -1, flags = 0 }',
     "thread[0].program[0].prot", "at least 0"),
    ('{ op = "mmap", addr = 0, len = 4096, prot = "rw", flags = -1 }',
     "thread[0].program[0].flags", "at least 0"),
    ('{ op = "mmap", addr = 0, len = 4096, prot = "rw", flags = "MAP_NOPE" }',
     "thread[0].program[0].flags", "unknown MAP value"),
    ('{ op = "madvise", addr = 0, len = 4096, advice = 0x80000000 }',
     "thread[0].program[0].advice", "at most"),
    ('{ op = "madvise", addr = 0, len = 4096, advice = "__class__" }',
     "thread[0].program[0].advice", "unknown MADV value"),
    ('{ addr = 0 }', "thread[0].program[0].op", "missing"),
    ('{ op = "mlockall", flags = "MAP_SHARED" }', "thread[0].program[0].flags",
     "unknown MCL value"),
    ('{ op = "mlockall", flags = 0x80000000 }', "thread[0].program[0].flags", "at most"),
    ('{ op = "mlockall" }', "thread[0].program[0].flags", "needs flags"),
    ('{ op = "munlockall", flags = 1 }', "thread[0].program[0]", "flags"),
])
def test_op_fields_are_typed_and_ranged(op, where, needle):
    _check(_edit(GOOD, '{ op = "load", addr = 0x7f0000000000 }', op), where, needle)


@pytest.mark.parametrize("op,where,needle", [
    ('{ op = "pwrite", offset = 0, value = 1 }', "thread[0].program[0].file", "needs file"),
    ('{ op = "pwrite", file = "nope", offset = 0, value = 1 }', "thread[0].program[0].file",
     "no file named"),
    ('{ op = "pwrite", file = "f", value = 1 }', "thread[0].program[0].offset",
     "needs offset"),
    ('{ op = "pwrite", file = "f", offset = 0, value = 1, len = 0 }',
     "thread[0].program[0].len", "at least 1"),
    ('{ op = "pwrite", file = "f", offset = 0, value = 1, len = 16385 }',
     "thread[0].program[0].len", "at most"),
    ('{ op = "pwrite", file = "f", offset = 0, value = 256 }', "thread[0].program[0].value",
     "at most 255"),
])
def test_pwrite_fields_are_checked(op, where, needle):
    with_file = _edit(GOOD, "[[process]]", '[[file]]\nname = "f"\nsize = 4096\n\n[[process]]')
    _check(_edit(with_file, '{ op = "load", addr = 0x7f0000000000 }', op), where, needle)


def test_pwrite_to_a_regular_file_is_one_line_not_modelled(tmp_path, capsys):
    from unmapcheck.checker.cli import main
    text = _edit(GOOD, "[[process]]", '[[file]]\nname = "f"\nsize = 4096\nshmem = false\n\n'
                 '[[process]]')
    text = _edit(text, '{ op = "load", addr = 0x7f0000000000 }',
                 '{ op = "pwrite", file = "f", offset = 0, value = 1 }')
    path = tmp_path / "w.toml"
    path.write_text(text)
    assert main(["explore", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not modelled" in err and len(err.splitlines()) == 1, err


# --- the initial state: checked up front, or reported as one line ----------------------------
@pytest.mark.parametrize("old,new,where,needle", [
    ("addr = 0x7f0000000000\npages = 2", "addr = 0x800000000000\npages = 2",
     "process[0].mapping[0].addr", "at most"),
    ("addr = 0x7f0000000000\npages = 2", "addr = 0x7ffffffff000\npages = 2",
     "process[0].mapping[0].pages", "TASK_SIZE"),
    ("pages = 2", "pages = 0x800000000", "process[0].mapping[0].pages", "at most"),
    ("pages = 2", "pages = 0", "process[0].mapping[0].pages", "at least 1"),
    ('populate = "write"', 'populate = "write"\ndata = { 2 = 1 }',
     "process[0].mapping[0].data[2]", "outside the mapping"),
    ('populate = "write"', 'populate = "write"\ndata = { 0x7fffffffffffffff = 1 }',
     "process[0].mapping[0].data", "outside the mapping"),
    ('populate = "write"', 'populate = "write"\ndata = { -1 = 1 }',
     "process[0].mapping[0].data", "outside the mapping"),
    ('populate = "write"', 'populate = "write"\ndata = { 0 = 1, "0x0" = 2 }',
     "process[0].mapping[0].data", "twice"),
    ('populate = "write"', 'populate = "write"\ndata = { 0 = 300 }',
     "process[0].mapping[0].data[0]", "at most 255"),
    ("size = 8192", "size = 4096", "process[0].mapping[0].populate", "past its end"),
    ('file = "f"\npopulate = "write"', 'file = "f"\noffset = 4096\npopulate = "write"',
     "process[0].mapping[0].populate", "past its end"),
    ('file = "f"\npopulate = "write"', 'file = "f"\noffset = 100\npopulate = "write"',
     "process[0].mapping[0].offset", "page aligned"),
    ('populate = "write"', 'populate = "none"\ndata = { 1 = 7 }\n',
     "process[0].mapping[0]", ""),
    ('prot = "rw"\nshared', 'prot = "r"\nshared', "process[0].mapping[0].populate",
     "writable"),
    ('prot = "rw"\nshared = true\nfile = "f"\npopulate = "write"',
     'prot = "none"\nshared = true\nfile = "f"\npopulate = "read"',
     "process[0].mapping[0].populate", "readable"),
    ("size = 8192", "size = 0x20000000000", "file[0].size", "at most"),
    ("size = 8192", "size = 8192\ndata = { 2 = 1 }", "file[0].data[2]", "outside the file"),
    ("pages = 2", "pages = 600", "process[0].mapping[0].pages", "at most 512"),
])
def test_the_initial_state_is_checked_up_front(old, new, where, needle):
    text = _edit(FILE_SCENARIO, old, new)
    if not needle:                  # data past EOF of an unpopulated mapping: fine if in file
        from unmapcheck.checker.runtime import Execution
        Execution(parse(text, "ok.toml")).close()
        return
    _check(text, where, needle)


def test_data_past_the_end_of_the_file_is_refused():
    text = _edit(FILE_SCENARIO, 'populate = "write"', 'populate = "none"\ndata = { 1 = 7 }')
    _check(_edit(text, "size = 8192", "size = 4096"), "process[0].mapping[0].data",
           "past its end")


def _maps(*spans) -> str:
    out = ""
    for addr, pages in spans:
        out += f'[[process.mapping]]\naddr = {addr:#x}\npages = {pages}\nprot = "rw"\n'
    return out


def test_overlapping_mappings_are_refused():
    base = 0x7f0000000000
    text = GOOD.replace('[[process.mapping]]\naddr = 0x7f0000000000\npages = 1\nprot = "rw"\n',
                        _maps((base, 2), (base + 0x1000, 1)))
    msg = _check(text, "process[0].mapping[1].addr", "overlaps process[0].mapping[0]")
    assert msg.startswith("bad.toml:13: "), msg         # its addr
    # A forked child inherits its parent's mappings: its own may not overlap them either.
    text = GOOD.replace("[[thread]]", '[[process]]\nname = "c"\nfork_of = "p"\n'
                        + _maps((base, 1)) + "\n[[thread]]", 1)
    _check(text, "process[1].mapping[0].addr", "(inherited)")
    # Adjacent mappings are fine.
    text = GOOD.replace('[[process.mapping]]\naddr = 0x7f0000000000\npages = 1\nprot = "rw"\n',
                        _maps((base, 1), (base + 0x1000, 1)))
    assert len(parse(text).processes[0].mappings) == 2


def test_an_mmap_error_in_setup_names_the_mapping():
    msg = _check(_edit(GOOD, "addr = 0x7f0000000000\npages", "addr = 0\npages"),
                 "process[0].mapping[0]", "cannot be built", "mmap(0x0, 0x1000) returned -1 "
                 "(EPERM)")
    assert msg.startswith("bad.toml:8: "), msg


def test_an_mlock_failure_in_setup_names_the_mapping():
    text = _edit(GOOD, "[[process]]", "[tunables]\nrlimit_memlock = 4096\n\n[[process]]")
    text = _edit(text, "pages = 1", "pages = 2\nmlock = true")
    _check(text, "process[0].mapping[0]", "mlock returned -12 (ENOMEM)")


def test_setup_error_is_a_scenario_error():
    from unmapcheck.checker.setup import SetupError
    assert issubclass(SetupError, ScenarioError)


@pytest.mark.parametrize("exc", ["SigSegv", "SigBus", "ValueError", "KernelBug",
                                 "NotModelled"])
def test_any_failure_while_the_state_is_built_is_one_line(monkeypatch, exc):
    """Whatever a setup access raises (the loader rules out what it can foresee) is reported
    as the scenario's error at the mapping being set up."""
    from unmapcheck.impl import sched, system
    from unmapcheck.impl.system import SigBus, SigSegv
    make = {"SigSegv": lambda: SigSegv(0x7f0000000000), "SigBus": lambda: SigBus(0x7f0000000000),
            "ValueError": lambda: ValueError("bad\nvalue"),
            "KernelBug": lambda: sched.KernelBug("BUG at x"),
            "NotModelled": lambda: sched.NotModelled("that")}[exc]

    def store(self, addr, value, cpu=0):
        raise make()
    monkeypatch.setattr(system.Process, "store", store)
    text = _edit(GOOD, 'prot = "rw"', 'prot = "rw"\npopulate = "write"')
    msg = _check(text, "process[0].mapping[0]: the initial state cannot be built")
    assert msg.startswith("bad.toml:8: "), msg
    assert sched.RT is None


def test_an_op_the_model_leaves_out_is_a_scenario_error_when_reached():
    from unmapcheck.checker.runtime import Execution
    text = _edit(GOOD, '{ op = "load", addr = 0x7f0000000000 }',
                 '{ op = "madvise", addr = 0x7f0000000000, len = 4096, '
                 'advice = 102 }')          # MADV_GUARD_INSTALL
    ex = Execution(parse(text, "bad.toml"))
    with pytest.raises(ScenarioError) as e:
        for _ in range(1000):
            ex.step(ex.enabled()[0])
    ex.close()
    msg = str(e.value)
    assert msg.startswith("bad.toml:") and "thread[0].program[0]" in msg, msg
    assert "MADV_GUARD_INSTALL" in msg and "not modelled" in msg and "\n" not in msg


def test_migrate_after_an_exit_detached_the_mm_finds_no_page():
    from unmapcheck.checker.runtime import Execution
    text = FILE_SCENARIO.replace('program = [ { op = "load", addr = 0x7f0000000000 } ]',
                                 'program = [ { op = "exit" } ]')
    text = text.replace('name = "T1"\nprocess = "p"', 'name = "T1"\nprocess = "q"')
    text = text.replace("[[thread]]", '[[process]]\nname = "q"\n\n[[thread]]', 1)
    ex = Execution(parse(text, "x.toml"))
    for _ in range(3000):
        if not ex.enabled():
            break
        ex.step(ex.enabled()[0])
    ex.close()
    assert ex.threads[4].results == ["no page to migrate"]


# --- bounds and tunables -------------------------------------------------------------------
@pytest.mark.parametrize("bounds,where,needle", [
    ("steps = 1000001", "bounds.steps", "at most 1000000"),
    ("steps = 0", "bounds.steps", "at least 1"),
    ("executions = 1000000001", "bounds.executions", "at most 1000000000"),
    ("preemptions = 65", "bounds.preemptions", "at most 64"),
    ('steps = "many"', "bounds.steps", "expected an integer"),
    ("deadline = 3", "bounds", "unknown field 'deadline'"),
])
def test_bounds_are_ranged(bounds, where, needle):
    _check(_edit(GOOD, "[expect]", f"[bounds]\n{bounds}\n\n[expect]"), where, needle)


@pytest.mark.parametrize("tunables,where,needle", [
    ("fault_around_pages = 3", "tunables.fault_around_pages", "power of two"),
    ("fault_around_pages = 1024", "tunables.fault_around_pages", "at most 512"),
    ("gather_bundle = 0", "tunables.gather_bundle", "at least 1"),
    ("max_map_count = true", "tunables.max_map_count", "expected an integer"),
    ("colour = 1", "tunables.colour", "unknown tunable"),
    ('"a\\nb" = 1', "tunables.'a\\nb'", "unknown tunable"),
])
def test_tunables_are_typed_and_ranged(tunables, where, needle):
    _check(_edit(GOOD, "[[process]]", f"[tunables]\n{tunables}\n\n[[process]]"), where, needle)


def test_valid_tunables_are_accepted():
    text = _edit(GOOD, "[[process]]", "[tunables]\ncapable = true\nfault_around_pages = 1\n"
                 "dac_mmap_min_addr = 0\ngather_bundle = 1\n\n[[process]]")
    sc = parse(text)
    assert sc.tunables == {"capable": True, "fault_around_pages": 1, "dac_mmap_min_addr": 0,
                           "gather_bundle": 1}


@pytest.mark.parametrize("cpus", ["0", "9", "-1", "true"])
def test_cpus_from_one_to_eight(cpus):
    _check(_edit(GOOD, "cpus = 2", f"cpus = {cpus}"), "scenario.cpus")


def test_expectation_variants_are_checked():
    text = _edit(GOOD, "never = true", 'never = true\n\n[[expect.without]]\nfixes = '
                 '["99baac21e458"]\nsometimes = ["I1"]\n\n[[expect.without]]\nfixes = '
                 '["99baac2"]\nsometimes = ["I1"]')
    _check(text, "expect.without[1].fixes", "same fixes")
    text = _edit(GOOD, "name = \"s\"", 'name = "s"\nfixes_off = ["99baac21e458", "99baac2"]')
    _check(text, "scenario.fixes_off[1]", "listed twice")
