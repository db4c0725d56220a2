"""--points: many points in one process; results equal the single-point path."""

from __future__ import annotations

import json
import math
import random

import pytest

PROG = "f = sin(x)*y + x^2; g = exp(-y)*x - atan2(y, x)"


def lines_of(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def test_batch_equals_single_point_path(vjp, tmp_path) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(5)
    pts = [(rng.uniform(-2, 2), rng.uniform(0.1, 2)) for _ in range(40)]
    csv = tmp_path / "p.csv"
    csv.write_text("x,y\n" + "".join(f"{x!r},{y!r}\n" for x, y in pts))
    out = lines_of(vjp(PROG, "--points", str(csv), "--v", "2,-1", "--json").stdout)
    assert [o["line"] for o in out] == list(range(2, 42))
    for o, (x, y) in list(zip(out, pts, strict=True))[::8]:
        single = vjp(PROG, "--at", f"x={x!r},y={y!r}", "--v", "2,-1", "--json").json()
        assert o["point"] == {"x": x, "y": y}
        for side in ("sympy", "torch"):
            assert o["vjp"][side] == pytest.approx(single["vjp"][side], rel=1e-12, abs=1e-14)
        # and by hand: v^T J with v = (2, -1)
        fx, fy = math.cos(x) * y + 2 * x, math.sin(x)
        r2 = x * x + y * y
        gx, gy = math.exp(-y) + y / r2, -math.exp(-y) * x - x / r2
        assert o["vjp"]["torch"] == pytest.approx([2 * fx - gx, 2 * fy - gy], rel=1e-12)
        assert o["agree"] is True


def test_json_lines_with_v_per_row(vjp) -> None:  # type: ignore[no-untyped-def]
    data = '{"x": 1, "y": 2, "v": [1, 0]}\n[0.5, 0.25]\n{"y": 1, "x": 3, "v": {"f": 0, "g": 1}}\n'
    out = lines_of(vjp(PROG, "--points", "-", "--v", "0,1", "--json", input=data).stdout)
    assert [o["vjp"]["v"] for o in out] == [[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]
    assert out[2]["point"] == {"x": 3.0, "y": 1.0}


def test_csv_v_columns(vjp) -> None:  # type: ignore[no-untyped-def]
    data = "x,v:f1\n1,3\n2,0.5\n"
    out = lines_of(vjp("x^3", "--points", "-", "--json", input=data).stdout)
    assert [o["vjp"]["torch"] for o in out] == [[9.0], [6.0]]  # v * 3x^2


@pytest.mark.parametrize(
    ("data", "fragment", "good_lines"),
    [
        ("x,y\n1,2\n3,oops\n5,6\n", "line 3, column 2: 'oops' is not a number", 1),
        ("x,y\n1,2\n3,nan\n", "line 3, column 2", 1),
        ("x,y\n1,2\n3\n", "line 3: 1 fields but the header has 2", 1),
        ("x,z\n1,2\n", "line 1: column 2 'z' is neither a variable", 0),
        ("x\n1\n", "no column for y", 0),
        ('{"x": 1, "y": 2}\n{"x": 1, "y": "a"}\n', "line 2", 1),
        ('{"x": 1, "y": 2}\n{"x": 1\n', "line 2: not valid JSON", 1),
        ("[1, 2]\n[1, 2, 3]\n", "line 2: 3 values but there are 2 variables", 1),
        ('{"x": 1, "y": NaN}\n', "line 1", 0),
        ("", "no points", 0),
    ],
)
def test_bad_rows(vjp, data: str, fragment: str, good_lines: int) -> None:  # type: ignore[no-untyped-def]
    r = vjp(PROG, "--points", "-", "--v", "1,1", "--json", input=data, code=2)
    assert fragment in r.stderr and len(r.stderr.splitlines()) == 1
    written = r.stdout.splitlines()
    assert len(written) == good_lines
    for line in written:
        assert json.loads(line)["agree"] is True  # every line written is complete


def test_undefined_points_counted(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp("log(x)", "--points", "-", "--json", input="x\n1\n-1\n0\n", code=1).stdout
    statuses = [o["vjp"]["status"] for o in lines_of(out)]
    assert statuses == ["agree", "undefined", "undefined"]


def test_summary_table(vjp) -> None:  # type: ignore[no-untyped-def]
    out = vjp("x*y", "--points", "-", input="x,y\n1,2\n3,4\n").stdout
    assert "--points summary" in out and "2" in out


def test_batch_refuses_tensor_programs(vjp) -> None:  # type: ignore[no-untyped-def]
    r = vjp("sum(x)", "--points", "-", input="x\n1\n", code=2)
    assert "element-wise" in r.stderr


def test_chunks_stream(vjp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from jvp_cli import batch

    monkeypatch.setattr(batch, "CHUNK", 7)
    data = "x\n" + "".join(f"{k / 10}\n" for k in range(50))
    out = lines_of(vjp("x^2", "--points", "-", "--json", input=data).stdout)
    assert [o["vjp"]["torch"][0] for o in out] == pytest.approx([2 * k / 10 for k in range(50)])


@pytest.mark.slow
def test_batch_into_a_closed_pipe_is_quiet(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys

    csv = tmp_path / "p.csv"
    csv.write_text("x,y\n" + "".join(f"{k},{k + 1}\n" for k in range(20_000)))
    cmd = f'{sys.executable} -m jvp_cli "x*y" --points {csv} --v 1 --json | head -n 2'
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=120)
    assert len(r.stdout.splitlines()) == 2
    assert r.stderr == "", r.stderr


def test_points_edge_cases(vjp) -> None:  # type: ignore[no-untyped-def]
    # a byte-order mark before the header, Windows line ends
    out = lines_of(vjp("x*y", "--points", "-", "--json", input="\ufeffx,y\r\n1,2\r\n").stdout)
    assert out[0]["vjp"]["torch"] == [2.0, 1.0]
    # an integer too big for float64 is a bad value, not a crash
    r = vjp("x*y", "--points", "-", "--json", input="[1, " + "9" * 400 + "]\n", code=2)
    assert "line 1" in r.stderr and "Traceback" not in r.stderr


# every function the language has, in forms SymEngine/LLVM compiles and the numpy walk reads
COMPILED_PROGRAMS = [
    "f = sin(x)*cos(y) + tan(x/4); g = asin(x/3) + acos(y/3) + atan(x*y)",
    "f = sinh(x) - cosh(y) + tanh(x*y); g = exp(x)*log(y) + sqrt(y)",
    "f = sigmoid(x*y) + softplus(x - y); g = atan2(y, x) + x^3/y^2",
    "f = abs(x - y) + x**y; g = 1/x + y**(1/3)",
]


@pytest.mark.parametrize("text", COMPILED_PROGRAMS)
def test_compiled_symbolic_side_equals_the_numpy_walk(text: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from jvp_cli import api, batch

    program, problem = api.make_problem(text, batch=True)
    compiled = batch.symbolic_side(program, problem)
    assert compiled.compiled and compiled.fast is not None
    monkeypatch.setattr(batch, "COMPILE", False)
    walk = batch.symbolic_side(program, problem)
    assert not walk.compiled and walk.fast is not None
    rng = np.random.default_rng(3)
    # mostly inside every domain, and some points outside (log, sqrt of negatives; 1/0)
    X = np.vstack([rng.uniform(0.2, 1.4, (200, 2)), rng.uniform(-2, 2, (50, 2)), [[0.0, 0.0]]])
    V = rng.uniform(-2, 2, (len(X), 2))
    a, b = compiled.fast(X, V), walk.fast(X, V)
    assert np.array_equal(np.isfinite(a.G), np.isfinite(b.G))
    ok = np.isfinite(a.G)
    assert np.allclose(a.G[ok], b.G[ok], rtol=1e-12, atol=1e-12)
    # error bounds of the same size (SymEngine's and SymPy's trees differ in shape, so the
    # bounds differ a little) and the same verdicts
    both = np.isfinite(a.R) & np.isfinite(b.R)
    assert np.all(a.R[both] <= 2 * b.R[both] + 1e-300) and np.all(b.R[both] <= 2 * a.R[both])
    assert np.array_equal(a.state, b.state)


@pytest.mark.parametrize("text", COMPILED_PROGRAMS)
def test_compiled_code_is_the_same_at_every_llvm_level(text: str, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The --points code is compiled at LLVM's opt level 0 (half the compile time); the error
    bounds assume the operations as written, so every level must give the same bits."""
    import numpy as np

    from jvp_cli import api, batch, numeric

    program, problem = api.make_problem(text, batch=True)
    rng = np.random.default_rng(5)
    X = np.vstack([rng.uniform(0.2, 1.4, (300, 2)), rng.uniform(-2, 2, (50, 2))])
    V = rng.uniform(-2, 2, (len(X), 2))
    results = []
    for level in (0, 3):
        monkeypatch.setattr(numeric, "LLVM_OPT_LEVEL", level)
        side = batch.symbolic_side(program, problem)
        assert side.compiled and side.fast is not None
        results.append(side.fast(X, V))
    (a, b) = results
    for got, want in ((a.G, b.G), (a.R, b.R)):
        assert np.array_equal(got, want, equal_nan=True)
    assert np.array_equal(a.state, b.state)


def test_compiled_symbolic_side_by_hand() -> None:
    import numpy as np

    from jvp_cli import api, batch

    program, problem = api.make_problem("f = x^2*y + sin(y); g = exp(x*y)", batch=True)
    side = batch.symbolic_side(program, problem)
    assert side.fast is not None
    x, y, v1, v2 = 0.7, -1.3, 2.0, -0.5
    got = side.fast(np.array([[x, y]]), np.array([[v1, v2]]))
    e = math.exp(x * y)
    want = [v1 * 2 * x * y + v2 * y * e, v1 * (x * x + math.cos(y)) + v2 * x * e]
    assert got.G[0] == pytest.approx(want, rel=1e-14)
    # the bound is honest (the float64 value is within it of the exact value) and small
    err = [abs(g - w) for g, w in zip(got.G[0], want, strict=True)]
    assert all(e_ <= r for e_, r in zip(err, got.R[0], strict=True))
    assert all(r < 1e-13 for r in got.R[0])


def test_points_engine_choice(vjp) -> None:  # type: ignore[no-untyped-def]
    import importlib.util

    from jvp_cli import api

    _, problem = api.make_problem(PROG, batch=True)
    have = importlib.util.find_spec("symengine") is not None
    assert problem.engine == ("symengine" if have else "sympy")
    # abs/relu/max/min keep SymPy (its derivatives are NaN at the kinks)
    assert api.make_problem("relu(x) + y", batch=True)[1].engine == "sympy"
    data = "x,y\n0.5,1.5\n-1,2\n"
    auto = lines_of(vjp(PROG, "--points", "-", "--v", "1,2", "--json", input=data).stdout)
    plain = lines_of(vjp(PROG, "--points", "-", "--v", "1,2", "--json", "--engine", "sympy",
                         input=data).stdout)  # fmt: skip
    for a, p in zip(auto, plain, strict=True):
        assert a["vjp"]["sympy"] == pytest.approx(p["vjp"]["sympy"], rel=1e-14)


def test_relu_points_use_the_numpy_walk(vjp) -> None:  # type: ignore[no-untyped-def]
    # Heaviside(u, nan), relu's derivative, has no LLVM form: the walk takes over, and the
    # kink is undefined
    out = lines_of(vjp("relu(x)*y", "--points", "-", "--json", input="x,y\n2,3\n-1,3\n0,3\n",
                       code=1).stdout)  # fmt: skip
    assert out[0]["vjp"]["sympy"] == [3.0, 2.0]
    assert out[1]["vjp"]["sympy"] == [0.0, 0.0]
    assert out[2]["vjp"]["status"] == "undefined"


def test_csv_rows_are_read_strictly(vjp) -> None:  # type: ignore[no-untyped-def]
    # a '#' is not a comment: "3#4" is not a number
    r = vjp("x*y", "--points", "-", "--json", input="x,y\n1,2\n3,3#4\n", code=2)
    assert "line 3, column 2" in r.stderr and len(r.stdout.splitlines()) == 1
    # blank lines keep their numbers
    out = lines_of(vjp("x*y", "--points", "-", "--json", input="x,y\n1,2\n\n  \n3,4\n").stdout)
    assert [o["line"] for o in out] == [2, 5]
    assert out[1]["vjp"]["torch"] == [4.0, 3.0]


def _points_text(count: int) -> str:
    return "x,y\n" + "".join(f"{0.1 + k / 97},{1 + (k % 13) / 7}\n" for k in range(count))


@pytest.fixture
def small_chunks_with_sidecar(monkeypatch):  # type: ignore[no-untyped-def]
    """Chunks of 16 rows, and the side process on even where the machine has one core."""
    from jvp_cli import batch, sidecar

    monkeypatch.setattr(batch, "CHUNK", 16)
    monkeypatch.setattr(sidecar, "available", lambda device: True)


def test_side_process_gives_the_same_lines(vjp, small_chunks_with_sidecar, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from jvp_cli import batch

    data = _points_text(100)  # six full chunks and a partial one
    two = vjp(PROG, "--points", "-", "--v", "2,-1", "--json", input=data).stdout
    monkeypatch.setattr(batch, "SIDECAR", False)
    one = vjp(PROG, "--points", "-", "--v", "2,-1", "--json", input=data).stdout
    assert two == one and len(two.splitlines()) == 100
    table = vjp(PROG, "--points", "-", "--v", "2,-1", input=data).stdout
    assert "torch side: this process" in table
    monkeypatch.setattr(batch, "SIDECAR", True)
    table = vjp(PROG, "--points", "-", "--v", "2,-1", input=data).stdout
    assert "torch side: a side process" in table and "SymEngine-compiled" in table


def test_work_shared_with_a_slow_side_process(small_chunks_with_sidecar, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # while the side process is slow, this process runs whole chunks' torch side itself;
    # the lines come out in input order and equal the in-process run's
    import io
    import os
    import time

    from jvp_cli import api, batch

    real = batch.torch_side
    parent = os.getpid()

    def slow_child(program, problem):  # type: ignore[no-untyped-def]
        side = real(program, problem)

        def wrapped(X, V):  # type: ignore[no-untyped-def]
            if os.getpid() != parent:
                time.sleep(0.05)
            return side(X, V)

        return wrapped

    program, problem = api.make_problem(PROG, batch=True)
    data = _points_text(200)
    out: list[bytes] = []
    monkeypatch.setattr(batch, "torch_side", slow_child)
    summary = batch.run(program, problem, io.StringIO(data), [2.0, -1.0], out.append)
    assert summary.processes == 2 and 0 < summary.chunks_here < 13
    monkeypatch.setattr(batch, "SIDECAR", False)
    alone: list[bytes] = []
    batch.run(program, problem, io.StringIO(data), [2.0, -1.0], alone.append)
    assert out == alone
    lines = [json.loads(x)["line"] for chunk in out for x in chunk.split(b"\n")]
    assert lines == list(range(2, 202))


@pytest.mark.parametrize("extra", [[], ["--dtype", "float32"]])
def test_side_process_json_lines_with_v_per_row(
    vjp, small_chunks_with_sidecar, monkeypatch, extra
) -> None:  # type: ignore[no-untyped-def]
    from jvp_cli import batch

    rows = [
        json.dumps({"x": 0.1 + k / 37, "y": 1 + k / 53, "v": [k % 3, 1 - k % 2]})
        if k % 4 else json.dumps([0.1 + k / 37, 1 + k / 53])  # no v: --v is used
        for k in range(70)
    ]  # fmt: skip
    data = "\n".join(rows) + "\n"
    two = vjp(PROG, "--points", "-", "--v", "1,1", "--json", *extra, input=data).stdout
    monkeypatch.setattr(batch, "SIDECAR", False)
    one = vjp(PROG, "--points", "-", "--v", "1,1", "--json", *extra, input=data).stdout
    assert two == one
    got = lines_of(two)
    assert [o["vjp"]["v"] for o in got[:5]] == [[1.0, 1.0], [1.0, 0.0], [2.0, 1.0], [0.0, 0.0],
                                                [1.0, 1.0]]  # fmt: skip
    assert all(o["agree"] for o in got)


def test_side_process_bad_row_after_full_chunks(vjp, small_chunks_with_sidecar) -> None:  # type: ignore[no-untyped-def]
    data = _points_text(40) + "1,oops\n"
    r = vjp(PROG, "--points", "-", "--v", "1,1", "--json", input=data, code=2)
    assert "line 42, column 2" in r.stderr and len(r.stderr.splitlines()) == 1
    assert len(r.stdout.splitlines()) == 40
    assert all(json.loads(line)["agree"] for line in r.stdout.splitlines())


@pytest.mark.parametrize("how", ["raises", "dies", "memory"])
def test_side_process_failure_is_an_internal_error(
    vjp, small_chunks_with_sidecar, monkeypatch, how: str
) -> None:  # type: ignore[no-untyped-def]
    import os

    from jvp_cli import batch

    real = batch.torch_side

    def failing(program, problem):  # type: ignore[no-untyped-def]
        side = real(program, problem)
        parent = os.getpid()

        def wrapped(X, V):  # type: ignore[no-untyped-def]
            if os.getpid() != parent:  # only in the side process
                if how == "dies":
                    os._exit(9)
                if how == "memory":
                    raise MemoryError
                raise ValueError("boom")
            return side(X, V)

        return wrapped

    monkeypatch.setattr(batch, "torch_side", failing)
    code = 2 if how == "memory" else 3
    r = vjp(PROG, "--points", "-", "--v", "1,1", "--json", input=_points_text(40), code=code)
    assert len(r.stderr.splitlines()) == 1
    want = {"raises": "internal error: ValueError: boom", "dies": "internal error: SidecarError",
            "memory": "out of memory"}[how]  # fmt: skip
    assert want in r.stderr


def test_fast_json_lines_equal_json_dumps() -> None:
    # the chunk formatter (orjson) must give the same JSON values as json.dumps of the line
    import numpy as np

    from jvp_cli import api, batch

    _, problem = api.make_problem("f = x*y; g = x + y", batch=True)
    rng = np.random.default_rng(7)
    B = 64
    X = rng.uniform(-1e3, 1e3, (B, 2))
    X[0] = [-0.0, 5e-324]
    X[1] = [1e16, 1e-7]
    V = rng.uniform(-2, 2, (B, 2))
    sym = rng.normal(size=(B, 2)) * 10.0 ** rng.integers(-300, 300, (B, 2))
    tor = sym * (1 + rng.normal(scale=1e-9, size=(B, 2)))
    sym[2] = [-0.0, 1.7976931348623157e308]
    tor[2] = [0.0, 1.7976931348623157e308]
    sym[3, 0], tor[4, 1], tor[5] = np.nan, np.inf, [-np.inf, np.nan]
    diff = np.where(np.isfinite(sym) & np.isfinite(tor), np.abs(tor - sym), 0.0).max(axis=1)
    finite = np.isfinite(sym).all(axis=1) & np.isfinite(tor).all(axis=1)
    agree = finite & (rng.uniform(size=B) < 0.7)
    sides = batch.Sides(range(10, 10 + B), X, V, sym, tor)
    status = np.where(agree, "agree", np.where(finite, "disagree", "undefined"))
    text = batch._format_lines(problem, sides, diff, status)
    got = [json.loads(line) for line in text.split(b"\n")]
    for k, line in enumerate(got):
        status = "agree" if agree[k] else ("disagree" if finite[k] else "undefined")
        want = json.loads(
            batch._line(10 + k, problem, X[k], V[k], sym[k], tor[k], float(diff[k]), status)
        )
        assert line == want  # the same floats, bit for bit, and the same strings
        assert math.copysign(1, line["point"]["x"]) == math.copysign(1, X[k, 0])
    assert got[3]["vjp"]["sympy"][0] == "NaN" and got[5]["vjp"]["torch"] == ["-Infinity", "NaN"]
    assert got[2]["vjp"]["sympy"][0] == 0.0 and got[0]["point"]["y"] == 5e-324


def test_certified_vjp_never_parses_text(tmp_path) -> None:
    # only expression trees reach symengine.sympify; a string is refused, not parsed
    import sympy as sp

    from jvp_cli import numeric

    marker = tmp_path / "owned"
    text = f"__import__('pathlib').Path({str(marker)!r}).touch()"
    with pytest.raises(TypeError):
        numeric.certified_vjp([{0: text}], [sp.Symbol("x")], sp, [])
    assert not marker.exists()


def test_json_row_without_v_is_a_bad_row_like_csv(vjp) -> None:  # type: ignore[no-untyped-def]
    # the rows before a bad row come out, in both formats, whatever the row's fault
    rows = ['{"x": 1, "y": 2, "v": [1, 1]}', '{"x": 2, "y": 2, "v": [1, 1]}', '{"x": 3, "y": 2}',
            '{"x": 4, "y": 2, "v": [1, 1]}']  # fmt: skip
    r = vjp("x*y; x+y", "--points", "-", "--json", input="\n".join(rows) + "\n", code=2)
    out = lines_of(r.stdout)
    assert [o["line"] for o in out] == [1, 2]
    assert out[1]["vjp"]["sympy"] == [2.0 + 1.0, 2.0 + 1.0]  # (y + 1, x + 1) at (2, 2)
    assert "line 3" in r.stderr and "no v" in r.stderr
    csv = "x,y,v:f1,v:f2\n1,2,1,1\n2,2,1,1\n3,2,x,1\n"
    r = vjp("x*y; x+y", "--points", "-", "--json", input=csv, code=2)
    assert [o["line"] for o in lines_of(r.stdout)] == [2, 3] and "line 4" in r.stderr


def test_progress_reports_points_and_bytes_read(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # the bar's figures: points done and how far into the file the reader is (an ETA's basis)
    from jvp_cli import api, batch
    from jvp_cli.cli import _file_size, _Progress

    csv = tmp_path / "p.csv"
    csv.write_text("x,y\n" + "".join(f"{k},{k + 1}\n" for k in range(3 * batch.CHUNK)))
    program, problem = api.make_problem("x*y", batch=True)
    seen: list[tuple[int, int]] = []
    with csv.open("rb") as stream:
        batch.run(program, problem, stream, None, None, lambda p, pos: seen.append((p, pos)))
    size = _file_size(str(csv))
    assert size == csv.stat().st_size and _file_size("-") is None
    assert [p for p, _ in seen] == [batch.CHUNK, 2 * batch.CHUNK, 3 * batch.CHUNK]
    positions = [pos for _, pos in seen]
    assert positions == sorted(positions) and 0 < positions[0] <= size and positions[-1] == size
    # stopped (the end, a timeout, Ctrl-C), the bar draws nothing more
    bar = _Progress(size)
    bar.start -= 2.0  # as if the run had gone on for two seconds: the bar would show
    bar.stop()
    bar.update(5, 10)
    assert bar.bar is None


@pytest.mark.parametrize("value", ["1e-310", "-2.5e-301", "1e301", "-3e305"])
def test_points_refuse_the_numbers_at_refuses(vjp, value: str) -> None:  # type: ignore[no-untyped-def]
    """A coordinate outside 1e-300 .. 1e300 is refused by --at; --points refuses it too (a
    bad row, the rows before it still written), in CSV and JSON lines, point or v."""
    at = vjp("x**2", "--at", value, code=2)
    assert "outside the range 1e-300 .. 1e300" in at.stderr
    for data, where in (
        (f"x\n1\n{value}\n", "--points line 3, column 1"),
        (f'{{"x": 1}}\n{{"x": {value}}}\n', "--points line 2"),
        (f"x,v:f\n1,1\n2,{value}\n", "--points line 3, column 2"),
    ):
        r = vjp("f = x**2", "--points", "-", "--json", input=data, code=2)
        lines = [json.loads(t) for t in r.stdout.splitlines()]
        assert [ln["vjp"]["sympy"] for ln in lines] == [[2.0]]
        assert f"{where}: number" in r.stderr and "outside the range" in r.stderr
    # the edges themselves, and zero, are accepted on both paths
    ok = vjp("x", "--points", "-", "--json", input="x\n1e-300\n-1e300\n0\n")
    assert [json.loads(t)["vjp"]["status"] for t in ok.stdout.splitlines()] == ["agree"] * 3
