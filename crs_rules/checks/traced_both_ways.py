"""traced-both-ways: traceability runs both ways (statements.yaml).

Every seed statement has rules that encode it or a declared deviation; every rule encodes a
statement or is a declared addition with its reason; deviations and additions name statements and
rules that exist, each declared once. Fails: deleting the addition of ``alert.sepsis_protocol``.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import Problem
from ..model import Protocol, Source
from .base import CheckId, cited, problem


def check_traced_both_ways(protocol: Protocol) -> Iterator[Problem]:
    """Traceability runs both ways (statements.yaml): every seed statement has rules that encode it
    or a declared deviation, and every rule encodes a statement or is a declared addition with its
    reason. Deviations and additions name statements and rules that exist, each declared once."""
    places = {rule_id: source for rule_id, _, source in cited(protocol)}
    statements = {s.id for s in protocol.statements}
    deviated = {d.statement for d in protocol.deviations}
    for statement in protocol.statements:
        if not statement.encoded_by and statement.id not in deviated:
            yield problem(statement.source, statement.id,
                           "no rule encodes this statement and no deviation replaces it",
                           "expected its rule ids in encoded_by, or a deviation in statements.yaml: "
                           f"deviations: [{{id: D.., statement: {statement.id}, instead: ..., reason: ..., "
                           "decided_by: ..., date: ...}]", CheckId.TRACED_BOTH_WAYS)
    encoded = {rule_id for s in protocol.statements for rule_id in s.encoded_by}
    declared: dict[str, Source] = {}
    for addition in protocol.additions:
        if addition.rule not in places:
            yield problem(addition.source, addition.rule,
                           f"an addition declares rule '{addition.rule}', which does not exist",
                           "expected the id of a rule of this pack", CheckId.TRACED_BOTH_WAYS)
        elif addition.rule in declared:
            first = declared[addition.rule]
            yield problem(addition.source, addition.rule,
                           f"rule '{addition.rule}' is declared an addition twice (first at {first.file}:{first.line})",
                           "expected one addition per rule, with one reason", CheckId.TRACED_BOTH_WAYS)
        declared.setdefault(addition.rule, addition.source)
    for rule_id in protocol.rule_ids():
        if rule_id not in encoded and rule_id not in declared:
            source = places.get(rule_id, Source(protocol.path, 0, 0))
            yield problem(source, rule_id, "no seed statement encodes this rule and no addition declares it",
                           "expected its id in a statement's encoded_by in statements.yaml, or an addition "
                           f"there with its reason: additions: [{{rule: {rule_id}, reason: ...}}]",
                           CheckId.TRACED_BOTH_WAYS)
    ids: dict[str, Source] = {}
    for deviation in protocol.deviations:
        if deviation.id in ids:
            first = ids[deviation.id]
            yield problem(deviation.source, deviation.id,
                           f"duplicate deviation id '{deviation.id}' (first defined at {first.file}:{first.line})",
                           "expected each deviation id once", CheckId.TRACED_BOTH_WAYS)
        ids.setdefault(deviation.id, deviation.source)
        if deviation.statement not in statements:
            yield problem(deviation.source, deviation.id,
                           f"names statement '{deviation.statement}', which does not exist",
                           "expected the id of a statement of statements.yaml", CheckId.TRACED_BOTH_WAYS)
        for rule_id in deviation.rules:
            if rule_id not in places:
                yield problem(deviation.source, deviation.id, f"names rule '{rule_id}', which does not exist",
                               "expected ids of rules of this pack", CheckId.TRACED_BOTH_WAYS)


