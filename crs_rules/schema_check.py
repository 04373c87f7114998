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

Before compiling, every local ``$ref`` is replaced by the schema it points to (the code written for
a ``$ref`` is a call that names the checked item with ``str.format(**locals())``, half the time of a
check); a ``$ref`` that points outside the schema, refers back to itself, or sits in a schema with a
nested ``$id`` is compiled as it is.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Generic, Iterable, Mapping, Protocol, TypeVar, cast

import fastjsonschema

__all__ = ["AcceptFirst", "accept_first", "compile_acceptor", "compile_plain_acceptor", "plain_json", "plain_scalar"]

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


#: Keywords whose value is no schema (nothing in it is a ``$ref`` to replace).
_NOT_SCHEMAS = frozenset({"enum", "const", "required", "$schema", "$id", "$ref", "title", "description"})


def _has_nested_id(node: Any, top: bool = True) -> bool:
    if isinstance(node, list):
        return any(_has_nested_id(item, False) for item in node)
    if not isinstance(node, Mapping):
        return False
    return (not top and "$id" in node) or any(
        _has_nested_id(value, False) for key, value in node.items() if key not in _NOT_SCHEMAS)


def _local_target(root: Mapping[str, Any], ref: str) -> Any:
    """What a local ``$ref`` (``#/$defs/name``) points to in ``root``; None for any other reference."""
    if not ref.startswith("#/") or "~" in ref or "%" in ref:
        return None
    node: Any = root
    for part in ref[2:].split("/"):
        if not (isinstance(node, Mapping) and part in node):
            return None
        node = node[part]
    return node if isinstance(node, Mapping) else None


#: The most schema nodes references are replaced into (a chain of definitions each using the next
#: twice would grow without bound); past it the schema is compiled with its references.
MAX_INLINED_NODES = 20_000


class _TooLarge(Exception):
    pass


def _inline_refs(node: Any, root: Mapping[str, Any], budget: list[int], following: tuple[str, ...] = ()) -> Any:
    """The draft-7 schema ``node`` with every local ``$ref`` (beside annotations only: any other
    sibling was moved into an ``allOf`` by :func:`_as_draft7`) replaced by its target; a reference
    back into the chain being replaced is kept. Raises :class:`_TooLarge` past ``budget`` nodes."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if isinstance(node, list):
        return [_inline_refs(item, root, budget, following) for item in node]
    if not isinstance(node, Mapping):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and set(node) <= {"$ref", "title", "description"} and ref not in following:
        target = _local_target(root, ref)
        if target is not None:
            return _inline_refs(target, root, budget, (*following, ref))
    return {key: value if key in _NOT_SCHEMAS else _inline_refs(value, root, budget, following)
            for key, value in node.items()}


def _compilable(schema: Mapping[str, Any]) -> dict[str, Any]:
    """``schema`` (draft 2020-12) as the draft-7 schema fastjsonschema compiles, its local
    references replaced by their targets where that means the same."""
    converted: dict[str, Any] = _as_draft7(dict(schema))
    if _has_nested_id(converted):
        return converted  # a nested $id changes what a reference below it means: kept as written
    try:
        inlined: dict[str, Any] = _inline_refs(converted, converted, [MAX_INLINED_NODES])
    except _TooLarge:
        return converted
    return inlined


def compile_plain_acceptor(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A function telling whether data known to be plain JSON (:func:`plain_json`) is valid against
    ``schema`` (draft 2020-12): for a caller that has made sure of that on its own way through the
    data. Any other data may be accepted where ``jsonschema`` refuses it: use :func:`compile_acceptor`.

    Raises :class:`ValueError` when the schema uses a keyword this module does not compile.
    """
    validate = fastjsonschema.compile(_compilable(schema))

    def accepts(data: Any) -> bool:
        try:
            validate(data)
        except fastjsonschema.JsonSchemaException:
            return False
        return True

    return accepts


def compile_acceptor(schema: Mapping[str, Any]) -> Callable[[Any], bool]:
    """A function telling whether plain JSON data is valid against ``schema`` (draft 2020-12);
    anything that is not plain JSON (:func:`plain_json`) is not accepted.

    Raises :class:`ValueError` when the schema uses a keyword this module does not compile.
    """
    accepts_plain = compile_plain_acceptor(schema)

    def accepts(data: Any) -> bool:
        return plain_json(data) and accepts_plain(data)

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
        if kind is dict or kind is list:
            if depth >= MAX_DEPTH:
                return False
            if kind is dict:
                for key, child in item.items():
                    if type(key) is not str:
                        return False
                    stack.append((child, depth + 1))
            else:
                stack.extend((child, depth + 1) for child in item)
        elif not plain_scalar(item):
            return False
    return True


def plain_scalar(value: Any) -> bool:
    """Whether ``value`` is a plain JSON scalar, one both validators read alike: a text without a
    line break, a finite float, an integer, a boolean or None (exact types: a subclass is not)."""
    kind = type(value)
    if kind is str:
        return "\n" not in value and "\r" not in value
    if kind is float:
        return math.isfinite(value)
    return kind is bool or kind is int or value is None


class AcceptFirst(Generic[V]):
    """A ``jsonschema`` validator whose ``iter_errors`` first asks the compiled acceptor: valid
    plain input yields no error at once; anything else is checked by the wrapped validator, which
    words the errors. Every other attribute is the wrapped validator's."""

    def __init__(self, validator: V, schema: Mapping[str, Any]) -> None:
        self._validator = validator
        try:
            self._accepts_plain: Callable[[Any], bool] | None = compile_plain_acceptor(schema)
        except (ValueError, fastjsonschema.JsonSchemaDefinitionException):
            self._accepts_plain = None  # not compiled: every input is checked by jsonschema alone

    @property
    def compiled(self) -> bool:
        """Whether the schema was compiled (else every input goes to the wrapped validator)."""
        return self._accepts_plain is not None

    @property
    def accepts_plain(self) -> Callable[[Any], bool] | None:
        """The compiled check of data known to be plain JSON (:func:`compile_plain_acceptor`), or
        None when the schema was not compiled."""
        return self._accepts_plain

    def iter_errors(self, instance: Any) -> Iterable[Any]:
        if self._accepts_plain is not None and plain_json(instance) and self._accepts_plain(instance):
            return ()
        return self._validator.iter_errors(instance)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._validator, name)


def accept_first(validator: V, schema: Mapping[str, Any]) -> V:
    """``validator`` (a ``jsonschema`` validator of ``schema``) with the compiled accept path in front
    (:class:`AcceptFirst`), usable wherever the validator was."""
    return cast(V, AcceptFirst(validator, schema))
