"""Report -> rich renderable. Pure functions, no printing.

User text only ever enters rich as `Text` objects (never as markup strings), so `[bold]` in an
expression prints as typed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..model import Check, Report
from ..shapes import nest
from . import coo, hessian
from . import fd as fd_view
from . import graph as graph_view
from . import usercode as usercode_view
from .common import exact_values, few, fmt, fmt_vec, overall, per_name
from .explain import rich_parts as explain_parts

_VERDICT_STYLE = {
    "agree": ("✔ agree", "bold green"),
    "disagree": ("✘ disagree", "bold red"),
    "undefined": ("? undefined at this point", "bold yellow"),
}


def _verdict(check: Check, name: Any = None) -> Any:
    """The verdict line; `name` turns an entry's index into its label (df1/dx)."""
    from rich.text import Text

    label, style = _VERDICT_STYLE[check.status]
    t = Text(label, style=style)
    over = " over the entries defined at the point" if check.undefined else ""
    t.append(f"   max |SymPy - torch|{over} = {fmt(check.max_abs_diff)}", style="dim")
    t.append(f"  (rtol={check.rtol:g}, atol={check.atol:g})", style="dim")
    if check.undefined:
        entry = name or (lambda idx: "[" + ",".join(str(i) for i in idx) + "]")
        where = ", ".join(entry(idx) for idx in check.undefined[:8])
        t.append(f"\n  not finite at {where}", style="yellow")
    return t


MAX_ROWS = 14  # rows and columns of a Jacobian shown in the terminal (--json has all)
MAX_COLS = 8
WIDTH = 80  # the console width when the caller does not say


def _window(n: int, limit: int) -> list[int | None]:
    """Indices to show out of n: all when they fit, else the first ones, a gap, the last."""
    if n <= limit:
        return list(range(n))
    if limit < 3:
        return [*range(max(limit, 1) - 1), None] if limit > 1 else [0, None]
    return [*range(limit - 2), None, n - 1]


def _table_width(widths: Sequence[int], label_width: int) -> int:
    """What a box-less table of these columns takes: each cell padded by one on each side,
    no padding at the outer edges."""
    return label_width + sum(w + 2 for w in widths)


def _fitting_columns(
    rows: Sequence[Sequence[str]],
    row_names: Sequence[str],
    col_names: Sequence[str],
    shown_rows: Sequence[int | None],
    width: int,
    full: bool,
) -> list[int | None] | None:
    """The columns to show so that no number is ever cut: all of them (--full, or when
    they fit), else as many as fit in a window (first ones, a gap, the last); None when
    not even one column fits."""
    n = len(col_names)
    label = max((len(row_names[i]) for i in shown_rows if i is not None), default=1)

    def col_width(j: int | None) -> int:
        if j is None:
            return 1
        return max(len(col_names[j]), *(len(rows[i][j]) for i in shown_rows if i is not None))

    if full and 3 * n + label > width:  # cannot fit even 1-character columns
        return None
    widths = {j: col_width(j) for j in range(n)} if n <= 4 * MAX_COLS or full else {}
    if full:
        return list(range(n)) if _table_width(list(widths.values()), label) <= width else None
    for limit in range(min(n, MAX_COLS), 0, -1):
        cols = _window(n, limit)
        need = [widths.get(j) if j in widths else col_width(j) for j in cols]
        if _table_width([w if w is not None else 1 for w in need], label) <= width:
            return cols
    return None


def _matrix_table(
    title: str,
    rows: Sequence[Sequence[str]],
    row_names: Sequence[str],
    col_names: Sequence[str],
    full: bool = False,
    width: int = WIDTH,
) -> Any:
    """A matrix as a table that fits `width` without cutting a number: a window of rows and
    of the columns that fit, with a caption saying what is left out. --full shows every
    entry: the whole table when it fits, else a list of the nonzero entries."""
    from rich.text import Text

    shown_rows: list[int | None] = (
        list(range(len(row_names))) if full else _window(len(row_names), MAX_ROWS)
    )
    cols = _fitting_columns(rows, row_names, col_names, shown_rows, width, full)
    if cols is None:
        return _entry_list(title, [rows], ("",), row_names, col_names, full)
    table = _plain_table(title, min_width=min(len(title), width))
    table.add_column("", no_wrap=True)
    for j in cols:
        table.add_column(
            Text("…" if j is None else col_names[j]), justify="right", no_wrap=True,
            overflow="fold",
        )  # fmt: skip
    for i in shown_rows:
        if i is None:
            table.add_row(Text("⋮"), *[Text("⋮") for _ in cols])
            continue
        table.add_row(
            Text(row_names[i], style="bold"),
            *[Text("…" if j is None else rows[i][j]) for j in cols],
        )
    left_out = [what for what, shown, n in (
        ("rows", sum(i is not None for i in shown_rows), len(row_names)),
        ("columns", sum(j is not None for j in cols), len(col_names))) if shown < n]  # fmt: skip
    if left_out:
        table.caption = f"({' and '.join(left_out)} left out: --full or --json has all)"
        table.caption_justify = "left"
        table.caption_style = "dim"
    return table


