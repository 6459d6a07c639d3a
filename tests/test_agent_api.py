"""Agents written in Python (sim.agents.api, sim.agents.plugin, sim.plugins).

Each primitive a role's code yields on, over a perfect and a lossy network, leaves the
trace rows a built-in role would (the checks and the accounting hold); an exception in
that code is a 500 and an error span, and the run goes on; `strict` raises it with the
user's line; YAML names registered roles with their own settings; the CLI loads plugin
modules; and the built-in service, rewritten on this API, gives the same trace digests.
"""

from __future__ import annotations

import copy
import gc
import re
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel, ConfigDict, Field

import sim
from protocols.workers import Job
from sim import loading
from sim.plugins import PluginError, env_plugins, load_plugins, register_role, unregister_role
from sim.trace import run_digests
from sim.world import World
from tests.test_accounting import check_accounting

REPO = Path(__file__).resolve().parent.parent

# --- the roles under test --------------------------------------------------------------


class Service:
    """The built-in `service` role, rewritten on the API: work, then each downstream."""

    def on_request(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work()
        for callee in ctx.spec.calls:
            try:
                yield ctx.call(callee, request.type)
            except sim.CallTimeout as exc:
                ctx.respond(504, error=f"call to {callee} failed: {exc.error}")
                return
            except sim.CallError as exc:
                ctx.respond(502, error=f"call to {callee} failed: {exc.error}")
                return


class PlannerSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    think: float = Field(0.05, ge=0)
    tools: list[str] = Field(default_factory=list)
    policy: str = "all"
    k: int | None = None


class Planner:
    """Thinks, then asks its tools one after the other and answers with what they said."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        settings = ctx.settings
        assert isinstance(settings, PlannerSettings)
        yield ctx.work(settings.think)
        said = []
        for tool in settings.tools:
            try:
                answer = yield ctx.call(tool, "tool.use", {"q": request.correlation_id})
            except sim.CallTimeout:
                ctx.respond(504, error=f"{tool} timed out")
                return None
            except sim.CallRejected:
                ctx.respond(503, error=f"{tool} refused by the breaker")
                return None
            except sim.CallFailed as exc:
                ctx.respond(502, error=f"{tool} answered {exc.status}")
                return None
            # The tool's body reached us, with the request's own data in it.
            if answer.body != {"echo": request.correlation_id, "by": tool}:
                ctx.respond(500, error=f"wrong body from {tool}: {answer.body!r}")
                return None
            said.append(answer.body)
        ctx.state["served"] = ctx.state.get("served", 0) + 1
        ctx.durable["served"] = ctx.durable.get("served", 0) + 1
        return said


class Fanner:
    """Asks all its tools at once, by its settings' fan-out policy."""

    def on_task_run(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        settings = ctx.settings
        assert isinstance(settings, PlannerSettings)
        calls = [(t, "tool.use", {"q": request.correlation_id}) for t in settings.tools]
        result = yield ctx.fanout(calls, policy=settings.policy, k=settings.k, deadline=2.0)
        if not result.ok:
            ctx.respond(502, error=f"fan-out {result.outcome}: {result.error}")
            return None
        return [r.body for r in result.responses]


class Tool:
    """Echoes the request's data after some work (a distribution) and a short sleep."""

    def on_tool_use(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield ctx.work({"dist": "exponential", "mean": 0.02})
        yield ctx.sleep(0.01)
        ctx.respond(body={"echo": request.body["q"], "by": ctx.id})


class Flaky:
    """Raises on every other request (of its own count), answers the others."""

    @sim.handles("task.run", "task.retry")
    def serve(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        n = ctx.state["n"] = ctx.state.get("n", 0) + 1
        yield ctx.work(0.01)
        if n % 2 == 0:
            raise ValueError(f"request {n} is even")
        return "fine"


class Ticker:
    """No handlers: a main loop that calls a service once a second."""

    def main(self, ctx: sim.AgentContext) -> Any:
        while True:
            yield ctx.sleep(1.0)
            try:
                yield ctx.call("api", "tick")
            except sim.CallError:
                ctx.state["failed"] = ctx.state.get("failed", 0) + 1


class Plain:
    """A handler that is a plain function, one that yields nonsense, a draw from rng."""

    def on_ping(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        draw = ctx.rng.random()
        ctx.durable.setdefault("draws", []).append(draw)
        return draw

    def on_bad_yield(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        yield 5


ROLES: dict[str, tuple[type, type[BaseModel] | None]] = {
    "t-service": (Service, None),
    "t-planner": (Planner, PlannerSettings),
    "t-fanner": (Fanner, PlannerSettings),
    "t-tool": (Tool, None),
    "t-flaky": (Flaky, None),
    "t-ticker": (Ticker, None),
    "t-plain": (Plain, None),
}


@pytest.fixture(autouse=True)
def roles() -> Iterator[None]:
    for name, (cls, settings) in ROLES.items():
        register_role(name, cls, settings)
    yield
    for name in ROLES:
        unregister_role(name)


# --- scenarios ---------------------------------------------------------------------------

PERFECT = {"default": {"latency": {"dist": "constant", "value": 0.005}}}
LOSSY = {"default": {"latency": {"dist": "normal", "mean": 0.005, "sd": 0.001}, "loss": 0.05,
                     "duplicate": 0.02}}  # fmt: skip
NETWORKS = {"perfect": PERFECT, "lossy": LOSSY}


def planner_scenario(
    network: dict[str, Any], role: str = "t-planner", tools: int = 2, **settings: Any
) -> dict[str, Any]:
    """client -> planner (a plugin) -> its tools (plugins), over HTTP."""
    names = [f"tool{i}" for i in range(tools)]
    return {
        "name": "planner",
        "seed": 7,
        "duration": 30,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "planner", "role": role, "workers": 4,
             "settings": {"tools": names, **settings}},
            *({"id": t, "role": "t-tool", "workers": 2} for t in names),
        ],
        "channels": [
            {"from": "client", "to": "planner", "timeout": 5},
            *({"from": "planner", "to": t, "timeout": 1} for t in names),
        ],
        "network": copy.deepcopy(network),
        "workload": [{"from": "client", "to": "planner", "type": "task.run",
                      "arrivals": {"kind": "poisson", "rate": 5}}],
    }  # fmt: skip


def holds(run: sim.Run) -> None:
    """The invariant checks and the message accounting hold on `run`."""
    assert sim.checks.violations(run) == {}
    check_accounting(run)


def spans_of(run: sim.Run, agent: str, kind: str, name: str | None = None) -> Any:
    spans = run.spans
    chosen = spans[(spans["agent"] == agent) & (spans["kind"] == kind)]
    return chosen if name is None else chosen[chosen["name"] == name]


# --- each primitive, perfect and lossy ---------------------------------------------------


@pytest.mark.parametrize("network", NETWORKS, ids=list(NETWORKS))
def test_call_work_sleep_and_bodies_leave_the_rows_a_service_would(network: str) -> None:
    run = sim.run(planner_scenario(NETWORKS[network]))
    holds(run)
    served = spans_of(run, "planner", "server", "task.run")
    calls = spans_of(run, "planner", "client", "tool.use")
    tools = run.spans[run.spans["agent"].str.startswith("tool") & (run.spans["kind"] == "server")]
    # One server span per task; under it, one client span per tool called; one server
    # span on the tool per call that reached it.
    assert len(served) <= run.summary()["requests"]
    assert set(calls["parent_id"]) <= set(served["span_id"])
    assert (calls["correlation_id"].isin(served["correlation_id"])).all()
    ok = served[served["outcome"] == "ok"]
    assert len(ok) > 100
    # The work (0.05 s) and each tool's work and sleep (>= 0.01 s) took simulated time.
    assert ((ok["end"] - ok["start"]) >= 0.05 + 2 * 0.01).all()
    assert (tools.loc[tools["outcome"] == "ok", "end"]
            - tools.loc[tools["outcome"] == "ok", "start"] >= 0.01).all()  # fmt: skip
    # No planner answered "wrong body": every tool's answer came back with its body.
    assert not served["error"].str.contains("wrong body").any()
    if network == "perfect":
        assert len(served) == run.summary()["requests"]
        assert (served["outcome"] == "ok").all()
        assert len(calls) == 2 * len(served)
        assert (calls["outcome"] == "ok").all()
        assert len(tools) == len(calls)
    else:
        # Lost messages: some tool calls time out and the planner answers 504 for them.
        assert (calls["outcome"] == "timeout").any()
        assert (served["status"] == 504).any()
    assert run.summary()["exceptions"] == 0


@pytest.mark.parametrize("network", NETWORKS, ids=list(NETWORKS))
@pytest.mark.parametrize("protocol", ["queue", "sse", "websocket"])
def test_calls_carry_answers_and_bodies_over_every_protocol(network: str, protocol: str) -> None:
    data = planner_scenario(NETWORKS[network])
    data["agents"].append({"id": "broker", "role": "broker"})
    for channel in data["channels"][1:]:
        channel["protocol"] = protocol
    run = sim.run(data)
    holds(run)
    served = spans_of(run, "planner", "server", "task.run")
    spans = run.spans
    # A queue call's span is its publish (a producer span).
    calls = spans[(spans["agent"] == "planner") & (spans["name"] == "tool.use")]
    assert set(calls["protocol"]) == {protocol}
    assert not served["error"].str.contains("wrong body").any()
    assert (served["outcome"] == "ok").sum() > (100 if network == "perfect" else 0)
    if network == "perfect":
        assert set(served["outcome"]) <= {"ok", "open"}


@pytest.mark.parametrize("network", NETWORKS, ids=list(NETWORKS))
@pytest.mark.parametrize(("policy", "k"), [("all", None), ("quorum", 2), ("first", None)])
def test_fanout_records_its_span_and_answers_by_policy(
    network: str, policy: str, k: int | None
) -> None:
    run = sim.run(planner_scenario(NETWORKS[network], "t-fanner", tools=3, policy=policy, k=k))
    holds(run)
    served = spans_of(run, "planner", "server", "task.run")
    fans = spans_of(run, "planner", "internal", "fanout")
    calls = spans_of(run, "planner", "client", "tool.use")
    assert len(fans) <= len(served)
    assert set(fans["parent_id"]) <= set(served["span_id"])
    # Each fan-out is the parent of its three calls and says how many answered.
    assert (calls["parent_id"].value_counts() == 3).all()
    assert set(calls["parent_id"]) <= set(fans["span_id"])
    need = {"all": 3, "quorum": 2, "first": 1}[policy]
    done = fans[fans["outcome"] == "ok"]
    assert (done["answered"] >= need).all()
    if network == "perfect":
        assert len(fans) == len(served)
        assert (fans["outcome"] == "ok").all()
        assert (served["outcome"] == "ok").all()
    else:
        failed = fans[fans["outcome"] != "ok"]
        assert (failed["answered"] < need).all()


def test_call_errors_are_the_exceptions_code_can_catch() -> None:
    # tool0 answers 503 for a while (CallFailed), then is slow past the 1 s timeout
    # (CallTimeout); a breaker on tool1 opens on those failures (CallRejected).
    data = planner_scenario(PERFECT, tools=2)
    data["channels"][2]["breaker"] = {"failure_rate": 0.5, "window": 10, "min_calls": 5,
                                      "open_for": 5}  # fmt: skip
    data["faults"] = [
        {"kind": "error", "targets": ["tool0"], "fraction": 1.0, "status": 503,
         "start": 5, "end": 10},
        {"kind": "latency", "targets": ["tool0"], "start": 12, "end": 15,
         "add": {"dist": "constant", "value": 2}},
        {"kind": "error", "targets": ["tool1"], "fraction": 1.0, "status": 500,
         "start": 18, "end": 22},
    ]  # fmt: skip
    run = sim.run(data)
    holds(run)
    served = spans_of(run, "planner", "server", "task.run")
    errors = set(served.loc[served["outcome"] == "error", "error"])
    assert "tool0 answered 503" in errors  # CallFailed, with the status
    assert "tool0 timed out" in errors  # CallTimeout
    assert "tool1 answered 500" in errors
    assert "tool1 refused by the breaker" in errors  # CallRejected: OPEN breaker
    rejected = spans_of(run, "planner", "client", "tool.use")
    assert (rejected["outcome"] == "rejected").any()
    assert len(run.breakers) > 0
    # Outside the fault windows, the tasks succeed.
    late = served[served["start"] > 26]
    assert (late["outcome"] == "ok").all() and len(late) > 0


def test_state_is_lost_on_crash_and_durable_is_kept() -> None:
    data = planner_scenario(PERFECT)
    data["faults"] = [{"kind": "crash", "targets": ["planner"], "start": 20, "end": 21}]
    world = World(loading.validate(data, "crash"))
    run = world.run()
    holds(run)
    served = spans_of(run, "planner", "server", "task.run")
    ok = served[served["outcome"] == "ok"]
    agent: Any = world.agents["planner"]
    after = int((ok["start"] > 21).sum())
    assert 0 < agent.state["served"] <= after + 4  # counted since the restart only
    assert agent.durable["served"] == len(ok)


@pytest.mark.parametrize("network", NETWORKS, ids=list(NETWORKS))
def test_main_loop_sends_its_own_root_calls(network: str) -> None:
    data = {
        "name": "ticker",
        "seed": 2,
        "duration": 20,
        "agents": [{"id": "ticker", "role": "t-ticker"}, {"id": "api", "role": "service"}],
        "channels": [{"from": "ticker", "to": "api", "timeout": 0.5}],
        "network": copy.deepcopy(NETWORKS[network]),
    }
    world = World(loading.validate(data, "ticker"))
    run = world.run()
    holds(run)
    ticks = spans_of(run, "ticker", "client", "tick")
    assert len(ticks) == 19  # one a second, from 1 s; the one due at 20 s is not sent
    assert (ticks["parent_id"] == "").all()  # each a trace of its own
    assert ticks["correlation_id"].is_unique
    failed = int((ticks["outcome"] != "ok").sum())
    assert world.agents["ticker"].state.get("failed", 0) == failed  # type: ignore[attr-defined]
    if network == "perfect":
        assert failed == 0


def test_rng_is_the_runs_seeded_stream_per_agent() -> None:
    data = {
        "name": "rng",
        "seed": 5,
        "duration": 5,
        "agents": [{"id": "client", "role": "client"}, {"id": "p", "role": "t-plain"},
                   {"id": "q", "role": "t-plain"}],
        "network": PERFECT,
        "workload": [{"from": "client", "to": p, "type": "ping",
                      "arrivals": {"kind": "constant", "rate": 2}} for p in ("p", "q")],
    }  # fmt: skip

    def draws(seed: int) -> tuple[list[float], list[float], sim.Run]:
        world = World(loading.validate({**copy.deepcopy(data), "seed": seed}, "rng"))
        run = world.run()
        agents: Any = world.agents
        return agents["p"].durable["draws"], agents["q"].durable["draws"], run

    p, q, run = draws(5)
    holds(run)
    served = spans_of(run, "p", "server", "ping")
    assert (served["outcome"] == "ok").all() and len(served) == len(p) == 10  # plain functions
    assert draws(5)[:2] == (p, q)  # the same seed, the same draws
    assert p != q  # each agent its own stream
    assert draws(6)[0] != p


# --- exceptions and strict ---------------------------------------------------------------


def flaky_scenario() -> dict[str, Any]:
    return {
        "name": "flaky",
        "seed": 1,
        "duration": 10,
        "agents": [{"id": "client", "role": "client"}, {"id": "f", "role": "t-flaky"}],
        "network": PERFECT,
        "workload": [{"from": "client", "to": "f", "type": "task.run",
                      "arrivals": {"kind": "constant", "rate": 2}}],
    }  # fmt: skip


def test_an_exception_in_user_code_is_a_500_and_an_error_span_and_the_run_goes_on() -> None:
    run = sim.run(flaky_scenario())
    holds(run)
    served = spans_of(run, "f", "server", "task.run")
    assert len(served) == 20  # the run went on to its end
    failed = served[served["outcome"] == "error"]
    assert len(failed) == 10 and (failed["status"] == 500).all()
    line = Flaky.serve.__code__.co_firstlineno + 5
    assert set(failed["error"]) == {
        f"raised ValueError: request {n} is even (at test_agent_api.py:{line})"
        for n in range(2, 21, 2)
    }
    # The caller got the 500; the summary counts the exceptions.
    calls = spans_of(run, "client", "client")
    assert (calls.loc[calls["status"] == 500, "outcome"] == "error").sum() == 10
    summary = run.summary()
    assert summary["exceptions"] == 10
    assert summary["errors_by_kind"] == {"error": 10}
    assert (served.loc[served["outcome"] == "ok", "status"] == 200).all()


def test_strict_raises_the_first_exception_with_the_users_line() -> None:
    with pytest.raises(ValueError, match="request 2 is even") as caught:
        sim.run(flaky_scenario(), strict=True)
    frames = traceback.extract_tb(caught.value.__traceback__)
    mine = [f for f in frames if f.filename == __file__]
    assert mine and mine[-1].name == "serve"
    assert mine[-1].line == 'raise ValueError(f"request {n} is even")'


def test_a_yield_of_something_else_is_an_error_in_the_users_code() -> None:
    data = flaky_scenario()
    data["agents"][1]["role"] = "t-plain"
    data["workload"][0]["type"] = "bad.yield"
    run = sim.run(data)
    holds(run)
    served = spans_of(run, "f", "server")
    assert (served["status"] == 500).all() and len(served) == 20
    assert served["error"].str.startswith("raised TypeError: a handler yields what ctx").all()


def test_a_request_type_without_a_handler_answers_501() -> None:
    data = flaky_scenario()
    data["workload"][0]["type"] = "task.other"
    run = sim.run(data)
    holds(run)
    served = spans_of(run, "f", "server")
    assert (served["status"] == 501).all()
    assert set(served["error"]) == {"role 't-flaky' has no handler for 'task.other'"}
    # `@handles` names every type it takes.
    data["workload"][0]["type"] = "task.retry"
    assert (spans_of(sim.run(data), "f", "server")["status"] != 501).all()


# --- YAML and settings -------------------------------------------------------------------


def test_yaml_names_a_registered_role_with_its_settings(tmp_path: Path) -> None:
    data = planner_scenario(PERFECT, tools=1, think=0.3)
    path = tmp_path / "planner.yaml"
    path.write_text(yaml.safe_dump(data))
    run = sim.run(path)
    holds(run)
    served = spans_of(run, "planner", "server", "task.run").dropna(subset=["end"])
    assert ((served["end"] - served["start"]) >= 0.3).all()  # settings.think was used
    assert set(run.agents["role"]) == {"client", "t-planner", "t-tool"}


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ({"think": -1}, "agents.1.settings.think: input should be greater than or equal to 0, "
                        "got -1"),
        ({"thinks": 1}, "agents.1.settings.thinks: unknown field 'thinks'"),
        ({"tools": "tool0"}, "agents.1.settings.tools: input should be a valid list, got 'tool0'"),
    ],
)  # fmt: skip
def test_invalid_settings_are_one_sentence(edit: dict[str, Any], message: str) -> None:
    data = planner_scenario(PERFECT, tools=1)
    data["agents"][1]["settings"].update(edit)
    with pytest.raises(sim.ScenarioError) as caught:
        loading.validate(data, "planner.yaml")
    assert caught.value.lines == [f"planner.yaml: {message}"]


def test_settings_and_roles_that_do_not_fit_are_one_sentence() -> None:
    data = planner_scenario(PERFECT, tools=1)
    data["agents"][2]["settings"] = {"x": 1}  # t-tool registered no settings model
    data["agents"][0]["settings"] = {"x": 1}  # a built-in role
    with pytest.raises(sim.ScenarioError) as caught:
        loading.validate(data, "s.yaml")
    assert caught.value.lines == [
        "s.yaml: agents.0.settings: only a plugin role takes a settings block; role 'client' "
        "takes its settings as fields of the agent",
        "s.yaml: agents.2.settings: role 't-tool' takes no settings",
    ]
    unregister_role("t-planner")
    with pytest.raises(sim.ScenarioError) as caught:
        loading.validate(planner_scenario(PERFECT, tools=1), "s.yaml")
    assert caught.value.lines[0].startswith(
        "s.yaml: agents.1.role: unknown role 't-planner'; did you mean 't-fanner'?"
    )


def test_registering_refuses_what_cannot_be_a_role() -> None:
    with pytest.raises(PluginError, match="'service' is a built-in role"):
        register_role("service", Service)
    with pytest.raises(PluginError, match="must be a class"):
        register_role("x", Service())  # type: ignore[arg-type]
    with pytest.raises(PluginError, match="pydantic model class"):
        register_role("x", Service, settings=dict)  # type: ignore[arg-type]
    assert sorted(sim.agents.registry.ROLES) == sorted(sim.plugins.BUILTIN_ROLES)


def test_plugin_modules_load_by_name_or_say_why_not(monkeypatch: pytest.MonkeyPatch,
                                                    tmp_path: Path) -> None:  # fmt: skip
    (tmp_path / "broken_plugin.py").write_text("import nothing_of_the_sort\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match="plugin module 'no_such_plugin' not found"):
        load_plugins(["no_such_plugin"])
    with pytest.raises(PluginError, match="'broken_plugin' failed to import: ModuleNotFound"):
        load_plugins(["broken_plugin"])
    assert env_plugins({"SWITCHBOARD_PLUGINS": " a, b ,,"}) == ["a", "b"]


# --- the CLI -----------------------------------------------------------------------------

PLUGIN = """
import sim


@sim.role("echo")
class Echo:
    def on_task_run(self, ctx, request):
        yield ctx.work(0.01)
        if ctx.now > 3:
            raise RuntimeError("too late for echoes")
        return "echo"
"""

SCENARIO = """
name: echoes
duration: 5
agents:
  - {id: client, role: client}
  - {id: echo, role: echo}
workload:
  - {from: client, to: echo, type: task.run, arrivals: {kind: constant, rate: 2}}
"""


def cli(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PYTHONPATH": f"{tmp_path}:{REPO}", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-m", "sim", *args], capture_output=True, text=True, env=env,
        cwd=tmp_path, timeout=120,
    )  # fmt: skip


def test_cli_loads_plugin_modules_only_when_told(tmp_path: Path) -> None:
    (tmp_path / "echo_plugin.py").write_text(PLUGIN)
    (tmp_path / "echoes.yaml").write_text(SCENARIO)
    out = tmp_path / "run"
    done = cli(tmp_path, "run", "echoes.yaml", "--plugin", "echo_plugin", "--out", str(out),
               "--quiet")  # fmt: skip
    assert done.returncode == 0, done.stderr
    run = sim.load(out)  # in this process, which has no role "echo"
    holds(run)
    assert run.scenario.agent("echo").role == "echo"
    served = spans_of(run, "echo", "server")
    assert len(served) == 10
    assert (served.loc[served["start"] > 3, "status"] == 500).all()
    assert (served.loc[served["start"] < 2.9, "status"] == 200).all()
    # The scenario alone names no code: without --plugin, the role is unknown.
    done = cli(tmp_path, "validate", "echoes.yaml")
    assert done.returncode == 2
    assert "agents.1.role: unknown role 'echo'" in done.stderr
    assert "Traceback" not in done.stderr
    done = cli(tmp_path, "validate", "echoes.yaml", "--plugin", "echo_plugin")
    assert done.returncode == 0, done.stderr
    done = cli(tmp_path, "run", "echoes.yaml", "--plugin", "nope_plugin")
    assert done.returncode == 2
    assert done.stderr.strip() == (
        "error: plugin module 'nope_plugin' not found (is its folder on PYTHONPATH?)"
    )
    # --strict: the first exception, with the traceback to the plugin's line.
    done = cli(tmp_path, "run", "echoes.yaml", "--plugin", "echo_plugin", "--strict",
               "--out", str(tmp_path / "strict"))  # fmt: skip
    assert done.returncode == 1
    assert 'echo_plugin.py", line 10, in on_task_run' in done.stderr
    assert "RuntimeError: too late for echoes" in done.stderr


# --- the built-in service, rewritten on the API ------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "protocol"),
    [
        ("basic", None),
        ("timeout-chain", None),
        ("fault-crash", None),
        ("fault-pause", None),
        ("fault-poison", None),
        ("retry-storm-breaker", None),
        ("request-response", "queue"),
        ("request-response", "sse"),
        ("request-response", "websocket"),
    ],
)
def test_the_service_role_rewritten_on_the_api_gives_the_same_trace(
    scenario: str, protocol: str | None
) -> None:
    data = loading.read_data(loading.resolve(scenario))
    if protocol is not None:
        data["channels"][0]["protocol"] = protocol
    builtin = sim.run(copy.deepcopy(data))
    for agent in data["agents"]:
        if agent.get("role", "service") == "service":
            agent["role"] = "t-service"
    rewritten = sim.run(data)
    mine, theirs = run_digests(rewritten), run_digests(builtin)
    # Every table is the same but `agents`, which names each agent's role.
    assert {t for t in mine if mine[t] != theirs[t]} == {"agents"}
    roles = rewritten.agents["role"].replace("t-service", "service")
    assert roles.tolist() == builtin.agents["role"].tolist()
    assert rewritten.agents.drop(columns="role").equals(builtin.agents.drop(columns="role"))


def test_a_served_request_leaves_nothing_for_the_garbage_collector() -> None:
    # A run keeps the cyclic collector off (sim.world.sparse_gc): what a finished request
    # leaves in a reference cycle stays in memory until the run ends, then costs a
    # collection. A request the rewritten service served leaves none, as the built-in's.
    data = loading.read_data(loading.resolve("basic"))
    for agent in data["agents"]:
        if agent.get("role", "service") == "service":
            agent["role"] = "t-service"
    world = World(loading.validate(data, "basic"))
    gc.collect()
    gc.disable()
    try:
        world.env.run(until=world.scenario.duration)
        jobs = sum(type(o) is Job for o in gc.get_objects())
    finally:
        gc.enable()
    served = int((world.recorder.tables()["spans"]["kind"] == "server").sum())
    assert served > 100
    assert jobs <= 10  # the requests still at work when the run ends


def test_the_worked_example_in_the_docs_runs(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:  # fmt: skip
    text = (REPO / "docs" / "agents.md").read_text()
    blocks = re.findall(r"```(python|yaml)\n(.*?)```", text, re.S)
    (tmp_path / "docs_planner_plugin.py").write_text(blocks[0][1])
    (tmp_path / "planner.yaml").write_text(blocks[1][1])
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugins(["docs_planner_plugin"])
    try:
        run = sim.run(tmp_path / "planner.yaml")
    finally:
        for name in ("planner", "tool", "critic"):
            unregister_role(name)
    # Read without its plugin (unregistered above), the run still knows its scenario.
    holds(run)
    assert run.scenario.agent("planner").settings == {"think": 0.1, "tools": ["search", "docs",
                                                      "code"], "quorum": 2}  # fmt: skip
    summary = run.summary()
    assert summary["success_rate"] > 0.95
    assert summary["exceptions"] > 0  # the tools' 1% of corrupted indexes


def test_a_plugin_agents_workers_are_one_pool_over_its_protocols() -> None:
    # Two clients send at the same instants, one over HTTP and one over WebSocket, to a
    # plugin agent with one worker and a second of work: the agent serves one request at
    # a time, so every other request waits (a pool per protocol served two at once).
    arrivals = {"kind": "constant", "rate": 0.25}
    scenario = {
        "name": "one-pool",
        "seed": 1,
        "duration": 20,
        "agents": [
            {"id": "web", "role": "client"},
            {"id": "ws", "role": "client"},
            {
                "id": "svc",
                "role": "t-service",
                "workers": 1,
                "service_time": {"dist": "constant", "value": 1.0},
            },
        ],
        "channels": [
            {"from": "web", "to": "svc", "timeout": 60},
            {"from": "ws", "to": "svc", "timeout": 60, "protocol": "websocket"},
        ],
        "network": PERFECT,
        "workload": [
            {"from": "web", "to": "svc", "end": 10, "arrivals": arrivals},
            {"from": "ws", "to": "svc", "end": 10, "arrivals": arrivals},
        ],
    }
    run = sim.run(scenario)
    served = run.spans[(run.spans["agent"] == "svc") & (run.spans["kind"] == "server")]
    assert set(served["protocol"]) == {"http", "websocket"}
    assert (served["outcome"] == "ok").all() and len(served) >= 4
    waits = sorted(served["wait"].round(6))
    half = len(waits) // 2
    assert waits[:half] == [0.0] * half and min(waits[half:]) >= 0.99, waits
    assert list(run.queues["queue"].unique()) == ["svc.workers"]


class Keeper:
    """Keeps each Request it is handed, to compare with one its constructor builds."""

    def on_request(self, ctx: sim.AgentContext, request: sim.Request) -> Any:
        ctx.durable.setdefault("requests", []).append(request)
        yield ctx.work(0.01)


def test_a_handlers_request_is_the_frozen_dataclass_its_constructor_builds() -> None:
    register_role("t-keeper", Keeper)
    try:
        data = {
            "name": "keeper",
            "seed": 3,
            "duration": 3,
            "agents": [{"id": "client", "role": "client"}, {"id": "k", "role": "t-keeper"}],
            "network": PERFECT,
            "workload": [{"from": "client", "to": "k", "type": "ping",
                          "arrivals": {"kind": "constant", "rate": 2}}],
        }  # fmt: skip
        world = World(loading.validate(data, "keeper"))
        world.run()
        agents: Any = world.agents
        kept = agents["k"].durable["requests"]
    finally:
        unregister_role("t-keeper")
    assert len(kept) == 6
    for request in kept:
        fields = {name: getattr(request, name) for name in sim.Request.__dataclass_fields__}
        built = sim.Request(**fields)
        assert request == built and repr(request) == repr(built) and hash(request) == hash(built)
        assert type(request) is sim.Request and request.type == "ping" and request.src == "client"
        with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
            request.type = "other"  # type: ignore[misc]
