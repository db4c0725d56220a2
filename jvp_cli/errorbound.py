"""Error bounds for float64 evaluation: how far a float64 value of an expression can be from
the exact value, as another expression, so that fast float64 code can certify its own result.

`Bounds.bound(e)` gives, for a SymPy or SymEngine expression e, a magnitude expression A(e)
and a count d(e) of roundings such that |fl(e) - e| <= d(e) * u * A(e), where fl(e) is e
evaluated in float64 (compiled or by numpy) at a point whose coordinates are exact float64
numbers and u = 2**-53. These are the classical a-priori bounds of rounding error analysis
(Higham, "Accuracy and Stability of Numerical Algorithms", ch. 3: gamma_n times the
expression evaluated on magnitudes), with each elementary function adding |f'| * A of its
argument and a few units in the last place of its own. They are first order in u: a caller
certifies a value only when the bound is a small fraction of the tolerance, and doubles it
(`SAFETY`), where second-order terms are far below the first.

Operations that are only defined, or only continuous, on one side of a boundary (log of a
positive number, a denominator that is not zero, a kink of Heaviside) record a *margin*:
the expressions the condition reads, with their own bounds. A point is certified only where
every margin is farther from its boundary than its error bound, so that float64 rounding
cannot have moved the point across it; `domain_margins` collects them from the parse tree as
the user wrote it, before SymPy folds anything away (log(x)**0 is still log(x) there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from . import lang

U = 2.0**-53  # unit roundoff of float64
UNDERFLOW = 2.0**-1074  # the absolute error of a rounding whose result is subnormal
FUNC_ROUNDINGS = 8  # libm's and numpy's functions: within 4 ulp, that is 8 u of the result
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
    `parts` are (value, magnitude, roundings) of each expression the condition reads: its
    float64 value is within roundings * u * magnitude of the exact one; `node` is the
    parse-tree node for the
    domain margins (None for margins of a derivative's expression); `domain` says whether a
    certain violation makes the point undefined (parse tree) or only sends it to the exact
    path (derivative expressions, where SymPy's algebra may have introduced it)."""

    kind: str
    parts: tuple[tuple[Any, Any, int], ...]
    node: lang.Node | None = None
    domain: bool = False


