"""The `vjp` command: options -> Problem, calls the core, picks the renderer and the exit status.

The only module that prints or chooses an exit status. Errors become one `Error: ...` line on
stderr (a caret under the expression too, when stderr is a terminal); an unexpected exception
is exit 3, with its traceback only under --debug. Importing this module imports neither SymPy
nor torch: `vjp --help` and every usage error stay fast.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperCommand

from . import __version__
from .model import ExitCode, InputError, JvpError, LimitError, OutputError, printable

HELP = """Show the symbolic Jacobian of FUNCTIONS and check what PyTorch autograd computes.

SymPy differentiates the functions symbolically (the reference); PyTorch evaluates the same
parse tree and runs y.backward(v) (v^T J), one backward pass per Jacobian row, and forward-mode
J u. The report shows both sides and whether they agree.

\b
Examples:
  vjp "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3" --at 1,2,3 --v 3,2,1
  vjp "r*cos(theta); r*sin(theta)" --at r=2,theta=pi/3 --u 1,0
  vjp "sigmoid(w*x+b)" --at w=0.5,x=2,b=-1 --json | jq .vjp.torch
  vjp "x^2*y + sin(x*y)"            (symbolic Jacobian only)
  vjp -f program.txt --at 1,2     /    vjp - --at 1,2 < program.txt

\b
Writing the functions:
  - statements split on ";" or newlines; a newline inside ( ) or [ ]
    continues the statement; "#" starts a comment to the end of the line
  - an expression may start with "-" anywhere on the line
    (vjp "-x**2 + y" --at 1,2); after "--" every argument is FUNCTIONS
  - E is Euler's number and e an ordinary variable: write exp(x) or
    E**x for e^x; log is natural, log10(x), log2(x), log(x, b) too
  - vjp help is vjp --help

\b
Your own code (--torch FILE.py:NAME) and finite differences (--fd):
  vjp "x*sigmoid(x)" --torch swish.py:Swish.apply --at 0.5
  vjp --torch mine.py:f --at 1,2,3 --v 3,2,1   (no FUNCTIONS: FD is the reference)
  vjp "sin(x)*y" --at 1,2 --fd
  --torch IMPORTS AND RUNS FILE.py AS PYTHON: the only option that runs
  code (the expression language is parsed, never executed)

\b
Exit status: 0 all checks agree, 1 some check disagrees or is undefined
at the point, 2 bad input or usage, 3 internal error.

\b
Limits: input 16,000,000 characters from a file or stdin (1,000,000 as an
argument); 500,000 tree nodes; nesting 100 levels; number literals 100
characters; constants within 1e-300..1e300; exponents of variables |k| <=
10,000; Jacobian 4,000,000 structural nonzeros (programs of scalars) or
entries (with tensors); --timeout 60 s. See docs/language.md.
"""


class DType(str, Enum):
    float64 = "float64"
    float32 = "float32"


class ReportFormat(str, Enum):
    latex = "latex"
    markdown = "markdown"


_LONG_OPTION = re.compile(r"--[A-Za-z][-A-Za-z0-9]*(=.*)?", re.DOTALL)


class _OneLineErrors(TyperCommand):
    """A Typer command whose usage errors are one `Error:` line and exit 2, however it is
    invoked (console script, python -m, CliRunner).

    Before Click sees the arguments, one that starts with '-' but is none of vjp's options
    (`-x**2 + y`, `-sin(x)`, `-1.71; x2`) is taken as the FUNCTIONS argument, wherever it
    stands; `--` keeps its usual meaning. `vjp help` alone is `vjp --help`."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self.expression_args(list(args)))

    def expression_args(self, args: list[str]) -> list[str]:
        if args == ["help"]:
            return ["--help"]
        takes_value: dict[str, bool] = {}
        for param in self.params:
            if param.param_type_name == "option":
                for name in (*param.opts, *param.secondary_opts):
                    takes_value[name] = not (param.is_flag or param.count)  # type: ignore[attr-defined]
        options: list[str] = []
        expressions: list[str] = []
        rest: list[str] = []
        k = 0
        while k < len(args):
            arg = args[k]
            if arg == "--":
                rest = args[k:]
                break
            name = arg.split("=", 1)[0] if arg.startswith("--") else arg
            if name in takes_value:
                options.append(arg)
                if takes_value[name] and "=" not in arg and k + 1 < len(args):
                    k += 1
                    options.append(args[k])  # its value, whatever it looks like
            elif arg.startswith("-") and arg != "-" and not _LONG_OPTION.fullmatch(arg):
                expressions.append(arg)  # not an option: an expression such as -x**2
            else:
                options.append(arg)  # positional, or an unknown --word Click reports
            k += 1
        if not expressions:
            return args
        if rest:
            return [*options, *rest, *expressions]
        return [*options, "--", *expressions]

    def main(  # type: ignore[override]
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            result = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                **extra,
            )
            code = result if isinstance(result, int) else 0
        except typer.TyperException as exc:  # usage errors: bad option, missing value
            message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
            if len(message) > 160:
                message = message[:150] + "..."
            _error(f"{message} (see vjp --help)")
            code = int(ExitCode.BAD_INPUT)
        except typer.Abort:
            _error("aborted")
            code = int(ExitCode.INTERRUPTED)
        except BrokenPipeError:
            _silence_stdout()
            code = int(ExitCode.AGREE)
        except (OSError, ValueError) as exc:  # --help or --version onto a closed or full stdout
            _error(_write_failed(exc))
            code = int(ExitCode.BAD_INPUT)
        except KeyboardInterrupt:
            code = int(ExitCode.INTERRUPTED)
        if standalone_mode:
            sys.exit(code)
        return code


app = typer.Typer(
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"vjp (jvp_cli) {__version__}\n")
        raise typer.Exit(0)


def _error(message: str, caret: str | None = None) -> None:
    try:
        sys.stderr.write(f"Error: {printable(message)}\n")
        if caret and _isatty(sys.stderr):
            sys.stderr.write(caret + "\n")
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # stderr closed or full: the exit status still says it


def _write_failed(exc: BaseException) -> str:
    reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return f"cannot write the output to stdout: {reason}"


# What a terminal that cannot show Unicode gets instead (PYTHONIOENCODING=ascii, LANG=C).
_ASCII = {
    "\u2714": "ok", "\u2718": "x", "\u2500": "-", "\u2501": "-", "\u2502": "|",
    "\u2503": "|", "\u256d": "+", "\u256e": "+", "\u256f": "+", "\u2570": "+",
    "\u23a1": "[", "\u23a2": "[", "\u23a3": "[", "\u23a4": "]", "\u23a5": "]",
    "\u23a6": "]", "\u239b": "(", "\u239c": "(", "\u239d": "(", "\u239e": ")",
    "\u239f": ")", "\u23a0": ")", "\u22c5": "*", "\u00b7": "*", "\u221a": "sqrt",
    "\u03c0": "pi", "\u212f": "E", "\u2026": "...", "\u2264": "<=", "\u2265": ">=",
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2192": "->", "\u2248": "~",
}  # fmt: skip


