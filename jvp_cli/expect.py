"""--expect: the user's claimed values judged against the reference, and why a wrong one is wrong.

A claim is a candidate, as torch's autograd is: `vjp=10,34,42` (a VJP for the given --v),
`grad=...` (the gradient of a scalar output), `jvp=...` (J u for the given --u) or
`jacobian=...` (rows as nested lists or separated by ';'). Values take the forms of --v/--u
(by position, by name, nested lists for tensors) and may be expressions in the variables.
They are parsed by the project's own parser (lang.py): nothing the user types is executed.

The reference is the SymPy side (symbolic.py): the claim is compared with it at --at by
compare.compare, the one comparison every candidate goes through, and a symbolic claim is
also checked as a function: each entry minus the reference's entry is simplified (cancelled,
expanded, then sympy.simplify); where that gives zero the entry is identical, where it gives a
nonzero constant it is not, and where simplification cannot decide, both sides are evaluated
at random points to 30 certified digits (exact.py) as evidence. The report says which way
each claim was decided.

When a claim is wrong, `diagnose_*` says why, as a teacher would: the cotangent (tangent) that
would give the claimed numbers, solved exactly in rationals where J at the point is exact
(least squares in floats otherwise, accepted only when the residual vanishes); J v given for
v^T J (the transpose mix-up); a sum along the wrong axis; a constant factor; for a Jacobian,
each wrong entry with its correct derivative, a transposed matrix, swapped rows or columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from . import exact, lang
from .compare import compare
from .model import Claim, InputError, Problem, Report, printable
from .shapes import Shape, infer
from .shapes import fmt as fmt_shape
from .views.common import Exact

QUANTITIES = ("vjp", "grad", "jvp", "jacobian")
RANDOM_POINTS = 8  # points of the numeric evidence per scale, when simplification cannot decide
RANDOM_SCALES = (1.0, 10.0, 100.0)  # the evidence's boxes: [-2, 2], [-20, 20], [-200, 200]
MAX_STRUCTURE = 12  # rows/columns up to which a Jacobian's layout (transpose, swaps) is examined


# ---- parsing (lang only: no SymPy) ------------------------------------------------------


@dataclass
class Leaf:
    """One expression of a claim: its text, where it starts in the option, its parse."""

    text: str
    offset: int
    program: lang.Program
    shape: Shape  # what it evaluates to (a tensor expression for a tensor variable)

    @property
    def constant(self) -> bool:
        return not lang.names_in(self.program.output_exprs[0])


@dataclass
class Parsed:
    """A claim as typed: its quantity and its expressions, flat in the claim's layout."""

    quantity: str
    text: str
    leaves: list[Leaf]  # each yields one or more flat entries (a tensor expression: several)
    shape: tuple[int, ...]  # the claim's shape: (n,) VJP, (m,) JVP, (rows, cols) Jacobian
    symbolic: bool = field(default=False)


def _fail(what: str, source: str, pos: int | None, fix: str | None = None) -> InputError:
    return InputError(what, where="--expect", source=source, pos=pos, fix=fix)


def _leaf(text: str, offset: int, source: str, problem: Problem) -> Leaf:
    """Parse one value: a constant or an expression in the problem's variables."""
    lead = len(text) - len(text.lstrip())
    body = text.strip()
    if not body:
        raise _fail("an empty value", source, offset, "give a number or an expression")
    try:
        node = lang.parse_expression(body, "--expect")
    except InputError as exc:
        pos = None if exc.pos is None else offset + lead + exc.pos
        raise _fail(exc.what, source, pos if pos is not None else offset, exc.fix) from None
    for name, pos in lang.names_in(node):
        if name not in problem.variables:
            raise _fail(
                f"'{printable(name)}' is not a variable of the functions",
                source,
                offset + lead + pos,
                f"a claim may use the variables {', '.join(problem.variables)}",
            )
    try:
        program = lang.parse_program(body, variables=problem.variables, where="--expect")
        (shape,) = infer(program, dict(zip(problem.variables, problem.shapes, strict=True)))
    except InputError as exc:
        pos = None if exc.pos is None else offset + lead + exc.pos
        raise _fail(exc.what, source, pos if pos is not None else offset, exc.fix) from None
    return Leaf(body, offset + lead, program, tuple(shape))


def _nested(text: str, offset: int, source: str, problem: Problem) -> tuple[Shape, list[Leaf]]:
    """[[a, b], [c, d]] -> ((2, 2), leaves); a plain value -> its own shape."""
    body = text.strip()
    lead = offset + len(text) - len(text.lstrip())
    if not body.startswith("["):
        leaf = _leaf(text, offset, source, problem)
        return leaf.shape, [leaf]
    if not body.endswith("]"):
        raise _fail("'[' is never closed", source, lead, "close every '[' with ']'")
    inner = body[1:-1]
    if not inner.strip():
        raise _fail("empty list '[]'", source, lead, "give at least one value")
    shapes: list[Shape] = []
    leaves: list[Leaf] = []
    for piece, off in lang.split_items(inner):
        pos = lead + 1 + off
        if not piece.strip():
            raise _fail("empty element", source, pos, "remove the extra comma")
        shape, sub = _nested(piece, pos, source, problem)
        if piece.strip().startswith("[") is False and shape != ():
            raise _fail(f"an element of a list has shape {fmt_shape(shape)}", source, pos,
                        "each element of a nested list is one number or expression")  # fmt: skip
        if shapes and shape != shapes[0]:
            raise _fail(
                f"ragged nested list: element of shape {fmt_shape(shape)} after "
                f"{fmt_shape(shapes[0])}",
                source,
                pos,
                "every row needs the same length",
            )
        shapes.append(shape)
        leaves.extend(sub)
    return (len(shapes), *shapes[0]), leaves


def _size(shape: Shape) -> int:
    return math.prod(shape)


