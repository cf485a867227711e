"""Litmus conditions over outcomes: parsing, evaluation, canonical text, errors, judging."""

from __future__ import annotations

import errno

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unmapcheck.checker.litmus import (
    Condition,
    ConditionError,
    OutcomeExpectation,
    format_outcome,
    format_result,
    parse_condition,
)

FAST = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])


def holds(text: str, outcome: dict) -> bool:
    return parse_condition(text).evaluate(outcome)


# --------------------------------------------------------------------------------------------
# Atoms

@pytest.mark.parametrize("op, result, expected", [
    ("==", 5, True), ("==", 4, False),
    ("!=", 5, False), ("!=", 4, True),
    ("<", 4, True), ("<", 5, False),
    ("<=", 5, True), ("<=", 6, False),
    (">", 6, True), (">", 5, False),
    (">=", 5, True), (">=", 4, False),
])
def test_each_comparison(op, result, expected):
    assert holds(f"T0[0] {op} 5", {"T0": [result]}) is expected


@pytest.mark.parametrize("text, expected", [
    ("5 > T0[0]", True),     # means T0[0] < 5
    ("5 < T0[0]", False),
    ("4 <= T0[0]", True),
    ("3 >= T0[0]", False),
    ("4 == T0[0]", True),
    ("4 != T0[0]", False),
])
def test_value_first_atoms_flip_the_comparison(text, expected):
    assert holds(text, {"T0": [4]}) is expected


def test_reference_reads_the_indexed_op_of_the_named_thread():
    outcome = {"T0": [0, 0x41], "writer": [7], "_t-2": [9]}
    assert holds("T0[1] == 0x41", outcome)
    assert not holds("T0[0] == 0x41", outcome)
    assert holds("writer[0] == 7", outcome)
    assert holds("_t-2[0] == 9", outcome)
    assert holds("T0 [ 1 ]==65", outcome)   # spaces inside a reference are fine


@pytest.mark.parametrize("literal, value", [
    ("0", 0), ("65", 65), ("0x41", 65), ("0X41", 65), ("-12", -12), ("-0x10", -16),
    ("0x7f0000000000", 0x7F0000000000), ("007", 7),
])
def test_integer_literals(literal, value):
    assert holds(f"T0[0] == {literal}", {"T0": [value]})
    assert not holds(f"T0[0] == {literal}", {"T0": [value + 1]})


@pytest.mark.parametrize("name", ["ENOMEM", "EINVAL", "EFAULT", "EAGAIN", "EPERM", "EBADF",
                                  "EACCES", "EEXIST", "EWOULDBLOCK", "EOPNOTSUPP"])
def test_errno_names_are_negative_errnos(name):
    number = getattr(errno, name)
    assert holds(f"T0[0] == -{name}", {"T0": [-number]})
    assert not holds(f"T0[0] == -{name}", {"T0": [number]})


def test_enomem_is_minus_12():
    assert holds("T0[0] == -ENOMEM", {"T0": [-12]})
    assert holds("T0[0] < -ENOMEM", {"T0": [-13]})


def test_every_errno_module_name_parses():
    names = [n for n in dir(errno) if n.startswith("E") and isinstance(getattr(errno, n), int)]
    assert names
    for name in names:
        assert holds(f"T0[0] == -{name}", {"T0": [-getattr(errno, name)]}), name


def test_signals_and_none():
    outcome = {"T0": ["SIGSEGV", "SIGBUS", None, 0]}
    assert holds("T0[0] == SIGSEGV", outcome)
    assert not holds("T0[0] == SIGBUS", outcome)
    assert holds("T0[1] == SIGBUS", outcome)
    assert holds("T0[2] == none", outcome)
    assert not holds("T0[3] == none", outcome)       # 0 is not a store's none
    assert not holds("T0[2] == 0", outcome)          # nor is none the integer 0
    assert holds("T0[0] != SIGBUS", outcome)
    assert holds("SIGSEGV == T0[0]", outcome)
    assert holds("none == T0[2]", outcome)


