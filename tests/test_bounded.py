"""Issue 10 through the CLI: no input reaches an internal error (exit 3), lenient parsing is
gone, and reading input is bounded. Each bad input is exit 2 with one `Error:` line and
nothing on stdout."""

from __future__ import annotations

import json
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
    # --- Jacobians with more entries (or prod derivatives with more factors) than the limit
    (["x", "--shape", "x=100000", "--at", "x=zeros"],
     "the Jacobian has 100,000 x 100,000 = 1e10 entries; the limit is 4,000,000"),
    (["x", "--shape", "x=100000"], "1e10 entries"),  # symbolic only, too
    (["s = " + "+".join(f"x{i}" for i in range(2100)) + "; "
      + "; ".join(f"f{k} = {k}*s" for k in range(2100)), "--points", "-"],
     "2,100 x 2,100 = 4,410,000 entries"),  # scalars, one statement each
    (["A @ x; x", "--shape", "A=200,200", "--shape", "x=200"], "400 x 40,200 = 16,080,000"),
    (["sin(x) + y", "--shape", "x=2001", "--shape", "y=2001"], "2,001 x 4,002 = 8,008,002"),
    (["prod(x)", "--shape", "x=100000", "--at", "x=ones"],
     "prod(...) over 100,000 elements have 100,000 x 99,999 = 1e10 factors"),
    (["prod(A, 1)", "--shape", "A=10,1000"], "10 x 1,000 x 999 = 9,990,000 factors"),
]  # fmt: skip


