"""Second order, the reference side: the Hessian of f (or of v^T f for several outputs), the
Hessian-vector product H u, and each output's own Hessian (--hessians), with 30-digit values.

Only the structurally nonzero second derivatives are formed: the gradient is sparse (the
entries symbolic.gradient gives), and each gradient entry g_j is differentiated only by the
symbols it contains, and only by those at or after x_j (d2f/dx_j dx_k is one expression for
both orders), so a banded Hessian (Broyden's) costs its band, not n^2 expressions.

Values are taken at the point as the user wrote it in decimals (see _At), and follow the
first-order rules (symbolic.py): each entry is certified to 30 digits
(exact.py); where its expression is not finite at the point, its limit along the
differentiating variable decides (symbolic._diverges), which is the derivative only where
the first derivative is continuous along that variable, so that is checked too. Where the
first derivative g_j itself does not exist (|x| or relu at the kink), row j of H does not
either: d/dx_k of something undefined is undefined, whatever the limits of its formula say
(d/dx (x/|x|) = 0 away from 0, yet |x| has no second derivative at 0). H[j, k] and H[k, j]
are then judged apart, and the report says when H is not symmetric at the point.

`judge` compares every torch route (autograd2.py) with the reference and with each other;
it knows no torch: routes arrive as floats.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import sympy as sp

from . import domain, exact, lang, symbolic
from .compare import compare
from .model import Check, Problem, Route, SecondOrder, SecondQuantity, TorchSecond


class Ref(NamedTuple):
    """One quantity's reference: text (matrices only), values, what is wrong where."""

    of: str
    text: tuple[tuple[str, ...], ...] | None
    pretty: str
    latex: str
    values: Any  # Matrix or Vector of floats, or None without a point
    beyond: dict[tuple[int, ...], str]
    symmetric: bool | None
    nonzeros: int
    notes: tuple[str, ...]


class Reference(NamedTuple):
    hessian: Ref | None
    hvp: Ref | None
    hessians: tuple[Ref, ...]


Upper = dict[tuple[int, int], Any]  # (j, k), j <= k -> d2 g / dx_j dx_k, nonzero only


def _dirac_free(e: Any) -> Any:
    """d Heaviside(a) = DiracDelta(a) (relu and max/min twice): 0 where a != 0 and not a
    number where a = 0, written so that exact.py can evaluate it (Heaviside(a, nan) is NaN
    at 0; the two Heavisides cancel everywhere else). For evaluation only: the text keeps
    DiracDelta, which says what it is."""
    if isinstance(e, sp.Basic) and e.has(sp.DiracDelta):
        e = e.replace(sp.DiracDelta, lambda a, *rest: sp.Heaviside(a, sp.nan) - sp.Heaviside(a, 0))
    return e


def second_derivatives(grad: dict[int, Any], symbols: Sequence[Any]) -> Upper:
    """The upper triangle of the Hessian from the sparse gradient: g_j differentiated by
    each symbol x_k (k >= j) it contains; a long sum term by term, as symbolic.gradient."""
    index = {s: k for k, s in enumerate(symbols)}
    out: Upper = {}
    for j, gj in grad.items():
        ks = sorted(index[s] for s in gj.free_symbols if s in index and index[s] >= j)
        if not ks:
            continue
        if gj.is_Add and len(gj.args) > 8:
            add = type(gj)
            terms_of: dict[int, list[Any]] = {}
            for term in gj.args:
                for s in term.free_symbols:
                    k = index.get(s)
                    if k is not None and k >= j:
                        terms_of.setdefault(k, []).append(term)
            raw = {k: add(*[t.diff(symbols[k]) for t in terms_of[k]]) for k in ks}
        else:
            raw = {k: gj.diff(symbols[k]) for k in ks}
        for k, d in raw.items():
            if isinstance(d, sp.Basic):
                d = symbolic._undefined_at_kinks(d)
                if d is sp.S.Zero:
                    continue
            elif d == 0:
                continue
            out[(j, k)] = d
    return out


