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
import itertools
import json
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, NamedTuple

import numpy as np

from . import lang, sidecar
from .model import InputError, LimitError, Problem
from .views.common import json_number

CHUNK = 8192
COMPILE = True  # compile V^T J with SymEngine's LLVM backend where it can (tests turn it off)
SIDECAR = True  # run the torch side in a forked process where it helps (tests turn it off)


@dataclass
class Summary:
    points: int = 0
    agree: int = 0
    disagree: int = 0
    undefined: int = 0
    worst: float = 0.0
    worst_line: int | None = None
    seconds: float = 0.0  # from the first row read to the last line written
    truncated: bool = False  # the reader closed the pipe before the end
    compiled: bool = False  # the symbolic side ran as SymEngine-compiled code (else numpy)
    processes: int = 1  # 2 when the torch side ran in a side process
    steady: float = 0.0  # points per second after the first chunk (0: a single chunk)
    chunks_here: int = 0  # chunks whose torch side this process ran (with a side process)
    exact: int = 0  # points whose reference the fast path could not certify: 30-digit path


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
    return lang.read_number(text, where)


MAX_LINE = 1_000_000  # characters of one --points line (documented in the README)


def _lines(stream: IO[Any]) -> Iterator[str]:
    """The lines of `stream` (text, or bytes decoded as UTF-8 line by line), each read with
    a bound: a line longer than MAX_LINE (an endless one from /dev/zero) and a read error
    are InputErrors naming the line."""
    number = 0
    while True:
        number += 1
        where = f"--points line {number}"
        try:
            line = stream.readline(MAX_LINE + 2)
        except UnicodeDecodeError as exc:  # a text stream decodes ahead of the lines
            raise InputError(
                f"not valid UTF-8 (at or after this line: {exc.reason})",
                where=where,
                fix="save the file as UTF-8 text",
            ) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", where=where) from None
        if not line:
            return
        if isinstance(line, bytes):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"not valid UTF-8 (byte {exc.start + 1} of the line)",
                    where=where,
                    fix="save the file as UTF-8 text",
                ) from None
            if text.endswith("\r\n"):
                text = text[:-2] + "\n"
        else:
            text = line
        if len(text.rstrip("\r\n")) > MAX_LINE:
            raise LimitError(
                f"the line is longer than {MAX_LINE:,} characters",
                where=where,
                fix="one point per line",
            )
        yield text


def _cells(text: str, where: str) -> list[str]:
    """One CSV line's fields, strictly: an unterminated quote or a stray one is an error."""
    try:
        return next(csv.reader([text], strict=True))
    except csv.Error as exc:
        if "field limit" in str(exc):
            raise LimitError(
                f"a field is longer than {csv.field_size_limit():,} characters",
                where=where,
                fix="a cell holds one number",
            ) from None
        raise InputError(f"not valid CSV ({exc})", where=where) from None


Row = tuple[int, list[float], list[float] | None]  # line number, values, per-row v


def _csv_header(
    first: str, first_no: int, variables: Sequence[str], outputs: Sequence[str]
) -> tuple[list[str], list[int], list[int] | None]:
    """Column names, the column of each variable, and of each output's v (or None)."""
    where = f"--points line {first_no}"
    header = [h.strip() for h in _cells(first, where)]
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
    cells = _cells(text, f"--points line {line_no}")
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
) -> Iterator[tuple[Sequence[int], np.ndarray, np.ndarray | None]]:
    """Blocks of rows, parsed by numpy when they are clean; a block with a bad row is parsed
    row by row, so the rows before it still come out and the error names its line and
    column."""
    header, var_idx, v_idx = _csv_header(first, first_no, variables, outputs)
    width = len(header)
    line_no = first_no
    pending: InputError | None = None  # a line that could not be read, after the rows before it
    while pending is None:
        texts: list[str] = []
        try:
            texts.extend(itertools.islice(lines, size))
        except InputError as exc:
            pending = exc
        if not texts:
            break
        numbers: Sequence[int] = range(line_no + 1, line_no + 1 + len(texts))
        line_no += len(texts)
        data = None
        try:
            # comments=None: "1,2#3" is a bad row, not the row 1,2
            with np.errstate(all="ignore"):
                data = np.loadtxt(texts, delimiter=",", dtype=np.float64, ndmin=2, comments=None)
            if data.shape != (len(texts), width) or not _in_range(data):
                data = None  # a blank line, a short row, nan, a quoted field: row by row
        except ValueError:
            data = None
        if data is None:
            kept = [(t, k) for t, k in zip(texts, numbers, strict=True) if t.strip()]
            if not kept:
                continue
            texts, numbers = [t for t, _ in kept], [k for _, k in kept]
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
    if pending is not None:
        raise pending


