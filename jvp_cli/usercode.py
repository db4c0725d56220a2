"""The user's own torch code (`--torch FILE.py:NAME`): load it, run it at a point, judge it.

THIS IS THE ONLY PLACE WHERE jvp_cli RUNS PYTHON CODE THAT IT DID NOT WRITE. The expression
language (lang.py) is parsed into a tree and never evaluated as Python; `--torch` imports the
user's file, which executes it as Python with the user's own rights, exactly as `python
FILE.py` would. Nothing else in the package imports or evaluates user files.

What it does with NAME (a dotted attribute path in the file): a plain function,
`SomeFunction.apply`, an `nn.Module` subclass (instantiated with no arguments), an
`autograd.Function` subclass (its `.apply` is used), or a module-level instance. It is called
with one tensor per variable, in variable order, and returns a tensor, or a tuple/list of
tensors, one per output (a single stacked tensor for several scalar outputs is fine): the
outputs are flattened in order and must have as many elements as the FUNCTIONS.

At one point it records, each from its own autograd path: the forward values, the Jacobian
(a backward pass per output element), `y.backward(v)` (the leaves' `.grad`), and forward mode
J u (dual numbers) where the code supports it (a custom Function without `jvp`: status
"not-defined", which is not a failure). An exception in the user's code, or an error torch
raises about what the code returned (a wrong number of gradients, a gradient of the wrong
shape, an output not connected to the inputs: "backward never called"), is a result: a
`UserCodeError` naming the file and line in the user's code, never an internal error.
Prints in the user's code go to stderr (sys.stdout and file descriptor 1 are redirected while
it runs), so `--json` stays one JSON object. The CLI runs all this in the forked, time-limited
child (supervise.py), so --timeout bounds the user's code too.

The hook for `--sample`: load the code once with `loaded = load(parse_spec("FILE.py:NAME"))`
(InputError, exit 2, when it cannot be), then `evaluate_at(loaded, shapes, point, v, u,
n_outputs, dtype, device)` runs it at one point and returns a `CodeValues` of plain floats:
forward values, Jacobian, vjp, jvp (or jvp_status "not-defined"), or `error` (a
UserCodeError with file and line) and the `phase` that failed; it never raises for what the
user's code does. `reference_forward(program, problem)` gives the formula's 30-digit values
at problem.point, and `judge` compares a CodeValues with a Report's reference.
"""

from __future__ import annotations

import contextlib
import importlib.util
import inspect
import math
import os
import re
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .model import (
    Check,
    CodeOnlyReport,
    CodeReport,
    CodeValues,
    FdQuantity,
    FdReport,
    InputError,
    Problem,
    Report,
    UserCodeError,
    printable,
)


@dataclass(frozen=True)
class Spec:
    """FILE.py:NAME as given, checked to exist and to compile (nothing run yet)."""

    path: Path  # resolved
    shown: str  # the file as the user wrote it
    name: str


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def parse_spec(text: str) -> Spec:
    """`FILE.py:NAME` -> Spec. Checks that the file exists and compiles (a SyntaxError is
    reported with its line), without running it: cheap, no torch."""
    where = "--torch"
    fix = "write FILE.py:NAME, e.g. --torch swish.py:Swish.apply"
    if ":" not in text:
        raise InputError(f"'{printable(text[:80])}' has no ':NAME'", where=where, fix=fix)
    file, name = text.rsplit(":", 1)
    name = name.strip()
    if not file:
        raise InputError("no file before ':'", where=where, fix=fix)
    if not _NAME.fullmatch(name):
        raise InputError(
            f"'{printable(name[:80])}' is not a name or dotted attribute path",
            where=where,
            fix=fix,
        )
    path = Path(file).expanduser()
    if not path.is_file():
        raise InputError(
            f"cannot read {printable(file)}: no such file", where=where, fix="check the path"
        )
    try:
        source = path.read_bytes()
    except OSError as exc:
        raise InputError(
            f"cannot read {printable(file)}: {exc.strerror or exc}", where=where
        ) from None
    try:
        compile(source, str(path), "exec", dont_inherit=True)
    except SyntaxError as exc:
        raise InputError(
            f"{printable(file)}, line {exc.lineno}: SyntaxError: {exc.msg}",
            where=where,
            fix="fix the file so that python can import it",
        ) from None
    except ValueError as exc:  # null bytes
        raise InputError(f"{printable(file)} cannot be compiled: {exc}", where=where) from None
    return Spec(path.resolve(), file, name)


