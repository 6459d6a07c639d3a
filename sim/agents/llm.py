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

A caller whose channel is SSE gets the answer streamed (`protocols.llm.stream`): the
same admission at the GET (a 429 or 529 is the stream's status line, with its
Retry-After, before any token), then token events in chunks from the time to first
token on, and a final event carrying the usage. Output tokens counted as generated
(Anthropic's OTPM) are charged as each chunk goes out. A provider's stream cannot be
resumed: a reconnect is answered 404. A client that hangs up (its timeout, a cancel, a
broken connection) stops the generation; the stream consumed its input tokens and the
output generated until then, which its span bills (outcome `cancelled`, status 499; one
cut while it queued bills nothing). A blocking request the caller cancels (HTTP's
cancel, as a fan-out's `first` policy sends) is billed the same way; one whose caller
merely timed out is generated and billed in full, as the provider does not notice.

Every answered server span records when its first token was generated (the `ttft`
column: queueing + time to first token); a stream's client span records when the first
token event reached the caller.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

from protocols.http import payload_of
from protocols.llm import TOKENS, Gateway, generated, next_chunk
from protocols.sse import ServerStream, SseServer
from protocols.transport import Message
from protocols.workers import Job, WorkerPool
from sim import scenario as sc
from sim.agents.context import Context
from sim.agents.endpoints import served_protocols
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


class _Generation:
    """One answer being streamed: what it has sent and when its tokens come."""

    __slots__ = ("at", "due", "first", "job", "per_token", "sent", "stream", "tokens")

    def __init__(
        self, job: Job, stream: ServerStream, tokens: tuple[int, int], per_token: float
    ) -> None:
        self.job = job
        self.stream = stream
        self.tokens = tokens  # (input, output)
        self.per_token = per_token
        self.sent = 0  # output tokens sent so far
        self.at = 0.0  # seconds after the first token that the last event went out
        self.due = (1, 0.0)  # the next event: (tokens out by then, seconds after the first)
        self.first = math.nan  # running time of the first token


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
        # HTTP always; SSE when a channel streams from it (the scenario allows no other).
        served = [p for p in served_protocols(ctx.scenario, self.id) if p in ("http", "sse")]
        self.endpoints.serve(served, self._handle)
        server = self.endpoints.http.server
        assert server is not None
        server.admit = self._admit
        self._pools: list[WorkerPool] = [server.pool]
        self._sse: SseServer | None = None
        sse = self.endpoints.sse.server if self.endpoints.sse is not None else None
        if sse is not None:
            sse.admit = self._admit
            sse.resumable = False  # a provider's stream cannot be resumed
            sse.on_hangup = self._hung_up
            # A model's stream carries its tokens, not the server's progress ticks.
            sse.settings = sse.settings.model_copy(update={"progress_interval": None})
            if sse.pool is not server.pool:  # one pool serves both (the agent's workers)
                self._pools.append(sse.pool)
            self._sse = sse
        # When each running request will be answered, by span (concurrency Retry-After).
        self._ends: dict[int, float] = {}
        # The answers being streamed, by stream key.
        self._live: dict[str, _Generation] = {}
        self.node.on_crash.append(self._ends.clear)
        self.node.on_crash.append(self._live.clear)

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
        in_flight = sum(pool.busy + pool.depth for pool in self._pools)
        next_free = min(self._ends.values()) - now if self._ends else 0.0
        verdict = self.gateway.admit(now, tokens_in, settings.max_tokens, in_flight, next_free)
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
        if isinstance(job.data, ServerStream):
            self._stream(job, job.data)
            return
        tokens_in, tokens_out = job.data
        speed = self._speed()
        decode = tokens_out / speed if speed > 0 else math.inf
        first = max(0.0, self._ttft())
        work = first + decode
        faults = self.ctx.faults
        if faults.overload:
            factor = faults.service_factor(self.id)
            work *= factor
            first *= factor
        span = job.span
        now = self.ctx.env.now
        self._ends[span] = now + work
        job.on_cancel = partial(self._abandoned, job, tokens_in, tokens_out, now + first, work)
        answered = partial(self._answered, job, tokens_in, tokens_out, now + first)
        self.node.after_work(work, answered)

    def _abandoned(
        self, job: Job, tokens_in: int, tokens_out: int, first: float, work: float
    ) -> None:
        """The caller cancelled the request while the model worked on it: generation
        stops, and the input and the output generated so far were consumed."""
        self._ends.pop(job.span, None)
        now = self.ctx.env.now
        per_token = (work - (first - job.started)) / tokens_out
        out = generated(now - first, tokens_out, per_token)
        self.gateway.settle(now, out)
        recorder = self.ctx.recorder
        recorder.span_usage(job.span, tokens_in, out, self.settings.prices.cost(tokens_in, out))
        if out:
            recorder.span_first_token(job.span, first)

    def _answered(self, job: Job, tokens_in: int, tokens_out: int, first: float) -> None:
        self._ends.pop(job.span, None)
        if job.cancelled:
            return  # the caller gave up and the server stopped (`_abandoned` billed it)
        now = self.ctx.env.now
        self.gateway.settle(now, tokens_out)
        cost = self.settings.prices.cost(tokens_in, tokens_out)
        recorder = self.ctx.recorder
        recorder.span_usage(job.span, tokens_in, tokens_out, cost)
        recorder.span_first_token(job.span, min(first, now))
        job.owner.reply(job, 200)

    # -- streaming ----------------------------------------------------------------------

    def _stream(self, job: Job, stream: ServerStream) -> None:
        """Stream the answer of an admitted request: token events from the first token."""
        tokens: tuple[int, int] = stream.admitted
        speed = self._speed()
        per_token = 1.0 / speed if speed > 0 else math.inf
        first = max(0.0, self._ttft())
        faults = self.ctx.faults
        if faults.overload:
            factor = faults.service_factor(self.id)
            per_token *= factor
            first *= factor
        now = self.ctx.env.now
        generation = _Generation(job, stream, tokens, per_token)
        if not stream.conn:
            # The client hung up while the request queued: the model never saw it.
            generation.tokens = (0, 0)
            self._finish(
                generation, 499, "the client closed the stream before it began", 0, "cancelled"
            )
            return
        self._ends[job.span] = now + first + tokens[1] * per_token
        self._live[stream.key] = generation
        self.node.after_work(first, partial(self._tokens, generation))

    def _tokens(self, generation: _Generation) -> None:
        stream = generation.stream
        if self._live.get(stream.key) is not generation:
            return  # cut, or lost in a crash
        job = generation.job
        count, at = generation.due
        node = self.node
        now = node.env.now
        if generation.sent == 0:
            generation.first = now - node.paused_time()
            self.ctx.recorder.span_first_token(job.span, now)
        new = count - generation.sent
        generation.sent, generation.at = count, at
        assert self._sse is not None
        self._sse.emit(job, TOKENS, {"tokens": new})
        # Anthropic's OTPM counts output "in real time": each chunk as it goes out.
        self.gateway.settle(now, new)
        tokens_out = generation.tokens[1]
        if count >= tokens_out:
            self._finish(generation, 200)
            return
        chunking = self.settings.stream
        generation.due = next_chunk(
            count, at, tokens_out, generation.per_token, chunking.chunk_tokens, chunking.interval
        )
        node.after_work(generation.due[1] - at, partial(self._tokens, generation))

    def _hung_up(self, stream: ServerStream) -> None:
        """The client closed the stream (or its connection is gone): generation stops."""
        generation = self._live.get(stream.key)
        if generation is not None:
            self._cut(generation, "the client closed the stream")

    def _cut(self, generation: _Generation, why: str) -> None:
        # The tokens generated until now were consumed, sent or not.
        node = self.node
        tokens_out = generation.tokens[1]
        out = 0
        if generation.sent:
            elapsed = node.env.now - node.paused_time() - generation.first
            out = max(generation.sent, generated(elapsed, tokens_out, generation.per_token))
            self.gateway.settle(node.env.now, out - generation.sent)
        why = f"{why} after {out} of {tokens_out} output tokens"
        self._finish(generation, 499, why, out, "cancelled")

    def _finish(
        self,
        generation: _Generation,
        status: int,
        why: str = "",
        tokens_out: int | None = None,
        outcome: str = "",
    ) -> None:
        job, stream = generation.job, generation.stream
        self._live.pop(stream.key, None)
        self._ends.pop(job.span, None)
        tokens_in = generation.tokens[0]
        out = generation.tokens[1] if tokens_out is None else tokens_out
        self.ctx.recorder.span_usage(
            job.span, tokens_in, out, self.settings.prices.cost(tokens_in, out)
        )
        stream.final_data = {"input_tokens": tokens_in, "output_tokens": out}
        assert self._sse is not None
        self._sse.reply(job, status, why, outcome)
