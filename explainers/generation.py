"""Generated text, explained token by token.

A causal LM continues a prompt greedily (or the user types the continuation); every generated token
t_j is then explained over its inputs: the prompt and the tokens generated before it. The result is
an output-token × input-token matrix. The score explained for t_j is log p(t_j | everything before
it), the quantity Captum's LLMAttribution and Inseq attribute.

Cost: perturbation methods read every generated token of a perturbed row in ONE teacher-forced
forward (`gateway.token_logprobs`), batched across perturbations; gradient methods share one forward
(integrated gradients: one interpolation) and take one backward per generated token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from explainers import strict_json
from explainers.errors import InputError, InternalError, WhyboxError
from explainers.inference.gateway import checkpoint
from explainers.methods import METHODS, Cost, attention_rollout, get_method, occlusion_windows
from explainers.models.handle import ModelHandle
from explainers.models.text import Encoded

SCORE_NOTE = (
    "Each generated token is explained on its own: the score is log p(token | the prompt and the tokens "
    "generated before it). A row of the matrix holds one generated token's scores over its inputs; the "
    "inputs after it are empty (the model had not seen them)."
)
MAX_NEW_TOKENS = 64


@dataclass
class GenerationExplanation:
    """Rows: the generated tokens. Columns: the prompt's tokens, then the generated tokens. matrix[j, i]
    is input i's score for generated token j; NaN (null in JSON) where i is not an input of token j,
    or where the method gives no score (integrated gradients holds the generated tokens fixed)."""

    method: str
    model: str
    prompt: str
    tokens: list[str]  # the columns: prompt tokens then generated tokens
    token_ids: list[int]
    special: list[bool]
    n_prompt: int
    generated_ids: list[int]
    probabilities: list[float]  # p(t_j | before it), per generated token
    entropies: list[float]  # entropy (nats) of the distribution t_j was chosen from
    matrix: list[list[float]]
    typed: bool  # True: the user typed the continuation; False: whybox generated it greedily
    params: dict
    seconds: float = 0.0
    extras: dict = field(default_factory=dict)
    properties: dict = field(default_factory=dict)
    score_note: str = SCORE_NOTE

    @property
    def generated(self) -> list[str]:
        return self.tokens[self.n_prompt :]

    @property
    def scores(self) -> np.ndarray:
        return np.array(self.matrix, dtype=np.float64)

    @property
    def title(self) -> str:
        return self.properties.get("title", self.method)

    @property
    def continuation_logprob(self) -> float:
        """log p(the whole continuation | prompt): the sum of its tokens' log-probabilities."""
        return float(np.sum(np.log(self.probabilities)))

    def row(self, j: int, enc: Encoded) -> np.ndarray:
        """Generated token j's scores over the prompt (the heatmap of today's Explain page)."""
        return np.nan_to_num(self.scores[j, : enc.n_tokens])

    def to_dict(self) -> dict:
        d = asdict(self)
        d["generated"] = self.generated
        d["continuation_logprob"] = self.continuation_logprob
        d["kind"] = "generation"
        return strict_json.clean(d)

    def to_json(self, **kwargs) -> str:
        return strict_json.dumps(self.to_dict(), **kwargs)


# ---- the continuation ------------------------------------------------------------------------------
def generate_greedy(handle: ModelHandle, enc: Encoded, max_new_tokens: int) -> list[int]:
    """Greedy continuation, stopping after the end-of-sequence token."""
    if not 1 <= max_new_tokens <= MAX_NEW_TOKENS:
        raise InputError(f"Generate between 1 and {MAX_NEW_TOKENS} tokens, not {max_new_tokens}.")
    room = handle.max_tokens - enc.n_tokens
    if room < 1:
        raise InputError("The prompt fills the model's context: shorten it to leave room for generated tokens.")
    ids = torch.tensor([enc.ids], device=handle.device)
    tok = handle.tokenizer
    with handle.gateway.lock, torch.inference_mode():
        out = handle.model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=min(max_new_tokens, room),
            do_sample=False,
            num_beams=1,
            temperature=None,
            top_p=None,
            top_k=None,
            pad_token_id=tok.pad_token_id,
            eos_token_id=tok.eos_token_id,
        )
    return [int(t) for t in out[0, enc.n_tokens :]]


def typed_continuation(handle: ModelHandle, enc: Encoded, continuation: str) -> list[int]:
    """The tokens of a continuation the user typed (a leading space added as for targets)."""
    return list(handle.task.resolve_target(enc, continuation).token_ids)


