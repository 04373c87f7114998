"""Input checking at compiled speed: the accept path of a JSON Schema validator.

``fastjsonschema`` turns a schema into Python code once; checking valid input with it is many times
faster than with ``jsonschema``, which interprets the schema at every call. It only says whether
input is valid, and its messages are not the project's: so it decides acceptance alone, and when it
rejects, the ``jsonschema`` validator (which words every error, with the project's own keywords)
runs as before. Messages are therefore exactly those of ``jsonschema``.

Acceptance by the compiled code must imply acceptance by ``jsonschema``. Two guards keep it so:

* the schema is compiled as the draft-2020-12 schema it is written as: a ``$ref`` with sibling
  keywords keeps them (in older drafts, which ``fastjsonschema`` implements, siblings of ``$ref``
  are ignored), and a schema with a keyword this module does not know to mean the same in both is
  refused at compile time (:class:`ValueError`), so the validator falls back to ``jsonschema``;
* only plain JSON data goes the fast way: dicts with string keys, lists, and values whose type is
  exactly ``str`` (without line breaks), ``bool``, ``int``, a finite ``float`` or ``None``.
  Anything else (a ``datetime``, a ``Decimal``, a subclass, NaN) goes to ``jsonschema``.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Generic, Iterable, Mapping, Protocol, TypeVar, cast

import fastjsonschema

__all__ = ["AcceptFirst", "accept_first", "compile_acceptor", "plain_json"]

#: Keywords whose meaning is the same in draft 2020-12 and in the draft-7 code fastjsonschema writes
#: (annotations included). Any other keyword keeps a schema on the jsonschema path.
_SAME_MEANING = frozenset({
    "$defs", "$id", "$ref", "$schema", "additionalProperties", "allOf", "anyOf", "const", "description",
    "else", "enum", "exclusiveMaximum", "exclusiveMinimum", "if", "items", "maxItems", "maxLength",
    "maximum", "minItems", "minLength", "minimum", "not", "oneOf", "pattern", "properties", "required",
    "then", "title", "type", "uniqueItems",
})
#: Keywords whose value is a mapping of names to schemas (the names are not keywords).
_SCHEMA_MAPS = frozenset({"$defs", "properties"})

class _Validator(Protocol):
    def iter_errors(self, instance: Any) -> Iterable[Any]: ...


V = TypeVar("V", bound=_Validator)


def _as_draft7(node: Any, where: str = "#") -> Any:
    """The schema with draft-2020-12 meaning in draft-7 form; ValueError on an unknown keyword."""
    if isinstance(node, list):
        return [_as_draft7(item, f"{where}/{index}") for index, item in enumerate(node)]
    if not isinstance(node, Mapping):
        return node
    unknown = sorted(set(node) - _SAME_MEANING)
    if unknown:
        raise ValueError(f"{where}: keyword(s) {unknown} not compiled (their meaning may differ)")
    converted: dict[str, Any] = {}
    for key, value in node.items():
        if key in _SCHEMA_MAPS:
            converted[key] = {name: _as_draft7(item, f"{where}/{key}/{name}") for name, item in value.items()}
        elif key in ("enum", "const", "required", "$schema", "$id", "$ref", "title", "description"):
            converted[key] = value
        else:
            converted[key] = _as_draft7(value, f"{where}/{key}")
    converted.pop("$schema", None)
    if "$ref" in converted and len(set(converted) - {"$ref", "title", "description"}) > 0:
        # 2020-12 applies a $ref's siblings too; draft 7 would ignore them.
        converted["allOf"] = [*converted.get("allOf", []), {"$ref": converted.pop("$ref")}]
    return converted


def compile_acceptor(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A function telling whether plain JSON data is valid against ``schema`` (draft 2020-12).

    Raises :class:`ValueError` when the schema uses a keyword this module does not compile.
    """
    validate = fastjsonschema.compile(_as_draft7(dict(schema)))

    def accepts(data: Any) -> bool:
        if not plain_json(data):
            return False
        try:
            validate(data)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return accepts


#: Plain JSON data goes the fast way only this deep and this large (a patient state is far smaller);
#: anything deeper or larger, a structure holding itself included, goes to jsonschema.
MAX_DEPTH = 32
MAX_NODES = 100_000


def plain_json(value: Any) -> bool:
    """Whether ``value`` is plain JSON data whose checking means the same in both validators, at
    most :data:`MAX_DEPTH` deep and of at most :data:`MAX_NODES` values. Never recursive."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if nodes > MAX_NODES:
            return False
        kind = type(item)
        if kind is str:
            if "\n" in item or "\r" in item:
                return False
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif kind is dict or kind is list:
            if depth >= MAX_DEPTH:
                return False
            if kind is dict:
                for key, child in item.items():
                    if type(key) is not str:
                        return False
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif not (kind is bool or kind is int or item is None):
            return False
    return True


class AcceptFirst(Generic[V]):
    """A ``jsonschema`` validator whose ``iter_errors`` first asks the compiled acceptor: valid
    plain input yields no error at once; anything else is checked by the wrapped validator, which
    words the errors. Every other attribute is the wrapped validator's."""

    def __init__(self, validator: V, schema: Mapping[str, Any]) -> None:
        self._validator = validator
        try:
            self._accepts: Callable[[Any], bool] | None = compile_acceptor(schema)
        except (ValueError, fastjsonschema.JsonSchemaDefinitionException):
            self._accepts = None  # not compiled: every input is checked by jsonschema alone

    @property
    def compiled(self) -> bool:
        """Whether the schema was compiled (else every input goes to the wrapped validator)."""
        return self._accepts is not None

    def iter_errors(self, instance: Any) -> Iterable[Any]:
        if self._accepts is not None and self._accepts(instance):
            return ()
        return self._validator.iter_errors(instance)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._validator, name)


def accept_first(validator: V, schema: Mapping[str, Any]) -> V:
    """``validator`` (a ``jsonschema`` validator of ``schema``) with the compiled accept path in front
    (:class:`AcceptFirst`), usable wherever the validator was."""
    return cast(V, AcceptFirst(validator, schema))
