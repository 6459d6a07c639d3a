"""Plugin roles: agent behaviour written in Python, registered under a role name.

A scenario names roles; besides the built-in ones (`sim.agents.registry`) it may name a
role that Python code registered here, with `register_role(name, cls, settings=Model)`
or the `@role(name, settings=Model)` decorator (how to write such a class:
`sim.agents.api` and docs/agents.md).

The registry is configuration, not simulation state: it maps role names to classes and
settings models, as an import table does, and holds nothing of any run. It is
process-wide on purpose, so that a plugin module imported once (`--plugin MODULE`,
`SWITCHBOARD_PLUGINS`) serves every run after it. Registering a name again replaces it.
A scenario file never names code to import: only the person starting the CLI or the
dashboard does (`load_plugins`).
"""

from __future__ import annotations

import importlib
import inspect
import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel

# The roles of `sim.agents.registry`, which a plugin may not replace. Listed here too
# because the scenario model checks role names and may not import the agents.
BUILTIN_ROLES = ("client", "service", "broker", "orchestrator", "worker", "registry", "llm")
# The built-in roles written on the plugin API (`sim.agents.plugin` hosts them, as it
# hosts a plugin's): calls to their agents carry bodies both ways, as to plugin roles.
HOSTED_ROLES = ("orchestrator", "worker", "registry")
# The environment variable the dashboard reads its plugin modules from (comma-separated).
PLUGINS_ENV = "SWITCHBOARD_PLUGINS"

T = TypeVar("T", bound=type)


class PluginError(Exception):
    """A plugin that cannot be registered or imported; the message is one sentence."""


@dataclass(frozen=True)
class PluginRole:
    """A registered role: its name, the class that behaves as it, its settings model."""

    name: str
    cls: type
    settings: type[BaseModel] | None = None


_ROLES: dict[str, PluginRole] = {}


def register_role(name: str, cls: type, settings: type[BaseModel] | None = None) -> PluginRole:
    """Register `cls` as the behaviour of role `name`; `settings` validates the `settings:`
    block of every agent of that role (none allowed without it)."""
    if not isinstance(name, str) or not name or not name.replace("-", "_").isidentifier():
        raise PluginError(
            f"a role name must be a word of letters, digits, '_' or '-', got {name!r}"
        )
    if name in BUILTIN_ROLES:
        raise PluginError(f"'{name}' is a built-in role; give the plugin role another name")
    if not inspect.isclass(cls):
        raise PluginError(f"role '{name}' must be a class, got {cls!r}")
    if settings is not None and not (inspect.isclass(settings) and issubclass(settings, BaseModel)):
        raise PluginError(f"the settings of role '{name}' must be a pydantic model class")
    entry = PluginRole(name, cls, settings)
    _ROLES[name] = entry
    return entry


def role(name: str, settings: type[BaseModel] | None = None) -> Callable[[T], T]:
    """Class decorator: `@sim.role("planner", settings=PlannerSettings)`."""

    def register(cls: T) -> T:
        register_role(name, cls, settings)
        return cls

    return register


def unregister_role(name: str) -> None:
    """Forget the plugin role `name` (tests; nothing if it is not registered)."""
    _ROLES.pop(name, None)


def plugin_role(name: str) -> PluginRole | None:
    """The registered role `name`, or None."""
    return _ROLES.get(name)


def plugin_roles() -> list[str]:
    """The names of the registered roles, sorted."""
    return sorted(_ROLES)


def load_plugins(modules: Iterable[str]) -> list[str]:
    """Import each module (which registers its roles); the roles registered, sorted.

    An empty name is skipped; a module that cannot be imported raises PluginError with
    one sentence (its own error's last line).
    """
    for module in modules:
        module = module.strip()
        if not module:
            continue
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name is not None and module.startswith(exc.name):
                raise PluginError(
                    f"plugin module '{module}' not found (is its folder on PYTHONPATH?)"
                ) from None
            raise PluginError(f"plugin module '{module}' failed to import: {_last(exc)}") from exc
        except Exception as exc:
            raise PluginError(f"plugin module '{module}' failed to import: {_last(exc)}") from exc
    return plugin_roles()


def env_plugins(environ: dict[str, str] | os._Environ[str] | None = None) -> list[str]:
    """The plugin modules `SWITCHBOARD_PLUGINS` names (comma-separated), in order."""
    value = (environ if environ is not None else os.environ).get(PLUGINS_ENV, "")
    return [m.strip() for m in value.split(",") if m.strip()]


def _last(exc: BaseException) -> str:
    return traceback.format_exception_only(exc)[-1].strip()


def describe_settings_error(errors: list[dict[str, Any]]) -> tuple[str, str]:
    """(field path under `settings`, sentence) for the first error pydantic found in a
    plugin role's settings block."""
    err = errors[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    kind = err.get("type", "")
    if kind == "missing":
        what = "required field is missing"
    elif kind == "extra_forbidden":
        what = f"unknown field '{loc.rsplit('.', 1)[-1]}'"
    else:
        msg = str(err.get("msg", kind))
        msg = msg.removeprefix("Value error, ")
        what = msg[:1].lower() + msg[1:]
        if "input" in err and kind not in ("value_error", "assertion_error"):
            what += f", got {err['input']!r}"
    return (f"settings.{loc}" if loc else "settings"), what
