"""What every view shares: how a number is written, values beyond float64, per-name slices.

Non-finite numbers are encoded for JSON as the strings "NaN", "Infinity" and "-Infinity", and
-0.0 as 0.0, so `json.dumps(..., allow_nan=False)` never fails.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ..model import Report


class Exact(float):
    """A reference value beyond float64's range: the float is +-inf, `text` holds its
    30-digit decimal, which both views show instead (JSON as a string)."""

    text: str

    def __new__(cls, value: float, text: str) -> Exact:
        obj = super().__new__(cls, value)
        obj.text = text
        return obj

    def __reduce__(self) -> tuple[Any, ...]:  # pickled whole (a forked child's results)
        return (Exact, (float(self), self.text))


def exact_values(values: Any, beyond: dict[tuple[int, ...], str], index: tuple[int, ...] = ()
                 ) -> Any:  # fmt: skip
    """`values` (nested sequences of floats) with the entries of `beyond` as Exact."""
    if not beyond:
        return values
    if isinstance(values, (list, tuple)):
        return [exact_values(v, beyond, (*index, i)) for i, v in enumerate(values)]
    text = beyond.get(index)
    return values if text is None else Exact(values, text)


def json_number(x: float) -> float | str:
    if isinstance(x, Exact):
        return x.text
    if math.isnan(x):
        return "NaN"
    if math.isinf(x):
        return "Infinity" if x > 0 else "-Infinity"
    return 0.0 if x == 0 else float(x)


def nums(values: Any) -> Any:
    if isinstance(values, (list, tuple)):
        return [nums(v) for v in values]
    return json_number(values)


def fmt(x: float) -> str:
    if isinstance(x, Exact):
        return x.text
    if math.isnan(x):
        return "nan"
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    if x == 0:
        return "0"
    return f"{x:.12g}"


def fmt_vec(xs: Sequence[float], full: bool = True) -> str:
    return "(" + ", ".join(few([fmt(x) for x in xs], 12, full)) + ")"


def few(items: Sequence[str], limit: int, full: bool) -> list[str]:
    """All items, or when there are more than `limit` (and not --full), the first ones, a
    count of those left out, and the last."""
    if full or len(items) <= limit:
        return list(items)
    return [*items[: limit - 2], f"… {len(items) - limit + 1} more …", items[-1]]


def per_name(
    flat: Sequence[float], names: Sequence[str], shapes: Sequence[tuple[int, ...]]
) -> list[tuple[str, tuple[int, ...], Sequence[float]]]:
    out = []
    k = 0
    for name, shape in zip(names, shapes, strict=True):
        n = math.prod(shape)
        out.append((name, shape, flat[k : k + n]))
        k += n
    return out


def overall(report: Report) -> str:
    """The whole report's status: disagree over undefined over agree."""
    statuses = {c.status for c in report.checks} | {c.status for c in report.claims}
    if report.sample is not None:  # a sweep's undefined points are counted, not failures
        statuses.add("agree" if report.sample.ok else "disagree")
    # --torch / --fd: an error in the user's code reads as a disagreement
    statuses |= {"disagree" if s == "error" else s for s in report.candidate_statuses}
    if not statuses:
        return "symbolic-only"
    for s in ("disagree", "undefined"):
        if s in statuses:
            return s
    return "agree"
