"""Counterfactuals: every number checked against the model called directly, minimal flips against brute force."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import numpy as np
import pytest
import torch
from explainers.whatif import counterfactual as cf
from explainers.whatif.llm import EndpointGenerator, LocalGenerator, parse_rewrites

from explainers.errors import InputError, ModelLoadError

TEXT = "a gripping , funny and beautifully acted film , but the plot is thin ."
# on the fixture model, no single word removed flips this one, but some pairs do
TEXT2 = "one of the best movies of the year , full of heart ."


@pytest.fixture(scope="module")
def bert(tiny_bert_dir, tmp_path_factory):
    """The tiny BERT with large random weights: its answers move visibly when words go (the conftest one
    barely moves, ~1e-5), so flips exist at sizes 1 and 2 for thresholds between its answers."""
    from explainers.models.loading import load_model
    from transformers import BertForSequenceClassification

    torch.manual_seed(1)
    model = BertForSequenceClassification.from_pretrained(tiny_bert_dir)
    model.config.initializer_range = 1.0
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.5)
    path = tmp_path_factory.mktemp("loud-bert")
    model.save_pretrained(path)
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(path)
    return load_model(str(path), device="cpu")


def p_target(handle, texts, index):
    return handle.predict_proba(list(texts))[:, index]


def removal_probs(handle, text, index, max_size=2):
    spans = cf.word_spans(text)
    subsets = [c for k in range(1, max_size + 1) for c in itertools.combinations(range(len(spans)), k)]
    texts = [cf.apply_edits(text, spans, {i: None for i in c}) for c in subsets]
    return dict(zip(subsets, p_target(handle, texts, index)))


# ---- editing ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "text, edits, expected",
    [
        ("a b c", {1: None}, "a c"),
        ("a b c", {0: None}, "b c"),
        ("a b c", {2: None}, "a b"),
        ("flat, although x", {1: None}, "flat although x"),
        ("Hi there.", {1: None, 2: None}, "Hi"),
        ("a  b c", {1: "XX"}, "a  XX c"),
        ("I don't like it", {1: "do"}, "I do like it"),
    ],
)
def test_apply_edits(text, edits, expected):
    assert cf.apply_edits(text, cf.word_spans(text), edits) == expected


def test_substitution_lists_parse_swap_and_keep_case():
    pairs = cf.parse_substitutions("he -> she, she -> he\nHis => her; very ->")
    assert pairs == [("he", "she"), ("she", "he"), ("His", "her"), ("very", "")]
    assert cf.apply_substitutions("He said she was very kind to his dog.", pairs) == "She said he was kind to her dog."
    assert cf.apply_substitutions("the hero", pairs) == "the hero"  # whole words only
    for bad in ("", "he", "-> she"):
        with pytest.raises(InputError):
            cf.parse_substitutions(bad)


# ---- minimal flips against brute force ------------------------------------------------------------------
def _threshold_between(values):
    """A threshold halfway between two neighbouring values, far from both (no rounding can cross it)."""
    values = sorted(values)
    gaps = [(b - a, (a + b) / 2) for a, b in zip(values, values[1:])]
    return max(gaps)[1]


def test_minimal_flips_match_brute_force_at_size_one(bert):
    goal = cf.make_goal(bert, TEXT)
    probs = removal_probs(bert, TEXT, goal.index, max_size=1)
    threshold = _threshold_between(list(probs.values()))
    expected = {c for c, p in probs.items() if p < threshold}
    guided = cf.minimal_flips(bert, TEXT, threshold=threshold)
    brute = cf.brute_force_flips(bert, TEXT, threshold=threshold)
    assert guided.size == brute.size == 1
    assert {tuple(e.index for e in f.edits) for f in guided.flips} == expected
    assert {tuple(e.index for e in f.edits) for f in brute.flips} == expected
    n = len(cf.word_spans(TEXT))
    assert guided.model_calls == 1 + n  # stops after the single-word pass
    assert brute.model_calls == cf.brute_force_calls(n) == 1 + n + n * (n - 1) // 2


def test_minimal_flips_at_size_two_are_verified_and_exhaustive_settings_equal_brute_force(bert):
    goal = cf.make_goal(bert, TEXT2, target="positive")
    probs = removal_probs(bert, TEXT2, goal.index)
    singles = min(p for c, p in probs.items() if len(c) == 1)
    pairs = sorted(p for c, p in probs.items() if len(c) == 2 and p < singles)
    assert pairs, "the fixture model should have pairs that go lower than any single word"
    threshold = (singles + pairs[0]) / 2 if len(pairs) == 1 else _threshold_between([singles, *pairs[:3]])
    expected = {c for c, p in probs.items() if p < threshold}
    assert expected and all(len(c) == 2 for c in expected)

    brute = cf.brute_force_flips(bert, TEXT2, threshold=threshold, target="positive")
    assert {tuple(e.index for e in f.edits) for f in brute.flips} == expected
    n = len(cf.word_spans(TEXT2))
    exhaustive = cf.minimal_flips(bert, TEXT2, threshold=threshold, target="positive", beam=n, width=n, budget=10_000)
    assert {tuple(e.index for e in f.edits) for f in exhaustive.flips} == expected

    guided = cf.minimal_flips(bert, TEXT2, threshold=threshold, target="positive")
    assert guided.model_calls <= guided.planned_calls == cf.plan_calls(n)
    if guided.flips:  # the guided search may miss some, never invents one
        assert guided.size == 2
        assert {tuple(e.index for e in f.edits) for f in guided.flips} <= expected
    for flip in guided.flips + brute.flips:  # each one's numbers are the model's, called directly
        assert flip.target_prob == pytest.approx(p_target(bert, [flip.text], goal.index)[0], abs=1e-6)
        assert flip.change == pytest.approx(flip.target_prob - goal.original_prob, abs=1e-9)
        assert flip.flipped and flip.target_prob < threshold


def test_model_calls_are_counted_and_the_budget_holds(bert, monkeypatch):
    rows = []
    real = bert.predict_proba
    monkeypatch.setattr(
        bert, "predict_proba", lambda texts, target=None: rows.append(len(texts)) or real(texts, target)
    )
    n = len(cf.word_spans(TEXT))
    result = cf.minimal_flips(bert, TEXT, threshold=1e-12, budget=n + 10)  # nothing can flip: spends it all
    assert result.flips == [] and result.exhausted
    assert result.model_calls == 1 + sum(rows) == n + 10  # + 1: the original prediction
    assert len(rows) == 2  # one batched call per size: singles, then the pairs that fit
    assert result.planned_calls == n + 10
    assert len(result.closest) == 3 and result.closest[0].target_prob == min(c.target_prob for c in result.closest)


def test_a_flip_of_the_label_without_threshold(bert):
    """No threshold: a flip is a change of the predicted label, checked against argmax of the model."""
    n = len(cf.word_spans(TEXT2))
    result = cf.minimal_flips(bert, TEXT2, max_size=2, beam=n, width=n, budget=10_000)
    goal = result.goal
    probs = removal_probs(bert, TEXT2, goal.index)
    brute = {c for c, p in probs.items() if p < 0.5}  # two labels: argmax changes iff p(target) < 0.5
    assert brute and min(len(c) for c in brute) == 2
    assert {tuple(e.index for e in f.edits) for f in result.flips} == brute
    for flip in result.flips:
        assert flip.label != goal.target.label
        assert flip.label == bert.labels[int(np.argmax(bert.predict_proba([flip.text])[0]))]


def test_causal_lm_flips_when_the_continuation_halves(tiny_gpt2):
    text = "The capital of France is"
    result = cf.minimal_flips(tiny_gpt2, text, target="Paris")
    assert result.goal.threshold == pytest.approx(result.goal.original_prob / 2)
    for flip in result.flips + result.closest:
        p = tiny_gpt2.predict_proba([flip.text], result.goal.target)[0, 1]
        assert flip.target_prob == pytest.approx(p, abs=1e-6)
        assert flip.flipped == (p < result.goal.threshold)


def test_bad_input_gets_clear_errors(bert):
    with pytest.raises(InputError):
        cf.minimal_flips(bert, "   ")
    with pytest.raises(InputError, match="threshold"):
        cf.minimal_flips(bert, TEXT, threshold=1.5)
    with pytest.raises(InputError, match="guide"):
        cf.minimal_flips(bert, TEXT, guide=[1.0, 2.0])


# ---- live edit ----------------------------------------------------------------------------------------
def test_edit_diff_explains_both_texts_for_the_original_target(bert):
    from explainers.metrics.compare import align_words

    from explainers.methods import explain

    edited = TEXT.replace("funny", "dreary")
    diff = cf.edit_diff(bert, TEXT, edited)
    a = explain(bert, TEXT, "leave_one_out")
    b = explain(bert, edited, "leave_one_out", target=a.target.label)
    assert diff.edited.target.label == diff.original.target.label == a.target.label
    assert diff.edited.word_scores == pytest.approx(b.word_scores, abs=1e-6)
    assert diff.change == pytest.approx(b.target_prob - a.target_prob, abs=1e-6)
    assert diff.frame.equals(align_words(a, b)) or np.allclose(
        diff.frame["difference"].fillna(0), align_words(a, b)["difference"].fillna(0), atol=1e-6
    )
    changed = diff.frame[diff.frame.status == "changed"]
    assert list(changed.word_a) == ["funny"] and list(changed.word_b) == ["dreary"]
    label = lambda exp: max(exp.probabilities, key=exp.probabilities.get)  # noqa: E731
    assert diff.flipped == (label(a) != label(b))
    json.dumps(diff.to_dict(), allow_nan=False)  # strict JSON: the added/removed words carry null, not NaN


# ---- substitutions ----------------------------------------------------------------------------------
def test_embedding_neighbours_are_the_cosine_nearest_whole_words(bert):
    weight = bert.model.get_input_embeddings().weight.detach().numpy()
    word_id = bert.tokenizer("film", add_special_tokens=False)["input_ids"][0]
    unit = weight / np.linalg.norm(weight, axis=1, keepdims=True)
    sims = unit @ unit[word_id]
    got = cf.embedding_neighbours(bert, "film", k=5)
    assert len(got) == 5 and "film" not in [w for w, _ in got]
    for word, sim in got:
        j = bert.tokenizer.convert_tokens_to_ids(word)
        assert sim == pytest.approx(float(sims[j]), abs=1e-5)
    # nothing closer was skipped except non-words, specials and subword pieces
    allowed = [j for j in np.argsort(-sims) if j != word_id]
    first_words = []
    for j in allowed:
        tok = bert.tokenizer.convert_ids_to_tokens(int(j))
        if tok.isalpha() and len(tok) > 1 and j not in bert.tokenizer.all_special_ids:
            first_words.append(tok)
        if len(first_words) == 5:
            break
    assert [w for w, _ in got] == first_words
    assert cf.embedding_neighbours(bert, "unbelievablyxyz") == []  # not one token: no embedding of its own


def test_substitutions_are_verified_with_the_model(bert):
    goal = cf.make_goal(bert, TEXT)
    found, calls = cf.substitutions(bert, TEXT, words=2, per_word=3, keep=100)
    n = len(cf.word_spans(TEXT))
    assert calls == 1 + n + len(found) and len(found) == 6
    probs = p_target(bert, [c.text for c in found], goal.index)
    for c, p in zip(found, probs):
        assert c.target_prob == pytest.approx(p, abs=1e-6)
        assert c.flipped == (p < 0.5)
        [edit] = c.edits
        assert edit.replacement and c.text == cf.apply_edits(TEXT, cf.word_spans(TEXT), {edit.index: edit.replacement})
    assert [c.flipped for c in found] == sorted((c.flipped for c in found), reverse=True)  # flips first


def test_probe_flip_rate_and_mean_change_against_a_hand_computation(bert):
    texts = ["he said the film was fun .", "she found his jokes flat .", "no pronouns here .", "he is dull ."]
    result = cf.probe(bert, texts, "he -> she, she -> he, his -> her")
    assert result.n_texts == 4 and result.n_changed == 3 and result.model_calls == 6
    edited = ["she said the film was fun .", "he found her jokes flat .", "she is dull ."]
    before = bert.predict_proba([texts[0], texts[1], texts[3]])
    after = bert.predict_proba(edited)
    labels = before.argmax(1)
    flips = after.argmax(1) != labels
    changes = after[np.arange(3), labels] - before[np.arange(3), labels]
    assert [r.edited for r in result.rows] == edited
    assert result.flip_rate == pytest.approx(flips.mean())
    assert result.mean_change == pytest.approx(changes.mean(), abs=1e-6)
    empty = cf.probe(bert, ["nothing to swap"], "he -> she")
    assert empty.n_changed == 0 and empty.flip_rate is None and empty.mean_change is None


# ---- drafts by a language model -------------------------------------------------------------------------
class FixedDrafts:
    name = "fixed"

    def __init__(self, replies):
        self.replies = replies
        self.prompts = []

    def generate(self, prompts):
        self.prompts += prompts
        return self.replies[: len(prompts)]


def test_drafts_are_verified_and_counted(bert):
    goal = cf.make_goal(bert, TEXT)
    replies = [
        '1. a dull , boring film , but the plot is thin .\n2. "a gripping film ."',
        TEXT,  # the original itself: not a draft
        "Sentence: a dull , boring film , but the plot is thin .",
    ]  # a repeat: tried once
    gen = FixedDrafts(replies)
    result = cf.draft_counterfactuals(
        bert,
        TEXT,
        gen,
        threshold=_threshold_between(
            p_target(bert, ["a dull , boring film , but the plot is thin .", "a gripping film ."], goal.index).tolist()
            + [goal.original_prob]
        ),
    )
    assert len(gen.prompts) == 3 and "negative" in gen.prompts[0] or "positive" in gen.prompts[0]
    assert result.tried == 2
    texts = sorted(d.text for d in result.drafts)
    assert texts == ["a dull , boring film , but the plot is thin .", "a gripping film ."]
    probs = dict(zip(texts, p_target(bert, texts, goal.index)))
    assert result.held == sum(probs[t] < result.goal.threshold for t in texts)
    for d in result.drafts:
        assert d.verified and d.source == "fixed"
        assert d.target_prob == pytest.approx(probs[d.text], abs=1e-6)


def test_local_generator_drafts_greedily_and_refuses_a_classifier(tiny_gpt2, bert):
    gen = LocalGenerator(tiny_gpt2, max_new_tokens=6)
    first = gen.generate(["Rewrite: the film is fun", "Another prompt"])
    assert first == gen.generate(["Rewrite: the film is fun", "Another prompt"])  # greedy: repeatable
    result = cf.draft_counterfactuals(bert, TEXT, gen)
    assert result.tried == len(result.drafts) and 0 <= result.held <= result.tried
    with pytest.raises(ModelLoadError):
        LocalGenerator(bert)


def test_parse_rewrites_strips_numbering_quotes_and_runaways():
    reply = '1. "The film is dull."\n- Rewrite: The film is bad.\n\nThe film is fun.\n' + "x" * 500
    assert parse_rewrites(reply, "The film is fun.") == ["The film is dull.", "The film is bad."]


def test_endpoint_generator_speaks_openai_chat(monkeypatch):
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers.get("Authorization"), body))
            reply = json.dumps({"choices": [{"message": {"content": " a dull film "}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("WHYBOX_LLM_URL", f"http://127.0.0.1:{server.server_port}/v1")
        monkeypatch.setenv("WHYBOX_LLM_MODEL", "m1")
        monkeypatch.setenv("WHYBOX_LLM_API_KEY", "k")
        from explainers.whatif.llm import default_generator

        gen = default_generator(load=lambda name: pytest.fail("the endpoint is configured: no local model"))
        assert isinstance(gen, EndpointGenerator)
        assert gen.generate(["hello"]) == ["a dull film"]
        path, auth, body = seen[0]
        assert path == "/v1/chat/completions" and auth == "Bearer k"
        assert body["model"] == "m1" and body["temperature"] == 0 and body["messages"][0]["content"] == "hello"
    finally:
        server.shutdown()
        server.server_close()  # refused from now on, not left hanging in the backlog
    with pytest.raises(ModelLoadError, match="did not answer"):
        EndpointGenerator(f"http://127.0.0.1:{server.server_port}/v1", "m").generate(["x"])


# ---- the CLI ----------------------------------------------------------------------------------------------
def _strict_json(text: str):
    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=refuse)


def test_cli_counterfactual_json_is_strict_and_matches_the_model(tiny_bert_dir, tiny_bert, capsys):
    from explainers.cli import main

    code = main(
        [
            "counterfactual",
            "--model",
            str(tiny_bert_dir),
            "--text",
            TEXT,
            "--budget",
            "30",
            "--substitutions",
            "2",
            "--probe",
            "film -> movie",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    data = _strict_json(out)
    search = data["search"]
    n = len(cf.word_spans(TEXT))
    assert search["model_calls"] <= 30 and search["planned_calls"] == cf.plan_calls(n, budget=30)
    goal = cf.make_goal(tiny_bert, TEXT)
    assert search["goal"]["original_prob"] == pytest.approx(goal.original_prob, abs=1e-6)
    shown = search["flips"] + search["closest"] + data["substitutions"]["candidates"]
    assert shown
    probs = p_target(tiny_bert, [c["text"] for c in shown], goal.index)
    for c, p in zip(shown, probs):
        assert c["target_prob"] == pytest.approx(p, abs=1e-6)
    assert data["probe"]["n_changed"] == 1 and data["probe"]["rows"][0]["edited"] == TEXT.replace("film", "movie")
    assert all(c["flipped"] for c in data["counterfactuals"])


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--text", "   "], "empty"),
        (["--text", TEXT, "--budget", "0"], "budget"),
        (["--text", TEXT, "--threshold", "2"], "threshold"),
        (["--text", TEXT, "--probe", "he"], "substitution"),
    ],
)
def test_cli_counterfactual_bad_input_exits_2_with_one_line(tiny_bert_dir, capsys, argv, message):
    from explainers.cli import main

    code = main(["counterfactual", "--model", str(tiny_bert_dir), *argv, "--json"])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_causal_lm_substitutions_probe_and_live_diff(tiny_gpt2):
    text = "The capital of France is Paris. The capital of Italy is"
    goal = cf.make_goal(tiny_gpt2, text)
    found, _ = cf.substitutions(tiny_gpt2, text, words=2, per_word=2)
    for c in found:
        p = tiny_gpt2.predict_proba([c.text], goal.target)[0, 1]
        assert c.target_prob == pytest.approx(p, abs=1e-6) and c.flipped == (p < goal.threshold)
    result = cf.probe(tiny_gpt2, [text], "France -> Italy")
    [row] = result.rows
    edited_goal = cf.make_goal(tiny_gpt2, text)
    p_after = tiny_gpt2.predict_proba([row.edited], edited_goal.target)[0, 1]
    assert row.p_before == pytest.approx(edited_goal.original_prob, abs=1e-6)
    assert row.p_after == pytest.approx(p_after, abs=1e-6)
    diff = cf.edit_diff(tiny_gpt2, text, text.replace("Italy", "Spain"))
    assert diff.edited.target.label == diff.original.target.label


def test_a_checkpoint_with_a_masked_lm_head_proposes_with_it(tiny_bert_dir, tmp_path, bert):
    """A classifier folder that also holds a masked-LM head: substitutions come from that head, and they
    are the head's top whole words at the masked position, computed here directly."""
    from explainers.models.loading import load_model
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    torch.manual_seed(0)
    config = BertConfig.from_pretrained(tiny_bert_dir)
    BertForMaskedLM(config).save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(tiny_bert_dir).save_pretrained(tmp_path)
    # the head is random on purpose: this test is about the masked-LM proposer, not the classifier
    handle = load_model(str(tmp_path), device="cpu", task="classification", allow_new_weights=True)
    mlm = cf.masked_lm(handle)
    assert mlm is not None and cf.masked_lm(bert) is None  # the loud fixture saved no MLM head

    text = "a gripping film"
    props = cf.mlm_proposals(handle, mlm, text, [1], k=3)[1]
    tok = handle.tokenizer
    enc = tok("a [MASK] film", return_tensors="pt")
    with torch.no_grad():
        logits = BertForMaskedLM.from_pretrained(tmp_path).eval()(**enc).logits[0, 2]
    expected = []
    for j in torch.argsort(logits, descending=True).tolist():
        word = tok.convert_ids_to_tokens(j)
        if word.isalpha() and len(word) > 1 and word != "gripping" and j not in tok.all_special_ids:
            expected.append(word)
        if len(expected) == 3:
            break
    assert props == expected
    found, _ = cf.substitutions(handle, text, words=1, per_word=3, keep=10)
    assert {c.source for c in found} == {"masked_lm"}
    assert sorted(c.edits[0].replacement for c in found) == sorted(
        cf.mlm_proposals(handle, mlm, text, [found[0].edits[0].index], k=3)[found[0].edits[0].index]
    )
    with pytest.raises(InputError, match="masked-language-model"):
        cf.substitutions(bert, TEXT, proposer="mlm")


