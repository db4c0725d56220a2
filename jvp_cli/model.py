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
    graph: bool = False  # also record the autograd graph with values and adjoints (--graph)
    explain: bool = False  # --explain or --format: build the explanation (explain.py)
    # second order (issue 15): --hessian, --hessians, --hvp U (flat over the variables)
    hessian: bool = False
    hessians: bool = False
    hvp: Vector | None = None

    @property
    def second_order(self) -> bool:
        return self.hessian or self.hessians or self.hvp is not None


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
    # SymPy's LaTeX of each entry of J and of each output element (explain.latex_cells),
    # made only for --explain / --format and only where jacobian_latex is made
    entries_latex: tuple[tuple[str, ...], ...] = ()
    outputs_latex: tuple[str, ...] = ()
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
    second: TorchSecond | None = None  # the torch routes of --hessian / --hvp (issue 15)
    graph: Graph | None = None  # the recorded graph, with --graph (graph.py)
    # the same J as a sparse.Sparse (what the comparison and the views read), and how it was
    # taken: the passes (one per color, compressed.py), "reverse" | "forward" | "rows"
    sparse_jacobian: Any = None
    passes: int = 0
    mode: str = "rows"
    colors: int = 0


@dataclass(frozen=True)
class Route:
    """One way torch computes a second-order quantity (autograd2.py): its values (a matrix,
    a vector, or one matrix per output for --hessians), or why it could not run."""

    name: str  # "double_backward" | "functional" | "functional_vhp" | "func"
    call: str  # the torch call, as a user would write it
    values: Any = None  # Matrix | Vector | tuple[Matrix, ...]; None when it did not run
    error: str | None = None


@dataclass(frozen=True)
class TorchSecond:
    """Every torch route for each second-order quantity that was asked for."""

    hessian: tuple[Route, ...] = ()
    hvp: tuple[Route, ...] = ()
    hessians: tuple[Route, ...] = ()


@dataclass(frozen=True)
class SecondQuantity:
    """One second-order quantity (the Hessian, H u, or one output's own Hessian): the
    reference (text and 30-digit values rounded to float64), each torch route's values and
    its check against the reference, and the verdict over the routes that ran."""

    name: str  # "hessian" | "hvp" | "hessians"
    of: str  # what is differentiated: "f", "v^T f", or an output element's label
    symbolic: tuple[tuple[str, ...], ...] | None = None  # the matrix as text (not for hvp)
    pretty: str = ""
    latex: str = ""
    reference: Any = None  # Matrix or Vector of floats; None without a point
    beyond: tuple[tuple[tuple[int, ...], str], ...] = ()  # entries beyond float64, as text
    routes: tuple[Route, ...] = ()
    checks: tuple[Check, ...] = ()  # one per route that ran, named after the route
    check: Check | None = None  # the verdict over every route that ran
    symmetric: bool | None = None
    nonzeros: int = 0
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class SecondOrder:
    """What --hessian, --hessians and --hvp add to a report."""

    labels: tuple[str, ...]  # the flattened variable elements: rows and columns of H
    hessian: SecondQuantity | None = None
    hvp: SecondQuantity | None = None
    hessians: tuple[SecondQuantity, ...] = ()
    u: Vector | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class GraphNode:
    """One node of the graph autograd recorded (graph.py, --graph): a leaf (AccumulateGrad,
    a variable), or an operation's grad_fn. `value` is its forward value and `adjoint` the
    gradient of v^T y with respect to it, both flat (row-major) in `shape`."""

    id: str
    label: str  # the operation as written (y = x + 2), or the variable's name for a leaf
    grad_fn: str  # torch's node type: AddBackward0, ..., AccumulateGrad for a leaf
    value: Vector
    adjoint: Vector
    kind: str  # "leaf" | "op" | "output"
    shape: tuple[int, ...] = ()
    op: str = ""  # "+", "*", "**", "mean", ...; "" for a leaf
    outputs: tuple[str, ...] = ()  # the outputs this node's value is (f1, out)


@dataclass(frozen=True)
class GraphEdge:
    """An edge from an input (`source`) to the operation using it (`target`), with the local
    derivative d target / d source as SymPy writes it. `local_value`: its value at the point
    per element of the target (element-wise operations; None for tensor operations, whose
    rule `local` states)."""

    source: str
    target: str
    local: str
    local_value: Vector | None = None
    via: tuple[str, ...] = ()  # torch nodes inside the operation, between the two


@dataclass(frozen=True)
class Graph:
    """The autograd graph in backward order: outputs first, every node before its inputs,
    leaves last."""

    nodes: tuple[GraphNode, ...]
    edges: tuple[GraphEdge, ...]


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
    # what was judged against the reference: "torch" (autograd of the parsed program), "claim"
    # (--expect), and the other candidates (the user's code, finite differences)
    candidate: str = "torch"
    tolerance: str | None = None  # how closeness was decided, where not by rtol/atol (--fd)
    # rows undefined throughout in a big sparse Jacobian (their entries are not listed above)
    undefined_rows: tuple[int, ...] = ()

    @property
    def agree(self) -> bool:
        return self.status == "agree"


