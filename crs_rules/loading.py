"""Load a YAML rule-pack file into plain Python data, with exact positions, refusing YAML's traps.

Clinical pharmacists write the rule packs, so a value must mean exactly what it looks like. YAML 1.1
(what PyYAML implements) silently changes some plain values: ``no`` becomes ``false``, ``010``
becomes ``8``, ``1:30`` becomes ``90``, ``2026-03-10`` becomes a date, a repeated key silently
replaces the first one, and anchors, aliases and merge keys pull in content written elsewhere. This
module refuses all of these, each as a :class:`~crs_rules.errors.Problem` at the exact line and
column, worded for the person who edits the file.

Positions come from PyYAML's own node marks (0-based there, 1-based here). The composer is PyYAML's
``SafeLoader`` with one change: anchors, aliases and explicit tags are recorded, never acted on, so
each one is reported where it is written. The plain Python data is then built from the node tree by
this module, so no YAML constructor ever sees a value that was not checked first.
"""

from __future__ import annotations

import bisect
import errno
import math
import os
import pathlib
import re
import stat
import unicodedata
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any, Callable, Mapping, NamedTuple, Protocol, Sequence, cast

import yaml
from yaml.constructor import SafeConstructor
from yaml.error import Mark, MarkedYAMLError
from yaml.events import AliasEvent, Event, NodeEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.reader import Reader

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

PathKey = tuple[str | int, ...]
Position = tuple[int, int]

#: How deeply mappings and lists may nest. Rule packs need a handful of levels; the limit keeps
#: PyYAML's recursive composer (and this module's builder) far from Python's recursion limit.
MAX_DEPTH = 50

#: The largest file read, in bytes (1 MiB). The shipped pack's largest file is under 10 KiB; the
#: limit keeps a wrong or hostile file (a log, a disk image) from filling the memory.
MAX_FILE_BYTES = 1024 * 1024

_TAG_PREFIX = "tag:yaml.org,2002:"
_STR = _TAG_PREFIX + "str"
_NULL = _TAG_PREFIX + "null"
_BOOL = _TAG_PREFIX + "bool"
_INT = _TAG_PREFIX + "int"
_FLOAT = _TAG_PREFIX + "float"
_TIMESTAMP = _TAG_PREFIX + "timestamp"
_MERGE = _TAG_PREFIX + "merge"

_TOP_LEVEL = "expected a YAML mapping at the top level (lines of `name: value`)"

# Plain numbers accepted as written: YAML 1.1 and 1.2 readers all agree on these.
_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
# PyYAML reads these plain scalars as text, but YAML 1.2 readers (and people) read numbers.
_OCTAL_0O = re.compile(r"[-+]?0o[0-7]+")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")
_YAML12_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = re.compile(r"[-+]?\.(?:inf|nan)", re.IGNORECASE)
_Y_N = {"y": "true", "Y": "true", "n": "false", "N": "false"}

# Line breaks as PyYAML's reader counts them, so computed positions agree with node marks.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# Characters that look like nothing (or like a space) but change text: a drug name with a
# no-break space in it no longer matches the same name typed normally.
_INVISIBLE = re.compile(
    "[\x85\u00a0\u00ad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u2069\u3000\ufeff]"
)


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


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


class _Trap(NamedTuple):
    """What is wrong with one node, before it is placed in a file: check name and wording."""

    check: str
    message: str
    expected: str


def _problem(file: str, where: Position, trap: _Trap, path: PathKey = ()) -> Problem:
    line, column = where
    check = f"yaml.{trap.check}"
    return Problem(file, line, column, "-", trap.message, trap.expected, path=path, check=check)


class _Marked(Protocol):
    """A PyYAML mark: the pure-Python and libyaml kinds both have 0-based line and column."""

    @property
    def line(self) -> int: ...

    @property
    def column(self) -> int: ...


def _mark_position(mark: _Marked | None) -> Position:
    """PyYAML marks are 0-based; problems and positions are 1-based."""
    if mark is None:
        return (0, 0)
    return (mark.line + 1, mark.column + 1)


def _node_position(node: Node) -> Position:
    return _mark_position(node.start_mark)


def _shown(text: str) -> str:
    """The text as a pharmacist would recognise it in the file, shortened if very long."""
    if len(text) > 40:
        text = text[:37] + "..."
    return f"`{text}`"


