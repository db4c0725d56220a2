"""Tree -> PyTorch: what autograd actually computes for the functions as the user wrote them.

Each variable is a leaf tensor with requires_grad=True. The outputs are evaluated from the
parse tree (not from SymPy's simplified form), stacked into `y`, and `y.backward(v)` fills the
leaves' `.grad` with v^T J, exactly as in the tutorial. The Jacobian is taken row by row (one
reverse pass per output, as jax.jacrev does with basis vectors) and the JVP with forward-mode AD
(dual numbers), so all three quantities come from different autograd paths.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD

from . import lang
from .model import AutogradResult, EngineError

_UNARY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sin": torch.sin, "cos": torch.cos, "tan": torch.tan, "asin": torch.asin,
    "acos": torch.acos, "atan": torch.atan, "sinh": torch.sinh, "cosh": torch.cosh,
    "tanh": torch.tanh, "exp": torch.exp, "log": torch.log, "sqrt": torch.sqrt,
    "abs": torch.abs, "sigmoid": torch.sigmoid, "relu": torch.relu,
    "softplus": torch.nn.functional.softplus,
}  # fmt: skip

DTYPES = {"float64": torch.float64, "float32": torch.float32}


def run(
    program: lang.Program,
    inputs: Sequence[torch.Tensor],
) -> list[torch.Tensor]:
    """Evaluate the program's outputs from `inputs` (one tensor per variable, in order)."""
    ref = inputs[0] if inputs else torch.zeros((), dtype=torch.float64)
    env: dict[str, Any] = dict(zip(program.variables, inputs, strict=True))

    def const(value: float) -> torch.Tensor:
        return torch.tensor(value, dtype=ref.dtype, device=ref.device)

    def leaf(n: lang.Node) -> Any:
        if isinstance(n, lang.Num):
            return const(float(n.value))
        if isinstance(n, lang.Const):
            return const(math.pi if n.id == "pi" else math.e)
        assert isinstance(n, lang.Name)
        return env[n.id]

    def combine(n: lang.Node, args: list[torch.Tensor]) -> torch.Tensor:
        if isinstance(n, lang.Neg):
            return -args[0]
        if isinstance(n, lang.Chain):
            acc = args[0]
            for (op, _), x in zip(n.rest, args[1:], strict=True):
                if op == "+":
                    acc = acc + x
                elif op == "-":
                    acc = acc - x
                elif op == "*":
                    acc = acc * x
                else:
                    acc = acc / x
            return acc
        if isinstance(n, lang.Pow):
            return torch.pow(args[0], args[1])
        if isinstance(n, lang.Call):
            if n.func == "atan2":
                return torch.atan2(args[0], args[1])
            return _UNARY[n.func](args[0])
        raise AssertionError(n)

    for name, node in program.definitions:
        env[name] = lang.fold(node, leaf, combine)
    outs = []
    for node in program.output_exprs:
        out = lang.fold(node, leaf, combine)
        assert isinstance(out, torch.Tensor)
        outs.append(out)
    return outs


def _floats(t: torch.Tensor) -> tuple[float, ...]:
    return tuple(float(x) for x in t.detach().to("cpu", torch.float64).reshape(-1).tolist())


def evaluate(
    program: lang.Program,
    point: Sequence[float],
    v: Sequence[float] | None,
    u: Sequence[float] | None,
    dtype: str = "float64",
    device: str = "cpu",
) -> AutogradResult:
    tdtype = DTYPES[dtype]
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise EngineError("--device cuda was asked for, but PyTorch sees no CUDA device")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise EngineError(f"unknown --device '{device}'") from exc

    leaves = [torch.tensor(x, dtype=tdtype, device=dev, requires_grad=True) for x in point]
    outs = run(program, leaves)
    y = torch.stack(outs)

    # Jacobian, one reverse pass per output row (only through that output's own graph).
    rows = []
    for out in outs:
        if out.requires_grad:
            grads = torch.autograd.grad(out, leaves, retain_graph=True, allow_unused=True)
            rows.append(tuple(float(g) if g is not None else 0.0 for g in grads))
        else:
            rows.append(tuple(0.0 for _ in leaves))

    vjp = None
    if v is not None:
        if y.requires_grad:
            y.backward(torch.tensor(list(v), dtype=tdtype, device=dev))
        vjp = tuple(float(leaf.grad) if leaf.grad is not None else 0.0 for leaf in leaves)

    jvp = None
    if u is not None:
        with fwAD.dual_level():
            duals = [
                fwAD.make_dual(x.detach(), torch.tensor(t, dtype=tdtype, device=dev))
                for x, t in zip(leaves, u, strict=True)
            ]
            douts = run(program, duals)
            tangents = []
            for d in douts:
                tangent = fwAD.unpack_dual(d).tangent
                tangents.append(0.0 if tangent is None else float(tangent))
        jvp = tuple(tangents)

    return AutogradResult(jacobian=tuple(rows), vjp=vjp, jvp=jvp, values=_floats(y))
