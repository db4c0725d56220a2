"""Options from different features used together: each combination either works, with what a
check did not cover said, or is refused with one line (exit 2); never silently dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"
SEED_CODE = str(Path(__file__).parent / "usercode" / "seed.py") + ":f"


@pytest.mark.parametrize(
    "extra",
    [
        ["--expect", "vjp=10,34,43"],
        ["--sample", "5"],
        ["--hessian"],
        ["--hvp", "1,0,0"],
        ["--explain"],
        ["--graph"],
        ["--format", "latex"],
    ],
)
def test_torch_without_functions_refuses_what_it_cannot_check(vjp, extra) -> None:  # type: ignore[no-untyped-def]
    r = vjp("--torch", SEED_CODE, "--at", "1,2,3", "--v", "3,2,1", *extra, code=2)
    assert r.stdout == ""
    assert r.stderr.count("Error:") == 1 and "--torch without FUNCTIONS" in r.stderr
    assert extra[0] in r.stderr


def test_torch_without_functions_still_takes_fd(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp("--torch", SEED_CODE, "--at", "1,2,3", "--v", "3,2,1", "--fd", "--json").json()
    # v^T J of the seed system at (1, 2, 3) for v = (3, 2, 1), by hand: (10, 34, 42)
    assert out["code"]["vjp"]["torch"] == [10.0, 34.0, 42.0]


@pytest.mark.parametrize(
    "extra",
    [
        ["--expect", "grad=y,x"],
        ["--fd"],
        ["--sample", "10"],
        ["--hessian"],
        ["--graph"],
    ],
)
@pytest.mark.parametrize("fmt", ["latex", "markdown"])
def test_format_refuses_sections_it_cannot_write(vjp, fmt: str, extra) -> None:  # type: ignore[no-untyped-def]
    r = vjp("x*y", "--at", "1,2", "--format", fmt, *extra, code=2)
    assert r.stdout == "" and r.stderr.count("Error:") == 1
    assert f"--format {fmt}" in r.stderr and extra[0] in r.stderr


def test_grad_claim_is_the_gradient_whatever_v_says(vjp) -> None:  # type: ignore[no-untyped-def]
    """grad= is the gradient of the scalar output (v = 1); with --v 2, vjp= is 2 x it."""
    out = vjp("x*y", "--at", "1,2", "--v", "2", "--expect", "grad=2,1", "--json").json()
    assert out["expect"]["vjp"]["agree"] and out["expect"]["vjp"]["reference"] == [2.0, 1.0]
    assert out["vjp"]["sympy"] == [4.0, 2.0]  # the report's own v^T J for v = 2
    wrong = vjp("x*y", "--at", "1,2", "--v", "2", "--expect", "vjp=2,1", "--json", code=1)
    assert "factor of 1/2" in wrong.json()["expect"]["vjp"]["diagnosis"]


def test_what_the_sweep_and_fd_do_not_cover_is_said(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp("x*abs(x)", "--at", "1", "--sample", "20", "--hessian", "--fd", "--json").json()
    assert any("checked at --at only" in n for n in out["sample"]["notes"])
    assert any("not its gradient" in n for n in out["fd"]["notes"])
    # and the second order it does check, by hand: d2/dx2 x|x| = 2 sign(x) = 2 at x = 1
    assert out["hessian"]["sympy"] == [[2.0]]


def test_symbolic_only_claims_end_with_a_verdict(vjp) -> None:  # type: ignore[no-untyped-def]
    """Without --at a claim is still graded as a function; the report says the verdict."""
    wrong = vjp("x*y", "--expect", "grad=2,1", code=1)  # the gradient is (y, x), not constant
    assert wrong.stdout.rstrip().splitlines()[-1].startswith("Verdict: ✘ disagree")
    right = vjp("x*y", "--expect", "grad=y,x")
    assert "claim grad: agree" in right.stdout.rstrip().splitlines()[-1]
