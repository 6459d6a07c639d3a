"""Agent2Agent (A2A) 1.0, with 0.3's differences where they change behaviour.

    a2a = A2aEndpoint(node, A2aServer(node, workers=4, handler=handle, settings=settings))
    call = a2a.client.call("B", "task.run", "req-1", timeout=600)  # ends with the task

See `lifecycle` for the eight task states and the transitions modelled (and why),
`server` for tasks, streams, blocking sends and push notifications, `client` for the
four modes a call follows its task in (blocking, streaming, polling, push), `settings`
for both sides' knobs and their sources, `wire` for the methods, error codes and bodies.
"""

from protocols.a2a import lifecycle
from protocols.a2a.client import A2aClient, TaskCall
from protocols.a2a.endpoint import A2aEndpoint
from protocols.a2a.lifecycle import InvalidTransition
from protocols.a2a.server import A2aServer, Task
from protocols.a2a.settings import DEFAULTS, A2aSettings, Mode
from protocols.a2a.wire import ERRORS, PROTOCOL, PUSH_TYPE

__all__ = [
    "DEFAULTS",
    "ERRORS",
    "PROTOCOL",
    "PUSH_TYPE",
    "A2aClient",
    "A2aEndpoint",
    "A2aServer",
    "A2aSettings",
    "InvalidTransition",
    "Mode",
    "Task",
    "TaskCall",
    "lifecycle",
]
