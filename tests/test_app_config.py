"""`streamlit run app.py`, with no flags, serves the dashboard on this machine only."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

READ_OPTIONS = """
from streamlit import config
config.get_config_options(force_reparse=True)
print(config.get_option("server.address"), config.get_option("browser.gatherUsageStats"))
"""


def test_plain_streamlit_run_binds_loopback_only() -> None:
    # Streamlit reads .streamlit/config.toml from the directory it starts in.
    out = subprocess.run(
        [sys.executable, "-c", READ_OPTIONS],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out == ["127.0.0.1", "False"]
