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

st.set_page_config(page_title="whybox: why did the model say that?", page_icon="🔍", layout="wide")
from dashboard import cold_start  # noqa: E402  (imports only streamlit)

intro = cold_start.intro_while_starting()  # a new server: content at once, before the imports below

from dashboard import links, models, phone, views  # noqa: E402
from dashboard.sidebar import sidebar  # noqa: E402
from dashboard.widgets import plain  # noqa: E402
from explainers.errors import InternalError  # noqa: E402

links.init()
links.confirm_link_model()  # a model named by a link loads only once its visitor says so

# Pages live in app_pages/, not pages/: a pages/ folder beside the entry point switches Streamlit to its
# old directory-based navigation, which runs a page without this script (and so without the sidebar).
PAGES = [
    st.Page("app_pages/explain.py", title="Explain", icon=":material/lightbulb:", default=True),
    st.Page("app_pages/attention.py", title="Attention", icon=":material/visibility:"),
    st.Page("app_pages/faithfulness.py", title="Faithfulness", icon=":material/fact_check:"),
    st.Page("app_pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    st.Page("app_pages/layers.py", title="Layers", icon=":material/layers:"),
    st.Page("app_pages/trace.py", title="Trace", icon=":material/route:"),
    st.Page("app_pages/features.py", title="Features", icon=":material/scatter_plot:"),
    st.Page("app_pages/what_if.py", title="What if", icon=":material/alt_route:"),
    st.Page("app_pages/concepts.py", title="Concepts", icon=":material/hub:"),
    st.Page("app_pages/audit.py", title="Audit", icon=":material/dataset:"),
    st.Page("app_pages/present.py", title="Present", icon=":material/slideshow:"),
    st.Page("app_pages/guide.py", title="Guide", icon=":material/school:"),
]
page = st.navigation(PAGES)
models.model_ready(intro, st.session_state.model)
views.first_visit()  # while the default model builds, say what whybox is and show the build's progress
with st.sidebar:
    sidebar()
phone.collapse_sidebar_after_navigation(page)  # on a narrow screen the sidebar would stay over the new page
links.sync_url()  # before the page: a page's st.stop() would drop later URL changes
try:
    page.run()
    links.sync_url()  # again: the page may have changed settings it owns (marks, mode)
except Exception as exc:  # a bug in a page: the visitor gets an id, the server log the traceback
    st.error(
        plain(str(InternalError.from_exception(exc, f"drawing the {page.title} page"))), icon=":material/bug_report:"
    )
