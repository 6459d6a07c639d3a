"""The queue protocol on one agent's node: its publisher, consumers, client and server.

One `QueueEndpoint` per node (the broker's own node has a `Broker` instead). It routes
each broker's deliveries to the consumer of their queue there and confirms to the
publisher, and on a crash resets what lives in memory. Its `settings` are the defaults
of what it makes; a call, a consumer or a server may be given settings of its own (each
channel's: another broker, other queues, another consumer).
"""

from __future__ import annotations

from collections.abc import Callable

from protocols.node import Node
from protocols.queue.client import Consumer, Publisher, QueueClient
from protocols.queue.server import QueueServer
from protocols.queue.settings import QueueSettings
from protocols.queue.wire import PROTOCOL, AckReply, Delivery
from protocols.transport import Message


class QueueEndpoint:
    """The queue protocol on one agent's node: publisher, consumers, client, server."""

    def __init__(self, node: Node, settings: QueueSettings | None = None) -> None:
        self.node = node
        self.settings = settings or QueueSettings()
        # The consumers on this node, by (broker, queue).
        self.consumers: dict[tuple[str, str], Consumer] = {}
        self.publisher = Publisher(self)
        self.client = QueueClient(self)
        self.servers: list[QueueServer] = []
        node.register(PROTOCOL, self)

    @property
    def server(self) -> QueueServer | None:
        """The first queue server on this node, if any."""
        return self.servers[0] if self.servers else None

    def add_consumer(self, consumer: Consumer) -> None:
        """Route the deliveries of `consumer.queue` to `consumer` (it registers itself)."""
        self.consumers[consumer.settings.broker, consumer.queue] = consumer

    def add_server(self, server: QueueServer) -> None:
        """Serve requests with `server` (it registers itself); a crash resets it too."""
        self.servers.append(server)

    def consume(
        self,
        queue: str,
        on_delivery: Callable[[Delivery], None],
        prefetch: int | None = None,
        settings: QueueSettings | None = None,
        topic: str | None = None,
    ) -> Consumer:
        """Start consuming `queue` (a subscription of `topic`, if given); `on_delivery`
        settles each delivery."""
        return Consumer(self, queue, on_delivery, prefetch, settings=settings, topic=topic)

    def on_message(self, msg: Message) -> None:
        """Route a delivery to its consumer and a confirm to the publisher."""
        kind = msg.kind
        if kind == "deliver":
            consumer = self.consumers.get((msg.src, msg.body.queue))
            if consumer is not None:
                consumer.on_deliver(msg)
        elif kind == "ack":
            if isinstance(msg.body, AckReply):
                consumer = self.consumers.get((msg.src, msg.body.queue))
                if consumer is not None:
                    consumer.on_ack_reply(msg.body)
                return
            self.publisher.on_confirm(msg)

    def on_bounce(self, msg: Message, outcome: str) -> None:
        """A publish was refused (re-sent), or a consumer's ack or heartbeat (reconnect)."""
        if msg.kind == "publish":
            self.publisher.on_bounce(msg, outcome)
        elif msg.kind != "deliver":
            # A refused ack is lost for good: the broker redelivers that message.
            consumer = self.consumers.get((msg.dst, msg.body.queue))
            if consumer is not None:
                consumer.refused()

    def reset(self) -> None:
        """The node crashed: unconfirmed publishes, calls and work in hand are lost."""
        self.publisher.reset()
        self.client.reset()
        for server in self.servers:
            server.reset()
