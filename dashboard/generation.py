"""'Generate and explain' on the Explain page (causal LMs): the settings, the cached runs, the views."""

from __future__ import annotations

import json

import streamlit as st
from explainers.generation.tokens import (
    MAX_NEW_TOKENS,
    GenerationExplanation,
    explain_generation,
    generation_cost,
    generation_methods,
)
from explainers.metrics.faithfulness import MODES
from explainers.metrics.generation import evaluate_generation
from explainers.models.handle import ModelHandle

from components.generation_view import generation_report_html, render_generation
from dashboard import results, views
from explainers import strict_json
from explainers.errors import WhyboxError
from explainers.methods import METHODS


@st.cache_data(show_spinner=False, max_entries=200)
def _run(model: str, prompt: str, method: str, params: str, n: int, continuation: str, chat: bool, _handle) -> dict:
    gen = explain_generation(
        _handle, prompt, method, max_new_tokens=n, continuation=continuation or None, chat=chat, **json.loads(params)
    )
    return {"gen": gen}


@st.cache_data(show_spinner=False, max_entries=200)
def _faithfulness(model, prompt, method, params, n, continuation, chat, mode: str, _gen, _handle):
    """The generation's metrics (keyed like its run, plus the mode): one batched pass."""
    return evaluate_generation(_handle, _gen, mode=mode)


def generate_and_explain(handle: ModelHandle, text: str) -> bool:
    """The section, for causal LMs when switched on; True when it drew the page's results."""
    if not handle.task.scores_positions or not st.toggle(
        "Generate and explain", key="w_generate", help="Continue the prompt and explain every generated token."
    ):
        return False
    left, middle, right = st.columns([1, 1, 3])
    n = left.number_input("Tokens to generate", 1, MAX_NEW_TOKENS, 10, key="w_generate_n")
    mode = middle.selectbox(
        "Faithfulness removes tokens by",
        list(MODES),
        key="w_generate_mode",
        help="How comprehensiveness and sufficiency remove tokens: " + "; ".join(f"{k}: {v}" for k, v in MODES.items()),
    )
    continuation = right.text_input(
        "…or explain this continuation instead", key="w_generate_text", placeholder="empty = generate greedily"
    )
    req = results.current_request()
    can = generation_methods()
    methods = [m for m in req.methods if m in can] or ["occlusion"]
    skipped = [METHODS[m].title for m in req.methods if m not in can]
    if skipped:
        st.caption(f"{', '.join(skipped)} explain the continuation as a whole only: switch this off to run them.")
    if req.contrast or req.unit != "token" or req.separator:
        st.caption(
            "Each generated token is explained per token and on its own: the sidebar's unit and contrast apply "
            "when this is switched off."
        )
    n_prompt = handle.encode(text, chat=req.chat).n_tokens if text.strip() else 0
    costs = [
        f"{METHODS[m].title}: {generation_cost(m, n_prompt, int(n), req.method_params(m)).describe()}" for m in methods
    ]
    st.caption(f"Estimated cost for {n_prompt} prompt tokens and {int(n)} generated: " + "; ".join(costs) + ".")
    pressed = st.button("Generate and explain", type="primary", icon=":material/auto_awesome:")
    key = (req.model, text, tuple(methods), req.params, int(n), continuation.strip(), req.chat)
    shown = views.request_to_show("generation_done", key, pressed, lambda k: views.check_text(handle, k[1]))
    if shown is None:
        st.info("Press **Generate and explain** to continue the prompt and explain each generated token.")
        return True
    gens: list[tuple[GenerationExplanation, object]] = []
    with st.status(f"Explaining each generated token with {len(methods)} methods…", expanded=pressed) as status:
        for i, method in enumerate(shown[2]):
            status.update(label=f"{METHODS[method].title} ({i + 1} of {len(shown[2])})")
            try:
                params = json.dumps(json.loads(shown[3]).get(method, {}), sort_keys=True)
                run = (shown[0], shown[1], method, params, shown[4], shown[5], shown[6])
                gen = _run(*run, handle)["gen"]
                status.update(label=f"{METHODS[method].title}: faithfulness of each token ({i + 1} of {len(shown[2])})")
                gens.append((gen, _faithfulness(*run, mode, gen, handle)))
            except WhyboxError as exc:
                views.show_error(METHODS[method].title, exc)
        status.update(label=f"Explained {len(gens)} of {len(shown[2])} methods", state="complete", expanded=False)
    enc = handle.encode(shown[1], chat=shown[6])
    for gen, report in gens:
        with st.container(border=True):
            st.subheader(gen.title)
            where = "typed" if gen.typed else "generated greedily"
            st.caption(
                f"{len(gen.generated)} tokens {where}: {''.join(gen.generated)!r} · computed in {gen.seconds:.2f} s"
            )
            render_generation(gen, enc, gen.method, report)
            left, right = st.columns(2)
            left.download_button(
                "Download JSON",
                data=strict_json.dumps({**gen.to_dict(), "faithfulness": report.to_dict()}, indent=2),
                file_name=f"whybox-generation-{gen.method}.json",
                mime="application/json",
                key=f"gen_json_{gen.method}",
                icon=":material/download:",
            )
            right.download_button(
                "Download HTML",
                data=lambda gen=gen, report=report: generation_report_html(gen, report),
                file_name=f"whybox-generation-{gen.method}.html",
                mime="text/html",
                key=f"gen_html_{gen.method}",
                icon=":material/description:",
            )
    return True
