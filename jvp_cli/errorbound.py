"""Error bounds for float64 evaluation: how far a float64 value of an expression can be from
the exact value, as another expression, so that fast float64 code can certify its own result.

`Bounds.radius(e)` turns a SymPy or SymEngine expression into an expression for an upper
bound r on |fl(e) - e|, where fl(e) is e evaluated in float64 (compiled or by numpy) at a
point whose coordinates are exact float64 numbers. It is running error analysis (Higham,
"Accuracy and Stability of Numerical Algorithms", ch. 3) written as midpoint-radius
arithmetic: every operation adds its own rounding (a few units in the last place of its
result) to the radii of its arguments, propagated by a bound on the local derivative.
It is first order in the radii: a caller certifies a value only when the bound is a small
fraction of the tolerance, and doubles it (see `SAFETY`), where second-order terms are far
below the first.

Operations that are only defined, or only continuous, on one side of a boundary (log of a
positive number, a denominator that is not zero, a kink of Heaviside) record a *margin*:
the boundary's distance as (value, radius) expressions. A point is certified only where
every margin is farther from its boundary than its radius, so that float64 rounding cannot
have moved the point across it; `domain_margins` collects them from the parse tree as the
user wrote it, before SymPy folds anything away (log(x)**0 is still log(x) there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import lang

U = 2.0**-53  # unit roundoff of float64
FUNC_ULPS = 8 * U  # libm and numpy's SIMD functions: within 4 ulp (2 ulp = 4U)
SAFETY = 2.0  # the first-order bound is doubled before it is used
EXACT_INT = 2**53  # integers below this are exact in float64
MAX_COMPILED_EXPONENT = 2**31 - 1  # LLVM's powi takes a 32-bit exponent: larger ones wrap


class Uncertifiable(Exception):
    """An expression node with no error bound here (the caller evaluates it exactly)."""


@dataclass(frozen=True)
class Margin:
    """A boundary condition at one operation, as expressions of the point.

    kind: "pos" (value > 0), "nonneg" (>= 0), "nonzero", "atan2" (y, x: off the origin and
    the branch cut y = 0, x < 0), "kink" (a discontinuity at 0: Heaviside, sign).
    `parts` are (value, radius) expression pairs; `node` is the parse-tree node for the
    domain margins (None for margins of a derivative's expression); `domain` says whether a
    certain violation makes the point undefined (parse tree) or only sends it to the exact
    path (derivative expressions, where SymPy's algebra may have introduced it)."""

    kind: str
    parts: tuple[tuple[Any, Any], ...]
    node: lang.Node | None = None
    domain: bool = False


class Bounds:
    """Radius expressions over one expression library (the sympy or symengine module)."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib
        self.memo: dict[Any, Any] = {}
        self.margins: list[Margin] = []
        self._seen: set[tuple[str, Any]] = set()

    def _margin(self, kind: str, *exprs: Any) -> None:
        key = (kind, exprs)
        if key in self._seen:
            return
        self._seen.add(key)
        self.margins.append(Margin(kind, tuple((e, self.radius(e)) for e in exprs)))

    def _abs(self, e: Any) -> Any:
        return self.lib.Abs(e)

    def radius(self, e: Any) -> Any:
        """A bound on |fl(e) - e| as an expression (0 where float64 evaluates e exactly)."""
        memo = self.memo
        hit = memo.get(e)
        if hit is not None:
            return hit
        r = self._radius(e)
        memo[e] = r
        return r

    def _radius(self, e: Any) -> Any:
        lib = self.lib
        if e.is_Symbol:
            return lib.Integer(0)  # a coordinate of the point or of v: exact float64s
        if e.is_Number or _name(e) in ("Pi", "Exp1", "pi", "E", "NumberSymbol"):
            return self._constant(e)
        if e.is_Add:
            args = e.args
            rs = [self.radius(a) for a in args]
            rounding = (len(args) - 1) * U * lib.Add(*[self._abs(a) for a in args])
            return lib.Add(*rs) + rounding
        if e.is_Mul:
            args = list(e.args)
            rs = [self.radius(a) for a in args]
            terms = []
            for i, r in enumerate(rs):
                if r == 0:
                    continue
                others = lib.Mul(*(args[:i] + args[i + 1 :]))
                terms.append(r * self._abs(others))
            inexact = sum(1 for a in args if not _exact_number(a))
            rounding = max(len(args) - 1, 0) if inexact else 0
            return lib.Add(*terms) + rounding * U * self._abs(e)
        if e.is_Pow:
            base, p = e.args
            if _name(base) in ("Exp1", "E"):  # SymEngine writes exp(a) as E**a
                return self._exp(e, p)
            return self._pow(e, base, p)
        name = _name(e)
        args = e.args
        if name == "exp":
            return self._exp(e, args[0])
        if name in ("Heaviside", "sign"):
            self._margin("kink", args[0])
            return lib.Integer(0)
        if name in ("Max", "Min"):
            return lib.Add(*[self.radius(a) for a in args])
        if name == "atan2":
            y, x = args
            self._margin("atan2", y, x)
            ry, rx = self.radius(y), self.radius(x)
            prop = (self._abs(x) * ry + self._abs(y) * rx) / (x**2 + y**2)
            return prop + FUNC_ULPS * self._abs(e)
        if len(args) != 1:
            raise Uncertifiable(name)
        a = args[0]
        ra = self.radius(a)
        own = FUNC_ULPS * self._abs(e)
        if name == "log":
            self._margin("pos", a)
            return ra / self._abs(a) + own
        if name in ("sin", "cos", "atan", "tanh"):
            return ra + own  # |f'| <= 1
        if name == "tan":
            return (1 + e**2) * ra + own
        if name in ("asin", "acos"):
            self._margin("nonneg", 1 - a)
            self._margin("nonneg", 1 + a)
            return ra / lib.sqrt(1 - a**2) + own
        if name in ("sinh", "cosh"):
            return lib.cosh(a) * ra + own
        if name == "Abs":
            return ra
        raise Uncertifiable(name)

    def _constant(self, e: Any) -> Any:
        lib = self.lib
        if e.is_Integer and abs(int(e)) <= EXACT_INT:
            return lib.Integer(0)
        value = float(e)
        if value != value or value in (float("inf"), float("-inf")):
            raise Uncertifiable("non-finite constant")
        return lib.Float(U * abs(value)) if value else lib.Integer(0)

    def _exp(self, e: Any, a: Any) -> Any:
        return e * (self.radius(a) + FUNC_ULPS)  # exp(a) > 0

    def _pow(self, e: Any, base: Any, p: Any) -> Any:
        lib = self.lib
        rb = self.radius(base)
        if p.is_Integer:
            n = int(p)
            if abs(n) > MAX_COMPILED_EXPONENT:
                raise Uncertifiable("exponent beyond 32 bits")
            if n < 0:
                self._margin("nonzero", base)
            own = (abs(n) + 1) * U * self._abs(e)
            if rb == 0:
                return own
            return abs(n) * self._abs(base ** (n - 1)) * rb + own
        if p.is_Number:  # a rational or float exponent: a root
            q = float(p)
            self._margin("nonneg" if q > 0 else "pos", base)
            own = FUNC_ULPS * self._abs(e)
            if rb == 0:
                return own
            return abs(q) * self._abs(base ** (p - 1)) * rb + own
        self._margin("pos", base)  # base**p = exp(p*log(base))
        rp = self.radius(p)
        prop = self._abs(e) * (self._abs(p / base) * rb + self._abs(lib.log(base)) * rp)
        return prop + FUNC_ULPS * self._abs(e)


def _name(e: Any) -> str:
    return type(e).__name__


def _exact_number(e: Any) -> bool:
    return bool(e.is_Integer and abs(int(e)) <= EXACT_INT)


def domain_margins(program: lang.Program, bounds: Bounds, env: dict[str, Any]) -> list[Margin]:
    """The boundary conditions of every operation in the parse tree that is defined on one
    side only (log, sqrt, asin/acos, division, powers, atan2), as expressions of the
    variables in `env` (symbols of `bounds.lib`), with the parse node each came from. Every
    statement counts: an output that uses an undefined statement is undefined, however its
    value is cancelled later. Scalar programs only (--points)."""
    from . import arrays

    backend: Any = (
        arrays.SymengineBackend() if bounds.lib.__name__ == "symengine" else arrays.SympyBackend()
    )
    lib = bounds.lib
    names: dict[str, Any] = dict(env)
    found: list[Margin] = []

    def add(kind: str, node: lang.Node, *exprs: Any) -> None:
        found.append(Margin(kind, tuple((x, bounds.radius(x)) for x in exprs), node, True))

    def leaf(n: lang.Node) -> Any:
        if isinstance(n, lang.Name):
            return names[n.id]
        return backend.const(0.0, n)

    def combine(n: lang.Node, args: list[Any]) -> Any:
        if isinstance(n, lang.Neg):
            return -args[0]
        if isinstance(n, lang.Chain):
            acc = args[0]
            for (op, _), a in zip(n.rest, args[1:], strict=True):
                if op == "+":
                    acc = acc + a
                elif op == "-":
                    acc = acc - a
                elif op == "*":
                    acc = acc * a
                else:
                    add("nonzero", n, a)
                    acc = acc / a
            return acc
        if isinstance(n, lang.Pow):
            base, p = args
            if p.is_Number and p.is_Integer:
                if int(p) < 0:
                    add("nonzero", n, base)
            elif p.is_Number:
                add("nonneg" if float(p) > 0 else "pos", n, base)
            else:
                add("base", n, base)
            return lib.Pow(base, p)
        if isinstance(n, lang.Call):
            f = n.func
            if f == "log":
                add("pos", n, args[0])
            elif f == "sqrt":
                add("nonneg", n, args[0])
            elif f in ("asin", "acos"):
                add("nonneg", n, 1 - args[0])
                add("nonneg", n, 1 + args[0])
            elif f == "atan2":
                add("atan2", n, args[0], args[1])
            return backend.funcs[f](*args)
        raise Uncertifiable(type(n).__name__)

    for name, node in program.definitions:
        names[name] = lang.fold(node, leaf, combine)
    for name, node in program.computed():
        if name is None:
            lang.fold(node, leaf, combine)
    return found


def flatten(margins: Sequence[Margin]) -> list[tuple[Any, Any]]:
    """Every (value, radius) pair of the margins, in order (what a compiled function
    outputs after the values and their radii)."""
    return [part for m in margins for part in m.parts]
