"""Sparse Jacobians: the nonzeros only, from the symbolic Jacobian to the output.

A `Sparse` matrix holds the entries of a pattern in compressed-row form (CSR: `indptr`,
`indices`, one value per entry); every entry outside the pattern is `fill` (0.0 for
numbers, "0" for text), except in `nan_rows`, rows whose every entry is NaN (a function
undefined at the point: every partial derivative of it is undefined). Memory and time are
proportional to the nonzeros plus the rows.

Callers that read a Jacobian as nested tuples (`report.symbolic.jacobian`,
`report.autograd.jacobian`, `jacobian_text`) keep working: small matrices are still handed
out as tuples, big ones as a `DenseView`, a read-only sequence of rows that densifies one
row when it is read (never the whole matrix at once).

Also here: the coloring of the rows (or columns) of a pattern for compressed evaluation
(structurally orthogonal rows share one backward pass, as ADOL-C's `sparse_jac` does) and
the recovery of J from the compressed products. Pure Python and numpy: no torch, no SymPy.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

# Matrices with at most this many entries are handed out as dense tuples (as before) and
# written to JSON in the dense form; bigger ones as views and COO.
DENSE_ENTRIES = 10_000


def _ints(values: Iterable[int]) -> array:
    return array("q", values)


@dataclass(frozen=True, eq=False)
class Sparse:
    """An m x n matrix: the entries of a CSR pattern, `fill` elsewhere, NaN in `nan_rows`."""

    shape: tuple[int, int]
    indptr: array  # m + 1 offsets into indices/values
    indices: array  # column of each stored entry, ascending within a row
    values: Sequence[Any]  # one per stored entry
    fill: Any = 0.0
    nan_rows: frozenset[int] = field(default_factory=frozenset)
    nan: Any = math.nan  # every entry of a row in nan_rows

    @property
    def nnz(self) -> int:
        return len(self.indices)

    def row(self, i: int) -> tuple[array, Sequence[Any]]:
        """Row i's stored columns and values."""
        a, b = self.indptr[i], self.indptr[i + 1]
        return self.indices[a:b], self.values[a:b]

    def row_dict(self, i: int) -> dict[int, Any]:
        cols, vals = self.row(i)
        return dict(zip(cols, vals, strict=True))

    def dense_row(self, i: int) -> tuple[Any, ...]:
        n = self.shape[1]
        if i in self.nan_rows:
            return (self.nan,) * n
        out = [self.fill] * n
        cols, vals = self.row(i)
        for j, x in zip(cols, vals, strict=True):
            out[j] = x
        return tuple(out)

    def get(self, i: int, j: int) -> Any:
        if i in self.nan_rows:
            return self.nan
        a, b = self.indptr[i], self.indptr[i + 1]
        k = _find(self.indices, j, a, b)
        return self.fill if k is None else self.values[k]

    def entries(self) -> Iterator[tuple[int, int, Any]]:
        """(i, j, value) of every stored entry, row-major."""
        ptr, idx, vals = self.indptr, self.indices, self.values
        for i in range(self.shape[0]):
            for k in range(ptr[i], ptr[i + 1]):
                yield i, idx[k], vals[k]

    def rows_of_entries(self) -> array:
        """The row of each stored entry (the COO row indices)."""
        out = array("q")
        ptr = self.indptr
        for i in range(self.shape[0]):
            out.extend([i] * (ptr[i + 1] - ptr[i]))
        return out

    def dense(self) -> tuple[tuple[Any, ...], ...]:
        return tuple(self.dense_row(i) for i in range(self.shape[0]))

    def view(self) -> Any:
        """What callers of the dense API get: tuples when small, else a DenseView."""
        m, n = self.shape
        return self.dense() if m * n <= DENSE_ENTRIES else DenseView(self)

    def map(self, fn: Any, fill: Any = None, values: Sequence[Any] | None = None) -> Sparse:
        """The same pattern, each stored value (or each of `values`) through `fn`; the fill
        and the NaN of nan_rows through it too unless `fill` is given."""
        vals = self.values if values is None else values
        return Sparse(
            self.shape,
            self.indptr,
            self.indices,
            [fn(x) for x in vals],
            fn(self.fill) if fill is None else fill,
            self.nan_rows,
            fn(self.nan) if self.nan_rows else self.nan,
        )


