"""`whybox trace`: where inside the model the answer is computed (activation patching)."""

from __future__ import annotations

import argparse
import sys

from explainers.cli import flag_help
from explainers.cli.common import load_handle
from explainers.inside.vocabulary import COMPONENTS, DIRECTIONS, METRICS

COMPONENT_CHOICES = tuple(COMPONENTS)


def add_parser(sub) -> None:
    from explainers.models.builtin import DEFAULT_MODEL

    p = sub.add_parser(
        "trace",
        help="where inside the model the answer is computed (activation patching)",
        description=(
            "Patch activations between a clean and a corrupted text of the same token length and read the answer "
            "again; values are normalised so that the corrupted run is 0 and the clean run is 1. Try: whybox trace "
            "--model smollm2 --clean 'The Eiffel Tower is in' --corrupted 'The Colosseum is in' --target ' Paris'"
        ),
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="built-in name, local folder or hub id")
    p.add_argument("--clean", required=True, help="the text the model answers with the target")
    p.add_argument("--corrupted", default=None, help="the same number of tokens, answered otherwise")
    p.add_argument(
        "--noise-positions",
        default=None,
        help="instead of --corrupted: causal tracing's noise (3x the embeddings' std) on these positions, e.g. 1-3",
    )
    p.add_argument("--noise-samples", type=int, default=10, help="noise draws averaged (with --noise-positions)")
    p.add_argument("--seed", type=int, default=0, help="seed of the noise draws")
    p.add_argument("--target", default=None, help="label or next token (default: the clean prediction)")
    p.add_argument("--contrast", default=None, help="label or next token compared with (default: the corrupted answer)")
    p.add_argument(
        "--metric", default="logit_diff", choices=list(METRICS), help="; ".join(f"{k}: {v}" for k, v in METRICS.items())
    )
    p.add_argument("--component", action="append", choices=COMPONENT_CHOICES, help="repeatable (default: resid)")
    p.add_argument(
        "--direction",
        default="denoise",
        choices=list(DIRECTIONS),
        help="denoise: " + DIRECTIONS["denoise"] + "; noise: " + DIRECTIONS["noise"],
    )
    p.add_argument("--layers", default=None, help="e.g. 0-5,9 (default: all)")
    p.add_argument("--positions", default=None, help="token positions, e.g. 3-6 (default: all)")
    p.add_argument("--preview", action="store_true", help="also the attribution-patching preview and its agreement")
    p.add_argument("--top-k", type=int, default=5, help="top-k recall of the preview's agreement")
    p.add_argument("--max-seconds", type=float, default=None, help="refuse grids estimated to take longer")
    p.add_argument("--device", default="auto", help=flag_help.DEVICE)
    p.add_argument("--dtype", default="auto", help=flag_help.DTYPE)
    p.add_argument("--task", default=None, choices=["classification", "causal_lm"], help=flag_help.TASK)
    p.add_argument("--json", action="store_true", help=flag_help.JSON)
    p.set_defaults(func=cmd_trace)


def cmd_trace(args: argparse.Namespace) -> int:
    from explainers import strict_json
    from explainers.errors import InputError
    from explainers.inference.gateway import watching
    from explainers.inside.patching import prepare, prepare_noise
    from explainers.inside.trace import parse_indices, run_trace
    from explainers.inside.vocabulary import NORMALISED

    layers = parse_indices(args.layers, "--layers")  # before the (slow) model load
    positions = parse_indices(args.positions, "--positions")
    noised = parse_indices(args.noise_positions, "--noise-positions")
    if (args.corrupted is None) == (noised is None):
        raise InputError("Give the corrupted run: either --corrupted TEXT or --noise-positions (causal tracing).")
    components = args.component or ["resid"]
    handle = load_handle(args)
    if noised is not None:
        pair = prepare_noise(
            handle,
            args.clean,
            noised,
            args.noise_samples,
            args.seed,
            target=args.target,
            contrast=args.contrast,
            metric=args.metric,
        )
    else:
        pair = prepare(handle, args.clean, args.corrupted, args.target, args.contrast, args.metric)
    from tqdm import tqdm

    bar = tqdm(unit="row", file=sys.stderr, desc="trace", dynamic_ncols=True, disable=None)
    try:
        with watching(on_rows=bar.update):
            trace = run_trace(
                handle, pair, components, args.direction, layers, positions, args.preview, args.top_k, args.max_seconds
            )
    finally:
        bar.close()
    if args.json:
        print(strict_json.dumps(trace.to_dict(), indent=2))
        return 0
    print(f"metric: {pair.metric_label}; clean {pair.clean_metric:.3f}, corrupted {pair.corrupted_metric:.3f}")
    if pair.noise_recipe:
        print(f"corrupted run: {pair.noise_description}")
    print(f"{DIRECTIONS[args.direction]} ({args.direction}); values {NORMALISED}")
    for name, grid in trace.grids.items():
        print(f"\n{name}: rows = {grid.unit}s, columns = layers")
        print(f"{'':>14} " + " ".join(f"{layer:>6}" for layer in grid.layers))
        for unit, row in zip(grid.units, grid.values):
            print(f"{unit[:14]!s:>14} " + " ".join(f"{v:6.2f}" for v in row))
        if name in trace.agreements:
            a = trace.agreements[name]
            print(f"preview vs exact: Pearson r {a['pearson_r']:.3f}, top-{a['k']} recall {a['top_k_recall']:.2f}")
    return 0
