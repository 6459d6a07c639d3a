"""Message schemas: a registry of data models by (type, version), converters, built-ins.

A receiver validates what it gets against the schema the sender declared, then, if it
does not read that version, converts it along the registry's converters:

    registry = default_registry()
    verdict = registry.accept("task.result", 2, data, reads=[1])
    if verdict:                       # Accepted: verdict.data is a TaskResultV1
        ...
    else:                             # Rejected: verdict.reason is one sentence
        ...

This is how old and new agents coexist during a rolling upgrade: each lists the versions
it reads, and what cannot be converted is rejected with a reason.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from protocols.envelope import Envelope, describe_validation_error, schema_uri
from protocols.transport import Message

# A converter takes the validated data of one version and returns the next version's data,
# as a model or a dict; the registry validates what it returns.
Converter = Callable[[Any], BaseModel | dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Accepted:
    """Readable data: validated, and converted to a version the reader reads.

    `path` lists the versions it went through (just the sent one when no conversion was
    needed); `lossy` says a converter on the way dropped information.
    """

    data: BaseModel
    version: int
    path: tuple[int, ...] = ()
    lossy: bool = False
    ok: ClassVar[bool] = True

    @property
    def converted(self) -> bool:
        """Whether the data was converted from another version."""
        return len(self.path) > 1

    def __bool__(self) -> bool:
        return True


@dataclass(frozen=True, slots=True)
class Rejected:
    """Unreadable data, with the reason in one sentence (it goes to the trace / the DLQ)."""

    reason: str
    ok: ClassVar[bool] = False

    def __bool__(self) -> bool:
        return False


def _versions(versions: Iterable[int]) -> str:
    return ", ".join(f"v{v}" for v in versions)


def _either(versions: Iterable[int]) -> str:
    names = [f"v{v}" for v in versions]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


class SchemaRegistry:
    """Maps (type, version) to the pydantic model of `data`, with converters between versions."""

    def __init__(self) -> None:
        self._models: dict[tuple[str, int], type[BaseModel]] = {}
        self._uris: dict[tuple[str, int], str] = {}
        # type -> from version -> to version -> (converter, lossy)
        self._converters: dict[str, dict[int, dict[int, tuple[Converter, bool]]]] = {}
        # (type, sent version, versions read) -> conversion path, or None when none exists
        self._paths: dict[tuple[str, int, tuple[int, ...]], tuple[int, ...] | None] = {}

    # -- building ---------------------------------------------------------------------

    def register(
        self, type_: str, version: int, model: type[BaseModel], uri: str | None = None
    ) -> None:
        """Declare `model` as the schema of `type_`'s data at `version`."""
        key = (type_, version)
        if key in self._models:
            raise ValueError(f"{type_} v{version} is already registered")
        self._models[key] = model
        self._uris[key] = uri or schema_uri(type_, version)
        self._paths.clear()

    def add_converter(
        self, type_: str, source: int, target: int, convert: Converter, lossy: bool = False
    ) -> None:
        """Let `type_` data go from version `source` to `target` through `convert`.

        `lossy` marks a conversion that drops information (a newer field an older
        version has no place for).
        """
        for version in (source, target):
            if (type_, version) not in self._models:
                raise ValueError(f"{type_} v{version} is not registered")
        self._converters.setdefault(type_, {}).setdefault(source, {})[target] = (convert, lossy)
        self._paths.clear()

    # -- looking up -------------------------------------------------------------------

    def knows(self, type_: str, version: int | None = None) -> bool:
        """Whether `type_` (at `version`, if given) has a schema here."""
        if version is not None:
            return (type_, version) in self._models
        return any(t == type_ for t, _ in self._models)

    def model(self, type_: str, version: int) -> type[BaseModel]:
        """The model of `type_` data at `version` (KeyError when unknown)."""
        return self._models[(type_, version)]

    def uri(self, type_: str, version: int) -> str:
        """The schema URI of `type_` at `version` (what an envelope's `schema` says)."""
        return self._uris[(type_, version)]

    def versions(self, type_: str) -> list[int]:
        """The registered versions of `type_`, oldest first."""
        return sorted(v for t, v in self._models if t == type_)

    def types(self) -> list[str]:
        """Every registered type, sorted."""
        return sorted({t for t, _ in self._models})

    def json_schema(self, type_: str, version: int) -> dict[str, Any]:
        """The JSON Schema of `type_` data at `version`, with its URI as `$id`."""
        schema = self.model(type_, version).model_json_schema()
        return {"$id": self.uri(type_, version), **schema}

    # -- receiving --------------------------------------------------------------------

    def accept(
        self, type_: str, version: int, data: Any, reads: Iterable[int] | None = None
    ) -> Accepted | Rejected:
        """Validate `data` as `type_` v`version`, then convert it to a version in `reads`.

        `reads` lists the versions the receiver reads (None: any registered version).
        The data must be valid as the version it claims, whatever the reader reads; the
        conversion takes the shortest converter path, preferring lossless steps and then
        the newest version read.
        """
        what = f"{type_} v{version}"
        model = self._models.get((type_, version))
        if model is None:
            known = self.versions(type_)
            if not known:
                return Rejected(f"{what} cannot be read: no schema is registered for {type_}.")
            return Rejected(
                f"{what} cannot be read: it is not a known version ({_versions(known)})."
            )
        try:
            value = model.model_validate(data)
        except ValidationError as error:
            return Rejected(describe_validation_error(error, what, "data"))
        wanted = tuple(sorted(set(reads))) if reads is not None else None
        if wanted is None or version in wanted:
            return Accepted(value, version, (version,))
        if not wanted:
            return Rejected(f"{what} cannot be read by an agent that reads no version of {type_}.")
        path = self._path(type_, version, wanted)
        if path is None:
            return Rejected(
                f"{what} cannot be read by an agent that reads {_versions(wanted)}: "
                f"no converter from v{version} to {_either(wanted)}."
            )
        lossy = False
        for source, target in pairwise(path):
            convert, step_lossy = self._converters[type_][source][target]
            lossy = lossy or step_lossy
            try:
                value = self._models[(type_, target)].model_validate(convert(value))
            except (ValidationError, ValueError, TypeError, KeyError) as error:
                why = (
                    describe_validation_error(error, f"the converted {type_} v{target}", "data")
                    if isinstance(error, ValidationError)
                    else f"{str(error).rstrip('.')}."
                )
                return Rejected(f"{what} could not be converted to v{target}: {why}")
        return Accepted(value, path[-1], path, lossy)

    def accept_message(
        self, msg: Message, reads: Iterable[int] | None = None
    ) -> Accepted | Rejected:
        """`accept` for a wire message: its type, version and body."""
        return self.accept(msg.type, msg.version, msg.body, reads)

    def accept_envelope(
        self, env: Envelope, reads: Iterable[int] | None = None
    ) -> Accepted | Rejected:
        """`accept` for an envelope: its type, version and data."""
        return self.accept(env.type, env.version, env.data, reads)

    def _path(self, type_: str, version: int, wanted: tuple[int, ...]) -> tuple[int, ...] | None:
        """The best converter path from `version` to one of `wanted`, cached."""
        key = (type_, version, wanted)
        if key in self._paths:
            return self._paths[key]
        edges = self._converters.get(type_, {})
        # Breadth-first over versions in sorted order, so the search is deterministic;
        # each entry: the path so far and how many lossy steps it took.
        best: dict[int, tuple[tuple[int, ...], int]] = {version: ((version,), 0)}
        frontier = deque([version])
        while frontier:
            here = frontier.popleft()
            path, losses = best[here]
            for there in sorted(edges.get(here, {})):
                step = ((*path, there), losses + edges[here][there][1])
                seen = best.get(there)
                if seen is None:
                    best[there] = step
                    frontier.append(there)
                elif len(step[0]) == len(seen[0]) and step[1] < seen[1]:
                    best[there] = step
        reachable = [(len(best[v][0]), best[v][1], -v) for v in wanted if v in best]
        found = best[-min(reachable)[2]][0] if reachable else None
        self._paths[key] = found
        return found