def _named_values(
    body: str, offset: int, source: str, problem: Problem, names: Sequence[str],
    shapes: Sequence[Shape], what: str,
) -> list[Leaf]:  # fmt: skip
    """Values in `names` order (`1,2,3`) or by name (`x1=1,x2=2`), as --v and --u take them."""
    items = list(lang.split_items(body))
    parsed: list[tuple[str | None, str, int]] = []
    for k, (item, off) in enumerate(items, start=1):
        pos = offset + off
        if not item.strip():
            raise _fail(f"item {k} is empty", source, pos, "remove the extra comma or give a value")
        eq = item.find("=")
        if eq >= 0 and "[" not in item[:eq]:
            name = item[:eq].strip()
            if name not in names:
                raise _fail(f"'{printable(name)}' is not one of the {what}", source, pos,
                            f"use {', '.join(names)}")  # fmt: skip
            parsed.append((name, item[eq + 1 :], pos + eq + 1))
        else:
            parsed.append((None, item, pos))
    named = [p for p in parsed if p[0] is not None]
    if named and len(named) != len(parsed):
        raise _fail("mixes named (a=1) and positional values", source, offset,
                    "name every value or none")  # fmt: skip
    if not named:
        if len(parsed) != len(names):
            tensors = [n for n, s in zip(names, shapes, strict=True) if s]
            fix = f"give exactly {len(names)}, in that order, or name them ({names[0]}=...)"
            if tensors:
                fix = f"one value per name, a tensor as a nested list ({tensors[0]}=[[...]])"
            raise _fail(
                f"got {len(parsed)} value{'s' if len(parsed) != 1 else ''} but there "
                f"{'is' if len(names) == 1 else 'are'} {len(names)} {what} ({', '.join(names)})",
                source,
                offset,
                fix,
            )
        parsed = [(n, t, o) for n, (_, t, o) in zip(names, parsed, strict=True)]
    by_name: dict[str, list[Leaf]] = {}
    for name, text, pos in parsed:
        assert name is not None
        if name in by_name:
            raise _fail(f"'{name}' is given twice", source, pos, "give each name once")
        shape, leaves = _nested(text, pos, source, problem)
        want = shapes[list(names).index(name)]
        if shape != want:
            has = "is a scalar" if shape == () else f"has shape {fmt_shape(shape)}"
            wants = "is a scalar" if want == () else f"has shape {fmt_shape(want)}"
            raise _fail(f"the value for {name} {has}, but {name} {wants}", source, pos,
                        f"give {name} as nested lists of shape {fmt_shape(want)}" if want
                        else f"give {name} as one value")  # fmt: skip
        by_name[name] = leaves
    missing = [n for n in names if n not in by_name]
    if missing:
        raise _fail(f"no value for {', '.join(missing)}", source, offset,
                    f"give all {len(names)} {what}: {', '.join(names)}")  # fmt: skip
    return [leaf for n in names for leaf in by_name[n]]


def _rows(
    body: str, offset: int, source: str, problem: Problem
) -> tuple[tuple[int, int], list[Leaf]]:
    """A Jacobian: rows separated by ';' or nested lists [[..], [..]] or [..], [..]."""
    pieces: list[tuple[str, int]] = []
    depth, start = 0, 0
    for i, ch in enumerate(body):
        depth += 1 if ch in "([" else (-1 if ch in ")]" else 0)
        if ch == ";" and depth == 0:
            pieces.append((body[start:i], start))
            start = i + 1
    pieces.append((body[start:], start))
    if len(pieces) == 1:
        items = list(lang.split_items(body))
        stripped = [t.strip() for t, _ in items]
        if len(items) == 1 and stripped[0].startswith("[["):
            text, off = items[0]
            lead = len(text) - len(text.lstrip())
            inner = text.strip()
            if not inner.endswith("]"):
                raise _fail("'[' is never closed", source, offset + off + lead,
                            "close every '[' with ']'")  # fmt: skip
            pieces = [(t, off + lead + 1 + o) for t, o in lang.split_items(inner[1:-1])]
        elif len(items) > 1 and all(s.startswith("[") for s in stripped):
            pieces = items
    rows: list[list[Leaf]] = []
    for text, off in pieces:
        pos = offset + off
        if not text.strip():
            raise _fail(f"row {len(rows) + 1} is empty", source, pos, "remove the extra ';'")
        t = text.strip()
        lead = len(text) - len(text.lstrip())
        if t.startswith("["):
            shape, leaves = _nested(t, pos + lead, source, problem)
            if len(shape) != 1:
                raise _fail(f"row {len(rows) + 1} has shape {fmt_shape(shape)}", source, pos,
                            "a row is a flat list of entries")  # fmt: skip
        else:
            leaves = []
            for item, o in lang.split_items(text):
                leaf = _leaf(item, pos + o, source, problem)
                if leaf.shape != ():
                    raise _fail(f"an entry has shape {fmt_shape(leaf.shape)}", source, pos + o,
                                "each entry of J is one number or expression")  # fmt: skip
                leaves.append(leaf)
        if rows and len(leaves) != len(rows[0]):
            raise _fail(f"row {len(rows) + 1} has {len(leaves)} entries, row 1 has "
                        f"{len(rows[0])}", source, pos,
                        "every row needs the same length")  # fmt: skip
        rows.append(leaves)
    return (len(rows), len(rows[0])), [leaf for row in rows for leaf in row]


