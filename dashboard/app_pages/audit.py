"""Audit: explain and score every text of a data set, then see which method to trust, which words drive
each label, and which examples to look at. A finished audit is read back from disk, never recomputed."""

import hashlib
import json
import re
import time
from pathlib import Path

import pandas as pd
import streamlit as st
from explainers.models.builtin import cache_dir

from components import audit_view
from dashboard import views
from dashboard.sidebar import duration
from dashboard.widgets import plain
from explainers.audit.data import BUILTIN_SETS, columns_of, read_data
from explainers.audit.engine import Progress, default_store, estimate_cost, load_finished, run_audit
from explainers.audit.store import ResultStore
from explainers.audit.summary import TEXTS, RunningMeans
from explainers.audit.work import AuditSettings
from explainers.errors import WhyboxError
from explainers.methods import METHODS

AUDITS = cache_dir() / "audits"
AUDIT_METHODS = [m for m in METHODS if METHODS[m].family != "attention"]  # attention is not an explanation to score

st.title("Audit a data set")
st.caption(
    "Explain and score every text of a data set with the model chosen in the sidebar: prediction quality, "
    "which attribution method is faithful on this model on average, the words that drive each label, and "
    "the examples worth a look."
)
ss = st.session_state
handle = views.model()


def _finished_audits() -> dict[str, Path]:
    found = (
        sorted(AUDITS.glob("*/summary.json"), key=lambda p: p.stat().st_mtime, reverse=True) if AUDITS.is_dir() else []
    )
    out = {}
    for path in found:
        try:
            s = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        source = Path(s["data"]["source"]).name
        name = f"{s['settings']['model']} · {source} · {s['texts']:,} texts · {', '.join(s['methods'])}"
        out[name] = path.parent
    return out


with st.expander("Open a finished audit", expanded=False, icon=":material/history:"):
    finished = _finished_audits()
    if finished:
        pick = st.selectbox(
            "Finished audits (newest first)",
            list(finished),
            index=None,
            key="w_audit_pick",
            placeholder="Pick an audit…",
        )
        if pick and st.button("Open", key="open_audit"):
            ss.audit_dir = str(finished[pick])
    else:
        st.caption("No finished audit yet.")

# ---- what to audit --------------------------------------------------------------------------------
source = st.radio("Data", ["Built-in held-out sentences", "Upload a file"], horizontal=True, key="w_audit_source")
data, data_error = None, None
if source.startswith("Built-in"):
    st.caption(plain(BUILTIN_SETS["rt-heldout"]) + " Meant for the built-in `sentiment` model.")
    limit = st.number_input("Texts to audit", 10, 1000, 100, step=10, key="w_audit_limit")
    data_args = dict(source="builtin:rt-heldout", text_column="text", label_column="label", rationale_column=None)
else:
    upload = st.file_uploader(
        "CSV, JSONL or Parquet", type=["csv", "tsv", "jsonl", "ndjson", "parquet"], key="w_audit_upload"
    )
    if upload is None:
        st.info("Upload a file with one text per row, or pick the built-in held-out sentences.")
        st.stop()
    body = upload.getvalue()
    folder = AUDITS.parent / "audit-uploads"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{hashlib.sha256(body).hexdigest()[:16]}{Path(upload.name).suffix.lower()}"
    if not path.exists():
        path.write_bytes(body)
    try:
        columns = columns_of(str(path))
    except WhyboxError as exc:
        st.error(plain(str(exc)))
        st.stop()
    none = "(none)"
    c1, c2, c3 = st.columns(3)
    guess = next((c for c in columns if c.lower() in ("text", "sentence", "review", "content")), columns[0])
    text_column = c1.selectbox("Text column", columns, index=columns.index(guess), key="w_audit_text")
    label_column = c2.selectbox("Label column", [none, *columns], key="w_audit_label")
    rationale_column = c3.selectbox("Rationale column (marked words)", [none, *columns], key="w_audit_rationale")
    limit = st.number_input("Texts to audit (at most)", 1, 100_000, 200, step=50, key="w_audit_limit_file")
    data_args = dict(
        source=str(path),
        text_column=text_column,
        label_column=None if label_column == none else label_column,
        rationale_column=None if rationale_column == none else rationale_column,
    )

