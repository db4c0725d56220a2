"""Every environment gets a clean exit and complete output (issue 10, class 4), and input
is read under the clock: closed and full streams, an ASCII-only encoding, COLUMNS=0 on a
terminal, signals and --timeout during a large --points --json write, a FIFO nobody
writes to. Subprocesses, since each case is about the process's own file descriptors; each
both with the work in a child (the default) and in one process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

VJP = [sys.executable, "-m", "jvp_cli"]
ENV: dict[str, str] = {}


@pytest.fixture(autouse=True, params=["forked", "one process"])
def _env(request, monkeypatch):  # type: ignore[no-untyped-def]
    """Each case twice: the work in a child that the parent relays (the default), and all
    in one process (JVP_CLI_NO_FORK=1)."""
    extra = {"JVP_CLI_NO_FORK": "1"} if request.param == "one process" else {}
    monkeypatch.setattr(sys.modules[__name__], "ENV", {**os.environ, **extra})


pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file descriptors")


def _shell(cmd: str, **kw) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    py = " ".join(VJP)
    return subprocess.run(["bash", "-c", cmd.replace("VJP", py)], capture_output=True,
                          text=True, timeout=120, env=kw.pop("env", ENV), **kw)  # fmt: skip


def _one_error_line(stderr: str, fragment: str) -> None:
    assert "Traceback" not in stderr, stderr
    assert stderr.startswith("Error: ") and stderr.count("\n") == 1, stderr
    assert fragment in stderr, stderr


@pytest.mark.parametrize("args", ["x --at 1", "x --at 1 --json", "--help", "--version"])
def test_closed_stdout_is_exit_2_with_a_line(args: str) -> None:
    r = _shell(f"VJP {args} >&-")
    assert r.returncode == 2
    _one_error_line(r.stderr, "cannot write the output to stdout")


@pytest.mark.parametrize("args", ["x --at 1", "x --at 1 --json", "--version",
                                  "x --points <(printf 'x\\n1\\n2\\n') --json",
                                  "x --points <(printf 'x\\n1\\n2\\n')"])  # fmt: skip
def test_a_full_disk_is_exit_2_with_a_line(args: str) -> None:
    r = _shell(f"VJP {args} > /dev/full")
    assert r.returncode == 2
    _one_error_line(r.stderr, "No space left on device")


def test_closed_stderr_changes_nothing_else() -> None:
    r = _shell("VJP x --at 1 --json 2>&-")
    assert r.returncode == 0 and json.loads(r.stdout)["agree"]
    assert _shell("VJP 'x +' 2>&-").returncode == 2
    assert _shell("VJP x --at 1 --json 2>/dev/full").returncode == 0


def test_ascii_only_output_encoding() -> None:
    r = _shell("VJP 'x^2*sqrt(y)' --at 1,2", env={**ENV, "PYTHONIOENCODING": "ascii"})
    assert r.returncode == 0, r.stderr
    assert r.stderr == "" and r.stdout.isascii()
    assert "Verdict: ok agree" in r.stdout and "sqrt" in r.stdout


def test_columns_0_on_a_terminal_still_shows_the_report() -> None:
    import pty

    master, slave = pty.openpty()
    proc = subprocess.Popen([*VJP, "x*y", "--at", "1,2"], stdout=slave, stderr=subprocess.PIPE,
                            env={**ENV, "COLUMNS": "0"})  # fmt: skip
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=60) == 0
    text = b"".join(chunks).decode()
    assert "Verdict" in text and "agree" in text


def _points_file(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "points.csv"
    with open(path, "w") as f:
        f.write("x,y\n")
        f.writelines(f"{i * 1e-3:.6f},{1 + i * 1e-4:.6f}\n" for i in range(n))
    return path


def _slow_reader_run(
    cmd: list[str], stop: signal.Signals | None, after: float = 1.5
) -> tuple[int, bytes]:
    """Run `cmd`, reading stdout slowly; send `stop` after `after` s, then read the rest."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=ENV)
    assert proc.stdout is not None
    out = bytearray()
    start = time.monotonic()
    sent = False
    while True:
        if stop is not None and not sent and time.monotonic() - start > after:
            proc.send_signal(stop)
            sent = True
        data = proc.stdout.read1(8192) if not sent else proc.stdout.read()
        if not data:
            break
        out += data
        if not sent:
            time.sleep(0.005)  # a slow reader: the pipe is mostly full
    return proc.wait(timeout=60), bytes(out)


def _all_lines_whole(out: bytes) -> int:
    assert out.endswith(b"\n"), out[-200:]
    lines = out.split(b"\n")[:-1]
    for line in lines:
        json.loads(line)  # every line a complete object
    return len(lines)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                           (signal.SIGHUP, 129)])  # fmt: skip
def test_points_lines_are_whole_when_a_signal_ends_the_run(tmp_path, sig, code) -> None:  # type: ignore[no-untyped-def]
    path = _points_file(tmp_path, 400_000)
    rc, out = _slow_reader_run([*VJP, "x*y", "--points", str(path), "--json"], sig)
    assert rc == code
    assert 0 < _all_lines_whole(out) < 400_000


def test_points_lines_are_whole_when_the_timeout_ends_the_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = _points_file(tmp_path, 400_000)
    cmd = [*VJP, "x*y", "--points", str(path), "--json", "--timeout", "8"]  # lines by then
    rc, out = _slow_reader_run(cmd, None)
    assert rc == 2
    assert 0 < _all_lines_whole(out) < 400_000


@pytest.mark.parametrize("how", ["-f", "--points"])
def test_a_fifo_nobody_writes_to_ends_at_the_deadline(tmp_path, how: str) -> None:  # type: ignore[no-untyped-def]
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    args = ["-f", str(fifo)] if how == "-f" else ["x", "--points", str(fifo)]
    start = time.monotonic()
    r = subprocess.run([*VJP, *args, "--timeout", "2"], capture_output=True, text=True,
                       timeout=60, env=ENV)  # fmt: skip
    assert r.returncode == 2 and time.monotonic() - start < 30
    _one_error_line(r.stderr, "2 s")


def test_stdin_that_never_ends_stops_at_the_deadline() -> None:
    proc = subprocess.Popen([*VJP, "-", "--at", "1", "--timeout", "2"], stdin=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)  # fmt: skip
    try:  # stdin stays open and nothing arrives, as with `sleep 60 | vjp -`
        code = proc.wait(timeout=30)
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        proc.kill()
        if proc.stdin:
            proc.stdin.close()
    assert code == 2
    _one_error_line(err, "timed out after 2 s reading the functions from stdin")


def test_endless_files_are_refused_after_the_limit() -> None:
    r = _shell("VJP -f /dev/zero --at 1")
    assert r.returncode == 2
    _one_error_line(r.stderr, "more than the limit of 16,000,000 characters")
    r = _shell("VJP - --at 1 < /dev/zero")
    assert r.returncode == 2
    r = _shell("VJP x --points /dev/zero")
    assert r.returncode == 2
    _one_error_line(r.stderr, "--points line 1: the line is longer than 1,000,000")
    r = _shell("VJP x --points /proc/self/mem")
    assert r.returncode == 2
    _one_error_line(r.stderr, "--points line 1: cannot read")
