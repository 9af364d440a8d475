"""Trace: where inside the model the answer is computed (activation patching), with the first-order
preview beside it and their agreement."""

import streamlit as st

from components.trace_view import agreement_frame, chart_png, chart_svg, colour_domain, grid_chart
from dashboard import examples, links, views
from dashboard.widgets import current_text, plain
from explainers import strict_json
from explainers.errors import WhyboxError
from explainers.inference.gateway import watching
from explainers.inside import patching
from explainers.inside.trace import estimate_seconds, parse_indices, run_trace
from explainers.inside.vocabulary import COMPONENTS

st.title("Trace")
st.caption(
    "Where inside the model is the answer computed? Two texts with the same number of tokens: a **clean** one "
    "the model answers with the target and a **corrupted** one it answers otherwise. One activation of one run "
    f"(a layer × a token, or a head) is replaced by the other run's and the answer read again. Values are "
    f"{patching.NORMALISED}."
)

handle = views.model()
ss = st.session_state
links.seed_trace()
if "w_tr_clean" not in ss:
    ss.w_tr_clean = current_text()
if "w_tr_corrupted" not in ss:
    ss.w_tr_corrupted = examples.for_task(handle.task).get(ss.w_tr_clean, ss.w_tr_clean)

KINDS = {"text": "a text of my own", "noise": "noise on the clean text (causal tracing)"}
kind = st.radio("Corrupted run", list(KINDS), key="w_tr_kind", format_func=KINDS.get, horizontal=True)
left, right = st.columns(2)
clean = left.text_area("Clean text", key="w_tr_clean", height=90)
if kind == "noise":
    # Streamlit empties the hidden corrupted-text box: kept here until "a text of my own" shows it again
    ss.setdefault("tr_corrupted_hidden", ss.get("w_tr_corrupted", ""))
    noise_text = right.text_input(
        "Add noise to token positions",
        key="w_tr_noise",
        placeholder="e.g. 1-3 (the subject's tokens)",
        help=f"Gaussian noise of {patching.NOISE_SCALE:g} × the standard deviation of the model's token embeddings "
        "is added there (Meng et al. 2022); every corrupted figure is the mean over the draws (seed: the sidebar's).",
    )
    samples = right.number_input("Noise draws", 1, 100, key="w_tr_samples")
    corrupted = ""
else:
    if "tr_corrupted_hidden" in ss:
        ss.w_tr_corrupted = ss.pop("tr_corrupted_hidden")
    corrupted = right.text_area(
        "Corrupted text",
        key="w_tr_corrupted",
        height=90,
        help="The same number of tokens as the clean text: change a word for one the tokenizer splits as much.",
    )
    noise_text, samples = "", 0
c1, c2, c3 = st.columns(3)
contrast = c1.text_input(
    "Contrast (for the logit difference)",
    key="w_tr_contrast",
    placeholder="default: the corrupted run's answer",
    help="The target is set in the sidebar (default: the clean text's prediction).",
)
metric = c2.radio(
    "Metric", list(patching.METRICS), key="w_tr_metric", format_func=lambda m: patching.METRICS[m], horizontal=True
)
direction = c3.radio(
    "Direction",
    list(patching.DIRECTIONS),
    key="w_tr_direction",
    format_func=lambda d: f"{patching.DIRECTIONS[d]} ({d[:-1]}ing)",
)
c4, c5, c6 = st.columns([2, 1, 1])
components = c4.multiselect(
    "Components", list(COMPONENTS), key="w_tr_components", format_func=lambda c: f"{c}: {COMPONENTS[c]}"
)
layers_text = c5.text_input("Layers", key="w_tr_layers", placeholder="all, or e.g. 0-5,9")
preview = c6.checkbox(
    "Preview and check it",
    key="w_tr_preview",
    help="Attribution patching: a first-order estimate of the whole grid from one backward pass, shown beside "
    "the exact grid with their agreement. A preview, never the result.",
)

try:
    layers = parse_indices(layers_text, "Layers")
    answer = {"target": ss.get("target") or None, "contrast": contrast.strip() or None, "metric": metric}
    if kind == "noise":
        positions = parse_indices(noise_text, "Noise positions") or []
        pair = patching.prepare_noise(handle, clean, positions, int(samples), int(ss.get("seed", 0)), **answer)
    else:
        pair = patching.prepare(handle, clean, corrupted, **answer)
    seconds = estimate_seconds(handle, pair, components, layers)
