"""The autograd graph of a Report (--graph): a rich table in backward order for the terminal,
and the `"graph"` object of --json. Pure functions of the Report's Graph (built by graph.py)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..model import Graph, GraphNode, Report
from ..shapes import nest
from .common import few, fmt, nums

MAX_NODES = 24  # rows of the terminal table (the JSON and the files have every node)


def json_fields(report: Report) -> dict[str, Any]:
    """{"graph": {...}} with --graph, else nothing."""
    g = report.graph
    return {} if g is None else {"graph": to_dict(g)}


def to_dict(g: Graph) -> dict[str, Any]:
    return {
        "nodes": [
            {
                "id": n.id,
                "label": n.label,
                "grad_fn": n.grad_fn,
                "value": nums(n.value),
                "adjoint": nums(n.adjoint),
                "kind": n.kind,
                "shape": list(n.shape),
                "op": n.op,
                "outputs": list(n.outputs),
            }
            for n in g.nodes
        ],
        "edges": [
            {
                "from": e.source,
                "to": e.target,
                "local": e.local,
                "local_value": None if e.local_value is None else nums(e.local_value),
                "via": list(e.via),
            }
            for e in g.edges
        ],
    }


def values_text(values: Sequence[float], shape: tuple[int, ...], limit: int = 12) -> str:
    """A node's value or adjoint: a number, or nested lists (the first `limit` numbers of a
    bigger tensor, and how many there are)."""
    if not shape:
        return fmt(values[0]) if values else ""
    if len(values) <= limit:
        return _nested([fmt(x) for x in values], shape)
    shown = ", ".join(few([fmt(x) for x in values], limit, False))
    return f"[{shown}] ({len(values)} elements)"


def _nested(items: list[str], shape: tuple[int, ...]) -> str:
    obj = nest(items, shape)

    def text(o: Any) -> str:
        return "[" + ", ".join(text(x) for x in o) + "]" if isinstance(o, list) else str(o)

    return text(obj)


def rich_parts(report: Report, full: bool = False, width: int = 80) -> list[Any]:
    """The terminal's graph panel (nothing without --graph)."""
    g = report.graph
    if g is None:
        return []
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    by_id = {n.id: n for n in g.nodes}
    into: dict[str, list[str]] = {}
    for e in g.edges:
        into.setdefault(e.target, []).append(f"{e.source} {_short(by_id[e.source])}: {e.local}")
    table = Table(box=None, pad_edge=False, show_edge=False, header_style="bold")
    table.add_column("", no_wrap=True)
    table.add_column("operation", ratio=3)
    table.add_column("value", justify="right", ratio=2)
    table.add_column("adjoint", justify="right", ratio=2)
    table.add_column("← input: local d(node)/d(input)", ratio=3)
    rows = list(range(len(g.nodes)))
    if not full and len(rows) > MAX_NODES:
        rows = [*rows[: MAX_NODES - 4], -1, *rows[-3:]]
    for k in rows:
        if k < 0:
            table.add_row(Text("⋮"), Text(f"{len(g.nodes) - MAX_NODES + 1} more nodes "
                                          "(--full, --json or --graph-out shows all)"))  # fmt: skip
            continue
        n = g.nodes[k]
        style = {"leaf": "cyan", "output": "green"}.get(n.kind, "")
        label = Text(n.label if n.kind != "leaf" else f"{n.label} (leaf)", style=style)
        label.append(f"\n{n.grad_fn}", style="dim")
        table.add_row(
            Text(n.id, style="dim"),
            label,
            Text(values_text(n.value, n.shape)),
            Text(values_text(n.adjoint, n.shape), style="bold"),
            Text("\n".join(into.get(n.id, [])) or ("= .grad" if n.kind == "leaf" else "")),
        )
    title = Text("Graph ", style="bold").append(
        "torch's backward pass, outputs first: adjoint = d(v^T y)/d(node)", style="dim"
    )
    subtitle = Text(
        f"{len(g.nodes)} nodes, {len(g.edges)} edges; the leaves' adjoints are .grad = v^T J",
        style="dim",
    )
    return [Panel(table, title=title, title_align="left", subtitle=subtitle,
                  subtitle_align="left", expand=False), Text("")]  # fmt: skip


def _short(node: GraphNode, limit: int = 24) -> str:
    """A node's name in an input list: the variable, the statement's name, or its text."""
    text = node.label.split(" = ")[0] if " = " in node.label else node.label
    return text if len(text) <= limit else f"{text[: limit - 1]}…"