def _find(indices: Sequence[int], j: int, lo: int, hi: int) -> int | None:
    """Position of column j in indices[lo:hi] (ascending), by bisection."""
    k = bisect_left(indices, j, lo, hi)
    return k if k < hi and indices[k] == j else None


def from_rows(
    rows: Sequence[dict[int, Any]], n: int, fill: Any = 0.0, nan_rows: Iterable[int] = ()
) -> Sparse:
    """From one {column: value} dict per row."""
    indptr = array("q", [0])
    indices = array("q")
    values: list[Any] = []
    for row in rows:
        cols = sorted(row)
        indices.extend(cols)
        values.extend(row[j] for j in cols)
        indptr.append(len(indices))
    return Sparse((len(rows), n), indptr, indices, values, fill, frozenset(nan_rows))


def from_coo(
    shape: tuple[int, int],
    rows: Sequence[int],
    cols: Sequence[int],
    values: Sequence[Any],
    fill: Any = 0.0,
) -> Sparse:
    """From (row, column, value) triples in any order (no duplicates)."""
    order = sorted(range(len(rows)), key=lambda k: (rows[k], cols[k]))
    indptr = array("q", [0] * (shape[0] + 1))
    for i in rows:
        indptr[i + 1] += 1
    for i in range(shape[0]):
        indptr[i + 1] += indptr[i]
    return Sparse(shape, indptr, _ints(cols[k] for k in order), [values[k] for k in order], fill)


def from_dense(matrix: Sequence[Sequence[Any]], fill: Any = 0.0) -> Sparse:
    """A dense matrix's entries other than `fill` (NaN is stored: NaN != 0)."""
    rows = [{j: x for j, x in enumerate(r) if not (x == fill)} for r in matrix]
    n = len(matrix[0]) if len(matrix) else 0
    return from_rows(rows, n, fill)


def as_sparse(matrix: Any) -> Sparse:
    """A Sparse for whatever a Jacobian was given as: a Sparse, a DenseView, nested tuples."""
    if isinstance(matrix, Sparse):
        return matrix
    if isinstance(matrix, DenseView):
        return matrix.sparse
    return from_dense(matrix)


