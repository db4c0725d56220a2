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

from . import arrays, domain, exact, lang, sparse
from .model import SymbolicResult
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


def _entry_value(e: Any, subs: dict[Any, Any], symbol: Any) -> tuple[Any, str | None]:
    """One entry of J at the point as an mpf with 33 certified digits (exact.py), and what
    is wrong with it (None: finite)."""
    try:
        got = exact.value(e, subs)
    except exact.Uncertified:
        # most often an exact 0 under a kink or a 0/0 ((x-1)*|x-1| at 1: x - 1 is 0, which
        # no precision certifies relatively): the derivative is then its limit, if any
        return _diverges(e, subs, symbol)
    if got is not None:
        return got, None
    return _diverges(e, subs, symbol)


SE_PREC = 128  # bits of SymEngine's evaluation


def _symengine_certified(
    e: Any, subs: dict[Any, Any], floats: dict[Any, float], memo: dict[Any, Any]
) -> float | None:
    """`e` by SymEngine (MPFR, correctly rounded operations) at SE_PREC bits, where the
    magnitude bound of errorbound.py at u = 2**-SE_PREC (exact.magnitude, in float64)
    certifies 110 bits of it; None where it does not (cancellation, a function with no cheap
    bound, a value beyond float64), and the caller takes exact.value."""
    try:
        size, d = exact.magnitude(e, floats, memo)
        here = {x: subs[x] for x in e.free_symbols}  # SymEngine converts the whole dict
        val = float(e.subs(here).evalf(SE_PREC, real=True))
    except (TypeError, ValueError, RuntimeError, OverflowError, ZeroDivisionError):
        return None
    if not (math.isfinite(val) and math.isfinite(size)):
        return None
    bound = 2 * d * size * 2.0**-SE_PREC
    return val if bound <= abs(val) * 2.0**-exact.RELATIVE or bound <= exact.ABSOLUTE else None


def _nan() -> Any:
    import mpmath

    return mpmath.mpf("nan")


def _diverges(e: Any, subs: dict[Any, Any], symbol: Any) -> tuple[Any, str | None]:
    """A derivative whose expression is not finite at the point, by its limits along the
    variable from each side on which it is defined (the function is continuous there, so
    where the derivative has a limit L it is L, by the mean value theorem):
    - +-inf where it diverges to that infinity from every such side (d sqrt(x)/dx at 0);
    - L where it tends to the same finite L from every such side (d x|x|/dx at 0 = 0);
    - NaN otherwise (a kink such as |x| or relu at 0, or no real value near the point).
    The limits are read at 2**-150 and 2**-200 (relative to the point) from it, at certified
    precision; two sides are the same limit only when they agree to 1e-20."""
    import mpmath

    nan_note = "undefined (no derivative: a kink, 0/0 or complex)"
    x0 = sp.Rational(subs[symbol])
    scale = max(sp.Integer(1), abs(x0))
    ends: list[tuple[str, Any]] = []
    for side in (1, -1):
        vals = []
        for k in (150, 200):
            point = dict(subs)
            point[symbol] = x0 + side * scale * sp.Rational(1, 2**k)
            try:
                got = exact.value(e, point)
            except exact.Uncertified:
                got = None
            if got is None:
                break
            vals.append(got)
        if len(vals) < 2:
            continue  # not defined on this side
        near, nearer = vals
        if abs(nearer) >= 1.2 * abs(near) and abs(nearer) > 1e20 and near * nearer > 0:
            ends.append(("inf", 1 if nearer > 0 else -1))
        elif abs(nearer - near) <= 1e-20 * max(1, abs(nearer)):
            # v(h) = L + c h near the point: Richardson's extrapolation to h = 0. Where v
            # falls faster (3 h^2), that step leaves a residue of the order of the change
            # times 2**-50 (-1.3e-105 for 3 h^2): a limit that small beside the change
            # between the two probes is 0
            limit = (nearer * 2**50 - near) / (2**50 - 1)
            if abs(limit) <= abs(nearer - near) * mpmath.mpf(2) ** -40:
                limit = mpmath.mpf(0)
            ends.append(("limit", limit))
        else:
            return mpmath.mpf("nan"), nan_note
    kinds = {kind for kind, _ in ends}
    if kinds == {"inf"} and len({sign for _, sign in ends}) == 1:
        sign = ends[0][1]
        return mpmath.mpf("inf") * sign, f"infinite (diverges to {'+' if sign > 0 else '-'}inf)"
    if kinds == {"limit"}:
        limits = [val for _, val in ends]
        if all(abs(a - limits[0]) <= 1e-20 * max(1, abs(limits[0])) for a in limits):
            return sum(limits) / len(limits), None  # 0/0 here, but the derivative is not
    return mpmath.mpf("nan"), nan_note


