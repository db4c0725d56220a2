"""The input language: text -> a small expression tree, without `eval`.

A hand-written tokenizer and recursive-descent parser over a closed grammar (docs/language.md).
Both engines are built from the tree this module returns, each on its own. The parser enforces
the documented limits (input size, nesting depth, tree size, number length, constant
magnitudes) so that no later stage is ever handed something that would take minutes, and every
error carries the position of the offending character.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

from .model import InputError, LimitError, printable

# ---- limits (documented in docs/language.md and `vjp --help`) ----------------------------
# files and stdin (a dense 300 x 300 system is 1.8 MB); what a run costs is bounded by the
# tree nodes below and by the Jacobian's nonzeros (shapes.py); argument text by cli.py
MAX_INPUT_CHARS = 16_000_000
MAX_NODES = 500_000
MAX_DEPTH = 100  # nesting of parentheses, calls and exponents
MAX_NUMBER_CHARS = 100
MAX_CONST_LOG10 = 300.0  # constants must stay within 1e-300 .. 1e300 in magnitude
MAX_EXPONENT = 10_000.0  # |exponent| of a power of a non-constant base
MAX_DEGREE = 100_000.0  # product of the exponents along nested powers, e.g. ((x**60)**60)**2

CONSTANTS = ("pi", "E")
# Element-wise functions (applied to every element of a tensor), by number of arguments.
ELEMENTWISE: dict[str, int] = {
    "sin": 1, "cos": 1, "tan": 1, "asin": 1, "acos": 1, "atan": 1,
    "sinh": 1, "cosh": 1, "tanh": 1, "exp": 1, "log": 1, "sqrt": 1, "abs": 1,
    "sigmoid": 1, "relu": 1, "softplus": 1, "atan2": 2,
}  # fmt: skip
# Tensor functions: name -> (least, most) arguments. Every argument after the first is a
# constant integer: a dimension (reductions, softmax) or a size (reshape).
TENSOR_FUNCTIONS: dict[str, tuple[int, int]] = {
    "sum": (1, 2), "mean": (1, 2), "prod": (1, 2), "max": (1, 2), "min": (1, 2),
    "logsumexp": (1, 2), "softmax": (1, 2), "norm": (1, 1), "dot": (2, 2),
    "reshape": (2, 9),
}  # fmt: skip
# Functions SymEngine cannot differentiate: programs using them stay on SymPy.
NO_SYMENGINE_DERIVATIVE = frozenset({"abs", "relu", "max", "min"})
# Logarithms to other bases: the parser rewrites log(x, b) into log(x)/log(b) (log10 and log2
# likewise), so the tree holds only `log`, which every engine and domain check knows.
LOG_BASES: dict[str, int] = {"log10": 10, "log2": 2}
FUNCTIONS: dict[str, tuple[int, int]] = {
    **{name: (k, k) for name, k in ELEMENTWISE.items()},
    **TENSOR_FUNCTIONS,
    "log": (1, 2),
    **{name: (1, 1) for name in LOG_BASES},
}
# What people coming from maths or other languages type, and what this language calls it.
FUNCTION_HINTS: dict[str, str] = {
    "ln": "the natural logarithm is log(x) here",
    "lg": "write log10(x) (or log(x) for the natural logarithm)",
    "arcsin": "write asin(x)", "arccos": "write acos(x)", "arctan": "write atan(x)",
    "e": "for e^x write exp(x); Euler's number is E",
    "exp10": "write 10**x", "pow": "write a**b or a^b", "sqr": "write x**2",
    "log1p": "write log(1 + x)", "expm1": "write exp(x) - 1",
}  # fmt: skip
RESERVED = frozenset(CONSTANTS) | frozenset(FUNCTIONS)


# ---- the tree ---------------------------------------------------------------------------
# `pos` is an offset into the source; it is not part of equality, so a tree re-parsed from
# its own rendering compares equal to the original.


@dataclass(frozen=True)
class Num:
    text: str
    value: int | float = field(compare=False)
    pos: int = field(default=0, compare=False)

    def exact(self) -> Fraction:
        return Fraction(self.text)


@dataclass(frozen=True)
class Name:
    id: str
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Const:
    id: str  # "pi" | "E"
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Neg:
    operand: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Chain:
    """A left-to-right chain of one precedence level: `a + b - c` or `a * b / c`.

    Flat rather than nested so that a sum of thousands of terms is neither a deep tree nor a
    quadratic rebuild in SymPy. `kind` is "add" (ops + -) or "mul" (ops * /)."""

    kind: str
    first: Node
    rest: tuple[tuple[str, Node], ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Pow:
    base: Node
    exponent: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Slice:
    """`start:stop:step` inside brackets; None where omitted."""

    start: int | None
    stop: int | None
    step: int | None


@dataclass(frozen=True)
class Index:
    """`base[i, a:b, ...]`: integer indices and slices, all constants."""

    base: Node
    items: tuple[int | Slice, ...]
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Transpose:
    """`base.T`."""

    base: Node
    pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Node, ...]
    pos: int = field(default=0, compare=False)


Node = Num | Name | Const | Neg | Chain | Pow | Call | Index | Transpose


@dataclass(frozen=True)
class Statement:
    name: str | None  # None for an unnamed component
    expr: Node
    pos: int = field(default=0, compare=False)  # where the statement starts
    name_pos: int = field(default=0, compare=False)


@dataclass(frozen=True)
class Program:
    """A parsed program plus what follows from it: outputs, intermediates, variables."""

    source: str
    statements: tuple[Statement, ...]
    outputs: tuple[str, ...]  # names of the output statements, in order
    output_exprs: tuple[Node, ...]
    definitions: tuple[tuple[str, Node], ...]  # every named statement, in order
    variables: tuple[str, ...]  # free names, naturally ordered
    size: int = 0  # tree nodes, counted by the parser
    calls: frozenset[str] = frozenset()  # the functions the program calls
    tensor_ops: bool = False  # whether @, .T, indexing or a tensor function occurs

    def computed(self) -> list[tuple[str | None, Node]]:
        """Each output as (name, tree) where a named statement computes it, so an evaluator
        that has run `definitions` already holds its value under that name, or (None,
        tree) for an unnamed output expression, which still has to be evaluated."""
        defs = dict(self.definitions)
        return [(name if defs.get(name) is node else None, node)
                for name, node in zip(self.outputs, self.output_exprs, strict=True)]  # fmt: skip

    def functions_text(self) -> tuple[str, ...]:
        return tuple(unparse(e) for e in self.output_exprs)


# ---- tokens -----------------------------------------------------------------------------

# A number literal: the one number syntax of every place a number is read (CSV cells take
# an optional sign too; options and --at take constant expressions built from literals).
NUMBER = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
_SIGNED = re.compile(r"[ \t]*[+-]?" + NUMBER + r"[ \t]*")

_TOKEN = re.compile(
    r"[ \t\r\f\v]*(?:"  # white space before a token is part of its match
    r"(?P<num>" + NUMBER + ")"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>\*\*|[-+*/^(),;=\n@\[\]:.])"
    r"|(?P<comment>#[^\n]*)"  # to the end of the line, as in Python
    r"|(?P<bad>.)"  # anything else: reported with its position
    r"|(?P<end>$))",
    re.DOTALL,
)


class Token(NamedTuple):
    kind: str  # "num" | "name" | "op" | "end"
    text: str
    pos: int


_INVISIBLE = {"\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u180e"}
_LOOKALIKE_OPS = {
    "\u2212": "-", "\u2013": "-", "\u2014": "-", "\u00d7": "*", "\u22c5": "*", "\u00b7": "*",
    "\u2217": "*", "\u00f7": "/", "\u2215": "/", "\u2044": "/", "\uff0b": "+", "\uff0d": "-",
}  # fmt: skip
_ASCII_HINTS = {
    "%": "modulo is not part of the language",
    "!": "factorial is not part of the language",
    "&": "bitwise operators are not part of the language",
    "|": "use abs(...) for an absolute value",
    "~": "bitwise operators are not part of the language",
    "<": "comparisons are not part of the language",
    ">": "comparisons are not part of the language",
    "'": "strings are not part of the language",
    '"': "strings are not part of the language",
    "`": "backquotes are not part of the language",
    "{": "use parentheses ( ) for grouping",
    "}": "use parentheses ( ) for grouping",
    "$": "write names without sigils",
    "\\": "backslashes are not part of the language",
    "?": "conditionals are not part of the language",
}


def _bad_char(ch: str, source: str, pos: int, where: str) -> InputError:
    code = f"U+{ord(ch):04X}"
    uname = unicodedata.name(ch, "")
    label = f"{code} {uname}".strip()
    if ch in _INVISIBLE:
        return InputError(
            f"invisible character {label}",
            where=where,
            source=source,
            pos=pos,
            fix="delete it (it was probably pasted in)",
        )
    if ch in _LOOKALIKE_OPS:
        return InputError(
            f"character '{ch}' ({label}) is not an operator here",
            where=where,
            source=source,
            pos=pos,
            fix=f"type ASCII '{_LOOKALIKE_OPS[ch]}'",
        )
    if ord(ch) < 0x20 or ord(ch) == 0x7F or (0x80 <= ord(ch) < 0xA0):
        return InputError(
            f"control character {code}", where=where, source=source, pos=pos, fix="remove it"
        )
    if ord(ch) < 0x80:
        hint = _ASCII_HINTS.get(ch, "see docs/language.md for the grammar")
        return InputError(
            f"unexpected character '{ch}'", where=where, source=source, pos=pos, fix=hint
        )
    folded = unicodedata.normalize("NFKC", ch)
    if folded.isascii() and folded.isprintable() and folded.strip():
        fix = f"names and operators are ASCII only: type '{folded}'"
    elif ch.isalpha():
        fix = "names are ASCII letters, digits and _ only: spell it out (e.g. theta, alpha)"
    else:
        fix = "the language is ASCII only"
    return InputError(
        f"non-ASCII character '{printable(ch)}' ({label})",
        where=where,
        source=source,
        pos=pos,
        fix=fix,
    )


def tokenize(source: str, where: str = "the functions") -> list[Token]:
    if len(source) > MAX_INPUT_CHARS:
        raise LimitError(
            f"input is {len(source):,} characters, more than the limit of {MAX_INPUT_CHARS:,}",
            where=where,
            fix="split the problem or read it from a smaller file",
        )
    tokens: list[Token] = []
    append = tokens.append
    depth = 0  # open ( and [: a newline inside them continues the statement, as in Python
    for m in _TOKEN.finditer(source):
        kind = m.lastgroup or "end"
        if kind == "end":
            break
        if kind == "comment":
            continue
        pos = m.start(kind)
        if kind == "bad":
            raise _bad_char(source[pos], source, pos, where)
        text = m.group(kind)
        if kind == "op":
            if text in "([":
                depth += 1
            elif text in ")]":
                depth = max(0, depth - 1)
            elif text == "\n" and depth:
                continue
        if kind == "num" and len(text) > MAX_NUMBER_CHARS:
            raise LimitError(
                f"number literal of {len(text)} characters (limit {MAX_NUMBER_CHARS})",
                where=where,
                source=source,
                pos=pos,
                fix="write it in scientific notation, e.g. 1.5e40",
            )
        append(Token(kind, text, pos))
    n = len(source)
    tokens.append(Token("end", "", n))
    return tokens


def _number(tok: Token, source: str, where: str) -> Num:
    text = tok.text
    if text.isdigit():
        value: int | float = int(text)
        if len(text.lstrip("0")) > 300:
            raise LimitError(
                "integer literal is larger than 1e300",
                where=where,
                source=source,
                pos=tok.pos,
                fix="use a smaller number",
            )
        return Num(text, value, tok.pos)
    value = float(text)
    if math.isinf(value):
        raise LimitError(
            f"number {text} is beyond the float64 range (about 1.8e308)",
            where=where,
            source=source,
            pos=tok.pos,
            fix="use a smaller number",
        )
    if value == 0.0 and re.search(r"[1-9]", text.split("e")[0].split("E")[0]):
        raise LimitError(
            f"number {text} underflows float64 to 0",
            where=where,
            source=source,
            pos=tok.pos,
            fix="use 0 or a number above 1e-300",
        )
    if value != 0.0 and abs(math.log10(abs(value))) > MAX_CONST_LOG10:
        raise LimitError(
            f"number {text} is outside the range 1e-300 .. 1e300",
            where=where,
            source=source,
            pos=tok.pos,
            fix="rescale the problem",
        )
    return Num(text, value, tok.pos)


# ---- parser -----------------------------------------------------------------------------


class _Parser:
    def __init__(self, source: str, where: str, allow_statements: bool) -> None:
        self.source = source
        self.where = where
        self.toks = tokenize(source, where)
        self.i = 0
        self.last = len(self.toks) - 1
        self.tok = self.toks[0]  # the current token: an attribute, read millions of times
        self.depth = 0
        self.nodes = 0
        self.calls: set[str] = set()
        self.names: list[tuple[str, int]] = []  # every Name with its position, in order
        self.statement_names: list[list[tuple[str, int]]] = []
        self.tensor_ops = False
        self.allow_statements = allow_statements

    # -- helpers
    def advance(self) -> Token:
        t = self.tok
        self.i = min(self.i + 1, self.last)
        self.tok = self.toks[self.i]
        return t

    def error(self, what: str, tok: Token | None = None, fix: str | None = None) -> InputError:
        t = tok or self.tok
        return InputError(what, where=self.where, source=self.source, pos=t.pos, fix=fix)

    def count(self, node: Node) -> Node:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise LimitError(
                f"expression has more than {MAX_NODES:,} nodes",
                where=self.where,
                fix="split the problem into smaller ones",
            )
        return node

    def describe(self, t: Token) -> str:
        if t.kind == "end":
            return "end of input"
        if t.text == "\n":
            return "end of line"
        return f"'{t.text}'"

    def enter(self, t: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise LimitError(
                f"nesting deeper than {MAX_DEPTH} levels",
                where=self.where,
                source=self.source,
                pos=t.pos,
                fix="name intermediate results as separate statements",
            )

    # -- grammar
    def program(self) -> list[Statement]:
        stmts: list[Statement] = []
        while True:
            while self.tok.kind == "op" and self.tok.text in (";", "\n"):
                self.advance()
            if self.tok.kind == "end":
                break
            first_name = len(self.names)
            stmts.append(self.statement())
            self.statement_names.append(self.names[first_name:])
            t = self.tok
            if t.kind == "end":
                break
            if not (t.kind == "op" and t.text in (";", "\n")):
                raise self.unexpected(t)
        if not stmts:
            raise InputError(
                "no expression given",
                where=self.where,
                fix='write one or more expressions separated by ";"',
            )
        return stmts

    def statement(self) -> Statement:
        start = self.tok
        nxt = self.toks[self.i + 1]
        if start.kind == "name" and nxt.kind == "op" and nxt.text == "=":
            after = self.toks[self.i + 2]
            if after.kind == "op" and after.text == "=":
                raise self.error(
                    "'==' is not part of the language",
                    nxt,
                    fix="comparisons are not supported; use '=' only to name a statement",
                )
            if not self.allow_statements:
                raise self.error("a name = value is not allowed here", start)
            self.advance()
            self.advance()
            if start.text in RESERVED:
                kind = "function" if start.text in FUNCTIONS else "constant"
                raise self.error(
                    f"'{start.text}' is a built-in {kind} and cannot be assigned",
                    start,
                    fix="choose another name",
                )
            if self.tok.kind == "end" or self.tok.text in (";", "\n"):
                raise self.error(
                    f"nothing after '{start.text} ='", fix="write an expression after '='"
                )
            expr = self.expr()
            return Statement(start.text, expr, start.pos, start.pos)
        return Statement(None, self.expr(), start.pos, start.pos)

    def unexpected(self, t: Token) -> InputError:
        if t.kind == "op" and t.text == "=":
            return self.error(
                "unexpected '='", t, fix="only 'name = expression' may use '=' (no comparisons)"
            )
        if t.kind == "op" and t.text == ")":
            return self.error("unmatched ')'", t, fix="remove it or add the missing '('")
        if t.kind in ("name", "num") or (t.kind == "op" and t.text == "("):
            prev = self.toks[self.i - 1] if self.i else t
            return self.error(
                f"unexpected {self.describe(t)} after '{prev.text}'",
                t,
                fix="write an operator between them, e.g. 2*x, not 2x",
            )
        return self.error(f"unexpected {self.describe(t)}", t)

    def expr(self) -> Node:
        first_tok = self.tok
        first = self.term()
        rest: list[tuple[str, Node]] = []
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.advance().text
            rest.append((op, self.term()))
        if not rest:
            return first
        return self.count(Chain("add", first, tuple(rest), first_tok.pos))

    def term(self) -> Node:
        first_tok = self.tok
        first = self.unary()
        rest: list[tuple[str, Node]] = []
        while self.tok.kind == "op" and self.tok.text in ("*", "/", "@"):
            op = self.advance()
            if op.text == "@":
                self.tensor_ops = True
            if self.tok.kind == "op" and self.tok.text == "/" and op.text == "/":
                raise self.error(
                    "'//' (floor division) is not part of the language",
                    op,
                    fix="use '/' for division",
                )
            rest.append((op.text, self.unary()))
        if not rest:
            return first
        return self.count(Chain("mul", first, tuple(rest), first_tok.pos))

    def unary(self) -> Node:
        # Iterative, so that 100,000 signs in a row neither recurse nor build a deep tree:
        # consecutive signs fold into one negation or none.
        negative = False
        first = self.tok
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            if self.advance().text == "-":
                negative = not negative
        node = self.power()
        return self.count(Neg(node, first.pos)) if negative else node

    def power(self) -> Node:
        base = self.postfix()
        if self.tok.kind == "op" and self.tok.text in ("**", "^"):
            op = self.advance()
            self.enter(op)
            exponent = self.unary()  # right-associative; -x^2 is -(x^2), 2^-1 is allowed
            self.depth -= 1
            return self.count(Pow(base, exponent, op.pos))
        return base

    def postfix(self) -> Node:
        node = self.atom()
        while self.tok.kind == "op" and self.tok.text in ("[", "."):
            t = self.advance()
            if t.text == ".":
                attr = self.tok
                if attr.kind == "name" and attr.text == "T":
                    self.advance()
                    self.tensor_ops = True
                    node = self.count(Transpose(node, t.pos))
                    continue
                if attr.kind == "num" or (attr.kind == "op" and attr.text == "."):
                    raise self.error("unexpected '.'", t, fix="write numbers like 1.5 or .5")
                raise self.error(
                    f"unexpected '.' before {self.describe(attr)}",
                    t,
                    fix="the only attribute is .T (transpose); a number needs a digit next "
                    "to its decimal point",
                )
            self.tensor_ops = True
            node = self.count(Index(node, self.index_items(t), t.pos))
        return node

    def index_items(self, open_tok: Token) -> tuple[int | Slice, ...]:
        items: list[int | Slice] = []
        while True:
            parts: list[int | None] = [self.index_int()]
            while self.tok.kind == "op" and self.tok.text == ":":
                self.advance()
                parts.append(self.index_int())
            if len(parts) > 3:
                raise self.error("a slice has at most start:stop:step", fix="remove a ':'")
            if len(parts) == 1:
                if parts[0] is None:
                    raise self.error(
                        f"expected an index but found {self.describe(self.tok)}",
                        fix="write x[0], x[0, 1], x[1:3] or x[:, 0]",
                    )
                items.append(parts[0])
            else:
                if len(parts) == 3 and parts[2] is not None and parts[2] <= 0:
                    raise self.error("a slice step must be positive", open_tok)
                items.append(Slice(*parts, *([None] * (3 - len(parts)))))  # type: ignore[arg-type]
            if self.tok.kind == "op" and self.tok.text == ",":
                self.advance()
                continue
            break
        if not (self.tok.kind == "op" and self.tok.text == "]"):
            raise self.error(
                f"'[' at {self._at(open_tok.pos)} is never closed; found {self.describe(self.tok)}",
                fix="indices are constant integers or slices, closed by ']'",
            )
        self.advance()
        return tuple(items)

    def index_int(self) -> int | None:
        """An optional constant integer inside brackets (a sign and digits)."""
        t = self.tok
        negative = False
        if t.kind == "op" and t.text in ("-", "+"):
            negative = t.text == "-"
            self.advance()
        n = self.tok
        if n.kind == "num":
            if not re.fullmatch(r"[0-9]+", n.text) or len(n.text) > 9:
                raise self.error(
                    f"index {n.text} is not a small integer",
                    n,
                    fix="indices are integers like 0, 2 or -1",
                )
            self.advance()
            return -int(n.text) if negative else int(n.text)
        if negative or t is not n:
            raise self.error(f"expected an integer after '{t.text}'", n)
        if n.kind == "name":
            raise self.error(
                f"index '{n.text}' is not a constant integer",
                n,
                fix="indices are integers like 0, 2 or -1",
            )
        return None

    def atom(self) -> Node:
        t = self.tok
        if t.kind == "num":
            self.advance()
            return self.count(_number(t, self.source, self.where))
        if t.kind == "name":
            self.advance()
            if self.tok.kind == "op" and self.tok.text == "(":
                return self.call(t)
            if t.text in FUNCTIONS:
                raise self.error(
                    f"'{t.text}' is a function", t, fix=f"call it with parentheses: {t.text}(...)"
                )
            if t.text in CONSTANTS:
                return self.count(Const(t.text, t.pos))
            self.names.append((t.text, t.pos))
            return self.count(Name(t.text, t.pos))
        if t.kind == "op" and t.text == "(":
            self.advance()
            self.enter(t)
            if self.tok.kind == "op" and self.tok.text == ")":
                raise self.error("empty parentheses", fix="put an expression inside ( )")
            node = self.expr()
            self.depth -= 1
            if not (self.tok.kind == "op" and self.tok.text == ")"):
                raise self.error(
                    f"'(' at {self._at(t.pos)} is never closed; found {self.describe(self.tok)}",
                    fix="add the missing ')'",
                )
            self.advance()
            return node
        if t.kind == "end" or (t.kind == "op" and t.text in (";", "\n")):
            prev = self.toks[self.i - 1] if self.i else None
            after = f" after '{prev.text}'" if prev is not None else ""
            raise self.error(f"expression ends too early{after}", t, fix="complete the expression")
        if t.kind == "op" and t.text in ("*", "/", "**", "^", ")", ",", "=", "@", "]", ":"):
            raise self.error(
                f"unexpected '{t.text}'", t, fix="an operand (number, name or '(') must come first"
            )
        raise self.unexpected(t)

    def _at(self, pos: int) -> str:
        """Where `pos` is, for a message: its column, and its line when there are several."""
        if "\n" not in self.source:
            return f"column {self._col(pos)}"
        return f"line {self.source.count(chr(10), 0, pos) + 1}, column {self._col(pos)}"

    def _col(self, pos: int) -> int:
        return pos - (self.source.rfind("\n", 0, pos) + 1) + 1

    def call(self, name_tok: Token) -> Node:
        name = name_tok.text
        if name not in FUNCTIONS:
            if name in CONSTANTS:
                raise self.error(
                    f"'{name}' is a constant, not a function",
                    name_tok,
                    fix=f"write {name}*(...) to multiply",
                )
            if name in FUNCTION_HINTS:
                fix = FUNCTION_HINTS[name]
            else:
                import difflib

                close = difflib.get_close_matches(name, FUNCTIONS, n=1, cutoff=0.75)
                fix = (f"did you mean {close[0]}? " if close else "") + (
                    "known functions: " + ", ".join(sorted(FUNCTIONS)))  # fmt: skip
            raise self.error(f"unknown function '{name}'", name_tok, fix=fix)
        open_tok = self.advance()  # '('
        self.enter(open_tok)
        args: list[Node] = []
        if not (self.tok.kind == "op" and self.tok.text == ")"):
            args.append(self.expr())
            while self.tok.kind == "op" and self.tok.text == ",":
                self.advance()
                args.append(self.expr())
        self.depth -= 1
        if not (self.tok.kind == "op" and self.tok.text == ")"):
            raise self.error(
                f"{name}( at {self._at(open_tok.pos)} is never closed; "
                f"found {self.describe(self.tok)}",
                fix="add the missing ')'",
            )
        self.advance()
        least, most = FUNCTIONS[name]
        if not least <= len(args) <= most:
            want = f"{least}" if least == most else f"{least} to {most}"
            raise self.error(
                f"{name} takes {want} argument{'s' if most > 1 else ''}, got {len(args)}",
                name_tok,
            )
        if name in LOG_BASES or (len(args) == 2 and name == "log"):
            return self.log_base(name_tok, args)
        self.calls.add(name)
        if name in TENSOR_FUNCTIONS:
            self.tensor_ops = True
        return self.count(Call(name, tuple(args), name_tok.pos))

    def log_base(self, name_tok: Token, args: list[Node]) -> Node:
        """log10(x), log2(x), log(x, b) -> log(x)/log(b)."""
        pos = name_tok.pos
        if name_tok.text in LOG_BASES:
            b = LOG_BASES[name_tok.text]
            base: Node = self.count(Num(str(b), b, pos))
        else:
            base = args[1]
        self.calls.add("log")
        top = self.count(Call("log", (args[0],), pos))
        bottom = self.count(Call("log", (base,), pos))
        return self.count(Chain("mul", top, (("/", bottom),), pos))


def parse_expression(source: str, where: str = "the expression") -> Node:
    """Parse one expression (no statements, no ';')."""
    p = _Parser(source, where, allow_statements=False)
    if p.tok.kind == "end":
        raise InputError("empty expression", where=where, fix="write a value")
    node = p.expr()
    if p.tok.kind != "end":
        raise p.unexpected(p.tok)
    check_bounds(node, source, where)
    return node


def parse_program(
    source: str,
    *,
    variables: Sequence[str] | None = None,
    outputs: Sequence[str] | None = None,
    where: str = "the functions",
) -> Program:
    """Parse statements separated by ';' or newlines and work out outputs and variables.

    A named statement whose name a later statement uses is an intermediate; every other
    statement is an output. Variables are the remaining free names, naturally ordered
    (x2 before x10), unless `variables` fixes the order."""
    p = _Parser(source, where, allow_statements=True)
    stmts = p.program()
    defined: dict[str, Statement] = {}
    used_later: set[str] = set()
    free: dict[str, int] = {}
    all_names = {s.name for s in stmts if s.name is not None}
    bounds: dict[str, Bound] = {}
    folder = _Folder({})
    for st, st_names in zip(stmts, p.statement_names, strict=True):
        for name, pos in st_names:
            if name in defined:
                used_later.add(name)
            elif name in all_names:
                raise InputError(
                    f"'{name}' is used before it is defined",
                    where=where,
                    source=source,
                    pos=pos,
                    fix="define it in an earlier statement",
                )
            else:
                free.setdefault(name, pos)
        if st.name is not None:
            if st.name in defined:
                raise InputError(
                    f"'{st.name}' is defined twice",
                    where=where,
                    source=source,
                    pos=st.name_pos,
                    fix="give each statement its own name",
                )
            defined[st.name] = st
        bound = check_bounds(st.expr, source, where, bounds, folder)
        if st.name is not None:
            bounds[st.name] = bound
            folder.defs[st.name] = st.expr

    out_names: list[str] = []
    out_exprs: list[Node] = []
    taken = set(defined) | set(free)
    for k, st in enumerate(stmts, start=1):
        if st.name is None:
            name = f"f{k}"
            while name in taken:
                name += "_"
            taken.add(name)
            out_names.append(name)
            out_exprs.append(st.expr)
        elif st.name not in used_later:
            out_names.append(st.name)
            out_exprs.append(st.expr)
    if outputs is not None:
        # the names the report prints: named statements, and f1, f2, ... for unnamed ones
        available = {name: st.expr for name, st in defined.items()}
        available.update(
            (name, expr)
            for name, expr in zip(out_names, out_exprs, strict=True)
            if name not in defined
        )
        chosen: list[str] = []
        for name in outputs:
            if name not in available:
                raise InputError(
                    f"no statement is called '{printable(name)}'",
                    where="--outputs",
                    fix=f"the statements are {', '.join(available)}",
                )
            if name in chosen:
                raise InputError(
                    f"'{name}' is listed twice",
                    where="--outputs",
                    fix="list each output once",
                )
            chosen.append(name)
        out_names = chosen
        out_exprs = [available[n] for n in chosen]

    if variables is not None:
        order = list(variables)
        for name in order:
            if name in defined:
                raise InputError(
                    f"--vars names '{name}', which a statement defines",
                    where="--vars",
                    fix="list only the free variables",
                )
        missing = [n for n in free if n not in order]
        if missing:
            raise InputError(
                f"--vars does not list {', '.join(missing)}, used at {p._at(free[missing[0]])}",
                where="--vars",
                fix="add every variable the functions use",
            )
    else:
        order = sorted(free, key=natural_key)
    return Program(
        source=source,
        statements=tuple(stmts),
        outputs=tuple(out_names),
        output_exprs=tuple(out_exprs),
        definitions=tuple((s.name, s.expr) for s in stmts if s.name is not None),
        variables=tuple(order),
        size=p.nodes,
        calls=frozenset(p.calls),
        tensor_ops=p.tensor_ops,
    )


_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def check_identifier(name: str, where: str) -> str:
    """A plain ASCII identifier that is not a built-in name, or an InputError."""
    if not _IDENT.fullmatch(name):
        shown = printable(name)
        raise InputError(
            f"'{shown}' is not a valid variable name",
            where=where,
            fix="use ASCII letters, digits and _, starting with a letter",
        )
    if name in RESERVED:
        raise InputError(
            f"'{name}' is a built-in name, not a variable", where=where, fix="choose another name"
        )
    return name


def natural_key(name: str) -> tuple[tuple[int, str | int], ...]:
    """Sort key that orders x2 before x10 and r before theta."""
    parts = re.split(r"([0-9]+)", name)
    key: list[tuple[int, str | int]] = []
    for i, part in enumerate(parts):
        if i % 2:
            key.append((1, int(part)))
        elif part:
            key.append((0, part.lower()))
    key.append((2, name))
    return tuple(key)


# ---- walking the tree -------------------------------------------------------------------


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, Neg):
        return (node.operand,)
    if isinstance(node, Chain):
        return (node.first, *(n for _, n in node.rest))
    if isinstance(node, Pow):
        return (node.base, node.exponent)
    if isinstance(node, Call):
        return node.args
    if isinstance(node, (Index, Transpose)):
        return (node.base,)
    return ()


def names_in(node: Node) -> list[tuple[str, int]]:
    """Every Name in the tree with its position, in source order (iterative)."""
    out: list[tuple[str, int]] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Name):
            out.append((n.id, n.pos))
        else:
            stack.extend(reversed(children(n)))
    return out


def fold(node: Node, leaf: Callable[[Node], object], combine: Callable[..., object]) -> object:
    """Post-order evaluation without recursion limits mattering: depth is bounded by the
    parser (MAX_DEPTH), chains are flat."""
    kids = children(node)
    if not kids:
        return leaf(node)
    return combine(node, [fold(k, leaf, combine) for k in kids])


# ---- bounds: refuse constants and powers that no engine could compute quickly ------------


# (value of a constant sub-expression or None, degree, and the range lo..hi of log10 of the
# numeric coefficients of its terms, as SymPy will fold them: 3*x*1e200 has (None, 1, 200.5,
# 200.5), and an outer factor scales that range)
Bound = tuple[float | None, float, float, float]

FOLD_BUDGET = 2_000_000  # work units for finding what x - x + 10 folds to, per program

# A folded sub-expression: its constant part and the coefficient of each of its terms; a term
# is a frozenset of (factor, power), a factor a variable or an opaque sub-expression's key.
Form = tuple[float, dict[object, float]]


class _Folder:
    """What SymPy's automatic simplification makes of a sub-expression, roughly: a constant
    plus a linear combination of product terms with canonical keys, so x - x + 10 is the
    constant 10, x*y - y*x + 2 is 2 and x/x is 1. Only asked about the base and exponent of
    powers that are not literally constant; gives up (None) beyond a work budget."""

    def __init__(self, defs: dict[str, Node]) -> None:
        self.defs = defs  # named statements: SymPy substitutes their expressions
        self.memo: dict[int, Form | None] = {}
        self.keys: dict[int, object] = {}
        self.budget = FOLD_BUDGET
        self.keep: list[Node] = []  # nodes whose id() is memoised stay alive

    def form(self, n: Node) -> Form | None:
        k = id(n)
        if k not in self.memo:
            self.keep.append(n)
            self.memo[k] = self._form(n) if self.budget > 0 else None
        return self.memo[k]

    def _spend(self, units: int) -> bool:
        self.budget -= units
        return self.budget > 0

    def key(self, n: Node) -> object:
        """A canonical key of `n`'s folded form (equal for x*y and y*x)."""
        k = id(n)
        if k not in self.keys:
            f = self.form(n)
            self.keys[k] = ("id", k) if f is None else (f[0], frozenset(f[1].items()))
        return self.keys[k]

    def opaque(self, n: Node, tag: object) -> Form:
        return 0.0, {frozenset({(tag, 1.0)}): 1.0}

    @staticmethod
    def monomial(f: Form) -> tuple[float, frozenset[tuple[object, float]]] | None:
        c, terms = f
        if not terms:
            return c, frozenset()
        if c == 0 and len(terms) == 1:
            ((term, coef),) = terms.items()
            return coef, term  # type: ignore[return-value]
        return None

    def product(self, f: Form, g: Form, invert: bool, n: Node, gnode: Node) -> Form | None:
        mg = self.monomial(g)
        if mg is not None and not mg[1]:  # a number
            c = mg[0]
            if invert:
                if c == 0:
                    return None
                c = 1.0 / c
            return f[0] * c, {t: a * c for t, a in f[1].items()}
        if mg is None:  # a sum: an opaque factor
            mg = 1.0, frozenset({(("add", self.key(gnode)), 1.0)})
        coef, term = mg
        if invert:
            if coef == 0:
                return None
            coef, term = 1.0 / coef, frozenset((fac, -p) for fac, p in term)
        mf = self.monomial(f)
        if mf is None:
            if not f[1]:
                return None
            return self.opaque(n, ("node", id(n)))
        powers: dict[object, float] = {}
        for fac, p in (*mf[1], *term):
            powers[fac] = powers.get(fac, 0.0) + p
        merged = frozenset((fac, p) for fac, p in powers.items() if p != 0)
        total = mf[0] * coef
        return (total, {}) if not merged else (0.0, {merged: total})

    def _form(self, n: Node) -> Form | None:
        if isinstance(n, Num):
            return float(n.value), {}
        if isinstance(n, Const):
            return (math.pi if n.id == "pi" else math.e), {}
        if isinstance(n, Name):
            if n.id in self.defs:
                return self.form(self.defs[n.id])
            return 0.0, {frozenset({(("var", n.id), 1.0)}): 1.0}
        if isinstance(n, Neg):
            f = self.form(n.operand)
            return None if f is None else (-f[0], {t: -a for t, a in f[1].items()})
        if isinstance(n, Chain) and n.kind == "add":
            first = self.form(n.first)
            if first is None:
                return None
            c, terms = first[0], dict(first[1])
            for op, child in n.rest:
                g = self.form(child)
                if g is None or not self._spend(len(g[1]) + 1):
                    return None
                sign = 1.0 if op == "+" else -1.0
                c += sign * g[0]
                for t, a in g[1].items():
                    old = terms.get(t, 0.0)
                    new = old + sign * a
                    if abs(new) <= 1e-12 * max(abs(old), abs(a)):
                        terms.pop(t, None)  # x - x: cancelled, as SymPy cancels it
                    else:
                        terms[t] = new
            return c, terms
        if isinstance(n, Chain):
            f = self.form(n.first)
            for op, child in n.rest:
                g = self.form(child)
                if f is None or g is None or not self._spend(len(f[1]) + 1):
                    return None
                if op == "@":
                    return self.opaque(n, ("node", id(n)))
                f = self.product(f, g, op == "/", n, child)
            return f
        if isinstance(n, Pow):
            fb, fe = self.form(n.base), self.form(n.exponent)
            if fb is None or fe is None:
                return None
            if not fe[1]:
                e = fe[0]
                if not fb[1]:
                    value = const_eval_node(n, [fb[0], e])
                    return None if value is None else (value, {})
                mb = self.monomial(fb)
                if mb is not None and float(e).is_integer():
                    coef = const_eval_node(n, [mb[0], e])
                    if coef is None:
                        return None
                    return 0.0, {frozenset((fac, p * e) for fac, p in mb[1]): coef}
            return self.opaque(n, ("pow", self.key(n.base), self.key(n.exponent)))
        if isinstance(n, Call):
            forms = [self.form(a) for a in n.args]
            if any(f is None for f in forms):
                return None
            if all(not f[1] for f in forms) and n.func in _MATH:  # type: ignore[index]
                value = const_eval_node(n, [f[0] for f in forms])  # type: ignore[index]
                return None if value is None else (value, {})
            return self.opaque(n, ("call", n.func, *(self.key(a) for a in n.args)))
        if isinstance(n, Index):
            return self.opaque(n, ("index", self.key(n.base), n.items))
        if isinstance(n, Transpose):
            return self.opaque(n, ("T", self.key(n.base)))
        raise AssertionError(n)


