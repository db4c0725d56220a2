"""--fd: finite differences (numdifftools) as a candidate, and as the reference for --torch."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from jvp_cli import fd
from jvp_cli.compare import compare_within

HERE = Path(__file__).parent / "usercode"


def within_own_error(values, errors, hand) -> bool:
    v, e, h = (np.asarray(x, dtype=float) for x in (values, errors, hand))
    return bool(np.all(np.abs(v - h) <= fd.SAFETY * e + fd.FLOOR * (1 + np.abs(h))))


def test_jacobian_of_numpy_function_within_its_error() -> None:
    def f(x):
        a, b = x
        return np.array([np.sin(a) * np.exp(b), np.log(a + b * b), a / b])

    a, b = 0.7, 1.3
    hand = [
        [math.cos(a) * math.exp(b), math.sin(a) * math.exp(b)],
        [1 / (a + b * b), 2 * b / (a + b * b)],
        [1 / b, -a / b**2],
    ]
    J, E = fd.jacobian(f, [a, b], 3)
    assert J.shape == (3, 2) and E.shape == (3, 2)
    assert within_own_error(J, E, hand)
    assert np.all(E < 1e-8)  # a real error bar, not a blanket tolerance


def test_products_propagate_the_error() -> None:
    J = np.array([[1.0, 2.0], [3.0, 4.0]])
    E = np.array([[1e-10, 2e-10], [3e-10, 4e-10]])
    (vj, ve), (ju, ue) = fd.products(J, E, [1.0, -2.0], [0.5, 1.0])
    assert vj.tolist() == [1 - 6, 2 - 8] and ju.tolist() == [0.5 + 2, 1.5 + 4]
    assert np.allclose(ve, [1e-10 + 6e-10, 2e-10 + 8e-10])
    assert np.allclose(ue, [0.5e-10 + 2e-10, 1.5e-10 + 4e-10])


def test_compare_within_judges_by_the_error_bar() -> None:
    ok = compare_within("j", [[1.0, 2.0]], [[1.0 + 1e-9, 2.0]], [[1e-8, 1e-8]], "t")
    assert ok.status == "agree" and ok.tolerance == "t"
    bad = compare_within("j", [[1.0, 2.0]], [[1.0 + 1e-7, 2.0]], [[1e-8, 1e-8]], "t")
    assert bad.status == "disagree" and bad.worst == (0, 0)
    nan_bar = compare_within("j", [[1.0]], [[1.0]], [[math.nan]], "t")
    assert nan_bar.status == "disagree"  # an estimate that failed vouches for nothing
    undefined = compare_within("j", [[math.nan]], [[1.0]], [[1e-8]], "t")
    assert undefined.status == "undefined"


SMOOTH = [
    # (functions, point, hand Jacobian)
    (
        "sin(x)*y; exp(x*y)",
        (1.0, 2.0),
        lambda x, y: [[math.cos(x) * y, math.sin(x)], [y * math.exp(x * y), x * math.exp(x * y)]],
    ),
    (
        "log(1+x**2)/y; sqrt(x)*atan(y)",
        (0.3, -1.5),
        lambda x, y: [
            [2 * x / (1 + x * x) / y, -math.log(1 + x * x) / y**2],
            [0.5 / math.sqrt(x) * math.atan(y), math.sqrt(x) / (1 + y * y)],
        ],
    ),
    (
        "tanh(3*x - y) + x*y**3",
        (0.2, 0.4),
        lambda x, y: [
            [
                3 * (1 - math.tanh(3 * x - y) ** 2) + y**3,
                -(1 - math.tanh(3 * x - y) ** 2) + 3 * x * y * y,
            ]
        ],
    ),
]


@pytest.mark.parametrize(("functions", "point", "hand"), SMOOTH)
def test_fd_agrees_with_hand_values_within_its_own_error(vjp, functions, point, hand) -> None:
    at = ",".join(map(str, point))
    out = vjp(functions, "--at", at, "--u", "1,-1", "--fd", "--json").json()
    f = out["fd"]
    assert f["function"] == "formula" and f["is_reference"] is False
    assert f["jacobian"]["agree"] and f["jvp"]["agree"] and f["agree"]
    expected = hand(*point)
    assert within_own_error(f["jacobian"]["values"], f["jacobian"]["error"], expected)
    ju = [row[0] - row[1] for row in expected]
    assert within_own_error(f["jvp"]["values"], f["jvp"]["error"], ju)
    assert "error estimate" in f["tolerance"] and "numdifftools" in f["method"]
    assert out["agree"]


def test_fd_of_the_seed_system(vjp) -> None:
    out = vjp(
        "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3",
        "--at",
        "1,2,3",
        "--v",
        "3,2,1",
        "--fd",
        "--json",
    ).json()
    v = out["fd"]["vjp"]
    assert within_own_error(v["values"], v["error"], [10, 34, 42]) and v["agree"]


def test_fd_rich_shows_the_third_column_and_tolerance(vjp) -> None:
    r = vjp("sin(x)*y", "--at", "1,2", "--fd")
    assert "Finite differences" in r.stdout and "FD error" in r.stdout
    flat = " ".join(r.stdout.replace("│", " ").split())
    assert "error estimate" in flat and "FD: agree" in flat


def test_fd_steps_around_a_domain_edge(vjp) -> None:
    # numdifftools' first steps leave log's domain (NaN there): it must still converge
    out = vjp("log(x)", "--at", "0.05", "--fd", "--json").json()
    j = out["fd"]["jacobian"]
    assert j["agree"] and abs(j["values"][0][0] - 20.0) < 1e-6


def test_fd_needs_a_point(vjp) -> None:
    r = vjp("sin(x)", "--fd", code=2)
    assert "--fd needs a point" in r.stderr


def test_fd_too_big_is_refused(vjp) -> None:
    r = vjp("sum(x)", "--shape", "x=300", "--at", "x=ones", "--fd", code=2)
    assert "--fd" in r.stderr and "limit" in r.stderr


def test_formula_function_does_not_use_torch() -> None:
    from jvp_cli import lang

    program = lang.parse_program("x*sigmoid(x); log(y)")
    f = fd.formula_function(program, [(), ()])
    out = f(np.array([0.5, -1.0]))
    assert out[0] == pytest.approx(0.5 / (1 + math.exp(-0.5)), rel=1e-15)
    assert math.isnan(out[1])  # outside log's domain: NaN, not an exception


def test_fd_as_reference_catches_a_wrong_backward(vjp) -> None:
    out = vjp(
        "--torch", f"{HERE / 'swish.py'}:SwishTwice.apply", "--at", "1.5", "--json", code=1
    ).json()
    assert out["reference"] == "fd" and out["fd"]["is_reference"]
    assert out["fd"]["function"] == "code"
    s = 1 / (1 + math.exp(-1.5))
    hand = s + 1.5 * s * (1 - s)
    j = out["fd"]["jacobian"]
    assert within_own_error(j["values"], j["error"], [[hand]])
    assert out["code"]["jacobian"]["status"] == "disagree"
    assert "error estimate" in out["code"]["jacobian"]["tolerance"]


def test_fd_of_own_forward_tells_a_wrong_forward_from_a_wrong_backward(vjp) -> None:
    swish = HERE / "swish.py"
    wrong_fwd = vjp(
        "x*sigmoid(x)",
        "--torch",
        f"{swish}:TanhSwish.apply",
        "--at",
        "0.5",
        "--fd",
        "--json",
        code=1,
    ).json()["code"]
    own = wrong_fwd["own_fd"]
    t = math.tanh(0.5)
    assert own["agree"] and within_own_error(own["values"], own["error"], [[t + 0.5 * (1 - t * t)]])
    assert any("the forward is what does not compute the formula" in n for n in wrong_fwd["notes"])
    wrong_bwd = vjp(
        "x*sigmoid(x)",
        "--torch",
        f"{swish}:SwishTwice.apply",
        "--at",
        "0.5",
        "--fd",
        "--json",
        code=1,
    ).json()["code"]
    assert wrong_bwd["own_fd"]["status"] == "disagree"
    assert any("the backward is wrong" in n for n in wrong_bwd["notes"])


def test_fd_that_cannot_resolve_the_derivative_disagrees_and_says_why(vjp) -> None:
    # sin(1/x) at 0.01 oscillates on a scale far below numdifftools' steps: FD is wrong,
    # and must be reported wrong (never "agree"), with torch and the reference standing
    out = vjp("sin(1/x)", "--at", "0.01", "--fd", "--json", code=1).json()
    hand = -math.cos(100.0) * 1e4  # d sin(1/x) / dx = -cos(1/x) / x^2
    assert out["jacobian"]["agree"] and abs(out["jacobian"]["sympy"][0][0] - hand) < 1e-8
    assert out["fd"]["jacobian"]["status"] == "disagree"
    assert any("FD cannot resolve" in n for n in out["fd"]["notes"])


def test_fd_within_its_error_at_random_points() -> None:
    from jvp_cli import lang

    program = lang.parse_program("sin(x)*exp(y); log(1 + x**2 + y**2); x/(1 + y**2)")
    f = fd.formula_function(program, [(), ()])
    rng = np.random.default_rng(12)
    for _ in range(15):
        x, y = rng.uniform(-2, 2, 2)
        r = 1 + x * x + y * y
        hand = [
            [math.cos(x) * math.exp(y), math.sin(x) * math.exp(y)],
            [2 * x / r, 2 * y / r],
            [1 / (1 + y * y), -2 * x * y / (1 + y * y) ** 2],
        ]
        J, E = fd.jacobian(f, [x, y], 3)
        assert within_own_error(J, E, hand), (x, y)


def test_fd_whose_stencil_leaves_the_domain_says_so(vjp) -> None:  # type: ignore[no-untyped-def]
    """sqrt(x) at 1e-10: FD's steps reach x < 0, where sqrt is not real; the derivative
    1/(2 sqrt(x)) = 50,000 is the reference's and torch's, and FD's failure is named as such."""
    out = vjp("sqrt(x)", "--at", "1e-10", "--fd", "--json", code=1).json()
    assert out["jacobian"]["sympy"][0][0] == pytest.approx(50000.0, rel=1e-12)
    assert out["jacobian"]["status"] == "agree" and out["fd"]["status"] == "disagree"
    assert any("left the function's domain" in n for n in out["fd"]["notes"])
