"""The reference where numerics are fragile: cases found by attacking the issue-9 build, each
checked against a closed form (the derivatives are derived by hand in the comments)."""

from __future__ import annotations

import json
import math

import pytest


def _one(vjp, fn: str, at: str, code: int) -> dict:  # type: ignore[no-untyped-def]
    return vjp(fn, "--at", at, "--json", code=code).json()


def _points(vjp, fn: str, header: str, rows: list[str], code: int) -> list[dict]:  # type: ignore[no-untyped-def]
    r = vjp(fn, "--points", "-", "--json", input="\n".join([header, *rows]) + "\n", code=code)
    return [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


@pytest.mark.parametrize(("fn", "at"), [
    ("1e-7*abs(x)", "0"),            # slopes -1e-7 and +1e-7: a kink, however small
    ("1e-7*relu(x)", "0"),           # 0 and 1e-7
    ("1000*x + 0.0004*abs(x)", "0"),  # 999.9996 and 1000.0004
    ("abs(x)*y", "x=0,y=1e-7"),
])  # fmt: skip
def test_small_kinks_are_undefined(vjp, fn: str, at: str) -> None:  # type: ignore[no-untyped-def]
    d = _one(vjp, fn, at, 1)
    assert d["jacobian"]["status"] == "undefined"
    assert d["jacobian"]["sympy"][0][0] == "NaN"


@pytest.mark.parametrize(("fn", "at", "want"), [
    ("x*abs(x)", "0", 0.0),           # 2|x| -> 0 from both sides: the derivative exists
    ("abs(x)**1.5", "0", 0.0),        # 1.5 sqrt|x| sign(x) -> 0
])  # fmt: skip
def test_zero_over_zero_with_a_limit_is_the_limit(vjp, fn: str, at: str, want: float) -> None:  # type: ignore[no-untyped-def]
    d = _one(vjp, fn, at, 0)
    assert d["jacobian"]["sympy"] == [[want]]


@pytest.mark.parametrize(("fn", "x", "want"), [
    # d/dx log(1+x)/x = -1/2 + 2x/3 - ...: evalf loses x in 1 + x; the certified walk does not
    ("log(1+x)/x", 1e-80, -0.5),
    # d/dx (1 - cos x)/x^2 = -x/12 + x^3/180 - ...
    ("(1-cos(x))/x**2", 1e-39, -1e-39 / 12),
    # d/dx (exp(x) - 1)/x = 1/2 + x/3 + ...
    ("(exp(x)-1)/x", 1e-80, 0.5),
    # d/dx log((1 + x) - 1) = 1/x: (1 + x) - 1 is x exactly, though 1 + x rounds to 1
    ("log((1+x)-1)", 1e-80, 1e80),
    # 1/log(1+x) has derivative -1/((1+x) log(1+x)^2) ~ -1/x^2
    ("1/log(1+x)", 1e-40, -1e80),
])  # fmt: skip
def test_cancellation_beyond_any_fixed_precision(vjp, fn: str, x: float, want: float) -> None:  # type: ignore[no-untyped-def]
    one = _one(vjp, fn, repr(x), 1)
    ref = one["vjp"]["sympy"][0]
    assert math.isclose(ref, want, rel_tol=1e-9), (fn, ref, want)
    assert one["vjp"]["status"] == "disagree"  # torch's float64 loses it all
    line = _points(vjp, fn, "x", [repr(x)], 1)[0]
    assert math.isclose(line["vjp"]["sympy"][0], want, rel_tol=1e-9)
    assert line["vjp"]["status"] == one["vjp"]["status"]


@pytest.mark.parametrize(("fn", "x", "want", "status"), [
    ("log(exp(x))", -800.0, 1.0, "disagree"),      # exp underflows to 0: torch log(0)
    ("log(x*x)", 1e-200, 2e200, "disagree"),        # x*x underflows: 2/x fits float64
    ("log(sigmoid(x))", -700.0, 1.0, "agree"),      # d = 1 - sigmoid(x) = 1 - 1e-304
    ("log(softplus(x))", -700.0, 1.0, "agree"),     # softplus(x) ~ e^x: d -> 1
    ("log(softplus(x))", -100.0, 1.0, "agree"),
])  # fmt: skip
def test_underflow_is_not_undefined(vjp, fn: str, x: float, want: float, status: str) -> None:  # type: ignore[no-untyped-def]
    one = _one(vjp, fn, repr(x), 0 if status == "agree" else 1)
    assert one["vjp"]["status"] == status
    assert math.isclose(one["vjp"]["sympy"][0], want, rel_tol=1e-9)
    line = _points(vjp, fn, "x", [repr(x)], 0 if status == "agree" else 1)[0]
    assert line["vjp"]["status"] == status
    assert math.isclose(line["vjp"]["sympy"][0], want, rel_tol=1e-9)


def test_atan2_of_a_positive_underflowing_y_is_off_the_cut(vjp) -> None:  # type: ignore[no-untyped-def]
    # y*y = 1e-400 > 0: off the branch cut; d/dy atan2(y^2, x) = 2xy/(x^2 + y^4) = -2e-200
    d = _one(vjp, "atan2(y*y, x)", "y=1e-200,x=-1", 0)
    assert d["vjp"]["status"] == "agree"
    assert math.isclose(d["vjp"]["sympy"][1], -2e-200, rel_tol=1e-12)


def test_a_point_too_large_for_the_reference_is_a_bad_row(vjp) -> None:  # type: ignore[no-untyped-def]
    lines = _points(vjp, "exp(x)", "x", ["1", "2", "1e20", "3"], 2)
    assert [o["line"] for o in lines] == [2, 3]
    assert math.isclose(lines[1]["vjp"]["sympy"][0], math.exp(2), rel_tol=1e-15)


@pytest.mark.parametrize(("fn", "x", "want"), [
    ("log(1+x)/x", 1e-80, -0.5),
    ("(1-cos(x))/x**2", 1e-39, -1e-39 / 12),
    ("sin(x)*exp(x)", 0.5, math.cos(0.5) * math.exp(0.5) + math.sin(0.5) * math.exp(0.5)),
])  # fmt: skip
def test_symengine_values_are_certified_too(vjp, fn: str, x: float, want: float) -> None:  # type: ignore[no-untyped-def]
    # big problems take SymEngine's MPFR values where the magnitude bound certifies them,
    # and the certified mpmath walk where it does not (cancellation)
    d = vjp(fn, "--at", repr(x), "--engine", "symengine", "--json", code=None).json()
    assert d["engine"] == "symengine"
    assert math.isclose(d["vjp"]["sympy"][0], want, rel_tol=1e-12)


@pytest.mark.parametrize(
    ("text", "at"),
    [("(x-1)*abs(x-1)", "1"), ("(x+2)*abs(x+2)", "-2"), ("y = x + 2; z = y*abs(y)", "-2")],
)
def test_a_shifted_kink_times_its_argument_has_derivative_zero(vjp, text: str, at: str) -> None:  # type: ignore[no-untyped-def]
    """d/dx (x-a)|x-a| = 2|x-a|, 0 at x = a, like x|x| at 0: the argument is an exact 0 there,
    which no precision certifies relatively, so the value is the derivative's limit (0 from
    both sides, by hand), not "undefined"."""
    out = vjp(text, "--at", at, "--json").json()
    assert out["jacobian"]["sympy"] == [[0.0]] and out["status"] == "agree"


def test_a_limit_of_zero_through_a_0_over_0_is_zero(vjp) -> None:  # type: ignore[no-untyped-def]
    """d/dx x**y = y x**y / x at (0, 3) is 0/0 as written, 3x^2 = 0 in truth (by hand): the
    limit read from the probes must be 0 exactly, not the -1.3e-105 a linear extrapolation of
    3h^2 leaves."""
    out = vjp("x**y", "--at", "0,3", "--json", code=None).json()
    assert out["jacobian"]["sympy"][0][0] == 0.0
