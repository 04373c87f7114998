"""JSON for the rule engine: what durable_rules reads correctly, checked before it gets there.

The engine refuses floats written with an exponent (``1e-05``), clamps integers outside the signed
64-bit range (so comparisons on them are wrong) and its ``null`` fails every comparison. Facts and rule
definitions are serialised here: floats in plain decimal that reads back to the same float;
out-of-range integers, NaN, infinity and ``None`` refused, naming the place of the bad value. A fact
a handler asserts every time can be checked and serialised once (:func:`prepare_fact`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from json.encoder import encode_basestring as _encode_string  # the ensure_ascii=False form
from typing import Any

__all__ = ["to_engine_json", "PreparedFact", "prepare_fact", "check_fact_shape", "count_properties", "RESERVED_KEYS",
           "read_json", "scalar_json", "string_json", "INT64_MIN", "INT64_MAX"]

#: Keys the engine keeps for itself inside a fact.
RESERVED_KEYS = frozenset({"sid", "id"})
#: The engine keeps integers as signed 64-bit: one outside this range would be clamped silently.
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_SORTED_ENCODER = json.JSONEncoder(
    ensure_ascii=False, separators=(",", ":"), allow_nan=False, sort_keys=True
)
#: Bound on the values :func:`_plain` walks: a bigger (or self-containing) value goes through the
#: careful encoder (a fact the engine takes has about 250 properties at most).
_PLAIN_BUDGET = 10_000


def _not_plain(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not a JSON value")


def _c_encoders() -> tuple[Callable[[Any, int], Any], Callable[[Any, int], Any]] | None:
    """The C encoders the two above make on every call, made once (None without the C module)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:
        return None
    return tuple(
        make(None, _not_plain, _encode_string, None, ":", ",", sort_keys, False, False)
        for sort_keys in (False, True))


_C_ENCODERS = _c_encoders()
#: The C scanner of the standard decoder: one JSON value from a position, and where it ends.
_SCAN_ONCE: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def read_json(text: str) -> Any:
    """``json.loads(text)`` for a text this module wrote (no whitespace around it): the C scanner
    alone, without the decoder's Python layer."""
    try:
        value, end = _SCAN_ONCE(text, 0)
    except StopIteration:
        end = -1
    if end != len(text):
        return json.loads(text)  # words the error, or reads what the scanner alone does not
    return value


def _float_text(value: float, where: str) -> str:
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{where}: {value!r} is not a finite number")
    text = float.__repr__(value)
    if "e" in text or "E" in text:
        # The engine refuses exponent notation: write the same digits in plain decimal.
        text = format(Decimal(text), "f")
    if "." not in text:
        text += ".0"  # keep it a float when read back
    return text


