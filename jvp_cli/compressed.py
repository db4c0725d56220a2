"""Torch's Jacobian by compressed evaluation: a few batched passes instead of one per row.

The sparsity pattern comes from the parse tree itself (which variables each output's tree
reaches), not from SymPy, so the torch side stays independent of the reference; for a
program of scalars it contains every entry torch can make nonzero (no gradient reaches a
leaf the output's graph does not contain). Rows that share no column in it (structurally
orthogonal rows) are given one color (sparse.row_coloring), and one reverse pass per color
takes the sum of their gradients: each column of that sum belongs to at most one of them,
so J is read back entry by entry. The passes run together, batched over the seeds
(`torch.autograd.grad(..., is_grads_batched=True)`). Where columns need fewer colors than
rows (a dense column), the same is done in forward mode (`torch.func.jvp` under
`torch.func.vmap`), n x colors.

Nothing is taken on trust:
- one more seed of random weights r goes with the batch; r^T J from torch is compared with
  r^T J from the recovered entries, so a torch nonzero outside the pattern (which would
  land in another row's entry) is caught, and then every row is taken on its own;
- a color whose product holds a NaN or inf (a 0 * inf of the zero seeds in another row's
  graph can make one) or a nonzero in a column none of its rows has is taken row by row,
  each row through its own output's graph, as the uncompressed method does;
- the recovered J is compared entry by entry with the reference, like any other.
Programs with tensors (no element-level pattern here) take one pass per output element,
batched in chunks of identity seeds, one output at a time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import lang, sparse
from .sparse import Sparse

CHUNK_ENTRIES = 4_000_000  # entries of one batch of dense gradient rows (32 MB of float64)


@dataclass(frozen=True)
class Compressed:
    jacobian: Sparse  # torch's entries (the pattern's, and any other nonzero it found)
    passes: int  # products that made J: one per color, plus rows taken on their own
    mode: str  # "reverse" | "forward" | "rows" (one pass per output element)
    colors: int  # colors of the coloring (0 without one)
    check_passes: int = 0  # the random-weight pass batched with them


def _grads(
    y: torch.Tensor, leaves: Sequence[torch.Tensor], seeds: torch.Tensor, batched: bool
) -> np.ndarray:
    """Seeds^T J for a batch of seeds (k x len(y)): k x n float64."""
    k = seeds.shape[0] if batched else 1
    grads = torch.autograd.grad(
        y,
        leaves,
        grad_outputs=seeds,
        retain_graph=True,
        allow_unused=True,
        is_grads_batched=batched,
    )
    parts = [
        (
            g.detach().reshape(k, -1)
            if g is not None
            else torch.zeros((k, leaf.numel()), dtype=leaf.dtype, device=leaf.device)
        )
        for g, leaf in zip(grads, leaves, strict=True)
    ]
    return torch.cat(parts, dim=1).to("cpu", torch.float64).numpy()


def _own_rows(
    outs: Sequence[torch.Tensor], leaves: Sequence[torch.Tensor], rows: Sequence[int], n: int
) -> dict[int, np.ndarray]:
    """Rows of J one at a time, each through its own output's graph (as the uncompressed
    method): flat row index -> dense row."""
    starts = np.cumsum([0] + [o.numel() for o in outs])
    out: dict[int, np.ndarray] = {}
    for i in rows:
        o = int(np.searchsorted(starts, i, side="right")) - 1
        flat = outs[o].reshape(-1)
        if not flat.requires_grad:
            out[i] = np.zeros(n)
            continue
        g = _grads(
            flat[i - starts[o]], leaves, torch.ones((), dtype=flat.dtype, device=flat.device), False
        )
        out[i] = g[0]
    return out


def _rows_by_identity(
    outs: Sequence[torch.Tensor], leaves: Sequence[torch.Tensor], n: int
) -> tuple[list[int], list[int], list[float], int]:
    """Every row of J, one pass per output element, batched in chunks of identity seeds,
    one output at a time: COO triples of the nonzeros, and the passes."""
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    base = passes = 0
    chunk = max(1, CHUNK_ENTRIES // max(n, 1))
    for out in outs:
        size = out.numel()
        if out.requires_grad:
            for a in range(0, size, chunk):
                b = min(size, a + chunk)
                seeds = torch.zeros((b - a, size), dtype=out.dtype, device=out.device)
                seeds[torch.arange(b - a), torch.arange(a, b)] = 1
                seeds = seeds.reshape((b - a, *out.shape))
                G = _grads(out, leaves, seeds, True)
                r, c = np.nonzero(G != 0)  # NaN != 0: kept
                rows.extend((r + base + a).tolist())
                cols.extend(c.tolist())
                vals.extend(G[r, c].tolist())
                passes += b - a
        base += size
    return rows, cols, vals, passes


def _agrees(got: np.ndarray, est: np.ndarray, scale: np.ndarray, dtype: torch.dtype) -> bool:
    """Whether r^T J by torch matches the recovered entries' r^T J to rounding."""
    tol = 1e-9 if dtype == torch.float64 else 1e-4
    finite = np.isfinite(got) & np.isfinite(est) & np.isfinite(scale)
    if not np.array_equal(np.isfinite(got), np.isfinite(est)):
        return False
    return bool(np.all(np.abs(got[finite] - est[finite]) <= tol * scale[finite] + 1e-300))


