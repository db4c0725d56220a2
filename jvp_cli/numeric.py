"""The symbolic Jacobian -> numbers at many points: the fast symbolic side of --points.

`certified_vjp` builds v^T J as one function of (x, v) together with a bound on its float64
error and the boundary conditions of every operation (errorbound.py), and evaluates them
for a whole chunk of points at once: compiled to machine code by SymEngine's LLVM backend
(`symengine.Lambdify`, common sub-expressions shared), or, where that cannot be done
(SymEngine without LLVM, relu's Heaviside derivative), by `evaluate`, a walk over the trees
where each node type maps to a numpy operation. Each point comes back CERTAIN (its value is
within the bound of the exact one), UNDEFINED (the point is certainly outside a real domain)
or UNSURE (the caller evaluates it exactly, at 30 digits). Both read expression trees that
SymPy or SymEngine built, never text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np
import sympy as sp

from . import errorbound
from .model import EngineError

_FUNCS: dict[type, Callable[..., np.ndarray]] = {
    sp.sin: np.sin, sp.cos: np.cos, sp.tan: np.tan, sp.asin: np.arcsin, sp.acos: np.arccos,
    sp.atan: np.arctan, sp.sinh: np.sinh, sp.cosh: np.cosh, sp.tanh: np.tanh, sp.exp: np.exp,
    sp.log: np.log, sp.Abs: np.abs, sp.sign: np.sign, sp.atan2: np.arctan2,
}  # fmt: skip


class Evaluated(NamedTuple):
    """The symbolic side of a chunk: v^T J in float64 with a bound on its error, and what
    the boundary conditions say about each point."""

    G: np.ndarray  # points x variables: v^T J, evaluated in float64
    R: np.ndarray  # points x variables: a bound on |G - exact v^T J| (SAFETY included)
    state: np.ndarray  # per point: CERTAIN (every margin clear), UNDEFINED, or UNSURE


CERTAIN, UNDEFINED, UNSURE = 0, 1, 2
LLVM_OPT_LEVEL = 0  # see _compiled


def certified_vjp(
    jac: Sequence[dict[int, Any]],
    symbols: Sequence[Any],
    lib: Any,
    domain: Sequence[errorbound.Margin],
    compile: bool = True,
) -> Callable[[np.ndarray, np.ndarray], Evaluated] | None:
    """V^T J per point with its error bound, as a function of X (points x variables) and V
    (points x outputs): compiled by SymEngine's LLVM backend where it can be (`lib` is
    symengine), else a numpy walk of the same expressions (`lib` is sympy). None where an
    expression has no error bound here; the caller then takes the exact path."""
    vs = [lib.Symbol(f"v:{i}") for i in range(len(jac))]  # no variable can have this name
    columns: list[list[Any]] = [[] for _ in symbols]
    for i, row in enumerate(jac):
        for j, entry in row.items():
            _tree(entry)  # `v * text` would have SymPy parse the text: trees only
            columns[j].append(vs[i] * entry)
    g = [lib.Add(*terms) if terms else lib.Integer(0) for terms in columns]
    bounds = errorbound.Bounds(lib)
    try:
        parts = [bounds.bound(e) for e in g]
    except errorbound.Uncertifiable:
        return None
    margins = list(domain) + bounds.margins
    checks = errorbound.flatten(margins)
    outputs = g + [m for m, _ in parts] + [x for v, m, _ in checks for x in (v, m)]
    n = len(symbols)
    scale = errorbound.SAFETY * errorbound.U
    g_d = np.array([d for _, d in parts], dtype=np.float64)
    m_d = np.array([d for _, _, d in checks], dtype=np.float64)
    g_rounds, m_rounds = scale * g_d, scale * m_d
    # a relative bound says nothing of results that underflow: an absolute term per rounding
    g_tiny = errorbound.SAFETY * g_d * errorbound.UNDERFLOW
    m_tiny = errorbound.SAFETY * m_d * errorbound.UNDERFLOW
    evaluate_all = _compiled(outputs, list(symbols) + vs) if compile else None
    if evaluate_all is None:
        if lib.__name__ != "sympy":
            return None  # the numpy walk reads SymPy trees
        evaluate_all = _walk(outputs, list(symbols) + vs)

    def side(X: np.ndarray, V: np.ndarray) -> Evaluated:
        out = evaluate_all(np.hstack([X, V]))
        G = out[:, :n]
        with np.errstate(all="ignore"):
            R = out[:, n : 2 * n] * g_rounds + g_tiny
            values = out[:, 2 * n :: 2]
            radii = out[:, 2 * n + 1 :: 2] * m_rounds + m_tiny
        state = _classify(margins, values, radii, len(X))
        with np.errstate(all="ignore"):
            # one pass: a NaN or an infinity in G or R makes the row's sum so (an overflow of
            # the sum itself only sends the row to the exact path)
            finite = np.isfinite(G.sum(axis=1) + R.sum(axis=1))
        state = np.where((state == CERTAIN) & ~finite, UNSURE, state)
        return Evaluated(G, R, state)

    return side


def _classify(
    margins: Sequence[errorbound.Margin], values: np.ndarray, radii: np.ndarray, size: int
) -> np.ndarray:
    """Per point: UNDEFINED where a domain margin is certainly violated, else UNSURE where
    some margin is within its error bound of the boundary (or not finite), else CERTAIN."""
    ok = np.ones(size, dtype=bool)
    bad = np.zeros(size, dtype=bool)
    k = 0
    with np.errstate(invalid="ignore"):
        for m in margins:
            cols = []
            for _ in m.parts:
                cols.append((values[:, k], radii[:, k]))
                k += 1
            (a, ra) = cols[0]
            if m.kind == "pos":
                good, wrong = a - ra > 0, a + ra <= 0
            elif m.kind == "nonneg":
                good, wrong = a - ra >= 0, a + ra < 0
            elif m.kind == "nonzero":
                good, wrong = np.abs(a) - ra > 0, (a == 0) & (ra == 0)
            elif m.kind == "atan2":
                (x, rx) = cols[1]
                good = (np.abs(a) - ra > 0) | (x - rx > 0)
                wrong = (a == 0) & (ra == 0) & (x + rx <= 0)
            else:  # "kink" (derivatives) and "base" (a power with a variable exponent)
                good, wrong = np.abs(a) - ra > 0 if m.kind == "kink" else a - ra > 0, None
            if wrong is not None and m.domain:
                bad |= wrong
            ok &= good
    return np.where(bad, UNDEFINED, np.where(ok, CERTAIN, UNSURE))


def _compiled(outputs: list[Any], args: list[Any]) -> Callable[[np.ndarray], np.ndarray] | None:
    """`outputs` as one compiled function of the columns of a matrix, or None."""
    try:
        import symengine as se
    except ImportError:
        return None
    if not getattr(se, "have_llvm", False):
        return None
    try:
        converted = [o if isinstance(o, se.Basic) else se.sympify(_tree(o)) for o in outputs]
        # (sympify converts a SymPy tree structurally here; _tree refused anything else)
        # opt_level 0: compiling takes half the time of the default level 3, and the code,
        # dominated by libm calls, runs as fast (same bits: LLVM keeps IEEE semantics at
        # every level; no fast-math reassociation is asked for)
        f = se.Lambdify(args if isinstance(args[0], se.Basic) else [se.sympify(_tree(a))
                        for a in args], converted, backend="llvm", cse=True,
                        opt_level=LLVM_OPT_LEVEL)  # fmt: skip
    except (RuntimeError, TypeError, ValueError, NotImplementedError, AttributeError):
        return None  # a function or constant (Heaviside, complex infinity) LLVM cannot take
    width = len(outputs)

    def run(XV: np.ndarray) -> np.ndarray:
        out = f(np.ascontiguousarray(XV, dtype=np.float64))
        return np.asarray(out, dtype=np.float64).reshape(len(XV), width)

    return run


def _tree(e: Any) -> Any:
    """`e` if it is a SymPy or SymEngine expression tree; anything else (text, which sympify
    or an arithmetic operator would parse) is refused."""
    if isinstance(e, sp.Basic):
        return e
    try:
        import symengine as se
    except ImportError:
        se = None
    if se is not None and isinstance(e, se.Basic):
        return e
    raise TypeError(f"not an expression tree: {type(e).__name__}")


def _walk(outputs: list[Any], args: list[Any]) -> Callable[[np.ndarray], np.ndarray]:
    def run(XV: np.ndarray) -> np.ndarray:
        env = {s: XV[:, j] for j, s in enumerate(args)}
        memo: dict[Any, Any] = {}
        return np.stack([evaluate(o, env, len(XV), memo) for o in outputs], axis=1)

    return run


def evaluate(
    expr: Any, env: dict[Any, np.ndarray], size: int, memo: dict[Any, Any] | None = None
) -> np.ndarray:
    """`expr` at every point of a batch: `env` maps each symbol to an array of `size` values;
    `memo`, shared between calls, evaluates a sub-expression common to several once."""
    memo = {} if memo is None else memo

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
