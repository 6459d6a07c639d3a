"""A path typed into a field and its button, as one form.

A form, so typing the path and pressing Enter (or the button) is one rerun: with a field
and a button apart, a click landing while the field's own Enter rerun ran could be lost,
and nothing opened (CI saw it on a loaded machine).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st


def path_form(
    form: str,
    label: str,
    key: str,
    button: str,
    *,
    placeholder: str,
    help: str,
    widths: Sequence[int] = (4, 1),
    icon: str = ":material/folder_open:",
    on_click: Callable[[], None] | None = None,
) -> str | None:
    """The field's path when its button (or Enter) submitted one, else None.

    The button goes in the last of `widths`' columns, the field in the first; with
    `on_click` the callback runs first, reading the path from `st.session_state[key]`.
    """
    with st.form(form, border=False):
        columns = st.columns(list(widths), vertical_alignment="bottom")
        path = columns[0].text_input(
            label, key=key, persist_state="session", placeholder=placeholder, help=help
        )
        submitted = columns[-1].form_submit_button(
            button, on_click=on_click, icon=icon, width="stretch"
        )
    return path if submitted and path else None
