"""--emit torch|jax|numpy: a standalone Python script that computes the report's numbers with
only that library, generated from the parse tree (never from the user's text).

- torch: the program as a function of the leaves, J one backward pass per output element,
  `y.backward(v)` (scalar outputs stacked into y, as in the tutorial) and each leaf's `.grad`,
  J u by `torch.func.jvp`: what the report's torch side does.
- jax: the same program in `jax.numpy` (float64 enabled), J by `jax.jacrev`, v^T J by
  `jax.vjp`, J u by `jax.jvp`.
- numpy: J evaluated from SymPy's symbolic entries (the report's reference side), printed by
  SymPy's NumPyPrinter; v^T J and J u as products with it.

Each script prints `J = [...]` (rows over the outputs' elements, columns over the variables'),
`vjp = [...]` and `jvp = [...]` (flat, as in --json), and per variable or output its part.
Names become Python identifiers safely: a keyword, a builtin or a name the script uses itself
gets a trailing underscore (`lambda` -> `lambda_`); the printed labels keep the user's names.
"""

from __future__ import annotations

import builtins
import keyword
import math
from collections.abc import Sequence

from . import lang
from .model import InputError, Problem
from .shapes import Shape, nest

TARGETS = ("torch", "jax", "numpy")
# names the scripts define or import themselves
_OWN = frozenset({
    "torch", "jax", "jnp", "numpy", "math", "program", "DT", "leaves", "outs", "rows", "y",
    "grads", "primals", "tangents", "cotangents", "pullback", "jac", "J", "v", "u", "flat",
    "out", "k", "g", "i", "T_", "result", "values", "name", "value", "pairs", "o", "c",
})  # fmt: skip


# what the statements inside program() must not shadow (they live in that function only)
_INNER = frozenset({"torch", "jax", "jnp", "numpy", "math", "functools", "DT", "T_", "program",
                    "o"})  # fmt: skip


def identifiers(names: Sequence[str], statements: Sequence[str] = ()) -> dict[str, str]:
    """User name -> a Python identifier that is not a keyword, soft keyword or builtin and
    differs from every other one. `names` (the variables, module-level in the scripts) also
    avoid every name the script uses itself; `statements` (named statements and outputs,
    local to program()) only the names program() uses."""
    base = set(dir(builtins)) | set(keyword.kwlist) | set(keyword.softkwlist)
    out: dict[str, str] = {}
    used: set[str] = set()
    for group, reserved in ((names, _OWN), (statements, _INNER)):
        for name in dict.fromkeys(group):  # each once, in order
            if name in out:
                continue
            ident = name if name.isidentifier() and name.isascii() else "v_" + "".join(
                c if c.isalnum() and c.isascii() else "_" for c in name)  # fmt: skip
            if ident.startswith("_"):
                ident = "v" + ident
            while ident in used or ident in base or ident in reserved:
                ident += "_"
            used.add(ident)
            out[name] = ident
    return out


def _py_float(x: float) -> str:
    if math.isnan(x):
        return "float('nan')"
    if math.isinf(x):
        return "float('inf')" if x > 0 else "-float('inf')"
    return repr(float(x))


def _nested_text(flat: Sequence[float], shape: Shape) -> str:
    obj = nest([_py_float(x) for x in flat], shape)

    def text(o: object) -> str:
        return "[" + ", ".join(text(x) for x in o) + "]" if isinstance(o, list) else str(o)

    return text(obj)


def _split(flat: Sequence[float], shapes: Sequence[Shape]) -> list[Sequence[float]]:
    parts, k = [], 0
    for shape in shapes:
        n = math.prod(shape)
        parts.append(flat[k : k + n])
        k += n
    return parts


def _arrays(fn: str, flat: Sequence[float], shapes: Sequence[Shape]) -> str:
    """`fn(nested values, dtype=DT)` per shape, comma-separated."""
    return ", ".join(f"{fn}({_nested_text(part, shape)}, dtype=DT)"
                     for part, shape in zip(_split(flat, shapes), shapes, strict=True))  # fmt: skip


# ---- the program, printed per target ----------------------------------------------------

_PREC_ADD, _PREC_MUL, _PREC_NEG, _PREC_POW, _PREC_ATOM = 1, 2, 3, 4, 5