class Bounds:
    """Error bounds over one expression library (the sympy or symengine module).

    Each expression e gets a magnitude expression A(e) >= |e| and an integer d(e) such that,
    to first order in the unit roundoff u, |fl(e) - e| <= d(e) * u * A(e) (Higham's gamma_n
    bounds: for sums and products A replaces every value by its magnitude, and d counts the
    roundings on the way; a function f adds |f'| * A(argument) to A and its own few ulps to
    d). A costs about as much to evaluate as e itself, without its transcendental calls
    (compiled with e, they share them), where a bound carried node by node would cost
    several times more."""

    def __init__(self, lib: Any) -> None:
        self.lib = lib
        self.memo: dict[Any, tuple[Any, int]] = {}
        self.margins: list[Margin] = []
        self._seen: set[tuple[str, Any]] = set()

    def _margin(self, kind: str, *exprs: Any) -> None:
        key = (kind, exprs)
        if key in self._seen:
            return
        if all(x.is_Number for x in exprs) and _holds(kind, [float(x) for x in exprs]):
            return
        self._seen.add(key)
        self.margins.append(Margin(kind, tuple(self.part(e) for e in exprs)))

    def part(self, e: Any) -> tuple[Any, Any, int]:
        """(value, magnitude, roundings) of a margin's expression."""
        mag, d = self.bound(e)
        return e, mag, d

    def bound(self, e: Any) -> tuple[Any, int]:
        """(A(e), d(e)): |fl(e) - e| <= d(e) * u * A(e), to first order."""
        hit = self.memo.get(e)
        if hit is not None:
            return hit
        out = self._bound(e)
        self.memo[e] = out
        return out

    def _bound(self, e: Any) -> tuple[Any, int]:
        lib = self.lib
        if e.is_Symbol:
            return lib.Abs(e), 0  # a coordinate of the point or of v: an exact float64
        if e.is_Number or _name(e) in ("Pi", "Exp1", "pi", "E", "NumberSymbol"):
            value = float(e)
            if value != value or value in (float("inf"), float("-inf")):
                raise Uncertifiable("non-finite constant")
            exact = e.is_Integer and abs(int(e)) <= EXACT_INT
            return lib.Float(abs(value)) if not e.is_Integer else lib.Integer(abs(int(e))), (
                0 if exact else 1
            )
        if e.is_Add:
            parts = [self.bound(a) for a in e.args]
            return lib.Add(*[m for m, _ in parts]), max(d for _, d in parts) + len(parts) - 1
        if e.is_Mul:
            parts = [self.bound(a) for a in e.args]
            return lib.Mul(*[m for m, _ in parts]), sum(d for _, d in parts) + len(parts) - 1
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
            return lib.Abs(e), 0  # exact away from the kink, which the margin keeps away
        if name in ("Max", "Min"):
            parts = [self.bound(a) for a in args]
            return lib.Max(*[m for m, _ in parts]), max(d for _, d in parts)
        if name == "atan2":
            y, x = args
            self._margin("atan2", y, x)
            (my, dy), (mx, dx) = self.bound(y), self.bound(x)
            slope = (lib.Abs(x) * my + lib.Abs(y) * mx) / (x**2 + y**2)
            return slope + lib.Abs(e), max(dy, dx, FUNC_ROUNDINGS)
        if len(args) != 1:
            raise Uncertifiable(name)
        a = args[0]
        ma, da = self.bound(a)
        if name == "log":
            self._margin("pos", a)
            slope: Any = ma / lib.Abs(a)
        elif name in ("sin", "cos", "atan", "tanh"):
            slope = ma  # |f'| <= 1
        elif name == "tan":
            slope = (1 + e**2) * ma
        elif name in ("asin", "acos"):
            self._margin("nonneg", 1 - a)
            self._margin("nonneg", 1 + a)
            slope = ma / lib.sqrt(1 - a**2)
        elif name in ("sinh", "cosh"):
            slope = lib.cosh(a) * ma
        elif name == "Abs":
            return ma, da
        else:
            raise Uncertifiable(name)
        return slope + lib.Abs(e), max(da, FUNC_ROUNDINGS)

    def _exp(self, e: Any, a: Any) -> tuple[Any, int]:
        ma, da = self.bound(a)
        return e * (ma + 1), max(da, FUNC_ROUNDINGS)  # exp(a) > 0: |f'| A = e A(a)

    def _pow(self, e: Any, base: Any, p: Any) -> tuple[Any, int]:
        lib = self.lib
        mb, db = self.bound(base)
        if p.is_Integer:
            n = int(p)
            if abs(n) > MAX_COMPILED_EXPONENT:
                raise Uncertifiable("exponent beyond 32 bits")
            k = abs(n)
            rounds = k * db + k + 1  # powi: at most k - 1 products; libm pow: under 1 ulp
            if n > 0:
                return mb**k, rounds
            self._margin("nonzero", base)
            # 1/y with y = base**k: |err| <= err_y/y**2 + u/|y|, so A = A(y)/y**2
            return mb**k / base ** (2 * k), rounds + 1
        if p.is_Number:  # a rational or float exponent: a root
            q = float(p)
            self._margin("nonneg" if q > 0 else "pos", base)
            slope = abs(q) * lib.Abs(base ** (p - 1)) * mb
            return slope + lib.Abs(e), max(db, FUNC_ROUNDINGS)
        self._margin("pos", base)  # base**p = exp(p*log(base))
        mp_, dp = self.bound(p)
        slope = lib.Abs(e) * (lib.Abs(p / base) * mb + lib.Abs(lib.log(base)) * mp_)
        return slope + lib.Abs(e), max(db, dp, FUNC_ROUNDINGS)


def _holds(kind: str, values: list[float]) -> bool:
    """Whether a margin's condition holds for these constant values."""
    a = values[0]
    if kind in ("pos", "base"):
        return a > 0
    if kind == "nonneg":
        return a >= 0
    if kind in ("nonzero", "kink"):
        return a != 0
    return a != 0 or values[1] > 0  # atan2


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

    seen: set[tuple[str, tuple[Any, ...]]] = set()

    def add(kind: str, node: lang.Node, *exprs: Any) -> None:
        if all(x.is_Number for x in exprs) and _holds(kind, [float(x) for x in exprs]):
            return  # x/10: a condition on constants alone, and it holds
        if (kind, exprs) in seen:
            return
        seen.add((kind, exprs))
        found.append(Margin(kind, tuple(bounds.part(x) for x in exprs), node, True))

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


def flatten(margins: Sequence[Margin]) -> list[tuple[Any, Any, int]]:
    """Every (value, magnitude, roundings) of the margins, in order (a compiled function
    outputs the values and magnitudes after v^T J's own)."""
    return [part for m in margins for part in m.parts]
