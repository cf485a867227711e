"""A self-contained HTML swimlane report of a counterexample trace.

``unmapcheck show TRACE.json --html OUT`` and ``unmapcheck explore ... --html OUT`` write it.
One file, no network: the styles and the script are inline, and a Content-Security-Policy
(``default-src 'none'``, the inline style and script allowed by their sha256 only) makes sure
that nothing is fetched and that nothing but our own script runs, whatever the trace holds.

The input is checked by the one validator of traces (checker/trace.py ``validate``), which
``unmapcheck show`` and ``replay`` use too: the report accepts exactly the traces they accept.

What it shows (docs/trace-format.md is the input):
- the header: the violated invariant and its message in kernel terms, the scenario, the fix
  toggles that were off (with their upstream titles), the command that reproduces it;
- the swimlanes: one column per thread (its CPU and role), one row per step in global order,
  each step a box with the kernel function, the scheduling point's label, the system call, the
  state changes and, folded, the call chain; preemptions, the race pair (linked both ways, the
  race window drawn in the step gutter) and the violating step are marked;
- the panel (needs JavaScript): the selected step in full and the state after it (VMAs, PTEs,
  each CPU's TLB and walk cache, struct pages, rss, tlb_flush_pending, locks) with the step's
  changes highlighted, removed entries struck through, and stale TLB / walk-cache entries
  flagged.

Without JavaScript the header and the step list (with each step's changes and call chain)
are complete; the script adds the panel, keyboard stepping and the copy button. Every string
from the trace is data: it is HTML-escaped in the markup and reaches the script only as a JSON
block with ``<``, ``>`` and ``&`` escaped, which the script inserts with ``textContent``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from typing import Any

from .trace import SCHEMA, SCHEMA_VERSION, validate, write_atomic

# The state variables in the order a developer reads them, with their headings.
STATE_TITLES = {
    "vmas": "VMAs", "ptes": "PTEs", "tlb": "TLB", "walk_cache": "paging-structure cache",
    "pages": "struct page", "rss": "rss counters", "tlb_flush_pending": "tlb_flush_pending",
    "locks": "locks held", "tlbstate": "cpu_tlbstate (x86)", "tlb_gen": "mm->context.tlb_gen",
}
PER_CPU_VARS = ("tlb", "walk_cache")
N_COLOURS = 6  # CPU colours in the style sheet: cpu0 .. cpu5, then they repeat


def write_html(doc: dict, path: str) -> None:
    """Render *doc* (a loaded trace) and write it to *path* atomically."""
    write_atomic(path, render_html(doc))


# --- checking the document ---------------------------------------------------------------------
def _checked(doc: Any) -> dict:
    """The parts of *doc* the report uses, checked and normalised (defaults filled in) by the
    one validator of traces (checker/trace.py validate), so that the report accepts exactly
    what ``unmapcheck show`` and ``replay`` accept."""
    return validate(doc, "cannot render the trace")


# --- markup --------------------------------------------------------------------------------------
def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _cpu_class(cpu: int) -> str:
    return f"cpu{cpu % N_COLOURS}"


def _fix_title(commit: str) -> str:
    try:
        from unmapcheck.impl.fixes import FIXES
    except ImportError:  # pragma: no cover - the report does not need the model
        return ""
    f = FIXES.get(commit)
    return f"{f.title} ({f.version})" if f else ""


def _is_kernel_actor(role: str) -> bool:
    return not role.startswith("process")


def _context(r: dict, s: dict) -> str:
    """What a step without a system call runs in: user space, or the kernel actor."""
    role = r["threads"][s["lane"]]["role"]
    return role if _is_kernel_actor(role) else "user space"


def _change_item(var: str, key: str, old: str | None, new: str | None) -> str:
    if new is None:
        val = f'<del>{_e(old)}</del> <span class="gone">removed</span>'
    elif old is None:
        val = f'<ins>{_e(new)}</ins>'
    else:
        val = f'<del>{_e(old)}</del> &rarr; <ins>{_e(new)}</ins>'
    return f'<li><span class="var">{_e(var)}</span> <span class="key">{_e(key)}</span>: {val}</li>'


def _header(r: dict) -> str:
    v, sc = r["violation"], r["scenario"]
    out = ['<header id="top">',
           '<p class="kicker">unmapcheck counterexample &middot; trace format '
           f'{SCHEMA} v{SCHEMA_VERSION}</p>']
    if v:
        group = f' <small>(group {_e(v["group"])})</small>' if v["group"] else ""
        out.append(f'<h1><span class="vbadge">violated</span> <code>{_e(v["invariant"])}</code>'
                   f'{group}</h1>')
        out.append(f'<p class="msg">{_e(v["message"])}</p>')
    else:
        out.append('<h1>counterexample <small>(the trace records no violation)</small></h1>')
    out.append('<dl class="facts">')
    if v and v["step"] is not None:
        who = f' by {_e(v["thread"])}' if v["thread"] else ""
        when = ("in the initial state, before any step" if v["step"] < 0 else
                f'after <a href="#s{v["step"]}">step {v["step"]}</a>')
        out.append(f'<dt>detected</dt><dd>{when}{who}</dd>')
    name = _e(sc["name"]) or "<i>unnamed</i>"
    path = f' <code>{_e(sc["path"])}</code>' if sc["path"] else ""
    out.append(f'<dt>scenario</dt><dd><b>{name}</b>{path}</dd>')
    if r["fixes_off"]:
        items = "".join(f'<li><code>{_e(c)}</code> {_e(_fix_title(c))}</li>'
                        for c in r["fixes_off"])
        out.append(f'<dt>fixes off</dt><dd><ul class="fixes">{items}</ul></dd>')
    else:
        out.append('<dt>fixes off</dt><dd>none (every historical fix applied)</dd>')
    if r["arch"]:
        out.append(f'<dt>arch</dt><dd>{_e(r["arch"])}</dd>')
    n, p = len(r["steps"]), r["preemptions"]
    run = f'{n} step{"s" * (n != 1)}, {p} preemption{"s" * (p != 1)}, ' \
          f'{len(r["threads"])} threads'
    if r["race"]:
        a, b = r["race"]
        run += (f'; race between <a href="#s{a}">step {a}</a> and <a href="#s{b}">step {b}</a>')
    out.append(f'<dt>execution</dt><dd>{run}</dd>')
    if r["command"]:
        out.append('<dt>reproduce</dt><dd class="cmdrow"><pre class="cmd" id="cmd">'
                   f'{_e(r["command"])}</pre><button type="button" id="copy" class="jsonly">'
                   'copy</button></dd>')
    out.append('</dl>')
    if sc["text"]:
        out.append(f'<details class="toml"><summary>scenario (TOML)</summary>'
                   f'<pre>{_e(sc["text"])}</pre></details>')
    out.append('</header>')
    return "\n".join(out)


def _legend(r: dict) -> str:
    cpus = sorted({t["cpu"] for t in r["threads"]})
    chips = "".join(f'<span class="chip {_cpu_class(c)}">CPU{c}</span>' for c in cpus)
    return ('<section class="legend" aria-label="legend">'
            f'{chips}'
            '<span class="chip pre-l">&#x2933; preemption (switched away from a runnable thread)'
            '</span><span class="chip race-l">&#x26A1; race pair, the bar spans the window'
            '</span>'
            '<span class="chip viol-l">&#x2716; invariant violated after this step</span>'
            '<span class="chip"><ins>added</ins> <span class="chg-l">changed</span> '
            '<del>removed</del></span>'
            '</section>\n'
            '<div class="toolbar"><label><input type="checkbox" id="quiet"> hide steps that '
            'change nothing</label>'
            '<span class="jsonly keys">keys: <kbd>&larr;</kbd>/<kbd>&rarr;</kbd> or '
            '<kbd>k</kbd>/<kbd>j</kbd> step &middot; <kbd>Home</kbd>/<kbd>End</kbd> &middot; '
            '<kbd>v</kbd> violation &middot; <kbd>r</kbd> race partner &middot; click a step'
            '</span><span id="pos" class="jsonly" aria-live="polite"></span></div>')


def _box(r: dict, i: int, s: dict) -> str:
    """One step: function, operation and system call on the first line, then the badges, the
    changes, and the call chain (in the tooltip; the panel shows it as a list)."""
    v, race = r["violation"], r["race"]
    op = (f' <span class="op">{_e(s["label"])}</span>'
          if s["label"] and s["label"] != s["function"] else "")
    chain = " \u2192 ".join(s["stack"]) if s["stack"] else s["function"]
    parts = [f'<div class="box" title="{_e(chain)}">',
             f'<div class="what"><span class="fn">{_e(s["function"])}</span>{op}'
             f'<span class="sys">{_e(s["syscall"] or _context(r, s))}</span></div>']
    badges = []
    if s["preemption"]:
        badges.append('<span class="b pre">&#x2933; preempted</span>')
    if i in race:
        other = race[1] if i == race[0] else race[0]
        badges.append(f'<a class="b race" href="#s{other}">&#x26A1; race &harr; step {other}</a>')
    if v and v.get("step") == i:
        badges.append(f'<span class="b viol">&#x2716; {_e(v["invariant"])} violated</span>')
    badges += [f'<span class="b ev">{_e(ev)}</span>' for ev in s["events"]]
    if badges:
        parts.append(f'<div class="badges">{"".join(badges)}</div>')
    if s["results"]:
        parts.append('<ul class="ret">' + "".join(f'<li>&#x21B5; {_e(x)}</li>'
                                                  for x in s["results"]) + '</ul>')
    if s["changes"]:
        parts.append('<ul class="chg">' + "".join(_change_item(*c) for c in s["changes"])
                     + '</ul>')
    if s["stack"]:
        parts.append('<div class="chain"><span class="muted">call chain</span><ol>'
                     + "".join(f'<li>{_e(f)}</li>' for f in s["stack"]) + '</ol></div>')
    parts.append('</div>')
    return "".join(parts)


def _lanes(r: dict) -> str:
    threads, steps, race = r["threads"], r["steps"], r["race"]
    vstep = r["violation"].get("step") if r["violation"] else None
    first = [None] * len(threads)
    last = [None] * len(threads)
    for i, s in enumerate(steps):
        k = s["lane"]
        first[k] = i if first[k] is None else first[k]
        last[k] = i
    out = ['<table class="lanes"><colgroup><col class="ncol">'
           + '<col>' * len(threads) + '</colgroup><thead><tr><th class="n">step</th>']
    for t in threads:
        kind = "kernel thread" if _is_kernel_actor(t["role"]) else "user process"
        prog = ""
        if t["program"]:
            prog = ('<details class="prog"><summary>program</summary><ol>'
                    + "".join(f'<li>{_e(p)}</li>' for p in t["program"]) + '</ol></details>')
        out.append(f'<th class="lane {_cpu_class(t["cpu"])}"><div class="tname">{_e(t["name"])}'
                   f' <span class="cpu">CPU{t["cpu"]}</span></div><div class="role">'
                   f'{_e(t["role"])} <span class="kind">{kind}</span></div>{prog}</th>')
    out.append('</tr></thead><tbody>')
    for i, s in enumerate(steps):
        cls = ["step"]
        if s["preemption"]:
            cls.append("pre")
        if i in race:
            cls.append("race")
        if i == vstep:
            cls.append("viol")
        if not (s["changes"] or s["events"] or len(cls) > 1):
            cls.append("quiet")
        gutter = "n"
        if race and race[0] <= i <= race[1]:
            gutter += " rw" + (" rw-a" if i == race[0] else "") + (" rw-b" if i == race[1] else "")
        row = [f'<tr id="s{i}" data-step="{i}" class="{" ".join(cls)}">'
               f'<th class="{gutter}"><a href="#s{i}">{i}</a></th>']
        for k, t in enumerate(threads):
            if k == s["lane"]:
                row.append(f'<td class="lane {_cpu_class(s["cpu"])}">{_box(r, i, s)}</td>')
            else:
                live = first[k] is not None and first[k] < i < last[k]
                row.append(f'<td class="lane {_cpu_class(t["cpu"])}{" live" * live}"></td>')
        row.append('</tr>')
        out.append("".join(row))
    out.append('</tbody></table>')
    return "\n".join(out)


def _script_data(r: dict) -> str:
    """The state as the script needs it: the initial state and, per step, what changed in the
    states (so that the file grows with the changes, not with steps x state size)."""
    states = r["states"]
    order = [v for v in STATE_TITLES if any(v in st for st in states)]
    order += sorted({v for st in states for v in st} - set(order))
    delta = []
    for a, b in zip(states, states[1:]):
        d = []
        for var in order:
            x, y = a.get(var, {}), b.get(var, {})
            for k in sorted(set(x) | set(y)):
                if x.get(k) != y.get(k):
                    d.append([var, k, y.get(k)])
        delta.append(d)
    v = r["violation"]
    data = {
        "vars": order, "titles": {k: STATE_TITLES.get(k, k) for k in order},
        "perCpu": [k for k in PER_CPU_VARS if k in order],
        "cpus": sorted({t["cpu"] for t in r["threads"]}),
        "init": {var: sorted(states[0].get(var, {}).items()) for var in order},
        "delta": delta,
        "changes": [s["changes"] for s in r["steps"]],
        "threads": [{"name": t["name"], "cpu": t["cpu"], "role": t["role"]}
                    for t in r["threads"]],
        "lane": [s["lane"] for s in r["steps"]],
        "cpu": [s["cpu"] for s in r["steps"]],
        "viol": v["step"] if v and v["step"] is not None and v["step"] >= 0 else None,
        "race": r["race"],
        "title": (f'{v["invariant"]} \u00b7 ' if v else "") + r["scenario"]["name"],
    }
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    # Inside <script type="application/json"> only "</script" or "<!--" could end the block:
    # no "<" survives, and ">"/"&" go too for good measure. JSON.parse undoes the escapes.
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _sha256(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def render_html(doc: dict) -> str:
    """The report for a trace document (as load_trace returns it) as one HTML page."""
    r = _checked(doc)
    v = r["violation"]
    title = (f'{v["invariant"]}: ' if v else "") + (r["scenario"]["name"] or "trace") \
        + " \u2014 unmapcheck counterexample"
    csp = (f"default-src 'none'; style-src '{_sha256(CSS)}'; script-src '{_sha256(JS)}'; "
           "base-uri 'none'; form-action 'none'")
    return "\n".join([
        '<!DOCTYPE html>',
        '<html lang="en" class="nojs">',
        '<head>',
        '<meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{csp}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="generator" content="unmapcheck">',
        f'<title>{_e(title)}</title>',
        f'<style>{CSS}</style>',
        '</head>',
        '<body>',
        _header(r),
        _legend(r),
        '<main>',
        f'<div class="lanes-wrap">{_lanes(r)}</div>',
        '<aside id="panel"><noscript><p class="muted">The state panel '
        '(page tables, TLBs, struct pages at each step) needs JavaScript; every step\'s '
        'changes are listed in the step list.</p></noscript><div id="detail"></div>'
        '<div id="state"></div></aside>',
        '</main>',
        f'<script type="application/json" id="trace-data">{_script_data(r)}</script>',
        f'<script>{JS}</script>',
        '</body>',
        '</html>',
        '',
    ])


CSS = """
:root{--fg:#1b2230;--mut:#5d6675;--line:#d5d9e0;--bg2:#f6f7f9;--bad:#c0262d;--badbg:#fdecec;
--add:#dcf3dc;--chg:#fff1b8;--race:#b0127a;--pre:#b7791f;
--mono:ui-monospace,SFMono-Regular,Menlo,Consolas,"DejaVu Sans Mono",monospace}
.cpu0{--c:#1f63c6;--t:#eaf1fc;--l:#b9cff2}.cpu1{--c:#c45a0a;--t:#fdf0e4;--l:#f3cba8}
.cpu2{--c:#1d7f3e;--t:#e6f5eb;--l:#b2dfc0}.cpu3{--c:#7442c0;--t:#f1eafb;--l:#d3c1f0}
.cpu4{--c:#0f7f86;--t:#e2f5f6;--l:#aadde0}.cpu5{--c:#8a6d00;--t:#faf4dc;--l:#e6d690}
*{box-sizing:border-box}
body{margin:0;font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg)}
code,pre,kbd,.fn,.op,.chg,.chain,.prog,.kv,.cmd,.sys,.var,.key{font-family:var(--mono);
  font-size:12px}
a{color:#1a4fa0}
header{padding:14px 20px 10px;background:var(--bg2);border-bottom:1px solid var(--line)}
.kicker{margin:0;color:var(--mut);font-size:12px}
h1{font-size:20px;margin:4px 0 6px}h1 code{font-size:19px}h1 small{color:var(--mut);font-weight:400}
.vbadge{background:var(--bad);color:#fff;border-radius:4px;padding:1px 7px;font-size:14px;
  vertical-align:2px}
.msg{font-size:16px;margin:0 0 10px;padding:8px 12px;border-left:4px solid var(--bad);
  background:var(--badbg);max-width:110ch}
dl.facts{display:grid;grid-template-columns:max-content minmax(0,1fr);gap:3px 14px;margin:0}
dt{color:var(--mut)}dd{margin:0}ul.fixes{margin:0;padding:0;list-style:none}
.cmdrow{display:flex;gap:8px;align-items:flex-start}
pre.cmd{margin:0;padding:4px 8px;background:#fff;border:1px solid var(--line);border-radius:4px;
  white-space:pre-wrap;word-break:break-all}
details.toml{margin-top:8px}
details.toml pre{background:#fff;border:1px solid var(--line);padding:8px;max-height:24em;
  overflow:auto}
.legend,.toolbar{display:flex;flex-wrap:wrap;gap:6px 10px;align-items:center;padding:6px 20px;
  font-size:12px;border-bottom:1px solid var(--line)}
.chip{border:1px solid var(--line);border-radius:10px;padding:1px 8px;background:#fff}
.chip[class*=cpu]{background:var(--t);border-color:var(--c);border-left:4px solid var(--c);
  font-weight:600}
.pre-l{border-color:var(--pre)}.race-l{border-color:var(--race);color:var(--race)}
.viol-l{border-color:var(--bad);color:var(--bad)}
.chg-l{background:var(--chg)}ins{text-decoration:none;background:var(--add)}del{color:var(--bad)}
.toolbar .keys{color:var(--mut)}#pos{margin-left:auto;font-weight:600}
kbd{border:1px solid var(--line);border-bottom-width:2px;border-radius:3px;padding:0 3px;
  background:#fff}
.nojs .jsonly{display:none}
main{display:grid;grid-template-columns:minmax(0,3fr) minmax(340px,2fr)}
.lanes-wrap{min-width:0;padding:0 0 40vh}
table.lanes{width:100%;border-collapse:separate;border-spacing:0;table-layout:fixed}
col.ncol{width:3.6em}
.lanes thead th{position:sticky;top:0;z-index:2;background:#fff;border-bottom:2px solid var(--line);
  text-align:left;padding:6px 8px;vertical-align:top;font-weight:400}
.lanes thead th.lane{border-top:4px solid var(--c);background:var(--t)}
.tname{font-weight:700;font-size:15px}.tname .cpu{color:var(--c);font-family:var(--mono)}
.role{color:var(--mut);font-size:12px}
.kind{border:1px solid var(--line);border-radius:8px;padding:0 5px;font-size:11px}
.prog ol{margin:2px 0;padding-left:2.2em}
.lanes td,.lanes tbody th{padding:2px 6px;vertical-align:top}
.lanes tbody th{text-align:right;font-weight:400;font-family:var(--mono);font-size:12px;
  color:var(--mut);padding-top:6px}
.lanes tbody th a{color:inherit;text-decoration:none}
td.lane.live{background:linear-gradient(var(--l),var(--l)) center/2px 100% no-repeat}
.box{border:1px solid var(--c);border-left:4px solid var(--c);background:var(--t);border-radius:4px;
  padding:2px 6px;cursor:pointer;overflow-wrap:anywhere}
.what{display:flex;flex-wrap:wrap;align-items:baseline;gap:2px 6px}
.fn{font-weight:700}
.op{border:1px solid var(--c);color:var(--c);background:#fff;border-radius:8px;padding:0 5px}
.sys{color:var(--mut);font-size:11px;margin-left:auto}
.lanes .chain{display:none}
aside .chain ol{margin:0 0 2px;padding:0;list-style:none;display:flex;flex-wrap:wrap;gap:0 4px}
aside .chain li+li::before{content:"\\2192  ";color:var(--mut)}
aside .chain li:last-child{font-weight:700}
.badges{display:flex;flex-wrap:wrap;gap:3px;margin:2px 0}
.b{font-size:11px;border-radius:3px;padding:0 5px;color:#fff;text-decoration:none;
  white-space:nowrap}
.b.pre{background:var(--pre)}.b.race{background:var(--race)}.b.viol{background:var(--bad)}
.b.ev{background:#56606e}
ul.ret{margin:2px 0;padding:0;list-style:none;font-family:var(--mono);font-weight:600}
ul.chg{margin:2px 0;padding:0;list-style:none}ul.chg li{padding-left:1em;text-indent:-1em}
.var{color:var(--mut)}.key{font-weight:600}.gone{color:var(--bad);font-size:11px}
.prog summary{color:var(--mut);font-size:11px;cursor:pointer}
tr.pre>*{border-top:2px dashed var(--pre)}
tr.race .box{box-shadow:0 0 0 2px var(--race)}
tr.viol .box{border-color:var(--bad);box-shadow:0 0 0 3px var(--bad);background:var(--badbg)}
th.rw{box-shadow:inset -4px 0 0 var(--race)}
th.rw-a,th.rw-b{color:var(--race)!important;font-weight:700!important}
tr.sel>th{background:var(--fg);color:#fff!important}
tr.sel .box{outline:2px solid var(--fg);outline-offset:2px}
tr:target>th{text-decoration:underline}
body:has(#quiet:checked) tr.quiet{display:none}
aside{position:sticky;top:0;align-self:start;max-height:100vh;overflow:auto;
  border-left:1px solid var(--line);padding:8px 14px 24px;background:#fff}
aside h2{font-size:15px;margin:6px 0}
aside h3{font-size:13px;margin:12px 0 3px;border-bottom:1px solid var(--line)}
aside h4{font-size:12px;margin:6px 0 2px;color:var(--c)}
aside .box{cursor:default}
.muted{color:var(--mut)}aside p.muted{margin:2px 0;font-size:12px}
table.kv{width:100%;border-collapse:collapse}
.kv td{padding:1px 4px;vertical-align:top;border-bottom:1px solid #eef0f3}
.kv td.k{white-space:nowrap;color:var(--mut);width:1%}
.kv tr.add td{background:var(--add)}.kv tr.chg td{background:var(--chg)}
.kv tr.del td{background:var(--badbg);color:var(--bad);text-decoration:line-through}
.hint{background:var(--bad);color:#fff;border-radius:3px;padding:0 4px;margin-left:6px;
  font-size:11px;text-decoration:none;display:inline-block}
@media (max-width:900px){main{display:block}
aside{position:static;max-height:none;border-left:0;border-top:2px solid var(--line)}}
@media print{
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
body{font-size:10pt}.toolbar,#copy{display:none}main{display:block}.lanes-wrap{padding:0}
.lanes thead th{position:static}tr{break-inside:avoid}
aside{position:static;max-height:none;overflow:visible;border:0;border-top:2px solid var(--line);
  break-before:page}
tr.sel .box{outline:0}
}
""".strip()


JS = r"""
(() => {
"use strict";
const $ = (s) => document.querySelector(s);
const mk = (tag, cls, text) => {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
};
document.documentElement.className = "js";
const D = JSON.parse($("#trace-data").textContent);
const rows = Array.from(document.querySelectorAll("tr.step"));
const N = rows.length;
let cur = -1;

// The state after each step: S[0] initial, S[i + 1] after step i (copy-on-write per variable).
const S = [{}];
for (const v of D.vars) S[0][v] = new Map(D.init[v]);
for (const d of D.delta) {
  const prev = S[S.length - 1], next = Object.assign({}, prev), copied = new Set();
  for (const [v, k, x] of d) {
    if (!copied.has(v)) { next[v] = new Map(prev[v]); copied.add(v); }
    if (x === null) next[v].delete(k); else next[v].set(k, x);
  }
  S.push(next);
}

// Natural order: numbers (decimal or 0x hex) by value, so pfn 9 sorts before pfn 10.
const tok = (s) => s.split(/(0x[0-9a-fA-F]+|\d+)/).filter((x) => x !== "")
  .map((x) => (/^(0x[0-9a-f]+|\d+)$/i.test(x) ? Number(x) : x));
const cmp = (a, b) => {
  const x = tok(a), y = tok(b);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    const p = x[i], q = y[i];
    if (p === q) continue;
    if (typeof p !== typeof q) return typeof p === "number" ? -1 : 1;
    return p < q ? -1 : 1;
  }
  return x.length - y.length;
};

// Entries the reader should not miss: TLB entries that disagree with the page table or reach
// a freed frame, walk-cache entries that reach a page that is no longer a page table.
function hints(st) {
  const h = new Map(), ptes = st.ptes || new Map(), pages = st.pages || new Map();
  for (const [k, val] of st.tlb || []) {
    const m = /^pfn (\d+)/.exec(val), key = k.replace(/^cpu\d+ /, ""), pte = ptes.get(key);
    if (!m) continue;
    const pm = pte && /^pfn (\d+)/.exec(pte), out = [];
    if (pte === undefined) out.push("stale: PTE none");
    else if (!pm || pm[1] !== m[1]) out.push("stale: PTE " + pte);
    if (pages.get("pfn " + m[1]) === "free") out.push("freed frame");
    if (out.length) h.set("tlb\n" + k, out.join(", "));
  }
  for (const [k, val] of st.walk_cache || []) {
    const m = /pfn (\d+)/.exec(val), pg = m ? pages.get("pfn " + m[1]) : undefined;
    if (pg !== undefined && !/^page table/.test(pg)) {
      h.set("walk_cache\n" + k, "pfn " + m[1] + " is no page table now: " + pg);
    }
  }
  return h;
}

function kvTable(v, keys, shown, st, ch, hint) {
  if (!keys.length) return mk("p", "muted", "(none)");
  const t = mk("table", "kv");
  for (const k of keys) {
    const tr = mk("tr"), td = mk("td", "v"), c = ch.get(v + "\n" + k), val = st[v].get(k);
    tr.append(mk("td", "k", shown(k)));
    if (!c) td.append(val);
    else if (c[3] === null) td.append(c[2] ?? "");                       // removed
    else if (c[2] === null) td.append(val ?? c[3]);                      // added
    else td.append(mk("del", null, c[2]), " \u2192 ", val ?? c[3]);     // changed
    if (c) {
      const kind = c[3] === null ? "removed" : c[2] === null ? "added" : "changed";
      tr.className = { removed: "del", added: "add", changed: "chg" }[kind];
      tr.title = kind + " at this step";
    }
    const hn = hint.get(v + "\n" + k);
    if (hn) td.append(mk("span", "hint", hn));
    tr.append(td);
    t.append(tr);
  }
  return t;
}

function renderState(i) {
  const st = S[i + 1], ch = new Map(), hint = hints(st), box = $("#state");
  for (const c of D.changes[i]) ch.set(c[0] + "\n" + c[1], c);
  box.replaceChildren(mk("h2", null, "State after step " + i));
  for (const v of D.vars) {
    if (!st[v]) st[v] = new Map();
    const keys = new Set(st[v].keys());
    for (const c of D.changes[i]) if (c[0] === v && c[3] === null) keys.add(c[1]);
    const sorted = Array.from(keys).sort(cmp), sec = mk("section");
    const h = mk("h3", null, D.titles[v] + " "), n = st[v].size;
    h.append(mk("span", "muted", "(" + n + ")"));
    sec.append(h);
    if (D.perCpu.includes(v)) {
      const groups = new Map(D.cpus.map((c) => [String(c), []])), other = [];
      for (const k of sorted) {
        const m = /^cpu(\d+) /.exec(k);
        if (!m) { other.push(k); continue; }
        if (!groups.has(m[1])) groups.set(m[1], []);
        groups.get(m[1]).push(k);
      }
      for (const [c, ks] of groups) {
        const g = mk("div", "cpu" + (Number(c) % 6));
        const rest = (k) => k.slice(k.indexOf(" ") + 1);
        g.append(mk("h4", null, "CPU" + c), kvTable(v, ks, rest, st, ch, hint));
        sec.append(g);
      }
      if (other.length) sec.append(kvTable(v, other, (k) => k, st, ch, hint));
    } else {
      sec.append(kvTable(v, sorted, (k) => k, st, ch, hint));
    }
    box.append(sec);
  }
}

function renderDetail(i) {
  const t = D.threads[D.lane[i]], box = $("#detail");
  const h = mk("h2", "cpu" + (D.cpu[i] % 6));
  h.append("Step " + i + " ", mk("span", "muted", "of " + (N - 1) + " \u00b7 " + t.name +
    " on CPU" + D.cpu[i] + " \u00b7 " + t.role));
  const b = rows[i].querySelector(".box").cloneNode(true);
  b.removeAttribute("title");
  const wrap = mk("div", "cpu" + (D.cpu[i] % 6));
  wrap.append(b);
  box.replaceChildren(h, wrap);
}

function select(i, scroll, initial) {
  if (i < 0 || i >= N) return;
  if (cur >= 0) rows[cur].classList.remove("sel");
  cur = i;
  rows[i].classList.add("sel");
  document.body.dataset.step = String(i);
  document.title = "step " + i + "/" + (N - 1) + " \u00b7 " + D.title;
  $("#pos").textContent = "step " + i + " / " + (N - 1);
  renderDetail(i);
  renderState(i);
  // The URL names the step, so that a link to it can be shared; not while loading (the page is
  // not the user's to rename yet, and headless screenshots take it for a navigation).
  if (!initial) history.replaceState(null, "", "#s" + i);
  if (scroll) rows[i].scrollIntoView({ block: "nearest" });
}

const shown = (i) => rows[i].getClientRects().length > 0;
function move(d) {
  let i = cur;
  do { i += d; } while (i >= 0 && i < N && !shown(i));
  if (i >= 0 && i < N) select(i, true);
}
function edge(first) {
  const order = first ? rows.keys() : Array.from(rows.keys()).reverse();
  for (const i of order) if (shown(i)) { select(i, true); return; }
}

document.addEventListener("keydown", (e) => {
  if (e.altKey || e.ctrlKey || e.metaKey || e.isComposing) return;
  const k = e.key;
  if (k === "ArrowRight" || k === "j") move(1);
  else if (k === "ArrowLeft" || k === "k") move(-1);
  else if (k === "Home") edge(true);
  else if (k === "End") edge(false);
  else if (k === "v" && D.viol !== null) select(D.viol, true);
  else if (k === "r" && D.race.length) select(cur === D.race[0] ? D.race[1] : D.race[0], true);
  else return;
  e.preventDefault();
});

document.addEventListener("click", (e) => {
  const a = e.target.closest("a[href^='#s']");
  if (a) {
    e.preventDefault();
    const i = Number(a.hash.slice(2));
    if (!shown(i)) $("#quiet").checked = false;
    select(i, true);
    return;
  }
  if (e.target.closest("summary")) return;
  const tr = e.target.closest("tr.step");
  if (tr) select(Number(tr.dataset.step), false);
});

$("#quiet").addEventListener("change", () => {
  if (cur >= 0 && shown(cur)) rows[cur].scrollIntoView({ block: "nearest" });
});

const copy = $("#copy");
if (copy) copy.addEventListener("click", () => {
  const text = $("#cmd").textContent;
  const done = () => {
    copy.textContent = "copied";
    setTimeout(() => { copy.textContent = "copy"; }, 1200);
  };
  if (navigator.clipboard) navigator.clipboard.writeText(text).then(done, () => {});
  const r = document.createRange();  // and select it, for a manual copy where that fails
  r.selectNodeContents($("#cmd"));
  const s = getSelection();
  s.removeAllRanges();
  s.addRange(r);
});

// Start at the step named in the URL (#s12), else at the violation without scrolling away from
// the header: the panel then shows the state at the moment it went wrong.
const m = /^#s(\d+)$/.exec(location.hash), linked = m && Number(m[1]) < N;
if (N) select(linked ? Number(m[1]) : (D.viol !== null ? D.viol : 0), linked, true);
})();
""".strip()
