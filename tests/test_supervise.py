"""--timeout always fires (issue 10, class 1): the work runs in a forked child that the parent
kills, with its whole process group, at the deadline, even inside a C call that holds the
interpreter lock; what the child writes reaches stdout and stderr whole and unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from jvp_cli import api, supervise

SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"

pytestmark = pytest.mark.skipif(
    not supervise.available() or not os.path.isdir("/proc"), reason="no fork here"
)


def _holds_the_lock(*args: object) -> object:
    # one C call, many seconds, the interpreter lock held throughout: a thread waiting
    # with a timeout cannot return until it ends (as SymPy's exact power of a huge
    # exponent, or SymEngine's LLVM compile of a big system, did)
    return pow(10, 10**8)


def test_a_call_that_holds_the_lock_stops_at_the_deadline(vjp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(api, "solve", _holds_the_lock)
    start = time.monotonic()
    r = vjp("x", "--at", "1", "--timeout", "2", code=2)
    assert time.monotonic() - start < 4.5
    assert r.stderr.startswith("Error: stopped after 2 s (--timeout)")
    assert r.stderr.count("\n") == 1 and r.stdout == ""


def test_points_stop_at_the_deadline_inside_a_long_call(vjp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from jvp_cli import batch

    monkeypatch.setattr(batch, "run", _holds_the_lock)
    start = time.monotonic()
    r = vjp("x", "--points", "-", "--json", "--timeout", "2", input="x\n1\n", code=2)
    assert time.monotonic() - start < 4.5
    assert "stopped after 2 s" in r.stderr


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if marker.encode() in f.read():
                        found.append(int(pid))
            except OSError:
                continue
    return found


def _none_left(marker: str) -> bool:
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return _processes_with(marker) == []


# A real process: the engines' side process forked by the child holds the lock too.
HOG = textwrap.dedent("""
    import sys
    from jvp_cli import api, cli

    def hog(*args, **kwargs):
        return pow(10, 10**8)

    api._autograd = hog  # the torch side, in the child's own side process
    sys.modules["jvp_cli.symbolic"] = type(sys)("jvp_cli.symbolic")
    sys.modules["jvp_cli.symbolic"].evaluate = hog  # and the reference, in the child
    api.PARALLEL_NODES = 0
    cli.main([sys.argv[1], "--at", "1,2,3", "--v", "1,1,1", "--timeout", "2"])
""")


@pytest.mark.slow
def test_no_process_of_the_group_survives_the_deadline(tmp_path: Path) -> None:
    marker = "marker_for_the_lock_holder"
    proc = subprocess.Popen([sys.executable, "-c", HOG, SEED, marker],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    start = time.monotonic()
    most = 0
    while proc.poll() is None and time.monotonic() - start < 60:
        most = max(most, len(_processes_with(marker)))
        time.sleep(0.02)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    assert time.monotonic() - start < 8  # start-up, 2 s of work, and the kill
    assert err.startswith("Error: stopped after 2 s (--timeout)") and err.count("\n") == 1
    assert out == ""
    if len(os.sched_getaffinity(0)) >= 2:
        assert most >= 3  # this process, the child, and the child's torch side
    assert _none_left(marker)


@pytest.mark.slow
def test_points_with_a_big_program_return_at_the_deadline(tmp_path: Path) -> None:
    # 150 variables, 22,500 sin terms: SymEngine's compile held the lock for minutes
    n = 150
    prog = tmp_path / "big_points_marker.txt"
    prog.write_text("\n".join(
        f"f{i} = " + " + ".join(f"sin(x{j}*{i + j}/{n})" for j in range(1, n + 1))
        for i in range(1, n + 1)
    ))  # fmt: skip
    points = tmp_path / "p.csv"
    points.write_text(",".join(f"x{j}" for j in range(1, n + 1)) + "\n" + "0.5," * (n - 1) + "1\n")
    start = time.monotonic()
    cmd = [sys.executable, "-m", "jvp_cli", "-f", str(prog), "--points", str(points), "--json",
           "--timeout", "3"]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    assert time.monotonic() - start < 9
    assert "stopped after 3 s" in r.stderr and r.stdout == ""
    assert _none_left(str(prog))


@pytest.mark.slow
def test_the_waiting_process_imports_neither_engine() -> None:
    code = textwrap.dedent(f"""
        import sys
        from jvp_cli import cli
        status = cli.run([{SEED!r}, "--at", "1,2,3", "--v", "3,2,1", "--json"])
        heavy = sorted(m for m in ("torch", "sympy", "symengine") if m in sys.modules)
        print(status, heavy, file=sys.stderr)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.stderr.strip() == "0 []", r.stderr
    assert '"torch": [10.0, 34.0, 42.0]' in r.stdout


