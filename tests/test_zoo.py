"""The architecture zoo: tiny random models of ten architectures, built offline from configs, each
explained by every method. A method that cannot run on an architecture fails here, not in front of a user."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import _bert_tokenizer, _bpe_tokenizer

from explainers.methods import METHODS, explain

SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
LABELS = dict(num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
# the cheapest settings that still run each method's code path
QUICK = {
    "integrated_gradients": {"n_steps": 4},
    "layer_conductance": {"n_steps": 3},
    "gradient_shap": {"n_samples": 4},
    "shapley_sampling": {"n_samples": 2},
    "kernel_shap": {"n_samples": 16},
    "lime": {"n_samples": 32},
}


def _encoder(name: str, vocab: int, pad: int):
    import transformers as t

    configs = {
        "albert": lambda: t.AlbertConfig(vocab_size=vocab, embedding_size=16, pad_token_id=pad, **SMALL, **LABELS),
        "bert": lambda: t.BertConfig(vocab_size=vocab, pad_token_id=pad, **SMALL, **LABELS),
        "distilbert": lambda: t.DistilBertConfig(
            vocab_size=vocab, dim=32, n_layers=2, n_heads=4, hidden_dim=64, pad_token_id=pad, **LABELS
        ),
        "electra": lambda: t.ElectraConfig(vocab_size=vocab, embedding_size=16, pad_token_id=pad, **SMALL, **LABELS),
        "roberta": lambda: t.RobertaConfig(
            vocab_size=vocab, pad_token_id=pad, max_position_embeddings=514, **SMALL, **LABELS
        ),
        "xlm-roberta": lambda: t.XLMRobertaConfig(
            vocab_size=vocab, pad_token_id=pad, max_position_embeddings=514, **SMALL, **LABELS
        ),
        "deberta-v2": lambda: t.DebertaV2Config(
            vocab_size=vocab, pad_token_id=pad, max_position_embeddings=512, **SMALL, **LABELS
        ),
    }
    config = configs[name]()
    return t.AutoModelForSequenceClassification.from_config(config)


def _causal(name: str, vocab: int, eos: int):
    import transformers as t

    shared = dict(vocab_size=vocab, bos_token_id=eos, eos_token_id=eos, pad_token_id=eos)
    configs = {
        "gpt2": lambda: t.GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=128, **shared),
        "llama": lambda: t.LlamaConfig(num_key_value_heads=2, max_position_embeddings=128, **SMALL, **shared),
        "qwen2": lambda: t.Qwen2Config(num_key_value_heads=2, max_position_embeddings=128, **SMALL, **shared),
    }
    return t.AutoModelForCausalLM.from_config(configs[name]())


ENCODERS = ["albert", "bert", "distilbert", "electra", "roberta", "xlm-roberta", "deberta-v2"]
CAUSAL = ["gpt2", "llama", "qwen2"]


@pytest.fixture(scope="module", params=ENCODERS + CAUSAL)
def zoo_model(request, tmp_path_factory):
    from explainers.models.loading import load_model

    name = request.param
    torch.manual_seed(0)
    if name in ENCODERS:
        tok = _bert_tokenizer()
        model = _encoder(name, len(tok), tok.pad_token_id)
    else:
        tok = _bpe_tokenizer()
        model = _causal(name, len(tok), tok.eos_token_id)
    path = tmp_path_factory.mktemp(f"zoo-{name}")
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return name, load_model(str(path), device="cpu")


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_runs_on_every_architecture(zoo_model, method):
    name, handle = zoo_model
    text = "a gripping , funny and beautifully acted film ."
    exp = explain(handle, text, method, **QUICK.get(method, {}))
    scores = np.asarray(exp.token_scores)
    assert scores.shape == (handle.encode(text).n_tokens,) and np.isfinite(scores).all()
    assert np.all(scores[np.asarray(exp.special)] == 0)  # special tokens never attributed
    assert np.isclose(exp.target_prob, handle.target_probability(handle.encode(text), exp.target))


def test_zoo_describes_every_architecture(zoo_model):
    name, handle = zoo_model
    info = handle.describe()
    assert info["layers"] == 2 and info["heads"] == 4


def _hooked_outputs(handle, layers, ids):
    seen = {}
    hooks = [
        handle.block(k).register_forward_hook(
            lambda module, args, out, k=k: seen.setdefault(k, out[0] if isinstance(out, tuple) else out)
        )
        for k in layers
    ]
    try:
        with torch.no_grad():
            hidden = handle.model(input_ids=ids, output_hidden_states=True).hidden_states
    finally:
        for hook in hooks:
            hook.remove()
    return seen, hidden


def test_a_layer_hook_sees_that_layer(zoo_model):
    """What layer methods attribute at block k is the model's own hidden state after layer k (also for
    ALBERT's shared layer, applied twice, and DeBERTa's tuple-returning blocks)."""
    name, handle = zoo_model
    ids = torch.tensor([handle.encode("a gripping , funny film .").ids])
    layers = [0, 1] if name in ENCODERS else [0]  # decoders' last hidden state is after their final norm
    seen, hidden = _hooked_outputs(handle, layers, ids)
    for k in layers:
        torch.testing.assert_close(seen[k], hidden[k + 1])
    if name == "albert":  # one shared module, two different layers
        assert not torch.allclose(seen[0], seen[1])