class _Printer:
    """A tree -> an expression of one target library. Numbers are float literals; a
    sub-expression without variables is computed as the library's 0-d arrays (so 1/0 is
    inf, as in torch, not Python's ZeroDivisionError)."""

    def __init__(self, target: str, idents: dict[str, str]) -> None:
        self.t = target
        self.idents = idents
        lib = "torch" if target == "torch" else "jnp"
        self.lib = lib
        elementwise = {n: f"{lib}.{n}" for n in lang.ELEMENTWISE}
        if target == "torch":
            elementwise["softplus"] = "torch.nn.functional.softplus"
        else:
            elementwise.update(
                asin="jnp.arcsin", acos="jnp.arccos", atan="jnp.arctan", atan2="jnp.arctan2",
                sigmoid="jax.nn.sigmoid", relu="jax.nn.relu", softplus="jax.nn.softplus",
            )  # fmt: skip
        self.elementwise = elementwise

    def const(self, text: str) -> str:
        if self.t == "torch":
            return f"torch.tensor({text}, dtype=DT)"
        return f"jnp.asarray({text}, dtype=DT)"

    def expr(self, node: lang.Node, constant: bool | None = None) -> str:
        if constant is None:
            constant = not lang.names_in(node)
        return self._expr(node, constant)[0]

    def _wrap(self, node: lang.Node, need: int, constant: bool) -> str:
        text, prec = self._expr(node, constant)
        return f"({text})" if prec < need else text

    def _expr(self, node: lang.Node, constant: bool) -> tuple[str, int]:
        if not constant and lang.children(node):
            constant = not lang.names_in(node)  # 1/(2 - 2) inside x + 1/(2 - 2)
        if isinstance(node, lang.Num):
            text = _py_float(float(node.value))
            return (self.const(text) if constant else text), _PREC_ATOM
        if isinstance(node, lang.Const):
            return f"{self.lib}.{'pi' if node.id == 'pi' else 'e'}", _PREC_ATOM
        if isinstance(node, lang.Name):
            return self.idents[node.id], _PREC_ATOM
        if isinstance(node, lang.Neg):
            return "-" + self._wrap(node.operand, _PREC_POW, constant), _PREC_NEG
        if isinstance(node, lang.Pow):
            base = self._wrap(node.base, _PREC_ATOM, constant)
            return f"{base}**{self._wrap(node.exponent, _PREC_NEG, constant)}", _PREC_POW
        if isinstance(node, lang.Chain):
            level = _PREC_ADD if node.kind == "add" else _PREC_MUL
            parts = [self._wrap(node.first, level, constant)]
            for op, child in node.rest:
                parts.append(f" {op} {self._wrap(child, level + 1, constant)}")
            return "".join(parts), level
        if isinstance(node, lang.Transpose):
            return f"T_({self.expr(node.base, constant)})", _PREC_ATOM
        if isinstance(node, lang.Index):
            items = ", ".join(_item(i) for i in node.items)
            return f"{self._wrap(node.base, _PREC_ATOM, constant)}[{items}]", _PREC_ATOM
        if isinstance(node, lang.Call):
            return self._call(node, constant), _PREC_ATOM
        raise AssertionError(node)

    def _call(self, n: lang.Call, constant: bool) -> str:
        f = n.func
        args = [self.expr(a, constant) for a in n.args]
        if f in lang.ELEMENTWISE:
            return f"{self.elementwise[f]}({', '.join(args)})"
        x = args[0]
        d = lang.const_int(n.args[1]) if len(n.args) > 1 and f not in ("reshape", "dot") else None
        if self.t == "torch":
            if f in ("sum", "mean", "prod"):
                return f"torch.{f}({x})" if d is None else f"torch.{f}({x}, {d})"
            if f in ("max", "min"):
                return f"torch.{f}({x})" if d is None else f"torch.a{f}({x}, {d})"
            if f == "logsumexp":
                return f"torch.logsumexp({x}.reshape(-1), 0)" if d is None else (
                    f"torch.logsumexp({x}, {d})")  # fmt: skip
            if f == "softmax":
                return f"torch.softmax({x}, {-1 if d is None else d})"
            if f == "norm":
                return f"torch.linalg.vector_norm({x})"
            if f == "dot":
                return f"torch.dot({x}, {args[1]})"
            if f == "reshape":
                return f"torch.reshape({x}, {_sizes(n)})"
        else:
            axis = "" if d is None else f", axis={d}"
            if f in ("sum", "mean", "prod", "max", "min"):
                return f"jnp.{f}({x}{axis})"
            if f == "logsumexp":
                return f"jax.nn.logsumexp({x}{axis})"
            if f == "softmax":
                return f"jax.nn.softmax({x}, axis={-1 if d is None else d})"
            if f == "norm":
                return f"jnp.linalg.norm(jnp.ravel({x}))"
            if f == "dot":
                return f"jnp.dot({x}, {args[1]})"
            if f == "reshape":
                return f"jnp.reshape({x}, {_sizes(n)})"
        raise AssertionError(f)