def parse(text: str, problem: Problem) -> Parsed:
    """One --expect QUANTITY=VALUES, checked against the problem's shapes."""
    eq = text.find("=")
    quantity = text[:eq].strip().lower() if eq >= 0 else text.strip()
    if eq < 0 or quantity not in QUANTITIES:
        raise _fail(
            f"'{printable(quantity[:30])}' is not a quantity"
            if eq >= 0
            else "expected QUANTITY=VALUES",
            text,
            0,
            "write vjp=..., grad=..., jvp=... or jacobian=..., e.g. --expect vjp=10,34,42",
        )
    body, offset = text[eq + 1 :], eq + 1
    if not body.strip():
        raise _fail(f"no values after '{quantity}='", text, offset, "give the claimed values")
    m_total = sum(_size(s) for s in problem.output_shapes)
    n_total = sum(_size(s) for s in problem.shapes)
    if quantity == "grad" and (len(problem.outputs) != 1 or problem.output_shapes[0] != ()):
        raise _fail(
            "grad= is the gradient of a single scalar output, and these functions have "
            f"{m_total} output elements",
            text,
            0,
            "use vjp=... with --v (v^T J), or jacobian=...",
        )
    if quantity in ("vjp", "grad"):
        leaves = _named_values(body, offset, text, problem, problem.variables, problem.shapes,
                               "variables")  # fmt: skip
        shape: tuple[int, ...] = (n_total,)
    elif quantity == "jvp":
        leaves = _named_values(body, offset, text, problem, problem.outputs,
                               problem.output_shapes, "functions (outputs)")  # fmt: skip
        shape = (m_total,)
    else:
        rc, leaves = _rows(body, offset, text, problem)
        if rc not in ((m_total, n_total), (n_total, m_total)):
            raise _fail(
                f"the claimed Jacobian is {rc[0]} x {rc[1]}, and J is {m_total} x {n_total} "
                "(a row per output element, a column per variable element)",
                text,
                offset,
                f"give {m_total} row(s) of {n_total} entries, rows separated by ';'",
            )
        shape = rc
    symbolic = any(not leaf.constant for leaf in leaves)
    return Parsed(quantity, text, leaves, shape, symbolic)


def parse_all(texts: Sequence[str], problem: Problem) -> list[Parsed]:
    """Every --expect, refused (exit 2) before any engine runs where one is malformed.
    Without --at, numbers are claimed as constant functions and checked as functions."""
    out = []
    for text in texts:
        claim = parse(text, problem)
        if problem.point is None:  # numbers without a point: constant functions, checked so
            claim.symbolic = True
        out.append(claim)
    return out


# ---- judging (SymPy) --------------------------------------------------------------------


class _Judge:
    """The reference for the claims: J symbolically (the same SymPy build as the report's)
    and, at the point and at random points, its values to 30 certified digits."""

    def __init__(self, program: lang.Program, problem: Problem, box: float = 2.0) -> None:
        import numpy as np
        import sympy as sp

        from . import symbolic

        self.sp, self.np = sp, np
        self.problem = problem
        built = symbolic.build(program, problem.shapes, "sympy")
        self.symbols = built.symbols
        self.rows, self.cols = built.rows, built.cols
        sparse = symbolic.jacobian(built.exprs, built.symbols)
        n = len(self.symbols)
        self.J = [[row.get(j, sp.S.Zero) for j in range(n)] for row in sparse]
        self.m, self.n = len(self.J), n
        rng = np.random.default_rng(20240613)  # fixed: the evidence is reproducible
        # at several scales: a claim wrong only far out (relu(x - 3) added to a gradient) is
        # caught at |x| up to 2 * 100, not only in [-2, 2]
        self.random_points = [
            {s: sp.Rational(float(x)) for s, x in zip(self.symbols,
                                                      rng.uniform(-box * scale, box * scale, n),
                                                      strict=True)}
            for scale in RANDOM_SCALES for _ in range(RANDOM_POINTS)
        ]  # fmt: skip
        self.at = (
            None
            if problem.point is None
            else {s: sp.Rational(x) for s, x in zip(self.symbols, problem.point, strict=True)}
        )
        self._memo: dict[tuple[Any, int], float] = {}

    def exprs(self, claim: Parsed) -> list[Any]:
        from . import symbolic

        out: list[Any] = []
        for leaf in claim.leaves:
            out.extend(symbolic.build(leaf.program, self.problem.shapes, "sympy").exprs)
        return out

    def value(self, e: Any, point: dict[Any, Any]) -> float:
        """`e` at `point` to 30 certified digits, as a float (NaN where undefined)."""
        from . import exact

        try:
            got = exact.value(e, point)
        except exact.Uncertified:
            return math.nan
        return math.nan if got is None else float(got)

    def identical(self, a: Any, b: Any) -> tuple[bool | None, str]:
        """Whether the expressions are the same function, and how that was decided."""
        sp = self.sp
        d = a - b
        if d == 0:
            return True, "simplification to zero"
        for step in (sp.cancel, sp.expand, sp.simplify):
            try:
                d = step(d)
            except Exception:  # a simplification that fails decides nothing
                continue
            if d == 0:
                return True, "simplification to zero"
            if d.is_number and d.is_finite and d != 0:
                return False, "simplification to a nonzero constant"
        # the numeric evidence: both at random points, to 30 digits
        agree = defined = 0
        for point in self.random_points:
            x, y = self.value(a, point), self.value(b, point)
            if math.isnan(y) or math.isnan(x):
                continue
            defined += 1
            if abs(x - y) <= 1e-12 * max(1.0, abs(x), abs(y)):
                agree += 1
            else:
                where = ", ".join(f"{s} = {float(v):.6g}" for s, v in point.items()
                                  if s in d.free_symbols or s in a.free_symbols)  # fmt: skip
                return False, (f"a counterexample: the difference simplifies to {_expr(d)}, "
                               f"and at {where} the claim is {x:.6g}, the derivative "
                               f"{y:.6g}")  # fmt: skip
        if defined >= 3:
            return True, (f"a numeric check at {defined} random points, |x| up to "
                          f"{2 * RANDOM_SCALES[-1]:g}: evidence, not a proof (simplification could "
                          "not decide)")  # fmt: skip
        return None, "undecided: simplification could not decide and too few random points " \
            "are in the domain"  # fmt: skip


