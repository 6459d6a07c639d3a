"""OpenTelemetry traces out and in: a Run as OTLP/JSON (or CSV), and OTLP/JSON as a Run.

    from sim import otlp
    otlp.write_otlp(run, "trace.otlp.json")      # Run -> OTLP/JSON file
    doc = otlp.to_otlp(run)                       # Run -> ExportTraceServiceRequest dict
    otlp.write_csv(run, "tables.zip")             # each table as CSV, in a dir or a zip
    otlp.otlp_json(run), otlp.csv_zip(run)        # the same in memory, for downloads
    imported = otlp.import_otlp("collector.json") # OTLP/JSON -> Run (messages inferred)
    otlp.save_run(imported, "runs/prod")          # saved whole or not at all

- `common`: what export and import share (codes, attribute names, AnyValue, files);
- `export`: a Run as OTLP/JSON or CSV;
- `parse`: OTLP/JSON files read into span records;
- `infer`: the messages, peers, agents and queues a trace implies;
- `importer`: span records as a Run (`import_otlp`), and saving it whole (`save_run`).
"""

from sim.otlp.common import EPOCH_UNIX_NANO, OtlpError
from sim.otlp.export import (
    csv_files,
    csv_zip,
    otlp_json,
    protobuf_json,
    to_otlp,
    write_csv,
    write_otlp,
)
from sim.otlp.importer import from_parsed, import_otlp, is_imported, save_run

__all__ = [
    "EPOCH_UNIX_NANO",
    "OtlpError",
    "csv_files",
    "csv_zip",
    "from_parsed",
    "import_otlp",
    "is_imported",
    "otlp_json",
    "protobuf_json",
    "save_run",
    "to_otlp",
    "write_csv",
    "write_otlp",
]
