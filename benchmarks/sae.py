"""Sparse autoencoders: harvest and training throughput on a sample, and what a full build would take.

    .venv/bin/python -m benchmarks.sae --model sentiment --layer 3 --texts 400
    .venv/bin/python -m benchmarks.sae --model smollm2 --layer 15 --texts 200

Harvest: the layer's activations read through the gateway (stopping at the layer), tokens per second of
wall time and of this process's CPU time (the machine is shared: CPU time is the steadier figure).
Training: Adam steps of the TopK SAE (k = 32, 8×) with AuxK on those activations, tokens per second.
Then the projection for one pass over the built-in corpus, and the peak resident memory.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="sentiment")
    parser.add_argument("--layer", type=int, default=None)
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--steps", type=int, default=0, help="Adam steps to time (default: the least a build takes)")
    args = parser.parse_args()

    from explainers.inside import activations
    from explainers.inside.sae_train import Trainer, TrainSettings, corpus, token_rows
    from explainers.models.loading import load_model
    from explainers.serving.threads import apply_thread_policy

    threads = apply_thread_policy()
    handle = load_model(args.model, device="cpu")
    layer = handle.n_layers // 2 if args.layer is None else args.layer
    texts, _ = corpus()
    sample = token_rows(handle, texts[: args.texts])
    corpus_tokens = sum(len(r) for r in token_rows(handle, texts))

    wall, cpu = time.perf_counter(), time.process_time()
    x = torch.cat([a[0] for a in activations.read(handle, sample, [layer], stop_early=True)])
    harvest = {"tokens": len(x), "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}

    settings = TrainSettings()
    n = max(settings.batch_size * args.steps, 4 * settings.expansion * x.shape[1])  # the least a build trains on
    data = x.repeat((n // len(x)) + 1, 1)[:n]
    trainer = Trainer(x.shape[1], layer, handle.name, [1] * n, lambda chunk: data[chunk], TrainSettings(tokens=n))
    wall, cpu = time.perf_counter(), time.process_time()
    trainer.run()
    training = {"tokens": n, "wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu}

    def rate(part):
        return {
            "tokens_per_s_wall": part["tokens"] / part["wall_s"],
            "tokens_per_s_cpu": part["tokens"] / part["cpu_s"],
        }

    per_token_cpu = harvest["cpu_s"] / harvest["tokens"] + training["cpu_s"] / training["tokens"]
    print(
        json.dumps(
            {
                "model": handle.name,
                "layer": layer,
                "threads": threads,
                "load_average": os.getloadavg()[0],
                "d_in": x.shape[1],
                "d_sae": trainer.d_sae,
                "harvest": {**harvest, **rate(harvest)},
                "training": {**training, **rate(training)},
                "corpus_tokens": corpus_tokens,
                "one_pass_cpu_minutes": corpus_tokens * per_token_cpu / 60,
                "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
