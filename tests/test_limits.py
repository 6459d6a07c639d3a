"""Bad input and limits: what no scenario, sweep or trace may do to the process.

- Past a cap of `sim.limits` a scenario is refused with one sentence naming the field,
  its value and the cap (exit status 2), before anything runs: nothing a file says may
  hang the process or fill its memory. Past a soft cap it runs with a warning.
- Huge sizes, Pareto tails that overflow, queue-name templates with fields of their
  own, deeply nested or bomb-sized OTLP files: exit 2 and a sentence, never "internal
  error".
- The default full mesh builds no graph of every pair: 3,000 agents set up their
  network in a few megabytes.
"""

from __future__ import annotations

import copy
import gzip
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
import simpy

import sim
from protocols.transport import Message
from sim import cli, loading
from sim import scenario as sc
from sim.distributions import Pareto
from sim.faults.state import FaultState
from sim.network import Network
from sim.streams import Streams
from sim.trace.recorder import Recorder

ROOT = Path(__file__).resolve().parent.parent

BASE: dict[str, Any] = {
    "name": "small",
    "duration": 5,
    "agents": [{"id": "c", "role": "client"}, {"id": "s", "role": "service", "workers": 2}],
    "workload": [{"from": "c", "to": "s", "arrivals": {"kind": "constant", "rate": 4}}],
}


def scenario(**changes: Any) -> dict[str, Any]:
    """The small valid scenario with top-level sections replaced."""
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(changes))
    return data


