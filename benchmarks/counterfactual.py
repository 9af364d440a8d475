"""Counterfactual and narration benchmark (issue 12).

    .venv/bin/python -m benchmarks.counterfactual                       # 50 sentences, 20 narrations
    .venv/bin/python -m benchmarks.counterfactual --n 10 --narrations 5 --drafts 5 --threads 1
    .venv/bin/python -m benchmarks.counterfactual --json > cf.json

Minimal flips: the guided search (explainers.whatif.counterfactual.minimal_flips, default budget) against a
brute-force search over every set of up to 2 removed words, on the first N held-out Rotten Tomatoes
sentences of the built-in `sentiment` model (never trained on). Reported: flips found, mean words
removed, model calls and seconds per sentence, and whether the guided search finds the same
smallest flips as brute force where brute force finds one.

Narration: smollm2 (CPU) drafts an explanation of each sentence's integrated-gradients attribution;
reported: seconds per draft, and the share of the drafted claims (and sentences) the checker
rejects. Language-model counterfactuals: drafts tried and held per sentence.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch
from explainers.models.builtin import sentiment_splits
from explainers.models.loading import load_model
from explainers.whatif import counterfactual as cf
from explainers.whatif.claims import UNSUPPORTED

BRUTE_MAX_SIZE = 2


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def flips_section(handle, texts: list[str]) -> dict:
    rows = []
    for k, text in enumerate(texts):
        guided = cf.minimal_flips(handle, text)
        brute = cf.brute_force_flips(handle, text, max_size=BRUTE_MAX_SIZE)
        g_sets = {tuple(e.index for e in f.edits) for f in guided.flips}
        b_sets = {tuple(e.index for e in f.edits) for f in brute.flips}
        rows.append(
            {
                "words": len(cf.word_spans(text)),
                "guided_size": guided.size,
                "guided_calls": guided.model_calls,
                "guided_seconds": guided.seconds,
                "brute_size": brute.size,
                "brute_calls": brute.model_calls,
                "brute_seconds": brute.seconds,
                # where brute force finds a flip of <= 2 words: does the guided search find the same size and sets?
                "same_size": None if brute.size is None else guided.size == brute.size,
                "same_sets": None if brute.size is None else g_sets == b_sets,
                "guided_subset": None if brute.size is None else (guided.size == brute.size and g_sets <= b_sets),
            }
        )
        log(
            f"  flips {k + 1}/{len(texts)}: guided size {guided.size} in {guided.model_calls} calls, "
            f"brute size {brute.size} in {brute.model_calls} calls"
        )
    n = len(rows)
    comparable = [r for r in rows if r["brute_size"] is not None]

    def mean(key, subset=rows):
        values = [r[key] for r in subset if r[key] is not None]
        return statistics.fmean(values) if values else None

    return {
        "sentences": n,
        "mean_words": mean("words"),
        "guided": {
            "found": sum(r["guided_size"] is not None for r in rows),
            "found_up_to_2": sum(r["guided_size"] is not None and r["guided_size"] <= 2 for r in rows),
            "mean_words_changed": mean("guided_size"),
            "calls_per_sentence": mean("guided_calls"),
            "seconds_per_sentence": mean("guided_seconds"),
        },
        "brute_force": {
            "found": len(comparable),
            "mean_words_changed": mean("brute_size"),
            "calls_per_sentence": mean("brute_calls"),
            "seconds_per_sentence": mean("brute_seconds"),
        },
        "agreement": {
            "brute_found": len(comparable),
            "same_smallest_size": sum(bool(r["same_size"]) for r in comparable),
            "same_flip_sets": sum(bool(r["same_sets"]) for r in comparable),
            "guided_sets_within_brute": sum(bool(r["guided_subset"]) for r in comparable),
        },
        "rows": rows,
    }


def narration_section(handle, generator, texts: list[str], audience: str) -> dict:
    from explainers.whatif.narration import narrate

    from explainers.methods import explain

    rows = []
    for k, text in enumerate(texts):
        exp = explain(handle, text, "integrated_gradients")
        started = time.perf_counter()
        narration = narrate(exp, audience, generator)
        seconds = time.perf_counter() - started
        claims = [c for v in narration.verdicts for c in v.claims]
        rows.append(
            {
                "seconds": seconds,
                "source": narration.source,
                "sentences": len(narration.verdicts),
                "unsupported_sentences": sum(v.verdict == UNSUPPORTED for v in narration.verdicts),
                "checkable_sentences": sum(bool(v.claims) for v in narration.verdicts),
                "claims": len(claims),
                "rejected_claims": sum(not c.holds for c in claims),
                "text": narration.text,
            }
        )
        log(
            f"  narration {k + 1}/{len(texts)}: {seconds:.1f} s, {rows[-1]['rejected_claims']} of "
            f"{rows[-1]['claims']} claims rejected"
        )
    claims = sum(r["claims"] for r in rows)
    sentences = sum(r["sentences"] for r in rows)
    checkable = sum(r["checkable_sentences"] for r in rows)
    return {
        "drafts": len(rows),
        "audience": audience,
        "generator": generator.name,
        "fell_back": sum(r["source"] == "template" for r in rows),
        "seconds_per_draft": statistics.fmean(r["seconds"] for r in rows) if rows else None,
        "claims": claims,
        "rejected_claims": sum(r["rejected_claims"] for r in rows),
        "rejected_share": sum(r["rejected_claims"] for r in rows) / claims if claims else None,
        "sentences": sentences,
        "checkable_sentences": checkable,
        "unsupported_sentences": sum(r["unsupported_sentences"] for r in rows),
        "unsupported_share_of_checkable": (
            sum(r["unsupported_sentences"] for r in rows) / checkable if checkable else None
        ),
        "rows": rows,
    }


def drafts_section(handle, generator, texts: list[str]) -> dict:
    rows = []
    for k, text in enumerate(texts):
        result = cf.draft_counterfactuals(handle, text, generator)
        rows.append({"tried": result.tried, "held": result.held, "seconds": result.seconds})
        log(f"  drafts {k + 1}/{len(texts)}: {result.held} of {result.tried} held ({result.seconds:.1f} s)")
    return {
        "sentences": len(rows),
        "tried": sum(r["tried"] for r in rows),
        "held": sum(r["held"] for r in rows),
        "seconds_per_sentence": statistics.fmean(r["seconds"] for r in rows) if rows else None,
        "rows": rows,
    }


def card_section(handle, generator, probe_texts: list[str]) -> dict:
    """The built-in model's card with its prose by the templates and by the language model: drafting time
    (the prose step alone: the probes are the same for both) and the checker's verdicts on each."""
    from explainers.whatif.model_card import build_model_card

    out = {"probe_texts": len(probe_texts)}
    for name, gen in (("template", None), (generator.name, generator)):
        card = build_model_card(handle, probe_texts=probe_texts, generator=gen)
        prose = card.facts["prose"]
        counts = [s["counts"] for s in prose["sections"].values()]
        out[name] = {
            "seconds": prose["seconds"],
            "sentences": sum(sum(c.values()) for c in counts),
            **{k: sum(c[k] for c in counts) for k in ("supported", "unsupported", "not checkable")},
            "fell_back": sum(bool(s["fallback_reason"]) for s in prose["sections"].values()),
            "text": {s: [v["sentence"] for v in d["sentences"]] for s, d in prose["sections"].items()},
        }
        log(f"  card prose by {name}: {prose['seconds']:.1f} s")
    return out


