"""--sample: claims and checks at seeded random points, and the first failure shrunk.

The functions are chosen so that where a claim is wrong is known by hand: d(x|x|)/dx = 2|x|,
so the claim 2*x is wrong exactly where x < 0 and right where x >= 0.
"""

from __future__ import annotations

import numpy as np
import pytest

from jvp_cli import api, expect, sample


def _sample(vjp, *args: str, code: int) -> dict:  # type: ignore[no-untyped-def]
    return vjp(*args, "--json", code=code).json()["sample"]


def test_claim_wrong_for_negative_x_is_found_and_shrunk(vjp) -> None:  # type: ignore[no-untyped-def]
    s = _sample(vjp, "x*abs(x)", "--expect", "grad=2*x", "--sample", "200", "--seed", "1", code=1)
    xs = np.random.default_rng(1).uniform(-2, 2, size=(200, 1))[:, 0]  # the seeded draw
    assert s["n"] == 200 and s["seed"] == 1
    assert s["disagree"] == int((xs < 0).sum())  # wrong exactly on the negative branch
    assert s["agree"] == 200 - s["disagree"] and s["undefined"] == 0
    first = s["first_failure"]
    assert s["found_at"]["x"] < 0
    assert first["x"] == -1  # shrunk to the simplest failing value in [-2, 2]
    assert first["candidate"] == "claim grad=2*x"
    assert first["values"] == [-2] and first["reference"] == [2]  # 2*x and 2|x| at -1
    assert s["worst"]["x"] < 0
    assert s["worst"]["diff"] == pytest.approx(4 * abs(s["worst"]["x"]))  # |2x - 2|x||


def test_one_point_passes_the_sweep_finds_it(vjp) -> None:  # type: ignore[no-untyped-def]
    # at x = 1.5 the wrong claim is right ...
    vjp("x*abs(x)", "--at", "1.5", "--expect", "grad=2*x", code=1)  # (wrong as a function)
    d = vjp("x*abs(x)", "--at", "1.5", "--expect", "grad=3", "--json").json()
    assert d["expect"]["vjp"]["agree"] is True
    # ... and the sweep of a correct claim finds nothing
    s = _sample(vjp, "x*abs(x)", "--expect", "grad=2*abs(x)", "--sample", "100", code=0)
    assert s["disagree"] == 0 and s["first_failure"] is None


def test_box_is_respected(vjp) -> None:  # type: ignore[no-untyped-def]
    # wrong as a function (exit 1), but right at every point of a box with x > 0
    s = _sample(vjp, "x*abs(x)", "--expect", "grad=2*x", "--sample", "50", "--box", "x=0.5:3",
                code=1)  # fmt: skip
    assert s["box"] == {"x": [0.5, 3]} and s["agree"] == 50 and s["first_failure"] is None


def test_two_variables_shrink_each_coordinate(vjp) -> None:  # type: ignore[no-untyped-def]
    s = _sample(vjp, "x*abs(x) + y^2", "--expect", "grad=2*x, 2*y", "--sample", "100",
                "--box", "x=-3:3,y=0.1:2", "--seed", "7", code=1)  # fmt: skip
    first = s["first_failure"]
    assert first["x"] == -1  # the simplest x < 0
    assert first["y"] == 1  # the simplest y in [0.1, 2] (0 is outside the box)
    assert s["box"] == {"x": [-3, 3], "y": [0.1, 2]}


def test_seeded_runs_are_reproducible(vjp) -> None:  # type: ignore[no-untyped-def]
    args = ("x*abs(x)", "--expect", "grad=2*x", "--sample", "40")
    a = _sample(vjp, *args, "--seed", "5", code=1)
    b = _sample(vjp, *args, "--seed", "5", code=1)
    c = _sample(vjp, *args, "--seed", "6", code=1)
    assert a == b
    assert a["found_at"] != c["found_at"]


def test_undefined_points_are_counted_not_failures(vjp) -> None:  # type: ignore[no-untyped-def]
    s = _sample(vjp, "sqrt(x)", "--sample", "60", "--box", "x=-1:1", "--seed", "2", code=0)
    xs = np.random.default_rng(2).uniform(-1, 1, size=60)
    assert s["undefined"] == int((xs < 0).sum())
    assert s["agree"] == int((xs > 0).sum()) and s["disagree"] == 0
    assert s["candidates"] == ["torch"]


