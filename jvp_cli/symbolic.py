"""Tree -> SymPy: the symbolic Jacobian, its high-precision values at the point, v^T J and J u.

This is the reference side. Every variable is a real Symbol; numbers are exact (integers and
decimal literals become Rationals); the Jacobian is differentiated entry by entry, and only by
the variables an entry's function contains, so a sparse system stays sparse. Values are taken
at `DPS` significant digits and only then rounded to float64.

Derivatives at points where a function is not differentiable are written so that they
evaluate to NaN there instead of to a convention: d|u| = u/|u| (not sign(u), which is 0 at 0)
and d relu(u) = Heaviside(u, nan). The CLI reports such entries as undefined.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import sympy as sp

from . import lang
from .model import EngineError, SymbolicResult

DPS = 30  # significant digits of the reference values
PRETTY_LIMIT = 20_000  # characters of Jacobian text beyond which no 2-D/LaTeX form is made

_UNARY = {
    "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin, "acos": sp.acos,
    "atan": sp.atan, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "exp": sp.exp,
    "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs,
    "sigmoid": lambda u: 1 / (1 + sp.exp(-u)),
    "relu": lambda u: sp.Max(0, u),
    "softplus": lambda u: sp.log(1 + sp.exp(u)),
}  # fmt: skip


def build(program: lang.Program) -> tuple[list[sp.Expr], list[sp.Symbol]]:
    """SymPy expressions for the program's outputs, and the variables' symbols in order."""
    symbols = {name: sp.Symbol(name, real=True) for name in program.variables}
    env: dict[str, Any] = dict(symbols)
    for name, node in program.definitions:
        env[name] = to_sympy(node, env)
    outputs = [to_sympy(node, env) for node in program.output_exprs]
    return outputs, [symbols[n] for n in program.variables]


def to_sympy(node: lang.Node, env: dict[str, Any]) -> Any:
    def leaf(n: lang.Node) -> Any:
        if isinstance(n, lang.Num):
            if isinstance(n.value, int):
                return sp.Integer(n.value)
            q = n.exact()
            return sp.Rational(q.numerator, q.denominator)
        if isinstance(n, lang.Const):
            return sp.pi if n.id == "pi" else sp.E
        assert isinstance(n, lang.Name)
        return env[n.id]

    def combine(n: lang.Node, args: list[Any]) -> Any:
        if isinstance(n, lang.Neg):
            return -args[0]
        if isinstance(n, lang.Chain):
            if n.kind == "add":
                terms = [args[0]] + [
                    a if op == "+" else -a for (op, _), a in zip(n.rest, args[1:], strict=True)
                ]
                return sp.Add(*terms)
            factors = [args[0]] + [
                a if op == "*" else sp.Pow(a, -1)
                for (op, _), a in zip(n.rest, args[1:], strict=True)
            ]
            return sp.Mul(*factors)
        if isinstance(n, lang.Pow):
            return sp.Pow(args[0], args[1])
        if isinstance(n, lang.Call):
            if n.func == "atan2":
                return sp.atan2(args[0], args[1])
            return _UNARY[n.func](args[0])
        raise AssertionError(n)

    return lang.fold(node, leaf, combine)


def _undefined_at_kinks(expr: Any) -> Any:
    """Rewrite derivative conventions into forms that are NaN where the math is undefined."""
    if expr.has(sp.sign):
        expr = expr.replace(sp.sign, lambda a: a / sp.Abs(a))
    if expr.has(sp.Heaviside):
        expr = expr.replace(sp.Heaviside, lambda a, *rest: sp.Heaviside(a, sp.nan))
    return expr


def gradient(f: Any, symbols: Sequence[sp.Symbol]) -> list[Any]:
    """d f / d s for each symbol, differentiating only where s occurs.

    For a sum, each term is differentiated only by the symbols it contains: SymPy's own
    diff of a sum visits every term for every symbol, which is quadratic for a sum of
    thousands of terms in thousands of variables."""
    free = f.free_symbols
    if isinstance(f, sp.Add) and len(f.args) > 8:
        terms_of: dict[Any, list[Any]] = {}
        for term in f.args:
            for s in term.free_symbols:
                terms_of.setdefault(s, []).append(term)
        raw = {s: sp.Add(*[t.diff(s) for t in terms_of[s]]) for s in symbols if s in free}
    else:
        raw = {s: sp.diff(f, s) for s in symbols if s in free}
    return [_undefined_at_kinks(raw[s]) if s in raw else sp.S.Zero for s in symbols]


def jacobian(outputs: Sequence[Any], symbols: Sequence[sp.Symbol]) -> list[list[Any]]:
    """d outputs_i / d symbols_j, differentiating only by symbols the output contains."""
    return [gradient(f, symbols) for f in outputs]


def to_float(value: Any) -> float:
    """A SymPy number as float64: NaN for nan/complex, +-inf for infinities."""
    if value is sp.nan or value is sp.zoo:
        return math.nan
    if value is sp.oo:
        return math.inf
    if value is sp.S.NegativeInfinity:
        return -math.inf
    if not value.is_number:
        raise EngineError(f"could not evaluate {value} to a number")
    re_part, im_part = value.as_real_imag()
    if im_part != 0:
        im_f = float(im_part)
        if im_f != 0.0 or not im_part.is_zero:
            return math.nan
    try:
        return float(re_part)
    except (TypeError, ValueError):
        return math.nan


def _value_at(expr: Any, subs: dict[Any, Any]) -> Any:
    """`expr` at the point with DPS digits; mpmath's division by zero becomes zoo."""
    try:
        return expr.evalf(DPS, subs=subs)
    except ZeroDivisionError:
        try:
            return expr.xreplace(subs).evalf(DPS)
        except ZeroDivisionError:
            return sp.zoo


