"""Second order, the torch side: the Hessian, H u and each output's Hessian, every way people
compute them, from the parse tree (autograd.run), independently of the reference.

The variables are packed into one flat leaf x (their elements in order, as the reference's
columns), and the program runs on views of it, so each route differentiates a function of
one tensor, as the documentation's examples do:
- double_backward: `g = torch.autograd.grad(y, x, create_graph=True)` and a second
  `torch.autograd.grad` of each g[j] (H) or of g . u (H u): the first backward must itself be
  recorded (create_graph=True) to be differentiated;
- functional: `torch.autograd.functional.hessian` / `hvp` (and `vhp`, u^T H, which equals
  H u only where H is symmetric);
- func: `torch.func.hessian` (jacfwd of jacrev) and forward-over-reverse
  `torch.func.jvp(torch.func.grad(f), (x,), (u,))`.
A route that cannot run for a program (an op without a rule in torch.func, say) is recorded
with its error, not raised. Results cross back as plain floats (model.Route).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from . import autograd, lang
from .model import Problem, Route, TorchSecond


def _floats(t: torch.Tensor) -> list[float]:
    return [float(x) for x in t.detach().to("cpu", torch.float64).reshape(-1).tolist()]


def _matrix(t: torch.Tensor, n: int) -> tuple[tuple[float, ...], ...]:
    flat = _floats(t)
    return tuple(tuple(flat[j * n : (j + 1) * n]) for j in range(n))


def _error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}".rstrip(": ")


def _run_route(name: str, call: str, work: Callable[[], Any]) -> Route:
    try:
        return Route(name, call, work())
    except Exception as exc:  # reported per route: the others still run
        return Route(name, call, None, _error(exc))


BATCHED = " (every j in one call: grad_outputs=eye(n), is_grads_batched=True)"
FORK_NODES = 1_000  # tree nodes from which the torch.func routes run in a child of their own


def start(program: lang.Program, problem: Problem) -> Any:
    """For a big problem on two or more cores, the torch.func routes (forward over reverse
    costs a Python decomposition per backward op: 1.6 s of Broyden n=500's H u, against
    0.1 s for double backward) start in a forked child, beside the first-order work and the
    other routes; `evaluate(..., pending=)` collects them. None: all in this process."""
    from . import sidecar

    if program.size < FORK_NODES or problem.device != "cpu" or not sidecar._two_cores():
        return None
    return sidecar.Pending(lambda: evaluate(program, problem, only="func"))


def evaluate(
    program: lang.Program, problem: Problem, only: str | None = None, pending: Any = None
) -> TorchSecond:
    """Every route for each quantity the problem asks for, at its point (`only`: that
    route alone; `pending`: the torch.func routes are running there, see `start`)."""
    assert problem.point is not None

    def _route(name: str, call: str, work: Callable[[], Any]) -> Route:
        if (only is not None and name != only) or (pending is not None and name == "func"):
            return Route(name, call, None, "not run here")  # replaced by the merge below
        return _run_route(name, call, work)

    dtype = autograd.DTYPES[problem.dtype]
    dev = autograd.device_of(problem.device)
    n = len(problem.point)
    x0 = torch.tensor(problem.point, dtype=dtype, device=dev)
    sizes = [math.prod(s) for s in problem.shapes]

    def outputs(x: torch.Tensor) -> list[torch.Tensor]:
        """The program's outputs from the flat x: each variable a view of it."""
        if not any(problem.shapes):  # one op for all the views (functorch pays per op)
            return autograd.run(program, dict(zip(problem.variables, x.unbind(0), strict=True)), x)
        inputs: dict[str, torch.Tensor] = {}
        k = 0
        for name, shape, size in zip(problem.variables, problem.shapes, sizes, strict=True):
            inputs[name] = x[k] if not shape else x[k : k + size].reshape(shape)
            k += size
        return autograd.run(program, inputs, x)

    def flat_outputs(x: torch.Tensor) -> torch.Tensor:
        outs = outputs(x)
        return torch.cat([(o + 0 * x.sum()).reshape(-1) for o in outs])

    w = problem.v

    def scalar(x: torch.Tensor) -> torch.Tensor:
        """f itself for one scalar output with v = 1, else v^T f: what y.backward(v)
        differentiates."""
        outs = outputs(x)
        if len(outs) == 1 and outs[0].dim() == 0 and (w is None or w == (1.0,)):
            y = outs[0]
        else:
            assert w is not None
            wt = torch.tensor(w, dtype=dtype, device=dev)
            y = (wt * torch.cat([o.reshape(-1) for o in outs])).sum()
        return y + 0 * x.sum()  # a constant output still depends on x (its H is 0)

    def leaf() -> torch.Tensor:
        return x0.clone().requires_grad_(True)

    def zeros() -> torch.Tensor:
        return torch.zeros(n, dtype=dtype, device=dev)

    def double_backward_rows(y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        (g,) = torch.autograd.grad(y, x, create_graph=True)
        if g.requires_grad and n > 8:
            # all n second passes at once (grad_outputs = the identity, vmapped by autograd);
            # the same derivatives as the loop below, which runs where vmap cannot
            try:
                eye = torch.eye(n, dtype=g.dtype, device=g.device)
                (h,) = torch.autograd.grad(g, x, grad_outputs=eye, retain_graph=True,
                                           is_grads_batched=True, allow_unused=True)  # fmt: skip
                if h is not None:
                    return h
            except RuntimeError:
                pass
        rows = []
        for j in range(n):
            if not g.requires_grad:
                rows.append(zeros())
                continue
            (h,) = torch.autograd.grad(g[j], x, retain_graph=True, allow_unused=True)
            rows.append(h if h is not None else zeros())
        return torch.stack(rows)

    result: dict[str, tuple[Route, ...]] = {}
    if problem.hessian:

        def db_hessian() -> Any:
            x = leaf()
            return _matrix(double_backward_rows(scalar(x), x), n)

        result["hessian"] = (
            _route("double_backward",
                   "grad(grad(y, x, create_graph=True)[0][j], x) per j" + BATCHED * (n > 8),
                   db_hessian),
            _route("functional", "torch.autograd.functional.hessian(f, x)",
                   lambda: _matrix(torch.autograd.functional.hessian(scalar, x0), n)),
            _route("func", "torch.func.hessian(f)(x)  (jacfwd of jacrev)",
                   lambda: _matrix(torch.func.hessian(scalar)(x0), n)),
        )  # fmt: skip
    if problem.hvp is not None:
        u = torch.tensor(problem.hvp, dtype=dtype, device=dev)

        def db_hvp() -> Any:
            x = leaf()
            (g,) = torch.autograd.grad(scalar(x), x, create_graph=True)
            if not g.requires_grad:
                return tuple(_floats(zeros()))
            (h,) = torch.autograd.grad(g @ u, x, allow_unused=True)
            return tuple(_floats(h if h is not None else zeros()))

        result["hvp"] = (
            _route("double_backward", "grad(grad(y, x, create_graph=True)[0] @ u, x)", db_hvp),
            _route("functional", "torch.autograd.functional.hvp(f, x, u)[1]",
                   lambda: tuple(_floats(torch.autograd.functional.hvp(scalar, x0, u)[1]))),
            _route("functional_vhp", "torch.autograd.functional.vhp(f, x, u)[1]  (u^T H)",
                   lambda: tuple(_floats(torch.autograd.functional.vhp(scalar, x0, u)[1]))),
            _route("func", "torch.func.jvp(torch.func.grad(f), (x,), (u,))[1]",
                   lambda: tuple(_floats(torch.func.jvp(torch.func.grad(scalar), (x0,),
                                                        (u,))[1]))),
        )  # fmt: skip
    if problem.hessians:
        m = sum(math.prod(s) for s in problem.output_shapes)

        def db_each() -> Any:
            x = leaf()
            ys = flat_outputs(x)
            return tuple(_matrix(double_backward_rows(ys[i], x), n) for i in range(m))

        def functional_each() -> Any:
            # vectorize=True (vmap over the rows) where the loop would take m * n passes;
            # the plain call where vmap cannot run the program
            for vectorize in (True, False) if m * n > 64 else (False,):
                try:
                    return tuple(
                        _matrix(torch.autograd.functional.hessian(
                            lambda x, i=i: flat_outputs(x)[i], x0,  # type: ignore[misc]
                            vectorize=vectorize), n)
                        for i in range(m)
                    )  # fmt: skip
                except RuntimeError:
                    if not vectorize:
                        raise
            raise AssertionError("unreachable")

        def func_each() -> Any:
            h = torch.func.hessian(flat_outputs)(x0)  # m x n x n
            return tuple(_matrix(h[i], n) for i in range(m))

        result["hessians"] = (
            _route("double_backward",
                   "grad(grad(y_i, x, create_graph=True)[0][j], x)" + BATCHED * (n > 8), db_each),
            _route("functional", "torch.autograd.functional.hessian(f_i, x) per output "
                   "(vectorize=True for big ones)",
                   functional_each),
            _route("func", "torch.func.hessian(f)(x)  (all outputs at once)", func_each),
        )  # fmt: skip
    if pending is not None:
        failure = "the process computing the torch.func routes returned none"
        try:
            theirs = pending.result()
        except Exception as exc:  # the child failed: its routes did not run
            theirs = None
            failure = _error(exc)
        merged: dict[str, tuple[Route, ...]] = {}
        for quantity, routes in result.items():
            other = {r.name: r for r in getattr(theirs, quantity, ())} if theirs else {}
            merged[quantity] = tuple(
                (other.get(r.name) or Route(r.name, r.call, None, failure))
                if r.name == "func" else r
                for r in routes
            )  # fmt: skip
        result = merged
    return TorchSecond(**result)


def hvp_batch(program: lang.Program, problem: Problem, X: Any, V: Any) -> dict[str, Any]:
    """H u at every point of a chunk (--points --hvp; points x variables, V points x
    outputs), by each route: the program runs on batched leaves (one 1-D tensor per scalar
    variable, as batch.torch_side), and the points are independent, so the Hessian of the
    sum over points is block diagonal and one product gives every point's H u. Each route
    gives a points x variables array, or its error (text)."""
    import numpy as np

    assert problem.hvp is not None
    dtype = autograd.DTYPES[problem.dtype]
    dev = autograd.device_of(problem.device)
    B, n = X.shape
    cols = [torch.tensor(np.ascontiguousarray(X[:, j]), dtype=dtype, device=dev)
            for j in range(n)]  # fmt: skip
    weights = torch.tensor(np.asarray(V, dtype=np.float64), dtype=dtype, device=dev)
    tangents = tuple(torch.full((B,), float(uj), dtype=dtype, device=dev) for uj in problem.hvp)

    def total(*xs: torch.Tensor) -> torch.Tensor:
        outs = autograd.run(program, dict(zip(problem.variables, xs, strict=True)), xs[0],
                            batch=True)  # fmt: skip
        y = torch.stack([o.expand(B) for o in outs], dim=1)  # points x outputs
        return (weights * y).sum() + 0 * sum(x.sum() for x in xs)

    def array(parts: Any) -> Any:
        return np.stack([p.detach().to("cpu", torch.float64).numpy() for p in parts], axis=1)

    def double_backward() -> Any:
        xs = [c.clone().requires_grad_(True) for c in cols]
        grads = torch.autograd.grad(total(*xs), xs, create_graph=True)
        dot = sum(g * t for g, t in zip(grads, tangents, strict=True))
        if not isinstance(dot, torch.Tensor) or not dot.requires_grad:
            return np.zeros((B, n))
        hv = torch.autograd.grad(dot.sum(), xs, allow_unused=True)
        return array([h if h is not None else torch.zeros(B, dtype=dtype) for h in hv])

    routes: dict[str, Callable[[], Any]] = {
        "double_backward": double_backward,
        "functional": lambda: array(torch.autograd.functional.hvp(total, tuple(cols),
                                                                  tangents)[1]),
        "functional_vhp": lambda: array(torch.autograd.functional.vhp(total, tuple(cols),
                                                                      tangents)[1]),
        "func": lambda: array(torch.func.jvp(torch.func.grad(total, argnums=tuple(range(n))),
                                             tuple(cols), tangents)[1]),
    }  # fmt: skip
    out: dict[str, Any] = {}
    for name, work in routes.items():
        try:
            out[name] = work()
        except Exception as exc:  # reported per route, on every line of the chunk
            out[name] = _error(exc)
    return out
