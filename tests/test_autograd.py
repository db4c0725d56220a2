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
