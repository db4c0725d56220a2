"""The second-order part of a report (--hessian, --hessians, --hvp): JSON and the terminal.

Pure functions of the Report's `second` (built by hessian.py and autograd2.py); the other
views call them with one line each.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..model import Check, Report, Route, SecondQuantity
from .common import exact_values, fmt, fmt_vec, nums

ROUTES = ("double_backward", "functional", "func")  # the stable keys of "torch"


def _check_fields(check: Check | None) -> dict[str, Any]:
    if check is None:  # no torch route ran (or no point): nothing was compared
        return {"max_abs_diff": None, "agree": None, "status": "not-compared"}
    from .json import check_fields

    return check_fields(check)


def _routes(q: SecondQuantity) -> tuple[dict[str, Any], dict[str, Any]]:
    """{route: values} (None for a route that did not run) and the per-route details."""
    values: dict[str, Any] = {}
    details: dict[str, Any] = {}
    checks = {c.name: c for c in q.checks}
    for r in q.routes:
        values[r.name] = nums(r.values) if r.values is not None else None
        d: dict[str, Any] = {"call": r.call, "ran": r.error is None}
        if r.error is not None:
            d["error"] = r.error
        if r.name in checks:
            d.update(_check_fields(checks[r.name]))
        details[r.name] = d
    return values, details


def _quantity(q: SecondQuantity, matrix: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"of": q.of}
    if matrix:
        out["symbolic"] = [list(r) for r in q.symbolic or ()]
        out["latex"] = q.latex
        out["nonzeros"] = q.nonzeros
    if q.reference is not None:
        beyond = dict(q.beyond)
        out["sympy"] = nums(exact_values(q.reference, beyond))
        values, details = _routes(q)
        out["torch"] = values
        out["routes"] = details
        out.update(_check_fields(q.check))
    if matrix:
        out["symmetric"] = q.symmetric
    out["notes"] = list(q.notes)
    return out


def to_json(report: Report) -> dict[str, Any]:
    """The "hessian", "hvp" and "hessians" keys (docs/json.md), those asked for."""
    s = report.second
    if s is None:
        return {}
    out: dict[str, Any] = {}
    if s.hessian is not None:
        out["hessian"] = {"labels": list(s.labels), **_quantity(s.hessian, True)}
    if s.hvp is not None:
        assert s.u is not None
        out["hvp"] = {"u": nums(s.u), "labels": list(s.labels), **_quantity(s.hvp, False)}
    if s.hessians:
        out["hessians"] = [
            {"output": q.of, "labels": list(s.labels), **_quantity(q, True)} for q in s.hessians
        ]
    return out


# ---- the terminal -------------------------------------------------------------------------

_STYLE = {
    "agree": ("✔ agree", "bold green"),
    "disagree": ("✘ disagree", "bold red"),
    "undefined": ("? undefined at this point", "bold yellow"),
}
MAX_SIDE = 8  # variables up to which H is drawn as a matrix (beyond: nonzero entries)


def _cells(matrix: Sequence[Sequence[Any]], upper: bool) -> list[list[str]]:
    """Numbers (or text) as strings; with `upper`, the lower triangle as '·' (symmetric)."""
    return [[("·" if upper and k < j else (c if isinstance(c, str) else fmt(c)))
             for k, c in enumerate(row)] for j, row in enumerate(matrix)]  # fmt: skip


def _table(title: str, cells: Sequence[Sequence[str]], labels: Sequence[str]) -> Any:
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title or None, title_justify="left", show_edge=False, pad_edge=False,
                  box=None, header_style="bold", min_width=len(title))  # fmt: skip
    table.add_column("", no_wrap=True)
    for name in labels:
        table.add_column(Text(name), justify="right", no_wrap=True)
    for name, row in zip(labels, cells, strict=True):
        table.add_row(Text(name, style="bold"), *[Text(c) for c in row])
    return table


def _entries(title: str, sides: Sequence[tuple[str, Sequence[Sequence[str]]]],
             labels: Sequence[str], full: bool) -> Any:  # fmt: skip
    """Big Hessians: their nonzero entries of the upper triangle, one line each."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False,
                  box=None, header_style="bold")  # fmt: skip
    table.add_column("entry", no_wrap=True)
    for name, _ in sides:
        table.add_column(name, justify="right", overflow="fold")
    limit = None if full else 40
    shown = total = 0
    n = len(labels)
    for j in range(n):
        for k in range(j, n):
            cells = [m[j][k] for _, m in sides]
            if all(c in ("0", "0.0") for c in cells):
                continue
            total += 1
            if limit is None or shown < limit:
                table.add_row(Text(f"H[{labels[j]}, {labels[k]}]", style="bold"),
                              *map(Text, cells))  # fmt: skip
                shown += 1
    note = f"{total:,} nonzero entries in the upper triangle of {n} x {n}"
    if shown < total:
        note += f", the first {shown} shown (--full or --json: all)"
    return Group(table, Text(note, style="dim"))


