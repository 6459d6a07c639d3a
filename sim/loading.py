"""Reading scenario files: built-in names, YAML and JSON, overrides, and error sentences.

Every user error becomes a `ScenarioError` holding one sentence per problem, formatted
as `FILE: field.path: what is wrong`, so the CLI and the app can print them as they are.
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sim.scenario import Scenario, reference_errors

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"

# Tags of discriminated unions: pydantic puts them in an error's location, a user
# reading `faults.0.add` has no use for them.
_DIST_TAGS = {"constant", "uniform", "normal", "exponential", "lognormal", "pareto"}
_UNION_TAGS = {
    "faults": {
        "latency",
        "loss",
        "duplicate",
        "partition",
        "crash",
        "pause",
        "error",
        "overload",
        "poison",
    },
    "arrivals": {"poisson", "constant", "bursts", "ramp", "spike"},
}


# Whole-model checks raise without a field; this says which field each one is about.
_MODEL_CHECK_FIELDS = {
    "the fault window ends before it starts": "end",
    "end must not be before start": "end",
    "spike_end must not be before spike_start": "spike_end",
    "p99 must be greater than mean": "p99",
    "high must be at least low": "high",
}


class ScenarioError(Exception):
    """A scenario that cannot be read or is invalid; `lines` holds one sentence each."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def builtin_names() -> list[str]:
    """Names of the built-in scenarios, sorted."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


def builtin_path(name: str) -> Path:
    """The file of a built-in scenario."""
    return SCENARIO_DIR / f"{name}.yaml"


def resolve(source: str | Path) -> Path:
    """The file a CLI argument names: a path, or else a built-in scenario's name."""
    path = Path(source)
    if path.is_file():
        return path
    if isinstance(source, str) and builtin_path(source).is_file():
        return builtin_path(source)
    raise ScenarioError(
        [f"no scenario file or built-in scenario named '{source}' (see 'python -m sim list')"]
    )


def parse_text(text: str, label: str) -> Any:
    """Parse YAML (a superset of JSON) safely; a syntax error names its line."""
    try:
        return yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "unreadable"
        raise ScenarioError([f"{label}: {line}invalid YAML: {problem}"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{label}: invalid YAML: {exc}"]) from None


def read_data(path: Path) -> Any:
    """The raw data of a scenario file (YAML or JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([f"{path}: no such file"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioError([f"{path}: cannot be read ({exc.__class__.__name__})"]) from None
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScenarioError([f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}"]) from None
    return parse_text(text, str(path))


def validate(data: Any, label: str) -> Scenario:
    """A Scenario from raw data, or a ScenarioError listing every problem."""
    if not isinstance(data, dict):
        raise ScenarioError([f"{label}: the scenario must be a mapping of sections"])
    problems: list[tuple[str, str]] = []
    scenario = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        problems.extend(_describe(err) for err in exc.errors())
    for problem in reference_errors(data):
        if problem not in problems:
            problems.append(problem)
    if problems or scenario is None:
        raise ScenarioError([f"{label}: {where}: {what}" for where, what in problems])
    return scenario


def load(source: str | Path, overrides: list[str] | None = None) -> Scenario:
    """Load and validate a scenario by path or built-in name, with `path=value` overrides."""
    path = resolve(source)
    data = read_data(path)
    if overrides:
        data = apply_overrides(data, overrides)
    return validate(data, str(path))


def from_text(text: str, label: str = "scenario") -> Scenario:
    """Validate a scenario given as YAML or JSON text (the app's editor)."""
    return validate(parse_text(text, label), label)


def apply_overrides(data: Any, overrides: list[str]) -> Any:
    """Set dotted paths (`agents.1.workers=8`) in raw data; values are YAML scalars."""
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ScenarioError([f"--set {item}: expected path=value"])
        value = yaml.safe_load(raw) if raw else ""
        set_path(data, key, value)
    return data


def set_path(data: Any, key: str, value: Any) -> None:
    """Set one dotted path in nested dicts and lists, creating mappings on the way."""
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError([f"--set {key}: '{part}' is not an index of that list"])
            if last:
                node[int(part)] = value
            else:
                node = node[int(part)]
        elif isinstance(node, dict):
            if last:
                node[part] = value
            else:
                node = node.setdefault(part, {})
        else:
            raise ScenarioError(
                [f"--set {key}: '{part}' goes inside a value that is not a section"]
            )


def _describe(err: Any) -> tuple[str, str]:
    loc = _clean_loc(err["loc"])
    path = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    if kind == "extra_forbidden":
        parent, name = loc[:-1], str(loc[-1])
        known = _fields_at(parent)
        hint = difflib.get_close_matches(name, known, n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
        return path, f"unknown field '{name}'{suggestion}"
    if kind == "missing":
        return path, "required field is missing"
    if kind == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return (
            path,
            f"unknown {ctx.get('discriminator', 'kind')} {ctx.get('tag')!r}; expected one of {ctx.get('expected_tags')}",
        )
    if kind == "union_tag_not_found":
        return path, f"missing {err.get('ctx', {}).get('discriminator', 'kind')}"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
        # Whole-model checks name the field they are about.
        field = _MODEL_CHECK_FIELDS.get(msg)
        if field:
            path = f"{path}.{field}"
    return path, msg[0].lower() + msg[1:] if msg else msg


def _clean_loc(loc: tuple[Any, ...]) -> list[Any]:
    out: list[Any] = []
    for i, part in enumerate(loc):
        prev2 = loc[i - 2] if i >= 2 else None
        if isinstance(part, str):
            if part in _DIST_TAGS and i > 0 and not isinstance(loc[i - 1], int):
                continue
            in_union = isinstance(prev2, str) and part in _UNION_TAGS.get(prev2, ())
            if in_union and isinstance(loc[i - 1], int):
                continue
            if part in _UNION_TAGS["arrivals"] and i > 0 and loc[i - 1] == "arrivals":
                continue
            if part.startswith("function-") or part in ("list[list[str]]",):
                continue
        out.append(part)
    return out


def _fields_at(loc: list[Any]) -> list[str]:
    """The field names allowed at a location, read off the JSON Schema."""
    schema = Scenario.model_json_schema(by_alias=True)
    defs = schema.get("$defs", {})

    def deref(node: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in node:
            node = defs[node["$ref"].split("/")[-1]]
        return node

    def branches(node: dict[str, Any]) -> list[dict[str, Any]]:
        node = deref(node)
        found = [node] if "properties" in node or "items" in node else []
        for key in ("anyOf", "oneOf"):
            for branch in node.get(key, []):
                found.extend(branches(branch))
        return found

    nodes = [schema]
    for part in loc:
        nxt: list[dict[str, Any]] = []
        for node in nodes:
            for branch in branches(node):
                if isinstance(part, int) and "items" in branch:
                    nxt.append(branch["items"])
                elif isinstance(part, str) and part in branch.get("properties", {}):
                    nxt.append(branch["properties"][part])
        nodes = nxt
    names: list[str] = []
    for node in nodes:
        for branch in branches(node):
            names.extend(n for n in branch.get("properties", {}) if n not in names)
    return names
