"""--sample N: every claim and check at N random points of a box, and the first failing
point shrunk toward simple values, the way a property-based test shrinks its examples.

One point, the single-point reference and every candidate: the reference (`reference_at`)
is the report's own SymPy side, symbolic._values_at at 30 certified digits with the exact
domain walk (the function --points falls back to for a point its fast path cannot certify),
built and differentiated once for the whole sweep. Each candidate is judged against it by
compare.compare, as in the report. A point agrees when every candidate agrees on every
quantity it gives, disagrees when any disagrees, and is undefined otherwise (the reference
is NaN or infinite there: outside the domain, a kink).

Many points at once, where --points' machinery applies (scalar variables, element-wise
programs, no --u): the reference comes from batch.symbolic_side's fast path (J as e_i^T J row
by row and v^T J, in float64 with a certified error bound) and torch from batch.torch_side
(batched leaves, y.backward(e_i) and y.backward(v)). A point takes those fast values only
where they decide every verdict there, as --points decides it: every value CERTAIN, its bound
below KAPPA of the tolerance, and no candidate within the bound of the tolerance's edge;
any other point, and every shrink candidate, is judged by the single-point reference.

The hook for more candidates. A candidate is

    Candidate(name, values)    with    values(point) -> {quantity: flat values}

(and optionally `batch=`, the same for a points x variables array at once)

where `point` is a tuple of floats (the variables' elements, flat, in variable order),
`quantity` is "jacobian" (row-major, outputs x variables), "vjp" (v^T J for the sweep's v)
or "jvp" (J u for its u), and each value list is flat in the reference's layout. Return NaN
for a value the candidate cannot give at that point; an exception is not caught (a candidate
that reports errors as results, such as the user's own torch code, turns them into NaN or
into its own note before returning). `sweep(..., extra=[...])` takes such candidates beside
the built-in ones (torch's autograd of the parsed program, each symbolic --expect claim),
and nothing else here changes: counting, the worst point and shrinking treat every
candidate alike.

Shrinking: for the first failing point, each coordinate in turn is replaced by a simpler
value (0, then small integers, halves, one and two decimals, always inside the box), and a
replacement is kept when the point still fails with the full single-point reference; this
repeats until no coordinate simplifies (at most SHRINK_BUDGET checks).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from . import lang
from .compare import compare
from .model import Check, InputError, Problem, SamplePoint, SampleResult, printable

DEFAULT_BOX = (-2.0, 2.0)
MAX_POINTS = 100_000
SHRINK_BUDGET = 400  # single-point checks the shrinking may run

Point = tuple[float, ...]
Values = dict[str, Sequence[float]]


class Candidate(NamedTuple):
    """Something judged against the reference at each point: `values(point)` returns
    {quantity: flat values} for the quantities it computes (see the module docstring).
    `batch`, optional, gives the same for all points at once (points x values arrays), where
    the candidate can (torch on batched leaves, as --points runs it)."""

    name: str
    values: Callable[[Point], Values]
    batch: Callable[[Any], dict[str, Any]] | None = None


@dataclass(frozen=True)
class Options:
    n: int
    seed: int
    box: tuple[tuple[str, float, float], ...]  # per variable


def _box_error(what: str, text: str, pos: int) -> InputError:
    return InputError(what, where="--box", source=text, pos=pos,
                      fix="e.g. --box x=-3:3,y=0.1:2 (LOW:HIGH per variable)")  # fmt: skip


def options(problem: Problem, n: int, box: str | None, seed: int | None) -> Options:
    """--sample N, --box and --seed, validated (exit 2 on bad input)."""
    if not 1 <= n <= MAX_POINTS:
        raise InputError(f"--sample {n} is not between 1 and {MAX_POINTS:,}", where="--sample",
                         fix="give the number of random points, e.g. --sample 1000")  # fmt: skip
    if seed is not None and not 0 <= seed < 2**63:
        raise InputError("--seed must be an integer from 0 to 2**63 - 1", where="--seed")
    bounds = dict.fromkeys(problem.variables, DEFAULT_BOX)
    given: set[str] = set()
    if box is not None:
        if not box.strip():
            raise _box_error("--box is empty", box, 0)
        for item, off in lang.split_items(box):
            eq = item.find("=")
            if eq < 0:
                raise _box_error("expected NAME=LOW:HIGH", box, off)
            name = item[:eq].strip()
            if name not in problem.variables:
                raise _box_error(f"'{printable(name)}' is not a variable ("
                                 f"{', '.join(problem.variables)})", box, off)  # fmt: skip
            if name in given:
                raise _box_error(f"'{name}' is given twice", box, off)
            rest = item[eq + 1 :]
            colon = rest.find(":")
            if colon < 0:
                raise _box_error(f"expected LOW:HIGH for {name}", box, off + eq + 1)
            ends = []
            for text, pos in ((rest[:colon], off + eq + 1), (rest[colon + 1 :],
                                                             off + eq + 2 + colon)):  # fmt: skip
                try:
                    ends.append(lang.evaluate_constant(text, "--box"))
                except InputError as exc:
                    raise _box_error(exc.what, box, pos + (exc.pos or 0)) from None
            lo, hi = ends
            if not lo < hi:
                raise _box_error(f"the range of {name} is empty ({lo:g} is not below {hi:g})",
                                 box, off + eq + 1)  # fmt: skip
            bounds[name] = (lo, hi)
            given.add(name)
    return Options(n, 0 if seed is None else seed,
                   tuple((name, *bounds[name]) for name in problem.variables))  # fmt: skip


def reference_at(
    program: lang.Program, problem: Problem, v: Sequence[float] | None, u: Sequence[float] | None
) -> Callable[[Point], dict[str, tuple[tuple[float, ...], set[tuple[int, ...]]]]]:
    """The single-point reference, differentiated once: point -> {quantity: (flat values,
    the flat indices whose value is finite but beyond float64)}."""
    from . import symbolic

    built = symbolic.build(program, problem.shapes, "sympy")
    jac = symbolic.jacobian(built.exprs, built.symbols)
    n = len(built.symbols)

    def at(point: Point) -> dict[str, tuple[tuple[float, ...], set[tuple[int, ...]]]]:
        res = symbolic._values_at(program, problem.shapes, built, jac, "sympy",
                                  list(point)).result((), "", "", 0, v, u)  # fmt: skip
        assert res.jacobian is not None
        out = {"jacobian": (tuple(x for row in res.jacobian for x in row),
                            {(i * n + j,) for (i, j) in res.beyond("jacobian")})}  # fmt: skip
        if res.vjp is not None:
            out["vjp"] = (res.vjp, set(res.beyond("vjp")))
        if res.jvp is not None:
            out["jvp"] = (res.jvp, set(res.beyond("jvp")))
        return out

    return at


def torch_candidate(
    program: lang.Program, problem: Problem, v: Sequence[float] | None, u: Sequence[float] | None
) -> Candidate:
    """torch's autograd of the parsed program: J (a backward pass per row), y.backward(v),
    forward-mode J u."""
    from . import autograd

    def values(point: Point) -> Values:
        res = autograd.evaluate(program, problem.shapes, list(point), v, u, problem.dtype,
                                problem.device)  # fmt: skip
        out: Values = {"jacobian": [x for row in res.jacobian for x in row]}
        if res.vjp is not None:
            out["vjp"] = res.vjp
        if res.jvp is not None:
            out["jvp"] = res.jvp
        return out

    return Candidate("torch", values, _torch_batch(program, problem, v, u))


def _torch_batch(
    program: lang.Program, problem: Problem, v: Sequence[float] | None, u: Sequence[float] | None
) -> Callable[[Any], dict[str, Any]] | None:
    """torch on all points at once, as --points runs it (batch.torch_side): J row by row as
    y.backward(e_i), and y.backward(v). None where --points' batching does not apply
    (tensors, reductions) or forward mode is asked for (it runs per point)."""
    import numpy as np

    from . import batch

    if u is not None:
        return None
    try:
        batch.check_supported(program, problem)
    except InputError:
        return None
    side = batch.torch_side(program, problem)
    m = len(problem.outputs)

    def run(X: Any) -> dict[str, Any]:
        N = len(X)
        rows = [side(X, np.tile(np.eye(m)[i], (N, 1)))[0] for i in range(m)]
        out = {"jacobian": np.hstack(rows)}
        if v is not None:
            out["vjp"] = side(X, np.tile(np.asarray(v, dtype=float), (N, 1)))[0]
        return out

    return run


def _fast_reference(
    program: lang.Program, problem: Problem, v: Sequence[float] | None, u: Sequence[float] | None
) -> Callable[[Any], dict[str, Any]] | None:
    """The reference for all points at once by --points' fast path (batch.symbolic_side:
    v^T J in float64 with a certified error bound): J as e_i^T J row by row, and v^T J.
    Per quantity (values, error bounds, certain): a point whose values are not CERTAIN
    (a domain condition near or past its boundary, an overflow) takes the single-point
    reference instead. None where the fast path does not apply."""
    import numpy as np

    from . import batch, numeric

    if u is not None:
        return None
    try:
        batch.check_supported(program, problem)
    except InputError:
        return None
    side = batch.symbolic_side(program, problem)
    fast = side.fast
    if fast is None:
        return None
    m = len(problem.outputs)

    def run(X: Any) -> dict[str, Any]:
        N = len(X)
        parts = [fast(X, np.tile(np.eye(m)[i], (N, 1))) for i in range(m)]
        out = {
            "jacobian": (
                np.hstack([p.G for p in parts]),
                np.hstack([p.R for p in parts]),
                np.all([p.state == numeric.CERTAIN for p in parts], axis=0),
            )
        }
        if v is not None:
            ev = fast(X, np.tile(np.asarray(v, dtype=float), (N, 1)))
            out["vjp"] = (ev.G, ev.R, ev.state == numeric.CERTAIN)
        return out

    return run


def claim_candidates(program: lang.Program, problem: Problem, claims: Sequence[Any]
                     ) -> tuple[list[Candidate], list[str]]:  # fmt: skip
    """Each symbolic --expect claim as a candidate (its expressions at 30 digits), and notes
    for the claims a sweep cannot use (numbers are values at --at only; a Jacobian in J^T's
    shape is already wrong)."""
    import sympy as sp

    from . import exact, symbolic

    built = symbolic.build(program, problem.shapes, "sympy")
    symbols = built.symbols
    m, n = len(built.exprs), len(symbols)
    out: list[Candidate] = []
    notes: list[str] = []
    for c in claims:
        if not c.symbolic:
            notes.append(f"{c.text}: numbers, checked at --at only (a sweep checks expressions)")
            continue
        if c.quantity == "jacobian" and c.shape != (m, n):
            notes.append(f"{c.text}: in J^T's shape, not swept")
            continue
        exprs: list[Any] = []
        for leaf in c.leaves:
            exprs.extend(symbolic.build(leaf.program, problem.shapes, "sympy").exprs)
        key = "vjp" if c.quantity in ("vjp", "grad") else c.quantity

        def values(point: Point, exprs: list[Any] = exprs, key: str = key) -> Values:
            subs = {s: sp.Rational(x) for s, x in zip(symbols, point, strict=True)}
            vals = []
            for e in exprs:
                try:
                    got = exact.value(e, subs)
                except exact.Uncertified:
                    got = None
                vals.append(math.nan if got is None else float(got))
            return {key: vals}

        out.append(Candidate(f"claim {c.text}", values))
    return out, notes


class _Verdict(NamedTuple):
    status: str
    diff: float
    worst: tuple[str, str, Sequence[float], Sequence[float]] | None  # candidate, quantity,...
    failing: tuple[str, str, Sequence[float], Sequence[float]] | None


def judge_point(point: Point, reference: Callable[[Point], Any], candidates: Sequence[Candidate],
                problem: Problem) -> _Verdict:  # fmt: skip
    """Every candidate against the single-point reference at one point."""
    return _combine(reference(point), [(c.name, c.values(point)) for c in candidates], problem)


def _combine(ref: dict[str, Any], given: Sequence[tuple[str, Values]], problem: Problem
             ) -> _Verdict:  # fmt: skip
    """Each candidate's values against the reference's, by compare.compare."""
    checks: list[tuple[Check, str, str, Sequence[float], Sequence[float]]] = []
    for name, values in given:
        for quantity, vals in values.items():
            if quantity not in ref:
                continue
            expected, beyond = ref[quantity]
            if len(vals) != len(expected):
                raise InputError(
                    f"{name} gave {len(vals)} values for {quantity}, the reference has "
                    f"{len(expected)}",
                    where="--sample",
                )
            check = compare(quantity, list(expected), [float(x) for x in vals], problem.rtol,
                            problem.atol,
                            beyond, name)  # fmt: skip
            checks.append((check, name, quantity, tuple(vals), tuple(expected)))
    statuses = {c.status for c, *_ in checks}
    status = next((s for s in ("disagree", "undefined") if s in statuses), "agree")
    worst = None
    diff = -1.0
    failing = None
    for check, name, quantity, vals, expected in checks:
        if check.max_abs_diff > diff:
            diff, worst = check.max_abs_diff, (name, quantity, vals, expected)
        if failing is None and check.status == "disagree":
            failing = (name, quantity, vals, expected)
    return _Verdict(status, max(diff, 0.0), worst, failing)


KAPPA = (
    1e-3  # as in batch: a fast value is used when its bound is below this share of the tolerance
)


def _certain_at(ref_all: dict[str, Any], k: int, given: Sequence[tuple[str, Values]],
                problem: Problem) -> dict[str, Any] | None:  # fmt: skip
    """The fast reference at point k where it decides every verdict there (as batch's
    _certify decides it: certain, a bound far below the tolerance, and no candidate within
    the bound of the tolerance's edge), else None (the single-point reference then)."""
    import numpy as np

    out: dict[str, Any] = {}
    for q, (G, R, certain) in ref_all.items():
        if not certain[k]:
            return None
        g, r = G[k], R[k]
        with np.errstate(all="ignore"):
            tol = problem.atol + problem.rtol * np.abs(g)
            if not (r <= KAPPA * tol).all():
                return None
            for _, values in given:
                if q in values:
                    a = np.asarray(values[q], dtype=float)
                    if (
                        a.shape == g.shape
                        and (np.abs(np.abs(a - g) - tol) <= r * (1 + problem.rtol) + 1e-300).any()
                    ):
                        return None
        out[q] = (tuple(float(x) for x in g), set())
    return out


def _complexity(x: float) -> tuple[int, float, int]:
    """How simple a value is: integers before halves before one, then two decimals, then
    anything; then smaller magnitudes; then positive before negative."""
    if x == int(x):
        kind = 0
    elif 2 * x == int(2 * x):
        kind = 1
    elif round(x, 1) == x:
        kind = 2
    elif round(x, 2) == x:
        kind = 3
    else:
        kind = 4
    return kind, abs(x), 1 if x < 0 else 0


def _simpler(x: float, lo: float, hi: float) -> list[float]:
    """Values simpler than x inside [lo, hi], simplest first."""
    big = min(math.ceil(abs(x)), 1_000_000)
    cands = {0.0, float(round(x)), float(math.trunc(x)), float(math.floor(x)),
             float(math.ceil(x)), math.floor(2 * x) / 2, math.ceil(2 * x) / 2, round(x, 1),
             round(x, 2), -x}  # fmt: skip
    cands.update(float(k) for k in range(-min(big, 20), min(big, 20) + 1))
    here = _complexity(x)
    keep = [c for c in cands if lo <= c <= hi and math.isfinite(c) and _complexity(c) < here]
    return sorted(keep, key=_complexity)


def shrink(point: Point, fails: Callable[[Point], bool], bounds: Sequence[tuple[float, float]],
           budget: int = SHRINK_BUDGET) -> tuple[Point, int, int]:  # fmt: skip
    """Simplify `point` coordinate by coordinate while `fails` stays true; (the shrunk
    point, simplifications kept, checks run)."""
    current = list(point)
    steps = checks = 0
    improved = True
    while improved and checks < budget:
        improved = False
        for i, (lo, hi) in enumerate(bounds):
            for value in _simpler(current[i], lo, hi):
                if checks >= budget:
                    break
                trial = [*current[:i], value, *current[i + 1 :]]
                checks += 1
                if fails(tuple(trial)):
                    current = trial
                    steps += 1
                    improved = True
                    break
    return tuple(current), steps, checks


def sweep(
    program: lang.Program,
    problem: Problem,
    opts: Options,
    claims: Sequence[Any],
    v: Sequence[float] | None,
    u: Sequence[float] | None,
    extra: Sequence[Candidate] = (),
) -> SampleResult:
    """Every check and claim at opts.n points of the box (seeded), counted, the worst point
    and the first failure (shrunk). `extra`: more candidates (the hook above)."""
    import numpy as np

    from .shapes import labels

    sizes = [math.prod(s) for s in problem.shapes]
    bounds = [(lo, hi) for (_, lo, hi), k in zip(opts.box, sizes, strict=True) for _ in range(k)]
    rng = np.random.default_rng(opts.seed)
    lows = np.array([lo for lo, _ in bounds])
    highs = np.array([hi for _, hi in bounds])
    X = rng.uniform(lows, highs, size=(opts.n, len(bounds)))
    reference = reference_at(program, problem, v, u)
    mine, notes = claim_candidates(program, problem, claims)
    candidates = [torch_candidate(program, problem, v, u), *mine, *extra]
    fast = _fast_reference(program, problem, v, u) if problem.device == "cpu" else None
    ref_all = fast(X) if fast is not None else None
    batched = {c.name: c.batch(X) for c in candidates if c.batch is not None and ref_all}
    counts = {"agree": 0, "disagree": 0, "undefined": 0}
    worst: SamplePoint | None = None
    first: tuple[int, Point] | None = None
    exact_points = 0
    for k in range(opts.n):
        point = tuple(float(x) for x in X[k])
        verdict = None
        if ref_all is not None:
            given = [(c.name, {q: a[k] for q, a in batched[c.name].items()}
                      if c.name in batched else c.values(point)) for c in candidates]  # fmt: skip
            ref = _certain_at(ref_all, k, given, problem)
            if ref is not None:
                verdict = _combine(ref, given, problem)
        if verdict is None:
            exact_points += 1
            verdict = judge_point(point, reference, candidates, problem)
        counts[verdict.status] += 1
        if verdict.worst is not None and (worst is None or verdict.diff > worst.diff):
            name, quantity, vals, expected = verdict.worst
            worst = SamplePoint(point, verdict.diff, name, quantity, verdict.status,
                                tuple(vals), tuple(expected))  # fmt: skip
        if first is None and verdict.status == "disagree":
            first = (k, point)
    failure = None
    steps = checks = 0
    if first is not None:

        def fails(q: Point) -> bool:
            return judge_point(q, reference, candidates, problem).status == "disagree"

        shrunk, steps, checks = shrink(first[1], fails, bounds)
        verdict = judge_point(shrunk, reference, candidates, problem)
        assert verdict.failing is not None
        name, quantity, vals, expected = verdict.failing
        failure = SamplePoint(shrunk, verdict.diff, name, quantity, verdict.status,
                              tuple(vals), tuple(expected))  # fmt: skip
    if v is None and len(problem.outputs) > 1:
        notes.append("no --v: v^T J is not swept (the Jacobian is)")
    del labels
    return SampleResult(
        n=opts.n,
        seed=opts.seed,
        box=opts.box,
        agree=counts["agree"],
        disagree=counts["disagree"],
        undefined=counts["undefined"],
        candidates=tuple(c.name for c in candidates),
        worst=worst,
        first_failure=failure,
        found_at=None if first is None else first[1],
        found_index=None if first is None else first[0],
        shrink_steps=steps,
        shrink_checks=checks,
        notes=tuple(notes),
        exact_points=exact_points,
        fast=ref_all is not None,
    )
