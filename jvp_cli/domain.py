"""Where the functions are defined at a point, decided exactly, and where torch's dtype
overflows there.

`undefined_rows` walks the parse tree as the user wrote it (before SymPy folds anything:
log(x)**0 is still log(x) here) and finds every sub-expression outside its real domain
(log(-1), asin(2)), at a pole (1/0, log(0)), or where the function is not continuous
(atan2 at the origin or on its branch cut). A statement that uses an undefined one is
undefined, however the value is cancelled later (a - a, 0*a, a**0). A float64 overflow is
not "undefined": the decision is made with an unbounded exponent range.

Two ways, one verdict: a float64 walk that carries a bound on its own rounding error
(midpoint-radius, as errorbound.py does for compiled code) decides every condition it can
prove from float64 values; a point where a value overflows float64 or a condition is within
its error bound of the boundary is decided by an mpmath walk at 200 bits with unbounded
exponents. The mpmath walk refuses values whose size alone is a resource problem
(exp(exp(exp(x)))), with its own message: that is a limit, not "undefined".

`overflow_note` says which sub-expression overflows torch's dtype (float64 or float32) at the
point, and the stable form to use where there is one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from . import arrays, lang
from .model import LimitError
from .shapes import Shape

U = 2.0**-53
FUNC_ERR = 8 * U  # libm functions: within 4 ulp
UNDERFLOW = 8 * 2.0**-1074  # the absolute error of an operation whose result is subnormal
PREC = 200  # bits of the exact walk
CONFIRM_PREC = 4000  # bits at which an undefined verdict is confirmed
MAX_EXP_ARG = 1e7  # exp/sinh/cosh arguments beyond this make numbers too large to compute
MAX_TRIG_LOG10 = 10_000  # sin/cos/tan arguments beyond 10**this need too many digits of pi


class _Unsure(Exception):
    """The float64 walk cannot prove the verdict at this node: the exact walk decides."""


def undefined_rows(
    program: lang.Program, shapes: Sequence[Shape], point: Sequence[float], sizes: Sequence[int]
) -> dict[int, str]:
    """Rows of J (flat output elements) whose function is undefined at the point, with why;
    `sizes` is how many rows each output has."""
    inputs = _inputs(program, shapes, point)
    results: list[Any] | None = None
    if not program.tensor_ops and not any(shapes):
        try:
            results = _run(program, _Balls({k: float(v) for k, v in inputs.items()}))
        except _Unsure:
            results = None
    if results is None:
        results = _exact(program, inputs)
    bad: dict[int, str] = {}
    row = 0
    for result, n in zip(results, sizes, strict=True):
        if isinstance(result, arrays.Undefined):
            for r in range(row, row + n):
                bad[r] = result.explain()
        row += n
    return bad


def _inputs(
    program: lang.Program, shapes: Sequence[Shape], point: Sequence[float]
) -> dict[str, np.ndarray]:
    inputs: dict[str, np.ndarray] = {}
    k = 0
    for name, shape in zip(program.variables, shapes, strict=True):
        n = math.prod(shape)
        inputs[name] = np.asarray(point[k : k + n], dtype=np.float64).reshape(shape)
        k += n
    return inputs


def _run(program: lang.Program, ev: Any) -> list[Any]:
    """Each output's value, or the first Undefined it depends on. `ev.run(node)` raises
    arrays._Found at an undefined sub-expression; `ev.env` holds the statements' values."""
    broken: dict[str, arrays.Undefined] = {}

    def upstream(node: lang.Node) -> arrays.Undefined | None:
        if not broken:
            return None
        return next((broken[nm] for nm, _ in lang.names_in(node) if nm in broken), None)

    for name, node in program.definitions:
        bad = upstream(node)
        if bad is None:
            try:
                ev.env[name] = ev.run(node)
                continue
            except arrays._Found as found:
                bad = found.undefined
        broken[name] = bad
    out: list[Any] = []
    for defined, node in program.computed():
        if defined is not None:
            out.append(broken.get(defined, ev.env.get(defined)))
            continue
        bad = upstream(node)
        if bad is not None:
            out.append(bad)
            continue
        try:
            out.append(ev.run(node))
        except arrays._Found as found:
            out.append(found.undefined)
    return out


