"""Sizing a scenario before it runs: the caps of `sim.limits`, and an estimate of its work.

Three passes, each a pure function returning (field path, sentence) pairs:

- `raw_problems`, on the parsed file before pydantic sees it: an alias bomb, a list
  too long, too many agents. Cheap, and it must come first: validating a billion
  values would itself hang.
- `field_problems`, on a validated Scenario: one field past its cap (a size, a rate,
  a timer that would tick a billion times, a queue-name template with fields it may
  not use).
- `work_problems`, on a validated Scenario whose references hold: the run's expected
  messages, arrival draws and queue samples, estimated from the workloads (`estimate`).

`warnings` says what may run but will be slow. The estimate is nominal: what the
workload makes when nothing fails. Retries and faults add to it; the caps leave room.
"""

from __future__ import annotations

import math
import string
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sim import limits
from sim import scenario as sc

Problem = tuple[str, str]

# Wire messages of one request and its answer, by protocol: HTTP and WebSocket a request
# and a response; SSE a GET, its response and the final event; a queue hop a publish,
# its confirm, the delivery and its ack, for the request and again for the reply.
# A2A: the request, the stream's status line and Task (or the answer), its last status
# and end; its chunks, polls and keep-alives are added by the life of the task.
# MCP: the POST, its stream's status line, priming event, result and end.
_HOP_MESSAGES = {"http": 2.0, "websocket": 2.0, "sse": 3.0, "queue": 8.0, "a2a": 4.0, "mcp": 5.0}
# An orchestrator's task: the registry lookup (2), and per sub-task its SSE assignment,
# the negotiation's bids and the queued result (about 20, measured on `collaboration`).
_TASK_MESSAGES = 2.0
_SUBTASK_MESSAGES = 20.0
# Roles whose pools the run samples every `sample_interval` (sim.agents: a Service).
_SAMPLED_ROLES = ("service", "worker", "registry")


# -- before validation ------------------------------------------------------------------


def raw_problems(data: Any) -> list[Problem]:
    """Caps checked on the raw data, before validation: values, list lengths, agents.

    An alias bomb is reported alone: nothing else may walk its data.
    """
    problems: list[Problem] = []
    count = 0
    stack: list[tuple[str, Any]] = [("", data)]
    while stack:
        where, node = stack.pop()
        count += 1
        if count > limits.MAX_VALUES:
            return [
                (
                    "(top level)",
                    f"holds more than {limits.MAX_VALUES:,} values once its YAML aliases are "
                    "expanded, past the cap for a scenario (one of 20,000 agents has well "
                    "under a million)",
                )
            ]
        if isinstance(node, dict):
            stack.extend((_join(where, key), value) for key, value in node.items())
        elif isinstance(node, list):
            if len(node) > limits.MAX_LIST_ITEMS:
                problems.append(
                    (
                        where or "(top level)",
                        f"lists {len(node):,} items, past the cap of {limits.MAX_LIST_ITEMS:,} "
                        "items in one list",
                    )
                )
                continue
            stack.extend((_join(where, i), value) for i, value in enumerate(node))
    agents = data.get("agents") if isinstance(data, dict) else None
    channels = data.get("channels") if isinstance(data, dict) else None
    n_agents = len(agents) if isinstance(agents, list) else 0
    n_channels = len(channels) if isinstance(channels, list) else 0
    if limits.MAX_AGENTS < n_agents <= limits.MAX_LIST_ITEMS:
        problems.append(
            (
                "agents",
                f"lists {n_agents:,} agents, past the cap of {limits.MAX_AGENTS:,} agents "
                "in one scenario",
            )
        )
    elif n_agents * n_channels > limits.MAX_AGENTS_TIMES_CHANNELS and not problems:
        problems.append(
            (
                "channels",
                f"{n_channels:,} channels between {n_agents:,} agents is past the cap of "
                f"{limits.MAX_AGENTS_TIMES_CHANNELS:,} agents times channels (setting up "
                "each agent looks at every channel)",
            )
        )
    return problems


# -- one field at a time ------------------------------------------------------------------


