"""torch side: Jacobian rows, y.backward(v) and forward-mode JVP against independent values."""

from __future__ import annotations

import math

import pytest
from conftest import assert_close, central_jacobian, scalars, with_shapes

from jvp_cli import autograd, lang

SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"


@pytest.mark.parametrize(("v", "expected"), [((3, 2, 1), (10, 34, 42)), ((1, 1, 1), (5, 18, 34))])
def test_seed_backward(v: tuple[float, ...], expected: tuple[float, ...]) -> None:
    res = autograd.evaluate(*with_shapes(SEED), (1.0, 2.0, 3.0), v, None)
    assert res.vjp == expected
    assert res.jacobian == ((2, 2, 1), (1, 12, 6), (2, 4, 27))


def test_jvp_is_jacobian_times_u() -> None:
    res = autograd.evaluate(*with_shapes(SEED), (1.0, 2.0, 3.0), None, (1.0, -1.0, 0.5))
    # J u by hand with J = [[2,2,1],[1,12,6],[2,4,27]]
    assert res.jvp == (2 - 2 + 0.5, 1 - 12 + 3, 2 - 4 + 13.5)


def test_against_finite_differences() -> None:
    text = "sin(x)*exp(y); atan2(y, x) + sqrt(x); sigmoid(x*y) - softplus(y)"
    fs = [
        lambda x, y: math.sin(x) * math.exp(y),
        lambda x, y: math.atan2(y, x) + math.sqrt(x),
        lambda x, y: 1 / (1 + math.exp(-x * y)) - math.log1p(math.exp(y)),
    ]
    point = (0.7, -0.4)
    res = autograd.evaluate(*with_shapes(text), point, None, None)
    assert_close(res.jacobian, central_jacobian(fs, point), rel=1e-6, abs_=1e-7)


def test_unused_variable_has_zero_gradient() -> None:
    prog = lang.parse_program("x**2", variables=["x", "z"])
    res = autograd.evaluate(prog, scalars(prog), (3.0, 1.0), (1.0,), (0.0, 1.0))
    assert res.jacobian == ((6.0, 0.0),)
    assert res.vjp == (6.0, 0.0)
    assert res.jvp == (0.0,)


def test_constant_output_row() -> None:
    res = autograd.evaluate(*with_shapes("3; x*y"), (2.0, 5.0), (1.0, 1.0), None)
    assert res.jacobian == ((0.0, 0.0), (5.0, 2.0))
    assert res.vjp == (5.0, 2.0)


def test_float32() -> None:
    res = autograd.evaluate(*with_shapes("exp(x)"), (1.1,), (1.0,), None, dtype="float32")
    assert res.vjp is not None
    assert res.vjp[0] == pytest.approx(math.exp(1.1), rel=1e-6)
    assert res.vjp[0] != math.exp(1.1)  # really computed in float32


