"""Queue messaging: a broker agent with durable queues, and the agents' side of it.

    broker = Broker(broker_node, QueueSettings(flavour="sqs", max_deliveries=5))
    server = QueueServer(QueueEndpoint(worker_node, settings), workers=4, handler=handler)
    caller = QueueEndpoint(client_node, settings)
    caller.client.call("worker", "task.run", "t-1", timeout=60, on_done=print)

See `broker` for the broker's semantics, `store` for its queues, `client` for producers,
consumers and request-reply, `server` for the queue server and the idempotent receiver,
`settings` for the flavours (sqs, rabbitmq, redis-streams) and their defaults, `wire`
for the messages on the wire, and `endpoint` for the queue protocol on one node.
"""

from protocols.queue.broker import Broker
from protocols.queue.client import Consumer, Publisher, QueueClient
from protocols.queue.endpoint import QueueEndpoint
from protocols.queue.server import Deduper, QueueServer
from protocols.queue.settings import FLAVOURS, Flavour, QueueSettings
from protocols.queue.store import DeadLetter, Queue, Stored, Subscription
from protocols.queue.wire import PROTOCOL, Delivery

__all__ = [
    "FLAVOURS",
    "PROTOCOL",
    "Broker",
    "Consumer",
    "DeadLetter",
    "Deduper",
    "Delivery",
    "Flavour",
    "Publisher",
    "Queue",
    "QueueClient",
    "QueueEndpoint",
    "QueueServer",
    "QueueSettings",
    "Stored",
    "Subscription",
]
