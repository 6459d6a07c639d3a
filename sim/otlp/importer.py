"""OTLP/JSON in: a real system's trace as a Run (`import_otlp`), and saving it whole.

An imported run is a normal Run (every table present, dtypes conformed) whose manifest
says what a trace cannot carry: `imported` is true, `has_scenario`, `has_breakers`,
`has_faults` (and `has_effects`) are false, and `messages_inferred` / `queues_inferred`
say that those tables were derived from span pairs (see `sim.otlp.infer`). Pages check
these flags.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from sim.otlp.common import OtlpError, write_atomically
from sim.otlp.infer import (
    agents_table,
    fill_peers_and_protocols,
    find_pairs,
    find_virtual,
    infer_messages,
)
from sim.otlp.parse import Parsed, parse_file, resolve, spans_table, versions
from sim.otlp.tasks import tasks_table
from sim.trace.run import Run
from sim.trace.schema import FORMAT_VERSION, TABLES, empty_table


def import_trace(path: str | Path, name: str | None = None, max_bytes: int | None = None) -> Run:
    """Read a trace file into a Run; raises OtlpError naming what is wrong and where.

    Reads OTLP/JSON (one request, JSON Lines, a list), OTLP protobuf, Tempo's and
    Jaeger's trace-by-id responses, Jaeger's UI JSON and Zipkin JSON (v2 or v1), gzipped or not
    (`sim.otlp.shapes`). `max_bytes` caps the bytes read, after decompression (default
    `sim.limits.MAX_OTLP_BYTES`, 1 GiB).
    """
    from sim.world import sparse_gc

    source = Path(path)
    with sparse_gc():  # as for a run: many small objects, few cycles
        parsed = parse_file(source, max_bytes)
        return from_parsed(parsed, name or _stem(source), source.name)


import_otlp = import_trace  # its first name, when it read OTLP/JSON only


def from_parsed(parsed: Parsed, name: str, file_name: str = "") -> Run:
    """The Run of spans already read: times, outcomes, then the inferred tables."""
    origin, how = resolve(parsed)
    records = sorted(parsed.spans, key=lambda s: (s.start, s.order))
    pairs = find_pairs(records)
    fill_peers_and_protocols(records, pairs)
    find_virtual(records, pairs)
    inferred = infer_messages(records, pairs)
    spans = spans_table(records)
    tables = {
        "messages": inferred.messages,
        "spans": spans,
        "queues": inferred.queues,
        "agents": agents_table(parsed.resources, records, inferred.brokers, pairs),
    }
    tasks = tasks_table(records, origin)
    if not tasks.empty:  # A2A task transitions, from a Switchboard export's span events
        tables["tasks"] = tasks
    # What a trace cannot carry (breakers, faults, effects, ...): empty, typed tables.
    lacking = [table for table in TABLES if table not in tables]
    for table in lacking:
        tables[table] = empty_table(table)
    scope = parsed.scope_attrs
    ends = [s.end for s in records if not math.isnan(s.end)] + [s.start for s in records]
    duration = scope.get("switchboard.run.duration")
    if not isinstance(duration, float) or how != "switchboard epoch":
        duration = max(ends)
    manifest: dict[str, Any] = {
        "format": FORMAT_VERSION,
        "name": str(scope.get("switchboard.run.name") or name) if parsed.switchboard else name,
        "seed": scope.get("switchboard.run.seed"),
        "duration": float(duration),
        "imported": True,
        "source": {
            "format": parsed.format,
            "file": file_name,
            "requests": parsed.requests,
            "spans": len(records),
            "traces": len({s.trace_id for s in records}),
            "services": int((~tables["agents"]["inferred"]).sum()),
            "switchboard_export": parsed.switchboard,
        },
        # The file's resources and scopes, as it gave them: spans point into these lists
        # (their `otel` column), so an export writes them back unchanged.
        "resources": [{"attributes": r.attrs} for r in parsed.resources],
        "scopes": [
            {"name": sc.name, "version": sc.version, "attributes": sc.attrs} for sc in parsed.scopes
        ],
        "time_origin": how,
        "time_origin_unix_nano": origin,
        "has_scenario": False,
        **{f"has_{table}": False for table in lacking},
        "has_messages": not inferred.messages.empty,
        "has_queues": not inferred.queues.empty,
        "has_deadlines": bool(spans["deadline"].notna().any()),
        "messages_inferred": True,
        "queues_inferred": True,
        "unpaired_spans": pairs.unpaired,
        "virtual_nodes": sorted({s.peer for s in pairs.virtual}),
        "missing_parents": pairs.missing_parents,
        "duplicate_spans": parsed.duplicates,
        "shared_span_ids": parsed.shared_ids,
        # Times and parents the file gave that could not be used as they were.
        "spans_without_start": parsed.undated,
        "ends_before_start": parsed.ends_before_start,
        "self_parents": parsed.self_parents,
        "reused_span_ids": parsed.reused_ids,
        "clock_skew_adjusted": inferred.clock_skew_adjusted,
        "versions": versions(),
    }
    return Run(tables, manifest)


def is_imported(run: Run) -> bool:
    """Whether `run` came from a trace rather than a simulation (it has no scenario)."""
    return bool(run.manifest.get("imported"))


def save_run(run: Run, out: str | Path) -> Path:
    """Save `run` to the directory `out` whole or not at all (a temp dir, then a rename).

    Refuses to replace a directory that holds anything but a run, so that a mistyped
    `--out` cannot wipe unrelated files.
    """
    target = Path(out)
    if target.exists() and not target.is_dir():
        raise OtlpError(f"cannot write the run to {target}: it is a file, not a directory")
    if target.is_dir() and any(target.iterdir()) and not (target / "run.json").is_file():
        raise OtlpError(
            f"cannot write the run to {target}: the directory holds files and is not a run"
        )
    return write_atomically(target, run.save)


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".gz", ".jsonl", ".json", ".pb", ".proto", ".otlp", ".jaeger", ".zipkin"):
        name = name.removesuffix(suffix)
    return name or "imported"
