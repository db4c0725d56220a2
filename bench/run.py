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
import problems  # noqa: E402

PY = sys.executable
SEED = "x1**2+2*x2+x3; x1+x2**3+x3**2; 2*x1+x2**2+x3**3"


def timed(cmd: list[str], repeat: int, ok_codes: tuple[int, ...] = (0, 1)
          ) -> tuple[float, float, int]:  # fmt: skip
    """Median wall time, best time, and the largest peak RSS (MiB) over `repeat` runs."""
    times = []
    peak = 0
    for _ in range(repeat):
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
        _, status, usage = os.wait4(proc.pid, 0)
        times.append(time.perf_counter() - start)
        code = os.waitstatus_to_exitcode(status)
        if code not in ok_codes:
            raise SystemExit(f"{' '.join(cmd)[:120]} failed ({code}): {err[:400]!r}")
        peak = max(peak, usage.ru_maxrss)
    return statistics.median(times), min(times), peak // 1024


def row(name: str, ours: float, anchor: float, anchor_name: str, target: float, rss: int) -> bool:
    ratio = ours / anchor
    ok = ratio <= target
    print(f"{name:<34} {ours:8.2f} s   {anchor_name:<36} {anchor:6.2f} s   ratio {ratio:5.2f}"
          f"  (target <= {target:.1f}: {'met' if ok else 'NOT met'})   peak RSS {rss} MiB")
    return ok


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--skip-dense", action="store_true", help="skip the dense n=200 system")
    args = ap.parse_args()
    n = 3 if args.quick else 7
    vjp = [PY, "-m", "jvp_cli"]
    results = []
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; medians of {n} runs\n")

    typer_t, _, _ = timed([PY, "-c", "import typer"], n)
    base_t, _, _ = timed([PY, "-c", "import torch, sympy, typer, rich"], n)

    # 1. --help and a usage error: no torch, no SymPy
    t, _, rss = timed([*vjp, "--help"], n)
    results.append(row("1. vjp --help", t, typer_t, 'python -c "import typer"', 1.5, rss))
    t, _, rss = timed([*vjp, "x", "--bogus"], n, ok_codes=(2,))
    results.append(row("1. vjp (usage error)", t, typer_t, 'python -c "import typer"', 1.5,
                       rss))

    # 2. the seed example, end to end
    t, _, rss = timed([*vjp, SEED, "--at", "1,2,3", "--v", "3,2,1"], n)
    results.append(row("2. seed example", t, base_t, "import torch, sympy, typer, rich", 1.0,
                       rss))

    # 3. large systems from a file, full report
    with tempfile.TemporaryDirectory() as tmp:
        systems = [("3. Broyden tridiagonal n=500", problems.broyden(500), 500)]
        if not args.skip_dense:
            systems.append(("3. dense family n=200", problems.dense(200), 200))
        for name, text, size in systems:
            path = Path(tmp) / "prog.txt"
            path.write_text(text)
            reps = max(1, n // 3)
            t, _, rss = timed([*vjp, "-f", str(path), "--at", problems.point(size), "--v",
                               problems.point(size), "--timeout", "0"], reps)
            results.append(row(name, t, base_t, "import torch, sympy, typer, rich", 3.0, rss))

    print("\n4./5. --points batches: not implemented yet (see issue 5).")
    print(f"\n{sum(results)} of {len(results)} measured targets met.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
