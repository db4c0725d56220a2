"""Tensor variables and multi-line programs, against closed forms computed by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

SEED1 = "y = x + 2; z = y * y; out = mean(z)"


def grads(d: dict, name: str) -> tuple[object, object]:
    g = d["vjp"]["grads"][name]
    return g["sympy"], g["torch"]


def test_seed_first_example_exactly(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(SEED1, "--at", "x=[[1,1],[1,1]]", "--json").json()
    assert d["outputs"] == ["out"]
    assert d["shapes"] == {"x": [2, 2]}
    sym, tor = grads(d, "x")
    assert sym == tor == [[1.5, 1.5], [1.5, 1.5]]
    assert d["agree"] is True and d["vjp"]["v_implicit"] is True


def test_seed_first_example_rich(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp(SEED1, "--at", "x=[[1,1],[1,1]]").stdout
    assert "[[1.5, 1.5], [1.5, 1.5]]" in out and "x.grad (2x2)" in out
    assert "Verdict" in out and "disagree" not in out


def test_seed_first_example_other_values(vjp) -> None:  # type: ignore[no-untyped-def]
    x = np.array([[1.0, -2.0], [0.5, 3.0]])
    d = vjp(SEED1, "--at", f"x={x.tolist()}", "--json").json()
    expected = ((x + 2) / 2).tolist()  # d/dx mean((x+2)^2) = 2(x+2)/4
    sym, tor = grads(d, "x")
    np.testing.assert_allclose(sym, expected, rtol=1e-14)
    np.testing.assert_allclose(tor, expected, rtol=1e-14)


def test_shape_and_fill(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(SEED1, "--shape", "x=2,3", "--at", "x=ones", "--json").json()
    sym, _ = grads(d, "x")
    assert sym == [[1.0, 1.0, 1.0]] * 2  # 2*(1+2)/6
    d = vjp("sum(x*x)", "--shape", "x=(2,2)", "--at", "x=arange", "--json").json()
    assert grads(d, "x")[1] == [[0.0, 2.0], [4.0, 6.0]]  # 2x
    d = vjp("sum(x)", "--shape", "x=3", "--at", "x=zeros", "--json").json()
    assert d["point"] == {"x": [0.0, 0.0, 0.0]}


CLOSED_FORMS = [
    # (program, --at, variable, gradient by hand as a function of the point)
    ("sum(x*x)", "x=[1,-2,3]", "x", lambda p: [2.0, -4.0, 6.0]),
    ("mean(exp(x))", "x=[0,1,2,3]", "x", lambda p: [math.exp(t) / 4 for t in [0, 1, 2, 3]]),
    ("dot(a, x)", "a=[2,-1,5],x=[1,1,1]", "x", lambda p: [2.0, -1.0, 5.0]),
    ("dot(a, x)", "a=[2,-1,5],x=[1,7,1]", "a", lambda p: [1.0, 7.0, 1.0]),
    (
        "x @ A @ x",
        "A=[[1,2],[3,4]],x=[1,-1]",
        "x",
        lambda p: (np.array([[1, 2], [3, 4]]) + np.array([[1, 3], [2, 4]])) @ np.array([1, -1]),
    ),
    (
        "dot(x, A @ x)",
        "A=[[2,0,1],[1,1,0],[0,3,1]],x=[1,2,-1]",
        "x",
        lambda p: (
            (
                np.array([[2, 0, 1], [1, 1, 0], [0, 3, 1]]) * 1
                + np.array([[2, 0, 1], [1, 1, 0], [0, 3, 1]]).T
            )
            @ np.array([1, 2, -1])
        ),
    ),
    (
        "logsumexp(x)",
        "x=[0.5,-1,2]",
        "x",
        lambda p: np.exp([0.5, -1, 2]) / np.exp([0.5, -1, 2]).sum(),
    ),
    ("norm(x)", "x=[3,4]", "x", lambda p: [0.6, 0.8]),
    ("prod(x)", "x=[2,3,4]", "x", lambda p: [12.0, 8.0, 6.0]),
    (
        "sum(x.T @ x)",
        "x=[[1,2],[3,4]]",
        "x",
        # sum_ij (x^T x)_ij = sum_j sum_k x_kj sum_i x_ki -> d/dx_ab = 2 * row sums... by hand:
        lambda p: [[2 * (1 + 2), 2 * (1 + 2)], [2 * (3 + 4), 2 * (3 + 4)]],
    ),
    ("x[0, 1] * x[1, 0]", "x=[[1,2],[3,4]]", "x", lambda p: [[0.0, 3.0], [2.0, 0.0]]),
    ("sum(x[:, 1])", "x=[[1,2],[3,4],[5,6]]", "x", lambda p: [[0.0, 1.0]] * 3),
    (
        "sum(reshape(x, 4) * w)",
        "x=[[1,2],[3,4]],w=[1,2,3,4]",
        "x",
        lambda p: [[1.0, 2.0], [3.0, 4.0]],
    ),
    ("max(x)", "x=[1,5,2]", "x", lambda p: [0.0, 1.0, 0.0]),
    ("min(x)", "x=[1,5,-2]", "x", lambda p: [0.0, 0.0, 1.0]),
    ("sum(x + b)", "x=[[1,2,3],[4,5,6]],b=[1,1,1]", "b", lambda p: [2.0, 2.0, 2.0]),
    ("sum(mean(x, 0) * w)", "x=[[1,2],[3,4]],w=[10,20]", "x", lambda p: [[5.0, 10.0], [5.0, 10.0]]),
    ("a*sum(x)", "x=[[1,2,3]],a=2", "a", lambda p: 6.0),
]


@pytest.mark.parametrize(
    ("prog", "at", "var", "expected"),
    CLOSED_FORMS,
    ids=[c[0] + " d/d" + c[2] for c in CLOSED_FORMS],
)
def test_closed_forms(vjp, prog, at, var, expected) -> None:  # type: ignore[no-untyped-def]
    d = vjp(prog, "--at", at, "--json").json()
    assert d["agree"] is True, d["notes"]
    want = np.asarray(expected(None), dtype=float)
    sym, tor = grads(d, var)
    np.testing.assert_allclose(np.asarray(sym, dtype=float), want, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.asarray(tor, dtype=float), want, rtol=1e-12, atol=1e-12)


def test_softmax_jacobian_is_diag_minus_outer(vjp) -> None:  # type: ignore[no-untyped-def]
    x = np.array([0.3, -1.2, 2.0])
    d = vjp("softmax(x)", "--at", f"x={x.tolist()}", "--json").json()
    s = np.exp(x) / np.exp(x).sum()
    expected = np.diag(s) - np.outer(s, s)
    np.testing.assert_allclose(d["jacobian"]["sympy"], expected, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(d["jacobian"]["torch"], expected, rtol=1e-12, atol=1e-15)
    assert d["jacobian"]["rows"] == ["f1[0]", "f1[1]", "f1[2]"]
    assert d["jacobian"]["columns"] == ["x[0]", "x[1]", "x[2]"]
    assert "vjp" not in d and any("no VJP" in n for n in d["notes"])


def test_tensor_v_and_grads(vjp) -> None:  # type: ignore[no-untyped-def]
    # out = A @ x; out.backward(v) puts A^T v into x.grad and v x^T into A.grad
    A = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    x = np.array([1.0, -1.0])
    v = np.array([1.0, 0.5, -2.0])
    d = vjp(
        "out = A @ x", "--at", f"A={A.tolist()},x={x.tolist()}", "--v", f"{v.tolist()}", "--json"
    ).json()
    np.testing.assert_allclose(grads(d, "x")[1], A.T @ v)
    np.testing.assert_allclose(grads(d, "A")[1], np.outer(v, x))
    np.testing.assert_allclose(grads(d, "A")[0], np.outer(v, x))
    assert d["vjp"]["cotangents"] == {"out": v.tolist()}


def test_tensor_jvp_in_output_shape(vjp) -> None:  # type: ignore[no-untyped-def]
    A = [[1.0, 2.0], [3.0, 4.0]]
    d = vjp(
        "out = A @ x",
        "--at",
        f"A={A}",
        "--at",
        "x=[1,1]",
        "--u",
        "A=[[0,0],[0,0]]",
        "--u",
        "x=[1,-1]",
        "--json",
    ).json()
    assert d["jvp"]["outputs"]["out"]["torch"] == [-1.0, -1.0]  # A u
    assert d["jvp"]["outputs"]["out"]["sympy"] == [-1.0, -1.0]


def test_several_values_in_one_at(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("sum(A @ x) * s", "--at", "x=[1,2],A=[[1,2],[3,4]],s=2", "--json").json()
    assert d["point"] == {"A": [[1.0, 2.0], [3.0, 4.0]], "s": 2.0, "x": [1.0, 2.0]}
    assert grads(d, "s")[1] == 1 * 1 + 2 * 2 + 3 * 1 + 4 * 2  # sum(A @ x)


def test_max_ties_follow_torch_and_are_flagged(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("max(x)", "--at", "x=[1,3,3]", "--json", code=1).json()
    assert grads(d, "x")[1] == [0.0, 0.5, 0.5]  # torch splits evenly between tied maxima
    assert d["vjp"]["status"] == "undefined"
    assert any("tie" in n for n in d["notes"])


def test_outputs_and_intermediates(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("a = x*y; b = a + 1; c = a * 2", "--at", "2,3", "--json").json()
    assert d["outputs"] == ["b", "c"]
    d = vjp(
        "a = x*y; b = a + 1; c = a * 2", "--at", "2,3", "--outputs", "a,c", "--v", "1,1", "--json"
    ).json()
    assert d["outputs"] == ["a", "c"]
    assert d["vjp"]["torch"] == [9.0, 6.0]  # d(a + 2a) = 3 (y, x)


def test_program_from_file_and_stdin(vjp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "prog.txt"
    f.write_text("y = x + 2\nz = y * y\nout = mean(z)\n")
    d = vjp("-f", str(f), "--at", "x=[[1,1],[1,1]]", "--json").json()
    assert grads(d, "x")[0] == [[1.5, 1.5], [1.5, 1.5]]
    d = vjp("-", "--at", "x=[[1,1],[1,1]]", "--json", input=f.read_text()).json()
    assert grads(d, "x")[1] == [[1.5, 1.5], [1.5, 1.5]]


def test_scalar_examples_unchanged(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(
        "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3", "--at", "1,2,3", "--v", "3,2,1", "--json"
    ).json()
    assert d["vjp"]["torch"] == [10, 34, 42]
    assert d["point"] == {"x1": 1.0, "x2": 2.0, "x3": 3.0}
    assert d["vjp"]["grads"]["x2"] == {"sympy": 34.0, "torch": 34.0}


def test_symbolic_tensor_jacobian_without_point(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("sum(x*x)", "--shape", "x=2", "--json").json()
    assert d["jacobian"]["symbolic"] == [["2*x[0]", "2*x[1]"]]
    json.dumps(d)


def test_undefined_tensor_intermediate(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("t = log(x); out = sum(t) + sum(y)", "--at", "x=[1,-1],y=[1,2]", "--json",
            code=1).json()  # fmt: skip
    assert d["status"] == "undefined"
    assert any("log(x) is undefined" in n for n in d["notes"])
    assert d["vjp"]["grads"]["x"]["torch"] == [1.0, -1.0]  # what torch returns: 1/x
