"""A rule pack's files as read once: what the later stages read instead of the pack's folder.

Loading a pack (:func:`crs_rules.pack.load_protocol`) reads its folder once and keeps the result on
the protocol (:attr:`crs_rules.model.Protocol.files`): the documents the manifest lists, with their
positions, and the files kept beside them that are not protocol content: the seed protocol
(traceability) and the scenario files (``crs-rules test``, ``diff``). Traceability, scenarios,
release and ``diff`` read these values instead of the pack's files, so what they check is what was
validated, even if the folder changed (or went away) since. Files a loaded pack does not hold are
still read from the folder when a command asks for them (``crs-rules trace --check`` reads
``TRACEABILITY.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from .errors import Problem
from .loading import LoadedDocument

__all__ = ["ReadFile", "PackFiles"]


@dataclass(frozen=True)
class ReadFile:
    """One file read from the pack folder: ``raw`` bytes, or None with the problems that refused it.

    ``name`` is the file's name within the pack (``scenarios/grading.yaml``), ``display`` how the
    problems name it."""

    name: str
    display: str
    raw: bytes | None
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, eq=False)
class PackFiles:
    """The files of one pack folder as loaded.

    ``documents``: every file the manifest lists, manifest included, by kind (``manifest``,
    ``grading``, ...), loaded with positions; ``manifest_raw``: the manifest's bytes as read (a
    release edits its lines; no other document's bytes are kept). ``seed``: the seed protocol beside the pack, or None when there is none.
    ``scenarios``: the scenario files in name order, or None when the pack has no scenarios folder.
    """

    folder: str
    documents: Mapping[str, LoadedDocument]
    manifest_raw: bytes = field(repr=False)
    seed: ReadFile | None = field(default=None, repr=False)
    scenarios: tuple[ReadFile, ...] | None = field(default=None, repr=False)
