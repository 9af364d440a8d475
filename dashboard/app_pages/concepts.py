"""Concepts: does the model represent a concept, where, and does pushing along it change the output?
Two sets of texts -> probes per layer, the concept's direction, TCAV (classifiers) and steering."""

import json

import pandas as pd
import streamlit as st

from components import concepts_view
from dashboard import links, views
from dashboard.widgets import bound, plain
from explainers.audit.data import columns_of, read_data
from explainers.cli.whatif import dumps  # strict JSON: null for NaN
from explainers.errors import WhyboxError
from explainers.inference.gateway import watching
from explainers.inside import activations
from explainers.inside.concepts import DIRECTION_METHODS, ConceptSets, concept_activations, directions
from explainers.inside.probes import probe_layers
from explainers.inside.steering import POSITIONS, mean_interval, steer
from explainers.inside.tcav import tcav

st.title("Concepts inside the model")
st.caption(
    "Give two sets of texts, one with a concept and one without. A **probe** says at which layers the concept "
    "can be read off the model's activations (decodable, not necessarily used); the **direction** is the line "
    "from one set to the other; **TCAV** asks whether the classifier's label is sensitive to that direction; "
    "**steering** pushes along it and measures what moves, prompt by prompt."
)
ss = st.session_state
for setting, default in links.CONCEPTS.items():
    ss.setdefault(setting, default)
handle = views.model()
lm = handle.task.generates

# ---- the two sets ---------------------------------------------------------------------------------------
SOURCES = {
    "builtin": "Built-in sentences (positive vs negative)",
    "typed": "Type two sets",
    "substitution": "Pairs by substitution",
    "file": "Upload a file",
}
source = st.radio(
    "Sets", list(SOURCES), format_func=SOURCES.get, horizontal=True, key=bound("w_cn_source", "cn_source")
)
sets, problem = None, None
try:
    if source == "builtin":
        limit = st.number_input("Texts per set", 4, 500, key=bound("w_cn_limit", "cn_limit"), step=10)
        sets = ConceptSets.from_builtin(limit=int(limit))
    elif source in ("typed", "substitution"):
        left, right = st.columns(2)
        a = left.text_area("Set A: has the concept (one text a line)", key=bound("w_cn_a", "cn_a"), height=160)
        if source == "typed":
            b = right.text_area("Set B: lacks it (one text a line)", key=bound("w_cn_b", "cn_b"), height=160)
            paired = st.checkbox("Line i of A and line i of B are a pair", key=bound("w_cn_pairs", "cn_pairs"))
            if a.strip() or b.strip():
                sets = ConceptSets.from_lines(a, b, paired=paired)
        else:
            spec = right.text_input(
                "Substitution (as on the What-if page)", key=bound("w_cn_sub", "cn_sub"), placeholder="he -> she"
            )
            if a.strip() and spec.strip():
                sets = ConceptSets.from_substitution([x for x in a.splitlines() if x.strip()], spec)
    else:
        upload = st.file_uploader("CSV, JSONL or Parquet", type=["csv", "tsv", "jsonl", "ndjson", "parquet"])
        if upload is not None:
            import hashlib
            from pathlib import Path

            from explainers.models.builtin import cache_dir

            folder = cache_dir() / "concept-uploads"
            folder.mkdir(parents=True, exist_ok=True)
            body = upload.getvalue()
            path = folder / f"{hashlib.sha256(body).hexdigest()[:16]}{Path(upload.name).suffix.lower()}"
            if not path.exists():
                path.write_bytes(body)
            columns = columns_of(str(path))
            c1, c2 = st.columns(2)
            text_column = c1.selectbox("Text column", columns, key="w_cn_text_column")
            label_column = c2.selectbox("Label column", columns, index=min(1, len(columns) - 1), key="w_cn_label_col")
            data = read_data(str(path), text_column, label_column)
            names = sorted({r.label for r in data.rows if r.label is not None})
            c3, c4 = st.columns(2)
            label_a = c3.selectbox("Label of set A", names, key="w_cn_label_a")
            label_b = c4.selectbox("Label of set B", names, index=min(1, len(names) - 1), key="w_cn_label_b")
            rows = [r for r in data.rows if r.label is not None]
            sets = ConceptSets.from_table([r.text for r in rows], [r.label for r in rows], label_a, label_b, 500)
