"""``unmapcheck mutate``: mutation testing of impl/ against the proof obligations.

A *mutant* is one small, mm-meaningful change to one function of impl/ (a TLB flush
deleted, a flush range narrowed, a free moved before the flush, an rss or mapcount update
deleted, ...: :data:`OPERATORS`), made as an AST transformation. Each mutant is run against
``unmapcheck prove`` (every obligation, or those ``--obligations PATTERN`` selects, as
``prove -k`` does) in a child process whose ``PYTHONPATH`` is a temporary copy of the
installed ``unmapcheck`` package with the mutated module written into it: the working tree
is never written to.

Outcomes:

* KILLED: prove failed (an obligation FAILED, or crashed: prove reports that as FAILED);
  the killer is the first failed obligation (``killers`` has them all);
* SURVIVED: every obligation as on the unmutated copy;
* TIMEOUT: the mutant ran past ``--timeout``, or an obligation became UNKNOWN (a search
  or a solver ran out of its budget); counted as killed (by timeout), shown apart;
* EQUIVALENT: not run: the mutated function unparses to the same source as the original
  (a no-op), compiles to the same byte-code (dead code, say), or is listed in
  ``mutate-equivalent.toml`` with the reason a reviewer gave (no caller in impl/ can tell
  the difference: :data:`REVIEWED`); not counted in the score. A mutant that no obligation
  kills and nobody argued equivalent is SURVIVED, never assumed equivalent;
* INCOMPETENT: the mutated package cannot be imported (or prove cannot load its
  obligations); not counted in the score.

score = (killed + timeout) / (total - equivalent - incompetent).

The unmutated copy runs first (the *baseline*): it must pass the chosen obligations (exit
0), or nothing can be learnt from the mutants; its time sets the default per-mutant
budgets (each obligation: 2 x its baseline seconds + 10 s; a mutant: their sum + 30 s).
docs/mutate.md is the user's guide.
"""

from __future__ import annotations

import ast
import copy
import dis
import fnmatch
import importlib
import json
import os
import queue
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

from .backend import BackendError, close_dask, dask_client

PACKAGES = ("unmapcheck", "unmapcheck.impl", "unmapcheck.spec", "unmapcheck.checker",
            "unmapcheck.proofs")

KILLED, SURVIVED, TIMEOUT, EQUIVALENT, INCOMPETENT = (
    "KILLED", "SURVIVED", "TIMEOUT", "EQUIVALENT", "INCOMPETENT")
PAGE_SIZE = 4096


class MutateError(Exception):
    """Bad input to mutate: one line, exit 2."""


#: The mutants a reviewer argued equivalent (checker/mutate-equivalent.toml), keyed by
#: (function, operator, before, after): the text of the mutation, not its id or line, so an
#: entry follows the code when it moves and lapses when the code it argued about changes.
REVIEWED_FILE = Path(__file__).with_name("mutate-equivalent.toml")
# A change detector (proofs/baseline.py): it runs last, so a mutant it kills is one nothing
# else killed, and the summary says how many those are.
BASELINE_PREFIX = "baseline:"


class ReviewedError(MutateError):
    """mutate-equivalent.toml is malformed (one line, naming the entry)."""


def load_reviewed(path: Path = REVIEWED_FILE) -> dict[tuple, str]:
    """(function, operator, before, after) -> the reviewer's reason; an entry with a
    ``within`` (the header of the block the mutated statement is in, as
    ``Mutant.within`` shows it) is keyed (function, operator, before, after, within) and
    marks only the mutants inside that block: the same statement can be equivalent in
    one branch and not in another."""
    import tomllib
    try:
        doc = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ReviewedError(f"{path}: {e}") from None
    entries = doc.get("equivalent", [])
    if set(doc) - {"equivalent"} or not isinstance(entries, list):
        raise ReviewedError(f"{path}: only [[equivalent]] entries are allowed")
    keys = ("function", "operator", "before", "after", "reason")
    out: dict[tuple, str] = {}
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or set(e) - {"within"} != set(keys) or \
                not all(isinstance(e[k], str) and e[k].strip() for k in set(e)):
            raise ReviewedError(f"{path}: equivalent[{i}]: needs exactly the non-empty "
                                f"strings {', '.join(keys)} (and optionally within)")
        if e["operator"] not in OPERATORS:
            raise ReviewedError(f"{path}: equivalent[{i}]: unknown operator "
                                f"{e['operator']!r}")
        key = tuple(e[k] for k in keys[:4]) + ((e["within"],) if "within" in e else ())
        if key in out:
            raise ReviewedError(f"{path}: equivalent[{i}]: listed twice")
        out[key] = " ".join(e["reason"].split())
    return out


# --- names the operators look for ------------------------------------------------------------
NOT_FLUSHES = {"inc_tlb_flush_pending", "dec_tlb_flush_pending", "mm_tlb_flush_pending",
               "mm_tlb_flush_nested", "tlb_flush_rmaps", "tlb_flush_rmap_batch",
               "tlb_flush_mmu_free", "_tlb_flush_batched_obj", "_read_tlb_flush_batched"}

COUNT_CALLS = {"add_mm_counter", "dec_mm_counter", "inc_mm_counter", "add_mm_rss_vec",
               "folio_get", "folio_put", "get_page", "put_page", "folio_ref_add",
               "folio_ref_sub", "folio_ref_inc", "folio_ref_dec", "page_ref_add",
               "page_ref_sub", "page_ref_inc", "page_ref_dec", "_mapcount_add",
               "atomic_inc", "atomic_dec", "atomic_add", "atomic_sub"}
COUNT_FIELDS = ("count", "rss", "ref", "users")

RSS_COUNTERS = ["MM_ANONPAGES", "MM_FILEPAGES", "MM_SHMEMPAGES", "MM_SWAPENTS"]

LOCK_PAIRS = {"spin_lock": "spin_unlock", "spin_lock_nested": "spin_unlock",
              "mmap_read_lock": "mmap_read_unlock", "mmap_write_lock": "mmap_write_unlock",
              "folio_lock": "folio_unlock", "i_mmap_lock_write": "i_mmap_unlock_write",
              "i_mmap_lock_read": "i_mmap_unlock_read",
              "anon_vma_lock_write": "anon_vma_unlock_write",
              "anon_vma_lock_read": "anon_vma_unlock_read", "rcu_read_lock": "rcu_read_unlock",
              "down_read": "up_read", "down_write": "up_write", "lock_page": "unlock_page"}

RECHECK_CALLS = {"pte_same", "pmd_same", "pud_same", "pte_unmap_same", "pmd_same_lockless"}
ENTRY_READS = {"ptep_get", "pmdp_get", "pudp_get", "p4dp_get", "pgdp_get",
               "ptep_get_lockless", "pmdp_get_lockless"}
ENTRY_NAMES = {"orig_pte", "orig_pmd", "pmdval", "pudval", "orig_pmdval"}

WRPROTECT_STMTS = {"ptep_set_wrprotect", "wrprotect_ptes", "pmdp_set_wrprotect"}
WRPROTECT_EXPRS = {"pte_wrprotect", "pmd_wrprotect"}

ADDR_NAMES = {"start", "end", "next_", "next", "vm_start", "vm_end", "floor", "ceiling"}


def call_name(node) -> Optional[str]:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def is_tlb_flush(name: Optional[str]) -> bool:
    return bool(name) and ("flush_tlb" in name or "tlb_flush" in name) \
        and name not in NOT_FLUSHES


def is_free(name: Optional[str]) -> bool:
    if not name or name.endswith("_tlb") or name == "tlb_free_vmas":
        return False
    return (name in {"folio_put", "put_page", "__tlb_remove_table", "tlb_batch_pages_flush",
                     "tlb_table_flush", "tlb_flush_mmu_free", "free_pages_and_swap_cache"}
            or name.startswith(("free_", "__free_")) or name.endswith("_free")
            or "_free_" in name)


def is_lock_call(name: Optional[str]) -> bool:
    if not name or "unlock" in name or name.startswith(("mmap_assert", "lockdep",
                                                        "folio_test", "_assert")):
        return False
    return name in LOCK_PAIRS or name.endswith("lock") or "_lock_" in name \
        or name.endswith("_lock_nested")


def _expr_stmt_call(st) -> Optional[str]:
    if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
        return call_name(st.value)
    return None


