"""YAML loading, stage 3: each plain scalar and key, refused where YAML 1.1 would silently retype it.

``no`` would become false, ``010`` 8, ``1:30`` 90, ``2026-03-10`` a date; a number key, a merge key
``<<``, an alias, an anchor or a tag hides what is written. Each is a :class:`Trap` worded for the
person who edits the file, with what to write instead.
"""

from __future__ import annotations

import math
import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Callable

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import Node, ScalarNode

from ._yaml_words import BOOL, FLOAT, INT, MERGE, NULL, STR, TAG_PREFIX, TIMESTAMP, Trap, quoted, shown

__all__ = ["scalar_trap", "plain_value", "key_trap", "duplicate_trap", "alias_trap", "anchor_trap", "tag_trap"]

# Plain numbers accepted as written: YAML 1.1 and 1.2 readers all agree on these.
_PLAIN_INT = re.compile(r"[-+]?(?:0|[1-9][0-9]*)")
# PyYAML reads these plain scalars as text, but YAML 1.2 readers (and people) read numbers.
_OCTAL_0O = re.compile(r"[-+]?0o[0-7]+")
_LEADING_ZERO = re.compile(r"[-+]?0[0-9]+")
_YAML12_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_SPECIAL_FLOAT = re.compile(r"[-+]?\.(?:inf|nan)", re.IGNORECASE)
_Y_N = {"y": "true", "Y": "true", "n": "false", "N": "false"}


# --------------------------------------------------------------------------------------------
# Plain scalars YAML 1.1 would silently retype
# --------------------------------------------------------------------------------------------

