"""What if: what would change the answer. Live edits, minimal flips, substitutions, probes, LLM drafts,
a narration whose every sentence is checked against the numbers, and a model card.

Every counterfactual shown here was run through the model; only verified flips are called flips."""

import json

import streamlit as st
from explainers.models.handle import ModelHandle
from explainers.whatif import counterfactual as cf
from explainers.whatif.claims import summary as verdict_counts

from components.charts import comparison_chart, probability_chart
from components.live_text import live_text_area
from components.whatif_view import counterfactual_columns, counterfactual_frame, diff_html, verdicts_html
from dashboard import models, results, views, widgets
from dashboard.widgets import plain
from explainers.errors import WhyboxError
from explainers.methods import METHODS

ss = st.session_state
st.title("What if?")
st.caption(
    "What would have to change for the model to answer differently? Every edit below is run through the "
    "model, and only verified changes of the answer are called flips."
)

handle = views.model()
text = widgets.text_box("what_if", "Original text").strip()
if not views.check_text(handle, text):
    st.stop()


@st.cache_data(show_spinner=False, max_entries=200)
def _goal(model: str, text: str, target: str, threshold: float | None, _handle: ModelHandle) -> dict:
    goal = cf.make_goal(_handle, text, target or None, threshold)
    return {"label": goal.target.label, "p": goal.original_prob, "means": goal.describe(), "threshold": goal.threshold}


@st.cache_data(show_spinner=False, max_entries=200)
def _diff(model: str, original: str, edited: str, target: str, _handle: ModelHandle) -> dict:
    return cf.edit_diff(_handle, original, edited, target=target or None).to_dict()


def _found(key: str) -> list:
    """Counterfactuals stored by a tool on this page for the current model and text."""
    entry = ss.get(key)
    return entry[1] if entry and entry[0] == (ss.model, text) else None


def _verified(key: str) -> list:
    """The counterfactuals a tool on this page found for the current model and text (all verified)."""
    entry = ss.get(key)
    if not entry or entry[0] != (ss.model, text):
        return []
    found = entry[1]
    return found.flips if key == "wi_flips" else found.drafts if key == "wi_drafts" else list(found)


def _show_counterfactuals(items: list, label: str, key: str) -> None:
    frame = counterfactual_frame(items, ss.model, ss.methods, int(ss.seed), label)
    st.dataframe(frame, hide_index=True, column_config=counterfactual_columns(label), key=key)
    choice = st.selectbox(
        "Compare one with the original",
        range(len(items)),
        key=f"{key}_pick",
        format_func=lambda i: items[i].text,
        index=None,
        placeholder="Pick an edited text…",
    )
    if choice is not None and st.button("Open in Compare", key=f"{key}_go", icon=":material/compare_arrows:"):
        ss.w_cmp_a, ss.w_cmp_b, ss.w_cmp_kind = text, items[choice].text, "texts"
        ss.compared = None
        st.switch_page("app_pages/compare.py")


def _file_texts() -> list[str]:
    """Texts from an uploaded CSV, JSONL or plain-text file (an audit's data set, say), one column chosen."""
    import pandas as pd

    upload = st.file_uploader("CSV, JSONL or TXT (one text per line)", type=["csv", "jsonl", "txt"], key="w_wi_file")
    if upload is None:
        return []
    try:
        if upload.name.lower().endswith(".txt"):
            return [line for line in upload.getvalue().decode("utf-8").splitlines() if line.strip()]
        frame = pd.read_csv(upload) if upload.name.lower().endswith(".csv") else pd.read_json(upload, lines=True)
    except (UnicodeDecodeError, ValueError) as exc:
        st.error(f"Could not read {plain(upload.name)}: {plain(str(exc).splitlines()[0] if str(exc) else 'bad file')}")
        return []
    columns = [c for c in frame.columns if pd.api.types.is_string_dtype(frame[c]) or frame[c].dtype == object]
    if not columns:
        st.error(f"{plain(upload.name)} has no text column (columns: {plain(', '.join(map(str, frame.columns)))}).")
        return []
    column = st.selectbox("Text column", columns, key="w_wi_file_column")
    texts = [t for t in frame[column].tolist() if isinstance(t, str) and t.strip()]
    st.caption(f"{len(texts)} texts in column '{plain(str(column))}'.")
    return texts


