"""The report at every size: labelled gradients, big Jacobians that never cut a number,
the terminal width when piped, the sparsity picture."""

from __future__ import annotations

import re

from conftest import assert_close


def test_scalar_grads_are_labelled_in_rich_and_json(vjp):
    args = ("sigmoid(w1*x + w2*y + b)", "--at", "b=0.1,w1=0.5,w2=-1,x=2,y=0.3")
    out = vjp(*args).stdout
    for name in ("b", "w1", "w2", "x", "y"):
        assert re.search(rf"^│ {name}\.grad +\S+ +\S+ +│$", out, re.M), out
    data = vjp(*args, "--json").json()
    grads = data["vjp"]["grads"]
    assert list(grads) == ["b", "w1", "w2", "x", "y"]
    assert_close([grads[n]["torch"] for n in grads], data["vjp"]["torch"])
    w1_line = next(line for line in out.splitlines() if "w1.grad" in line)
    assert f"{grads['w1']['sympy']:.12g}" in w1_line


def test_many_variables_window_the_grad_lines(vjp):
    text = " + ".join(f"x{k}**2" for k in range(1, 31))
    at = ",".join(str(k) for k in range(1, 31))
    out = vjp(text, "--at", at).stdout
    assert "x1.grad" in out and "x30.grad" in out and "⋮" in out
    assert "x20.grad" not in out
    full = vjp(text, "--at", at, "--full").stdout
    assert all(f"x{k}.grad" in full for k in range(1, 31))