def test_herd_equals_is_equality():
    assert holds("T0[0] = 3", {"T0": [3]})
    assert str(parse_condition("T0[0]=3")) == "T0[0] == 3"


def test_ordering_against_a_non_integer_result_is_false():
    for result in ("SIGSEGV", "SIGBUS", None, "child 3"):
        for op in ("<", "<=", ">", ">="):
            assert not holds(f"T0[0] {op} 0", {"T0": [result]}), (op, result)
            assert not holds(f"0 {op} T0[0]", {"T0": [result]}), (op, result)


def test_other_strings_equal_no_literal():
    outcome = {"T0": ["child 3"]}
    assert not holds("T0[0] == 3", outcome)
    assert not holds("T0[0] == SIGSEGV", outcome)
    assert not holds("T0[0] == none", outcome)
    assert holds("T0[0] != none", outcome)


def test_a_bool_in_an_outcome_is_not_an_integer():
    assert not holds("T0[0] == 1", {"T0": [True]})


@pytest.mark.parametrize("outcome", [{}, {"T1": [0]}, {"T0": []}, {"T0": [0]}])
def test_unfinished_equals_nothing(outcome):
    # T0[1] is missing in all four outcomes
    assert not holds("T0[1] == 0", outcome)
    assert not holds("T0[1] == none", outcome)
    assert not holds("T0[1] == SIGSEGV", outcome)
    assert holds("T0[1] != 0", outcome)
    assert holds("T0[1] != none", outcome)
    for op in ("<", "<=", ">", ">="):
        assert not holds(f"T0[1] {op} 0", outcome)


# --------------------------------------------------------------------------------------------
# Connectives

def test_constants():
    assert holds("true", {})
    assert not holds("false", {})
    assert holds("not false", {})


def test_and_or_not():
    outcome = {"T0": [1, 2]}
    assert holds("T0[0] == 1 and T0[1] == 2", outcome)
    assert not holds("T0[0] == 1 and T0[1] == 3", outcome)
    assert holds("T0[0] == 9 or T0[1] == 2", outcome)
    assert not holds("T0[0] == 9 or T0[1] == 9", outcome)
    assert holds("not T0[0] == 9", outcome)
    assert not holds("not T0[0] == 1", outcome)


@pytest.mark.parametrize("text, expected", [
    ("true or false and false", True),          # or (and) -- and binds tighter
    ("false and false or true", True),
    ("(true or false) and false", False),
    ("not true or true", True),                 # (not true) or true
    ("not (true or true)", False),
    ("not false and false", False),             # (not false) and false
    ("not not true", True),
    ("false or false or true", True),
    ("true and true and false", False),
])
def test_precedence(text, expected):
    assert holds(text, {}) is expected


@pytest.mark.parametrize("herd, plain", [
    ("T0[0] == 1 /\\ T1[0] == 2", "T0[0] == 1 and T1[0] == 2"),
    ("T0[0] == 1 \\/ T1[0] == 2", "T0[0] == 1 or T1[0] == 2"),
    ("~T0[0] == 1", "not T0[0] == 1"),
    ("~(T0[0]==1\\/T1[0]==2)/\\true", "not (T0[0] == 1 or T1[0] == 2) and true"),
    ("T0[0]=1/\\T1[0]=2\\/~false", "T0[0] == 1 and T1[0] == 2 or not false"),
])
def test_herd_spellings(herd, plain):
    assert str(parse_condition(herd)) == plain
    for outcome in ({"T0": [1], "T1": [2]}, {"T0": [1], "T1": [0]}, {"T0": [0], "T1": [2]}):
        assert holds(herd, outcome) == holds(plain, outcome)