# ---- the float64 walk with error bounds (scalar programs) ---------------------------------

Ball = tuple[float, float, bool]  # value, bound on its error, whether it is a constant


class _Balls:
    """A scalar program in Python floats, each value with a bound on its rounding error."""

    def __init__(self, env: dict[str, float]) -> None:
        self.env: dict[str, Any] = {k: (v, 0.0, False) for k, v in env.items()}

    def run(self, node: lang.Node) -> Ball:
        try:
            result = lang.fold(node, self._leaf, self._combine)
        except (OverflowError, ZeroDivisionError, ValueError) as exc:
            raise _Unsure() from exc
        assert isinstance(result, tuple)
        return result  # type: ignore[return-value]

    def _leaf(self, n: lang.Node) -> Ball:
        if isinstance(n, lang.Name):
            return self.env[n.id]  # type: ignore[no-any-return]
        if isinstance(n, lang.Const):
            v = math.pi if n.id == "pi" else math.e
            return v, U * v, True
        assert isinstance(n, lang.Num)
        v = float(n.value)
        exact = isinstance(n.value, int) and abs(n.value) <= 2**53
        exact = exact or Fraction(v) == n.exact()
        return v, 0.0 if exact else U * abs(v), True

    def _combine(self, n: lang.Node, args: list[Ball]) -> Ball:
        const = all(a[2] for a in args)
        v, r = self._value(n, args)
        r += UNDERFLOW  # a relative bound says nothing of a result that underflowed to 0
        if not (math.isfinite(v) and math.isfinite(r)):
            raise _Unsure()  # beyond float64: the exact walk decides
        return v, r, const

    @staticmethod
    def _found(n: lang.Node, reason: str = "domain") -> arrays._Found:
        return arrays._Found(arrays.Undefined(n, reason))

    def _require(self, n: lang.Node, kind: str, a: float, ra: float) -> None:
        """Raise Undefined where the condition certainly fails, _Unsure where rounding
        could decide it either way."""
        ra *= 2.0  # first order: doubled
        if kind == "pos":
            ok, bad, why = a - ra > 0, a + ra <= 0, "pole" if a == 0 and ra == 0 else "domain"
        elif kind == "nonneg":
            ok, bad, why = a - ra >= 0, a + ra < 0, "domain"
        else:  # nonzero
            ok, bad, why = abs(a) - ra > 0, a == 0 and ra == 0, "pole"
        if bad:
            raise self._found(n, why)
        if not ok:
            raise _Unsure()

    def _value(self, n: lang.Node, args: list[Ball]) -> tuple[float, float]:
        if isinstance(n, lang.Neg):
            return -args[0][0], args[0][1]
        if isinstance(n, lang.Chain):
            v, r = args[0][0], args[0][1]
            for (op, _), (a, ra, _c) in zip(n.rest, args[1:], strict=True):
                if op in "+-":
                    v = v + a if op == "+" else v - a
                    r = r + ra + U * abs(v)
                elif op == "*":
                    r = abs(v) * ra + abs(a) * r
                    v = v * a
                    r += U * abs(v)
                else:
                    self._require(n, "nonzero", a, ra)
                    v = v / a
                    r = (r + abs(v) * ra) / abs(a) + U * abs(v)
            return v, r
        if isinstance(n, lang.Pow):
            (b, rb, _), (p, rp, pconst) = args
            if pconst and rp == 0 and p == int(p):
                k = int(p)
                if k < 0:
                    self._require(n, "nonzero", b, rb)
                v = b**k
                r = (abs(k) + 1) * U * abs(v)
                if rb:
                    r += abs(k) * abs(b) ** (k - 1) * rb
                return float(v), r
            if pconst and rp == 0:
                self._require(n, "nonneg" if p > 0 else "pos", b, rb)
                v = b**p
                r = FUNC_ERR * abs(v)
                if rb:
                    r += abs(p) * abs(b) ** (p - 1) * rb
                return float(v), r
            if not (b - 2 * rb > 0):
                raise _Unsure()  # a variable exponent: real only for a positive base
            v = b**p
            return float(v), abs(v) * (abs(p / b) * rb + abs(math.log(b)) * rp) + FUNC_ERR * abs(v)
        assert isinstance(n, lang.Call), n
        f = n.func
        if f == "atan2":
            (y, ry, _), (x, rx, _) = args
            if y == 0 and ry == 0 and x + 2 * rx <= 0:
                raise self._found(n, "origin" if x == 0 and rx == 0 else "cut")
            if not (abs(y) - 2 * ry > 0 or x - 2 * rx > 0):
                raise _Unsure()
            v = math.atan2(y, x)
            return v, (abs(x) * ry + abs(y) * rx) / (x * x + y * y) + FUNC_ERR * abs(v)
        a, ra, _ = args[0]
        if f == "log":
            self._require(n, "pos", a, ra)
        elif f == "sqrt":
            self._require(n, "nonneg", a, ra)
        elif f in ("asin", "acos"):
            self._require(n, "nonneg", 1 - a, ra + U)
            self._require(n, "nonneg", 1 + a, ra + U)
        value = lang.const_eval_node(n, [a])
        if value is None:
            raise _Unsure()
        v = value
        own = FUNC_ERR * abs(v)
        if f == "exp":
            return v, v * ra + own
        if f == "log":
            return v, ra / a + own
        if f == "sqrt":
            return v, (ra / (2 * v) if ra else 0.0) + own
        if f in ("asin", "acos"):
            return v, ra / math.sqrt(max(1 - a * a, 0.0)) + own if ra else own
        if f == "tan":
            return v, (1 + v * v) * ra + own
        if f in ("sinh", "cosh"):
            return v, math.cosh(a) * ra + own
        if f == "sigmoid":
            return v, 0.25 * ra + own
        # sin, cos, atan, tanh, abs, relu, softplus: |f'| <= 1
        return v, ra + own