def field_problems(scenario: sc.Scenario) -> list[Problem]:
    """Fields of a validated scenario past their caps, with the cap in each sentence."""
    data = scenario.model_dump(mode="python", by_alias=True)
    problems = list(_numbers(data))
    duration = scenario.duration
    if duration > limits.MAX_DURATION:
        problems.append(
            (
                "duration",
                f"{duration:g} s is past the cap of {limits.MAX_DURATION:g} s (about 32 years; "
                "longer runs lose the clock's microsecond resolution)",
            )
        )
    if scenario.seed > limits.MAX_SEED:
        problems.append(("seed", f"{scenario.seed} is past the cap of 2**63 - 1 (64 bits)"))
    for i, agent in enumerate(scenario.agents):
        if agent.workers > limits.MAX_WORKERS:
            problems.append(
                (
                    f"agents.{i}.workers",
                    f"{agent.workers:,} is past the cap of {limits.MAX_WORKERS:,} workers "
                    "of one agent",
                )
            )
    for i, workload in enumerate(scenario.workload):
        problems.extend(_arrival_caps(f"workload.{i}.arrivals", workload.arrivals))
    for i, fault in enumerate(scenario.faults):
        if isinstance(fault, sc.PoisonFault) and fault.count > limits.MAX_BURST:
            problems.append(
                (
                    f"faults.{i}.count",
                    f"{fault.count:,} is past the cap of {limits.MAX_BURST:,} poison "
                    "messages of one fault",
                )
            )
    problems.extend(_templates(scenario))
    problems.extend(_zero_time_loops(scenario))
    if duration <= limits.MAX_DURATION:
        problems.extend(_timers(scenario))
    return problems


# Settings that count attempts of one call or message.
_ATTEMPTS = ("max_attempts", "publish_attempts", "max_deliveries")
# The parameters of a distribution (sim.distributions) that are seconds.
_SECONDS = ("value", "low", "high", "mean", "sd", "p99", "scale")


def _numbers(data: Any, where: str = "") -> Iterator[Problem]:
    """Integers past the generic cap, sizes past the size cap, and distributions whose
    seconds are past the cap of seconds."""
    if isinstance(data, dict):
        if "dist" in data:
            for key in _SECONDS:
                value = data.get(key)
                if isinstance(value, float | int) and value > limits.MAX_SECONDS:
                    yield (
                        _join(where, key),
                        f"{value:g} s is past the cap of {limits.MAX_SECONDS:g} s for a time "
                        "drawn from a distribution (the longest run)",
                    )
        for key, value in data.items():
            path = _join(where, key)
            if _is_int(value) and _is_size(str(key)) and value > limits.MAX_SIZE_BYTES:
                yield (
                    path,
                    f"{value:,} bytes is past the cap of {limits.MAX_SIZE_BYTES:,} (64 GiB) "
                    "for one message",
                )
            elif _is_int(value) and key in _ATTEMPTS and value > limits.MAX_ATTEMPTS:
                yield (
                    path,
                    f"{value:,} is past the cap of {limits.MAX_ATTEMPTS:,} attempts of one "
                    "call or message",
                )
            elif key != "seed" or where:
                yield from _numbers(value, path)
    elif isinstance(data, list):
        for index, value in enumerate(data):
            yield from _numbers(value, _join(where, index))
    elif _is_int(data) and abs(data) > limits.MAX_INTEGER:
        yield (
            where,
            f"{data} is past the cap of 2**53 ({limits.MAX_INTEGER:,}) for any integer in "
            "a scenario",
        )


def _is_size(key: str) -> bool:
    return key.endswith("_bytes") or key == "max_size"


def _arrival_caps(where: str, arrivals: Any) -> Iterator[Problem]:
    for name in ("rate", "spike_rate", "start_rate", "end_rate"):
        rate = getattr(arrivals, name, None)
        if rate is not None and rate > limits.MAX_RATE:
            yield (
                f"{where}.{name}",
                f"{rate:g} requests a second is past the cap of {limits.MAX_RATE:g} for one "
                "workload",
            )
    if isinstance(arrivals, sc.Bursts) and arrivals.size > limits.MAX_BURST:
        yield (
            f"{where}.size",
            f"{arrivals.size:,} requests at once is past the cap of {limits.MAX_BURST:,} "
            "for one burst",
        )


# The fields each queue-name template may use, and what they stand for.
_TEMPLATE_FIELDS = {
    "request_queue": ("dst", "the agent the requests go to"),
    "reply_queue": ("agent", "the agent that waits for the replies"),
}


