"""The scenario file: pydantic models of every section, and their cross-checks.

A scenario names its agents, the channels between them, the network's links, the
workload and the fault windows. Unknown fields are errors, so a typo never passes
silently. Field-level problems come from pydantic; references between sections (a
channel naming an unknown agent) are checked on the raw data so that every problem in a
file is reported at once, not only the first.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator
from typing import Annotated, Any, Literal, TypeGuard

import networkx as nx
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from protocols.a2a import A2aSettings
from protocols.http import HttpClientSettings, HttpServerSettings
from protocols.mcp import McpSettings
from protocols.order import QueueOrder
from protocols.queue import QueueSettings
from protocols.resilience import (
    AdaptiveThrottleSettings,
    BreakerSettings,
    DeadlineSettings,
    FanOutSettings,
    RetryBudgetSettings,
    RetrySettings,
)
from protocols.sse import SseSettings
from protocols.websocket import WebSocketSettings
from sim.distributions import Constant, Distribution, FieldError, quoted
from sim.llm_settings import LlmSettings
from sim.plugins import BUILTIN_ROLES, describe_settings_error, plugin_role, plugin_roles

Probability = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]
AgentId = Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Model(BaseModel):
    """Base of every scenario model: unknown fields are errors, aliases allowed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def window_message(what: str, start: float, end: float) -> str:
    """The sentence for a window that ends before it starts (one wording everywhere)."""
    return f"{what} ends at {_g(end)}, before it starts at {_g(start)}"


def _g(value: float) -> str:
    """A number as `:g` shows it; an integer past what a float holds (read raw from a
    file, before pydantic refuses it) keeps its digits instead of overflowing."""
    try:
        return f"{value:g}"
    except OverflowError:
        return str(value)


# --- agents and channels -------------------------------------------------------------

# The validation context of a scenario read back from a saved run (`RECORDED`): its plugin
# roles ran when it was recorded, so they are accepted even where their plugin is not
# loaded (a dashboard or a notebook reading the run).
RECORDED = {"recorded": True}


def _recorded(info: ValidationInfo) -> bool:
    context = info.context
    return isinstance(context, dict) and bool(context.get("recorded"))


class NegotiationStance(Model):
    """A worker's side of a draft negotiation over WebSocket (see protocols.negotiation)."""

    position: float = Field(description="The value it opens with (a draft's length, a score).")
    limit: float = Field(description="How far it will concede, at most.")
    think: float = Field(0.3, ge=0, description="Seconds it thinks before each counter-bid.")
    deadline: float = Field(
        5.0, gt=0, description="Seconds a negotiation it starts may last (the writer's)."
    )
    threshold: float = Field(2.0, ge=0, description="A gap this small is an agreement.")


class Discovery(Model):
    """How a registry's agent cards stay true: workers renew theirs with heartbeats, a card
    that is not renewed within `ttl` is dropped, and an orchestrator keeps the cards it
    got last for `cache_ttl` seconds, to use while the registry cannot be reached.

    Eureka renews every 30 s and evicts after 90 s (three missed renewals); the defaults
    keep its 3x ratio at a scale that suits runs of minutes."""

    heartbeat: float | None = Field(
        10.0,
        gt=0,
        description="Seconds between a worker's heartbeats to the registry; None: cards "
        "are static (every worker of the scenario is listed, up or down).",
    )
    ttl: float = Field(30.0, gt=0, description="Seconds a card lives after its last heartbeat.")
    cache_ttl: float = Field(
        30.0,
        ge=0,
        description="Seconds an orchestrator may use the cards it got last when the "
        "registry does not answer (0: never).",
    )

    @model_validator(mode="after")
    def _outlives_a_heartbeat(self) -> Discovery:
        if self.heartbeat is not None and self.ttl < self.heartbeat:
            raise FieldError(
                "ttl",
                f"a card must outlive the gap between heartbeats ({self.heartbeat:g} s), "
                f"got {self.ttl:g} s",
            )
        return self