# ---- the exact walk (mpmath, unbounded exponents) -----------------------------------------


class _TooBig(Exception):
    def __init__(self, what: str) -> None:
        self.what = what


def _mp_funcs() -> dict[str, Callable[..., Any]]:
    import mpmath

    mpf, nan = mpmath.mpf, mpmath.mpf("nan")

    def guard_exp(a: Any) -> None:
        if abs(a) > MAX_EXP_ARG:
            raise _TooBig(f"exp of {mpmath.nstr(a, 3)}")

    def guard_trig(a: Any) -> None:
        if a != 0 and mpmath.log10(abs(a)) > MAX_TRIG_LOG10:
            raise _TooBig(f"a trigonometric function of {mpmath.nstr(a, 3)}")

    def real(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def g(a: Any) -> Any:
            out = f(a)
            return out if isinstance(out, mpmath.mpf) else nan

        return g

    def exp(a: Any) -> Any:
        guard_exp(a)
        return mpmath.exp(a)

    def trig(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def g(a: Any) -> Any:
            guard_trig(a)
            return f(a)

        return g

    def hyper(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def g(a: Any) -> Any:
            guard_exp(a)
            return f(a)

        return g

    def log(a: Any) -> Any:
        if a == 0:
            return mpf("-inf")
        return nan if a < 0 else mpmath.log(a)

    def atan2(y: Any, x: Any) -> Any:
        return mpmath.atan2(y, x)

    return {
        "sin": trig(mpmath.sin), "cos": trig(mpmath.cos), "tan": trig(mpmath.tan),
        "asin": real(lambda a: mpmath.asin(a) if abs(a) <= 1 else nan),
        "acos": real(lambda a: mpmath.acos(a) if abs(a) <= 1 else nan),
        "atan": mpmath.atan, "sinh": hyper(mpmath.sinh), "cosh": hyper(mpmath.cosh),
        "tanh": mpmath.tanh, "exp": exp, "log": log,
        "sqrt": real(lambda a: mpmath.sqrt(a) if a >= 0 else nan), "abs": abs,
        "sigmoid": lambda a: 1 / (1 + exp(-a)) if a > -MAX_EXP_ARG else mpf(0),
        "relu": lambda a: a if a > 0 else mpf(0),
        "softplus": lambda a: mpmath.log1p(exp(a)) if a < MAX_EXP_ARG else a,
        "atan2": atan2,
    }  # fmt: skip


class _MpBackend(arrays.Backend):
    """Object arrays of mpmath numbers: exact decisions, unbounded exponents."""

    dtype = object

    def __init__(self) -> None:
        import mpmath

        self.mp = mpmath
        self.funcs = _mp_funcs()
        self._ufuncs = {name: np.frompyfunc(f, 2 if name == "atan2" else 1, 1)
                        for name, f in self.funcs.items()}  # fmt: skip

    def const(self, value: float | int, node: lang.Node) -> Any:
        mp = self.mp
        if isinstance(node, lang.Const):
            return +mp.pi if node.id == "pi" else +mp.e
        assert isinstance(node, lang.Num)
        q = node.exact()
        return mp.mpf(q.numerator) / q.denominator

    def elementwise(self, name: str, *args: np.ndarray) -> np.ndarray:
        return arrays._obj(self._ufuncs[name](*args))

    def _nary(self, fn: Callable[[Any, Any], Any], arrs: Sequence[np.ndarray]) -> np.ndarray:
        out = arrs[0]
        for a in arrs[1:]:
            out = np.frompyfunc(fn, 2, 1)(out, a)
        return arrays._obj(out)

    def add_n(self, arrs: Sequence[np.ndarray]) -> np.ndarray:
        return self._nary(lambda a, b: a + b, arrs)

    def mul_n(self, arrs: Sequence[np.ndarray]) -> np.ndarray:
        return self._nary(lambda a, b: a * b, arrs)

    def divide(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        nan, inf = self.mp.mpf("nan"), self.mp.mpf("inf")

        def div(x: Any, y: Any) -> Any:
            if y == 0:
                return nan if x == 0 else inf
            return x / y

        return self._nary(div, [a, b])

    def power(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        mp = self.mp

        def pw(x: Any, y: Any) -> Any:
            if x == 0:
                return mp.mpf("inf") if y < 0 else (mp.mpf(1) if y == 0 else mp.mpf(0))
            if x < 0 and y != int(y):
                return mp.mpf("nan")
            if abs(y * mp.log(abs(x))) > MAX_EXP_ARG:
                raise _TooBig(f"a power of size about exp({mp.nstr(y * mp.log(abs(x)), 3)})")
            return x**y

        return self._nary(pw, [a, b])

    def reduce(self, kind: str, a: np.ndarray, axis: int | None) -> np.ndarray:
        def total(xs: list[Any]) -> Any:
            s = self.mp.mpf(0)
            for x in xs:
                s += x
            return s

        def product(xs: list[Any]) -> Any:
            p = self.mp.mpf(1)
            for x in xs:
                p *= x
            return p

        fns: dict[str, Callable[[list[Any]], Any]] = {"sum": total, "prod": product, "max": max,
                                                       "min": min}  # fmt: skip
        return arrays._along(a, axis, fns[kind])

    def after(self, node: lang.Node, value: np.ndarray, args: list[np.ndarray]) -> None:
        mp = self.mp
        if isinstance(node, lang.Call) and node.func == "atan2":
            y, x = np.broadcast_arrays(*args)
            for yy, xx in zip(y.flat, x.flat, strict=True):
                if yy == 0 and xx <= 0:
                    raise arrays._Found(arrays.Undefined(node, "origin" if xx == 0 else "cut"))
        finite = all(mp.isfinite(v) for v in value.flat)
        if finite:
            return
        if not all(mp.isfinite(v) for a in args for v in a.flat):
            return  # reported where it first appeared
        nan = any(mp.isnan(v) for v in value.flat)
        raise arrays._Found(arrays.Undefined(node, "domain" if nan else "pole"))


class _MpEvaluator(arrays.Evaluator):
    def combine(self, n: lang.Node, args: list[np.ndarray]) -> np.ndarray:
        try:
            return super().combine(n, args)
        except _TooBig as big:
            text = lang.unparse(n)
            text = text if len(text) <= 60 else text[:57] + "..."
            raise LimitError(
                f"{text} at the point needs {big.what}: a number too large for the 30-digit "
                "reference to compute",
                where="--at",
                fix="choose a point where the functions stay below about 10**(4e6)",
            ) from None


def _exact(program: lang.Program, inputs: dict[str, np.ndarray]) -> list[Any]:
    """The exact walk at PREC bits; where it finds a point undefined, the verdict is taken
    again at CONFIRM_PREC bits (a boundary within rounding at PREC, as log((1 + x) - 1) at
    x = 1e-80 is, moves off it)."""
    results = _exact_at(program, inputs, PREC)
    if any(isinstance(r, arrays.Undefined) for r in results):
        results = _exact_at(program, inputs, CONFIRM_PREC)
    return results


def _exact_at(program: lang.Program, inputs: dict[str, np.ndarray], prec: int) -> list[Any]:
    import mpmath

    with mpmath.workprec(prec):
        backend = _MpBackend()
        env = {}
        for name, arr in inputs.items():
            obj = np.empty(arr.shape, dtype=object)
            for idx in np.ndindex(arr.shape):
                obj[idx] = mpmath.mpf(float(arr[idx]))
            env[name] = obj
        return _run(program, _MpEvaluator(backend, env))


# ---- overflow in torch's dtype -------------------------------------------------------------

_STABLE = {
    "softplus": "softplus(u) computes log(1 + exp(u)) without overflow",
    "logsumexp": "logsumexp(z) computes log(sum(exp(z))) without overflow",
    "softmax": "softmax(z) computes exp(z)/sum(exp(z)) without overflow",
}


def overflow_note(
    program: lang.Program, shapes: Sequence[Shape], point: Sequence[float], dtype: str
) -> str | None:
    """Which sub-expression first overflows `dtype` at the point (what torch computes in),
    with the stable form to use where the language has one; None where nothing overflows."""
    np_dtype = np.float32 if dtype == "float32" else np.float64
    inputs = {k: v.astype(np_dtype) for k, v in _inputs(program, shapes, point).items()}
    ev = arrays.Evaluator(_Overflow(np_dtype), inputs)
    with np.errstate(all="ignore"):
        try:
            _run(program, ev)
        except arrays._Found as found:  # pragma: no cover - _run catches these
            del found
    hit = ev.b.first  # type: ignore[attr-defined]
    if hit is None:
        return None
    text = lang.unparse(hit)
    text = text if len(text) <= 60 else text[:57] + "..."
    limit = "3.4e38" if dtype == "float32" else "1.8e308"
    note = f"torch: {text} overflows {dtype} (beyond {limit}) at the point"
    hint = _stable_form(program, hit)
    return f"{note}; {hint}" if hint else note


def _stable_form(program: lang.Program, hit: lang.Node) -> str | None:
    """A stable rewrite for the usual overflowing patterns: log(1 + exp(u)), log(sum(exp(z))),
    exp(z)/sum(exp(z))."""
    nodes = [node for _, node in program.definitions] + list(program.output_exprs)
    parents: list[lang.Node] = []
    stack = list(nodes)
    while stack:
        n = stack.pop()
        kids = lang.children(n)
        if any(k is hit for k in kids):
            parents.append(n)
        stack.extend(kids)
    for p in parents:
        if isinstance(p, lang.Chain) and p.kind == "add":
            return f"write it as softplus(...): {_STABLE['softplus']}"
        if isinstance(p, lang.Call) and p.func == "sum":
            return f"use logsumexp or softmax: {_STABLE['logsumexp']}"
        if (
            isinstance(p, lang.Chain)
            and p.kind == "mul"
            and any(op == "/" and isinstance(k, lang.Call) and k.func == "sum" for op, k in p.rest)
        ):
            return f"use softmax: {_STABLE['softmax']}"
    if isinstance(hit, lang.Call) and hit.func == "exp":
        return "rewrite the formula so that exp never sees large arguments"
    return None


class _Overflow(arrays.FloatBackend):
    """A float walk in torch's dtype that notes the first overflowing node and goes on."""

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype
        self.first: lang.Node | None = None

    def const(self, value: float | int, node: lang.Node) -> Any:
        return self.dtype(value)

    def elementwise(self, name: str, *args: np.ndarray) -> np.ndarray:
        return np.asarray(self._funcs[name](*args), dtype=self.dtype)

    def after(self, node: lang.Node, value: np.ndarray, args: list[np.ndarray]) -> None:
        if self.first is not None or np.all(np.isfinite(value)):
            return
        if all(np.all(np.isfinite(a)) for a in args) and not np.any(np.isnan(value)):
            if not arrays._is_pole(node, args):
                self.first = node