@dataclass
class Job:
    """One prompt and its continuation: the rows every generation method reads."""

    handle: ModelHandle
    enc: Encoded
    generated: list[int]
    params: dict

    @property
    def full(self) -> list[int]:
        return list(self.enc.ids) + list(self.generated)

    @property
    def n_prompt(self) -> int:
        return self.enc.n_tokens

    @property
    def n_gen(self) -> int:
        return len(self.generated)

    @property
    def read_positions(self) -> torch.Tensor:
        """(1, G): the logit positions that predict each generated token."""
        return (self.n_prompt - 1 + torch.arange(self.n_gen))[None]

    def reads(self, deleted: int | None = None) -> list[tuple[int, int]]:
        """(position, token) reads of every generated token, for a row with position `deleted` removed."""
        out = []
        for j, token in enumerate(self.generated):
            at = self.n_prompt + j  # where t_j sits in the full row
            if at == deleted:
                continue
            shift = 1 if deleted is not None and deleted < at else 0
            out.append((at - 1 - shift, token))
        return out

    @property
    def content(self) -> np.ndarray:
        """Inputs that can be scored: the prompt's non-special tokens and every generated token."""
        return np.array([not s for s in self.enc.special] + [True] * self.n_gen)

    def visible(self) -> np.ndarray:
        """(G, L) True where input i is before generated token j (an input of it)."""
        length = self.n_prompt + self.n_gen
        return np.arange(length)[None, :] < (self.n_prompt + np.arange(self.n_gen))[:, None]

    def finish(self, scores: np.ndarray) -> np.ndarray:
        """Zero the special tokens; NaN where an input comes after the token it would explain."""
        scores = np.where(self.content[None, :], scores, 0.0)
        return np.where(self.visible(), scores, np.nan)

    def baseline_id(self) -> int:
        return self.handle.baseline_token_id(self.params.get("baseline", "auto"))

    def distributions(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """One teacher-forced forward over prompt + continuation: (log p(t_j), p(t_j), entropy_j)."""
        ids = torch.tensor([self.full], device=self.handle.device)
        with torch.inference_mode():
            logits = self.handle.gateway.logits_at(
                self.read_positions, input_ids=ids, attention_mask=torch.ones_like(ids)
            )
        logp = torch.log_softmax(logits[0].float(), dim=-1)
        chosen = logp[torch.arange(self.n_gen), torch.tensor(self.generated, device=logp.device)]
        entropy = -(logp.exp() * logp).sum(-1)
        return chosen.cpu().numpy().astype(np.float64), chosen.exp().cpu().numpy(), entropy.cpu().numpy()


# ---- perturbation methods: one teacher-forced forward per perturbed row ----------------------------
def per_token_occlusion(job: Job, base_logp: np.ndarray) -> tuple[np.ndarray, dict]:
    window, stride = job.params["window"], job.params["stride"]
    if stride > window:
        raise InputError("Occlusion's stride must not exceed its window: some tokens would never be hidden.")
    length = len(job.full) - 1  # the last generated token is nobody's input
    windows = occlusion_windows(length, window, stride)
    fill, content = job.baseline_id(), job.content
    rows = []
    for covered in windows:
        ids = job.full
        for i in covered:
            if content[i]:
                ids[i] = fill
        rows.append(ids)
    drops = base_logp[None, :] - job.handle.gateway.token_logprobs(rows, [job.reads()] * len(rows))
    total, count = np.zeros((job.n_gen, len(job.full))), np.zeros(len(job.full))
    for covered, drop in zip(windows, drops):
        total[:, covered.start : covered.stop] += drop[:, None]
        count[covered.start : covered.stop] += 1
    return total / np.maximum(count, 1), {}


def per_token_leave_one_out(job: Job, base_logp: np.ndarray) -> tuple[np.ndarray, dict]:
    delete = job.params["removal"] == "delete"
    fill = job.handle.baseline_token_id()
    inputs = [i for i in range(len(job.full) - 1) if job.content[i]]
    rows, reads = [], []
    for i in inputs:
        ids = job.full
        if delete:
            del ids[i]
        else:
            ids[i] = fill
        rows.append(ids)
        reads.append(job.reads(i if delete else None))
    logp = job.handle.gateway.token_logprobs(rows, reads)
    scores = np.zeros((job.n_gen, len(job.full)))
    for row, i in enumerate(inputs):
        # the row's reads skip the deleted token itself: map them back to generated-token indices
        js = [j for j in range(job.n_gen) if not (delete and job.n_prompt + j == i)]
        scores[js, i] = base_logp[js] - logp[row, : len(js)]
    return scores, {}


# ---- gradient methods: one forward, one backward per generated token -------------------------------
def _embeds(job: Job) -> torch.Tensor:
    return job.handle.embed_ids(job.full)  # (1, L, H)


def _logp_from_embeds(job: Job, embeds: torch.Tensor) -> torch.Tensor:
    """(B, L, H) embeddings of prompt + continuation -> (B, G) log p(t_j), differentiable."""
    batch = embeds.shape[0]
    logits = job.handle.gateway.logits_at(
        job.read_positions.expand(batch, -1),
        inputs_embeds=embeds,
        attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device),
    )
    logp = torch.log_softmax(logits.float(), dim=-1)
    ids = torch.tensor(job.generated, device=logp.device)
    return logp[:, torch.arange(job.n_gen), ids]


