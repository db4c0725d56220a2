"""Sparse Jacobians: colored (compressed) passes recover J exactly, the sparse comparison is
the dense one, the COO JSON round-trips to the dense form, a wrong pattern is caught, and
the limits follow the real costs (a 300 x 300 dense system from a file is accepted)."""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

import pytest
import torch

from jvp_cli import api, autograd, cli, compressed, lang, sparse, symbolic
from jvp_cli.compare import compare, compare_sparse
from jvp_cli.views import coo

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import problems


def _program(pattern: list[list[int]], n: int) -> str:
    """f_i = sum over its columns j of sin(c_ij * x_j) + x_j**2 * c: a nonlinear function
    whose Jacobian has exactly `pattern`, with distinct values."""
    lines = []
    for i, cols in enumerate(pattern):
        terms = [f"sin({(i + 2 * j) % 7 + 1}*x{j + 1}/3) + x{j + 1}**2*{(i * j) % 5 + 1}"
                 for j in cols]  # fmt: skip
        lines.append(f"f{i + 1} = " + (" + ".join(terms) if terms else "0*x1 + 1"))
    # every variable occurs somewhere (else it is not a variable of the program)
    return "\n".join(lines) + "\n"


def _point(n: int) -> list[float]:
    return [0.3 + 0.7 * j / n for j in range(1, n + 1)]


def banded(n: int, half: int) -> list[list[int]]:
    return [list(range(max(0, i - half), min(n, i + half + 1))) for i in range(n)]