def _fmt(value, spec=".2f") -> str:
    return "n/a" if value is None else format(value, spec)


def print_report(result: dict) -> None:
    if "flips" in result:
        print_flips(result)
    if "card" in result:
        c = result["card"]
        print(f"\nModel card prose (probes on {c['probe_texts']} held-out sentences):")
        for name, r in c.items():
            if isinstance(r, dict):
                print(
                    f"  {name:<10} {r['seconds']:>7.2f} s  {r['sentences']} sentences: {r['supported']} supported, "
                    f"{r['unsupported']} unsupported, {r['not checkable']} not checkable, "
                    f"{r['fell_back']} section(s) fell back"
                )


def print_flips(result: dict) -> None:
    f = result["flips"]
    print(
        f"Minimal flips on {f['sentences']} held-out sentences (mean {f['mean_words']:.1f} words), "
        f"model '{result['model']}', {result['threads']} thread(s)"
    )
    print(f"{'search':<22}{'flips found':>12}{'mean words':>12}{'calls/sent.':>13}{'s/sent.':>10}")
    g, b = f["guided"], f["brute_force"]
    print(
        f"{'guided (≤4 words)':<22}{g['found']:>12}{_fmt(g['mean_words_changed']):>12}"
        f"{_fmt(g['calls_per_sentence'], '.1f'):>13}{_fmt(g['seconds_per_sentence'], '.3f'):>10}"
    )
    print(f"{'  of which ≤2 words':<22}{g['found_up_to_2']:>12}")
    print(
        f"{'brute force (≤2)':<22}{b['found']:>12}{_fmt(b['mean_words_changed']):>12}"
        f"{_fmt(b['calls_per_sentence'], '.1f'):>13}{_fmt(b['seconds_per_sentence'], '.3f'):>10}"
    )
    a = f["agreement"]
    print(
        f"where brute force finds a flip ({a['brute_found']} sentences): guided finds the same smallest size in "
        f"{a['same_smallest_size']}, exactly the same flips in {a['same_flip_sets']}, only flips brute force "
        f"also found in {a['guided_sets_within_brute']}"
    )
    if "narration" in result:
        n = result["narration"]
        print(
            f"\nNarration by {n['generator']} on CPU ({n['audience']}), {n['drafts']} drafts: "
            f"{_fmt(n['seconds_per_draft'])} s per draft, {n['fell_back']} fell back to the template"
        )
        print(
            f"  claims: {n['rejected_claims']} of {n['claims']} rejected ({_fmt(n['rejected_share'], '.1%')}); "
            f"sentences: {n['unsupported_sentences']} unsupported of {n['checkable_sentences']} checkable "
            f"({_fmt(n['unsupported_share_of_checkable'], '.1%')}), {n['sentences']} in all"
        )
    if "drafts" in result:
        d = result["drafts"]
        print(
            f"\nLanguage-model counterfactuals: {d['held']} of {d['tried']} drafts held (verified flips) over "
            f"{d['sentences']} sentences, {_fmt(d['seconds_per_sentence'], '.1f')} s per sentence"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=50, help="held-out sentences for the flip search")
    parser.add_argument("--narrations", type=int, default=20, help="sentences narrated by smollm2 (0: skip)")
    parser.add_argument("--audience", default="analyst", choices=["stakeholder", "analyst", "teaching"])
    parser.add_argument("--drafts", type=int, default=0, help="sentences given to smollm2 for counterfactuals")
    parser.add_argument("--max-words", type=int, default=40, help="skip longer sentences (brute force is quadratic)")
    parser.add_argument("--card", type=int, default=0, metavar="N", help="model card prose, probes on N sentences")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    handle = load_model("sentiment", device="cpu")
    texts = [t for t, _ in sentiment_splits()[1] if len(cf.word_spans(t)) <= args.max_words]
    result = {"model": "sentiment", "threads": torch.get_num_threads()}
    if args.n:
        log(f"flip search on {args.n} sentences")
        cf.minimal_flips(handle, texts[0])  # warm-up, untimed
        result["flips"] = flips_section(handle, texts[: args.n])
    if args.narrations or args.drafts or args.card:
        from explainers.whatif.llm import LocalGenerator

        generator = LocalGenerator(load_model("smollm2", device="cpu"))
        if args.narrations:
            log(f"narration of {args.narrations} sentences")
            result["narration"] = narration_section(handle, generator, texts[: args.narrations], args.audience)
        if args.drafts:
            log(f"language-model counterfactuals for {args.drafts} sentences")
            result["drafts"] = drafts_section(handle, generator, texts[: args.drafts])
        if args.card:
            log(f"model card prose, probes on {args.card} sentences")
            result["card"] = card_section(handle, generator, texts[: args.card])
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
