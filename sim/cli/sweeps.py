"""The sweep and advise verbs of `python -m sim`."""

from __future__ import annotations

import argparse
import contextlib
import math
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sim import advisor, advisor_a2a
from sim.cli.errors import UserError


def _workers(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got '{text}'")
    return int(text)


def _seconds(text: str) -> float:
    # "250ms", "0.25s" or "0.25" (seconds): people say latency targets in milliseconds.
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(ms|s)?\s*", text)
    if not match or float(match.group(1)) <= 0:
        raise argparse.ArgumentTypeError(f"must be a duration like 250ms or 0.25s, got '{text}'")
    value = float(match.group(1))
    return value / 1000 if match.group(2) == "ms" else value


def _fraction(text: str) -> float:
    try:
        value = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
    except ValueError:
        value = -1.0
    if not value > 0 or math.isinf(value):
        raise argparse.ArgumentTypeError(f"must be a load like 0.75 or 75%, got '{text}'")
    return value


def add_sweep_verbs(verbs: Any) -> None:
    """Add `sweep` and `advise` to the CLI's subparsers."""
    sweep = verbs.add_parser("sweep", help="run a scenario over a grid of overrides")
    sweep.add_argument("sweep", help="a sweep file, or the name of a built-in sweep")
    sweep.add_argument(
        "--workers",
        type=_workers,
        help="local processes, or Dask workers with --dask local (default: all cores)",
    )
    _add_dask(sweep)
    sweep.add_argument("--replications", type=_workers, help="replace the file's replications")
    sweep.add_argument("--out", help="directory for the results (default: runs/sweeps/NAME)")
    sweep.add_argument("--quiet", action="store_true", help="no progress bar, no table")

    advise = verbs.add_parser("advise", help="recommend a protocol stack for a workload")
    advise.add_argument("--p99", type=_seconds, help="p99 latency target, e.g. 500ms")
    advise.add_argument(
        "--no-loss", action="store_true", help="a request must never be lost (loss not tolerable)"
    )
    advise.add_argument("--streaming", action="store_true", help="partial results must stream")
    advise.add_argument("--bidirectional", action="store_true", help="both sides talk")
    advise.add_argument(
        "--fan-out", action="store_true", help="one message must reach several subscribers"
    )
    advise.add_argument(
        "--ordered", action="store_true", help="messages of a key must be handled in order"
    )
    advise.add_argument("--load", type=_fraction, help="offered load, fraction of capacity (0.75)")
    advise.add_argument(
        "--a2a",
        action="store_true",
        help="ask instead which A2A mode (blocking, streaming, polling, push) suits a long "
        f"task, judged on the built-in {advisor_a2a.A2A_SWEEP} sweep",
    )
    advise.add_argument(
        "--progress", action="store_true", help="with --a2a: the user must see progress"
    )
    advise.add_argument(
        "--offline", action="store_true", help="with --a2a: the client goes offline for a while"
    )
    advise.add_argument(
        "--sweep",
        dest="sweep_dir",
        metavar="DIR",
        help=f"a saved sweep to judge on (default: the built-in {advisor.ADVISOR_SWEEP}, "
        f"run once and kept in {advisor.ADVISOR_CACHE}; with --a2a, "
        f"{advisor_a2a.A2A_SWEEP} in {advisor_a2a.A2A_CACHE})",
    )
    advise.add_argument(
        "--workers",
        type=_workers,
        help="local processes, or Dask workers with --dask local, if the sweep must run",
    )
    _add_dask(advise)


def _add_dask(verb: argparse.ArgumentParser) -> None:
    """--dask and --scheduler: where a sweep's runs go when they must run."""
    verb.add_argument(
        "--dask",
        nargs="?",
        const="local",
        metavar="ADDRESS|local",
        help="run on Dask: a LocalCluster of --workers processes started here ('local', the "
        "default), or the scheduler at ADDRESS, e.g. tcp://10.0.0.5:8786",
    )
    verb.add_argument("--scheduler", metavar="ADDRESS", help="the same as --dask ADDRESS")


@contextlib.contextmanager
def _progress_bar(total: int, quiet: bool) -> Iterator[Any]:
    """A `progress` callback drawing a bar on stderr, closed however the sweep ends (a
    bar left open when the scheduler cannot be reached would smear the error line)."""
    if quiet:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=total, unit="run", file=sys.stderr, leave=False)

    def tick(done: int, _total: int, row: dict[str, Any]) -> None:
        bar.update(1)
        if row.get("error"):
            bar.write(f"run {row['index']} failed: {row['error']}", file=sys.stderr)

    try:
        yield tick
    finally:
        bar.close()