class _Values:
    """The reference values of J's entries at a point (mpmath numbers, 30 correct digits,
    any exponent), with the notes for the entries that are not finite, and the products
    v^T J and J u computed from them."""

    def __init__(
        self,
        rows: Sequence[str],
        cols: Sequence[str],
        undefined: dict[int, str],
        width: int,
        point_subs: dict[Any, Any],
    ) -> None:
        import mpmath

        self.point_subs = point_subs  # SymPy symbol -> exact value, to sum again exactly
        self.mp = mpmath
        self.rows, self.cols, self.width = rows, cols, width
        self.entries: list[dict[int, Any]] = []
        self.notes: list[str] = []
        self.undefined = undefined
        self.exprs: list[dict[int, Any]] = []
        for i in range(len(rows)):
            why = undefined.get(i)
            if why is not None:
                self.notes.append(f"{rows[i]}: {why}, so its row of J is undefined")
                self.entries.append(dict.fromkeys(range(width), mpmath.mpf("nan")))
            else:
                self.entries.append({})
            self.exprs.append({})

    def row_ok(self, i: int) -> bool:
        return i not in self.undefined

    def set(self, i: int, j: int, e: Any, value: tuple[Any, str | None]) -> None:
        val, problem = value
        if problem is None and (val == 0 or 2.0**-1000 < abs(val) < 2.0**1000):
            val = float(val)  # summed in float64 (math.fsum), again exactly where it cancels
        self.entries[i][j] = val
        self.exprs[i][j] = e
        if problem is not None:
            self.notes.append(f"d{self.rows[i]}/d{self.cols[j]} = {_short(e)} is {problem} "
                              "at the point")  # fmt: skip

    def _products(self, weights: Sequence[float], by_column: bool) -> list[Any]:
        """v^T J (by_column) or J u, summed at 40 digits; a sum that cancels to far below
        its terms is summed again by SymPy from the entries' expressions, adaptively."""
        mp = self.mp
        n_out = self.width if by_column else len(self.entries)
        terms: list[list[tuple[Any, float, Any]]] = [[] for _ in range(n_out)]
        for i, row in enumerate(self.entries):
            for j, val in row.items():
                w = weights[i] if by_column else weights[j]
                k = j if by_column else i
                terms[k].append((val, w, self.exprs[i].get(j)))
        out: list[Any] = []
        with mp.workdps(40):
            for col in terms:
                if all(type(val) is float and math.isfinite(val) for val, _, _ in col):
                    # float64 entries (SymEngine's, checked at two precisions): exact sum
                    # of the rounded products; a sum that cancels is summed again exactly
                    prods = [w * val for val, w, _ in col]
                    total = math.fsum(prods)
                    biggest = max((abs(p) for p in prods), default=0.0)
                    if math.isfinite(total) and biggest and abs(total) < 1e-6 * biggest:
                        total = float(self._resum(col, mp.mpf(total)))
                    out.append(total)
                    continue
                total = mp.fsum(mp.mpf(w) * val for val, w, _ in col) if col else mp.mpf(0)
                biggest = max((abs(mp.mpf(w) * val) for val, w, _ in col), default=mp.mpf(0))
                if mp.isfinite(total) and mp.isfinite(biggest) and biggest and \
                        abs(total) < 1e-12 * biggest:  # fmt: skip
                    total = self._resum(col, total)
                out.append(total)
        return out

    def _resum(self, col: list[tuple[Any, float, Any]], total: Any) -> Any:
        """The column's sum as one expression, evaluated to certified digits."""
        if any(e is None for _, _, e in col):
            return total
        exprs = [e for _, _, e in col]
        if isinstance(exprs[0], sp.Basic):
            expr = sp.Add(*[sp.Rational(w) * e for (_, w, _), e in zip(col, exprs, strict=True)])
        else:
            import symengine as se

            expr = se.Add(*[se.Rational(sp.Rational(w).p, sp.Rational(w).q) * e
                            for (_, w, _), e in zip(col, exprs, strict=True)])  # fmt: skip
        try:
            got = exact.value(expr, self.point_subs)
        except exact.Uncertified:
            return total
        return total if got is None else got

    def result(
        self,
        text: tuple[tuple[str, ...], ...],
        pretty: str,
        latex: str,
        nonzeros: int,
        v: Sequence[float] | None,
        u: Sequence[float] | None,
        sparse_text: Any = None,
    ) -> SymbolicResult:
        exact: list[tuple[str, tuple[int, ...], str]] = []

        def flt(val: Any, name: str, index: tuple[int, ...]) -> float:
            f = float(val)
            if math.isinf(f) and not isinstance(val, float) and self.mp.isfinite(val):
                exact.append((name, index, self.mp.nstr(val, DPS)))
            return f

        # nonzeros only; a row undefined at the point is NaN throughout (nan_rows)
        jac_rows = [{} if i in self.undefined else
                    {j: flt(val, "jacobian", (i, j)) for j, val in row.items()}
                    for i, row in enumerate(self.entries)]  # fmt: skip
        jac = sparse.from_rows(jac_rows, self.width, 0.0, self.undefined)
        vjp = jvp = None
        if v is not None:
            vjp = tuple(flt(x, "vjp", (k,)) for k, x in enumerate(self._products(v, True)))
        if u is not None:
            jvp = tuple(flt(x, "jvp", (k,)) for k, x in enumerate(self._products(u, False)))
        return SymbolicResult(text, pretty, latex, nonzeros, tuple(self.rows), tuple(self.cols),
                              jac.view(), vjp, jvp, tuple(self.notes), tuple(exact),
                              sparse_text=sparse_text, sparse_jacobian=jac)  # fmt: skip


