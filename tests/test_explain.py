"""--explain: the weighted rows of v^T J and weighted columns of J u, checked against hand
derivations, finite differences and mpmath, in the terminal and in JSON."""

from __future__ import annotations

import math

import mpmath
import pytest
from conftest import assert_close, central_jacobian
from rich.console import Console

from jvp_cli import api
from jvp_cli.views import rich as rich_view
from jvp_cli.views.explain import blackboard

SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"
# J of the seed by hand, and at (1, 2, 3)
SEED_ROWS_TEXT = [["2*x1", "2", "1"], ["1", "3*x2**2", "2*x3"], ["2", "2*x2", "3*x3**2"]]
SEED_J = [[2, 2, 1], [1, 12, 6], [2, 4, 27]]


def text_of(report: object, width: int = 160) -> str:
    console = Console(width=width, record=True, color_system=None)
    console.print(rich_view.to_rich(report, False, width))  # type: ignore[arg-type]
    return console.export_text()


def report_for(text: str, **kw: str):  # type: ignore[no-untyped-def]
    program, problem = api.make_problem(text, explain=True, **kw)
    return api.solve(program, problem)


def weighted(terms: list[dict], key: str) -> list[float]:
    """sum_k weight_k * row_k, in plain Python."""
    size = len(terms[0][key])
    return [sum(t["weight"] * t[key][c] for t in terms) for c in range(size)]


