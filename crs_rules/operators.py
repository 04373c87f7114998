"""The operators a condition may use, each declared once: what it means everywhere.

A comparison in a pack reads ``{fact: vitals.temperature_c, at_least: 38.0}``. Its operator
(``at_least``) is one :class:`Operator` of :data:`OPERATOR_TABLE`, which says, in one place:

* ``applies_to``: the kinds of fact it may be used on (see :class:`crs_rules.facts.FactType`);
  validation refuses it on any other kind;
* ``holds``: its meaning in plain Python, on a present fact value (``conditions.compare``);
* ``engine_test``: the same meaning as a durable_rules test on the observation fact, passing or
  (``negated``) failing; an absent attribute fails both, which leaves unknown inputs open
  (``compilation``);
* ``words``: how a person reads it ("at least").

Everything that evaluates, compiles, validates or describes a comparison reads this table, so a new
operator is one entry here (and its name in ``schemas/condition.schema.json``).

The Python reading: equality is by type as well as value (``true`` is not ``1``, ``"1"`` is not
``1``) while an int and a float compare as numbers; bounds are inclusive (``at_least``,
``at_most``) or exclusive (``above``, ``below``) as named; ``count_at_least`` counts the list's
names other than the comparison's ``not_counting`` ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Final, Literal, Mapping

__all__ = [
    "Operator",
    "OPERATOR_TABLE",
    "OPERATORS",
    "FactKindName",
    "EngineTest",
    "operator",
    "operators_for",
]

#: The kinds of fact a comparison can read (``FactType.kind``).
FactKindName = Literal["number", "boolean", "enum", "list", "level", "presence"]

#: A durable_rules test on the observation fact, e.g. ``{"$gte": {"vitals.temperature_c": 38.0}}``.
EngineTest = dict[str, Any]

#: The expected value written in the rule (a scalar, or a tuple for ``one_of``).
Expected = Any


@dataclass(frozen=True)
class Operator:
    """One operator: its name in the YAML, the fact kinds it applies to, its meaning in Python and
    in the engine, and its name in words."""

    name: str
    words: str
    applies_to: frozenset[FactKindName]
    holds: Callable[[Any, Expected, tuple[str, ...]], bool]
    """``holds(fact value, expected, not_counting)``: whether a present fact value passes."""
    engine_test: Callable[[str, Expected, bool], EngineTest]
    """``engine_test(attribute, expected, negated)``: the engine test on a present attribute."""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(value: Any, expected: Expected) -> bool:
    """Equal as the YAML reads: same type (int and float both numbers) and same value."""
    same_type = type(value) is type(expected) or (_is_number(value) and _is_number(expected))
    return bool(same_type and value == expected)


def _count(value: Any, not_counting: tuple[str, ...]) -> int:
    return sum(1 for item in value if item not in not_counting)


def _bound(check: Callable[[float, float], bool]) -> Callable[[Any, Expected, tuple[str, ...]], bool]:
    def holds(value: Any, expected: Expected, not_counting: tuple[str, ...]) -> bool:
        assert isinstance(expected, (int, float)) and isinstance(value, (int, float))
        return check(value, expected)

    return holds


def _bound_test(passing: str, failing: str) -> Callable[[str, Expected, bool], EngineTest]:
    def test(attribute: str, expected: Expected, negated: bool) -> EngineTest:
        return {failing if negated else passing: {attribute: expected}}

    return test


def _equality_test(equal_when_passing: bool) -> Callable[[str, Expected, bool], EngineTest]:
    def test(attribute: str, expected: Expected, negated: bool) -> EngineTest:
        equal = equal_when_passing != negated
        return {attribute: expected} if equal else {"$neq": {attribute: expected}}

    return test


def _one_of_holds(value: Any, expected: Expected, not_counting: tuple[str, ...]) -> bool:
    assert isinstance(expected, tuple)
    return any(_equal(value, each) for each in expected)


def _one_of_test(attribute: str, expected: Expected, negated: bool) -> EngineTest:
    assert isinstance(expected, tuple)
    if negated:
        return {"$and": [{"$neq": {attribute: each}} for each in expected]}
    return {"$or": [{attribute: each} for each in expected]}


def _includes_test(attribute: str, expected: Expected, negated: bool) -> EngineTest:
    # A list is encoded with has.<name>: true/false for every name the rules test; the attribute
    # given is that flag.
    return {attribute: not negated}


def _count_holds(value: Any, expected: Expected, not_counting: tuple[str, ...]) -> bool:
    assert isinstance(expected, int)
    return _count(value, not_counting) >= expected


def _exists_test(attribute: str, expected: Expected, negated: bool) -> EngineTest:
    return {"$nex" if negated else "$ex": {attribute: 1}}


_NUMBERS: Final[frozenset[FactKindName]] = frozenset({"number", "level"})
_SCALARS: Final[frozenset[FactKindName]] = frozenset({"number", "boolean", "enum", "level"})

#: Every operator, in the order the pack's documentation lists them.
OPERATOR_TABLE: Final[Mapping[str, Operator]] = {
    op.name: op
    for op in (
        Operator("equals", "equal to", _SCALARS,
                 lambda value, expected, _: _equal(value, expected), _equality_test(True)),
        Operator("not_equals", "not equal to", _SCALARS,
                 lambda value, expected, _: not _equal(value, expected), _equality_test(False)),
        Operator("at_least", "at least", _NUMBERS, _bound(lambda a, b: a >= b), _bound_test("$gte", "$lt")),
        Operator("above", "above", _NUMBERS, _bound(lambda a, b: a > b), _bound_test("$gt", "$lte")),
        Operator("at_most", "at most", _NUMBERS, _bound(lambda a, b: a <= b), _bound_test("$lte", "$gt")),
        Operator("below", "below", _NUMBERS, _bound(lambda a, b: a < b), _bound_test("$lt", "$gte")),
        Operator("one_of", "one of", frozenset({"enum", "level"}), _one_of_holds, _one_of_test),
        Operator("includes", "includes", frozenset({"list"}),
                 lambda value, expected, _: expected in value, _includes_test),
        Operator("count_at_least", "counts at least", frozenset({"list"}), _count_holds,
                 _bound_test("$gte", "$lt")),
        Operator("exists", "is present", frozenset({"presence"}), lambda value, expected, _: True, _exists_test),
    )
}

#: The operators' names, as written in the YAML.
OPERATORS: Final[tuple[str, ...]] = tuple(OPERATOR_TABLE)


def operator(name: str) -> Operator:
    """The operator named ``name``; ValueError for a name that is no operator."""
    found = OPERATOR_TABLE.get(name)
    if found is None:
        raise ValueError(f"unknown operator {name}")
    return found


def operators_for(kind: str) -> frozenset[str]:
    """The names of the operators that apply to a kind of fact."""
    return frozenset(op.name for op in OPERATOR_TABLE.values() if kind in op.applies_to)
