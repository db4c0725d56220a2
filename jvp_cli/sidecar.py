"""Forked helper processes that run the torch side beside the symbolic side.

On Linux with two or more cores the work splits across two processes:
- `Pending` (a single point, api.solve): forked before either engine is imported; the child
  imports torch and computes the Jacobian rows, y.backward(v) and the JVP while the parent
  imports SymPy and runs the symbolic side. The result, or the exception, comes back
  pickled through a pipe.
- `Sidecar` (--points): forked once torch is loaded; per chunk, the child runs the torch side
  while the parent evaluates the symbolic side, reads the next chunk and writes lines. The
  chunks' arrays travel through shared memory (two slots, so the next chunk is waiting when
  the child finishes one); the pipe carries only (slot, rows) one way and "done" (or the
  exception) the other, a few small messages at most, so no side blocks on a full pipe.

A child never writes to stdout or stderr and leaves with os._exit, so nothing buffered in
the parent is written twice. It ends when the parent closes the pipe or dies (end of file on
the pipe; on Linux also a kill signal on the parent's death), is killed when the parent
leaves early, and ignores Ctrl-C, which the parent handles.
"""

from __future__ import annotations

import mmap
import os
import pickle
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection, Pipe
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy is imported where a Sidecar is made: solve() forks before it
    import numpy as np

Side = Callable[[Any, Any], tuple[Any, Any]]  # (X, V) -> (A, B), numpy arrays


class SidecarError(RuntimeError):
    """The side process failed or went away: a fault of this tool, not of the input."""


PARALLEL = True  # may solve() run torch in a forked child (tests turn it off and on)


def parallel(device: str) -> bool:
    """Whether solve() may fork its torch side: Linux, two or more cores, and CUDA not yet
    started in this process (a forked child cannot use a CUDA context it inherits; one it
    starts itself is fine)."""
    if not PARALLEL or not _two_cores():
        return False
    torch = sys.modules.get("torch")
    return not (device != "cpu" and torch is not None and torch.cuda.is_initialized())


def _two_cores() -> bool:
    """Linux with fork and two or more cores for this process, unless JVP_CLI_NO_FORK is set
    (to anything but an empty string or 0): then everything runs in one process."""
    if os.environ.get("JVP_CLI_NO_FORK", "") not in ("", "0"):
        return False
    if sys.platform != "linux" or not hasattr(os, "fork"):
        return False
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    return cores >= 2


def available(device: str) -> bool:
    """Whether --points can use a side process: two or more cores, and the CPU (this
    process has already started the device, and a CUDA context cannot cross a fork)."""
    return device == "cpu" and _two_cores()


SLOTS = 2  # chunks that can be with the side process at once: one worked on, one waiting


class Sidecar:
    """Runs `side(X, V) -> (A, B)` in a forked child, a chunk of at most `rows` at a time:
    X is rows x n, V rows x m, and the results rows x n and rows x m, float64. Up to SLOTS
    chunks may be submitted before their results are collected (in order), so the child
    never waits for the parent to copy a result out or the next chunk in."""

    def __init__(self, side: Side, rows: int, n: int, m: int) -> None:
        import numpy as np

        per_slot = rows * (2 * n + 2 * m)
        # anonymous and shared: the child sees what this process writes, and the reverse
        self._mem = mmap.mmap(-1, 8 * per_slot * SLOTS)
        buf = np.frombuffer(self._mem, dtype=np.float64)
        self.slots: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for k in range(SLOTS):
            part = buf[k * per_slot : (k + 1) * per_slot]
            cuts = np.cumsum([rows * n, rows * m, rows * n])
            X, V, A, B = np.split(part, cuts)
            self.slots.append(
                (X.reshape(rows, n), V.reshape(rows, m), A.reshape(rows, n), B.reshape(rows, m))
            )
        self._conn, self.pid = _fork(lambda conn: _serve(side, conn, self))
        self._queue: list[tuple[int, int]] = []  # (slot, rows) submitted, not yet collected
        self._next = 0

    def submit(self, X: np.ndarray, V: np.ndarray) -> None:
        """Start the side on a chunk (rows x n, rows x m); collect it with `result`."""
        if len(self._queue) >= SLOTS:
            raise RuntimeError("every slot is taken: collect a result first")
        slot, count = self._next, len(X)
        self._next = (self._next + 1) % SLOTS
        Xs, Vs, _, _ = self.slots[slot]
        Xs[:count] = X
        Vs[:count] = V
        self._queue.append((slot, count))
        try:
            self._conn.send((slot, count))
        except OSError as exc:
            raise SidecarError(f"the torch side process stopped ({exc})") from None

    def free(self) -> bool:
        """Whether a chunk can be submitted now."""
        return len(self._queue) < SLOTS

    def ready(self) -> bool:
        """Whether the oldest chunk's result has arrived (`result` would not wait)."""
        return self._conn.poll()

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """The results of the oldest chunk not yet collected."""
        try:
            reply = self._conn.recv()
        except (EOFError, OSError):
            raise SidecarError("the torch side process stopped unexpectedly") from None
        slot, count = self._queue.pop(0)
        if reply != "done":
            raise reply[1]  # what the side raised there (MemoryError, a bug's exception)
        _, _, A, B = self.slots[slot]
        return A[:count].copy(), B[:count].copy()

    def close(self) -> None:
        """Stop the child and wait for it. A child still working on a chunk nobody will
        collect (the parent is leaving on an error) is killed rather than waited for."""
        try:
            if self._queue:
                os.kill(self.pid, signal.SIGKILL)
            else:
                self._conn.send(None)
        except (OSError, ProcessLookupError):
            pass
        self._conn.close()
        _reap(self.pid)


