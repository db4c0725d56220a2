"""Plain data passed between modules: the problem, each engine's results, the report, the error
types and the exit codes.

Nothing here imports SymPy or torch: results cross module boundaries as floats and strings, so
that `compare`, `render` and `cli` stay free of both engines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class ExitCode(IntEnum):
    """Process exit statuses, as documented in the README."""

    AGREE = 0
    DISAGREE = 1
    BAD_INPUT = 2
    INTERNAL = 3
    INTERRUPTED = 130


class JvpError(Exception):
    """Base of every error this package raises on purpose."""


class InputError(JvpError):
    """The user's input is wrong: the CLI prints one line and exits 2.

    `where` names the piece of input ("the functions", "--at"), `source` and `pos` locate the
    offending character so the message can give a line and column, and `fix` says what to do.
    """

    def __init__(
        self,
        what: str,
        *,
        where: str | None = None,
        source: str | None = None,
        pos: int | None = None,
        fix: str | None = None,
    ) -> None:
        super().__init__(what)
        self.what = what
        self.where = where
        self.source = source
        self.pos = pos
        self.fix = fix

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled whole (a forked child hands its errors to the parent), not just `what`
        return (_rebuild, (type(self), self.what, self.where, self.source, self.pos, self.fix))

    def location(self) -> tuple[int, int] | None:
        """1-based (line, column) of `pos` in `source`, if both are known."""
        if self.source is None or self.pos is None:
            return None
        before = self.source[: self.pos]
        line = before.count("\n") + 1
        column = self.pos - (before.rfind("\n") + 1) + 1
        return line, column

    def one_line(self) -> str:
        """The whole message on one line: where, what, how to fix."""
        loc = self.location()
        place = self.where or ""
        if place and self.what.startswith(place + " "):
            place = ""  # "--rtol must be ...", not "--rtol: --rtol must be ..."
        if loc is not None:
            line, column = loc
            multi = self.source is not None and "\n" in self.source
            at = f"line {line}, column {column}" if multi else f"column {column}"
            place = f"{place}, {at}" if place else at
        text = f"{place}: {self.what}" if place else self.what
        if self.fix:
            text = f"{text}; {self.fix}"
        return text.replace("\n", " ")

    def caret(self) -> str | None:
        """The offending source line with a caret under the column (for a terminal)."""
        loc = self.location()
        if loc is None or self.source is None:
            return None
        line_no, column = loc
        line = self.source.split("\n")[line_no - 1]
        start = max(0, column - 1 - 60)
        snippet = printable(line[start : start + 120])
        return f"  {snippet}\n  {' ' * (column - 1 - start)}^"


def _rebuild(
    cls: type[InputError],
    what: str,
    where: str | None,
    source: str | None,
    pos: int | None,
    fix: str | None,
) -> InputError:
    return cls(what, where=where, source=source, pos=pos, fix=fix)


class LimitError(InputError):
    """The input is well formed but beyond a documented limit (size, depth, magnitude, time)."""


class OutputError(JvpError):
    """stdout cannot be written (closed, a full disk, /dev/full): exit 2, said on stderr."""


class EngineError(JvpError):
    """An engine could not compute something the input asked for (exit 2: the input's fault)."""


def printable(text: str) -> str:
    """`text` with control and other non-printable characters shown as escapes, so that user
    text quoted in a message can never drive the terminal."""
    out = []
    for ch in text:
        if ch.isprintable() and ch not in "\x1b\x7f":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
    return "".join(out)


# A number as it crosses a boundary: always a Python float (nan / inf allowed, judged by compare).
Vector = tuple[float, ...]
Matrix = tuple[tuple[float, ...], ...]


@dataclass(frozen=True)
class Problem:
    """Everything a run needs, validated: shapes agree and names are known."""

    source: str
    functions: tuple[str, ...]  # each output's expression as parsed (canonical text)
    intermediates: tuple[tuple[str, str], ...]  # (name, text) of statements used later
    outputs: tuple[str, ...]  # each output's name
    variables: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]  # per variable; () for a scalar
    output_shapes: tuple[tuple[int, ...], ...]  # per output
    point: Vector | None  # flat, row-major, variables in order
    v: Vector | None  # flat over the outputs' elements
    u: Vector | None  # flat over the variables' elements
    v_implicit: bool = False  # v = 1 was supplied for a scalar output, like out.backward()
    dtype: str = "float64"
    device: str = "cpu"
    engine: str = "sympy"  # what computes the symbolic side: "sympy" or "symengine"
    rtol: float = 1e-7
    atol: float = 1e-7


@dataclass(frozen=True)
class SymbolicResult:
    """SymPy's side: the Jacobian as text and its high-precision values (float64-rounded)."""

    jacobian_text: tuple[tuple[str, ...], ...]
    jacobian_pretty: str
    jacobian_latex: str
    nonzeros: int
    row_labels: tuple[str, ...]  # flat output elements: y1, or out[0,1]
    col_labels: tuple[str, ...]  # flat variable elements: x1, or x[1,0]
    jacobian: Matrix | None = None
    vjp: Vector | None = None
    jvp: Vector | None = None
    notes: tuple[str, ...] = ()  # e.g. which entries are undefined at the point, and why
    # (quantity, index, 30-digit decimal) of each finite value beyond float64's range, whose
    # float above is +-inf: "jacobian" (i, j), "vjp" (k,), "jvp" (k,)
    exact: tuple[tuple[str, tuple[int, ...], str], ...] = ()
    # J's nonzeros only (sparse.Sparse): the entries as text, and their values at the point;
    # `jacobian_text` and `jacobian` above are the same matrices densified (tuples when
    # small, a row-by-row view when big), for callers of the dense form
    sparse_text: Any = None
    sparse_jacobian: Any = None

    def beyond(self, quantity: str) -> dict[tuple[int, ...], str]:
        """The entries of `quantity` that are finite but beyond float64, as decimals."""
        return {idx: text for q, idx, text in self.exact if q == quantity}


@dataclass(frozen=True)
class AutogradResult:
    """PyTorch's side: what autograd returned, as floats."""

    jacobian: Matrix
    vjp: Vector | None = None
    jvp: Vector | None = None
    values: Vector = ()
    notes: tuple[str, ...] = ()
    # the same J as a sparse.Sparse (what the comparison and the views read), and how it was
    # taken: the passes (one per color, compressed.py), "reverse" | "forward" | "rows"
    sparse_jacobian: Any = None
    passes: int = 0
    mode: str = "rows"
    colors: int = 0


@dataclass(frozen=True)
class Check:
    """The comparison of one quantity between the two sides."""

    name: str  # "jacobian" | "vjp" | "jvp"
    status: str  # "agree" | "disagree" | "undefined"
    max_abs_diff: float
    rtol: float
    atol: float
    worst: tuple[int, ...] | None = None  # index of the largest difference
    undefined: tuple[tuple[int, ...], ...] = ()  # indices where either side is not finite
    # rows undefined throughout in a big sparse Jacobian (their entries are not listed above)
    undefined_rows: tuple[int, ...] = ()

    @property
    def agree(self) -> bool:
        return self.status == "agree"


@dataclass(frozen=True)
class Report:
    problem: Problem
    symbolic: SymbolicResult
    autograd: AutogradResult | None = None
    checks: tuple[Check, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def agree(self) -> bool:
        return all(c.agree for c in self.checks)

    def check(self, name: str) -> Check | None:
        for c in self.checks:
            if c.name == name:
                return c
        return None

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.AGREE if self.agree else ExitCode.DISAGREE