_CONSTRUCTOR = SafeConstructor()
_UNREADABLE = object()
_READERS: dict[str, Callable[[ScalarNode], object]] = {
    BOOL: _CONSTRUCTOR.construct_yaml_bool,
    INT: _CONSTRUCTOR.construct_yaml_int,
    FLOAT: _CONSTRUCTOR.construct_yaml_float,
    TIMESTAMP: _CONSTRUCTOR.construct_yaml_timestamp,
    NULL: lambda node: None,
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
    if value is _UNREADABLE and node.tag == TIMESTAMP:
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


def _too_large(text: str) -> Trap:
    return Trap(
        "number-too-large", f"{shown(text)} is too large a number", "write a smaller number"
    )


def _unusable_number(text: str, value: object) -> Trap:
    """For a number PyYAML cannot read (``0x_``) or that overflows (``1.0e+400``, huge digits)."""
    if (isinstance(value, float) and math.isinf(value)) or len(text) > 300:
        return _too_large(text)
    return Trap(
        "number-form",
        f"{shown(text)} is not an ordinary number",
        f"write the number in ordinary digits, or quote it ({quoted(text)}) if you mean the text",
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


def scalar_trap(node: ScalarNode) -> Trap | None:
    """Why this value must not be accepted as written, or None. Only plain (unquoted) scalars
    are concerned: anything quoted or in a block (``|``, ``>``) is text, as it looks."""
    if node.style is not None:
        return None
    text: str = node.value
    check = _SCALAR_CHECKS.get(node.tag)
    if check is None:  # `=` and `<<` as values: PyYAML's own constructor fails on them
        return Trap(
            "special-symbol",
            f"{shown(text)} has a special meaning in YAML",
            f"quote it ({quoted(text)})",
        )
    return check(node, text)


def _null_trap(node: ScalarNode, text: str) -> Trap | None:
    if text in ("null", ""):
        return None
    return Trap(
        "null",
        f"{shown(text)} would be read as empty (null)",
        f"write null, or quote it ({quoted(text)}) if you mean the text",
    )


def _bool_trap(node: ScalarNode, text: str) -> Trap | None:
    if text in ("true", "false"):
        return None
    reading = _reading(node)
    return Trap(
        "boolean",
        f"{shown(text)} would be read as {reading}",
        f"write {reading}, or quote it ({quoted(text)}) if you mean the word",
    )


def _int_trap(node: ScalarNode, text: str) -> Trap | None:
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
        return Trap(
            "number-base",
            f"{shown(text)} would be read as the number {value} ({base})",
            f"write {value}, or quote it ({quoted(text)}) if it is a code",
        )
    if digits.startswith("0"):
        meant = _plain_decimal(text.replace("_", "")) or "the number"
        return Trap(
            "octal",
            f"{shown(text)} would be read as the number {value}, as a leading zero means base 8",
            f"write {meant} without the leading zero, "
            f"or quote it ({quoted(text)}) if it is a code",
        )
    return _underscore_trap(text, value)


def _sexagesimal_trap(text: str, value: str) -> Trap:
    return Trap(
        "sexagesimal",
        f"{shown(text)} would be read as the number {value} "
        "(counting in sixties, like minutes and seconds)",
        f"quote it ({quoted(text)}) if you mean a time or a ratio, "
        f"or write {value} if you mean that number",
    )


def _underscore_trap(text: str, value: str) -> Trap:
    return Trap(
        "underscore",
        f"{shown(text)} would be read as the number {value} (the underscores are dropped)",
        f"write {value}, or quote it ({quoted(text)}) if you mean the text",
    )


def _float_trap(node: ScalarNode, text: str) -> Trap | None:
    if _SPECIAL_FLOAT.fullmatch(text):
        return Trap(
            "special-float",
            f"{shown(text)} would be read as {_reading(node)}",
            f"write an ordinary number, or quote it ({quoted(text)}) if you mean the text",
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


def _date_trap(node: ScalarNode, text: str) -> Trap:
    return Trap(
        "date",
        f"{shown(text)} would be read as {_reading(node)}, not as text",
        f"quote it ({quoted(text)})",
    )


def _text_trap(node: ScalarNode, text: str) -> Trap | None:
    """Plain text PyYAML keeps as text but other YAML readers (YAML 1.2, or YAML 1.1 to the
    letter) read as a boolean or a number: the same file must not mean two things."""
    if text in _Y_N:
        meaning = _Y_N[text]
        return Trap(
            "boolean",
            f"{shown(text)} is read as the letter {text} here, "
            f"but as {meaning} by other YAML tools",
            f"write {meaning}, or quote it ({quoted(text)}) if you mean the letter",
        )
    if _OCTAL_0O.fullmatch(text) or _LEADING_ZERO.fullmatch(text):
        octal = "o" in text
        try:
            number = _number_text(int(text, 8) if octal else int(text))
        except ValueError:  # Python refuses to convert more than a few thousand digits
            number = None
        if number is None:
            return _too_large(text)
        return Trap(
            "octal" if octal else "leading-zero",
            f"{shown(text)} is read as text here, "
            f"but as the number {number} by other YAML tools",
            f"write {number}, or quote it ({quoted(text)}) if it is a code",
        )
    if _YAML12_FLOAT.fullmatch(text):
        plain = _plain_decimal(text)
        written = plain if plain is not None else "an ordinary decimal number"
        return Trap(
            "number-form",
            f"{shown(text)} is read as text here, but as a number by other YAML tools",
            f"write {written}, or quote it ({quoted(text)}) if you mean the text",
        )
    return None


_SCALAR_CHECKS: dict[str, Callable[[ScalarNode, str], Trap | None]] = {
    STR: _text_trap,
    NULL: _null_trap,
    BOOL: _bool_trap,
    INT: _int_trap,
    FLOAT: _float_trap,
    TIMESTAMP: _date_trap,
}


def plain_value(node: ScalarNode) -> Any:
    """The Python value of a scalar that passed :func:`scalar_trap`."""
    if node.style is not None or node.tag == STR:
        return node.value
    if node.tag == NULL:
        return None
    if node.tag == BOOL:
        return node.value == "true"
    if node.tag == INT:
        return int(node.value)
    if node.tag == FLOAT:
        return float(node.value)
    return node.value


# --------------------------------------------------------------------------------------------
# Keys and hidden content
# --------------------------------------------------------------------------------------------


def key_trap(node: Node) -> Trap | None:
    """Keys must be names (text). A number, boolean, date or empty key, or a list or mapping used
    as a key, is refused; so is the merge key ``<<``."""
    if not isinstance(node, ScalarNode):
        return Trap(
            "key-not-string",
            "a list or mapping is used as a key here",
            "keys must be names: write a single name before the colon",
        )
    text: str = node.value
    if node.style is None and node.tag == MERGE:
        return Trap(
            "merge-key",
            "`<<` pulls in keys from elsewhere in the file (a merge key), "
            "which hides what this mapping contains",
            "write the keys out in full here",
        )
    if node.tag == STR:
        return None
    if node.style is None and text == "":
        return Trap(
            "key-not-string",
            "this key is empty",
            "keys must be names: write a name before the colon",
        )
    return Trap(
        "key-not-string",
        f"{shown(text)} as a key would be read as {_reading(node)}, not as a name",
        f"keys must be names: write a word, or quote it ({quoted(text)})",
    )


def duplicate_trap(key: str, first_line: int) -> Trap:
    return Trap(
        "duplicate-key",
        f"the key {shown(key)} appears twice in this mapping (first on line {first_line}); "
        "YAML would silently keep only the last one",
        "remove one of them, or give it a different name",
    )


def alias_trap(name: str) -> Trap:
    return Trap(
        "alias",
        f"`*{name}` repeats content from elsewhere in the file (an alias), "
        "which hides what is really here",
        "write the content out in full here",
    )


def anchor_trap(name: str) -> Trap:
    return Trap(
        "anchor",
        f"`&{name}` marks this content for reuse elsewhere (an anchor), "
        "which hides what the rules contain",
        f"remove `&{name}` and write the content out in full wherever it is needed",
    )


def tag_trap(tag: str) -> Trap:
    written = "!!" + tag.removeprefix(TAG_PREFIX) if tag.startswith(TAG_PREFIX) else tag
    return Trap(
        "tag",
        f"`{written}` changes how the value is read (a YAML tag)",
        "remove the tag; quote the value if it is text",
    )