def _beyond_float64(
    j: Any, exprs: Sequence[Any], in_claim: Sequence[Any], claimed: tuple[float, ...],
    flat: Sequence[float], big: set[tuple[int, ...]], p: Problem,
) -> tuple[tuple[float, ...], list[float], set[tuple[int, ...]], list[int]]:  # fmt: skip
    """Entries where the claim or the reference is beyond float64 (exp(x) at 1000), judged
    at 30 digits: where both are finite numbers and within the tolerance of each other, both
    become Exact (the decimal shown, the entry judged equal); where only the reference is a
    number, that entry is one float64 cannot hold (it disagrees unless the claim is it)."""
    import mpmath

    claimed_out, flat_out, big_out = list(claimed), list(flat), set(big)
    equal: list[int] = []
    for k, (c, r) in enumerate(zip(claimed, flat, strict=True)):
        if math.isfinite(c) and math.isfinite(r):
            continue
        try:
            ce, re_ = exact.value(exprs[k], j.at), exact.value(in_claim[k], j.at)
        except exact.Uncertified:
            continue
        if re_ is None:
            continue  # the reference is undefined there: compare says so
        if not math.isfinite(r):
            big_out.add((k,))
            flat_out[k] = Exact(float(r), mpmath.nstr(re_, 30, min_fixed=1, max_fixed=0))
        if ce is None:
            continue
        if not math.isfinite(c):
            claimed_out[k] = Exact(float(c), mpmath.nstr(ce, 30, min_fixed=1, max_fixed=0))
        if abs(ce - re_) <= p.atol + p.rtol * abs(re_):
            equal.append(k)
            big_out.discard((k,))
    return tuple(claimed_out), flat_out, big_out, equal


def _num(x: float) -> str:
    """A number for a sentence: integers as integers, small fractions as fractions."""
    from .views.common import fmt

    if math.isfinite(x) and x != 0:
        f = Fraction(x).limit_denominator(1000)
        if abs(float(f) - x) <= 1e-12 * abs(x) and f.denominator != 1 and f.denominator <= 12:
            return f"{f.numerator}/{f.denominator}"
    return fmt(x)


def _simple(xs: Sequence[float]) -> bool:
    """Whether every number is a small fraction (what a person would choose for v or u)."""
    for x in xs:
        if not math.isfinite(x):
            return False
        f = Fraction(x).limit_denominator(12)
        if abs(float(f) - x) > 1e-9 * max(1.0, abs(x)):
            return False
    return True


def _vec(xs: Sequence[float]) -> str:
    return "(" + ", ".join(_num(x) for x in xs) + ")"


def _close(a: Any, b: Any, problem: Problem) -> bool:
    import numpy as np

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or not (np.isfinite(a).all() and np.isfinite(b).all()):
        return False
    return bool((np.abs(a - b) <= problem.atol + problem.rtol * np.abs(b)).all())


def _all_close(pairs: Sequence[tuple[Any, Any]], problem: Problem) -> bool:
    return bool(pairs) and all(_close(a, b, problem) for a, b in pairs)


def _factor(pairs: Sequence[tuple[Any, Any]], problem: Problem) -> float | None:
    """k where claim = k * reference at every sample (k != 1, the reference not all 0)."""
    import numpy as np

    ks = []
    for c, r in pairs:
        c, r = np.asarray(c, float).ravel(), np.asarray(r, float).ravel()
        rr = float(r @ r)
        if not rr or not np.isfinite(rr):
            continue
        ks.append(float(c @ r) / rr)
    if not ks:
        return None
    k = ks[0]
    f = Fraction(k).limit_denominator(1000)
    if abs(float(f) - k) <= 1e-9 * max(1.0, abs(k)):
        k = float(f)
    if abs(k - 1) <= 1e-9 or not math.isfinite(k):
        return None
    if all(_close(c, k * np.asarray(r, float), problem) for c, r in pairs):
        return k
    return None


def _factor_text(k: float) -> str:
    return "-1" if k == -1 else _num(k)


@dataclass
class _Sample:
    """J, the claim and the reference at one point (floats), exact where they can be."""

    J: Any  # m x n
    claim: Any  # flat, in the claim's layout
    exact_J: Any = None  # SymPy Matrix of Rationals, or None
    exact_claim: Any = None


def _solve(judge: _Judge, samples: list[_Sample], A_of: Any, problem: Problem
           ) -> tuple[list[float] | None, bool, float]:  # fmt: skip
    """w with A w = claim at every sample (A_of(J) is J^T for a VJP, J for a JVP): exact in
    rationals when one sample is exact, least squares in floats otherwise. Returns (w or None
    where no w fits, whether w is unique, the least-squares residual)."""
    import numpy as np

    sp = judge.sp
    if len(samples) == 1 and samples[0].exact_J is not None and samples[0].exact_claim is not None:
        A = A_of(samples[0].exact_J)
        b = sp.Matrix(samples[0].exact_claim)
        try:
            sol, params = A.gauss_jordan_solve(b)
        except ValueError:
            sol = None
        if sol is not None:
            if params.shape[0]:
                sol = sol.subs(dict.fromkeys(params, 0))
            return [float(x) for x in sol], not params.shape[0], 0.0
    A = np.vstack([A_of(np.asarray(s.J, float)) for s in samples])
    b = np.concatenate([np.asarray(s.claim, float).ravel() for s in samples])
    if not (np.isfinite(A).all() and np.isfinite(b).all()):
        return None, False, math.inf
    w, _, rank, _ = np.linalg.lstsq(A, b, rcond=None)
    res = float(np.max(np.abs(A @ w - b))) if len(b) else 0.0
    if _close(A @ w, b, problem):
        return [float(x) for x in w], rank == A.shape[1], res
    return None, rank == A.shape[1], res


