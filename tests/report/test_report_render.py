"""The HTML report's markup: every step, the violation, the race pair, no network, escaping,
refusals, atomic writes (no browser needed; test_report_browser.py runs it in Chromium)."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import os
import re
from html.parser import HTMLParser

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unmapcheck.checker.report import CSS, JS, render_html, write_html
from unmapcheck.checker.trace import TraceError, load_trace, render_text

from tracekit import HOSTILE, QUIET_STEPS, RACE, VIOLATION_STEP, make_hostile_trace, make_trace

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}


class Node:
    def __init__(self, tag, attrs, parent=None):
        self.tag, self.attrs, self.parent, self.children = tag, dict(attrs), parent, []

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def walk(self):
        yield self
        for c in self.children:
            if isinstance(c, Node):
                yield from c.walk()

    def classes(self) -> set[str]:
        return set((self.attrs.get("class") or "").split())

    def find_all(self, tag=None, cls=None, **attrs):
        return [n for n in self.walk() if (tag is None or n.tag == tag)
                and (cls is None or cls in n.classes())
                and all(n.attrs.get(k) == v for k, v in attrs.items())]


class Tree(HTMLParser):
    """A minimal DOM: enough to ask what the browser would see."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.root = self.cur = Node("#root", [])
        self.all_attrs: list[tuple[str, str, str]] = []
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.all_attrs += [(tag, k, v or "") for k, v in attrs]
        n = Node(tag, attrs, self.cur)
        self.cur.children.append(n)
        if tag not in VOID:
            self.cur = n

    def handle_startendtag(self, tag, attrs):
        self.all_attrs += [(tag, k, v or "") for k, v in attrs]
        self.cur.children.append(Node(tag, attrs, self.cur))

    def handle_endtag(self, tag):
        n = self.cur
        while n is not self.root and n.tag != tag:
            n = n.parent
        if n is not self.root:
            self.cur = n.parent

    def handle_data(self, data):
        self.cur.children.append(data)


@pytest.fixture
def page(trace_doc):
    text = render_html(trace_doc)
    return text, Tree(text)


def row(tree: Tree, i: int) -> Node:
    rows = tree.root.find_all("tr", id=f"s{i}")
    assert len(rows) == 1, f"step {i}: {len(rows)} rows"
    return rows[0]


def test_fixture_is_a_valid_trace(trace_file):
    doc = load_trace(trace_file)
    assert "VIOLATED I1.freed_frame after step 13" in render_text(doc)


def test_every_step_is_a_box_in_its_threads_lane(trace_doc, page):
    _, tree = page
    lanes = [t["name"] for t in trace_doc["threads"]]
    heads = tree.root.find_all("thead")[0].find_all("th", cls="lane")
    assert [h.find_all(cls="tname")[0].text().split()[0] for h in heads] == lanes
    assert "CPU0" in heads[0].text() and "CPU1" in heads[1].text()
    assert len(tree.root.find_all("tr", cls="step")) == len(trace_doc["steps"])
    for i, st in enumerate(trace_doc["steps"]):
        r = row(tree, i)
        assert r.attrs["data-step"] == str(i)
        cells = r.find_all("td")
        assert len(cells) == len(lanes)
        lane = lanes.index(st["thread"])
        boxes = [c for c in cells if c.find_all(cls="box")]
        assert boxes == [cells[lane]], f"step {i} is not in {st['thread']}'s lane"
        box = cells[lane].find_all(cls="box")[0]
        assert box.find_all(cls="fn")[0].text() == st["function"]
        if st["label"] != st["function"]:
            assert box.find_all(cls="op")[0].text() == st["label"]
        assert box.find_all(cls="sys")[0].text() == (st["syscall"] or "user space")
        assert f"cpu{st['cpu']}" in cells[lane].classes()
        # the call chain: in the tooltip and (for the panel) as a list
        if st["stack"]:
            assert box.attrs["title"] == " \u2192 ".join(st["stack"])
            assert [li.text() for li in box.find_all(cls="chain")[0].find_all("li")] == st["stack"]
        for var, key, old, new in st["changes"]:
            assert f"{var} {key}" in box.find_all(cls="chg")[0].text()
        assert ("pre" in r.classes()) == st["preemption"]