except WhyboxError as exc:
    problem = str(exc)
if problem:
    st.error(plain(problem))
    st.stop()
if sets is None:
    st.info("Fill in both sets (at least 2 texts each) to begin.")
    st.stop()
st.caption(
    f"**{plain(sets.name_a)}**: {len(sets.a)} texts · **{plain(sets.name_b)}**: {len(sets.b)} texts"
    + (" · kept as pairs" if sets.paired else "")
)

poolings = list(activations.POOLINGS)
default_pool = activations.default_pooling(handle)
if ss.cn_pooling not in poolings:
    ss.cn_pooling = default_pool
c1, c2 = st.columns(2)
pooling = c1.selectbox(
    "One vector per text from",
    poolings,
    format_func=lambda p: activations.POOLINGS[p] + (" (default here)" if p == default_pool else ""),
    key=bound("w_cn_pooling", "cn_pooling"),
)
methods = [m for m in DIRECTION_METHODS if sets.paired or m == "mean_diff"]
if ss.cn_method not in methods:
    ss.cn_method = methods[0]
method = c2.selectbox("Direction", methods, format_func=DIRECTION_METHODS.get, key=bound("w_cn_method", "cn_method"))


def _running(label: str):
    """A progress line and a Stop button for the model work in this block (Stop reruns the page)."""
    stop = st.empty()
    stop.button("Stop", icon=":material/stop:", key=f"cn_stop_{label}")
    bar = st.progress(0.0, text=f"{label}…")
    done = [0]

    def on_rows(n: int) -> None:
        done[0] += n
        bar.progress(min(1.0, done[0] / max(total[0], 1)), text=f"{label}: {done[0]:,} of {total[0]:,} model rows")

    total = [1]
    return watching(on_rows=on_rows), total, bar, stop


# ---- probes and directions ----------------------------------------------------------------------------------
st.header("Where is it? Probes and directions")
request = (handle.name, json.dumps(sets.to_dict()), pooling, method, int(ss.seed))
pressed = st.button("Read the layers", type="primary", icon=":material/layers:")
if pressed:
    watch, total, bar, stop = _running("Reading every layer")
    total[0] = sets.n
    live = st.empty()
    try:
        with watch:
            acts = concept_activations(handle, sets, pooling=pooling)
            done = []

            def shown(probe):  # each layer's probe as it comes
                done.append(probe)
                bar.progress(len(done) / len(acts.layers), text=f"Probing: layer {probe.layer} done")

            probe = probe_layers(acts, seed=int(ss.seed), on_layer=shown)
            found = directions(acts, method, seed=int(ss.seed))
        ss.cn_result = {"request": request, "acts": acts, "probe": probe, "directions": found}
    except WhyboxError as exc:
        views.show_error("Reading the layers", exc)
        st.stop()
    finally:
        stop.empty()
        bar.empty()
        live.empty()
result = ss.get("cn_result")
if not result:
    st.info(
        f"Press **Read the layers**: one batched pass over the {sets.n} texts reads every layer, then a probe "
        "and a direction are fitted per layer."
    )
    st.stop()
if result["request"] != request:
    st.caption("These results are for earlier sets or settings: press **Read the layers** to update them.")
acts, probe, found = result["acts"], result["probe"], result["directions"]
st.caption(
    f"Each text is one vector: {plain(acts.pooling_text)}."
    + (f" {acts.truncated} text(s) were cut to the model's length." if acts.truncated else "")
)
for note in probe.notes + found.notes:
    st.warning(plain(note))
best = probe.best
st.markdown(
    f"The best layer for a probe is **{best.layer}**: accuracy {best.accuracy:.0%} (95 % interval "
    f"{best.interval[0]:.0%}–{best.interval[1]:.0%}) against {best.control:.0%} for the same probe on shuffled "
    f"labels, a selectivity of **{best.selectivity:+.0%}**. A probe shows the concept can be read off that layer; "
    "it does not show the model uses it — steering and TCAV below ask that."
)
st.plotly_chart(concepts_view.probe_chart(probe), key="cn_probe_chart")
left, right = st.columns(2)
left.plotly_chart(concepts_view.direction_chart(found), key="cn_direction_chart")
layers = [d.layer for d in found.layers]
if ss.cn_layer not in layers:
    ss.cn_layer = found.best.layer
