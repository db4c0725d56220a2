"""Finite differences (`--fd`): a third opinion that depends on neither SymPy's derivative nor
torch's autograd.

numdifftools (the well-kept library for exactly this) takes central differences over a
sequence of decreasing steps and combines them by Richardson extrapolation; it returns the
Jacobian and an estimate of its error, entry by entry. v^T J and J u are taken from that
Jacobian (their error bars propagated: sum |v_i| err_ij, sum err_ij |u_j|).

Which function is differenced:
- for the parsed program, the formula itself, evaluated without torch: SymPy's expressions
  lambdified to mpmath and evaluated at 30 digits, then rounded to float64 (so the only noise
  is float64's rounding of correct values). A point outside the domain gives NaN, which
  numdifftools steps around.
- for the user's code (--torch without FUNCTIONS), their torch function, in float64 under
  no_grad: there FD is the reference.

FD is judged as a candidate against the reference, agreeing "within its own error estimate":
entry by entry |FD - reference| <= SAFETY x error estimate + FLOOR x (1 + |reference|). The
safety factor is there because numdifftools' estimate is an estimate, not a bound (on smooth
test functions it undershoots the true error by up to about 20x at a few points in a hundred,
all within 1e-12 relative); the floor covers float64's rounding where the estimate is 0 (a
linear function). Over 200 random points of five smooth functions no entry used more than a
fifth of this tolerance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from .compare import compare_within
from .model import FdQuantity, FdReport, LimitError, Report

SAFETY = 10.0
FLOOR = 1e-12
MAX_VARIABLES = 200  # variable elements: each is differenced ~30 times
MAX_ENTRIES = 40_000  # Jacobian entries

METHOD = "central differences, Richardson extrapolation (numdifftools)"
TOLERANCE = (
    f"|FD - reference| <= {SAFETY:g} x FD's error estimate + {FLOOR:g} x (1 + |reference|), "
    "entry by entry"
)


def check_size(n: int, m: int) -> None:
    if n > MAX_VARIABLES or n * m > MAX_ENTRIES:
        raise LimitError(
            f"--fd on {n} variable elements and {m} outputs is beyond its limit "
            f"({MAX_VARIABLES} variables, {MAX_ENTRIES:,} Jacobian entries)",
            where="--fd",
            fix="drop --fd for a problem this size",
        )


def jacobian(
    f: Callable[[np.ndarray], np.ndarray], x0: Sequence[float], m: int
) -> tuple[np.ndarray, np.ndarray]:
    """numdifftools' Jacobian of `f` (R^n -> R^m) at x0 and its error estimate, m x n."""
    import warnings

    import numdifftools as nd

    n = len(x0)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        result = nd.Jacobian(f, full_output=True)(np.asarray(x0, dtype=np.float64))
    est = np.asarray(result.estimate, dtype=np.float64).reshape(m, n)
    err = np.asarray(result.error_estimate, dtype=np.float64).reshape(m, n)
    err = np.where(np.isfinite(est), err, np.nan)
    return est, err


def products(
    J: np.ndarray, E: np.ndarray, v: Sequence[float] | None, u: Sequence[float] | None
) -> tuple[tuple[np.ndarray, np.ndarray] | None, tuple[np.ndarray, np.ndarray] | None]:
    """(v^T J, its error) and (J u, its error) from the FD Jacobian and its error."""
    with np.errstate(all="ignore"):
        vjp = None
        if v is not None:
            va = np.asarray(v, dtype=np.float64)
            vjp = (va @ J, np.abs(va) @ E)
        jvp = None
        if u is not None:
            ua = np.asarray(u, dtype=np.float64)
            jvp = (J @ ua, E @ np.abs(ua))
    return vjp, jvp


def tolerance(error: Any, reference: Any) -> Any:
    """The per-entry tolerance of an FD value against `reference` (nested floats)."""
    e = np.asarray(error, dtype=np.float64)
    r = np.asarray(reference, dtype=np.float64)
    with np.errstate(all="ignore"):
        t = SAFETY * e + FLOOR * (1 + np.abs(np.where(np.isfinite(r), r, 0.0)))
    return t.tolist()


def formula_function(
    program: Any, shapes: Sequence[tuple[int, ...]]
) -> Callable[[np.ndarray], np.ndarray]:
    """The program's outputs as a float64 function of the flat variables, evaluated by
    mpmath at 30 digits from SymPy's expressions (no torch involved); NaN outside the
    domain."""
    import mpmath
    import sympy as sp

    from . import numeric, symbolic

    built = symbolic.build(program, shapes, "sympy")
    m = len(built.exprs)
    exprs = built.exprs
    symbols = built.symbols
    try:
        # dummify: the generated source names each argument by a Dummy, never by the
        # user's variable name; the expressions are SymPy trees built from the parse tree
        lam = sp.lambdify(symbols, exprs, modules="mpmath", dummify=True)
    except Exception:  # a function mpmath's printer cannot write: the numpy walk below
        lam = None

    def by_mpmath(x: np.ndarray) -> np.ndarray:
        assert lam is not None
        with mpmath.workdps(symbolic.DPS):
            try:
                vals = lam(*[mpmath.mpf(float(xi)) for xi in x])
            except (ValueError, ZeroDivisionError, OverflowError, TypeError):
                return np.full(m, np.nan)
            out = np.empty(m)
            for k, val in enumerate(vals):
                if isinstance(val, mpmath.mpc):
                    out[k] = float(val.real) if val.imag == 0 else np.nan
                else:
                    out[k] = float(val)
        return out

    def by_numpy(x: np.ndarray) -> np.ndarray:
        env = {s: np.asarray([float(xi)]) for s, xi in zip(symbols, x, strict=True)}
        memo: dict[Any, Any] = {}
        return np.array([numeric.evaluate(e, env, 1, memo)[0] for e in exprs])

    if lam is not None:
        try:
            with np.errstate(all="ignore"):
                by_mpmath(np.zeros(len(symbols)) + 0.5)
            return by_mpmath
        except (NameError, AttributeError):  # a name the lambdified code does not know
            pass
    return by_numpy