def _log10(value: float) -> float:
    return math.log10(abs(value)) if value != 0 and math.isfinite(value) else 0.0


def check_bounds(
    node: Node,
    source: str,
    where: str,
    env: dict[str, Bound] | None = None,
    folder: _Folder | None = None,
) -> Bound:
    """Refuse constants and powers that no engine could compute quickly.

    Every constant sub-expression is folded with float arithmetic only (never big integers),
    so 2**(10**100) or 9**9**9**9 is refused at once and re-association like
    ((2**60)**60)**60 cannot slip past a per-operator check. Non-constant sub-expressions
    carry a bound on their polynomial degree, so ((x**60)**60)**60 is refused too, and the
    range of their numeric coefficients, so x*1e300*1e300 (SymPy: 1e600*x) is refused. The
    base and exponent of a power are judged by the value SymPy will fold them to, so
    2**(y - y + 10**5) and (x - x + 10)**10000 are seen as constants. `env` carries the bounds
    of named statements (and `folder` their expressions), so splitting a tower into
    statements changes nothing."""
    folder = folder if folder is not None else _Folder({})

    def refuse(n: Node, what: str, fix: str) -> LimitError:
        return LimitError(what, where=where, source=source, pos=n.pos, fix=fix)

    def constant(value: float) -> Bound:
        lg = _log10(value)
        return value, 0.0, lg, lg

    def leaf(n: Node) -> Bound:
        if isinstance(n, Num):
            return constant(float(n.value))
        if isinstance(n, Const):
            return constant(math.pi if n.id == "pi" else math.e)
        assert isinstance(n, Name)
        return env.get(n.id, (None, 1.0, 0.0, 0.0)) if env else (None, 1.0, 0.0, 0.0)

    def is_sum(n: Node) -> bool:
        while isinstance(n, Neg):
            n = n.operand
        return isinstance(n, Chain) and n.kind == "add"

    def folded(n: Node, value: float | None) -> float | None:
        """The constant `n` folds to, or None: x - x + 10 is 10."""
        if value is not None:
            return value
        f = folder.form(n)
        return f[0] if f is not None and not f[1] else None

    def coefficients(n: Node, vals: list[Bound]) -> tuple[float, float]:
        """The range of log10 of the numeric coefficients of `n`'s terms."""
        kind = type(n)
        if kind is Call or kind is Pow:
            return 0.0, 0.0  # their numbers stay inside
        if kind is not Chain:  # Neg, Index, Transpose
            return vals[0][2], vals[0][3]
        if n.kind == "add":  # type: ignore[union-attr]
            return min(v[2] for v in vals), max(v[3] for v in vals)
        numbers = lo = hi = 0.0
        others = 0
        last: tuple[str, Node, Bound] | None = None
        op, kid = "*", n.first  # type: ignore[union-attr]
        for k, v in enumerate(vals):
            if k:
                op, kid = n.rest[k - 1]  # type: ignore[union-attr]
            if v[0] is not None:
                numbers += v[2] if op != "/" else -v[2]
                continue
            others += 1
            last = op, kid, v
            if (v[2] == 0.0 and v[3] == 0.0) or is_sum(kid):
                continue
            lo, hi = (lo + v[2], hi + v[3]) if op != "/" else (lo - v[3], hi - v[2])
        if others == 1 and last is not None and last[0] != "/" and is_sum(last[1]):
            v = last[2]  # 3*(x + 1e200*y): SymPy distributes the 3
            return v[2] + numbers, v[3] + numbers
        return lo + numbers, hi + numbers

    def combine(n: Node, vals: list[Bound]) -> Bound:
        consts = [v[0] for v in vals]
        degree = max(v[1] for v in vals)
        lo = hi = 0.0
        if None in consts:
            lo, hi = coefficients(n, vals)
        if isinstance(n, Pow):
            (b, db, blo, bhi), (e, _, _, _) = vals[0], vals[1]
            if b is None or e is None:
                e, b = folded(n.exponent, e), folded(n.base, b)
                consts = [b, e]
            if e is not None and b is None:
                if abs(e) > MAX_EXPONENT:
                    raise refuse(
                        n,
                        f"exponent {e:g} is too large (limit {MAX_EXPONENT:g})",
                        "use a smaller exponent",
                    )
                degree = db * max(1.0, abs(e))
                if not is_sum(n.base):  # (2*x)**3 is 8*x**3; (x + 2)**3 stays
                    lo, hi = sorted((blo * e, bhi * e))
                else:
                    f = folder.form(n.base)
                    m = _Folder.monomial(f) if f is not None else None
                    lo = hi = _log10(m[0]) * e if m is not None else 0.0
        elif isinstance(n, Chain) and n.kind == "mul":
            degree = sum(v[1] for v in vals)
        if degree > MAX_DEGREE:
            raise refuse(
                n,
                f"powers and products reach degree {degree:g} (limit {MAX_DEGREE:g})",
                "use smaller exponents",
            )
        if any(c is None for c in consts):
            if max(abs(lo), abs(hi)) > MAX_CONST_LOG10:
                big = hi if abs(hi) >= abs(lo) else lo
                raise refuse(
                    n,
                    f"numeric factors here multiply to about 1e{big:.0f}, beyond the range "
                    "1e-300 .. 1e300",
                    "keep constants within 1e-300 .. 1e300",
                )
            return None, degree, lo, hi
        value = const_eval_node(n, consts)  # type: ignore[arg-type]
        if value is None:
            # undefined constant (e.g. log(0)): left for the engines to report
            return None, 0.0, 0.0, 0.0
        if not math.isfinite(value) or abs(_log10(value)) > MAX_CONST_LOG10:
            # NaN too: 1e300*1e300*0 overflows on the way, while SymPy folds it exactly
            shown = unparse(n)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise refuse(
                n,
                f"constant {shown} is beyond the range 1e-300 .. 1e300 in magnitude",
                "keep constants within 1e-300 .. 1e300",
            )
        return constant(value)

    result = fold(node, leaf, combine)
    assert isinstance(result, tuple)
    return result  # type: ignore[return-value]


