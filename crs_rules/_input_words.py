"""Plain words for problems with the patient input: a jsonschema error becomes a
:class:`~crs_rules.errors.Problem` naming the field (``medications[1].given_at``), echoing the bad
value and its type, and saying what was expected, in the schema's own words (its titles, bounds
and enums). :class:`Report` collects the problems of one source, positioned through the loaded
document when there is one.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from jsonschema import ValidationError

from ._patient_contract import Path_, contract_schema
from .errors import Problem
from .loading import LoadedDocument
from .schema_words import ECHO_LIMIT as _ECHO_LIMIT
from .schema_words import article as _article
from .schema_words import is_value as is_words
from .schema_words import show

__all__ = ["DATE_TIME_REF", "Report", "translate", "resolve", "expected_words", "is_words", "show", "subject_of",
           "unknown_keys"]

DATE_TIME_REF: Final = "#/$defs/date_time"
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def unknown_keys(instance: Mapping[Any, Any], schema: Mapping[str, Any]) -> list[Any]:
    known = schema.get("properties", {})
    return [key for key in instance if not (isinstance(key, str) and key in known)]


def resolve(node: Any) -> dict[str, Any]:
    """The schema node with its local ``$ref`` merged in (local keywords win)."""
    if not isinstance(node, Mapping):
        return {}
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return dict(node)
    target = contract_schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    merged = resolve(target)
    merged.update((k, v) for k, v in node.items() if k != "$ref")
    return merged


def _local_at(schema_path: Iterable[str | int]) -> Mapping[str, Any]:
    """The schema node, as written, at a jsonschema schema path (which leaves out ``$ref`` hops:
    a part not found in a node is looked up in what the node's ``$ref`` points to)."""
    node: Any = contract_schema()
    for part in schema_path:
        if part == "$ref":
            continue
        if not (isinstance(node, Mapping) and part in node):
            node = resolve(node)
        node = node[part]
    return node if isinstance(node, Mapping) else {}


def _schema_at(schema_path: Iterable[str | int]) -> dict[str, Any]:
    """The schema node at a jsonschema schema path, its ``$ref`` merged in."""
    return resolve(_local_at(schema_path))


def _number_words(value: float) -> str:
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _bounds(node: Mapping[str, Any]) -> str:
    low, low_open, high = node.get("minimum"), node.get("exclusiveMinimum"), node.get("maximum")
    if low is not None and high is not None:
        return f"from {_number_words(low)} to {_number_words(high)}"
    parts = []
    if low_open is not None:
        parts.append(f"above {_number_words(low_open)}")
    if low is not None:
        parts.append(f"at least {_number_words(low)}")
    if high is not None:
        parts.append(f"at most {_number_words(high)}")
    return " and ".join(parts)


def expected_words(node: Mapping[str, Any]) -> str:
    """What a schema node accepts, in words."""
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    title = node.get("title")
    if "boolean" in types:
        return "true or false, or null when unknown" if "null" in types else "true or false"
    if "enum" in node:
        choices = "one of: " + ", ".join(str(each) for each in node["enum"])
        return f"{_article(title)}, {choices}" if title else choices
    if "number" in types or "integer" in types:
        words = " ".join(part for part in (_article(title or "number"), _bounds(node)) if part)
        return words
    if "object" in types:
        required = node.get("required", [])
        fields = ", ".join(
            f"{name} (required)" if name in required else name for name in node.get("properties", {})
        )
        return f"a mapping with the fields {fields}"
    if title:
        return _article(title)
    if "array" in types:
        return "a list"
    return "a string" if "string" in types else "a valid value"


def _path_element(key: object) -> str | int:
    """A mapping key as a path element; keys are strings in valid input."""
    return key if isinstance(key, str) else show(key)


def subject_of(path: Path_) -> str:
    """``medications[1].given_at``: a field path in the spelling callers know (indexes from 0)."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            text += f".{part}" if text else part
        else:
            shown = part if len(part) <= _ECHO_LIMIT else part[: _ECHO_LIMIT - 3] + "..."
            text += f"[{json.dumps(shown, ensure_ascii=False)}]"
    return text or "-"


# --------------------------------------------------------------------------------------------
# Collecting problems
# --------------------------------------------------------------------------------------------


class Report:
    """Problems for one source, positioned through the loaded document when there is one."""

    def __init__(self, source: str, positions: LoadedDocument | None) -> None:
        self.source = source
        self.positions = positions
        self.problems: list[Problem] = []

    def add(self, path: Path_, message: str, expected: str, check: str, *, at_key: bool = False) -> None:
        """One problem about the field at ``path``; ``at_key`` places it at the field's key (for
        a key that should not be there) rather than at its value."""
        if self.positions is None:
            line, column = 0, 0
        elif at_key:
            line, column = self.positions.key_position(path)
        else:
            line, column = self.positions.position(path)
        self.problems.append(
            Problem(
                file=self.source,
                line=line,
                column=column,
                subject=subject_of(path),
                message=message,
                expected=expected,
                path=path,
                check=check,
            )
        )


def translate(error: ValidationError, report: Report) -> None:
    """Put one jsonschema error into plain words."""
    keyword = str(error.validator)
    path: Path_ = tuple(error.absolute_path)
    check = f"schema.{keyword}"
    instance = error.instance
    schema_path = list(error.absolute_schema_path)[:-1]  # the node holding the failing keyword

    if keyword == "required":
        # The error's path ends at the missing key; the keyword sits in the object's node, or in
        # a `then` under it (a conditional requirement).
        key = path[-1]
        conditional = bool(schema_path) and schema_path[-1] == "then"
        object_node = _schema_at(schema_path[:-1] if conditional else schema_path)
        field = resolve(object_node.get("properties", {}).get(key))
        message = "is missing"
        if conditional:
            conditions = [
                f"{name} is {rule['const']}"
                for name, rule in object_node.get("if", {}).get("properties", {}).items()
                if "const" in rule
            ]
            message += ", and is required when " + " and ".join(conditions)
            reason = object_node.get("then", {}).get("description")
            if reason:
                message += f": {reason}"
        report.add(path, message, expected_words(field), check)
        return

    node = _schema_at(schema_path)
    if keyword == "additionalProperties":
        known = list(node.get("properties", {}))
        owner = subject_of(path) if path else "the patient state"
        for key in unknown_keys(instance, node) if isinstance(instance, dict) else []:
            if isinstance(key, str):
                message = "is not a known field"
                close = difflib.get_close_matches(key, known, n=1)
                if close:
                    message += f" (did you mean {close[0]}?)"
            else:
                message = f"is not a known field: keys are field names, and this key {is_words(key)}"
            report.add(
                (*path, _path_element(key)),
                message,
                f"one of the fields of {owner}: {', '.join(known)}",
                check,
                at_key=True,
            )
        return

    if keyword == "pattern" and _local_at(schema_path).get("$ref") == DATE_TIME_REF:
        return  # date-times get their own, more precise, problem from _check_date_times()

    expected = expected_words(node)
    if keyword == "type" and instance is None and path and not _is_required(schema_path):
        expected += " (leave the field out when unknown: only booleans may be null)"
    report.add(path, is_words(instance), expected, check)


def _is_required(schema_path: list[str | int]) -> bool:
    """Whether the field whose schema node is at ``schema_path`` is required in its object."""
    if len(schema_path) < 2 or schema_path[-2] != "properties":
        return False
    return schema_path[-1] in _schema_at(schema_path[:-2]).get("required", [])