def _ident(node) -> Optional[str]:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def is_address(node) -> bool:
    n = _ident(node)
    return bool(n) and (n in ADDR_NAMES or "addr" in n or n.endswith(("_start", "_end")))


# --- edits -------------------------------------------------------------------------------------
class Edit:
    """A replacement in the tree that can be undone: list slots or single fields."""

    def __init__(self, owner, fieldname: str, index: Optional[int], new, count: int = 1):
        self.owner, self.field, self.index = owner, fieldname, index
        self.new, self.count = new, count
        self.old = None

    def apply(self) -> None:
        if self.index is None:
            self.old = getattr(self.owner, self.field)
            setattr(self.owner, self.field, self.new)
        else:
            lst = getattr(self.owner, self.field)
            self.old = lst[self.index:self.index + self.count]
            lst[self.index:self.index + self.count] = self.new

    def undo(self) -> None:
        if self.index is None:
            setattr(self.owner, self.field, self.old)
        else:
            lst = getattr(self.owner, self.field)
            lst[self.index:self.index + len(self.new)] = self.old


@dataclass
class Site:
    node: ast.AST                  # where (line, col) and what to show
    edits: list[Edit]
    anchors: list[ast.AST]         # the statements shown before -> after


class Ctx:
    """One function being mutated."""

    def __init__(self, func, qualname: str, kernel: bool, module_names: set[str],
                 signatures: dict[str, list[str]]):
        self.func, self.qualname, self.kernel = func, qualname, kernel
        self.module_names, self.signatures = module_names, signatures
        self.parent: dict[int, tuple] = {}
        for node in ast.walk(func):
            for fname, value in ast.iter_fields(node):
                if isinstance(value, list):
                    for i, item in enumerate(value):
                        if isinstance(item, ast.AST):
                            self.parent[id(item)] = (node, fname, i)
                elif isinstance(value, ast.AST):
                    self.parent[id(value)] = (node, fname, None)

    def nodes(self, kind) -> list:
        """Nodes of a type in source order (a nested def belongs to its enclosing one)."""
        found = [n for n in ast.walk(self.func) if isinstance(n, kind) and n is not self.func]
        return sorted(found, key=lambda n: (n.lineno, n.col_offset, n.end_lineno or 0,
                                            n.end_col_offset or 0))

    def blocks(self) -> list[tuple]:
        """Every statement list: (owner, field, list), in source order."""
        out = []
        for node in ast.walk(self.func):
            for fname, value in ast.iter_fields(node):
                if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
                    out.append((node, fname, value))
        return sorted(out, key=lambda b: (b[2][0].lineno, b[2][0].col_offset))

    def stmt_of(self, node) -> ast.stmt:
        while not isinstance(node, ast.stmt):
            node = self.parent[id(node)][0]
        return node

    def replace_stmts(self, stmt, new: list) -> Edit:
        owner, fname, i = self.parent[id(stmt)]
        return Edit(owner, fname, i, new or [ast.Pass()])

    def replace_expr(self, node, new) -> Edit:
        owner, fname, i = self.parent[id(node)]
        if i is None:
            return Edit(owner, fname, None, new)
        return Edit(owner, fname, i, [new])

    def page_size(self):
        if "PAGE_SIZE" in self.module_names:
            return ast.Name("PAGE_SIZE", ast.Load())
        return ast.Constant(PAGE_SIZE)


def _pass_site(ctx: Ctx, stmt) -> Site:
    return Site(stmt, [ctx.replace_stmts(stmt, [ast.Pass()])], [stmt])


def _expr_site(ctx: Ctx, node, new) -> Site:
    return Site(node, [ctx.replace_expr(node, new)], [ctx.stmt_of(node)])


# --- operators -----------------------------------------------------------------------------------
def op_delete_tlb_flush(ctx: Ctx) -> Iterator[Site]:
    """Delete a TLB flush: a call statement of a function whose name contains flush_tlb or
    tlb_flush (flush_tlb_range, flush_tlb_mm_range, tlb_flush_mmu, tlb_flush_mmu_tlbonly,
    tlb_flush_pte_range ...; not the tlb_flush_pending counters, mm_tlb_flush_nested,
    tlb_flush_rmaps or tlb_flush_mmu_free) becomes ``pass``."""
    for st in ctx.nodes(ast.Expr):
        if is_tlb_flush(_expr_stmt_call(st)):
            yield _pass_site(ctx, st)


def op_narrow_flush_range(ctx: Ctx) -> Iterator[Site]:
    """Narrow a flush range: in a call of a *flush_tlb*range* function that takes ``start``
    and ``end`` (flush_tlb_range, flush_tlb_mm_range, arm64_flush_tlb_range), ``end``
    becomes ``start + PAGE_SIZE`` (not when it is already ``start + something``)."""
    for call in ctx.nodes(ast.Call):
        name = call_name(call)
        if not name or "flush_tlb" not in name or "range" not in name:
            continue
        params = ctx.signatures.get(name)
        if not params or "start" not in params or "end" not in params:
            continue

        def arg(pname):
            for kw in call.keywords:
                if kw.arg == pname:
                    return kw, "value"
            i = params.index(pname)
            if i < len(call.args) and not any(isinstance(a, ast.Starred)
                                              for a in call.args[:i + 1]):
                return call.args, i
            return None, None
        s_owner, s_key = arg("start")
        e_owner, e_key = arg("end")
        if s_owner is None or e_owner is None:
            continue
        start = getattr(s_owner, s_key) if isinstance(s_key, str) else s_owner[s_key]
        end = getattr(e_owner, e_key) if isinstance(e_key, str) else e_owner[e_key]
        if isinstance(end, ast.BinOp) and isinstance(end.op, ast.Add) \
                and ast.unparse(end.left) == ast.unparse(start):
            continue
        new = ast.BinOp(copy.deepcopy(start), ast.Add(), ctx.page_size())
        yield _expr_site(ctx, end, new)


def op_swap_flush_free(ctx: Ctx) -> Iterator[Site]:
    """Free before the flush: swap two consecutive statements of which one is a TLB flush
    call and the other frees (folio_put, free_*, *_free, tlb_flush_mmu_free,
    __tlb_remove_table, tlb_batch_pages_flush, tlb_table_flush ...)."""
    def frees(st):
        return any(is_free(call_name(c)) for c in ast.walk(st) if isinstance(c, ast.Call))
    for owner, fname, block in ctx.blocks():
        for i in range(len(block) - 1):
            a, b = block[i], block[i + 1]
            fa, fb = is_tlb_flush(_expr_stmt_call(a)), is_tlb_flush(_expr_stmt_call(b))
            if (fa and not fb and frees(b)) or (fb and not fa and frees(a)):
                yield Site(a, [Edit(owner, fname, i, [b, a], count=2)], [a, b])


def op_delete_count_update(ctx: Ctx) -> Iterator[Site]:
    """Delete an rss, mapcount or refcount update: a call statement of add_mm_counter,
    inc_mm_counter, dec_mm_counter, add_mm_rss_vec, folio_get, folio_put, folio_ref_*,
    page_ref_*, _mapcount_add, folio_add_*rmap* / folio_remove_rmap* ..., or an
    ``x += n`` / ``x -= n`` on something named *count*, *rss*, *ref*, *users*."""
    for st in ctx.nodes(ast.stmt):
        name = _expr_stmt_call(st)
        if name and (name in COUNT_CALLS or ("rmap" in name and name.startswith(
                ("folio_add_", "folio_remove_", "page_add_", "page_remove_")))):
            yield _pass_site(ctx, st)
        elif isinstance(st, ast.AugAssign) and isinstance(st.op, (ast.Add, ast.Sub)):
            target = ast.unparse(st.target).lower()
            if any(w in target for w in COUNT_FIELDS):
                yield _pass_site(ctx, st)


def op_misdirect_rss_counter(ctx: Ctx) -> Iterator[Site]:
    """Misdirect an rss counter: MM_ANONPAGES -> MM_FILEPAGES -> MM_SHMEMPAGES ->
    MM_SWAPENTS -> MM_ANONPAGES."""
    for n in ctx.nodes(ast.Name):
        if n.id in RSS_COUNTERS and isinstance(n.ctx, ast.Load):
            nxt = RSS_COUNTERS[(RSS_COUNTERS.index(n.id) + 1) % len(RSS_COUNTERS)]
            yield _expr_site(ctx, n, ast.Name(nxt, ast.Load()))


