"""SymPy side: the symbolic Jacobian against hand derivations and finite differences."""

from __future__ import annotations

import math
import random

import pytest
from conftest import assert_close, central_jacobian, scalars, with_shapes

from jvp_cli import lang, symbolic

SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"


def test_seed_jacobian_by_hand() -> None:
    prog = lang.parse_program(SEED)
    res = symbolic.evaluate(prog, scalars(prog), (1.0, 2.0, 3.0), (3.0, 2.0, 1.0), (1.0, 0.0, 0.0))
    assert res.jacobian_text == (
        ("2*x1", "2", "1"),
        ("1", "3*x2**2", "2*x3"),
        ("2", "2*x2", "3*x3**2"),
    )
    assert res.jacobian == ((2, 2, 1), (1, 12, 6), (2, 4, 27))
    assert res.vjp == (10, 34, 42)  # 3*(2,2,1) + 2*(1,12,6) + 1*(2,4,27)
    assert res.jvp == (2, 1, 2)  # the first column
    assert res.nonzeros == 9


def test_seed_with_ones() -> None:
    prog = lang.parse_program(SEED)
    res = symbolic.evaluate(prog, scalars(prog), (1.0, 2.0, 3.0), (1.0, 1.0, 1.0), None)
    assert res.vjp == (5, 18, 34)


def test_symbolic_only_without_point() -> None:
    res = symbolic.evaluate(*with_shapes("x^2*y"), None, None, None)
    assert res.jacobian_text == (("2*x*y", "x**2"),)
    assert res.jacobian is None
    assert "x" in res.jacobian_pretty


CASES = [
    ("sin(x)*exp(y)", lambda x, y: math.sin(x) * math.exp(y)),
    ("atan2(y, x)", lambda x, y: math.atan2(y, x)),
    ("log(x^2 + y^2)/2", lambda x, y: math.log(x * x + y * y) / 2),
    ("sqrt(x*y) + tanh(x - y)", lambda x, y: math.sqrt(x * y) + math.tanh(x - y)),
    ("sigmoid(x*y)", lambda x, y: 1 / (1 + math.exp(-x * y))),
    ("softplus(x - 2*y)", lambda x, y: math.log1p(math.exp(x - 2 * y))),
    ("x^y", lambda x, y: x**y),
    ("asin(x/3) + acos(y/3) + atan(x*y)",
     lambda x, y: math.asin(x / 3) + math.acos(y / 3) + math.atan(x * y)),
    ("sinh(x)*cosh(y) - tan(x/4)", lambda x, y: math.sinh(x) * math.cosh(y) - math.tan(x / 4)),
    ("abs(x - y) + relu(x + y) + pi*E", lambda x, y: abs(x - y) + max(x + y, 0) + math.pi * math.e),
]  # fmt: skip


@pytest.mark.parametrize(("text", "fn"), CASES, ids=[c[0] for c in CASES])
def test_against_finite_differences(text: str, fn) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(text)
    prog = lang.parse_program(text, variables=["x", "y"])
    for _ in range(3):
        point = (rng.uniform(0.3, 2.0), rng.uniform(0.3, 1.2))
        if "abs" in text and abs(point[0] - point[1]) < 1e-3:
            continue
        res = symbolic.evaluate(prog, scalars(prog), point, None, None)
        assert res.jacobian is not None
        assert_close(res.jacobian, central_jacobian([fn], point), rel=1e-6, abs_=1e-6)


def test_undefined_points_are_nan_not_conventions() -> None:
    for text, point in [
        ("abs(x)", 0.0),
        ("relu(x)", 0.0),
        ("sqrt(x)", 0.0),
        ("log(x)", 0.0),
        ("log(x)", -1.0),
        ("1/x", 0.0),
    ]:
        res = symbolic.evaluate(*with_shapes(text), (point,), (1.0,), None)
        assert res.jacobian is not None
        assert not math.isfinite(res.jacobian[0][0]), text
        assert res.notes, text


def test_sparse_entries_are_not_differentiated() -> None:
    n = 50
    text = "; ".join(f"x{i}*x{i + 1}" for i in range(1, n))
    res = symbolic.evaluate(*with_shapes(text), None, None, None)
    assert res.nonzeros == 2 * (n - 1)


def test_pretty_matches_sympy_and_leaves_no_stand_in() -> None:
    import sys

    import sympy as sp

    x, y = sp.symbols("x y", real=True)
    m = sp.Matrix([[2 * x * y, 3 * x**2], [sp.sin(x) / y, 1]])
    had_units = "sympy.physics.units" in sys.modules
    got = symbolic._pretty(m)
    assert ("sympy.physics.units" in sys.modules) == had_units
    assert got == sp.pretty(m, use_unicode=True, wrap_line=False)


SE_CASES = [c for c in CASES if not any(f in c[0] for f in ("abs", "relu"))]


@pytest.mark.parametrize(("text", "fn"), SE_CASES, ids=[c[0] for c in SE_CASES])
def test_symengine_gives_sympys_numbers(text: str, fn) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("symengine")
    prog = lang.parse_program(text, variables=["x", "y"])
    point, v, u = (0.7, 0.4), (1.5,), (0.3, -2.0)
    a = symbolic.evaluate(prog, scalars(prog), point, v, u, engine="symengine")
    b = symbolic.evaluate(prog, scalars(prog), point, v, u, engine="sympy")
    assert_close(a.jacobian, b.jacobian, rel=1e-14, abs_=1e-15)
    assert_close(a.vjp, b.vjp, rel=1e-14, abs_=1e-15)
    assert_close(a.jvp, b.jvp, rel=1e-14, abs_=1e-15)
    assert_close(a.jacobian, central_jacobian([fn], point), rel=1e-6, abs_=1e-6)


def test_symengine_marks_the_same_undefined_points() -> None:
    pytest.importorskip("symengine")
    for text, point in [("sqrt(x)", 0.0), ("log(x)", 0.0), ("log(x)", -1.0), ("1/x", 0.0)]:
        prog = lang.parse_program(text)
        a = symbolic.evaluate(prog, scalars(prog), (point,), (1.0,), None, engine="symengine")
        assert a.jacobian is not None and not math.isfinite(a.jacobian[0][0]), text
        assert a.notes, text


def test_decimals_stay_decimals_in_the_symbolic_view(vjp) -> None:  # type: ignore[no-untyped-def]
    # shown as typed, computed exactly: 123456789.123456 is 1929012330054/15625 inside
    d = vjp("123456789.123456*x + 0.25*x**2", "--at", "2", "--json").json()
    text = d["jacobian"]["symbolic"][0][0]
    assert "123456789.123456" in text and "15625" not in text and "0.5*x" in text
    assert "123456789.123456" in d["jacobian"]["latex"]
    # the value is the exact one: 123456789.123456 + 0.5 * 2
    assert d["jacobian"]["sympy"][0][0] == pytest.approx(123456789.123456 + 1.0, rel=1e-15)
    # without decimals in the input, rationals stay rationals; exponents stay roots
    d = vjp("x**2/4 + sqrt(x)", "--at", "2", "--json").json()
    assert d["jacobian"]["symbolic"] == [["x/2 + 1/(2*sqrt(x))"]]
