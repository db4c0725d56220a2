"""Expression trees evaluated in mpmath to a certified number of correct digits.

The reference's values come from here. `value(e, point)` walks a SymPy or SymEngine tree at
`p` bits and, alongside, the magnitude bound of errorbound.py with u = 2**-p: the computed
value is within d * 2**-p * A(e) of the exact one (each mpmath operation is correctly
rounded, or within a few ulps for the elementary functions). Where that bound is not below
2**-RELATIVE of the value, the walk is repeated at four times the precision, up to MAX_PREC
bits; cancellation costs precision, never accuracy. SymPy's evalf and SymEngine's MPFR
evaluation do not track cancellation through every function (evalf of log(1 + x) at x = 1e-80
loses x entirely and says nothing), so neither is trusted for the reference on its own.
mpmath's exponent range is unbounded: exp(1000) is a number, not an overflow.

A value that is not a finite real number (log of a negative, a division by zero, 0/0 of a
kink's derivative) is None; the caller decides what it means.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

START_PREC = 160
MAX_PREC = 40_000  # bits; beyond this a value is not certified (the caller reports why)
RELATIVE = 110  # certified: the error bound is below 2**-110 of the value (33 digits)
ABSOLUTE = 2.0**-400  # ... or below this in absolute terms (a value that is exactly 0)
ROUNDINGS_FUNC = 8  # ulps allowed for an elementary function, as in errorbound


class Uncertified(Exception):
    """No certified value within MAX_PREC bits."""


class _NotReal(Exception):
    pass


class _Retry(Exception):
    """An operand is within its error bound of a boundary (0 for a divisor or log)."""


def value(e: Any, point: Mapping[Any, Any]) -> Any:
    """`e` at `point` (symbol -> exact value: a SymPy Rational or a float) as an mpmath mpf
    with RELATIVE correct bits, or None where it is not a finite real number; raises
    Uncertified where MAX_PREC bits do not suffice."""
    import mpmath

    prec = START_PREC
    while True:
        with mpmath.workprec(prec):
            try:
                v, a, d = _Walk(point, mpmath).run(e)
            except _Retry:
                v = None  # a boundary within rounding (log of 1 + 1e-300 - 1): more bits
            except (_NotReal, ZeroDivisionError):
                return None
            if v is not None:
                if not mpmath.isfinite(v):
                    return None
                bound = d * mpmath.ldexp(a, -prec) * 2  # first order, doubled
                if bound <= abs(v) * mpmath.ldexp(1, -RELATIVE) or bound <= ABSOLUTE:
                    return +v
        prec *= 4
        if prec > MAX_PREC:
            raise Uncertified(f"more than {MAX_PREC} bits would be needed")


class _Walk:
    """One evaluation at the context's precision: (value, magnitude A, roundings d) per
    node, memoized (SymPy and SymEngine trees share sub-expressions)."""

    def __init__(self, point: Mapping[Any, Any], mp: Any) -> None:
        self.mp = mp
        self.point = point
        self.memo: dict[Any, tuple[Any, Any, int]] = {}

    def _near(self, v: Any, a: Any, d: int) -> bool:
        """Whether v could be on the other side of 0 (or be 0) at this precision."""
        return bool(d and a and abs(v) <= 2 * d * self.mp.ldexp(a, -self.mp.mp.prec))

    def _boundary(self, v: Any, a: Any, d: int, what: str) -> Exception:
        return _Retry(what) if self._near(v, a, d) else _NotReal(what)

    def run(self, e: Any) -> tuple[Any, Any, int]:
        hit = self.memo.get(e)
        if hit is None:
            hit = self._node(e)
            self.memo[e] = hit
        return hit

    def _number(self, e: Any) -> tuple[Any, Any, int]:
        mp = self.mp
        if e.is_Integer:
            v = mp.mpf(int(e))
            return v, abs(v), 0
        if e.is_Rational:
            p, q = (int(e.p), int(e.q)) if hasattr(e, "p") else _ratio(e)
            v = mp.mpf(p) / q
            return v, abs(v), 1
        v = mp.mpf(str(e)) if not hasattr(e, "_mpf_") else mp.mpf(e._mpf_)
        return v, abs(v), 1

    def _node(self, e: Any) -> tuple[Any, Any, int]:
        mp = self.mp
        if e.is_Symbol:
            x = self.point[e]
            v = mp.mpf(x.p) / x.q if hasattr(x, "p") else mp.mpf(x)
            return v, abs(v), 0
        name = type(e).__name__
        if name in ("Pi", "pi"):
            return +mp.pi, +mp.pi, 1
        if name in ("Exp1", "E"):
            return +mp.e, +mp.e, 1
        if name in ("NaN", "ComplexInfinity", "Infinity", "NegativeInfinity", "ImaginaryUnit"):
            raise _NotReal(name)
        if e.is_Number:
            return self._number(e)
        if e.is_Add:
            parts = [self.run(a) for a in e.args]
            return (mp.fsum(v for v, _, _ in parts), mp.fsum(a for _, a, _ in parts),
                    max(d for _, _, d in parts) + len(parts) - 1)  # fmt: skip
        if e.is_Mul:
            v, a, d = mp.mpf(1), mp.mpf(1), 0
            for arg in e.args:
                v2, a2, d2 = self.run(arg)
                v, a, d = v * v2, a * a2, d + d2 + 1
            return v, a, d
        if e.is_Pow:
            base, p = e.args
            if type(base).__name__ in ("Exp1", "E"):
                return self._exp(p)
            return self._pow(base, p)
        args = e.args
        if name == "exp":
            return self._exp(args[0])
        if name == "atan2":
            (y, ay, dy), (x, ax, dx) = self.run(args[0]), self.run(args[1])
            if y == 0 and x == 0:
                if self._near(y, ay, dy) or self._near(x, ax, dx):
                    raise _Retry("atan2")
                raise _NotReal("atan2(0, 0)")
            v = mp.atan2(y, x)
            slope = (abs(x) * ay + abs(y) * ax) / (x * x + y * y)
            return v, slope + abs(v), max(dy, dx, ROUNDINGS_FUNC)
        if name in ("Max", "Min"):
            parts = [self.run(a) for a in args]
            pick = max if name == "Max" else min
            v = pick(v for v, _, _ in parts)
            return v, max(a for _, a, _ in parts), max(d for _, _, d in parts)
        if name in ("Heaviside", "sign"):
            a, _, _ = self.run(args[0])
            if a == 0:
                if name == "sign":
                    return mp.mpf(0), mp.mpf(0), 0
                h0 = self.run(args[1])[0] if len(args) > 1 else mp.mpf(0.5)
                return h0, abs(h0), 0
            v = mp.mpf(1) if a > 0 else (mp.mpf(0) if name == "Heaviside" else mp.mpf(-1))
            return v, abs(v), 0
        if len(args) != 1:
            raise _NotReal(name)
        a, aa, da = self.run(args[0])
        if name == "Abs":
            return abs(a), aa, da
        if name == "log":
            if a <= 0:
                raise self._boundary(a, aa, da, "log")
            v = mp.log(a)
            return v, aa / abs(a) + abs(v), max(da, ROUNDINGS_FUNC)
        funcs = {"sin": mp.sin, "cos": mp.cos, "tan": mp.tan, "atan": mp.atan, "tanh": mp.tanh,
                 "sinh": mp.sinh, "cosh": mp.cosh, "asin": mp.asin, "acos": mp.acos}  # fmt: skip
        f = funcs.get(name)
        if f is None:
            raise _NotReal(name)
        if name in ("asin", "acos") and abs(a) > 1:
            raise self._boundary(abs(a) - 1, aa, da, name)
        v = f(a)
        if name == "tan":
            slope = (1 + v * v) * aa
        elif name in ("sinh", "cosh"):
            slope = mp.cosh(a) * aa
        elif name in ("asin", "acos"):
            slope = aa / mp.sqrt(1 - a * a) if abs(a) < 1 else mp.inf
        else:
            slope = aa
        return v, slope + abs(v), max(da, ROUNDINGS_FUNC)

    def _exp(self, p: Any) -> tuple[Any, Any, int]:
        mp = self.mp
        a, aa, da = self.run(p)
        v = mp.exp(a)
        return v, v * (aa + 1), max(da, ROUNDINGS_FUNC)

    def _pow(self, base: Any, p: Any) -> tuple[Any, Any, int]:
        mp = self.mp
        b, ab, db = self.run(base)
        if p.is_Integer:
            n = int(p)
            k = abs(n)
            if n < 0 and b == 0:
                raise _Retry("1/0") if self._near(b, ab, db) else ZeroDivisionError
            v = b**n
            if n > 0:
                return v, ab**k, k * db + k + 1
            return v, ab**k / b ** (2 * k), k * db + k + 2
        q, aq, dq = self.run(p)
        if b < 0 or (b == 0 and q < 0):
            raise self._boundary(b, ab, db, "power")
        if b == 0:
            return mp.mpf(0), mp.mpf(0), 0
        v = mp.power(b, q)
        if p.is_Number:
            slope = abs(q) * abs(mp.power(b, q - 1)) * ab
            return v, slope + abs(v), max(db, ROUNDINGS_FUNC)
        slope = abs(v) * (abs(q / b) * ab + abs(mp.log(b)) * aq)
        return v, slope + abs(v), max(db, dq, ROUNDINGS_FUNC)


def _ratio(e: Any) -> tuple[int, int]:
    """Numerator and denominator of a SymEngine Rational."""
    num, den = e.get_num_den()
    return int(num), int(den)


def magnitude(e: Any, point: Mapping[Any, float], memo: dict[Any, Any]) -> tuple[float, int]:
    """(A, d) of errorbound.py's bound for `e` at `point`, as float64 numbers: a p-bit
    evaluation of e with correctly rounded operations (SymEngine's MPFR) errs by at most
    d * 2**-p * A. `memo` is shared by the entries of one point. inf where it cannot say."""
    import math

    try:
        _, a, d = _floats(e, point, memo)
    except (OverflowError, ValueError, ZeroDivisionError):
        return math.inf, 0
    return a, d


_FLOAT_FUNCS = ("sin", "cos", "atan", "tanh", "exp", "log")


def _floats(e: Any, point: Mapping[Any, float], memo: dict[Any, Any]) -> tuple[float, float, int]:
    """(value, A, d) in float64, memoized."""
    hit = memo.get(e)
    if hit is not None:
        return hit  # type: ignore[no-any-return]
    import math

    def sub(x: Any) -> tuple[float, float, int]:
        return _floats(x, point, memo)

    out: tuple[float, float, int]
    name = type(e).__name__
    if e.is_Symbol:
        v = point[e]
        out = v, abs(v), 0
    elif e.is_Number or name in ("Pi", "Exp1", "pi", "E"):
        v = float(e)
        out = v, abs(v), 0 if e.is_Integer else 1
    elif e.is_Add:
        parts = [sub(a) for a in e.args]
        out = (math.fsum(v for v, _, _ in parts), math.fsum(a for _, a, _ in parts),
               max(d for _, _, d in parts) + len(parts) - 1)  # fmt: skip
    elif e.is_Mul:
        v, a, d = 1.0, 1.0, 0
        for arg in e.args:
            v2, a2, d2 = sub(arg)
            v, a, d = v * v2, a * a2, d + d2 + 1
        out = v, a, d
    elif e.is_Pow:
        base, p = e.args
        if type(base).__name__ in ("Exp1", "E"):
            x, a, d = sub(p)
            v = math.exp(x)
            out = v, v * (a + 1), max(d, ROUNDINGS_FUNC)
        else:
            b, ab, db = sub(base)
            if p.is_Integer:
                n = int(p)
                k = abs(n)
                v = b**n
                out = (v, ab**k, k * db + k + 1) if n > 0 else (v, ab**k / b ** (2 * k),
                                                                k * db + k + 2)  # fmt: skip
            else:
                q, aq, dq = sub(p)
                v = b**q
                if isinstance(v, complex) or b <= 0:
                    raise ValueError("power")
                out = v, abs(v) * (abs(q / b) * ab + abs(math.log(b)) * aq) + abs(v), max(
                    db, dq, ROUNDINGS_FUNC)  # fmt: skip
    elif name == "Abs":
        x, a, d = sub(e.args[0])
        out = abs(x), a, d
    elif name in _FLOAT_FUNCS and len(e.args) == 1:
        x, a, d = sub(e.args[0])
        f = getattr(math, name)
        v = f(x)
        slope = a / abs(x) if name == "log" else (abs(v) * a if name == "exp" else a)
        out = v, slope + abs(v), max(d, ROUNDINGS_FUNC)
    else:
        raise ValueError(name)  # atan2, Heaviside, tan, asin ...: the exact walk decides
    memo[e] = out
    return out
