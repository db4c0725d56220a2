"""The benchmark's problems, written as the text a user would give `vjp -f`."""

from __future__ import annotations


def broyden(n: int) -> str:
    """Broyden tridiagonal: f_i = (3 - 2 x_i) x_i - x_{i-1} - 2 x_{i+1} + 1 (x_0 = x_{n+1} = 0)."""
    lines = []
    for i in range(1, n + 1):
        terms = [f"(3 - 2*x{i})*x{i}"]
        if i > 1:
            terms.append(f"- x{i - 1}")
        if i < n:
            terms.append(f"- 2*x{i + 1}")
        lines.append(f"f{i} = " + " ".join(terms) + " + 1")
    return "\n".join(lines) + "\n"


def dense(n: int) -> str:
    """f_i = sum_j sin(x_j*(i+j)/n) + x_i**2*exp(-x_{i+1}) (indices wrap around)."""
    lines = []
    for i in range(1, n + 1):
        s = " + ".join(f"sin(x{j}*{i + j}/{n})" for j in range(1, n + 1))
        nxt = i % n + 1
        lines.append(f"f{i} = {s} + x{i}**2*exp(-x{nxt})")
    return "\n".join(lines) + "\n"


def point(n: int) -> str:
    """A point away from any special value: x_j = 0.5 + j/(2n)."""
    return ",".join(f"{0.5 + j / (2 * n):.6f}" for j in range(1, n + 1))
