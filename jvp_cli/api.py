"""The library entry points: text options -> Problem, Problem -> Report.

`make_problem` validates everything the user typed (cheap: no SymPy, no torch), so bad input
is refused before either engine is imported. `solve` runs both engines on the same parse tree,
each on its own, and compares them.
"""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections.abc import Sequence
from typing import Any

from . import lang
from .compare import compare, tolerances
from .model import AutogradResult, InputError, LimitError, Problem, Report, printable
from .shapes import MAX_DIMS, MAX_ELEMENTS, Shape, check_jacobian_size, fmt, infer

FILLS = ("ones", "zeros", "arange")
Value = tuple[Shape, tuple[float, ...]]


def _value(
    text: str, offset: int, source: str, option: str, item: int, shape_hint: Shape | None
) -> Value:
    """One value: a constant expression, nested lists [[1,2],[3,4]], or a fill word."""
    where = f"{option} item {item}"
    body = text.strip()
    lead = offset + len(text) - len(text.lstrip())
    if body in FILLS:
        if shape_hint is None:
            raise InputError(
                f"'{body}' needs a shape", where=where, fix="add --shape NAME=2,3 for this variable"
            )
        n = math.prod(shape_hint)
        data = (
            [1.0] * n
            if body == "ones"
            else [0.0] * n
            if body == "zeros"
            else list(map(float, range(n)))
        )
        return shape_hint, tuple(data)
    if body.startswith("["):
        return _nested(body, lead, source, where)
    return (), (_scalar(text, offset, source, where),)


_PLAIN_NUMBER = re.compile(r"[ \t]*-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*")


def _scalar(text: str, offset: int, source: str, where: str) -> float:
    if len(text) <= 40 and _PLAIN_NUMBER.fullmatch(text):
        # a plain literal (10,000 of them in --at for a big system): the same float as the
        # parser's (both correctly rounded), within the same bounds, without the parser
        x = float(text)
        if x != 0 and abs(math.log10(abs(x))) <= lang.MAX_CONST_LOG10:
            return x
    try:
        return lang.evaluate_constant(text, where)
    except InputError as exc:
        pos = None if exc.pos is None else offset + exc.pos
        raise InputError(
            exc.what, where=where, source=source if pos is not None else None, pos=pos, fix=exc.fix
        ) from None


def _nested(body: str, offset: int, source: str, where: str) -> Value:
    """[[1, 2], [3, 4]] -> ((2, 2), (1, 2, 3, 4)); every row must have the same shape."""
    if not body.endswith("]"):
        raise InputError(
            "'[' is never closed",
            where=where,
            source=source,
            pos=offset,
            fix="close every '[' with ']'",
        )
    inner = body[1:-1]
    if not inner.strip():
        raise InputError(
            "empty list '[]'",
            where=where,
            source=source,
            pos=offset,
            fix="give at least one number",
        )
    shapes: list[Shape] = []
    flat: list[float] = []
    for text, off in lang.split_items(inner):
        pos = offset + 1 + off
        piece = text.strip()
        if not piece:
            raise InputError(
                "empty element", where=where, source=source, pos=pos, fix="remove the extra comma"
            )
        lead = pos + len(text) - len(text.lstrip())
        if piece.startswith("["):
            shape, data = _nested(piece, lead, source, where)
        else:
            shape, data = (), (_scalar(text, pos, source, where),)
        if shapes and shape != shapes[0]:
            raise InputError(
                f"ragged nested list: element of shape {fmt(shape)} after {fmt(shapes[0])}",
                where=where,
                source=source,
                pos=lead,
                fix="every row needs the same length",
            )
        shapes.append(shape)
        flat.extend(data)
    if len(flat) > MAX_ELEMENTS:
        raise InputError(f"more than {MAX_ELEMENTS:,} numbers", where=where)
    shape = (len(shapes), *shapes[0])
    if len(shape) > MAX_DIMS:
        raise LimitError(
            f"nested lists of {len(shape)} dimensions (limit {MAX_DIMS})",
            where=where,
            source=source,
            pos=offset,
        )
    return shape, tuple(flat)