target = ss.target
goal = _goal(ss.model, text, target, None, handle)
target_label = goal["label"].strip() or repr(goal["label"])
st.markdown(f"The model gives **{plain(target_label)}** p = {goal['p']:.3f}. A flip means {plain(goal['means'])}.")

live, flips_tab, subs_tab, probe_tab, llm_tab, words_tab, card_tab = st.tabs(
    [
        "Live edit",
        "Minimal flips",
        "Substitutions",
        "Substitution lists",
        "Language-model drafts",
        "Explanation in words",
        "Model card",
    ]
)

# ---- live edit: cheap (leave-one-out on both texts), so it runs on every change, cached ---------------------
with live:
    # Sent to Python 0.3 s after the last keystroke; a new original text starts a new edit from it.
    edited = live_text_area("Edit the text: the prediction follows as you type", "w_wi_edit", text).strip()
    if edited and edited != text:
        try:
            with st.spinner("Scoring the edit…"):
                diff = _diff(ss.model, text, edited, target, handle)
        except WhyboxError as exc:
            st.error(plain(str(exc)))
        else:
            before, after = diff["original"], diff["edited"]
            left, right = st.columns([2, 3])
            with left:
                st.metric(
                    f"p({target_label}) after the edit",
                    f"{after['target_prob']:.3f}",
                    f"{diff['change']:+.3f}",
                    delta_color="off",
                )
                if diff["flipped"]:
                    st.success(
                        f"Verified flip: the model now predicts **{plain(diff['label_after'])}** "
                        f"(was {plain(diff['label_before'])})."
                    )
                else:
                    st.info(f"Still **{plain(diff['label_after'])}**.")
            with right:
                st.plotly_chart(
                    probability_chart(after["probabilities"], target=after["target"]["label"]), key="wi_live_probs"
                )
            import pandas as pd

            frame = pd.DataFrame(diff["words"]).astype({"score_a": float, "score_b": float, "difference": float})
            frame.attrs.update(name_a="Original", name_b="Edited")
            st.caption(
                "Word by word: struck through = removed, underlined = added, yellow = changed; the tint of "
                "kept words is their change in leave-one-out score (hover for numbers)."
            )
            st.html(diff_html(frame))
            st.plotly_chart(comparison_chart(frame, "Original", "Edited"), key="wi_live_chart")
    else:
        st.info("Edit the text above: the new prediction and each word's change appear here without a button.")

# ---- minimal flips: the plan is shown before running -------------------------------------------------------
with flips_tab:
    n_words = len(cf.word_spans(text))
    c1, c2 = st.columns(2)
    budget = int(
        c1.number_input(
            "Budget (model calls)",
            1 + n_words,
            5000,
            max(cf.DEFAULT_BUDGET, 1 + n_words),
            key="w_wi_budget",
            help="Texts the search may run through the model.",
        )
    )
    threshold = (
        c2.number_input(
            f"…or a flip is p({target_label}) below",
            0.0,
            1.0,
            0.0,
            0.05,
            key="w_wi_threshold",
            help="0 = the predicted label must change (a causal LM: p halves).",
        )
        or None
    )
    planned = cf.plan_calls(n_words, budget)
    st.caption(
        f"Plan: at most **{planned} model calls** for {n_words} words (every single word, then up to "
        f"{cf.DEFAULT_BEAM} × {cf.DEFAULT_WIDTH} sets per size up to {cf.DEFAULT_MAX_SIZE} words, guided by "
        f"leave-one-out); brute force over every set of up to {cf.DEFAULT_MAX_SIZE} words would take "
        f"{cf.brute_force_calls(n_words, cf.DEFAULT_MAX_SIZE)}."
    )
    if st.button("Find minimal flips", type="primary", icon=":material/bolt:"):
        bar = st.progress(0.0, text="Starting…")
        try:
            result = cf.minimal_flips(
                handle,
                text,
                target or None,
                threshold,
                budget=budget,
                progress=lambda f, m: bar.progress(min(f, 1.0), text=m),
            )
            ss.wi_flips = ((ss.model, text), result)
        except WhyboxError as exc:
            st.error(plain(str(exc)))
        bar.empty()
    entry = ss.get("wi_flips")
    if entry and entry[0] == (ss.model, text):
        result = entry[1]
        st.caption(
            f"{result.model_calls} model calls of {result.planned_calls} planned, {result.seconds:.2f} s"
            + (" · the budget ran out" if result.exhausted else "")
        )
        if result.flips:
            st.success(f"{len(result.flips)} verified flip(s) removing {result.size} word(s).")
            _show_counterfactuals(result.flips, target_label, "wi_flips_table")
        else:
            st.warning("No flip found within the budget. The edits that moved the answer most:")
            _show_counterfactuals(result.closest, target_label, "wi_closest_table")

