"""One strict JSON encoder for everything whybox writes (explanations, reports, the CLI, downloads).

Python's json writes NaN and Infinity, which strict parsers (JavaScript's JSON.parse, jq, most
languages) reject. An undefined number (Kendall τ on one token, a metric with nothing to compare) is
written as null instead.
"""

from __future__ import annotations

import json
import math
import sys


def clean(value):
    """Plain JSON values: NaN/inf -> None, numpy and 0-d tensors -> Python numbers, tuples -> lists."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    np = sys.modules.get("numpy")  # no numpy value can exist before numpy is imported: the CLI starts without it
    if np is not None and isinstance(value, np.ndarray):
        return clean(value.tolist())
    if np is not None and isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    elif hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        value = value.item()  # 0-d torch tensors
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value, **kwargs) -> str:
    return json.dumps(clean(value), ensure_ascii=False, allow_nan=False, **kwargs)


def loads(text: str):
    """Parse strictly: NaN, Infinity and -Infinity are refused, as a strict parser would."""

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    return json.loads(text, parse_constant=refuse)