def _encodable(text: str, encoding: str | None) -> str:
    """`text`, or where the output encoding cannot hold it, an ASCII rendering of it."""
    try:
        text.encode(encoding or "utf-8")
        return text
    except (UnicodeEncodeError, LookupError):
        pass
    import unicodedata

    out = []
    for ch in text:
        if ch.isascii():
            out.append(ch)
        elif ch in _ASCII:
            out.append(_ASCII[ch])
        else:
            folded = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
            name = unicodedata.name(ch, "")
            if name.startswith("BRAILLE"):  # the sparsity picture: blank or not
                folded = " " if ch == "\u2800" else "#"
            out.append(folded or ("-" if name.startswith("BOX") else "?"))
    return "".join(out)


def _emit(text: str) -> None:
    """Write the whole output, signals deferred until it is written (a report is never cut
    by SIGTERM or SIGHUP); a closed or full stdout is an OutputError."""
    stream = sys.stdout
    text = _encodable(text, getattr(stream, "encoding", None))
    with _deferred_signals():
        try:
            stream.write(text)
            stream.flush()
        except BrokenPipeError:
            _silence_stdout()
        except (OSError, ValueError, AttributeError) as exc:
            raise OutputError(_write_failed(exc)) from None


class _deferred_signals:
    """Block SIGINT, SIGTERM and SIGHUP in this thread while output is written."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")

    def __enter__(self) -> None:
        import signal

        self.old: Any = None
        if (
            hasattr(signal, "pthread_sigmask")
            and threading.current_thread() is threading.main_thread()
        ):
            sigs = {getattr(signal, n) for n in self.SIGNALS if hasattr(signal, n)}
            self.old = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)

    def __exit__(self, *exc: object) -> None:
        import signal

        if self.old is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self.old)


class _Signalled(BaseException):
    """SIGTERM or SIGHUP arrived (raised in the main thread by the handler)."""


def _on_signal(signum: int, frame: Any) -> None:
    raise _Signalled(signum)


class _LineWriter:
    """--points --json lines, written whole whatever ends the run.

    Each os.write carries whole lines, at most PIPE_BUF bytes of them where lines are that
    short (a pipe takes such a write whole or not at all), retried until all is written,
    under a lock; `stop` (at a timeout, a signal, Ctrl-C) waits for the piece in flight and
    then lets no more start, so the process can leave without cutting a line."""

    PIECE = 4096  # PIPE_BUF on Linux

    def __init__(self, fd: int | None) -> None:
        self.fd = fd  # None: write through sys.stdout (in memory: nothing to cut)
        self.lock = threading.Lock()
        self.closed = False

    def write(self, block: bytes) -> None:
        """Write `block` (lines without the last newline) and a newline."""
        self.write_whole(block + b"\n")

    def write_whole(self, data: bytes) -> None:
        """Write `data`, whole lines ending in a newline."""
        if self.fd is None:  # in memory (a CliRunner, or a child's pipe to its parent)
            with self.lock:
                if self.closed:
                    raise BrokenPipeError
                self._through_stdout(data)
            return
        view = memoryview(data)
        start, n = 0, len(data)
        while start < n:
            end = start + self.PIECE
            if end < n:
                cut = data.rfind(b"\n", start, end)
                end = (cut if cut >= start else data.find(b"\n", end)) + 1
            else:
                end = n
            with self.lock:
                if self.closed:
                    raise BrokenPipeError  # the run is ending: stop quietly
                piece = view[start:end]
                try:
                    while piece:
                        piece = piece[os.write(self.fd, piece) :]
                except BrokenPipeError:
                    raise
                except OSError as exc:
                    raise OutputError(_write_failed(exc)) from None
            start = end

    @staticmethod
    def _through_stdout(data: bytes) -> None:
        out = getattr(sys.stdout, "buffer", None)
        if out is not None:
            out.write(data)
        else:
            sys.stdout.write(data.decode("ascii"))

    def stop(self, wait: float = 5.0) -> None:
        if self.lock.acquire(timeout=wait):  # kept: nothing is written after this
            self.closed = True


def _stdout_lines() -> _LineWriter:
    """A _LineWriter onto stdout's file descriptor, or through sys.stdout where it has none."""
    import io

    try:
        sys.stdout.flush()  # (empty: nothing else writes to stdout with --json)
        return _LineWriter(sys.stdout.fileno())
    except io.UnsupportedOperation:  # an in-memory stdout (embedding, CliRunner, a child)
        return _LineWriter(None)
    except (OSError, ValueError, AttributeError) as exc:
        raise OutputError(_write_failed(exc)) from None


def _write_stderr(text: str) -> None:
    """`text` onto stderr, as _error writes it: a closed or full stderr changes nothing."""
    try:
        sys.stderr.write(text)
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _read_source(functions: str | None, file: Path | None) -> str:
    if file is not None and functions is not None:
        raise InputError(
            "give the functions either as an argument or with -f, not both", where="usage"
        )
    if file is not None:
        where = f"-f {printable(str(file))}"
        try:
            with open(file, "rb") as f:
                return _read_text(f, where)
        except OSError as exc:
            raise InputError(
                f"cannot read {printable(str(file))}: {exc.strerror or exc}",
                where="-f",
                fix="check the path",
            ) from None
    if functions is None:
        raise InputError(
            "no functions given",
            where="usage",
            fix='pass them as an argument, e.g. vjp "x**2; x*y" --at 1,2',
        )
    if functions == "-":
        if sys.stdin is None:
            raise InputError("stdin is closed", where="stdin", fix="pass the functions as text")
        binary = getattr(sys.stdin, "buffer", None)
        if binary is None:  # a text-only stdin (embedding)
            return _decode(sys.stdin.read(MAX_READ + 1).encode(), "stdin")
        try:
            return _read_text(binary, "stdin")
        except OSError as exc:
            raise InputError(f"cannot read stdin: {exc.strerror or exc}", where="stdin") from None
    if len(functions) > MAX_ARGUMENT_CHARS:
        raise LimitError(
            f"the FUNCTIONS argument is {len(functions):,} characters, more than the limit of "
            f"{MAX_ARGUMENT_CHARS:,}",
            where="usage",
            fix="read the functions from a file (-f FILE) or stdin (-)",
        )
    return functions


