"""The trace input surface (issue 15): one validator for `show`, `show --html` and `replay`;
what replay refuses; terminal escapes in `show`; atomic, durable writes of traces and reports."""

from __future__ import annotations

import copy
import errno
import json
import os
import re
import stat

import pytest

from unmapcheck.checker import trace as trace_mod
from unmapcheck.checker.cli import main
from unmapcheck.checker.report import render_html, write_html
from unmapcheck.checker.trace import (OutputError, TraceError, escape_controls, load_trace,
                                      render_text, replay, validate, write_atomic)
from unmapcheck.proofs import SCENARIO_DIR

from tracekit import make_trace

S99 = str(SCENARIO_DIR / "99baac21e458-parallel-dontneed.toml")


@pytest.fixture(scope="module")
def real_trace(tmp_path_factory) -> dict:
    """A real counterexample of the corpus (99baac21e458 off), as a document."""
    path = tmp_path_factory.mktemp("real") / "t.json"
    main(["explore", S99, "--without", "99baac21e458", "--trace-out", str(path)])
    return json.loads(path.read_text())


def _write(tmp_path, doc, name="t.json") -> str:
    p = tmp_path / name
    p.write_text(json.dumps(doc))
    return str(p)


def _run(capsys, argv) -> tuple[int, str, str]:
    rc = main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def _one_line_error(rc, err, *needles):
    assert rc == 2, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("unmapcheck: error: "), err
    for n in needles:
        assert n in lines[0], (n, lines[0])


# --- one validator ---------------------------------------------------------------------------
def test_optional_fields_stay_optional(tmp_path, capsys):
    """What older version-1 traces may lack (role, results, preemptions, race, cpu of a step,
    stack, events, syscall, arch, command) is optional for every consumer alike."""
    doc = make_trace()
    for t in doc["threads"]:
        del t["role"], t["program"]
    for s in doc["steps"]:
        for k in ("cpu", "stack", "events", "syscall", "preemption"):
            s.pop(k)
    for k in ("preemptions", "race", "arch", "command", "#meta", "vars"):
        doc.pop(k)
    f = _write(tmp_path, doc)
    rc, out, err = _run(capsys, ["show", f])
    assert rc == 0 and err == "" and "VIOLATED I1.freed_frame after step 13" in out
    rc, out, err = _run(capsys, ["show", f, "--html", str(tmp_path / "r.html")])
    assert rc == 0 and err == ""


def test_validate_normalises(trace_doc):
    doc = copy.deepcopy(trace_doc)
    doc["fixes_off"] = ["99baac2", "99baac21e458"]      # a prefix, as git accepts, and again
    r = validate(doc, "x.json")
    assert r["fixes_off"] == ["99baac21e458"]
    assert r["race"] == sorted(trace_doc["race"]) and r["preemptions"] == 2
    assert [s["lane"] for s in r["steps"]] == trace_doc["schedule"]
    assert r["states"][0]["ptes"]["mm1 0x7f0000000000"] == "pfn 12 rw dirty young"


def test_errors_name_the_file_the_field_and_what_was_expected(tmp_path, capsys, trace_doc):
    doc = copy.deepcopy(trace_doc)
    doc["race"] = 5
    rc, _, err = _run(capsys, ["show", _write(tmp_path, doc, "r.json")])
    _one_line_error(rc, err, f"{tmp_path / 'r.json'}: race: expected a pair of step indices")


def test_a_setup_violation_renders(trace_doc, tmp_path, capsys):
    """A violation found in the initial state (step -1) is a valid trace for every consumer."""
    doc = copy.deepcopy(trace_doc)
    doc["violation"]["step"] = -1
    assert "VIOLATED I1.freed_frame in the initial state:" in render_text(doc)
    html = render_html(doc)
    assert "in the initial state, before any step" in html and '"viol":null' in html


def test_render_text_checks_what_it_is_given(trace_doc):
    doc = copy.deepcopy(trace_doc)
    doc["threads"][0].pop("name")
    with pytest.raises(TraceError, match=r"^cannot show the trace: threads\[0\]\.name: missing"):
        render_text(doc)


# --- terminal escapes ------------------------------------------------------------------------
EVIL = "\x1b]0;pwned\x07\x1b[2J\x9b31m\r\ttab\x7f\u202egnp.exe\x00"


def test_no_control_character_from_a_trace_reaches_the_terminal(trace_doc, tmp_path, capsys):
    doc = copy.deepcopy(trace_doc)
    doc["scenario"]["name"] = f"name{EVIL}"
    doc["scenario"]["path"] = f"path{EVIL}"
    doc["threads"][0]["role"] = f"role{EVIL}"
    doc["command"] = f"unmapcheck explore x{EVIL}"
    doc["violation"]["message"] = f"message{EVIL}"
    doc["violation"]["invariant"] = f"I1.inv{EVIL}"
    st = doc["steps"][3]
    st["function"], st["label"] = f"fn{EVIL}", f"label{EVIL}"
    st["results"] = [f"madvise() = {EVIL}"]
    st["changes"][0][1] = f"key{EVIL}"
    rc, out, err = _run(capsys, ["show", _write(tmp_path, doc)])
    assert rc == 0 and err == ""
    body = out.replace("\n", "")
    assert not re.search("[\x00-\x1f\x7f-\x9f\u202e]", body), repr(body)
    # ... and it stays readable: each one written as an escape
    for shown in ("name\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\x0d\\x09tab\\x7f\\u202egnp.exe\\x00",
                  "message\\x1b]0;pwned", "reproduce: unmapcheck explore x\\x1b",
                  "=> madvise() = \\x1b", "VIOLATED I1.inv\\x1b"):
        assert shown in out, shown