class _At:
    """Certified values of expressions at one point (SymEngine's MPFR first where it is
    certified, as symbolic._values_at does; else the mpmath walk)."""

    def __init__(self, symbols: Sequence[Any], point: Sequence[float], engine: str) -> None:
        self.symbols = list(symbols)
        # The point as the decimals the user wrote (the shortest decimal that reads back as
        # each float64 coordinate: -1.2, not -1.1999999999999999555910790149937...), so
        # that Rosenbrock's H at (-1.2, 1) is exactly 1330, 480, 200. Torch's point is
        # within half an ulp of it; the tolerance covers that, as it covers torch's rounding.
        values = [sp.Rational(repr(float(x))) for x in point]
        self.subs = dict(zip(symbols, values, strict=True))
        self.engine = engine
        if engine == "symengine":
            import symengine as se

            self.se_subs = {s: se.Rational(q.p, q.q) for s, q in zip(symbols, values, strict=True)}
            self.floats = dict(zip(symbols, point, strict=True))
            self.memo: dict[Any, Any] = {}

    def value(self, e: Any) -> Any:
        """The certified value, None where the expression is not a finite real number;
        raises exact.Uncertified."""
        e = _dirac_free(e)
        if self.engine == "symengine":
            got = symbolic._symengine_certified(e, self.se_subs, self.floats, self.memo)
            if got is not None:
                return got
        return exact.value(e, self.subs)

    def first(self, e: Any, symbol: Any) -> tuple[Any, str | None]:
        """A first derivative's value, as the first-order reference takes it."""
        try:
            got = self.value(e)
        except exact.Uncertified:  # an exact 0 under a kink: the limit, as at first order
            return symbolic._diverges(e, self.subs, symbol)
        if got is not None:
            return got, None
        return symbolic._diverges(e, self.subs, symbol)

    def continuous(self, g: Any, g0: Any, symbol: Any) -> bool:
        """Whether g tends to g0 along `symbol` from each side on which it is defined (at
        2**-150 and 2**-200 of the point, as _diverges reads limits), and is defined on one."""
        x0 = sp.Rational(self.subs[symbol])
        scale = max(sp.Integer(1), abs(x0))
        seen = False
        for side in (1, -1):
            for k in (150, 200):
                point = dict(self.subs)
                point[symbol] = x0 + side * scale * sp.Rational(1, 2**k)
                try:
                    got = exact.value(g, point)
                except exact.Uncertified:
                    return False
                if got is None:
                    break
                if abs(got - g0) > 1e-20 * max(1, abs(g0)):
                    return False
                seen = True
        return seen


def _nan() -> Any:
    import mpmath

    return mpmath.mpf("nan")


def _finite(x: Any) -> bool:
    import mpmath

    return bool(mpmath.isfinite(x))