def _item(item: int | lang.Slice) -> str:
    if isinstance(item, int):
        return str(item)
    parts = ["" if p is None else str(p) for p in (item.start, item.stop)]
    if item.step is not None:
        parts.append(str(item.step))
    return ":".join(parts)


def _sizes(n: lang.Call) -> str:
    sizes = [lang.const_int(a) for a in n.args[1:]]
    return "(" + ", ".join(str(s if s is not None else -1) for s in sizes) + ",)"


def _function(program: lang.Program, printer: _Printer, idents: dict[str, str]) -> list[str]:
    """def program(<variables>): the statements in order, returning the outputs."""
    params = ", ".join(idents[v] for v in program.variables)
    lines = [f"def program({params}):"]
    for name, node in program.definitions:
        lines.append(f"    {idents[name]} = {printer.expr(node)}")
    results = []
    for (computed, node), out in zip(program.computed(), program.outputs, strict=True):
        if computed is None:
            lines.append(f"    {idents[out]} = {printer.expr(node)}")
        results.append(idents[out])
    asarray = "torch.as_tensor" if printer.t == "torch" else "jnp.asarray"
    lines.append(f"    return tuple({asarray}(o, dtype=DT) for o in ({', '.join(results)},))")
    return lines


def _header(program: lang.Program, problem: Problem, target: str, needs: str) -> list[str]:
    lines = [
        "#!/usr/bin/env python3",
        f"# Generated by jvp_cli --emit {target}: {needs}.",
        "# The program, as parsed:",
    ]
    for name, text in problem.intermediates:
        lines.append(f"#   {name} = {text}")
    for name, text in zip(problem.outputs, problem.functions, strict=True):
        lines.append(f"#   {name} = {text}")
    assert problem.point is not None
    for name, shape, vals in zip(problem.variables, problem.shapes,
                                 _split(problem.point, problem.shapes), strict=True):  # fmt: skip
        lines.append(f"# at {name} = {_nested_text(vals, shape)}")
    return lines


# ---- the three targets --------------------------------------------------------------------


