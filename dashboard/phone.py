"""Phone-sized screens. Streamlit collapses its sidebar after a page change only for a mobile user agent;
a narrow window with any other (a phone asking for the desktop site, a small browser window) kept the
sidebar open over the page it had just opened. After a page change, close it on narrow screens."""

from __future__ import annotations

import streamlit as st

NARROW_PX = 768  # below this width Streamlit draws its sidebar over the page instead of beside it

# Our own constant script (no user text). It runs in the page: st.html with JavaScript is not sandboxed.
COLLAPSE_SIDEBAR = f"""<script>
(() => {{
  if (window.innerWidth >= {NARROW_PX}) return;
  const button = document.querySelector('[data-testid="stSidebarCollapseButton"] button');
  if (button && button.getAttribute('aria-expanded') === 'true') button.click();
}})();
</script>"""


def collapse_sidebar_after_navigation(page) -> None:
    """Emit the collapse script on the first run of a page the visitor has just moved to."""
    ss = st.session_state
    previous, ss.phone_last_page = ss.get("phone_last_page"), page.url_path
    if previous is not None and previous != page.url_path:
        st.sidebar.html(COLLAPSE_SIDEBAR, unsafe_allow_javascript=True)
