"""The dashboard on a saved run: wall time of each page and Replay interaction, and the
dashboard process's peak memory, under Streamlit's AppTest (no browser).

    python -m bench.dashboard DIR        # DIR: a saved or spilled run (`sim run --spill`)

Make a spilled run of about a million messages with
`python -m bench.dashboard --make DIR` (the kernel benchmark's fleet, 1,000 agents).
The run is opened as the Run page's "Open a saved run" opens it (a `LazyRun`); each
step's time includes Streamlit's rerun. Run it in a fresh process: the peak is the
process's own (`ru_maxrss`).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def peak_mb() -> int:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def make(directory: str) -> None:
    """A spilled run of the kernel benchmark's fleet: 500 clients each calling its own
    service 10 times a second for 100 s, about a million messages."""
    from bench.kernel import pairs_scenario
    from sim.world import World

    started = time.perf_counter()
    run = World(pairs_scenario(500, 10.0, 100.0), spill=directory).run()
    print(
        f"spilled {run.row_count('messages'):,} messages to {directory} in "
        f"{time.perf_counter() - started:.1f} s, peak {peak_mb():,} MB"
    )


def measure(directory: str) -> list[tuple[str, float, int]]:
    """Each step's (name, wall seconds, peak MB after it)."""
    from streamlit.testing.v1 import AppTest

    from sim.trace.lazy import LazyRun

    run = LazyRun.open(directory)
    at = AppTest.from_file(APP, default_timeout=600)
    at.session_state["run"] = run
    steps: list[tuple[str, float, int]] = []

    def step(name: str, action: Callable[[], Any]) -> None:
        started = time.perf_counter()
        action()
        wall = time.perf_counter() - started
        if at.exception:
            raise SystemExit(f"{name}: {[e.value for e in at.exception]}")
        steps.append((name, wall, peak_mb()))
        print(f"  {name:<34} {wall:7.2f} s   peak {peak_mb():>6,} MB", flush=True)

    duration = run.duration

    def page(name: str) -> Callable[[], Any]:
        return lambda: at.switch_page(f"ui/pages/{name}.py").run()

    step("Run page", at.run)
    step("Replay", page("replay"))
    step(
        "Replay: window to the middle tenth",
        lambda: at.slider(key="replay_window").set_value((0.45 * duration, 0.55 * duration)).run(),
    )
    step(
        "Replay: whole run as the window",
        lambda: at.slider(key="replay_window").set_value((0.0, duration)).run(),
    )
    step(
        "Replay: a 1 s window",
        lambda: at.slider(key="replay_window").set_value((10.0, 11.0)).run(),
    )
    step("Replay: cursor moved", lambda: at.slider(key="replay_cursor").set_value(10.5).run())
    step(
        "Replay: logical time",
        lambda: at.segmented_control(key="replay_time").set_value("logical").run(),
    )
    step(
        "Replay: physical time",
        lambda: at.segmented_control(key="replay_time").set_value("physical").run(),
    )
    step(
        "Replay: overview per link",
        lambda: at.segmented_control(key="replay_overview_by").set_value("link").run(),
    )
    step("Replay: next fault", lambda: at.button(key="jump_fault").click().run())
    message = at.selectbox(key="replay_message")
    picks = [o for o in message.options if o not in ("None", None)]
    if picks:
        step("Replay: a message picked", lambda: message.select_index(1).run())
    step("Cascades", page("cascades"))
    step("Topology", page("topology"))
    step("Breakers", page("breakers"))
    step("Queues", page("queues"))
    step("Compare", page("compare"))
    loaded = run.tables.loaded()
    print(f"  tables loaded whole: {', '.join(loaded) or 'none'}")
    return steps


def main(argv: list[str]) -> None:
    """`DIR` to measure, or `--make DIR` to make the run first."""
    if len(argv) == 2 and argv[0] == "--make":
        make(argv[1])
        return
    if len(argv) != 1:
        raise SystemExit(__doc__)
    measure(argv[0])
    print(f"peak {peak_mb():,} MB")


if __name__ == "__main__":
    main(sys.argv[1:])
