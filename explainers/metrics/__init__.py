"""Metrics that judge explanations: how maps compare (similarity), whether a map depends on the model at
all (sanity), and whether it survives meaning-preserving edits (consistency)."""