def fmt_nested(shape: Shape) -> str:
    """A placeholder nested list of `shape` for a hint: (2,) -> [.., ..]; (2, 3) -> [[..]..]."""
    if not shape:
        return ".."
    inner = fmt_nested(shape[1:])
    return "[" + ",".join([inner] * min(shape[0], 3)) + (",...]" if shape[0] > 3 else "]")


def parse_values(
    texts: str | Sequence[str],
    names: Sequence[str],
    option: str,
    what: str,
    shapes: dict[str, Shape] | None = None,
    exact: bool = False,
) -> dict[str, Value]:
    """Parse values in `names` order (`1,2,3`) or by name in any order (`a=1,b=2`).

    A value is a constant expression (`pi/3`, `-1e-3`), nested lists with a tensor's shape
    (`[[1,2],[3,4]]`), or a fill word (ones, zeros, arange) for a name whose shape `shapes`
    gives. Items split on the commas outside brackets; several texts (a repeated option) are
    read as one list. With `exact`, each value must have exactly the shape in `shapes` (a
    cotangent or tangent); otherwise a scalar fills a given shape."""
    if isinstance(texts, str):
        texts = [texts]
    shapes = shapes or {}
    items: list[tuple[str, int, str]] = []
    for text in texts:
        pieces = list(lang.split_items(text))
        if len(pieces) == 1 and not pieces[0][0].strip():
            raise InputError(
                f"{option} is empty",
                where=option,
                fix=f"give {len(names)} comma-separated value(s) for {what}",
            )
        items.extend((piece, off, text) for piece, off in pieces)
    parsed: list[tuple[str | None, int, str, int, str]] = []
    for k, (item, offset, source) in enumerate(items, start=1):
        if not item.strip():
            raise InputError(
                f"item {k} is empty",
                where=option,
                source=source,
                pos=offset,
                fix="remove the extra comma or give a value",
            )
        name: str | None = None
        expr, expr_off = item, offset
        eq = item.find("=")
        if eq >= 0 and "[" not in item[:eq]:
            name = item[:eq].strip()
            lang.check_identifier(name, f"{option} item {k}")
            expr, expr_off = item[eq + 1 :], offset + eq + 1
        parsed.append((name, k, expr, expr_off, source))

    named = [p for p in parsed if p[0] is not None]
    if named and len(named) != len(parsed):
        raise InputError(
            "mixes named (a=1) and positional values", where=option, fix="name every value or none"
        )
    if not named:
        if len(parsed) != len(names):
            tensors = [n for n in names if shapes.get(n)]
            fix = f"give exactly {len(names)}, in that order, or name them (a=1,b=2)"
            if tensors:  # 1,1 for a 2-vector is the usual slip
                fix = (f"one value per name, a tensor as a nested list: {tensors[0]}="
                       f"{fmt_nested(shapes[tensors[0]])}")  # fmt: skip
            one = {"variables": "variable", "functions (outputs)": "function (output)"}
            raise InputError(
                f"got {len(parsed)} value{'s' if len(parsed) != 1 else ''} but there "
                f"{'is' if len(names) == 1 else 'are'} {len(names)} "
                f"{one.get(what, what) if len(names) == 1 else what} ({', '.join(names)})",
                where=option,
                fix=fix,
            )
        parsed = [(n, k, e, o, src) for n, (_, k, e, o, src) in zip(names, parsed, strict=True)]
    out: dict[str, Value] = {}
    known = set(names)
    for name, k, expr, off, source in parsed:
        assert name is not None
        if name not in known:
            raise InputError(
                f"'{printable(name)}' is not one of the {what}",
                where=option,
                source=source,
                pos=off,
                fix=f"use {', '.join(names)}",
            )
        if name in out:
            raise InputError(
                f"'{name}' is given twice",
                where=option,
                source=source,
                pos=off,
                fix="give each name once",
            )
        want = shapes.get(name)
        shape, data = _value(expr, off, source, option, k, want)
        if want is not None and shape != want:
            if shape == () and not exact:
                shape, data = want, data * math.prod(want)  # a scalar fills the shape
            else:
                raise InputError(
                    f"the value given for {name} {_has(shape)}, but {name} {_has(want)}",
                    where=option,
                    source=source,
                    pos=off,
                    fix=f"give {name} as nested lists of shape {fmt(want)}"
                    if want
                    else f"give {name} as one number",
                )
        out[name] = (shape, data)
    missing = [n for n in names if n not in out]
    if missing:
        raise InputError(
            f"no value for {', '.join(missing)}",
            where=option,
            fix=f"give all {len(names)} {what}: {', '.join(names)}",
        )
    return out


