"""When a streamed answer's token events go out, and how many tokens a cut stream generated.

A model streams its answer as it decodes it: the first token at the time to first token
(TTFT), then one token every `per_token` seconds (1 / tokens per second), the last at
TTFT + n * per_token, which is when a blocking answer of n tokens ends too. Sending one
event per token would make a run of a million tokens a million messages, so tokens go
out in chunks (Anthropic's `content_block_delta`, OpenAI's `chat.completion.chunk`,
each of a few tokens):

- `chunk_tokens` = c: the first event carries the first token, each later one c more
  (the last one what is left), sent when its last token is out;
- `interval` = s: an event every s seconds after the first, carrying the tokens decoded
  since (none is sent for an interval that decoded none), and the last at the end.

The stream's final event carries the usage (input and output tokens), as Anthropic's
`message_delta` and OpenAI's `include_usage` chunk do. A stream cut before its end
consumed the tokens generated until then (`generated`).
"""

from __future__ import annotations

import math

# The name of a token event on an SSE stream (its data: {"tokens": k}).
TOKENS = "tokens"

_EPS = 1e-9


def next_chunk(
    sent: int,
    at: float,
    total: int,
    per_token: float,
    chunk_tokens: int,
    interval: float | None = None,
) -> tuple[int, float]:
    """The next token event after `sent` tokens went out at `at` seconds after the first
    token: (tokens out once it is sent, seconds after the first token it is sent at).

    `sent` is 0 before the first event; `total` (at least 1) tokens in all.
    """
    end = total * per_token
    if sent <= 0:
        return 1, 0.0
    if interval is None:
        count = min(total, sent + chunk_tokens)
        return count, end if count >= total else count * per_token
    when = at + interval
    if when >= end - _EPS:
        return total, end
    count = math.floor(when / per_token + _EPS) if per_token > 0 else total
    if count <= sent:
        # Nothing new by then: the next interval that has decoded a token.
        skipped = math.ceil(((sent + 1) * per_token - at) / interval - _EPS)
        when = at + skipped * interval
        if when >= end - _EPS:
            return total, end
        count = math.floor(when / per_token + _EPS)
    return min(total, count), when


def generated(elapsed: float, total: int, per_token: float) -> int:
    """Tokens generated `elapsed` seconds after the first token (0 before it)."""
    if elapsed < 0:
        return 0
    if per_token <= 0:
        return total
    return min(total, max(1, math.floor(elapsed / per_token + _EPS)))


def events_at_most(total: int, per_token: float, chunk_tokens: int, interval: float | None) -> int:
    """The most token events a stream of `total` tokens sends (the final one apart)."""
    if interval is None:
        return 1 + math.ceil((total - 1) / chunk_tokens)
    return 2 + math.ceil(total * per_token / interval)
