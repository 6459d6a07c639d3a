"""Which subscriptions take a topic's message, its ordering key, and retry delays.

Pure functions of the settings and the message, kept apart from the broker's state:

- `binding_matches`: a RabbitMQ topic-exchange binding key against a routing key;
- `takes`: whether a subscription's filter and binding let a message in;
- `key_of`: a message's ordering key (Pub/Sub) or message group (SQS FIFO);
- `retry_delay`: the Pub/Sub retry policy's wait before a redelivery.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

from protocols.queue.settings import QueueSettings


def binding_matches(binding: str, routing_key: str) -> bool:
    """Whether `routing_key` matches the topic-exchange `binding`.

    Words are separated by '.'; `*` stands for exactly one word, `#` for zero or more
    (RabbitMQ's topic exchange).
    """
    return _match(tuple(binding.split(".")), tuple(routing_key.split(".")))


@lru_cache(maxsize=1024)
def _match(pattern: tuple[str, ...], words: tuple[str, ...]) -> bool:
    if not pattern:
        return not words
    head, rest = pattern[0], pattern[1:]
    if head == "#":
        # Zero words, or one more word still under this '#'.
        return _match(rest, words) or (bool(words) and _match(pattern, words[1:]))
    if not words:
        return False
    return (head == "*" or head == words[0]) and _match(rest, words[1:])


def attributes_of(type_: str, producer: str, given: Mapping[str, str] | None) -> dict[str, str]:
    """A message's attributes: `type` and `producer`, then those its publisher gave."""
    return {"type": type_, "producer": producer, **(given or {})}


def takes(settings: QueueSettings, attributes: Mapping[str, str]) -> bool:
    """Whether a subscription with `settings` takes a message with `attributes`.

    Its filter must match every attribute it names, and its binding the routing key (the
    `routing_key` attribute, else the message type).
    """
    for name, value in settings.filter.items():
        if attributes.get(name) != value:
            return False
    if settings.binding == "#":
        return True
    routing_key = attributes.get("routing_key") or attributes.get("type", "")
    return binding_matches(settings.binding, routing_key)


def key_of(settings: QueueSettings, given: str, producer: str, correlation_id: str) -> str:
    """The ordering key (or FIFO group) of a message in a queue with `settings`.

    The publisher's own key wins; else `order_by`; else, in an ordered queue, its
    producer (one group per publisher, as most FIFO producers use). "" is unordered.
    """
    if not settings.in_order:
        return ""
    if given:
        return given
    if settings.order_by == "correlation_id":
        return correlation_id
    return producer


def retry_delay(settings: QueueSettings, deliveries: int) -> float:
    """Seconds before a nacked or expired message is ready again, after `deliveries`.

    Immediate: 0. Exponential: min_backoff doubled per delivery after the first, capped
    at max_backoff (Pub/Sub RetryPolicy).
    """
    if settings.retry == "immediate":
        return 0.0
    exponent = max(deliveries - 1, 0)
    if exponent > 60:  # 2**60 x any backoff is past the cap: no float overflow
        return settings.max_backoff
    return float(min(settings.max_backoff, settings.min_backoff * 2**exponent))
