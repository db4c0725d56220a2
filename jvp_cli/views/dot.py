"""The autograd graph as a picture (--graph-out): Graphviz DOT text, a pure function of the
Report's Graph, and SVG or PNG rendered from it by Graphviz's `dot` program.

Like micrograd's draw_dot, one record per node with its value and gradient, but from the
graph torch recorded: each node shows the operation as written, torch's grad_fn, the forward
value and the adjoint d(v^T y)/d(node); leaves (the variables, blue) and outputs (green) are
marked; each edge, drawn from an input to the operation using it, carries SymPy's local
derivative. Every node and edge is in the file, however big the graph.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from ..model import Graph, InputError, Report
from .graph import values_text

FORMATS = {".dot": "dot", ".gv": "dot", ".svg": "svg", ".png": "png"}
INSTALL = (
    "install Graphviz (Debian/Ubuntu: apt-get install graphviz; macOS: brew install "
    "graphviz; conda: conda install graphviz), or write a .dot file (--graph-out graph.dot)"
)


def format_of(path: str) -> str:
    """dot, svg or png from the file name's suffix, or an InputError (exit 2)."""
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise InputError(
            f"cannot tell the picture's format from '{path}'",
            where="--graph-out",
            fix="name a .dot, .svg or .png file",
        )
    return FORMATS[suffix]


def check_renderer(path: str) -> None:
    """Refuse an SVG or PNG before any work when Graphviz's `dot` is not installed."""
    if format_of(path) != "dot" and shutil.which("dot") is None:
        raise InputError(
            f"writing {Path(path).suffix.lower()[1:].upper()} needs Graphviz's dot program, "
            "which is not installed",
            where="--graph-out",
            fix=INSTALL,
        )


def _quote(text: str) -> str:
    """A DOT double-quoted string: backslashes and quotes escaped, no raw newlines."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'


def _html(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))  # fmt: skip


_FILL = {"leaf": "lightblue", "output": "palegreen", "op": "white"}


def to_dot(report: Report) -> str:
    g = report.graph
    assert g is not None
    return graph_dot(g)


def graph_dot(g: Graph) -> str:
    """The whole graph in DOT, left to right from the leaves to the outputs. Labels are
    HTML-like tables (escaped), so user text never becomes DOT syntax."""
    lines = [
        "digraph autograd {",
        '  graph [rankdir=LR, fontname="Helvetica", label="torch autograd graph: value and '
        'adjoint d(v^T y)/d(node) at each node, local derivative on each edge", labelloc=t];',
        '  node [shape=plaintext, fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for n in g.nodes:
        kind = {"leaf": "leaf", "output": "output", "op": "op"}[n.kind]
        head = f"{n.label}" if n.kind != "leaf" else f"{n.label} (leaf)"
        if n.outputs and n.kind == "leaf":
            head += f" = output {', '.join(n.outputs)}"
        rows = [
            f'<TR><TD COLSPAN="2" BGCOLOR="{_FILL[kind]}"><B>{_html(head)}</B></TD></TR>',
            f'<TR><TD COLSPAN="2"><FONT POINT-SIZE="9">{_html(n.grad_fn)} · {kind}</FONT>'
            "</TD></TR>",
            f'<TR><TD ALIGN="LEFT">value</TD><TD ALIGN="RIGHT">'
            f"{_html(values_text(n.value, n.shape))}</TD></TR>",
            f'<TR><TD ALIGN="LEFT">adjoint</TD><TD ALIGN="RIGHT"><B>'
            f"{_html(values_text(n.adjoint, n.shape))}</B></TD></TR>",
        ]
        table = '<TABLE BORDER="0" CELLBORDER="1" CELLSPACING="0" CELLPADDING="4">'
        lines.append(f"  {n.id} [label=<{table}{''.join(rows)}</TABLE>>];")
    for e in g.edges:
        lines.append(f"  {e.source} -> {e.target} [label={_quote(e.local)}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def write(report: Report, path: str) -> None:
    """Write the picture: DOT text, or SVG/PNG by `dot` (InputError where it cannot)."""
    kind = format_of(path)
    text = to_dot(report)
    try:
        if kind == "dot":
            Path(path).write_text(text, encoding="utf-8")
            return
        check_renderer(path)
        done = subprocess.run(
            ["dot", f"-T{kind}", "-o", path], input=text.encode("utf-8"),
            capture_output=True, timeout=120, check=False,
        )  # fmt: skip
    except OSError as exc:
        raise InputError(f"cannot write '{path}': {exc.strerror or exc}", where="--graph-out",
                         fix="name a file in a directory you can write") from None  # fmt: skip
    except subprocess.TimeoutExpired:
        raise InputError("Graphviz's dot took more than 120 s", where="--graph-out",
                         fix="write a .dot file instead") from None  # fmt: skip
    if done.returncode != 0:
        why = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise InputError(
            f"Graphviz's dot failed: {why[0] if why else 'status ' + str(done.returncode)}",
            where="--graph-out",
            fix="write a .dot file instead",
        )
