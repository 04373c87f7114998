"""rule-count, condition-depth, condition-size: the pack stays small enough to check and compile.

At most :data:`MAX_RULES` rules; conditions nested at most :data:`MAX_CONDITION_DEPTH` deep, each
expanding to at most ``MAX_DNF_TERMS`` alternatives. Sizes are computed arithmetically, never by
expanding, so an exponential condition is refused at once. Fails: an ``all`` of ten two-way ``any``
(1,024 alternatives once expanded).
"""

from __future__ import annotations

from typing import Iterator

from ..conditions import MAX_DNF_TERMS
from ..errors import Problem
from ..model import AllOf, Comparison, Condition, Not, Protocol
from .base import CheckId, problem, rule_sources

#: The most rules (findings, grade criteria, drugs, action rules, alerts) a pack may hold.
MAX_RULES = 500
#: How deeply all / any / not may nest in one condition (a comparison alone is depth 0).
MAX_CONDITION_DEPTH = 10


def expansion_size(condition: Condition, negated: bool = False, cap: int = MAX_DNF_TERMS) -> int:
    """How many alternatives the condition's OR-of-ANDs form has, counted without expanding it:
    the product over an AND, the sum over an OR (after De Morgan, as :func:`conditions.to_dnf`
    expands). The count stops growing past ``cap`` (it returns ``cap + 1``), so it never builds a
    huge number either; the work is linear in the size of the condition."""
    if isinstance(condition, Comparison):
        return 1
    if isinstance(condition, Not):
        return expansion_size(condition.condition, not negated, cap)
    conjunctive = isinstance(condition, AllOf) != negated
    total = 1 if conjunctive else 0
    for part in condition.conditions:
        size = expansion_size(part, negated, cap)
        total = total * size if conjunctive else total + size
        total = min(total, cap + 1)
    return total


def _depth(condition: Condition) -> int:
    if isinstance(condition, Comparison):
        return 0
    if isinstance(condition, Not):
        return 1 + _depth(condition.condition)
    return 1 + max((_depth(part) for part in condition.conditions), default=0)


def check_condition_size(protocol: Protocol) -> Iterator[Problem]:
    """The pack stays small enough to check and to compile: at most ``MAX_RULES`` rules, conditions
    nested at most ``MAX_CONDITION_DEPTH`` deep, each expanding to at most ``MAX_DNF_TERMS``
    alternatives. Sizes are computed arithmetically, never by expanding, so an exponential
    condition is refused at once; checks that expand (the engine size) run only on a pack within
    these bounds (see :func:`crs_rules.checks.semantic_problems`). One problem per rule."""
    rules = list(rule_sources(protocol))
    if len(rules) > MAX_RULES:
        rule_id, source = rules[MAX_RULES]
        yield problem(source, rule_id, f"the pack has {len(rules)} rules",
                      f"expected at most {MAX_RULES} rules; split the protocol into several packs", CheckId.RULE_COUNT)
    reported: set[str] = set()
    for rule_id, condition in protocol.conditions():
        if rule_id in reported:
            continue
        depth = _depth(condition)
        if depth > MAX_CONDITION_DEPTH:
            reported.add(rule_id)
            yield problem(condition.source, rule_id, f"the condition is nested {depth} levels deep (all, any, not)",
                          f"expected at most {MAX_CONDITION_DEPTH} levels; flatten it or split the rule",
                          CheckId.CONDITION_DEPTH)
        elif expansion_size(condition) > MAX_DNF_TERMS:
            reported.add(rule_id)
            yield problem(condition.source, rule_id, "the condition is too complex for the engine",
                          f"expected at most {MAX_DNF_TERMS} alternatives once expanded; split the rule",
                          CheckId.CONDITION_SIZE)
