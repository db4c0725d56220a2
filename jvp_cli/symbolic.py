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
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import sympy as sp

from . import arrays, lang
from .model import EngineError, SymbolicResult
from .shapes import Shape, labels

DPS = 30  # significant digits of the reference values
PRETTY_LIMIT = 20_000  # characters of Jacobian text beyond which no 2-D/LaTeX form is made
PRETTY_CELLS = 10_000  # entries beyond which no LaTeX form is made
PRETTY_ROWS, PRETTY_COLS = 14, 8  # the largest matrix drawn in 2-D (bigger: a labelled table)


class Built(NamedTuple):
    exprs: list[Any]  # the outputs' elements, flattened, in order: the rows of J
    symbols: list[Any]  # the variables' element symbols, flattened: the columns of J
    rows: list[str]
    cols: list[str]
    sizes: list[int]  # how many rows each output has


def build(program: lang.Program, shapes: Sequence[Shape], engine: str = "sympy") -> Built:
    """The program as SymPy (or SymEngine) expressions, with its row and column labels."""
    inputs: dict[str, np.ndarray] = {}
    symbols: list[Any] = []
    cols: list[str] = []
    backend: arrays.SympyBackend
    if engine == "symengine":
        import symengine as se

        backend = arrays.SymengineBackend()

        def symbol(n: str) -> Any:
            return se.Symbol(n)
    else:
        backend = arrays.SympyBackend()

        def symbol(n: str) -> Any:
            return sp.Symbol(n, real=True)

    for name, shape in zip(program.variables, shapes, strict=True):
        names = labels(name, shape)
        syms = [symbol(n) for n in names]
        arr = np.empty(len(syms), dtype=object)
        arr[:] = syms
        inputs[name] = arr.reshape(shape)
        symbols.extend(syms)
        cols.extend(names)
    outs = arrays.evaluate(program, backend, inputs)
    exprs: list[Any] = []
    rows: list[str] = []
    for name, out in zip(program.outputs, outs, strict=True):
        exprs.extend(out.flat)
        rows.extend(labels(name, out.shape))
    return Built(exprs, symbols, rows, cols, [out.size for out in outs])


def _undefined_at_kinks(expr: Any) -> Any:
    """Rewrite derivative conventions into forms that are NaN where the math is undefined."""
    if expr.has(sp.sign):
        expr = expr.replace(sp.sign, lambda a: a / sp.Abs(a))
    if expr.has(sp.Heaviside):
        expr = expr.replace(sp.Heaviside, lambda a, *rest: sp.Heaviside(a, sp.nan))
    return expr


Sparse = dict[int, Any]  # column index -> nonzero entry of one row of J


def gradient(f: Any, index: dict[Any, int]) -> Sparse:
    """The nonzero entries of d f / d s, by the column index of s, differentiating only by
    the symbols f contains.

    For a sum, each term is differentiated only by the symbols it contains: SymPy's own
    diff of a sum visits every term for every symbol, which is quadratic for a sum of
    thousands of terms in thousands of variables."""
    free = [s for s in f.free_symbols if s in index]
    if f.is_Add and len(f.args) > 8:
        add = type(f)  # SymPy's or SymEngine's Add
        terms_of: dict[Any, list[Any]] = {}
        for term in f.args:
            for s in term.free_symbols:
                terms_of.setdefault(s, []).append(term)
        raw = {s: add(*[t.diff(s) for t in terms_of[s]]) for s in free}
    else:
        raw = {s: f.diff(s) for s in free}
    if isinstance(f, sp.Basic):
        return {index[s]: _undefined_at_kinks(d) for s, d in raw.items() if d is not sp.S.Zero}
    return {index[s]: d for s, d in raw.items() if d != 0}


