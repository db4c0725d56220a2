"""SymPy expression -> a function of numpy arrays: the symbolic side, vectorised over a batch.

A walk over the expression tree that SymPy built for us (never text, never `lambdify`): each
node type maps to a numpy operation, so one call evaluates an entry of the symbolic Jacobian
at every point of a batch at once, in float64. Sub-expressions shared inside one expression
are evaluated once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import sympy as sp

from .model import EngineError

_FUNCS: dict[type, Callable[..., np.ndarray]] = {
    sp.sin: np.sin, sp.cos: np.cos, sp.tan: np.tan, sp.asin: np.arcsin, sp.acos: np.arccos,
    sp.atan: np.arctan, sp.sinh: np.sinh, sp.cosh: np.cosh, sp.tanh: np.tanh, sp.exp: np.exp,
    sp.log: np.log, sp.Abs: np.abs, sp.sign: np.sign, sp.atan2: np.arctan2,
}  # fmt: skip


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
