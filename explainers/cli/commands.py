"""`whybox` command line: a contract others script against.

Bad input prints one line on stderr and exits with code 2; a bug in whybox prints one line with an
error id and exits with code 1 (the traceback goes to the log, on stderr only with WHYBOX_DEBUG=1).
JSON output is strict: an undefined number is null, never NaN.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
from pathlib import Path

from explainers import strict_json
from explainers.cli import flag_help
from explainers.cli.common import load_handle
from explainers.errors import InternalError, WhyboxError
from explainers.models.builtin import DEFAULT_MODEL, DEFAULT_MODEL_ENV, default_model

EXIT_INTERNAL_ERROR = 1
EXIT_BAD_INPUT = 2
ROOT = Path(__file__).resolve().parents[2]  # the repository: dashboard/app.py is there


def _parse_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise WhyboxError(f"--param takes NAME=VALUE, not '{pair}'.")
        name, value = pair.split("=", 1)
        params[name.strip()] = value.strip()
    return params


def _read_text(args) -> str:
    from explainers.models.text import check_text

    if args.text != "-":
        return check_text(args.text)
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    try:
        return check_text(data.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise WhyboxError(
            f"The text on stdin is not UTF-8: byte 0x{data[exc.start]:02x} at position {exc.start} cannot be read. "
            "Convert it first, e.g. iconv -f latin1 -t utf-8."
        ) from None


def _check_arguments(argv: list[str]) -> None:
    """Bytes that are not UTF-8 reach Python as lone surrogates, which no tokenizer can encode."""
    for position, arg in enumerate(argv, 1):
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise WhyboxError(
                f"Argument {position} is not UTF-8 text (an undecodable byte at character {exc.start}): "
                "pass the text in UTF-8, or through stdin with --text -."
            ) from None


def _separator(value: str | None) -> str | None:
    """A separator as typed in a shell: '\\n' and '\\t' mean a line break and a tab."""
    return value.replace("\\n", "\n").replace("\\t", "\t") if value else value


def _explain_all(handle, args) -> list:
    from explainers.methods import explain, get_method

    text = args.text
    params = _parse_params(args.param)
    explanations = []
    for method in args.method:
        spec = get_method(method)
        # --param applies to every method that has that parameter
        own = {k: v for k, v in params.items() if k in {p.name for p in spec.params}}
        explanations.append(
            explain(
                handle,
                text,
                method,
                target=args.target,
                seed=args.seed,
                contrast=args.contrast,
                chat=args.chat,
                unit=args.unit,
                separator=_separator(args.separator),
                **own,
            )
        )
    unknown = set(params) - {p.name for m in args.method for p in get_method(m).params}
    if unknown:
        raise WhyboxError(f"No chosen method has the parameter(s) {', '.join(sorted(unknown))}.")
    return explanations


def _print_explanation(exp) -> None:
    scale = exp.extras.get("target_scale")  # names the scale and the contrast: a contrast is no probability
    shown = scale["line"] if scale else f"p={exp.target_prob:.3f}"
    facts = exp.extras.get("prediction") or {}
    print(f"{exp.method}: target '{exp.target.label}': {shown}  ({exp.seconds:.2f}s)")
    if exp.truncated:
        print("  note: the text was truncated to the model's limit")
    if exp.extras.get("scaled_down"):
        print(f"  note: {exp.extras['scaled_down']}")
    if "label_mass" in facts:  # a prompt classifier: its labels, and how much of the model's answer they hold
        shown = ", ".join(f"{label} {p:.3f}" for label, p in facts["label_probabilities"].items())
        calibrated = " (calibrated)" if facts["calibrated"] else ""
        print(f"  labels{calibrated}: {shown}; label mass {facts['label_mass']:.3f}")
    # --unit word/sentence (or --separator): the units explained, not the words (see conventions: Units)
    pieces, values = exp.extras.get("units"), exp.extras.get("unit_scores")
    if not pieces or values is None:
        pieces, values = exp.words, exp.word_scores
    pieces = [" ".join(p.split()) for p in pieces]  # a sentence's line breaks would break the table
    width = max((len(w) for w in pieces), default=4)
    top = max((abs(s) for s in values), default=0) or 1
    for word, score in zip(pieces, values):
        bar = ("+" if score >= 0 else "-") * int(round(12 * abs(score) / top))
        print(f"  {word:<{width}} {score:+.4f} {bar}")


def cmd_models(args) -> int:
    from explainers.models.builtin import BUILTIN_MODELS

    rows = [
        {"name": m.name, "task": m.task, "description": m.description, "source": m.source}
        for m in BUILTIN_MODELS.values()
    ]
    if args.json:
        print(strict_json.dumps(rows, indent=2))
    else:
        for row in rows:
            print(f"{row['name']:<12} {row['task']:<15} {row['description']}")
    return 0


def cmd_methods(args) -> int:
    from explainers.methods import METHODS

    rows = [m.to_dict() for m in METHODS.values()]
    if args.json:
        print(strict_json.dumps(rows, indent=2))
    else:
        for m in METHODS.values():
            flag = "  (experimental)" if m.experimental else ""
            print(f"{m.name:<22} {m.family:<13} {m.estimate(20).describe():<34} {m.title}{flag}")
    return 0


def cmd_explain(args) -> int:
    from explainers.conventions import conventions

    handle = load_handle(args)
    if args.generate or args.continuation:
        return _explain_generation(handle, args)
    if args.sentences_first:
        return _sentences_first(handle, args)
    explanations = _explain_all(handle, args)
    if args.json:
        print(
            strict_json.dumps(
                {
                    "model": handle.describe(),
                    "explanations": [e.to_dict() for e in explanations],
                    "conventions": conventions(),
                },
                indent=2,
            )
        )
    else:
        for exp in explanations:
            _print_explanation(exp)
    return 0


def _sentences_first(handle, args) -> int:
    """`explain --sentences-first K`: the sentences, then the words of the top K sentences (long prompts)."""
    from explainers.generation.long_inputs import sentences_first
    from explainers.methods import get_method

    params = _parse_params(args.param)
    results = []
    for method in args.method:
        own = {k: v for k, v in params.items() if k in {p.name for p in get_method(method).params}}
        framing = {"target": args.target, "seed": args.seed, "contrast": args.contrast, "chat": args.chat}
        results.append(
            sentences_first(
                handle, args.text, method, args.sentences_first, separator=_separator(args.separator), **framing, **own
            )
        )
    if args.json:
        print(strict_json.dumps({"model": handle.describe(), "sentences_first": [r.to_dict() for r in results]}))
        return 0
    for r in results:
        print(f"{r.sentences.title}: sentences, then the words of the top {len(r.chosen)}")
        for text, score in zip(r.sentences.extras["units"], r.sentences.extras["unit_scores"]):
            print(f"  {score:+.4f}  {text}")
        for text, score in zip(r.words.extras["units"], r.words.extras["unit_scores"]):
            print(f"      {score:+.4f}  {text}")
    return 0


def _explain_generation(handle, args) -> int:
    """`explain --generate N` / `--continuation TEXT`: every generated token explained (a matrix)."""
    import numpy as np

    from explainers.generation.tokens import explain_generation
    from explainers.metrics.generation import evaluate_generation

    params = _parse_params(args.param)
    results = [
        explain_generation(
            handle,
            args.text,
            method,
            max_new_tokens=args.generate or 10,
            continuation=args.continuation,
            chat=args.chat,
            **params,
        )
        for method in args.method
    ]
    reports = [evaluate_generation(handle, g, mode=args.mode) for g in results]
    if args.json:
        gens = [{**g.to_dict(), "faithfulness": r.to_dict()} for g, r in zip(results, reports)]
        print(strict_json.dumps({"model": handle.describe(), "generations": gens}, indent=2))
        return 0
    for g, r in zip(results, reports):
        print(f"{g.method}: {''.join(g.generated)!r}  ({g.seconds:.2f}s)  {g.score_note}")
        width = max(len(t) for t in g.tokens) + 2
        for j, token in enumerate(g.generated):
            row = g.scores[j]
            cells = " ".join("     ." if np.isnan(v) else f"{v:+.3f}" for v in row[: g.n_prompt + j])
            faith = " ".join(f"{m[:4]}={r.token_values[m][j]:+.3f}" for m in r.metrics)
            print(f"  {token!r:<{width}} p={g.probabilities[j]:.3f} H={g.entropies[j]:.2f} {faith}  {cells}")
        whole = " ".join(f"{m}={v:+.3f}" for m, v in r.continuation_values.items())
        print(f"  continuation: log p={r.continuation_base:.3f}  {whole}  ({r.mode} mode, drops in log-probability)")
    return 0


def cmd_layers(args) -> int:
    from explainers.inside.lens import logit_lens

    lens = logit_lens(
        load_handle(args), args.text, target=args.target, contrast=args.contrast, top_k=args.top_k, chat=args.chat
    )
    if args.json:
        print(lens.to_json(indent=2))
        return 0
    print(f"{lens.note}\nafter the last block: {', '.join(lens.after_last_block)}")
    for layer in lens.layers:
        top = "  ".join(f"{t!r} {p:.2f}" for t, p in layer.top)
        versus = f"  {lens.contrast!r} p={layer.contrast_prob:.3f}" if lens.contrast else ""
        print(f"{layer.name:<11} {lens.target!r} p={layer.target_prob:.3f} rank {layer.target_rank:<6}{versus}  {top}")
    return 0


def cmd_evaluate(args) -> int:
    from explainers.conventions import conventions
    from explainers.metrics.faithfulness import (
        RANKING_RULE,
        agreement,
        evaluate_many,
        rank_explanations,
        ranking_metrics,
    )

    handle = load_handle(args)
    explanations = _explain_all(handle, args)
    reports = evaluate_many(handle, explanations, mode=args.mode)
    ranking = rank_explanations(reports)
    names, matrix = agreement(explanations)
    if args.json:
        print(
            strict_json.dumps(
                {
                    "model": handle.describe(),
                    "explanations": [e.to_dict() for e in explanations],
                    "reports": [r.to_dict() for r in reports],
                    "ranking": [{"method": m, "mean_rank": r} for m, r in ranking],
                    "ranking_metrics": [m.name for m in ranking_metrics()],
                    "ranking_rule": RANKING_RULE,
                    "agreement": {"methods": names, "spearman": matrix},
                    "conventions": conventions(),
                },
                indent=2,
            )
        )
        return 0
    for exp in explanations:
        _print_explanation(exp)
    # one row per metric, its full name and which direction is better; one column per method
    from explainers.metrics.faithfulness import METRICS

    width = max(12, *(len(r.method) for r in reports)) + 2
    rows = [
        (METRICS[k].name if k in METRICS else k, METRICS[k].direction if k in METRICS else "")
        for k in reports[0].values
    ]
    label_width = max(len(name) for name, _ in rows) + 2
    print(f"\nfaithfulness, {args.mode} mode (better: which way a metric's value is better)")
    print("metric".ljust(label_width) + "better".ljust(8) + "".join(r.method.rjust(width) for r in reports))
    for key, (name, direction) in zip(reports[0].values, rows):
        cells = "".join(f"{r.values[key]:{width}.3f}" for r in reports)
        print(name.ljust(label_width) + direction.ljust(8) + cells)
    print("\nranking (mean rank, 1 = best): " + ", ".join(f"{m} {r:.1f}" for m, r in ranking))
    print(RANKING_RULE)
    if len(names) > 1:  # how far the methods agree on the order of the tokens
        print("\nagreement (Spearman rank correlation of token scores: 1 = same order, -1 = reversed)")
        print(" " * label_width + "".join(n.rjust(width) for n in names))
        for name, row in zip(names, matrix):
            print(name.ljust(label_width) + "".join(f"{v:{width}.3f}" for v in row))
    return 0


def cmd_build_models(args) -> int:
    from explainers.models.builtin import BUILTIN_MODELS, builtin_path

    names = args.only or list(BUILTIN_MODELS)
    for name in names:
        if name not in BUILTIN_MODELS:
            raise WhyboxError(f"Unknown built-in model '{name}': choose from {', '.join(BUILTIN_MODELS)}.")
        path = builtin_path(name, rebuild=args.rebuild)
        print(f"{name}: {path}")
    return 0


def cmd_run(args) -> int:
    from explainers.serving.preload import preload_model

    if args.model:
        local = Path(args.model).expanduser()
        # a folder named relative to where the user is, not to the repository the server runs in
        os.environ[DEFAULT_MODEL_ENV] = str(local.resolve()) if local.exists() else args.model
    # The first page needs the model: load it while the server starts (most of a cold start is
    # imports), beginning before Streamlit itself is imported.
    preload_model(default_model())

    from streamlit.web import cli as streamlit_cli

    app = ROOT / "dashboard" / "app.py"
    os.chdir(ROOT)  # so Streamlit finds .streamlit/config.toml
    sys.argv = [
        "streamlit",
        "run",
        str(app),
        "--server.port",
        str(args.port),
        "--server.address",
        args.address,
        *args.streamlit_args,
    ]
    return streamlit_cli.main()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whybox", description="Why did this transformer say that?")
    from explainers.cli.prompted import add_endpoint_arguments, add_prompt_arguments

    sub = parser.add_subparsers(dest="command", required=True)

    for name, func, helptext in [
        ("models", cmd_models, "list the built-in models"),
        ("methods", cmd_methods, "list the attribution methods"),
    ]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--json", action="store_true", help=flag_help.JSON)
        p.set_defaults(func=func)

    for name, func, helptext in [
        ("explain", cmd_explain, "explain one prediction"),
        ("evaluate", cmd_evaluate, "explain, then measure faithfulness"),
    ]:
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--model", default=DEFAULT_MODEL, help="built-in name, local folder or hub id")
        p.add_argument("--text", required=True, help="the text to explain ('-' reads stdin)")
        p.add_argument(
            "--method", action="append", help="attribution method, repeatable (default: the dashboard's default set)"
        )
        p.add_argument("--target", default=None, help="label (classifier) or continuation (causal LM)")
        p.add_argument(
            "--contrast", default=None, help="explain the target rather than this label / continuation (A vs B)"
        )
        p.add_argument("--seed", type=int, default=0, help=flag_help.SEED)
        p.add_argument("--device", default="auto", help=flag_help.DEVICE)
        p.add_argument("--dtype", default="auto", help=flag_help.DTYPE)
        p.add_argument("--precision", default="float32", choices=["auto", "float32", "bf16"], help=flag_help.PRECISION)
        p.add_argument("--task", default=None, choices=["classification", "causal_lm"], help=flag_help.TASK)
        p.add_argument("--param", action="append", metavar="NAME=VALUE", help="method parameter, e.g. n_steps=100")
        p.add_argument("--chat", action="store_true", help="wrap the text in the tokenizer's chat template")
        p.add_argument("--unit", default="token", choices=["token", "word", "sentence"], help="granularity")
        p.add_argument("--separator", default=None, help="cut the text at this string instead (e.g. '\\n')")
        add_prompt_arguments(p)
        add_endpoint_arguments(p)
        if name == "explain":
            p.add_argument(
                "--generate",
                type=int,
                default=0,
                metavar="N",
                help="causal LM: generate N tokens greedily and explain each",
            )
            p.add_argument("--continuation", default=None, help="causal LM: explain each token of this continuation")
            p.add_argument(
                "--sentences-first",
                type=int,
                default=0,
                metavar="K",
                help="long texts: explain the sentences, then the words of the top K sentences",
            )
        p.add_argument("--mode", default="delete", choices=["delete", "mask"], help=flag_help.MODE)
        p.add_argument("--json", action="store_true", help=flag_help.JSON)
        p.set_defaults(func=func)

    p = sub.add_parser("layers", help="what each layer would answer (logit lens; a classifier's head per layer)")
    p.add_argument("--model", default=DEFAULT_MODEL, help="built-in name, local folder or hub id")
    p.add_argument("--text", required=True, help="the text ('-' reads stdin)")
    p.add_argument("--target", default=None, help="label or continuation followed through the layers")
    p.add_argument("--contrast", default=None, help="a second label or continuation to follow")
    p.add_argument("--top-k", type=int, default=5, help="how many of each layer's top predictions to show (default 5)")
    p.add_argument("--chat", action="store_true", help="wrap the text in the tokenizer's chat template")
    p.add_argument("--device", default="auto", help=flag_help.DEVICE)
    p.add_argument("--dtype", default="auto", help=flag_help.DTYPE)
    p.add_argument("--task", default=None, choices=["classification", "causal_lm"], help=flag_help.TASK)
    p.add_argument("--json", action="store_true", help=flag_help.JSON)
    p.set_defaults(func=cmd_layers)

    p = sub.add_parser("build-models", help="build (or rebuild) the built-in models into the cache")
    p.add_argument("--only", action="append", help="build only this model (repeatable)")
    p.add_argument(
        "--rebuild",
        action="store_true",
        help="build again even when the cache holds a good copy (e.g. after an upgrade)",
    )
    p.set_defaults(func=cmd_build_models)

    p = sub.add_parser("run", help="start the dashboard")
    p.add_argument("--port", type=int, default=8501, help="the port the dashboard listens on (default 8501)")
    p.add_argument(
        "--address",
        default="localhost",
        help="the address it listens on: localhost (this machine only, the default) or 0.0.0.0 (every network)",
    )
    p.add_argument("--model", default=None, help="model to open first (default: sentiment)")
    p.add_argument("streamlit_args", nargs=argparse.REMAINDER, help="extra arguments for streamlit")
    p.set_defaults(func=cmd_run)

    from explainers.cli.audit import add_parser as add_audit_parser  # whybox audit: its own module
    from explainers.cli.checks import add_parser as add_checks_parser  # whybox sanity, consistency
    from explainers.cli.concepts import add_parser as add_concepts_parser  # whybox concepts
    from explainers.cli.sae import add_parser as add_sae_parser  # whybox build-sae
    from explainers.cli.trace import add_parser as add_trace_parser  # whybox trace: activation patching
    from explainers.cli.whatif import add_whatif_commands  # counterfactuals and the model card

    add_audit_parser(sub)
    add_checks_parser(sub)
    add_trace_parser(sub)
    add_sae_parser(sub)
    add_whatif_commands(sub)
    add_concepts_parser(sub)
    return parser


def _log_to_file() -> None:
    """Internal errors' tracebacks go to whybox.log in the cache folder (WHYBOX_LOG moves it), not to
    the terminal; on stderr where no file can be written."""
    from explainers.models.builtin import cache_dir

    logger = logging.getLogger("whybox")
    if logger.handlers:
        return
    path = Path(os.environ.get("WHYBOX_LOG") or cache_dir() / "whybox.log")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    except OSError:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)


def _restart_with_huge_pages() -> None:
    """Run this command again in a process whose glibc backs large blocks with huge pages (see
    allocator.with_huge_pages): glibc reads its tunables only when a process starts. Where that cannot be
    done, go on as we are: only speed depends on it."""
    from explainers.serving.allocator import with_huge_pages

    env = with_huge_pages(os.environ)
    if env is not None:
        with contextlib.suppress(OSError):
            os.execve(sys.executable, [sys.executable, "-m", "explainers.cli", *sys.argv[1:]], env)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if argv is None and getattr(args, "huge_pages", False):  # the command line, not a caller in Python
        _restart_with_huge_pages()
    if getattr(args, "method", "absent") is None:
        from explainers.methods import DEFAULT_METHODS

        generating = getattr(args, "generate", 0) or getattr(args, "continuation", None)
        args.method = ["occlusion"] if generating else list(DEFAULT_METHODS)
    _log_to_file()
    try:
        _check_arguments(sys.argv[1:] if argv is None else list(argv))
        if hasattr(args, "text"):
            args.text = _read_text(args)  # once (stdin), and before any slow model load
        return args.func(args)
    except InternalError as exc:
        print(f"whybox: {exc}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
    except WhyboxError as exc:
        print(f"whybox: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # a bug of ours outside the engine's own guard
        print(f"whybox: {InternalError.from_exception(exc, f'running whybox {args.command}')}", file=sys.stderr)
        return EXIT_INTERNAL_ERROR