@dataclass
class Loaded:
    """The user's callable, ready to run."""

    fn: Callable[..., Any]
    spec: Spec
    kind: str  # "function", "Function.apply", "nn.Module", "callable"
    module: Any
    params: tuple[str, ...] | None  # positional parameter names, None when not fixed (*args)
    line: int | None  # where NAME is defined in the file


def load(spec: Spec) -> Loaded:
    """Import the user's file (this runs it) and find NAME. InputError (exit 2, one line)
    when the file cannot be imported or NAME is not there or not callable."""
    import torch

    where = "--torch"
    module_name = "_vjp_user_" + re.sub(r"\W", "_", spec.path.stem)
    directory = str(spec.path.parent)
    added = directory not in sys.path
    if added:
        sys.path.insert(0, directory)  # the file's own imports of its neighbours
    try:
        loader_spec = importlib.util.spec_from_file_location(module_name, spec.path)
        if loader_spec is None or loader_spec.loader is None:
            raise InputError(f"cannot import {printable(spec.shown)}", where=where)
        module = importlib.util.module_from_spec(loader_spec)
        sys.modules[module_name] = module
        try:
            with user_output():
                loader_spec.loader.exec_module(module)
        except (Exception, SystemExit) as exc:
            sys.modules.pop(module_name, None)
            err = describe(exc, spec.path, spec.shown)
            at = f", line {err.line}" if err.line else ""
            raise InputError(
                f"cannot import {printable(spec.shown)}{at}: {err.message}",
                where=where,
                fix="the file must import on its own (python " + printable(spec.shown) + ")",
            ) from None
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(directory)
    obj: Any = module
    for k, part in enumerate(spec.name.split(".")):
        if not hasattr(obj, part):
            have = (
                sorted(
                    n
                    for n, x in vars(obj).items()
                    if not n.startswith("_") and not inspect.ismodule(x)
                )
                if k == 0
                else []
            )
            listed = f"; it defines {', '.join(have[:12])}" if have else ""
            raise InputError(
                f"{printable(spec.shown)} has no '{'.'.join(spec.name.split('.')[: k + 1])}'"
                f"{listed}",
                where=where,
                fix="name a function, SomeFunction.apply, an nn.Module class or an instance",
            )
        obj = getattr(obj, part)
    kind = "callable"
    target = obj
    if inspect.isclass(obj) and issubclass(obj, torch.autograd.Function):
        target, kind = obj.apply, "Function.apply"
    elif inspect.isclass(obj) and issubclass(obj, torch.nn.Module):
        try:
            with user_output():
                target = obj()
        except (Exception, SystemExit) as exc:
            err = describe(exc, spec.path, spec.shown)
            raise InputError(
                f"{printable(spec.shown)}: {spec.name}() (an nn.Module, made with no "
                f"arguments) failed: {err.message}",
                where=where,
                fix="give the module defaults for its constructor's arguments",
            ) from None
        kind = "nn.Module"
    elif (
        inspect.ismethod(obj)
        and inspect.isclass(obj.__self__)
        and issubclass(obj.__self__, torch.autograd.Function)
    ):
        kind = "Function.apply"
    elif isinstance(obj, torch.nn.Module):
        kind = "nn.Module"
    elif inspect.isfunction(obj):
        kind = "function"
    if not callable(target):
        raise InputError(
            f"{printable(spec.shown)}:{spec.name} is a {type(obj).__name__}, not callable",
            where=where,
            fix="name a function, SomeFunction.apply, an nn.Module class or an instance",
        )
    return Loaded(target, spec, kind, module, _params(obj, target, kind), _line_of(obj))


def _params(obj: Any, target: Any, kind: str) -> tuple[str, ...] | None:
    """The positional parameters the code takes (their names), None when not fixed."""
    if kind == "Function.apply":
        cls: Any = obj if inspect.isclass(obj) else obj.__self__
        try:
            sig = inspect.signature(cls.forward)
        except (TypeError, ValueError):
            return None
        params = list(sig.parameters.values())[1:]  # ctx
    else:
        func = target.forward if kind == "nn.Module" else target
        try:
            sig = inspect.signature(func)
        except (TypeError, ValueError):
            return None
        params = list(sig.parameters.values())
    names = []
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return None
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            names.append(p.name)
    return tuple(names)