def test_header_states_the_violation_scenario_fixes_and_command(trace_doc, page):
    text, tree = page
    head = tree.root.find_all("header")[0]
    v = trace_doc["violation"]
    assert v["invariant"] in head.find_all("h1")[0].text()
    assert "group I1" in head.find_all("h1")[0].text()
    assert head.find_all("p", cls="msg")[0].text() == v["message"]
    assert trace_doc["scenario"]["name"] in head.text()
    assert trace_doc["scenario"]["path"] in head.text()
    fixes = head.find_all("ul", cls="fixes")[0].text()
    assert "99baac21e458" in fixes and "MADV_[FREE|DONTNEED] TLB flush miss" in fixes
    assert tree.root.find_all("pre", id="cmd")[0].text() == trace_doc["command"]
    assert head.find_all("a", href=f"#s{VIOLATION_STEP}")
    assert v["invariant"] in tree.root.find_all("title")[0].text()


def test_violating_step_race_pair_and_quiet_steps_are_marked(page):
    _, tree = page
    a, b = RACE
    for i, other in ((a, b), (b, a)):
        r = row(tree, i)
        assert "race" in r.classes()
        link = r.find_all("a", cls="race")
        assert len(link) == 1 and link[0].attrs["href"] == f"#s{other}"
        assert f"step {other}" in link[0].text()
    assert [int(n.attrs["data-step"]) for n in tree.root.find_all("tr", cls="race")] == RACE
    # the race window: the gutter bar runs from one race step to the other
    bar = [n.parent.attrs["data-step"] for n in tree.root.find_all("th", cls="rw")]
    assert bar == [str(i) for i in range(a, b + 1)]
    viol = tree.root.find_all("tr", cls="viol")
    assert [n.attrs["data-step"] for n in viol] == [str(VIOLATION_STEP)]
    assert "I1.freed_frame violated" in viol[0].find_all(cls="viol")[0].text()
    assert [int(n.attrs["data-step"]) for n in tree.root.find_all("tr", cls="quiet")] \
        == QUIET_STEPS


def test_no_network_and_only_our_own_code(page):
    text, tree = page
    for tag, attr, value in tree.all_attrs:
        if attr in ("src", "href", "action", "srcset", "poster", "data"):
            assert value.startswith("#"), f"<{tag} {attr}={value!r}> leaves the page"
        assert not attr.startswith("on"), f"inline handler <{tag} {attr}>"
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", text, re.I)
    assert "http://" not in text and "https://" not in text
    assert not tree.root.find_all("link") and not tree.root.find_all("img")
    assert not tree.root.find_all("iframe")
    # The CSP forbids everything but the inline style and script, named by their hashes, and
    # those hashes are of the text actually in the page.
    csp = tree.root.find_all("meta", **{"http-equiv": "Content-Security-Policy"})[0]
    policy = csp.attrs["content"]
    assert "default-src 'none'" in policy
    style = tree.root.find_all("style")
    scripts = tree.root.find_all("script")
    assert len(style) == 1 and style[0].text() == CSS
    assert [s.attrs.get("type") for s in scripts] == ["application/json", None]
    assert scripts[1].text() == JS

    def sha(t):
        return "'sha256-" + base64.b64encode(hashlib.sha256(t.encode()).digest()).decode() + "'"
    assert f"style-src {sha(CSS)}" in policy and f"script-src {sha(JS)}" in policy


def test_readable_without_javascript(page):
    text, tree = page
    html_el = tree.root.find_all("html")[0]
    assert html_el.attrs["class"] == "nojs"
    assert tree.root.find_all("noscript")
    # what needs the script is hidden without it; the header and the step list are markup
    assert ".nojs .jsonly{display:none}" in text
    assert "jsonly" in tree.root.find_all("button", id="copy")[0].classes()
    assert "@media print" in text


