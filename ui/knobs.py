"""The Run page's knobs: the few scenario fields people change most, as widgets.

Pure functions: `knobs()` lists what a scenario offers (channel timeouts and protocols,
service workers, workload rates, fault windows), `apply()` writes the widgets' values
back into the scenario's raw data as overrides, like `python -m sim run --set`. The
editor's text stays the source; the knobs are overrides on top of it.
"""

from __future__ import annotations

import copy
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sim.plugins import plugin_role
from sim.scenario import Agent, Channel, Fault, Scenario, Workload

# Workload rate fields, per arrival kind, in the order they are shown.
RATE_FIELDS = ("rate", "spike_rate", "start_rate", "end_rate")
# Breaker thresholds offered as knobs: (field, unit shown, widget kind).
BREAKER_FIELDS = (
    ("failure_rate", " (0-1)", "share"),
    ("slow_call", " (s)", "seconds"),
    ("min_calls", "", "count"),
    ("open_for", " (s)", "seconds"),
)
ENABLED = "enabled"  # pseudo field of a fault: False removes the fault from the run


@dataclass(frozen=True)
class Knob:
    """One widget: the dotted path it overrides, where it is shown and its start value."""

    path: str
    group: str  # "Timeouts", "Protocols", "Breakers", "Retries", "Workers", ...
    label: str
    value: Any
    # "seconds", "optional_seconds", "count", "rate", "share", "enabled", "choice", and for
    # a plugin role's settings "number", "integer", "flag" (its model validates them)
    kind: str
    options: tuple[str, ...] = ()
    help: str = ""


def protocol_choices() -> tuple[str, ...]:
    """The protocols a channel may name (from the scenario model's `protocol` field)."""
    annotation = Channel.model_fields["protocol"].annotation
    return tuple(str(a) for a in typing.get_args(annotation)) or ("http",)


def knobs(scenario: Scenario) -> list[Knob]:
    """The knobs a scenario offers, starting from its own values."""
    protocols = protocol_choices()
    out: list[Knob] = []
    for i, ch in enumerate(scenario.channels):
        out += _channel_knobs(i, ch, protocols)
    for i, agent in enumerate(scenario.agents):
        out += _worker_knobs(i, agent)
        out += _settings_knobs(i, agent)
    for i, load in enumerate(scenario.workload):
        out += _rate_knobs(i, load)
    for i, fault in enumerate(scenario.faults):
        out += _fault_knobs(i, fault)
    return out


def _channel_knobs(i: int, ch: Channel, protocols: tuple[str, ...]) -> list[Knob]:
    """Channel `i`'s timeout, protocol, breaker thresholds and retry attempts."""
    name = f"{ch.src} → {ch.dst}"
    out = [
        Knob(
            f"channels.{i}.timeout",
            "Timeouts",
            f"{name} (s)",
            ch.timeout,
            "optional_seconds",
            help="Seconds the caller waits for a response; empty: no timeout.",
        )
    ]
    if len(protocols) > 1:  # a choice only once the model offers more than one
        out.append(
            Knob(
                f"channels.{i}.protocol",
                "Protocols",
                name,
                ch.protocol,
                "choice",
                options=protocols,
            )
        )
    # Resilience settings exist only where the scenario sets them (a channel without a
    # breaker has none to tune); read with getattr, as older scenario models lack the
    # fields.
    breaker = getattr(ch, "breaker", None)
    if breaker is not None:
        out += [
            Knob(
                f"channels.{i}.breaker.{field}",
                "Breakers",
                f"{name} {field.replace('_', ' ')}{unit}",
                getattr(breaker, field),
                kind,
            )
            for field, unit, kind in BREAKER_FIELDS
            if hasattr(breaker, field)
        ]
    retry = getattr(ch, "retry", None)
    if retry is not None and hasattr(retry, "max_attempts"):
        out.append(
            Knob(
                f"channels.{i}.retry.max_attempts",
                "Retries",
                f"{name} attempts",
                retry.max_attempts,
                "count",
                help="Attempts at most, the first included.",
            )
        )
    return out


def _worker_knobs(i: int, agent: Agent) -> list[Knob]:
    """Agent `i`'s worker count, when it is a service or a plugin role."""
    if agent.role != "service" and plugin_role(agent.role) is None:
        return []
    return [
        Knob(
            f"agents.{i}.workers",
            "Workers",
            agent.id,
            agent.workers,
            "count",
            help="Requests the service works on at once.",
        )
    ]


