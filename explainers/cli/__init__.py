"""`whybox` command line: one module per command group; `commands.main` parses and dispatches."""


def main(argv: list[str] | None = None) -> int:
    """The console script's entry point (imported lazily: `--help` stays light, no import circle)."""
    from explainers.cli.commands import main as run

    return run(argv)