class _Entries:
    """The Hessian of one scalar g at a point: H[j][k] as mpmath numbers (sparse rows), from
    the upper triangle of expressions and the gradient's values."""

    def __init__(self, at: _At, grad: dict[int, Any], upper: Upper, labels: Sequence[str],
                 undefined: str | None, of: str) -> None:  # fmt: skip
        n = len(labels)
        self.rows: list[dict[int, Any]] = [{} for _ in range(n)]
        self.exprs: list[dict[int, Any]] = [{} for _ in range(n)]
        self.notes: list[str] = []
        self.dead: set[int] = set()  # rows where g_j does not exist: all NaN
        name = f"the Hessian of {of}" if of else "the Hessian"
        if undefined is not None:
            self.dead = set(range(n))
            self.notes.append(f"{name} is undefined: {undefined}")
            self.rows = [dict.fromkeys(range(n), _nan()) for _ in range(n)]
            return
        symbols = at.symbols
        gval: dict[int, Any] = {}
        for j, gj in grad.items():
            val, problem = at.first(gj, symbols[j])
            gval[j] = val
            if not _finite(val):
                self.dead.add(j)
                self.notes.append(f"{name}: d/d{labels[j]} is {problem or 'undefined'} at the "
                                  f"point, so row {labels[j]} of H is undefined")  # fmt: skip
        for (j, k), e in upper.items():
            for a, b in ((j, k), (k, j)):
                self.exprs[a][b] = e
            try:
                got = at.value(e)
            except exact.Uncertified:
                got = _nan()
                self.notes.append(f"{name}: d2/d{labels[j]}d{labels[k]} is not computable to "
                                  "30 digits at the point")  # fmt: skip
            if got is not None:
                if j not in self.dead:
                    self.rows[j][k] = got
                if k not in self.dead:
                    self.rows[k][j] = got
                continue
            # not finite as written: the limit along the differentiating variable
            for a, b in ((j, k), (k, j)) if j != k else ((j, k),):
                if a in self.dead:
                    continue
                val, problem = symbolic._diverges(_dirac_free(e), at.subs, symbols[b])
                g_a = grad.get(a)
                if not math.isnan(float(val)) and (
                    g_a is None or not at.continuous(g_a, gval[a], symbols[b])
                ):
                    val, problem = _nan(), "undefined (d/d" + labels[a] + " is not continuous)"
                self.rows[a][b] = val
                if problem is not None:
                    what = f"{name}: d2/d{labels[a]}d{labels[b]} = {symbolic._short(e)}"
                    self.notes.append(f"{what} is {problem} at the point")
        for j in self.dead:
            self.rows[j] = dict.fromkeys(range(n), _nan())

    def matrix(self, n: int) -> tuple[tuple[tuple[float, ...], ...], dict[tuple[int, ...], str]]:
        beyond: dict[tuple[int, ...], str] = {}
        out = []
        for j, row in enumerate(self.rows):
            frow = [0.0] * n
            for k, val in row.items():
                frow[k] = _float(val, (j, k), beyond)
            out.append(tuple(frow))
        return tuple(out), beyond

    def product(self, u: Sequence[float], at: _At) -> tuple[tuple[float, ...], dict[Any, str]]:
        """H u, summed at 40 digits; a sum that cancels to far below its terms is summed
        again from the entries' expressions, certified (as symbolic._Values does for J u)."""
        import mpmath

        beyond: dict[tuple[int, ...], str] = {}
        out = []
        with mpmath.workdps(40):
            for j, row in enumerate(self.rows):
                terms = [(mpmath.mpf(u[k]) * val, k) for k, val in row.items()]
                total = mpmath.fsum(t for t, _ in terms) if terms else mpmath.mpf(0)
                biggest = max((abs(t) for t, _ in terms), default=mpmath.mpf(0))
                if mpmath.isfinite(total) and mpmath.isfinite(biggest) and biggest and \
                        abs(total) < 1e-12 * biggest and j not in self.dead:  # fmt: skip
                    ks = [k for _, k in terms if k in self.exprs[j]]
                    parts = [_dirac_free(self.exprs[j][k]) for k in ks]
                    sympy_side = all(isinstance(e, sp.Basic) for e in parts)
                    rational = (lambda x: sp.Rational(x)) if sympy_side else _se_rational
                    expr = _add(
                        [rational(u[k]) * e for k, e in zip(ks, parts, strict=True)], sympy_side
                    )
                    try:
                        got = exact.value(expr, at.subs) if expr != 0 else mpmath.mpf(0)
                    except exact.Uncertified:
                        got = None
                    if got is not None:
                        total = got
                out.append(_float(total, (j,), beyond))
        return tuple(out), beyond


def _float(val: Any, index: tuple[int, ...], beyond: dict[tuple[int, ...], str]) -> float:
    f = float(val)
    if math.isinf(f) and not isinstance(val, float) and _finite(val):
        import mpmath

        beyond[index] = mpmath.nstr(val, symbolic.DPS)
    return f


def _text(upper: Upper, n: int, view: Any) -> tuple[tuple[str, ...], ...]:
    cells = [["0"] * n for _ in range(n)]
    for (j, k), e in upper.items():
        cells[j][k] = cells[k][j] = str(view(e))
    return tuple(tuple(r) for r in cells)


def _pretty_latex(upper: Upper, n: int, view: Any, sympy_side: bool) -> tuple[str, str]:
    if not sympy_side or n > symbolic.PRETTY_COLS:
        return "", ""
    dense = [[sp.S.Zero] * n for _ in range(n)]
    for (j, k), e in upper.items():
        dense[j][k] = dense[k][j] = view(e)
    matrix = sp.Matrix(dense)
    return symbolic._pretty(matrix), sp.latex(matrix)


def _symmetric(matrix: Sequence[Sequence[float]]) -> bool:
    n = len(matrix)
    for j in range(n):
        for k in range(j + 1, n):
            a, b = matrix[j][k], matrix[k][j]
            if not (a == b or (math.isnan(a) and math.isnan(b))):
                return False
    return True