def _in_range(data: np.ndarray) -> bool:
    """Every number finite and 0 or within 1e-300 .. 1e300 in magnitude (lang's rule)."""
    with np.errstate(all="ignore"):
        size = np.abs(data)
        return bool(np.all((size == 0) | ((size >= 1e-300) & (size <= 1e300))))


def _reject(token: str) -> Any:
    raise ValueError(f"{token} is not a finite number")


class _DuplicateKey(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _DuplicateKey(f"the key {json.dumps(key)[:40]} appears twice")
            seen.add(key)
    return obj


def _row_v(obj: dict[str, Any], variables: Sequence[str], outputs: Sequence[str],
           where: str) -> list[float] | None:  # fmt: skip
    """A JSON row's own cotangent. "v" holds it (a list, or an object keyed by output)
    unless a variable is named v; "v:NAME" keys (as CSV's columns) hold it always."""
    v_key = "v" not in variables and "v" in obj
    columns = [k for k in obj if k.startswith("v:")]
    if v_key and columns:
        raise InputError('give the cotangent as "v" or as "v:NAME" keys, not both', where=where)
    if columns:
        unknown = [k for k in columns if k[2:] not in outputs]
        missing = [o for o in outputs if "v:" + o not in obj]
        if unknown or missing:
            raise InputError(
                f"'{unknown[0][:40]}' is not v:OUTPUT" if unknown
                else f"no v:{missing[0]} key",
                where=where,
                fix=f"give v:NAME for every output: {', '.join(outputs)}",
            )  # fmt: skip
        return [_json_number(obj["v:" + o], where) for o in outputs]
    if not v_key:
        return None
    vraw = obj["v"]
    if isinstance(vraw, dict):
        unknown = [k for k in vraw if k not in outputs]
        if unknown:
            raise InputError(
                f"'{str(unknown[0])[:40]}' in \"v\" is not an output",
                where=where,
                fix=f"outputs: {', '.join(outputs)}",
            )
        vraw = [vraw.get(o) for o in outputs]
    if not isinstance(vraw, list) or len(vraw) != len(outputs):
        raise InputError(f'"v" needs {len(outputs)} values, one per output', where=where)
    return [_json_number(x, where) for x in vraw]


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
            obj = json.loads(text, parse_constant=_reject, object_pairs_hook=_no_duplicates)
        except _DuplicateKey as exc:
            raise InputError(str(exc), where=where, fix="give each key once") from None
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
            unknown = [
                k for k in obj
                if k not in variables and not k.startswith("v:") and k != "v"
            ]  # fmt: skip
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
            v = _row_v(obj, variables, outputs, where)
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
    return lang.check_magnitude(value, json.dumps(x), where)


def read_chunks(
    stream: IO[str], variables: Sequence[str], outputs: Sequence[str], size: int | None = None
) -> Iterator[tuple[Sequence[int], np.ndarray, np.ndarray | None]]:
    """(line numbers, points, per-row v or None) in blocks of at most `size` rows. A bad
    row raises InputError after the block of good rows before it has been yielded."""
    size = size or CHUNK
    lines = _lines(stream)
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

    def pack() -> tuple[Sequence[int], np.ndarray, np.ndarray | None]:
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


Chunk = tuple[Sequence[int], np.ndarray, np.ndarray]  # line numbers, points, v per point


def _with_v(
    chunks: Iterator[tuple[Sequence[int], np.ndarray, np.ndarray | None]],
    default_v: Sequence[float] | None,
    m: int,
) -> Iterator[Chunk]:
    """Give every row its v: its own, else --v (or 1 for a single output)."""
    for lines, X, V in chunks:
        if V is None or np.isnan(V).any():
            missing = np.ones(len(lines), dtype=bool) if V is None else np.isnan(V).any(axis=1)
            if default_v is None:
                # a bad row like any other: the rows before it are still computed
                k = int(np.argmax(missing))
                if V is not None and k > 0:
                    yield lines[:k], X[:k], V[:k]
                raise InputError(
                    f"no v for the {m} outputs",
                    where=f"--points line {lines[k]}",
                    fix='pass --v, or v:NAME columns / a "v" key per row',
                )
            if V is None:
                V = np.empty((len(lines), m))
            V[missing] = np.asarray(default_v, dtype=np.float64)
        yield lines, X, V


def _next_chunk(chunks: Iterator[Chunk]) -> tuple[Chunk | None, InputError | None]:
    """The next chunk, or None at the end; a bad row's error is returned, to be raised once
    the chunk before it has been written."""
    try:
        return next(chunks), None
    except StopIteration:
        return None, None
    except InputError as exc:
        return None, exc


@dataclass
class SymbolicSide:
    """The reference for a chunk of points: `fast` evaluates v^T J in float64 with an
    error bound and the domain's boundary conditions (numeric.certified_vjp), or is None
    where no bound can be formed; `exact` is the single-point reference (30 digits, the
    exact domain walk) for one point, taken where `fast` cannot certify its value."""

    fast: Callable[[np.ndarray, np.ndarray], Any] | None
    compiled: bool
    exact: Callable[[np.ndarray, np.ndarray], tuple[tuple[float, ...], dict[Any, str]]]


def symbolic_side(program: lang.Program, problem: Problem) -> SymbolicSide:
    """V^T J for a chunk of points, certified point by point."""
    import sympy as sp

    from . import errorbound, numeric, symbolic

    built = symbolic.build(program, problem.shapes, problem.engine)
    jac = symbolic.jacobian(built.exprs, built.symbols)
    engine = problem.engine

    def exact(x: np.ndarray, v: np.ndarray) -> tuple[tuple[float, ...], dict[Any, str]]:
        return symbolic.vjp_at(program, problem.shapes, built, jac, engine,
                               [float(t) for t in x], [float(t) for t in v])  # fmt: skip

    def fast_side(
        lib: Any, b: Any, j: Any, compile: bool
    ) -> Callable[[np.ndarray, np.ndarray], Any] | None:
        bounds = errorbound.Bounds(lib)
        try:
            env = dict(zip(program.variables, b.symbols, strict=True))
            margins = errorbound.domain_margins(program, bounds, env)
        except errorbound.Uncertifiable:
            return None
        return numeric.certified_vjp(j, b.symbols, lib, margins, compile=compile)

    lib: Any = sp
    if engine == "symengine":
        import symengine as lib
    fast = fast_side(lib, built, jac, COMPILE)
    compiled = fast is not None and COMPILE
    if fast is None and engine != "sympy":  # the numpy walk reads SymPy trees
        sbuilt = symbolic.build(program, problem.shapes)
        fast = fast_side(sp, sbuilt, symbolic.jacobian(sbuilt.exprs, sbuilt.symbols), False)
        compiled = False
    elif fast is None:
        fast = fast_side(sp, built, jac, False)
        compiled = False
    return SymbolicSide(fast, compiled and fast is not None, exact)


def torch_side(
    program: lang.Program, problem: Problem
) -> Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """(V^T J, the outputs' values) per point from torch: the program run on batched leaf
    tensors, the real outputs stacked into y, and y.backward(V)."""
    import torch

    from . import autograd

    tdtype = autograd.DTYPES[problem.dtype]
    dev = autograd.device_of(problem.device)
    plan: dict[Any, Any] = {}  # how long sums group, and the constants: the same every chunk

    def side(X: np.ndarray, V: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        B = len(X)
        columns = np.ascontiguousarray(X.T)  # one transpose, then contiguous copies
        leaves = [torch.tensor(col, dtype=tdtype, device=dev, requires_grad=True)
                  for col in columns]  # fmt: skip
        outs = autograd.run(
            program,
            dict(zip(problem.variables, leaves, strict=True)),
            leaves[0],
            batch=True,
            plan=plan,
        )
        y = torch.stack([o.expand(B) for o in outs], dim=1)
        if y.requires_grad:
            # V column-major: the gradient each output receives is then a contiguous
            # column, and every backward op reads contiguous memory (6% faster; same values)
            y.backward(torch.tensor(V.T, dtype=tdtype, device=dev).T)
        grads = np.stack([leaf.grad.detach().to("cpu", torch.float64).numpy()
                          if leaf.grad is not None else np.zeros(B)
                          for leaf in leaves], axis=1)  # fmt: skip
        return grads, y.detach().to("cpu", torch.float64).numpy()

    return side


def run(
    program: lang.Program,
    problem: Problem,
    stream: IO[str],
    fixed_v: Sequence[float] | None,
    write: Callable[[bytes], None] | None,
    progress: Callable[..., None] | None = None,
) -> Summary:
    """Compute every point, writing one JSON line per point through `write` (if given; it
    takes a chunk's lines as ASCII bytes joined by newlines, without the last newline). A
    bad row's error is raised once every row before it has been written. `progress(points,
    position)` hears after each chunk how many points are done and how many bytes of the
    input have been read (-1: unknown)."""
    m = len(problem.outputs)
    default_v = list(fixed_v) if fixed_v is not None else ([1.0] if m == 1 else None)
    rows = read_chunks(stream, problem.variables, problem.outputs, CHUNK)
    counted = progress
    if progress is not None:

        def counted(points: int) -> None:  # with how far into the input the reader is
            progress(points, _position(stream))  # type: ignore[call-arg]

    return run_chunks(program, problem, _with_v(rows, default_v, m), write, counted)


def _position(stream: IO[Any]) -> int:
    """Bytes read of `stream` so far (-1 where it cannot say, as for a pipe)."""
    try:
        return int(stream.tell()) if stream.seekable() else -1
    except (OSError, ValueError, AttributeError):
        return -1


AHEAD = 4  # chunks read ahead at most: with the side process, memory stays a few chunks


@dataclass
class _Entry:
    """A chunk on its way through: where its torch side runs, and what is known so far."""

    chunk: Chunk
    at_child: bool = False  # submitted to the side process
    sym: Any = None  # V^T J from the symbolic side's fast path (numeric.Evaluated)
    tor: tuple[np.ndarray, np.ndarray] | None = None  # (V^T J, output values) from torch


def _keep_freed_memory() -> None:
    """Have glibc's malloc keep the memory of freed blocks for reuse. Each chunk allocates
    and frees the same few hundred tensors of 64 KB to 1 MB; by default blocks that large
    are mmap'ed and unmapped each time, so every chunk page-faults (and zeroes) its memory
    afresh: about 1,000 faults a chunk, 10 to 15% of the torch side's time. With these
    settings a chunk reuses the last one's pages (peak RSS is unchanged: the same blocks are
    live at once). Elsewhere (not glibc) nothing changes."""
    if sys.platform != "linux":
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return
    M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
    mallopt(M_MMAP_THRESHOLD, 64 << 20)  # blocks below 64 MiB come from the heap
    mallopt(M_TRIM_THRESHOLD, 256 << 20)  # the heap's top is returned beyond 256 MiB free
    mallopt(M_TOP_PAD, 16 << 20)


def run_chunks(
    program: lang.Program,
    problem: Problem,
    chunks: Iterator[Chunk],
    write: Callable[[bytes], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Summary:
    """`run` for chunks of at most CHUNK points already read: (line numbers, points, v's).

    When the first chunk is full (more are likely to follow) and two cores are free, the
    torch side runs in a forked side process (sidecar.py), kept fed with chunks while this
    process evaluates the symbolic side, reads ahead, judges and writes, in input order.
    While this process would wait for the side process, it does its own work for chunks
    read ahead (reading, the symbolic side), and only then the torch side of a chunk read
    ahead: the two processes share the torch work when reading is cheap."""
    check_supported(program, problem)  # before a row is read: `chunks` is lazy
    _keep_freed_memory()  # before the side process forks: it inherits the settings
    tor_vjp = torch_side(program, problem)
    n, m = len(problem.variables), len(problem.outputs)
    start = time.perf_counter()
    first, pending_error = _next_chunk(chunks)
    exhausted = first is None or pending_error is not None
    queue: deque[_Entry] = deque([_Entry(first)] if first is not None else [])
    helper: sidecar.Sidecar | None = None
    if first is not None and len(first[0]) == CHUNK and SIDECAR:
        if sidecar.available(problem.device):
            helper = sidecar.Sidecar(tor_vjp, CHUNK, n, m)
            helper.submit(first[1], first[2])  # torch starts on it ...
            queue[0].at_child = True

    def read_ahead() -> _Entry | None:
        nonlocal exhausted, pending_error
        if exhausted or len(queue) >= AHEAD:
            return None
        chunk, pending_error = _next_chunk(chunks)
        if chunk is None:
            exhausted = True
            return None
        queue.append(_Entry(chunk))
        return queue[-1]

    def untouched() -> list[_Entry]:  # read ahead, torch side not started
        return [e for e in queue if not e.at_child and e.tor is None]

    def feed(helper: sidecar.Sidecar) -> None:
        """Fill the side process's free slots, oldest chunk first (results come back in
        the order chunks were submitted)."""
        while helper.free():
            waiting = untouched()
            entry = waiting[0] if waiting else read_ahead()
            if entry is None:
                return
            helper.submit(entry.chunk[1], entry.chunk[2])
            entry.at_child = True

    here = 0  # chunks whose torch side ran in this process

    def meanwhile() -> bool:
        """One piece of this process's work while the side process is busy; False when
        there is none left."""
        nonlocal here
        todo = [e for e in queue if e.sym is None]
        if todo:
            todo[0].sym = sym_fast(todo[0].chunk[1], todo[0].chunk[2])
            return True
        if read_ahead() is not None:
            return True
        waiting = untouched()
        if waiting:  # the newest: older ones go to the side process as slots free up
            waiting[-1].tor = tor_vjp(waiting[-1].chunk[1], waiting[-1].chunk[2])
            here += 1
            return True
        # The input is read and nothing else is left here: rather than wait, take the last
        # chunk the side process has queued but not yet started (it works on the oldest).
        # Its result is then not collected (the side process is stopped at the end), so the
        # run ends when the side process finishes the one it is on, not the one after it.
        queued = [e for e in list(queue)[1:] if e.at_child and e.tor is None]
        if exhausted and queued and not any(e.at_child and e.tor is not None
                                            for e in queue):  # fmt: skip
            last = queued[-1]
            if last is queue[-1]:
                last.tor = tor_vjp(last.chunk[1], last.chunk[2])
                here += 1
                return True
        return False

    try:
        if helper is not None:
            feed(helper)  # every slot busy while the symbolic side is built
        reference = symbolic_side(program, problem)  # ... while this is built
        sym_fast = _fast_or_nothing(reference)
        summary = Summary(compiled=reference.compiled)
        first_done: float | None = None
        first_points = 0
        while queue:
            if helper is not None:
                feed(helper)
            head = queue[0]
            lines, X, V = head.chunk
            if head.sym is None:
                head.sym = sym_fast(X, V)
            if head.at_child and head.tor is None:
                assert helper is not None
                while not helper.ready() and meanwhile():
                    pass
                head.tor = helper.result()
            elif head.at_child:  # taken here while the side process worked (meanwhile):
                pass  # its result there, the last one queued, is never collected
            elif head.tor is None:
                head.tor = tor_vjp(X, V)
                here += 1
            queue.popleft()
            tor, _ = head.tor
            try:
                sides = _certify(summary, problem, reference, lines, X, V, head.sym, tor)
            except _BadRow as bad:
                _judge(summary, problem, bad.before, write)
                pending_error = bad.error
                break
            if not _judge(summary, problem, sides, write):
                break
            if progress is not None:
                progress(summary.points)
            if first_done is None:  # steady state: from here on, both sides are warm
                first_done, first_points = time.perf_counter(), summary.points
            if not queue:
                read_ahead()
    finally:
        if helper is not None:
            helper.close()
    end = time.perf_counter()
    summary.seconds = end - start
    if first_done is not None and summary.points > first_points:
        summary.steady = (summary.points - first_points) / max(end - first_done, 1e-9)
    summary.processes = 2 if helper is not None else 1
    summary.chunks_here = here if helper is not None else 0
    if pending_error is not None and not summary.truncated:
        raise pending_error
    return summary


class Sides(NamedTuple):
    """A chunk and what both sides computed for it."""

    lines: Sequence[int]  # input line numbers
    X: np.ndarray  # points x variables
    V: np.ndarray  # points x outputs: each point's v
    sym: np.ndarray  # points x variables: the reference V^T J (+-inf where beyond float64)
    tor: np.ndarray  # points x variables: the leaves' .grad after y.backward(V)
    exact: np.ndarray | None = None  # per point: True where the 30-digit path computed sym
    beyond: dict[int, dict[Any, str]] | None = None  # point -> entries beyond float64
    gap: np.ndarray | None = None  # |tor - sym| where _certify computed it already


KAPPA = 1e-3  # a fast value is kept when its error bound is below this share of the tolerance


def _fast_or_nothing(reference: SymbolicSide) -> Callable[[np.ndarray, np.ndarray], Any]:
    if reference.fast is not None:
        return reference.fast
    from . import numeric

    def nothing(X: np.ndarray, V: np.ndarray) -> Any:
        shape = (len(X), X.shape[1])
        return numeric.Evaluated(np.full(shape, np.nan), np.full(shape, np.inf),
                                 np.full(len(X), numeric.UNSURE))  # fmt: skip

    return nothing


def _certify(
    summary: Summary,
    problem: Problem,
    reference: SymbolicSide,
    lines: Sequence[int],
    X: np.ndarray,
    V: np.ndarray,
    fast: Any,
    tor: np.ndarray,
) -> Sides:
    """The reference for each point of a chunk: the fast value where its error bound is a
    small share of the tolerance (KAPPA) and cannot change the verdict, NaN where a domain
    condition certainly fails, and the single-point 30-digit reference everywhere else."""
    from . import numeric

    G, R, state = fast
    with np.errstate(all="ignore"):
        tol = problem.atol + problem.rtol * np.abs(G)
        small = (R <= KAPPA * tol).all(axis=1)
        # a difference within the error bound of the tolerance could go either way
        gap = np.abs(tor - G)
        edge = (np.abs(gap - tol) <= R * (1 + problem.rtol) + 1e-300).any(axis=1)
    keep = (state == numeric.CERTAIN) & small & ~edge
    undefined = state == numeric.UNDEFINED
    redo = np.flatnonzero(~keep & ~undefined)
    if not len(redo) and not undefined.any():  # the usual chunk: G as it is, gap reused
        summary_gap: np.ndarray | None = gap
        sym = G
    else:
        summary_gap = None
        sym = np.where(undefined[:, None], np.nan, G)
    exact = np.zeros(len(lines), dtype=bool)
    beyond: dict[int, dict[Any, str]] = {}
    for k in redo:
        try:
            values, big = reference.exact(X[k], V[k])
        except LimitError as exc:  # a bad row: the rows before it still come out
            summary.exact += int(np.count_nonzero(redo < k))
            cut = Sides(lines[:k], X[:k], V[:k], sym[:k], tor[:k], exact[:k],
                        {i: b for i, b in beyond.items() if i < k})  # fmt: skip
            raise _BadRow(cut, LimitError(exc.what, where=f"--points line {lines[k]}",
                                          fix=exc.fix)) from None  # fmt: skip
        sym[k] = values
        exact[k] = True
        if big:
            beyond[int(k)] = big
    summary.exact += len(redo)
    return Sides(lines, X, V, sym, tor, exact, beyond, summary_gap)


class _BadRow(Exception):
    """A point the reference refuses (a number too large to compute): the chunk's rows
    before it, and the error to raise once they are written."""

    def __init__(self, before: Sides, error: InputError) -> None:
        self.before, self.error = before, error


def _judge(
    summary: Summary,
    problem: Problem,
    sides: Sides,
    write: Callable[[bytes], None] | None,
) -> bool:
    """Compare a chunk's two sides, count it into `summary` and write its lines; False when
    the reader has gone away. The verdicts are compare.compare's, point by point: an entry
    whose reference is a number (within float64 or beyond it) disagrees unless torch is
    finite and close; one whose reference is NaN or +-inf (undefined there) is undefined."""
    lines, sym, tor = sides.lines, sides.sym, sides.tor
    with np.errstate(all="ignore"):  # NaN and inf entries are judged by `defined`
        gap = sides.gap if sides.gap is not None else np.abs(tor - sym)
        if not sides.beyond and np.isfinite(gap).all():  # the usual chunk: all finite
            close = gap <= problem.atol + problem.rtol * np.abs(sym)
            wrong = ~close.all(axis=1)
            undefined = np.zeros(len(lines), dtype=bool)
        else:
            big = np.zeros(sym.shape, dtype=bool)
            for k, entries in (sides.beyond or {}).items():
                for (j,) in entries:
                    big[k, j] = True
            defined = np.isfinite(sym)
            gap = np.where(defined, gap, 0.0)
            gap = np.where(defined & ~np.isfinite(tor), np.inf, gap)
            gap = np.where(big, np.inf, gap)
            close = gap <= problem.atol + problem.rtol * np.abs(np.where(defined, sym, 0.0))
            wrong = ((defined | big) & ~close).any(axis=1)
            undefined = (~defined & ~big).any(axis=1) & ~wrong
    agree = ~wrong & ~undefined
    diff = gap.max(axis=1) if gap.shape[1] else np.zeros(len(lines))
    summary.agree += int(agree.sum())
    summary.undefined += int(undefined.sum())
    summary.disagree += int(wrong.sum())
    summary.points += len(lines)
    finite_diff = np.isfinite(diff)
    if finite_diff.any():
        k = int(np.argmax(np.where(finite_diff, diff, -1.0)))
        if diff[k] >= summary.worst:
            summary.worst, summary.worst_line = float(diff[k]), lines[k]
    if write is None:
        return True
    status = np.where(agree, "agree", np.where(wrong, "disagree", "undefined"))
    try:
        write(_format_lines(problem, sides, diff, status))
    except BrokenPipeError:  # the reader went away (| head): stop quietly
        summary.truncated = True
        return False
    return True


def _format_lines(problem: Problem, sides: Sides, diff: np.ndarray, status: np.ndarray) -> bytes:
    """A chunk's JSON lines, joined by newlines: what `_line` gives, but the numbers of the
    whole chunk are formatted at once by orjson (shortest round-trip digits, as float repr
    has them; Python's repr costs about 0.4 us a number, 17 us a line here). Rows with a
    NaN or an infinity among the results go through `_line`, which writes them as strings."""
    import orjson

    lines, X, V, sym, tor = sides[:5]
    exact = sides.exact if sides.exact is not None else np.zeros(len(lines), dtype=bool)

    def columns(a: np.ndarray) -> list[bytes]:  # per row, its numbers joined by commas
        text = orjson.dumps(np.ascontiguousarray(a, dtype=np.float64),
                            option=orjson.OPT_SERIALIZE_NUMPY)  # fmt: skip
        return text[2:-2].split(b"],[")

    def values(a: np.ndarray) -> list[bytes]:
        text = orjson.dumps(np.ascontiguousarray(a, dtype=np.float64),
                            option=orjson.OPT_SERIALIZE_NUMPY)  # fmt: skip
        return text[1:-1].split(b",")

    point = b",".join(b"%s:%%s" % json.dumps(name).encode() for name in problem.variables)
    template = (
        b'{"line":%d,"point":{' + point + b'},"vjp":{"v":[%s],"sympy":[%s],"torch":[%s],'
        b'"max_abs_diff":%s,"agree":%s,"status":"%s","reference":"%s"},"agree":%s}'
    )
    plain = np.isfinite(sym).all(axis=1) & np.isfinite(tor).all(axis=1) & np.isfinite(diff)
    flags = [b"true" if st == "agree" else b"false" for st in status.tolist()]
    kinds = [REFERENCE[bool(e)].encode() for e in exact.tolist()]
    # json_number writes zeros as 0.0: -0.0 + 0.0 is +0.0
    rows = zip(lines, *[values(X[:, j]) for j in range(X.shape[1])], columns(V),
               columns(sym + 0.0), columns(tor + 0.0), values(diff + 0.0), flags,
               [st.encode() for st in status.tolist()], kinds, flags, strict=True)  # fmt: skip
    out = []
    beyond = sides.beyond or {}
    for k, row in enumerate(rows):
        if plain[k]:
            out.append(template % row)
        else:
            line = _line(lines[k], problem, X[k], V[k], sym[k], tor[k], float(diff[k]),
                         str(status[k]), bool(exact[k]), beyond.get(k, {}))  # fmt: skip
            out.append(line.encode())
    return b"\n".join(out)


REFERENCE = {False: "compiled, certified", True: "30-digit"}  # the "reference" of a line


def _line(
    line: int,
    problem: Problem,
    x: np.ndarray,
    v: np.ndarray,
    sym: np.ndarray,
    tor: np.ndarray,
    diff: float,
    status: str,
    exact: bool = False,
    beyond: dict[Any, str] | None = None,
) -> str:
    import orjson

    from .views.common import exact_values

    ref = exact_values([float(t) for t in sym], beyond or {})
    # orjson, as for the plain rows, so that every line writes its numbers the same way
    return orjson.dumps(
        {
            "line": line,
            "point": {name: float(val) for name, val in zip(problem.variables, x, strict=True)},
            "vjp": {
                "v": [float(t) for t in v],
                "sympy": [json_number(t) for t in ref],
                "torch": [json_number(t) for t in tor],
                "max_abs_diff": json_number(diff),
                "agree": status == "agree",
                "status": status,
                "reference": REFERENCE[exact],
            },
            "agree": status == "agree",
        }
    ).decode()