@dataclass(frozen=True)
class Claim:
    """A value the user claims (--expect QUANTITY=VALUES), judged against the reference: a
    candidate like torch's autograd, with a teacher's diagnosis when it is wrong (expect.py).

    Values are flat: a Jacobian row-major (`shape` is the claim's own (rows, columns), which
    may be the transpose of J's), a VJP over the variables' elements, a JVP over the outputs'."""

    quantity: str  # "vjp" | "grad" | "jvp" | "jacobian", as typed
    text: str  # the option's text
    status: str  # "agree" | "disagree" | "undefined"
    symbolic: bool  # some value is an expression in the variables
    shape: tuple[int, ...]  # the claim's shape: (n,) for a VJP, (m,) for a JVP, (rows, cols)
    labels: tuple[str, ...]  # each flat entry's name: x1.grad, f2, df1/dx3
    claimed: Vector | None = None  # the claim's values at the point (None: no --at)
    reference: Vector | None = None  # the reference's values there, in the claim's layout
    check: Check | None = None  # the comparison at the point (candidate "claim")
    claimed_text: tuple[str, ...] = ()  # each entry as an expression (symbolic claims)
    reference_text: tuple[str, ...] = ()  # the reference's entries as expressions
    identical: bool | None = None  # symbolic claims: identical to the reference as functions
    decided_by: str | None = None  # how `identical` was decided
    wrong_entries: tuple[tuple[int, ...], ...] = ()  # indices (in the claim's shape) that are wrong
    diagnosis: str | None = None  # why it is wrong, as a teacher would say it
    inferred: Vector | None = None  # the v (VJP) or u (JVP) that gives the claimed values
    weights: Vector | None = None  # the v (VJP) or u (JVP) the claim was judged with
    beyond: tuple[tuple[int, ...], ...] = ()  # reference entries beyond float64 (shown exactly)
    transposed: bool = False  # a Jacobian claim in J^T's shape (reference laid out as J^T too)

    @property
    def agree(self) -> bool:
        return self.status == "agree"

    @property
    def key(self) -> str:
        """The JSON key: a gradient is the VJP of a scalar output."""
        return "vjp" if self.quantity == "grad" else self.quantity


@dataclass(frozen=True)
class SamplePoint:
    """One point of a --sample sweep and what was found there."""

    point: Vector  # flat, variables in order
    diff: float  # the largest |reference - candidate| there
    candidate: str  # which candidate it was ("torch", "claim vjp=...")
    quantity: str  # "jacobian" | "vjp" | "jvp"
    status: str
    claimed: Vector = ()  # the candidate's values there
    reference: Vector = ()  # the reference's values there


@dataclass(frozen=True)
class SampleResult:
    """--sample N: every claim and check at N random points of a box (sample.py)."""

    n: int
    seed: int
    box: tuple[tuple[str, float, float], ...]  # (variable, low, high)
    agree: int
    disagree: int
    undefined: int
    candidates: tuple[str, ...]  # what was checked at each point
    worst: SamplePoint | None = None
    first_failure: SamplePoint | None = None  # shrunk toward simple values
    found_at: Vector | None = None  # the first failing point as drawn, before shrinking
    found_index: int | None = None  # its index among the N points
    shrink_steps: int = 0  # simplifications accepted
    shrink_checks: int = 0  # single-point checks the shrinking ran
    notes: tuple[str, ...] = ()
    exact_points: int = 0  # points judged by the single-point (30-digit) reference
    fast: bool = False  # the sweep used --points' certified fast path where it could

    @property
    def ok(self) -> bool:
        """No point disagrees (undefined points, outside the domain, are counted only)."""
        return self.disagree == 0


@dataclass(frozen=True)
class Report:
    problem: Problem
    symbolic: SymbolicResult
    autograd: AutogradResult | None = None
    checks: tuple[Check, ...] = ()
    notes: tuple[str, ...] = field(default=())
    claims: tuple[Claim, ...] = ()  # --expect: each claim against the reference
    sample: SampleResult | None = None  # --sample: the sweep
    code: CodeReport | None = None  # --torch FILE.py:NAME: the user's code, judged
    fd: FdReport | None = None  # --fd: finite differences, judged
    explanation: Any = None  # explain.Explanation with --explain or --format
    second: SecondOrder | None = None  # --hessian, --hessians, --hvp (issue 15)

    @property
    def agree(self) -> bool:
        return (
            all(c.agree for c in self.checks)
            and all(c.agree for c in self.claims)
            and (self.sample is None or self.sample.ok)
            and all(x.agree for x in (self.code, self.fd) if x is not None)
        )

    @property
    def candidate_statuses(self) -> tuple[str, ...]:
        """The statuses of the candidates besides torch's autograd (--torch, --fd)."""
        return tuple(x.status for x in (self.code, self.fd) if x is not None)

    def check(self, name: str) -> Check | None:
        for c in self.checks:
            if c.name == name:
                return c
        return None

    @property
    def graph(self) -> Graph | None:
        """The graph autograd recorded (--graph), built on the torch side."""
        return self.autograd.graph if self.autograd is not None else None

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.AGREE if self.agree else ExitCode.DISAGREE


