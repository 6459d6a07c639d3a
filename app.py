"""Switchboard's dashboard: `streamlit run app.py` (or `make run`).

Every page lives in `ui/pages/` and reads the same Run from session state; this file only
configures the app and lists the pages.
"""

import streamlit as st

st.set_page_config(page_title="Switchboard", layout="wide")

st.navigation(
    [
        st.Page("ui/pages/run.py", title="Run", icon=":material/play_arrow:", default=True),
    ]
).run()
