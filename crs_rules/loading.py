"""Load a YAML rule-pack file into plain Python data, with exact positions, refusing YAML's traps.

Clinical pharmacists write the rule packs, so a value must mean exactly what it looks like. YAML 1.1
(what PyYAML implements) silently changes some plain values: ``no`` becomes ``false``, ``010``
becomes ``8``, ``1:30`` becomes ``90``, ``2026-03-10`` becomes a date, a repeated key silently
replaces the first one, and anchors, aliases and merge keys pull in content written elsewhere. This
module refuses all of these, each as a :class:`~crs_rules.errors.Problem` at the exact line and
column, worded for the person who edits the file.

Positions come from PyYAML's own node marks (0-based there, 1-based here). Loading runs in stages,
each in its module: the raw text (:mod:`crs_rules._yaml_text`), the node tree composed without acting
on anchors, aliases or tags and built into plain data (:mod:`crs_rules._yaml_tree`), and each plain
scalar and key checked on the way (:mod:`crs_rules._yaml_scalars`). This module reads files within
bounds and returns the result, :class:`LoadedDocument`.
"""

from __future__ import annotations

import errno
import os
import pathlib
import stat
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping, Sequence

import yaml
from yaml.error import MarkedYAMLError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from ._yaml_text import CHECK_SYNTAX, LineIndex, forbidden_character_problems, invisible_problems, syntax_problem, tab_problems
from ._yaml_tree import MAX_DEPTH, TooDeep, TreeBuilder, compose
from ._yaml_words import PathKey, Position, Trap, node_position, shown, trap_problem
from .errors import Problem

__all__ = [
    "LoadedDocument",
    "load_yaml_text",
    "load_yaml_file",
    "load_yaml_bytes",
    "read_bounded",
    "UnreadableFile",
    "MAX_FILE_BYTES",
]

#: The largest file read, in bytes (1 MiB). The shipped pack's largest file is under 10 KiB; the
#: limit keeps a wrong or hostile file (a log, a disk image) from filling the memory.
MAX_FILE_BYTES = 1024 * 1024

_TOP_LEVEL = "expected a YAML mapping at the top level (lines of `name: value`)"


# --------------------------------------------------------------------------------------------
# The public result
# --------------------------------------------------------------------------------------------


def _empty_marks() -> Mapping[PathKey, Position]:
    return MappingProxyType({})


@dataclass(frozen=True)
class LoadedDocument:
    """A YAML file read into plain Python data, with the position of every key and value.

    ``data`` is built only from dicts (insertion-ordered), lists, str, int, float, bool and None.
    ``value_marks`` and ``key_marks`` map a path (keys and list indexes from the root) to a 1-based
    ``(line, column)``; use :meth:`position` and :meth:`key_position` rather than reading them.
    """

    file: str
    data: Any
    value_marks: Mapping[PathKey, Position] = field(
        default_factory=_empty_marks, repr=False, compare=False, kw_only=True
    )
    key_marks: Mapping[PathKey, Position] = field(
        default_factory=_empty_marks, repr=False, compare=False, kw_only=True
    )

    def __reduce__(self) -> tuple[Any, ...]:
        # The marks are read-only views, which pickle cannot copy: a document crosses to another
        # process (``diff``'s workers) as plain dicts, read-only again on arrival.
        return (_document, (self.file, self.data, dict(self.value_marks), dict(self.key_marks)))

    def position(self, path: Sequence[str | int]) -> tuple[int, int]:
        """1-based (line, column) of the value node at `path` (keys and list indexes from the root);
        if the path does not exist, the position of its nearest existing ancestor."""
        wanted = tuple(path)
        for end in range(len(wanted), -1, -1):
            found = self.value_marks.get(wanted[:end])
            if found is not None:
                return found
        return (0, 0)

    def key_position(self, path: Sequence[str | int]) -> tuple[int, int]:
        """1-based position of the mapping KEY whose value is at `path` (falls back like position).

        A list item has no key: for it (and for the root) the item's own position is given, so a
        problem about ``rules[3]`` points at that item rather than at the ``rules:`` key.
        """
        wanted = tuple(path)
        for end in range(len(wanted), -1, -1):
            prefix = wanted[:end]
            found = self.key_marks.get(prefix)
            if found is None:
                found = self.value_marks.get(prefix)
            if found is not None:
                return found
        return (0, 0)


