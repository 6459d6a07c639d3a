"""Every notebook here runs as a test (nbmake), with or without `pytest --nbmake`.

nbmake collects notebooks only when given `--nbmake`; `make test` runs plain `pytest`
over the `testpaths` (tests and notebooks), so this hook collects them in its place.
With `--nbmake` the plugin collects them itself and this hook stands aside.
"""

from pathlib import Path
from typing import Any

from nbmake.pytest_items import NotebookFile


def pytest_collect_file(file_path: Path, parent: Any) -> Any:
    if (
        file_path.suffix == ".ipynb"
        and not parent.config.option.nbmake
        and ".ipynb_checkpoints" not in file_path.parts
    ):
        return NotebookFile.from_parent(parent, path=file_path)
    return None
