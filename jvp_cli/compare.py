"""Tolerances and verdicts. Knows neither SymPy nor torch: it compares floats.

Closeness follows torch.testing.assert_close: |actual - expected| <= atol + rtol * |expected|,
with the reference as `expected`. The reference decides what an entry is:
- finite (within float64, or beyond it: `beyond` lists those, whose float is +-inf): the
  candidate must be finite and close, else the entry disagrees (a torch NaN or inf where the
  mathematics has a number is a wrong answer, not "undefined");
- NaN or +-inf (outside the domain, a pole, a kink, a derivative that diverges): the entry
  is "undefined", whatever the candidate says.
A quantity disagrees when any entry does, else it is undefined when any entry is, else agree.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import Any

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
    beyond: Collection[tuple[int, ...]] = (),
    candidate: str = "torch",
) -> Check:
    """Compare two equally shaped nested sequences of floats; `beyond`: the indices where
    the reference is finite but beyond float64's range (its float is +-inf). `expected` is
    the reference, `actual` the candidate (torch's autograd, a claim, the user's code):
    every candidate is judged by this one comparison and gets this one verdict type."""
    from . import sparse

    if isinstance(expected, (sparse.Sparse, sparse.DenseView)) or \
            isinstance(actual, (sparse.Sparse, sparse.DenseView)):  # fmt: skip
        return compare_sparse(name, sparse.as_sparse(expected), sparse.as_sparse(actual),
                              rtol, atol, beyond, candidate)  # fmt: skip
    exp = _flatten(expected)
    act = _flatten(actual)
    if [i for i, _ in exp] != [i for i, _ in act]:
        raise ValueError(f"{name}: shapes differ")
    worst: tuple[int, ...] | None = None
    max_diff = 0.0
    undefined = []
    close = True
    for (idx, e), (_, a) in zip(exp, act, strict=True):
        if idx in beyond:  # no float64 is within any tolerance of it
            if worst is None or max_diff < math.inf:
                max_diff, worst = math.inf, idx
            close = False
            continue
        if not math.isfinite(e):
            undefined.append(idx)
            continue
        elif not math.isfinite(a):
            diff = math.inf
        else:
            diff = abs(a - e)
        if worst is None or diff > max_diff:
            max_diff, worst = diff, idx
        if not diff <= atol + rtol * abs(e):
            close = False
    # A definite disagreement outranks entries that are undefined.
    status = "disagree" if not close else ("undefined" if undefined else "agree")
    return Check(name, status, max_diff, rtol, atol, worst, tuple(undefined), candidate)


def compare_within(
    name: str,
    expected: Sequence[object],
    actual: Sequence[object],
    tolerance: Sequence[object],
    described: str,
    beyond: Collection[tuple[int, ...]] = (),
) -> Check:
    """`compare` with a tolerance per entry (`tolerance`, shaped like `expected`), for a
    candidate that brings its own error bar (finite differences); `described` says how the
    tolerance was made. The reference decides what an entry is, as in `compare`; a
    tolerance that is not finite (an FD estimate that failed) cannot vouch for anything."""
    exp = _flatten(expected)
    act = _flatten(actual)
    tol = _flatten(tolerance)
    if [i for i, _ in exp] != [i for i, _ in act] or [i for i, _ in exp] != [i for i, _ in tol]:
        raise ValueError(f"{name}: shapes differ")
    worst: tuple[int, ...] | None = None
    max_diff = 0.0
    undefined = []
    close = True
    for (idx, e), (_, a), (_, t) in zip(exp, act, tol, strict=True):
        if idx in beyond:
            max_diff, worst, close = math.inf, idx, False
            continue
        if not math.isfinite(e):
            undefined.append(idx)
            continue
        diff = abs(a - e) if math.isfinite(a) else math.inf
        if worst is None or diff > max_diff:
            max_diff, worst = diff, idx
        if not (math.isfinite(t) and diff <= t):
            close = False
    status = "disagree" if not close else ("undefined" if undefined else "agree")
    return Check(name, status, max_diff, math.nan, math.nan, worst, tuple(undefined),
                 candidate="fd", tolerance=described)  # fmt: skip


def compare_sparse(
    name: str,
    expected: Any,
    actual: Any,
    rtol: float,
    atol: float,
    beyond: Collection[tuple[int, ...]] = (),
    candidate: str = "torch",
) -> Check:
    """`compare` of two sparse.Sparse matrices in time proportional to their stored entries
    (plus the rows): an entry stored in neither is 0 on both sides, which agrees. The same
    verdict, difference and worst index as the dense comparison of the same matrices; a row
    the reference holds undefined throughout lists its entries in `undefined` while the
    matrix is small (sparse.DENSE_ENTRIES), and only its index in `undefined_rows` beyond."""
    from .sparse import DENSE_ENTRIES

    if tuple(expected.shape) != tuple(actual.shape):
        raise ValueError(f"{name}: shapes differ")
    m, n = expected.shape
    small = m * n <= DENSE_ENTRIES
    over = set(beyond)
    over_rows: dict[int, list[int]] = {}
    for idx in over:
        over_rows.setdefault(idx[0], []).append(idx[1])
    worst: tuple[int, ...] | None = None
    max_diff = 0.0
    undefined: list[tuple[int, ...]] = []
    undefined_rows: list[int] = []
    close = True
    for i in range(m):
        if i in expected.nan_rows:
            if small:
                undefined.extend((i, j) for j in range(n))
            else:
                undefined_rows.append(i)
            continue
        if worst is None or i in actual.nan_rows:
            # densely while no entry has been judged (the first one is the worst so far,
            # as in the dense comparison)
            pairs: Any = zip(range(n), expected.dense_row(i), actual.dense_row(i), strict=True)
        else:
            pairs = _union(expected.row_dict(i), actual.row_dict(i), over_rows.get(i, ()))
        for j, e, a in pairs:
            idx = (i, j)
            if idx in over:  # no float64 is within any tolerance of it
                if worst is None or max_diff < math.inf:
                    max_diff, worst = math.inf, idx
                close = False
                continue
            if not math.isfinite(e):
                undefined.append(idx)
                continue
            elif not math.isfinite(a):
                diff = math.inf
            else:
                diff = abs(a - e)
            if worst is None or diff > max_diff:
                max_diff, worst = diff, idx
            if not diff <= atol + rtol * abs(e):
                close = False
    status = "disagree" if not close else (
        "undefined" if undefined or undefined_rows else "agree")  # fmt: skip
    return Check(name, status, max_diff, rtol, atol, worst, tuple(undefined), candidate,
                 undefined_rows=tuple(undefined_rows))  # fmt: skip


def _union(
    exp: dict[int, float], act: dict[int, float], more: Sequence[int] = ()
) -> list[tuple[int, float, float]]:
    """(column, reference, candidate) over the columns either side stores (and `more`),
    ascending."""
    keys = exp.keys() | act.keys() if act.keys() != exp.keys() else exp.keys()
    cols = sorted(keys | set(more)) if more else sorted(keys)
    return [(j, exp.get(j, 0.0), act.get(j, 0.0)) for j in cols]