def _templates(scenario: sc.Scenario) -> Iterator[Problem]:
    """Queue-name templates that use anything but their one field, plainly."""
    settings = [(f"agents.{i}.queue", a.queue) for i, a in enumerate(scenario.agents)]
    settings += [(f"channels.{i}.queue", c.queue) for i, c in enumerate(scenario.channels)]
    for where, queue in settings:
        if queue is None:
            continue
        for name, (allowed, meaning) in _TEMPLATE_FIELDS.items():
            problem = template_problem(getattr(queue, name), allowed)
            if problem:
                yield (
                    f"{where}.{name}",
                    f"{problem}, but a queue name may use only {{{allowed}}} ({meaning}), "
                    "with no attribute, index, conversion or format",
                )


def template_problem(template: str, allowed: str) -> str:
    """What is wrong with a queue-name template, or "" if it uses only `{allowed}`.

    `str.format` would reach attributes (`{dst.__class__}`), index (`{dst[0]}`), pad to
    any width (`{dst:>99999999999}`, a MemoryError) or raise KeyError on an unknown name.
    """
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        return f"the template {template!r} cannot be read ({exc})"
    for _literal, name, spec, conversion in parts:
        if name is None:
            continue
        if name != allowed or spec or conversion:
            shown = "{" + name + (f"!{conversion}" if conversion else "")
            shown += (f":{spec}" if spec else "") + "}"
            return f"the template {template!r} uses {shown}"
    return ""


def _zero_time_loops(scenario: sc.Scenario) -> Iterator[Problem]:
    """Exchanges that would repeat for ever at one instant of simulated time.

    The clock moves only by latencies, think and service times, and timers: a loop whose
    every step takes none of them never lets the run reach its end. Two are possible
    from a scenario: a negotiation whose sides both think for 0 s over links of zero
    latency (bids go back and forth at once, and its deadline never comes), and a queue
    that requeues a failing message without limit to a consumer that serves it in 0 s
    over links of zero latency.
    """
    agents = {a.id: a for a in scenario.agents}
    default_think = sc.NegotiationStance.model_fields["think"].default
    for i, agent in enumerate(scenario.agents):
        peer = agents.get(agent.pairs_with or "")
        if agent.role != "worker" or peer is None:
            continue
        thinks = [a.negotiation.think if a.negotiation else default_think for a in (agent, peer)]
        if max(thinks) == 0 and _instant(scenario, agent.id, peer.id):
            yield (
                f"agents.{i}.negotiation.think",
                f"0 s on both sides of the negotiation with '{peer.id}', over links of zero "
                "latency, lets its bids go back and forth for ever at one instant; give "
                "one side a think time or the link a latency",
            )
    brokers = {a.id: a.queue for a in scenario.agents if a.role == "broker"}
    for i, channel in enumerate(scenario.channels):
        if channel.protocol != "queue":
            continue
        consumer = agents.get(channel.dst)
        # The queue runs by the channel's knobs over its broker's (Scenario.queue_settings,
        # without its scan of the agents): a limit the channel sets wins over the broker's
        # (or its flavour's) none.
        settings = channel.queue.over(brokers.get(channel.queue.broker))
        if (
            settings.on_error == "requeue"
            and settings.max_deliveries is None
            and consumer is not None
            and consumer.service_time.mean() == 0
            and _instant(scenario, channel.queue.broker, channel.dst)
        ):
            yield (
                f"channels.{i}.queue.max_deliveries",
                "none, with on_error requeue, a service time of 0 s and links of zero "
                "latency, redelivers a message that always fails for ever at one instant; "
                "set max_deliveries",
            )


def _instant(scenario: sc.Scenario, a: str, b: str) -> bool:
    """Whether every message between `a` and `b` (both ways) arrives in exactly 0 s."""
    if a == b:
        return True
    # The link that sets a direction's latency, as sim.network picks it.
    overrides: dict[tuple[str, str], sc.Link] = {}
    for link in scenario.network.links:
        overrides[(link.src, link.dst)] = link
        if link.symmetric:
            overrides.setdefault((link.dst, link.src), link)
    for pair in ((a, b), (b, a)):
        override = overrides.get(pair)
        latency = (override.latency if override else None) or scenario.network.default.latency
        # A distribution over [0, inf) has mean 0 only when it is always 0.
        if latency.mean() != 0:
            return False
    return True


