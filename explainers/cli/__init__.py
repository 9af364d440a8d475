"""`whybox` command line: one module per command group; `main` parses and dispatches."""

from explainers.cli.commands import main

__all__ = ["main"]
