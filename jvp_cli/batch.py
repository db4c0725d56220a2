"""--points: v^T J at many points in one process, streamed in chunks.

Points come as CSV (a header of variable names, optionally `v:OUTPUT` columns for a cotangent
per row) or JSON lines (objects keyed by variable name, optionally with "v", or arrays in
variable order). Each chunk is computed on both sides at once: torch runs the program on
batched leaf tensors and calls `y.backward(V)`; SymPy's Jacobian is differentiated once and
evaluated over the chunk by a vectorised walk of its expressions (numeric.py). One JSON line
per point is written as soon as its chunk is done, so memory stays bounded by the chunk size
and every line written is complete, even when a later row is bad.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

import numpy as np

from . import lang
from .model import InputError, Problem
from .render import json_number

CHUNK = 8192
COMPILE = True  # compile V^T J with SymEngine's LLVM backend where it can (tests turn it off)


@dataclass
class Summary:
    points: int = 0
    agree: int = 0
    disagree: int = 0
    undefined: int = 0
    worst: float = 0.0
    worst_line: int | None = None
    seconds: float = 0.0
    truncated: bool = False  # the reader closed the pipe before the end
    compiled: bool = False  # the symbolic side ran as SymEngine-compiled code (else numpy)


def check_supported(program: lang.Program, problem: Problem) -> None:
    """Batches run element-wise programs of scalar variables (a reduction over a batched
    variable would reduce over the batch)."""
    if any(problem.shapes) or any(problem.output_shapes):
        raise InputError(
            "--points takes scalar variables and outputs only",
            where="--points",
            fix="give tensor problems one point at a time with --at",
        )
    stack = [node for _, node in program.definitions] + list(program.output_exprs)
    while stack:
        n = stack.pop()
        bad = (
            isinstance(n, (lang.Index, lang.Transpose))
            or (isinstance(n, lang.Call) and n.func in lang.TENSOR_FUNCTIONS)
            or (isinstance(n, lang.Chain) and any(op == "@" for op, _ in n.rest))
        )
        if bad:
            raise InputError(
                "--points takes element-wise programs only",
                where="--points",
                source=program.source,
                pos=getattr(n, "pos", None),
                fix="tensor operations need --at, one point at a time",
            )
        stack.extend(lang.children(n))


def _number(text: str, where: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise InputError(
            f"'{text.strip()[:40]}' is not a number", where=where, fix="write plain decimal numbers"
        ) from None
    if not math.isfinite(value):
        raise InputError(
            f"'{text.strip()[:40]}' is not a finite number",
            where=where,
            fix="no nan, inf or values beyond 1.8e308",
        )
    return value


Row = tuple[int, list[float], list[float] | None]  # line number, values, per-row v


def _csv_header(
    first: str, first_no: int, variables: Sequence[str], outputs: Sequence[str]
) -> tuple[list[str], list[int], list[int] | None]:
    """Column names, the column of each variable, and of each output's v (or None)."""
    header = [h.strip() for h in next(csv.reader([first]))]
    where = f"--points line {first_no}"
    for k, name in enumerate(header, start=1):
        if name not in variables and not (name.startswith("v:") and name[2:] in outputs):
            raise InputError(
                f"column {k} '{name[:40]}' is neither a variable nor v:OUTPUT",
                where=where,
                fix=f"variables: {', '.join(variables)}",
            )
    if len(set(header)) != len(header):
        raise InputError("a column name is repeated", where=where)
    missing = [v for v in variables if v not in header]
    if missing:
        raise InputError(
            f"no column for {', '.join(missing)}",
            where=where,
            fix="the header names every variable",
        )
    v_cols = [h for h in header if h.startswith("v:")]
    if v_cols and len(v_cols) != len(outputs):
        raise InputError(
            f"v columns for some outputs only ({', '.join(v_cols)})",
            where=where,
            fix=f"give v:NAME for every output: {', '.join(outputs)}",
        )
    pos = {name: k for k, name in enumerate(header)}
    v_idx = [pos["v:" + o] for o in outputs] if v_cols else None
    return header, [pos[v] for v in variables], v_idx


def _csv_row(text: str, line_no: int, width: int) -> list[float]:
    cells = next(csv.reader([text]))
    if len(cells) != width:
        raise InputError(
            f"{len(cells)} fields but the header has {width}", where=f"--points line {line_no}"
        )
    return [_number(c, f"--points line {line_no}, column {k}")
            for k, c in enumerate(cells, start=1)]  # fmt: skip


