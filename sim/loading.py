"""Reading scenario files: built-in names, YAML and JSON, overrides, and error sentences.

Every user error becomes a `ScenarioError` holding one sentence per problem, formatted
as `FILE: field.path: what is wrong`, so the CLI and the app can print them as they are.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from sim import sizing
from sim.scenario import Scenario, quoted, reference_errors

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
        "overloaded",
        "poison",
        "breaker",
    },
    "arrivals": {"poisson", "constant", "bursts", "ramp", "spike"},
}


# Human wording of the patterns the scenario model uses.
_PATTERNS = {
    r"^[A-Za-z0-9_.-]+$": "must use only letters, digits, '_', '.' and '-'",
    r"^[A-Za-z0-9_.:-]+$": "must use only letters, digits, '_', '.', ':' and '-'",
}

# What pydantic's type errors mean, said the way a scenario author thinks of the value.
_TYPE_MESSAGES = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a finite number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping of fields",
    "model_type": "must be a mapping of fields",
    "model_attributes_type": "must be a mapping of fields",
}


# The YAML mistakes people make most, and what to do about them.
_YAML_HINTS = {
    "'\\t'": "; indent with spaces, not tabs",
    "mapping values are not allowed here": (
        "; check the indentation, or quote a value that contains ': '"
    ),
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


def is_file(path: Path) -> bool:
    """`path.is_file()`, False for a path the system cannot even look up (a name past
    255 bytes raises ENAMETOOLONG rather than answering)."""
    try:
        return path.is_file()
    except OSError:
        return False


def is_dir(path: Path) -> bool:
    """`path.is_dir()`, False for a path the system cannot even look up."""
    try:
        return path.is_dir()
    except OSError:
        return False


def resolve(source: str | Path) -> Path:
    """The file a CLI argument names: a path, or else a built-in scenario's name."""
    path = Path(source)
    if is_file(path):
        return path
    if isinstance(source, str) and is_file(builtin_path(source)):
        return builtin_path(source)
    if not str(source).strip():
        # Path("") is the current folder: say what is missing, not "is a directory".
        raise ScenarioError(
            ["the scenario's name is empty: give a scenario file or a built-in scenario's "
             "name (see 'python -m sim list')"]
        )  # fmt: skip
    if is_dir(path):
        raise ScenarioError([f"{source}: is a directory, not a scenario file"])
    if isinstance(source, Path) or "/" in source or path.suffix in (".yaml", ".yml", ".json"):
        raise ScenarioError([f"{source}: no such file"])
    hint = difflib.get_close_matches(source, builtin_names(), n=1)
    guess = f"; did you mean '{hint[0]}'?" if hint else ""
    raise ScenarioError(
        [
            f"no scenario file or built-in scenario named {quoted(source)}{guess} "
            "(see 'python -m sim list')"
        ]
    )


_MERGE_TAG = "tag:yaml.org,2002:merge"


class _UniqueKeys:
    """A safe loader's mappings refuse a key written twice.

    YAML forbids it, yet PyYAML keeps the last value silently: a second `duration:` at
    the end of a file would quietly replace the first. Keys merged in with `<<` may be
    overridden, as YAML intends.
    """

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)  # type: ignore[attr-defined]
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:
                    continue  # an unhashable key: the constructor says so below
                if duplicate:
                    raise yaml.constructor.ConstructorError(
                        "while constructing a mapping",
                        node.start_mark,
                        f"found the key '{key}' twice; a key may appear once in a mapping",
                        key_node.start_mark,
                    )
        return super().construct_mapping(node, deep)  # type: ignore[misc]


class _SafeLoader(_UniqueKeys, yaml.SafeLoader):
    """`yaml.SafeLoader`, refusing duplicate keys."""


# libyaml's parser, when PyYAML was built with it: three times faster on a large file
# (3.7 MB: 11 s instead of 35 s). Its error messages differ, so a file it refuses is
# parsed again by the pure-Python parser, whose wording the hints below know.
_FAST_LOADER: Any = (
    type("_FastSafeLoader", (_UniqueKeys, yaml.CSafeLoader), {})
    if hasattr(yaml, "CSafeLoader")
    else None
)


