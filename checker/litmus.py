"""Litmus-style conditions over the outcome of one execution of a scenario.

herd7 litmus tests end with a clause such as ``exists (0:r0=1 /\\ 1:r0=0)`` that is judged
against the final state of every execution. Here the state that matters is what each thread's
program *returned*, op by op, so a condition reads results by thread and op index.

Outcomes
--------
An outcome maps a thread name to the list of results of its program, one per op, in program
order::

    {"T0": [0, 0x41], "T1": [-12]}

A result is an ``int`` (a syscall's return value: 0, an address, a negative errno such as -12;
or the byte a load read, 0..255), the string ``"SIGSEGV"`` or ``"SIGBUS"`` (a load or store
answered with a signal), ``None`` (a store, which returns nothing) or another string (such as
``"child 3"`` for fork). A thread that did not finish has a shorter list.

Conditions
----------
An atom compares one result with one value, in either order::

    T0[1] == 0x41          the second op of T0 returned 0x41 (a load read byte 0x41)
    -ENOMEM == T1[0]       the first op of T1 failed with ENOMEM
    writer[2] != SIGSEGV   the third op of thread "writer" was not answered with SIGSEGV
    T0[0] >= 0x10000       ordering comparisons hold only between two integers
    T1[3] == none          the fourth op of T1 was a store that completed

* A reference is ``THREAD[INDEX]``: a thread name (ASCII letters, digits, ``_`` and ``-``,
  starting with a letter or ``_``) and a 0-based decimal op index (at most 1000000).
* The comparisons are ``==`` (herd7's ``=`` is accepted too), ``!=``, ``<``, ``<=``, ``>``,
  ``>=``.
* A value is an integer (decimal or ``0x`` hex, with an optional leading ``-``), an errno
  name with its minus sign (``-ENOMEM`` is -12: every name of Python's :mod:`errno` module),
  ``SIGSEGV``, ``SIGBUS`` or ``none`` (the result of a store). ``<`` and friends need an
  integer value: ``T0[0] < SIGSEGV`` is rejected when parsed, since it could never hold.
* A result that compares ``<`` with an integer but is a signal, ``none`` or a string is simply
  not less (nor greater): the atom is false.
* A reference to a thread missing from the outcome, or past the end of its list, reads as
  *unfinished*: a result equal to nothing (``==`` false, ``!=`` true, orderings false).

Atoms combine with ``not``, ``and``, ``or`` (or herd7's ``~``, ``/\\``, ``\\/``), parentheses
and the constants ``true`` and ``false``. ``not`` binds tightest, then ``and``, then ``or``::

    T0[1] == 0x41 and not T1[0] == -ENOMEM
    (T0[0] == SIGSEGV \\/ T0[0] == SIGBUS) /\\ ~T1[1] == 0

Words ``and``, ``or`` and ``not`` are reserved and cannot name threads. Text is at most 4096
characters and nests (parentheses and ``not``) at most 64 deep. Every malformed text raises
:class:`ConditionError` with one line naming the column (1-based) and what was expected::

    column 10: expected a value (an integer, -ENAME, SIGSEGV, SIGBUS or none), got '=='

``str(condition)`` is a canonical, re-parseable form: the reference first; ``and``, ``or``
and ``not`` spelt as words; parentheses only where precedence needs them or the text grouped
one connective explicitly; integers in the base they were written in; errnos by name.

Expectations
------------
:class:`OutcomeExpectation` quantifies a condition over the outcomes an exploration reaches:
``exists`` (some outcome satisfies it), ``not_exists`` (herd7's ``~exists``: none does) and
``forall`` (every outcome does). :meth:`OutcomeExpectation.judge` answers PROVED, FAILED or
UNKNOWN; a witness or counterexample settles the question at once, and otherwise only a
complete search can.
"""

from __future__ import annotations

import difflib
import errno
from dataclasses import dataclass
from typing import Iterable, Iterator, Mapping, Optional, Sequence, Union

MAX_TEXT = 4096
MAX_DEPTH = 64
MAX_INDEX = 10**6

QUANTIFIERS = ("exists", "not_exists", "forall")
SIGNALS = ("SIGSEGV", "SIGBUS")
KINDS = ("load", "syscall", "store")


class ConditionError(ValueError):
    """One line saying where a condition is malformed (its column) and what was expected."""