default_methods = [m for m in ss.methods if m in AUDIT_METHODS] or ["integrated_gradients", "lime", "occlusion"]
methods = st.multiselect(
    "Methods", AUDIT_METHODS, default=default_methods, key="w_audit_methods", format_func=lambda m: METHODS[m].title
)
try:
    data = read_data(limit=int(limit), **data_args)
    settings = AuditSettings(ss.model, tuple(methods), {}, int(ss.seed), ss.target.strip()).checked()
except WhyboxError as exc:
    st.error(plain(str(exc)))
    st.stop()
if not handle.labels:  # the audit's tables are per label
    st.error("The audit explains classifiers: pick a classification model in the sidebar.")
    st.stop()
if data.skipped:
    st.warning(f"Skipped rows: {plain(data.describe_skipped())}.")

key = json.dumps({"settings": settings.to_dict(), "data": data_args, "limit": int(limit)}, sort_keys=True)
out_dir = AUDITS / hashlib.sha256(key.encode()).hexdigest()[:16]


@st.cache_data(show_spinner="Estimating the cost…", max_entries=50)
def _estimate(key: str, store_parts: int, _data, _settings) -> dict:  # store_parts: a finished audit changes it
    return estimate_cost(handle, _data, _settings, ResultStore(default_store()))


cost = _estimate(key, len(ResultStore(default_store()).part_files()), data, settings)
to_compute = cost["texts"] - cost["stored"]
stored = f" ({cost['stored']:,} of {cost['texts']:,} already in the results store)" if cost["stored"] else ""
st.caption(
    f"**Estimated cost**: {to_compute:,} texts to compute{stored} × {len(methods)} methods, at most "
    f"{cost['rows']:,} model rows, {duration(cost['seconds'])} here (at the speed measured on this model). "
    "Model, seed and target come from the sidebar."
)

done_summary = load_finished(out_dir)
left, right = st.columns([1, 4])
start = left.button("Open audit" if done_summary else "Start audit", type="primary", icon=":material/play_arrow:")
if start and done_summary:
    ss.audit_dir = str(out_dir)
elif start:
    stop_slot = right.empty()
    stop_slot.button(
        "Stop",
        icon=":material/stop:",
        key="audit_stop",
        help="Stops within a model batch; finished chunks of texts are kept, and Start continues from there.",
    )
    bar = st.progress(0.0, text="Starting…")
    running, live = RunningMeans(methods), st.empty()  # what the texts computed so far say, chunk by chunk
    shown = {"share": 0.0, "text": "Starting…", "rows": 0, "drawn": 0.0}

    def draw() -> None:
        rows = f" · {shown['rows']:,} of at most {cost['rows']:,} model rows"
        bar.progress(shown["share"], text=shown["text"] + rows)
        shown["drawn"] = time.perf_counter()

    def rows_done(n: int) -> None:  # after each model batch: each redraw is where Streamlit's Stop takes effect
        shown["rows"] += n
        if time.perf_counter() - shown["drawn"] >= 0.5:
            draw()

    def show(p: Progress) -> None:
        rate = (p.done - p.reused) / p.elapsed if p.elapsed > 0 else 0.0
        eta = (p.total - p.done) / rate if rate > 0 else float("nan")
        speed = f" · {rate:.2f} texts/s, about {eta / 60:.1f} min left" if rate > 0 else ""  # once a chunk is done
        reused = f" ({p.reused:,} from the store)" if p.reused else ""
        running.add(p.records)
        accuracy = (
            f" · accuracy so far {running.accuracy:.2f} on {running.labelled:,}" if running.accuracy is not None else ""
        )
        shown["share"] = p.done / max(p.total, 1)
        shown["text"] = f"{p.done:,} of {p.total:,} texts{reused}{speed}{accuracy}"
        draw()
        if running.texts:
            live.plotly_chart(audit_view.running_means_chart(running))

    try:
        # Pressing Stop reruns the page, which interrupts this run at its next redraw; Start resumes it.
        result = run_audit(data, settings, out_dir, handle=handle, progress=show, on_rows=rows_done, resume=True)
    except WhyboxError as exc:
        st.error(plain(str(exc)))
        st.stop()
    stop_slot.empty()
    bar.empty()
    live.empty()  # the results below replace it, with their intervals
    ss.audit_dir = str(out_dir)
