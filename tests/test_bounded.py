"""Issue 10 through the CLI: no input reaches an internal error (exit 3), lenient parsing is
gone, and reading input is bounded. Each bad input is exit 2 with one `Error:` line and
nothing on stdout."""

from __future__ import annotations

import math

import pytest

SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"

BAD: list[tuple[list[str], str]] = [
    # --- reductions over nothing
    (["max(x[2:1])", "--shape", "x=3", "--at", "x=ones"], "the max of no elements"),
    (["min(x[3:])", "--shape", "x=3", "--at", "x=ones"], "the min of no elements"),
    (["mean(x[1:1])", "--shape", "x=3", "--at", "x=ones"], "mean of no elements"),
    (["logsumexp(x[2:1])", "--shape", "x=3", "--at", "x=ones"], "log(0)"),
    (["softmax(x[5:])", "--shape", "x=3", "--at", "x=ones"], "softmax over no elements"),
    (["softmax(A[:, 1:1], 1)", "--shape", "A=2,2", "--at", "A=ones"], "softmax over no"),
    (["max(A[1:1, :], 0)", "--shape", "A=2,2", "--at", "A=ones"], "empty tensor of shape (0, 2)"),
    (["max(x[2:1])", "--shape", "x=3"], "the max of no elements"),  # symbolic only, too
    # --- dimensions beyond the limit (numpy allows 64, torch 32)
    (["sum(x)", "--shape", "x=" + ",".join(["1"] * 17), "--at", "x=ones"], "17 dimensions"),
    (["sum(x)", "--shape", "x=" + ",".join(["1"] * 40)], "40 dimensions"),
    (["sum(x)", "--at", "x=" + "[" * 70 + "1" + "]" * 70], "dimensions (limit 16)"),
    # --- devices this tool does not compute on
    (["x", "--at", "1", "--device", "meta"], "unsupported device 'meta'"),
    (["x", "--at", "1", "--device", "privateuseone"], "unsupported device"),
    (["x", "--at", "1", "--device", "mps"], "unsupported device"),
    (["x", "--at", "1", "--device", "tpu"], "unsupported device"),
    (["x", "--points", "-", "--device", "meta"], "unsupported device"),
    # --- constants SymPy would fold past the 1e300 bound (or Python's 4,300 digits)
    (["x*(x-x+10)**10000", "--at", "1"], "beyond the range"),
    (["x*2**(y-y+10**5)", "--at", "1,1"], "beyond the range"),
    (["x*" + "*".join(["1e300"] * 15), "--at", "1"], "multiply to about 1e4500"),
    (["x*" + "*".join(["1e300"] * 15)], "beyond the range"),
    (["10**(x-x+10**100)", "--at", "0.5"], "beyond the range"),
    (["x**(y-y+10**100)", "--at", "0.5,1"], "exponent 1e+100 is too large"),
    (["x*(1e300*1e300*0+10)**(10**100)", "--at", "1"], "beyond the range"),
    (["(x*y - y*x + 10)**1000*x", "--at", "1,1"], "beyond the range"),
    (["a = x - x + 10; b = a**10000*x", "--at", "1"], "beyond the range"),
    (["(x - x + 1e200*y)**2", "--at", "1,1"], "1e400"),
    (["1e200*(x + 1e200*y)", "--at", "1,1"], "1e400"),
    (["x/1e-200/1e-200", "--at", "1"], "1e400"),
]


@pytest.mark.parametrize(("args", "fragment"), BAD, ids=[repr(a)[:60] for a, _ in BAD])
def test_bad_input(vjp, args: list[str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    r = vjp(*args, code=2, input="")
    assert r.stdout == ""
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert fragment in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("fn", "shape", "value", "grad"),
    [
        ("sum(x[2:1])", "x=3", 0.0, [0.0, 0.0, 0.0]),  # an empty sum is 0
        ("prod(x[2:1])", "x=3", 1.0, [0.0, 0.0, 0.0]),  # an empty product is 1
        ("norm(x[3:])", "x=3", 0.0, [0.0, 0.0, 0.0]),
        ("dot(x[1:1], x[2:2])", "x=3", 0.0, [0.0, 0.0, 0.0]),
        ("sum(x[:1]) + sum(x[2:1])", "x=3", 1.0, [1.0, 0.0, 0.0]),
    ],
)
def test_empty_sums_have_a_value(vjp, fn: str, shape: str, value: float, grad: list[float]) -> None:  # type: ignore[no-untyped-def]
    d = vjp(fn, "--shape", shape, "--at", "x=ones", "--json").json()
    assert d["vjp"]["sympy"] == grad and d["vjp"]["torch"] == grad
    assert d["agree"]


def test_sum_along_an_empty_dimension(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("sum(A[1:1, :], 0)", "--shape", "A=2,2", "--at", "A=ones", "--v", "[1,1]",
            "--json").json()  # fmt: skip
    assert d["output_shapes"] == {"f1": [2]}
    assert d["vjp"]["sympy"] == [0.0] * 4 and d["vjp"]["torch"] == [0.0] * 4
    d = vjp("prod(A[1:1, :], 0)", "--shape", "A=2,2", "--at", "A=ones", "--json").json()
    assert d["jacobian"]["sympy"] == [[0.0] * 4] * 2 and d["agree"]


def test_sixteen_dimensions_work(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("sum(x)", "--shape", "x=" + ",".join(["1"] * 16), "--at", "x=ones", "--json").json()
    assert d["agree"] and d["vjp"]["torch"] == [1.0]


@pytest.mark.parametrize(
    "fn",
    [
        "x*1e300*1e-300",  # folds to x
        "(x + 10)**400",  # SymPy keeps the power of a sum as it is
        "2**(x + 100000)",
        "E**(1000*x)",
        "x*y - y*x + 2*x",
        "x/x*10**200*x + 1e-300*x",
    ],
)
def test_constants_that_fold_within_range_work(vjp, fn: str) -> None:  # type: ignore[no-untyped-def]
    r = vjp(fn, "--json", code=0)
    assert r.json()["jacobian"]["symbolic"]


def test_x_minus_x_folds_for_the_exponent_limit(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("x**(y - y + 3)", "--at", "2,5", "--json").json()
    assert d["agree"]
    assert math.isclose(d["jacobian"]["sympy"][0][0], 12.0)


def test_more_digits_than_python_prints_is_bad_input(vjp) -> None:  # type: ignore[no-untyped-def]
    # exact fractions whose sum has a denominator beyond 4,300 digits, within every
    # magnitude bound: the last line of defence in the CLI
    primes = [p for p in range(2, 12_000) if all(p % q for q in range(2, int(p**0.5) + 1))]
    fn = "x*(" + "+".join(f"1/{p}" for p in primes[:1400]) + ")"
    r = vjp(fn, code=2)
    assert "more than 4,300 digits" in r.stderr and r.stdout == ""