def _has(shape: Shape) -> str:
    return "is a scalar" if shape == () else f"has shape {fmt(shape)}"


_SHAPE_NAME = re.compile(r"[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*")
_SHAPE_SIZE = re.compile(r"[ \t]*([0-9]+)[ \t]*")


def parse_shapes(texts: Sequence[str], variables: Sequence[str]) -> dict[str, Shape]:
    """--shape x=2,3 (repeatable; also x=(2,3) or x=[2,3], several names in one:
    x=2,3,y=4; x=() is a scalar). Sizes are positive ASCII integers; anything else,
    such as x=(3)(4) or x=3,,4, is refused with its column."""
    result: dict[str, Shape] = {}

    def refuse(text: str, pos: int, what: str) -> InputError:
        return InputError(what, where="--shape", source=text, pos=pos, fix="e.g. --shape x=2,3")

    for text in texts:
        pos = 0
        while True:
            m = _SHAPE_NAME.match(text, pos)
            if m is None:
                raise refuse(text, pos, "expected NAME=sizes")
            name = m.group(1)
            lang.check_identifier(name, "--shape")
            if name not in variables:
                raise InputError(
                    f"'{name}' is not a variable",
                    where="--shape",
                    fix=f"variables: {', '.join(variables)}",
                )
            if name in result:
                raise InputError(f"'{name}' is given twice", where="--shape")
            pos = m.end()
            closer = {"(": ")", "[": "]"}.get(text[pos : pos + 1])
            dims: list[int] = []
            if closer is not None:
                pos += 1
                if text[pos:].lstrip(" \t").startswith(closer):  # x=(): a scalar
                    pos = text.index(closer, pos)
            while True:
                if closer is not None and dims == [] and text[pos : pos + 1] == closer:
                    break
                s = _SHAPE_SIZE.match(text, pos)
                piece = s.group(1) if s else ""
                if s is None:
                    rest = text[pos:].lstrip(" \t")
                    shown = printable(rest[:1]) if rest else "nothing"
                    what = (
                        "an empty size"
                        if rest[:1] in ("", ",", ")", "]")
                        else f"size '{shown}' is not a positive integer"
                    )
                    raise refuse(text, pos, what)
                if int(piece) < 1 or len(piece) > 6:
                    raise refuse(text, s.start(1), f"size '{piece}' is not a positive integer")
                dims.append(int(piece))
                pos = s.end()
                if text[pos : pos + 1] != ",":
                    break
                # x=2,3,y=4: a comma before NAME= ends this variable's sizes
                if closer is None and _SHAPE_NAME.match(text, pos + 1):
                    break
                pos += 1
            if closer is not None:
                if text[pos : pos + 1] != closer:
                    raise refuse(text, pos, f"expected '{closer}'")
                pos += 1
                while text[pos : pos + 1] in (" ", "\t") and pos < len(text):
                    pos += 1
            result[name] = tuple(dims)
            if pos >= len(text):
                break
            if text[pos] != ",":
                raise refuse(text, pos, f"unexpected '{printable(text[pos])}'")
            pos += 1
    for name, shape in result.items():
        if len(shape) > MAX_DIMS:
            raise LimitError(f"{name}: {len(shape)} dimensions (limit {MAX_DIMS})", where="--shape")
        if math.prod(shape) > MAX_ELEMENTS:
            raise InputError(
                f"{name}: shape {fmt(shape)} has more than {MAX_ELEMENTS:,} elements",
                where="--shape",
            )
    return result


def _flat(values: dict[str, Value], names: Sequence[str]) -> tuple[float, ...]:
    return tuple(x for n in names for x in values[n][1])


