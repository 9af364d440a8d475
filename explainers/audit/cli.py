"""`whybox audit`: explain and score every text of a data set; results, summary and report into --out."""

from __future__ import annotations

import argparse
import sys

from explainers.errors import InputError


def add_parser(sub) -> None:
    from explainers.models.builtin import DEFAULT_MODEL

    p = sub.add_parser(
        "audit",
        help="explain and score every text of a data set (CSV, JSONL, Parquet)",
        description="Audit a classifier over a data set. Try: whybox audit --data builtin:rt-heldout --limit 50",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="built-in name, local folder or hub id")
    p.add_argument("--data", required=True, help="a .csv, .jsonl or .parquet file, or builtin:rt-heldout")
    p.add_argument("--text-column", default="text")
    p.add_argument("--label-column", default=None, help="gold labels (label names or class indices)")
    p.add_argument("--rationale-column", default=None, help="marked words (list, or words separated by spaces/commas)")
    p.add_argument(
        "--method",
        action="append",
        dest="audit_methods",
        help="attribution method, repeatable (default: integrated_gradients, lime, occlusion)",
    )
    p.add_argument("--param", action="append", metavar="METHOD.NAME=VALUE", help="e.g. lime.n_samples=500")
    p.add_argument("--target", default="", help="explain this label instead of the predicted one")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mode", default="delete", choices=["delete", "mask"], help="how metrics remove tokens")
    p.add_argument("--limit", type=int, default=None, help="audit only the first N texts")
    p.add_argument("--out", default="whybox-audit", help="folder for the results, summary and report")
    p.add_argument("--store", default=None, help="results store shared between audits (default: in the cache)")
    p.add_argument("--engine", default="local", choices=["local", "ray"])
    p.add_argument(
        "--ray-address",
        default=None,
        help="an existing Ray cluster (e.g. ray://head:10001); default: a local Ray started for this run",
    )
    p.add_argument("--workers", type=int, default=None, help="Ray actors (default: one per GPU, else 2)")
    p.add_argument("--chunk-size", type=int, default=8, help="texts per chunk written to the store")
    p.add_argument("--resume", action="store_true", help="continue the audit already in --out")
    # thousands of texts through one process: its allocator's settings pay (explainers/allocator.py)
    p.set_defaults(func=cmd_audit, huge_pages=True)


DEFAULT_AUDIT_METHODS = ("integrated_gradients", "lime", "occlusion")


def parse_params(pairs: list[str] | None, methods: list[str]) -> dict:
    params: dict = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        method, dot, param = name.strip().rpartition(".")
        if not sep or not dot:
            raise InputError(f"--param takes METHOD.NAME=VALUE (e.g. lime.n_samples=500), not '{pair}'.")
        if method not in methods:
            raise InputError(f"--param {pair}: '{method}' is not one of the chosen methods ({', '.join(methods)}).")
        params.setdefault(method, {})[param] = value.strip()
    return params


def cmd_audit(args: argparse.Namespace) -> int:
    from explainers.audit.data import read_data
    from explainers.audit.engine import run_audit
    from explainers.audit.work import AuditSettings

    methods = args.audit_methods or list(DEFAULT_AUDIT_METHODS)
    settings = AuditSettings(
        args.model, tuple(methods), parse_params(args.param, methods), args.seed, args.target, args.mode
    ).checked()  # before the (slow) data and model
    if args.limit is not None and args.limit < 1:
        raise InputError(f"--limit must be at least 1, not {args.limit}.")
    data = read_data(args.data, args.text_column, args.label_column, args.rationale_column, args.limit)
    print(
        f"auditing {len(data.rows):,} texts from {data.source} (skipped: {data.describe_skipped()}) with "
        f"{', '.join(methods)} on {args.engine}",
        file=sys.stderr,
    )
    from tqdm import tqdm

    from explainers.audit.summary import RunningMeans

    bar = tqdm(total=len(data.rows), unit="text", file=sys.stderr, desc="audit", dynamic_ncols=True)
    running = RunningMeans(methods)  # what the texts computed so far say, as the Audit page shows it

    def progress(p):
        running.add(p.records)
        notes = [f"{p.reused:,} from the store"] if p.reused else []
        if running.accuracy is not None:
            notes.append(f"accuracy so far {running.accuracy:.2f}")
        bar.set_postfix_str(", ".join(notes), refresh=False)
        bar.total = p.total
        bar.update(p.done - bar.n)

    try:
        result = run_audit(
            data,
            settings,
            args.out,
            store_dir=args.store,
            engine=args.engine,
            chunk_size=args.chunk_size,
            progress=progress,
            resume=args.resume,
            ray_address=args.ray_address,
            workers=args.workers,
        )
    finally:
        bar.close()
    summary = result.summary
    pred = summary["prediction"]
    if pred.get("labelled"):
        print(
            f"accuracy {pred['accuracy']:.3f} on {pred['labelled']:,} labelled texts; "
            f"calibration error {pred['reliability']['ece']:.3f}"
        )
    if summary.get("ranking"):
        r = summary["ranking"]
        print(
            f"most faithful: {r['winner']} ({'significantly' if r['separated'] else 'not significantly'} ahead of "
            f"{r['runner_up']})"
        )
    for label, words in summary["words"]["consensus"].items():
        print(f"towards {label}: " + ", ".join(w["word"] for w in words[:8]))
    for name in ("results.parquet", "results.csv", "summary.json", "report.html"):
        print(f"wrote {result.out_dir / name}")
    return 0
