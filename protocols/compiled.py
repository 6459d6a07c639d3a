"""Modules of the hot path compiled with mypyc, used in place of their source when built.

The build is opt-in: `make compiled` (and `make bench`, which runs it first) compiles
`MODULES` with mypyc into `.compiled/` at the top of the repository, and notes the hash
of each module's source there. Each package holding one of them (`protocols`,
`protocols.http`, `sim`, `sim.trace`, `sim.agents`, `sim.faults`) calls `extend` on its `__path__`
first thing, so that its compiled modules are found before their source, but only when

- a build exists and every compiled module's source is unchanged since (a stale build
  is ignored, never half used), and
- `SWITCHBOARD_COMPILED` is not `0` (which forces the plain modules).

Otherwise the plain modules are imported, as without a build. The compiled modules run
the same code, so they give the same trace: `tests/test_compiled.py` compares the
digests of both when a build exists.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from functools import cache
from pathlib import Path

# Repository-relative paths of the compiled modules: the per-message path of a plain
# request (the kernel, node, call, worker pool, HTTP, network, recorder, the basic
# roles, the driver of a plugin role's code, the workload's arrival times and the draws of
# latencies and service times). A compiled class that interpreted code subclasses (`Call`, `Agent`,
# `Recorder`) says so with `protocols._mypyc.mypyc_attr`: mypyc forbids it otherwise.
MODULES = (
    "protocols/kernel.py",
    "protocols/journal.py",
    "protocols/transport.py",
    "protocols/node.py",
    "protocols/call.py",
    "protocols/workers.py",
    "protocols/http/wire.py",
    "protocols/http/pool.py",
    "protocols/http/client.py",
    "protocols/http/server.py",
    "sim/network.py",
    "sim/trace/recorder.py",
    "sim/faults/state.py",
    "sim/agents/roles.py",
    "sim/agents/plugin_driver.py",
    "sim/arrivals.py",
    "sim/draws.py",
)
ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT / ".compiled"
MANIFEST = "sources.json"


def source_hashes(root: Path = ROOT) -> dict[str, str]:
    """The SHA-256 of each compiled module's source under `root`."""
    return {m: hashlib.sha256((root / m).read_bytes()).hexdigest() for m in MODULES}


def usable(build: Path = BUILD, root: Path = ROOT) -> bool:
    """Whether `build` holds a compiled build of the sources under `root` as they are now."""
    try:
        recorded = json.loads((build / MANIFEST).read_text())
        return bool(recorded == source_hashes(root))
    except (OSError, ValueError):
        return False


@cache
def active() -> bool:
    """Whether this process imports the compiled modules (a usable build, not refused)."""
    if os.environ.get("SWITCHBOARD_COMPILED", "") == "0":
        return False
    if not usable():
        return False
    # mypyc's shared library of the build is a top-level module of its own.
    if str(BUILD) not in sys.path:
        sys.path.append(str(BUILD))
    return True


def extend(path: list[str], package: str) -> list[str]:
    """`package`'s `__path__`, with its folder of compiled modules first when `active`."""
    folder = BUILD.joinpath(*package.split("."))
    if active() and folder.is_dir() and str(folder) not in path:
        path.insert(0, str(folder))
    return path
