"""Sweep files: a base scenario, axes of overrides, and replications.

A sweep file is YAML or JSON:

    name: protocols-under-load
    scenario: request-response       # a built-in scenario, or a path beside this file
    seed: 1                          # replication r runs with seed + r in every cell
    replications: 3
    axes:
      - {name: protocol, path: channels.0.protocol, values: [http, queue, sse, websocket]}
      - {name: load, path: workload.0.arrivals.rate, values: [0.5, 1.0], scale: 40}
      - name: faults
        cases:
          none: {}
          partition: {faults: [{kind: partition, groups: [[api], [client]], start: 20, end: 30}]}

An axis either sets one or more dotted paths to each of its `values` (times `scale`, so
that a row can say "load 0.5" while the scenario gets 20 requests per second), or names
`cases`, each a mapping of dotted paths to values. The grid is every combination of the
axes' entries, each run `replications` times.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from sim import loading
from sim._version import __version__
from sim.limits import MAX_SWEEP_RUNS
from sim.loading import ScenarioError
from sim.scenario import quoted

SWEEP_DIR = loading.SCENARIO_DIR / "sweeps"
Scalar = str | int | float | bool


def _finite(value: Any) -> bool:
    """Whether a number is finite as a float (an int of 400 digits is not)."""
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


class Axis(BaseModel):
    """One dimension of the grid."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="The column this axis gives every row.")
    path: str | list[str] | None = Field(
        None, description="Dotted path(s) each value is set at, e.g. channels.0.protocol."
    )
    values: list[Scalar] | None = Field(None, min_length=1, description="Values of `path`.")
    scale: float | None = Field(
        None, description="Numeric values are multiplied by this before they are set."
    )
    cases: dict[str, dict[str, Any]] | None = Field(
        None, min_length=1, description="Named cases, each a mapping of dotted paths to values."
    )

    @model_validator(mode="after")
    def _one_kind(self) -> Axis:
        if (self.values is None) == (self.cases is None):
            raise ValueError("an axis needs either values (with a path) or cases, not both")
        if self.values is not None and not self.path:
            raise ValueError("an axis with values needs the path they are set at")
        if self.cases is not None and (self.path or self.scale is not None):
            raise ValueError("an axis with cases takes no path or scale: each case names its paths")
        if self.scale is not None and any(
            isinstance(v, bool) or not isinstance(v, int | float) for v in self.values or []
        ):
            raise ValueError("scale applies to numeric values only")
        if self.scale is not None and not all(_finite(v) for v in self.values or []):
            # Scaled, a 400-digit integer overflows a float; inf or nan sets nothing.
            raise ValueError("a scaled value must be a finite number (below 1.8e308)")
        # expand() sets every run's seed after the overrides, so an axis over the seed
        # would be silently ignored; replications are how a sweep varies it.
        paths = [self.path] if isinstance(self.path, str) else list(self.path or [])
        for case in (self.cases or {}).values():
            paths.extend(case)
        if "seed" in paths:
            raise ValueError(
                "an axis may not set seed: replication r of every cell runs with the "
                "sweep's seed + r"
            )
        return self

    def entries(self) -> list[tuple[Scalar, dict[str, Any]]]:
        """(label, overrides) for each entry of the axis, in file order."""
        if self.cases is not None:
            return list(self.cases.items())
        paths = [self.path] if isinstance(self.path, str) else list(self.path or [])
        out: list[tuple[Scalar, dict[str, Any]]] = []
        for value in self.values or []:
            set_to = value
            if self.scale is not None:
                # _one_kind admits a scale over numeric values only.
                assert isinstance(value, int | float)
                set_to = value * self.scale
            out.append((value, dict.fromkeys(paths, set_to)))
        return out


_SAFE_NAME = re.compile(r"[A-Za-z0-9_.-]+")


class SweepSpec(BaseModel):
    """A sweep: which scenario, which overrides, how many replications."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Also the folder its results go in.")
    description: str = ""
    scenario: str = Field(min_length=1, description="Built-in scenario name or file path.")
    seed: int = Field(1, ge=0, description="Replication r of every cell uses seed + r.")
    replications: int = Field(3, ge=1, le=1000)
    axes: list[Axis] = Field(default_factory=list)
    base_dir: str = Field(
        "", exclude=True, description="Where the sweep file lives (relative scenario paths)."
    )

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        # The name becomes runs/sweeps/NAME: a path separator or `..` would write
        # outside that folder.
        if not _SAFE_NAME.fullmatch(name) or name in (".", ".."):
            raise ValueError(
                f"must be a folder name (letters, digits, '.', '_', '-'), got {name!r}"
            )
        return name

    @model_validator(mode="after")
    def _distinct(self) -> SweepSpec:
        names = [a.name for a in self.axes]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"axis names must be distinct; repeated: {', '.join(dupes)}")
        reserved = sorted(set(names) & set(RESERVED))
        if reserved:
            raise ValueError(f"axis names may not be {', '.join(reserved)} (a row's own column)")
        return self

    @property
    def cells(self) -> int:
        """Number of grid cells (combinations of axis entries)."""
        n = 1
        for axis in self.axes:
            n *= len(axis.entries())
        return n


# Columns every row has besides the axes' and the metrics.
RESERVED = ("index", "replication", "seed", "error", "wall_seconds", "scenario")


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep: where it sits in the grid and the scenario data it runs."""

    index: int
    labels: dict[str, Scalar]
    replication: int
    seed: int
    data: Any
    label: str