def test_symbolic_jacobian_claim_swept(vjp) -> None:  # type: ignore[no-untyped-def]
    ok = _sample(vjp, "x^2; x*y", "--expect", "jacobian=2*x, 0; y, x", "--sample", "30", code=0)
    assert ok["agree"] == 30
    s = _sample(vjp, "x^2; x*y", "--expect", "jacobian=2*x, 0; y, abs(x)", "--sample", "30",
                "--seed", "3", code=1)  # fmt: skip
    assert s["first_failure"]["x"] == -1 and s["first_failure"]["quantity"] == "jacobian"


def test_rich_sample_panel(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp("x*abs(x)", "--expect", "grad=2*x", "--sample", "20", code=1).stdout
    assert "Sample (--sample)" in out and "first failure, shrunk: x = -1" in out


@pytest.mark.parametrize(
    ("args", "where"),
    [
        (("--sample", "0"), "--sample"),
        (("--sample", "10", "--box", "x=3:1"), "--box, column 3"),
        (("--sample", "10", "--box", "q=0:1"), "--box, column 1"),
        (("--sample", "10", "--box", "x=0:a"), "--box, column 5"),
        (("--seed", "3"), "--sample"),
    ],
)
def test_bad_sample_options(vjp, args, where) -> None:  # type: ignore[no-untyped-def]
    r = vjp("x*abs(x)", *args, code=2)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"Error: {where}")


def test_shrink_toward_simple_values() -> None:
    point, steps, checks = sample.shrink((-1.37, 0.77), lambda p: p[0] < -0.5, [(-2, 2), (-2, 2)])
    assert point == (-1.0, 0.0)
    assert steps == 2 and checks <= sample.SHRINK_BUDGET
    # nothing simpler fails: the point stays
    assert sample.shrink((0.3,), lambda p: p[0] == 0.3, [(-2, 2)])[0] == (0.3,)


def test_extra_candidate_hook() -> None:
    """One more candidate, a callable point -> values, is swept like the built-in ones."""
    program, problem = api.make_problem("x*abs(x)")
    opts = sample.options(problem, 50, None, 4)
    plan = expect.prepare(program, problem, [], None, None)

    def mine(point: tuple[float, ...]) -> dict[str, list[float]]:
        (x,) = point
        return {"vjp": [2 * x]}  # a backward that is wrong for x < 0

    res = sample.sweep(program, problem, opts, [], plan.v, plan.u,
                       extra=[sample.Candidate("my backward", mine)])  # fmt: skip
    xs = np.random.default_rng(4).uniform(-2, 2, size=50)
    assert res.disagree == int((xs < 0).sum())
    assert res.first_failure is not None and res.first_failure.candidate == "my backward"
    assert res.first_failure.point == (-1.0,)


def test_fast_path_gives_the_single_point_verdicts(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The sweep through --points' certified fast path and through the single-point
    reference alone find the same counts, worst point and shrunk failure."""
    program, problem = api.make_problem("x*abs(x) + y^2")
    opts = sample.options(problem, 120, "x=-3:3,y=0.1:2", 9)
    plan = expect.prepare(program, problem, ["grad=2*x, 2*y"], None, None)
    fast = sample.sweep(program, problem, opts, plan.claims, plan.v, plan.u)
    monkeypatch.setattr(sample, "_fast_reference", lambda *a: None)
    slow = sample.sweep(program, problem, opts, plan.claims, plan.v, plan.u)
    assert fast.fast and not slow.fast and slow.exact_points == 120
    assert fast.exact_points < 120
    for name in ("agree", "disagree", "undefined", "first_failure", "found_at"):
        assert getattr(fast, name) == getattr(slow, name)
    assert fast.worst is not None and slow.worst is not None
    assert fast.worst.point == slow.worst.point
    assert fast.worst.diff == pytest.approx(slow.worst.diff, rel=1e-12)
