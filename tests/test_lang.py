"""The input language: grammar, precedence, ordering, errors with columns, limits."""

from __future__ import annotations

import math

import pytest

from jvp_cli import lang
from jvp_cli.model import InputError, LimitError


def const(text: str) -> float:
    return lang.evaluate_constant(text, "test")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2^3^2", 2.0**9),  # right-associative, like **
        ("2**3**2", 512.0),
        ("-2^2", -4.0),  # -(2^2)
        ("(-2)^2", 4.0),
        ("2^-1", 0.5),
        ("2*3^2", 18.0),
        ("1 - 2 - 3", -4.0),  # left-associative
        ("8 / 2 / 2", 2.0),
        ("2.5e-3 * 4", 0.01),
        (".5 + 1.", 1.5),
        ("pi/3", math.pi / 3),
        ("E", math.e),
        ("atan2(1, 1)", math.pi / 4),
        ("--3", 3.0),
        ("-+-3", 3.0),
        ("sqrt(16) + abs(-2)", 6.0),
        ("sigmoid(0) + relu(-3) + softplus(0)", 0.5 + math.log(2)),
    ],
)
def test_constant_values(text: str, expected: float) -> None:
    assert const(text) == pytest.approx(expected, rel=1e-15)


def test_caret_is_power_not_xor() -> None:
    # 2 ^ 3 would be 1 as XOR
    assert const("2 ^ 3") == 8.0
    assert lang.parse_expression("x^2*y") == lang.parse_expression("x**2*y")
    assert lang.parse_expression("-x^2") == lang.Neg(lang.Pow(lang.Name("x"), lang.Num("2", 2)))


def test_precedence_tree() -> None:
    tree = lang.parse_expression("a + b*c^d")
    assert lang.unparse(tree) == "a + b*c**d"
    assert isinstance(tree, lang.Chain) and tree.kind == "add"
    mul = tree.rest[0][1]
    assert isinstance(mul, lang.Chain) and mul.kind == "mul"
    assert isinstance(mul.rest[0][1], lang.Pow)


@pytest.mark.parametrize(
    "text",
    [
        "x1**2 + 2*x2 + x3",
        "-(-x)",
        "(a + b)*(c - d)/e",
        "a/(b*c)",
        "(a*b)*c",
        "2**-x",
        "(x**2)**3",
        "(-x)**2",
        "atan2(y, x) + sin(cos(x))**2",
        "x - -y",
        "1e-3*x",
    ],
)
def test_unparse_round_trip(text: str) -> None:
    tree = lang.parse_expression(text)
    assert lang.parse_expression(lang.unparse(tree)) == tree


def test_natural_order() -> None:
    prog = lang.parse_program("x10 + x2 + x1 + theta + r")
    assert prog.variables == ("r", "theta", "x1", "x2", "x10")


def test_vars_fixes_order_and_adds() -> None:
    prog = lang.parse_program("x*y", variables=["y", "x", "z"])
    assert prog.variables == ("y", "x", "z")


def test_vars_missing_a_variable() -> None:
    with pytest.raises(InputError, match="does not list y"):
        lang.parse_program("x*y", variables=["x"])


def test_components_and_names() -> None:
    prog = lang.parse_program("y1 = x1**2 + x2\ny2 = x1*x2; x2")
    assert prog.outputs == ("y1", "y2", "f3")
    assert prog.functions_text() == ("x1**2 + x2", "x1*x2", "x2")


def test_intermediates_are_not_outputs() -> None:
    prog = lang.parse_program("t = x*y; out = t + sin(t)")
    assert prog.outputs == ("out",)
    assert prog.variables == ("x", "y")


def test_use_before_definition_and_reuse() -> None:
    with pytest.raises(InputError, match="used before it is defined") as e:
        lang.parse_program("a = b + 1; b = x")
    assert e.value.location() == (1, 5)
    with pytest.raises(InputError, match="defined twice"):
        lang.parse_program("a = x; a = 2*x")


def error_of(text: str) -> InputError:
    with pytest.raises(InputError) as e:
        lang.parse_program(text)
    return e.value


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("x + foo(x)", 5, "unknown function 'foo'"),
        ("x + 2x", 6, "unexpected 'x' after '2'"),
        ("x +", 4, "ends too early"),
        ("(x + 1", 7, "never closed"),
        ("x + 1)", 6, "unmatched ')'"),
        ("x & y", 3, "unexpected character '&'"),
        ("x \u2212 y", 3, "U+2212"),
        ("x\u200b + y", 2, "invisible character"),
        ("\uff581 + 1", 1, "type 'x'"),
        ("sin x", 1, "is a function"),
        ("sin", 1, "is a function"),
        ("atan2(x)", 1, "takes 2 arguments"),
        ("x // y", 3, "floor division"),
        ("x == y", 3, "'==' is not part"),
        ("pi = 3", 1, "built-in constant"),
        ("x[y]", 3, "not a constant integer"),
        ("x.y", 2, "the only attribute is .T"),
        ("x[1:2:0]", 2, "step must be positive"),
    ],
)
def test_errors_name_token_and_column(text: str, column: int, fragment: str) -> None:
    err = error_of(text)
    assert fragment in err.one_line()
    assert err.location() == (1, column), err.one_line()


def test_fullwidth_never_merges_with_ascii() -> None:
    # Python's own parser would fold the fullwidth x into "x1"
    err = error_of("\uff581 + x1")
    assert "non-ASCII" in err.one_line()


def test_multiline_location() -> None:
    err = error_of("x + 1\ny + $")
    assert err.location() == (2, 5)
    assert "line 2, column 5" in err.one_line()


@pytest.mark.parametrize(
    "text",
    [
        "2**(10**100)",
        "9**9**9**9",
        "((2**60)**60)**60",
        "((x1**60)**60)**60",
        "1e999999999",
        "1" * 5000,
        "(" * 300 + "x" + ")" * 300,
        "x**100000",
    ],
)
def test_limits_refuse_quickly(text: str) -> None:
    with pytest.raises(LimitError):
        lang.parse_program(text)


def test_many_unary_minus_fold() -> None:
    prog = lang.parse_program("-" * 100_001 + "x")
    assert prog.functions_text() == ("-x",)


def test_big_sum_is_flat() -> None:
    prog = lang.parse_program(" + ".join(f"x{i}" for i in range(3000)))
    (expr,) = prog.output_exprs
    assert isinstance(expr, lang.Chain) and len(expr.rest) == 2999
