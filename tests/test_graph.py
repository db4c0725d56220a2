"""--graph / --graph-out: the graph torch recorded, its values, adjoints and local derivatives.

Every expected number is computed here another way: by hand (closed forms of the adjoints),
by the chain rule over SymPy's local derivatives, or as the report's symbolic v^T J."""

from __future__ import annotations

import math
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import assert_close

from jvp_cli import api, graph
from jvp_cli.model import InputError

SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"
TUTORIAL = "y = x + 2; z = y * y; out = mean(z)"
HAS_DOT = shutil.which("dot") is not None


def _graph(src: str, at: str, v: str | None = None, **kw: Any) -> Any:
    program, problem = api.make_problem(src, at=at, v=v, **kw)
    problem = graph.require(problem)
    report = api.solve(program, problem)
    assert report.graph is not None
    return report


def _by_label(g: Any) -> dict[str, Any]:
    return {n.label: n for n in g.nodes}


def _chain_rule(g: Any) -> dict[str, np.ndarray]:
    """Each node's adjoint from its users' adjoints and SymPy's local derivatives:
    adjoint(input) = sum over edges of adjoint(user) * local, summed over broadcast axes."""
    nodes = {n.id: n for n in g.nodes}
    out: dict[str, np.ndarray] = {}
    for n in g.nodes:
        users = [e for e in g.edges if e.source == n.id]
        if not users:
            continue
        total = np.zeros(n.shape)
        for e in users:
            assert e.local_value is not None, e
            user = nodes[e.target]
            prod = np.asarray(user.adjoint).reshape(user.shape) * np.asarray(e.local_value).reshape(
                user.shape
            )
            while prod.ndim > len(n.shape):
                prod = prod.sum(0)
            for axis, size in enumerate(n.shape):
                if size == 1 and prod.shape[axis] != 1:
                    prod = prod.sum(axis, keepdims=True)
            total = total + prod
        out[n.id] = total
    return out


def test_seed_leaf_adjoints_are_the_vjp(vjp: Any) -> None:
    r = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--graph", "--json")
    doc = r.json()
    g = doc["graph"]
    leaves = {n["label"]: n for n in g["nodes"] if n["kind"] == "leaf"}
    # v^T J by hand: J = [[2x1, 2, 1], [1, 3x2^2, 2x3], [2, 2x2, 3x3^2]] at (1, 2, 3)
    x1, x2, x3 = 1, 2, 3
    J = [[2 * x1, 2, 1], [1, 3 * x2**2, 2 * x3], [2, 2 * x2, 3 * x3**2]]
    v = [3, 2, 1]
    want = [sum(v[i] * J[i][j] for i in range(3)) for j in range(3)]
    assert [leaves[n]["adjoint"] for n in ("x1", "x2", "x3")] == [[w] for w in want]
    assert want == [10, 34, 42]
    assert {n["grad_fn"] for n in leaves.values()} == {"AccumulateGrad"}
    outs = [n for n in g["nodes"] if n["kind"] == "output"]
    assert sorted(o["outputs"][0] for o in outs) == ["f1", "f2", "f3"]
    for o, vi in zip(sorted(outs, key=lambda o: o["outputs"][0]), v, strict=True):
        assert o["adjoint"] == [vi]  # the seed of the backward pass at each output
    assert doc["graph"]["nodes"][0]["kind"] == "output"  # backward order: outputs first
    assert [n["kind"] for n in g["nodes"][-3:]] == ["leaf"] * 3
    for e in g["edges"]:
        assert set(e) >= {"from", "to", "local"}
    ops = {n["grad_fn"] for n in g["nodes"]}
    assert {"PowBackward0", "MulBackward0", "AddBackward0"} <= ops
    # the local derivative of x2**3 with respect to x2, as SymPy writes it
    ids = {n["id"]: n for n in g["nodes"]}
    pow3 = [e for e in g["edges"] if ids[e["to"]]["label"] == "x2**3"]
    assert [(ids[e["from"]]["label"], e["local"]) for e in pow3] == [("x2", "3*x2**2")]


def test_tutorial_tensor_example_graph() -> None:
    report = _graph(TUTORIAL, "x=[[1,1],[1,1]]")
    g = report.graph
    nodes = {n.id: n for n in g.nodes}
    # x -> add -> mul -> mean, read from the leaf up
    path = []
    current = next(n for n in g.nodes if n.kind == "leaf")
    while True:
        path.append(current.grad_fn)
        up = [e for e in g.edges if e.source == current.id]
        if not up:
            break
        assert len(up) == 1
        current = nodes[up[0].target]
    assert path == ["AccumulateGrad", "AddBackward0", "MulBackward0", "MeanBackward0"]
    by = _by_label(g)
    y_val = 1 + 2
    assert by["out = mean(z)"].adjoint == (1.0,) and by["out = mean(z)"].kind == "output"
    assert by["z = y*y"].adjoint == (0.25,) * 4  # d mean / d z_i = 1/4
    assert by["y = x + 2"].adjoint == (0.25 * 2 * y_val,) * 4  # 1.5
    assert by["x"].adjoint == (1.5,) * 4 and by["x"].shape == (2, 2)
    assert by["z = y*y"].value == (9.0,) * 4
    # one edge y -> z whose local derivative is 2*y (y * y uses y twice)
    yz = [e for e in g.edges if e.source == by["y = x + 2"].id]
    assert [e.local for e in yz] == ["2*y"] and yz[0].local_value == (6.0,) * 4
    assert report.symbolic.vjp == by["x"].adjoint