def _quoted(text: str) -> str:
    """How to write the text quoted, so YAML keeps it as text."""
    if len(text) > 40:
        text = text[:37] + "..."
    if "'" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _character_name(character: str) -> str:
    name = unicodedata.name(character, "")
    code = f"U+{ord(character):04X}"
    return f"{code} {name.lower()}" if name else code


class _LineIndex:
    """Turns an offset in the text into PyYAML's 1-based (line, column).

    Used only where no node exists (tabs, forbidden characters, bytes that are not UTF-8). It counts
    line breaks and byte-order marks exactly as PyYAML's reader does, so the positions it gives
    agree with node marks even for the rare line breaks (NEL, U+2028) editors may not show.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._starts = [0] + [match.end() for match in _LINE_BREAK.finditer(text)]

    def position(self, offset: int) -> Position:
        line = bisect.bisect_right(self._starts, offset) - 1
        start = self._starts[line]
        column = offset - start - self._text.count("\ufeff", start, offset)
        return (line + 1, column + 1)


# --------------------------------------------------------------------------------------------
# Checks on the raw text (no YAML needed)
# --------------------------------------------------------------------------------------------


def _tab_problems(text: str, lines: _LineIndex, file: str) -> list[Problem]:
    """One problem per line holding tabs, at its first tab: YAML indentation counts only
    spaces, and a tab that parses (in a value, before a comment) still looks like spaces."""
    tabs_by_line: dict[int, list[Position]] = {}
    for match in re.finditer("\t", text):
        where = lines.position(match.start())
        tabs_by_line.setdefault(where[0], []).append(where)
    problems = []
    for where_all in tabs_by_line.values():
        more = len(where_all) - 1
        message = "a tab character is here" + (f" (and {more} more on this line)" if more else "")
        trap = _Trap("tab", message, "replace tabs with spaces; YAML indentation must use spaces")
        problems.append(_problem(file, where_all[0], trap))
    return problems


def _invisible_problems(text: str, lines: _LineIndex, file: str) -> list[Problem]:
    """Characters that look like a space or like nothing but make text differ from what is seen.
    A byte-order mark at the very start of the file is allowed (editors add it)."""
    problems = []
    for match in _INVISIBLE.finditer(text):
        if match.start() == 0 and match.group() == "\ufeff":
            continue
        trap = _Trap(
            "invisible-character",
            f"an invisible character is here ({_character_name(match.group())})",
            "delete it, or replace it with an ordinary space",
        )
        problems.append(_problem(file, lines.position(match.start()), trap))
    return problems


def _forbidden_character_problems(text: str, lines: _LineIndex, file: str) -> list[Problem]:
    """Control characters YAML does not allow at all. PyYAML stops at the first; all are listed."""
    problems = []
    for match in Reader.NON_PRINTABLE.finditer(text):
        trap = _Trap(
            "control-character",
            f"a character YAML does not allow is here ({_character_name(match.group())})",
            "delete it; it may have come in when copying text from another program",
        )
        problems.append(_problem(file, lines.position(match.start()), trap))
    return problems


# --------------------------------------------------------------------------------------------
# Composing: PyYAML's SafeLoader composer, made to record hidden content instead of using it
# --------------------------------------------------------------------------------------------


class _AliasNode(ScalarNode):
    """Stands where an alias (``*name``) was written; it carries nothing but the name."""

    def __init__(self, event: NodeEvent) -> None:
        super().__init__(_NULL, "", cast(Mark, event.start_mark), cast(Mark, event.end_mark))
        self.anchor = event.anchor or ""


class _TooDeep(Exception):
    """Nesting went past :data:`MAX_DEPTH`; raised to stop composing, caught in this module."""

    def __init__(self, mark: _Marked | None) -> None:
        super().__init__("nested too deeply")
        self.position = _mark_position(mark)


class _RecordingComposer(yaml.SafeLoader):
    """SafeLoader whose composer records anchors, aliases and tags instead of acting on them.

    Stock PyYAML turns an alias into the very node object of its anchor (so shared content can no
    longer be told apart from content written out), raises on an unknown alias and on a reused
    anchor name. Here every alias becomes an inert :class:`_AliasNode` and the anchor table is kept
    empty, so each anchor, alias and tag can be reported at its own position, all at once.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.anchored: dict[int, str] = {}
        self.tagged: dict[int, str] = {}
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(AliasEvent):
            return _AliasNode(cast(NodeEvent, self._next_event(self.get_event)))
        event = cast(NodeEvent, self._next_event(self.peek_event))
        if self._depth >= MAX_DEPTH:
            raise _TooDeep(event.start_mark)
        self.anchors.clear()
        self._depth += 1
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
        if node is not None:
            if event.anchor is not None:
                self.anchored[id(node)] = event.anchor
            tag: str | None = getattr(event, "tag", None)
            if tag is not None:
                self.tagged[id(node)] = tag
        return node

    @staticmethod
    def _next_event(take: Callable[[], Any]) -> Event:
        """The parser's event accessors are untyped in the stubs; this gives them a type."""
        return cast(Event, take())


