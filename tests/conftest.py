"""Shared helpers: run the CLI in-process and check its exit status first."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from typer.testing import CliRunner

# The CLI's work runs in a forked child (supervise.py) that inherits what this process has
# imported: import the engines here once, as a long-lived embedding would, or each CLI test
# would import torch and SymPy afresh in its child.
import jvp_cli.autograd  # torch
import jvp_cli.symbolic  # noqa: F401  (SymPy)
from jvp_cli.cli import app


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout, parse_constant=_reject_constant)


def _reject_constant(token: str) -> Any:
    raise AssertionError(f"non-strict JSON token {token!r} in output")


@pytest.fixture
def vjp() -> Callable[..., Result]:
    """vjp(*args, code=0) runs the command in-process and asserts the exit status."""
    runner = CliRunner()

    def invoke(*args: str, code: int | None = 0, input: str | None = None) -> Result:
        r = runner.invoke(app, list(args), input=input)
        res = Result(r.exit_code, r.stdout, r.stderr)
        if r.exception is not None and not isinstance(r.exception, SystemExit):
            raise r.exception
        if code is not None:
            assert res.code == code, (
                f"exit {res.code}, expected {code}\n--- stdout\n{res.stdout}\n"
                f"--- stderr\n{res.stderr}"
            )
        return res

    return invoke


def central_jacobian(
    fs: Sequence[Callable[..., float]], point: Sequence[float], h: float = 1e-6
) -> list[list[float]]:
    """Jacobian by central finite differences of plain Python functions."""
    rows = []
    for f in fs:
        row = []
        for j in range(len(point)):
            hi = list(point)
            lo = list(point)
            hi[j] += h
            lo[j] -= h
            row.append((f(*hi) - f(*lo)) / (2 * h))
        rows.append(row)
    return rows


def assert_close(actual: Any, expected: Any, rel: float = 1e-6, abs_: float = 1e-6) -> None:
    if isinstance(expected, (list, tuple)):
        assert len(actual) == len(expected), (actual, expected)
        for a, e in zip(actual, expected, strict=True):
            assert_close(a, e, rel, abs_)
        return
    assert math.isclose(float(actual), float(expected), rel_tol=rel, abs_tol=abs_), (
        actual,
        expected,
    )


def scalars(program: Any) -> list[tuple[int, ...]]:
    """Every variable a scalar."""
    return [() for _ in program.variables]


def with_shapes(text: str) -> tuple[Any, list[tuple[int, ...]]]:
    from jvp_cli import lang

    program = lang.parse_program(text)
    return program, scalars(program)
