"""Reduced precision for forward-only rows, as an explicit option.

LIME, occlusion, leave-one-out and the faithfulness metrics only read probabilities from forward passes
(`InferenceGateway.score_ids` / `token_logprobs`); on a CPU with bf16 units, bf16 autocast runs those
rows faster and moves p by little. Gradient methods and the prediction pass stay float32 always: the
gateway autocasts only inside its no-grad row scoring.

`auto` probes once per model: the same rows in float32 and in bf16, timed and compared. bf16 is chosen
only when it is faster AND its largest |Δp| on the probe rows is within `TOLERANCE`; else float32 stays.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from explainers.errors import InputError

PRECISIONS = ("auto", "float32", "bf16")
TOLERANCE = 0.01  # largest |p(bf16) - p(float32)| on the probe rows that bf16 may show
PROBE_ROWS, PROBE_TOKENS = 16, 32
MIN_SPEEDUP = 1.1  # "faster" means clearly faster: timing noise on a busy machine is a few percent


@dataclass
class Probe:
    """What the probe measured on this model and device, and what it chose."""

    rows: int
    tokens: int
    float32_ms: float
    bf16_ms: float
    speedup: float  # float32 time / bf16 time
    max_abs_dp: float  # largest |Δp| over every row and class (or the next-token distribution's top)
    tolerance: float
    chosen: str
    reason: str

    def to_dict(self) -> dict:
        return asdict(self)


def probe(handle, rows: int = PROBE_ROWS, tokens: int = PROBE_TOKENS, repeats: int = 3) -> Probe:
    """Score the same rows (ids drawn from the vocabulary with a fixed seed) in float32 and in bf16:
    the best of `repeats` timings each (CPU time of this process), and the largest difference in probability."""
    gateway = handle.gateway
    known = gateway.recall(("precision_probe", rows, tokens))
    if known is not None:
        return known
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, len(handle.tokenizer), (rows, tokens), generator=generator).to(handle.device)
    results, times = {}, {}
    for precision in ("float32", "bf16"):
        _probabilities(handle, ids, precision)  # warm-up: bf16 kernels are set up on first use
        best = float("inf")
        for _ in range(repeats):
            started = time.process_time()  # CPU time: on a shared machine, wall time measures the neighbours
            results[precision] = _probabilities(handle, ids, precision)
            best = min(best, time.process_time() - started)
        times[precision] = best
    max_dp = float(np.max(np.abs(results["bf16"] - results["float32"])))
    speedup = times["float32"] / times["bf16"]
    faster, close = speedup >= MIN_SPEEDUP, max_dp <= TOLERANCE
    chosen = "bf16" if faster and close else "float32"
    reason = f"bf16 is {speedup:.2f}x as fast with max |Δp| {max_dp:.4f} (tolerance {TOLERANCE})" + (
        "" if chosen == "bf16" else f": not {'faster' if not faster else 'within tolerance'}, float32 kept"
    )
    found = Probe(rows, tokens, times["float32"] * 1e3, times["bf16"] * 1e3, speedup, max_dp, TOLERANCE, chosen, reason)
    return gateway.remember(("precision_probe", rows, tokens), found)


def _probabilities(handle, ids: torch.Tensor, precision: str) -> np.ndarray:
    """Class probabilities (a causal LM: the next-token distribution) of each row, as the rows are scored."""
    with handle.gateway.lock, torch.inference_mode(), _autocast(handle.device, precision):
        logits = handle.model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    if logits.dim() == 3:
        logits = logits[:, -1]
    return torch.softmax(logits.float(), dim=-1).cpu().numpy()


class forward_precision:  # noqa: N801 (a context manager, used like a function)
    """Score forward-only rows in `precision` (float32 or bf16) within this block, then put back."""

    def __init__(self, handle, precision: str):
        self.gateway, self.precision = handle.gateway, precision

    def __enter__(self):
        self.before = self.gateway.precision
        self.gateway.precision = self.precision

    def __exit__(self, *exc):
        self.gateway.precision = self.before


def set_precision(handle, precision: str) -> Probe | None:
    """Choose the precision of the handle's forward-only rows: float32, bf16, or auto (probe, then the
    faster of the two when bf16 is within tolerance). Returns the probe for auto, else None."""
    if precision not in PRECISIONS:
        raise InputError(f"Unknown precision '{precision}': use {', '.join(PRECISIONS)}.")
    if precision != "auto":
        handle.gateway.precision = precision
        return None
    if handle.model.dtype != torch.float32:  # a model loaded in half precision: nothing to choose
        handle.gateway.precision = "float32"
        return None
    found = probe(handle)
    handle.gateway.precision = found.chosen
    return found


def autocast(gateway):
    """The autocast context for the gateway's forward-only rows (a no-op in float32)."""
    return _autocast(gateway.device, gateway.precision)


def _autocast(device: torch.device, precision: str):
    if precision != "bf16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
