"""A2A: the JSON-RPC methods, error codes and the bodies its messages carry.

Every piece is one `Message` with `protocol="a2a"`:

| piece                                   | kind       | type          | body      |
|-----------------------------------------|------------|---------------|-----------|
| a JSON-RPC request (any method)         | `request`  | the task's    | `Rpc`     |
| its JSON-RPC response (result or error) | `response` | the task's    | `Reply`   |
| a stream's status line (200)            | `response` | the task's    | `Event`   |
| an SSE event of a task stream           | `event`    | the task's    | `Event`   |
| the end of a stream's body              | `control`  | `a2a.eof`     | `Event`   |
| a proxy's cut, a reset, a client's FIN  | `control`  | `a2a.cut`/`a2a.close` | `Event` |
| a push notification POST to a webhook   | `request`  | `a2a.push`    | `Push`    |
| the webhook's 200                       | `response` | `a2a.push`    | `None`    |

Method names are 1.0's (spec §5.3, the same in JSON-RPC and gRPC).
"""

from __future__ import annotations

from dataclasses import dataclass

PROTOCOL = "a2a"

SEND = "SendMessage"
STREAM = "SendStreamingMessage"
GET = "GetTask"
CANCEL = "CancelTask"
SUBSCRIBE = "SubscribeToTask"
CARD = "GetAgentCard"  # GET /.well-known/agent-card.json (not JSON-RPC, same shape here)

EOF_TYPE = "a2a.eof"
CUT_TYPE = "a2a.cut"
CLOSE_TYPE = "a2a.close"
PUSH_TYPE = "a2a.push"
CARD_TYPE = "a2a.card"

# A2A error codes as JSON-RPC errors (spec §5.4).
TASK_NOT_FOUND = -32001
TASK_NOT_CANCELABLE = -32002
PUSH_NOT_SUPPORTED = -32003
UNSUPPORTED_OPERATION = -32004
CONTENT_TYPE_NOT_SUPPORTED = -32005
INVALID_AGENT_RESPONSE = -32006
EXTENDED_CARD_NOT_CONFIGURED = -32007
EXTENSION_SUPPORT_REQUIRED = -32008
VERSION_NOT_SUPPORTED = -32009
INTERNAL_ERROR = -32603  # JSON-RPC's; A2A's "system errors" (overload) use it (§3.3.2)

ERRORS = {
    TASK_NOT_FOUND: "TaskNotFoundError",
    TASK_NOT_CANCELABLE: "TaskNotCancelableError",
    PUSH_NOT_SUPPORTED: "PushNotificationNotSupportedError",
    UNSUPPORTED_OPERATION: "UnsupportedOperationError",
    CONTENT_TYPE_NOT_SUPPORTED: "ContentTypeNotSupportedError",
    INVALID_AGENT_RESPONSE: "InvalidAgentResponseError",
    EXTENDED_CARD_NOT_CONFIGURED: "ExtendedAgentCardNotConfiguredError",
    EXTENSION_SUPPORT_REQUIRED: "ExtensionSupportRequiredError",
    VERSION_NOT_SUPPORTED: "VersionNotSupportedError",
    INTERNAL_ERROR: "InternalError",
}

# Stream event names (StreamResponse's oneof, spec §4.3.3).
TASK = "task"
STATUS = "statusUpdate"
ARTIFACT = "artifactUpdate"


@dataclass(slots=True, frozen=True)
class Snapshot:
    """A Task as GetTask or a stream's first event carries it: its state and how many
    chunks its one artifact holds so far."""

    task_id: str
    state: str
    chunks: int = 0
    last_chunk: bool = False
    error: str = ""
    seq: int = 0  # how many transitions the task had: its status timestamp, in effect


@dataclass(slots=True)
class Rpc:
    """A JSON-RPC request. `task_id` is empty for a message that starts a task;
    `return_immediately` is SendMessageConfiguration's; `push`, when not empty, asks for
    push notifications to the sender's webhook with this token (which the webhook uses
    to know the notification, even before it knows the task's id); `payload` is the
    application's part."""

    method: str
    task_id: str = ""
    return_immediately: bool = False
    push: str = ""
    payload: object = None
    declined: bool = False  # the client's answer to an interrupted task is "no" (§7.6)


@dataclass(slots=True)
class Reply:
    """A JSON-RPC response: the task (a result) or an error code and message."""

    method: str
    task: Snapshot | None = None
    code: int = 0
    error: str = ""
    card: tuple[bool, bool] | None = None  # (streaming, push_notifications), for CARD
    status: int = 200  # the HTTP status (504: a proxy's answer to a blocking send it cut)


@dataclass(slots=True)
class Event:
    """One piece of a task stream, at position `n` of its connection `conn` (the msg_id
    of the request that opened it). `chunk` is an artifact chunk's index (append=true
    after the first), `last_chunk` its lastChunk flag; a TASK event carries a snapshot."""

    conn: str
    n: int
    name: str
    task_id: str = ""
    state: str = ""
    chunk: int = -1
    last_chunk: bool = False
    snapshot: Snapshot | None = None
    reason: str = ""


@dataclass(slots=True, frozen=True)
class Push:
    """A push notification's body: the status update of a task (a StreamResponse)."""

    task_id: str
    state: str
    notification: int  # the notification's number for its task, for idempotent receivers
    token: str = ""  # the push config's token, as the client set it
    seq: int = 0  # the task's transitions so far (pushes may arrive out of order)