class Agent(Model):
    """One agent: a workload client, a service with a pool of workers, a collaboration
    role (an orchestrator, its workers and the registry that lists them), or a role that
    a plugin registered (`sim.plugins`), configured by its `settings` block."""

    id: AgentId
    role: str = Field(
        "service",
        description="client, service, broker, orchestrator, worker, registry, or the name "
        "of a role a plugin module registered (python -m sim run --plugin MODULE).",
        json_schema_extra={"examples": list(BUILTIN_ROLES)},
    )
    settings: dict[str, Any] | None = Field(
        None,
        description="A plugin role's own settings, validated by the model it registered "
        "(built-in roles take theirs as fields of the agent).",
    )
    version: int = Field(1, ge=1, description="Message version this agent speaks.")
    workers: int = Field(1, ge=1, description="Requests served at once.")
    service_time: Distribution = Field(
        default_factory=lambda: Constant(value=0.01),
        description="Time a worker spends on one request, in seconds.",
    )
    queue_limit: int | None = Field(
        None,
        ge=0,
        description="Requests that may wait for a worker; past it the service answers 503.",
    )
    queue_order: QueueOrder = Field(
        default_factory=QueueOrder,
        description="Which waiting request a free worker takes next, in every protocol the "
        "agent serves: fifo (default), lifo, adaptive_lifo or priority by a message field.",
    )
    calls: list[AgentId] = Field(
        default_factory=list,
        description="Downstream agents called, in order, while serving each request.",
    )
    parallel_calls: bool = Field(
        False,
        description="A service calls every agent of `calls` at once (a fan-out with its "
        "`fanout` policy) instead of one after the other.",
    )
    http: HttpServerSettings = Field(
        default_factory=HttpServerSettings,
        description="How the agent answers HTTP: rate limit, Retry-After, idempotency keys.",
    )
    queue: QueueSettings | None = Field(
        None, description="A broker's flavour and defaults for its queues (role: broker)."
    )
    # -- collaboration roles (sim.agents.collaboration) --
    fanout: FanOutSettings = Field(
        default_factory=FanOutSettings,
        description="An orchestrator's fan-out policy over its sub-task streams.",
    )
    workers_per_task: int = Field(
        2, ge=1, description="Workers an orchestrator assigns each task to (round-robin)."
    )
    result_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds an orchestrator waits, after its fan-out ends, for the queued "
        "results of the workers that finished.",
    )
    discovery: Discovery = Field(
        default_factory=Discovery,
        description="A registry's cards: workers' heartbeats, card TTL, orchestrators' "
        "card cache (role: registry; the workers and orchestrators read the registry's).",
    )
    pairs_with: AgentId | None = Field(
        None,
        description="A worker's critic: after its work it negotiates the draft with this "
        "agent over a WebSocket (a channel from the worker to it sets the protocol).",
    )
    negotiation: NegotiationStance | None = Field(
        None,
        description="A worker's stance in draft negotiations (default: a writer opens at 80 "
        "and concedes to 60, a critic opens at 40 and concedes to 65).",
    )
    llm: LlmSettings | None = Field(
        None,
        description="An llm agent's model: a profile of sim/presets/llm-models.yaml or its "
        "latency distributions, token counts, limits and prices (role: llm).",
    )
    upgrade_at: float | None = Field(
        None,
        ge=0,
        description="Simulated time at which the agent moves to `version` + 1 of its "
        "messages (a rolling upgrade).",
    )

    @field_validator("role")
    @classmethod
    def _known_role(cls, value: str, info: ValidationInfo) -> str:
        if value in BUILTIN_ROLES or plugin_role(value) is not None or _recorded(info):
            return value
        known = [*BUILTIN_ROLES, *plugin_roles()]
        hint = difflib.get_close_matches(value, known, n=1)
        guess = f"; did you mean '{hint[0]}'?" if hint else ""
        raise ValueError(
            f"unknown role {quoted(value)}{guess} (roles: {', '.join(known)}, or one a plugin "
            "module registers: --plugin MODULE)"
        )

    @model_validator(mode="after")
    def _settings_of_its_role(self, info: ValidationInfo) -> Agent:
        entry = plugin_role(self.role)
        if entry is None and _recorded(info) and self.role not in BUILTIN_ROLES:
            return self  # a saved run's plugin role, read without its plugin
        if entry is None:
            if self.settings is not None:
                raise FieldError(
                    "settings",
                    f"only a plugin role takes a settings block; role '{self.role}' takes "
                    "its settings as fields of the agent",
                )
            return self
        if entry.settings is None:
            if self.settings:
                raise FieldError("settings", f"role '{self.role}' takes no settings")
            return self
        try:
            entry.settings.model_validate(self.settings or {})
        except ValidationError as exc:
            where, what = describe_settings_error(exc.errors())  # type: ignore[arg-type]
            raise FieldError(where, what) from None
        return self

    @model_validator(mode="after")
    def _llm_block(self) -> Agent:
        if self.role == "llm" and self.llm is None:
            raise FieldError(
                "llm",
                "an llm agent needs an llm block: a model profile (model: claude-sonnet-4.6) "
                "or its ttft and tokens_per_second",
            )
        if self.role != "llm" and self.llm is not None:
            raise FieldError("llm", f"only an llm agent has a model; this one is a {self.role}")
        return self

    @model_validator(mode="after")
    def _queue_order_where_requests_queue(self) -> Agent:
        # The default order is no choice (a saved scenario writes every field out).
        chosen = self.queue_order != QueueOrder()
        if chosen and self.role in ("client", "broker"):
            raise FieldError(
                "queue_order",
                f"a {self.role} serves no requests, so it has no queue to order; "
                "set queue_order on the agent that serves them",
            )
        return self


class A2aChannel(A2aSettings):
    """A2A on a channel: the mode and its timings, how long the caller's user takes to
    answer a task that asks for input, and how the caller answers one that asks for
    credentials."""

    answer_delay: Distribution = Field(
        default_factory=lambda: Constant(value=30.0),
        description="Seconds the caller's user (a human or another agent) takes to answer "
        "an input-required task (a scenario value).",
    )
    auth_delay: Distribution = Field(
        default_factory=lambda: Constant(value=30.0),
        description="Seconds the caller (or its user, through an OAuth consent) takes to "
        "supply the credentials an auth-required task asks for (a scenario value).",
    )
    auth_declined: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Probability that the caller has no credentials for an auth-required "
        "task and declines; the agent then rejects the task.",
    )


