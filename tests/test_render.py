"""Renderers are pure: JSON-ready dicts that are strict JSON, rich renderables that never
interpret user text as markup."""

from __future__ import annotations

import json
import math
import re

from rich.console import Console

from jvp_cli import api
from jvp_cli.views import common
from jvp_cli.views import json as json_view
from jvp_cli.views import rich as rich_view


def report_for(text: str, **kw: str):  # type: ignore[no-untyped-def]
    program, problem = api.make_problem(text, **kw)
    return api.solve(program, problem)


def test_non_finite_numbers_are_strings() -> None:
    assert common.json_number(math.nan) == "NaN"
    assert common.json_number(math.inf) == "Infinity"
    assert common.json_number(-math.inf) == "-Infinity"
    assert common.json_number(-0.0) == 0.0
    assert math.copysign(1, common.json_number(-0.0)) == 1.0  # type: ignore[arg-type]


def test_undefined_report_is_strict_json() -> None:
    report = report_for("sqrt(x)", at="0")
    text = json_view.to_json(report)
    data = json.loads(text, parse_constant=lambda t: (_ for _ in ()).throw(AssertionError(t)))
    # d sqrt(x)/dx = 1/(2 sqrt(x)) diverges to +inf from the side where sqrt is defined
    assert data["jacobian"]["sympy"] == [["Infinity"]]
    assert data["jacobian"]["status"] == "undefined"
    assert data["agree"] is False
    assert data["notes"]


def test_schema_fields() -> None:
    d = json_view.to_dict(report_for("x*y; x+y", at="x=2,y=3", v="1,0", u="0,1"))
    assert d["variables"] == ["x", "y"]
    assert d["point"] == {"x": 2.0, "y": 3.0}
    assert d["jacobian"]["symbolic"] == [["y", "x"], ["1", "1"]]
    assert d["jacobian"]["sympy"] == d["jacobian"]["torch"] == [[3.0, 2.0], [1.0, 1.0]]
    assert d["vjp"]["v"] == [1.0, 0.0] and d["vjp"]["torch"] == [3.0, 2.0]
    assert d["jvp"]["u"] == [0.0, 1.0] and d["jvp"]["sympy"] == [2.0, 1.0]
    for key in ("jacobian", "vjp", "jvp"):
        assert d[key]["agree"] is True
        assert d[key]["max_abs_diff"] == 0.0
    assert d["agree"] is True


def test_no_vjp_for_vector_without_v() -> None:
    d = json_view.to_dict(report_for("x*y; x+y", at="1,2"))
    assert "vjp" not in d and "jvp" not in d
    assert any("implicit gradient" in n for n in d["notes"])


def test_rich_view_prints_user_names_as_typed() -> None:
    report = report_for("bold = x*2; bold_1 = x", at="3")
    console = Console(record=True, width=120, color_system=None)
    console.print(rich_view.to_rich(report))
    text = console.export_text()
    assert re.search(r"bold\s+= x\*2", text)
    assert "Verdict" in text and "agree" in text