def _settings_knobs(i: int, agent: Agent) -> list[Knob]:
    """A plugin role's settings block, one knob per number, whole number, flag or
    choice of its model (its own model validates what the knobs set)."""
    entry = plugin_role(agent.role)
    if entry is None or entry.settings is None:
        return []
    try:
        values = entry.settings.model_validate(agent.settings or {})
    except ValueError:  # the scenario's validation already says why
        return []
    out = []
    for name, info in entry.settings.model_fields.items():
        value = getattr(values, name)
        choices = typing.get_args(info.annotation) if _is_literal(info.annotation) else ()
        if isinstance(value, bool):
            kind = "flag"
        elif isinstance(value, int):
            kind = "integer"
        elif isinstance(value, float):
            kind = "number"
        elif choices and isinstance(value, str) and value in choices:
            kind = "choice"
        else:
            continue  # lists, nested models: the editor's text is the place for those
        out.append(
            Knob(
                f"agents.{i}.settings.{name}",
                "Role settings",
                f"{agent.id} {name.replace('_', ' ')}",
                value,
                kind,
                options=tuple(str(c) for c in choices),
                help=info.description or f"A setting of role '{agent.role}' (its settings block).",
            )
        )
    return out


def _is_literal(annotation: object) -> bool:
    """True for a `typing.Literal[...]` annotation."""
    return typing.get_origin(annotation) is typing.Literal


def _rate_knobs(i: int, load: Workload) -> list[Knob]:
    """Workload `i`'s arrival rates (one, or several for spikes and ramps)."""
    arrivals = load.arrivals
    out = []
    for name in RATE_FIELDS:
        if hasattr(arrivals, name):
            suffix = "" if name == "rate" else f" {name.replace('_', ' ')}"
            out.append(
                Knob(
                    f"workload.{i}.arrivals.{name}",
                    "Offered load",
                    f"{load.src} → {load.dst}{suffix} (/s)",
                    float(getattr(arrivals, name)),
                    "rate",
                    help=f"Requests per second ({arrivals.kind} arrivals).",
                )
            )
    return out


def _fault_knobs(i: int, fault: Fault) -> list[Knob]:
    """Fault `i` switched on or off, and its window's start and end."""
    name = f"{i}: {fault.kind}"
    return [
        Knob(f"faults.{i}.{ENABLED}", "Faults", name, True, "enabled"),
        Knob(f"faults.{i}.start", "Faults", f"{name} start (s)", fault.start, "seconds"),
        Knob(
            f"faults.{i}.end",
            "Faults",
            f"{name} end (s)",
            fault.end,
            "optional_seconds",
            help="Empty: the fault lasts to the end of the run.",
        ),
    ]


def changed(knob_list: list[Knob], values: Mapping[str, Any]) -> dict[str, Any]:
    """The knobs whose value differs from the scenario's: {path: new value}."""
    out = {}
    for knob in knob_list:
        if knob.path not in values:
            continue
        new = values[knob.path]
        if new != knob.value and not (
            _is_number(new) and _is_number(knob.value) and float(new) == float(knob.value)
        ):
            out[knob.path] = new
    return out


def apply(data: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the raw scenario `data` with `overrides` ({path: value}) set.

    A fault whose `enabled` override is False is removed (after every other override,
    so the indices in the paths still name the file's faults).
    """
    out = copy.deepcopy(data)
    removed: list[int] = []
    for path, value in overrides.items():
        parts = path.split(".")
        if parts[-1] == ENABLED:
            if not value and parts[0] == "faults":
                removed.append(int(parts[1]))
            continue
        node: Any = out
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        key = parts[-1]
        if isinstance(node, list):
            node[int(key)] = value
        else:
            node[key] = value
    if removed and isinstance(out.get("faults"), list):
        out["faults"] = [f for i, f in enumerate(out["faults"]) if i not in set(removed)]
    return out


def command_line(name: str, seed: int, overrides: Mapping[str, Any]) -> str:
    """The CLI command that reproduces a built-in scenario with these overrides.

    Removed faults have no `--set` form; they are left out (the page says so).
    """
    parts = [f".venv/bin/python -m sim run {name} --seed {seed}"]
    for path, value in overrides.items():
        if path.endswith("." + ENABLED):
            continue
        shown = "null" if value is None else value
        parts.append(f"--set {path}={shown}")
    return " ".join(parts)


def _is_number(value: Any) -> bool:
    """True for an int or float that is not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def differences(a: Scenario, b: Scenario) -> tuple[list[str], list[str]]:
    """The knobs two scenarios set differently, as `label value` phrases for each.

    Two runs of one scenario that differ by a knob (a timeout, a rate) are told apart
    by these. Knobs only one of the scenarios has (another scenario's channels) are
    left out: the scenarios' names already differ.
    """
    mine = {k.path: k for k in knobs(a)}
    theirs = {k.path: k for k in knobs(b)}
    left: list[str] = []
    right: list[str] = []
    for path, knob in mine.items():
        other = theirs.get(path)
        if other is None or other.label != knob.label or not changed([knob], {path: other.value}):
            continue
        left.append(f"{knob.label} {_shown(knob.value)}")
        right.append(f"{other.label} {_shown(other.value)}")
    return left, right


def _shown(value: Any) -> str:
    """A knob's value in a label: `none` for no value, numbers without trailing zeros."""
    if value is None:
        return "none"
    if _is_number(value):
        return f"{float(value):g}"
    return str(value)
