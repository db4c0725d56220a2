"""Finite differences (--fd) in the report: JSON section and rich panel (a third column with
its error bar). Pure functions of the Report."""

from __future__ import annotations

from typing import Any

from ..model import FdQuantity, FdReport, Report
from .common import exact_values, json_number, nums


def _q(q: FdQuantity | None) -> dict[str, Any] | None:
    if q is None:
        return None
    out: dict[str, Any] = {"values": nums(q.values), "error": nums(q.error)}
    if q.check is not None:
        out.update(
            agree=q.check.agree,
            status=q.check.status,
            max_abs_diff=json_number(q.check.max_abs_diff),
        )
        if q.check.worst is not None:
            out["worst"] = list(q.check.worst)
    else:
        out.update(agree=None, status="reference")
    return out


def fd_dict(fd: FdReport) -> dict[str, Any]:
    return {
        "function": fd.function,
        "method": fd.method,
        "tolerance": fd.tolerance,
        "is_reference": fd.is_reference,
        "jacobian": _q(fd.jacobian),
        "vjp": _q(fd.vjp),
        "jvp": _q(fd.jvp),
        "agree": fd.agree if not fd.is_reference else None,
        "status": fd.status if not fd.is_reference else "reference",
        "notes": list(fd.notes),
    }


def sections(report: Report) -> dict[str, Any]:
    """{"fd": ...} for the JSON output, or nothing without --fd."""
    return {} if report.fd is None else {"fd": fd_dict(report.fd)}


def panels(report: Report) -> list[Any]:
    """The --fd panel: reference, FD ± its error estimate, the verdict, entry by entry."""
    if report.fd is None:
        return []
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    from .usercode import _SHORT, _STYLE, _rows, _table, summary

    fd, s = report.fd, report.symbolic
    table = _table(("", "reference", "FD", "FD error", ""))
    labels = {
        "jacobian": [f"d{r}/d{c}" for r in s.row_labels for c in s.col_labels],
        "vjp": [f"{c}.grad" for c in s.col_labels],
        "jvp": [f"d{r}" for r in s.row_labels],
    }
    refs = {
        "jacobian": None if s.jacobian is None else exact_values(s.jacobian, s.beyond("jacobian")),
        "vjp": None if s.vjp is None else exact_values(s.vjp, s.beyond("vjp")),
        "jvp": None if s.jvp is None else exact_values(s.jvp, s.beyond("jvp")),
    }
    lines = []
    for name in ("jacobian", "vjp", "jvp"):
        q = getattr(fd, name)
        if q is None or q.check is None:
            continue
        _rows(
            table,
            _SHORT[name],
            labels[name],
            [refs[name], q.values, q.error],
            q.check.status,
            q.check,
            len(s.col_labels),
            errors=2,
        )
        lines.append(
            summary(
                name if name != "jacobian" else "Jacobian",
                q.check,
                q.check.status,
                "max |ref - FD|",
            )
        )
    title = Text("Finite differences ", style="bold").append("(numdifftools)", style="dim")
    label, style = _STYLE.get(fd.status, (fd.status, ""))
    how = Text(f"{fd.method}; agree when {fd.tolerance}", style="dim")
    return [
        Panel(
            Group(table, *lines, how, *[Text("note: " + n, style="dim") for n in fd.notes]),
            title=title,
            title_align="left",
            subtitle=Text(label, style=style),
            subtitle_align="left",
            expand=False,
        )
    ]