def test_refs():
    c = parse_condition("T0[1] == 0x41 and not (T1[0] == -ENOMEM or 3 < T0[1]) or true")
    assert c.refs() == {("T0", 1), ("T1", 0)}
    assert parse_condition("true").refs() == set()


def test_keywords_that_are_not_connectives_may_name_threads():
    assert holds("none[0] == none", {"none": [None]})
    assert holds("true[0] == 1", {"true": [1]})
    assert str(parse_condition("SIGBUS[0]==SIGBUS")) == "SIGBUS[0] == SIGBUS"


# --------------------------------------------------------------------------------------------
# Canonical text

@pytest.mark.parametrize("text, canonical", [
    ("T0[1]==0x41 and not T1[0]==-ENOMEM", "T0[1] == 0x41 and not T1[0] == -ENOMEM"),
    ("T0[0] == 0X4A", "T0[0] == 0x4a"),
    ("T0[0] == -0x10", "T0[0] == -0x10"),
    ("T0[0] == 007", "T0[0] == 7"),
    ("-ENOMEM == T1[0]", "T1[0] == -ENOMEM"),
    ("-EWOULDBLOCK == T1[0]", "T1[0] == -EWOULDBLOCK"),   # the name as written
    ("3 < T0[0]", "T0[0] > 3"),
    ("((T0[0] == 1))", "T0[0] == 1"),
    ("(a[0]==1 or b[0]==2) and c[0]==3", "(a[0] == 1 or b[0] == 2) and c[0] == 3"),
    ("a[0]==1 or (b[0]==2 and c[0]==3)", "a[0] == 1 or b[0] == 2 and c[0] == 3"),
    # explicit grouping of the same connective is kept, so str() re-parses to the same tree
    ("(a[0]==1 and b[0]==2) and c[0]==3", "(a[0] == 1 and b[0] == 2) and c[0] == 3"),
    ("a[0]==1 or (b[0]==2 or c[0]==3)", "a[0] == 1 or (b[0] == 2 or c[0] == 3)"),
    ("not (a[0] == 1 and b[0] == 2)", "not (a[0] == 1 and b[0] == 2)"),
    ("(not a[0] == 1) and b[0] == 2", "not a[0] == 1 and b[0] == 2"),
    ("T0[0]==SIGSEGV\\/T0[0]==none", "T0[0] == SIGSEGV or T0[0] == none"),
])
def test_canonical_form(text, canonical):
    c = parse_condition(text)
    assert str(c) == canonical
    assert c.text == text
    assert str(parse_condition(str(c))) == canonical


def test_conditions_compare_by_tree():
    assert parse_condition("T0[0]==1/\\true") == parse_condition("T0[0] == 1 and true")
    assert parse_condition("3 > T0[0]") == parse_condition("T0[0] < 3")
    assert parse_condition("T0[0]==1") != parse_condition("T0[0]==2")
    assert len({parse_condition("T0[0]==1"), parse_condition(" T0[0] = 1 ")}) == 1
    assert isinstance(parse_condition("true"), Condition)


# --------------------------------------------------------------------------------------------
# Errors