# Periodic timers: (section, setting, what it times). Each fires `duration / interval`
# times for every stream, connection or consumer.
_CHANNEL_TIMERS = (
    ("sse", "keepalive", "keep-alives"),
    ("sse", "progress_interval", "progress events"),
    ("sse", "retry", "reconnections"),
    ("a2a", "poll_interval", "polls"),
    ("a2a", "chunk_interval", "artifact chunks"),
    ("a2a", "keepalive", "keep-alives"),
    ("a2a", "resubscribe_delay", "resubscribes"),
    ("mcp", "progress_interval", "progress notifications"),
    ("mcp", "close_after", "stream closes"),
    ("websocket", "ping_interval", "pings"),
    ("websocket", "backoff_max", "reconnections"),
    ("queue", "heartbeat", "heartbeats"),
    ("queue", "reconnect_delay", "reconnections"),
    ("queue", "visibility_timeout", "redeliveries"),
    ("queue", "sample_interval", "queue samples"),
)


def _timers(scenario: sc.Scenario) -> Iterator[Problem]:
    timers: list[tuple[str, float | None, str]] = [
        ("sample_interval", scenario.sample_interval, "queue samples")
    ]
    for i, agent in enumerate(scenario.agents):
        if agent.queue is not None:
            for section, key, what in _CHANNEL_TIMERS:
                if section == "queue":
                    timers.append((f"agents.{i}.queue.{key}", getattr(agent.queue, key), what))
        discovery = getattr(agent, "discovery", None)
        if discovery is not None:
            # Every worker sends the registry a heartbeat this often.
            timers.append((f"agents.{i}.discovery.heartbeat", discovery.heartbeat, "heartbeats"))
    for i, fault in enumerate(scenario.faults):
        if fault.kind == "overloaded":
            timers.append((f"faults.{i}.every", fault.every, "overload bursts"))
    for i, channel in enumerate(scenario.channels):
        for section, key, what in _CHANNEL_TIMERS:
            if section == channel.protocol:
                value = getattr(getattr(channel, section), key)
                timers.append((f"channels.{i}.{section}.{key}", value, what))
    for where, interval, what in timers:
        if interval is None or interval <= 0:
            continue
        ticks = scenario.duration / interval
        if ticks > limits.MAX_TIMER_TICKS:
            floor = scenario.duration / limits.MAX_TIMER_TICKS
            yield (
                where,
                f"{interval:g} s between {what} over a run of {scenario.duration:g} s is "
                f"{_count(ticks)} {what}, past the cap of {limits.MAX_TIMER_TICKS:,} ticks "
                f"of one timer; make it at least {floor:.2g} s",
            )


# -- the whole run's work -----------------------------------------------------------------


@dataclass
class Estimate:
    """What a run is expected to do, when nothing fails."""

    requests: float = 0.0
    messages: float = 0.0
    draws: float = 0.0
    sample_rows: float = 0.0
    timer_messages: float = 0.0
    # (requests, messages per request) of each workload (index in `workload`), and
    # (rows, queues) of each sampler (the field that sets its interval).
    by_workload: dict[int, tuple[float, float]] = field(default_factory=dict)
    by_sampler: dict[str, tuple[float, int]] = field(default_factory=dict)


def estimate(scenario: sc.Scenario) -> Estimate:
    """The expected requests, messages, arrival draws and queue samples of a run."""
    est = Estimate()
    per_request = _RequestCost(scenario)
    duration = scenario.duration
    for i, workload in enumerate(scenario.workload):
        start = workload.start
        end = min(duration, workload.end if workload.end is not None else duration)
        span = max(0.0, end - start)
        requests, draws = _arrivals(workload.arrivals, start, span)
        each = per_request.of(workload.src, workload.dst)
        est.requests += requests
        est.draws += draws
        est.messages += requests * each
        est.by_workload[i] = (requests, each)
    for fault in scenario.faults:
        if isinstance(fault, sc.PoisonFault):
            est.requests += fault.count
            est.messages += fault.count * per_request.of(fault.src, fault.dst)
    est.timer_messages = _timer_messages(scenario)
    est.messages += est.timer_messages
    _samples(scenario, est)
    return est