class Channel(Model):
    """How one agent calls another: the protocol and its per-call settings."""

    src: AgentId = Field(alias="from")
    dst: AgentId = Field(alias="to")
    protocol: Literal["http", "queue", "sse", "websocket", "a2a", "mcp"] = "http"
    timeout: float | None = Field(
        5.0, gt=0, description="Seconds the caller waits for a response (httpx: 5 s)."
    )
    http: HttpClientSettings = Field(
        default_factory=HttpClientSettings,
        description="The HTTP client: pool, keep-alive, handshake, method, idempotency key.",
    )
    queue: QueueSettings = Field(
        default_factory=QueueSettings,
        description="Queue request-reply: the broker, and the settings of the queue that "
        "carries this channel's requests (visibility timeout, DLQ, its consumer's) and of "
        "its producer; what it leaves unset comes from the broker agent's `queue:`.",
    )
    sse: SseSettings = Field(
        default_factory=SseSettings,
        description="Server-Sent Events: retry delay, keep-alive, replay buffer, progress.",
    )
    websocket: WebSocketSettings = Field(
        default_factory=WebSocketSettings,
        description="WebSocket: handshake, keepalive pings, reconnect backoff, receive queue.",
    )
    a2a: A2aChannel = Field(
        default_factory=A2aChannel,
        description="Agent2Agent: the mode (blocking, streaming, polling, push), resubscribe, "
        "push retries, the chunk pace, input-required and its answer delay.",
    )
    mcp: McpSettings = Field(
        default_factory=McpSettings,
        description="Model Context Protocol over Streamable HTTP: the revision (2025-11-25 "
        "or 2026-07-28), sessions, resumption, timeouts and reconnects as python-sdk sets "
        "them.",
    )
    retry: RetrySettings | None = Field(None, description="Retries with backoff and jitter.")
    breaker: BreakerSettings | None = Field(
        None, description="A circuit breaker for this caller and callee (Resilience4j)."
    )
    budget: RetryBudgetSettings | None = Field(
        None, description="A retry budget: ratio (Finagle), token_bucket (AWS) or grpc."
    )
    throttle: AdaptiveThrottleSettings | None = Field(
        None, description="Client-side adaptive throttling (Google SRE book)."
    )
    deadline: DeadlineSettings = Field(
        default_factory=DeadlineSettings,
        description="Whether the caller's deadline caps this hop's timeout.",
    )


# --- network ---------------------------------------------------------------------------


class LinkProps(Model):
    """What a link does to the messages it carries."""

    latency: Distribution = Field(default_factory=lambda: Constant(value=0.001))
    loss: Probability = 0.0
    duplicate: Probability = Field(
        0.0, description="Chance a message is delivered twice; the copy has its own latency."
    )
    bandwidth: float | None = Field(
        None, gt=0, description="Bytes per second; messages serialise FIFO on the link."
    )


class Link(Model):
    """A link of the topology, overriding the default link's properties."""

    src: AgentId = Field(alias="from")
    dst: AgentId = Field(alias="to")
    symmetric: bool = Field(True, description="Also add the link from `to` back to `from`.")
    latency: Distribution | None = None
    loss: Probability | None = None
    duplicate: Probability | None = None
    bandwidth: float | None = Field(None, gt=0)


class Network(Model):
    """The topology and the links' properties."""

    topology: Literal["full", "links"] = Field(
        "full",
        description="'full': every agent reaches every agent; 'links': only the listed links "
        "exist, messages route over the fewest hops, and one with no route is unavailable.",
    )
    default: LinkProps = Field(default_factory=LinkProps)
    links: list[Link] = Field(default_factory=list)


# --- workload --------------------------------------------------------------------------


class Poisson(Model):
    """Poisson arrivals: exponential gaps with the given rate per second."""

    kind: Literal["poisson"] = "poisson"
    rate: float = Field(gt=0)


class ConstantRate(Model):
    """Evenly spaced arrivals."""

    kind: Literal["constant"] = "constant"
    rate: float = Field(gt=0)


class Bursts(Model):
    """`size` requests at once every `every` seconds, over an optional Poisson background."""

    kind: Literal["bursts"] = "bursts"
    size: int = Field(ge=1)
    every: float = Field(gt=0)
    rate: NonNegative = 0.0


class Ramp(Model):
    """Poisson arrivals whose rate moves linearly from start_rate to end_rate."""

    kind: Literal["ramp"] = "ramp"
    start_rate: NonNegative
    end_rate: NonNegative

    @model_validator(mode="after")
    def _some_load(self) -> Ramp:
        if self.start_rate == 0 and self.end_rate == 0:
            raise ValueError("start_rate or end_rate must be positive")
        return self


class Spike(Model):
    """Poisson arrivals at `rate`, and at `spike_rate` between spike_start and spike_end."""

    kind: Literal["spike"] = "spike"
    rate: float = Field(gt=0)
    spike_rate: float = Field(gt=0)
    spike_start: NonNegative
    spike_end: NonNegative

    @model_validator(mode="after")
    def _window(self) -> Spike:
        if self.spike_end < self.spike_start:
            raise FieldError(
                "spike_end", window_message("the spike", self.spike_start, self.spike_end)
            )
        return self