def test_seed_terms_rows_and_result(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--explain", "--json").json()
    e = d["explain"]
    terms = e["vjp"]["terms"]
    assert [t["weight"] for t in terms] == [3.0, 2.0, 1.0]
    assert [t["output"] for t in terms] == ["f1", "f2", "f3"]
    assert [t["row_symbolic"] for t in terms] == SEED_ROWS_TEXT
    assert [t["row"] for t in terms] == SEED_J  # the hand values
    assert [t["row"] for t in terms] == d["jacobian"]["sympy"]  # = J's rows, row by row
    # 3*(2,2,1) + 2*(1,12,6) + 1*(2,4,27), by hand
    assert e["vjp"]["result"] == [10.0, 34.0, 42.0]
    assert weighted(terms, "row") == [10.0, 34.0, 42.0]
    assert e["vjp"]["result"] == d["vjp"]["torch"]
    assert e["passes"] == {"reverse": 3, "forward": 3}
    assert e["jvp"] is None  # no --u
    calls = " ".join(c for codes in e["calls"].values() for c in codes)
    for call in ("backward(v)", ".grad", "torch.autograd.grad(", "torch.func.vjp(",
                 "torch.func.jvp(", "jacrev", "jacfwd"):  # fmt: skip
        assert call in calls
    pitfalls = " ".join(e["pitfalls"])
    for word in ("needs v", "accumulates", "doubles", "retain_graph=True", "3 backward passes",
                 "3 forward passes", "jacrev"):  # fmt: skip
        assert word in pitfalls


def test_seed_panel_reads_like_the_derivation() -> None:
    text = text_of(report_for(SEED, at="1,2,3", v="3,2,1"))
    assert "v^T J = 3·(2x1, 2, 1) + 2·(1, 3x2², 2x3) + 1·(2, 2x2, 3x3²)" in text
    assert "= 3·(2, 2, 1) + 2·(1, 12, 6) + 1·(2, 4, 27)" in text
    assert "at (x1, x2, x3) = (1, 2, 3)" in text
    assert "= (10, 34, 42)" in text
    assert "retain_graph=True" in text and "x1.grad, x2.grad, x3.grad" in text


def test_seed_v_ones_is_the_code_of_the_tutorial(vjp) -> None:  # type: ignore[no-untyped-def]
    e = vjp(SEED, "--at", "1,2,3", "--v", "1,1,1", "--explain", "--json").json()["explain"]
    # (2,2,1) + (1,12,6) + (2,4,27)
    assert e["vjp"]["result"] == [5.0, 18.0, 34.0]


def test_jvp_columns(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--u", "1,2,3", "--explain", "--json").json()
    jvp = d["explain"]["jvp"]
    terms = jvp["terms"]
    assert [t["variable"] for t in terms] == ["x1", "x2", "x3"]
    assert [t["weight"] for t in terms] == [1.0, 2.0, 3.0]
    columns = [[row[j] for row in SEED_J] for j in range(3)]
    assert [t["column"] for t in terms] == columns
    assert terms[1]["column_symbolic"] == ["2", "3*x2**2", "2*x2"]
    # 1*(2,1,2) + 2*(2,12,4) + 3*(1,6,27), by hand
    assert jvp["result"] == [9.0, 43.0, 91.0]
    assert weighted(terms, "column") == jvp["result"] == d["jvp"]["torch"]


def test_jvp_panel() -> None:
    text = text_of(report_for(SEED, at="1,2,3", v="3,2,1", u="1,2,3"), 120)
    assert "J u = 1·(2x1, 1, 2) + 2·(2, 3x2², 2x2) + 3·(1, 2x3, 3x3²)" in text
    assert "= 1·(2, 1, 2) + 2·(2, 12, 4) + 3·(1, 6, 27)" in text
    assert "= (9, 43, 91)" in text


def test_zero_weights_are_dropped_and_said(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(SEED, "--at", "1,2,3", "--v", "0,1,0", "--explain", "--json").json()
    terms = d["explain"]["vjp"]["terms"]
    assert len(terms) == 3 and [t["weight"] for t in terms] == [0.0, 1.0, 0.0]  # all in JSON
    assert d["explain"]["vjp"]["result"] == SEED_J[1] == weighted(terms, "row")
    text = text_of(report_for(SEED, at="1,2,3", v="0,1,0"))
    assert "v^T J = 1·(1, 3x2², 2x3)" in text
    assert "2 terms with weight 0 left out" in text
    assert "= (1, 12, 6)" in text


def test_negative_weights() -> None:
    text = text_of(report_for(SEED, at="1,2,3", v="-1,2,-3"))
    assert "v^T J = -1·(2x1, 2, 1) + 2·(1, 3x2², 2x3) - 3·(2, 2x2, 3x3²)" in text
    # -(2,2,1) + 2(1,12,6) - 3(2,4,27)
    assert "= (-6, 10, -70)" in text


def test_scalar_output_is_the_gradient(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("sin(x)*y", "--at", "1,2", "--explain", "--json").json()
    e = d["explain"]
    assert e["scalar"] is True and e["v_implicit"] is True
    (term,) = e["vjp"]["terms"]
    assert term["weight"] == 1.0 and term["output"] == "f1"
    gradient = [2 * math.cos(1), math.sin(1)]  # by hand: (y cos x, sin x)
    assert_close(term["row"], gradient, rel=1e-15)
    assert_close(e["vjp"]["result"], gradient, rel=1e-15)
    assert e["passes"] == {"reverse": 1, "forward": 2}
    assert e["calls"]["vjp"][0] == "f1.backward() (f1 is a scalar: v = 1), then x.grad, y.grad"
    text = text_of(report_for("sin(x)*y", at="1,2"))
    assert "is a scalar: v = 1" in text and "the gradient of f1" in text


def test_tensor_program_of_the_tutorial(vjp) -> None:  # type: ignore[no-untyped-def]
    program = "y = x + 2; z = y * y; out = mean(z)"
    d = vjp(program, "--at", "x=[[1,1],[1,1]]", "--explain", "--json").json()
    e = d["explain"]
    (term,) = e["vjp"]["terms"]
    assert term["output"] == "out"
    # d out / d x_ij = (x_ij + 2) / 2 = 1.5 at x = 1 (background.md)
    assert term["row"] == [1.5] * 4 == e["vjp"]["result"]
    assert term["row_symbolic"] == [f"x[{i},{j}]/2 + 1" for i in (0, 1) for j in (0, 1)]
    assert d["explain"]["vjp"]["labels"] == ["x[0,0]", "x[0,1]", "x[1,0]", "x[1,1]"]
    assert e["passes"] == {"reverse": 1, "forward": 4}
    text = text_of(report_for(program, at="x=[[1,1],[1,1]]"))
    assert "x.grad = [[1.5, 1.5], [1.5, 1.5]]" in text
    assert "out is a scalar: v = 1" in text


def test_tensor_output_per_element(vjp) -> None:  # type: ignore[no-untyped-def]
    # out_i = x_i^2 * w: one weighted row per output element
    d = vjp("out = x*x*w", "--vars", "x,w", "--at", "x=[1,2,3],w=2", "--v", "[1,0.5,-1]",
            "--explain", "--json").json()  # fmt: skip
    terms = d["explain"]["vjp"]["terms"]
    assert [t["output"] for t in terms] == ["out[0]", "out[1]", "out[2]"]
    assert [t["weight"] for t in terms] == [1.0, 0.5, -1.0]
    # row i: d out_i/d x_k = 2 x_i w [i = k], d out_i / d w = x_i^2
    assert [t["row"] for t in terms] == [[4, 0, 0, 1], [0, 8, 0, 4], [0, 0, 12, 9]]
    assert weighted(terms, "row") == d["explain"]["vjp"]["result"] == [4.0, 4.0, -12.0, -6.0]


def test_multi_statement_program_against_finite_differences(vjp) -> None:  # type: ignore[no-untyped-def]
    program = "a = x*y; p = a + x; q = a*sin(y)"
    at, v = (0.5, 2.0), (1.0, -2.0)
    d = vjp(program, "--at", "0.5,2", "--v", "1,-2", "--u", "0.25,3", "--explain",
            "--json").json()  # fmt: skip
    fd = central_jacobian([lambda x, y: x * y + x, lambda x, y: x * y * math.sin(y)], at)
    terms = d["explain"]["vjp"]["terms"]
    assert [t["output"] for t in terms] == ["p", "q"]
    assert_close([t["row"] for t in terms], fd, rel=1e-8, abs_=1e-8)
    by_fd = [sum(v[i] * fd[i][j] for i in range(2)) for j in range(2)]
    assert_close(d["explain"]["vjp"]["result"], by_fd, rel=1e-8, abs_=1e-8)
    assert_close(weighted(terms, "row"), d["explain"]["vjp"]["result"], rel=1e-15)
    cols = d["explain"]["jvp"]["terms"]
    assert_close([c["column"] for c in cols], [[fd[0][j], fd[1][j]] for j in range(2)],
                 rel=1e-8, abs_=1e-8)  # fmt: skip
    ju = [0.25 * fd[i][0] + 3 * fd[i][1] for i in range(2)]
    assert_close(d["explain"]["jvp"]["result"], ju, rel=1e-8, abs_=1e-8)
    # the calls name y, v and f afresh: y is a variable here
    assert "y_.backward(v)" in d["explain"]["calls"]["vjp"][0]


def test_beyond_float64_values_are_exact_decimals(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("exp(x); x", "--at", "1000", "--v", "1,1", "--explain", "--json", code=1).json()
    terms = d["explain"]["vjp"]["terms"]
    with mpmath.workdps(40):
        want = mpmath.exp(1000)
        assert abs(mpmath.mpf(terms[0]["row"][0]) / want - 1) < 1e-28
        assert abs(mpmath.mpf(d["explain"]["vjp"]["result"][0]) / (want + 1) - 1) < 1e-28
    assert terms[1]["row"] == [1.0]


def test_big_systems_are_windowed_in_the_terminal(vjp) -> None:  # type: ignore[no-untyped-def]
    args = ("out = x*x", "--at", "x=arange", "--shape", "x=30", "--v", "ones", "--explain")
    d = vjp(*args, "--json").json()
    terms = d["explain"]["vjp"]["terms"]
    assert len(terms) == 30 and all(len(t["row"]) == 30 for t in terms)  # JSON: everything
    assert d["explain"]["vjp"]["result"] == [2.0 * k for k in range(30)]  # d(x.x)/dx = 2x
    text = vjp(*args).stdout
    assert "23 more terms: --full or --json has all" in text
    assert "x.grad = [0, 2, 4, 6, 8, 10, 12, 14, … 21 more …, 58] (30, row-major)" in text
    full = vjp(*args, "--full").stdout
    assert "more terms" not in full and "58]" in full


def test_no_point_says_what_is_needed(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp("x1**2+x2; x1*x2", "--explain")
    assert "needs a point: add --at" in r.stdout
    d = vjp("x1**2+x2; x1*x2", "--explain", "--json").json()
    assert d["explain"]["vjp"] is None and d["explain"]["passes"] == {"reverse": 2, "forward": 2}


def test_vector_output_without_v(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("x1**2+x2; x1*x2", "--at", "1,2", "--explain", "--json").json()
    assert d["explain"]["vjp"] is None
    text = vjp("x1**2+x2; x1*x2", "--at", "1,2", "--explain").stdout
    assert "a non-scalar y needs v" in text


def test_without_explain_nothing_changes(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--json").json()
    assert "explain" not in d
    assert "Explain" not in vjp(SEED, "--at", "1,2,3", "--v", "3,2,1").stdout


def test_refused_with_points(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp("x", "--points", "-", "--explain", code=2, input="x\n1\n")
    assert r.stderr.count("\n") == 1 and "--explain" in r.stderr
    assert r.stdout == ""


def test_user_text_is_not_markup(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp("bold*x", "--at", "bold=2,x=3", "--explain")
    assert "v^T J = 1·(x, bold)" in r.stdout


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("2*x1", "2x1"),
        ("3*x2**2", "3x2²"),
        ("x**2*y", "x²·y"),
        ("2*exp(x)", "2·exp(x)"),
        ("1.0e-5*x", "1.0e-5·x"),
        ("2**x", "2**x"),
        ("x**(-2)", "x**(-2)"),
        ("x**12", "x¹²"),
        ("x/2 + 1", "x/2 + 1"),
        ("y*x[0,1]**3", "y·x[0,1]³"),
        ("2*x**2**y", "2x**2**y"),
    ],
)
def test_blackboard(text: str, shown: str) -> None:
    assert blackboard(text) == shown


def test_latex_cells_are_made_only_when_asked_for() -> None:
    program, problem = api.make_problem(SEED, at="1,2,3", v="3,2,1")
    plain = api.solve(program, problem)
    assert plain.explanation is None and plain.symbolic.entries_latex == ()
    explained = report_for(SEED, at="1,2,3", v="3,2,1")
    assert explained.symbolic.entries_latex[1] == ("1", "3 x_{2}^{2}", "2 x_{3}")
    assert explained.symbolic.outputs_latex[0] == "x_{1}^{2} + 2 x_{2} + x_{3}"