def jacobian(outputs: Sequence[Any], symbols: Sequence[Any]) -> list[Sparse]:
    """Row by row, the nonzero entries of d outputs_i / d symbols_j."""
    index = {s: k for k, s in enumerate(symbols)}
    return [gradient(f, index) for f in outputs]


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
    shapes: Sequence[Shape],
    point: Sequence[float] | None,
    v: Sequence[float] | None,
    u: Sequence[float] | None,
    engine: str = "sympy",
) -> SymbolicResult:
    """The symbolic Jacobian of the flattened outputs by the flattened variables and, given a
    point, its values, v^T J and J u (all flat, row-major)."""
    outputs, symbols, rows, cols, sizes = build(program, shapes, engine)
    if engine == "symengine":
        return _evaluate_symengine(
            program, shapes, point, v, u, outputs, symbols, rows, cols, sizes
        )
    jac = jacobian(outputs, symbols)
    width = len(symbols)
    text_rows = []
    for row in jac:
        cells = ["0"] * width
        for j, e in row.items():
            cells[j] = str(e)
        text_rows.append(tuple(cells))
    text = tuple(text_rows)
    nonzeros = sum(len(row) for row in jac)
    size = sum(len(t) for row in text_rows for t in row)
    pretty = latex = ""
    # A 2-D layout or LaTeX of a huge matrix costs more than the rest of the run and no one
    # can read it; the entries are still in the JSON output, as text.
    if size <= PRETTY_LIMIT and len(rows) * width <= PRETTY_CELLS:
        dense = [[row.get(j, sp.S.Zero) for j in range(width)] for row in jac]
        matrix = sp.Matrix(dense) if dense else sp.Matrix()
        if len(rows) <= PRETTY_ROWS and width <= PRETTY_COLS:
            pretty = _pretty(matrix)
        latex = sp.latex(matrix)
    if point is None:
        return SymbolicResult(text, pretty, latex, nonzeros, tuple(rows), tuple(cols))

    # The point's float64 values exactly, as rationals: exact arithmetic where it can be
    # (x/2 + 1 at x = -2 is exactly 0, where Float evaluation leaves 1e-165 of noise).
    subs = {s: sp.Rational(x) for s, x in zip(symbols, point, strict=True)}

    def value_of(e: Any) -> tuple[Any, str | None]:
        val = e if e.is_Number else _value_at(e, {x: subs[x] for x in e.free_symbols})
        return val, None if math.isfinite(to_float(val)) else _why(val)

    values, notes = _entries_at(jac, rows, cols, _domain(program, shapes, point, sizes),
                                width, value_of, sp.nan)  # fmt: skip
    jac_f = []
    for vrow in values:
        frow = [0.0] * width
        for j, val in vrow.items():
            frow[j] = to_float(val)
        jac_f.append(tuple(frow))
    vjp = jvp = None
    if v is not None:
        columns: list[list[Any]] = [[] for _ in range(width)]
        for i, vrow in enumerate(values):
            vi = sp.Float(v[i], DPS)
            for j, val in vrow.items():
                columns[j].append(vi * val)
        vjp = tuple(to_float(sp.Add(*terms)) for terms in columns)
    if u is not None:
        uf = [sp.Float(x, DPS) for x in u]
        jvp = tuple(to_float(sp.Add(*[val * uf[j] for j, val in vrow.items()])) for vrow in values)
    return SymbolicResult(
        text,
        pretty,
        latex,
        nonzeros,
        tuple(rows),
        tuple(cols),
        tuple(jac_f),
        vjp,
        jvp,
        tuple(notes),
    )


def _evaluate_symengine(
    program: lang.Program,
    shapes: Sequence[Shape],
    point: Sequence[float] | None,
    v: Sequence[float] | None,
    u: Sequence[float] | None,
    outputs: list[Any],
    symbols: list[Any],
    rows: list[str],
    cols: list[str],
    sizes: list[int],
) -> SymbolicResult:
    """The same results with SymEngine underneath, for big problems: no SymPy objects are
    built (converting them back costs more than the work itself), values at 100 bits."""
    import symengine as se

    jac = jacobian(outputs, symbols)
    width = len(symbols)
    text = tuple(tuple(str(row.get(j, 0)) for j in range(width)) for row in jac)
    nonzeros = sum(len(row) for row in jac)
    if point is None:
        return SymbolicResult(text, "", "", nonzeros, tuple(rows), tuple(cols))
    subs = {s: se.Rational(q.numerator, q.denominator)
            for s, q in zip(symbols, map(_exact, point), strict=True)}  # fmt: skip

    def value_of(e: Any) -> tuple[float, str | None]:
        val = _se_value(e.subs({x: subs[x] for x in e.free_symbols}))
        return val, None if math.isfinite(val) else "not finite"

    entries, notes = _entries_at(jac, rows, cols, _domain(program, shapes, point, sizes),
                                 width, value_of, math.nan)  # fmt: skip
    jac_f: list[list[float]] = []
    for entry_row in entries:
        frow = [0.0] * width
        for j, val in entry_row.items():
            frow[j] = val
        jac_f.append(frow)
    vjp = jvp = None
    if v is not None:
        vjp = tuple(math.fsum(v[i] * jac_f[i][j] for i in range(len(jac_f)) if jac_f[i][j])
                    for j in range(width))  # fmt: skip
    if u is not None:
        jvp = tuple(math.fsum(r[j] * u[j] for j in range(width) if r[j]) for r in jac_f)
    return SymbolicResult(text, "", "", nonzeros, tuple(rows), tuple(cols),
                          tuple(tuple(r) for r in jac_f), vjp, jvp, tuple(notes))  # fmt: skip