Arrivals = Annotated[Poisson | ConstantRate | Bursts | Ramp | Spike, Field(discriminator="kind")]


class Workload(Model):
    """A stream of requests from a client agent to a service."""

    src: AgentId = Field(alias="from")
    dst: AgentId = Field(alias="to")
    type: str = Field("task.run", min_length=1, description="Message type of each request.")
    size_bytes: int = Field(256, ge=0, description="Payload size of each request.")
    start: NonNegative = 0.0
    end: NonNegative | None = Field(None, description="When arrivals stop (default: run end).")
    arrivals: Arrivals

    @model_validator(mode="after")
    def _window(self) -> Workload:
        if self.end is not None and self.end < self.start:
            raise FieldError("end", window_message("the workload", self.start, self.end))
        return self


# --- faults ----------------------------------------------------------------------------


class _Fault(Model):
    start: NonNegative
    end: NonNegative | None = Field(None, description="When the fault ends (default: never).")

    @model_validator(mode="after")
    def _window(self) -> _Fault:
        if self.end is not None and self.end < self.start:
            raise FieldError("end", window_message("the fault window", self.start, self.end))
        return self


class _NetworkFault(_Fault):
    targets: list[AgentId] = Field(
        default_factory=list, description="Agents whose messages (sent or received) it affects."
    )
    groups: list[list[AgentId]] = Field(
        default_factory=list,
        description="Two groups: it affects messages between them (a link is [[A], [B]]).",
    )
    direction: Literal["both", "one-way"] = Field(
        "both", description="'one-way': only messages from the first group to the second."
    )

    @model_validator(mode="after")
    def _scope(self) -> _NetworkFault:
        if self.groups and len(self.groups) != 2:
            raise FieldError(
                "groups", f"must hold exactly two groups of agents, got {len(self.groups)}"
            )
        return self


class LatencyFault(_NetworkFault):
    """Extra latency: `add` a draw to each message, or `multiply` its latency."""

    kind: Literal["latency"] = "latency"
    add: Distribution | None = None
    multiply: NonNegative | None = None

    @model_validator(mode="after")
    def _one_effect(self) -> LatencyFault:
        if self.add is None and self.multiply is None:
            raise ValueError("a latency fault needs 'add' or 'multiply'")
        return self


class LossFault(_NetworkFault):
    """Messages are lost with the given probability."""

    kind: Literal["loss"] = "loss"
    probability: Probability


class DuplicateFault(_NetworkFault):
    """Messages are delivered twice with the given probability."""

    kind: Literal["duplicate"] = "duplicate"
    probability: Probability


class PartitionFault(_Fault):
    """No message crosses between groups; in-flight ones are dropped at delivery.

    With `targets` instead of groups, the targets are cut off from every other agent.
    """

    kind: Literal["partition"] = "partition"
    groups: list[list[AgentId]] = Field(default_factory=list)
    targets: list[AgentId] = Field(default_factory=list)
    direction: Literal["both", "one-way"] = Field(
        "both", description="'one-way': only messages from the first group are cut."
    )

    @model_validator(mode="after")
    def _shape(self) -> PartitionFault:
        if not self.groups and not self.targets:
            raise ValueError("a partition needs groups or targets")
        if self.groups and len(self.groups) < 2:
            raise FieldError("groups", "a partition needs at least two groups")
        return self


class CrashFault(_Fault):
    """The targets are down from start until `end` (their restart); state is lost."""

    kind: Literal["crash"] = "crash"
    targets: list[AgentId] = Field(min_length=1)


class PauseFault(_Fault):
    """The targets stop processing (a GC stall); messages queue up and resume at `end`."""

    kind: Literal["pause"] = "pause"
    targets: list[AgentId] = Field(min_length=1)


class ErrorFault(_Fault):
    """The targets answer a fraction of requests, or the first N, with `status`."""

    kind: Literal["error"] = "error"
    targets: list[AgentId] = Field(min_length=1)
    fraction: Probability | None = None
    first: int | None = Field(None, ge=1)
    status: Literal[500, 503] = 503

    @model_validator(mode="after")
    def _how_many(self) -> ErrorFault:
        if (self.fraction is None) == (self.first is None):
            raise ValueError("an error fault needs exactly one of 'fraction' or 'first'")
        return self


class OverloadFault(_Fault):
    """The targets' service times are multiplied by `factor`."""

    kind: Literal["overload"] = "overload"
    targets: list[AgentId] = Field(min_length=1)
    factor: float = Field(gt=0)