def diagnose_vjp(judge: _Judge, samples: list[_Sample], v: Sequence[float], quantity: str,
                 labels: Sequence[str], listed: str | None = None,
                 ref_text: str | None = None) -> tuple[str, list[float] | None]:  # fmt: skip
    """Why a claimed v^T J is wrong, and the v that gives it (None where none does)."""
    import numpy as np

    p = judge.problem
    vv = np.asarray(v, float)
    refs = [vv @ np.asarray(s.J, float) for s in samples]
    pairs = [(s.claim, r) for s, r in zip(samples, refs, strict=True)]
    what = "the gradient" if quantity == "grad" else "v^T J"
    k = _factor(pairs, p)
    if k is not None:
        head = ("the sign is flipped: the claim is -1 x " + what if k == -1 else
                f"the claim is {_factor_text(k)} x {what}: right direction, off by a constant "
                f"factor of {_factor_text(k)}")  # fmt: skip
        return head, [k * x for x in v]
    sq = judge.m == judge.n
    w, unique, res = _solve(judge, samples, lambda J: J.T, p)
    at = ref_text or _vec(refs[0])
    if sq:
        jv = [np.asarray(s.J, float) @ vv for s in samples]
        if _all_close(list(zip([s.claim for s in samples], jv, strict=True)), p) and \
                not _all_close(list(zip(refs, jv, strict=True)), p):  # fmt: skip
            return (f"this is J v, not v^T J: the transpose mix-up (pytorch issue 16352). "
                    f"y.backward(v) computes v^T J, the rows of J weighted by v and summed: "
                    f"{at} for v = {_vec(v)}"), w  # fmt: skip
        ones = np.ones(judge.n)
        rs = [np.asarray(s.J, float) @ ones for s in samples]
        if _all_close(list(zip([s.claim for s in samples], rs, strict=True)), p) and \
                not _all_close(list(zip(refs, rs, strict=True)), p):  # fmt: skip
            return (f"a sum along the wrong axis: these are the row sums of J (each output's "
                    f"derivatives summed over the variables); v^T J sums over the outputs, "
                    f"weighted by v: {at} for v = {_vec(v)}"), w  # fmt: skip
    claimed = _vec(np.asarray(samples[0].claim, float)) if len(samples) == 1 else "the claim"
    wrong = listed or _wrong_flat(pairs[0], p, labels)
    if w is not None and not _close(w, vv, p):
        if not _simple(w):  # a typo in an entry, rather than another v
            return (f"{wrong}; no simple v gives the claim (exactly: v = {_vec(w)}), so "
                    "check these entries"), w  # fmt: skip
        more = "" if unique else " (one such v: J's rows are linearly dependent, others do too)"
        return (f"{claimed} is v^T J for v = {_vec(w)}{more}, not for the v = {_vec(v)} "
                f"you gave; for that v, v^T J = {at}"), w  # fmt: skip
    if listed:  # a symbolic claim: the entries that are not the derivative
        return wrong, None
    if quantity == "grad" or judge.m == 1:
        return f"not a multiple of the gradient: {wrong}", None
    return (f"no v gives these values ({claimed} is not a combination of J's rows; least "
            f"squares leaves a residual of {_num(res)}): {wrong}"), None  # fmt: skip


def diagnose_jvp(judge: _Judge, samples: list[_Sample], u: Sequence[float],
                 labels: Sequence[str], listed: str | None = None,
                 ref_text: str | None = None) -> tuple[str, list[float] | None]:  # fmt: skip
    """Why a claimed J u is wrong, and the u that gives it (None where none does)."""
    import numpy as np

    p = judge.problem
    uu = np.asarray(u, float)
    refs = [np.asarray(s.J, float) @ uu for s in samples]
    pairs = [(s.claim, r) for s, r in zip(samples, refs, strict=True)]
    k = _factor(pairs, p)
    if k is not None:
        head = ("the sign is flipped: the claim is -J u" if k == -1 else
                f"the claim is {_factor_text(k)} x J u: off by a constant factor of "
                f"{_factor_text(k)}")  # fmt: skip
        return head, [k * x for x in u]
    w, unique, res = _solve(judge, samples, lambda J: J, p)
    at = ref_text or _vec(refs[0])
    if judge.m == judge.n:
        ut = [uu @ np.asarray(s.J, float) for s in samples]
        if _all_close(list(zip([s.claim for s in samples], ut, strict=True)), p) and \
                not _all_close(list(zip(refs, ut, strict=True)), p):  # fmt: skip
            return (f"this is u^T J (a VJP with v = u), not J u: the transpose mix-up. "
                    f"Forward mode computes J u, the columns of J weighted by u and summed: "
                    f"{at} for u = {_vec(u)}"), w  # fmt: skip
        ones = np.ones(judge.m)
        cs = [ones @ np.asarray(s.J, float) for s in samples]
        if _all_close(list(zip([s.claim for s in samples], cs, strict=True)), p) and \
                not _all_close(list(zip(refs, cs, strict=True)), p):  # fmt: skip
            return (f"a sum along the wrong axis: these are the column sums of J (each "
                    f"variable's derivatives summed over the outputs); J u sums over the "
                    f"variables, weighted by u: {at} for u = {_vec(u)}"), w  # fmt: skip
    claimed = _vec(np.asarray(samples[0].claim, float)) if len(samples) == 1 else "the claim"
    wrong = listed or _wrong_flat(pairs[0], p, labels)
    if w is not None and not _close(w, uu, p):
        if not _simple(w):
            return (f"{wrong}; no simple u gives the claim (exactly: u = {_vec(w)}), so "
                    "check these entries"), w  # fmt: skip
        more = "" if unique else " (one such u: J's columns are linearly dependent)"
        return (f"{claimed} is J u for u = {_vec(w)}{more}, not for the u = {_vec(u)} you "
                f"gave; for that u, J u = {at}"), w  # fmt: skip
    if listed:
        return wrong, None
    return (f"no u gives these values ({claimed} is not a combination of J's columns; least "
            f"squares leaves a residual of {_num(res)}): {wrong}"), None  # fmt: skip


def _wrong_flat(pair: tuple[Any, Any], problem: Problem, labels: Sequence[str]) -> str:
    c, r = pair
    bad = [f"{labels[k]} is {_num(float(r[k]))}, not {_num(float(c[k]))}"
           for k in range(len(r)) if not _close([c[k]], [r[k]], problem)]  # fmt: skip
    if not bad:
        return "the values are within tolerance at the point"
    return "; ".join(bad[:6]) + (f"; and {len(bad) - 6} more" if len(bad) > 6 else "")