def op_delete_lock_pair(ctx: Ctx) -> Iterator[Site]:
    """Delete a lock/unlock pair: a call statement taking a lock (spin_lock, mmap_read_lock,
    mmap_write_lock, folio_lock, i_mmap_lock_write, anon_vma_lock_write, rcu_read_lock ...)
    and every later call statement of its unlock on the same argument, up to the next time
    the same lock is taken, in the same function: all become ``pass``. No site when the
    function has no matching unlock."""
    calls = [(st, _expr_stmt_call(st)) for st in ctx.nodes(ast.Expr)]
    calls = [(st, n) for st, n in calls if n]

    def key(st):
        return tuple(ast.unparse(a) for a in st.value.args)
    for i, (st, name) in enumerate(calls):
        if name not in LOCK_PAIRS:
            continue
        unlocks = []
        for st2, name2 in calls[i + 1:]:
            if name2 == name and key(st2) == key(st):
                break
            if name2 == LOCK_PAIRS[name] and key(st2) == key(st):
                unlocks.append(st2)
        if unlocks:
            yield Site(st, [ctx.replace_stmts(s, [ast.Pass()]) for s in [st, *unlocks]],
                       [st, *unlocks])


def _is_recheck(test) -> bool:
    for n in ast.walk(test):
        if isinstance(n, ast.Call) and call_name(n) in RECHECK_CALLS:
            return True
        if isinstance(n, ast.Compare):
            sides = [n.left, *n.comparators]
            if any(isinstance(x, ast.Constant) and x.value is None for x in sides):
                continue                    # "is None": a missing table, not a re-check
            for side in sides:
                for m in ast.walk(side):
                    if isinstance(m, ast.Attribute) and m.attr in ("pfn", "gen"):
                        return True
                    if _ident(m) in ENTRY_NAMES:
                        return True
                    if isinstance(m, ast.Call) and call_name(m) in ENTRY_READS:
                        return True
    return False


def _negative(test) -> bool:
    if isinstance(test, ast.UnaryOp) and isinstance(test.op, ast.Not):
        return True
    if isinstance(test, ast.Compare):
        return any(isinstance(o, (ast.NotEq, ast.IsNot, ast.NotIn)) for o in test.ops)
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.Or):
        return any(_negative(v) for v in test.values)
    return False


def op_delete_recheck(ctx: Ctx) -> Iterator[Site]:
    """Delete a re-check after re-taking a lock: an ``if`` whose test calls pte_same /
    pmd_same or compares an entry read again (ptep_get, pmdp_get ..., orig_pte, pmdval,
    .pfn, .gen), within three statements after one that takes a lock, is replaced by the
    branch taken when the re-check passes (its ``else`` when the test is negative,
    ``if not pte_same(...)`` / ``!=``; its body otherwise)."""
    for owner, fname, block in ctx.blocks():
        for i, st in enumerate(block):
            if not isinstance(st, ast.If) or not _is_recheck(st.test):
                continue
            before = block[max(0, i - 3):i]
            if not any(is_lock_call(call_name(c)) for b in before for c in ast.walk(b)
                       if isinstance(c, ast.Call)):
                continue
            keep = st.orelse if _negative(st.test) else st.body
            yield Site(st, [Edit(owner, fname, i, list(keep) or [ast.Pass()])], [st])


def op_off_by_one(ctx: Ctx) -> Iterator[Site]:
    """Off by one in a range: a comparison of addresses (addr, start, end, next_, vm_start,
    vm_end, floor, ceiling, *addr*, *_start, *_end) with < <= > >= flips its strictness;
    ``end`` / ``.vm_end`` passed to a call or compared with == / != becomes
    ``end - PAGE_SIZE`` (not in the model's sched.point / sched.event hooks)."""
    flip = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt}
    for n in ctx.nodes((ast.Compare, ast.Name, ast.Attribute)):
        if isinstance(n, ast.Compare):
            if len(n.ops) == 1 and type(n.ops[0]) in flip and \
                    (is_address(n.left) or is_address(n.comparators[0])):
                new = ast.Compare(copy.deepcopy(n.left), [flip[type(n.ops[0])]()],
                                  copy.deepcopy(n.comparators))
                yield _expr_site(ctx, n, new)
            continue
        if _ident(n) not in ("end", "vm_end") or not isinstance(n.ctx, ast.Load):
            continue
        if isinstance(n, ast.Name) and n.id != "end":
            continue
        if isinstance(n, ast.Attribute) and n.attr != "vm_end":
            continue
        owner, fname, _ = ctx.parent[id(n)]
        call = ctx.parent[id(owner)][0] if isinstance(owner, ast.keyword) else owner
        if _is_model_hook(call):
            continue
        passed = isinstance(owner, ast.Call) and fname == "args" or \
            isinstance(owner, ast.keyword)
        compared = isinstance(owner, ast.Compare) and len(owner.ops) == 1 and \
            isinstance(owner.ops[0], (ast.Eq, ast.NotEq))
        if passed or compared:
            yield _expr_site(ctx, n, ast.BinOp(copy.deepcopy(n), ast.Sub(), ctx.page_size()))


def _is_model_hook(node) -> bool:
    """sched.point() / sched.event(): how the model tells the explorer and the invariants
    what a step does, not kernel code."""
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
        isinstance(node.func.value, ast.Name) and node.func.value.id == "sched"


def op_negate_condition(ctx: Ctx) -> Iterator[Site]:
    """Negate the condition of an ``if`` (or ``elif``): ``if C`` becomes ``if not (C)``.
    Only in kernel-mirroring functions (module-level, no single leading underscore)."""
    if not ctx.kernel:
        return
    for st in ctx.nodes(ast.If):
        yield Site(st, [Edit(st, "test", None, ast.UnaryOp(ast.Not(), st.test))], [st])


def op_drop_wrprotect(ctx: Ctx) -> Iterator[Site]:
    """Drop a write-protect: a call statement of ptep_set_wrprotect / wrprotect_ptes becomes
    ``pass``; ``pte_wrprotect(x)`` becomes ``x``; a ``write=False`` argument becomes
    ``write=True``."""
    for n in ctx.nodes((ast.Expr, ast.Call, ast.keyword)):
        if isinstance(n, ast.Expr):
            if _expr_stmt_call(n) in WRPROTECT_STMTS:
                yield _pass_site(ctx, n)
        elif isinstance(n, ast.Call):
            if call_name(n) in WRPROTECT_EXPRS and len(n.args) == 1 and not n.keywords:
                owner, _, _ = ctx.parent[id(n)]
                if not isinstance(owner, ast.Expr):
                    yield _expr_site(ctx, n, copy.deepcopy(n.args[0]))
        elif n.arg == "write" and isinstance(n.value, ast.Constant) and n.value.value is False:
            yield _expr_site(ctx, n.value, ast.Constant(True))


OPERATORS: dict[str, Callable[[Ctx], Iterator[Site]]] = {
    "delete_tlb_flush": op_delete_tlb_flush,
    "narrow_flush_range": op_narrow_flush_range,
    "swap_flush_free": op_swap_flush_free,
    "delete_count_update": op_delete_count_update,
    "misdirect_rss_counter": op_misdirect_rss_counter,
    "delete_lock_pair": op_delete_lock_pair,
    "delete_recheck": op_delete_recheck,
    "off_by_one": op_off_by_one,
    "negate_condition": op_negate_condition,
    "drop_wrprotect": op_drop_wrprotect,
}


# --- the package and its functions ---------------------------------------------------------------
def package_dirs(root: Optional[Path] = None) -> dict[str, Path]:
    """Where each subpackage lives: the installed package (as pyproject's package-dir maps
    it), or *root*/unmapcheck/... for a laid-out copy."""
    if root is not None:
        base = Path(root) / "unmapcheck"
        return {p: base.joinpath(*p.split(".")[1:]) for p in PACKAGES}
    return {p: Path(os.path.realpath(next(iter(importlib.import_module(p).__path__))))
            for p in PACKAGES}


