"""The shape of the compiled chain: conclusions that enter no trace are drawn by as few engine rules
as their premises allow (the decisions themselves are guarded by test_decisions_unchanged.py)."""

from __future__ import annotations

import json
from collections import Counter

from crs_rules.compilation import engine_program
from crs_rules.fact_kinds import FactKind
from crs_rules.model import Protocol


def _untraced(name: str, protocol: Protocol) -> bool:
    """An engine rule of a conclusion that enters no trace: an excluded grade, the pack's CRS
    definition applying, a rule that certainly fails."""
    base = name.rsplit("#", 1)[0]
    grade_rules = {f"{g.rule_id}.not" for g in protocol.grades}
    return base in grade_rules or base == f"{protocol.definition_id}.applies" or base.endswith("~fails")


def test_untraced_conclusions_on_one_excluded_value_are_no_engine_rule(protocol: Protocol) -> None:
    rules, handlers, _ = engine_program(protocol, [])
    assert set(rules) == set(handlers)
    single_exclusions = [
        name for name, definition in rules.items()
        if len(definition["all"]) == 1
        and next(iter(definition["all"][0].values()))["$and"][0] == {"t": FactKind.EXCLUDED.value}
    ]
    finding_rules = tuple(f"{finding.rule_id}.not." for finding in protocol.findings)
    assert single_exclusions, "the shipped pack has findings derived from one other finding's value"
    assert all(name.startswith(finding_rules) for name in single_exclusions), single_exclusions


def test_identical_untraced_alternatives_share_one_engine_rule(protocol: Protocol) -> None:
    rules, _, _ = engine_program(protocol, [])
    untraced = [json.dumps(d, sort_keys=True) for name, d in rules.items() if _untraced(name, protocol)]
    assert len(untraced) > 10
    assert [text for text, count in Counter(untraced).items() if count > 1] == []
