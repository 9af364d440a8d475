"""Reproducible performance runs of the whybox engine: `python -m benchmarks.run --help`."""
