"""Problem building: point, v and u parsing, counts and names."""

from __future__ import annotations

import math

import pytest

from jvp_cli import api
from jvp_cli.model import InputError

NAMES = ("x1", "x2", "x3")


def values(text: str) -> tuple[float, ...]:
    parsed = api.parse_values(text, NAMES, "--at", "variables")
    assert all(shape == () for shape, _ in parsed.values())
    return tuple(x for n in NAMES for x in parsed[n][1])


def test_positional_and_named_agree() -> None:
    assert values("1,2,3") == (1.0, 2.0, 3.0)
    assert values("x3=3, x1=1,x2=2") == (1.0, 2.0, 3.0)


def test_constant_expressions() -> None:
    got = values("pi/3, -1e-3, 2^10")
    assert got == (math.pi / 3, -1e-3, 1024.0)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("1,2", "got 2 values but there are 3 variables"),
        ("1,,2", "item 2 is empty"),
        ("x1=1,x1=2,x3=3", "'x1' is given twice"),
        ("x1=1,x2=2,q=3", "'q' is not one of the variables"),
        ("x1=1,2,3", "mixes named"),
        ("x1=1,x2=2", "no value for x3"),
        ("1,2,nan", "'nan' is not a number"),
        ("1,2,1e309", "beyond the float64 range"),
        ("1,2,1/0", "undefined"),
        ("", "is empty"),
        ("1,2,exp(1000)", "constant exp(1000) is beyond the range"),
    ],
)
def test_bad_values(text: str, fragment: str) -> None:
    with pytest.raises(InputError) as e:
        values(text)
    assert fragment in e.value.one_line()


def test_scalar_function_gets_implicit_v() -> None:
    _, problem = api.make_problem("x**2", at="3")
    assert problem.v == (1.0,) and problem.v_implicit


def test_vector_function_without_v_takes_no_vjp() -> None:
    _, problem = api.make_problem("x; x**2", at="3")
    assert problem.v is None


def test_v_by_output_name() -> None:
    _, problem = api.make_problem("a = x; b = x**2", at="3", v="b=2,a=1")
    assert problem.v == (1.0, 2.0)


def test_vars_validation() -> None:
    with pytest.raises(InputError, match="listed twice"):
        api.make_problem("x*y", variables="x,y,x")
    with pytest.raises(InputError, match="not a valid variable name"):
        api.make_problem("x*y", variables="x,y z")
    with pytest.raises(InputError, match="built-in"):
        api.make_problem("x*y", variables="x,y,sin")
