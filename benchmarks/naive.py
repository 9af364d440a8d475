"""The same explanations written the way tutorials write them: the baseline whybox is timed against.

Deliberately separate from the engine (it shares only the loaded model and tokenizer) and
deliberately unbatched where tutorials are: Captum's defaults (Occlusion's
perturbations_per_eval=1), a LIME classifier_fn that loops one text at a time through
tokenizer + model, and faithfulness metrics that decode, re-tokenize and run one forward per
perturbation. Where a tutorial is already batched (Captum's IG runs its 50 steps as one batch when
internal_batch_size is None) this side is batched too: the comparison is honest, not a straw man.

Each function does the same work as its whybox counterpart (same steps, samples, window, perturbed
sets); it is given the target (class index or next-token id) that whybox resolved, which spares it
the prediction forward that tutorials also run.
"""

from __future__ import annotations

import math

import numpy as np
import torch

AOPC_BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
RATIONALE_FRACTION = 0.20
CURVE_STEPS = 20


class NaiveModel:
    """A Hugging Face model and tokenizer as a tutorial holds them."""

    def __init__(self, model, tokenizer, task: str):
        self.model, self.tokenizer, self.task = model, tokenizer, task
        self.device = model.device

    def target_prob(self, logits: torch.Tensor, target: int) -> torch.Tensor:
        if self.task == "classification":
            return torch.softmax(logits, dim=-1)[:, target]
        return torch.softmax(logits[:, -1], dim=-1)[:, target]

    def ids(self, text: str) -> torch.Tensor:
        ids = self.tokenizer(text, return_tensors="pt")["input_ids"]
        if ids.shape[1] == 0:  # a causal LM's tokenizer gives nothing for "": feed it one eos
            ids = torch.tensor([[self.tokenizer.eos_token_id]])
        return ids.to(self.device)

    def prob_of_text(self, text: str, target: int) -> float:
        with torch.no_grad():
            return float(self.target_prob(self.model(self.ids(text)).logits, target)[0])

    def reference_id(self) -> int:
        tok = self.tokenizer
        for value in (tok.mask_token_id, tok.pad_token_id, tok.unk_token_id, tok.eos_token_id):
            if value is not None:
                return int(value)
        raise ValueError("no token to use as a baseline")

    def reference_ids(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Captum's BERT tutorial: keep [CLS]/[SEP], every other token becomes the reference token."""
        special = torch.tensor(
            self.tokenizer.get_special_tokens_mask(input_ids[0].tolist(), already_has_special_tokens=True),
            dtype=torch.bool,
            device=input_ids.device,
        )
        return torch.where(special[None], input_ids, torch.full_like(input_ids, self.reference_id()))


def integrated_gradients(nm: NaiveModel, text: str, target: int, n_steps: int = 50) -> np.ndarray:
    from captum.attr import LayerIntegratedGradients

    input_ids = nm.ids(text)
    lig = LayerIntegratedGradients(
        lambda ids: nm.target_prob(nm.model(ids).logits, target), nm.model.get_input_embeddings()
    )
    attributions, _delta = lig.attribute(
        input_ids, baselines=nm.reference_ids(input_ids), n_steps=n_steps, return_convergence_delta=True
    )
    return attributions.sum(-1)[0].detach().cpu().numpy()


def occlusion(nm: NaiveModel, text: str, target: int, window: int = 3, stride: int = 1) -> np.ndarray:
    from captum.attr import Occlusion

    input_ids = nm.ids(text)
    embed = nm.model.get_input_embeddings()
    embeds, baseline = embed(input_ids).detach(), embed(nm.reference_ids(input_ids)).detach()
    hidden = embeds.shape[-1]
    attributions = Occlusion(lambda e: nm.target_prob(nm.model(inputs_embeds=e).logits, target)).attribute(
        embeds,
        sliding_window_shapes=(min(window, embeds.shape[1]), hidden),
        strides=(stride, hidden),
        baselines=baseline,
    )
    return attributions.sum(-1)[0].cpu().numpy()


def lime(nm: NaiveModel, text: str, target: int, n_samples: int = 1000, seed: int = 0):
    from lime.lime_text import LimeTextExplainer

    def classifier_fn(texts):
        rows = []
        for t in texts:  # one text at a time, as in most LIME + transformers tutorials
            with torch.no_grad():
                logits = nm.model(nm.ids(t)).logits
            if nm.task == "classification":
                rows.append(torch.softmax(logits, dim=-1)[0].cpu().numpy())
            else:
                p = float(nm.target_prob(logits, target)[0])
                rows.append(np.array([1 - p, p]))
        return np.array(rows)

    label = target if nm.task == "classification" else 1
    explainer = LimeTextExplainer(random_state=seed)
    return explainer.explain_instance(text, classifier_fn, labels=(label,), num_samples=n_samples).as_list(label=label)


def attention(nm: NaiveModel, text: str) -> np.ndarray:
    """One forward with output_attentions (tutorials load the model with eager attention)."""
    config = nm.model.config
    previous = config._attn_implementation
    nm.model.set_attn_implementation("eager")
    try:
        with torch.no_grad():
            out = nm.model(nm.ids(text), output_attentions=True)
    finally:
        nm.model.set_attn_implementation(previous)
    position = 0 if nm.task == "classification" else -1
    return out.attentions[-1][0].mean(0)[position].cpu().numpy()


def faithfulness(nm: NaiveModel, token_ids: list[int], special: list[bool], scores: list[float], target: int) -> dict:
    """ERASER metrics, tutorial style: every perturbation is decoded to text, re-tokenized and scored
    with its own forward; nothing is shared or de-duplicated."""
    content = [i for i, s in enumerate(special) if not s]
    ranked = sorted(content, key=lambda i: (-scores[i], i))
    n = len(ranked)

    def prob_without(drop) -> float:
        drop = set(drop)
        kept = [t for i, t in enumerate(token_ids) if i not in drop]
        return nm.prob_of_text(nm.tokenizer.decode(kept, skip_special_tokens=True), target)

    def prob_only(keep) -> float:
        keep = set(keep)
        return prob_without([i for i in content if i not in keep])

    def top(fraction):
        return ranked[: min(n, max(1, math.ceil(fraction * n)))]

    base = prob_without([])
    comp = {f: base - prob_without(top(f)) for f in AOPC_BINS + (RATIONALE_FRACTION,)}
    suff = {f: base - prob_only(top(f)) for f in AOPC_BINS + (RATIONALE_FRACTION,)}
    steps = [round(j * n / CURVE_STEPS) for j in range(CURVE_STEPS + 1)]
    deletion = [prob_without(ranked[:k]) for k in steps]
    insertion = [prob_only(ranked[:k]) for k in steps]
    loo = [base - prob_without([i]) for i in content]

    from scipy.stats import kendalltau

    x = np.array(steps) / max(n, 1)
    return {
        "comprehensiveness": comp[RATIONALE_FRACTION],
        "sufficiency": suff[RATIONALE_FRACTION],
        "aopc_comprehensiveness": float(np.mean([comp[f] for f in AOPC_BINS])),
        "aopc_sufficiency": float(np.mean([suff[f] for f in AOPC_BINS])),
        "deletion_auc": float(np.trapezoid(deletion, x)),
        "insertion_auc": float(np.trapezoid(insertion, x)),
        "kendall_tau_loo": float(kendalltau(np.array(scores)[content], loo).statistic),
    }


def _prob_without(nm: NaiveModel, token_ids: list[int], drop, target: int) -> float:
    """A tutorial's perturbation: delete tokens, decode to text, re-tokenize, one forward."""
    drop = set(drop)
    kept = [t for i, t in enumerate(token_ids) if i not in drop]
    return nm.prob_of_text(nm.tokenizer.decode(kept, skip_special_tokens=True), target)


def leave_one_out(nm: NaiveModel, token_ids: list[int], special: list[bool], target: int) -> np.ndarray:
    """p(x) - p(x without token i), one forward per token (delete mode)."""
    base = _prob_without(nm, token_ids, [], target)
    content = [i for i, s in enumerate(special) if not s]
    return np.array([base - _prob_without(nm, token_ids, [i], target) for i in content])


def eraser(nm: NaiveModel, token_ids: list[int], special: list[bool], scores: list[float], target: int) -> dict:
    """Comprehensiveness, sufficiency and both AOPCs only, tutorial style (one forward per perturbation)."""
    content = [i for i, s in enumerate(special) if not s]
    ranked = sorted(content, key=lambda i: (-scores[i], i))
    n = len(ranked)

    def top(fraction):
        return ranked[: min(n, max(1, math.ceil(fraction * n)))]

    def without(drop):
        return _prob_without(nm, token_ids, drop, target)

    base = without([])
    comp = {f: base - without(top(f)) for f in AOPC_BINS + (RATIONALE_FRACTION,)}
    suff = {f: base - without([i for i in content if i not in set(top(f))]) for f in AOPC_BINS + (RATIONALE_FRACTION,)}
    return {
        "comprehensiveness": comp[RATIONALE_FRACTION],
        "sufficiency": suff[RATIONALE_FRACTION],
        "aopc_comprehensiveness": float(np.mean([comp[f] for f in AOPC_BINS])),
        "aopc_sufficiency": float(np.mean([suff[f] for f in AOPC_BINS])),
    }