elif not done_summary and (out_dir / "audit.json").is_file():
    st.info("This audit was stopped before it finished: press **Start audit** to continue where it stopped.")

# ---- results -------------------------------------------------------------------------------------------
shown = ss.get("audit_dir")
summary = load_finished(shown) if shown else None
if summary is None:
    st.stop()
st.divider()
s = summary
cfg, src = s["settings"], s["data"]
st.header("Results")
st.caption(
    f"{plain(cfg['model'])} on {plain(Path(src['source']).name)}: {s['texts']:,} texts, methods "
    f"{plain(', '.join(METHODS[m].title for m in s['methods']))}, seed {cfg['seed']}, target "
    f"{plain(cfg['target'] or 'the predicted label')}, tokens removed by {cfg['mode']}."
)
if s.get("failed"):
    st.warning("Some explanations failed: " + plain(", ".join(f"{m}: {n}" for m, n in s["failed"].items())))

pred = s["prediction"]
if pred.get("labelled"):
    st.subheader("Prediction quality")
    ci = pred["accuracy_interval"]
    m1, m2, m3 = st.columns(3)
    m1.metric(
        "Accuracy",
        f"{pred['accuracy']:.3f}",
        f"95 % interval {ci['low']:.3f}–{ci['high']:.3f}",
        delta_color="off",
        delta_arrow="off",
    )
    m2.metric("Calibration error (ECE)", f"{pred['reliability']['ece']:.3f}")
    m3.metric("Labelled texts", f"{pred['labelled']:,}")
    c1, c2 = st.columns(2)
    c1.plotly_chart(audit_view.confusion_chart(pred), key="audit_confusion")
    c2.plotly_chart(audit_view.reliability_chart(pred), key="audit_reliability")

st.subheader("Which method to trust on this model")
ranking = s.get("ranking")
if ranking:
    d = ranking["difference"]
    verdict = "significantly" if ranking["separated"] else "**not** significantly"
    st.info(
        f"**{plain(METHODS[ranking['winner']].title)}** ranks best over {ranking['texts']:,} texts, {verdict} ahead "
        f"of {plain(METHODS[ranking['runner_up']].title)} (rank difference {d['mean']:.2f}, 95 % interval "
        f"{d['low']:.2f} to {d['high']:.2f}).",
        icon=":material/gavel:",
    )
    c1, c2 = st.columns(2)
    c1.plotly_chart(audit_view.ranking_chart(ranking), key="audit_ranking")
    share = pd.DataFrame(
        {
            "method": list(ranking["most_faithful_share"]),
            "texts where most faithful": list(ranking["most_faithful_share"].values()),
        }
    )
    c2.dataframe(
        share,
        hide_index=True,
        column_config={
            "texts where most faithful": st.column_config.ProgressColumn(format="percent", min_value=0.0, max_value=1.0)
        },
    )
    if s.get("agreement"):
        a = s["agreement"]
        c2.caption("Mean agreement between methods (Spearman over word scores, 1 = same order)")
        c2.dataframe(pd.DataFrame(a["spearman"], index=a["methods"], columns=a["methods"]).round(2))
faithful = [name for name, m in s["metrics"].items() if m["faithfulness"]]
for row in range(0, len(faithful), 2):
    for column, name in zip(st.columns(2), faithful[row : row + 2]):
        column.plotly_chart(audit_view.metric_intervals(s, name), key=f"audit_metric_{name}")