def block_diagonal(n: int, b: int) -> list[list[int]]:
    return [list(range(i // b * b, min(n, i // b * b + b))) for i in range(n)]


def arrow(n: int) -> list[list[int]]:
    """Each row its diagonal and the last column: a dense column (rows all conflict)."""
    return [sorted({i, n - 1}) for i in range(n)]


def arrow_both(n: int) -> list[list[int]]:
    """A dense first row and first column plus the diagonal."""
    return [list(range(n))] + [sorted({0, i}) for i in range(1, n)]


def random_pattern(n: int, density: float, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    rows = [sorted({j for j in range(n) if rng.random() < density} | {i}) for i in range(n)]
    return rows


def _torch_side(text: str, n: int, pattern: sparse.Sparse | None = None) -> tuple:
    program = lang.parse_program(text, variables=[f"x{j}" for j in range(1, n + 1)])
    shapes = [() for _ in program.variables]
    leaves = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in _point(n)]
    outs = autograd.run(program, dict(zip(program.variables, leaves, strict=True)), leaves[0])
    got = compressed.jacobian(program, outs, leaves, pattern)
    # row by row, each output through its own graph (the uncompressed method)
    rows = []
    for out in outs:
        grads = torch.autograd.grad(out, leaves, retain_graph=True, allow_unused=True)
        rows.append(tuple(0.0 if g is None else float(g) for g in grads))
    return program, shapes, got, tuple(rows)


def _same_to_rounding(got: tuple, want: tuple) -> None:
    """Equal within 1e-14 relative; zeros exactly zero."""
    assert len(got) == len(want)
    for g_row, w_row in zip(got, want, strict=True):
        for g, w in zip(g_row, w_row, strict=True):
            assert (g == 0) == (w == 0) and math.isclose(g, w, rel_tol=1e-14), (g, w)


FAMILIES = [
    ("tridiagonal", banded(40, 1), 3),
    ("pentadiagonal", banded(40, 2), 5),
    ("block-diagonal", block_diagonal(42, 6), 6),
    ("arrow (dense column)", arrow(40), 2),
    ("arrow (dense row and column)", arrow_both(30), None),
    ("random 10%", random_pattern(50, 0.1, 1), None),
    ("random 3%", random_pattern(80, 0.03, 2), None),
]


@pytest.mark.parametrize(("name", "pattern", "passes"), FAMILIES, ids=[f[0] for f in FAMILIES])
def test_coloring_recovers_J_exactly(name: str, pattern: list[list[int]], passes: int | None
                                     ) -> None:  # fmt: skip
    n = len(pattern)
    text = _program(pattern, n)
    program, shapes, got, by_rows = _torch_side(text, n)
    # the row-by-row result, entry by entry, structural zeros included: exactly in reverse
    # mode (the same products, summed with zeros); forward mode is another AD path, equal
    # to rounding
    if got.mode == "reverse":
        assert got.jacobian.dense() == by_rows, name
    else:
        _same_to_rounding(got.jacobian.dense(), by_rows)
    if passes is not None:
        assert got.passes == passes, (name, got.passes, got.mode)
    assert got.passes < n or name.startswith("arrow (dense row")
    # and the reference agrees with it
    ref = symbolic.evaluate(program, shapes, _point(n), None, None, "symengine")
    check = compare("jacobian", ref.sparse_jacobian, got.jacobian, 1e-7, 1e-7)
    assert check.status == "agree", (name, check)
    # the reference's nonzeros are the pattern's
    assert {(i, j) for i, j, _ in ref.sparse_jacobian.entries()} == {
        (i, j) for i, cols in enumerate(pattern) for j in cols}  # fmt: skip


def test_the_colorings_are_valid_and_tridiagonal_takes_three() -> None:
    for rows in (banded(200, 1), block_diagonal(60, 5), random_pattern(120, 0.05, 3)):
        pat = sparse.from_rows([dict.fromkeys(r, 1.0) for r in rows], len(rows))
        for by_rows in (True, False):
            colors = sparse.row_coloring(pat) if by_rows else sparse.column_coloring(pat)
            assert colors is not None
            sparse.check_coloring(pat, colors, by_rows)
    pat = sparse.from_rows([dict.fromkeys(r, 1.0) for r in banded(1000, 1)], 1000)
    colors = sparse.row_coloring(pat)
    assert colors is not None and max(colors) + 1 == 3


def test_forward_mode_where_columns_need_fewer_colors() -> None:
    n = 40
    _, _, got, by_rows = _torch_side(_program(arrow(n), n), n)
    assert got.mode == "forward" and got.passes == 2
    _same_to_rounding(got.jacobian.dense(), by_rows)


def test_a_wrong_pattern_on_the_torch_side_is_caught() -> None:
    """A pattern missing entries (rows 3 and 4 'share' no column any more): the compressed
    products put one row's entry into another's; the random-weight check sees it and every
    row is taken on its own, so the result is still torch's exact J."""
    n = 30
    rows = banded(n, 1)
    text = _program(rows, n)
    wrong = [list(r) for r in rows]
    wrong[3].remove(4)  # (3, 4) is nonzero in fact
    wrong[4].remove(3)
    pat = sparse.from_rows([dict.fromkeys(r, 1.0) for r in wrong], n)
    _, _, got, by_rows = _torch_side(text, n, pat)
    assert got.jacobian.dense() == by_rows
    assert got.passes > got.colors  # not the compressed products alone


def test_a_structural_zero_torch_reports_as_nonzero_is_a_disagreement() -> None:
    """A reference whose pattern lacks an entry that torch reports nonzero: the comparison
    sees the entry (it walks both sides' stored entries) and disagrees there."""
    n = 12
    rows = banded(n, 1)
    program, shapes, got, _ = _torch_side(_program(rows, n), n)
    ref = symbolic.evaluate(program, shapes, _point(n), None, None, "symengine").sparse_jacobian
    dropped = [ref.row_dict(i) for i in range(n)]
    del dropped[5][6]  # the reference now says d f6 / d x7 is structurally zero
    wrong = sparse.from_rows(dropped, n)
    check = compare("jacobian", wrong, got.jacobian, 1e-7, 1e-7)
    assert check.status == "disagree" and check.worst == (5, 6)
    assert check.max_abs_diff == pytest.approx(abs(got.jacobian.get(5, 6)))
    # and the other way round: torch's nonzero missing (its pattern lost the entry)
    tj = [got.jacobian.row_dict(i) for i in range(n)]
    del tj[2][1]
    check = compare("jacobian", ref, sparse.from_rows(tj, n), 1e-7, 1e-7)
    assert check.status == "disagree" and check.worst == (2, 1)


def _random_matrix(rng: random.Random, m: int, n: int) -> list[list[float]]:
    choices = [0.0, 0.0, 0.0, 1.5, -2.0, 1e-9, math.nan, math.inf]
    return [[rng.choice(choices) * (1 + rng.random()) for _ in range(n)] for _ in range(m)]


def test_the_sparse_comparison_is_the_dense_one() -> None:
    rng = random.Random(7)
    for trial in range(300):
        m, n = rng.randint(1, 6), rng.randint(1, 6)
        e = _random_matrix(rng, m, n)
        a = [[x + rng.choice([0.0, 0.0, 1e-12, 1e-3]) for x in row] for row in e]
        if rng.random() < 0.3:  # an undefined row, as the reference holds one
            e[rng.randrange(m)] = [math.nan] * n
        a = [[0.0 if math.isnan(x) and rng.random() < 0.5 else x for x in row] for row in a]
        nan_rows = {i for i, r in enumerate(e) if all(math.isnan(x) for x in r)}
        # a reference beyond float64 (its float is inf) is a finite number: never in a row
        # undefined throughout
        spot = (rng.randrange(m), rng.randrange(n))
        beyond = {spot} if rng.random() < 0.2 and spot[0] not in nan_rows else set()
        dense = compare("jacobian", e, a, 1e-7, 1e-7, beyond)
        ref = sparse.from_rows(
            [{} if i in nan_rows else {j: x for j, x in enumerate(r) if x != 0}
             for i, r in enumerate(e)], n, 0.0, nan_rows)  # fmt: skip
        fast = compare_sparse("jacobian", ref, sparse.from_dense(a), 1e-7, 1e-7, beyond)
        assert fast == dense, (trial, e, a, beyond)


def _vjp_json(args: list[str]) -> dict:
    from typer.testing import CliRunner

    r = CliRunner().invoke(cli.app, [*args, "--json", "--timeout", "0"])
    assert r.exit_code in (0, 1), r.output
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_coo_json_round_trips_to_the_dense_form(tmp_path: Path) -> None:
    n = 20
    path = tmp_path / "p.txt"
    path.write_text(problems.broyden(n) + "g = sqrt(x1 - 0.6)\n")  # a row undefined at the point
    point = problems.point(n)
    args = ["-f", str(path), "--at", point, "--v", ",".join(["1"] * (n + 1))]
    dense = _vjp_json([*args, "--dense"])["jacobian"]
    auto = _vjp_json(args)["jacobian"]
    assert auto == dense  # small: the dense form by default
    coo_jac = _vjp_json([*args, "--sparse"])["jacobian"]
    assert coo_jac["format"] == "coo" and coo_jac["shape"] == [n + 1, n]
    assert coo_jac["undefined_rows"] == [n]
    # every stored entry once, row-major
    pairs = list(zip(coo_jac["rows"], coo_jac["cols"], strict=True))
    assert pairs == sorted(set(pairs)) and len(pairs) == coo_jac["entries"] == 3 * n - 2 + 1
    back = coo.to_dense(coo_jac)
    for key in ("symbolic", "sympy", "torch", "shape", "rows", "columns"):
        assert back[key] == dense[key], key
    for key in ("max_abs_diff", "agree", "status", "rtol", "atol", "worst", "undefined",
                "nonzeros", "latex", "passes", "pass_mode", "colors"):  # fmt: skip
        assert coo_jac[key] == dense[key], key
    # 3 colors; g's NaN gradient (sqrt of a negative number) reaches x1 in every color's
    # product (0 * NaN in the other colors), so x1's owner in each of them, f1, f2 and g,
    # is taken on its own: 3 more passes
    assert dense["passes"] == 3 + 3 and dense["pass_mode"] == "reverse"


def test_big_jacobians_are_coo_by_default_and_dense_on_request(tmp_path: Path) -> None:
    n = 120  # 14,400 entries: beyond the dense form's 10,000
    path = tmp_path / "p.txt"
    path.write_text(problems.broyden(n))
    args = ["-f", str(path), "--at", problems.point(n), "--v", problems.point(n)]
    auto = _vjp_json(args)
    jac = auto["jacobian"]
    assert jac["format"] == "coo" and jac["entries"] == 3 * n - 2 and jac["passes"] == 3
    assert auto["status"] == "agree"
    dense = _vjp_json([*args, "--dense"])["jacobian"]
    back = coo.to_dense(jac)
    assert back["sympy"] == dense["sympy"] and back["torch"] == dense["torch"]
    assert back["symbolic"] == dense["symbolic"]
    # torch's values, independently: J of Broyden's function by hand
    x = [float(t) for t in problems.point(n).split(",")]
    for i, j, s in zip(jac["rows"], jac["cols"], jac["sympy"], strict=True):
        exact = 3 - 4 * x[i] if i == j else (-1.0 if j == i - 1 else -2.0)
        assert s == pytest.approx(exact, rel=1e-15, abs=1e-15)


def test_dense_json_of_a_huge_jacobian_is_refused_up_front(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    n = 2100
    path = tmp_path / "p.txt"
    path.write_text(problems.broyden(n))
    r = CliRunner().invoke(cli.app, ["-f", str(path), "--at", "ones", "--json", "--dense"])
    assert r.exit_code == 2 and r.stdout == ""
    r = CliRunner().invoke(cli.app, ["x", "--at", "1", "--json", "--dense", "--sparse"])
    assert r.exit_code == 2 and "--sparse and --dense" in r.stderr


def test_big_reports_hand_out_views_that_densify_by_row() -> None:
    n = 150
    program, problem = api.make_problem(problems.broyden(n), at=problems.point(n),
                                        v=problems.point(n))  # fmt: skip
    report = api.solve(program, problem)
    s, a = report.symbolic, report.autograd
    assert isinstance(s.jacobian, sparse.DenseView) and isinstance(a.jacobian, sparse.DenseView)
    assert len(s.jacobian) == n and s.jacobian[3][2] == -1.0 and s.jacobian[3][5] == 0.0
    assert s.jacobian_text[0][:3] == ("3 - 4*x1", "-2", "0")
    assert s.jacobian == a.jacobian.sparse.dense()  # equal values, compared as sequences
    assert report.agree and a.passes == 3


def test_limits_follow_the_nonzeros_not_rows_times_columns() -> None:
    n = 3000  # 9,000,000 entries (refused before), 8,998 nonzeros
    _, problem = api.make_problem(problems.broyden(n))
    assert len(problem.outputs) == n


def test_a_300_by_300_dense_system_from_a_file_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "dense300.txt"
    path.write_text(problems.dense(300))
    assert path.stat().st_size > 1_700_000
    text = cli._read_source(None, path)
    _, problem = api.make_problem(text)  # parsed and within every limit
    assert len(problem.outputs) == 300 and len(problem.variables) == 300


def test_argument_text_stays_bounded() -> None:
    from typer.testing import CliRunner

    r = CliRunner().invoke(cli.app, ["x+" * 500_001 + "x", "--at", "1"])
    assert r.exit_code == 2
    assert "the FUNCTIONS argument is 1,000,003 characters" in r.stderr
    assert "-f FILE" in r.stderr
