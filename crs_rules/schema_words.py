"""JSON Schema errors in plain words, the same for rule packs, scenario files and patient input.

A jsonschema error says which keyword failed where; a pharmacist needs what is wrong and what is
expected, at the line and column of the offending value. This module holds the words for values
("is \"800\" (a string)", "is a list of 2 items") and for JSON types ("a whole number"), used by
every stage that reports schema problems, and turns the errors of the pack and scenario schemas
(``schemas/*.schema.json``) into :class:`~crs_rules.errors.Problem` values.
"""

from __future__ import annotations

import json
import math
from datetime import date, datetime, time
from functools import lru_cache
from typing import Any, Final, Iterable

import jsonschema
from jsonschema.exceptions import ValidationError
from referencing import Registry, Resource

from ._resources import schema_dir
from .errors import Problem
from .loading import LoadedDocument

__all__ = [
    "ECHO_LIMIT",
    "TYPE_WORDS",
    "article",
    "kind",
    "show",
    "describe",
    "is_value",
    "schema_problems",
]

#: The longest text echoed in a message; longer ones are cut with "...".
ECHO_LIMIT: Final = 60

#: A JSON Schema type in words.
TYPE_WORDS: Final = {
    "object": "a mapping of keys",
    "array": "a list",
    "string": "a string",
    "number": "a number",
    "integer": "a whole number",
    "boolean": "true or false",
    "null": "null",
}


# --------------------------------------------------------------------------- values in words


def article(phrase: str) -> str:
    """``a number``, ``an integer``."""
    return ("an " if phrase[:1].lower() in "aeio" else "a ") + phrase


def kind(value: object) -> str:
    """The type of a value, in words: ``a string``, ``a number``, ``a boolean``."""
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
    return article(f"Python {type(value).__name__}")


def show(value: object) -> str:
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
        shown = value if len(value) <= ECHO_LIMIT else value[: ECHO_LIMIT - 3] + "..."
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    return type(value).__name__


def describe(value: object) -> str:
    """``-4 (a number)``, ``"800" (a string)``, ``a list of 2 items``: a bad value and its type."""
    if value is None:
        return "null"
    if isinstance(value, list):
        count = len(value)
        return f"a list of {count} item{'' if count == 1 else 's'}" if count else "an empty list"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (str, int, float, datetime, date, time)):
        return f"{show(value)} ({kind(value)})"
    return kind(value)


def is_value(value: object) -> str:
    """``is -4 (a number)``: the bad value and its type, for a problem's message."""
    return f"is {describe(value)}"


# --------------------------------------------------------------------------- pack and scenario schemas


@lru_cache(maxsize=1)
def _registry() -> Registry:
    resources = []
    for path in sorted(schema_dir().glob("*.schema.json")):
        contents = json.loads(path.read_text(encoding="utf-8"))
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


@lru_cache(maxsize=None)
def _validator(schema_name: str) -> jsonschema.Draft202012Validator:
    schema = _registry().contents(f"urn:crs-rules:schema:{schema_name}")
    return jsonschema.Draft202012Validator(schema, registry=_registry())


def _expected(error: Any) -> str:
    schema = error.schema if isinstance(error.schema, dict) else {}
    description = schema.get("description")
    keyword, detail = error.validator, error.validator_value
    if keyword == "type":
        words = [TYPE_WORDS.get(t, t) for t in ([detail] if isinstance(detail, str) else detail)]
        return f"expected {description}" if description else "expected " + " or ".join(words)
    if keyword == "enum":
        return "expected one of " + ", ".join(str(v) for v in detail)
    if keyword == "const":
        return f"expected {json.dumps(detail)}"
    if keyword in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        bound = {"minimum": "at least", "exclusiveMinimum": "above", "maximum": "at most", "exclusiveMaximum": "below"}
        return f"expected {description or 'a number'} ({bound[str(keyword)]} {detail})"
    if keyword == "minItems":
        return f"expected at least {detail} item(s)"
    if keyword == "uniqueItems":
        return "expected each item only once"
    if description:
        return f"expected {description}"
    if keyword == "pattern":
        return f"expected a string matching {detail}"
    return f"expected the form described by the schema ({keyword})"


def _subject(data: Any, path: Iterable[str | int]) -> str:
    """The id of the innermost element around ``path`` that has one (a rule id), else ``-``."""
    def own_id(node: Any) -> str | None:
        found = node.get("id") if isinstance(node, dict) else None
        return found if isinstance(found, str) and found else None  # an empty id names nothing

    subject = "-"
    node = data
    for key in path:
        subject = own_id(node) or subject
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            break
    return own_id(node) or subject


def _schema_problem(doc: LoadedDocument, error: Any) -> Problem:
    path = tuple(error.absolute_path)
    check = "schema." + "/".join(str(p) for p in error.relative_schema_path)
    subject = _subject(doc.data, path)
    instance = error.instance
    if error.validator == "required" and isinstance(instance, dict):
        missing = [key for key in error.validator_value if key not in instance]
        name = missing[0] if missing else "?"
        line, column = doc.position(path)
        return Problem(doc.file, line, column, subject, f"the key '{name}' is missing",
                       f"expected '{name}' here", path, check)
    line, column = doc.position(path)
    where = f"'{path[-1]}' " if path and isinstance(path[-1], str) else ""
    message = f"{where}{is_value(instance)}"
    if error.validator in ("oneOf", "anyOf", "not") and isinstance(instance, dict):
        message = f"{where}does not have the expected form (keys: {', '.join(map(str, instance))})"
    return Problem(doc.file, line, column, subject, message, _expected(error), path, check)


def schema_problems(doc: LoadedDocument, schema_name: str) -> list[Problem]:
    """Every schema error of one pack or scenario file, in plain words (``schema_name``: the
    schema's name in ``schemas/``, e.g. ``dosing`` or ``scenario``)."""
    validator = _validator(schema_name)
    problems: list[Problem] = []
    error: Any  # jsonschema types its error fields loosely (Unset); these are set on every error
    for error in validator.iter_errors(doc.data):
        # A required/additionalProperties error can list several keys: report each one.
        if error.validator == "required" and isinstance(error.instance, dict):
            for key in error.validator_value:
                if key not in error.instance:
                    single = ValidationError(error.message, validator="required", validator_value=[key],
                                             instance=error.instance, schema=error.schema,
                                             path=error.absolute_path, schema_path=error.relative_schema_path)
                    problems.append(_schema_problem(doc, single))
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = set(error.schema.get("properties", {}))
            for key in error.instance:
                if key not in allowed:
                    line, column = doc.key_position((*error.absolute_path, key))
                    problems.append(Problem(
                        doc.file, line, column, _subject(doc.data, error.absolute_path),
                        f"unknown key '{key}'", "expected one of the keys " + ", ".join(sorted(allowed)),
                        (*error.absolute_path, key), "schema.additionalProperties"))
            continue
        problems.append(_schema_problem(doc, error))
    return problems