def _document(file: str, data: Any, value_marks: dict[PathKey, Position],
              key_marks: dict[PathKey, Position]) -> LoadedDocument:
    return LoadedDocument(file, data, value_marks=MappingProxyType(value_marks),
                          key_marks=MappingProxyType(key_marks))


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _root_problems(root: Node | None, file: str) -> list[Problem]:
    if root is None or (isinstance(root, ScalarNode) and root.style is None and root.value == ""):
        return [trap_problem(file, (0, 0), Trap("empty", "the file is empty", _TOP_LEVEL))]
    if isinstance(root, MappingNode):
        return []
    if isinstance(root, SequenceNode):
        what = "a list"
    else:
        what = f"a single value ({shown(str(root.value))})"
    trap = Trap("root-not-mapping", f"the top level is {what}, not a mapping", _TOP_LEVEL)
    return [trap_problem(file, node_position(root), trap)]


def _load(text: str, file: str, times_as_text: bool = False) -> tuple[LoadedDocument | None, list[Problem]]:
    lines = LineIndex(text)
    problems = tab_problems(text, lines, file) + invisible_problems(text, lines, file)
    forbidden = forbidden_character_problems(text, lines, file)
    if forbidden:  # PyYAML's reader refuses the whole text: nothing more can be checked
        return None, sorted(problems + forbidden)
    try:
        root, composer = compose(text)
    except TooDeep as error:
        trap = Trap(
            "too-deep",
            f"the content is nested more than {MAX_DEPTH} levels deep",
            "flatten the structure",
        )
        return None, sorted(problems + [trap_problem(file, error.position, trap)])
    except MarkedYAMLError as error:
        syntax = syntax_problem(error, file)
        tab_lines = {problem.line for problem in problems if problem.check == "yaml.tab"}
        if syntax.line not in tab_lines:  # a tab on that line is the cause, already reported
            problems.append(syntax)
        return None, sorted(problems)
    problems += _root_problems(root, file)
    builder = TreeBuilder(file, composer, times_as_text)
    data = builder.build(root, ()) if root is not None else None
    problems += builder.problems
    if problems:
        return None, sorted(problems)
    document = LoadedDocument(
        file,
        data,
        value_marks=MappingProxyType(builder.values),
        key_marks=MappingProxyType(builder.keys),
    )
    return document, []


def load_yaml_text(
    text: str, file: str, *, times_as_text: bool = False
) -> tuple[LoadedDocument | None, list[Problem]]:
    """Read YAML text. Returns ``(document, [])``, or ``(None, problems)`` listing every problem
    found, sorted by position. Never raises for any text: a pack that cannot be read is refused.

    ``times_as_text`` keeps unquoted dates and times as the text written instead of refusing
    them; only for callers that check date-times themselves (patient input does)."""
    try:
        return _load(text, file, times_as_text)
    except (yaml.YAMLError, RecursionError, ValueError) as error:
        # PyYAML can fail in ways not listed above; the file is refused, never half-read.
        said = f"{type(error).__name__}: {error}".replace("\n", " ")
        trap = Trap("unreadable", f"the YAML cannot be read ({said})", CHECK_SYNTAX)
    except Exception as error:  # noqa: BLE001 - the promise is "never raises for any text"
        # A defect in this module: the file is refused rather than crash the caller. The tests
        # assert this check never appears.
        said = f"{type(error).__name__}: {error}".replace("\n", " ")
        trap = Trap(
            "internal-error",
            f"the loader failed on this file ({said})",
            "report this to the crs-rules maintainers",
        )
    return None, [trap_problem(file, (0, 0), trap)]


