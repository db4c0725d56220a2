"""The user's own torch code (--torch FILE.py:NAME) in the report: JSON section and rich panel.

Pure functions of the Report (or of the CodeOnlyReport of --torch without FUNCTIONS). Every
quantity shows the reference, torch's built-in autograd of the formula and the user's code
side by side, so the report says which of them disagrees with the reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..model import Check, CodeOnlyReport, CodeValues, Report, UserCodeError
from .common import exact_values, fmt, json_number, nums

MAX_ENTRIES = 12  # entries of one quantity shown in the terminal (--json has all)
QUANTITIES = ("forward", "jacobian", "vjp", "jvp")
_SHORT = {"forward": "f", "jacobian": "J", "vjp": "vjp", "jvp": "jvp"}
_LONG = {
    "forward": "forward values",
    "jacobian": "Jacobian",
    "vjp": "y.backward(v)",
    "jvp": "forward mode J u",
}


def _error_dict(err: UserCodeError | None, phase: str | None) -> dict[str, Any] | None:
    if err is None:
        return None
    return {
        "message": err.message,
        "file": err.file,
        "line": err.line,
        "where": err.where,
        "phase": phase,
    }


def _asked(name: str, v: Any, u: Any) -> bool:
    return (
        name in ("forward", "jacobian")
        or (name == "vjp" and v is not None)
        or (name == "jvp" and u is not None)
    )


def _status_of(name: str, check: Check | None, values: CodeValues) -> str:
    """A quantity's status: its check's, or where the code failed, "error" for the step
    that failed and "not-run" for those after it."""
    if check is not None:
        return check.status
    if values.error is not None:
        order = list(QUANTITIES)
        failed = order.index(values.phase) if values.phase in order else 0
        return "error" if order.index(name) == failed else "not-run"
    return "not-run"


def _quantity(
    name: str, check: Check | None, values: CodeValues, code_vals: Any, reference: Any, ref_key: str
) -> dict[str, Any]:
    status = _status_of(name, check, values)
    out: dict[str, Any] = {
        "torch": None if code_vals is None else nums(code_vals),
        ref_key: None if reference is None else nums(reference),
        "max_abs_diff": None
        if check is None or check.status == "not-defined"
        else json_number(check.max_abs_diff),
        # no verdict where nothing was compared: forward mode the code does not define, or a
        # step after the one that failed
        "agree": None if status in ("not-defined", "not-run") else status == "agree",
        "status": status,
    }
    if check is not None and check.worst is not None:
        out["worst"] = list(check.worst)
    if check is not None and check.tolerance:
        out["tolerance"] = check.tolerance
    elif check is not None and math.isfinite(check.rtol):
        out["rtol"], out["atol"] = check.rtol, check.atol
    if name == "jvp" and values.jvp_status == "not-defined":
        out["note"] = values.jvp_note
    return out


def code_dict(report: Report) -> dict[str, Any]:
    code = report.code
    assert code is not None
    p, s, vals = report.problem, report.symbolic, code.values
    refs = {
        "jacobian": None if s.jacobian is None else exact_values(s.jacobian, s.beyond("jacobian")),
        "vjp": None if s.vjp is None else exact_values(s.vjp, s.beyond("vjp")),
        "jvp": None if s.jvp is None else exact_values(s.jvp, s.beyond("jvp")),
    }
    fwd_check = code.checks.get("forward")
    fwd_status = _status_of("forward", fwd_check, vals)
    out: dict[str, Any] = {
        "file": code.file,
        "name": code.name,
        "kind": code.kind,
        "forward": {
            "values": None if vals.forward is None else nums(vals.forward),
            "reference": nums(code.forward_reference),
            "max_abs_diff": None if fwd_check is None else json_number(fwd_check.max_abs_diff),
            "agree": fwd_status == "agree",
            "status": fwd_status,
        },
    }
    code_values = {"jacobian": vals.jacobian, "vjp": vals.vjp, "jvp": vals.jvp}
    for name in ("jacobian", "vjp", "jvp"):
        if not _asked(name, p.v, p.u):
            out[name] = None
            continue
        q = _quantity(name, code.checks.get(name), vals, code_values[name], refs[name], "sympy")
        builtin = report.check(name)
        q["builtin_status"] = None if builtin is None else builtin.status
        out[name] = q
    out["error"] = _error_dict(vals.error, vals.phase)
    if code.own_fd is not None:  # --fd: FD of the code's own forward vs its backward
        from .fd import _q

        out["own_fd"] = _q(code.own_fd)
    out["agree"] = code.agree
    out["status"] = code.status
    out["notes"] = list(code.notes)
    return out


def sections(report: Report) -> dict[str, Any]:
    """{"code": ...} for the JSON output, or nothing without --torch."""
    return {} if report.code is None else {"code": code_dict(report)}


# ---- rich ---------------------------------------------------------------------------------

_STYLE = {
    "agree": ("✔ agree", "bold green"),
    "disagree": ("✘ disagree", "bold red"),
    "undefined": ("? undefined", "bold yellow"),
    "not-defined": ("- not defined", "yellow"),
    "error": ("✘ error", "bold red"),
    "not-run": ("- not run", "dim"),
}


def _flat(values: Any) -> list[float]:
    if values is None:
        return []
    if values and isinstance(values[0], (list, tuple)):
        return [float(x) for row in values for x in row]
    return [float(x) for x in values]


def _shown(n: int, worst: int | None) -> list[int]:
    if n <= MAX_ENTRIES:
        return list(range(n))
    keep = list(range(MAX_ENTRIES - 1))
    if worst is not None and worst not in keep:
        keep.append(worst)
    return keep


def error_text(err: UserCodeError) -> Any:
    """The user's error, one or two lines: where in their file, then what."""
    from rich.text import Text

    place = err.file + (f", line {err.line}" if err.line else "")
    if err.where:
        place += f", in {err.where}"
    t = Text("error in your code: ", style="bold red")
    t.append(place, style="bold")
    t.append("\n  " + err.message)
    return t


