"""What people type at first contact: expressions starting with '-', `vjp help`, comments
and continued lines, math habits (e^x, ln, log10), refused option combinations."""

from __future__ import annotations

import math

import pytest
from conftest import assert_close


@pytest.mark.parametrize(
    "args",
    [
        ["-x**2 + y", "--at", "1,2", "--json"],
        ["--at", "1,2", "-x**2 + y", "--json"],
        ["--at=1,2", "--json", "-x**2 + y"],
        ["--at", "1,2", "--json", "--", "-x**2 + y"],
    ],
)
def test_expression_starting_with_minus_anywhere(vjp, args):
    out = vjp(*args).json()
    assert out["functions"] == ["-x**2 + y"]
    assert out["jacobian"]["sympy"] == [[-2.0, 1.0]]


def test_minus_sin_and_negative_constant_statement(vjp):
    out = vjp("--at", "0", "-sin(x)", "--json").json()
    assert out["jacobian"]["sympy"] == [[-1.0]]
    out = vjp("-1.71; x2", "--at", "3", "--json").json()
    assert out["variables"] == ["x2"]
    assert out["jacobian"]["sympy"] == [[0.0], [1.0]]


def test_option_values_that_start_with_minus_stay_values(vjp):
    out = vjp("x*y", "--at", "-1,2", "--v", "-2", "--json").json()
    assert out["point"] == {"x": -1.0, "y": 2.0}
    assert out["vjp"]["sympy"] == [-4.0, 2.0]


def test_unknown_long_option_is_still_an_error(vjp):
    r = vjp("x", "--bogus", code=2)
    assert "No such option: --bogus" in r.stderr


def test_two_expressions_starting_with_minus_are_refused(vjp):
    r = vjp("-x", "-y", "--at", "1,2", code=2)
    assert "unexpected extra argument" in r.stderr


def test_vjp_help_prints_the_help(vjp):
    r = vjp("help")
    assert r.stdout.startswith("Usage: vjp")
    assert "FUNCTIONS" in r.stdout
    # with other arguments, `help` is an ordinary variable name
    out = vjp("help**2", "--at", "3", "--json").json()
    assert out["variables"] == ["help"]


PROGRAM = """# a two-layer toy network
h = tanh(w1*x +
         b1)          # a newline inside ( ) continues the statement
out = h * (x
  + 1)
"""


def test_comments_and_continued_lines_in_a_file(vjp, tmp_path):
    path = tmp_path / "prog.txt"
    path.write_text(PROGRAM)
    out = vjp("-f", str(path), "--at", "b1=0.5,w1=2,x=1", "--json").json()
    assert out["outputs"] == ["out"]
    assert out["variables"] == ["b1", "w1", "x"]
    t = math.tanh(2.5)
    d = 1 - t * t
    assert_close(out["jacobian"]["sympy"], [[2 * d, 2 * d, 2 * (2 * d) + t]])


def test_comments_and_continued_lines_on_stdin_and_as_the_argument(vjp):
    out = vjp("-", "--at", "1,2", "--json", input="f = atan2(x,\n 2*y)  # done\n").json()
    assert out["outputs"] == ["f"]
    assert_close(out["jacobian"]["sympy"], [[4 / 17, -2 / 17]])
    out = vjp("x**2  # squared", "--at", "3", "--json").json()
    assert out["functions"] == ["x**2"]
    assert out["jacobian"]["sympy"] == [[6.0]]


def test_a_newline_outside_brackets_still_ends_the_statement(vjp):
    r = vjp("-", "--at", "1", input="y = x +\n 1\n", code=2)
    assert "line 1" in r.stderr and "ends too early" in r.stderr


def test_an_unclosed_bracket_names_its_line(vjp):
    r = vjp("-", "--at", "1", input="a = x\ny = sin(x\n", code=2)
    assert "sin( at line 2, column 8 is never closed" in r.stderr