layer = right.select_slider("Layer to look at (and to use below)", layers, key=bound("w_cn_layer", "cn_layer"))
chosen = found.at(layer)
right.plotly_chart(concepts_view.projection_strip(chosen, sets.name_a, sets.name_b, sets.a, sets.b), key="cn_strip")
right.caption(
    f"{plain(found.method_text)}; held-out AUROC {chosen.auroc:.2f}, mean cosine among the training differences "
    f"{chosen.consistency:.2f} (low values predict unreliable steering, Braun et al. 2025)."
)

# ---- TCAV (classifier) or steering -------------------------------------------------------------------------------
downloads = {"sets": sets.to_dict(), "probe": probe.to_dict(), "directions": found.to_dict()}
if not lm:
    st.header("Does the label depend on it? TCAV")
    c1, c2 = st.columns(2)
    labels = list(handle.labels)
    if ss.cn_label not in labels:
        ss.cn_label = labels[-1]
    label = c1.selectbox("Label to explain", labels, key=bound("w_cn_label", "cn_label"))
    runs = c2.number_input("Concept/random splits", 2, 100, key=bound("w_cn_runs", "cn_runs"))
    st.caption(
        f"Random texts: set B ('{plain(sets.name_b)}'), so this is a relative concept; the class's texts: both sets. "
        "Each split fits a CAV on a fresh random sample; a two-sided t-test against random-vs-random CAVs says "
        "whether the score differs from chance."
    )
    if st.button("Run TCAV", icon=":material/science:"):
        watch, total, bar, stop = _running("TCAV")
        total[0] = 2 * sets.n
        try:
            with watch:
                ss.cn_tcav = tcav(
                    handle, list(sets.a), list(sets.b), [*sets.a, *sets.b], label, layer, int(runs),
                    int(ss.seed), acts.pooling, sets.name_a,
                )  # fmt: skip
        except WhyboxError as exc:
            views.show_error("TCAV", exc)
        finally:
            stop.empty()
            bar.empty()
    res = ss.get("cn_tcav")
    if res is not None:
        (st.success if res.significant else st.info)(plain(res.verdict))
        st.plotly_chart(concepts_view.tcav_chart(res), key="cn_tcav_chart")
        downloads["tcav"] = res.to_dict()

st.header("Does pushing along it change the output? Steering")
c1, c2 = st.columns(2)
prompts = c1.text_area(
    "Held-out prompts (one a line; 20 or more for tight intervals)", key=bound("w_cn_prompts", "cn_prompts"), height=150
)
target = c2.text_input(
    "Target (a label, or a continuation)", key=bound("w_cn_target", "cn_target"),
    placeholder="positive" if not lm else " good",
)  # fmt: skip
contrast = c2.text_input(
    "Against (optional)", key=bound("w_cn_contrast", "cn_contrast"), placeholder=" bad" if lm else handle.labels[0]
)
alpha_text = c2.text_input("Strengths α (comma-separated; 0 is added)", key=bound("w_cn_alpha", "cn_alpha"))
neutral, instruction = "", ""
if lm:
    neutral = st.text_area(
        "Neutral texts for the off-target cost (one a line)", key=bound("w_cn_neutral", "cn_neutral")
    )
    instruction = st.text_input(
        "Prompting baseline: the concept asked for in words", key=bound("w_cn_instruction", "cn_instruction"),
        placeholder="Write a positive review.",
    )  # fmt: skip