def _matching(C: list[Any], J: list[Any], problem: Problem) -> list[int] | None:
    """perm with C[i] == J[perm[i]] (rows of equal values, at every sample), or None."""
    k = len(C[0])
    perm: list[int] = []
    used: set[int] = set()
    for i in range(k):
        found = [r for r in range(k) if r not in used and
                 all(_close(c[i], j[r], problem) for c, j in zip(C, J, strict=True))]  # fmt: skip
        if not found:
            return None
        # prefer the row in its own place when several are equal
        r = i if i in found else found[0]
        perm.append(r)
        used.add(r)
    return perm


def _perm_text(perm: list[int], what: str) -> str:
    moved = [i for i, r in enumerate(perm) if r != i]
    if len(moved) == 2 and perm[moved[0]] == moved[1]:
        a, b = moved
        return f"{what}s {a + 1} and {b + 1} are swapped"
    return f"the {what}s are in the wrong order: yours are J's {what}s " + \
        ", ".join(str(r + 1) for r in perm)  # fmt: skip


def diagnose_jacobian(
    judge: _Judge, samples: list[_Sample], shape: tuple[int, int],
    wrong: list[tuple[int, int]], entry_text: Any,
) -> str:  # fmt: skip
    """Why a claimed Jacobian is wrong: its layout (transposed, rows or columns swapped,
    a constant factor) where that explains it, and each wrong entry with its derivative."""
    import numpy as np

    p = judge.problem
    m, n = judge.m, judge.n
    Cs = [np.asarray(s.claim, float).reshape(shape) for s in samples]
    Js = [np.asarray(s.J, float) for s in samples]
    listed = "; ".join(entry_text(i, j) for i, j in wrong[:6])
    if len(wrong) > 6:
        listed += f"; and {len(wrong) - 6} more"
    layout = (f"row i of J holds the derivatives of output i ({', '.join(judge.rows)}), "
              f"column j those by variable j ({', '.join(judge.cols)})")  # fmt: skip
    if shape != (m, n):  # the transposed shape
        if not wrong:
            return f"transposed: you gave J^T ({shape[0]} x {shape[1]}); {layout}"
        return (f"transposed: you gave a {shape[0]} x {shape[1]} matrix, J^T's shape; {layout}. "
                f"Read as J^T, it is still wrong: {listed}")  # fmt: skip
    if m <= MAX_STRUCTURE and n <= MAX_STRUCTURE:
        if m == n and _all_close(list(zip(Cs, [J.T for J in Js], strict=True)), p):
            return f"transposed: you gave J^T; {layout}"
        k = _factor(list(zip(Cs, Js, strict=True)), p)
        if k is not None:
            return f"the whole matrix is {_factor_text(k)} x J: off by a constant factor"
        if m > 1:
            perm = _matching([list(C) for C in Cs], [list(J) for J in Js], p)
            if perm is not None and perm != list(range(m)):
                return f"{_perm_text(perm, 'row')} ({layout})"
        if n > 1:
            perm = _matching([list(C.T) for C in Cs], [list(J.T) for J in Js], p)
            if perm is not None and perm != list(range(n)):
                return f"{_perm_text(perm, 'column')} ({layout})"
    count = f"{len(wrong)} of {m * n} entries {'is' if len(wrong) == 1 else 'are'} wrong"
    return f"{count}: {listed}"


def _v_for(quantity: str, problem: Problem, v: Sequence[float] | None, text: str
           ) -> tuple[float, ...]:  # fmt: skip
    if quantity == "grad":  # the gradient of the one scalar output, whatever --v says
        return (1.0,)
    if v is not None:
        return tuple(v)
    if len(problem.outputs) == 1 and problem.output_shapes[0] == ():
        return (1.0,)
    raise _fail(
        f"{quantity}= is v^T J for a cotangent v, and none was given",
        text,
        0,
        "add --v with one value per output (the v the claim was computed for)",
    )


def judge(
    claims: Sequence[Parsed],
    program: lang.Program,
    problem: Problem,
    report: Report,
    v: Sequence[float] | None,
    u: Sequence[float] | None,
) -> tuple[Claim, ...]:
    """Each claim against the reference: at the point (compare.compare), as a function
    (symbolic claims), and a diagnosis where it is wrong. `v` and `u` are the cotangent and
    tangent (problem.v/u, or parsed from --v/--u without a point)."""
    if not claims:
        return ()
    for c in claims:  # refused before any SymPy work
        if c.quantity in ("vjp", "grad"):
            _v_for(c.quantity, problem, v, c.text)
        if c.quantity == "jvp" and u is None:
            raise _fail("jvp= is J u for a tangent u, and none was given", c.text, 0,
                        "add --u with one value per variable")  # fmt: skip
    j = _Judge(program, problem)
    return tuple(_one(j, c, report, v, u) for c in claims)