def _rows(
    table: Any,
    label: str,
    labels: Sequence[str],
    columns: Sequence[Any],
    status: str,
    check: Check | None,
    width: int = 1,
    errors: int | None = None,
) -> None:
    """One quantity's entries as rows: label, each column's value (column `errors` holds
    error estimates, shown to two digits), the verdict on the first row."""
    from rich.text import Text

    flat_cols = [_flat(c) for c in columns]
    n = max((len(c) for c in flat_cols), default=0) or len(labels)
    worst = None
    if check is not None and check.worst is not None:
        w = check.worst
        worst = w[0] * width + w[1] if len(w) == 2 else w[0]
    text, style = _STYLE.get(status, (status, ""))
    for k, i in enumerate(_shown(n, worst)):
        cells = []
        for c_index, c in enumerate(flat_cols):
            if i >= len(c):
                cells.append(Text(""))
            elif c_index == errors:
                cells.append(Text(f"± {c[i]:.2g}" if math.isfinite(c[i]) else "± ?"))
            else:
                cells.append(Text(fmt(c[i])))
        verdict = Text(text, style=style) if k == 0 else Text("")
        name = labels[i] if i < len(labels) else str(i)
        table.add_row(Text(f"{label} {name}" if k == 0 else f"  {name}"), *cells, verdict)
    if n > MAX_ENTRIES:
        table.add_row(
            Text(f"  … {n - len(_shown(n, worst))} more (--json has all)", style="dim"),
            *[Text("") for _ in columns],
            Text(""),
        )


def summary(name: str, check: Check | None, status: str, diff_label: str) -> Any:
    """One line under the table: a quantity's verdict, its largest difference, the tolerance."""
    from rich.text import Text

    text, style = _STYLE.get(status, (status, ""))
    t = Text(f"{name}: ").append(text, style=style)
    if check is not None and status in ("agree", "disagree", "undefined"):
        t.append(f"   {diff_label} = {check.max_abs_diff:.3g}", style="dim")
    return t


