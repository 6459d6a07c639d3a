"""A model provider's API as a calling agent meets it: limits, verdicts, prices.

    gateway = Gateway(LlmLimits(input_tokens_per_minute=30_000), "anthropic")
    verdict = gateway.admit(now, input_tokens=2_000, max_tokens=1_024)
    if not verdict.admitted:
        ...  # answer verdict.status (400 or 429) with verdict.retry_after

See `buckets` for the continuously refilling per-minute limits, `settings` for what
each limit counts and the price table, `gateway` for the admission of one request,
`stream` for when a streamed answer's token events go out.
The latency of an admitted request (time to first token, decoding) and the agent that
serves it live in `sim.agents.llm`; this package knows nothing of scenario files.
"""

from protocols.llm.buckets import TokenBucket
from protocols.llm.gateway import LIMIT_NAMES, Gateway, Verdict
from protocols.llm.settings import LlmLimits, LlmPrices, OutputCharge, Provider
from protocols.llm.stream import TOKENS, events_at_most, generated, next_chunk

__all__ = [
    "LIMIT_NAMES",
    "TOKENS",
    "Gateway",
    "LlmLimits",
    "LlmPrices",
    "OutputCharge",
    "Provider",
    "TokenBucket",
    "Verdict",
    "events_at_most",
    "generated",
    "next_chunk",
]
