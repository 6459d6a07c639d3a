"""The mypyc build of the hot path (protocols.compiled): used only while current, and,
when it is, giving the same trace as the plain modules."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from protocols import compiled

REPO = Path(__file__).resolve().parent.parent


def _fake_build(tmp_path: Path) -> tuple[Path, Path]:
    """A source tree with the compiled modules' files, and a build noting their hashes."""
    root, build = tmp_path / "src", tmp_path / "build"
    for module in compiled.MODULES:
        (root / module).parent.mkdir(parents=True, exist_ok=True)
        (root / module).write_text(f"# {module}\n")
    build.mkdir()
    hashes = compiled.source_hashes(root)
    (build / compiled.MANIFEST).write_text(json.dumps(hashes))
    return root, build


def test_a_build_is_used_only_while_its_sources_are_unchanged(tmp_path: Path) -> None:
    root, build = _fake_build(tmp_path)
    assert compiled.usable(build, root)
    (root / compiled.MODULES[0]).write_text("# edited since the build\n")
    assert not compiled.usable(build, root)


def test_no_build_or_a_broken_manifest_means_the_plain_modules(tmp_path: Path) -> None:
    root, build = _fake_build(tmp_path)
    assert not compiled.usable(tmp_path / "nowhere", root)
    (build / compiled.MANIFEST).write_text("{not json")
    assert not compiled.usable(build, root)


_DIGESTS = """
import json, sys, tempfile
import protocols.kernel, sim
from sim.trace import run_digests
digests = {n: run_digests(sim.run(n)) for n in sys.argv[1:]}
with tempfile.TemporaryDirectory() as spill:  # a SpillingRecorder: a Recorder subclass
    digests["basic, spilled"] = run_digests(sim.run("basic", spill=spill))
print(json.dumps({"kernel": protocols.kernel.__file__, "digests": digests}))
"""
# Scenarios over the compiled modules' paths: HTTP with faults, queues, streams, agents,
# and the classes that interpreted modules derive from compiled ones (plugin and LLM
# agents from Agent, MCP's and A2A's calls from Call).
SCENARIOS = [
    "basic", "fault-crash", "fault-loss", "retry-storm-breaker", "collaboration",
    "llm-pipeline", "mcp-tools", "a2a-long-task",
]  # fmt: skip


def _run(compiled_modules: bool) -> dict[str, object]:
    env = {**os.environ, "SWITCHBOARD_COMPILED": "1" if compiled_modules else "0"}
    done = subprocess.run(
        [sys.executable, "-c", _DIGESTS, *SCENARIOS],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


@pytest.mark.skipif(not compiled.usable(), reason="no current mypyc build (make compiled)")
def test_the_compiled_modules_give_the_plain_modules_trace() -> None:
    fast, plain = _run(True), _run(False)
    assert str(fast["kernel"]).endswith(".so"), "the build was not imported"
    assert str(plain["kernel"]).endswith(".py"), "SWITCHBOARD_COMPILED=0 did not refuse it"
    assert fast["digests"] == plain["digests"]


_WITHOUT_MYPYC = """
import sys
sys.modules["mypy_extensions"] = None  # as on a machine without mypyc: its import fails
import sim
from protocols._mypyc import mypyc_attr
from sim.agents.roles import Agent
assert mypyc_attr(allow_interpreted_subclasses=True)(Agent) is Agent
print(len(sim.run("collaboration").spans))
"""


def test_the_plain_modules_need_no_mypyc() -> None:
    # The compiled modules' decorator (protocols._mypyc) comes from mypy_extensions, a
    # dev dependency; without it the plain modules still run (collaboration's roles
    # subclass the decorated Agent).
    env = {**os.environ, "SWITCHBOARD_COMPILED": "0"}
    done = subprocess.run(
        [sys.executable, "-c", _WITHOUT_MYPYC],
        cwd=REPO, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert int(done.stdout.split()[-1]) > 0


def test_the_message_constructor_takes_every_field_with_its_default() -> None:
    # Message's __init__ is written out (for mypyc), beside its dataclass fields: a field
    # added to one only would lose its value in copies (dataclasses.replace) or defaults.
    import dataclasses
    import inspect

    from protocols.transport import Message

    fields = [
        (f.name, f.default if f.default is not dataclasses.MISSING else inspect.Parameter.empty)
        for f in dataclasses.fields(Message)
    ]
    params = list(inspect.signature(Message.__init__).parameters.values())[1:]
    assert [(p.name, p.default) for p in params] == fields