def parse_text(text: str, label: str) -> Any:
    """Parse YAML (a superset of JSON) safely; a syntax error names its line."""
    if _FAST_LOADER is not None:
        try:
            return yaml.load(text, Loader=_FAST_LOADER)  # CSafeLoader: safe
        except (yaml.YAMLError, RecursionError, ValueError):
            pass  # said below, in the pure-Python parser's words
    try:
        return yaml.load(text, Loader=_SafeLoader)  # a SafeLoader: safe
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f"line {mark.line + 1}: " if mark is not None else ""
        problem = exc.problem or exc.context or "unreadable"
        # The context says what was open when it went wrong, e.g. an unclosed `{`
        # whose error is only noticed at the end of the file.
        context = ""
        opened = exc.context_mark
        if exc.problem and exc.context and opened is not None and opened.line != mark.line:
            context = f" ({exc.context} that starts on line {opened.line + 1})"
        hint = next((h for key, h in _YAML_HINTS.items() if key in problem), "")
        problem = _shorten(problem)  # it may quote a key of thousands of characters
        raise ScenarioError([f"{label}: {line}invalid YAML: {problem}{context}{hint}"]) from None
    except yaml.YAMLError as exc:
        raise ScenarioError([f"{label}: invalid YAML: {exc}"]) from None
    except (RecursionError, ValueError) as exc:
        raise ScenarioError([f"{label}: {_unreadable(exc)}"]) from None


def read_data(path: Path) -> Any:
    """The raw data of a scenario file (YAML or JSON)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([f"{path}: no such file"]) from None
    except UnicodeDecodeError:
        raise ScenarioError(
            [f"{path}: is not UTF-8 text (a binary file, or another encoding), so it cannot "
             "be a scenario file"]
        ) from None  # fmt: skip
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot be read ({exc.__class__.__name__})"]) from None
    if path.suffix == ".json":
        try:
            return json.loads(text, object_pairs_hook=_unique_pairs)
        except json.JSONDecodeError as exc:
            msg = exc.msg[:1].lower() + exc.msg[1:]
            raise ScenarioError([f"{path}: line {exc.lineno}: invalid JSON: {msg}"]) from None
        except _DuplicateKey as exc:
            raise ScenarioError([f"{path}: invalid JSON: {exc}"]) from None
        except (RecursionError, ValueError) as exc:
            raise ScenarioError([f"{path}: {_unreadable(exc)}"]) from None
    return parse_text(text, str(path))


class _DuplicateKey(ValueError):
    """A JSON object names one member twice."""


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object's members, refusing a name given twice (the last would win)."""
    mapping: dict[str, Any] = {}
    for key, value in pairs:
        if key in mapping:
            raise _DuplicateKey(f"found the key '{key}' twice in one object")
        mapping[key] = value
    return mapping


def _unreadable(exc: BaseException) -> str:
    """Why a file that parses in principle cannot be read: nesting or a huge number."""
    if isinstance(exc, RecursionError):
        return "nested too deeply to read (a scenario is a few levels deep)"
    if "integer string conversion" in str(exc):
        return "holds a number with thousands of digits, which no setting needs"
    return f"cannot be read ({exc})"


def validate(data: Any, label: str) -> Scenario:
    """A Scenario from raw data, or a ScenarioError listing every problem."""
    if data is None:
        raise ScenarioError(
            [f"{label}: the scenario is empty; it needs at least name, duration and agents"]
        )
    if not isinstance(data, dict):
        kind = "a list" if isinstance(data, list) else f"the single value {_show(data)}"
        raise ScenarioError(
            [
                f"{label}: the scenario must be a mapping of sections "
                f"(name, duration, agents, ...), not {kind}"
            ]
        )
    # Caps that must hold before anything walks the data: an alias bomb or a list of a
    # million items would make every later pass hang.
    early = sizing.raw_problems(data)
    if early:
        raise ScenarioError([_line(label, where, what) for where, what in early])
    problems: list[tuple[str, str]] = non_finite(data) + _not_numbers(data)
    said = set(problems)  # a set beside the list: a file may have thousands of problems
    scenario = None
    try:
        scenario = Scenario.model_validate(data)
    except ValidationError as exc:
        # A number that is not finite is said once, not also as out of its bounds.
        where_said = {where for where, _ in problems}
        for err in exc.errors():
            problem = _describe(err, data)
            if problem not in said and problem[0] not in where_said:
                problems.append(problem)
                said.add(problem)
    if scenario is not None:
        # Strings pydantic read as numbers ("inf", "nan") are only infinite once read
        # (each is said once already: a string where a number belongs).
        where_said = {where for where, _ in problems}
        for problem in non_finite(scenario.model_dump(mode="python", by_alias=True)):
            if problem not in said and problem[0] not in where_said:
                problems.append(problem)
                said.add(problem)
    for problem in _reference_errors(data, refused=scenario is None):
        if problem not in said:
            problems.append(problem)
            said.add(problem)
    if scenario is not None and not problems:
        problems.extend(_over_caps(scenario))
    if problems or scenario is None:
        problems.sort(key=_file_order(data))
        raise ScenarioError([_line(label, where, what) for where, what in problems])
    return scenario