def cmd_sweep(args: argparse.Namespace) -> int:
    """Run a sweep, save it, print each cell's means."""
    from sim import sweeps as sw

    spec = sw.load_spec(args.sweep)
    if args.replications:
        spec = spec.model_copy(update={"replications": args.replications})
    out = Path(args.out) if args.out else Path("runs") / "sweeps" / spec.name
    scheduler = _scheduler(args)
    _check_dir(out)
    with _progress_bar(sw.run_count(spec), args.quiet) as tick:
        rows = sw.sweep(spec, workers=args.workers, scheduler=scheduler, progress=tick)
    try:
        sw.save(rows, out)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UserError(f"cannot write the sweep to {out}: {reason}") from None
    failed = int((rows["error"] != "").sum())
    if not args.quiet:
        print(format_means(sw.means(rows)))
    print(f"{len(rows)} runs ({failed} failed) saved to {out}")
    return 0


def _scheduler(args: argparse.Namespace) -> str | None:
    """Where the sweep's runs go: a Dask address, 'local' for a LocalCluster, or None
    for local processes."""
    if args.dask is not None and args.scheduler is not None:
        raise UserError("give --dask or --scheduler, not both: they say the same")
    scheduler: str | None = args.dask if args.dask is not None else args.scheduler
    if scheduler not in (None, "local") and args.workers:
        raise UserError(
            f"--workers counts local processes or the workers of --dask local; the "
            f"cluster at {scheduler} has its own workers"
        )
    return scheduler


def format_means(table: Any) -> str:
    """Each cell's headline means as a plain text table."""
    from sim.sweeps.stats import axis_columns

    axes = axis_columns(table)
    shown = table[[*axes, "runs", "p50", "p99", "goodput", "success_rate", "lost_rate"]].copy()
    # The p99's confidence half-width beside the p99 it qualifies.
    shown.insert(shown.columns.get_loc("p99") + 1, "p99 ±", table["p99_ci"])
    for col in ("p50", "p99", "p99 ±"):
        shown[col] = (shown[col] * 1000).round(0)
    shown = shown.rename(columns={"p50": "p50 ms", "p99": "p99 ms", "p99 ±": "± ms"})
    for col in ("success_rate", "lost_rate"):
        shown[col] = (shown[col] * 100).round(1)
    shown = shown.rename(columns={"success_rate": "ok %", "lost_rate": "lost %"})
    shown["goodput"] = shown["goodput"].round(1)
    return shown.to_string(index=False, na_rep="-")


# The protocol question's flags, which the A2A question does not take.
STACK_FLAGS = (
    ("p99", "--p99"), ("no_loss", "--no-loss"), ("streaming", "--streaming"),
    ("bidirectional", "--bidirectional"), ("fan_out", "--fan-out"), ("ordered", "--ordered"),
    ("load", "--load"),
)  # fmt: skip
A2A_FLAGS = (("progress", "--progress"), ("offline", "--offline"))


def _given(args: argparse.Namespace, flags: tuple[tuple[str, str], ...]) -> list[str]:
    return [flag for name, flag in flags if getattr(args, name) not in (None, False)]


def _rows(args: argparse.Namespace, name: str, cache: Path) -> Any:
    """The saved sweep named by --sweep, or the built-in `name`, run once and kept."""
    from sim import sweeps as sw

    scheduler = _scheduler(args)
    if args.sweep_dir:
        if scheduler is not None:
            raise UserError(
                f"--sweep {args.sweep_dir} is judged as saved, nothing runs: "
                "--dask says where runs would go"
            )
        return sw.load(args.sweep_dir)
    spec = sw.load_spec(name)
    with _progress_bar(spec.cells * spec.replications, quiet=False) as tick:
        return sw.cached(spec, cache, workers=args.workers, progress=tick, scheduler=scheduler)


