"""The queue protocol on one agent's node: its publisher, consumers, client and server.

One `QueueEndpoint` per node, so one broker per agent (the broker's own node has a
`Broker` instead). It routes the broker's deliveries to the consumer of their queue and
its confirms to the publisher, and on a crash resets what lives in memory.
"""

from __future__ import annotations

from collections.abc import Callable

from protocols.node import Node
from protocols.queue.client import Consumer, Publisher, QueueClient
from protocols.queue.server import QueueServer
from protocols.queue.settings import QueueSettings
from protocols.queue.wire import PROTOCOL, Delivery
from protocols.transport import Message


class QueueEndpoint:
    """The queue protocol on one agent's node: publisher, consumers, client, server."""

    def __init__(self, node: Node, settings: QueueSettings | None = None) -> None:
        self.node = node
        self.settings = settings or QueueSettings()
        self.consumers: dict[str, Consumer] = {}
        self.publisher = Publisher(self)
        self.client = QueueClient(self)
        self.server: QueueServer | None = None
        node.register(PROTOCOL, self)

    def add_consumer(self, consumer: Consumer) -> None:
        """Route the deliveries of `consumer.queue` to `consumer` (it registers itself)."""
        self.consumers[consumer.queue] = consumer

    def add_server(self, server: QueueServer) -> None:
        """Serve requests with `server` (it registers itself); a crash resets it too."""
        self.server = server

    def consume(
        self, queue: str, on_delivery: Callable[[Delivery], None], prefetch: int | None = None
    ) -> Consumer:
        """Start consuming `queue`; `on_delivery` settles each delivery."""
        return Consumer(self, queue, on_delivery, prefetch)

    def on_message(self, msg: Message) -> None:
        """Route a delivery to its consumer and a confirm to the publisher."""
        kind = msg.kind
        if kind == "deliver":
            consumer = self.consumers.get(msg.body.queue)
            if consumer is not None:
                consumer.on_deliver(msg)
        elif kind == "ack":
            self.publisher.on_confirm(msg)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A publish was refused (re-sent), or a consumer's ack or heartbeat (reconnect)."""
        if msg.kind == "publish":
            self.publisher.on_bounce(msg, outcome)
        elif msg.kind != "deliver":
            # A refused ack is lost for good: the broker redelivers that message.
            consumer = self.consumers.get(msg.body.queue)
            if consumer is not None:
                consumer.refused()

    def reset(self) -> None:
        """The node crashed: unconfirmed publishes, calls and work in hand are lost."""
        self.publisher.reset()
        self.client.reset()
        if self.server is not None:
            self.server.reset()
