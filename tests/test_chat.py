"""The chat-template option: the prompt is wrapped as the user's turn; template tokens are kept and never scored."""

from __future__ import annotations

import pytest
import torch
from explainers.generation.tokens import explain_generation

from explainers.errors import InputError
from explainers.methods import explain

TEMPLATE = (
    "{% for m in messages %}<|endoftext|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|endoftext|>assistant\n{% endif %}"
)
QUESTION = "The capital of France is"


@pytest.fixture
def chat_lm(tiny_llama):
    tiny_llama.tokenizer.chat_template = TEMPLATE
    try:
        yield tiny_llama
    finally:
        tiny_llama.tokenizer.chat_template = None


def test_the_template_is_kept_and_only_the_users_text_is_scorable(chat_lm):
    enc = chat_lm.encode(QUESTION, chat=True)
    templated = f"<|endoftext|>user\n{QUESTION}<|endoftext|>\n<|endoftext|>assistant\n"
    assert enc.text == templated
    assert enc.ids == chat_lm.tokenizer(templated, add_special_tokens=False)["input_ids"]
    content = "".join(enc.tokens[i] for i in enc.content_positions)
    assert content == QUESTION and " ".join(enc.words) == "The capital of France is"


def test_leave_one_out_with_the_template_scores_the_users_tokens_only(chat_lm):
    exp = explain(chat_lm, QUESTION, "leave_one_out", target="Paris", chat=True, removal="mask")
    ids, fill = exp.token_ids, chat_lm.baseline_token_id()
    target = exp.target.token_ids

    def p(row):
        with torch.no_grad():
            logits = chat_lm.model(torch.tensor([list(row) + list(target[:-1])])).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        return float(torch.exp(sum(logp[len(row) - 1 + k, t] for k, t in enumerate(target))))

    assert exp.target_prob == pytest.approx(p(ids), rel=1e-4)
    for i, special in enumerate(exp.special):
        if special:
            assert exp.token_scores[i] == 0.0
        else:
            masked = ids[:i] + [fill] + ids[i + 1 :]
            assert exp.token_scores[i] == pytest.approx(p(ids) - p(masked), abs=1e-6)


def test_generation_with_the_template_never_scores_it(chat_lm):
    gen = explain_generation(chat_lm, QUESTION, "occlusion", max_new_tokens=2, chat=True, window=1)
    template = [i for i, s in enumerate(gen.special[: gen.n_prompt]) if s]
    assert template and all(gen.matrix[j][i] == 0.0 for j in range(len(gen.generated)) for i in template)


def test_no_chat_template_is_a_clear_error(tiny_gpt2):
    with pytest.raises(InputError, match="no chat template"):
        explain(tiny_gpt2, QUESTION, "saliency", chat=True)