MAX_READ = 16_000_000  # lang.MAX_INPUT_CHARS, without importing the parser for --help
MAX_ARGUMENT_CHARS = 1_000_000  # the functions given as an argument (bigger: -f FILE)


def _read_text(binary: Any, where: str) -> str:
    """UTF-8 text from a binary stream, reading at most MAX_READ + 1 characters: a longer
    input (or /dev/zero) is refused without being read to its end."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    parts: list[str] = []
    chars = consumed = 0
    while True:
        # never more bytes than characters still allowed: each byte is at most one character
        block = binary.read(min(1 << 16, MAX_READ + 1 - chars))
        try:
            text = decoder.decode(block or b"", final=not block)
        except UnicodeDecodeError as exc:
            raise InputError(
                f"not valid UTF-8 (byte {consumed + exc.start})",
                where=where,
                fix="save the file as UTF-8 text",
            ) from None
        if not block:
            return "".join(parts)
        consumed += len(block)
        chars += len(text)
        parts.append(text)
        if chars > MAX_READ:
            raise LimitError(
                f"input is more than the limit of {MAX_READ:,} characters",
                where=where,
                fix="split the problem or read it from a smaller file",
            )


def _decode(data: bytes, where: str) -> str:
    if len(data) > 4 * MAX_READ:
        raise LimitError(
            f"input is {len(data):,} bytes",
            where=where,
            fix=f"the limit is {MAX_READ:,} characters",
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not valid UTF-8 (byte {exc.start})", where=where, fix="save the file as UTF-8 text"
        ) from None


def _seconds(text: str | float) -> float:
    """--timeout: a positive number of seconds, or 0 (or inf) for no limit (returned as 0).
    Values beyond what a thread can wait for mean no limit too."""
    if isinstance(text, (int, float)):
        value = float(text)
    elif text.strip().lower() in ("inf", "+inf"):
        return 0.0
    else:
        from .lang import evaluate_constant

        value = evaluate_constant(text, "--timeout")
    if not value >= 0:  # negative (nan cannot come through evaluate_constant)
        raise InputError(
            f"{printable(str(text))} is not a number of seconds",
            where="--timeout",
            fix="give a positive number, or 0 for no limit",
        )
    return 0.0 if value >= threading.TIMEOUT_MAX else value


def _tolerance(text: str | float | None, name: str) -> float | None:
    """--rtol/--atol: a number in the expression language's syntax (1e-7, 2**-20)."""
    if text is None or isinstance(text, (int, float)):
        return text
    from .lang import evaluate_constant

    return evaluate_constant(text, name)


def _console() -> Any:
    """A rich Console that renders into memory as it would onto stdout (terminal or not, its
    encoding): nothing touches stdout until _emit writes the whole text."""
    import io

    from rich.console import Console

    class Buffer(io.StringIO):
        encoding = getattr(sys.stdout, "encoding", None) or "utf-8"  # type: ignore[assignment]

    # Piped too, the width is COLUMNS or the terminal's (`vjp ... | less` fits the screen);
    # the renderers lay out what does not fit instead of asking for a wider console.
    tty = _isatty(sys.stdout)
    return Console(file=Buffer(), highlight=False, width=_terminal_width(), force_terminal=tty)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (OSError, ValueError, AttributeError):
        return False


def _terminal_columns() -> int:
    """The width of the terminal that stdout, else stderr, else stdin is (a piped stdout
    still shows in the terminal of stderr); 0 where none is one."""
    for stream in (sys.stdout, sys.stderr, sys.stdin):
        try:
            width = os.get_terminal_size(stream.fileno()).columns
        except (OSError, ValueError, AttributeError):
            continue
        if width > 0:
            return width
    return 0


def _terminal_width() -> int:
    """COLUMNS when it is a positive integer, else the terminal's own width, else 80: an
    invalid COLUMNS (0, -3, abc) is treated as unknown, never as a width of 0."""
    text = os.environ.get("COLUMNS", "")
    if text.isascii() and text.isdigit() and 0 < int(text) < 100_000:
        return int(text)
    from . import supervise

    if supervise.CHANNEL is not None:  # in a child: the parent's terminal
        width = supervise.CHANNEL.columns
    else:
        width = _terminal_columns()
    return width if width > 0 else 80