_FILE_TYPES = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class UnreadableFile(Exception):
    """A file :func:`read_bounded` refuses: ``message`` and ``expected`` are the problem's words."""

    def __init__(self, message: str, expected: str) -> None:
        super().__init__(message)
        self.message = message
        self.expected = expected


def _file_type(mode: int) -> str:
    return next((name for test, name in _FILE_TYPES if test(mode)), "not a regular file")


def read_bounded(path: pathlib.Path, limit: int = MAX_FILE_BYTES, *, follow_links: bool = True) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes (a link as the last component of the
    path is followed only if ``follow_links``).

    The file is opened without blocking (a FIFO cannot hang the caller) and its type and size are
    checked on the open file before anything is read; at most ``limit`` bytes are ever read, even
    from a file that grows meanwhile. Raises :class:`UnreadableFile` for anything else.
    """
    try:
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
        if not follow_links:
            flags |= getattr(os, "O_NOFOLLOW", 0)
        descriptor = os.open(path, flags)
    except OSError as error:
        if error.errno == errno.ENXIO:  # a FIFO or socket with nobody on the other end
            raise UnreadableFile("the file is not a regular file (a FIFO)", "expected a YAML file") from None
        reason = error.strerror or str(error)
        raise UnreadableFile(f"the file cannot be read ({reason})",
                             "check the file name and that the file can be opened") from None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode):
            raise UnreadableFile(f"the file is not a regular file ({_file_type(status.st_mode)})",
                                 "expected a YAML file")
        if status.st_size > limit:
            raise UnreadableFile(f"the file is {status.st_size} bytes", _size_expected(limit))
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(descriptor, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise UnreadableFile(f"the file is more than {limit} bytes", _size_expected(limit))
        return b"".join(chunks)
    except OSError as error:
        reason = error.strerror or str(error)
        raise UnreadableFile(f"the file cannot be read ({reason})",
                             "check the file name and that the file can be opened") from None
    finally:
        os.close(descriptor)


def _size_expected(limit: int) -> str:
    mib = f" ({limit / 1024 / 1024:g} MiB)" if limit % (1024 * 1024) == 0 else ""
    return f"expected at most {limit} bytes{mib} per file"


def load_yaml_file(
    path: pathlib.Path, file: str | None = None
) -> tuple[LoadedDocument | None, list[Problem]]:
    """Read a YAML file as UTF-8 and load it like :func:`load_yaml_text`. ``file`` is the name
    used in problems (default: the path). A file that cannot be read, is not a regular file, is
    larger than :data:`MAX_FILE_BYTES` or is not UTF-8 gives a problem, never an exception."""
    name = str(path) if file is None else file
    try:
        raw = read_bounded(path)
    except UnreadableFile as error:
        return None, [trap_problem(name, (0, 0), Trap("unreadable", error.message, error.expected))]
    except ValueError as error:  # a path with a NUL character
        trap = Trap("unreadable", f"the file cannot be read ({error})",
                     "check the file name and that the file can be opened")
        return None, [trap_problem(name, (0, 0), trap)]
    return load_yaml_bytes(raw, name)


def load_yaml_bytes(raw: bytes, file: str) -> tuple[LoadedDocument | None, list[Problem]]:
    """Decode UTF-8 bytes and load them like :func:`load_yaml_text` (a problem if not UTF-8)."""
    name = file
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        before = raw[: error.start].decode("utf-8", errors="replace")
        where = LineIndex(before).position(len(before))
        trap = Trap(
            "encoding",
            f"the file is not UTF-8 text (byte 0x{raw[error.start]:02X} cannot be read)",
            "save the file with the UTF-8 encoding",
        )
        return None, [trap_problem(name, where, trap)]
    return load_yaml_text(text, name)
