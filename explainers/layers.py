"""Inside the layers: what the model would answer from each layer's representation.

For a causal LM this is the logit lens (nostalgebraist, 2020): each layer's hidden state goes through
the model's own final norm and output embedding. For a classifier it is the label the head would give
from each layer's representation: indicative only, since the head was trained on the last layer.

Found through the model, not by name per architecture: the hidden state of layer ℓ replaces the last
block's output, and everything the model runs after its last block (whatever those modules are: a
final norm and the output embedding, or a pooler and a classifier) runs as usual. All layers are one
batch (one row per layer). The modules that run after the last block are recorded by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch

from explainers import strict_json
from explainers.errors import InputError
from explainers.models.handle import ModelHandle

LOGIT_LENS_NOTE = (
    "Logit lens: each layer's hidden state at the last position, put through the model's final norm and "
    "output embedding. Early layers rarely speak the output vocabulary well; the answer usually forms late."
)
CLASSIFIER_NOTE = (
    "Indicative only: each layer's representation is put through the classifier head, which was trained on "
    "the last layer's output alone. Early layers' labels say little about what those layers encode."
)


@dataclass
class LensLayer:
    name: str  # "embeddings", "block 1", ...
    top: list[tuple[str, float]]  # the top tokens (labels) and their probabilities
    target_prob: float
    target_rank: int  # 1 = the layer's top choice
    contrast_prob: float | None = None
    contrast_rank: int | None = None


@dataclass
class LayerLens:
    model: str
    text: str
    method: str  # "logit_lens" or "classifier_head"
    indicative: bool
    target: str
    contrast: str | None
    position: int  # the token position read
    layers: list[LensLayer]
    after_last_block: list[str]  # the modules the model runs after its last block, in order
    note: str
    extras: dict = field(default_factory=dict)

    @property
    def predicts_tokens(self) -> bool:
        """True: each layer is read as next-token probabilities (the logit lens); False: as labels."""
        return self.method == "logit_lens"

    @property
    def target_probs(self) -> list[float]:
        return [layer.target_prob for layer in self.layers]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kind"] = "layers"
        return strict_json.clean(d)

    def to_json(self, **kwargs) -> str:
        return strict_json.dumps(self.to_dict(), **kwargs)


def _hidden(output):
    return output[0] if isinstance(output, tuple) else output


def _replace(output, hidden):
    return (hidden, *output[1:]) if isinstance(output, tuple) else hidden


def layer_distributions(
    handle: ModelHandle, ids: list[int], position: int
) -> tuple[torch.Tensor, list[str], list[str]]:
    """(n_layers + 1, C) the output distribution at `position` from the embeddings and each block's
    output; the layer names; the modules that ran after the last block. One forward to collect the
    hidden states, one batched forward (a row per layer) through the rest of the model."""
    model, blocks = handle.model, handle.blocks
    ids_t = torch.tensor([ids], device=handle.device)
    mask = torch.ones_like(ids_t)
    block_names = {id(m) for b in blocks for m in b.modules()}
    captured: list[torch.Tensor] = []
    ran_after: list[str] = []
    last_done = [False]

    def capture(_module, _inputs, output):
        captured.append(_hidden(output).detach())

    def mark_last(_module, _inputs, output):
        last_done[0] = True

    def record(name):
        def hook(_module, _inputs, _output):
            if last_done[0] and name not in ran_after:
                ran_after.append(name)

        return hook

    leaves = [
        (name, m)
        for name, m in model.named_modules()
        if not list(m.children()) and id(m) not in block_names and name and m.__class__.__name__ != "Dropout"
    ]
    with handle.gateway.exclusive(), torch.inference_mode():
        hooks = [b.register_forward_hook(capture) for b in blocks]
        hooks.append(blocks[-1].register_forward_hook(mark_last))
        hooks += [m.register_forward_hook(record(name)) for name, m in leaves]
        try:
            out = model(input_ids=ids_t, attention_mask=mask, output_hidden_states=True)
        finally:
            for h in hooks:
                h.remove()
        states = torch.cat([out.hidden_states[0]] + captured[: len(blocks)])  # (L+1, T, H)
        rows = states.shape[0]

        def substitute(_module, _inputs, output):
            return _replace(output, states.to(_hidden(output).dtype))

        hook = blocks[-1].register_forward_hook(substitute)
        try:
            logits = model(input_ids=ids_t.expand(rows, -1), attention_mask=mask.expand(rows, -1)).logits
        finally:
            hook.remove()
    if logits.dim() == 3:  # a causal LM's logits per position
        logits = logits[:, position]
    names = ["embeddings"] + [f"block {k + 1}" for k in range(len(blocks))]
    return torch.softmax(logits.float(), dim=-1).cpu(), names, ran_after


def _rank(probs: torch.Tensor, index: int) -> int:
    return int((probs > probs[index]).sum()) + 1


def logit_lens(
    handle: ModelHandle,
    text: str,
    target: str | int | None = None,
    contrast: str | int | None = None,
    top_k: int = 5,
    chat: bool = False,
) -> LayerLens:
    """What each layer would answer: top-k tokens (labels), and the target's (and contrast's) probability and rank."""
    enc = handle.encode(text, chat=chat)
    prediction = handle.predict(enc)
    tgt = handle.resolve_target(enc, target, prediction, contrast)
    position = handle.prediction_position(enc)
    probs, names, after = layer_distributions(handle, enc.ids, position)
    is_lm = handle.task.scores_positions
    if is_lm:
        decode = lambda i: handle.tokenizer.decode([int(i)])  # noqa: E731
        first = lambda t: t.token_ids[0]  # noqa: E731
    else:
        decode = lambda i: handle.labels[int(i)]  # noqa: E731
        first = lambda t: t.class_index  # noqa: E731
    layers = []
    for name, p in zip(names, probs):
        top = torch.topk(p, min(top_k, p.shape[0]))
        layer = LensLayer(
            name,
            [(decode(i), float(v)) for v, i in zip(top.values, top.indices)],
            float(p[first(tgt)]),
            _rank(p, first(tgt)),
        )
        if tgt.contrast:
            layer.contrast_prob, layer.contrast_rank = float(p[first(tgt.contrast)]), _rank(p, first(tgt.contrast))
        layers.append(layer)
    extras = {}
    if is_lm and max(tgt.n_tokens, tgt.contrast.n_tokens if tgt.contrast else 1) > 1:
        extras["first_token_only"] = "A continuation of several tokens is followed through its first token."
    if not layers:
        raise InputError("This model has no layers to look into.")
    return LayerLens(
        model=handle.name,
        text=enc.text,
        method="logit_lens" if is_lm else "classifier_head",
        indicative=not is_lm,
        target=tgt.plain.label if not is_lm else decode(first(tgt)),
        contrast=(decode(first(tgt.contrast)) if is_lm else tgt.contrast.label) if tgt.contrast else None,
        position=position,
        layers=layers,
        after_last_block=after,
        note=LOGIT_LENS_NOTE if is_lm else CLASSIFIER_NOTE,
        extras=extras,
    )