# ---- substitutions from the model's own embedding space -----------------------------------------------------
with subs_tab:
    c1, c2 = st.columns(2)
    n_sub_words = int(
        c1.number_input(
            "Words to replace", 1, 20, 4, key="w_wi_sub_words", help="The most important words by leave-one-out."
        )
    )
    per_word = int(c2.number_input("Neighbours per word", 1, 30, 8, key="w_wi_sub_per"))
    proposer = (
        "this checkpoint's masked-language-model head"
        if cf.masked_lm(handle) is not None
        else "the nearest whole-word tokens in the model's input-embedding space (cosine; this checkpoint "
        "has no masked-language-model head)"
    )
    st.caption(
        f"Replacements come from {proposer}. "
        f"Cost: {cf.substitution_calls(n_words, n_sub_words, per_word)} model calls at most."
    )
    if st.button("Find substitutions", icon=":material/swap_horiz:"):
        with st.spinner("Trying replacements…"):
            found, calls = cf.substitutions(handle, text, target or None, words=n_sub_words, per_word=per_word)
        ss.wi_subs = ((ss.model, text), found)
        ss.wi_subs_calls = calls
    found = _found("wi_subs")
    if found is not None:
        flips = sum(c.flipped for c in found)
        st.caption(f"{ss.wi_subs_calls} model calls · {flips} verified flip(s) among the {len(found)} kept.")
        if found:
            _show_counterfactuals(found, target_label, "wi_subs_table")
        else:
            st.info("No word of this text has embedding neighbours (words split into several tokens have none).")

# ---- substitution lists: fairness and robustness probes ---------------------------------------------------------
with probe_tab:
    spec = st.text_area(
        "Substitution list",
        "he -> she, she -> he, his -> her, her -> his, him -> her, man -> woman",
        key="w_wi_pairs",
        height=70,
        help="Pairs 'word -> replacement', separated by commas or new "
        "lines; all applied at once, whole words, case kept.",
    )
    sources = ["this text", "texts I paste", "a data file"] + (
        ["the held-out sentences (1000)"] if ss.model == "sentiment" else []
    )
    source = st.radio("Apply to", sources, horizontal=True, key="w_wi_probe_on")
    pasted = (
        st.text_area("Texts, one per line", key="w_wi_probe_texts", height=100) if source == "texts I paste" else ""
    )
    file_texts = _file_texts() if source == "a data file" else []
    if st.button("Run the probe", icon=":material/balance:"):
        from explainers.models.builtin import sentiment_splits

        texts = (
            [text]
            if source == "this text"
            else [t for t in pasted.splitlines() if t.strip()]
            if source == "texts I paste"
            else file_texts
            if source == "a data file"
            else [t for t, _ in sentiment_splits()[1]]
        )
        try:
            with st.spinner(f"Probing {len(texts)} text(s)…"):
                ss.wi_probe = (ss.model, cf.probe(handle, texts, spec))
        except WhyboxError as exc:
            st.error(plain(str(exc)))
    entry = ss.get("wi_probe")
    result = entry[1] if entry and entry[0] == ss.model else None  # a probe of another model is not shown
    if result is not None:
        m1, m2, m3 = st.columns(3)
        m1.metric("Texts changed by the list", f"{result.n_changed} of {result.n_texts}")
        m2.metric("Flip rate", "n/a" if result.flip_rate is None else f"{100 * result.flip_rate:.1f} %")
        m3.metric("Mean Δp(original label)", "n/a" if result.mean_change is None else f"{result.mean_change:+.4f}")
        if result.rows:
            import pandas as pd

            from components.whatif_view import explain_url

            st.dataframe(
                pd.DataFrame(
                    [
                        {
                            "Text": r.text,
                            "Edited": r.edited,
                            "Before": r.label_before,
                            "After": r.label_after,
                            "Δp": r.change,
                            "Flipped": r.flipped,
                            "Open": explain_url(ss.model, r.edited, ss.methods, int(ss.seed)),
                        }
                        for r in sorted(result.rows, key=lambda r: r.change)
                    ]
                ),
                hide_index=True,
                key="wi_probe_table",
                column_config={
                    "Δp": st.column_config.NumberColumn(format="%+.4f"),
                    "Open": st.column_config.LinkColumn(display_text="Explain ↗"),
                },
            )

