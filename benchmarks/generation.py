"""Generated text explained token by token: whybox vs Captum's LLM attribution on smollm2.

    .venv/bin/python -m benchmarks.generation [--model smollm2] [--new-tokens 10] [--repeats 3] [--json]

A 25-token prompt, 10 greedily generated tokens. Occlusion of each prompt token for every generated
token: whybox (every generated token read from one teacher-forced forward per perturbed row, rows
batched) vs Captum's `LLMAttribution(FeatureAblation)` with its defaults (token by token with a KV
cache, one row at a time) and with `use_cached_outputs=False` (the same maths as whybox, uncached).
Integrated gradients for all 10 tokens: whybox (one interpolation serves every token, a backward per
token) vs Captum's `LLMGradientAttribution(LayerIntegratedGradients)` loop (one IG per token). Both
pairs are checked to give the same numbers; the ratios are printed. Timings: median of --repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch
from explainers.generation.tokens import explain_generation, generate_greedy
from explainers.models.loading import load_model

PROMPT = (
    "The museum in the old town opened its doors again after the long winter, and the first visitors "
    "walked slowly through the quiet rooms to see"
)


def timed(fn, repeats: int):
    times, result = [], None
    for _ in range(repeats):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--prompt-tokens", type=int, default=25)
    parser.add_argument("--new-tokens", type=int, default=10)
    parser.add_argument("--n-steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--captum-repeats", type=int, default=1)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--only", default="occlusion,ig,faithfulness", help="sections: occlusion, ig, faithfulness (comma-separated)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch's choice)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    sections = {s.strip() for s in args.only.split(",")}

    from captum.attr import TextTokenInput

    handle = load_model(args.model, device=args.device)
    tok, model = handle.tokenizer, handle.model
    ids = tok(PROMPT, add_special_tokens=False)["input_ids"][: args.prompt_tokens]
    prompt = tok.decode(ids)
    enc = handle.encode(prompt)
    generated = generate_greedy(handle, enc, args.new_tokens)
    fill = handle.baseline_token_id()
    inp = TextTokenInput(prompt, tok, baselines=fill)
    assert inp.inp_tensor[0].tolist() == enc.ids, "Captum and whybox must read the same prompt tokens"
    target = torch.tensor(generated)

    def ours(method, **params):
        return explain_generation(handle, prompt, method, continuation_ids=generated, **params)

    rows = {}
    say = (lambda *a: None) if args.json else lambda text: print(text, flush=True)
    say(
        f"{handle.name} on {handle.device} ({torch.get_num_threads()} threads): {enc.n_tokens}-token prompt, "
        f"{len(generated)} generated tokens {tok.decode(generated)!r}"
    )
    if "occlusion" in sections:
        rows["occlusion"] = _occlusion(args, ours, fa_inputs=(inp, target), model=model, tok=tok, enc=enc)
        o = rows["occlusion"]
        say(
            f"occlusion per output token: whybox {o['whybox_s']:.2f}s | Captum LLMAttribution(FeatureAblation) "
            f"defaults {o['captum_default_s']:.2f}s ({o['speedup_vs_default']:.1f}x), uncached "
            f"{o['captum_uncached_s']:.2f}s ({o['speedup_vs_uncached']:.1f}x)"
        )
        say(
            f"  same results: max |diff| vs Captum uncached {o['max_abs_diff_vs_uncached']:.2e}; vs Captum defaults "
            f"{o['max_abs_diff_vs_default']:.2e} (first token {o['max_abs_diff_first_token_vs_default']:.2e}: the "
            "cached path reads later tokens differently on transformers 5)"
        )
    if "ig" in sections:
        rows["integrated_gradients"] = _ig(args, ours, inp, target, model, tok, enc)
        g = rows["integrated_gradients"]
        say(
            f"integrated gradients, all {len(generated)} tokens, {args.n_steps} steps: whybox {g['whybox_s']:.2f}s | "
            f"Captum LLMGradientAttribution loop {g['captum_s']:.2f}s ({g['speedup']:.1f}x); max |diff| "
            f"{g['max_abs_diff']:.2e} (scores up to {g['max_abs_score']:.2f})"
        )
    if "faithfulness" in sections:
        rows["faithfulness"] = _faithfulness(args, handle, ours)
        f = rows["faithfulness"]
        say(
            f"faithfulness of each output token and the continuation (comprehensiveness + sufficiency): "
            f"{f['rows']} rows in {f['whybox_s']:.2f}s, vs {f['explanation_s']:.2f}s for the occlusion it judges; "
            f"one forward per row would take {f['per_row_s']:.2f}s ({f['speedup']:.1f}x)"
        )
    if args.json:
        print(
            json.dumps(
                {
                    "model": handle.name,
                    "device": str(handle.device),
                    "threads": torch.get_num_threads(),
                    "prompt_tokens": enc.n_tokens,
                    "generated_tokens": len(generated),
                    "generated": tok.decode(generated),
                    "results": rows,
                },
                indent=2,
            )
        )
    return 0


def _faithfulness(args, handle, ours) -> dict:
    """The metrics of a generation explanation: one batched teacher-forced pass over the de-duplicated rows,
    against scoring the same rows one forward each."""
    from explainers.metrics.generation import evaluate_generation, plan

    explanation_s, gen = timed(lambda: ours("occlusion", window=1), args.repeats)
    seconds, report = timed(lambda: evaluate_generation(handle, gen), args.repeats)
    rows = plan(handle, gen)[0]
    built = [rows.build(removed) for removed in rows.index]

    def one_by_one():
        return [handle.gateway.token_logprobs([ids], [reads]) for ids, reads, _ in built]

    per_row_s, _ = timed(one_by_one, args.repeats)
    return {
        "rows": report.forward_rows,
        "whybox_s": seconds,
        "explanation_s": explanation_s,
        "per_row_s": per_row_s,
        "speedup": per_row_s / seconds,
        "continuation": report.continuation_values,
    }


def _occlusion(args, ours, fa_inputs, model, tok, enc) -> dict:
    from captum.attr import FeatureAblation, LLMAttribution

    inp, target = fa_inputs
    ours("occlusion", window=1)  # warm-up
    t_ours, occ = timed(lambda: ours("occlusion", window=1), args.repeats)
    fa = LLMAttribution(FeatureAblation(model), tok)
    t_cap, cap_default = timed(lambda: fa.attribute(inp, target=target), args.captum_repeats)
    t_cap_nc, cap_uncached = timed(
        lambda: fa.attribute(inp, target=target, use_cached_outputs=False), args.captum_repeats
    )
    ours_prompt = occ.scores[:, : enc.n_tokens]
    row = {
        "whybox_s": t_ours,
        "captum_default_s": t_cap,
        "captum_uncached_s": t_cap_nc,
        "speedup_vs_default": t_cap / t_ours,
        "speedup_vs_uncached": t_cap_nc / t_ours,
        "max_abs_diff_vs_uncached": float(np.abs(ours_prompt - cap_uncached.token_attr.cpu().numpy()).max()),
        "max_abs_diff_vs_default": float(np.abs(ours_prompt - cap_default.token_attr.cpu().numpy()).max()),
        "max_abs_diff_first_token_vs_default": float(
            np.abs(ours_prompt[0] - cap_default.token_attr.cpu().numpy()[0]).max()
        ),
    }

    return row


def _ig(args, ours, inp, target, model, tok, enc) -> dict:
    from captum.attr import LayerIntegratedGradients, LLMGradientAttribution

    t_ours, ig = timed(lambda: ours("integrated_gradients", n_steps=args.n_steps), args.repeats)
    lig = LLMGradientAttribution(LayerIntegratedGradients(model, model.get_input_embeddings()), tok)
    # Captum's input is an indicator (1 = the token, anything else = TextTokenInput's baseline token)
    absent = torch.zeros_like(inp.to_tensor())
    t_cap, cap_ig = timed(
        lambda: lig.attribute(inp, target=target, n_steps=args.n_steps, baselines=absent), args.captum_repeats
    )
    return {
        "whybox_s": t_ours,
        "captum_s": t_cap,
        "speedup": t_cap / t_ours,
        "max_abs_diff": float(np.abs(ig.scores[:, : enc.n_tokens] - cap_ig.token_attr.cpu().numpy()).max()),
        "max_abs_score": float(np.abs(cap_ig.token_attr.cpu().numpy()).max()),
    }


if __name__ == "__main__":
    raise SystemExit(main())
