"""A caller's deadline crosses every hop: HTTP, queue and WebSocket callees record the
deadline they received, queue consumers may drop expired requests, and a WebSocket
request's retries count their attempts up."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import sim


def chain(protocol: str, **callee: Any) -> dict[str, Any]:
    """client -(HTTP, 2 s)-> api -(`protocol`, 10 s)-> worker: one request a second."""
    return {
        "name": f"deadline-over-{protocol}",
        "seed": 2,
        "duration": 20,
        "agents": [
            {"id": "client", "role": "client"},
            {"id": "api", "workers": 8, "calls": ["worker"]},
            {"id": "worker", "workers": 1, **callee},
            {"id": "broker", "role": "broker"},
        ],
        "channels": [
            {"from": "client", "to": "api", "timeout": 2},
            {"from": "api", "to": "worker", "protocol": protocol, "timeout": 10},
        ],
        "network": {"default": {"latency": {"dist": "constant", "value": 0.01}}},
        "workload": [
            {"from": "client", "to": "api", "end": 6, "arrivals": {"kind": "constant", "rate": 1}}
        ],
    }


def received(run: sim.Run, kind: str, agent: str) -> Any:
    """The `kind` spans of `agent`, by correlation id."""
    s = run.spans
    return s[(s["kind"] == kind) & (s["agent"] == agent)].set_index("correlation_id")


def test_an_http_server_span_records_the_deadline_its_request_carried():
    run = sim.run(chain("http"))
    calls = received(run, "client", "client")
    served = received(run, "server", "api")
    assert len(served) == 6
    # The client's 2 s timeout is the deadline the API received.
    np.testing.assert_allclose(served["deadline"], calls.loc[served.index, "deadline"])


@pytest.mark.parametrize(("protocol", "kind"), [("queue", "consumer"), ("websocket", "server")])
def test_the_callers_deadline_crosses_a_queue_or_websocket_hop(protocol, kind):
    data = chain(protocol, service_time={"dist": "constant", "value": 0.1}, calls=["store"])
    data["agents"].append({"id": "store"})
    run = sim.run(data)
    upstream = received(run, "server", "api")
    served = received(run, kind, "worker")
    assert len(served) == 6 and served["deadline"].notna().all()
    # The worker got the client's deadline (start + 2 s), not the 10 s of its own hop,
    # and passes it on: the store's 5 s timeout is capped by it too.
    np.testing.assert_allclose(served["deadline"], upstream.loc[served.index, "deadline"])
    assert (served["deadline"] < served["start"] + 2).all()
    stored = received(run, "server", "store")
    np.testing.assert_allclose(stored["deadline"], upstream.loc[stored.index, "deadline"])


def test_a_queue_consumer_with_drop_expired_acks_expired_requests_without_work():
    data = chain("queue", service_time={"dist": "constant", "value": 2.5})
    data["channels"][1]["queue"] = {"drop_expired": True, "visibility_timeout": 60}
    run = sim.run(data)
    served = received(run, "consumer", "worker")
    dropped = served[served["outcome"] == "deadline_exceeded"]
    worked = served[served["outcome"] != "deadline_exceeded"]
    # One worker, 2.5 s a request, a 2 s deadline: after the first two, requests wait
    # past their deadline and are dropped as a worker takes them.
    assert len(dropped) >= 2 and len(worked) >= 2
    assert (dropped["error"] == "deadline exceeded before work began").all()
    assert (dropped["status"] == 504).all()
    assert (dropped["start"] + dropped["wait"] >= dropped["deadline"]).all()
    # No work for them (no effect), and they are acked: never delivered again.
    effects = run.effects[run.effects["agent"] == "worker"]
    assert len(effects) == len(worked)
    assert not effects["correlation_id"].isin(dropped.index).any()
    m = run.messages
    deliveries = m[(m["kind"] == "deliver") & (m["dst"] == "worker") & ~m["duplicate"]]
    assert (deliveries["attempt"] == 1).all()
    acks = m[(m["kind"] == "ack") & (m["src"] == "worker")]
    assert set(dropped.index) <= set(acks["correlation_id"])


def test_without_drop_expired_a_queue_consumer_works_on_expired_requests():
    data = chain("queue", service_time={"dist": "constant", "value": 2.5})
    run = sim.run(data)
    served = received(run, "consumer", "worker")
    assert (served["outcome"] != "deadline_exceeded").all()
    assert len(run.effects[run.effects["agent"] == "worker"]) == len(served)


def test_websocket_retries_count_their_attempts_up():
    data = chain("websocket")
    data["channels"][1].update(
        retry={"max_attempts": 3, "backoff": "constant", "base": 0.05, "jitter": "none"},
        http={"method": "PUT"},
    )
    data["faults"] = [{"kind": "error", "targets": ["worker"], "first": 2, "status": 500,
                       "start": 0}]  # fmt: skip
    run = sim.run(data)
    m = run.messages
    requests = m[(m["kind"] == "request") & (m["protocol"] == "websocket") & ~m["duplicate"]]
    first = requests[requests["correlation_id"] == "client-1"]
    # The first request fails twice and succeeds on its third attempt.
    assert first["attempt"].tolist() == [1, 2, 3]
    calls = received(run, "client", "api")
    request = calls.loc[["client-1"]].sort_values("attempts").iloc[-1]
    attempts = calls[calls["parent_id"] == request["span_id"]]
    assert attempts["outcome"].tolist() == ["error", "error", "ok"]
