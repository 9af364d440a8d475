"""Metrics: faithfulness metric objects (classification and generated text), agreement between explanations."""
