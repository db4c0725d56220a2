"""Tree -> PyTorch: what autograd actually computes for the program as the user wrote it.

Each variable is a leaf tensor of its shape with requires_grad=True. The program runs as real
tensor operations (broadcasting, @, reductions, indexing, as torch does them) from the parse
tree, not from SymPy's simplified form. The VJP is `y.backward(v)` on the real outputs — for
scalar outputs stacked into one vector `y`, exactly as in the tutorial — read back from the
leaves' `.grad`. The Jacobian is taken one reverse pass per output element (as jax.jacrev does
with basis vectors) and the JVP by forward-mode AD (dual numbers), so the three quantities come
from different autograd paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD

from . import lang
from .model import AutogradResult, EngineError
from .shapes import Shape

_ELEMENTWISE: dict[str, Callable[..., torch.Tensor]] = {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "asin": torch.asin,
    "acos": torch.acos, "atan": torch.atan, "sinh": torch.sinh, "cosh": torch.cosh,
    "tanh": torch.tanh, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
    "abs": torch.abs, "sigmoid": torch.sigmoid, "relu": torch.relu,
    "softplus": torch.nn.functional.softplus, "atan2": torch.atan2,
}  # fmt: skip

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def run(
    program: lang.Program,
    inputs: dict[str, torch.Tensor],
    like: torch.Tensor,
    forward: bool = False,
    batch: bool = False,
    plan: dict[Any, Any] | None = None,
    trace: Callable[[lang.Node, torch.Tensor], None] | None = None,
) -> list[Any]:
    """Evaluate the program's outputs from `inputs` (a tensor per variable). With `forward`,
    inside a dual level, constants are dual numbers with a zero tangent. With `batch`, every
    input is a 1-D tensor holding one scalar variable at many points (--points): the program
    is element-wise, so each value is a tensor of the batch's length; `plan`, kept by the
    caller from chunk to chunk, remembers how each long sum's terms group. `trace(node,
    tensor)` is told each tree node's value as it is computed (graph.py, --graph)."""
    env: dict[str, Any] = dict(inputs)
    dtype, device = like.dtype, like.device
    point_shape = tuple(like.shape) if batch else ()  # the shape of one scalar value
    point_dims = len(point_shape)
    del like  # the closures below must not keep a leaf alive
    min_terms = BATCH_TERMS_POINTS if batch else BATCH_TERMS
    if trace is not None:  # --graph: every term's own nodes, as written (no fused sums)
        min_terms = 1 << 62
    # constants, made once per run, or once per --points run through `plan` (they carry no
    # graph, so chunk after chunk can share them; not in forward mode, where they are duals)
    shared: dict[Any, Any] = plan if plan is not None and not forward else {}
    consts: dict[float, torch.Tensor] = shared.setdefault("consts", {})
    vectors: dict[tuple[float, ...], torch.Tensor] = shared.setdefault("vectors", {})
    # id of a constant's tensor -> its value: `tensor * 0.5` and
    # `x ** 2.0` take a Python number (no broadcasting of a 0-d tensor; x**2 becomes x*x)
    scalars: dict[int, float] = shared.setdefault("scalars", {})
    stacks: dict[tuple[str, ...], torch.Tensor] = {}

    def const(value: float) -> torch.Tensor:
        t = consts.get(value)
        if t is None:
            t = torch.tensor(value, dtype=dtype, device=device)
            # Mixing a dual tensor with a plain one sends forward-mode AD through a Python
            # decomposition that imports torch._dynamo (a second of start-up); dual with dual
            # stays native. The value is the same.
            t = consts[value] = fwAD.make_dual(t, torch.zeros_like(t)) if forward else t
            # In forward mode too: a dual exponent makes pow's tangent carry
            # log(base) * 0, NaN for a negative base (x**2 at -0.2), where a Python
            # number, as users write x**2, has no such term; a Python number is no tensor,
            # so nothing mixes dual and plain tensors
            scalars[id(t)] = value
        return t

    def leaf(n: lang.Node) -> torch.Tensor:
        if isinstance(n, lang.Num):
            return const(float(n.value))
        if isinstance(n, lang.Const):
            return const(math.pi if n.id == "pi" else math.e)
        assert isinstance(n, lang.Name)
        return env[n.id]  # type: ignore[no-any-return]

    def dim(n: lang.Call) -> int | None:
        return lang.const_int(n.args[1]) if len(n.args) > 1 else None

    def call(n: lang.Call, args: list[torch.Tensor]) -> torch.Tensor:
        f = n.func
        if f in _ELEMENTWISE:
            return _ELEMENTWISE[f](*args)
        x = args[0]
        d = dim(n) if f not in ("reshape", "dot", "norm") else None
        if f in ("sum", "mean"):
            return getattr(x, f)() if d is None else getattr(x, f)(d)
        if f == "prod":
            return x.prod() if d is None else x.prod(d)
        if f in ("max", "min"):
            # full reduction: torch.max(x) splits the gradient evenly between tied maxima;
            # amax/amin along a dimension do the same
            if d is None:
                return torch.max(x) if f == "max" else torch.min(x)
            return torch.amax(x, d) if f == "max" else torch.amin(x, d)
        if f == "logsumexp":
            return torch.logsumexp(x.reshape(-1), 0) if d is None else torch.logsumexp(x, d)
        if f == "softmax":
            return torch.softmax(x, -1 if d is None else d)
        if f == "norm":
            return torch.linalg.vector_norm(x)
        if f == "dot":
            return torch.dot(x, args[1])
        if f == "reshape":
            return x.reshape([lang.const_int(a) or -1 for a in n.args[1:]])
        raise AssertionError(f)

    def combine(n: lang.Node, args: list[torch.Tensor]) -> torch.Tensor:
        if isinstance(n, lang.Neg):
            return -args[0]
        if isinstance(n, lang.Chain):
            acc = args[0]
            for (op, _), arg in zip(n.rest, args[1:], strict=True):
                x: torch.Tensor | float = arg
                if id(acc) not in scalars:
                    x = scalars.get(id(arg), arg)
                if op == "+":
                    acc = acc + x
                elif op == "-":
                    acc = acc - x
                elif op == "*":
                    acc = acc * x
                elif op == "/":
                    acc = acc / x
                else:
                    acc = acc @ arg
            return acc
        if isinstance(n, lang.Pow):
            base = args[0]
            exponent: torch.Tensor | float = args[1]
            if id(base) not in scalars:
                exponent = scalars.get(id(args[1]), args[1])
                if forward and not isinstance(exponent, float) and not lang.names_in(n.exponent):
                    # a constant exponent that is an expression (x**-1, x**(1/3)): a Python
                    # number too, as a user writes it (a dual one adds log(base) * 0 to the
                    # tangent: NaN for a negative base)
                    exponent = float(fwAD.unpack_dual(exponent).primal)
            return torch.pow(base, exponent)
        if isinstance(n, lang.Transpose):
            return args[0].T if args[0].dim() == 2 else args[0]
        if isinstance(n, lang.Index):
            key = tuple(
                i if isinstance(i, int) else slice(i.start, i.stop, i.step) for i in n.items
            )
            return args[0][key]
        if isinstance(n, lang.Call):
            return call(n, args)
        raise AssertionError(n)

    def const_vector(values: list[float]) -> torch.Tensor:
        """k constants, one per batched term (a column in batch mode, to broadcast over the
        points)."""
        key = tuple(values)
        t = vectors.get(key)
        if t is None:
            t = torch.tensor(values, dtype=dtype, device=device)
            t = t.reshape((-1,) + (1,) * point_dims)
            t = vectors[key] = fwAD.make_dual(t, torch.zeros_like(t)) if forward else t
        return t

    def batched(template: lang.Node, nodes: list[lang.Node]) -> torch.Tensor:
        """Evaluate k structurally identical scalar trees at once, as 1-D tensors of k
        elements: the same operations, one vectorised op per node instead of k."""
        if isinstance(template, lang.Name):
            ids = tuple(n.id for n in nodes if isinstance(n, lang.Name))
            if ids not in stacks:  # the same variables often recur in several sums
                stacks[ids] = torch.stack([env[i] for i in ids])
            return stacks[ids]
        if isinstance(template, lang.Num):
            values = [float(n.value) for n in nodes if isinstance(n, lang.Num)]
            if all(x == values[0] for x in values):
                return const(values[0])
            return const_vector(values)
        if isinstance(template, lang.Const):
            return leaf(template)
        columns = zip(*[lang.children(n) for n in nodes], strict=True)
        parts = [batched(c, list(column))
                 for c, column in zip(lang.children(template), columns, strict=True)]  # fmt: skip
        return combine(template, parts)

    def ev(node: lang.Node) -> torch.Tensor:
        kids = lang.children(node)
        if not kids:
            value = leaf(node)
        elif isinstance(node, lang.Chain) and node.kind == "add" and len(node.rest) >= min_terms:
            value = sum_terms(node)
        else:
            value = combine(node, [ev(k) for k in kids])
        if trace is not None:
            trace(node, value)
        return value

    def sum_terms(node: lang.Chain) -> torch.Tensor:
        """A long sum: terms of the same shape (a sum of sin(x_j*c_j), say) are evaluated
        together by `batched`; the others one by one. Only for scalar terms."""
        groups: dict[Any, list[tuple[str, lang.Node]]] | None = None
        if plan is not None:
            groups = plan.get(id(node))
        if groups is None:
            groups = {}
            for op, term in [("+", node.first), *node.rest]:
                groups.setdefault(_signature(term, env, point_dims), []).append((op, term))
            if plan is not None:
                plan[id(node)] = groups
        acc: torch.Tensor | None = None
        for sig, members in groups.items():
            if sig is None or len(members) < min_terms:
                for op, term in members:
                    value = ev(term)
                    acc = (value if op == "+" else -value) if acc is None else (
                        acc + value if op == "+" else acc - value)  # fmt: skip
                continue
            values = batched(members[0][1], [t for _, t in members])
            if values.dim() == 0:  # terms made of named constants only (pi + pi + ...)
                values = values.expand(len(members))
            if any(op == "-" for op, _ in members):
                values = values * const_vector([1.0 if op == "+" else -1.0 for op, _ in members])
            total = values.sum(0)
            acc = total if acc is None else acc + total
        assert acc is not None
        return acc

    for name, node in program.definitions:
        env[name] = ev(node)
    outputs = [ev(node) if name is None else env[name] for name, node in program.computed()]
    # ev and sum_terms refer to each other, a cycle that only the cyclic collector frees;
    # emptying env now lets the leaves and intermediates go with the outputs, not later
    # (with --points, chunk after chunk of them piled up).
    env.clear()
    return outputs


BATCH_TERMS = 16  # a sum with at least this many like-shaped terms is evaluated in one go
# With --points each op already runs over thousands of points, but its fixed cost (Python,
# dispatch, an autograd node) still dominates small chunks: fusing even a few terms pays.
BATCH_TERMS_POINTS = 4


def _signature(node: lang.Node, env: dict[str, Any], point_dims: int = 0) -> Any:
    """The shape of a scalar tree, ignoring which variables and numbers it holds: equal
    signatures can be evaluated together. None where batching does not apply (a tensor
    variable, a tensor function, indexing). A scalar value has `point_dims` dimensions (1
    when each holds a batch of points)."""
    if isinstance(node, lang.Name):
        value = env.get(node.id)
        return "N" if value is not None and value.dim() == point_dims else None
    if isinstance(node, lang.Num):
        return "C"
    if isinstance(node, lang.Const):
        return ("K", node.id)
    if isinstance(node, (lang.Index, lang.Transpose)):
        return None
    if isinstance(node, lang.Call) and node.func not in lang.ELEMENTWISE:
        return None
    parts = []
    for child in lang.children(node):
        sig = _signature(child, env, point_dims)
        if sig is None:
            return None
        parts.append(sig)
    head: Any = type(node).__name__
    if isinstance(node, lang.Chain):
        if any(op == "@" for op, _ in node.rest):
            return None
        head = (node.kind, tuple(op for op, _ in node.rest))
    elif isinstance(node, lang.Call):
        head = node.func
    return (head, tuple(parts))


def _flat_floats(
    grads: Sequence[torch.Tensor | None], leaves: Sequence[torch.Tensor]
) -> tuple[float, ...]:
    """Gradients for every leaf, flattened into one row of floats (zeros where a leaf got
    none): one transfer to Python per row, not one per leaf."""
    parts = [
        g.detach().reshape(-1) if g is not None else torch.zeros(leaf.numel(), dtype=leaf.dtype,
                                                                 device=leaf.device)
        for g, leaf in zip(grads, leaves, strict=True)
    ]  # fmt: skip
    return tuple(torch.cat(parts).to("cpu", torch.float64).tolist())


def _floats(t: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(x) for x in t.detach().to("cpu", torch.float64).reshape(-1).tolist())


def _split(
    flat: Sequence[float], shapes: Sequence[Shape], dtype: torch.dtype, device: torch.device
) -> list[torch.Tensor]:
    out = []
    k = 0
    for shape in shapes:
        n = math.prod(shape)
        out.append(torch.tensor(list(flat[k : k + n]), dtype=dtype, device=device).reshape(shape))
        k += n
    return out


def device_of(device: str) -> torch.device:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError("--device cuda was asked for, but PyTorch sees no CUDA device")
    try:
        dev = torch.device(device)
        torch.zeros((), device=dev)
    except (RuntimeError, AssertionError) as exc:
        raise EngineError(f"unusable --device '{device}': {str(exc).splitlines()[0]}") from exc
    return dev


def evaluate(
    program: lang.Program,
    shapes: Sequence[Shape],
    point: Sequence[float],
    v: Sequence[float] | None,
    u: Sequence[float] | None,
    dtype: str = "float64",
    device: str = "cpu",
    pattern: Any = None,
) -> AutogradResult:
    tdtype = DTYPES[dtype]
    dev = device_of(device)
    leaves = [t.requires_grad_(True) for t in _split(point, shapes, tdtype, dev)]
    inputs = dict(zip(program.variables, leaves, strict=True))
    outs = run(program, inputs, leaves[0])

    # Jacobian: colored reverse (or forward) passes, batched (compressed.py)
    from . import compressed

    jac = compressed.jacobian(program, outs, leaves, pattern)

    vjp = None
    if v is not None:
        cotangents = _split(v, [tuple(o.shape) for o in outs], tdtype, dev)
        if all(o.dim() == 0 for o in outs):
            y = torch.stack(outs)  # the tutorial's y, and its y.backward(v)
            if y.requires_grad:
                y.backward(torch.stack(cotangents))
        else:
            pairs = [(o, c) for o, c in zip(outs, cotangents, strict=True) if o.requires_grad]
            if pairs:
                torch.autograd.backward([o for o, _ in pairs], [c for _, c in pairs])
        vjp = _flat_floats([leaf.grad for leaf in leaves], leaves)

    jvp = None
    if u is not None:
        tangents_in = _split(u, shapes, tdtype, dev)
        with fwAD.dual_level():
            duals = {
                name: fwAD.make_dual(leaf.detach(), t)
                for name, leaf, t in zip(program.variables, leaves, tangents_in, strict=True)
            }
            douts = run(program, duals, leaves[0], forward=True)
            values: list[float] = []
            for d in douts:
                tangent = fwAD.unpack_dual(d).tangent
                values.extend(_floats(tangent) if tangent is not None else (0.0,) * d.numel())
        jvp = tuple(values)

    return AutogradResult(
        jacobian=jac.jacobian.view(),
        sparse_jacobian=jac.jacobian,
        passes=jac.passes,
        mode=jac.mode,
        colors=jac.colors,
        vjp=vjp,
        jvp=jvp,
        values=tuple(x for o in outs for x in _floats(o)),
    )
