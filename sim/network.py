"""The faulty network: topology, per-link latency, loss, duplication and bandwidth.

Every copy of a message is one row in the recorder's `messages` table and ends in exactly
one outcome. Delivery is a SimPy timeout with a callback rather than a process, because a
process per message costs several times more and the network is the hot path.

Semantics, after Maelstrom's `net.clj`:
- latency is drawn per copy and per hop, so random latency reorders messages;
- a duplicate takes its own latency draw and may overtake the original;
- a partition blackholes messages sent while it holds and drops in-flight messages at
  delivery (the receiver checks, as Maelstrom's `recv!` does);
- a message to a crashed agent is `unavailable` (the connection is refused, the reason
  says so), and the sender hears of it one latency later (unless it is down itself);
- a crashed agent sends nothing: what it would send is not put on the wire (no row),
  but for the resets its kernel sends at the instant of the crash (`Node.sends`);
- with a bandwidth, serialisation delay is size / bandwidth, FIFO per link.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import networkx as nx
import simpy

from protocols.kernel import Fire, Heap
from protocols.node import Node
from protocols.transport import Bounce, Message, Receiver, Transport
from sim import scenario as sc
from sim.draws import Draw, draw_of
from sim.faults.state import FaultState
from sim.streams import Streams
from sim.trace.recorder import Recorder


@dataclass(slots=True)
class LinkState:
    """One directed link: its latency draws, loss, duplication and FIFO serialiser."""

    src: str
    dst: str
    # Compiled draws (sim.draws): the latency sampler's numbers, without a call into the
    # interpreter per message.
    latency: Draw
    loss: float
    duplicate: float
    bandwidth: float | None
    draw: Callable[[], float]
    busy_until: float = 0.0
    plain: bool = field(init=False)

    def __post_init__(self) -> None:
        # Latency only: what `Network.send` can take without its per-link checks.
        self.plain = self.bandwidth is None and not self.loss and not self.duplicate


class Topology:
    """Which agents reach which: directly, over a route of listed links, or not at all.

    The default full mesh is implicit: every agent reaches every other directly, and no
    graph of its n * (n - 1) links is built (3,000 agents made 9 million edges, 1.4 GB).
    Only the listed links are a graph, searched for a route when no link is direct.
    """

    def __init__(self, agent_ids: list[str], spec: sc.Network) -> None:
        self.full = spec.topology == "full"
        self.agents = frozenset(agent_ids)
        self.graph = nx.DiGraph()
        if not self.full:
            # A route may pass through any agent, also one no link names.
            self.graph.add_nodes_from(agent_ids)
        for link in spec.links:
            self.graph.add_edge(link.src, link.dst)
            if link.symmetric:
                self.graph.add_edge(link.dst, link.src)

    def direct(self, src: str, dst: str) -> bool:
        """Whether a link goes straight from `src` to `dst` (a process to itself: always)."""
        if src == dst:
            return True
        if self.full and src in self.agents and dst in self.agents:
            return True
        return bool(self.graph.has_edge(src, dst))

    def path(self, src: str, dst: str) -> list[str] | None:
        """The agents a message passes from `src` to `dst`, both included (fewest hops);
        None when no route exists."""
        if self.direct(src, dst):
            return [src, dst]
        if self.full:
            # Two agents of a full mesh are always direct: one end is not an agent.
            return None
        try:
            return list(nx.shortest_path(self.graph, src, dst))
        except (nx.NetworkXNoPath, nx.NodeNotFound):
            return None


class Network(Transport):
    """Carries messages between agents, subject to the links and the active faults."""

    def __init__(
        self,
        env: simpy.Environment,
        spec: sc.Network,
        agent_ids: list[str],
        streams: Streams,
        recorder: Recorder,
        faults: FaultState,
        is_up: Callable[[str], bool],
    ) -> None:
        self.env = env
        self.topology = Topology(agent_ids, spec)
        self._spec = spec
        self._streams = streams
        self._rec = recorder
        self._faults = faults
        self._is_up = is_up
        # The network's one event per copy: a `_Delivery` on the heap.
        self._heap = Heap(env)
        self._links: dict[tuple[str, str], LinkState] = {}
        self._routes: dict[tuple[str, str], list[LinkState] | None] = {}
        # The latency of each route that is one link with latency only (see `send`).
        self._plain: dict[tuple[str, str], Draw] = {}
        # The agents' nodes, when the network is told them: asked for `up` directly.
        self._nodes: dict[str, Node] | None = None
        self._receivers: dict[str, Receiver] = {}
        # The agents whose receiver is their node's `receive` (see `attach`).
        self._receiving: dict[str, Node] = {}
        self._bounces: dict[str, Bounce] = {}
        self._overrides = {}
        for link in spec.links:
            self._overrides[(link.src, link.dst)] = link
            if link.symmetric:
                self._overrides.setdefault((link.dst, link.src), link)

    # -- the transport interface ------------------------------------------------------

    def attach(self, agent: str, receive: Receiver, bounce: Bounce | None = None) -> None:
        """Deliver messages addressed to `agent` to `receive`; refusals go to `bounce`."""
        self._receivers[agent] = receive
        # A node's own `receive` (Node attaches itself so): called on the node, directly.
        node = getattr(receive, "__self__", None)
        if isinstance(node, Node) and receive == node.receive:
            self._receiving[agent] = node
        else:
            self._receiving.pop(agent, None)
        if bounce is not None:
            self._bounces[agent] = bounce

    def _now(self) -> float:
        """`env.now`, read as `Node.now` reads it."""
        heap = self._heap
        return heap.clock.now if heap.native else self.env.now

    def send(self, msg: Message) -> int:
        """Put a copy on the wire; returns its seq. Its fate is decided here or at delivery.

        A sender that is down puts nothing on the wire: no row, seq -1.
        """
        nodes = self._nodes
        if nodes is not None:
            # (A node sends nothing before the world knows it, but an agent's constructor
            # may: it is up then.)
            sender = nodes.get(msg.src)
            if sender is not None and not sender.sends:
                msg.seq = -1
                return -1
        elif not self._is_up(msg.src):
            msg.seq = -1
            return -1
        now = self._now()
        seq = self._rec.message_sent(msg, now)
        msg.seq = seq
        faults = self._faults
        if not (faults.effects or faults.partitions):
            # No fault active (FaultState.network_faults_active, without a property call),
            # and a route of one link with latency only: the common case, which is the
            # path below without the steps that would do nothing.
            latency = self._plain.get((msg.src, msg.dst))
            if latency is not None:
                delay = latency.draw()
                self._heap.push(delay, _Delivery(self, seq, msg, delay))
                return seq
        return self._send(msg, seq, now)

    def _send(self, msg: Message, seq: int, now: float) -> int:
        env, rec = self.env, self._rec
        # A Sequence: the one-plain-link case below empties it with a constant tuple.
        route: Sequence[LinkState] | None
        try:
            route = self._routes[(msg.src, msg.dst)]
        except KeyError:  # the first message between the two
            route = self._route(msg.src, msg.dst)
        if route is None:
            rec.message_ended(seq, "unavailable", now, f"no route from {msg.src} to {msg.dst}")
            self._bounce(msg, "unavailable", 0.0)
            return seq
        faults = self._faults
        # FaultState.network_faults_active, without a property call per message.
        active = bool(faults.effects or faults.partitions)
        if active and faults.partitioned(msg.src, msg.dst):
            rec.message_ended(seq, "partitioned", now)
            return seq
        delay = 0.0
        lost = False
        duplicate = False
        if len(route) == 1 and route[0].plain:
            # One link with latency only (the common case): no loop, no draws to skip.
            delay = route[0].latency.draw()
            route = ()
        for link in route:
            hop = link.latency.draw()
            if link.bandwidth is not None:
                start = max(now + delay, link.busy_until)
                link.busy_until = start + msg.size_bytes / link.bandwidth
                hop += link.busy_until - (now + delay)
            delay += hop
            if link.loss and link.draw() < link.loss:
                lost = True
            if link.duplicate and link.draw() < link.duplicate:
                duplicate = True
        if active:
            delay, lost, duplicate = self._apply_effects(msg, delay, lost, duplicate)
        if lost:
            # It dies on the way: the replay marks it where it would have arrived. Recorded
            # then, not now, so a copy the run ends before is still `in_flight` and no row
            # ends after the run.
            env.timeout(delay).callbacks.append(
                lambda _e: rec.message_ended(seq, "dropped", now + delay)
            )
        else:
            self._heap.push(delay, _Delivery(self, seq, msg, delay))
        if duplicate and not msg.duplicate:
            self.send(msg.copy(duplicate=True))
        return seq

    def use_nodes(self, nodes: dict[str, Node]) -> None:
        """Ask `nodes[agent].up` whether an agent is up (and `.sends` whether what it sends
        goes on the wire), rather than `is_up(agent)`.

        The same answer, a call less per delivery; `nodes` may fill in later (the world
        makes the agents after the network), but before the first delivery.
        """
        self._nodes = nodes

    def mark(self, msg: Message, outcome: str, reason: str = "") -> None:
        """A receiver changed a delivered copy's outcome (`rejected`, `dead_lettered`...)."""
        if msg.seq >= 0:
            self._rec.message_ended(msg.seq, outcome, self.env.now, reason)

    # -- internals --------------------------------------------------------------------

    def _apply_effects(
        self, msg: Message, delay: float, lost: bool, duplicate: bool
    ) -> tuple[float, bool, bool]:
        for effect in self._faults.effects:
            if not effect.scope.matches(msg.src, msg.dst):
                continue
            if effect.kind == "latency":
                if effect.multiply is not None:
                    delay *= effect.multiply
                if effect.add is not None:
                    delay += effect.add()
            elif effect.kind == "loss":
                lost = lost or self._fault_draw(msg) < effect.probability
            elif effect.kind == "duplicate":
                duplicate = duplicate or self._fault_draw(msg) < effect.probability
        return delay, lost, duplicate

    def _fault_draw(self, msg: Message) -> float:
        return self._streams.get(f"faults:{msg.src}->{msg.dst}").random()

    def _arrive(self, seq: int, msg: Message, delay: float) -> None:
        now = self._now()
        if self._faults.partitions and self._faults.partitioned(msg.src, msg.dst):
            self._rec.message_ended(seq, "partitioned", now)
            return
        nodes = self._nodes
        if not (nodes[msg.dst].up if nodes is not None else self._is_up(msg.dst)):
            self._rec.message_ended(seq, "unavailable", now, f"{msg.dst} is down")
            self._bounce(msg, "unavailable", delay)
            return
        self._rec.message_delivered(seq, now)
        node = self._receiving.get(msg.dst)
        if node is not None:
            node.receive(msg)  # compiled: a direct call
        else:
            self._receivers[msg.dst](msg)

    def _bounce(self, msg: Message, outcome: str, delay: float) -> None:
        bounce = self._bounces.get(msg.src)
        if bounce is None or msg.duplicate:
            return
        # The refusal travels back: the sender hears of it after the same latency again.
        self.env.timeout(delay).callbacks.append(lambda _e: bounce(msg, outcome))

    def _route(self, src: str, dst: str) -> list[LinkState] | None:
        key = (src, dst)
        if key in self._routes:
            return self._routes[key]
        path = self.topology.path(src, dst)
        route = None if path is None else [self._link(a, b) for a, b in itertools.pairwise(path)]
        self._routes[key] = route
        if route is not None and len(route) == 1 and route[0].plain:
            self._plain[key] = route[0].latency
        return route

    def _link(self, src: str, dst: str) -> LinkState:
        key = (src, dst)
        link = self._links.get(key)
        if link is not None:
            return link
        props = self._spec.default
        override = self._overrides.get(key)
        latency = props.latency
        loss, duplicate, bandwidth = props.loss, props.duplicate, props.bandwidth
        if src == dst:
            # Loopback: a process talking to itself never leaves the host.
            latency, loss, duplicate, bandwidth = sc.Constant(value=0.0), 0.0, 0.0, None
        elif override is not None:
            latency = override.latency or latency
            loss = override.loss if override.loss is not None else loss
            duplicate = override.duplicate if override.duplicate is not None else duplicate
            bandwidth = override.bandwidth if override.bandwidth is not None else bandwidth
        rng = self._streams.get(f"link:{src}->{dst}")
        link = LinkState(
            src=src,
            dst=dst,
            latency=draw_of(latency, rng),
            loss=loss,
            duplicate=duplicate,
            bandwidth=bandwidth,
            draw=rng.random,
        )
        self._links[key] = link
        return link


class _Delivery(Fire):
    """A copy on the wire, due at its receiver: its event on the heap (`kernel.Fire`),
    carrying what `Network._arrive` needs."""

    __slots__ = ("delay", "msg", "network", "seq")

    def __init__(self, network: Network, seq: int, msg: Message, delay: float) -> None:
        self.network = network
        self.seq = seq
        self.msg = msg
        self.delay = delay

    def fire(self) -> None:
        """The copy arrives (or finds its receiver down, or a partition)."""
        self.network._arrive(self.seq, self.msg, self.delay)
