"""Guide: what each method computes and each metric measures, from the registries, plus caveats."""

from pathlib import Path

import streamlit as st
from explainers.metrics.faithfulness import AOPC_NORMALISER, METRICS, MODES, PLAUSIBILITY

from dashboard.examples import EXAMPLES
from dashboard.widgets import plain
from explainers.conventions import conventions
from explainers.methods import DEFAULT_METHODS, FAMILIES, METHODS

st.title("Guide")
st.markdown(
    "whybox asks one question, *why did the model say that?*, and gets answers from several "
    "attribution methods. Each gives every word a score: **positive** (red) pushes the model towards "
    "the explained label, **negative** (blue) against it; unsigned methods (violet) only say how much a "
    "word matters. Then it checks which answers the model itself agrees with."
)

learn_tab, methods_tab, metrics_tab, conventions_tab, caveats_tab = st.tabs(
    ["Learn", "Methods", "Metrics", "Conventions", "Caveats"]
)
with learn_tab:
    st.caption("Lesson material: load an example with one click, then follow the walkthrough.")
    for i, (text, edited) in enumerate(EXAMPLES.items()):
        left, middle, right = st.columns([6, 1.3, 1.3], vertical_alignment="center")
        left.markdown(f"“{plain(text)}”")
        if middle.button("Explain it", key=f"learn_explain_{i}", icon=":material/lightbulb:"):
            st.session_state.text = text
            st.switch_page("app_pages/explain.py")
        if right.button("Compare", key=f"learn_compare_{i}", icon=":material/compare_arrows:"):
            st.session_state.w_cmp_a, st.session_state.w_cmp_b = text, edited
            st.switch_page("app_pages/compare.py")
    st.markdown((Path(__file__).resolve().parent.parent / "teaching.md").read_text(encoding="utf-8"))
with methods_tab:
    for family, description in FAMILIES.items():
        st.subheader(family.capitalize())
        st.caption(description)
        for method in (m for m in METHODS.values() if m.family == family):
            tags = " · ".join(
                tag
                for tag, on in (
                    ("default", method.name in DEFAULT_METHODS),
                    ("random: takes a seed", method.random),
                    ("unsigned", not method.signed),
                    ("experimental", bool(method.experimental)),
                )
                if on
            )
            st.markdown(f"**{method.title}**" + (f" — *{tags}*" if tags else "") + f"  \n{method.summary}")
            if method.experimental:
                st.caption(f"Caution: {method.experimental}")
            if method.scores_note:
                st.caption(method.scores_note)
            if method.params:
                st.caption(
                    "Parameters: "
                    + " · ".join(
                        f"`{p.name}` (default {'by length' if p.default is None else p.default}): {p.help}"
                        for p in method.params
                    )
                )

with metrics_tab:
    st.markdown(
        "**Faithfulness** (ERASER, DeYoung et al., 2020): does the explanation reflect the model? "
        "Computed by running the model on edited copies of the text, where tokens are:"
    )
    st.markdown("\n".join(f"- **{mode}**: {meaning}" for mode, meaning in MODES.items()))
    st.caption(AOPC_NORMALISER)

    def metric_list(metrics):
        return "\n".join(
            f"- **{m.title}** ({m.direction} is better, {m.low:g} to {m.high:g}): {m.meaning}" for m in metrics
        )

    st.markdown(metric_list(m for m in METRICS.values() if m.faithfulness))
    st.markdown("**Shape** of the explanation: easier to read, not more faithful.")
    st.markdown(metric_list(m for m in METRICS.values() if not m.faithfulness))
    st.markdown("**Plausibility**: does the explanation match the words *you* marked as important?")
    st.markdown(metric_list(PLAUSIBILITY.values()))

with conventions_tab:
    st.markdown(
        "How whybox computes the numbers it shows. The same notes travel in the JSON downloads and the "
        "CLI's `--json` output."
    )
    st.markdown("\n".join(f"- **{title}.** {text}" for title, text in conventions().items()))

with caveats_tab:
    st.markdown((Path(__file__).resolve().parent.parent / "guide.md").read_text(encoding="utf-8"))
