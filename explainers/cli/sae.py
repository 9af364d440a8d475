"""`whybox build-sae`: train a sparse autoencoder on a model's residual stream, measure it, write its cards."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from explainers.cli import flag_help
from explainers.cli.common import load_handle


def add_parser(sub) -> None:
    from explainers.models.builtin import DEFAULT_MODEL

    p = sub.add_parser(
        "build-sae",
        help="train a sparse autoencoder on a layer of a model (SAELens format, quality numbers, feature cards)",
        description="Train a TopK SAE on one layer's residual stream. Try: whybox build-sae --layer 3 --out sae-l3",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="built-in name, local folder or hub id")
    p.add_argument("--layer", type=int, default=None, help="hidden-states index (0 = embeddings); default: mid-depth")
    p.add_argument("--tokens", type=int, default=None, help="training tokens (default: one pass over the corpus)")
    p.add_argument("--data", default=None, help="a .csv, .jsonl or .parquet file (default: built-in movie reviews)")
    p.add_argument("--text-column", default="text", help="with --data: the column holding the texts (default: text)")
    p.add_argument("--out", required=True, help="folder for the SAE (written only when finished)")
    p.add_argument("--k", type=int, default=32, help="latents kept per token")
    p.add_argument("--expansion", type=int, default=8, help="latents per model dimension")
    p.add_argument("--lr", type=float, default=None, help="Adam's learning rate (default 1e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the initialisation, the shuffle and the held-out split")
    p.add_argument("--restart", action="store_true", help="ignore a stopped build of the same SAE and start clean")
    p.add_argument("--device", default="auto", help=flag_help.DEVICE)
    p.add_argument("--json", action="store_true", help="print the quality numbers as JSON")
    p.set_defaults(func=cmd_build_sae)


def cmd_build_sae(args: argparse.Namespace) -> int:
    from explainers.errors import InputError
    from explainers.inside.sae_train import TrainSettings, build, corpus
    from explainers.strict_json import dumps

    if args.tokens is not None and args.tokens < 1:
        raise InputError(f"--tokens must be at least 1, not {args.tokens}.")
    settings = TrainSettings(k=args.k, expansion=args.expansion, tokens=args.tokens, seed=args.seed)
    if args.lr is not None:
        settings = dataclasses.replace(settings, lr=args.lr)
    texts, source = corpus(args.data, args.text_column)  # before the (slow) model
    handle = load_handle(args)
    layer = handle.n_layers // 2 if args.layer is None else args.layer
    print(f"build-sae: {handle.name} layer {layer}, {len(texts):,} texts from {source}", file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(total=None, unit="tok", file=sys.stderr, desc="build-sae", dynamic_ncols=True, unit_scale=True)

    def progress(p):
        bar.total = p.total
        if p.phase == "measuring":
            bar.set_postfix_str("measuring on held-out texts, making cards", refresh=True)
        else:
            bar.set_postfix_str(f"EV {p.explained_variance:.3f}, dead {p.dead_fraction:.1%}", refresh=False)
        bar.update(p.tokens - bar.n)

    try:
        quality = build(handle, layer, texts, args.out, settings, resume=not args.restart, on_progress=progress)
    finally:
        bar.close()
    if args.json:
        print(dumps({"out": str(args.out), **quality}, indent=2))
        return 0
    print(f"wrote {args.out}: {quality['d_sae']:,} latents, k={quality['k']}, layer {layer}")
    print(f"explained variance {quality['explained_variance']:.3f} (FVU {quality['fvu']:.3f}), L0 {quality['l0']:.1f}")
    dead, dead_training = quality["dead_fraction"], quality["dead_fraction_training"]
    print(f"dead latents: {dead:.1%} on held-out texts, {dead_training:.1%} in training")
    if "ce_loss_score" in quality:
        print(f"spliced in: CE-loss score {quality['ce_loss_score']:.3f}, KL score {quality['kl_score']:.3f}")
    else:
        print(
            f"spliced in: {quality['predictions_unchanged']:.1%} of predictions unchanged, "
            f"mean |Δp| {quality['mean_abs_delta_p']:.4f}"
        )
    labels = quality.get("label_scores") or {}
    if labels.get("labels", {}).get("median_auc") is not None:
        lab, con = labels["labels"], labels["control"]
        print(
            f"labels (template, detection AUC by MiniLM): median {lab['median_auc']:.3f}, "
            f"{lab['share_at_least_0_8']:.0%} ≥ 0.8; shuffled control median {con['median_auc']}"
        )
    return 0
