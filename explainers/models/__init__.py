"""The model and its task adapters: loading, heads, what differs between a classifier and a causal LM."""
