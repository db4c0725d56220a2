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


def _dense(n: int = 30) -> tuple[str, str]:
    # f_i = sum_j c_ij * x_j * x_{(i+j) % n + 1}: every entry nonzero, values of 2-3 digits
    fs = [
        " + ".join(f"{(7 * i + 3 * j) % 50 + 1}*x{j}*x{(i + j) % n + 1}" for j in range(1, n + 1))
        for i in range(n)
    ]
    return "\n".join(fs), ",".join(f"{k / 7:.6f}" for k in range(1, n + 1))


def _band(n: int = 500) -> str:
    return "\n".join(f"x{max(i - 1, 1)}*x{i} + x{i}*x{min(i + 1, n)}" for i in range(1, n + 1))


def _lines_fit(text: str, width: int) -> None:
    too_long = [line for line in text.splitlines() if len(line) > width]
    assert not too_long, too_long[:3]


NUMBER_CUT = re.compile(r"[0-9.]…")  # a number cut to a prefix, like 4…


def test_dense_30_at_80_columns_piped_never_cuts_a_number(vjp, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    text, at = _dense()
    out = vjp("-", "--at", at, input=text).stdout
    _lines_fit(out, 80)
    assert not NUMBER_CUT.search(out.split("Symbolic Jacobian")[1])
    data = vjp("-", "--at", at, "--json", input=text).json()
    row = next(line for line in out.splitlines() if line.startswith("f1 "))
    shown = row.split()[1:]
    wanted = {f"{x:.12g}" for x in data["jacobian"]["sympy"][0]} | {"…"}
    assert set(shown) <= wanted and len(shown) >= 3, row
    assert "Sparsity of J" in out
    assert "left out: --full or --json has all" in out


def test_dense_30_full_lists_every_entry_legibly(vjp, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    text, at = _dense()
    out = vjp("-", "--at", at, "--full", input=text).stdout
    _lines_fit(out, 80)
    assert "…" not in out.split("Symbolic Jacobian")[1]  # no cell, header or number cut
    assert "900 nonzero entries of 30 x 30" in out
    data = vjp("-", "--at", at, "--json", input=text).json()
    j = data["jacobian"]["sympy"]
    for i, k in ((0, 0), (12, 17), (29, 29)):
        line = next(ln for ln in out.splitlines() if ln.startswith(f"J[f{i + 1}, x{k + 1}] "))
        assert f"{j[i][k]:.12g}" in line
    assert len(out.splitlines()) < 2 * 900 + 400  # one line per entry, not one per token


def test_band_500_shows_its_band_in_the_sparsity_picture(vjp, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    out = vjp("-", input=_band()).stdout
    _lines_fit(out, 80)
    assert "500 x 500, 1,498 nonzero" in out
    picture = out.split("Sparsity of J")[1].splitlines()[1:-1]
    rows = [line.strip("│ ") for line in picture]
    assert len(rows) >= 16
    lit = [[c != "\u2800" for c in r] for r in rows]
    # the band: a character covers 4 dot rows and 2 dot columns, so the diagonal runs
    # through column 2 r of row r, from the top-left corner to the bottom-right one
    for r, cells in enumerate(lit):
        where = [c for c, on in enumerate(cells) if on]
        assert where and all(abs(c - 2 * r) <= 2 for c in where), (r, where)
    assert lit[0][0] and lit[-1][-1]
    full = vjp("-", "--full", input=_band()).stdout
    assert "1,498 nonzero entries of 500 x 500" in full
    assert "J[f250, x251]" in full and "J[f250, x252]" not in full


def test_piped_width_follows_COLUMNS(vjp, monkeypatch):
    text, at = _dense()
    monkeypatch.setenv("COLUMNS", "200")
    wide = vjp("-", "--at", at, input=text).stdout
    assert max(len(line) for line in wide.splitlines()) > 100
    _lines_fit(wide, 200)
    monkeypatch.delenv("COLUMNS")
    plain = vjp("-", "--at", at, input=text).stdout
    _lines_fit(plain, 80)  # no terminal anywhere: 80, not a forced 160


def test_undefined_entries_are_named(vjp):
    out = vjp("log(x)*y; y", "--at", "0,1", code=1).stdout
    assert "not finite at df1/dx" in out


def test_the_sparsity_picture_on_an_ascii_terminal():
    from jvp_cli import cli

    assert cli._encodable("\u2800\u28ff\u2801", "ascii") == " ##"
