"""The README's YAML examples load: a reader who copies one gets a valid file.

Each top-level ```yaml block is a scenario or a sweep file; a sweep must expand into
scenarios that validate, every case of every axis.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from sim import loading
from sim.sweeps import spec

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"^```yaml\n(.*?)^```", README.read_text(), flags=re.S | re.M)


def test_the_readme_has_yaml_examples() -> None:
    assert len(BLOCKS) >= 2


@pytest.mark.parametrize("text", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_a_readme_example_loads(text: str, tmp_path: Path) -> None:
    data = yaml.safe_load(text)
    if "axes" in data:
        path = tmp_path / f"{data['name']}.yaml"
        path.write_text(text)
        tasks = spec.expand(spec.load_spec(path))
        # One run per distinct scenario: replications differ only by seed.
        for task in {task.label.split(" #")[0]: task for task in tasks}.values():
            loading.validate(task.data, task.label)
    else:
        loading.from_text(text, "README")
