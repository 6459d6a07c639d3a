"""`python -m sim`: the command line (run, list, validate, schema, export, import-otlp,
sweep, advise).

- `program`: the parser, `main`, and the verbs on scenarios and saved runs;
- `sweeps`: the `sweep` and `advise` verbs;
- `errors`: `UserError`, a user's mistake reported as one sentence, and its exit status.
"""

from sim.cli.errors import USER_ERROR, UserError
from sim.cli.program import build_parser, main

__all__ = ["USER_ERROR", "UserError", "build_parser", "main"]
