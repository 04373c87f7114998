"""The input contract: one patient's state at one moment.

:func:`parse_patient` turns JSON-like data (from JSON, YAML or built in memory) into a
:class:`PatientState`, or raises :class:`~crs_rules.errors.InvalidInputError` listing *every*
problem found: each names the field (``patient.weight_kg``, ``medications[1].given_at``), echoes the
bad value and its type, and says what was expected. Bad input never produces a state, so it can
never produce a recommendation.

Two layers find problems, and both report them the same way:

* ``schemas/patient.schema.json`` (JSON Schema draft 2020-12): the fields, their types, the enums,
  no unknown keys anywhere, and plausibility bounds that keep out values no living human has.
* the checks below, which a schema cannot express: every date-time is a real instant with a UTC
  offset; nothing was given, and CRS did not begin, after ``assessed_at``; not both temperatures;
  vasopressors or refractory hypotension only with ``hypotension: true``; no oxygen flow on room
  air; no NaN.

:func:`read_patient` reads a file (or standard input for ``-``); YAML goes through
:mod:`crs_rules.loading`, so problems carry the line and column of the bad value.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import json
import math
import os
import re
import sys
import weakref
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, time, timezone
from fractions import Fraction
from functools import cache
from typing import Any, Final, TypeGuard

from jsonschema import Draft202012Validator, TypeChecker, ValidationError, validators
from jsonschema.protocols import Validator

from ._resources import schema_dir
from .errors import CrsRulesError, InvalidInputError, Problem
from .loading import LoadedDocument, load_yaml_text
from .schema_check import accept_first

__all__ = [
    "Medication",
    "PatientState",
    "parse_patient",
    "parse_patient_text",
    "read_patient",
    "state_input",
    "patient_schema",
    "MAX_LIST_ITEMS",
]

Path_ = tuple[str | int, ...]

#: The input contract as JSON Schema, in ``schemas/`` beside the package.
SCHEMA_PATH: Final = schema_dir() / "patient.schema.json"

#: The most items each list of the input may hold (``maxItems`` in the schema): far beyond any real
#: patient, and small enough that a hostile list is refused at once instead of being checked item
#: by item (a list longer than its bound is reported once and only its first items are checked).
MAX_LIST_ITEMS: Final[Mapping[str, int]] = {
    "medications": 1000, "proposed_orders": 100, "vasopressors": 20, "attributed_to_other_cause": 20,
}

_DATE_TIME_REF: Final = "#/$defs/date_time"
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ECHO_LIMIT: Final = 60


# --------------------------------------------------------------------------------------------
# The result
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Medication:
    """One dose that was given before the assessment."""

    drug: str
    given_at: datetime
    """Timezone-aware, in UTC."""
    dose_mg: float | None


@dataclasses.dataclass(frozen=True)
class PatientState:
    """A valid patient state. ``None`` means unknown (the field was absent, or a boolean was null)."""

    assessed_at: datetime
    """Timezone-aware, in UTC."""
    weight_kg: float
    age_years: float | None
    neutropenic: bool | None
    significant_comorbidities: bool | None
    car_t: bool | None
    crs_onset_at: datetime | None
    """Timezone-aware, in UTC."""
    antipyretic_or_anticytokine: bool | None
    improving: bool | None
    suspected_mas: bool | None
    septic_shock: bool | None
    sepsis_improving: bool | None
    temperature_c: float | None
    """In °C; ``vitals.temperature_f`` is converted exactly (100.4 °F is 38.0 °C)."""
    hypotension: bool | None
    refractory_hypotension: bool | None
    vasopressors: tuple[str, ...] | None
    """Distinct names, sorted; ``None`` when not recorded (an empty list says none)."""
    oxygen_device: str | None
    oxygen_flow_l_min: float | None
    icans_signs: bool | None
    medications: tuple[Medication, ...] | None
    """Sorted by (given_at, drug, dose_mg or 0); ``None`` when the record is not given (unknown),
    an empty tuple when nothing was given."""
    proposed_orders: tuple[str, ...]
    """Distinct drug names, sorted."""
    attributed_to_other_cause: tuple[str, ...] = ()
    """Signs (``fever``, ``hypotension``, ``hypoxia``) a clinician attributes to another cause, sorted."""


# --------------------------------------------------------------------------------------------
# The schema and its validator
# --------------------------------------------------------------------------------------------


@cache
def _schema() -> dict[str, Any]:
    try:
        text = SCHEMA_PATH.read_text(encoding="utf-8")
    except OSError as exc:  # an installation fault, not an input problem
        raise CrsRulesError(f"the patient schema cannot be read: {exc}") from exc
    schema: dict[str, Any] = json.loads(text)
    Draft202012Validator.check_schema(schema)
    return schema


def patient_schema() -> dict[str, Any]:
    """A copy of the JSON Schema of the patient state (``schemas/patient.schema.json``)."""
    return copy.deepcopy(_schema())


def _is_plain_number(value: object) -> TypeGuard[int | float]:
    """A JSON number: int or float only. Not bool (``True == 1`` in Python), and not complex or
    Decimal, whose comparisons with the bounds would fail or raise."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_number(checker: TypeChecker, instance: object) -> bool:
    return _is_plain_number(instance)


