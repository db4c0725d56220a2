"""The claims (--expect) and the sweep (--sample) as JSON fields and as one rich panel each.

Pure functions of the Report: the verdicts and the diagnoses were built by expect.py and
sample.py. User text (the claim as typed) enters rich only as Text, never as markup.
"""

from __future__ import annotations

from typing import Any

from ..model import Claim, Report, SamplePoint
from .common import fmt, json_number, nums


def _nested(flat: Any, shape: tuple[int, ...]) -> Any:
    if flat is None:
        return None
    values = [x if isinstance(x, str) else json_number(x) for x in flat]
    if len(shape) == 2:
        return [values[i * shape[1] : (i + 1) * shape[1]] for i in range(shape[0])]
    return values


def _reference(c: Claim) -> Any:
    """The reference in its own shape (J, not J^T, for a claim in J^T's shape)."""
    ref = _nested(c.reference, c.shape)
    if ref is not None and c.transposed:
        ref = [list(col) for col in zip(*ref, strict=True)]
    return ref


def claim_dict(c: Claim) -> dict[str, Any]:
    """One claim's JSON object (the stable keys of docs/json.md, and more)."""
    out: dict[str, Any] = {
        "quantity": c.quantity,
        "text": c.text,
        "claimed": _nested(c.claimed, c.shape),
        "reference": _reference(c),
        "agree": c.agree,
        "status": c.status,
        "symbolic": c.symbolic,
        "diagnosis": c.diagnosis,
    }
    if c.key == "jacobian":
        out["wrong_entries"] = [list(i) for i in c.wrong_entries]
        out["shape"] = list(c.shape)  # the claim's; J^T's where "transposed_shape"
        out["transposed_shape"] = c.transposed
    else:
        out["max_abs_diff"] = None if c.check is None else json_number(c.check.max_abs_diff)
        out["wrong_entries"] = [list(i) for i in c.wrong_entries]
        out["inferred_v" if c.key == "vjp" else "inferred_u"] = (
            None if c.inferred is None else nums(list(c.inferred))
        )
        out["v" if c.key == "vjp" else "u"] = None if c.weights is None else nums(list(c.weights))
    if c.key == "jacobian":
        out["max_abs_diff"] = None if c.check is None else json_number(c.check.max_abs_diff)
    out["rtol"] = None if c.check is None else c.check.rtol
    out["atol"] = None if c.check is None else c.check.atol
    out["labels"] = list(c.labels)
    if c.symbolic:
        out["claimed_symbolic"] = _nested(c.claimed_text, c.shape)
        out["reference_symbolic"] = _nested(c.reference_text, c.shape)
        if c.transposed:
            out["reference_symbolic"] = [list(r) for r in zip(*out["reference_symbolic"],
                                                              strict=True)]  # fmt: skip
        out["identical"] = c.identical
        out["decided_by"] = c.decided_by
    if c.claimed is None:
        out["at_point"] = None  # no --at: judged as functions only
    return out


def _point(p: SamplePoint | None, names: Any) -> dict[str, Any] | None:
    if p is None:
        return None
    out: dict[str, Any] = {n: json_number(x) for n, x in zip(names, p.point, strict=False)}
    out.update(
        diff=json_number(p.diff),
        candidate=p.candidate,
        quantity=p.quantity,
        status=p.status,
        values=nums(list(p.claimed)),
        reference=nums(list(p.reference)),
    )
    return out


def json_fields(report: Report) -> dict[str, Any]:
    """The "expect" and "sample" members of the JSON object (absent when not asked for)."""
    out: dict[str, Any] = {}
    if report.claims:
        expect: dict[str, Any] = {}
        for c in report.claims:
            expect.setdefault(c.key, claim_dict(c))  # the first claim of each quantity
            if c.quantity == "grad":
                expect.setdefault("grad", expect[c.key])
        expect["claims"] = [claim_dict(c) for c in report.claims]
        expect["agree"] = all(c.agree for c in report.claims)
        out["expect"] = expect
    s = report.sample
    if s is not None:
        names = _labels(report)
        out["sample"] = {
            "n": s.n,
            "seed": s.seed,
            "box": {n: [lo, hi] for n, lo, hi in s.box},
            "agree": s.agree,
            "disagree": s.disagree,
            "undefined": s.undefined,
            "candidates": list(s.candidates),
            "worst": _point(s.worst, names),
            "first_failure": _point(s.first_failure, names),
            "found_at": None
            if s.found_at is None
            else {n: json_number(x) for n, x in zip(names, s.found_at, strict=False)},
            "found_index": s.found_index,
            "shrink_steps": s.shrink_steps,
            "shrink_checks": s.shrink_checks,
            "exact_points": s.exact_points,
            "fast": s.fast,
            "notes": list(s.notes),
        }
    return out


def _labels(report: Report) -> list[str]:
    from ..shapes import labels

    p = report.problem
    out: list[str] = []
    for name, shape in zip(p.variables, p.shapes, strict=True):
        out.extend(labels(name, shape))
    return out


MAX_ENTRIES = 16  # entries of a claim listed in the terminal (and the wrong ones, up to 8 more)

_STYLE = {"agree": ("✔ right", "bold green"), "disagree": ("✘ wrong", "bold red"),
          "undefined": ("? undefined at this point", "bold yellow")}  # fmt: skip