def _line_of(obj: Any) -> int | None:
    target: Any = obj.__self__ if inspect.ismethod(obj) else obj
    try:
        return inspect.getsourcelines(target)[1]
    except (OSError, TypeError):
        return None


class _ExitCalled(Exception):
    """The user's code called os._exit: refused (it would end vjp without a word, with
    whatever status it gave) and reported as the code's error."""


def _no_exit(status: int = 0) -> None:
    raise _ExitCalled(f"your code called os._exit({status})")


@contextlib.contextmanager
def user_output() -> Iterator[None]:
    """While the user's code runs, what it prints goes to stderr: sys.stdout is stderr and
    file descriptor 1 (print from C, os.write(1, ...)) is a copy of fd 2; os._exit raises
    (sys.exit's SystemExit is caught where the code is called)."""
    saved = None
    try:
        sys.stdout.flush()
    except (OSError, ValueError, AttributeError):
        pass
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:
        saved = None
    real_exit = os._exit
    os._exit = _no_exit  # type: ignore[assignment]
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        os._exit = real_exit
        try:
            sys.stderr.flush()
        except (OSError, ValueError, AttributeError):
            pass
        if saved is not None:
            os.dup2(saved, 1)
            os.close(saved)


_BACKWARD_NODE = re.compile(r"\b(\w+)Backward\d*\b")


def describe(exc: BaseException, path: Path, shown: str, module: Any = None) -> UserCodeError:
    """An exception from (or about) the user's code as one or two lines, with the file and
    line in the user's code: the innermost traceback frame in their file, else (torch's
    checks of what a backward returned, raised after it returned) the backward of the
    Function the message names, else nothing."""
    text = str(exc).strip() or type(exc).__name__
    lines = [ln for ln in text.splitlines() if ln.strip()]
    first = lines[0] if lines else text
    if isinstance(exc, SystemExit):
        first = f"your code called sys.exit({exc.code!r})"
    plain = isinstance(exc, (SystemExit, _ExitCalled))
    message = first if plain else f"{type(exc).__name__}: {first}"
    if len(message) > 300:
        message = message[:297] + "..."
    line = None
    where = ""
    target = str(path)
    for frame in traceback.extract_tb(exc.__traceback__):
        if os.path.realpath(frame.filename) == target:
            line, where = frame.lineno, frame.name
    if line is None and module is not None:
        m = _BACKWARD_NODE.search(text)
        cls = getattr(module, m.group(1), None) if m else None
        method = getattr(cls, "backward", None) if inspect.isclass(cls) else None
        if method is not None:
            line = _return_line(method)
            where = f"{cls.__name__}.backward"  # type: ignore[union-attr]
    return UserCodeError(printable(message), shown, line, where or None)


def _return_line(method: Any) -> int | None:
    """The line of the last `return` in `method` (what a backward returned is what torch
    refused), else of its `def`."""
    import ast
    import textwrap

    try:
        lines, start = inspect.getsourcelines(method)
        tree = ast.parse(textwrap.dedent("".join(lines)))
    except (OSError, TypeError, SyntaxError):
        return None
    fn = next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)), None)
    if fn is None:
        return start
    returns = [n.lineno for n in ast.walk(fn) if isinstance(n, ast.Return)]
    return start - 1 + (max(returns) if returns else fn.lineno)


class _Failed(Exception):
    """A phase of the user's code failed: carries the UserCodeError."""

    def __init__(self, error: UserCodeError) -> None:
        super().__init__(error.message)
        self.error = error