def write(tmp_path: Path, data: Any, name: str = "s.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """Run the CLI in-process; expect exit 2 and one sentence on stderr; return it."""
    assert cli.main(list(args)) == 2
    _out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def problems(data: dict[str, Any]) -> list[str]:
    """The sentences validation gives `data` (empty when it is valid)."""
    try:
        loading.validate(data, "s")
    except loading.ScenarioError as exc:
        return [line.removeprefix("s: ") for line in exc.lines]
    return []


def python_m_sim(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("SWITCHBOARD_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "sim", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


# --- exit 2 and one sentence, never an internal error ---------------------------------


def test_a_huge_message_size_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = scenario()
    data["workload"][0]["size_bytes"] = 10**30
    line = refused(capsys, "run", str(write(tmp_path, data)), "--out", str(tmp_path / "r"))
    assert "workload.0.size_bytes: 1,000,000,000,000,000,000,000,000,000,000 bytes" in line
    assert "past the cap of 68,719,476,736 (64 GiB)" in line


def test_a_pareto_tail_that_overflows_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    data = scenario()
    data["agents"][1]["service_time"] = {"dist": "pareto", "scale": 1, "alpha": 1e-5}
    line = refused(capsys, "run", str(write(tmp_path, data)), "--out", str(tmp_path / "r"))
    assert line.endswith(
        "agents.1.service_time.alpha: must be at least 0.1, got 1e-05: a smaller tail index "
        "draws values past the largest float"
    )


def test_a_pareto_draw_never_raises() -> None:
    # Validation keeps alpha where draws stay finite; the sampler guards anyway.
    pareto = Pareto.model_construct(scale=1.0, alpha=1e-5)

    class Tiny:
        def paretovariate(self, alpha: float) -> float:
            return (2.0**-53) ** (-1.0 / alpha)

    assert pareto.sampler(Tiny())() == float("inf")  # type: ignore[arg-type]


QUEUE_SCENARIO: dict[str, Any] = scenario(
    agents=[
        {"id": "c", "role": "client"},
        {"id": "s", "role": "service"},
        {"id": "broker", "role": "broker"},
    ],
    channels=[{"from": "c", "to": "s", "protocol": "queue", "queue": {}}],
)


@pytest.mark.parametrize(
    ("field", "template", "shown"),
    [
        ("request_queue", "{dst.__class__.__name__}", "{dst.__class__.__name__}"),
        ("request_queue", "{dst[0]}", "{dst[0]}"),
        ("request_queue", "{nope}.requests", "{nope}"),
        ("request_queue", "{dst:>100000000000}", "{dst:>100000000000}"),
        ("reply_queue", "{agent!r}", "{agent!r}"),
    ],
    ids=["attribute", "index", "unknown field", "format width", "conversion"],
)
def test_queue_name_templates_take_only_their_field(
    tmp_path: Path, capsys: pytest.CaptureFixture, field: str, template: str, shown: str
) -> None:
    data = copy.deepcopy(QUEUE_SCENARIO)
    data["channels"][0]["queue"][field] = template
    line = refused(capsys, "run", str(write(tmp_path, data)), "--out", str(tmp_path / "r"))
    allowed = "{dst}" if field == "request_queue" else "{agent}"
    assert f"channels.0.queue.{field}: the template {template!r} uses {shown}" in line
    assert f"a queue name may use only {allowed}" in line


def test_a_queue_name_template_that_cannot_be_read(capsys: pytest.CaptureFixture) -> None:
    data = copy.deepcopy(QUEUE_SCENARIO)
    data["channels"][0]["queue"]["request_queue"] = "{dst"
    assert problems(data) == [
        "channels.0.queue.request_queue: the template '{dst' cannot be read (expected '}' "
        "before end of string), but a queue name may use only {dst} (the agent the "
        "requests go to), with no attribute, index, conversion or format"
    ]


def test_plain_queue_name_templates_still_work() -> None:
    data = copy.deepcopy(QUEUE_SCENARIO)
    data["channels"][0]["queue"] = {"request_queue": "jobs.{dst}.in", "reply_queue": "{{x}}"}
    assert problems(data) == []


def otlp_span(attributes: str = "[]") -> str:
    return (
        '{"traceId":"0123456789abcdef0123456789abcdef","spanId":"0123456789abcdef",'
        '"name":"s","startTimeUnixNano":"1","endTimeUnixNano":"2","attributes":' + attributes + "}"
    )


def otlp_file(spans: str) -> str:
    return (
        '{"resourceSpans":[{"resource":{"attributes":[]},"scopeSpans":[{"spans":['
        + spans
        + "]}]}]}"
    )


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        (
            '{"resourceSpans":' + "[" * 100_000 + "]" * 100_000 + "}",
            "is nested too deeply to read (an OTLP export is a dozen levels deep)",
        ),
        (
            otlp_file(otlp_span('[{"key":"a","value":{"intValue":' + "7" * 5000 + "}}]")),
            "holds a number with thousands of digits, which no OTLP field needs",
        ),
    ],
    ids=["nested 100k deep", "5,000-digit number"],
)
def test_an_unreadable_otlp_file_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture, text: str, sentence: str
) -> None:
    path = write(tmp_path, text, "trace.json")
    line = refused(capsys, "import-otlp", str(path), "--out", str(tmp_path / "run"))
    assert line == f"error: {path} {sentence}"
    assert not (tmp_path / "run").exists()


def gzip_bomb(path: Path, mib: int) -> Path:
    """A gzip file of a few KB that inflates to `mib` MiB of spaces (one member per MiB)."""
    member = gzip.compress(b" " * 2**20, compresslevel=9)
    path.write_bytes(member * mib)
    return path


def test_a_gzip_that_inflates_past_the_cap_is_refused_in_a_real_process(
    tmp_path: Path,
) -> None:
    bomb = gzip_bomb(tmp_path / "bomb.json.gz", 3)
    assert bomb.stat().st_size < 20_000
    done = python_m_sim("import-otlp", str(bomb), "--out", str(tmp_path / "run"), "--max-mb", "2")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert done.stderr.strip() == (
        f"error: {bomb} inflates to more than 2 MiB of JSON or protobuf, past the cap of an import (a "
        "trace too large to import whole, or a gzip bomb); raise it with --max-mb if the "
        "file is genuine"
    )


def test_the_default_import_cap_is_the_limits_one(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sim import limits

    monkeypatch.setattr(limits, "MAX_OTLP_BYTES", 2**20)
    bomb = gzip_bomb(tmp_path / "bomb.json.gz", 2)
    line = refused(capsys, "import-otlp", str(bomb), "--out", str(tmp_path / "run"))
    assert "inflates to more than 1 MiB of JSON" in line
    plain = write(tmp_path, " " * (2**20 + 1), "big.json")
    line = refused(capsys, "import-otlp", str(plain), "--out", str(tmp_path / "run"))
    assert "holds more than 1 MiB of JSON" in line


# --- caps: one sentence naming the field, its value and the cap --------------------------


def many_services(n: int, **service: Any) -> list[dict[str, Any]]:
    return [{"id": "c", "role": "client"}] + [
        {"id": f"s{i}", "role": "service", **service} for i in range(n)
    ]


def call_layers(depth: int) -> list[dict[str, Any]]:
    """Layers of two services, each calling both of the next layer: 2**depth paths."""
    agents: list[dict[str, Any]] = [{"id": "c", "role": "client"}]
    for layer in range(depth):
        calls = [f"l{layer + 1}a", f"l{layer + 1}b"] if layer + 1 < depth else []
        for side in "ab":
            agents.append({"id": f"l{layer}{side}", "calls": calls})
    return agents


CAPS: dict[str, tuple[dict[str, Any], str]] = {
    "duration": (
        scenario(duration=1e12),
        "duration: 1e+12 s is past the cap of 1e+09 s (about 32 years; longer runs lose "
        "the clock's microsecond resolution)",
    ),
    "rate": (
        scenario(workload=[{"from": "c", "to": "s", "arrivals": {"kind": "poisson", "rate": 1e8}}]),
        "workload.0.arrivals.rate: 1e+08 requests a second is past the cap of 1e+07 for one "
        "workload",
    ),
    "burst": (
        scenario(
            workload=[
                {"from": "c", "to": "s", "arrivals": {"kind": "bursts", "size": 10**7, "every": 1}}
            ]
        ),
        "workload.0.arrivals.size: 10,000,000 requests at once is past the cap of "
        "1,000,000 for one burst",
    ),
    "workers": (
        scenario(agents=[{"id": "c", "role": "client"}, {"id": "s", "workers": 10**8}]),
        "agents.1.workers: 100,000,000 is past the cap of 1,000,000 workers of one agent",
    ),
    "poison": (
        scenario(faults=[{"kind": "poison", "from": "c", "to": "s", "start": 1, "count": 10**9}]),
        "faults.0.count: 1,000,000,000 is past the cap of 1,000,000 poison messages of one fault",
    ),
    "any integer": (
        scenario(agents=[{"id": "c", "role": "client", "version": 10**20}, {"id": "s"}]),
        "agents.0.version: 100000000000000000000 is past the cap of 2**53 "
        "(9,007,199,254,740,992) for any integer in a scenario",
    ),
    "seed": (
        scenario(seed=10**30),
        "seed: " + str(10**30) + " is past the cap of 2**63 - 1 (64 bits)",
    ),
    "seconds of a distribution": (
        scenario(network={"default": {"latency": {"dist": "constant", "value": 1e300}}}),
        "network.default.latency.value: 1e+300 s is past the cap of 1e+09 s for a time drawn "
        "from a distribution (the longest run)",
    ),
    "sample interval": (
        scenario(duration=1000, sample_interval=1e-5),
        "sample_interval: 1e-05 s between queue samples over a run of 1000 s is "
        "100,000,000 queue samples, past the cap of 10,000,000 ticks of one timer; make it "
        "at least 0.0001 s",
    ),
    "keep-alive": (
        scenario(
            channels=[{"from": "c", "to": "s", "protocol": "sse", "sse": {"keepalive": 1e-7}}]
        ),
        "channels.0.sse.keepalive: 1e-07 s between keep-alives over a run of 5 s is "
        "50,000,000 keep-alives, past the cap of 10,000,000 ticks of one timer; make it at "
        "least 5e-07 s",
    ),
    "visibility timeout": (
        scenario(
            agents=[*BASE["agents"], {"id": "broker", "role": "broker"}],
            channels=[
                {"from": "c", "to": "s", "protocol": "queue", "queue": {"visibility_timeout": 1e-7}}
            ],
        ),
        "channels.0.queue.visibility_timeout: 1e-07 s between redeliveries over a run of 5 s "
        "is 50,000,000 redeliveries, past the cap of 10,000,000 ticks of one timer; make it "
        "at least 5e-07 s",
    ),
    "overload bursts": (
        scenario(
            faults=[
                {"kind": "overloaded", "targets": ["s"], "start": 0, "burst": 1e-8, "every": 1e-7}
            ]
        ),
        "faults.0.every: 1e-07 s between overload bursts over a run of 5 s is 50,000,000 "
        "overload bursts, past the cap of 10,000,000 ticks of one timer; make it at least "
        "5e-07 s",
    ),
    "discovery heartbeats": (
        scenario(
            agents=[
                *BASE["agents"],
                {"id": "r", "role": "registry", "discovery": {"heartbeat": 1e-7}},
            ]
        ),
        "agents.2.discovery.heartbeat: 1e-07 s between heartbeats over a run of 5 s is "
        "50,000,000 heartbeats, past the cap of 10,000,000 ticks of one timer; make it at "
        "least 5e-07 s",
    ),
    "attempts": (
        scenario(channels=[{"from": "c", "to": "s", "retry": {"max_attempts": 10**6, "base": 0}}]),
        "channels.0.retry.max_attempts: 1,000,000 is past the cap of 1,000 attempts of one "
        "call or message",
    ),
    "expected messages": (
        scenario(
            duration=100_000,
            workload=[{"from": "c", "to": "s", "arrivals": {"kind": "constant", "rate": 1000}}],
        ),
        "workload.0: about 100,000,000 requests of 2 messages each (calls included) make the "
        "run send about 200,000,000 messages, past the cap of 50,000,000 a run can hold in "
        "memory; lower the rate or shorten the run",
    ),
    "calls that multiply": (
        scenario(
            agents=call_layers(30),
            workload=[{"from": "c", "to": "l0a", "arrivals": {"kind": "constant", "rate": 1}}],
        ),
        "workload.0: about 5 requests of 2,147,483,646 messages each (calls included) make "
        "the run send about 10,737,418,230 messages, past the cap of 50,000,000 a run can "
        "hold in memory; lower the rate or shorten the run",
    ),
    "spike draws": (
        scenario(
            duration=100,
            workload=[
                {
                    "from": "c",
                    "to": "s",
                    "arrivals": {
                        "kind": "spike",
                        "rate": 1,
                        "spike_rate": 5e6,
                        "spike_start": 1,
                        "spike_end": 1.001,
                    },
                }
            ],
        ),
        "workload: the arrivals would draw about 1,000,000,000 random times (a ramp or spike "
        "draws at its peak rate over its whole window), past the cap of 200,000,000; lower "
        "the peak rate or shorten the window",
    ),
    "queue samples": (
        scenario(
            duration=100_000,
            sample_interval=0.1,
            agents=many_services(20),
            workload=[{"from": "c", "to": "s0", "arrivals": {"kind": "constant", "rate": 1}}],
        ),
        "sample_interval: 0.1 s between samples of 20 queues over 100000 s makes about "
        "20,000,000 rows of samples, past the cap of 10,000,000; sample less often",
    ),
    "agents": (
        scenario(agents=many_services(20_000)),
        "agents: lists 20,001 agents, past the cap of 20,000 agents in one scenario",
    ),
    "a list": (
        scenario(expected_violations=["x"] * 100_001),
        "expected_violations: lists 100,001 items, past the cap of 100,000 items in one list",
    ),
    "agents times channels": (
        scenario(
            agents=many_services(11_000),
            channels=[{"from": "c", "to": f"s{i}"} for i in range(10_000)],
        ),
        "channels: 10,000 channels between 11,001 agents is past the cap of 100,000,000 "
        "agents times channels (setting up each agent looks at every channel)",
    ),
}


@pytest.mark.parametrize("case", CAPS, ids=list(CAPS))
def test_past_a_cap_is_one_sentence_naming_the_field_and_the_cap(case: str) -> None:
    data, sentence = CAPS[case]
    assert problems(data) == [sentence]


ZERO = {"dist": "constant", "value": 0}


def test_a_negotiation_that_would_bid_for_ever_at_one_instant_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Both sides think for 0 s over links of zero latency, and their limits never meet:
    # the run used to spin at one instant for ever.
    data = scenario(
        duration=20,
        agents=[
            {"id": "c", "role": "client"},
            {"id": "o", "role": "orchestrator", "workers_per_task": 2},
            {"id": "registry", "role": "registry"},
            {"id": "broker", "role": "broker"},
            {
                "id": "w",
                "role": "worker",
                "pairs_with": "k",
                "negotiation": {"position": 80, "limit": 90, "think": 0, "threshold": 0},
            },
            {
                "id": "k",
                "role": "worker",
                "negotiation": {"position": 40, "limit": 30, "think": 0, "threshold": 0},
            },
        ],
        channels=[
            {"from": "o", "to": "w", "protocol": "sse"},
            {"from": "o", "to": "k", "protocol": "sse"},
            {"from": "w", "to": "k", "protocol": "websocket"},
            {"from": "w", "to": "o", "protocol": "queue", "queue": {"request_queue": "{dst}.r"}},
            {"from": "k", "to": "o", "protocol": "queue", "queue": {"request_queue": "{dst}.r"}},
        ],
        network={"default": {"latency": ZERO}},
        workload=[{"from": "c", "to": "o", "arrivals": {"kind": "constant", "rate": 1}}],
    )
    line = refused(capsys, "run", str(write(tmp_path, data)), "--out", str(tmp_path / "r"))
    assert line.endswith(
        "agents.4.negotiation.think: 0 s on both sides of the negotiation with 'k', over "
        "links of zero latency, lets its bids go back and forth for ever at one instant; "
        "give one side a think time or the link a latency"
    )
    # A latency on the link between them lets the clock move: it runs.
    data["network"]["links"] = [
        {"from": "w", "to": "k", "latency": {"dist": "constant", "value": 0.001}}
    ]
    assert problems(data) == []


def test_a_queue_that_would_redeliver_for_ever_at_one_instant_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    endless = {"flavour": "rabbitmq", "max_deliveries": None, "on_error": "requeue"}
    data = scenario(
        duration=10,
        agents=[
            {"id": "c", "role": "client"},
            {"id": "s", "service_time": ZERO},
            {"id": "broker", "role": "broker", "queue": endless},
        ],
        channels=[{"from": "c", "to": "s", "protocol": "queue", "queue": endless}],
        network={"default": {"latency": ZERO}},
        workload=[],
        faults=[{"kind": "poison", "from": "c", "to": "s", "start": 1}],
    )
    line = refused(capsys, "run", str(write(tmp_path, data)), "--out", str(tmp_path / "r"))
    assert line.endswith(
        "channels.0.queue.max_deliveries: none, with on_error requeue, a service time of 0 s "
        "and links of zero latency, redelivers a message that always fails for ever at one "
        "instant; set max_deliveries"
    )
    data["agents"][1]["service_time"] = {"dist": "constant", "value": 0.01}
    assert problems(data) == []


@pytest.mark.parametrize(
    ("broker", "channel"),
    [
        # Pub/Sub has no delivery limit by default: the channel's own limit ends the loop.
        ({"flavour": "pubsub"}, {"max_deliveries": 1}),
        # The channel requeues, and its RabbitMQ broker's quorum queues stop at 20.
        ({"flavour": "rabbitmq"}, {"on_error": "requeue"}),
    ],
    ids=["channel-limit", "broker-limit"],
)
def test_a_queue_whose_limit_comes_from_the_channel_or_the_broker_runs(
    broker: dict[str, Any], channel: dict[str, Any]
) -> None:
    # The loop check reads the queue's settings as the run does: a channel's knobs over
    # its broker's. It used to judge each alone and refuse both of these.
    data = scenario(
        duration=10,
        agents=[
            {"id": "c", "role": "client"},
            {"id": "s", "service_time": ZERO},
            {"id": "broker", "role": "broker", "queue": broker},
        ],
        channels=[{"from": "c", "to": "s", "protocol": "queue", "queue": channel}],
        network={"default": {"latency": ZERO}},
        workload=[],
        faults=[{"kind": "poison", "from": "c", "to": "s", "start": 1}],
    )
    assert problems(data) == []
    run = sim.run(data)
    dead = run.messages[run.messages.outcome == "dead_lettered"]
    limit = channel.get("max_deliveries", 20)
    assert list(dead.attempt) == [limit]  # the poison request, at the limit
    # Without a limit anywhere, the same queue is refused.
    data["channels"][0]["queue"] = {**channel, "max_deliveries": None, "on_error": "requeue"}
    data["agents"][2]["queue"] = {**broker, "max_deliveries": None}
    assert problems(data) == [
        "channels.0.queue.max_deliveries: none, with on_error requeue, a service time of 0 s "
        "and links of zero latency, redelivers a message that always fails for ever at one "
        "instant; set max_deliveries"
    ]


def test_an_alias_bomb_is_refused_before_anything_walks_it(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # Ten lines of YAML, 10**10 values once expanded: every pass over it would hang.
    lines = ["name: bomb", "duration: 10", "l0: &l0 [1,1,1,1,1,1,1,1,1,1]"]
    for level in range(1, 10):
        lines.append(f"l{level}: &l{level} [" + ",".join([f"*l{level - 1}"] * 10) + "]")
    lines += ["agents:", "  - {id: c, role: client}"]
    path = write(tmp_path, "\n".join(lines) + "\n", "bomb.yaml")
    line = refused(capsys, "validate", str(path))
    assert line == (
        f"{path}: (top level): holds more than 5,000,000 values once its YAML aliases are "
        "expanded, past the cap for a scenario (one of 20,000 agents has well under a million)"
    )


def test_every_builtin_scenario_is_within_the_caps() -> None:
    from sim import sizing

    for name in loading.builtin_names():
        s = loading.load(name)
        assert sizing.warnings(s) == [], name


def test_a_big_run_goes_ahead_with_a_warning(tmp_path: Path) -> None:
    data = scenario(
        name="big",
        duration=100_000,
        workload=[{"from": "c", "to": "s", "arrivals": {"kind": "poisson", "rate": 30}}],
    )
    done = python_m_sim("validate", str(write(tmp_path, data)))
    assert done.returncode == 0
    assert done.stderr.strip() == (
        "warning: big: about 6,000,000 messages expected (over 5,000,000): the run will take "
        "minutes and gigabytes of memory"
    )


def test_a_sweep_of_too_many_runs_is_refused_before_any_is_made() -> None:
    from sim.sweeps import load_spec
    from sim.sweeps.spec import expand, run_count

    axes = [{"name": f"a{i}", "path": "duration", "values": list(range(1, 11))} for i in range(6)]
    spec = load_spec({"name": "huge", "scenario": "basic", "replications": 1, "axes": axes})
    for attempt in (run_count, expand):
        with pytest.raises(loading.ScenarioError) as caught:
            attempt(spec)
        assert caught.value.lines == [
            "sweep 'huge': its axes and replications make 1,000,000 runs, past the cap of "
            "100,000 runs of one sweep; use fewer values or replications"
        ]
    assert run_count(spec.model_copy(update={"axes": spec.axes[:4]})) == 10_000


# --- the network: no graph of every pair ---------------------------------------------------


def test_a_full_mesh_of_3000_agents_costs_megabytes_not_a_graph_of_every_pair() -> None:
    ids = [f"a{i}" for i in range(3000)]
    env = simpy.Environment()
    recorder = Recorder()
    tracemalloc.start()
    try:
        network = Network(
            env,
            sc.Network(),
            ids,
            Streams(1),
            recorder,
            FaultState(),
            is_up=lambda _agent: True,
        )
        _size, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # The eager mesh held 9 million edges: over a gigabyte.
    assert peak < 20 * 2**20
    got: list[Message] = []
    network.attach("a2999", got.append)
    network.send(Message(src="a0", dst="a2999", type="t", msg_id="m1"))
    network.send(Message(src="a0", dst="nobody", type="t", msg_id="m2"))
    env.run(until=1)
    assert [m.msg_id for m in got] == ["m1"]
    outcomes = dict(
        zip(
            recorder.tables()["messages"]["msg_id"],
            recorder.tables()["messages"]["outcome"],
            strict=True,
        )
    )
    assert outcomes == {"m1": "delivered", "m2": "unavailable"}


def test_listed_links_still_route_over_the_fewest_hops() -> None:
    spec = sc.Network.model_validate(
        {"topology": "links", "links": [{"from": "a", "to": "b"}, {"from": "b", "to": "c"}]}
    )
    from sim.network import Topology

    topology = Topology(["a", "b", "c", "d"], spec)
    assert topology.path("a", "c") == ["a", "b", "c"]
    assert topology.path("c", "a") == ["c", "b", "a"]
    assert topology.path("a", "d") is None
    assert topology.path("d", "d") == ["d", "d"]
    full = Topology(["a", "b"], sc.Network())
    assert (full.path("a", "b"), full.path("a", "zz")) == (["a", "b"], None)


def test_a_scenario_copy_with_other_channels_finds_its_own() -> None:
    s = loading.validate(copy.deepcopy(QUEUE_SCENARIO), "s")
    assert s.channel("c", "s").protocol == "queue"
    other = s.model_copy(
        update={
            "channels": [sc.Channel.model_validate({"from": "c", "to": "s", "protocol": "sse"})]
        }
    )
    assert other.channel("c", "s").protocol == "sse"
    assert s.channel("c", "s").protocol == "queue"
    assert s.channel("s", "c").protocol == "http"