_exiting: list[int] = []  # children told to stop that had not exited yet


def _reap(pid: int) -> None:
    """Collect `pid` if it has exited, else leave it for later: a child that has been told
    to stop (or killed) still takes a few milliseconds to unmap its memory, which the caller
    need not wait for. Earlier such children are collected here too; a process that exits
    first takes its unreaped children with it."""
    for p in [*_exiting, pid]:
        try:
            done, _ = os.waitpid(p, os.WNOHANG)
        except ChildProcessError:
            done = p
        if done == p:
            if p in _exiting:
                _exiting.remove(p)
        elif p not in _exiting:
            _exiting.append(p)


def _fork(body: Callable[[Connection], None], group: bool = False) -> tuple[Connection, int]:
    """Fork; the child ignores Ctrl-C, asks to die with this process, runs `body(its end of
    a pipe)` and leaves with os._exit (status 1 if `body` raised). Returns this process's
    end of the pipe and the child's pid. `group`: the child leads a new process group (set
    on both sides of the fork, so it holds whichever runs first), which os.killpg(pid)
    ends whole, its own children included."""
    ours, theirs = Pipe()
    parent = os.getpid()
    sys.stdout.flush()  # nothing buffered here may be written twice
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 0
        try:
            if group:
                os.setpgid(0, 0)
            ours.close()
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            _die_with(parent)
            body(theirs)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    if group:
        try:
            os.setpgid(pid, pid)
        except OSError:  # the child got there first, or has already left
            pass
    theirs.close()
    return ours, pid


def _serve(side: Side, conn: Connection, shared: Sidecar) -> None:
    """The side process's loop: (slot, rows) in, the side's results into that slot of
    shared memory, "done" (or the exception) out, until None or end of file."""
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        slot, count = message
        X, V, A, B = shared.slots[slot]
        try:
            a, b = side(X[:count], V[:count])
            A[:count] = a
            B[:count] = b
            reply: object = "done"
        except Exception as exc:  # raised again in the parent
            reply = ("error", exc)
        _send(conn, reply)


def _send(conn: Connection, message: object) -> None:
    """Send `message`; an exception that does not pickle is sent as its text."""
    try:
        conn.send(message)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:  # nothing was sent
        bad = message[1] if isinstance(message, tuple) else message
        conn.send(("error", SidecarError(f"{type(bad).__name__}: {bad} ({exc})")))


def _die_with(parent: int) -> None:
    """Ask Linux to kill this process when its parent dies (prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took hold
        os._exit(0)


class Pending:
    """`work()` running in a forked child; `result()` waits for its return value (pickled
    back through a pipe) or raises what it raised. Used to run the torch side of a single
    point while this process runs the symbolic side: the child imports torch itself, so the
    two imports overlap as well as the two computations."""

    def __init__(self, work: Callable[[], object]) -> None:
        self._conn, self.pid = _fork(lambda conn: _run_once(work, conn))
        self._done = False

    def result(self) -> object:
        try:
            kind, value = self._conn.recv()
        except (EOFError, OSError):
            raise SidecarError("the torch side process stopped unexpectedly") from None
        finally:
            self._done = True
            self.close()
        if kind == "error":
            raise value
        return value

    def close(self) -> None:
        """Stop the child (if it is still working, nobody wants its result) and reap it."""
        if not self._done:
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self._done = True
        self._conn.close()
        _reap(self.pid)


def _run_once(work: Callable[[], object], conn: Connection) -> None:
    try:
        message: tuple[str, object] = ("value", work())
    except BaseException as exc:  # handed to the parent, which raises it
        message = ("error", exc)
    _send(conn, message)