def builtin_sweeps() -> list[str]:
    """Names of the built-in sweeps, sorted."""
    return sorted(p.stem for p in SWEEP_DIR.glob("*.yaml"))


def resolve_sweep(source: str | Path) -> Path:
    """The sweep file a name or path designates."""
    path = Path(source)
    if loading.is_file(path):
        return path
    builtin = SWEEP_DIR / f"{source}.yaml"
    if isinstance(source, str) and loading.is_file(builtin):
        return builtin
    if loading.is_dir(path):
        raise ScenarioError([f"{source}: is a directory, not a sweep file"])
    known = ", ".join(builtin_sweeps()) or "none"
    raise ScenarioError(
        [f"no sweep file or built-in sweep named {quoted(source)} (built-in sweeps: {known})"]
    )


def load_spec(source: str | Path | dict[str, Any] | SweepSpec) -> SweepSpec:
    """A validated SweepSpec from a file, a built-in name, a dict or a spec."""
    if isinstance(source, SweepSpec):
        return source
    if isinstance(source, dict):
        data, label, base = source, "sweep", Path.cwd()
    else:
        path = resolve_sweep(source)
        data, label, base = loading.read_data(path), str(path), path.parent
    if not isinstance(data, dict):
        raise ScenarioError([f"{label}: a sweep must be a mapping (name, scenario, axes, ...)"])
    try:
        spec = SweepSpec.model_validate({**data, "base_dir": str(base)})
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "the sweep"
            what = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                # Pydantic's "extra inputs are not permitted" does not say what is.
                what = _unknown_field(err["loc"])
            lines.append(f"{label}: {where}: {what[:1].lower()}{what[1:]}")
        raise ScenarioError(lines) from None
    scenario_path(spec, label)  # an unknown base scenario is the file's error, not each row's
    return spec


def _unknown_field(loc: tuple[Any, ...]) -> str:
    """The sentence for a field a sweep file or one of its axes does not have."""
    model: type[BaseModel] = Axis if loc[0] == "axes" and len(loc) == 3 else SweepSpec
    what = "an axis" if model is Axis else "a sweep"
    known = [name for name in model.model_fields if name != "base_dir"]
    return f"unknown field '{loc[-1]}' ({what} has {', '.join(known)})"


def scenario_path(spec: SweepSpec, label: str | None = None) -> Path:
    """The base scenario's file: relative to the sweep file, else a built-in name.

    An unknown one is blamed on `label` (the sweep file), else on the sweep's name.
    """
    beside = Path(spec.base_dir or ".") / spec.scenario
    if loading.is_file(beside):
        return beside
    try:
        return loading.resolve(spec.scenario)
    except ScenarioError as exc:
        where = label or f"sweep '{spec.name}'"
        raise ScenarioError([f"{where}: scenario: {exc.lines[0]}"]) from None


def fingerprint(spec: SweepSpec) -> str:
    """A short hash of what a sweep runs (its spec, base scenario and the simulator's
    version), to tell whether saved results are stale."""
    try:
        base = scenario_path(spec).read_text(encoding="utf-8")
    except (ScenarioError, OSError):
        base = ""
    text = json.dumps([spec.model_dump(mode="json"), base, __version__], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def run_count(spec: SweepSpec) -> int:
    """Runs of the sweep (grid cells times replications), counted without expanding.

    A sweep of more than `sim.limits.MAX_SWEEP_RUNS` runs is refused (a ScenarioError)
    before any is made: ten axes of a hundred values would be 10**20 scenarios to copy.
    """
    runs = spec.replications
    for axis in spec.axes:
        runs *= len(axis.cases or axis.values or [])
    if runs > MAX_SWEEP_RUNS:
        raise ScenarioError(
            [
                f"sweep '{spec.name}': its axes and replications make {runs:,} runs, past "
                f"the cap of {MAX_SWEEP_RUNS:,} runs of one sweep; use fewer values or "
                "replications"
            ]
        )
    return runs


def expand(spec: SweepSpec) -> list[RunTask]:
    """Every run of the sweep: each grid cell times each replication, in a fixed order."""
    run_count(spec)  # refuses a sweep past the cap before making any run
    path = scenario_path(spec)
    base = loading.read_data(path)
    if not isinstance(base, dict):
        raise ScenarioError([f"{path}: the base scenario is not a mapping of sections"])
    tasks: list[RunTask] = []
    grids = [axis.entries() for axis in spec.axes]
    for cell in itertools.product(*grids):
        labels = {axis.name: label for axis, (label, _) in zip(spec.axes, cell, strict=True)}
        for replication in range(spec.replications):
            data: Any = copy.deepcopy(base)
            seed = spec.seed + replication
            error = ""
            try:
                for _, overrides in cell:
                    for key, value in overrides.items():
                        loading.set_path(data, key, copy.deepcopy(value))
                data["seed"] = seed
            except ScenarioError as exc:
                # The override cannot even be placed: the run becomes an error row.
                error = exc.lines[0].removeprefix("--set ")
                data = {"__error__": error}
            text = ", ".join(f"{k}={v}" for k, v in labels.items()) or "base"
            tasks.append(
                RunTask(len(tasks), labels, replication, seed, data, f"{text} #{replication}")
            )
    return tasks
