"""Where the shipped rule pack and the JSON Schemas are: inside the installed package.

They are package data, ``crs_rules/data/rules`` and ``crs_rules/data/schemas``, found with
:mod:`importlib.resources` wherever the package is installed. A build copies the repository's
top-level ``rules/`` and ``schemas/`` there (``setup.py``); in a clone they are symlinks to those
folders, so an editable install reads the files being edited.

Both functions return a real :class:`~pathlib.Path` (callers glob, join and read it, and the pack's
problems name its files). A package installed as a folder, as pip installs every wheel, is one
already; a package imported from a zip archive is extracted for the life of the process.
"""

from __future__ import annotations

import atexit
from contextlib import ExitStack
from functools import cache
from importlib.resources import as_file, files
from pathlib import Path

__all__ = ["schema_dir", "default_pack_dir"]

_extracted = ExitStack()
atexit.register(_extracted.close)


@cache
def _data_dir(name: str) -> Path:
    resource = files("crs_rules") / "data" / name
    if isinstance(resource, Path):
        return resource.resolve()  # in a clone: the top-level folder itself, as pharmacists know it
    return _extracted.enter_context(as_file(resource))


def schema_dir() -> Path:
    """The JSON Schemas of the packs, the input and the decision."""
    return _data_dir("schemas")


def default_pack_dir() -> Path:
    """The shipped rule pack (the one ``load_protocol()`` and ``crs-rules validate`` use by default)."""
    return _data_dir("rules")