def _plain_table(title: str, **options: Any) -> Any:
    """A borderless rich Table with a left-aligned title, as every matrix view uses."""
    from rich.table import Table

    return Table(title=title or None, title_justify="left", show_edge=False, pad_edge=False,
                 box=None, header_style="bold", **options)  # fmt: skip


def _entry_list(
    title: str,
    sides: Sequence[Sequence[Sequence[str]]],
    side_names: Sequence[str],
    row_names: Sequence[str],
    col_names: Sequence[str],
    full: bool,
) -> Any:
    """The entries of a matrix as lines `J[f3, x7]  46.37` (one column per side), the
    zeros left out: legible at any size. Without `full`, the first MAX_ROWS * 4 entries."""
    from rich.console import Group
    from rich.text import Text

    table = _plain_table(title, show_header=any(side_names))
    table.add_column("entry", no_wrap=True)
    for name in side_names:  # numbers right-aligned, expressions left
        table.add_column(name, justify="right" if name else "left", overflow="fold")
    limit = None if full else MAX_ROWS * 4
    shown = total = 0
    for i, name in enumerate(row_names):
        row = [side[i] for side in sides]
        for j in coo.stored_columns(sides, i, len(col_names)):  # the nonzeros of a big J
            col = col_names[j]
            cells = [side_row[j] for side_row in row]
            if all(c == "0" for c in cells):
                continue
            total += 1
            if limit is None or shown < limit:
                table.add_row(Text(f"J[{name}, {col}]", style="bold"), *map(Text, cells))
                shown += 1
    count = (
        f"{total:,} nonzero entr{'y' if total == 1 else 'ies'} of {len(row_names)} x "
        f"{len(col_names)}" + ("" if shown == total else f", the first {shown} shown (--full: all)")
    )
    return Group(table, Text(count, style="dim"))


def _nonzero(text: str) -> bool:
    return text not in ("0", "0.0", "-0")


