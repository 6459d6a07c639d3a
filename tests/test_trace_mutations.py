"""Foreign trace files mutated field by field: each import is one sentence or a sane run.

Every JSON file under tests/foreign_traces (Jaeger, Zipkin v1 and v2, OTLP) and a
simulated run's own OTLP and Jaeger exports are changed at a few places each (a field
deleted, or set to null, a string, a list, an object, a huge or infinite number) and
imported. The oracle is the one `test_foreign_traces` holds malformed files to: an
`OtlpError` of one line naming the file, or a run `check_sane` accepts. The suite runs a
fixed, bounded set; `SWITCHBOARD_FUZZ_EXAMPLES=N` runs N mutations of each file with a
fresh seed (printed, so a failure can be replayed with `SWITCHBOARD_FUZZ_SEED`).
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import sim
from sim.otlp.export import jaeger_json, otlp_json
from tests.test_foreign_traces import FOREIGN, imports_sanely

FUZZ_EXAMPLES = int(os.environ.get("SWITCHBOARD_FUZZ_EXAMPLES", "0"))
EXAMPLES = FUZZ_EXAMPLES or 6
SEED = int(os.environ.get("SWITCHBOARD_FUZZ_SEED", random.randrange(2**32) if FUZZ_EXAMPLES else 7))
# What a field becomes: each one a type or size some importer once crashed on.
VALUES: list[Any] = [None, "", "x", -1, 0, 1.5, True, [], {}, [1], {"a": 1}, "NaN",
                     "12345678901234567890", 2**70, 1e308, -1e308, float("inf")]  # fmt: skip
# Built-ins whose exports are mutated too (every protocol, tasks, MCP), each cut to a few
# hundred spans: a mutation is as likely to hit a rare field as in a long run.
OWN = {"collaboration": 8, "mcp-tools": None, "a2a-long-task": None}
FILES = sorted(
    p.relative_to(FOREIGN).as_posix()
    for p in FOREIGN.rglob("*.json*")
    if not p.relative_to(FOREIGN).as_posix().startswith("refused/")
)


def places(doc: Any, at: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path to a value in a JSON document."""
    if at:
        yield at
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else ()
    )
    for key, value in items:
        yield from places(value, (*at, key))


def mutated(doc: Any, rng: random.Random) -> Any:
    """The document with one to three fields deleted or replaced."""
    doc = Lines(copy.deepcopy(list(doc))) if isinstance(doc, Lines) else copy.deepcopy(doc)
    paths = list(places(doc))
    for _ in range(rng.randint(1, 3)):
        if not paths:
            break
        *parents, last = rng.choice(paths)
        holder = doc
        try:
            for key in parents:
                holder = holder[key]
            if rng.random() < 0.35:
                del holder[last]
            else:
                holder[last] = rng.choice(VALUES)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier change removed this place
    return doc


class Lines(list[Any]):
    """A JSON Lines file's documents (a Collector's file exporter writes one per line)."""


def parsed(text: str) -> Any:
    """A JSON document, or Lines when the text holds one per line."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return Lines(json.loads(line) for line in text.splitlines() if line.strip())


def dumped(doc: Any) -> str:
    """The text of a document as `parsed` read it."""
    if isinstance(doc, Lines):
        return "".join(json.dumps(line) + "\n" for line in doc)
    return json.dumps(doc)


@pytest.fixture(scope="module")
def documents() -> dict[str, Any]:
    """Each foreign file and a simulated run's two exports, parsed."""
    docs = {name: parsed((FOREIGN / name).read_text()) for name in FILES}
    for scenario, duration in OWN.items():
        run = sim.run(scenario, duration=duration) if duration else sim.run(scenario)
        docs[f"{scenario}.otlp.json"] = json.loads(otlp_json(run))
        docs[f"{scenario}.jaeger.json"] = json.loads(jaeger_json(run))
    return docs


@pytest.mark.parametrize(
    "name", [*FILES, *(f"{s}.{form}.json" for s in OWN for form in ("otlp", "jaeger"))]
)
def test_a_mutated_trace_is_one_sentence_or_a_sane_run(
    name: str, documents: dict[str, Any], tmp_path: Path
) -> None:
    rng = random.Random(f"{SEED}/{name}")
    path = tmp_path / "trace.json"
    for example in range(EXAMPLES):
        doc = mutated(documents[name], rng)
        path.write_text(dumped(doc))
        try:
            imports_sanely(path)
        except Exception as exc:  # say how to replay it
            raise AssertionError(
                f"{name}, mutation {example} of seed {SEED}: {type(exc).__name__}: {exc}"
            ) from exc
