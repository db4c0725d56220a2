"""--emit torch|jax|numpy: each emitted script runs on its own (a subprocess with only that
library needed) and prints the report's numbers, which --json computes independently."""

from __future__ import annotations

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import assert_close

from jvp_cli import api, emit

HAS_JAX = importlib.util.find_spec("jax") is not None

CASES = {
    "scalar": ("x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3", "1,2,3", "3,2,1", "1,-1,2"),
    "tensor": ("y = x + 2; z = y * y; out = mean(z)", "x=[[1,1],[1,1]]", None,
               "x=[[1,0],[0,-2]]"),
    "program": (
        "h = sigmoid(W @ x + b)\nout = sum(h**2) + max(x)\nr = softmax(W[0, :])*norm(x)",
        "W=[[0.5,-1,2],[1,0.25,-0.5]],x=[0.3,0.2,0.9],b=[0.1,-0.1]",
        "out=2,r=[1,-1,0.5]", "W=[[1,0,0],[0,1,0]],x=[1,2,3],b=[0,1]",
    ),
    "keywords": (
        "lambda = print*torch + sin(J); out = sum(lambda * _x) + prod(x) / max(x) - abs(None_)",
        "print=2,torch=[1,2],J=0.5,_x=[[1,2],[3,4]],x=[1,2,3],None_=-3",
        None, "print=1,torch=[1,0],J=1,_x=[[0,0],[0,1]],x=[1,1,1],None_=1",
    ),
}  # fmt: skip


def _args(case: str) -> list[str]:
    src, at, v, u = CASES[case]
    args = [src, "--at", at]
    if v is not None:
        args += ["--v", v]
    return [*args, "--u", u]


def _run(script: str, tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "emitted.py"
    path.write_text(script)
    done = subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed: dict[str, Any] = {}
    for line in done.stdout.splitlines():
        key, _, value = line.partition(" = ")
        # Python prints non-finite floats as nan / inf, which are no literals
        literal = value.replace("nan", "None").replace("inf", "1e999")
        printed[key] = ast.literal_eval(literal)
    return printed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("target", "case"),
    [(t, c) for t in ("torch", "numpy") for c in CASES]
    + [pytest.param("jax", c, marks=pytest.mark.skipif(not HAS_JAX, reason="jax not installed"))
       for c in ("scalar", "keywords")],
)  # fmt: skip
def test_script_prints_the_reports_numbers(vjp: Any, tmp_path: Path, target: str, case: str
                                           ) -> None:  # fmt: skip
    report = vjp(*_args(case), "--json").json()
    script = vjp(*_args(case), "--emit", target).stdout
    printed = _run(script, tmp_path)
    assert_close(printed["J"], report["jacobian"]["sympy"], rel=1e-9, abs_=1e-12)
    assert_close(printed["vjp"], report["vjp"]["sympy"], rel=1e-9, abs_=1e-12)
    assert_close(printed["jvp"], report["jvp"]["sympy"], rel=1e-9, abs_=1e-12)
    for name, grads in report["vjp"]["grads"].items():  # per variable, in its shape
        assert_close(printed[f"{name}.grad"], grads["sympy"], rel=1e-9, abs_=1e-12)
    imports = [line for line in script.splitlines() if line.startswith(("import", "from"))]
    allowed = {"torch": ("torch",), "jax": ("jax",), "numpy": ("numpy", "functools")}[target]
    assert all(line.split()[1].split(".")[0] in allowed for line in imports), imports


def test_torch_script_is_the_tutorials_code(vjp: Any) -> None:
    script = vjp(*_args("scalar"), "--emit", "torch").stdout
    assert "y = torch.stack(outs)" in script and "y.backward(torch.stack(cotangents))" in script
    assert "requires_grad=True" in script and "torch.func.jvp" in script
    jax_script = vjp(*_args("scalar"), "--emit", "jax").stdout
    assert "jax.vjp(program" in jax_script and "jax.jvp(program" in jax_script


def test_generated_from_the_tree_not_the_text(vjp: Any) -> None:
    a = vjp("x^2 + y  # a comment", "--at", "1,2", "--emit", "torch").stdout
    b = vjp("x**2+y", "--at", "1,2", "--emit", "torch").stdout
    assert a == b and "comment" not in a


def test_identifiers_are_safe() -> None:
    names = ["lambda", "print", "match", "torch", "x", "_x", "vx", "v_x", "J", "class", "x"]
    got = emit.identifiers(names)
    assert got["lambda"] == "lambda_" and got["class"] == "class_" and got["match"] == "match_"
    assert got["print"] == "print_" and got["torch"] == "torch_" and got["J"] == "J_"
    assert got["x"] == "x" and got["_x"] == "v_x" and got["v_x"] == "v_x_"
    assert len(set(got.values())) == len(got)
    for ident in got.values():
        assert ident.isidentifier() and not ident.startswith("_")
        compile(f"{ident} = 1", "<test>", "exec")


def test_undefined_entries_stay_nan(vjp: Any, tmp_path: Path) -> None:
    """abs at 0: SymPy's derivative is x/|x|, NaN there, and so is the numpy script's."""
    printed = _run(vjp("abs(x) + y", "--at", "0,1", "--emit", "numpy").stdout, tmp_path)
    assert printed["J"] == [[None, 1.0]]  # None: the script printed nan


def test_constant_subexpressions_are_arrays() -> None:
    """1/(2 - 2) inside a program with variables is the library's inf, not Python's
    ZeroDivisionError, so the script runs where the report does."""
    program, problem = api.make_problem("x*2 + 1/(2 - 2)*0", at="1")
    script = emit.script(program, problem, "torch")
    assert "x * 2.0 + torch.tensor(1.0, dtype=DT) / (torch.tensor(2.0, dtype=DT)" in script


def test_refusals(vjp: Any) -> None:
    r = vjp("x*y", "--emit", "torch", code=2)
    assert "--at" in r.stderr and r.stdout == ""
    r = vjp("x*y", "--at", "1,2", "--emit", "tensorflow", code=2)
    assert "torch, jax or numpy" in r.stderr
    r = vjp("x*y", "--at", "1,2", "--emit", "torch", "--json", code=2)
    assert "--json" in r.stderr and r.stderr.count("\n") == 1


def test_problem_without_v_emits_only_j() -> None:
    program, problem = api.make_problem("x*y; x+y", at="1,2")
    script = emit.script(program, problem, "torch")
    assert ".backward(" not in script and "rows.append" in script