def _compose(text: str) -> tuple[Node | None, _RecordingComposer]:
    composer = _RecordingComposer(text)
    try:
        return composer.get_single_node(), composer
    finally:
        composer.dispose()


# --------------------------------------------------------------------------------------------
# Plain scalars YAML 1.1 would silently retype
# --------------------------------------------------------------------------------------------

_CONSTRUCTOR = SafeConstructor()
_UNREADABLE = object()
_READERS: dict[str, Callable[[ScalarNode], object]] = {
    _BOOL: _CONSTRUCTOR.construct_yaml_bool,
    _INT: _CONSTRUCTOR.construct_yaml_int,
    _FLOAT: _CONSTRUCTOR.construct_yaml_float,
    _TIMESTAMP: _CONSTRUCTOR.construct_yaml_timestamp,
    _NULL: lambda node: None,
}


def _pyyaml_value(node: ScalarNode) -> object:
    """What PyYAML's own constructor would make of this plain scalar, or ``_UNREADABLE`` when even
    PyYAML fails on it (``2026-02-30`` raises ValueError inside ``yaml.safe_load``)."""
    reader = _READERS.get(node.tag)
    if reader is None:
        return _UNREADABLE
    try:
        return reader(node)
    except (ValueError, ArithmeticError, yaml.YAMLError):
        return _UNREADABLE


def _reading(node: ScalarNode) -> str:
    """In words, what PyYAML would make of this plain scalar (for the message)."""
    value = _pyyaml_value(node)
    if value is _UNREADABLE and node.tag == _TIMESTAMP:
        return "a date"
    return _describe(value)


def _describe(value: object) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isnan(value):
        return "'not a number'"
    if isinstance(value, float) and math.isinf(value):
        return "infinity" if value > 0 else "minus infinity"
    if isinstance(value, (int, float)):
        return f"the number {value}"
    if isinstance(value, datetime):
        return "a date and time"
    if isinstance(value, date):
        return "a date"
    return "something other than text"