def reverse(
    outs: Sequence[torch.Tensor],
    leaves: Sequence[torch.Tensor],
    pattern: Sparse | None,
    colors: Sequence[int] | None = None,
) -> Compressed:
    """J by colored reverse passes over `pattern` (rows of one color structurally
    orthogonal), batched; by identity seeds where there is no pattern or coloring."""
    m, n = (
        pattern.shape
        if pattern is not None
        else (sum(o.numel() for o in outs), sum(x.numel() for x in leaves))
    )
    if pattern is not None and colors is None:
        colors = sparse.row_coloring(pattern)
    if pattern is None or colors is None:
        r, c, v, passes = _rows_by_identity(outs, leaves, n)
        return Compressed(sparse.from_coo((m, n), r, c, v), passes, "rows", 0)
    live = [o.reshape(-1) for o in outs]
    if m == 0 or not any(o.requires_grad for o in live):
        return Compressed(sparse.from_rows([{} for _ in range(m)], n), 0, "reverse", 0)
    y = torch.cat(live)
    dtype, device = y.dtype, y.device
    k = max(colors, default=-1) + 1
    color = np.asarray(colors, dtype=np.int64)
    weights = np.random.default_rng(0).uniform(1.0, 2.0, m)
    seeds = np.zeros((k + 1, m))
    seeds[color, np.arange(m)] = 1.0
    seeds[k] = weights
    G = _grads(y, leaves, torch.tensor(seeds, dtype=dtype, device=device), True)
    er = np.frombuffer(pattern.rows_of_entries(), dtype=np.int64)
    ec = np.frombuffer(pattern.indices, dtype=np.int64)
    claimed = np.zeros((k, n), dtype=bool)
    claimed[color[er], ec] = True
    # A NaN or inf in a color's product: its owner (the one row of the color with that
    # column) is taken on its own, through its own graph: a zero seed times an infinite
    # local derivative in another row's graph (0 * inf) makes NaNs there, and only in the
    # columns that row reaches. A finite nonzero in a column no row of the color has
    # means the pattern is wrong: every row of that color on its own.
    bad = ~np.isfinite(G[:k])
    owner = np.full((k, n), -1, dtype=np.int64)
    owner[color[er], ec] = er
    own = set(owner[bad & claimed].tolist())
    stray = ((G[:k] != 0) & np.isfinite(G[:k]) & ~claimed).any(axis=1)
    own.update(i for i in range(m) if stray[color[i]])
    values = G[color[er], ec]
    own_rows = sorted(own)
    rows_t, cols_t, vals_t = er, ec, values
    if own_rows:
        rows_t, cols_t, vals_t = _merge_own(er, ec, values, _own_rows(outs, leaves, own_rows, n))
    # r^T J of the recovered entries against torch's own r^T J: a nonzero outside the
    # pattern would have been added to another row's entry
    est = np.bincount(cols_t, weights=weights[rows_t] * vals_t, minlength=n)
    scale = np.bincount(cols_t, weights=np.abs(weights[rows_t] * vals_t), minlength=n)
    passes = k + len(own_rows)
    if not _agrees(G[k], est, scale, dtype):
        rows_t, cols_t, vals_t = _merge_own(
            er[:0], ec[:0], values[:0], _own_rows(outs, leaves, range(m), n)
        )
        passes = k + m
    J = sparse.from_coo((m, n), rows_t.tolist(), cols_t.tolist(), vals_t.tolist())
    return Compressed(J, passes, "reverse", k, 1)