def copy_package(dest: Path, dirs: dict[str, Path]) -> None:
    """Lay the package out under *dest*/unmapcheck (no __pycache__)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", ".tmp-*")
    for pkg in sorted(PACKAGES, key=len):
        target = dest.joinpath(*pkg.split("."))
        src = dirs[pkg]
        if pkg == "unmapcheck":
            target.mkdir(parents=True, exist_ok=True)
            for f in src.iterdir():
                if f.is_file() and f.suffix == ".py":
                    shutil.copy2(f, target / f.name)
        else:
            shutil.copytree(src, target, ignore=ignore, dirs_exist_ok=True)


def _module_names(tree: ast.Module) -> set[str]:
    names = set()
    for st in tree.body:
        if isinstance(st, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in st.names}
        elif isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(st.name)
        elif isinstance(st, (ast.Assign, ast.AnnAssign)):
            for t in (st.targets if isinstance(st, ast.Assign) else [st.target]):
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def _functions(tree: ast.Module) -> list[tuple[str, ast.FunctionDef, bool]]:
    """(qualname, def, kernel-mirroring?) for the module-level functions and the methods of
    module-level classes; a second def of the same name is NAME@2. Functions marked
    ``@model_only`` (the model's own helpers, impl/sched.py) are left out: they are not
    kernel code, so no mutant of them is a kernel regression; so are those marked
    ``@reports_bug`` (impl/bug.py: a WARN, a bad-PTE report), which a correct model never
    runs."""
    from .coverage_report import is_bug_report, is_kernel_name, is_model_only, module_functions
    out = [(f.name, f, is_kernel_name(f.name)) for f in module_functions(tree)
           if not is_model_only(f) and not is_bug_report(f)]
    for st in tree.body:
        if isinstance(st, ast.ClassDef):
            out += [(f"{st.name}.{f.name}", f, False) for f in st.body
                    if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))]
    out.sort(key=lambda t: t[1].lineno)
    seen: dict[str, int] = {}
    named = []
    for q, f, k in out:
        seen[q] = seen.get(q, 0) + 1
        named.append((q if seen[q] == 1 else f"{q}@{seen[q]}", f, k))
    return named


def _signatures(files: list[Path]) -> dict[str, list[str]]:
    sigs = {}
    for path in files:
        for st in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(st, (ast.FunctionDef, ast.AsyncFunctionDef)):
                sigs.setdefault(st.name, [a.arg for a in st.args.posonlyargs + st.args.args])
    return sigs


def _def_span(f) -> tuple[int, int]:
    """The lines of a def as its code object's co_firstlineno sees it (from the first
    decorator) to its last line: the code objects of nested defs, lambdas and
    comprehensions start inside it."""
    return (min([d.lineno for d in f.decorator_list] + [f.lineno]), f.end_lineno or f.lineno)


def _within(ctx: Ctx, node) -> str:
    """The header of the innermost block *node*'s statement is in ("if not x:", "while
    y:", ...), prefixed "else of " for its else branch (where an elif is too: the elif
    itself is the statement), or "" at the function's top level."""
    stmt = ctx.stmt_of(node)
    owner, fname, _ = ctx.parent.get(id(stmt), (None, None, None))
    if isinstance(owner, (ast.If, ast.While)):
        header = f"{'if' if isinstance(owner, ast.If) else 'while'} {ast.unparse(owner.test)}:"
    elif isinstance(owner, (ast.For, ast.AsyncFor)):
        header = f"for {ast.unparse(owner.target)} in {ast.unparse(owner.iter)}:"
    elif isinstance(owner, (ast.With, ast.AsyncWith)):
        header = f"with {', '.join(ast.unparse(i) for i in owner.items)}:"
    elif isinstance(owner, ast.Try):
        header = "try:"
    elif isinstance(owner, ast.ExceptHandler):
        header = "except:"
    else:
        return ""
    return ("else of " if fname == "orelse" else "") + header


def _show(stmt) -> str:
    """One line for a statement: its header for a compound one."""
    if isinstance(stmt, ast.If):
        return f"if {ast.unparse(stmt.test)}:"
    if isinstance(stmt, ast.While):
        return f"while {ast.unparse(stmt.test)}:"
    if isinstance(stmt, (ast.For, ast.AsyncFor)):
        return f"for {ast.unparse(stmt.target)} in {ast.unparse(stmt.iter)}:"
    if isinstance(stmt, (ast.With, ast.AsyncWith)):
        return "with " + ", ".join(ast.unparse(i) for i in stmt.items) + ":"
    return " ".join(ast.unparse(stmt).split())


def _code_shape(co: types.CodeType) -> tuple:
    """A code object's behaviour: its instructions with resolved arguments (code objects
    recursively) and its exception table; not its line table or unused name slots."""
    ins = []
    for i in dis.get_instructions(co):
        v = i.argval
        v = ("code", _code_shape(v)) if isinstance(v, types.CodeType) else \
            (type(v).__name__, repr(v))
        ins.append((i.opname, v))
    return (tuple(ins), co.co_exceptiontable, co.co_flags, co.co_argcount,
            co.co_kwonlyargcount, co.co_posonlyargcount, co.co_varnames[:co.co_argcount +
                                                                        co.co_kwonlyargcount])


def _compile_func(func) -> tuple:
    mod = ast.Module(body=[func], type_ignores=[])
    ast.fix_missing_locations(mod)
    return _code_shape(compile(mod, "<mutant>", "exec"))


@dataclass
class Mutant:
    id: str
    file: str                  # impl/NAME.py
    module: str                # unmapcheck.impl.NAME
    line: int
    col: int
    function: str
    operator: str
    ordinal: int               # the n-th site of this operator in this function (1-based)
    before: str
    after: str
    equivalent: Optional[str] = None      # why it is equivalent (detected statically)
    span: tuple[int, int] = (0, 0)        # the lines of the mutated def, decorators included
    status: Optional[str] = None
    killers: list[str] = field(default_factory=list)
    seconds: float = 0.0
    detail: str = ""
    reached_by: Optional[int] = None      # how many obligations execute the function
    within: str = ""           # the header of the block the mutated statement is in

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def as_dict(self, run: bool = True) -> dict:
        d = {"id": self.id, "file": self.file, "line": self.line, "function": self.function,
             "operator": self.operator, "before": self.before, "after": self.after,
             "within": self.within, "equivalent": self.equivalent}
        if run:
            d.update(status=self.status, killer=self.killers[0] if self.killers else None,
                     killers=self.killers, seconds=round(self.seconds, 3), detail=self.detail,
                     reached_by=self.reached_by)
        return d