def spy(pattern: Sequence[Sequence[str]], width: int = WIDTH, height: int = 24) -> tuple[Any, int]:
    """A picture of J's sparsity (like MATLAB's spy) in braille: each character shows 2 x 4
    dots, each dot one block of b x b entries, lit where the block has a nonzero. Returns
    the picture and b."""
    from rich.text import Text

    m = len(pattern)
    n = len(pattern[0]) if m else 0
    b = max(1, -(-n // (2 * max(width, 1))), -(-m // (4 * max(height, 1))))
    dots_r, dots_c = -(-m // b), -(-n // b)
    lit = [[False] * dots_c for _ in range(dots_r)]
    for i, j, t in coo.nonzero_entries(pattern):  # the stored entries of a big J only
        if _nonzero(t):
            lit[i // b][j // b] = True
    bits = ((0, 0, 0x01), (1, 0, 0x02), (2, 0, 0x04), (0, 1, 0x08), (1, 1, 0x10),
            (2, 1, 0x20), (3, 0, 0x40), (3, 1, 0x80))  # fmt: skip
    lines = []
    for r in range(0, dots_r, 4):
        chars = []
        for c in range(0, dots_c, 2):
            code = 0
            for dr, dc, bit in bits:
                if r + dr < dots_r and c + dc < dots_c and lit[r + dr][c + dc]:
                    code |= bit
            chars.append(chr(0x2800 + code))
        lines.append("".join(chars))
    return Text("\n".join(lines)), b


def _nested_text(values: Sequence[float], shape: tuple[int, ...]) -> str:
    nested = nest([fmt(x) for x in values], shape)
    return str(nested).replace("'", "")


def _shape_note(shape: tuple[int, ...]) -> str:
    return "" if not shape else " (" + "x".join(str(d) for d in shape) + ")"


def to_rich(report: Report, full: bool = False, width: int = WIDTH) -> Any:
    """The terminal report, laid out for `width` columns. Big problems are shown in
    windows (first rows and columns, a gap, the last: as many columns as fit, numbers never
    cut), with their shape and a picture of J's sparsity; `full` shows every entry (as a
    list of the nonzero ones where the matrix does not fit)."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    p = report.problem
    s = report.symbolic
    a = report.autograd
    tensors = any(p.shapes) or any(p.output_shapes)
    parts: list[Any] = []

    head = Text()
    m, n = len(p.outputs), len(p.variables)
    head.append(
        f"{m} output{'s' if m != 1 else ''} of {n} variable{'s' if n != 1 else ''}", style="bold"
    )
    head.append(
        ": "
        + ", ".join(
            few(
                [f"{v}{_shape_note(sh)}" for v, sh in zip(p.variables, p.shapes, strict=True)],
                12,
                full,
            )
        )
    )
    parts.append(head)
    funcs = Table.grid(padding=(0, 1))
    funcs.add_column(width=1)
    lines = [(name, text, "dim") for name, text in p.intermediates] + [
        (name, text + _shape_note(shape), "cyan")
        for name, text, shape in zip(p.outputs, p.functions, p.output_shapes, strict=True)
    ]
    keep = set(range(len(lines))) if full or len(lines) <= 12 else {
        *range(8), *range(len(lines) - 2, len(lines))}  # fmt: skip
    for k, (name, text, style) in enumerate(lines):
        if k in keep:
            funcs.add_row(
                Text(""),
                Text(name, style=style),
                Text("="),
                Text(text if full else _clip(text, 200)),
            )
        elif k == 8:
            funcs.add_row(
                Text(""),
                Text("…"),
                Text(""),
                Text(f"{len(lines) - 10} more statements (--full shows all)"),
            )
    parts.append(funcs)
    if p.point is not None:
        pt = Text("at ")
        pt.append(
            ", ".join(
                few(
                    [
                        f"{k} = {_nested_text(vals, sh)}"
                        for k, sh, vals in per_name(p.point, p.variables, p.shapes)
                    ],
                    12,
                    full,
                )
            )
        )
        parts.append(pt)

    title = Text("Symbolic Jacobian ", style="bold")
    rows_n, cols_n = len(s.row_labels), len(s.col_labels)
    title.append(
        f"J = d({', '.join(few(p.outputs, 4, full))}) / d({', '.join(few(p.variables, 4, full))})",
        style="dim",
    )
    density = s.nonzeros / max(1, rows_n * cols_n)
    subtitle = Text(f"{rows_n} x {cols_n}, {s.nonzeros:,} nonzero ({density:.1%})", style="dim")
    inner = max(width - 4, 20)  # inside the panel's border and padding
    pretty_width = max((len(line) for line in s.jacobian_pretty.splitlines()), default=0)
    small = rows_n <= MAX_ROWS and cols_n <= MAX_COLS
    if s.jacobian_pretty and not tensors and pretty_width <= inner and (small or full):
        body: Any = Text(s.jacobian_pretty)
    else:
        body = _matrix_table(
            "",
            coo.text_rows(report, (lambda t: t) if full else _clip),
            s.row_labels,
            s.col_labels,
            full,
            inner,
        )
    parts.append(
        Panel(
            body,
            title=title,
            title_align="left",
            subtitle=subtitle,
            subtitle_align="left",
            expand=False,
        )
    )
    if not small and s.jacobian_text:
        picture, block = spy(s.jacobian_text, inner, min(24, -(-rows_n // 4)))
        what = "one dot per entry" if block == 1 else f"one dot per {block} x {block} block"
        parts.append(
            Panel(
                picture,
                title=Text("Sparsity of J ", style="bold").append(
                    f"({what}, lit where nonzero)", style="dim"
                ),
                title_align="left",
                subtitle=Text(f"{rows_n} rows x {cols_n} columns", style="dim"),
                subtitle_align="left",
                expand=False,
            )
        )

    if a is None:
        parts.extend(hessian.to_rich(report, full, width))  # symbolic Hessians (issue 15)
        claims = _claims(report)
        verdict = [_verdict_line(report)] if claims else []  # symbolic claims were judged
        return Group(*parts, *[Text(note, style="dim") for note in report.notes],
                     *claims, *verdict)  # fmt: skip

    assert s.jacobian is not None
    parts.append(
        _two_sides(
            ("J at the point (SymPy)", "SymPy"),
            coo.number_rows(s.sparse_jacobian, s.jacobian, fmt, s.beyond("jacobian")),
            (coo.passes_title(report), "torch"),
            coo.number_rows(a.sparse_jacobian, a.jacobian, fmt),
            s.row_labels,
            s.col_labels,
            full,
            width,
        )
    )
    check = report.check("jacobian")
    assert check is not None
    parts.append(Text("  ").append_text(_verdict(check, _labeller(report, "jacobian"))))
    parts.append(Text(""))

    if p.v is not None:
        assert s.vjp is not None and a.vjp is not None
        parts.append(_product_panel(
            report, "vjp", "VJP  v^T J", ("v", p.v, p.outputs, p.output_shapes),
            (exact_values(s.vjp, s.beyond("vjp")), a.vjp, p.variables, p.shapes),
            ("SymPy v^T J", "torch y.backward(v) -> .grad"), ("{}.grad{} SymPy",
                                                              "{}.grad{} torch .backward"),
            tensors, full))  # fmt: skip
    if p.u is not None:
        assert s.jvp is not None and a.jvp is not None
        parts.append(_product_panel(
            report, "jvp", "JVP  J u", ("u", p.u, p.variables, p.shapes),
            (exact_values(s.jvp, s.beyond("jvp")), a.jvp, p.outputs, p.output_shapes),
            ("SymPy J u", "torch forward-mode J u"), ("d{}{} SymPy", "d{}{} torch forward"),
            tensors, full))  # fmt: skip
    parts.extend(explain_parts(report, full, width))

    parts.extend(hessian.to_rich(report, full, width))  # --hessian, --hvp (issue 15)
    parts.extend(graph_view.rich_parts(report, full, width))  # --graph
    notes = [*report.notes, *s.notes, *a.notes]
    for note in notes if full else notes[:10]:
        parts.append(Text("note: " + note, style="dim"))
    if len(notes) > 10 and not full:
        parts.append(
            Text(f"({len(notes) - 10} more notes: --full or --json shows them)", style="dim")
        )
    parts.extend(_claims(report))  # --expect, --sample
    parts.extend(usercode_view.panels(report))  # --torch FILE.py:NAME
    parts.extend(fd_view.panels(report))  # --fd
    parts.append(_verdict_line(report))
    return Group(*parts)


def _verdict_line(report: Report) -> Any:
    """`Verdict: ✔ agree  (jacobian: agree, ...)`: the overall status and each part's."""
    from rich.text import Text

    status = overall(report)
    label, style = _VERDICT_STYLE[status]
    verdict = Text("Verdict: ", style="bold")
    verdict.append(label if status != "undefined" else "undefined at this point", style=style)
    candidates = [f"your code: {x.status}" for x in (report.code,) if x is not None] + [
        f"FD: {x.status}" for x in (report.fd,) if x is not None]  # fmt: skip
    listed = [f"{c.name}: {c.status}" for c in report.checks] + candidates
    claims = _claims_verdict(report)
    if claims:
        listed.append(claims.lstrip(", "))
    verdict.append(f"  ({', '.join(listed)})")
    return verdict


def _claims(report: Report) -> list[Any]:
    from .expect import rich_parts

    return rich_parts(report)


def _claims_verdict(report: Report) -> str:
    """The claims' and the sweep's part of the verdict line."""
    items = [f"claim {c.quantity}: {c.status}" for c in report.claims]
    if report.sample is not None:
        items.append(f"sample: {report.sample.disagree} of {report.sample.n} disagree")
    return (", " if report.checks and items else "") + ", ".join(items)


def _two_sides(
    a_titles: tuple[str, str],
    a_rows: Sequence[Sequence[str]],
    b_titles: tuple[str, str],
    b_rows: Sequence[Sequence[str]],
    row_names: Sequence[str],
    col_names: Sequence[str],
    full: bool,
    width: int,
) -> Any:
    """SymPy's and torch's J: side by side where both fit in half the width each with all
    their columns, else one above the other (each with the columns that fit); with --full
    where the matrix fits in neither, one list of nonzero entries with both sides."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    shown_rows = list(range(len(row_names))) if full else _window(len(row_names), MAX_ROWS)
    half = (width - 4) // 2
    fit = [_fitting_columns(r, row_names, col_names, shown_rows, half, full)
           for r in (a_rows, b_rows)]  # fmt: skip
    if all(c is not None and None not in c for c in fit):
        grid = Table.grid(padding=(0, 4))
        grid.add_row(
            _matrix_table(a_titles[0], a_rows, row_names, col_names, full, half),
            _matrix_table(b_titles[0], b_rows, row_names, col_names, full, half),
        )
        return grid
    whole = [_fitting_columns(r, row_names, col_names, shown_rows, width, full)
             for r in (a_rows, b_rows)]  # fmt: skip
    if full and any(c is None for c in whole):
        return _entry_list(
            "J at the point, every nonzero entry", [a_rows, b_rows],
            (a_titles[1], b_titles[1]), row_names, col_names, True,
        )  # fmt: skip
    return Group(
        _matrix_table(a_titles[0], a_rows, row_names, col_names, full, width),
        Text(""),
        _matrix_table(b_titles[0], b_rows, row_names, col_names, full, width),
    )


def _labeller(report: Report, check_name: str) -> Any:
    """Index of an entry -> its name in the report: df1/dx, w1.grad, df2 (for J u)."""
    s = report.symbolic

    def name(idx: Sequence[int]) -> str:
        if check_name == "jacobian" and len(idx) == 2:
            return f"d{s.row_labels[idx[0]]}/d{s.col_labels[idx[1]]}"
        if len(idx) == 1 and check_name == "vjp" and idx[0] < len(s.col_labels):
            return f"{s.col_labels[idx[0]]}.grad"
        if len(idx) == 1 and check_name == "jvp" and idx[0] < len(s.row_labels):
            return f"d{s.row_labels[idx[0]]}"
        return "[" + ",".join(str(i) for i in idx) + "]"

    return name


Named = tuple[str, Sequence[float], Sequence[str], Sequence[tuple[int, ...]]]


def _product_panel(
    report: Report,
    check_name: str,
    title: str,
    given: Named,
    result: tuple[Sequence[float], Sequence[float], Sequence[str], Sequence[tuple[int, ...]]],
    flat_labels: tuple[str, str],
    shaped_labels: tuple[str, str],
    tensors: bool,
    full: bool,
) -> Any:
    """The VJP or JVP panel: the vector given, both sides' results, the verdict. Flat for
    scalar problems; per name, in each tensor's shape, otherwise."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    check = report.check(check_name)
    assert check is not None
    symbol, vector, vec_names, vec_shapes = given
    sym, tor, names, shapes = result
    body = Table.grid(padding=(0, 2))
    if not tensors:
        # one line per variable (w1.grad) or output (df1), both sides side by side
        given_line = Text(symbol, style="bold").append(f" = {fmt_vec(vector, full)}", style="")
        per = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
        per.add_column("")
        per.add_column(flat_labels[0], justify="right")
        per.add_column(flat_labels[1], justify="right")
        label = shaped_labels[0].split(" ")[0]
        for k in range(len(names)) if full else _window(len(names), MAX_ROWS):
            if k is None:
                per.add_row(Text("⋮"), Text("⋮"), Text("⋮"))
                continue
            per.add_row(Text(label.format(names[k], "")), Text(fmt(sym[k])), Text(fmt(tor[k])))
        verdict = _verdict(check, _labeller(report, check_name))
        return Panel(Group(given_line, per, verdict), title=Text(title, style="bold"),
                     title_align="left", expand=False)  # fmt: skip
    else:
        for name, sh, vals in per_name(vector, vec_names, vec_shapes):
            body.add_row(Text(f"{symbol} for {name}", style="bold"), Text(_nested_text(vals, sh)))
        for (name, sh, sv), (_, _, tv) in zip(
            per_name(sym, names, shapes), per_name(tor, names, shapes), strict=True
        ):
            body.add_row(Text(shaped_labels[0].format(name, _shape_note(sh))),
                         Text(_nested_text(sv, sh)))  # fmt: skip
            body.add_row(Text(shaped_labels[1].format(name, _shape_note(sh))),
                         Text(_nested_text(tv, sh)))  # fmt: skip
    verdict = _verdict(check, _labeller(report, check_name))
    return Panel(Group(body, verdict), title=Text(title, style="bold"),
                 title_align="left", expand=False)  # fmt: skip


def _clip(text: str, width: int = 40) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def batch_summary(summary: Any) -> Any:
    """The --points summary table: how many points agree, and the worst difference, where."""
    from rich.table import Table

    table = Table(title="--points summary", title_justify="left")
    columns = ("points", "agree", "disagree", "undefined", "worst |SymPy - torch|", "at line",
               "seconds")  # fmt: skip
    for col in columns:
        table.add_column(col, justify="right")
    table.add_row(
        str(summary.points),
        str(summary.agree),
        str(summary.disagree),
        str(summary.undefined),
        f"{summary.worst:.3g}",
        str(summary.worst_line or "-"),
        f"{summary.seconds:.2f}",
    )
    symbolic = "SymEngine-compiled code" if summary.compiled else "numpy, entry by entry"
    where = "a side process" if summary.processes > 1 else "this process"
    exact = getattr(summary, "exact", 0)
    reference = (
        f"reference: error-bounded float64 at {summary.points - exact} points, 30-digit "
        f"fallback at {exact}"
    )
    table.caption = f"symbolic side: {symbolic}; torch side: {where}\n{reference}"
    table.caption_justify = "left"
    return table