def _verdict(check: Check | None, routes: Sequence[Route]) -> Any:
    from rich.text import Text

    t = Text("  ")
    if check is None:
        return t.append("not compared: no torch route ran", style="yellow")
    label, style = _STYLE[check.status]
    t.append(label, style=style)
    t.append(f"   max |SymPy - torch| over {sum(r.error is None for r in routes)} routes = "
             f"{fmt(check.max_abs_diff)}  (rtol={check.rtol:g}, atol={check.atol:g})",
             style="dim")  # fmt: skip
    return t


def _route_lines(q: SecondQuantity) -> Any:
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    checks = {c.name: c for c in q.checks}
    table = Table.grid(padding=(0, 2))
    for r in q.routes:
        c = checks.get(r.name)
        if c is None:
            status = Text("could not run", style="yellow")
        else:
            label, style = _STYLE[c.status]
            status = Text(label, style=style)
        diff = Text("" if c is None else f"max |diff| {fmt(c.max_abs_diff)}", style="dim")
        table.add_row(Text(f"  {r.name}"), status, diff)
    calls = [Text(f"    {r.name}: ", style="dim").append(r.call if r.error is None
                                                          else r.error,
                                                          style="dim" if r.error is None
                                                          else "yellow")
             for r in q.routes]  # fmt: skip
    return Group(Text("torch routes:", style="bold"), table, *calls)


def _notes(notes: Sequence[str], full: bool) -> list[Any]:
    from rich.text import Text

    shown = list(notes) if full else list(notes[:6])
    out = [Text("note: " + n, style="dim") for n in shown]
    if len(notes) > len(shown):
        out.append(Text(f"({len(notes) - len(shown)} more: --full or --json)", style="dim"))
    return out


def _matrix_panel(q: SecondQuantity, labels: Sequence[str], title: str, full: bool) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    parts: list[Any] = []
    n = len(labels)
    sym = q.symmetric is not False  # without a point: symbolic, always symmetric
    if q.symbolic is not None:
        if q.pretty and n <= MAX_SIDE:
            parts.append(Text(q.pretty))
        elif n <= MAX_SIDE:
            parts.append(_table("", _cells(q.symbolic, True), labels))
        else:
            clipped = [[c if full or len(c) <= 60 else c[:59] + "…" for c in r]
                       for r in q.symbolic]  # fmt: skip
            parts.append(_entries("", [("symbolic", clipped)], labels, full))
    if q.reference is not None:
        ref = _cells(exact_values(q.reference, dict(q.beyond)), sym)
        sides = [("H at the point (SymPy)", ref)]
        for r in q.routes:
            if r.values is not None:
                sides.append((f"H (torch {r.name})", _cells(r.values, sym)))
        if n <= MAX_SIDE:
            from rich.table import Table

            grid = Table.grid(padding=(0, 4))
            shown = sides[:2]
            grid.add_row(*[_table(name, cells, labels) for name, cells in shown])
            parts.append(Text(""))
            parts.append(grid)
        else:
            parts.append(_entries("H at the point", sides[:2], labels, full))
        parts.append(_route_lines(q))
        parts.append(_verdict(q.check, q.routes))
    parts.extend(_notes(q.notes, full))
    how = "upper triangle shown: symmetric" if sym else "not symmetric at the point"
    sub = f"{n} x {n}, {q.nonzeros:,} nonzero; {how}"
    return Panel(Group(*parts), title=Text(title, style="bold"), title_align="left",
                 subtitle=Text(sub, style="dim"), subtitle_align="left",
                 expand=False)  # fmt: skip


def to_rich(report: Report, full: bool = False, width: int = 80) -> list[Any]:
    """The Hessian, H u and each output's Hessian panels, those asked for."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    s = report.second
    if s is None:
        return []
    parts: list[Any] = []
    labels = s.labels
    if s.hessian is not None:
        of = s.hessian.of
        what = "of v^T f = sum_i v_i f_i" if of == "v^T f" else f"of {of}"
        parts.append(_matrix_panel(s.hessian, labels, f"Hessian H {what}", full))
    if s.hvp is not None:
        q = s.hvp
        assert s.u is not None
        body: list[Any] = [Text("u", style="bold").append(f" = {fmt_vec(s.u, full)}", style="")]
        if q.reference is not None:
            table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
            table.add_column("")
            table.add_column("SymPy H u", justify="right")
            ran = [r for r in q.routes if r.values is not None]
            for r in ran:
                table.add_column(r.name, justify="right")
            ref = exact_values(q.reference, dict(q.beyond))
            n = len(labels)
            rows = range(n) if full or n <= 14 else [*range(12), n - 1]
            for j in rows:
                table.add_row(Text(f"(H u)[{labels[j]}]"), Text(fmt(ref[j])),
                              *[Text(fmt(r.values[j])) for r in ran])  # fmt: skip
            body += [table, _route_lines(q), _verdict(q.check, q.routes), *_notes(q.notes, full)]
        of = "v^T f" if q.of == "v^T f" else q.of
        parts.append(Panel(Group(*body), title=Text(f"HVP  H u  (H: the Hessian of {of})",
                                                    style="bold"),
                           title_align="left", expand=False))  # fmt: skip
    for q in s.hessians:
        parts.append(_matrix_panel(q, labels, f"Hessian of {q.of}", full))
    return parts