# ---- the user's own torch code (--torch FILE.py:NAME, usercode.py) ------------------------


@dataclass(frozen=True)
class UserCodeError:
    """An error raised by (or about) the user's code: a result, not vjp's own error."""

    message: str  # one line: ExceptionType: text
    file: str  # the user's file, as given
    line: int | None  # the line in that file, where known
    where: str | None = None  # the function there (Swish.backward)


@dataclass(frozen=True)
class CodeValues:
    """What the user's code computed at one point, as plain floats (usercode.evaluate_at:
    also the hook for --sample). Where `error` is set, `phase` says which step failed and
    the quantities after it are None."""

    forward: Vector | None
    jacobian: Matrix | None
    vjp: Vector | None
    jvp: Vector | None
    jvp_status: str  # "ok" | "not-defined" (no forward mode in the code) | "not-asked"
    jvp_note: str | None = None
    error: UserCodeError | None = None
    phase: str | None = None  # "forward" | "jacobian" | "vjp" | "jvp", where error is set


@dataclass(frozen=True)
class CodeReport:
    """The user's code against the reference: forward values, J, v^T J, J u."""

    file: str
    name: str
    kind: str  # "function" | "Function.apply" | "nn.Module" | "callable"
    values: CodeValues
    forward_reference: Vector
    checks: dict[str, Check | None]  # "forward", "jacobian", "vjp", "jvp"
    notes: tuple[str, ...] = ()
    # --fd with --torch: FD of the user's own forward, judged against the code's Jacobian (is
    # the backward right for what the forward computes?): a diagnosis, not in the verdict
    own_fd: FdQuantity | None = None

    @property
    def status(self) -> str:
        if self.values.error is not None:
            return "error"
        statuses = {c.status for c in self.checks.values() if c is not None}
        for s in ("disagree", "undefined"):
            if s in statuses:
                return s
        return "agree"

    @property
    def agree(self) -> bool:
        return self.status == "agree"


# ---- finite differences (--fd, fd.py) -------------------------------------------------------


@dataclass(frozen=True)
class FdQuantity:
    """One quantity by finite differences: values, error estimates, and the verdict against
    the reference (None where FD is the reference)."""

    values: Any  # nested floats: a matrix for the Jacobian, a vector for vjp / jvp
    error: Any  # the same shape: numdifftools' error estimate (propagated for vjp / jvp)
    check: Check | None = None


@dataclass(frozen=True)
class FdReport:
    """Central differences with Richardson extrapolation (numdifftools) of `function`."""

    function: str  # what was differenced: "formula" (mpmath, no torch) or "code" (--torch)
    method: str  # in words, for the report
    tolerance: str  # how agreement was decided
    jacobian: FdQuantity
    vjp: FdQuantity | None = None
    jvp: FdQuantity | None = None
    is_reference: bool = False
    notes: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        statuses = {q.check.status for q in (self.jacobian, self.vjp, self.jvp)
                    if q is not None and q.check is not None}  # fmt: skip
        for s in ("disagree", "undefined"):
            if s in statuses:
                return s
        return "agree"

    @property
    def agree(self) -> bool:
        return self.status == "agree"


@dataclass(frozen=True)
class CodeOnlyReport:
    """--torch without FUNCTIONS: the user's code against finite differences of itself."""

    file: str
    name: str
    kind: str
    variables: tuple[str, ...]
    variables_from: str  # "signature" | "numbered"
    shapes: tuple[tuple[int, ...], ...]
    point: Vector
    v: Vector | None
    u: Vector | None
    values: CodeValues
    fd: FdReport | None  # None when the code failed before FD could run
    checks: dict[str, Check | None]  # "jacobian", "vjp", "jvp": the code against FD
    notes: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        if self.values.error is not None:
            return "error"
        statuses = {c.status for c in self.checks.values() if c is not None}
        for s in ("disagree", "undefined"):
            if s in statuses:
                return s
        return "agree"

    @property
    def agree(self) -> bool:
        return self.status == "agree"

    @property
    def exit_code(self) -> ExitCode:
        return ExitCode.AGREE if self.agree else ExitCode.DISAGREE
