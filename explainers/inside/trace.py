"""Trace: where inside the model the answer is computed, for one clean/corrupted pair: exact patching
grids of the chosen components, optionally the attribution-patching preview of each and its agreement
with the exact grid. What the CLI prints and the Trace page draws; one JSON form for both."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from explainers.errors import InputError
from explainers.inside import attribution_patching, patching
from explainers.models.handle import ModelHandle

SCHEMA = "whybox.trace/1"


def parse_indices(text: str | None, what: str) -> list[int] | None:
    """'0-3,7' -> [0, 1, 2, 3, 7]; empty -> None (all)."""
    if text is None or not str(text).strip():
        return None
    out: list[int] = []
    for part in str(text).split(","):
        first, dash, last = part.strip().partition("-")
        try:
            out += list(range(int(first), int(last) + 1)) if dash else [int(first)]
        except ValueError:
            raise InputError(f"{what} takes numbers and ranges like 0-3,7, not '{part.strip()}'.") from None
    return out


@dataclass
class Trace:
    pair: patching.Pair
    grids: dict[str, patching.Grid]
    previews: dict[str, patching.Grid] = field(default_factory=dict)
    agreements: dict[str, dict] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA,
            "pair": self.pair.to_dict(),
            "normalised": patching.NORMALISED,
            "grids": {name: grid.to_dict() for name, grid in self.grids.items()},
            "previews": {name: grid.to_dict() for name, grid in self.previews.items()},
            "agreement": self.agreements,
        }


def run_trace(
    handle: ModelHandle,
    pair: patching.Pair,
    components: Sequence[str] = ("resid",),
    direction: str = "denoise",
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    preview: bool = False,
    top_k: int = 5,
    max_seconds: float | None = None,
    on_grid: Callable[[str, Trace], None] | None = None,
) -> Trace:
    """The grids (layers and positions apply where they fit: positions to per-position components).
    `on_grid(component, trace so far)` after each component's preview and again after its exact grid,
    so that a page shows results as they arrive."""
    if max_seconds is not None:
        seconds = estimate_seconds(handle, pair, components, layers, positions)
        if seconds > max_seconds:
            raise InputError(
                f"These grids need about {seconds:.0f} s, more than the {max_seconds:.0f} s allowed: choose fewer "
                "layers or positions, or fewer components."
            )
    trace = Trace(pair, {})
    for component in components:
        chosen = {"layers": _layers(handle, component, layers), "units": _units(component, positions)}
        if preview:  # first: it is quick, and a page can show it while the exact grid runs
            trace.previews[component] = attribution_patching.preview(handle, pair, component, direction, **chosen)
            if on_grid is not None:
                on_grid(component, trace)
        trace.grids[component] = patching.patch(handle, pair, component, direction, **chosen)
        if preview:
            trace.agreements[component] = attribution_patching.agreement(
                trace.grids[component], trace.previews[component], top_k
            )
        if on_grid is not None:
            on_grid(component, trace)
    return trace


def estimate_seconds(handle: ModelHandle, pair: patching.Pair, components, layers=None, positions=None) -> float:
    """Seconds the exact grids should take (the preview adds two passes per component)."""
    return sum(
        patching.estimate_seconds(handle, pair, c, _layers(handle, c, layers), _units(c, positions)) for c in components
    )


def _layers(handle: ModelHandle, component: str, layers: Sequence[int] | None):
    if layers is None:
        return None
    fit = [layer for layer in layers if layer in patching.default_layers(handle, component)]
    if not fit:
        raise InputError(f"None of the layers {list(layers)} exists for {component} (blocks are numbered from 1).")
    return fit


def _units(component: str, positions: Sequence[int] | None):
    return positions if patching.UNIT[component] == "position" else None