def test_intermediate_adjoints_by_hand() -> None:
    """a = sin(x)*y; b = a**2 + x; out = b*exp(a): the adjoint at each statement is the
    derivative of out with respect to that statement's value, the rest held fixed."""
    x, y = 0.7, -1.3
    report = _graph("a = sin(x)*y; b = a**2 + x; out = b*exp(a)", f"x={x},y={y}")
    by = _by_label(report.graph)
    a = math.sin(x) * y
    b = a**2 + x
    d_b = math.exp(a)  # d out / d b
    d_a = b * math.exp(a) + d_b * 2 * a  # directly, and through b
    assert_close(by["out = b*exp(a)"].adjoint, [1.0])
    assert_close(by["b = a**2 + x"].adjoint, [d_b], rel=1e-12)
    assert_close(by["a = sin(x)*y"].adjoint, [d_a], rel=1e-12)
    assert_close(by["x"].adjoint, [d_a * math.cos(x) * y + d_b], rel=1e-12)
    assert_close(by["y"].adjoint, [d_a * math.sin(x)], rel=1e-12)
    assert_close(list(report.symbolic.vjp), [by["x"].adjoint[0], by["y"].adjoint[0]], rel=1e-12)


@pytest.mark.parametrize(
    ("src", "at", "v"),
    [
        ("a = sin(x)*y; b = a**2 + x; out = b*exp(a)", "x=0.7,y=-1.3", None),
        (SEED, "1,2,3", "3,2,1"),
        ("sigmoid(w*x + b) - log(1 + x**2)/w", "w=0.5,x=2,b=-1", None),
        ("r*cos(theta); r*sin(theta); r**2 - theta/r", "r=2,theta=0.4", "1,-2,0.5"),
        ("y = x*w + 1; z = tanh(y) * y; out = z - x", "x=[1,2,3],w=[0.5,-1,2]", "[1,1,1]"),
        # a long sum, which the report's torch side fuses, is drawn term by term
        (" + ".join(f"sin(x*{k})*y" for k in range(1, 21)), "x=0.5,y=2", None),
    ],
)
def test_adjoints_follow_the_chain_rule(src: str, at: str, v: str | None) -> None:
    """torch's adjoints (retain_grad) equal the products of SymPy's local derivatives,
    summed over the paths, at every node; the leaves' adjoints are SymPy's v^T J."""
    report = _graph(src, at, v)
    g = report.graph
    expected = _chain_rule(g)
    nodes = {n.id: n for n in g.nodes}
    assert expected, "no edges"
    for nid, want in expected.items():
        assert_close(list(nodes[nid].adjoint), list(want.reshape(-1)), rel=1e-10, abs_=1e-12)
    leaves = [n for n in g.nodes if n.kind == "leaf"]
    flat = [x for n in sorted(leaves, key=lambda n: report.problem.variables.index(n.label))
            for x in n.adjoint]  # fmt: skip
    assert_close(flat, list(report.symbolic.vjp), rel=1e-10)


def test_tensor_operations_state_their_rule() -> None:
    report = _graph("out = A @ x; s = sum(out*out)", "A=[[1,2],[3,4]],x=[1,-1]")
    g = report.graph
    by = _by_label(g)
    ids = {n.id: n for n in g.nodes}
    into = {(ids[e.source].label, ids[e.target].label): e.local for e in g.edges}
    assert into[("A", "out = A@x")] == "outer(adjoint, x)"
    assert into[("x", "out = A@x")] == "A.T @ adjoint"
    assert _by_label(g)["out = A@x"].grad_fn == "MvBackward0"
    # the adjoint at out is 2*out; A's adjoint is outer(2*out, x), x's A^T (2*out)
    w = 2 * (np.array([[1, 2], [3, 4]]) @ np.array([1, -1.0]))
    assert_close(list(by["out = A@x"].adjoint), list(w))
    assert_close(list(by["A"].adjoint), list(np.outer(w, [1, -1]).reshape(-1)))
    assert_close(list(by["x"].adjoint), list(np.array([[1, 2], [3, 4]]).T @ w))


def test_index_folds_torchs_inner_node() -> None:
    report = _graph("x[0, 1] * x[1, 0]", "x=[[1,2],[3,4]]")
    g = report.graph
    ids = {n.id: n for n in g.nodes}
    edges = [(ids[e.source].label, ids[e.target].label, e.via) for e in g.edges]
    assert ("x", "x[0, 1]", ("SelectBackward0",)) in edges
    assert _by_label(g)["x"].adjoint == (0.0, 3.0, 2.0, 0.0)


