"""YAML loading, stage 1: the raw text, before and around parsing.

Tabs, invisible characters and control characters are found in the text itself (YAML cannot show
them); positions are computed exactly as PyYAML's reader counts lines. When PyYAML cannot parse the
text at all, its error is put into plain words at the position it names.
"""

from __future__ import annotations

import bisect
import re

from yaml.error import MarkedYAMLError
from yaml.reader import Reader

from ._yaml_words import Position, Trap, character_name, mark_position, trap_problem
from .errors import Problem

__all__ = ["LineIndex", "tab_problems", "invisible_problems", "forbidden_character_problems", "syntax_problem",
           "CHECK_SYNTAX"]

# Line breaks as PyYAML's reader counts them, so computed positions agree with node marks.
_LINE_BREAK = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
# Characters that look like nothing (or like a space) but change text: a drug name with a
# no-break space in it no longer matches the same name typed normally.
_INVISIBLE = re.compile(
    "[\x85\u00a0\u00ad\u1680\u180e\u2000-\u200f\u2028-\u202f\u205f-\u2064\u2066-\u2069\u3000\ufeff]"
)


class LineIndex:
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


def tab_problems(text: str, lines: LineIndex, file: str) -> list[Problem]:
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
        trap = Trap("tab", message, "replace tabs with spaces; YAML indentation must use spaces")
        problems.append(trap_problem(file, where_all[0], trap))
    return problems


def invisible_problems(text: str, lines: LineIndex, file: str) -> list[Problem]:
    """Characters that look like a space or like nothing but make text differ from what is seen.
    A byte-order mark at the very start of the file is allowed (editors add it)."""
    problems = []
    for match in _INVISIBLE.finditer(text):
        if match.start() == 0 and match.group() == "\ufeff":
            continue
        trap = Trap(
            "invisible-character",
            f"an invisible character is here ({character_name(match.group())})",
            "delete it, or replace it with an ordinary space",
        )
        problems.append(trap_problem(file, lines.position(match.start()), trap))
    return problems


def forbidden_character_problems(text: str, lines: LineIndex, file: str) -> list[Problem]:
    """Control characters YAML does not allow at all. PyYAML stops at the first; all are listed."""
    problems = []
    for match in Reader.NON_PRINTABLE.finditer(text):
        trap = Trap(
            "control-character",
            f"a character YAML does not allow is here ({character_name(match.group())})",
            "delete it; it may have come in when copying text from another program",
        )
        problems.append(trap_problem(file, lines.position(match.start()), trap))
    return problems


# --------------------------------------------------------------------------------------------
# Parse errors in plain words
# --------------------------------------------------------------------------------------------

CHECK_SYNTAX = "check the indentation, colons, quotes and brackets on this line and the one above"

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


def syntax_problem(error: MarkedYAMLError, file: str) -> Problem:
    """One problem, in plain words, for YAML that cannot be parsed at all."""
    said = error.problem or error.context or "the text is not valid YAML"
    if error.context == "expected a single document in the stream":
        trap = Trap(
            "multiple-documents",
            "the file holds more than one YAML document (a `---` line starts a second one)",
            "keep one document per file: remove the `---` line or split the file",
        )
        return trap_problem(file, mark_position(error.problem_mark), trap)
    mark = error.problem_mark or error.context_mark
    if "end of stream" in said or "<stream end>" in said:
        # The file ended; what was left open is where the context mark points.
        mark = error.context_mark or mark
    full = f"{error.context or ''}: {said}"
    for needle, message, expected in _SYNTAX_WORDING:
        if needle in full:
            return trap_problem(file, mark_position(mark), Trap("syntax", message, expected))
    context = f"{error.context}: " if error.context else ""
    trap = Trap(
        "syntax",
        f"the YAML cannot be read here ({context}{said})",
        CHECK_SYNTAX,
    )
    return trap_problem(file, mark_position(mark), trap)