_MATH: dict[str, Callable[..., float]] = {
    "sin": math.sin, "cos": math.cos, "tan": math.tan, "asin": math.asin, "acos": math.acos,
    "atan": math.atan, "sinh": math.sinh, "cosh": math.cosh, "tanh": math.tanh,
    "exp": math.exp, "log": math.log, "sqrt": math.sqrt, "abs": abs, "atan2": math.atan2,
    "sigmoid": lambda t: 1.0 / (1.0 + math.exp(-t)) if t > -700 else 0.0,
    "relu": lambda t: max(t, 0.0),
    "softplus": lambda t: math.log1p(math.exp(t)) if t < 30 else t + math.log1p(math.exp(-t)),
}  # fmt: skip


def const_eval_node(n: Node, args: Sequence[float]) -> float | None:
    """One step of float evaluation of a constant node; None where it is undefined."""
    try:
        if isinstance(n, Neg):
            return -args[0]
        if isinstance(n, Chain):
            acc = args[0]
            for (op, _), x in zip(n.rest, args[1:], strict=True):
                if op == "+":
                    acc += x
                elif op == "-":
                    acc -= x
                elif op == "*":
                    acc *= x
                else:
                    acc /= x
            return acc
        if isinstance(n, Pow):
            r = args[0] ** args[1]
            return None if isinstance(r, complex) else float(r)
        if isinstance(n, Call):
            if n.func not in _MATH:
                return None  # a tensor function: never folded as a scalar constant
            return float(_MATH[n.func](*args))
        if isinstance(n, (Index, Transpose)):
            return None
    except (ZeroDivisionError, ValueError):
        return None
    except OverflowError:
        return math.inf
    raise AssertionError(f"not a constant node: {n!r}")