@pytest.mark.parametrize(("args", "fragment"), BAD, ids=[repr(a)[:60] for a, _ in BAD])
def test_bad_input(vjp, args: list[str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    r = vjp(*args, code=2, input="")
    assert r.stdout == ""
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert fragment in r.stderr, r.stderr


def test_a_dense_1000_by_1000_jacobian_is_within_the_limit() -> None:
    from jvp_cli import api

    _, problem = api.make_problem("exp(x) * sum(x)", shape=["x=1000"])  # dense
    assert problem.output_shapes == ((1000,),)
    api.make_problem("exp(x)", shape=["x=2000"])  # 2,000 x 2,000 = the limit
    api.make_problem("prod(x)", shape=["x=2000"])  # 2,000 x 1,999 factors


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


# --- one number syntax, strict shapes, CSV and JSON lines (class 5)

STRICT: list[tuple[list[str], str, str]] = [
    # (arguments, stdin, a fragment of the one-line message)
    (["sum(x)", "--shape", "x=(3)(4)"], "", "column 6: unexpected '('"),
    (["sum(x)", "--shape", "x=3,,4"], "", "column 5: an empty size"),
    (["sum(x)", "--shape", "x=\u0661"], "", "not a positive integer"),
    (["sum(x)", "--shape", "x=\uff13"], "", "not a positive integer"),
    (["sum(x)", "--shape", "x=3,"], "", "an empty size"),
    (["sum(x)", "--shape", "x=(3"], "", "expected ')'"),
    (["x", "--at", "1", "--rtol", "1_0"], "", "--rtol, column 2"),
    (["x", "--at", "1", "--atol", "\uff11"], "", "--atol, column 1: non-ASCII"),
    (["x", "--at", "1", "--timeout", "-5"], "", "not a number of seconds"),
    (["x", "--at", "1", "--timeout", "nan"], "", "'nan' is not a number"),
    (["x", "--at", "1", "--timeout", "1_0"], "", "--timeout, column 2"),
    (["x", "--points", "-"], "x\n1_0\n", "line 2, column 1: '1_0' is not a number"),
    (["x", "--points", "-"], "x\n\uff11\n", "'\uff11' is not a number"),
    (["x", "--points", "-"], "x\n\u0661\n", "'\u0661' is not a number"),
    (["x", "--points", "-"], "x\n0x10\n", "'0x10' is not a number"),
    (["x", "--points", "-"], "x\nnan\n", "'nan' is not a number"),
    (["x*y", "--points", "-"], 'x,y\n"1,2\n', "line 2: not valid CSV (unexpected end of data)"),
    (["x*y", "--points", "-"], 'x,y\n"1"2,3\n', "line 2: not valid CSV"),
    (["x*y", "--points", "-"], '"x,y\n1,2\n', "line 1: not valid CSV"),
    (["x", "--points", "-"], "x\n" + "1" * 200_000 + "\n", "line 2: a field is longer than"),
    (["x", "--points", "-"], "x\n1\n" + "1" * 1_000_001 + "\n", "line 3: the line is longer"),
    (["x*y", "--points", "-"], '{"x": 1, "y": 2, "x": 3}\n', 'line 1: the key "x" appears twice'),
    (["x*y", "--points", "-"], '{"x": 1, "y": 2, "v": {"f1": 1, "f1": 2}}\n', "appears twice"),
    (["x*y", "--points", "-"], '{"x": 1, "y": 2, "v": [1], "v:f1": 2}\n', "not both"),
    (["x*y", "--points", "-"], '{"x": 1, "y": 2, "v:f2": 2}\n', "'v:f2' is not v:OUTPUT"),
    (
        ["x*y", "--points", "-"],
        '{"x": 1, "y": 2, "v": {"g": 2}}\n',
        "'g' in \"v\" is not an output",
    ),
    (["u*v", "--points", "-"], '{"u": 1, "v": [2]}\n', "[2] is not a number"),
]


@pytest.mark.parametrize(("args", "stdin", "fragment"), STRICT,
                         ids=[repr([*a, s])[:60] for a, s, _ in STRICT])  # fmt: skip
def test_strict_parsing(vjp, args: list[str], stdin: str, fragment: str) -> None:  # type: ignore[no-untyped-def]
    r = vjp(*args, "--json", code=2, input=stdin)
    assert r.stderr.startswith("Error: ") and r.stderr.count("\n") == 1, r.stderr
    assert fragment in r.stderr, r.stderr
    assert "Traceback" not in r.stderr


def test_the_same_numbers_still_read(vjp) -> None:  # type: ignore[no-untyped-def]
    rows = 'x\n1\n-2.5\n+.5\n3.\n1e-3\n 7 \n"4"\n'
    lines = [json.loads(t) for t in vjp("x*x", "--points", "-", "--json", input=rows)
             .stdout.splitlines()]  # fmt: skip
    assert [d["point"]["x"] for d in lines] == [1.0, -2.5, 0.5, 3.0, 1e-3, 7.0, 4.0]
    d = vjp("x", "--at", "1", "--rtol", "2**-20", "--atol", "1e-9", "--json").json()
    assert d["jacobian"]["rtol"] == 2**-20 and d["jacobian"]["atol"] == 1e-9


def test_rows_before_an_unreadable_line_are_written(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp("x", "--points", "-", "--json", code=2, input="x\n1\n2\n" + "9" * 1_000_001 + "\n")
    assert [json.loads(t)["line"] for t in r.stdout.splitlines()] == [2, 3]
    assert "line 4: the line is longer than 1,000,000 characters" in r.stderr


def test_a_variable_named_v_in_json_lines(vjp) -> None:  # type: ignore[no-untyped-def]
    rows = '{"u": 1, "v": 2}\n{"u": 3, "v": 4, "v:f1": 10}\n'
    lines = [json.loads(t) for t in vjp("u*v", "--points", "-", "--json", input=rows)
             .stdout.splitlines()]  # fmt: skip
    assert lines[0]["point"] == {"u": 1.0, "v": 2.0}
    assert lines[0]["vjp"]["v"] == [1.0] and lines[0]["vjp"]["torch"] == [2.0, 1.0]
    assert lines[1]["vjp"]["v"] == [10.0] and lines[1]["vjp"]["sympy"] == [40.0, 30.0]
    # without a variable named v, "v" is the cotangent, and v:NAME keys work as well
    rows = '{"x": 1, "v": [3]}\n{"x": 1, "v": {"f1": 4}}\n{"x": 1, "v:f1": 5}\n'
    lines = [json.loads(t) for t in vjp("x*x", "--points", "-", "--json", input=rows)
             .stdout.splitlines()]  # fmt: skip
    assert [d["vjp"]["sympy"] for d in lines] == [[6.0], [8.0], [10.0]]


# --- reading is bounded (class 2) and under the clock (class 1)


def test_endless_input_is_refused_after_the_limit(vjp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import io

    from jvp_cli import cli

    class Endless(io.RawIOBase):
        read_bytes = 0

        def readable(self) -> bool:
            return True

        def readinto(self, b) -> int:  # type: ignore[no-untyped-def]
            b[:] = b"\0" * len(b)
            Endless.read_bytes += len(b)
            return len(b)

    with pytest.raises(cli.LimitError, match="more than the limit of 16,000,000"):
        cli._read_text(io.BufferedReader(Endless()), "stdin")
    assert Endless.read_bytes <= cli.MAX_READ + 1 + io.DEFAULT_BUFFER_SIZE


def test_timeout_values(vjp) -> None:  # type: ignore[no-untyped-def]
    for value in ("1e10", "inf", "0", "2*30"):
        vjp("x", "--at", "1", "--timeout", value, "--json", code=0)
