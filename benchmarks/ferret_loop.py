"""ferret's own per-text loop, for the audit benchmark's (b): `Benchmark.explain`'s explainers and
`evaluate_explanations`, one text at a time, as ferret's README shows them.

ferret-xai 0.4.2 pins transformers<5, captum<0.8 and numpy<2, so it cannot sit beside whybox's stack; this
script runs in an environment of its own and imports nothing of whybox's:

    python3.11 -m venv ferret-venv
    ferret-venv/bin/pip install torch==2.13.0 ferret-xai==0.4.2
    .venv/bin/python -m benchmarks.audit --configs local,ferret --ferret-python ferret-venv/bin/python

It reads {"model": folder, "texts": [...], "threads": n} as JSON on stdin and prints one JSON line.
`Benchmark.explain` passes no arguments to its explainers (LIME would draw min(tokens², 5000) samples),
so the loop calls the same explainers itself with the issue's IG 50 steps and LIME 1,000 samples, then
L1-normalises as `explain` does. ferret has no occlusion explainer; its faithfulness suite is AOPC
comprehensiveness, AOPC sufficiency and tau leave-one-out (the plausibility metrics need rationales).
"""

from __future__ import annotations

import json
import resource
import sys
import time


def main() -> None:
    job = json.load(sys.stdin)
    import torch
    from ferret import (
        AOPC_Comprehensiveness_Evaluation,
        AOPC_Sufficiency_Evaluation,
        Benchmark,
        IntegratedGradientExplainer,
        LIMEExplainer,
        TauLOO_Evaluation,
    )
    from ferret.benchmark import lp_normalize
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    tokenizer = AutoTokenizer.from_pretrained(job["model"])
    model = AutoModelForSequenceClassification.from_pretrained(job["model"]).eval()
    ig, lime = IntegratedGradientExplainer(model, tokenizer), LIMEExplainer(model, tokenizer)
    evaluators = [
        evaluator(model, tokenizer)
        for evaluator in (AOPC_Comprehensiveness_Evaluation, AOPC_Sufficiency_Evaluation, TauLOO_Evaluation)
    ]
    bench = Benchmark(model, tokenizer, explainers=[ig, lime], evaluators=evaluators)
    seen = {"calls": 0, "rows": 0, "gradient_rows": 0, "tokens": 0, "padded_tokens": 0}

    def count(_module, args, kwargs):  # what went through the model, as the whybox side counts it
        x = kwargs.get("input_ids") if kwargs.get("input_ids") is not None else kwargs.get("inputs_embeds")
        x = x if x is not None else args[0]
        mask = kwargs.get("attention_mask")
        seen["calls"] += 1
        seen["rows"] += x.shape[0]
        seen["gradient_rows"] += x.shape[0] if torch.is_grad_enabled() else 0
        seen["tokens"] += int(mask.sum()) if mask is not None else x.shape[0] * x.shape[1]
        seen["padded_tokens"] += x.shape[0] * x.shape[1]

    model.register_forward_pre_hook(count, with_kwargs=True)
    wall, cpu = time.perf_counter(), time.process_time()
    for text in job["texts"]:
        target = _predicted(bench, text)
        explanations = lp_normalize(
            [
                ig(text, target, call_args={"n_steps": 50}),
                lime(text, target, call_args={"num_samples": 1000}),
            ]
        )
        bench.evaluate_explanations(explanations, target=target, show_progress=False)
    print(
        json.dumps(
            {
                "seconds": time.perf_counter() - wall,
                "cpu_seconds": time.process_time() - cpu,
                "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                "model": seen,
            }
        )
    )


def _predicted(bench, text: str) -> int:
    _, logits = bench.helper._forward(text, output_hidden_states=False)
    return int(logits.argmax(-1)[0])


if __name__ == "__main__":
    main()