class Package:
    """impl/ of a package tree: its files, functions and mutants."""

    def __init__(self, root: Optional[Path] = None):
        self.dirs = package_dirs(root)
        self.impl = self.dirs["unmapcheck.impl"]
        self.files = sorted(p for p in self.impl.rglob("*.py") if "__pycache__" not in p.parts)
        self._sigs: Optional[dict] = None

    def rel(self, path: Path) -> str:
        return "impl/" + path.relative_to(self.impl).as_posix()

    def module(self, path: Path) -> str:
        parts = list(path.relative_to(self.impl).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        return ".".join(["unmapcheck.impl", *parts])

    def signatures(self) -> dict:
        if self._sigs is None:
            self._sigs = _signatures(self.files)
        return self._sigs

    def parse(self, path: Path) -> tuple[str, ast.Module]:
        src = path.read_text(encoding="utf-8")
        return src, ast.parse(src, filename=str(path))

    def function_names(self) -> dict[str, list[str]]:
        """function name and qualname -> the files defining it."""
        out: dict[str, list[str]] = {}
        for path in self.files:
            for q, f, _ in _functions(self.parse(path)[1]):
                for key in {q, q.split("@")[0], f.name}:
                    out.setdefault(key, []).append(self.rel(path))
        return out

    def _ctxs(self, tree: ast.Module):
        names = _module_names(tree)
        for q, f, kernel in _functions(tree):
            yield q, f, Ctx(f, q, kernel, names, self.signatures())

    def mutants(self, paths: Optional[list[Path]] = None,
                functions: Optional[set[str]] = None,
                reviewed: Optional[dict] = None) -> list[Mutant]:
        reviewed = load_reviewed() if reviewed is None else reviewed
        out = []
        for path in (paths or self.files):
            rel, mod = self.rel(path), self.module(path)
            stem = mod[len("unmapcheck.impl."):] if mod != "unmapcheck.impl" else "__init__"
            _, tree = self.parse(path)
            for q, f, ctx in self._ctxs(tree):
                if functions is not None and not ({q, q.split("@")[0], f.name} & functions):
                    continue
                original_src = ast.unparse(f)
                original_code = None
                for opname, op in OPERATORS.items():
                    for k, site in enumerate(op(ctx), 1):
                        before = "; ".join(_show(a) for a in site.anchors)
                        if original_code is None:
                            original_code = _compile_func(f)
                        for e in site.edits:
                            e.apply()
                        try:
                            after = self._after(site)
                            equivalent = None
                            if ast.unparse(f) == original_src:
                                equivalent = "no-op: the mutated function unparses the same"
                            elif _compile_func(f) == original_code:
                                equivalent = "same byte-code as the original"
                        finally:
                            for e in reversed(site.edits):
                                e.undo()
                        within = _within(ctx, site.anchors[0])
                        why = reviewed.get((q, opname, before, after, within),
                                           reviewed.get((q, opname, before, after)))
                        if equivalent is None and why is not None:
                            equivalent = f"reviewed: {why}"
                        out.append(Mutant(f"{stem}.{q}.{opname}.{k}", rel, mod,
                                          site.node.lineno, site.node.col_offset, q, opname, k,
                                          before, after, equivalent, _def_span(f),
                                          within=within))
        out.sort(key=lambda m: (m.file, m.line, m.operator, m.col, m.function, m.ordinal))
        return out

    @staticmethod
    def _after(site: Site) -> str:
        """How the anchors read once the site's edits are applied (call while applied)."""
        parts = []
        for e in site.edits:
            if e.index is None or not e.new or not isinstance(e.new[0], ast.stmt):
                return "; ".join(_show(a) for a in site.anchors)
            shown = [_show(st) for st in e.new[:2]] + (["..."] if len(e.new) > 2 else [])
            parts.append("; ".join(shown))
        return "; ".join(parts)

    def mutated_source(self, m: Mutant) -> str:
        """The module of *m* with its mutation applied (ast.unparse of the whole module)."""
        path = self.impl / m.file[len("impl/"):]
        _, tree = self.parse(path)
        for q, f, ctx in self._ctxs(tree):
            if q != m.function:
                continue
            sites = list(OPERATORS[m.operator](ctx))
            if len(sites) < m.ordinal:
                break
            for e in sites[m.ordinal - 1].edits:
                e.apply()
            ast.fix_missing_locations(tree)
            return f"# unmapcheck mutant {m.id}: {m.before} -> {m.after}\n" + \
                ast.unparse(tree) + "\n"
        raise MutateError(f"mutant {m.id} no longer applies to {m.file} (did it change?)")


# --- selection -----------------------------------------------------------------------------------
def select(pkg: Package, targets: list[str], pattern: Optional[str]) -> list[Mutant]:
    """The mutants of the PATH and FUNCTION arguments (all of impl/ without any), then -k."""
    paths: list[Path] = []
    functions: set[str] = set()
    known = None
    for t in targets:
        if not t.strip():
            raise MutateError("an empty PATH or FUNCTION argument matches nothing")
        if t.endswith(".py") or "/" in t or os.sep in t:
            paths.append(_resolve_path(pkg, t))
        else:
            known = known if known is not None else pkg.function_names()
            if t not in known:
                raise MutateError(f"no function named {t!r} in impl/ (and not a file: a PATH "
                                  f"ends in .py)")
            functions.add(t)
    if functions and not paths:
        known = known if known is not None else pkg.function_names()
        files = sorted({f for t in functions for f in known[t]})
        paths = [pkg.impl / f[len("impl/"):] for f in files]
        mutants = pkg.mutants(paths, functions)
    elif functions:
        # files given in full, plus the named functions wherever they are
        known = known if known is not None else pkg.function_names()
        extra = sorted({pkg.impl / f[len("impl/"):] for t in functions for f in known[t]}
                       - set(paths))
        mutants = pkg.mutants(paths) + pkg.mutants(extra, functions)
        mutants.sort(key=lambda m: (m.file, m.line, m.operator, m.col, m.function, m.ordinal))
    else:
        mutants = pkg.mutants(sorted(set(paths)) or None)
    if pattern:
        glob = any(c in pattern for c in "*?[")
        mutants = [m for m in mutants if (fnmatch.fnmatchcase(m.id, pattern) if glob
                                          else pattern.lower() in m.id.lower())]
        if not mutants:
            raise MutateError(f"-k {pattern!r} matches no mutant (unmapcheck mutate --list "
                              f"shows them)")
    return mutants


def _resolve_path(pkg: Package, t: str) -> Path:
    p = Path(t)
    if p.is_file():
        real = Path(os.path.realpath(p))
        try:
            real.relative_to(pkg.impl)
            return real
        except ValueError:
            pass
    rel = t.replace(os.sep, "/")
    for prefix in ("./", "impl/"):
        if rel.startswith(prefix):
            rel = rel[len(prefix):]
    cand = pkg.impl / rel
    if rel and cand.is_file() and cand.suffix == ".py" and "__pycache__" not in cand.parts:
        return Path(os.path.realpath(cand))
    raise MutateError(f"{t}: not a Python file of impl/ ({pkg.impl})")


def sample(mutants: list[Mutant], n: Optional[int], seed: int) -> list[Mutant]:
    """A seeded sample of *n* (when there are more), in the listing's order."""
    if n is None or len(mutants) <= n:
        return mutants
    order = {id(m): i for i, m in enumerate(mutants)}
    picked = random.Random(seed).sample(mutants, n)
    return sorted(picked, key=lambda m: order[id(m)])


# --- running -------------------------------------------------------------------------------------
# The child: import the (mutated) module first, so a mutant that breaks the import is told
# apart (exit 97); check that what was imported is the copy (exit 98: the mutant would not
# be what runs); then prove --json.
#
# Two environment variables, set by the parent only:
# * UNMAPCHECK_MUTATE_REACH=FILE (the baseline): record, per obligation, the code objects of
#   impl/ it executed (a sys.settrace hook that sees only "call" events, greenlets included,
#   and never traces lines), as (file relative to impl/, co_firstlineno) pairs, into FILE.
#   What runs outside every obligation (imports, every impl/ and spec/ module imported up
#   front so that no import-time code runs inside one; loading the obligations) is filed
#   under "*": it can change what any obligation sees;
# * UNMAPCHECK_MUTATE_ONLY=JSON list (a mutant): prove runs exactly these obligations, in
#   this order (names are matched exactly, not as prove's prefixes).
_RUNNER = """\
import importlib, json, os, pkgutil, sys
root, module = os.path.realpath(sys.argv[1]), sys.argv[2]
reach_file, codes = os.environ.get("UNMAPCHECK_MUTATE_REACH"), {"*": set()}
current = [codes["*"]]
if reach_file:
    def on_call(frame, event, arg):
        current[0].add(frame.f_code)
    sys.settrace(on_call)
try:
    mods = [importlib.import_module(m) for m in ("unmapcheck.impl", module) if m]
    import unmapcheck.checker.prove as P
    if reach_file:
        for pkg in ("unmapcheck.impl", "unmapcheck.spec"):
            for info in pkgutil.walk_packages(importlib.import_module(pkg).__path__, pkg + "."):
                importlib.import_module(info.name)
except BaseException as e:
    sys.stderr.write(f"import failed: {type(e).__name__}: {e}\\n")
    sys.exit(97)
for m in mods:
    if not os.path.realpath(m.__file__).startswith(root + os.sep):
        sys.stderr.write(f"{m.__name__} was imported from {m.__file__}, not the copy {root}\\n")
        sys.exit(98)
only = os.environ.get("UNMAPCHECK_MUTATE_ONLY")
if only is not None:
    names, every = json.loads(only), P.all_obligations
    def chosen():
        by_name = {ob.name: ob for ob in every()}
        return [by_name[n] for n in names]
    P.all_obligations = chosen
budgets = json.loads(os.environ.get("UNMAPCHECK_MUTATE_BUDGETS") or "{}")
if budgets:
    import signal
    run_one = P.run_obligation
    def budgeted(ob, opts):
        def ran_past(signum, frame):
            sys.stderr.write(f"obligation ran past its budget: {ob.name}\\n")
            sys.stderr.flush()
            os._exit(96)
        signal.signal(signal.SIGALRM, ran_past)
        signal.alarm(max(1, int(budgets.get(ob.name, 0) + 0.999)))
        try:
            return run_one(ob, opts)
        finally:
            signal.alarm(0)
    P.run_obligation = budgeted
if reach_file:
    run_obligation = P.run_obligation
    def traced(ob, opts):
        outside, current[0] = current[0], codes.setdefault(ob.name, set())
        try:
            return run_obligation(ob, opts)
        finally:
            current[0] = outside
    P.run_obligation = traced
from unmapcheck.checker.cli import main
code = main(["prove", "--json", "--jobs=1", *sys.argv[3:]])
if reach_file:
    sys.settrace(None)
    impl_root = os.path.dirname(os.path.realpath(mods[0].__file__)) + os.sep
    real = {}
    reach = {}
    for name, seen in codes.items():
        pairs = reach[name] = set()
        for c in seen:
            f = real.get(c.co_filename)
            if f is None:
                f = real[c.co_filename] = os.path.realpath(c.co_filename)
            if f.startswith(impl_root):
                pairs.add((f[len(impl_root):], c.co_firstlineno))
    with open(reach_file, "w") as out:
        json.dump({name: sorted(pairs) for name, pairs in reach.items()}, out)
sys.exit(code)
"""
EXIT_INCOMPETENT, EXIT_WRONG_COPY, EXIT_OBLIGATION_BUDGET = 97, 98, 96
# The baseline's budget per obligation: its call hook makes it about three times slower than
# prove, so prove's default 60 s would turn the longest scenarios UNKNOWN (the mutants run
# untraced, with prove's default).
BASELINE_OBLIGATION_TIMEOUT = 600
HOOK_SLOWDOWN = 3            # about: the baseline with its call hook against a plain prove


@dataclass
class RunResult:
    code: Optional[int]        # None: timed out
    stdout: str
    stderr: str
    seconds: float


class Runner:
    """Copies of the package (one per job), and prove run in a child on one of them."""

    def __init__(self, pkg: Package, prove_args: list[str], jobs: int):
        self.pkg = pkg
        self.prove_args = prove_args
        self.jobs = jobs
        self.tmp = Path(tempfile.mkdtemp(prefix="unmapcheck-mutate-"))
        self.slots: "queue.Queue[Path]" = queue.Queue()
        self.running: set = set()
        self.lock = threading.Lock()

    def close(self) -> None:
        with self.lock:
            procs = list(self.running)
        for p in procs:
            _kill(p)
        shutil.rmtree(self.tmp, ignore_errors=True)

    def baseline(self) -> tuple[RunResult, Optional[dict]]:
        """Lay out the first copy, run the unmutated obligations on it (which also writes
        its byte-code caches) recording what each executes, then clone it for the other
        jobs. Returns the run and the reach map ({obligation: [(file, first line)]},
        None when the run did not write it)."""
        base = self.tmp / "slot0"
        copy_package(base, self.pkg.dirs)
        reach_file = self.tmp / "reach.json"
        res = self.run(base, "", None,
                       self.prove_args + [f"--timeout={BASELINE_OBLIGATION_TIMEOUT}"],
                       bytecode=True, env={"UNMAPCHECK_MUTATE_REACH": str(reach_file)})
        reach = None
        try:
            reach = json.loads(reach_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            pass
        self.slots.put(base)
        for i in range(1, self.jobs):
            slot = self.tmp / f"slot{i}"
            shutil.copytree(base, slot)           # copy2: the caches stay valid
            self.slots.put(slot)
        return res, reach

    def run(self, slot: Path, module: str, timeout: Optional[float], prove_args: list[str],
            bytecode: bool = False, env: Optional[dict] = None) -> RunResult:
        full_env = dict(os.environ)
        full_env["PYTHONPATH"] = os.pathsep.join(
            [str(slot)] + ([full_env["PYTHONPATH"]] if full_env.get("PYTHONPATH") else []))
        if not bytecode:
            full_env["PYTHONDONTWRITEBYTECODE"] = "1"
        for k in ("UNMAPCHECK_DEBUG", "UNMAPCHECK_MUTATE_REACH", "UNMAPCHECK_MUTATE_ONLY"):
            full_env.pop(k, None)
        full_env.update(env or {})
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", _RUNNER, str(slot), module,
                                 *prove_args], cwd=slot, env=full_env,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
        with self.lock:
            self.running.add(proc)
        try:
            try:
                out, err = proc.communicate(timeout=timeout)
                code: Optional[int] = proc.returncode
            except subprocess.TimeoutExpired:
                _kill(proc)
                out, err = proc.communicate()
                code = None
            except BaseException:
                # Ctrl-C or SIGTERM while it runs: the child is in a session of its own,
                # so nothing else stops it (and close() no longer sees it once discarded)
                _kill(proc)
                raise
        finally:
            with self.lock:
                self.running.discard(proc)
        return RunResult(code, out or "", err or "", time.monotonic() - t0)

    def run_mutant(self, m: Mutant, source: str, timeout: float, names: list[str],
                   fail_fast: bool, budgets: Optional[dict] = None) -> RunResult:
        """prove on the mutant: exactly the obligations *names*, in that order, stopping
        at the first one not proved when *fail_fast*; an obligation that runs past its
        budget (seconds, *budgets*) ends the run (exit EXIT_OBLIGATION_BUDGET)."""
        budgets = budgets or {}
        slot = self.slots.get()
        try:
            path = slot.joinpath("unmapcheck", "impl", *m.file[len("impl/"):].split("/"))
            original = path.read_bytes()
            try:
                cached = Path(importlib.util.cache_from_source(str(path)))
                cached.unlink(missing_ok=True)
                path.write_text(source, encoding="utf-8")
                return self.run(slot, m.module, timeout, ["--fail-fast"] if fail_fast else [],
                                env={"UNMAPCHECK_MUTATE_ONLY": json.dumps(names),
                                     "UNMAPCHECK_MUTATE_BUDGETS": json.dumps(budgets)})
            finally:
                path.write_bytes(original)
        finally:
            self.slots.put(slot)


class Reach:
    """Which obligations execute which functions of impl/, from the baseline run: an
    obligation reaches a mutant's function when it executed a code object that starts
    inside the function's lines (the def itself, or a nested def, lambda or comprehension),
    or when that code ran outside every obligation (at import, while loading them).

    Why a mutant needs only the obligations that reach its function: the mutation is inside
    that function's body, so an obligation that never runs it behaves exactly as on the
    unmutated copy (the obligations are independent of each other: prove --jobs runs them
    in any order in any worker). They run cheapest first (by the baseline's seconds)."""

    def __init__(self, reach: dict, seconds: dict[str, float]):
        self.everywhere: dict[str, list[int]] = {}
        self.by_obligation: dict[str, dict[str, list[int]]] = {}
        for name, pairs in reach.items():
            index: dict[str, list[int]] = {}
            for f, line in pairs:
                index.setdefault(f, []).append(line)
            if name == "*":
                self.everywhere = index
            else:
                self.by_obligation[name] = index
        self.seconds = seconds

    @staticmethod
    def _hits(index: dict, rel: str, span: tuple[int, int]) -> bool:
        return any(span[0] <= line <= span[1] for line in index.get(rel, ()))

    def obligations(self, m: Mutant) -> tuple[list[str], bool]:
        """(the obligations to run, cheapest first but the change detectors last (a
        ``baseline:`` obligation says the model does something else, not that it is wrong:
        a mutant it kills is one no proof, scenario or oracle killed); whether the function
        also ran outside them, in which case every obligation is run)."""
        rel = m.file[len("impl/"):]
        if self._hits(self.everywhere, rel, m.span):
            names = list(self.seconds)
            anywhere = True
        else:
            names = [n for n, index in self.by_obligation.items()
                     if self._hits(index, rel, m.span)]
            anywhere = False
        return sorted(names, key=lambda n: (n.startswith(BASELINE_PREFIX),
                                            self.seconds.get(n, 0.0), n)), anywhere

    def budgets(self, names: list[str]) -> dict[str, float]:
        """Each obligation's budget in a mutant's run: twice its baseline seconds (which the
        call hook already made about three times longer) plus 10 s."""
        return {n: 2 * self.seconds.get(n, 0.0) + 10 for n in names}

    def time_limit(self, names: list[str]) -> float:
        """The default budget of a mutant that runs *names*: the sum of their budgets
        (:meth:`budgets`) plus 30 s for the child's start. Each obligation is also stopped
        at its own budget, so a mutant that loops forever where impl/ has no scheduling
        point ends as TIMEOUT after a few times its obligation's usual time."""
        return sum(self.budgets(names).values()) + 30


def _kill(proc) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def judge(m: Mutant, res: RunResult) -> None:
    """Set m.status, killers, detail from a prove run on the mutant."""
    m.seconds = res.seconds
    if res.code is None:
        m.status, m.detail = TIMEOUT, f"ran past the timeout ({res.seconds:.0f}s)"
        return
    if res.code == EXIT_OBLIGATION_BUDGET:
        # an obligation ran far past its unmutated time: a loop that never ends where impl/
        # has no scheduling point (the explorer's own budget cannot interrupt it)
        line = _last_line(res.stderr)
        name = line.split("budget: ", 1)[1] if "budget: " in line else "(unknown)"
        m.status, m.killers = TIMEOUT, [name]
        m.detail = f"{name} ran past its budget ({res.seconds:.0f}s in all)"
        return
    if res.code == EXIT_WRONG_COPY:
        raise RuntimeError(res.stderr.strip().splitlines()[-1] if res.stderr.strip()
                           else "the mutant was not imported from the copy")
    if res.code == EXIT_INCOMPETENT or res.code == 2:
        m.status = INCOMPETENT
        m.detail = _last_line(res.stderr) or f"prove exited {res.code}"
        return
    results = _prove_results(res.stdout)
    if res.code == 0:
        m.status, m.detail = SURVIVED, f"{len(results)} obligations as expected"
        return
    failed = [r for r in results if r.get("status") == "FAILED"]
    unknown = [r for r in results if r.get("status") == "UNKNOWN"]
    if failed:
        m.status = KILLED
        m.killers = [r["name"] for r in failed]
        m.detail = failed[0].get("detail", "")[:300]
    elif unknown:
        m.status = TIMEOUT
        m.killers = [r["name"] for r in unknown]
        m.detail = "UNKNOWN: " + unknown[0].get("detail", "")[:300]
    else:                                   # a crash of prove itself (exit 4, a signal)
        m.status = KILLED
        m.killers = [f"(prove exited {res.code})"]
        m.detail = _last_line(res.stderr)


def _prove_results(stdout: str) -> list[dict]:
    try:
        return json.loads(stdout).get("results", [])
    except (json.JSONDecodeError, AttributeError):
        return []


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


@dataclass
class Summary:
    total: int
    killed: int
    survived: int
    timeout: int
    equivalent: int
    incompetent: int
    # Killed, but only by a change detector (baseline:): the model did something else, which
    # no proof, scenario or oracle called wrong.
    killed_by_baseline_only: int = 0

    @property
    def score(self) -> Optional[float]:
        n = self.total - self.equivalent - self.incompetent
        return (self.killed + self.timeout) / n if n else None

    @property
    def score_without_baseline(self) -> Optional[float]:
        """The score had the change detectors not run."""
        n = self.total - self.equivalent - self.incompetent
        return (self.killed - self.killed_by_baseline_only + self.timeout) / n if n else None

    def as_dict(self) -> dict:
        s, w = self.score, self.score_without_baseline
        return {"total": self.total, "killed": self.killed, "survived": self.survived,
                "timeout": self.timeout, "equivalent": self.equivalent,
                "incompetent": self.incompetent,
                "killed_by_baseline_only": self.killed_by_baseline_only,
                "score": round(s, 4) if s is not None else None,
                "score_without_baseline": round(w, 4) if w is not None else None}


def summarise(mutants: list[Mutant]) -> Summary:
    count = {s: sum(1 for m in mutants if m.status == s)
             for s in (KILLED, SURVIVED, TIMEOUT, EQUIVALENT, INCOMPETENT)}
    baseline_only = sum(1 for m in mutants if m.status == KILLED and m.killers and
                        all(k.startswith(BASELINE_PREFIX) for k in m.killers))
    return Summary(len(mutants), count[KILLED], count[SURVIVED], count[TIMEOUT],
                   count[EQUIVALENT], count[INCOMPETENT], baseline_only)


def run_mutants(pkg: Package, mutants: list[Mutant], obligations: Optional[str], jobs: int,
                timeout: Optional[float], progress: Optional[Callable] = None,
                all_killers: bool = False, dask: Optional[str] = None) -> dict:
    """Run the baseline, then every mutant that is not statically equivalent against the
    obligations that reach its function (:class:`Reach`), stopping at the first killer
    unless *all_killers*. With *dask* (a dask.distributed scheduler address) the mutants
    run on that cluster's workers (:func:`run_on_dask`), the baseline here. Returns
    {"baseline_seconds", "timeout"}; sets each mutant's status."""
    prove_args = [f"-k{obligations}"] if obligations else []
    todo = [m for m in mutants if m.equivalent is None]
    for m in mutants:
        if m.equivalent is not None:
            m.status, m.detail = EQUIVALENT, m.equivalent
    # (a cluster that cannot be reached is an error before the baseline's minutes, not after)
    client = None
    if dask is not None:
        try:
            client = dask_client(dask)
        except BackendError as e:
            raise MutateError(str(e)) from None
    runner = Runner(pkg, prove_args, max(1, min(jobs, len(todo) or 1)))
    try:
        base, reach_map = runner.baseline()
        if base.code != 0:
            raise MutateError(_baseline_problem(base, obligations))
        if reach_map is None:
            raise MutateError("the unmutated run did not report what its obligations "
                              "execute: " + (_last_line(base.stderr) or "no reach file"))
        reach = Reach(reach_map, {r["name"]: float(r.get("seconds", 0.0))
                                  for r in _prove_results(base.stdout)})
        slowest = max(reach.seconds.items(), key=lambda kv: kv[1], default=None)
        if timeout is not None and slowest and timeout < slowest[1] / HOOK_SLOWDOWN:
            # a TIMEOUT counts as killed: a budget the mutants run past inflates the score
            raise MutateError(f"--timeout {timeout:g}s is shorter than {slowest[0]} takes "
                              f"(about {slowest[1] / HOOK_SLOWDOWN:.1f}s): every mutant that "
                              f"runs it would time out")
        sources, plans, limits = {}, {}, {}
        for m in todo:
            names, _ = reach.obligations(m)
            m.reached_by = len(names)
            if not names:
                m.status = SURVIVED
                m.detail = (f"no obligation executes {m.function} (the unmutated run never "
                            f"called it)")
                if progress:
                    progress(m)
                continue
            try:
                sources[m.id] = pkg.mutated_source(m)
                plans[m.id] = names
                limits[m.id] = timeout if timeout is not None else reach.time_limit(names)
            except SyntaxError as e:           # never expected: ast.unparse of a valid tree
                m.status, m.detail = INCOMPETENT, f"unparse gave invalid code: {e}"
        todo = [m for m in todo if m.id in sources]
        if client is not None:
            run_on_dask(client, pkg, todo, sources, limits, plans, not all_killers, reach,
                        progress)
            return {"baseline_seconds": round(base.seconds, 3),
                    "timeout": round(max(limits.values(), default=timeout or 0.0), 3)}
        from concurrent.futures import ThreadPoolExecutor, as_completed
        with ThreadPoolExecutor(max_workers=runner.jobs) as ex:
            futures = {ex.submit(runner.run_mutant, m, sources[m.id], limits[m.id], plans[m.id],
                                 not all_killers, reach.budgets(plans[m.id])): m
                       for m in todo}
            try:
                for fut in as_completed(futures):
                    m = futures[fut]
                    judge(m, fut.result())
                    if progress:
                        progress(m)
            except BaseException:
                for f in futures:
                    f.cancel()
                runner.close()
                raise
        return {"baseline_seconds": round(base.seconds, 3),
                "timeout": round(max(limits.values(), default=timeout or 0.0), 3)}
    finally:
        runner.close()
        if client is not None:
            close_dask(client)


# --- the Dask backend -----------------------------------------------------------------------------
# A mutant is a task of a dask.distributed cluster: the task carries the mutated module's
# source, the obligations to run and the budgets (all decided here, from the local baseline);
# the worker runs it exactly as a local job does (Runner.run_mutant: a child prove on a copy
# of the package, mutated module written in), on copies of the unmapcheck installed where the
# worker runs (it must be the same version: a worker whose copy of a mutated file differs
# from the one the source was made from would run another mutant; each task checks that).
# One Runner per worker process, one copy per task running at once, removed at exit.

_WORKER: dict = {}
_WORKER_LOCK = threading.Lock()


def _worker_runner() -> "Runner":
    with _WORKER_LOCK:
        r = _WORKER.get("runner")
        if r is None:
            import atexit
            r = _WORKER["runner"] = Runner(Package(), [], 1)
            _WORKER["made"] = 0
            atexit.register(r.close)
        if r.slots.empty():
            slot = r.tmp / f"slot{_WORKER['made']}"
            _WORKER["made"] += 1
            copy_package(slot, r.pkg.dirs)
            r.slots.put(slot)
        return r


def dask_task(file: str, module: str, original_sha: str, source: str, timeout: float,
              names: list, fail_fast: bool, budgets: dict) -> "RunResult":
    """One mutant on a Dask worker (see above)."""
    import hashlib
    r = _worker_runner()
    mine = r.pkg.impl.joinpath(*file[len("impl/"):].split("/")).read_bytes()
    if hashlib.sha256(mine).hexdigest() != original_sha:
        return RunResult(EXIT_INCOMPETENT, "", f"worker's {file} differs from the one the "
                                               f"mutant was made from (another unmapcheck "
                                               f"version?)\n", 0.0)
    stub = types.SimpleNamespace(file=file, module=module)
    return r.run_mutant(stub, source, timeout, names, fail_fast, budgets)


def run_on_dask(client, pkg: Package, todo: list, sources: dict, limits: dict,
                plans: dict, fail_fast: bool, reach: "Reach",
                progress: Optional[Callable]) -> None:
    import hashlib

    import uuid

    from distributed import as_completed as dask_completed
    futures = {}
    run_id = uuid.uuid4().hex[:8]
    try:
        for m in todo:
            sha = hashlib.sha256(pkg.impl.joinpath(*m.file[len("impl/"):].split("/"))
                                 .read_bytes()).hexdigest()
            f = client.submit(dask_task, m.file, m.module, sha, sources[m.id], limits[m.id],
                              plans[m.id], fail_fast, reach.budgets(plans[m.id]),
                              key=f"unmapcheck-mutant-{run_id}-{m.id}", pure=False)
            futures[f] = m
        for fut in dask_completed(list(futures)):
            m = futures[fut]
            try:
                res = fut.result()
            except Exception as e:      # the worker, not the mutant: no verdict to give
                raise MutateError(f"--dask: the task of {m.id} failed on its worker: "
                                  f"{type(e).__name__}: {e}") from None
            judge(m, res)
            if progress:
                progress(m)
    except BaseException:
        client.cancel(list(futures))
        raise


def _baseline_problem(base: RunResult, obligations: Optional[str]) -> str:
    which = f"-k {obligations!r}" if obligations else "every obligation"
    if base.code is None:
        return f"the unmutated impl/ did not finish prove ({which})"
    if base.code == EXIT_INCOMPETENT:
        return f"the unmutated package cannot be imported: {_last_line(base.stderr)}"
    if base.code == EXIT_WRONG_COPY:
        return f"the copy of the package was not the one imported: {_last_line(base.stderr)}"
    results = _prove_results(base.stdout)
    bad = [f"{r['name']} {r['status']}" for r in results if r.get("status") != "PROVED"]
    if bad:
        return (f"the unmutated impl/ does not pass the chosen obligations ({', '.join(bad[:3])}"
                f"{' ...' if len(bad) > 3 else ''}): mutation testing needs a passing baseline "
                f"(choose others with --obligations)")
    return f"prove on the unmutated impl/ exited {base.code}: {_last_line(base.stderr)}"


# --- the command ---------------------------------------------------------------------------------
def render_table(mutants: list[Mutant], run: bool) -> str:
    head = ["mutant", "where", "function", "operator"] + (["status", "killer"] if run else [])
    rows = []
    for m in mutants:
        row = [m.id, m.where, m.function, m.operator]
        if run:
            row += [m.status or "", m.killers[0] + (f" (+{len(m.killers) - 1})"
                                                    if len(m.killers) > 1 else "")
                    if m.killers else ""]
        elif m.equivalent:
            row[-1] += " (equivalent)"
        rows.append(row)
    widths = [max([len(head[i])] + [len(r[i]) for r in rows]) for i in range(len(head))]

    def fmt(r):
        return "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip()
    out = [fmt(head)]
    for m, r in zip(mutants, rows):
        out.append(fmt(r))
        out.append(f"    {m.before}  ->  {m.after}")
    return "\n".join(out)


def run_cli(args) -> int:
    from .cli import EXIT_FAIL, EXIT_OK, UsageError, _int_range, _positive_seconds, _print_json
    _int_range("--jobs", args.jobs, 1, 1024)
    _int_range("--max-mutants", args.max_mutants, 1, 10 ** 9)
    _int_range("--seed", args.seed, 0, 2 ** 63 - 1)
    _positive_seconds("--timeout", args.timeout)
    if args.fail_under is not None and not 0 <= args.fail_under <= 1:
        raise UsageError(f"--fail-under is a score between 0 and 1, got {args.fail_under!r}")
    if args.obligations is not None and not args.obligations.strip():
        raise UsageError("--obligations: an empty pattern")
    try:
        pkg = Package()
        mutants = select(pkg, args.targets, args.k)
        selected = len(mutants)
        mutants = sample(mutants, args.max_mutants, args.seed)
    except MutateError as e:
        raise UsageError(str(e)) from None
    if args.list:
        if args.json:
            _print_json("mutate", {"mutants": [m.as_dict(run=False) for m in mutants],
                                   "selected": selected,
                                   "summary": {"total": len(mutants),
                                               "equivalent": sum(1 for m in mutants
                                                                 if m.equivalent)}})
        else:
            if mutants:
                print(render_table(mutants, run=False))
            print(f"{len(mutants)} mutants" + (f" (a sample of {selected}, seed {args.seed})"
                                               if selected > len(mutants) else ""))
        return EXIT_OK
    names = None
    if args.obligations:
        from .cli import _select_obligations
        try:
            names = [ob.name for ob in _select_obligations([], args.obligations)]
        except UsageError:
            raise UsageError(f"--obligations {args.obligations!r} matches no obligation "
                             f"(unmapcheck list shows them)") from None
    if not mutants:
        if args.json:
            _print_json("mutate", {"mutants": [], "summary": summarise([]).as_dict()})
        else:
            print("no mutation site in what was selected")
        return EXIT_OK

    t0 = time.monotonic()
    n = len([m for m in mutants if m.equivalent is None])
    done = [0]

    def progress(m: Mutant) -> None:
        done[0] += 1
        if not args.json:
            killer = f" by {m.killers[0]}" if m.killers and m.status == KILLED else ""
            print(f"[{done[0]}/{n}] {m.status:11} {m.id}{killer} ({m.seconds:.1f}s)",
                  file=sys.stderr, flush=True)
    if not args.json:
        print(f"{len(mutants)} mutants ({len(mutants) - n} equivalent, not run); the "
              f"unmutated impl/ first", file=sys.stderr, flush=True)
    try:
        info = run_mutants(pkg, mutants, args.obligations, args.jobs, args.timeout, progress,
                           all_killers=args.all_killers, dask=getattr(args, "dask", None))
    except MutateError as e:
        raise UsageError(str(e)) from None
    total = time.monotonic() - t0
    summary = summarise(mutants)
    score = summary.score
    if args.json:
        _print_json("mutate", {
            "obligations": {"pattern": args.obligations, "names": names},
            "baseline_seconds": info["baseline_seconds"], "timeout": info["timeout"],
            "selected": selected, "seed": args.seed if selected > len(mutants) else None,
            "mutants": [m.as_dict() for m in mutants],
            "summary": dict(summary.as_dict(), seconds=round(total, 3))})
    else:
        print(render_table(mutants, run=True))
        print(f"\n{summary.total} mutants: {summary.killed} killed, {summary.survived} "
              f"survived, {summary.timeout} timeout (killed by timeout), "
              f"{summary.equivalent} equivalent, {summary.incompetent} incompetent "
              f"({total:.1f}s; baseline {info['baseline_seconds']:.1f}s, timeout "
              f"up to {info['timeout']:.1f}s per mutant)")
        if score is None:
            print("score: none (no mutant counts)")
        else:
            print(f"score: {score:.3f} = (killed + timeout) / (total - equivalent - "
                  f"incompetent) = {summary.killed + summary.timeout}/"
                  f"{summary.total - summary.equivalent - summary.incompetent}")
            if summary.killed_by_baseline_only:
                print(f"  {summary.killed_by_baseline_only} of the killed only by a change "
                      f"detector (baseline:, which runs last: the model did something else, "
                      f"nothing called it wrong); without them "
                      f"{summary.score_without_baseline:.3f}")
    if args.fail_under is not None and score is not None and score < args.fail_under:
        return EXIT_FAIL
    return EXIT_OK
