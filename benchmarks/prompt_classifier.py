"""smollm2 as a sentiment classifier (a prompt, label words) against the fine-tuned `sentiment` model, on
held-out Rotten Tomatoes sentences: accuracy, F1, expected calibration error (10 bins) and the label mass,
raw and with contextual calibration. The calibrated figures reuse the raw label probabilities (calibration
divides by the content-free input's), so one batched pass serves both.

    python -m benchmarks.prompt_classifier [N]      # N held-out sentences (default 500)
"""

from __future__ import annotations

import sys
import time

import numpy as np
from sklearn.metrics import accuracy_score, f1_score

from explainers.models.builtin import sentiment_splits
from explainers.models.loading import load_model
from explainers.models.prompt_classifier import calibrate


def ece(p_positive: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    confidence = np.maximum(p_positive, 1 - p_positive)
    correct = (p_positive >= 0.5).astype(int) == labels
    edges = np.linspace(0.5, 1.0, bins + 1)
    total = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (confidence >= lo) & ((confidence < hi) | (hi == 1.0))
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(total)


def row(name: str, p_positive: np.ndarray, labels: np.ndarray, extra: str = "") -> str:
    predicted = (p_positive >= 0.5).astype(int)
    acc, f1 = accuracy_score(labels, predicted), f1_score(labels, predicted)
    return f"{name:<34} {acc:8.3f} {f1:8.3f} {ece(p_positive, labels):8.3f}  {extra}"


def main(n: int = 500) -> None:
    _, heldout = sentiment_splits()
    chosen = heldout[:: max(1, len(heldout) // n)][:n]  # spread over the held-out split (it is ordered)
    texts, labels = [t for t, _ in chosen], np.array([y for _, y in chosen])
    print(f"{n} held-out sentences\n{'model':<34} {'accuracy':>8} {'F1':>8} {'ECE':>8}  label mass / time")
    started = time.perf_counter()
    fine_tuned = load_model("sentiment")
    print(f"positives: {labels.mean():.2f}")
    probs = fine_tuned.predict_proba(texts)
    print(
        row(
            "sentiment (fine-tuned MiniLM)",
            probs[:, fine_tuned.labels.index("positive")],
            labels,
            f"{time.perf_counter() - started:.0f} s",
        )
    )
    started = time.perf_counter()
    prompted = load_model("smollm2-sentiment")
    task = prompted.task
    raw = prompted.score_ids([prompted.encode(t).ids for t in texts], None)  # (N, L) raw label probabilities
    seconds = time.perf_counter() - started
    mass = raw.sum(1)
    k = task.labels.index("positive")
    print(
        row(
            "smollm2 prompt, raw",
            task.normalise(raw)[:, k],
            labels,
            f"mass median {np.median(mass):.3f} (min {mass.min():.3f}); {seconds:.0f} s",
        )
    )
    calibrate(prompted)
    print(
        row(
            "smollm2 prompt, calibrated (N/A)",
            task.normalise(raw)[:, k],
            labels,
            f"content-free: {dict(zip(task.labels, np.round(task.calibration, 3).tolist()))}",
        )
    )
    print(f"template: {task.spec.template!r}; labels {task.labels}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 500)
