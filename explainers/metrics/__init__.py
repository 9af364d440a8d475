"""Faithfulness metrics and what is said about them (the ranking's reasons)."""