class DenseView(Sequence[tuple[Any, ...]]):
    """A big Sparse read as a sequence of dense rows, each made when it is read (the last
    few are kept): for callers of the dense API. Compares equal to equal nested sequences."""

    def __init__(self, sparse: Sparse) -> None:
        self.sparse = sparse
        self._row = lru_cache(maxsize=64)(sparse.dense_row)

    def __reduce__(self) -> tuple[Any, ...]:  # the cache stays behind (a forked child's result)
        return (DenseView, (self.sparse,))

    def __len__(self) -> int:
        return self.sparse.shape[0]

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._row(k) for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._row(i)

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        for i in range(len(self)):
            yield self.sparse.dense_row(i)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Sequence) or len(other) != len(self):
            return False
        return all(tuple(a) == tuple(b) for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        m, n = self.sparse.shape
        return f"DenseView({m} x {n}, {self.sparse.nnz} stored)"


_PATTERNS: dict[int, tuple[Any, int, Sparse | None]] = {}  # id -> (program, n, pattern)


def dependency_pattern(program: Any, n: int) -> Sparse | None:
    """For a program of scalars: the variables each output's tree reaches (through the
    statements it uses). None where tensors are involved. Kept for the last programs (the
    limit check and the torch side ask for the same one)."""
    from . import lang

    if program.tensor_ops:
        return None
    got = _PATTERNS.get(id(program))
    if got is not None and got[0] is program and got[1] == n:
        return got[2]
    index = {v: k for k, v in enumerate(program.variables)}
    deps: dict[str, frozenset[int]] = {}
    Name, Chain, Num, Const = lang.Name, lang.Chain, lang.Num, lang.Const

    def reach(node: Any) -> frozenset[int]:
        found: set[int] = set()
        stack = [node]
        while stack:
            x = stack.pop()
            kind = type(x)
            if kind is Name:
                if x.id in deps:
                    found |= deps[x.id]
                elif x.id in index:
                    found.add(index[x.id])
            elif kind is Chain:
                stack.append(x.first)
                stack.extend(t for _, t in x.rest)
            elif kind is not Num and kind is not Const:
                stack.extend(lang.children(x))
        return frozenset(found)

    for name, node in program.definitions:
        deps[name] = reach(node)
    rows = []
    for name, node in program.computed():
        cols = deps[name] if name is not None else reach(node)
        rows.append(dict.fromkeys(cols, 1.0))
    pattern = from_rows(rows, n)
    if len(_PATTERNS) > 2:
        _PATTERNS.clear()
    _PATTERNS[id(program)] = (program, n, pattern)
    return pattern


def structural_nonzeros(program: Any, var_shapes: Iterable[tuple[int, ...]]) -> int | None:
    """An upper bound of J's nonzeros known before any engine runs: for a program of scalars,
    the entries of its dependency pattern; None where tensors are involved."""
    shapes = list(var_shapes)
    if program.tensor_ops or any(shapes):
        return None
    pattern = dependency_pattern(program, len(shapes))
    return None if pattern is None else pattern.nnz


# ---- coloring -----------------------------------------------------------------------------

# Conflict-graph edges beyond which no coloring is tried (a dense column makes every row
# conflict with every other: one pass per row, batched, is as good and costs no graph).
MAX_EDGES = 2_000_000


def columns_of(pattern: Sparse) -> list[list[int]]:
    """For each column, the rows that have it."""
    cols: list[list[int]] = [[] for _ in range(pattern.shape[1])]
    for i, j, _ in pattern.entries():
        cols[j].append(i)
    return cols


def conflict_edges(groups: Sequence[Sequence[int]]) -> int:
    """Edges of the intersection graph an upper bound: pairs inside each group."""
    return sum(len(g) * (len(g) - 1) // 2 for g in groups)


def greedy_coloring(
    members: Sequence[Sequence[int]], groups: Sequence[Sequence[int]], count: int
) -> list[int] | None:
    """Color `count` items (rows) so that two items sharing a group (a column) differ: the
    greedy distance-2 coloring of the bipartite graph (Coleman and More's sequential
    coloring, largest degree first), which is the greedy coloring of the intersection
    graph without building it. None where that graph would exceed MAX_EDGES.
    `members[i]`: the groups of item i; `groups[g]`: the items of group g.

    networkx's greedy_color on the intersection graph gives the same colorings; at Broyden
    n = 10,000 it took 0.44 s for the two colorings plus 0.6 s to import, this 0.1 s."""
    if conflict_edges(groups) > MAX_EDGES:
        return None
    sizes = [len(g) for g in groups]
    degree = [sum(sizes[g] for g in members[i]) for i in range(count)]
    order = sorted(range(count), key=lambda i: -degree[i])
    colors = [-1] * count
    mark = [-1] * (count + 1)  # mark[c] == i: color c is taken by a neighbour of item i
    for i in order:
        for g in members[i]:
            for other in groups[g]:
                c = colors[other]
                if c >= 0:
                    mark[c] = i
        c = 0
        while mark[c] == i:
            c += 1
        colors[i] = c
    return colors


def row_coloring(pattern: Sparse) -> list[int] | None:
    """Colors of the rows: rows of one color share no column (structurally orthogonal)."""
    m = pattern.shape[0]
    members = [list(pattern.row(i)[0]) for i in range(m)]
    return greedy_coloring(members, columns_of(pattern), m)


def column_coloring(pattern: Sparse) -> list[int] | None:
    """Colors of the columns: columns of one color share no row (for forward mode)."""
    cols = columns_of(pattern)
    rows = [list(pattern.row(i)[0]) for i in range(pattern.shape[0])]
    return greedy_coloring(cols, rows, pattern.shape[1])


def check_coloring(pattern: Sparse, colors: Sequence[int], by_rows: bool) -> None:
    """AssertionError unless no two rows (columns) of one color share a column (row)."""
    seen: dict[tuple[int, int], int] = {}
    for i, j, _ in pattern.entries():
        item, other = (i, j) if by_rows else (j, i)
        key = (colors[item], other)
        assert seen.setdefault(key, item) == item, f"{item} and {seen[key]} clash"
