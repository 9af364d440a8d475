"""`whybox concepts probe|direction|tcav|steer`: concept work from the command line (see concepts.py).

Sets come from two files of one text a line (--set-a/--set-b; --pairs when line i of each are twins),
a data file's text column split by its label column (--data FILE --label-a X --label-b Y; `--data
builtin:rt-heldout` for the built-in sentences), or a substitution list applied to a file (--substitute
'he -> she' --set-a FILE). Output: a short table, or everything with --json (strict JSON: null for
NaN). Progress goes to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from explainers.cli import flag_help
from explainers.cli.common import load_handle
from explainers.errors import InputError  # light: `whybox --help` imports no numpy or torch (tests/test_cli_startup.py)

COMMANDS = ("probe", "direction", "tcav", "steer")


def add_parser(sub) -> None:
    from explainers.models.builtin import DEFAULT_MODEL

    p = sub.add_parser(
        "concepts",
        help="concepts inside the model: probes per layer, directions, TCAV, steering",
        description="Try: whybox concepts probe --data builtin:rt-heldout --label-a positive --label-b negative",
    )
    p.add_argument("action", choices=COMMANDS, help="what to compute")
    p.add_argument("--model", default=DEFAULT_MODEL, help="built-in name, local folder or hub id")
    p.add_argument("--device", default="auto", help=flag_help.DEVICE)
    p.add_argument("--set-a", default=None, metavar="FILE", help="texts with the concept, one a line")
    p.add_argument("--set-b", default=None, metavar="FILE", help="texts without it, one a line")
    p.add_argument("--pairs", action="store_true", help="line i of --set-a and --set-b are twins")
    p.add_argument("--substitute", default=None, metavar="LIST", help="pairs from --set-a edited: 'he -> she'")
    p.add_argument("--data", default=None, help="a .csv/.jsonl/.parquet file, or builtin:rt-heldout")
    p.add_argument("--text-column", default="text", help="with --data: the column holding the texts (default: text)")
    p.add_argument(
        "--label-column", default="label", help="with --data: the column whose values split the texts into the two sets"
    )
    p.add_argument("--label-a", default=None, help="rows with this label form set A (builtin: positive)")
    p.add_argument("--label-b", default=None, help="rows with this label form set B (builtin: negative)")
    p.add_argument("--limit", type=int, default=100, help="at most this many texts per set from --data")
    p.add_argument("--layers", default=None, help="e.g. 0,2,4 (default: every layer)")
    p.add_argument("--layer", type=int, default=None, help="tcav/steer: the layer (default: the best direction's)")
    p.add_argument("--pooling", default=None, choices=["last", "mean", "first"], help="default: last (LM), mean")
    p.add_argument(
        "--seed", type=int, default=0, help="seed of the held-out split, the shuffled-label control and random sets"
    )
    p.add_argument("--folds", type=int, default=5, help="probe: cross-validation folds")
    p.add_argument("--method", default="mean_diff", choices=["mean_diff", "pca_diff"], help="direction method")
    p.add_argument("--label", default=None, help="tcav: the class explained (default: the model's last label)")
    p.add_argument("--random", default=None, metavar="FILE", help="tcav: random texts (default: set B)")
    p.add_argument("--class-texts", default=None, metavar="FILE", help="tcav: texts of the class (default: A+B)")
    p.add_argument("--runs", type=int, default=15, help="tcav: concept/random splits for the t-test")
    p.add_argument("--prompts", default=None, metavar="FILE", help="steer: held-out prompts, one a line")
    p.add_argument("--target", default=None, help="steer: a label, or a continuation of an LM")
    p.add_argument("--contrast", default=None, help="steer: score log p(target) − log p(contrast)")
    p.add_argument("--alpha", default="-4,-2,2,4", help="steer: strengths, written --alpha=-4,-2,2,4 (0 is added)")
    p.add_argument("--neutral", default=None, metavar="FILE", help="steer: neutral texts for the off-target cost")
    p.add_argument("--instruction", default=None, help="steer: the prompting baseline, e.g. 'Write positively.'")
    p.add_argument("--generate", type=int, default=0, help="steer: tokens generated at each α for the 1st prompt")
    p.add_argument("--save-vector", default=None, metavar="FILE.npy", help="direction: save the chosen layer's")
    p.add_argument("--json", action="store_true", help=flag_help.JSON)
    p.set_defaults(func=cmd_concepts)


def _lines(path: str | None, what: str) -> list[str]:
    if path is None:
        raise InputError(f"{what} is needed: a file with one text a line.")
    file = Path(path).expanduser()
    if not file.is_file():
        raise InputError(f"No file at '{path}' ({what}).")
    try:
        text = file.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"'{path}' is not UTF-8 text.") from None
    return [line.strip() for line in text.splitlines() if line.strip()]


def read_sets(args):
    from explainers.inside.concepts import ConceptSets

    if args.data:
        from explainers.audit.data import read_data

        builtin = args.data.startswith("builtin:")
        label_a = args.label_a or ("positive" if builtin else None)
        label_b = args.label_b or ("negative" if builtin else None)
        if not (label_a and label_b):
            raise InputError("--data needs --label-a and --label-b: which labels form the two sets.")
        if args.limit < 2:
            raise InputError(f"--limit must be at least 2, not {args.limit}.")
        data = read_data(args.data, args.text_column, args.label_column)
        rows = [r for r in data.rows if r.label is not None]
        return ConceptSets.from_table([r.text for r in rows], [r.label for r in rows], label_a, label_b, args.limit)
    a = _lines(args.set_a, "--set-a")
    if args.substitute:
        return ConceptSets.from_substitution(a, args.substitute)
    b = _lines(args.set_b, "--set-b")
    names = (Path(args.set_a).stem, Path(args.set_b).stem)
    return ConceptSets(tuple(a), tuple(b), *names, paired=args.pairs, source="files").checked()


def _layers(value: str | None) -> list[int] | None:
    if value is None:
        return None
    try:
        return [int(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--layers takes numbers separated by commas (e.g. 0,2,4), not '{value}'.") from None


def _alphas(value: str) -> list[float]:
    try:
        return [float(x) for x in value.split(",") if x.strip()]
    except ValueError:
        raise InputError(f"--alpha takes numbers separated by commas (e.g. -4,-2,2,4), not '{value}'.") from None


def _progress():
    from explainers.inference.gateway import watching

    done = [0]

    def on_rows(n: int) -> None:
        done[0] += n
        print(f"\r  {done[0]:,} rows through the model", end="", file=sys.stderr, flush=True)

    return watching(on_rows=on_rows)


def cmd_concepts(args: argparse.Namespace) -> int:
    from explainers.cli.whatif import dumps
    from explainers.inside.concepts import concept_activations, directions

    layers = _layers(args.layers)
    sets = read_sets(args)  # bad sets fail before the (slow) model load
    alphas = _alphas(args.alpha) if args.action == "steer" else None
    handle = load_handle(args)
    head = {
        "model": handle.name,
        "action": args.action,
        "sets": {
            "a": sets.name_a,
            "b": sets.name_b,
            "n_a": len(sets.a),
            "n_b": len(sets.b),
            "paired": sets.paired,
            "source": sets.source,
        },
    }
    with _progress():
        if args.action in ("probe", "direction") or args.layer is None:
            acts = concept_activations(handle, sets, layers, args.pooling)
        else:
            acts = concept_activations(handle, sets, [args.layer], args.pooling)
        head["pooling"] = acts.pooling_text
        head["truncated_texts"] = acts.truncated
        result = dict(head)
        if args.action == "probe":
            from explainers.inside.probes import probe_layers

            report = probe_layers(acts, folds=args.folds, seed=args.seed)
            result["probe"] = report.to_dict()
            rows = [(p.layer, p.accuracy, *p.interval, p.control, p.selectivity) for p in report.layers]
            table = ("layer", "accuracy", "low", "high", "control", "selectivity"), rows, report.notes
        else:
            found = directions(acts, args.method, seed=args.seed)
            layer = args.layer if args.layer is not None else found.best.layer
            chosen = found.at(layer)
            if args.action == "direction":
                result["direction"] = found.to_dict()
                result["chosen_layer"] = layer
                if args.save_vector:
                    import numpy as np

                    np.save(args.save_vector, chosen.vector)
                rows = [(d.layer, d.auroc, d.consistency, d.norm) for d in found.layers]
                table = ("layer", "auroc_heldout", "consistency", "norm"), rows, found.notes
            elif args.action == "tcav":
                from explainers.inside.tcav import tcav

                random = _lines(args.random, "--random") if args.random else list(sets.b)
                class_texts = _lines(args.class_texts, "--class-texts") if args.class_texts else [*sets.a, *sets.b]
                label = args.label or handle.labels[-1]
                res = tcav(
                    handle,
                    list(sets.a),
                    random,
                    class_texts,
                    label,
                    layer,
                    args.runs,
                    args.seed,
                    acts.pooling,
                    sets.name_a,
                )
                result["tcav"] = res.to_dict()
                result["random_texts"] = "file" if args.random else f"set B ('{sets.name_b}'): a relative concept"
                rows = [(layer, res.mean, float(res.random_scores.mean()), res.p_value)]
                table = ("layer", "tcav", "random", "p"), rows, [res.verdict]
            else:
                from explainers.inside.steering import steer

                if not args.target:
                    raise InputError("steer needs --target: a label, or a continuation of the language model.")
                prompts = _lines(args.prompts, "--prompts")
                neutral = _lines(args.neutral, "--neutral") if args.neutral else []
                rep = steer(
                    handle,
                    chosen.vector,
                    layer,
                    prompts,
                    args.target,
                    args.contrast,
                    alphas,
                    neutral,
                    args.instruction,
                    args.generate,
                )
                result["steering"] = rep.to_dict()
                s = result["steering"]
                rows = [(layer, s["slope"], s["slope_low"], s["slope_high"], s["wrong_way_share"])]
                table = ("layer", "slope", "low", "high", "wrong_way"), rows, rep.notes
    print(file=sys.stderr)
    if args.json:
        print(dumps(result))
        return 0
    names, rows, notes = table
    print(
        f"{handle.name}: {args.action}, sets '{sets.name_a}' ({len(sets.a)}) vs '{sets.name_b}' ({len(sets.b)}), "
        f"pooling: {acts.pooling_text}"
    )
    print("  ".join(f"{n:>12}" for n in names))
    for row in rows:
        print("  ".join(f"{v:>12.3f}" if isinstance(v, float) else f"{str(v):>12}" for v in row))
    for note in notes:
        print(f"note: {note}")
    return 0