@pytest.mark.parametrize("text, column, words", [
    ("", 1, "expected a condition"),
    ("   ", 4, "expected a condition"),
    ("T0[1] == == 1", 10, "expected a value (an integer, -ENAME, SIGSEGV, SIGBUS or none), "
                          "got '=='"),
    ("T0[1] ==", 9, "got end of text"),
    ("T0[0] == -ENOMEN", 10, "unknown errno name 'ENOMEN' (did you mean -ENOMEM?)"),
    ("T0[0] == -EXYZZY", 10, "unknown errno name 'EXYZZY'"),
    ("T0[0] == ENOMEM", 10, "minus sign"),
    ("(T0[0] == 1", 12, "expected ')'"),
    ("((T0[0] == 1)", 14, "expected ')'"),
    ("T0[0] == 1)", 11, "unbalanced ')'"),
    (")", 1, "expected a condition"),
    ("T0[0] == 1 T1[0] == 2", 12, "expected 'and', 'or' or end of text, got 'T1'"),
    ("T0[0] == 1 and", 15, "expected a condition"),
    ("T0[0] == 1 or or", 15, "got 'or'"),
    ("T0[1000001] == 0", 4, "too large"),
    ("T0[-1] == 0", 4, "op index"),
    ("T0[0x1] == 0", 4, "op index"),
    ("T0[] == 0", 4, "op index"),
    ("T0[1 == 0", 6, "expected ']'"),
    ("T0 == 0", 4, "expected '[' after thread name 'T0'"),
    ("T0[0] 0", 7, "expected a comparison"),
    ("T0[0] ! 0", 7, "unexpected character '!'"),
    ("T0[0] == 1 && true", 12, "unexpected character '&'"),
    ("T0[0] == 1 $", 12, "unexpected character '$'"),
    ("T0[0] == 12abc", 10, "malformed number"),
    ("T0[0] == 0x", 10, "hex digits"),
    ("T0[0] == 0xfg", 10, "malformed number"),
    ("T0[0] == -", 10, "after '-'"),
    ("T0[0] < SIGSEGV", 9, "integers only"),
    ("none >= T0[0]", 1, "integers only"),
    ("1 == 2", 6, "expected a reference"),
    ("T0[0] == T1[0]", 10, "expected a value"),
    ("and", 1, "expected a condition"),
    ("not", 4, "expected a condition"),
    ("T0[0] == 1 / true", 12, "unexpected character '/'"),
    ("true false", 6, "expected 'and', 'or' or end of text"),
    ("é", 1, "unexpected character"),
])
def test_errors_name_the_column(text, column, words):
    with pytest.raises(ConditionError) as info:
        parse_condition(text)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"column {column}: "), message
    assert words in message, message


def test_condition_error_is_a_value_error():
    assert issubclass(ConditionError, ValueError)


def test_multi_line_text_names_line_and_column():
    with pytest.raises(ConditionError, match=r"^line 2, column 9: expected a value"):
        parse_condition("T0[0] == 1 and\nT1[0] = =")


def test_index_limit_is_inclusive():
    assert holds("T0[1000000] != 0", {})
    with pytest.raises(ConditionError, match="column 4: op index 1000001 is too large"):
        parse_condition("T0[1000001] != 0")


def test_text_length_limit():
    atom = "T0[0] == 1"
    ok = " or ".join([atom] * 292).ljust(4096)      # 4096 characters exactly
    assert len(ok) == 4096
    assert len(parse_condition(ok).node.children) == 292
    with pytest.raises(ConditionError, match="column 4097: .*longer than 4096"):
        parse_condition(ok + " ")
    with pytest.raises(ConditionError, match="longer than 4096"):
        parse_condition("(" * 100_000)


def test_nesting_limit_of_64():
    assert holds("(" * 64 + "true" + ")" * 64, {})
    assert not holds("not " * 63 + "true", {})
    assert holds("~" * 64 + "true", {})
    assert holds("not (" * 32 + "true" + ")" * 32, {})
    for deep in ("(" * 65 + "true" + ")" * 65, "not " * 65 + "true", "~" * 65 + "true",
                 "not (" * 33 + "true" + ")" * 33, "(" * 2000):
        with pytest.raises(ConditionError, match=r"column \d+: nesting deeper than 64"):
            parse_condition(deep)


def test_long_flat_chains_are_not_nesting():
    text = " and ".join(["true"] * 400)
    assert holds(text, {})


def test_non_string_input():
    for bad in (None, 3, b"T0[0] == 1", ["true"]):
        with pytest.raises(ConditionError, match="must be a string"):
            parse_condition(bad)


# --------------------------------------------------------------------------------------------
# Fuzz: any text parses or raises ConditionError, never anything else

