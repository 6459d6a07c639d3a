"""Compile the hot path's modules with mypyc into `.compiled/` (see protocols.compiled).

    python -m bench.compile          # build, unless the build there is current
    python -m bench.compile --force  # build again

Needs mypyc (the pinned mypy of requirements-dev.txt) and a C compiler; without them it
says so and leaves the plain modules in use. The build takes a few minutes (mypy checks
the modules and what they import first). `SWITCHBOARD_COMPILED=0` ignores a build.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from protocols.compiled import BUILD, MANIFEST, MODULES, ROOT, source_hashes, usable


def build(force: bool = False) -> bool:
    """Compile `MODULES` into `BUILD`; whether a current build is there afterwards."""
    if usable() and not force:
        print(f"compiled: {BUILD} is current")
        return True
    try:
        from mypyc.build import mypycify
        from setuptools import setup
    except ImportError as missing:
        print(f"compiled: not built ({missing.name} is not installed); plain modules in use")
        return False
    hashes = source_hashes()
    os.chdir(ROOT)  # mypy reads its settings (pyproject.toml) from here
    shutil.rmtree(BUILD, ignore_errors=True)
    with tempfile.TemporaryDirectory() as scratch:
        try:
            setup(
                name="switchboard-compiled",
                ext_modules=mypycify(
                    [str(ROOT / m) for m in MODULES], opt_level="3", target_dir=scratch
                ),
                script_args=[
                    "--quiet", "build_ext", "--build-lib", str(BUILD),
                    "--build-temp", str(Path(scratch) / "objects"),
                ],
            )  # fmt: skip
        except (SystemExit, Exception) as failed:  # a compiler error ends setup with exit
            shutil.rmtree(BUILD, ignore_errors=True)
            print(f"compiled: not built ({failed}); plain modules in use")
            return False
    # Written last: a build interrupted before this line is never used.
    (BUILD / MANIFEST).write_text(json.dumps(hashes, indent=2, sort_keys=True) + "\n")
    print(f"compiled: {len(MODULES)} modules built into {BUILD}")
    return True


if __name__ == "__main__":
    sys.exit(0 if build(force="--force" in sys.argv[1:]) else 1)
