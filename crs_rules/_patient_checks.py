"""The checks of the patient input: the JSON Schema, and what a schema cannot express.

* ``schemas/patient.schema.json`` (JSON Schema draft 2020-12): the fields, their types, the enums,
  no unknown keys anywhere, and plausibility bounds that keep out values no living human has. Its
  keywords are run with JSON's own equality and number types (``True`` is not ``1``), and with
  messages that are safe for any value (the words come from :mod:`crs_rules._input_words`).
* the checks below: every date-time is a real instant with a UTC offset; nothing was given, and
  CRS did not begin, after ``assessed_at``; not both temperatures; vasopressors or refractory
  hypotension only with ``hypotension: true``; no oxygen flow on room air; no NaN; lists within
  their bounds.

:func:`collect` runs them all and builds the state only when nothing is wrong. Valid plain input
(what JSON and YAML readers give, date-times also as ``datetime`` objects) takes the accept path:
one walk copies it along a plan of the schema read once per process, the compiled schema check of
:mod:`crs_rules.schema_check` runs on the copy, then the checks above. Anything it does not take,
and every input with a problem, goes through every check one by one, which word the problems.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from functools import cache
from typing import Any, Final, TypeGuard

from jsonschema import Draft202012Validator, TypeChecker, ValidationError, validators
from jsonschema.protocols import Validator

from ._input_words import (
    DATE_TIME_REF,
    Report,
    expected_words,
    is_words,
    resolve,
    show,
    translate,
    unknown_keys,
)
from ._patient_contract import Path_, PatientState, build_state, contract_schema, register
from .fields import field
from .schema_check import accept_first, plain_scalar

__all__ = ["collect", "value_at"]


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
# never shown: translate() writes every problem's words from the error's keyword and schema.


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
    elif v.is_type(instance, "object") and unknown_keys(instance, schema):
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
    return accept_first(_PatientValidator(contract_schema()), contract_schema())  # valid input checked at compiled speed


# --------------------------------------------------------------------------------------------
# The checks a schema cannot express
# --------------------------------------------------------------------------------------------


class _Plan:
    """One node of the contract's schema, read once for the walks of the input: the node as
    written, the node with its ``$ref`` merged in (:func:`resolve`), whether it is a date-time (its
    own ``$ref``), and, from the merged node, its fields, its items and the bound of its list."""

    __slots__ = ("node", "merged", "date_time", "properties", "items", "max_items")

    def __init__(self, node: Mapping[str, Any]) -> None:
        self.node = node
        self.date_time = isinstance(node, Mapping) and node.get("$ref") == DATE_TIME_REF
        self.merged = merged = resolve(node)
        properties = merged.get("properties")
        self.properties: dict[str, _Plan] | None = (
            {key: _Plan(sub) for key, sub in properties.items()} if isinstance(properties, Mapping) else None)
        self.items: _Plan | None = _Plan(merged["items"]) if "items" in merged else None
        bound = merged.get("maxItems")
        self.max_items: int | None = bound if isinstance(bound, int) else None


@cache
def _plan() -> _Plan:
    return _Plan(contract_schema())


def _fields(data: Any, plan: _Plan, path: Path_ = ()) -> Iterator[tuple[Path_, Any, Mapping[str, Any]]]:
    """Every field of ``data`` the schema knows: (path, value, the field's local schema node)."""
    if isinstance(data, dict):
        for key, sub in (plan.properties or {}).items():
            if key in data:
                yield (*path, key), data[key], sub.node
                yield from _fields(data[key], sub, (*path, key))
    elif isinstance(data, list) and plan.items is not None:
        items = plan.items
        for index, item in enumerate(data):
            yield (*path, index), item, items.node
            yield from _fields(item, items, (*path, index))


def _normalized(data: Any, plan: _Plan) -> Any:
    """``data`` with datetime objects at date-time fields written as ISO 8601 text.

    Callers in Python may pass datetime objects, and so does data read by ``yaml.safe_load`` from
    an unquoted ``2026-03-10T12:00:00Z`` (:mod:`crs_rules.loading` refuses those instead). Writing
    them back as text sends them through the same checks as a string (a naive datetime gets "no
    UTC offset"). Only the containers on the way are copied.
    """
    if plan.date_time and isinstance(data, datetime):
        return data.isoformat()
    properties = plan.properties
    if isinstance(data, dict) and properties is not None:
        return {k: _normalized(v, properties[k]) if k in properties else v for k, v in data.items()}
    items = plan.items
    if isinstance(data, list) and items is not None:
        return [_normalized(item, items) for item in data]
    return data


_FRACTION: Final = re.compile(r"[T ][0-9]{2}:[0-9]{2}:[0-9]{2}[.]([0-9]+)")
_OFFSET: Final = re.compile(r"[+-]([0-9]{2}):([0-9]{2})$")


@cache
def _date_time_form() -> tuple[re.Pattern[str], bool]:
    """The schema's pattern of date-times, compiled, and whether it is anchored at the end."""
    pattern: str = resolve(contract_schema()["$defs"]["date_time"])["pattern"]
    return re.compile(pattern), pattern.endswith("$")


def _written_as_date_time(text: str) -> bool:
    """:func:`_pattern_matches` with the date-time pattern, compiled once."""
    form, anchored = _date_time_form()
    match = form.search(text)
    return match is not None and (not anchored or match.end() == len(text))


def _parse_date_time(text: str) -> tuple[datetime | None, str, str]:
    """(the instant in UTC or None, what is wrong, the check's name)."""
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
    if not _written_as_date_time(text):
        return (
            None,
            "which is not written YYYY-MM-DDThh:mm[:ss[.ffffff]] followed by Z or +hh:mm",
            "input.date-time-form",
        )
    try:
        return parsed.astimezone(timezone.utc), "", ""
    except OverflowError:
        return None, "which is out of the range of date-times", "input.date-time-range"


def _check_date_times(data: Any, report: Report) -> dict[Path_, datetime]:
    instants: dict[Path_, datetime] = {}
    for path, value, node in _fields(data, _plan()):
        if node.get("$ref") != DATE_TIME_REF or not isinstance(value, str):
            continue
        instant, wrong, check = _parse_date_time(value)
        if instant is None:
            report.add(path, f"{is_words(value)}, {wrong}", expected_words(resolve(node)), check)
        else:
            instants[path] = instant
    return instants


def _check_order_in_time(data: Any, instants: Mapping[Path_, datetime], report: Report) -> None:
    assessed_at = instants.get(("assessed_at",))
    if assessed_at is None:
        return
    when = show(data["assessed_at"])
    for path, instant in instants.items():
        if instant <= assessed_at:
            continue
        shown = show(value_at(data, path))
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


def value_at(data: Any, path: Path_) -> Any:
    for part in path:
        data = data[part]
    return data


def _names(values: list[Any]) -> str:
    shown = [show(v) for v in values[:5]]
    return ", ".join(shown) + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def _check_vitals(vitals: Any, report: Report) -> None:
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
    no_oxygen = field("vitals.oxygen.device").none  # the device that means none (room_air)
    if isinstance(oxygen, dict) and no_oxygen is not None and _same(oxygen.get("device"), no_oxygen):
        flow = oxygen.get("flow_l_min")
        if _is_plain_number(flow) and flow > 0:
            report.add(
                ("vitals", "oxygen", "flow_l_min"),
                f"{is_words(flow)}, but the device is {no_oxygen}, which means no supplemental oxygen",
                f"0, or no flow_l_min, when the device is {no_oxygen}; otherwise the device in use",
                "input.room-air-with-flow",
            )


def _check_numbers(data: Any, report: Report) -> None:
    for path, value, node in _fields(data, _plan()):
        if isinstance(value, float) and math.isnan(value):
            report.add(path, "is NaN (not a number)", expected_words(resolve(node)), "input.not-a-number")


def _within_bounds(data: Any, plan: _Plan, report: Report, path: Path_ = ()) -> Any:
    """``data`` with every list longer than its ``maxItems`` reported once and cut to its bound, so
    that the other checks look at a bounded number of items (only the containers on the way are
    copied). Runs before the schema, whose ``maxItems`` then never fires."""
    properties = plan.properties
    if isinstance(data, dict) and properties is not None:
        return {k: _within_bounds(v, properties[k], report, (*path, k)) if k in properties else v
                for k, v in data.items()}
    items = plan.items
    if isinstance(data, list) and items is not None:
        bound = plan.max_items
        if bound is not None and len(data) > bound:
            report.add(path, f"is a list of {len(data)} items", f"{expected_words(plan.merged)}, at most {bound} items",
                       "input.too-many-items")
            data = data[:bound]
        return [_within_bounds(item, items, report, (*path, index)) for index, item in enumerate(data)]
    return data


# --------------------------------------------------------------------------------------------
# The accept path: valid plain input in one walk, checked at compiled speed
# --------------------------------------------------------------------------------------------


_isfinite: Final = math.isfinite


class _NotPlain(Exception):
    """The input is not one the accept path takes: it goes through every check instead."""


def _plain_copy(data: Any, plan: _Plan, path: Path_, times: list[tuple[Path_, str]]) -> Any:
    """``data`` as :func:`collect`'s every-check path reads it (containers copied, datetime objects
    at date-time fields written as ISO 8601 text), with every date-time text and its path put in
    ``times``. Raises :class:`_NotPlain` for anything that path would treat otherwise or that the
    compiled check may not be given: a key the schema does not know, a list over its bound, a
    container where the schema has none, a value that is not plain JSON (:func:`plain_json`)."""
    if plan.date_time:
        if isinstance(data, datetime):
            data = data.isoformat()
        if type(data) is str:
            times.append((path, data))
    if isinstance(data, dict):
        properties = plan.properties
        if properties is None:
            raise _NotPlain
        copied = {}
        for key, value in data.items():
            sub = properties.get(key) if type(key) is str else None
            if sub is None:
                raise _NotPlain
            kind = type(value)  # the plain leaves here (plain_scalar, inlined); anything else by the call below
            if kind is str and "\n" not in value and "\r" not in value:
                if sub.date_time:
                    times.append(((*path, key), value))
                copied[key] = value
            elif kind is bool or kind is int or value is None or (kind is float and _isfinite(value)):
                copied[key] = value
            else:
                copied[key] = _plain_copy(value, sub, (*path, key), times)
        return copied
    if isinstance(data, list):
        items = plan.items
        if items is None or (plan.max_items is not None and len(data) > plan.max_items):
            raise _NotPlain
        if not items.date_time and all(type(item) is str and "\n" not in item and "\r" not in item
                                       for item in data):
            return list(data)  # a list of names or choices
        return [_plain_copy(item, items, (*path, index), times) for index, item in enumerate(data)]
    if not plain_scalar(data):
        raise _NotPlain
    return data


def _accept(data: Any, source: str) -> tuple[Any, dict[Path_, datetime]] | None:
    """The data as checked and its instants, when ``data`` is plain input that passes every check;
    None for anything else, which then goes through every check, one by one, for their words.

    Whatever this accepts, :func:`collect`'s every-check path accepts, reading it the same: the
    same copy, the compiled schema check on plain JSON only (:mod:`crs_rules.schema_check`), and
    the same date-time, order, and vital-sign checks; no NaN or infinity gets this far."""
    accepts = getattr(_validator(), "accepts_plain", None)
    if accepts is None:
        return None
    times: list[tuple[Path_, str]] = []
    try:
        checked = _plain_copy(data, _plan(), (), times)
    except _NotPlain:
        return None
    if not accepts(checked):
        return None
    instants: dict[Path_, datetime] = {}
    for path, text in times:
        instant = _parse_date_time(text)[0]
        if instant is None:
            return None
        instants[path] = instant
    assessed_at = instants.get(("assessed_at",))
    if assessed_at is not None and any(instant > assessed_at for instant in instants.values()):
        return None
    if isinstance(checked, dict):
        vitals = Report(source, None)
        _check_vitals(checked.get("vitals"), vitals)
        if vitals.problems:
            return None
    return checked, instants


def collect(data: Any, report: Report) -> PatientState | None:
    """Run every check; the state only when nothing is wrong. Valid plain input takes the accept
    path (:func:`_accept`); anything else, and any input with a problem, goes through every check,
    one by one (:func:`_every_check`), for their words."""
    if not report.problems:
        accepted = _accept(data, report.source)
        if accepted is not None:
            state = build_state(*accepted)
            register(state, report.source, report.positions, accepted[0])
            return state
    return _every_check(data, report)


def _every_check(data: Any, report: Report) -> PatientState | None:
    plan = _plan()
    data = _normalized(_within_bounds(data, plan, report), plan)
    for error in _validator().iter_errors(data):
        translate(error, report)
    instants = _check_date_times(data, report)
    _check_order_in_time(data, instants, report)
    _check_numbers(data, report)
    if isinstance(data, dict):
        _check_vitals(data.get("vitals"), report)
    if report.problems:
        return None
    state = build_state(data, instants)
    register(state, report.source, report.positions, data)
    return state
