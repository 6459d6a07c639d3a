"""The A2A task lifecycle: its eight states and the transitions this model allows.

States (A2A 1.0 `enum TaskState`, with the 0.3 names the trace uses, as they read):

| state            | 1.0 enum                    | class       |
|------------------|-----------------------------|-------------|
| `submitted`      | TASK_STATE_SUBMITTED (1)    | active      |
| `working`        | TASK_STATE_WORKING (2)      | active      |
| `input-required` | TASK_STATE_INPUT_REQUIRED (6) | interrupted |
| `auth-required`  | TASK_STATE_AUTH_REQUIRED (8)  | interrupted |
| `completed`      | TASK_STATE_COMPLETED (3)    | terminal    |
| `failed`         | TASK_STATE_FAILED (4)       | terminal    |
| `canceled`       | TASK_STATE_CANCELED (5)     | terminal    |
| `rejected`       | TASK_STATE_REJECTED (7)     | terminal    |

The specification has no normative transition table. The one modelled here, and why:

| from                            | to                                                    |
|---------------------------------|-------------------------------------------------------|
| (creation, written `""`)        | submitted, working, rejected, or any terminal state   |
| submitted                       | working, rejected, canceled, failed                   |
| working                         | input-required, auth-required, and every terminal one |
| input-required / auth-required  | working (the client's message or an out-of-band credential arrived), and every terminal one |
| terminal                        | nothing                                               |

- Creation may land anywhere but an interrupted state: a server may answer a message with
  a finished task (A2A spec §3.1.1, a task "directly" terminal), or refuse it (REJECTED,
  "at creation or later"); asking for input presupposes the agent has worked on it.
- `submitted` cannot go to an interrupted state without `working` first, for the same
  reason; it can fail or be cancelled before any work (spec §3.1.5: cancel is best-effort
  on any non-terminal task).
- An interrupted task resumes only through `working` (spec §3.4.3: the client continues
  with the same task id; §7.6 for credentials), or ends (cancelled while waiting, timed
  out by the agent as failed, rejected).
- A terminal task is never left (A2A "life of a task": terminal tasks "cannot restart";
  a refinement is a new task in the same context). `transition` refuses it, and the
  server answers a message to a terminal task with UnsupportedOperationError.
"""

from __future__ import annotations

SUBMITTED = "submitted"
WORKING = "working"
INPUT_REQUIRED = "input-required"
AUTH_REQUIRED = "auth-required"
COMPLETED = "completed"
FAILED = "failed"
CANCELED = "canceled"
REJECTED = "rejected"
CREATED = ""  # the "from" of a task's first row: it did not exist before

STATES = (SUBMITTED, WORKING, INPUT_REQUIRED, AUTH_REQUIRED, COMPLETED, FAILED, CANCELED, REJECTED)
TERMINAL = frozenset({COMPLETED, FAILED, CANCELED, REJECTED})
INTERRUPTED = frozenset({INPUT_REQUIRED, AUTH_REQUIRED})
ACTIVE = frozenset({SUBMITTED, WORKING})
# The 1.0 wire names (ProtoJSON enums), for export.
ENUM = {
    SUBMITTED: "TASK_STATE_SUBMITTED",
    WORKING: "TASK_STATE_WORKING",
    INPUT_REQUIRED: "TASK_STATE_INPUT_REQUIRED",
    AUTH_REQUIRED: "TASK_STATE_AUTH_REQUIRED",
    COMPLETED: "TASK_STATE_COMPLETED",
    FAILED: "TASK_STATE_FAILED",
    CANCELED: "TASK_STATE_CANCELED",
    REJECTED: "TASK_STATE_REJECTED",
}

_ENDS = TERMINAL
ALLOWED: dict[str, frozenset[str]] = {
    CREATED: frozenset({SUBMITTED, WORKING}) | _ENDS,
    SUBMITTED: frozenset({WORKING, REJECTED, CANCELED, FAILED}),
    WORKING: INTERRUPTED | _ENDS,
    INPUT_REQUIRED: frozenset({WORKING}) | _ENDS,
    AUTH_REQUIRED: frozenset({WORKING}) | _ENDS,
    **{state: frozenset() for state in TERMINAL},
}


class InvalidTransition(ValueError):
    """A transition the lifecycle refuses (out of a terminal state, say)."""


def allowed(from_state: str, to_state: str) -> bool:
    """Whether a task may go from `from_state` to `to_state` (`""`: it is being created)."""
    return to_state in ALLOWED.get(from_state, frozenset())


def check(from_state: str, to_state: str) -> None:
    """Raise InvalidTransition, with one sentence, unless the transition is allowed."""
    if allowed(from_state, to_state):
        return
    if from_state in TERMINAL:
        raise InvalidTransition(f"a {from_state} task is terminal and never changes state")
    start = f"from {from_state}" if from_state else "at creation"
    raise InvalidTransition(f"a task cannot go to {to_state} {start}")


def closes_stream(state: str) -> bool:
    """Whether a 1.0 stream closes when its task reaches `state` (terminal or interrupted:
    spec §3.1.2 and §11.7)."""
    return state in TERMINAL or state in INTERRUPTED
