"""Shared by the YAML loading stages: problem positions and the words that quote what was written.

A trap (:class:`Trap`) is what is wrong with one node before it is placed in a file: the check's
name, the message and what is expected. :func:`trap_problem` places it at a 1-based position.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple, Protocol

from yaml.nodes import Node

from .errors import Problem

__all__ = ["PathKey", "Position", "Trap", "trap_problem", "Marked", "mark_position", "node_position", "shown",
           "quoted", "character_name", "TAG_PREFIX", "STR", "NULL", "BOOL", "INT", "FLOAT", "TIMESTAMP", "MERGE"]

PathKey = tuple[str | int, ...]
Position = tuple[int, int]

TAG_PREFIX = "tag:yaml.org,2002:"
STR = TAG_PREFIX + "str"
NULL = TAG_PREFIX + "null"
BOOL = TAG_PREFIX + "bool"
INT = TAG_PREFIX + "int"
FLOAT = TAG_PREFIX + "float"
TIMESTAMP = TAG_PREFIX + "timestamp"
MERGE = TAG_PREFIX + "merge"


class Trap(NamedTuple):
    """What is wrong with one node, before it is placed in a file: check name and wording."""

    check: str
    message: str
    expected: str


def trap_problem(file: str, where: Position, trap: Trap, path: PathKey = ()) -> Problem:
    line, column = where
    check = f"yaml.{trap.check}"
    return Problem(file, line, column, "-", trap.message, trap.expected, path=path, check=check)


class Marked(Protocol):
    """A PyYAML mark: the pure-Python and libyaml kinds both have 0-based line and column."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


def mark_position(mark: Marked | None) -> Position:
    """PyYAML marks are 0-based; problems and positions are 1-based."""
    if mark is None:
        return (0, 0)
    return (mark.line + 1, mark.column + 1)


def node_position(node: Node) -> Position:
    return mark_position(node.start_mark)


def shown(text: str) -> str:
    """The text as a pharmacist would recognise it in the file, shortened if very long."""
    if len(text) > 40:
        text = text[:37] + "..."
    return f"`{text}`"


def quoted(text: str) -> str:
    """How to write the text quoted, so YAML keeps it as text."""
    if len(text) > 40:
        text = text[:37] + "..."
    if "'" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def character_name(character: str) -> str:
    name = unicodedata.name(character, "")
    code = f"U+{ord(character):04X}"
    return f"{code} {name.lower()}" if name else code
