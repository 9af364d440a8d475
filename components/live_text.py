"""A text area that sends its value to Python while the user types: debounced, caret kept across reruns.

Built on Streamlit's Components v2 (inline HTML, CSS and JS; no build step, nothing fetched). The JS sets
the label with textContent and the text with .value, so user text never becomes HTML. The box's DOM
survives reruns (the component is keyed, so Streamlit re-runs the JS with new data without re-mounting);
a remount (after a tab or page change) restores the last value, focus and caret from a small record on
`window`. When the component cannot be registered, `live_text_area` falls back to st.text_area.
"""

from __future__ import annotations

import hashlib

import streamlit as st

DEBOUNCE_MS = 300

_HTML = """
<label class="wb-live-label"><span class="wb-live-caption"></span><textarea class="wb-live-box" spellcheck="false"
 data-testid="whyboxLiveText"></textarea></label>
<div class="wb-live-status" aria-live="polite"></div>
"""

_CSS = """
.wb-live-label { display: block; font-family: var(--st-font); color: var(--st-text-color); }
.wb-live-caption { display: block; font-size: 0.875rem; margin-bottom: 0.25rem; }
.wb-live-box {
  box-sizing: border-box; width: 100%; resize: vertical; padding: 0.5rem 0.75rem;
  font: inherit; font-size: var(--st-base-font-size, 1rem); line-height: 1.5; color: var(--st-text-color);
  background: var(--st-secondary-background-color); border: 1px solid var(--st-widget-border-color, transparent);
  border-radius: var(--st-base-radius, 0.5rem); outline: none;
}
.wb-live-box:focus { border-color: var(--st-primary-color); }
.wb-live-status { font-family: var(--st-font); font-size: 0.75rem; opacity: 0.65; min-height: 1.1em; }
"""

# Kept in one place (`window.__whyboxLive[key]`): the text, focus and caret of each box, so a remount restores
# them. `data.version` changes only when Python replaces the text (a new original): then Python's value wins.
_JS = """
export default function (component) {
  const { data, setStateValue, parentElement } = component;
  const box = parentElement.querySelector("textarea");
  const caption = parentElement.querySelector(".wb-live-caption");
  const status = parentElement.querySelector(".wb-live-status");
  const memory = (window.__whyboxLive = window.__whyboxLive || {});
  caption.textContent = data.label;
  box.style.height = data.height + "px";
  box.placeholder = data.placeholder || "";
  const version = String(data.version);
  if (box.dataset.version !== version) {
    const kept = memory[data.key];
    const mounted = box.dataset.version === undefined;
    box.dataset.version = version;
    if (mounted && kept && kept.version === version) {  // a remount: the user's text and caret come back
      box.value = kept.value;
      if (kept.focused) {
        box.focus({ preventScroll: true });
        box.setSelectionRange(kept.start, kept.end);
      }
    } else {
      box.value = data.value ?? "";
    }
    box._sent = data.value ?? "";
  }
  const remember = () => {
    memory[data.key] = {
      version, value: box.value, start: box.selectionStart, end: box.selectionEnd,
      focused: box.getRootNode().activeElement === box,
    };
  };
  const send = () => {
    clearTimeout(box._timer);
    box._timer = null;
    remember();
    if (box.value !== box._sent) {
      box._sent = box.value;
      status.textContent = "Updating…";
      setStateValue("value", box.value);
    }
  };
  box.oninput = () => {
    remember();
    status.textContent = "";
    box.dataset.synced = "false";
    clearTimeout(box._timer);
    box._timer = setTimeout(send, data.debounce_ms);
  };
  box.onkeydown = (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      send();
    }
  };
  box.onkeyup = box.onclick = box.onselect = box.onfocus = remember;
  box.onblur = () => { send(); memory[data.key].focused = false; };
  // "true" once Python has seen the box's current text (a test waits on it; so could a person's eye)
  box.dataset.synced = String(!box._timer && (data.value ?? "") === box.value);
  if (box.dataset.synced === "true") status.textContent = data.status || "";
  return () => clearTimeout(box._timer);
}
"""


@st.cache_resource(show_spinner=False)
def _component():
    """The registered component, or None when this Streamlit has no Components v2 (then: st.text_area)."""
    try:
        return st.components.v2.component("whybox_live_text", html=_HTML, css=_CSS, js=_JS)
    except Exception:  # noqa: BLE001 - any failure to register means the plain text area
        return None


def live_text_area(
    label: str, key: str, value: str, height: int = 90, status: str = "", debounce_ms: int = DEBOUNCE_MS
) -> str:
    """The box's current text. `value` is its starting text; a new `value` starts a new box (the old edit is
    dropped). `status` is a short line under the box once it has settled (e.g. what was last scored)."""
    version = hashlib.sha1(value.encode("utf-8")).hexdigest()[:12]
    mount = _component()
    if mount is None:
        return _plain(label, key, value, version, height)
    state_key = f"{key}_{version}"
    current = (st.session_state.get(state_key) or {}).get("value", value)
    data = {
        "key": key,
        "label": label,
        "value": current,
        "version": version,
        "height": height,
        "debounce_ms": int(debounce_ms),
        "status": status,
    }
    try:
        result = mount(key=state_key, data=data, default={"value": value}, on_value_change=lambda: None)
    except Exception:  # noqa: BLE001 - a component that cannot mount: the plain text area still works
        return _plain(label, key, value, version, height)
    text = result.get("value") if result is not None else None
    return text if isinstance(text, str) else current


def _plain(label: str, key: str, value: str, version: str, height: int) -> str:
    """st.text_area: updates on Ctrl+Enter or when the box loses focus."""
    if st.session_state.get(f"{key}_for") != version:
        st.session_state[key], st.session_state[f"{key}_for"] = value, version
    return st.text_area(f"{label} (updates on Ctrl+Enter or when you click away)", key=key, height=height)