class OverloadedFault(_Fault):
    """A model provider's "overloaded" bursts: during each burst the targets answer a
    `fraction` of requests at once with `status` (Anthropic's 529 overloaded_error, OpenAI's
    503 "The engine is currently overloaded"). Bursts last `burst` seconds, one every
    `every` seconds from `start` (default: one burst over the whole window)."""

    kind: Literal["overloaded"] = "overloaded"
    targets: list[AgentId] = Field(min_length=1)
    status: Literal[529, 503] = Field(529, description="529 (Anthropic) or 503 (OpenAI).")
    fraction: Probability = Field(1.0, description="Share of requests refused in a burst.")
    burst: float | None = Field(None, gt=0, description="Seconds each burst lasts.")
    every: float | None = Field(
        None, gt=0, description="Seconds from one burst's start to the next's."
    )

    @model_validator(mode="after")
    def _bursts(self) -> OverloadedFault:
        if self.every is not None and self.burst is None:
            raise FieldError("every", "bursts that repeat need 'burst', their length")
        if self.every is not None and self.burst is not None and self.burst > self.every:
            raise FieldError(
                "burst",
                f"a burst ({self.burst:g} s) must fit in its period ({self.every:g} s)",
            )
        return self

    def bursts(self, until: float) -> Iterator[tuple[float, float]]:
        """The (start, end) of each burst that begins before `until` (the run's end), one
        at a time (a short period over a long run makes many)."""
        end = self.end if self.end is not None else until
        if self.burst is None:
            yield self.start, end
            return
        t = self.start
        while t < min(end, until):
            yield t, min(t + self.burst, end)
            if self.every is None:
                return
            t += self.every


class PoisonFault(_Fault):
    """`count` poison messages sent from `from` to `to`; their handler fails every time.

    They are spread evenly over the window (all at `start` when it has no end).
    """

    kind: Literal["poison"] = "poison"
    src: AgentId = Field(alias="from")
    dst: AgentId = Field(alias="to")
    type: str = Field("poison", min_length=1)
    count: int = Field(1, ge=1)


class BreakerFault(_Fault):
    """An operator acts on the circuit breaker of `agent`'s channel to `peer` at `start`:
    `force_open` (every call rejected), `disable` (every call passes, nothing judged) or
    `reset` (back to CLOSED with an empty window), as Resilience4j's transitionTo...
    methods do. A forced or disabled breaker is reset at `end`, if given; the breakers
    table records each change with its reason."""

    kind: Literal["breaker"] = "breaker"
    action: Literal["force_open", "disable", "reset"]
    agent: AgentId = Field(description="The caller whose breaker it is.")
    peer: AgentId = Field(description="The callee the breaker guards.")

    @model_validator(mode="after")
    def _one_instant(self) -> BreakerFault:
        if self.action == "reset" and self.end is not None:
            raise FieldError("end", "a reset happens at one time (start): it has no end")
        return self


Fault = Annotated[
    LatencyFault
    | LossFault
    | DuplicateFault
    | PartitionFault
    | CrashFault
    | PauseFault
    | ErrorFault
    | OverloadFault
    | OverloadedFault
    | PoisonFault
    | BreakerFault,
    Field(discriminator="kind"),
]


# --- the scenario ----------------------------------------------------------------------