def evaluate_at(
    loaded: Loaded,
    shapes: Sequence[tuple[int, ...]],
    point: Sequence[float],
    v: Sequence[float] | None,
    u: Sequence[float] | None,
    n_outputs: int | None = None,
    dtype: str = "float64",
    device: str = "cpu",
) -> CodeValues:
    """Run the user's code at one point (the hook for --sample): forward values, the
    Jacobian (a backward pass per output element), y.backward(v) and forward-mode J u, as
    plain floats. `n_outputs`: how many output elements the formula has (None: any).
    Never raises for what the user's code does: an error is CodeValues.error."""
    import torch

    from .autograd import DTYPES, _split, device_of

    tdtype, dev = DTYPES[dtype], device_of(device)
    phase = "forward"
    values = jac = vjp = jvp = None
    jvp_status = "not-asked" if u is None else "ok"
    jvp_note = None
    try:
        leaves = [t.requires_grad_(True) for t in _split(point, shapes, tdtype, dev)]
        outs = _call(loaded, leaves, n_outputs, "forward")
        values = tuple(float(x) for o in outs for x in o.detach().reshape(-1).cpu().tolist())
        if not any(o.requires_grad for o in outs):
            raise _Failed(_disconnected(loaded))
        phase = "jacobian"
        rows = []
        with user_output():
            for o in outs:
                flat = o.reshape(-1)
                for k in range(flat.numel()):
                    if not o.requires_grad:
                        rows.append((0.0,) * sum(math.prod(s) for s in shapes))
                        continue
                    row = flat[k]
                    grads = _guard(
                        loaded,
                        lambda: torch.autograd.grad(
                            row,  # noqa: B023 (the lambda is called at once, in this pass)
                            leaves,
                            retain_graph=True,
                            allow_unused=True,
                        ),
                    )
                    rows.append(_flat(grads, leaves))
        jac = tuple(rows)
        if v is not None:
            phase = "vjp"
            leaves = [t.requires_grad_(True) for t in _split(point, shapes, tdtype, dev)]
            outs = _call(loaded, leaves, n_outputs, "vjp")
            cots = _split(v, [tuple(o.shape) for o in outs], tdtype, dev)
            pairs = [(o, c) for o, c in zip(outs, cots, strict=True) if o.requires_grad]
            with user_output():
                _guard(
                    loaded,
                    lambda: torch.autograd.backward([o for o, _ in pairs], [c for _, c in pairs]),
                )
            vjp = _flat([leaf.grad for leaf in leaves], leaves)
        if u is not None:
            phase = "jvp"
            jvp, jvp_status, jvp_note = _forward_mode(
                loaded, shapes, point, u, n_outputs, tdtype, dev
            )
    except _Failed as failed:
        return CodeValues(values, jac, vjp, jvp, jvp_status, jvp_note, failed.error, phase)
    return CodeValues(values, jac, vjp, jvp, jvp_status, jvp_note, None, None)


def _forward_mode(
    loaded: Loaded,
    shapes: Sequence[tuple[int, ...]],
    point: Sequence[float],
    u: Sequence[float],
    n_outputs: int | None,
    tdtype: Any,
    dev: Any,
) -> tuple[tuple[float, ...] | None, str, str | None]:
    import torch.autograd.forward_ad as fwAD

    from .autograd import _split

    primal = _split(point, shapes, tdtype, dev)
    tangents = _split(u, shapes, tdtype, dev)
    with fwAD.dual_level():
        duals = [fwAD.make_dual(p, t) for p, t in zip(primal, tangents, strict=True)]
        try:
            outs = _call(loaded, duals, n_outputs, "jvp", raw=True)
        except _NoForward as nf:
            return None, "not-defined", nf.note
        out: list[float] = []
        for o in outs:
            tangent = fwAD.unpack_dual(o).tangent
            flat = tangent.reshape(-1).tolist() if tangent is not None else [0.0] * o.numel()
            out.extend(float(x) for x in flat)
    return tuple(out), "ok", None


class _NoForward(Exception):
    def __init__(self, note: str) -> None:
        super().__init__(note)
        self.note = note


_NO_JVP = ("must implement the jvp function", "jvp is not implemented")
_NO_FORWARD_AD = (
    "does not support forward ad",
    "forward ad is not implemented",
    "trying to use forward ad",
)