PIECES = list("T0[]1x=!<>-() \n~/\\&andortuefslNOMEGVIB_") + [
    "and ", " or ", "not ", "none", "SIGSEGV", "-ENOMEM", "0x41", "T1[0]", " == ", "true",
    "false", "/\\", "\\/", "T0[1]", "<=", "!="]
CONDITIONISH = st.lists(st.sampled_from(PIECES), max_size=30).map("".join)


def _parse_or_error(text: str) -> None:
    try:
        c = parse_condition(text)
    except ConditionError as e:
        message = str(e)
        assert message and "\n" not in message
        return
    assert isinstance(c, Condition)
    # whatever parsed has a canonical form that parses to the same tree
    assert parse_condition(str(c)) == c
    c.evaluate({"T0": [0, 0x41], "T1": [-12]})


@FAST
@given(st.text())
def test_fuzz_arbitrary_text(text):
    _parse_or_error(text)


@FAST
@given(CONDITIONISH)
def test_fuzz_condition_like_text(text):
    _parse_or_error(text)


# --------------------------------------------------------------------------------------------
# Random conditions against an independent evaluator

THREADS = ["T0", "T1", "writer", "_t-2"]
ERRNOS = ["ENOMEM", "EINVAL", "EFAULT", "EAGAIN"]
FLIP = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


@st.composite
def literals(draw):
    """(python value, spelling) of a literal."""
    kind = draw(st.sampled_from(["dec", "hex", "errno", "signal", "none"]))
    if kind == "dec":
        v = draw(st.integers(-14, 70))
        return v, str(v)
    if kind == "hex":
        v = draw(st.integers(-16, 0x50))
        return v, ("-" if v < 0 else "") + draw(st.sampled_from(["0x", "0X"])) + f"{abs(v):x}"
    if kind == "errno":
        name = draw(st.sampled_from(ERRNOS))
        return -getattr(errno, name), f"-{name}"
    if kind == "signal":
        s = draw(st.sampled_from(["SIGSEGV", "SIGBUS"]))
        return s, s
    return None, "none"


@st.composite
def atoms(draw):
    value, spelling = draw(literals())
    ops = ["==", "!="] + (["<", "<=", ">", ">="] if isinstance(value, int) else [])
    return ("atom", draw(st.sampled_from(THREADS)), draw(st.integers(0, 3)),
            draw(st.sampled_from(ops)), value, spelling, draw(st.booleans()))


trees = st.recursive(
    st.one_of(atoms(), st.booleans().map(lambda b: ("const", b))),
    lambda kids: st.one_of(
        kids.map(lambda k: ("not", k)),
        st.tuples(st.sampled_from(["and", "or"]), st.lists(kids, min_size=2, max_size=3)),
    ),
    max_leaves=8,
)

results = st.one_of(st.integers(-14, 70), st.sampled_from([0x41, 0x10000, -11, -22]),
                    st.sampled_from(["SIGSEGV", "SIGBUS", "child 3"]), st.none())
outcomes = st.dictionaries(st.sampled_from(THREADS), st.lists(results, max_size=4))


def render(tree, draw) -> str:
    """Fully parenthesised text, with random spellings and spacing."""
    sp = draw(st.sampled_from(["", " ", "  "]))
    tag = tree[0]
    if tag == "const":
        return "true" if tree[1] else "false"
    if tag == "atom":
        _, thread, index, op, _, spelling, flipped = tree
        op_text = "=" if op == "==" and draw(st.booleans()) else op
        ref = f"{thread}[{index}]"
        if flipped:
            return f"{spelling}{sp} {FLIP[op_text] if op_text != '=' else '='} {ref}"
        return f"{ref}{sp}{op_text} {spelling}"
    if tag == "not":
        word = draw(st.sampled_from(["not ", "~", "~ "]))
        return f"{word}({render(tree[1], draw)})"
    word = {"and": [" and ", "/\\"], "or": [" or ", "\\/"]}[tag]
    return draw(st.sampled_from(word)).join(f"({render(k, draw)}){sp}" for k in tree[1])


