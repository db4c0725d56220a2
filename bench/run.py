"""Benchmark: this project's figures against anchors measured in the same run, as ratios.

    python bench/run.py            # all targets (a few minutes)
    python bench/run.py --quick    # fewer repetitions

Each target prints this project's figure, the anchor's, their ratio and the target ratio
(issue 5), plus the peak memory (RSS) of this project's process. Timings are medians of
whole processes, the way a user meets them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import problems

PY = sys.executable
SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"


def _adopt_orphans() -> None:
    """Make this process the reaper of its orphaned descendants (Linux): vjp's torch side
    process, when vjp exits before collecting it, is then waited for here, so its peak RSS
    is counted too."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _reap_orphans() -> int:
    """Wait for every remaining descendant; the largest peak RSS among them (KiB)."""
    peak = 0
    while True:
        try:
            _, _, usage = os.wait4(-1, 0)
        except ChildProcessError:
            return peak
        peak = max(peak, usage.ru_maxrss)


def timed(
    cmd: list[str], repeat: int, ok_codes: tuple[int, ...] = (0, 1)
) -> tuple[float, float, int]:
    """Median wall time, best time, and the largest peak RSS (MiB) of any one process of
    the run (vjp or its torch side process) over `repeat` runs."""
    times = []
    peak = 0
    for _ in range(repeat):
        start = time.perf_counter()
        # close_fds=False lets Python use posix_spawn (vfork): a plain fork would count this
        # (JAX-loaded) process's pages in the child's peak RSS before exec
        proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, close_fds=False
        )
        err = proc.stderr.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - start)
        code = os.waitstatus_to_exitcode(status)
        if code not in ok_codes:
            raise SystemExit(f"{' '.join(cmd)[:120]} failed ({code}): {err[:400]!r}")
        # wait4's figure covers the side processes vjp collected itself; the rest are here
        peak = max(peak, usage.ru_maxrss, _reap_orphans())
    return statistics.median(times), min(times), peak // 1024


def row(name: str, ours: float, anchor: float, anchor_name: str, target: float, rss: int) -> bool:
    ratio = ours / anchor
    ok = ratio <= target
    print(
        f"{name:<34} {ours:8.2f} s   {anchor_name:<36} {anchor:6.2f} s   ratio {ratio:5.2f}"
        f"  (target <= {target:.1f}: {'met' if ok else 'NOT met'})   peak RSS {rss} MiB"
    )
    return ok


def _points_csv(path: Path, n: int, count: int, seed: int = 0) -> None:
    import numpy as np

    rng = np.random.default_rng(seed)
    with path.open("w") as f:
        f.write(",".join(f"x{j}" for j in range(1, n + 1)) + "\n")
        for start in range(0, count, 100_000):
            block = rng.uniform(0.1, 1.0, size=(min(100_000, count - start), n))
            np.savetxt(f, block, delimiter=",", fmt="%.9f")