def _call(
    loaded: Loaded, args: list[Any], n_outputs: int | None, phase: str, raw: bool = False
) -> list[Any]:
    """The user's code on `args`, its result as a list of tensors (checked)."""
    import torch

    try:
        with user_output():
            result = loaded.fn(*args)
    except (Exception, SystemExit) as exc:
        low = str(exc).lower()
        if raw and any(s in low for s in _NO_JVP):
            raise _NoForward("forward mode not defined by your Function (it has no jvp)") from None
        if raw and any(s in low for s in _NO_FORWARD_AD):
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise _NoForward(f"forward mode not supported by your code: {first}") from None
        err = describe(exc, loaded.spec.path, loaded.spec.shown, loaded.module)
        if err.line is None:  # raised while calling it (the arguments do not fit): its def
            message = err.message
            if isinstance(exc, TypeError):
                message += (
                    f" ({loaded.spec.name} is called with {len(args)} tensor"
                    f"{'s' if len(args) != 1 else ''}, one per variable, in order)"
                )
            err = replace(err, message=message, line=loaded.line, where=loaded.spec.name)
        raise _Failed(err) from None
    items = list(result) if isinstance(result, (tuple, list)) else [result]
    where = loaded.line
    outs = []
    for k, item in enumerate(items):
        if not isinstance(item, torch.Tensor):
            what = f"element {k} of what it returned" if len(items) > 1 else "it"
            raise _Failed(
                UserCodeError(
                    f"your code returned a {type(item).__name__}, not a tensor ({what}); "
                    "return a tensor, or a tuple or list of tensors, one per output",
                    loaded.spec.shown,
                    where,
                    loaded.spec.name,
                )
            )
        outs.append(item)
    total = sum(o.numel() for o in outs)
    if n_outputs is not None and total != n_outputs:
        raise _Failed(
            UserCodeError(
                f"your code returned {total} output element{'s' if total != 1 else ''} "
                f"({', '.join(str(tuple(o.shape)) for o in outs)}); the functions have "
                f"{n_outputs}: return one tensor per output, in order",
                loaded.spec.shown,
                where,
                loaded.spec.name,
            )
        )
    return outs


def _guard(loaded: Loaded, work: Callable[[], Any]) -> Any:
    """A backward pass: what the user's backward raises, or torch raises about what it
    returned, becomes a _Failed with the file and line."""
    try:
        return work()
    except (Exception, SystemExit) as exc:
        raise _Failed(describe(exc, loaded.spec.path, loaded.spec.shown, loaded.module)) from None


def _disconnected(loaded: Loaded) -> UserCodeError:
    return UserCodeError(
        "backward never called: no output of your code requires grad (it is not connected "
        "to the inputs: detached, .item(), numpy, or torch.no_grad() in the forward?)",
        loaded.spec.shown,
        loaded.line,
        loaded.spec.name,
    )


def _flat(grads: Sequence[Any], leaves: Sequence[Any]) -> tuple[float, ...]:
    out: list[float] = []
    for g, leaf in zip(grads, leaves, strict=True):
        if g is None:
            out.extend([0.0] * leaf.numel())  # the input does not reach the output
        else:
            out.extend(float(x) for x in g.detach().reshape(-1).cpu().tolist())
    return tuple(out)


def reference_forward(program: Any, problem: Problem) -> tuple[float, ...]:
    """The formula's values at the point, from SymPy's expressions evaluated exactly (30+
    correct digits, exact.py), rounded to float64; NaN where not a finite real number."""
    import sympy as sp

    from . import exact, symbolic

    assert problem.point is not None
    built = symbolic.build(program, problem.shapes, "sympy")
    subs = {s: sp.Rational(x) for s, x in zip(built.symbols, problem.point, strict=True)}
    out = []
    for e in built.exprs:
        try:
            val = exact.value(e, subs)
        except exact.Uncertified:
            val = sp.N(e.subs(subs), symbolic.DPS)
            val = complex(val).real if val.is_real else None
        out.append(math.nan if val is None else float(val))
    return tuple(out)


def judge(
    values: CodeValues,
    forward_ref: Sequence[float],
    report: Report,
) -> dict[str, Check | None]:
    """The code's quantities against the reference: forward, jacobian, vjp, jvp."""
    from .compare import compare

    p, s = report.problem, report.symbolic
    r, a = p.rtol, p.atol
    out: dict[str, Check | None] = {"forward": None, "jacobian": None, "vjp": None, "jvp": None}
    if values.forward is not None:
        out["forward"] = compare("forward", list(forward_ref), list(values.forward), r, a)
    if values.jacobian is not None and s.jacobian is not None:
        out["jacobian"] = compare(
            "jacobian", s.jacobian, values.jacobian, r, a, s.beyond("jacobian")
        )
    if values.vjp is not None and s.vjp is not None:
        out["vjp"] = compare("vjp", s.vjp, values.vjp, r, a, s.beyond("vjp"))
    if values.jvp is not None and s.jvp is not None:
        out["jvp"] = compare("jvp", s.jvp, values.jvp, r, a, s.beyond("jvp"))
    elif values.jvp_status == "not-defined":
        out["jvp"] = Check("jvp", "not-defined", math.nan, r, a)
    return out