# --------------------------------------------------------------------------------------------
# errno names

def _errno_names() -> dict[str, int]:
    return {name: value for name in dir(errno)
            if name.startswith("E") and isinstance(value := getattr(errno, name), int)}


ERRNO_NUMBERS: dict[str, int] = _errno_names()

# Several numbers have two names; print the one the kernel sources use, not whichever Python's
# errorcode table happened to keep last (it keeps EDEADLOCK and ENOTSUP on Linux).
_PREFERRED_NAMES = ("EAGAIN", "EDEADLK", "EOPNOTSUPP")
ERRNO_NAMES: dict[int, str] = dict(errno.errorcode)
for _name in _PREFERRED_NAMES:
    if _name in ERRNO_NUMBERS:
        ERRNO_NAMES[ERRNO_NUMBERS[_name]] = _name


# --------------------------------------------------------------------------------------------
# Results and their formatting

class _Unfinished:
    """The result of an op its thread never reached: equal to nothing, ordered with nothing."""

    def __repr__(self) -> str:
        return "unfinished"


UNFINISHED = _Unfinished()

Result = Union[int, str, None]


def _is_int(value: object) -> bool:
    # bool is an int subclass; a True in an outcome is a bug elsewhere, not the result 1.
    return isinstance(value, int) and not isinstance(value, bool)


def _format_syscall(value: int) -> str:
    if value < 0 and -value in ERRNO_NAMES:
        return f"-{ERRNO_NAMES[-value]}"
    if value >= 0x10000:          # addresses read better in hex
        return hex(value)
    return str(value)


def format_result(value: object, kind: Optional[str] = None) -> str:
    """How a result reads in traces and outcome listings.

    ``kind`` is what the op was: ``"load"`` prints a byte 0..255 as ``0x41``; ``"syscall"``
    (and the default, None) prints a negative errno as ``-ENOMEM``, values from 0x10000 up in
    hex and other integers in decimal; ``"store"`` results are ``none``. None is ``none``
    whatever the kind, strings (signals, ``child 3``) are printed as they are.
    """
    if kind is not None and kind not in KINDS:
        raise ValueError(f"unknown result kind {kind!r}; expected one of {', '.join(KINDS)}")
    if value is None:
        return "none"
    if isinstance(value, str):
        return value
    if value is UNFINISHED:
        return "unfinished"
    if not _is_int(value):
        return repr(value)
    if kind == "load" and 0 <= value <= 0xFF:
        return f"0x{value:02x}"
    return _format_syscall(value)


def format_outcome(outcome: Mapping[str, Sequence[Result]],
                   kinds: Optional[Mapping[str, Sequence[str]]] = None) -> str:
    """One line listing every thread's results: ``T0: [0, 0x41]  T1: [-ENOMEM]``.

    ``kinds`` gives, per thread and per op, ``"load"``, ``"syscall"`` or ``"store"``; ops it
    does not cover are formatted by :func:`format_result`'s default.
    """
    if not outcome:
        return "(no threads)"
    parts = []
    for thread, results in outcome.items():
        thread_kinds = list((kinds or {}).get(thread, ()))
        shown = [format_result(r, thread_kinds[i] if i < len(thread_kinds) else None)
                 for i, r in enumerate(results)]
        parts.append(f"{thread}: [{', '.join(shown)}]")
    return "  ".join(parts)


# --------------------------------------------------------------------------------------------
# The syntax tree. Nodes are frozen so that two parses of one text compare equal.

@dataclass(frozen=True)
class Value:
    """A literal: ``value`` is what it matches (an int, a signal name or None), ``spelling``
    its canonical text (hex stays hex, errnos keep their name)."""
    value: Result
    spelling: str


@dataclass(frozen=True)
class Atom:
    thread: str
    index: int
    op: str
    value: Value

    def __str__(self) -> str:
        return f"{self.thread}[{self.index}] {self.op} {self.value.spelling}"


@dataclass(frozen=True)
class Const:
    value: bool

    def __str__(self) -> str:
        return "true" if self.value else "false"


@dataclass(frozen=True)
class Not:
    child: "Node"


@dataclass(frozen=True)
class And:
    children: tuple["Node", ...]


@dataclass(frozen=True)
class Or:
    children: tuple["Node", ...]


Node = Union[Atom, Const, Not, And, Or]

