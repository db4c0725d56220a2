"""Report -> JSON-ready dict, and the one strict JSON encoder every output goes through."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ..model import Check, Report
from ..shapes import nest
from . import coo, hessian
from . import expect as expect_view
from . import fd as fd_view
from . import graph as graph_view
from . import usercode as usercode_view
from .common import exact_values, json_number, nums, overall, per_name
from .explain import json_fields as explain_fields

SCHEMA_VERSION = 1


def check_fields(check: Check) -> dict[str, Any]:
    """A check's JSON fields: max_abs_diff, agree, status, rtol, atol, worst, undefined."""
    out: dict[str, Any] = {
        "max_abs_diff": json_number(check.max_abs_diff),
        "agree": check.agree,
        "status": check.status,
        "rtol": check.rtol,
        "atol": check.atol,
    }
    if check.worst is not None:
        out["worst"] = list(check.worst)  # index of the largest difference
    if check.undefined:
        out["undefined"] = [list(i) for i in check.undefined]
    return out


def _split(flat: Sequence[float], names: Sequence[str], shapes: Sequence[tuple[int, ...]]
           ) -> dict[str, Any]:  # fmt: skip
    """Flat values -> {name: value nested in its shape}, JSON-ready."""
    return {name: nest(nums(list(vals)), shape)
            for name, shape, vals in per_name(flat, names, shapes)}  # fmt: skip


def to_dict(report: Report, layout: str = "auto") -> dict[str, Any]:
    """The report as a JSON-ready dict; `layout` ("auto", "sparse" or "dense", --sparse and
    --dense) says whether J is written in COO form (views/coo.py): "auto" beyond 10,000
    entries."""
    p = report.problem
    s = report.symbolic
    a = report.autograd
    out: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "variables": list(p.variables),
        "functions": list(p.functions),
        "outputs": list(p.outputs),
        "shapes": {n: list(sh) for n, sh in zip(p.variables, p.shapes, strict=True)},
        "output_shapes": {n: list(sh) for n, sh in zip(p.outputs, p.output_shapes, strict=True)},
        "point": None if p.point is None else _split(p.point, p.variables, p.shapes),
    }
    coo_jac = coo.jacobian_dict(report, layout, check_fields)  # None: the dense form
    jac: dict[str, Any] = (
        coo_jac
        if coo_jac is not None
        else {
            "symbolic": [list(r) for r in s.jacobian_text],
            "latex": s.jacobian_latex,
            "nonzeros": s.nonzeros,
            "shape": [len(s.row_labels), len(s.col_labels)],
            "rows": list(s.row_labels),
            "columns": list(s.col_labels),
        }
    )
    if a is not None and coo_jac is None:
        check = report.check("jacobian")
        assert check is not None and s.jacobian is not None
        ref_j = exact_values(list(s.jacobian), s.beyond("jacobian"))  # list: a DenseView too
        jac.update(sympy=nums(ref_j), torch=nums(list(a.jacobian)), **check_fields(check))
    if a is not None:  # how torch took J (compressed.py)
        jac.update(passes=a.passes, pass_mode=a.mode, colors=a.colors)
    out["jacobian"] = jac
    if a is not None and p.v is not None:
        check = report.check("vjp")
        assert check is not None and s.vjp is not None and a.vjp is not None
        ref_v = exact_values(s.vjp, s.beyond("vjp"))
        sym_g = _split(ref_v, p.variables, p.shapes)
        tor_g = _split(a.vjp, p.variables, p.shapes)
        out["vjp"] = {
            "v": nums(p.v),
            "v_implicit": p.v_implicit,
            "cotangents": _split(p.v, p.outputs, p.output_shapes),
            "sympy": nums(ref_v),
            "torch": nums(a.vjp),
            "grads": {n: {"sympy": sym_g[n], "torch": tor_g[n]} for n in p.variables},
            **check_fields(check),
        }
    if a is not None and p.u is not None:
        check = report.check("jvp")
        assert check is not None and s.jvp is not None and a.jvp is not None
        ref_u = exact_values(s.jvp, s.beyond("jvp"))
        sym_o = _split(ref_u, p.outputs, p.output_shapes)
        tor_o = _split(a.jvp, p.outputs, p.output_shapes)
        out["jvp"] = {
            "u": nums(p.u),
            "tangents": _split(p.u, p.variables, p.shapes),
            "sympy": nums(ref_u),
            "torch": nums(a.jvp),
            "outputs": {n: {"sympy": sym_o[n], "torch": tor_o[n]} for n in p.outputs},
            **check_fields(check),
        }
    out.update(explain_fields(report))
    out.update(hessian.to_json(report))  # --hessian, --hessians, --hvp (issue 15)
    out["agree"] = report.agree
    out["status"] = overall(report)
    out["dtype"] = p.dtype
    out["engine"] = p.engine
    out["notes"] = [*report.notes, *s.notes, *(a.notes if a else ())]
    out.update(graph_view.json_fields(report))  # --graph
    out.update(expect_view.json_fields(report))  # "expect", "sample" (when asked for)
    out.update(usercode_view.sections(report))  # --torch FILE.py:NAME
    out.update(fd_view.sections(report))  # --fd
    return out


def to_json(report: Report, layout: str = "auto") -> str:
    return dumps(to_dict(report, layout))


def dumps(obj: Any) -> str:
    return json.dumps(obj, allow_nan=False, ensure_ascii=True)


# ---- rich ---------------------------------------------------------------------------------