def test_long_sums_batched_give_the_same_numbers(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # 40 like-shaped terms (evaluated together), some of another shape, mixed signs
    n = 6
    terms = [f"{'-' if k % 3 == 0 else '+'} sin(x{k % n + 1}*{k + 2}/{n + 1})" for k in range(40)]
    terms += [f"+ x{k + 1}**2*exp(-x{(k + 1) % n + 1})" for k in range(n)]
    text = "; ".join(["0 " + " ".join(terms), "1 " + " ".join(reversed(terms))])
    program = lang.parse_program(text)
    shapes = [() for _ in program.variables]
    point = tuple(0.3 + 0.1 * j for j in range(n))
    v, u = (1.5, -0.5), tuple(1.0 - 0.2 * j for j in range(n))
    batched = autograd.evaluate(program, shapes, point, v, u)
    monkeypatch.setattr(autograd, "BATCH_TERMS", 10**9)
    plain = autograd.evaluate(program, shapes, point, v, u)
    assert_close(batched.jacobian, plain.jacobian, rel=1e-13, abs_=1e-13)
    assert_close(batched.vjp, plain.vjp, rel=1e-13, abs_=1e-13)
    assert_close(batched.jvp, plain.jvp, rel=1e-13, abs_=1e-13)

    def f(*x: float) -> float:
        total = 0.0
        for k in range(40):
            t = math.sin(x[k % n] * (k + 2) / (n + 1))
            total += -t if k % 3 == 0 else t
        return total + sum(x[k] ** 2 * math.exp(-x[(k + 1) % n]) for k in range(n))

    assert_close(batched.jacobian[0], central_jacobian([f], point)[0], rel=1e-6, abs_=1e-7)


def test_run_frees_its_tensors_without_the_cycle_collector() -> None:
    # --points runs chunk after chunk: tensors kept alive by a reference cycle until the
    # cyclic collector happened to run made memory grow with the number of points.
    import gc
    import weakref

    import torch

    program = lang.parse_program("t = x*x; out = sin(t) + t")
    gc.disable()
    try:
        x = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
        ref = weakref.ref(x)
        outs = autograd.run(program, {"x": x}, x)
        del outs, x
        assert ref() is None
    finally:
        gc.enable()


def test_batch_mode_equals_point_by_point(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # --points runs the program on 1-D tensors of many points; sums of >= 4 like terms are
    # fused into one op per node, with minus signs, numbers that vary or not, and a group of
    # named constants only (pi + pi + pi + pi).
    import torch

    text = (
        "f = sin(2*x) - sin(3*y) + sin(x*y) - sin(x/3) + pi + pi + pi + pi + x**2*y; "
        "g = f*y + exp(-x) + exp(-y) + exp(-2*x) + exp(-x*y)"
    )
    program = lang.parse_program(text, outputs=["f", "g"])  # f is used by g: ask for both
    xs = [0.3, -1.2, 2.5, 0.7, 1.9]
    ys = [1.1, 0.4, -0.8, 2.2, -1.5]

    def by_hand(x: float, y: float) -> tuple[float, float]:
        f = (math.sin(2 * x) - math.sin(3 * y) + math.sin(x * y) - math.sin(x / 3)
             + 4 * math.pi + x * x * y)  # fmt: skip
        return f, f * y + math.exp(-x) + math.exp(-y) + math.exp(-2 * x) + math.exp(-x * y)

    leaves = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in (xs, ys)]
    outs = autograd.run(program, dict(zip(("x", "y"), leaves, strict=True)), leaves[0],
                        batch=True, plan={})  # fmt: skip
    for k, (x, y) in enumerate(zip(xs, ys, strict=True)):
        values = [float(outs[0][k].detach()), float(outs[1][k].detach())]
        assert_close(values, by_hand(x, y), rel=1e-13, abs_=1e-13)
    torch.stack(outs, dim=1).backward(torch.tensor([[1.0, -2.0]] * len(xs), dtype=torch.float64))
    for k, point in enumerate(zip(xs, ys, strict=True)):
        single = autograd.evaluate(program, [(), ()], point, (1.0, -2.0), None)
        got = (float(leaves[0].grad[k]), float(leaves[1].grad[k]))
        assert_close(got, single.vjp, rel=1e-12, abs_=1e-12)
        # and against finite differences of v^T f
        fd = central_jacobian([lambda a, b: by_hand(a, b)[0] - 2 * by_hand(a, b)[1]], point)[0]
        assert_close(got, fd, rel=1e-6, abs_=1e-6)


def test_named_outputs_are_computed_once(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import torch

    calls = []

    def counting_sin(t: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return torch.sin(t)

    monkeypatch.setitem(autograd._ELEMENTWISE, "sin", counting_sin)
    program = lang.parse_program("f = sin(x); g = f * 2; h = sin(x) + g", outputs=["f", "g", "h"])
    x = torch.tensor(0.5, dtype=torch.float64, requires_grad=True)
    outs = autograd.run(program, {"x": x}, x)
    s = math.sin(0.5)
    assert [float(o.detach()) for o in outs] == [s, 2 * s, 3 * s]
    assert len(calls) == 2  # f once (g reuses it), and the sin inside h


@pytest.mark.parametrize(
    ("text", "at", "want"),
    [
        ("x**2", "-0.2", -0.4),  # 2x, by hand
        ("x**3", "-1.5", 6.75),  # 3x^2
        ("x**-1", "-0.2", -25.0),  # -1/x^2
        ("(x*x)**-2", "-2", 0.125),  # -4/x^5
        ("x**(2*3)", "-1", -6.0),  # 6x^5
    ],
)
def test_forward_mode_with_a_negative_base(vjp, text: str, at: str, want: float) -> None:  # type: ignore[no-untyped-def]
    """A constant exponent is a Python number in forward mode too: a dual constant put
    log(base) * 0 = NaN into the tangent at a negative base, a false disagree."""
    out = vjp(text, "--at", at, "--u", "1", "--json").json()
    assert out["jvp"]["status"] == "agree"
    assert out["jvp"]["torch"][0] == pytest.approx(want, rel=1e-14)