st.caption(f"α × the direction at layer {layer} is added at {POSITIONS}; α = 1 moves a text by one A − B gap.")
if st.button("Steer", icon=":material/tune:"):
    watch, total, bar, stop = _running("Steering")
    try:
        alphas = [float(x) for x in alpha_text.split(",") if x.strip()]
    except ValueError:
        st.error("Strengths are numbers separated by commas, e.g. -4,-2,2,4.")
        st.stop()
    lines = [x.strip() for x in prompts.splitlines() if x.strip()]
    total[0] = (len(alphas) + 1) * len(lines) * (2 if contrast.strip() else 1)
    try:
        with watch:
            ss.cn_steer = steer(
                handle, chosen.vector, layer, lines, target.strip() or (handle.labels[-1] if not lm else ""),
                contrast.strip() or None, alphas, [x for x in neutral.splitlines() if x.strip()],
                instruction.strip() or None, generate=20 if lm else 0,
            )  # fmt: skip
    except WhyboxError as exc:
        views.show_error("Steering", exc)
    finally:
        stop.empty()
        bar.empty()
rep = ss.get("cn_steer")
if rep is not None:
    d = rep.to_dict()
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "Steerability (slope per unit α)", f"{d['slope']:+.3f}",
        f"95 % interval {d['slope_low']:+.3f} to {d['slope_high']:+.3f}", delta_color="off", delta_arrow="off",
    )  # fmt: skip
    m2.metric("Prompts moved the wrong way", f"{d['wrong_way_share']:.0%}")
    if rep.off_target is not None:
        m3.metric("Off-target cost at the largest α", f"{rep.off_target[-1]:+.3f} nat/token")
    for note in rep.notes:
        st.warning(plain(note))
    st.plotly_chart(concepts_view.steering_chart(rep), key="cn_steer_chart")
    if rep.baseline is not None:
        b = rep.baseline.to_dict()
        top = rep.effects(len(rep.alphas) - 1)
        m, lo, hi = mean_interval(top)
        st.info(
            f"**Prompting baseline** ('{plain(b['instruction'])}'): mean change {b['mean_effect']:+.2f} (95 % interval "
            f"{b['effect_low']:+.2f} to {b['effect_high']:+.2f}), wrong way for {b['wrong_way_share']:.0%} of prompts; "
            f"steering at α = {rep.alphas[-1]:g}: {m:+.2f} ({lo:+.2f} to {hi:+.2f})."
        )
    if rep.generations:
        st.dataframe(concepts_view.generations_frame(rep), hide_index=True)
    downloads["steering"] = d


if not lm:  # the analyst's "does the model use X" report: each figure with what it does and does not show
    st.header("Does the model use it? The evidence side by side")
    rows = [
        (
            "Probe (best layer)",
            f"selectivity {best.selectivity:+.0%} at layer {best.layer}",
            "the concept can be read off the layer",
            "that the model uses it",
        )
    ]
    res = ss.get("cn_tcav")
    if res is not None:
        rows.append(
            (
                "TCAV",
                f"{res.mean:.0%} vs random {res.random_scores.mean():.0%}, p = {res.p_value:.2g}",
                f"the label's sensitivity to the direction at layer {res.layer}",
                "that the sensitivity matters for real texts' predictions",
            )
        )
    if ss.cn_sub.strip() and source == "substitution":
        from explainers.whatif.counterfactual import probe as substitution_probe

        flips = substitution_probe(handle, list(sets.a), ss.cn_sub)
        downloads["substitution_probe"] = flips.to_dict()
        rows.append(
            (
                "Substitution (What if)",
                f"flip rate {flips.flip_rate:.0%}, mean change of p {flips.mean_change:+.3f} "
                f"on {flips.n_changed} texts",
                "the output's dependence on these words, causally",
                "dependence on the concept beyond these words",
            )
        )
    rep = ss.get("cn_steer")
    if rep is not None:
        rows.append(
            (
                "Steering",
                f"slope {rep.to_dict()['slope']:+.3f}, wrong way {rep.wrong_way_share:.0%}",
                "that pushing along the direction moves the output",
                "that the model itself moves along it on real inputs",
            )
        )
    st.dataframe(pd.DataFrame(rows, columns=["evidence", "figure", "shows", "does not show"]), hide_index=True)

st.download_button(
    "Download JSON", data=dumps(downloads), file_name="whybox-concepts.json", mime="application/json",
    icon=":material/download:",
)  # fmt: skip
