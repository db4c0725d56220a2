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
