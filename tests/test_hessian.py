"""Second order (issue 15): --hessian, --hessians, --hvp, against values derived another way:
by hand, closed forms (quadratic forms, logsumexp), and central differences of a gradient
written out by hand."""

from __future__ import annotations

import math
import random

import pytest
from conftest import assert_close

from jvp_cli import api, hessian, sidecar
from jvp_cli.model import Route, TorchSecond

ROSENBROCK = "(1-x)^2 + 100*(y-x^2)^2"
SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"
ROUTES = {"double_backward", "functional", "func"}


def _rosenbrock_h(x: float, y: float) -> list[list[float]]:
    # f = (1-x)^2 + 100 (y - x^2)^2: f_xx = 2 - 400 (y - x^2) + 800 x^2, f_xy = -400 x, f_yy = 200
    return [[2 - 400 * (y - x * x) + 800 * x * x, -400 * x], [-400 * x, 200.0]]


def test_rosenbrock_hessian_exact(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(ROSENBROCK, "--at", "-1.2,1", "--hessian", "--json").json()
    h = d["hessian"]
    assert h["sympy"] == [[1330, 480], [480, 200]]  # exactly: 2 - 400*(-0.44) + 800*1.44
    assert_close(h["sympy"], _rosenbrock_h(-1.2, 1), rel=1e-14)
    assert set(h["torch"]) == ROUTES
    for route in ROUTES:
        assert_close(h["torch"][route], [[1330, 480], [480, 200]], rel=1e-12)
    assert h["agree"] is True and h["status"] == "agree" and h["symmetric"] is True
    assert h["symbolic"][0][1] == h["symbolic"][1][0] == "-400*x"
    assert h["symbolic"][1][1] == "200"
    assert d["agree"] is True


def test_rosenbrock_hvp(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(ROSENBROCK, "--at", "-1.2,1", "--hvp", "1,0", "--json").json()
    hv = d["hvp"]
    assert hv["u"] == [1, 0]
    assert hv["sympy"] == [1330, 480]
    assert {"double_backward", "functional", "func"} <= set(hv["torch"])
    for values in hv["torch"].values():
        assert_close(values, [1330, 480], rel=1e-12)
    assert hv["agree"] is True and hv["status"] == "agree"
    assert "hessian" not in d  # H u never forms H for the report


def test_hvp_random_direction_matches_hand_product(vjp) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(3)
    x, y, a, b = (round(rng.uniform(-2, 2), 3) for _ in range(4))
    d = vjp(ROSENBROCK, "--at", f"{x},{y}", "--hvp", f"{a},{b}", "--json").json()
    h = _rosenbrock_h(x, y)
    assert_close(d["hvp"]["sympy"], [h[0][0] * a + h[0][1] * b, h[1][0] * a + h[1][1] * b],
                 rel=1e-12)  # fmt: skip
    assert d["hvp"]["agree"] is True


def test_seed_hessian_of_vtf_and_each_output(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--hessian", "--hessians", "--json").json()
    # v^T f = 3 f1 + 2 f2 + f3: d2/dx1^2 = 3*2, d2/dx2^2 = 2*6 x2 + 2, d2/dx3^2 = 2*2 + 6 x3
    assert d["hessian"]["sympy"] == [[6, 0, 0], [0, 26, 0], [0, 0, 22]]
    assert d["hessian"]["of"] == "v^T f"
    each = {h["output"]: h["sympy"] for h in d["hessians"]}
    assert each == {
        "f1": [[2, 0, 0], [0, 0, 0], [0, 0, 0]],
        "f2": [[0, 0, 0], [0, 12, 0], [0, 0, 2]],
        "f3": [[0, 0, 0], [0, 2, 0], [0, 0, 18]],
    }
    # the weighted sum of the outputs' own Hessians is the Hessian of v^T f
    total = [[sum(w * each[f][j][k] for w, f in zip((3, 2, 1), ("f1", "f2", "f3"), strict=True))
              for k in range(3)] for j in range(3)]  # fmt: skip
    assert total == d["hessian"]["sympy"]
    for h in d["hessians"]:
        assert h["agree"] is True and set(h["torch"]) == ROUTES
    assert d["vjp"]["sympy"] == [10, 34, 42]  # first order untouched
    assert d["agree"] is True


def test_quadratic_form_is_a_plus_a_transpose(vjp) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    n = 10  # more than 8: double backward's n second passes run batched (is_grads_batched)
    A = [[rng.randint(-9, 9) for _ in range(n)] for _ in range(n)]
    text = " + ".join(f"({A[i][j]})*x{i}*x{j}" for i in range(n) for j in range(n))
    point = ",".join(str(rng.randint(-3, 3)) for _ in range(n))
    d = vjp(text, "--vars", ",".join(f"x{i}" for i in range(n)), "--at", point, "--hessian",
            "--json").json()  # fmt: skip
    expected = [[A[i][j] + A[j][i] for j in range(n)] for i in range(n)]
    assert d["hessian"]["sympy"] == expected
    for route in ROUTES:
        assert d["hessian"]["torch"][route] == expected
    assert d["hessian"]["agree"] is True


def test_logsumexp_hessian_is_diag_s_minus_ss(vjp) -> None:  # type: ignore[no-untyped-def]
    xs = [0.3, -1.2, 2.0]
    d = vjp("logsumexp(x)", "--at", "x=[0.3,-1.2,2.0]", "--hessian", "--json").json()
    z = sum(math.exp(t) for t in xs)
    s = [math.exp(t) / z for t in xs]
    expected = [[(s[j] if j == k else 0.0) - s[j] * s[k] for k in range(3)] for j in range(3)]
    h = d["hessian"]
    assert h["labels"] == ["x[0]", "x[1]", "x[2]"]
    assert_close(h["sympy"], expected, rel=1e-14, abs_=1e-16)
    for route in ROUTES:
        assert_close(h["torch"][route], expected, rel=1e-12, abs_=1e-15)
    assert h["agree"] is True


def test_softmax_weighted_hessian_closed_form(vjp) -> None:  # type: ignore[no-untyped-def]
    # d softmax_i / dx_j = s_i (delta_ij - s_j); with v = e_0 the Hessian of s_0 is
    # s_0 [(e_0 - s)(e_0 - s)^T - diag(s) + s s^T]
    xs = [0.5, -0.25, 1.0]
    d = vjp("softmax(x)", "--at", "x=[0.5,-0.25,1.0]", "--v", "[1,0,0]", "--hessian",
            "--json").json()  # fmt: skip
    z = sum(math.exp(t) for t in xs)
    s = [math.exp(t) / z for t in xs]
    e = [1.0, 0.0, 0.0]
    expected = [[s[0] * ((e[j] - s[j]) * (e[k] - s[k]) - (s[j] if j == k else 0) + s[j] * s[k])
                 for k in range(3)] for j in range(3)]  # fmt: skip
    assert_close(d["hessian"]["sympy"], expected, rel=1e-13, abs_=1e-16)
    assert d["hessian"]["agree"] is True


def _grad(x: float, y: float, z: float) -> list[float]:
    """The gradient of f = sin(x*y) + exp(x)*z^2 + log(1 + y^2)*z, by hand."""
    return [
        y * math.cos(x * y) + math.exp(x) * z * z,
        x * math.cos(x * y) + 2 * y / (1 + y * y) * z,
        2 * math.exp(x) * z + math.log(1 + y * y),
    ]


def test_hessian_matches_central_differences_of_the_gradient(vjp) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(11)
    for _ in range(3):
        p = [round(rng.uniform(-1.5, 1.5), 4) for _ in range(3)]
        at = ",".join(map(str, p))
        d = vjp("sin(x*y) + exp(x)*z^2 + log(1 + y^2)*z", "--vars", "x,y,z", "--at", at,
                "--hessian", "--hvp", "1,-2,0.5", "--json").json()  # fmt: skip
        h = 1e-6
        fd = []
        for k in range(3):
            hi, lo = list(p), list(p)
            hi[k] += h
            lo[k] -= h
            fd.append([(a - b) / (2 * h) for a, b in zip(_grad(*hi), _grad(*lo), strict=True)])
        fd_h = [[fd[k][j] for k in range(3)] for j in range(3)]  # column k: d grad / dx_k
        assert_close(d["hessian"]["sympy"], fd_h, rel=1e-6, abs_=1e-6)
        u = (1, -2, 0.5)
        assert_close(d["hvp"]["sympy"], [sum(fd_h[j][k] * u[k] for k in range(3))
                                         for j in range(3)], rel=1e-6, abs_=1e-6)  # fmt: skip
        assert d["agree"] is True


def test_multi_statement_program(vjp) -> None:  # type: ignore[no-untyped-def]
    # a = x*y; out = a^2 + y: H = [[2 y^2, 4 x y], [4 x y, 2 x^2]]
    d = vjp("a = x*y\nout = a^2 + y", "--at", "x=3,y=-2", "--hessian", "--json").json()
    assert d["hessian"]["sympy"] == [[8, -24], [-24, 18]]
    assert d["hessian"]["agree"] is True


def test_tensor_variable_labels_and_values(vjp) -> None:  # type: ignore[no-untyped-def]
    # sum(x^3) over a 2x2 x: H = diag(6 x), labelled by element
    d = vjp("sum(x^3)", "--at", "x=[[1,2],[3,4]]", "--hessian", "--hvp", "[[1,1],[0,2]]",
            "--json").json()  # fmt: skip
    h = d["hessian"]
    assert h["labels"] == ["x[0,0]", "x[0,1]", "x[1,0]", "x[1,1]"]
    assert h["sympy"] == [[6, 0, 0, 0], [0, 12, 0, 0], [0, 0, 18, 0], [0, 0, 0, 24]]
    assert h["nonzeros"] == 4
    assert d["hvp"]["sympy"] == [6, 12, 0, 48]
    assert d["agree"] is True


# ---- kinks and undefined points: the first-order rules ------------------------------------


def test_abs_at_the_kink_is_undefined(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("abs(x)", "--at", "0", "--hessian", "--json", code=1).json()
    assert d["hessian"]["sympy"] == [["NaN"]]  # not 0, although d/dx (x/|x|) = 0 off 0
    assert d["hessian"]["status"] == "undefined"


def test_x_abs_x_first_derivative_defined_second_not(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("x*abs(x)", "--at", "0", "--hessian", "--json", code=1).json()
    assert d["jacobian"]["sympy"] == [[0.0]] and d["jacobian"]["status"] == "agree"
    assert d["hessian"]["sympy"] == [["NaN"]] and d["hessian"]["status"] == "undefined"
    away = vjp("x*abs(x)", "--at", "-1.5", "--hessian", "--json").json()
    assert away["hessian"]["sympy"] == [[-2]]  # 2 sign(x)


def test_relu_kink_and_a_smooth_relu_product(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("relu(x)", "--at", "0", "--hessian", "--json", code=1).json()
    assert d["hessian"]["sympy"] == [["NaN"]]
    # x^2 relu(x) = x^3 for x > 0, else 0: the second derivative 6x exists at 0 and is 0
    d = vjp("relu(x)*x^2", "--at", "0", "--hessian", "--json").json()
    assert d["hessian"]["sympy"] == [[0]] and d["hessian"]["status"] == "agree"
    d = vjp("relu(x)^2", "--at", "0.5", "--hessian", "--json").json()
    assert d["hessian"]["sympy"] == [[2]]  # away from the kink, DiracDelta is 0


def test_not_symmetric_where_a_row_does_not_exist(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("abs(x) + x*y + y^2", "--at", "0,1", "--hessian", "--json", code=1).json()
    h = d["hessian"]
    # d/dx does not exist at x = 0, so neither does row x; d/dy = x + 2y does: row y exists
    assert h["sympy"][0] == ["NaN", "NaN"]
    assert h["sympy"][1] == [1, 2]
    assert h["symmetric"] is False
    assert any("not symmetric" in note for note in h["notes"])


def test_outside_the_domain_is_undefined(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("log(x) + y^2", "--at", "-1,1", "--hessian", "--json", code=1).json()
    assert d["hessian"]["sympy"] == [["NaN", "NaN"], ["NaN", "NaN"]]


# ---- the routes and their verdicts --------------------------------------------------------


def _problem(text: str, **options):  # type: ignore[no-untyped-def]
    return api.make_problem(text, **options)


def test_judge_names_the_route_that_agrees_with_the_reference() -> None:
    program, problem = _problem(ROSENBROCK, at="-1.2,1", hessian=True)
    ref = hessian.reference(program, problem)
    good = ((1330.0, 480.0), (480.0, 200.0))
    bad = ((1330.0, 480.0), (480.0, 0.0))  # a route that lost a term
    tor = TorchSecond(hessian=(Route("double_backward", "", good), Route("functional", "", bad),
                               Route("func", "", None, "RuntimeError: no rule")))  # fmt: skip
    second, checks = hessian.judge(problem, ref, tor, ("x", "y"), ("f1",))
    assert [c.status for c in checks] == ["disagree"]
    q = second.hessian
    assert q is not None and {c.name: c.status for c in q.checks} == {
        "double_backward": "agree", "functional": "disagree"}  # fmt: skip
    text = " ".join(second.notes)
    assert "double_backward and functional differ at H[y, y]" in text
    assert "the reference agrees with double_backward" in text
    assert "func (" in text and "could not run" in text


def test_a_wrong_route_exits_1_and_a_broken_one_is_reported(vjp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import torch

    real = torch.autograd.functional.hessian
    monkeypatch.setattr(torch.autograd.functional, "hessian",
                        lambda f, x: real(f, x) + 1.0)  # fmt: skip

    def broken(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise RuntimeError("vmap: no batching rule for this op")

    monkeypatch.setattr(torch.func, "hessian", broken)
    d = vjp(ROSENBROCK, "--at", "-1.2,1", "--hessian", "--json", code=1).json()
    h = d["hessian"]
    assert h["status"] == "disagree" and h["agree"] is False
    assert h["routes"]["functional"]["status"] == "disagree"
    assert h["routes"]["double_backward"]["status"] == "agree"
    assert (
        h["routes"]["func"]["ran"] is False and "no batching rule" in h["routes"]["func"]["error"]
    )
    assert h["torch"]["func"] is None
    assert any("the reference agrees with double_backward" in n for n in d["notes"])


def test_rich_report_shows_every_route(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp(ROSENBROCK, "--at", "-1.2,1", "--hessian", "--hvp", "1,0").stdout
    for text in ("Hessian H of f1", "1330", "480", "double_backward", "functional", "func",
                 "functional_vhp", "HVP", "hessian: agree", "hvp: agree"):  # fmt: skip
        assert text in out, text


def test_symbolic_hessian_without_a_point(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(ROSENBROCK, "--hessian", "--json").json()
    assert d["hessian"]["symbolic"] == [["1200*x**2 - 400*y + 2", "-400*x"], ["-400*x", "200"]]
    assert "sympy" not in d["hessian"]


def test_sparse_hessian_of_a_banded_system() -> None:
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import problems

    n = 40
    program, problem = _problem(problems.broyden(n), at=problems.point(n), v=",".join(["1"] * n),
                                hvp=",".join(["1"] * n), hessian=True)  # fmt: skip
    ref = hessian.reference(program, problem)
    assert ref.hessian is not None and ref.hvp is not None
    # f_i = (3 - 2 x_i) x_i - ...: the Hessian of sum_i f_i is diag(-4): n nonzeros, not n^2
    assert ref.hessian.nonzeros == n
    assert ref.hessian.values == tuple(tuple(-4.0 if j == k else 0.0 for k in range(n))
                                       for j in range(n))  # fmt: skip
    assert ref.hvp.values == (-4.0,) * n


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((ROSENBROCK, "--at", "-1.2,1", "--hvp", "1,0,3"), "--hvp"),
        ((ROSENBROCK, "--hvp", "1,0"), "--hvp needs a point"),
        ((SEED, "--at", "1,2,3", "--hessian"), "needs v"),
        ((SEED, "--at", "1,2,3", "--v", "1,1,1", "--hvp", "1,2"), "--hvp"),
    ],
)
def test_bad_input_is_one_line_exit_2(vjp, args, needle) -> None:  # type: ignore[no-untyped-def]
    r = vjp(*args, code=2)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0], r.stderr


def test_parallel_and_single_process_agree(monkeypatch) -> None:
    monkeypatch.setattr(sidecar, "PARALLEL", False)
    program, problem = _problem(SEED, at="1,2,3", v="3,2,1", hvp="1,1,1")
    report = api.solve(program, problem)
    assert report.second is not None and report.second.hvp is not None
    assert report.second.hvp.reference == (6.0, 26.0, 22.0)
    assert report.agree


# ---- --points with --hvp -------------------------------------------------------------------


def test_points_hvp_lines(vjp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rows = [(-1.2, 1.0), (0.5, 0.25), (2.0, 3.0)]
    path = tmp_path / "points.csv"
    path.write_text("x,y\n" + "".join(f"{x},{y}\n" for x, y in rows))
    out = vjp(ROSENBROCK, "--points", str(path), "--hvp", "1,-1", "--json").stdout
    lines = [__import__("json").loads(line) for line in out.splitlines()]
    assert [line["line"] for line in lines] == [2, 3, 4]
    for line, (x, y) in zip(lines, rows, strict=True):
        h = _rosenbrock_h(x, y)
        assert_close(line["hvp"]["sympy"], [h[0][0] - h[0][1], h[1][0] - h[1][1]], rel=1e-12)
        assert line["hvp"]["u"] == [1, -1]
        assert set(line["hvp"]["torch"]) >= ROUTES
        assert line["hvp"]["status"] == "agree" and line["agree"] is True
        assert line["vjp"]["status"] == "agree"  # the first-order fields stay


def test_points_hvp_kink_is_undefined_and_exits_1(vjp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "points.csv"
    path.write_text("x,y\n0,1\n1,1\n")
    r = vjp("x*abs(x) + y^2", "--points", str(path), "--hvp", "1,1", "--json", code=1)
    first, second = (__import__("json").loads(line) for line in r.stdout.splitlines())
    assert first["hvp"]["sympy"][0] == "NaN" and first["hvp"]["status"] == "undefined"
    assert first["vjp"]["status"] == "agree" and first["agree"] is False
    assert second["hvp"]["sympy"] == [2, 2] and second["agree"] is True
    summary = vjp("x*abs(x) + y^2", "--points", str(path), "--hvp", "1,1", code=1).stdout
    assert "--hvp: 1 agree, 0 disagree, 1 undefined" in summary


def test_points_refuse_hessian(vjp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "points.csv"
    path.write_text("x,y\n0,1\n")
    r = vjp(ROSENBROCK, "--points", str(path), "--hessian", code=2)
    assert "--points takes --hvp only" in r.stderr
    r = vjp(ROSENBROCK, "--points", str(path), "--hvp", "1", code=2)
    assert r.stderr.startswith("Error:") and "--hvp" in r.stderr


def test_routes_that_differ_where_h_does_not_exist(vjp) -> None:  # type: ignore[no-untyped-def]
    # |x| at 0 has no Hessian: double backward gives NaN (0/0), torch.func gives 0
    d = vjp("norm(x)", "--at", "x=[0,0]", "--hessian", "--json", code=1).json()
    h = d["hessian"]
    assert h["sympy"] == [["NaN", "NaN"], ["NaN", "NaN"]] and h["status"] == "undefined"
    notes = [n for n in d["notes"] if "differ" in n]
    assert notes and all("does not exist there" in n for n in notes)


def test_func_routes_in_a_child_give_the_same_values(monkeypatch) -> None:
    from jvp_cli import autograd2

    monkeypatch.setattr(autograd2, "FORK_NODES", 0)
    program, problem = _problem(ROSENBROCK, at="-1.2,1", hessian=True, hvp="1,0")
    pending = autograd2.start(program, problem)
    if pending is None:
        pytest.skip("one core, or no fork: the routes all run in this process")
    forked = autograd2.evaluate(program, problem, pending=pending)
    here = autograd2.evaluate(program, problem)
    assert forked == here
    assert [r.name for r in forked.hvp] == ["double_backward", "functional", "functional_vhp",
                                            "func"]  # fmt: skip
    assert all(r.error is None for r in (*forked.hessian, *forked.hvp))


@pytest.mark.parametrize("engine", ["sympy", "symengine"])
def test_both_engines_give_the_same_reference(vjp, engine: str) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip(engine)
    d = vjp(ROSENBROCK + " + exp(x*y)", "--at", "-1.2,1", "--hessian", "--hvp", "0.5,-2",
            "--engine", engine, "--json").json()  # fmt: skip
    x, y = -1.2, 1.0
    e = math.exp(x * y)
    h = _rosenbrock_h(x, y)
    h = [[h[0][0] + y * y * e, h[0][1] + (1 + x * y) * e],
         [h[1][0] + (1 + x * y) * e, h[1][1] + x * x * e]]  # fmt: skip
    assert d["engine"] == engine
    assert_close(d["hessian"]["sympy"], h, rel=1e-13)
    assert_close(d["hvp"]["sympy"], [0.5 * h[0][0] - 2 * h[0][1], 0.5 * h[1][0] - 2 * h[1][1]],
                 rel=1e-13)  # fmt: skip
    assert d["agree"] is True


def test_each_element_of_a_tensor_output(vjp) -> None:  # type: ignore[no-untyped-def]
    # y = x * x[0] (a vector): y_i = x_i x_0; H of y_0 = x_0^2 is 2 e0 e0^T, of y_1 = x_1 x_0
    # is the symmetric pair at (0, 1)
    d = vjp("y = x * x[0]", "--at", "x=[2,3]", "--hessians", "--json").json()
    each = {h["output"]: h["sympy"] for h in d["hessians"]}
    assert each == {"y[0]": [[2, 0], [0, 0]], "y[1]": [[0, 1], [1, 0]]}
    assert all(h["agree"] for h in d["hessians"])
