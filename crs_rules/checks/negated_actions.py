"""no-negated-actions: ``not`` over ``action.*`` is refused.

Whether an action is proposed is known only once every rule has fired, so a rule cannot wait for
its absence. Passes: ``{fact: action.tocilizumab, exists: true}``. Fails:
``not: {fact: action.tocilizumab, exists: true}``.
"""

from __future__ import annotations

from typing import Iterator

from ..errors import Problem
from ..model import Comparison, Condition, Not, Protocol
from .base import CheckId, problem


def _negated_presence(condition: Condition, negated: bool = False) -> Iterator[Comparison]:
    if isinstance(condition, Comparison):
        if negated and condition.family == "action":
            yield condition
    elif isinstance(condition, Not):
        yield from _negated_presence(condition.condition, not negated)
    else:
        for part in condition.conditions:
            yield from _negated_presence(part, negated)


def check_no_negated_actions(protocol: Protocol) -> Iterator[Problem]:
    """``not`` over ``action.*`` cannot be decided while rules are still firing: refused."""
    for rule_id, condition in protocol.conditions():
        for comparison in _negated_presence(condition):
            yield problem(comparison.source, rule_id,
                          f"'{comparison.fact}' is negated; whether an action is proposed is known only once every rule has fired",
                          "expected a condition on patient facts or findings instead", CheckId.NO_NEGATED_ACTIONS)