def oracle(tree, outcome) -> bool:
    tag = tree[0]
    if tag == "const":
        return tree[1]
    if tag == "not":
        return not oracle(tree[1], outcome)
    if tag == "and":
        return all(oracle(k, outcome) for k in tree[1])
    if tag == "or":
        return any(oracle(k, outcome) for k in tree[1])
    _, thread, index, op, lit, _, _ = tree
    ops = outcome.get(thread, [])
    if index >= len(ops):
        return op == "!="
    r = ops[index]
    same = type(r) is type(lit) and r == lit
    if op == "==":
        return same
    if op == "!=":
        return not same
    if not (type(r) is int and type(lit) is int):
        return False
    return {"<": r < lit, "<=": r <= lit, ">": r > lit, ">=": r >= lit}[op]


def tree_refs(tree) -> set:
    if tree[0] == "atom":
        return {(tree[1], tree[2])}
    if tree[0] == "const":
        return set()
    if tree[0] == "not":
        return tree_refs(tree[1])
    return set().union(*(tree_refs(k) for k in tree[1]))


@FAST
@given(st.data(), trees, st.lists(outcomes, min_size=1, max_size=6))
def test_random_conditions_match_the_oracle_and_round_trip(data, tree, outs):
    text = render(tree, data.draw)
    c = parse_condition(text)
    again = parse_condition(str(c))
    assert again == c
    assert str(again) == str(c)
    assert c.refs() == tree_refs(tree)
    for outcome in outs:
        expected = oracle(tree, outcome)
        assert c.evaluate(outcome) is expected, (text, str(c), outcome)
        assert again.evaluate(outcome) is expected


@FAST
@given(st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=7),
       st.lists(st.sampled_from(["and", "or"]), min_size=6, max_size=6))
def test_precedence_without_parentheses(operands, connectives):
    """Chains like 'not true and false or true' against not > and > or, computed by hand."""
    words = []
    for i, (negated, value) in enumerate(operands):
        if i:
            words.append(connectives[i - 1])
        words.append(("not " if negated else "") + ("true" if value else "false"))
    # or-separated groups of and-ed terms
    groups, current = [], [operands[0][1] ^ operands[0][0]]
    for i, (negated, value) in enumerate(operands[1:], 1):
        term = value ^ negated
        if connectives[i - 1] == "or":
            groups.append(current)
            current = []
        current.append(term)
    groups.append(current)
    expected = any(all(g) for g in groups)
    text = " ".join(words)
    assert holds(text, {}) is expected
    assert holds(str(parse_condition(text)), {}) is expected


# --------------------------------------------------------------------------------------------
# Formatting

@pytest.mark.parametrize("value, kind, text", [
    (0x41, "load", "0x41"),
    (5, "load", "0x05"),
    (0, "load", "0x00"),
    (255, "load", "0xff"),
    ("SIGSEGV", "load", "SIGSEGV"),
    (-12, "syscall", "-ENOMEM"),
    (-22, None, "-EINVAL"),
    (-11, None, "-EAGAIN"),
    (-95, None, "-EOPNOTSUPP"),
    (-35, None, "-EDEADLK"),
    (-100000, None, "-100000"),
    (0, "syscall", "0"),
    (65, "syscall", "65"),
    (0xFFFF, None, "65535"),
    (0x10000, None, "0x10000"),
    (0x7F0000000000, "syscall", "0x7f0000000000"),
    (None, None, "none"),
    (None, "store", "none"),
    ("child 3", "syscall", "child 3"),
    ("SIGBUS", None, "SIGBUS"),
])
def test_format_result(value, kind, text):
    assert format_result(value, kind) == text
    if kind is None:
        assert format_result(value) == text


def test_format_result_rejects_unknown_kinds():
    with pytest.raises(ValueError, match="unknown result kind"):
        format_result(0, "mmap")


