"""whybox dashboard: `streamlit run dashboard/app.py` from the repository root.

The sidebar (model, methods, parameters, seed, target) is drawn here, on every page, so that the
settings it holds stay put while the user moves between pages.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run` puts dashboard/, not the repository root, on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from dashboard import state  # noqa: E402
from dashboard.sidebar import sidebar  # noqa: E402

st.set_page_config(page_title="whybox: why did the model say that?", page_icon="🔍", layout="wide")
state.init()

# Pages live in app_pages/, not pages/: a pages/ folder beside the entry point switches Streamlit to its
# old directory-based navigation, which runs a page without this script (and so without the sidebar).
PAGES = [
    st.Page("app_pages/explain.py", title="Explain", icon=":material/lightbulb:", default=True),
    st.Page("app_pages/attention.py", title="Attention", icon=":material/visibility:"),
    st.Page("app_pages/faithfulness.py", title="Faithfulness", icon=":material/fact_check:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("app_pages/what_if.py", title="What if", icon=":material/alt_route:"),  # issue 12
    st.Page("app_pages/guide.py", title="Guide", icon=":material/school:"),
]
page = st.navigation(PAGES)
with st.sidebar:
    sidebar()
state.sync_url()  # before the page: a page's st.stop() would drop later URL changes
page.run()
