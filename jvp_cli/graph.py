"""The graph autograd recorded for the program (--graph): torch's own nodes, read from the
outputs' `grad_fn` and `next_functions` (as torchviz's make_dot walks them), with each
node's forward value and adjoint and each edge's local derivative.

This runs where torch runs (in api._autograd, which may be a forked child): the program is
evaluated once more by autograd.run, told which parse-tree node made each tensor (its
`trace`), while a TorchFunctionMode keeps every tensor that got a grad_fn, so each torch node
has its forward value. `retain_grad` on those tensors, then the same backward pass as the
report's (`torch.autograd.backward(outputs, v)`, which is what `y.backward(v)` does for the
stacked y), gives the adjoint d(v^T y)/d(node) of every node; the leaves' adjoints are the
VJP. The local derivatives on the edges are SymPy's: each element-wise operation is written
in SymPy with its inputs as symbols and differentiated by each input. Only plain data leaves
this module (model.Graph).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from . import lang
from .model import Graph, GraphEdge, GraphNode, InputError, Problem

MAX_GRAPH_NODES = 5_000  # torch nodes; a bigger graph is refused (its picture is unreadable)


def require(problem: Problem, option: str = "--graph") -> Problem:
    """The problem with the graph asked for, or an InputError when it cannot be drawn: the
    values need a point, the adjoints a cotangent. Cheap: imports neither engine."""
    from dataclasses import replace

    if problem.point is None:
        raise InputError(
            f"{option} needs a point", where=option, fix="add --at with a value for each variable"
        )
    if problem.v is None:
        raise InputError(
            "the adjoints on the graph need a cotangent v, and the output is not one scalar",
            where=option,
            fix=f"pass --v with one value per output ({', '.join(problem.outputs)})",
        )
    return replace(problem, graph=True)


_CHAIN_FN = {"+": "Add", "-": "Sub", "*": "Mul", "/": "Div"}


def trace(program: lang.Program, problem: Problem) -> Graph:
    """Run the program on fresh leaves, walk the graph torch built, take the adjoints."""
    import torch
    from torch.overrides import TorchFunctionMode

    from . import autograd

    assert problem.point is not None and problem.v is not None
    tdtype = autograd.DTYPES[problem.dtype]
    dev = autograd.device_of(problem.device)
    leaves = [t.requires_grad_(True) for t in
              autograd._split(problem.point, problem.shapes, tdtype, dev)]  # fmt: skip
    made: list[Any] = []  # every tensor an op returned with a grad_fn, in order

    class Keep(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None
                               ) -> Any:  # fmt: skip
            out = func(*args, **(kwargs or {}))
            for t in out if isinstance(out, (tuple, list)) else (out,):
                if isinstance(t, torch.Tensor) and t.grad_fn is not None:
                    made.append(t)
            return out

    traced: list[tuple[lang.Node, Any]] = []
    with Keep():
        outs = autograd.run(
            program, dict(zip(program.variables, leaves, strict=True)), leaves[0],
            trace=lambda node, t: traced.append((node, t)),
        )  # fmt: skip

    leaf_of = {id(t): k for k, t in enumerate(leaves)}
    tensor_of: dict[int, Any] = {}  # id(grad_fn) -> the tensor it made
    keep: list[Any] = []  # grad_fn objects stay alive, so their ids stay theirs
    for t in made:
        if id(t.grad_fn) not in tensor_of:
            keep.append(t.grad_fn)
            tensor_of[id(t.grad_fn)] = t
    for _, t in traced:
        if t.grad_fn is not None and id(t.grad_fn) not in tensor_of:
            keep.append(t.grad_fn)
            tensor_of[id(t.grad_fn)] = t

    def key(fn: Any) -> Any:
        """A torch node's identity: ("leaf", k) for a variable's AccumulateGrad."""
        variable = getattr(fn, "variable", None)
        if variable is not None:
            return ("leaf", leaf_of.get(id(variable), -1))
        return id(fn)

    def key_of(t: Any) -> Any:
        if t.grad_fn is not None:
            return id(t.grad_fn)
        return ("leaf", leaf_of[id(t)]) if id(t) in leaf_of else None  # None: a constant

    # the parse-tree node of each torch node (the innermost that made it: `x.T` of a vector
    # is x itself), and each node's tensor; long chains a + b + c are one tree node but one
    # torch node per operator: the partial chains a + b are found below the last
    names = {id(node): name for name, node in program.definitions}
    node_of: dict[Any, lang.Node] = {}
    value_of: dict[int, Any] = {}  # id(tree node) -> tensor
    for node, t in traced:
        value_of[id(node)] = t
        k = key_of(t)
        if k is None or isinstance(node, (lang.Name, lang.Num, lang.Const)):
            continue
        if k not in node_of:
            node_of[k] = node
    partial: dict[Any, lang.Chain] = {}  # torch node -> its two-operand chain (a + b) op c
    for k, node in list(node_of.items()):
        if isinstance(node, lang.Chain) and len(node.rest) > 1 and not isinstance(k, tuple):
            _partials(node, tensor_of[k].grad_fn, node_of, partial, value_of, tensor_of)

    # outputs: their keys and names
    output_names: dict[Any, list[str]] = {}
    for name, t in zip(program.outputs, outs, strict=True):
        k = key_of(t)
        if k is not None:
            output_names.setdefault(k, []).append(name)

    # the walk: reversed post-order from the outputs is an order of the backward pass
    # (every node before its inputs); a torch node that made no tensor of its own (the
    # inner select of x[0, 1]) is folded into the edge that passes through it
    roots = [t.grad_fn for t in outs if t.grad_fn is not None]
    fns: dict[Any, Any] = {}
    inputs: dict[Any, list[tuple[Any, tuple[str, ...]]]] = {}
    post: list[Any] = []
    state: dict[Any, int] = {}

    def next_of(fn: Any) -> list[tuple[Any, tuple[str, ...]]]:
        found: list[tuple[Any, tuple[str, ...]]] = []
        for child, _ in getattr(fn, "next_functions", ()):
            via: tuple[str, ...] = ()
            while (
                child is not None
                and key(child) not in tensor_of
                and not isinstance(key(child), tuple)
            ):
                via = (*via, type(child).__name__)
                nxt = [c for c, _ in child.next_functions if c is not None]
                child = nxt[0] if len(nxt) == 1 else None
            if child is not None:
                found.append((child, via))
        return found

    for root in roots:
        stack = [(root, False)]
        while stack:
            fn, done = stack.pop()
            k = key(fn)
            if done:
                state[k] = 2
                post.append(k)
                continue
            if k in state:
                continue
            if len(state) >= MAX_GRAPH_NODES:
                raise InputError(
                    f"the graph has more than {MAX_GRAPH_NODES:,} nodes",
                    where="--graph",
                    fix="draw a smaller program",
                )
            state[k] = 1
            fns[k] = fn
            inputs[k] = next_of(fn)
            stack.append((fn, True))
            for child, _ in reversed(inputs[k]):
                if key(child) not in state:
                    stack.append((child, False))
    order = _backward_order(post, inputs, fns, key)
    for t in outs:  # an output that is a variable itself is a leaf of the graph, and a root
        k = key_of(t)
        if isinstance(k, tuple) and k not in order:
            order.append(k)
    order = [k for k in order if not isinstance(k, tuple)] + sorted(
        (k for k in order if isinstance(k, tuple)), key=lambda k: k[1]
    )

    # adjoints: the report's backward pass, with every op node's tensor keeping its grad
    for k in order:
        if not isinstance(k, tuple):
            tensor_of[k].retain_grad()
    cotangents = autograd._split(problem.v, [tuple(o.shape) for o in outs], tdtype, dev)
    pairs = [(o, c) for o, c in zip(outs, cotangents, strict=True) if o.requires_grad]
    if pairs:
        torch.autograd.backward([o for o, _ in pairs], [c for _, c in pairs])

    ids = {k: f"n{i}" for i, k in enumerate(order)}
    nodes: list[GraphNode] = []
    for k in order:
        if isinstance(k, tuple):
            t = leaves[k[1]]
            label, grad_fn, kind, op = program.variables[k[1]], "AccumulateGrad", "leaf", ""
        else:
            t = tensor_of[k]
            grad_fn = type(fns[k]).__name__
            kind = "output" if k in output_names else "op"
            tree = node_of.get(k)
            if tree is None:
                label = op = _plain_op(grad_fn)
            else:
                label, op = lang.unparse(tree), _op(tree)
                named = names.get(id(tree))
                if named is None and k in output_names:
                    named = output_names[k][0]
                if named is not None:
                    label = f"{named} = {label}"
        grad = t.grad
        nodes.append(
            GraphNode(
                id=ids[k],
                label=label,
                grad_fn=grad_fn,
                value=_floats(t),
                adjoint=_floats(grad) if grad is not None else (0.0,) * t.numel(),
                kind=kind,
                shape=tuple(t.shape),
                op=op,
                outputs=tuple(output_names.get(k, ())),
            )
        )

    edges: list[GraphEdge] = []
    for k in order:
        if isinstance(k, tuple):
            continue
        tree = partial.get(k) or node_of.get(k)
        seen: set[Any] = set()
        for child, via in inputs[k]:
            ck = key(child)
            if ck in seen:  # y * y: one edge, whose local derivative is 2*y
                continue
            seen.add(ck)
            local, value = _local(tree, ck, key_of, value_of, tensor_of[k], leaves, program)
            edges.append(GraphEdge(ids[ck], ids[k], local, value, via))
    return Graph(tuple(nodes), tuple(edges))


def _backward_order(post: list[Any], inputs: dict[Any, Any], fns: dict[Any, Any], key: Any
                    ) -> list[Any]:  # fmt: skip
    """The nodes in the order torch's engine runs them: a node once every node using it has
    passed its gradient on, the ready one with the highest sequence number first."""
    import heapq

    users = {k: 0 for k in post}
    for k in post:
        for child, _ in inputs[k]:
            users[key(child)] += 1
    ready = [(-_sequence(fns[k]), n, k) for n, k in enumerate(post) if users[k] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, _, k = heapq.heappop(ready)
        order.append(k)
        seen = set()
        for child, _ in inputs[k]:
            ck = key(child)
            if ck in seen:
                continue
            seen.add(ck)
            users[ck] -= sum(1 for c, _ in inputs[k] if key(c) == ck)
            if users[ck] == 0:
                heapq.heappush(ready, (-_sequence(fns[ck]), len(order) + len(post), ck))
    return order


def _sequence(fn: Any) -> int:
    try:
        return int(fn._sequence_nr())
    except (AttributeError, RuntimeError):
        return 0


def _partials(
    node: lang.Chain,
    fn: Any,
    node_of: dict[Any, lang.Node],
    partial: dict[Any, lang.Chain],
    value_of: dict[int, Any],
    tensor_of: dict[int, Any],
) -> None:
    """a + b - c is evaluated as (a + b) - c: torch's last node is the whole chain, and the
    one below it on the left, (a + b), a partial chain. Each torch node T_j of the chain gets
    its two-operand form (left op right) for its local derivatives, and the partial chains
    their labels and values; the walk down stops where the left side is a constant (no
    grad_fn) or the node type is not the operator's (a long sum fused by autograd.run)."""
    k = len(node.rest)
    lefts: list[lang.Node] = [node.first]
    lefts += [lang.Chain(node.kind, node.first, node.rest[:j]) for j in range(1, k)]
    current = fn
    for j in range(k, 0, -1):
        op, right = node.rest[j - 1]
        want = _CHAIN_FN.get(op)
        if current is None or id(current) not in tensor_of:
            return
        if want is not None and not type(current).__name__.startswith(want):
            return
        if j < k:
            value_of[id(lefts[j])] = tensor_of[id(current)]
            node_of.setdefault(id(current), lefts[j])
        partial[id(current)] = lang.Chain(node.kind, lefts[j - 1], ((op, right),))
        current = current.next_functions[0][0] if current.next_functions else None


