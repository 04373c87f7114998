"""Conditions as data: reading them from YAML, and their meaning.

Meaning (shared by the compiler and the validator): a comparison on a fact that is absent is
false; ``not`` is plain negation, so it is true when the fact is absent. The compiler turns each
condition into disjunctive normal form (an OR of ANDs of possibly negated comparisons) because
the engine matches conjunctions of patterns.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Iterator, Mapping

from .model import AllOf, AnyOf, Comparison, Condition, Not, Source
from .operators import OPERATORS, operator

__all__ = ["build_condition", "holds", "comparisons", "numbers_compared", "MAX_DNF_TERMS"]

#: A rule whose condition expands to more conjunctions than this is refused as too complex
#: (the engine slows down and, past a few hundred tests under one node, hangs).
MAX_DNF_TERMS = 64

Positioner = Callable[[tuple[str | int, ...]], Source]


def build_condition(data: Any, path: tuple[str | int, ...], where: Positioner) -> Condition:
    """Build a condition from schema-valid data (``where`` gives each node's source)."""
    source = where(path)
    if "all" in data:
        return AllOf(
            tuple(build_condition(c, (*path, "all", i), where) for i, c in enumerate(data["all"])),
            source,
        )
    if "any" in data:
        return AnyOf(
            tuple(build_condition(c, (*path, "any", i), where) for i, c in enumerate(data["any"])),
            source,
        )
    if "not" in data:
        return Not(build_condition(data["not"], (*path, "not"), where), source)
    operators = [key for key in data if key in OPERATORS]
    # Validation reports a leaf without exactly one operator; build with the first for positions.
    operator = operators[0] if operators else "exists"
    value = data.get(operator, True)
    if isinstance(value, list):
        value = tuple(value)
    return Comparison(
        fact=data["fact"],
        operator=operator,
        value=value,
        source=source,
        not_counting=tuple(data.get("not_counting", ())),
    )


def comparisons(condition: Condition) -> Iterator[Comparison]:
    """Every comparison inside a condition, in the order written."""
    if isinstance(condition, Comparison):
        yield condition
    elif isinstance(condition, Not):
        yield from comparisons(condition.condition)
    else:
        for part in condition.conditions:
            yield from comparisons(part)


_MISSING = object()


def numbers_compared(found: Iterable[Comparison], fact: str) -> list[float]:
    """The numbers the comparisons test ``fact`` against, in their order (a pack's thresholds)."""
    return [float(c.value) for c in found
            if c.fact == fact and isinstance(c.value, (int, float)) and not isinstance(c.value, bool)]


def compare(comparison: Comparison, value: Any) -> bool:
    """Whether a present fact value passes the comparison (its operator's Python reading, see
    :mod:`crs_rules.operators`). ValueError for an operator that is not in the table."""
    return operator(comparison.operator).holds(value, comparison.value, comparison.not_counting)


def holds(condition: Condition, facts: Mapping[str, Any]) -> bool:
    """Evaluate a condition over flat facts (``{"vitals.temperature_c": 39.0, ...}``)."""
    if isinstance(condition, Comparison):
        value = facts.get(condition.fact, _MISSING)
        return value is not _MISSING and compare(condition, value)
    if isinstance(condition, Not):
        return not holds(condition.condition, facts)
    if isinstance(condition, AllOf):
        return all(holds(c, facts) for c in condition.conditions)
    return any(holds(c, facts) for c in condition.conditions)

