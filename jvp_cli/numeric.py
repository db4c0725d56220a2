"""The symbolic Jacobian -> numbers at many points: the symbolic side of --points.

Two ways, both from the expression trees SymPy (or SymEngine) built, never from text:
- `compile_vjp`: v^T J as one function of (x, v), compiled to machine code by SymEngine's
  LLVM backend (`symengine.Lambdify`, common sub-expressions shared), called once per chunk
  of points; when SymEngine, its LLVM backend or one of the functions is missing, None.
- `evaluate`: a walk over one entry's tree where each node type maps to a numpy operation,
  so one call evaluates it at every point of a batch at once, in float64 (the fallback).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import sympy as sp

from .model import EngineError

_FUNCS: dict[type, Callable[..., np.ndarray]] = {
    sp.sin: np.sin, sp.cos: np.cos, sp.tan: np.tan, sp.asin: np.arcsin, sp.acos: np.arccos,
    sp.atan: np.arctan, sp.sinh: np.sinh, sp.cosh: np.cosh, sp.tanh: np.tanh, sp.exp: np.exp,
    sp.log: np.log, sp.Abs: np.abs, sp.sign: np.sign, sp.atan2: np.arctan2,
}  # fmt: skip


def compile_vjp(
    jac: Sequence[dict[int, Any]], symbols: Sequence[Any]
) -> Callable[[np.ndarray, np.ndarray], np.ndarray] | None:
    """G = V^T J per point, as a compiled function of X (points x variables) and V (points x
    outputs), or None where it cannot be compiled."""
    try:
        import symengine as se
    except ImportError:
        return None
    if not getattr(se, "have_llvm", False):
        return None
    try:
        xs = [se.Symbol(str(s)) for s in symbols]
        # names no variable can have, so v never captures a variable
        vs = [se.Symbol(f"v:{i}") for i in range(len(jac))]
        columns: list[list[Any]] = [[] for _ in symbols]
        for i, row in enumerate(jac):
            for j, entry in row.items():
                # a SymEngine tree is used as it is; a SymPy tree is converted structurally
                # by sympify, which is handed nothing else (text would be parsed)
                if not isinstance(entry, se.Basic):
                    if not isinstance(entry, sp.Basic):
                        raise TypeError(f"not an expression tree: {type(entry).__name__}")
                    entry = se.sympify(entry)
                columns[j].append(vs[i] * entry)
        g = [se.Add(*terms) if terms else se.Integer(0) for terms in columns]
        f = se.Lambdify(xs + vs, g, backend="llvm", cse=True)
    except (RuntimeError, TypeError, ValueError, NotImplementedError, AttributeError):
        return None  # a function or constant (Heaviside, complex infinity) LLVM cannot take

    def vjp(X: np.ndarray, V: np.ndarray) -> np.ndarray:
        out = f(np.ascontiguousarray(np.hstack([X, V]), dtype=np.float64))
        return np.asarray(out, dtype=np.float64).reshape(len(X), len(xs))

    return vjp


def evaluate(expr: Any, env: dict[Any, np.ndarray], size: int) -> np.ndarray:
    """`expr` at every point of a batch: `env` maps each symbol to an array of `size` values."""
    memo: dict[Any, Any] = {}

    def ev(e: Any) -> Any:
        if e in memo:
            return memo[e]
        out: Any
        if e.is_Symbol:
            out = env[e]
        elif e is sp.nan or e is sp.zoo:
            out = np.nan if e is sp.nan else np.inf
        elif e.is_Number or e.is_NumberSymbol:
            out = float(e)
        elif e.is_Add:
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = out + ev(a)
        elif e.is_Mul:
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = out * ev(a)
        elif e.is_Pow:
            base, exponent = ev(e.base), ev(e.exp)
            out = np.power(np.asarray(base, dtype=np.float64), exponent)
        elif isinstance(e, sp.Heaviside):
            h0 = ev(e.args[1]) if len(e.args) > 1 else 0.5
            out = np.heaviside(ev(e.args[0]), h0)
        elif isinstance(e, (sp.Max, sp.Min)):
            fn = np.maximum if isinstance(e, sp.Max) else np.minimum
            out = ev(e.args[0])
            for a in e.args[1:]:
                out = fn(out, ev(a))
        elif e.func in _FUNCS:
            out = _FUNCS[e.func](*[ev(a) for a in e.args])
        else:
            raise EngineError(f"cannot evaluate {type(e).__name__} over a batch")
        memo[e] = out
        return out

    with np.errstate(all="ignore"):
        result = ev(expr)
    return np.broadcast_to(np.asarray(result, dtype=np.float64), (size,))