# ---- drafts by a language model, verified ------------------------------------------------------------------------
with llm_tab:
    from explainers.whatif.llm import URL_ENV, endpoint_from_env

    endpoint = endpoint_from_env()
    who = f"the endpoint {endpoint.url} ({endpoint.model})" if endpoint else "the local built-in smollm2 (135 M)"
    st.caption(
        f"Drafts come from {who}, greedy. Each is run through the explained model: only verified flips are "
        f"labelled as flips. ({URL_ENV} configures an OpenAI-compatible endpoint.)"
    )
    if st.button("Draft counterfactuals", icon=":material/edit_note:"):
        try:
            with st.spinner("Drafting (tens of seconds on a CPU)…"):
                from explainers.whatif.llm import LocalGenerator

                gen = endpoint or LocalGenerator(models.get_model("smollm2"))
                ss.wi_drafts = ((ss.model, text), cf.draft_counterfactuals(handle, text, gen, target or None))
        except WhyboxError as exc:
            st.error(plain(str(exc)))
    entry = ss.get("wi_drafts")
    if entry and entry[0] == (ss.model, text):
        drafts = entry[1]
        m1, m2 = st.columns(2)
        m1.metric("Drafts tried", drafts.tried)
        m2.metric("Held (verified flips)", drafts.held)
        if drafts.drafts:
            _show_counterfactuals(drafts.drafts, target_label, "wi_drafts_table")
        else:
            st.info("The language model returned no usable rewrite.")

# ---- explanation in words, every sentence checked ------------------------------------------------------------------
with words_tab:
    from explainers.whatif.narration import AUDIENCES, narrate

    c1, c2, c3 = st.columns(3)
    method = c1.selectbox(
        "Method", ss.methods or ["leave_one_out"], key="w_wi_method", format_func=lambda m: METHODS[m].title
    )
    audience = c2.selectbox("Audience", list(AUDIENCES), key="w_wi_audience", format_func=AUDIENCES.get)
    writer = c3.segmented_control(
        "Written by", ["template", "language model"], default="template", key="w_wi_writer", required=True
    )
    if st.button("Explain in words", icon=":material/record_voice_over:"):
        req = results.current_request()
        req = results.Request(
            req.model, text, (method,), json.dumps({method: ss.params.get(method, {})}), req.seed, req.target
        )
        try:
            with st.spinner("Explaining and checking…"):
                exp = results.explain_one(handle, req, method)
                verified = [c for key in ("wi_flips", "wi_subs", "wi_drafts") for c in _verified(key)]
                gen = None
                if writer == "language model":
                    from explainers.whatif.llm import LocalGenerator, endpoint_from_env

                    gen = endpoint_from_env() or LocalGenerator(models.get_model("smollm2"))
                ss.wi_words = ((ss.model, text), narrate(exp, audience, gen, counterfactuals=verified))
        except WhyboxError as exc:
            st.error(plain(str(exc)))
    entry = ss.get("wi_words")
    if entry and entry[0] == (ss.model, text):
        narration = entry[1]
        counts = verdict_counts(narration.verdicts)
        st.caption(
            f"Written by {plain(narration.source)} in {narration.seconds:.1f} s · checked: "
            f"{counts['supported']} supported, {counts['unsupported']} unsupported, "
            f"{counts['not checkable']} not checkable"
            + (f" · fell back to the template: {plain(narration.fallback_reason)}" if narration.fallback_reason else "")
        )
        if counts["unsupported"]:
            st.warning("Some sentences are not backed by the numbers: they are marked ✘ below. Do not repeat them.")
        st.html(verdicts_html(narration.verdicts))