if s.get("plausibility"):
    st.subheader("Plausibility (agreement with the marked words)")
    st.dataframe(
        pd.DataFrame(
            {v["title"]: {m: v["methods"][m]["mean"] for m in s["methods"]} for v in s["plausibility"].values()}
        ).round(3)
    )

st.subheader("What drives each label")
words = s["words"]
st.caption(
    "Words with the largest attribution towards each label, agreed across methods (each text's scores "
    "divided by its largest, averaged). Orange: a possible shortcut, strong for this label yet frequent in "
    "the other labels' texts."
)
columns = st.columns(max(1, len(words["consensus"])))
for column, (label, entries) in zip(columns, words["consensus"].items()):
    if entries:
        column.plotly_chart(audit_view.top_words_chart(entries, f"Towards {label}"), key=f"audit_words_{label}")
    else:  # every method explains the predicted label (or the sidebar's): none may have been this one
        column.caption(f"Towards {plain(label)}: no word often enough in texts explained towards this label.")
if words["shortcuts"]:
    st.warning(
        "Possible shortcuts: "
        + ", ".join(
            f"“{plain(w['word'])}” → {plain(w['label'])} ({w['other_label_share']:.0%} of its texts are other labels)"
            for w in words["shortcuts"][:10]
        )
    )
with st.expander("Per method (mean raw attribution, spread and count)"):
    method = st.selectbox("Method", s["methods"], key="w_audit_words_method", format_func=lambda m: METHODS[m].title)
    for column, (label, entries) in zip(
        st.columns(len(words["per_method"][method])), words["per_method"][method].items()
    ):
        column.caption(f"Towards {plain(label)}")
        column.dataframe(pd.DataFrame(entries), hide_index=True)

st.subheader("Examples to look at")
texts = pd.read_parquet(Path(shown) / TEXTS)
frame = audit_view.examples_frame(texts, cfg)
f1, f2 = st.columns([1, 2])
which = f1.selectbox(
    "Show", ["all", "misclassified", "least confident", "least faithful", "methods disagree most"], key="w_audit_show"
)
word = f2.text_input("Containing the word", key="w_audit_word")
if which == "misclassified":
    frame = frame[frame["correct"] == "no"]
elif which == "least confident":
    frame = frame.sort_values("confidence")
elif which == "least faithful":
    frame = frame.sort_values("faithfulness")
elif which == "methods disagree most":
    frame = frame.sort_values("disagreement", ascending=False)
if word.strip():
    frame = frame[frame["text"].str.contains(rf"\b{re.escape(word.strip())}\b", case=False, regex=True)]
st.dataframe(
    frame,
    hide_index=True,
    height=420,
    column_config={
        "open": st.column_config.LinkColumn(
            "Explain", display_text="open ↗", help="Opens the Explain page with this text and the audit's settings"
        ),
        "confidence": st.column_config.NumberColumn(format="%.3f"),
        "faithfulness": st.column_config.NumberColumn(
            "comprehensiveness", format="%.3f", help="Mean over methods: higher = more faithful"
        ),
        "disagreement": st.column_config.NumberColumn(format="%.2f", help="1 − mean Spearman between methods"),
    },
)

st.subheader("Downloads")
d1, d2, d3, d4 = st.columns(4)
out = Path(shown)
d1.download_button(
    "Results (Parquet)", (out / "results.parquet").read_bytes(), "audit-results.parquet", width="stretch"
)
d2.download_button(
    "Results (CSV)", (out / "results.csv").read_bytes(), "audit-results.csv", mime="text/csv", width="stretch"
)
d3.download_button(
    "Summary (JSON)",
    (out / "summary.json").read_bytes(),
    "audit-summary.json",
    mime="application/json",
    width="stretch",
)
d4.download_button(
    "Report (HTML)", (out / "report.html").read_bytes(), "audit-report.html", mime="text/html", width="stretch"
)
