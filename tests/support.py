"""Paths the tests share, wherever a test file sits in the mirrored layout."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the repository
APP = ROOT / "dashboard" / "app.py"
