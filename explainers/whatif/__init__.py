"""What if: verified counterfactuals, the claim checker, narration, verdict text, model cards and the drafting LLM."""