def _table(headers: Sequence[str]) -> Any:
    from .rich import _plain_table

    table = _plain_table("")
    for k, col in enumerate(headers):
        last = k == len(headers) - 1
        table.add_column(
            col,
            justify="left" if k == 0 or last else "right",
            no_wrap=k == 0 or last,
            overflow="fold",
        )
    return table


def _labels(report: Report) -> dict[str, list[str]]:
    s = report.symbolic
    return {
        "forward": list(s.row_labels),
        "jacobian": [f"d{r}/d{c}" for r in s.row_labels for c in s.col_labels],
        "vjp": [f"{c}.grad" for c in s.col_labels],
        "jvp": [f"d{r}" for r in s.row_labels],
    }


def panels(report: Report) -> list[Any]:
    """The --torch panel: reference, built-in torch and your code, entry by entry."""
    if report.code is None:
        return []
    from rich.panel import Panel
    from rich.text import Text

    code, p, s, a = report.code, report.problem, report.symbolic, report.autograd
    vals = code.values
    table = _table(("", "reference", "built-in torch", "your code", ""))
    labels = _labels(report)
    refs = {"forward": code.forward_reference, "jacobian": s.jacobian, "vjp": s.vjp, "jvp": s.jvp}
    builtin = {
        "forward": a.values if a else None,
        "jacobian": a.jacobian if a else None,
        "vjp": a.vjp if a else None,
        "jvp": a.jvp if a else None,
    }
    mine = {"forward": vals.forward, "jacobian": vals.jacobian, "vjp": vals.vjp, "jvp": vals.jvp}
    lines = []
    for name in QUANTITIES:
        if not _asked(name, p.v, p.u):
            continue
        check = code.checks.get(name)
        status = _status_of(name, check, vals)
        _rows(
            table,
            _SHORT[name],
            labels[name],
            [refs[name], builtin[name], mine[name]],
            status,
            check,
            len(s.col_labels),
        )
        lines.append(summary(_LONG[name], check, status, "max |ref - code|"))
    parts: list[Any] = [table, *lines]
    parts.append(Text(f"tolerance: rtol={p.rtol:g}, atol={p.atol:g}", style="dim"))
    if vals.error is not None:
        parts.append(error_text(vals.error))
    for note in code.notes:
        parts.append(Text("note: " + note, style="dim"))
    from rich.console import Group

    title = Text("Your code ", style="bold").append(f"{code.file}:{code.name}", style="cyan")
    title.append(f"  ({code.kind})", style="dim")
    label, style = _STYLE.get(code.status, (code.status, ""))
    subtitle = Text(label, style=style)
    return [
        Panel(
            Group(*parts),
            title=title,
            title_align="left",
            subtitle=subtitle,
            subtitle_align="left",
            expand=False,
        )
    ]


# ---- --torch without FUNCTIONS: FD is the reference ------------------------------------------


