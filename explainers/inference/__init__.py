"""Inference: the gateway (the one place that runs the model) and what makes rows cheap."""