def parse_names(text: str, option: str) -> list[str]:
    """A comma-separated list of distinct plain identifiers (--vars, --outputs)."""
    names: list[str] = []
    for k, (item, _) in enumerate(lang.split_items(text), start=1):
        name = item.strip()
        if not name:
            raise InputError(
                f"item {k} is empty", where=option, fix="list names separated by commas"
            )
        lang.check_identifier(name, option)
        if name in names:
            raise InputError(f"'{name}' is listed twice", where=option, fix="list each name once")
        names.append(name)
    return names


def make_problem(
    functions: str,
    *,
    at: str | Sequence[str] | None = None,
    v: str | Sequence[str] | None = None,
    u: str | Sequence[str] | None = None,
    variables: str | None = None,
    outputs: str | None = None,
    shape: Sequence[str] = (),
    dtype: str = "float64",
    device: str = "cpu",
    rtol: float | None = None,
    atol: float | None = None,
    engine: str = "auto",
    batch: bool = False,
    explain: bool = False,
    hessian: bool = False,
    hessians: bool = False,
    hvp: str | Sequence[str] | None = None,
) -> tuple[lang.Program, Problem]:
    """Parse and validate everything a run needs. `batch`: the problem is for --points,
    where no symbolic matrix is shown, so "auto" picks SymEngine whenever it can."""
    var_order = parse_names(variables, "--vars") if variables is not None else None
    out_order = parse_names(outputs, "--outputs") if outputs is not None else None
    program = lang.parse_program(functions, variables=var_order, outputs=out_order)
    if not program.variables:
        raise InputError(
            "the functions contain no variables, so there is nothing to differentiate",
            where="the functions",
            fix="use at least one variable, or name them with --vars",
        )
    declared = parse_shapes([shape] if isinstance(shape, str) else shape, program.variables)
    point = vv = uu = None
    var_shapes = {n: declared.get(n, ()) for n in program.variables}
    if at:
        try:
            values = parse_values(at, program.variables, "--at", "variables", declared)
        except InputError as exc:
            raise _e_hint(exc, program) from None
        var_shapes = {n: values[n][0] for n in program.variables}
        point = _flat(values, program.variables)
    out_shapes = infer(program, var_shapes)
    from .sparse import structural_nonzeros  # a program of scalars: bounded by its nonzeros

    check_jacobian_size(var_shapes.values(), out_shapes,
                        structural_nonzeros(program, var_shapes.values()))  # fmt: skip
    implicit = False
    if v:
        if point is None:
            raise InputError(
                "--v needs a point", where="--at", fix="add --at with a value for each variable"
            )
        vals = parse_values(
            v,
            program.outputs,
            "--v",
            "functions (outputs)",
            dict(zip(program.outputs, out_shapes, strict=True)),
            exact=True,
        )
        vv = _flat(vals, program.outputs)
    elif point is not None and len(program.outputs) == 1 and out_shapes[0] == ():
        vv, implicit = (1.0,), True
    if u:
        if point is None:
            raise InputError(
                "--u needs a point", where="--at", fix="add --at with a value for each variable"
            )
        vals = parse_values(u, program.variables, "--u", "variables", var_shapes, exact=True)
        uu = _flat(vals, program.variables)
    device = check_device(device)
    for name, value in (("--rtol", rtol), ("--atol", atol)):
        if value is not None and not (value >= 0 and value < float("inf")):
            raise InputError(f"{name} must be a finite number >= 0", where=name)
    r, a = tolerances(dtype, rtol, atol)
    engine = choose_engine(program, engine, batch)
    second = _second_order_options(program, var_shapes, out_shapes, point, vv, implicit, hessian,
                                   hessians, hvp, batch)  # fmt: skip
    output_names = set(program.outputs)  # 10,000 outputs: a set, not the tuple
    problem = Problem(
        source=functions,
        functions=program.functions_text(),
        intermediates=tuple(
            (name, lang.unparse(node))
            for name, node in program.definitions
            if name not in output_names
        ),
        outputs=program.outputs,
        variables=program.variables,
        shapes=tuple(var_shapes[n] for n in program.variables),
        output_shapes=tuple(out_shapes),
        point=point,
        v=vv,
        u=uu,
        v_implicit=implicit,
        dtype=dtype,
        device=device,
        engine=engine,
        rtol=r,
        atol=a,
        explain=explain,
        **second,
    )
    return program, problem


