"""What an audit shows, computed from its results file: prediction quality, which method to trust,
which words drive each label, and which examples to look at.

Scalar columns (one small row per record) are read at once; words and scores are streamed.
Intervals are 95 % percentile bootstrap intervals over texts, seeded.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from explainers.metrics.faithfulness import METRICS, PLAUSIBILITY, Report, rank_explanations, spearman

SUMMARY = "summary.json"
TEXTS = "texts.parquet"
N_BOOT = 1000
RELIABILITY_BINS = 10
TOP_WORDS = 15
SHORTCUT_SHARE = 0.3  # a word strong for one label that occurs this often in the other labels' texts
EXAMPLES = 10


# ---- while it runs ------------------------------------------------------------------------------
class RunningMeans:
    """What an audit has found so far, fed each step's records while it runs: every faithfulness metric's
    mean per method, and the accuracy on labelled texts. Sums and counts only: it holds nothing per text.
    The summary's means (with their intervals) replace it when the audit finishes."""

    def __init__(self, methods):
        self.methods = list(methods)
        self.metrics = [name for name, metric in METRICS.items() if metric.faithfulness]  # as the summary shows
        self._sums: dict[tuple[str, str], float] = defaultdict(float)
        self._counts: dict[tuple[str, str], int] = defaultdict(int)
        self.texts = self.labelled = self.correct = 0

    def add(self, records) -> None:
        texts = {}  # a text's records (one per method) come in the same step
        for record in records:
            texts.setdefault(record["row_id"], record)
            if record.get("error"):
                continue
            for metric in self.metrics:
                value = record.get(metric)
                if value is not None and math.isfinite(value):
                    self._sums[record["method"], metric] += value
                    self._counts[record["method"], metric] += 1
        for record in texts.values():
            self.texts += 1
            if record.get("label") is not None:
                self.labelled += 1
                self.correct += record["label"] == record["predicted"]

    def mean(self, method: str, metric: str) -> float | None:
        n = self._counts.get((method, metric), 0)
        return self._sums[method, metric] / n if n else None

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labelled if self.labelled else None