def _reference_errors(data: dict[str, Any], refused: bool) -> list[tuple[str, str]]:
    """`reference_errors`, which walks the raw data whatever its shape.

    When pydantic has refused the data, a walker meeting a shape it did not expect (a
    list where a name belongs) finds nothing pydantic has not already said; a crash
    there must not hide what pydantic said. On data pydantic accepted it is a bug, and
    raises.
    """
    try:
        return reference_errors(data)
    except (TypeError, ValueError, KeyError, AttributeError, IndexError):
        if not refused:
            raise
        return []


# A number of more digits than this is said in scientific notation, and a part of a
# field's path longer than _PART_CHARS is cut (a name the user wrote is cut where it is
# quoted, by `sim.scenario.quoted`): a 400-digit number or a 5,000-character key makes a
# line no one reads.
_DIGITS = 40
_PART_CHARS = 40
_LONG_NUMBER = re.compile(
    rf"(?<![\w.,])-?(?:\d{{{_DIGITS + 1},}}|\d{{1,3}}(?:,\d{{3}}){{{_DIGITS // 3},}})(?![\w,])"
)


def _line(label: str, where: str, what: str) -> str:
    """One problem's sentence, with long values the user wrote shortened."""
    parts = [p if len(p) <= _PART_CHARS else p[: _PART_CHARS - 3] + "..." for p in where.split(".")]
    return f"{label}: {'.'.join(parts)}: {_shorten(what)}"


def _shorten(text: str) -> str:
    """`text` with each long number in scientific notation."""
    return _LONG_NUMBER.sub(lambda m: _scientific(m.group(0)), text)


def _scientific(digits: str) -> str:
    """An integer's digits in scientific notation, three significant figures."""
    digits = digits.replace(",", "")  # 1,000,000 as the caps write it
    sign, body = ("-", digits[1:]) if digits.startswith("-") else ("", digits)
    if len(body) < 300:
        return f"{float(int(digits)):.3g}"
    # Past what a float holds (or int() reads: 4,300 digits): round the leading digits
    # by hand.
    lead = round(int(body[:4]) / 10)  # three figures, rounded on the fourth
    exponent = len(body) - 1 + (lead >= 1000)
    lead = lead // 10 if lead >= 1000 else lead
    return f"{sign}{lead / 100:.3g}e+{exponent}"


def _over_caps(scenario: Scenario) -> list[tuple[str, str]]:
    """The caps of `sim.limits` a valid scenario breaks: its fields, then its work.

    The work is estimated only once the fields are within their caps (a duration of
    1e300 s makes every estimate infinite, and says nothing the field's cap does not).
    """
    problems = sizing.field_problems(scenario)
    return problems or sizing.work_problems(scenario)