def _torch(program: lang.Program, problem: Problem) -> str:
    idents = identifiers(program.variables, [*(n for n, _ in program.definitions),
                                             *program.outputs])  # fmt: skip
    printer = _Printer("torch", idents)
    assert problem.point is not None
    lines = _header(program, problem, "torch", "needs only PyTorch")
    lines += ["import torch", "", f"DT = torch.{problem.dtype}", "", "",
              "def T_(a):", "    return a.T if a.dim() == 2 else a", "", ""]  # fmt: skip
    lines += _function(program, printer, idents)
    lines += ["", "", "# the leaves, at the point"]
    for name, shape, vals in zip(program.variables, problem.shapes,
                                 _split(problem.point, problem.shapes), strict=True):  # fmt: skip
        lines.append(f"{idents[name]} = torch.tensor({_nested_text(vals, shape)}, dtype=DT, "
                     "requires_grad=True)")  # fmt: skip
    leaves = ", ".join(idents[v] for v in program.variables)
    lines += [
        f"leaves = [{leaves}]",
        "outs = program(*leaves)",
        "",
        "# J: one backward pass per output element (torch.autograd.grad of that element)",
        "rows = []",
        "for out in outs:",
        "    flat = out.reshape(-1)",
        "    for k in range(flat.numel()):",
        "        grads = (torch.autograd.grad(flat[k], leaves, retain_graph=True,",
        "                                     allow_unused=True)",
        "                 if out.requires_grad else [None] * len(leaves))",
        "        rows.append(torch.cat([(torch.zeros_like(x) if g is None else g).reshape(-1)",
        "                               for g, x in zip(grads, leaves)]).tolist())",
        "print('J =', rows)",
    ]
    names = [repr(v) for v in program.variables]
    if problem.v is not None:
        cots = _split(problem.v, problem.output_shapes)
        values = ", ".join(f"torch.tensor({_nested_text(c, s)}, dtype=DT)"
                           for c, s in zip(cots, problem.output_shapes, strict=True))  # fmt: skip
        lines += ["", f"cotangents = [{values}]"]
        if all(s == () for s in problem.output_shapes):
            lines += [
                "# v^T J: y.backward(v) on the outputs stacked into y, then each leaf's .grad",
                "y = torch.stack(outs)",
                "if y.requires_grad:",
                "    y.backward(torch.stack(cotangents))",
            ]
        else:
            lines += [
                "# v^T J: backward from every output with its cotangent, then each .grad",
                "pairs = [(o, c) for o, c in zip(outs, cotangents) if o.requires_grad]",
                "if pairs:",
                "    torch.autograd.backward([o for o, _ in pairs], [c for _, c in pairs])",
            ]
        lines += [
            "grads = [torch.zeros_like(x) if x.grad is None else x.grad for x in leaves]",
            f"for name, g in zip([{', '.join(names)}], grads):",
            "    print(f'{name}.grad =', g.tolist())",
            "print('vjp =', torch.cat([g.reshape(-1) for g in grads]).tolist())",
        ]
    if problem.u is not None:
        tans = _split(problem.u, problem.shapes)
        values = ", ".join(f"torch.tensor({_nested_text(t, s)}, dtype=DT)"
                           for t, s in zip(tans, problem.shapes, strict=True))  # fmt: skip
        outs = ", ".join(repr(o) for o in program.outputs)
        lines += [
            "",
            "# J u: forward mode, torch.func.jvp",
            f"tangents = ({values},)",
            "_, result = torch.func.jvp(program, tuple(x.detach() for x in leaves), tangents)",
            f"for name, value in zip([{outs}], result):",
            "    print(f'J u for {name} =', value.tolist())",
            "print('jvp =', torch.cat([r.reshape(-1) for r in result]).tolist())",
        ]
    return "\n".join(lines) + "\n"


def _jax(program: lang.Program, problem: Problem) -> str:
    idents = identifiers(program.variables, [*(n for n, _ in program.definitions),
                                             *program.outputs])  # fmt: skip
    printer = _Printer("jax", idents)
    assert problem.point is not None
    lines = _header(program, problem, "jax", "needs only JAX")
    lines += ["import jax", "", 'jax.config.update("jax_enable_x64", True)',
              "import jax.numpy as jnp  # noqa: E402", "", f"DT = jnp.{problem.dtype}", "", "",
              "def T_(a):", "    return a.T if a.ndim == 2 else a", "", ""]  # fmt: skip
    lines += _function(program, printer, idents)
    lines += ["", "", "# the primals, at the point"]
    values = _arrays("jnp.asarray", problem.point, problem.shapes)
    n = len(program.variables)
    lines += [
        f"primals = ({values},)",
        "outs = program(*primals)",
        "",
        "# J: jax.jacrev (one VJP per output element); row k of output i, variables in order",
        f"jac = jax.jacrev(program, argnums=tuple(range({n})))(*primals)",
        "rows = []",
        "for i, out in enumerate(outs):",
        "    for k in range(out.size):",
        "        rows.append([float(e) for j, x in enumerate(primals)",
        "                     for e in jnp.reshape(jac[i][j], (out.size, x.size))[k]])",
        "print('J =', rows)",
    ]
    names = [repr(v) for v in program.variables]
    if problem.v is not None:
        cots = _arrays("jnp.asarray", problem.v, problem.output_shapes)
        lines += [
            "",
            "# v^T J: jax.vjp, the pullback applied to v",
            f"cotangents = ({cots},)",
            "_, pullback = jax.vjp(program, *primals)",
            "grads = pullback(cotangents)",
            f"for name, g in zip([{', '.join(names)}], grads):",
            "    print(f'{name}.grad =', g.tolist())",
            "print('vjp =', [float(e) for g in grads for e in jnp.ravel(g)])",
        ]
    if problem.u is not None:
        tans = _arrays("jnp.asarray", problem.u, problem.shapes)
        outs = ", ".join(repr(o) for o in program.outputs)
        lines += [
            "",
            "# J u: jax.jvp",
            f"tangents = ({tans},)",
            "_, result = jax.jvp(program, primals, tangents)",
            f"for name, value in zip([{outs}], result):",
            "    print(f'J u for {name} =', value.tolist())",
            "print('jvp =', [float(e) for r in result for e in jnp.ravel(r)])",
        ]
    return "\n".join(lines) + "\n"


