"""The faithfulness table: one row per method, one column per metric, coloured by what is better."""

from __future__ import annotations

import numpy as np
import pandas as pd
from explainers.metrics.faithfulness import AOPC_NORMALISER, METRICS, MODES, Metric, Report
from explainers.whatif.summary import faithfulness_verdict

from .charts import unique_labels
from .heatmap import hex_color, mix, text_color

BETTER = (34, 197, 94)  # green: better for that metric
NEUTRAL_SHADE = (161, 161, 170)  # grey: descriptive metrics, neither better nor worse
MAX_SHADE = 0.65  # keeps the darkest cell light enough for dark text


def metrics_frame(reports: list[Report]) -> pd.DataFrame:
    """Rows = methods (their titles), columns = metric headers (title and direction), in METRICS order."""
    index = unique_labels([r.title or r.method for r in reports])
    data = [{header(m): r.values.get(m.name, np.nan) for m in METRICS.values()} for r in reports]
    columns = [header(m) for m in METRICS.values()]
    return pd.DataFrame(data, index=pd.Index(index, name="Method"), columns=columns, dtype=float)


def header(metric: Metric) -> str:
    """A column's title with its direction: ↑ higher is better, ↓ lower (shape metrics: no arrow)."""
    return f"{metric.title} {metric.symbol}" if metric.faithfulness else metric.title


_BY_HEADER = {header(m): m for m in METRICS.values()}


def _shades(values: pd.Series, metric: Metric) -> list[str]:
    """CSS for one column: the better a value for this metric, the greener (grey for descriptive ones)."""
    values = values.round(3)  # shade only differences that the three printed decimals show
    finite = values[np.isfinite(values)]
    if len(finite) < 2 or finite.max() == finite.min():
        return [""] * len(values)
    position = (values - finite.min()) / (finite.max() - finite.min())  # 0..1, 1 = highest
    if metric.faithfulness and metric.direction == "lower":
        position = 1 - position
    hue = BETTER if metric.faithfulness else NEUTRAL_SHADE
    css = []
    for p in position:
        if not np.isfinite(p):
            css.append("")
            continue
        background = mix(hue, MAX_SHADE * p)
        css.append(f"background-color: {hex_color(background)}; color: {text_color(background)}")
    return css


def three_decimals(value: float) -> str:
    """3 decimals; NaN as n/a; a tiny negative reads 0.000, not -0.000."""
    if not np.isfinite(value):
        return "n/a"
    text = f"{value:.3f}"
    return "0.000" if text == "-0.000" else text


def metric_backgrounds(frame: pd.DataFrame) -> pd.DataFrame:
    """The CSS of every cell of metrics_frame(...): green where better for that column's metric."""
    return pd.DataFrame({col: _shades(frame[col], _BY_HEADER[col]) for col in frame.columns}, index=frame.index)


def styled_metrics(reports: list[Report]):
    """metrics_frame as a pandas Styler: coloured per column by direction, 3 decimals, NaN as n/a."""
    frame = metrics_frame(reports)
    return frame.style.apply(lambda _: metric_backgrounds(frame), axis=None).format(three_decimals)


def metric_legend() -> list[str]:
    """One plain-text line per metric: title, direction, range, meaning."""
    lines = []
    for m in METRICS.values():
        judged = (
            f"{m.direction} is better"
            if m.faithfulness
            else f"descriptive, not faithfulness ({m.direction} = more focused)"
        )
        lines.append(f"{m.title} ({judged}; range {m.low:g} to {m.high:g}): {m.meaning}")
    return lines


def mode_caption(reports: list[Report]) -> str:
    modes = sorted({r.mode for r in reports})
    how = "; ".join(f"{mode}: {MODES.get(mode, mode)}" for mode in modes)
    return f"Perturbation: {how}. {AOPC_NORMALISER}"


def verdict(reports: list[Report], agreement=None) -> str:
    return faithfulness_verdict(reports, agreement)


def render_metrics(reports: list[Report]) -> None:
    import streamlit as st

    if not reports:
        st.info("No faithfulness checks yet.")
        return
    st.dataframe(styled_metrics(reports), width="stretch")
    st.caption(
        mode_caption(reports) + " Green = better for that metric; grey columns describe shape, not faithfulness."
    )
    with st.expander("What the metrics mean"):
        st.markdown("\n".join(f"- {line}" for line in metric_legend()))


def render_verdict(reports: list[Report], agreement=None) -> None:
    import streamlit as st

    st.info(verdict(reports, agreement), icon="⚖️")