def test_the_script_gets_the_states(trace_doc, page):
    _, tree = page
    data = json.loads(tree.root.find_all("script", id="trace-data")[0].text())
    assert data["vars"][:3] == ["vmas", "ptes", "tlb"]
    assert data["viol"] == VIOLATION_STEP and data["race"] == RACE
    # replaying the deltas from the initial state gives every recorded state
    cur = {v: dict(data["init"][v]) for v in data["vars"]}
    for i, d in enumerate(data["delta"]):
        for var, key, new in d:
            if new is None:
                del cur[var][key]
            else:
                cur[var][key] = new
        want = {var: dict(m["#map"]) for var, m in trace_doc["states"][i + 1].items()
                if var != "#meta"}
        assert cur == want, f"state after step {i}"
    assert data["changes"] == [s["changes"] for s in trace_doc["steps"]]


def test_hostile_strings_are_escaped():
    doc = make_hostile_trace()
    text = render_html(doc)
    for bad in (HOSTILE, "<img", "<svg", "onmouseover=\"alert",
                "</script><script>alert(6)", "alert(6)</script>"):
        assert bad not in text, bad
    tree = Tree(text)
    # exactly our two script elements, no event handler attributes, no foreign elements
    assert len(tree.root.find_all("script")) == 2
    assert not [a for _, a, _ in tree.all_attrs if a.startswith("on")]
    assert not tree.root.find_all("img") and not tree.root.find_all("svg")
    # ... and the strings are shown as they are, as text
    box = row(tree, 3).find_all(cls="box")[0]
    assert box.find_all(cls="fn")[0].text() == HOSTILE
    assert box.find_all(cls="op")[0].text() == doc["steps"][3]["label"]
    assert HOSTILE in box.attrs["title"]
    assert tree.root.find_all("p", cls="msg")[0].text() == doc["violation"]["message"]
    assert tree.root.find_all("pre", id="cmd")[0].text() == doc["command"]
    assert HOSTILE in tree.root.find_all("title")[0].text()
    # the JSON block round-trips the hostile state value unchanged
    data = json.loads(tree.root.find_all("script", id="trace-data")[0].text())
    assert any("</script><script>alert(6)" in str(c) for c in data["changes"][4])
    # the only links are in-page anchors, whatever the trace says (javascript: path)
    assert all(v.startswith("#") for _, a, v in tree.all_attrs if a == "href")


def test_no_race_no_violation_still_renders():
    doc = make_trace()
    doc["race"] = []
    doc["violation"] = {}
    tree = Tree(render_html(doc))
    assert not tree.root.find_all(cls="race") and not tree.root.find_all("tr", cls="viol")
    assert "records no violation" in tree.root.find_all("h1")[0].text()


def test_deterministic(trace_doc):
    assert render_html(trace_doc) == render_html(copy.deepcopy(trace_doc))


def _set(doc, path, value):
    d = doc
    for k in path[:-1]:
        d = d[k]
    if value is KeyError:
        del d[path[-1]]
    else:
        d[path[-1]] = value