def _claim_panel(c: Claim) -> Any:
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    title = {"vjp": "v^T J", "grad": "the gradient", "jvp": "J u", "jacobian": "the Jacobian"}
    parts: list[Any] = []
    head = Text("claim: ", style="bold")
    head.append(c.text)  # as typed: Text, never markup
    parts.append(head)
    if c.weights is not None:
        parts.append(Text(f"{'v' if c.key == 'vjp' else 'u'} = "
                          f"({', '.join(fmt(x) for x in c.weights)})"))  # fmt: skip
    table = Table(box=None, show_header=True, pad_edge=False, header_style="bold")
    table.add_column("")
    wrong = {tuple(i) for i in c.wrong_entries}
    flat_wrong = set()
    for idx in wrong:
        flat_wrong.add(idx[0] * c.shape[1] + idx[1] if len(idx) == 2 else idx[0])
    if c.symbolic:
        table.add_column("claimed")
        table.add_column("reference (SymPy)")
    if c.claimed is not None:
        table.add_column("claim @ point" if c.symbolic else "claimed", justify="right")
        table.add_column("SymPy @ point" if c.symbolic else "reference (SymPy)", justify="right")
    table.add_column("")
    shown = [k for k in range(len(c.labels)) if k < MAX_ENTRIES or k in flat_wrong]
    for k in shown[: MAX_ENTRIES + 8]:
        label = c.labels[k]
        row = [Text(label, style="red" if k in flat_wrong else "")]
        if c.symbolic:
            row += [Text(c.claimed_text[k]), Text(c.reference_text[k])]
        if c.claimed is not None and c.reference is not None:
            row += [Text(fmt(c.claimed[k])), Text(fmt(c.reference[k]))]
        row.append(Text("✘", style="red") if k in flat_wrong else Text(""))
        table.add_row(*row)
    parts.append(table)
    left = len(c.labels) - min(len(shown), MAX_ENTRIES + 8)
    if left > 0:
        parts.append(Text(f"… {left} more entries (--json has them all)", style="dim"))
    label, style = _STYLE[c.status]
    verdict = Text(label, style=style)
    if c.check is not None:
        verdict.append(f"   max |reference - claim| = {fmt(c.check.max_abs_diff)}", style="dim")
        verdict.append(f"  (rtol={c.check.rtol:g}, atol={c.check.atol:g})", style="dim")
    parts.append(verdict)
    if c.decided_by:
        parts.append(Text(c.decided_by, style="dim"))
    if c.diagnosis:
        why = Text("why: ", style="bold")
        why.append(c.diagnosis)
        parts.append(why)
    if c.inferred is not None:
        parts.append(Text(f"inferred {'v' if c.key == 'vjp' else 'u'} = "
                          f"({', '.join(fmt(x) for x in c.inferred)})", style="dim"))  # fmt: skip
    from rich.console import Group

    return Panel(Group(*parts), title=Text(f"Claim: {title[c.quantity]}", style="bold"),
                 title_align="left", expand=False)  # fmt: skip


def _sample_panel(report: Report) -> Any:
    from rich.console import Group
    from rich.panel import Panel
    from rich.text import Text

    s = report.sample
    assert s is not None
    names = _labels(report)
    box = ", ".join(f"{n} in [{fmt(lo)}, {fmt(hi)}]" for n, lo, hi in s.box)
    parts: list[Any] = [Text(f"{s.n} random points, {box} (seed {s.seed})")]
    parts.append(Text("checked: " + ", ".join(s.candidates), style="dim"))
    counts = Text()
    counts.append(f"{s.agree} agree", style="green")
    counts.append(", ")
    counts.append(f"{s.disagree} disagree", style="red" if s.disagree else "")
    counts.append(f", {s.undefined} undefined")
    parts.append(counts)

    def at(p: SamplePoint) -> str:
        return ", ".join(f"{n} = {fmt(x)}" for n, x in zip(names, p.point, strict=False))

    if s.worst is not None:
        parts.append(Text(f"worst: {at(s.worst)}  ({s.worst.candidate} {s.worst.quantity}, "
                          f"|diff| = {fmt(s.worst.diff)})"))  # fmt: skip
    f = s.first_failure
    if f is not None:
        line = Text("first failure, shrunk: ", style="bold red")
        line.append(f"{at(f)}  ({f.candidate} {f.quantity}: "
                    f"({', '.join(fmt(x) for x in f.claimed)}), reference "
                    f"({', '.join(fmt(x) for x in f.reference)}))")  # fmt: skip
        parts.append(line)
        if s.found_at is not None:
            found = ", ".join(f"{n} = {fmt(x)}" for n, x in zip(names, s.found_at, strict=False))
            parts.append(Text(f"  found at point {s.found_index} ({found}), "
                              f"{s.shrink_steps} simplifications", style="dim"))  # fmt: skip
    for note in s.notes:
        parts.append(Text("note: " + note, style="dim"))
    return Panel(Group(*parts), title=Text("Sample (--sample)", style="bold"),
                 title_align="left", expand=False)  # fmt: skip


def rich_parts(report: Report) -> list[Any]:
    """One panel per claim, and the sweep's, for the terminal report."""
    out = [_claim_panel(c) for c in report.claims]
    if report.sample is not None:
        out.append(_sample_panel(report))
    return out