def read_number(text: str, where: str) -> float:
    """One number as data (a CSV cell): an optional sign and a number literal of the
    language (ASCII digits, no '_', no nan or inf), finite in float64."""
    if not _SIGNED.fullmatch(text) or len(text.strip()) > MAX_NUMBER_CHARS + 1:
        shown = printable(text.strip()[:40])
        raise InputError(
            f"'{shown}' is not a number",
            where=where,
            fix="write numbers as the expression language does: 12, -1.5, 2e-3",
        )
    value = float(text)
    if not math.isfinite(value):
        raise InputError(
            f"'{printable(text.strip()[:40])}' is beyond float64",
            where=where,
            fix="no values beyond 1.8e308",
        )
    return check_magnitude(value, text.strip(), where)


def check_magnitude(value: float, text: str, where: str) -> float:
    """`value` if it is 0 or within 1e-300 .. 1e300 in magnitude, the range --at accepts
    (so that a point gets the same answer, or the same refusal, on every path)."""
    if value != 0.0 and not (1e-300 <= abs(value) <= 1e300):  # MAX_CONST_LOG10
        raise LimitError(
            f"number {printable(text[:40])} is outside the range 1e-300 .. 1e300",
            where=where,
            fix="rescale the problem",
        )
    return value


def evaluate_constant(source: str, where: str) -> float:
    """Parse and evaluate a constant expression such as `pi/3` or `-1e-3` to a finite float."""
    node = parse_expression(source, where)
    names = names_in(node)
    if names:
        name, pos = names[0]
        raise InputError(
            f"'{name}' is not a number",
            where=where,
            source=source,
            pos=pos,
            fix="Euler's number is E (e is not a constant)"
            if name == "e"
            else "values must be numbers or constant expressions like pi/3",
        )

    def leaf(n: Node) -> float:
        if isinstance(n, Num):
            return float(n.value)
        return math.pi if isinstance(n, Const) and n.id == "pi" else math.e

    def combine(n: Node, vals: list[float]) -> float:
        r = const_eval_node(n, vals)
        if r is None:
            raise InputError(
                f"'{printable(source)}' is undefined (e.g. division by zero or "
                f"outside a function's domain)",
                where=where,
                fix="give a finite real number",
            )
        return r

    value = fold(node, leaf, combine)
    assert isinstance(value, float)
    if not math.isfinite(value):
        raise InputError(
            f"'{printable(source)}' is not a finite float64 number",
            where=where,
            fix="give a finite number (no nan, inf, or values beyond 1.8e308)",
        )
    return value