def attach(report: Report, program: Any, spec: Spec, fd: bool = False) -> Report:
    """The report with the user's code checked against the same reference (report.code);
    with `fd`, also finite differences of the code's own forward against its backward."""
    p = report.problem
    assert p.point is not None
    loaded = load(spec)
    n_out = len(report.symbolic.row_labels)
    values = evaluate_at(loaded, p.shapes, p.point, p.v, p.u, n_out, p.dtype, p.device)
    forward_ref = reference_forward(program, p)
    checks = judge(values, forward_ref, report)
    notes = _notes(loaded, values, checks, report)
    own = None
    if fd and values.error is None and values.jacobian is not None:
        own, more = _own_forward(loaded, values, checks, p)
        notes.extend(more)
    code = CodeReport(
        file=spec.shown,
        name=spec.name,
        kind=loaded.kind,
        values=values,
        forward_reference=forward_ref,
        checks=checks,
        notes=tuple(notes),
        own_fd=own,
    )
    return replace(report, code=code)


def _own_forward(
    loaded: Loaded, values: CodeValues, checks: dict[str, Check | None], p: Problem
) -> tuple[FdQuantity, list[str]]:
    """FD of the user's own forward against their backward's Jacobian: whether the backward
    is right for what the forward computes, which tells a wrong backward from a wrong
    forward."""
    from . import fd
    from .compare import compare_within

    assert p.point is not None and values.jacobian is not None
    m = len(values.jacobian)
    with user_output():
        J, E = fd.jacobian(fd.code_function(loaded, p.shapes, m, p.device), p.point, m)
    how = (
        "your code's Jacobian against FD of your own forward: |code - FD| <= "
        f"{fd.SAFETY:g} x error estimate + {fd.FLOOR:g} x (1 + |FD|)"
    )
    q = FdQuantity(J.tolist(), E.tolist())
    check = compare_within(
        "jacobian", q.values, values.jacobian, fd.tolerance(q.error, q.values), how
    )
    notes = []
    jac, fwd = checks.get("jacobian"), checks.get("forward")
    if check.agree and jac is not None and not jac.agree:
        if fwd is not None and fwd.status == "disagree":
            notes.append(
                "your backward matches finite differences of your own forward: it "
                "is right for what your forward computes; the forward is what does "
                "not compute the formula"
            )
        else:
            notes.append("your backward matches finite differences of your own forward")
    elif check.status == "disagree":
        notes.append(
            "your backward does not match finite differences of your own forward: "
            "the backward is wrong for what the forward computes"
        )
    return replace(q, check=check), notes


def _notes(
    loaded: Loaded, values: CodeValues, checks: dict[str, Check | None], report: Report
) -> list[str]:
    """Which side disagrees with the reference, said in words."""
    notes = []
    builtin = {c.name: c for c in report.checks}
    fwd = checks["forward"]
    if fwd is not None and fwd.status == "disagree":
        notes.append(
            "your code's forward values are not the functions' values: it does not "
            "compute the formula (check the forward, or the FUNCTIONS)"
        )
    mine: list[str] = []  # your code wrong, torch's built-in right
    both: list[str] = []
    for name in ("jacobian", "vjp", "jvp"):
        c, b = checks[name], builtin.get(name)
        if c is None or b is None or c.status != "disagree":
            continue
        (mine if b.agree else both).append(name)
    if mine:
        part = (
            "its jvp"
            if mine == ["jvp"]
            else "its backward"
            if "jvp" not in mine
            else "its backward and jvp"
        )
        notes.append(
            f"{', '.join(mine)}: your code disagrees with the reference and torch's built-in "
            f"autograd of the formula agrees: the fault is in your code ({part}"
            + (")" if fwd is None or fwd.agree else ", or its forward)")
        )
    if both:
        notes.append(
            f"{', '.join(both)}: your code and torch's built-in autograd both disagree with "
            "the reference (float64 rounding in the formula at this point?)"
        )
    if values.jvp_status == "not-defined" and values.jvp_note:
        notes.append(values.jvp_note)
    return notes


