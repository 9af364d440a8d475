"""`whybox sanity`: the model-randomisation sanity check of each method's map, from the command line."""

from __future__ import annotations

import argparse
import sys

from .. import strict_json
from ..errors import InputError


def add_parser(sub) -> None:
    from ..builtin import DEFAULT_MODEL

    p = sub.add_parser(
        "sanity",
        help="how much each method's map changes when the model's layers are randomised (Adebayo et al. 2018)",
        description="Model-randomisation sanity check. Try: whybox sanity --text 'a gripping, funny film' "
        "--method saliency --method integrated_gradients",
    )
    _common(p, DEFAULT_MODEL)
    p.set_defaults(func=cmd_sanity)


def _common(p, default_model: str) -> None:
    p.add_argument("--model", default=default_model, help="built-in name, local folder or hub id")
    p.add_argument("--text", required=True, help="the text ('-' reads stdin)")
    p.add_argument("--method", action="append", help="attribution method, repeatable (default: the default set)")
    p.add_argument("--target", default=None, help="label (classifier) or continuation (causal LM)")
    p.add_argument("--contrast", default=None, help="explain the target rather than this one")
    p.add_argument(
        "--param", action="append", metavar="NAME=VALUE", help="method parameter, for the methods that have it"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the randomisation and of random methods")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--task", default=None, choices=["classification", "causal_lm"])
    p.add_argument("--json", action="store_true")


def method_params(pairs: list[str] | None, methods: list[str]) -> dict[str, dict]:
    """--param NAME=VALUE goes to every chosen method that has the parameter; one no method has is an error."""
    from ..methods import get_method

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


def _load(args):
    from ..loading import load_model
    from ..threads import apply_thread_policy

    apply_thread_policy()
    return load_model(args.model, device=args.device, dtype=args.dtype, task=args.task)


def cmd_sanity(args: argparse.Namespace) -> int:
    from .sanity import READING, sanity_check
    from .similarity import SIMILARITIES

    params = method_params(args.param, args.method)  # before the slow model load
    handle = _load(args)

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
