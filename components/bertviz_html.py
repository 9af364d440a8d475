"""BertViz views as self-contained HTML documents that need no network.

BertViz loads require.js, d3 and jQuery from cdnjs, which is unreachable offline and in many
corporate networks. We let BertViz build its HTML, then inline the same libraries from
node_modules/ (installed from npm by `npm ci`, see package.json) and drop the CDN references.

d3 and jQuery are inlined as plain scripts *before* require.js, so their UMD wrappers see no AMD
`define` and publish the globals `d3` and `jQuery`; we then register those globals as the named
AMD modules BertViz asks for. requirejs never has to load a script, so the document works in a
sandboxed iframe `srcdoc`, from a file:// report, or under a CSP without blob:/data: scripts.

The result is one HTML document, meant to live in its own iframe (streamlit.components.v1.html,
or an <iframe srcdoc> in a report): two of them in the same page would share one require.js.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import torch

JS_DIR_ENV = "WHYBOX_JS_DIR"
# Paths inside node_modules/ (or inside $WHYBOX_JS_DIR, which has the same layout).
_ASSETS = {
    "d3": "d3/dist/d3.min.js",
    "jquery": "jquery/dist/jquery.min.js",
    "requirejs": "requirejs/require.js",
}
_CDN_REQUIRE_TAG = re.compile(r'<script src="https://cdnjs\.cloudflare\.com/[^"]*/require\.min\.js"></script>')
_CDN_REQUIRE_CONFIG = re.compile(r"require\.config\(\{\s*paths:\s*\{[^{}]*\}\s*\}\);")
_AMD_SHIM = "define('d3', [], function () { return d3; });\ndefine('jquery', [], function () { return jQuery; });"
# BertViz draws its SVGs at a fixed pixel width (970 px for the model view). Giving each a viewBox lets
# it shrink to the frame's width instead of hiding its right-hand columns behind a scroll bar.
_FIT_WIDTH = """<style>#vis svg { max-width: 100%; height: auto; }</style>
<script>
new MutationObserver(function () {
  document.querySelectorAll('#vis svg').forEach(function (svg) {
    var w = svg.getAttribute('width'), h = svg.getAttribute('height');
    if (w && h && !svg.getAttribute('viewBox'))
      svg.setAttribute('viewBox', '0 0 ' + parseFloat(w) + ' ' + parseFloat(h));
  });
}).observe(document.documentElement, {childList: true, subtree: true});
</script>
"""


class MissingAssetsError(Exception):
    """The JavaScript libraries BertViz needs are not installed."""


def js_assets_dir() -> Path:
    """Folder with the npm packages BertViz needs: $WHYBOX_JS_DIR, else the repo's node_modules/."""
    override = os.environ.get(JS_DIR_ENV)
    root = Path(override) if override else Path(__file__).resolve().parent.parent / "node_modules"
    missing = [rel for rel in _ASSETS.values() if not (root / rel).is_file()]
    if missing:
        raise MissingAssetsError(
            f"BertViz's JavaScript libraries are missing from {root} ({', '.join(missing)}). "
            "Run `npm ci --no-audit --no-fund` (or `make setup`) in the whybox repository root, "
            f"or set {JS_DIR_ENV} to a node_modules folder that has them."
        )
    return root


@lru_cache(maxsize=4)
def _library_scripts(root: Path) -> str:
    scripts = []
    for name, rel in _ASSETS.items():
        src = (root / rel).read_text(encoding="utf-8")
        # Inside <script>, `</script` ends the element and `<!--` changes how the parser finds
        # the end; none of the pinned versions contain either, so a new version that does fails here.
        if re.search(r"</script|<!--", src, re.IGNORECASE):
            raise RuntimeError(f"{root / rel} cannot be inlined in a <script> element")
        scripts.append(f"<script>/* {name} */\n{src}\n</script>")
    return "\n".join(scripts) + f"\n<script>\n{_AMD_SHIM}\n</script>"


