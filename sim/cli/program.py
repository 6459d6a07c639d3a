"""The command line: run, list, validate, schema, export, import-otlp, serve-otlp, sweep,
advise.

Every user error is one sentence on stderr and exit status 2; a bug is one sentence and
exit status 1 (set SWITCHBOARD_DEBUG=1 for the traceback). Never a traceback by default.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from sim import loading
from sim.cli import sweeps
from sim.cli.errors import USER_ERROR, UserError
from sim.loading import ScenarioError
from sim.scenario import Scenario


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # argparse's own errors: one sentence, exit 2
        self.exit(USER_ERROR, f"{self.prog}: {message} (see --help)\n")


def _seed(text: str) -> int:
    # Checked here so that a bad --seed is blamed on the option, not on the file.
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if seed < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got '{text}'")
    return seed


def _mebibytes(text: str) -> int:
    # In MiB on the command line, in bytes beyond it.
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive whole number of MiB, got '{text}'")
    return value * 2**20


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got '{text}'")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of `python -m sim`."""
    parser = _Parser(prog="python -m sim", description="Switchboard's simulator.")
    verbs = parser.add_subparsers(dest="verb", required=True, parser_class=_Parser)

    run = verbs.add_parser("run", help="run a scenario and save its trace")
    run.add_argument("scenario", help="a scenario file, or the name of a built-in scenario")
    run.add_argument("--seed", type=_seed, help="replace the scenario's seed")
    run.add_argument("--out", help="directory to save the run in (default: runs/NAME-seedN)")
    run.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="PATH=VALUE",
        help="override a field, e.g. --set agents.1.workers=8 (repeatable)",
    )
    run.add_argument(
        "--spill",
        metavar="DIR",
        help="write the trace to DIR as the run goes (never whole in memory, for runs of "
        "millions of messages); DIR is then the saved run",
    )
    run.add_argument("--quiet", action="store_true", help="print only where the run was saved")
    run.add_argument(
        "--check",
        action="store_true",
        help="check the run's invariants; print the first violation and exit 1 on one",
    )
    run.add_argument(
        "--strict",
        action="store_true",
        help="stop at the first exception a plugin role's code raises, with its traceback",
    )

    verbs.add_parser("list", help="list the built-in scenarios")

    validate = verbs.add_parser("validate", help="check scenario files and list every error")
    validate.add_argument("files", nargs="+", help="scenario files or built-in names")
    for verb in (run, validate):
        verb.add_argument(
            "--plugin",
            dest="plugins",
            action="append",
            default=[],
            metavar="MODULE",
            help="import a Python module that registers agent roles, before the scenario "
            "is read (repeatable; see docs/agents.md)",
        )

    verbs.add_parser("schema", help="print the JSON Schema of the scenario format")
    _add_interop_verbs(verbs)
    sweeps.add_sweep_verbs(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        _refuse_empty_paths(args)
        _load_plugins(getattr(args, "plugins", []))
        return VERBS[args.verb](args)
    except ScenarioError as exc:
        for line in exc.lines:
            print(line, file=sys.stderr)
        return USER_ERROR
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return USER_ERROR
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`... | head`): not an error of ours. Point stdout at
        # nothing so that the interpreter's final flush does not complain either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: still one sentence, the traceback on request
        if os.environ.get("SWITCHBOARD_DEBUG"):
            traceback.print_exc()
        print(
            f"internal error: {exc.__class__.__name__}: {exc} "
            "(set SWITCHBOARD_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 1


# The options that name a file or directory, by their attribute.
PATH_OPTIONS = {"out": "--out", "spill": "--spill", "sweep_dir": "--sweep"}


def _refuse_empty_paths(args: argparse.Namespace) -> None:
    """One sentence for an option given an empty path (`--out ""`): read as "not given",
    it would silently write to the default place (runs/...) instead of where was meant."""
    for attribute, option in PATH_OPTIONS.items():
        value = getattr(args, attribute, None)
        if isinstance(value, str) and not value.strip():
            raise UserError(
                f"{option} is empty: give it a path, or leave {option} out to use its default"
            )


def _load_plugins(modules: list[str]) -> None:
    """Import the --plugin modules (their roles register themselves); one sentence if
    one cannot be imported. The folder the CLI runs in is on the path, as for -m."""
    if not modules:
        return
    from sim.plugins import PluginError, load_plugins

    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        load_plugins(modules)
    except PluginError as exc:
        if os.environ.get("SWITCHBOARD_DEBUG"):
            traceback.print_exc()
        raise UserError(str(exc)) from None


def cmd_run(args: argparse.Namespace) -> int:
    """Run a scenario, save it, print its summary."""
    from sim.report import describe, timeline
    from sim.world import simulate

    # The seed goes in as an override, so that it is validated like any other field.
    seed = [] if args.seed is None else [f"seed={args.seed}"]
    scenario = loading.load(args.scenario, [*args.overrides, *seed])
    out = Path(args.out) if args.out else Path("runs") / f"{scenario.name}-seed{scenario.seed}"
    if args.spill and not args.out:
        out = Path(args.spill)
    _check_writable(out)
    if args.spill:
        _check_writable(Path(args.spill))
    _warn(scenario)
    try:
        run = simulate(scenario, strict=args.strict, spill=args.spill)
    except Exception:
        if not args.strict:
            raise
        # --strict: the plugin code's exception, with its traceback (the user's line).
        traceback.print_exc()
        print("stopped at the first exception raised in agent code (--strict)", file=sys.stderr)
        return 1
    try:
        run.save(out)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UserError(f"cannot write the run to {out}: {reason}") from None
    if not args.quiet:
        print(describe(run))
        steps = timeline(run)  # "" unless an orchestrator completed a task
        if steps:
            print(steps)
    print(f"saved to {out}")
    if args.check:
        return _report_checks(run)
    return 0


def _report_checks(run: Any) -> int:
    """Print each failing check's first violations with their chains; 1 if any failed."""
    from sim.checks import CHECKS, violations
    from sim.explain import describe_violations

    failed = violations(run)
    expected = sorted(set(violations(run, include_expected=True)) - set(failed))
    if expected:
        print(f"checks: {', '.join(expected)} failed, as this scenario expects")
    if not failed:
        held = len(CHECKS) - len(expected)
        print(f"checks: {'all ' if not expected else ''}{held} hold")
        return 0
    print(describe_violations(run, failed), file=sys.stderr)
    return 1


def cmd_list(args: argparse.Namespace) -> int:
    """Print the built-in scenarios with their first description line."""
    names = loading.builtin_names()
    width = max((len(n) for n in names), default=0)
    for name in names:
        try:
            scenario = loading.load(name)
            text = " ".join(scenario.description.split())
        except ScenarioError:
            text = "(invalid)"
        print(f"{name:<{width}}  {text[:100]}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate files; list every error of every file; exit 2 if any is invalid."""
    failed = False
    for source in args.files:
        try:
            scenario = loading.load(source)
        except ScenarioError as exc:
            failed = True
            for line in exc.lines:
                print(line, file=sys.stderr)
            continue
        print(
            f"{loading.resolve(source)}: valid ({len(scenario.agents)} agents, "
            f"{len(scenario.workload)} workloads, {len(scenario.faults)} faults)"
        )
        _warn(scenario)
    return USER_ERROR if failed else 0


def _warn(scenario: Scenario) -> None:
    """Say on stderr what will run but slowly (the soft caps of sim.limits)."""
    from sim.sizing import warnings

    for line in warnings(scenario):
        print(f"warning: {line}", file=sys.stderr)


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of scenario files."""
    print(json.dumps(Scenario.model_json_schema(by_alias=True), indent=2))
    return 0


def _check_writable(out: Path) -> None:
    # Checked before the run so that an unwritable --out does not waste the simulation.
    for place in (out, *out.parents):
        if place.exists():
            if not place.is_dir():
                raise UserError(
                    f"cannot write the run to {out}: {place} is a file, not a directory"
                )
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UserError(f"cannot write the run to {out}: {reason}") from None


# -- OpenTelemetry and CSV: export and import-otlp --------------------------------------


def _add_interop_verbs(verbs: Any) -> None:
    export = verbs.add_parser(
        "export", help="write a saved run as OTLP/JSON or Jaeger JSON traces, or CSV"
    )
    export.add_argument("run_dir", metavar="RUN_DIR", help="a run saved by `run --out`")
    export.add_argument("--format", required=True, choices=("otlp", "jaeger", "csv"), dest="fmt")
    export.add_argument(
        "--out",
        help="file or directory to write; a .zip for csv gives an archive, - prints traces "
        "(default: RUN_DIR/trace.otlp.json, RUN_DIR/trace.jaeger.json or RUN_DIR/csv)",
    )
    imp = verbs.add_parser("import-otlp", aliases=["import"], help="read a trace file into a run")
    imp.add_argument(
        "file",
        metavar="FILE",
        help="OTLP/JSON (SDK or Collector JSON Lines), OTLP protobuf, a Tempo or Jaeger "
        "trace-by-id response, Jaeger UI JSON or Zipkin JSON (v2 or v1); gzipped or not",
    )
    imp.add_argument(
        "--out",
        metavar="RUN_DIR",
        help="directory for the run (without it the file is read and summed up, not saved)",
    )
    imp.add_argument("--name", help="the run's name (default: the file's name)")
    imp.add_argument(
        "--max-mb",
        type=_mebibytes,
        help="read at most this many MiB, after decompression (default: 1024)",
    )
    cal = verbs.add_parser(
        "calibrate", help="infer a scenario from a trace: agents, calls, fitted latencies"
    )
    cal.add_argument("trace", metavar="TRACE", help="a trace file (any import format) or a run")
    cal.add_argument("-o", "--out", required=True, help="the scenario YAML file to write")
    cal.add_argument("--name", help="the scenario's name (default: calibrated-TRACE)")
    serve = verbs.add_parser(
        "serve-otlp", help="receive OTLP/HTTP traces on 127.0.0.1 into a JSON Lines file"
    )
    serve.add_argument("--out", required=True, help="the JSON Lines file to append to")
    serve.add_argument(
        "--port", type=_port, default=4318, help="port on 127.0.0.1 (default: 4318; 0 = any)"
    )


def cmd_calibrate(args: argparse.Namespace) -> int:
    """Write the scenario a trace implies, and print how well each distribution fits."""
    import yaml

    from sim import otlp
    from sim.calibrate import calibrate

    source = Path(args.trace)
    if source.is_dir():
        run = _load_run(source)
    else:
        try:
            run = otlp.import_trace(source)
        except otlp.OtlpError as exc:
            raise UserError(str(exc)) from None
    if run.messages.empty or not (run.messages["kind"] == "request").any():
        raise UserError(f"{source} holds no calls between services: nothing to calibrate")
    result = calibrate(run, args.name)
    loading.validate(result.scenario, str(args.out))  # what is written always loads
    text = yaml.safe_dump(result.scenario, sort_keys=False, width=100)
    try:
        otlp.common.write_atomically(Path(args.out), lambda tmp: tmp.write_text(text))
    except OSError as exc:
        raise UserError(f"cannot write {args.out}: {(exc.strerror or str(exc)).lower()}") from None
    print(result.report())
    print(f"wrote {args.out}")
    return 0


def cmd_serve_otlp(args: argparse.Namespace) -> int:
    """Receive OTLP/HTTP traces on 127.0.0.1 into a JSON Lines file until Ctrl-C."""
    from sim.otlp.receiver import Receiver

    try:
        receiver = Receiver(args.out, port=args.port)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UserError(
            f"cannot serve on 127.0.0.1:{args.port} into {args.out}: {reason}"
        ) from None
    print(f"listening on {receiver.url}, appending to {args.out} (Ctrl-C stops)", flush=True)
    try:
        receiver.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        receiver.stop()
    print(
        f"received {receiver.spans} spans in {receiver.requests} requests into {args.out}; "
        f"read them with: python -m sim import-otlp {args.out} --out RUN_DIR"
    )
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """Write a saved run as OTLP/JSON, Jaeger JSON or CSV tables."""
    from sim import otlp

    run = _load_run(Path(args.run_dir))
    default = {"otlp": "trace.otlp.json", "jaeger": "trace.jaeger.json"}.get(args.fmt, "csv")
    out = args.out or str(Path(args.run_dir) / default)
    if out == "-":
        if args.fmt == "csv":
            raise UserError("--out - (standard output) works only with --format otlp or jaeger")
        sys.stdout.write(otlp.otlp_json(run) if args.fmt == "otlp" else otlp.jaeger_json(run))
        return 0
    try:
        if args.fmt == "otlp":
            otlp.write_otlp(run, out)
        elif args.fmt == "jaeger":
            otlp.write_jaeger(run, out)
        else:
            otlp.write_csv(run, out)
    except otlp.OtlpError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UserError(f"cannot write {out}: {reason}") from None
    what = f"{len(run.spans)} spans" if args.fmt != "csv" else f"{len(run.tables)} tables"
    print(f"wrote {what} of {run.name} to {out}")
    return 0


def cmd_import_otlp(args: argparse.Namespace) -> int:
    """Read a trace file (any format `sim.otlp.import_trace` reads) into a run directory,
    whole or not at all."""
    from sim import otlp

    try:
        run = otlp.import_otlp(args.file, name=args.name, max_bytes=args.max_mb)
        if args.out:
            otlp.save_run(run, args.out)
    except otlp.OtlpError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UserError(f"cannot write the run to {args.out}: {reason}") from None
    source = run.manifest["source"]
    print(
        f"imported {source['spans']} spans in {source['traces']} traces from "
        f"{source['services']} services ({source['format']}); inferred "
        f"{len(run.messages)} messages"
    )
    virtual = run.manifest.get("virtual_nodes") or []
    if virtual:
        print(f"services that recorded no spans, shown as virtual nodes: {', '.join(virtual)}")
    unpaired = sum(run.manifest["unpaired_spans"].values())
    if unpaired:
        print(f"{unpaired} spans have no partner span in the file")
    repairs = {
        "spans_without_start": "spans had no start time and were dated from their neighbours",
        "ends_before_start": "spans ended before they started and now end when they start",
        "self_parents": "spans named themselves as their parent and are now roots",
        "duplicate_spans": "spans were in the file twice (or in pieces) and were read once",
        "reused_span_ids": "spans reused another span's id and were given ids of their own",
    }
    for key, what in repairs.items():
        if run.manifest.get(key):
            print(f"{run.manifest[key]} {what}")
    print(f"saved to {args.out}" if args.out else "not saved: give --out RUN_DIR to save the run")
    return 0


def _load_run(path: Path) -> Any:
    from sim.trace.run import Run, RunFileError

    if not loading.is_dir(path):
        raise UserError(f"no run at {path}: there is no such directory")
    if not loading.is_file(path / "run.json"):
        raise UserError(f"no run at {path}: it has no run.json (save one with run --out)")
    try:
        return Run.load(path)
    except RunFileError as exc:
        raise UserError(str(exc)) from None
    except (OSError, ValueError, KeyError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise UserError(f"cannot read the run in {path}: {reason.lower()}") from None


# Every verb's function, by the name `python -m sim` takes.
VERBS = {
    "run": cmd_run,
    "list": cmd_list,
    "validate": cmd_validate,
    "schema": cmd_schema,
    "export": cmd_export,
    "import-otlp": cmd_import_otlp,
    "import": cmd_import_otlp,
    "serve-otlp": cmd_serve_otlp,
    "calibrate": cmd_calibrate,
    "sweep": sweeps.cmd_sweep,
    "advise": sweeps.cmd_advise,
}
