"""Tolerances and verdicts. Knows neither SymPy nor torch: it compares floats.

Closeness follows torch.testing.assert_close: |actual - expected| <= atol + rtol * |expected|,
with the SymPy value as `expected` (it is the reference). An entry where either side is NaN or
infinite is never "agree": the quantity is "undefined", and the entries are listed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .model import Check

# Defaults that suit the dtype (float64 as the issue asks; float32 as torch.testing uses).
DEFAULT_TOLERANCES = {"float64": (1e-7, 1e-7), "float32": (1.3e-6, 1e-5)}


def tolerances(dtype: str, rtol: float | None, atol: float | None) -> tuple[float, float]:
    d_rtol, d_atol = DEFAULT_TOLERANCES[dtype]
    return (d_rtol if rtol is None else rtol, d_atol if atol is None else atol)


def _flatten(values: object, index: tuple[int, ...] = ()) -> list[tuple[tuple[int, ...], float]]:
    if isinstance(values, (list, tuple)):
        out = []
        for i, x in enumerate(values):
            out.extend(_flatten(x, (*index, i)))
        return out
    assert isinstance(values, float | int)
    return [(index, float(values))]


def compare(
    name: str,
    expected: Sequence[object],
    actual: Sequence[object],
    rtol: float,
    atol: float,
) -> Check:
    """Compare two equally shaped nested sequences of floats."""
    exp = _flatten(expected)
    act = _flatten(actual)
    if [i for i, _ in exp] != [i for i, _ in act]:
        raise ValueError(f"{name}: shapes differ")
    worst: tuple[int, ...] | None = None
    max_diff = 0.0
    undefined = []
    close = True
    for (idx, e), (_, a) in zip(exp, act, strict=True):
        if not (math.isfinite(e) and math.isfinite(a)):
            undefined.append(idx)
            continue
        diff = abs(a - e)
        if worst is None or diff > max_diff:
            max_diff, worst = diff, idx
        if diff > atol + rtol * abs(e):
            close = False
    # A definite disagreement on finite entries outranks entries that are undefined.
    status = "disagree" if not close else ("undefined" if undefined else "agree")
    return Check(name, status, max_diff, rtol, atol, worst, tuple(undefined))