def _numpy(program: lang.Program, problem: Problem) -> str:
    import numpy as np
    import sympy as sp
    from sympy.printing.numpy import NumPyPrinter

    from . import symbolic

    assert problem.point is not None
    idents = identifiers(list(program.variables))
    built = symbolic.build(program, problem.shapes, "sympy")
    # each element symbol printed as the script's own access to it: x1, or x[0, 1]
    rename = {}
    k = 0
    for name, shape in zip(program.variables, problem.shapes, strict=True):
        for idx in np.ndindex(*shape) if shape else [()]:
            text = idents[name] + (f"[{', '.join(map(str, idx))}]" if idx else "")
            rename[built.symbols[k]] = sp.Symbol(text, real=True)
            k += 1
    rows = symbolic.jacobian(built.exprs, built.symbols)
    printer = NumPyPrinter({"fully_qualified_modules": True, "allow_unknown_functions": False})
    lines = _header(program, problem, "numpy", "needs only NumPy; J's entries are SymPy's "
                    "symbolic derivatives, printed by SymPy's NumPyPrinter")  # fmt: skip
    imports = len(lines)  # the modules SymPy's printer asks for go here (numpy, functools)
    lines += ["", "# the variables, at the point"]
    for name, shape, vals in zip(program.variables, problem.shapes,
                                 _split(problem.point, problem.shapes), strict=True):  # fmt: skip
        fn = "numpy.float64" if not shape else "numpy.array"
        lines.append(f"{idents[name]} = {fn}({_nested_text(vals, shape)})")
    m, n = len(built.rows), len(built.cols)
    lines += [
        "",
        f"# J: {m} x {n}, rows over the outputs' elements ({', '.join(built.rows[:6])}"
        f"{', ...' if m > 6 else ''}), columns over the variables' "
        f"({', '.join(built.cols[:6])}{', ...' if n > 6 else ''})",
        f"J = numpy.zeros(({m}, {n}))",
        "with numpy.errstate(all='ignore'):",
    ]
    body = 0
    for i, row in enumerate(rows):
        for j, entry in sorted(row.items()):
            code = printer.doprint(entry.xreplace(rename))
            lines.append(f"    J[{i}, {j}] = {code}")
            body += 1
    if not body:
        lines.append("    pass")
    lines.append("print('J =', J.tolist())")
    modules = {"numpy"} | {m.split(".")[0] for m in printer.module_imports}
    lines[imports:imports] = [f"import {m}" for m in sorted(modules)]
    if problem.v is not None:
        lines += [
            "",
            "# v^T J: the v-weighted sum of J's rows",
            f"v = numpy.array([{', '.join(_py_float(x) for x in problem.v)}])",
            "vjp = v @ J",
        ]
        start = 0
        for name, shape in zip(program.variables, problem.shapes, strict=True):
            size = math.prod(shape)
            lines.append(f"print({(name + '.grad =')!r}, vjp[{start}:{start + size}]"
                         f".reshape({tuple(shape)!r}).tolist())")  # fmt: skip
            start += size
        lines.append("print('vjp =', vjp.tolist())")
    if problem.u is not None:
        lines += [
            "",
            "# J u: the u-weighted sum of J's columns",
            f"u = numpy.array([{', '.join(_py_float(x) for x in problem.u)}])",
            "jvp = J @ u",
        ]
        start = 0
        for name, shape in zip(program.outputs, problem.output_shapes, strict=True):
            size = math.prod(shape)
            lines.append(f"print({('J u for ' + name + ' =')!r}, jvp[{start}:{start + size}]"
                         f".reshape({tuple(shape)!r}).tolist())")  # fmt: skip
            start += size
        lines.append("print('jvp =', jvp.tolist())")
    return "\n".join(lines) + "\n"


def script(program: lang.Program, problem: Problem, target: str) -> str:
    """The script for `target` (torch, jax or numpy); an InputError without a point."""
    if target not in TARGETS:
        raise InputError(
            f"unknown target '{target}'", where="--emit", fix="use torch, jax or numpy"
        )
    if problem.point is None:
        raise InputError(
            "--emit needs a point: the script sets up the leaves there",
            where="--emit",
            fix="add --at with a value for each variable",
        )
    return {"torch": _torch, "jax": _jax, "numpy": _numpy}[target](program, problem)