def _op(node: lang.Node) -> str:
    if isinstance(node, lang.Chain):
        return node.rest[-1][0] if node.rest else ""
    if isinstance(node, lang.Pow):
        return "**"
    if isinstance(node, lang.Neg):
        return "neg"
    if isinstance(node, lang.Call):
        return node.func
    if isinstance(node, lang.Index):
        return "index"
    if isinstance(node, lang.Transpose):
        return ".T"
    return ""


def _plain_op(grad_fn: str) -> str:
    """AddBackward0 -> add: the name of a torch node the program did not write itself."""
    return re.sub(r"Backward\d*$", "", grad_fn).lower() or grad_fn


def _floats(t: Any) -> tuple[float, ...]:
    import torch

    flat = t.detach().to("cpu", torch.float64).reshape(-1).tolist()
    return tuple(float(x) for x in flat)


# ---- local derivatives (SymPy) ------------------------------------------------------------


class _NotElementwise(Exception):
    pass


def _sympy_funcs() -> dict[str, Any]:
    import sympy as sp

    return {
        "sin": sp.sin, "cos": sp.cos, "tan": sp.tan, "asin": sp.asin, "acos": sp.acos,
        "atan": sp.atan, "sinh": sp.sinh, "cosh": sp.cosh, "tanh": sp.tanh, "exp": sp.exp,
        "log": sp.log, "sqrt": sp.sqrt, "abs": sp.Abs,
        "sigmoid": lambda u: 1 / (1 + sp.exp(-u)),
        "relu": lambda u: sp.Max(0, u),
        "softplus": lambda u: sp.log(1 + sp.exp(u)),
        "atan2": sp.atan2,
    }  # fmt: skip