def _one(j: _Judge, c: Parsed, report: Report, v: Sequence[float] | None,
         u: Sequence[float] | None) -> Claim:  # fmt: skip
    import numpy as np

    sp = j.sp
    p = j.problem
    exprs = j.exprs(c)
    key = "vjp" if c.quantity in ("vjp", "grad") else c.quantity
    weights: tuple[float, ...] | None = None
    if key == "vjp":
        weights = _v_for(c.quantity, p, v, c.text)
        w = [sp.Rational(x) for x in weights]
        ref = [sp.Add(*[w[i] * j.J[i][k] for i in range(j.m)]) for k in range(j.n)]
        labels = tuple(f"{col}.grad" for col in j.cols)
        ref_shape: tuple[int, ...] = (j.n,)
    elif key == "jvp":
        assert u is not None
        weights = tuple(u)
        w = [sp.Rational(x) for x in weights]
        ref = [sp.Add(*[j.J[i][k] * w[k] for k in range(j.n)]) for i in range(j.m)]
        labels = tuple(j.rows)
        ref_shape = (j.m,)
    else:
        ref = [j.J[i][k] for i in range(j.m) for k in range(j.n)]
        ref_shape = (j.m, j.n)
        labels = tuple(f"d{r}/d{col}" for r in j.rows for col in j.cols)
    transposed_shape = key == "jacobian" and c.shape != ref_shape
    # the reference in the claim's layout
    if transposed_shape:
        in_claim = [j.J[i][k] for k in range(j.n) for i in range(j.m)]
        claim_labels = tuple(f"d{j.rows[i]}/d{j.cols[k]}" for k in range(j.n)
                             for i in range(j.m))  # fmt: skip
    else:
        in_claim, claim_labels = ref, labels

    def index(k: int) -> tuple[int, ...]:
        return divmod(k, c.shape[1]) if key == "jacobian" else (k,)

    # as functions
    identical: bool | None = None
    decided: str | None = None
    not_identical: list[int] = []
    if c.symbolic:
        ways = []
        results = []
        for k, (a, b) in enumerate(zip(exprs, in_claim, strict=True)):
            same, how = j.identical(a, b)
            results.append(same)
            ways.append(how)
            if same is not True:
                not_identical.append(k)
        identical = all(r is True for r in results)
        if identical:
            kinds = sorted(set(ways), key=ways.index)
            decided = "identical as functions, by " + " and ".join(kinds)
        else:
            first = not_identical[0]
            decided = (f"not identical as functions ({claim_labels[first]}: "
                       f"{ways[first]})")  # fmt: skip
        if transposed_shape:
            identical = False

    # at the point
    check = None
    claimed = reference = None
    beyond: tuple[tuple[int, ...], ...] = ()
    if j.at is not None:
        claimed = tuple(j.value(e, j.at) for e in exprs)
        s = report.symbolic
        if key == "jacobian" and s.jacobian is not None:
            flat = [x for row in s.jacobian for x in row]
            big = {(i * j.n + k,) for (i, k) in s.beyond("jacobian")}
            if transposed_shape:
                flat = [s.jacobian[i][k] for k in range(j.n) for i in range(j.m)]
                big = {(k * j.m + i,) for (i, k) in s.beyond("jacobian")}
        elif key == "vjp" and s.vjp is not None and tuple(weights or ()) == tuple(p.v or ()):
            flat, big = list(s.vjp), set(s.beyond("vjp"))
        elif key == "jvp" and s.jvp is not None and tuple(weights or ()) == tuple(p.u or ()):
            flat, big = list(s.jvp), set(s.beyond("jvp"))
        else:
            flat, big = [j.value(e, j.at) for e in in_claim], set()
        claimed, flat, big, equal = _beyond_float64(j, exprs, in_claim, claimed, flat, big, p)
        reference = tuple(flat)
        beyond = tuple(sorted(big))
        judged_c, judged_r = list(claimed), list(reference)
        for k in equal:  # equal at 30 digits, beyond float64
            judged_c[k] = judged_r[k] = 0.0
        check = compare(key, judged_r, judged_c, p.rtol, p.atol, big, "claim")

    if check is not None and check.status == "disagree" and identical:
        # the numeric evidence missed it, the point did not: not the same function
        identical = False
        decided = "not identical as functions: the values differ at --at"
    wrong: list[int] = sorted(set(not_identical))
    if check is not None:
        for k in range(len(claimed or ())):
            assert claimed is not None and reference is not None
            if math.isfinite(reference[k]) and not _close([claimed[k]], [reference[k]], p):
                if k not in wrong:
                    wrong.append(k)
        wrong.sort()
    if (check is not None and check.status == "disagree") or identical is False or \
            transposed_shape or (c.symbolic and identical is None):  # fmt: skip
        status = "disagree"
    elif check is not None and check.status == "undefined":
        status = "undefined"
    else:
        status = "agree"

    diagnosis = None
    inferred = None
    if status == "disagree":
        samples = _samples(j, c, exprs, key, transposed_shape)
        listed = ref_text = None
        if c.symbolic:
            ref_text = "(" + ", ".join(_expr(_tidy(sp, e)) for e in in_claim) + ")"
        if c.symbolic and not_identical:
            bad = [f"{labels[k]} should be {_expr(_tidy(sp, in_claim[k]))}, not "
                   f"{_expr(exprs[k])}" for k in not_identical[:6]]  # fmt: skip
            more = len(not_identical) - 6
            listed = "; ".join(bad) + (f"; and {more} more" if more > 0 else "")
        if not samples:  # no point where both are numbers: only the entries can be named
            names = [claim_labels[k] for k in wrong] or list(claim_labels)
            if beyond and claimed is not None and all(math.isfinite(x) for x in claimed):
                # the reference is a number float64 cannot hold: said with its decimal
                diagnosis = listed or "; ".join(
                    f"{claim_labels[k]} is {getattr(reference[k], 'text', reference[k])}, not "
                    f"{_num(claimed[k])}" for (k,) in beyond[:6]
                    if reference is not None)  # fmt: skip
            else:
                diagnosis = listed or (f"the claim is not a finite number where the reference "
                                       f"is one ({', '.join(names[:6])})")  # fmt: skip
        elif key == "vjp":
            assert weights is not None
            diagnosis, inf_w = diagnose_vjp(j, samples, weights, c.quantity, labels, listed,
                                            ref_text)  # fmt: skip
            inferred = None if inf_w is None else tuple(inf_w)
        elif key == "jvp":
            assert weights is not None
            diagnosis, inf_w = diagnose_jvp(j, samples, weights, labels, listed, ref_text)
            inferred = None if inf_w is None else tuple(inf_w)
        else:

            def entry(i: int, k: int) -> str:
                flat_k = i * c.shape[1] + k
                if transposed_shape:  # claim (i, k) is J (k, i)
                    ri, rk = k, i
                else:
                    ri, rk = i, k
                right = j.J[ri][rk]
                mine = exprs[flat_k]
                text = (f"J[{ri + 1},{rk + 1}] = d{j.rows[ri]}/d{j.cols[rk]} is "
                        f"{_expr(_tidy(sp, right))}")  # fmt: skip
                if j.at is not None and not right.is_number:
                    text += f" (= {_num(j.value(right, j.at))} at the point)"
                yours = _expr(mine)
                if j.at is not None and not mine.is_number:
                    yours += f" = {_num(j.value(mine, j.at))}"
                return text + f", not {yours}"

            pairs = [divmod(k, c.shape[1]) for k in wrong]
            diagnosis = diagnose_jacobian(j, samples, c.shape, pairs, entry)  # type: ignore[arg-type]
    del np
    return Claim(
        quantity=c.quantity,
        text=c.text,
        status=status,
        symbolic=c.symbolic,
        shape=c.shape,
        labels=claim_labels,
        claimed=claimed,
        reference=reference,
        check=check,
        claimed_text=tuple(_expr(e) for e in exprs),
        reference_text=tuple(_expr(_tidy(sp, e)) for e in in_claim),
        identical=identical,
        decided_by=decided,
        wrong_entries=tuple(index(k) for k in wrong),
        diagnosis=diagnosis,
        inferred=inferred,
        weights=weights,
        beyond=beyond,
        transposed=transposed_shape,
    )