def solve_standalone(
    spec: Spec,
    at: Sequence[str],
    v: Sequence[str] | None,
    u: Sequence[str] | None,
    dtype: str = "float64",
    device: str = "cpu",
) -> CodeOnlyReport:
    """--torch without FUNCTIONS: the user's code against finite differences of itself
    (FD is the reference, its tolerance from its own error estimate). The variables are
    named by the code's signature where it has fixed positional parameters, else x1..xn."""
    from . import api, fd, lang
    from .api import parse_values

    loaded = load(spec)
    if loaded.params:
        names, origin = loaded.params, "signature"
    else:
        count = sum(len(list(lang.split_items(t))) for t in at)
        names, origin = tuple(f"x{k}" for k in range(1, count + 1)), "numbered"
    values = parse_values(list(at), names, "--at", "variables")
    shapes = tuple(values[n][0] for n in names)
    point = tuple(x for n in names for x in values[n][1])
    device = api.check_device(device)
    # the outputs' shapes: one forward run, before v can be read
    from .autograd import DTYPES, _split, device_of

    probe: CodeValues | None = None
    out_shapes: list[tuple[int, ...]] = []
    vv = uu = None
    try:
        items = _call(
            loaded, _split(point, shapes, DTYPES[dtype], device_of(device)), None, "forward"
        )
    except _Failed as failed:
        probe = CodeValues(None, None, None, None, "not-asked", None, failed.error, "forward")
    else:
        out_shapes = [tuple(t.shape) for t in items]
        out_names = [f"y{k}" for k in range(1, len(items) + 1)] if len(items) > 1 else ["y"]
        if v:
            parsed = parse_values(
                list(v),
                out_names,
                "--v",
                "outputs of your code",
                dict(zip(out_names, out_shapes, strict=True)),
                exact=True,
            )
            vv = tuple(x for n in out_names for x in parsed[n][1])
        elif sum(math.prod(s) for s in out_shapes) == 1:
            vv = (1.0,)
    if u:
        parsed = parse_values(
            list(u), names, "--u", "variables", dict(zip(names, shapes, strict=True)), exact=True
        )
        uu = tuple(x for n in names for x in parsed[n][1])
    if probe is not None:
        return CodeOnlyReport(
            spec.shown,
            spec.name,
            loaded.kind,
            names,
            origin,
            shapes,
            point,
            vv,
            uu,
            probe,
            None,
            {},
        )
    m = sum(math.prod(s) for s in out_shapes)
    got = evaluate_at(loaded, shapes, point, vv, uu, m, dtype, device)
    with user_output():
        jq, vq, uq = fd.differentiate(fd.code_function(loaded, shapes, m, device), point, m, vv, uu)
    how = (
        "tolerance from FD's own error estimate: |code - FD| <= "
        f"{fd.SAFETY:g} x error estimate + {fd.FLOOR:g} x (1 + |FD|), entry by entry"
    )
    fdr = FdReport(
        "code",
        fd.METHOD + " of your code's forward (float64, no_grad)",
        how,
        jq,
        vq,
        uq,
        is_reference=True,
    )
    from .compare import compare_within

    checks: dict[str, Check | None] = {"jacobian": None, "vjp": None, "jvp": None}
    if got.jacobian is not None:  # (FD is shown even where the code's backward failed)
        checks["jacobian"] = compare_within(
            "jacobian", jq.values, got.jacobian, fd.tolerance(jq.error, jq.values), how
        )
    if vq is not None and got.vjp is not None:
        checks["vjp"] = compare_within(
            "vjp", vq.values, got.vjp, fd.tolerance(vq.error, vq.values), how
        )
    if uq is not None:
        if got.jvp is not None:
            checks["jvp"] = compare_within(
                "jvp", uq.values, got.jvp, fd.tolerance(uq.error, uq.values), how
            )
        elif got.jvp_status == "not-defined":
            checks["jvp"] = Check("jvp", "not-defined", math.nan, math.nan, math.nan)
    notes = []
    if origin == "numbered":
        notes.append("variables named x1..xn: the code's signature does not name them")
    else:
        notes.append("variables named from the code's signature")
    if vv == (1.0,) and not v:
        notes.append("v = 1 for the scalar output, as out.backward() does")
    if got.jvp_status == "not-defined" and got.jvp_note:
        notes.append(got.jvp_note)
    return CodeOnlyReport(
        spec.shown,
        spec.name,
        loaded.kind,
        names,
        origin,
        shapes,
        point,
        vv,
        uu,
        got,
        fdr,
        checks,
        tuple(notes),
    )
