"""Concepts: CPU seconds of the concept work, and what it finds for sentiment on the built-in data.

    .venv/bin/python -m benchmarks.concepts [--models sentiment,smollm2] [--texts 200] [--prompts 20] [--json]

Per model: reading the pooled residual stream of --texts built-in sentences (half positive, half negative)
at every layer in one batched pass vs a per-text loop (the same numbers, checked), probes at every layer
(5 folds + 5 control shuffles), mean-difference directions, and TCAV with 15 splits (classifiers). For a
causal LM: a steering sweep (5 α × --prompts prompts, target log p(' good') − log p(' bad')) with its
reliability statistics, the off-target cost on neutral text and a prompting baseline, and greedy
generation of --new-tokens tokens for every prompt at every α. Seconds are process CPU seconds (all
threads) and wall seconds; figures are single runs on whatever machine runs this.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from explainers.generation.tokens import generate_greedy
from explainers.inside import activations
from explainers.inside.concepts import ConceptSets, all_layers, concept_activations, directions
from explainers.inside.probes import probe_layers
from explainers.inside.steering import steer
from explainers.inside.tcav import tcav
from explainers.models.loading import load_model

PROMPTS = [
    "I watched the film last night. It was",
    "The new restaurant on the corner is",
    "My opinion of the book: it is",
    "The concert yesterday was",
    "Honestly, the ending of the movie was",
    "The acting in this series is",
    "Our hotel room turned out to be",
    "The customer service I got was",
    "This album sounds",
    "The plot of the novel is",
    "The weather on our trip was",
    "The new phone feels",
    "The lecture this morning was",
    "Dinner at my aunt's house was",
    "The game last weekend was",
    "The museum exhibition is",
    "The sequel, compared to the original, is",
    "The coffee at this place is",
    "The play we saw was",
    "The documentary was",
]
NEUTRAL = [
    "The train leaves the station at nine in the morning.",
    "Water boils at one hundred degrees Celsius at sea level.",
    "The library is on the second floor of the building.",
    "Paris is the capital of France.",
    "The meeting has been moved to Thursday afternoon.",
    "A week has seven days.",
    "The report lists the sales figures for each region.",
    "She put the keys on the kitchen table.",
    "The bridge crosses the river near the old mill.",
    "Most trains run every fifteen minutes.",
]
INSTRUCTION = "Write a positive review."


def timed(secs: dict, key: str, fn):
    """fn(), its process CPU and wall seconds kept in secs[key + "_cpu" / "_wall"] and said on stderr at once."""
    cpu, wall = time.process_time(), time.perf_counter()
    out = fn()
    secs[key + "_cpu"], secs[key + "_wall"] = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{key}: {secs[key + '_cpu']:.1f} CPU s, {secs[key + '_wall']:.1f} s", file=sys.stderr, flush=True)
    return out


def bench_model(name: str, n_texts: int, n_prompts: int, new_tokens: int, alphas: list[float]) -> dict:
    handle = load_model(name, device="cpu")
    sets = ConceptSets.from_builtin(limit=n_texts // 2)
    layers = all_layers(handle)
    pooling = activations.default_pooling(handle)
    seqs = [handle.encode(t).ids for t in (*sets.a, *sets.b)]
    out: dict = {"model": name, "texts": len(seqs), "layers": len(layers), "pooling": pooling, "seconds": {}}
    secs = out["seconds"]
    batched = timed(secs, "read_batched", lambda: activations.read_pooled(handle, seqs, layers, pooling))
    looped = timed(
        secs, "read_loop", lambda: np.concatenate([activations.read_pooled(handle, [s], layers, pooling) for s in seqs])
    )
    out["read_max_difference"] = float(np.abs(batched - looped).max())
    acts = concept_activations(handle, sets, layers, pooling)
    probe = timed(secs, "probes", lambda: probe_layers(acts))
    found = timed(secs, "directions", lambda: directions(acts))
    out["probe"] = [
        {"layer": p.layer, "accuracy": p.accuracy, "low": p.interval[0], "high": p.interval[1], "control": p.control}
        for p in probe.layers
    ]
    out["direction_auroc"] = [{"layer": d.layer, "auroc": d.auroc, "consistency": d.consistency} for d in found.layers]
    n = len(layers) - 1
    middle = [d for d in found.layers if n // 4 <= d.layer <= 3 * n // 4]
    layer = max(middle, key=lambda d: d.auroc).layer  # steer in the middle of the model, as CAA does
    out["layer"] = layer
    if not handle.task.generates:
        rest = ConceptSets.from_builtin(limit=n_texts, split="train")
        random_texts = [t for t in (*rest.a, *rest.b) if t not in set(sets.a)][: 2 * len(sets.a)]
        res = timed(
            secs, "tcav15", lambda: tcav(handle, list(sets.a), random_texts, list(sets.a), "positive", layer, runs=15)
        )
        out["tcav"] = {k: v for k, v in res.to_dict().items() if k not in ("scores", "random_scores")}
        return out
    prompts = PROMPTS[:n_prompts]
    rep = timed(
        secs,
        "steer",
        lambda: steer(
            handle, found.at(layer).vector, layer, prompts, "good", "bad", alphas, NEUTRAL, INSTRUCTION, generate=0
        ),
    )
    d = rep.to_dict()
    out["steering"] = {
        k: d[k]
        for k in ("layer", "alphas", "metric", "vector_norm", "slope", "slope_low", "slope_high", "wrong_way_share")
    }
    out["steering"]["off_target"] = d["off_target_loglik_change"]
    out["steering"]["degenerate_alphas"] = d["degenerate_alphas"]
    out["steering"]["prompt_baseline"] = {k: v for k, v in d["prompt_baseline"].items() if k != "effects"}
    out["steering"]["effects"] = d["effects"]
    vector = torch.as_tensor(found.at(layer).vector, dtype=torch.float32)

    def sweep():
        texts = {}
        for alpha in rep.alphas:
            with activations.adding(handle, {layer: alpha * vector}):
                texts[alpha] = [
                    handle.tokenizer.decode(generate_greedy(handle, handle.encode(p), new_tokens)) for p in prompts
                ]
        return texts

    texts = timed(secs, "generate_sweep", sweep)
    out["generations_first_prompt"] = {str(a): t[0] for a, t in texts.items()}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="sentiment,smollm2")
    parser.add_argument("--texts", type=int, default=200)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--new-tokens", type=int, default=20)
    parser.add_argument("--alpha", default="-2,-1,1,2", help="0 is added: 5 strengths by default")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    alphas = [float(x) for x in args.alpha.split(",")]
    results = [bench_model(m, args.texts, args.prompts, args.new_tokens, alphas) for m in args.models.split(",")]
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    for r in results:
        s = r["seconds"]
        print(f"\n== {r['model']}: {r['texts']} texts, {r['layers']} layers, pooling {r['pooling']}")
        print("work                               cpu s    wall s")
        for key in sorted({k.rsplit("_", 1)[0] for k in s}):
            print(f"{key:<32} {s[key + '_cpu']:>8.2f} {s[key + '_wall']:>9.2f}")
        print(f"batched vs loop: max |difference| {r['read_max_difference']:.2e}")
        print("layer  probe acc [95 % CI]     control  dir AUROC")
        for p, d in zip(r["probe"], r["direction_auroc"], strict=True):
            print(
                f"{p['layer']:>5}  {p['accuracy']:.3f} [{p['low']:.3f}, {p['high']:.3f}]  {p['control']:.3f}  "
                f"{d['auroc']:.3f}"
            )
        if "tcav" in r:
            t = r["tcav"]
            print(
                f"TCAV layer {t['layer']}: {t['tcav_score']:.3f} vs random {t['random_score']:.3f}, "
                f"p = {t['p_value']:.3g}"
            )
        if "steering" in r:
            st = r["steering"]
            b = st["prompt_baseline"]
            print(
                f"steering layer {st['layer']} (|v| = {st['vector_norm']:.2f}): slope {st['slope']:+.3f} "
                f"[{st['slope_low']:+.3f}, {st['slope_high']:+.3f}] per unit α, wrong way {st['wrong_way_share']:.0%}"
            )
            print(
                "off-target Δ log-lik/token per α: "
                + ", ".join(f"{a:g}: {c:+.3f}" for a, c in zip(st["alphas"], st["off_target"], strict=True))
            )
            print(
                f"prompt baseline '{b['instruction']}': {b['mean_effect']:+.3f} [{b['effect_low']:+.3f}, "
                f"{b['effect_high']:+.3f}], wrong way {b['wrong_way_share']:.0%}"
            )
            for e in st["effects"]:
                print(
                    f"  α {e['alpha']:+g}: mean change {e['mean_effect']:+.3f} "
                    f"[{e['effect_low']:+.3f}, {e['effect_high']:+.3f}]"
                )
            for a, t in r["generations_first_prompt"].items():
                print(f"  α {float(a):+g}: {t!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
