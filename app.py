"""Switchboard's dashboard: `streamlit run app.py` (or `make run`).

Every page lives in `ui/pages/` and reads the same Run from session state; this file only
configures the app, imports the plugin modules the person starting it named
(`SWITCHBOARD_PLUGINS=mod1,mod2`, which `make run PLUGINS=mod1,mod2` sets; a scenario or
an upload never names code to import) and lists the pages.
"""

import streamlit as st

from sim.plugins import PluginError, env_plugins, load_plugins
from ui import live

st.set_page_config(page_title="Switchboard", layout="wide")

try:
    load_plugins(env_plugins())
except PluginError as exc:
    st.error(str(exc))

live.sidebar()  # a followed live trace: its counts, re-imported every few seconds
st.navigation(
    [
        st.Page("ui/pages/run.py", title="Run", icon=":material/play_arrow:", default=True),
        st.Page("ui/pages/replay.py", title="Replay", icon=":material/timeline:"),
        st.Page("ui/pages/cascades.py", title="Cascades", icon=":material/waterfall_chart:"),
        st.Page("ui/pages/breakers.py", title="Breakers", icon=":material/electrical_services:"),
        st.Page("ui/pages/queues.py", title="Queues", icon=":material/stacked_bar_chart:"),
        st.Page("ui/pages/topology.py", title="Topology", icon=":material/hub:"),
        st.Page("ui/pages/compare.py", title="Compare", icon=":material/compare_arrows:"),
    ]
).run()
