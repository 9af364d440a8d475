"""Checks of explanations that re-run the methods: does a map depend on the model at all (the
randomisation sanity check), and does it survive meaning-preserving edits (consistency)."""