except WhyboxError as exc:
    views.show_error("Trace", exc)
    st.stop()
if not components:
    st.info("Choose at least one component.")
    st.stop()
with st.expander(f"Tokens ({pair.clean.n_tokens}) and the corrupted run"):
    st.markdown("Clean: " + " · ".join(f"`{i}` {plain(t)}" for i, t in enumerate(pair.clean.tokens)))
    st.markdown(f"Corrupted: {plain(pair.noise_description)}")
st.markdown(
    f"Measured: **{plain(pair.metric_label)}**: clean {pair.clean_metric:.3f}, corrupted "
    f"{pair.corrupted_metric:.3f} · {pair.clean.n_tokens} tokens · about **{seconds:.0f} s** on this machine"
)
pressed = st.button("Trace", type="primary", icon=":material/route:")
request = (handle.name, clean, corrupted, ss.get("target", ""), contrast, metric, direction, tuple(components))
request += (layers_text, preview, kind, noise_text, samples, ss.get("seed", 0))
shown = views.request_to_show("trace_done", request, pressed)
if shown is None:
    st.info("Press **Trace** to patch every cell of the chosen grids (batched; Stop ends it at the next batch).")
    st.stop()

slots = {name: st.empty() for name in components}


def draw(name: str, trace) -> None:
    with slots[name].container():
        st.subheader(f"{name}: {COMPONENTS[name]}")
        columns = st.columns(2) if name in trace.previews else [st.container()]
        shown_grids = [g for g in (trace.grids.get(name), trace.previews.get(name)) if g is not None]
        domain = colour_domain(*shown_grids)  # the same colours mean the same values side by side
        if name in trace.grids:
            chart = grid_chart(trace.grids[name], f"{name}: exact patching", domain)
            columns[0].altair_chart(chart, width="stretch")
            svg, png = st.columns(2)
            svg.download_button("SVG", chart_svg(chart), f"whybox-trace-{name}.svg", "image/svg+xml", key=f"svg_{name}")
            png.download_button("PNG", chart_png(chart), f"whybox-trace-{name}.png", "image/png", key=f"png_{name}")
        if name in trace.previews:
            title = f"{name}: preview (first-order estimate, not the result)"
            columns[-1].altair_chart(grid_chart(trace.previews[name], title, domain), width="stretch")
        if name in trace.agreements:
            a = trace.agreements[name]
            st.caption(
                f"Preview vs exact on these {a['cells']} cells: Pearson r {a['pearson_r']:.3f}, "
                f"top-{a['k']} recall {a['top_k_recall']:.2f}."
            )


cached = ss.get("trace_result")
if cached is not None and cached[0] == shown:
    trace = cached[1]
    for name in components:
        draw(name, trace)
elif not pressed:
    st.info("That run was stopped before it finished: press **Trace** to run it again.")
    st.stop()
else:
    stop_col, bar_col = st.columns([1, 4])
    stop = stop_col.empty()
    stop.button("Stop", icon=":material/stop:", help="Ends the run at the next batch")
    bar = bar_col.progress(0.0, text="Patching…")
    total = max(1, sum(patching.n_units(handle, pair, c) * len(patching.default_layers(handle, c)) for c in components))
    done = [0]

    def on_rows(rows: int) -> None:
        done[0] += rows
        bar.progress(min(1.0, done[0] / total), text=f"{done[0]:,} patched rows")

    try:
        with watching(on_rows=on_rows, batch_seconds=0.5):
            trace = run_trace(handle, pair, components, direction, layers, None, preview, on_grid=draw)
    except WhyboxError as exc:
        views.show_error("Trace", exc)
        st.stop()
    bar.empty()
    stop.empty()
    ss.trace_result = (shown, trace)
if trace.agreements:
    st.dataframe(agreement_frame(trace.agreements), hide_index=True)
st.download_button(
    "Download JSON",
    data=strict_json.dumps(trace.to_dict(), indent=2),
    file_name="whybox-trace.json",
    mime="application/json",
    icon=":material/download:",
)