def _safe_json(obj) -> str:
    # json.dumps leaves `<`, `>` and `&` as is, so a token such as "</script>" would end the
    # script element; their \u escapes mean the same thing to JSON and JavaScript.
    return json.dumps(obj).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _offline_document(bertviz_html: str, params_marker: str, max_height: int | None, fit_width: bool = False) -> str:
    """Rewrite BertViz's HTML (`params_marker` precedes its params JSON) into an offline document."""
    start = bertviz_html.index(params_marker) + len(params_marker)
    params, end = json.JSONDecoder().raw_decode(bertviz_html, start)
    # User text (tokens) only occurs in the params JSON; the rest is BertViz's own code. BertViz
    # pastes the JSON into a code comment too (it replaces every "PYTHON_PARAMS"), so we replace
    # every copy. "\0" holds their places while we edit the rest.
    code = bertviz_html.replace(bertviz_html[start:end], "\0")
    code, n_tags = _CDN_REQUIRE_TAG.subn("", code)
    code, n_configs = _CDN_REQUIRE_CONFIG.subn("", code)
    if (n_tags, n_configs) != (1, 1):
        raise RuntimeError("Unexpected BertViz HTML (CDN references changed); update components/bertviz_html.py")
    # Only the drawing scrolls, so BertViz's layer/head selectors stay in sight.
    style = f"<style>#vis {{ max-height: {max_height}px; overflow: auto; }}</style>\n" if max_height else ""
    style += _FIT_WIDTH if fit_width else ""
    body = code.replace("\0", _safe_json(params))
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"{style}{_library_scripts(js_assets_dir())}\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def attention_html(
    attentions: Sequence,
    tokens: list[str],
    view: str = "head",
    *,
    layer: int | None = None,
    heads: list[int] | None = None,
    include_layers: list[int] | None = None,
    height: int | None = None,
    fit_width: bool = False,
) -> str:
    """BertViz head or model view as a self-contained HTML document.

    attentions: one (1, heads, T, T) torch tensor or numpy array per layer, as a Hugging Face model
    returns with output_attentions=True; tokens: the T token strings. `layer` (head view only) is
    the layer shown first; `heads` the heads shown (head view) or included (model view);
    `include_layers` the layers included. `height` caps the drawing's height in pixels (it then
    scrolls); None leaves it at its natural size. `fit_width` scales the drawing down to the frame's
    width, keeping its proportions.
    """
    from bertviz import head_view, model_view

    attention = [torch.as_tensor(a).detach().float().cpu() for a in attentions]
    if view == "head":
        html = head_view(
            attention, tokens, layer=layer, heads=heads, include_layers=include_layers, html_action="return"
        )
    elif view == "model":
        if layer is not None:
            raise ValueError("`layer` only applies to the head view")
        html = model_view(
            attention,
            tokens,
            display_mode="light",
            include_layers=include_layers,
            include_heads=heads,
            html_action="return",
        )
    else:
        raise ValueError(f"view must be 'head' or 'model', not {view!r}")
    return _offline_document(html.data, "const params = ", height, fit_width)


def _vocab_file(model_dir: Path) -> Path:
    """vocab.txt, which BertViz's tokenizer reads; a folder saved with only tokenizer.json (a fast
    WordPiece tokenizer) gets one written beside the cache, in id order."""
    vocab = model_dir / "vocab.txt"
    if vocab.is_file():
        return vocab
    tokenizer_json = model_dir / "tokenizer.json"
    model = json.loads(tokenizer_json.read_text(encoding="utf-8")).get("model", {}) if tokenizer_json.is_file() else {}
    if model.get("type") != "WordPiece":
        raise ValueError(f"{model_dir} has no vocab.txt and no WordPiece tokenizer.json for BertViz's tokenizer")
    written = Path(tempfile.gettempdir()) / f"whybox-vocab-{hashlib.sha1(str(model_dir).encode()).hexdigest()[:12]}.txt"
    if not written.is_file():
        ordered = sorted(model["vocab"].items(), key=lambda item: item[1])
        written.write_text("\n".join(token for token, _ in ordered) + "\n", encoding="utf-8")
    return written


def neuron_view_html(
    model_dir: str | os.PathLike,
    model_type: str,
    text: str,
    text_b: str | None = None,
    *,
    layer: int | None = None,
    head: int | None = None,
    height: int | None = None,
) -> str:
    """BertViz neuron view (queries and keys behind each attention weight) as an HTML document.

    The neuron view needs BertViz's own model classes, which compute the query/key vectors.
    We build one from a local Hugging Face BERT folder (config.json, model.safetensors, vocab.txt)
    without BertViz's from_pretrained, which only reads pytorch_model.bin or downloads.
    """
    if model_type != "bert":
        raise ValueError(f"neuron view supports model_type 'bert' only, not {model_type!r}")
    from bertviz.neuron_view import show
    from bertviz.transformers_neuron_view import BertConfig, BertModel, BertTokenizer
    from safetensors.torch import load_file

    model_dir = Path(model_dir)
    config = BertConfig.from_json_file(str(model_dir / "config.json"))
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        raise ValueError("neuron view needs absolute position embeddings")
    config.output_attentions = True  # show() reads the attention dicts from the last output
    model = BertModel(config)
    # Checkpoints of task models (e.g. BertForSequenceClassification) prefix the encoder with "bert.".
    state = {k.removeprefix("bert."): v for k, v in load_file(str(model_dir / "model.safetensors")).items()}
    missing = [k for k in model.load_state_dict(state, strict=False).missing_keys if not k.startswith("pooler.")]
    if missing:
        raise ValueError(f"{model_dir} is not a BERT checkpoint BertViz can load (missing {missing[:3]}...)")
    tokenizer_config = model_dir / "tokenizer_config.json"
    lower = json.loads(tokenizer_config.read_text()).get("do_lower_case", True) if tokenizer_config.is_file() else True
    tokenizer = BertTokenizer(str(_vocab_file(model_dir)), do_lower_case=lower)
    with torch.no_grad():
        html = show(
            model, "bert", tokenizer, text, text_b, display_mode="light", layer=layer, head=head, html_action="return"
        )
    return _offline_document(html.data, "window.bertviz_params = ", height)