def test_graph_needs_a_point_and_v() -> None:
    _, problem = api.make_problem("x*y; x+y")
    with pytest.raises(InputError, match="needs a point"):
        graph.require(problem)
    _, problem = api.make_problem("x*y; x+y", at="1,2")
    with pytest.raises(InputError, match="cotangent"):
        graph.require(problem)


def test_cli_refusals(vjp: Any, tmp_path: Path, monkeypatch: Any) -> None:
    r = vjp("x*y; x+y", "--at", "1,2", "--graph", code=2)
    assert r.stdout == "" and r.stderr.count("\n") == 1 and "--v" in r.stderr
    r = vjp("x*y", "--points", "-", "--graph", code=2, input="x,y\n1,2\n")
    assert "--at" in r.stderr
    r = vjp("x*y", "--at", "1,2", "--graph-out", str(tmp_path / "g.jpg"), code=2)
    assert ".dot, .svg or .png" in r.stderr
    from jvp_cli.views import dot

    monkeypatch.setattr(dot.shutil, "which", lambda name: None)
    r = vjp("x*y", "--at", "1,2", "--graph-out", str(tmp_path / "g.svg"), code=2)
    assert r.stderr.count("\n") == 1 and "apt-get install graphviz" in r.stderr
    assert ".dot" in r.stderr and not (tmp_path / "g.svg").exists()
    # DOT needs no program
    vjp("x*y", "--at", "1,2", "--graph-out", str(tmp_path / "g.dot"))
    assert (tmp_path / "g.dot").read_text().startswith("digraph")


def test_dot_file_has_every_node_and_edge(vjp: Any, tmp_path: Path) -> None:
    out = tmp_path / "seed.dot"
    r = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--graph-out", str(out), "--json")
    g = r.json()["graph"]  # --graph-out implies --graph
    text = out.read_text()
    for n in g["nodes"]:
        assert f"  {n['id']} [label=<" in text
    assert text.count(" -> ") == len(g["edges"])
    assert "x1 (leaf)" in text and "f1 = x1**2 + 2*x2 + x3" in text


def test_dot_escapes_labels() -> None:
    from jvp_cli.model import Graph, GraphEdge, GraphNode
    from jvp_cli.views.dot import graph_dot

    node = GraphNode("n0", 'a<b>&"c"', "X", (1.0,), (2.0,), "op")
    text = graph_dot(Graph((node,), (GraphEdge("n0", "n0", 'say "hi" \\'),)))
    assert "a&lt;b&gt;&amp;&quot;c&quot;" in text
    assert 'label="say \\"hi\\" \\\\"' in text


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_svg_shows_the_leaf_adjoints(vjp: Any, tmp_path: Path) -> None:
    out = tmp_path / "seed.svg"
    vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--graph-out", str(out))
    root = ET.parse(out).getroot()
    texts = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
    for name, adjoint in (("x1", "10"), ("x2", "34"), ("x3", "42")):
        k = texts.index(f"{name} (leaf)")
        # the record reads: label, grad_fn, "value", value, "adjoint", adjoint
        assert texts[k + 1 : k + 6] == [
            "AccumulateGrad · leaf", "value", str({"x1": 1, "x2": 2, "x3": 3}[name]),
            "adjoint", adjoint,
        ]  # fmt: skip


@pytest.mark.skipif(not HAS_DOT, reason="Graphviz's dot is not installed")
def test_png_is_written(vjp: Any, tmp_path: Path) -> None:
    out = tmp_path / "g.png"
    vjp(TUTORIAL, "--at", "x=[[1,1],[1,1]]", "--graph-out", str(out))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_terminal_table(vjp: Any) -> None:
    r = vjp(TUTORIAL, "--at", "x=[[1,1],[1,1]]", "--graph")
    assert "MeanBackward0" in r.stdout and "x (leaf)" in r.stdout
    assert "[[0.25, 0.25]," in r.stdout and "= .grad" in r.stdout
    # a big graph is windowed in the terminal, whole in JSON
    src = "; ".join(f"f{k} = sin(x)*{k} + y" for k in range(20))
    r = vjp(src, "--at", "1,2", "--v", ",".join(["1"] * 20), "--graph")
    assert "more nodes" in r.stdout
    r = vjp(src, "--at", "1,2", "--v", ",".join(["1"] * 20), "--graph", "--json")
    assert len(r.json()["graph"]["nodes"]) > 24


def test_graph_crosses_the_fork(monkeypatch: Any) -> None:
    """The torch side may run in a forked child (sidecar.Pending): the graph comes back as
    plain data, the same as in-process."""
    from jvp_cli import sidecar

    monkeypatch.setattr(api, "PARALLEL_NODES", 0)
    forked = _graph(TUTORIAL, "x=[[1,2],[3,4]]").graph
    monkeypatch.setattr(sidecar, "PARALLEL", False)
    here = _graph(TUTORIAL, "x=[[1,2],[3,4]]").graph
    assert forked == here
