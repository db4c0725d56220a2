"""--explain's views: the derivation of v^T J (and J u) as a rich panel and as JSON fields.

Pure functions of the Report's `explanation` (explain.py builds it). The terminal writes
SymPy's text of each entry a little closer to the blackboard (3*x2**2 -> 3x2²); JSON keeps
SymPy's text as `jacobian.symbolic` does.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..model import Report
from .common import exact_values, few, fmt, nums, per_name

TERMS = 8  # weighted rows / columns shown in the terminal (--full or --json: all)
ENTRIES = 8  # entries of each row shown (--full or --json: all)

_TOKEN = re.compile(
    r"(?P<num>[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<pow>\*\*)|(?P<other>.)",
    re.DOTALL,
)
_SUPER = str.maketrans("0123456789", "⁰¹²³⁴⁵⁶⁷⁸⁹")


def blackboard(text: str) -> str:
    """SymPy's text of an entry as one writes it: 2*x1 -> 2x1, x2**2 -> x2², other * -> ·.
    Only a plain integer exponent becomes a superscript, and a number is joined to the name
    after it only where nothing binds tighter (not 2*x**3's x, which reads 2x³ anyway)."""
    tokens = [(m.lastgroup, m.group()) for m in _TOKEN.finditer(text)]
    out: list[str] = []
    k = 0
    while k < len(tokens):
        kind, tok = tokens[k]
        nxt = tokens[k + 1] if k + 1 < len(tokens) else (None, "")
        if kind == "pow" and nxt[0] == "num" and nxt[1].isdigit():
            after = tokens[k + 2] if k + 2 < len(tokens) else (None, "")
            if after[1] not in ("(", "[", "**"):  # 2**3**x, 2**(...) stay as written
                out.append(nxt[1].translate(_SUPER))
                k += 2
                continue
        if kind == "other" and tok == "*":
            prev = tokens[k - 1] if k else (None, "")
            before = tokens[k - 2] if k >= 2 else (None, "")
            if (prev[0] == "num" and "e" not in prev[1].lower() and nxt[0] == "name"
                    and before[1] not in ("**", "/", "*")
                    and (k + 2 >= len(tokens) or tokens[k + 2][1] != "(")):  # fmt: skip
                k += 1  # 2*x1 -> 2x1 (not 2*exp(x): 2·exp(x))
                continue
            out.append("·")
            k += 1
            continue
        out.append(tok)
        k += 1
    return "".join(out)


def _signed(weight: float, first: bool) -> tuple[str, str]:
    """(joiner, |weight| text) for a term: ' + 3', ' - 2', or '-2' first."""
    if weight < 0 or (weight == 0 and str(weight).startswith("-")):
        return ("-" if first else " - "), fmt(-weight)
    return ("" if first else " + "), fmt(weight)


def _vec(items: Sequence[str], full: bool) -> str:
    return "(" + ", ".join(few(list(items), ENTRIES, full)) + ")"


def _shown_terms(terms: Sequence[Any], full: bool) -> tuple[list[Any], int, int]:
    """The nonzero-weight terms to show, how many nonzero ones are left out, and how many
    have weight 0 (left out: they add nothing)."""
    nonzero = [t for t in terms if t.weight != 0]
    zeros = len(terms) - len(nonzero)
    if full or len(nonzero) <= TERMS:
        return nonzero, 0, zeros
    return nonzero[: TERMS - 1], len(nonzero) - (TERMS - 1), zeros


def _values(term: Any) -> list[float]:
    beyond: dict[tuple[int, ...], str] = {(k,): text for k, text in term.exact}
    return exact_values(list(term.values), beyond)


def _point_text(report: Report, full: bool) -> str:
    p = report.problem
    assert p.point is not None
    if not any(p.shapes):
        names = ", ".join(few(list(p.variables), ENTRIES, full))
        values = ", ".join(few([fmt(x) for x in p.point], ENTRIES, full))
        return f"({names}) = ({values})" if len(p.variables) > 1 else f"{names} = {values}"
    parts = [f"{name} = {_tensor(vals, shape, full)}"
             for name, shape, vals in per_name(p.point, p.variables, p.shapes)]  # fmt: skip
    return ", ".join(few(parts, 4, full))


def _tensor(values: Sequence[float], shape: tuple[int, ...], full: bool) -> str:
    """A tensor's values nested in its shape; a big one (not --full) as a window of its
    flat values, with its shape."""
    from ..shapes import nest

    if not shape:
        return fmt(values[0])
    if full or len(values) <= 12:
        return str(nest([fmt(x) for x in values], shape)).replace("'", "")
    dims = "x".join(str(d) for d in shape)
    return "[" + ", ".join(few([fmt(x) for x in values], 10, False)) + f"] ({dims}, row-major)"


def derivation(report: Report, kind: str, full: bool, width: int = 10**9) -> list[str]:
    """The three lines `v^T J = 3·(row) + ...`, `= 3·(values) + ...  at x = ...`,
    `= (result)`, and a line for what was left out; for J u the same with columns. Where
    a line would be wider than `width`, one term per line (and the point above)."""
    e = report.explanation
    product = e.vjp if kind == "vjp" else e.jvp
    if product is None:
        return []
    head = "v^T J = " if kind == "vjp" else "J u = "
    pad = " " * (len(head) - 2) + "= "
    terms, more, zeros = _shown_terms(product.terms, full)
    sym_parts, val_parts = [], []
    for k, t in enumerate(terms):
        joiner, w = _signed(t.weight, k == 0)
        sym_parts.append(f"{joiner}{w}·{_vec([blackboard(x) for x in t.symbolic], full)}")
        val_parts.append(f"{joiner}{w}·{_vec([fmt(x) for x in _values(t)], full)}")
    if more:
        sym_parts.append(f" + … ({more} more)")
        val_parts.append(f" + … ({more} more)")
    if not terms:
        sym_parts, val_parts = ["0"], ["0"]
    result = exact_values(list(product.result), {(k,): t for k, t in product.result_exact})
    at = "at " + _point_text(report, full)
    total = pad + _vec([fmt(x) for x in result], full)
    lines = [head + "".join(sym_parts), pad + "".join(val_parts) + "    " + at, total]
    if max(len(line) for line in lines) > width:  # the point above, the sum on one line
        lines = [at + ":", head + "".join(sym_parts), pad + "".join(val_parts), total]
    if max(len(line) for line in lines) > width:  # one term per line
        lines = [at + ":"]
        for first, parts in ((head, sym_parts), (pad, val_parts)):
            for k, part in enumerate(parts):
                lead = first if k == 0 else " " * len(pad)
                sign = part[:3] if k else ("- " if part.startswith("-") else "  ")
                body = part[3:] if k else part.lstrip("-")
                lines.append(lead + sign.strip().ljust(2) + body)
        lines.append(total)
    left = []
    if zeros:
        left.append(f"{zeros} term{'s' if zeros != 1 else ''} with weight 0 left out: "
                    "they add nothing")  # fmt: skip
    if more:
        left.append(f"{more} more term{'s' if more != 1 else ''}: --full or --json has all")
    if left:
        lines.append("(" + "; ".join(left) + ")")
    return lines


def _intro(report: Report, kind: str) -> str:
    e = report.explanation
    p = report.problem
    if kind == "jvp":
        return ("J u is a u-weighted sum of J's columns, one per variable element (forward "
                "mode: one pass of torch.func.jvp):")  # fmt: skip
    if e.scalar:
        weight = 1.0 if p.v is None else p.v[0]
        how = f"v = 1 (as {p.outputs[0]}.backward() does)" if e.v_implicit else \
            f"v = {fmt(weight)}"  # fmt: skip
        return (f"{p.outputs[0]} is a scalar: {how}, and v^T J is v times J's only row, "
                f"the gradient of {p.outputs[0]}:")  # fmt: skip
    return ("y.backward(v) adds up the rows of J, each weighted by its output's entry of v "
            "(one reverse pass; J itself is never formed):")  # fmt: skip


def _shaped(report: Report, kind: str, full: bool) -> list[str]:
    """For tensors, the result in each variable's (or output's) shape."""
    p = report.problem
    e = report.explanation
    product = e.vjp if kind == "vjp" else e.jvp
    names, shapes = (p.variables, p.shapes) if kind == "vjp" else (p.outputs, p.output_shapes)
    if product is None or not any(shapes):
        return []
    result = exact_values(list(product.result), {(k,): t for k, t in product.result_exact})
    out = []
    for name, shape, vals in per_name(result, names, shapes):
        label = f"{name}.grad" if kind == "vjp" else f"d{name}"
        out.append(f"  {label} = {_tensor(vals, shape, full)}")
    return out if full or len(out) <= 12 else [*out[:11], f"  … {len(out) - 11} more"]


def rich_parts(report: Report, full: bool = False, width: int = 80) -> list[Any]:
    """The explanation panel (nothing when --explain was not given)."""
    e = report.explanation
    if e is None or report.autograd is None:
        return []
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    body: list[Any] = []
    inner = max(width - 4, 20)
    for kind in ("vjp", "jvp"):
        lines = derivation(report, kind, full, inner)
        if not lines:
            continue
        if body:
            body.append(Text(""))
        body.append(Text(_intro(report, kind), style="bold"))
        for line in lines:
            body.append(Text(line, style="dim" if line.startswith("(") else "", no_wrap=False))
        body.extend(Text(line) for line in _shaped(report, kind, full))
    if e.vjp is None:
        body.append(Text(e.pitfalls[0], style="yellow"))
    calls = Table(box=None, pad_edge=False, show_edge=False, header_style="bold",
                  title="The torch calls", title_justify="left", title_style="bold")  # fmt: skip
    calls.add_column("quantity", no_wrap=True)
    calls.add_column("torch")
    what = {"vjp": "v^T J", "jvp": "J u", "jacobian": "all of J"}
    for quantity, codes in e.calls:
        for k, code in enumerate(codes):
            calls.add_row(Text(what[quantity] if k == 0 else ""), Text(code))
    body.extend([Text(""), Text(f"where {e.y}", style="dim"), calls, Text("")])
    pits = Table.grid(padding=(0, 1))
    pits.add_column(no_wrap=True)
    pits.add_column()
    for pit in e.pitfalls:
        pits.add_row(Text("•"), Text(pit))
    body.extend([Text("Pitfalls", style="bold"), pits])
    m, n = e.passes
    return [Panel(Group(*body), title=Text("Explain  how backward(v) gets its numbers",
                                          style="bold"), title_align="left",
                  subtitle=Text(f"all of J: {m} reverse or {n} forward passes", style="dim"),
                  subtitle_align="left", expand=False, width=min(width, 160))]  # fmt: skip


def _product_json(product: Any, who: str, what: str) -> dict[str, Any] | None:
    if product is None:
        return None
    terms = []
    for t in product.terms:
        term = {
            "weight": nums(t.weight),
            who: t.label,
            f"{what}_symbolic": list(t.symbolic),
            what: nums(_values(t)),
            "index": t.index,
        }
        if t.latex:
            term[f"{what}_latex"] = list(t.latex)
        terms.append(term)
    result = exact_values(list(product.result), {(k,): t for k, t in product.result_exact})
    return {"terms": terms, "result": nums(result), "labels": list(product.labels)}


def json_fields(report: Report) -> dict[str, Any]:
    """{"explain": {...}} for --json with --explain, else {}."""
    e = report.explanation
    if e is None:
        return {}
    m, n = e.passes
    return {
        "explain": {
            "vjp": _product_json(e.vjp, "output", "row"),
            "jvp": _product_json(e.jvp, "variable", "column"),
            "calls": {quantity: list(codes) for quantity, codes in e.calls},
            "y": e.y,
            "passes": {"reverse": m, "forward": n},
            "scalar": e.scalar,
            "v_implicit": e.v_implicit,
            "pitfalls": list(e.pitfalls),
        }
    }
