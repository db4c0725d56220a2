"""Shape inference: the shape of every statement, from the variables' shapes, before any engine
runs. Broadcasting, matrix products, reductions, indexing and reshape follow torch's rules;
an error names both shapes and the column of the operator, as torch's messages name sizes.

Pure Python (no numpy, SymPy or torch), so shape errors are as fast as syntax errors.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from . import lang
from .model import InputError, LimitError

Shape = tuple[int, ...]

MAX_ELEMENTS = 100_000  # elements of any one intermediate tensor
MAX_DIMS = 16  # dimensions of any one tensor (numpy allows 64, torch 32)
# entries of the Jacobian, and factors of prod's derivatives: a dense 2,000 x 2,000 is 32 MB
# of float64 per copy on the torch side, and one expression per entry on the reference's
MAX_JACOBIAN_ENTRIES = 4_000_000
# A program of scalars is sparse end to end (sparse.py, compressed.py): what it costs is its
# structural nonzeros (a SymPy derivative, a 30-digit value and a comparison each; the
# torch side a few batched passes), not rows x columns. Broyden's n = 10,000 has 29,998 and
# takes seconds. The bound is the dense one's (nothing accepted before is refused); time
# beyond that is --timeout's to bound.
MAX_NONZEROS = MAX_JACOBIAN_ENTRIES
# Reductions with no value over nothing: an empty sum is 0 and an empty product 1, but the
# max, min, mean, logsumexp or softmax of no elements is undefined.
NO_EMPTY = {
    "max": "the max of no elements is undefined",
    "min": "the min of no elements is undefined",
    "mean": "the mean of no elements is 0/0",
    "logsumexp": "logsumexp of no elements is log(0)",
    "softmax": "softmax over no elements is undefined",
}


def check_jacobian_size(
    var_shapes: Iterable[Shape], out_shapes: Iterable[Shape], nonzeros: int | None = None
) -> None:
    """Refuse a Jacobian with more entries than the limit: both
    sides form it whole (torch's rows x columns tensor, the reference's dense lists and its
    entries one expression each), so its entry count, not the size of any one tensor, is
    what a run costs. `x` with 100,000 elements is within the tensor limit, but its
    Jacobian has 10^10 entries."""
    rows = sum(math.prod(s) for s in out_shapes)
    cols = sum(math.prod(s) for s in var_shapes)
    if nonzeros is not None:  # a program of scalars: its structural nonzeros (at most)
        if nonzeros > MAX_NONZEROS:
            raise LimitError(
                f"the Jacobian has {rows:,} x {cols:,} = {_count(rows * cols)} entries, "
                f"{nonzeros:,} of them structurally nonzero; the limit is {MAX_NONZEROS:,} "
                "nonzeros",
                where="the functions",
                fix="use fewer variables per function, or split the problem",
            )
        return
    if rows * cols > MAX_JACOBIAN_ENTRIES:
        raise LimitError(
            f"the Jacobian has {rows:,} x {cols:,} = {_count(rows * cols)} entries; "
            f"the limit is {MAX_JACOBIAN_ENTRIES:,}",
            where="the functions",
            fix="use fewer or smaller variables or outputs, or split the problem",
        )


def _count(n: int) -> str:
    """12,000,000 as is; from 10^9 in scientific notation (1e10, 2.5e11)."""
    if n < 10**9:
        return f"{n:,}"
    mantissa, exponent = f"{n:.3g}".split("e")
    return f"{mantissa}e{int(exponent)}"


def fmt(shape: Shape) -> str:
    return "scalar" if not shape else "(" + ", ".join(str(d) for d in shape) + ")"


class _Inference:
    def __init__(self, program: lang.Program, shapes: dict[str, Shape]) -> None:
        self.program = program
        self.env: dict[str, Shape] = dict(shapes)

    def error(self, node: lang.Node, what: str, fix: str | None = None) -> InputError:
        return InputError(
            what,
            where="the functions",
            source=self.program.source,
            pos=getattr(node, "pos", None),
            fix=fix,
        )

    def broadcast(self, node: lang.Node, a: Shape, b: Shape, op: str) -> Shape:
        out = []
        for i in range(1, max(len(a), len(b)) + 1):
            da = a[-i] if i <= len(a) else 1
            db = b[-i] if i <= len(b) else 1
            if da != db and 1 not in (da, db):
                raise self.error(
                    node,
                    f"shapes {fmt(a)} and {fmt(b)} do not broadcast for '{op}' (size {da} vs "
                    f"{db} at dimension {-i})",
                    fix="use shapes that match or are 1 where they differ",
                )
            out.append(max(da, db) if 1 in (da, db) else da)
        return tuple(reversed(out))

    def matmul(self, node: lang.Node, a: Shape, b: Shape) -> Shape:
        if not a or not b:
            raise self.error(
                node,
                f"'@' needs tensors, got {fmt(a)} @ {fmt(b)}",
                fix="use * to multiply by a scalar",
            )
        if len(a) > 2 or len(b) > 2:
            raise self.error(node, f"'@' takes 1-D or 2-D tensors, got {fmt(a)} @ {fmt(b)}")
        inner_a = a[-1]
        inner_b = b[0]
        if inner_a != inner_b:
            raise self.error(
                node,
                f"shapes {fmt(a)} and {fmt(b)} cannot be multiplied with '@' ({inner_a} != "
                f"{inner_b})",
                fix="the last size of the left operand must equal the first of the right",
            )
        return a[:-1] + b[1:]

    def dim(self, node: lang.Node, arg: lang.Node, shape: Shape, func: str) -> int:
        d = lang.const_int(arg)
        if d is None:
            raise self.error(
                arg,
                f"the dimension of {func}(...) must be a constant integer",
                fix=f"e.g. {func}(x, 0)",
            )
        if not shape:
            raise self.error(
                node,
                f"{func}(..., {d}): a scalar has no dimension {d}",
                fix=f"use {func}(x) or pass a tensor",
            )
        if not -len(shape) <= d < len(shape):
            raise self.error(
                arg,
                f"dimension {d} is out of range for shape {fmt(shape)}",
                fix=f"use a dimension from {-len(shape)} to {len(shape) - 1}",
            )
        return d % len(shape)

    def check_size(self, node: lang.Node, shape: Shape) -> Shape:
        if len(shape) > MAX_DIMS:
            raise self.error(
                node, f"a tensor of {len(shape)} dimensions (limit {MAX_DIMS})", fix="reshape it"
            )
        if math.prod(shape) > MAX_ELEMENTS:
            raise self.error(
                node, f"a tensor of shape {fmt(shape)} has more than {MAX_ELEMENTS:,} elements"
            )
        return shape

    def leaf(self, node: lang.Node) -> Shape:
        if isinstance(node, lang.Name):
            return self.env[node.id]
        return ()

    def combine(self, n: lang.Node, args: list[Shape]) -> Shape:
        if isinstance(n, lang.Neg):
            return args[0]
        if isinstance(n, lang.Chain):
            shape = args[0]
            for (op, _), s in zip(n.rest, args[1:], strict=True):
                shape = self.matmul(n, shape, s) if op == "@" else self.broadcast(n, shape, s, op)
            return self.check_size(n, shape)
        if isinstance(n, lang.Pow):
            return self.check_size(n, self.broadcast(n, args[0], args[1], "**"))
        if isinstance(n, lang.Transpose):
            if len(args[0]) > 2:
                raise self.error(
                    n, f".T needs at most 2 dimensions, got {fmt(args[0])}", fix="use reshape(...)"
                )
            return tuple(reversed(args[0]))
        if isinstance(n, lang.Index):
            return self.index(n, args[0])
        if isinstance(n, lang.Call):
            return self.call(n, args)
        raise AssertionError(n)

    def index(self, n: lang.Index, shape: Shape) -> Shape:
        if len(n.items) > len(shape):
            raise self.error(
                n,
                f"too many indices ({len(n.items)}) for shape {fmt(shape)}",
                fix="index each dimension at most once",
            )
        out: list[int] = []
        for axis, item in enumerate(n.items):
            size = shape[axis]
            if isinstance(item, int):
                if not -size <= item < size:
                    raise self.error(
                        n, f"index {item} is out of range for dimension {axis} of size {size}"
                    )
            else:
                out.append(len(range(size)[slice(item.start, item.stop, item.step)]))
        return tuple(out) + shape[len(n.items) :]

    def call(self, n: lang.Call, args: list[Shape]) -> Shape:
        f = n.func
        if f in lang.ELEMENTWISE:
            shape = args[0]
            for s in args[1:]:
                shape = self.broadcast(n, shape, s, f)
            return shape
        x = args[0]
        if f in ("sum", "mean", "prod", "max", "min", "logsumexp"):
            if len(n.args) == 1:
                self.not_empty(n, x, math.prod(x))
                self.product(n, 1, math.prod(x))
                return ()
            d = self.dim(n, n.args[1], x, f)
            self.not_empty(n, x, x[d])
            self.product(n, math.prod(x) // x[d] if x[d] else 0, x[d])
            return x[:d] + x[d + 1 :]
        if f == "softmax":
            if not x:
                raise self.error(n, "softmax needs a tensor, got a scalar")
            d = self.dim(n, n.args[1], x, f) if len(n.args) == 2 else len(x) - 1
            self.not_empty(n, x, x[d])
            return x
        if f == "norm":
            return ()
        if f == "dot":
            a, b = args
            if len(a) != 1 or len(b) != 1 or a != b:
                raise self.error(
                    n,
                    f"dot needs two 1-D tensors of the same size, got {fmt(a)} and {fmt(b)}",
                    fix="use @ or sum(a*b)",
                )
            return ()
        if f == "reshape":
            return self.reshape(n, x)
        raise AssertionError(f)

    def not_empty(self, n: lang.Call, shape: Shape, reduced: int) -> None:
        """Refuse max/min/mean/logsumexp/softmax over an empty extent (`reduced` elements
        per lane), e.g. max(x[2:1])."""
        if reduced == 0 and n.func in NO_EMPTY:
            raise self.error(
                n,
                f"{n.func}(...) reduces an empty tensor of shape {fmt(shape)}: {NO_EMPTY[n.func]}",
                fix="check the slice bounds (an empty sum is 0, an empty product 1)",
            )

    def product(self, n: lang.Call, lanes: int, k: int) -> None:
        """prod of k factors per lane: each of its k partial derivatives is a product of the
        k - 1 others, which the reference forms one factor at a time (k * (k - 1) factors a
        lane: 10^10 for 100,000 elements), however few entries the Jacobian has."""
        if n.func != "prod" or lanes * k * (k - 1) <= MAX_JACOBIAN_ENTRIES:
            return
        total = lanes * k * (k - 1)
        per = f"{k:,} x {k - 1:,}" if lanes == 1 else f"{lanes:,} x {k:,} x {k - 1:,}"
        raise LimitError(
            f"the derivatives of prod(...) over {k:,} elements have {per} = {_count(total)} "
            f"factors; the limit is {MAX_JACOBIAN_ENTRIES:,}",
            where="the functions",
            source=self.program.source,
            pos=getattr(n, "pos", None),
            fix="take the product of fewer elements, or use exp(sum(log(x))) for x > 0",
        )

    def reshape(self, n: lang.Call, x: Shape) -> Shape:
        sizes = []
        for arg in n.args[1:]:
            d = lang.const_int(arg)
            if d is None or d < -1 or d == 0:
                raise self.error(
                    arg,
                    "reshape sizes are positive constant integers (one may be -1)",
                    fix="e.g. reshape(x, 2, 3)",
                )
            sizes.append(d)
        total = math.prod(x)
        if sizes.count(-1) > 1:
            raise self.error(n, "reshape: only one size may be -1")
        if -1 in sizes:
            known = math.prod(d for d in sizes if d != -1)
            if total % known:
                raise self.error(
                    n, f"cannot reshape {fmt(x)} ({total} elements) to {fmt(tuple(sizes))}"
                )
            sizes[sizes.index(-1)] = total // known
        if math.prod(sizes) != total:
            raise self.error(
                n,
                f"cannot reshape {fmt(x)} ({total} elements) to "
                f"{fmt(tuple(sizes))} ({math.prod(sizes)} elements)",
            )
        return tuple(sizes)

    def run(self, node: lang.Node) -> Shape:
        result = lang.fold(node, self.leaf, self.combine)
        assert isinstance(result, tuple)
        return result


def infer(program: lang.Program, shapes: dict[str, Shape]) -> list[Shape]:
    """The shape of each output, given each variable's shape; InputError on a mismatch."""
    if not program.tensor_ops and not any(shapes.values()):
        return [() for _ in program.outputs]  # scalars in, element-wise ops: scalars out
    inf = _Inference(program, shapes)
    for name, node in program.definitions:
        inf.env[name] = inf.run(node)
    return [inf.env[name] if name is not None else inf.run(node)
            for name, node in program.computed()]  # fmt: skip


def labels(name: str, shape: Shape) -> list[str]:
    """Element labels in row-major order: x for a scalar, x[0,1] for a tensor element."""
    if not shape:
        return [name]
    out = []
    for flat in range(math.prod(shape)):
        idx = []
        for size in reversed(shape):
            idx.append(flat % size)
            flat //= size
        out.append(f"{name}[{','.join(str(i) for i in reversed(idx))}]")
    return out


def nest(flat: Sequence[object], shape: Shape) -> object:
    """A flat row-major sequence as nested lists of `shape` (a bare value for a scalar)."""
    if not shape:
        return flat[0]
    if len(shape) == 1:
        return list(flat)
    step = math.prod(shape[1:])
    return [nest(flat[i * step : (i + 1) * step], shape[1:]) for i in range(shape[0])]