def _encode(value: Any, out: list[str], where: str, sort_keys: bool) -> None:
    """The careful encoder: validates everything and names the place of a bad value."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"{where}: string is not valid Unicode text") from exc
        out.append(_encode_string(str.__str__(value)))
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        if not INT64_MIN <= value <= INT64_MAX:
            raise ValueError(
                f"{where}: integer {value} is outside the signed 64-bit range (the engine "
                "clamps it, so comparisons on it would be wrong)"
            )
        out.append(int.__repr__(value))
    elif isinstance(value, float):
        out.append(_float_text(value, where))
    elif isinstance(value, Mapping):
        items = list(value.items())
        for key, _ in items:
            if not isinstance(key, str):
                raise ValueError(f"{where}: key {key!r} is not a string")
        if sort_keys:
            items.sort(key=lambda item: str.__str__(item[0]))
        out.append("{")
        for index, (key, item) in enumerate(items):
            if index:
                out.append(",")
            out.append(_encode_string(str.__str__(key)))
            out.append(":")
            _encode(item, out, f"{where}.{key}", sort_keys)
        out.append("}")
    elif isinstance(value, (list, tuple)):
        out.append("[")
        for index, item in enumerate(value):
            if index:
                out.append(",")
            _encode(item, out, f"{where}[{index}]", sort_keys)
        out.append("]")
    elif value is None:
        raise ValueError(
            f"{where}: None is not allowed (the engine's null fails every comparison; "
            "leave the field out or give it a value)"
        )
    else:
        raise ValueError(f"{where}: {type(value).__name__} is not a JSON value")


def _plain(value: Any) -> bool:
    """True when the standard encoder writes ``value`` exactly as :func:`_encode` would.

    That is: only dicts with string keys, lists, tuples, exact strings of valid text, booleans,
    64-bit integers and finite floats whose ``repr`` has no exponent. Anything else goes
    through the careful encoder, which also reports what is wrong. Containers are walked with a
    stack, each scalar checked where it is found (no call per value); past ``_PLAIN_BUDGET``
    containers (or a container holding itself) the value is not plain.
    """
    pending = [value]
    budget = _PLAIN_BUDGET
    while pending:
        budget -= 1
        if budget < 0:
            return False
        node = pending.pop()
        kind = type(node)
        if kind is dict:
            for key in node:
                if type(key) is not str:
                    return False
            items = node.values()
        elif kind is list or kind is tuple:
            items = node
        elif not _plain_scalar(node):
            return False
        else:
            continue
        for item in items:
            kind = type(item)
            if kind is str:
                if not item.isascii() and not _encodable(item):
                    return False
            elif kind is bool:
                continue
            elif kind is int:
                if not INT64_MIN <= item <= INT64_MAX:
                    return False
            elif kind is float:
                if not math.isfinite(item) or "e" in float.__repr__(item):
                    return False
            elif kind is dict or kind is list or kind is tuple:
                pending.append(item)
            else:
                return False
    return True


def _plain_scalar(value: Any) -> bool:
    kind = type(value)
    if kind is str:
        return bool(value.isascii()) or _encodable(value)
    if kind is int:
        return bool(INT64_MIN <= value <= INT64_MAX)
    if kind is float:
        return math.isfinite(value) and "e" not in float.__repr__(value)
    return kind is bool


def scalar_json(value: Any) -> str | None:
    """The JSON text :func:`to_engine_json` writes for a scalar that the standard encoder writes the
    same way (see :func:`_plain`): a string, a boolean, a 64-bit integer or a finite float whose
    ``repr`` has no exponent. None for anything else (a container, ``None``, a subclass, a value
    the careful encoder must write or refuse): the caller then serialises through
    :func:`to_engine_json`, which words the refusal."""
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is str or kind is int or kind is float:
        if not _plain_scalar(value):
            return None
        if kind is str:
            return _encode_string(value)
        return int.__repr__(value) if kind is int else float.__repr__(value)
    return None


#: The JSON text of a string (as the standard encoder writes it with ``ensure_ascii=False``).
string_json: Callable[[str], str] = _encode_string


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def to_engine_json(value: Any, *, sort_keys: bool = False, where: str = "value") -> str:
    """Serialise ``value`` as JSON the engine reads correctly.

    Floats are written in plain decimal with the shortest digits that read back to the same
    float (never with an exponent); NaN, infinity, ``None``, integers outside the signed 64-bit
    range and non-JSON types raise :class:`ValueError`. Strings are written as UTF-8, the way
    rule definitions and facts must both be written since the engine compares string texts.
    The text is compact and, with ``sort_keys``, canonical.
    """
    if _plain(value):
        if _C_ENCODERS is not None:
            return "".join(_C_ENCODERS[sort_keys](value, 0))
        return (_SORTED_ENCODER if sort_keys else _ENCODER).encode(value)
    out: list[str] = []
    _encode(value, out, where, sort_keys)
    return "".join(out)


@dataclass(frozen=True)
class PreparedFact:
    """A fact already checked and serialised (:func:`prepare_fact`): its kind and canonical JSON
    (and, read back from that text, its content). The content is what handlers read of the fact
    and what each result copies; it must be left as it is (a changed content would no longer be
    what the engine was given)."""

    kind: str
    text: str
    value: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


def prepare_fact(fact: Mapping[str, Any], origin: str = "fact") -> PreparedFact:
    """Check ``fact`` as :meth:`Firing.assert_fact` would and serialise it once.

    Raises :class:`ValueError` for a malformed fact, naming ``origin``. The fact's kind is checked
    against the ruleset's when it is asserted.
    """
    kind = check_fact_shape(fact, origin)
    text = to_engine_json(fact, sort_keys=True, where=f"{origin} (kind {kind!r})")
    return PreparedFact(kind, text, read_json(text))


def check_fact_shape(fact: Any, origin: str) -> str:
    """Check the caller-visible shape of a fact; return its kind."""
    if not isinstance(fact, Mapping):
        raise ValueError(f"{origin}: a fact must be a mapping, not {type(fact).__name__}")
    for key in fact:
        if not isinstance(key, str) or not key:
            raise ValueError(f"{origin}: fact key {key!r} is not a non-empty string")
        if key in RESERVED_KEYS:
            raise ValueError(f"{origin}: fact key {key!r} is reserved for the engine")
        if "." in key or key.startswith("$"):
            raise ValueError(f"{origin}: fact key {key!r} may not contain '.' or start with '$'")
    kind = fact.get("t")
    if not isinstance(kind, str) or not kind:
        raise ValueError(f"{origin}: a fact needs a non-empty string field 't' naming its kind")
    return kind


def count_properties(value: Any) -> int:
    if isinstance(value, Mapping):
        return len(value) + sum(count_properties(item) for item in value.values())
    if isinstance(value, (list, tuple)):
        return sum(count_properties(item) for item in value)
    return 0
