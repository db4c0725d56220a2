"""A third evaluator, for the tests only: the parse tree evaluated directly with mpmath.

It shares nothing with the engines (symbolic.py, autograd.py, arrays.py, numeric.py): only
`jvp_cli.lang`'s tree is read. Results carry 50 significant digits, with mpmath's unbounded
exponent range, so exp(1000) is an ordinary finite number here. Decimal literals are taken
from their text, point values are float64s converted exactly.

The tree is evaluated as written (log(1+exp(x)) is not rewritten to softplus), so the working
precision adapts per point: each evaluation records the bits its additions absorb or cancel
and the magnitude exp and sin/cos/tan amplify, and is repeated at a precision that covers
them (up to 16,000 bits). log(1 + exp(-700)) therefore keeps its 1e-304, and 1 - softmax(z)[0]
at z = [1000, 2, 3] its 1e-433.

Any sub-expression that leaves the real domain raises `Undefined` (log of <= 0, sqrt of < 0,
asin/acos outside [-1, 1], division by 0, 0**negative, negative**non-integer, atan2 at the
origin or on its branch cut y = 0, x < 0), whatever happens to the value later: `a - a`,
`log(x)**0`, `1**log(x)` and `0*log(x)` are undefined wherever log(x) is. Statements are
evaluated on demand, so only the statements an output depends on matter.

Derivatives are central differences by `mpmath.diff`, with a step 2**-(prec+10) relative to
|x| (absolute at 0) and function values at (prec + 200) * 2 bits, so a difference keeps the
50 digits. They are taken only after the point itself has been evaluated in strict mode, where
a kink (abs, relu or sqrt at 0, a tie in max/min) raises `Undefined` too: there no two-sided
derivative exists, and a symmetric difference would invent one.

Tensors: 1-D only (lists of mpf), element-wise functions and + - * / ** with scalar
broadcasting, integer indexing, sum, mean, prod, max, min, logsumexp, softmax, norm and dot
over the whole vector. `@`, `.T`, slices and reshape raise NotImplementedError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import mpmath
from mpmath import mp, mpf

from jvp_cli import lang

DPS = 50
BASE_BITS = 170  # DPS digits, in bits
MAX_BITS = 16_000  # the most precision an evaluation may ask for
ADDPREC = 100  # extra bits for mpmath.diff: differences are taken at (prec + 200) * 2 bits

Value = mpf | list  # a scalar or a 1-D list of mpf


class Undefined(ArithmeticError):
    """The program leaves the real domain (or, for derivatives, hits a kink) at the point."""


# ---- element-wise scalar functions --------------------------------------------------------


def _log(t: mpf) -> mpf:
    if t <= 0:
        raise Undefined(f"log({t}) outside its real domain")
    return mpmath.log(t)


def _sqrt(t: mpf) -> mpf:
    if t < 0:
        raise Undefined(f"sqrt({t}) outside its real domain")
    return mpmath.sqrt(t)


def _asin(t: mpf) -> mpf:
    if not -1 <= t <= 1:
        raise Undefined(f"asin({t}) outside [-1, 1]")
    return mpmath.asin(t)


def _acos(t: mpf) -> mpf:
    if not -1 <= t <= 1:
        raise Undefined(f"acos({t}) outside [-1, 1]")
    return mpmath.acos(t)


def _atan2(y: mpf, x: mpf) -> mpf:
    if x == 0 and y == 0:
        raise Undefined("atan2(0, 0)")
    if y == 0 and x < 0:
        raise Undefined("atan2 on its branch cut (y = 0, x < 0)")
    return mpmath.atan2(y, x)


def _sigmoid(t: mpf) -> mpf:
    return 1 / (1 + mpmath.exp(-t))


def _softplus(t: mpf) -> mpf:
    return mpmath.log1p(mpmath.exp(t))


def _relu(t: mpf) -> mpf:
    return t if t > 0 else mpf(0)


SCALAR: dict[str, Callable[..., mpf]] = {
    "sin": mpmath.sin, "cos": mpmath.cos, "tan": mpmath.tan, "asin": _asin, "acos": _acos,
    "atan": mpmath.atan, "sinh": mpmath.sinh, "cosh": mpmath.cosh, "tanh": mpmath.tanh,
    "exp": mpmath.exp, "log": _log, "sqrt": _sqrt, "abs": abs, "sigmoid": _sigmoid,
    "relu": _relu, "softplus": _softplus, "atan2": _atan2,
}  # fmt: skip
KINKS = {"abs", "relu", "sqrt"}  # not differentiable where the (first) argument is 0


def _div(a: mpf, b: mpf) -> mpf:
    if b == 0:
        raise Undefined("division by 0")
    return a / b


def _pow(a: mpf, b: mpf) -> mpf:
    if a == 0 and b < 0:
        raise Undefined("0 to a negative power")
    if a < 0 and b != mpmath.floor(b):
        raise Undefined("a negative number to a non-integer power")
    r = a**b
    if isinstance(r, mpmath.mpc):  # pragma: no cover - excluded above
        raise Undefined("complex power")
    return r


def _mag(t: mpf) -> int:
    return int(mpmath.mag(t)) if t != 0 and mpmath.isfinite(t) else 0


def _map(f: Callable[..., mpf], *args: Value) -> Value:
    """Apply f element-wise with scalar broadcasting over 1-D lists."""
    lengths = {len(a) for a in args if isinstance(a, list)}
    if not lengths:
        return f(*args)
    if len(lengths) > 1:
        raise ValueError(f"shapes do not broadcast: lengths {sorted(lengths)}")
    (n,) = lengths
    cols = [a if isinstance(a, list) else [a] * n for a in args]
    return [f(*row) for row in zip(*cols, strict=True)]


# ---- the evaluator ------------------------------------------------------------------------


class _Eval:
    """One evaluation at the ambient precision. `needed` collects the bits the evaluation
    lost: an addition whose operands span 2**k absorbs k bits of the smaller one (1 + exp(-700)
    needs 1,010 bits to keep exp(-700) at all), one that cancels loses the bits it cancels, exp
    and the trigonometric functions lose the magnitude of their argument. `collapsed` records an
    addition of nonzero operands that came out exactly 0 (1 - cos(1e-300) too early, or a true
    a - a): both ask the caller for more precision."""

    def __init__(self, program: lang.Program, env: Mapping[str, Value], strict: bool) -> None:
        self.defs = dict(program.definitions)
        self.env = dict(env)  # variables, then statements as they are computed
        self.strict = strict  # kinks raise Undefined (used before differentiating)
        self.failed: dict[str, Undefined] = {}
        self.needed = 0
        self.collapsed = False

    def lose(self, bits: int) -> None:
        self.needed = max(self.needed, bits)

    def add(self, a: mpf, b: mpf, sign: int = 1) -> mpf:
        r = a + b if sign > 0 else a - b
        if a != 0 and b != 0:
            hi, lo = max(_mag(a), _mag(b)), min(_mag(a), _mag(b))
            if r == 0:
                self.collapsed = True
            else:
                self.lose(hi - lo + max(0, hi - _mag(r)))
        return r

    def total(self, xs: Sequence[mpf]) -> mpf:
        acc = mpf(0)
        for e in xs:
            acc = self.add(acc, e)
        return acc

    def apply(self, f: str, *args: mpf) -> mpf:
        r = SCALAR[f](*args)
        t = args[0]
        if f in ("exp", "sinh", "cosh", "tanh", "sigmoid", "softplus"):
            self.lose(max(0, _mag(t)))
        elif f in ("sin", "cos", "tan"):
            self.lose(max(0, _mag(t)) + max(0, -_mag(r)))
        elif f == "log":
            self.lose(max(0, -_mag(r)))
        return r

    def power(self, a: mpf, b: mpf) -> mpf:
        r = _pow(a, b)
        if a != 0 and b != 0:
            self.lose(max(0, _mag(b)) + max(0, _mag(mpmath.log(abs(a)))))
        return r

    def name(self, ident: str) -> Value:
        if ident in self.env:
            return self.env[ident]
        if ident in self.failed:
            raise self.failed[ident]
        if ident not in self.defs:
            raise KeyError(f"no value for variable {ident!r}")
        try:
            value = self.node(self.defs[ident])
        except Undefined as e:
            self.failed[ident] = e
            raise
        self.env[ident] = value
        return value

    def kink(self, what: str, t: Value) -> None:
        if self.strict and any(e == 0 for e in (t if isinstance(t, list) else [t])):
            raise Undefined(f"{what} at 0: no derivative")

    def node(self, n: lang.Node) -> Value:
        if isinstance(n, lang.Num):
            return mpf(n.text)
        if isinstance(n, lang.Const):
            return +mp.pi if n.id == "pi" else +mp.e
        if isinstance(n, lang.Name):
            return self.name(n.id)
        if isinstance(n, lang.Neg):
            return _map(lambda t: -t, self.node(n.operand))
        if isinstance(n, lang.Chain):
            acc = self.node(n.first)
            for op, child in n.rest:
                rhs = self.node(child)
                if op == "+":
                    acc = _map(self.add, acc, rhs)
                elif op == "-":
                    acc = _map(lambda a, b: self.add(a, b, -1), acc, rhs)
                elif op == "*":
                    acc = _map(lambda a, b: a * b, acc, rhs)
                elif op == "/":
                    acc = _map(_div, acc, rhs)
                else:
                    raise NotImplementedError(f"the oracle does not evaluate {op}")
            return acc
        if isinstance(n, lang.Pow):
            return _map(self.power, self.node(n.base), self.node(n.exponent))
        if isinstance(n, lang.Call):
            return self.call(n)
        if isinstance(n, lang.Index):
            base = self.node(n.base)
            if not isinstance(base, list) or len(n.items) != 1 or not isinstance(n.items[0], int):
                raise NotImplementedError("the oracle indexes 1-D tensors by one integer only")
            return base[n.items[0]]
        raise NotImplementedError(f"the oracle does not evaluate {type(n).__name__}")

    def call(self, n: lang.Call) -> Value:
        f = n.func
        if f in SCALAR:
            args = [self.node(a) for a in n.args]
            if f in KINKS:
                self.kink(f, args[0])
            return _map(lambda *a: self.apply(f, *a), *args)
        x = self.node(n.args[0])
        if f == "dot":
            y = self.node(n.args[1])
            assert isinstance(x, list) and isinstance(y, list)
            return self.total([a * b for a, b in zip(x, y, strict=True)])
        if len(n.args) > 1:
            dim = lang.const_int(n.args[1])
            if dim not in (0, -1):
                raise NotImplementedError("the oracle reduces 1-D tensors over their only axis")
        xs = x if isinstance(x, list) else [x]
        if f == "sum":
            return self.total(xs)
        if f == "mean":
            return self.total(xs) / len(xs)
        if f == "prod":
            return mpmath.fprod(xs)
        if f in ("max", "min"):
            best = max(xs) if f == "max" else min(xs)
            if self.strict and sum(1 for e in xs if e == best) > 1:
                raise Undefined(f"{f} of a tie: no derivative")
            return best
        if f == "norm":
            s = self.total([e * e for e in xs])
            self.kink("norm", s)
            return mpmath.sqrt(s)
        if f in ("logsumexp", "softmax"):
            top = max(xs)
            shifted = [self.apply("exp", self.add(e, top, -1)) for e in xs]
            total = self.total(shifted)
            if f == "logsumexp":
                return self.add(top, self.apply("log", total))
            return [e / total for e in shifted]
        raise NotImplementedError(f"the oracle does not evaluate {f}")


def _flatten(values: Sequence[Value]) -> list[mpf]:
    out: list[mpf] = []
    for v in values:
        out.extend(v if isinstance(v, list) else [v])
    return out


def _layout(program: lang.Program, point: Any) -> list[tuple[str, int | None]]:
    """Each variable with its length (None for a scalar), in the program's variable order."""
    named = _named(program, point)
    return [(name, len(v) if isinstance(v, list) else None) for name, v in named.items()]