MAX_HESSIAN_ENTRIES = 4_000_000


def _second_order_options(
    program: lang.Program,
    var_shapes: dict[str, Shape],
    out_shapes: Sequence[Shape],
    point: Any,
    v: Any,
    implicit: bool,
    hessian: bool,
    hessians: bool,
    hvp: str | Sequence[str] | None,
    batch: bool,
) -> dict[str, Any]:
    """--hessian, --hessians, --hvp U (issue 15), validated: U has the variables' shapes;
    the Hessian of several outputs is that of v^T f, so it needs --v (or --hessians)."""
    if not (hessian or hessians or hvp):
        return {}
    if batch and (hessian or hessians):
        raise InputError(
            "--points takes --hvp only (one H u per point)",
            where="--points",
            fix="drop --hessian/--hessians, or give one point with --at",
        )
    n = sum(math.prod(s) for s in var_shapes.values())
    m = sum(math.prod(s) for s in out_shapes)
    # both sides form H whole (H u alone never does): the Jacobian's entry limit
    for wanted, count, what in ((hessian, n * n, "--hessian"), (hessians, m * n * n, "--hessians")):
        if wanted and count > MAX_HESSIAN_ENTRIES:
            raise LimitError(
                f"{what} would have {count:,} entries; the limit is {MAX_HESSIAN_ENTRIES:,}",
                where=what,
                fix="use --hvp U for the product H u, which never forms H",
            )
    u = None
    if hvp:
        if point is None and not batch:
            raise InputError(
                "--hvp needs a point", where="--at", fix="add --at with a value for each variable"
            )
        vals = parse_values(hvp, program.variables, "--hvp", "variables", var_shapes, exact=True)
        u = _flat(vals, program.variables)
    scalar = len(program.outputs) == 1 and out_shapes[0] == ()
    if (hessian or hvp) and not scalar and v is None and not batch and point is not None:
        option = "--hessian" if hessian else "--hvp"
        raise InputError(
            f"{option} of {m} outputs is the Hessian of v^T f, which needs v",
            where=option,
            fix="pass --v (one weight per output, as for y.backward(v)), or --hessians for "
            "each output's own Hessian",
        )
    if hessian and not scalar and point is None:
        raise InputError(
            f"--hessian of {m} outputs is the Hessian of v^T f, which needs v and a point",
            where="--hessian",
            fix="pass --at and --v, or --hessians for each output's own symbolic Hessian",
        )
    return {"hessian": bool(hessian), "hessians": bool(hessians), "hvp": u}


def _e_hint(exc: InputError, program: lang.Program) -> InputError:
    """`e^x` makes `e` a variable, and --at then has one value too few: say why."""
    few = f"got {len(program.variables) - 1} value"
    if "e" not in program.variables or not exc.what.startswith(few + " "):
        return exc
    return type(exc)(
        exc.what,
        where=exc.where,
        fix="'e' is read as a variable here: for Euler's number write E (E**x) or exp(x)",
    )


def _uses_e_as_base(program: lang.Program) -> bool:
    """Whether some power has the variable `e` for its base (e^x, e**x)."""
    if "e" not in program.variables:
        return False
    todo: list[lang.Node] = [st.expr for st in program.statements]
    while todo:
        node = todo.pop()
        if isinstance(node, lang.Pow) and isinstance(node.base, lang.Name) and node.base.id == "e":
            return True
        todo.extend(lang.children(node))
    return False


_DEVICE = re.compile(r"cpu|cuda(?::[0-9]{1,3})?")


def check_device(device: str) -> str:
    """cpu, cuda or cuda:N: the devices this tool computes on. Others that torch names
    (meta holds no data, privateuseone and mps need backends not built here) are refused
    before torch is imported."""
    text = device.strip()
    if not _DEVICE.fullmatch(text):
        raise InputError(
            f"unsupported device '{printable(device[:40])}'",
            where="--device",
            fix="use cpu, cuda or cuda:N",
        )
    return text