# How tightly each node binds when printed; a child that binds less tightly than its parent,
# or is the same n-ary connective (only explicit parentheses make that), is parenthesised so
# that str() re-parses to the same tree.
_BINDING = {Or: 1, And: 2, Not: 3, Atom: 4, Const: 4}


def _render(node: Node) -> str:
    if isinstance(node, (Atom, Const)):
        return str(node)
    if isinstance(node, Not):
        return f"not {_render_child(node.child, node)}"
    word = " and " if isinstance(node, And) else " or "
    return word.join(_render_child(c, node) for c in node.children)


def _render_child(child: Node, parent: Node) -> str:
    text = _render(child)
    weaker = _BINDING[type(child)] < _BINDING[type(parent)]
    same_nary = type(child) is type(parent) and isinstance(child, (And, Or))
    return f"({text})" if weaker or same_nary else text


# --------------------------------------------------------------------------------------------
# Evaluation

_FLIPPED = {"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _equal(result: object, literal: Result) -> bool:
    if result is UNFINISHED:
        return False
    if literal is None:
        return result is None
    if isinstance(literal, str):
        return isinstance(result, str) and result == literal
    return _is_int(result) and result == literal


def _compare(result: object, op: str, literal: Result) -> bool:
    if op == "==":
        return _equal(result, literal)
    if op == "!=":
        return not _equal(result, literal)
    if not (_is_int(result) and _is_int(literal)):
        return False              # signals, none, strings and unfinished ops are unordered
    if op == "<":
        return result < literal
    if op == "<=":
        return result <= literal
    if op == ">":
        return result > literal
    return result >= literal


def _lookup(outcome: Mapping[str, Sequence[object]], thread: str, index: int) -> object:
    results = outcome.get(thread)
    if results is None or index >= len(results):
        return UNFINISHED
    return results[index]


def _evaluate(node: Node, outcome: Mapping[str, Sequence[object]]) -> bool:
    if isinstance(node, Atom):
        return _compare(_lookup(outcome, node.thread, node.index), node.op, node.value.value)
    if isinstance(node, Const):
        return node.value
    if isinstance(node, Not):
        return not _evaluate(node.child, outcome)
    if isinstance(node, And):
        return all(_evaluate(c, outcome) for c in node.children)
    return any(_evaluate(c, outcome) for c in node.children)


def _atoms(node: Node) -> Iterator[Atom]:
    if isinstance(node, Atom):
        yield node
    elif isinstance(node, Not):
        yield from _atoms(node.child)
    elif isinstance(node, (And, Or)):
        for child in node.children:
            yield from _atoms(child)


class Condition:
    """A parsed condition: ``text`` as given, the tree, and a canonical ``str()``."""

    def __init__(self, text: str, node: Node) -> None:
        self.text = text
        self.node = node

    def refs(self) -> set[tuple[str, int]]:
        """Every (thread, op index) the condition reads."""
        return {(a.thread, a.index) for a in _atoms(self.node)}

    def evaluate(self, outcome: Mapping[str, Sequence[object]]) -> bool:
        """Whether *outcome* satisfies the condition (unreached ops read as unfinished)."""
        return _evaluate(self.node, outcome)

    def __str__(self) -> str:
        return _render(self.node)

    def __repr__(self) -> str:
        return f"parse_condition({str(self)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Condition) and self.node == other.node

    def __hash__(self) -> int:
        return hash(self.node)


# --------------------------------------------------------------------------------------------
# Tokenizer

_LETTERS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_DIGITS = frozenset("0123456789")
_HEX_DIGITS = frozenset("0123456789abcdefABCDEF")
_NAME_CHARS = _LETTERS | _DIGITS | {"-"}
_ERRNO_CHARS = _LETTERS | _DIGITS        # no '-' here: "-ENOMEM" ends at the name
_SPACE = frozenset(" \t\r\n")
_OPERATORS = ("==", "!=", "<=", ">=", "<", ">", "=")   # longest first
_PUNCT = {"(": "(", ")": ")", "[": "[", "]": "]", "~": "not", "/\\": "and", "\\/": "or"}
_KEYWORDS = {"and": "and", "or": "or", "not": "not"}


@dataclass(frozen=True)
class _Token:
    kind: str     # name, int, errno, op, and, or, not, ( ) [ ], end
    text: str
    pos: int      # 0-based offset into the text


class _Source:
    """The text and how to name a position in it for an error message."""

    def __init__(self, text: str) -> None:
        self.text = text

    def where(self, pos: int) -> str:
        if "\n" not in self.text:
            return f"column {pos + 1}"
        line = self.text.count("\n", 0, pos) + 1
        column = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return f"line {line}, column {column}"

    def error(self, pos: int, message: str) -> ConditionError:
        return ConditionError(f"{self.where(pos)}: {message}")


def _shown(token: _Token) -> str:
    if token.kind == "end":
        return "end of text"
    text = token.text if len(token.text) <= 30 else token.text[:27] + "..."
    return repr(text)   # repr keeps the message on one line whatever the text holds


def _scan_while(text: str, pos: int, chars: frozenset[str]) -> int:
    while pos < len(text) and text[pos] in chars:
        pos += 1
    return pos


def _scan_number(src: _Source, start: int, pos: int) -> int:
    """The end of the integer literal that begins at *start*, its digits at *pos*."""
    text = src.text
    if text.startswith(("0x", "0X"), pos):
        end = _scan_while(text, pos + 2, _HEX_DIGITS)
        if end == pos + 2:
            raise src.error(start, "expected hex digits after '0x'")
    else:
        end = _scan_while(text, pos, _DIGITS)
    if end < len(text) and text[end] in _NAME_CHARS:
        junk = _scan_while(text, end, _NAME_CHARS)
        raise src.error(start, f"malformed number {text[start:junk]!r}")
    return end


def _tokenize(src: _Source) -> list[_Token]:
    text, pos, tokens = src.text, 0, []
    while True:
        pos = _scan_while(text, pos, _SPACE)
        if pos >= len(text):
            tokens.append(_Token("end", "", pos))
            return tokens
        token = _next_token(src, pos)
        tokens.append(token)
        pos += len(token.text)


def _next_token(src: _Source, pos: int) -> _Token:
    text = src.text
    c = text[pos]
    for spelling, kind in _PUNCT.items():
        if text.startswith(spelling, pos):
            return _Token(kind, spelling, pos)
    for op in _OPERATORS:
        if text.startswith(op, pos):
            return _Token("op", op, pos)
    if c in _LETTERS:
        word = text[pos:_scan_while(text, pos, _NAME_CHARS)]
        return _Token(_KEYWORDS.get(word, "name"), word, pos)
    if c in _DIGITS:
        return _Token("int", text[pos:_scan_number(src, pos, pos)], pos)
    if c == "-":
        nxt = text[pos + 1:pos + 2]
        if nxt and nxt in _DIGITS:
            return _Token("int", text[pos:_scan_number(src, pos, pos + 1)], pos)
        if nxt and nxt in _LETTERS:
            return _Token("errno", text[pos:_scan_while(text, pos + 1, _ERRNO_CHARS)], pos)
        raise src.error(pos, "expected an integer or an errno name (-ENAME) after '-'")
    hints = {"!": " (did you mean '!=' or 'not'?)", "&": " (use 'and' or '/\\')",
             "|": " (use 'or' or '\\/')", "/": " (did you mean '/\\'?)",
             "\\": " (did you mean '\\/'?)"}
    raise src.error(pos, f"unexpected character {c!r}{hints.get(c, '')}")


# --------------------------------------------------------------------------------------------
# Parser: or_expr := and_expr (or and_expr)*;  and_expr := unary (and unary)*;
# unary := not unary | primary;  primary := ( or_expr ) | true | false | atom;
# atom := ref op value | value op ref;  ref := name [ int ].

_EXPECT_VALUE = "a value (an integer, -ENAME, SIGSEGV, SIGBUS or none)"
_EXPECT_CONDITION = ("a condition (a comparison such as T0[1] == 0, true, false, not or '(')")


class _Parser:
    def __init__(self, src: _Source, tokens: list[_Token]) -> None:
        self.src = src
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    # -- helpers
    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.i + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.i += 1
        return token

    def fail(self, expected: str, token: Optional[_Token] = None) -> ConditionError:
        token = token or self.peek()
        return self.src.error(token.pos, f"expected {expected}, got {_shown(token)}")

    def expect(self, kind: str, expected: str) -> _Token:
        if self.peek().kind != kind:
            raise self.fail(expected)
        return self.take()

    def enter(self, token: _Token) -> None:
        # A hard bound keeps deep text from reaching Python's recursion limit.
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.src.error(token.pos, f"nesting deeper than {MAX_DEPTH} "
                                            "(parentheses and 'not')")

    # -- grammar
    def condition(self) -> Node:
        node = self.or_expr()
        token = self.peek()
        if token.kind == ")":
            raise self.src.error(token.pos, "unbalanced ')': there is no '(' for it to close")
        if token.kind != "end":
            raise self.fail("'and', 'or' or end of text")
        return node

    def or_expr(self) -> Node:
        children = [self.and_expr()]
        while self.peek().kind == "or":
            self.take()
            children.append(self.and_expr())
        return children[0] if len(children) == 1 else Or(tuple(children))

    def and_expr(self) -> Node:
        children = [self.unary()]
        while self.peek().kind == "and":
            self.take()
            children.append(self.unary())
        return children[0] if len(children) == 1 else And(tuple(children))

    def unary(self) -> Node:
        if self.peek().kind != "not":
            return self.primary()
        self.enter(self.take())
        node = Not(self.unary())
        self.depth -= 1
        return node

    def primary(self) -> Node:
        token = self.peek()
        if token.kind == "(":
            self.enter(self.take())
            node = self.or_expr()
            if self.peek().kind != ")":
                raise self.fail(f"')' to close the '(' at {self.src.where(token.pos)}")
            self.take()
            self.depth -= 1
            return node
        if token.kind == "name" and self.peek(1).kind == "[":
            return self.ref_first_atom()
        if token.kind == "name" and token.text in ("true", "false"):
            self.take()
            return Const(token.text == "true")
        if token.kind in ("int", "errno") or (token.kind == "name" and
                                               token.text in (*SIGNALS, "none")):
            return self.value_first_atom()
        if token.kind == "name":
            raise self.fail(f"'[' after thread name {token.text!r}", self.peek(1))
        raise self.fail(_EXPECT_CONDITION)

    def ref_first_atom(self) -> Atom:
        thread, index = self.ref()
        op = self.op()
        value = self.value(op)
        return Atom(thread, index, op.text, value)

    def value_first_atom(self) -> Atom:
        value_token = self.take()
        op = self.op()
        if not (self.peek().kind == "name" and self.peek(1).kind == "["):
            raise self.fail("a reference THREAD[INDEX] (one side of a comparison must read "
                            "a result)")
        thread, index = self.ref()
        # Checked only now that the op is known: '<' needs an integer on either side.
        value = self.literal(value_token, op)
        return Atom(thread, index, _FLIPPED[op.text], value)

    def ref(self) -> tuple[str, int]:
        thread = self.take().text
        self.expect("[", "'['")
        token = self.peek()
        # The tokenizer reads only ASCII digits, so isdigit() rules out '-1' and '0x1'.
        if token.kind != "int" or not token.text.isdigit():
            raise self.fail("an op index (a non-negative decimal integer)")
        index = int(token.text)
        if index > MAX_INDEX:
            raise self.src.error(token.pos, f"op index {index} is too large "
                                            f"(at most {MAX_INDEX})")
        self.take()
        self.expect("]", "']'")
        return thread, index

    def op(self) -> _Token:
        token = self.expect("op", "a comparison (==, !=, <, <=, >, >=)")
        if token.text == "=":      # herd7 writes equality as '='
            return _Token("op", "==", token.pos)
        return token

    def value(self, op: _Token) -> Value:
        value = self.literal(self.peek(), op)
        self.take()
        return value

    def literal(self, token: _Token, op: _Token) -> Value:
        if token.kind == "int":
            value = self.integer(token)
        elif token.kind == "errno":
            value = self.errno(token)
        elif token.kind == "name" and token.text in SIGNALS:
            value = Value(token.text, token.text)
        elif token.kind == "name" and token.text == "none":
            value = Value(None, "none")
        elif token.kind == "name" and token.text in ERRNO_NUMBERS:
            raise self.src.error(token.pos, f"expected {_EXPECT_VALUE}, got {_shown(token)} "
                                            f"(errno names take a minus sign: -{token.text})")
        else:
            raise self.fail(_EXPECT_VALUE, token)
        if op.text not in ("==", "!=") and not _is_int(value.value):
            raise self.src.error(token.pos, f"{op.text} compares integers only, got "
                                            f"{_shown(token)}; use == or !=")
        return value

    def integer(self, token: _Token) -> Value:
        sign = -1 if token.text.startswith("-") else 1
        digits = token.text.lstrip("-")
        if digits[:2] in ("0x", "0X"):
            magnitude = int(digits[2:], 16)
            return Value(sign * magnitude, ("-" if sign < 0 else "") + hex(magnitude))
        try:
            magnitude = int(digits)
        except ValueError:        # more digits than Python will convert
            raise self.src.error(token.pos, f"integer {_shown(token)} is too long") from None
        return Value(sign * magnitude, str(sign * magnitude))

    def errno(self, token: _Token) -> Value:
        name = token.text[1:]
        if name not in ERRNO_NUMBERS:
            close = difflib.get_close_matches(name, ERRNO_NUMBERS, n=1)
            hint = f" (did you mean -{close[0]}?)" if close else ""
            raise self.src.error(token.pos, f"unknown errno name {name!r}{hint}")
        return Value(-ERRNO_NUMBERS[name], token.text)


def parse_condition(text: str) -> Condition:
    """Parse *text* into a :class:`Condition`; raise :class:`ConditionError` if malformed."""
    if not isinstance(text, str):
        raise ConditionError(f"a condition must be a string, got {type(text).__name__}")
    src = _Source(text)
    if len(text) > MAX_TEXT:
        raise src.error(MAX_TEXT, f"condition is longer than {MAX_TEXT} characters "
                                  f"({len(text)})")
    parser = _Parser(src, _tokenize(src))
    return Condition(text, parser.condition())


# --------------------------------------------------------------------------------------------
# Quantified expectations

_QUANTIFIER_WORDS = {"exists": "exists", "not_exists": "~exists", "forall": "forall"}


def _outcomes_phrase(n: int) -> str:
    return f"{n} outcome" if n == 1 else f"{n} outcomes"


@dataclass
class OutcomeExpectation:
    """``exists``, ``not_exists`` or ``forall`` of a condition over the reachable outcomes."""

    quantifier: str
    condition: Condition

    def __post_init__(self) -> None:
        if self.quantifier not in QUANTIFIERS:
            raise ConditionError(f"unknown quantifier {self.quantifier!r}; expected "
                                 f"{', '.join(QUANTIFIERS)}")

    def __str__(self) -> str:
        return f"{_QUANTIFIER_WORDS[self.quantifier]} {self.condition}"

    def judge(self, outcomes: Iterable[Mapping[str, Sequence[object]]],
              complete: bool) -> tuple[str, str]:
        """(status, detail): status PROVED, FAILED or UNKNOWN; detail one line of English.

        *outcomes* is read only until a witness (``exists``) or counterexample
        (``not_exists``, ``forall``) turns up. *complete* says whether they are every outcome
        the scenario can reach: only then can the absence of a witness (or counterexample)
        be a verdict rather than UNKNOWN.
        """
        seen = 0
        for outcome in outcomes:
            seen += 1
            holds = self.condition.evaluate(outcome)
            if holds and self.quantifier == "exists":
                return "PROVED", f"{self}: reached by {format_outcome(outcome)}"
            if holds and self.quantifier == "not_exists":
                return "FAILED", f"{self}: reached by {format_outcome(outcome)}"
            if not holds and self.quantifier == "forall":
                return "FAILED", f"{self}: violated by {format_outcome(outcome)}"
        return self._settled_by_search(seen, complete)

    def _settled_by_search(self, seen: int, complete: bool) -> tuple[str, str]:
        """The verdict when no outcome was a witness or a counterexample."""
        n = _outcomes_phrase(seen)
        if self.quantifier == "forall":
            if not complete:
                return "UNKNOWN", (f"{self}: the {n} seen satisfy it, but the search was not "
                                   "complete")
            if seen == 0:
                return "PROVED", f"{self}: a complete search reached no outcome (vacuously true)"
            return "PROVED", f"{self}: all {n} of a complete search satisfy it"
        if not complete:
            return "UNKNOWN", (f"{self}: not reached in the {n} seen, and the search was not "
                               "complete")
        status = "FAILED" if self.quantifier == "exists" else "PROVED"
        return status, f"{self}: no outcome of a complete search ({n}) satisfies it"