def _named(program: lang.Program, point: Any) -> dict[str, Value]:
    if isinstance(point, Mapping):
        raw = {name: point[name] for name in program.variables}
    else:
        raw = dict(zip(program.variables, point, strict=True))
    return {
        k: [mpf(float(e)) for e in v] if isinstance(v, (list, tuple)) else mpf(float(v))
        for k, v in raw.items()
    }


def _outputs(
    program: lang.Program, env: Mapping[str, Value], strict: bool
) -> tuple[list[mpf], _Eval]:
    ev = _Eval(program, env, strict)
    results = []
    for name, node in program.computed():
        results.append(ev.name(name) if name is not None else ev.node(node))
    return _flatten(results), ev


def _settle(program: lang.Program, env: Mapping[str, Value], strict: bool) -> int:
    """The working precision (bits) at which DPS digits survive every loss of the
    evaluation at this point, found by re-evaluating until the losses fit."""
    bits = mp.prec
    while True:
        with mp.workprec(bits):
            _, ev = _outputs(program, env, strict)
        want = BASE_BITS + ev.needed + 32
        if ev.collapsed:
            want = max(want, 2 * bits)
        if want <= bits or bits >= MAX_BITS:
            return bits
        bits = min(want, MAX_BITS)


def value(program: lang.Program, point: Any) -> list[mpf]:
    """Every output element at the point (floats, or lists for 1-D tensors; a mapping by
    variable name or a sequence in variable order), or Undefined."""
    with mp.workdps(DPS):
        env = _named(program, point)
        with mp.workprec(_settle(program, env, strict=False)):
            return _outputs(program, env, strict=False)[0]


