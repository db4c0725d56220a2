"""Rerun every `$ ` command in README.md's code blocks and put its real output under it.

Run from the repository root with vjp on PATH: python scripts/regen_readme.py. The commands
run in a scratch directory holding points.csv, at COLUMNS=80 (the width of a piped report
when no terminal is known), stdout and stderr together as a terminal shows them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

POINTS = "x,y\n1,2\n0.5,0.25\n3,-1\n"


def run(command: str, cwd: str) -> list[str]:
    env = {**os.environ, "COLUMNS": "80"}
    r = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True)
    return (r.stdout + r.stderr).rstrip("\n").split("\n")


def main() -> int:
    readme = Path("README.md")
    lines = readme.read_text().split("\n")
    out: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        Path(scratch, "points.csv").write_text(POINTS)
        in_block = False
        k = 0
        while k < len(lines):
            line = lines[k]
            if line.startswith("```"):
                in_block = not in_block
                out.append(line)
                k += 1
                continue
            if in_block and line.startswith("$ "):
                out.append(line)
                out.extend(ln.rstrip() for ln in run(line[2:], scratch))
                k += 1
                while k < len(lines) and not (lines[k].startswith(("$ ", "```"))):
                    k += 1  # the old output
                continue
            out.append(line)
            k += 1
    readme.write_text("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