@app.command(cls=_OneLineErrors, help=HELP, no_args_is_help=False)
def vjp(
    functions: Annotated[
        str | None,
        typer.Argument(
            help='The functions, separated by ";" or newlines; "-" reads stdin.',
            show_default=False,
            metavar="FUNCTIONS",
        ),
    ] = None,
    at: Annotated[
        list[str] | None,
        typer.Option(
            "--at",
            help="The point: 1,2,3 in variable order, or x=1,y=2 by name. Values may be "
            "constant expressions (pi/3, -1e-3), nested lists for a tensor "
            "(x=[[1,2],[3,4]]) or ones/zeros/arange with --shape. Repeatable. Without it, "
            "only the symbolic Jacobian.",
        ),
    ] = None,
    v: Annotated[
        list[str] | None,
        typer.Option(
            "--v",
            help="Cotangent for y.backward(v) (v^T J): one value per output (nested lists "
            "with a tensor output's shape), or name=value by output name. Default 1 for a "
            "single scalar output.",
        ),
    ] = None,
    u: Annotated[
        list[str] | None,
        typer.Option(
            "--u",
            help="Tangent for forward mode (J u): one value per variable (nested lists for "
            "a tensor).",
        ),
    ] = None,
    variables: Annotated[
        str | None,
        typer.Option("--vars", help="Variable order, e.g. x,y,z (may add unused variables)."),
    ] = None,
    outputs: Annotated[
        str | None,
        typer.Option("--outputs", help="Which named statements are outputs, e.g. y1,y3."),
    ] = None,
    shape: Annotated[
        list[str] | None,
        typer.Option(
            "--shape",
            help="A variable's shape, e.g. x=2,3 (for ones/zeros/arange or a symbolic "
            "Jacobian without --at). Repeatable.",
        ),
    ] = None,
    points: Annotated[
        str | None,
        typer.Option(
            "--points",
            help="Many points: a CSV file (header of variable names, optional v:OUTPUT "
            "columns) or JSON lines, or - for stdin. Writes one JSON line per point with "
            "--json, else a summary.",
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", "-f", help="Read the functions from a file.", dir_okay=False),
    ] = None,
    expect: Annotated[
        list[str] | None,
        typer.Option(
            "--expect",
            help="A claimed value to check against the reference, QUANTITY=VALUES with "
            "QUANTITY vjp, grad, jvp or jacobian: --expect vjp=10,34,42, --expect "
            "'jacobian=2*x1,2,1; 1,3*x2^2,2*x3; 2,2*x2,3*x3^2'. Values as for --v/--u (by "
            "position, by name, nested lists); expressions in the variables are checked "
            "as functions. A wrong claim is diagnosed and exits 1. Repeatable.",
            metavar="QUANTITY=VALUES",
        ),
    ] = None,
    sample: Annotated[
        int | None,
        typer.Option(
            "--sample",
            help="Check every claim and check at N random points of --box, and shrink the "
            "first failing point toward simple values.",
            metavar="N",
        ),
    ] = None,
    box: Annotated[
        str | None,
        typer.Option(
            "--box",
            help="The box --sample draws from, e.g. x=-3:3,y=0.1:2 (default -2:2).",
            metavar="NAME=LOW:HIGH,...",
        ),
    ] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="The seed of --sample's points (default 0).")
    ] = None,
    dtype: Annotated[DType, typer.Option(help="PyTorch dtype.")] = DType.float64,
    device: Annotated[str, typer.Option(help="PyTorch device: cpu or cuda.")] = "cpu",
    engine: Annotated[
        str,
        typer.Option(
            help="Symbolic engine: sympy, symengine (C++, for big problems) or auto "
            "(SymEngine from 5,000 tree nodes, and for --points; never for abs, relu, max, "
            "min)."
        ),
    ] = "auto",
    rtol: Annotated[
        str | None,
        typer.Option(help="Relative tolerance (default 1e-7 for float64, 1.3e-6 for float32)."),
    ] = None,
    atol: Annotated[
        str | None,
        typer.Option(help="Absolute tolerance (default 1e-7 for float64, 1e-5 for float32)."),
    ] = None,
    full: Annotated[
        bool,
        typer.Option("--full", help="Show every entry of a big problem, not a window."),
    ] = False,
    json_out: Annotated[
        bool, typer.Option("--json", help="Print one JSON object on stdout instead of the report.")
    ] = False,
    explain: Annotated[
        bool,
        typer.Option(
            "--explain",
            help="Show the arithmetic: v^T J as v-weighted rows of J, J u as u-weighted "
            'columns, the torch calls for each, and the usual pitfalls (--json: "explain").',
        ),
    ] = False,
    report_format: Annotated[
        ReportFormat | None,
        typer.Option(
            "--format",
            help="Write the whole report as a LaTeX fragment (needs amsmath) or as Markdown "
            "(tables, LaTeX in $...$), for notes and issues; with the --explain derivation. "
            "Not with --json (the machine format).",
        ),
    ] = None,
    sparse_json: Annotated[
        bool,
        typer.Option(
            "--sparse",
            help="With --json: write J in coordinate (COO) form, its nonzeros only (the "
            "default beyond 10,000 entries; docs/json.md).",
        ),
    ] = False,
    dense_json: Annotated[
        bool,
        typer.Option(
            "--dense",
            help="With --json: write J as dense nested lists whatever its size (up to "
            "4,000,000 entries).",
        ),
    ] = False,
    timeout: Annotated[
        str,
        typer.Option(
            help="Stop with exit 2 after this many seconds, reading the input included "
            "(0 or inf: no limit)."
        ),
    ] = "60",
    debug: Annotated[
        bool, typer.Option("--debug", help="Show the traceback of an internal error.")
    ] = False,
    # ---- second order (issue 15) ----
    hessian: Annotated[
        bool,
        typer.Option(
            "--hessian",
            help="Also the Hessian d2f/dx2 (several outputs: of v^T f, needs --v), each "
            "torch route (double backward, autograd.functional, torch.func) checked "
            "against the 30-digit reference.",
        ),
    ] = False,
    hessians: Annotated[
        bool, typer.Option("--hessians", help="Also each output's own Hessian, checked alike.")
    ] = False,
    hvp: Annotated[
        list[str] | None,
        typer.Option(
            "--hvp",
            metavar="U",
            help="Also the Hessian-vector product H u (of v^T f for several outputs): one "
            "value per variable, as --u. Works with --points (U fixed).",
        ),
    ] = None,
    graph: Annotated[
        bool,
        typer.Option(
            "--graph",
            help="Also show the graph autograd recorded, in backward order: each node's "
            "value and adjoint d(v^T y)/d(node), each edge's local derivative (--json: "
            '"graph").',
        ),
    ] = False,
    graph_out: Annotated[
        str | None,
        typer.Option(
            "--graph-out",
            metavar="FILE",
            help="Write that graph as a picture: FILE.dot (DOT text), FILE.svg or FILE.png "
            "(need Graphviz's dot). Implies --graph.",
        ),
    ] = None,
    emit: Annotated[
        str | None,
        typer.Option(
            "--emit",
            metavar="torch|jax|numpy",
            help="Print, instead of the report, a standalone Python script that computes "
            "the same numbers with only that library (numpy: J from SymPy's generated code).",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
    # --torch / --fd (issue 12): the user's own code, finite differences
    torch_code: Annotated[
        str | None,
        typer.Option(
            "--torch",
            metavar="FILE.py:NAME",
            help="Check your own torch code: IMPORTS AND RUNS FILE.py AS PYTHON (the only "
            "option that runs code) and calls NAME (a function, SomeFunction.apply, an "
            "nn.Module class or instance) with one tensor per variable; its forward values, "
            "Jacobian, y.backward(v) and forward mode are checked against the reference. "
            "Without FUNCTIONS, finite differences of your forward are the reference.",
        ),
    ] = None,
    fd: Annotated[
        bool,
        typer.Option(
            "--fd",
            help="Add central finite differences with Richardson extrapolation "
            "(numdifftools) and their error estimate, judged against the reference.",
        ),
    ] = False,
) -> None:
    code_only = torch_code is not None and functions is None and file is None
    refusal = (
        None
        if code_only
        else _refused_combination(functions, file, points, full, sparse_json, dense_json)
    )
    refusal = refusal or _refused_explain(
        json_out, points, explain, report_format.value if report_format else None
    )
    others = [
        name
        for name, on in (
            ("--expect", bool(expect)),
            ("--sample", sample is not None),
            ("--fd", fd and not code_only),
            ("--torch", torch_code is not None),
            ("--hessian/--hessians/--hvp", hessian or hessians or bool(hvp)),
            ("--graph/--graph-out", graph or graph_out is not None),
        )
        if on
    ]
    if code_only and not refusal:  # --torch without FUNCTIONS: FD of the code is the reference
        skip = [n for n in others if n not in ("--torch",)]
        skip += [n for n, on in (("--explain", explain), ("--format", report_format is not None),
                                 ("--emit", emit is not None), ("--points", points is not None))
                 if on]  # fmt: skip
        if skip:
            refusal = (f"--torch without FUNCTIONS checks your code against finite differences "
                       f"only, so it cannot take {', '.join(skip)}: give the formula too "
                       '(vjp "FUNCTIONS" --torch FILE.py:NAME ...)')  # fmt: skip
    if report_format is not None and not refusal:
        if others:
            listed = ", ".join(others)
            refusal = (f"--format {report_format.value} writes the first-order report (J, "
                       f"v^T J, J u and their derivation) and has no place for {listed}: "
                       f"drop {listed}, or use the terminal report or --json")  # fmt: skip
    refusal = refusal or _refused_graph_emit(
        points,
        json_out,
        graph,
        graph_out,
        emit,
        [
            name
            for name, on in (
                ("--explain", explain),
                ("--format", report_format is not None),
                ("--torch", torch_code is not None),
                ("--fd", fd),
                ("--expect/--sample", bool(expect) or sample is not None),
                ("--hessian/--hessians/--hvp", hessian or hessians or bool(hvp)),
            )
            if on
        ],
    )
    if refusal:
        _error(refusal)
        raise typer.Exit(int(ExitCode.BAD_INPUT))
    code = execute(
        functions=functions,
        at=at,
        v=v,
        u=u,
        variables=variables,
        outputs=outputs,
        shape=shape or [],
        points=points,
        file=file,
        dtype=dtype.value,
        device=device,
        engine=engine,
        rtol=rtol,
        atol=atol,
        json_out=json_out,
        full=full,
        timeout=timeout,
        debug=debug,
        graph=graph or graph_out is not None,
        graph_out=graph_out,
        emit=emit,
        claims=(expect or [], sample, box, seed),
        torch_code=torch_code,
        fd=fd,
        explain=explain,
        report_format=report_format.value if report_format else None,
        second={"hessian": hessian, "hessians": hessians, "hvp": hvp},  # issue 15
        layout="sparse" if sparse_json else "dense" if dense_json else "auto",
    )
    raise typer.Exit(int(code))


EMIT_TARGETS = ("torch", "jax", "numpy")


def _refused_graph_emit(
    points: str | None,
    json_out: bool,
    graph: bool,
    graph_out: str | None,
    emit: str | None,
    others: list[str] | None = None,
) -> str | None:
    """--graph, --graph-out and --emit: what they cannot be combined with, a target or file
    format that does not exist, and an SVG/PNG without Graphviz, refused before any work."""
    drawn = graph or graph_out is not None
    if emit is not None:
        if emit not in EMIT_TARGETS:
            return (f"--emit: unknown target '{printable(emit[:40])}'; use torch, jax or "
                    "numpy")  # fmt: skip
        other = [name for name, on in (("--points", points is not None), ("--json", json_out),
                                       ("--graph/--graph-out", drawn)) if on]  # fmt: skip
        other += others or []
        if other:
            return (f"--emit prints a script instead of the report, so it cannot be combined "
                    f"with {', '.join(other)}: run the two commands separately")  # fmt: skip
    if drawn and points is not None:
        return "--graph draws the graph of one point: use --at instead of --points"
    if graph_out is not None:
        from .views import dot

        try:
            dot.check_renderer(graph_out)
        except InputError as exc:
            return exc.one_line()
    return None


def _refused_explain(
    json_out: bool, points: str | None, explain: bool, report_format: str | None
) -> str | None:
    """--explain and --format: what they cannot be combined with."""
    if report_format is not None and json_out:
        return (
            f"--format {report_format} and --json are two outputs for one stdout: use --json "
            'for the machine format (with --explain for its "explain" object) or --format '
            "for the document, not both"
        )
    if points is not None and (explain or report_format is not None):
        what = "--explain" if explain else f"--format {report_format}"
        return f"{what} describes one report, and --points writes one per point: drop {what}"
    return None


def _refused_combination(
    functions: str | None,
    file: Path | None,
    points: str | None,
    full: bool,
    sparse_json: bool = False,
    dense_json: bool = False,
) -> str | None:
    """Options that make no sense together, refused (with the reason) before any work."""
    if points == "-" and functions == "-":
        return (
            "the functions and --points cannot both come from stdin; put one of them in a "
            "file (-f FILE or --points FILE)"
        )
    if sparse_json and dense_json:
        return "--sparse and --dense choose opposite JSON forms of J: give one of them"
    if points is not None and full:
        return (
            "--full shows every entry of one report, and --points writes a summary (or one "
            "JSON line per point with --json, which holds every entry): drop --full"
        )
    if functions is None and file is None and not _isatty(sys.stdin):
        return (
            "no functions given, and stdin is not read unless FUNCTIONS is '-': "
            "vjp - --at 1,2 < program.txt"
        )
    return None


class _TimeUp(BaseException):
    """The wall-clock guard ran out."""


WORKER_STACK_BYTES = 512 * 1024 * 1024
WORKER_RECURSION_LIMIT = 50_000


def _in_worker(work: Callable[[], Any], seconds: float) -> Any:
    """Run `work` in a thread with a large stack, waiting at most `seconds` (0: no limit).

    The engines recurse once per level of nesting, and statements can nest far deeper than
    one expression may (a1 = sin(x); a2 = sin(a1); ...); the big stack and recursion limit
    let them. Waiting from the main thread bounds the run inside a long C call that releases
    the interpreter lock, but not inside one that holds it: under --timeout the whole work
    runs in a child process (supervise.py) that the parent kills, and there `seconds` is 0."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:  # handed to the main thread, which classifies it
            box["error"] = exc

    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, WORKER_RECURSION_LIMIT))
    try:
        threading.stack_size(WORKER_STACK_BYTES)
        try:
            thread = threading.Thread(target=target, name="vjp-worker", daemon=True)
            thread.start()
        finally:
            threading.stack_size(0)
        thread.join(seconds if seconds > 0 else None)
    finally:
        if not thread.is_alive():
            sys.setrecursionlimit(old_limit)
    if thread.is_alive():
        raise _TimeUp()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _waiting(work: Callable[[], Any], seconds: float, what: str) -> Any:
    """`work` (reading input, which may block on a pipe or FIFO) in a daemon thread, waited
    for at most `seconds` (0: no limit); _TimeUp(what) when it is not done by then. The
    blocked thread is left behind: the process is about to exit."""
    if not seconds:
        return work()
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = work()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="vjp-reader", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise _TimeUp(what)
    if "error" in box:
        raise box["error"]
    return box["value"]


def execute(
    *,
    functions: str | None,
    at: list[str] | None,
    v: list[str] | None,
    u: list[str] | None,
    variables: str | None,
    outputs: str | None,
    file: Path | None,
    shape: list[str] | None = None,
    points: str | None = None,
    dtype: str,
    device: str,
    engine: str = "auto",
    rtol: float | str | None,
    atol: float | str | None,
    json_out: bool,
    full: bool = False,
    timeout: float | str = 0.0,
    debug: bool = False,
    graph: bool = False,
    graph_out: str | None = None,
    emit: str | None = None,
    claims: tuple[list[str], int | None, str | None, int | None] = ([], None, None, None),
    torch_code: str | None = None,
    fd: bool = False,
    explain: bool = False,
    report_format: str | None = None,
    second: dict[str, Any] | None = None,
    layout: str = "auto",
) -> ExitCode:
    """Run one command; print the result or one error line; return the exit status.

    The input is read here, under the clock. The work (parse, engines, render) then runs
    in a forked child that is killed at the deadline (supervise.py), or, with no time limit
    or no fork (JVP_CLI_NO_FORK=1), in this process."""
    if not debug:
        # Library warnings (numpy floating-point flags, torch notices) are not for the
        # user of a calculator: stderr carries one Error: line or nothing.
        import warnings

        warnings.simplefilter("ignore")

    import time

    start = time.monotonic()

    def command() -> ExitCode:
        seconds = _seconds(timeout)
        # what api.make_problem needs besides the point, v and u, for either path
        options: dict[str, Any] = dict(
            variables=variables, outputs=outputs, dtype=dtype, device=device,
            rtol=_tolerance(rtol, "--rtol"), atol=_tolerance(atol, "--atol"), engine=engine,
        )  # fmt: skip
        options.update(second or {})  # --hessian, --hessians, --hvp (issue 15)
        what = "stdin" if functions == "-" else f"-f {file}" if file is not None else ""
        spec = _candidate_options(torch_code, fd, at, points, claims[1] is not None)
        code_only = spec is not None and functions is None and file is None
        # under the clock: a FIFO nobody writes to, or `sleep 60 | vjp -`, stops in time
        source = (
            ""
            if code_only
            else _waiting(
                lambda: _read_source(functions, file), seconds, f"reading the functions from {what}"
            )
        )
        if seconds:
            seconds = max(seconds - (time.monotonic() - start), 1e-3)

        def work(limit: float) -> ExitCode:
            checking = bool(claims[0]) or any(x is not None for x in claims[1:])
            if points is not None and checking:
                raise InputError(
                    "--expect and --sample check one problem, not --points",
                    where="usage",
                    fix="drop --points, or --expect/--sample",
                )
            if points is not None:
                return _batch(
                    source, points, options, v=v, json_out=json_out, at=at, u=u, timeout=limit
                )
            from . import api

            if emit is not None:  # the script instead of the report (emit.py)
                from . import emit as emitter

                _emit(
                    _in_worker(
                        lambda: emitter.script(
                            *api.make_problem(
                                source, at=at, v=v, u=u, shape=shape or [], **options
                            ),
                            emit,
                        ),
                        limit,
                    )
                )
                return ExitCode.AGREE

            def solve() -> tuple[Any, str]:
                pv, pu = (v, u) if at or not checking else (None, None)  # v, u need a point
                if code_only:  # --torch without FUNCTIONS: FD of the code is the reference
                    return _code_only(spec, at, v, u, dtype, device, json_out)
                program, problem = api.make_problem(
                    source, at=at, v=pv, u=pu, shape=shape or [], **options,
                    explain=explain or report_format is not None,
                )  # fmt: skip
                if graph:  # --graph, --graph-out: torch's graph on the report (graph.py)
                    from . import graph as graphing

                    problem = graphing.require(problem, "--graph-out" if graph_out else "--graph")
                from .views import coo

                coo.check_layout(problem, layout)  # --dense of a huge J: refused up front
                plan = None
                if checking:  # --expect, --sample: refused (exit 2) before the engines run
                    from . import expect

                    plan = expect.prepare(program, problem, claims[0], v, u, *claims[1:])
                report = api.solve(program, problem)
                report = _candidates(report, program, spec, fd)  # --torch, --fd
                if plan is not None:
                    extra = []
                    if spec is not None and plan.sweep is not None:  # --torch with --sample
                        from . import usercode

                        extra.append(usercode.sample_candidate(spec, problem, plan.v, plan.u))
                    report = plan.run(report, extra)
                report = _uncovered(report, fd)  # what a check did not cover, said
                if graph_out is not None:
                    from .views import dot

                    dot.write(report, graph_out)
                return report, _render(report, json_out, full, report_format, layout)

            report, output = _in_worker(solve, limit)
            _emit(output)
            return report.exit_code

        if seconds:
            from . import supervise

            if supervise.available():
                try:
                    return _supervised(lambda: _classified(lambda: work(0), debug, timeout),
                                       seconds, points=points, json_out=json_out)  # fmt: skip
                except supervise.ForkFailed:
                    pass  # no process to spare: in this one, as without fork
                except supervise.ChildDied as exc:
                    if torch_code is None:
                        raise
                    # --torch: the user's code can end the process (a crash in an
                    # extension, os._exit, out of memory): their failure, not a bug of vjp
                    _error(f"{exc}: your code (--torch {torch_code}) may have ended it "
                           "(a crash, os._exit, out of memory)")  # fmt: skip
                    return ExitCode.DISAGREE
        return work(seconds)

    return _classified(command, debug, timeout)


def _candidate_options(
    torch_code: str | None,
    fd: bool,
    at: list[str] | None,
    points: str | None,
    sampling: bool = False,
) -> Any:
    """--torch and --fd checked before any work (their early check): the FILE.py:NAME spec
    (the file exists and compiles; nothing is run yet), and that a point is given (--torch
    with --sample needs none: the sweep draws its points)."""
    if torch_code is None and not fd:
        return None
    option = "--torch" if torch_code is not None else "--fd"
    if points is not None:
        raise InputError(f"{option} checks one point, not --points", where=option,
                         fix="give the point with --at")  # fmt: skip
    if not at and not (sampling and torch_code is not None and not fd):
        raise InputError(f"{option} needs a point", where=option, fix="add --at")
    if torch_code is None:
        return None
    from . import usercode

    return usercode.parse_spec(torch_code)


def _uncovered(report: Any, fd: bool) -> Any:
    """Notes where one check covers less than the report asks for: --sample sweeps first
    order only (second order and FD are judged at --at), and --fd differences the
    function, not its gradient (the Hessian is judged by the torch routes)."""
    from dataclasses import replace

    second = report.problem.second_order
    if report.sample is not None and (second or fd):
        what = " and ".join(w for w, on in (("--hessian/--hvp", second), ("--fd", fd)) if on)
        note = f"{what}: checked at --at only; the sweep covers the first-order checks"
        report = replace(report, sample=replace(report.sample,
                                                notes=(*report.sample.notes, note)))  # fmt: skip
    if report.fd is not None and second:
        note = (
            "FD differences the function (J, v^T J, J u), not its gradient: the Hessian "
            "and H u are judged by the torch routes against the reference only"
        )
        report = replace(report, fd=replace(report.fd, notes=(*report.fd.notes, note)))
    return report


def _candidates(report: Any, program: Any, spec: Any, fd: bool) -> Any:
    """The report with the candidates besides torch's autograd: the user's code (--torch)
    and finite differences of the formula (--fd), each judged against the reference."""
    if spec is not None and report.problem.point is not None:  # else only --sample's sweep
        from . import usercode

        report = usercode.attach(report, program, spec, fd)
    if fd:
        from . import fd as fd_module

        report = fd_module.attach(report, program)
    return report


def _code_only(
    spec: Any, at: Any, v: Any, u: Any, dtype: str, device: str, json_out: bool
) -> tuple[Any, str]:
    """--torch without FUNCTIONS: the report and its whole text."""
    from . import usercode
    from .views import usercode as view

    report = usercode.solve_standalone(spec, at, v, u, dtype, device)
    if json_out:
        from .views.json import dumps

        return report, dumps(view.standalone_dict(report)) + "\n"
    console = _console()
    with console.capture() as capture:
        console.print(view.standalone_rich(report, console.width))
    return report, capture.get()


def _classified(work: Callable[[], ExitCode], debug: bool, timeout: float | str) -> ExitCode:
    """`work()`, with what it raises turned into one Error: line and an exit status."""
    try:
        return work()
    except InputError as exc:
        _error(exc.one_line(), exc.caret())
        return ExitCode.BAD_INPUT
    except JvpError as exc:  # OutputError (stdout closed or full) among them
        _error(str(exc))
        return ExitCode.BAD_INPUT
    except _TimeUp as exc:
        total = _seconds(timeout)
        if exc.args:
            _error(f"timed out after {total:g} s {exc.args[0]} (--timeout)")
            return ExitCode.BAD_INPUT
        _error(
            f"stopped after {total:g} s (--timeout): the problem is too large or too hard "
            "to finish in time; simplify it or raise --timeout (0: no limit)"
        )
        return ExitCode.BAD_INPUT
    except KeyboardInterrupt:
        _error("interrupted")
        return ExitCode.INTERRUPTED
    except _Signalled as exc:
        import signal

        _error(f"stopped by {signal.Signals(exc.args[0]).name}")
        return 128 + exc.args[0]  # type: ignore[return-value]
    except RecursionError:
        _error(
            "the expression is nested too deeply for the engines; name intermediate "
            "results as separate statements"
        )
        return ExitCode.BAD_INPUT
    except MemoryError:
        _error("out of memory: the problem is too large for this machine")
        return ExitCode.BAD_INPUT
    except ValueError as exc:
        if "integer string conversion" not in str(exc):
            return _internal(exc, debug)
        # the last line of defence behind lang.check_bounds: an exact constant of the
        # result (e.g. a sum of many fractions) has more digits than Python will print
        _error(
            f"a constant in the result has more than {sys.get_int_max_str_digits():,} "
            "digits; keep constants within 1e-300 .. 1e300 and use fewer exact fractions"
        )
        return ExitCode.BAD_INPUT
    except Exception as exc:  # a bug: never Python's default status 1, which means "disagree"
        return _internal(exc, debug)


def _supervised(
    work: Callable[[], ExitCode], seconds: float, *, points: str | None, json_out: bool
) -> ExitCode:
    """`work()` in a forked child, stopped (with its whole process group) after `seconds`:
    _TimeUp then. This process relays what the child sends: --points --json lines as they
    come, through a _LineWriter (whole lines, however the run ends); the report or the
    error line, whole, once the child has finished."""
    from . import supervise

    lines = _stdout_lines() if points is not None and json_out else None
    bar = _Progress(_file_size(points)) if points is not None and _isatty(sys.stderr) else None
    # a child reading a terminal must stay in the terminal's foreground process group
    group = not (points == "-" and _isatty(sys.stdin))
    child = supervise.Child(
        work,
        group=group,
        lines=lines.write_whole if lines is not None else None,
        progress=bar.update if bar is not None else None,
    )
    try:
        done = child.wait(seconds)
    finally:
        if lines is not None:
            lines.stop()  # after a timeout or a signal: the line in flight ends whole
        if bar is not None:
            bar.stop()
    if done is None:
        raise _TimeUp()
    if done.code is None:
        raise supervise.ChildDied(f"the process computing the result stopped: {done.died}")
    for kind, data in done.output:
        text = data.decode("utf-8", "surrogateescape")
        if kind == b"o":
            _emit(text)  # OutputError: exit 2, as in one process
        else:
            _write_stderr(text)
    return done.code  # type: ignore[return-value]


def _internal(exc: BaseException, debug: bool) -> ExitCode:
    if debug:
        import traceback

        traceback.print_exc()
    _error(
        f"internal error: {type(exc).__name__}: {exc} (run with --debug for the "
        "traceback, and please report it)"
    )
    return ExitCode.INTERNAL


def _batch(
    source: str,
    points: str,
    options: dict[str, Any],
    *,
    v: list[str] | None,
    json_out: bool,
    at: list[str] | None,
    u: list[str] | None,
    timeout: float,
) -> ExitCode:
    """--points: stream the points, one JSON line each (--json) or a summary table."""
    from . import api, batch

    if at or u:
        raise InputError(
            "--points replaces --at (and takes no --u)",
            where="usage",
            fix="put the points in the file, one per row",
        )
    program, problem = api.make_problem(source, batch=True, **options)
    fixed_v = None
    if v:
        parsed = api.parse_values(v, program.outputs, "--v", "functions (outputs)")
        fixed_v = [x for name in program.outputs for x in parsed[name][1]]

    def open_points() -> Any:
        if points == "-":
            if sys.stdin is None:
                raise InputError("stdin is closed", where="--points")
            return getattr(sys.stdin, "buffer", sys.stdin)
        try:
            # opened in the worker: a FIFO that nobody opens for writing blocks here, and
            # --timeout still holds. Bytes: batch decodes each line, naming a bad one.
            return open(points, "rb")
        except OSError as exc:
            raise InputError(
                f"cannot read {printable(points)}: {exc.strerror or exc}", where="--points"
            ) from None

    from . import supervise

    bar: Any = None
    if supervise.CHANNEL is not None:  # in a child: the parent draws the bar
        bar = supervise.CHANNEL.bar()
    elif _isatty(sys.stderr):
        bar = _Progress(_file_size(points))

    lines = _stdout_lines() if json_out else None
    write = lines.write if lines is not None else None
    hvp_lines = None
    if problem.hvp is not None:  # issue 15: H u per point, added to each line
        from .batch_hvp import HvpLines

        hvp_lines = HvpLines(program, problem)
        write = hvp_lines.wrap(write)

    def work() -> Any:
        stream = open_points()
        try:
            return batch.run(
                program,
                problem,
                stream,
                fixed_v,
                write,
                bar.update if bar else None,
            )
        finally:
            if points != "-":
                stream.close()
            if bar is not None:
                bar.stop()

    try:
        summary = _in_worker(work, timeout)
    except BaseException:
        if lines is not None:  # a timeout, a signal: let the line in flight finish
            lines.stop()
        if bar is not None:  # the worker may go on counting: nothing more is drawn
            bar.stop()
        raise
    if summary.truncated:
        _silence_stdout()
    elif not json_out:
        from .views.rich import batch_summary

        console = _console()
        with console.capture() as capture:
            console.print(batch_summary(summary))
            if hvp_lines is not None:
                console.print(hvp_lines.summary(), markup=False, highlight=False)
        _emit(capture.get())
    ok = summary.disagree == 0 and summary.undefined == 0
    ok = ok and (hvp_lines is None or hvp_lines.ok)
    return ExitCode.AGREE if ok else ExitCode.DISAGREE


class _Progress:
    """A rich progress bar on stderr, shown only once a batch has run for a second. With the
    size of the input file (`total` bytes) it shows how far the reader is and an ETA; on a
    pipe, the points done. It is transient: stopped (at the end, a timeout, Ctrl-C, a
    signal) it leaves nothing on the terminal."""

    def __init__(self, total: int | None = None) -> None:
        import time

        self.start = time.monotonic()
        self.total = total if total else None
        self.bar: Any = None
        self.task: Any = None
        self.stopped = False

    def update(self, done: int, position: int = -1) -> None:
        import time

        if self.stopped:  # a count arriving after the end (from the relay) draws nothing
            return
        if self.bar is None:
            if time.monotonic() - self.start < 1.0:
                return
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            sized = self.total is not None
            columns: list[Any] = [TextColumn("{task.fields[points]:,} points")]
            if sized:
                columns += [BarColumn(), TextColumn("{task.percentage:>3.0f}% of the file"),
                            TimeRemainingColumn()]  # fmt: skip
            self.bar = Progress(*columns, console=Console(file=sys.stderr), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("points", total=self.total, points=0)
        known = self.total is not None and position >= 0
        self.bar.update(self.task, points=done, **({"completed": position} if known else {}))

    def stop(self) -> None:
        self.stopped = True
        if self.bar is not None:
            self.bar.stop()
            self.bar = None


def _file_size(points: str | None) -> int | None:
    """The size of a regular --points file (for the progress bar), else None."""
    if points is None or points == "-":
        return None
    try:
        st = os.stat(points)
    except OSError:
        return None
    import stat

    return st.st_size if stat.S_ISREG(st.st_mode) else None


def _render(
    report: Any,
    json_out: bool,
    full: bool = False,
    report_format: str | None = None,
    layout: str = "auto",
) -> str:
    """The whole stdout text, rendered before anything is written."""
    if report_format == "latex":
        from .views import latex

        return latex.to_latex(report, full)
    if report_format == "markdown":
        from .views import markdown

        return markdown.to_markdown(report, full)
    if json_out:
        from .views import json as json_view

        return json_view.to_json(report, layout) + "\n"
    from .views import rich as rich_view

    console = _console()
    with console.capture() as capture:
        console.print(rich_view.to_rich(report, full, console.width))
    return capture.get()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run, flush, and exit without interpreter teardown."""
    # The tensors here are small: with its default of one OpenMP thread per core, torch
    # spends far longer waking threads than computing (torch.sin on 8,192 doubles: 1 ms
    # with 2 threads, 11 us with 1, measured on the 2-core CI machines). A user's own
    # OMP_NUM_THREADS wins.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    # A big system is hundreds of thousands of long-lived objects (the tree, SymEngine's
    # expressions, autograd's nodes): at the default threshold the cyclic collector walks
    # them all again and again (Broyden n = 10,000: 2.5 s of 8). Collected 100 times less
    # often, cycles still go; the process is short-lived.
    import gc

    gc.set_threshold(70_000, 10, 100)
    _standard_streams()
    import signal

    for name in ("SIGTERM", "SIGHUP"):  # ended from outside: stop cleanly, lines whole
        sig = getattr(signal, name, None)
        if sig is not None and signal.getsignal(sig) is signal.SIG_DFL:
            signal.signal(sig, _on_signal)
    try:
        code = run(argv)
    except _Signalled as exc:
        code = 128 + exc.args[0]
    except KeyboardInterrupt:
        code = int(ExitCode.INTERRUPTED)
    try:
        sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass
    # Skipping teardown saves a large part of a second once torch is loaded; all output has
    # been flushed above and no files are open for writing.
    os._exit(code)


class _ClosedStdout:
    """sys.stdout when the process started with fd 1 closed (`>&-`): every write fails,
    which the CLI reports as exit 2."""

    encoding = "utf-8"

    def write(self, text: str) -> int:
        raise OSError(9, "stdout is closed")

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        raise OSError(9, "stdout is closed")


def _standard_streams() -> None:
    """Reserve closed fds 0-2 with /dev/null (so no file or pipe opened later becomes
    "stdout"); a closed stdout then fails on write, a closed stderr swallows messages."""
    closed = []
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            closed.append(fd)
    for fd in closed:
        try:
            if os.open(os.devnull, os.O_RDWR) != fd:
                return
        except OSError:
            return
    if 1 in closed:
        sys.stdout = _ClosedStdout()  # type: ignore[assignment]
    if 2 in closed:
        sys.stderr = open(os.devnull, "w")


def run(argv: list[str] | None = None) -> int:
    """Parse argv with Typer and run; returns the exit status instead of raising."""
    code = typer.main.get_command(app).main(args=argv, prog_name="vjp", standalone_mode=False)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
    except (OSError, ValueError) as exc:  # --version onto /dev/full, say
        _error(_write_failed(exc))
        code = int(ExitCode.BAD_INPUT)
    return int(code)


def _silence_stdout() -> None:
    """The reader went away (e.g. `| head -c 10`): drop what is left, quietly."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