def _is_integer(checker: TypeChecker, instance: object) -> bool:
    return isinstance(instance, int) and not isinstance(instance, bool)


def _same(a: object, b: object) -> bool:
    """JSON equality of scalars: ``1`` is not ``true``, ``"1"`` is not ``1``, and a list or a
    mapping equals no scalar (the schema's enums and consts are all scalars)."""
    if a is None or b is None:
        return a is b
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, str) and isinstance(b, str):
        return a == b
    if _is_plain_number(a) and _is_plain_number(b):
        return bool(a == b)
    return False


def _pattern_matches(pattern: str, text: str) -> bool:
    """ECMA-262 semantics for our anchored patterns: Python's ``$`` also matches before a final
    newline, so a match must reach the true end of the text."""
    match = re.search(pattern, text)
    if match is None:
        return False
    return not pattern.endswith("$") or match.end() == len(text)


# The keywords below replace jsonschema's own only to make their messages safe: jsonschema builds
# messages with repr(instance), which raises for an int of more than 4300 digits. The messages are
# never shown: _translate() writes every problem's words from the error's keyword and schema.


def _kw_type(v: Validator, types: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    wanted = [types] if isinstance(types, str) else list(types)
    if not any(v.is_type(instance, t) for t in wanted):
        yield ValidationError("type")


def _kw_enum(v: Validator, enums: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not any(_same(instance, each) for each in enums):
        yield ValidationError("enum")


def _kw_const(v: Validator, const: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not _same(instance, const):
        yield ValidationError("const")


def _kw_minimum(v: Validator, bound: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if v.is_type(instance, "number") and instance < bound:
        yield ValidationError("minimum")


def _kw_maximum(v: Validator, bound: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if v.is_type(instance, "number") and instance > bound:
        yield ValidationError("maximum")


def _kw_exclusive_minimum(
    v: Validator, bound: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if v.is_type(instance, "number") and instance <= bound:
        yield ValidationError("exclusiveMinimum")


def _kw_exclusive_maximum(
    v: Validator, bound: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if v.is_type(instance, "number") and instance >= bound:
        yield ValidationError("exclusiveMaximum")


def _kw_pattern(v: Validator, pattern: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if v.is_type(instance, "string") and not _pattern_matches(pattern, instance):
        yield ValidationError("pattern")


def _kw_required(v: Validator, required: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    # One error per missing key, its path ending at the missing key (jsonschema's own points at
    # the parent and names the key only in its message).
    if v.is_type(instance, "object"):
        for key in required:
            if key not in instance:
                yield ValidationError("required", path=(key,))


def _kw_additional_properties(
    v: Validator, allowed: Any, instance: Any, schema: Any
) -> Iterator[ValidationError]:
    if allowed is not False:  # a schema for the other keys: jsonschema's own keyword applies
        yield from _JSONSCHEMA_KEYWORDS["additionalProperties"](v, allowed, instance, schema)
    elif v.is_type(instance, "object") and _unknown_keys(instance, schema):
        yield ValidationError("additionalProperties")


_JSONSCHEMA_KEYWORDS: Final[Mapping[str, Any]] = Draft202012Validator.VALIDATORS


_TYPE_CHECKER: Final = Draft202012Validator.TYPE_CHECKER.redefine("number", _is_number).redefine(
    "integer", _is_integer
)

_PatientValidator: Final = validators.create(
    meta_schema=Draft202012Validator.META_SCHEMA,
    validators={
        **Draft202012Validator.VALIDATORS,
        "type": _kw_type,
        "enum": _kw_enum,
        "const": _kw_const,
        "minimum": _kw_minimum,
        "maximum": _kw_maximum,
        "exclusiveMinimum": _kw_exclusive_minimum,
        "exclusiveMaximum": _kw_exclusive_maximum,
        "pattern": _kw_pattern,
        "required": _kw_required,
        "additionalProperties": _kw_additional_properties,
    },
    type_checker=_TYPE_CHECKER,
    format_checker=Draft202012Validator.FORMAT_CHECKER,
)


@cache
def _validator() -> Validator:
    return accept_first(_PatientValidator(_schema()), _schema())  # valid input checked at compiled speed


# --------------------------------------------------------------------------------------------
# Schema navigation and plain words
# --------------------------------------------------------------------------------------------


def _unknown_keys(instance: Mapping[Any, Any], schema: Mapping[str, Any]) -> list[Any]:
    known = schema.get("properties", {})
    return [key for key in instance if not (isinstance(key, str) and key in known)]


def _resolve(node: Any) -> dict[str, Any]:
    """The schema node with its local ``$ref`` merged in (local keywords win)."""
    if not isinstance(node, Mapping):
        return {}
    ref = node.get("$ref")
    if not isinstance(ref, str):
        return dict(node)
    target = _schema()
    for part in ref.removeprefix("#/").split("/"):
        target = target[part]
    merged = _resolve(target)
    merged.update((k, v) for k, v in node.items() if k != "$ref")
    return merged


def _local_at(schema_path: Iterable[str | int]) -> Mapping[str, Any]:
    """The schema node, as written, at a jsonschema schema path (which leaves out ``$ref`` hops:
    a part not found in a node is looked up in what the node's ``$ref`` points to)."""
    node: Any = _schema()
    for part in schema_path:
        if part == "$ref":
            continue
        if not (isinstance(node, Mapping) and part in node):
            node = _resolve(node)
        node = node[part]
    return node if isinstance(node, Mapping) else {}


def _schema_at(schema_path: Iterable[str | int]) -> dict[str, Any]:
    """The schema node at a jsonschema schema path, its ``$ref`` merged in."""
    return _resolve(_local_at(schema_path))


def _article(phrase: str) -> str:
    return ("an " if phrase[:1].lower() in "aeio" else "a ") + phrase


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


def _expected(node: Mapping[str, Any]) -> str:
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


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, datetime):
        return "a date-time"
    if isinstance(value, date):
        return "a date without a time of day"
    if isinstance(value, time):
        return "a time of day without a date"
    return _article(f"Python {type(value).__name__}")


def _show(value: object) -> str:
    """A short, safe rendering of a scalar in JSON spelling."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if value.bit_length() > 200:  # str() of a huge int is slow, or raises past 4300 digits
            return f"an integer of about {int(value.bit_length() * math.log10(2))} digits"
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return repr(value)
    if isinstance(value, str):
        shown = value if len(value) <= _ECHO_LIMIT else value[: _ECHO_LIMIT - 3] + "..."
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return type(value).__name__


def _is(value: object) -> str:
    """``is -4 (a number)``: the bad value and its type, for a problem's message."""
    if value is None:
        return "is null"
    if isinstance(value, list):
        count = len(value)
        return f"is a list of {count} item{'' if count == 1 else 's'}" if count else "is an empty list"
    if isinstance(value, dict):
        return "is a mapping"
    if isinstance(value, (str, int, float, datetime, date, time)):
        return f"is {_show(value)} ({_kind(value)})"
    return f"is {_kind(value)}"


def _path_element(key: object) -> str | int:
    """A mapping key as a path element; keys are strings in valid input."""
    return key if isinstance(key, str) else _show(key)


def _subject(path: Path_) -> str:
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


class _Report:
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
                subject=_subject(path),
                message=message,
                expected=expected,
                path=path,
                check=check,
            )
        )


def _translate(error: ValidationError, report: _Report) -> None:
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
        field = _resolve(object_node.get("properties", {}).get(key))
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
        report.add(path, message, _expected(field), check)
        return

    node = _schema_at(schema_path)
    if keyword == "additionalProperties":
        known = list(node.get("properties", {}))
        owner = _subject(path) if path else "the patient state"
        for key in _unknown_keys(instance, node) if isinstance(instance, dict) else []:
            if isinstance(key, str):
                message = "is not a known field"
                close = difflib.get_close_matches(key, known, n=1)
                if close:
                    message += f" (did you mean {close[0]}?)"
            else:
                message = f"is not a known field: keys are field names, and this key {_is(key)}"
            report.add(
                (*path, _path_element(key)),
                message,
                f"one of the fields of {owner}: {', '.join(known)}",
                check,
                at_key=True,
            )
        return

    if keyword == "pattern" and _local_at(schema_path).get("$ref") == _DATE_TIME_REF:
        return  # date-times get their own, more precise, problem from _check_date_times()

    expected = _expected(node)
    if keyword == "type" and instance is None and path and not _is_required(schema_path):
        expected += " (leave the field out when unknown: only booleans may be null)"
    report.add(path, _is(instance), expected, check)


def _is_required(schema_path: list[str | int]) -> bool:
    """Whether the field whose schema node is at ``schema_path`` is required in its object."""
    if len(schema_path) < 2 or schema_path[-2] != "properties":
        return False
    return schema_path[-1] in _schema_at(schema_path[:-2]).get("required", [])


def _fields(data: Any, node: Mapping[str, Any], path: Path_ = ()) -> Iterator[tuple[Path_, Any, dict[str, Any]]]:
    """Every field of ``data`` the schema knows: (path, value, the field's local schema node)."""
    node = _resolve(node)
    if isinstance(data, dict):
        for key, sub in node.get("properties", {}).items():
            if key in data:
                yield (*path, key), data[key], sub
                yield from _fields(data[key], sub, (*path, key))
    elif isinstance(data, list) and "items" in node:
        for index, item in enumerate(data):
            yield (*path, index), item, node["items"]
            yield from _fields(item, node["items"], (*path, index))


def _normalized(data: Any, node: Mapping[str, Any]) -> Any:
    """``data`` with datetime objects at date-time fields written as ISO 8601 text.

    Callers in Python may pass datetime objects, and so does data read by ``yaml.safe_load`` from
    an unquoted ``2026-03-10T12:00:00Z`` (:mod:`crs_rules.loading` refuses those instead). Writing
    them back as text sends them through the same checks as a string (a naive datetime gets "no
    UTC offset"). Only the containers on the way are copied.
    """
    if isinstance(node, Mapping) and node.get("$ref") == _DATE_TIME_REF and isinstance(data, datetime):
        return data.isoformat()
    node = _resolve(node)
    if isinstance(data, dict) and "properties" in node:
        properties = node["properties"]
        return {k: _normalized(v, properties[k]) if k in properties else v for k, v in data.items()}
    if isinstance(data, list) and "items" in node:
        return [_normalized(item, node["items"]) for item in data]
    return data


_FRACTION: Final = re.compile(r"[T ][0-9]{2}:[0-9]{2}:[0-9]{2}[.]([0-9]+)")
_OFFSET: Final = re.compile(r"[+-]([0-9]{2}):([0-9]{2})$")


def _parse_date_time(text: str) -> tuple[datetime | None, str, str]:
    """(the instant in UTC or None, what is wrong, the check's name)."""
    pattern = _resolve(_schema()["$defs"]["date_time"])["pattern"]
    # Python reads more than 6 fractional digits by cutting them (moving the instant: a dose a
    # fraction of a microsecond after the assessment would be read as at it), and offsets such as
    # +00:60 as another offset: both are refused before Python reads the text.
    fraction = _FRACTION.search(text)
    if fraction is not None and len(fraction.group(1)) > 6:
        return (
            None,
            f"which has {len(fraction.group(1))} fractional digits of a second: at most 6 digits "
            "(microseconds) are read exactly",
            "input.date-time-fraction",
        )
    offset = _OFFSET.search(text)
    if offset is not None and (int(offset.group(1)) > 23 or int(offset.group(2)) > 59):
        return (
            None,
            f"which has the UTC offset {offset.group()}: an offset has hours 00-23 and minutes 00-59",
            "input.date-time-offset-range",
        )
    try:
        parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None, "which is not a valid date and time", "input.date-time"
    if parsed.utcoffset() is None:
        if ":" not in text:
            return None, "which has no time of day and no UTC offset", "input.date-time-offset"
        return None, "which has no UTC offset, so the instant is ambiguous", "input.date-time-offset"
    if not _pattern_matches(pattern, text):
        return (
            None,
            "which is not written YYYY-MM-DDThh:mm[:ss[.ffffff]] followed by Z or +hh:mm",
            "input.date-time-form",
        )
    try:
        return parsed.astimezone(timezone.utc), "", ""
    except OverflowError:
        return None, "which is out of the range of date-times", "input.date-time-range"


def _check_date_times(data: Any, report: _Report) -> dict[Path_, datetime]:
    instants: dict[Path_, datetime] = {}
    for path, value, node in _fields(data, _schema()):
        if node.get("$ref") != _DATE_TIME_REF or not isinstance(value, str):
            continue
        instant, wrong, check = _parse_date_time(value)
        if instant is None:
            report.add(path, f"{_is(value)}, {wrong}", _expected(_resolve(node)), check)
        else:
            instants[path] = instant
    return instants


def _check_order_in_time(data: Any, instants: Mapping[Path_, datetime], report: _Report) -> None:
    assessed_at = instants.get(("assessed_at",))
    if assessed_at is None:
        return
    when = _show(data["assessed_at"])
    for path, instant in instants.items():
        if instant <= assessed_at:
            continue
        shown = _show(_value_at(data, path))
        if path == ("crs", "onset_at"):
            report.add(
                path,
                f"is {shown}, after the assessment time {when}",
                "a CRS onset at or before assessed_at",
                "input.onset-after-assessment",
            )
        elif path[0] == "medications":
            report.add(
                path,
                f"is {shown}, given after the assessment time {when}",
                "a time at or before assessed_at: medications lists doses already given",
                "input.given-after-assessment",
            )


def _value_at(data: Any, path: Path_) -> Any:
    for part in path:
        data = data[part]
    return data


def _names(values: list[Any]) -> str:
    shown = [_show(v) for v in values[:5]]
    return ", ".join(shown) + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def _check_vitals(vitals: Any, report: _Report) -> None:
    if not isinstance(vitals, dict):
        return
    if "temperature_c" in vitals and "temperature_f" in vitals:
        report.add(
            ("vitals", "temperature_f"),
            "is given together with vitals.temperature_c",
            "one temperature: temperature_c or temperature_f, not both",
            "input.both-temperatures",
        )

    hypotension = vitals.get("hypotension")
    if hypotension is None or hypotension is False:  # anything else is a type problem already
        if "hypotension" not in vitals:
            stated = "is missing"
        else:
            stated = "is false" if hypotension is False else "is null (unknown)"
        vasopressors = vitals.get("vasopressors")
        if isinstance(vasopressors, list) and vasopressors:
            report.add(
                ("vitals", "hypotension"),
                f"{stated}, but vasopressors are listed ({_names(vasopressors)}): "
                "hypotension requiring vasopressors must say hypotension: true",
                "true when vitals.vasopressors lists any vasopressor",
                "input.vasopressors-without-hypotension",
            )
        if vitals.get("refractory_hypotension") is True:
            report.add(
                ("vitals", "hypotension"),
                f"{stated}, but refractory_hypotension is true: refractory hypotension is "
                "hypotension, so it must say hypotension: true",
                "true when vitals.refractory_hypotension is true",
                "input.refractory-without-hypotension",
            )

    oxygen = vitals.get("oxygen")
    if isinstance(oxygen, dict) and _same(oxygen.get("device"), "room_air"):
        flow = oxygen.get("flow_l_min")
        if _is_plain_number(flow) and flow > 0:
            report.add(
                ("vitals", "oxygen", "flow_l_min"),
                f"{_is(flow)}, but the device is room_air, which means no supplemental oxygen",
                "0, or no flow_l_min, when the device is room_air; otherwise the device in use",
                "input.room-air-with-flow",
            )


def _check_numbers(data: Any, report: _Report) -> None:
    for path, value, node in _fields(data, _schema()):
        if isinstance(value, float) and math.isnan(value):
            report.add(path, "is NaN (not a number)", _expected(_resolve(node)), "input.not-a-number")


def _within_bounds(data: Any, node: Mapping[str, Any], report: _Report, path: Path_ = ()) -> Any:
    """``data`` with every list longer than its ``maxItems`` reported once and cut to its bound, so
    that the other checks look at a bounded number of items (only the containers on the way are
    copied). Runs before the schema, whose ``maxItems`` then never fires."""
    node = _resolve(node)
    if isinstance(data, dict) and "properties" in node:
        properties = node["properties"]
        return {k: _within_bounds(v, properties[k], report, (*path, k)) if k in properties else v
                for k, v in data.items()}
    if isinstance(data, list) and "items" in node:
        bound = node.get("maxItems")
        if isinstance(bound, int) and len(data) > bound:
            report.add(path, f"is a list of {len(data)} items", f"{_expected(node)}, at most {bound} items",
                       "input.too-many-items")
            data = data[:bound]
        return [_within_bounds(item, node["items"], report, (*path, index)) for index, item in enumerate(data)]
    return data


def _collect(data: Any, report: _Report) -> PatientState | None:
    """Run every check; the state only when nothing is wrong."""
    schema = _schema()
    data = _normalized(_within_bounds(data, schema, report), schema)
    for error in _validator().iter_errors(data):
        _translate(error, report)
    instants = _check_date_times(data, report)
    _check_order_in_time(data, instants, report)
    _check_numbers(data, report)
    if isinstance(data, dict):
        _check_vitals(data.get("vitals"), report)
    if report.problems:
        return None
    state = _build(data, instants)
    _accepted[id(state)] = state
    return state


# --------------------------------------------------------------------------------------------
# Building the state from valid data
# --------------------------------------------------------------------------------------------


def _fahrenheit_to_celsius(value: float) -> float:
    """Exact conversion: the decimal the caller wrote, (F - 32) × 5/9, rounded once."""
    return float((Fraction(str(value)) - 32) * 5 / 9)


def _build(data: dict[str, Any], instants: Mapping[Path_, datetime]) -> PatientState:
    def section(name: str) -> dict[str, Any]:
        value = data.get(name, {})
        return value if isinstance(value, dict) else {}

    def number(value: Any) -> float | None:
        return None if value is None else float(value)

    patient, crs, sepsis, vitals = section("patient"), section("crs"), section("sepsis"), section("vitals")
    oxygen: dict[str, Any] = vitals.get("oxygen", {})
    if "temperature_f" in vitals:
        temperature_c: float | None = _fahrenheit_to_celsius(vitals["temperature_f"])
    else:
        temperature_c = number(vitals.get("temperature_c"))

    medications = tuple(
        sorted(
            (
                Medication(
                    drug=item["drug"],
                    given_at=instants[("medications", index, "given_at")],
                    dose_mg=number(item.get("dose_mg")),
                )
                for index, item in enumerate(data.get("medications", []))
            ),
            key=lambda m: (m.given_at, m.drug, m.dose_mg or 0.0),
        )
    ) if "medications" in data else None
    return PatientState(
        assessed_at=instants[("assessed_at",)],
        weight_kg=float(patient["weight_kg"]),
        age_years=number(patient.get("age_years")),
        neutropenic=patient.get("neutropenic"),
        significant_comorbidities=patient.get("significant_comorbidities"),
        car_t=section("therapy").get("car_t"),
        crs_onset_at=instants.get(("crs", "onset_at")),
        antipyretic_or_anticytokine=crs.get("antipyretic_or_anticytokine"),
        improving=crs.get("improving"),
        suspected_mas=crs.get("suspected_mas"),
        septic_shock=sepsis.get("septic_shock"),
        sepsis_improving=sepsis.get("improving"),
        temperature_c=temperature_c,
        hypotension=vitals.get("hypotension"),
        refractory_hypotension=vitals.get("refractory_hypotension"),
        vasopressors=tuple(sorted(set(vitals["vasopressors"]))) if "vasopressors" in vitals else None,
        oxygen_device=oxygen.get("device"),
        oxygen_flow_l_min=number(oxygen.get("flow_l_min")),
        icans_signs=section("neuro").get("icans_signs"),
        medications=medications,
        proposed_orders=tuple(sorted({order["drug"] for order in data.get("proposed_orders", [])})),
        attributed_to_other_cause=tuple(sorted(set(vitals.get("attributed_to_other_cause", [])))),
    )


# --------------------------------------------------------------------------------------------
# Entry points
# --------------------------------------------------------------------------------------------


def parse_patient(
    data: Any, source: str = "<input>", positions: LoadedDocument | None = None
) -> PatientState:
    """The patient state in ``data``, or :class:`InvalidInputError` listing every problem.

    ``source`` names the input in problems (a file name, ``<stdin>``); ``positions``, the document
    ``data`` was loaded from, gives each problem its line and column (0, 0 without it). Date-times
    may be ISO 8601 strings or timezone-aware :class:`datetime` objects.
    """
    report = _Report(source, positions)
    state = _collect(data, report)
    if state is None:
        raise InvalidInputError(report.problems)
    return state


# The states this module built from input it accepted, by identity: evaluate() checks any other
# PatientState again (state_input, then the checks). A state is frozen, so one built here stays
# valid; a copy changed with dataclasses.replace is another object, and is checked.
_accepted: Final[weakref.WeakValueDictionary[int, PatientState]] = weakref.WeakValueDictionary()


def accepted(state: PatientState) -> bool:
    """Whether ``state`` is a state this module built from input that passed every check."""
    return _accepted.get(id(state)) is state


def state_input(state: PatientState) -> dict[str, Any]:
    """The input, following the contract, that a :class:`PatientState` stands for: what
    :func:`~crs_rules.evaluation.evaluate` checks again when given a state rather than a mapping,
    so that a state built or changed by the caller (``PatientState(...)``,
    ``dataclasses.replace``) passes through the same checks as any input. Total over any field
    values: a value of the wrong type is passed on as it is, for the checks to name."""

    def given(**fields: Any) -> dict[str, Any]:
        return {name: value for name, value in fields.items() if value is not None}

    def listed(value: Any) -> Any:
        return list(value) if isinstance(value, (tuple, list)) else value

    def medication(item: Any) -> Any:
        if not isinstance(item, Medication):
            return item
        return {"drug": item.drug, "given_at": item.given_at, **given(dose_mg=item.dose_mg)}

    data: dict[str, Any] = {
        "assessed_at": state.assessed_at,
        "patient": {"weight_kg": state.weight_kg, **given(
            age_years=state.age_years, neutropenic=state.neutropenic,
            significant_comorbidities=state.significant_comorbidities)},
    }
    oxygen = given(device=state.oxygen_device, flow_l_min=state.oxygen_flow_l_min)
    sections = {
        "therapy": given(car_t=state.car_t),
        "crs": given(onset_at=state.crs_onset_at, antipyretic_or_anticytokine=state.antipyretic_or_anticytokine,
                     improving=state.improving, suspected_mas=state.suspected_mas),
        "sepsis": given(septic_shock=state.septic_shock, improving=state.sepsis_improving),
        "vitals": given(temperature_c=state.temperature_c, hypotension=state.hypotension,
                        refractory_hypotension=state.refractory_hypotension,
                        vasopressors=listed(state.vasopressors), oxygen=oxygen or None,
                        attributed_to_other_cause=listed(state.attributed_to_other_cause) or None),
        "neuro": given(icans_signs=state.icans_signs),
    }
    data.update((name, section) for name, section in sections.items() if section)
    if state.medications is not None:
        medications = state.medications
        data["medications"] = ([medication(item) for item in medications]
                               if isinstance(medications, (tuple, list)) else medications)
    orders = state.proposed_orders
    if orders:
        data["proposed_orders"] = [{"drug": drug} for drug in orders] if isinstance(orders, (tuple, list)) else orders
    return data


class _DuplicateKeys(dict[str, Any]):
    """A JSON object that remembers the keys it had more than once."""

    duplicates: list[str]


def _json_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = _DuplicateKeys()
    result.duplicates = []
    for key, value in pairs:
        if key in result and key not in result.duplicates:
            result.duplicates.append(key)
        result[key] = value
    return result


def _duplicate_keys(data: Any) -> Iterator[Path_]:
    stack: list[tuple[Path_, Any]] = [((), data)]
    while stack:  # no recursion: the nesting depth is the caller's
        path, value = stack.pop()
        if isinstance(value, _DuplicateKeys):
            yield from ((*path, key) for key in value.duplicates)
            stack.extend(((*path, key), sub) for key, sub in value.items())
        elif isinstance(value, list):
            stack.extend(((*path, index), sub) for index, sub in enumerate(value))


def _looks_like_json(text: str, source: str) -> bool:
    return text.lstrip().startswith("{") or source.lower().endswith(".json")


def parse_patient_text(text: str, source: str = "<input>") -> PatientState:
    """The patient state in a JSON or YAML text (JSON when it starts with ``{`` or ``source`` ends
    in ``.json``), or :class:`InvalidInputError` listing every problem with its line and column."""
    text = text.removeprefix("\ufeff")
    report_problems: list[Problem] = []
    if _looks_like_json(text, source):
        try:
            data = json.loads(text, object_pairs_hook=_json_object)
        except json.JSONDecodeError as exc:
            raise InvalidInputError(
                [
                    Problem(
                        source, exc.lineno, exc.colno, "-", f"is not valid JSON: {exc.msg}",
                        "one JSON object holding the patient state", check="input.json",
                    )
                ]
            ) from None
        except (ValueError, RecursionError) as exc:
            # Python's reader refuses ints of more than 4300 digits, and nesting deeper than its
            # recursion limit; neither can be a patient state.
            wrong = "is nested too deeply" if isinstance(exc, RecursionError) else "holds a number with too many digits"
            raise InvalidInputError(
                [
                    Problem(
                        source, 0, 0, "-", f"cannot be read as JSON: it {wrong}",
                        "one JSON object holding the patient state", check="input.json",
                    )
                ]
            ) from None
        # JSON has the same structure when read as YAML: the YAML reader gives the positions.
        positions, _ = load_yaml_text(text, source)
        report = _Report(source, positions)
        for path in _duplicate_keys(data):
            report.add(
                path,
                "appears more than once in the same mapping; JSON readers keep only the last one",
                "each field at most once",
                "input.duplicate-key",
                at_key=True,
            )
    else:
        # Unquoted date-times are fine here (the contract writes them so); each is checked below.
        positions, yaml_problems = load_yaml_text(text, source, times_as_text=True)
        # The loader names no field; the path it gives does.
        report_problems = [
            dataclasses.replace(p, subject=_subject(p.path)) if p.subject == "-" and p.path else p
            for p in yaml_problems
        ]
        if positions is None:
            raise InvalidInputError(
                report_problems
                or [Problem(source, 0, 0, "-", "cannot be read as YAML", "a YAML mapping holding the patient state", check="input.yaml")]
            )
        data = positions.data
        report = _Report(source, positions)
    state = _collect(data, report)
    problems = report_problems + report.problems
    if problems or state is None:
        raise InvalidInputError(problems)
    return state


#: The most bytes :func:`read_patient` reads (1 MiB): a patient state is a few hundred bytes, and
#: 1,000 medications a hundred KiB. A FIFO or a pipe is read too (``-``, process substitution), but
#: never more than this.
MAX_INPUT_BYTES: Final = 1024 * 1024


class _TooLarge(Exception):
    pass


def _read_bounded_text(path: str | os.PathLike[str]) -> str:
    """The text of a file (or of standard input for ``-``), reading at most ``MAX_INPUT_BYTES + 1``
    bytes; newlines as text mode reads them. Raises :class:`_TooLarge` past the limit."""
    if path == "-":
        buffer = getattr(sys.stdin, "buffer", None)
        if buffer is None:  # a text-only stream: at most 4 bytes a character
            text = str(sys.stdin.read(MAX_INPUT_BYTES + 1))
            if len(text.encode("utf-8", errors="surrogatepass")) > MAX_INPUT_BYTES:
                raise _TooLarge
            return text
        raw: bytes = buffer.read(MAX_INPUT_BYTES + 1)
    else:
        with open(path, "rb") as file:  # a FIFO blocks until its writer opens it, as for any reader
            raw = file.read(MAX_INPUT_BYTES + 1)
    if len(raw) > MAX_INPUT_BYTES:
        raise _TooLarge
    return raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")


def read_patient(path: str | os.PathLike[str]) -> PatientState:
    """The patient state in a JSON or YAML file; ``-`` reads standard input. At most
    :data:`MAX_INPUT_BYTES` are read.

    A file that cannot be read raises :class:`InvalidInputError` with one problem, never OSError.
    """
    source = "<stdin>" if path == "-" else os.fspath(path)
    try:
        text = _read_bounded_text(path)
    except _TooLarge:
        raise InvalidInputError(
            [
                Problem(
                    source, 0, 0, "-", f"is more than {MAX_INPUT_BYTES} bytes",
                    f"a patient state of at most {MAX_INPUT_BYTES // (1024 * 1024)} MiB ({MAX_INPUT_BYTES} bytes)",
                    check="input.size",
                )
            ]
        ) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        if isinstance(exc, UnicodeDecodeError):
            reason = f"it is not UTF-8 text (byte 0x{exc.object[exc.start]:02X} at offset {exc.start})"
        elif isinstance(exc, OSError) and exc.strerror:
            reason = exc.strerror
        else:
            reason = str(exc)
        raise InvalidInputError(
            [
                Problem(
                    source, 0, 0, "-", f"cannot be read: {reason}",
                    "a readable UTF-8 text file holding one patient state in YAML or JSON",
                    check="input.readable",
                )
            ]
        ) from None
    return parse_patient_text(text, source)