def code_function(
    loaded: Any, shapes: Sequence[tuple[int, ...]], m: int, device: str = "cpu"
) -> Callable[[np.ndarray], np.ndarray]:
    """The user's torch code as a float64 function of the flat variables (under no_grad);
    NaN where it raises or returns something not finite."""
    import torch

    from .autograd import _split, device_of

    dev = device_of(device)

    def f(x: np.ndarray) -> np.ndarray:
        args = _split([float(xi) for xi in x], shapes, torch.float64, dev)
        try:
            with torch.no_grad():
                result = loaded.fn(*args)
            items = list(result) if isinstance(result, (tuple, list)) else [result]
            flat = torch.cat(
                [torch.as_tensor(t, dtype=torch.float64).reshape(-1).cpu() for t in items]
            )
            if flat.numel() != m:
                return np.full(m, np.nan)
            return flat.numpy().astype(np.float64)
        except Exception:
            return np.full(m, np.nan)

    return f


def differentiate(
    f: Callable[[np.ndarray], np.ndarray],
    point: Sequence[float],
    m: int,
    v: Sequence[float] | None,
    u: Sequence[float] | None,
) -> tuple[FdQuantity, FdQuantity | None, FdQuantity | None]:
    """FD's Jacobian, v^T J and J u with their error bars (not yet judged)."""
    check_size(len(point), m)
    J, E = jacobian(f, point, m)
    vjp, jvp = products(J, E, v, u)
    jq = FdQuantity(J.tolist(), E.tolist())
    vq = None if vjp is None else FdQuantity(vjp[0].tolist(), vjp[1].tolist())
    uq = None if jvp is None else FdQuantity(jvp[0].tolist(), jvp[1].tolist())
    return jq, vq, uq


def judged(name: str, q: FdQuantity, reference: Any, beyond: Any = ()) -> FdQuantity:
    """`q` with its verdict against `reference`."""
    check = compare_within(
        name, reference, q.values, tolerance(q.error, reference), TOLERANCE, beyond
    )
    return replace(q, check=check)


def attach(report: Report, program: Any) -> Report:
    """The report with FD of the formula judged against the reference (report.fd)."""
    p, s = report.problem, report.symbolic
    assert p.point is not None and s.jacobian is not None
    m = len(s.row_labels)
    check_size(len(p.point), m)
    f = formula_function(program, p.shapes)
    jq, vq, uq = differentiate(f, p.point, m, p.v, p.u)
    jq = judged("jacobian", jq, s.jacobian, s.beyond("jacobian"))
    if vq is not None and s.vjp is not None:
        vq = judged("vjp", vq, s.vjp, s.beyond("vjp"))
    if uq is not None and s.jvp is not None:
        uq = judged("jvp", uq, s.jvp, s.beyond("jvp"))
    notes = []
    wrong = [
        q.check.name
        for q in (jq, vq, uq)
        if q is not None and q.check is not None and q.check.status == "disagree"
    ]
    torch_ok = [c.name for c in report.checks if c.agree]
    undefined_steps = not all(math.isfinite(x) for row in jq.values for x in row)
    if wrong and undefined_steps:
        notes.append(
            f"{', '.join(wrong)}: finite differences could not be taken here: a step of FD's "
            "stencil left the function's domain (the formula is NaN or infinite there, as "
            "sqrt or log just above 0), so FD's values are NaN; the reference and torch's "
            "autograd do not need those points"
        )
    elif wrong and all(name in torch_ok for name in wrong):
        notes.append(
            f"{', '.join(wrong)}: finite differences disagree where torch's autograd agrees "
            "with the reference: FD cannot resolve the derivative here (the function changes "
            "on a scale below FD's steps: an oscillation, a kink or a pole nearby; see FD's "
            "error estimate)"
        )
    fdr = FdReport(
        "formula",
        METHOD + " of the formula, evaluated by mpmath at 30 digits",
        TOLERANCE,
        jq,
        vq,
        uq,
        notes=tuple(notes),
    )
    return replace(report, fd=fdr)


def finite(values: Any) -> bool:
    return all(math.isfinite(x) for x in np.asarray(values, dtype=np.float64).reshape(-1))
