"""What a ranking is made of: the metrics on which a method leads, and whether the winner depends on the
perturbation mode. The verdict quotes these instead of one metric on which another method may win."""

from __future__ import annotations

import math

from explainers.metrics.faithfulness import Metric, Report, rank_explanations, ranking_metrics


def leads(reports: list[Report], method: str) -> list[Metric]:
    """The ranking's metrics on which `method` has the best value (ties count; undefined values never lead)."""
    mine = next(r for r in reports if r.method == method)
    out = []
    for metric in ranking_metrics():
        values = [r.values.get(metric.name, float("nan")) for r in reports]
        values = [v for v in values if not math.isnan(v)]
        value = mine.values.get(metric.name, float("nan"))
        if not values or math.isnan(value):
            continue
        best = max(values) if metric.direction == "higher" else min(values)
        if math.isclose(value, best, rel_tol=1e-9, abs_tol=1e-12):
            out.append(metric)
    return out


def winner(reports: list[Report]) -> str | None:
    """The method that ranks first (None without reports)."""
    ranking = rank_explanations(reports)
    return ranking[0][0] if ranking else None


def mode_dependent(reports_by_mode: dict[str, list[Report]]) -> bool:
    """True when the perturbation modes crown different methods (the verdict is then fragile)."""
    return len({winner(reports) for reports in reports_by_mode.values() if reports}) > 1
