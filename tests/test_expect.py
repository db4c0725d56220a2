"""--expect: claims judged against the reference, and the diagnoses of wrong ones.

Expected values are computed by hand (the seed Jacobian of docs/background.md, J at (1, 2, 3)
= [[2, 2, 1], [1, 12, 6], [2, 4, 27]]) or with numpy from that hand-derived matrix, never by
the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_close

from jvp_cli import expect
from jvp_cli.model import ExitCode

SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"
J = np.array([[2, 2, 1], [1, 12, 6], [2, 4, 27]], dtype=float)  # by hand, at (1, 2, 3)
J_SYMBOLIC = "[[2*x1, 2, 1], [1, 3*x2^2, 2*x3], [2, 2*x2, 3*x3^2]]"


def _vec(xs: np.ndarray) -> str:
    return ",".join(f"{x:g}" for x in xs)


def test_tutorial_confusion_infers_v(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp(SEED, "--at", "1,2,3", "--v", "1,1,1", "--expect", "vjp=10,34,42", "--json",
            code=1)  # fmt: skip
    e = r.json()["expect"]["vjp"]
    assert e["agree"] is False and e["status"] == "disagree"
    assert e["claimed"] == [10, 34, 42]
    assert e["reference"] == list(np.ones(3) @ J)  # (5, 18, 34)
    assert e["inferred_v"] == [3, 2, 1]
    assert "(10, 34, 42) is v^T J for v = (3, 2, 1), not for the v = (1, 1, 1)" in e["diagnosis"]
    assert e["max_abs_diff"] == 16
    assert r.json()["agree"] is False
    # torch agrees with the reference: only the claim is wrong
    assert r.json()["vjp"]["agree"] is True


def test_correct_claim_exits_0(vjp) -> None:  # type: ignore[no-untyped-def]
    d = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--expect", "vjp=10,34,42", "--json").json()
    e = d["expect"]["vjp"]
    assert e["agree"] is True and e["diagnosis"] is None and e["inferred_v"] is None
    assert e["max_abs_diff"] == 0
    assert d["agree"] is True and d["status"] == "agree"


def test_rich_panel_shows_claim_reference_and_diagnosis(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp(SEED, "--at", "1,2,3", "--v", "1,1,1", "--expect", "vjp=10,34,42", code=1).stdout
    assert "Claim: v^T J" in out
    assert "vjp=10,34,42" in out
    assert "v = (3, 2, 1)" in out
    assert "✘ wrong" in out


def test_named_claim_in_any_order(vjp) -> None:  # type: ignore[no-untyped-def]
    vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--expect", "vjp=x3=42,x1=10,x2=34")


def test_hand_jacobian_with_one_wrong_entry(vjp) -> None:  # type: ignore[no-untyped-def]
    # d f2 / d x3 = 2*x3; the claim has 3*x3
    claim = "jacobian=2*x1, 2, 1; 1, 3*x2^2, 3*x3; 2, 2*x2, 3*x3^2"
    e = vjp(SEED, "--at", "1,2,3", "--expect", claim, "--json", code=1).json()["expect"]
    jac = e["jacobian"]
    assert jac["wrong_entries"] == [[1, 2]]
    assert jac["symbolic"] is True and jac["agree"] is False
    assert "J[2,3] = df2/dx3 is 2*x3" in jac["diagnosis"]
    assert "(= 6 at the point)" in jac["diagnosis"]  # 2 * 3
    assert jac["reference"] == J.tolist()
    assert jac["claimed"][1][2] == 9  # 3 * 3


def test_hand_jacobian_right_as_functions_without_at(vjp) -> None:  # type: ignore[no-untyped-def]
    e = vjp(SEED, "--expect", f"jacobian={J_SYMBOLIC}", "--json").json()["expect"]["jacobian"]
    assert e["agree"] is True and e["symbolic"] is True
    assert e["identical"] is True
    assert "simplification to zero" in e["decided_by"]
    assert e["claimed"] is None  # no point: judged as functions only


def test_wrong_symbolic_claim_without_at(vjp) -> None:  # type: ignore[no-untyped-def]
    claim = "jacobian=2*x1, 2, 1; 1, 3*x2^2, 3*x3; 2, 2*x2, 3*x3^2"
    e = vjp(SEED, "--expect", claim, "--json", code=1).json()["expect"]["jacobian"]
    assert e["wrong_entries"] == [[1, 2]]
    assert e["identical"] is False


def test_transposed_jacobian(vjp) -> None:  # type: ignore[no-untyped-def]
    rows = ";".join(_vec(row) for row in J.T)
    e = vjp(SEED, "--at", "1,2,3", "--expect", f"jacobian={rows}", "--json",
            code=1).json()["expect"]["jacobian"]  # fmt: skip
    assert e["diagnosis"].startswith("transposed")
    # every off-diagonal entry that differs from its mirror is wrong in place
    assert e["wrong_entries"] == [[i, j] for i in range(3) for j in range(3) if J[i, j] != J[j, i]]


def test_transposed_non_square_jacobian(vjp) -> None:  # type: ignore[no-untyped-def]
    # f = (x*y, x + 2*y, y**2): J at (1, 3) = [[3, 1], [1, 2], [0, 6]], by hand
    jt = "3,1,0; 1,2,6"
    e = vjp("x*y; x + 2*y; y**2", "--at", "1,3", "--expect", f"jacobian={jt}", "--json",
            code=1).json()["expect"]["jacobian"]  # fmt: skip
    assert e["diagnosis"].startswith("transposed: you gave J^T (2 x 3)")
    assert e["reference"] == [[3, 1], [1, 2], [0, 6]]


def test_swapped_rows_and_columns(vjp) -> None:  # type: ignore[no-untyped-def]
    rows = "[" + ",".join("[" + _vec(J[k]) + "]" for k in (1, 0, 2)) + "]"  # nested lists
    e = vjp(SEED, "--at", "1,2,3", "--expect", f"jacobian={rows}", "--json",
            code=1).json()["expect"]["jacobian"]  # fmt: skip
    assert "rows 1 and 2 are swapped" in e["diagnosis"]
    cols = ";".join(_vec(row) for row in J[:, [0, 2, 1]])
    e = vjp(SEED, "--at", "1,2,3", "--expect", f"jacobian={cols}", "--json",
            code=1).json()["expect"]["jacobian"]  # fmt: skip
    assert "columns 2 and 3 are swapped" in e["diagnosis"]


def test_jv_given_for_vtj(vjp) -> None:  # type: ignore[no-untyped-def]
    v = np.array([1.0, 1.0, 1.0])
    e = vjp(SEED, "--at", "1,2,3", "--v", "1,1,1", "--expect", f"vjp={_vec(J @ v)}", "--json",
            code=1).json()["expect"]["vjp"]  # fmt: skip
    assert "this is J v, not v^T J" in e["diagnosis"]
    assert "transpose mix-up" in e["diagnosis"]


def test_constant_factor(vjp) -> None:  # type: ignore[no-untyped-def]
    v = np.array([3.0, 2.0, 1.0])
    e = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--expect", f"vjp={_vec(2 * (v @ J))}",
            "--json", code=1).json()["expect"]["vjp"]  # fmt: skip
    assert "off by a constant factor of 2" in e["diagnosis"]
    assert e["inferred_v"] == [6, 4, 2]


def test_wrong_axis_sum(vjp) -> None:  # type: ignore[no-untyped-def]
    rows = J @ np.ones(3)  # the row sums, with v = (3, 2, 1) given
    e = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--expect", f"vjp={_vec(rows)}", "--json",
            code=1).json()["expect"]["vjp"]  # fmt: skip
    assert "a sum along the wrong axis" in e["diagnosis"]


@pytest.mark.parametrize("w", [(1, 0, 0), (0, 2, -1), (1, 1, 0)])
def test_vjp_inference_from_other_cotangents(vjp, w) -> None:  # type: ignore[no-untyped-def]
    claim = np.array(w, dtype=float) @ J
    e = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--expect", f"vjp={_vec(claim)}", "--json",
            code=1).json()["expect"]["vjp"]  # fmt: skip
    assert_close(e["inferred_v"], list(w))


def test_jvp_inference(vjp) -> None:  # type: ignore[no-untyped-def]
    u_true = np.array([1.0, 2.0, 0.0])
    e = vjp(SEED, "--at", "1,2,3", "--u", "0,0,1", "--expect", f"jvp={_vec(J @ u_true)}",
            "--json", code=1).json()["expect"]["jvp"]  # fmt: skip
    assert e["inferred_u"] == [1, 2, 0]
    assert "is J u for u = (1, 2, 0), not for the u = (0, 0, 1)" in e["diagnosis"]
    assert e["reference"] == list(J @ np.array([0.0, 0.0, 1.0]))


def test_jvp_transpose_mix_up_and_right_claim(vjp) -> None:  # type: ignore[no-untyped-def]
    u = np.array([1.0, 0.0, 0.0])
    r = vjp(SEED, "--at", "1,2,3", "--u", "1,0,0", "--expect", f"jvp={_vec(u @ J)}",
            "--expect", f"jvp={_vec(J @ u)}", "--json", code=1).json()  # fmt: skip
    wrong, right = r["expect"]["claims"]
    assert "u^T J" in wrong["diagnosis"] and wrong["status"] == "disagree"
    assert right["status"] == "agree"


def test_scalar_grad(vjp) -> None:  # type: ignore[no-untyped-def]
    # f = x^2 y: grad at (3, 2) = (2 x y, x^2) = (12, 9)
    d = vjp("x^2*y", "--at", "3,2", "--expect", "grad=12,9", "--json").json()
    assert d["expect"]["vjp"]["quantity"] == "grad"
    assert d["expect"]["grad"]["agree"] is True
    e = vjp("x^2*y", "--at", "3,2", "--expect", "grad=-12,-9", "--json",
            code=1).json()["expect"]["vjp"]  # fmt: skip
    assert "sign is flipped" in e["diagnosis"]


def test_grad_of_vector_output_refused(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp(SEED, "--at", "1,2,3", "--expect", "grad=1,2,3", code=2)
    assert r.stderr.count("\n") == 1 and "--expect" in r.stderr and "grad=" in r.stderr


def test_tensor_claims(vjp) -> None:  # type: ignore[no-untyped-def]
    prog = "y = x + 2; z = y * y; out = mean(z)"  # d out/d x = (x + 2)/2 = 1.5 at x = 1
    vjp(prog, "--at", "x=[[1,1],[1,1]]", "--expect", "grad=[[1.5,1.5],[1.5,1.5]]")
    vjp(prog, "--at", "x=[[1,1],[1,1]]", "--expect", "grad=x=(x+2)/2")
    vjp(prog, "--shape", "x=2,2", "--expect",
        "grad=[[x[0,0]/2+1, x[0,1]/2+1], [x[1,0]/2+1, x[1,1]/2+1]]")  # fmt: skip
    e = vjp(prog, "--at", "x=[[1,1],[1,1]]", "--expect", "grad=[[1.5,1.5],[1.5,2]]", "--json",
            code=1).json()["expect"]["vjp"]  # fmt: skip
    assert e["wrong_entries"] == [[3]]
    assert e["claimed"] == [1.5, 1.5, 1.5, 2]


def test_symbolic_claims_right_and_wrong(vjp) -> None:  # type: ignore[no-untyped-def]
    # d(sin(x) y)/dx = y cos(x): right at --at y = 2 for 2*cos(x), but not as a function
    e = vjp("sin(x)*y", "--at", "1,2", "--expect", "grad=2*cos(x), sin(x)", "--json",
            code=1).json()["expect"]["vjp"]  # fmt: skip
    assert e["identical"] is False and e["wrong_entries"] == [[0]]
    assert "x.grad should be y*cos(x)" in e["diagnosis"]
    assert e["max_abs_diff"] == 0  # at the point the numbers agree
    ok = vjp("sin(x)*y", "--expect", "grad=y*cos(x), sin(x)", "--json").json()["expect"]["vjp"]
    assert ok["identical"] is True and ok["claimed"] is None


def test_identity_needing_simplification(vjp) -> None:  # type: ignore[no-untyped-def]
    # d(sin(x)^2)/dx = 2 sin(x) cos(x) = sin(2x): a trigonometric identity
    e = vjp("sin(x)^2", "--expect", "grad=sin(2*x)", "--json").json()["expect"]["vjp"]
    assert e["identical"] is True
    assert e["decided_by"].startswith("identical as functions, by")


def test_kink_claim_decided_by_numeric_evidence(vjp) -> None:  # type: ignore[no-untyped-def]
    # d|x|/dx = x/|x| (undefined at 0); x/abs(x) and abs(x)/x are the same function
    e = vjp("abs(x)", "--expect", "grad=abs(x)/x", "--json").json()["expect"]["vjp"]
    assert e["identical"] is True
    wrong = vjp("x*abs(x)", "--expect", "grad=2*x", "--json", code=1).json()["expect"]["vjp"]
    assert wrong["identical"] is False and "counterexample" in wrong["decided_by"]


@pytest.mark.parametrize(
    ("claim", "column"),
    [
        ("vjp=10,34", 5),
        ("vjp=10,34,4+", 13),
        ("vjp=1,2,y", 9),
        ("foo=1,2,3", 1),
        ("jacobian=1,2;3,4", 10),
        ("vjp=1,2,__import__(1)", 9),
    ],
)
def test_bad_claims_exit_2_with_one_line(vjp, claim, column) -> None:  # type: ignore[no-untyped-def]
    r = vjp(SEED, "--at", "1,2,3", "--v", "1,1,1", "--expect", claim, code=2)
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1
    assert r.stderr.startswith(f"Error: --expect, column {column}:")


def test_jvp_claim_needs_u(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp(SEED, "--at", "1,2,3", "--expect", "jvp=1,2,3", code=2)
    assert "--u" in r.stderr


def test_vjp_claim_of_vector_output_needs_v(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp(SEED, "--at", "1,2,3", "--expect", "vjp=1,2,3", code=2)
    assert "--v" in r.stderr


def test_claims_and_points_refused(vjp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "p.csv"
    f.write_text("x1,x2,x3\n1,2,3\n")
    vjp(SEED, "--points", str(f), "--expect", "vjp=1,2,3", code=2)


def test_parse_is_lang_only() -> None:
    """Claims are parsed before any engine runs (lang.py only)."""
    from jvp_cli import api

    _, problem = api.make_problem(SEED, at="1,2,3")
    (claim,) = expect.parse_all(["jacobian=[[1,2,3],[4,5,6],[7,8,9]]"], problem)
    assert claim.shape == (3, 3) and not claim.symbolic
    assert [leaf.text for leaf in claim.leaves][:3] == ["1", "2", "3"]
    assert int(ExitCode.DISAGREE) == 1


def test_a_claim_wrong_only_far_out_is_not_identical(vjp) -> None:  # type: ignore[no-untyped-def]
    """relu(x - 3) added to the gradient 2x: SymPy cannot simplify the difference Max(0, x - 3)
    to zero or to a constant, and the numeric evidence must reach beyond [-2, 2] to see it
    (the claim is wrong for every x > 3; at x = 4 it is 9, the derivative 8)."""
    for claim in ("grad=2*x + relu(x-3)", "grad=2*x + relu(x-10)"):
        out = vjp("x**2", "--expect", claim, "--json", code=1).json()["expect"]["vjp"]
        assert out["agree"] is False and out["identical"] is False
        assert "counterexample" in out["decided_by"]
    # where the evidence misses it, the point does not, and the two never contradict
    at = vjp("x**2", "--at", "400", "--expect", "grad=2*x + relu(x-300)", "--json", code=1)
    out = at.json()["expect"]["vjp"]
    assert out["agree"] is False and out["identical"] is False
    assert out["claimed"] == [900.0] and out["reference"] == [800.0]


def test_claims_beyond_float64_are_judged_at_30_digits(vjp) -> None:  # type: ignore[no-untyped-def]
    """d/dx exp(x) at 1000 is exp(1000) ~ 1.97e434, beyond float64: a right claim agrees (both
    30-digit decimals, mpmath's here), a claim off by 2 is diagnosed, and a float64 number is
    not it."""
    import mpmath

    with mpmath.workdps(40):
        want = float(mpmath.exp(1000) / mpmath.mpf(10) ** 434)  # the mantissa, by mpmath
    right = vjp("exp(x)", "--at", "1000", "--expect", "grad=exp(x)", "--json", code=1).json()
    e = right["expect"]["vjp"]
    assert e["agree"] and e["claimed"] == e["reference"]
    mantissa, exponent = e["reference"][0].split("e+")
    assert exponent == "434" and float(mantissa) == pytest.approx(want, rel=1e-15)
    twice = vjp("exp(x)", "--at", "1000", "--expect", "grad=2*exp(x)", "--json", code=1).json()
    assert "factor of 2" in twice["expect"]["vjp"]["diagnosis"]
    small = vjp("exp(x)", "--at", "1000", "--expect", "grad=1e300", "--json", code=1).json()
    assert small["expect"]["vjp"]["status"] == "disagree"
    assert e["reference"][0] in small["expect"]["vjp"]["diagnosis"]