def _number_text(value: object) -> str | None:
    """A finite number as a message shows it; None when PyYAML could not read it, it is infinite,
    or it is too long for Python to turn into digits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and value.bit_length() > 3000:
        return None
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _too_large(text: str) -> _Trap:
    return _Trap(
        "number-too-large", f"{_shown(text)} is too large a number", "write a smaller number"
    )


def _unusable_number(text: str, value: object) -> _Trap:
    """For a number PyYAML cannot read (``0x_``) or that overflows (``1.0e+400``, huge digits)."""
    if (isinstance(value, float) and math.isinf(value)) or len(text) > 300:
        return _too_large(text)
    return _Trap(
        "number-form",
        f"{_shown(text)} is not an ordinary number",
        f"write the number in ordinary digits, or quote it ({_quoted(text)}) if you mean the text",
    )


def _plain_decimal(text: str) -> str | None:
    """``1e3`` -> ``1000``, ``-.5`` -> ``-0.5``: the same number in ordinary decimal digits."""
    try:
        number = Decimal(text)
    except InvalidOperation:
        return None
    if not number.is_finite() or abs(number.adjusted()) > 15:
        return None
    return format(number, "f")


def _scalar_trap(node: ScalarNode) -> _Trap | None:
    """Why this value must not be accepted as written, or None. Only plain (unquoted) scalars
    are concerned: anything quoted or in a block (``|``, ``>``) is text, as it looks."""
    if node.style is not None:
        return None
    text: str = node.value
    check = _SCALAR_CHECKS.get(node.tag)
    if check is None:  # `=` and `<<` as values: PyYAML's own constructor fails on them
        return _Trap(
            "special-symbol",
            f"{_shown(text)} has a special meaning in YAML",
            f"quote it ({_quoted(text)})",
        )
    return check(node, text)


def _null_trap(node: ScalarNode, text: str) -> _Trap | None:
    if text in ("null", ""):
        return None
    return _Trap(
        "null",
        f"{_shown(text)} would be read as empty (null)",
        f"write null, or quote it ({_quoted(text)}) if you mean the text",
    )


def _bool_trap(node: ScalarNode, text: str) -> _Trap | None:
    if text in ("true", "false"):
        return None
    reading = _reading(node)
    return _Trap(
        "boolean",
        f"{_shown(text)} would be read as {reading}",
        f"write {reading}, or quote it ({_quoted(text)}) if you mean the word",
    )


def _int_trap(node: ScalarNode, text: str) -> _Trap | None:
    if _PLAIN_INT.fullmatch(text):
        try:
            int(text)
        except ValueError:  # Python refuses to convert more than a few thousand digits
            return _too_large(text)
        return None
    read = _pyyaml_value(node)
    value = _number_text(read)
    if value is None:
        return _unusable_number(text, read)
    digits = text.lstrip("+-")
    if ":" in text:
        return _sexagesimal_trap(text, value)
    if digits[:2] in ("0x", "0b"):
        base = "base 16" if digits[1] == "x" else "base 2"
        return _Trap(
            "number-base",
            f"{_shown(text)} would be read as the number {value} ({base})",
            f"write {value}, or quote it ({_quoted(text)}) if it is a code",
        )
    if digits.startswith("0"):
        meant = _plain_decimal(text.replace("_", "")) or "the number"
        return _Trap(
            "octal",
            f"{_shown(text)} would be read as the number {value}, as a leading zero means base 8",
            f"write {meant} without the leading zero, "
            f"or quote it ({_quoted(text)}) if it is a code",
        )
    return _underscore_trap(text, value)


def _sexagesimal_trap(text: str, value: str) -> _Trap:
    return _Trap(
        "sexagesimal",
        f"{_shown(text)} would be read as the number {value} "
        "(counting in sixties, like minutes and seconds)",
        f"quote it ({_quoted(text)}) if you mean a time or a ratio, "
        f"or write {value} if you mean that number",
    )


def _underscore_trap(text: str, value: str) -> _Trap:
    return _Trap(
        "underscore",
        f"{_shown(text)} would be read as the number {value} (the underscores are dropped)",
        f"write {value}, or quote it ({_quoted(text)}) if you mean the text",
    )


def _float_trap(node: ScalarNode, text: str) -> _Trap | None:
    if _SPECIAL_FLOAT.fullmatch(text):
        return _Trap(
            "special-float",
            f"{_shown(text)} would be read as {_reading(node)}",
            f"write an ordinary number, or quote it ({_quoted(text)}) if you mean the text",
        )
    read = _pyyaml_value(node)
    value = _number_text(read)
    if value is None:
        return _unusable_number(text, read)
    if ":" in text:
        return _sexagesimal_trap(text, value)
    if "_" in text:
        return _underscore_trap(text, value)
    return None


def _date_trap(node: ScalarNode, text: str) -> _Trap:
    return _Trap(
        "date",
        f"{_shown(text)} would be read as {_reading(node)}, not as text",
        f"quote it ({_quoted(text)})",
    )


def _text_trap(node: ScalarNode, text: str) -> _Trap | None:
    """Plain text PyYAML keeps as text but other YAML readers (YAML 1.2, or YAML 1.1 to the
    letter) read as a boolean or a number: the same file must not mean two things."""
    if text in _Y_N:
        meaning = _Y_N[text]
        return _Trap(
            "boolean",
            f"{_shown(text)} is read as the letter {text} here, "
            f"but as {meaning} by other YAML tools",
            f"write {meaning}, or quote it ({_quoted(text)}) if you mean the letter",
        )
    if _OCTAL_0O.fullmatch(text) or _LEADING_ZERO.fullmatch(text):
        octal = "o" in text
        try:
            number = _number_text(int(text, 8) if octal else int(text))
        except ValueError:  # Python refuses to convert more than a few thousand digits
            number = None
        if number is None:
            return _too_large(text)
        return _Trap(
            "octal" if octal else "leading-zero",
            f"{_shown(text)} is read as text here, "
            f"but as the number {number} by other YAML tools",
            f"write {number}, or quote it ({_quoted(text)}) if it is a code",
        )
    if _YAML12_FLOAT.fullmatch(text):
        plain = _plain_decimal(text)
        written = plain if plain is not None else "an ordinary decimal number"
        return _Trap(
            "number-form",
            f"{_shown(text)} is read as text here, but as a number by other YAML tools",
            f"write {written}, or quote it ({_quoted(text)}) if you mean the text",
        )
    return None


_SCALAR_CHECKS: dict[str, Callable[[ScalarNode, str], _Trap | None]] = {
    _STR: _text_trap,
    _NULL: _null_trap,
    _BOOL: _bool_trap,
    _INT: _int_trap,
    _FLOAT: _float_trap,
    _TIMESTAMP: _date_trap,
}


def _plain_value(node: ScalarNode) -> Any:
    """The Python value of a scalar that passed :func:`_scalar_trap`."""
    if node.style is not None or node.tag == _STR:
        return node.value
    if node.tag == _NULL:
        return None
    if node.tag == _BOOL:
        return node.value == "true"
    if node.tag == _INT:
        return int(node.value)
    if node.tag == _FLOAT:
        return float(node.value)
    return node.value


# --------------------------------------------------------------------------------------------
# Keys and hidden content
# --------------------------------------------------------------------------------------------


def _key_trap(node: Node) -> _Trap | None:
    """Keys must be names (text). A number, boolean, date or empty key, or a list or mapping used
    as a key, is refused; so is the merge key ``<<``."""
    if not isinstance(node, ScalarNode):
        return _Trap(
            "key-not-string",
            "a list or mapping is used as a key here",
            "keys must be names: write a single name before the colon",
        )
    text: str = node.value
    if node.style is None and node.tag == _MERGE:
        return _Trap(
            "merge-key",
            "`<<` pulls in keys from elsewhere in the file (a merge key), "
            "which hides what this mapping contains",
            "write the keys out in full here",
        )
    if node.tag == _STR:
        return None
    if node.style is None and text == "":
        return _Trap(
            "key-not-string",
            "this key is empty",
            "keys must be names: write a name before the colon",
        )
    return _Trap(
        "key-not-string",
        f"{_shown(text)} as a key would be read as {_reading(node)}, not as a name",
        f"keys must be names: write a word, or quote it ({_quoted(text)})",
    )


def _duplicate_trap(key: str, first_line: int) -> _Trap:
    return _Trap(
        "duplicate-key",
        f"the key {_shown(key)} appears twice in this mapping (first on line {first_line}); "
        "YAML would silently keep only the last one",
        "remove one of them, or give it a different name",
    )


def _alias_trap(name: str) -> _Trap:
    return _Trap(
        "alias",
        f"`*{name}` repeats content from elsewhere in the file (an alias), "
        "which hides what is really here",
        "write the content out in full here",
    )


def _anchor_trap(name: str) -> _Trap:
    return _Trap(
        "anchor",
        f"`&{name}` marks this content for reuse elsewhere (an anchor), "
        "which hides what the rules contain",
        f"remove `&{name}` and write the content out in full wherever it is needed",
    )


def _tag_trap(tag: str) -> _Trap:
    written = "!!" + tag.removeprefix(_TAG_PREFIX) if tag.startswith(_TAG_PREFIX) else tag
    return _Trap(
        "tag",
        f"`{written}` changes how the value is read (a YAML tag)",
        "remove the tag; quote the value if it is text",
    )


class _Builder:
    """Walks the composed node tree once: records every position, reports every trap, and builds
    the plain Python data (which is thrown away if anything was reported)."""

    def __init__(self, file: str, composer: _RecordingComposer, times_as_text: bool = False) -> None:
        self.times_as_text = times_as_text
        self.file = file
        self.anchored = composer.anchored
        self.tagged = composer.tagged
        self.problems: list[Problem] = []
        self.values: dict[PathKey, Position] = {}
        self.keys: dict[PathKey, Position] = {}

    def report(self, node: Node, trap: _Trap, path: PathKey) -> None:
        self.problems.append(_problem(self.file, _node_position(node), trap, path))

    def build(self, node: Node, path: PathKey) -> Any:
        self.values[path] = _node_position(node)
        if self.report_hidden(node, path):
            return None
        if isinstance(node, MappingNode):
            return self.mapping(node, path)
        if isinstance(node, SequenceNode):
            return [self.build(item, path + (index,)) for index, item in enumerate(node.value)]
        return self.scalar(cast(ScalarNode, node), path)

    def report_hidden(self, node: Node, path: PathKey) -> bool:
        """Report anchors, aliases and tags on this node; True if it is an alias (no content)."""
        if isinstance(node, _AliasNode):
            self.report(node, _alias_trap(node.anchor), path)
            return True
        anchor = self.anchored.get(id(node))
        if anchor is not None:
            self.report(node, _anchor_trap(anchor), path)
        tag = self.tagged.get(id(node))
        if tag is not None:
            self.report(node, _tag_trap(tag), path)
        return False

    def scalar(self, node: ScalarNode, path: PathKey) -> Any:
        if id(node) in self.tagged:
            return node.value
        if self.times_as_text and node.style is None and node.tag == _TIMESTAMP:
            # The caller checks date-times itself (patient input): keep exactly what was written.
            return node.value
        trap = _scalar_trap(node)
        if trap is not None:
            self.report(node, trap, path)
            return None
        return _plain_value(node)

    def mapping(self, node: MappingNode, path: PathKey) -> dict[str, Any]:
        result: dict[str, Any] = {}
        first_lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, path)
            if key is None:
                shown = key_node.value if isinstance(key_node, ScalarNode) else "?"
                self.build(value_node, path + (str(shown),))
                continue
            child = path + (key,)
            line = _node_position(key_node)[0]
            if key in first_lines:
                self.report(key_node, _duplicate_trap(key, first_lines[key]), child)
            else:
                first_lines[key] = line
            self.keys[child] = _node_position(key_node)
            result[key] = self.build(value_node, child)
        return result

    def key(self, node: Node, path: PathKey) -> str | None:
        """The key as text, or None (after reporting) when it cannot be a name."""
        shown = node.value if isinstance(node, ScalarNode) else "?"
        if self.report_hidden(node, path + (str(shown),)):
            return None
        trap = _key_trap(node)
        if trap is not None:
            self.report(node, trap, path + (str(shown),))
            return None
        return cast(str, node.value)


# --------------------------------------------------------------------------------------------
# Parse errors in plain words
# --------------------------------------------------------------------------------------------

_CHECK_SYNTAX = "check the indentation, colons, quotes and brackets on this line and the one above"

# (what PyYAML says, what the pharmacist reads, what to do)
_SYNTAX_WORDING: tuple[tuple[str, str, str], ...] = (
    ("could not find expected ':'",
     "a line here should read `name: value`, but its colon is missing or its indentation is off",
     "add the colon, or line the indentation up with the lines above"),
    ("mapping values are not allowed here",
     "a colon followed by a space is not allowed here",
     "quote the value if it contains ': ', or check the indentation"),
    ("expected <block end>",
     "the indentation here does not line up with the lines above",
     "line this up with the keys or list items it belongs with"),
    ("sequence entries are not allowed here",
     "a list item (-) is not allowed here",
     "check the indentation of this list item"),
    ("expected ',' or ']'",
     "a list opened with [ is not closed with ] (or a comma is missing)",
     "close the list with ] and separate its items with commas"),
    ("expected ',' or '}'",
     "a mapping opened with { is not closed with } (or a comma is missing)",
     "close the mapping with } and separate its entries with commas"),
    ("found unexpected end of stream",
     "a quote opened here is never closed",
     "close the quote on the same value"),
    ("found unknown escape character",
     "a backslash inside double quotes starts an unknown code",
     "use single quotes, or write \\\\ for a backslash"),
    ("that cannot start any token",
     "this character cannot start a value",
     "quote the value"),
    ("node content",
     "a value should start here, but this character cannot start one",
     "quote the value, or check the punctuation before it"),
    ("while scanning a block scalar",
     "a `|` or `>` here starts a block of text, but the rest of this line is not allowed",
     "put the text on the lines below, indented, or quote the value"),
    ("while scanning an alias",
     "a value starting with `*` has a special meaning in YAML",
     "quote the value"),
    ("while scanning an anchor",
     "a value starting with `&` has a special meaning in YAML",
     "quote the value"),
    ("a tag",
     "a value starting with `!` has a special meaning in YAML",
     "quote the value"),
    ("while scanning a directive",
     "a line starting with `%` has a special meaning in YAML",
     "quote the value, or remove the `%` line"),
    ("expected '<document start>'",
     "the document ends early: a `...` line, or a line starting with `%`, stops YAML reading it",
     "remove that line (quote the value if it starts with %)"),
    ("found incompatible YAML document",
     "this YAML version line is not supported",
     "remove the %YAML line"),
)


def _syntax_problem(error: MarkedYAMLError, file: str) -> Problem:
    """One problem, in plain words, for YAML that cannot be parsed at all."""
    said = error.problem or error.context or "the text is not valid YAML"
    if error.context == "expected a single document in the stream":
        trap = _Trap(
            "multiple-documents",
            "the file holds more than one YAML document (a `---` line starts a second one)",
            "keep one document per file: remove the `---` line or split the file",
        )
        return _problem(file, _mark_position(error.problem_mark), trap)
    mark = error.problem_mark or error.context_mark
    if "end of stream" in said or "<stream end>" in said:
        # The file ended; what was left open is where the context mark points.
        mark = error.context_mark or mark
    full = f"{error.context or ''}: {said}"
    for needle, message, expected in _SYNTAX_WORDING:
        if needle in full:
            return _problem(file, _mark_position(mark), _Trap("syntax", message, expected))
    context = f"{error.context}: " if error.context else ""
    trap = _Trap(
        "syntax",
        f"the YAML cannot be read here ({context}{said})",
        _CHECK_SYNTAX,
    )
    return _problem(file, _mark_position(mark), trap)


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------


def _root_problems(root: Node | None, file: str) -> list[Problem]:
    if root is None or (isinstance(root, ScalarNode) and root.style is None and root.value == ""):
        return [_problem(file, (0, 0), _Trap("empty", "the file is empty", _TOP_LEVEL))]
    if isinstance(root, MappingNode):
        return []
    if isinstance(root, SequenceNode):
        what = "a list"
    else:
        what = f"a single value ({_shown(str(root.value))})"
    trap = _Trap("root-not-mapping", f"the top level is {what}, not a mapping", _TOP_LEVEL)
    return [_problem(file, _node_position(root), trap)]


def _load(text: str, file: str, times_as_text: bool = False) -> tuple[LoadedDocument | None, list[Problem]]:
    lines = _LineIndex(text)
    problems = _tab_problems(text, lines, file) + _invisible_problems(text, lines, file)
    forbidden = _forbidden_character_problems(text, lines, file)
    if forbidden:  # PyYAML's reader refuses the whole text: nothing more can be checked
        return None, sorted(problems + forbidden)
    try:
        root, composer = _compose(text)
    except _TooDeep as error:
        trap = _Trap(
            "too-deep",
            f"the content is nested more than {MAX_DEPTH} levels deep",
            "flatten the structure",
        )
        return None, sorted(problems + [_problem(file, error.position, trap)])
    except MarkedYAMLError as error:
        syntax = _syntax_problem(error, file)
        tab_lines = {problem.line for problem in problems if problem.check == "yaml.tab"}
        if syntax.line not in tab_lines:  # a tab on that line is the cause, already reported
            problems.append(syntax)
        return None, sorted(problems)
    problems += _root_problems(root, file)
    builder = _Builder(file, composer, times_as_text)
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
        trap = _Trap("unreadable", f"the YAML cannot be read ({said})", _CHECK_SYNTAX)
    except Exception as error:  # noqa: BLE001 - the promise is "never raises for any text"
        # A defect in this module: the file is refused rather than crash the caller. The tests
        # assert this check never appears.
        said = f"{type(error).__name__}: {error}".replace("\n", " ")
        trap = _Trap(
            "internal-error",
            f"the loader failed on this file ({said})",
            "report this to the crs-rules maintainers",
        )
    return None, [_problem(file, (0, 0), trap)]


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
        return None, [_problem(name, (0, 0), _Trap("unreadable", error.message, error.expected))]
    except ValueError as error:  # a path with a NUL character
        trap = _Trap("unreadable", f"the file cannot be read ({error})",
                     "check the file name and that the file can be opened")
        return None, [_problem(name, (0, 0), trap)]
    return load_yaml_bytes(raw, name)


def load_yaml_bytes(raw: bytes, file: str) -> tuple[LoadedDocument | None, list[Problem]]:
    """Decode UTF-8 bytes and load them like :func:`load_yaml_text` (a problem if not UTF-8)."""
    name = file
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        before = raw[: error.start].decode("utf-8", errors="replace")
        where = _LineIndex(before).position(len(before))
        trap = _Trap(
            "encoding",
            f"the file is not UTF-8 text (byte 0x{raw[error.start]:02X} cannot be read)",
            "save the file with the UTF-8 encoding",
        )
        return None, [_problem(name, where, trap)]
    return load_yaml_text(text, name)