def _to_sympy(node: lang.Node, given: dict[int, Any]) -> Any:
    """An element-wise tree as a SymPy expression; `given` maps id(tree node) to the
    symbol standing for it; names are real symbols. _NotElementwise for a tensor operation."""
    import sympy as sp

    if id(node) in given:
        return given[id(node)]
    if isinstance(node, lang.Num):
        return sp.Rational(node.exact())
    if isinstance(node, lang.Const):
        return sp.pi if node.id == "pi" else sp.E
    if isinstance(node, lang.Name):
        return sp.Symbol(node.id, real=True)
    if isinstance(node, lang.Neg):
        return -_to_sympy(node.operand, given)
    if isinstance(node, lang.Pow):
        return _to_sympy(node.base, given) ** _to_sympy(node.exponent, given)
    if isinstance(node, lang.Chain):
        acc = _to_sympy(node.first, given)
        for op, child in node.rest:
            if op == "@":
                raise _NotElementwise
            x = _to_sympy(child, given)
            acc = acc + x if op == "+" else acc - x if op == "-" else acc * x if op == "*" else (
                acc / x)  # fmt: skip
        return acc
    if isinstance(node, lang.Call) and node.func in lang.ELEMENTWISE:
        return _sympy_funcs()[node.func](*[_to_sympy(a, given) for a in node.args])
    raise _NotElementwise