def _arrivals(arrivals: Any, start: float, span: float) -> tuple[float, float]:
    """(expected requests, random draws) of a workload's arrivals over `span` seconds."""
    if isinstance(arrivals, sc.ConstantRate):
        return arrivals.rate * span, 0.0
    if isinstance(arrivals, sc.Poisson):
        return arrivals.rate * span, arrivals.rate * span
    if isinstance(arrivals, sc.Bursts):
        bursts = math.ceil(span / arrivals.every) if span > 0 else 0
        return arrivals.size * bursts + arrivals.rate * span, arrivals.rate * span
    if isinstance(arrivals, sc.Ramp):
        peak = max(arrivals.start_rate, arrivals.end_rate)
        return (arrivals.start_rate + arrivals.end_rate) / 2 * span, 2 * peak * span
    if isinstance(arrivals, sc.Spike):
        low = max(arrivals.spike_start, start)
        high = min(arrivals.spike_end, start + span)
        inside = max(0.0, high - low)
        peak = max(arrivals.rate, arrivals.spike_rate)
        expected = arrivals.rate * (span - inside) + arrivals.spike_rate * inside
        return expected, 2 * peak * span
    return 0.0, 0.0  # pragma: no cover - the scenario model admits no other kind


class _RequestCost:
    """Messages one request to an agent makes: its own hop and every call below it."""

    def __init__(self, scenario: sc.Scenario) -> None:
        self.scenario = scenario
        self.agents = {a.id: a for a in scenario.agents}
        self.channels = {(c.src, c.dst): c for c in scenario.channels}
        self.workers = sum(1 for a in scenario.agents if a.role == "worker")
        self._below: dict[str, float] = {}

    def of(self, src: str, dst: str) -> float:
        """Messages of one request from `src` to `dst`, everything it causes included."""
        return self.hop(src, dst) + self.below(dst)

    def hop(self, src: str, dst: str) -> float:
        """Messages of one call from `src` to `dst` over their channel."""
        channel = self.channels.get((src, dst))
        if channel is None:
            return _HOP_MESSAGES["http"]
        messages = _HOP_MESSAGES[channel.protocol]
        if channel.protocol == "sse":
            # A stream carries progress events and keep-alives while its job runs.
            life = self._lifetime(dst, channel)
            if channel.sse.progress_interval:
                messages += life / channel.sse.progress_interval
            messages += life / channel.sse.keepalive
        elif channel.protocol == "a2a":
            life = self._lifetime(dst, channel)
            a2a = channel.a2a
            for interval in (a2a.chunk_interval, a2a.keepalive):
                if interval:
                    messages += life / interval
            if a2a.mode == "polling":
                messages += 2 * life / a2a.poll_interval
        elif channel.protocol == "mcp" and channel.mcp.progress_interval:
            messages += self._lifetime(dst, channel) / channel.mcp.progress_interval
        return messages

    def _lifetime(self, dst: str, channel: sc.Channel) -> float:
        agent = self.agents.get(dst)
        mean = agent.service_time.mean() if agent is not None else 0.0
        return min(mean, channel.timeout or math.inf, self.scenario.duration)

    def below(self, root: str) -> float:
        """Messages the calls of `root` make, per request it serves.

        Depth-first without recursion (a chain of 20,000 agents would overflow the
        stack), memoised (a diamond of calls counts each path, as the run would, without
        walking each); a call back into an agent still being summed counts nothing more.
        """
        done = self._below
        summing: set[str] = set()  # expanded, on the current path of calls
        stack: list[tuple[str, bool]] = [(root, False)]
        while stack:
            name, expanded = stack.pop()
            agent = self.agents.get(name)
            callees = agent.calls if agent is not None else []
            if not expanded:
                if name in done or name in summing:
                    continue  # a second entry for it, or a call back into a cycle
                summing.add(name)
                stack.append((name, True))
                stack.extend((c, False) for c in callees if c not in done and c not in summing)
                continue
            total = 0.0
            for callee in callees:
                total += self.hop(name, callee) + done.get(callee, 0.0)
            if agent is not None and agent.role == "orchestrator":
                width = min(agent.workers_per_task, max(1, self.workers))
                total += _TASK_MESSAGES + _SUBTASK_MESSAGES * width
            done[name] = total
            summing.discard(name)
        return done[root]


def _timer_messages(scenario: sc.Scenario) -> float:
    """Messages of periodic timers: at least one connection's pings, one consumer's
    heartbeats, per channel."""
    total = 0.0
    for channel in scenario.channels:
        if channel.protocol == "websocket" and channel.websocket.ping_interval:
            total += 2 * scenario.duration / channel.websocket.ping_interval
        if channel.protocol == "queue":
            total += scenario.duration / channel.queue.heartbeat
    return total