# ---- model card ---------------------------------------------------------------------------------------------------
with card_tab:
    st.caption(
        "Mitchell et al. (2019) sections, filled from the model's config, the built-in recipe and held-out "
        "accuracy, substitution probes, and an audit's summary.json when you name its folder. Drafted prose "
        "is marked for review."
    )
    c1, c2 = st.columns([3, 2])
    audit_dir = c1.text_input("Audit results folder (optional)", key="w_wi_audit", placeholder="/path/to/audit")
    prose_by = c2.segmented_control(
        "Prose written by", ["template", "language model"], default="template", key="w_wi_card_writer", required=True
    )
    if st.button("Build the model card", icon=":material/badge:"):
        from explainers.whatif.model_card import build_model_card

        try:
            with st.spinner(
                "Running the probes and filling the card…"
                + (" The language model drafts the prose (a minute on a CPU)." if prose_by != "template" else "")
            ):
                gen = None
                if prose_by == "language model":
                    from explainers.whatif.llm import LocalGenerator, endpoint_from_env

                    gen = endpoint_from_env() or LocalGenerator(models.get_model("smollm2"))
                ss.wi_card = (ss.model, build_model_card(handle, audit_dir=audit_dir.strip() or None, generator=gen))
        except WhyboxError as exc:
            st.error(plain(str(exc)))
    entry = ss.get("wi_card")
    if entry and entry[0] == ss.model:
        card = entry[1]
        prose = card.facts["prose"]
        checked = [s["counts"] for s in prose["sections"].values()]
        fallbacks = {s["fallback_reason"] for s in prose["sections"].values() if s["fallback_reason"]}
        st.caption(
            f"Prose by {plain(prose['source'])} in {prose['seconds']:.1f} s · every drafted sentence checked: "
            f"{sum(c['supported'] for c in checked)} supported, {sum(c['unsupported'] for c in checked)} unsupported, "
            f"{sum(c['not checkable'] for c in checked)} not checkable"
            + (f" · fell back to the template: {plain('; '.join(sorted(fallbacks)))}" if fallbacks else "")
        )
        if any(c["unsupported"] for c in checked):
            st.warning("Some drafted sentences are not backed by whybox's results: they are marked ✘ in the card.")
        left, right = st.columns(2)
        left.download_button(
            "Download the model card (Markdown)",
            card.to_markdown(),
            "model-card.md",
            "text/markdown",
            icon=":material/download:",
            width="stretch",
        )
        right.download_button(
            "Download the model card (HTML)",
            card.to_html(),
            "model-card.html",
            "text/html",
            icon=":material/description:",
            width="stretch",
        )
        with st.expander("Preview", expanded=True):
            st.markdown(card.to_markdown())  # escaped by the card; its HTML's styles would leak into the app

# ---- everything verified so far, in one download -------------------------------------------------------------------
found_any = {key: [c.to_dict() for c in _verified(key)] for key in ("wi_flips", "wi_subs", "wi_drafts")}
if any(found_any.values()):
    st.divider()
    st.download_button(
        "Download the counterfactuals (JSON)",
        json.dumps(
            {
                "model": ss.model,
                "text": text,
                "target": goal["label"],
                "p": goal["p"],
                "minimal_flips": found_any["wi_flips"],
                "substitutions": found_any["wi_subs"],
                "llm_drafts": found_any["wi_drafts"],
            },
            ensure_ascii=False,
            indent=2,
        ),
        "whybox-counterfactuals.json",
        "application/json",
        icon=":material/download:",
    )
