"""--format latex|markdown: the report as a LaTeX fragment (compiled where TeX is installed)
and as Markdown whose tables hold exactly the numbers of --json; user text escaped."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from jvp_cli.explain import latex_name, latex_text
from jvp_cli.views.latex import number, tex_number
from jvp_cli.views.markdown import md_text

SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"
TUTORIAL = "y = x + 2; z = y * y; out = mean(z)"
SMOOTH = "sin(x1)*exp(x2); x1/x2 + log(x2)"
SMOOTH_ARGS = ("--at", "0.3,1.7", "--v", "0.5,-2", "--u", "1,0.25")


def test_latex_text_escapes_every_special_character() -> None:
    assert latex_text(r"a_b\c") == r"a\_b\textbackslash{}c"
    assert latex_text("{$&#^%~}") == r"\{\$\&\#\textasciicircum{}\%\textasciitilde{}\}"
    assert latex_text("a<b|c>") == r"a\textless{}b\textbar{}c\textgreater{}"
    # nothing but escapes is left of the specials
    out = latex_text("\\{}$&#^_%~")
    assert not re.search(r"(?<!\\)[$&#%_~^]", out.replace(r"\textasciicircum{}", ""))


@pytest.mark.parametrize(
    ("name", "tex"),
    [
        ("x1", "x_{1}"),
        ("alpha", r"\alpha"),
        ("out", r"\mathit{out}"),
        ("x_max", r"x_{max}"),
        ("a__b", r"\mathrm{a\_\_b}"),  # not a^{b}: SymPy reads __ as a superscript
        ("_x", r"\mathrm{\_x}"),
        ("x[0,1]", "x_{0,1}"),
        ("x1[2]", "{x_{1}}_{2}"),
    ],
)
def test_latex_names(name: str, tex: str) -> None:
    assert latex_name(name) == tex


@pytest.mark.parametrize(
    ("x", "text", "tex"),
    [
        (10.0, "10", "10"),
        (0.1 + 0.2, "0.30000000000000004", "0.30000000000000004"),
        (1.5e-20, "1.5e-20", r"1.5 \times 10^{-20}"),
        (1e300, "1e+300", "10^{300}"),
        (float("nan"), "NaN", r"\mathrm{NaN}"),
        (-float("inf"), "-Infinity", r"-\infty"),
    ],
)
def test_numbers_are_written_as_json_writes_them(x: float, text: str, tex: str) -> None:
    assert number(x) == text
    assert tex_number(x) == tex
    if text not in ("NaN", "-Infinity"):
        assert float(text) == x


def test_seed_latex(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--u", "1,0,0", "--format", "latex").stdout
    # J symbolic (SymPy's printer) and at the point (by hand), in bmatrix
    assert ("\\begin{bmatrix}2 x_{1} & 2 & 1 \\\\\n1 & 3 x_{2}^{2} & 2 x_{3} \\\\\n"
            "2 & 2 x_{2} & 3 x_{3}^{2}\\end{bmatrix}") in out  # fmt: skip
    assert "J = \\begin{bmatrix}2 & 2 & 1 \\\\\n1 & 12 & 6 \\\\\n2 & 4 & 27\\end{bmatrix}" in out
    assert r"v = \begin{bmatrix}3 & 2 & 1\end{bmatrix}^{T}" in out
    # the weighted-row derivation: 3(2,2,1) + 2(1,12,6) + 1(2,4,27) = (10,34,42)
    assert (r"&= 3 \begin{bmatrix}2 & 2 & 1\end{bmatrix} + 2 \begin{bmatrix}1 & 12 & 6"
            r"\end{bmatrix} + 1 \begin{bmatrix}2 & 4 & 27\end{bmatrix}") in out  # fmt: skip
    assert r"&= \begin{bmatrix}10 & 34 & 42\end{bmatrix}" in out
    assert r"v^{T} J &= 3 \begin{bmatrix}2 x_{1} & 2 & 1\end{bmatrix}" in out
    # J u = the first column, (2, 1, 2), the zero-weight columns said to be left out
    column = "&= \\begin{bmatrix}2 \\\\\n1 \\\\\n2\\end{bmatrix}"
    assert column + " && \\text{(2 terms with weight 0" in out
    assert r"\textbf{Verdict:} agree" in out


def test_latex_exit_status_follows_the_verdict(vjp) -> None:  # type: ignore[no-untyped-def]
    # exp(1000) is beyond float64: torch's inf cannot match the reference (exit 1)
    out = vjp("exp(x)", "--at", "1000", "--format", "latex", code=1).stdout
    assert r"1.97007111401704699388887935224 \times 10^{434}" in out
    assert r"\textbf{Verdict:} disagree" in out


def test_format_and_json_are_refused_together(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp(SEED, "--at", "1,2,3", "--format", "markdown", "--json", code=2)
    assert r.stdout == "" and r.stderr.count("\n") == 1 and "--json" in r.stderr
    r = vjp(SEED, "--at", "1,2,3", "--format", "html", code=2)
    assert "html" in r.stderr


def test_user_text_is_escaped(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp("a__b*x_max + e^x", "--at", "1,2,3,4", "--format", "latex").stdout
    assert r"\mathrm{a\_\_b}" in out and "a^{b}" not in out
    assert r"e\textasciicircum{}x" in out or "e**x" in out  # the note and the program
    md = vjp("a__b*x_max", "--at", "1,2", "--format", "markdown").stdout
    assert r"a\_\_b" in md


def _md_table(md: str, title: str) -> list[list[str]]:
    """The cells of the first table after the line that starts with `title`."""
    lines = md.splitlines()
    start = next(k for k, line in enumerate(lines) if line.startswith(title))
    rows = []
    k = start + 1
    while not lines[k].startswith("|"):
        k += 1
    while k < len(lines) and lines[k].startswith("|"):
        rows.append([c.strip() for c in lines[k].strip("|").split(" | ")])
        k += 1
    return rows[2:]  # past the header and the alignment row


def test_markdown_shows_the_numbers_of_json(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(SMOOTH, *SMOOTH_ARGS, "--json").json()
    md = vjp(SMOOTH, *SMOOTH_ARGS, "--format", "markdown").stdout
    sympy_j = [[float(c) for c in row[1:]] for row in _md_table(md, "**J (SymPy")]
    torch_j = [[float(c) for c in row[1:]] for row in _md_table(md, "**J (torch")]
    assert sympy_j == d["jacobian"]["sympy"] and torch_j == d["jacobian"]["torch"]
    vjp_rows = _md_table(md, "### VJP")
    assert [float(r[1]) for r in vjp_rows] == d["vjp"]["sympy"]
    assert [float(r[2]) for r in vjp_rows] == d["vjp"]["torch"]
    jvp_rows = _md_table(md, "### JVP")
    assert [float(r[1]) for r in jvp_rows] == d["jvp"]["sympy"]
    assert [float(r[2]) for r in jvp_rows] == d["jvp"]["torch"]
    assert "**Verdict: agree**" in md
    assert "$$\n\\begin{aligned}\nv^{T} J &= 0.5 \\begin{bmatrix}" in md


def test_markdown_tables_survive_abs(vjp) -> None:  # type: ignore[no-untyped-def]
    md = vjp("abs(x)*y; x", "--at", "2,3", "--v", "1,1", "--format", "markdown").stdout
    rows = _md_table(md, "### Symbolic Jacobian")
    assert all(len(r) == 3 for r in rows)  # the | of |x| is escaped, no extra cells
    assert r"\|" in rows[0][1] or r"\|" in rows[0][2]


def test_markdown_text_escapes() -> None:
    assert md_text("a_b*c") == r"a\_b\*c"
    assert md_text("x|y") == r"x\|y"
    assert md_text("line\nbreak") == "line break"


def test_big_systems_are_windowed_and_say_so(vjp) -> None:  # type: ignore[no-untyped-def]
    args = ("out = x*x", "--at", "x=arange", "--shape", "x=30", "--v", "ones")
    tex = vjp(*args, "--format", "latex").stdout
    assert r"\cdots" in tex and r"\vdots" in tex and "Windowed" in tex
    whole = vjp(*args, "--format", "latex", "--full").stdout
    assert "Windowed" not in whole and r"\cdots" not in whole.split("Jacobian:")[1]
    assert r"\setcounter{MaxMatrixCols}{31}" in whole
    md = vjp(*args, "--format", "markdown").stdout
    assert "Windowed" in md and "| ⋮ |" in md


CASES = [
    (SEED, "--at", "1,2,3", "--v", "3,2,1", "--u", "1,0,0"),
    (TUTORIAL, "--at", "x=[[1,1],[1,1]]"),
    ("sin(x)*y", "--at", "1,2"),
    ("a = x*y; p = a + x; q = a*sin(y)", "--at", "0.5,2", "--v", "1,-2", "--u", "0.25,3"),
    ("out = x*x", "--at", "x=arange", "--shape", "x=30", "--v", "ones", "--u", "ones"),
    ("a__b*x_max + _c + e^x", "--at", "1,2,3,4,5"),
    ("abs(x) + relu(y); x*y", "--at", "0,1", "--v", "1,2"),
    ("exp(x); x", "--at", "1000", "--v", "1,1"),
    ("x1**2+x2; x1*x2",),
    ("x1**2+x2; x1*x2", "--at", "1,2", "--v", "1,1", "--engine", "symengine"),
]


@pytest.mark.skipif(shutil.which("pdflatex") is None, reason="no TeX installation (pdflatex)")
def test_the_latex_compiles(vjp, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    parts = []
    for k, case in enumerate(CASES):
        r = vjp(*case, "--format", "latex", code=None)
        assert r.code in (0, 1), r.stderr
        (tmp_path / f"case{k}.tex").write_text(r.stdout)
        parts.append(f"\\section*{{Case {k}}}\n\\input{{case{k}.tex}}\n")
    (tmp_path / "doc.tex").write_text(
        "\\documentclass{article}\n\\usepackage{amsmath}\n\\begin{document}\n"
        + "\n".join(parts)
        + "\\end{document}\n"
    )
    run = subprocess.run(
        ["pdflatex", "-interaction=nonstopmode", "-halt-on-error", "doc.tex"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 0
    log = (tmp_path / "doc.log").read_text(errors="replace")
    assert "! " not in log and "Undefined control sequence" not in log