# ---- rendering back to text -------------------------------------------------------------

_PREC_ADD, _PREC_MUL, _PREC_NEG, _PREC_POW, _PREC_ATOM = 1, 2, 3, 4, 5


def _prec(node: Node) -> int:
    if isinstance(node, Chain):
        return _PREC_ADD if node.kind == "add" else _PREC_MUL
    if isinstance(node, Neg):
        return _PREC_NEG
    if isinstance(node, Pow):
        return _PREC_POW
    return _PREC_ATOM


def unparse(node: Node) -> str:
    """Canonical text of a tree; parse(unparse(t)) == t."""

    def wrap(child: Node, min_prec: int) -> str:
        text = unparse(child)
        return f"({text})" if _prec(child) < min_prec else text

    if isinstance(node, Num):
        return node.text
    if isinstance(node, (Name, Const)):
        return node.id
    if isinstance(node, Neg):
        return "-" + wrap(node.operand, _PREC_POW)
    if isinstance(node, Chain):
        level = _PREC_ADD if node.kind == "add" else _PREC_MUL
        # first operand: a nested chain of the same level keeps its parentheses;
        # the others must bind tighter than this level
        out = [wrap(node.first, level + 1)]
        for op, child in node.rest:
            text = wrap(child, level + 1)
            out.append(f" {op} {text}" if node.kind == "add" else f"{op}{text}")
        return "".join(out)
    if isinstance(node, Pow):
        return f"{wrap(node.base, _PREC_ATOM)}**{wrap(node.exponent, _PREC_NEG)}"
    if isinstance(node, Call):
        return f"{node.func}({', '.join(unparse(a) for a in node.args)})"
    if isinstance(node, (Index, Transpose)):
        # a number needs parentheses: 2.T would read as the number "2." then T
        base = wrap(node.base, _PREC_ATOM + 1 if isinstance(node.base, Num) else _PREC_ATOM)
        if isinstance(node, Transpose):
            return f"{base}.T"
        return f"{base}[{', '.join(_item_text(i) for i in node.items)}]"
    raise AssertionError(node)


def _item_text(item: int | Slice) -> str:
    if isinstance(item, int):
        return str(item)
    parts = ["" if p is None else str(p) for p in (item.start, item.stop)]
    if item.step is not None:
        parts.append(str(item.step))
    return ":".join(parts)


def const_int(node: Node) -> int | None:
    """The value of a constant integer argument (3, -1), or None if it is not one."""
    if isinstance(node, Num) and isinstance(node.value, int):
        return node.value
    if isinstance(node, Neg) and isinstance(node.operand, Num):
        inner = node.operand.value
        return -inner if isinstance(inner, int) else None
    return None


def split_items(text: str) -> Iterable[tuple[str, int]]:
    """Split `text` on commas outside parentheses; yields (item, offset)."""
    depth = 0
    start = 0
    for i, ch in enumerate(text):
        if ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch == "," and depth == 0:
            yield text[start:i], start
            start = i + 1
    yield text[start:], start