def evaluate(
    program: lang.Program,
    shapes: Sequence[Shape],
    point: Sequence[float] | None,
    v: Sequence[float] | None,
    u: Sequence[float] | None,
    engine: str = "sympy",
    tex_cells: bool = False,
) -> SymbolicResult:
    """The symbolic Jacobian of the flattened outputs by the flattened variables and, given a
    point, its values, v^T J and J u (all flat, row-major). `tex_cells`: also SymPy's LaTeX of
    each entry and output element (for --explain and --format)."""
    outputs, symbols, rows, cols, sizes = build(program, shapes, engine)
    if engine == "symengine":
        return _evaluate_symengine(
            program, shapes, point, v, u, outputs, symbols, rows, cols, sizes
        )
    jac = jacobian(outputs, symbols)
    width = len(symbols)
    view = _decimal_view(program)  # for the eye only: the values use the exact rationals
    shown = [{j: view(e) for j, e in row.items()} for row in jac]
    sparse_text = sparse.from_rows([{j: str(e) for j, e in row.items()} for row in shown],
                                   width, "0")  # fmt: skip
    text = sparse_text.view()
    nonzeros = sparse_text.nnz
    size = sum(map(len, sparse_text.values)) + len(rows) * width - nonzeros
    pretty = latex = ""
    tex = None
    # A 2-D layout or LaTeX of a huge matrix costs more than the rest of the run and no one
    # can read it; the entries are still in the JSON output, as text.
    if size <= PRETTY_LIMIT and len(rows) * width <= PRETTY_CELLS:
        dense = [[row.get(j, sp.S.Zero) for j in range(width)] for row in shown]
        matrix = sp.Matrix(dense) if dense else sp.Matrix()
        if len(rows) <= PRETTY_ROWS and width <= PRETTY_COLS:
            pretty = _pretty(matrix)
        latex = sp.latex(matrix)
        if tex_cells:
            from . import explain

            tex = explain.latex_cells(shown, width, symbols, [view(e) for e in outputs])
    if point is None:
        return _cells(SymbolicResult(text, pretty, latex, nonzeros, tuple(rows), tuple(cols),
                                     sparse_text=sparse_text), tex)  # fmt: skip

    ref = _values_at(program, shapes, Built(outputs, symbols, rows, cols, sizes), jac,
                     "sympy", point)  # fmt: skip
    return _cells(ref.result(text, pretty, latex, nonzeros, v, u, sparse_text), tex)


def _cells(result: SymbolicResult, tex: tuple[Any, Any] | None) -> SymbolicResult:
    """`result` with the LaTeX of its entries and outputs (explain.latex_cells), if made."""
    if tex is None:
        return result
    from dataclasses import replace

    return replace(result, entries_latex=tex[0], outputs_latex=tex[1])


