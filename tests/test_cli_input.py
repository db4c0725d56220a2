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


def test_log10_log2_and_log_base_b_in_both_engines(vjp):
    out = vjp("log10(x); log2(x); log(x, b)", "--at", "b=3,x=8", "--json").json()
    assert out["jacobian"]["agree"] is True
    assert_close(
        out["jacobian"]["sympy"],
        [
            [0, 1 / (8 * math.log(10))],
            [0, 1 / (8 * math.log(2))],
            [-math.log(8) / (3 * math.log(3) ** 2), 1 / (8 * math.log(3))],
        ],
    )
    assert_close(out["jacobian"]["torch"], out["jacobian"]["sympy"])


def test_log_base_outside_its_domain_is_undefined(vjp):
    out = vjp("log(x, b)", "--at", "b=1,x=2", "--json", code=1).json()
    assert out["jacobian"]["status"] == "undefined"
    out = vjp("log10(x)", "--at", "-1", "--json", code=1).json()
    assert out["jacobian"]["status"] == "undefined"


def test_log_takes_at_most_two_arguments(vjp):
    r = vjp("log(x, 2, 3)", "--at", "1", code=2)
    assert "log takes 1 to 2 arguments, got 3" in r.stderr


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("ln(x)", "the natural logarithm is log(x) here"),
        ("arctan(x)", "write atan(x)"),
        ("e(x)", "for e^x write exp(x); Euler's number is E"),
        ("sinn(x)", "did you mean sin?"),
    ],
)
def test_math_habits_get_a_precise_hint(vjp, text, hint):
    r = vjp(text, "--at", "1", code=2)
    assert f"unknown function '{text.split('(')[0]}'" in r.stderr
    assert hint in r.stderr


def test_e_as_a_power_base_is_a_variable_and_says_so(vjp):
    r = vjp("e^x", "--at", "1", code=2)
    assert "got 1 value but there are 2 variables (e, x)" in r.stderr
    assert "'e' is read as a variable here: for Euler's number write E" in r.stderr
    out = vjp("e**x", "--at", "2,3", "--json").json()
    assert any("for Euler's number write E" in n for n in out["notes"])
    assert "Euler's number" in vjp("e**x").stdout  # the symbolic-only report too
    out = vjp("E**x", "--at", "1", "--json").json()
    assert_close(out["jacobian"]["sympy"], [[math.e]])
    assert not any("Euler" in n for n in out["notes"])


def test_at_x_equals_e_says_euler_is_E(vjp):
    r = vjp("x", "--at", "x=e", code=2)
    assert "'e' is not a number; Euler's number is E" in r.stderr


def test_outputs_accepts_the_printed_names(vjp):
    out = vjp("x; y", "--at", "1,2", "--outputs", "f2", "--json").json()
    assert out["outputs"] == ["f2"]
    assert out["jacobian"]["sympy"] == [[0.0, 1.0]]
    out = vjp("x; y", "--at", "1,2", "--v", "f2=3,f1=1", "--json").json()
    assert out["vjp"]["sympy"] == [1.0, 3.0]
    r = vjp("x; y", "--outputs", "g", code=2)
    assert "no statement is called 'g'; the statements are f1, f2" in r.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["x", "--at", "1", "--rtol", "-1"], "Error: --rtol must be a finite number >= 0\n"),
        (["x+y", "--vars", "x"], "Error: --vars does not list y, used at column 3;"),
        (["x", "--outputs", "f1,f1"], "Error: --outputs: 'f1' is listed twice;"),
    ],
)
def test_messages_name_the_option_once(vjp, args, message):
    assert vjp(*args, code=2).stderr.startswith(message)


def test_help_documents_dashes_comments_and_e(vjp):
    out = vjp("--help").stdout
    assert '"#" starts a comment' in out
    assert 'after "--" every argument is FUNCTIONS' in out
    assert "E is Euler's number and e an ordinary variable" in out


def test_no_functions_with_a_redirected_stdin_says_to_use_dash(vjp):
    r = vjp("--at", "1,2", input="x*y\n", code=2)
    assert "stdin is not read unless FUNCTIONS is '-': vjp - --at 1,2" in r.stderr
    out = vjp("-", "--at", "1,2", "--json", input="x*y\n").json()
    assert out["jacobian"]["sympy"] == [[2.0, 1.0]]


def test_functions_and_points_cannot_both_come_from_stdin(vjp):
    r = vjp("-", "--points", "-", input="x\n1\n", code=2)
    assert "cannot both come from stdin" in r.stderr
    assert r.stderr.count("\n") == 1


def test_full_with_points_is_refused_with_a_reason(vjp, tmp_path):
    pts = tmp_path / "p.csv"
    pts.write_text("x\n1\n2\n")
    r = vjp("x**2", "--points", str(pts), "--full", code=2)
    assert "--full shows every entry of one report" in r.stderr
    vjp("x**2", "--points", str(pts))  # without --full it runs


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "-1"], "--timeout: -1 is not a number of seconds"),
        (["--device", "mps"], "--device: unsupported device 'mps'; use cpu, cuda or cuda:N"),
    ],
)
def test_senseless_options_are_refused_in_one_line(vjp, args, message):
    r = vjp("x", "--at", "1", *args, code=2)
    assert r.stderr.startswith("Error: ") and message in r.stderr
    assert r.stderr.count("\n") == 1 and len(r.stderr) < 200