def reference(program: lang.Program, problem: Problem) -> Reference:
    """The symbolic second-order quantities the problem asks for, with their values when it
    has a point."""
    built = symbolic.build(program, problem.shapes, problem.engine)
    symbols, n = built.symbols, len(built.symbols)
    sympy_side = problem.engine != "symengine"
    index = {s: k for k, s in enumerate(symbols)}
    view = symbolic._decimal_view(program) if sympy_side else (lambda e: e)
    point = problem.point
    at = _At(symbols, point, problem.engine) if point is not None else None
    undefined = (domain.undefined_rows(program, problem.shapes, point, built.sizes)
                 if point is not None else {})  # fmt: skip
    labels = built.cols

    targets: list[tuple[str, str, Any, str | None]] = []  # (kind, of, g, undefined)
    if problem.hessian or problem.hvp is not None:
        w = problem.v if problem.v is not None else (1.0,) * len(built.exprs)
        g, of = weighted(built, w, sympy_side)
        targets.append(("main", of, g, _undefined_for(built, w, undefined)))
    if problem.hessians:
        for i, (f, row) in enumerate(zip(built.exprs, built.rows, strict=True)):
            targets.append(("each", row, f, undefined.get(i)))

    hess: Ref | None = None
    hvp: Ref | None = None
    each: list[Ref] = []
    for kind, of, g, bad in targets:
        grad = symbolic.gradient(g, index) if not _is_zero(g) else {}
        upper = second_derivatives(grad, symbols)
        nonzeros = sum(1 if j == k else 2 for j, k in upper)
        show_matrix = kind == "each" or problem.hessian
        text = _text(upper, n, view) if show_matrix else None
        pretty, latex = _pretty_latex(upper, n, view, sympy_side) if show_matrix else ("", "")
        if at is None:
            ref = Ref(of, text, pretty, latex, None, {}, None, nonzeros, ())
            if kind == "main":
                hess = ref if problem.hessian else None
            else:
                each.append(ref)
            continue
        entries = _Entries(at, grad, upper, labels, bad, "" if kind == "main" else of)
        notes = tuple(entries.notes)
        if show_matrix:
            matrix, beyond = entries.matrix(n)
            sym_ok = _symmetric(matrix)
            extra = () if sym_ok else (
                f"the Hessian of {of} is not symmetric at the point: a second derivative "
                "does not exist there in one order (see the undefined entries)",)  # fmt: skip
            ref = Ref(of, text, pretty, latex, matrix, beyond, sym_ok, nonzeros, notes + extra)
            if kind == "main":
                hess = ref
            else:
                each.append(ref)
        if kind == "main" and problem.hvp is not None:
            values, beyond = entries.product(problem.hvp, at)
            hvp = Ref(of, None, "", "", values, beyond, None, nonzeros,
                      () if problem.hessian else notes)  # fmt: skip
    return Reference(hess, hvp, tuple(each))


def weighted(built: symbolic.Built, w: Sequence[float], sympy_side: bool) -> tuple[Any, str]:
    """v^T f as one expression (f itself for one output with v = 1), and its name."""
    if len(built.exprs) == 1 and w[0] == 1.0:
        return built.exprs[0], built.rows[0]
    rational = (lambda x: sp.Rational(x)) if sympy_side else _se_rational
    parts = [rational(wi) * f for wi, f in zip(w, built.exprs, strict=True) if wi != 0]
    return _add(parts, sympy_side), "v^T f"


def _undefined_for(built: symbolic.Built, w: Sequence[float], undefined: dict[int, str]
                   ) -> str | None:  # fmt: skip
    """Why v^T f is undefined at the point (an output with a nonzero weight is), or None."""
    bad = [i for i in sorted(undefined) if w[i] != 0]
    return f"{built.rows[bad[0]]}: {undefined[bad[0]]}" if bad else None