def _decimal_view(program: lang.Program) -> Callable[[Any], Any]:
    """How the symbolic Jacobian is shown: where the user wrote decimals (123456789.123456,
    2.5e-3), the rationals with a finite decimal expansion show as decimals again (not as
    1929012330054/15625); exponents stay rationals (sqrt(x) is not x**0.5). Elsewhere as it is."""
    stack = [node for _, node in program.definitions] + list(program.output_exprs)
    decimals = False
    while stack and not decimals:
        n = stack.pop()
        decimals = isinstance(n, lang.Num) and any(c in n.text for c in ".eE")
        stack.extend(lang.children(n))
    if not decimals:
        return lambda e: e

    def view(e: Any) -> Any:
        exponents = {p.exp for p in e.atoms(sp.Pow)}
        reps = {}
        for r in e.atoms(sp.Rational):
            if r.q == 1 or r in exponents:
                continue
            q = int(r.q)
            for prime in (2, 5):
                while q % prime == 0:
                    q //= prime
            if q == 1:
                reps[r] = _as_decimal(r)
        return e.xreplace(reps) if reps else e

    return view


def _as_decimal(r: Any) -> Any:
    """A rational with a finite decimal expansion as a Float printing exactly those digits."""
    from decimal import Decimal, localcontext

    with localcontext() as ctx:
        ctx.prec = 4 * (len(str(r.p)) + len(str(r.q))) + 10
        text = format(Decimal(int(r.p)) / Decimal(int(r.q)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    digits = len(text.replace("-", "").replace(".", "").lstrip("0")) or 1
    return sp.Float(text, max(digits, 1))


def _values_at(
    program: lang.Program,
    shapes: Sequence[Shape],
    built: Built,
    jac: list[Sparse],
    engine: str,
    point: Sequence[float],
) -> _Values:
    """The reference values of J's entries at the point: undefined rows from the exact
    domain walk, every other entry at 30 correct digits."""
    symbols = built.symbols
    undefined = domain.undefined_rows(program, shapes, point, built.sizes)
    # The point's float64 values exactly, as rationals: exact arithmetic where it can be
    # (x/2 + 1 at x = -2 is exactly 0, where Float evaluation leaves 1e-165 of noise).
    values = [sp.Rational(x) for x in point]
    subs = dict(zip(symbols, values, strict=True))

    def value_of(e: Any, j: int) -> tuple[Any, str | None]:
        return _entry_value(e, subs, symbols[j])

    if engine == "symengine":  # big problems: SymEngine's C++ first, certified the same way
        import symengine as se

        memo: dict[Any, tuple[float, int]] = {}
        se_subs = {s: se.Rational(q.p, q.q) for s, q in zip(symbols, values, strict=True)}
        floats = dict(zip(symbols, point, strict=True))

        def value_of(e: Any, j: int) -> tuple[Any, str | None]:
            got = _symengine_certified(e, se_subs, floats, memo)
            return (got, None) if got is not None else _entry_value(e, subs, symbols[j])

    ref = _Values(built.rows, built.cols, undefined, len(symbols), subs)
    for i, row in enumerate(jac):
        if ref.row_ok(i):
            for j, e in row.items():
                ref.set(i, j, e, value_of(e, j))
    return ref


def vjp_at(
    program: lang.Program,
    shapes: Sequence[Shape],
    built: Built,
    jac: list[Sparse],
    engine: str,
    point: Sequence[float],
    v: Sequence[float],
) -> tuple[tuple[float, ...], dict[tuple[int, ...], str]]:
    """v^T J at one point from an already differentiated Jacobian, exactly as the single
    point report computes it (--points falls back to this), with the entries beyond
    float64's range as decimals."""
    result = _values_at(program, shapes, built, jac, engine, point).result((), "", "", 0, v, None)
    assert result.vjp is not None
    return result.vjp, result.beyond("vjp")


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
    built (converting them back costs more than the work itself)."""
    jac = jacobian(outputs, symbols)
    width = len(symbols)
    sparse_text = sparse.from_rows([{j: str(e) for j, e in row.items()} for row in jac],
                                   width, "0")  # fmt: skip
    text = sparse_text.view()
    nonzeros = sparse_text.nnz
    if point is None:
        return SymbolicResult(text, "", "", nonzeros, tuple(rows), tuple(cols),
                              sparse_text=sparse_text)  # fmt: skip
    ref = _values_at(program, shapes, Built(outputs, symbols, rows, cols, sizes), jac,
                     "symengine", point)  # fmt: skip
    return ref.result(text, "", "", nonzeros, v, u, sparse_text)


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


def _short(e: Any) -> str:
    text = str(e)
    return text if len(text) <= 80 else text[:77] + "..."
