"""What the command line's verbs raise for a user's mistake, shared by every verb module."""

from __future__ import annotations

USER_ERROR = 2


class UserError(Exception):
    """A mistake of the user's, reported as one sentence."""