def _gradients(job: Job) -> tuple[torch.Tensor, torch.Tensor]:
    """(G, L, H) gradient of each log p(t_j) with respect to every input embedding, and the embeddings."""
    embeds = _embeds(job).clone().requires_grad_()
    logp = _logp_from_embeds(job, embeds)[0]
    grads = [torch.autograd.grad(logp[j], embeds, retain_graph=j < job.n_gen - 1)[0][0] for j in range(job.n_gen)]
    return torch.stack(grads), embeds.detach()[0]


def per_token_input_x_gradient(job: Job, base_logp: np.ndarray) -> tuple[np.ndarray, dict]:
    grads, embeds = _gradients(job)
    return (grads * embeds[None]).sum(-1).double().cpu().numpy(), {}


def per_token_saliency(job: Job, base_logp: np.ndarray) -> tuple[np.ndarray, dict]:
    grads, _ = _gradients(job)
    return grads.abs().sum(-1).double().cpu().numpy(), {}


def per_token_integrated_gradients(job: Job, base_logp: np.ndarray) -> tuple[np.ndarray, dict]:
    """The prompt's embeddings move from the baseline to the input (the generated tokens stay as they
    are, as in Captum's LLMGradientAttribution); every step's forward serves all generated tokens.
    Captum's Gauss-Legendre steps; per token a convergence delta against log p(input) − log p(baseline)."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    n_steps, n = job.params["n_steps"], job.n_prompt
    step_sizes, alphas = approximation_parameters("gausslegendre")
    sizes, points = step_sizes(n_steps), alphas(n_steps)
    embeds = _embeds(job)[0]
    prompt, tail = embeds[:n], embeds[n:]
    baseline_ids = [job.baseline_id() if not s else t for t, s in zip(job.enc.ids, job.enc.special)]
    base = job.handle.embed_ids(baseline_ids)[0]
    total = torch.zeros(job.n_gen, n, prompt.shape[-1], dtype=torch.float64, device=prompt.device)
    per_call = job.handle.rows_per_batch(len(job.full))
    for k in range(0, n_steps, per_call):
        a = torch.tensor(points[k : k + per_call], dtype=prompt.dtype, device=prompt.device)[:, None, None]
        w = torch.tensor(sizes[k : k + per_call], dtype=torch.float64, device=prompt.device)[:, None, None]
        moving = (base[None] + a * (prompt - base)[None]).requires_grad_()
        rows = torch.cat([moving, tail[None].expand(len(a), -1, -1)], dim=1)
        logp = _logp_from_embeds(job, rows)
        for j in range(job.n_gen):
            (grad,) = torch.autograd.grad(logp[:, j].sum(), moving, retain_graph=j < job.n_gen - 1)
            total[j] += (grad.double() * w).sum(0)
            checkpoint(len(a))  # a backward of these rows: progress, and a place to stop
    attributions = (total * (prompt - base).double()[None]).sum(-1).cpu().numpy()
    with torch.no_grad():
        base_row = torch.cat([base, tail])[None]
        logp_baseline = _logp_from_embeds(job, base_row)[0].double().cpu().numpy()
    deltas = np.abs(attributions.sum(1) - (base_logp - logp_baseline))
    scores = np.full((job.n_gen, len(job.full)), np.nan)
    scores[:, :n] = attributions
    return scores, {"convergence_delta": float(deltas.max()), "convergence_delta_per_token": deltas.tolist()}


# ---- attention: the row of each generating position -------------------------------------------------
def _attention_rows(job: Job, pick: Callable[[list[torch.Tensor]], torch.Tensor]) -> np.ndarray:
    weights = job.handle.gateway.predict(job.full, attentions=True).attentions
    matrix = pick(weights)  # (L, L)
    positions = job.read_positions[0].tolist()
    return matrix[positions].double().numpy()


def per_token_attention(job: Job, base_logp: np.ndarray) -> tuple[np.ndarray, dict]:
    layer, head = job.params["layer"], job.params["head"]

    def pick(weights):
        if not -len(weights) <= layer < len(weights):
            raise InputError(f"Layer {layer} does not exist: this model has layers 0..{len(weights) - 1}.")
        stack = torch.cat(weights)
        chosen = stack.mean(0) if job.params["layers"] == "all" else stack[layer]
        if head >= chosen.shape[0]:
            raise InputError(f"Head {head} does not exist: this model has heads 0..{chosen.shape[0] - 1}.")
        return chosen.mean(0) if head < 0 else chosen[head]

    return _attention_rows(job, pick), {}


def per_token_rollout(job: Job, base_logp: np.ndarray) -> tuple[np.ndarray, dict]:
    return _attention_rows(job, lambda w: attention_rollout(w, job.params["residual"])), {}


def generation_methods() -> list[str]:
    """The methods that explain every generated token (their registry entry's `per_output_token`)."""
    return [name for name, spec in METHODS.items() if spec.per_output_token is not None]


def generation_cost(method: str, n_prompt: int, n_gen: int, params: dict | None = None) -> Cost:
    """Rows through the model for one generation explanation (rows are prompt + continuation long)."""
    spec = get_method(method)
    if spec.per_output_token_cost is None:
        raise InputError(f"'{method}' cannot explain generated tokens; use one of {', '.join(generation_methods())}.")
    return spec.per_output_token_cost(n_prompt + n_gen - 1, n_gen, spec.validate(params or {}))


def explain_generation(
    handle: ModelHandle,
    prompt: str,
    method: str,
    *,
    max_new_tokens: int = 10,
    continuation: str | None = None,
    continuation_ids: list[int] | None = None,
    chat: bool = False,
    **params,
) -> GenerationExplanation:
    """Generate (or take) a continuation of `prompt` and explain each of its tokens with `method`.
    `continuation_ids` gives the continuation as token ids (one generated earlier)."""
    if not handle.task.scores_positions:
        raise InputError("Generated text can only be explained for a causal language model.")
    spec = get_method(method)
    if spec.per_output_token is None:
        raise InputError(f"'{method}' cannot explain generated tokens; use one of {', '.join(generation_methods())}.")
    params = spec.validate(params)
    enc = handle.encode(prompt, chat=chat)
    started = time.perf_counter()
    try:
        typed = bool(continuation) or bool(continuation_ids)
        if continuation_ids:
            generated = [int(t) for t in continuation_ids]
        elif continuation:
            generated = typed_continuation(handle, enc, continuation)
        else:
            generated = generate_greedy(handle, enc, max_new_tokens)
        if not generated:
            raise InputError("The model generated nothing (it ended the text at once): type a continuation instead.")
        if enc.n_tokens + len(generated) > handle.max_tokens:
            raise InputError("The prompt and its continuation are longer than the model's context.")
        job = Job(handle, enc, generated, params)
        base_logp, probs, entropies = job.distributions()

        def attempt():
            with handle.gateway.exclusive():
                return spec.per_output_token(job, base_logp)

        scores, extras = handle.gateway.with_backoff(attempt)
        matrix = job.finish(scores)
    except WhyboxError:
        raise
    except torch.OutOfMemoryError:
        raise InputError(f"{spec.title} ran out of memory on {handle.device}: shorten the prompt.") from None
    except Exception as exc:
        raise InternalError.from_exception(exc, f"explaining generated tokens with {spec.title}") from exc
    if "baseline" in params:
        extras["baseline_token"] = handle.tokenizer.convert_ids_to_tokens(job.baseline_id())
    tokens = list(enc.tokens) + [handle.tokenizer.decode([t]) for t in generated]
    return GenerationExplanation(
        method=method,
        model=handle.name,
        prompt=enc.text,
        tokens=tokens,
        token_ids=job.full,
        special=list(enc.special) + [False] * len(generated),
        n_prompt=enc.n_tokens,
        generated_ids=generated,
        probabilities=[float(p) for p in probs],
        entropies=[float(h) for h in entropies],
        matrix=[[float(x) for x in row] for row in matrix],
        typed=typed,
        params=params,
        seconds=time.perf_counter() - started,
        extras=strict_json.clean(extras),
        properties=spec.properties(),
    )