class PointHvp:
    """H u at one point after another (--points --hvp), differentiated once per v."""

    def __init__(self, program: lang.Program, problem: Problem) -> None:
        self.program, self.problem = program, problem
        self.built = symbolic.build(program, problem.shapes, problem.engine)
        self.sympy_side = problem.engine != "symengine"
        self.index = {s: k for k, s in enumerate(self.built.symbols)}
        self.cache: dict[tuple[float, ...], tuple[dict[int, Any], Upper]] = {}

    def at(self, point: Sequence[float], v: Sequence[float], u: Sequence[float]
           ) -> tuple[tuple[float, ...], dict[tuple[int, ...], str]]:  # fmt: skip
        key = tuple(v)
        if key not in self.cache:
            if len(self.cache) > 64:
                self.cache.clear()
            g, _ = weighted(self.built, v, self.sympy_side)
            grad = symbolic.gradient(g, self.index) if not _is_zero(g) else {}
            self.cache[key] = (grad, second_derivatives(grad, self.built.symbols))
        grad, upper = self.cache[key]
        p = self.problem
        undefined = domain.undefined_rows(self.program, p.shapes, point, self.built.sizes)
        at = _At(self.built.symbols, point, p.engine)
        entries = _Entries(at, grad, upper, self.built.cols,
                           _undefined_for(self.built, v, undefined), "")  # fmt: skip
        return entries.product(u, at)


def _se_rational(x: float) -> Any:
    import symengine as se

    q = sp.Rational(x)
    return se.Rational(int(q.p), int(q.q))


def _add(parts: Sequence[Any], sympy_side: bool) -> Any:
    """One flat sum (adding one part at a time would rebuild a growing sum each time)."""
    if sympy_side:
        return sp.Add(*parts)
    import symengine as se

    return se.Add(*parts) if parts else se.Integer(0)


def _is_zero(g: Any) -> bool:
    return g == 0


# ---- the verdicts ---------------------------------------------------------------------------


def _differ(a: Any, b: Any, rtol: float, atol: float) -> tuple[tuple[int, ...], str] | None:
    """Where two routes' values differ most (symmetric: NaN against a number, or one
    infinity against another, differs), and by what; None where they agree."""
    from .compare import _flatten

    worst: tuple[tuple[int, ...], str] | None = None
    biggest = -1.0
    for (idx, x), (_, y) in zip(_flatten(a), _flatten(b), strict=True):
        if math.isnan(x) or math.isnan(y) or math.isinf(x) or math.isinf(y):
            if x == y or (math.isnan(x) and math.isnan(y)):
                continue
            if biggest < math.inf:
                worst, biggest = (idx, f"{x:g} against {y:g}"), math.inf
            continue
        gap = abs(x - y)
        if gap > atol + rtol * max(abs(x), abs(y)) and gap > biggest:
            worst, biggest = (idx, f"|diff| = {gap:.3g}"), gap
    return worst


def _aggregate(name: str, checks: Sequence[Check], rtol: float, atol: float) -> Check | None:
    """One verdict over the routes that ran: disagree if any does, else undefined if any is,
    else agree; the largest difference of any route."""
    if not checks:
        return None
    statuses = {c.status for c in checks}
    status = next(s for s in ("disagree", "undefined", "agree") if s in statuses)
    worst = max(checks, key=lambda c: c.max_abs_diff)
    undefined = checks[0].undefined
    return Check(name, status, worst.max_abs_diff, rtol, atol, worst.worst, undefined)


def _entry_name(kind: str, idx: Sequence[int], labels: Sequence[str], outs: Sequence[str]) -> str:
    if kind == "hvp" and len(idx) == 1:
        return f"(H u)[{labels[idx[0]]}]"
    if len(idx) == 2:
        return f"H[{labels[idx[0]]}, {labels[idx[1]]}]"
    if len(idx) == 3:
        return f"H_{outs[idx[0]]}[{labels[idx[1]]}, {labels[idx[2]]}]"
    return "[" + ",".join(map(str, idx)) + "]"