def cmd_advise(args: argparse.Namespace) -> int:
    """Recommend a protocol stack (or, with --a2a, an A2A mode) from a sweep's evidence."""
    if args.a2a:
        return _advise_a2a(args)
    stray = _given(args, A2A_FLAGS)
    if stray:
        raise UserError(
            f"{' and '.join(stray)} {'is a need' if len(stray) == 1 else 'are needs'} of the "
            "A2A question: add --a2a to ask which A2A mode suits a long task"
        )
    needs = advisor.Needs(
        p99=args.p99,
        loss_tolerable=not args.no_loss,
        streaming=args.streaming,
        bidirectional=args.bidirectional,
        fan_out=args.fan_out,
        ordered=args.ordered,
        load=0.75 if args.load is None else args.load,
    )
    rows = _rows(args, advisor.ADVISOR_SWEEP, advisor.ADVISOR_CACHE)
    try:
        advice = advisor.advise(rows, needs)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    where = f"at load {advice.load:g} (means over replications, clean network)"
    _print_advice(advice, where, format_verdicts(advice.verdicts))
    return 0


def _print_advice(advice: advisor.Advice, where: str, table: str) -> None:
    """The recommendation, its reasons and notes, then the evidence table."""
    print(advice.headline)
    for line in [*advice.reasons, *advice.notes]:
        print(f"  - {line}")
    print()
    print(f"evidence {where}:")
    print(table)
    print(f"\n{len(advice.evidence)} sweep rows behind the recommendation")


def _advise_a2a(args: argparse.Namespace) -> int:
    """Recommend an A2A mode for a long task from the a2a-modes sweep's evidence."""
    stray = _given(args, STACK_FLAGS)
    if stray:
        raise UserError(
            f"--a2a asks which A2A mode suits a long task; {', '.join(stray)} "
            f"{'belongs' if len(stray) == 1 else 'belong'} to the protocol question "
            "(its needs are --progress and --offline)"
        )
    needs = advisor_a2a.A2aNeeds(progress=args.progress, offline=args.offline)
    rows = _rows(args, advisor_a2a.A2A_SWEEP, advisor_a2a.A2A_CACHE)
    try:
        advice = advisor_a2a.advise_a2a(rows, needs)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    case = "offline for a while" if needs.offline else "online"
    where = f"with the client {case} (means over replications)"
    _print_advice(advice, where, format_modes(advice.verdicts))
    return 0


def format_modes(v: Any) -> str:
    """The A2A advisor's per-mode table as plain text."""
    shown = v[["protocol", "completed", "p99", "messages", "progress"]].copy()
    # Formatted as the reasons above say them, so that both read the same figure.
    shown["completed"] = [f"{x:.0%}" for x in shown["completed"]]
    shown["p99"] = ["-" if math.isnan(x) else f"{x:.0f}" for x in shown["p99"]]
    shown["messages"] = [f"{x:.1f}" for x in shown["messages"]]
    shown = shown.rename(
        columns={"protocol": "mode", "completed": "completed", "p99": "p99 s",
                 "messages": "msgs/task", "progress": "the user sees"}
    )  # fmt: skip
    return shown.to_string(index=False, na_rep="-")


def format_verdicts(v: Any) -> str:
    """The advisor's per-protocol table as plain text."""
    shown = v[["protocol", "p99", "goodput", "lost_rate", "amplification"]].copy()
    shown["p99"] = (shown["p99"] * 1000).round(0)
    shown["lost_rate"] = (shown["lost_rate"] * 100).round(2)
    shown["goodput"] = shown["goodput"].round(1)
    shown["amplification"] = shown["amplification"].round(2)
    shown["meets"] = [
        ", ".join(n for n, ok in (("p99", a), ("loss", b), ("features", c)) if ok) or "-"
        for a, b, c in zip(v["meets_p99"], v["meets_loss"], v["meets_features"], strict=True)
    ]
    shown = shown.rename(
        columns={"p99": "p99 ms", "lost_rate": "lost % (faults)", "amplification": "msgs/req"}
    )
    return shown.to_string(index=False, na_rep="-")


def _check_dir(out: Path) -> None:
    for place in (out, *out.parents):
        if place.exists():
            if not place.is_dir():
                raise UserError(f"cannot write the sweep to {out}: {place} is a file")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise UserError(f"cannot write the sweep to {out}: {reason}") from None