def _why(value: Any) -> str:
    if value is sp.zoo or value in (sp.oo, sp.S.NegativeInfinity):
        return "infinite"
    if value is sp.nan:
        return "undefined (0/0 or a kink)"
    if value.is_number and not value.is_real:
        return "complex"
    return "not finite in float64"


def evaluate(
    program: lang.Program,
    point: Sequence[float] | None,
    v: Sequence[float] | None,
    u: Sequence[float] | None,
) -> SymbolicResult:
    outputs, symbols = build(program)
    jac = jacobian(outputs, symbols)
    text = tuple(tuple(str(e) for e in row) for row in jac)
    matrix = sp.Matrix(jac) if jac else sp.Matrix()
    size = sum(len(t) for row in text for t in row)
    if size <= PRETTY_LIMIT:
        pretty = sp.pretty(matrix, use_unicode=True, wrap_line=False)
        latex = sp.latex(matrix)
    else:
        # 2-D layout of a huge expression costs more than the rest of the run and no one can
        # read it; the entries are still in the JSON output, as text.
        pretty = latex = ""
    nonzeros = sum(1 for row in jac for e in row if e != 0)
    if point is None:
        return SymbolicResult(text, pretty, latex, nonzeros)

    subs = {s: sp.Float(x, DPS) for s, x in zip(symbols, point, strict=True)}
    values: list[list[Any]] = []
    notes: list[str] = []
    domain = lang.float_values(program, point)
    for i, row in enumerate(jac):
        bad = domain[i]
        if isinstance(bad, lang.Undefined):
            # Outside the real domain of a sub-expression: no derivative exists there.
            notes.append(
                f"{program.outputs[i]}: {bad.explain()}, so row "
                f"{program.outputs[i]} of J is undefined"
            )
            values.append([sp.nan] * len(row))
            continue
        vrow = []
        for j, e in enumerate(row):
            if e == 0:
                vrow.append(sp.S.Zero)
                continue
            val = e if e.is_Number else _value_at(e, {x: subs[x] for x in e.free_symbols})
            fval = to_float(val)
            if not math.isfinite(fval):
                notes.append(
                    f"d{program.outputs[i]}/d{program.variables[j]} = {e} is "
                    f"{_why(val)} at the point"
                )
            vrow.append(val)
        values.append(vrow)
    jac_f = tuple(tuple(to_float(x) for x in row) for row in values)
    vjp = jvp = None
    if v is not None:
        vjp = tuple(
            to_float(
                sp.Add(
                    *[
                        sp.Float(v[i], DPS) * values[i][j]
                        for i in range(len(values))
                        if values[i][j] != 0
                    ]
                )
            )
            for j in range(len(symbols))
        )
    if u is not None:
        jvp = tuple(
            to_float(
                sp.Add(
                    *[
                        values[i][j] * sp.Float(u[j], DPS)
                        for j in range(len(symbols))
                        if values[i][j] != 0
                    ]
                )
            )
            for i in range(len(values))
        )
    return SymbolicResult(text, pretty, latex, nonzeros, jac_f, vjp, jvp, tuple(notes))
