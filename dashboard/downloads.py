"""Downloads: the JSON bundle and the HTML report, prepared once per result with a visible status, and
image export (SVG, PNG) of a card's heatmap.

A report needs the faithfulness metrics (forward passes) and the attention weights (one more): the
Explain page prepares it when asked (a button), the Faithfulness page, which has computed the metrics
already, as soon as its cards are drawn. Either way the files are kept per result (model, text,
methods, parameters, seed, target, mode, marks), so a second click, a rerun or the other page hands
out the same bytes without computing anything."""

from __future__ import annotations

import time

import streamlit as st
from explainers.inference.gateway import watching
from explainers.inference.memo import ByteLRU
from explainers.metrics import faithfulness
from explainers.models.handle import ModelHandle

from components import image_export
from components.charts import shown_attention
from components.report import html_report, json_bundle
from dashboard import results
from explainers.errors import WhyboxError
from explainers.explanation import Explanation
from explainers.methods import attention_rollout

# A report carries plotly.js inline (~5 MB) so that it opens offline: keep a handful.
PREPARED = ByteLRU(max_bytes=96 << 20, max_entries=16)


def key_of(req: results.Request, exps: list[Explanation], mode: str, marks: tuple[int, ...]) -> tuple:
    """What the files depend on: the request's finished methods, the perturbation mode and the marks."""
    done = results.Request(req.model, req.text, tuple(e.method for e in exps), req.params, req.seed, req.target)
    return done, mode, marks


def prepared(key: tuple) -> dict | None:
    """The files of a result if they were prepared already (never computes)."""
    return PREPARED.get(key)


def attention_view(handle: ModelHandle, text: str) -> tuple | None:
    """The attention rollout over all layers as the Attention page shows it by default: special tokens left out,
    each row rescaled over the tokens shown. (tokens, matrix, title, positions), or None where the model gives
    no attention weights or too few tokens are left."""
    try:
        weights = results.attentions(handle, text)
    except WhyboxError:
        return None
    enc = handle.encode(text)
    keep = [not special for special in enc.special]
    if not weights or sum(keep) < 2:
        return None
    positions = [i for i, kept in enumerate(keep) if kept]
    title = "Attention rollout, all layers" + ("" if all(keep) else " (special tokens left out, rows rescaled)")
    matrix = shown_attention(attention_rollout(weights).numpy(), keep)
    return [enc.tokens[i] for i in positions], matrix, title, positions


def prepare(
    handle: ModelHandle,
    req: results.Request,
    exps: list[Explanation],
    mode: str,
    marks: tuple[int, ...],
    reports=None,
    agreement=None,
    on_step=lambda share, text: None,
) -> dict:
    """Build both files: {"json": str, "html": str, "seconds": float}. Metrics come from `reports` when the
    page has them, else from the shared cache (the Faithfulness page fills it), else they are computed
    once here. `on_step(share, text)` says how far it got."""
    started = time.perf_counter()
    if reports is None:
        rows = {"n": 0}

        def counted(n: int) -> None:
            rows["n"] += n
            on_step(0.1, f"Faithfulness metrics: {rows['n']:,} model rows scored…")

        on_step(0.05, "Faithfulness metrics…")
        with watching(on_rows=counted):
            reports = results.reports(handle, req, exps, mode)
    on_step(0.6, "Agreement between methods…")
    agreement = agreement or faithfulness.agreement(exps)
    on_step(0.7, "Attention rollout…")
    attention = attention_view(handle, req.text)
    on_step(0.8, "JSON bundle…")
    settings = results.settings_of(req) | {"perturbation": mode}
    if marks:
        settings["marks"] = [exps[0].words[i] for i in marks if i < len(exps[0].words)]
    info = handle.describe()
    bundle = json_bundle(exps, reports, settings, info)
    on_step(0.85, "HTML report…")
    page = html_report(
        model_info=info,
        explanations=exps,
        reports=reports,
        settings={k: v for k, v in settings.items() if k != "marks"},
        agreement=agreement,
        attention=attention,
        marks=list(marks),
    )
    return {"json": bundle, "html": page, "seconds": time.perf_counter() - started}


def offer(
    handle: ModelHandle,
    req: results.Request,
    exps: list[Explanation],
    mode: str | None = None,
    reports=None,
    agreement=None,
) -> None:
    """The download section. With `reports` (the page computed the metrics) the files are prepared at once,
    after everything else on the page; without, a button prepares them. Prepared files are served from
    memory afterwards."""
    ss = st.session_state
    mode = mode or ss.get("mode", "delete")
    marks = tuple(sorted(ss.get("marks", []))) if ss.get("marks_for") == req.text else ()
    key = key_of(req, exps, mode, marks)
    files = prepared(key)
    if files is None:
        slot = st.empty()
        asked = reports is not None or slot.button(
            "Prepare downloads (JSON and HTML report)",
            icon=":material/description:",
            key="w_prepare_downloads",
            help="Runs the faithfulness checks the report includes (once; kept for these results).",
        )
        if not asked:
            st.caption("The report adds the faithfulness metrics, the attention rollout and your marked words.")
            return
        slot.empty()  # pressed: the status below takes its place
        with st.status("Preparing report…", expanded=True) as status:
            bar = st.progress(0.0, text="Starting…")
            files = PREPARED.get_or_compute(
                key,
                lambda: prepare(
                    handle,
                    req,
                    exps,
                    mode,
                    marks,
                    reports,
                    agreement,
                    on_step=lambda share, text: bar.progress(share, text=text),
                ),
            )
            bar.progress(1.0, text="Done.")
            status.update(
                label=f"Report ready (prepared in {files['seconds']:.1f} s)", state="complete", expanded=False
            )
    else:
        st.caption(f"Report ready (prepared once, in {files['seconds']:.1f} s, for these results).")
    left, right = st.columns(2)
    left.download_button(
        "Download JSON (explanations + metrics)",
        files["json"],
        file_name="whybox.json",
        mime="application/json",
        icon=":material/download:",
        width="stretch",
        key="w_download_json",
        on_click="ignore",  # a download reruns nothing
    )
    right.download_button(
        "Download HTML report",
        files["html"],
        file_name="whybox-report.html",
        mime="text/html",
        icon=":material/description:",
        width="stretch",
        key="w_download_html",
        on_click="ignore",
    )


def image_popover(exp: Explanation, level: str, scale: float | None = None) -> None:
    """One "Image" popover per card: its heatmap as SVG (vector, for papers) and PNG (for slides)."""
    with st.popover("Image", icon=":material/image:"):
        st.caption("This card's heatmap, with its title and colour legend.")
        svg = image_export.heatmap_svg(exp, level, scale=scale)
        st.download_button(
            "SVG (vector, for papers)",
            svg,
            icon=":material/download:",
            file_name=f"whybox-{exp.method}.svg",
            mime="image/svg+xml",
            key=f"w_svg_{exp.method}",
            on_click="ignore",
            width="stretch",
        )
        st.download_button(
            "PNG (for slides)",
            lambda: image_export.svg_to_png(svg),
            icon=":material/download:",
            file_name=f"whybox-{exp.method}.png",
            mime="image/png",
            key=f"w_png_{exp.method}",
            on_click="ignore",
            width="stretch",
        )
