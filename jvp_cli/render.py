"""Report -> rich renderable, and Report -> JSON-ready dict. Pure functions, no printing.

User text only ever enters rich as `Text` objects (never as markup strings), so `[bold]` in an
expression prints as typed. Non-finite numbers are encoded for JSON as the strings "NaN",
"Infinity" and "-Infinity", and -0.0 as 0.0, so `json.dumps(..., allow_nan=False)` never fails.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

from .model import Check, Report

SCHEMA_VERSION = 1


# ---- JSON ---------------------------------------------------------------------------------


def json_number(x: float) -> float | str:
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return 0.0 if x == 0 else float(x)


def _nums(values: Any) -> Any:
    if isinstance(values, (list, tuple)):
        return [_nums(v) for v in values]
    return json_number(values)


def _check_fields(check: Check) -> dict[str, Any]:
    out: dict[str, Any] = {
        "max_abs_diff": json_number(check.max_abs_diff),
        "agree": check.agree,
        "status": check.status,
        "rtol": check.rtol,
        "atol": check.atol,
    }
    if check.undefined:
        out["undefined"] = [list(i) for i in check.undefined]
    return out


def to_dict(report: Report) -> dict[str, Any]:
    p = report.problem
    s = report.symbolic
    a = report.autograd
    out: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "variables": list(p.variables),
        "functions": list(p.functions),
        "outputs": list(p.outputs),
        "point": None if p.point is None else dict(zip(p.variables, _nums(p.point), strict=True)),
    }
    jac: dict[str, Any] = {
        "symbolic": [list(r) for r in s.jacobian_text],
        "latex": s.jacobian_latex,
        "nonzeros": s.nonzeros,
    }
    if a is not None:
        check = report.check("jacobian")
        assert check is not None and s.jacobian is not None
        jac.update(sympy=_nums(s.jacobian), torch=_nums(a.jacobian), **_check_fields(check))
    out["jacobian"] = jac
    if a is not None and p.v is not None:
        check = report.check("vjp")
        assert check is not None
        out["vjp"] = {
            "v": _nums(p.v),
            "v_implicit": p.v_implicit,
            "sympy": _nums(s.vjp),
            "torch": _nums(a.vjp),
            **_check_fields(check),
        }
    if a is not None and p.u is not None:
        check = report.check("jvp")
        assert check is not None
        out["jvp"] = {
            "u": _nums(p.u),
            "sympy": _nums(s.jvp),
            "torch": _nums(a.jvp),
            **_check_fields(check),
        }
    out["agree"] = report.agree
    out["status"] = _overall(report)
    out["dtype"] = p.dtype
    out["notes"] = [*report.notes, *s.notes, *(a.notes if a else ())]
    return out


def _overall(report: Report) -> str:
    if not report.checks:
        return "symbolic-only"
    statuses = {c.status for c in report.checks}
    for s in ("disagree", "undefined"):
        if s in statuses:
            return s
    return "agree"


def to_json(report: Report) -> str:
    return dumps(to_dict(report))


def dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False, ensure_ascii=True)


# ---- rich ---------------------------------------------------------------------------------


def fmt(x: float) -> str:
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.12g}"


def fmt_vec(xs: Sequence[float]) -> str:
    return "(" + ", ".join(fmt(x) for x in xs) + ")"


_VERDICT_STYLE = {
    "agree": ("✔ agree", "bold green"),
    "disagree": ("✘ disagree", "bold red"),
    "undefined": ("? undefined at this point", "bold yellow"),
}


def _verdict(check: Check) -> Any:
    from rich.text import Text

    label, style = _VERDICT_STYLE[check.status]
    t = Text(label, style=style)
    over = " over the finite entries" if check.undefined else ""
    t.append(f"   max |SymPy - torch|{over} = {fmt(check.max_abs_diff)}", style="dim")
    t.append(f"  (rtol={check.rtol:g}, atol={check.atol:g})", style="dim")
    if check.undefined:
        where = ", ".join("[" + ",".join(str(i) for i in idx) + "]" for idx in check.undefined[:8])
        t.append(f"\n  not finite at {where}", style="yellow")
    return t


def _matrix_table(
    title: str, rows: Sequence[Sequence[str]], row_names: Sequence[str], col_names: Sequence[str]
) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=title,
        title_justify="left",
        show_edge=False,
        pad_edge=False,
        box=None,
        header_style="bold",
        min_width=len(title),
    )
    table.add_column("")
    for name in col_names:
        table.add_column(Text(name), justify="right")
    for name, row in zip(row_names, rows, strict=True):
        table.add_row(Text(name, style="bold"), *[Text(c) for c in row])
    return table


def to_rich(report: Report) -> Any:
    from rich.console import Group
    from rich.padding import Padding
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    p = report.problem
    s = report.symbolic
    a = report.autograd
    parts: list[Any] = []

    head = Text()
    m, n = len(p.outputs), len(p.variables)
    head.append(
        f"{m} function{'s' if m != 1 else ''} of {n} variable{'s' if n != 1 else ''}", style="bold"
    )
    head.append(": " + ", ".join(p.variables))
    parts.append(head)
    funcs = Table.grid(padding=(0, 1))
    for name, text in zip(p.outputs, p.functions, strict=True):
        funcs.add_row(Text(name, style="cyan"), Text("="), Text(text))
    parts.append(Padding(funcs, (0, 0, 0, 2), expand=False))
    if p.point is not None:
        pt = Text("at ")
        pt.append(", ".join(f"{k} = {fmt(x)}" for k, x in zip(p.variables, p.point, strict=True)))
        parts.append(pt)

    title = Text("Symbolic Jacobian ", style="bold")
    title.append(f"J = d({', '.join(p.outputs)}) / d({', '.join(p.variables)})", style="dim")
    if s.jacobian_pretty:
        body: Any = Text(s.jacobian_pretty)
    else:
        size = sum(len(t) for row in s.jacobian_text for t in row)
        body = Text(
            f"(too large to lay out: {size:,} characters of entries; --json has them as text)",
            style="dim",
        )
    parts.append(Panel(body, title=title, title_align="left", expand=False))

    if a is None:
        return Group(*parts, *[Text(note, style="dim") for note in report.notes])

    assert s.jacobian is not None
    grid = Table.grid(padding=(0, 4))
    grid.add_row(
        _matrix_table(
            "J at the point (SymPy)",
            [[fmt(x) for x in r] for r in s.jacobian],
            p.outputs,
            p.variables,
        ),
        _matrix_table(
            "J (torch, a backward pass per row)",
            [[fmt(x) for x in r] for r in a.jacobian],
            p.outputs,
            p.variables,
        ),
    )
    parts.append(grid)
    check = report.check("jacobian")
    assert check is not None
    parts.append(Text("  ").append_text(_verdict(check)))
    parts.append(Text(""))

    if p.v is not None:
        check = report.check("vjp")
        assert check is not None and s.vjp is not None and a.vjp is not None
        body = Table.grid(padding=(0, 2))
        body.add_row(Text("v", style="bold"), Text(fmt_vec(p.v)))
        body.add_row(Text("SymPy v^T J"), Text(fmt_vec(s.vjp)))
        body.add_row(Text("torch y.backward(v) -> .grad"), Text(fmt_vec(a.vjp)))
        parts.append(
            Panel(
                Group(body, _verdict(check)),
                title=Text("VJP  v^T J", style="bold"),
                title_align="left",
                expand=False,
            )
        )
    if p.u is not None:
        check = report.check("jvp")
        assert check is not None and s.jvp is not None and a.jvp is not None
        body = Table.grid(padding=(0, 2))
        body.add_row(Text("u", style="bold"), Text(fmt_vec(p.u)))
        body.add_row(Text("SymPy J u"), Text(fmt_vec(s.jvp)))
        body.add_row(Text("torch forward-mode J u"), Text(fmt_vec(a.jvp)))
        parts.append(
            Panel(
                Group(body, _verdict(check)),
                title=Text("JVP  J u", style="bold"),
                title_align="left",
                expand=False,
            )
        )

    for note in [*report.notes, *s.notes, *a.notes]:
        parts.append(Text("note: " + note, style="dim"))
    overall = _overall(report)
    label, style = _VERDICT_STYLE[overall]
    verdict = Text("Verdict: ", style="bold")
    verdict.append(label if overall != "undefined" else "undefined at this point", style=style)
    verdict.append(f"  ({', '.join(f'{c.name}: {c.status}' for c in report.checks)})")
    parts.append(verdict)
    return Group(*parts)