ENGINE_THRESHOLD = 5_000  # tree nodes from which "auto" differentiates with SymEngine
PARALLEL_NODES = 2_000  # tree nodes from which torch runs beside SymPy even if imported


def _autograd(program: lang.Program, problem: Problem) -> AutogradResult:
    from . import autograd

    assert problem.point is not None
    pending = None
    if problem.second_order:  # issue 15: big problems' torch.func routes, in a child
        from . import autograd2

        pending = autograd2.start(program, problem)
    try:
        result = autograd.evaluate(
            program, problem.shapes, problem.point, problem.v, problem.u, problem.dtype,
            problem.device,
        )  # fmt: skip
    except BaseException:
        if pending is not None:
            pending.close()
        raise
    if problem.second_order:  # issue 15: the second-order routes, in the same torch process
        from dataclasses import replace

        result = replace(result, second=autograd2.evaluate(program, problem, pending=pending))
    if problem.graph:  # --graph: the graph torch records, on a run of its own (graph.py)
        from dataclasses import replace

        from . import graph

        result = replace(result, graph=graph.trace(program, problem))
    return result


def choose_engine(program: lang.Program, engine: str, batch: bool = False) -> str:
    """SymPy is the face of the symbolic side and the default; SymEngine (the C++ core behind
    SymPy's speed work) takes over for big problems, where SymPy's object construction and
    diff dominate the run (dense 200 x 200: minutes instead of seconds), and for --points
    (`batch`), where only numbers are shown and SymPy's first diff of even a 10 x 10 system
    costs more than the whole batch (0.18 s against 0.001 s)."""
    if engine not in ("auto", "sympy", "symengine"):
        raise InputError(
            f"unknown engine '{printable(engine)}'",
            where="--engine",
            fix="use auto, sympy or symengine",
        )
    if engine == "sympy":
        return engine
    used = program.calls & lang.NO_SYMENGINE_DERIVATIVE
    # find_spec, not import: importing SymEngine pulls in parts of SymPy a small problem
    # never needs (about 0.1 s of a seed-example run)
    available = importlib.util.find_spec("symengine") is not None
    if engine == "symengine":
        if not available:
            raise InputError(
                "--engine symengine needs the symengine package",
                where="--engine",
                fix="pip install symengine, or use sympy",
            )
        if used:
            raise InputError(
                f"SymEngine cannot differentiate {', '.join(sorted(used))}",
                where="--engine",
                fix="use --engine sympy (or auto)",
            )
        return engine
    big = batch or program.size >= ENGINE_THRESHOLD
    return "symengine" if available and big and not used else "sympy"


