"""Traces out and in: a Run as OTLP/JSON, Jaeger JSON or CSV; a real trace as a Run.

    from sim import otlp
    otlp.write_otlp(run, "trace.otlp.json")      # Run -> OTLP/JSON file
    otlp.write_jaeger(run, "trace.jaeger.json")  # Run -> Jaeger JSON (opens in Jaeger's UI)
    doc = otlp.to_otlp(run)                       # Run -> ExportTraceServiceRequest dict
    otlp.write_csv(run, "tables.zip")             # each table as CSV, in a dir or a zip
    otlp.otlp_json(run), otlp.csv_zip(run)        # the same in memory, for downloads
    imported = otlp.import_trace("trace.json.gz") # any format below -> Run (messages inferred)
    otlp.save_run(imported, "runs/prod")          # saved whole or not at all

`import_trace` (also `import_otlp`) reads OTLP/JSON, Collector JSON Lines, OTLP protobuf
(the Collector's `format: proto` file, or one request), Tempo's and Jaeger's trace-by-id
responses, Jaeger's UI JSON, Zipkin JSON (v2 or v1) and the Python SDK's console
output, gzipped or not. An imported span keeps
what its file said (ids, parent, times, attributes, events, links, resource) and an
export writes it back so.

- `common`: what export and import share (codes, attribute names, AnyValue, files);
- `export`: a Run as OTLP/JSON, Jaeger JSON or CSV;
- `source`: a file as documents (gzip streamed, JSON, JSON Lines, protobuf);
- `shapes`: what a document is (OTLP and its Tempo/Jaeger wrappers, Jaeger, Zipkin);
- `jaeger`, `zipkin`: those formats to OTLP/JSON (and OTLP to Jaeger);
- `console`: the Python SDK's console exporter output to OTLP/JSON;
- `parse`: OTLP/JSON read into span records;
- `infer`: the messages, peers, agents, virtual nodes and queues a trace implies;
- `importer`: span records as a Run (`import_trace`), and saving it whole (`save_run`).
"""

from sim.otlp.common import EPOCH_UNIX_NANO, OtlpError
from sim.otlp.export import (
    csv_files,
    csv_zip,
    jaeger_json,
    otlp_json,
    protobuf_json,
    to_jaeger,
    to_otlp,
    write_csv,
    write_jaeger,
    write_otlp,
)
from sim.otlp.importer import from_parsed, import_otlp, import_trace, is_imported, save_run

__all__ = [
    "EPOCH_UNIX_NANO",
    "OtlpError",
    "csv_files",
    "csv_zip",
    "from_parsed",
    "import_otlp",
    "import_trace",
    "is_imported",
    "jaeger_json",
    "otlp_json",
    "protobuf_json",
    "save_run",
    "to_jaeger",
    "to_otlp",
    "write_csv",
    "write_jaeger",
    "write_otlp",
]