def _csv_chunks(
    lines: Iterator[str],
    first: str,
    first_no: int,
    variables: Sequence[str],
    outputs: Sequence[str],
    size: int,
) -> Iterator[tuple[list[int], np.ndarray, np.ndarray | None]]:
    """Blocks of rows, parsed by numpy when they are clean; a block with a bad row is parsed
    row by row, so the rows before it still come out and the error names its line and
    column."""
    header, var_idx, v_idx = _csv_header(first, first_no, variables, outputs)
    width = len(header)
    line_no = first_no
    while True:
        texts: list[str] = []
        numbers: list[int] = []
        for text in lines:
            line_no += 1
            if text.strip():
                texts.append(text)
                numbers.append(line_no)
                if len(texts) >= size:
                    break
        if not texts:
            return
        data = None
        try:
            with np.errstate(all="ignore"):
                data = np.loadtxt(texts, delimiter=",", dtype=np.float64, ndmin=2)
            if data.shape != (len(texts), width) or not np.isfinite(data).all():
                data = None
        except ValueError:
            data = None
        if data is None:
            good: list[list[float]] = []
            try:
                for text, k in zip(texts, numbers, strict=True):
                    good.append(_csv_row(text, k, width))
            except InputError:
                if good:
                    arr = np.array(good, dtype=np.float64)
                    yield (numbers[: len(good)], arr[:, var_idx], arr[:, v_idx] if v_idx else None)
                raise
            data = np.array(good, dtype=np.float64)
        yield numbers, data[:, var_idx], data[:, v_idx] if v_idx else None


def _reject(token: str) -> Any:
    raise ValueError(f"{token} is not a finite number")


def _json_rows(
    lines: Iterator[str],
    first: str,
    first_no: int,
    variables: Sequence[str],
    outputs: Sequence[str],
) -> Iterator[Row]:
    def rows() -> Iterator[tuple[int, str]]:
        yield first_no, first
        yield from enumerate(lines, start=first_no + 1)

    for line_no, text in rows():
        if not text.strip():
            continue
        where = f"--points line {line_no}"
        try:
            obj = json.loads(text, parse_constant=_reject)
        except ValueError as exc:
            col = getattr(exc, "colno", None)
            raise InputError(
                f"not valid JSON ({str(exc).split(':')[0]})" + (f" at column {col}" if col else ""),
                where=where,
                fix="one JSON object or array per line",
            ) from None
        v = None
        if isinstance(obj, list):
            if len(obj) != len(variables):
                raise InputError(
                    f"{len(obj)} values but there are {len(variables)} "
                    f"variables ({', '.join(variables)})",
                    where=where,
                )
            raw = obj
        elif isinstance(obj, dict):
            unknown = [k for k in obj if k not in variables and k != "v"]
            if unknown:
                raise InputError(
                    f"'{str(unknown[0])[:40]}' is not a variable",
                    where=where,
                    fix=f"variables: {', '.join(variables)}",
                )
            missing = [name for name in variables if name not in obj]
            if missing:
                raise InputError(f"no value for {', '.join(missing)}", where=where)
            raw = [obj[name] for name in variables]
            if "v" in obj:
                vraw = obj["v"]
                if isinstance(vraw, dict):
                    vraw = [vraw.get(o) for o in outputs]
                if not isinstance(vraw, list) or len(vraw) != len(outputs):
                    raise InputError(
                        f'"v" needs {len(outputs)} values, one per output', where=where
                    )
                v = [_json_number(x, where) for x in vraw]
        else:
            raise InputError("each line is a JSON object or array", where=where)
        yield line_no, [_json_number(x, where) for x in raw], v


def _json_number(x: Any, where: str) -> float:
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        raise InputError(f"{json.dumps(x)[:40]} is not a number", where=where)
    try:
        value = float(x)
    except OverflowError:
        value = math.inf
    if not math.isfinite(value):
        raise InputError(f"{x} is beyond float64", where=where)
    return value


def read_chunks(
    stream: IO[str], variables: Sequence[str], outputs: Sequence[str], size: int | None = None
) -> Iterator[tuple[list[int], np.ndarray, np.ndarray | None]]:
    """(line numbers, points, per-row v or None) in blocks of at most `size` rows. A bad
    row raises InputError after the block of good rows before it has been yielded."""
    size = size or CHUNK
    lines = iter(stream)
    for line_no, first in enumerate(lines, start=1):
        first = first.lstrip("\ufeff") if line_no == 1 else first  # a byte-order mark
        if first.strip():
            break
    else:
        raise InputError(
            "no points", where="--points", fix="give a CSV header and rows, or JSON lines"
        )
    if first.lstrip()[:1] not in "{[":
        yield from _csv_chunks(lines, first, line_no, variables, outputs, size)
        return
    chunk: list[Row] = []

    def pack() -> tuple[list[int], np.ndarray, np.ndarray | None]:
        X = np.array([r[1] for r in chunk], dtype=np.float64)
        if all(r[2] is None for r in chunk):
            return [r[0] for r in chunk], X, None
        # rows without their own "v" take the default (--v, or 1 for one output): NaN here
        V = np.array(
            [r[2] if r[2] is not None else [np.nan] * len(outputs) for r in chunk], dtype=np.float64
        )
        return [r[0] for r in chunk], X, V

    try:
        for row in _json_rows(lines, first, line_no, variables, outputs):
            chunk.append(row)
            if len(chunk) >= size:
                yield pack()
                chunk = []
    except InputError:
        if chunk:
            yield pack()
        raise
    if chunk:
        yield pack()