def _merge_own(
    er: np.ndarray, ec: np.ndarray, values: np.ndarray, own: dict[int, np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The recovered entries, with the rows taken on their own replaced by all of their
    nonzeros (off the pattern too)."""
    if not own:
        return er, ec, values
    keep = ~np.isin(er, np.fromiter(own, dtype=np.int64))
    rs, cs, vs = [er[keep]], [ec[keep]], [values[keep]]
    for i, row in own.items():
        nz = np.nonzero(row != 0)[0]
        rs.append(np.full(len(nz), i, dtype=np.int64))
        cs.append(nz.astype(np.int64))
        vs.append(row[nz])
    return np.concatenate(rs), np.concatenate(cs), np.concatenate(vs)


def forward(
    program: lang.Program,
    point_leaves: Sequence[torch.Tensor],
    pattern: Sparse,
    colors: Sequence[int],
) -> Compressed | None:
    """J by colored forward passes (columns of one color share no row): J U for the seed
    matrix U, under vmap(jvp). None where anything is doubtful (a NaN or inf in a product, a
    nonzero off the pattern, a random-weight check that fails, an op functorch cannot
    batch): the caller then takes the reverse passes."""
    from . import autograd

    m, n = pattern.shape
    k = max(colors, default=-1) + 1
    primals = tuple(x.detach() for x in point_leaves)
    like = primals[0]
    color = np.asarray(colors, dtype=np.int64)
    weights = np.random.default_rng(1).uniform(1.0, 2.0, n)
    seeds = np.zeros((k + 1, n))
    seeds[color, np.arange(n)] = 1.0
    seeds[k] = weights
    T = torch.tensor(seeds, dtype=like.dtype, device=like.device)
    sizes = [x.numel() for x in primals]

    def f(*xs: torch.Tensor) -> torch.Tensor:
        inputs = dict(zip(program.variables, xs, strict=True))
        outs = autograd.run(program, inputs, xs[0])
        return torch.cat([torch.as_tensor(o, dtype=like.dtype).reshape(-1) for o in outs])

    def column(t: torch.Tensor) -> torch.Tensor:
        tangents = tuple(
            p.reshape(x.shape) for p, x in zip(torch.split(t, sizes), primals, strict=True)
        )
        return torch.func.jvp(f, primals, tangents)[1]

    try:
        G = torch.func.vmap(column)(T).to("cpu", torch.float64).numpy()  # (k + 1) x m
    except (RuntimeError, NotImplementedError, TypeError):
        return None
    er = np.frombuffer(pattern.rows_of_entries(), dtype=np.int64)
    ec = np.frombuffer(pattern.indices, dtype=np.int64)
    claimed = np.zeros((k, m), dtype=bool)
    claimed[color[ec], er] = True
    if (~np.isfinite(G)).any() or ((G[:k] != 0) & ~claimed).any():
        return None
    values = G[color[ec], er]
    est = np.bincount(er, weights=weights[ec] * values, minlength=m)
    scale = np.bincount(er, weights=np.abs(weights[ec] * values), minlength=m)
    if not _agrees(G[k], est, scale, like.dtype):
        return None
    J = sparse.from_coo((m, n), er.tolist(), ec.tolist(), values.tolist())
    return Compressed(J, k, "forward", k, 1)


def jacobian(
    program: lang.Program,
    outs: Sequence[torch.Tensor],
    leaves: Sequence[torch.Tensor],
    pattern: Sparse | None = None,
) -> Compressed:
    """Torch's Jacobian, by the cheaper of colored reverse and colored forward passes (the
    pattern: the program's own, unless a test gives one)."""
    n = sum(x.numel() for x in leaves)
    if pattern is None and all(x.dim() == 0 for x in leaves) and all(o.dim() == 0 for o in outs):
        pattern = sparse.dependency_pattern(program, n)
    if pattern is None:
        return reverse(outs, leaves, None)
    rows = sparse.row_coloring(pattern)
    cols = sparse.column_coloring(pattern)
    k_rows = math.inf if rows is None else max(rows, default=-1) + 1
    k_cols = math.inf if cols is None else max(cols, default=-1) + 1
    if cols is not None and k_cols < k_rows and k_cols < pattern.shape[0]:
        got = forward(program, leaves, pattern, cols)
        if got is not None:
            return got
    return reverse(outs, leaves, pattern, rows)


def as_float_rows(J: Sparse) -> Any:
    """What AutogradResult.jacobian holds for callers of the dense form."""
    return J.view()
