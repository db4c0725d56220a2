"""`python -m jvp_cli` runs the same command as `vjp`."""

from jvp_cli.cli import main

if __name__ == "__main__":
    main()
