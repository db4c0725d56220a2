"""Tree -> numpy arrays, over one of two element types: SymPy expressions (object arrays, the
symbolic side) or float64 (the domain check). Both follow torch's semantics for broadcasting,
`@`, reductions, indexing and reshape; every value is an ndarray (0-d for a scalar).

torch's side (autograd.py) does not use this module: it runs real tensor operations, so the
two engines stay independent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from . import lang


def _axis(node: lang.Call, shape: tuple[int, ...]) -> int | None:
    if len(node.args) < 2:
        return None
    d = lang.const_int(node.args[1])
    assert d is not None  # shapes.infer checked it
    return d % len(shape)


class Backend:
    """Element type of an array evaluation."""

    dtype: Any = object

    def const(self, value: float | int, node: lang.Node) -> Any:
        raise NotImplementedError

    def elementwise(self, name: str, *args: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def add_n(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def mul_n(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def divide(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def power(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reduce(self, kind: str, a: np.ndarray, axis: int | None) -> np.ndarray:
        raise NotImplementedError

    def after(self, node: lang.Node, value: np.ndarray, args: list[np.ndarray]) -> None:
        """Hook run after each node (the float backend checks domains here)."""


def _along(a: np.ndarray, axis: int | None, fn: Callable[[list[Any]], Any]) -> np.ndarray:
    """Apply `fn` to each 1-D lane of `a` along `axis` (all elements when None)."""
    if axis is None:
        whole = np.empty((), dtype=object)
        whole[()] = fn(list(a.flat))
        return whole
    moved = np.moveaxis(a, axis, -1)
    # explicit lane count: reshape(-1, 0) cannot infer -1 when a lane is empty
    lanes = moved.reshape(math.prod(moved.shape[:-1]), moved.shape[-1])
    out = np.empty(len(lanes), dtype=object)
    for i, lane in enumerate(lanes):
        out[i] = fn(list(lane))
    return out.reshape(moved.shape[:-1])


class SympyBackend(Backend):
    """Object arrays of SymPy expressions."""

    def __init__(self) -> None:
        import sympy as sp

        self.sp = sp
        self.funcs: dict[str, Callable[..., Any]] = {
            "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin, "acos": sp.acos,
            "atan": sp.atan, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh,
            "exp": sp.exp, "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs,
            "sigmoid": lambda u: 1 / (1 + sp.exp(-u)),
            "relu": lambda u: sp.Max(0, u),
            "softplus": lambda u: sp.log(1 + sp.exp(u)),
            "atan2": sp.atan2,
        }  # fmt: skip
        self._ufuncs = {
            name: np.frompyfunc(f, 2 if name == "atan2" else 1, 1) for name, f in self.funcs.items()
        }

    def const(self, value: float | int, node: lang.Node) -> Any:
        sp = self.sp
        if isinstance(node, lang.Const):
            return sp.pi if node.id == "pi" else sp.E
        assert isinstance(node, lang.Num)
        if isinstance(node.value, int):
            return sp.Integer(node.value)
        q = node.exact()
        return sp.Rational(q.numerator, q.denominator)

    def elementwise(self, name: str, *args: np.ndarray) -> np.ndarray:
        return _obj(self._ufuncs[name](*args))

    def _nary(self, fn: Callable[..., Any], arrays: Sequence[np.ndarray]) -> np.ndarray:
        if all(a.ndim == 0 for a in arrays):
            return _obj(fn(*[a[()] for a in arrays]))
        bs = np.broadcast_arrays(*arrays)
        out = np.empty(bs[0].shape, dtype=object)
        for idx in np.ndindex(out.shape):
            out[idx] = fn(*[b[idx] for b in bs])
        return out

    def add_n(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        # n-ary, so that a sum of thousands of terms is one Add, not a quadratic rebuild
        return self._nary(self.sp.Add, arrays)

    def mul_n(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        return self._nary(self.sp.Mul, arrays)

    def divide(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._nary(lambda x, y: self.sp.Mul(x, self.sp.Pow(y, -1)), [a, b])

    def power(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return self._nary(lambda x, y: checked_pow(self.sp, x, y), [a, b])

    def reduce(self, kind: str, a: np.ndarray, axis: int | None) -> np.ndarray:
        sp = self.sp
        fns: dict[str, Callable[[list[Any]], Any]] = {
            "sum": lambda xs: sp.Add(*xs),
            "prod": lambda xs: sp.Mul(*xs),
            "max": lambda xs: sp.Max(*xs),
            "min": lambda xs: sp.Min(*xs),
        }
        return _along(a, axis, fns[kind])


class SymengineBackend(SympyBackend):
    """Object arrays of SymEngine expressions: the same algebra as SymPy's, in C++, for big
    problems (a 200 x 200 dense system builds in 0.2 s instead of 50 s). abs, relu, max and
    min are left to SymPy: SymEngine has no derivative for them."""

    UNSUPPORTED = lang.NO_SYMENGINE_DERIVATIVE

    def __init__(self) -> None:
        import symengine as se

        self.sp = se
        self.funcs = {
            "sin": se.sin, "cos": se.cos, "tan": se.tan, "asin": se.asin, "acos": se.acos,
            "atan": se.atan, "sinh": se.sinh, "cosh": se.cosh, "tanh": se.tanh,
            "exp": se.exp, "log": se.log, "sqrt": se.sqrt,
            "sigmoid": lambda u: 1 / (1 + se.exp(-u)),
            "softplus": lambda u: se.log(1 + se.exp(u)),
            "atan2": se.atan2,
        }  # fmt: skip
        self._ufuncs = {
            name: np.frompyfunc(f, 2 if name == "atan2" else 1, 1) for name, f in self.funcs.items()
        }

    def reduce(self, kind: str, a: np.ndarray, axis: int | None) -> np.ndarray:
        assert kind in ("sum", "prod")
        return super().reduce(kind, a, axis)


def checked_pow(lib: Any, base: Any, exponent: Any) -> Any:
    """base**exponent, refused where the exponent SymPy or SymEngine folded it to is too
    large: x**(y - y + 10**100) has the exponent 10**100 once y - y is 0, which the parser's
    bounds, reading the text, cannot see. A number to such a power would be computed
    exactly, digit by digit, inside one call; a symbol to it would wrap in compiled code."""
    from .model import LimitError

    if exponent.is_Number:
        e = float(exponent)
        if base.is_Number and base != 0 and e != 0:
            size = abs(e) * abs(math.log10(abs(float(base)))) if abs(float(base)) != 1 else 0
            if not size <= lang.MAX_CONST_LOG10:
                raise LimitError(
                    f"the constant {_clip(base)}**{_clip(exponent)} is beyond the range "
                    f"1e-{lang.MAX_CONST_LOG10:g} .. 1e{lang.MAX_CONST_LOG10:g} once the "
                    "expression is simplified",
                    where="the functions",
                    fix="keep constants within that range",
                )
        elif not base.is_Number and not abs(e) <= lang.MAX_EXPONENT:
            raise LimitError(
                f"exponent {_clip(exponent)} of {_clip(base)} is too large once the "
                f"expression is simplified (limit {lang.MAX_EXPONENT:g})",
                where="the functions",
                fix="use a smaller exponent",
            )
    return lib.Pow(base, exponent)


def _clip(e: Any) -> str:
    text = str(e)
    return text if len(text) <= 30 else text[:27] + "..."


def _obj(value: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    out = np.empty((), dtype=object)
    out[()] = value
    return out


@dataclass(frozen=True)
class Undefined:
    """The first sub-expression that is undefined at the point: outside its real domain
    ("domain"), at a pole ("pole"), or atan2 at the origin ("origin") or on its branch cut,
    where it is not continuous ("cut")."""

    node: lang.Node
    reason: str = "domain"

    def explain(self) -> str:
        text = lang.unparse(self.node)
        text = text if len(text) <= 60 else text[:57] + "..."
        why = {
            "pole": "has a pole at the point (division by zero)",
            "origin": "is undefined at the point (atan2 at the origin)",
            "cut": "is not continuous at the point (atan2's branch cut y = 0, x < 0)",
        }.get(self.reason, "is undefined at the point (outside its real domain)")
        return f"{text} {why}"


class _Found(Exception):
    def __init__(self, undefined: Undefined) -> None:
        self.undefined = undefined


class FloatBackend(Backend):
    """Float arrays (float64 unless `dtype` says otherwise); `after` stops at the first
    sub-expression that is not finite (domain.py's overflow walk overrides it)."""

    dtype: Any = np.float64
    _funcs: ClassVar[dict[str, Callable[..., np.ndarray]]] = {
        "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
        "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "exp": np.exp,
        "log": np.log, "sqrt": np.sqrt, "abs": np.abs,
        "sigmoid": lambda u: 1.0 / (1.0 + np.exp(-u)),
        "relu": lambda u: np.maximum(u, 0.0),
        "softplus": lambda u: np.logaddexp(0.0, u),
        "atan2": np.arctan2,
    }  # fmt: skip

    def const(self, value: float | int, node: lang.Node) -> Any:
        return float(value)

    def elementwise(self, name: str, *args: np.ndarray) -> np.ndarray:
        return np.asarray(self._funcs[name](*args), dtype=self.dtype)

    def add_n(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        out = arrays[0]
        for a in arrays[1:]:
            out = out + a
        return np.asarray(out, dtype=self.dtype)

    def mul_n(self, arrays: Sequence[np.ndarray]) -> np.ndarray:
        out = arrays[0]
        for a in arrays[1:]:
            out = out * a
        return np.asarray(out, dtype=self.dtype)

    def divide(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(a / b, dtype=self.dtype)

    def power(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return np.asarray(np.power(a, b), dtype=self.dtype)

    def reduce(self, kind: str, a: np.ndarray, axis: int | None) -> np.ndarray:
        reducers: dict[str, Any] = {"sum": np.sum, "prod": np.prod, "max": np.max, "min": np.min}
        return np.asarray(reducers[kind](a, axis=axis), dtype=self.dtype)


def _is_pole(node: lang.Node, args: list[np.ndarray]) -> bool:
    """An infinite result from a division by zero, log(0), or 0 to a negative power."""
    if isinstance(node, lang.Chain) and node.kind == "mul":
        return any(
            op == "/" and np.any(a == 0) for (op, _), a in zip(node.rest, args[1:], strict=True)
        )
    if isinstance(node, lang.Call) and node.func == "log":
        return bool(np.any(args[0] == 0))
    if isinstance(node, lang.Pow):
        return bool(np.any((args[0] == 0) & (args[1] < 0)))
    return False


class Evaluator:
    """Evaluate trees over arrays of one backend's elements."""

    def __init__(self, backend: Backend, env: dict[str, np.ndarray]) -> None:
        self.b = backend
        self.env = env

    def leaf(self, n: lang.Node) -> np.ndarray:
        if isinstance(n, lang.Name):
            return self.env[n.id]
        value = float(n.value) if isinstance(n, lang.Num) else 0.0
        if isinstance(n, lang.Const):
            value = math.pi if n.id == "pi" else math.e
        out = np.empty((), dtype=self.b.dtype)
        out[()] = self.b.const(value, n)
        return out

    def combine(self, n: lang.Node, args: list[np.ndarray]) -> np.ndarray:
        value = self._combine(n, args)
        self.b.after(n, value, args)
        return value

    def _combine(self, n: lang.Node, args: list[np.ndarray]) -> np.ndarray:
        b = self.b
        if isinstance(n, lang.Neg):
            return b.mul_n([self.leaf(lang.Num("-1", -1)), args[0]])
        if isinstance(n, lang.Chain):
            if n.kind == "add":
                minus_one = self.leaf(lang.Num("-1", -1))
                terms = [args[0]] + [
                    a if op == "+" else b.mul_n([minus_one, a])
                    for (op, _), a in zip(n.rest, args[1:], strict=True)
                ]
                return b.add_n(terms)
            return self._product(n, args)
        if isinstance(n, lang.Pow):
            return b.power(args[0], args[1])
        if isinstance(n, lang.Transpose):
            return args[0].T
        if isinstance(n, lang.Index):
            key = tuple(
                i if isinstance(i, int) else slice(i.start, i.stop, i.step) for i in n.items
            )
            return _as_array(args[0][key], b.dtype)
        if isinstance(n, lang.Call):
            return self._call(n, args)
        raise AssertionError(n)

    def _product(self, n: lang.Chain, args: list[np.ndarray]) -> np.ndarray:
        """Runs of * and / become one n-ary product; @ is a matrix product in order."""
        b = self.b
        acc = args[0]
        run: list[np.ndarray] = [acc]
        for (op, _), a in zip(n.rest, args[1:], strict=True):
            if op == "@":
                acc = b.mul_n(run) if len(run) > 1 else run[0]
                acc = _as_array(_matmul(b, acc, a), b.dtype)
                run = [acc]
            elif op == "*":
                run.append(a)
            else:
                prod = b.mul_n(run) if len(run) > 1 else run[0]
                run = [b.divide(prod, a)]
        return b.mul_n(run) if len(run) > 1 else run[0]

    def _call(self, n: lang.Call, args: list[np.ndarray]) -> np.ndarray:
        b = self.b
        f = n.func
        if f in lang.ELEMENTWISE:
            return b.elementwise(f, *args)
        x = args[0]
        axis = _axis(n, x.shape) if f not in ("reshape", "dot", "norm") else None
        if f in ("sum", "prod", "max", "min"):
            return b.reduce(f, x, axis)
        if f == "mean":
            count = x.size if axis is None else x.shape[axis]
            return b.divide(b.reduce("sum", x, axis), self._num(count))
        if f == "logsumexp":
            return b.elementwise("log", b.reduce("sum", b.elementwise("exp", x), axis))
        if f == "softmax":
            ax = axis if axis is not None else x.ndim - 1
            e = b.elementwise("exp", x)
            total = np.expand_dims(b.reduce("sum", e, ax), ax)
            return b.divide(e, total)
        if f == "norm":
            return b.elementwise("sqrt", b.reduce("sum", b.mul_n([x, x]), None))
        if f == "dot":
            return b.reduce("sum", b.mul_n([x, args[1]]), None)
        if f == "reshape":
            sizes = [lang.const_int(a) for a in n.args[1:]]
            return _as_array(x.reshape([s if s is not None else -1 for s in sizes]), b.dtype)
        raise AssertionError(f)

    def _num(self, k: int) -> np.ndarray:
        return self.leaf(lang.Num(str(k), k))

    def run(self, node: lang.Node) -> np.ndarray:
        result = lang.fold(node, self.leaf, self.combine)
        assert isinstance(result, np.ndarray)
        return result


def _matmul(b: Backend, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    if b.dtype is object:
        # explicit sums, so each entry is one flat Add
        if x.ndim == 1 and y.ndim == 1:
            return b.add_n([_as_array(x[k] * y[k], object) for k in range(x.shape[0])])
        x2 = x if x.ndim == 2 else x[np.newaxis, :]
        y2 = y if y.ndim == 2 else y[:, np.newaxis]
        out = np.empty((x2.shape[0], y2.shape[1]), dtype=object)
        sp_add = b.add_n
        for i in range(x2.shape[0]):
            for j in range(y2.shape[1]):
                terms = [_as_array(x2[i, k] * y2[k, j], object) for k in range(x2.shape[1])]
                out[i, j] = sp_add(terms)[()]
        if x.ndim == 1:
            out = out[0]
        if y.ndim == 1:
            out = out[..., 0]
        return out
    return np.matmul(x, y)


def _as_array(value: Any, dtype: Any) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    out = np.empty((), dtype=dtype)
    out[()] = value
    return out


class _ScalarExpressions:
    """An all-scalar program evaluated straight on SymPy or SymEngine expressions, with the
    same construction as the array path (n-ary Add and Mul, -t as -1*t, a/b as a*b**-1):
    a numpy wrapper per node cost more than the algebra on big systems."""

    def __init__(self, backend: SympyBackend, inputs: dict[str, np.ndarray]) -> None:
        self.b = backend
        self.lib = backend.sp
        self.env: dict[str, Any] = {name: a[()] for name, a in inputs.items()}

    def run(self, node: lang.Node) -> Any:
        n = node
        kind = type(n)
        lib = self.lib
        if kind is lang.Name:
            return self.env[n.id]  # type: ignore[union-attr]
        if kind is lang.Num or kind is lang.Const:
            return self.b.const(0.0, n)
        if kind is lang.Chain:
            assert isinstance(n, lang.Chain)
            first = self.run(n.first)
            if n.kind == "add":
                return lib.Add(first, *[self.run(c) if op == "+" else lib.Mul(-1, self.run(c))
                                        for op, c in n.rest])  # fmt: skip
            return lib.Mul(first, *[self.run(c) if op == "*" else lib.Pow(self.run(c), -1)
                                    for op, c in n.rest])  # fmt: skip
        if kind is lang.Call:
            assert isinstance(n, lang.Call)
            return self.b.funcs[n.func](*[self.run(a) for a in n.args])
        if kind is lang.Neg:
            assert isinstance(n, lang.Neg)
            return lib.Mul(-1, self.run(n.operand))
        assert isinstance(n, lang.Pow)
        return checked_pow(lib, self.run(n.base), self.run(n.exponent))


def evaluate(
    program: lang.Program, backend: Backend, inputs: dict[str, np.ndarray]
) -> list[np.ndarray]:
    """Each output of the program, as an array of the backend's elements."""
    if isinstance(backend, SympyBackend) and _scalar_program(program, inputs):
        fast = _ScalarExpressions(backend, inputs)
        with np.errstate(all="ignore"):
            for name, node in program.definitions:
                fast.env[name] = fast.run(node)
            return [_obj(fast.run(node) if name is None else fast.env[name])
                    for name, node in program.computed()]  # fmt: skip
    ev = Evaluator(backend, dict(inputs))
    # SymPy's number crunching can leave the FPU overflow flag set, which numpy's object
    # loops would report as a RuntimeWarning on stderr; results are judged elsewhere.
    with np.errstate(all="ignore"):
        for name, node in program.definitions:
            ev.env[name] = ev.run(node)
        return [ev.run(node) if name is None else ev.env[name]
                for name, node in program.computed()]  # fmt: skip


def _scalar_program(program: lang.Program, inputs: dict[str, np.ndarray]) -> bool:
    """True when every variable is a scalar and no tensor operation occurs."""
    return not program.tensor_ops and not any(np.ndim(a) for a in inputs.values())