def non_finite(data: Any, where: str = "") -> list[tuple[str, str]]:
    """Every number in `data` that is infinite or not a number, as (path, problem).

    A scenario's numbers are all finite: `duration: .inf` or `rate: .inf` would pass the
    models' bounds (infinity is >= 0) and then never end the run. Strings that pydantic
    would read as numbers ("inf", "nan") are caught by looking at the validated model.
    """
    found: list[tuple[str, str]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            found.extend(non_finite(value, f"{where}.{key}" if where else str(key)))
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found.extend(non_finite(value, f"{where}.{index}" if where else str(index)))
    elif isinstance(data, float) and not math.isfinite(data):
        found.append((where, f"must be a finite number, got {data}"))
    return found


def _not_numbers(data: Any) -> list[tuple[str, str]]:
    """Every true, false or string where the format wants a number, as (path, problem).

    Pydantic reads `true` as 1 for a number (`seed: true` would run with seed 1), and a
    string of digits as its number (`timeout: "5"`). The format's times and counts are
    numbers (DESIGN.md: all times are simulated seconds, floats); an author who quoted
    one may have meant something else, so it is refused rather than read. (A string
    that is no number at all, "5s", gets pydantic's own sentence.)
    """
    found: list[tuple[str, str]] = []
    stack: list[tuple[list[Any], Any]] = [([], data)]
    while stack:
        loc, node = stack.pop()
        if isinstance(node, dict):
            stack.extend(([*loc, key], value) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend(([*loc, i], value) for i, value in enumerate(node))
        elif isinstance(node, bool) or (isinstance(node, str) and _reads_as_number(node)):
            types = {leaf.get("type") for n in _schema_at(loc, data) for leaf in _leaves(n)}
            if types and types <= {"number", "integer", "null"} and types - {"null"}:
                kind = "a number" if "number" in types else "a whole number"
                where = ".".join(str(part) for part in loc)
                if isinstance(node, bool):
                    found.append((where, f"must be {kind}, got {_show(node)}"))
                else:
                    found.append(
                        (where, f"must be {kind}, got the string {_show(node)} (write it unquoted)")
                    )
    return found


def _reads_as_number(text: str) -> bool:
    """Whether pydantic would read `text` as a number ("5", " 1e3", "inf")."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def _file_order(data: dict[str, Any]) -> Any:
    # Problems in the order of the file: sections as they appear in it (a missing
    # section first), items in list order. The sort is stable, so the problems of one
    # item keep pydantic's field order.
    keys = [str(key) for key in data]

    def key(problem: tuple[str, str]) -> tuple[int, int]:
        head, _, rest = problem[0].partition(".")
        section = keys.index(head) if head in keys else -1
        index, _, _ = rest.partition(".")
        return section, int(index) if index.isdigit() else -1

    return key


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
    if not isinstance(data, dict):
        return data  # validate() reports that the file is not a scenario
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ScenarioError([f"--set {item}: expected PATH=VALUE, e.g. agents.1.workers=8"])
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            raise ScenarioError(
                [f"--set {item}: the value '{raw}' is not valid YAML (quote it to set a string)"]
            ) from None
        set_path(data, key, value)
    return data


def set_path(data: Any, key: str, value: Any) -> None:
    """Set one dotted path in nested dicts and lists, creating mappings on the way."""
    parts = key.split(".")
    node = data
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        where = ".".join(parts[:depth]) or "the scenario"
        if not part:
            raise ScenarioError([f"--set {key}: the path has an empty part"])
        if isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise ScenarioError(
                    [
                        f"--set {key}: {where} is a list of {len(node)}, so '{part}' must be "
                        f"an index from 0 to {len(node) - 1}"
                    ]
                )
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
                [f"--set {key}: {where} is the value {_show(node)}, not a section with fields"]
            )


def _describe(err: Any, data: Any) -> tuple[str, str]:
    """(field path, sentence) for one pydantic error on the raw `data`."""
    loc = _clean_loc(err["loc"])
    path = ".".join(str(p) for p in loc) or "(top level)"
    kind = err["type"]
    ctx = err.get("ctx") or {}
    got = f", got {_show(err.get('input'))}" if "input" in err else ""
    if kind == "extra_forbidden":
        parent, name = loc[:-1], str(loc[-1])
        hint = difflib.get_close_matches(name, _fields_at(parent, data), n=1)
        suggestion = f"; did you mean '{hint[0]}'?" if hint else ""
        return path, f"unknown field {quoted(name)}{suggestion}"
    if kind == "missing":
        return path, "required field is missing"
    if kind == "union_tag_invalid":
        key = str(ctx.get("discriminator", "kind")).strip("'")
        tag = quoted(ctx.get("tag"))
        return path, f"unknown {key} {tag}; expected one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        key = str(ctx.get("discriminator", "kind")).strip("'")
        tags = _tags_at(loc, key)
        expected = f"; expected one of {', '.join(repr(t) for t in tags)}" if tags else ""
        return path, f"'{key}' is missing{expected}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return path, _bounds_message(loc, data, kind, ctx) + got
    if kind == "literal_error":
        return path, f"must be {ctx.get('expected')}{got}"
    if kind in ("float_type", "float_parsing") and _is_int(err.get("input")):
        # A whole number is a number: this one is past what a float holds (~1.8e308).
        return path, f"is too large a number{got}"
    if kind in _TYPE_MESSAGES:
        return path, _TYPE_MESSAGES[kind] + got
    if kind == "string_pattern_mismatch":
        pattern = str(ctx.get("pattern"))
        return path, _PATTERNS.get(pattern, f"must match the pattern {pattern}") + got
    if kind == "string_too_short":
        return path, "must not be empty"
    if kind == "too_short":
        n = ctx.get("min_length", 1)
        return path, f"must list at least {n} item{'s' if n != 1 else ''}"
    if kind == "value_error":
        error = ctx.get("error")
        field = getattr(error, "field", None)
        if field:
            path = f"{path}.{field}" if loc else field
        return path, str(error) if error is not None else err["msg"]
    msg = err["msg"]
    return path, (msg[0].lower() + msg[1:] if msg else kind) + got


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _show(value: Any) -> str:
    """A value as it would appear in the scenario file, short."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return str(value)


def _bounds_message(loc: list[Any], data: Any, kind: str, ctx: dict[str, Any]) -> str:
    # A field with both bounds (a probability) is clearer stated as a range.
    low = high = None
    for node in _schema_at(loc, data):
        for branch in _leaves(node):
            if "maximum" in branch and "minimum" in branch:
                low, high = branch["minimum"], branch["maximum"]
    if low is not None and high is not None:
        return f"must be between {_num(low)} and {_num(high)}"
    bound = next(iter(ctx.values()), "?")
    words = {
        "greater_than": "must be greater than",
        "greater_than_equal": "must be at least",
        "less_than": "must be less than",
        "less_than_equal": "must be at most",
    }
    return f"{words[kind]} {_num(bound)}"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else str(value)


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


@functools.cache
def _schema() -> dict[str, Any]:
    return Scenario.model_json_schema(by_alias=True)


def _deref(node: dict[str, Any]) -> dict[str, Any]:
    defs = _schema().get("$defs", {})
    while "$ref" in node:
        node = defs[node["$ref"].split("/")[-1]]
    return node


def _leaves(node: dict[str, Any]) -> list[dict[str, Any]]:
    """The alternatives of a schema node, with unions (anyOf, oneOf) flattened."""
    node = _deref(node)
    alternatives = node.get("anyOf", []) + node.get("oneOf", [])
    if not alternatives:
        return [node]
    found: list[dict[str, Any]] = []
    for branch in alternatives:
        found.extend(_leaves(branch))
    return found


def _matching(branches: list[dict[str, Any]], raw: Any) -> list[dict[str, Any]]:
    """The union branches whose tag (`kind`, `dist`) agrees with the raw data, if any."""
    if not isinstance(raw, dict) or len(branches) < 2:
        return branches
    chosen = [
        branch
        for branch in branches
        if all(
            raw.get(name, spec["const"]) == spec["const"]
            for name, spec in branch.get("properties", {}).items()
            if "const" in spec
        )
    ]
    return chosen or branches


def _schema_at(loc: list[Any], data: Any = None) -> list[dict[str, Any]]:
    """The schema nodes a location can be, narrowed by the tags found in `data`."""
    nodes = [_schema()]
    raw = data
    for part in loc:
        nxt: list[dict[str, Any]] = []
        for node in nodes:
            for branch in _matching(_leaves(node), raw):
                if isinstance(part, int) and "items" in branch:
                    nxt.append(branch["items"])
                elif isinstance(part, str) and part in branch.get("properties", {}):
                    nxt.append(branch["properties"][part])
        nodes = nxt
        raw = _child(raw, part)
    return nodes


def _child(raw: Any, part: Any) -> Any:
    if isinstance(raw, dict):
        return raw.get(part)
    if isinstance(raw, list) and isinstance(part, int) and 0 <= part < len(raw):
        return raw[part]
    return None


def _fields_at(loc: list[Any], data: Any = None) -> list[str]:
    """The field names allowed at a location, read off the JSON Schema."""
    raw = data
    for part in loc:
        raw = _child(raw, part)
    names: list[str] = []
    for node in _schema_at(loc, data):
        for branch in _matching(_leaves(node), raw):
            names.extend(n for n in branch.get("properties", {}) if n not in names)
    return names


def _tags_at(loc: list[Any], key: str) -> list[str]:
    """The values the tag `key` may take at a location (the kinds of a union)."""
    tags: list[str] = []
    for node in _schema_at(loc):
        for branch in _leaves(node):
            const = branch.get("properties", {}).get(key, {}).get("const")
            if const is not None and const not in tags:
                tags.append(const)
    return tags
