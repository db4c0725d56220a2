"""One command's work in a forked child that this process can always stop at its deadline.

A thread cannot bound work that never releases the interpreter lock: inside one long C call
(SymPy computing a huge exact power, SymEngine's LLVM compile of a big system) the waiting
thread never gets the lock back to notice its deadline. So the work (parse, engines, render)
runs in a child process, in a process group of its own, and this process only waits: a relay
thread reads the child's messages from a pipe while the main thread waits for the deadline;
at the deadline the whole group (the child, and the torch side process it may have forked)
is killed with SIGKILL, whatever it is doing. This module imports neither torch nor SymPy.

Nothing the child writes reaches stdout or stderr directly: its sys.stdout and sys.stderr
send each write to this process as one message, so only whole pieces are ever written:
- b"l": whole --points --json lines, passed to `lines` as they come;
- b"p": a progress count, passed to `progress`;
- b"o" / b"e": stdout / stderr text, kept until the child ends and then handed back, to be
  written outside the deadline (a report is rendered whole before it is sent);
- b"x": the exit status, the child's last message.
When stdout's reader goes away, this process says so once through the same pipe (duplex),
and the child's next line write fails with BrokenPipeError, as its own write would have.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import sidecar


class ChildDied(RuntimeError):
    """The child ended without sending its exit status: a fault of this tool (or the
    machine's: out of memory), not of the input."""


class ForkFailed(RuntimeError):
    """The child could not be started; nothing has run yet."""


def available() -> bool:
    """Whether the work can run in a child: Linux with fork, JVP_CLI_NO_FORK unset (or 0),
    and CUDA not started in this process (a forked child cannot use it; only an embedding
    that has used torch itself can have started it)."""
    if os.environ.get("JVP_CLI_NO_FORK", "") not in ("", "0"):
        return False
    if sys.platform != "linux" or not hasattr(os, "fork"):
        return False
    torch = sys.modules.get("torch")
    return not (torch is not None and torch.cuda.is_initialized())


@dataclass
class Finished:
    """How the child ended: its exit status (None: it died without saying, `died` says
    how) and what it wrote to stdout (b"o") and stderr (b"e"), in order."""

    code: int | None
    output: list[tuple[bytes, bytes]] = field(default_factory=list)
    died: str = ""


class Child:
    """`body()` (returning an exit status) running in a forked child; see the module text.

    `group`: the child leads a process group of its own, killed whole at the end. Only a
    child that must read a terminal (--points - at a keyboard) stays in this group, since a
    background group reading its terminal is stopped; its own side process still dies with
    it (sidecar's parent-death signal)."""

    def __init__(
        self,
        body: Callable[[], int],
        *,
        group: bool = True,
        lines: Callable[[bytes], None] | None = None,
        progress: Callable[..., None] | None = None,
    ) -> None:
        self.group = group
        self._lines = lines
        self._progress = progress
        self._lock = threading.Lock()
        self._final = False  # the exit status has come: the deadline no longer applies
        self._abandoned = False  # the deadline came first: the relay does nothing more
        self._silenced = False  # stdout's reader went away: lines are dropped
        self._result = Finished(None)
        self._error: BaseException | None = None
        try:
            self._conn, self.pid = sidecar._fork(lambda conn: _child(body, conn), group=group)
        except OSError as exc:  # no process to spare (EAGAIN, ENOMEM): the caller goes on
            raise ForkFailed(str(exc)) from None
        self._relay = threading.Thread(target=self._run_relay, name="vjp-relay", daemon=True)
        self._relay.start()

    def wait(self, seconds: float) -> Finished | None:
        """Wait for the child at most `seconds` (0: no limit): how it ended, or None when
        the deadline came first (the child is stopped by then). An exception the relay met
        writing lines (OutputError) is raised here. Ctrl-C or a signal's exception while
        waiting stops the child and goes on up."""
        try:
            self._relay.join(seconds if seconds > 0 else None)
            with self._lock:
                if not self._final and self._relay.is_alive():
                    self._abandoned = True
                    return None
            self._relay.join()  # the status has come: only the relay's return is left
            if self._error is not None:
                raise self._error
            if self._result.code is None:
                self._result.died = self._how_it_died()
            return self._result
        finally:
            self.stop()

    def stop(self) -> None:
        """Kill the child's group (or the child) and collect it when it has gone. Nothing of
        the group survives: a side process that outlived a clean exit goes too."""
        with self._lock:
            self._abandoned = self._abandoned or not self._final
        try:
            if self.group:
                os.killpg(self.pid, signal.SIGKILL)
            else:
                os.kill(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        sidecar._reap(self.pid)

    def _how_it_died(self) -> str:
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return "it ended unexpectedly"
        if os.WIFSIGNALED(status):
            sig = os.WTERMSIG(status)
            name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
            why = " (out of memory?)" if sig == signal.SIGKILL else ""
            return f"it was killed by {name}{why}"
        return f"it exited with status {os.WEXITSTATUS(status)} without a result"

    def _run_relay(self) -> None:
        try:
            while True:
                try:
                    message = self._conn.recv_bytes()
                except (EOFError, OSError):
                    return  # the child is gone (or was killed)
                kind, data = message[:1], message[1:]
                with self._lock:
                    if self._abandoned:
                        return
                    if kind == b"x":
                        self._result.code = int(data)
                        self._final = True
                        return
                    if kind == b"p":
                        if self._progress is not None:
                            self._progress(*map(int, data.split(b",")))
                        continue
                if kind == b"l":
                    self._write_lines(data)
                else:
                    self._result.output.append((kind, data))
        except BaseException as exc:  # raised again in the waiting thread
            self._error = exc

    def _write_lines(self, data: bytes) -> None:
        if self._silenced or self._lines is None:
            return
        try:
            self._lines(data)
        except BrokenPipeError:
            if self._abandoned:
                return
            self._silenced = True
            try:
                self._conn.send_bytes(b"closed")
            except OSError:
                pass


class _Channel:
    """The child's end: sends messages to the parent, one write each, whole."""

    def __init__(self, conn: Any, stdout: Any, stderr: Any) -> None:
        self.conn = conn
        self.lock = threading.Lock()
        self.stdout_closed = False
        self.stdout_tty = _isatty(stdout)
        self.stderr_tty = _isatty(stderr)
        self.columns = 0  # the parent's terminal (a piped stdout shows in stderr's): the report
        for stream in (stdout, stderr, sys.stdin):  # is sized for it
            try:
                self.columns = os.get_terminal_size(stream.fileno()).columns
            except (OSError, ValueError, AttributeError):
                continue
            if self.columns > 0:
                break

    def send(self, kind: bytes, data: bytes) -> None:
        with self.lock:
            self.conn.send_bytes(kind + data)

    def lines(self, data: bytes) -> None:
        if self.stdout_closed or self.conn.poll():
            self.stdout_closed = True
            raise BrokenPipeError(32, "stdout's reader went away")
        self.send(b"l", data)

    def bar(self) -> _Bar | None:
        """A progress bar for --points, drawn by the parent, where stderr is a terminal."""
        return _Bar(self) if self.stderr_tty else None


class _Bar:
    def __init__(self, channel: _Channel) -> None:
        self.channel = channel

    def update(self, done: int, position: int = -1) -> None:
        self.channel.send(b"p", f"{done},{position}".encode())

    def stop(self) -> None:
        pass


class _Stream:
    """sys.stdout or sys.stderr in the child: each write one message to the parent. It
    reports the parent's stream's encoding and whether that is a terminal; it has no file
    descriptor, so the CLI treats it as an in-memory stream."""

    def __init__(self, channel: _Channel, kind: bytes, like: Any, tty: bool) -> None:
        self.channel = channel
        self.kind = kind
        self.encoding = getattr(like, "encoding", None) or "utf-8"
        self.errors = "strict"
        self.tty = tty
        self.buffer = _Bytes(channel, kind)

    def write(self, text: str) -> int:
        if text:
            self.channel.send(self.kind, text.encode("utf-8", "surrogateescape"))
        return len(text)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty

    def fileno(self) -> int:
        import io

        raise io.UnsupportedOperation("fileno")


class _Bytes:
    """sys.stdout.buffer (what the CLI writes there is whole JSON lines) or sys.stderr.buffer
    in the child."""

    def __init__(self, channel: _Channel, kind: bytes) -> None:
        self.channel = channel
        self.kind = kind

    def write(self, data: bytes) -> int:
        if self.kind == b"o":
            self.channel.lines(bytes(data))
        elif data:
            self.channel.send(self.kind, bytes(data))
        return len(data)

    def flush(self) -> None:
        pass


CHANNEL: _Channel | None = None  # set in the child: the CLI sends progress through it


def _child(body: Callable[[], int], conn: Any) -> None:
    global CHANNEL
    CHANNEL = channel = _Channel(conn, sys.stdout, sys.stderr)
    sys.stdout = _Stream(channel, b"o", sys.stdout, channel.stdout_tty)  # type: ignore[assignment]
    sys.stderr = _Stream(channel, b"e", sys.stderr, channel.stderr_tty)  # type: ignore[assignment]
    code = body()
    channel.send(b"x", str(int(code)).encode())


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (OSError, ValueError, AttributeError):
        return False