def test_escape_controls_keeps_ordinary_text():
    plain = "zap_pte_range: pfn 12 rw → ü 日本"
    assert escape_controls(plain) == plain
    assert escape_controls("a\nb\x1bc\x85") == "a\\x0ab\\x1bc\\x85"


def test_a_control_character_in_an_error_stays_on_one_line(tmp_path, capsys, trace_doc):
    doc = copy.deepcopy(trace_doc)
    doc["steps"][3]["thread"] = "T\n\x1b[31mX"
    rc, _, err = _run(capsys, ["show", _write(tmp_path, doc)])
    _one_line_error(rc, err, "steps[3].thread")
    assert "\x1b" not in err


# --- replay ----------------------------------------------------------------------------------
def test_replay_of_a_real_trace(real_trace, tmp_path, capsys):
    rc, out, _ = _run(capsys, ["replay", _write(tmp_path, real_trace)])
    assert rc == 1 and "still fails: I1.return" in out


@pytest.mark.parametrize("edit,needle", [
    (lambda d: d["violation"].pop("group"), "violation.group: missing"),
    (lambda d: d["violation"].update(group="I7"), "violation.group: expected an invariant group"),
    (lambda d: d["violation"].clear(), "violation: the trace records no violation"),
    (lambda d: d.update(fixes_off=None), "fixes_off: expected a list of fix commits"),
    (lambda d: d.update(fixes_off=[["99baac21e458"]]), "fixes_off[0]: expected a fix commit"),
    (lambda d: d["schedule"].__setitem__(0, 5), "schedule[0]: expected an integer in 0..1"),
    (lambda d: d["threads"][0].update(role=["x"]), "threads[0].role: expected a string"),
])
def test_replay_refuses_what_show_refuses(real_trace, tmp_path, capsys, edit, needle):
    doc = copy.deepcopy(real_trace)
    edit(doc)
    f = _write(tmp_path, doc)
    rc, out, err = _run(capsys, ["replay", f])
    _one_line_error(rc, err, f"{f}: ", needle)
    assert out == ""


def test_replay_without_a_group_no_longer_says_it_no_longer_fails(real_trace, tmp_path,
                                                                   capsys):
    """The bug of issue 15: the violation reproduces, the group was missing, and replay said
    "no longer fails" with exit 0."""
    doc = copy.deepcopy(real_trace)
    del doc["violation"]["group"]
    rc, out, err = _run(capsys, ["replay", _write(tmp_path, doc)])
    assert rc == 2 and "no longer fails" not in out


@pytest.mark.parametrize("text,needle", [
    ("[scenario\nname = 1", "scenario.text: the embedded scenario: "),
    ("", "scenario.text: the embedded scenario: "),
    ("[scenario]\nname = \"x\"\n" + "a = " + "[" * 5000 + "]" * 5000 + "\n",
     "scenario.text: the embedded scenario"),
])
def test_replay_of_a_broken_embedded_scenario_is_one_line(real_trace, tmp_path, capsys, text,
                                                          needle):
    doc = copy.deepcopy(real_trace)
    doc["scenario"]["text"] = text
    rc, out, err = _run(capsys, ["replay", _write(tmp_path, doc)])
    _one_line_error(rc, err, needle)
    assert "Traceback" not in err


def test_replay_of_a_scenario_that_cannot_be_set_up(real_trace, tmp_path, capsys):
    """A scenario the loader accepts but whose initial state cannot be built: a mapping above
    TASK_SIZE (the loader may learn to refuse it: then it is a parse error, also one line)."""
    doc = copy.deepcopy(real_trace)
    doc["scenario"]["text"] = doc["scenario"]["text"].replace("addr = 0x7f0000000000\n",
                                                              "addr = 0x7fffffffe000\n", 1)
    assert "0x7fffffffe000" in doc["scenario"]["text"]
    rc, out, err = _run(capsys, ["replay", _write(tmp_path, doc)])
    _one_line_error(rc, err, "scenario.text: the embedded scenario")


