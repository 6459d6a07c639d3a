"""`mypyc_attr` for the modules that `protocols.compiled` builds, without needing mypyc.

mypyc reads `@mypyc_attr(allow_interpreted_subclasses=True)` on a class it compiles:
without it, an interpreted class that subclasses the compiled one (another protocol's
`Call`, a plugin's `Agent`, the spilling `Recorder`) cannot be instantiated. mypyc
recognises the decorator by its full name, so the type checker (and so mypyc) is given
the real one; at run time it is the real one where mypy_extensions is installed (it is
wherever mypyc is), else a decorator that changes nothing, so plain runs need nothing
more than their requirements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr
else:
    try:
        from mypy_extensions import mypyc_attr
    except ImportError:  # no mypyc here: the plain modules only

        def mypyc_attr(*_attrs, **_options):
            """What mypy_extensions' decorator does at run time: nothing."""
            return lambda cls: cls


__all__ = ["mypyc_attr"]