@pytest.mark.parametrize("path,value,needle", [
    (["schema"], "something-else", "not an unmapcheck trace"),
    (["version"], 2, "version 2 is not supported"),
    (["version"], True, "version true is not supported"),
    (["threads"], [], "threads: expected a non-empty list of threads, not []"),
    (["threads", 0, "cpu"], "zero", "threads[0].cpu"),
    (["threads", 1, "name"], "T0", "threads[1].name: expected a name of its own, not 'T0'"),
    (["steps", 2, "index"], 7, "steps[2].index: expected 2, not 7"),
    (["steps", 2, "thread"], "T9",
     "steps[2].thread: expected the name of one of the threads (T0, T1), not 'T9'"),
    (["steps", 2, "thread"], ["T1"], "steps[2].thread: expected a string, not a list of 1"),
    (["steps", 2, "thread"], "T0", "steps[2].thread: expected 'T1' (schedule[2] is 1), not 'T0'"),
    (["steps", 2, "function"], KeyError, "steps[2].function: missing, expected a string"),
    (["steps", 2, "changes"], 5,
     "steps[2].changes: expected a list of [variable, key, old, new], not 5"),
    (["steps", 2, "changes", 0], ["locks", "x"],
     "steps[2].changes[0]: expected [variable, key, old, new], not a list of 2"),
    (["steps", 2, "stack"], "zap_pte_range",
     "steps[2].stack: expected a list of strings, not 'zap_pte_range'"),
    (["steps", 2, "results"], [1], "steps[2].results[0]: expected a string, not 1"),
    (["steps", 2, "preemption"], "yes", "steps[2].preemption: expected true or false"),
    (["steps", 2, "label"], "\ud800", "steps[2].label: expected text, not a string with a "
                                       "lone surrogate (\\ud800)"),
    (["schedule"], [0, 1], "schedule: expected one thread number per step (14), not 2"),
    (["schedule", 0], 2, "schedule[0]: expected an integer in 0..1, not 2"),
    (["schedule", 0], False, "schedule[0]: expected an integer in 0..1, not false"),
    (["preemptions"], 7, "preemptions: expected 2 (the steps marked preemption), not 7"),
    (["fixes_off"], None, "fixes_off: expected a list of fix commits"),
    (["fixes_off"], KeyError, "fixes_off: missing, expected a list of fix commits"),
    (["fixes_off"], [["99baac21e458"]], "fixes_off[0]: expected a fix commit, not a list of 1"),
    (["fixes_off"], ["0123456789ab"], "fixes_off[0]: expected a known fix commit"),
    (["scenario", "text"], KeyError, "scenario.text: missing, expected a string"),
    (["states"], [], "states: expected 15 states for 14 steps"),
    (["states", 3, "ptes"], {"map": []}, "states[3].ptes: expected an ITF map"),
    (["states", 3, "ptes", "#map", 0], ["k"],
     "states[3].ptes[0]: expected a [key, value] pair, not a list of 1"),
    (["violation"], None, "violation: expected an object ({} when none is recorded), not null"),
    (["violation", "step"], 99, "violation.step: expected an integer in -1..13, not 99"),
    (["violation", "message"], KeyError, "violation.message: missing, expected a string"),
    (["violation", "group"], KeyError, "violation.group: missing, expected an invariant group"),
    (["violation", "group"], "I9", "violation.group: expected an invariant group (I1, I2,"),
    (["violation", "group"], "I2", "violation.invariant: expected an invariant of group I2, "
                                   "not 'I1.freed_frame'"),
    (["race"], [1], "race: expected a pair of step indices, or [], not a list of 1"),
    (["race"], 9, "race: expected a pair of step indices, or [], not 9"),
    (["race"], [1, 40], "race[1]: expected an integer in 0..13, not 40"),
    (["race"], [3, 3], "race: expected two different steps, not step 3 twice"),
])
def test_refuses_what_it_cannot_show_with_one_line(trace_doc, path, value, needle):
    _set(trace_doc, path, value)
    with pytest.raises(TraceError) as e:
        render_html(trace_doc)
    msg = str(e.value)
    assert needle in msg and "\n" not in msg and msg.startswith("cannot render the trace: ")


def _paths(x, prefix=()):
    yield prefix
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _paths(v, prefix + (i,))


_DOC = make_trace()
_PATHS = [p for p in _paths(_DOC) if p]
_JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 40) | st.text(max_size=8),
                     lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c,
                                                                         max_size=3),
                     max_leaves=6)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(_PATHS), st.one_of(st.just(KeyError), _JSON)),
                min_size=1, max_size=3))
def test_any_damage_is_rendered_or_refused_never_a_crash(edits):
    doc = copy.deepcopy(_DOC)
    for path, value in edits:
        try:
            _set(doc, list(path), value)
        except (KeyError, IndexError, TypeError):
            pass  # an earlier edit removed or replaced the parent
    try:
        out = render_html(doc)
    except TraceError as e:
        assert "\n" not in str(e)
    else:
        assert out.startswith("<!DOCTYPE html>") and "</html>" in out


def test_write_html_is_atomic_and_keeps_the_old_file_on_refusal(tmp_path, trace_doc):
    out = tmp_path / "r.html"
    write_html(trace_doc, str(out))
    assert out.read_text() == render_html(trace_doc)
    out.write_text("old report")
    bad = copy.deepcopy(trace_doc)
    bad["states"].pop()
    with pytest.raises(TraceError):
        write_html(bad, str(out))
    assert out.read_text() == "old report"
    assert sorted(os.listdir(tmp_path)) == ["r.html"]