def standalone_dict(r: CodeOnlyReport) -> dict[str, Any]:
    from . import fd as fd_view

    vals = r.values
    fwd_status = "error" if vals.error is not None and vals.phase == "forward" else "no-reference"
    out: dict[str, Any] = {
        "schema": 1,
        "mode": "code-only",
        "reference": "fd",
        "variables": list(r.variables),
        "variables_from": r.variables_from,
        "shapes": {n: list(sh) for n, sh in zip(r.variables, r.shapes, strict=True)},
        "point": nums(list(r.point)),
        "v": None if r.v is None else nums(list(r.v)),
        "u": None if r.u is None else nums(list(r.u)),
    }
    code: dict[str, Any] = {
        "file": r.file,
        "name": r.name,
        "kind": r.kind,
        "forward": {
            "values": None if vals.forward is None else nums(vals.forward),
            "reference": None,
            "max_abs_diff": None,
            "agree": None if fwd_status == "no-reference" else False,
            "status": fwd_status,
        },
    }
    refs = {"jacobian": None, "vjp": None, "jvp": None}
    if r.fd is not None:
        refs = {
            "jacobian": r.fd.jacobian.values,
            "vjp": None if r.fd.vjp is None else r.fd.vjp.values,
            "jvp": None if r.fd.jvp is None else r.fd.jvp.values,
        }
    code_values = {"jacobian": vals.jacobian, "vjp": vals.vjp, "jvp": vals.jvp}
    for name in ("jacobian", "vjp", "jvp"):
        if not _asked(name, r.v, r.u):
            code[name] = None
            continue
        code[name] = _quantity(
            name, r.checks.get(name), vals, code_values[name], refs[name], "reference"
        )
    code["error"] = _error_dict(vals.error, vals.phase)
    code["agree"] = r.agree
    code["status"] = r.status
    out["code"] = code
    out["fd"] = None if r.fd is None else fd_view.fd_dict(r.fd)
    out["agree"] = r.agree
    out["status"] = "disagree" if r.status == "error" else r.status
    out["notes"] = list(r.notes)
    return out


def standalone_rich(r: CodeOnlyReport, width: int = 80) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    vals = r.values
    head = Text("Your code ", style="bold").append(f"{r.file}:{r.name}", style="cyan")
    head.append(f" ({r.kind}), no FUNCTIONS: finite differences of your forward are the reference")
    where = (
        "from its signature"
        if r.variables_from == "signature"
        else "x1..xn (the signature does not name them)"
    )
    pt = Text(f"variables {where}: at ")
    pt.append(
        ", ".join(f"{n} = {fmt(x)}" for n, x in zip(r.variables, r.point, strict=False))
        if not any(r.shapes)
        else str(list(r.point))
    )
    parts: list[Any] = [head, pt]
    table = _table(("", "FD (reference)", "FD error", "your code", ""))
    m = len(vals.forward) if vals.forward is not None else 0
    outs = [f"y{k}" for k in range(1, m + 1)] if m > 1 else ["y"]
    cols = [
        f"{n}[{k}]" if sh else n
        for n, sh in zip(r.variables, r.shapes, strict=True)
        for k in range(max(1, math.prod(sh)))
    ]
    labels = {
        "jacobian": [f"d{o}/d{c}" for o in outs for c in cols],
        "vjp": [f"{c}.grad" for c in cols],
        "jvp": [f"d{o}" for o in outs],
    }
    lines: list[Any] = []
    if vals.forward is not None:
        parts.append(
            Text("f = " + ", ".join(fmt(x) for x in vals.forward[:MAX_ENTRIES]), style="dim")
        )
    for name in ("jacobian", "vjp", "jvp"):
        if not _asked(name, r.v, r.u):
            continue
        q = None if r.fd is None else getattr(r.fd, name)
        check = r.checks.get(name)
        status = _status_of(name, check, vals)
        mine = {"jacobian": vals.jacobian, "vjp": vals.vjp, "jvp": vals.jvp}[name]
        _rows(
            table,
            _SHORT[name],
            labels[name],
            [None if q is None else q.values, None if q is None else q.error, mine],
            status,
            check,
            len(cols),
            errors=1,
        )
        lines.append(summary(_LONG[name], check, status, "max |FD - code|"))
    parts.append(table)
    parts.extend(lines)
    if vals.error is not None:
        parts.append(error_text(vals.error))
    if r.fd is not None:
        parts.append(Text(f"FD: {r.fd.method}; {r.fd.tolerance}", style="dim"))
    for note in r.notes:
        parts.append(Text("note: " + note, style="dim"))
    label, style = _STYLE.get(r.status, (r.status, ""))
    verdict = Text("Verdict: ", style="bold").append(label, style=style)
    return Group(Panel(Group(*parts), expand=False), verdict)