def _samples(scenario: sc.Scenario, est: Estimate) -> None:
    """Rows of the queues table: every served pool, and every broker queue."""
    into: dict[str, set[str]] = {}
    for channel in scenario.channels:
        into.setdefault(channel.dst, set()).add(channel.protocol)
    pools = sum(
        max(1, len(into.get(a.id, ()))) for a in scenario.agents if a.role in _SAMPLED_ROLES
    )
    if pools:
        rows = scenario.duration / scenario.sample_interval * pools
        est.by_sampler["sample_interval"] = (rows, pools)
        est.sample_rows += rows
    for i, agent in enumerate(scenario.agents):
        if agent.role != "broker":
            continue
        settings = agent.queue or sc.QueueSettings()
        if settings.sample_interval is None:
            continue
        names: set[str] = set()
        for channel in scenario.channels:
            if channel.protocol == "queue" and channel.queue.broker == agent.id:
                if template_problem(channel.queue.request_queue, "dst"):
                    continue
                if template_problem(channel.queue.reply_queue, "agent"):
                    continue
                request = channel.queue.requests_of(channel.dst)
                names.update((request, f"{request}.dlq", channel.queue.replies_of(channel.src)))
        if names:
            rows = scenario.duration / settings.sample_interval * len(names)
            est.by_sampler[f"agents.{i}.queue.sample_interval"] = (rows, len(names))
            est.sample_rows += rows


def work_problems(scenario: sc.Scenario, est: Estimate | None = None) -> list[Problem]:
    """The run's expected work past its caps: messages, arrival draws, queue samples."""
    est = est if est is not None else estimate(scenario)
    problems: list[Problem] = []
    if est.messages > limits.MAX_MESSAGES:
        problems.append(_too_many_messages(est))
    if est.draws > limits.MAX_ARRIVAL_DRAWS:
        problems.append(
            (
                "workload",
                f"the arrivals would draw about {_count(est.draws)} random times (a ramp or "
                "spike draws at its peak rate over its whole window), past the cap of "
                f"{limits.MAX_ARRIVAL_DRAWS:,}; lower the peak rate or shorten the window",
            )
        )
    if est.sample_rows > limits.MAX_SAMPLE_ROWS and est.by_sampler:
        where = max(est.by_sampler, key=lambda k: est.by_sampler[k][0])
        rows, queues = est.by_sampler[where]
        interval = scenario.duration * queues / rows
        problems.append(
            (
                where,
                f"{interval:g} s between samples of {queues:,} queue{'s' if queues != 1 else ''} "
                f"over {scenario.duration:g} s makes about {_count(est.sample_rows)} rows of "
                f"samples, past the cap of {limits.MAX_SAMPLE_ROWS:,}; sample less often",
            )
        )
    return problems


def _too_many_messages(est: Estimate) -> Problem:
    """The sentence for a run past the message cap, blamed on what sends the most."""
    total = _count(est.messages)
    cap = f"past the cap of {limits.MAX_MESSAGES:,} a run can hold in memory"

    def sent(item: tuple[float, float]) -> float:
        return item[0] * item[1]

    top = max(est.by_workload, key=lambda i: sent(est.by_workload[i]), default=None)
    if top is None or sent(est.by_workload[top]) < est.timer_messages:
        return (
            "channels",
            f"the channels' pings and heartbeats would send about {total} messages, {cap}; "
            "make their intervals longer",
        )
    requests, each = est.by_workload[top]
    return (
        f"workload.{top}",
        f"about {_count(requests)} requests of {_count(each)} messages each (calls "
        f"included) make the run send about {total} messages, {cap}; lower the rate or "
        "shorten the run",
    )


def warnings(scenario: sc.Scenario, est: Estimate | None = None) -> list[str]:
    """Sentences on a scenario that will run, but slowly (soft caps)."""
    est = est if est is not None else estimate(scenario)
    if est.messages > limits.WARN_MESSAGES:
        return [
            f"{scenario.name}: about {_count(est.messages)} messages expected (over "
            f"{limits.WARN_MESSAGES:,}): the run will take minutes and gigabytes of memory"
        ]
    return []


def _count(value: float) -> str:
    """A large expected count, as a reader takes it in."""
    if not math.isfinite(value):
        return "an unbounded number of"
    if value >= 1e12:
        return f"{value:.1e}"
    return f"{round(value):,}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _join(where: str, key: Any) -> str:
    return f"{where}.{key}" if where else str(key)
