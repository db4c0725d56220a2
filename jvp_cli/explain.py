"""--explain: the arithmetic behind v^T J and J u, as data on the Report.

`y.backward(v)` adds up the rows of J, each weighted by its output's entry of v; forward mode
adds up the columns of J, each weighted by its variable's entry of u. `build` lays this out from
the reference side (the SymbolicResult: SymPy's text of each entry, its 30-digit value rounded
to float64, and the values beyond float64 as decimals) with the torch calls that compute each
quantity and the pitfalls a learner meets. The views (views/explain.py, latex.py, markdown.py)
only draw it.

`latex_cells` is the one piece that needs SymPy: symbolic.py calls it, while it still holds the
expressions, to print each entry of J (and each output) with SymPy's LaTeX printer. Symbols get
names of our own making there, so that no user text reaches LaTeX unescaped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from .model import Problem, Report, SymbolicResult


@dataclass(frozen=True)
class Term:
    """One weighted row of J (for v^T J) or column (for J u)."""

    weight: float
    label: str  # the output element (f1, out[0,1]) or variable element (x1, x[1,0])
    index: int  # which row (v^T J) or column (J u) of J
    symbolic: tuple[str, ...]  # SymPy's text of each entry of that row / column
    latex: tuple[str, ...]  # SymPy's LaTeX of each entry; () where none was made (too big)
    values: tuple[float, ...]  # the reference values at the point (float64; +-inf beyond)
    exact: tuple[tuple[int, str], ...] = ()  # (position, 30-digit decimal) beyond float64


@dataclass(frozen=True)
class Product:
    """v^T J as a sum of weighted rows, or J u as a sum of weighted columns, and its value."""

    kind: str  # "vjp" | "jvp"
    terms: tuple[Term, ...]  # every term, zero weights included (views may leave those out)
    result: tuple[float, ...]  # the reference's v^T J or J u (SymPy, summed exactly)
    result_exact: tuple[tuple[int, str], ...]  # (position, decimal) of values beyond float64
    labels: tuple[str, ...]  # the result's components: variable elements (vjp), outputs (jvp)

    @property
    def zero_terms(self) -> int:
        return sum(1 for t in self.terms if t.weight == 0)


@dataclass(frozen=True)
class Explanation:
    vjp: Product | None  # None without a point or v (a non-scalar output and no --v)
    jvp: Product | None  # None without --u
    scalar: bool  # one scalar output: v = 1 and v^T J is the gradient
    v_implicit: bool  # v = 1 was supplied, as out.backward() does
    calls: tuple[tuple[str, tuple[str, ...]], ...]  # quantity -> the torch calls computing it
    passes: tuple[int, int]  # (reverse, forward): passes that build all of J in each mode
    pitfalls: tuple[str, ...]
    y: str  # what the calls' names stand for: "y = torch.stack([f1, f2, f3]); f(x1, ...)..."


def _row_exact(beyond: dict[tuple[int, ...], str], i: int | None, j: int | None, n: int
               ) -> tuple[tuple[int, str], ...]:  # fmt: skip
    """The positions along row i (j None) or column j (i None) of J beyond float64."""
    out = []
    for k in range(n):
        index: tuple[int, ...] = (i, k) if i is not None else (k, j if j is not None else 0)
        text = beyond.get(index)
        if text is not None:
            out.append((k, text))
    return tuple(out)


def _vector_exact(beyond: dict[tuple[int, ...], str]) -> tuple[tuple[int, str], ...]:
    return tuple(sorted((idx[0], text) for idx, text in beyond.items()))


def _products(p: Problem, s: SymbolicResult) -> tuple[Product | None, Product | None]:
    if s.jacobian is None:
        return None, None
    m, n = len(s.row_labels), len(s.col_labels)
    beyond = s.beyond("jacobian") if s.exact else {}
    cells = s.entries_latex
    vjp = jvp = None
    if p.v is not None and s.vjp is not None:
        terms = tuple(
            Term(
                weight=float(p.v[i]),
                label=s.row_labels[i],
                index=i,
                symbolic=tuple(s.jacobian_text[i]),
                latex=tuple(cells[i]) if cells else (),
                values=tuple(s.jacobian[i]),
                exact=_row_exact(beyond, i, None, n) if beyond else (),
            )
            for i in range(m)
        )
        vjp = Product("vjp", terms, tuple(s.vjp), _vector_exact(s.beyond("vjp")),
                      tuple(s.col_labels))  # fmt: skip
    if p.u is not None and s.jvp is not None:
        terms = tuple(
            Term(
                weight=float(p.u[j]),
                label=s.col_labels[j],
                index=j,
                symbolic=tuple(row[j] for row in s.jacobian_text),
                latex=tuple(row[j] for row in cells) if cells else (),
                values=tuple(row[j] for row in s.jacobian),
                exact=_row_exact(beyond, None, j, m) if beyond else (),
            )
            for j in range(n)
        )
        jvp = Product("jvp", terms, tuple(s.jvp), _vector_exact(s.beyond("jvp")),
                      tuple(s.row_labels))  # fmt: skip
    return vjp, jvp


def _fresh(base: str, taken: set[str]) -> str:
    """`base`, or base_, base__, ... where the program already uses the name."""
    name = base
    while name in taken:
        name += "_"
    return name


def _names(p: Problem) -> tuple[str, str, str, str, str]:
    """Names for y (all outputs, flat), v, u and f that the program does not use, and how
    y is made from the outputs ("" where y is the one output itself)."""
    taken = {*p.variables, *p.outputs, *(name for name, _ in p.intermediates)}
    if len(p.outputs) == 1:
        y, y_def = p.outputs[0], ""
    else:
        y = _fresh("y", taken)
        if all(sh == () for sh in p.output_shapes):
            y_def = f"torch.stack([{', '.join(p.outputs)}])"
        else:
            y_def = f"torch.cat([{', '.join(o + '.reshape(-1)' for o in p.outputs)}])"
    v, u, f = (_fresh(n, taken | {y}) for n in ("v", "u", "f"))
    return y, y_def, v, u, f


def _calls(p: Problem) -> tuple[str, tuple[tuple[str, tuple[str, ...]], ...]]:
    """The torch calls for each quantity, written with the program's own names (and names
    for y, v, u and f that the program does not use)."""
    taken = {*p.variables, *p.outputs, *(name for name, _ in p.intermediates)}
    y, y_def, v, u, f = _names(p)
    leaves = ", ".join(p.variables)
    tup = f"({leaves},)" if len(p.variables) == 1 else f"({leaves})"
    grads = ", ".join(f"{x}.grad" for x in p.variables)
    if p.v_implicit:  # a scalar output: v = 1 is implied
        vjp = (
            f"{y}.backward() ({y} is a scalar: v = 1), then {grads}",
            f"torch.autograd.grad({y}, {tup})  (returns the gradient; .grad is left alone)",
            f"{y}, vjp_fn = torch.func.vjp({f}, {leaves}); vjp_fn(torch.ones_like({y}))",
        )
    else:
        vjp = (
            f"{y}.backward({v}), then {grads}",
            f"torch.autograd.grad({y}, {tup}, {v})  (returns the product; .grad is left alone)",
            f"{y}, vjp_fn = torch.func.vjp({f}, {leaves}); vjp_fn({v})",
        )
    tangents = ", ".join(_fresh(f"{u}_{x}", taken) for x in p.variables)
    ttup = f"({tangents},)" if len(p.variables) == 1 else f"({tangents})"
    jvp = (
        f"{y}, J{u} = torch.func.jvp({f}, {tup}, {ttup})",
        "torch.autograd.forward_ad: dual numbers, make_dual(x, u) and unpack_dual(y).tangent",
    )
    jac = (
        f"torch.autograd.functional.jacobian({f}, {tup})",
        f"torch.func.jacrev({f}) (one VJP per row, batched by vmap)",
        f"torch.func.jacfwd({f}) (one JVP per column, batched by vmap)",
    )
    where = (f"{y} = {y_def}; " if y_def else "") + f"{f}({leaves}) returns {y}"
    return where, (("vjp", vjp), ("jvp", jvp), ("jacobian", jac))


def _pitfalls(p: Problem, m: int, n: int) -> tuple[str, ...]:
    y, _, v, _, _ = _names(p)
    scalar = len(p.outputs) == 1 and p.output_shapes[0] == ()
    call = f"{y}.backward()" if p.v_implicit else f"{y}.backward({v})"
    first = (
        f"{y} is a scalar, so {y}.backward() means {y}.backward(torch.tensor(1.)): "
        f"v = 1, and v^T J is J's only row, the gradient of {y}"
        if scalar
        else f"a non-scalar {y} needs v: {y}.backward() raises 'grad can be implicitly "
        f"created only for scalar outputs'; {y}.backward({v}) computes v^T J, a v-weighted "
        "sum of J's rows"
    )
    grad = f"{p.variables[0]}.grad"
    keep = call[:-1] + (", " if call[-2] != "(" else "") + "retain_graph=True)"
    more = "s" if m != 1 else ""
    return (
        first,
        f".grad accumulates across calls: a second {call} adds v^T J again ({grad} "
        f"doubles); set {grad} = None (or optimizer.zero_grad()) between calls",
        f"the graph is freed after backward: a second {call} raises unless the first was {keep}",
        f"all of J ({m} x {n}) takes {m} backward pass{'es' if m != 1 else ''} (one per row, "
        f"v = each unit vector) or {n} forward pass{'es' if n != 1 else ''} (one per column, "
        f"u = each unit vector): reverse mode wins with few outputs, forward mode with few "
        f"inputs, which is why JAX offers jacrev and jacfwd (row{more} of J by VJPs, columns "
        "by JVPs)",
    )


def build(report: Report) -> Report:
    """The report with its explanation attached (and, without a point, a note saying what
    the derivation needs)."""
    p, s = report.problem, report.symbolic
    m, n = len(s.row_labels), len(s.col_labels)
    vjp, jvp = _products(p, s)
    y, calls = _calls(p)
    explanation = Explanation(
        vjp=vjp,
        jvp=jvp,
        scalar=len(p.outputs) == 1 and p.output_shapes[0] == (),
        v_implicit=p.v_implicit,
        calls=calls,
        passes=(m, n),
        pitfalls=_pitfalls(p, m, n),
        y=y,
    )
    notes = report.notes
    if p.point is None:
        notes = (*notes, "--explain: the weighted-row derivation of v^T J needs a point: "
                 "add --at (and --v for a non-scalar output, --u for J u)")  # fmt: skip
    return replace(report, explanation=explanation, notes=notes)


# ---- the LaTeX of each entry (SymPy's printer; called by symbolic.py) ----------------------

_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)?")
_ELEMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\[([0-9,]+)\]")


def latex_text(text: str) -> str:
    """User text for LaTeX's text mode, every special character escaped."""
    special = {
        "\\": r"\textbackslash{}",
        "{": r"\{",
        "}": r"\}",
        "$": r"\$",
        "&": r"\&",
        "#": r"\#",
        "^": r"\textasciicircum{}",
        "_": r"\_",
        "%": r"\%",
        "~": r"\textasciitilde{}",
        "<": r"\textless{}",
        ">": r"\textgreater{}",
        "|": r"\textbar{}",
    }
    out = []
    for ch in text:
        if ch in special:
            out.append(special[ch])
        elif ch.isprintable() and ord(ch) < 0x80:
            out.append(ch)
        else:
            out.append(f"\\textless{{}}U+{ord(ch):04X}\\textgreater{{}}")
    return "".join(out)