# ---- statistics --------------------------------------------------------------------------------
def bootstrap_mean(values, seed: int = 0, n_boot: int = N_BOOT, level: float = 0.95) -> dict:
    """Mean of the non-missing values with a percentile bootstrap interval."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return {"mean": None, "low": None, "high": None, "n": 0}
    means = _resampled_means(v[:, None], np.random.default_rng(seed), n_boot)[:, 0]
    low, high = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return {"mean": float(v.mean()), "low": float(low), "high": float(high), "n": int(len(v))}


def _resampled_means(matrix: np.ndarray, rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """(n_boot, columns) column means over resampled rows; rows resampled together (paired), in slices
    so that memory stays small on large audits."""
    n = len(matrix)
    out = np.empty((n_boot, matrix.shape[1]))
    step = max(1, 2_000_000 // max(n, 1))
    for start in range(0, n_boot, step):
        count = min(step, n_boot - start)
        idx = rng.integers(0, n, size=(count, n))
        out[start : start + count] = matrix[idx].mean(axis=1)
    return out


def reliability(confidence, correct, bins: int = RELIABILITY_BINS) -> dict:
    """Reliability curve over equal-width confidence bins, and the expected calibration error."""
    confidence = np.asarray(confidence, dtype=float)
    correct = np.asarray(correct, dtype=float)
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1], right=True), 0, bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        if not inside.any():
            continue
        conf, acc = float(confidence[inside].mean()), float(correct[inside].mean())
        rows.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "confidence": conf,
                "accuracy": acc,
                "count": int(inside.sum()),
            }
        )
        ece += inside.mean() * abs(acc - conf)
    return {"bins": rows, "ece": float(ece)}


def strict(value):
    """JSON-ready: NaN and infinities become null, numpy scalars plain numbers."""
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return None if not math.isfinite(float(value)) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# ---- the summary --------------------------------------------------------------------------------
def summarize(results: Path, labels: list[str], methods: list[str], seed: int = 0) -> dict:
    scalar = [
        "row_id",
        "text",
        "label",
        "method",
        "predicted",
        "confidence",
        "target_label",
        "error",
        *METRICS,
        *PLAUSIBILITY,
    ]
    frame = pq.read_table(results, columns=scalar).to_pandas()
    ok = frame[frame["error"].isna()]
    texts = frame.drop_duplicates("row_id").set_index("row_id").sort_index()
    summary = {
        "labels": labels,
        "methods": methods,
        "texts": int(len(texts)),
        "failed": {m: int(n) for m, n in frame[frame["error"].notna()].groupby("method").size().items()},
        "prediction": _prediction_quality(texts, labels),
        "metrics": _metric_means(ok, methods, seed),
        "plausibility": _plausibility(ok, methods, seed),
    }
    per_text_ranks = _per_text_ranks(ok, methods)
    summary["ranking"] = _ranking(per_text_ranks, methods, seed)
    words, agreement, disagreement = _word_pass(results, methods, labels, texts)
    summary["words"] = words
    summary["agreement"] = agreement
    table = _texts_table(texts, ok, disagreement, results)
    summary["examples"] = _examples(table, labels)
    table.to_parquet(results.parent / TEXTS, index=False)
    return strict(summary)


def _prediction_quality(texts, labels) -> dict:
    predicted_counts = {label: int((texts["predicted"] == label).sum()) for label in labels}
    labelled = texts[texts["label"].notna()]
    if labelled.empty:
        return {"labelled": 0, "predicted_counts": predicted_counts}
    correct = (labelled["label"] == labelled["predicted"]).to_numpy()
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for true, pred in zip(labelled["label"], labelled["predicted"]):
        matrix[index[true], index[pred]] += 1
    return {
        "labelled": int(len(labelled)),
        "accuracy": float(correct.mean()),
        "accuracy_interval": bootstrap_mean(correct.astype(float), seed=0),
        "confusion": {"labels": labels, "matrix": matrix.tolist()},  # rows: true label, columns: predicted
        "reliability": reliability(labelled["confidence"].to_numpy(), correct),
        "predicted_counts": predicted_counts,
    }


def _metric_means(ok, methods, seed) -> dict:
    out = {}
    for name, metric in METRICS.items():
        out[name] = {
            "title": metric.title,
            "direction": metric.direction,
            "faithfulness": metric.faithfulness,
            "methods": {
                m: bootstrap_mean(ok.loc[ok["method"] == m, name].to_numpy(dtype=float), seed) for m in methods
            },
        }
    return out


def _plausibility(ok, methods, seed) -> dict | None:
    if ok[list(PLAUSIBILITY)].notna().to_numpy().sum() == 0:
        return None
    return {
        name: {
            "title": metric.title,
            "methods": {
                m: bootstrap_mean(ok.loc[ok["method"] == m, name].to_numpy(dtype=float), seed) for m in methods
            },
        }
        for name, metric in PLAUSIBILITY.items()
    }


def _per_text_ranks(ok, methods) -> dict[int, dict[str, float]]:
    """row_id -> {method: mean rank over the faithfulness metrics} (rank_explanations, 1 = best), for
    texts that every method explained."""
    ranks = {}
    for row_id, group in ok.groupby("row_id"):
        if set(group["method"]) != set(methods):
            continue
        reports = [
            Report(
                method=r["method"],
                mode="",
                base_prob=0.0,
                values={m: float("nan") if r[m] is None else float(r[m]) for m in METRICS},
            )
            for r in group.to_dict("records")
        ]
        ranks[int(row_id)] = dict(rank_explanations(reports))
    return ranks


def _ranking(per_text: dict, methods: list[str], seed: int) -> dict | None:
    if len(methods) < 2 or not per_text:
        return None
    matrix = np.array([[ranks[m] for m in methods] for ranks in per_text.values()])
    boot = _resampled_means(matrix, np.random.default_rng(seed), N_BOOT)
    means = matrix.mean(axis=0)
    order = np.argsort(means, kind="stable")
    rows = [
        {
            "method": methods[i],
            "mean_rank": float(means[i]),
            "low": float(np.quantile(boot[:, i], 0.025)),
            "high": float(np.quantile(boot[:, i], 0.975)),
        }
        for i in order
    ]
    # Is the winner better than the runner-up? A paired interval of their rank difference over texts.
    best, second = order[0], order[1]
    diff = boot[:, second] - boot[:, best]
    low, high = float(np.quantile(diff, 0.025)), float(np.quantile(diff, 0.975))
    best_rank = matrix.min(axis=1, keepdims=True)
    winners = (matrix == best_rank) / (matrix == best_rank).sum(axis=1, keepdims=True)  # ties share a text
    return {
        "order": rows,
        "winner": methods[best],
        "runner_up": methods[second],
        "difference": {"mean": float(means[second] - means[best]), "low": low, "high": high},
        "separated": bool(low > 0),
        "most_faithful_share": {m: float(winners[:, i].mean()) for i, m in enumerate(methods)},
        "texts": int(len(matrix)),
    }


def _word_pass(results: Path, methods, labels, texts):
    """Stream words and scores once: per (method, target label, word) sums; per text the agreement
    between methods (Spearman over word scores)."""
    stats = defaultdict(lambda: np.zeros(4))  # (method, label, word) -> count, sum, sum of squares, normalised sum
    # word -> class of the text -> texts containing it. Counts, not sets of row ids: those would hold every
    # word of every text (memory growing with the data set). A text's words are the same for every method
    # (they come from its encoding), so its first record counts them, once per distinct word.
    texts_with = defaultdict(lambda: defaultdict(int))
    counted: set[int] = set()
    class_of = texts["label"].where(texts["label"].notna(), texts["predicted"]).to_dict()
    pending: dict[int, dict[str, list[float]]] = {}
    pair_values = defaultdict(list)
    disagreement = {}
    parquet = pq.ParquetFile(results)
    for batch in parquet.iter_batches(
        columns=["row_id", "method", "target_label", "words", "word_scores", "error"], batch_size=1024
    ):
        for r in batch.to_pylist():
            if r["error"] is not None:
                continue
            scores = np.asarray(r["word_scores"], dtype=float)
            top = np.abs(scores).max() if len(scores) else 0.0
            for word, score in zip(r["words"], scores):
                key = (r["method"], r["target_label"], word.lower())
                stats[key] += (1.0, score, score * score, score / top if top > 0 else 0.0)
            if r["row_id"] not in counted:
                counted.add(r["row_id"])
                for word in {w.lower() for w in r["words"]}:
                    texts_with[word][class_of[r["row_id"]]] += 1
            seen = pending.setdefault(r["row_id"], {})
            seen[r["method"]] = scores
            if len(seen) == len(methods):  # every method of this text is in: score agreement, then forget it
                values = []
                for i, a in enumerate(methods):
                    for b in methods[i + 1 :]:
                        rho = spearman(seen[a], seen[b])
                        pair_values[(a, b)].append(rho)
                        values.append(rho)
                finite = [v for v in values if v == v]
                disagreement[r["row_id"]] = 1 - float(np.mean(finite)) if finite else float("nan")
                del pending[r["row_id"]]
    matrix = np.eye(len(methods))
    for (a, b), values in pair_values.items():
        finite = [v for v in values if v == v]
        i, j = methods.index(a), methods.index(b)
        matrix[i, j] = matrix[j, i] = float(np.mean(finite)) if finite else float("nan")
    agreement = (
        {"methods": methods, "spearman": matrix.tolist(), "level": "word", "texts": int(len(disagreement))}
        if len(methods) > 1
        else None
    )
    return _top_words(stats, texts_with, methods, labels, len(texts)), agreement, disagreement


def _top_words(stats, texts_with, methods, labels, n_texts) -> dict:
    min_count = 3 if n_texts >= 30 else 1  # a word seen once or twice says little about a data set
    per_method = {m: {label: [] for label in labels} for m in methods}
    normalised = defaultdict(dict)  # (label, word) -> method -> mean normalised attribution
    for (method, label, word), (count, total, squares, norm) in stats.items():
        if count < min_count or label not in labels:
            continue
        mean = total / count
        spread = math.sqrt(max(squares / count - mean * mean, 0.0))
        per_method[method][label].append({"word": word, "mean": mean, "std": spread, "count": int(count)})
        normalised[(label, word)][method] = norm / count
    for method in per_method:
        for label in labels:
            per_method[method][label] = sorted(per_method[method][label], key=lambda w: -w["mean"])[:TOP_WORDS]
    consensus = {label: [] for label in labels}
    for (label, word), by_method in normalised.items():
        if len(by_method) == len(methods):  # agreed: every method saw it often enough
            classes = texts_with[word]
            total_texts = sum(classes.values())
            other = sum(count for cls, count in classes.items() if cls != label)
            consensus[label].append(
                {
                    "word": word,
                    "score": float(np.mean(list(by_method.values()))),
                    "texts": total_texts,
                    "other_label_share": other / total_texts if total_texts else 0.0,
                }
            )
    shortcuts = []
    for label in labels:
        consensus[label] = sorted(consensus[label], key=lambda w: -w["score"])[:TOP_WORDS]
        for w in consensus[label]:
            if w["score"] > 0 and w["other_label_share"] >= SHORTCUT_SHARE:
                shortcuts.append({"label": label, **w})
    return {
        "per_method": per_method,
        "consensus": consensus,
        "shortcuts": shortcuts,
        "min_count": min_count,
        "normalisation": "consensus scores: each text's word scores divided by its largest |score|, "
        "averaged per method, then over methods",
    }


def _texts_table(texts, ok, disagreement, results):
    """One row per text: what the examples table shows."""
    comp = ok.groupby("row_id")["comprehensiveness"].mean()
    table = texts[["text", "label", "predicted", "confidence"]].copy()
    table["correct"] = [
        None if label is None or label != label else bool(label == pred)
        for label, pred in zip(table["label"], table["predicted"])
    ]
    table["faithfulness"] = comp.reindex(table.index)
    table["disagreement"] = [disagreement.get(i, float("nan")) for i in table.index]
    return table.reset_index()


def _examples(table, labels) -> dict:
    def pick(frame, column, ascending):
        frame = frame[frame[column].notna()].sort_values(column, ascending=ascending, kind="stable")
        return [{k: v for k, v in row.items()} for row in frame.head(EXAMPLES).to_dict("records")]

    return {
        "misclassified": pick(table[table["correct"] == False], "confidence", False),  # noqa: E712 (nullable column)
        "least_confident": pick(table, "confidence", True),
        "least_faithful": pick(table, "faithfulness", True),
        "most_disagreement": pick(table, "disagreement", False),
    }


def write_summary(out: Path, summary: dict) -> None:
    tmp = out / f".{SUMMARY}.tmp"
    tmp.write_text(json.dumps(strict(summary), indent=2, ensure_ascii=False, allow_nan=False))
    os.replace(tmp, out / SUMMARY)
