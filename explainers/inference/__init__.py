"""Inference: the gateway and what makes model rows cheap (batching, packing, caches, reading only what
the model can take)."""