def jacobian(program: lang.Program, point: Any) -> list[list[mpf]]:
    """Rows: output elements; columns: variable elements (flattened in variable order)."""
    with mp.workdps(DPS):
        env = _named(program, point)
        bits = _settle(program, env, strict=True)  # the point itself: domain and kinks
    with mp.workprec(bits):
        rows, _ = _outputs(program, env, strict=True)
        columns: list[list[mpf]] = []
        for name, length in _layout(program, point):
            for k in range(length or 1):

                def moved(t: mpf, name: str = name, k: int = k, length: int | None = length) -> Any:
                    e = dict(env)
                    if length is None:
                        e[name] = t
                    else:
                        e[name] = [t if i == k else x for i, x in enumerate(env[name])]  # type: ignore[union-attr]
                    return _outputs(program, e, strict=False)[0]

                x0 = env[name] if length is None else env[name][k]  # type: ignore[index]
                # a step relative to |x| (absolute at 0), so sqrt(x) at 1e-300 stays in domain
                step = {"h": mpmath.ldexp(abs(x0), -(mp.prec + 10))} if x0 != 0 else {}
                columns.append([
                    mpmath.diff(lambda t, i=i: moved(t)[i], x0, addprec=ADDPREC, **step)  # type: ignore[misc]
                    for i in range(len(rows))
                ])  # fmt: skip
        return [[col[i] for col in columns] for i in range(len(rows))]


def vjp(program: lang.Program, point: Any, v: Sequence[float] | None = None) -> list[mpf]:
    """v^T J, v flat over the output elements (all ones by default for one output)."""
    J = jacobian(program, point)
    if v is None:
        if len(J) != 1:
            raise ValueError("v is needed for more than one output element")
        v = [1.0]
    if len(v) != len(J):
        raise ValueError(f"v has {len(v)} entries, J has {len(J)} rows")
    with mp.workdps(DPS):
        vs = [mpf(float(e)) for e in v]
        return [mpmath.fsum(vs[i] * J[i][j] for i in range(len(J))) for j in range(len(J[0]))]