def latex_name(name: str) -> str:
    """A variable or output name (or an element of one, x[0,1]) for LaTeX's math mode: x1 ->
    x_{1}, alpha -> \\alpha, x_max -> x_{max} (SymPy's conventions, for the names where they
    are safe); any other name (a__b, which SymPy would print as a power, _x, x_) upright,
    escaped. Names are identifiers, so no backslash or brace can come in."""
    element = _ELEMENT.fullmatch(name)
    if element:
        base = latex_name(element.group(1))
        base = f"{{{base}}}" if "_" in base or "^" in base else base
        return f"{base}_{{{element.group(2)}}}"
    if _PLAIN.fullmatch(name):
        import sympy as sp

        tex = str(sp.latex(sp.Symbol(name)))
        word = re.match(r"([A-Za-z]+)(.*)", tex, re.DOTALL)
        if word and len(word.group(1)) > 1 and word.group(2)[:1] in ("", "_", "^"):
            tex = r"\mathit{" + word.group(1) + "}" + word.group(2)  # out, not o u t
        return tex
    return r"\mathrm{" + latex_text(name) + "}"


def latex_cells(
    rows: Sequence[dict[int, Any]], width: int, symbols: Sequence[Any], outputs: Sequence[Any]
) -> tuple[tuple[tuple[str, ...], ...], tuple[str, ...]]:
    """SymPy's LaTeX of each entry of J (sparse rows -> dense, zeros as "0") and of each
    output element, with every symbol named by latex_name."""
    import sympy as sp

    names = {s: latex_name(str(s)) for s in symbols}

    def tex(e: Any) -> str:
        return str(sp.latex(e, symbol_names=names))

    cells = tuple(tuple(tex(row[j]) if j in row else "0" for j in range(width)) for row in rows)
    return cells, tuple(tex(e) for e in outputs)