class Scenario(Model):
    """A whole scenario: what runs, for how long, over which network, under which faults."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    seed: int = Field(0, ge=0)
    duration: float = Field(gt=0, description="Simulated seconds the run lasts.")
    sample_interval: float = Field(
        1.0, gt=0, description="Seconds between two samples of every queue."
    )
    expected_violations: list[str] = Field(
        default_factory=list,
        description="Invariant checks this scenario breaks on purpose (a broken twin shows "
        "what goes wrong); `run --check` reports them without failing.",
    )
    allow_call_cycles: bool = Field(
        False,
        description="Let agents' `calls` form a cycle (A calls B calls A): refused unless "
        "set, because each request then calls on for ever until a timeout cuts it.",
    )
    agents: list[Agent] = Field(min_length=1)
    channels: list[Channel] = Field(default_factory=list)
    network: Network = Field(default_factory=Network)
    workload: list[Workload] = Field(default_factory=list)
    faults: list[Fault] = Field(default_factory=list)
    _channel_index: tuple[list[Channel], int, dict[tuple[str, str], Channel]] | None = PrivateAttr(
        None
    )

    def agent(self, agent_id: str) -> Agent:
        """The agent with this id."""
        for agent in self.agents:
            if agent.id == agent_id:
                return agent
        raise KeyError(agent_id)

    def queue_settings(self, channel: Channel) -> QueueSettings:
        """A queue channel's settings: the knobs it sets, over its broker agent's `queue:`."""
        broker = next((a for a in self.agents if a.id == channel.queue.broker), None)
        return channel.queue.over(broker.queue if broker is not None else None)

    def channel(self, src: str, dst: str) -> Channel:
        """The channel from src to dst, or the default one when none is listed."""
        # Looked up once per pair of agents that talk: an index, not a scan of up to
        # 100,000 channels each time. Rebuilt when `channels` is another list (a copy
        # with other channels) or grew; the first channel of a pair wins, as in a scan.
        index = self._channel_index
        if index is None or index[0] is not self.channels or index[1] != len(self.channels):
            pairs: dict[tuple[str, str], Channel] = {}
            for channel in self.channels:
                pairs.setdefault((channel.src, channel.dst), channel)
            index = self._channel_index = (self.channels, len(self.channels), pairs)
        found = index[2].get((src, dst))
        if found is not None:
            return found
        return Channel.model_validate({"from": src, "to": dst})


def _is_plugin_role(role: Any) -> bool:
    return isinstance(role, str) and role not in BUILTIN_ROLES and plugin_role(role) is not None


def reference_errors(data: Any) -> list[tuple[str, str]]:
    """Problems found on the raw scenario data, as (field path, message) pairs.

    References between sections (an unknown agent, a workload from an agent that is not
    a client, two channels for one pair) and windows that end before they start. Works
    on the raw mapping so that it runs even when pydantic found field errors elsewhere,
    or in the same item (pydantic skips a model's own checks then): the user sees every
    problem of the file at once.
    """
    if not isinstance(data, dict):
        return []
    agents = data.get("agents")
    roles: dict[str, Any] = {}
    errors: list[tuple[str, str]] = []
    for i, agent in enumerate(_list(agents)):
        if isinstance(agent, dict) and isinstance(agent.get("id"), str):
            if agent["id"] in roles:
                errors.append((f"agents.{i}.id", f"duplicate agent id {quoted(agent['id'])}"))
            else:
                roles[agent["id"]] = agent.get("role", "service")

    def check(path: str, value: Any) -> None:
        if isinstance(value, str) and roles and value not in roles:
            errors.append((path, f"unknown agent {quoted(value)}"))

    for i, agent in enumerate(_list(agents)):
        if isinstance(agent, dict):
            for j, callee in enumerate(_list(agent.get("calls"))):
                check(f"agents.{i}.calls.{j}", callee)
            check(f"agents.{i}.pairs_with", agent.get("pairs_with"))
            if agent.get("pairs_with") is not None and agent.get("pairs_with") == agent.get("id"):
                errors.append((f"agents.{i}.pairs_with", "a worker cannot pair with itself"))
    for section in ("channels", "workload", "faults"):
        for i, item in enumerate(_list(data.get(section))):
            if not isinstance(item, dict):
                continue
            for end in ("from", "to"):
                check(f"{section}.{i}.{end}", item.get(end))
            for j, target in enumerate(_list(item.get("targets"))):
                check(f"{section}.{i}.targets.{j}", target)
            for g, group in enumerate(_list(item.get("groups"))):
                for j, member in enumerate(_list(group)):
                    check(f"{section}.{i}.groups.{g}.{j}", member)
    brokers = [
        a.get("id")
        for a in (agents if isinstance(agents, list) else [])
        if isinstance(a, dict) and a.get("role") == "broker"
    ]
    channels = data.get("channels")
    for i, channel in enumerate(channels if isinstance(channels, list) else []):
        if isinstance(channel, dict) and channel.get("protocol") == "queue":
            queue = channel.get("queue")
            broker = queue.get("broker", "broker") if isinstance(queue, dict) else "broker"
            if broker not in brokers:
                errors.append(
                    (
                        f"channels.{i}.queue.broker",
                        f"no broker agent {quoted(broker)} (role: broker)",
                    )
                )
    network = data.get("network")
    links = network.get("links") if isinstance(network, dict) else None
    for i, link in enumerate(_list(links)):
        if isinstance(link, dict):
            for end in ("from", "to"):
                check(f"network.links.{i}.{end}", link.get(end))

    seen: dict[tuple[Any, Any], int] = {}
    for i, channel in enumerate(_list(data.get("channels"))):
        # Only names can pair up: a list or mapping in `to` is pydantic's to report.
        if isinstance(channel, dict) and _are_names(channel.get("from"), channel.get("to")):
            pair = (channel.get("from"), channel.get("to"))
            if pair in seen:
                errors.append(
                    (
                        f"channels.{i}",
                        f"a second channel from {quoted(pair[0])} to {quoted(pair[1])} "
                        f"(channels.{seen[pair]} already sets it)",
                    )
                )
            else:
                seen[pair] = i
    for i, workload in enumerate(_list(data.get("workload"))):
        if not isinstance(workload, dict):
            continue
        # Only clients generate load: a workload from a service would silently send
        # nothing, and `role` defaults to service.
        src = workload.get("from")
        if isinstance(src, str) and roles.get(src) == "service":
            errors.append(
                (
                    f"workload.{i}.from",
                    f"agent '{src}' is a service, so it would send nothing; give it role: client",
                )
            )
        elif isinstance(src, str) and _is_plugin_role(roles.get(src)):
            errors.append(
                (
                    f"workload.{i}.from",
                    f"agent '{src}' plays the plugin role '{roles[src]}', which sends no "
                    "workload; give the workload to a client (a plugin sends from main())",
                )
            )
        _check_window(errors, f"workload.{i}", workload, "start", "end", "the workload")
        arrivals = workload.get("arrivals")
        if isinstance(arrivals, dict) and arrivals.get("kind") == "spike":
            path = f"workload.{i}.arrivals"
            _check_window(errors, path, arrivals, "spike_start", "spike_end", "the spike")
        dst = workload.get("to")
        if isinstance(dst, str) and roles.get(dst) in ("client", "broker"):
            errors.append(
                (
                    f"workload.{i}.to",
                    f"agent '{dst}' is a {roles[dst]}, so nothing would answer its requests; "
                    "aim the workload at an agent that serves",
                )
            )
    duration = data.get("duration")
    for section, what in (("workload", "the workload"), ("faults", "the fault window")):
        for i, item in enumerate(_list(data.get(section))):
            if not isinstance(item, dict):
                continue
            if section == "faults":
                _check_window(errors, f"faults.{i}", item, "start", "end", what)
            start = item.get("start", 0.0)
            if _is_number(start) and _is_number(duration) and start >= duration > 0:
                errors.append(
                    (
                        f"{section}.{i}.start",
                        f"{what} starts at {_g(start)} s, when the run has ended "
                        f"(duration {_g(duration)} s)",
                    )
                )
    if data.get("allow_call_cycles") is not True:
        errors.extend(_call_cycles(_list(agents)))
    for i, channel in enumerate(_list(data.get("channels"))):
        if (
            isinstance(channel, dict)
            and isinstance(channel.get("to"), str)
            and roles.get(channel["to"]) == "llm"
            and channel.get("protocol", "http") not in ("http", "sse")
        ):
            errors.append(
                (
                    f"channels.{i}.protocol",
                    f"an llm agent is called over http (a blocking answer) or sse (its "
                    f"tokens streamed), not {channel.get('protocol')}",
                )
            )
    errors.extend(queue_channel_errors(data))
    errors.extend(_breaker_action_errors(data, roles))
    return errors


# Knobs of one queue and of the consumer that reads it: channels that send to the same
# queue share them. Producer knobs (confirm_timeout, publish_attempts) are per channel.
QUEUE_KNOBS = (
    "visibility_timeout", "max_deliveries", "limit_counts", "dead_letter", "dead_letter_by",
    "requeue_on_disconnect", "resume_pending", "requeue_at_head", "on_error", "prefetch",
    "heartbeat", "reconnect_delay", "idempotent", "dedupe_ttl", "drop_expired", "drop_margin",
    "topic", "filter", "binding", "ordered", "order_by", "fifo", "exactly_once", "retry",
    "min_backoff", "max_backoff", "dead_letter_topic", "push_endpoint", "lease_extension",
)  # fmt: skip
# Which flavours have each publish-subscribe or ordering knob, and what it is called there.
FLAVOUR_KNOBS: dict[str, tuple[tuple[str, ...], str]] = {
    "fifo": (("sqs",), "an SQS FIFO queue"),
    "ordered": (("pubsub",), "Pub/Sub message ordering (SQS: fifo: true)"),
    "exactly_once": (("pubsub",), "Pub/Sub exactly-once delivery"),
    "retry": (("pubsub",), "a Pub/Sub retry policy"),
    "dead_letter_topic": (("pubsub",), "a Pub/Sub dead-letter topic"),
    "push_endpoint": (("pubsub",), "a Pub/Sub push subscription"),
    "filter": (("pubsub", "sqs"), "a subscription filter (Pub/Sub, SNS)"),
    "binding": (("rabbitmq",), "a RabbitMQ topic-exchange binding"),
}
# Knobs of a caller's consumer of its reply queue, shared by the channels that use it.
REPLY_KNOBS = ("heartbeat", "reconnect_delay")


def queue_channel_errors(data: Any) -> list[tuple[str, str]]:
    """Queue channels' settings that cannot apply as written, on the raw scenario data.

    A channel's `queue:` sets the queue that carries its requests, its consumer and its
    producer. The sample interval and the flavour belong to the broker; channels that
    send to one queue (or share a reply queue) must agree on what they share.
    """
    agents = {
        a["id"]: a
        for a in _list(data.get("agents"))
        if isinstance(a, dict) and isinstance(a.get("id"), str)
    }
    errors: list[tuple[str, str]] = []
    shared: dict[tuple[str, str, str], tuple[int, QueueSettings]] = {}
    for i, channel in enumerate(_list(data.get("channels"))):
        if not isinstance(channel, dict) or channel.get("protocol") != "queue":
            continue
        raw = channel.get("queue", {})
        if not isinstance(raw, dict) or not isinstance(raw.get("broker", "broker"), str):
            continue  # pydantic says what is wrong
        broker: str = raw.get("broker", "broker")
        agent = agents.get(broker)
        if agent is None:
            continue  # the broker reference check says so
        mapping = agent.get("queue")
        own: dict[str, Any] = mapping if isinstance(mapping, dict) else {}
        path = f"channels.{i}.queue"
        if "sample_interval" in raw:
            errors.append(
                (
                    f"{path}.sample_interval",
                    "the sample interval belongs to the broker, not to a channel: set it "
                    f"in the queue settings of agent '{broker}'",
                )
            )
        runs = own.get("flavour", "sqs")
        if "flavour" in raw and raw["flavour"] != runs:
            errors.append(
                (
                    f"{path}.flavour",
                    f"the flavour belongs to the broker: agent '{broker}' runs {runs}; set "
                    f"flavour: {raw['flavour']} in its queue settings instead",
                )
            )
            continue  # its other settings follow from the flavour: nothing more to say
        try:
            settings = QueueSettings.model_validate(raw).over(QueueSettings.model_validate(own))
            queues = [
                ("queue", settings.requests_of(str(channel.get("to"))), QUEUE_KNOBS),
                ("reply queue", settings.replies_of(str(channel.get("from"))), REPLY_KNOBS),
            ]
        except (ValueError, LookupError, AttributeError):
            continue  # a bad setting or queue name, said elsewhere
        errors.extend(_pubsub_errors(path, raw, settings, channel, runs))
        for what, name, knobs in queues:
            first = shared.setdefault((what, broker, name), (i, settings))
            for knob in knobs if first[0] != i else ():
                mine, theirs = getattr(settings, knob), getattr(first[1], knob)
                if mine != theirs:
                    errors.append(
                        (
                            f"{path}.{knob}",
                            f"channels.{first[0]} and channels.{i} share the {what} '{name}' "
                            f"on broker '{broker}' and its one consumer, so they must agree "
                            f"on {knob} ({theirs} and {mine}), or use their own {what}s",
                        )
                    )
    return errors


def _pubsub_errors(
    path: str, raw: dict[str, Any], settings: QueueSettings, channel: dict[str, Any], runs: str
) -> list[tuple[str, str]]:
    """Publish-subscribe and ordering knobs a channel sets that its broker cannot honour."""
    errors: list[tuple[str, str]] = []
    for knob, (flavours, what) in FLAVOUR_KNOBS.items():
        if knob in raw and runs not in flavours:
            errors.append(
                (f"{path}.{knob}", f"{what} needs flavour {' or '.join(flavours)}; "
                 f"the broker runs {runs}")
            )  # fmt: skip
    subscription_knobs = [k for k in ("filter", "binding", "push_endpoint") if k in raw]
    if subscription_knobs and settings.topic is None:
        knob = subscription_knobs[0]
        errors.append(
            (f"{path}.{knob}", f"{knob} belongs to a subscription: name the topic "
             "its queue subscribes to (topic: ...)")
        )  # fmt: skip
    push = settings.push_endpoint
    if push is not None and push != channel.get("to"):
        errors.append(
            (f"{path}.push_endpoint", f"the subscription's queue is served by "
             f"'{channel.get('to')}', so it can push only there, not to '{push}'")
        )  # fmt: skip
    if settings.exactly_once and push is not None:
        errors.append(
            (f"{path}.exactly_once", "Pub/Sub offers exactly-once delivery on pull "
             "subscriptions only, not with a push_endpoint")
        )  # fmt: skip
    return errors


def _breaker_action_errors(data: dict[str, Any], roles: dict[str, Any]) -> list[tuple[str, str]]:
    """A breaker action (faults, kind: breaker) names known agents and a channel that has
    a breaker: otherwise it would act on nothing."""
    breakers = {
        (channel.get("from"), channel.get("to"))
        for channel in _list(data.get("channels"))
        if isinstance(channel, dict)
        and channel.get("breaker") is not None
        and _are_names(channel.get("from"), channel.get("to"))
    }
    errors: list[tuple[str, str]] = []
    for i, fault in enumerate(_list(data.get("faults"))):
        if not isinstance(fault, dict) or fault.get("kind") != "breaker":
            continue
        agent, peer = fault.get("agent"), fault.get("peer")
        unknown = False
        for key, value in (("agent", agent), ("peer", peer)):
            if isinstance(value, str) and roles and value not in roles:
                errors.append((f"faults.{i}.{key}", f"unknown agent {quoted(value)}"))
                unknown = True
        known = isinstance(agent, str) and isinstance(peer, str) and not unknown
        if known and (agent, peer) not in breakers:
            errors.append(
                (
                    f"faults.{i}",
                    f"the channel from '{agent}' to '{peer}' has no breaker to act on; "
                    "give that channel a breaker",
                )
            )
    return errors


def _call_cycles(agents: list[Any]) -> list[tuple[str, str]]:
    """A cycle in the agents' `calls`, as the problem of the first agent on it."""
    graph = nx.DiGraph()  # insertion-ordered, so the report is the same every time
    index: dict[str, int] = {}
    for i, agent in enumerate(agents):
        if isinstance(agent, dict) and isinstance(agent.get("id"), str):
            index.setdefault(agent["id"], i)
            graph.add_node(agent["id"])
            for callee in _list(agent.get("calls")):
                if isinstance(callee, str):
                    graph.add_edge(agent["id"], callee)
    try:
        edges = nx.find_cycle(graph, source=list(graph.nodes))
    except nx.NetworkXNoCycle:
        return []
    cycle = [str(edge[0]) for edge in edges] + [str(edges[0][0])]
    first = cycle[0] if cycle[0] in index else next(a for a in cycle if a in index)
    return [
        (
            f"agents.{index[first]}.calls",
            f"the calls go round in a cycle ({' -> '.join(cycle)}); break it, or set "
            "allow_call_cycles: true",
        )
    ]


def _check_window(
    errors: list[tuple[str, str]],
    path: str,
    item: dict[str, Any],
    start_key: str,
    end_key: str,
    what: str,
) -> None:
    start = item.get(start_key, 0.0 if start_key == "start" else None)
    end = item.get(end_key)
    if _is_number(start) and _is_number(end) and end < start:
        errors.append((f"{path}.{end_key}", window_message(what, start, end)))


def _are_names(*values: Any) -> bool:
    """Whether every value is a string, as an agent's name must be (and hashable)."""
    return all(isinstance(value, str) for value in values)


def _is_number(value: Any) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []
