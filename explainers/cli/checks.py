"""`whybox sanity` (does each method's map follow the model's weights?) and `whybox consistency` (does it
survive a paraphrase?), from the command line."""

from __future__ import annotations

import argparse
import sys

from explainers import strict_json
from explainers.cli import flag_help
from explainers.cli.common import load_handle
from explainers.errors import InputError


def add_parser(sub) -> None:
    from explainers.models.builtin import DEFAULT_MODEL

    p = sub.add_parser(
        "sanity",
        help="how much each method's map changes when the model's layers are randomised (Adebayo et al. 2018)",
        description="Model-randomisation sanity check. Try: whybox sanity --text 'a gripping, funny film' "
        "--method saliency --method integrated_gradients",
    )
    _common(p, DEFAULT_MODEL)
    p.set_defaults(func=cmd_sanity)

    p = sub.add_parser(
        "consistency",
        help="do meaning- and prediction-preserving variants of the text get the same explanation?",
        description="Consistency under paraphrase. Try: whybox consistency --text 'I did not like this film' "
        "--method integrated_gradients --method lime",
    )
    _common(p, DEFAULT_MODEL)
    p.add_argument("--variant", action="append", help="a paraphrase of your own, repeatable")
    p.add_argument("--no-generate", action="store_true", help="use only the --variant texts")
    # defaults: the engine's (explainers/metrics/consistency.py), not imported here: --help stays light
    p.add_argument("--threshold", type=float, default=None, help="least MiniLM similarity of a variant (0.85)")
    p.add_argument("--max-variants", type=int, default=None, help="most variants explained (8)")
    p.set_defaults(func=cmd_consistency)


def _common(p, default_model: str) -> None:
    p.add_argument("--model", default=default_model, help="built-in name, local folder or hub id")
    p.add_argument("--text", required=True, help="the text ('-' reads stdin)")
    p.add_argument("--method", action="append", help="attribution method, repeatable (default: the default set)")
    p.add_argument("--target", default=None, help="label (classifier) or continuation (causal LM)")
    if p.prog.endswith("sanity"):
        p.add_argument("--contrast", default=None, help="explain the target rather than this one")
    p.add_argument(
        "--param", action="append", metavar="NAME=VALUE", help="method parameter, for the methods that have it"
    )
    p.add_argument(
        "--seed", type=int, default=0, help="seed of random methods (and of the sanity check's randomisation)"
    )
    p.add_argument("--device", default="auto", help=flag_help.DEVICE)
    p.add_argument("--dtype", default="auto", help=flag_help.DTYPE)
    p.add_argument("--task", default=None, choices=["classification", "causal_lm"], help=flag_help.TASK)
    p.add_argument("--json", action="store_true", help=flag_help.JSON)


def method_params(pairs: list[str] | None, methods: list[str]) -> dict[str, dict]:
    """--param NAME=VALUE goes to every chosen method that has the parameter; one no method has is an error."""
    from explainers.methods import get_method

    given: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep:
            raise InputError(f"--param takes NAME=VALUE, not '{pair}'.")
        given[name.strip()] = value.strip()
    names = {m: {p.name for p in get_method(m).params} for m in methods}
    unknown = set(given) - set().union(*names.values())
    if unknown:
        raise InputError(f"No chosen method has the parameter(s) {', '.join(sorted(unknown))}.")
    return {m: {k: v for k, v in given.items() if k in names[m]} for m in methods}


def cmd_sanity(args: argparse.Namespace) -> int:
    from explainers.checks.sanity import READING, sanity_check
    from explainers.metrics.similarity import SIMILARITIES

    params = method_params(args.param, args.method)  # before the slow model load
    handle = load_handle(args)

    def progress(result) -> None:
        print(f"randomised {result.layers[-1]} ({len(result.layers)}/{len(result.planned)})", file=sys.stderr)

    result = sanity_check(
        handle, args.text, args.method, target=args.target, contrast=args.contrast, seed=args.seed,
        params=params, on_step=progress,
    )  # fmt: skip
    if args.json:
        print(strict_json.dumps(result.to_dict(), indent=2))
        return 0
    print(f"explaining '{result.target}' (p = {result.original_target_prob:.3f}); {READING}")
    width = max(len(t) for t in result.titles)
    for measure in result.measures:
        print(f"\n{SIMILARITIES[measure].title} with the original map, after randomising down to:")
        print(" " * width + "".join(f"{layer[:11]:>12}" for layer in result.layers))
        for method, title in zip(result.methods, result.titles):
            cells = "".join("         n/a" if v != v else f"{v:12.3f}" for v in result.values[method][measure])
            print(f"{title:<{width}}{cells}")
    print("\np(target) " + " ".join(f"{p:.3f}" for p in result.target_probs))
    return 0


def cmd_consistency(args: argparse.Namespace) -> int:
    from explainers.checks.consistency import consistency

    params = method_params(args.param, args.method)
    if args.no_generate and not args.variant:
        raise InputError("--no-generate needs at least one --variant.")
    if args.max_variants is not None and args.max_variants < 1:
        raise InputError(f"--max-variants must be at least 1, not {args.max_variants}.")
    handle = load_handle(args)

    def progress(result) -> None:
        print(f"explained variant {len(result.values[result.methods[0]][result.measures[0]])}", file=sys.stderr)

    result = consistency(
        handle, args.text, args.method, target=args.target, seed=args.seed, params=params, variants=args.variant,
        generate=not args.no_generate, on_variant=progress,
        **{k: v for k, v in (("threshold", args.threshold), ("max_variants", args.max_variants)) if v is not None},
    )  # fmt: skip
    if args.json:
        print(strict_json.dumps(result.to_dict(), indent=2))
        return 0
    dropped = ", ".join(f"{n} {why}" for why, n in result.dropped().items()) or "none"
    print(f"explaining '{result.target}': {len(result.used)} variants used (dropped: {dropped})")
    for v in result.used:
        print(f"  {v.kind:<12} similarity {v.similarity:.3f}  {v.changed_share:.0%} of words changed  {v.text}")
    print("\nmean over the variants (noise floor: the same text, another seed)")
    for method, title in zip(result.methods, result.titles):
        cells = "  ".join(
            f"{m} {result.mean(method, m):.3f} (floor {result.noise_floor[method][m]:.3f})" for m in result.measures
        )
        print(f"  {title:<24} {cells}")
    return 0
