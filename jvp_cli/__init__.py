"""jvp_cli: see what reverse-mode (v^T J) and forward-mode (J u) differentiation compute, with
SymPy and PyTorch side by side. Importing the package imports nothing heavy."""

__version__ = "0.1.0"