def _quantity(
    kind: str,
    title: str,
    of: str,
    refs: Any,
    beyond: dict[tuple[int, ...], str],
    routes: Sequence[Route],
    problem: Problem,
    labels: Sequence[str],
    outs: Sequence[str],
    template: Ref,
) -> tuple[SecondQuantity, list[str]]:
    """A quantity with each route's check, the verdict, and notes on routes that differ."""
    checks: list[Check] = []
    ran = [r for r in routes if r.error is None and r.values is not None]
    notes: list[str] = []
    for r in routes:
        if r.error is not None:
            notes.append(f"{title}: torch route {r.name} ({r.call}) could not run for this "
                         f"program: {r.error}")  # fmt: skip
    for r in ran:
        checks.append(compare(r.name, refs, r.values, problem.rtol, problem.atol, beyond))
    by_name = {c.name: c for c in checks}
    for a_i, a in enumerate(ran):
        for b in ran[a_i + 1 :]:
            differ = _differ(a.values, b.values, problem.rtol, problem.atol)
            if differ is None:
                continue
            idx, gap = differ
            statuses = {x.name: by_name[x.name].status for x in (a, b)}
            good = [name for name, st in statuses.items() if st == "agree"]
            if len(good) == 1:
                verdict = f"the reference agrees with {good[0]}"
            elif not good and "undefined" in statuses.values():
                verdict = "the reference says the derivative does not exist there"
            else:
                verdict = "the reference agrees with neither"
            notes.append(f"{title}: torch's routes {a.name} and {b.name} differ at "
                         f"{_entry_name(kind, idx, labels, outs)} ({gap}); {verdict}")  # fmt: skip
    if not ran and routes:
        notes.append(f"{title}: no torch route could run, so nothing was compared")
    check = _aggregate(kind, checks, problem.rtol, problem.atol)
    q = SecondQuantity(
        name=kind,
        of=of,
        symbolic=template.text,
        pretty=template.pretty,
        latex=template.latex,
        reference=refs,
        beyond=tuple(sorted(beyond.items())),
        routes=tuple(routes),
        checks=tuple(checks),
        check=check,
        symmetric=template.symmetric,
        nonzeros=template.nonzeros,
        notes=template.notes,
    )
    return q, notes


def judge(
    problem: Problem, ref: Reference, tor: TorchSecond | None, labels: Sequence[str],
    outs: Sequence[str],
) -> tuple[SecondOrder, list[Check]]:  # fmt: skip
    """The second-order part of the report and its verdicts (one Check per quantity, for
    the report's overall status and exit code)."""
    checks: list[Check] = []
    notes: list[str] = []
    hess = hvp = None
    each: list[SecondQuantity] = []
    if ref.hessian is not None:
        routes = tor.hessian if tor is not None else ()
        hess, more = _quantity("hessian", "Hessian", ref.hessian.of, ref.hessian.values,
                               ref.hessian.beyond, routes, problem, labels, outs,
                               ref.hessian)  # fmt: skip
        notes += more
    if ref.hvp is not None:
        routes = tor.hvp if tor is not None else ()
        hvp, more = _quantity("hvp", "H u", ref.hvp.of, ref.hvp.values, ref.hvp.beyond, routes,
                              problem, labels, outs, ref.hvp)  # fmt: skip
        notes += more
    if ref.hessians:
        routes = tor.hessians if tor is not None else ()
        stacked = None
        beyond: dict[tuple[int, ...], str] = {}
        if ref.hessians[0].values is not None:
            stacked = tuple(r.values for r in ref.hessians)
            for i, r in enumerate(ref.hessians):
                beyond.update({(i, *idx): t for idx, t in r.beyond.items()})
        # one quantity over the stack (the routes compute it whole); each output's view
        whole, more = _quantity("hessians", "each output's Hessian", "each output", stacked,
                                beyond, routes, problem, labels, outs, ref.hessians[0])  # fmt: skip
        notes += more
        for i, r in enumerate(ref.hessians):
            per_routes = tuple(
                Route(rt.name, rt.call, rt.values[i] if rt.values is not None else None,
                      rt.error)
                for rt in routes
            )  # fmt: skip
            one, _ = _quantity("hessians", f"Hessian of {r.of}", r.of, r.values,
                               dict(r.beyond), per_routes, problem, labels, outs, r)  # fmt: skip
            each.append(one)
    for q in (hess, hvp):
        if q is not None and q.check is not None:
            checks.append(q.check)
    if ref.hessians and whole.check is not None and stacked is not None:
        checks.append(whole.check)
    second = SecondOrder(
        labels=tuple(labels),
        hessian=hess,
        hvp=hvp,
        hessians=tuple(each),
        u=problem.hvp,
        notes=tuple(notes),
    )
    return second, checks
