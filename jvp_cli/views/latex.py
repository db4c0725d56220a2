"""--format latex: the whole report as a LaTeX fragment for lecture notes and homework sheets.

A pure function of the Report. The symbolic entries are SymPy's LaTeX (made by symbolic.py
through explain.latex_cells, with names of our own making); every piece of user text (names,
the program as typed, notes) is escaped, so nothing the user wrote can run as a TeX command.
The fragment needs amsmath (bmatrix, align*). Big systems are windowed (first rows and
columns, then the last, with \\cdots and \\vdots) and say so; --full writes every entry.

Numbers are written as JSON writes them (the shortest text that reads back as the same
float64), so a reader can check them against --json.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..explain import latex_name, latex_text
from ..model import Report
from .common import exact_values, json_number, overall, per_name

ROWS, COLS = 12, 8  # the window of a matrix (--full: all)
TERMS = 6  # weighted rows / columns written out (--full: all)
PER_LINE = 3  # terms on one line of the derivation


def number(x: float) -> str:
    """A float as JSON writes it (repr: the shortest round-trip text), 10.0 as 10; values
    beyond float64 as their 30-digit decimal."""
    value = json_number(x)  # the strings (NaN, Infinity, a 30-digit decimal) as JSON has them
    if isinstance(value, str):
        return value
    text = repr(value)
    return text[:-2] if text.endswith(".0") else text


def tex_number(x: float) -> str:
    """number(x) for math mode: 1.5e-20 -> 1.5 \\times 10^{-20}, NaN upright, inf as \\infty."""
    text = number(x)
    if text == "NaN":
        return r"\mathrm{NaN}"
    if text.endswith("Infinity"):
        return ("-" if text.startswith("-") else "") + r"\infty"
    if "e" in text or "E" in text:
        mantissa, _, exponent = text.lower().partition("e")
        exp = str(int(exponent))
        return rf"{mantissa} \times 10^{{{exp}}}" if mantissa not in ("1", "-1") else (
            ("-" if mantissa == "-1" else "") + rf"10^{{{exp}}}")  # fmt: skip
    return text


def window(n: int, limit: int, full: bool) -> list[int | None]:
    """Indices to write: all, or the first limit - 1, a gap (None), the last."""
    if full or n <= limit:
        return list(range(n))
    return [*range(limit - 2), None, n - 1]


def bmatrix(cells: Sequence[Sequence[str]], full: bool) -> tuple[str, bool]:
    """A bmatrix of LaTeX cells, windowed; whether anything was left out."""
    m = len(cells)
    n = len(cells[0]) if m else 0
    rows, cols = window(m, ROWS, full), window(n, COLS, full)
    lines = []
    for i in rows:
        if i is None:
            lines.append(" & ".join(r"\ddots" if j is None else r"\vdots" for j in cols))
            continue
        lines.append(" & ".join(r"\cdots" if j is None else cells[i][j] for j in cols))
    body = " \\\\\n".join(lines)
    return rf"\begin{{bmatrix}}{body}\end{{bmatrix}}", len(rows) < m or len(cols) < n


def _names(labels: Sequence[str], full: bool) -> str:
    shown = window(len(labels), COLS, full)
    return ", ".join(r"\ldots" if k is None else latex_name(labels[k]) for k in shown)


def _vector(values: Sequence[float], full: bool, column: bool = False) -> str:
    cells = [[tex_number(x)] for x in values] if column else [[tex_number(x) for x in values]]
    return bmatrix(cells, full)[0]


def _point(report: Report, full: bool) -> str:
    p = report.problem
    assert p.point is not None
    parts = []
    for name, shape, vals in per_name(p.point, p.variables, p.shapes):
        if not shape:
            parts.append(f"{latex_name(name)} = {tex_number(vals[0])}")
            continue
        cols = shape[-1]
        rows = [[tex_number(x) for x in vals[k : k + cols]] for k in range(0, len(vals), cols)]
        parts.append(f"{latex_name(name)} = {bmatrix(rows, full)[0]}")
    return r",\quad ".join(parts)


def _matrix_cells(values: Sequence[Sequence[float]], beyond: dict[Any, str]) -> list[list[str]]:
    return [[tex_number(x) for x in row] for row in exact_values(values, beyond)]


def derivation(report: Report, kind: str, full: bool) -> list[str]:
    """The lines of an align* with the weighted rows (v^T J) or columns (J u): symbolic,
    at the point, and the sum; zero weights left out (and said)."""
    e = report.explanation
    product = None if e is None else (e.vjp if kind == "vjp" else e.jvp)
    if product is None:
        return []
    column = kind == "jvp"
    nonzero = [t for t in product.terms if t.weight != 0]
    zeros = len(product.terms) - len(nonzero)
    shown = nonzero if full or len(nonzero) <= TERMS else nonzero[: TERMS - 1]
    more = len(nonzero) - len(shown)

    def vec(cells: Sequence[str]) -> str:
        grid = [[c] for c in cells] if column else [list(cells)]
        return bmatrix(grid, full)[0]

    def side(which: str) -> list[str]:
        pieces = []
        for k, t in enumerate(shown):
            if which == "symbolic":
                cells = list(t.latex) if t.latex else [r"\cdot"] * len(t.values)
            else:
                beyond: dict[tuple[int, ...], str] = {(i,): text for i, text in t.exact}
                cells = [tex_number(x) for x in exact_values(list(t.values), beyond)]
            w = t.weight
            sign = "-" if w < 0 else ("+" if k else "")
            pieces.append(f"{sign} {tex_number(abs(w))} {vec(cells)}".strip())
        if more:
            pieces.append(rf"+ \cdots \text{{ ({more} more)}}")
        if not pieces:
            pieces = ["0"]
        lines = []
        for k in range(0, len(pieces), PER_LINE):
            lines.append(" ".join(pieces[k : k + PER_LINE]))
        return lines

    head = "v^{T} J" if kind == "vjp" else "J u"
    out = []
    symbolic_known = all(t.latex for t in shown)
    groups = [side("symbolic")] if symbolic_known else []
    groups.append(side("values"))
    for g, lines in enumerate(groups):
        for k, line in enumerate(lines):
            lead = (f"{head} &= " if g == 0 else "&= ") if k == 0 else r"&\quad "
            out.append(lead + line)
    beyond_r: dict[tuple[int, ...], str] = {(i,): text for i, text in product.result_exact}
    result = exact_values(list(product.result), beyond_r)
    out.append("&= " + _vector(result, full, column))
    if zeros:
        out[-1] += rf" && \text{{({zeros} term{'s' if zeros != 1 else ''} with weight 0 " \
                   r"left out)}"  # fmt: skip
    return out


def _verdict_text(report: Report) -> str:
    status = overall(report)
    parts = []
    for c in report.checks:
        parts.append(
            rf"{latex_text(c.name)}: {latex_text(c.status)} "
            rf"($\max|\mathrm{{SymPy}} - \mathrm{{torch}}| = {tex_number(c.max_abs_diff)}$)"
        )
    detail = "; ".join(parts)
    return rf"\textbf{{Verdict:}} {latex_text(status)}" + (f" ({detail})" if detail else "")


def _comparison(report: Report, kind: str, full: bool) -> list[str]:
    """SymPy's and torch's values of v^T J (by variable element) or J u (by output)."""
    p, s, a = report.problem, report.symbolic, report.autograd
    assert a is not None
    if kind == "vjp":
        ref, cand, labels = s.vjp, a.vjp, s.col_labels
        what, torch_name = "v^{T} J", r"\texttt{.grad} after \texttt{y.backward(v)}"
    else:
        ref, cand, labels = s.jvp, a.jvp, s.row_labels
        what, torch_name = "J u", r"torch forward mode (\texttt{torch.func.jvp})"
    assert ref is not None and cand is not None
    ref_x = exact_values(list(ref), s.beyond(kind))
    lines = [r"\begin{tabular}{lrr}", rf" & SymPy ${what}$ & {torch_name} \\ \hline"]
    for k in window(len(labels), ROWS, full):
        if k is None:
            lines.append(r"$\vdots$ & $\vdots$ & $\vdots$ \\")
            continue
        lines.append(rf"${latex_name(labels[k])}$ & ${tex_number(ref_x[k])}$ & "
                     rf"${tex_number(cand[k])}$ \\")  # fmt: skip
    lines.append(r"\end{tabular}")
    del p
    return lines


def to_latex(report: Report, full: bool = False) -> str:
    """The report as a LaTeX fragment (needs \\usepackage{amsmath})."""
    p, s, a = report.problem, report.symbolic, report.autograd
    m, n = len(s.row_labels), len(s.col_labels)
    out = [
        "% vjp report: a LaTeX fragment (needs \\usepackage{amsmath})",
        rf"\setcounter{{MaxMatrixCols}}{{{max(10, (n if full else COLS) + 1)}}}",
        rf"\noindent\textbf{{Program}} ({m} output{'s' if m != 1 else ''} of {n} variable"
        rf"{'s' if n != 1 else ''}), as parsed:",
        r"\begin{quote}\ttfamily",
    ]
    statements = [*p.intermediates, *zip(p.outputs, p.functions, strict=True)]
    if not full and len(statements) > 2 * ROWS:
        left = len(statements) - 2 * ROWS + 1
        statements = [*statements[: 2 * ROWS - 2], ("...", f"({left} more statements)"),
                      statements[-1]]  # fmt: skip
    out.append(" \\\\\n".join(latex_text(f"{name} = {text}") for name, text in statements))
    out.append(r"\end{quote}")
    if s.outputs_latex and (full or len(s.outputs_latex) <= ROWS):
        out.append(r"\begin{align*}")
        out.append(" \\\\\n".join(f"{latex_name(label)} &= {tex}"
                                  for label, tex in zip(s.row_labels, s.outputs_latex,
                                                        strict=True)))  # fmt: skip
        out.append(r"\end{align*}")
    windowed = False
    jac = rf"J = \frac{{\partial ({_names(s.row_labels, full)})}}" \
          rf"{{\partial ({_names(s.col_labels, full)})}}"  # fmt: skip
    if s.entries_latex:
        body, cut = bmatrix(s.entries_latex, full)
        windowed |= cut
        out += [r"\noindent The symbolic Jacobian:", r"\[", f"{jac} = {body}", r"\]"]
    else:
        why = ("SymEngine computed it (\\texttt{--engine sympy} writes it)"
               if p.engine == "symengine" else "it is too big to write here")  # fmt: skip
        out.append(rf"\noindent The symbolic Jacobian ${jac}$ ({m} $\times$ {n}, "
                   f"{s.nonzeros} nonzero) is not written out: {why}; \\texttt{{--json}} "
                   "has every entry as text.")  # fmt: skip
    if p.point is not None and s.jacobian is not None and a is not None:
        body, cut = bmatrix(_matrix_cells(s.jacobian, s.beyond("jacobian")), full)
        windowed |= cut
        out += [r"\noindent At the point", r"\[", _point(report, full), r"\]",
                r"\noindent the Jacobian is (SymPy, 30 digits rounded to float64)",
                r"\[", f"J = {body}", r"\]"]  # fmt: skip
        torch_body, _ = bmatrix(_matrix_cells(a.jacobian, {}), full)
        out += [r"\noindent and torch's autograd (one backward pass per row) gives",
                r"\[", f"J_{{\\mathrm{{torch}}}} = {torch_body}.", r"\]"]  # fmt: skip
        for kind, vec in (("vjp", p.v), ("jvp", p.u)):
            if vec is None:
                continue
            lines = derivation(report, kind, full)
            title = (
                r"\noindent\textbf{VJP.} "
                + (r"With $v = 1$ (a scalar output, as \texttt{out.backward()} does), "
                   r"$v^{T} J$ is the gradient:" if p.v_implicit and kind == "vjp" else
                   rf"With $v = {_vector(vec, full)}^{{T}}$, \texttt{{y.backward(v)}} adds "
                   r"up the rows of $J$, each weighted by its entry of $v$:")
                if kind == "vjp"
                else rf"\noindent\textbf{{JVP.}} With $u = {_vector(vec, full)}^{{T}}$, "
                r"forward mode adds up the columns of $J$, each weighted by its entry of $u$:"
            )  # fmt: skip
            out += [r"\medskip", title]
            if lines:
                out += [r"\begin{align*}", " \\\\\n".join(lines), r"\end{align*}"]
            out += ["", r"\noindent", *_comparison(report, kind, full), ""]
        out.append(r"\medskip")
        out.append(r"\noindent " + _verdict_text(report))
        if any(c.status != "agree" for c in report.checks):
            out.append("")
    if windowed:
        out.append("")
        out.append(r"\noindent\emph{Windowed: the first rows and columns, then the last "
                   r"(\texttt{--full} writes every entry, \texttt{--json} has all).}")  # fmt: skip
    notes = [*report.notes, *s.notes, *(a.notes if a else ())]
    if notes:
        shown = notes if full else notes[:10]
        out += ["", r"\begin{itemize}"]
        out += [rf"\item {latex_text(note)}" for note in shown]
        out.append(r"\end{itemize}")
    return "\n".join(out) + "\n"