@pytest.mark.parametrize("exc,needle", [
    ("SetupError", "cannot be set up: SetupError: mmap failed"),
    ("ScenarioError", "cannot be set up: ScenarioError: mmap failed"),
    ("KeyError", "fails while its initial state is built: KeyError: 'mmap failed'"),
    ("ValueError", "fails while its initial state is built: ValueError: mmap failed"),
])
def test_replay_reports_any_setup_failure_in_one_line(real_trace, tmp_path, capsys,
                                                      monkeypatch, exc, needle):
    from unmapcheck.checker.scenario import ScenarioError
    from unmapcheck.checker.setup import SetupError
    cls = {"SetupError": SetupError, "ScenarioError": ScenarioError, "KeyError": KeyError,
           "ValueError": ValueError}[exc]

    def broken(*a, **k):
        raise cls("mmap failed")
    monkeypatch.setattr(trace_mod, "Execution", broken)
    rc, out, err = _run(capsys, ["replay", _write(tmp_path, real_trace)])
    _one_line_error(rc, err, needle)


def test_replay_refuses_threads_that_are_not_the_scenarios(real_trace, tmp_path, capsys):
    doc = copy.deepcopy(real_trace)
    for t in doc["threads"]:
        t["name"] = "X" + t["name"]
    for s in doc["steps"]:
        s["thread"] = "X" + s["thread"]
    rc, out, err = _run(capsys, ["replay", _write(tmp_path, doc)])
    _one_line_error(rc, err, "threads: expected the threads of the embedded scenario (T0, T1)")


def test_replay_counts_a_violation_found_when_the_execution_ends(real_trace, monkeypatch):
    """A violation detected by the final checks (after the last step) is a reproduction."""
    from unmapcheck.checker.runtime import Execution, Violation

    class Late(Execution):
        def close(self):
            super().close()
            self.violations.append(Violation("I1.return", "I1", "late", len(self.events), "T0"))
    monkeypatch.setattr(trace_mod, "Execution", Late)
    doc = copy.deepcopy(real_trace)
    doc["fixes_off"] = []                     # the fix is on: nothing fails during the steps
    res = replay(doc, "t.json")
    assert res.reproduced and res.message == "still fails: I1.return: late"


# --- atomic writes ---------------------------------------------------------------------------
def _no_tmp(d) -> bool:
    return not [n for n in os.listdir(d) if n.startswith(".tmp-")]


def test_write_atomic_writes_fsyncs_and_renames(tmp_path, monkeypatch):
    synced = []
    real_fsync = os.fsync

    def fsync(fd):
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    out = tmp_path / "a.json"
    write_atomic(str(out), "é\n" * 100000)
    assert out.read_text() == "é\n" * 100000
    assert synced == [False, True]            # the file before the rename, the folder after
    assert _no_tmp(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o666 & ~umask


@pytest.mark.parametrize("where", ["write", "fsync", "replace", "open", "close"])
def test_a_full_disk_leaves_no_temporary_file_and_the_old_file(tmp_path, monkeypatch, where):
    out = tmp_path / "a.json"
    out.write_text("old")

    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if where == "close":                  # the error comes at close (NFS), the fd is closed
        real_close = os.close

        def full(fd):
            real_close(fd)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, where, full)
    with pytest.raises(OutputError) as e:
        write_atomic(str(out), "new")
    monkeypatch.undo()
    assert str(e.value) == f"{out}: cannot write: No space left on device"
    assert out.read_text() == "old" and _no_tmp(tmp_path)


def test_an_errno_without_a_message_still_says_why(tmp_path, monkeypatch):
    def full(*a):
        raise OSError(errno.ENOSPC)
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError, match="cannot write: No space left on device$"):
        write_atomic(str(tmp_path / "a"), "x")
    assert _no_tmp(tmp_path)


def test_ctrl_c_during_a_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    def interrupted(*a):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(str(tmp_path / "a.json"), "x")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("target", ["missing-dir/a.json", "."])
def test_an_unusable_path_is_one_line(tmp_path, target):
    with pytest.raises(OutputError) as e:
        write_atomic(str(tmp_path / target), "x")
    assert "\n" not in str(e.value) and ": cannot write: " in str(e.value)
    assert _no_tmp(tmp_path)


def test_directory_fsync_unsupported_is_not_an_error(tmp_path, monkeypatch):
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "Invalid argument")
        real_fsync(fd)
    monkeypatch.setattr(os, "fsync", fsync)
    write_atomic(str(tmp_path / "a"), "x")
    assert (tmp_path / "a").read_text() == "x"


def test_trace_save_and_html_report_use_the_atomic_write(tmp_path, monkeypatch, trace_doc):
    def full(*a):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OutputError):
        write_html(trace_doc, str(tmp_path / "r.html"))
    assert os.listdir(tmp_path) == []


def test_load_trace_reads_what_write_atomic_wrote(tmp_path, trace_doc):
    p = tmp_path / "t.json"
    write_atomic(str(p), json.dumps(trace_doc))
    assert load_trace(str(p)) == trace_doc


@pytest.mark.skipif(not os.path.exists("/dev/zero"), reason="no /dev/zero")
def test_an_endless_file_is_refused_not_read_forever(capsys):
    rc, out, err = _run(capsys, ["show", "/dev/zero"])
    _one_line_error(rc, err, "/dev/zero: not a trace: larger than")
