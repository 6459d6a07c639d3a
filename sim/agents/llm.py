"""The `llm` role: a model provider's endpoint, as a calling agent meets it.

A request is judged on arrival by the provider's gateway (`protocols.llm.Gateway`):
injected errors and "overloaded" bursts (529/503) first, then the context window (400),
the concurrency limit and the per-minute limits (429 with the exact Retry-After). An
admitted request queues for one of the agent's `workers` (the model's serving slots),
then takes its time to first token plus its output tokens over the decode speed, both
drawn per request. Its server span records the tokens billed and their cost (a refused
request is billed nothing: 0, 0, $0; its error says why and what quota remained).

Input tokens come from the request's body (`{"input_tokens": n}`, as a plugin agent
sends them) or the settings' distribution; output tokens from their distribution, at
least 1 and at most `max_tokens` (and, for a provider that counts only the prompt
against the context window, what the window has left).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from protocols.http import payload_of
from protocols.llm import Gateway
from protocols.transport import Message
from protocols.workers import Job
from sim import scenario as sc
from sim.agents.context import Context
from sim.agents.roles import Agent
from sim.llm_settings import LlmSettings

# What a provider says when it is overloaded, by status.
_OVERLOADED = {
    529: "overloaded_error: the API is temporarily overloaded (injected)",
    503: "the engine is currently overloaded (injected)",
}


def body_input_tokens(body: Any) -> int | None:
    """The input tokens a request's body gives (`{"input_tokens": n}`), if it does."""
    payload = payload_of(body)
    if isinstance(payload, dict):
        value = payload.get("input_tokens")
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
            return int(value)
    return None


class LlmAgent(Agent):
    """A model behind a provider's API: limits at the door, then queue, TTFT, decoding."""

    role = "llm"

    def __init__(self, ctx: Context, spec: sc.Agent) -> None:
        super().__init__(ctx, spec)
        assert spec.llm is not None  # the scenario refuses an llm agent without one
        settings: LlmSettings = spec.llm
        self.settings = settings
        assert settings.ttft is not None and settings.tokens_per_second is not None
        stream = ctx.streams.get
        self._ttft = settings.ttft.sampler(stream(f"llm:{self.id}:ttft"))
        self._speed = settings.tokens_per_second.sampler(stream(f"llm:{self.id}:speed"))
        self._input = settings.input_tokens.sampler(stream(f"llm:{self.id}:input"))
        self._output = settings.output_tokens.sampler(stream(f"llm:{self.id}:output"))
        self.gateway = Gateway(settings.limits, settings.provider)
        self.endpoints.serve(["http"], self._handle)
        server = self.endpoints.http.server
        assert server is not None
        server.admit = self._admit
        self._pool = server.pool
        # When each running request will be answered, by span (concurrency Retry-After).
        self._ends: dict[int, float] = {}
        self.node.on_crash.append(self._ends.clear)

    # -- at the door --------------------------------------------------------------------

    def _admit(self, msg: Message, span: int, now: float) -> tuple[int, str, float, Any]:
        journal = self.ctx.recorder
        faults = self.ctx.faults
        status = faults.error_status(self.id) if faults.errors else 0
        if status:
            journal.span_usage(span, 0, 0, 0.0)
            return status, _OVERLOADED.get(status, f"HTTP {status} (injected)"), 0.0, None
        settings = self.settings
        given = body_input_tokens(msg.body)
        tokens_in = given if given is not None else max(1, round(self._input()))
        tokens_out = self._planned_output(tokens_in)
        pool = self._pool
        next_free = min(self._ends.values()) - now if self._ends else 0.0
        verdict = self.gateway.admit(
            now, tokens_in, settings.max_tokens, pool.busy + pool.depth, next_free
        )
        if not verdict.admitted:
            journal.span_usage(span, 0, 0, 0.0)
            why = f"{verdict.why} (request: {tokens_in} input tokens)"
            return verdict.status, why, verdict.retry_after, None
        return 0, "", 0.0, (tokens_in, tokens_out)

    def _planned_output(self, tokens_in: int) -> int:
        settings = self.settings
        cap = settings.max_tokens
        window = settings.limits.context_window
        if window is not None and not settings.limits.context_counts_max_tokens:
            cap = min(cap, max(1, window - tokens_in))  # generation stops when it is full
        return min(cap, max(1, round(self._output())))

    # -- at the model -------------------------------------------------------------------

    def _handle(self, job: Job) -> None:
        tokens_in, tokens_out = job.data
        speed = self._speed()
        decode = tokens_out / speed if speed > 0 else math.inf
        work = max(0.0, self._ttft()) + decode
        faults = self.ctx.faults
        if faults.overload:
            work *= faults.service_factor(self.id)
        span = job.span
        self._ends[span] = self.ctx.env.now + work
        job.on_cancel = partial(self._forget, span)
        self.node.after_work(work, partial(self._answered, job, tokens_in, tokens_out))

    def _forget(self, span: int) -> None:
        self._ends.pop(span, None)

    def _answered(self, job: Job, tokens_in: int, tokens_out: int) -> None:
        self._ends.pop(job.span, None)
        if job.cancelled:
            return  # the caller gave up and the server stopped: nothing billed
        now = self.ctx.env.now
        self.gateway.settle(now, tokens_out)
        cost = self.settings.prices.cost(tokens_in, tokens_out)
        self.ctx.recorder.span_usage(job.span, tokens_in, tokens_out, cost)
        job.owner.reply(job, 200)