def run(
    program: lang.Program,
    problem: Problem,
    stream: IO[str],
    fixed_v: Sequence[float] | None,
    write: Callable[[str], None] | None,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """Compute every point, writing one JSON line per point through `write` (if given)."""
    import torch

    from . import autograd, numeric, symbolic

    check_supported(program, problem)
    built = symbolic.build(program, problem.shapes)
    symbols = built.symbols
    jac = symbolic.jacobian(built.exprs, symbols)
    compiled = numeric.compile_vjp(jac, symbols) if COMPILE else None
    summary = Summary(compiled=compiled is not None)
    tdtype = autograd.DTYPES[problem.dtype]
    dev = autograd.device_of(problem.device)
    n, m = len(problem.variables), len(problem.outputs)
    default_v = list(fixed_v) if fixed_v is not None else ([1.0] if m == 1 else None)
    plan: dict[int, Any] = {}  # how the program's long sums group, the same for every chunk
    start = time.perf_counter()
    chunks = read_chunks(stream, problem.variables, problem.outputs)
    pending_error: InputError | None = None
    while True:
        try:
            lines, X, V = next(chunks)
        except StopIteration:
            break
        except InputError as exc:
            pending_error = exc
            break
        B = len(lines)
        if V is None:
            if default_v is None:
                raise InputError(
                    f"no v for the {m} outputs",
                    where="--points",
                    fix='pass --v, or v:NAME columns / a "v" key per row',
                )
            V = np.tile(np.asarray(default_v, dtype=np.float64), (B, 1))
        elif np.isnan(V).any():
            missing = np.isnan(V).any(axis=1)
            if default_v is None:
                raise InputError(
                    f"no v for the {m} outputs",
                    where=f"--points line {lines[int(np.argmax(missing))]}",
                    fix='pass --v, or give "v" on every row',
                )
            V[missing] = np.asarray(default_v, dtype=np.float64)

        # symbolic side: V^T J over the whole chunk, compiled, or entry by entry
        if compiled is not None:
            sym = compiled(X, V)
        else:
            env = {s: X[:, j] for j, s in enumerate(symbols)}
            sym = np.zeros((B, n))
            with np.errstate(all="ignore"):
                for i, entries in enumerate(jac):
                    for j, expr in entries.items():
                        sym[:, j] += V[:, i] * numeric.evaluate(expr, env, B)

        # torch side: batched leaves, the real outputs stacked, y.backward(V).
        leaves = [torch.tensor(X[:, j], dtype=tdtype, device=dev, requires_grad=True)
                  for j in range(n)]  # fmt: skip
        outs = autograd.run(
            program,
            dict(zip(problem.variables, leaves, strict=True)),
            leaves[0],
            batch=True,
            plan=plan,
        )
        y = torch.stack([o.expand(B) for o in outs], dim=1)
        if y.requires_grad:
            y.backward(torch.tensor(V, dtype=tdtype, device=dev))
        tor = np.stack(
            [
                leaf.grad.detach().to("cpu", torch.float64).numpy()
                if leaf.grad is not None
                else np.zeros(B)
                for leaf in leaves
            ],
            axis=1,
        )
        values = y.detach().to("cpu", torch.float64).numpy()

        finite = (
            np.isfinite(sym).all(axis=1)
            & np.isfinite(tor).all(axis=1)
            & np.isfinite(values).all(axis=1)
        )
        both = np.isfinite(sym) & np.isfinite(tor)
        with np.errstate(all="ignore"):  # NaN and inf entries are judged by `finite`
            diff = np.where(both, np.abs(tor - sym), 0.0).max(axis=1)
            close = (np.abs(tor - sym) <= problem.atol + problem.rtol * np.abs(sym)).all(axis=1)
        status = np.where(~finite, "undefined", np.where(close, "agree", "disagree"))
        summary.agree += int(np.sum(status == "agree"))
        summary.disagree += int(np.sum(status == "disagree"))
        summary.undefined += int(np.sum(status == "undefined"))
        if finite.any():
            k = int(np.argmax(np.where(finite, diff, -1.0)))
            if diff[k] >= summary.worst:
                summary.worst, summary.worst_line = float(diff[k]), lines[k]
        if write is not None:
            try:
                for k in range(B):
                    line = _line(lines[k], problem, X[k], V[k], sym[k], tor[k], float(diff[k]),
                                 str(status[k]))  # fmt: skip
                    write(line)
            except BrokenPipeError:  # the reader went away (| head): stop quietly
                summary.truncated = True
                summary.points += B
                break
        summary.points += B
        if progress is not None:
            progress(summary.points)
    summary.seconds = time.perf_counter() - start
    if pending_error is not None:
        raise pending_error
    return summary


def _line(
    line: int,
    problem: Problem,
    x: np.ndarray,
    v: np.ndarray,
    sym: np.ndarray,
    tor: np.ndarray,
    diff: float,
    status: str,
) -> str:
    return json.dumps(
        {
            "line": line,
            "point": {name: float(val) for name, val in zip(problem.variables, x, strict=True)},
            "vjp": {
                "v": [float(t) for t in v],
                "sympy": [json_number(t) for t in sym],
                "torch": [json_number(t) for t in tor],
                "max_abs_diff": json_number(diff),
                "agree": status == "agree",
                "status": status,
            },
            "agree": status == "agree",
        },
        allow_nan=False,
    )