ERRORS = [
    ["x +"],
    ["x*y", "--at", "1"],
    ["x", "--at", "1", "--device", "meta"],
    ["x", "--shape", "x=100000", "--at", "x=zeros"],
    ["log(x) + sqrt(y)", "--at", "-1,2", "--v", "1"],  # undefined: exit 1
    ["x", "--points", "-", "--at", "1"],
    [SEED, "--at", "1,2,3", "--v", "3,2,1", "--json"],
    [SEED, "--at", "1,2,3", "--u", "1,0,0"],
]


@pytest.mark.parametrize("args", ERRORS)
def test_the_child_says_what_one_process_says(vjp, monkeypatch, args: list[str]) -> None:  # type: ignore[no-untyped-def]
    child = vjp(*args, code=None)
    monkeypatch.setenv("JVP_CLI_NO_FORK", "1")
    here = vjp(*args, code=None)
    assert (child.code, child.stdout, child.stderr) == (here.code, here.stdout, here.stderr)


def test_points_lines_come_through_whole(vjp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    rows = "x,y\n" + "".join(f"{k / 10},{k / 7}\n" for k in range(300)) + "1,zz\n"
    child = vjp("x*y + sin(x)", "--points", "-", "--json", input=rows, code=None)
    monkeypatch.setenv("JVP_CLI_NO_FORK", "1")
    here = vjp("x*y + sin(x)", "--points", "-", "--json", input=rows, code=None)
    assert (child.code, child.stdout, child.stderr) == (here.code, here.stdout, here.stderr)
    assert child.code == 2 and len(child.stdout.splitlines()) == 300
    assert "--points line 302" in child.stderr


def test_an_internal_error_in_the_child_is_exit_3(vjp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def boom(*args: object) -> object:
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(api, "solve", boom)
    r = vjp("x", "--at", "1", code=3)
    assert r.stderr.startswith("Error: internal error: ZeroDivisionError: boom")
    r = vjp("x", "--at", "1", "--debug", code=3)
    assert "Traceback" in r.stderr and "boom" in r.stderr  # --debug's traceback comes too


def test_a_child_that_dies_is_an_internal_error(vjp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def dying(*args: object) -> object:
        os._exit(9)

    monkeypatch.setattr(api, "solve", dying)
    r = vjp("x", "--at", "1", code=3)
    assert r.stderr.startswith("Error: internal error: ChildDied: the process computing")
    assert "exited with status 9" in r.stderr and r.stderr.count("\n") == 1


@pytest.mark.parametrize("how", ["--timeout 0", "JVP_CLI_NO_FORK=1"])
def test_one_process_without_a_limit_or_without_fork(vjp, monkeypatch, how: str) -> None:  # type: ignore[no-untyped-def]
    here = os.getpid()
    real = api.solve
    seen = []

    def where(program, problem):  # type: ignore[no-untyped-def]
        seen.append(os.getpid())
        return real(program, problem)

    monkeypatch.setattr(api, "solve", where)
    args = ["x*y", "--at", "1,2"]
    if how == "--timeout 0":
        args += ["--timeout", "0"]
    else:
        monkeypatch.setenv("JVP_CLI_NO_FORK", "1")
    vjp(*args)
    assert seen == [here]


def test_no_process_to_spare_runs_in_this_one(vjp, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from jvp_cli import sidecar

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(sidecar, "PARALLEL", False)  # the torch side in-process too
    monkeypatch.setattr(os, "fork", no_fork)
    r = vjp(SEED, "--at", "1,2,3", "--v", "3,2,1", "--json")
    assert r.json()["vjp"]["torch"] == [10.0, 34.0, 42.0]
