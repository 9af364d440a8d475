"""`whybox counterfactual` and `whybox model-card`: registered on the main parser by explainers.cli.

Output JSON is strict (no NaN or Infinity: null instead), so any JSON parser reads it.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from explainers.errors import InputError, WhyboxError
from explainers.models.builtin import DEFAULT_MODEL


def strict(value):
    """`value` with every non-finite float replaced by None (JSON has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return strict(value.item())
    return value


def dumps(value) -> str:
    return json.dumps(strict(value), ensure_ascii=False, indent=2, allow_nan=False)


def add_whatif_commands(sub) -> None:
    p = sub.add_parser("counterfactual", help="verified counterfactuals: minimal flips, substitutions, LLM drafts")
    p.add_argument("--model", default=DEFAULT_MODEL, help="built-in name, local folder or hub id")
    p.add_argument("--text", required=True, help="the text ('-' reads stdin)")
    p.add_argument("--target", default=None, help="label (classifier) or continuation (causal LM)")
    p.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="a flip is p(target) below this (default: the label changes; causal LM: p halves)",
    )
    p.add_argument("--budget", type=int, default=None, help="model calls the minimal-flip search may spend")
    p.add_argument(
        "--substitutions",
        type=int,
        default=4,
        metavar="N",
        help="replace the N most important words with embedding neighbours (0: skip)",
    )
    p.add_argument("--probe", default=None, metavar="LIST", help="a substitution list, e.g. 'he -> she, his -> her'")
    p.add_argument(
        "--llm", action="store_true", help="also ask a language model (smollm2, or WHYBOX_LLM_URL) for drafts"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_counterfactual)

    p = sub.add_parser("model-card", help="a model card (Markdown or HTML) from what whybox knows")
    p.add_argument("--model", default=DEFAULT_MODEL, help="built-in name, local folder or hub id")
    p.add_argument("--audit", default=None, metavar="DIR", help="an audit's results folder (its summary.json)")
    p.add_argument("--out", default=None, metavar="FILE", help="write here (.html for HTML, else Markdown)")
    p.add_argument(
        "--llm", action="store_true", help="draft the prose with a language model (smollm2, or WHYBOX_LLM_URL)"
    )
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print the card's sections and facts as JSON")
    p.set_defaults(func=cmd_model_card)


def _load(args):
    from explainers.models.loading import load_model

    return load_model(args.model, device=args.device)


def cmd_counterfactual(args) -> int:
    from explainers.whatif.counterfactual import (
        DEFAULT_BUDGET,
        draft_counterfactuals,
        minimal_flips,
        probe,
        substitutions,
    )

    if args.budget is not None and args.budget < 1:
        raise InputError("--budget is a number of model calls: 1 or more.")
    handle = _load(args)
    search = minimal_flips(
        handle, args.text, target=args.target, threshold=args.threshold, budget=args.budget or DEFAULT_BUDGET
    )
    result = {"model": handle.name, "text": args.text, "search": search.to_dict()}
    if args.substitutions:
        subs, calls = substitutions(
            handle, args.text, target=args.target, threshold=args.threshold, words=args.substitutions
        )
        result["substitutions"] = {"model_calls": calls, "candidates": [c.to_dict() for c in subs]}
    if args.probe:
        result["probe"] = probe(handle, [args.text], args.probe).to_dict()
    if args.llm:
        from explainers.whatif.llm import default_generator

        drafts = draft_counterfactuals(
            handle, args.text, default_generator(), target=args.target, threshold=args.threshold
        )
        result["llm"] = drafts.to_dict()
    verified = search.flips + [c for c in _candidates(result) if c.get("flipped")]
    result["counterfactuals"] = [c.to_dict() for c in search.flips] + [
        c for c in _candidates(result) if c.get("flipped")
    ]
    if args.json:
        print(dumps(result))
        return 0
    goal = search.goal
    print(f"{handle.name}: '{goal.target.label}' p={goal.original_prob:.3f}; a flip means {goal.describe()}")
    print(
        f"minimal flips: {len(search.flips)} of size {search.size} "
        f"({search.model_calls} model calls of {search.planned_calls} planned, {search.seconds:.2f} s)"
        if search.flips
        else f"minimal flips: none found ({search.model_calls} model calls)"
    )
    for c in verified:
        cf = c if isinstance(c, dict) else c.to_dict()
        print(f"  [{cf['kind']}] {cf['description']}: '{cf['label']}' p(target)={cf['target_prob']:.3f}  {cf['text']}")
    if "llm" in result:
        print(f"language-model drafts: {result['llm']['held']} of {result['llm']['tried']} held")
    return 0


def _candidates(result: dict) -> list[dict]:
    return result.get("substitutions", {}).get("candidates", []) + result.get("llm", {}).get("drafts", [])


def cmd_model_card(args) -> int:
    from explainers.whatif.model_card import build_model_card

    if args.audit and not Path(args.audit).expanduser().is_dir():
        raise InputError(f"--audit: '{args.audit}' is not a folder.")
    handle = _load(args)
    generator = None
    if args.llm:
        from explainers.whatif.llm import default_generator

        generator = default_generator()
    card = build_model_card(handle, audit_dir=args.audit, generator=generator)
    if args.json:
        print(dumps(card.to_dict()))
    text = card.to_html() if args.out and args.out.lower().endswith((".html", ".htm")) else card.to_markdown()
    if args.out:
        try:
            Path(args.out).expanduser().write_text(text, encoding="utf-8")
        except OSError as exc:
            raise WhyboxError(f"Could not write {args.out}: {exc.strerror or exc}") from exc
        print(f"wrote {args.out}", file=sys.stderr)
    elif not args.json:
        print(text)
    return 0
