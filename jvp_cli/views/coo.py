"""Big Jacobians in the views, at the cost of their nonzeros: the coordinate (COO) form of
`--json`, and the entries the terminal shows, formatted only as they are read.

The COO object (docs/json.md) lists the entries either side stores (the reference's
structural nonzeros, and any other entry torch made nonzero), row-major; every entry not
listed is 0 on both sides, except in `undefined_rows`, whose every entry is NaN in the
reference. `to_dense` turns it back into the dense object's matrices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..model import Report
from ..sparse import DENSE_ENTRIES, Sparse, as_sparse
from .common import Exact, json_number

LAYOUTS = ("auto", "sparse", "dense")


def check_layout(problem: Any, layout: str) -> None:
    """--dense of a Jacobian beyond MAX_JACOBIAN_ENTRIES is refused before any work."""
    from ..model import LimitError
    from ..shapes import MAX_JACOBIAN_ENTRIES

    if layout != "dense":
        return
    rows = sum(math.prod(s) for s in problem.output_shapes)
    cols = sum(math.prod(s) for s in problem.shapes)
    if rows * cols > MAX_JACOBIAN_ENTRIES:
        raise LimitError(
            f"--dense: J has {rows:,} x {cols:,} entries, more than the {MAX_JACOBIAN_ENTRIES:,} "
            "a dense JSON matrix may hold",
            where="--dense",
            fix="drop --dense: the COO form (--sparse) holds the same nonzeros",
        )


def wanted(report: Report, layout: str) -> bool:
    """Whether --json writes J in COO form: with --sparse, or by default beyond
    DENSE_ENTRIES entries (--dense: never)."""
    if layout == "sparse":
        return True
    if layout == "dense":
        return False
    s = report.symbolic
    return len(s.row_labels) * len(s.col_labels) > DENSE_ENTRIES


def _text(report: Report) -> Sparse:
    s = report.symbolic
    if s.sparse_text is not None:
        return s.sparse_text  # type: ignore[no-any-return]
    return as_sparse(s.jacobian_text) if s.jacobian_text else as_sparse([[]])


def _reference(report: Report) -> Sparse | None:
    s = report.symbolic
    if s.sparse_jacobian is not None:
        return s.sparse_jacobian  # type: ignore[no-any-return]
    return None if s.jacobian is None else as_sparse(s.jacobian)


def _candidate(report: Report) -> Sparse | None:
    a = report.autograd
    if a is None:
        return None
    return a.sparse_jacobian if a.sparse_jacobian is not None else as_sparse(a.jacobian)


def jacobian_dict(
    report: Report, layout: str, check_fields: Callable[[Any], dict[str, Any]]
) -> dict[str, Any] | None:
    """The "jacobian" object in COO form, or None where the dense form is wanted."""
    if not wanted(report, layout):
        return None
    s = report.symbolic
    text = _text(report)
    ref = _reference(report)
    cand = _candidate(report)
    m, n = len(s.row_labels), len(s.col_labels)
    rows: list[int] = []
    cols: list[int] = []
    sides = [x for x in (text, ref, cand) if x is not None]
    for i in range(m):
        stored: set[int] = set()
        for side in sides:
            stored.update(side.row(i)[0])
        for j in sorted(stored):
            rows.append(i)
            cols.append(j)
    out: dict[str, Any] = {
        "format": "coo",
        "shape": [m, n],
        "rows": rows,
        "cols": cols,
        "symbolic": [text.get(i, j) for i, j in zip(rows, cols, strict=True)],
        "latex": s.jacobian_latex,
        "nonzeros": s.nonzeros,
        "entries": len(rows),
        "row_labels": list(s.row_labels),
        "columns": list(s.col_labels),
    }
    if ref is not None and cand is not None:
        check = report.check("jacobian")
        assert check is not None
        beyond = s.beyond("jacobian")
        out["sympy"] = [
            _number(ref.get(i, j), beyond.get((i, j))) for i, j in zip(rows, cols, strict=True)
        ]
        out["torch"] = [json_number(cand.get(i, j)) for i, j in zip(rows, cols, strict=True)]
        out["undefined_rows"] = sorted(ref.nan_rows)
        out.update(check_fields(check))
        if check.undefined_rows:
            out["undefined_rows"] = list(check.undefined_rows)
    return out


def _number(x: float, text: str | None) -> float | str:
    return json_number(Exact(x, text) if text is not None else x)


def to_dense(jac: dict[str, Any]) -> dict[str, Any]:
    """A COO "jacobian" object's matrices in the dense object's form (nested lists: "symbolic",
    and "sympy" and "torch" where present), and its labels as "rows" and "columns"."""
    m, n = jac["shape"]
    undefined = set(jac.get("undefined_rows", ()))
    out: dict[str, Any] = {"shape": [m, n], "rows": jac["row_labels"], "columns": jac["columns"]}
    keys = [("symbolic", "0")] + [(k, 0.0) for k in ("sympy", "torch") if k in jac]
    for key, zero in keys:
        nan: Any = "NaN" if key == "sympy" else zero
        dense = [[nan if i in undefined else zero for _ in range(n)] for i in range(m)]
        for i, j, x in zip(jac["rows"], jac["cols"], jac[key], strict=True):
            dense[i][j] = x
        out[key] = dense
    return out


# ---- the terminal ------------------------------------------------------------------------


def text_rows(report: Report, clip: Callable[[str], str]) -> Any:
    """J's entries as text for the terminal, each through `clip`: nested tuples when small,
    else rows made as they are read."""
    s = report.symbolic
    if s.sparse_text is None:
        return [[clip(t) for t in r] for r in s.jacobian_text]
    return s.sparse_text.map(clip).view()


def number_rows(
    sp: Sparse | None,
    dense: Any,
    fmt: Callable[[float], str],
    beyond: dict[tuple[int, ...], str] | None = None,
) -> Any:
    """A numeric J formatted for the terminal (values beyond float64 as their decimals)."""
    if sp is None:
        from .common import exact_values

        return [[fmt(x) for x in r] for r in exact_values(dense, beyond or {})]
    values: Any = sp.values
    if beyond:
        values = list(values)
        rows = sp.rows_of_entries()
        for k, (i, j) in enumerate(zip(rows, sp.indices, strict=True)):
            text = beyond.get((i, j))
            if text is not None:
                values[k] = Exact(values[k], text)
    return sp.map(fmt, values=values).view()


def stored_columns(sides: Any, i: int, n: int) -> Any:
    """The columns of row i that any of `sides` (views of Sparse, or dense rows) may hold
    nonzero: all n where one side is dense."""
    from ..sparse import DenseView

    cols: set[int] = set()
    for side in sides:
        if not isinstance(side, DenseView) or i in side.sparse.nan_rows:
            return range(n)
        cols.update(side.sparse.row(i)[0])
    return sorted(cols)


def nonzero_entries(pattern: Any) -> Any:
    """(i, j, text) of a text matrix's entries that may be nonzero."""
    from ..sparse import DenseView

    if isinstance(pattern, DenseView):
        sp = pattern.sparse
        n = sp.shape[1]
        for i in range(sp.shape[0]):
            if i in sp.nan_rows:
                for j in range(n):
                    yield i, j, sp.nan
            else:
                cols, vals = sp.row(i)
                yield from ((i, j, t) for j, t in zip(cols, vals, strict=True))
        return
    for i, row in enumerate(pattern):
        for j, t in enumerate(row):
            yield i, j, t


def passes_title(report: Report) -> str:
    """How torch took J, for the title of its matrix."""
    a = report.autograd
    if a is None or a.mode == "rows" or a.passes >= len(report.symbolic.row_labels):
        return "J (torch, a backward pass per row)"
    kind = "forward" if a.mode == "forward" else "backward"
    if a.passes == a.colors:
        return f"J (torch, {a.passes} colored {kind} pass{'es' if a.passes != 1 else ''})"
    alone = a.passes - a.colors
    return (
        f"J (torch, {a.passes} {kind} passes: {a.colors} colors, "
        f"{alone} row{'s' if alone != 1 else ''} alone)"
    )