# -- built-in schemas -----------------------------------------------------------------

TASK_RUN = "task.run"
TASK_RESULT = "task.result"
AGENT_CARD = "agent.card"
PROGRESS = "progress"
NEGOTIATION_BID = "negotiation.bid"

# The confidence a v1 result gets when read as v2: v1 producers do not say, and the
# midpoint claims neither trust nor distrust.
DEFAULT_CONFIDENCE = 0.5

TaskState = Literal["completed", "failed", "canceled"]


class Data(BaseModel):
    """Base of the built-in data models: unknown fields are errors, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskRun(Data):
    """`task.run` v1: ask an agent to do one task."""

    task_id: str = Field(min_length=1, description="The task's id, unique per requester.")
    skill: str = Field("", description="The skill asked for (an agent card skill id); empty: any.")
    description: str = Field("", description="What to do, in words.")
    inputs: dict[str, Any] = Field(default_factory=dict, description="Named inputs of the task.")
    priority: int = Field(0, ge=0, le=9, description="0 is the lowest.")


class TaskResultV1(Data):
    """`task.result` v1: the outcome of a task, its output as one text."""

    task_id: str = Field(min_length=1)
    status: TaskState
    output: str = ""
    error: str = ""


class Part(Data):
    """One piece of a v2 result, as an A2A Part: a text or a JSON object."""

    text: str | None = None
    data: dict[str, Any] | None = None
    media_type: str = "text/plain"

    @model_validator(mode="after")
    def _one_kind(self) -> Part:
        """A part is a text or a data object, not both and not neither."""
        if (self.text is None) == (self.data is None):
            raise ValueError("a part has exactly one of text or data")
        return self


class TaskResultV2(Data):
    """`task.result` v2: `status` is renamed `state`, the output is a list of parts, and
    the result states its confidence."""

    task_id: str = Field(min_length=1)
    state: TaskState
    parts: list[Part] = Field(default_factory=list)
    confidence: float = Field(ge=0, le=1, allow_inf_nan=False)
    error: str = ""


def result_v1_to_v2(v1: TaskResultV1) -> TaskResultV2:
    """A v1 result as v2: the output becomes a text part; the confidence is the default."""
    parts = [Part(text=v1.output)] if v1.output else []
    return TaskResultV2(
        task_id=v1.task_id,
        state=v1.status,
        parts=parts,
        confidence=DEFAULT_CONFIDENCE,
        error=v1.error,
    )


def result_v2_to_v1(v2: TaskResultV2) -> TaskResultV1:
    """A v2 result as v1 (lossy): the text parts joined by newlines; data parts and the
    confidence are dropped."""
    texts = [part.text for part in v2.parts if part.text is not None]
    return TaskResultV1(
        task_id=v2.task_id, status=v2.state, output="\n".join(texts), error=v2.error
    )


class CamelData(Data):
    """A built-in model whose JSON keys are camelCase, as A2A's are."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )


