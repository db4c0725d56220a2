"""The library entry points: text options -> Problem, Problem -> Report.

`make_problem` validates everything the user typed (cheap: no SymPy, no torch), so bad input
is refused before either engine is imported. `solve` runs both engines on the same parse tree,
each on its own, and compares them.
"""

from __future__ import annotations

from collections.abc import Sequence

from . import lang
from .compare import compare, tolerances
from .model import InputError, Problem, Report, printable


def parse_values(
    text: str,
    names: Sequence[str],
    option: str,
    what: str,
) -> tuple[float, ...]:
    """Parse `1,2,3` (in `names` order) or `a=1,b=2` (by name, any order).

    Each value may be a constant expression (`pi/3`, `-1e-3`) and must be a finite float."""
    items = list(lang.split_items(text))
    if len(items) == 1 and not items[0][0].strip():
        raise InputError(
            f"{option} is empty",
            where=option,
            fix=f"give {len(names)} comma-separated value(s) for {what}",
        )
    parsed: list[tuple[str | None, float, int]] = []
    for k, (item, offset) in enumerate(items, start=1):
        if not item.strip():
            raise InputError(
                f"item {k} is empty",
                where=option,
                source=text,
                pos=offset,
                fix="remove the extra comma or give a value",
            )
        name: str | None = None
        expr, expr_off = item, offset
        if "=" in item:
            lhs, rhs = item.split("=", 1)
            name = lhs.strip()
            lang.check_identifier(name, f"{option} item {k}")
            expr, expr_off = rhs, offset + len(lhs) + 1
        try:
            value = lang.evaluate_constant(expr, option)
        except InputError as exc:
            pos = None if exc.pos is None else expr_off + exc.pos
            raise InputError(
                exc.what,
                where=f"{option} item {k}",
                source=text if pos is not None else None,
                pos=pos,
                fix=exc.fix,
            ) from None
        parsed.append((name, value, offset))

    named = [p for p in parsed if p[0] is not None]
    if named and len(named) != len(parsed):
        raise InputError(
            "mixes named (a=1) and positional values", where=option, fix="name every value or none"
        )
    if not named:
        if len(parsed) != len(names):
            raise InputError(
                f"got {len(parsed)} value{'s' if len(parsed) != 1 else ''} but there "
                f"{'is' if len(names) == 1 else 'are'} {len(names)} {what} "
                f"({', '.join(names)})",
                where=option,
                fix=f"give exactly {len(names)}, in that order, or name them (a=1,b=2)",
            )
        return tuple(p[1] for p in parsed)
    by_name: dict[str, float] = {}
    for name, value, offset in parsed:
        assert name is not None
        if name not in names:
            raise InputError(
                f"'{printable(name)}' is not one of the {what}",
                where=option,
                source=text,
                pos=offset,
                fix=f"use {', '.join(names)}",
            )
        if name in by_name:
            raise InputError(
                f"'{name}' is given twice",
                where=option,
                source=text,
                pos=offset,
                fix="give each name once",
            )
        by_name[name] = value
    missing = [n for n in names if n not in by_name]
    if missing:
        raise InputError(
            f"no value for {', '.join(missing)}",
            where=option,
            fix=f"give all {len(names)} {what}: {', '.join(names)}",
        )
    return tuple(by_name[n] for n in names)


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
    at: str | None = None,
    v: str | None = None,
    u: str | None = None,
    variables: str | None = None,
    outputs: str | None = None,
    dtype: str = "float64",
    device: str = "cpu",
    rtol: float | None = None,
    atol: float | None = None,
) -> tuple[lang.Program, Problem]:
    var_order = parse_names(variables, "--vars") if variables is not None else None
    out_order = parse_names(outputs, "--outputs") if outputs is not None else None
    program = lang.parse_program(functions, variables=var_order, outputs=out_order)
    if not program.variables:
        raise InputError(
            "the functions contain no variables, so there is nothing to differentiate",
            where="the functions",
            fix="use at least one variable, or name them with --vars",
        )
    point = vv = uu = None
    implicit = False
    if at is not None:
        point = parse_values(at, program.variables, "--at", "variables")
    if v is not None:
        vv = parse_values(v, program.outputs, "--v", "functions (outputs)")
    elif point is not None and len(program.outputs) == 1:
        vv, implicit = (1.0,), True
    if u is not None:
        uu = parse_values(u, program.variables, "--u", "variables")
    if point is None and (v is not None or u is not None):
        raise InputError(
            f"{'--v' if v is not None else '--u'} needs a point",
            where="--at",
            fix="add --at with a value for each variable",
        )
    for name, value in (("--rtol", rtol), ("--atol", atol)):
        if value is not None and not (value >= 0 and value < float("inf")):
            raise InputError(f"{name} must be a finite number >= 0", where=name)
    r, a = tolerances(dtype, rtol, atol)
    problem = Problem(
        source=functions,
        functions=program.functions_text(),
        outputs=program.outputs,
        variables=program.variables,
        point=point,
        v=vv,
        u=uu,
        v_implicit=implicit,
        dtype=dtype,
        device=device,
        rtol=r,
        atol=a,
    )
    return program, problem


def solve(program: lang.Program, problem: Problem) -> Report:
    """Run SymPy and torch on the same tree, independently, and compare them."""
    from . import symbolic

    sym = symbolic.evaluate(program, problem.point, problem.v, problem.u)
    notes: list[str] = []
    if problem.point is None:
        return Report(problem, sym)
    if problem.v is None:
        notes.append(
            f"no VJP taken: y has {len(problem.outputs)} components and torch refuses "
            "an implicit gradient for a non-scalar output (y.backward() needs v); "
            "pass --v"
        )
    elif problem.v_implicit:
        notes.append("v = 1 for the scalar output, as out.backward() does")

    from . import autograd

    ag = autograd.evaluate(
        program, problem.point, problem.v, problem.u, problem.dtype, problem.device
    )
    assert sym.jacobian is not None
    checks = [compare("jacobian", sym.jacobian, ag.jacobian, problem.rtol, problem.atol)]
    if problem.v is not None:
        assert sym.vjp is not None and ag.vjp is not None
        checks.append(compare("vjp", sym.vjp, ag.vjp, problem.rtol, problem.atol))
    if problem.u is not None:
        assert sym.jvp is not None and ag.jvp is not None
        checks.append(compare("jvp", sym.jvp, ag.jvp, problem.rtol, problem.atol))
    return Report(problem, sym, ag, tuple(checks), tuple(notes))
