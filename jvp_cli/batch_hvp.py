"""--points with --hvp U: H u at every point, added to each point's line as "hvp".

batch.py computes and writes the first-order lines, a chunk at a time; this module sits on
its line writer: for each chunk of lines it reads the points and v's back (the lines carry
them, floats written to round-trip), computes H u on both sides (the reference per point,
hessian.PointHvp; torch's routes on the whole chunk at once, autograd2.hvp_batch), judges
each route with compare.compare, adds the "hvp" object, and sets the line's "agree" to
false where H u does not agree. The existing fields are kept as they are.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from . import lang
from .compare import compare
from .model import Problem


class HvpLines:
    """A `write` for batch.run that adds H u to every line, and counts the verdicts."""

    def __init__(self, program: lang.Program, problem: Problem) -> None:
        from . import hessian

        assert problem.hvp is not None
        self.program, self.problem = program, problem
        self.reference = hessian.PointHvp(program, problem)
        self.agree = self.disagree = self.undefined = 0
        self.worst = 0.0
        self.worst_line: int | None = None

    @property
    def ok(self) -> bool:
        return self.disagree == 0 and self.undefined == 0

    def wrap(self, write: Callable[[bytes], None] | None) -> Callable[[bytes], None]:
        """The writer batch.run calls: lines in, lines with "hvp" out (to `write`, if any:
        without --json only the counts are kept)."""

        def annotated(block: bytes) -> None:
            out = self.annotate(block)
            if write is not None:
                write(out)

        return annotated

    def annotate(self, block: bytes) -> bytes:
        import numpy as np
        import orjson

        from . import autograd2, hessian
        from .views.common import exact_values, json_number

        p = self.problem
        assert p.hvp is not None
        rows = [orjson.loads(line) for line in block.split(b"\n")]
        X = np.array([[r["point"][name] for name in p.variables] for r in rows], dtype=float)
        V = np.array([r["vjp"]["v"] for r in rows], dtype=float)
        tor = autograd2.hvp_batch(self.program, p, X, V)
        out = []
        for k, row in enumerate(rows):
            ref, beyond = self.reference.at([float(t) for t in X[k]], [float(t) for t in V[k]],
                                            p.hvp)  # fmt: skip
            checks = []
            torch_values: dict[str, Any] = {}
            errors: dict[str, str] = {}
            for name, values in tor.items():
                if isinstance(values, str):
                    torch_values[name] = None
                    errors[name] = values
                    continue
                vals = [float(t) for t in values[k]]
                torch_values[name] = [json_number(t) for t in vals]
                checks.append(compare(name, ref, vals, p.rtol, p.atol, beyond))
            check = hessian._aggregate("hvp", checks, p.rtol, p.atol)
            status = check.status if check is not None else "not-compared"
            item: dict[str, Any] = {
                "u": [json_number(t) for t in p.hvp],
                "sympy": [json_number(t) for t in exact_values(list(ref), beyond)],
                "torch": torch_values,
                "max_abs_diff": json_number(check.max_abs_diff) if check else None,
                "agree": status == "agree",
                "status": status,
                "routes": {c.name: c.status for c in checks},
            }
            if errors:
                item["errors"] = errors
            row["hvp"] = item
            row["agree"] = bool(row.get("agree")) and status == "agree"
            if status == "agree":
                self.agree += 1
            elif status == "disagree":
                self.disagree += 1
            else:
                self.undefined += 1
            if check is not None and math.isfinite(check.max_abs_diff) and \
                    check.max_abs_diff > self.worst:  # fmt: skip
                self.worst, self.worst_line = check.max_abs_diff, row.get("line")
            out.append(orjson.dumps(row))
        return b"\n".join(out)

    def summary(self) -> str:
        where = f" (line {self.worst_line})" if self.worst_line is not None else ""
        return (f"--hvp: {self.agree} agree, {self.disagree} disagree, {self.undefined} "
                f"undefined; worst |SymPy - torch| {self.worst:.3g}{where}")  # fmt: skip
