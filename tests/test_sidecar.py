"""The torch side in a forked child (sidecar.py): the same results as in-process, errors
carried back whole, and no child left behind."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import time

import pytest

from jvp_cli import api, sidecar
from jvp_cli.model import EngineError, InputError, LimitError

SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"

CASES = [
    [SEED, "--at", "1,2,3", "--v", "3,2,1", "--u", "1,0,0"],
    ["y = x + 2; z = y * y; out = mean(z)", "--at", "x=[[1,1],[1,1]]"],
    ["log(x) + sqrt(y)", "--at", "-1,2", "--v", "1"],  # undefined: exit 1
    ["A @ x", "--at", "A=[[1,2],[3,4]],x=[1,-1]", "--v", "f1=[1,1]"],
]


@pytest.fixture
def forked(monkeypatch):  # type: ignore[no-untyped-def]
    """solve() forks its torch side for every problem (torch is already imported here)."""
    if not sidecar._two_cores():
        pytest.skip("one core, or no fork: solve() runs torch in-process")
    monkeypatch.setattr(api, "PARALLEL_NODES", 0)


@pytest.mark.parametrize("args", CASES)
def test_forked_torch_side_gives_the_same_report(vjp, forked, monkeypatch, args) -> None:  # type: ignore[no-untyped-def]
    child = vjp(*args, "--json", code=None)
    monkeypatch.setattr(sidecar, "PARALLEL", False)
    here = vjp(*args, "--json", code=None)
    assert (child.code, child.stdout, child.stderr) == (here.code, here.stdout, here.stderr)
    assert child.code in (0, 1)


def test_errors_cross_the_fork_whole(vjp, forked) -> None:  # type: ignore[no-untyped-def]
    import torch

    if torch.cuda.is_available():
        pytest.skip("there is a CUDA device")
    r = vjp("x*y", "--at", "1,2", "--device", "cuda", code=2)
    assert r.stderr.strip() == "Error: --device cuda was asked for, but PyTorch sees no CUDA device"


def test_input_errors_pickle_with_their_location() -> None:
    for cls in (InputError, LimitError):
        e = cls("bad thing", where="--at", source="a\nbc", pos=3, fix="do this")
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is cls and back.one_line() == e.one_line()
        assert back.one_line() == "--at, line 2, column 2: bad thing; do this"
    assert str(pickle.loads(pickle.dumps(EngineError("gone")))) == "gone"


def test_a_child_that_dies_is_an_internal_error(vjp, forked, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    parent = os.getpid()
    real = api._autograd

    def dying(program, problem):  # type: ignore[no-untyped-def]
        if os.getpid() != parent:
            os._exit(7)
        return real(program, problem)

    monkeypatch.setattr(api, "_autograd", dying)
    r = vjp(SEED, "--at", "1,2,3", "--v", "1,1,1", code=3)
    assert r.stderr.startswith("Error: internal error") and "stopped" in r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_an_exception_in_the_child_reaches_the_parent(vjp, forked, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    def failing(program, problem):  # type: ignore[no-untyped-def]
        raise RecursionError("too deep")

    monkeypatch.setattr(api, "_autograd", failing)
    r = vjp(SEED, "--at", "1,2,3", "--v", "1,1,1", code=2)
    assert "nested too deeply" in r.stderr


def test_an_exception_that_does_not_pickle(vjp, forked, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import threading

    class Odd(Exception):
        def __init__(self) -> None:
            super().__init__("odd")
            self.lock = threading.Lock()  # cannot cross a pipe

    def failing(program, problem):  # type: ignore[no-untyped-def]
        raise Odd()

    monkeypatch.setattr(api, "_autograd", failing)
    r = vjp(SEED, "--at", "1,2,3", "--v", "1,1,1", code=3)
    assert "internal error: SidecarError: Odd: odd" in r.stderr
    assert len(r.stderr.splitlines()) == 1


@pytest.mark.slow
def test_no_fork_switch(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # JVP_CLI_NO_FORK=1: one process, the same answer
    csv = tmp_path / "p.csv"
    csv.write_text("x,y\n" + "".join(f"{k / 100},{1 + k / 50}\n" for k in range(9000)))
    env = {**os.environ, "JVP_CLI_NO_FORK": "1"}
    r = subprocess.run([sys.executable, "-m", "jvp_cli", "x*y + sin(x)", "--points", str(csv)],
                       capture_output=True, text=True, env=env, timeout=120)  # fmt: skip
    assert r.returncode == 0 and "torch side: this process" in r.stdout
    seed = [sys.executable, "-m", "jvp_cli", SEED, "--at", "1,2,3", "--v", "3,2,1", "--json"]
    r = subprocess.run(seed, capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0 and '"torch": [10.0, 34.0, 42.0]' in r.stdout


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if marker.encode() in f.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


@pytest.mark.slow
def test_timeout_leaves_no_child_behind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    if not sidecar._two_cores() or not os.path.isdir("/proc"):
        pytest.skip("no side process here")
    n = 200  # parsing takes about a second, the two sides several more
    lines = []
    for i in range(1, n + 1):
        terms = " + ".join(f"sin(x{j}*{i + j}/{n})" for j in range(1, n + 1))
        lines.append(f"f{i} = {terms} + x{i}**2*exp(-x{i % n + 1})")
    prog = tmp_path / "marker_prog_for_timeout.txt"
    prog.write_text("\n".join(lines))
    point = ",".join(["0.5"] * n)
    cmd = [sys.executable, "-m", "jvp_cli", "-f", str(prog), "--at", point, "--v", point,
           "--timeout", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    saw_child = False
    while proc.poll() is None:
        saw_child = saw_child or len(_processes_with(str(prog))) >= 2
        time.sleep(0.02)
    err = proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == 2 and "stopped after 2 s" in err
    assert saw_child  # the timeout came while the torch side ran in its own process
    deadline = time.monotonic() + 5
    while _processes_with(str(prog)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _processes_with(str(prog)) == []