def _exact(x: float) -> Any:
    from fractions import Fraction

    return Fraction(x)


def _se_value(value: Any) -> float:
    """A SymEngine constant at 100 bits, as float64: NaN where it is complex or undefined,
    +-inf for infinities."""
    text = str(value)
    if text in ("oo", "-oo"):
        return math.inf if text == "oo" else -math.inf
    try:
        return float(value.evalf(100, real=True))
    except (TypeError, ValueError, RuntimeError):
        return math.nan


def _pretty(matrix: Any) -> str:
    """sp.pretty, without the 0.1 s import of sympy.physics.units that SymPy's Mul printer
    does only to sort unit Quantities last. No Quantity can occur in our expressions (the
    class lives in that module), so a stand-in answers the same; it is removed at once."""
    import sys
    import types

    name = "sympy.physics.units"
    if name in sys.modules:
        return str(sp.pretty(matrix, use_unicode=True, wrap_line=False))
    stand_in = types.ModuleType(name)
    stand_in.Quantity = type("Quantity", (), {})  # type: ignore[attr-defined]
    sys.modules[name] = stand_in
    try:
        return str(sp.pretty(matrix, use_unicode=True, wrap_line=False))
    finally:
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]


def _entries_at(
    jac: list[Sparse],
    rows: Sequence[str],
    cols: Sequence[str],
    undefined_rows: dict[int, str],
    width: int,
    value_of: Callable[[Any], tuple[Any, str | None]],
    nan: Any,
) -> tuple[list[Sparse], list[str]]:
    """The nonzero entries of J at the point, row by row, and a note for each entry that is
    not finite there; a row whose function is undefined at the point is NaN throughout."""
    values: list[Sparse] = []
    notes: list[str] = []
    for i, row in enumerate(jac):
        why = undefined_rows.get(i)
        if why is not None:
            notes.append(f"{rows[i]}: {why}, so its row of J is undefined")
            values.append(dict.fromkeys(range(width), nan))
            continue
        vrow: Sparse = {}
        for j, e in row.items():
            vrow[j], problem = value_of(e)
            if problem is not None:
                notes.append(f"d{rows[i]}/d{cols[j]} = {_short(e)} is {problem} at the point")
        values.append(vrow)
    return values, notes


def _short(e: Any) -> str:
    text = str(e)
    return text if len(text) <= 80 else text[:77] + "..."


def _domain(
    program: lang.Program, shapes: Sequence[Shape], point: Sequence[float], sizes: Sequence[int]
) -> dict[int, str]:
    """Rows of J (flat output elements) at which the point leaves a real domain or float64;
    `sizes` is how many rows each output has."""
    inputs: dict[str, np.ndarray] = {}
    k = 0
    for name, shape in zip(program.variables, shapes, strict=True):
        n = math.prod(shape)
        inputs[name] = np.asarray(point[k : k + n], dtype=np.float64).reshape(shape)
        k += n
    bad: dict[int, str] = {}
    row = 0
    for result, n in zip(arrays.domain_check(program, inputs), sizes, strict=True):
        if isinstance(result, arrays.Undefined):
            for r in range(row, row + n):
                bad[r] = result.explain()
        row += n
    return bad
