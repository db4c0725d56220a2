"""--format markdown: the whole report as Markdown (GitHub's flavour: tables, LaTeX in $...$),
for GitHub issues, notebooks and notes.

A pure function of the Report. Numbers are written as JSON writes them (views/latex.number),
so the tables show exactly the numbers of --json. The symbolic entries are SymPy's LaTeX (see
views/latex.py) inside `$...$`; user text is escaped for Markdown, and the program as typed
goes in a code block. Big systems are windowed and say so; --full writes every entry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..explain import latex_name
from ..model import Report
from .common import exact_values, overall, per_name
from .latex import COLS, ROWS, derivation, number, window

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>#|~$])")


def md_text(text: str) -> str:
    """User text for a Markdown paragraph or table cell: every character that Markdown
    (or the $...$ of GitHub's math) would read, backslash-escaped; no line breaks."""
    return _MD_SPECIAL.sub(r"\\\1", text.replace("\r", " ").replace("\n", " "))


def _math(tex: str) -> str:
    """LaTeX in `$...$` for a table cell: `|` (SymPy's |x|) escaped for the table."""
    return "$" + tex.replace("|", r"\|") + "$"


def _fence(text: str) -> str:
    """A fenced code block longer than any run of backticks in `text`."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n{text}\n{fence}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], right: bool = True) -> list[str]:
    align = ["---"] + [("---:" if right else ":---")] * (len(header) - 1)
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def _matrix(
    cells: Sequence[Sequence[str]], rows: Sequence[str], cols: Sequence[str], full: bool
) -> tuple[list[str], bool]:
    """A matrix as a table, row and column labels in math, windowed."""
    ri = window(len(rows), ROWS, full)
    ci = window(len(cols), COLS, full)
    header = [""] + ["…" if j is None else _math(latex_name(cols[j])) for j in ci]
    body = []
    for i in ri:
        if i is None:
            body.append(["⋮"] + ["⋮" for _ in ci])
            continue
        body.append([_math(latex_name(rows[i]))] +
                    ["…" if j is None else cells[i][j] for j in ci])  # fmt: skip
    return _table(header, body), len(ri) < len(rows) or len(ci) < len(cols)


def _numbers(values: Sequence[Sequence[float]]) -> list[list[str]]:
    return [[number(x) for x in row] for row in values]


def _verdict(report: Report) -> str:
    status = overall(report)
    checks = ", ".join(
        f"{c.name}: {c.status} (max \\|SymPy − torch\\| = {number(c.max_abs_diff)}, "
        f"rtol {c.rtol:g}, atol {c.atol:g})"
        for c in report.checks
    )
    return f"**Verdict: {status}**" + (f" — {checks}" if checks else "")


def _products(report: Report, full: bool) -> list[str]:
    p, s, a = report.problem, report.symbolic, report.autograd
    assert a is not None
    out: list[str] = []
    for kind, vec, names, shapes in (("vjp", p.v, p.outputs, p.output_shapes),
                                     ("jvp", p.u, p.variables, p.shapes)):  # fmt: skip
        if vec is None:
            continue
        ref = s.vjp if kind == "vjp" else s.jvp
        cand = a.vjp if kind == "vjp" else a.jvp
        assert ref is not None and cand is not None
        symbol = "v" if kind == "vjp" else "u"
        given = ", ".join(f"{md_text(n)} = {md_text(str(_nested(vals, sh)))}"
                          for n, sh, vals in per_name(vec, names, shapes))  # fmt: skip
        if kind == "vjp":
            out.append("### VJP: $v^T J$, what `y.backward(v)` leaves in `.grad`")
            out.append("")
            if p.v_implicit:
                out.append(f"The output is a scalar, so $v = 1$ (as `{md_text(p.outputs[0])}"
                           ".backward()` does) and $v^T J$ is its gradient.")  # fmt: skip
            else:
                out.append(f"${symbol}$: {given}. `y.backward(v)` adds up the rows of $J$, "
                           "each weighted by its output's entry of $v$.")  # fmt: skip
        else:
            out.append("### JVP: $J u$, forward mode (`torch.func.jvp`)")
            out.append("")
            out.append(f"${symbol}$: {given}. Forward mode adds up the columns of $J$, each "
                       "weighted by its variable's entry of $u$.")  # fmt: skip
        lines = derivation(report, kind, full)
        if lines:
            out += ["", "$$", r"\begin{aligned}", " \\\\\n".join(lines), r"\end{aligned}", "$$"]
        labels = s.col_labels if kind == "vjp" else s.row_labels
        ref_x = exact_values(list(ref), s.beyond(kind))
        rows = []
        for k in window(len(labels), ROWS, full):
            if k is None:
                rows.append(["⋮", "⋮", "⋮"])
                continue
            rows.append([_math(latex_name(labels[k])), number(ref_x[k]), number(cand[k])])
        torch_name = "torch `.grad`" if kind == "vjp" else "torch forward mode"
        what = "SymPy $v^T J$" if kind == "vjp" else "SymPy $J u$"
        out += ["", *_table(["", what, torch_name], rows), ""]
    return out


def _nested(values: Sequence[float], shape: tuple[int, ...]) -> Any:
    from ..shapes import nest

    return str(nest([number(x) for x in values], shape)).replace("'", "")


def to_markdown(report: Report, full: bool = False) -> str:
    """The report as Markdown."""
    p, s, a = report.problem, report.symbolic, report.autograd
    m, n = len(s.row_labels), len(s.col_labels)
    out = [f"## vjp: {m} output{'s' if m != 1 else ''} of {n} variable{'s' if n != 1 else ''}",
           ""]  # fmt: skip
    statements = [*p.intermediates, *zip(p.outputs, p.functions, strict=True)]
    shown = statements if full or len(statements) <= 2 * ROWS else [
        *statements[: 2 * ROWS - 2], ("…", f"{len(statements) - 2 * ROWS + 1} more"),
        statements[-1]]  # fmt: skip
    out += [_fence("\n".join(f"{name} = {text}" for name, text in shown)), ""]
    if s.outputs_latex and (full or len(s.outputs_latex) <= ROWS):
        out += _table(["output", "as SymPy reads it"],
                      [[_math(latex_name(r)), _math(t)]
                       for r, t in zip(s.row_labels, s.outputs_latex, strict=True)],
                      right=False)  # fmt: skip
        out.append("")
    windowed = False
    out += [f"### Symbolic Jacobian ({m} × {n}, {s.nonzeros:,} nonzero)", ""]
    if s.entries_latex:
        cells = [[_math(t) for t in row] for row in s.entries_latex]
        table, cut = _matrix(cells, s.row_labels, s.col_labels, full)
        windowed |= cut
        out += table
    else:
        cells = [[md_text(t) for t in row] for row in s.jacobian_text]
        table, cut = _matrix(cells, s.row_labels, s.col_labels, full)
        windowed |= cut
        why = ("SymEngine computed it, and has no LaTeX printer" if p.engine == "symengine"
               else "too big for LaTeX")  # fmt: skip
        out += [f"(as text: {why})", "", *table]
    out.append("")
    if p.point is not None and a is not None and s.jacobian is not None:
        named = per_name(p.point, p.variables, p.shapes)
        point = ", ".join(f"{md_text(name)} = {md_text(str(_nested(vals, sh)))}"
                          for name, sh, vals in named)  # fmt: skip
        out += [f"At the point {point}:", ""]
        ref = _numbers(exact_values(s.jacobian, s.beyond("jacobian")))
        out += ["**J (SymPy, 30 digits rounded to float64)**", ""]
        table, cut = _matrix(ref, s.row_labels, s.col_labels, full)
        windowed |= cut
        out += [*table, "", "**J (torch autograd, one backward pass per row)**", ""]
        out += _matrix(_numbers(a.jacobian), s.row_labels, s.col_labels, full)[0]
        out.append("")
        out += _products(report, full)
        out += [_verdict(report), ""]
    if windowed:
        out += ["*Windowed: the first rows and columns, then the last (`--full` writes every "
                "entry, `--json` has all).*", ""]  # fmt: skip
    notes = [*report.notes, *s.notes, *(a.notes if a else ())]
    for note in notes if full else notes[:10]:
        out.append(f"- {md_text(note)}")
    if report.explanation is not None and a is not None:
        e = report.explanation
        out += ["", "<details><summary>The torch calls and the pitfalls</summary>", ""]
        out.append(f"Where `{e.y}`:")
        out.append("")
        what = {"vjp": "$v^T J$", "jvp": "$J u$", "jacobian": "all of $J$"}
        rows = [[what[q] if k == 0 else "", f"`{code}`"]
                for q, codes in e.calls for k, code in enumerate(codes)]  # fmt: skip
        out += _table(["quantity", "torch"], rows, right=False)
        out.append("")
        out += [f"- {md_text(pit)}" for pit in e.pitfalls]
        out += ["", "</details>"]
    return "\n".join(out).rstrip("\n") + "\n"