def solve(program: lang.Program, problem: Problem) -> Report:
    """Run SymPy and torch on the same tree, independently, and compare them.

    Where a second core and fork are available (sidecar.parallel), torch runs in a forked
    child while this process runs SymPy: the imports of torch and SymPy overlap, and so do
    the two computations."""
    from . import sidecar

    torch_side = None
    if problem.point is not None and sidecar.parallel(problem.device):
        # worth a fork when torch is still to be imported, or the problem is big
        if "torch" not in sys.modules or program.size >= PARALLEL_NODES:
            torch_side = sidecar.Pending(lambda: _autograd(program, problem))
    try:
        from . import symbolic  # SymPy's import, after the fork: beside torch's

        sym = symbolic.evaluate(
            program,
            problem.shapes,
            problem.point,
            problem.v,
            problem.u,
            problem.engine,
            tex_cells=problem.explain,
        )
        second_ref = _second_reference(program, problem)  # issue 15, beside torch's side
    except BaseException:
        if torch_side is not None:
            torch_side.close()
        raise
    notes: list[str] = []
    if _uses_e_as_base(program):
        notes.append("'e' is a variable here, so e^x is e to the power x; for Euler's number "
                     "write E (E^x) or exp(x)")  # fmt: skip
    if problem.point is None:
        return _explained(_with_second(Report(problem, sym, notes=tuple(notes)), second_ref))
    if problem.v is None:
        what = (
            f"y has {len(problem.outputs)} components"
            if len(problem.outputs) > 1
            else f"{problem.outputs[0]} has shape {fmt(problem.output_shapes[0])}"
        )
        notes.append(
            f"no VJP taken: {what}, and torch refuses an implicit gradient for a "
            "non-scalar output (backward() needs v); pass --v"
        )
    elif problem.v_implicit:
        notes.append("v = 1 for the scalar output, as out.backward() does")
    if program.calls & {"max", "min"}:
        notes.append(
            "max/min: where several elements tie, torch splits the gradient evenly "
            "between them; mathematically there is no derivative there (SymPy: NaN)"
        )

    ag = _autograd(program, problem) if torch_side is None else torch_side.result()
    assert isinstance(ag, AutogradResult)
    assert sym.jacobian is not None
    # the nonzeros only (sparse.py), where both sides have them
    pairs = [
        (
            "jacobian",
            sym.sparse_jacobian if sym.sparse_jacobian is not None else sym.jacobian,
            ag.sparse_jacobian if ag.sparse_jacobian is not None else ag.jacobian,
        )
    ]
    if problem.v is not None:
        assert sym.vjp is not None and ag.vjp is not None
        pairs.append(("vjp", sym.vjp, ag.vjp))
    if problem.u is not None:
        assert sym.jvp is not None and ag.jvp is not None
        pairs.append(("jvp", sym.jvp, ag.jvp))
    checks = [compare(name, ref, cand, problem.rtol, problem.atol, sym.beyond(name))
              for name, ref, cand in pairs]  # fmt: skip
    if any(c.status == "disagree" for c in checks):
        notes.extend(_why_torch_differs(program, problem, sym, ag))
    return _explained(
        _with_second(Report(problem, sym, ag, tuple(checks), tuple(notes)), second_ref)
    )


def _explained(report: Report) -> Report:
    """The report with --explain's derivation attached, when it was asked for."""
    if not report.problem.explain:
        return report
    from . import explain

    return explain.build(report)


def _second_reference(program: lang.Program, problem: Problem) -> Any:
    """The symbolic second order the problem asks for (hessian.py), or None."""
    if not problem.second_order:
        return None
    from . import hessian

    return hessian.reference(program, problem)


def _with_second(report: Report, ref: Any) -> Report:
    """The report with its second-order part and verdicts (issue 15)."""
    if ref is None:
        return report
    from dataclasses import replace

    from . import hessian

    p, s = report.problem, report.symbolic
    tor = report.autograd.second if report.autograd is not None else None
    second, checks = hessian.judge(p, ref, tor, s.col_labels, s.row_labels)
    return replace(report, second=second, checks=(*report.checks, *checks),
                   notes=(*report.notes, *second.notes))  # fmt: skip


def _why_torch_differs(
    program: lang.Program, problem: Problem, sym: Any, ag: AutogradResult
) -> list[str]:
    """Where torch disagrees: which sub-expression overflows torch's dtype at the point (and
    the stable form), and which reference values are beyond float64."""
    from . import domain

    assert problem.point is not None
    notes = []
    note = domain.overflow_note(program, problem.shapes, problem.point, problem.dtype)
    if note is not None:
        notes.append(note)
    for quantity, index, text in sym.exact:
        where = ",".join(str(i) for i in index)
        notes.append(f"the reference {quantity}[{where}] = {text} is beyond float64's range "
                     "(1.8e308): no float64 result can match it")  # fmt: skip
    nonfinite = (any(not math.isfinite(x) for x in ag.sparse_jacobian.values)
                 if ag.sparse_jacobian is not None else
                 any(not math.isfinite(x) for row in ag.jacobian for x in row))  # fmt: skip
    if not notes and nonfinite:
        notes.append(
            "torch returns NaN or inf where the derivative is a finite number: a 0*inf or "
            "inf/inf in its chain rule (e.g. at a point where a factor's own derivative is "
            "infinite, such as sqrt at 0)"
        )
    if not notes:
        notes.append(
            "torch's result is not within the tolerance of the 30-digit reference: float64 "
            "rounding in the formula as written (cancellation, e.g. 1 - cos(x) or exp(x) - 1 "
            "for small x) or a wrong derivative"
        )
    return notes