def _tidy(sp: Any, e: Any) -> Any:
    """A reference entry as a person would write it (x**2/|x| + |x| is 2*|x|), for the eye
    only: small expressions are simplified, where that makes them shorter."""
    if e.is_number or sp.count_ops(e) > 40:
        return e
    try:
        t = sp.simplify(e)
    except Exception:  # simplification is a courtesy here
        return e
    return t if sp.count_ops(t) <= sp.count_ops(e) else e


def _expr(e: Any) -> str:
    text = str(e)
    return text if len(text) <= 120 else text[:117] + "..."


def _samples(j: _Judge, c: Parsed, exprs: list[Any], key: str, transposed: bool) -> list[_Sample]:
    """The claim and J as numbers: at the point for a numeric claim (exact rationals where
    they are), at the point and random points for a symbolic one."""
    sp = j.sp
    points = ([j.at] if j.at is not None else []) + (j.random_points if c.symbolic else [])
    out = []
    for point in points:
        J = [[j.value(e, point) for e in row] for row in j.J]
        claim = [j.value(e, point) for e in exprs]
        if any(not math.isfinite(x) for row in J for x in row) or \
                any(not math.isfinite(x) for x in claim):  # fmt: skip
            continue
        exact_J = exact_c = None
        if not c.symbolic:
            ej = [[e.xreplace(point) for e in row] for row in j.J]
            ec = [e.xreplace(point) for e in exprs]
            if all(e.is_Rational for row in ej for e in row) and all(e.is_Rational for e in ec):
                exact_J, exact_c = sp.Matrix(ej), ec
        out.append(_Sample(J, claim, exact_J, exact_c))
    del key, transposed
    return out  # empty where the claim or J is nowhere finite among these points


def attach(report: Report, claims: tuple[Claim, ...]) -> Report:
    from dataclasses import replace

    return replace(report, claims=claims)


@dataclass
class Plan:
    """What --expect and --sample asked for, validated before any engine runs; `run` adds
    the claims' verdicts and the sweep to the report."""

    program: lang.Program
    problem: Problem
    claims: list[Parsed]
    v: tuple[float, ...] | None
    u: tuple[float, ...] | None
    sweep: Any = None  # sample.Options, or None

    def run(self, report: Report, extra: Sequence[Any] = ()) -> Report:
        """`extra`: more candidates for the sweep (sample.Candidate: the user's code)."""
        from dataclasses import replace

        judged = judge(self.claims, self.program, self.problem, report, self.v, self.u)
        report = replace(report, claims=judged)
        if self.sweep is not None:
            from . import sample

            report = replace(report, sample=sample.sweep(self.program, self.problem,
                                                         self.sweep, self.claims, self.v,
                                                         self.u, extra))  # fmt: skip
        return report


def prepare(
    program: lang.Program,
    problem: Problem,
    expect: Sequence[str],
    v: Sequence[str] | None,
    u: Sequence[str] | None,
    sample_n: int | None = None,
    box: str | None = None,
    seed: int | None = None,
) -> Plan:
    """Parse the claims and the sweep's options (exit 2 on bad input, before the engines).
    Without --at, `problem` has no v or u (they need a point there): they are read here."""
    from . import api

    claims = parse_all(expect, problem)
    vv = problem.v
    uu = problem.u
    if problem.point is None:
        if v:
            vals = api.parse_values(v, problem.outputs, "--v", "functions (outputs)",
                                    dict(zip(problem.outputs, problem.output_shapes,
                                             strict=True)), exact=True)  # fmt: skip
            vv = tuple(x for name in problem.outputs for x in vals[name][1])
        elif len(problem.outputs) == 1 and problem.output_shapes[0] == ():
            vv = (1.0,)
        if u:
            vals = api.parse_values(u, problem.variables, "--u", "variables",
                                    dict(zip(problem.variables, problem.shapes, strict=True)),
                                    exact=True)  # fmt: skip
            uu = tuple(x for name in problem.variables for x in vals[name][1])
    for c in claims:
        if c.quantity in ("vjp", "grad"):
            _v_for(c.quantity, problem, vv, c.text)
        if c.quantity == "jvp" and uu is None:
            raise _fail("jvp= is J u for a tangent u, and none was given", c.text, 0,
                        "add --u with one value per variable")  # fmt: skip
    sweep = None
    if sample_n is not None:
        from . import sample

        sweep = sample.options(problem, sample_n, box, seed)
    elif box is not None or seed is not None:
        raise InputError(
            "--box and --seed belong to --sample", where="--sample", fix="add --sample N"
        )
    return Plan(program, problem, claims, vv, uu, sweep)