class AgentCapabilities(CamelData):
    """What an agent's transport can do (A2A AgentCapabilities)."""

    streaming: bool = False
    push_notifications: bool = False


class AgentSkill(CamelData):
    """One thing an agent can do (A2A AgentSkill)."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    description: str = ""
    tags: list[str] = Field(default_factory=list)
    examples: list[str] = Field(default_factory=list)


class AgentCard(CamelData):
    """`agent.card` v1: an A2A-style agent card, served for discovery."""

    name: str = Field(min_length=1)
    description: str = ""
    url: str = Field(min_length=1, description="Where the agent is reached.")
    version: str = Field(min_length=1, description="The agent's own version, e.g. 1.2.0.")
    capabilities: AgentCapabilities = Field(default_factory=AgentCapabilities)
    default_input_modes: list[str] = Field(default_factory=lambda: ["text/plain"])
    default_output_modes: list[str] = Field(default_factory=lambda: ["text/plain"])
    skills: list[AgentSkill] = Field(default_factory=list)


class Progress(Data):
    """`progress` v1: a partial result of a running task (an SSE event, say)."""

    task_id: str = Field(min_length=1)
    percent: float = Field(ge=0, le=100, allow_inf_nan=False)
    message: str = ""
    final: bool = False


class NegotiationBid(Data):
    """`negotiation.bid` v1: one move in a bid / counter-bid exchange."""

    negotiation_id: str = Field(min_length=1)
    round: int = Field(ge=1)
    bidder: str = Field(min_length=1)
    action: Literal["offer", "counter", "accept", "reject"]
    price: float = Field(ge=0, allow_inf_nan=False)


# A valid example of each built-in, for docs, scenarios and tests.
EXAMPLES: dict[tuple[str, int], dict[str, Any]] = {
    (TASK_RUN, 1): {
        "task_id": "t-1",
        "skill": "summarise",
        "description": "Summarise the report.",
        "inputs": {"url": "https://example.org/report", "words": 100},
        "priority": 1,
    },
    (TASK_RESULT, 1): {"task_id": "t-1", "status": "completed", "output": "A short summary."},
    (TASK_RESULT, 2): {
        "task_id": "t-1",
        "state": "completed",
        "parts": [{"text": "A short summary."}, {"data": {"words": 3}}],
        "confidence": 0.9,
    },
    (AGENT_CARD, 1): {
        "name": "summariser",
        "description": "Summarises documents.",
        "url": "agent://summariser",
        "version": "1.0.0",
        "capabilities": {"streaming": True, "pushNotifications": False},
        "skills": [{"id": "summarise", "name": "Summarise", "tags": ["text"]}],
    },
    (PROGRESS, 1): {"task_id": "t-1", "percent": 40.0, "message": "read 4 of 10 pages"},
    (NEGOTIATION_BID, 1): {
        "negotiation_id": "n-1",
        "round": 1,
        "bidder": "buyer",
        "action": "offer",
        "price": 90.0,
    },
}


def default_registry() -> SchemaRegistry:
    """A new registry holding the built-in schemas and the task.result v1 <-> v2 converters."""
    registry = SchemaRegistry()
    registry.register(TASK_RUN, 1, TaskRun)
    registry.register(TASK_RESULT, 1, TaskResultV1)
    registry.register(TASK_RESULT, 2, TaskResultV2)
    registry.register(AGENT_CARD, 1, AgentCard)
    registry.register(PROGRESS, 1, Progress)
    registry.register(NEGOTIATION_BID, 1, NegotiationBid)
    registry.add_converter(TASK_RESULT, 1, 2, result_v1_to_v2)
    registry.add_converter(TASK_RESULT, 2, 1, result_v2_to_v1, lossy=True)
    return registry
