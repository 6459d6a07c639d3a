"""The names of the collaboration's spans, and the nine steps of one task (`STEPS`).

The collaboration's roles (`sim.agents.collaboration`, `worker`, `discovery`) write the
spans under these names; the timeline of `sim.report` reads them back by them.
"""

from __future__ import annotations

# Span names of the collaboration's steps.
DISCOVER = "agent.card"
# A worker renewing its card at the registry (not a step of a task: its own trace), and
# the orchestrator falling back on the cards it got last (the registry did not answer).
HEARTBEAT = "agent.heartbeat"
CACHED = "agent.card.cache"
ASSIGN = "assign"
SUBTASK = "task.run"
PROGRESS = "progress"
REVIEW = "review"
# A writer's and its critic's negotiation (client: the writer, server: the critic).
NEGOTIATE = "negotiate"
RESULT = "task.result"
COMPLETE = "task.complete"

# (step, what, span name, span kind, protocol): one task's trace, in the order it runs.
STEPS = [
    ("0", "task received", SUBTASK, "server", "http"),
    ("1-2", "discover workers (agent cards)", DISCOVER, "client", "http"),
    ("3-4", "assign sub-tasks (fan-out)", ASSIGN, "internal", "fanout"),
    ("3-4", "sub-task stream opened", SUBTASK, "client", "sse"),
    ("5", "progress streamed", PROGRESS, "internal", "sse"),
    ("6-7", "writer and critic negotiate", REVIEW, "internal", "websocket"),
    ("8", "result published", RESULT, "producer", "queue"),
    ("9", "result matched by correlation id", RESULT, "consumer", "queue"),
    ("9", "task completed", COMPLETE, "internal", "http"),
]