def test_format_outcome():
    outcome = {"T0": [0, 0x41], "T1": [-12]}
    assert format_outcome(outcome, {"T0": ["syscall", "load"], "T1": ["syscall"]}) == \
        "T0: [0, 0x41]  T1: [-ENOMEM]"
    assert format_outcome(outcome) == "T0: [0, 65]  T1: [-ENOMEM]"
    # kinds may cover only some ops and threads
    assert format_outcome({"T0": [0x41, 0x41, None], "T2": []}, {"T0": ["load"]}) == \
        "T0: [0x41, 65, none]  T2: []"
    assert format_outcome({}) == "(no threads)"


# --------------------------------------------------------------------------------------------
# Judging

WITNESS = {"T0": [0, 0x41], "T1": [0]}
OTHER = {"T0": [0, 0x42], "T1": [-12]}


def expect(quantifier: str, text: str) -> OutcomeExpectation:
    return OutcomeExpectation(quantifier, parse_condition(text))


@pytest.mark.parametrize("quantifier, outs, complete, status, words", [
    ("exists", [OTHER, WITNESS], True, "PROVED", "exists T0[1] == 0x41: reached by "
                                                 "T0: [0, 65]  T1: [0]"),
    ("exists", [OTHER, WITNESS], False, "PROVED", "reached by"),
    ("exists", [OTHER, OTHER], True, "FAILED", "no outcome of a complete search (2 outcomes)"),
    ("exists", [OTHER], False, "UNKNOWN", "not reached in the 1 outcome seen"),
    ("exists", [], True, "FAILED", "(0 outcomes)"),
    ("not_exists", [OTHER, WITNESS], True, "FAILED", "~exists T0[1] == 0x41: reached by "
                                                     "T0: [0, 65]  T1: [0]"),
    ("not_exists", [WITNESS], False, "FAILED", "reached by"),
    ("not_exists", [OTHER], True, "PROVED", "no outcome of a complete search (1 outcome)"),
    ("not_exists", [OTHER, OTHER], False, "UNKNOWN", "not reached in the 2 outcomes seen"),
    ("forall", [WITNESS, WITNESS], True, "PROVED", "all 2 outcomes of a complete search"),
    ("forall", [WITNESS], False, "UNKNOWN", "the 1 outcome seen satisfy it, but the search "
                                            "was not complete"),
    ("forall", [WITNESS, OTHER], True, "FAILED", "forall T0[1] == 0x41: violated by "
                                                 "T0: [0, 66]  T1: [-ENOMEM]"),
    ("forall", [OTHER], False, "FAILED", "violated by"),
    ("forall", [], True, "PROVED", "vacuously"),
    ("forall", [], False, "UNKNOWN", "0 outcomes"),
])
def test_judge(quantifier, outs, complete, status, words):
    got_status, detail = expect(quantifier, "T0[1] == 0x41").judge(iter(outs), complete)
    assert got_status == status
    assert words in detail, detail
    assert "\n" not in detail


def test_judge_stops_at_the_first_witness_or_counterexample():
    def stream():
        yield OTHER
        yield WITNESS
        raise AssertionError("read past the deciding outcome")

    assert expect("exists", "T0[1] == 0x41").judge(stream(), False)[0] == "PROVED"
    assert expect("not_exists", "T0[1] == 0x41").judge(stream(), True)[0] == "FAILED"
    assert expect("forall", "T0[1] == 0x42").judge(stream(), True)[0] == "FAILED"


def test_expectation_str_and_bad_quantifier():
    assert str(expect("not_exists", "T0[0]=1/\\T1[0]=2")) == "~exists T0[0] == 1 and T1[0] == 2"
    assert str(expect("forall", "true")) == "forall true"
    with pytest.raises(ConditionError, match="unknown quantifier 'sometimes'"):
        expect("sometimes", "true")