def test_cli_llm_drafts_through_a_configured_endpoint(tiny_bert_dir, tiny_bert, monkeypatch, capsys):
    """--llm with WHYBOX_LLM_URL set: drafts come from the endpoint, each verified by the explained model."""
    drafts = ["a dull , boring film , but the plot is thin .", "a gripping film ."]

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - the http.server API
            self.rfile.read(int(self.headers["Content-Length"]))
            reply = json.dumps({"choices": [{"message": {"content": "\n".join(drafts)}}]}).encode()
            self.send_response(200)
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("WHYBOX_LLM_URL", f"http://127.0.0.1:{server.server_port}/v1")
        from explainers.cli import main

        code = main(
            ["counterfactual", "--model", str(tiny_bert_dir), "--text", TEXT, "--substitutions", "0", "--llm", "--json"]
        )
    finally:
        server.shutdown()
        server.server_close()
    assert code == 0
    llm = _strict_json(capsys.readouterr().out)["llm"]
    assert llm["generator"] == "endpoint:default" and llm["tried"] == 2
    goal = cf.make_goal(tiny_bert, TEXT)
    probs = dict(zip(drafts, p_target(tiny_bert, drafts, goal.index)))
    assert llm["held"] == sum(p < 0.5 for p in probs.values())
    for d in llm["drafts"]:
        assert d["target_prob"] == pytest.approx(probs[d["text"]], abs=1e-6) and d["verified"]