def _shown(node: lang.Node) -> Any:
    """A child as it appears in a local derivative's text: its SymPy form (x**2), or, for a
    tensor operation, a symbol named by its text (sum(x))."""
    import sympy as sp

    try:
        return _to_sympy(node, {})
    except _NotElementwise:
        return sp.Symbol(lang.unparse(node))


def _local(
    tree: lang.Node | None,
    child_key: Any,
    key_of: Any,
    value_of: dict[int, Any],
    parent: Any,
    leaves: Sequence[Any],
    program: lang.Program,
) -> tuple[str, tuple[float, ...] | None]:
    """d tree / d (the input whose torch node is `child_key`): SymPy's text, and its value
    at the point per element of the parent where the operation is element-wise."""
    import numpy as np
    import sympy as sp

    if tree is None:
        return "(inside an operation of torch's own)", None
    kids = list(lang.children(tree))
    keys = []
    for c in kids:
        t = value_of.get(id(c))
        keys.append(key_of(t) if t is not None else None)
    hits = [i for i, k in enumerate(keys) if k == child_key]
    if not hits:
        return "(inside an operation of torch's own)", None
    rule = _tensor_rule(tree, hits, kids, parent, [value_of.get(id(c)) for c in kids])
    if rule is not None:
        return rule, None
    syms = [sp.Symbol(f"_u{i}", real=True) for i in range(len(kids))]
    given = {id(c): s for c, s, k in zip(kids, syms, keys, strict=True) if k is not None}
    try:
        expr = _to_sympy(tree, given)
    except _NotElementwise:
        return "(a tensor operation)", None
    d = sum((sp.diff(expr, syms[i]) for i in hits), sp.S.Zero)
    shown = {syms[i]: _shown(kids[i]) for i in range(len(kids)) if id(kids[i]) in given}
    text = str(d.subs(shown, simultaneous=True))
    used = [s for s in syms if s in d.free_symbols]
    if d.free_symbols - set(syms):  # a variable's own Symbol: no user name reaches lambdify
        return text, None
    try:
        f = sp.lambdify(used, d, modules="numpy", dummify=True)
        args = [np.asarray(_floats(value_of[id(kids[syms.index(s)])]), dtype=np.float64).reshape(
            tuple(value_of[id(kids[syms.index(s)])].shape)) for s in used]  # fmt: skip
        with np.errstate(all="ignore"):
            out = np.broadcast_to(np.asarray(f(*args), dtype=np.float64), tuple(parent.shape))
        value = tuple(float(x) for x in out.reshape(-1))
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        value = None
    return text, value


