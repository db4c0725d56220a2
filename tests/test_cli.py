"""The command end to end: exit status first, then JSON, then stderr."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest
from conftest import assert_close

from jvp_cli import cli

SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"


@pytest.mark.parametrize(("v", "expected"), [("3,2,1", [10, 34, 42]), ("1,1,1", [5, 18, 34])])
def test_seed_vjp(vjp, v: str, expected: list[float]) -> None:  # type: ignore[no-untyped-def]
    d = vjp(SEED, "--at", "1,2,3", "--v", v, "--json").json()
    assert d["vjp"]["sympy"] == expected
    assert d["vjp"]["torch"] == expected
    assert d["jacobian"]["sympy"] == [[2, 2, 1], [1, 12, 6], [2, 4, 27]]
    assert d["agree"] is True


def test_seed_rich_report(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1").stdout
    for name, value in (("x1", 10), ("x2", 34), ("x3", 42)):  # one labelled line per .grad
        assert re.search(rf"^│ {name}\.grad +{value} +{value} +│$", out, re.M), out
    assert "v = (3, 2, 1)" in out
    assert "agree" in out and "disagree" not in out
    assert "⎡" in out  # a pretty-printed matrix, not a Python list


def test_named_point_any_order(vjp) -> None:  # type: ignore[no-untyped-def]
    a = vjp(SEED, "--at", "x3=3,x1=1,x2=2", "--v", "3,2,1", "--json").json()
    assert a["point"] == {"x1": 1.0, "x2": 2.0, "x3": 3.0}
    assert a["vjp"]["torch"] == [10, 34, 42]


def test_caret_power_and_constant_point(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("x^2*y + sin(x*y)", "--at", "x=pi/3,y=-1e-3", "--json").json()
    x, y = math.pi / 3, -1e-3
    by_hand = [2 * x * y + y * math.cos(x * y), x * x + x * math.cos(x * y)]
    assert_close(d["vjp"]["torch"], by_hand, rel=1e-12)
    assert_close(d["vjp"]["sympy"], by_hand, rel=1e-12)
    assert d["jacobian"]["symbolic"] == [["2*x*y + y*cos(x*y)", "x**2 + x*cos(x*y)"]]


def test_natural_order_in_output(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("x10*x2 + x1", "--json").json()
    assert d["variables"] == ["x1", "x2", "x10"]
    assert d["jacobian"]["symbolic"] == [["1", "x10", "x2"]]
    assert d["point"] is None and d["status"] == "symbolic-only"


def test_symbolic_only_exit_zero(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp("r*cos(theta); r*sin(theta)").stdout
    assert "Symbolic Jacobian" in out and "cos(θ)" in out


def test_jvp_forward_mode(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("r*cos(theta); r*sin(theta)", "--at", "r=2,theta=pi/3", "--u", "1,0", "--json").json()
    assert_close(d["jvp"]["torch"], [math.cos(math.pi / 3), math.sin(math.pi / 3)], rel=1e-14)
    assert d["jvp"]["agree"] is True


def test_vector_without_v_explains(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp(SEED, "--at", "1,2,3")
    assert "implicit gradient" in r.stdout
    assert "VJP" not in r.stdout.split("note:")[0]


def test_disagreement_exits_1(vjp) -> None:  # type: ignore[no-untyped-def]
    # float32 really differs from the 30-digit reference; with zero tolerance that is a
    # disagreement, and the report says by how much.
    r = vjp(
        "exp(x)",
        "--at",
        "1.1",
        "--dtype",
        "float32",
        "--rtol",
        "0",
        "--atol",
        "0",
        "--json",
        code=1,
    )
    d = r.json()
    assert d["agree"] is False and d["vjp"]["status"] == "disagree"
    assert 0 < d["vjp"]["max_abs_diff"] < 1e-5


def test_float32_default_tolerance_agrees(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp("exp(x)", "--at", "1.1", "--dtype", "float32", "--json").json()
    assert d["vjp"]["rtol"] == 1.3e-6


def test_undefined_point_exits_1_with_reason(vjp) -> None:  # type: ignore[no-untyped-def]
    for fn in ("sqrt(x)", "log(x)", "abs(x)", "1/x"):
        r = vjp(fn, "--at", "0", "--json", code=1)
        d = r.json()
        assert d["status"] == "undefined", fn
        assert d["notes"], fn
    r = vjp("log(x)", "--at", "-1", code=1)
    assert "undefined" in r.stdout


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["x + foo(x)", "--at", "1"], "column 5: unknown function 'foo'"),
        ([SEED, "--at", "1,2"], "got 2 values but there are 3 variables"),
        ([SEED, "--at", "1,2,3", "--v", "1,1"], "got 2 values but there are 3 functions"),
        ([SEED, "--at", "1,2,3", "--u", "1"], "--u"),
        (
            ["A @ x", "--at", "A=[[1,2],[3,4]],x=[1,-1]", "--v", "1,1"],
            "there is 1 function (output) (f1); one value per name, a tensor as a nested list: "
            "f1=[..,..]",
        ),
        (["x*y", "--at", "1,2", "--v", "1,2"], "got 2 values but there is 1 function (output)"),
        (["x*y", "--at", "x=1,x=2"], "'x' is given twice"),
        (["[bold]x", "--at", "1"], "'['"),
        (["x", "--v", "1"], "needs a point"),
        (["x", "--at", "1", "--rtol", "-1"], "--rtol"),
        (["x", "--at", "1", "--device", "cuda:99"], "cuda"),
    ],
)
def test_bad_input_exit_2_one_line(vjp, args: list[str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    r = vjp(*args, code=2)
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), r.stderr
    assert fragment in lines[0]
    assert "Traceback" not in r.stderr


def test_markup_in_error_prints_as_typed(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp("x", "--at", "[red]1", code=2)
    assert "[red]" not in r.stderr or "'['" in r.stderr


def test_internal_error_exits_3(vjp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from jvp_cli import api

    def boom(*a, **k):  # type: ignore[no-untyped-def]
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(api, "solve", boom)
    r = vjp("x", "--at", "1", code=3)
    assert "internal error" in r.stderr and "Traceback" not in r.stderr
    r = vjp("x", "--at", "1", "--debug", code=3)
    assert "Traceback" in r.stderr


def test_usage_errors_via_main_are_one_line(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.run(["x", "--nope"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("Error: ") and "--nope" in err
    assert cli.run(["x", "--dtype", "float16"]) == 2
    assert "float16" in capsys.readouterr().err


def test_version(capsys) -> None:  # type: ignore[no-untyped-def]
    assert cli.run(["--version"]) == 0
    assert capsys.readouterr().out.startswith("vjp (jvp_cli) ")


def test_file_and_stdin(vjp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    prog = tmp_path / "prog.txt"
    prog.write_text("y1 = x1**2 + 2*x2 + x3\ny2 = x1 + x2**3 + x3**2\ny3 = 2*x1 + x2**2 + x3**3\n")
    d = vjp("-f", str(prog), "--at", "1,2,3", "--v", "3,2,1", "--json").json()
    assert d["outputs"] == ["y1", "y2", "y3"] and d["vjp"]["torch"] == [10, 34, 42]
    d = vjp("-", "--at", "1,2,3", "--v", "y3=1,y2=1,y1=1", "--json", input=prog.read_text()).json()
    assert d["vjp"]["sympy"] == [5, 18, 34]


# ---- a few real processes (each pays the torch import) -------------------------------------


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "jvp_cli", *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=120,
    )


@pytest.mark.slow
def test_help_imports_neither_torch_nor_sympy() -> None:
    code = (
        "import sys; from jvp_cli import cli\n"
        "for argv in (['--help'], ['x', '--bogus'], ['x', '--dtype', 'f16'], ['--version']):\n"
        "    cli.run(argv)\n"
        "print('HEAVY', sorted(m for m in ('torch', 'sympy') if m in sys.modules))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in r.stdout, r.stdout + r.stderr
    assert "Examples" in r.stdout


@pytest.mark.slow
def test_python_m_seed_json_is_strict() -> None:
    r = _run(SEED, "--at", "1,2,3", "--v", "3,2,1", "--json")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("\n") == 1
    d = json.loads(r.stdout, parse_constant=lambda t: (_ for _ in ()).throw(ValueError(t)))
    assert d["vjp"]["torch"] == [10, 34, 42]


@pytest.mark.slow
def test_broken_pipe_is_quiet() -> None:
    # The reader goes away before vjp writes anything (like `| head -c 0` on a slow command).
    proc = subprocess.Popen(
        [sys.executable, "-m", "jvp_cli", SEED, "--at", "1,2,3", "--v", "3,2,1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0
    assert "Traceback" not in err and "BrokenPipe" not in err and err == ""


@pytest.mark.slow
def test_forward_mode_does_not_pull_in_dynamo() -> None:
    # Mixing dual and plain tensors makes torch import torch._dynamo (about a second);
    # constants are zero-tangent duals in forward mode so that never happens.
    code = (
        "import sys; from jvp_cli import cli\n"
        f"code = cli.run([{SEED!r}, '--at', '1,2,3', '--u', '1,0,0', '--json'])\n"
        "print('DYNAMO', 'torch._dynamo' in sys.modules, code)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "DYNAMO False 0" in r.stdout, r.stdout + r.stderr


@pytest.mark.gpu
def test_cuda_device_agrees(vjp) -> None:  # type: ignore[no-untyped-def]
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    d = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--u", "1,0,0", "--device", "cuda",
            "--json").json()  # fmt: skip
    assert d["vjp"]["torch"] == [10, 34, 42] and d["agree"] is True
    d = vjp("y = x + 2; z = y * y; out = mean(z)", "--at", "x=[[1,1],[1,1]]", "--device",
            "cuda", "--json").json()  # fmt: skip
    assert d["vjp"]["grads"]["x"]["torch"] == [[1.5, 1.5], [1.5, 1.5]]


def test_engines(vjp) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("symengine")
    d = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--engine", "symengine", "--json").json()
    assert d["engine"] == "symengine" and d["vjp"]["sympy"] == [10, 34, 42]
    assert vjp(SEED, "--at", "1,2,3", "--json").json()["engine"] == "sympy"  # small: SymPy
    r = vjp("abs(x)", "--at", "1", "--engine", "symengine", code=2)
    assert "cannot differentiate abs" in r.stderr
    r = vjp("x", "--engine", "maple", code=2)
    assert "unknown engine" in r.stderr
    # a big problem goes to SymEngine by itself, with the same numbers as SymPy
    n = 120
    prog = "; ".join(" + ".join(f"sin(x{j}*{i + j}/{n})" for j in range(1, n + 1))
                     for i in range(1, 10))  # fmt: skip
    at = ",".join(f"{0.5 + j / 1000}" for j in range(1, n + 1))
    v = ",".join(str(k) for k in range(1, 10))
    big = vjp(prog, "--at", at, "--v", v, "--json").json()
    small = vjp(prog, "--at", at, "--v", v, "--engine", "sympy", "--json").json()
    assert big["engine"] == "symengine" and small["engine"] == "sympy"
    assert big["vjp"]["sympy"] == pytest.approx(small["vjp"]["sympy"], rel=1e-14)
    assert big["agree"] and small["agree"]