def _ours_batch(text: str, csv_path: Path, n: int) -> dict[str, float]:
    """This project's --points path in this process, twice: on the points already in memory
    (as JAX gets them) and streamed from the CSV. Each figure is the whole computation:
    building and compiling the symbolic side, then every chunk on both sides and the
    comparison. Also the steady rate (points per second after the first chunk, both sides
    warm: JAX's second call is the anchor for it), and the processes used."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import io

    import numpy as np

    from jvp_cli import api, batch

    # imports (torch, SymPy, SymEngine, LLVM) are not compute: warm up on another program,
    # so nothing of the measured one is cached
    wp, wq = api.make_problem("f1 = sin(x1*2/3) + x2**2*exp(-x1); f2 = cos(x2)*x1", batch=True)
    batch.run(wp, wq, io.StringIO("x1,x2\n0.5,0.5\n"), [1.0, 1.0], None)
    X = np.loadtxt(csv_path, delimiter=",", skiprows=1, ndmin=2)
    V = np.ones((len(X), n))
    out: dict[str, float] = {}

    def chunks():  # type: ignore[no-untyped-def]
        for k in range(0, len(X), batch.CHUNK):
            yield (
                range(k + 2, k + 2 + len(X[k : k + batch.CHUNK])),
                X[k : k + batch.CHUNK],
                V[k : k + batch.CHUNK],
            )

    start = time.perf_counter()
    program, problem = api.make_problem(text, batch=True)
    summary = batch.run_chunks(program, problem, chunks())
    out["memory"] = time.perf_counter() - start
    out["memory_steady"] = summary.steady
    out["memory_here"] = summary.chunks_here
    out["exact"] = summary.exact
    assert summary.points == len(X) and summary.agree == len(X)
    start = time.perf_counter()
    program, problem = api.make_problem(text, batch=True)
    with csv_path.open() as stream:
        summary = batch.run(program, problem, stream, [1.0] * n, None)
    out["csv"] = time.perf_counter() - start
    out["csv_steady"] = summary.steady
    out["processes"] = summary.processes
    out["chunks_here"] = summary.chunks_here
    out["chunks"] = -(-summary.points // batch.CHUNK)
    return out


def _jax_batch(n: int, count: int) -> tuple[float, float] | None:
    """JAX jit(vmap(vjp)) of the same family: (compile + first call, steady-state call)."""
    try:
        import jax
        import jax.numpy as jnp
    except ImportError:
        return None
    import numpy as np

    jax.config.update("jax_enable_x64", True)
    idx = jnp.arange(1, n + 1)

    def f(x):
        rows = jnp.sin(x[None, :] * (idx[:, None] + idx[None, :]) / n).sum(axis=1)
        return rows + x**2 * jnp.exp(-jnp.roll(x, -1))

    def vjp_one(x, v):
        return jax.vjp(f, x)[1](v)[0]

    fn = jax.jit(jax.vmap(vjp_one))
    X = jnp.asarray(np.random.default_rng(0).uniform(0.1, 1, size=(count, n)))
    V = jnp.ones((count, n))
    start = time.perf_counter()
    fn(X, V).block_until_ready()
    first = time.perf_counter() - start
    start = time.perf_counter()
    fn(X, V).block_until_ready()
    return first, time.perf_counter() - start


def batch_targets(quick: bool) -> list[bool]:
    n, count = 10, 100_000
    big = 200_000 if quick else 1_000_000
    out: list[bool] = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "points.csv"
        prog = Path(tmp) / "prog.txt"
        prog.write_text(problems.dense(n))
        # 5 first, while this process is still small: a forked child's peak RSS counts the
        # parent's pages until it execs
        _points_csv(path, n, big, seed=1)
        t, _, rss = timed([PY, "-m", "jvp_cli", "-f", str(prog), "--points", str(path),
                           "--v", ",".join(["1"] * n)], 1)  # fmt: skip
        size = path.stat().st_size / 2**20
        _points_csv(path, n, count)
        ours = _ours_batch(problems.dense(n), path, n)
        jax_t = _jax_batch(n, count)
        where = "this process"
        if ours["processes"] > 1:
            where = (f"a side process (this one took {ours['memory_here']:.0f} of "
                     f"{ours['chunks']:.0f} chunks from memory, {ours['chunks_here']:.0f} "
                     "from the CSV)")  # fmt: skip
        print(f"4. --points dense n={n}, {count:,} points, v fixed, torch side in {where}: "
              f"{ours['memory']:.3f} s in all on points in memory (as JAX has them), "
              f"{ours['csv']:.3f} s streamed from the CSV (both: symbolic build and LLVM "
              f"compile included); {ours['exact']:.0f} of {count:,} points took the 30-digit "
              "fallback, the rest were certified by their error bound")  # fmt: skip
        if jax_t is None:
            print("   JAX anchor: jax is not installed (pip install -e '.[bench]'); "
                  "ratios not measured")  # fmt: skip
        else:
            first, steady = jax_t
            out.append(row("4. compute vs JAX jit(vmap(vjp))", ours["memory"], first,
                           "JAX incl. compile", 1.0, 0))  # fmt: skip
            print(f"   (with CSV reading: {ours['csv']:.3f} s, ratio {ours['csv'] / first:.2f})")
            jax_rate = count / steady
            ratio = ours["memory_steady"] / jax_rate
            ok = ratio >= 0.5
            print(f"   steady-state throughput: ours {ours['memory_steady']:,.0f}/s (after the "
                  f"first chunk), JAX {jax_rate:,.0f}/s (second call), ratio {ratio:.2f} "
                  f"(target >= 0.5: {'met' if ok else 'NOT met'}); with CSV reading "
                  f"{ours['csv_steady']:,.0f}/s, "
                  f"ratio {ours['csv_steady'] / jax_rate:.2f}")  # fmt: skip
            out.append(ok)
        t_json, _, _ = timed([PY, "-m", "jvp_cli", "-f", str(prog), "--points", str(path),
                              "--v", ",".join(["1"] * n), "--json"], 1)  # fmt: skip
        t_sum, _, _ = timed([PY, "-m", "jvp_cli", "-f", str(prog), "--points", str(path),
                             "--v", ",".join(["1"] * n)], 1)  # fmt: skip
        print(
            f"   whole CLI, {count:,} points: {t_sum:.2f} s with the summary table, "
            f"{t_json:.2f} s writing JSON lines (start-up included)"
        )
        print(f"5. --points {big:,} points through the CLI: {t:.1f} s, peak RSS {rss} MiB "
              f"(the CSV is {size:.0f} MiB)")  # fmt: skip
    return out


def second_order_targets(vjp: list[str], base_t: float, reps: int) -> list[bool]:
    """Issue 15: the dense family at n=50 with --hessian (2,500 second derivatives, every
    torch route), and Broyden n=500 with --hvp (H u from the Hessian's band: no dense
    symbolic Hessian), each at most 3x `import torch, sympy, typer, rich`."""
    out = []
    anchor = "import torch, sympy, typer, rich"
    with tempfile.TemporaryDirectory() as tmp:
        for name, text, size, extra in (
            ("6. dense n=50 --hessian", problems.dense(50), 50, ["--hessian"]),
            ("7. Broyden n=500 --hvp", problems.broyden(500), 500, ["--hvp", problems.point(500)]),
        ):
            path = Path(tmp) / "prog.txt"
            path.write_text(text)
            cmd = [*vjp, "-f", str(path), "--at", problems.point(size), "--v",
                   problems.point(size), *extra, "--json", "--timeout", "0"]  # fmt: skip
            t, _, rss = timed(cmd, reps, ok_codes=(0,))  # every route must agree
            out.append(row(name, t, base_t, anchor, 3.0, rss))
    return out


def _passes(cmd: list[str]) -> tuple[int, str]:
    """The backward (or forward) passes torch took for J, from one --json run."""
    import json

    out = subprocess.run([*cmd, "--json"], capture_output=True, check=False).stdout
    jac = json.loads(out)["jacobian"]
    return jac.get("passes", 0), jac.get("pass_mode", "?")


def sparse_targets(base_t: float, repeat: int) -> list[bool]:
    """Issue 14: Broyden's tridiagonal system costs what its nonzeros cost. Targets at
    n = 2,000 and 10,000 (full report, and --json), and the scaling table."""
    out: list[bool] = []
    table = []
    anchor = "import torch, sympy, typer, rich"
    with tempfile.TemporaryDirectory() as tmp:
        for n in (500, 1_000, 2_000, 5_000, 10_000):
            path = Path(tmp) / f"broyden{n}.txt"
            path.write_text(problems.broyden(n))
            cmd = [PY, "-m", "jvp_cli", "-f", str(path), "--at", problems.point(n), "--v",
                   problems.point(n)]  # fmt: skip
            reps = repeat if n in (2_000, 10_000) else 1
            t, _, rss = timed(cmd, reps)
            tj, _, rss_j = timed([*cmd, "--json"], reps if n == 10_000 else 1)
            passes, mode = _passes(cmd)
            table.append((n, 3 * n - 2, t, rss, tj, rss_j, passes, mode))
            if n == 2_000:
                out.append(row("14. Broyden n=2,000, full report", t, base_t, anchor, 1.5, rss))
            if n == 10_000:
                out.append(row("14. Broyden n=10,000, full report", t, base_t, anchor, 3.0, rss))
                out.append(row("14. Broyden n=10,000, --json", tj, base_t, anchor, 3.0, rss_j))
                ok = max(rss, rss_j) <= 600
                print(f"   peak RSS {max(rss, rss_j)} MiB (target <= 600: "
                      f"{'met' if ok else 'NOT met'})")  # fmt: skip
                out.append(ok)
    print("\n   Broyden tridiagonal, -f, --at, --v (whole process; anchor "
          f"{base_t:.2f} s):")  # fmt: skip
    print("   |      n | nonzeros | wall (report) | peak RSS | wall (--json) | peak RSS | passes |")
    print("   |--------|----------|---------------|----------|---------------|----------|--------|")
    for n, nnz, t, rss, tj, rss_j, passes, mode in table:
        print(f"   | {n:6,} | {nnz:8,} | {t:11.2f} s | {rss:4} MiB | {tj:11.2f} s | "
              f"{rss_j:4} MiB | {passes:3} {mode[:3]} |")  # fmt: skip
    print()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--skip-dense", action="store_true", help="skip the dense n=200 system")
    ap.add_argument("--sparse-only", action="store_true",
                    help="only the anchor and issue 14's Broyden targets and scaling table")
    args = ap.parse_args()
    _adopt_orphans()
    n = 3 if args.quick else 7
    vjp = [PY, "-m", "jvp_cli"]
    results = []
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; medians of {n} runs\n")

    typer_t, _, _ = timed([PY, "-c", "import typer"], n)
    base_t, _, _ = timed([PY, "-c", "import torch, sympy, typer, rich"], n)
    if args.sparse_only:
        results = sparse_targets(base_t, n)
        print(f"\n{sum(results)} of {len(results)} measured targets met.")
        return 0

    # 1. --help and a usage error: no torch, no SymPy
    t, _, rss = timed([*vjp, "--help"], n)
    results.append(row("1. vjp --help", t, typer_t, 'python -c "import typer"', 1.5, rss))
    t, _, rss = timed([*vjp, "x", "--bogus"], n, ok_codes=(2,))
    results.append(row("1. vjp (usage error)", t, typer_t, 'python -c "import typer"', 1.5, rss))

    # 2. the seed example, end to end
    t, _, rss = timed([*vjp, SEED, "--at", "1,2,3", "--v", "3,2,1"], n)
    results.append(row("2. seed example", t, base_t, "import torch, sympy, typer, rich", 1.0, rss))

    # 3. large systems from a file, full report
    with tempfile.TemporaryDirectory() as tmp:
        systems = [("3. Broyden tridiagonal n=500", problems.broyden(500), 500)]
        if not args.skip_dense:
            systems.append(("3. dense family n=200", problems.dense(200), 200))
        for name, text, size in systems:
            path = Path(tmp) / "prog.txt"
            path.write_text(text)
            reps = max(1, n // 3)
            t, _, rss = timed(
                [
                    *vjp,
                    "-f",
                    str(path),
                    "--at",
                    problems.point(size),
                    "--v",
                    problems.point(size),
                    "--timeout",
                    "0",
                ],
                reps,
            )
            results.append(row(name, t, base_t, "import torch, sympy, typer, rich", 3.0, rss))
            if size == 200:  # issue 14: the sparse work must not slow the dense case down
                results.append(row("14. dense n=200 (issue 14)", t, base_t,
                                   "import torch, sympy, typer, rich", 2.2, rss))  # fmt: skip

    # 14. sparse end to end: Broyden n = 500 .. 10,000
    results.extend(sparse_targets(base_t, max(1, n // 3)))

    # 6-7. second order (issue 15), whole processes against the same anchor
    results.extend(second_order_targets(vjp, base_t, max(1, n // 3)))

    # 4. many points in one process (dense family n=10, 100,000 points, v fixed)
    results.extend(batch_targets(args.quick))
    print(f"\n{sum(results)} of {len(results)} measured targets met.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