def _atom(text: str) -> str:
    return text if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", text) else f"({text})"


def _tensor_rule(tree: lang.Node, hits: list[int], kids: list[lang.Node], parent: Any,
                 tensors: list[Any]) -> str | None:  # fmt: skip
    """The local derivative of a tensor operation, as its rule (None: element-wise), in
    terms of the adjoint flowing into the operation where it is not a number per element."""
    c = lang.unparse(kids[hits[0]])
    child = tensors[hits[0]]
    if isinstance(tree, lang.Transpose):
        return "1 (each element to its transposed place)"
    if isinstance(tree, lang.Index):
        return "1 at the elements taken, 0 elsewhere"
    if isinstance(tree, lang.Chain) and tree.rest and tree.rest[-1][0] == "@":
        left, right = (_atom(lang.unparse(k)) for k in kids[-2:])
        dims = [t.dim() if t is not None else 0 for t in tensors[-2:]]
        if len(kids) != 2 or 0 in dims:
            return None
        to_left = f"outer(adjoint, {right})" if dims == [2, 1] else (
            f"adjoint*{right}" if dims == [1, 1] else f"adjoint @ {right}.T")  # fmt: skip
        to_right = f"{left}.T @ adjoint" if dims[0] == 2 else (
            f"adjoint*{left}" if dims == [1, 1] else f"{left} outer adjoint")  # fmt: skip
        if len(hits) > 1:
            return f"{to_left} + {to_right}"
        return to_left if hits[0] == 0 else to_right
    if not isinstance(tree, lang.Call) or tree.func in lang.ELEMENTWISE:
        return None
    f = tree.func
    if f == "sum":
        return "1 (each element)"
    if f == "mean":
        n = child.numel() // max(1, parent.numel()) if child is not None else 0
        return f"1/{n} (each element)"
    if f == "prod":
        return f"prod({c})/{c} (each element: the product of the others)"
    if f in ("max", "min"):
        return f"1 at the {f} (split evenly between ties), 0 elsewhere"
    if f == "logsumexp":
        return f"softmax({c})"
    if f == "softmax":
        return "s_i*(delta_ij - s_j), s = the softmax"
    if f == "norm":
        return f"{c}/norm({c})"
    if f == "dot":
        return lang.unparse(kids[1 - hits[0]]) if len(hits) == 1 else f"2*{c}"
    if f == "reshape":
        return "1 (the same elements, reshaped)"
    return None
